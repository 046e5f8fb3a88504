//! CLIENT and its subcommands: names, ids, LIST, INFO, KILL, SETINFO.

use super::connection::set_name;
use super::{parse_i64, Ctx, Outcome, COMMANDS};
use crate::reply::{msg, Reply};
use crate::state::ClientInfo;
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;

pub fn client(ctx: &mut Ctx) -> Outcome {
    let sub = ctx.args[1].to_ascii_lowercase();
    let argc = ctx.args.len();
    match (sub.as_slice(), argc) {
        (b"setname", 3) => {
            let name = ctx.args[2].clone();
            match set_name(ctx, &name) {
                Ok(()) => Reply::Ok.into(),
                Err(e) => e.into(),
            }
        }
        (b"getname", 2) => ctx.client.name.as_ref().map_or(Reply::Null, Reply::bulk).into(),
        (b"id", 2) => Reply::Int(ctx.client.id as i64).into(),
        (b"info", 2) => Reply::Verbatim(Bytes::from(describe(&ctx.client.info) + "\n")).into(),
        (b"list", _) => client_list(ctx),
        (b"kill", 3..) => client_kill(ctx),
        (b"setinfo", 4) => {
            let attr = ctx.args[2].to_ascii_lowercase();
            let value = String::from_utf8_lossy(&ctx.args[3]).into_owned();
            if value
                .chars()
                .any(|c| c == ' ' || c == '\n' || !c.is_ascii_graphic())
            {
                return Reply::error(msg::client_info_invalid(&ctx.args[2])).into();
            }
            match attr.as_slice() {
                b"lib-name" => *ctx.client.info.lib_name.lock() = Some(value),
                b"lib-ver" => *ctx.client.info.lib_ver.lock() = Some(value),
                _ => return Reply::error(msg::unrecognized_option(&ctx.args[2])).into(),
            }
            Reply::Ok.into()
        }
        (b"no-evict" | b"no-touch", 3) => Reply::Ok.into(),
        (b"help", 2) => Reply::Array(
            [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ID",
                "GETNAME",
                "SETNAME <name>",
                "INFO",
                "LIST [TYPE normal] [ID id ...]",
                "KILL <ip:port> | KILL [ID id] [ADDR ip:port] [LADDR ip:port] [SKIPME yes|no]",
                "SETINFO LIB-NAME|LIB-VER <value>",
            ]
            .iter()
            .map(|s| Reply::status(*s))
            .collect(),
        )
        .into(),
        (b"setname" | b"getname" | b"id" | b"info" | b"setinfo" | b"no-evict" | b"no-touch" | b"help", _) => {
            Reply::error(msg::subcommand_arity("client", &ctx.args[1])).into()
        }
        _ => Reply::error(msg::unknown_subcommand("client", &ctx.args[1])).into(),
    }
}

/// One `CLIENT LIST` line for `info`.
fn describe(info: &ClientInfo) -> String {
    info.describe(COMMANDS.get(info.last_cmd.load(Relaxed)).map(|c| c.name))
}

fn client_list(ctx: &mut Ctx) -> Outcome {
    let mut ids: Option<Vec<u64>> = None;
    let mut i = 2;
    while i < ctx.args.len() {
        let opt = ctx.args[i].to_ascii_lowercase();
        if opt == b"type" && i + 1 < ctx.args.len() {
            let t = ctx.args[i + 1].to_ascii_lowercase();
            if !matches!(t.as_slice(), b"normal" | b"master" | b"replica" | b"pubsub") {
                return Reply::error(msg::unknown_client_type(&ctx.args[i + 1])).into();
            }
            if t != b"normal" {
                return Reply::Verbatim(Bytes::new()).into();
            }
            i += 2;
        } else if opt == b"id" && i + 1 < ctx.args.len() {
            let mut v = Vec::new();
            for a in &ctx.args[i + 1..] {
                match parse_i64(a) {
                    Some(n) if n > 0 => v.push(n as u64),
                    _ => return Reply::error(msg::INVALID_CLIENT_ID).into(),
                }
            }
            ids = Some(v);
            break;
        } else {
            return Reply::error(msg::SYNTAX).into();
        }
    }
    let clients = ctx.shared.clients.lock();
    let mut out = String::new();
    for (id, info) in clients.iter() {
        if ids.as_ref().is_some_and(|v| !v.contains(id)) {
            continue;
        }
        out.push_str(&describe(info));
        out.push('\n');
    }
    Reply::Verbatim(Bytes::from(out)).into()
}

fn client_kill(ctx: &mut Ctx) -> Outcome {
    let me = ctx.client.id;
    if ctx.args.len() == 3 {
        // Old form: CLIENT KILL addr:port
        let addr = String::from_utf8_lossy(&ctx.args[2]).into_owned();
        let clients = ctx.shared.clients.lock();
        return match clients.values().find(|c| c.addr.to_string() == addr) {
            Some(c) => {
                c.kill();
                Reply::Ok.into()
            }
            None => Reply::error(msg::NO_SUCH_CLIENT).into(),
        };
    }
    let (mut id, mut addr, mut laddr, mut skipme) = (None, None, None, true);
    let mut i = 2;
    while i + 1 < ctx.args.len() {
        let opt = ctx.args[i].to_ascii_lowercase();
        let val = String::from_utf8_lossy(&ctx.args[i + 1]).into_owned();
        match opt.as_slice() {
            b"id" => match val.parse::<u64>() {
                Ok(n) if n > 0 => id = Some(n),
                _ => return Reply::error(msg::CLIENT_ID_POSITIVE).into(),
            },
            b"addr" => addr = Some(val),
            b"laddr" => laddr = Some(val),
            b"skipme" => match val.to_ascii_lowercase().as_str() {
                "yes" => skipme = true,
                "no" => skipme = false,
                _ => return Reply::error(msg::SYNTAX).into(),
            },
            b"type" | b"user" | b"maxage" => {}
            _ => return Reply::error(msg::SYNTAX).into(),
        }
        i += 2;
    }
    if i != ctx.args.len() {
        return Reply::error(msg::SYNTAX).into();
    }
    let clients = ctx.shared.clients.lock();
    let mut killed = 0;
    for c in clients.values() {
        if (skipme && c.id == me)
            || id.is_some_and(|x| x != c.id)
            || addr.as_ref().is_some_and(|a| *a != c.addr.to_string())
            || laddr.as_ref().is_some_and(|a| *a != c.laddr.to_string())
        {
            continue;
        }
        c.kill();
        killed += 1;
    }
    Reply::Int(killed).into()
}
