//! String and counter commands.

use super::keys::expiry_at;
use super::{int_arg, parse_f64, parse_i64, Ctx, Outcome};
use crate::db::Value;
use crate::engine::EventClass;
use crate::reply::{msg, Reply};
use bytes::Bytes;

fn wrongtype() -> Outcome {
    Reply::error(msg::WRONGTYPE).into()
}

/// The string at `key`: `Ok(None)` if absent, `Err` if another type.
fn get_str(ctx: &mut Ctx, key: &Bytes) -> Result<Option<Bytes>, Outcome> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrongtype()),
    }
}

/// Stores a string, replacing any value; clears the expiry unless `keep_ttl`.
fn store_str(ctx: &mut Ctx, key: &Bytes, value: Bytes, keep_ttl: bool) {
    if !ctx.engine.keyspace[ctx.client.db].map.contains_key(key) {
        ctx.notify(EventClass::New, "new", key);
    }
    let db = ctx.client.db;
    let d = &mut ctx.engine.keyspace[db];
    if !keep_ttl {
        d.clear_expiry(key);
    }
    if let Some(Value::List(l)) = d.map.insert(Bytes::copy_from_slice(key), Value::Str(value)) {
        l.stats.record_length(0, 0);
    }
    ctx.engine.touch(db, key);
}

pub fn get(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    match get_str(ctx, &key) {
        Ok(v) => v.map_or(Reply::Null, Reply::Bulk).into(),
        Err(o) => o,
    }
}

pub fn set(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let value = Bytes::copy_from_slice(&ctx.args[2]);
    let (mut nx, mut xx, mut get, mut keep_ttl) = (false, false, false, false);
    let mut expire: Option<u64> = None;
    let mut i = 3;
    while i < ctx.args.len() {
        let opt = ctx.args[i].to_ascii_lowercase();
        let next = ctx.args.get(i + 1);
        match opt.as_slice() {
            b"nx" if !xx => nx = true,
            b"xx" if !nx => xx = true,
            b"get" => get = true,
            b"keepttl" if expire.is_none() => keep_ttl = true,
            b"ex" | b"px" | b"exat" | b"pxat" if expire.is_none() && !keep_ttl && next.is_some() => {
                let (unit, abs) = match opt.as_slice() {
                    b"ex" => (1000, false),
                    b"px" => (1, false),
                    b"exat" => (1000, true),
                    _ => (1, true),
                };
                let amount = next.cloned().unwrap_or_default();
                match expiry_at(ctx, &amount, unit, abs, "set") {
                    Ok(at) => expire = Some(at),
                    Err(e) => return e.into(),
                }
                i += 1;
            }
            _ => return Reply::error(msg::SYNTAX).into(),
        }
        i += 1;
    }
    let old = match get_str(ctx, &key) {
        Ok(v) => v,
        Err(o) if get => return o,
        Err(_) => None,
    };
    let exists = ctx.lookup(&key).is_some();
    if (nx && exists) || (xx && !exists) {
        return if get {
            old.map_or(Reply::Null, Reply::Bulk)
        } else {
            Reply::Null
        }
        .into();
    }
    store_str(ctx, &key, value, keep_ttl);
    ctx.notify(EventClass::String, "set", &key);
    if let Some(at) = expire {
        let db = ctx.client.db;
        ctx.engine.keyspace[db].set_expiry(&key, at);
        ctx.notify(EventClass::Generic, "expire", &key);
    }
    if get {
        old.map_or(Reply::Null, Reply::Bulk).into()
    } else {
        Reply::Ok.into()
    }
}

pub fn setnx(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    if ctx.lookup(&key).is_some() {
        return Reply::Int(0).into();
    }
    let v = Bytes::copy_from_slice(&ctx.args[2]);
    store_str(ctx, &key, v, false);
    ctx.notify(EventClass::String, "set", &key);
    Reply::Int(1).into()
}

fn setex_impl(ctx: &mut Ctx, unit: i64, name: &str) -> Outcome {
    let key = ctx.args[1].clone();
    let at = match expiry_at(ctx, &ctx.args[2].clone(), unit, false, name) {
        Ok(a) => a,
        Err(e) => return e.into(),
    };
    let v = Bytes::copy_from_slice(&ctx.args[3]);
    store_str(ctx, &key, v, false);
    ctx.notify(EventClass::String, "set", &key);
    let db = ctx.client.db;
    ctx.engine.keyspace[db].set_expiry(&key, at);
    ctx.notify(EventClass::Generic, "expire", &key);
    Reply::Ok.into()
}

pub fn setex(ctx: &mut Ctx) -> Outcome {
    setex_impl(ctx, 1000, "setex")
}

pub fn psetex(ctx: &mut Ctx) -> Outcome {
    setex_impl(ctx, 1, "psetex")
}

pub fn getset(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let old = match get_str(ctx, &key) {
        Ok(v) => v,
        Err(o) => return o,
    };
    let v = Bytes::copy_from_slice(&ctx.args[2]);
    store_str(ctx, &key, v, false);
    ctx.notify(EventClass::String, "set", &key);
    old.map_or(Reply::Null, Reply::Bulk).into()
}

pub fn getdel(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    match get_str(ctx, &key) {
        Ok(Some(v)) => {
            let db = ctx.client.db;
            ctx.engine.keyspace[db].remove(&key);
            ctx.engine.touch(db, &key);
            ctx.notify(EventClass::Generic, "del", &key);
            Reply::Bulk(v).into()
        }
        Ok(None) => Reply::Null.into(),
        Err(o) => o,
    }
}

pub fn getex(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let mut expire: Option<u64> = None;
    let mut persist = false;
    let mut i = 2;
    while i < ctx.args.len() {
        let opt = ctx.args[i].to_ascii_lowercase();
        let next = ctx.args.get(i + 1).cloned();
        match (opt.as_slice(), next) {
            (b"persist", _) if expire.is_none() && !persist => persist = true,
            (b"ex" | b"px" | b"exat" | b"pxat", Some(amount)) if expire.is_none() && !persist => {
                let (unit, abs) = match opt.as_slice() {
                    b"ex" => (1000, false),
                    b"px" => (1, false),
                    b"exat" => (1000, true),
                    _ => (1, true),
                };
                match expiry_at(ctx, &amount, unit, abs, "getex") {
                    Ok(at) => expire = Some(at),
                    Err(e) => return e.into(),
                }
                i += 1;
            }
            _ => return Reply::error(msg::SYNTAX).into(),
        }
        i += 1;
    }
    let v = match get_str(ctx, &key) {
        Ok(Some(v)) => v,
        Ok(None) => return Reply::Null.into(),
        Err(o) => return o,
    };
    let db = ctx.client.db;
    if let Some(at) = expire {
        if at <= ctx.now_ms {
            ctx.engine.keyspace[db].remove(&key);
            ctx.notify(EventClass::Generic, "del", &key);
        } else {
            ctx.engine.keyspace[db].set_expiry(&key, at);
            ctx.notify(EventClass::Generic, "expire", &key);
        }
        ctx.engine.touch(db, &key);
    } else if persist && ctx.engine.keyspace[db].clear_expiry(&key) {
        ctx.engine.touch(db, &key);
        ctx.notify(EventClass::Generic, "persist", &key);
    }
    Reply::Bulk(v).into()
}

pub fn mget(ctx: &mut Ctx) -> Outcome {
    let mut out = Vec::with_capacity(ctx.args.len() - 1);
    for i in 1..ctx.args.len() {
        let key = ctx.args[i].clone();
        out.push(match ctx.lookup(&key) {
            Some(Value::Str(s)) => Reply::Bulk(s.clone()),
            _ => Reply::Null,
        });
    }
    Reply::Array(out).into()
}

pub fn mset(ctx: &mut Ctx) -> Outcome {
    if ctx.args.len().is_multiple_of(2) {
        return Reply::error(msg::wrong_args("mset")).into();
    }
    for pair in ctx.args[1..].to_vec().chunks(2) {
        store_str(ctx, &pair[0], Bytes::copy_from_slice(&pair[1]), false);
        ctx.notify(EventClass::String, "set", &pair[0]);
    }
    Reply::Ok.into()
}

pub fn msetnx(ctx: &mut Ctx) -> Outcome {
    if ctx.args.len().is_multiple_of(2) {
        return Reply::error(msg::wrong_args("msetnx")).into();
    }
    let pairs = ctx.args[1..].to_vec();
    for pair in pairs.chunks(2) {
        if ctx.lookup(&pair[0]).is_some() {
            return Reply::Int(0).into();
        }
    }
    for pair in pairs.chunks(2) {
        store_str(ctx, &pair[0], Bytes::copy_from_slice(&pair[1]), false);
        ctx.notify(EventClass::String, "set", &pair[0]);
    }
    Reply::Int(1).into()
}

fn incr_by(ctx: &mut Ctx, delta: i64) -> Outcome {
    let key = ctx.args[1].clone();
    let current = match get_str(ctx, &key) {
        Ok(Some(v)) => match parse_i64(&v) {
            Some(n) => n,
            None => return Reply::error(msg::NOT_INT).into(),
        },
        Ok(None) => 0,
        Err(o) => return o,
    };
    let Some(next) = current.checked_add(delta) else {
        return Reply::error(msg::OVERFLOW).into();
    };
    store_str(ctx, &key, Bytes::from(next.to_string()), true);
    ctx.notify(EventClass::String, "incrby", &key);
    Reply::Int(next).into()
}

pub fn incr(ctx: &mut Ctx) -> Outcome {
    incr_by(ctx, 1)
}

pub fn decr(ctx: &mut Ctx) -> Outcome {
    incr_by(ctx, -1)
}

pub fn incrby(ctx: &mut Ctx) -> Outcome {
    match int_arg(&ctx.args[2]) {
        Ok(d) => incr_by(ctx, d),
        Err(e) => e.into(),
    }
}

pub fn decrby(ctx: &mut Ctx) -> Outcome {
    match int_arg(&ctx.args[2]) {
        Ok(i64::MIN) => Reply::error(msg::DECR_OVERFLOW).into(),
        Ok(d) => incr_by(ctx, -d),
        Err(e) => e.into(),
    }
}

/// Formats a float the way Redis's INCRBYFLOAT does: plain decimal, no exponent, no trailing zeros.
pub(super) fn human_float(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e17 {
        return format!("{}", v as i64);
    }
    // Shortest round-trip digits, then expanded out of exponent form.
    let s = format!("{v}");
    if s.contains('e') || s.contains('E') {
        let mut out = format!("{v:.17}");
        while out.ends_with('0') {
            out.pop();
        }
        if out.ends_with('.') {
            out.pop();
        }
        out
    } else {
        s
    }
}

pub fn incrbyfloat(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let Some(delta) = parse_f64(&ctx.args[2]) else {
        return Reply::error(msg::NOT_FLOAT).into();
    };
    let current = match get_str(ctx, &key) {
        Ok(Some(v)) => match parse_f64(&v) {
            Some(n) => n,
            None => return Reply::error(msg::NOT_FLOAT).into(),
        },
        Ok(None) => 0.0,
        Err(o) => return o,
    };
    let next = current + delta;
    if !next.is_finite() {
        return Reply::error(msg::INCR_FLOAT_NAN).into();
    }
    let text = Bytes::from(human_float(next));
    store_str(ctx, &key, text.clone(), true);
    ctx.notify(EventClass::String, "incrbyfloat", &key);
    Reply::Bulk(text).into()
}

pub fn append(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let current = match get_str(ctx, &key) {
        Ok(v) => v,
        Err(o) => return o,
    };
    let mut buf = current.map(|b| b.to_vec()).unwrap_or_default();
    buf.extend_from_slice(&ctx.args[2]);
    if buf.len() > ctx.shared.config.read().proto_max_bulk_len {
        return Reply::error(msg::STRING_TOO_LONG).into();
    }
    let len = buf.len();
    store_str(ctx, &key, Bytes::from(buf), true);
    ctx.notify(EventClass::String, "append", &key);
    Reply::Int(len as i64).into()
}

pub fn strlen(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    match get_str(ctx, &key) {
        Ok(v) => Reply::Int(v.map_or(0, |b| b.len() as i64)).into(),
        Err(o) => o,
    }
}

#[cfg(test)]
mod tests {
    use super::human_float;

    #[test]
    fn floats_print_like_redis() {
        assert_eq!(human_float(3.0), "3");
        assert_eq!(human_float(10.6), "10.6");
        assert_eq!(human_float(-0.5), "-0.5");
        assert_eq!(human_float(5.0e3), "5000");
    }
}
