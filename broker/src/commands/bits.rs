//! Bitmap commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP; and the
//! in-place string update SETRANGE shares with SETBIT.

use super::{parse_i64, Ctx, Outcome};
use crate::db::Value;
use crate::engine::EventClass;
use crate::reply::{msg, Reply};
use bytes::{Bytes, BytesMut};

/// The string at `key` for reading: `Ok(None)` if absent, WRONGTYPE for another type.
pub(super) fn read_str(ctx: &mut Ctx, key: &Bytes) -> Result<Option<Bytes>, Outcome> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Reply::error(msg::WRONGTYPE).into()),
    }
}

/// Changes the string at `key` (created empty if absent) in place, zero-padded to at least
/// `min_len` bytes first; the expiry stays. The buffer is reused when nothing else holds it,
/// so setting one bit of a large bitmap does not copy it. Returns what `edit` returns.
pub(super) fn update_str<R>(
    ctx: &mut Ctx,
    key: &Bytes,
    min_len: usize,
    edit: impl FnOnce(&mut BytesMut) -> R,
) -> Result<R, Outcome> {
    let db = ctx.client.db;
    let old = match ctx.lookup(key) {
        None => Bytes::new(),
        Some(Value::Str(s)) => std::mem::take(s),
        Some(_) => return Err(Reply::error(msg::WRONGTYPE).into()),
    };
    let mut buf = old
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    if buf.len() < min_len {
        buf.resize(min_len, 0);
    }
    let out = edit(&mut buf);
    let d = &mut ctx.engine.keyspace[db];
    match d.map.get_mut(key) {
        Some(Value::Str(s)) => *s = buf.freeze(),
        _ => {
            d.map
                .insert(Bytes::copy_from_slice(key), Value::Str(buf.freeze()));
        }
    }
    ctx.engine.touch(db, key);
    Ok(out)
}

/// A bit offset argument: a non-negative integer whose byte fits `proto-max-bulk-len`.
fn bit_offset(ctx: &Ctx, arg: &[u8]) -> Result<u64, Reply> {
    let max_bytes = ctx.shared.config.read().proto_max_bulk_len as i64;
    match parse_i64(arg) {
        Some(n) if n >= 0 && (n >> 3) < max_bytes => Ok(n as u64),
        _ => Err(Reply::error(msg::BIT_OFFSET)),
    }
}

/// SETBIT key offset value
pub fn setbit(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let offset = match bit_offset(ctx, &ctx.args[2]) {
        Ok(o) => o,
        Err(e) => return e.into(),
    };
    let on = match parse_i64(&ctx.args[3]) {
        Some(b @ (0 | 1)) => b as u8,
        _ => return Reply::error(msg::BIT_VALUE).into(),
    };
    let byte = (offset >> 3) as usize;
    let mask = 1u8 << (7 - (offset & 7));
    let old = update_str(ctx, &key, byte + 1, |buf| {
        let was = buf[byte] & mask != 0;
        if on == 1 {
            buf[byte] |= mask;
        } else {
            buf[byte] &= !mask;
        }
        was
    });
    match old {
        Ok(was) => {
            ctx.notify(EventClass::String, "setbit", &key);
            Reply::Int(i64::from(was)).into()
        }
        Err(e) => e,
    }
}

/// GETBIT key offset
pub fn getbit(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let offset = match bit_offset(ctx, &ctx.args[2]) {
        Ok(o) => o,
        Err(e) => return e.into(),
    };
    let s = match read_str(ctx, &key) {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => return e,
    };
    let byte = (offset >> 3) as usize;
    let bit = s.get(byte).is_some_and(|b| b & (1 << (7 - (offset & 7))) != 0);
    Reply::Int(i64::from(bit)).into()
}

/// A `start end [BYTE|BIT]` range over a string of `len` bytes, resolved as Redis resolves
/// it: negative positions count from the end, then both are clamped. `None` when empty.
/// Returns inclusive bit positions.
fn bit_range(len: usize, start: i64, end: i64, bits: bool) -> Option<(u64, u64)> {
    let total = if bits { len as i64 * 8 } else { len as i64 };
    let (mut start, mut end) = (start, end);
    if start < 0 {
        start = total.saturating_add(start);
    }
    if end < 0 {
        end = total.saturating_add(end);
    }
    start = start.max(0);
    end = end.max(0).min(total - 1);
    if start > end {
        return None;
    }
    Some(if bits {
        (start as u64, end as u64)
    } else {
        (start as u64 * 8, end as u64 * 8 + 7)
    })
}

fn bit_at(s: &[u8], pos: u64) -> bool {
    s[(pos >> 3) as usize] & (1 << (7 - (pos & 7))) != 0
}

/// Set bits in the inclusive bit range.
fn count_bits(s: &[u8], lo: u64, hi: u64) -> u64 {
    let (first, last) = ((lo >> 3) as usize, (hi >> 3) as usize);
    let mut n: u64 = s[first..=last].iter().map(|b| u64::from(b.count_ones())).sum();
    // Take off the bits of the edge bytes outside the range.
    for pos in first as u64 * 8..lo {
        n -= u64::from(bit_at(s, pos));
    }
    for pos in hi + 1..(last as u64 + 1) * 8 {
        n -= u64::from(bit_at(s, pos));
    }
    n
}

/// The unit argument of BITCOUNT/BITPOS: true for BIT.
fn unit_arg(arg: &[u8]) -> Result<bool, Reply> {
    if arg.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(Reply::error(msg::SYNTAX))
    }
}

/// BITCOUNT key [start end [BYTE|BIT]]
pub fn bitcount(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    // The key is looked up before the range is read, as in Redis: a missing key counts 0
    // whatever the arguments.
    let s = match read_str(ctx, &key) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Int(0).into(),
        Err(e) => return e,
    };
    let range = match ctx.args.len() {
        2 => bit_range(s.len(), 0, -1, false),
        4 | 5 => {
            let (Some(start), Some(end)) = (parse_i64(&ctx.args[2]), parse_i64(&ctx.args[3])) else {
                return Reply::error(msg::NOT_INT).into();
            };
            if start < 0 && end < 0 && start > end {
                return Reply::Int(0).into();
            }
            let bits = match ctx.args.get(4).map(|a| unit_arg(a)) {
                Some(Err(e)) => return e.into(),
                Some(Ok(b)) => b,
                None => false,
            };
            bit_range(s.len(), start, end, bits)
        }
        _ => return Reply::error(msg::SYNTAX).into(),
    };
    let n = range.map_or(0, |(lo, hi)| count_bits(&s, lo, hi));
    Reply::Int(n as i64).into()
}

/// The first bit equal to `bit` in the inclusive bit range.
fn first_bit(s: &[u8], lo: u64, hi: u64, bit: bool) -> Option<u64> {
    let skip = if bit { 0x00 } else { 0xFF };
    let mut pos = lo;
    while pos <= hi {
        if pos & 7 == 0 && pos + 7 <= hi && s[(pos >> 3) as usize] == skip {
            pos += 8;
            continue;
        }
        if bit_at(s, pos) == bit {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

/// BITPOS key bit [start [end [BYTE|BIT]]]
pub fn bitpos(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let bit = match parse_i64(&ctx.args[2]) {
        None => return Reply::error(msg::NOT_INT).into(),
        Some(b @ (0 | 1)) => b == 1,
        Some(_) => return Reply::error(msg::BITPOS_BIT).into(),
    };
    // A missing key is an endless run of zeros.
    let s = match read_str(ctx, &key) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Int(if bit { -1 } else { 0 }).into(),
        Err(e) => return e,
    };
    let argc = ctx.args.len();
    let (range, end_given) = match argc {
        3 => (bit_range(s.len(), 0, -1, false), false),
        4..=6 => {
            let Some(start) = parse_i64(&ctx.args[3]) else {
                return Reply::error(msg::NOT_INT).into();
            };
            let bits = match ctx.args.get(5).map(|a| unit_arg(a)) {
                Some(Err(e)) => return e.into(),
                Some(Ok(b)) => b,
                None => false,
            };
            let end = match ctx.args.get(4) {
                Some(a) => match parse_i64(a) {
                    Some(e) => e,
                    None => return Reply::error(msg::NOT_INT).into(),
                },
                None => -1,
            };
            (bit_range(s.len(), start, end, bits), argc >= 5)
        }
        _ => return Reply::error(msg::SYNTAX).into(),
    };
    let Some((lo, hi)) = range else {
        return Reply::Int(-1).into();
    };
    let pos = match first_bit(&s, lo, hi, bit) {
        Some(p) => p as i64,
        // Past an open-ended range the string continues with zeros; past an explicit end,
        // or looking for a one, there is none.
        None if !bit && !end_given => hi as i64 + 1,
        None => -1,
    };
    Reply::Int(pos).into()
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]
pub fn bitop(ctx: &mut Ctx) -> Outcome {
    #[derive(Clone, Copy, PartialEq)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = match ctx.args[1].to_ascii_lowercase().as_slice() {
        b"and" => Op::And,
        b"or" => Op::Or,
        b"xor" => Op::Xor,
        b"not" => Op::Not,
        _ => return Reply::error(msg::SYNTAX).into(),
    };
    if op == Op::Not && ctx.args.len() != 4 {
        return Reply::error(msg::BITOP_NOT).into();
    }
    let dst = ctx.args[2].clone();
    let mut sources = Vec::with_capacity(ctx.args.len() - 3);
    for i in 3..ctx.args.len() {
        let key = ctx.args[i].clone();
        match read_str(ctx, &key) {
            Ok(s) => sources.push(s.unwrap_or_default()),
            Err(e) => return e,
        }
    }
    let max = sources.iter().map(Bytes::len).max().unwrap_or(0);
    let db = ctx.client.db;
    if max == 0 {
        ctx.engine.expire_if_due(db, &dst, ctx.now_ms);
        if ctx.engine.keyspace[db].remove(&dst).is_some() {
            ctx.engine.touch(db, &dst);
            ctx.notify(EventClass::Generic, "del", &dst);
        }
        return Reply::Int(0).into();
    }
    let byte = |s: &Bytes, i: usize| s.get(i).copied().unwrap_or(0);
    let result: Vec<u8> = (0..max)
        .map(|i| {
            let mut it = sources.iter().map(|s| byte(s, i));
            let first = it.next().unwrap_or(0);
            match op {
                Op::Not => !first,
                Op::And => it.fold(first, |a, b| a & b),
                Op::Or => it.fold(first, |a, b| a | b),
                Op::Xor => it.fold(first, |a, b| a ^ b),
            }
        })
        .collect();
    ctx.engine.expire_if_due(db, &dst, ctx.now_ms);
    let d = &mut ctx.engine.keyspace[db];
    // The result replaces whatever was there, expiry included.
    d.remove(&dst);
    d.map
        .insert(Bytes::copy_from_slice(&dst), Value::Str(Bytes::from(result)));
    ctx.engine.touch(db, &dst);
    ctx.notify(EventClass::String, "set", &dst);
    Reply::Int(max as i64).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_as_redis_does() {
        assert_eq!(bit_range(3, 0, -1, false), Some((0, 23)));
        assert_eq!(bit_range(3, 1, 1, false), Some((8, 15)));
        assert_eq!(bit_range(3, 5, 100, true), Some((5, 23)));
        assert_eq!(bit_range(3, 2, 1, false), None);
        assert_eq!(bit_range(0, 0, -1, false), None);
    }

    #[test]
    fn counts_and_positions_respect_bit_edges() {
        let s = [0b1111_0000u8, 0b0000_1111];
        assert_eq!(count_bits(&s, 0, 15), 8);
        assert_eq!(count_bits(&s, 2, 13), 4);
        assert_eq!(first_bit(&s, 0, 15, false), Some(4));
        assert_eq!(first_bit(&s, 4, 15, true), Some(12));
        assert_eq!(first_bit(&[0xFF], 0, 7, false), None);
    }
}
