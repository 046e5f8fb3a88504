//! Generic key commands: DEL, EXISTS, TYPE, KEYS, SCAN, RENAME, EXPIRE family, TTL, PERSIST.

use super::{glob_match, int_arg, parse_i64, Ctx, Outcome};
use crate::db::Value;
use crate::engine::EventClass;
use crate::reply::{msg, Reply};
use bytes::Bytes;

pub fn del(ctx: &mut Ctx) -> Outcome {
    let mut n = 0;
    let db = ctx.client.db;
    for key in &ctx.args[1..] {
        ctx.engine.expire_if_due(db, key, ctx.now_ms);
        if ctx.engine.keyspace[db].remove(key).is_some() {
            ctx.engine.touch(db, key);
            ctx.engine.notify(EventClass::Generic, "del", db, key);
            n += 1;
        }
    }
    Reply::Int(n).into()
}

pub fn exists(ctx: &mut Ctx) -> Outcome {
    let mut n = 0;
    for i in 1..ctx.args.len() {
        let key = ctx.args[i].clone();
        if ctx.lookup(&key).is_some() {
            n += 1;
        }
    }
    Reply::Int(n).into()
}

pub fn type_(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let t = ctx.lookup(&key).map_or("none", |v| v.type_name());
    Reply::status(t).into()
}

pub fn keys(ctx: &mut Ctx) -> Outcome {
    let pattern = ctx.args[1].clone();
    let now = ctx.now_ms;
    let db = ctx.db();
    let all = pattern.as_ref() == b"*";
    let out: Vec<Reply> = db
        .map
        .keys()
        .filter(|k| !db.is_expired(k, now) && (all || glob_match(&pattern, k, false)))
        .map(|k| Reply::Bulk(k.clone()))
        .collect();
    Reply::Array(out).into()
}

/// A key's position in SCAN order: a stable hash, so a cursor survives inserts and deletes.
fn scan_hash(key: &[u8]) -> u64 {
    // Fixed seeds: the order must not change while a scan is in progress.
    let state = ahash::RandomState::with_seeds(1, 2, 3, 4);
    // 0 is the "done" cursor; keep it free.
    state.hash_one(key).max(1)
}

/// SCAN: the cursor is the scan-hash to resume from, so every key present for the whole
/// scan is returned exactly once, whatever changes in between.
pub fn scan(ctx: &mut Ctx) -> Outcome {
    let Some(cursor) = std::str::from_utf8(&ctx.args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Reply::error(msg::INVALID_CURSOR).into();
    };
    let mut pattern: Option<Bytes> = None;
    let mut count: usize = 10;
    let mut type_filter: Option<Bytes> = None;
    let mut i = 2;
    while i < ctx.args.len() {
        let opt = &ctx.args[i];
        let Some(val) = ctx.args.get(i + 1) else {
            return Reply::error(msg::SYNTAX).into();
        };
        if opt.eq_ignore_ascii_case(b"match") {
            pattern = Some(val.clone());
        } else if opt.eq_ignore_ascii_case(b"count") {
            count = match parse_i64(val) {
                None => return Reply::error(msg::NOT_INT).into(),
                Some(c) if c < 1 => return Reply::error(msg::SYNTAX).into(),
                Some(c) => c as usize,
            };
        } else if opt.eq_ignore_ascii_case(b"type") {
            type_filter = Some(val.clone());
        } else {
            return Reply::error(msg::SYNTAX).into();
        }
        i += 2;
    }
    let now = ctx.now_ms;
    let db = ctx.db();
    let mut candidates: Vec<(u64, &Bytes)> = db
        .map
        .keys()
        .map(|k| (scan_hash(k), k))
        .filter(|(h, _)| *h >= cursor.max(1))
        .collect();
    candidates.sort_unstable_by_key(|(h, _)| *h);
    let mut next = 0u64;
    let mut taken = 0;
    let mut out = Vec::new();
    let mut idx = 0;
    while idx < candidates.len() {
        let h = candidates[idx].0;
        if taken >= count {
            next = h;
            break;
        }
        // Keys with equal hashes are returned together so the cursor never splits them.
        while idx < candidates.len() && candidates[idx].0 == h {
            let k = candidates[idx].1;
            taken += 1;
            idx += 1;
            if db.is_expired(k, now) {
                continue;
            }
            if pattern.as_ref().is_some_and(|p| !glob_match(p, k, false)) {
                continue;
            }
            if let Some(t) = &type_filter {
                let kind = db.map.get(k).map_or("none", Value::type_name);
                if !t.eq_ignore_ascii_case(kind.as_bytes()) {
                    continue;
                }
            }
            out.push(Reply::Bulk(k.clone()));
        }
    }
    Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(out)]).into()
}

fn rename_impl(ctx: &mut Ctx, nx: bool) -> Outcome {
    let (src, dst) = (ctx.args[1].clone(), ctx.args[2].clone());
    let db = ctx.client.db;
    if ctx.lookup(&src).is_none() {
        return Reply::error(msg::NO_SUCH_KEY).into();
    }
    if src == dst {
        return if nx { Reply::Int(0) } else { Reply::Ok }.into();
    }
    if nx && ctx.lookup(&dst).is_some() {
        return Reply::Int(0).into();
    }
    let expiry = ctx.engine.keyspace[db].expiry_of(&src);
    let Some(value) = ctx.engine.keyspace[db].remove(&src) else {
        return Reply::error(msg::NO_SUCH_KEY).into();
    };
    ctx.engine.keyspace[db].remove(&dst);
    let value = match value {
        // A renamed list becomes a different queue: it takes the destination's counters.
        Value::List(mut l) => {
            l.retarget(ctx.engine.keyspace.queues.counters(db, &dst));
            let len = l.len();
            l.stats
                .record_push(0, len, l.oldest_us(), crate::metrics::unix_ms());
            Value::List(l)
        }
        v => v,
    };
    let was_list = matches!(value, Value::List(_));
    ctx.engine.keyspace[db]
        .map
        .insert(Bytes::copy_from_slice(&dst), value);
    if let Some(at) = expiry {
        ctx.engine.keyspace[db].set_expiry(&dst, at);
    }
    ctx.engine.touch(db, &src);
    ctx.notify(EventClass::New, "new", &dst);
    ctx.notify(EventClass::Generic, "rename_from", &src);
    ctx.notify(EventClass::Generic, "rename_to", &dst);
    if was_list {
        let len = match ctx.engine.keyspace[db].map.get(&dst) {
            Some(Value::List(l)) => l.len(),
            _ => 0,
        };
        ctx.engine.after_push(db, &dst, 0, len);
    } else {
        ctx.engine.touch(db, &dst);
        // A sorted set renamed onto a key someone waits on serves them, as in Redis.
        ctx.engine.signal_key_ready(db, &dst);
    }
    if nx { Reply::Int(1) } else { Reply::Ok }.into()
}

pub fn rename(ctx: &mut Ctx) -> Outcome {
    rename_impl(ctx, false)
}

pub fn renamenx(ctx: &mut Ctx) -> Outcome {
    rename_impl(ctx, true)
}

/// EXPIRE family. `unit_ms` converts the argument to ms; `absolute` for the *AT variants.
fn expire_impl(ctx: &mut Ctx, unit_ms: i64, absolute: bool, name: &str) -> Outcome {
    let key = ctx.args[1].clone();
    let Some(n) = parse_i64(&ctx.args[2]) else {
        return Reply::error(msg::NOT_INT).into();
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &ctx.args[3..] {
        let o = opt.to_ascii_lowercase();
        match o.as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => return Reply::error(msg::unsupported_option(opt)).into(),
        }
    }
    if nx && (xx || gt || lt) {
        return Reply::error(msg::EXPIRE_NX_AND_XX_GT_LT).into();
    }
    if gt && lt {
        return Reply::error(msg::EXPIRE_GT_AND_LT).into();
    }
    let Some(ms) = n.checked_mul(unit_ms) else {
        return Reply::error(msg::invalid_expire(name)).into();
    };
    let when = if absolute {
        Some(ms)
    } else {
        ms.checked_add(ctx.now_ms as i64)
    };
    let Some(when) = when else {
        return Reply::error(msg::invalid_expire(name)).into();
    };
    if ctx.lookup(&key).is_none() {
        return Reply::Int(0).into();
    }
    let db = ctx.client.db;
    let current = ctx.engine.keyspace[db].expiry_of(&key);
    if (nx && current.is_some()) || (xx && current.is_none()) {
        return Reply::Int(0).into();
    }
    if gt && current.is_none_or(|c| when <= c as i64) {
        return Reply::Int(0).into();
    }
    if lt && current.is_some_and(|c| when >= c as i64) {
        return Reply::Int(0).into();
    }
    if when <= ctx.now_ms as i64 {
        ctx.engine.keyspace[db].remove(&key);
        ctx.notify(EventClass::Generic, "del", &key);
    } else {
        ctx.engine.keyspace[db].set_expiry(&key, when as u64);
        ctx.notify(EventClass::Generic, "expire", &key);
    }
    ctx.engine.touch(db, &key);
    Reply::Int(1).into()
}

pub fn expire(ctx: &mut Ctx) -> Outcome {
    expire_impl(ctx, 1000, false, "expire")
}

pub fn pexpire(ctx: &mut Ctx) -> Outcome {
    expire_impl(ctx, 1, false, "pexpire")
}

pub fn expireat(ctx: &mut Ctx) -> Outcome {
    expire_impl(ctx, 1000, true, "expireat")
}

pub fn pexpireat(ctx: &mut Ctx) -> Outcome {
    expire_impl(ctx, 1, true, "pexpireat")
}

fn ttl_impl(ctx: &mut Ctx, ms: bool) -> Outcome {
    let key = ctx.args[1].clone();
    if ctx.lookup(&key).is_none() {
        return Reply::Int(-2).into();
    }
    let now = ctx.now_ms;
    match ctx.db().expiry_of(&key) {
        None => Reply::Int(-1).into(),
        Some(at) => {
            let left = at.saturating_sub(now) as i64;
            Reply::Int(if ms { left } else { (left + 500) / 1000 }).into()
        }
    }
}

pub fn ttl(ctx: &mut Ctx) -> Outcome {
    ttl_impl(ctx, false)
}

pub fn pttl(ctx: &mut Ctx) -> Outcome {
    ttl_impl(ctx, true)
}

pub fn persist(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    if ctx.lookup(&key).is_none() {
        return Reply::Int(0).into();
    }
    let db = ctx.client.db;
    if ctx.engine.keyspace[db].clear_expiry(&key) {
        ctx.engine.touch(db, &key);
        ctx.notify(EventClass::Generic, "persist", &key);
        Reply::Int(1).into()
    } else {
        Reply::Int(0).into()
    }
}

/// Shared by SET/GETEX: parses an expiry amount into an absolute ms time.
pub(super) fn expiry_at(
    ctx: &Ctx,
    amount: &[u8],
    unit_ms: i64,
    absolute: bool,
    cmd: &str,
) -> Result<u64, Reply> {
    let n = int_arg(amount)?;
    if n <= 0 {
        return Err(Reply::error(msg::invalid_expire(cmd)));
    }
    let ms = n
        .checked_mul(unit_ms)
        .ok_or_else(|| Reply::error(msg::invalid_expire(cmd)))?;
    let at = if absolute {
        Some(ms)
    } else {
        ms.checked_add(ctx.now_ms as i64)
    };
    at.map(|a| a as u64)
        .ok_or_else(|| Reply::error(msg::invalid_expire(cmd)))
}
