//! Seeded structured fuzzing on the stable toolchain: the same targets as the coverage-guided
//! fuzzer in `fuzz/` (request parser, command dispatch, Lua value conversion), with decisions
//! from a fixed-seed RNG and a fixed number of inputs, so every run tests the same inputs and
//! takes about the same time. A watchdog turns a hang into a failure naming the input.
//!
//! Environment (all optional): `FUZZ_SEED` (base seed, default 0x5eed), `FUZZ_CASES` (inputs
//! per target, overriding the defaults below), `FUZZ_ONLY` (run just that case number, for
//! reproducing a failure), `FUZZ_TRACE=1` (print each
//! session before it runs), `FUZZ_KNOWN_CRASHES=0` (leave out the inputs of the crashes found and fixed,
//! see `broker::harness::lua::KNOWN_CRASHES`).

use broker::harness::grammar::Options;
use broker::harness::targets::{self, Finding, ParserCase};
use broker::harness::{Harness, RngChoices};
use broker::BrokerConfig;
use rand::SeedableRng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A single input taking this long is a hang (the slowest take milliseconds in debug builds).
const HANG_AFTER: Duration = Duration::from_secs(60);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
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
        watchdog.enter(format!("{target} case {i} (FUZZ_SEED={base} FUZZ_ONLY={i})"));
        let mut c = RngChoices::new(rand::rngs::StdRng::seed_from_u64(base.wrapping_add(i)));
        let case_started = Instant::now();
        if let Err(finding) = one(&mut c) {
            panic!("{finding}\nreproduce: FUZZ_SEED={base} FUZZ_ONLY={i} cargo test -p broker --test fuzz_seeded {target}");
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
    eprintln!(
        "{target}: {ran} inputs in {:.1} s; slowest: {}",
        started.elapsed().as_secs_f64(),
        slowest.join(", ")
    );
    ran
}

#[test]
fn parser() {
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
    let mut h = Harness::new(BrokerConfig::default());
    let opts = options();
    let ran = run("lua", 5_000, |c| {
        let session = targets::lua_session(c, 12, opts);
        trace(&session);
        targets::run_session("lua", &mut h, &session)
    });
    assert!(ran > 0);
}
