//! The keyspace: databases, values, expiry, WATCH bookkeeping and blocked-client queues.
//!
//! Everything here runs under the one keyspace lock, so a command, a MULTI/EXEC block or a
//! script sees and changes the data atomically. No I/O happens here.

use crate::metrics::{unix_us, QueueCounters, QueueEvent, QueueRegistry};
use crate::reply::Reply;
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;

pub type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// One list element with the instant it was enqueued (µs since epoch), for time-in-queue.
#[derive(Clone, Debug)]
pub struct Item {
    pub data: Bytes,
    pub enq_us: u64,
}

/// A list value: its elements and the counters of the queue it is.
#[derive(Debug)]
pub struct List {
    pub items: VecDeque<Item>,
    pub stats: Arc<QueueCounters>,
}

impl Drop for List {
    fn drop(&mut self) {
        // The key no longer holds this list: the registry decides whether to remember it.
        self.stats.detach();
    }
}

impl List {
    /// Moves the list to another key's counters (RENAME): the old key is released.
    pub fn retarget(&mut self, stats: Arc<QueueCounters>) {
        let old = std::mem::replace(&mut self.stats, stats);
        old.detach();
    }

    pub fn oldest_us(&self) -> u64 {
        self.items
            .back()
            .map_or(0, |i| i.enq_us)
            .min(self.items.front().map_or(0, |i| i.enq_us))
    }

    /// Publishes the current length after an operation that is neither push nor pop.
    pub fn sync_length(&self) {
        self.stats.record_length(self.items.len(), self.oldest_us());
    }
}

#[derive(Debug)]
pub enum Value {
    Str(Bytes),
    List(List),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
        }
    }
}

/// Appends copies of `elements` at one end and records the push; returns the new length.
fn push_items(list: &mut List, end: End, elements: &[Bytes], now_us: u64) -> usize {
    for e in elements {
        let item = Item {
            data: Bytes::copy_from_slice(e),
            enq_us: now_us,
        };
        match end {
            End::Left => list.items.push_front(item),
            End::Right => list.items.push_back(item),
        }
    }
    let len = list.items.len();
    list.stats
        .record_push(elements.len(), len, list.oldest_us(), now_us / 1000);
    len
}

/// One numbered database.
#[derive(Default)]
pub struct Db {
    pub map: Map<Bytes, Value>,
    /// Absolute expiry (ms since epoch) of keys that have one.
    pub expires: Map<Bytes, u64>,
    /// The same expiries ordered by time, for active expiry.
    expiry_index: BTreeSet<(u64, Bytes)>,
}

impl Db {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn expiry_of(&self, key: &[u8]) -> Option<u64> {
        self.expires.get(key).copied()
    }

    pub fn set_expiry(&mut self, key: &Bytes, at_ms: u64) {
        let key = Bytes::copy_from_slice(key);
        if let Some(old) = self.expires.insert(key.clone(), at_ms) {
            self.expiry_index.remove(&(old, key.clone()));
        }
        self.expiry_index.insert((at_ms, key));
    }

    pub fn clear_expiry(&mut self, key: &[u8]) -> bool {
        if let Some((k, old)) = self.expires.remove_entry(key) {
            self.expiry_index.remove(&(old, k));
            true
        } else {
            false
        }
    }

    /// Removes a key and its expiry; returns the value.
    pub fn remove(&mut self, key: &[u8]) -> Option<Value> {
        let v = self.map.remove(key)?;
        self.clear_expiry(key);
        if let Value::List(l) = &v {
            l.stats.record_length(0, 0);
        }
        Some(v)
    }

    pub fn is_expired(&self, key: &[u8], now_ms: u64) -> bool {
        self.expires.get(key).is_some_and(|&t| t <= now_ms)
    }

    /// Keys whose expiry is due, oldest first, at most `limit`.
    fn due(&self, now_ms: u64, limit: usize) -> Vec<Bytes> {
        self.expiry_index
            .iter()
            .take_while(|(t, _)| *t <= now_ms)
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect()
    }

    pub fn clear(&mut self) {
        for v in self.map.values() {
            if let Value::List(l) = v {
                l.stats.record_length(0, 0);
            }
        }
        self.map = Map::default();
        self.expires = Map::default();
        self.expiry_index.clear();
    }

    /// Gives memory back once most keys are gone, as Redis resizes a sparse dict: the tables
    /// never shrink by themselves. Cheap to call often (it only compares sizes).
    pub fn shrink(&mut self) {
        fn shrink_map<V>(m: &mut Map<Bytes, V>) {
            if m.capacity() > 64 && m.len() < m.capacity() / 8 {
                m.shrink_to(m.len() * 2);
            }
        }
        shrink_map(&mut self.map);
        shrink_map(&mut self.expires);
    }
}

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
}

/// What a blocked client is waiting to do once one of its keys has elements.
#[derive(Clone, Debug)]
pub enum BlockOp {
    /// BLPOP/BRPOP: reply `[key, element]`.
    Pop(End),
    /// BLMOVE/BRPOPLPUSH: move one element, reply with it.
    Move { from: End, to: End, dest: Bytes },
    /// BLMPOP: reply `[key, [elements]]`.
    MPop { from: End, count: usize },
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
    waiters: Map<u64, Waiter>,
    by_key: Map<(usize, Bytes), VecDeque<u64>>,
    ready: Vec<(usize, Bytes)>,
}

impl Blocking {
    pub fn blocked_clients(&self) -> usize {
        self.waiters.len()
    }

    pub fn has_waiters(&self, db: usize, key: &Bytes) -> bool {
        // Checked on every push: avoid cloning the key when nobody waits at all.
        !self.by_key.is_empty() && self.by_key.contains_key(&(db, key.clone()))
    }
}

/// The whole keyspace plus the per-connection bookkeeping that must change atomically with it.
pub struct Store {
    pub dbs: Vec<Db>,
    pub queues: Arc<QueueRegistry>,
    pub blocking: Blocking,
    /// WATCHed keys → dirty flags of the watching clients.
    watches: Map<(usize, Bytes), Vec<Arc<AtomicBool>>>,
    /// Lazily-expired or actively-expired keys, counted for INFO.
    pub expired_keys: u64,
    /// The clock of the command being executed, µs since the Unix epoch. Read once per
    /// command; every timestamp the command writes (enqueue times, metrics) uses it.
    pub now_us: u64,
    /// The Lua interpreter and script cache, created on first use; FLUSHALL leaves it alone.
    pub scripting: Option<Box<crate::scripting::Scripting>>,
    /// Commands executed (INFO `total_commands_processed`).
    pub total_commands: u64,
    /// Per-command statistics, indexed like `commands::COMMANDS` (kept here because every
    /// command already holds this lock: no second lock on the hot path).
    pub command_stats: Vec<crate::state::CommandStat>,
}

impl Store {
    pub fn new(databases: usize, queues: Arc<QueueRegistry>) -> Store {
        Store {
            dbs: (0..databases).map(|_| Db::default()).collect(),
            queues,
            blocking: Blocking::default(),
            watches: Map::default(),
            expired_keys: 0,
            now_us: unix_us(),
            scripting: None,
            total_commands: 0,
            command_stats: vec![Default::default(); crate::commands::COMMANDS.len()],
        }
    }

    /// An empty stand-in (no databases) for the moment a script owns the real keyspace.
    pub fn placeholder(queues: Arc<QueueRegistry>) -> Store {
        Store {
            dbs: Vec::new(),
            queues,
            blocking: Blocking::default(),
            watches: Map::default(),
            expired_keys: 0,
            now_us: 0,
            scripting: None,
            total_commands: 0,
            command_stats: Vec::new(),
        }
    }

    /// Deletes `key` if its expiry has passed. Call before every read or write of a key.
    pub fn expire_if_due(&mut self, db: usize, key: &[u8], now_ms: u64) {
        if self.dbs[db].is_expired(key, now_ms) {
            self.dbs[db].remove(key);
            self.expired_keys += 1;
            self.touch(db, key);
        }
    }

    /// Removes up to `limit` due keys across all databases; returns how many were removed.
    pub fn active_expire(&mut self, now_ms: u64, limit: usize) -> usize {
        let mut removed = 0;
        for db in 0..self.dbs.len() {
            for key in self.dbs[db].due(now_ms, limit) {
                self.dbs[db].remove(&key);
                self.expired_keys += 1;
                self.touch(db, &key);
                removed += 1;
            }
            self.dbs[db].shrink();
        }
        self.queues.sweep();
        removed
    }

    /// Marks a key as modified: invalidates WATCHes on it.
    pub fn touch(&mut self, db: usize, key: &[u8]) {
        if self.watches.is_empty() {
            return;
        }
        if let Some(flags) = self.watches.get(&(db, Bytes::copy_from_slice(key))) {
            for f in flags {
                f.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Marks every watched key of `db` (or of all databases) as modified (FLUSHDB/FLUSHALL).
    pub fn touch_all(&mut self, db: Option<usize>) {
        for ((d, _), flags) in self.watches.iter() {
            if db.is_none_or(|x| x == *d) {
                for f in flags {
                    f.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    pub fn watch(&mut self, db: usize, key: Bytes, flag: &Arc<AtomicBool>) {
        let list = self
            .watches
            .entry((db, Bytes::copy_from_slice(&key)))
            .or_default();
        if !list.iter().any(|f| Arc::ptr_eq(f, flag)) {
            list.push(flag.clone());
        }
    }

    pub fn unwatch(&mut self, keys: &[(usize, Bytes)], flag: &Arc<AtomicBool>) {
        for k in keys {
            if let Some(list) = self.watches.get_mut(k) {
                list.retain(|f| !Arc::ptr_eq(f, flag));
                if list.is_empty() {
                    self.watches.remove(k);
                }
            }
        }
    }

    /// Pushes elements to the list at `key`, creating it (with its queue counters) if absent,
    /// records metrics and readies waiters. Returns the new length, or `None` if the key holds
    /// another type. The key is hashed once for an existing list.
    pub fn push(&mut self, db: usize, key: &Bytes, end: End, elements: &[Bytes]) -> Option<usize> {
        let now = self.now_us;
        let d = &mut self.dbs[db];
        let len = match d.map.get_mut(key.as_ref()) {
            Some(Value::List(list)) => push_items(list, end, elements, now),
            Some(Value::Str(_)) => return None,
            None => {
                let mut list = List {
                    items: VecDeque::with_capacity(elements.len()),
                    stats: self.queues.counters(db, key),
                };
                let len = push_items(&mut list, end, elements, now);
                // Own the key: a slice of the request buffer would pin the whole buffer.
                d.map.insert(Bytes::copy_from_slice(key), Value::List(list));
                len
            }
        };
        self.queues
            .emit_elements(db, key, matches!(end, End::Left), elements);
        self.after_push(db, key, elements.len(), len);
        Some(len)
    }

    /// Bookkeeping after elements were added to the list at `key`.
    pub fn after_push(&mut self, db: usize, key: &Bytes, count: usize, len: usize) {
        self.touch(db, key);
        if self.blocking.has_waiters(db, key) {
            self.blocking.ready.push((db, key.clone()));
        }
        self.queues.emit(|| QueueEvent::Pushed {
            db,
            queue: key.clone(),
            count,
            length: len,
        });
    }

    /// Pops up to `count` elements from one end of an existing list; deletes it when emptied.
    /// Returns the popped elements (in pop order) or `None` if the key holds no list.
    pub fn pop(
        &mut self,
        db: usize,
        key: &Bytes,
        end: End,
        count: usize,
        client: u64,
        consumer: Option<&str>,
    ) -> Option<Vec<Bytes>> {
        let Some(Value::List(list)) = self.dbs[db].map.get_mut(key) else {
            return None;
        };
        let n = count.min(list.items.len());
        let mut out = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let item = match end {
                End::Left => list.items.pop_front(),
                End::Right => list.items.pop_back(),
            };
            if let Some(item) = item {
                times.push(item.enq_us);
                out.push(item.data);
            }
        }
        let len = list.items.len();
        list.stats
            .record_pop(times.into_iter(), len, list.oldest_us(), self.now_us, consumer);
        if len == 0 {
            self.dbs[db].remove(key);
        }
        self.touch(db, key);
        self.queues.emit(|| QueueEvent::Popped {
            db,
            queue: key.clone(),
            count: out.len(),
            length: len,
            client,
        });
        Some(out)
    }

    /// Registers a blocked client; returns its waiter id.
    pub fn block(&mut self, waiter: Waiter) -> u64 {
        let b = &mut self.blocking;
        b.next_id += 1;
        let id = b.next_id;
        for k in &waiter.keys {
            b.by_key.entry((waiter.db, k.clone())).or_default().push_back(id);
            self.queues.counters(waiter.db, k).blocked_delta(1);
        }
        let (client, keys) = (waiter.client, waiter.keys.clone());
        b.waiters.insert(id, waiter);
        self.queues.emit(|| QueueEvent::Blocked { client, queues: keys });
        id
    }

    /// Removes a waiter (timeout, disconnect, kill). False if it was already served.
    pub fn unblock(&mut self, id: u64) -> bool {
        match self.take_waiter(id) {
            Some(w) => {
                self.queues.emit(|| QueueEvent::Unblocked { client: w.client });
                true
            }
            None => false,
        }
    }

    fn take_waiter(&mut self, id: u64) -> Option<Waiter> {
        let b = &mut self.blocking;
        let w = b.waiters.remove(&id)?;
        for k in &w.keys {
            let slot = (w.db, k.clone());
            if let Some(q) = b.by_key.get_mut(&slot) {
                q.retain(|&x| x != id);
                if q.is_empty() {
                    b.by_key.remove(&slot);
                }
            }
            let counters = self.queues.counters(w.db, k);
            counters.blocked_delta(-1);
            // Nothing may hold the key any more (a pop that timed out on a missing key).
            counters.detach();
        }
        Some(w)
    }

    /// Serves blocked clients whose keys received elements, first come first served.
    /// Runs after every command (and after EXEC or a script as a whole).
    pub fn serve_ready(&mut self) {
        while let Some((db, key)) = self.blocking.ready.pop() {
            loop {
                let has_items =
                    matches!(self.dbs[db].map.get(&key), Some(Value::List(l)) if !l.items.is_empty());
                if !has_items {
                    break;
                }
                let Some(&id) = self
                    .blocking
                    .by_key
                    .get(&(db, key.clone()))
                    .and_then(|q| q.front())
                else {
                    break;
                };
                let Some(w) = self.take_waiter(id) else { break };
                if w.tx.is_closed() {
                    // The client went away while blocked: it consumes nothing.
                    continue;
                }
                let reply = self.serve_one(db, &key, &w);
                self.queues.emit(|| QueueEvent::Unblocked { client: w.client });
                let _ = w.tx.send(reply);
            }
        }
        self.queues.sweep();
    }

    fn serve_one(&mut self, db: usize, key: &Bytes, w: &Waiter) -> Reply {
        let name = w.client_name.as_deref();
        match &w.op {
            BlockOp::Pop(end) => {
                let mut v = self.pop(db, key, *end, 1, w.client, name).unwrap_or_default();
                match v.pop() {
                    Some(e) => Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(e)]),
                    None => Reply::NullArray,
                }
            }
            BlockOp::MPop { from, count } => {
                let v = self
                    .pop(db, key, *from, *count, w.client, name)
                    .unwrap_or_default();
                Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    Reply::Array(v.into_iter().map(Reply::Bulk).collect()),
                ])
            }
            BlockOp::Move { from, to, dest } => {
                if matches!(self.dbs[db].map.get(dest), Some(Value::Str(_))) {
                    // Redis answers the waiter with the type error and leaves the source alone.
                    return Reply::error(crate::reply::msg::WRONGTYPE);
                }
                let mut v = self.pop(db, key, *from, 1, w.client, name).unwrap_or_default();
                match v.pop() {
                    Some(e) => {
                        self.push(db, dest, *to, std::slice::from_ref(&e));
                        Reply::Bulk(e)
                    }
                    None => Reply::Null,
                }
            }
        }
    }

    /// Empties one database (or all) and resets their queue counters.
    pub fn flush(&mut self, db: Option<usize>) {
        self.touch_all(db);
        match db {
            Some(d) => self.dbs[d].clear(),
            None => self.dbs.iter_mut().for_each(Db::clear),
        }
        self.queues.clear(db);
    }
}
