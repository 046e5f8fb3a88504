//! The representation of large hashes and sets: the elements in one dense vector, each one
//! allocation (a hash's field and value share it), and a table of their positions keyed by
//! the element's (or field's) hash. A random pick is one index into the vector, which is what
//! SPOP, SRANDMEMBER and HRANDFIELD need, and a slot costs 4 bytes of position instead of a
//! pointer-sized entry.

use hashbrown::HashTable;
use rand::Rng;

/// A field and its value in one allocation: the field's length (LEB128), the field, the value.
pub fn pair_entry(field: &[u8], value: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(field.len() + value.len() + 2);
    let mut n = field.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            v.push(byte);
            break;
        }
        v.push(byte | 0x80);
    }
    v.extend_from_slice(field);
    v.extend_from_slice(value);
    v.into_boxed_slice()
}

/// The field and value of an entry made by [`pair_entry`].
pub fn split_pair(entry: &[u8]) -> (&[u8], &[u8]) {
    let (mut len, mut shift, mut p) = (0usize, 0u32, 0usize);
    while let Some(&b) = entry.get(p) {
        len |= usize::from(b & 0x7f) << shift;
        p += 1;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let end = (p + len).min(entry.len());
    (&entry[p..end], &entry[end..])
}

/// Dense elements plus a position index. `PAIRS`: entries are [`pair_entry`]s looked up by field.
#[derive(Debug)]
pub struct Table<const PAIRS: bool> {
    entries: Vec<Box<[u8]>>,
    index: HashTable<u32>,
    hasher: ahash::RandomState,
    scan: ScanState,
}

/// What makes a long HSCAN/SSCAN cheap: the elements' positions sorted by scan hash, built
/// once the table stayed unchanged between two steps of a scan, and dropped when it changes
/// or the scan ends. A step then costs O(log n + count) instead of a pass over every element;
/// a table that changes between every step is scanned as before, by that pass.
#[derive(Debug, Default)]
struct ScanState {
    order: Option<Vec<(u64, u32)>>,
    /// A scan step ran and nothing was added or removed since.
    quiet: bool,
}

impl<const PAIRS: bool> Clone for Table<PAIRS> {
    fn clone(&self) -> Self {
        Table {
            entries: self.entries.clone(),
            index: self.index.clone(),
            hasher: self.hasher.clone(),
            scan: ScanState::default(),
        }
    }
}

impl<const PAIRS: bool> Default for Table<PAIRS> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

fn key_of<const PAIRS: bool>(entry: &[u8]) -> &[u8] {
    if PAIRS {
        split_pair(entry).0
    } else {
        entry
    }
}

/// A key's position in HSCAN/SSCAN order: fixed seeds, so the order cannot change during a
/// scan, whatever is added, removed or resized in between. 0 is kept for "done".
pub fn scan_hash(key: &[u8]) -> u64 {
    ahash::RandomState::with_seeds(5, 6, 7, 8).hash_one(key).max(1)
}

/// Picks the up to `count` positions whose scan hash is the smallest at or past `cursor`
/// (elements sharing a hash are never split), and the cursor to resume from (0: finished).
pub fn scan_positions(
    hashes: impl Iterator<Item = (u64, usize)>,
    cursor: u64,
    count: usize,
) -> (Vec<usize>, u64) {
    let mut c: Vec<(u64, usize)> = hashes.filter(|(h, _)| *h >= cursor).collect();
    let count = count.max(1);
    if c.len() <= count {
        return (c.into_iter().map(|(_, i)| i).collect(), 0);
    }
    c.select_nth_unstable(count);
    let pivot = c[count].0;
    let below: Vec<usize> = c.iter().filter(|(h, _)| *h < pivot).map(|(_, i)| *i).collect();
    if !below.is_empty() {
        return (below, pivot);
    }
    // The count+1 smallest all share one hash: return that whole group.
    let group = c.iter().filter(|(h, _)| *h == pivot).map(|(_, i)| *i).collect();
    let next = c
        .iter()
        .map(|(h, _)| *h)
        .filter(|h| *h > pivot)
        .min()
        .unwrap_or(0);
    (group, next)
}

impl<const PAIRS: bool> Table<PAIRS> {
    pub fn with_capacity(n: usize) -> Self {
        Table {
            entries: Vec::with_capacity(n),
            index: HashTable::with_capacity(n),
            hasher: ahash::RandomState::new(),
            scan: ScanState::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Position of the element (or field) `key`.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        let h = self.hasher.hash_one(key);
        let entries = &self.entries;
        self.index
            .find(h, |&i| key_of::<PAIRS>(&entries[i as usize]) == key)
            .map(|&i| i as usize)
    }

    pub fn entry(&self, pos: usize) -> &[u8] {
        &self.entries[pos]
    }

    /// Adds `entry`, or replaces the one with the same key; true if it was new.
    pub fn insert(&mut self, entry: Box<[u8]>) -> bool {
        let h = self.hasher.hash_one(key_of::<PAIRS>(&entry));
        let entries = &mut self.entries;
        if let Some(&i) = self.index.find(h, |&i| {
            key_of::<PAIRS>(&entries[i as usize]) == key_of::<PAIRS>(&entry)
        }) {
            entries[i as usize] = entry;
            return false;
        }
        let pos = entries.len() as u32;
        entries.push(entry);
        self.scan = ScanState::default();
        let hasher = &self.hasher;
        self.index.insert_unique(h, pos, |&i| {
            hasher.hash_one(key_of::<PAIRS>(&entries[i as usize]))
        });
        true
    }

    /// Removes the element (or field) `key`; returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Box<[u8]>> {
        let h = self.hasher.hash_one(key);
        let entries = &self.entries;
        let found = self
            .index
            .find_entry(h, |&i| key_of::<PAIRS>(&entries[i as usize]) == key)
            .ok()?;
        let (pos, _) = found.remove();
        let pos = pos as usize;
        self.scan = ScanState::default();
        let last = self.entries.len() - 1;
        if pos != last {
            // The last element fills the hole: its index slot must follow it.
            let moved = self.hasher.hash_one(key_of::<PAIRS>(&self.entries[last]));
            if let Some(slot) = self.index.find_mut(moved, |&j| j as usize == last) {
                *slot = pos as u32;
            }
        }
        let removed = self.entries.swap_remove(pos);
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
            let (entries, hasher) = (&self.entries, &self.hasher);
            self.index.shrink_to(entries.len(), |&i| {
                hasher.hash_one(key_of::<PAIRS>(&entries[i as usize]))
            });
        }
        Some(removed)
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + Clone {
        self.entries.iter().map(|e| &e[..])
    }

    pub fn random_pos(&self, rng: &mut impl Rng) -> usize {
        rng.gen_range(0..self.entries.len().max(1))
    }

    /// One HSCAN/SSCAN step: positions to return and the next cursor.
    pub fn scan(&mut self, cursor: u64, count: usize) -> (Vec<usize>, u64) {
        if self.scan.order.is_none() && !self.scan.quiet {
            self.scan.quiet = true;
            return scan_positions(
                self.entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (scan_hash(key_of::<PAIRS>(e)), i)),
                cursor,
                count,
            );
        }
        let entries = &self.entries;
        let order = self.scan.order.get_or_insert_with(|| {
            let mut order: Vec<(u64, u32)> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| (scan_hash(key_of::<PAIRS>(e)), i as u32))
                .collect();
            order.sort_unstable();
            order
        });
        let start = order.partition_point(|(h, _)| *h < cursor);
        let mut end = (start + count.max(1)).min(order.len());
        // Elements sharing a hash are never split across steps.
        while end < order.len() && end > start && order[end].0 == order[end - 1].0 {
            end += 1;
        }
        let positions = order[start..end].iter().map(|(_, i)| *i as usize).collect();
        let next = order.get(end).map_or(0, |(h, _)| *h);
        if next == 0 {
            // The scan is over: give the memory back.
            self.scan = ScanState::default();
        }
        (positions, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_swap_removal() {
        let mut t: Table<true> = Table::default();
        for i in 0..1000u32 {
            assert!(t.insert(pair_entry(format!("f{i}").as_bytes(), &i.to_be_bytes())));
        }
        assert!(!t.insert(pair_entry(b"f3", b"new")));
        for i in (0..1000u32).step_by(3) {
            assert!(t.remove(format!("f{i}").as_bytes()).is_some());
        }
        assert!(t.remove(b"f0").is_none());
        for i in 0..1000u32 {
            let pos = t.find(format!("f{i}").as_bytes());
            assert_eq!(pos.is_some(), i % 3 != 0, "f{i}");
            if let Some(p) = pos {
                assert_eq!(split_pair(t.entry(p)).0, format!("f{i}").as_bytes());
            }
        }
        assert_eq!(t.len(), 666);
    }

    #[test]
    fn a_quiet_scan_uses_the_sorted_order_and_agrees_with_the_pass() {
        let build = || {
            let mut t: Table<false> = Table::default();
            for i in 0..2000 {
                t.insert(format!("m{i}").into_bytes().into_boxed_slice());
            }
            t
        };
        // The same steps through a table that stays quiet (sorted order from the second step)
        // and one that changes and changes back between steps (a pass every step).
        let (mut quiet, mut busy) = (build(), build());
        let (mut cq, mut cb) = (0, 0);
        let mut seen = std::collections::HashMap::new();
        for step in 0.. {
            let (pq, nq) = quiet.scan(cq, 25);
            // A pass at the first step and at the first after a change; the sorted order after.
            let sorted = step != 0 && step != 21 && nq != 0;
            assert_eq!(quiet.scan.order.is_some(), sorted, "step {step}");
            busy.insert(b"extra".to_vec().into_boxed_slice());
            busy.remove(b"extra");
            let (pb, nb) = busy.scan(cb, 25);
            // The same elements (the order within a step is not promised).
            let names = |t: &Table<false>, p: &[usize]| -> Vec<Vec<u8>> {
                let mut v: Vec<Vec<u8>> = p.iter().map(|&i| t.entry(i).to_vec()).collect();
                v.sort();
                v
            };
            assert_eq!(names(&quiet, &pq), names(&busy, &pb), "step {step}");
            assert_eq!(nq, nb);
            for name in names(&quiet, &pq) {
                *seen.entry(name).or_insert(0) += 1;
            }
            if nq == 0 {
                break;
            }
            (cq, cb) = (nq, nb);
            // A change in the middle drops the order; the scan still sees every element once.
            if step == 20 {
                quiet.insert(b"late".to_vec().into_boxed_slice());
                assert!(quiet.scan.order.is_none());
                busy.insert(b"late".to_vec().into_boxed_slice());
            }
        }
        assert!(
            quiet.scan.order.is_none(),
            "a finished scan gives the memory back"
        );
        for i in 0..2000 {
            assert_eq!(seen.get(format!("m{i}").as_bytes()), Some(&1), "m{i}");
        }
    }

    #[test]
    fn a_scan_returns_every_element_once_across_changes() {
        let mut t: Table<false> = Table::default();
        for i in 0..500 {
            t.insert(format!("m{i}").into_bytes().into_boxed_slice());
        }
        let mut seen = std::collections::HashMap::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            let (pos, next) = t.scan(cursor, 7);
            for p in pos {
                *seen.entry(t.entry(p).to_vec()).or_insert(0) += 1;
            }
            // Churn between calls: elements come and go, the table resizes.
            t.insert(format!("new{round}").into_bytes().into_boxed_slice());
            t.remove(format!("new{}", round / 2).as_bytes());
            round += 1;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        for i in 0..500 {
            assert_eq!(seen.get(format!("m{i}").as_bytes()), Some(&1), "m{i}");
        }
    }
}
