//! Transactions: MULTI, EXEC, DISCARD, WATCH and UNWATCH.
//!
//! Dispatch queues a client's commands after MULTI and calls [`exec`] itself when EXEC comes,
//! so the queued commands run under the one lock dispatch already holds.

use super::{arity_ok, call, lookup_index, CommandFlags, Ctx, Outcome, COMMANDS};
use crate::engine::Engine;
use crate::reply::{msg, Reply};
use crate::state::{ClientState, Shared};
use bytes::Bytes;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub fn multi(ctx: &mut Ctx) -> Outcome {
    if ctx.client.multi.is_some() {
        return Reply::error(msg::MULTI_NESTED).into();
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_error = false;
    ctx.client.info.multi_queued.store(0, Relaxed);
    ctx.client.info.in_multi.store(true, Relaxed);
    Reply::Ok.into()
}

/// EXEC (at `exec_index` in the table): runs the queued commands atomically, or aborts on
/// errors and WATCH conflicts.
pub(super) fn exec(
    shared: &Shared,
    engine: &mut Engine,
    client: &mut ClientState,
    exec_index: usize,
) -> Reply {
    let Some(queued) = client.multi.take() else {
        shared.stats.record_error(msg::EXEC_WITHOUT_MULTI);
        return Reply::error(msg::EXEC_WITHOUT_MULTI);
    };
    client.info.in_multi.store(false, Relaxed);
    let had_error = std::mem::take(&mut client.multi_error);
    let dirty = client.dirty.load(Relaxed);
    unwatch_all(engine, client);
    if had_error {
        shared.stats.record_error(msg::EXECABORT);
        return Reply::error(msg::EXECABORT);
    }
    if dirty {
        return Reply::NullArray;
    }
    let mut replies = Vec::with_capacity(queued.len());
    // The log gets the transaction's effects as one MULTI … EXEC block.
    if let Some(f) = engine.feed.as_mut() {
        f.begin_block();
    }
    for args in &queued {
        let Some(index) = lookup_index(&args[0]) else {
            continue;
        };
        // Blocking commands inside MULTI never block (handlers check `nested`).
        replies.push(call(shared, engine, client, index, args, true).into_reply());
    }
    if let Some(offset) = engine.feed.as_mut().and_then(|f| f.end_block()) {
        client.aof_wait = offset;
    }
    engine.stats.of(exec_index).calls += 1;
    engine.serve_ready();
    Reply::Array(replies)
}

/// EXEC's entry in the table. Dispatch runs every EXEC through [`exec`] (and scripts may not
/// call it), so this answers as EXEC without MULTI would, should anything else ever call it.
pub fn exec_outside(_ctx: &mut Ctx) -> Outcome {
    Reply::error(msg::EXEC_WITHOUT_MULTI).into()
}

pub fn discard(ctx: &mut Ctx) -> Outcome {
    if ctx.client.multi.take().is_none() {
        return Reply::error(msg::DISCARD_WITHOUT_MULTI).into();
    }
    ctx.client.multi_error = false;
    ctx.client.info.in_multi.store(false, Relaxed);
    unwatch_all(ctx.engine, ctx.client);
    Reply::Ok.into()
}

pub fn watch(ctx: &mut Ctx) -> Outcome {
    if ctx.client.multi.is_some() {
        return Reply::error(msg::WATCH_IN_MULTI).into();
    }
    let db = ctx.client.db;
    for key in &ctx.args[1..] {
        // A key that already expired counts as absent from the start.
        ctx.engine.expire_if_due(db, key, ctx.now_ms);
        let entry = (db, key.clone());
        if !ctx.client.watched.contains(&entry) {
            ctx.engine.watch(db, key.clone(), &ctx.client.dirty);
            ctx.client.watched.push(entry);
        }
    }
    Reply::Ok.into()
}

pub fn unwatch(ctx: &mut Ctx) -> Outcome {
    unwatch_all(ctx.engine, ctx.client);
    Reply::Ok.into()
}

/// Forgets every WATCH of a client and clears its dirty flag.
pub fn unwatch_all(engine: &mut Engine, client: &mut ClientState) {
    if !client.watched.is_empty() {
        let keys = std::mem::take(&mut client.watched);
        engine.unwatch(&keys, &client.dirty);
    }
    client.dirty.store(false, Relaxed);
}

/// Answers one command of an authenticated client while a script has run past the busy
/// threshold, without the keyspace (the script holds it), as Redis 7.0 does: an unknown command
/// or wrong arity is refused as usual; MULTI, DISCARD and UNWATCH work (they are `allow-busy`);
/// EXEC discards the transaction with `-EXECABORT` naming BUSY; anything else gets `-BUSY`
/// and, inside MULTI, makes the transaction fail. WATCH outside MULTI answers `-BUSY`, unlike
/// Redis: registering a watch needs the keyspace. SHUTDOWN and SCRIPT KILL are the caller's.
/// `busy` is the -BUSY text that applies (a script's or a function's).
pub fn answer_busy(shared: &Shared, client: &mut ClientState, args: &[Bytes], busy: &str) -> Reply {
    let refuse = |client: &mut ClientState, err: String| {
        if client.multi.is_some() {
            client.multi_error = true;
        }
        shared.stats.record_error(&err);
        Reply::error(err)
    };
    let Some(index) = lookup_index(&args[0]) else {
        return refuse(client, msg::unknown_command(&args[0], &args[1..]));
    };
    let spec = &COMMANDS[index];
    if !arity_ok(spec, args.len()) {
        return refuse(client, msg::wrong_args(spec.name));
    }
    let in_multi = client.multi.is_some();
    match spec.name {
        "exec" => {
            release_without_lock(client);
            let err = msg::execabort_because(busy);
            shared.stats.record_error(&err);
            Reply::error(err)
        }
        "multi" if in_multi => refuse(client, msg::MULTI_NESTED.to_string()),
        "multi" => {
            client.multi = Some(Vec::new());
            client.multi_error = false;
            client.info.in_multi.store(true, Relaxed);
            Reply::Ok
        }
        "discard" if !in_multi => refuse(client, msg::DISCARD_WITHOUT_MULTI.to_string()),
        "discard" => {
            release_without_lock(client);
            Reply::Ok
        }
        "watch" if in_multi => refuse(client, msg::WATCH_IN_MULTI.to_string()),
        _ if in_multi
            && spec.flags.contains(CommandFlags::ALLOW_BUSY)
            && !spec.flags.contains(CommandFlags::TX_IMMEDIATE) =>
        {
            if let Some(q) = client.multi.as_mut() {
                q.push(args.to_vec());
            }
            Reply::status("QUEUED")
        }
        "unwatch" => {
            release_without_lock(client);
            Reply::Ok
        }
        _ => refuse(client, busy.to_string()),
    }
}

/// Ends a client's transaction and forgets its watches without the keyspace lock: the client
/// takes a fresh dirty flag, and the registry drops the old one when it next sees it.
fn release_without_lock(client: &mut ClientState) {
    client.multi = None;
    client.multi_error = false;
    client.info.in_multi.store(false, Relaxed);
    if !client.watched.is_empty() {
        client.watched.clear();
        client.dirty = Arc::new(AtomicBool::new(false));
    } else {
        client.dirty.store(false, Relaxed);
    }
}
