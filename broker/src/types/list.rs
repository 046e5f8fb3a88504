//! Lists: elements packed into byte chunks of a few KB (as Redis packs a quicklist's listpacks),
//! each element with the instant it was enqueued, and the queue counters the list reports to.
//!
//! One heap block and a 40-byte slot per element cost 1.4× Redis's memory for 100-byte
//! elements; packed, an element costs its bytes plus 3–6 bytes of framing. Large elements stay
//! reference-counted on their own, so pushing and popping them copies nothing twice.
//!
//! A chunk entry is `len` (LEB128) · `stamp` (zigzag LEB128 of the enqueue time minus the
//! chunk's base, µs: usually 1–3 bytes) · the bytes · `back` (the size of what precedes it,
//! LEB128 written backwards), so a chunk is walked from either end without an offset table.
//! Live entries sit in `head..tail` of the buffer: pops from either end only move an offset.

use crate::metrics::QueueCounters;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;

/// A chunk never grows past this (Redis's default `list-max-listpack-size -2` is 8 KB).
const CHUNK_BYTES: usize = 8192;
/// Elements longer than this are kept as their own node: copying them into a chunk and out
/// again would cost more than the few bytes of overhead a node saves.
const LARGE_ELEMENT: usize = 4096;
/// Smallest buffer a chunk starts with (then doubles), so a short list stays small.
const MIN_CHUNK: usize = 32;

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(buf: &mut [u8], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        buf[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    buf[at] = v as u8;
    at + 1
}

fn get_varint(buf: &[u8], mut at: usize) -> (u64, usize) {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[at];
        v |= u64::from(b & 0x7f) << shift;
        at += 1;
        if b & 0x80 == 0 {
            return (v, at);
        }
        shift += 7;
    }
}

/// Writes `v` so that [`get_varint_back`] reads it from the end: the low group last.
fn put_varint_back(buf: &mut [u8], at: usize, v: u64) -> usize {
    let n = varint_len(v);
    let mut rest = v;
    for i in (at..at + n).rev() {
        let more = if i > at { 0x80 } else { 0 };
        buf[i] = (rest as u8 & 0x7f) | more;
        rest >>= 7;
    }
    at + n
}

/// Reads a backwards varint that ends just before `end`; returns it and where it starts.
fn get_varint_back(buf: &[u8], mut end: usize) -> (u64, usize) {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        end -= 1;
        let b = buf[end];
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return (v, end);
        }
        shift += 7;
    }
}

fn zigzag(delta: i64) -> u64 {
    ((delta << 1) ^ (delta >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bytes an entry takes: its framing and `len` bytes.
fn entry_size(len: usize, stamp: u64) -> usize {
    let body = varint_len(len as u64) + varint_len(stamp) + len;
    body + varint_len(body as u64)
}

/// Entries packed in one buffer, live between `head` and `tail`.
#[derive(Clone, Debug)]
struct Chunk {
    buf: Box<[u8]>,
    head: u32,
    tail: u32,
    count: u32,
    /// Stamps are stored relative to this (the first entry's), so they take a few bytes.
    base_us: u64,
}

/// One entry read from a chunk: where its bytes are, its stamp, where the next one starts.
struct Entry {
    start: usize,
    end: usize,
    enq_us: u64,
    next: usize,
}

impl Chunk {
    /// A chunk holding one entry, with room left at the end it will grow from.
    fn new(data: &[u8], enq_us: u64, at_back: bool, capacity: usize) -> Chunk {
        let size = entry_size(data.len(), 0);
        let cap = capacity.max(size.next_power_of_two()).max(MIN_CHUNK);
        let mut c = Chunk {
            buf: vec![0; cap].into_boxed_slice(),
            head: 0,
            tail: 0,
            count: 1,
            base_us: enq_us,
        };
        let at = if at_back { 0 } else { cap - size };
        c.write(at, data, 0);
        c.head = at as u32;
        c.tail = (at + size) as u32;
        c
    }

    fn stamp_of(&self, enq_us: u64) -> u64 {
        zigzag(enq_us.wrapping_sub(self.base_us) as i64)
    }

    fn write(&mut self, at: usize, data: &[u8], stamp: u64) -> usize {
        let mut p = put_varint(&mut self.buf, at, data.len() as u64);
        p = put_varint(&mut self.buf, p, stamp);
        self.buf[p..p + data.len()].copy_from_slice(data);
        let body = p + data.len() - at;
        put_varint_back(&mut self.buf, p + data.len(), body as u64)
    }

    fn read(&self, at: usize) -> Entry {
        let (len, p) = get_varint(&self.buf, at);
        let (stamp, start) = get_varint(&self.buf, p);
        let end = start + len as usize;
        Entry {
            start,
            end,
            enq_us: self.base_us.wrapping_add(unzigzag(stamp) as u64),
            next: end + varint_len((end - at) as u64),
        }
    }

    /// Where the entry that ends at `end` starts.
    fn start_before(&self, end: usize) -> usize {
        let (body, p) = get_varint_back(&self.buf, end);
        p - body as usize
    }

    fn live(&self) -> usize {
        (self.tail - self.head) as usize
    }

    /// Makes `need` bytes of room at the back (or front) if the chunk may hold them: by sliding
    /// the entries when at least half the buffer is free (so each byte is moved a bounded
    /// number of times), else by doubling the buffer. False when the chunk is full.
    fn make_room(&mut self, need: usize, at_back: bool) -> bool {
        let cap = self.buf.len();
        let live = self.live();
        let (head, tail) = (self.head as usize, self.tail as usize);
        if at_back && tail + need <= cap || !at_back && need <= head {
            return true;
        }
        if live + need > CHUNK_BYTES {
            return false;
        }
        if live + need <= cap && live <= cap / 2 {
            let to = if at_back { 0 } else { cap - live };
            self.buf.copy_within(head..tail, to);
            self.head = to as u32;
            self.tail = (to + live) as u32;
            return true;
        }
        let new_cap = (cap * 2).max((live + need).next_power_of_two()).min(CHUNK_BYTES);
        let mut buf = vec![0; new_cap].into_boxed_slice();
        let to = if at_back { 0 } else { new_cap - live };
        buf[to..to + live].copy_from_slice(&self.buf[head..tail]);
        self.buf = buf;
        self.head = to as u32;
        self.tail = (to + live) as u32;
        true
    }

    fn push_back(&mut self, data: &[u8], enq_us: u64) -> bool {
        let stamp = self.stamp_of(enq_us);
        let size = entry_size(data.len(), stamp);
        if !self.make_room(size, true) {
            return false;
        }
        self.tail = self.write(self.tail as usize, data, stamp) as u32;
        self.count += 1;
        true
    }

    fn push_front(&mut self, data: &[u8], enq_us: u64) -> bool {
        let stamp = self.stamp_of(enq_us);
        let size = entry_size(data.len(), stamp);
        if !self.make_room(size, false) {
            return false;
        }
        let at = self.head as usize - size;
        self.write(at, data, stamp);
        self.head = at as u32;
        self.count += 1;
        true
    }

    fn pop_front(&mut self) -> (Bytes, u64) {
        let e = self.read(self.head as usize);
        self.head = e.next as u32;
        self.count -= 1;
        (Bytes::copy_from_slice(&self.buf[e.start..e.end]), e.enq_us)
    }

    fn pop_back(&mut self) -> (Bytes, u64) {
        let at = self.start_before(self.tail as usize);
        let e = self.read(at);
        self.tail = at as u32;
        self.count -= 1;
        (Bytes::copy_from_slice(&self.buf[e.start..e.end]), e.enq_us)
    }

    fn front_stamp(&self) -> u64 {
        self.read(self.head as usize).enq_us
    }

    fn back_stamp(&self) -> u64 {
        self.read(self.start_before(self.tail as usize)).enq_us
    }

    /// The chunk's entries in order.
    fn entries(&self) -> impl Iterator<Item = (&[u8], u64)> + '_ {
        let mut at = self.head as usize;
        std::iter::from_fn(move || {
            (at < self.tail as usize).then(|| {
                let e = self.read(at);
                at = e.next;
                (&self.buf[e.start..e.end], e.enq_us)
            })
        })
    }
}

#[derive(Clone, Debug)]
enum Node {
    Packed(Chunk),
    Large { data: Bytes, enq_us: u64 },
}

impl Node {
    fn count(&self) -> usize {
        match self {
            Node::Packed(c) => c.count as usize,
            Node::Large { .. } => 1,
        }
    }
}

/// A list's elements with their enqueue stamps (µs since epoch), packed.
#[derive(Clone, Debug, Default)]
pub struct Elements {
    nodes: VecDeque<Node>,
    len: usize,
}

impl Elements {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, data: &[u8], enq_us: u64) {
        self.len += 1;
        if data.len() > LARGE_ELEMENT {
            let data = Bytes::copy_from_slice(data);
            self.nodes.push_back(Node::Large { data, enq_us });
            return;
        }
        if let Some(Node::Packed(c)) = self.nodes.back_mut() {
            if c.push_back(data, enq_us) {
                return;
            }
        }
        let cap = self.fresh_capacity();
        self.nodes
            .push_back(Node::Packed(Chunk::new(data, enq_us, true, cap)));
    }

    pub fn push_front(&mut self, data: &[u8], enq_us: u64) {
        self.len += 1;
        if data.len() > LARGE_ELEMENT {
            let data = Bytes::copy_from_slice(data);
            self.nodes.push_front(Node::Large { data, enq_us });
            return;
        }
        if let Some(Node::Packed(c)) = self.nodes.front_mut() {
            if c.push_front(data, enq_us) {
                return;
            }
        }
        let cap = self.fresh_capacity();
        self.nodes
            .push_front(Node::Packed(Chunk::new(data, enq_us, false, cap)));
    }

    /// A list that already filled a chunk will likely fill the next: skip the doublings.
    fn fresh_capacity(&self) -> usize {
        if self.nodes.is_empty() {
            MIN_CHUNK
        } else {
            CHUNK_BYTES
        }
    }

    /// The first element and its stamp, removed.
    pub fn pop_front(&mut self) -> Option<(Bytes, u64)> {
        let out = match self.nodes.front_mut()? {
            Node::Packed(c) if c.count > 1 => c.pop_front(),
            Node::Packed(_) => match self.nodes.pop_front() {
                Some(Node::Packed(mut c)) => c.pop_front(),
                _ => return None,
            },
            Node::Large { .. } => match self.nodes.pop_front() {
                Some(Node::Large { data, enq_us }) => (data, enq_us),
                _ => return None,
            },
        };
        self.len -= 1;
        Some(out)
    }

    /// The last element and its stamp, removed.
    pub fn pop_back(&mut self) -> Option<(Bytes, u64)> {
        let out = match self.nodes.back_mut()? {
            Node::Packed(c) if c.count > 1 => c.pop_back(),
            Node::Packed(_) => match self.nodes.pop_back() {
                Some(Node::Packed(mut c)) => c.pop_back(),
                _ => return None,
            },
            Node::Large { .. } => match self.nodes.pop_back() {
                Some(Node::Large { data, enq_us }) => (data, enq_us),
                _ => return None,
            },
        };
        self.len -= 1;
        Some(out)
    }

    /// Enqueue stamps of the first and last elements.
    fn end_stamps(&self) -> Option<(u64, u64)> {
        let front = match self.nodes.front()? {
            Node::Packed(c) => c.front_stamp(),
            Node::Large { enq_us, .. } => *enq_us,
        };
        let back = match self.nodes.back()? {
            Node::Packed(c) => c.back_stamp(),
            Node::Large { enq_us, .. } => *enq_us,
        };
        Some((front, back))
    }

    /// The node holding element `index` and the element's position in it, walking from the
    /// nearer end.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        if index < self.len / 2 {
            let mut i = index;
            for (n, node) in self.nodes.iter().enumerate() {
                if i < node.count() {
                    return Some((n, i));
                }
                i -= node.count();
            }
        } else {
            let mut from_back = self.len - 1 - index;
            for (n, node) in self.nodes.iter().enumerate().rev() {
                if from_back < node.count() {
                    return Some((n, node.count() - 1 - from_back));
                }
                from_back -= node.count();
            }
        }
        None
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let (n, i) = self.locate(index)?;
        match &self.nodes[n] {
            Node::Packed(c) => c.entries().nth(i).map(|(d, _)| d),
            Node::Large { data, .. } => Some(data),
        }
    }

    /// Elements from `start` on, in order.
    pub fn iter_from(&self, start: usize) -> Iter<'_> {
        let (node, skip) = self.locate(start).unwrap_or((self.nodes.len(), 0));
        let mut it = Iter {
            nodes: &self.nodes,
            node,
            at: 0,
            remaining: self.len.saturating_sub(start),
        };
        if let Some(Node::Packed(c)) = self.nodes.get(node) {
            it.at = c.head as usize;
            for _ in 0..skip {
                it.at = c.read(it.at).next;
            }
        }
        it
    }

    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Elements from the last to the first.
    pub fn iter_rev(&self) -> RevIter<'_> {
        let node = self.nodes.len();
        RevIter {
            nodes: &self.nodes,
            node,
            at: 0,
            remaining: self.len,
        }
    }

    /// Rewrites node `n` as the elements `edit` leaves of its entries (possibly none, possibly
    /// more than one chunk's worth). Only the rare middle-of-list edits come here: the entries
    /// are copied out, which keeps this simple and costs at most one chunk.
    fn rewrite_node(&mut self, n: usize, edit: impl FnOnce(&mut Vec<(Vec<u8>, u64)>)) {
        let Some(old) = self.nodes.remove(n) else {
            return;
        };
        let mut entries: Vec<(Vec<u8>, u64)> = match &old {
            Node::Packed(c) => c.entries().map(|(d, t)| (d.to_vec(), t)).collect(),
            Node::Large { data, enq_us } => vec![(data.to_vec(), *enq_us)],
        };
        let before = entries.len();
        edit(&mut entries);
        let mut rebuilt = Elements::default();
        for (data, enq_us) in &entries {
            rebuilt.push_back(data, *enq_us);
        }
        self.len = self.len + entries.len() - before;
        for (k, node) in rebuilt.nodes.into_iter().enumerate() {
            self.nodes.insert(n + k, node);
        }
    }

    /// Replaces element `index`, keeping its stamp (it stays as long queued). False when out
    /// of range.
    pub fn set(&mut self, index: usize, data: &[u8]) -> bool {
        let Some((n, i)) = self.locate(index) else {
            return false;
        };
        self.rewrite_node(n, |entries| entries[i].0 = data.to_vec());
        true
    }

    /// Inserts an element before position `index` (`index == len` appends).
    pub fn insert(&mut self, index: usize, data: &[u8], enq_us: u64) {
        if index == 0 {
            return self.push_front(data, enq_us);
        }
        if index >= self.len {
            return self.push_back(data, enq_us);
        }
        if let Some((n, i)) = self.locate(index) {
            self.rewrite_node(n, |entries| entries.insert(i, (data.to_vec(), enq_us)));
        }
    }

    /// Removes up to `limit` elements equal to `element`, scanning from the head (or the tail
    /// when `from_tail`); returns how many went.
    pub fn remove_matching(&mut self, element: &[u8], limit: usize, from_tail: bool) -> usize {
        let mut removed = 0;
        // A rewrite may turn one node into none or several: walking from the head, the next
        // node's index moves by that difference; walking from the tail, it does not.
        let mut n = if from_tail { self.nodes.len() } else { 0 };
        while removed < limit {
            if from_tail {
                if n == 0 {
                    break;
                }
                n -= 1;
            } else if n >= self.nodes.len() {
                break;
            }
            let hits = match &self.nodes[n] {
                Node::Packed(c) => c.entries().filter(|(d, _)| *d == element).count(),
                Node::Large { data, .. } => usize::from(data[..] == *element),
            };
            if hits == 0 {
                if !from_tail {
                    n += 1;
                }
                continue;
            }
            let take = hits.min(limit - removed);
            let nodes_before = self.nodes.len();
            self.rewrite_node(n, |entries| {
                let mut left = take;
                if from_tail {
                    for k in (0..entries.len()).rev() {
                        if left > 0 && entries[k].0[..] == *element {
                            entries.remove(k);
                            left -= 1;
                        }
                    }
                } else {
                    let mut k = 0;
                    while k < entries.len() {
                        if left > 0 && entries[k].0[..] == *element {
                            entries.remove(k);
                            left -= 1;
                        } else {
                            k += 1;
                        }
                    }
                }
            });
            removed += take;
            if !from_tail {
                // Skip the node(s) the rewrite produced.
                n = (n + 1 + self.nodes.len()).saturating_sub(nodes_before);
            }
        }
        removed
    }

    /// Keeps elements `start..end` only.
    pub fn trim(&mut self, start: usize, end: usize) {
        let end = end.min(self.len);
        if start >= end {
            self.clear();
            return;
        }
        let mut drop_back = self.len - end;
        while drop_back > 0 {
            match self.nodes.back() {
                Some(node) if node.count() <= drop_back => {
                    drop_back -= node.count();
                    self.len -= node.count();
                    self.nodes.pop_back();
                }
                _ => {
                    self.pop_back();
                    drop_back -= 1;
                }
            }
        }
        let mut drop_front = start;
        while drop_front > 0 {
            match self.nodes.front() {
                Some(node) if node.count() <= drop_front => {
                    drop_front -= node.count();
                    self.len -= node.count();
                    self.nodes.pop_front();
                }
                _ => {
                    self.pop_front();
                    drop_front -= 1;
                }
            }
        }
    }

    pub fn clear(&mut self) {
        self.nodes.clear();
        self.len = 0;
    }
}

/// Elements front to back (see [`Elements::iter_from`]).
#[derive(Clone)]
pub struct Iter<'a> {
    nodes: &'a VecDeque<Node>,
    node: usize,
    /// Offset of the next entry in a packed node.
    at: usize,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            match self.nodes.get(self.node)? {
                Node::Large { data, .. } => {
                    self.node += 1;
                    self.at = self.head_of(self.node);
                    self.remaining -= 1;
                    return Some(data);
                }
                Node::Packed(c) if self.at < c.tail as usize => {
                    let e = c.read(self.at);
                    self.at = e.next;
                    self.remaining -= 1;
                    return Some(&c.buf[e.start..e.end]);
                }
                Node::Packed(_) => {
                    self.node += 1;
                    self.at = self.head_of(self.node);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl Iter<'_> {
    fn head_of(&self, node: usize) -> usize {
        match self.nodes.get(node) {
            Some(Node::Packed(c)) => c.head as usize,
            _ => 0,
        }
    }
}

/// Elements back to front (see [`Elements::iter_rev`]).
#[derive(Clone)]
pub struct RevIter<'a> {
    nodes: &'a VecDeque<Node>,
    /// One past the node being read.
    node: usize,
    /// End of the next entry (from the back) in that packed node; 0 before entering it.
    at: usize,
    remaining: usize,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            if self.at == 0 {
                // Step to the previous node.
                self.node = self.node.checked_sub(1)?;
                match &self.nodes[self.node] {
                    Node::Large { data, .. } => {
                        self.remaining -= 1;
                        return Some(data);
                    }
                    Node::Packed(c) => self.at = c.tail as usize,
                }
            }
            let Node::Packed(c) = &self.nodes[self.node] else {
                self.at = 0;
                continue;
            };
            if self.at <= c.head as usize {
                self.at = 0;
                continue;
            }
            let start = c.start_before(self.at);
            let e = c.read(start);
            // `at == 0` means "enter the previous node": an entry at offset 0 is the chunk's
            // first, so the walk moves on anyway.
            self.at = if start == c.head as usize { 0 } else { start };
            self.remaining -= 1;
            return Some(&c.buf[e.start..e.end]);
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for RevIter<'_> {}

/// A list value: its elements and the counters of the queue it is.
#[derive(Debug)]
pub struct List {
    pub items: Elements,
    pub stats: Arc<QueueCounters>,
}

impl Drop for List {
    fn drop(&mut self) {
        // The key no longer holds this list: the registry decides whether to remember it.
        self.stats.detach();
    }
}

impl List {
    pub fn new(stats: Arc<QueueCounters>) -> List {
        List {
            items: Elements::default(),
            stats,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Moves the list to another key's counters (RENAME): the old key is released.
    pub fn retarget(&mut self, stats: Arc<QueueCounters>) {
        let old = std::mem::replace(&mut self.stats, stats);
        old.detach();
    }

    /// Enqueue time of the older of the two ends (0 when empty): producers push at one end
    /// and consumers take from the other, whichever way round.
    pub fn oldest_us(&self) -> u64 {
        self.items.end_stamps().map_or(0, |(a, b)| a.min(b))
    }

    /// Publishes the current length after an operation that is neither push nor pop.
    pub fn sync_length(&self) {
        self.stats.record_length(self.items.len(), self.oldest_us());
    }

    /// Redis 7.0's OBJECT ENCODING name: every list is a quicklist there.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// A copy of the elements (stamps included) with fresh counters that belong to no key:
    /// whoever stores it under a key gives it that key's counters with [`List::retarget`].
    pub fn duplicate(&self) -> List {
        List::new(Arc::new(QueueCounters::default())).with_items(self.items.clone())
    }

    fn with_items(mut self, items: Elements) -> List {
        self.items = items;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// The packed list against a plain deque, checked whole after every step.
    struct Model {
        packed: Elements,
        plain: VecDeque<(Vec<u8>, u64)>,
    }

    impl Model {
        fn new() -> Model {
            Model {
                packed: Elements::default(),
                plain: VecDeque::new(),
            }
        }

        fn check(&self) {
            assert_eq!(self.packed.len(), self.plain.len());
            let fwd: Vec<&[u8]> = self.packed.iter().collect();
            let want: Vec<&[u8]> = self.plain.iter().map(|(d, _)| &d[..]).collect();
            assert_eq!(fwd, want);
            let mut rev: Vec<&[u8]> = self.packed.iter_rev().collect();
            rev.reverse();
            assert_eq!(rev, want);
            let counted: usize = self.packed.nodes.iter().map(Node::count).sum();
            assert_eq!(counted, self.packed.len());
            for (i, (d, _)) in self.plain.iter().enumerate().step_by(7) {
                assert_eq!(self.packed.get(i), Some(&d[..]));
                assert_eq!(self.packed.iter_from(i).next(), Some(&d[..]));
            }
            let stamps = self.packed.end_stamps();
            let want = self.plain.front().zip(self.plain.back()).map(|(a, b)| (a.1, b.1));
            assert_eq!(stamps, want);
        }

        fn push(&mut self, back: bool, data: Vec<u8>, t: u64) {
            if back {
                self.packed.push_back(&data, t);
                self.plain.push_back((data, t));
            } else {
                self.packed.push_front(&data, t);
                self.plain.push_front((data, t));
            }
        }

        fn pop(&mut self, back: bool) {
            let (got, want) = if back {
                (self.packed.pop_back(), self.plain.pop_back())
            } else {
                (self.packed.pop_front(), self.plain.pop_front())
            };
            assert_eq!(got.map(|(d, t)| (d.to_vec(), t)), want);
        }
    }

    fn element(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|k| (i * 31 + k) as u8).collect()
    }

    #[test]
    fn varints_round_trip_both_ways() {
        let mut buf = [0u8; 16];
        for v in [0, 1, 127, 128, 16383, 16384, u64::MAX / 3, u64::MAX] {
            let end = put_varint(&mut buf, 2, v);
            assert_eq!(get_varint(&buf, 2), (v, end));
            assert_eq!(end - 2, varint_len(v));
            let end = put_varint_back(&mut buf, 1, v);
            assert_eq!(get_varint_back(&buf, end), (v, 1));
        }
        for d in [0i64, 1, -1, 1_000_000, -1_000_000, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(d)), d);
        }
    }

    #[test]
    fn pushes_and_pops_across_chunk_edges_from_both_ends() {
        let mut m = Model::new();
        // 100-byte elements fill an 8 KB chunk at ~78: 1,000 span a dozen chunks.
        for i in 0..1000 {
            m.push(i % 3 != 0, element(i, 100), 1_000_000 + i as u64 * 37);
        }
        m.check();
        assert!(m.packed.nodes.len() > 10, "{} nodes", m.packed.nodes.len());
        for i in 0..900 {
            m.pop(i % 2 == 0);
            if i % 97 == 0 {
                m.check();
            }
        }
        m.check();
        // A queue: push at one end, pop at the other, through many chunk lifetimes.
        for i in 0..5000 {
            m.push(false, element(i, 1 + i % 150), 2_000_000 + i as u64);
            m.pop(true);
        }
        m.check();
        while !m.plain.is_empty() {
            m.pop(false);
        }
        m.check();
        assert!(m.packed.nodes.is_empty());
        assert_eq!(m.packed.pop_back(), None);
        assert_eq!(m.packed.pop_front(), None);
    }

    #[test]
    fn stamps_survive_clock_steps_backwards_and_far_apart() {
        let mut m = Model::new();
        for (i, t) in [5_000_000u64, 1, u64::MAX / 2, 0, 5_000_001, 7]
            .into_iter()
            .enumerate()
        {
            m.push(i % 2 == 0, element(i, 10), t);
            m.check();
        }
    }

    #[test]
    fn large_elements_mixed_with_small_ones() {
        let mut m = Model::new();
        for i in 0..200 {
            let len = match i % 5 {
                0 => LARGE_ELEMENT + 1,
                1 => LARGE_ELEMENT,
                2 => 20_000,
                _ => 1 + i,
            };
            m.push(i % 2 == 0, element(i, len), i as u64);
        }
        m.check();
        assert!(m.packed.nodes.iter().any(|n| matches!(n, Node::Large { .. })));
        let i = m.plain.len() / 2;
        m.packed.insert(i, b"mid", 9);
        m.plain.insert(i, (b"mid".to_vec(), 9));
        m.check();
        for i in 0..150 {
            m.pop(i % 3 == 0);
        }
        m.check();
    }

    #[test]
    fn insert_and_set_across_chunks() {
        let mut m = Model::new();
        for i in 0..400 {
            m.push(true, element(i, 60), i as u64);
        }
        // Inserts everywhere, including at both ends and into full chunks (which split).
        for k in 0..300 {
            let at = (k * 7919) % (m.plain.len() + 1);
            let data = element(k, 1 + k % 90);
            m.packed.insert(at, &data, 10_000 + k as u64);
            m.plain.insert(at, (data, 10_000 + k as u64));
        }
        m.check();
        for k in 0..200 {
            let at = (k * 104_729) % m.plain.len();
            let data = element(k + 7, k % 130);
            assert!(m.packed.set(at, &data));
            m.plain[at].0 = data;
        }
        let big = element(1, LARGE_ELEMENT * 2);
        assert!(m.packed.set(3, &big));
        m.plain[3].0 = big;
        assert!(!m.packed.set(m.plain.len(), b"x"));
        m.check();
    }

    #[test]
    fn remove_matching_from_either_end_across_chunks() {
        for from_tail in [false, true] {
            for limit in [1, 5, 60, usize::MAX] {
                let mut m = Model::new();
                for i in 0..600 {
                    let data = if i % 7 == 0 {
                        b"needle".to_vec()
                    } else {
                        element(i, 80)
                    };
                    m.push(true, data, i as u64);
                }
                let removed = m.packed.remove_matching(b"needle", limit, from_tail);
                let mut left = limit;
                let mut idx: Vec<usize> = (0..m.plain.len()).collect();
                if from_tail {
                    idx.reverse();
                }
                let mut gone = Vec::new();
                for i in idx {
                    if left > 0 && m.plain[i].0 == b"needle" {
                        gone.push(i);
                        left -= 1;
                    }
                }
                gone.sort_unstable();
                for i in gone.iter().rev() {
                    m.plain.remove(*i);
                }
                assert_eq!(removed, gone.len());
                m.check();
            }
        }
    }

    #[test]
    fn trim_across_chunks() {
        for (start, end) in [(0, 1000), (1, 999), (150, 420), (500, 501), (0, 0), (999, 5000)] {
            let mut m = Model::new();
            for i in 0..1000 {
                m.push(i % 2 == 0, element(i, 50 + i % 40), i as u64);
            }
            m.packed.trim(start, end);
            let keep: VecDeque<_> = m
                .plain
                .iter()
                .enumerate()
                .filter(|(i, _)| *i >= start && *i < end)
                .map(|(_, e)| e.clone())
                .collect();
            m.plain = keep;
            m.check();
        }
    }

    #[test]
    fn a_hundred_byte_element_costs_a_few_bytes_of_framing() {
        let mut e = Elements::default();
        for i in 0..10_000u64 {
            e.push_back(&[b'x'; 100], 1_700_000_000_000_000 + i);
        }
        let bytes: usize = e
            .nodes
            .iter()
            .map(|n| match n {
                Node::Packed(c) => c.buf.len(),
                Node::Large { .. } => 0,
            })
            .sum();
        assert!(bytes / 10_000 <= 106, "{} bytes per element", bytes / 10_000);
    }
}
