//! DBSIZE, FLUSHDB, FLUSHALL and TIME.

use super::{Ctx, Outcome};
use crate::metrics::unix_us;
use crate::reply::{msg, Reply};
use bytes::Bytes;

pub fn dbsize(ctx: &mut Ctx) -> Outcome {
    Reply::Int(ctx.db().len() as i64).into()
}

fn flush_args_ok(args: &[Bytes]) -> bool {
    match args.len() {
        1 => true,
        2 => args[1].eq_ignore_ascii_case(b"async") || args[1].eq_ignore_ascii_case(b"sync"),
        _ => false,
    }
}

pub fn flushdb(ctx: &mut Ctx) -> Outcome {
    if !flush_args_ok(ctx.args) {
        return Reply::error(msg::SYNTAX).into();
    }
    let db = ctx.client.db;
    ctx.engine.flush(Some(db));
    Reply::Ok.into()
}

pub fn flushall(ctx: &mut Ctx) -> Outcome {
    if !flush_args_ok(ctx.args) {
        return Reply::error(msg::SYNTAX).into();
    }
    ctx.engine.flush(None);
    Reply::Ok.into()
}

pub fn time(_ctx: &mut Ctx) -> Outcome {
    let us = unix_us();
    Reply::Array(vec![
        Reply::bulk((us / 1_000_000).to_string()),
        Reply::bulk((us % 1_000_000).to_string()),
    ])
    .into()
}
