//! Per-queue metrics kept on the command path, their snapshots, and the event hook trait.
//!
//! Every list key is a queue. Its counters live in a [`QueueCounters`] shared by the list value
//! (so the hot path touches no map) and by the [`QueueRegistry`] (so readers never take the
//! keyspace lock).
//!
//! Which keys keep counters: every list while it exists; once it is gone (deleted, expired,
//! emptied, flushed), only a *queue* keeps them — a key a client blocked on, a named client
//! (`CLIENT SETNAME`, as every farm function is) popped from, or the embedding application
//! pinned ([`QueueRegistry::pin`]) — so a queue that drains and refills keeps counting. Counters
//! of other lists go at once; those of gone queues are bounded ([`MAX_ABSENT_QUEUES`]) and
//! forgotten after [`IDLE_QUEUE_FORGET_MS`] unused (pinned ones never). INFO, QSTATS and
//! `/metrics` list the queues, at most [`MAX_LISTED_QUEUES`] of them.

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
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
    /// [`CONSUMED`] and [`PINNED`]: what makes the key a queue.
    flags: AtomicU8,
    /// The key these counters belong to, and where its list reports that it is gone (`None`
    /// for counters made outside a registry).
    owner: Option<(usize, Bytes, Arc<Released>)>,
}

/// A client blocked on the key, or a named client popped from it.
const CONSUMED: u8 = 1;
/// Declared a queue by the embedding application ([`QueueRegistry::pin`]).
const PINNED: u8 = 2;

/// Gone queues (no list, nothing blocked) whose counters are kept at most: beyond this the
/// longest-gone are dropped, so a client blocking on or popping from endless one-off keys
/// cannot grow the registry without bound. Pinned queues do not count.
pub const MAX_ABSENT_QUEUES: usize = 1024;
/// INFO, QSTATS (without keys) and `/metrics` list at most this many queues — pinned ones
/// first, then by most recent activity — and say how many they left out.
pub const MAX_LISTED_QUEUES: usize = 1000;

/// Keys whose list went away since the registry last looked.
#[derive(Debug, Default)]
struct Released {
    keys: Mutex<Vec<(usize, Bytes)>>,
    pending: AtomicBool,
}

impl Released {
    fn push(&self, db: usize, key: Bytes) {
        self.keys.lock().push((db, key));
        self.pending.store(true, Relaxed);
    }
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
            flags: AtomicU8::new(0),
            owner: None,
        }
    }
}

/// Counters of a gone queue (not pinned) that has seen no push, pop or blocked client for this
/// long are dropped, so that one-off queues (a pod's processing list, named after a pod that is
/// gone) do not accumulate in INFO, QSTATS and `/metrics`. A key used again later starts from
/// zero, which Prometheus reads as a counter reset.
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
            self.flags.fetch_or(CONSUMED, Relaxed);
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
        if delta > 0 {
            self.flags.fetch_or(CONSUMED, Relaxed);
        }
        self.blocked_clients.fetch_add(delta, Relaxed);
    }

    /// The list holding these counters is gone (or moved to another key): the registry
    /// decides at its next sweep whether the key is worth remembering.
    pub(crate) fn detach(&self) {
        if let Some((db, key, released)) = &self.owner {
            released.push(*db, key.clone());
        }
    }

    fn is_queue(&self) -> bool {
        self.flags.load(Relaxed) & (CONSUMED | PINNED) != 0
    }

    fn is_pinned(&self) -> bool {
        self.flags.load(Relaxed) & PINNED != 0
    }

    /// Unix ms of the last push, pop or creation.
    fn last_active_ms(&self) -> u64 {
        self.last_push_ms
            .load(Relaxed)
            .max(self.last_pop_ms.load(Relaxed))
            .max(self.created_ms.load(Relaxed))
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
            ..QueueStats::default()
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

/// What a queue is made of, which decides what its fields mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueKind {
    /// A list: producers push, consumers pop (or move to a processing list).
    #[default]
    List,
    /// One consumer group of a stream: entries wait until delivered, then stay pending
    /// until acknowledged.
    Stream,
    /// A sorted set of jobs scored by the time they are due (RQ's scheduled registry,
    /// BullMQ's delayed set).
    Delayed,
}

impl QueueKind {
    pub fn name(self) -> &'static str {
        match self {
            QueueKind::List => "list",
            QueueKind::Stream => "stream",
            QueueKind::Delayed => "delayed",
        }
    }
}

/// How the scores of a delayed-job sorted set encode the time a job is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreUnit {
    /// Unix seconds (RQ).
    Seconds,
    /// Unix milliseconds.
    Millis,
    /// Unix milliseconds × 4096 plus a counter below 4096 (BullMQ's delayed set).
    BullMq,
}

impl ScoreUnit {
    pub fn name(self) -> &'static str {
        match self {
            ScoreUnit::Seconds => "s",
            ScoreUnit::Millis => "ms",
            ScoreUnit::BullMq => "bullmq",
        }
    }

    pub fn parse(text: &str) -> Option<ScoreUnit> {
        match text.to_ascii_lowercase().as_str() {
            "s" | "sec" | "seconds" => Some(ScoreUnit::Seconds),
            "ms" | "millis" | "milliseconds" => Some(ScoreUnit::Millis),
            "bullmq" => Some(ScoreUnit::BullMq),
            _ => None,
        }
    }

    /// The largest score that is due at `now_ms`.
    pub fn due_score(self, now_ms: u64) -> f64 {
        match self {
            ScoreUnit::Seconds => now_ms as f64 / 1000.0,
            ScoreUnit::Millis => now_ms as f64,
            ScoreUnit::BullMq => (now_ms as f64 + 1.0) * 4096.0 - 1.0,
        }
    }

    /// The Unix ms a score is due at.
    pub fn due_ms(self, score: f64) -> f64 {
        match self {
            ScoreUnit::Seconds => score * 1000.0,
            ScoreUnit::Millis => score,
            ScoreUnit::BullMq => (score / 4096.0).floor(),
        }
    }
}

/// A point-in-time view of one queue, as returned by `QSTATS` and the in-process API.
///
/// The common fields keep one meaning whatever the [`QueueKind`]: `length` is what waits to
/// be taken (a list's elements, a group's undelivered entries, a delayed set's due jobs) and
/// `oldest_age_ms` how long the oldest of those has waited.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueStats {
    pub name: Bytes,
    pub db: usize,
    pub kind: QueueKind,
    /// Streams: the consumer group.
    pub group: Option<Bytes>,
    /// Streams: entries delivered to a consumer and not acknowledged yet.
    pub pending: u64,
    /// Streams: acknowledgements since the counters were created or reset (`wait_*` are
    /// the times from an entry's id to its acknowledgement).
    pub acked_total: u64,
    /// Streams: age of the oldest pending entry, from its id, milliseconds (0 when none).
    pub oldest_pending_age_ms: f64,
    /// Delayed sets: jobs not due yet.
    pub scheduled: u64,
    /// Delayed sets: milliseconds until the next scheduled job is due (0 when none).
    pub next_due_ms: f64,
    /// Delayed sets: how scores encode due times.
    pub unit: Option<ScoreUnit>,
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
    /// The name INFO and QSTATS list the queue under: the key, or `key@group` for a stream's
    /// consumer group (the fields name both).
    pub fn label(&self) -> Bytes {
        match &self.group {
            None => self.name.clone(),
            Some(g) => {
                let mut out = Vec::with_capacity(self.name.len() + 1 + g.len());
                out.extend_from_slice(&self.name);
                out.push(b'@');
                out.extend_from_slice(g);
                Bytes::from(out)
            }
        }
    }

    /// The fields as `(name, value)` text pairs, in a stable order (used by INFO and QSTATS).
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        match self.kind {
            QueueKind::List => self.list_fields(),
            QueueKind::Stream => self.stream_fields(),
            QueueKind::Delayed => self.delayed_fields(),
        }
    }

    fn wait_fields(&self) -> [(&'static str, String); 4] {
        [
            ("wait_count", self.wait_count.to_string()),
            ("wait_mean_ms", format!("{:.3}", self.wait_mean_ms)),
            ("wait_p50_ms", format!("{:.3}", self.wait_p50_ms)),
            ("wait_p99_ms", format!("{:.3}", self.wait_p99_ms)),
        ]
    }

    fn stream_fields(&self) -> Vec<(&'static str, String)> {
        let group = self.group.as_deref().unwrap_or_default();
        let mut out = vec![
            ("kind", "stream".to_owned()),
            ("key", String::from_utf8_lossy(&self.name).into_owned()),
            ("group", String::from_utf8_lossy(group).into_owned()),
            ("length", self.length.to_string()),
            ("pending", self.pending.to_string()),
            ("pushed_total", self.pushed_total.to_string()),
            ("popped_total", self.popped_total.to_string()),
            ("acked_total", self.acked_total.to_string()),
            ("oldest_age_ms", format!("{:.3}", self.oldest_age_ms)),
            (
                "oldest_pending_age_ms",
                format!("{:.3}", self.oldest_pending_age_ms),
            ),
        ];
        out.extend(self.wait_fields());
        out.extend([
            ("blocked_clients", self.blocked_clients.to_string()),
            ("last_push_ms", self.last_push_ms.to_string()),
            ("last_pop_ms", self.last_pop_ms.to_string()),
            ("consumers", self.consumers.join(",")),
        ]);
        out
    }

    fn delayed_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("kind", "delayed".to_owned()),
            ("unit", self.unit.map_or("", ScoreUnit::name).to_owned()),
            ("length", self.length.to_string()),
            ("scheduled", self.scheduled.to_string()),
            ("oldest_age_ms", format!("{:.3}", self.oldest_age_ms)),
            ("next_due_ms", format!("{:.3}", self.next_due_ms)),
        ]
    }

    fn list_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("kind", "list".to_owned()),
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

    /// The elements a push (LPUSH, RPUSH, LMOVE, BLMOVE, …) added to list `queue`, just before
    /// its [`QueueEvent::Pushed`]; `at_head` for pushes to the left end. For hooks that read
    /// what arrives (copy what you keep: the slices may borrow a request buffer).
    fn on_elements(&self, _db: usize, _queue: &[u8], _at_head: bool, _elements: &[Bytes]) {}
}

/// All queues' counters, by database and key, plus the registered hooks.
pub struct QueueRegistry {
    queues: DashMap<(usize, Bytes), Arc<QueueCounters>, ahash::RandomState>,
    hooks: RwLock<Vec<Arc<dyn QueueHook>>>,
    has_hooks: AtomicBool,
    released: Arc<Released>,
    /// Gone queues kept, oldest first (a key may appear twice; entries of keys that came back
    /// or were dropped are skipped when they reach the front).
    absent: Mutex<VecDeque<(usize, Bytes)>>,
    /// Streams with consumer groups and delayed-job sorted sets: their figures are read from
    /// the value when listed (see [`crate::queue_view`]); only acknowledgements are counted.
    watched: Mutex<HashMap<(usize, Bytes), Watch>>,
    /// Acknowledgement counters of stream consumer groups, by database, key and group.
    acks: DashMap<(usize, Bytes, Bytes), Arc<QueueCounters>, ahash::RandomState>,
    /// Sorted sets whose name matches one of these become delayed-job queues when created.
    delayed_patterns: RwLock<Vec<(Vec<u8>, ScoreUnit)>>,
}

/// A stream or sorted set the registry lists as a queue.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Watch {
    pub(crate) shape: WatchShape,
    /// Declared by the embedding application: listed first, kept while the key is absent.
    pub(crate) pinned: bool,
    /// When the key was first seen as a queue (ms since epoch): the listing's recency for
    /// shapes with no activity clock of their own.
    pub(crate) since_ms: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum WatchShape {
    /// Every consumer group of the stream; `groups` are the pinned ones, listed (with zeros)
    /// even before they exist.
    Stream {
        groups: Vec<Bytes>,
    },
    Delayed(ScoreUnit),
}

/// At most this many streams and delayed sets are watched, pinned ones aside: past it, the
/// longest-watched go (a stream used again is watched again at its next group command).
pub const MAX_WATCHED: usize = 4096;

/// The delayed-job sets the frameworks we run keep, recognised when created: RQ's scheduled
/// registry (Unix seconds) and BullMQ's delayed set (milliseconds × 4096).
pub const DEFAULT_DELAYED_PATTERNS: &str = "rq:scheduled:* s bull:*:delayed bullmq";

impl Default for QueueRegistry {
    fn default() -> Self {
        QueueRegistry {
            queues: DashMap::default(),
            hooks: RwLock::new(Vec::new()),
            has_hooks: AtomicBool::new(false),
            released: Arc::new(Released::default()),
            absent: Mutex::new(VecDeque::new()),
            watched: Mutex::new(HashMap::new()),
            acks: DashMap::default(),
            delayed_patterns: RwLock::new(
                parse_delayed_patterns(DEFAULT_DELAYED_PATTERNS).unwrap_or_default(),
            ),
        }
    }
}

/// Parses `pattern unit [pattern unit ...]` (units: `s`, `ms`, `bullmq`).
pub fn parse_delayed_patterns(text: &str) -> Result<Vec<(Vec<u8>, ScoreUnit)>, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if !words.len().is_multiple_of(2) {
        return Err("expected pairs of a key pattern and a score unit (s, ms or bullmq)".into());
    }
    words
        .chunks(2)
        .map(|pair| match ScoreUnit::parse(pair[1]) {
            Some(unit) => Ok((pair[0].as_bytes().to_vec(), unit)),
            None => Err(format!(
                "unknown score unit '{}' (expected s, ms or bullmq)",
                pair[1]
            )),
        })
        .collect()
}

/// A queue that may be listed, with what decides whether it is when there are too many.
pub(crate) struct Candidate {
    pub(crate) pinned: bool,
    pub(crate) active_ms: u64,
    pub(crate) stats: QueueStats,
}

/// Keeps pinned queues, then the most recently active, at most `limit`, sorted by database,
/// name and group; and says how many were left out.
pub(crate) fn finish_listing(mut candidates: Vec<Candidate>, limit: usize) -> (Vec<QueueStats>, usize) {
    let total = candidates.len();
    if total > limit {
        candidates.sort_by_key(|c| std::cmp::Reverse((c.pinned, c.active_ms)));
        candidates.truncate(limit);
    }
    let mut out: Vec<QueueStats> = candidates.into_iter().map(|c| c.stats).collect();
    out.sort_by(|a, b| (a.db, &a.name, &a.group).cmp(&(b.db, &b.name, &b.group)));
    (out, total.saturating_sub(limit))
}

/// Adds or replaces a watch, keeping at most [`MAX_WATCHED`] unpinned ones.
fn insert_watch(
    watched: &mut HashMap<(usize, Bytes), Watch>,
    slot: (usize, Bytes),
    shape: WatchShape,
    pinned: bool,
) {
    let since_ms = watched.get(&slot).map_or_else(unix_ms, |w| w.since_ms);
    let pinned = pinned || watched.get(&slot).is_some_and(|w| w.pinned);
    watched.insert(
        slot,
        Watch {
            shape,
            pinned,
            since_ms,
        },
    );
    let unpinned = watched.values().filter(|w| !w.pinned).count();
    if unpinned > MAX_WATCHED {
        let oldest = watched
            .iter()
            .filter(|(_, w)| !w.pinned)
            .min_by_key(|(_, w)| w.since_ms)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            watched.remove(&k);
        }
    }
}

/// Whether counters held by the registry alone, for a key with nothing blocked on it, can go.
fn unused(c: &Arc<QueueCounters>) -> bool {
    Arc::strong_count(c) == 1 && c.blocked_clients.load(Relaxed) <= 0
}

impl QueueRegistry {
    /// The counters of `key`, created on first use.
    pub(crate) fn counters(&self, db: usize, key: &Bytes) -> Arc<QueueCounters> {
        if let Some(c) = self.queues.get(&(db, key.clone())) {
            return c.clone();
        }
        let owned = Bytes::copy_from_slice(key);
        self.queues
            .entry((db, owned.clone()))
            .or_insert_with(|| {
                Arc::new(QueueCounters {
                    owner: Some((db, owned, self.released.clone())),
                    ..QueueCounters::default()
                })
            })
            .clone()
    }

    /// Declares `key` a queue whose counters are kept while it is empty or absent and that
    /// is always listed (the farm's queues, declared by the node).
    pub fn pin(&self, db: usize, key: &[u8]) {
        self.counters(db, &Bytes::copy_from_slice(key))
            .flags
            .fetch_or(PINNED, Relaxed);
    }

    /// Watches the stream `key` as a queue (one per consumer group): called by the commands
    /// that create or use groups.
    pub(crate) fn watch_stream(&self, db: usize, key: &Bytes) {
        let mut watched = self.watched.lock();
        if watched.contains_key(&(db, key.clone())) {
            return;
        }
        let shape = WatchShape::Stream { groups: Vec::new() };
        insert_watch(&mut watched, (db, Bytes::copy_from_slice(key)), shape, false);
    }

    /// The score unit of the first delayed-set pattern `key` matches.
    pub(crate) fn delayed_unit_of(&self, key: &[u8]) -> Option<ScoreUnit> {
        self.delayed_patterns
            .read()
            .iter()
            .find(|(p, _)| crate::glob::glob_match(p, key, false))
            .map(|(_, u)| *u)
    }

    /// A sorted set was created: a delayed-job queue if its name matches a pattern.
    pub(crate) fn zset_created(&self, db: usize, key: &Bytes) {
        let Some(unit) = self.delayed_unit_of(key) else {
            return;
        };
        let mut watched = self.watched.lock();
        if !watched.contains_key(&(db, key.clone())) {
            let slot = (db, Bytes::copy_from_slice(key));
            insert_watch(&mut watched, slot, WatchShape::Delayed(unit), false);
        }
    }

    /// Declares the sorted set `key` a delayed-job queue scored in `unit`, always listed.
    pub fn pin_delayed(&self, db: usize, key: &[u8], unit: ScoreUnit) {
        let slot = (db, Bytes::copy_from_slice(key));
        insert_watch(&mut self.watched.lock(), slot, WatchShape::Delayed(unit), true);
    }

    /// Declares consumer group `group` of stream `key` a queue, always listed.
    pub fn pin_stream_group(&self, db: usize, key: &[u8], group: &[u8]) {
        let slot = (db, Bytes::copy_from_slice(key));
        let mut watched = self.watched.lock();
        let mut groups = match watched.get(&slot) {
            Some(Watch {
                shape: WatchShape::Stream { groups },
                ..
            }) => groups.clone(),
            _ => Vec::new(),
        };
        if !groups.iter().any(|g| g.as_ref() == group) {
            groups.push(Bytes::copy_from_slice(group));
        }
        insert_watch(&mut watched, slot, WatchShape::Stream { groups }, true);
    }

    /// The patterns naming delayed-job sets, as CONFIG GET shows them.
    pub fn delayed_patterns(&self) -> String {
        self.delayed_patterns
            .read()
            .iter()
            .map(|(p, u)| format!("{} {}", String::from_utf8_lossy(p), u.name()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Replaces the patterns naming delayed-job sets (`pattern unit ...`); sets created from
    /// now on are matched.
    pub fn set_delayed_patterns(&self, text: &str) -> Result<(), String> {
        *self.delayed_patterns.write() = parse_delayed_patterns(text)?;
        Ok(())
    }

    /// Counts acknowledgements of entries (their ids' milliseconds) by `group` of `key`.
    pub(crate) fn record_acks(&self, db: usize, key: &Bytes, group: &Bytes, ids_ms: &[u64], now_us: u64) {
        if ids_ms.is_empty() {
            return;
        }
        let slot = (db, key.clone(), group.clone());
        let counters = match self.acks.get(&slot) {
            Some(c) => c.clone(),
            None => {
                // Counters of groups whose stream is no longer watched go when nothing lists
                // the queues for a long time, so that endless one-off streams stay bounded.
                if self.acks.len() >= 4 * MAX_WATCHED {
                    let watched = self.watched.lock();
                    self.acks
                        .retain(|(d, k, _), _| watched.contains_key(&(*d, k.clone())));
                }
                self.acks
                    .entry((db, Bytes::copy_from_slice(key), Bytes::copy_from_slice(group)))
                    .or_default()
                    .clone()
            }
        };
        counters.record_pop(ids_ms.iter().map(|ms| ms * 1000), 0, 0, now_us, None);
    }

    /// How `key` is watched, if it is.
    pub(crate) fn watch_of(&self, db: usize, key: &Bytes) -> Option<Watch> {
        self.watched.lock().get(&(db, key.clone())).cloned()
    }

    /// The watched streams and delayed sets (a copy: the listing reads the keyspace).
    pub(crate) fn watched(&self) -> Vec<((usize, Bytes), Watch)> {
        self.watched
            .lock()
            .iter()
            .map(|(k, w)| (k.clone(), w.clone()))
            .collect()
    }

    /// Stops watching keys that no longer hold their shape (not pinned ones), and forgets
    /// the acknowledgement counters of groups that are gone.
    pub(crate) fn unwatch(&self, gone: &[(usize, Bytes)], live_groups: &[(usize, Bytes, Bytes)]) {
        if !gone.is_empty() {
            let mut watched = self.watched.lock();
            for slot in gone {
                if watched.get(slot).is_some_and(|w| !w.pinned) {
                    watched.remove(slot);
                }
            }
        }
        if self.acks.len() > live_groups.len() {
            let live: std::collections::HashSet<&(usize, Bytes, Bytes)> = live_groups.iter().collect();
            self.acks.retain(|k, _| live.contains(k));
        }
    }

    /// The acknowledgement counters of a group, if it acknowledged anything.
    pub(crate) fn acks_of(&self, db: usize, key: &Bytes, group: &Bytes) -> Option<Arc<QueueCounters>> {
        self.acks
            .get(&(db, key.clone(), group.clone()))
            .map(|c| c.clone())
    }

    /// The list counters of `key` (clients blocked on a stream or sorted set count there).
    pub(crate) fn blocked_on(&self, db: usize, key: &Bytes) -> u64 {
        self.queues
            .get(&(db, key.clone()))
            .map_or(0, |c| c.blocked_clients.load(Relaxed).max(0) as u64)
    }

    /// Called after every command (cheap when nothing was released): drops the counters of
    /// keys that are gone and were no queue, and keeps at most [`MAX_ABSENT_QUEUES`] gone
    /// queues. Runs under the keyspace lock, so no command attaches counters meanwhile.
    pub(crate) fn sweep(&self) {
        if !self.released.pending.swap(false, Relaxed) {
            return;
        }
        let keys = std::mem::take(&mut *self.released.keys.lock());
        let mut absent = self.absent.lock();
        for slot in keys {
            let mut kept_as_queue = false;
            self.queues.remove_if(&slot, |_, c| {
                if !unused(c) {
                    return false;
                }
                kept_as_queue = c.is_queue();
                !kept_as_queue
            });
            if kept_as_queue {
                absent.push_back(slot);
            }
        }
        while absent.len() > MAX_ABSENT_QUEUES {
            if let Some(slot) = absent.pop_front() {
                self.queues.remove_if(&slot, |_, c| unused(c) && !c.is_pinned());
            }
        }
        if absent.capacity() > 4 * MAX_ABSENT_QUEUES {
            absent.shrink_to(2 * MAX_ABSENT_QUEUES);
        }
        drop(absent);
        self.shrink();
    }

    /// Number of keys with counters (live lists, gone queues, keys blocked on).
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// A snapshot of every key with counters (live lists included), sorted by database then
    /// name: the in-process view.
    pub fn snapshot(&self) -> Vec<QueueStats> {
        let mut all: Vec<QueueStats> = self
            .queues
            .iter()
            .map(|e| e.value().snapshot(&e.key().1, e.key().0))
            .collect();
        all.sort_by(|a, b| (a.db, &a.name).cmp(&(b.db, &b.name)));
        all
    }

    /// The list queues, lock-free (without the streams and delayed sets, which need the
    /// keyspace: [`crate::queue_view::listed`] lists every shape): pinned ones, then the most
    /// recently active, at most `limit`, sorted by database then name; and how many were
    /// left out.
    pub fn listed(&self, limit: usize) -> (Vec<QueueStats>, usize) {
        finish_listing(self.list_candidates(&|_| false), limit)
    }

    /// Every list queue (not the keys `skip` says another shape lists), as listing candidates.
    pub(crate) fn list_candidates(&self, skip: &dyn Fn(&(usize, Bytes)) -> bool) -> Vec<Candidate> {
        self.queues
            .iter()
            .filter(|e| e.value().is_queue() && !skip(e.key()))
            .map(|e| {
                let c = e.value();
                Candidate {
                    pinned: c.is_pinned(),
                    active_ms: c.last_active_ms(),
                    stats: c.snapshot(&e.key().1, e.key().0),
                }
            })
            .collect()
    }

    /// A snapshot of one key's counters, if it has any.
    pub fn queue(&self, db: usize, key: &[u8]) -> Option<QueueStats> {
        let key = Bytes::copy_from_slice(key);
        self.queues.get(&(db, key.clone())).map(|c| c.snapshot(&key, db))
    }

    /// FLUSHDB (one database) or FLUSHALL (`None`): the lists are gone, so their counters go
    /// too, except pinned queues and keys clients are blocked on, which start again from zero.
    pub(crate) fn clear(&self, db: Option<usize>) {
        let in_scope = |d: usize| db.is_none_or(|x| x == d);
        self.queues.retain(|k, c| {
            if !in_scope(k.0) {
                return true;
            }
            if unused(c) && !c.is_pinned() {
                return false;
            }
            c.reset();
            true
        });
        self.absent.lock().retain(|(d, _)| !in_scope(*d));
        self.shrink();
    }

    /// Resets the cumulative counters of the given queues (`QSTATS RESET`), streams' groups
    /// included.
    pub(crate) fn reset(&self, db: usize, keys: &[Bytes]) {
        for k in keys {
            if let Some(c) = self.queues.get(&(db, k.clone())) {
                c.reset();
            }
        }
        for entry in self.acks.iter() {
            if entry.key().0 == db && keys.contains(&entry.key().1) {
                entry.value().reset();
            }
        }
    }

    /// Resets the cumulative counters of every queue of database `db` (`QSTATS RESET`).
    pub(crate) fn reset_db(&self, db: usize) {
        for entry in self.queues.iter().filter(|e| e.key().0 == db) {
            entry.value().reset();
        }
        for entry in self.acks.iter().filter(|e| e.key().0 == db) {
            entry.value().reset();
        }
    }

    /// Drops the counters of gone queues (not pinned) with nothing blocked on them, idle for
    /// `idle_ms`. Returns how many were dropped. Called with the keyspace lock held.
    pub(crate) fn forget_idle(&self, now_ms: u64, idle_ms: u64) -> usize {
        let before = self.queues.len();
        self.queues.retain(|_, c| {
            let idle = now_ms.saturating_sub(c.last_active_ms()) >= idle_ms;
            !(unused(c) && !c.is_pinned() && idle)
        });
        let dropped = before - self.queues.len();
        if dropped > 0 {
            self.absent.lock().retain(|slot| self.queues.contains_key(slot));
        }
        self.shrink();
        dropped
    }

    /// Gives back the table's memory after many keys went away.
    fn shrink(&self) {
        if self.queues.capacity() > 1024 && self.queues.len() < self.queues.capacity() / 8 {
            self.queues.shrink_to_fit();
        }
    }

    /// Registers a hook that receives every subsequent event.
    pub fn add_hook(&self, hook: Arc<dyn QueueHook>) {
        self.hooks.write().push(hook);
        self.has_hooks.store(true, Relaxed);
    }

    /// Hands the elements of a push to the hooks (see [`QueueHook::on_elements`]).
    pub(crate) fn emit_elements(&self, db: usize, queue: &[u8], at_head: bool, elements: &[Bytes]) {
        if !self.has_hooks.load(Relaxed) {
            return;
        }
        for h in self.hooks.read().iter() {
            h.on_elements(db, queue, at_head, elements);
        }
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

    fn key(k: &str) -> Bytes {
        Bytes::copy_from_slice(k.as_bytes())
    }

    /// A list that existed and went away: its counters are detached and dropped by the list.
    fn list_gone(reg: &QueueRegistry, name: &str, consumer: Option<&str>) {
        let c = reg.counters(0, &key(name));
        c.record_push(1, 1, 1, unix_ms());
        c.record_pop(std::iter::once(1), 0, 0, unix_us(), consumer);
        c.detach();
    }

    fn names(reg: &QueueRegistry) -> Vec<Bytes> {
        reg.snapshot().into_iter().map(|q| q.name).collect()
    }

    #[test]
    fn a_gone_list_loses_its_counters_a_gone_queue_keeps_them() {
        let reg = QueueRegistry::default();
        list_gone(&reg, "scratch", None);
        list_gone(&reg, "worker_queue", Some("worker:1"));
        // Blocked on, never existed, then the client left.
        let waited = reg.counters(0, &key("control"));
        waited.blocked_delta(1);
        waited.blocked_delta(-1);
        waited.detach();
        drop(waited);
        // Still a live list (someone holds the counters): untouched.
        let live = reg.counters(0, &key("result_queue"));
        live.detach();
        reg.sweep();
        assert_eq!(
            names(&reg),
            [key("control"), key("result_queue"), key("worker_queue")]
        );
        // Only queues are listed, and the live plain list is not one.
        let (listed, omitted) = reg.listed(10);
        let listed: Vec<Bytes> = listed.into_iter().map(|q| q.name).collect();
        assert_eq!((listed, omitted), (vec![key("control"), key("worker_queue")], 0));
        drop(live);
    }

    #[test]
    fn gone_queues_are_forgotten_when_idle_unless_pinned_or_blocked_on() {
        let reg = QueueRegistry::default();
        let now = unix_ms();
        for name in ["old", "pinned", "waited"] {
            list_gone(&reg, name, Some("worker:1"));
        }
        reg.pin(0, b"pinned");
        reg.counters(0, &key("waited")).blocked_delta(1);
        list_gone(&reg, "recent", Some("worker:1"));
        reg.sweep();
        for name in ["old", "pinned", "waited"] {
            let c = reg.counters(0, &key(name));
            c.created_ms.store(0, Relaxed);
            c.last_push_ms.store(0, Relaxed);
            c.last_pop_ms.store(0, Relaxed);
        }
        assert_eq!(reg.forget_idle(now, IDLE_QUEUE_FORGET_MS), 1);
        assert_eq!(names(&reg), [key("pinned"), key("recent"), key("waited")]);
    }

    #[test]
    fn gone_queues_are_bounded_and_listing_is_capped() {
        let reg = QueueRegistry::default();
        reg.pin(0, b"worker_queue");
        for i in 0..MAX_ABSENT_QUEUES + 500 {
            list_gone(&reg, &format!("one-off:{i}"), Some("worker:1"));
            if i % 100 == 0 {
                reg.sweep();
            }
        }
        reg.sweep();
        // The pinned queue plus the most recently gone ones.
        assert_eq!(reg.len(), MAX_ABSENT_QUEUES + 1);
        assert!(reg.queue(0, b"worker_queue").is_some());
        assert!(reg.queue(0, b"one-off:0").is_none());
        assert!(reg
            .queue(0, format!("one-off:{}", MAX_ABSENT_QUEUES + 499).as_bytes())
            .is_some());
        let (listed, omitted) = reg.listed(10);
        assert_eq!((listed.len(), omitted), (10, MAX_ABSENT_QUEUES + 1 - 10));
        assert!(
            listed.iter().any(|q| q.name == key("worker_queue")),
            "pinned queues come first"
        );
    }

    #[test]
    fn flush_drops_everything_but_pinned_and_blocked_on() {
        let reg = QueueRegistry::default();
        list_gone(&reg, "gone", Some("worker:1"));
        reg.pin(0, b"pinned");
        reg.counters(0, &key("pinned")).record_push(5, 5, 1, 1);
        reg.counters(0, &key("waited")).blocked_delta(1);
        reg.counters(1, &key("other-db")).blocked_delta(0);
        reg.sweep();
        reg.clear(Some(0));
        assert_eq!(names(&reg), [key("pinned"), key("waited"), key("other-db")]);
        assert_eq!(reg.queue(0, b"pinned").map(|q| q.pushed_total), Some(0));
        reg.clear(None);
        assert_eq!(names(&reg), [key("pinned"), key("waited")]);
    }

    #[test]
    fn ack_counters_of_unwatched_streams_stay_bounded() {
        let reg = QueueRegistry::default();
        let group = key("g");
        reg.watch_stream(0, &key("kept"));
        reg.record_acks(0, &key("kept"), &group, &[1], unix_us());
        for i in 0..4 * MAX_WATCHED + 10 {
            reg.record_acks(0, &key(&format!("one-off:{i}")), &group, &[1], unix_us());
        }
        assert!(reg.acks.len() <= 4 * MAX_WATCHED, "{}", reg.acks.len());
        assert!(
            reg.acks_of(0, &key("kept"), &group).is_some(),
            "a watched stream keeps its counters"
        );
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
