//! Blocked clients: per-key FIFO queues of waiters, and serving them once a push readies a key.

use super::{Engine, EventClass};
use crate::db::{End, Map, Value};
use crate::metrics::QueueEvent;
use crate::reply::{msg, Reply};
use bytes::Bytes;
use std::collections::VecDeque;
use tokio::sync::oneshot;

/// What a blocked client is waiting to do once one of its keys has elements.
#[derive(Clone, Debug)]
pub enum BlockOp {
    /// BLPOP/BRPOP: reply `[key, element]`.
    Pop(End),
    /// BLMOVE/BRPOPLPUSH: move one element, reply with it.
    Move { from: End, to: End, dest: Bytes },
    /// BLMPOP: reply `[key, [elements]]`.
    MPop { from: End, count: usize },
    /// XREAD/XREADGROUP: new entries of a stream (served in `stream_waits.rs`).
    Stream(Box<crate::types::stream::StreamWait>),
    /// BZPOPMIN/BZPOPMAX: reply `[key, member, score]`.
    ZPop { max: bool },
    /// BZMPOP: reply `[key, [[member, score], ...]]`.
    ZMPop { max: bool, count: usize },
    /// WAIT for replicas: there are none, so nothing serves it; it ends with its timeout
    /// (answered 0) or CLIENT UNBLOCK.
    Wait,
}

impl BlockOp {
    /// Whether this operation can be served from `value` (Redis serves a waiter only from a
    /// key of the type it blocked for; the others stay blocked).
    fn serves_from(&self, value: Option<&Value>) -> bool {
        match (self, value) {
            (BlockOp::ZPop { .. } | BlockOp::ZMPop { .. }, Some(Value::ZSet(z))) => !z.is_empty(),
            (BlockOp::Pop(_) | BlockOp::Move { .. } | BlockOp::MPop { .. }, Some(Value::List(l))) => {
                !l.items.is_empty()
            }
            _ => false,
        }
    }
}

/// A client blocked on one or more list keys.
pub struct Waiter {
    pub client: u64,
    pub client_name: Option<String>,
    pub db: usize,
    pub keys: Vec<Bytes>,
    pub op: BlockOp,
    pub tx: oneshot::Sender<Reply>,
}

/// Blocked clients by key, in arrival order, plus the keys that became ready.
#[derive(Default)]
pub struct Blocking {
    next_id: u64,
    pub(super) waiters: Map<u64, Waiter>,
    pub(super) by_key: Map<(usize, Bytes), VecDeque<u64>>,
    pub(super) ready: Vec<(usize, Bytes)>,
    /// Waiters blocked in XREADGROUP (so that writes check for them only when there are).
    group_readers: usize,
}

pub(super) fn is_group_read(op: &BlockOp) -> bool {
    matches!(op, BlockOp::Stream(wait) if wait.group.is_some())
}

impl Blocking {
    pub fn blocked_clients(&self) -> usize {
        self.waiters.len()
    }

    /// Whether a client is blocked in XREADGROUP on `key` (it must learn when the stream goes).
    pub(super) fn has_group_readers(&self, db: usize, key: &[u8]) -> bool {
        if self.group_readers == 0 {
            return false;
        }
        let Some(ids) = self.by_key.get(&(db, Bytes::copy_from_slice(key))) else {
            return false;
        };
        ids.iter()
            .any(|id| self.waiters.get(id).is_some_and(|w| is_group_read(&w.op)))
    }

    /// The keys of `db` (or of every database) clients are blocked in XREADGROUP on.
    pub(super) fn group_read_keys(&self, db: Option<usize>) -> Vec<(usize, Bytes)> {
        if self.group_readers == 0 {
            return Vec::new();
        }
        self.by_key
            .keys()
            .filter(|(d, k)| db.is_none_or(|x| x == *d) && self.has_group_readers(*d, k))
            .cloned()
            .collect()
    }

    pub fn has_waiters(&self, db: usize, key: &Bytes) -> bool {
        // Checked on every push: avoid cloning the key when nobody waits at all.
        !self.by_key.is_empty() && self.by_key.contains_key(&(db, key.clone()))
    }
}

impl Engine {
    /// Registers a blocked client; returns its waiter id.
    pub fn block(&mut self, waiter: Waiter) -> u64 {
        let b = &mut self.blocking;
        b.next_id += 1;
        let id = b.next_id;
        let queues = &self.keyspace.queues;
        for k in &waiter.keys {
            b.by_key.entry((waiter.db, k.clone())).or_default().push_back(id);
            queues.counters(waiter.db, k).blocked_delta(1);
        }
        let (client, keys) = (waiter.client, waiter.keys.clone());
        b.group_readers += usize::from(is_group_read(&waiter.op));
        b.waiters.insert(id, waiter);
        queues.emit(|| QueueEvent::Blocked { client, queues: keys });
        id
    }

    /// Removes a waiter (timeout, disconnect, kill). False if it was already served.
    pub fn unblock(&mut self, id: u64) -> bool {
        match self.take_waiter(id) {
            Some(w) => {
                self.keyspace
                    .queues
                    .emit(|| QueueEvent::Unblocked { client: w.client });
                true
            }
            None => false,
        }
    }

    /// Ends a client's block with `reply` (CLIENT UNBLOCK); false if it is not blocked.
    pub fn unblock_client(&mut self, client: u64, reply: Reply) -> bool {
        let found = self.blocking.waiters.iter().find(|(_, w)| w.client == client);
        let Some(id) = found.map(|(id, _)| *id) else {
            return false;
        };
        let Some(w) = self.take_waiter(id) else {
            return false;
        };
        self.keyspace
            .queues
            .emit(|| QueueEvent::Unblocked { client: w.client });
        // A WAIT ended as if timed out counts the replicas that acknowledged: none.
        let reply = match (&w.op, reply) {
            (BlockOp::Wait, Reply::NullArray) => Reply::Int(0),
            (_, r) => r,
        };
        // The connection may be gone already: then there is nobody to tell.
        let _ = w.tx.send(reply);
        true
    }

    pub(super) fn take_waiter(&mut self, id: u64) -> Option<Waiter> {
        let b = &mut self.blocking;
        let w = b.waiters.remove(&id)?;
        b.group_readers -= usize::from(is_group_read(&w.op));
        for k in &w.keys {
            let slot = (w.db, k.clone());
            if let Some(q) = b.by_key.get_mut(&slot) {
                q.retain(|&x| x != id);
                if q.is_empty() {
                    b.by_key.remove(&slot);
                }
            }
            let counters = self.keyspace.queues.counters(w.db, k);
            counters.blocked_delta(-1);
            // Nothing may hold the key any more (a pop that timed out on a missing key).
            counters.detach();
        }
        Some(w)
    }

    /// Serves blocked clients whose keys received elements, first come first served.
    /// Runs after every command (and after EXEC or a script as a whole).
    pub fn serve_ready(&mut self) {
        // Keys are served in the order they became ready, as Redis does: after a transaction
        // that pushed to two keys, a client blocked on both gets the key pushed first. Serving
        // can ready more keys (BLMOVE pushes), so drain in rounds until nothing is left.
        while !self.blocking.ready.is_empty() {
            let round = std::mem::take(&mut self.blocking.ready);
            for (db, key) in round {
                if !self.serve_stream_waiters(db, &key) {
                    self.serve_key(db, key);
                }
            }
        }
        self.keyspace.queues.sweep();
    }

    /// Serves the waiters of one ready key, oldest first, while it has elements.
    fn serve_key(&mut self, db: usize, key: Bytes) {
        loop {
            if !self.keyspace.has_items(db, &key) {
                break;
            }
            // The oldest waiter that this key's type can serve (clients blocked in XREAD on a
            // key that now holds a list, or in BLPOP on a sorted set, keep waiting).
            let value = self.keyspace[db].map.get(&key);
            let waiters = &self.blocking.waiters;
            let Some(&id) = self.blocking.by_key.get(&(db, key.clone())).and_then(|q| {
                q.iter()
                    .find(|id| waiters.get(id).is_some_and(|w| w.op.serves_from(value)))
            }) else {
                break;
            };
            let Some(w) = self.take_waiter(id) else { break };
            if w.tx.is_closed() {
                // The client went away while blocked: it consumes nothing.
                continue;
            }
            let reply = self.serve_one(db, &key, &w);
            self.keyspace
                .queues
                .emit(|| QueueEvent::Unblocked { client: w.client });
            let _ = w.tx.send(reply);
        }
    }

    fn serve_one(&mut self, db: usize, key: &Bytes, w: &Waiter) -> Reply {
        let name = w.client_name.as_deref();
        match &w.op {
            BlockOp::Pop(end) => {
                let mut v = self.pop(db, key, *end, 1, w.client, name).unwrap_or_default();
                if !v.is_empty() {
                    self.log(db, &[pop_name(*end), &key[..]]);
                }
                match v.pop() {
                    Some(e) => Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(e)]),
                    None => Reply::NullArray,
                }
            }
            BlockOp::MPop { from, count } => {
                let v = self
                    .pop(db, key, *from, *count, w.client, name)
                    .unwrap_or_default();
                if !v.is_empty() {
                    let n = itoa::Buffer::new().format(v.len()).as_bytes().to_vec();
                    self.log(db, &[pop_name(*from), &key[..], &n[..]]);
                }
                Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    Reply::Array(v.into_iter().map(Reply::Bulk).collect()),
                ])
            }
            BlockOp::ZPop { max } => {
                let mut v = self.zpop(db, key, *max, 1);
                self.log_zpop(db, key, *max, v.len());
                match v.pop() {
                    Some((m, s)) => {
                        Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(m), Reply::Double(s)])
                    }
                    None => Reply::NullArray,
                }
            }
            BlockOp::ZMPop { max, count } => {
                let v = self.zpop(db, key, *max, *count);
                self.log_zpop(db, key, *max, v.len());
                Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    Reply::Array(
                        v.into_iter()
                            .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                            .collect(),
                    ),
                ])
            }
            BlockOp::Move { from, to, dest } => {
                if !matches!(self.keyspace[db].map.get(dest), None | Some(Value::List(_))) {
                    // Redis answers the waiter with the type error and leaves the source alone.
                    return Reply::error(msg::WRONGTYPE);
                }
                match self.move_element(db, key, dest, *from, *to, w.client, name) {
                    Some(e) => {
                        self.log(
                            db,
                            &[&b"LMOVE"[..], &key[..], &dest[..], end_name(*from), end_name(*to)],
                        );
                        Reply::Bulk(e)
                    }
                    None => Reply::Null,
                }
            }
            // Never chosen above: stream waiters are served by `serve_stream_waiters`.
            BlockOp::Stream(_) => Reply::NullArray,
            // Waits on no key, so never chosen.
            BlockOp::Wait => Reply::Int(0),
        }
    }
}

impl Engine {
    /// Readies the waiters blocked on `key` after a write that gave it members (sorted sets:
    /// lists do this in [`Engine::after_push`]).
    pub fn signal_key_ready(&mut self, db: usize, key: &Bytes) {
        if self.blocking.has_waiters(db, key) {
            self.blocking.ready.push((db, key.clone()));
        }
    }

    /// Pops up to `count` lowest (or highest, `max`) members of the sorted set at `key`, in
    /// pop order; deletes the key once empty, invalidates WATCHes and reports `zpopmin` /
    /// `zpopmax` (then `del`). Empty if the key holds no sorted set.
    pub fn zpop(&mut self, db: usize, key: &Bytes, max: bool, count: usize) -> Vec<(Bytes, f64)> {
        let Some(Value::ZSet(z)) = self.keyspace[db].map.get_mut(key) else {
            return Vec::new();
        };
        let n = count.min(z.len());
        let popped = if max {
            let len = z.len();
            let mut v = z.remove_range(len - n, len);
            v.reverse();
            v
        } else {
            z.remove_range(0, n)
        };
        let empty = z.is_empty();
        if popped.is_empty() {
            return popped;
        }
        if empty {
            self.keyspace[db].remove(key);
        }
        self.touch(db, key);
        self.notify(EventClass::ZSet, if max { "zpopmax" } else { "zpopmin" }, db, key);
        if empty {
            self.notify(EventClass::Generic, "del", db, key);
        }
        popped
    }

    /// Logs a pop made for a blocked client as its effect: `ZPOPMIN key count`.
    fn log_zpop(&mut self, db: usize, key: &Bytes, max: bool, count: usize) {
        if count > 0 {
            let name: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
            let n = itoa::Buffer::new().format(count).as_bytes().to_vec();
            self.log(db, &[name, &key[..], &n[..]]);
        }
    }
}

/// The pop command a served waiter's pop is logged as.
fn pop_name(end: End) -> &'static [u8] {
    match end {
        End::Left => b"LPOP",
        End::Right => b"RPOP",
    }
}

/// LMOVE's name for a list end.
fn end_name(end: End) -> &'static [u8] {
    match end {
        End::Left => b"LEFT",
        End::Right => b"RIGHT",
    }
}
