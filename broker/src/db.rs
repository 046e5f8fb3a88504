//! The keyspace: values (strings, and lists that are instrumented queues), numbered
//! databases and their expiry.
//!
//! It knows nothing of commands, clients or scripts: the engine above it adds what must change
//! together with the data (WATCH flags, blocked clients, statistics). No I/O happens here.

use crate::metrics::QueueRegistry;
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

pub type Map<K, V> = HashMap<K, V, ahash::RandomState>;

pub use crate::types::list::List;

#[derive(Debug)]
pub enum Value {
    Str(Bytes),
    List(List),
    Hash(crate::types::hash::Hash),
    Set(crate::types::set::Set),
    /// Boxed: a stream's bookkeeping is larger than the other variants.
    Stream(Box<crate::types::stream::Stream>),
    ZSet(crate::types::zset::ZSet),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::Stream(_) => "stream",
            Value::ZSet(_) => "zset",
        }
    }
}

/// Appends copies of `elements` at one end and records the push; returns the new length.
fn push_items(list: &mut List, end: End, elements: &[Bytes], now_us: u64) -> usize {
    for e in elements {
        match end {
            End::Left => list.items.push_front(e, now_us),
            End::Right => list.items.push_back(e, now_us),
        }
    }
    let len = list.len();
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

/// Every database, and the registry whose counters each list carries.
pub struct Keyspace {
    dbs: Vec<Db>,
    /// Where a new list gets its queue counters.
    pub queues: Arc<QueueRegistry>,
    /// Lazily-expired or actively-expired keys, counted for INFO.
    pub expired_keys: u64,
}

impl std::ops::Index<usize> for Keyspace {
    type Output = Db;

    fn index(&self, db: usize) -> &Db {
        &self.dbs[db]
    }
}

impl std::ops::IndexMut<usize> for Keyspace {
    fn index_mut(&mut self, db: usize) -> &mut Db {
        &mut self.dbs[db]
    }
}

impl Keyspace {
    /// Exchanges the data of two databases (SWAPDB); list counters are the caller's to move.
    pub fn swap_databases(&mut self, a: usize, b: usize) {
        self.dbs.swap(a, b);
    }

    pub fn new(databases: usize, queues: Arc<QueueRegistry>) -> Keyspace {
        Keyspace {
            dbs: (0..databases).map(|_| Db::default()).collect(),
            queues,
            expired_keys: 0,
        }
    }

    /// Number of databases.
    pub fn len(&self) -> usize {
        self.dbs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dbs.is_empty()
    }

    pub fn get(&self, db: usize) -> Option<&Db> {
        self.dbs.get(db)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Db> {
        self.dbs.iter()
    }

    /// The value of `key` in `db` unless it is missing or expired (nothing is deleted: for
    /// readers that must not write, such as the node's and the metrics' listings).
    pub fn live(&self, db: usize, key: &[u8], now_ms: u64) -> Option<&Value> {
        let d = self.dbs.get(db)?;
        if d.is_expired(key, now_ms) {
            return None;
        }
        d.map.get(key)
    }

    /// Deletes `key` if its expiry has passed; true if it did.
    pub fn expire_if_due(&mut self, db: usize, key: &[u8], now_ms: u64) -> bool {
        if !self.dbs[db].is_expired(key, now_ms) {
            return false;
        }
        self.dbs[db].remove(key);
        self.expired_keys += 1;
        true
    }

    /// Removes up to `limit` due keys from each database, telling `expired` about each one;
    /// returns how many were removed.
    pub fn expire_due(&mut self, now_ms: u64, limit: usize, mut expired: impl FnMut(usize, &[u8])) -> usize {
        let mut removed = 0;
        for db in 0..self.dbs.len() {
            for key in self.dbs[db].due(now_ms, limit) {
                self.dbs[db].remove(&key);
                self.expired_keys += 1;
                expired(db, &key);
                removed += 1;
            }
            self.dbs[db].shrink();
        }
        removed
    }

    /// Pushes elements to the list at `key`, creating it (with its queue counters) if absent,
    /// and records the push in its counters. Returns the new length, or `None` if the key holds
    /// another type. The key is hashed once for an existing list.
    pub fn push(
        &mut self,
        db: usize,
        key: &Bytes,
        end: End,
        elements: &[Bytes],
        now_us: u64,
    ) -> Option<usize> {
        let d = &mut self.dbs[db];
        match d.map.get_mut(key.as_ref()) {
            Some(Value::List(list)) => Some(push_items(list, end, elements, now_us)),
            Some(_) => None,
            None => {
                let mut list = List::new(self.queues.counters(db, key));
                let len = push_items(&mut list, end, elements, now_us);
                // Own the key: a slice of the request buffer would pin the whole buffer.
                d.map.insert(Bytes::copy_from_slice(key), Value::List(list));
                Some(len)
            }
        }
    }

    /// Pops up to `count` elements from one end of an existing list, records the pop in its
    /// counters (for `consumer`, if the client is named) and deletes the list once empty.
    /// Returns the popped elements (in pop order) and the length left, or `None` if the key
    /// holds no list.
    pub fn pop(
        &mut self,
        db: usize,
        key: &Bytes,
        end: End,
        count: usize,
        now_us: u64,
        consumer: Option<&str>,
    ) -> Option<(Vec<Bytes>, usize)> {
        let Some(Value::List(list)) = self.dbs[db].map.get_mut(key) else {
            return None;
        };
        let n = count.min(list.len());
        let mut out = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let item = match end {
                End::Left => list.items.pop_front(),
                End::Right => list.items.pop_back(),
            };
            if let Some((data, enq_us)) = item {
                times.push(enq_us);
                out.push(data);
            }
        }
        let len = list.len();
        list.stats
            .record_pop(times.into_iter(), len, list.oldest_us(), now_us, consumer);
        if len == 0 {
            self.dbs[db].remove(key);
        }
        Some((out, len))
    }

    /// Whether `key` holds a non-empty list or sorted set (something a blocked pop can take).
    pub fn has_items(&self, db: usize, key: &[u8]) -> bool {
        match self.dbs[db].map.get(key) {
            Some(Value::List(l)) => !l.is_empty(),
            Some(Value::ZSet(z)) => !z.is_empty(),
            _ => false,
        }
    }

    /// Empties one database (or all) and resets their queue counters.
    pub fn clear(&mut self, db: Option<usize>) {
        match db {
            Some(d) => self.dbs[d].clear(),
            None => self.dbs.iter_mut().for_each(Db::clear),
        }
        self.queues.clear(db);
    }
}
