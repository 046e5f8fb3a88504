//! The hash type: a flat pack of field, value, field, value… while it is small (Redis's
//! listpack encoding, same limits), then a [`Table`] of field-and-value entries. Like Redis, a
//! hash never goes back to the small form.

use super::pack::Pack;
use super::table::{pair_entry, split_pair, Table};

/// `hash-max-listpack-entries`: more fields than this and the hash becomes a table.
pub const MAX_PACK_ENTRIES: usize = 128;
/// `hash-max-listpack-value`: a field or value longer than this and the hash becomes a table.
pub const MAX_PACK_VALUE: usize = 64;

/// A field and its value, borrowed from the hash.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

#[derive(Clone, Debug)]
pub enum Hash {
    Pack(Pack),
    Table(Box<Table<true>>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Pack(Pack::default())
    }
}

impl Hash {
    pub fn len(&self) -> usize {
        match self {
            Hash::Pack(p) => p.len() / 2,
            Hash::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis 7.0's OBJECT ENCODING name for the current representation.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Pack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    /// An independent copy (COPY).
    pub fn duplicate(&self) -> Self {
        self.clone()
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Pack(p) => p.find(field, 2).map(|pos| {
                let next = p.get_at(pos).1;
                p.get_at(next).0
            }),
            Hash::Table(t) => t.find(field).map(|i| split_pair(t.entry(i)).1),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        match self {
            Hash::Pack(p) => p.find(field, 2).is_some(),
            Hash::Table(t) => t.find(field).is_some(),
        }
    }

    fn convert(&mut self) {
        if let Hash::Pack(p) = self {
            let mut t = Table::with_capacity(p.len() / 2 + 1);
            let mut it = p.iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                t.insert(pair_entry(f, v));
            }
            *self = Hash::Table(Box::new(t));
        }
    }

    /// Sets `field` to `value`; true if the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        if field.len() > MAX_PACK_VALUE || value.len() > MAX_PACK_VALUE {
            self.convert();
        }
        match self {
            Hash::Pack(p) => {
                if let Some(pos) = p.find(field, 2) {
                    let next = p.get_at(pos).1;
                    p.replace_at(next, value);
                    return false;
                }
                p.push(field);
                p.push(value);
                if p.len() / 2 > MAX_PACK_ENTRIES {
                    self.convert();
                }
                true
            }
            Hash::Table(t) => t.insert(pair_entry(field, value)),
        }
    }

    /// Removes `field`; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Pack(p) => match p.find(field, 2) {
                Some(pos) => {
                    p.remove_at(pos, 2);
                    true
                }
                None => false,
            },
            Hash::Table(t) => t.remove(field).is_some(),
        }
    }

    /// Every field and value, in the representation's order (insertion order while small).
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match self {
            Hash::Pack(p) => {
                let mut it = p.iter();
                Box::new(std::iter::from_fn(move || Some((it.next()?, it.next()?))))
            }
            Hash::Table(t) => Box::new(t.iter().map(split_pair)),
        }
    }

    /// The field and value at position `i` of [`Hash::iter`]'s order (a random pick).
    pub fn nth(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Table(t) => (i < t.len()).then(|| split_pair(t.entry(i))),
            Hash::Pack(_) => self.iter().nth(i),
        }
    }

    /// One HSCAN step: the small form returns everything at once with cursor 0, as Redis does.
    pub fn scan(&mut self, cursor: u64, count: usize) -> (Vec<Pair<'_>>, u64) {
        match self {
            Hash::Pack(_) => (self.iter().collect(), 0),
            Hash::Table(t) => {
                let (pos, next) = t.scan(cursor, count);
                let t = &*t;
                (pos.into_iter().map(|i| split_pair(t.entry(i))).collect(), next)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_like_redis_and_keeps_every_field() {
        let mut h = Hash::default();
        for i in 0..MAX_PACK_ENTRIES {
            assert!(h.set(format!("f{i}").as_bytes(), b"v"));
        }
        assert_eq!(h.encoding(), "listpack");
        assert!(!h.set(b"f0", b"changed"));
        assert_eq!(h.get(b"f0"), Some(&b"changed"[..]));
        assert!(h.set(b"one-more", b"v"));
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), MAX_PACK_ENTRIES + 1);
        assert_eq!(h.get(b"f0"), Some(&b"changed"[..]));
        let mut long = Hash::default();
        long.set(b"f", &[b'x'; MAX_PACK_VALUE]);
        assert_eq!(long.encoding(), "listpack");
        long.set(b"g", &[b'x'; MAX_PACK_VALUE + 1]);
        assert_eq!(long.encoding(), "hashtable");
        assert!(long.remove(b"f"));
        assert!(!long.remove(b"f"));
        assert_eq!(long.iter().count(), 1);
    }
}
