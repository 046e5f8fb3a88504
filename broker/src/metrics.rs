//! Per-queue metrics kept on the command path, their snapshots, and the event hook trait.
//!
//! Every list key is a queue. Its counters live in a [`QueueCounters`] shared by the list value
//! (so the hot path touches no map) and by the [`QueueRegistry`] (so readers never take the
//! keyspace lock). Counters survive the list emptying and being recreated; only FLUSHDB,
//! FLUSHALL or `QSTATS RESET` clear them.

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Number of histogram buckets; bucket `i` holds waits in `[2^(i-1), 2^i)` microseconds.
const BUCKETS: usize = 40;

/// Wall-clock milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Wall-clock microseconds since the Unix epoch.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Live counters of one queue. Written under the keyspace lock, read lock-free.
#[derive(Debug)]
pub struct QueueCounters {
    pushed_total: AtomicU64,
    popped_total: AtomicU64,
    length: AtomicI64,
    /// Enqueue time (µs since epoch) of the oldest element, 0 when empty.
    oldest_enqueue_us: AtomicU64,
    last_push_ms: AtomicU64,
    last_pop_ms: AtomicU64,
    blocked_clients: AtomicI64,
    wait_count: AtomicU64,
    wait_sum_us: AtomicU64,
    /// Largest recorded wait: quantile estimates never exceed it.
    wait_max_us: AtomicU64,
    wait_buckets: [AtomicU64; BUCKETS],
    /// Names of connections that popped from this queue, with their last pop (ms since epoch).
    consumers: Mutex<HashMap<String, u64>>,
    /// When these counters were created (ms since epoch).
    created_ms: AtomicU64,
}

impl Default for QueueCounters {
    fn default() -> Self {
        QueueCounters {
            pushed_total: AtomicU64::new(0),
            popped_total: AtomicU64::new(0),
            length: AtomicI64::new(0),
            oldest_enqueue_us: AtomicU64::new(0),
            last_push_ms: AtomicU64::new(0),
            last_pop_ms: AtomicU64::new(0),
            blocked_clients: AtomicI64::new(0),
            wait_count: AtomicU64::new(0),
            wait_sum_us: AtomicU64::new(0),
            wait_max_us: AtomicU64::new(0),
            wait_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            consumers: Mutex::new(HashMap::new()),
            created_ms: AtomicU64::new(unix_ms()),
        }
    }
}

/// Counters of a key that no longer exists and has seen no push, pop or blocked client for this
/// long are dropped, so that one-off keys (a pod's processing list, named after a pod that is
/// gone) do not accumulate in INFO, QSTATS and `/metrics` forever. A key used again later starts
/// from zero, which Prometheus reads as a counter reset.
pub const IDLE_QUEUE_FORGET_MS: u64 = 10 * 60 * 1000;

impl QueueCounters {
    pub(crate) fn record_push(&self, n: usize, len: usize, oldest_us: u64, now_ms: u64) {
        self.pushed_total.fetch_add(n as u64, Relaxed);
        self.length.store(len as i64, Relaxed);
        self.oldest_enqueue_us.store(oldest_us, Relaxed);
        self.last_push_ms.store(now_ms, Relaxed);
    }

    /// Records popped elements given their enqueue times.
    pub(crate) fn record_pop(
        &self,
        enqueued_us: impl Iterator<Item = u64>,
        len: usize,
        oldest_us: u64,
        now_us: u64,
        consumer: Option<&str>,
    ) {
        let mut n = 0u64;
        let mut sum = 0u64;
        let mut max = 0u64;
        for t in enqueued_us {
            let wait = now_us.saturating_sub(t);
            n += 1;
            sum += wait;
            max = max.max(wait);
            self.wait_buckets[bucket_of(wait)].fetch_add(1, Relaxed);
        }
        self.popped_total.fetch_add(n, Relaxed);
        self.wait_count.fetch_add(n, Relaxed);
        self.wait_sum_us.fetch_add(sum, Relaxed);
        self.wait_max_us.fetch_max(max, Relaxed);
        self.length.store(len as i64, Relaxed);
        self.oldest_enqueue_us.store(oldest_us, Relaxed);
        let now_ms = now_us / 1000;
        self.last_pop_ms.store(now_ms, Relaxed);
        if let Some(name) = consumer {
            let mut consumers = self.consumers.lock();
            match consumers.get_mut(name) {
                Some(t) => *t = now_ms,
                None => {
                    consumers.insert(name.to_owned(), now_ms);
                }
            }
        }
    }

    /// Records a length change that is neither a push nor a pop (LREM, LTRIM, LSET, DEL...).
    pub(crate) fn record_length(&self, len: usize, oldest_us: u64) {
        self.length.store(len as i64, Relaxed);
        self.oldest_enqueue_us.store(oldest_us, Relaxed);
    }

    pub(crate) fn blocked_delta(&self, delta: i64) {
        self.blocked_clients.fetch_add(delta, Relaxed);
    }

    fn reset(&self) {
        self.pushed_total.store(0, Relaxed);
        self.popped_total.store(0, Relaxed);
        self.last_push_ms.store(0, Relaxed);
        self.last_pop_ms.store(0, Relaxed);
        self.wait_count.store(0, Relaxed);
        self.wait_sum_us.store(0, Relaxed);
        self.wait_max_us.store(0, Relaxed);
        for b in &self.wait_buckets {
            b.store(0, Relaxed);
        }
        self.consumers.lock().clear();
    }

    /// A consistent-enough copy of the counters (each field is read atomically).
    pub fn snapshot(&self, name: &Bytes, db: usize) -> QueueStats {
        let buckets: Vec<u64> = self.wait_buckets.iter().map(|b| b.load(Relaxed)).collect();
        let count = self.wait_count.load(Relaxed);
        let sum = self.wait_sum_us.load(Relaxed);
        let oldest = self.oldest_enqueue_us.load(Relaxed);
        let max_ms = self.wait_max_us.load(Relaxed) as f64 / 1000.0;
        let now = unix_us();
        let mut consumers: Vec<String> = self.consumers.lock().keys().cloned().collect();
        consumers.sort();
        QueueStats {
            name: name.clone(),
            db,
            pushed_total: self.pushed_total.load(Relaxed),
            popped_total: self.popped_total.load(Relaxed),
            length: self.length.load(Relaxed).max(0) as u64,
            oldest_age_ms: if oldest == 0 {
                0.0
            } else {
                now.saturating_sub(oldest) as f64 / 1000.0
            },
            wait_count: count,
            wait_mean_ms: if count == 0 {
                0.0
            } else {
                sum as f64 / count as f64 / 1000.0
            },
            wait_p50_ms: quantile(&buckets, count, 0.50).min(max_ms),
            wait_p99_ms: quantile(&buckets, count, 0.99).min(max_ms),
            blocked_clients: self.blocked_clients.load(Relaxed).max(0) as u64,
            last_push_ms: self.last_push_ms.load(Relaxed),
            last_pop_ms: self.last_pop_ms.load(Relaxed),
            consumers,
        }
    }
}

fn bucket_of(wait_us: u64) -> usize {
    ((64 - wait_us.leading_zeros()) as usize).min(BUCKETS - 1)
}

/// Estimates a quantile (ms) from log2 buckets, interpolating inside the bucket.
fn quantile(buckets: &[u64], count: u64, q: f64) -> f64 {
    if count == 0 {
        return 0.0;
    }
    let target = (q * count as f64).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if seen + n >= target {
            let (lo, hi) = if i == 0 {
                (0.0, 1.0)
            } else {
                ((1u64 << (i - 1)) as f64, (1u64 << i) as f64)
            };
            let frac = (target - seen) as f64 / n as f64;
            return (lo + (hi - lo) * frac) / 1000.0;
        }
        seen += n;
    }
    0.0
}

/// A point-in-time view of one queue, as returned by `QSTATS` and the in-process API.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueStats {
    pub name: Bytes,
    pub db: usize,
    /// Elements pushed since the counters were created or reset.
    pub pushed_total: u64,
    /// Elements popped (by any pop or move) since creation or reset.
    pub popped_total: u64,
    /// Current length.
    pub length: u64,
    /// Age of the oldest element in milliseconds, 0 when empty.
    pub oldest_age_ms: f64,
    /// Number of popped elements whose time in queue was recorded.
    pub wait_count: u64,
    /// Mean time in queue of popped elements, milliseconds.
    pub wait_mean_ms: f64,
    /// Median time in queue (histogram estimate, within a factor of 2 bucket), milliseconds.
    pub wait_p50_ms: f64,
    /// 99th percentile time in queue (histogram estimate), milliseconds.
    pub wait_p99_ms: f64,
    /// Clients currently blocked waiting on this queue.
    pub blocked_clients: u64,
    /// Last push, ms since the Unix epoch (0 = never).
    pub last_push_ms: u64,
    /// Last pop, ms since the Unix epoch (0 = never).
    pub last_pop_ms: u64,
    /// Names (`CLIENT SETNAME`) of connections that popped from this queue.
    pub consumers: Vec<String>,
}

impl QueueStats {
    /// The fields as `(name, value)` text pairs, in a stable order (used by INFO and QSTATS).
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("length", self.length.to_string()),
            ("pushed_total", self.pushed_total.to_string()),
            ("popped_total", self.popped_total.to_string()),
            ("oldest_age_ms", format!("{:.3}", self.oldest_age_ms)),
            ("wait_count", self.wait_count.to_string()),
            ("wait_mean_ms", format!("{:.3}", self.wait_mean_ms)),
            ("wait_p50_ms", format!("{:.3}", self.wait_p50_ms)),
            ("wait_p99_ms", format!("{:.3}", self.wait_p99_ms)),
            ("blocked_clients", self.blocked_clients.to_string()),
            ("last_push_ms", self.last_push_ms.to_string()),
            ("last_pop_ms", self.last_pop_ms.to_string()),
            ("consumers", self.consumers.join(",")),
        ]
    }
}

/// An event delivered to registered [`QueueHook`]s.
#[derive(Clone, Debug, PartialEq)]
pub enum QueueEvent {
    Pushed {
        db: usize,
        queue: Bytes,
        count: usize,
        length: usize,
    },
    Popped {
        db: usize,
        queue: Bytes,
        count: usize,
        length: usize,
        client: u64,
    },
    Blocked {
        client: u64,
        queues: Vec<Bytes>,
    },
    Unblocked {
        client: u64,
    },
    Connected {
        client: u64,
        addr: String,
    },
    Disconnected {
        client: u64,
        name: Option<String>,
    },
    NameSet {
        client: u64,
        name: String,
    },
}

/// In-process subscriber to queue and connection events.
///
/// Hooks run synchronously on the command path while the keyspace lock is held: keep them
/// short and non-blocking (update an atomic, `try_send` on a channel).
pub trait QueueHook: Send + Sync {
    fn on_event(&self, event: &QueueEvent);
}

/// All queues' counters, by database and key, plus the registered hooks.
#[derive(Default)]
pub struct QueueRegistry {
    queues: DashMap<(usize, Bytes), Arc<QueueCounters>, ahash::RandomState>,
    hooks: RwLock<Vec<Arc<dyn QueueHook>>>,
    has_hooks: AtomicBool,
}

impl QueueRegistry {
    /// The counters of `key`, created on first use.
    pub(crate) fn counters(&self, db: usize, key: &Bytes) -> Arc<QueueCounters> {
        if let Some(c) = self.queues.get(&(db, key.clone())) {
            return c.clone();
        }
        self.queues
            .entry((db, Bytes::copy_from_slice(key)))
            .or_default()
            .clone()
    }

    /// A snapshot of every queue, sorted by database then name.
    pub fn snapshot(&self) -> Vec<QueueStats> {
        let mut all: Vec<QueueStats> = self
            .queues
            .iter()
            .map(|e| e.value().snapshot(&e.key().1, e.key().0))
            .collect();
        all.sort_by(|a, b| (a.db, &a.name).cmp(&(b.db, &b.name)));
        all
    }

    /// A snapshot of one queue, if it has ever been used.
    pub fn queue(&self, db: usize, key: &[u8]) -> Option<QueueStats> {
        let key = Bytes::copy_from_slice(key);
        self.queues.get(&(db, key.clone())).map(|c| c.snapshot(&key, db))
    }

    /// Clears the counters of one database's queues (FLUSHDB), or all (FLUSHALL).
    pub(crate) fn clear(&self, db: Option<usize>) {
        match db {
            None => self.queues.iter().for_each(|e| e.value().reset()),
            Some(d) => self
                .queues
                .iter()
                .filter(|e| e.key().0 == d)
                .for_each(|e| e.value().reset()),
        }
    }

    /// Resets the cumulative counters of the given queues (`QSTATS RESET`).
    pub(crate) fn reset(&self, db: usize, keys: &[Bytes]) {
        for k in keys {
            if let Some(c) = self.queues.get(&(db, k.clone())) {
                c.reset();
            }
        }
    }

    /// Drops the counters of queues whose key is gone (no list holds them), with nothing
    /// blocked on them, idle for `idle_ms`. Returns how many were dropped. Called with the
    /// keyspace lock held, so no command is attaching counters meanwhile.
    pub(crate) fn forget_idle(&self, now_ms: u64, idle_ms: u64) -> usize {
        let before = self.queues.len();
        self.queues.retain(|_, c| {
            let last = c
                .last_push_ms
                .load(Relaxed)
                .max(c.last_pop_ms.load(Relaxed))
                .max(c.created_ms.load(Relaxed));
            let idle = c.blocked_clients.load(Relaxed) <= 0
                && c.length.load(Relaxed) <= 0
                && now_ms.saturating_sub(last) >= idle_ms;
            Arc::strong_count(c) > 1 || !idle
        });
        before - self.queues.len()
    }

    /// Registers a hook that receives every subsequent event.
    pub fn add_hook(&self, hook: Arc<dyn QueueHook>) {
        self.hooks.write().push(hook);
        self.has_hooks.store(true, Relaxed);
    }

    pub(crate) fn emit(&self, event: impl FnOnce() -> QueueEvent) {
        if !self.has_hooks.load(Relaxed) {
            return;
        }
        let ev = event();
        for h in self.hooks.read().iter() {
            h.on_event(&ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_buckets() {
        let c = QueueCounters::default();
        // 100 waits of ~1 ms each.
        c.record_pop((0..100).map(|_| 1_000), 0, 0, 2_000, None);
        let s = c.snapshot(&Bytes::from_static(b"q"), 0);
        assert_eq!(s.popped_total, 100);
        assert!((s.wait_mean_ms - 1.0).abs() < 1e-9);
        assert!(s.wait_p50_ms > 0.5 && s.wait_p50_ms <= 1.1, "{}", s.wait_p50_ms);
    }

    #[test]
    fn counters_of_gone_idle_keys_are_forgotten_and_no_others() {
        let reg = QueueRegistry::default();
        let now = unix_ms();
        let key = |k: &'static str| Bytes::from_static(k.as_bytes());
        // A drained key (no list holds its counters), last used long ago.
        let gone = reg.counters(0, &key("worker_queue:processing:old-pod"));
        gone.record_push(1, 1, 1, now - IDLE_QUEUE_FORGET_MS - 1);
        gone.record_pop(std::iter::once(10), 0, 0, now - IDLE_QUEUE_FORGET_MS - 1, None);
        gone.created_ms.store(0, Relaxed);
        drop(gone);
        // Drained but recent: survives draining, as QSTATS promises.
        let recent = reg.counters(0, &key("worker_queue"));
        recent.record_push(1, 1, 1, now);
        recent.record_pop(std::iter::once(10), 0, 0, now, None);
        drop(recent);
        // Old but still a live list (someone holds the counters).
        let live = reg.counters(0, &key("result_queue"));
        live.created_ms.store(0, Relaxed);
        // Old, no list, but a client is blocked on it.
        let waited = reg.counters(0, &key("control"));
        waited.created_ms.store(0, Relaxed);
        waited.blocked_clients.store(1, Relaxed);
        drop(waited);

        assert_eq!(reg.forget_idle(now, IDLE_QUEUE_FORGET_MS), 1);
        let names: Vec<Bytes> = reg.snapshot().into_iter().map(|q| q.name).collect();
        assert_eq!(names, [key("control"), key("result_queue"), key("worker_queue")]);
        drop(live);
    }

    #[test]
    fn reset_keeps_length() {
        let c = QueueCounters::default();
        c.record_push(3, 3, 1, 1);
        c.reset();
        let s = c.snapshot(&Bytes::from_static(b"q"), 0);
        assert_eq!((s.pushed_total, s.length), (0, 3));
    }
}
