//! WATCH bookkeeping: which clients watch which keys, and the dirty flags a change sets.

use crate::db::Map;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// WATCHed keys → dirty flags of the watching clients.
#[derive(Default)]
pub struct Watches {
    by_key: Map<(usize, Bytes), Vec<Arc<AtomicBool>>>,
}

impl Watches {
    /// Marks a key as modified: invalidates WATCHes on it.
    pub fn touch(&self, db: usize, key: &[u8]) {
        if self.by_key.is_empty() {
            return;
        }
        if let Some(flags) = self.by_key.get(&(db, Bytes::copy_from_slice(key))) {
            for f in flags {
                f.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Marks the watched keys of `db` (or of all databases) that `exists` says hold a value
    /// as modified (FLUSHDB/FLUSHALL, called before the data goes). A watched key that was
    /// absent is not changed by a flush, so its transaction may still run, as in Redis.
    pub fn touch_all(&self, db: Option<usize>, exists: impl Fn(usize, &[u8]) -> bool) {
        for ((d, key), flags) in self.by_key.iter() {
            if db.is_none_or(|x| x == *d) && exists(*d, key) {
                for f in flags {
                    f.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    pub fn watch(&mut self, db: usize, key: Bytes, flag: &Arc<AtomicBool>) {
        let list = self.by_key.entry((db, Bytes::copy_from_slice(&key))).or_default();
        // A flag only this registry still holds belongs to a client that let go of its
        // watches without the lock (DISCARD or EXEC during a busy script): drop it here.
        list.retain(|f| Arc::strong_count(f) > 1);
        if !list.iter().any(|f| Arc::ptr_eq(f, flag)) {
            list.push(flag.clone());
        }
    }

    pub fn unwatch(&mut self, keys: &[(usize, Bytes)], flag: &Arc<AtomicBool>) {
        for k in keys {
            if let Some(list) = self.by_key.get_mut(k) {
                list.retain(|f| !Arc::ptr_eq(f, flag));
                if list.is_empty() {
                    self.by_key.remove(k);
                }
            }
        }
    }
}
