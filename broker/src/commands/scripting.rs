//! EVAL, EVALSHA, their read-only forms, and SCRIPT.

use super::{call, lookup_index, parse_i64, CommandFlags, Ctx, Outcome, COMMANDS};
use crate::engine::Engine;
use crate::reply::{msg, Reply};
use crate::scripting::{CommandRunner, Scripting};
use crate::state::{ClientState, Shared};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Runs a script's `redis.call`s through the normal command path, with scripts' restrictions.
/// It owns the engine and the client while the script runs (both are swapped back after,
/// and the runner, holding stand-ins, is kept in `Scripting::spare_runner` for the next one).
struct ScriptRunner {
    /// Set only while a script runs (a kept runner must not keep the server alive).
    shared: Option<Arc<Shared>>,
    engine: Engine,
    client: ClientState,
    readonly: bool,
}

impl CommandRunner for ScriptRunner {
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }

    fn run(&mut self, args: Vec<Bytes>) -> Reply {
        let Some(index) = lookup_index(&args[0]) else {
            return Reply::error(msg::SCRIPT_UNKNOWN_COMMAND);
        };
        let spec = &COMMANDS[index];
        if !super::arity_ok(spec, args.len()) {
            return Reply::error(msg::SCRIPT_WRONG_ARGS);
        }
        if spec.flags.contains(CommandFlags::NOSCRIPT) {
            return Reply::error(msg::SCRIPT_NOT_ALLOWED);
        }
        let Some(shared) = self.shared.as_ref() else {
            return Reply::error(msg::NO_SCRIPT_RUNNING);
        };
        if shared.script_monitor.migrate.load(Ordering::Relaxed) {
            // Stopped to be re-run from the start: it must not change anything any more.
            return Reply::error(msg::SCRIPT_MOVED_REPLY);
        }
        if spec.is_write() {
            if self.readonly {
                return Reply::error(msg::SCRIPT_WRITE_IN_READONLY);
            }
            shared.script_monitor.wrote.store(true, Ordering::Relaxed);
        }
        call(shared, &mut self.engine, &mut self.client, index, &args, true).into_reply()
    }
}

/// Whether `name` is an EVAL-family command: the ones a connection tries inline and otherwise
/// hands to the script thread.
pub fn is_script_command(name: &[u8]) -> bool {
    ["eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"]
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c.as_bytes()))
}

/// One EVAL-family call: the script (body or SHA), its keys and arguments, and how to run it.
struct EvalCall<'a> {
    script: &'a Bytes,
    keys: &'a [Bytes],
    argv: &'a [Bytes],
    by_sha: bool,
    readonly: bool,
    /// Tried on a connection's event loop (see [`Outcome::Migrate`]).
    inline: bool,
}

fn eval_generic(ctx: &mut Ctx, by_sha: bool, readonly: bool) -> Outcome {
    let numkeys = match parse_i64(&ctx.args[2]) {
        None => return Reply::error(msg::NOT_INT).into(),
        Some(n) if n < 0 => return Reply::error(msg::NUMKEYS_NEGATIVE).into(),
        Some(n) if n as usize > ctx.args.len() - 3 => return Reply::error(msg::NUMKEYS_TOO_MANY).into(),
        Some(n) => n as usize,
    };
    let Ctx {
        engine,
        client,
        shared,
        args,
        ..
    } = ctx;
    let monitor = &shared.script_monitor;
    let call = EvalCall {
        script: &args[1],
        keys: &args[3..3 + numkeys],
        argv: &args[3 + numkeys..],
        by_sha,
        readonly,
        inline: monitor.inline.load(Ordering::Relaxed),
    };
    // A script is logged as its effects: the write commands it ran, as one MULTI … EXEC
    // block (none if it wrote nothing), so a replay needs neither the script nor its cache.
    if let Some(f) = engine.feed.as_mut() {
        f.begin_block();
    }
    // The interpreter is created on first use (it costs ~100 KB and a few ms).
    let out = engine
        .with_scripting(monitor, |scripting, engine| {
            run_script(scripting, engine, client, shared, &call)
        })
        .unwrap_or_else(|e| Reply::error(msg::lua_start_failed(e)).into());
    if let Some(offset) = engine.feed.as_mut().and_then(|f| f.end_block()) {
        client.aof_wait = offset;
    }
    out
}

/// Runs a script with the interpreter the engine lends: the engine and the client move into the
/// script's runner for the duration and come back before this returns.
fn run_script(
    scripting: &mut Scripting,
    engine: &mut Engine,
    client: &mut ClientState,
    shared: &Shared,
    call: &EvalCall,
) -> Outcome {
    let monitor = &shared.script_monitor;
    // Only a script with a record of finishing fast runs inline; anything else (compiling a
    // new body included) goes to the script thread.
    let sha: std::borrow::Cow<'_, str> = match (call.by_sha, call.inline) {
        (true, _) => crate::scripting::normalized_sha(call.script),
        (false, true) => crate::scripting::sha1_hex(call.script).into(),
        (false, false) => match scripting.load(call.script) {
            Ok(sha) => sha.into(),
            Err(e) => return e.into(),
        },
    };
    match scripting.status(&sha) {
        None if call.by_sha => return Reply::error(msg::NOSCRIPT).into(),
        // Not known to finish fast (or not compiled yet): the script thread runs it.
        Some(false) | None if call.inline => return Outcome::Migrate,
        _ => {}
    }
    let Some(shared) = shared.me.upgrade() else {
        return Reply::error(msg::SHUTTING_DOWN).into();
    };
    monitor.begin();
    // Scripts need structured replies from the commands they call.
    let raw = std::mem::replace(&mut client.raw_replies, false);
    let mut runner = match scripting
        .spare_runner
        .take()
        .map(|r| r.downcast::<ScriptRunner>())
    {
        Some(Ok(r)) => r,
        _ => Box::new(ScriptRunner {
            shared: None,
            engine: Engine::placeholder(engine.keyspace.queues.clone()),
            client: ClientState::new(client.info.clone(), true),
            readonly: call.readonly,
        }),
    };
    runner.shared = Some(shared);
    runner.readonly = call.readonly;
    let proto = client.proto;
    std::mem::swap(&mut runner.engine, engine);
    std::mem::swap(&mut runner.client, client);
    let (reply, runner) = scripting.run(&sha, call.keys, call.argv, proto, runner);
    let migrated = monitor.migrate.swap(false, Ordering::Relaxed);
    // Lua's instruction count runs on across scripts, so one tick may be a previous script's
    // remainder; two mean this one executed more than 10,000 instructions.
    let long = migrated || monitor.hook_ticks.load(Ordering::Relaxed) >= 2;
    scripting.record_run(&sha, long);
    if call.inline {
        let counter = if migrated {
            &monitor.migrations
        } else {
            &monitor.inline_runs
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    match runner.into_any().downcast::<ScriptRunner>() {
        Ok(mut r) => {
            std::mem::swap(&mut r.engine, engine);
            std::mem::swap(&mut r.client, client);
            r.shared = None;
            scripting.spare_runner = Some(r);
        }
        Err(_) => tracing::error!("script runner of an unexpected type came back"),
    }
    client.raw_replies = raw;
    monitor.started_ms.store(0, Ordering::Relaxed);
    if migrated {
        // It wrote nothing (the hook only stops scripts that have not): run it again there.
        return Outcome::Migrate;
    }
    reply.into()
}

/// Runs `run` (a registered function's call, FCALL) with the engine and the client moved
/// into a script runner for the duration, as [`run_script`] does for EVAL; `readonly`
/// refuses writes. The interpreter is lent by the engine.
pub(super) fn run_with_runner(
    ctx: &mut Ctx,
    readonly: bool,
    run: impl FnOnce(
        &mut Scripting,
        Box<dyn CommandRunner>,
        crate::reply::Protocol,
    ) -> (Reply, Box<dyn CommandRunner>),
) -> Outcome {
    let Ctx {
        engine,
        client,
        shared,
        ..
    } = ctx;
    let Some(me) = shared.me.upgrade() else {
        return Reply::error(msg::SHUTTING_DOWN).into();
    };
    let monitor = &shared.script_monitor;
    // The function's effects are logged as one MULTI … EXEC block, as a script's are.
    if let Some(f) = engine.feed.as_mut() {
        f.begin_block();
    }
    let out = engine
        .with_scripting(monitor, |scripting, engine| {
            monitor.begin();
            let raw = std::mem::replace(&mut client.raw_replies, false);
            let mut runner = match scripting
                .spare_runner
                .take()
                .map(|r| r.downcast::<ScriptRunner>())
            {
                Some(Ok(r)) => r,
                _ => Box::new(ScriptRunner {
                    shared: None,
                    engine: Engine::placeholder(engine.keyspace.queues.clone()),
                    client: ClientState::new(client.info.clone(), true),
                    readonly,
                }),
            };
            runner.shared = Some(me);
            runner.readonly = readonly;
            let proto = client.proto;
            std::mem::swap(&mut runner.engine, engine);
            std::mem::swap(&mut runner.client, client);
            let (reply, runner) = run(scripting, runner, proto);
            match runner.into_any().downcast::<ScriptRunner>() {
                Ok(mut r) => {
                    std::mem::swap(&mut r.engine, engine);
                    std::mem::swap(&mut r.client, client);
                    r.shared = None;
                    scripting.spare_runner = Some(r);
                }
                Err(_) => tracing::error!("script runner of an unexpected type came back"),
            }
            client.raw_replies = raw;
            monitor.started_ms.store(0, Ordering::Relaxed);
            reply
        })
        .unwrap_or_else(|e| Reply::error(msg::lua_start_failed(e)));
    if let Some(offset) = engine.feed.as_mut().and_then(|f| f.end_block()) {
        client.aof_wait = offset;
    }
    out.into()
}

pub fn eval(ctx: &mut Ctx) -> Outcome {
    eval_generic(ctx, false, false)
}

pub fn evalsha(ctx: &mut Ctx) -> Outcome {
    eval_generic(ctx, true, false)
}

pub fn eval_ro(ctx: &mut Ctx) -> Outcome {
    eval_generic(ctx, false, true)
}

pub fn evalsha_ro(ctx: &mut Ctx) -> Outcome {
    eval_generic(ctx, true, true)
}

pub fn script(ctx: &mut Ctx) -> Outcome {
    let sub = ctx.args[1].to_ascii_lowercase();
    let n = ctx.args.len();
    let arity = |name: &str| Reply::error(msg::wrong_args(&format!("script|{name}")));
    match sub.as_slice() {
        b"load" if n == 3 => {
            let body = &ctx.args[2];
            let loaded = ctx
                .engine
                .with_scripting(&ctx.shared.script_monitor, |scripting, _| scripting.load(body));
            match loaded {
                Ok(Ok(sha)) => Reply::bulk(sha).into(),
                Ok(Err(e)) => e.into(),
                Err(e) => Reply::error(msg::lua_start_failed(e)).into(),
            }
        }
        b"load" => arity("load").into(),
        b"exists" if n >= 3 => {
            let known = |sha: &Bytes| ctx.engine.scripting().is_some_and(|s| s.exists(sha));
            Reply::Array(
                ctx.args[2..]
                    .iter()
                    .map(|s| Reply::Int(i64::from(known(s))))
                    .collect(),
            )
            .into()
        }
        b"exists" => arity("exists").into(),
        b"flush" if n <= 3 => {
            if n == 3
                && !ctx.args[2].eq_ignore_ascii_case(b"sync")
                && !ctx.args[2].eq_ignore_ascii_case(b"async")
            {
                return Reply::error(msg::SCRIPT_FLUSH_OPTION).into();
            }
            if let Some(s) = ctx.engine.scripting_mut() {
                s.flush();
            }
            Reply::Ok.into()
        }
        b"flush" => arity("flush").into(),
        // A script in progress is killed from another connection (see conn.rs); reaching
        // here means none is running.
        b"kill" if n == 2 => Reply::error(msg::NOTBUSY).into(),
        b"kill" => arity("kill").into(),
        b"help" if n == 2 => Reply::Array(
            [
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "EXISTS <sha1> [<sha1> ...]",
                "FLUSH [ASYNC|SYNC]",
                "KILL",
                "LOAD <script>",
            ]
            .iter()
            .map(|s| Reply::status(*s))
            .collect(),
        )
        .into(),
        _ => Reply::error(msg::unknown_subcommand("script", &ctx.args[1])).into(),
    }
}
