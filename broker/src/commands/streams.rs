//! Stream commands: XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XREAD, XREADGROUP (blocking
//! ones included), XGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM, XINFO, XSETID.
//!
//! Writes whose effect depends on the clock or on generated ids (XADD `*`, trimming with `~`,
//! group reads and claims, XGROUP `$`) log their effect themselves, as Redis propagates them:
//! the command layer leaves them alone (`logged.rs`).

use super::{parse_i64, Ctx, Outcome};
use crate::db::Value;
use crate::engine::{BlockOp, EventClass};
use crate::reply::{msg, Protocol, Reply};
use crate::types::stream::{
    entry_reply, read_reply, setid_effect, xclaim_effect, Group, GroupRead, IdError, Stream, StreamId,
    StreamWait, Trim, INVALID_ENTRIES_READ, NODE_MAX_ENTRIES,
};
use bytes::Bytes;
use std::time::Duration;

fn err(text: impl Into<std::borrow::Cow<'static, str>>) -> Outcome {
    Reply::error(text).into()
}

fn invalid_id() -> Outcome {
    err(msg::STREAM_INVALID_ID)
}

/// The stream at `key`: `Ok(None)` if absent, `Err` (WRONGTYPE) if another type.
fn stream_mut<'a>(ctx: &'a mut Ctx, key: &Bytes) -> Result<Option<&'a mut Stream>, Outcome> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(Value::Stream(s)) => Ok(Some(&mut **s)),
        Some(_) => Err(err(msg::WRONGTYPE)),
    }
}

/// The clock stream commands stamp with, in ms. The engine's clock, not `ctx.now_ms`: that
/// one stands still while the log is replayed, and XCLAIM's TIME must not be clamped to it.
fn clock_ms(ctx: &Ctx) -> u64 {
    ctx.engine.now_us / 1000
}

/// The XGROUP subcommand our effects use for a consumer created implicitly.
const CREATECONSUMER: &[u8] = b"CREATECONSUMER";

/// Reports the consumers a read or claim created (`cmds` are its effects), as Redis does.
fn notify_created_consumers(ctx: &mut Ctx, cmds: &[Vec<Bytes>]) {
    for c in cmds {
        if c.len() == 5 && c[0].as_ref() == b"XGROUP" && c[1].as_ref() == CREATECONSUMER {
            ctx.notify(EventClass::Stream, "xgroup-createconsumer", &c[2]);
        }
    }
}

/// Logs commands that reproduce what this command did (see the module docs).
fn log_effects(ctx: &mut Ctx, cmds: &[Vec<Bytes>]) {
    let db = ctx.client.db;
    for c in cmds {
        if let Some(offset) = ctx.engine.log(db, c) {
            ctx.client.aof_wait = offset;
        }
    }
}

fn bytes_of(v: impl std::fmt::Display) -> Bytes {
    Bytes::from(v.to_string())
}

/// A strict id argument (no `-`/`+`), or the invalid-id error.
fn id_arg(b: &[u8]) -> Result<StreamId, Outcome> {
    StreamId::parse_strict(b).ok_or_else(invalid_id)
}

/// An interval bound: `-`, `+`, `ms`, `ms-seq`, or `(id` exclusive.
fn interval_arg(b: &[u8], start: bool) -> Result<StreamId, Outcome> {
    let missing_seq = if start { 0 } else { u64::MAX };
    if b.len() > 1 && b[0] == b'(' {
        let (id, _) = StreamId::parse(&b[1..], missing_seq, true, false).ok_or_else(invalid_id)?;
        return if start {
            id.next().ok_or_else(|| err(msg::STREAM_INVALID_START))
        } else {
            id.prev().ok_or_else(|| err(msg::STREAM_INVALID_END))
        };
    }
    StreamId::parse(b, missing_seq, false, false)
        .map(|(id, _)| id)
        .ok_or_else(invalid_id)
}

/// Trimming options shared by XADD and XTRIM.
struct TrimArgs {
    trim: Option<Trim>,
    approx: bool,
    limit: Option<i64>,
}

impl TrimArgs {
    /// The entry limit a trim runs with: none for exact trims, 100 chunks' worth for `~`.
    fn limit(&self) -> usize {
        match (self.approx, self.limit) {
            (false, _) => 0,
            (true, Some(l)) => l as usize,
            (true, None) => 100 * NODE_MAX_ENTRIES,
        }
    }
}

/// Parses XADD/XTRIM options from `args[i..]`. For XADD, stops at the id (returned as the
/// index of the id argument); for XTRIM every argument must be an option.
fn parse_trim(args: &[Bytes], mut i: usize, xadd: bool) -> Result<(TrimArgs, bool, usize), Outcome> {
    let mut t = TrimArgs {
        trim: None,
        approx: false,
        limit: None,
    };
    let mut nomkstream = false;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = args[i].to_ascii_lowercase();
        if xadd && opt == b"*" {
            break;
        }
        match opt.as_slice() {
            b"maxlen" | b"minid" if more >= 1 => {
                if t.trim.is_some() {
                    return Err(err(msg::STREAM_MAXLEN_AND_MINID));
                }
                let mut next = &args[i + 1];
                if (next.as_ref() == b"~" || next.as_ref() == b"=") && more >= 2 {
                    t.approx = next.as_ref() == b"~";
                    i += 1;
                    next = &args[i + 1];
                }
                if opt == b"maxlen" {
                    let n = parse_i64(next).ok_or_else(|| err(msg::NOT_INT))?;
                    if n < 0 {
                        return Err(err(msg::STREAM_MAXLEN_NEGATIVE));
                    }
                    t.trim = Some(Trim::MaxLen(n as u64));
                } else {
                    t.trim = Some(Trim::MinId(id_arg(next)?));
                }
                i += 2;
            }
            b"limit" if more >= 1 => {
                let n = parse_i64(&args[i + 1]).ok_or_else(|| err(msg::NOT_INT))?;
                if n < 0 {
                    return Err(err(msg::STREAM_LIMIT_NEGATIVE));
                }
                t.limit = Some(n);
                i += 2;
            }
            b"nomkstream" if xadd => {
                nomkstream = true;
                i += 1;
            }
            _ if xadd => {
                // The id: checked by the caller.
                break;
            }
            _ => return Err(err(msg::SYNTAX)),
        }
    }
    if t.limit.is_some() && t.trim.is_none() {
        return Err(err(msg::STREAM_LIMIT_NO_STRATEGY));
    }
    if !xadd && t.trim.is_none() {
        return Err(err(msg::SYNTAX));
    }
    if t.limit.is_some() && !t.approx {
        return Err(err(msg::STREAM_LIMIT_NO_APPROX));
    }
    Ok((t, nomkstream, i))
}

pub fn xadd(ctx: &mut Ctx) -> Outcome {
    let args = ctx.args;
    let key = args[1].clone();
    let (trim, nomkstream, id_at) = match parse_trim(args, 2, true) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let Some(id_arg) = args.get(id_at) else {
        return err(msg::wrong_args("xadd"));
    };
    let requested = if id_arg.as_ref() == b"*" {
        None
    } else {
        match StreamId::parse(id_arg, 0, true, true) {
            Some(p) => Some(p),
            None => return invalid_id(),
        }
    };
    let fields = &args[id_at + 1..];
    if fields.len() < 2 || fields.len() % 2 == 1 {
        return err(msg::wrong_args("xadd"));
    }
    if let Some((id, true)) = requested {
        if id.is_zero() {
            return err(msg::STREAM_ID_ZERO);
        }
    }
    let now = clock_ms(ctx);
    let db = ctx.client.db;
    let created = match stream_mut(ctx, &key) {
        Err(o) => return o,
        Ok(Some(_)) => false,
        Ok(None) if nomkstream => return Reply::Null.into(),
        Ok(None) => true,
    };
    if created {
        ctx.engine.keyspace[db]
            .map
            .insert(Bytes::copy_from_slice(&key), Value::Stream(Box::default()));
    }
    let Ok(Some(s)) = stream_mut(ctx, &key) else {
        return err(msg::WRONGTYPE);
    };
    if s.last_id == StreamId::MAX {
        let o = err(msg::STREAM_EXHAUSTED);
        if created {
            ctx.engine.keyspace[db].remove(&key);
        }
        return o;
    }
    let id = match s.next_id(requested, now) {
        Ok(id) => id,
        Err(e) => {
            if created {
                ctx.engine.keyspace[db].remove(&key);
            }
            return err(match e {
                IdError::TooSmall => msg::STREAM_ID_TOO_SMALL,
                IdError::Zero => msg::STREAM_ID_ZERO,
                IdError::Exhausted => msg::STREAM_EXHAUSTED,
            });
        }
    };
    s.append(id, fields);
    let trimmed = match trim.trim {
        Some(t) => s.trim(t, trim.approx, trim.limit()),
        None => 0,
    };
    let len = s.len();
    // Logged with the id it got and, if it trimmed, the exact length it trimmed to: a replay
    // does the same whatever the clock or the chunk layout.
    let mut logged = vec![Bytes::from_static(b"XADD"), key.clone()];
    if nomkstream {
        logged.push(Bytes::from_static(b"NOMKSTREAM"));
    }
    if trim.trim.is_some() {
        logged.extend([
            Bytes::from_static(b"MAXLEN"),
            Bytes::from_static(b"="),
            bytes_of(len),
        ]);
    }
    logged.push(id.to_bytes());
    logged.extend(fields.iter().cloned());
    ctx.engine.touch(db, &key);
    log_effects(ctx, &[logged]);
    ctx.notify(EventClass::Stream, "xadd", &key);
    if trimmed > 0 {
        ctx.notify(EventClass::Stream, "xtrim", &key);
    }
    ctx.engine.stream_changed(db, &key);
    id.reply().into()
}

pub fn xlen(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    match stream_mut(ctx, &key) {
        Err(o) => o,
        Ok(None) => Reply::Int(0).into(),
        Ok(Some(s)) => Reply::Int(s.len() as i64).into(),
    }
}

fn range_generic(ctx: &mut Ctx, rev: bool) -> Outcome {
    let args = ctx.args;
    let key = args[1].clone();
    let (a, b) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let start = match interval_arg(a, true) {
        Ok(id) => id,
        Err(o) => return o,
    };
    let end = match interval_arg(b, false) {
        Ok(id) => id,
        Err(o) => return o,
    };
    let mut count: Option<usize> = None;
    let mut i = 4;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"count") && i + 1 < args.len() {
            match parse_i64(&args[i + 1]) {
                Some(n) => count = Some(n.max(0) as usize),
                None => return err(msg::NOT_INT),
            }
            i += 2;
        } else {
            return err(msg::SYNTAX);
        }
    }
    let s = match stream_mut(ctx, &key) {
        Err(o) => return o,
        Ok(None) => return Reply::Array(vec![]).into(),
        Ok(Some(s)) => s,
    };
    if count == Some(0) {
        // Redis answers a zero (or negative) COUNT with a null array, not an empty one.
        return Reply::NullArray.into();
    }
    if start > end {
        return Reply::Array(vec![]).into();
    }
    let n = count.unwrap_or(usize::MAX);
    let items: Vec<Reply> = if rev {
        s.range_rev(start, end)
            .take(n)
            .map(|(id, f)| entry_reply(id, f))
            .collect()
    } else {
        s.range(start, end)
            .take(n)
            .map(|(id, f)| entry_reply(id, f))
            .collect()
    };
    Reply::Array(items).into()
}

pub fn xrange(ctx: &mut Ctx) -> Outcome {
    range_generic(ctx, false)
}

pub fn xrevrange(ctx: &mut Ctx) -> Outcome {
    range_generic(ctx, true)
}

pub fn xdel(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let mut ids = Vec::with_capacity(ctx.args.len() - 2);
    for a in &ctx.args[2..] {
        match id_arg(a) {
            Ok(id) => ids.push(id),
            Err(o) => return o,
        }
    }
    let deleted = match stream_mut(ctx, &key) {
        Err(o) => return o,
        Ok(None) => return Reply::Int(0).into(),
        Ok(Some(s)) => ids.into_iter().filter(|&id| s.delete(id)).count(),
    };
    if deleted > 0 {
        let db = ctx.client.db;
        ctx.engine.touch(db, &key);
        ctx.notify(EventClass::Stream, "xdel", &key);
    }
    Reply::Int(deleted as i64).into()
}

pub fn xtrim(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let (trim, _, _) = match parse_trim(ctx.args, 2, false) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let (trimmed, len) = match stream_mut(ctx, &key) {
        Err(o) => return o,
        Ok(None) => return Reply::Int(0).into(),
        Ok(Some(s)) => match trim.trim {
            Some(t) => (s.trim(t, trim.approx, trim.limit()), s.len()),
            None => (0, s.len()),
        },
    };
    if trimmed > 0 {
        let db = ctx.client.db;
        ctx.engine.touch(db, &key);
        let logged = vec![
            Bytes::from_static(b"XTRIM"),
            key.clone(),
            Bytes::from_static(b"MAXLEN"),
            Bytes::from_static(b"="),
            bytes_of(len),
        ];
        log_effects(ctx, &[logged]);
        ctx.notify(EventClass::Stream, "xtrim", &key);
    }
    Reply::Int(trimmed as i64).into()
}

/// A block timeout in milliseconds (`BLOCK`): 0 is forever.
fn block_ms_arg(b: &[u8]) -> Result<Option<Duration>, Outcome> {
    let ms = parse_i64(b).ok_or_else(|| err(msg::TIMEOUT_NOT_INT))?;
    if ms < 0 {
        return Err(err(msg::TIMEOUT_NEGATIVE));
    }
    Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
}

/// XREAD and XREADGROUP.
fn read_generic(ctx: &mut Ctx, group_cmd: bool) -> Outcome {
    let args = ctx.args;
    let mut count = 0usize;
    let mut block: Option<Option<Duration>> = None;
    let mut group: Option<(Bytes, Bytes)> = None;
    let mut noack = false;
    let mut streams_at = 0;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = args[i].to_ascii_lowercase();
        match opt.as_slice() {
            b"count" if more >= 1 => {
                match parse_i64(&args[i + 1]) {
                    Some(n) => count = n.max(0) as usize,
                    None => return err(msg::NOT_INT),
                }
                i += 2;
            }
            b"block" if more >= 1 => {
                match block_ms_arg(&args[i + 1]) {
                    Ok(t) => block = Some(t),
                    Err(o) => return o,
                }
                i += 2;
            }
            b"streams" if more >= 1 => {
                streams_at = i + 1;
                break;
            }
            b"group" if more >= 2 => {
                if !group_cmd {
                    return err(msg::XREAD_GROUP_OPTION);
                }
                group = Some((args[i + 1].clone(), args[i + 2].clone()));
                i += 3;
            }
            b"noack" => {
                if !group_cmd {
                    return err(msg::XREAD_NOACK_OPTION);
                }
                noack = true;
                i += 1;
            }
            _ => return err(msg::SYNTAX),
        }
    }
    if streams_at == 0 {
        return err(msg::SYNTAX);
    }
    let rest = args.len() - streams_at;
    if !rest.is_multiple_of(2) {
        // XREADGROUP words it as XREAD does.
        return err(msg::XREAD_UNBALANCED);
    }
    if group_cmd && group.is_none() {
        return err(msg::XREADGROUP_MISSING_GROUP);
    }
    let n = rest / 2;
    let keys: Vec<Bytes> = args[streams_at..streams_at + n].to_vec();
    // Per key: `None` for `>`, else the id after which to read.
    let mut starts: Vec<Option<StreamId>> = Vec::with_capacity(n);
    for (k, key) in keys.iter().enumerate() {
        let id_arg = &args[streams_at + n + k];
        if let Some((g, _)) = &group {
            let exists = match stream_mut(ctx, key) {
                Err(o) => return o,
                Ok(s) => s.is_some_and(|s| s.groups.contains_key(g)),
            };
            if !exists {
                return err(msg::xreadgroup_nogroup(key, g));
            }
            let db = ctx.client.db;
            ctx.shared.queues.watch_stream(db, key);
        }
        if id_arg.as_ref() == b"$" {
            if group_cmd {
                return err(msg::XREADGROUP_DOLLAR);
            }
            let last = match stream_mut(ctx, key) {
                Err(o) => return o,
                Ok(s) => s.map_or(StreamId::MIN, |s| s.last_id),
            };
            starts.push(Some(last));
        } else if id_arg.as_ref() == b">" {
            if !group_cmd {
                return err(msg::XREAD_GT_ID);
            }
            starts.push(None);
        } else {
            match id_arg_strict(id_arg) {
                Ok(id) => starts.push(Some(id)),
                Err(o) => return o,
            }
        }
    }
    let resp3 = ctx.client.proto == Protocol::Resp3;
    let now = clock_ms(ctx);
    let db = ctx.client.db;
    let mut served: Vec<(Bytes, Vec<Reply>)> = Vec::new();
    let mut effects: Vec<Vec<Bytes>> = Vec::new();
    for (key, start) in keys.iter().zip(&starts) {
        let s = match stream_mut(ctx, key) {
            Err(o) => return o,
            Ok(None) => continue,
            Ok(Some(s)) => s,
        };
        match &group {
            None => {
                let after = start.unwrap_or(StreamId::MAX);
                let Some(from) = after.next() else { continue };
                if s.last().is_some_and(|(last, _)| last > after) {
                    let take = if count == 0 { usize::MAX } else { count };
                    let entries = s
                        .range(from, StreamId::MAX)
                        .take(take)
                        .map(|(id, f)| entry_reply(id, f))
                        .collect();
                    served.push((key.clone(), entries));
                }
            }
            Some((g, c)) => {
                let read = GroupRead {
                    group: g.clone(),
                    consumer: c.clone(),
                    start: *start,
                    count,
                    noack,
                };
                let history = start.is_some();
                let has_new = history || s.group_has_new(g);
                if !has_new {
                    // Nothing to serve now; the consumer exists from here on all the same.
                    if let Some(gr) = s.groups.get_mut(g) {
                        let (cons, created) = gr.consumer(c, now);
                        cons.seen_ms = now;
                        if created {
                            effects.push(vec![
                                Bytes::from_static(b"XGROUP"),
                                Bytes::from_static(b"CREATECONSUMER"),
                                key.clone(),
                                g.clone(),
                                c.clone(),
                            ]);
                        }
                    }
                    continue;
                }
                if let Some((entries, log)) = s.read_group(key, &read, now) {
                    effects.extend(log);
                    served.push((key.clone(), entries));
                }
            }
        }
    }
    if !effects.is_empty() {
        for key in &keys {
            ctx.engine.touch(db, key);
        }
        log_effects(ctx, &effects);
        notify_created_consumers(ctx, &effects);
    }
    if !served.is_empty() {
        return read_reply(resp3, served).into();
    }
    match block {
        Some(timeout) if !ctx.nested => {
            let after = starts.iter().map(|s| s.unwrap_or(StreamId::MAX)).collect();
            let group = group.map(|(g, c)| GroupRead {
                group: g,
                consumer: c,
                start: None,
                count,
                noack,
            });
            Outcome::Block {
                keys,
                op: BlockOp::Stream(Box::new(StreamWait {
                    after,
                    group,
                    count,
                    resp3,
                })),
                timeout,
            }
        }
        _ => Reply::NullArray.into(),
    }
}

fn id_arg_strict(b: &[u8]) -> Result<StreamId, Outcome> {
    id_arg(b)
}

pub fn xread(ctx: &mut Ctx) -> Outcome {
    read_generic(ctx, false)
}

pub fn xreadgroup(ctx: &mut Ctx) -> Outcome {
    read_generic(ctx, true)
}

pub fn xack(ctx: &mut Ctx) -> Outcome {
    let key = ctx.args[1].clone();
    let group = ctx.args[2].clone();
    let mut ids = Vec::with_capacity(ctx.args.len() - 3);
    for a in &ctx.args[3..] {
        match id_arg(a) {
            Ok(id) => ids.push(id),
            Err(o) => return o,
        }
    }
    let acked: Vec<u64> = match stream_mut(ctx, &key) {
        Err(o) => return o,
        Ok(None) => Vec::new(),
        Ok(Some(s)) => match s.groups.get_mut(&group) {
            None => Vec::new(),
            Some(g) => ids.into_iter().filter(|&id| g.ack(id)).map(|id| id.ms).collect(),
        },
    };
    if !acked.is_empty() {
        let db = ctx.client.db;
        ctx.engine.touch(db, &key);
        let queues = &ctx.shared.queues;
        queues.watch_stream(db, &key);
        queues.record_acks(db, &key, &group, &acked, crate::metrics::unix_us());
    }
    Reply::Int(acked.len() as i64).into()
}

pub fn xpending(ctx: &mut Ctx) -> Outcome {
    let args = ctx.args;
    let key = args[1].clone();
    let group = args[2].clone();
    let mut extended = None;
    if args.len() != 3 && (args.len() < 6 || args.len() > 9) {
        return err(msg::SYNTAX);
    }
    if args.len() >= 6 {
        let mut at = 3;
        let mut min_idle = 0i64;
        if args[3].eq_ignore_ascii_case(b"idle") {
            match parse_i64(&args[4]) {
                Some(n) => min_idle = n,
                None => return err(msg::NOT_INT),
            }
            if args.len() < 8 {
                return err(msg::SYNTAX);
            }
            at += 2;
        }
        let count = match parse_i64(&args[at + 2]) {
            Some(n) => n.max(0) as usize,
            None => return err(msg::NOT_INT),
        };
        let start = match interval_arg(&args[at], true) {
            Ok(id) => id,
            Err(o) => return o,
        };
        let end = match interval_arg(&args[at + 1], false) {
            Ok(id) => id,
            Err(o) => return o,
        };
        // Redis ignores anything after the consumer.
        let consumer = args.get(at + 3).cloned();
        extended = Some((min_idle, start, end, count, consumer));
    }
    let now = clock_ms(ctx);
    let s = match stream_mut(ctx, &key) {
        Err(o) => return o,
        Ok(s) => s,
    };
    let Some(g) = s.and_then(|s| s.groups.get(&group)) else {
        return err(msg::stream_nogroup(&key, &group));
    };
    match extended {
        None => {
            if g.pel.is_empty() {
                return Reply::Array(vec![Reply::Int(0), Reply::Null, Reply::Null, Reply::NullArray]).into();
            }
            let first = g.pel.keys().next().copied().unwrap_or_default();
            let last = g.pel.keys().next_back().copied().unwrap_or_default();
            let per: Vec<Reply> = g
                .consumers
                .iter()
                .filter(|(_, c)| !c.pel.is_empty())
                .map(|(name, c)| {
                    Reply::Array(vec![
                        Reply::Bulk(name.clone()),
                        Reply::Bulk(bytes_of(c.pel.len())),
                    ])
                })
                .collect();
            Reply::Array(vec![
                Reply::Int(g.pel.len() as i64),
                first.reply(),
                last.reply(),
                Reply::Array(per),
            ])
            .into()
        }
        Some((min_idle, start, end, count, consumer)) => {
            if start > end || count == 0 {
                return Reply::Array(vec![]).into();
            }
            let line = |id: &StreamId| -> Option<Reply> {
                let n = g.pel.get(id)?;
                let idle = now.saturating_sub(n.delivery_ms);
                if min_idle > 0 && (idle as i64) < min_idle {
                    return None;
                }
                Some(Reply::Array(vec![
                    id.reply(),
                    Reply::Bulk(n.consumer.clone()),
                    Reply::Int(idle as i64),
                    Reply::Int(n.delivery_count as i64),
                ]))
            };
            let out: Vec<Reply> = match &consumer {
                Some(c) => match g.consumers.get(c) {
                    None => vec![],
                    Some(c) => c.pel.range(start..=end).filter_map(line).take(count).collect(),
                },
                None => g
                    .pel
                    .range(start..=end)
                    .filter_map(|(id, _)| line(id))
                    .take(count)
                    .collect(),
            };
            Reply::Array(out).into()
        }
    }
}

/// Who claims: the stream's key, the group and the consumer.
struct Claimer<'a> {
    key: &'a Bytes,
    group: &'a Bytes,
    consumer: &'a Bytes,
}

impl Claimer<'_> {
    /// Claims `id` in group `g` (creating the consumer on first use, which is logged and
    /// reported too), as XCLAIM and XAUTOCLAIM do, with this delivery time and count. Adds the
    /// commands that reproduce it to `effects`.
    fn claim(
        &self,
        g: &mut Group,
        id: StreamId,
        delivery_ms: u64,
        delivery_count: u64,
        now: u64,
        effects: &mut Vec<Vec<Bytes>>,
    ) {
        let (c, created) = g.consumer(self.consumer, now);
        c.seen_ms = now;
        if created {
            effects.push(vec![
                Bytes::from_static(b"XGROUP"),
                Bytes::from_static(CREATECONSUMER),
                self.key.clone(),
                self.group.clone(),
                self.consumer.clone(),
            ]);
        }
        g.assign(id, self.consumer, delivery_ms, delivery_count);
        effects.push(xclaim_effect(
            self.key,
            self.group,
            self.consumer,
            id,
            delivery_ms,
            delivery_count,
            g.last_id,
        ));
    }
}

pub fn xclaim(ctx: &mut Ctx) -> Outcome {
    let args = ctx.args;
    let (key, group, consumer) = (args[1].clone(), args[2].clone(), args[3].clone());
    match stream_mut(ctx, &key) {
        Err(o) => return o,
        Ok(s) if s.as_ref().is_some_and(|s| s.groups.contains_key(&group)) => {}
        Ok(_) => return err(msg::stream_nogroup(&key, &group)),
    }
    let min_idle = match parse_i64(&args[4]) {
        Some(n) => n.max(0) as u64,
        None => return err(msg::XCLAIM_MIN_IDLE),
    };
    let mut j = 5;
    let mut ids = Vec::new();
    while j < args.len() {
        match StreamId::parse_strict(&args[j]) {
            Some(id) => ids.push(id),
            None => break,
        }
        j += 1;
    }
    let now = clock_ms(ctx);
    let mut delivery: Option<i64> = None;
    let mut retry: Option<u64> = None;
    let (mut force, mut justid) = (false, false);
    let mut lastid: Option<StreamId> = None;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = args[j].to_ascii_lowercase();
        match opt.as_slice() {
            b"force" => force = true,
            b"justid" => justid = true,
            b"idle" if more >= 1 => {
                j += 1;
                match parse_i64(&args[j]) {
                    // Saturating: any idle time past the clock's range is clamped to now below.
                    Some(n) => delivery = Some((now as i64).saturating_sub(n)),
                    None => return err(msg::XCLAIM_IDLE),
                }
            }
            b"time" if more >= 1 => {
                j += 1;
                match parse_i64(&args[j]) {
                    Some(n) => delivery = Some(n),
                    None => return err(msg::XCLAIM_TIME),
                }
            }
            b"retrycount" if more >= 1 => {
                j += 1;
                match parse_i64(&args[j]) {
                    Some(n) => retry = Some(n.max(0) as u64),
                    None => return err(msg::XCLAIM_RETRYCOUNT),
                }
            }
            b"lastid" if more >= 1 => {
                j += 1;
                match id_arg(&args[j]) {
                    Ok(id) => lastid = Some(id),
                    Err(o) => return o,
                }
            }
            _ => return err(msg::xclaim_unrecognized(&args[j])),
        }
        j += 1;
    }
    let delivery_ms = match delivery {
        Some(t) if t >= 0 && t as u64 <= now => t as u64,
        _ => now,
    };
    let Ok(Some(s)) = stream_mut(ctx, &key) else {
        return err(msg::WRONGTYPE);
    };
    let Some(mut g) = s.groups.remove(&group) else {
        return err(msg::stream_nogroup(&key, &group));
    };
    let mut effects = Vec::new();
    let claimer = Claimer {
        key: &key,
        group: &group,
        consumer: &consumer,
    };
    let mut set_last = false;
    if let Some(l) = lastid {
        if l > g.last_id {
            g.last_id = l;
            set_last = true;
        }
    }
    let mut out = Vec::new();
    for id in ids {
        let Some(entry) = s.get(id) else {
            if let Some(n) = g.pel.get(&id) {
                let n = n.clone();
                effects.push(xclaim_effect(
                    &key,
                    &group,
                    &n.consumer,
                    id,
                    n.delivery_ms,
                    n.delivery_count,
                    g.last_id,
                ));
                set_last = false;
                g.ack(id);
            }
            continue;
        };
        let existing = g.pel.get(&id).cloned();
        if existing.is_none() && !force {
            continue;
        }
        if let Some(n) = &existing {
            if min_idle > 0 && now.saturating_sub(n.delivery_ms) < min_idle {
                continue;
            }
        }
        // A FORCE-created entry starts at one delivery, like any new pending entry.
        let prev = existing.as_ref().map_or(1, |n| n.delivery_count);
        let dc = match retry {
            Some(r) => r,
            None if justid => prev,
            None => prev + 1,
        };
        claimer.claim(&mut g, id, delivery_ms, dc, now, &mut effects);
        set_last = false;
        out.push(if justid {
            id.reply()
        } else {
            entry_reply(id, entry)
        });
    }
    if set_last {
        effects.push(setid_effect(&key, &group, &g));
    }
    s.groups.insert(group, g);
    if !effects.is_empty() {
        let db = ctx.client.db;
        ctx.engine.touch(db, &key);
        log_effects(ctx, &effects);
        notify_created_consumers(ctx, &effects);
    }
    Reply::Array(out).into()
}

pub fn xautoclaim(ctx: &mut Ctx) -> Outcome {
    let args = ctx.args;
    let (key, group, consumer) = (args[1].clone(), args[2].clone(), args[3].clone());
    let exists = match stream_mut(ctx, &key) {
        Err(o) => return o,
        Ok(s) => s.is_some_and(|s| s.groups.contains_key(&group)),
    };
    let min_idle = match parse_i64(&args[4]) {
        Some(n) => n.max(0) as u64,
        None => return err(msg::XAUTOCLAIM_MIN_IDLE),
    };
    let start = match interval_arg(&args[5], true) {
        Ok(id) => id,
        Err(o) => return o,
    };
    let mut count = 100usize;
    let mut justid = false;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if args[j].eq_ignore_ascii_case(b"count") && more >= 1 {
            match parse_i64(&args[j + 1]) {
                Some(n) if (1..=i64::MAX / 10).contains(&n) => count = n as usize,
                _ => return err(msg::XAUTOCLAIM_COUNT),
            }
            j += 2;
        } else if args[j].eq_ignore_ascii_case(b"justid") {
            justid = true;
            j += 1;
        } else {
            return err(msg::SYNTAX);
        }
    }
    if !exists {
        return err(msg::stream_nogroup(&key, &group));
    }
    let now = clock_ms(ctx);
    let Ok(Some(s)) = stream_mut(ctx, &key) else {
        return err(msg::WRONGTYPE);
    };
    let Some(mut g) = s.groups.remove(&group) else {
        return err(msg::stream_nogroup(&key, &group));
    };
    let mut attempts = count.saturating_mul(10);
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut effects = Vec::new();
    let claimer = Claimer {
        key: &key,
        group: &group,
        consumer: &consumer,
    };
    let mut next: Option<StreamId> = g.pel.range(start..).next().map(|(id, _)| *id);
    while attempts > 0 && count > 0 {
        let Some(id) = next else { break };
        attempts -= 1;
        next = id.next().and_then(|n| g.pel.range(n..).next().map(|(i, _)| *i));
        let Some(n) = g.pel.get(&id).cloned() else {
            continue;
        };
        let Some(entry) = s.get(id) else {
            effects.push(xclaim_effect(
                &key,
                &group,
                &n.consumer,
                id,
                n.delivery_ms,
                n.delivery_count,
                g.last_id,
            ));
            g.ack(id);
            deleted.push(id.reply());
            continue;
        };
        if min_idle > 0 && now.saturating_sub(n.delivery_ms) < min_idle {
            continue;
        }
        let dc = if justid {
            n.delivery_count
        } else {
            n.delivery_count + 1
        };
        claimer.claim(&mut g, id, now, dc, now, &mut effects);
        claimed.push(if justid {
            id.reply()
        } else {
            entry_reply(id, entry)
        });
        count -= 1;
    }
    let cursor = next.unwrap_or(StreamId::MIN);
    s.groups.insert(group, g);
    if !effects.is_empty() {
        let db = ctx.client.db;
        ctx.engine.touch(db, &key);
        log_effects(ctx, &effects);
        notify_created_consumers(ctx, &effects);
    }
    Reply::Array(vec![cursor.reply(), Reply::Array(claimed), Reply::Array(deleted)]).into()
}

/// An ENTRIESREAD value: -1 (unknown) or a count.
fn entries_read_arg(b: &[u8]) -> Result<i64, Outcome> {
    let n = parse_i64(b).ok_or_else(|| err(msg::NOT_INT))?;
    if n < 0 && n != INVALID_ENTRIES_READ {
        return Err(err(msg::ENTRIESREAD_RANGE));
    }
    Ok(n)
}

pub fn xgroup(ctx: &mut Ctx) -> Outcome {
    let args = ctx.args;
    let sub = args[1].to_ascii_lowercase();
    let n = args.len();
    let arity = |name: &str| err(msg::wrong_args(&format!("xgroup|{name}")));
    match (sub.as_slice(), n) {
        (b"help", 2) => return help_reply(XGROUP_HELP),
        (b"create" | b"setid", n) if n < 5 => return arity(std::str::from_utf8(&sub).unwrap_or("")),
        (b"destroy", n) if n != 4 => return arity("destroy"),
        (b"createconsumer", n) if n != 5 => return arity("createconsumer"),
        (b"delconsumer", n) if n != 5 => return arity("delconsumer"),
        (b"help", _) => return arity("help"),
        (b"create" | b"setid" | b"destroy" | b"createconsumer" | b"delconsumer", _) => {}
        _ => return err(msg::unknown_subcommand("xgroup", &args[1])),
    }
    let key = args[2].clone();
    let group = args[3].clone();
    let mut mkstream = false;
    let mut entries_read = INVALID_ENTRIES_READ;
    if sub == b"create" {
        let mut i = 5;
        while i < n {
            if args[i].eq_ignore_ascii_case(b"mkstream") {
                mkstream = true;
                i += 1;
            } else if args[i].eq_ignore_ascii_case(b"entriesread") && i + 1 < n {
                match entries_read_arg(&args[i + 1]) {
                    Ok(v) => entries_read = v,
                    Err(o) => return o,
                }
                i += 2;
            } else {
                return err(msg::subcommand_arity("xgroup", &args[1]));
            }
        }
    } else if sub == b"setid" {
        match n {
            5 => {}
            7 if args[5].eq_ignore_ascii_case(b"entriesread") => match entries_read_arg(&args[6]) {
                Ok(v) => entries_read = v,
                Err(o) => return o,
            },
            _ => return err(msg::subcommand_arity("xgroup", &args[1])),
        }
    }
    let db = ctx.client.db;
    let exists = match stream_mut(ctx, &key) {
        Err(o) => return o,
        Ok(s) => s.map(|s| s.groups.contains_key(&group)),
    };
    if !mkstream {
        match exists {
            None => return err(msg::XGROUP_NO_KEY),
            Some(false) if matches!(sub.as_slice(), b"setid" | b"createconsumer" | b"delconsumer") => {
                return err(msg::xgroup_nogroup(&group, &key));
            }
            _ => {}
        }
    }
    let now = clock_ms(ctx);
    match sub.as_slice() {
        b"create" | b"setid" => {
            let last = match stream_mut(ctx, &key) {
                Ok(Some(s)) => s.last_id,
                _ => StreamId::MIN,
            };
            let id = if args[4].as_ref() == b"$" {
                last
            } else {
                match StreamId::parse(&args[4], 0, false, false) {
                    Some((id, _)) => id,
                    None => return invalid_id(),
                }
            };
            if sub == b"setid" {
                let Ok(Some(s)) = stream_mut(ctx, &key) else {
                    return err(msg::XGROUP_NO_KEY);
                };
                let Some(g) = s.groups.get_mut(&group) else {
                    return err(msg::xgroup_nogroup(&group, &key));
                };
                g.last_id = id;
                g.entries_read = entries_read;
                let effect = setid_effect(&key, &group, g);
                ctx.engine.touch(db, &key);
                log_effects(ctx, &[effect]);
                ctx.notify(EventClass::Stream, "xgroup-setid", &key);
                return Reply::Ok.into();
            }
            if exists == Some(true) {
                return err(msg::BUSYGROUP);
            }
            if exists.is_none() {
                ctx.engine.keyspace[db]
                    .map
                    .insert(Bytes::copy_from_slice(&key), Value::Stream(Box::default()));
            }
            let Ok(Some(s)) = stream_mut(ctx, &key) else {
                return err(msg::WRONGTYPE);
            };
            s.groups.insert(group.clone(), Group::new(id, entries_read));
            ctx.shared.queues.watch_stream(db, &key);
            let effect = vec![
                Bytes::from_static(b"XGROUP"),
                Bytes::from_static(b"CREATE"),
                key.clone(),
                group.clone(),
                id.to_bytes(),
                Bytes::from_static(b"MKSTREAM"),
                Bytes::from_static(b"ENTRIESREAD"),
                bytes_of(entries_read),
            ];
            ctx.engine.touch(db, &key);
            log_effects(ctx, &[effect]);
            ctx.notify(EventClass::Stream, "xgroup-create", &key);
            Reply::Ok.into()
        }
        b"destroy" => {
            let Ok(Some(s)) = stream_mut(ctx, &key) else {
                return err(msg::XGROUP_NO_KEY);
            };
            if s.groups.remove(&group).is_none() {
                return Reply::Int(0).into();
            }
            ctx.engine.touch(db, &key);
            log_effects(ctx, &[args.to_vec()]);
            ctx.notify(EventClass::Stream, "xgroup-destroy", &key);
            // Clients blocked on the group learn that it is gone.
            ctx.engine.stream_changed(db, &key);
            Reply::Int(1).into()
        }
        b"createconsumer" => {
            let Ok(Some(s)) = stream_mut(ctx, &key) else {
                return err(msg::XGROUP_NO_KEY);
            };
            let Some(g) = s.groups.get_mut(&group) else {
                return err(msg::xgroup_nogroup(&group, &key));
            };
            let (_, created) = g.consumer(&args[4], now);
            if !created {
                return Reply::Int(0).into();
            }
            ctx.engine.touch(db, &key);
            log_effects(ctx, &[args.to_vec()]);
            ctx.notify(EventClass::Stream, "xgroup-createconsumer", &key);
            Reply::Int(1).into()
        }
        _ => {
            let Ok(Some(s)) = stream_mut(ctx, &key) else {
                return err(msg::XGROUP_NO_KEY);
            };
            let Some(g) = s.groups.get_mut(&group) else {
                return err(msg::xgroup_nogroup(&group, &key));
            };
            let Some(pending) = g.delete_consumer(&args[4]) else {
                return Reply::Int(0).into();
            };
            ctx.engine.touch(db, &key);
            log_effects(ctx, &[args.to_vec()]);
            ctx.notify(EventClass::Stream, "xgroup-delconsumer", &key);
            Reply::Int(pending as i64).into()
        }
    }
}

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

fn help_reply(lines: &[&'static str]) -> Outcome {
    Reply::Array(lines.iter().map(|s| Reply::status(*s)).collect()).into()
}

fn field(name: &'static str, value: Reply) -> (Reply, Reply) {
    (Reply::bulk(name), value)
}

fn lag_reply(s: &Stream, g: &Group) -> Reply {
    s.lag(g).map_or(Reply::Null, Reply::Int)
}

fn entries_read_reply(g: &Group) -> Reply {
    if g.entries_read == INVALID_ENTRIES_READ {
        Reply::Null
    } else {
        Reply::Int(g.entries_read)
    }
}

pub fn xinfo(ctx: &mut Ctx) -> Outcome {
    let args = ctx.args;
    let sub = args[1].to_ascii_lowercase();
    let n = args.len();
    let arity = |name: &str| err(msg::wrong_args(&format!("xinfo|{name}")));
    match (sub.as_slice(), n) {
        (b"help", 2) => return help_reply(XINFO_HELP),
        (b"help", _) => return arity("help"),
        (b"consumers", n) if n != 4 => return arity("consumers"),
        (b"groups", n) if n != 3 => return arity("groups"),
        (b"stream", n) if n < 3 => return arity("stream"),
        (b"consumers" | b"groups" | b"stream", _) => {}
        _ => return err(msg::unknown_subcommand("xinfo", &args[1])),
    }
    let key = args[2].clone();
    let mut full = None;
    if sub == b"stream" && n > 3 {
        if !args[3].eq_ignore_ascii_case(b"full") {
            return err(msg::subcommand_arity("xinfo", &args[1]));
        }
        // COUNT 0 lists everything; a negative COUNT is the default, 10.
        let mut count = 10usize;
        match n {
            4 => {}
            6 if args[4].eq_ignore_ascii_case(b"count") => match parse_i64(&args[5]) {
                Some(c) if c >= 0 => count = c as usize,
                Some(_) => {}
                None => return err(msg::NOT_INT),
            },
            _ => return err(msg::subcommand_arity("xinfo", &args[1])),
        }
        full = Some(count);
    }
    let now = clock_ms(ctx);
    let s = match stream_mut(ctx, &key) {
        Err(o) => return o,
        Ok(None) => return err(msg::NO_SUCH_KEY),
        Ok(Some(s)) => s,
    };
    match sub.as_slice() {
        b"consumers" => {
            let group = &args[3];
            let Some(g) = s.groups.get(group) else {
                return err(msg::xgroup_nogroup(group, &key));
            };
            Reply::Array(
                g.consumers
                    .iter()
                    .map(|(name, c)| {
                        Reply::Map(vec![
                            field("name", Reply::Bulk(name.clone())),
                            field("pending", Reply::Int(c.pel.len() as i64)),
                            field("idle", Reply::Int(now.saturating_sub(c.seen_ms) as i64)),
                        ])
                    })
                    .collect(),
            )
            .into()
        }
        b"groups" => Reply::Array(
            s.groups
                .iter()
                .map(|(name, g)| {
                    Reply::Map(vec![
                        field("name", Reply::Bulk(name.clone())),
                        field("consumers", Reply::Int(g.consumers.len() as i64)),
                        field("pending", Reply::Int(g.pel.len() as i64)),
                        field("last-delivered-id", g.last_id.reply()),
                        field("entries-read", entries_read_reply(g)),
                        field("lag", lag_reply(s, g)),
                    ])
                })
                .collect(),
        )
        .into(),
        _ => {
            let keys = s.chunk_count();
            let mut m = vec![
                field("length", Reply::Int(s.len() as i64)),
                field("radix-tree-keys", Reply::Int(keys as i64)),
                field("radix-tree-nodes", Reply::Int(s.radix_nodes() as i64)),
                field("last-generated-id", s.last_id.reply()),
                field("max-deleted-entry-id", s.max_deleted.reply()),
                field("entries-added", Reply::Int(s.entries_added as i64)),
                field("recorded-first-entry-id", s.first_id().reply()),
            ];
            match full {
                None => {
                    m.push(field("groups", Reply::Int(s.groups.len() as i64)));
                    m.push(field(
                        "first-entry",
                        s.first().map_or(Reply::Null, |(id, f)| entry_reply(id, f)),
                    ));
                    m.push(field(
                        "last-entry",
                        s.last().map_or(Reply::Null, |(id, f)| entry_reply(id, f)),
                    ));
                }
                Some(count) => {
                    let take = if count == 0 { usize::MAX } else { count };
                    let entries = s
                        .range(StreamId::MIN, StreamId::MAX)
                        .take(take)
                        .map(|(id, f)| entry_reply(id, f))
                        .collect();
                    m.push(field("entries", Reply::Array(entries)));
                    let groups = s
                        .groups
                        .iter()
                        .map(|(name, g)| {
                            let pending = g
                                .pel
                                .iter()
                                .take(take)
                                .map(|(id, nack)| {
                                    Reply::Array(vec![
                                        id.reply(),
                                        Reply::Bulk(nack.consumer.clone()),
                                        Reply::Int(nack.delivery_ms as i64),
                                        Reply::Int(nack.delivery_count as i64),
                                    ])
                                })
                                .collect();
                            let consumers = g
                                .consumers
                                .iter()
                                .map(|(cname, c)| {
                                    let pel = c
                                        .pel
                                        .iter()
                                        .take(take)
                                        .filter_map(|id| {
                                            let nack = g.pel.get(id)?;
                                            Some(Reply::Array(vec![
                                                id.reply(),
                                                Reply::Int(nack.delivery_ms as i64),
                                                Reply::Int(nack.delivery_count as i64),
                                            ]))
                                        })
                                        .collect();
                                    Reply::Map(vec![
                                        field("name", Reply::Bulk(cname.clone())),
                                        field("seen-time", Reply::Int(c.seen_ms as i64)),
                                        field("pel-count", Reply::Int(c.pel.len() as i64)),
                                        field("pending", Reply::Array(pel)),
                                    ])
                                })
                                .collect();
                            Reply::Map(vec![
                                field("name", Reply::Bulk(name.clone())),
                                field("last-delivered-id", g.last_id.reply()),
                                field("entries-read", entries_read_reply(g)),
                                field("lag", lag_reply(s, g)),
                                field("pel-count", Reply::Int(g.pel.len() as i64)),
                                field("pending", Reply::Array(pending)),
                                field("consumers", Reply::Array(consumers)),
                            ])
                        })
                        .collect();
                    m.push(field("groups", Reply::Array(groups)));
                }
            }
            Reply::Map(m).into()
        }
    }
}

pub fn xsetid(ctx: &mut Ctx) -> Outcome {
    let args = ctx.args;
    let key = args[1].clone();
    let id = match id_arg(&args[2]) {
        Ok(id) => id,
        Err(o) => return o,
    };
    let mut entries_added: Option<u64> = None;
    let mut max_deleted: Option<StreamId> = None;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if args[i].eq_ignore_ascii_case(b"entriesadded") && more >= 1 {
            match parse_i64(&args[i + 1]) {
                Some(v) if v < 0 => return err(msg::XSETID_ENTRIES_ADDED_NEGATIVE),
                Some(v) => entries_added = Some(v as u64),
                None => return err(msg::NOT_INT),
            }
            i += 2;
        } else if args[i].eq_ignore_ascii_case(b"maxdeletedid") && more >= 1 {
            let m = match id_arg(&args[i + 1]) {
                Ok(m) => m,
                Err(o) => return o,
            };
            if id < m {
                return err(msg::XSETID_BELOW_MAX_DELETED);
            }
            max_deleted = Some(m);
            i += 2;
        } else {
            return err(msg::SYNTAX);
        }
    }
    let s = match stream_mut(ctx, &key) {
        Err(o) => return o,
        Ok(None) => return err(msg::NO_SUCH_KEY),
        Ok(Some(s)) => s,
    };
    if let Some((top, _)) = s.last() {
        if id < top {
            return err(msg::XSETID_TOO_SMALL);
        }
        if entries_added.is_some_and(|a| (s.len() as u64) > a) {
            return err(msg::XSETID_ENTRIES_ADDED_SMALL);
        }
    }
    s.last_id = id;
    if let Some(a) = entries_added {
        s.entries_added = a;
    }
    if let Some(m) = max_deleted {
        s.max_deleted = m;
    }
    let db = ctx.client.db;
    ctx.engine.touch(db, &key);
    ctx.notify(EventClass::Stream, "xsetid", &key);
    Reply::Ok.into()
}
