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

    /// Marks every watched key of `db` (or of all databases) as modified (FLUSHDB/FLUSHALL).
    pub fn touch_all(&self, db: Option<usize>) {
        for ((d, _), flags) in self.by_key.iter() {
            if db.is_none_or(|x| x == *d) {
                for f in flags {
                    f.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    pub fn watch(&mut self, db: usize, key: Bytes, flag: &Arc<AtomicBool>) {
        let list = self.by_key.entry((db, Bytes::copy_from_slice(&key))).or_default();
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
