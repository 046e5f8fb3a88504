//! Streams: entries ordered by id, kept in append-ordered chunks, with the id bookkeeping Redis
//! 7.0 keeps (last id, entries added, max deleted id) and consumer groups with their pending
//! entries lists.
//!
//! Representation: a `VecDeque` of chunks of at most [`NODE_MAX_ENTRIES`] entries (or
//! [`NODE_MAX_BYTES`] of the listpack Redis would hold, counted as Redis counts its nodes, so
//! chunks close where its nodes close and DUMP writes the same nodes), each chunk one byte buffer like
//! Redis's listpack node: per entry a flag byte, the id as varint deltas from the chunk's first
//! id, and the fields packed with varint lengths; an entry whose field names are those of the
//! chunk's first entry stores only its values. A `BTreeMap<StreamId, Vec<Bytes>>` costs a map
//! slot, a vector and a 32-byte `Bytes` header per field on top of the data; this costs the
//! data and about five bytes (1,000,000 entries of one 16-byte field: 27 MB resident against
//! redis-server 7.0.15's 31 MB). Lookups find the chunk by binary search over its cached first
//! and last ids, then decode at most 100 entries. A deleted entry keeps its slot (flagged) until
//! its whole chunk goes, as in a listpack node, so approximate trimming (`MAXLEN ~`) drops the
//! same whole chunks redis-server drops for the same command sequence.

use crate::reply::Reply;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Entries per chunk, as Redis's `stream-node-max-entries` default.
pub const NODE_MAX_ENTRIES: usize = 100;
/// Estimated bytes per chunk, as Redis's `stream-node-max-bytes` default.
pub const NODE_MAX_BYTES: usize = 4096;
/// The entries-read counter Redis calls invalid (`SCG_INVALID_ENTRIES_READ`).
pub const INVALID_ENTRIES_READ: i64 = -1;

/// A stream entry id: milliseconds and a sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The next id, or `None` past the last possible one.
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The previous id, or `None` before 0-0.
    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    pub fn to_bytes(self) -> Bytes {
        Bytes::from(self.to_string())
    }

    pub fn reply(self) -> Reply {
        Reply::Bulk(self.to_bytes())
    }

    /// Parses `ms`, `ms-seq` (and `ms-*` when `seq_star`, which gives `seq_given == false`).
    /// A missing sequence is `missing_seq`. `-` and `+` are 0-0 and the maximum id unless
    /// `strict`. Numbers are read as Redis's `string2ull` reads them.
    pub fn parse(b: &[u8], missing_seq: u64, strict: bool, seq_star: bool) -> Option<(StreamId, bool)> {
        if b.len() > 127 {
            return None;
        }
        if !strict && b == b"-" {
            return Some((StreamId::MIN, true));
        }
        if !strict && b == b"+" {
            return Some((StreamId::MAX, true));
        }
        match b.iter().position(|&c| c == b'-') {
            None => Some((StreamId::new(parse_u64(b)?, missing_seq), true)),
            Some(dash) => {
                let ms = parse_u64(&b[..dash])?;
                let rest = &b[dash + 1..];
                if seq_star && rest == b"*" {
                    return Some((StreamId::new(ms, 0), false));
                }
                Some((StreamId::new(ms, parse_u64(rest)?), true))
            }
        }
    }

    /// Parses an id as a command argument (`-`/`+` refused, missing sequence 0).
    pub fn parse_strict(b: &[u8]) -> Option<StreamId> {
        StreamId::parse(b, 0, true, false).map(|(id, _)| id)
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An unsigned decimal as Redis's `string2ull` accepts it: `strtoull` syntax (leading blanks,
/// an optional `+`, leading zeros), nothing after the digits, no overflow.
fn parse_u64(b: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(b).ok()?;
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Packs an entry's fields and values into one allocation.
fn pack(fields: &[Bytes]) -> Box<[u8]> {
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 2).sum::<usize>() + 2);
    put_varint(&mut out, fields.len() as u64);
    for f in fields {
        put_varint(&mut out, f.len() as u64);
        out.extend_from_slice(f);
    }
    out.into_boxed_slice()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&c) = b.get(*pos) {
        *pos += 1;
        v |= u64::from(c & 0x7f) << shift;
        if c & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

/// The strings of a packed list (a count, then each string's length and bytes).
fn unpack_list(packed: &[u8]) -> Vec<&[u8]> {
    let mut pos = 0;
    let n = get_varint(packed, &mut pos) as usize;
    let mut out = Vec::with_capacity(n.min(packed.len()));
    for _ in 0..n {
        let len = get_varint(packed, &mut pos) as usize;
        let end = (pos + len).min(packed.len());
        out.push(&packed[pos..end]);
        pos = end;
    }
    out
}

/// An entry's fields as stored: fields and values packed together, or only the values when
/// the field names are those of its chunk's first entry (Redis's "same fields" entries).
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a> {
    names: Option<&'a [u8]>,
    data: &'a [u8],
}

impl Fields<'_> {
    /// Field, value, field, value…
    pub fn to_vec(self) -> Vec<Bytes> {
        match self.names {
            None => unpack_list(self.data)
                .into_iter()
                .map(Bytes::copy_from_slice)
                .collect(),
            Some(names) => unpack_list(names)
                .into_iter()
                .zip(unpack_list(self.data))
                .flat_map(|(n, v)| [Bytes::copy_from_slice(n), Bytes::copy_from_slice(v)])
                .collect(),
        }
    }
}

/// `[id, [field, value, ...]]`, an entry as every stream command replies with it.
pub fn entry_reply(id: StreamId, fields: Fields<'_>) -> Reply {
    Reply::Array(vec![
        id.reply(),
        Reply::Array(fields.to_vec().into_iter().map(Reply::Bulk).collect()),
    ])
}

/// A run of consecutive entries (Redis's listpack node), packed back to back in one buffer:
/// a flag byte (deleted or not), the id as varint deltas from the chunk's master id, the
/// length of the packed fields, and the fields. A deleted entry keeps its place until the
/// whole chunk goes, as in a listpack node.
#[derive(Clone, Debug, Default)]
struct Chunk {
    /// The id of the first entry ever appended here (Redis's node key), deleted or not.
    master: StreamId,
    /// That entry's field names, packed: later entries with the same names store only values.
    names: Box<[u8]>,
    buf: Vec<u8>,
    /// First and last live ids, for finding a chunk without decoding it.
    first: StreamId,
    last: StreamId,
    /// Live entries.
    live: usize,
    /// Entries ever appended here, deleted ones included: a chunk is full by this count.
    slots: usize,
    /// Bytes of the listpack Redis would hold for this chunk, which decide when it is full.
    bytes: usize,
}

const DELETED: u8 = 1;
/// The entry stores only values; the names are the chunk's.
const SAME_FIELDS: u8 = 2;

/// One decoded entry of a chunk.
struct Slot<'a> {
    /// Offset of its flag byte.
    at: usize,
    id: StreamId,
    fields: Fields<'a>,
    deleted: bool,
}

/// Every slot of a chunk, deleted ones included, in order.
struct Slots<'a> {
    chunk: &'a Chunk,
    pos: usize,
}

impl<'a> Iterator for Slots<'a> {
    type Item = Slot<'a>;

    fn next(&mut self) -> Option<Slot<'a>> {
        let buf = &self.chunk.buf;
        let at = self.pos;
        let flag = *buf.get(at)?;
        let mut pos = at + 1;
        let dms = get_varint(buf, &mut pos);
        let seq = get_varint(buf, &mut pos);
        let master = self.chunk.master;
        let id = if dms == 0 {
            StreamId::new(master.ms, master.seq.wrapping_add(seq))
        } else {
            StreamId::new(master.ms.wrapping_add(dms), seq)
        };
        let len = get_varint(buf, &mut pos) as usize;
        let end = (pos + len).min(buf.len());
        self.pos = end;
        let names = (flag & SAME_FIELDS != 0).then_some(&self.chunk.names[..]);
        Some(Slot {
            at,
            id,
            fields: Fields {
                names,
                data: &buf[pos..end],
            },
            deleted: flag & DELETED != 0,
        })
    }
}

impl Chunk {
    /// An empty chunk whose master entry holds `names`.
    fn new(master: StreamId, names: &[Bytes]) -> Chunk {
        Chunk {
            master,
            names: pack(names),
            first: master,
            last: master,
            bytes: master_entry_size(names),
            ..Chunk::default()
        }
    }

    fn slots(&self) -> Slots<'_> {
        Slots { chunk: self, pos: 0 }
    }

    /// Live entries in order.
    fn entries(&self) -> impl Iterator<Item = (StreamId, Fields<'_>)> {
        self.slots().filter(|s| !s.deleted).map(|s| (s.id, s.fields))
    }

    /// Appends an entry.
    fn push(&mut self, id: StreamId, fields: &[Bytes]) {
        let names: Vec<Bytes> = fields.iter().step_by(2).cloned().collect();
        let same = *pack(&names) == *self.names;
        let packed = if same {
            pack(&fields.iter().skip(1).step_by(2).cloned().collect::<Vec<_>>())
        } else {
            pack(fields)
        };
        // What the entry adds to Redis's listpack: flags, the two id deltas, the field count
        // and names unless shared, the values, and the element count closing the entry.
        let stored: usize = if same {
            fields.iter().skip(1).step_by(2).map(|v| lp_size(v)).sum()
        } else {
            lp_int_size((fields.len() / 2) as i64) + fields.iter().map(|f| lp_size(f)).sum::<usize>()
        };
        let elements = if same { names.len() + 3 } else { fields.len() + 4 };
        self.bytes += 2
            + lp_int_size(id.ms.wrapping_sub(self.master.ms) as i64)
            + lp_int_size(id.seq.wrapping_sub(self.master.seq) as i64)
            + stored
            + lp_int_size(elements as i64);
        self.buf.push(if same { SAME_FIELDS } else { 0 });
        let (dms, seq) = if id.ms == self.master.ms {
            (0, id.seq - self.master.seq)
        } else {
            (id.ms - self.master.ms, id.seq)
        };
        put_varint(&mut self.buf, dms);
        put_varint(&mut self.buf, seq);
        put_varint(&mut self.buf, packed.len() as u64);
        self.buf.extend_from_slice(&packed);
        if self.live == 0 {
            self.first = id;
        }
        self.last = id;
        self.live += 1;
        self.slots += 1;
    }

    /// Marks the entries at `offsets` deleted and refreshes the first and last live ids.
    fn mark_deleted(&mut self, offsets: &[usize]) {
        for &at in offsets {
            if let Some(flag) = self.buf.get_mut(at) {
                *flag |= DELETED;
            }
        }
        self.live -= offsets.len();
        let mut live = self.entries().map(|(id, _)| id);
        let first = live.next();
        let last = live.last().or(first);
        if let (Some(first), Some(last)) = (first, last) {
            self.first = first;
            self.last = last;
        }
    }
}

/// Bytes an integer takes as a listpack element (its smallest encoding and the back-length).
fn lp_int_size(n: i64) -> usize {
    let body = match n {
        0..=127 => 1,
        -4096..=4095 => 2,
        _ if i16::try_from(n).is_ok() => 3,
        -8_388_608..=8_388_607 => 4,
        _ if i32::try_from(n).is_ok() => 5,
        _ => 9,
    };
    body + 1
}

/// Bytes a string takes as a listpack element: a canonical decimal integer is stored as one.
fn lp_size(e: &[u8]) -> usize {
    if let Some(n) = canonical_int(e) {
        return lp_int_size(n);
    }
    let body = e.len()
        + match e.len() {
            0..64 => 1,
            64..4096 => 2,
            _ => 5,
        };
    body + match body {
        0..128 => 1,
        128..16_383 => 2,
        16_383..2_097_151 => 3,
        2_097_151..268_435_455 => 4,
        _ => 5,
    }
}

/// `e` as an i64 if it is written the one way Redis prints that number (no sign but `-`, no
/// leading zero, no `-0`). Checked without allocating: every XADD field passes here.
fn canonical_int(e: &[u8]) -> Option<i64> {
    let digits = e.strip_prefix(b"-").unwrap_or(e);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && e.len() > 1 {
        return None;
    }
    std::str::from_utf8(e).ok()?.parse().ok()
}

/// The bytes an empty node's listpack takes with its master entry: header and end byte, the
/// live and deleted counts (under 128 at 100 entries a node), the field count, the names, and
/// the zero terminator.
fn master_entry_size(names: &[Bytes]) -> usize {
    6 + 1 + 2 + 2 + lp_int_size(names.len() as i64) + names.iter().map(|n| lp_size(n)).sum::<usize>() + 2
}

/// A chunk as DUMP writes it, Redis's listpack node: its master id and field names, and every
/// slot, deleted ones included.
pub struct NodeView<'a> {
    pub master: StreamId,
    pub names: Vec<&'a [u8]>,
    pub live: usize,
    pub slots: Vec<SlotView<'a>>,
}

/// One slot of a [`NodeView`].
pub struct SlotView<'a> {
    pub id: StreamId,
    pub deleted: bool,
    /// The entry's field names are the node's: `strings` holds only its values.
    pub same_fields: bool,
    /// Field, value, field, value… (only the values when `same_fields`).
    pub strings: Vec<&'a [u8]>,
}

/// One slot of a node read from a DUMP payload: its id, whether it is deleted, and its
/// fields (field, value, …).
pub type LoadedSlot = (StreamId, bool, Vec<Bytes>);

/// What XADD/XTRIM trim to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

/// One pending (delivered, not yet acknowledged) entry of a group.
#[derive(Clone, Debug)]
pub struct Nack {
    pub consumer: Bytes,
    /// Unix ms of the last delivery.
    pub delivery_ms: u64,
    pub delivery_count: u64,
}

/// A consumer of a group: when it was last seen and the ids pending for it.
#[derive(Clone, Debug, Default)]
pub struct Consumer {
    pub seen_ms: u64,
    pub pel: BTreeSet<StreamId>,
}

/// A consumer group.
#[derive(Clone, Debug)]
pub struct Group {
    pub last_id: StreamId,
    /// Entries the group has read, or [`INVALID_ENTRIES_READ`] when unknown.
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// The consumer `name`, created if absent; true if it was created.
    pub fn consumer(&mut self, name: &[u8], now_ms: u64) -> (&mut Consumer, bool) {
        let created = !self.consumers.contains_key(name);
        let c = self
            .consumers
            .entry(Bytes::copy_from_slice(name))
            .or_insert_with(|| Consumer {
                seen_ms: now_ms,
                pel: BTreeSet::new(),
            });
        (c, created)
    }

    /// Acknowledges `id`: true if it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pel.remove(&id) {
            Some(n) => {
                if let Some(c) = self.consumers.get_mut(&n.consumer) {
                    c.pel.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// Makes `id` pending for `consumer` (moving it from whoever held it).
    pub fn assign(&mut self, id: StreamId, consumer: &Bytes, delivery_ms: u64, delivery_count: u64) {
        if let Some(old) = self.pel.get(&id) {
            if old.consumer != *consumer {
                if let Some(c) = self.consumers.get_mut(&old.consumer) {
                    c.pel.remove(&id);
                }
            }
        }
        self.pel.insert(
            id,
            Nack {
                consumer: consumer.clone(),
                delivery_ms,
                delivery_count,
            },
        );
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
    }

    /// Deletes a consumer and its pending entries; returns how many were pending.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }
}

/// A stream value.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    chunks: VecDeque<Chunk>,
    len: usize,
    pub last_id: StreamId,
    pub entries_added: u64,
    pub max_deleted: StreamId,
    pub groups: BTreeMap<Bytes, Group>,
}

/// Why XADD could not pick an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdError {
    /// Equal to or below the last id.
    TooSmall,
    /// 0-0 was given.
    Zero,
    /// The last id is the maximum.
    Exhausted,
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Redis's OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        "stream"
    }

    /// A deep copy (COPY).
    pub fn duplicate(&self) -> Stream {
        self.clone()
    }

    /// Chunks (Redis's radix-tree keys, which hold one listpack node each).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Nodes of the radix tree Redis would index these chunks with (XINFO's
    /// `radix-tree-nodes`): keyed by each chunk's first id in big-endian bytes, one node per
    /// run of shared bytes, per branching byte, and per key.
    pub fn radix_nodes(&self) -> usize {
        fn node(keys: &[[u8; 16]], depth: usize) -> usize {
            if keys.len() == 1 {
                return if depth == 16 { 1 } else { 2 };
            }
            let (first, last) = (keys[0], keys[keys.len() - 1]);
            let shared = (depth..16).take_while(|&i| first[i] == last[i]).count();
            let compressed = usize::from(shared > 0);
            compressed + branch(keys, depth + shared)
        }
        fn branch(keys: &[[u8; 16]], depth: usize) -> usize {
            let mut total = 1;
            let mut start = 0;
            while start < keys.len() {
                let byte = keys[start][depth];
                let end = start + keys[start..].iter().take_while(|k| k[depth] == byte).count();
                total += node(&keys[start..end], depth + 1);
                start = end;
            }
            total
        }
        let keys: Vec<[u8; 16]> = self
            .chunks
            .iter()
            .map(|c| {
                let mut k = [0u8; 16];
                k[..8].copy_from_slice(&c.master.ms.to_be_bytes());
                k[8..].copy_from_slice(&c.master.seq.to_be_bytes());
                k
            })
            .collect();
        if keys.is_empty() {
            1
        } else {
            node(&keys, 0)
        }
    }

    /// The first entry's id, or 0-0 when empty (Redis's `recorded-first-entry-id`).
    pub fn first_id(&self) -> StreamId {
        self.first().map_or(StreamId::MIN, |(id, _)| id)
    }

    pub fn first(&self) -> Option<(StreamId, Fields<'_>)> {
        self.chunks.front().and_then(|c| c.entries().next())
    }

    pub fn last(&self) -> Option<(StreamId, Fields<'_>)> {
        self.chunks.back().and_then(|c| c.entries().last())
    }

    /// The id XADD would give: `requested` is `None` for `*`, `(id, false)` for `ms-*`.
    pub fn next_id(&self, requested: Option<(StreamId, bool)>, now_ms: u64) -> Result<StreamId, IdError> {
        let last = self.last_id;
        match requested {
            None => {
                if last.ms < now_ms {
                    Ok(StreamId::new(now_ms, 0))
                } else {
                    last.next().ok_or(IdError::Exhausted)
                }
            }
            Some((id, false)) => {
                if id.ms == last.ms {
                    if last.seq == u64::MAX {
                        return Err(IdError::TooSmall);
                    }
                    Ok(StreamId::new(id.ms, last.seq + 1))
                } else if id.ms > last.ms {
                    Ok(id)
                } else {
                    Err(IdError::TooSmall)
                }
            }
            Some((id, true)) => {
                if id.is_zero() {
                    Err(IdError::Zero)
                } else if id <= last {
                    Err(IdError::TooSmall)
                } else {
                    Ok(id)
                }
            }
        }
    }

    /// Appends an entry whose id is above the last id.
    pub fn append(&mut self, id: StreamId, fields: &[Bytes]) {
        // Redis closes a node when its listpack plus the new entry's raw field and value bytes
        // would reach the limit.
        let raw: usize = fields.iter().map(|f| f.len()).sum();
        let fits = self
            .chunks
            .back()
            .is_some_and(|c| c.slots < NODE_MAX_ENTRIES && c.bytes + raw < NODE_MAX_BYTES);
        if !fits {
            // A closed chunk never grows again: move it to an allocation of its size. (Not
            // `shrink_to_fit`: mimalloc keeps a block that shrinks by less than half, so a
            // 2.7 KB chunk would go on holding the 4 KB its last doubling gave it.)
            if let Some(c) = self.chunks.back_mut() {
                c.buf = c.buf.to_vec();
            }
            let names: Vec<Bytes> = fields.iter().step_by(2).cloned().collect();
            self.chunks.push_back(Chunk::new(id, &names));
        }
        if let Some(c) = self.chunks.back_mut() {
            c.push(id, fields);
        }
        self.len += 1;
        self.last_id = id;
        self.entries_added += 1;
    }

    /// The chunks as Redis's listpack nodes (DUMP), in order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeView<'_>> {
        self.chunks.iter().map(|c| NodeView {
            master: c.master,
            names: unpack_list(&c.names),
            live: c.live,
            slots: c
                .slots()
                .map(|s| SlotView {
                    id: s.id,
                    deleted: s.deleted,
                    same_fields: s.fields.names.is_some(),
                    strings: unpack_list(s.fields.data),
                })
                .collect(),
        })
    }

    /// Appends a node read from a DUMP payload as one chunk, keeping its deleted slots so
    /// trimming and XINFO see the node Redis had. `None` (nothing changed) unless the node has
    /// a live entry, its ids rise strictly from `master` and lie above every id already here.
    /// The caller sets the id bookkeeping (last id, entries added, max deleted id) afterwards.
    pub fn load_node(&mut self, master: StreamId, names: &[Bytes], slots: &[LoadedSlot]) -> Option<()> {
        if !slots.iter().any(|(_, deleted, _)| !deleted) {
            return None;
        }
        if self.last_slot_id().is_some_and(|f| master <= f) || slots[0].0 < master {
            return None;
        }
        if slots.windows(2).any(|w| w[0].0 >= w[1].0) {
            return None;
        }
        let mut chunk = Chunk::new(master, names);
        let mut deleted = Vec::new();
        for (id, dead, fields) in slots {
            if *dead {
                deleted.push(chunk.buf.len());
            }
            chunk.push(*id, fields);
        }
        chunk.mark_deleted(&deleted);
        // Sized to its contents, as a closed chunk is (see `append`).
        chunk.buf = chunk.buf.to_vec();
        self.len += chunk.live;
        self.chunks.push_back(chunk);
        Some(())
    }

    /// The id of the last slot, deleted or not: anything appended must lie above it.
    pub fn last_slot_id(&self) -> Option<StreamId> {
        self.chunks.back().and_then(|c| c.slots().last()).map(|s| s.id)
    }

    /// Index of the chunk that would hold `id`.
    fn chunk_of(&self, id: StreamId) -> Option<usize> {
        let i = self.chunks.partition_point(|c| c.last < id);
        (i < self.chunks.len()).then_some(i)
    }

    pub fn get(&self, id: StreamId) -> Option<Fields<'_>> {
        let c = &self.chunks[self.chunk_of(id)?];
        c.entries()
            .find(|(i, _)| *i >= id)
            .filter(|(i, _)| *i == id)
            .map(|(_, f)| f)
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.get(id).is_some()
    }

    /// The chunks that may hold entries in `start..=end`.
    fn chunk_span(&self, start: StreamId, end: StreamId) -> std::ops::Range<usize> {
        let from = self.chunk_of(start).unwrap_or(self.chunks.len());
        let to = self.chunks.partition_point(|c| c.first <= end).max(from);
        from..to
    }

    /// Entries with `start <= id <= end`, in order.
    pub fn range(&self, start: StreamId, end: StreamId) -> impl Iterator<Item = (StreamId, Fields<'_>)> {
        self.chunks
            .range(self.chunk_span(start, end))
            .flat_map(|c| c.entries())
            .filter(move |(id, _)| *id >= start && *id <= end)
    }

    /// Entries with `start <= id <= end`, last first (chunks decode forwards: one chunk at a
    /// time is collected and reversed).
    pub fn range_rev(&self, start: StreamId, end: StreamId) -> impl Iterator<Item = (StreamId, Fields<'_>)> {
        self.chunks
            .range(self.chunk_span(start, end))
            .rev()
            .flat_map(|c| {
                let mut v: Vec<(StreamId, Fields<'_>)> = c.entries().collect();
                v.reverse();
                v
            })
            .filter(move |(id, _)| *id >= start && *id <= end)
    }

    /// Deletes one entry (XDEL); true if it existed.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some(ci) = self.chunk_of(id) else { return false };
        let c = &mut self.chunks[ci];
        let Some(at) = c.slots().find(|s| !s.deleted && s.id == id).map(|s| s.at) else {
            return false;
        };
        c.mark_deleted(&[at]);
        if c.live == 0 {
            self.chunks.remove(ci);
        }
        self.len -= 1;
        if id > self.max_deleted {
            self.max_deleted = id;
        }
        true
    }

    /// Trims the oldest entries as Redis's `streamTrim` does: whole chunks first; with `approx`
    /// only whole chunks. `limit` (0 = none) caps the entries removed. Returns how many were.
    pub fn trim(&mut self, trim: Trim, approx: bool, limit: usize) -> usize {
        if let Trim::MaxLen(n) = trim {
            if self.len as u64 <= n {
                return 0;
            }
        }
        let mut deleted = 0;
        while let Some(c) = self.chunks.front_mut() {
            if limit > 0 && deleted >= limit {
                break;
            }
            let live = c.live;
            let whole = match trim {
                Trim::MaxLen(n) => (self.len - live) as u64 >= n,
                Trim::MinId(min) => c.last < min,
            };
            if whole {
                if limit > 0 && deleted + live > limit {
                    break;
                }
                self.chunks.pop_front();
                self.len -= live;
                deleted += live;
                continue;
            }
            if approx {
                break;
            }
            let offsets: Vec<usize> = match trim {
                Trim::MaxLen(n) => {
                    let drop = (self.len as u64 - n) as usize;
                    c.slots()
                        .filter(|s| !s.deleted)
                        .take(drop)
                        .map(|s| s.at)
                        .collect()
                }
                Trim::MinId(min) => c
                    .slots()
                    .filter(|s| !s.deleted && s.id < min)
                    .map(|s| s.at)
                    .collect(),
            };
            c.mark_deleted(&offsets);
            self.len -= offsets.len();
            deleted += offsets.len();
            break;
        }
        deleted
    }

    /// Whether a deleted entry may lie in `start..` (Redis's `streamRangeHasTombstones`).
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.len == 0 || self.max_deleted.is_zero() {
            return false;
        }
        if self.first_id() > self.max_deleted {
            return false;
        }
        start <= self.max_deleted
    }

    /// How many entries were added up to `id`, when that can be known
    /// (Redis's `streamEstimateDistanceFromFirstEverEntry`).
    pub fn entries_read_at(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        let added = self.entries_added as i64;
        if self.len == 0 && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        } else if id > self.last_id {
            return INVALID_ENTRIES_READ;
        }
        let first = self.first_id();
        if self.max_deleted.is_zero() || self.max_deleted < first {
            if id < first {
                return added - self.len as i64;
            } else if id == first {
                return added - self.len as i64 + 1;
            }
        }
        INVALID_ENTRIES_READ
    }

    /// A group's lag (entries not yet delivered to it), `None` when it cannot be known.
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != INVALID_ENTRIES_READ && !self.has_tombstones_from(g.last_id) {
            return Some((self.entries_added as i64).wrapping_sub(g.entries_read));
        }
        let read = self.entries_read_at(g.last_id);
        (read != INVALID_ENTRIES_READ).then(|| (self.entries_added as i64).wrapping_sub(read))
    }

    /// Moves `group`'s last-delivered id to `id` (an entry it delivers), keeping its
    /// entries-read counter as Redis does.
    fn advance_group(&self, g: &mut Group, id: StreamId) {
        if g.entries_read != INVALID_ENTRIES_READ && !self.has_tombstones_from(id) {
            // Wrapping as Redis's counter does: XGROUP … ENTRIESREAD and RESTORE accept any
            // count up to 2^63 - 1, and one more read must not abort the server.
            g.entries_read = g.entries_read.wrapping_add(1);
        } else if self.entries_added > 0 {
            g.entries_read = self.entries_read_at(id);
        }
        g.last_id = id;
    }

    /// Whether `group` has entries it was never delivered.
    pub fn group_has_new(&self, group: &[u8]) -> bool {
        self.groups.get(group).is_some_and(|g| {
            g.last_id
                .next()
                .is_some_and(|from| self.range(from, StreamId::MAX).next().is_some())
        })
    }

    /// XREADGROUP on this stream: `start` `None` reads new entries (`>`), `Some(id)` the
    /// consumer's pending entries above `id`. Returns the entries' reply and the commands that
    /// reproduce the effect in the append-only file (XCLAIM per delivery, XGROUP SETID), or
    /// `None` if the group does not exist.
    pub fn read_group(
        &mut self,
        key: &Bytes,
        req: &GroupRead,
        now_ms: u64,
    ) -> Option<(Vec<Reply>, Vec<Vec<Bytes>>)> {
        let mut g = self.groups.remove(&req.group)?;
        let out = self.read_group_in(&mut g, key, req, now_ms);
        self.groups.insert(req.group.clone(), g);
        Some(out)
    }

    fn read_group_in(
        &self,
        g: &mut Group,
        key: &Bytes,
        req: &GroupRead,
        now_ms: u64,
    ) -> (Vec<Reply>, Vec<Vec<Bytes>>) {
        let mut log = Vec::new();
        let (consumer, created) = g.consumer(&req.consumer, now_ms);
        consumer.seen_ms = now_ms;
        if created {
            log.push(vec![
                Bytes::from_static(b"XGROUP"),
                Bytes::from_static(b"CREATECONSUMER"),
                key.clone(),
                req.group.clone(),
                req.consumer.clone(),
            ]);
        }
        let count = if req.count == 0 { usize::MAX } else { req.count };
        let mut replies = Vec::new();
        match req.start {
            None => {
                let from = g.last_id.next().unwrap_or(StreamId::MAX);
                if g.last_id == StreamId::MAX {
                    return (replies, log);
                }
                let picked: Vec<(StreamId, Reply)> = self
                    .range(from, StreamId::MAX)
                    .take(count)
                    .map(|(id, f)| (id, entry_reply(id, f)))
                    .collect();
                for (id, reply) in picked {
                    self.advance_group(g, id);
                    if !req.noack {
                        g.assign(id, &req.consumer, now_ms, 1);
                        log.push(xclaim_effect(
                            key,
                            &req.group,
                            &req.consumer,
                            id,
                            now_ms,
                            1,
                            g.last_id,
                        ));
                    }
                    replies.push(reply);
                }
                if !replies.is_empty() {
                    log.push(setid_effect(key, &req.group, g));
                }
            }
            Some(after) => {
                let Some(c) = g.consumers.get(&req.consumer) else {
                    return (replies, log);
                };
                let ids: Vec<StreamId> = match after.next() {
                    Some(from) => c.pel.range(from..).take(count).copied().collect(),
                    None => Vec::new(),
                };
                for id in ids {
                    match self.get(id) {
                        Some(f) => replies.push(entry_reply(id, f)),
                        None => replies.push(Reply::Array(vec![id.reply(), Reply::NullArray])),
                    }
                    if let Some(n) = g.pel.get_mut(&id) {
                        n.delivery_ms = now_ms;
                        n.delivery_count += 1;
                        let (t, dc) = (n.delivery_ms, n.delivery_count);
                        log.push(xclaim_effect(
                            key,
                            &req.group,
                            &req.consumer,
                            id,
                            t,
                            dc,
                            g.last_id,
                        ));
                    }
                }
            }
        }
        (replies, log)
    }

    /// The commands that rebuild this stream at `key` (AOF rewrite): its entries, its id
    /// bookkeeping, its groups, their consumers and pending entries.
    pub fn rebuild_commands(&self, key: &Bytes) -> Vec<Vec<Bytes>> {
        let b = |s: &'static [u8]| Bytes::from_static(s);
        let n = |v: u64| Bytes::from(v.to_string());
        let mut out = Vec::with_capacity(self.len + 2);
        if self.len == 0 {
            // An empty stream still exists and keeps its ids: add one entry and trim it away.
            out.push(vec![
                b(b"XADD"),
                key.clone(),
                b(b"MAXLEN"),
                b(b"0"),
                self.last_id.max(StreamId::new(0, 1)).to_bytes(),
                b(b"x"),
                b(b"y"),
            ]);
        }
        for (id, packed) in self.range(StreamId::MIN, StreamId::MAX) {
            let mut cmd = vec![b(b"XADD"), key.clone(), id.to_bytes()];
            cmd.extend(packed.to_vec());
            out.push(cmd);
        }
        out.push(vec![
            b(b"XSETID"),
            key.clone(),
            self.last_id.to_bytes(),
            b(b"ENTRIESADDED"),
            n(self.entries_added),
            b(b"MAXDELETEDID"),
            self.max_deleted.to_bytes(),
        ]);
        for (name, g) in &self.groups {
            out.push(vec![
                b(b"XGROUP"),
                b(b"CREATE"),
                key.clone(),
                name.clone(),
                g.last_id.to_bytes(),
                b(b"ENTRIESREAD"),
                Bytes::from(g.entries_read.to_string()),
            ]);
            for (cname, c) in &g.consumers {
                out.push(vec![
                    b(b"XGROUP"),
                    b(b"CREATECONSUMER"),
                    key.clone(),
                    name.clone(),
                    cname.clone(),
                ]);
                for id in &c.pel {
                    if let Some(nack) = g.pel.get(id) {
                        out.push(vec![
                            b(b"XCLAIM"),
                            key.clone(),
                            name.clone(),
                            cname.clone(),
                            b(b"0"),
                            id.to_bytes(),
                            b(b"TIME"),
                            n(nack.delivery_ms),
                            b(b"RETRYCOUNT"),
                            n(nack.delivery_count),
                            b(b"JUSTID"),
                            b(b"FORCE"),
                        ]);
                    }
                }
            }
        }
        out
    }

    /// Pending entries over all groups (for persistence counts).
    pub fn pending_total(&self) -> usize {
        self.groups.values().map(|g| g.pel.len()).sum()
    }
}

/// One XREADGROUP read on one stream.
#[derive(Clone, Debug)]
pub struct GroupRead {
    pub group: Bytes,
    pub consumer: Bytes,
    /// `None` for `>` (new entries), else the consumer's pending entries after this id.
    pub start: Option<StreamId>,
    /// 0 = no limit.
    pub count: usize,
    pub noack: bool,
}

/// What a client blocked in XREAD/XREADGROUP waits for.
#[derive(Clone, Debug)]
pub struct StreamWait {
    /// For XREAD: per key (in the command's order), the id after which entries are new.
    pub after: Vec<StreamId>,
    /// For XREADGROUP: the group read (with `start == None`).
    pub group: Option<GroupRead>,
    pub count: usize,
    /// The client speaks RESP3: the reply is a map of key to entries.
    pub resp3: bool,
}

/// XREAD/XREADGROUP's reply for the keys that had entries: `[[key, entries], ...]`, or in
/// RESP3 a map from key to entries, as Redis 7.0 sends them.
pub fn read_reply(resp3: bool, served: Vec<(Bytes, Vec<Reply>)>) -> Reply {
    if resp3 {
        Reply::Map(
            served
                .into_iter()
                .map(|(k, e)| (Reply::Bulk(k), Reply::Array(e)))
                .collect(),
        )
    } else {
        Reply::Array(
            served
                .into_iter()
                .map(|(k, e)| Reply::Array(vec![Reply::Bulk(k), Reply::Array(e)]))
                .collect(),
        )
    }
}

/// The XCLAIM that reproduces a delivery (Redis propagates deliveries this way, so a replica
/// or a replayed log ends up with the same pending entry whatever the clock says).
pub fn xclaim_effect(
    key: &Bytes,
    group: &Bytes,
    consumer: &Bytes,
    id: StreamId,
    delivery_ms: u64,
    delivery_count: u64,
    last_id: StreamId,
) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XCLAIM"),
        key.clone(),
        group.clone(),
        consumer.clone(),
        Bytes::from_static(b"0"),
        id.to_bytes(),
        Bytes::from_static(b"TIME"),
        Bytes::from(delivery_ms.to_string()),
        Bytes::from_static(b"RETRYCOUNT"),
        Bytes::from(delivery_count.to_string()),
        Bytes::from_static(b"FORCE"),
        Bytes::from_static(b"JUSTID"),
        Bytes::from_static(b"LASTID"),
        last_id.to_bytes(),
    ]
}

/// The XGROUP SETID that reproduces a group's position and read counter.
pub fn setid_effect(key: &Bytes, group: &Bytes, g: &Group) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"SETID"),
        key.clone(),
        group.clone(),
        g.last_id.to_bytes(),
        Bytes::from_static(b"ENTRIESREAD"),
        Bytes::from(g.entries_read.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|x| Bytes::from(x.to_string())).collect()
    }

    #[test]
    fn ids_parse_like_redis() {
        assert_eq!(StreamId::parse_strict(b"5"), Some(StreamId::new(5, 0)));
        assert_eq!(StreamId::parse_strict(b"5-3"), Some(StreamId::new(5, 3)));
        assert_eq!(StreamId::parse_strict(b"-"), None);
        assert_eq!(StreamId::parse_strict(b"5-"), None);
        assert_eq!(StreamId::parse_strict(b"5--1"), None);
        assert_eq!(StreamId::parse_strict(b"18446744073709551616"), None);
        assert_eq!(
            StreamId::parse(b"+", 0, false, false),
            Some((StreamId::MAX, true))
        );
        assert_eq!(
            StreamId::parse(b"7-*", 0, true, true),
            Some((StreamId::new(7, 0), false))
        );
        assert_eq!(StreamId::new(1, u64::MAX).next(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.next(), None);
    }

    #[test]
    fn listpack_sizes_follow_redis_encodings() {
        for (e, n) in [
            ("0", Some(0)),
            ("-0", None),
            ("007", None),
            ("-12", Some(-12)),
            ("+1", None),
        ] {
            assert_eq!(canonical_int(e.as_bytes()), n, "{e}");
        }
        assert_eq!(canonical_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(canonical_int(b"9223372036854775808"), None);
        // 7-bit, 13-bit, 16, 24, 32 and 64-bit integers, then 6-bit, 12-bit and 32-bit
        // string lengths, each with its back-length.
        let sizes: Vec<usize> = ["127", "-4096", "32767", "8388607", "-2147483648", "2147483648"]
            .iter()
            .map(|e| lp_size(e.as_bytes()))
            .collect();
        assert_eq!(sizes, [2, 3, 4, 5, 6, 10]);
        assert_eq!(lp_size(&[b'x'; 63]), 65);
        assert_eq!(lp_size(&[b'x'; 64]), 67);
        assert_eq!(lp_size(&[b'x'; 4096]), 4103);
    }

    #[test]
    fn fields_round_trip() {
        let v = vec![
            Bytes::new(),
            Bytes::from(vec![7u8; 300]),
            Bytes::from_static(b"x"),
        ];
        let data = pack(&v);
        let whole = Fields {
            names: None,
            data: &data,
        };
        assert_eq!(whole.to_vec(), v);
    }

    #[test]
    fn chunks_close_at_100_and_approx_trim_drops_whole_chunks() {
        let mut s = Stream::new();
        for i in 1..=250 {
            s.append(StreamId::new(i, 0), &f("a 1"));
        }
        assert_eq!(s.chunk_count(), 3);
        assert_eq!(s.trim(Trim::MaxLen(200), true, 0), 0);
        assert_eq!(s.trim(Trim::MaxLen(140), true, 0), 100);
        assert_eq!(s.len(), 150);
        assert_eq!(s.trim(Trim::MaxLen(10), false, 0), 140);
        assert_eq!(s.first_id(), StreamId::new(241, 0));
        let ids: Vec<u64> = s
            .range_rev(StreamId::new(245, 0), StreamId::MAX)
            .map(|(i, _)| i.ms)
            .collect();
        assert_eq!(ids, vec![250, 249, 248, 247, 246, 245]);
    }

    #[test]
    fn entries_with_their_chunks_field_names_store_only_values() {
        let mut s = Stream::new();
        s.append(StreamId::new(1, 0), &f("a 1 b 2"));
        s.append(StreamId::new(2, 0), &f("a 3 b 4"));
        s.append(StreamId::new(3, 0), &f("b 5 a 6"));
        s.append(StreamId::new(4, 0), &f("a 7"));
        let all: Vec<Vec<Bytes>> = s
            .range(StreamId::MIN, StreamId::MAX)
            .map(|(_, f)| f.to_vec())
            .collect();
        assert_eq!(all, vec![f("a 1 b 2"), f("a 3 b 4"), f("b 5 a 6"), f("a 7")]);
        let flags: Vec<bool> = s.chunks[0]
            .slots()
            .map(|slot| slot.fields.names.is_some())
            .collect();
        assert_eq!(flags, vec![true, true, false, false]);
    }

    #[test]
    fn deleted_slots_stay_until_their_chunk_goes() {
        let mut s = Stream::new();
        for i in 1..=10 {
            s.append(StreamId::new(1000, i), &f("k v"));
        }
        s.append(StreamId::new(2000, 0), &f("k w"));
        assert!(s.delete(StreamId::new(1000, 1)));
        assert!(s.delete(StreamId::new(1000, 5)));
        assert!(s.get(StreamId::new(1000, 5)).is_none());
        assert_eq!(s.get(StreamId::new(2000, 0)).map(Fields::to_vec), Some(f("k w")));
        assert_eq!(s.first_id(), StreamId::new(1000, 2));
        assert_eq!(s.trim(Trim::MinId(StreamId::new(1000, 4)), false, 0), 2);
        let ids: Vec<StreamId> = s.range(StreamId::MIN, StreamId::MAX).map(|(id, _)| id).collect();
        assert_eq!(ids.len(), 7);
        assert_eq!(ids[0], StreamId::new(1000, 4));
        assert_eq!(s.chunk_count(), 1, "deleted slots still count toward the chunk");
        for _ in 0..7 {
            let first = s.first_id();
            assert!(s.delete(first));
        }
        assert_eq!((s.len(), s.chunk_count(), s.first_id()), (0, 0, StreamId::MIN));
    }

    #[test]
    fn delete_tracks_max_deleted_and_lag() {
        let mut s = Stream::new();
        for i in 1..=5 {
            s.append(StreamId::new(i, 0), &f("a 1"));
        }
        let g = Group::new(StreamId::MIN, INVALID_ENTRIES_READ);
        assert_eq!(s.lag(&g), Some(5));
        assert!(s.delete(StreamId::new(3, 0)));
        assert!(!s.delete(StreamId::new(3, 0)));
        assert_eq!(s.max_deleted, StreamId::new(3, 0));
        assert_eq!(s.lag(&g), None);
        assert_eq!(s.len(), 4);
    }
}
