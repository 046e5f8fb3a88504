//! Runs a fuzz test in a child process whose address space is capped, so that an input that
//! makes the broker allocate without bound (`HRANDFIELD h -9223372036854775807` once asked
//! for 8 GB) fails that one test with a report naming the input, instead of growing until the
//! kernel's OOM killer ends the whole test run (or another process on the machine).
//!
//! The seeded fuzz tests run the broker in-process, so the cap has to be on a process of their
//! own: the test re-runs its own test binary, filtered to itself, with [`CHILD_ENV`] set; the
//! child caps its address space (`RLIMIT_AS`) and runs the inputs, printing a marker line per
//! input; the parent forwards the child's output and, when the child fails, reports how it
//! ended (exit code or signal, a failed allocation, the watchdog's hang report) and the last
//! input it started. Under the cap an allocation the kernel cannot map fails at once, and
//! Rust's allocation-failure handler prints `memory allocation of N bytes failed` and aborts.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

/// Set (to anything) in the child's environment: the test runs its inputs itself.
pub const CHILD_ENV: &str = "FUZZ_CAPPED_CHILD";

/// The prefix of the line a child prints before each input.
const INPUT_MARK: &str = "fuzz-input: ";

/// Lines of the child's output kept for the report.
const TAIL_LINES: usize = 40;

/// Caps this process's address space at `limit_mb` MiB (soft and hard limit; lower if the
/// hard limit already is), checks that the kernel holds that limit, and says so on stderr.
pub fn cap_address_space(limit_mb: u64) -> Result<(), String> {
    let (_, hard) =
        rlimit::getrlimit(rlimit::Resource::AS).map_err(|e| format!("getrlimit(RLIMIT_AS): {e}"))?;
    let bytes = (limit_mb << 20).min(hard);
    rlimit::setrlimit(rlimit::Resource::AS, bytes, bytes)
        .map_err(|e| format!("setrlimit(RLIMIT_AS, {bytes}): {e}"))?;
    match rlimit::getrlimit(rlimit::Resource::AS) {
        Ok((soft, _)) if soft == bytes => {
            eprintln!("address space capped at {} MiB", bytes >> 20);
            Ok(())
        }
        other => Err(format!("RLIMIT_AS reads {other:?} after setting {bytes}")),
    }
}

/// Announces the input a child starts, so that the parent can name it if the child dies.
pub fn mark_input(name: &str) {
    eprintln!("{INPUT_MARK}{name}");
}

/// This process's peak address space in MiB (Linux's `VmPeak`), if known.
pub fn peak_address_space_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmPeak:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// How a child run ended.
#[derive(Debug)]
pub struct ChildRun {
    pub status: ExitStatus,
    /// The last input the child announced with [`mark_input`].
    pub last_input: Option<String>,
    /// The child's last lines of output (markers left out).
    pub tail: Vec<String>,
    /// Lines that say why a process dies (a failed allocation, a hang, a stack overflow),
    /// wherever they were: a backtrace after them can push them out of `tail`.
    pub causes: Vec<String>,
}

/// Whether an output line says why the process is about to die.
fn is_cause(line: &str) -> bool {
    line.contains("memory allocation of")
        || line.starts_with("hang: ")
        || line.contains("has overflowed its stack")
}

impl ChildRun {
    /// `Ok` when the child passed, else a report of how it ended.
    pub fn verdict(&self, test: &str, limit_mb: u64) -> Result<(), String> {
        if self.status.success() {
            return Ok(());
        }
        let how = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(6)) => "aborted (SIGABRT)".to_string(),
            (None, Some(9)) => "was killed (SIGKILL: the OOM killer, or a timeout)".to_string(),
            (None, Some(11)) => "crashed (SIGSEGV)".to_string(),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            (None, None) => "ended without a status".to_string(),
        };
        let failed_allocation = self.causes.iter().find(|l| l.contains("memory allocation of"));
        let cause = if let Some(line) = failed_allocation {
            format!(
                "a runaway allocation: `{}` with the address space capped at {limit_mb} MiB",
                line.trim()
            )
        } else if let Some(line) = self.causes.iter().find(|l| l.starts_with("hang: ")) {
            format!("a hang: {}", line.trim())
        } else if self.causes.iter().any(|l| l.contains("has overflowed its stack")) {
            "a stack overflow".to_string()
        } else if self.status.code() == Some(101) {
            "a failed check or a panic, reported above".to_string()
        } else {
            "see its last output".to_string()
        };
        let input = self.last_input.as_deref().unwrap_or("(none announced yet)");
        Err(format!(
            "{test}: the fuzzing process {how}: {cause}\nlast input started: {input}\nits last output:\n{}",
            self.tail.join("\n")
        ))
    }
}

/// What the output readers collect.
#[derive(Default)]
struct Collected {
    last_input: Option<String>,
    tail: VecDeque<String>,
    causes: Vec<String>,
}

/// Reads `stream` line by line: markers update the last input, other lines are forwarded to
/// this process's stderr (captured by the test harness unless `--nocapture`) and kept.
fn pump(stream: impl Read + Send + 'static, collected: Arc<Mutex<Collected>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            let Ok(mut c) = collected.lock() else {
                break;
            };
            if let Some(name) = text.strip_prefix(INPUT_MARK) {
                c.last_input = Some(name.to_string());
                continue;
            }
            eprintln!("{text}");
            if is_cause(text) && c.causes.len() < TAIL_LINES {
                c.causes.push(text.to_string());
            }
            if c.tail.len() == TAIL_LINES {
                c.tail.pop_front();
            }
            c.tail.push_back(text.to_string());
        }
    })
}

/// Runs test `test` of the current test binary (alone, exactly that name, output not
/// captured) in a child process with [`CHILD_ENV`] and `extra_env` set, and waits for it.
pub fn run_test_in_child(test: &str, extra_env: &[(&str, String)]) -> std::io::Result<ChildRun> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .envs(extra_env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let collected = Arc::new(Mutex::new(Collected::default()));
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(pump(out, collected.clone()));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(pump(err, collected.clone()));
    }
    let status = child.wait()?;
    for p in pumps {
        let _ = p.join();
    }
    let mut guard = collected
        .lock()
        .map_err(|_| std::io::Error::other("an output reader panicked"))?;
    let c = std::mem::take(&mut *guard);
    Ok(ChildRun {
        status,
        last_input: c.last_input,
        tail: c.tail.into(),
        causes: c.causes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(raw_status: i32, tail: &[&str]) -> ChildRun {
        let tail: Vec<String> = tail.iter().map(|s| s.to_string()).collect();
        ChildRun {
            status: ExitStatus::from_raw(raw_status),
            last_input: Some("dispatch case 7".into()),
            causes: tail.iter().filter(|l| is_cause(l)).cloned().collect(),
            tail,
        }
    }

    #[test]
    fn a_passing_child_has_no_report() {
        assert!(run(0, &["ok"]).verdict("t", 4096).is_ok());
    }

    #[test]
    fn the_report_names_how_the_child_ended_and_its_last_input() {
        // A raw wait status: the signal number in the low bits, an exit code shifted by 8.
        let hang = run(6, &["hang: dispatch case 7 ran for more than 60s"]);
        let report = hang.verdict("dispatch", 4096).unwrap_err();
        assert!(
            report.contains("aborted (SIGABRT): a hang: hang: dispatch case 7"),
            "{report}"
        );
        assert!(report.contains("last input started: dispatch case 7"), "{report}");

        let overflow = run(6, &["thread 'x' has overflowed its stack"]);
        let report = overflow.verdict("lua", 4096).unwrap_err();
        assert!(report.contains("a stack overflow"), "{report}");

        let killed = run(9, &[]).verdict("wire", 4096).unwrap_err();
        assert!(killed.contains("was killed (SIGKILL"), "{killed}");

        let failed = run(101 << 8, &["[dispatch] malformed reply"])
            .verdict("dispatch", 4096)
            .unwrap_err();
        assert!(
            failed.contains("exited with status 101: a failed check or a panic"),
            "{failed}"
        );
    }
}
