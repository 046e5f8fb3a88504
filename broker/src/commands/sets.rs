//! Set commands: SADD … SINTERCARD, the algebra and its STORE forms, SSCAN.

use super::hashes::{cursor_arg, scan_options, scan_reply};
use super::{glob_match, parse_i64, Ctx, Outcome};
use crate::db::Value;
use crate::engine::EventClass;
use crate::reply::{msg, Reply};
use crate::types::set::Set;
use bytes::Bytes;
use rand::Rng;
use std::borrow::Cow;

/// Members per SREM when an SPOP is logged as what it removed (a replayed command stays small).
const MEMBERS_PER_LOGGED_SREM: usize = 1024;

fn wrongtype() -> Outcome {
    Reply::error(msg::WRONGTYPE).into()
}

fn bulk(m: &[u8]) -> Reply {
    Reply::bulk(m)
}

/// The set at `key`, `None` if there is none; `Err` carries WRONGTYPE.
fn set_at<'c>(ctx: &'c mut Ctx, key: &Bytes) -> Result<Option<&'c mut Set>, Outcome> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => Err(wrongtype()),
    }
}

/// Deletes the key once its set is empty (Redis never keeps an empty one), with `del`.
fn remove_if_empty(ctx: &mut Ctx, key: &Bytes) -> bool {
    let db = ctx.client.db;
    if matches!(ctx.engine.keyspace[db].map.get(key), Some(Value::Set(s)) if s.is_empty()) {
        ctx.engine.keyspace[db].remove(key);
        ctx.notify(EventClass::Generic, "del", key);
        return true;
    }
    false
}

pub fn sadd(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let args: &[Bytes] = ctx.args;
    let db = ctx.client.db;
    match ctx.lookup(&key) {
        Some(Value::Set(_)) => {}
        Some(_) => return wrongtype(),
        None => {
            let value = Value::Set(Set::for_member(&args[2]));
            ctx.engine.keyspace[db]
                .map
                .insert(Bytes::copy_from_slice(&key), value);
        }
    }
    let Some(Value::Set(s)) = ctx.engine.keyspace[db].map.get_mut(&key) else {
        return wrongtype();
    };
    let added = args[2..].iter().filter(|m| s.add(m)).count();
    if added > 0 {
        ctx.engine.touch(db, &key);
        ctx.notify(EventClass::Set, "sadd", &key);
    }
    Reply::Int(added as i64).into()
}

pub fn srem(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let args: &[Bytes] = ctx.args;
    let s = match set_at(ctx, &key) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Int(0).into(),
        Err(o) => return o,
    };
    let mut removed = 0;
    for m in &args[2..] {
        if s.remove(m) {
            removed += 1;
            if s.is_empty() {
                break;
            }
        }
    }
    if removed > 0 {
        let db = ctx.client.db;
        ctx.engine.touch(db, &key);
        ctx.notify(EventClass::Set, "srem", &key);
        remove_if_empty(ctx, &key);
    }
    Reply::Int(removed).into()
}

pub fn scard(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    match set_at(ctx, &key) {
        Ok(s) => Reply::Int(s.map_or(0, |s| s.len() as i64)).into(),
        Err(o) => o,
    }
}

pub fn sismember(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let m = ctx.args[2].clone();
    match set_at(ctx, &key) {
        Ok(s) => Reply::Int(i64::from(s.is_some_and(|s| s.contains(&m)))).into(),
        Err(o) => o,
    }
}

pub fn smismember(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let args: &[Bytes] = ctx.args;
    match set_at(ctx, &key) {
        Ok(s) => {
            let s = s.as_deref();
            let out = args[2..]
                .iter()
                .map(|m| Reply::Int(i64::from(s.is_some_and(|s| s.contains(m)))))
                .collect();
            Reply::Array(out).into()
        }
        Err(o) => o,
    }
}

pub fn smembers(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    match set_at(ctx, &key) {
        Ok(Some(s)) => Reply::Set(s.iter().map(|m| bulk(&m)).collect()).into(),
        Ok(None) => Reply::Set(Vec::new()).into(),
        Err(o) => o,
    }
}

/// Up to `count` distinct random positions out of `len`, in random order.
fn distinct_positions(len: usize, count: usize) -> Vec<usize> {
    rand::seq::index::sample(&mut rand::thread_rng(), len, count.min(len)).into_vec()
}

pub fn spop(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let db = ctx.client.db;
    let count = match ctx.args.len() {
        2 => None,
        3 => match parse_i64(&ctx.args[2]) {
            Some(c) if c >= 0 => Some(c as u64),
            _ => return Reply::error(msg::COUNT_POSITIVE).into(),
        },
        _ => return Reply::error(msg::SYNTAX).into(),
    };
    let s = match set_at(ctx, &key) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return match count {
                None => Reply::Null,
                Some(_) => Reply::Set(Vec::new()),
            }
            .into()
        }
        Err(o) => return o,
    };
    let len = s.len();
    let wanted = count.map_or(1, |c| usize::try_from(c).unwrap_or(usize::MAX));
    if wanted == 0 {
        return Reply::Set(Vec::new()).into();
    }
    let popped: Vec<Bytes> = if wanted >= len {
        s.iter().map(|m| Bytes::copy_from_slice(&m)).collect()
    } else {
        let pos = distinct_positions(len, wanted);
        pos.into_iter()
            .filter_map(|i| s.nth(i).map(|m| Bytes::copy_from_slice(&m)))
            .collect()
    };
    for m in &popped {
        s.remove(m);
    }
    ctx.engine.touch(db, &key);
    ctx.notify(EventClass::Set, "spop", &key);
    // A random choice must not be made again on replay: log what was removed.
    if remove_if_empty(ctx, &key) {
        log_effect(ctx, &[&b"DEL"[..], &key]);
    } else {
        for chunk in popped.chunks(MEMBERS_PER_LOGGED_SREM) {
            let mut args: Vec<&[u8]> = vec![b"SREM", &key];
            args.extend(chunk.iter().map(|m| &m[..]));
            log_effect(ctx, &args);
        }
    }
    match count {
        None => popped.into_iter().next().map_or(Reply::Null, Reply::Bulk).into(),
        Some(_) => Reply::Set(popped.into_iter().map(Reply::Bulk).collect()).into(),
    }
}

/// Logs a write as its effect (`commands::logged` skips the command as sent).
fn log_effect(ctx: &mut Ctx, args: &[&[u8]]) {
    let db = ctx.client.db;
    if let Some(offset) = ctx.engine.log(db, args) {
        ctx.client.aof_wait = offset;
    }
}

pub fn srandmember(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let count = match ctx.args.len() {
        2 => None,
        3 => match parse_i64(&ctx.args[2]) {
            None => return Reply::error(msg::NOT_INT).into(),
            Some(i64::MIN) => return Reply::error(msg::RANK_OUT_OF_RANGE).into(),
            Some(c) => Some(c),
        },
        _ => return Reply::error(msg::SYNTAX).into(),
    };
    let s = match set_at(ctx, &key) {
        Ok(Some(s)) => &*s,
        Ok(None) => {
            return match count {
                None => Reply::Null,
                Some(_) => Reply::Array(Vec::new()),
            }
            .into()
        }
        Err(o) => return o,
    };
    let len = s.len();
    let mut rng = rand::thread_rng();
    let Some(count) = count else {
        return s
            .nth(rng.gen_range(0..len.max(1)))
            .map_or(Reply::Null, |m| bulk(&m))
            .into();
    };
    if let Err(e) = super::args::check_repeated_picks(count) {
        return e.into();
    }
    let out: Vec<Reply> = if count < 0 {
        // Repetitions allowed: each pick independent.
        (0..count.unsigned_abs())
            .filter_map(|_| s.nth(rng.gen_range(0..len.max(1))).map(|m| bulk(&m)))
            .collect()
    } else if count as u64 >= len as u64 {
        s.iter().map(|m| bulk(&m)).collect()
    } else {
        distinct_positions(len, count as usize)
            .into_iter()
            .filter_map(|i| s.nth(i).map(|m| bulk(&m)))
            .collect()
    };
    Reply::Array(out).into()
}

pub fn smove(ctx: &mut Ctx) -> Outcome {
    let (src, dst, member) = (ctx.args[1].clone(), ctx.args[2].clone(), ctx.args[3].clone());
    let db = ctx.client.db;
    let src_exists = match ctx.lookup(&src) {
        None => return Reply::Int(0).into(),
        Some(Value::Set(_)) => true,
        Some(_) => return wrongtype(),
    };
    match ctx.lookup(&dst) {
        None | Some(Value::Set(_)) => {}
        Some(_) => return wrongtype(),
    }
    debug_assert!(src_exists);
    if src == dst {
        let there =
            matches!(ctx.engine.keyspace[db].map.get(&src), Some(Value::Set(s)) if s.contains(&member));
        return Reply::Int(i64::from(there)).into();
    }
    let removed = match ctx.engine.keyspace[db].map.get_mut(&src) {
        Some(Value::Set(s)) => s.remove(&member),
        _ => false,
    };
    if !removed {
        return Reply::Int(0).into();
    }
    ctx.notify(EventClass::Set, "srem", &src);
    remove_if_empty(ctx, &src);
    let d = &mut ctx.engine.keyspace[db];
    if !d.map.contains_key(&dst) {
        d.map
            .insert(Bytes::copy_from_slice(&dst), Value::Set(Set::for_member(&member)));
    }
    ctx.engine.touch(db, &src);
    let added = match ctx.engine.keyspace[db].map.get_mut(&dst) {
        Some(Value::Set(s)) => s.add(&member),
        _ => false,
    };
    if added {
        ctx.engine.touch(db, &dst);
        ctx.notify(EventClass::Set, "sadd", &dst);
    }
    Reply::Int(1).into()
}

/// The sets at `keys` (`None` for a missing key); every key's type is checked first, as Redis
/// does, so a wrong type anywhere is an error even when the result is already known.
fn sets_at<'c>(ctx: &'c mut Ctx, keys: &[Bytes]) -> Result<Vec<Option<&'c Set>>, Outcome> {
    let db = ctx.client.db;
    for k in keys {
        ctx.engine.expire_if_due(db, k, ctx.now_ms);
    }
    let d = &ctx.engine.keyspace[db];
    keys.iter()
        .map(|k| match d.map.get(k) {
            None => Ok(None),
            Some(Value::Set(s)) => Ok(Some(s)),
            Some(_) => Err(wrongtype()),
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// The members of the intersection in the order of the smallest set, at most `limit` (0: all).
fn intersection<'s>(sets: &[Option<&'s Set>], limit: usize) -> Vec<Cow<'s, [u8]>> {
    let Some(mut sets) = sets.iter().copied().collect::<Option<Vec<&Set>>>() else {
        return Vec::new();
    };
    sets.sort_by_key(|s| s.len());
    let Some((first, rest)) = sets.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in first.iter() {
        if rest.iter().all(|s| s.contains(&m)) {
            out.push(m);
            if limit > 0 && out.len() >= limit {
                break;
            }
        }
    }
    out
}

/// The result of `op` as a set of its own (what the STORE forms keep; Redis builds it the
/// same way, from an empty intset).
fn combine(sets: &[Option<&Set>], op: Op) -> Set {
    let mut out = Set::default();
    match op {
        Op::Inter => {
            for m in intersection(sets, 0) {
                out.add(&m);
            }
        }
        Op::Union => {
            for s in sets.iter().flatten() {
                for m in s.iter() {
                    out.add(&m);
                }
            }
        }
        Op::Diff => {
            if let Some(Some(first)) = sets.first() {
                for m in first.iter() {
                    if !sets[1..].iter().flatten().any(|s| s.contains(&m)) {
                        out.add(&m);
                    }
                }
            }
        }
    }
    out
}

fn algebra(ctx: &mut Ctx, op: Op) -> Outcome {
    let args: &[Bytes] = ctx.args;
    let sets = match sets_at(ctx, &args[1..]) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let members: Vec<Reply> = if op == Op::Inter {
        intersection(&sets, 0).iter().map(|m| bulk(m)).collect()
    } else {
        combine(&sets, op).iter().map(|m| bulk(&m)).collect()
    };
    Reply::Set(members).into()
}

fn algebra_store(ctx: &mut Ctx, op: Op, event: &str) -> Outcome {
    let args: &[Bytes] = ctx.args;
    let dst = args[1].clone();
    let result = match sets_at(ctx, &args[2..]) {
        Ok(sets) => combine(&sets, op),
        Err(o) => return o,
    };
    let db = ctx.client.db;
    ctx.engine.expire_if_due(db, &dst, ctx.now_ms);
    let d = &mut ctx.engine.keyspace[db];
    if result.is_empty() {
        if d.remove(&dst).is_some() {
            ctx.engine.touch(db, &dst);
            ctx.notify(EventClass::Generic, "del", &dst);
        }
        return Reply::Int(0).into();
    }
    let len = result.len();
    d.remove(&dst);
    d.map.insert(Bytes::copy_from_slice(&dst), Value::Set(result));
    ctx.engine.touch(db, &dst);
    ctx.notify(EventClass::Set, event, &dst);
    Reply::Int(len as i64).into()
}

pub fn sinter(ctx: &mut Ctx) -> Outcome {
    algebra(ctx, Op::Inter)
}

pub fn sunion(ctx: &mut Ctx) -> Outcome {
    algebra(ctx, Op::Union)
}

pub fn sdiff(ctx: &mut Ctx) -> Outcome {
    algebra(ctx, Op::Diff)
}

pub fn sinterstore(ctx: &mut Ctx) -> Outcome {
    algebra_store(ctx, Op::Inter, "sinterstore")
}

pub fn sunionstore(ctx: &mut Ctx) -> Outcome {
    algebra_store(ctx, Op::Union, "sunionstore")
}

pub fn sdiffstore(ctx: &mut Ctx) -> Outcome {
    algebra_store(ctx, Op::Diff, "sdiffstore")
}

pub fn sintercard(ctx: &mut Ctx) -> Outcome {
    let args: &[Bytes] = ctx.args;
    let numkeys = match parse_i64(&args[1]) {
        Some(n) if n > 0 => n as u64,
        _ => return Reply::error(msg::NUMKEYS_POSITIVE).into(),
    };
    if numkeys > (args.len() - 2) as u64 {
        return Reply::error(msg::NUMKEYS_OVER_ARGS).into();
    }
    let keys_end = 2 + numkeys as usize;
    let mut limit = 0usize;
    let mut i = keys_end;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"limit") && i + 1 < args.len() {
            limit = match parse_i64(&args[i + 1]) {
                Some(l) if l >= 0 => usize::try_from(l).unwrap_or(usize::MAX),
                _ => return Reply::error(msg::LIMIT_NEGATIVE).into(),
            };
            i += 2;
        } else {
            return Reply::error(msg::SYNTAX).into();
        }
    }
    match sets_at(ctx, &args[2..keys_end]) {
        Ok(sets) => Reply::Int(intersection(&sets, limit).len() as i64).into(),
        Err(o) => o,
    }
}

pub fn sscan(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let cursor = match cursor_arg(&ctx.args[2]) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let args: &[Bytes] = ctx.args;
    let s = match set_at(ctx, &key) {
        Ok(Some(s)) => s,
        Ok(None) => return scan_reply(0, Vec::new()),
        Err(o) => return o,
    };
    let (pattern, count) = match scan_options(&args[3..]) {
        Ok(o) => o,
        Err(o) => return o,
    };
    let (members, next) = s.scan(cursor, count);
    let out = members
        .iter()
        .filter(|m| pattern.as_ref().is_none_or(|p| glob_match(p, m, false)))
        .map(|m| bulk(m))
        .collect();
    scan_reply(next, out)
}
