//! Hash commands: HSET … HRANDFIELD, HSCAN.

use super::{glob_match, parse_f64, parse_i64, Ctx, Outcome};
use crate::db::Value;
use crate::engine::EventClass;
use crate::reply::{msg, Protocol, Reply};
use crate::types::hash::Hash;
use bytes::Bytes;

fn wrongtype() -> Outcome {
    Reply::error(msg::WRONGTYPE).into()
}

/// The hash at `key`, `None` if there is none; `Err` carries WRONGTYPE.
fn hash_at<'c>(ctx: &'c mut Ctx, key: &Bytes) -> Result<Option<&'c mut Hash>, Outcome> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(wrongtype()),
    }
}

/// The hash at `key`, created empty if there is none.
fn hash_or_create<'c>(ctx: &'c mut Ctx, key: &Bytes) -> Result<&'c mut Hash, Outcome> {
    let db = ctx.client.db;
    match ctx.lookup(key) {
        Some(Value::Hash(_)) => {}
        Some(_) => return Err(wrongtype()),
        None => {
            // Own the key: a slice of the request buffer would pin the whole buffer.
            let value = Value::Hash(Hash::default());
            ctx.engine.keyspace[db]
                .map
                .insert(Bytes::copy_from_slice(key), value);
        }
    }
    match ctx.engine.keyspace[db].map.get_mut(key) {
        Some(Value::Hash(h)) => Ok(h),
        _ => Err(wrongtype()),
    }
}

/// Deletes the key once its hash is empty (Redis never keeps an empty one), with `del`.
fn remove_if_empty(ctx: &mut Ctx, key: &Bytes) {
    let db = ctx.client.db;
    if matches!(ctx.engine.keyspace[db].map.get(key), Some(Value::Hash(h)) if h.is_empty()) {
        ctx.engine.keyspace[db].remove(key);
        ctx.notify(EventClass::Generic, "del", key);
    }
}

fn written(ctx: &mut Ctx, key: &Bytes, event: &str) {
    let db = ctx.client.db;
    ctx.engine.touch(db, key);
    ctx.notify(EventClass::Hash, event, key);
}

fn set_fields(ctx: &mut Ctx, name: &str) -> Result<i64, Outcome> {
    let args: &[Bytes] = ctx.args;
    if !args.len().is_multiple_of(2) {
        return Err(Reply::error(msg::wrong_args(name)).into());
    }
    let key = args[1].clone();
    let h = hash_or_create(ctx, &key)?;
    let mut added = 0;
    for pair in args[2..].chunks_exact(2) {
        if h.set(&pair[0], &pair[1]) {
            added += 1;
        }
    }
    written(ctx, &key, "hset");
    Ok(added)
}

pub fn hset(ctx: &mut Ctx) -> Outcome {
    match set_fields(ctx, "hset") {
        Ok(n) => Reply::Int(n).into(),
        Err(o) => o,
    }
}

pub fn hmset(ctx: &mut Ctx) -> Outcome {
    match set_fields(ctx, "hmset") {
        Ok(_) => Reply::Ok.into(),
        Err(o) => o,
    }
}

pub fn hsetnx(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let (field, value) = (ctx.args[2].clone(), ctx.args[3].clone());
    let h = match hash_or_create(ctx, &key) {
        Ok(h) => h,
        Err(o) => return o,
    };
    if h.contains(&field) {
        return Reply::Int(0).into();
    }
    h.set(&field, &value);
    written(ctx, &key, "hset");
    Reply::Int(1).into()
}

pub fn hget(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let field = ctx.args[2].clone();
    match hash_at(ctx, &key) {
        Ok(Some(h)) => h.get(&field).map_or(Reply::Null, Reply::bulk).into(),
        Ok(None) => Reply::Null.into(),
        Err(o) => o,
    }
}

pub fn hmget(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let args: &[Bytes] = ctx.args;
    match hash_at(ctx, &key) {
        Ok(h) => {
            let h = h.as_deref();
            let out = args[2..]
                .iter()
                .map(|f| h.and_then(|h| h.get(f)).map_or(Reply::Null, Reply::bulk))
                .collect();
            Reply::Array(out).into()
        }
        Err(o) => o,
    }
}

pub fn hdel(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let args: &[Bytes] = ctx.args;
    let h = match hash_at(ctx, &key) {
        Ok(Some(h)) => h,
        Ok(None) => return Reply::Int(0).into(),
        Err(o) => return o,
    };
    let mut removed = 0;
    for f in &args[2..] {
        if h.remove(f) {
            removed += 1;
            if h.is_empty() {
                break;
            }
        }
    }
    if removed > 0 {
        written(ctx, &key, "hdel");
        remove_if_empty(ctx, &key);
    }
    Reply::Int(removed).into()
}

pub fn hlen(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    match hash_at(ctx, &key) {
        Ok(h) => Reply::Int(h.map_or(0, |h| h.len() as i64)).into(),
        Err(o) => o,
    }
}

pub fn hstrlen(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let field = ctx.args[2].clone();
    match hash_at(ctx, &key) {
        Ok(h) => Reply::Int(h.and_then(|h| h.get(&field)).map_or(0, |v| v.len() as i64)).into(),
        Err(o) => o,
    }
}

pub fn hexists(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let field = ctx.args[2].clone();
    match hash_at(ctx, &key) {
        Ok(h) => Reply::Int(i64::from(h.is_some_and(|h| h.contains(&field)))).into(),
        Err(o) => o,
    }
}

/// HKEYS, HVALS, HGETALL: which parts of each pair to return.
fn all(ctx: &mut Ctx, keys: bool, values: bool) -> Outcome {
    let key = ctx.args[1].clone();
    let h = match hash_at(ctx, &key) {
        Ok(Some(h)) => h,
        Ok(None) if keys && values => return Reply::Map(Vec::new()).into(),
        Ok(None) => return Reply::Array(Vec::new()).into(),
        Err(o) => return o,
    };
    if keys && values {
        let pairs = h.iter().map(|(f, v)| (Reply::bulk(f), Reply::bulk(v))).collect();
        return Reply::Map(pairs).into();
    }
    let out = h
        .iter()
        .map(|(f, v)| Reply::bulk(if keys { f } else { v }))
        .collect();
    Reply::Array(out).into()
}

pub fn hkeys(ctx: &mut Ctx) -> Outcome {
    all(ctx, true, false)
}

pub fn hvals(ctx: &mut Ctx) -> Outcome {
    all(ctx, false, true)
}

pub fn hgetall(ctx: &mut Ctx) -> Outcome {
    all(ctx, true, true)
}

pub fn hincrby(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let field = ctx.args[2].clone();
    let Some(incr) = parse_i64(&ctx.args[3]) else {
        return Reply::error(msg::NOT_INT).into();
    };
    let h = match hash_or_create(ctx, &key) {
        Ok(h) => h,
        Err(o) => return o,
    };
    let current = match h.get(&field) {
        None => 0,
        Some(v) => match parse_i64(v) {
            Some(n) => n,
            None => return abandon(ctx, &key, msg::HASH_NOT_INT),
        },
    };
    let Some(next) = current.checked_add(incr) else {
        return abandon(ctx, &key, msg::OVERFLOW);
    };
    h.set(&field, itoa::Buffer::new().format(next).as_bytes());
    written(ctx, &key, "hincrby");
    Reply::Int(next).into()
}

/// An error after the hash was looked up for writing: a hash created for it goes again.
fn abandon(ctx: &mut Ctx, key: &Bytes, error: &'static str) -> Outcome {
    remove_if_empty_silently(ctx, key);
    Reply::error(error).into()
}

fn remove_if_empty_silently(ctx: &mut Ctx, key: &Bytes) {
    let db = ctx.client.db;
    if matches!(ctx.engine.keyspace[db].map.get(key), Some(Value::Hash(h)) if h.is_empty()) {
        ctx.engine.keyspace[db].remove(key);
    }
}

pub fn hincrbyfloat(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let field = ctx.args[2].clone();
    let Some(incr) = parse_f64(&ctx.args[3]) else {
        return Reply::error(msg::NOT_FLOAT).into();
    };
    if !incr.is_finite() {
        return Reply::error(msg::NAN_OR_INFINITY).into();
    }
    let h = match hash_or_create(ctx, &key) {
        Ok(h) => h,
        Err(o) => return o,
    };
    let current = match h.get(&field) {
        None => 0.0,
        Some(v) => match parse_f64(v) {
            Some(n) => n,
            None => return abandon(ctx, &key, msg::HASH_NOT_FLOAT),
        },
    };
    let next = current + incr;
    if !next.is_finite() {
        return abandon(ctx, &key, msg::INCR_FLOAT_NAN);
    }
    let text = super::strings::human_float(next);
    h.set(&field, text.as_bytes());
    written(ctx, &key, "hincrbyfloat");
    Reply::bulk(text).into()
}

pub fn hrandfield(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    if ctx.args.len() == 2 {
        return match hash_at(ctx, &key) {
            Ok(Some(h)) if !h.is_empty() => {
                let i = rand::Rng::gen_range(&mut rand::thread_rng(), 0..h.len());
                h.nth(i).map_or(Reply::Null, |(f, _)| Reply::bulk(f)).into()
            }
            Ok(_) => Reply::Null.into(),
            Err(o) => o,
        };
    }
    let count = match parse_i64(&ctx.args[2]) {
        None => return Reply::error(msg::NOT_INT).into(),
        Some(i64::MIN) => return Reply::error(msg::RANK_OUT_OF_RANGE).into(),
        Some(c) => c,
    };
    let with_values = match ctx.args.get(3) {
        None => false,
        Some(a) if ctx.args.len() == 4 && a.eq_ignore_ascii_case(b"withvalues") => true,
        Some(_) => return Reply::error(msg::SYNTAX).into(),
    };
    if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Reply::error(msg::OUT_OF_RANGE).into();
    }
    let resp3 = ctx.client.proto == Protocol::Resp3;
    let h = match hash_at(ctx, &key) {
        Ok(Some(h)) => &*h,
        Ok(None) => return Reply::Array(Vec::new()).into(),
        Err(o) => return o,
    };
    if let Err(e) = super::args::check_repeated_picks(count) {
        return e.into();
    }
    let len = h.len();
    let mut rng = rand::thread_rng();
    let picks: Vec<(&[u8], &[u8])> = if count < 0 {
        // Repetitions allowed: each pick independent.
        (0..count.unsigned_abs())
            .filter_map(|_| h.nth(rand::Rng::gen_range(&mut rng, 0..len)))
            .collect()
    } else if count as u64 >= len as u64 {
        h.iter().collect()
    } else {
        let mut idx = rand::seq::index::sample(&mut rng, len, count as usize).into_vec();
        idx.sort_unstable();
        let mut picked: Vec<_> = idx.into_iter().filter_map(|i| h.nth(i)).collect();
        rand::seq::SliceRandom::shuffle(&mut picked[..], &mut rng);
        picked
    };
    let out = if !with_values {
        picks.into_iter().map(|(f, _)| Reply::bulk(f)).collect()
    } else if resp3 {
        picks
            .into_iter()
            .map(|(f, v)| Reply::Array(vec![Reply::bulk(f), Reply::bulk(v)]))
            .collect()
    } else {
        picks
            .into_iter()
            .flat_map(|(f, v)| [Reply::bulk(f), Reply::bulk(v)])
            .collect()
    };
    Reply::Array(out).into()
}

/// The cursor argument of HSCAN/SSCAN, read as Redis's `strtoul` reads it: an optional sign
/// (a negative number wraps around), digits, nothing else; the empty string is 0.
pub(super) fn cursor_arg(b: &[u8]) -> Result<u64, Outcome> {
    let invalid = || Reply::error(msg::INVALID_CURSOR).into();
    let (negative, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() && !b.is_empty() {
        return Err(invalid());
    }
    let mut n: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(invalid());
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(c - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if negative { n.wrapping_neg() } else { n })
}

/// HSCAN/SSCAN options after the cursor: `MATCH pattern`, `COUNT n`.
pub(super) fn scan_options(args: &[Bytes]) -> Result<(Option<Bytes>, usize), Outcome> {
    let (mut pattern, mut count) = (None, 10usize);
    let mut i = 0;
    while i < args.len() {
        let Some(val) = args.get(i + 1) else {
            return Err(Reply::error(msg::SYNTAX).into());
        };
        if args[i].eq_ignore_ascii_case(b"count") {
            count = match parse_i64(val) {
                None => return Err(Reply::error(msg::NOT_INT).into()),
                Some(c) if c < 1 => return Err(Reply::error(msg::SYNTAX).into()),
                Some(c) => usize::try_from(c).unwrap_or(usize::MAX),
            };
        } else if args[i].eq_ignore_ascii_case(b"match") {
            pattern = (val.as_ref() != b"*").then(|| val.clone());
        } else {
            return Err(Reply::error(msg::SYNTAX).into());
        }
        i += 2;
    }
    Ok((pattern, count))
}

pub(super) fn scan_reply(next: u64, items: Vec<Reply>) -> Outcome {
    Reply::Array(vec![
        Reply::bulk(itoa::Buffer::new().format(next)),
        Reply::Array(items),
    ])
    .into()
}

pub fn hscan(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let cursor = match cursor_arg(&ctx.args[2]) {
        Ok(c) => c,
        Err(o) => return o,
    };
    let args: &[Bytes] = ctx.args;
    let h = match hash_at(ctx, &key) {
        Ok(Some(h)) => h,
        Ok(None) => return scan_reply(0, Vec::new()),
        Err(o) => return o,
    };
    let (pattern, count) = match scan_options(&args[3..]) {
        Ok(o) => o,
        Err(o) => return o,
    };
    let (pairs, next) = h.scan(cursor, count);
    let mut out = Vec::with_capacity(pairs.len() * 2);
    for (f, v) in pairs {
        if pattern.as_ref().is_some_and(|p| !glob_match(p, f, false)) {
            continue;
        }
        out.push(Reply::bulk(f));
        out.push(Reply::bulk(v));
    }
    scan_reply(next, out)
}
