//! `cjson`: lua-cjson's `encode` (its output with Redis's settings) and `decode` over serde_json.

use super::{arg_error, lib_error, lua_type_name};
use mlua::{Lua, Table, Value};

/// `cjson.encode` (lua-cjson's output with Redis's settings) and `cjson.decode` (over
/// serde_json).
pub fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "encode",
        lua.create_function(|lua, args: mlua::Variadic<Value>| {
            if args.len() != 1 {
                return Err(arg_error(lua, 1, "encode", "expected 1 argument"));
            }
            let json = json_encode(lua, args[0].clone())?;
            lua.create_string(&json)
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| {
            let bytes = s.as_bytes();
            if let Some(at) = json_too_deep(&bytes) {
                return Err(lib_error(
                    lua,
                    format!(
                        "Found too many nested data structures ({}) at character {at}",
                        JSON_MAX_DEPTH + 1
                    ),
                ));
            }
            let json: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| lib_error(lua, format!("Expected value but found invalid token: {e}")))?;
            from_json(lua, &json)
        })?,
    )?;
    Ok(t)
}

/// lua-cjson's `encode_max_depth` and `decode_max_depth`.
const JSON_MAX_DEPTH: usize = 1000;

/// Where lua-cjson would find more than [`JSON_MAX_DEPTH`] open arrays or objects (the
/// 1-based position of the bracket), ignoring brackets inside strings.
fn json_too_deep(s: &[u8]) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in s.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > JSON_MAX_DEPTH {
                    return Some(i + 1);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// `%.14g`, lua-cjson's number format.
fn format_g14(x: f64) -> String {
    fn trim(s: &str) -> &str {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        }
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{x:.13e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..14).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.unsigned_abs())
    } else {
        let decimals = usize::try_from(13 - exp).unwrap_or(0);
        trim(&format!("{x:.decimals$}")).to_string()
    }
}

/// A JSON string as lua-cjson writes it: `/` and DEL escaped too, other bytes as they are.
fn json_string(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// A key of a table encoded as a JSON object, kept as data (not a Lua reference) until its
/// value is fetched.
enum JsonKey {
    Number(f64),
    Text(Vec<u8>),
}

/// A table being encoded.
enum JsonFrame {
    Array {
        t: Table,
        len: i64,
        next: i64,
    },
    Object {
        t: Table,
        keys: Vec<JsonKey>,
        next: usize,
    },
}

/// lua-cjson's `encode`, without recursion: open tables are a stack of frames, so a deep
/// table costs heap, not thread stack, and holds one Lua reference per level.
fn json_encode(lua: &Lua, root: Value) -> mlua::Result<Vec<u8>> {
    let number = |lua: &Lua, n: f64, out: &mut Vec<u8>| -> mlua::Result<()> {
        if !n.is_finite() {
            return Err(lib_error(lua, "Cannot serialise number: must not be NaN or Inf"));
        }
        out.extend_from_slice(format_g14(n).as_bytes());
        Ok(())
    };
    let mut out = Vec::new();
    let mut frames: Vec<JsonFrame> = Vec::new();
    let mut pending = Some(root);
    loop {
        if let Some(value) = pending.take() {
            match value {
                Value::Nil => out.extend_from_slice(b"null"),
                Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
                Value::Boolean(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
                Value::Integer(i) => number(lua, i as f64, &mut out)?,
                Value::Number(n) => number(lua, n, &mut out)?,
                Value::String(s) => json_string(&s.as_bytes(), &mut out),
                Value::Table(t) => {
                    let depth = frames.len() + 1;
                    if depth > JSON_MAX_DEPTH {
                        return Err(lib_error(
                            lua,
                            format!("Cannot serialise, excessive nesting ({depth})"),
                        ));
                    }
                    frames.push(json_frame(lua, t, &mut out)?);
                }
                other => {
                    return Err(lib_error(
                        lua,
                        format!(
                            "Cannot serialise {}: type not supported",
                            lua_type_name(Some(&other))
                        ),
                    ))
                }
            }
        }
        match frames.last_mut() {
            None => return Ok(out),
            Some(JsonFrame::Array { t, len, next }) => {
                if *next > *len {
                    out.push(b']');
                    frames.pop();
                } else {
                    if *next > 1 {
                        out.push(b',');
                    }
                    pending = Some(t.raw_get(*next)?);
                    *next += 1;
                }
            }
            Some(JsonFrame::Object { t, keys, next }) => match keys.get(*next) {
                None => {
                    out.push(b'}');
                    frames.pop();
                }
                Some(key) => {
                    if *next > 0 {
                        out.push(b',');
                    }
                    pending = Some(match key {
                        JsonKey::Number(n) => {
                            out.push(b'"');
                            number(lua, *n, &mut out)?;
                            out.extend_from_slice(b"\":");
                            t.raw_get(*n)?
                        }
                        JsonKey::Text(k) => {
                            json_string(k, &mut out);
                            out.push(b':');
                            t.raw_get(lua.create_string(k)?)?
                        }
                    });
                    *next += 1;
                }
            },
        }
    }
}

/// Opens a table for encoding: an array when its keys are exactly positive integers (holes
/// become `null`, as long as the array is not excessively sparse), else an object.
fn json_frame(lua: &Lua, t: Table, out: &mut Vec<u8>) -> mlua::Result<JsonFrame> {
    let (mut max, mut items, mut array) = (0f64, 0u64, true);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => f64::NAN,
        };
        if n.floor() == n && n >= 1.0 {
            max = max.max(n);
            items += 1;
        } else {
            array = false;
            break;
        }
    }
    // lua-cjson's defaults: more than half holes in an array longer than 10 is an error.
    if array && max > 2.0 * items as f64 && max > 10.0 {
        return Err(lib_error(lua, "Cannot serialise table: excessively sparse array"));
    }
    if array && max > 0.0 {
        out.push(b'[');
        return Ok(JsonFrame::Array {
            t,
            len: max as i64,
            next: 1,
        });
    }
    let mut keys = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        keys.push(match k {
            Value::Integer(i) => JsonKey::Number(i as f64),
            Value::Number(n) => JsonKey::Number(n),
            Value::String(s) => JsonKey::Text(s.as_bytes().to_vec()),
            other => {
                return Err(lib_error(
                    lua,
                    format!(
                        "Cannot serialise {}: table key must be a number or string",
                        lua_type_name(Some(&other))
                    ),
                ))
            }
        });
    }
    out.push(b'{');
    Ok(JsonFrame::Object { t, keys, next: 0 })
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
