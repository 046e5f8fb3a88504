//! `bit`: the LuaBitOp library's 32-bit operations.

use mlua::{Lua, Table};

/// The LuaBitOp `bit` library: 32-bit signed results, as Redis's bundled one.
pub fn bit(lua: &Lua) -> mlua::Result<Table> {
    fn tobit(n: f64) -> i32 {
        // LuaBitOp normalises through modular arithmetic on the integer part.
        (n as i64 as u64 & 0xFFFF_FFFF) as u32 as i32
    }
    let t = lua.create_table()?;
    t.set("tobit", lua.create_function(|_, n: f64| Ok(tobit(n)))?)?;
    t.set("bnot", lua.create_function(|_, n: f64| Ok(!tobit(n)))?)?;
    t.set(
        "band",
        lua.create_function(|_, ns: mlua::Variadic<f64>| Ok(ns.iter().fold(-1i32, |a, &n| a & tobit(n))))?,
    )?;
    t.set(
        "bor",
        lua.create_function(|_, ns: mlua::Variadic<f64>| Ok(ns.iter().fold(0i32, |a, &n| a | tobit(n))))?,
    )?;
    t.set(
        "bxor",
        lua.create_function(|_, ns: mlua::Variadic<f64>| Ok(ns.iter().fold(0i32, |a, &n| a ^ tobit(n))))?,
    )?;
    t.set(
        "lshift",
        lua.create_function(
            |_, (n, s): (f64, f64)| Ok(((tobit(n) as u32) << (tobit(s) as u32 & 31)) as i32),
        )?,
    )?;
    t.set(
        "rshift",
        lua.create_function(
            |_, (n, s): (f64, f64)| Ok(((tobit(n) as u32) >> (tobit(s) as u32 & 31)) as i32),
        )?,
    )?;
    t.set(
        "arshift",
        lua.create_function(|_, (n, s): (f64, f64)| Ok(tobit(n) >> (tobit(s) as u32 & 31)))?,
    )?;
    t.set(
        "tohex",
        lua.create_function(|_, (n, digits): (f64, Option<i64>)| {
            let d = digits.unwrap_or(8);
            let width = d.unsigned_abs().clamp(1, 8) as usize;
            let v = tobit(n) as u32;
            let full = if d < 0 {
                format!("{v:08X}")
            } else {
                format!("{v:08x}")
            };
            Ok(full[8 - width..].to_string())
        })?,
    )?;
    Ok(t)
}
