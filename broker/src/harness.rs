//! In-process command execution and input generators for fuzzing and property tests.
//!
//! Not a public API: it exists so that the seeded tester (`broker/tests/fuzz_*.rs`) and the
//! coverage-guided targets (`fuzz/`) drive the broker exactly as a connection does — parse,
//! `dispatch` under the keyspace lock, EVAL tried inline then re-run as the script thread
//! would, blocked clients registered as waiters — without reaching into its internals one
//! field at a time, and without a socket per input (a million inputs a minute need that).
//!
//! Layout:
//! - [`Harness`]: simulated clients over one [`Shared`] state, `execute` → encoded reply bytes,
//!   [`Harness::check_invariants`], and [`check_replies`] (RESP framing of what was sent).
//! - [`choices`]: where random decisions come from (a seeded RNG or the fuzzer's bytes).
//! - [`grammar`]: valid-looking commands drawn from the command table and a pool of
//!   interesting argument values.
//! - [`families`]: what the syntax alone cannot say for hashes, sets, sorted sets, streams,
//!   pub/sub, bits, DUMP/RESTORE and FUNCTION (ids, scores, groups, payloads, libraries);
//!   [`containers`]: the container commands' subcommands, libraries, harmless CONFIG SETs;
//!   [`payloads`]: real DUMP payloads and ways to damage them.
//! - [`lua`]: Lua scripts built from random nested values, `redis.call`, `cjson`, `cmsgpack`,
//!   `struct` and `bit`.
//! - [`contained`]: runs a fuzz test in a child process with a capped address space, and
//!   reports how it ended (a runaway allocation fails one test instead of the whole run).
//! - [`targets`]: one function per fuzz target; each returns a [`Finding`] when a property
//!   fails (a panic or an abort is a finding by itself).
//!
//! # Example
//! ```
//! use broker::harness::Harness;
//! use bytes::Bytes;
//!
//! let mut h = Harness::new(broker::BrokerConfig::default());
//! let c = h.connect();
//! let reply = h.execute(c, &[Bytes::from_static(b"RPUSH"), Bytes::from_static(b"q"), Bytes::from_static(b"a")]);
//! assert_eq!(reply, b":1\r\n");
//! h.check_invariants().unwrap();
//! ```

pub mod choices;
pub mod contained;
pub mod containers;
pub mod families;
pub mod grammar;
pub mod lua;
pub mod payloads;
pub mod targets;

pub use choices::{ByteChoices, Choices, RngChoices};
pub use targets::Finding;

use crate::commands::{dispatch, is_script_command, unwatch_all, Outcome};
use crate::db::Value;
use crate::reply::{Protocol, Reply};
use crate::state::{BrokerConfig, ClientInfo, ClientState, Shared};
use bytes::{Bytes, BytesMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A blocked client's pending reply, as a connection holds it while it waits.
struct Blocked {
    waiter: u64,
    rx: oneshot::Receiver<Reply>,
}

/// One simulated connection.
struct Session {
    state: ClientState,
    blocked: Option<Blocked>,
}

/// The broker's shared state plus simulated connections, driven one command at a time.
pub struct Harness {
    shared: Arc<Shared>,
    sessions: Vec<Session>,
    /// Restored by [`Harness::reset`]: inputs may `CONFIG SET` anything (even `requirepass`).
    config: BrokerConfig,
}

impl Harness {
    pub fn new(config: BrokerConfig) -> Harness {
        Harness {
            shared: Shared::new(config.clone()),
            sessions: Vec::new(),
            config,
        }
    }

    /// The shared state, for checks a target wants to make itself.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Opens a simulated connection (registered like a real one, so CLIENT LIST and KILL see
    /// it); returns its index for [`Harness::execute`].
    pub fn connect(&mut self) -> usize {
        let state = self.new_client_state();
        self.sessions.push(Session { state, blocked: None });
        self.sessions.len() - 1
    }

    /// Number of connections opened since the last reset.
    pub fn clients(&self) -> usize {
        self.sessions.len()
    }

    fn new_client_state(&self) -> ClientState {
        let id = self.shared.next_client_id.fetch_add(1, Relaxed);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 40000 + (id % 20000) as u16));
        let laddr = SocketAddr::from((Ipv4Addr::LOCALHOST, 6379));
        let info = Arc::new(ClientInfo::new(id, addr, laddr));
        self.shared.clients.lock().insert(id, info.clone());
        let needs_auth = self.shared.config.read().requirepass.is_some();
        ClientState::new(info, !needs_auth)
    }

    /// The protocol client `c` speaks now (`HELLO 3` switches it).
    pub fn protocol(&self, c: usize) -> Protocol {
        self.sessions[c].state.proto
    }

    /// Whether client `c` is blocked on a list (its next command first times the block out).
    pub fn is_blocked(&self, c: usize) -> bool {
        self.sessions[c].blocked.is_some()
    }

    /// Runs one command for client `c` as its connection would and returns the bytes it would
    /// write: first the reply of a block it was in (served, or timed out now — the harness has
    /// no clock, so every block ends when its client acts again), then this command's reply
    /// (nothing if it blocked). An empty command is skipped, as connections skip it.
    pub fn execute(&mut self, c: usize, args: &[Bytes]) -> Vec<u8> {
        let mut out = BytesMut::new();
        if self.sessions[c].state.info.killed.load(Relaxed) {
            self.reconnect(c);
        }
        self.settle(c, &mut out);
        if args.is_empty() {
            return out.to_vec();
        }
        let shared = self.shared.clone();
        let session = &mut self.sessions[c];
        let client = &mut session.state;
        let outcome = {
            let mut engine = shared.engine.lock();
            if client.multi.is_none() && is_script_command(&args[0]) {
                // As a connection does: tried inline first; a migration runs it again from
                // the start, as the script thread would.
                shared.script_monitor.inline.store(true, Relaxed);
                let first = dispatch(&shared, &mut engine, client, args);
                shared.script_monitor.inline.store(false, Relaxed);
                let outcome = match first {
                    Outcome::Migrate => dispatch(&shared, &mut engine, client, args),
                    first => first,
                };
                match outcome {
                    Outcome::Block { .. } => Outcome::Reply(Reply::NullArray),
                    other => other,
                }
            } else {
                let outcome = dispatch(&shared, &mut engine, client, args);
                if let Outcome::Block { keys, op, .. } = outcome {
                    let (waiter, rx) = client.block(&mut engine, keys, op);
                    session.blocked = Some(Blocked { waiter, rx });
                    return out.to_vec();
                }
                outcome
            }
        };
        // Messages the command sent this client come first, as a connection writes them.
        let mailbox = &client.info.pubsub;
        if mailbox.has_pending() {
            mailbox.drain_into(client.proto, &mut out);
        }
        match outcome {
            Outcome::Reply(r) => r.encode(client.proto, &mut out),
            Outcome::Close(r) => {
                r.encode(client.proto, &mut out);
                self.reconnect(c);
            }
            other => other.into_reply().encode(client.proto, &mut out),
        }
        out.to_vec()
    }

    /// Ends client `c`'s block, if any: the reply it was served, or a timeout.
    fn settle(&mut self, c: usize, out: &mut BytesMut) {
        let session = &mut self.sessions[c];
        let Some(mut blocked) = session.blocked.take() else {
            return;
        };
        session.state.info.blocked.store(false, Relaxed);
        let reply = match blocked.rx.try_recv() {
            Ok(r) => r,
            Err(_) => {
                let removed = self.shared.engine.lock().unblock(blocked.waiter);
                if removed {
                    Reply::NullArray
                } else {
                    // Served between the check and the lock: deliver it, as a connection does.
                    blocked.rx.try_recv().unwrap_or(Reply::NullArray)
                }
            }
        };
        reply.encode(session.state.proto, out);
    }

    /// Closes client `c`'s connection (as on EOF) and opens a fresh one in its place.
    fn reconnect(&mut self, c: usize) {
        self.disconnect(c);
        self.sessions[c].state = self.new_client_state();
    }

    fn disconnect(&mut self, c: usize) {
        let shared = self.shared.clone();
        let session = &mut self.sessions[c];
        let mut engine = shared.engine.lock();
        if let Some(b) = session.blocked.take() {
            engine.unblock(b.waiter);
        }
        unwatch_all(&mut engine, &mut session.state);
        engine.pubsub.remove_client(&session.state.info.pubsub);
        shared.clients.lock().remove(&session.state.id);
    }

    /// Closes every connection, empties the keyspace and the script cache, and restores the
    /// configuration, keeping the Lua interpreter (creating one costs milliseconds, which
    /// would dominate a fuzz run).
    pub fn reset(&mut self) {
        for c in 0..self.sessions.len() {
            self.disconnect(c);
        }
        self.sessions.clear();
        *self.shared.config.write() = self.config.clone();
        self.shared
            .memory
            .limit_bytes
            .store(self.config.maxmemory_bytes, Relaxed);
        // Error codes are keyed by the reply's first word, which scripts choose freely.
        self.shared.stats.errors.lock().clear();
        let mut engine = self.shared.engine.lock();
        engine.flush(None);
        // `notify-keyspace-events` lives with the subscriptions, not in the configuration.
        engine.pubsub.notify_flags = 0;
        if let Some(s) = engine.scripting_mut() {
            s.flush();
            // Libraries outlive FLUSHALL, as in Redis; an input's must not reach the next.
            s.function_flush();
        }
    }

    /// Properties that hold between any two commands:
    /// - every list is non-empty, and its queue counters report its length (also through the
    ///   registry, as `/metrics` reads them);
    /// - no hash, set or sorted set is empty (the last removal deletes the key);
    /// - every stream's consumer groups agree with themselves: each pending entry belongs to
    ///   a consumer that lists it, and each consumer lists only entries pending for it;
    /// - every key with an expiry exists;
    /// - the keyspace knows no more waiters than there are blocked sessions.
    pub fn check_invariants(&self) -> Result<(), String> {
        let engine = self.shared.engine.lock();
        for (db, d) in engine.keyspace.iter().enumerate() {
            for (key, value) in &d.map {
                if let Value::List(l) = value {
                    let len = l.len() as u64;
                    if len == 0 {
                        return Err(format!("db {db}: empty list {key:?} left in the keyspace"));
                    }
                    let own = l.stats.snapshot(key, db).length;
                    if own != len {
                        return Err(format!(
                            "db {db}: list {key:?} has {len} elements, its counters say {own}"
                        ));
                    }
                    match self.shared.queues.queue(db, key) {
                        Some(q) if q.length == len => {}
                        Some(q) => {
                            return Err(format!(
                                "db {db}: list {key:?} has {len} elements, the registry says {}",
                                q.length
                            ))
                        }
                        None => return Err(format!("db {db}: list {key:?} missing from the registry")),
                    }
                }
            }
            for (key, value) in &d.map {
                let empty = match value {
                    Value::Hash(h) => h.is_empty(),
                    Value::Set(s) => s.is_empty(),
                    Value::ZSet(z) => z.is_empty(),
                    Value::Stream(s) => {
                        check_groups(s).map_err(|e| format!("db {db}: stream {key:?}: {e}"))?;
                        false
                    }
                    Value::Str(_) | Value::List(_) => false,
                };
                if empty {
                    let t = value.type_name();
                    return Err(format!("db {db}: empty {t} {key:?} left in the keyspace"));
                }
            }
            for key in d.expires.keys() {
                if !d.map.contains_key(key) {
                    return Err(format!("db {db}: expiry left for missing key {key:?}"));
                }
            }
        }
        // A served waiter leaves the keyspace before its client reads the reply, so the
        // keyspace may know fewer waiters than there are blocked sessions, never more.
        let sessions_blocked = self.sessions.iter().filter(|s| s.blocked.is_some()).count();
        let waiters = engine.blocking.blocked_clients();
        if waiters > sessions_blocked {
            return Err(format!(
                "{waiters} waiters registered, {sessions_blocked} clients blocked"
            ));
        }
        Ok(())
    }

    /// The whole queue registry against the keyspace (slower: the registry keeps counters of
    /// keys long gone): no queue reports a length its key does not hold, and none reports a
    /// blocked client when no client is blocked.
    fn check_registry(&self) -> Result<(), String> {
        let engine = self.shared.engine.lock();
        let blocked = self.sessions.iter().any(|s| s.blocked.is_some());
        for q in self.shared.queues.snapshot() {
            let live = match engine.keyspace.get(q.db).and_then(|d| d.map.get(&q.name)) {
                Some(Value::List(l)) => l.len() as u64,
                _ => 0,
            };
            if q.length != live {
                return Err(format!(
                    "db {}: queue {:?} reports length {} but the key holds {live}",
                    q.db, q.name, q.length
                ));
            }
            if !blocked && q.blocked_clients != 0 {
                return Err(format!(
                    "no client is blocked, queue {:?} counts {}",
                    q.name, q.blocked_clients
                ));
            }
        }
        Ok(())
    }

    /// Ends every block, leaves every transaction, and checks that each client and a new one
    /// still answer `PING` with `PONG` — the "server still answers" property.
    pub fn check_answers(&mut self) -> Result<(), String> {
        *self.shared.config.write() = self.config.clone();
        self.shared
            .memory
            .limit_bytes
            .store(self.config.maxmemory_bytes, Relaxed);
        let ping = [Bytes::from_static(b"PING")];
        for c in 0..self.sessions.len() {
            let mut out = BytesMut::new();
            self.settle(c, &mut out);
            if self.sessions[c].state.multi.is_some() {
                self.execute(c, &[Bytes::from_static(b"DISCARD")]);
            }
            // A subscribed RESP2 client answers PING with `pong` in an array, and a MONITOR
            // client's reply follows the lines it was sent: RESET leaves both modes.
            let pubsub = &self.sessions[c].state.info.pubsub;
            if pubsub.subscribed() || pubsub.monitor.load(Relaxed) {
                self.execute(c, &[Bytes::from_static(b"RESET")]);
            }
            if !self.sessions[c].state.authenticated {
                // A client opened while an input had set a password: ask a fresh one instead.
                self.reconnect(c);
            }
            let reply = self.execute(c, &ping);
            if reply != b"+PONG\r\n" {
                return Err(format!(
                    "client {c} got {:?} for PING",
                    String::from_utf8_lossy(&reply)
                ));
            }
        }
        let fresh = self.connect();
        let reply = self.execute(fresh, &ping);
        if reply != b"+PONG\r\n" {
            return Err(format!(
                "a new client got {:?} for PING",
                String::from_utf8_lossy(&reply)
            ));
        }
        self.check_invariants()?;
        self.check_registry()
    }
}

/// A stream's groups: the group's pending entries list and its consumers' lists are two views
/// of one relation and must agree.
fn check_groups(s: &crate::types::stream::Stream) -> Result<(), String> {
    for (name, g) in &s.groups {
        for (id, nack) in &g.pel {
            let listed = g
                .consumers
                .get(&nack.consumer)
                .is_some_and(|c| c.pel.contains(id));
            if !listed {
                return Err(format!(
                    "group {name:?}: {id:?} pending for {:?}, which does not list it",
                    nack.consumer
                ));
            }
        }
        for (cname, c) in &g.consumers {
            for id in &c.pel {
                if g.pel.get(id).map(|n| &n.consumer) != Some(cname) {
                    return Err(format!(
                        "group {name:?}: consumer {cname:?} lists {id:?}, not pending for it"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks that `bytes` is a sequence of complete, well-formed replies for a client speaking
/// `proto` (RESP2 clients must never see RESP3 types; simple strings and errors must not
/// contain CR or LF, or the client's framing breaks). Iterative, so any nesting depth is fine.
pub fn check_replies(bytes: &[u8], proto: Protocol) -> Result<(), String> {
    count_replies(bytes, proto).map(|_| ())
}

/// [`check_replies`], returning how many top-level replies `bytes` holds.
pub fn count_replies(bytes: &[u8], proto: Protocol) -> Result<usize, String> {
    let (mut at, mut n) = (0, 0);
    while at < bytes.len() {
        at = check_one_reply(bytes, at, proto)?;
        n += 1;
    }
    Ok(n)
}

fn check_one_reply(bytes: &[u8], mut at: usize, proto: Protocol) -> Result<usize, String> {
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let Some(&kind) = bytes.get(at) else {
            return Err(format!("reply truncated at byte {at}"));
        };
        let line_end = memchr::memmem::find(&bytes[at..], b"\r\n")
            .map(|i| at + i)
            .ok_or_else(|| format!("no CRLF after the header at byte {at}"))?;
        let line = &bytes[at + 1..line_end];
        if line.contains(&b'\n') || line.contains(&b'\r') {
            return Err(format!("CR or LF inside a header line at byte {at}"));
        }
        let resp3_only = matches!(
            kind,
            b'_' | b',' | b'#' | b'%' | b'~' | b'=' | b'(' | b'!' | b'>' | b'|'
        );
        if resp3_only && proto == Protocol::Resp2 {
            return Err(format!("RESP3 type {:?} sent to a RESP2 client", kind as char));
        }
        let text = std::str::from_utf8(line).map_err(|_| format!("non-UTF-8 header at byte {at}"));
        let header_at = at;
        let number = |what: &str| -> Result<i64, String> {
            text.clone()?.parse::<i64>().map_err(|_| {
                format!(
                    "bad {what} {:?} at byte {header_at}",
                    String::from_utf8_lossy(line)
                )
            })
        };
        at = line_end + 2;
        match kind {
            b'+' | b'-' => {}
            b':' => {
                number("integer")?;
            }
            b'(' => {
                let t = text?;
                let digits = t.strip_prefix('-').unwrap_or(t);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("bad big number at byte {at}"));
                }
            }
            b'_' => {
                if !line.is_empty() {
                    return Err(format!("null with a payload at byte {at}"));
                }
            }
            b'#' => {
                if line != b"t" && line != b"f" {
                    return Err(format!("bad boolean at byte {at}"));
                }
            }
            b',' => {
                let t = text?;
                if !matches!(t, "inf" | "-inf" | "nan") && t.parse::<f64>().is_err() {
                    return Err(format!("bad double {t:?} at byte {at}"));
                }
            }
            b'$' | b'=' | b'!' => {
                let n = number("length")?;
                if n == -1 && kind == b'$' {
                    continue;
                }
                let n = usize::try_from(n).map_err(|_| format!("negative length at byte {at}"))?;
                if bytes.len() < at + n + 2 || &bytes[at + n..at + n + 2] != b"\r\n" {
                    return Err(format!("bulk of {n} bytes not followed by CRLF at byte {at}"));
                }
                if kind == b'=' && (n < 4 || bytes[at + 3] != b':') {
                    return Err(format!("verbatim string without a format at byte {at}"));
                }
                at += n + 2;
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = number("count")?;
                if n == -1 && kind == b'*' {
                    continue;
                }
                let n = u64::try_from(n).map_err(|_| format!("negative count at byte {at}"))?;
                let per = if matches!(kind, b'%' | b'|') { 2 } else { 1 };
                pending += n * per;
                // An attribute (`|`) precedes the value it describes.
                if kind == b'|' {
                    pending += 1;
                }
            }
            other => return Err(format!("unknown reply type {:?} at byte {at}", other as char)),
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(parts: &[&str]) -> Vec<Bytes> {
        parts
            .iter()
            .map(|p| Bytes::copy_from_slice(p.as_bytes()))
            .collect()
    }

    #[test]
    fn blocked_client_is_served_by_another_clients_push() {
        let mut h = Harness::new(BrokerConfig::default());
        let (a, b) = (h.connect(), h.connect());
        assert!(h.execute(a, &args(&["BLPOP", "q", "0"])).is_empty());
        assert!(h.is_blocked(a));
        h.check_invariants().unwrap();
        assert_eq!(h.execute(b, &args(&["RPUSH", "q", "x"])), b":1\r\n");
        // The served reply comes out ahead of the next command's.
        assert_eq!(
            h.execute(a, &args(&["LLEN", "q"])),
            b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n:0\r\n"
        );
        h.check_invariants().unwrap();
        h.check_answers().unwrap();
    }

    #[test]
    fn unserved_block_times_out_when_the_client_acts() {
        let mut h = Harness::new(BrokerConfig::default());
        let a = h.connect();
        assert!(h.execute(a, &args(&["BRPOP", "q", "0.01"])).is_empty());
        assert_eq!(h.execute(a, &args(&["PING"])), b"*-1\r\n+PONG\r\n");
        h.check_invariants().unwrap();
    }

    #[test]
    fn quit_reconnects_and_eval_runs() {
        let mut h = Harness::new(BrokerConfig::default());
        let a = h.connect();
        assert_eq!(
            h.execute(a, &args(&["EVAL", "return {1,'a'}", "0"])),
            b"*2\r\n:1\r\n$1\r\na\r\n"
        );
        assert_eq!(h.execute(a, &args(&["QUIT"])), b"+OK\r\n");
        assert_eq!(h.execute(a, &args(&["PING"])), b"+PONG\r\n");
    }

    #[test]
    fn invariants_catch_counters_that_disagree_and_orphan_expiries() {
        let mut h = Harness::new(BrokerConfig::default());
        let a = h.connect();
        h.execute(a, &args(&["RPUSH", "q", "x", "y"]));
        h.check_invariants().unwrap();
        {
            let engine = h.shared.engine.lock();
            let Some(Value::List(l)) = engine.keyspace[0].map.get(&b"q"[..]) else {
                panic!("q is a list");
            };
            l.stats.record_length(5, 0);
        }
        assert!(h.check_invariants().unwrap_err().contains("counters say 5"));
        h.execute(a, &args(&["DEL", "q"]));
        h.execute(a, &args(&["SET", "k", "v"]));
        h.check_invariants().unwrap();
        h.shared.engine.lock().keyspace[0].set_expiry(&Bytes::from_static(b"gone"), u64::MAX);
        assert!(h.check_invariants().unwrap_err().contains("expiry left"));
    }

    #[test]
    fn reply_checker_rejects_broken_framing() {
        assert!(check_replies(b"+OK\r\n:1\r\n*2\r\n$1\r\na\r\n_\r\n", Protocol::Resp3).is_ok());
        assert!(check_replies(b"_\r\n", Protocol::Resp2).is_err());
        assert!(check_replies(b"$3\r\nab\r\n", Protocol::Resp2).is_err());
        assert!(check_replies(b"*2\r\n:1\r\n", Protocol::Resp2).is_err());
        assert!(check_replies(b"-ERR a\rb\r\n", Protocol::Resp2).is_err());
        assert!(check_replies(b"%1\r\n+a\r\n:1\r\n", Protocol::Resp3).is_ok());
    }
}
