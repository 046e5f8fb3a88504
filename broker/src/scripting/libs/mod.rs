//! The Lua libraries Redis scripts commonly use, one file each: `cjson`, `bit` (32-bit
//! operations), `struct` and `cmsgpack`; here, the argument checks and error locations they
//! share (the `luaL_*` helpers of the C libraries they reproduce).

mod bit;
mod cjson;
mod cmsgpack;
mod structlib;

pub use bit::bit;
pub use cjson::cjson;
pub use cmsgpack::cmsgpack;
pub use structlib::structlib;

use mlua::{Lua, Value};

/// Where a library function was called from, as `luaL_where` gives it (`user_script:3: `).
fn caller_location(lua: &Lua) -> String {
    lua.inspect_stack(1, |d| {
        let line = d.current_line()?;
        let src = d.source().short_src?.into_owned();
        Some(format!("{src}:{line}: "))
    })
    .flatten()
    .unwrap_or_default()
}

/// An error raised by a library function, located like `luaL_error` does.
fn lib_error(lua: &Lua, msg: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::runtime(format!("{}{msg}", caller_location(lua)))
}

/// `luaL_argerror`: `bad argument #N to 'FUNC' (MSG)`, located.
fn arg_error(lua: &Lua, n: usize, func: &str, msg: impl std::fmt::Display) -> mlua::Error {
    lib_error(lua, format!("bad argument #{n} to '{func}' ({msg})"))
}

fn lua_type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// `luaL_checklstring` on argument `n` (1-based) of `args`: strings, and numbers as Lua
/// prints them.
fn check_bytes(lua: &Lua, args: &[Value], n: usize, func: &str) -> mlua::Result<Vec<u8>> {
    match args.get(n - 1) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => match lua.coerce_string(v.clone())? {
            Some(s) => Ok(s.as_bytes().to_vec()),
            None => Err(arg_error(lua, n, func, "string expected, got number")),
        },
        other => Err(arg_error(
            lua,
            n,
            func,
            format!("string expected, got {}", lua_type_name(other)),
        )),
    }
}

/// `luaL_optnumber`: `default` when argument `n` is absent or nil, else as `check_number`.
fn opt_number(lua: &Lua, args: &[Value], n: usize, func: &str, default: f64) -> mlua::Result<f64> {
    match args.get(n - 1) {
        None | Some(Value::Nil) => Ok(default),
        Some(_) => check_number(lua, args, n, func),
    }
}

/// `luaL_checknumber` on argument `n` (1-based): numbers, and strings that convert.
fn check_number(lua: &Lua, args: &[Value], n: usize, func: &str) -> mlua::Result<f64> {
    match args.get(n - 1) {
        Some(Value::Integer(i)) => Ok(*i as f64),
        Some(Value::Number(x)) => Ok(*x),
        Some(v @ Value::String(_)) => lua
            .coerce_number(v.clone())?
            .ok_or_else(|| arg_error(lua, n, func, "number expected, got string")),
        other => Err(arg_error(
            lua,
            n,
            func,
            format!("number expected, got {}", lua_type_name(other)),
        )),
    }
}
