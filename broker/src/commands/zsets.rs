//! Sorted set commands: ZADD and friends, ranges by rank, score and lex, pops (blocking ones
//! included), random members, ZSCAN, and unions, intersections and differences.

use super::{glob_match, int_arg, parse_f64, parse_i64, timeout_arg, Ctx, Outcome};
use crate::db::Value;
use crate::engine::{BlockOp, EventClass};
use crate::reply::{msg, Protocol, Reply};
use crate::types::zset::{LexBound, LexRange, ScoreBound, ScoreRange, ZSet};
use bytes::Bytes;
use rand::Rng;

fn wrongtype() -> Outcome {
    Reply::error(msg::WRONGTYPE).into()
}

/// Looks `key` up as a sorted set: `Ok(None)` when missing, `Err` (WRONGTYPE) for another type.
fn read<'a>(ctx: &'a mut Ctx, key: &Bytes) -> Result<Option<&'a mut ZSet>, Outcome> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(wrongtype()),
    }
}

/// A score argument as ZADD reads it (`strtod` that must consume everything, no NaN, no
/// overflow to infinity from a finite literal).
fn score_arg(b: &[u8]) -> Option<f64> {
    let v = parse_f64(b)?;
    if v.is_infinite() && !b.iter().any(|c| c.eq_ignore_ascii_case(&b'i')) {
        return None;
    }
    Some(v)
}

/// One end of a score range as Redis's `zslParseRange` reads it (`(` makes it exclusive).
fn score_bound(b: &[u8]) -> Option<ScoreBound> {
    let (text, exclusive) = match b.first() {
        Some(b'(') => (&b[1..], true),
        _ => (b, false),
    };
    // `strtod` of nothing is 0 and leaves nothing unread.
    let value = if text.is_empty() { 0.0 } else { parse_f64(text)? };
    Some(ScoreBound { value, exclusive })
}

fn score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
    match (score_bound(min), score_bound(max)) {
        (Some(min), Some(max)) => Ok(ScoreRange { min, max }),
        _ => Err(Reply::error(msg::ZRANGE_NOT_FLOAT)),
    }
}

fn lex_bound(b: &[u8]) -> Option<LexBound> {
    match b.first()? {
        b'+' if b.len() == 1 => Some(LexBound::PosInf),
        b'-' if b.len() == 1 => Some(LexBound::NegInf),
        b'(' => Some(LexBound::Exclusive(Bytes::copy_from_slice(&b[1..]))),
        b'[' => Some(LexBound::Inclusive(Bytes::copy_from_slice(&b[1..]))),
        _ => None,
    }
}

fn lex_range(min: &[u8], max: &[u8]) -> Result<LexRange, Reply> {
    match (lex_bound(min), lex_bound(max)) {
        (Some(min), Some(max)) => Ok(LexRange { min, max }),
        _ => Err(Reply::error(msg::ZRANGE_NOT_LEX)),
    }
}

/// Members, with their scores if asked: a flat array in RESP2, `[member, score]` pairs in RESP3.
fn scored(items: Vec<(Bytes, f64)>, withscores: bool, proto: Protocol) -> Reply {
    if !withscores {
        return Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect());
    }
    match proto {
        Protocol::Resp2 => Reply::Array(
            items
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
                .collect(),
        ),
        Protocol::Resp3 => Reply::Array(
            items
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                .collect(),
        ),
    }
}

/// Pairs for ZMPOP/BZMPOP: `[member, score]` arrays in both protocols.
pub(crate) fn pairs(items: Vec<(Bytes, f64)>) -> Reply {
    Reply::Array(
        items
            .into_iter()
            .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
            .collect(),
    )
}

/// Replaces `key` with `z` (or deletes it when `z` is empty) for the STORE commands; reports
/// `event` or `del`. Returns the stored size.
fn store(ctx: &mut Ctx, key: &Bytes, z: ZSet, event: &str) -> usize {
    let db = ctx.client.db;
    let len = z.len();
    ctx.engine.expire_if_due(db, key, ctx.now_ms);
    if len > 0 {
        let d = ctx.db();
        d.remove(key);
        d.map.insert(Bytes::copy_from_slice(key), Value::ZSet(z));
        ctx.shared.queues.zset_created(db, key);
        ctx.engine.touch(db, key);
        ctx.engine.signal_key_ready(db, key);
        ctx.notify(EventClass::ZSet, event, key);
    } else if ctx.db().remove(key).is_some() {
        ctx.engine.touch(db, key);
        ctx.notify(EventClass::Generic, "del", key);
    }
    len
}

// ---------------------------------------------------------------------------------------
// ZADD, ZINCRBY, ZREM, reads of one member

#[derive(Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    ch: bool,
    incr: bool,
    gt: bool,
    lt: bool,
}

pub fn zadd(ctx: &mut Ctx) -> Outcome {
    let mut f = AddFlags::default();
    let mut i = 2;
    while i < ctx.args.len() {
        let a = &ctx.args[i];
        let flag = if a.eq_ignore_ascii_case(b"nx") {
            &mut f.nx
        } else if a.eq_ignore_ascii_case(b"xx") {
            &mut f.xx
        } else if a.eq_ignore_ascii_case(b"ch") {
            &mut f.ch
        } else if a.eq_ignore_ascii_case(b"incr") {
            &mut f.incr
        } else if a.eq_ignore_ascii_case(b"gt") {
            &mut f.gt
        } else if a.eq_ignore_ascii_case(b"lt") {
            &mut f.lt
        } else {
            break;
        };
        *flag = true;
        i += 1;
    }
    let rest = &ctx.args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Reply::error(msg::SYNTAX).into();
    }
    if f.nx && f.xx {
        return Reply::error(msg::ZADD_NX_XX).into();
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Reply::error(msg::ZADD_GT_LT_NX).into();
    }
    if f.incr && rest.len() > 2 {
        return Reply::error(msg::ZADD_INCR_PAIR).into();
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks(2) {
        match score_arg(&p[0]) {
            Some(s) => pairs.push((s, p[1].clone())),
            None => return Reply::error(msg::NOT_FLOAT).into(),
        }
    }
    add(ctx, &f, &pairs, if f.incr { "zincr" } else { "zadd" })
}

pub fn zincrby(ctx: &mut Ctx) -> Outcome {
    let Some(by) = score_arg(&ctx.args[2]) else {
        return Reply::error(msg::NOT_FLOAT).into();
    };
    let f = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    let pairs = [(by, ctx.args[3].clone())];
    add(ctx, &f, &pairs, "zincr")
}

/// ZADD's work once its arguments are valid.
fn add(ctx: &mut Ctx, f: &AddFlags, pairs: &[(f64, Bytes)], event: &str) -> Outcome {
    let key = ctx.args[1].clone();
    let db = ctx.client.db;
    let none = || -> Outcome {
        if f.incr {
            Reply::Null.into()
        } else {
            Reply::Int(0).into()
        }
    };
    match ctx.lookup(&key) {
        Some(Value::ZSet(_)) => {}
        Some(_) => return wrongtype(),
        None if f.xx => return none(),
        None => {
            let z = ZSet::for_first_member(&pairs[0].1);
            ctx.db().map.insert(Bytes::copy_from_slice(&key), Value::ZSet(z));
            ctx.shared.queues.zset_created(db, &key);
        }
    }
    let Some(Value::ZSet(z)) = ctx.engine.keyspace[db].map.get_mut(&key) else {
        return none();
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0;
    let mut nan = false;
    for (score, member) in pairs {
        let mut score = *score;
        match z.score(member) {
            Some(cur) => {
                if f.nx {
                    continue;
                }
                if f.incr {
                    score += cur;
                    if score.is_nan() {
                        nan = true;
                        break;
                    }
                }
                if (f.lt && score >= cur) || (f.gt && score <= cur) {
                    continue;
                }
                last = score;
                processed += 1;
                if score != cur {
                    z.insert(member, score);
                    updated += 1;
                }
            }
            None => {
                if f.xx {
                    continue;
                }
                z.insert(member, score);
                last = score;
                added += 1;
                processed += 1;
            }
        }
    }
    let empty = z.is_empty();
    if empty {
        // Only an INCR that failed on a new key can leave it empty.
        ctx.db().remove(&key);
    }
    if added + updated > 0 {
        ctx.engine.touch(db, &key);
        ctx.engine.signal_key_ready(db, &key);
        ctx.notify(EventClass::ZSet, event, &key);
    }
    if nan {
        return Reply::error(msg::ZSCORE_NAN).into();
    }
    if f.incr {
        return if processed > 0 {
            Reply::Double(last)
        } else {
            Reply::Null
        }
        .into();
    }
    Reply::Int(if f.ch { added + updated } else { added }).into()
}

pub fn zrem(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let db = ctx.client.db;
    let members = &ctx.args[2..];
    let (removed, empty) = match ctx.lookup(&key) {
        None => return Reply::Int(0).into(),
        Some(Value::ZSet(z)) => {
            let n = members.iter().filter(|m| z.remove(m).is_some()).count();
            (n, z.is_empty())
        }
        Some(_) => return wrongtype(),
    };
    if removed > 0 {
        after_removal(ctx, db, &key, "zrem", empty);
    }
    Reply::Int(removed as i64).into()
}

/// Bookkeeping after members were removed from `key`: WATCH, events, the key gone if empty.
fn after_removal(ctx: &mut Ctx, db: usize, key: &Bytes, event: &str, empty: bool) {
    if empty {
        ctx.db().remove(key);
    }
    ctx.engine.touch(db, key);
    ctx.notify(EventClass::ZSet, event, key);
    if empty {
        ctx.notify(EventClass::Generic, "del", key);
    }
}

pub fn zcard(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    match read(ctx, &key) {
        Ok(z) => Reply::Int(z.map_or(0, |z| z.len() as i64)).into(),
        Err(o) => o,
    }
}

pub fn zscore(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let member = ctx.args[2].clone();
    match read(ctx, &key) {
        Ok(z) => z
            .and_then(|z| z.score(&member))
            .map_or(Reply::Null, Reply::Double)
            .into(),
        Err(o) => o,
    }
}

pub fn zmscore(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let members = ctx.args[2..].to_vec();
    match read(ctx, &key) {
        Ok(z) => Reply::Array(
            members
                .iter()
                .map(|m| {
                    z.as_ref()
                        .and_then(|z| z.score(m))
                        .map_or(Reply::Null, Reply::Double)
                })
                .collect(),
        )
        .into(),
        Err(o) => o,
    }
}

fn rank(ctx: &mut Ctx, rev: bool) -> Outcome {
    let key = ctx.args[1].clone();
    let member = ctx.args[2].clone();
    match read(ctx, &key) {
        Ok(Some(z)) => match z.rank(&member) {
            Some(r) if rev => Reply::Int((z.len() - 1 - r) as i64).into(),
            Some(r) => Reply::Int(r as i64).into(),
            None => Reply::Null.into(),
        },
        Ok(None) => Reply::Null.into(),
        Err(o) => o,
    }
}

pub fn zrank(ctx: &mut Ctx) -> Outcome {
    rank(ctx, false)
}

pub fn zrevrank(ctx: &mut Ctx) -> Outcome {
    rank(ctx, true)
}

pub fn zcount(ctx: &mut Ctx) -> Outcome {
    let range = match score_range(&ctx.args[2], &ctx.args[3]) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    let key = ctx.args[1].clone();
    match read(ctx, &key) {
        Ok(z) => Reply::Int(z.map_or(0, |z| {
            let (a, b) = z.score_span(&range);
            (b - a) as i64
        }))
        .into(),
        Err(o) => o,
    }
}

pub fn zlexcount(ctx: &mut Ctx) -> Outcome {
    let range = match lex_range(&ctx.args[2], &ctx.args[3]) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    let key = ctx.args[1].clone();
    match read(ctx, &key) {
        Ok(z) => Reply::Int(z.map_or(0, |z| {
            let (a, b) = z.lex_span(&range, false);
            (b - a) as i64
        }))
        .into(),
        Err(o) => o,
    }
}

// ---------------------------------------------------------------------------------------
// Ranges

#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    Auto,
    Rank,
    Score,
    Lex,
}

/// The range a ZRANGE-family command asked for, parsed.
enum Span {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// Selects the entries of `z` a range asks for, in reply order.
fn select(z: &ZSet, span: &Span, rev: bool, offset: i64, limit: i64) -> Vec<(Bytes, f64)> {
    let len = z.len() as i64;
    match span {
        Span::Rank(start, end) => {
            let mut start = if *start < 0 { len + start } else { *start };
            let mut end = if *end < 0 { len + end } else { *end };
            start = start.max(0);
            if start > end || start >= len {
                return Vec::new();
            }
            end = end.min(len - 1);
            if rev {
                let mut v = z.range((len - 1 - end) as usize, (len - start) as usize);
                v.reverse();
                v
            } else {
                z.range(start as usize, end as usize + 1)
            }
        }
        Span::Score(_) | Span::Lex(_) => {
            let (a, b) = match span {
                Span::Score(r) => z.score_span(r),
                Span::Lex(r) => z.lex_span(r, rev),
                Span::Rank(..) => (0, 0),
            };
            // A negative offset skips everything, a negative limit means no limit.
            if offset < 0 {
                return Vec::new();
            }
            let n = b - a;
            let skip = (offset as usize).min(n);
            let take = if limit < 0 {
                n - skip
            } else {
                (limit as usize).min(n - skip)
            };
            if rev {
                let mut v = z.range(b - skip - take, b - skip);
                v.reverse();
                v
            } else {
                z.range(a + skip, a + skip + take)
            }
        }
    }
}

/// The ZRANGE family. `at` is the index of the source key; `dest` is ZRANGESTORE's
/// destination; `by` and `rev` are fixed by the legacy commands (`None` lets ZRANGE's
/// options choose).
fn zrange_generic(
    ctx: &mut Ctx,
    at: usize,
    dest: Option<Bytes>,
    fixed_by: Option<By>,
    fixed_rev: Option<bool>,
) -> Outcome {
    let args = ctx.args;
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut by = fixed_by.unwrap_or(By::Auto);
    let mut rev = fixed_rev;
    let mut j = at + 3;
    while j < args.len() {
        let a = &args[j];
        let left = args.len() - j - 1;
        if dest.is_none() && a.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
        } else if a.eq_ignore_ascii_case(b"limit") && left >= 2 {
            match (int_arg(&args[j + 1]), int_arg(&args[j + 2])) {
                (Ok(o), Ok(l)) => (offset, limit) = (o, l),
                (Err(e), _) | (_, Err(e)) => return e.into(),
            }
            j += 2;
        } else if rev.is_none() && a.eq_ignore_ascii_case(b"rev") {
            rev = Some(true);
        } else if by == By::Auto && a.eq_ignore_ascii_case(b"bylex") {
            by = By::Lex;
        } else if by == By::Auto && a.eq_ignore_ascii_case(b"byscore") {
            by = By::Score;
        } else {
            return Reply::error(msg::SYNTAX).into();
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if by == By::Auto {
        by = By::Rank;
    }
    if limit != -1 && by == By::Rank {
        return Reply::error(msg::ZRANGE_LIMIT).into();
    }
    if withscores && by == By::Lex {
        return Reply::error(msg::ZRANGE_LEX_WITHSCORES).into();
    }
    let (mut min, mut max) = (&args[at + 1], &args[at + 2]);
    if rev && by != By::Rank {
        // Score and lex ranges are given as max then min when reversed.
        std::mem::swap(&mut min, &mut max);
    }
    let span = match by {
        By::Score => match score_range(min, max) {
            Ok(r) => Span::Score(r),
            Err(e) => return e.into(),
        },
        By::Lex => match lex_range(min, max) {
            Ok(r) => Span::Lex(r),
            Err(e) => return e.into(),
        },
        _ => match (int_arg(min), int_arg(max)) {
            (Ok(a), Ok(b)) => Span::Rank(a, b),
            (Err(e), _) | (_, Err(e)) => return e.into(),
        },
    };
    let key = args[at].clone();
    let items = match read(ctx, &key) {
        Ok(Some(z)) => select(z, &span, rev, offset, limit),
        Ok(None) => Vec::new(),
        Err(o) => return o,
    };
    match dest {
        Some(dest) => {
            let mut z = ZSet::new();
            for (m, s) in &items {
                z.insert(m, *s);
            }
            Reply::Int(store(ctx, &dest, z, "zrangestore") as i64).into()
        }
        None => scored(items, withscores, ctx.client.proto).into(),
    }
}

pub fn zrange(ctx: &mut Ctx) -> Outcome {
    zrange_generic(ctx, 1, None, None, None)
}

pub fn zrangestore(ctx: &mut Ctx) -> Outcome {
    let dest = ctx.args[1].clone();
    zrange_generic(ctx, 2, Some(dest), None, None)
}

pub fn zrevrange(ctx: &mut Ctx) -> Outcome {
    zrange_generic(ctx, 1, None, Some(By::Rank), Some(true))
}

pub fn zrangebyscore(ctx: &mut Ctx) -> Outcome {
    zrange_generic(ctx, 1, None, Some(By::Score), Some(false))
}

pub fn zrevrangebyscore(ctx: &mut Ctx) -> Outcome {
    zrange_generic(ctx, 1, None, Some(By::Score), Some(true))
}

pub fn zrangebylex(ctx: &mut Ctx) -> Outcome {
    zrange_generic(ctx, 1, None, Some(By::Lex), Some(false))
}

pub fn zrevrangebylex(ctx: &mut Ctx) -> Outcome {
    zrange_generic(ctx, 1, None, Some(By::Lex), Some(true))
}

fn remrange(ctx: &mut Ctx, by: By, event: &str) -> Outcome {
    let span = match by {
        By::Score => match score_range(&ctx.args[2], &ctx.args[3]) {
            Ok(r) => Span::Score(r),
            Err(e) => return e.into(),
        },
        By::Lex => match lex_range(&ctx.args[2], &ctx.args[3]) {
            Ok(r) => Span::Lex(r),
            Err(e) => return e.into(),
        },
        _ => match (int_arg(&ctx.args[2]), int_arg(&ctx.args[3])) {
            (Ok(a), Ok(b)) => Span::Rank(a, b),
            (Err(e), _) | (_, Err(e)) => return e.into(),
        },
    };
    let key = ctx.args[1].clone();
    let db = ctx.client.db;
    let (removed, empty) = match read(ctx, &key) {
        Ok(Some(z)) => {
            let len = z.len() as i64;
            let (a, b) = match &span {
                Span::Score(r) => z.score_span(r),
                Span::Lex(r) => z.lex_span(r, false),
                Span::Rank(start, end) => {
                    let start = (if *start < 0 { len + start } else { *start }).max(0);
                    let end = (if *end < 0 { len + end } else { *end }).min(len - 1);
                    if start > end || start >= len {
                        (0, 0)
                    } else {
                        (start as usize, end as usize + 1)
                    }
                }
            };
            let n = z.remove_range(a, b).len();
            (n, z.is_empty())
        }
        Ok(None) => return Reply::Int(0).into(),
        Err(o) => return o,
    };
    if removed > 0 {
        after_removal(ctx, db, &key, event, empty);
    }
    Reply::Int(removed as i64).into()
}

pub fn zremrangebyrank(ctx: &mut Ctx) -> Outcome {
    remrange(ctx, By::Rank, "zremrangebyrank")
}

pub fn zremrangebyscore(ctx: &mut Ctx) -> Outcome {
    remrange(ctx, By::Score, "zremrangebyscore")
}

pub fn zremrangebylex(ctx: &mut Ctx) -> Outcome {
    remrange(ctx, By::Lex, "zremrangebylex")
}

// ---------------------------------------------------------------------------------------
// Pops

fn pop(ctx: &mut Ctx, max: bool) -> Outcome {
    if ctx.args.len() > 3 {
        return Reply::error(msg::SYNTAX).into();
    }
    let count = match ctx.args.get(2) {
        None => None,
        Some(a) => match parse_i64(a) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return Reply::error(msg::COUNT_POSITIVE).into(),
        },
    };
    let key = ctx.args[1].clone();
    match read(ctx, &key) {
        Ok(Some(_)) => {}
        Ok(None) => return Reply::Array(vec![]).into(),
        Err(o) => return o,
    }
    let db = ctx.client.db;
    let items = ctx.engine.zpop(db, &key, max, count.unwrap_or(1));
    // Without COUNT the reply is one flat pair in both protocols.
    let nested = count.is_some() && ctx.client.proto == Protocol::Resp3;
    scored(
        items,
        true,
        if nested { Protocol::Resp3 } else { Protocol::Resp2 },
    )
    .into()
}

pub fn zpopmin(ctx: &mut Ctx) -> Outcome {
    pop(ctx, false)
}

pub fn zpopmax(ctx: &mut Ctx) -> Outcome {
    pop(ctx, true)
}

/// Pops from the first non-empty sorted set among `keys`; `Ok(None)` if all are empty.
fn mpop_now(ctx: &mut Ctx, keys: &[Bytes], max: bool, count: usize) -> Result<Option<Reply>, Outcome> {
    for key in keys {
        if read(ctx, key)?.is_some() {
            let db = ctx.client.db;
            let items = ctx.engine.zpop(db, key, max, count);
            return Ok(Some(Reply::Array(vec![Reply::Bulk(key.clone()), pairs(items)])));
        }
    }
    Ok(None)
}

/// `MIN` or `MAX` of ZMPOP/BZMPOP: whether to pop the highest scores.
fn min_max(arg: &[u8]) -> Result<bool, Reply> {
    if arg.eq_ignore_ascii_case(b"min") {
        Ok(false)
    } else if arg.eq_ignore_ascii_case(b"max") {
        Ok(true)
    } else {
        Err(Reply::error(msg::SYNTAX))
    }
}

pub fn zmpop(ctx: &mut Ctx) -> Outcome {
    super::multi_pop(ctx, false, min_max, mpop_now, |max, count| BlockOp::ZMPop {
        max,
        count,
    })
}

pub fn bzmpop(ctx: &mut Ctx) -> Outcome {
    super::multi_pop(ctx, true, min_max, mpop_now, |max, count| BlockOp::ZMPop {
        max,
        count,
    })
}

fn bpop(ctx: &mut Ctx, max: bool) -> Outcome {
    let n = ctx.args.len();
    let timeout = match timeout_arg(&ctx.args[n - 1]) {
        Ok(t) => t,
        Err(e) => return e.into(),
    };
    let keys = ctx.args[1..n - 1].to_vec();
    for key in &keys {
        match read(ctx, key) {
            Err(o) => return o,
            Ok(None) => continue,
            Ok(Some(_)) => {
                let db = ctx.client.db;
                let mut items = ctx.engine.zpop(db, key, max, 1);
                if let Some((m, s)) = items.pop() {
                    return Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(m), Reply::Double(s)])
                        .into();
                }
            }
        }
    }
    if ctx.nested {
        return Reply::NullArray.into();
    }
    Outcome::Block {
        keys,
        op: BlockOp::ZPop { max },
        timeout,
    }
}

pub fn bzpopmin(ctx: &mut Ctx) -> Outcome {
    bpop(ctx, false)
}

pub fn bzpopmax(ctx: &mut Ctx) -> Outcome {
    bpop(ctx, true)
}

// ---------------------------------------------------------------------------------------
// ZRANDMEMBER, ZSCAN

pub fn zrandmember(ctx: &mut Ctx) -> Outcome {
    let args = ctx.args;
    let count = match args.get(2) {
        None => None,
        Some(a) => match parse_i64(a) {
            None => return Reply::error(msg::NOT_INT).into(),
            Some(i64::MIN) => return Reply::error(msg::RANK_OUT_OF_RANGE).into(),
            Some(c) => Some(c),
        },
    };
    if args.len() > 4 || (args.len() == 4 && !args[3].eq_ignore_ascii_case(b"withscores")) {
        return Reply::error(msg::SYNTAX).into();
    }
    let withscores = args.len() == 4;
    if withscores && count.is_some_and(|c| !(-i64::MAX / 2..=i64::MAX / 2).contains(&c)) {
        return Reply::error(msg::OUT_OF_RANGE).into();
    }
    let key = args[1].clone();
    let proto = ctx.client.proto;
    let z = match read(ctx, &key) {
        Ok(Some(z)) => z,
        Ok(None) => {
            return match count {
                None => Reply::Null,
                Some(_) => Reply::Array(vec![]),
            }
            .into()
        }
        Err(o) => return o,
    };
    let len = z.len();
    let mut rng = rand::thread_rng();
    let Some(count) = count else {
        let r = rng.gen_range(0..len);
        return z
            .range(r, r + 1)
            .pop()
            .map_or(Reply::Null, |(m, _)| Reply::Bulk(m))
            .into();
    };
    if let Err(e) = super::args::check_repeated_picks(count) {
        return e.into();
    }
    let items = if count < 0 && count.unsigned_abs() as usize >= len {
        // With repetitions, in random order; this many picks copy the set once and pick from
        // the copy (finding one rank walks a small set from its start).
        let all = z.range(0, len);
        (0..count.unsigned_abs())
            .map(|_| all[rng.gen_range(0..len)].clone())
            .collect()
    } else if count < 0 {
        (0..count.unsigned_abs())
            .map(|_| {
                let r = rng.gen_range(0..len);
                z.range(r, r + 1).remove(0)
            })
            .collect()
    } else if count as usize >= len {
        // The whole set, walked from the end as Redis's set-operation iterator walks it.
        let mut all = z.range(0, len);
        all.reverse();
        all
    } else {
        rand::seq::index::sample(&mut rng, len, count as usize)
            .into_iter()
            .map(|r| z.range(r, r + 1).remove(0))
            .collect()
    };
    scored(items, withscores, proto).into()
}

pub fn zscan(ctx: &mut Ctx) -> Outcome {
    let args = ctx.args;
    let Some(cursor) = std::str::from_utf8(&args[2])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Reply::error(msg::INVALID_CURSOR).into();
    };
    let key = args[1].clone();
    let empty = || Reply::Array(vec![Reply::bulk("0"), Reply::Array(vec![])]);
    match read(ctx, &key) {
        Ok(Some(_)) => {}
        Ok(None) => return empty().into(),
        Err(o) => return o,
    }
    let mut pattern = None;
    let mut i = 3;
    while i < args.len() {
        let Some(v) = args.get(i + 1) else {
            return Reply::error(msg::SYNTAX).into();
        };
        if args[i].eq_ignore_ascii_case(b"count") {
            match parse_i64(v) {
                None => return Reply::error(msg::NOT_INT).into(),
                Some(c) if c < 1 => return Reply::error(msg::SYNTAX).into(),
                Some(_) => {}
            }
        } else if args[i].eq_ignore_ascii_case(b"match") {
            pattern = Some(v.clone());
        } else {
            return Reply::error(msg::SYNTAX).into();
        }
        i += 2;
    }
    let _ = cursor;
    let Ok(Some(z)) = read(ctx, &key) else {
        return empty().into();
    };
    // The whole set in one reply with cursor 0, as Redis answers for a small set: a set that
    // changes between calls can then never make an element be missed.
    let mut out = Vec::new();
    for (m, s) in z.iter() {
        if pattern.as_ref().is_some_and(|p| !glob_match(p, m, false)) {
            continue;
        }
        out.push(Reply::bulk(m));
        out.push(Reply::bulk(crate::reply::format_double(s)));
    }
    Reply::Array(vec![Reply::bulk("0"), Reply::Array(out)]).into()
}

// ---------------------------------------------------------------------------------------
// Unions, intersections, differences

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(agg: Aggregate, acc: f64, v: f64) -> f64 {
    match agg {
        Aggregate::Sum => {
            let s = acc + v;
            // inf + -inf: Redis keeps 0 rather than NaN.
            if s.is_nan() {
                0.0
            } else {
                s
            }
        }
        Aggregate::Min => acc.min(v),
        Aggregate::Max => acc.max(v),
    }
}

/// `numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES] [LIMIT n]`
/// for the whole family: computes the result (or, for ZINTERCARD, its size).
fn setop(ctx: &mut Ctx, at: usize, op: SetOp, dest: Option<Bytes>, card_only: bool, name: &str) -> Outcome {
    let args = ctx.args;
    let numkeys = match int_arg(&args[at]) {
        Ok(n) => n,
        Err(e) => return e.into(),
    };
    if numkeys < 1 {
        return Reply::error(msg::no_input_keys(name)).into();
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - at - 1 {
        return Reply::error(msg::SYNTAX).into();
    }
    let keys = args[at + 1..at + 1 + numkeys].to_vec();
    // Inputs, read before the options as Redis does (a wrong type wins over a bad option).
    let mut inputs: Vec<Vec<(Bytes, f64)>> = Vec::with_capacity(numkeys);
    for k in &keys {
        // A plain set is an input whose members all score 1, as in Redis.
        if let Some(Value::Set(set)) = ctx.lookup(k) {
            inputs.push(set.iter().map(|m| (Bytes::copy_from_slice(&m), 1.0)).collect());
            continue;
        }
        match read(ctx, k) {
            Ok(Some(z)) => inputs.push(z.iter().map(|(m, s)| (Bytes::copy_from_slice(m), s)).collect()),
            Ok(None) => inputs.push(Vec::new()),
            Err(o) => return o,
        }
    }
    let mut weights = vec![1.0; numkeys];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0usize;
    let mut j = at + 1 + numkeys;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != SetOp::Diff && !card_only && remaining > numkeys && a.eq_ignore_ascii_case(b"weights") {
            for (w, arg) in weights.iter_mut().zip(&args[j + 1..]) {
                match score_arg(arg) {
                    Some(v) => *w = v,
                    None => return Reply::error(msg::WEIGHT_NOT_FLOAT).into(),
                }
            }
            j += 1 + numkeys;
        } else if op != SetOp::Diff && !card_only && remaining >= 2 && a.eq_ignore_ascii_case(b"aggregate") {
            let v = &args[j + 1];
            agg = if v.eq_ignore_ascii_case(b"sum") {
                Aggregate::Sum
            } else if v.eq_ignore_ascii_case(b"min") {
                Aggregate::Min
            } else if v.eq_ignore_ascii_case(b"max") {
                Aggregate::Max
            } else {
                return Reply::error(msg::SYNTAX).into();
            };
            j += 2;
        } else if dest.is_none() && !card_only && a.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && a.eq_ignore_ascii_case(b"limit") {
            limit = match parse_i64(&args[j + 1]) {
                Some(l) if l >= 0 => l as usize,
                _ => return Reply::error(msg::LIMIT_NEGATIVE).into(),
            };
            j += 2;
        } else {
            return Reply::error(msg::SYNTAX).into();
        }
    }
    let weighted = |s: f64, w: f64| {
        let v = s * w;
        if v.is_nan() {
            0.0
        } else {
            v
        }
    };
    let mut result = ZSet::new();
    match op {
        SetOp::Union => {
            let mut acc: std::collections::HashMap<Bytes, f64, ahash::RandomState> = Default::default();
            let mut order: Vec<usize> = (0..numkeys).collect();
            order.sort_by_key(|&i| inputs[i].len());
            for i in order {
                for (m, s) in &inputs[i] {
                    let v = weighted(*s, weights[i]);
                    acc.entry(m.clone())
                        .and_modify(|a| *a = aggregate(agg, *a, v))
                        .or_insert(v);
                }
            }
            for (m, s) in acc {
                result.insert(&m, s);
            }
        }
        SetOp::Inter => {
            let mut order: Vec<usize> = (0..numkeys).collect();
            order.sort_by_key(|&i| inputs[i].len());
            let lookups: Vec<std::collections::HashMap<&Bytes, f64, ahash::RandomState>> = inputs
                .iter()
                .map(|v| v.iter().map(|(m, s)| (m, *s)).collect())
                .collect();
            let first = order[0];
            'members: for (m, s) in &inputs[first] {
                let mut v = weighted(*s, weights[first]);
                for &o in &order[1..] {
                    match lookups[o].get(m) {
                        Some(s) => v = aggregate(agg, v, weighted(*s, weights[o])),
                        None => continue 'members,
                    }
                }
                if card_only {
                    result.insert(m, 0.0);
                    if limit > 0 && result.len() >= limit {
                        break;
                    }
                } else {
                    result.insert(m, v);
                }
            }
        }
        SetOp::Diff => {
            let others: std::collections::HashSet<&Bytes, ahash::RandomState> =
                inputs[1..].iter().flatten().map(|(m, _)| m).collect();
            for (m, s) in &inputs[0] {
                if !others.contains(m) {
                    result.insert(m, *s);
                }
            }
        }
    }
    if card_only {
        return Reply::Int(result.len() as i64).into();
    }
    match dest {
        Some(dest) => {
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                SetOp::Diff => "zdiffstore",
            };
            Reply::Int(store(ctx, &dest, result, event) as i64).into()
        }
        None => {
            let len = result.len();
            scored(result.range(0, len), withscores, ctx.client.proto).into()
        }
    }
}

pub fn zunion(ctx: &mut Ctx) -> Outcome {
    setop(ctx, 1, SetOp::Union, None, false, "zunion")
}

pub fn zinter(ctx: &mut Ctx) -> Outcome {
    setop(ctx, 1, SetOp::Inter, None, false, "zinter")
}

pub fn zdiff(ctx: &mut Ctx) -> Outcome {
    setop(ctx, 1, SetOp::Diff, None, false, "zdiff")
}

pub fn zunionstore(ctx: &mut Ctx) -> Outcome {
    let dest = ctx.args[1].clone();
    setop(ctx, 2, SetOp::Union, Some(dest), false, "zunionstore")
}

pub fn zinterstore(ctx: &mut Ctx) -> Outcome {
    let dest = ctx.args[1].clone();
    setop(ctx, 2, SetOp::Inter, Some(dest), false, "zinterstore")
}

pub fn zdiffstore(ctx: &mut Ctx) -> Outcome {
    let dest = ctx.args[1].clone();
    setop(ctx, 2, SetOp::Diff, Some(dest), false, "zdiffstore")
}

pub fn zintercard(ctx: &mut Ctx) -> Outcome {
    setop(ctx, 1, SetOp::Inter, None, true, "zintercard")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse_like_redis() {
        assert_eq!(
            score_bound(b"(1.5"),
            Some(ScoreBound {
                value: 1.5,
                exclusive: true
            })
        );
        assert_eq!(score_bound(b"-inf").map(|b| b.value), Some(f64::NEG_INFINITY));
        assert_eq!(
            score_bound(b"("),
            Some(ScoreBound {
                value: 0.0,
                exclusive: true
            })
        );
        assert_eq!(score_bound(b"x"), None);
        assert_eq!(lex_bound(b"-"), Some(LexBound::NegInf));
        assert_eq!(lex_bound(b"-a"), None);
        assert_eq!(lex_bound(b""), None);
        assert_eq!(
            lex_bound(b"(a"),
            Some(LexBound::Exclusive(Bytes::from_static(b"a")))
        );
        assert_eq!(score_arg(b"1e400"), None);
        assert_eq!(score_arg(b"+inf"), Some(f64::INFINITY));
    }

    #[test]
    fn scores_print_as_redis_prints_them() {
        use crate::reply::format_double as f;
        assert_eq!(f(1.0), "1");
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(0.1), "0.10000000000000001");
        assert_eq!(f(1e20), "1e+20");
        assert_eq!(f(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(f(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(f(-0.0), "-0");
        assert_eq!(f(f64::NEG_INFINITY), "-inf");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(-2.5), "-2.5");
        // Integers, on both sides of the shortcut for those below 2^53.
        assert_eq!(f(-7.0), "-7");
        assert_eq!(f(1700000000123.0), "1700000000123");
        assert_eq!(f(9007199254740991.0), "9007199254740991");
        assert_eq!(f(9007199254740992.0), "9007199254740992");
        assert_eq!(f(-9007199254740992.0), "-9007199254740992");
        assert_eq!(f(1e16), "10000000000000000");
        assert_eq!(f(1e17), "1e+17");
        for n in [1i64, 12, 999, 1 << 40, (1 << 53) - 1] {
            for v in [n, -n] {
                let slow = format!("{:.prec$}", v as f64, prec = 0);
                assert_eq!(f(v as f64), slow);
            }
        }
    }
}
