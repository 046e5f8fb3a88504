//! `redis.call` and `redis.pcall` as raw Lua C functions, and the one that hands a starting
//! script its `KEYS` and `ARGV`.
//!
//! # Why not an mlua callback
//! Through mlua's safe callback API every `redis.call` paid mlua's bookkeeping: the state's
//! lock, a value reference per argument (moved to mlua's auxiliary thread, released after),
//! the `MultiValue` holding them, and a reference for the converted reply. `perf` put that at
//! about a sixth of the CPU of an EVALSHA of the emitter's enqueue script (two calls per
//! script); reading the arguments off the Lua stack and pushing the reply straight onto it
//! removes it (numbers in docs/benchmarks.md). Likewise `KEYS` and `ARGV` are built on the Lua
//! stack from the command's arguments rather than as mlua tables passed into the call.
//!
//! # Soundness
//! 1. Lua reports errors — `lua_error`, and memory errors inside any API call that allocates —
//!    with `longjmp`, which skips the destructors of every Rust frame it crosses. Jumping over
//!    a frame is sound only if nothing in it needs dropping. So every Lua API call that can
//!    raise is made from a frame holding only `Copy` values, raw pointers and shared references:
//!    [`call`] (before and after [`run_call`]) and [`push_reply`]. Everything that owns memory —
//!    the argument vector, the command, its reply — lives in [`run_call`], which makes no Lua
//!    call that can raise (it only reads strings already on the stack) and has returned before
//!    anything can jump.
//! 2. The reply is handed from [`run_call`] to the pushing code through the thread-local
//!    [`REPLY`], as a pointer from `Box::into_raw`, and stays there while it is pushed. It is
//!    freed right after pushing, or — if a jump (out of memory) cut the push short — by the next
//!    `run_call` on this thread; no frame owns it.
//! 3. While a reply is pushed nothing else reads or frees it: pushing creates strings and fresh
//!    tables with raw sets (no metamethods run). A garbage-collection step may run `__gc`
//!    finalisers, but scripts cannot install any (Lua 5.1 tables have no `__gc`, `newproxy` is
//!    removed from the sandbox) and mlua's own finalisers do not run scripts.
//! 4. No Rust panic unwinds into Lua: [`run_call`] catches them and turns them into an error
//!    reply.
//! 5. The pointers from `lua_tolstring` are valid while their values stay on the stack; they
//!    are copied before anything is pushed or popped.
//! 6. These functions are only reachable from scripts, which run on the thread that owns the
//!    interpreter, inside a call started through mlua (which holds the state's lock).
//! 7. [`script_args`] reads `KEYS`/`ARGV` through the pointers [`with_script_args`] parks in
//!    [`ARGS`]: they point into slices borrowed for the whole of that call, and are put back
//!    (also on a panic) before it returns. It is not reachable from scripts: the prelude keeps
//!    it in a local and calls it only when a script starts.

#![allow(unsafe_code)]

use crate::reply::{msg, Reply};
use bytes::Bytes;
use mlua::ffi;
use std::cell::Cell;
use std::ffi::{c_char, c_int};

thread_local! {
    /// The reply of the last `redis.call` on this thread, between running and pushing it.
    static REPLY: Cell<*mut Reply> = const { Cell::new(std::ptr::null_mut()) };
    /// `KEYS` and `ARGV` of the script starting on this thread (see [`with_script_args`]).
    static ARGS: Cell<[(*const Bytes, usize); 2]> =
        const { Cell::new([(std::ptr::null(), 0), (std::ptr::null(), 0)]) };
}

/// Runs `start` (which starts a script) with `keys` and `argv` readable by [`script_args`].
pub fn with_script_args<R>(keys: &[Bytes], argv: &[Bytes], start: impl FnOnce() -> R) -> R {
    /// Puts the previous arguments back however `start` ends.
    struct Restore([(*const Bytes, usize); 2]);
    impl Drop for Restore {
        fn drop(&mut self) {
            ARGS.with(|a| a.set(self.0));
        }
    }
    let _restore =
        Restore(ARGS.with(|a| a.replace([(keys.as_ptr(), keys.len()), (argv.as_ptr(), argv.len())])));
    start()
}

/// `(redis.call, redis.pcall, script_args)` for `lua`.
pub fn functions(lua: &mlua::Lua) -> mlua::Result<(mlua::Function, mlua::Function, mlua::Function)> {
    // SAFETY: all three are Lua C functions written for this interpreter (module notes).
    unsafe {
        Ok((
            lua.create_c_function(redis_call)?,
            lua.create_c_function(redis_pcall)?,
            lua.create_c_function(script_args)?,
        ))
    }
}

/// Returns `KEYS` and `ARGV` (two sequences of strings) of the script being started.
///
/// # Safety
/// Only for the prelude to call, inside [`with_script_args`] (module notes, point 7).
unsafe extern "C-unwind" fn script_args(state: *mut ffi::lua_State) -> c_int {
    let [(keys, nkeys), (argv, nargv)] = ARGS.with(|a| a.get());
    push_byte_sequence(state, keys, nkeys);
    push_byte_sequence(state, argv, nargv);
    2
}

/// A sequence of the `n` byte strings at `items`.
unsafe fn push_byte_sequence(state: *mut ffi::lua_State, items: *const Bytes, n: usize) {
    ffi::luaL_checkstack(state, 2, c"script arguments".as_ptr());
    ffi::lua_createtable(state, c_len(n), 0);
    for i in 0..n {
        // SAFETY: `items[..n]` is a live slice for the duration of `with_script_args`.
        push_bytes(state, &*items.add(i));
        ffi::lua_rawseti_(state, -2, c_len(i + 1));
    }
}

/// `redis.call(...)`: runs the command; an error reply raises it as a Lua error (a table with
/// `err`, which the script's error handler completes with the line).
///
/// # Safety
/// Only for Lua to call, as a C function of the scripting interpreter (see the module notes).
pub unsafe extern "C-unwind" fn redis_call(state: *mut ffi::lua_State) -> c_int {
    call(state, true)
}

/// `redis.pcall(...)`: the same, returning an error reply as a table with `err`.
///
/// # Safety
/// As [`redis_call`].
pub unsafe extern "C-unwind" fn redis_pcall(state: *mut ffi::lua_State) -> c_int {
    call(state, false)
}

/// Holds only `Copy` values and raw pointers across every Lua call that can raise.
unsafe fn call(state: *mut ffi::lua_State, raise: bool) -> c_int {
    let n = ffi::lua_gettop(state);
    // Numbers become strings in place, as Redis's own `lua_tolstring` does (this allocates, so
    // it may raise; nothing here needs dropping yet).
    for i in 1..=n {
        if ffi::lua_type(state, i) == ffi::LUA_TNUMBER {
            ffi::lua_tolstring(state, i, std::ptr::null_mut());
        }
    }
    let resp = super::script_resp();
    let failed = run_call(state, n, resp);
    // Left in the slot while it is pushed, so that a memory error cutting the push short
    // leaves it for the next call to free.
    let reply = REPLY.with(|slot| slot.get());
    if reply.is_null() {
        ffi::lua_pushnil(state);
        return 1;
    }
    // SAFETY: `reply` came from `Box::into_raw` in `run_call`; nothing frees or changes it
    // until it is taken out below (module notes, points 2 and 3).
    push_reply(state, &*reply, resp);
    let reply = REPLY.with(|slot| slot.replace(std::ptr::null_mut()));
    drop(Box::from_raw(reply));
    if failed && raise {
        ffi::lua_error(state);
    }
    1
}

/// Everything that owns memory: reads the arguments (all strings by now), runs the command and
/// parks its reply in [`REPLY`]. Makes no Lua call that can raise. Returns whether the reply is
/// an error.
unsafe fn run_call(state: *mut ffi::lua_State, n: c_int, resp: u8) -> bool {
    let stale = REPLY.with(|slot| slot.replace(std::ptr::null_mut()));
    if !stale.is_null() {
        // A previous push was cut short by a memory error.
        drop(Box::from_raw(stale));
    }
    let reply = std::panic::catch_unwind(|| {
        let mut cmd = Vec::with_capacity(n.max(0) as usize);
        for i in 1..=n {
            if ffi::lua_type(state, i) != ffi::LUA_TSTRING {
                return Reply::error(msg::CALL_ARGS_NOT_STRINGS);
            }
            let mut len = 0usize;
            // A string already: no conversion, no allocation, cannot raise.
            let ptr = ffi::lua_tolstring(state, i, &mut len);
            cmd.push(Bytes::copy_from_slice(std::slice::from_raw_parts(
                ptr.cast::<u8>(),
                len,
            )));
        }
        if cmd.is_empty() {
            return Reply::error(msg::CALL_WITHOUT_ARGS);
        }
        let reply = super::run_in_script(cmd);
        if resp == 3 {
            reply
        } else {
            doubles_as_text(reply)
        }
    })
    .unwrap_or_else(|_| Reply::error(msg::CALL_PANICKED));
    let failed = matches!(reply, Reply::Error(_));
    REPLY.with(|slot| slot.set(Box::into_raw(Box::new(reply))));
    failed
}

/// RESP2 scripts see doubles as bulk strings; formatting them needs an allocation, so it
/// happens here rather than while pushing.
fn doubles_as_text(reply: Reply) -> Reply {
    match reply {
        Reply::Double(d) => Reply::Bulk(Bytes::from(crate::reply::format_double(d))),
        Reply::Array(items) => Reply::Array(items.into_iter().map(doubles_as_text).collect()),
        Reply::Set(items) => Reply::Set(items.into_iter().map(doubles_as_text).collect()),
        Reply::Map(pairs) => Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (doubles_as_text(k), doubles_as_text(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Pushes `reply` converted to Lua as Redis documents it: integers → numbers, bulk strings →
/// strings, status → `{ok=...}`, error → `{err=...}`, nil → `false` (RESP2) or `nil` (RESP3),
/// arrays → sequences; under RESP3 also maps `{map={...}}`, sets `{set={...}}`, doubles
/// `{double=...}` and booleans. Frames hold only references and `Copy` values.
unsafe fn push_reply(state: *mut ffi::lua_State, reply: &Reply, resp: u8) {
    // Room for a table, a key and a value at every nesting level (raises if the stack cannot
    // grow, which this frame allows).
    ffi::luaL_checkstack(state, 3, c"reply nested too deeply".as_ptr());
    match reply {
        Reply::Int(n) => ffi::lua_pushinteger(state, *n as ffi::lua_Integer),
        Reply::Bulk(b) | Reply::Verbatim(b) => push_bytes(state, b),
        Reply::Ok => push_field_table(state, c"ok", b"OK"),
        Reply::Status(s) => push_field_table(state, c"ok", s.as_bytes()),
        Reply::Error(e) => push_field_table(state, c"err", e.as_bytes()),
        Reply::Null | Reply::NullArray if resp == 3 => ffi::lua_pushnil(state),
        Reply::Null | Reply::NullArray | Reply::Raw(_) => ffi::lua_pushboolean(state, 0),
        Reply::Array(items) => push_sequence(state, items, resp),
        Reply::Set(items) if resp == 3 => {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_createtable(state, 0, c_len(items.len()));
            for item in items {
                push_reply(state, item, resp);
                ffi::lua_pushboolean(state, 1);
                ffi::lua_rawset(state, -3);
            }
            ffi::lua_setfield(state, -2, c"set".as_ptr());
        }
        Reply::Set(items) => push_sequence(state, items, resp),
        Reply::Map(pairs) if resp == 3 => {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_createtable(state, 0, c_len(pairs.len()));
            for (k, v) in pairs {
                push_reply(state, k, resp);
                push_reply(state, v, resp);
                ffi::lua_rawset(state, -3);
            }
            ffi::lua_setfield(state, -2, c"map".as_ptr());
        }
        Reply::Map(pairs) => {
            ffi::lua_createtable(state, c_len(pairs.len() * 2), 0);
            for (i, (k, v)) in pairs.iter().enumerate() {
                push_reply(state, k, resp);
                ffi::lua_rawseti_(state, -2, c_len(2 * i + 1));
                push_reply(state, v, resp);
                ffi::lua_rawseti_(state, -2, c_len(2 * i + 2));
            }
        }
        Reply::Double(d) if resp == 3 => {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_pushnumber(state, *d);
            ffi::lua_setfield(state, -2, c"double".as_ptr());
        }
        // Formatted by `doubles_as_text` before pushing; kept total for the type's sake.
        Reply::Double(d) => ffi::lua_pushnumber(state, *d),
        Reply::Bool(b) if resp == 3 => ffi::lua_pushboolean(state, c_int::from(*b)),
        Reply::Bool(b) => ffi::lua_pushinteger(state, ffi::lua_Integer::from(*b)),
    }
}

unsafe fn push_bytes(state: *mut ffi::lua_State, bytes: &[u8]) {
    ffi::lua_pushlstring_(state, bytes.as_ptr().cast::<c_char>(), bytes.len());
}

unsafe fn push_sequence(state: *mut ffi::lua_State, items: &[Reply], resp: u8) {
    ffi::lua_createtable(state, c_len(items.len()), 0);
    for (i, item) in items.iter().enumerate() {
        push_reply(state, item, resp);
        ffi::lua_rawseti_(state, -2, c_len(i + 1));
    }
}

/// A fresh table `{[key] = text}` (`{ok = ...}`, `{err = ...}`).
unsafe fn push_field_table(state: *mut ffi::lua_State, key: &std::ffi::CStr, text: &[u8]) {
    ffi::lua_createtable(state, 0, 1);
    push_bytes(state, text);
    ffi::lua_setfield(state, -2, key.as_ptr());
}

/// A length or index as Lua's `int` (replies are far below 2^31 elements; saturates).
fn c_len(n: usize) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}
