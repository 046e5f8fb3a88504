//! Sorted sets: members ordered by (score, member bytes), with O(log n) rank positioning.
//!
//! Representation. Entries live in a list of sorted chunks (`chunks`), each a flat vector of
//! `(score, member)`. A small set (at most [`MAX_LISTPACK_ENTRIES`] members, none longer than
//! [`MAX_LISTPACK_VALUE`] bytes) is one chunk and nothing else, the counterpart of Redis's
//! listpack: a score lookup scans it. Past either limit the set converts (for good, as Redis
//! does) to the "skiplist" encoding: a member → score map for O(1) ZSCORE, and chunks of at
//! most [`CHUNK`] entries, split when full and dropped when empty.
//!
//! Cost in the large encoding (n members, B = [`CHUNK`]): locating a (score, member) or a
//! score/lex bound is a binary search over the chunks' last entries then inside one chunk,
//! O(log n); turning that position into a rank adds the lengths of the chunks before it,
//! O(n/B) integer additions (about 2,000 for a million members), and the same walk finds the
//! entry at a rank. Inserting or removing moves at most B entries inside a chunk, plus an
//! O(n/B) shift of the chunk list on a split. We chose this over a skiplist with spans for
//! memory (no per-node level arrays or pointers: 40 bytes an entry plus the member) and
//! cache-friendly range scans; ZRANK and rank ranges are O(log n + n/B + k), not O(n).

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
fn cmp_entry(a_score: f64, a_member: &[u8], b: &Entry) -> Ordering {
    a_score
        .partial_cmp(&b.0)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a_member.cmp(&b.1[..]))
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
    /// Sorted runs; one run (possibly empty) while small, never an empty run while large.
    chunks: Vec<Vec<Entry>>,
    /// Member → score, present only in the large ("skiplist") encoding.
    /// Boxed so that a `Value` (every key's slot in the keyspace) stays as small as a list's.
    members: Option<Box<MemberMap>>,
    len: usize,
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
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Redis's OBJECT ENCODING name for the current representation.
    pub fn encoding(&self) -> &'static str {
        if self.members.is_some() {
            "skiplist"
        } else {
            "listpack"
        }
    }

    /// A deep copy (COPY): same members, scores and encoding.
    pub fn duplicate(&self) -> ZSet {
        let chunks: Vec<Vec<Entry>> = self
            .chunks
            .iter()
            .map(|c| c.iter().map(|(s, m)| (*s, Arc::from(&m[..]))).collect())
            .collect();
        let members = self
            .members
            .as_ref()
            .map(|_| Box::new(chunks.iter().flatten().map(|(s, m)| (m.clone(), *s)).collect()));
        ZSet {
            chunks,
            members,
            len: self.len,
        }
    }

    /// Converts to the small encoding if the set fits it (a set built by a STORE command is
    /// created small when its result fits, as Redis converts it).
    pub fn shrink_if_fits(&mut self) {
        if self.members.is_some()
            && self.len <= MAX_LISTPACK_ENTRIES
            && self.iter().all(|(m, _)| m.len() <= MAX_LISTPACK_VALUE)
        {
            let all: Vec<Entry> = self.chunks.drain(..).flatten().collect();
            self.chunks = vec![all];
            self.members = None;
        }
    }

    fn convert_to_large(&mut self) {
        if self.members.is_some() {
            return;
        }
        let all: Vec<Entry> = self.chunks.drain(..).flatten().collect();
        let mut map = HashMap::with_capacity_and_hasher(all.len(), ahash::RandomState::new());
        for (s, m) in &all {
            map.insert(m.clone(), *s);
        }
        self.members = Some(Box::new(map));
        self.chunks = all.chunks(CHUNK / 2).map(<[Entry]>::to_vec).collect();
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.members {
            Some(m) => m.get(member).copied(),
            None => self
                .chunks
                .first()
                .and_then(|c| c.iter().find(|(_, m)| &m[..] == member))
                .map(|(s, _)| *s),
        }
    }

    /// The position (chunk, index) where `(score, member)` is or would be inserted.
    fn locate(&self, score: f64, member: &[u8]) -> (usize, usize) {
        if self.chunks.is_empty() {
            return (0, 0);
        }
        let last = self.chunks.len() - 1;
        let ci = self
            .chunks
            .partition_point(|c| {
                c.last()
                    .is_some_and(|e| cmp_entry(score, member, e) == Ordering::Greater)
            })
            .min(last);
        let i = self.chunks[ci].partition_point(|e| cmp_entry(score, member, e) == Ordering::Greater);
        (ci, i)
    }

    /// Adds `member` or changes its score; returns the previous score. The caller stores
    /// Redis's canonical scores (no NaN).
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        // The small encoding keeps scores as Redis's listpack does: as text, where -0 is 0.
        let score = if score == 0.0 && self.members.is_none() {
            0.0
        } else {
            score
        };
        let old = self.score(member);
        if let Some(o) = old {
            if o.to_bits() == score.to_bits() {
                return old;
            }
            self.remove_entry(o, member);
        }
        if self.members.is_none()
            && (member.len() > MAX_LISTPACK_VALUE || self.len + 1 > MAX_LISTPACK_ENTRIES)
        {
            self.convert_to_large();
        }
        let member: Arc<[u8]> = Arc::from(member);
        if let Some(m) = self.members.as_mut() {
            m.insert(member.clone(), score);
        }
        if self.chunks.is_empty() {
            self.chunks.push(Vec::new());
        }
        let (mut ci, mut i) = self.locate(score, &member);
        self.len += 1;
        if self.members.is_some() && self.chunks[ci].len() >= CHUNK {
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
        if self.members.is_none() {
            // A small set's vector grows one entry at a time: no doubling slack on many
            // small sets.
            self.chunks[ci].reserve_exact(1);
        }
        self.chunks[ci].insert(i, (score, member));
        old
    }

    fn remove_entry(&mut self, score: f64, member: &[u8]) {
        let (ci, i) = self.locate(score, member);
        if let Some(c) = self.chunks.get_mut(ci) {
            if c.get(i).is_some_and(|e| &e.1[..] == member) {
                c.remove(i);
                self.len -= 1;
                if c.is_empty() && self.members.is_some() {
                    self.chunks.remove(ci);
                }
            }
        }
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.score(member)?;
        self.remove_entry(score, member);
        if let Some(m) = self.members.as_mut() {
            m.remove(member);
        }
        Some(score)
    }

    /// 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        let (ci, i) = self.locate(score, member);
        Some(self.chunks[..ci].iter().map(Vec::len).sum::<usize>() + i)
    }

    /// The number of entries before the first one for which `pred` is false (`pred` must
    /// hold for a prefix of the order).
    fn partition_rank(&self, pred: impl Fn(&Entry) -> bool) -> usize {
        let ci = self.chunks.partition_point(|c| c.last().is_some_and(&pred));
        let before: usize = self.chunks[..ci].iter().map(Vec::len).sum();
        match self.chunks.get(ci) {
            Some(c) => before + c.partition_point(&pred),
            None => before,
        }
    }

    /// Ranks `[start, end)` of the entries whose score is inside `range`.
    pub fn score_span(&self, range: &ScoreRange) -> (usize, usize) {
        if range.is_empty() {
            return (0, 0);
        }
        let start = self.partition_rank(|e| !range.above_min(e.0));
        let end = self.partition_rank(|e| range.below_max(e.0));
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
        if self.members.is_none() {
            let Some(c) = self.chunks.first().filter(|c| !c.is_empty()) else {
                return (0, 0);
            };
            if !range.above_min(&c[c.len() - 1].1) || !range.below_max(&c[0].1) {
                return (0, 0);
            }
            return if from_end {
                let Some(last) = c.iter().rposition(|e| range.below_max(&e.1)) else {
                    return (0, 0);
                };
                let n = c[..=last]
                    .iter()
                    .rev()
                    .take_while(|e| range.above_min(&e.1))
                    .count();
                (last + 1 - n, last + 1)
            } else {
                let Some(first) = c.iter().position(|e| range.above_min(&e.1)) else {
                    return (0, 0);
                };
                let n = c[first..].iter().take_while(|e| range.below_max(&e.1)).count();
                (first, first + n)
            };
        }
        let start = self.partition_rank(|e| !range.above_min(&e.1));
        let end = self.partition_rank(|e| range.below_max(&e.1));
        (start, end.max(start))
    }

    /// The entries at ranks `[start, end)` in ascending order (members copied out).
    pub fn range(&self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let end = end.min(self.len);
        if start >= end {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(end - start);
        let mut skip = start;
        for c in &self.chunks {
            if skip >= c.len() {
                skip -= c.len();
                continue;
            }
            for (s, m) in &c[skip..] {
                if out.len() == end - start {
                    return out;
                }
                out.push((Bytes::copy_from_slice(m), *s));
            }
            skip = 0;
        }
        out
    }

    /// Removes the entries at ranks `[start, end)`; returns them in ascending order.
    pub fn remove_range(&mut self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let gone = self.range(start, end);
        for (m, s) in &gone {
            self.remove_entry(*s, m);
            if let Some(map) = self.members.as_mut() {
                map.remove(&m[..]);
            }
        }
        gone
    }

    /// Every entry in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<[u8]>, f64)> {
        self.chunks.iter().flatten().map(|(s, m)| (m, *s))
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

    #[test]
    fn growing_scores_fill_their_chunks() {
        let mut z = ZSet::new();
        for i in 0..10_000u32 {
            z.insert(format!("job{i}").as_bytes(), f64::from(i));
        }
        // Appends leave full chunks behind (only the conversion's halves are not full).
        assert!(z.chunks.len() <= 10_000 / CHUNK + 2, "{} chunks", z.chunks.len());
        assert!(z.chunks.iter().all(|c| c.capacity() <= CHUNK));
        assert_eq!(z.rank(b"job9999"), Some(9999));
        assert_eq!(z.rank(b"job4321"), Some(4321));
        // Inserting in the middle of full chunks splits them and keeps the order.
        for i in 0..1000u32 {
            z.insert(format!("mid{i}").as_bytes(), f64::from(i) * 10.0 + 0.5);
        }
        let scores: Vec<f64> = z.iter().map(|(_, s)| s).collect();
        assert!(scores.windows(2).all(|w| w[0] <= w[1]));
        assert!(z.chunks.iter().all(|c| !c.is_empty() && c.capacity() <= CHUNK));
        assert_eq!(z.len(), 11_000);
        let copy = z.duplicate();
        assert_eq!(copy.rank(b"mid999"), z.rank(b"mid999"));
        assert_eq!(copy.score(b"mid999"), Some(9990.5));
    }

    #[test]
    fn a_sorted_set_does_not_grow_every_key_slot() {
        assert!(std::mem::size_of::<ZSet>() <= std::mem::size_of::<crate::db::List>());
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
            Insert(u16, i8),
            Remove(u16),
            RemoveRange(u16, u16),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                6 => (0u16..600, any::<i8>()).prop_map(|(m, s)| Op::Insert(m, s)),
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
                            model.push((f64::from(s), name.clone()));
                            prop_assert_eq!(z.insert(&name, f64::from(s)), old);
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
