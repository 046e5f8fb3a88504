//! SHUTDOWN, with Redis 7.0's options, for a server whose only persistence is the append-only
//! file.
//!
//! There is no RDB to save: a plain SHUTDOWN (Redis saves only when save points are set) and
//! NOSAVE stop at once. SAVE asks for an RDB save that cannot happen, so it fails as a failed
//! save fails in Redis ("Errors trying to SHUTDOWN"), unless FORCE says to exit anyway. NOW
//! skips waiting for lagging replicas, of which there are none. A shutdown never waits, so
//! ABORT always finds none in progress. Whatever the options, the append-only file is written
//! and fsynced once the connections have stopped (`Broker::serve` closes it, as it does on
//! SIGTERM), as Redis flushes its log on every shutdown.

use super::{Ctx, Outcome};
use crate::reply::{msg, Reply};
use crate::state::Shared;
use bytes::Bytes;
use std::sync::atomic::Ordering;

/// The options of one SHUTDOWN command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownRequest {
    pub nosave: bool,
    pub save: bool,
    pub now: bool,
    pub force: bool,
    pub abort: bool,
}

impl ShutdownRequest {
    /// Parses the options after the command name, as Redis does (any order, repeats allowed;
    /// ABORT alone; not both SAVE and NOSAVE).
    pub fn parse(args: &[Bytes]) -> Result<ShutdownRequest, Reply> {
        let mut r = ShutdownRequest::default();
        for a in args {
            let flag = match a.to_ascii_lowercase().as_slice() {
                b"nosave" => &mut r.nosave,
                b"save" => &mut r.save,
                b"now" => &mut r.now,
                b"force" => &mut r.force,
                b"abort" => &mut r.abort,
                _ => return Err(Reply::error(msg::SYNTAX)),
            };
            *flag = true;
        }
        let flags = r.nosave || r.save || r.now || r.force;
        if (r.abort && flags) || (r.nosave && r.save) {
            return Err(Reply::error(msg::SYNTAX));
        }
        Ok(r)
    }
}

/// What the server does with a SHUTDOWN.
#[derive(Debug, PartialEq)]
pub enum ShutdownOutcome {
    /// Refused or nothing to do: answer and carry on.
    Reply(Reply),
    /// Stopping: close the connection without a reply, as Redis does when it exits.
    Stop,
}

/// Decides a SHUTDOWN; `busy` when a script has run past the busy threshold (only NOSAVE is
/// allowed then, and it kills the script even if it wrote). Stops the server when it says so.
pub fn decide(shared: &Shared, args: &[Bytes], busy: bool) -> ShutdownOutcome {
    let request = match ShutdownRequest::parse(args) {
        Ok(r) => r,
        Err(e) => return ShutdownOutcome::Reply(e),
    };
    if request.abort {
        return ShutdownOutcome::Reply(Reply::error(msg::NO_SHUTDOWN_IN_PROGRESS));
    }
    if busy && !request.nosave {
        return ShutdownOutcome::Reply(Reply::error(msg::BUSY));
    }
    if request.save {
        if !request.force {
            tracing::warn!(
                "SHUTDOWN SAVE: this server keeps no RDB snapshot, so it cannot save one; not exiting"
            );
            return ShutdownOutcome::Reply(Reply::error(msg::SHUTDOWN_FAILED));
        }
        tracing::warn!("SHUTDOWN SAVE FORCE: this server keeps no RDB snapshot, exiting without one");
    }
    stop(shared);
    ShutdownOutcome::Stop
}

/// Stops the server: a running script is killed (written or not) and `Broker::serve` returns.
pub fn stop(shared: &Shared) {
    tracing::warn!("User requested shutdown...");
    shared.script_monitor.kill.store(true, Ordering::Relaxed);
    shared.shutdown.cancel();
}

pub fn shutdown(ctx: &mut Ctx) -> Outcome {
    match decide(ctx.shared, &ctx.args[1..], false) {
        ShutdownOutcome::Reply(r) => r.into(),
        // Nothing is written: the client sees the connection close.
        ShutdownOutcome::Stop => Outcome::Close(Reply::Raw(Bytes::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<ShutdownRequest, Reply> {
        let args: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        ShutdownRequest::parse(&args)
    }

    #[test]
    fn options_parse_as_in_redis() {
        assert_eq!(parse(&[]), Ok(ShutdownRequest::default()));
        let r = parse(&["NOW", "nosave", "Force", "now"]).unwrap();
        assert!(r.now && r.nosave && r.force && !r.save && !r.abort);
        assert!(parse(&["abort"]).unwrap().abort);
        for bad in [
            &["save", "nosave"][..],
            &["abort", "now"],
            &["abort", "abort", "force"],
            &["later"],
        ] {
            assert_eq!(parse(bad), Err(Reply::error(msg::SYNTAX)), "{bad:?}");
        }
    }

    #[test]
    fn refusals_leave_the_server_running() {
        let shared = Shared::new(crate::BrokerConfig::default());
        let words =
            |w: &[&str]| -> Vec<Bytes> { w.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect() };
        let cases: [(&[&str], bool, &str); 5] = [
            (&["abort"], false, msg::NO_SHUTDOWN_IN_PROGRESS),
            (&["abort"], true, msg::NO_SHUTDOWN_IN_PROGRESS),
            (&[], true, msg::BUSY),
            (&["save", "now"], true, msg::BUSY),
            (&["save"], false, msg::SHUTDOWN_FAILED),
        ];
        for (w, busy, expected) in cases {
            assert_eq!(
                decide(&shared, &words(w), busy),
                ShutdownOutcome::Reply(Reply::error(expected)),
                "{w:?} busy={busy}"
            );
            assert!(!shared.shutdown.is_cancelled());
        }
        assert_eq!(decide(&shared, &words(&["nosave"]), true), ShutdownOutcome::Stop);
        assert!(shared.shutdown.is_cancelled());
        assert!(shared.script_monitor.kill.load(Ordering::Relaxed));
    }
}
