//! Connection commands: PING, ECHO, AUTH, HELLO, SELECT, QUIT, RESET.

use super::transactions::unwatch_all;
use super::{int_arg, parse_i64, Ctx, Outcome};
use crate::reply::{msg, Protocol, Reply};
use crate::version::REDIS_VERSION;
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;

pub fn ping(ctx: &mut Ctx) -> Outcome {
    if ctx.args.len() <= 2 && ctx.client.info.pubsub.subscribed() {
        if let Some(r) = super::pubsub::subscribed_ping(ctx.client.proto, ctx.args.get(1)) {
            return r.into();
        }
    }
    match ctx.args.len() {
        1 => Reply::status("PONG").into(),
        2 => Reply::Bulk(ctx.args[1].clone()).into(),
        _ => Reply::error(msg::wrong_args("ping")).into(),
    }
}

pub fn echo(ctx: &mut Ctx) -> Outcome {
    Reply::Bulk(ctx.args[1].clone()).into()
}

fn check_password(ctx: &Ctx, user: &[u8], pass: &[u8]) -> Result<(), Reply> {
    let config = ctx.shared.config.read();
    match &config.requirepass {
        None if user == b"default" => Ok(()),
        None => Err(Reply::error(msg::WRONGPASS)),
        Some(p) if user == b"default" && p.as_bytes() == pass => Ok(()),
        Some(_) => Err(Reply::error(msg::WRONGPASS)),
    }
}

pub fn auth(ctx: &mut Ctx) -> Outcome {
    let (user, pass) = match ctx.args.len() {
        2 => (Bytes::from_static(b"default"), ctx.args[1].clone()),
        3 => (ctx.args[1].clone(), ctx.args[2].clone()),
        _ => return Reply::error(msg::SYNTAX).into(),
    };
    if ctx.args.len() == 2 && ctx.shared.config.read().requirepass.is_none() {
        return Reply::error(msg::AUTH_NOT_CONFIGURED).into();
    }
    match check_password(ctx, &user, &pass) {
        Ok(()) => {
            ctx.client.authenticated = true;
            Reply::Ok.into()
        }
        Err(e) => e.into(),
    }
}

pub fn hello(ctx: &mut Ctx) -> Outcome {
    let mut proto = ctx.client.proto;
    let mut i = 1;
    if let Some(v) = ctx.args.get(1) {
        match parse_i64(v) {
            None => return Reply::error(msg::HELLO_PROTO_NOT_INT).into(),
            Some(2) => proto = Protocol::Resp2,
            Some(3) => proto = Protocol::Resp3,
            Some(_) => return Reply::error(msg::HELLO_PROTO).into(),
        }
        i = 2;
    }
    let mut setname = None;
    while i < ctx.args.len() {
        let opt = &ctx.args[i];
        if opt.eq_ignore_ascii_case(b"auth") && i + 2 < ctx.args.len() {
            let (user, pass) = (ctx.args[i + 1].clone(), ctx.args[i + 2].clone());
            if let Err(e) = check_password(ctx, &user, &pass) {
                return e.into();
            }
            ctx.client.authenticated = true;
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"setname") && i + 1 < ctx.args.len() {
            setname = Some(ctx.args[i + 1].clone());
            i += 2;
        } else {
            return Reply::error(msg::hello_syntax(opt)).into();
        }
    }
    if !ctx.client.authenticated {
        return Reply::error(msg::HELLO_NOAUTH).into();
    }
    if let Some(name) = setname {
        if let Err(e) = set_name(ctx, &name) {
            return e.into();
        }
    }
    ctx.client.proto = proto;
    ctx.client
        .info
        .resp
        .store(if proto == Protocol::Resp3 { 3 } else { 2 }, Relaxed);
    Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("redis")),
        (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
        (
            Reply::bulk("proto"),
            Reply::Int(if proto == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (Reply::bulk("id"), Reply::Int(ctx.client.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (Reply::bulk("role"), Reply::bulk("master")),
        (Reply::bulk("modules"), Reply::Array(vec![])),
    ])
    .into()
}

pub fn select(ctx: &mut Ctx) -> Outcome {
    let n = match int_arg(&ctx.args[1]) {
        Ok(n) => n,
        Err(e) => return e.into(),
    };
    if n < 0 || n as usize >= ctx.engine.keyspace.len() {
        return Reply::error(msg::DB_INDEX).into();
    }
    ctx.client.db = n as usize;
    ctx.client.info.db.store(n as usize, Relaxed);
    Reply::Ok.into()
}

pub fn quit(_ctx: &mut Ctx) -> Outcome {
    Outcome::Close(Reply::Ok)
}

pub fn reset(ctx: &mut Ctx) -> Outcome {
    unwatch_all(ctx.engine, ctx.client);
    ctx.engine.pubsub.remove_client(&ctx.client.info.pubsub);
    ctx.client.multi = None;
    ctx.client.multi_error = false;
    ctx.client.db = 0;
    ctx.client.proto = Protocol::Resp2;
    ctx.client.name = None;
    ctx.client.authenticated = ctx.shared.config.read().requirepass.is_none();
    *ctx.client.info.name.lock() = None;
    ctx.client.info.db.store(0, Relaxed);
    ctx.client.info.resp.store(2, Relaxed);
    ctx.client.info.in_multi.store(false, Relaxed);
    Reply::status("RESET").into()
}

pub(super) fn set_name(ctx: &mut Ctx, name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Reply::error(msg::CLIENT_NAME_SPACES));
    }
    let name = (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned());
    ctx.client.name = name.clone();
    *ctx.client.info.name.lock() = name.clone();
    if let Some(n) = name {
        let id = ctx.client.id;
        ctx.shared
            .queues
            .emit(|| crate::metrics::QueueEvent::NameSet { client: id, name: n });
    }
    Ok(())
}
