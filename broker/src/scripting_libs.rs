//! The Lua libraries Redis scripts commonly use: `cjson`, `bit` (32-bit operations), `struct`
//! and `cmsgpack`.

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

/// `struct.pack` / `struct.unpack` / `struct.size`: binary packing with Lua 5.1's `struct`
/// library format (as bundled with Redis): `<` `>` `=` set the byte order, `!n` the maximum
/// alignment; `b B h H l L T i[n] I[n]` integers (1, 2, 8, 8, n bytes; i/I default 4),
/// `f d` floats, `x` a zero byte, `c[n]` a fixed-size string (`c0`: the length is the
/// previous value when unpacking), `s` a zero-terminated string.
pub fn structlib(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "pack",
        lua.create_function(|lua, args: mlua::Variadic<Value>| {
            let fmt = check_bytes(lua, &args, 1, "pack")?;
            let out = struct_pack(lua, &fmt, &args)?;
            lua.create_string(&out)
        })?,
    )?;
    t.set(
        "unpack",
        lua.create_function(|lua, args: mlua::Variadic<Value>| {
            let fmt = check_bytes(lua, &args, 1, "unpack")?;
            let data = check_bytes(lua, &args, 2, "unpack")?;
            let init = opt_number(lua, &args, 3, "unpack", 1.0)?;
            struct_unpack(lua, &fmt, &data, init as i64)
        })?,
    )?;
    t.set(
        "size",
        lua.create_function(|lua, args: mlua::Variadic<Value>| {
            let fmt = check_bytes(lua, &args, 1, "size")?;
            let mut f = StructFormat::new(&fmt);
            let mut total = 0usize;
            while let Some(item) = f.next_item().map_err(|e| e.raise(lua, "size"))? {
                let (opt, size) = item;
                if opt == b's' || (opt == b'c' && size == 0) {
                    let name = if opt == b's' { "s" } else { "c0" };
                    return Err(arg_error(
                        lua,
                        1,
                        "size",
                        format!("option '{name}' has no fixed size"),
                    ));
                }
                total = total
                    .saturating_add(f.padding(total, opt, size))
                    .saturating_add(size);
            }
            Ok(total as f64)
        })?,
    )?;
    Ok(t)
}

/// A bad format string: `luaL_argerror` on the format, or a plain `luaL_error`.
enum FormatError {
    BadFormat(String),
    Plain(String),
}

impl FormatError {
    fn raise(self, lua: &Lua, func: &str) -> mlua::Error {
        match self {
            FormatError::BadFormat(m) => arg_error(lua, 1, func, m),
            FormatError::Plain(m) => lib_error(lua, m),
        }
    }
}

/// Walks a `struct` format string: byte order, alignment and the sized options.
struct StructFormat<'a> {
    fmt: &'a [u8],
    pos: usize,
    little: bool,
    align: usize,
}

impl<'a> StructFormat<'a> {
    fn new(fmt: &'a [u8]) -> Self {
        StructFormat {
            fmt,
            pos: 0,
            little: cfg!(target_endian = "little"),
            align: 1,
        }
    }

    fn number(&mut self, default: usize) -> usize {
        let start = self.pos;
        let mut n = 0usize;
        while self.pos < self.fmt.len() && self.fmt[self.pos].is_ascii_digit() {
            n = n
                .saturating_mul(10)
                .saturating_add((self.fmt[self.pos] - b'0') as usize);
            self.pos += 1;
        }
        if self.pos == start {
            default
        } else {
            n
        }
    }

    /// The next data option and its size; control options are applied on the way.
    fn next_item(&mut self) -> Result<Option<(u8, usize)>, FormatError> {
        while self.pos < self.fmt.len() {
            let opt = self.fmt[self.pos];
            self.pos += 1;
            let size = match opt {
                b' ' => continue,
                b'<' => {
                    self.little = true;
                    continue;
                }
                b'>' => {
                    self.little = false;
                    continue;
                }
                b'=' => {
                    self.little = cfg!(target_endian = "little");
                    continue;
                }
                b'!' => {
                    let a = self.number(8);
                    if !a.is_power_of_two() {
                        return Err(FormatError::Plain(format!("alignment {a} is not a power of 2")));
                    }
                    self.align = a;
                    continue;
                }
                b'x' | b'b' | b'B' => 1,
                b'h' | b'H' => 2,
                b'l' | b'L' | b'T' | b'd' => 8,
                b'f' => 4,
                b'c' => self.number(1),
                b'i' | b'I' => {
                    let n = self.number(4);
                    if n > 32 {
                        return Err(FormatError::Plain(format!(
                            "integral size {n} is larger than limit of 32"
                        )));
                    }
                    n
                }
                b's' => 0,
                other => {
                    return Err(FormatError::BadFormat(format!(
                        "invalid format option '{}'",
                        other as char
                    )))
                }
            };
            return Ok(Some((opt, size)));
        }
        Ok(None)
    }

    /// Zero bytes to insert before an option of `size` at offset `len`.
    fn padding(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        (size - (len & (size - 1))) & (size - 1)
    }
}

fn struct_pack(lua: &Lua, fmt: &[u8], args: &[Value]) -> mlua::Result<Vec<u8>> {
    let mut f = StructFormat::new(fmt);
    let mut out = Vec::new();
    // The C library's buffer occupies the stack past the last argument, so a missing argument
    // reads as nil there, not as "no value".
    let mut padded = args.to_vec();
    padded.resize(args.len().max(fmt.len() + 1), Value::Nil);
    let args = &padded[..];
    // Data arguments follow the format (argument 1).
    let mut arg = 2;
    while let Some((opt, size)) = f.next_item().map_err(|e| e.raise(lua, "pack"))? {
        let pad = f.padding(out.len(), opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(lua, args, arg, "pack")?;
                arg += 1;
                let value: u64 = if n < 0.0 { (n as i64) as u64 } else { n as u64 };
                let fill = if n < 0.0 { 0xff } else { 0 };
                let mut bytes: Vec<u8> = (0..size)
                    .map(|k| if k < 8 { (value >> (8 * k)) as u8 } else { fill })
                    .collect();
                if !f.little {
                    bytes.reverse();
                }
                out.extend_from_slice(&bytes);
            }
            b'x' => out.push(0),
            b'f' | b'd' => {
                let n = check_number(lua, args, arg, "pack")?;
                arg += 1;
                let mut bytes = if opt == b'f' {
                    (n as f32).to_le_bytes().to_vec()
                } else {
                    n.to_le_bytes().to_vec()
                };
                if !f.little {
                    bytes.reverse();
                }
                out.extend_from_slice(&bytes);
            }
            b'c' | b's' => {
                let s = check_bytes(lua, args, arg, "pack")?;
                if opt == b'c' {
                    let size = if size == 0 { s.len() } else { size };
                    if s.len() < size {
                        // Reported one past the argument, as the C library does.
                        return Err(arg_error(lua, arg + 1, "pack", "string too short"));
                    }
                    out.extend_from_slice(&s[..size]);
                } else {
                    out.extend_from_slice(&s);
                    out.push(0);
                }
                arg += 1;
            }
            _ => {}
        }
    }
    Ok(out)
}

fn struct_unpack(lua: &Lua, fmt: &[u8], data: &[u8], init: i64) -> mlua::Result<mlua::MultiValue> {
    let too_short = || arg_error(lua, 2, "unpack", "data string too short");
    // Redis converts `init - 1` to an unsigned size: 0 is refused as an offset, a negative
    // one wraps around and is "too short" (an infinite one included, without overflowing here).
    let mut pos = match init {
        0 => return Err(arg_error(lua, 3, "unpack", "offset must be 1 or greater")),
        i if i < 0 => return Err(too_short()),
        i => usize::try_from(i - 1).map_err(|_| too_short())?,
    };
    if pos > data.len() {
        return Err(too_short());
    }
    let mut f = StructFormat::new(fmt);
    let mut values: Vec<Value> = Vec::new();
    while let Some((opt, mut size)) = f.next_item().map_err(|e| e.raise(lua, "unpack"))? {
        pos += f.padding(pos, opt, size);
        if pos.checked_add(size).is_none_or(|end| end > data.len()) {
            return Err(too_short());
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let mut bytes = data[pos..pos + size].to_vec();
                if !f.little {
                    bytes.reverse();
                }
                let mut v: u64 = 0;
                for (k, b) in bytes.iter().enumerate().take(8) {
                    v |= u64::from(*b) << (8 * k);
                }
                let signed = opt.is_ascii_lowercase();
                let n = if signed && size < 8 && size > 0 && (v >> (8 * size - 1)) & 1 == 1 {
                    (v | (u64::MAX << (8 * size))) as i64 as f64
                } else if signed {
                    v as i64 as f64
                } else {
                    v as f64
                };
                values.push(Value::Number(n));
            }
            b'x' => {}
            b'f' | b'd' => {
                let mut bytes = data[pos..pos + size].to_vec();
                if !f.little {
                    bytes.reverse();
                }
                let n = if opt == b'f' {
                    f64::from(f32::from_le_bytes(bytes[..4].try_into().unwrap_or([0; 4])))
                } else {
                    f64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]))
                };
                values.push(Value::Number(n));
            }
            b'c' => {
                if size == 0 {
                    let n = match values.pop() {
                        Some(Value::Number(n)) => n,
                        Some(Value::Integer(n)) => n as f64,
                        _ => return Err(lib_error(lua, "format 'c0' needs a previous size")),
                    };
                    size = n.max(0.0) as usize;
                    if size > data.len() - pos {
                        return Err(too_short());
                    }
                }
                values.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(lib_error(lua, "unfinished string in data"));
                };
                values.push(Value::String(lua.create_string(&data[pos..pos + end])?));
                size = end + 1;
            }
            _ => {}
        }
        pos += size;
    }
    values.push(Value::Number((pos + 1) as f64));
    Ok(values.into_iter().collect())
}

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
