//! DUMP and RESTORE in Redis's serialization: the RDB encoding of one value, RDB version 10
//! and a CRC-64 (Jones) trailer, so payloads move between this broker and redis-server 7.0.
//!
//! Strings are written as Redis writes them (small integers as integers, strings over 20
//! bytes LZF-compressed when that saves space); lists as Redis 7.0's quicklist of listpacks,
//! split into nodes of at most 8 KB as Redis splits a list built by appending; streams as
//! Redis 7.0's radix tree of listpack nodes (one per chunk, whose boundaries are Redis's) with
//! their id bookkeeping and consumer groups, and a restored stream keeps those nodes, deleted
//! entries included, so it trims and reports (XINFO) as the original did. Redis's LZF
//! compressor starts from an uninitialised hash table, so for a long string its output can
//! vary from run to run; ours starts empty (its output is one of Redis's possible ones, and
//! every payload either side writes loads on the other). Reading never trusts the payload:
//! every length is checked, and anything malformed is `Bad data format`.

use super::rdb::{crc64, lzf_compress, lzf_decompress};
use super::{parse_i64, values, Ctx, Outcome};
use crate::db::{End, Value};
use crate::engine::EventClass;
use crate::reply::{msg, Reply};
use crate::types::stream::{Consumer, Group, Nack, Stream, StreamId, INVALID_ENTRIES_READ};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

const RDB_VERSION: u16 = 10;
const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_LIST_QUICKLIST_2: u8 = 18;
const TYPE_SET: u8 = 2;
const TYPE_HASH: u8 = 4;
const TYPE_SET_INTSET: u8 = 11;
const TYPE_HASH_LISTPACK: u8 = 16;
const TYPE_ZSET_2: u8 = 5;
const TYPE_ZSET_LISTPACK: u8 = 17;
const TYPE_STREAM_LISTPACKS: u8 = 15;
const TYPE_STREAM_LISTPACKS_2: u8 = 19;
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;
const NODE_LIMIT: usize = 8192;

// ---- writing ----

fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// A string as Redis's rdbSaveRawString writes it.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11 {
        if let Some(n) = values::canonical_i64(s) {
            if let Ok(v) = i8::try_from(n) {
                out.extend_from_slice(&[0xC0, v as u8]);
                return;
            } else if let Ok(v) = i16::try_from(n) {
                out.push(0xC1);
                out.extend_from_slice(&v.to_le_bytes());
                return;
            } else if let Ok(v) = i32::try_from(n) {
                out.push(0xC2);
                out.extend_from_slice(&v.to_le_bytes());
                return;
            }
        }
    }
    if s.len() > 20 {
        if let Some(c) = lzf_compress(s, s.len() - 4) {
            out.push(0xC3);
            put_len(out, c.len() as u64);
            put_len(out, s.len() as u64);
            out.extend_from_slice(&c);
            return;
        }
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// One listpack entry: encoding, data, back-length.
fn put_listpack_entry(lp: &mut Vec<u8>, e: &[u8]) {
    let start = lp.len();
    match values::canonical_i64(e).filter(|_| e.len() <= 20) {
        Some(v @ 0..=127) => lp.push(v as u8),
        Some(v @ -4096..=4095) => {
            let u = if v < 0 { (1 << 13) + v } else { v } as u16;
            lp.extend_from_slice(&[0xC0 | (u >> 8) as u8, u as u8]);
        }
        Some(v) if i16::try_from(v).is_ok() => {
            lp.push(0xF1);
            lp.extend_from_slice(&(v as i16).to_le_bytes());
        }
        Some(v @ -8_388_608..=8_388_607) => {
            lp.push(0xF2);
            lp.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        }
        Some(v) if i32::try_from(v).is_ok() => {
            lp.push(0xF3);
            lp.extend_from_slice(&(v as i32).to_le_bytes());
        }
        Some(v) => {
            lp.push(0xF4);
            lp.extend_from_slice(&v.to_le_bytes());
        }
        None if e.len() < 64 => {
            lp.push(0x80 | e.len() as u8);
            lp.extend_from_slice(e);
        }
        None if e.len() < 4096 => {
            lp.extend_from_slice(&[0xE0 | (e.len() >> 8) as u8, e.len() as u8]);
            lp.extend_from_slice(e);
        }
        None => {
            lp.push(0xF0);
            lp.extend_from_slice(&(e.len() as u32).to_le_bytes());
            lp.extend_from_slice(e);
        }
    }
    let l = (lp.len() - start) as u64;
    let back: Vec<u8> = if l <= 127 {
        vec![l as u8]
    } else if l < 16383 {
        vec![(l >> 7) as u8, (l & 127) as u8 | 128]
    } else if l < 2_097_151 {
        vec![
            (l >> 14) as u8,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]
    } else if l < 268_435_455 {
        vec![
            (l >> 21) as u8,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]
    } else {
        vec![
            (l >> 28) as u8,
            ((l >> 21) & 127) as u8 | 128,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]
    };
    lp.extend_from_slice(&back);
}

fn finish_listpack(mut lp: Vec<u8>, count: usize) -> Vec<u8> {
    lp.push(0xFF);
    let total = lp.len() as u32;
    lp[0..4].copy_from_slice(&total.to_le_bytes());
    lp[4..6].copy_from_slice(&(count.min(65535) as u16).to_le_bytes());
    lp
}

/// The RDB serialization of a value: type byte and body.
fn serialize(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Str(s) => {
            out.push(TYPE_STRING);
            put_string(&mut out, s);
        }
        Value::List(l) => {
            out.push(TYPE_LIST_QUICKLIST_2);
            // Nodes as Redis fills them when appending: a node takes an element while its
            // listpack, plus the element and a small margin, stays within 8 KB.
            let mut nodes: Vec<Vec<u8>> = Vec::new();
            let (mut lp, mut count) = (vec![0u8; 6], 0usize);
            for item in l.items.iter() {
                if count > 0 && lp.len() + 1 + item.len() + 8 > NODE_LIMIT {
                    nodes.push(finish_listpack(std::mem::replace(&mut lp, vec![0u8; 6]), count));
                    count = 0;
                }
                put_listpack_entry(&mut lp, item);
                count += 1;
            }
            if count > 0 {
                nodes.push(finish_listpack(lp, count));
            }
            put_len(&mut out, nodes.len() as u64);
            for node in nodes {
                put_len(&mut out, CONTAINER_PACKED);
                put_string(&mut out, &node);
            }
        }
        Value::Hash(h) if h.encoding() == "listpack" => {
            out.push(TYPE_HASH_LISTPACK);
            let mut lp = vec![0u8; 6];
            for (f, v) in h.iter() {
                put_listpack_entry(&mut lp, f);
                put_listpack_entry(&mut lp, v);
            }
            put_string(&mut out, &finish_listpack(lp, 2 * h.len()));
        }
        Value::Hash(h) => {
            out.push(TYPE_HASH);
            put_len(&mut out, h.len() as u64);
            for (f, v) in h.iter() {
                put_string(&mut out, f);
                put_string(&mut out, v);
            }
        }
        Value::Set(set) if set.encoding() == "intset" => {
            out.push(TYPE_SET_INTSET);
            let members: Vec<i64> = set
                .iter()
                .filter_map(|m| std::str::from_utf8(&m).ok()?.parse().ok())
                .collect();
            put_string(&mut out, &intset_blob(members));
        }
        Value::Set(set) => {
            out.push(TYPE_SET);
            put_len(&mut out, set.len() as u64);
            for m in set.iter() {
                put_string(&mut out, &m);
            }
        }
        Value::Stream(s) => {
            out.push(TYPE_STREAM_LISTPACKS_2);
            put_stream(&mut out, s);
        }
        Value::ZSet(z) if z.encoding() == "listpack" => {
            out.push(TYPE_ZSET_LISTPACK);
            let mut lp = vec![0u8; 6];
            for (m, score) in z.iter() {
                put_listpack_entry(&mut lp, m);
                put_listpack_entry(&mut lp, crate::reply::format_double(score).as_bytes());
            }
            put_string(&mut out, &finish_listpack(lp, 2 * z.len()));
        }
        Value::ZSet(z) => {
            // Highest rank first, as Redis writes a skiplist (loading then appends cheaply).
            out.push(TYPE_ZSET_2);
            put_len(&mut out, z.len() as u64);
            let members: Vec<_> = z.iter().collect();
            for (m, score) in members.into_iter().rev() {
                put_string(&mut out, m);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
    }
    out
}

/// An integer as a listpack entry (the smallest integer encoding that holds it).
fn put_listpack_int(lp: &mut Vec<u8>, n: i64) {
    put_listpack_entry(lp, n.to_string().as_bytes());
}

/// A stream id as Redis keys its radix trees: milliseconds then sequence, big-endian.
fn put_raw_id(out: &mut Vec<u8>, id: StreamId) {
    out.extend_from_slice(&id.ms.to_be_bytes());
    out.extend_from_slice(&id.seq.to_be_bytes());
}

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    put_len(out, id.ms);
    put_len(out, id.seq);
}

/// A stream as Redis 7.0 writes `RDB_TYPE_STREAM_LISTPACKS_2`: each chunk as a listpack node
/// under its master id, then the length and id bookkeeping, then every consumer group with its
/// pending entries and consumers.
fn put_stream(out: &mut Vec<u8>, s: &Stream) {
    put_stream_nodes(out, s);
    put_len(out, s.len() as u64);
    put_id(out, s.last_id);
    put_id(out, s.first_id());
    put_id(out, s.max_deleted);
    put_len(out, s.entries_added);
    put_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        put_string(out, name);
        put_id(out, g.last_id);
        // -1 (unknown) goes out as its 64-bit two's complement, as Redis writes it.
        put_len(out, g.entries_read as u64);
        put_group_pels(out, g);
    }
}

/// The radix tree of listpack nodes, one per chunk.
fn put_stream_nodes(out: &mut Vec<u8>, s: &Stream) {
    put_len(out, s.chunk_count() as u64);
    for node in s.nodes() {
        let mut key = Vec::with_capacity(16);
        put_raw_id(&mut key, node.master);
        put_string(out, &key);
        // The master entry: live count, deleted count, the field names, a zero terminator
        // (the back-count a reverse scan stops on).
        let mut lp = vec![0u8; 6];
        put_listpack_int(&mut lp, node.live as i64);
        put_listpack_int(&mut lp, (node.slots.len() - node.live) as i64);
        put_listpack_int(&mut lp, node.names.len() as i64);
        for name in &node.names {
            put_listpack_entry(&mut lp, name);
        }
        put_listpack_int(&mut lp, 0);
        let mut count = node.names.len() + 4;
        for slot in &node.slots {
            let flags = i64::from(slot.deleted) | (i64::from(slot.same_fields) << 1);
            put_listpack_int(&mut lp, flags);
            // Deltas from the master id, each part on its own and as a signed 64-bit
            // difference (a later millisecond may have a smaller sequence).
            put_listpack_int(&mut lp, slot.id.ms.wrapping_sub(node.master.ms) as i64);
            put_listpack_int(&mut lp, slot.id.seq.wrapping_sub(node.master.seq) as i64);
            let mut elements = 3;
            if !slot.same_fields {
                put_listpack_int(&mut lp, (slot.strings.len() / 2) as i64);
                elements += 1;
            }
            for e in &slot.strings {
                put_listpack_entry(&mut lp, e);
            }
            elements += slot.strings.len();
            put_listpack_int(&mut lp, elements as i64);
            count += elements + 1;
        }
        put_string(out, &finish_listpack(lp, count));
    }
}

/// A group's pending entries (id, delivery time, delivery count), then its consumers (name,
/// seen time, the ids pending for each).
fn put_group_pels(out: &mut Vec<u8>, g: &Group) {
    put_len(out, g.pel.len() as u64);
    for (id, nack) in &g.pel {
        put_raw_id(out, *id);
        out.extend_from_slice(&nack.delivery_ms.to_le_bytes());
        put_len(out, nack.delivery_count);
    }
    put_len(out, g.consumers.len() as u64);
    for (cname, c) in &g.consumers {
        put_string(out, cname);
        out.extend_from_slice(&c.seen_ms.to_le_bytes());
        put_len(out, c.pel.len() as u64);
        for id in &c.pel {
            put_raw_id(out, *id);
        }
    }
}

/// An intset as Redis lays it out: encoding width, length, members ascending, little-endian.
fn intset_blob(mut members: Vec<i64>) -> Vec<u8> {
    members.sort_unstable();
    let width: u32 = if members.iter().all(|&n| i16::try_from(n).is_ok()) {
        2
    } else if members.iter().all(|&n| i32::try_from(n).is_ok()) {
        4
    } else {
        8
    };
    let mut blob = Vec::with_capacity(8 + members.len() * width as usize);
    blob.extend_from_slice(&width.to_le_bytes());
    blob.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for n in members {
        blob.extend_from_slice(&n.to_le_bytes()[..width as usize]);
    }
    blob
}

/// The members of an intset blob, checking its header, width, length and order.
fn intset_members(blob: &[u8]) -> Option<Vec<Bytes>> {
    let width = u32::from_le_bytes(blob.get(0..4)?.try_into().ok()?) as usize;
    let len = u32::from_le_bytes(blob.get(4..8)?.try_into().ok()?) as usize;
    if !matches!(width, 2 | 4 | 8) || blob.len() != 8 + len.checked_mul(width)? || len == 0 {
        return None;
    }
    let mut previous: Option<i64> = None;
    let mut out = Vec::with_capacity(len);
    for chunk in blob[8..].chunks_exact(width) {
        let n = match width {
            2 => i64::from(i16::from_le_bytes(chunk.try_into().ok()?)),
            4 => i64::from(i32::from_le_bytes(chunk.try_into().ok()?)),
            _ => i64::from_le_bytes(chunk.try_into().ok()?),
        };
        if previous.is_some_and(|p| p >= n) {
            return None;
        }
        previous = Some(n);
        out.push(Bytes::from(n.to_string()));
    }
    Some(out)
}

fn payload(value: &Value) -> Vec<u8> {
    let mut out = serialize(value);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

// ---- reading ----

/// A cursor over an untrusted payload: every read is bounds-checked.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }

    /// A length, or `Err(kind)` for the special string encodings.
    fn len(&mut self) -> Option<Result<u64, u8>> {
        let b = self.byte()?;
        Some(match b >> 6 {
            0 => Ok(u64::from(b & 0x3f)),
            1 => Ok((u64::from(b & 0x3f) << 8) | u64::from(self.byte()?)),
            2 if b == 0x80 => Ok(u64::from(u32::from_be_bytes(self.take(4)?.try_into().ok()?))),
            2 if b == 0x81 => Ok(u64::from_be_bytes(self.take(8)?.try_into().ok()?)),
            2 => return None,
            _ => Err(b & 0x3f),
        })
    }

    fn plain_len(&mut self) -> Option<usize> {
        usize::try_from(self.len()?.ok()?).ok()
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        match self.len()? {
            Ok(n) => Some(self.take(usize::try_from(n).ok()?)?.to_vec()),
            Err(0) => Some((self.byte()? as i8).to_string().into_bytes()),
            Err(1) => Some(
                i16::from_le_bytes(self.take(2)?.try_into().ok()?)
                    .to_string()
                    .into_bytes(),
            ),
            Err(2) => Some(
                i32::from_le_bytes(self.take(4)?.try_into().ok()?)
                    .to_string()
                    .into_bytes(),
            ),
            Err(3) => {
                let clen = self.plain_len()?;
                let len = self.plain_len()?;
                // No payload can expand past the largest bulk string a client may send.
                if len > 512 * 1024 * 1024 {
                    return None;
                }
                lzf_decompress(self.take(clen)?, len)
            }
            Err(_) => None,
        }
    }
}

/// The elements of a listpack, checking every entry against the header.
fn listpack_elements(lp: &[u8], out: &mut Vec<Bytes>) -> Option<()> {
    if lp.len() < 7 || u32::from_le_bytes(lp[0..4].try_into().ok()?) as usize != lp.len() {
        return None;
    }
    let declared = u16::from_le_bytes(lp[4..6].try_into().ok()?);
    let mut r = Reader {
        data: &lp[..lp.len() - 1],
        pos: 6,
    };
    if lp[lp.len() - 1] != 0xFF {
        return None;
    }
    let mut n = 0usize;
    while r.pos < r.data.len() {
        let start = r.pos;
        let b = r.byte()?;
        let element: Vec<u8> = match b {
            0x00..=0x7F => b.to_string().into_bytes(),
            0x80..=0xBF => r.take(usize::from(b & 0x3f))?.to_vec(),
            0xC0..=0xDF => {
                let u = (u16::from(b & 0x1f) << 8) | u16::from(r.byte()?);
                let v = if u >= 1 << 12 {
                    i32::from(u) - (1 << 13)
                } else {
                    i32::from(u)
                };
                v.to_string().into_bytes()
            }
            0xE0..=0xEF => {
                let l = (usize::from(b & 0x0f) << 8) | usize::from(r.byte()?);
                r.take(l)?.to_vec()
            }
            0xF0 => {
                let l = u32::from_le_bytes(r.take(4)?.try_into().ok()?) as usize;
                r.take(l)?.to_vec()
            }
            0xF1 => i16::from_le_bytes(r.take(2)?.try_into().ok()?)
                .to_string()
                .into_bytes(),
            0xF2 => {
                let t = r.take(3)?;
                let v = i32::from_le_bytes([0, t[0], t[1], t[2]]) >> 8;
                v.to_string().into_bytes()
            }
            0xF3 => i32::from_le_bytes(r.take(4)?.try_into().ok()?)
                .to_string()
                .into_bytes(),
            0xF4 => i64::from_le_bytes(r.take(8)?.try_into().ok()?)
                .to_string()
                .into_bytes(),
            _ => return None,
        };
        // The back-length must say how long the entry was.
        let l = (r.pos - start) as u64;
        let width = match l {
            0..=127 => 1,
            128..16383 => 2,
            16383..2_097_151 => 3,
            2_097_151..268_435_455 => 4,
            _ => 5,
        };
        let back = r.take(width)?;
        let mut decoded = 0u64;
        for (k, &byte) in back.iter().enumerate() {
            let bits = u64::from(byte & 127);
            if (k > 0) != (byte & 128 != 0) {
                return None;
            }
            decoded = (decoded << 7) | bits;
        }
        if decoded != l {
            return None;
        }
        out.push(Bytes::from(element));
        n += 1;
    }
    (declared == 65535 || usize::from(declared) == n).then_some(())
}

impl Reader<'_> {
    /// A length that is a plain number (no string encoding).
    fn number(&mut self) -> Option<u64> {
        self.len()?.ok()
    }

    fn id(&mut self) -> Option<StreamId> {
        Some(StreamId::new(self.number()?, self.number()?))
    }

    /// A stream id as 16 raw big-endian bytes (a radix-tree key).
    fn raw_id(&mut self) -> Option<StreamId> {
        let b = self.take(16)?;
        Some(StreamId::new(
            u64::from_be_bytes(b[..8].try_into().ok()?),
            u64::from_be_bytes(b[8..].try_into().ok()?),
        ))
    }

    /// A Unix time in milliseconds, 8 bytes little-endian; a time before 1970 is refused.
    fn ms_time(&mut self) -> Option<u64> {
        let t = i64::from_le_bytes(self.take(8)?.try_into().ok()?);
        u64::try_from(t).ok()
    }
}

/// A listpack element read as an integer (Redis reads a string element as one too).
fn lp_int(e: &[u8]) -> Option<i64> {
    std::str::from_utf8(e).ok()?.parse().ok()
}

/// A non-negative listpack integer as a count.
fn lp_count(e: &[u8]) -> Option<usize> {
    usize::try_from(lp_int(e)?).ok()
}

/// Item flags of a stream node entry.
const ITEM_DELETED: i64 = 1;
const ITEM_SAME_FIELDS: i64 = 2;

/// One stream node: its key (the master id) and listpack, checked entry by entry against the
/// master entry's counts and each entry's back-count.
fn load_stream_node(s: &mut Stream, key: &[u8], lp: &[u8]) -> Option<()> {
    let mut k = Reader { data: key, pos: 0 };
    let master = k.raw_id()?;
    if k.pos != key.len() {
        return None;
    }
    let mut e = Vec::new();
    listpack_elements(lp, &mut e)?;
    let mut it = e.iter();
    let mut next = || it.next().map(|b| &b[..]);
    let live = lp_count(next()?)?;
    let deleted = lp_count(next()?)?;
    let nf = lp_count(next()?)?;
    if nf > e.len() {
        return None;
    }
    let mut names = Vec::with_capacity(nf);
    for _ in 0..nf {
        names.push(Bytes::copy_from_slice(next()?));
    }
    if lp_int(next()?)? != 0 {
        return None;
    }
    let mut slots = Vec::new();
    let mut seen_deleted = 0;
    while let Some(flag) = next() {
        let flags = lp_int(flag)?;
        if flags & !(ITEM_DELETED | ITEM_SAME_FIELDS) != 0 {
            return None;
        }
        let ms = master.ms.wrapping_add(lp_int(next()?)? as u64);
        let seq = master.seq.wrapping_add(lp_int(next()?)? as u64);
        let mut fields = Vec::new();
        let elements = if flags & ITEM_SAME_FIELDS != 0 {
            for name in &names {
                fields.push(name.clone());
                fields.push(Bytes::copy_from_slice(next()?));
            }
            nf + 3
        } else {
            let n = lp_count(next()?)?;
            if n > e.len() {
                return None;
            }
            for _ in 0..2 * n {
                fields.push(Bytes::copy_from_slice(next()?));
            }
            2 * n + 4
        };
        if lp_count(next()?)? != elements {
            return None;
        }
        let dead = flags & ITEM_DELETED != 0;
        seen_deleted += usize::from(dead);
        slots.push((StreamId::new(ms, seq), dead, fields));
    }
    if slots.len() - seen_deleted != live || seen_deleted != deleted {
        return None;
    }
    s.load_node(master, &names, &slots)
}

/// A stream as `RDB_TYPE_STREAM_LISTPACKS_2`, or (`v2` false) as Redis 5 and 6 wrote it,
/// without first id, max deleted id, entries added and groups' entries-read, which are then
/// derived as Redis 7.0 derives them when it loads such a payload. Everything a later command
/// relies on is checked: the nodes' ids rise and lie at or below the last id, the length
/// matches, every pending entry belongs to exactly one consumer, and no name or id appears
/// twice.
fn read_stream(r: &mut Reader, v2: bool) -> Option<Stream> {
    let mut s = Stream::new();
    let nodes = r.number()?;
    for _ in 0..nodes {
        let key = r.string()?;
        let lp = r.string()?;
        load_stream_node(&mut s, &key, &lp)?;
    }
    let len = usize::try_from(r.number()?).ok()?;
    s.last_id = r.id()?;
    if v2 {
        // The first id is derived from the entries; it is read to move past it.
        r.id()?;
        s.max_deleted = r.id()?;
        s.entries_added = r.number()?;
    } else {
        s.entries_added = len as u64;
    }
    if len != s.len()
        || s.last_slot_id().is_some_and(|id| id > s.last_id)
        || s.entries_added < len as u64
        || i64::try_from(s.entries_added).is_err()
    {
        return None;
    }
    let groups = r.number()?;
    for _ in 0..groups {
        let name = Bytes::from(r.string()?);
        let last_id = r.id()?;
        let entries_read = if v2 {
            r.number()? as i64
        } else {
            s.entries_read_at(last_id)
        };
        if entries_read < 0 && entries_read != INVALID_ENTRIES_READ {
            return None;
        }
        let mut g = Group::new(last_id, entries_read);
        // The global PEL first, without owners; the consumers' PELs then claim each entry.
        let mut unowned: BTreeMap<StreamId, (u64, u64)> = BTreeMap::new();
        let pending = r.number()?;
        for _ in 0..pending {
            let id = r.raw_id()?;
            let delivery_ms = r.ms_time()?;
            let delivery_count = r.number()?;
            if unowned.insert(id, (delivery_ms, delivery_count)).is_some() {
                return None;
            }
        }
        let consumers = r.number()?;
        for _ in 0..consumers {
            let cname = Bytes::from(r.string()?);
            let seen_ms = r.ms_time()?;
            let mut pel = BTreeSet::new();
            let owned = r.number()?;
            for _ in 0..owned {
                let id = r.raw_id()?;
                let (delivery_ms, delivery_count) = unowned.remove(&id)?;
                g.pel.insert(
                    id,
                    Nack {
                        consumer: cname.clone(),
                        delivery_ms,
                        delivery_count,
                    },
                );
                pel.insert(id);
            }
            if g.consumers.insert(cname, Consumer { seen_ms, pel }).is_some() {
                return None;
            }
        }
        if !unowned.is_empty() || s.groups.insert(name, g).is_some() {
            return None;
        }
    }
    Some(s)
}

/// What RESTORE stores: a string as is, a list's elements to push, a hash's pairs, a set's
/// members, a stream whole.
enum Restored {
    Str(Bytes),
    List(Vec<Bytes>),
    Hash(Vec<(Bytes, Bytes)>),
    Set(Vec<Bytes>),
    ZSet(Vec<(Bytes, f64)>),
    Stream(Stream),
}

/// Checks the trailer (version and CRC) and decodes the value.
fn decode_payload(p: &[u8]) -> Result<Restored, &'static str> {
    if p.len() < 10 {
        return Err(msg::DUMP_PAYLOAD);
    }
    let (body, trailer) = p.split_at(p.len() - 10);
    let version = u16::from_le_bytes([trailer[0], trailer[1]]);
    let crc = u64::from_le_bytes(trailer[2..10].try_into().map_err(|_| msg::DUMP_PAYLOAD)?);
    if version > RDB_VERSION || crc64(&p[..p.len() - 8]) != crc {
        return Err(msg::DUMP_PAYLOAD);
    }
    decode_body(body).ok_or(msg::BAD_DATA_FORMAT)
}

fn decode_body(body: &[u8]) -> Option<Restored> {
    let mut r = Reader { data: body, pos: 0 };
    let restored = match r.byte()? {
        TYPE_STRING => Restored::Str(Bytes::from(r.string()?)),
        kind @ (TYPE_LIST_QUICKLIST_2 | TYPE_LIST) => {
            let n = r.plain_len()?;
            let mut elements = Vec::new();
            for _ in 0..n {
                if kind == TYPE_LIST {
                    elements.push(Bytes::from(r.string()?));
                    continue;
                }
                let container = r.len()?.ok()?;
                let node = r.string()?;
                match container {
                    CONTAINER_PLAIN => elements.push(Bytes::from(node)),
                    CONTAINER_PACKED => listpack_elements(&node, &mut elements)?,
                    _ => return None,
                }
            }
            if elements.is_empty() {
                return None;
            }
            Restored::List(elements)
        }
        TYPE_HASH_LISTPACK => {
            let mut flat = Vec::new();
            listpack_elements(&r.string()?, &mut flat)?;
            if flat.is_empty() || flat.len() % 2 != 0 {
                return None;
            }
            let mut it = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                pairs.push((f, v));
            }
            Restored::Hash(pairs)
        }
        TYPE_HASH => {
            let n = r.plain_len()?;
            let mut pairs = Vec::new();
            for _ in 0..n {
                pairs.push((Bytes::from(r.string()?), Bytes::from(r.string()?)));
            }
            (!pairs.is_empty()).then_some(())?;
            Restored::Hash(pairs)
        }
        TYPE_SET_INTSET => Restored::Set(intset_members(&r.string()?)?),
        TYPE_SET => {
            let n = r.plain_len()?;
            let mut members = Vec::new();
            for _ in 0..n {
                members.push(Bytes::from(r.string()?));
            }
            (!members.is_empty()).then_some(())?;
            Restored::Set(members)
        }
        TYPE_ZSET_LISTPACK => {
            let mut flat = Vec::new();
            listpack_elements(&r.string()?, &mut flat)?;
            if flat.is_empty() || flat.len() % 2 != 0 {
                return None;
            }
            let mut pairs = Vec::new();
            for pair in flat.chunks_exact(2) {
                let score: f64 = std::str::from_utf8(&pair[1]).ok()?.parse().ok()?;
                if score.is_nan() {
                    return None;
                }
                pairs.push((pair[0].clone(), score));
            }
            Restored::ZSet(pairs)
        }
        TYPE_ZSET_2 => {
            let n = r.plain_len()?;
            let mut pairs = Vec::new();
            for _ in 0..n {
                let member = Bytes::from(r.string()?);
                let score = f64::from_le_bytes(r.take(8)?.try_into().ok()?);
                if score.is_nan() {
                    return None;
                }
                pairs.push((member, score));
            }
            (!pairs.is_empty()).then_some(())?;
            Restored::ZSet(pairs)
        }
        TYPE_STREAM_LISTPACKS_2 => Restored::Stream(read_stream(&mut r, true)?),
        TYPE_STREAM_LISTPACKS => Restored::Stream(read_stream(&mut r, false)?),
        _ => return None,
    };
    (r.pos == body.len()).then_some(restored)
}

/// DUMP key
pub fn dump(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    match ctx.lookup(&key) {
        None => Reply::Null.into(),
        Some(v) => Reply::Bulk(Bytes::from(payload(v))).into(),
    }
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
pub fn restore(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let (mut replace, mut absttl) = (false, false);
    let (mut idle_given, mut freq_given) = (false, false);
    let mut j = 4;
    while j < ctx.args.len() {
        let opt = &ctx.args[j];
        let more = j + 1 < ctx.args.len();
        if opt.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if opt.eq_ignore_ascii_case(b"absttl") {
            absttl = true;
        } else if opt.eq_ignore_ascii_case(b"idletime") && more && !freq_given {
            match parse_i64(&ctx.args[j + 1]) {
                None => return Reply::error(msg::NOT_INT).into(),
                Some(n) if n < 0 => return Reply::error(msg::RESTORE_IDLETIME).into(),
                // Accepted and checked; there is no access clock to set it on.
                Some(_) => idle_given = true,
            }
            j += 1;
        } else if opt.eq_ignore_ascii_case(b"freq") && more && !idle_given {
            match parse_i64(&ctx.args[j + 1]) {
                None => return Reply::error(msg::NOT_INT).into(),
                Some(n) if !(0..=255).contains(&n) => return Reply::error(msg::RESTORE_FREQ).into(),
                // Frequencies are only kept under an LFU policy, which there is not.
                Some(_) => freq_given = true,
            }
            j += 1;
        } else {
            return Reply::error(msg::SYNTAX).into();
        }
        j += 1;
    }
    if !replace && ctx.lookup(&key).is_some() {
        return Reply::error(msg::BUSYKEY).into();
    }
    let ttl = match parse_i64(&ctx.args[2]) {
        None => return Reply::error(msg::NOT_INT).into(),
        Some(t) if t < 0 => return Reply::error(msg::RESTORE_TTL).into(),
        Some(t) => t,
    };
    let restored = match decode_payload(&ctx.args[3]) {
        Ok(r) => r,
        Err(e) => return Reply::error(e).into(),
    };
    let db = ctx.client.db;
    ctx.engine.expire_if_due(db, &key, ctx.now_ms);
    let deleted = replace && ctx.engine.keyspace[db].remove(&key).is_some();
    let at = match (ttl, absttl) {
        (0, _) => None,
        (t, true) => Some(t),
        (t, false) => Some(t.saturating_add(ctx.now_ms as i64)),
    };
    if at.is_some_and(|t| t <= ctx.now_ms as i64) && !ctx.engine.loading {
        // Already expired: the key is not created (and a replaced one stays deleted).
        if deleted {
            ctx.engine.touch(db, &key);
            ctx.notify(EventClass::Generic, "del", &key);
        }
        return Reply::Ok.into();
    }
    match restored {
        Restored::Str(s) => {
            ctx.engine.keyspace[db]
                .map
                .insert(Bytes::copy_from_slice(&key), Value::Str(s));
            ctx.engine.touch(db, &key);
        }
        Restored::List(elements) => {
            ctx.engine.push(db, &key, End::Right, &elements);
        }
        Restored::Hash(pairs) => {
            let mut h = crate::types::hash::Hash::default();
            for (f, v) in &pairs {
                h.set(f, v);
            }
            ctx.engine.keyspace[db]
                .map
                .insert(Bytes::copy_from_slice(&key), Value::Hash(h));
            ctx.engine.touch(db, &key);
        }
        Restored::ZSet(pairs) => {
            let mut z = crate::types::zset::ZSet::for_first_member(&pairs[0].0);
            for (m, score) in &pairs {
                z.insert(m, *score);
            }
            ctx.engine.keyspace[db]
                .map
                .insert(Bytes::copy_from_slice(&key), Value::ZSet(z));
            // A sorted set arriving at a key may serve clients blocked in BZPOPMIN on it.
            ctx.engine.signal_key_ready(db, &key);
            ctx.engine.touch(db, &key);
        }
        Restored::Stream(s) => {
            ctx.engine.keyspace[db]
                .map
                .insert(Bytes::copy_from_slice(&key), Value::Stream(Box::new(s)));
            // Clients blocked in XREAD/XREADGROUP on this key may now be answered.
            ctx.engine.stream_changed(db, &key);
            ctx.engine.touch(db, &key);
        }
        Restored::Set(members) => {
            let mut set = crate::types::set::Set::for_member(&members[0]);
            for m in &members {
                set.add(m);
            }
            ctx.engine.keyspace[db]
                .map
                .insert(Bytes::copy_from_slice(&key), Value::Set(set));
            ctx.engine.touch(db, &key);
        }
    }
    if let Some(at) = at {
        ctx.engine.keyspace[db].set_expiry(&key, at as u64);
    }
    ctx.notify(EventClass::Generic, "restore", &key);
    Reply::Ok.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn values_round_trip() {
        for s in ["", "1", "-129", "70000", "12345678901", "0123", &"xyz".repeat(40)] {
            let p = payload(&Value::Str(Bytes::copy_from_slice(s.as_bytes())));
            match decode_payload(&p) {
                Ok(Restored::Str(back)) => assert_eq!(back, s.as_bytes()),
                _ => panic!("{s:?} did not come back"),
            }
        }
        let elements: Vec<Bytes> = (0..3000)
            .map(|i| {
                Bytes::from(if i % 3 == 0 {
                    (i as i64 * 977 - 5000).to_string()
                } else {
                    "e".repeat(i % 90)
                })
            })
            .collect();
        let mut body = vec![TYPE_LIST_QUICKLIST_2];
        put_len(&mut body, 1);
        put_len(&mut body, CONTAINER_PACKED);
        let mut lp = vec![0u8; 6];
        for e in &elements {
            put_listpack_entry(&mut lp, e);
        }
        put_string(&mut body, &finish_listpack(lp, elements.len()));
        match decode_body(&body) {
            Some(Restored::List(back)) => assert_eq!(back, elements),
            _ => panic!("the list did not come back"),
        }
    }

    /// A stream redis-server 7.0.15 dumped: one LZF-compressed node holding a deleted entry,
    /// an entry with its own fields and a negative sequence delta, a group with two pending
    /// entries of one consumer, and a group whose entries-read is unknown with an idle consumer.
    const REDIS_STREAM: &[u8] =
        b"\x13\x01\x10\x00\x00\x01\x8b\xcf\xe5\x68\x00\x00\x00\x00\x00\x00\x00\x00\x00\xc3\x40\x5b\
          \x40\x65\x19\x65\x00\x00\x00\x1f\x00\x03\x01\x01\x01\x02\x01\x84\x6e\x61\x6d\x65\x05\x85\
          \x74\x72\x69\x65\x73\x06\x00\x20\x10\x00\x00\x20\x01\x05\x85\x6a\x6f\x62\x2d\x31\x20\x0e\
          \x02\x05\x01\x03\x20\x0e\x00\x01\x80\x10\x02\x32\x06\x03\x20\x10\x40\x14\x60\x12\x09\x6f\
          \x74\x68\x65\x72\x06\x81\x78\x02\x06\x20\x35\x02\x09\x01\x07\x80\x24\x08\x34\x06\xf1\xe0\
          \xb1\x03\x05\x01\xff\x03\x81\x00\x00\x01\x8b\xcf\xe5\x68\x09\x07\x81\x00\x00\x01\x8b\xcf\
          \xe5\x68\x00\x00\x81\x00\x00\x01\x8b\xcf\xe5\x68\x00\x01\x04\x02\x05\x61\x75\x64\x69\x74\
          \x81\x00\x00\x01\x8b\xcf\xe5\x68\x09\x07\x81\xff\xff\xff\xff\xff\xff\xff\xff\x00\x01\x04\
          \x69\x64\x6c\x65\x3a\xb5\x4c\x30\xa2\x01\x00\x00\x00\x07\x77\x6f\x72\x6b\x65\x72\x73\x81\
          \x00\x00\x01\x8b\xcf\xe5\x68\x05\x00\x81\xff\xff\xff\xff\xff\xff\xff\xff\x02\x00\x00\x01\
          \x8b\xcf\xe5\x68\x00\x00\x00\x00\x00\x00\x00\x00\x00\x3a\xb5\x4c\x30\xa2\x01\x00\x00\x01\
          \x00\x00\x01\x8b\xcf\xe5\x68\x05\x00\x00\x00\x00\x00\x00\x00\x00\x3a\xb5\x4c\x30\xa2\x01\
          \x00\x00\x01\x01\x02\x77\x31\x3a\xb5\x4c\x30\xa2\x01\x00\x00\x02\x00\x00\x01\x8b\xcf\xe5\
          \x68\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x8b\xcf\xe5\x68\x05\x00\x00\x00\x00\
          \x00\x00\x00\x00\x0a\x00\x2f\x1a\xb1\x5f\x7f\xc5\xfc\x23";

    fn f(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|x| Bytes::from(x.to_string())).collect()
    }

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    /// A stream of several chunks with deleted entries, numeric and long fields, and groups
    /// with consumers, pending entries and an unknown entries-read.
    fn sample_stream() -> Stream {
        let mut s = Stream::new();
        for i in 1..=260u64 {
            let fields = if i % 7 == 0 {
                vec![
                    Bytes::from_static(b"payload"),
                    Bytes::from("p".repeat((i * 37 % 900) as usize)),
                ]
            } else {
                f(&format!("n {} neg -{} big {}", i, i * 1000, i * 10_000_000_000))
            };
            s.append(id(1000 + i / 4, i % 4), &fields);
        }
        for gone in [id(1000, 1), id(1010, 2), id(1050, 0), id(1065, 0)] {
            assert!(s.delete(gone));
        }
        s.max_deleted = id(1065, 0);
        let mut g = Group::new(id(1003, 2), 11);
        for (name, seen) in [("alice", 1_700_000_000_123u64), ("bob", 5)] {
            g.consumer(name.as_bytes(), seen);
        }
        g.assign(id(1001, 2), &Bytes::from_static(b"alice"), 1_700_000_000_000, 3);
        g.assign(id(1002, 0), &Bytes::from_static(b"bob"), 42, 1);
        g.assign(id(1010, 2), &Bytes::from_static(b"bob"), 43, 9);
        s.groups.insert(Bytes::from_static(b"g1"), g);
        let mut unknown = Group::new(id(1065, 0), INVALID_ENTRIES_READ);
        unknown.consumer(b"idle", 77);
        s.groups.insert(Bytes::from_static(b"g2"), unknown);
        s
    }

    fn restored_stream(p: &[u8]) -> Stream {
        match decode_payload(p) {
            Ok(Restored::Stream(s)) => s,
            Ok(_) => panic!("not a stream"),
            Err(e) => panic!("refused: {e}"),
        }
    }

    #[test]
    fn redis_stream_payload_restores_and_dumps_back_identically() {
        let s = restored_stream(REDIS_STREAM);
        let entries: Vec<(StreamId, Vec<Bytes>)> = s
            .range(StreamId::MIN, StreamId::MAX)
            .map(|(i, fields)| (i, fields.to_vec()))
            .collect();
        assert_eq!(
            entries,
            vec![
                (id(1_700_000_000_000, 0), f("name job-1 tries 0")),
                (id(1_700_000_000_005, 0), f("other x")),
                (id(1_700_000_000_009, 7), f("name job-4 tries -20000")),
            ]
        );
        assert_eq!((s.len(), s.chunk_count(), s.entries_added), (3, 1, 4));
        assert_eq!(s.last_id, id(1_700_000_000_009, 7));
        assert_eq!(s.max_deleted, id(1_700_000_000_000, 1));
        let workers = &s.groups[&Bytes::from_static(b"workers")];
        assert_eq!(workers.last_id, id(1_700_000_000_005, 0));
        assert_eq!(workers.entries_read, INVALID_ENTRIES_READ);
        let pending: Vec<(StreamId, &[u8], u64)> = workers
            .pel
            .iter()
            .map(|(i, n)| (*i, &n.consumer[..], n.delivery_count))
            .collect();
        assert_eq!(
            pending,
            vec![
                (id(1_700_000_000_000, 0), &b"w1"[..], 1),
                (id(1_700_000_000_005, 0), &b"w1"[..], 1)
            ]
        );
        assert_eq!(workers.consumers[&Bytes::from_static(b"w1")].pel.len(), 2);
        let audit = &s.groups[&Bytes::from_static(b"audit")];
        assert!(audit.pel.is_empty() && audit.consumers.contains_key(&b"idle"[..]));
        assert_eq!(payload(&Value::Stream(Box::new(s))), REDIS_STREAM.to_vec());
    }

    #[test]
    fn streams_round_trip_with_their_nodes_groups_and_pending_entries() {
        let s = sample_stream();
        assert!(s.chunk_count() > 2, "the sample spans several nodes");
        let p = payload(&Value::Stream(Box::new(s.clone())));
        let back = restored_stream(&p);
        let all = |s: &Stream| -> Vec<(StreamId, Vec<Bytes>)> {
            s.range(StreamId::MIN, StreamId::MAX)
                .map(|(i, f)| (i, f.to_vec()))
                .collect()
        };
        assert_eq!(all(&back), all(&s));
        assert_eq!(back.len(), s.len());
        assert_eq!(back.chunk_count(), s.chunk_count());
        assert_eq!(
            (back.last_id, back.max_deleted, back.entries_added),
            (s.last_id, s.max_deleted, s.entries_added)
        );
        for (name, g) in &s.groups {
            let h = &back.groups[name];
            assert_eq!((h.last_id, h.entries_read), (g.last_id, g.entries_read));
            let nacks = |g: &Group| -> Vec<(StreamId, Bytes, u64, u64)> {
                g.pel
                    .iter()
                    .map(|(i, n)| (*i, n.consumer.clone(), n.delivery_ms, n.delivery_count))
                    .collect()
            };
            assert_eq!(nacks(h), nacks(g));
            let consumers = |g: &Group| -> Vec<(Bytes, u64, Vec<StreamId>)> {
                g.consumers
                    .iter()
                    .map(|(n, c)| (n.clone(), c.seen_ms, c.pel.iter().copied().collect()))
                    .collect()
            };
            assert_eq!(consumers(h), consumers(g));
        }
        // The restored stream keeps growing where the original would: same chunks after more
        // appends, and its payload is the same bytes.
        let (mut a, mut b) = (s, back);
        for i in 0..150u64 {
            a.append(id(2000, i), &f("n 1"));
            b.append(id(2000, i), &f("n 1"));
        }
        assert_eq!(a.chunk_count(), b.chunk_count());
        assert_eq!(
            payload(&Value::Stream(Box::new(a))),
            payload(&Value::Stream(Box::new(b)))
        );
    }

    /// Redis 5 and 6 payloads (`RDB_TYPE_STREAM_LISTPACKS`) restore, with the counters
    /// Redis 7.0 derives: entries added = length, no max deleted id, and entries-read known
    /// only where the group's position allows it.
    #[test]
    fn redis_6_stream_payloads_restore_with_derived_counters() {
        let mut s = Stream::new();
        for i in 1..=150u64 {
            s.append(id(i, 0), &f("k v"));
        }
        let mut at_end = Group::new(id(150, 0), 0);
        at_end.consumer(b"c", 9);
        at_end.assign(id(150, 0), &Bytes::from_static(b"c"), 10, 2);
        s.groups.insert(Bytes::from_static(b"end"), at_end);
        s.groups
            .insert(Bytes::from_static(b"mid"), Group::new(id(70, 0), 0));
        let mut body = vec![TYPE_STREAM_LISTPACKS];
        put_stream_nodes(&mut body, &s);
        put_len(&mut body, s.len() as u64);
        put_id(&mut body, s.last_id);
        put_len(&mut body, s.groups.len() as u64);
        for (name, g) in &s.groups {
            put_string(&mut body, name);
            put_id(&mut body, g.last_id);
            put_group_pels(&mut body, g);
        }
        let Some(Restored::Stream(back)) = decode_body(&body) else {
            panic!("a Redis 6 stream payload was refused");
        };
        assert_eq!(
            (back.len(), back.chunk_count(), back.entries_added),
            (150, 2, 150)
        );
        assert_eq!((back.last_id, back.max_deleted), (id(150, 0), StreamId::MIN));
        let end = &back.groups[&b"end"[..]];
        assert_eq!(end.entries_read, 150);
        assert_eq!(end.pel[&id(150, 0)].delivery_count, 2);
        assert_eq!(back.groups[&b"mid"[..]].entries_read, INVALID_ENTRIES_READ);
    }

    #[test]
    fn inconsistent_stream_payloads_are_bad_data() {
        let body = |s: &Stream| {
            let mut out = Vec::new();
            out.push(TYPE_STREAM_LISTPACKS_2);
            put_stream(&mut out, s);
            out
        };
        let good = body(&sample_stream());
        assert!(matches!(decode_body(&good), Some(Restored::Stream(_))));
        // A last id below the last entry would let XADD append out of order.
        let mut s = sample_stream();
        s.last_id = id(1001, 0);
        assert!(decode_body(&body(&s)).is_none());
        // Fewer entries added than the stream holds.
        let mut s = sample_stream();
        s.entries_added = 3;
        assert!(decode_body(&body(&s)).is_none());
        // A pending entry owned by no consumer.
        let mut s = sample_stream();
        if let Some(g) = s.groups.get_mut(&b"g1"[..]) {
            if let Some(c) = g.consumers.get_mut(&b"bob"[..]) {
                c.pel.clear();
            }
        }
        assert!(decode_body(&body(&s)).is_none());
        // A consumer claiming an id the group's PEL does not hold.
        let mut s = sample_stream();
        if let Some(g) = s.groups.get_mut(&b"g1"[..]) {
            if let Some(c) = g.consumers.get_mut(&b"alice"[..]) {
                c.pel.insert(id(1, 1));
            }
        }
        assert!(decode_body(&body(&s)).is_none());
        // Trailing bytes.
        let mut long = good.clone();
        long.push(0);
        assert!(decode_body(&long).is_none());
    }

    /// Fuzz: garbage, truncations and bit flips of valid payloads (with the checksum fixed
    /// up, so the decoder itself is exercised) never panic.
    #[test]
    fn garbage_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        let mut seeds: Vec<Vec<u8>> = Vec::new();
        for s in ["x", "100", &"ab".repeat(50)] {
            seeds.push(payload(&Value::Str(Bytes::copy_from_slice(s.as_bytes()))));
        }
        let mut list = vec![TYPE_LIST_QUICKLIST_2, 1, 2];
        let mut lp = vec![0u8; 6];
        for e in ["a", "1", "-3000", "hello world", "99999999999"] {
            put_listpack_entry(&mut lp, e.as_bytes());
        }
        put_string(&mut list, &finish_listpack(lp, 5));
        seeds.push(list);
        seeds.push(REDIS_STREAM.to_vec());
        seeds.push(REDIS_STREAM[..REDIS_STREAM.len() - 10].to_vec());
        let sample = payload(&Value::Stream(Box::new(sample_stream())));
        seeds.push(sample[..sample.len() - 10].to_vec());
        seeds.push(sample);
        for round in 0..20_000 {
            let mut p = seeds[round % seeds.len()].clone();
            match rng.gen_range(0..4) {
                0 => p = (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
                1 => p.truncate(rng.gen_range(0..=p.len())),
                _ => {
                    for _ in 0..rng.gen_range(1..4) {
                        if !p.is_empty() {
                            let i = rng.gen_range(0..p.len());
                            p[i] ^= 1 << rng.gen_range(0..8);
                        }
                    }
                }
            }
            let _ = decode_payload(&p);
            let _ = decode_body(&p);
        }
    }
}
