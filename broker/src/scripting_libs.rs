//! The Lua libraries Redis scripts commonly use: `cjson` and `bit` (32-bit operations).

use mlua::{Lua, Table, Value};

/// `cjson.encode` / `cjson.decode` over serde_json.
pub fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "encode",
        lua.create_function(|_, v: Value| {
            let json = to_json(&v, 0)?;
            serde_json::to_string(&json).map_err(mlua::Error::external)
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| {
            let json: serde_json::Value = serde_json::from_slice(&s.as_bytes())
                .map_err(|e| mlua::Error::runtime(format!("Expected value but found invalid token: {e}")))?;
            from_json(lua, &json)
        })?,
    )?;
    Ok(t)
}

fn to_json(v: &Value, depth: usize) -> mlua::Result<serde_json::Value> {
    if depth > 1000 {
        return Err(mlua::Error::runtime("Cannot serialise, excessive nesting (1001)"));
    }
    Ok(match v {
        Value::Nil => serde_json::Value::Null,
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Integer(i) => serde_json::Value::from(*i),
        Value::Number(n) => {
            if n.fract() == 0.0 && n.abs() < 1e15 {
                serde_json::Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n)
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| mlua::Error::runtime("Cannot serialise number: must not be NaN or Inf"))?
            }
        }
        Value::String(s) => serde_json::Value::String(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        Value::Table(t) => {
            let len = t.raw_len();
            let total = t.pairs::<Value, Value>().count();
            if len > 0 && len == total {
                let mut arr = Vec::with_capacity(len);
                for i in 1..=len {
                    arr.push(to_json(&t.raw_get::<Value>(i)?, depth + 1)?);
                }
                serde_json::Value::Array(arr)
            } else if total == 0 {
                serde_json::Value::Object(serde_json::Map::new())
            } else {
                let mut map = serde_json::Map::new();
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    let key = match &k {
                        Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                        Value::Integer(i) => i.to_string(),
                        Value::Number(n) => n.to_string(),
                        _ => {
                            return Err(mlua::Error::runtime(
                                "Cannot serialise table: table key must be a number or string",
                            ))
                        }
                    };
                    map.insert(key, to_json(&v, depth + 1)?);
                }
                serde_json::Value::Object(map)
            }
        }
        _ => return Err(mlua::Error::runtime("Cannot serialise: type not supported")),
    })
}

fn from_json(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match v {
        // cjson returns a null sentinel; nil is the closest plain-Lua value.
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, from_json(lua, item)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, item) in map {
                t.raw_set(k.as_str(), from_json(lua, item)?)?;
            }
            Value::Table(t)
        }
    })
}

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
