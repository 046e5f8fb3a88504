//! The engine: the keyspace plus everything that must change atomically with it — WATCH flags,
//! blocked clients, command statistics — and the slot of the Lua interpreter.
//!
//! One lock guards it (`Shared::engine`), so a command, a MULTI/EXEC block or a script sees and
//! changes all of it at once. It knows the keyspace and the interpreter, not the command table:
//! statistics are indexed by a command number the command layer chooses. No I/O happens here.

mod blocking;
pub mod diagnostics;
mod stream_waits;
mod watch;

pub use blocking::{BlockOp, Blocking, Waiter};

use crate::aof::Feed;
use crate::db::{End, Keyspace};
use crate::metrics::{unix_us, QueueEvent, QueueRegistry};
use crate::pubsub::{events, PubSub};
use crate::scripting::{ScriptMonitor, Scripting};
use bytes::Bytes;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use watch::Watches;

/// The keyspace and the per-connection bookkeeping that must change atomically with it.
pub struct Engine {
    pub keyspace: Keyspace,
    pub blocking: Blocking,
    watches: Watches,
    /// The clock of the command being executed, µs since the Unix epoch. Read once per
    /// command; every timestamp the command writes (enqueue times, metrics) uses it.
    pub now_us: u64,
    /// Commands executed (kept here because every command already holds this lock: no second
    /// lock on the hot path).
    pub stats: CommandStats,
    /// The Lua interpreter and script cache, created on first use; FLUSHALL leaves it alone.
    /// Lent out while a script runs ([`Engine::with_scripting`]).
    scripting: Option<Box<Scripting>>,
    /// Changes made to the data since start-up (Redis's `dirty`): a command that leaves it
    /// alone changed nothing, so nothing of it is logged.
    pub dirty: u64,
    /// The append-only file's feed, when the log is on. It moves with the engine (a script
    /// holds the engine while it runs, and its effects are logged from there).
    pub feed: Option<Feed>,
    /// Replaying the log at start-up: nothing expires (the log holds the deletions of keys
    /// that expired while it was written, in their place).
    pub loading: bool,
    /// Pub/sub subscriptions, MONITOR clients and the keyspace-event switches.
    pub pubsub: PubSub,
    /// SLOWLOG's entries and parameters (fed by every call).
    pub slowlog: diagnostics::Slowlog,
    /// LATENCY's events (recorded only when `latency-monitor-threshold` is set).
    pub latency: diagnostics::LatencyMonitor,
}

/// The classes of keyspace events, one per letter of `notify-keyspace-events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventClass {
    /// `g`: DEL, EXPIRE, RENAME and other type-independent commands.
    Generic,
    /// `$`
    String,
    /// `l`
    List,
    /// `s`
    Set,
    /// `h`
    Hash,
    /// `z`
    ZSet,
    /// `t`
    Stream,
    /// `x`: a key removed because its time to live ran out.
    Expired,
    /// `e`: a key evicted by maxmemory.
    Evicted,
    /// `m`: a read of a key that does not exist.
    KeyMiss,
    /// `n`: a key created.
    New,
}

impl EventClass {
    /// Its bit in `notify-keyspace-events`.
    fn flag(self) -> u32 {
        match self {
            EventClass::Generic => events::GENERIC,
            EventClass::String => events::STRING,
            EventClass::List => events::LIST,
            EventClass::Set => events::SET,
            EventClass::Hash => events::HASH,
            EventClass::ZSet => events::ZSET,
            EventClass::Stream => events::STREAM,
            EventClass::Expired => events::EXPIRED,
            EventClass::Evicted => events::EVICTED,
            EventClass::KeyMiss => events::KEY_MISS,
            EventClass::New => events::NEW,
        }
    }
}

/// Publishes a keyspace event if `notify-keyspace-events` enables its class (see
/// [`Engine::notify`]).
fn publish_event(pubsub: &PubSub, class: EventClass, event: &str, db: usize, key: &[u8]) {
    let flags = pubsub.notify_flags;
    if flags & class.flag() == 0 {
        return;
    }
    let mut db_text = itoa::Buffer::new();
    let db_text = db_text.format(db).as_bytes();
    if flags & events::KEYSPACE != 0 {
        let channel = [b"__keyspace@", db_text, b"__:", key].concat();
        pubsub.publish(
            &Bytes::from(channel),
            &Bytes::copy_from_slice(event.as_bytes()),
            false,
        );
    }
    if flags & events::KEYEVENT != 0 {
        let channel = [b"__keyevent@", db_text, b"__:", event.as_bytes()].concat();
        pubsub.publish(&Bytes::from(channel), &Bytes::copy_from_slice(key), false);
    }
}

/// Per-command call statistics (INFO commandstats).
#[derive(Default, Debug, Clone, Copy)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
    pub rejected_calls: u64,
    pub failed_calls: u64,
    /// Calls per latency bucket: bucket k holds durations up to about 1024·2^k ns (LATENCY
    /// HISTOGRAM; see `record_latency`).
    pub latency_buckets: [u64; LATENCY_BUCKETS],
}

/// Buckets of a command's latency histogram: 1 µs up to 1 s, as Redis tracks.
pub const LATENCY_BUCKETS: usize = diagnostics::LATENCY_BUCKETS;

impl CommandStat {
    /// Counts one call that took `usec` in its latency bucket.
    #[inline]
    pub fn record_latency(&mut self, usec: u64) {
        self.latency_buckets[diagnostics::latency_bucket(usec)] += 1;
    }
}

/// INFO's `total_commands_processed` and commandstats.
#[derive(Default)]
pub struct CommandStats {
    pub total: u64,
    /// Lookups of keys for reading that found one / found none (`INFO stats`).
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    /// By command number (the command layer's table index), grown on first use.
    pub per_command: Vec<CommandStat>,
}

impl CommandStats {
    /// The statistics of command number `index`.
    pub fn of(&mut self, index: usize) -> &mut CommandStat {
        if index >= self.per_command.len() {
            self.per_command.resize(index + 1, CommandStat::default());
        }
        &mut self.per_command[index]
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&mut self) {
        self.per_command
            .iter_mut()
            .for_each(|s| *s = CommandStat::default());
        self.total = 0;
        self.keyspace_hits = 0;
        self.keyspace_misses = 0;
    }
}

impl Engine {
    pub fn new(databases: usize, queues: Arc<QueueRegistry>) -> Engine {
        Engine {
            keyspace: Keyspace::new(databases, queues),
            blocking: Blocking::default(),
            watches: Watches::default(),
            now_us: unix_us(),
            stats: CommandStats::default(),
            scripting: None,
            dirty: 0,
            feed: None,
            loading: false,
            pubsub: PubSub::default(),
            slowlog: diagnostics::Slowlog::default(),
            latency: diagnostics::LatencyMonitor::default(),
        }
    }

    /// An empty stand-in (no databases) for the moment a script owns the real engine.
    pub fn placeholder(queues: Arc<QueueRegistry>) -> Engine {
        Engine {
            now_us: 0,
            ..Engine::new(0, queues)
        }
    }

    /// Deletes `key` if its expiry has passed. Call before every read or write of a key.
    pub fn expire_if_due(&mut self, db: usize, key: &[u8], now_ms: u64) {
        if self.loading {
            return;
        }
        if self.keyspace.expire_if_due(db, key, now_ms) {
            self.watches.touch(db, key);
            self.log(db, &[&b"DEL"[..], key]);
            self.notify(EventClass::Expired, "expired", db, key);
        }
    }

    /// Logs a command run in database `db` to the append-only file, if it is on; returns the
    /// log offset that covers it (see [`Feed::command`]).
    pub fn log<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A]) -> Option<u64> {
        self.feed.as_mut().and_then(|f| f.command(db, args))
    }

    /// Removes up to `limit` due keys from each database; returns how many were removed.
    pub fn active_expire(&mut self, now_ms: u64, limit: usize) -> usize {
        if self.loading {
            return 0;
        }
        let watches = &self.watches;
        let feed = &mut self.feed;
        let pubsub = &self.pubsub;
        let removed = self.keyspace.expire_due(now_ms, limit, |db, key| {
            watches.touch(db, key);
            if let Some(f) = feed.as_mut() {
                f.command(db, &[&b"DEL"[..], key]);
            }
            publish_event(pubsub, EventClass::Expired, "expired", db, key);
        });
        self.keyspace.queues.sweep();
        removed
    }

    /// Reports a keyspace event (Redis's keyspace notifications): `event` is the name Redis
    /// publishes (`hset`, `lpush`, `del`, `expired`…) for `key` in `db`, `class` the letter
    /// of `notify-keyspace-events` that enables it. Every command that changes a key reports
    /// what Redis reports, in the same order. `notify-keyspace-events` chooses which classes
    /// are published, on `__keyspace@<db>__:<key>` (the event as message) and/or
    /// `__keyevent@<db>__:<event>` (the key as message).
    pub fn notify(&mut self, class: EventClass, event: &str, db: usize, key: &[u8]) {
        if !self.loading {
            publish_event(&self.pubsub, class, event, db, key);
        }
    }

    /// Marks a key as modified: invalidates WATCHes on it.
    pub fn touch(&mut self, db: usize, key: &[u8]) {
        self.dirty += 1;
        self.watches.touch(db, key);
        // A write may have deleted or replaced a stream that clients read in XREADGROUP:
        // they get a look, and an error if it is gone (as Redis 7.0 answers them).
        if self.blocking.has_group_readers(db, key) {
            self.blocking.ready.push((db, Bytes::copy_from_slice(key)));
        }
    }

    pub fn watch(&mut self, db: usize, key: Bytes, flag: &Arc<AtomicBool>) {
        self.watches.watch(db, key, flag);
    }

    pub fn unwatch(&mut self, keys: &[(usize, Bytes)], flag: &Arc<AtomicBool>) {
        self.watches.unwatch(keys, flag);
    }

    /// Pushes elements to the list at `key` (see [`Keyspace::push`]), then invalidates
    /// WATCHes, readies waiters and reports the push. Returns the new length, or `None` if the
    /// key holds another type.
    pub fn push(&mut self, db: usize, key: &Bytes, end: End, elements: &[Bytes]) -> Option<usize> {
        let len = self.keyspace.push(db, key, end, elements, self.now_us)?;
        self.keyspace
            .queues
            .emit_elements(db, key, matches!(end, End::Left), elements);
        self.after_push(db, key, elements.len(), len);
        if len == elements.len() {
            self.notify(EventClass::New, "new", db, key);
        }
        let event = if end == End::Left { "lpush" } else { "rpush" };
        self.notify(EventClass::List, event, db, key);
        Some(len)
    }

    /// Bookkeeping after elements were added to the list at `key`.
    pub fn after_push(&mut self, db: usize, key: &Bytes, count: usize, len: usize) {
        self.dirty += 1;
        self.watches.touch(db, key);
        if self.blocking.has_waiters(db, key) {
            self.blocking.ready.push((db, key.clone()));
        }
        self.keyspace.queues.emit(|| QueueEvent::Pushed {
            db,
            queue: key.clone(),
            count,
            length: len,
        });
    }

    /// Pops up to `count` elements from one end of an existing list for `client` (see
    /// [`Keyspace::pop`]), then invalidates WATCHes and reports the pop. `None` if the key
    /// holds no list.
    pub fn pop(
        &mut self,
        db: usize,
        key: &Bytes,
        end: End,
        count: usize,
        client: u64,
        consumer: Option<&str>,
    ) -> Option<Vec<Bytes>> {
        let (out, len) = self.pop_unreported(db, key, end, count, client, consumer)?;
        self.notify_pop(db, key, end, len);
        Some(out)
    }

    /// Moves one element from the list at `src` to the list at `dst` (LMOVE and the served
    /// BLMOVE). Its keyspace events come in Redis's order: the push, then the pop.
    #[allow(clippy::too_many_arguments)]
    pub fn move_element(
        &mut self,
        db: usize,
        src: &Bytes,
        dst: &Bytes,
        from: End,
        to: End,
        client: u64,
        consumer: Option<&str>,
    ) -> Option<Bytes> {
        let (mut out, len) = self.pop_unreported(db, src, from, 1, client, consumer)?;
        let element = out.pop()?;
        self.push(db, dst, to, std::slice::from_ref(&element));
        self.notify_pop(db, src, from, len);
        Some(element)
    }

    /// A pop's keyspace events: `lpop`/`rpop`, then `del` if it emptied the list.
    fn notify_pop(&mut self, db: usize, key: &[u8], end: End, len: usize) {
        let event = if end == End::Left { "lpop" } else { "rpop" };
        self.notify(EventClass::List, event, db, key);
        if len == 0 {
            self.notify(EventClass::Generic, "del", db, key);
        }
    }

    /// [`Engine::pop`] without the keyspace events; also returns the length left.
    fn pop_unreported(
        &mut self,
        db: usize,
        key: &Bytes,
        end: End,
        count: usize,
        client: u64,
        consumer: Option<&str>,
    ) -> Option<(Vec<Bytes>, usize)> {
        let (out, len) = self.keyspace.pop(db, key, end, count, self.now_us, consumer)?;
        self.dirty += 1;
        self.watches.touch(db, key);
        self.keyspace.queues.emit(|| QueueEvent::Popped {
            db,
            queue: key.clone(),
            count: out.len(),
            length: len,
            client,
        });
        Some((out, len))
    }

    /// SWAPDB: exchanges the data of databases `a` and `b`. Clients stay in the database they
    /// selected, so, as in Redis, WATCHes of keys present on either side break, clients
    /// blocked on a key that now has elements are served, and XREADGROUP waiters whose stream
    /// went to the other side are told. Each list takes its new key's queue counters (a walk
    /// over both databases' keys: Redis's swap is O(1), ours O(keys) for this).
    pub fn swap_databases(&mut self, a: usize, b: usize, now_ms: u64) {
        self.dirty += 1;
        if a == b {
            return;
        }
        let keyspace = &self.keyspace;
        let either = |key: &[u8]| keyspace[a].map.contains_key(key) || keyspace[b].map.contains_key(key);
        self.watches.touch_all(Some(a), |_, key| either(key));
        self.watches.touch_all(Some(b), |_, key| either(key));
        self.keyspace.swap_databases(a, b);
        for db in [a, b] {
            let queues = self.keyspace.queues.clone();
            for (key, value) in self.keyspace[db].map.iter_mut() {
                if let crate::db::Value::List(l) = value {
                    l.retarget(queues.counters(db, key));
                    l.stats.record_push(0, l.len(), l.oldest_us(), now_ms);
                }
            }
        }
        let ready: Vec<(usize, Bytes)> = self
            .blocking
            .by_key
            .keys()
            .filter(|(d, k)| (*d == a || *d == b) && self.keyspace[*d].map.contains_key(k))
            .cloned()
            .collect();
        self.blocking.ready.extend(ready);
        for db in [a, b] {
            let gone = self.blocking.group_read_keys(Some(db));
            self.blocking.ready.extend(gone);
        }
    }

    /// Empties one database (or all) and resets their queue counters.
    pub fn flush(&mut self, db: Option<usize>) {
        self.dirty += 1;
        let keyspace = &self.keyspace;
        self.watches
            .touch_all(db, |d, key| keyspace[d].map.contains_key(key));
        let group_read = self.blocking.group_read_keys(db);
        self.blocking.ready.extend(group_read);
        self.keyspace.clear(db);
    }

    /// The interpreter, if one was created (INFO, SCRIPT EXISTS and FLUSH). `None` while a
    /// script runs: it is lent to the script.
    pub fn scripting(&self) -> Option<&Scripting> {
        self.scripting.as_deref()
    }

    pub fn scripting_mut(&mut self) -> Option<&mut Scripting> {
        self.scripting.as_deref_mut()
    }

    /// Lends the interpreter (created on first use, reporting to `monitor`) to `f` along with
    /// the rest of the engine, which `f` may hand to the script's commands; the interpreter is
    /// back in its slot when this returns, so no caller can forget to put it back. Fails only
    /// if a new interpreter cannot be created.
    pub fn with_scripting<R>(
        &mut self,
        monitor: &Arc<ScriptMonitor>,
        f: impl FnOnce(&mut Scripting, &mut Engine) -> R,
    ) -> mlua::Result<R> {
        let mut scripting = match self.scripting.take() {
            Some(s) => s,
            None => Box::new(Scripting::new(monitor.clone())?),
        };
        let out = f(&mut scripting, self);
        self.scripting = Some(scripting);
        Ok(out)
    }
}
