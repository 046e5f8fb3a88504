//! A flat run of length-prefixed byte strings in one allocation: how small hashes and sets are
//! kept (Redis's listpack plays this part), a few bytes of overhead per element instead of a
//! table slot and an allocation each.

/// Entries, each a LEB128 length followed by its bytes, back to back.
#[derive(Clone, Debug, Default)]
pub struct Pack {
    buf: Vec<u8>,
    count: usize,
}

/// Appends `n` as a LEB128 varint (the length prefix of an entry).
pub(super) fn put_len(buf: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}

/// Reads the LEB128 varint at `pos`: its value and where the bytes after it start.
pub(super) fn read_len(buf: &[u8], pos: usize) -> (usize, usize) {
    let (mut n, mut shift, mut p) = (0usize, 0u32, pos);
    while let Some(&b) = buf.get(p) {
        n |= usize::from(b & 0x7f) << shift;
        p += 1;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    (n, p)
}

fn encoded(item: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(item.len() + 2);
    put_len(&mut v, item.len());
    v.extend_from_slice(item);
    v
}

impl Pack {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entry starting at byte `pos`: its bytes and where the next entry starts.
    fn entry_at(&self, pos: usize) -> (&[u8], usize) {
        let (len, p) = read_len(&self.buf, pos);
        let end = (p + len).min(self.buf.len());
        (&self.buf[p..end], end)
    }

    pub fn iter(&self) -> PackIter<'_> {
        PackIter { pack: self, pos: 0 }
    }

    pub fn push(&mut self, item: &[u8]) {
        put_len(&mut self.buf, item.len());
        self.buf.extend_from_slice(item);
        self.count += 1;
    }

    /// Byte offset of the first entry equal to `item` among entries 0, `stride`, 2·`stride`…
    pub fn find(&self, item: &[u8], stride: usize) -> Option<usize> {
        let mut pos = 0;
        while pos < self.buf.len() {
            let (data, mut next) = self.entry_at(pos);
            if data == item {
                return Some(pos);
            }
            for _ in 1..stride {
                next = self.entry_at(next).1;
            }
            pos = next;
        }
        None
    }

    /// The entry at byte offset `pos` and the offset after it.
    pub fn get_at(&self, pos: usize) -> (&[u8], usize) {
        self.entry_at(pos)
    }

    /// Removes `n` entries starting at byte offset `pos`.
    pub fn remove_at(&mut self, pos: usize, n: usize) {
        let mut end = pos;
        let mut removed = 0;
        while removed < n && end < self.buf.len() {
            end = self.entry_at(end).1;
            removed += 1;
        }
        self.buf.drain(pos..end);
        self.count -= removed;
        if self.buf.capacity() > 64 && self.buf.len() < self.buf.capacity() / 4 {
            self.buf.shrink_to(self.buf.len() * 2);
        }
    }

    /// Replaces the entry at byte offset `pos` with `item`.
    pub fn replace_at(&mut self, pos: usize, item: &[u8]) {
        let end = self.entry_at(pos).1;
        self.buf.splice(pos..end, encoded(item));
    }

    /// Inserts `item` before the entry at byte offset `pos` (or at the end).
    pub fn insert_at(&mut self, pos: usize, item: &[u8]) {
        let pos = pos.min(self.buf.len());
        self.buf.splice(pos..pos, encoded(item));
        self.count += 1;
    }

    /// Heap bytes held.
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }
}

/// The entries of a [`Pack`] in order.
#[derive(Clone)]
pub struct PackIter<'a> {
    pack: &'a Pack,
    pos: usize,
}

impl<'a> Iterator for PackIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.pos >= self.pack.buf.len() {
            return None;
        }
        let (data, next) = self.pack.entry_at(self.pos);
        self.pos = next;
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_edits() {
        let mut p = Pack::default();
        let long = vec![7u8; 300];
        p.push(b"a");
        p.push(&long);
        p.push(b"");
        p.push(b"c");
        assert_eq!(p.len(), 4);
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            vec![&b"a"[..], &long[..], b"", b"c"]
        );
        let at = p.find(b"c", 1).unwrap();
        p.replace_at(at, b"cc");
        let at = p.find(&long, 1).unwrap();
        p.remove_at(at, 2);
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![&b"a"[..], b"cc"]);
        assert_eq!(p.find(b"cc", 2), None, "stride 2 skips odd entries");
        p.insert_at(0, b"z");
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![&b"z"[..], b"a", b"cc"]);
        assert_eq!(p.len(), 3);
    }
}
