//! `struct`: Lua 5.1's binary packing library, as bundled with Redis.

use super::{arg_error, check_bytes, check_number, lib_error, opt_number};
use mlua::{Lua, Table, Value};

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
