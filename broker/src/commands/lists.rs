//! List commands, including the blocking pops and moves.

use super::{end_arg, int_arg, parse_i64, timeout_arg, Ctx, Outcome};
use crate::db::{End, Value};
use crate::engine::{BlockOp, EventClass};
use crate::reply::{msg, Reply};
use bytes::Bytes;

fn wrongtype() -> Outcome {
    Reply::error(msg::WRONGTYPE).into()
}

/// Checks that `key` holds a list or nothing. `Err` carries the WRONGTYPE reply.
fn check_list(ctx: &mut Ctx, key: &Bytes) -> Result<bool, Outcome> {
    match ctx.lookup(key) {
        None => Ok(false),
        Some(Value::List(_)) => Ok(true),
        Some(_) => Err(wrongtype()),
    }
}

fn push(ctx: &mut Ctx, end: End, only_existing: bool) -> Outcome {
    let key = &ctx.args[1];
    let db = ctx.client.db;
    if only_existing {
        match check_list(ctx, key) {
            Ok(true) => {}
            Ok(false) => return Reply::Int(0).into(),
            Err(o) => return o,
        }
    } else {
        // `push` itself tells a list from another type: one hash lookup on the hot path.
        ctx.engine.expire_if_due(db, key, ctx.now_ms);
    }
    match ctx.engine.push(db, key, end, &ctx.args[2..]) {
        Some(len) => Reply::Int(len as i64).into(),
        None => wrongtype(),
    }
}

pub fn lpush(ctx: &mut Ctx) -> Outcome {
    push(ctx, End::Left, false)
}

pub fn rpush(ctx: &mut Ctx) -> Outcome {
    push(ctx, End::Right, false)
}

pub fn lpushx(ctx: &mut Ctx) -> Outcome {
    push(ctx, End::Left, true)
}

pub fn rpushx(ctx: &mut Ctx) -> Outcome {
    push(ctx, End::Right, true)
}

fn pop(ctx: &mut Ctx, end: End) -> Outcome {
    if ctx.args.len() > 3 {
        return Reply::error(msg::wrong_args(if end == End::Left { "lpop" } else { "rpop" })).into();
    }
    let count = match ctx.args.get(2) {
        None => None,
        Some(a) => match parse_i64(a) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return Reply::error(msg::COUNT_POSITIVE).into(),
        },
    };
    let key = ctx.args[1].clone();
    match check_list(ctx, &key) {
        Err(o) => return o,
        Ok(false) => {
            return if count.is_some() {
                Reply::NullArray
            } else {
                Reply::Null
            }
            .into()
        }
        Ok(true) => {}
    }
    if count == Some(0) {
        return Reply::Array(vec![]).into();
    }
    let (db, id) = (ctx.client.db, ctx.client.id);
    let name = ctx.client.name.clone();
    let popped = ctx
        .engine
        .pop(db, &key, end, count.unwrap_or(1), id, name.as_deref())
        .unwrap_or_default();
    match count {
        Some(_) => Reply::Array(popped.into_iter().map(Reply::Bulk).collect()).into(),
        None => popped.into_iter().next().map_or(Reply::Null, Reply::Bulk).into(),
    }
}

pub fn lpop(ctx: &mut Ctx) -> Outcome {
    pop(ctx, End::Left)
}

pub fn rpop(ctx: &mut Ctx) -> Outcome {
    pop(ctx, End::Right)
}

pub fn llen(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    match ctx.lookup(&key) {
        None => Reply::Int(0).into(),
        Some(Value::List(l)) => Reply::Int(l.len() as i64).into(),
        Some(_) => wrongtype(),
    }
}

/// Converts Redis start/stop indexes into a clamped half-open range over `len` elements.
fn range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut stop = if stop < 0 { len + stop } else { stop };
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len {
        return None;
    }
    if stop >= len {
        stop = len - 1;
    }
    Some((start as usize, stop as usize + 1))
}

pub fn lrange(ctx: &mut Ctx) -> Outcome {
    let (start, stop) = match (int_arg(&ctx.args[2]), int_arg(&ctx.args[3])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e.into(),
    };
    let key = ctx.args[1].clone();
    let raw = ctx.client.raw_replies;
    match ctx.lookup(&key) {
        None => Reply::Array(vec![]).into(),
        Some(Value::List(l)) => match range(start, stop, l.len()) {
            None => Reply::Array(vec![]).into(),
            Some((a, b)) if raw => {
                // An array of bulk strings encodes identically in RESP2 and RESP3: write it once
                // instead of building (and reference-counting) one reply per element.
                Reply::Raw(crate::reply::encode_bulk_array(
                    l.items.iter_from(a).take(b - a),
                    b - a,
                ))
                .into()
            }
            Some((a, b)) => Reply::Array(
                l.items
                    .iter_from(a)
                    .take(b - a)
                    .map(|e| Reply::Bulk(Bytes::copy_from_slice(e)))
                    .collect(),
            )
            .into(),
        },
        Some(_) => wrongtype(),
    }
}

fn index_of(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 { len as i64 + index } else { index };
    (i >= 0 && i < len as i64).then_some(i as usize)
}

pub fn lindex(ctx: &mut Ctx) -> Outcome {
    let index = match int_arg(&ctx.args[2]) {
        Ok(i) => i,
        Err(e) => return e.into(),
    };
    let key = ctx.args[1].clone();
    match ctx.lookup(&key) {
        None => Reply::Null.into(),
        Some(Value::List(l)) => match index_of(index, l.len()).and_then(|i| l.items.get(i)) {
            Some(e) => Reply::Bulk(Bytes::copy_from_slice(e)).into(),
            None => Reply::Null.into(),
        },
        Some(_) => wrongtype(),
    }
}

pub fn lset(ctx: &mut Ctx) -> Outcome {
    let index = match int_arg(&ctx.args[2]) {
        Ok(i) => i,
        Err(e) => return e.into(),
    };
    let key = ctx.args[1].clone();
    let value = ctx.args[3].clone();
    let out = match ctx.lookup(&key) {
        None => return Reply::error(msg::NO_SUCH_KEY).into(),
        Some(Value::List(l)) => match index_of(index, l.len()) {
            Some(i) if l.items.set(i, &value) => Reply::Ok,
            _ => return Reply::error(msg::INDEX_OUT_OF_RANGE).into(),
        },
        Some(_) => return wrongtype(),
    };
    let db = ctx.client.db;
    ctx.engine.touch(db, &key);
    ctx.notify(EventClass::List, "lset", &key);
    out.into()
}

pub fn linsert(ctx: &mut Ctx) -> Outcome {
    let after = if ctx.args[2].eq_ignore_ascii_case(b"after") {
        true
    } else if ctx.args[2].eq_ignore_ascii_case(b"before") {
        false
    } else {
        return Reply::error(msg::SYNTAX).into();
    };
    let key = ctx.args[1].clone();
    let (pivot, element) = (ctx.args[3].clone(), ctx.args[4].clone());
    let now_us = ctx.engine.now_us;
    let len = match ctx.lookup(&key) {
        None => return Reply::Int(0).into(),
        Some(Value::List(l)) => {
            let Some(pos) = l.items.iter().position(|e| *e == pivot[..]) else {
                return Reply::Int(-1).into();
            };
            let at = if after { pos + 1 } else { pos };
            l.items.insert(at, &element, now_us);
            let len = l.len();
            l.stats.record_push(1, len, l.oldest_us(), now_us / 1000);
            len
        }
        Some(_) => return wrongtype(),
    };
    let db = ctx.client.db;
    ctx.engine.after_push(db, &key, 1, len);
    ctx.notify(EventClass::List, "linsert", &key);
    Reply::Int(len as i64).into()
}

pub fn lrem(ctx: &mut Ctx) -> Outcome {
    let count = match int_arg(&ctx.args[2]) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    let key = ctx.args[1].clone();
    let element = ctx.args[3].clone();
    let (removed, empty) = match ctx.lookup(&key) {
        None => return Reply::Int(0).into(),
        Some(Value::List(l)) => {
            let limit = if count == 0 {
                usize::MAX
            } else {
                count.unsigned_abs() as usize
            };
            let removed = l.items.remove_matching(&element, limit, count < 0);
            l.sync_length();
            (removed, l.is_empty())
        }
        Some(_) => return wrongtype(),
    };
    let db = ctx.client.db;
    if removed > 0 {
        ctx.notify(EventClass::List, "lrem", &key);
    }
    if empty {
        ctx.engine.keyspace[db].remove(&key);
        ctx.notify(EventClass::Generic, "del", &key);
    }
    if removed > 0 {
        ctx.engine.touch(db, &key);
    }
    Reply::Int(removed as i64).into()
}

pub fn ltrim(ctx: &mut Ctx) -> Outcome {
    let (start, stop) = match (int_arg(&ctx.args[2]), int_arg(&ctx.args[3])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e.into(),
    };
    let key = ctx.args[1].clone();
    let empty = match ctx.lookup(&key) {
        None => return Reply::Ok.into(),
        Some(Value::List(l)) => {
            match range(start, stop, l.len()) {
                None => l.items.clear(),
                Some((a, b)) => l.items.trim(a, b),
            }
            l.sync_length();
            l.is_empty()
        }
        Some(_) => return wrongtype(),
    };
    let db = ctx.client.db;
    ctx.notify(EventClass::List, "ltrim", &key);
    if empty {
        ctx.engine.keyspace[db].remove(&key);
        ctx.notify(EventClass::Generic, "del", &key);
    }
    ctx.engine.touch(db, &key);
    Reply::Ok.into()
}

pub fn lpos(ctx: &mut Ctx) -> Outcome {
    let mut rank: i64 = 1;
    let mut count: Option<usize> = None;
    let mut maxlen: usize = 0;
    let mut i = 3;
    while i < ctx.args.len() {
        let opt = &ctx.args[i];
        let Some(val) = ctx.args.get(i + 1) else {
            return Reply::error(msg::SYNTAX).into();
        };
        if opt.eq_ignore_ascii_case(b"rank") {
            rank = match int_arg(val) {
                Ok(r) if r == i64::MIN => return Reply::error(msg::RANK_OUT_OF_RANGE).into(),
                Ok(0) => return Reply::error(msg::RANK_ZERO).into(),
                Ok(r) => r,
                Err(e) => return e.into(),
            };
        } else if opt.eq_ignore_ascii_case(b"count") {
            count = match int_arg(val) {
                Ok(c) if c < 0 => return Reply::error(msg::COUNT_NEGATIVE).into(),
                Ok(c) => Some(c as usize),
                Err(e) => return e.into(),
            };
        } else if opt.eq_ignore_ascii_case(b"maxlen") {
            maxlen = match int_arg(val) {
                Ok(m) if m < 0 => return Reply::error(msg::MAXLEN_NEGATIVE).into(),
                Ok(m) => m as usize,
                Err(e) => return e.into(),
            };
        } else {
            return Reply::error(msg::SYNTAX).into();
        }
        i += 2;
    }
    let key = ctx.args[1].clone();
    let element = ctx.args[2].clone();
    let items = match ctx.lookup(&key) {
        None => {
            return if count.is_some() {
                Reply::Array(vec![])
            } else {
                Reply::Null
            }
            .into()
        }
        Some(Value::List(l)) => &l.items,
        Some(_) => return wrongtype(),
    };
    let want = match count {
        Some(0) => usize::MAX,
        Some(c) => c,
        None => 1,
    };
    let len = items.len();
    let scan = if maxlen == 0 { len } else { maxlen.min(len) };
    let mut skip = rank.unsigned_abs() - 1;
    let mut found = Vec::new();
    let walk: Box<dyn Iterator<Item = &[u8]>> = if rank > 0 {
        Box::new(items.iter())
    } else {
        Box::new(items.iter_rev())
    };
    for (step, e) in walk.take(scan).enumerate() {
        let idx = if rank > 0 { step } else { len - 1 - step };
        if *e == element[..] {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(idx as i64);
            if found.len() >= want {
                break;
            }
        }
    }
    match count {
        Some(_) => Reply::Array(found.into_iter().map(Reply::Int).collect()).into(),
        None => found.first().map_or(Reply::Null, |&i| Reply::Int(i)).into(),
    }
}

/// Moves one element between lists; `Ok(None)` when the source is empty.
fn move_one(ctx: &mut Ctx, src: &Bytes, dst: &Bytes, from: End, to: End) -> Result<Option<Bytes>, Outcome> {
    if !check_list(ctx, src)? {
        return Ok(None);
    }
    check_list(ctx, dst)?;
    let (db, id) = (ctx.client.db, ctx.client.id);
    let name = ctx.client.name.clone();
    Ok(ctx
        .engine
        .move_element(db, src, dst, from, to, id, name.as_deref()))
}

pub fn lmove(ctx: &mut Ctx) -> Outcome {
    let (from, to) = match (end_arg(&ctx.args[3]), end_arg(&ctx.args[4])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e.into(),
    };
    let (src, dst) = (ctx.args[1].clone(), ctx.args[2].clone());
    match move_one(ctx, &src, &dst, from, to) {
        Ok(Some(e)) => Reply::Bulk(e).into(),
        Ok(None) => Reply::Null.into(),
        Err(o) => o,
    }
}

pub fn rpoplpush(ctx: &mut Ctx) -> Outcome {
    let (src, dst) = (ctx.args[1].clone(), ctx.args[2].clone());
    match move_one(ctx, &src, &dst, End::Right, End::Left) {
        Ok(Some(e)) => Reply::Bulk(e).into(),
        Ok(None) => Reply::Null.into(),
        Err(o) => o,
    }
}

/// Pops from the first non-empty list among `keys`; `Ok(None)` if all are empty.
fn mpop_now(ctx: &mut Ctx, keys: &[Bytes], end: End, count: usize) -> Result<Option<Reply>, Outcome> {
    for key in keys {
        if check_list(ctx, key)? {
            let (db, id) = (ctx.client.db, ctx.client.id);
            let name = ctx.client.name.clone();
            let popped = ctx
                .engine
                .pop(db, key, end, count, id, name.as_deref())
                .unwrap_or_default();
            return Ok(Some(Reply::Array(vec![
                Reply::Bulk(key.clone()),
                Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
            ])));
        }
    }
    Ok(None)
}

pub fn lmpop(ctx: &mut Ctx) -> Outcome {
    super::multi_pop(ctx, false, end_arg, mpop_now, |from, count| BlockOp::MPop {
        from,
        count,
    })
}

pub fn blmpop(ctx: &mut Ctx) -> Outcome {
    super::multi_pop(ctx, true, end_arg, mpop_now, |from, count| BlockOp::MPop {
        from,
        count,
    })
}

fn bpop(ctx: &mut Ctx, end: End) -> Outcome {
    let n = ctx.args.len();
    let timeout = match timeout_arg(&ctx.args[n - 1]) {
        Ok(t) => t,
        Err(e) => return e.into(),
    };
    let keys = ctx.args[1..n - 1].to_vec();
    for key in &keys {
        match check_list(ctx, key) {
            Err(o) => return o,
            Ok(false) => continue,
            Ok(true) => {
                let (db, id) = (ctx.client.db, ctx.client.id);
                let name = ctx.client.name.clone();
                let mut popped = ctx
                    .engine
                    .pop(db, key, end, 1, id, name.as_deref())
                    .unwrap_or_default();
                if let Some(e) = popped.pop() {
                    return Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(e)]).into();
                }
            }
        }
    }
    if ctx.nested {
        return Reply::NullArray.into();
    }
    Outcome::Block {
        keys,
        op: BlockOp::Pop(end),
        timeout,
    }
}

pub fn blpop(ctx: &mut Ctx) -> Outcome {
    bpop(ctx, End::Left)
}

pub fn brpop(ctx: &mut Ctx) -> Outcome {
    bpop(ctx, End::Right)
}

fn bmove(ctx: &mut Ctx, from: End, to: End, timeout_arg_idx: usize) -> Outcome {
    let timeout = match timeout_arg(&ctx.args[timeout_arg_idx]) {
        Ok(t) => t,
        Err(e) => return e.into(),
    };
    let (src, dst) = (ctx.args[1].clone(), ctx.args[2].clone());
    match move_one(ctx, &src, &dst, from, to) {
        Ok(Some(e)) => Reply::Bulk(e).into(),
        Ok(None) if ctx.nested => Reply::Null.into(),
        Ok(None) => Outcome::Block {
            keys: vec![src],
            op: BlockOp::Move { from, to, dest: dst },
            timeout,
        },
        Err(o) => o,
    }
}

pub fn blmove(ctx: &mut Ctx) -> Outcome {
    let (from, to) = match (end_arg(&ctx.args[3]), end_arg(&ctx.args[4])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e.into(),
    };
    bmove(ctx, from, to, 5)
}

pub fn brpoplpush(ctx: &mut Ctx) -> Outcome {
    bmove(ctx, End::Right, End::Left, 3)
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn ranges_like_redis() {
        assert_eq!(range(0, -1, 3), Some((0, 3)));
        assert_eq!(range(-100, 100, 3), Some((0, 3)));
        assert_eq!(range(2, 1, 3), None);
        assert_eq!(range(5, 10, 3), None);
        assert_eq!(range(-2, -1, 3), Some((1, 3)));
        assert_eq!(range(0, 0, 0), None);
    }
}
