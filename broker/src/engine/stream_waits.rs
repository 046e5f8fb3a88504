//! Serving clients blocked in XREAD/XREADGROUP once a stream they wait on changes.

use super::blocking::BlockOp;
use super::Engine;
use crate::db::Value;
use crate::metrics::QueueEvent;
use crate::reply::{msg, Reply};
use crate::types::stream::{entry_reply, read_reply, StreamId, StreamWait};
use bytes::Bytes;

impl Engine {
    /// A stream at `key` received entries or lost a group: its blocked readers get a look.
    pub fn stream_changed(&mut self, db: usize, key: &Bytes) {
        if self.blocking.has_waiters(db, key) {
            self.blocking.ready.push((db, key.clone()));
        }
    }

    /// Serves the clients blocked on `key` in XREAD/XREADGROUP that its stream can now
    /// answer, oldest first. False if `key` holds no stream (the list waiters' turn): then
    /// XREADGROUP's clients are told the stream is gone, XREAD's keep waiting, as in Redis.
    pub(super) fn serve_stream_waiters(&mut self, db: usize, key: &Bytes) -> bool {
        if !matches!(self.keyspace[db].map.get(key), Some(Value::Stream(_))) {
            self.unblock_group_readers(db, key);
            return false;
        }
        let queued: Vec<u64> = self
            .blocking
            .by_key
            .get(&(db, key.clone()))
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default();
        for id in queued {
            let Some(w) = self.blocking.waiters.get(&id) else {
                continue;
            };
            let BlockOp::Stream(wait) = &w.op else { continue };
            let Some(index) = w.keys.iter().position(|k| k == key) else {
                continue;
            };
            if w.tx.is_closed() {
                // Gone while blocked: it reads nothing (a group read would deliver entries
                // nobody receives).
                self.take_waiter(id);
                continue;
            }
            let wait = wait.clone();
            let Some(reply) = self.read_for_waiter(db, key, index, &wait) else {
                continue;
            };
            let Some(w) = self.take_waiter(id) else { continue };
            self.keyspace
                .queues
                .emit(|| QueueEvent::Unblocked { client: w.client });
            let _ = w.tx.send(reply);
        }
        true
    }

    /// Answers the clients blocked in XREADGROUP on `key`, which no longer holds a stream.
    fn unblock_group_readers(&mut self, db: usize, key: &Bytes) {
        let queued: Vec<u64> = match self.blocking.by_key.get(&(db, key.clone())) {
            Some(q) => q.iter().copied().collect(),
            None => return,
        };
        for id in queued {
            let group_read = self
                .blocking
                .waiters
                .get(&id)
                .is_some_and(|w| super::blocking::is_group_read(&w.op));
            if !group_read {
                continue;
            }
            if let Some(w) = self.take_waiter(id) {
                self.keyspace
                    .queues
                    .emit(|| QueueEvent::Unblocked { client: w.client });
                let _ = w.tx.send(Reply::error(msg::XREADGROUP_STREAM_GONE));
            }
        }
    }

    /// The reply for a waiter if the stream at `key` (its `index`th key) has something for
    /// it; group reads take effect here and are logged as Redis propagates them.
    fn read_for_waiter(&mut self, db: usize, key: &Bytes, index: usize, wait: &StreamWait) -> Option<Reply> {
        let now_ms = self.now_us / 1000;
        let Some(Value::Stream(s)) = self.keyspace[db].map.get_mut(key) else {
            return None;
        };
        let take = if wait.count == 0 { usize::MAX } else { wait.count };
        match &wait.group {
            None => {
                let from = wait.after.get(index)?.next()?;
                let entries: Vec<Reply> = s
                    .range(from, StreamId::MAX)
                    .take(take)
                    .map(|(id, f)| entry_reply(id, f))
                    .collect();
                (!entries.is_empty()).then(|| read_reply(wait.resp3, vec![(key.clone(), entries)]))
            }
            Some(read) => {
                if !s.groups.contains_key(&read.group) {
                    return Some(Reply::error(msg::XREADGROUP_GROUP_GONE));
                }
                if !s.group_has_new(&read.group) {
                    return None;
                }
                let (entries, effects) = s.read_group(key, read, now_ms)?;
                self.touch(db, key);
                for c in &effects {
                    self.log(db, c);
                }
                Some(read_reply(wait.resp3, vec![(key.clone(), entries)]))
            }
        }
    }
}
