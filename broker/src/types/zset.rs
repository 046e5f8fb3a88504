//! Sorted sets: members ordered by (score, member bytes), with O(log n) rank positioning.
//!
//! Representation. A small set (at most [`MAX_LISTPACK_ENTRIES`] members, none longer than
//! [`MAX_LISTPACK_VALUE`] bytes), the counterpart of Redis's listpack, is one byte buffer of
//! exactly its size holding the entries in order, each a varint member length, the member and
//! the score (one byte for a small integer): every operation walks it, as Redis walks its
//! listpack. Many keys hold small sets, so each costs one allocation of a few bytes per member
//! (10 two-byte members with integer scores: 40 bytes), not one per member. Past either limit
//! the set converts (for good, as Redis does) to the "skiplist" encoding: a member → score map
//! for O(1) ZSCORE, and sorted chunks of at most [`CHUNK`] `(score, member)` entries, split
//! when full and dropped when empty.
//!
//! Cost in the large encoding (n members, B = [`CHUNK`]): locating a (score, member) or a
//! score/lex bound is a binary search over the chunks' last entries then inside one chunk,
//! O(log n); turning that position into a rank adds the lengths of the chunks before it,
//! O(n/B) integer additions (about 2,000 for a million members), and the same walk finds the
//! entry at a rank. Inserting or removing moves at most B entries inside a chunk, plus an
//! O(n/B) shift of the chunk list on a split. We chose this over a skiplist with spans for
//! memory (no per-node level arrays or pointers: 40 bytes an entry plus the member) and
//! cache-friendly range scans; ZRANK and rank ranges are O(log n + n/B + k), not O(n).

use super::pack::{put_len, read_len};
use bytes::Bytes;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

/// Redis's `zset-max-listpack-entries` default.
pub const MAX_LISTPACK_ENTRIES: usize = 128;
/// Redis's `zset-max-listpack-value` default.
pub const MAX_LISTPACK_VALUE: usize = 64;
/// Entries per chunk in the large encoding.
const CHUNK: usize = 256;

/// A score and its member. The member is shared with the member map of the large encoding
/// (one allocation, 16 bytes of counts, instead of a `Bytes` per side).
type Entry = (f64, Arc<[u8]>);

/// Member → score, for the large encoding.
type MemberMap = HashMap<Arc<[u8]>, f64, ahash::RandomState>;

/// Orders two entries as Redis does: by score (`-0` equals `0`), then by member bytes.
fn cmp_entry(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    a_score
        .partial_cmp(&b_score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a_member.cmp(b_member))
}

/// One end of a score range: `(1.5` is exclusive, `1.5` inclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

/// A score interval, as ZRANGEBYSCORE and ZCOUNT take it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRange {
    pub min: ScoreBound,
    pub max: ScoreBound,
}

impl ScoreRange {
    /// Whether no score can be inside (Redis answers empty without looking).
    pub fn is_empty(&self) -> bool {
        self.min.value > self.max.value
            || (self.min.value == self.max.value && (self.min.exclusive || self.max.exclusive))
    }

    fn above_min(&self, score: f64) -> bool {
        if self.min.exclusive {
            score > self.min.value
        } else {
            score >= self.min.value
        }
    }

    fn below_max(&self, score: f64) -> bool {
        if self.max.exclusive {
            score < self.max.value
        } else {
            score <= self.max.value
        }
    }
}

/// One end of a lex range: `-`, `+`, `[x` or `(x`.
#[derive(Clone, Debug, PartialEq)]
pub enum LexBound {
    NegInf,
    PosInf,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

/// A member interval, as ZRANGEBYLEX and ZLEXCOUNT take it.
#[derive(Clone, Debug, PartialEq)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
}

impl LexRange {
    /// Whether no member can be inside.
    pub fn is_empty(&self) -> bool {
        use LexBound::*;
        match (&self.min, &self.max) {
            (PosInf, _) | (_, NegInf) => true,
            (NegInf, _) | (_, PosInf) => false,
            (Inclusive(a), Inclusive(b)) => a > b,
            (Inclusive(a), Exclusive(b)) | (Exclusive(a), Inclusive(b)) | (Exclusive(a), Exclusive(b)) => {
                a >= b
            }
        }
    }

    fn above_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Inclusive(b) => m >= &b[..],
            LexBound::Exclusive(b) => m > &b[..],
        }
    }

    fn below_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Inclusive(b) => m <= &b[..],
            LexBound::Exclusive(b) => m < &b[..],
        }
    }
}

/// A sorted set value.
#[derive(Debug, Default)]
pub struct ZSet {
    repr: Repr,
}

#[derive(Debug)]
enum Repr {
    /// "listpack": every entry in one buffer.
    Packed(Packed),
    /// "skiplist". Boxed so that a small set, the common case for many keys, stays three words.
    Chunked(Box<Chunked>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Packed(Packed::default())
    }
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet::default()
    }

    /// A set whose first member is `member`: large from the start if that member is too
    /// long for the small encoding, as Redis creates it.
    pub fn for_first_member(member: &[u8]) -> ZSet {
        let mut z = ZSet::new();
        if member.len() > MAX_LISTPACK_VALUE {
            z.convert_to_large();
        }
        z
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.len(),
            Repr::Chunked(c) => c.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis's OBJECT ENCODING name for the current representation.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Packed(_) => "listpack",
            Repr::Chunked(_) => "skiplist",
        }
    }

    /// A deep copy (COPY): same members, scores and encoding.
    pub fn duplicate(&self) -> ZSet {
        let repr = match &self.repr {
            Repr::Packed(p) => Repr::Packed(p.clone()),
            Repr::Chunked(c) => Repr::Chunked(Box::new(Chunked::from_sorted(
                c.chunks
                    .iter()
                    .flatten()
                    .map(|(s, m)| (*s, Arc::from(&m[..])))
                    .collect(),
            ))),
        };
        ZSet { repr }
    }

    /// The entries, copied cheaply enough to do it under the keyspace lock (an AOF rewrite's
    /// snapshot): one buffer copy while small, a counter increment per member when large.
    pub fn entries(&self) -> Entries {
        Entries(match &self.repr {
            Repr::Packed(p) => EntriesRepr::Packed(p.clone()),
            Repr::Chunked(c) => EntriesRepr::Chunks(c.chunks.clone()),
        })
    }

    /// Converts to the small encoding if the set fits it (a set built by a STORE command is
    /// created small when its result fits, as Redis converts it).
    pub fn shrink_if_fits(&mut self) {
        if let Repr::Chunked(c) = &self.repr {
            if c.len <= MAX_LISTPACK_ENTRIES && c.members.keys().all(|m| m.len() <= MAX_LISTPACK_VALUE) {
                let mut buf = Vec::new();
                for (s, m) in c.chunks.iter().flatten() {
                    put_entry(&mut buf, m, *s);
                }
                self.repr = Repr::Packed(Packed {
                    buf: buf.into_boxed_slice(),
                    count: c.len as u32,
                });
            }
        }
    }

    /// The large encoding, converting to it first if the set is small.
    fn convert_to_large(&mut self) -> &mut Chunked {
        if let Repr::Packed(p) = &self.repr {
            let all = p.iter().map(|e| (e.score, Arc::from(e.member))).collect();
            self.repr = Repr::Chunked(Box::new(Chunked::from_sorted(all)));
        }
        match &mut self.repr {
            Repr::Chunked(c) => c,
            Repr::Packed(_) => unreachable!("converted just above"),
        }
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Packed(p) => p.find(member).map(|e| e.score),
            Repr::Chunked(c) => c.members.get(member).copied(),
        }
    }

    /// Adds `member` or changes its score; returns the previous score. The caller stores
    /// Redis's canonical scores (no NaN).
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        if let Repr::Packed(p) = &mut self.repr {
            // The small encoding keeps scores as Redis's listpack does: as text, where -0 is
            // 0. A member that converts the set goes to the large encoding as it is.
            let packed_score = if score == 0.0 { 0.0 } else { score };
            if let Some(e) = p.find(member) {
                let old = e.score;
                if old.to_bits() != packed_score.to_bits() {
                    let span = e.start..e.end;
                    p.remove(span, 1);
                    p.insert(member, packed_score);
                }
                return Some(old);
            }
            if member.len() <= MAX_LISTPACK_VALUE && p.len() < MAX_LISTPACK_ENTRIES {
                p.insert(member, packed_score);
                return None;
            }
        }
        self.convert_to_large().insert(member, score)
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Packed(p) => {
                let e = p.find(member)?;
                let (score, span) = (e.score, e.start..e.end);
                p.remove(span, 1);
                Some(score)
            }
            Repr::Chunked(c) => c.remove(member),
        }
    }

    /// 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Packed(p) => p.iter().position(|e| e.member == member),
            Repr::Chunked(c) => {
                let score = c.members.get(member).copied()?;
                let (ci, i) = c.locate(score, member);
                Some(c.chunks[..ci].iter().map(Vec::len).sum::<usize>() + i)
            }
        }
    }

    /// The number of entries before the first one for which `pred(score, member)` is false
    /// (`pred` must hold for a prefix of the order).
    fn partition_rank(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.iter().take_while(|e| pred(e.score, e.member)).count(),
            Repr::Chunked(c) => {
                let ci = c
                    .chunks
                    .partition_point(|ch| ch.last().is_some_and(|(s, m)| pred(*s, m)));
                let before: usize = c.chunks[..ci].iter().map(Vec::len).sum();
                match c.chunks.get(ci) {
                    Some(ch) => before + ch.partition_point(|(s, m)| pred(*s, m)),
                    None => before,
                }
            }
        }
    }

    /// Ranks `[start, end)` of the entries whose score is inside `range`.
    pub fn score_span(&self, range: &ScoreRange) -> (usize, usize) {
        if range.is_empty() {
            return (0, 0);
        }
        let start = self.partition_rank(|s, _| !range.above_min(s));
        let end = self.partition_rank(|s, _| range.below_max(s));
        (start, end.max(start))
    }

    /// Ranks `[start, end)` of the entries whose member is inside `range`, found from the
    /// start (or from the end, `from_end`, as reversed ranges look). Lex ranges mean something
    /// only when all scores are equal; for other sets the small encoding answers what Redis's
    /// listpack walk answers (the first member past `min`, then on while below `max`).
    pub fn lex_span(&self, range: &LexRange, from_end: bool) -> (usize, usize) {
        if range.is_empty() {
            return (0, 0);
        }
        if let Repr::Packed(p) = &self.repr {
            let c: Vec<&[u8]> = p.iter().map(|e| e.member).collect();
            let (Some(first), Some(last)) = (c.first(), c.last()) else {
                return (0, 0);
            };
            if !range.above_min(last) || !range.below_max(first) {
                return (0, 0);
            }
            return if from_end {
                let Some(last) = c.iter().rposition(|m| range.below_max(m)) else {
                    return (0, 0);
                };
                let n = c[..=last].iter().rev().take_while(|m| range.above_min(m)).count();
                (last + 1 - n, last + 1)
            } else {
                let Some(first) = c.iter().position(|m| range.above_min(m)) else {
                    return (0, 0);
                };
                let n = c[first..].iter().take_while(|m| range.below_max(m)).count();
                (first, first + n)
            };
        }
        let start = self.partition_rank(|_, m| !range.above_min(m));
        let end = self.partition_rank(|_, m| range.below_max(m));
        (start, end.max(start))
    }

    /// The entries at ranks `[start, end)` in ascending order (members copied out).
    pub fn range(&self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let end = end.min(self.len());
        if start >= end {
            return Vec::new();
        }
        let copy = |(m, s): (&[u8], f64)| (Bytes::copy_from_slice(m), s);
        match &self.repr {
            Repr::Packed(p) => p
                .iter()
                .skip(start)
                .take(end - start)
                .map(|e| copy((e.member, e.score)))
                .collect(),
            Repr::Chunked(c) => {
                let mut out = Vec::with_capacity(end - start);
                let mut skip = start;
                for ch in &c.chunks {
                    if skip >= ch.len() {
                        skip -= ch.len();
                        continue;
                    }
                    for (s, m) in &ch[skip..] {
                        if out.len() == end - start {
                            return out;
                        }
                        out.push(copy((m, *s)));
                    }
                    skip = 0;
                }
                out
            }
        }
    }

    /// Removes the entries at ranks `[start, end)`; returns them in ascending order.
    pub fn remove_range(&mut self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let gone = self.range(start, end);
        match &mut self.repr {
            Repr::Packed(p) => {
                if gone.is_empty() {
                    return gone;
                }
                let from = p.iter().nth(start).map_or(p.buf.len(), |e| e.start);
                let to = p.iter().nth(start + gone.len()).map_or(p.buf.len(), |e| e.start);
                p.remove(from..to, gone.len());
            }
            Repr::Chunked(c) => {
                for (m, s) in &gone {
                    c.remove_entry(*s, m);
                    c.members.remove(&m[..]);
                }
            }
        }
        gone
    }

    /// Every entry in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Packed(p) => Iter(IterRepr::Packed(p.iter())),
            Repr::Chunked(c) => Iter(IterRepr::Chunks(c.chunks.iter().flatten())),
        }
    }
}

/// A sorted set's entries as they were when [`ZSet::entries`] copied them.
pub struct Entries(EntriesRepr);

enum EntriesRepr {
    Packed(Packed),
    Chunks(Vec<Vec<Entry>>),
}

impl Entries {
    pub fn len(&self) -> usize {
        match &self.0 {
            EntriesRepr::Packed(p) => p.len(),
            EntriesRepr::Chunks(c) => c.iter().map(Vec::len).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            EntriesRepr::Packed(p) => Iter(IterRepr::Packed(p.iter())),
            EntriesRepr::Chunks(c) => Iter(IterRepr::Chunks(c.iter().flatten())),
        }
    }
}

/// The members and scores of a sorted set (or of its [`Entries`]) in ascending order.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Packed(PackedIter<'a>),
    Chunks(std::iter::Flatten<std::slice::Iter<'a, Vec<Entry>>>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        match &mut self.0 {
            IterRepr::Packed(it) => it.next().map(|e| (e.member, e.score)),
            IterRepr::Chunks(it) => it.next().map(|(s, m)| (&m[..], *s)),
        }
    }
}

/// The small encoding: every entry in one buffer of exactly its size, in order. An entry is
/// its member's length (a varint), the member, then the score ([`put_score`]): a member of
/// two bytes with a small integer score takes four bytes, where a vector of `(score, member)`
/// took 24 bytes plus an allocation for the member.
#[derive(Clone, Debug, Default)]
struct Packed {
    buf: Box<[u8]>,
    count: u32,
}

/// One entry of a [`Packed`] set, with the byte span it occupies.
struct PackedEntry<'a> {
    member: &'a [u8],
    score: f64,
    start: usize,
    end: usize,
}

/// The entries of a small set in order.
struct PackedIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = PackedEntry<'a>;

    fn next(&mut self) -> Option<PackedEntry<'a>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        let (n, at) = read_len(self.buf, start);
        let member_end = (at + n).min(self.buf.len());
        let (score, end) = read_score(self.buf, member_end);
        self.pos = end;
        Some(PackedEntry {
            member: &self.buf[at..member_end],
            score,
            start,
            end,
        })
    }
}

/// Integral scores of magnitude below 2^53 (the range where every integer is a double):
/// their zigzag form shifted left once, as a varint, so 0 through 31 (and -1 through -32)
/// take one byte. Any other score (fractions, huge values, infinities, -0): the varint 1,
/// then its 8 bytes. Either way the exact double comes back.
fn put_score(buf: &mut Vec<u8>, score: f64) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if score.fract() == 0.0 && score.abs() < EXACT && !(score == 0.0 && score.is_sign_negative()) {
        let n = score as i64;
        let zigzag = ((n << 1) ^ (n >> 63)) as u64;
        if let Ok(tagged) = usize::try_from(zigzag << 1) {
            put_len(buf, tagged);
            return;
        }
    }
    put_len(buf, 1);
    buf.extend_from_slice(&score.to_le_bytes());
}

/// The score [`put_score`] wrote at `pos`, and where the bytes after it start.
fn read_score(buf: &[u8], pos: usize) -> (f64, usize) {
    let (tagged, at) = read_len(buf, pos);
    if tagged & 1 == 0 {
        let zigzag = (tagged >> 1) as u64;
        let n = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
        return (n as f64, at);
    }
    let bits = buf.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok());
    (bits.map_or(0.0, f64::from_le_bytes), (at + 8).min(buf.len()))
}

fn put_entry(buf: &mut Vec<u8>, member: &[u8], score: f64) {
    put_len(buf, member.len());
    buf.extend_from_slice(member);
    put_score(buf, score);
}

impl Packed {
    fn len(&self) -> usize {
        self.count as usize
    }

    fn iter(&self) -> PackedIter<'_> {
        PackedIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    fn find(&self, member: &[u8]) -> Option<PackedEntry<'_>> {
        self.iter().find(|e| e.member == member)
    }

    /// Replaces the bytes in `span` with `with`, leaving the buffer exactly as long as its
    /// content: many small sets must not each carry a vector's doubling slack.
    fn splice(&mut self, span: std::ops::Range<usize>, with: &[u8]) {
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.reserve_exact(with.len().saturating_sub(span.len()));
        v.splice(span, with.iter().copied());
        self.buf = v.into_boxed_slice();
    }

    /// Removes the `n` entries that occupy the bytes in `span`.
    fn remove(&mut self, span: std::ops::Range<usize>, n: usize) {
        self.splice(span, &[]);
        self.count -= n as u32;
    }

    /// Adds an entry for a member not in the set, at its place in the order.
    fn insert(&mut self, member: &[u8], score: f64) {
        let at = self
            .iter()
            .find(|e| cmp_entry(score, member, e.score, e.member) != Ordering::Greater)
            .map_or(self.buf.len(), |e| e.start);
        let mut entry = Vec::with_capacity(member.len() + 10);
        put_entry(&mut entry, member, score);
        self.splice(at..at, &entry);
        self.count += 1;
    }
}

/// The large encoding: sorted chunks, never an empty one, and the member → score map.
#[derive(Debug)]
struct Chunked {
    chunks: Vec<Vec<Entry>>,
    members: MemberMap,
    len: usize,
}

impl Chunked {
    /// From entries already in order, in half-full chunks (room to insert before splitting).
    fn from_sorted(all: Vec<Entry>) -> Chunked {
        let mut members = HashMap::with_capacity_and_hasher(all.len(), ahash::RandomState::new());
        for (s, m) in &all {
            members.insert(m.clone(), *s);
        }
        Chunked {
            len: all.len(),
            chunks: all.chunks(CHUNK / 2).map(<[Entry]>::to_vec).collect(),
            members,
        }
    }

    /// The position (chunk, index) where `(score, member)` is or would be inserted.
    fn locate(&self, score: f64, member: &[u8]) -> (usize, usize) {
        if self.chunks.is_empty() {
            return (0, 0);
        }
        let last = self.chunks.len() - 1;
        let greater = |e: &Entry| cmp_entry(score, member, e.0, &e.1) == Ordering::Greater;
        let ci = self
            .chunks
            .partition_point(|c| c.last().is_some_and(greater))
            .min(last);
        let i = self.chunks[ci].partition_point(greater);
        (ci, i)
    }

    fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let (member, old) = match self.members.get_key_value(member) {
            Some((m, &o)) => {
                if o.to_bits() == score.to_bits() {
                    return Some(o);
                }
                // The updated entry shares the allocation the map already holds.
                let m = m.clone();
                self.remove_entry(o, &m);
                (m, Some(o))
            }
            None => (Arc::from(member), None),
        };
        self.members.insert(member.clone(), score);
        if self.chunks.is_empty() {
            self.chunks.push(Vec::new());
        }
        let (mut ci, mut i) = self.locate(score, &member);
        self.len += 1;
        if self.chunks[ci].len() >= CHUNK {
            // A full chunk: appending past the end (scores that only grow, as a delay queue's
            // do) starts a new chunk and leaves this one full; elsewhere it splits in half.
            // Splitting before inserting keeps a chunk's capacity at CHUNK.
            if ci == self.chunks.len() - 1 && i == CHUNK {
                let mut c = Vec::with_capacity(CHUNK);
                c.push((score, member));
                self.chunks.push(c);
                return old;
            }
            let tail = self.chunks[ci].split_off(CHUNK / 2);
            self.chunks.insert(ci + 1, tail);
            if i > CHUNK / 2 {
                (ci, i) = (ci + 1, i - CHUNK / 2);
            }
        }
        self.chunks[ci].insert(i, (score, member));
        old
    }

    /// Removes the entry `(score, member)` from the chunks (not from the map).
    fn remove_entry(&mut self, score: f64, member: &[u8]) {
        let (ci, i) = self.locate(score, member);
        if let Some(c) = self.chunks.get_mut(ci) {
            if c.get(i).is_some_and(|e| &e.1[..] == member) {
                c.remove(i);
                self.len -= 1;
                if c.is_empty() {
                    self.chunks.remove(ci);
                }
            }
        }
    }

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.members.remove(member)?;
        self.remove_entry(score, member);
        Some(score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(z: &ZSet) -> Vec<(String, f64)> {
        z.iter()
            .map(|(m, s)| (String::from_utf8_lossy(m).into_owned(), s))
            .collect()
    }

    #[test]
    fn orders_by_score_then_member_and_updates() {
        let mut z = ZSet::new();
        assert_eq!(z.insert(b"b", 1.0), None);
        assert_eq!(z.insert(b"a", 1.0), None);
        assert_eq!(z.insert(b"c", 0.5), None);
        assert_eq!(z.insert(b"a", 2.0), Some(1.0));
        assert_eq!(
            members(&z),
            vec![("c".into(), 0.5), ("b".into(), 1.0), ("a".into(), 2.0)]
        );
        assert_eq!(z.rank(b"a"), Some(2));
        assert_eq!(z.remove(b"b"), Some(1.0));
        assert_eq!(z.len(), 2);
        assert_eq!(z.encoding(), "listpack");
    }

    #[test]
    fn converts_past_the_limits_and_keeps_order() {
        let mut z = ZSet::new();
        for i in 0..1000u32 {
            // Scores in a scrambled order so chunks split in the middle.
            let s = f64::from((i * 7919) % 1000);
            z.insert(format!("m{i}").as_bytes(), s);
        }
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(z.len(), 1000);
        let scores: Vec<f64> = z.iter().map(|(_, s)| s).collect();
        assert!(scores.windows(2).all(|w| w[0] <= w[1]));
        for (r, (m, _)) in z.iter().enumerate() {
            assert_eq!(z.rank(m), Some(r));
        }
        let range = ScoreRange {
            min: ScoreBound {
                value: 10.0,
                exclusive: true,
            },
            max: ScoreBound {
                value: 20.0,
                exclusive: false,
            },
        };
        let (a, b) = z.score_span(&range);
        assert_eq!(b - a, 10);
        assert!(z.range(a, b).iter().all(|(_, s)| *s > 10.0 && *s <= 20.0));
        let gone = z.remove_range(0, 500);
        assert_eq!(gone.len(), 500);
        assert_eq!(z.len(), 500);
        assert_eq!(z.range(0, 1)[0].1, 500.0);
        let mut small = ZSet::new();
        small.insert(&[b'x'; 65], 1.0);
        assert_eq!(small.encoding(), "skiplist");
    }

    fn chunks(z: &ZSet) -> &[Vec<Entry>] {
        match &z.repr {
            Repr::Chunked(c) => &c.chunks,
            Repr::Packed(_) => &[],
        }
    }

    #[test]
    fn growing_scores_fill_their_chunks() {
        let mut z = ZSet::new();
        for i in 0..10_000u32 {
            z.insert(format!("job{i}").as_bytes(), f64::from(i));
        }
        // Appends leave full chunks behind (only the conversion's halves are not full).
        assert!(
            chunks(&z).len() <= 10_000 / CHUNK + 2,
            "{} chunks",
            chunks(&z).len()
        );
        assert!(chunks(&z).iter().all(|c| c.capacity() <= CHUNK));
        assert_eq!(z.rank(b"job9999"), Some(9999));
        assert_eq!(z.rank(b"job4321"), Some(4321));
        // Inserting in the middle of full chunks splits them and keeps the order.
        for i in 0..1000u32 {
            z.insert(format!("mid{i}").as_bytes(), f64::from(i) * 10.0 + 0.5);
        }
        let scores: Vec<f64> = z.iter().map(|(_, s)| s).collect();
        assert!(scores.windows(2).all(|w| w[0] <= w[1]));
        assert!(chunks(&z).iter().all(|c| !c.is_empty() && c.capacity() <= CHUNK));
        assert_eq!(z.len(), 11_000);
        let copy = z.duplicate();
        assert_eq!(copy.rank(b"mid999"), z.rank(b"mid999"));
        assert_eq!(copy.score(b"mid999"), Some(9990.5));
    }

    #[test]
    fn a_sorted_set_does_not_grow_every_key_slot() {
        assert!(std::mem::size_of::<ZSet>() <= std::mem::size_of::<crate::db::List>());
        assert!(std::mem::size_of::<ZSet>() <= 24);
    }

    #[test]
    fn every_score_comes_back_exactly() {
        let scores = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            31.0,
            -32.0,
            32.0,
            1.5,
            -2.25,
            1.7e12,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            -9_007_199_254_740_992.0,
            1e300,
            f64::MIN_POSITIVE / 4.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
        ];
        let mut buf = Vec::new();
        for s in scores {
            put_score(&mut buf, s);
        }
        let mut pos = 0;
        for s in scores {
            let (back, next) = read_score(&buf, pos);
            assert_eq!(back.to_bits(), s.to_bits(), "{s}");
            pos = next;
        }
        assert_eq!(pos, buf.len());
        let mut one = Vec::new();
        put_score(&mut one, -32.0);
        assert_eq!(one.len(), 1, "small integers take one byte");
    }

    #[test]
    fn small_sets_are_packed_tight() {
        let mut z = ZSet::new();
        for i in (0..10u32).rev() {
            z.insert(format!("m{i}").as_bytes(), f64::from(i));
        }
        let Repr::Packed(p) = &z.repr else {
            panic!("10 short members are small");
        };
        // Per entry: a length byte, two member bytes, one score byte; no slack.
        assert_eq!(p.buf.len(), 40);
        assert_eq!(z.rank(b"m3"), Some(3));
        assert_eq!(z.score(b"m9"), Some(9.0));
        // An update moves the entry; -0 is stored as 0 while small, as Redis's listpack does.
        assert_eq!(z.insert(b"m0", 9.5), Some(0.0));
        assert_eq!(z.insert(b"m1", -0.0), Some(1.0));
        assert_eq!(z.score(b"m1").map(f64::to_bits), Some(0.0f64.to_bits()));
        let order: Vec<String> = members(&z).into_iter().map(|(m, _)| m).collect();
        assert_eq!(
            order,
            ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m0"]
        );
        assert_eq!(z.remove_range(1, 3).len(), 2);
        assert_eq!(z.len(), 8);
        assert_eq!(z.range(0, 2)[1].0, &b"m4"[..]);
        let copy = z.entries();
        assert_eq!(copy.len(), 8);
        assert!(copy.iter().eq(z.iter()));
    }

    #[test]
    fn a_large_set_that_fits_shrinks_back() {
        let mut z = ZSet::new();
        for i in 0..200u32 {
            z.insert(format!("m{i}").as_bytes(), f64::from(i) / 3.0);
        }
        assert_eq!(z.encoding(), "skiplist");
        z.insert(b"neg", -0.0);
        z.remove_range(100, 201);
        let before: Vec<(Vec<u8>, u64)> = z.iter().map(|(m, s)| (m.to_vec(), s.to_bits())).collect();
        z.shrink_if_fits();
        assert_eq!(z.encoding(), "listpack");
        let after: Vec<(Vec<u8>, u64)> = z.iter().map(|(m, s)| (m.to_vec(), s.to_bits())).collect();
        assert_eq!(before, after, "scores keep their bits, -0 included");
        assert_eq!(z.len(), 100);
    }

    #[test]
    fn lex_ranges() {
        let mut z = ZSet::new();
        for m in ["a", "b", "c", "d"] {
            z.insert(m.as_bytes(), 0.0);
        }
        let r = LexRange {
            min: LexBound::Exclusive(Bytes::from_static(b"a")),
            max: LexBound::Inclusive(Bytes::from_static(b"c")),
        };
        assert_eq!(z.lex_span(&r, false), (1, 3));
        assert_eq!(z.lex_span(&r, true), (1, 3));
        let all = LexRange {
            min: LexBound::NegInf,
            max: LexBound::PosInf,
        };
        assert_eq!(z.lex_span(&all, false), (0, 4));
        let none = LexRange {
            min: LexBound::PosInf,
            max: LexBound::PosInf,
        };
        assert_eq!(z.lex_span(&none, false), (0, 0));
    }

    /// Random inserts, updates and removals (enough to convert and split chunks) against a
    /// sorted vector: order, ranks, scores, score spans and rank removals must agree.
    mod model {
        use super::super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Insert(u16, f64),
            Remove(u16),
            RemoveRange(u16, u16),
        }

        /// Mostly small integers (so scores tie), some fractions, huge values and infinities
        /// (the packed encoding's 8-byte form).
        fn score() -> impl Strategy<Value = f64> {
            prop_oneof![
                8 => any::<i8>().prop_map(f64::from),
                1 => any::<i16>().prop_map(|v| f64::from(v) / 8.0),
                1 => prop_oneof![Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(1e300), Just(-3e15)],
            ]
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                6 => (0u16..600, score()).prop_map(|(m, s)| Op::Insert(m, s)),
                2 => (0u16..600).prop_map(Op::Remove),
                1 => (0u16..700, 0u16..40).prop_map(|(a, n)| Op::RemoveRange(a, n)),
            ]
        }

        fn sorted(model: &[(f64, Vec<u8>)]) -> Vec<(f64, Vec<u8>)> {
            let mut v = model.to_vec();
            v.sort_by(|a, b| {
                a.0.partial_cmp(&b.0)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.1.cmp(&b.1))
            });
            v
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
            #[test]
            fn matches_a_sorted_vector(ops in proptest::collection::vec(op(), 1..1500)) {
                let mut z = ZSet::new();
                let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
                for o in ops {
                    match o {
                        Op::Insert(m, s) => {
                            let name = format!("m{m}").into_bytes();
                            let old = model.iter().position(|e| e.1 == name).map(|i| model.remove(i).0);
                            model.push((s, name.clone()));
                            prop_assert_eq!(z.insert(&name, s), old);
                        }
                        Op::Remove(m) => {
                            let name = format!("m{m}").into_bytes();
                            let old = model.iter().position(|e| e.1 == name).map(|i| model.remove(i).0);
                            prop_assert_eq!(z.remove(&name), old);
                        }
                        Op::RemoveRange(a, n) => {
                            let expect = sorted(&model);
                            let (a, b) = (a as usize, a as usize + n as usize);
                            let gone = z.remove_range(a, b);
                            let want: Vec<(f64, Vec<u8>)> =
                                expect.iter().skip(a).take(b.saturating_sub(a)).cloned().collect();
                            prop_assert_eq!(gone.len(), want.len());
                            for ((m, s), (ws, wm)) in gone.iter().zip(&want) {
                                prop_assert_eq!(&m[..], &wm[..]);
                                prop_assert_eq!(*s, *ws);
                            }
                            model.retain(|e| !want.iter().any(|w| w.1 == e.1));
                        }
                    }
                    prop_assert_eq!(z.len(), model.len());
                }
                let expect = sorted(&model);
                let got: Vec<(f64, Vec<u8>)> = z.iter().map(|(m, s)| (s, m.to_vec())).collect();
                prop_assert_eq!(&got, &expect);
                for (r, (s, m)) in expect.iter().enumerate() {
                    prop_assert_eq!(z.rank(m), Some(r));
                    prop_assert_eq!(z.score(m), Some(*s));
                }
                let range = ScoreRange {
                    min: ScoreBound { value: -20.0, exclusive: true },
                    max: ScoreBound { value: 30.0, exclusive: false },
                };
                let (a, b) = z.score_span(&range);
                let want = expect.iter().filter(|e| e.0 > -20.0 && e.0 <= 30.0).count();
                prop_assert_eq!(b - a, want);
                prop_assert!(z.range(a, b).iter().all(|(_, s)| *s > -20.0 && *s <= 30.0));
            }
        }
    }
}
