//! Connection, server, introspection and transaction commands.

use super::{int_arg, parse_i64, Ctx, Outcome, COMMANDS};
use crate::engine::Engine;
use crate::metrics::unix_us;
use crate::reply::{msg, Protocol, Reply};
use crate::state::{ClientInfo, ClientState};
use crate::version::REDIS_VERSION;
use bytes::Bytes;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

pub fn ping(ctx: &mut Ctx) -> Outcome {
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

fn set_name(ctx: &mut Ctx, name: &[u8]) -> Result<(), Reply> {
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

fn command_info(spec: &super::CommandSpec) -> Reply {
    Reply::Array(vec![
        Reply::bulk(spec.name),
        Reply::Int(i64::from(spec.arity)),
        Reply::Set(spec.flags.names().map(Reply::status).collect()),
        Reply::Int(i64::from(spec.first_key)),
        Reply::Int(i64::from(spec.last_key)),
        Reply::Int(i64::from(spec.step)),
        Reply::Set(vec![Reply::status(format!("@{}", spec.group))]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

/// Turns a syntax line like `key element [element ...]` into DOCS argument maps.
fn doc_arguments(syntax: &str) -> Reply {
    let mut args = Vec::new();
    let mut depth = 0;
    let mut token = String::new();
    let mut words = Vec::new();
    for c in syntax.chars() {
        match c {
            '[' => {
                depth += 1;
                token.push(c);
            }
            ']' => {
                depth -= 1;
                token.push(c);
            }
            ' ' if depth == 0 => {
                if !token.is_empty() {
                    words.push(std::mem::take(&mut token));
                }
            }
            _ => token.push(c),
        }
    }
    if !token.is_empty() {
        words.push(token);
    }
    for w in words {
        let optional = w.starts_with('[');
        let inner = w.trim_start_matches('[').trim_end_matches(']').to_string();
        let multiple = inner.ends_with("...");
        let name = inner
            .split_whitespace()
            .next()
            .unwrap_or("arg")
            .to_ascii_lowercase();
        let kind = if name == "key" || name == "source" || name == "destination" || name == "newkey" {
            "key"
        } else {
            "string"
        };
        let mut flags = Vec::new();
        if optional {
            flags.push(Reply::status("optional"));
        }
        if multiple {
            flags.push(Reply::status("multiple"));
        }
        args.push(Reply::Map(vec![
            (Reply::bulk("name"), Reply::bulk(&name)),
            (Reply::bulk("type"), Reply::bulk(kind)),
            (Reply::bulk("display_text"), Reply::bulk(&inner)),
            (Reply::bulk("flags"), Reply::Set(flags)),
        ]));
    }
    Reply::Array(args)
}

fn command_docs(spec: &super::CommandSpec) -> Reply {
    let mut fields = vec![
        (Reply::bulk("summary"), Reply::bulk(spec.summary)),
        (Reply::bulk("since"), Reply::bulk("1.0.0")),
        (Reply::bulk("group"), Reply::bulk(spec.group)),
    ];
    if !spec.syntax.is_empty() {
        fields.push((Reply::bulk("arguments"), doc_arguments(spec.syntax)));
    }
    Reply::Map(fields)
}

pub fn command(ctx: &mut Ctx) -> Outcome {
    let Some(sub) = ctx.args.get(1).map(|s| s.to_ascii_lowercase()) else {
        return Reply::Array(COMMANDS.iter().map(command_info).collect()).into();
    };
    let names = &ctx.args[2..];
    match sub.as_slice() {
        b"count" if names.is_empty() => Reply::Int(COMMANDS.len() as i64).into(),
        b"list" => Reply::Array(COMMANDS.iter().map(|c| Reply::bulk(c.name)).collect()).into(),
        b"info" => {
            if names.is_empty() {
                return Reply::Array(COMMANDS.iter().map(command_info).collect()).into();
            }
            Reply::Array(
                names
                    .iter()
                    .map(|n| super::lookup(n).map_or(Reply::NullArray, command_info))
                    .collect(),
            )
            .into()
        }
        b"docs" => {
            let specs: Vec<&super::CommandSpec> = if names.is_empty() {
                COMMANDS.iter().collect()
            } else {
                names.iter().filter_map(|n| super::lookup(n)).collect()
            };
            Reply::Map(
                specs
                    .into_iter()
                    .map(|s| (Reply::bulk(s.name), command_docs(s)))
                    .collect(),
            )
            .into()
        }
        b"getkeys" if !names.is_empty() => {
            let Some(spec) = super::lookup(&names[0]) else {
                return Reply::error(msg::INVALID_COMMAND).into();
            };
            if spec.first_key == 0 {
                return Reply::error(msg::NO_KEY_ARGUMENTS).into();
            }
            let last = if spec.last_key < 0 {
                names.len() as i32 + spec.last_key
            } else {
                spec.last_key
            };
            let keys = (spec.first_key..=last)
                .step_by(spec.step.max(1) as usize)
                .filter_map(|i| names.get(i as usize).cloned())
                .map(Reply::Bulk)
                .collect();
            Reply::Array(keys).into()
        }
        b"help" => Reply::Array(
            [
                "COMMAND <subcommand>",
                "COUNT",
                "DOCS [<command-name> ...]",
                "INFO [<command-name> ...]",
                "LIST",
                "GETKEYS <full-command>",
            ]
            .iter()
            .map(|s| Reply::status(*s))
            .collect(),
        )
        .into(),
        _ => Reply::error(msg::unknown_subcommand("command", &ctx.args[1])).into(),
    }
}

/// Resident set size of this process in bytes, from /proc (0 where unavailable).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

fn info_text(ctx: &mut Ctx, sections: &[String]) -> String {
    let all = sections.iter().any(|s| s == "all" || s == "everything");
    let default = sections.is_empty() || sections.iter().any(|s| s == "default");
    let want =
        |name: &str, in_default: bool| all || (default && in_default) || sections.iter().any(|s| s == name);
    let shared = ctx.shared;
    let mut out = String::new();
    let uptime = shared.started.elapsed().as_secs();
    if want("server", true) {
        let _ = write!(
            out,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_mode:standalone\r\nserver_name:autoscale-node\r\nautoscale_node_version:{}\r\nos:{}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nexecutable:autoscale-node\r\nconfig_file:\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            shared.run_id,
            shared.port.load(Relaxed),
            uptime,
            uptime / 86400,
            shared.config.read().hz,
        );
    }
    if want("clients", true) {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\ntracking_clients:0\r\nclients_in_timeout_table:{}\r\n\r\n",
            shared.clients.lock().len(),
            shared.config.read().maxclients,
            ctx.engine.blocking.blocked_clients(),
            ctx.engine.blocking.blocked_clients(),
        );
    }
    if want("memory", true) {
        let rss = resident_bytes();
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{:.2}M\r\nused_memory_rss:{rss}\r\nused_memory_peak:{rss}\r\nused_memory_lua:{}\r\nnumber_of_cached_scripts:{}\r\nscripts_run_inline:{}\r\nscripts_moved_to_script_thread:{}\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\nmem_allocator:{}\r\nnote:used_memory is the process resident set size\r\n\r\n",
            rss as f64 / 1048576.0,
            ctx.engine.scripting().map_or(0, |s| s.used_memory()),
            ctx.engine.scripting().map_or(0, |s| s.cached_scripts()),
            shared.script_monitor.inline_runs.load(std::sync::atomic::Ordering::Relaxed),
            shared.script_monitor.migrations.load(std::sync::atomic::Ordering::Relaxed),
            shared.config.read().mem_allocator,
        );
    }
    if want("persistence", true) {
        out.push_str("# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:0\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\n\r\n");
    }
    if want("stats", true) {
        let st = &shared.stats;
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:0\r\ntotal_error_replies:{}\r\n\r\n",
            st.total_connections.load(Relaxed),
            ctx.engine.stats.total,
            st.rejected_connections.load(Relaxed),
            ctx.engine.keyspace.expired_keys,
            st.total_error_replies.load(Relaxed),
        );
    }
    if want("replication", true) {
        out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_repl_offset:0\r\n\r\n");
    }
    if want("cpu", true) {
        out.push_str("# CPU\r\n\r\n");
    }
    if want("modules", true) {
        out.push_str("# Modules\r\n\r\n");
    }
    if want("errorstats", true) {
        out.push_str("# Errorstats\r\n");
        for (code, n) in shared.stats.errors.lock().iter() {
            let _ = write!(out, "errorstat_{code}:count={n}\r\n");
        }
        out.push_str("\r\n");
    }
    if want("commandstats", false) {
        out.push_str("# Commandstats\r\n");
        let mut names: Vec<_> = ctx
            .engine
            .stats
            .per_command
            .iter()
            .enumerate()
            .filter(|(_, s)| s.calls + s.rejected_calls > 0)
            .map(|(i, s)| (COMMANDS[i].name, s))
            .collect();
        names.sort_by_key(|(n, _)| *n);
        for (name, s) in names {
            let per = if s.calls == 0 {
                0.0
            } else {
                s.usec as f64 / s.calls as f64
            };
            let _ = write!(
                out,
                "cmdstat_{name}:calls={},usec={},usec_per_call={per:.2},rejected_calls={},failed_calls={}\r\n",
                s.calls, s.usec, s.rejected_calls, s.failed_calls
            );
        }
        out.push_str("\r\n");
    }
    if want("keyspace", true) {
        out.push_str("# Keyspace\r\n");
        for (i, db) in ctx.engine.keyspace.iter().enumerate() {
            if !db.is_empty() {
                let _ = write!(
                    out,
                    "db{i}:keys={},expires={},avg_ttl=0\r\n",
                    db.len(),
                    db.expires.len()
                );
            }
        }
        out.push_str("\r\n");
    }
    if want("queues", true) {
        out.push_str("# Queues\r\n");
        let (queues, omitted) = shared.queues.listed(crate::metrics::MAX_LISTED_QUEUES);
        if omitted > 0 {
            let _ = write!(out, "queues_omitted:{omitted}\r\n");
        }
        for q in queues {
            let name = String::from_utf8_lossy(&q.name);
            let prefix = if q.db == 0 {
                String::new()
            } else {
                format!("db{}:", q.db)
            };
            let fields: Vec<String> = q.fields().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = write!(out, "queue_{prefix}{name}:{}\r\n", fields.join(","));
        }
        out.push_str("\r\n");
    }
    // Redis ends the text with a single CRLF after the last section.
    if out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}

pub fn info(ctx: &mut Ctx) -> Outcome {
    let sections: Vec<String> = ctx.args[1..]
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let text = info_text(ctx, &sections);
    Reply::Verbatim(Bytes::from(text)).into()
}

/// `(name, value, mutable)` for CONFIG GET.
fn config_params(ctx: &Ctx) -> Vec<(&'static str, String, bool)> {
    let c = ctx.shared.config.read();
    vec![
        ("save", String::new(), true),
        ("appendonly", "no".into(), true),
        ("appendfsync", "everysec".into(), true),
        ("maxmemory", "0".into(), true),
        ("maxmemory-policy", "noeviction".into(), true),
        ("databases", c.databases.to_string(), false),
        ("port", ctx.shared.port.load(Relaxed).to_string(), false),
        ("requirepass", c.requirepass.clone().unwrap_or_default(), true),
        ("proto-max-bulk-len", c.proto_max_bulk_len.to_string(), true),
        (
            "client-query-buffer-limit",
            c.client_query_buffer_limit.to_string(),
            true,
        ),
        ("maxclients", c.maxclients.to_string(), true),
        (
            "protected-mode",
            if c.protected_mode { "yes" } else { "no" }.into(),
            true,
        ),
        ("timeout", c.timeout_s.to_string(), true),
        ("hz", c.hz.to_string(), true),
        (
            "busy-reply-threshold",
            c.busy_reply_threshold_ms.to_string(),
            true,
        ),
        ("lua-time-limit", c.busy_reply_threshold_ms.to_string(), true),
    ]
}

pub fn config(ctx: &mut Ctx) -> Outcome {
    let sub = ctx.args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"get" if ctx.args.len() >= 3 => {
            let params = config_params(ctx);
            let mut pairs = Vec::new();
            for (name, value, _) in &params {
                if ctx.args[2..]
                    .iter()
                    .any(|p| super::glob_match(p, name.as_bytes(), true))
                {
                    pairs.push((Reply::bulk(name), Reply::bulk(value)));
                }
            }
            Reply::Map(pairs).into()
        }
        b"set" if ctx.args.len() >= 4 && ctx.args.len().is_multiple_of(2) => {
            for pair in ctx.args[2..].chunks(2) {
                let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                let value = String::from_utf8_lossy(&pair[1]).into_owned();
                if let Err(e) = config_set(ctx, &name, &value) {
                    return e.into();
                }
            }
            Reply::Ok.into()
        }
        b"resetstat" if ctx.args.len() == 2 => {
            ctx.engine.stats.reset();
            ctx.shared.stats.errors.lock().clear();
            ctx.shared.stats.total_error_replies.store(0, Relaxed);
            Reply::Ok.into()
        }
        b"rewrite" if ctx.args.len() == 2 => Reply::error(msg::NO_CONFIG_FILE).into(),
        b"get" | b"set" | b"resetstat" | b"rewrite" => {
            Reply::error(msg::subcommand_arity("config", &ctx.args[1])).into()
        }
        _ => Reply::error(msg::unknown_subcommand("config", &ctx.args[1])).into(),
    }
}

fn config_set(ctx: &Ctx, name: &str, value: &str) -> Result<(), Reply> {
    let bad = |reason: &str| Reply::error(msg::config_set_failed(name, reason));
    let num = || value.parse::<u64>().map_err(|_| bad(msg::CONFIG_NOT_INTEGER));
    let mut c = ctx.shared.config.write();
    match name {
        "save" | "appendonly" | "appendfsync" | "maxmemory" | "maxmemory-policy" => {}
        "requirepass" => c.requirepass = (!value.is_empty()).then(|| value.to_string()),
        "proto-max-bulk-len" => c.proto_max_bulk_len = num()? as usize,
        "client-query-buffer-limit" => c.client_query_buffer_limit = num()? as usize,
        "maxclients" => {
            let n = num()?;
            if n == 0 || n > u64::from(u32::MAX) {
                return Err(bad(msg::CONFIG_MAXCLIENTS_RANGE));
            }
            if let Some(limit) = crate::state::open_file_limit() {
                let most = crate::state::fd_limited_maxclients(usize::MAX, limit);
                if n as usize > most {
                    return Err(bad(&msg::config_maxclients_os(most)));
                }
            }
            c.maxclients = n as usize;
        }
        "protected-mode" => {
            c.protected_mode = match value.to_ascii_lowercase().as_str() {
                "yes" => true,
                "no" => false,
                _ => return Err(bad(msg::CONFIG_NOT_YES_NO)),
            }
        }
        "timeout" => c.timeout_s = num()?,
        "hz" => c.hz = (num()? as u32).clamp(1, 500),
        "busy-reply-threshold" | "lua-time-limit" => c.busy_reply_threshold_ms = num()?,
        "databases" | "port" | "bind" => return Err(bad(msg::CONFIG_IMMUTABLE)),
        _ => return Err(Reply::error(msg::config_set_unknown(name))),
    }
    Ok(())
}

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

/// `QSTATS [RESET] [key ...]`: per-queue metrics as a map of maps (flat arrays in RESP2).
pub fn qstats(ctx: &mut Ctx) -> Outcome {
    let mut keys = &ctx.args[1..];
    let db = ctx.client.db;
    if keys.first().is_some_and(|k| k.eq_ignore_ascii_case(b"reset")) {
        keys = &keys[1..];
        let targets: Vec<Bytes> = if keys.is_empty() {
            ctx.shared
                .queues
                .snapshot()
                .into_iter()
                .filter(|q| q.db == db)
                .map(|q| q.name)
                .collect()
        } else {
            keys.to_vec()
        };
        ctx.shared.queues.reset(db, &targets);
        return Reply::Ok.into();
    }
    let stats: Vec<crate::metrics::QueueStats> = if keys.is_empty() {
        ctx.shared
            .queues
            .listed(crate::metrics::MAX_LISTED_QUEUES)
            .0
            .into_iter()
            .filter(|q| q.db == db)
            .collect()
    } else {
        keys.iter()
            .filter_map(|k| ctx.shared.queues.queue(db, k))
            .collect()
    };
    Reply::Map(
        stats
            .into_iter()
            .map(|q| {
                let fields = q
                    .fields()
                    .into_iter()
                    .map(|(k, v)| (Reply::bulk(k), Reply::bulk(v)))
                    .collect();
                (Reply::Bulk(q.name.clone()), Reply::Map(fields))
            })
            .collect(),
    )
    .into()
}

pub fn multi(ctx: &mut Ctx) -> Outcome {
    if ctx.client.multi.is_some() {
        return Reply::error(msg::MULTI_NESTED).into();
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_error = false;
    ctx.client.info.in_multi.store(true, Relaxed);
    Reply::Ok.into()
}

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
