//! What other connections see of the running script (its clock, SCRIPT KILL's request, whether
//! it wrote), and the inline budget after which a script moves to the script thread.

use crate::reply::msg;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// State shared with other connections while a script runs (for BUSY and SCRIPT KILL).
#[derive(Debug)]
pub struct ScriptMonitor {
    /// The clock origin of `started_ms`.
    origin: std::time::Instant,
    /// Monotonic ms (since `origin`) at which the running script began; 0 when none runs.
    pub started_ms: AtomicU64,
    /// Set by SCRIPT KILL; the instruction hook stops the script at its next check.
    pub kill: AtomicBool,
    /// The running script has written: it can no longer be killed safely.
    pub wrote: AtomicBool,
    /// Signalled whenever the script thread releases the keyspace.
    pub done: tokio::sync::Notify,
    /// The running script was started inline, on a connection's event loop (see
    /// [`INLINE_BUDGET_MS`]).
    pub inline: AtomicBool,
    /// Set by the hook: an inline script ran past its budget before writing anything, and was
    /// stopped so that it can be run again from the start on the script thread.
    pub migrate: AtomicBool,
    /// Scripts run inline, and inline runs stopped and moved to the script thread (INFO).
    pub inline_runs: AtomicU64,
    pub migrations: AtomicU64,
    /// Instruction-hook calls during the current script (each = 10,000 Lua instructions).
    pub hook_ticks: AtomicU64,
    /// While a library's top-level code runs (FUNCTION LOAD): how long it may run, in ms
    /// (0 otherwise).
    pub load_deadline_ms: AtomicU64,
    /// The running script is a function (FCALL), not an EVAL: each is killed only by its own
    /// KILL, and -BUSY names that one.
    pub function_running: AtomicBool,
    /// The running function's name and the command that called it, for FUNCTION STATS from
    /// another connection.
    pub function_call: parking_lot::Mutex<Option<(String, Vec<bytes::Bytes>)>>,
    /// How many libraries and functions are loaded (FUNCTION STATS answers while a function
    /// holds the keyspace, so it cannot ask the interpreter).
    pub libraries_count: AtomicU64,
    pub functions_count: AtomicU64,
}

/// An inline script that has not written yet is stopped after this long and re-run on the
/// script thread, where it cannot hold up the event loop. Once it has written it cannot be
/// undone, so it finishes inline — which is why only scripts with a record of finishing fast
/// run inline at all (see [`Scripting::status`](super::Scripting::status)).
pub const INLINE_BUDGET_MS: u64 = 2;
/// A script runs inline once it has finished this many times, each within about 10,000 Lua
/// instructions (fewer than two instruction-hook calls) — a count, so scheduling noise cannot
/// make a short script look long.
pub const INLINE_AFTER_RUNS: u32 = 3;

impl Default for ScriptMonitor {
    fn default() -> Self {
        ScriptMonitor {
            origin: std::time::Instant::now(),
            started_ms: AtomicU64::new(0),
            kill: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            done: tokio::sync::Notify::new(),
            inline: AtomicBool::new(false),
            migrate: AtomicBool::new(false),
            inline_runs: AtomicU64::new(0),
            migrations: AtomicU64::new(0),
            hook_ticks: AtomicU64::new(0),
            load_deadline_ms: AtomicU64::new(0),
            function_running: AtomicBool::new(false),
            function_call: parking_lot::Mutex::new(None),
            libraries_count: AtomicU64::new(0),
            functions_count: AtomicU64::new(0),
        }
    }
}

impl ScriptMonitor {
    /// A script starts: its clock starts and the per-script flags are cleared.
    pub fn begin(&self) {
        self.kill.store(false, Ordering::Relaxed);
        self.wrote.store(false, Ordering::Relaxed);
        self.migrate.store(false, Ordering::Relaxed);
        self.hook_ticks.store(0, Ordering::Relaxed);
        let now = self.origin.elapsed().as_millis().max(1) as u64;
        self.started_ms.store(now, Ordering::Relaxed);
    }

    /// How long the current script has run, in ms (0 when none runs).
    pub fn running_for_ms(&self) -> u64 {
        match self.started_ms.load(Ordering::Relaxed) {
            0 => 0,
            t => (self.origin.elapsed().as_millis() as u64).saturating_sub(t),
        }
    }

    /// Asked by the instruction hook every `sandbox::HOOK_EVERY` (10,000)
    /// instructions: whether the running script must stop now. An inline script that has not
    /// written and overran its budget is stopped so that it can run again, from the start, on
    /// the script thread.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.hook_ticks.fetch_add(1, Ordering::Relaxed);
        if self.kill.load(Ordering::Relaxed) {
            return Some(StopReason::Kill);
        }
        let deadline = self.load_deadline_ms.load(Ordering::Relaxed);
        if deadline > 0 && self.running_for_ms() >= deadline {
            return Some(StopReason::LoadTimeout);
        }
        if self.inline.load(Ordering::Relaxed)
            && !self.wrote.load(Ordering::Relaxed)
            && (self.migrate.load(Ordering::Relaxed) || self.running_for_ms() >= INLINE_BUDGET_MS)
        {
            self.migrate.store(true, Ordering::Relaxed);
            return Some(StopReason::Migrate);
        }
        None
    }
}

/// Why the hook stopped a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// SCRIPT KILL, or SHUTDOWN NOSAVE.
    Kill,
    /// An inline run overran its budget before writing (see [`INLINE_BUDGET_MS`]).
    Migrate,
    /// A library's top-level code ran too long (FUNCTION LOAD).
    LoadTimeout,
}

impl StopReason {
    /// The error raised inside the script.
    pub fn message(self) -> &'static str {
        match self {
            StopReason::Kill => msg::SCRIPT_KILLED,
            StopReason::Migrate => msg::SCRIPT_MOVED,
            StopReason::LoadTimeout => msg::FUNCTION_LOAD_TIMEOUT,
        }
    }
}
