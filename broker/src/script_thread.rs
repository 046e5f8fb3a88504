//! The thread that runs scripts, so a long script never stalls the event loop: while it runs,
//! other connections still get served (-BUSY past the threshold, SCRIPT KILL).

use crate::commands::dispatch;
use crate::state::{ScriptJob, Shared};
use parking_lot::MutexGuard;
use std::sync::mpsc;
use std::sync::Arc;

/// Scripts run back to back under one lock acquisition, at most this many.
const JOBS_PER_LOCK: usize = 64;

/// The script thread's stack. Nothing a script does recurses on it without a bound: replies,
/// `cjson` and `cmsgpack` are converted without recursion, and Lua caps its own C recursion at
/// 200 calls. The deepest cases fit in 384 KB in a debug build (the unit test
/// `deep_structures_fit_in_a_small_thread_stack` runs them in 1 MB); ten times that, set here
/// rather than left to `RUST_MIN_STACK`.
const STACK_BYTES: usize = 4 * 1024 * 1024;

/// Queues a script job, starting the script thread on first use. False if it is gone.
pub fn submit(shared: &Arc<Shared>, job: ScriptJob) -> bool {
    let sender = shared.script_jobs.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<ScriptJob>();
        let shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("scripts".into())
            .stack_size(STACK_BYTES)
            .spawn(move || run(&shared, rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the script thread");
        }
        tx
    });
    sender.send(job).is_ok()
}

fn run(shared: &Shared, jobs: mpsc::Receiver<ScriptJob>) {
    while let Ok(first) = jobs.recv() {
        let mut engine = shared.engine.lock();
        let mut next = Some(first);
        let mut done = 0;
        while let Some(mut job) = next.take() {
            // Here a script neither blocks nor moves: each command has its reply.
            let replies = job
                .commands
                .iter()
                .map(|args| dispatch(shared, &mut engine, &mut job.client, args).into_reply())
                .collect();
            // The connection may have gone; its client state goes with it.
            let _ = job.reply.send((job.client, replies));
            done += 1;
            if done < JOBS_PER_LOCK {
                next = jobs.try_recv().ok();
            }
        }
        // Hand the lock straight to a waiting connection rather than re-taking it.
        MutexGuard::unlock_fair(engine);
        shared.script_monitor.done.notify_waiters();
    }
}
