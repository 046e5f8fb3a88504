//! The sandbox's Lua C functions: read-only tables, text-only chunk loading, and the
//! instruction hook that stops a script for SCRIPT KILL in a way it cannot catch.
//!
//! # Read-only tables
//! Redis 7 patched its Lua with a read-only flag on tables; stock Lua 5.1 has none. Here a
//! protected table is an empty *proxy* whose metatable reads through to the real table and
//! refuses writes (`__newindex`). That stops assignments, but not the functions that write
//! raw — `rawset`, `table.insert` (`lua_rawseti`) and `setmetatable` — nor could it keep
//! `rawget`, `next` and `pairs` seeing the contents. So those are replaced by the functions
//! below, which consult the proxy → real table map (upvalue 1) the way Redis's patched
//! `lua_rawset` consults the flag: argument checks first, then "Attempt to modify a readonly
//! table" raised without a position, as `luaG_runerror` does from a C function. Upvalue 2 maps
//! a hidden metatable to what `getmetatable` shows in its place ([`NO_METATABLE`] for none).
//!
//! # Bytecode
//! Lua 5.1 loads precompiled chunks (`string.dump` output) unverified: a crafted one can read
//! and write outside the VM. Redis's Lua always parses text. [`lua_load`](ffi::lua_load) looks
//! at the first byte for the signature, so our readers hand it an empty piece first: it sees
//! no signature and runs the text parser, which then reads the chunk and rejects an escape
//! byte exactly as Redis's does (`unexpected symbol near 'char(27)'`).
//!
//! # The stop hook
//! A count hook raises the kill (or the move of an inline script to the script thread). A
//! `pcall` could catch one error and loop, so on the first stop the hook switches itself to
//! fire at every instruction, on the running coroutine and on the script's main thread: any
//! code that catches the error raises again at its next instruction, until the script ends.
//!
//! # Soundness
//! The functions follow the rules of [`call`](super::call): a Lua error (an argument error, a
//! read-only error, a memory error in any API call that allocates) `longjmp`s over the Rust
//! frame that made the call, so every frame here that calls into Lua holds only `Copy` values
//! and raw pointers — nothing that needs dropping. No function here can panic (no indexing,
//! no unwrap, no allocation of Rust memory). The thread-local [`WATCH`] holds a pointer to the
//! script's monitor, set by [`watch`] only for the duration of a run (and reset on the way out,
//! also on a panic), so the hook never reads it after the monitor could be gone.

#![allow(unsafe_code)]

use super::{ScriptMonitor, StopReason};
use mlua::ffi;
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr};

/// Instructions between two checks of the stop hook while a script runs normally.
pub const HOOK_EVERY: c_int = 10_000;

/// Distinguished address: as a presented metatable it means "show no metatable".
static NO_METATABLE: u8 = 0;

const READONLY: &CStr = c"Attempt to modify a readonly table";

/// What the hook needs while a script runs on this thread.
#[derive(Clone, Copy)]
struct Watch {
    monitor: *const ScriptMonitor,
    /// The thread the script was started on (it also gets the every-instruction hook).
    main: *mut ffi::lua_State,
    /// Set by the hook when it stopped the script, with the line of the script the error last
    /// left.
    stopped: Option<(StopReason, c_int)>,
}

thread_local! {
    static WATCH: Cell<Watch> = const {
        Cell::new(Watch {
            monitor: std::ptr::null(),
            main: std::ptr::null_mut(),
            stopped: None,
        })
    };
}

/// How a watched run ended, if the hook stopped it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped {
    pub reason: StopReason,
    /// Line of the user's script that was running (0 if none was on the stack).
    pub line: i64,
}

/// The interpreter's main thread, on which scripts are started (it also gets the
/// every-instruction hook when a script is stopped inside a coroutine).
pub struct MainThread(*mut ffi::lua_State);

// SAFETY: only an address, handed back to `lua_sethook` by whichever thread runs the
// interpreter (which moves between threads as a whole, never shared).
unsafe impl Send for MainThread {}

impl MainThread {
    pub fn of(lua: &mlua::Lua) -> mlua::Result<MainThread> {
        let mut main = std::ptr::null_mut();
        // SAFETY: the closure only copies the state pointer.
        unsafe { lua.exec_raw::<()>((), |state| main = state)? };
        Ok(MainThread(main))
    }
}

/// Runs `f` (which runs a script on `lua`) with the stop hook watching `monitor`. Returns what
/// `f` returned and whether the hook stopped the script; if it did, the hook goes back to its
/// normal rate for the next script.
pub fn watch<R>(
    lua: &mlua::Lua,
    main: &MainThread,
    monitor: &ScriptMonitor,
    f: impl FnOnce() -> R,
) -> (R, Option<Stopped>) {
    /// Clears the watch however `f` ends.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            WATCH.with(|w| {
                w.set(Watch {
                    monitor: std::ptr::null(),
                    main: std::ptr::null_mut(),
                    stopped: None,
                })
            });
        }
    }
    let main = main.0;
    WATCH.with(|w| {
        w.set(Watch {
            monitor: monitor as *const ScriptMonitor,
            main,
            stopped: None,
        })
    });
    let reset = Reset;
    let out = f();
    let stopped = WATCH.with(|w| w.get().stopped);
    drop(reset);
    let stopped = stopped.map(|(reason, line)| {
        // SAFETY: `lua_sethook` only stores the hook in the thread's state; `main` belongs to
        // `lua`, which we hold, and no script is running.
        unsafe {
            let _ = lua.exec_raw::<()>((), |_| {
                ffi::lua_sethook(main, Some(stop_hook), ffi::LUA_MASKCOUNT, HOOK_EVERY);
            });
        }
        Stopped {
            reason,
            line: i64::from(line),
        }
    });
    (out, stopped)
}

/// Installs the stop hook on `lua`'s main thread (coroutines inherit it when created).
pub fn install_hook(lua: &mlua::Lua) -> mlua::Result<()> {
    // SAFETY: sets a hook function of this module on the state.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            ffi::lua_sethook(state, Some(stop_hook), ffi::LUA_MASKCOUNT, HOOK_EVERY);
        })
    }
}

/// The count hook: asks the monitor whether the script must stop and, if so, raises — and
/// keeps raising at every instruction (module notes).
unsafe extern "C-unwind" fn stop_hook(state: *mut ffi::lua_State, _ar: *mut ffi::lua_Debug) {
    let mut watch = WATCH.with(|w| w.get());
    if watch.monitor.is_null() {
        return;
    }
    // SAFETY: set by `watch` for the duration of the run this hook fires in.
    let monitor = &*watch.monitor;
    let Some(reason) = monitor.stop_reason() else {
        return;
    };
    // The line reported is where the error last left the user's code, as in Redis: the
    // raise that escapes the script is the last one made with a frame of it on the stack.
    let line = user_line(state);
    match watch.stopped {
        Some((_, ref mut last)) if line > 0 => *last = line,
        Some(_) => {}
        None => watch.stopped = Some((reason, line)),
    }
    WATCH.with(|w| w.set(watch));
    ffi::lua_sethook(state, Some(stop_hook), ffi::LUA_MASKCOUNT, 1);
    if !watch.main.is_null() && watch.main != state {
        ffi::lua_sethook(watch.main, Some(stop_hook), ffi::LUA_MASKCOUNT, 1);
    }
    let text = reason.message();
    ffi::lua_pushlstring_(state, text.as_ptr().cast::<c_char>(), text.len());
    ffi::lua_error(state);
}

/// The current line of the innermost frame of the user's script, or 0.
unsafe fn user_line(state: *mut ffi::lua_State) -> c_int {
    let mut ar: ffi::lua_Debug = std::mem::zeroed();
    for level in 0..256 {
        if ffi::lua_getstack(state, level, &mut ar) == 0 {
            break;
        }
        if ffi::lua_getinfo(state, c"Sl".as_ptr(), &mut ar) != 0
            && !ar.source.is_null()
            && CStr::from_ptr(ar.source) == c"@user_script"
        {
            return ar.currentline.max(0);
        }
    }
    0
}

/// The sandbox's functions for the prelude, in a table: `rawset`, `rawget`, `next`, `pairs`,
/// `setmetatable`, `getmetatable`, `insert` and `foreach` (for `table`), `loadstring`, `load`,
/// `xpcall`, `pcall`, and `protected` (the prelude's xpcall);
/// plus `readonly` (proxy → real table, filled by the prelude), `presented` (hidden metatable →
/// what `getmetatable` returns) and `no_metatable` (the value for "none").
pub fn kit(lua: &mlua::Lua) -> mlua::Result<mlua::Table> {
    // SAFETY: builds closures of this module's C functions; the frame holds only Copy values.
    unsafe {
        lua.exec_raw::<mlua::Table>((), |state| {
            ffi::lua_createtable(state, 0, 16);
            let kit = ffi::lua_gettop(state);
            ffi::lua_newtable(state);
            let readonly = ffi::lua_gettop(state);
            ffi::lua_newtable(state);
            let presented = ffi::lua_gettop(state);
            let with_maps: [(&CStr, ffi::lua_CFunction); 7] = [
                (c"rawset", rawset),
                (c"rawget", rawget),
                (c"next", next),
                (c"setmetatable", setmetatable),
                (c"getmetatable", getmetatable),
                (c"insert", table_insert),
                (c"foreach", table_foreach),
            ];
            for (name, f) in with_maps {
                ffi::lua_pushvalue(state, readonly);
                ffi::lua_pushvalue(state, presented);
                ffi::lua_pushcclosure(state, f, 2);
                ffi::lua_setfield(state, kit, name.as_ptr());
            }
            // As in stock Lua, `pairs` returns its own `next`, not the global one.
            ffi::lua_pushvalue(state, readonly);
            ffi::lua_pushvalue(state, presented);
            ffi::lua_pushvalue(state, readonly);
            ffi::lua_pushvalue(state, presented);
            ffi::lua_pushcclosure(state, next, 2);
            ffi::lua_pushcclosure(state, pairs, 3);
            ffi::lua_setfield(state, kit, c"pairs".as_ptr());
            ffi::lua_pushcclosure(state, loadstring, 0);
            ffi::lua_setfield(state, kit, c"loadstring".as_ptr());
            ffi::lua_pushcclosure(state, load, 0);
            ffi::lua_setfield(state, kit, c"load".as_ptr());
            ffi::lua_pushcclosure(state, xpcall, 0);
            ffi::lua_setfield(state, kit, c"xpcall".as_ptr());
            ffi::lua_pushcclosure(state, pcall, 0);
            ffi::lua_setfield(state, kit, c"pcall".as_ptr());
            ffi::lua_pushcclosure(state, protected, 0);
            ffi::lua_setfield(state, kit, c"protected".as_ptr());
            ffi::lua_pushvalue(state, readonly);
            ffi::lua_setfield(state, kit, c"readonly".as_ptr());
            ffi::lua_pushvalue(state, presented);
            ffi::lua_setfield(state, kit, c"presented".as_ptr());
            ffi::lua_pushlightuserdata(state, no_metatable());
            ffi::lua_setfield(state, kit, c"no_metatable".as_ptr());
            ffi::lua_settop(state, kit);
        })
    }
}

fn no_metatable() -> *mut c_void {
    std::ptr::addr_of!(NO_METATABLE).cast_mut().cast::<c_void>()
}

/// Whether the table at `idx` is a read-only proxy (upvalue 1 of the running function).
unsafe fn is_readonly(state: *mut ffi::lua_State, idx: c_int) -> bool {
    ffi::lua_pushvalue(state, idx);
    ffi::lua_rawget(state, ffi::lua_upvalueindex(1));
    let found = ffi::lua_type(state, -1) != ffi::LUA_TNIL;
    ffi::lua_pop(state, 1);
    found
}

/// Replaces the table at `idx` (absolute) by the real table behind it if it is a proxy.
unsafe fn to_real(state: *mut ffi::lua_State, idx: c_int) {
    ffi::lua_pushvalue(state, idx);
    ffi::lua_rawget(state, ffi::lua_upvalueindex(1));
    if ffi::lua_type(state, -1) == ffi::LUA_TNIL {
        ffi::lua_pop(state, 1);
    } else {
        ffi::lua_replace(state, idx);
    }
}

/// Raises "Attempt to modify a readonly table" without a position.
unsafe fn readonly_error(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_pushstring_(state, READONLY.as_ptr());
    ffi::lua_error(state)
}

unsafe extern "C-unwind" fn rawset(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    ffi::luaL_checkany(state, 2);
    ffi::luaL_checkany(state, 3);
    if is_readonly(state, 1) {
        return readonly_error(state);
    }
    ffi::lua_settop(state, 3);
    ffi::lua_rawset(state, 1);
    1
}

unsafe extern "C-unwind" fn rawget(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    ffi::luaL_checkany(state, 2);
    ffi::lua_settop(state, 2);
    to_real(state, 1);
    ffi::lua_rawget(state, 1);
    1
}

unsafe extern "C-unwind" fn next(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    ffi::lua_settop(state, 2);
    to_real(state, 1);
    if ffi::lua_next(state, 1) != 0 {
        2
    } else {
        ffi::lua_pushnil(state);
        1
    }
}

unsafe extern "C-unwind" fn pairs(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(3));
    ffi::lua_pushvalue(state, 1);
    ffi::lua_pushnil(state);
    3
}

unsafe extern "C-unwind" fn setmetatable(state: *mut ffi::lua_State) -> c_int {
    let t = ffi::lua_type(state, 2);
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    if t != ffi::LUA_TNIL && t != ffi::LUA_TTABLE {
        return ffi::luaL_argerror(state, 2, c"nil or table expected".as_ptr());
    }
    if is_readonly(state, 1) {
        return readonly_error(state);
    }
    if ffi::luaL_getmetafield_(state, 1, c"__metatable".as_ptr()) != 0 {
        return ffi::luaL_error(state, c"cannot change a protected metatable".as_ptr());
    }
    ffi::lua_settop(state, 2);
    ffi::lua_setmetatable(state, 1);
    1
}

unsafe extern "C-unwind" fn getmetatable(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checkany(state, 1);
    if ffi::lua_getmetatable(state, 1) == 0 {
        ffi::lua_pushnil(state);
        return 1;
    }
    // A hidden metatable shows what the sandbox presents instead.
    ffi::lua_pushvalue(state, -1);
    ffi::lua_rawget(state, ffi::lua_upvalueindex(2));
    match ffi::lua_type(state, -1) {
        ffi::LUA_TNIL => ffi::lua_pop(state, 1),
        ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(state, -1) == no_metatable() => {
            ffi::lua_pushnil(state);
            return 1;
        }
        _ => return 1,
    }
    ffi::luaL_getmetafield_(state, 1, c"__metatable".as_ptr());
    1
}

/// `table.insert`, as Lua 5.1's, refusing read-only tables where it would write.
unsafe extern "C-unwind" fn table_insert(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    let mut e = c_int::try_from(ffi::lua_objlen(state, 1))
        .unwrap_or(c_int::MAX)
        .saturating_add(1);
    let pos = match ffi::lua_gettop(state) {
        2 => e,
        3 => {
            let pos = ffi::luaL_checkinteger(state, 2) as c_int;
            if pos > e {
                e = pos;
            }
            if is_readonly(state, 1) {
                return readonly_error(state);
            }
            let mut i = e;
            while i > pos {
                ffi::lua_rawgeti_(state, 1, i - 1);
                ffi::lua_rawseti_(state, 1, i);
                i -= 1;
            }
            pos
        }
        _ => return ffi::luaL_error(state, c"wrong number of arguments to 'insert'".as_ptr()),
    };
    if is_readonly(state, 1) {
        return readonly_error(state);
    }
    ffi::lua_rawseti_(state, 1, pos);
    0
}

/// `table.foreach`, iterating what a proxy stands for.
unsafe extern "C-unwind" fn table_foreach(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checktype(state, 1, ffi::LUA_TTABLE);
    ffi::luaL_checktype(state, 2, ffi::LUA_TFUNCTION);
    ffi::lua_settop(state, 2);
    to_real(state, 1);
    ffi::lua_pushnil(state);
    while ffi::lua_next(state, 1) != 0 {
        ffi::lua_pushvalue(state, 2);
        ffi::lua_pushvalue(state, -3);
        ffi::lua_pushvalue(state, -3);
        ffi::lua_call(state, 2, 1);
        if ffi::lua_type(state, -1) != ffi::LUA_TNIL {
            return 1;
        }
        ffi::lua_pop(state, 2);
    }
    0
}

/// Whether the hook has stopped the script running on this thread.
fn stopping() -> bool {
    WATCH.with(|w| w.get().stopped.is_some())
}

/// `xpcall`, as Lua 5.1's, but the message handler is skipped once the script is being
/// stopped. Lua runs a message handler before unwinding, and for an error raised by a hook it
/// runs it with hooks disabled: a handler that loops would never be stopped.
unsafe extern "C-unwind" fn xpcall(state: *mut ffi::lua_State) -> c_int {
    ffi::luaL_checkany(state, 2);
    ffi::lua_settop(state, 2);
    ffi::lua_pushcclosure(state, guarded_handler, 1);
    ffi::lua_insert(state, 1);
    call_handled(state)
}

/// With the stack `[handler, f]`, calls `f` under `handler` and returns its status and
/// results. Both statuses are pushed before the call: after it the frame may have no room left
/// (Lua 5.1's own xpcall pushes the status then, which overflows on many results).
unsafe fn call_handled(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_pushboolean(state, 1);
    ffi::lua_insert(state, 1);
    ffi::lua_pushboolean(state, 0);
    ffi::lua_insert(state, 2);
    // [true, false, handler, f]
    let status = ffi::lua_pcall(state, 0, ffi::LUA_MULTRET, 3);
    ffi::lua_remove(state, 3);
    ffi::lua_remove(state, if status == 0 { 2 } else { 1 });
    ffi::lua_gettop(state)
}

/// `xpcall` for starting a script: the message handler is always run (it is ours, and the
/// stack levels it inspects must be the erroring function's), the status slots are reserved
/// as in [`xpcall`].
unsafe extern "C-unwind" fn protected(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_settop(state, 2);
    ffi::lua_insert(state, 1);
    call_handled(state)
}

/// `pcall`, as Redis 7's: an error table raised by `redis.call` (or `error{err=...}`) is
/// returned as its `err` string. The status slot is taken before the call, while the frame
/// has room for it (Lua 5.1's own pcall pushes it after, which overflows on many results).
unsafe extern "C-unwind" fn pcall(state: *mut ffi::lua_State) -> c_int {
    if ffi::lua_gettop(state) == 0 {
        // Redis's pcall calls its status placeholder then: "attempt to call a boolean value".
        ffi::lua_pushboolean(state, 1);
    }
    ffi::lua_pushboolean(state, 1);
    ffi::lua_insert(state, 1);
    let status = ffi::lua_pcall(state, ffi::lua_gettop(state) - 2, ffi::LUA_MULTRET, 0);
    if status != 0 {
        // The stack is [status, error]: room for one more. A table whose `err` is not a
        // string stays, followed by that `err` value (Redis returns both).
        if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
            ffi::lua_getfield_(state, -1, c"err".as_ptr());
            if ffi::lua_isstring(state, -1) != 0 {
                ffi::lua_replace(state, -2);
            }
        }
        ffi::lua_pushboolean(state, 0);
        ffi::lua_replace(state, 1);
    }
    ffi::lua_gettop(state)
}

/// Runs the script's message handler (upvalue 1) unless the script is being stopped.
unsafe extern "C-unwind" fn guarded_handler(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_settop(state, 1);
    if stopping() {
        return 1;
    }
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
    ffi::lua_insert(state, 1);
    ffi::lua_call(state, 1, 1);
    1
}

/// A chunk handed to `lua_load` as an empty piece, then the text (module notes).
#[derive(Clone, Copy)]
struct TextChunk {
    data: *const c_char,
    len: usize,
    /// Pieces handed out so far.
    served: u8,
}

unsafe extern "C-unwind" fn read_text(
    _state: *mut ffi::lua_State,
    ud: *mut c_void,
    size: *mut usize,
) -> *const c_char {
    // SAFETY: `ud` is the `TextChunk` on the frame that called `lua_load`.
    let chunk = &mut *ud.cast::<TextChunk>();
    chunk.served = chunk.served.saturating_add(1);
    match chunk.served {
        1 => {
            *size = 0;
            c"".as_ptr()
        }
        2 => {
            *size = chunk.len;
            chunk.data
        }
        _ => {
            *size = 0;
            std::ptr::null()
        }
    }
}

/// Loads `len` bytes at `data` as Lua source (never bytecode) under `name`; pushes the
/// function or the error message and returns `lua_load`'s status.
unsafe fn load_text(
    state: *mut ffi::lua_State,
    data: *const c_char,
    len: usize,
    name: *const c_char,
) -> c_int {
    let mut chunk = TextChunk { data, len, served: 0 };
    ffi::lua_load(
        state,
        read_text,
        std::ptr::addr_of_mut!(chunk).cast::<c_void>(),
        name,
    )
}

/// `nil, message` after a failed load, as the base library's `load_aux`.
unsafe fn load_result(state: *mut ffi::lua_State, status: c_int) -> c_int {
    if status == 0 {
        1
    } else {
        ffi::lua_pushnil(state);
        ffi::lua_insert(state, -2);
        2
    }
}

unsafe extern "C-unwind" fn loadstring(state: *mut ffi::lua_State) -> c_int {
    let mut len = 0usize;
    let s = ffi::luaL_checklstring(state, 1, &mut len);
    let name = ffi::luaL_optlstring(state, 2, s, std::ptr::null_mut());
    load_result(state, load_text(state, s, len, name))
}

/// The reader of `load(f)`: an empty piece first, then the pieces `f` returns.
unsafe extern "C-unwind" fn read_pieces(
    state: *mut ffi::lua_State,
    ud: *mut c_void,
    size: *mut usize,
) -> *const c_char {
    // SAFETY: `ud` is the flag on `load`'s frame.
    let started = &mut *ud.cast::<bool>();
    if !*started {
        *started = true;
        *size = 0;
        return c"".as_ptr();
    }
    if ffi::lua_checkstack(state, 2) == 0 {
        ffi::luaL_error(
            state,
            c"stack overflow (%s)".as_ptr(),
            c"too many nested functions".as_ptr(),
        );
    }
    ffi::lua_pushvalue(state, 1);
    ffi::lua_call(state, 0, 1);
    if ffi::lua_type(state, -1) == ffi::LUA_TNIL {
        *size = 0;
        return std::ptr::null();
    }
    if ffi::lua_isstring(state, -1) != 0 {
        // Kept in the reserved third slot while the parser reads it.
        ffi::lua_replace(state, 3);
        return ffi::lua_tolstring(state, 3, size);
    }
    ffi::luaL_error(state, c"reader function must return a string".as_ptr());
    std::ptr::null()
}

unsafe extern "C-unwind" fn load(state: *mut ffi::lua_State) -> c_int {
    let name = ffi::luaL_optlstring(state, 2, c"=(load)".as_ptr(), std::ptr::null_mut());
    ffi::luaL_checktype(state, 1, ffi::LUA_TFUNCTION);
    ffi::lua_settop(state, 3);
    let mut started = false;
    let status = ffi::lua_load(
        state,
        read_pieces,
        std::ptr::addr_of_mut!(started).cast::<c_void>(),
        name,
    );
    load_result(state, status)
}

/// Compiles a script body as text (never bytecode) and stores the function at index `slot`
/// of `cache`. `Ok(Err(message))` when it does not compile.
pub fn compile(
    lua: &mlua::Lua,
    cache: &mlua::Table,
    slot: i64,
    body: &[u8],
) -> mlua::Result<Result<(), Vec<u8>>> {
    compile_named(lua, cache, slot, body, c"@user_script")
}

/// [`compile`] under another chunk name (errors and tracebacks name it): libraries of
/// functions are `@user_function`.
pub fn compile_named(
    lua: &mlua::Lua,
    cache: &mlua::Table,
    slot: i64,
    body: &[u8],
    chunk_name: &'static std::ffi::CStr,
) -> mlua::Result<Result<(), Vec<u8>>> {
    let slot = c_int::try_from(slot).map_err(|_| mlua::Error::runtime("too many scripts"))?;
    let (data, len) = (body.as_ptr().cast::<c_char>(), body.len());
    // SAFETY: `body` outlives the call; the frame holds only Copy values.
    let message: Option<mlua::LuaString> = unsafe {
        lua.exec_raw(cache, |state| {
            if load_text(state, data, len, chunk_name.as_ptr()) == 0 {
                ffi::lua_rawseti_(state, 1, slot);
                ffi::lua_settop(state, 0);
                ffi::lua_pushnil(state);
            } else {
                ffi::lua_replace(state, 1);
                ffi::lua_settop(state, 1);
            }
        })?
    };
    Ok(match message {
        None => Ok(()),
        Some(m) => Err(m.as_bytes().to_vec()),
    })
}
