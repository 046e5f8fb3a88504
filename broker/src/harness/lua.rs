//! Lua scripts for EVAL built from random nested values: tables of every reply shape,
//! `redis.call`/`pcall` of generated commands, `cjson`, `cmsgpack`, `struct` and `bit` calls
//! on hostile inputs, and conversions back to RESP2 and RESP3.

use super::choices::Choices;
use super::grammar::{self, Options};
use std::fmt::Write;

/// Inputs of crashes the fuzzers found (or that were known) in the scripting code, all fixed
/// since; the generator makes them when [`Options::known_crashes`] is set, which the drivers
/// do unless `FUZZ_KNOWN_CRASHES=0`:
/// - a reply table nested thousands deep (or one that contains itself) overflows the stack
///   while it is converted to a reply;
/// - `cjson.encode` of a table nested about 300 deep or more (or of a table that contains
///   itself) overflows a 2 MiB thread stack
///   (debug build) before its 1000-level limit is reached;
/// - `cmsgpack.unpack` of about 200 nested arrays or more does the same before its
///   1000-level limit;
/// - `struct.unpack(fmt, s, -1/0)` (an offset of -2^63) overflows an integer subtraction,
///   a panic in a debug build;
/// - binary chunks through `loadstring`/`load` (never generated: the generator writes no
///   `string.dump`);
/// - writes to library tables (never generated: they are not crashes, but a write would change
///   every later script of a reused harness);
/// - `SCRIPT KILL` under `pcall` (never generated: no unbounded loops).
pub const KNOWN_CRASHES: &[&str] = &[
    "deep-reply-nesting",
    "cyclic-reply",
    "cjson-encode-deep",
    "cmsgpack-unpack-deep",
    "struct-unpack-offset-overflow",
];

/// Nesting generated without `known_crashes`: what a 2 MiB thread stack holds in a debug
/// build for every path above.
pub const SAFE_NESTING: usize = 100;

/// Nesting depths to try: at and past the libraries' limits only with `known_crashes`.
fn nesting(c: &mut impl Choices, opts: Options, past_limit: &[usize]) -> usize {
    if opts.known_crashes && c.chance(50) {
        *c.pick(past_limit)
    } else {
        *c.pick(&[1, 10, 16, 17, 50, SAFE_NESTING])
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "0.5",
    "-0.5",
    "3.0",
    "1e308",
    "-1e308",
    "2^53",
    "2^63",
    "-(2^63)",
    "2^64",
    "1/0",
    "-1/0",
    "(0/0)",
    "9007199254740993",
    "4294967296",
    "-2147483648",
    "2147483647",
    "1e-320",
    "123456789012345678",
    "-0",
];

const JSON: &[&str] = &[
    "{}",
    "[]",
    "[1,2,[3,{\"a\":null}]]",
    "{\"a\":1e999}",
    "\"\\ud800\"",
    "[[[[[[]]]]]]",
    "1.5",
    "-0",
    "true",
    "nul",
    "{\"a\":",
    "[1,]",
    "{\"\":{\"\":[]}}",
    "\"\\u0000\"",
    "123456789012345678901234567890",
    "[1e-400]",
    "{\"a\":1,\"a\":2}",
    " ",
    "",
];

const STRUCT_FORMATS: &[&str] = &[
    "i4", "<I2", ">d", "s", "c0", "i", "bBhH", "!4i8", ">i16", "c5", "xxxx", "Xi", "c", "<f", "i17", "!17",
    "Ic0", "L", "T", "=", "s0",
];

/// First bytes of msgpack values whose lengths or counts the rest of the input may not hold.
const MSGPACK_HEADS: &[u8] = &[
    0x90, 0x93, 0x9f, 0xdc, 0xdd, 0x80, 0x8f, 0xde, 0xdf, 0xc4, 0xc5, 0xc6, 0xda, 0xdb, 0xd9, 0xcb, 0xca,
    0xd3, 0xcf, 0xc1, 0xc7, 0xd4, 0xc0, 0xc2, 0xc3, 0xa5, 0xff,
];

/// A Lua string literal holding exactly `bytes` (decimal escapes for anything unprintable).
pub fn lua_string(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\{b:03}");
            }
        }
    }
    s.push('"');
    s
}

/// SHA1s to call with EVALSHA: of scripts SCRIPT LOAD and EVAL are likely to have cached, or
/// not.
pub fn sha(c: &mut impl Choices) -> String {
    match c.below(4) {
        0 => crate::scripting::sha1_hex(b"return 1"),
        1 => crate::scripting::sha1_hex(b"return 1").to_ascii_uppercase(),
        2 => "ffffffffffffffffffffffffffffffffffffffff".into(),
        _ => String::from_utf8_lossy(&c.bytes(41)).into_owned(),
    }
}

/// A script: a few statements, then a return of a random value. `depth` bounds the nesting
/// of generated expressions (not of the tables a script may build in a loop).
pub fn script(c: &mut impl Choices, depth: usize, opts: Options) -> String {
    if c.chance(10) {
        return "return 1".into();
    }
    let mut s = String::new();
    for i in 0..c.below(4) {
        statement(c, depth, opts, i, &mut s);
        s.push('\n');
    }
    match c.below(10) {
        0 => {}
        1 => {
            s.push_str("return ");
            expr(c, depth, opts, &mut s);
            s.push_str(", ");
            expr(c, depth, opts, &mut s);
        }
        _ => {
            s.push_str("return ");
            expr(c, depth, opts, &mut s);
        }
    }
    s
}

fn statement(c: &mut impl Choices, depth: usize, opts: Options, i: usize, s: &mut String) {
    match c.below(7) {
        0 | 1 => {
            let _ = write!(s, "local v{i} = ");
            expr(c, depth, opts, s);
        }
        2 => call(c, "redis.call", opts, s),
        3 => {
            s.push_str("pcall(");
            let args = grammar::command(c, 1, opts);
            s.push_str("redis.call");
            for a in &args {
                s.push_str(", ");
                s.push_str(&lua_string(a));
            }
            s.push(')');
        }
        4 => {
            let _ = write!(s, "redis.setresp({})", c.pick(&["2", "3", "3", "1", "'x'"]));
        }
        5 => {
            s.push_str("if ");
            expr(c, depth.saturating_sub(1), opts, s);
            s.push_str(" then return ");
            expr(c, depth.saturating_sub(1), opts, s);
            s.push_str(" end");
        }
        _ => {
            s.push_str("redis.log(redis.LOG_DEBUG, ");
            string_expr(c, depth.saturating_sub(1), opts, s);
            s.push(')');
        }
    }
}

fn call(c: &mut impl Choices, func: &str, opts: Options, s: &mut String) {
    let args = grammar::command(c, 1, opts);
    s.push_str(func);
    s.push('(');
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        if c.chance(5) {
            // A number or table where a string is expected.
            s.push_str(c.pick::<&str>(&["1", "1.5", "{}", "nil", "true"]));
        } else {
            s.push_str(&lua_string(a));
        }
    }
    s.push(')');
}

fn leaf(c: &mut impl Choices, s: &mut String) {
    match c.below(8) {
        0..=2 => s.push_str(c.pick::<&str>(NUMBERS)),
        3..=4 => s.push_str(&lua_string(&grammar::element(c))),
        5 => s.push_str(c.pick::<&str>(&["true", "false", "nil"])),
        6 => {
            let _ = write!(s, "KEYS[{}]", c.below(4));
        }
        _ => {
            let _ = write!(s, "ARGV[{}]", c.below(4));
        }
    }
}

/// A value to hand to a string-taking function: usually a string, sometimes not.
fn string_expr(c: &mut impl Choices, depth: usize, opts: Options, s: &mut String) {
    if depth == 0 || c.chance(60) {
        s.push_str(&lua_string(&grammar::element(c)));
    } else {
        expr(c, depth - 1, opts, s);
    }
}

fn table(c: &mut impl Choices, depth: usize, opts: Options, s: &mut String) {
    s.push('{');
    let n = if c.chance(10) { c.below(40) } else { c.below(5) };
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        match c.below(12) {
            0 => {
                s.push_str("ok=");
                string_expr(c, depth, opts, s);
            }
            1 => {
                s.push_str("err=");
                string_expr(c, depth, opts, s);
            }
            2 => {
                s.push_str("double=");
                s.push_str(c.pick::<&str>(NUMBERS));
            }
            3 => {
                s.push_str("map={a=1, [2]=");
                expr(c, depth, opts, s);
                s.push('}');
            }
            4 => s.push_str("set={a=true, b=true}"),
            5 => s.push_str("big_number=\"123456789012345678901234567890\""),
            6 => s.push_str("verbatim_string={format='txt', string='x'}"),
            7 => {
                let _ = write!(s, "[{}]=", c.pick(&["1.5", "true", "-1", "0", "3"]));
                expr(c, depth, opts, s);
            }
            8 => s.push_str("nil"),
            _ => expr(c, depth, opts, s),
        }
    }
    s.push('}');
}

/// A table nested `levels` deep, built in a loop (the source stays small at any depth).
fn deep_table(levels: usize, s: &mut String) {
    let _ = write!(
        s,
        "(function() local t={{}} local c=t for i=1,{levels} do local n={{}} c[1]=n c=n end return t end)()"
    );
}

fn msgpack_bytes(c: &mut impl Choices, opts: Options) -> Vec<u8> {
    let mut b = Vec::new();
    if c.chance(15) {
        // Nested arrays: one-element fixarrays around an integer.
        let levels = nesting(c, opts, &[200, 1000, 1001, 5000]);
        b.resize(levels, 0x91);
        b.push(0x01);
        return b;
    }
    for _ in 0..1 + c.below(3) {
        b.push(*c.pick(MSGPACK_HEADS));
        b.extend(c.bytes(10));
    }
    b
}

pub(super) fn expr(c: &mut impl Choices, depth: usize, opts: Options, s: &mut String) {
    if depth == 0 {
        return leaf(c, s);
    }
    let d = depth - 1;
    match c.below(30) {
        0..=5 => leaf(c, s),
        6..=9 => table(c, d, opts, s),
        10 => call(c, "redis.call", opts, s),
        11 => call(c, "redis.pcall", opts, s),
        12 => {
            s.push_str(c.pick::<&str>(&["redis.status_reply(", "redis.error_reply(", "redis.sha1hex("]));
            string_expr(c, d, opts, s);
            s.push(')');
        }
        13 => {
            s.push_str("cjson.encode(");
            expr(c, d, opts, s);
            s.push(')');
        }
        14 => {
            s.push_str("select(2, pcall(cjson.decode, ");
            match c.below(3) {
                0 => s.push_str(&lua_string(c.pick(JSON).as_bytes())),
                1 => {
                    s.push_str("cjson.encode(");
                    expr(c, d, opts, s);
                    s.push(')');
                }
                _ => {
                    let levels = *c.pick(&[10, 127, 128, 129, 1000]);
                    s.push_str(&lua_string(&[b"[".repeat(levels), b"]".repeat(levels)].concat()));
                }
            }
            s.push_str("))");
        }
        15 => {
            s.push_str("cmsgpack.pack(");
            expr(c, d, opts, s);
            if c.chance(30) {
                s.push_str(", ");
                expr(c, d, opts, s);
            }
            s.push(')');
        }
        16 => {
            // Unpacked values go through type() when they may be deep: the reply conversion
            // of a deep table is a known crash, this target is after the unpacker.
            s.push_str("type(select(2, pcall(cmsgpack.unpack, ");
            match c.below(3) {
                0 => s.push_str(&lua_string(&msgpack_bytes(c, opts))),
                1 => {
                    s.push_str("string.sub(cmsgpack.pack(");
                    expr(c, d, opts, s);
                    let _ = write!(s, "), 1, {})", c.below(12) as i64 - 2);
                }
                _ => {
                    s.push_str("cmsgpack.pack(");
                    expr(c, d, opts, s);
                    s.push(')');
                }
            }
            s.push_str(")))");
        }
        17 => {
            s.push_str("select(2, pcall(struct.pack, ");
            struct_format(c, s);
            for _ in 0..c.below(4) {
                s.push_str(", ");
                expr(c, d, opts, s);
            }
            s.push_str("))");
        }
        18 => {
            s.push_str("select(2, pcall(struct.unpack, ");
            struct_format(c, s);
            s.push_str(", ");
            if c.chance(50) {
                s.push_str(&lua_string(&c.bytes(20)));
            } else {
                s.push_str("struct.pack(");
                struct_format(c, s);
                s.push_str(", ");
                leaf(c, s);
                s.push(')');
            }
            if c.chance(30) {
                // An offset of -2^63 (what -1/0 becomes) is struct-unpack-offset-overflow.
                let offsets = if opts.known_crashes {
                    NUMBERS
                } else {
                    &["0", "1", "2", "-1", "0.5", "3.0", "2^53", "100", "2^63"]
                };
                let _ = write!(s, ", {}", c.pick(offsets));
            }
            s.push_str("))");
        }
        19 => {
            s.push_str("select(2, pcall(struct.size, ");
            struct_format(c, s);
            s.push_str("))");
        }
        20 => {
            let f = *c.pick(&[
                "band", "bor", "bxor", "lshift", "rshift", "arshift", "rol", "tohex", "bnot", "tobit",
                "bswap",
            ]);
            let _ = write!(s, "select(2, pcall(bit.{f}, ");
            leaf(c, s);
            s.push_str(", ");
            leaf(c, s);
            s.push_str("))");
        }
        21 => {
            s.push_str(c.pick::<&str>(&["tostring(", "tonumber(", "type(", "#tostring("]));
            expr(c, d, opts, s);
            s.push(')');
        }
        22 => {
            s.push_str("select(2, pcall(string.rep, ");
            string_expr(c, d, opts, s);
            let _ = write!(s, ", {}))", c.pick(&["0", "1", "3", "100", "-1", "1.5"]));
        }
        23 => {
            let f = *c.pick(&[
                "string.format, '%q', ",
                "string.format, '%d', ",
                "string.byte, ",
                "string.upper, ",
                "string.char, ",
            ]);
            let _ = write!(s, "select(2, pcall({f}");
            string_expr(c, d, opts, s);
            s.push_str("))");
        }
        24 => {
            s.push_str("select(2, pcall(function() return ");
            expr(c, d, opts, s);
            s.push_str(" end))");
        }
        25 => {
            let levels = nesting(c, opts, &[1000, 5000, 200_000]);
            deep_table(levels, s);
        }
        26 => {
            // Tables that contain themselves, handed to the encoders (cjson.encode recurses
            // to its 1000-level limit on them: cjson-encode-deep).
            let f = if opts.known_crashes && c.chance(50) {
                "cjson.encode"
            } else {
                "cmsgpack.pack"
            };
            let _ = write!(
                s,
                "select(2, pcall({f}, (function() local t={{1}} t[2]=t return t end)()))"
            );
        }
        27 if opts.known_crashes => s.push_str("(function() local t={1} t[2]=t return t end)()"),
        28 => {
            s.push_str("select(2, pcall(cjson.encode, ");
            let levels = nesting(c, opts, &[300, 1000, 1001, 5000]);
            deep_table(levels, s);
            s.push_str("))");
        }
        _ => {
            s.push_str("select(2, pcall(cmsgpack.pack, ");
            let levels = nesting(c, opts, &[1000, 5000]);
            deep_table(levels, s);
            s.push_str("))");
        }
    }
}

fn struct_format(c: &mut impl Choices, s: &mut String) {
    if c.chance(60) {
        s.push_str(&lua_string(c.pick(STRUCT_FORMATS).as_bytes()));
    } else {
        let alphabet = b"<>!=bBhHlLTiIfdcsxX0123456789 ?";
        let f: Vec<u8> = (0..c.below(7)).map(|_| *c.pick(alphabet)).collect();
        s.push_str(&lua_string(&f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_strings_round_trip_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let lit = lua_string(&all);
        let lua = mlua::Lua::new();
        let back: mlua::LuaString = lua.load(format!("return {lit}")).eval().unwrap();
        assert_eq!(back.as_bytes().to_vec(), all);
    }
}
