//! Lua 5.1 scripting with Redis's API: EVAL/EVALSHA, the script cache, `redis.*`, the RESP ↔
//! Lua conversions, a sandbox, and the hooks behind `SCRIPT KILL`.
//!
//! A script runs while its caller holds the keyspace lock, so nothing interleaves with it; each
//! `redis.call` goes through the normal command path (metrics, WATCH, readiness of blocked
//! clients, which are served once the script has finished).

mod call;
pub mod functions;
mod libs;
mod monitor;
mod reply;
mod sandbox;

pub use monitor::{ScriptMonitor, StopReason, INLINE_AFTER_RUNS, INLINE_BUDGET_MS};

use crate::reply::{msg, Reply};
use ahash::AHashMap as HashMap;
use bytes::Bytes;
use mlua::{Lua, LuaOptions, StdLib, Table, Value};
use std::sync::Arc;

/// The sandbox, in Lua, run once per interpreter. It protects every library table and the
/// globals with read-only proxies (see [`sandbox`]), removes what Redis 7 removes,
/// and returns the function that starts a script.
const PRELUDE: &str = include_str!("prelude.lua");

/// A SHA1 as given to EVALSHA, lower-cased (without an allocation when it already is).
pub fn normalized_sha(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(s) if !s.bytes().any(|b| b.is_ascii_uppercase()) => std::borrow::Cow::Borrowed(s),
        _ => std::borrow::Cow::Owned(String::from_utf8_lossy(raw).to_ascii_lowercase()),
    }
}

/// A cached script: where its compiled function is, and how it has behaved (to decide
/// whether it may run inline).
struct CachedScript {
    /// Index of the function in the cache table (a Lua table rather than an mlua reference
    /// per script: mlua's references live on a stack of about 8,000 slots).
    slot: i64,
    fast_runs: u32,
    /// Ran long (or had to migrate) once: never inline again until SCRIPT FLUSH.
    slow: bool,
}

/// Executes one `redis.call`/`redis.pcall` for a script; provided by the command layer.
///
/// The runner owns what it needs for the duration of the script (the keyspace is moved into
/// it and back), so the Lua callbacks can be created once and reach it through a thread-local
/// slot instead of being rebuilt for every EVAL.
pub trait CommandRunner: std::any::Any {
    /// Runs a command; `Reply::Error` for any failure (arity, unknown, not allowed...).
    fn run(&mut self, args: Vec<Bytes>) -> Reply;
    /// For taking the runner (and what it owns) back after the script.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
}

/// The Lua interpreter, the script cache and the sandboxed globals.
pub struct Scripting {
    lua: Lua,
    main: sandbox::MainThread,
    monitor: Arc<ScriptMonitor>,
    run: mlua::Function,
    /// The prelude's loader of a library's top-level code and its caller of a registered
    /// function (see `functions.rs`).
    load_library: mlua::Function,
    call_function: mlua::Function,
    /// Libraries of functions (FUNCTION LOAD), with their callbacks.
    pub libraries: functions::Libraries,
    /// The compiled functions, by [`CachedScript::slot`].
    cache: Table,
    next_slot: i64,
    /// By lowercase SHA1.
    scripts: HashMap<String, CachedScript>,
    /// Bytes of script bodies cached, for INFO.
    pub body_bytes: usize,
    /// The command layer's runner between scripts (it holds stand-ins for the keyspace and
    /// client, so a script does not build new ones).
    pub spare_runner: Option<Box<dyn std::any::Any + Send>>,
}

impl std::fmt::Debug for Scripting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripting")
            .field("scripts", &self.scripts.len())
            .finish()
    }
}

/// SHA1 of a script body, lowercase hex (the script's name in the cache).
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

// The RESP version scripts see for replies (`redis.setresp`), per call.
thread_local! {
    static SCRIPT_RESP: std::cell::Cell<u8> = const { std::cell::Cell::new(2) };
    /// The runner of the script executing on this thread (scripts never nest).
    static RUNNER: std::cell::RefCell<Option<Box<dyn CommandRunner>>> = const { std::cell::RefCell::new(None) };
}

impl Scripting {
    /// Builds the interpreter with Redis's libraries and sandbox.
    pub fn new(monitor: Arc<ScriptMonitor>) -> mlua::Result<Scripting> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        let globals = lua.globals();
        let redis = lua.create_table()?;
        redis.set("LOG_DEBUG", 0)?;
        redis.set("LOG_VERBOSE", 1)?;
        redis.set("LOG_NOTICE", 2)?;
        redis.set("LOG_WARNING", 3)?;
        redis.set("REDIS_VERSION", crate::version::REDIS_VERSION)?;
        redis.set("REDIS_VERSION_NUM", crate::version::REDIS_VERSION_NUM)?;
        redis.set(
            "sha1hex",
            lua.create_function(|_, s: mlua::LuaString| Ok(sha1_hex(&s.as_bytes())))?,
        )?;
        redis.set(
            "error_reply",
            lua.create_function(|lua, s: mlua::LuaString| {
                let t = lua.create_table()?;
                t.set("err", s)?;
                Ok(t)
            })?,
        )?;
        redis.set(
            "status_reply",
            lua.create_function(|lua, s: mlua::LuaString| {
                let t = lua.create_table()?;
                t.set("ok", s)?;
                Ok(t)
            })?,
        )?;
        redis.set(
            "log",
            lua.create_function(|_, (level, msg): (i64, mlua::LuaString)| {
                let text = String::from_utf8_lossy(&msg.as_bytes()).into_owned();
                match level {
                    0 => tracing::debug!(target: "script", "{text}"),
                    1 | 2 => tracing::info!(target: "script", "{text}"),
                    3 => tracing::warn!(target: "script", "{text}"),
                    _ => return Err(mlua::Error::runtime("Invalid debug level.")),
                }
                Ok(())
            })?,
        )?;
        redis.set(
            "setresp",
            lua.create_function(|_, v: i64| {
                if v != 2 && v != 3 {
                    return Err(mlua::Error::runtime("RESP version must be 2 or 3."));
                }
                SCRIPT_RESP.with(|r| r.set(v as u8));
                Ok(())
            })?,
        )?;
        globals.set("redis", redis)?;
        globals.set("cjson", libs::cjson(&lua)?)?;
        globals.set("bit", libs::bit(&lua)?)?;
        globals.set("struct", libs::structlib(&lua)?)?;
        globals.set("cmsgpack", libs::cmsgpack(&lua)?)?;
        // redis.call / redis.pcall dispatch to whatever runner the current EVAL installed.
        let (raw_call, raw_pcall, script_args) = call::functions(&lua)?;
        let handler = lua.create_function(error_handler)?;
        let kit = sandbox::kit(&lua)?;
        let encode = reply::encoder(&lua)?;
        let (run, load_library, call_function): (mlua::Function, mlua::Function, mlua::Function) = lua
            .load(PRELUDE)
            .set_name("=prelude")
            .call((raw_call, raw_pcall, handler, script_args, kit, encode))?;
        sandbox::install_hook(&lua)?;
        let main = sandbox::MainThread::of(&lua)?;
        let cache = lua.create_table()?;
        let libraries = functions::Libraries::new(&lua)?;
        Ok(Scripting {
            lua,
            main,
            monitor,
            run,
            load_library,
            call_function,
            libraries,
            cache,
            next_slot: 0,
            scripts: HashMap::new(),
            body_bytes: 0,
            spare_runner: None,
        })
    }

    /// `None` if `sha` (lowercase) is not cached, else whether it may run inline: it finished
    /// fast every time so far, enough times.
    pub fn status(&self, sha: &str) -> Option<bool> {
        self.scripts
            .get(sha)
            .map(|r| !r.slow && r.fast_runs >= INLINE_AFTER_RUNS)
    }

    /// Records one run of `sha`: `long` if it reached the instruction hook or was stopped
    /// inline to be re-run.
    pub fn record_run(&mut self, sha: &str, long: bool) {
        let Some(r) = self.scripts.get_mut(sha) else {
            return;
        };
        if long {
            r.slow = true;
        } else {
            r.fast_runs = r.fast_runs.saturating_add(1);
        }
    }

    pub fn cached_scripts(&self) -> usize {
        self.scripts.len()
    }

    pub fn used_memory(&self) -> usize {
        self.lua.used_memory()
    }

    /// Whether a script is cached; `sha` as given (any case).
    pub fn exists(&self, sha: &[u8]) -> bool {
        self.scripts.contains_key(normalized_sha(sha).as_ref())
    }

    pub fn flush(&mut self) {
        self.scripts.clear();
        self.body_bytes = 0;
        match self.lua.create_table() {
            Ok(t) => {
                self.cache = t;
                self.next_slot = 0;
            }
            // Out of memory: keep the old table (its slots are never reused).
            Err(e) => tracing::warn!(error = %e, "could not renew the script cache"),
        }
        self.lua.gc_collect().ok();
    }

    /// Compiles and caches a body; returns its SHA1 or the compile error reply. Bodies are
    /// always parsed as text: a precompiled chunk is refused as Redis refuses it.
    pub fn load(&mut self, body: &Bytes) -> Result<String, Reply> {
        let sha = sha1_hex(body);
        if self.scripts.contains_key(&sha) {
            return Ok(sha);
        }
        let slot = self.next_slot + 1;
        let compiled = sandbox::compile(&self.lua, &self.cache, slot, body)
            .map_err(|e| lua_message(&e).into_bytes())
            .and_then(|r| r);
        if let Err(message) = compiled {
            return Err(Reply::error(msg::script_compile_error(&String::from_utf8_lossy(
                &message,
            ))));
        }
        self.next_slot = slot;
        self.body_bytes += body.len();
        self.scripts.insert(
            sha.clone(),
            CachedScript {
                slot,
                fast_runs: 0,
                slow: false,
            },
        );
        Ok(sha)
    }

    /// Runs a cached script with `keys`/`argv`, sending its commands to `runner`; `proto` is
    /// the calling client's protocol (a returned table is encoded for it directly).
    pub fn run(
        &mut self,
        sha: &str,
        keys: &[Bytes],
        argv: &[Bytes],
        proto: crate::reply::Protocol,
        runner: Box<dyn CommandRunner>,
    ) -> (Reply, Box<dyn CommandRunner>) {
        let Some(script) = self.scripts.get(sha) else {
            return (Reply::error(msg::NOSCRIPT), runner);
        };
        SCRIPT_RESP.with(|r| r.set(2));
        RUNNER.with(|slot| *slot.borrow_mut() = Some(runner));
        reply::begin(proto);
        let (result, stopped) = sandbox::watch(&self.lua, &self.main, &self.monitor, || {
            // xpcall's status and the script's first result (Redis ignores the others).
            call::with_script_args(keys, argv, || {
                self.run.call::<(bool, Value)>((&self.cache, script.slot))
            })
        });
        let reply = match (stopped, result) {
            (Some(s), _) if s.reason == StopReason::Kill => Reply::error(msg::script_killed(sha, s.line)),
            // The caller sees the monitor's `migrate` flag and runs it again elsewhere.
            (Some(_), _) => Reply::error(msg::SCRIPT_MOVED_REPLY),
            (None, Ok((true, value))) => {
                reply::take().unwrap_or_else(|| scalar_reply(&value, SCRIPT_RESP.with(|r| r.get())))
            }
            (None, Ok((false, value))) => error_reply(&value, sha),
            (None, Err(e)) => Reply::error(msg::script_failed_at_start(&lua_message(&e), sha)),
        };
        let runner = RUNNER.with(|slot| slot.borrow_mut().take());
        match runner {
            Some(r) => (reply, r),
            // Unreachable in practice: nothing else takes the slot during a script.
            None => (Reply::error(msg::SCRIPT_RUNNER_LOST), Box::new(NoRunner)),
        }
    }
}

/// Stand-in runner used only if the real one could not be recovered.
struct NoRunner;

impl CommandRunner for NoRunner {
    fn run(&mut self, _args: Vec<Bytes>) -> Reply {
        Reply::error(msg::NO_SCRIPT_RUNNING)
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

/// The `xpcall` handler: turns any error into a table `{err, source, line}` naming the line
/// of the user's script where it happened (frames of our own Lua wrappers are skipped).
fn error_handler(lua: &Lua, err: Value) -> mlua::Result<Table> {
    let table = match err {
        // redis.call raised its error reply, or the script raised error{err=...}.
        Value::Table(t) => t,
        other => {
            let text = match &other {
                Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                Value::Error(e) => lua_message(e),
                v => format!("{v:?}"),
            };
            let t = lua.create_table()?;
            t.set("err", msg::err(text))?;
            t
        }
    };
    // As Redis's handler: the function that raised the error, or its caller when that is a C
    // function (redis.call, error, rawset...); its source as Lua keeps it (`@user_script`, or
    // the text of a chunk from loadstring). The sandbox's own Lua functions (which Redis has
    // in C or in its VM) are looked through.
    let frame = |level: usize| {
        lua.inspect_stack(level, |d| {
            let source = d.source();
            (
                source.what == "C",
                source.source.map(|s| s.into_owned()),
                d.current_line(),
            )
        })
    };
    let (mut level, mut skipped_c) = (1, false);
    let found = loop {
        match frame(level) {
            Some((_, Some(source), _)) if source == "=prelude" => level += 1,
            Some((true, ..)) if !skipped_c => {
                skipped_c = true;
                level += 1;
            }
            other => break other,
        }
    };
    if let Some((_, Some(source), line)) = found {
        table.set("source", source)?;
        table.set("line", line.map_or(-1, |l| l as i64))?;
    }
    Ok(table)
}

/// The RESP version a running script asked for (`redis.setresp`).
pub(crate) fn script_resp() -> u8 {
    SCRIPT_RESP.with(|r| r.get())
}

/// Runs a command for the script executing on this thread (`redis.call`).
pub(crate) fn run_in_script(cmd: Vec<Bytes>) -> Reply {
    RUNNER.with(|slot| match slot.borrow_mut().as_mut() {
        Some(runner) => runner.run(cmd),
        None => Reply::error(msg::CALL_OUTSIDE_SCRIPT),
    })
}

/// The message of a Lua error without mlua's traceback decoration.
fn lua_message(e: &mlua::Error) -> String {
    let text = match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => return lua_message(cause),
        other => other.to_string(),
    };
    text.split("\nstack traceback:")
        .next()
        .unwrap_or("")
        .trim_end()
        .to_string()
}

/// The reply for a script that raised `value` (a table from the error handler).
fn error_reply(value: &Value, sha: &str) -> Reply {
    let (message, place) = match value {
        Value::Table(t) => (
            t.get::<Option<String>>("err")
                .ok()
                .flatten()
                .unwrap_or_else(|| msg::SCRIPT_UNKNOWN_ERROR.into()),
            t.get::<Option<String>>("source")
                .ok()
                .flatten()
                .zip(t.get::<Option<i64>>("line").ok().flatten()),
        ),
        other => (msg::err(format!("{other:?}")), None),
    };
    let message = message.split("\nstack traceback:").next().unwrap_or("");
    let place = place.as_ref().map(|(source, line)| (source.as_str(), *line));
    Reply::error(msg::script_error(message, sha, place))
}

/// A script's return value → Redis reply, for everything but arrays, maps and sets (which
/// [`reply`] converts on the Lua stack): scalars, `{err=}`, `{ok=}`, `{double=}`.
fn scalar_reply(value: &Value, resp: u8) -> Reply {
    match value {
        Value::Nil => Reply::Null,
        Value::Boolean(b) if resp == 3 => Reply::Bool(*b),
        Value::Boolean(true) => Reply::Int(1),
        Value::Boolean(false) => Reply::Null,
        Value::Integer(i) => Reply::Int(*i),
        Value::Number(n) => Reply::Int(n.trunc() as i64),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                return Reply::error(String::from_utf8_lossy(&e.as_bytes()).into_owned());
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
                return Reply::status(String::from_utf8_lossy(&s.as_bytes()).into_owned());
            }
            match t.raw_get::<Value>("double") {
                Ok(Value::Number(d)) => Reply::Double(d),
                Ok(Value::Integer(i)) => Reply::Double(i as f64),
                _ => Reply::Null,
            }
        }
        _ => Reply::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `body` on a fresh interpreter, without a keyspace (scripts here make no calls).
    fn eval(body: &str) -> Reply {
        let mut scripting = Scripting::new(Arc::default()).expect("interpreter");
        let sha = scripting
            .load(&Bytes::copy_from_slice(body.as_bytes()))
            .expect("compiles");
        let (reply, _) = scripting.run(&sha, &[], &[], crate::reply::Protocol::Resp2, Box::new(NoRunner));
        reply
    }

    /// Scripts that nest deeply in every place a conversion or a library could recurse.
    const DEEP: &[&str] = &[
        "local t = {} local c = t for i = 1, 9000 do local n = {} c[1] = n c = n end return t",
        "local a = {} local b = {a} a[1] = b return a",
        "local t = {} local c = t for i = 1, 1000 do local n = {} c[1] = n c = n end return cjson.encode(t)",
        "local t = {} local c = t for i = 1, 998 do local n = {} c[1] = n c = n end return cjson.encode(t)",
        "return cjson.decode(string.rep('[', 5000))",
        "return cjson.decode(string.rep('[', 120) .. string.rep(']', 120))",
        "return cmsgpack.unpack(string.rep(string.char(0x91), 3999) .. string.char(1))",
        "return cmsgpack.unpack(string.rep(string.char(0x81, 1), 3999) .. string.char(1))",
        "return cmsgpack.unpack(string.rep(string.char(0x91), 100000))",
        "local a = {} a[1] = a return cmsgpack.pack(a)",
        "local function f() return f() + 1 end return f()",
        "local function f() local ok, e = pcall(f) if not ok then error(e, 0) end end f()",
        "local t = setmetatable({}, {__index = function(t, k) return t[k] end}) return t.x",
        "local function f() return xpcall(f, f) end return f()",
        "local s = 'return ' .. string.rep('(', 300) .. '1' .. string.rep(')', 300) return loadstring(s)",
    ];

    #[test]
    fn deep_structures_fit_in_a_small_thread_stack() {
        // Inline scripts run on an event-loop thread; tokio gives its workers 2 MB. Half that
        // must do in a debug build for every deep case.
        let worker = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(|| DEEP.iter().map(|body| eval(body)).collect::<Vec<_>>())
            .expect("thread");
        let replies = worker.join().expect("no stack overflow");
        for (body, reply) in DEEP.iter().zip(&replies) {
            match reply {
                Reply::Raw(_) | Reply::Bulk(_) | Reply::Error(_) | Reply::Null | Reply::Int(_) => {}
                other => panic!("{body}: {other:?}"),
            }
        }
        // The cut falls where Redis's does: 7,995 nested arrays, then the error in their place.
        let Reply::Raw(deep) = &replies[0] else {
            panic!("{:?}", replies[0]);
        };
        let expected = [&b"*1\r\n".repeat(7995)[..], b"-ERR reached lua stack limit\r\n"].concat();
        assert_eq!(&deep[..], &expected[..]);
    }

    #[test]
    fn a_cyclic_table_that_expands_without_end_is_refused() {
        let reply = eval("local a = {} for i = 1, 4 do a[i] = a end return a");
        assert_eq!(reply, Reply::error(crate::reply::msg::SCRIPT_REPLY_TOO_LARGE));
    }

    #[test]
    fn nothing_a_script_does_survives_into_the_next() {
        let mut scripting = Scripting::new(Arc::default()).expect("interpreter");
        let mut run = |body: &str| {
            let sha = scripting
                .load(&Bytes::copy_from_slice(body.as_bytes()))
                .expect("compiles");
            let (reply, _) = scripting.run(&sha, &[], &[], crate::reply::Protocol::Resp2, Box::new(NoRunner));
            reply
        };
        for attack in [
            "redis.call = function() return 'hijacked' end",
            "rawset(redis, 'call', function() return 'hijacked' end)",
            "rawset(_G, 'hijacked', true)",
            "setmetatable(_G, nil)",
            "getmetatable('').__index = {rep = function() return 'hijacked' end}",
            "getmetatable('').__index.rep = function() return 'hijacked' end",
            "string.rep = function() return 'hijacked' end",
            "table.insert(_G, 'hijacked')",
            "local mt = getmetatable(_G) mt.__index = function() return 'hijacked' end",
            "cjson.encode = function() return 'hijacked' end",
            "table.concat = nil",
        ] {
            let reply = run(attack);
            assert!(
                matches!(&reply, Reply::Error(e) if e.contains("Attempt to modify a readonly table")),
                "{attack}: {reply:?}"
            );
        }
        assert_eq!(
            run("return {type(redis.call), type(rawget(_G, 'hijacked')), ('x'):rep(2), cjson.encode({1}), table.concat({'a', 'b'})}"),
            Reply::Raw(Bytes::from_static(
                b"*5\r\n$8\r\nfunction\r\n$3\r\nnil\r\n$2\r\nxx\r\n$3\r\n[1]\r\n$2\r\nab\r\n"
            ))
        );
    }

    #[test]
    fn bytecode_never_loads() {
        let dumped = "string.dump(function() return 1 end)";
        for body in [
            format!("return {{loadstring({dumped})}}"),
            format!("local s = {dumped} local f, e = load(function() local c = s s = nil return c end) return e"),
            // A dumped chunk with bytes changed, as an attacker would craft it.
            format!("local s = {dumped} s = s:sub(1, 20) .. 'xx' .. s:sub(23) local f = loadstring(s) return tostring(f)"),
        ] {
            let reply = eval(&body);
            let text = format!("{reply:?}");
            assert!(
                text.contains("char(27)") || matches!(&reply, Reply::Raw(_) | Reply::Bulk(_)),
                "{body}: {reply:?}"
            );
            assert!(!text.contains("function:"), "{body} loaded bytecode: {reply:?}");
        }
        // A body that is bytecode is refused as redis-server refuses it.
        let mut scripting = Scripting::new(Arc::default()).expect("interpreter");
        let err = scripting
            .load(&Bytes::from_static(b"\x1bLuaQ\x00\x01\x04\x08\x04\x08\x00"))
            .unwrap_err();
        assert_eq!(
            err,
            Reply::error(
                "ERR Error compiling script (new function): user_script:1: unexpected symbol near 'char(27)'"
            )
        );
    }
}
