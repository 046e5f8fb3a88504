//! FUNCTION (LOAD, DELETE, FLUSH, LIST, STATS, DUMP, RESTORE, KILL, HELP), FCALL and FCALL_RO:
//! Redis 7.0's libraries of Lua functions, on the scripts' interpreter.
//!
//! Libraries live with the interpreter; FLUSHALL leaves them, as in Redis. A change to them is
//! logged to the append-only file as the command that made it, and a rewrite loads them first.

use super::scripting::run_with_runner;
use super::{glob_match, parse_i64, Ctx, Outcome};
use crate::reply::{msg, Reply};
use crate::scripting::functions::{RestorePolicy, ALLOW_OOM, NO_WRITES};
use crate::scripting::ScriptMonitor;
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;

const HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];

pub fn function(ctx: &mut Ctx) -> Outcome {
    let sub = ctx.args[1].to_ascii_lowercase();
    let n = ctx.args.len();
    let arity = |name: &str| Reply::error(msg::wrong_args(&format!("function|{name}"))).into();
    match sub.as_slice() {
        b"load" if n >= 3 => load(ctx),
        b"load" => arity("load"),
        b"delete" if n == 3 => {
            let name = String::from_utf8_lossy(&ctx.args[2]).into_owned();
            let deleted = match ctx.engine.scripting_mut() {
                Some(s) => s.function_delete(&name),
                None => Err(Reply::error(msg::FUNCTION_NO_SUCH_LIBRARY)),
            };
            changed(ctx, deleted)
        }
        b"delete" => arity("delete"),
        b"flush" if n <= 3 => {
            if n == 3
                && !ctx.args[2].eq_ignore_ascii_case(b"sync")
                && !ctx.args[2].eq_ignore_ascii_case(b"async")
            {
                return Reply::error(msg::FUNCTION_FLUSH_OPTION).into();
            }
            if let Some(s) = ctx.engine.scripting_mut() {
                s.function_flush();
            }
            changed(ctx, Ok(()))
        }
        b"flush" => Reply::error(msg::subcommand_arity("function", &ctx.args[1])).into(),
        b"list" => list(ctx),
        b"stats" if n == 2 => stats(ctx),
        b"stats" => arity("stats"),
        b"dump" if n == 2 => {
            let payload = match ctx.engine.scripting() {
                Some(s) => s.function_dump(),
                None => match ctx
                    .engine
                    .with_scripting(&ctx.shared.script_monitor, |s, _| s.function_dump())
                {
                    Ok(p) => p,
                    Err(e) => return Reply::error(msg::lua_start_failed(e)).into(),
                },
            };
            Reply::Bulk(Bytes::from(payload)).into()
        }
        b"dump" => arity("dump"),
        b"restore" if n == 3 || n == 4 => {
            let policy = match ctx.args.get(3).map(|a| a.to_ascii_lowercase()) {
                None => RestorePolicy::Append,
                Some(p) if p == b"append" => RestorePolicy::Append,
                Some(p) if p == b"flush" => RestorePolicy::Flush,
                Some(p) if p == b"replace" => RestorePolicy::Replace,
                Some(_) => return Reply::error(msg::FUNCTION_RESTORE_POLICY).into(),
            };
            let payload = ctx.args[2].clone();
            let restored = ctx
                .engine
                .with_scripting(&ctx.shared.script_monitor, |s, _| {
                    s.function_restore(&payload, policy)
                })
                .unwrap_or_else(|e| Err(Reply::error(msg::lua_start_failed(e))));
            changed(ctx, restored)
        }
        b"restore" => arity("restore"),
        // A function in progress is killed from another connection (see conn.rs); reaching
        // here means none is running.
        b"kill" if n == 2 => Reply::error(msg::NOTBUSY).into(),
        b"kill" => arity("kill"),
        b"help" if n == 2 => Reply::Array(HELP.iter().map(|s| Reply::status(*s)).collect()).into(),
        _ => Reply::error(msg::unknown_subcommand("function", &ctx.args[1])).into(),
    }
}

/// After a change to the libraries: logs the command as sent (replaying it does the same).
fn changed(ctx: &mut Ctx, result: Result<(), Reply>) -> Outcome {
    match result {
        Ok(()) => {
            log_change(ctx);
            Reply::Ok.into()
        }
        Err(e) => e.into(),
    }
}

fn log_change(ctx: &mut Ctx) {
    ctx.engine.dirty += 1;
    if let Some(offset) = ctx.engine.log(ctx.client.db, ctx.args) {
        ctx.client.aof_wait = offset;
    }
}

fn load(ctx: &mut Ctx) -> Outcome {
    let mut replace = false;
    let mut i = 2;
    // Options come before the code, which is the last argument.
    while i < ctx.args.len() - 1 {
        if ctx.args[i].eq_ignore_ascii_case(b"replace") {
            replace = true;
            i += 1;
        } else {
            return Reply::error(msg::function_load_unknown_option(&ctx.args[i])).into();
        }
    }
    let code = ctx.args[ctx.args.len() - 1].clone();
    let loaded = ctx
        .engine
        .with_scripting(&ctx.shared.script_monitor, |s, _| s.function_load(&code, replace))
        .unwrap_or_else(|e| Err(Reply::error(msg::lua_start_failed(e))));
    match loaded {
        Ok(name) => {
            log_change(ctx);
            Reply::bulk(name).into()
        }
        Err(e) => e.into(),
    }
}

fn list(ctx: &mut Ctx) -> Outcome {
    let (mut with_code, mut pattern) = (false, None);
    let mut i = 2;
    while i < ctx.args.len() {
        let arg = &ctx.args[i];
        if arg.eq_ignore_ascii_case(b"withcode") && !with_code {
            with_code = true;
        } else if arg.eq_ignore_ascii_case(b"libraryname") && pattern.is_none() {
            let Some(p) = ctx.args.get(i + 1) else {
                return Reply::error(msg::FUNCTION_LIST_NO_PATTERN).into();
            };
            pattern = Some(p.clone());
            i += 1;
        } else {
            return Reply::error(msg::function_list_unknown(arg)).into();
        }
        i += 1;
    }
    let Some(scripting) = ctx.engine.scripting() else {
        return Reply::Array(Vec::new()).into();
    };
    let libs = scripting
        .libraries
        .iter()
        .filter(|l| {
            pattern
                .as_ref()
                .is_none_or(|p| glob_match(p, l.name.as_bytes(), false))
        })
        .map(|lib| {
            let functions = lib
                .functions
                .iter()
                .map(|f| {
                    Reply::Map(vec![
                        (Reply::bulk("name"), Reply::bulk(f.name.clone())),
                        (
                            Reply::bulk("description"),
                            f.description.clone().map_or(Reply::Null, Reply::bulk),
                        ),
                        (
                            Reply::bulk("flags"),
                            Reply::Set(f.flag_names().map(Reply::status).collect()),
                        ),
                    ])
                })
                .collect();
            let mut fields = vec![
                (Reply::bulk("library_name"), Reply::bulk(lib.name.clone())),
                (Reply::bulk("engine"), Reply::bulk("LUA")),
                (Reply::bulk("functions"), Reply::Array(functions)),
            ];
            if with_code {
                fields.push((Reply::bulk("library_code"), Reply::Bulk(lib.code.clone())));
            }
            Reply::Map(fields)
        })
        .collect();
    Reply::Array(libs).into()
}

fn stats(ctx: &mut Ctx) -> Outcome {
    stats_reply(&ctx.shared.script_monitor).into()
}

/// FUNCTION STATS: the running function (answered from another connection while one runs),
/// and what is loaded.
pub fn stats_reply(monitor: &ScriptMonitor) -> Reply {
    let running = match monitor.function_call.lock().as_ref() {
        Some((name, command)) => Reply::Map(vec![
            (Reply::bulk("name"), Reply::bulk(name.clone())),
            (
                Reply::bulk("command"),
                Reply::Array(command.iter().cloned().map(Reply::Bulk).collect()),
            ),
            (
                Reply::bulk("duration_ms"),
                Reply::Int(monitor.running_for_ms() as i64),
            ),
        ]),
        None => Reply::Null,
    };
    Reply::Map(vec![
        (Reply::bulk("running_script"), running),
        (
            Reply::bulk("engines"),
            Reply::Map(vec![(
                Reply::bulk("LUA"),
                Reply::Map(vec![
                    (
                        Reply::bulk("libraries_count"),
                        Reply::Int(monitor.libraries_count.load(Relaxed) as i64),
                    ),
                    (
                        Reply::bulk("functions_count"),
                        Reply::Int(monitor.functions_count.load(Relaxed) as i64),
                    ),
                ]),
            )]),
        ),
    ])
}

pub fn fcall(ctx: &mut Ctx) -> Outcome {
    fcall_generic(ctx, false)
}

pub fn fcall_ro(ctx: &mut Ctx) -> Outcome {
    fcall_generic(ctx, true)
}

fn fcall_generic(ctx: &mut Ctx, readonly_command: bool) -> Outcome {
    let name = String::from_utf8_lossy(&ctx.args[1]).into_owned();
    let function = ctx
        .engine
        .scripting()
        .and_then(|s| s.libraries.function(&name))
        .map(|f| f.flags);
    let Some(flags) = function else {
        return Reply::error(msg::FUNCTION_NOT_FOUND).into();
    };
    let numkeys = match parse_i64(&ctx.args[2]) {
        None => return Reply::error(msg::FUNCTION_BAD_NUMKEYS).into(),
        Some(n) if n < 0 => return Reply::error(msg::NUMKEYS_NEGATIVE).into(),
        Some(n) if n as usize > ctx.args.len() - 3 => return Reply::error(msg::NUMKEYS_TOO_MANY).into(),
        Some(n) => n as usize,
    };
    let no_writes = flags & NO_WRITES != 0;
    if readonly_command && !no_writes {
        return Reply::error(msg::FUNCTION_RO_WRITE).into();
    }
    // Past maxmemory only a function that cannot write, or says it may, runs.
    if flags & (NO_WRITES | ALLOW_OOM) == 0 && ctx.shared.memory.over_limit(ctx.engine.now_us) {
        return Reply::error(msg::OOM).into();
    }
    // Functions run on the script thread (or where the caller already is: EXEC, the
    // thread itself), never inline on an event loop: none has a record of finishing fast.
    if ctx.shared.script_monitor.inline.load(Relaxed) {
        return Outcome::Migrate;
    }
    let keys = ctx.args[3..3 + numkeys].to_vec();
    let argv = ctx.args[3 + numkeys..].to_vec();
    let monitor = ctx.shared.script_monitor.clone();
    *monitor.function_call.lock() = Some((name.clone(), ctx.args.to_vec()));
    monitor.function_running.store(true, Relaxed);
    let out = run_with_runner(ctx, no_writes || readonly_command, |scripting, runner, proto| {
        scripting.function_call(&name, &keys, &argv, proto, runner)
    });
    monitor.function_running.store(false, Relaxed);
    *monitor.function_call.lock() = None;
    out
}
