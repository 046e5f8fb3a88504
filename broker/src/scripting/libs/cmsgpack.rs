//! `cmsgpack`: MessagePack encoding and decoding, as Redis's bundled lua-cmsgpack.

use super::{arg_error, check_bytes, check_number, lib_error, opt_number};
use mlua::{Lua, Table, Value};

/// Nesting beyond this is encoded as nil, as Redis's cmsgpack does.
const MSGPACK_MAX_NESTING: usize = 16;

/// `cmsgpack.pack` / `unpack` / `unpack_one` / `unpack_limit` (MessagePack).
pub fn cmsgpack(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lua.create_function(|lua, args: mlua::Variadic<Value>| {
            if args.is_empty() {
                return Err(arg_error(lua, 0, "pack", "MessagePack pack needs input."));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                msgpack_encode(v, 0, &mut out)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    t.set(
        "unpack",
        lua.create_function(|lua, args: mlua::Variadic<Value>| {
            let s = check_bytes(lua, &args, 1, "unpack")?;
            let (_, values) = msgpack_unpack(lua, &s, 0, 0, args.len())?;
            Ok(values.into_iter().collect::<mlua::MultiValue>())
        })?,
    )?;
    t.set(
        "unpack_one",
        lua.create_function(|lua, args: mlua::Variadic<Value>| {
            let s = check_bytes(lua, &args, 1, "unpack_one")?;
            let offset = opt_number(lua, &args, 2, "unpack_one", 0.0)?;
            msgpack_unpack_with_offset(lua, &s, 1, offset as i64)
        })?,
    )?;
    t.set(
        "unpack_limit",
        lua.create_function(|lua, args: mlua::Variadic<Value>| {
            let s = check_bytes(lua, &args, 1, "unpack_limit")?;
            let limit = check_number(lua, &args, 2, "unpack_limit")?;
            let offset = opt_number(lua, &args, 3, "unpack_limit", 0.0)?;
            msgpack_unpack_with_offset(lua, &s, limit as i64, offset as i64)
        })?,
    )?;
    Ok(t)
}

fn msgpack_unpack_with_offset(
    lua: &Lua,
    s: &[u8],
    limit: i64,
    offset: i64,
) -> mlua::Result<mlua::MultiValue> {
    if offset < 0 || limit < 0 {
        // The C library prints the input length where it says "limit"; so do we.
        return Err(lib_error(
            lua,
            format!(
                "Invalid request to unpack with offset of {offset} and limit of {}.",
                s.len()
            ),
        ));
    }
    if offset as usize > s.len() {
        return Err(lib_error(
            lua,
            format!("Start offset {offset} greater than input length {}.", s.len()),
        ));
    }
    // The C functions drop every argument but the string before decoding.
    let (next, values) = msgpack_unpack(lua, s, limit as usize, offset as usize, 1)?;
    // ...and need one more slot for the offset they return first.
    if 1 + values.len() + 1 > LUA_STACK_SLOTS {
        return Err(lib_error(lua, "stack overflow (in function mp_unpack_full)"));
    }
    let next = if next >= s.len() { -1 } else { next as i64 };
    Ok(std::iter::once(Value::Integer(next)).chain(values).collect())
}

fn msgpack_encode(v: &Value, depth: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => msgpack_int(*n, out),
        Value::Number(n) => {
            if n.fract() == 0.0 && *n >= -9.2e18 && *n <= 9.2e18 {
                msgpack_int(*n as i64, out);
            } else if f64::from(*n as f32) == *n {
                out.push(0xca);
                out.extend_from_slice(&(*n as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::String(s) => {
            let b = s.as_bytes();
            let len = b.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else if len <= 0xff {
                out.extend_from_slice(&[0xd9, len as u8]);
            } else if len <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(&b);
        }
        Value::Table(t) if depth < MSGPACK_MAX_NESTING => {
            // An array when the keys are exactly 1..n.
            let mut count = 0usize;
            let mut max = 0usize;
            let mut is_array = true;
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, _) = pair?;
                count += 1;
                match k {
                    Value::Integer(i) if i > 0 => max = max.max(i as usize),
                    Value::Number(n) if n > 0.0 && n.fract() == 0.0 => max = max.max(n as usize),
                    _ => is_array = false,
                }
            }
            if is_array && max == count {
                msgpack_len(count, 0x90, 0xdc, 0xdd, out);
                for i in 1..=count {
                    let v: Value = t.raw_get(i)?;
                    msgpack_encode(&v, depth + 1, out)?;
                }
            } else {
                msgpack_len(count, 0x80, 0xde, 0xdf, out);
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    msgpack_encode(&k, depth + 1, out)?;
                    msgpack_encode(&v, depth + 1, out)?;
                }
            }
        }
        // Too deep, functions, userdata, threads: nil.
        _ => out.push(0xc0),
    }
    Ok(())
}

fn msgpack_len(n: usize, fix: u8, b16: u8, b32: u8, out: &mut Vec<u8>) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn msgpack_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Decodes up to `limit` objects (0 = all) from `offset`; returns the offset after them.
/// `nargs` is how many arguments the Lua function got: they count against the stack room.
fn msgpack_unpack(
    lua: &Lua,
    s: &[u8],
    limit: usize,
    offset: usize,
    nargs: usize,
) -> mlua::Result<(usize, Vec<Value>)> {
    let mut pos = offset;
    let mut values = Vec::new();
    while pos < s.len() && (limit == 0 || values.len() < limit) {
        values.push(msgpack_decode(lua, s, &mut pos, nargs + values.len())?);
    }
    Ok((pos, values))
}

fn take<'s>(lua: &Lua, s: &'s [u8], pos: &mut usize, n: usize) -> mlua::Result<&'s [u8]> {
    if s.len() - *pos < n {
        return Err(lib_error(lua, "Missing bytes in input."));
    }
    let out = &s[*pos..*pos + n];
    *pos += n;
    Ok(out)
}

fn be_uint(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x))
}

/// `LUAI_MAXCSTACK`: the Lua stack slots a C function may use.
const LUA_STACK_SLOTS: usize = 8000;

/// A container being filled while decoding.
struct MsgpackOpen {
    t: Table,
    /// Entries (array elements or map pairs) in total and so far.
    len: usize,
    done: usize,
    /// A map's key waiting for its value.
    key: Option<Value>,
    is_map: bool,
    /// The Lua stack slot the C library holds this table at.
    slot: usize,
}

/// Decodes one object at `pos`, with `top` Lua stack slots in use. Without recursion: open
/// containers are a stack, so nesting costs heap, not thread stack.
///
/// The C library keeps every open container on the Lua stack (an array with the index being
/// filled, a map with its key) and checks for room before each value and each array; we count
/// the same slots so that a deep input fails where it fails in Redis, with its messages.
fn msgpack_decode(lua: &Lua, s: &[u8], pos: &mut usize, top: usize) -> mlua::Result<Value> {
    let overflow = |what: &str| lib_error(lua, format!("stack overflow ({what})"));
    let mut open: Vec<MsgpackOpen> = Vec::new();
    // Slots in use before the next value is pushed.
    let mut at = top;
    loop {
        if at + 1 > LUA_STACK_SLOTS {
            return Err(overflow(
                "too many return values at once; use unpack_one or unpack_limit instead.",
            ));
        }
        let mut value = match msgpack_scalar(lua, s, pos)? {
            MsgpackItem::Value(v) => v,
            MsgpackItem::Container { len, is_map } => {
                let t = if is_map {
                    lua.create_table_with_capacity(0, len)?
                } else {
                    lua.create_table_with_capacity(len, 0)?
                };
                let slot = at + 1;
                if !is_map && slot + 1 > LUA_STACK_SLOTS {
                    return Err(overflow("in function mp_decode_to_lua_array"));
                }
                if len == 0 {
                    Value::Table(t)
                } else {
                    // An array element sits above its index; a map key right above the map.
                    at = if is_map { slot } else { slot + 1 };
                    open.push(MsgpackOpen {
                        t,
                        len,
                        done: 0,
                        key: None,
                        is_map,
                        slot,
                    });
                    continue;
                }
            }
        };
        // Attach the finished value to the containers it completes.
        loop {
            let Some(c) = open.last_mut() else {
                return Ok(value);
            };
            if c.is_map && c.key.is_none() {
                c.key = Some(value);
                at = c.slot + 1;
                break;
            }
            if c.is_map {
                let key = c.key.take().unwrap_or(Value::Nil);
                if !key.is_nil() {
                    c.t.raw_set(key, value)?;
                }
            } else {
                c.t.raw_set(c.done + 1, value)?;
            }
            c.done += 1;
            if c.done < c.len {
                at = if c.is_map { c.slot } else { c.slot + 1 };
                break;
            }
            let Some(finished) = open.pop() else {
                return Err(lib_error(lua, "Bad data format in input."));
            };
            value = Value::Table(finished.t);
        }
    }
}

/// One MessagePack item: a complete value, or the header of an array or map.
enum MsgpackItem {
    Value(Value),
    Container { len: usize, is_map: bool },
}

fn msgpack_scalar(lua: &Lua, s: &[u8], pos: &mut usize) -> mlua::Result<MsgpackItem> {
    let tag = take(lua, s, pos, 1)?[0];
    let num = |n: f64| MsgpackItem::Value(Value::Number(n));
    let string = |b: &[u8]| -> mlua::Result<MsgpackItem> {
        Ok(MsgpackItem::Value(Value::String(lua.create_string(b)?)))
    };
    // Each element takes at least a byte (a map entry two): a claimed length beyond the
    // input is an error, not a huge allocation.
    let container = |pos: &usize, len: usize, is_map: bool| -> mlua::Result<MsgpackItem> {
        let room = s.len() - *pos;
        if (is_map && len > room / 2) || (!is_map && len > room) {
            return Err(lib_error(lua, "Missing bytes in input."));
        }
        Ok(MsgpackItem::Container { len, is_map })
    };
    Ok(match tag {
        0x00..=0x7f => num(f64::from(tag)),
        0x80..=0x8f => container(pos, (tag & 0x0f) as usize, true)?,
        0x90..=0x9f => container(pos, (tag & 0x0f) as usize, false)?,
        0xa0..=0xbf => string(take(lua, s, pos, (tag & 0x1f) as usize)?)?,
        0xc0 => MsgpackItem::Value(Value::Nil),
        0xc2 => MsgpackItem::Value(Value::Boolean(false)),
        0xc3 => MsgpackItem::Value(Value::Boolean(true)),
        0xc4 | 0xd9 => {
            let n = take(lua, s, pos, 1)?[0] as usize;
            string(take(lua, s, pos, n)?)?
        }
        0xc5 | 0xda => {
            let n = be_uint(take(lua, s, pos, 2)?) as usize;
            string(take(lua, s, pos, n)?)?
        }
        0xc6 | 0xdb => {
            let n = be_uint(take(lua, s, pos, 4)?) as usize;
            string(take(lua, s, pos, n)?)?
        }
        0xca => num(f64::from(f32::from_bits(be_uint(take(lua, s, pos, 4)?) as u32))),
        0xcb => num(f64::from_bits(be_uint(take(lua, s, pos, 8)?))),
        0xcc => num(be_uint(take(lua, s, pos, 1)?) as f64),
        0xcd => num(be_uint(take(lua, s, pos, 2)?) as f64),
        0xce => num(be_uint(take(lua, s, pos, 4)?) as f64),
        0xcf => num(be_uint(take(lua, s, pos, 8)?) as f64),
        0xd0 => num(f64::from(take(lua, s, pos, 1)?[0] as i8)),
        0xd1 => num(f64::from(be_uint(take(lua, s, pos, 2)?) as u16 as i16)),
        0xd2 => num(f64::from(be_uint(take(lua, s, pos, 4)?) as u32 as i32)),
        0xd3 => num(be_uint(take(lua, s, pos, 8)?) as i64 as f64),
        0xdc => {
            let n = be_uint(take(lua, s, pos, 2)?) as usize;
            container(pos, n, false)?
        }
        0xdd => {
            let n = be_uint(take(lua, s, pos, 4)?) as usize;
            container(pos, n, false)?
        }
        0xde => {
            let n = be_uint(take(lua, s, pos, 2)?) as usize;
            container(pos, n, true)?
        }
        0xdf => {
            let n = be_uint(take(lua, s, pos, 4)?) as usize;
            container(pos, n, true)?
        }
        0xe0..=0xff => num(f64::from(tag as i8)),
        _ => return Err(lib_error(lua, "Bad data format in input.")),
    })
}
