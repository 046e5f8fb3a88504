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
        // Nothing is evicted here (noeviction), so the protection has nothing to change.
        (b"no-evict" | b"no-touch", 3) => {
            let v = ctx.args[2].to_ascii_lowercase();
            if v == b"on" || v == b"off" {
                Reply::Ok.into()
            } else {
                Reply::error(msg::SYNTAX).into()
            }
        }
        (b"reply", 3) => client_reply(ctx),
        (b"unblock", 3 | 4) => client_unblock(ctx),
        (b"unblock", 5..) => Reply::error(msg::subcommand_arity("client", &ctx.args[1])).into(),
        (b"help", 2) => Reply::Array(CLIENT_HELP.iter().map(|s| Reply::status(*s)).collect()).into(),
        (b"reply" | b"unblock" | b"no-evict" | b"no-touch" | b"help", _) => {
            let full = format!("client|{}", String::from_utf8_lossy(&sub));
            Reply::error(msg::wrong_args(&full)).into()
        }
        (b"setname" | b"getname" | b"id" | b"info" | b"setinfo", _) => {
            Reply::error(msg::subcommand_arity("client", &ctx.args[1])).into()
        }
        _ => Reply::error(msg::unknown_subcommand("client", &ctx.args[1])).into(),
    }
}

/// Redis 7.0's CLIENT HELP, word for word (it lists subcommands we answer without effect).
const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

/// CLIENT REPLY ON|OFF|SKIP. OFF and SKIP answer nothing (the connection drops the empty
/// reply's place in its count too); inside a transaction they answer OK, so that EXEC's
/// array keeps one reply per command.
fn client_reply(ctx: &mut Ctx) -> Outcome {
    use crate::state::ReplyMode;
    let mode = ctx.args[2].to_ascii_lowercase();
    let silent = || {
        if ctx.nested {
            Reply::Ok
        } else {
            Reply::Raw(Bytes::new())
        }
    };
    match mode.as_slice() {
        b"on" => {
            ctx.client.reply_mode = ReplyMode::On;
            Reply::Ok.into()
        }
        b"off" => {
            let r = silent();
            ctx.client.reply_mode = ReplyMode::Off;
            r.into()
        }
        b"skip" => {
            let r = silent();
            if ctx.client.reply_mode != ReplyMode::Off {
                ctx.client.reply_mode = ReplyMode::SkipNext;
            }
            r.into()
        }
        _ => Reply::error(msg::SYNTAX).into(),
    }
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: 1 if the client was blocked in a blocking command.
fn client_unblock(ctx: &mut Ctx) -> Outcome {
    let id = match super::int_arg(&ctx.args[2]) {
        Ok(n) => n,
        Err(e) => return e.into(),
    };
    let reply = match ctx.args.get(3).map(|a| a.to_ascii_lowercase()) {
        None => Reply::NullArray,
        Some(r) if r == b"timeout" => Reply::NullArray,
        Some(r) if r == b"error" => Reply::error(msg::UNBLOCKED),
        Some(_) => return Reply::error(msg::UNBLOCK_REASON).into(),
    };
    let done = id > 0 && ctx.engine.unblock_client(id as u64, reply);
    Reply::Int(i64::from(done)).into()
}

/// One `CLIENT LIST` line for `info`.
fn describe(info: &ClientInfo) -> String {
    let name = COMMANDS.get(info.last_cmd.load(Relaxed)).map(|c| c.name);
    let full = match (name, info.last_sub.lock().as_deref()) {
        (Some(n), Some(sub)) if super::is_container(n) => Some(format!("{n}|{sub}")),
        (n, _) => n.map(str::to_string),
    };
    info.describe(full.as_deref())
}

fn client_list(ctx: &mut Ctx) -> Outcome {
    let mut ids: Option<Vec<u64>> = None;
    let mut kind: Option<String> = None;
    let mut i = 2;
    while i < ctx.args.len() {
        let opt = ctx.args[i].to_ascii_lowercase();
        if opt == b"type" && i + 1 < ctx.args.len() {
            let t = ctx.args[i + 1].to_ascii_lowercase();
            if !matches!(
                t.as_slice(),
                b"normal" | b"master" | b"replica" | b"slave" | b"pubsub"
            ) {
                return Reply::error(msg::unknown_client_type(&ctx.args[i + 1])).into();
            }
            kind = Some(String::from_utf8_lossy(&t).into_owned());
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
        if ids.as_ref().is_some_and(|v| !v.contains(id)) || kind.as_deref().is_some_and(|k| !of_type(info, k))
        {
            continue;
        }
        out.push_str(&describe(info));
        out.push('\n');
    }
    Reply::Verbatim(Bytes::from(out)).into()
}

/// Whether a client is of a CLIENT KILL / LIST `TYPE` (no replicas or masters here).
fn of_type(c: &ClientInfo, kind: &str) -> bool {
    match kind {
        "normal" => !c.pubsub.subscribed(),
        "pubsub" => c.pubsub.subscribed(),
        _ => false,
    }
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
    let mut kind: Option<String> = None;
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
            b"type" => match val.to_ascii_lowercase().as_str() {
                t @ ("normal" | "master" | "replica" | "slave" | "pubsub") => kind = Some(t.to_string()),
                _ => return Reply::error(msg::unknown_client_type(&ctx.args[i + 1])).into(),
            },
            // Only the default user exists.
            b"user" if val == "default" => {}
            b"user" => return Reply::error(msg::no_such_user(&ctx.args[i + 1])).into(),
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
            || kind.as_deref().is_some_and(|k| !of_type(c, k))
        {
            continue;
        }
        c.kill();
        killed += 1;
    }
    Reply::Int(killed).into()
}
