//! Type-independent key commands beyond the basics: COPY, RANDOMKEY, EXPIRETIME, PEXPIRETIME,
//! TOUCH, OBJECT and MEMORY. What they need of each type is in `values`.

use super::{parse_i64, values, Ctx, Outcome};
use crate::db::Value;
use crate::engine::EventClass;
use crate::reply::{msg, Reply};
use bytes::Bytes;
use rand::Rng;

/// COPY source destination [DB destination-db] [REPLACE]
pub fn copy(ctx: &mut Ctx) -> Outcome {
    let (src, dst) = (ctx.args[1].clone(), ctx.args[2].clone());
    let src_db = ctx.client.db;
    let mut dst_db = src_db;
    let mut replace = false;
    let mut i = 3;
    while i < ctx.args.len() {
        let opt = &ctx.args[i];
        if opt.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if opt.eq_ignore_ascii_case(b"db") && i + 1 < ctx.args.len() {
            let Some(n) = parse_i64(&ctx.args[i + 1]).and_then(|n| i32::try_from(n).ok()) else {
                return Reply::error(msg::NOT_INT).into();
            };
            if n < 0 || n as usize >= ctx.engine.keyspace.len() {
                return Reply::error(msg::DB_INDEX).into();
            }
            dst_db = n as usize;
            i += 1;
        } else {
            return Reply::error(msg::SYNTAX).into();
        }
        i += 1;
    }
    if src_db == dst_db && src == dst {
        return Reply::error(msg::SAME_OBJECT).into();
    }
    let now = ctx.now_ms;
    ctx.engine.expire_if_due(src_db, &src, now);
    ctx.engine.expire_if_due(dst_db, &dst, now);
    let keyspace = &ctx.engine.keyspace;
    let Some(value) = keyspace[src_db].map.get(&src) else {
        return Reply::Int(0).into();
    };
    let copy = values::duplicate(value, || keyspace.queues.counters(dst_db, &dst));
    let expiry = ctx.engine.keyspace[src_db].expiry_of(&src);
    let target = &mut ctx.engine.keyspace[dst_db];
    if target.map.contains_key(&dst) {
        if !replace {
            // The copy is dropped unused (a list's counters let go of the key as it drops).
            return Reply::Int(0).into();
        }
        target.remove(&dst);
    }
    let list_len = match &copy {
        Value::List(l) => {
            l.stats.record_push(0, l.items.len(), l.oldest_us(), now);
            Some(l.items.len())
        }
        _ => None,
    };
    target.map.insert(Bytes::copy_from_slice(&dst), copy);
    if let Some(at) = expiry {
        target.set_expiry(&dst, at);
    }
    match list_len {
        // A list arriving at a key may serve clients blocked on it, as a push would.
        Some(len) => ctx.engine.after_push(dst_db, &dst, 0, len),
        None => ctx.engine.touch(dst_db, &dst),
    }
    ctx.engine.notify(EventClass::Generic, "copy_to", dst_db, &dst);
    Reply::Int(1).into()
}

/// RANDOMKEY: a key chosen uniformly among the database's live keys (null if none). Picking
/// the n-th key walks the table, O(keys): the map offers no random access.
pub fn randomkey(ctx: &mut Ctx) -> Outcome {
    let db = ctx.client.db;
    let now = ctx.now_ms;
    let mut rng = rand::thread_rng();
    // Expired keys met on the way are deleted, as Redis does; a few tries, then take any live
    // key so a database of expired keys cannot loop for long.
    for _ in 0..16 {
        let len = ctx.engine.keyspace[db].map.len();
        if len == 0 {
            return Reply::Null.into();
        }
        let pick = rng.gen_range(0..len);
        let Some(key) = ctx.engine.keyspace[db].map.keys().nth(pick).cloned() else {
            return Reply::Null.into();
        };
        if !ctx.engine.keyspace[db].is_expired(&key, now) {
            return Reply::Bulk(key).into();
        }
        ctx.engine.expire_if_due(db, &key, now);
    }
    let d = &ctx.engine.keyspace[db];
    let live: Vec<&Bytes> = d.map.keys().filter(|k| !d.is_expired(k, now)).collect();
    if live.is_empty() {
        return Reply::Null.into();
    }
    Reply::Bulk(live[rng.gen_range(0..live.len())].clone()).into()
}

fn expiretime_impl(ctx: &mut Ctx, ms: bool) -> Outcome {
    let key = ctx.args[1].clone();
    if ctx.lookup(&key).is_none() {
        return Reply::Int(-2).into();
    }
    match ctx.db().expiry_of(&key) {
        None => Reply::Int(-1).into(),
        Some(at) => Reply::Int(if ms { at } else { at / 1000 } as i64).into(),
    }
}

/// EXPIRETIME key: the absolute Unix time (s) the key expires at; -1 without expiry, -2 absent.
pub fn expiretime(ctx: &mut Ctx) -> Outcome {
    expiretime_impl(ctx, false)
}

/// PEXPIRETIME key: as EXPIRETIME, in milliseconds.
pub fn pexpiretime(ctx: &mut Ctx) -> Outcome {
    expiretime_impl(ctx, true)
}

/// TOUCH key [key ...]: how many of the keys exist.
pub fn touch(ctx: &mut Ctx) -> Outcome {
    let mut n = 0;
    for i in 1..ctx.args.len() {
        let key = ctx.args[i].clone();
        if ctx.lookup(&key).is_some() {
            n += 1;
        }
    }
    Reply::Int(n).into()
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
];

fn help(lines: &[&'static str]) -> Outcome {
    Reply::Array(lines.iter().map(|l| Reply::status(*l)).collect()).into()
}

/// OBJECT ENCODING|REFCOUNT|FREQ|HELP key. IDLETIME is not answered yet: it needs a per-key
/// access clock the keyspace does not keep.
pub fn object(ctx: &mut Ctx) -> Outcome {
    let sub = ctx.args[1].to_ascii_lowercase();
    let argc = ctx.args.len();
    let with_key = matches!(sub.as_slice(), b"encoding" | b"refcount" | b"freq");
    if sub == b"help" && argc == 2 {
        return help(OBJECT_HELP);
    }
    if !with_key && sub != b"help" {
        return Reply::error(msg::unknown_subcommand("object", &ctx.args[1])).into();
    }
    if argc != 3 || !with_key {
        let name = format!("object|{}", String::from_utf8_lossy(&sub));
        return Reply::error(msg::wrong_args(&name)).into();
    }
    let key = ctx.args[2].clone();
    let Some(value) = ctx.lookup(&key) else {
        return Reply::Null.into();
    };
    match sub.as_slice() {
        b"encoding" => Reply::bulk(values::encoding(value)).into(),
        b"refcount" => Reply::Int(values::refcount(value)).into(),
        // Only an LFU eviction policy tracks frequencies, and there is no eviction here.
        _ => Reply::error(msg::LFU_NOT_SELECTED).into(),
    }
}

/// MEMORY USAGE key [SAMPLES count] | MEMORY HELP.
pub fn memory(ctx: &mut Ctx) -> Outcome {
    let sub = ctx.args[1].to_ascii_lowercase();
    let argc = ctx.args.len();
    match sub.as_slice() {
        b"help" if argc == 2 => help(MEMORY_HELP),
        b"usage" if argc >= 3 => {
            let mut samples = 5usize;
            let mut i = 3;
            while i < argc {
                if ctx.args[i].eq_ignore_ascii_case(b"samples") && i + 1 < argc {
                    samples = match parse_i64(&ctx.args[i + 1]) {
                        None => return Reply::error(msg::NOT_INT).into(),
                        Some(n) if n < 0 => return Reply::error(msg::SYNTAX).into(),
                        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
                    };
                    i += 2;
                } else {
                    return Reply::error(msg::SYNTAX).into();
                }
            }
            let key = ctx.args[2].clone();
            match ctx.lookup(&key) {
                None => Reply::Null.into(),
                Some(v) => Reply::Int(values::memory_usage(&key, v, samples) as i64).into(),
            }
        }
        b"help" | b"usage" => {
            let name = format!("memory|{}", String::from_utf8_lossy(&sub));
            Reply::error(msg::wrong_args(&name)).into()
        }
        _ => Reply::error(msg::unknown_subcommand("memory", &ctx.args[1])).into(),
    }
}
