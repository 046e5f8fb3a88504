//! A script's returned table → RESP bytes, converted on the Lua stack the way Redis does it.
//!
//! # Why on the Lua stack, and iteratively
//! A returned table can nest thousands of levels deep (or refer to itself). Converting it
//! recursively in Rust overflowed the thread's stack and aborted the process; holding an mlua
//! reference per level would exhaust mlua's reference stack (about 8,000 slots in Lua 5.1).
//! Here the tables being walked sit on the Lua stack, as in Redis, and the walk is a loop
//! with its own small stack of [`Level`]s. Redis stops descending where `lua_checkstack`
//! refuses more room (8,000 slots): an element that deep is answered with `-ERR reached lua
//! stack limit` in its place and the rest of the reply goes on. We count the slots Redis's
//! walk would hold ([`Level::child_slot`]) so that the cut falls at the same place (after
//! 7,995 nested arrays), independently of how mlua arranged our stack. A table that refers
//! to itself in several places expands without end (Redis never answers); we stop at
//! [`MAX_REPLY_BYTES`] with an error instead.
//!
//! The result is written straight into bytes for the client's protocol, so a deep reply never
//! becomes a deep `Reply` tree (whose encoding and drop would recurse again).
//!
//! # Soundness
//! As in [`call`](super::call): a Lua API call that can raise (here only `lua_checkstack`, on a
//! memory error while growing the stack) `longjmp`s over the frames that made it, so those
//! frames hold only `Copy` values. The output and the level stack live in the thread-local
//! [`ENCODING`], touched through short borrows that make no Lua call; a jump leaves them to be
//! cleared by the next [`begin`]. Nothing here can panic while Lua frames are below it.

#![allow(unsafe_code)]

use crate::reply::{msg, Protocol, Reply};
use bytes::{BufMut, Bytes, BytesMut};
use mlua::ffi;
use std::cell::RefCell;
use std::ffi::{c_char, c_int};

/// `LUAI_MAXCSTACK`: the most slots `lua_checkstack` grants a C function.
const LUA_STACK_SLOTS: usize = 8000;
/// Redis checks for 4 free slots before converting each element.
const SLOTS_PER_CHECK: usize = 4;
/// Where Redis's walk holds the returned value (its frame has one slot below it).
const ROOT_SLOT: usize = 2;
/// The largest reply a script may produce (the message in `msg::SCRIPT_REPLY_TOO_LARGE`
/// names it; unit tests use less, to stay fast).
#[cfg(not(test))]
pub const MAX_REPLY_BYTES: usize = 512 * 1024 * 1024;
#[cfg(test)]
pub const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone, Copy)]
enum Kind {
    /// Elements `next..=len` still to convert.
    Array { next: c_int, len: c_int },
    /// Stack: table, `{map=}` table, key, [value, key copy].
    Map { phase: Phase },
    /// Stack: table, `{set=}` table, key, [key copy].
    Set { phase: Phase },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Ready for `lua_next`.
    Next,
    /// The key (copy) was handed out.
    KeySent,
    /// The value (map) was handed out.
    ValueSent,
}

/// A table being walked.
#[derive(Clone, Copy)]
struct Level {
    kind: Kind,
    /// Stack index of the table.
    base: c_int,
    /// Slot Redis's walk would hold the table at.
    slot: usize,
}

impl Level {
    /// Slot of the next element Redis would convert at this level (module notes): an array
    /// element sits right above its table; a map key copy above the table, the map, the key
    /// and the value; a map value above the key; a set member copy above the set and its key.
    fn child_slot(&self, key: bool) -> usize {
        match self.kind {
            Kind::Array { .. } => self.slot + 1,
            Kind::Map { .. } if key => self.slot + 4,
            Kind::Map { .. } | Kind::Set { .. } => self.slot + 3,
        }
    }
}

#[derive(Default)]
struct Encoding {
    proto: Protocol,
    out: BytesMut,
    levels: Vec<Level>,
    /// An aggregate was converted into `out`.
    done: bool,
    too_large: bool,
}

thread_local! {
    static ENCODING: RefCell<Encoding> = RefCell::new(Encoding::default());
}

/// Prepares this thread for a script whose client speaks `proto`.
pub fn begin(proto: Protocol) {
    ENCODING.with(|e| {
        let mut e = e.borrow_mut();
        e.proto = proto;
        e.out.clear();
        e.levels.clear();
        e.done = false;
        e.too_large = false;
    });
}

/// The converted reply, if the script returned an aggregate (see [`encoder`]).
pub fn take() -> Option<Reply> {
    ENCODING.with(|e| {
        let mut e = e.borrow_mut();
        if e.too_large {
            e.out = BytesMut::new();
            e.too_large = false;
            e.done = false;
            return Some(Reply::error(msg::SCRIPT_REPLY_TOO_LARGE));
        }
        if !std::mem::take(&mut e.done) {
            return None;
        }
        let bytes: Bytes = e.out.split().freeze();
        if e.out.capacity() > 64 * 1024 {
            // Do not keep a huge buffer around for the next script.
            e.out = BytesMut::new();
        }
        Some(Reply::Raw(bytes))
    })
}

/// `encode(value)`: for a table that is an array, a `{map=}` or a `{set=}`, converts it into
/// this thread's output (see [`take`]) and returns nothing; returns any other value as it is
/// (scalars, `{err=}`, `{ok=}` and `{double=}` become a `Reply` in Rust).
pub fn encoder(lua: &mlua::Lua) -> mlua::Result<mlua::Function> {
    // SAFETY: a closure of `encode` with its key strings as upvalues; Copy-only frame.
    unsafe {
        lua.exec_raw::<mlua::Function>((), |state| {
            for key in [c"err", c"ok", c"double", c"map", c"set"] {
                ffi::lua_pushstring_(state, key.as_ptr());
            }
            ffi::lua_pushcclosure(state, encode, 5);
        })
    }
}

const KEY_ERR: c_int = 1;
const KEY_OK: c_int = 2;
const KEY_DOUBLE: c_int = 3;
const KEY_MAP: c_int = 4;
const KEY_SET: c_int = 5;

/// The value of field `key` (an upvalue) of the table at the top of the stack, pushed.
unsafe fn push_field(state: *mut ffi::lua_State, key: c_int) -> c_int {
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(key));
    ffi::lua_rawget(state, -2);
    ffi::lua_type(state, -1)
}

unsafe extern "C-unwind" fn encode(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_settop(state, 1);
    if ffi::lua_type(state, 1) != ffi::LUA_TTABLE {
        return 1;
    }
    let scalar = [
        (KEY_ERR, ffi::LUA_TSTRING),
        (KEY_OK, ffi::LUA_TSTRING),
        (KEY_DOUBLE, ffi::LUA_TNUMBER),
    ];
    for (key, ty) in scalar {
        let found = push_field(state, key) == ty;
        ffi::lua_pop(state, 1);
        if found {
            return 1;
        }
    }
    walk(state);
    ffi::lua_settop(state, 0);
    0
}

/// Converts the table at index 1 (module notes).
unsafe fn walk(state: *mut ffi::lua_State) {
    let mut pending = Some(ROOT_SLOT);
    loop {
        if let Some(slot) = pending.take() {
            visit(state, slot);
        }
        if stopped() {
            return;
        }
        let Some(mut level) = ENCODING.with(|e| e.borrow().levels.last().copied()) else {
            return;
        };
        let mut finished = false;
        match &mut level.kind {
            Kind::Array { next, len } => {
                if *next > *len {
                    finished = true;
                } else {
                    ffi::lua_rawgeti_(state, level.base, *next);
                    *next += 1;
                    pending = Some(level.child_slot(false));
                }
            }
            Kind::Map { phase } => match *phase {
                Phase::Next => {
                    if ffi::lua_next(state, level.base + 1) == 0 {
                        finished = true;
                    } else {
                        ffi::lua_pushvalue(state, -2);
                        *phase = Phase::KeySent;
                        pending = Some(level.child_slot(true));
                    }
                }
                Phase::KeySent => {
                    *phase = Phase::ValueSent;
                    pending = Some(level.child_slot(false));
                }
                Phase::ValueSent => *phase = Phase::Next,
            },
            Kind::Set { phase } => match *phase {
                Phase::Next => {
                    if ffi::lua_next(state, level.base + 1) == 0 {
                        finished = true;
                    } else {
                        ffi::lua_pop(state, 1);
                        ffi::lua_pushvalue(state, -1);
                        *phase = Phase::KeySent;
                        pending = Some(level.child_slot(true));
                    }
                }
                Phase::KeySent | Phase::ValueSent => *phase = Phase::Next,
            },
        }
        ENCODING.with(|e| {
            let mut e = e.borrow_mut();
            if finished {
                e.levels.pop();
            } else if let Some(last) = e.levels.last_mut() {
                *last = level;
            }
        });
        if finished {
            ffi::lua_settop(state, level.base - 1);
        }
    }
}

fn stopped() -> bool {
    ENCODING.with(|e| e.borrow().too_large)
}

/// Writes `reply` (a scalar) to the output.
fn write(reply: &Reply) {
    ENCODING.with(|e| {
        let mut e = e.borrow_mut();
        let proto = e.proto;
        reply.encode(proto, &mut e.out);
        if e.out.len() > MAX_REPLY_BYTES {
            e.too_large = true;
        }
    });
}

/// Writes an aggregate header and opens `level` for its elements.
fn open(tag: u8, n: usize, level: Level) {
    ENCODING.with(|e| {
        let mut e = e.borrow_mut();
        let resp3 = e.proto == Protocol::Resp3;
        let (tag, n) = match tag {
            b'%' if !resp3 => (b'*', 2 * n),
            b'~' if !resp3 => (b'*', n),
            _ => (tag, n),
        };
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(n);
        e.out.reserve(digits.len() + 3);
        e.out.put_u8(tag);
        e.out.put_slice(digits.as_bytes());
        e.out.put_slice(b"\r\n");
        e.levels.push(level);
        e.done = true;
    });
}

/// Converts the element at the top of the stack, held at `slot` in Redis's walk: writes a
/// scalar and pops it, or opens a level for a table (left on the stack).
unsafe fn visit(state: *mut ffi::lua_State, slot: usize) {
    if slot + SLOTS_PER_CHECK > LUA_STACK_SLOTS || ffi::lua_checkstack(state, SLOTS_PER_CHECK as c_int) == 0 {
        write(&Reply::error(msg::LUA_STACK_LIMIT));
        ffi::lua_pop(state, 1);
        return;
    }
    let base = ffi::lua_gettop(state);
    match ffi::lua_type(state, -1) {
        ffi::LUA_TSTRING => {
            let mut len = 0usize;
            let ptr = ffi::lua_tolstring(state, -1, &mut len);
            write_bulk(ptr, len);
        }
        ffi::LUA_TBOOLEAN => {
            let b = ffi::lua_toboolean(state, -1) != 0;
            write(&match (super::script_resp(), b) {
                (3, b) => Reply::Bool(b),
                (_, true) => Reply::Int(1),
                (_, false) => Reply::Null,
            });
        }
        ffi::LUA_TNUMBER => write(&Reply::Int(ffi::lua_tonumber(state, -1) as i64)),
        ffi::LUA_TTABLE => {
            if push_field(state, KEY_ERR) == ffi::LUA_TSTRING {
                write(&Reply::error(text_at(state, -1)));
                ffi::lua_settop(state, base - 1);
                return;
            }
            ffi::lua_pop(state, 1);
            if push_field(state, KEY_OK) == ffi::LUA_TSTRING {
                write(&Reply::status(text_at(state, -1)));
                ffi::lua_settop(state, base - 1);
                return;
            }
            ffi::lua_pop(state, 1);
            if push_field(state, KEY_DOUBLE) == ffi::LUA_TNUMBER {
                write(&Reply::Double(ffi::lua_tonumber(state, -1)));
                ffi::lua_settop(state, base - 1);
                return;
            }
            ffi::lua_pop(state, 1);
            for (key, tag) in [(KEY_MAP, b'%'), (KEY_SET, b'~')] {
                if push_field(state, key) == ffi::LUA_TTABLE {
                    let n = count_pairs(state);
                    ffi::lua_pushnil(state);
                    let kind = if key == KEY_MAP {
                        Kind::Map { phase: Phase::Next }
                    } else {
                        Kind::Set { phase: Phase::Next }
                    };
                    open(tag, n, Level { kind, base, slot });
                    return;
                }
                ffi::lua_pop(state, 1);
            }
            let mut len: c_int = 0;
            loop {
                ffi::lua_rawgeti_(state, base, len.saturating_add(1));
                let nil = ffi::lua_type(state, -1) == ffi::LUA_TNIL;
                ffi::lua_pop(state, 1);
                if nil || len == c_int::MAX {
                    break;
                }
                len += 1;
            }
            open(
                b'*',
                len as usize,
                Level {
                    kind: Kind::Array { next: 1, len },
                    base,
                    slot,
                },
            );
            return;
        }
        _ => write(&Reply::Null),
    }
    ffi::lua_pop(state, 1);
}

/// Pairs in the table at the top of the stack (leaves the stack as it was).
unsafe fn count_pairs(state: *mut ffi::lua_State) -> usize {
    let mut n = 0usize;
    ffi::lua_pushnil(state);
    while ffi::lua_next(state, -2) != 0 {
        ffi::lua_pop(state, 1);
        n += 1;
    }
    n
}

/// The string at `idx` (known to be a string), as text for a status or error line.
unsafe fn text_at(state: *mut ffi::lua_State, idx: c_int) -> String {
    let mut len = 0usize;
    let ptr = ffi::lua_tolstring(state, idx, &mut len);
    // SAFETY: a Lua string of `len` bytes, alive while on the stack.
    String::from_utf8_lossy(std::slice::from_raw_parts(ptr.cast::<u8>(), len)).into_owned()
}

/// A bulk string of the `len` bytes at `ptr` (a Lua string on the stack).
unsafe fn write_bulk(ptr: *const c_char, len: usize) {
    // SAFETY: a Lua string of `len` bytes, alive while on the stack.
    let data = std::slice::from_raw_parts(ptr.cast::<u8>(), len);
    ENCODING.with(|e| {
        let mut e = e.borrow_mut();
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(len);
        e.out.reserve(len + digits.len() + 5);
        e.out.put_u8(b'$');
        e.out.put_slice(digits.as_bytes());
        e.out.put_slice(b"\r\n");
        e.out.put_slice(data);
        e.out.put_slice(b"\r\n");
        if e.out.len() > MAX_REPLY_BYTES {
            e.too_large = true;
        }
    });
}
