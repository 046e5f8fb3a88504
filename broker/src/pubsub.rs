//! Pub/sub's registry (channels, patterns and shard channels → subscribers, MONITOR clients)
//! and the mailboxes pushed messages wait in until their connection writes them.
//!
//! The registry lives in the engine, under the keyspace lock, so a PUBLISH, a keyspace event
//! and a subscription change are ordered with everything else. Delivery is asynchronous: a
//! message goes into each receiver's [`Mailbox`] and wakes its connection, which writes it
//! when it is idle, blocked or between commands. A mailbox that holds more than its
//! `client-output-buffer-limit pubsub` allows is closed (its client disconnected), as Redis
//! closes a subscriber that does not read.

use crate::glob::glob_match;
use crate::reply::Protocol;
use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A message waiting for its receiver's connection.
#[derive(Debug, Clone)]
pub enum Pushed {
    /// `message` (or `smessage` for a shard channel) on `channel`.
    Message {
        shard: bool,
        channel: Bytes,
        payload: Bytes,
    },
    /// `pmessage`: `channel` matched `pattern`.
    PMessage {
        pattern: Bytes,
        channel: Bytes,
        payload: Bytes,
    },
    /// A MONITOR line (without the leading `+` and the line end).
    Monitor(Bytes),
}

/// Bytes of bookkeeping counted per queued message besides its contents (the frame headers
/// and the queue slot), so a flood of empty messages is bounded too.
const MESSAGE_OVERHEAD: usize = 48;

impl Pushed {
    fn size(&self) -> usize {
        MESSAGE_OVERHEAD
            + match self {
                Pushed::Message { channel, payload, .. } => channel.len() + payload.len(),
                Pushed::PMessage {
                    pattern,
                    channel,
                    payload,
                } => pattern.len() + channel.len() + payload.len(),
                Pushed::Monitor(line) => line.len(),
            }
    }

    /// Encodes the message as Redis sends it: an array in RESP2, a push frame in RESP3; a
    /// MONITOR line is a status line in both.
    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        match self {
            Pushed::Message {
                shard,
                channel,
                payload,
            } => {
                let kind: &[u8] = if *shard { b"smessage" } else { b"message" };
                encode_push(proto, &[kind, channel, payload], None, out);
            }
            Pushed::PMessage {
                pattern,
                channel,
                payload,
            } => encode_push(proto, &[b"pmessage", pattern, channel, payload], None, out),
            Pushed::Monitor(line) => {
                out.reserve(line.len() + 3);
                out.put_u8(b'+');
                out.put_slice(line);
                out.put_slice(b"\r\n");
            }
        }
    }
}

/// Encodes a pub/sub frame (an array in RESP2, a push in RESP3): `items` as bulk strings,
/// then `count` as an integer if given.
pub fn encode_push(proto: Protocol, items: &[&[u8]], count: Option<i64>, out: &mut BytesMut) {
    put_push_header(proto, items.len() + usize::from(count.is_some()), out);
    for item in items {
        put_bulk(out, item);
    }
    if let Some(c) = count {
        out.put_u8(b':');
        put_decimal(out, c);
    }
}

/// Like [`encode_push`], with `None` items sent as null bulk strings (UNSUBSCRIBE of nothing).
pub fn encode_push_parts(proto: Protocol, items: &[Option<&[u8]>], count: Option<i64>, out: &mut BytesMut) {
    put_push_header(proto, items.len() + usize::from(count.is_some()), out);
    for item in items {
        match item {
            Some(b) => put_bulk(out, b),
            None if proto == Protocol::Resp3 => out.put_slice(b"_\r\n"),
            None => out.put_slice(b"$-1\r\n"),
        }
    }
    if let Some(c) = count {
        out.put_u8(b':');
        put_decimal(out, c);
    }
}

fn put_push_header(proto: Protocol, n: usize, out: &mut BytesMut) {
    out.put_u8(if proto == Protocol::Resp3 { b'>' } else { b'*' });
    put_decimal(out, n as i64);
}

fn put_bulk(out: &mut BytesMut, b: &[u8]) {
    out.reserve(b.len() + 16);
    out.put_u8(b'$');
    put_decimal(out, b.len() as i64);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

fn put_decimal(out: &mut BytesMut, n: i64) {
    let mut buf = itoa::Buffer::new();
    out.put_slice(buf.format(n).as_bytes());
    out.put_slice(b"\r\n");
}

/// `client-output-buffer-limit pubsub`: a subscriber whose unwritten output exceeds
/// `hard_bytes`, or stays above `soft_bytes` for `soft_duration`, is disconnected (0 = no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    pub hard_bytes: u64,
    pub soft_bytes: u64,
    pub soft_duration: Duration,
}

impl Default for OutputLimit {
    /// Redis's default for the pubsub class: 32mb 8mb 60.
    fn default() -> Self {
        OutputLimit {
            hard_bytes: 32 * 1024 * 1024,
            soft_bytes: 8 * 1024 * 1024,
            soft_duration: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Pushed>,
    bytes: usize,
    /// Since when the output has been above the soft limit.
    soft_since: Option<Instant>,
}

/// One client's incoming pushed messages, and what others may see of its subscriptions.
#[derive(Debug)]
pub struct Mailbox {
    pub client: u64,
    queue: Mutex<Queue>,
    /// Woken when a message arrives or the mailbox is closed.
    ready: Notify,
    pending: AtomicBool,
    closed: AtomicBool,
    /// Bytes the connection took from the mailbox and has not finished writing: they count
    /// towards the output limit.
    writing: AtomicUsize,
    /// Subscription counts (CLIENT LIST `sub`, `psub`, `ssub`).
    pub channels: AtomicUsize,
    pub patterns: AtomicUsize,
    pub shard_channels: AtomicUsize,
    pub monitor: AtomicBool,
}

impl Mailbox {
    pub fn new(client: u64) -> Mailbox {
        Mailbox {
            client,
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            writing: AtomicUsize::new(0),
            channels: AtomicUsize::new(0),
            patterns: AtomicUsize::new(0),
            shard_channels: AtomicUsize::new(0),
            monitor: AtomicBool::new(false),
        }
    }

    /// Channel and pattern subscriptions (what (P)SUBSCRIBE replies count).
    pub fn subscriptions(&self) -> usize {
        self.channels.load(Relaxed) + self.patterns.load(Relaxed)
    }

    /// Whether the client is in subscribed mode (any kind of subscription).
    pub fn subscribed(&self) -> bool {
        self.subscriptions() + self.shard_channels.load(Relaxed) > 0
    }

    /// Queues a message unless the mailbox is closed; closes it when the client's unwritten
    /// output goes past `limit`.
    fn deliver(&self, message: Pushed, limit: &OutputLimit, now: Instant) {
        if self.closed.load(Relaxed) {
            return;
        }
        let mut q = self.queue.lock();
        q.bytes += message.size();
        q.items.push_back(message);
        let total = (q.bytes + self.writing.load(Relaxed)) as u64;
        let over_hard = limit.hard_bytes > 0 && total > limit.hard_bytes;
        let over_soft = limit.soft_bytes > 0 && total > limit.soft_bytes;
        let soft_expired = if over_soft {
            let since = *q.soft_since.get_or_insert(now);
            now.duration_since(since) >= limit.soft_duration
        } else {
            q.soft_since = None;
            false
        };
        if over_hard || soft_expired {
            tracing::warn!(
                client = self.client,
                bytes = total,
                "closing a client that went over its output buffer limit (pubsub)"
            );
            self.closed.store(true, Relaxed);
            *q = Queue::default();
        } else {
            self.pending.store(true, Relaxed);
        }
        drop(q);
        self.ready.notify_one();
    }

    /// Whether messages are waiting (cheap: one atomic load).
    pub fn has_pending(&self) -> bool {
        self.pending.load(Relaxed)
    }

    /// Moves the waiting messages into `out`, encoded for `proto`; returns how many bytes
    /// were added.
    pub fn drain_into(&self, proto: Protocol, out: &mut BytesMut) -> usize {
        let before = out.len();
        let mut q = self.queue.lock();
        self.pending.store(false, Relaxed);
        for m in q.items.drain(..) {
            m.encode(proto, out);
        }
        q.bytes = 0;
        q.soft_since = None;
        out.len() - before
    }

    /// Records how many taken bytes the connection is writing (0 when done).
    pub fn set_writing(&self, bytes: usize) {
        self.writing.store(bytes, Relaxed);
    }

    /// Waits until a message arrives or the mailbox is closed.
    pub async fn wait(&self) {
        if self.has_pending() || self.is_closed() {
            return;
        }
        self.ready.notified().await;
    }

    /// Resolves once the mailbox is closed (wake-ups for new messages are passed over).
    pub async fn closed(&self) {
        while !self.is_closed() {
            self.ready.notified().await;
        }
    }

    /// Closed for going over the output limit: the connection must end.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }
}

/// The subscriptions of one client, by kind.
#[derive(Debug, Default)]
struct ClientSubs {
    channels: HashSet<Bytes, ahash::RandomState>,
    patterns: HashSet<Bytes, ahash::RandomState>,
    shard_channels: HashSet<Bytes, ahash::RandomState>,
}

/// Which kind of subscription a (un)subscribe is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

type Subscribers = HashMap<Bytes, Vec<Arc<Mailbox>>, ahash::RandomState>;

/// Who listens to what, plus the keyspace-event switches and the output limit.
#[derive(Debug, Default)]
pub struct PubSub {
    channels: Subscribers,
    patterns: Subscribers,
    shard_channels: Subscribers,
    clients: HashMap<u64, ClientSubs, ahash::RandomState>,
    monitors: Vec<Arc<Mailbox>>,
    /// MONITOR lines held back while a script is tried inline: if it moves to the script
    /// thread it runs again from the start, and only that run may be shown.
    held: Option<Vec<Bytes>>,
    /// `notify-keyspace-events` as flag bits ([`events`]).
    pub notify_flags: u32,
    pub limit: OutputLimit,
}

impl PubSub {
    fn map(&mut self, kind: Kind) -> &mut Subscribers {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }

    fn counter(mailbox: &Mailbox, kind: Kind) -> &AtomicUsize {
        match kind {
            Kind::Channel => &mailbox.channels,
            Kind::Pattern => &mailbox.patterns,
            Kind::Shard => &mailbox.shard_channels,
        }
    }

    /// Subscribes `mailbox`'s client to `name`; false if it already was.
    pub fn subscribe(&mut self, mailbox: &Arc<Mailbox>, kind: Kind, name: &Bytes) -> bool {
        let subs = self.clients.entry(mailbox.client).or_default();
        let set = match kind {
            Kind::Channel => &mut subs.channels,
            Kind::Pattern => &mut subs.patterns,
            Kind::Shard => &mut subs.shard_channels,
        };
        if !set.insert(name.clone()) {
            return false;
        }
        Self::counter(mailbox, kind).fetch_add(1, Relaxed);
        self.map(kind)
            .entry(name.clone())
            .or_default()
            .push(mailbox.clone());
        true
    }

    /// Unsubscribes `mailbox`'s client from `name`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, mailbox: &Mailbox, kind: Kind, name: &[u8]) -> bool {
        let Some(subs) = self.clients.get_mut(&mailbox.client) else {
            return false;
        };
        let set = match kind {
            Kind::Channel => &mut subs.channels,
            Kind::Pattern => &mut subs.patterns,
            Kind::Shard => &mut subs.shard_channels,
        };
        if !set.remove(name) {
            return false;
        }
        if subs.channels.is_empty() && subs.patterns.is_empty() && subs.shard_channels.is_empty() {
            self.clients.remove(&mailbox.client);
        }
        Self::counter(mailbox, kind).fetch_sub(1, Relaxed);
        let map = self.map(kind);
        if let Some(list) = map.get_mut(name) {
            list.retain(|m| m.client != mailbox.client);
            if list.is_empty() {
                map.remove(name);
            }
        }
        true
    }

    /// The names a client is subscribed to, of one kind (UNSUBSCRIBE without arguments).
    pub fn subscriptions_of(&self, client: u64, kind: Kind) -> Vec<Bytes> {
        self.clients.get(&client).map_or_else(Vec::new, |s| {
            match kind {
                Kind::Channel => &s.channels,
                Kind::Pattern => &s.patterns,
                Kind::Shard => &s.shard_channels,
            }
            .iter()
            .cloned()
            .collect()
        })
    }

    /// Forgets every subscription of a client and stops its MONITOR (it left, or RESET).
    pub fn remove_client(&mut self, mailbox: &Mailbox) {
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for name in self.subscriptions_of(mailbox.client, kind) {
                self.unsubscribe(mailbox, kind, &name);
            }
        }
        self.stop_monitor(mailbox);
    }

    /// Publishes `payload` on `channel` (a shard channel if `shard`); returns how many
    /// clients received it.
    pub fn publish(&self, channel: &Bytes, payload: &Bytes, shard: bool) -> usize {
        let now = Instant::now();
        let mut receivers = 0;
        let map = if shard {
            &self.shard_channels
        } else {
            &self.channels
        };
        if let Some(list) = map.get(channel) {
            for m in list {
                m.deliver(
                    Pushed::Message {
                        shard,
                        channel: channel.clone(),
                        payload: payload.clone(),
                    },
                    &self.limit,
                    now,
                );
                receivers += 1;
            }
        }
        if !shard {
            for (pattern, list) in &self.patterns {
                if !glob_match(pattern, channel, false) {
                    continue;
                }
                for m in list {
                    m.deliver(
                        Pushed::PMessage {
                            pattern: pattern.clone(),
                            channel: channel.clone(),
                            payload: payload.clone(),
                        },
                        &self.limit,
                        now,
                    );
                    receivers += 1;
                }
            }
        }
        receivers
    }

    /// Channels (or shard channels) with at least one subscriber, matching `pattern` if given.
    pub fn active_channels(&self, shard: bool, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let map = if shard {
            &self.shard_channels
        } else {
            &self.channels
        };
        map.keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    /// Subscribers of one channel (or shard channel), pattern subscriptions excluded.
    pub fn subscriber_count(&self, shard: bool, channel: &[u8]) -> usize {
        let map = if shard {
            &self.shard_channels
        } else {
            &self.channels
        };
        map.get(channel).map_or(0, Vec::len)
    }

    /// Channels with subscribers (INFO `pubsub_channels`).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Shard channels with subscribers (INFO `pubsubshard_channels`).
    pub fn shard_channel_count(&self) -> usize {
        self.shard_channels.len()
    }

    /// Distinct patterns with subscribers (PUBSUB NUMPAT, INFO `pubsub_patterns`).
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    pub fn start_monitor(&mut self, mailbox: &Arc<Mailbox>) {
        if !mailbox.monitor.swap(true, Relaxed) {
            self.monitors.push(mailbox.clone());
        }
    }

    pub fn stop_monitor(&mut self, mailbox: &Mailbox) {
        if mailbox.monitor.swap(false, Relaxed) {
            self.monitors.retain(|m| m.client != mailbox.client);
        }
    }

    /// Whether any client is in MONITOR mode (checked before formatting a line).
    pub fn monitoring(&self) -> bool {
        !self.monitors.is_empty()
    }

    /// Holds back MONITOR lines until [`PubSub::release_held`] or [`PubSub::discard_held`].
    pub fn hold_monitor_lines(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Sends the held lines.
    pub fn release_held(&mut self) {
        for line in self.held.take().unwrap_or_default() {
            self.feed_monitors(line);
        }
    }

    /// Drops the held lines (the command will run again).
    pub fn discard_held(&mut self) {
        self.held = None;
    }

    /// Sends a MONITOR line to every monitoring client.
    pub fn feed_monitors(&mut self, line: Bytes) {
        if let Some(held) = self.held.as_mut() {
            held.push(line);
            return;
        }
        let now = Instant::now();
        for m in &self.monitors {
            // A monitor is a normal client for the output limit, which Redis leaves unbounded.
            m.deliver(Pushed::Monitor(line.clone()), &OutputLimit::UNLIMITED, now);
        }
    }
}

impl OutputLimit {
    /// No limit (Redis's default for normal clients, which MONITOR clients are).
    pub const UNLIMITED: OutputLimit = OutputLimit {
        hard_bytes: 0,
        soft_bytes: 0,
        soft_duration: Duration::ZERO,
    };
}

/// The `notify-keyspace-events` flags, with Redis's letters.
pub mod events {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const KEYEVENT: u32 = 1 << 1;
    pub const GENERIC: u32 = 1 << 2;
    pub const STRING: u32 = 1 << 3;
    pub const LIST: u32 = 1 << 4;
    pub const SET: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const ZSET: u32 = 1 << 7;
    pub const EXPIRED: u32 = 1 << 8;
    pub const EVICTED: u32 = 1 << 9;
    pub const STREAM: u32 = 1 << 10;
    pub const KEY_MISS: u32 = 1 << 11;
    pub const MODULE: u32 = 1 << 12;
    pub const NEW: u32 = 1 << 13;
    /// `A`: every class but key misses and new keys.
    pub const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

    /// Parses a flag string as Redis does; `None` on a character Redis does not know.
    pub fn parse(text: &[u8]) -> Option<u32> {
        text.iter().try_fold(0, |flags, c| {
            Some(
                flags
                    | match c {
                        b'A' => ALL,
                        b'g' => GENERIC,
                        b'$' => STRING,
                        b'l' => LIST,
                        b's' => SET,
                        b'h' => HASH,
                        b'z' => ZSET,
                        b'x' => EXPIRED,
                        b'e' => EVICTED,
                        b'K' => KEYSPACE,
                        b'E' => KEYEVENT,
                        b't' => STREAM,
                        b'm' => KEY_MISS,
                        b'd' => MODULE,
                        b'n' => NEW,
                        _ => return None,
                    },
            )
        })
    }

    /// The canonical flag string CONFIG GET answers (`A` stands for its classes alone).
    pub fn to_text(flags: u32) -> String {
        let mut s = String::new();
        if flags & ALL == ALL {
            s.push('A');
        } else {
            for (bit, c) in [
                (GENERIC, 'g'),
                (STRING, '$'),
                (LIST, 'l'),
                (SET, 's'),
                (HASH, 'h'),
                (ZSET, 'z'),
                (EXPIRED, 'x'),
                (EVICTED, 'e'),
                (STREAM, 't'),
                (MODULE, 'd'),
                (NEW, 'n'),
            ] {
                if flags & bit != 0 {
                    s.push(c);
                }
            }
        }
        for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_flags_round_trip_as_redis_prints_them() {
        for (input, canonical) in [
            ("AKEmn", "AKEm"),
            ("KEA", "AKE"),
            ("gx", "gx"),
            ("", ""),
            ("Ex", "xE"),
            ("Elxn", "lxnE"),
            ("A$", "A"),
            ("tdm", "tdm"),
        ] {
            let flags = events::parse(input.as_bytes()).unwrap_or(u32::MAX);
            assert_eq!(events::to_text(flags), canonical, "{input}");
        }
        assert_eq!(events::parse(b"qq"), None);
    }

    #[test]
    fn publish_reaches_channel_and_pattern_subscribers_once_each() {
        let mut ps = PubSub::default();
        let a = Arc::new(Mailbox::new(1));
        let b = Arc::new(Mailbox::new(2));
        assert!(ps.subscribe(&a, Kind::Channel, &Bytes::from_static(b"news")));
        assert!(!ps.subscribe(&a, Kind::Channel, &Bytes::from_static(b"news")));
        assert!(ps.subscribe(&b, Kind::Pattern, &Bytes::from_static(b"n*")));
        let n = ps.publish(&Bytes::from_static(b"news"), &Bytes::from_static(b"hi"), false);
        assert_eq!(n, 2);
        let mut out = BytesMut::new();
        a.drain_into(Protocol::Resp2, &mut out);
        assert_eq!(&out[..], b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
        out.clear();
        b.drain_into(Protocol::Resp3, &mut out);
        assert_eq!(
            &out[..],
            b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        ps.remove_client(&a);
        assert_eq!(ps.channel_count(), 0);
        assert_eq!(a.subscriptions(), 0);
    }

    #[test]
    fn a_subscriber_over_the_soft_limit_for_its_duration_is_closed_and_draining_resets_it() {
        let limit = OutputLimit {
            hard_bytes: 0,
            soft_bytes: 100,
            soft_duration: Duration::from_secs(60),
        };
        let m = Mailbox::new(1);
        let t0 = Instant::now();
        let big = || Pushed::Monitor(Bytes::from(vec![b'x'; 200]));
        m.deliver(big(), &limit, t0);
        m.deliver(big(), &limit, t0 + Duration::from_secs(59));
        assert!(!m.is_closed(), "over the soft limit for less than its duration");
        // Written out in time: the clock starts again.
        m.drain_into(Protocol::Resp2, &mut BytesMut::new());
        m.deliver(big(), &limit, t0 + Duration::from_secs(70));
        assert!(!m.is_closed());
        m.deliver(big(), &limit, t0 + Duration::from_secs(130));
        assert!(m.is_closed(), "over the soft limit for 60 s");
    }

    #[test]
    fn a_subscriber_past_the_hard_limit_is_closed_and_its_queue_freed() {
        let mut ps = PubSub {
            limit: OutputLimit {
                hard_bytes: 1000,
                ..OutputLimit::default()
            },
            ..PubSub::default()
        };
        let a = Arc::new(Mailbox::new(1));
        ps.subscribe(&a, Kind::Channel, &Bytes::from_static(b"c"));
        let payload = Bytes::from(vec![b'x'; 280]);
        for _ in 0..3 {
            ps.publish(&Bytes::from_static(b"c"), &payload, false);
        }
        assert!(!a.is_closed());
        ps.publish(&Bytes::from_static(b"c"), &payload, false);
        assert!(a.is_closed());
        assert_eq!(a.queue.lock().bytes, 0);
    }
}
