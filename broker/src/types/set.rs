//! The set type: sorted integers while every member is one (Redis's intset), a flat pack while
//! small, then a [`Table`]. Redis 7.0 has no small form for other members, so the pack reports
//! itself as `hashtable` — what OBJECT ENCODING says there — while costing a few bytes per
//! member. Like Redis, a set never goes back to a smaller form.

use super::pack::Pack;
use super::table::Table;
use std::borrow::Cow;

/// `set-max-intset-entries`: more integers than this and the set becomes a table.
pub const MAX_INTSET_ENTRIES: usize = 512;
/// Members the pack holds before it becomes a table (Redis 7.2's `set-max-listpack-entries`).
pub const MAX_PACK_ENTRIES: usize = 128;
/// The longest member the pack holds (Redis 7.2's `set-max-listpack-value`).
pub const MAX_PACK_VALUE: usize = 64;

#[derive(Clone, Debug)]
pub enum Set {
    /// Sorted, distinct.
    Ints(Vec<i64>),
    Pack(Pack),
    Table(Box<Table<false>>),
}

impl Default for Set {
    /// An empty intset, as Redis starts the sets SINTERSTORE and friends build.
    fn default() -> Self {
        Set::Ints(Vec::new())
    }
}

/// The integer `m` spells, if it is one in canonical form (what an intset can give back
/// byte for byte: no sign on zero, no leading zeros or `+`).
pub fn as_int(m: &[u8]) -> Option<i64> {
    if m.is_empty() || m.len() > 20 {
        return None;
    }
    let n: i64 = std::str::from_utf8(m).ok()?.parse().ok()?;
    (itoa::Buffer::new().format(n).as_bytes() == m).then_some(n)
}

fn int_bytes(n: i64) -> Cow<'static, [u8]> {
    Cow::Owned(itoa::Buffer::new().format(n).as_bytes().to_vec())
}

impl Set {
    /// An empty set in the form Redis gives a set created for `member` (SADD, SMOVE).
    pub fn for_member(member: &[u8]) -> Set {
        if as_int(member).is_some() {
            Set::Ints(Vec::new())
        } else if member.len() <= MAX_PACK_VALUE {
            Set::Pack(Pack::default())
        } else {
            Set::Table(Box::default())
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Ints(v) => v.len(),
            Set::Pack(p) => p.len(),
            Set::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis 7.0's OBJECT ENCODING name for the current representation.
    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Ints(_) => "intset",
            Set::Pack(_) | Set::Table(_) => "hashtable",
        }
    }

    /// An independent copy (COPY).
    pub fn duplicate(&self) -> Self {
        self.clone()
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match self {
            Set::Ints(v) => as_int(member).is_some_and(|n| v.binary_search(&n).is_ok()),
            Set::Pack(p) => p.find(member, 1).is_some(),
            Set::Table(t) => t.find(member).is_some(),
        }
    }

    fn convert_to_table(&mut self) {
        let mut t = Table::with_capacity(self.len() + 1);
        for m in self.iter() {
            t.insert(Box::from(&m[..]));
        }
        *self = Set::Table(Box::new(t));
    }

    /// Adds `member`; true if it is new.
    pub fn add(&mut self, member: &[u8]) -> bool {
        match self {
            Set::Ints(v) => match as_int(member) {
                Some(n) => match v.binary_search(&n) {
                    Ok(_) => false,
                    Err(at) => {
                        v.insert(at, n);
                        if v.len() > MAX_INTSET_ENTRIES {
                            self.convert_to_table();
                        }
                        true
                    }
                },
                None => {
                    if v.len() < MAX_PACK_ENTRIES && member.len() <= MAX_PACK_VALUE {
                        let mut p = Pack::default();
                        for n in v.iter() {
                            p.push(itoa::Buffer::new().format(*n).as_bytes());
                        }
                        *self = Set::Pack(p);
                    } else {
                        self.convert_to_table();
                    }
                    self.add(member)
                }
            },
            Set::Pack(p) => {
                if p.find(member, 1).is_some() {
                    return false;
                }
                if p.len() >= MAX_PACK_ENTRIES || member.len() > MAX_PACK_VALUE {
                    self.convert_to_table();
                    return self.add(member);
                }
                p.push(member);
                true
            }
            Set::Table(t) => t.insert(Box::from(member)),
        }
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            Set::Ints(v) => match as_int(member).map(|n| v.binary_search(&n)) {
                Some(Ok(at)) => {
                    v.remove(at);
                    true
                }
                _ => false,
            },
            Set::Pack(p) => match p.find(member, 1) {
                Some(pos) => {
                    p.remove_at(pos, 1);
                    true
                }
                None => false,
            },
            Set::Table(t) => t.remove(member).is_some(),
        }
    }

    /// Every member, in the representation's order (ascending for integers).
    pub fn iter(&self) -> Box<dyn Iterator<Item = Cow<'_, [u8]>> + '_> {
        match self {
            Set::Ints(v) => Box::new(v.iter().map(|n| int_bytes(*n))),
            Set::Pack(p) => Box::new(p.iter().map(Cow::Borrowed)),
            Set::Table(t) => Box::new(t.iter().map(Cow::Borrowed)),
        }
    }

    /// The member at position `i` of [`Set::iter`]'s order (a random pick).
    pub fn nth(&self, i: usize) -> Option<Cow<'_, [u8]>> {
        match self {
            Set::Ints(v) => v.get(i).map(|n| int_bytes(*n)),
            Set::Pack(p) => p.iter().nth(i).map(Cow::Borrowed),
            Set::Table(t) => (i < t.len()).then(|| Cow::Borrowed(t.entry(i))),
        }
    }

    /// One SSCAN step: the small forms return everything at once with cursor 0, as Redis's
    /// intset does.
    pub fn scan(&mut self, cursor: u64, count: usize) -> (Vec<Cow<'_, [u8]>>, u64) {
        match self {
            Set::Table(t) => {
                let (pos, next) = t.scan(cursor, count);
                let t = &*t;
                (pos.into_iter().map(|i| Cow::Borrowed(t.entry(i))).collect(), next)
            }
            _ => (self.iter().collect(), 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers_only() {
        assert_eq!(as_int(b"-12"), Some(-12));
        assert_eq!(as_int(b"9223372036854775807"), Some(i64::MAX));
        for not in [
            &b"01"[..],
            b"+1",
            b"-0",
            b" 1",
            b"1.0",
            b"",
            b"9223372036854775808",
        ] {
            assert_eq!(as_int(not), None, "{:?}", String::from_utf8_lossy(not));
        }
    }

    #[test]
    fn converts_like_redis() {
        let mut s = Set::for_member(b"1");
        for i in 0..MAX_INTSET_ENTRIES as i64 {
            assert!(s.add(itoa::Buffer::new().format(i * 7 - 100).as_bytes()));
        }
        assert_eq!(s.encoding(), "intset");
        assert!(!s.add(b"-100"));
        assert!(s.add(b"100000"));
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"-100") && s.contains(b"100000") && !s.contains(b"-99"));

        let mut small = Set::for_member(b"5");
        small.add(b"5");
        small.add(b"a");
        assert!(matches!(small, Set::Pack(_)));
        assert_eq!(small.encoding(), "hashtable");
        assert!(small.contains(b"5") && small.contains(b"a"));
        for i in 0..MAX_PACK_ENTRIES {
            small.add(format!("m{i}").as_bytes());
        }
        assert!(matches!(small, Set::Table(_)));
        assert_eq!(small.len(), MAX_PACK_ENTRIES + 2);
        assert!(small.remove(b"5") && !small.remove(b"5"));
        assert_eq!(small.iter().count(), MAX_PACK_ENTRIES + 1);
    }
}
