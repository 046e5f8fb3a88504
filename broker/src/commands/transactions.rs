//! Transactions: MULTI, EXEC, DISCARD, WATCH and UNWATCH.
//!
//! Dispatch queues a client's commands after MULTI and calls [`exec`] itself when EXEC comes,
//! so the queued commands run under the one lock dispatch already holds.

use super::{call, lookup_index, Ctx, Outcome};
use crate::engine::Engine;
use crate::reply::{msg, Reply};
use crate::state::{ClientState, Shared};
use std::sync::atomic::Ordering::Relaxed;

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
