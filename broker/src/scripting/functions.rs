//! Libraries of Lua functions (Redis 7.0's FUNCTION): loading a library, whose top-level code
//! registers its functions, calling them (FCALL), and the payload FUNCTION DUMP/RESTORE use.
//!
//! A library's code runs once, at load, in a restricted environment (only `redis` with
//! `register_function`, `log` and the constants); the callbacks it registers are kept in a Lua
//! table by function name and run later like a script, with their keys and arguments as two
//! tables. The payload is Redis's: one `FUNCTION2` record (opcode 245 and the code as an RDB
//! string) per library, then the RDB version and a CRC64 of everything before it, so
//! redis-server's payloads (LZF-compressed strings included) load here and ours load there.

use super::{
    call, error_reply, lua_message, reply, sandbox, scalar_reply, CommandRunner, NoRunner, Scripting,
};
use super::{StopReason, RUNNER, SCRIPT_RESP};
use crate::commands::crc64;
use crate::reply::{msg, Protocol, Reply};
use ahash::AHashMap as HashMap;
use bytes::Bytes;
use mlua::{Lua, Table, Value};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Function flags, in the order FUNCTION LIST shows them; bit `i` is `FLAG_NAMES[i]`.
pub const FLAG_NAMES: [&str; 5] = [
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];
/// The flag that lets FCALL_RO run a function (and makes its writes errors).
pub const NO_WRITES: u8 = 1;
/// The flag that lets a function that may write run past `maxmemory`.
pub const ALLOW_OOM: u8 = 1 << 1;

/// A FUNCTION LOAD that has not returned after this long is stopped, as Redis stops it.
const LOAD_TIMEOUT_MS: u64 = 500;

/// The RDB opcode of one library in a FUNCTION DUMP payload.
const OPCODE_FUNCTION: u8 = 245;
/// The RDB format version of Redis 7.0, written after the records.
const RDB_VERSION: u16 = 10;

/// One registered function.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub description: Option<String>,
    /// Bits of [`FLAG_NAMES`].
    pub flags: u8,
}

impl Function {
    pub fn flag_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        FLAG_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.flags & (1 << i) != 0)
            .map(|(_, n)| *n)
    }
}

/// A loaded library: its code (shebang included) and the functions it registered, in order.
#[derive(Debug, Clone)]
pub struct Library {
    pub name: String,
    pub code: Bytes,
    pub functions: Vec<Function>,
}

/// Every loaded library, and which library owns each function name.
pub struct Libraries {
    libs: BTreeMap<String, Library>,
    owner: HashMap<String, String>,
    /// Function name → its Lua callback.
    callbacks: Table,
}

impl std::fmt::Debug for Libraries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libraries")
            .field("libs", &self.libs.len())
            .finish()
    }
}

impl Libraries {
    pub fn new(lua: &Lua) -> mlua::Result<Libraries> {
        Ok(Libraries {
            libs: BTreeMap::new(),
            owner: HashMap::new(),
            callbacks: lua.create_table()?,
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Library> {
        self.libs.values()
    }

    /// The function called `name` (case-sensitive, as in Redis).
    pub fn function(&self, name: &str) -> Option<&Function> {
        let lib = self.libs.get(self.owner.get(name)?)?;
        lib.functions.iter().find(|f| f.name == name)
    }

    /// `(libraries, functions)`.
    pub fn counts(&self) -> (usize, usize) {
        (self.libs.len(), self.owner.len())
    }

    /// Every library's code, in name order (what an AOF rewrite loads again).
    pub fn codes(&self) -> Vec<Bytes> {
        self.libs.values().map(|l| l.code.clone()).collect()
    }

    fn remove(&mut self, name: &str) -> Option<Library> {
        let lib = self.libs.remove(name)?;
        for f in &lib.functions {
            self.owner.remove(&f.name);
            if let Err(e) = self.callbacks.raw_set(f.name.as_str(), Value::Nil) {
                tracing::warn!(error = %e, "could not drop a function's callback");
            }
        }
        Some(lib)
    }
}

/// Reads the `#!<engine> name=<library>` first line: the library's name.
fn library_name(code: &[u8]) -> Result<String, Reply> {
    let Some(rest) = code.strip_prefix(b"#!") else {
        return Err(Reply::error(msg::FUNCTION_NO_METADATA));
    };
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let engine = parts.next().unwrap_or_default();
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(Reply::error(msg::function_engine_not_found(engine)));
    }
    let mut name = None;
    for part in parts {
        match part.strip_prefix("name=") {
            Some(_) if name.is_some() => return Err(Reply::error(msg::FUNCTION_NAME_TWICE)),
            Some(n) => name = Some(n.to_string()),
            None => return Err(Reply::error(msg::function_bad_metadata(part))),
        }
    }
    let name = name.ok_or_else(|| Reply::error(msg::FUNCTION_NO_LIBRARY_NAME))?;
    if !valid_name(&name) {
        return Err(Reply::error(msg::err(msg::FUNCTION_BAD_NAME)));
    }
    Ok(name)
}

/// Library and function names: letters, digits and underscores, at least one.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A Lua value that is a string or a number, as text (what `lua_isstring` accepts).
fn lua_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads `redis.register_function`'s arguments: `(name, callback)` or one table of named
/// arguments. The error texts are Redis 7.0's.
fn registration(args: &[Value]) -> Result<(Function, mlua::Function), &'static str> {
    let (name, callback, description, flags) = match args {
        [Value::Table(t)] => {
            let (mut name, mut callback, mut description, mut flags) = (None, None, None, 0u8);
            for pair in t.pairs::<Value, Value>() {
                let (key, value) = pair.map_err(|_| "unknown argument given to redis.register_function")?;
                match lua_text(&key).as_deref() {
                    Some("function_name") => {
                        name = Some(lua_text(&value).ok_or(
                            "function_name argument given to redis.register_function must be a string",
                        )?)
                    }
                    Some("description") => {
                        description = Some(lua_text(&value).ok_or(
                            "description argument given to redis.register_function must be a string",
                        )?)
                    }
                    Some("callback") => match value {
                        Value::Function(f) => callback = Some(f),
                        _ => return Err("callback argument given to redis.register_function must be a function"),
                    },
                    Some("flags") => {
                        let Value::Table(list) = value else {
                            return Err(
                                "flags argument to redis.register_function must be a table representing function flags",
                            );
                        };
                        for flag in list.sequence_values::<Value>() {
                            let flag = flag.ok().as_ref().and_then(lua_text).unwrap_or_default();
                            let bit = FLAG_NAMES
                                .iter()
                                .position(|n| *n == flag)
                                .ok_or("unknown flag given")?;
                            flags |= 1 << bit;
                        }
                    }
                    _ => return Err("unknown argument given to redis.register_function"),
                }
            }
            let name = name.ok_or("redis.register_function must get a function name argument")?;
            let callback = callback.ok_or("redis.register_function must get a callback argument")?;
            (name, callback, description, flags)
        }
        [_] => return Err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."),
        [name, callback] => {
            let name = lua_text(name).ok_or("first argument to redis.register_function must be a string")?;
            let Value::Function(callback) = callback else {
                return Err("second argument to redis.register_function must be a function");
            };
            (name, callback.clone(), None, 0)
        }
        _ => return Err("wrong number of arguments to redis.register_function"),
    };
    // Redis 7.0 words a bad function name as it words a bad library name.
    if !valid_name(&name) {
        return Err(msg::FUNCTION_BAD_NAME);
    }
    Ok((
        Function {
            name,
            description,
            flags,
        },
        callback,
    ))
}

/// The functions a library registered while it loaded, before they are committed.
#[derive(Default)]
struct Staged {
    functions: Vec<Function>,
    callbacks: Vec<mlua::Function>,
}

impl Scripting {
    /// FUNCTION LOAD: runs the library's code and, if it registered functions that collide
    /// with no other library's, keeps it (in place of the library of the same name with
    /// `replace`). Returns the library's name.
    pub fn function_load(&mut self, code: &Bytes, replace: bool) -> Result<String, Reply> {
        let name = library_name(code)?;
        if self.libraries.libs.contains_key(&name) && !replace {
            return Err(Reply::error(msg::function_library_exists(&name)));
        }
        let staged = self.run_library(code)?;
        if staged.functions.is_empty() {
            return Err(Reply::error(msg::FUNCTION_NONE_REGISTERED));
        }
        for f in &staged.functions {
            if self
                .libraries
                .owner
                .get(&f.name)
                .is_some_and(|owner| *owner != name)
            {
                return Err(Reply::error(msg::function_exists(&f.name)));
            }
        }
        self.libraries.remove(&name);
        for (f, callback) in staged.functions.iter().zip(staged.callbacks) {
            self.libraries
                .callbacks
                .raw_set(f.name.as_str(), callback)
                .map_err(|e| Reply::error(msg::err(lua_message(&e))))?;
            self.libraries.owner.insert(f.name.clone(), name.clone());
        }
        self.libraries.libs.insert(
            name.clone(),
            Library {
                name: name.clone(),
                code: code.clone(),
                functions: staged.functions,
            },
        );
        self.publish_counts();
        Ok(name)
    }

    /// Tells the monitor how many libraries and functions there are now.
    fn publish_counts(&self) {
        let (libraries, functions) = self.libraries.counts();
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.monitor.libraries_count.store(libraries as u64, relaxed);
        self.monitor.functions_count.store(functions as u64, relaxed);
    }

    /// Compiles a library and runs its top-level code with `redis.register_function`.
    fn run_library(&mut self, code: &Bytes) -> Result<Staged, Reply> {
        // The first line is the shebang, not Lua: it is blanked so line numbers stay true.
        let body_start = code.iter().position(|&b| b == b'\n').unwrap_or(code.len());
        let mut body = Vec::with_capacity(code.len() - body_start + 1);
        body.push(b'\n');
        body.extend_from_slice(code.get(body_start + 1..).unwrap_or_default());
        let lua_err = |e: mlua::Error| Reply::error(msg::err(lua_message(&e)));
        let holder = self.lua.create_table().map_err(lua_err)?;
        match sandbox::compile_named(&self.lua, &holder, 1, &body, c"@user_function") {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                return Err(Reply::error(msg::function_compile_error(
                    &String::from_utf8_lossy(&message),
                )))
            }
            Err(e) => return Err(lua_err(e)),
        }
        let chunk: mlua::Function = holder.raw_get(1).map_err(lua_err)?;
        let staged = Arc::new(Mutex::new(Staged::default()));
        let register = self
            .lua
            .create_function({
                let staged = staged.clone();
                move |_, args: mlua::Variadic<Value>| {
                    let (function, callback) = registration(&args).map_err(mlua::Error::runtime)?;
                    let mut staged = staged.lock();
                    if staged.functions.iter().any(|f| f.name == function.name) {
                        return Err(mlua::Error::runtime("Function already exists in the library"));
                    }
                    staged.functions.push(function);
                    staged.callbacks.push(callback);
                    Ok(())
                }
            })
            .map_err(lua_err)?;
        let monitor = self.monitor.clone();
        monitor.begin();
        monitor
            .load_deadline_ms
            .store(LOAD_TIMEOUT_MS, std::sync::atomic::Ordering::Relaxed);
        let (result, stopped) = sandbox::watch(&self.lua, &self.main, &monitor, || {
            self.load_library.call::<(bool, Value)>((chunk, register))
        });
        monitor
            .load_deadline_ms
            .store(0, std::sync::atomic::Ordering::Relaxed);
        monitor.started_ms.store(0, std::sync::atomic::Ordering::Relaxed);
        let failure = match (stopped, result) {
            (Some(s), _) => Some(msg::err(s.reason.message())),
            (None, Ok((true, _))) => None,
            (None, Ok((false, Value::Table(t)))) => Some(
                t.get::<Option<String>>("err")
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| msg::SCRIPT_UNKNOWN_ERROR.into()),
            ),
            (None, Ok((false, other))) => Some(msg::err(format!("{other:?}"))),
            (None, Err(e)) => Some(msg::err(lua_message(&e))),
        };
        if let Some(message) = failure {
            let message = message.split("\nstack traceback:").next().unwrap_or_default();
            return Err(Reply::error(msg::function_register_error(message)));
        }
        let mut staged = staged.lock();
        Ok(std::mem::take(&mut *staged))
    }

    /// FUNCTION DELETE.
    pub fn function_delete(&mut self, name: &str) -> Result<(), Reply> {
        match self.libraries.remove(name) {
            Some(_) => {
                self.publish_counts();
                Ok(())
            }
            None => Err(Reply::error(msg::FUNCTION_NO_SUCH_LIBRARY)),
        }
    }

    /// FUNCTION FLUSH: every library goes.
    pub fn function_flush(&mut self) {
        let names: Vec<String> = self.libraries.libs.keys().cloned().collect();
        for name in names {
            self.libraries.remove(&name);
        }
        self.publish_counts();
        self.lua.gc_collect().ok();
    }

    /// FUNCTION RESTORE: loads the libraries of a payload, all or none. `policy` is FLUSH
    /// (drop every library first), APPEND (a name already loaded is an error) or REPLACE.
    pub fn function_restore(&mut self, payload: &[u8], policy: RestorePolicy) -> Result<(), Reply> {
        let codes = parse_payload(payload)?;
        let before = self.libraries.codes();
        if policy == RestorePolicy::Flush {
            self.function_flush();
        }
        for code in &codes {
            if let Err(e) = self.function_load(code, policy == RestorePolicy::Replace) {
                // Put back exactly what was there (it loaded before, so it loads again).
                self.function_flush();
                for old in &before {
                    if let Err(e) = self.function_load(old, false) {
                        tracing::warn!(error = ?e, "could not restore a library after a failed FUNCTION RESTORE");
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// FUNCTION DUMP: every library as a payload FUNCTION RESTORE (ours or Redis's) accepts.
    pub fn function_dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for lib in self.libraries.libs.values() {
            out.push(OPCODE_FUNCTION);
            write_rdb_string(&mut out, &lib.code);
        }
        out.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = crc64(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Runs the registered function `name` with `keys`/`argv` (FCALL), sending its commands to
    /// `runner`; `proto` is the caller's protocol.
    pub fn function_call(
        &mut self,
        name: &str,
        keys: &[Bytes],
        argv: &[Bytes],
        proto: Protocol,
        runner: Box<dyn CommandRunner>,
    ) -> (Reply, Box<dyn CommandRunner>) {
        let callback = match self.libraries.callbacks.raw_get::<Value>(name) {
            Ok(Value::Function(f)) => f,
            _ => return (Reply::error(msg::FUNCTION_NOT_FOUND), runner),
        };
        SCRIPT_RESP.with(|r| r.set(2));
        RUNNER.with(|slot| *slot.borrow_mut() = Some(runner));
        reply::begin(proto);
        let (result, stopped) = sandbox::watch(&self.lua, &self.main, &self.monitor, || {
            call::with_script_args(keys, argv, || self.call_function.call::<(bool, Value)>(callback))
        });
        let reply = match (stopped, result) {
            (Some(s), _) if s.reason == StopReason::Kill => Reply::error(msg::script_error(
                &msg::err(msg::SCRIPT_KILLED),
                name,
                Some(("@user_function", s.line)),
            )),
            (Some(_), _) => Reply::error(msg::SCRIPT_MOVED_REPLY),
            (None, Ok((true, value))) => {
                reply::take().unwrap_or_else(|| scalar_reply(&value, SCRIPT_RESP.with(|r| r.get())))
            }
            (None, Ok((false, value))) => error_reply(&value, name),
            (None, Err(e)) => Reply::error(msg::script_error(&msg::err(lua_message(&e)), name, None)),
        };
        let runner = RUNNER.with(|slot| slot.borrow_mut().take());
        match runner {
            Some(r) => (reply, r),
            None => (Reply::error(msg::SCRIPT_RUNNER_LOST), Box::new(NoRunner)),
        }
    }
}

/// FUNCTION RESTORE's policy for libraries already loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestorePolicy {
    Flush,
    Append,
    Replace,
}

/// An RDB string: a length (6-bit, 14-bit, or 32-bit big-endian) then the bytes.
fn write_rdb_string(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if let Ok(len) = u32::try_from(len) {
        out.push(0x80);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// Reads an RDB length; `Err(())` past the end. The flag says it is a special encoding.
fn read_rdb_length(data: &[u8], pos: &mut usize) -> Result<(u64, bool), ()> {
    let first = *data.get(*pos).ok_or(())?;
    *pos += 1;
    match first >> 6 {
        0 => Ok((u64::from(first & 0x3f), false)),
        1 => {
            let second = *data.get(*pos).ok_or(())?;
            *pos += 1;
            Ok(((u64::from(first & 0x3f) << 8) | u64::from(second), false))
        }
        3 => Ok((u64::from(first & 0x3f), true)),
        _ => {
            let width = match first {
                0x80 => 4,
                0x81 => 8,
                _ => return Err(()),
            };
            let bytes = data.get(*pos..*pos + width).ok_or(())?;
            *pos += width;
            Ok((
                bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
                false,
            ))
        }
    }
}

/// Reads an RDB string: plain, an integer, or LZF-compressed (what redis-server writes for
/// longer library code).
fn read_rdb_string(data: &[u8], pos: &mut usize) -> Result<Vec<u8>, ()> {
    let (len, special) = read_rdb_length(data, pos)?;
    if !special {
        let len = usize::try_from(len).map_err(|_| ())?;
        let s = data.get(*pos..pos.checked_add(len).ok_or(())?).ok_or(())?;
        *pos += len;
        return Ok(s.to_vec());
    }
    let int = |width: usize, pos: &mut usize| -> Result<Vec<u8>, ()> {
        let b = data.get(*pos..*pos + width).ok_or(())?;
        *pos += width;
        let v = match width {
            1 => i64::from(b[0] as i8),
            2 => i64::from(i16::from_le_bytes([b[0], b[1]])),
            _ => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        };
        Ok(v.to_string().into_bytes())
    };
    match len {
        0 => int(1, pos),
        1 => int(2, pos),
        2 => int(4, pos),
        3 => {
            let (compressed, _) = read_rdb_length(data, pos)?;
            let (plain, _) = read_rdb_length(data, pos)?;
            let compressed = usize::try_from(compressed).map_err(|_| ())?;
            let input = data.get(*pos..pos.checked_add(compressed).ok_or(())?).ok_or(())?;
            *pos += compressed;
            lzf_decompress(input, usize::try_from(plain).map_err(|_| ())?)
        }
        _ => Err(()),
    }
}

/// LZF decompression (the format Redis compresses RDB strings with), to exactly `len` bytes.
fn lzf_decompress(input: &[u8], len: usize) -> Result<Vec<u8>, ()> {
    // A payload cannot claim more than LZF's best ratio allows (a back-reference of 264 bytes
    // costs 3): refuse absurd lengths before allocating.
    if len > input.len().saturating_mul(100) + 64 {
        return Err(());
    }
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            out.extend_from_slice(input.get(i..i + run).ok_or(())?);
            i += run;
        } else {
            let mut run = ctrl >> 5;
            if run == 7 {
                run += usize::from(*input.get(i).ok_or(())?);
                i += 1;
            }
            let low = usize::from(*input.get(i).ok_or(())?);
            i += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            let start = out.len().checked_sub(back).ok_or(())?;
            for k in 0..run + 2 {
                let b = out[start + k];
                out.push(b);
            }
        }
        if out.len() > len {
            return Err(());
        }
    }
    if out.len() == len {
        Ok(out)
    } else {
        Err(())
    }
}

/// The libraries' code in a FUNCTION DUMP payload, after checking its trailer.
fn parse_payload(payload: &[u8]) -> Result<Vec<Bytes>, Reply> {
    let bad_trailer = || Reply::error(msg::FUNCTION_PAYLOAD_INVALID);
    if payload.len() < 10 {
        return Err(bad_trailer());
    }
    let (body, trailer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([trailer[0], trailer[1]]);
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&trailer[2..]);
    if version > RDB_VERSION || crc64(&payload[..payload.len() - 8]) != u64::from_le_bytes(crc) {
        return Err(bad_trailer());
    }
    let mut codes = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        if body[pos] != OPCODE_FUNCTION {
            return Err(Reply::error(msg::FUNCTION_PAYLOAD_NOT_FUNCTION));
        }
        pos += 1;
        let code =
            read_rdb_string(body, &mut pos).map_err(|()| Reply::error(msg::FUNCTION_PAYLOAD_DAMAGED))?;
        codes.push(Bytes::from(code));
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs_are_read_as_redis_reads_them() {
        assert_eq!(library_name(b"#!lua name=mylib\nreturn"), Ok("mylib".to_string()));
        assert_eq!(library_name(b"#!LUA  name=a_1"), Ok("a_1".to_string()));
        assert!(library_name(b"return 1").is_err());
        assert!(library_name(b"#!lua\n").is_err());
        assert!(library_name(b"#!lua2 name=x\n").is_err());
        assert!(library_name(b"#!lua name=b-c\n").is_err());
        assert!(library_name(b"#!lua name=a name=b\n").is_err());
    }

    #[test]
    fn rdb_strings_round_trip_at_every_length_width() {
        for len in [0, 63, 64, 16383, 16384, 70_000] {
            let s = vec![b'x'; len];
            let mut out = Vec::new();
            write_rdb_string(&mut out, &s);
            let mut pos = 0;
            assert_eq!(read_rdb_string(&out, &mut pos), Ok(s));
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn lzf_back_references_expand() {
        // "abc" literal, then a back-reference of length 6 at distance 3: "abcabcabc".
        let input = [2, b'a', b'b', b'c', (4 << 5), 2];
        assert_eq!(lzf_decompress(&input, 9), Ok(b"abcabcabc".to_vec()));
        assert!(lzf_decompress(&input, 8).is_err());
        assert!(lzf_decompress(&[(1 << 5), 9], 3).is_err());
    }
}
