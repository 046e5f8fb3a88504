//! Seeded structured fuzzing on the stable toolchain: the same targets as the coverage-guided
//! fuzzer in `fuzz/` (request parser, command dispatch, Lua value conversion), with decisions
//! from a fixed-seed RNG and a fixed number of inputs, so every run tests the same inputs and
//! takes about the same time. A watchdog turns a hang into a failure naming the input.
//!
//! Environment (all optional): `FUZZ_SEED` (base seed, default 0x5eed), `FUZZ_CASES` (inputs
//! per target, overriding the defaults below), `FUZZ_ONLY` (run just that case number, for
//! reproducing a failure), `FUZZ_TRACE=1` (print each
//! session before it runs), `FUZZ_KNOWN_CRASHES=0` (leave out the inputs of the crashes found and fixed,
//! see `broker::harness::lua::KNOWN_CRASHES`), `FUZZ_MEMORY_LIMIT_MB` (the child process's
//! address-space cap, default 4096; 0 runs the inputs in the test process itself, uncapped).
//!
//! Each target runs in a child process (this test binary again, filtered to the one test) with
//! its address space capped, so that a runaway allocation fails that test with a report naming
//! the input instead of bringing in the kernel's OOM killer (`broker::harness::contained`).

use broker::harness::grammar::Options;
use broker::harness::targets::{self, Finding, ParserCase};
use broker::harness::{contained, Harness, RngChoices};
use broker::BrokerConfig;
use rand::SeedableRng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A single input taking this long is a hang (the slowest take milliseconds in debug builds).
const HANG_AFTER: Duration = Duration::from_secs(60);

/// The fuzzing process's address-space cap: the broker's own use stays far below (the
/// child's peak is printed with each target's summary), while an allocation of many
/// gigabytes fails at once.
const MEMORY_LIMIT_MB: u64 = 4096;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn is_capped_child() -> bool {
    std::env::var_os(contained::CHILD_ENV).is_some()
}

/// In the test process: runs `test` in a child process under the memory cap and fails with
/// the child's report if it fails; returns true (the inputs ran there). In that child: caps
/// it and returns false, so the test runs its inputs here.
fn ran_in_capped_child(test: &str) -> bool {
    let limit_mb = env_u64("FUZZ_MEMORY_LIMIT_MB").unwrap_or(MEMORY_LIMIT_MB);
    if is_capped_child() {
        if let Err(e) = contained::cap_address_space(limit_mb) {
            panic!("{e}");
        }
        return false;
    }
    if limit_mb == 0 {
        return false;
    }
    let run = contained::run_test_in_child(test, &[])
        .unwrap_or_else(|e| panic!("{test}: could not start the fuzzing process: {e}"));
    if let Err(report) = run.verdict(test, limit_mb) {
        panic!("{report}");
    }
    true
}

fn options() -> Options {
    Options {
        known_crashes: std::env::var("FUZZ_KNOWN_CRASHES").map_or(true, |v| v != "0"),
    }
}

/// Aborts the process with the current input's name when no input finishes for
/// [`HANG_AFTER`]: a test that hangs would otherwise stall CI without saying where.
struct Watchdog {
    done: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
    current: Arc<Mutex<String>>,
}

impl Watchdog {
    fn start() -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicU64::new(0));
        let current = Arc::new(Mutex::new(String::new()));
        let (d, p, c) = (done.clone(), progress.clone(), current.clone());
        std::thread::spawn(move || {
            let mut last = (0, Instant::now());
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let now = p.load(Ordering::Relaxed);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > HANG_AFTER {
                    let name = c.lock().map(|s| s.clone()).unwrap_or_default();
                    eprintln!("hang: {name} ran for more than {HANG_AFTER:?}");
                    std::process::abort();
                }
            }
        });
        Watchdog {
            done,
            progress,
            current,
        }
    }

    fn enter(&self, name: String) {
        if let Ok(mut c) = self.current.lock() {
            *c = name;
        }
        self.progress.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// Runs `cases` inputs of one target, case `i` from seed `base + i`; returns how many ran.
fn run(
    target: &str,
    default_cases: u64,
    mut one: impl FnMut(&mut RngChoices<rand::rngs::StdRng>) -> Result<(), Finding>,
) -> u64 {
    let base = env_u64("FUZZ_SEED").unwrap_or(0x5eed);
    let cases = env_u64("FUZZ_CASES").unwrap_or(default_cases);
    let range = match env_u64("FUZZ_ONLY") {
        Some(i) => i..i + 1,
        None => 0..cases,
    };
    let watchdog = Watchdog::start();
    let started = Instant::now();
    let mut ran = 0;
    // The slowest inputs, reported so that a generator change that makes some inputs costly
    // shows up before it shows up as CI time.
    let mut slowest: Vec<(Duration, u64)> = Vec::new();
    for i in range {
        let name = format!("{target} case {i} (FUZZ_SEED={base} FUZZ_ONLY={i})");
        if is_capped_child() {
            contained::mark_input(&name);
        }
        watchdog.enter(name);
        let mut c = RngChoices::new(rand::rngs::StdRng::seed_from_u64(base.wrapping_add(i)));
        let case_started = Instant::now();
        let reproduce =
            format!("FUZZ_SEED={base} FUZZ_ONLY={i} cargo test -p broker --test fuzz_seeded {target}");
        // A panic in the broker is a finding too: name the input that caused it.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| one(&mut c))) {
            Ok(Ok(())) => {}
            Ok(Err(finding)) => panic!("{finding}\nreproduce: {reproduce}"),
            Err(_) => panic!(
                "{target} case {i} panicked (its message is above)\nreproduce: FUZZ_TRACE=1 {reproduce} -- --nocapture"
            ),
        }
        slowest.push((case_started.elapsed(), i));
        slowest.sort_unstable_by(|a, b| b.cmp(a));
        slowest.truncate(3);
        ran += 1;
    }
    let slowest: Vec<String> = slowest
        .iter()
        .map(|(d, i)| format!("case {i} {:.2} s", d.as_secs_f64()))
        .collect();
    let peak = contained::peak_address_space_mb()
        .map_or(String::new(), |mb| format!("; peak address space {mb} MiB"));
    eprintln!(
        "{target}: {ran} inputs in {:.1} s; slowest: {}{peak}",
        started.elapsed().as_secs_f64(),
        slowest.join(", ")
    );
    ran
}

#[test]
fn parser() {
    if ran_in_capped_child("parser") {
        return;
    }
    let ran = run("parser", 100_000, |c| {
        targets::check_parser(&ParserCase::structured(c))
    });
    assert!(ran > 0);
}

/// With `FUZZ_TRACE=1` every session is printed before it runs: an input that aborts the
/// process (a stack overflow) is then the last one printed.
fn trace(session: &targets::Session) {
    if std::env::var("FUZZ_TRACE").is_ok_and(|v| v == "1") {
        eprintln!("---\n{session}");
    }
}

#[test]
fn dispatch() {
    if ran_in_capped_child("dispatch") {
        return;
    }
    let mut h = Harness::new(BrokerConfig::default());
    let opts = options();
    let ran = run("dispatch", 5_000, |c| {
        let session = targets::dispatch_session(c, 40, opts);
        trace(&session);
        targets::run_session("dispatch", &mut h, &session)
    });
    assert!(ran > 0);
}

#[test]
fn lua() {
    if ran_in_capped_child("lua") {
        return;
    }
    let mut h = Harness::new(BrokerConfig::default());
    let opts = options();
    let ran = run("lua", 5_000, |c| {
        let session = targets::lua_session(c, 12, opts);
        trace(&session);
        targets::run_session("lua", &mut h, &session)
    });
    assert!(ran > 0);
}

/// The cap works: a child that asks for 8 GiB fails with a report that names the allocation
/// and the input, where without the cap the allocation could succeed (and then be touched).
#[test]
fn a_runaway_allocation_fails_with_a_report() {
    const TEST: &str = "a_runaway_allocation_fails_with_a_report";
    if is_capped_child() {
        if let Err(e) = contained::cap_address_space(MEMORY_LIMIT_MB) {
            panic!("{e}");
        }
        contained::mark_input("an 8 GiB allocation");
        // Zeroed, so that even an uncapped run only reserves the memory.
        let v = vec![0u8; 8 << 30];
        std::hint::black_box(&v);
        return;
    }
    let run = contained::run_test_in_child(TEST, &[]).expect("start the child");
    let report = run
        .verdict(TEST, MEMORY_LIMIT_MB)
        .expect_err("the allocation must fail");
    assert!(report.contains("address space capped at "), "{report}");
    assert!(
        report.contains(
            "aborted (SIGABRT): a runaway allocation: `memory allocation of 8589934592 bytes failed`"
        ),
        "{report}"
    );
    assert!(
        report.contains("last input started: an 8 GiB allocation"),
        "{report}"
    );
}

/// Inputs the fuzzer found that crashed the broker, replayed one command at a time with the
/// replies redis-server 7.0.15 gives.
mod found {
    use broker::harness::Harness;
    use broker::BrokerConfig;
    use bytes::Bytes;

    fn run(h: &mut Harness, client: usize, line: &str) -> String {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let reply = h.execute(client, &args);
        h.check_invariants().unwrap();
        String::from_utf8_lossy(&reply).into_owned()
    }

    fn stream_with_a_pending_entry() -> (Harness, usize) {
        let mut h = Harness::new(BrokerConfig::default());
        let c = h.connect();
        run(&mut h, c, "XADD x 1-1 f v");
        run(&mut h, c, "XGROUP CREATE x g 0");
        run(&mut h, c, "XREADGROUP GROUP g c STREAMS x >");
        (h, c)
    }

    /// `now - idle` overflowed (a panic in a debug build); Redis clamps a delivery time
    /// outside 0..=now to now.
    #[test]
    fn xclaim_idle_of_i64_min_is_clamped_to_now() {
        let (mut h, c) = stream_with_a_pending_entry();
        let reply = run(&mut h, c, "XCLAIM x g c2 0 1-1 IDLE -9223372036854775808 JUSTID");
        assert_eq!(reply, "*1\r\n$3\r\n1-1\r\n");
        let reply = run(&mut h, c, "XCLAIM x g c3 0 1-1 IDLE 9223372036854775807 JUSTID");
        assert_eq!(reply, "*1\r\n$3\r\n1-1\r\n");
        let pending = run(&mut h, c, "XPENDING x g - + 10");
        assert!(pending.contains("$2\r\nc3\r\n"), "{pending}");
        h.check_answers().unwrap();
    }

    /// `samples * 100` overflowed for a stream (a panic in a debug build); any count past
    /// the stream's length samples all of it, as 0 does.
    #[test]
    fn memory_usage_of_a_stream_with_i64_max_samples() {
        let (mut h, c) = stream_with_a_pending_entry();
        let all = run(&mut h, c, "MEMORY USAGE x SAMPLES 0");
        assert!(all.starts_with(':'), "{all}");
        assert_eq!(run(&mut h, c, "MEMORY USAGE x SAMPLES 9223372036854775807"), all);
        h.check_answers().unwrap();
    }
}
