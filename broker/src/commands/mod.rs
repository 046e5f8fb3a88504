//! The command table and dispatch (auth, MULTI queueing, arity, statistics, serving the
//! clients a command unblocked), with one module per command family.
//!
//! Families: `connection` (PING, ECHO, AUTH, HELLO, SELECT, QUIT, RESET), `client`, `command`
//! (COMMAND and its DOCS), `info`, `config`, `server` (DBSIZE, FLUSHDB, FLUSHALL, TIME),
//! `admin` (SLOWLOG, LATENCY, ROLE, LASTSAVE, WAIT), `databases` (MOVE, SWAPDB),
//! `qstats`, `transactions` (MULTI, EXEC, DISCARD, WATCH), [`shutdown`], `keys`, `strings`,
//! `lists`, `hashes`, `sets` and `scripting` (the EVAL family and SCRIPT). `args` parses their arguments and
//! [`flags`] types the table's flags.

mod admin;
mod args;
mod bits;
mod client;
mod command;
mod config;
mod config_params;
mod connection;
mod databases;
mod dump;
pub mod flags;
mod functions;
mod generic;
mod hashes;
mod info;
mod keys;
mod lists;
mod logged;
mod lookups;
pub mod persistence;
mod pubsub;
mod qstats;
mod rdb;
pub use rdb::crc64;
mod scripting;
mod server;
mod sets;
pub mod shutdown;
mod sort;
mod streams;
mod strings;
mod substrings;
mod transactions;
mod values;
mod zsets;

pub use crate::state::resident_bytes;
pub use args::{end_arg, glob_match, int_arg, parse_f64, parse_i64, timeout_arg};
pub use config::parse_memory;
pub use flags::CommandFlags;
pub use functions::stats_reply as function_stats;
pub use scripting::is_script_command;
pub use transactions::{answer_busy, unwatch_all};

use crate::db::{Db, Value};
use crate::engine::{BlockOp, Engine};
use crate::reply::{msg, Reply};
use crate::state::{ClientState, Shared};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What executing a command produced.
#[derive(Debug)]
pub enum Outcome {
    Reply(Reply),
    /// Nothing available yet: block on `keys` until served or `timeout` (None = forever).
    Block {
        keys: Vec<Bytes>,
        op: BlockOp,
        timeout: Option<Duration>,
    },
    /// Reply, then close the connection (QUIT).
    Close(Reply),
    /// An EVAL-family command tried inline, on a connection's event loop, must run on the
    /// script thread instead: its script has no record of finishing fast, or it overran its
    /// budget before writing. Nothing changed and the call was not counted; the connection
    /// hands the command to the script thread, which runs it from the start.
    Migrate,
}

impl Outcome {
    /// The reply where a command can neither block nor move: inside EXEC, in a script, on the
    /// script thread. A blocking command answers as if it had timed out at once.
    pub fn into_reply(self) -> Reply {
        match self {
            Outcome::Reply(r) | Outcome::Close(r) => r,
            Outcome::Block { .. } => Reply::NullArray,
            // Only a command tried inline can move; where none is, say what happened.
            Outcome::Migrate => Reply::error(msg::SCRIPT_MOVED_REPLY),
        }
    }
}

impl From<Reply> for Outcome {
    fn from(r: Reply) -> Self {
        Outcome::Reply(r)
    }
}

/// Everything a command handler may touch.
pub struct Ctx<'a> {
    pub engine: &'a mut Engine,
    pub client: &'a mut ClientState,
    pub shared: &'a Shared,
    pub args: &'a [Bytes],
    pub now_ms: u64,
    /// Inside EXEC (or a script): blocking commands must not block.
    pub nested: bool,
}

impl Ctx<'_> {
    pub fn db(&mut self) -> &mut Db {
        &mut self.engine.keyspace[self.client.db]
    }

    /// Reports a keyspace event on `key` in the client's database (see [`Engine::notify`]).
    pub fn notify(&mut self, class: crate::engine::EventClass, event: &str, key: &[u8]) {
        let db = self.client.db;
        self.engine.notify(class, event, db, key);
    }

    /// Looks a key up for reading or writing, expiring it first if due.
    pub fn lookup(&mut self, key: &Bytes) -> Option<&mut Value> {
        let db = self.client.db;
        self.engine.expire_if_due(db, key, self.now_ms);
        self.engine.keyspace[db].map.get_mut(key)
    }
}

type Handler = fn(&mut Ctx) -> Outcome;

/// Pops from the first non-empty key of `keys` now, `Ok(None)` if all are empty.
type PopNow<W> = fn(&mut Ctx, &[Bytes], W, usize) -> Result<Option<Reply>, Outcome>;

/// LMPOP/ZMPOP and, with `blocking`, BLMPOP/BZMPOP (whose first argument is the timeout):
/// parse `numkeys key … WHERE [COUNT n]` (`which` reads WHERE), pop from the first non-empty
/// key now (`now`), else block with `op` — or, inside MULTI or a script, answer nil at once.
fn multi_pop<W: Copy>(
    ctx: &mut Ctx,
    blocking: bool,
    which: fn(&[u8]) -> Result<W, Reply>,
    now: PopNow<W>,
    op: fn(W, usize) -> BlockOp,
) -> Outcome {
    let timeout = if blocking {
        match timeout_arg(&ctx.args[1]) {
            Ok(t) => t,
            Err(e) => return e.into(),
        }
    } else {
        None
    };
    let args = ctx.args[1 + usize::from(blocking)..].to_vec();
    let (keys, side, count) = match args::mpop_args(&args, which) {
        Ok(p) => p,
        Err(e) => return e.into(),
    };
    match now(ctx, &keys, side, count) {
        Ok(Some(r)) => r.into(),
        Ok(None) if !blocking || ctx.nested => Reply::NullArray.into(),
        Ok(None) => Outcome::Block {
            keys,
            op: op(side, count),
            timeout,
        },
        Err(o) => o,
    }
}

/// Static description of a command, used for dispatch, arity checks and COMMAND INFO/DOCS.
pub struct CommandSpec {
    pub name: &'static str,
    /// Redis convention: `n` exactly n arguments (with the name), `-n` at least n.
    pub arity: i32,
    pub flags: CommandFlags,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub summary: &'static str,
    /// Argument syntax as in Redis docs (`key element [element ...]`), for DOCS and hints.
    pub syntax: &'static str,
    handler: Handler,
}

impl CommandSpec {
    pub fn is_write(&self) -> bool {
        self.flags.contains(CommandFlags::WRITE)
    }
}

macro_rules! cmd {
    ($name:literal, $arity:expr, [$($flag:ident),*], ($f:expr, $l:expr, $s:expr), $group:literal, $summary:literal, $syntax:literal, $handler:path) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: CommandFlags::empty()$(.union(CommandFlags::$flag))*,
            first_key: $f,
            last_key: $l,
            step: $s,
            group: $group,
            summary: $summary,
            syntax: $syntax,
            handler: $handler,
        }
    };
}

/// Every command the broker implements.
pub static COMMANDS: &[CommandSpec] = &[
    // connection
    cmd!("ping", -1, [FAST], (0, 0, 0), "connection", "Returns the server's liveliness response.", "[message]", connection::ping),
    cmd!("echo", 2, [FAST, LOADING, STALE], (0, 0, 0), "connection", "Returns the given string.", "message", connection::echo),
    cmd!("hello", -1, [NOSCRIPT, LOADING, STALE, FAST, NO_AUTH, ALLOW_BUSY], (0, 0, 0), "connection", "Handshakes with the Redis server.", "[protover [AUTH username password] [SETNAME clientname]]", connection::hello),
    cmd!("auth", -2, [NOSCRIPT, LOADING, STALE, FAST, NO_AUTH, ALLOW_BUSY], (0, 0, 0), "connection", "Authenticates the connection.", "[username] password", connection::auth),
    cmd!("select", 2, [LOADING, STALE, FAST], (0, 0, 0), "connection", "Changes the selected database.", "index", connection::select),
    cmd!("quit", -1, [ALLOW_BUSY, NOSCRIPT, LOADING, STALE, FAST, NO_AUTH, TX_IMMEDIATE], (0, 0, 0), "connection", "Closes the connection.", "", connection::quit),
    cmd!("reset", 1, [NOSCRIPT, LOADING, STALE, FAST, NO_AUTH, ALLOW_BUSY, TX_IMMEDIATE], (0, 0, 0), "connection", "Resets the connection.", "", connection::reset),
    cmd!("client", -2, [NOSCRIPT, LOADING, STALE, CONTAINER], (0, 0, 0), "connection", "A container for client connection commands.", "subcommand [arg ...]", client::client),
    // server
    cmd!("command", -1, [LOADING, STALE], (0, 0, 0), "server", "Returns detailed information about all commands.", "[subcommand [arg ...]]", command::command),
    cmd!("info", -1, [LOADING, STALE], (0, 0, 0), "server", "Returns information and statistics about the server.", "[section [section ...]]", info::info),
    cmd!("shutdown", -1, [ADMIN, NOSCRIPT, LOADING, STALE, NO_MULTI, ALLOW_BUSY], (0, 0, 0), "server", "Synchronously save the dataset to disk and then shut down the server", "[NOSAVE|SAVE] [NOW] [FORCE] [ABORT]", shutdown::shutdown),
    cmd!("config", -2, [ADMIN, NOSCRIPT, LOADING, STALE, CONTAINER], (0, 0, 0), "server", "A container for server configuration commands.", "subcommand [arg ...]", config::config),
    cmd!("dbsize", 1, [READONLY, FAST], (0, 0, 0), "server", "Returns the number of keys in the database.", "", server::dbsize),
    cmd!("flushdb", -1, [WRITE], (0, 0, 0), "server", "Removes all keys from the current database.", "[ASYNC|SYNC]", server::flushdb),
    cmd!("flushall", -1, [WRITE], (0, 0, 0), "server", "Removes all keys from all databases.", "[ASYNC|SYNC]", server::flushall),
    cmd!("bgrewriteaof", 1, [ADMIN, NOSCRIPT, NO_ASYNC_LOADING], (0, 0, 0), "server", "Asynchronously rewrites the append-only file to disk.", "", persistence::bgrewriteaof),
    cmd!("save", 1, [ADMIN, NOSCRIPT, NO_MULTI, NO_ASYNC_LOADING], (0, 0, 0), "server", "Synchronously saves the database(s) to disk.", "", persistence::save),
    cmd!("bgsave", -1, [ADMIN, NOSCRIPT, NO_ASYNC_LOADING], (0, 0, 0), "server", "Asynchronously saves the database(s) to disk.", "[SCHEDULE]", persistence::save),
    cmd!("time", 1, [LOADING, STALE, FAST], (0, 0, 0), "server", "Returns the server time.", "", server::time),
    cmd!("slowlog", -2, [ADMIN, LOADING, STALE, CONTAINER], (0, 0, 0), "server", "A container for slow log commands", "subcommand [arg ...]", admin::slowlog),
    cmd!("latency", -2, [ADMIN, NOSCRIPT, LOADING, STALE, CONTAINER], (0, 0, 0), "server", "A container for latency diagnostics commands", "subcommand [arg ...]", admin::latency),
    cmd!("role", 1, [NOSCRIPT, LOADING, STALE, FAST], (0, 0, 0), "server", "Return the role of the instance in the context of replication", "", admin::role),
    cmd!("lastsave", 1, [LOADING, STALE, FAST], (0, 0, 0), "server", "Get the UNIX time stamp of the last successful save to disk", "", admin::lastsave),
    cmd!("wait", 3, [NOSCRIPT], (0, 0, 0), "generic", "Wait for the synchronous replication of all the write commands sent in the context of the current connection", "numreplicas timeout", admin::wait),
    cmd!("qstats", -1, [READONLY, FAST], (1, -1, 1), "server", "Returns per-queue metrics (autoscale-node extension).", "[RESET] [key [key ...]]", qstats::qstats),
    // transactions (dispatch handles their special cases)
    cmd!("multi", 1, [NOSCRIPT, LOADING, STALE, FAST, ALLOW_BUSY, TX_IMMEDIATE], (0, 0, 0), "transactions", "Starts a transaction.", "", transactions::multi),
    cmd!("exec", 1, [NOSCRIPT, LOADING, STALE, SKIP_SLOWLOG, TX_IMMEDIATE, EXEC], (0, 0, 0), "transactions", "Executes all commands in a transaction.", "", transactions::exec_outside),
    cmd!("discard", 1, [NOSCRIPT, LOADING, STALE, FAST, ALLOW_BUSY, TX_IMMEDIATE], (0, 0, 0), "transactions", "Discards a transaction.", "", transactions::discard),
    cmd!("watch", -2, [NOSCRIPT, LOADING, STALE, FAST, ALLOW_BUSY, TX_IMMEDIATE], (1, -1, 1), "transactions", "Monitors changes to keys to determine the execution of a transaction.", "key [key ...]", transactions::watch),
    cmd!("unwatch", 1, [NOSCRIPT, LOADING, STALE, FAST, ALLOW_BUSY], (0, 0, 0), "transactions", "Forgets about watched keys of a transaction.", "", transactions::unwatch),
    // scripting
    cmd!("eval", -3, [NOSCRIPT, SKIP_MONITOR, NO_MANDATORY_KEYS, STALE, MOVABLE_KEYS], (0, 0, 0), "scripting", "Executes a server-side Lua script.", "script numkeys [key [key ...]] [arg [arg ...]]", scripting::eval),
    cmd!("evalsha", -3, [NOSCRIPT, SKIP_MONITOR, NO_MANDATORY_KEYS, STALE, MOVABLE_KEYS], (0, 0, 0), "scripting", "Executes a server-side Lua script by SHA1 digest.", "sha1 numkeys [key [key ...]] [arg [arg ...]]", scripting::evalsha),
    cmd!("eval_ro", -3, [NOSCRIPT, SKIP_MONITOR, NO_MANDATORY_KEYS, STALE, READONLY, MOVABLE_KEYS], (0, 0, 0), "scripting", "Executes a read-only server-side Lua script.", "script numkeys [key [key ...]] [arg [arg ...]]", scripting::eval_ro),
    cmd!("evalsha_ro", -3, [NOSCRIPT, SKIP_MONITOR, NO_MANDATORY_KEYS, STALE, READONLY, MOVABLE_KEYS], (0, 0, 0), "scripting", "Executes a read-only server-side Lua script by SHA1 digest.", "sha1 numkeys [key [key ...]] [arg [arg ...]]", scripting::evalsha_ro),
    cmd!("script", -2, [NOSCRIPT, CONTAINER], (0, 0, 0), "scripting", "A container for Lua scripts management commands.", "subcommand [arg ...]", scripting::script),
    cmd!("fcall", -3, [NOSCRIPT, SKIP_MONITOR, NO_MANDATORY_KEYS, STALE, MOVABLE_KEYS], (0, 0, 0), "scripting", "Invokes a function.", "function numkeys [key [key ...]] [arg [arg ...]]", functions::fcall),
    cmd!("fcall_ro", -3, [NOSCRIPT, SKIP_MONITOR, NO_MANDATORY_KEYS, STALE, READONLY, MOVABLE_KEYS], (0, 0, 0), "scripting", "Invokes a read-only function.", "function numkeys [key [key ...]] [arg [arg ...]]", functions::fcall_ro),
    cmd!("function", -2, [NOSCRIPT, CONTAINER], (0, 0, 0), "scripting", "A container for function commands.", "subcommand [arg ...]", functions::function),
    // pub/sub
    cmd!("subscribe", -2, [PUBSUB, NOSCRIPT, LOADING, STALE], (0, 0, 0), "pubsub", "Listens for messages published to channels.", "channel [channel ...]", pubsub::subscribe),
    cmd!("psubscribe", -2, [PUBSUB, NOSCRIPT, LOADING, STALE], (0, 0, 0), "pubsub", "Listens for messages published to channels that match one or more patterns.", "pattern [pattern ...]", pubsub::psubscribe),
    cmd!("ssubscribe", -2, [PUBSUB, NOSCRIPT, LOADING, STALE], (1, -1, 1), "pubsub", "Listens for messages published to shard channels.", "shardchannel [shardchannel ...]", pubsub::ssubscribe),
    cmd!("unsubscribe", -1, [PUBSUB, NOSCRIPT, LOADING, STALE], (0, 0, 0), "pubsub", "Stops listening to messages posted to channels.", "[channel [channel ...]]", pubsub::unsubscribe),
    cmd!("punsubscribe", -1, [PUBSUB, NOSCRIPT, LOADING, STALE], (0, 0, 0), "pubsub", "Stops listening to messages published to channels that match one or more patterns.", "[pattern [pattern ...]]", pubsub::punsubscribe),
    cmd!("sunsubscribe", -1, [PUBSUB, NOSCRIPT, LOADING, STALE], (1, -1, 1), "pubsub", "Stops listening to messages posted to shard channels.", "[shardchannel [shardchannel ...]]", pubsub::sunsubscribe),
    cmd!("publish", 3, [PUBSUB, LOADING, STALE, FAST], (0, 0, 0), "pubsub", "Posts a message to a channel.", "channel message", pubsub::publish),
    cmd!("spublish", 3, [PUBSUB, LOADING, STALE, FAST], (1, 1, 1), "pubsub", "Post a message to a shard channel", "shardchannel message", pubsub::spublish),
    cmd!("pubsub", -2, [], (0, 0, 0), "pubsub", "A container for Pub/Sub commands.", "subcommand [arg ...]", pubsub::pubsub),
    cmd!("monitor", 1, [ADMIN, NOSCRIPT, LOADING, STALE], (0, 0, 0), "server", "Listens for all requests received by the server in real-time.", "", pubsub::monitor),
    // keys
    cmd!("del", -2, [WRITE], (1, -1, 1), "generic", "Deletes one or more keys.", "key [key ...]", keys::del),
    cmd!("unlink", -2, [WRITE, FAST], (1, -1, 1), "generic", "Asynchronously deletes one or more keys.", "key [key ...]", keys::del),
    cmd!("exists", -2, [READONLY, FAST], (1, -1, 1), "generic", "Determines whether one or more keys exist.", "key [key ...]", keys::exists),
    cmd!("type", 2, [READONLY, FAST], (1, 1, 1), "generic", "Determines the type of value stored at a key.", "key", keys::type_),
    cmd!("keys", 2, [READONLY], (0, 0, 0), "generic", "Returns all key names that match a pattern.", "pattern", keys::keys),
    cmd!("scan", -2, [READONLY], (0, 0, 0), "generic", "Iterates over the key names in the database.", "cursor [MATCH pattern] [COUNT count] [TYPE type]", keys::scan),
    cmd!("move", 3, [WRITE, FAST], (1, 1, 1), "generic", "Move a key to another database", "key db", databases::move_),
    cmd!("swapdb", 3, [WRITE, FAST], (0, 0, 0), "server", "Swaps two Redis databases", "index1 index2", databases::swapdb),
    cmd!("rename", 3, [WRITE], (1, 2, 1), "generic", "Renames a key and overwrites the destination.", "key newkey", keys::rename),
    cmd!("renamenx", 3, [WRITE, FAST], (1, 2, 1), "generic", "Renames a key only when the target key name doesn't exist.", "key newkey", keys::renamenx),
    cmd!("expire", -3, [WRITE, FAST], (1, 1, 1), "generic", "Sets the expiration time of a key in seconds.", "key seconds [NX|XX|GT|LT]", keys::expire),
    cmd!("pexpire", -3, [WRITE, FAST], (1, 1, 1), "generic", "Sets the expiration time of a key in milliseconds.", "key milliseconds [NX|XX|GT|LT]", keys::pexpire),
    cmd!("expireat", -3, [WRITE, FAST], (1, 1, 1), "generic", "Sets the expiration time of a key to a Unix timestamp.", "key unix-time-seconds [NX|XX|GT|LT]", keys::expireat),
    cmd!("pexpireat", -3, [WRITE, FAST], (1, 1, 1), "generic", "Sets the expiration time of a key to a Unix milliseconds timestamp.", "key unix-time-milliseconds [NX|XX|GT|LT]", keys::pexpireat),
    cmd!("ttl", 2, [READONLY, FAST], (1, 1, 1), "generic", "Returns the expiration time in seconds of a key.", "key", keys::ttl),
    cmd!("pttl", 2, [READONLY, FAST], (1, 1, 1), "generic", "Returns the expiration time in milliseconds of a key.", "key", keys::pttl),
    cmd!("copy", -3, [WRITE, DENYOOM], (1, 2, 1), "generic", "Copy a key", "source destination [DB destination-db] [REPLACE]", generic::copy),
    cmd!("randomkey", 1, [READONLY], (0, 0, 0), "generic", "Return a random key from the keyspace", "", generic::randomkey),
    cmd!("expiretime", 2, [READONLY, FAST], (1, 1, 1), "generic", "Get the expiration Unix timestamp for a key", "key", generic::expiretime),
    cmd!("pexpiretime", 2, [READONLY, FAST], (1, 1, 1), "generic", "Get the expiration Unix timestamp for a key in milliseconds", "key", generic::pexpiretime),
    cmd!("touch", -2, [READONLY, FAST], (1, -1, 1), "generic", "Alters the last access time of a key(s). Returns the number of existing keys specified.", "key [key ...]", generic::touch),
    cmd!("object", -2, [], (0, 0, 0), "generic", "A container for object introspection commands", "subcommand [arg ...]", generic::object),
    cmd!("memory", -2, [], (0, 0, 0), "server", "A container for memory diagnostics commands", "subcommand [arg ...]", generic::memory),
    cmd!("sort", -2, [WRITE, DENYOOM, MOVABLE_KEYS], (1, 1, 1), "generic", "Sort the elements in a list, set or sorted set", "key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC|DESC] [ALPHA] [STORE destination]", sort::sort),
    cmd!("sort_ro", -2, [READONLY, MOVABLE_KEYS], (1, 1, 1), "generic", "Sort the elements in a list, set or sorted set. Read-only variant of SORT.", "key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC|DESC] [ALPHA]", sort::sort_ro),
    cmd!("dump", 2, [READONLY], (1, 1, 1), "generic", "Return a serialized version of the value stored at the specified key.", "key", dump::dump),
    cmd!("restore", -4, [WRITE, DENYOOM], (1, 1, 1), "generic", "Create a key using the provided serialized value, previously obtained using DUMP.", "key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]", dump::restore),
    cmd!("persist", 2, [WRITE, FAST], (1, 1, 1), "generic", "Removes the expiration time of a key.", "key", keys::persist),
    // strings
    cmd!("get", 2, [READONLY, FAST], (1, 1, 1), "string", "Returns the string value of a key.", "key", strings::get),
    cmd!("set", -3, [WRITE, DENYOOM], (1, 1, 1), "string", "Sets the string value of a key.", "key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]", strings::set),
    cmd!("setnx", 3, [WRITE, DENYOOM, FAST], (1, 1, 1), "string", "Set the string value of a key only when the key doesn't exist.", "key value", strings::setnx),
    cmd!("setex", 4, [WRITE, DENYOOM], (1, 1, 1), "string", "Sets the string value and expiration time of a key.", "key seconds value", strings::setex),
    cmd!("psetex", 4, [WRITE, DENYOOM], (1, 1, 1), "string", "Sets the string value and expiration time in milliseconds of a key.", "key milliseconds value", strings::psetex),
    cmd!("getset", 3, [WRITE, DENYOOM, FAST], (1, 1, 1), "string", "Returns the previous string value of a key after setting it to a new value.", "key value", strings::getset),
    cmd!("getdel", 2, [WRITE, FAST], (1, 1, 1), "string", "Returns the string value of a key after deleting the key.", "key", strings::getdel),
    cmd!("getex", -2, [WRITE, FAST], (1, 1, 1), "string", "Returns the string value of a key after setting its expiration time.", "key [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|PERSIST]", strings::getex),
    cmd!("mget", -2, [READONLY, FAST], (1, -1, 1), "string", "Atomically returns the string values of one or more keys.", "key [key ...]", strings::mget),
    cmd!("mset", -3, [WRITE, DENYOOM], (1, -1, 2), "string", "Atomically creates or modifies the string values of one or more keys.", "key value [key value ...]", strings::mset),
    cmd!("msetnx", -3, [WRITE, DENYOOM], (1, -1, 2), "string", "Atomically modifies the string values of one or more keys only when all keys don't exist.", "key value [key value ...]", strings::msetnx),
    cmd!("incr", 2, [WRITE, DENYOOM, FAST], (1, 1, 1), "string", "Increments the integer value of a key by one.", "key", strings::incr),
    cmd!("decr", 2, [WRITE, DENYOOM, FAST], (1, 1, 1), "string", "Decrements the integer value of a key by one.", "key", strings::decr),
    cmd!("incrby", 3, [WRITE, DENYOOM, FAST], (1, 1, 1), "string", "Increments the integer value of a key by a number.", "key increment", strings::incrby),
    cmd!("decrby", 3, [WRITE, DENYOOM, FAST], (1, 1, 1), "string", "Decrements a number from the integer value of a key.", "key decrement", strings::decrby),
    cmd!("incrbyfloat", 3, [WRITE, DENYOOM, FAST], (1, 1, 1), "string", "Increment the floating point value of a key by a number.", "key increment", strings::incrbyfloat),
    cmd!("append", 3, [WRITE, DENYOOM, FAST], (1, 1, 1), "string", "Appends a string to the value of a key.", "key value", strings::append),
    cmd!("setrange", 4, [WRITE, DENYOOM], (1, 1, 1), "string", "Overwrite part of a string at key starting at the specified offset", "key offset value", substrings::setrange),
    cmd!("getrange", 4, [READONLY], (1, 1, 1), "string", "Get a substring of the string stored at a key", "key start end", substrings::getrange),
    cmd!("substr", 4, [READONLY], (1, 1, 1), "string", "Get a substring of the string stored at a key", "key start end", substrings::getrange),
    cmd!("lcs", -3, [READONLY], (1, 2, 1), "string", "Find longest common substring", "key1 key2 [LEN] [IDX] [MINMATCHLEN min-match-len] [WITHMATCHLEN]", substrings::lcs),
    cmd!("setbit", 4, [WRITE, DENYOOM], (1, 1, 1), "bitmap", "Sets or clears the bit at offset in the string value stored at key", "key offset value", bits::setbit),
    cmd!("getbit", 3, [READONLY, FAST], (1, 1, 1), "bitmap", "Returns the bit value at offset in the string value stored at key", "key offset", bits::getbit),
    cmd!("bitcount", -2, [READONLY], (1, 1, 1), "bitmap", "Count set bits in a string", "key [start end [BYTE|BIT]]", bits::bitcount),
    cmd!("bitpos", -3, [READONLY], (1, 1, 1), "bitmap", "Find first bit set or clear in a string", "key bit [start [end [BYTE|BIT]]]", bits::bitpos),
    cmd!("bitop", -4, [WRITE, DENYOOM], (2, -1, 1), "bitmap", "Perform bitwise operations between strings", "operation destkey key [key ...]", bits::bitop),
    cmd!("strlen", 2, [READONLY, FAST], (1, 1, 1), "string", "Returns the length of a string value.", "key", strings::strlen),
    // lists
    cmd!("lpush", -3, [WRITE, DENYOOM, FAST], (1, 1, 1), "list", "Prepends one or more elements to a list.", "key element [element ...]", lists::lpush),
    cmd!("rpush", -3, [WRITE, DENYOOM, FAST], (1, 1, 1), "list", "Appends one or more elements to a list.", "key element [element ...]", lists::rpush),
    cmd!("lpushx", -3, [WRITE, DENYOOM, FAST], (1, 1, 1), "list", "Prepends one or more elements to a list only when the list exists.", "key element [element ...]", lists::lpushx),
    cmd!("rpushx", -3, [WRITE, DENYOOM, FAST], (1, 1, 1), "list", "Appends an element to a list only when the list exists.", "key element [element ...]", lists::rpushx),
    cmd!("lpop", -2, [WRITE, FAST], (1, 1, 1), "list", "Returns the first elements in a list after removing it.", "key [count]", lists::lpop),
    cmd!("rpop", -2, [WRITE, FAST], (1, 1, 1), "list", "Returns and removes the last elements of a list.", "key [count]", lists::rpop),
    cmd!("llen", 2, [READONLY, FAST], (1, 1, 1), "list", "Returns the length of a list.", "key", lists::llen),
    cmd!("lrange", 4, [READONLY], (1, 1, 1), "list", "Returns a range of elements from a list.", "key start stop", lists::lrange),
    cmd!("lindex", 3, [READONLY], (1, 1, 1), "list", "Returns an element from a list by its index.", "key index", lists::lindex),
    cmd!("lset", 4, [WRITE, DENYOOM], (1, 1, 1), "list", "Sets the value of an element in a list by its index.", "key index element", lists::lset),
    cmd!("linsert", 5, [WRITE, DENYOOM], (1, 1, 1), "list", "Inserts an element before or after another element in a list.", "key BEFORE|AFTER pivot element", lists::linsert),
    cmd!("lrem", 4, [WRITE], (1, 1, 1), "list", "Removes elements from a list.", "key count element", lists::lrem),
    cmd!("ltrim", 4, [WRITE], (1, 1, 1), "list", "Removes elements from both ends a list.", "key start stop", lists::ltrim),
    cmd!("lpos", -3, [READONLY], (1, 1, 1), "list", "Returns the index of matching elements in a list.", "key element [RANK rank] [COUNT num-matches] [MAXLEN len]", lists::lpos),
    cmd!("lmove", 5, [WRITE, DENYOOM], (1, 2, 1), "list", "Returns an element after popping it from one list and pushing it to another.", "source destination LEFT|RIGHT LEFT|RIGHT", lists::lmove),
    cmd!("rpoplpush", 3, [WRITE, DENYOOM], (1, 2, 1), "list", "Returns the last element of a list after removing and pushing it to another list.", "source destination", lists::rpoplpush),
    cmd!("lmpop", -4, [WRITE, MOVABLE_KEYS], (0, 0, 0), "list", "Returns multiple elements from a list after removing them.", "numkeys key [key ...] LEFT|RIGHT [COUNT count]", lists::lmpop),
    cmd!("blpop", -3, [WRITE, NOSCRIPT, BLOCKING], (1, -2, 1), "list", "Removes and returns the first element in a list. Blocks until an element is available otherwise.", "key [key ...] timeout", lists::blpop),
    cmd!("brpop", -3, [WRITE, NOSCRIPT, BLOCKING], (1, -2, 1), "list", "Removes and returns the last element in a list. Blocks until an element is available otherwise.", "key [key ...] timeout", lists::brpop),
    cmd!("blmove", 6, [WRITE, DENYOOM, NOSCRIPT, BLOCKING], (1, 2, 1), "list", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise.", "source destination LEFT|RIGHT LEFT|RIGHT timeout", lists::blmove),
    cmd!("brpoplpush", 4, [WRITE, DENYOOM, NOSCRIPT, BLOCKING], (1, 2, 1), "list", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise.", "source destination timeout", lists::brpoplpush),
    cmd!("blmpop", -5, [WRITE, BLOCKING, MOVABLE_KEYS], (0, 0, 0), "list", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise.", "timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]", lists::blmpop),
    // hashes
    cmd!("hset", -4, [WRITE, DENYOOM, FAST], (1, 1, 1), "hash", "Set the string value of a hash field", "key field value [field value ...]", hashes::hset),
    cmd!("hsetnx", 4, [WRITE, DENYOOM, FAST], (1, 1, 1), "hash", "Set the value of a hash field, only if the field does not exist", "key field value", hashes::hsetnx),
    cmd!("hget", 3, [READONLY, FAST], (1, 1, 1), "hash", "Get the value of a hash field", "key field", hashes::hget),
    cmd!("hmset", -4, [WRITE, DENYOOM, FAST], (1, 1, 1), "hash", "Set multiple hash fields to multiple values", "key field value [field value ...]", hashes::hmset),
    cmd!("hmget", -3, [READONLY, FAST], (1, 1, 1), "hash", "Get the values of all the given hash fields", "key field [field ...]", hashes::hmget),
    cmd!("hdel", -3, [WRITE, FAST], (1, 1, 1), "hash", "Delete one or more hash fields", "key field [field ...]", hashes::hdel),
    cmd!("hlen", 2, [READONLY, FAST], (1, 1, 1), "hash", "Get the number of fields in a hash", "key", hashes::hlen),
    cmd!("hstrlen", 3, [READONLY, FAST], (1, 1, 1), "hash", "Get the length of the value of a hash field", "key field", hashes::hstrlen),
    cmd!("hexists", 3, [READONLY, FAST], (1, 1, 1), "hash", "Determine if a hash field exists", "key field", hashes::hexists),
    cmd!("hkeys", 2, [READONLY], (1, 1, 1), "hash", "Get all the fields in a hash", "key", hashes::hkeys),
    cmd!("hvals", 2, [READONLY], (1, 1, 1), "hash", "Get all the values in a hash", "key", hashes::hvals),
    cmd!("hgetall", 2, [READONLY], (1, 1, 1), "hash", "Get all the fields and values in a hash", "key", hashes::hgetall),
    cmd!("hincrby", 4, [WRITE, DENYOOM, FAST], (1, 1, 1), "hash", "Increment the integer value of a hash field by the given number", "key field increment", hashes::hincrby),
    cmd!("hincrbyfloat", 4, [WRITE, DENYOOM, FAST], (1, 1, 1), "hash", "Increment the float value of a hash field by the given amount", "key field increment", hashes::hincrbyfloat),
    cmd!("hrandfield", -2, [READONLY], (1, 1, 1), "hash", "Get one or multiple random fields from a hash", "key [count [WITHVALUES]]", hashes::hrandfield),
    cmd!("hscan", -3, [READONLY], (1, 1, 1), "hash", "Incrementally iterate hash fields and associated values", "key cursor [MATCH pattern] [COUNT count]", hashes::hscan),
    // sets
    cmd!("sadd", -3, [WRITE, DENYOOM, FAST], (1, 1, 1), "set", "Add one or more members to a set", "key member [member ...]", sets::sadd),
    cmd!("srem", -3, [WRITE, FAST], (1, 1, 1), "set", "Remove one or more members from a set", "key member [member ...]", sets::srem),
    cmd!("scard", 2, [READONLY, FAST], (1, 1, 1), "set", "Get the number of members in a set", "key", sets::scard),
    cmd!("sismember", 3, [READONLY, FAST], (1, 1, 1), "set", "Determine if a given value is a member of a set", "key member", sets::sismember),
    cmd!("smismember", -3, [READONLY, FAST], (1, 1, 1), "set", "Returns the membership associated with the given elements for a set", "key member [member ...]", sets::smismember),
    cmd!("smembers", 2, [READONLY], (1, 1, 1), "set", "Get all the members in a set", "key", sets::smembers),
    cmd!("spop", -2, [WRITE, FAST], (1, 1, 1), "set", "Remove and return one or multiple random members from a set", "key [count]", sets::spop),
    cmd!("srandmember", -2, [READONLY], (1, 1, 1), "set", "Get one or multiple random members from a set", "key [count]", sets::srandmember),
    cmd!("smove", 4, [WRITE, FAST], (1, 2, 1), "set", "Move a member from one set to another", "source destination member", sets::smove),
    cmd!("sinter", -2, [READONLY], (1, -1, 1), "set", "Intersect multiple sets", "key [key ...]", sets::sinter),
    cmd!("sinterstore", -3, [WRITE, DENYOOM], (1, -1, 1), "set", "Intersect multiple sets and store the resulting set in a key", "destination key [key ...]", sets::sinterstore),
    cmd!("sintercard", -3, [READONLY, MOVABLE_KEYS], (0, 0, 0), "set", "Intersect multiple sets and return the cardinality of the result", "numkeys key [key ...] [LIMIT limit]", sets::sintercard),
    cmd!("sunion", -2, [READONLY], (1, -1, 1), "set", "Add multiple sets", "key [key ...]", sets::sunion),
    cmd!("sunionstore", -3, [WRITE, DENYOOM], (1, -1, 1), "set", "Add multiple sets and store the resulting set in a key", "destination key [key ...]", sets::sunionstore),
    cmd!("sdiff", -2, [READONLY], (1, -1, 1), "set", "Subtract multiple sets", "key [key ...]", sets::sdiff),
    cmd!("sdiffstore", -3, [WRITE, DENYOOM], (1, -1, 1), "set", "Subtract multiple sets and store the resulting set in a key", "destination key [key ...]", sets::sdiffstore),
    cmd!("sscan", -3, [READONLY], (1, 1, 1), "set", "Incrementally iterate Set elements", "key cursor [MATCH pattern] [COUNT count]", sets::sscan),
    // streams
    cmd!("xadd", -5, [WRITE, DENYOOM, FAST], (1, 1, 1), "stream", "Appends a new message to a stream. Creates the key if it doesn't exist.", "key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [field value ...]", streams::xadd),
    cmd!("xlen", 2, [READONLY, FAST], (1, 1, 1), "stream", "Return the number of messages in a stream.", "key", streams::xlen),
    cmd!("xrange", -4, [READONLY], (1, 1, 1), "stream", "Returns the messages from a stream within a range of IDs.", "key start end [COUNT count]", streams::xrange),
    cmd!("xrevrange", -4, [READONLY], (1, 1, 1), "stream", "Returns the messages from a stream within a range of IDs in reverse order.", "key end start [COUNT count]", streams::xrevrange),
    cmd!("xdel", -3, [WRITE, FAST], (1, 1, 1), "stream", "Returns the number of messages after removing them from a stream.", "key id [id ...]", streams::xdel),
    cmd!("xtrim", -4, [WRITE], (1, 1, 1), "stream", "Deletes messages from the beginning of a stream.", "key MAXLEN|MINID [=|~] threshold [LIMIT count]", streams::xtrim),
    cmd!("xread", -4, [READONLY, BLOCKING, MOVABLE_KEYS], (0, 0, 0), "stream", "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.", "[COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]", streams::xread),
    cmd!("xreadgroup", -7, [WRITE, BLOCKING, MOVABLE_KEYS], (0, 0, 0), "stream", "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.", "GROUP group consumer [COUNT count] [BLOCK milliseconds] [NOACK] STREAMS key [key ...] id [id ...]", streams::xreadgroup),
    cmd!("xgroup", -2, [], (0, 0, 0), "stream", "A container for consumer groups commands.", "subcommand [arg ...]", streams::xgroup),
    cmd!("xack", -4, [WRITE, FAST], (1, 1, 1), "stream", "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.", "key group id [id ...]", streams::xack),
    cmd!("xpending", -3, [READONLY], (1, 1, 1), "stream", "Returns the information and entries from a stream consumer group's pending entries list.", "key group [[IDLE min-idle-time] start end count [consumer]]", streams::xpending),
    cmd!("xclaim", -6, [WRITE, FAST], (1, 1, 1), "stream", "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.", "key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-milliseconds] [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]", streams::xclaim),
    cmd!("xautoclaim", -6, [WRITE, FAST], (1, 1, 1), "stream", "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.", "key group consumer min-idle-time start [COUNT count] [JUSTID]", streams::xautoclaim),
    cmd!("xinfo", -2, [], (0, 0, 0), "stream", "A container for stream introspection commands.", "subcommand [arg ...]", streams::xinfo),
    cmd!("xsetid", -3, [WRITE, DENYOOM, FAST], (1, 1, 1), "stream", "An internal command for replicating stream values.", "key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]", streams::xsetid),
    // sorted sets
    cmd!("zadd", -4, [WRITE, DENYOOM, FAST], (1, 1, 1), "sorted-set", "Add one or more members to a sorted set, or update its score if it already exists", "key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]", zsets::zadd),
    cmd!("zincrby", 4, [WRITE, DENYOOM, FAST], (1, 1, 1), "sorted-set", "Increment the score of a member in a sorted set", "key increment member", zsets::zincrby),
    cmd!("zrem", -3, [WRITE, FAST], (1, 1, 1), "sorted-set", "Remove one or more members from a sorted set", "key member [member ...]", zsets::zrem),
    cmd!("zcard", 2, [READONLY, FAST], (1, 1, 1), "sorted-set", "Get the number of members in a sorted set", "key", zsets::zcard),
    cmd!("zscore", 3, [READONLY, FAST], (1, 1, 1), "sorted-set", "Get the score associated with the given member in a sorted set", "key member", zsets::zscore),
    cmd!("zmscore", -3, [READONLY, FAST], (1, 1, 1), "sorted-set", "Get the score associated with the given members in a sorted set", "key member [member ...]", zsets::zmscore),
    cmd!("zrank", 3, [READONLY, FAST], (1, 1, 1), "sorted-set", "Determine the index of a member in a sorted set", "key member", zsets::zrank),
    cmd!("zrevrank", 3, [READONLY, FAST], (1, 1, 1), "sorted-set", "Determine the index of a member in a sorted set, with scores ordered from high to low", "key member", zsets::zrevrank),
    cmd!("zcount", 4, [READONLY, FAST], (1, 1, 1), "sorted-set", "Count the members in a sorted set with scores within the given values", "key min max", zsets::zcount),
    cmd!("zlexcount", 4, [READONLY, FAST], (1, 1, 1), "sorted-set", "Count the number of members in a sorted set between a given lexicographical range", "key min max", zsets::zlexcount),
    cmd!("zrange", -4, [READONLY], (1, 1, 1), "sorted-set", "Return a range of members in a sorted set", "key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]", zsets::zrange),
    cmd!("zrangestore", -5, [WRITE, DENYOOM], (1, 2, 1), "sorted-set", "Store a range of members from sorted set into another key", "dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]", zsets::zrangestore),
    cmd!("zrangebyscore", -4, [READONLY], (1, 1, 1), "sorted-set", "Return a range of members in a sorted set, by score", "key min max [WITHSCORES] [LIMIT offset count]", zsets::zrangebyscore),
    cmd!("zrevrangebyscore", -4, [READONLY], (1, 1, 1), "sorted-set", "Return a range of members in a sorted set, by score, with scores ordered from high to low", "key max min [WITHSCORES] [LIMIT offset count]", zsets::zrevrangebyscore),
    cmd!("zrangebylex", -4, [READONLY], (1, 1, 1), "sorted-set", "Return a range of members in a sorted set, by lexicographical range", "key min max [LIMIT offset count]", zsets::zrangebylex),
    cmd!("zrevrangebylex", -4, [READONLY], (1, 1, 1), "sorted-set", "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings.", "key max min [LIMIT offset count]", zsets::zrevrangebylex),
    cmd!("zrevrange", -4, [READONLY], (1, 1, 1), "sorted-set", "Return a range of members in a sorted set, by index, with scores ordered from high to low", "key start stop [WITHSCORES]", zsets::zrevrange),
    cmd!("zremrangebyrank", 4, [WRITE], (1, 1, 1), "sorted-set", "Remove all members in a sorted set within the given indexes", "key start stop", zsets::zremrangebyrank),
    cmd!("zremrangebyscore", 4, [WRITE], (1, 1, 1), "sorted-set", "Remove all members in a sorted set within the given scores", "key min max", zsets::zremrangebyscore),
    cmd!("zremrangebylex", 4, [WRITE], (1, 1, 1), "sorted-set", "Remove all members in a sorted set between the given lexicographical range", "key min max", zsets::zremrangebylex),
    cmd!("zpopmin", -2, [WRITE, FAST], (1, 1, 1), "sorted-set", "Remove and return members with the lowest scores in a sorted set", "key [count]", zsets::zpopmin),
    cmd!("zpopmax", -2, [WRITE, FAST], (1, 1, 1), "sorted-set", "Remove and return members with the highest scores in a sorted set", "key [count]", zsets::zpopmax),
    cmd!("zmpop", -4, [WRITE, MOVABLE_KEYS], (0, 0, 0), "sorted-set", "Remove and return members with scores in a sorted set", "numkeys key [key ...] MIN|MAX [COUNT count]", zsets::zmpop),
    cmd!("bzpopmin", -3, [WRITE, NOSCRIPT, BLOCKING, FAST], (1, -2, 1), "sorted-set", "Remove and return the member with the lowest score from one or more sorted sets, or block until one is available", "key [key ...] timeout", zsets::bzpopmin),
    cmd!("bzpopmax", -3, [WRITE, NOSCRIPT, BLOCKING, FAST], (1, -2, 1), "sorted-set", "Remove and return the member with the highest score from one or more sorted sets, or block until one is available", "key [key ...] timeout", zsets::bzpopmax),
    cmd!("bzmpop", -5, [WRITE, BLOCKING, MOVABLE_KEYS], (0, 0, 0), "sorted-set", "Remove and return members with scores in a sorted set or block until one is available", "timeout numkeys key [key ...] MIN|MAX [COUNT count]", zsets::bzmpop),
    cmd!("zrandmember", -2, [READONLY], (1, 1, 1), "sorted-set", "Get one or multiple random elements from a sorted set", "key [count [WITHSCORES]]", zsets::zrandmember),
    cmd!("zscan", -3, [READONLY], (1, 1, 1), "sorted-set", "Incrementally iterate sorted sets elements and associated scores", "key cursor [MATCH pattern] [COUNT count]", zsets::zscan),
    cmd!("zunion", -3, [READONLY, MOVABLE_KEYS], (0, 0, 0), "sorted-set", "Add multiple sorted sets", "numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]", zsets::zunion),
    cmd!("zinter", -3, [READONLY, MOVABLE_KEYS], (0, 0, 0), "sorted-set", "Intersect multiple sorted sets", "numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]", zsets::zinter),
    cmd!("zdiff", -3, [READONLY, MOVABLE_KEYS], (0, 0, 0), "sorted-set", "Subtract multiple sorted sets", "numkeys key [key ...] [WITHSCORES]", zsets::zdiff),
    cmd!("zunionstore", -4, [WRITE, DENYOOM, MOVABLE_KEYS], (1, 1, 1), "sorted-set", "Add multiple sorted sets and store the resulting sorted set in a new key", "destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM|MIN|MAX]", zsets::zunionstore),
    cmd!("zinterstore", -4, [WRITE, DENYOOM, MOVABLE_KEYS], (1, 1, 1), "sorted-set", "Intersect multiple sorted sets and store the resulting sorted set in a new key", "destination numkeys key [key ...] [WEIGHTS weight [weight ...]] [AGGREGATE SUM|MIN|MAX]", zsets::zinterstore),
    cmd!("zdiffstore", -4, [WRITE, DENYOOM, MOVABLE_KEYS], (1, 1, 1), "sorted-set", "Subtract multiple sorted sets and store the resulting sorted set in a new key", "destination numkeys key [key ...]", zsets::zdiffstore),
    cmd!("zintercard", -3, [READONLY, MOVABLE_KEYS], (0, 0, 0), "sorted-set", "Intersect multiple sorted sets and return the cardinality of the result", "numkeys key [key ...] [LIMIT limit]", zsets::zintercard),
];

fn table() -> &'static HashMap<&'static [u8], usize, ahash::RandomState> {
    static TABLE: OnceLock<HashMap<&'static [u8], usize, ahash::RandomState>> = OnceLock::new();
    TABLE.get_or_init(|| {
        COMMANDS
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_bytes(), i))
            .collect()
    })
}

/// Finds a command's index in [`COMMANDS`] by name, case-insensitively.
pub fn lookup_index(name: &[u8]) -> Option<usize> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    table().get(&*lower).copied()
}

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    lookup_index(name).map(|i| &COMMANDS[i])
}

fn arity_ok(spec: &CommandSpec, argc: usize) -> bool {
    let argc = argc as i32;
    if spec.arity >= 0 {
        argc == spec.arity
    } else {
        argc >= -spec.arity
    }
}

/// Runs one command for a client: auth, MULTI queueing, arity, the handler, statistics, and
/// serving of clients that the command unblocked.
pub fn dispatch(shared: &Shared, engine: &mut Engine, client: &mut ClientState, args: &[Bytes]) -> Outcome {
    let found = lookup_index(&args[0]);
    // CLIENT LIST shows the command being run (`cmd=client|list` for itself), a queued one
    // included, as Redis records it on arrival; a script's commands do not pass here.
    let info = &client.info;
    info.last_cmd
        .store(found.unwrap_or(usize::MAX), std::sync::atomic::Ordering::Relaxed);
    if let Some(spec) = found.map(|i| &COMMANDS[i]) {
        if spec.syntax.starts_with("subcommand") {
            *info.last_sub.lock() = args
                .get(1)
                .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase());
        }
    }
    let Some(index) = found else {
        let err = msg::unknown_command(&args[0], &args[1..]);
        if client.multi.is_some() {
            client.multi_error = true;
        }
        shared.stats.record_error(&err);
        return Reply::error(err).into();
    };
    let spec = &COMMANDS[index];
    if !client.authenticated && !spec.flags.contains(CommandFlags::NO_AUTH) {
        shared.stats.record_error(msg::NOAUTH);
        return Reply::error(msg::NOAUTH).into();
    }
    if !arity_ok(spec, args.len()) {
        if client.multi.is_some() {
            client.multi_error = true;
        }
        let err = msg::wrong_args(spec.name);
        engine.stats.of(index).rejected_calls += 1;
        shared.stats.record_error(&err);
        return Reply::error(err).into();
    }
    if client.multi.is_some() && spec.flags.contains(CommandFlags::NO_MULTI) {
        client.multi_error = true;
        engine.stats.of(index).rejected_calls += 1;
        shared.stats.record_error(msg::NO_MULTI);
        return Reply::error(msg::NO_MULTI).into();
    }
    if client.proto == crate::reply::Protocol::Resp2
        && client.info.pubsub.subscribed()
        && !pubsub::allowed_while_subscribed(spec.name)
    {
        let err = msg::only_subscribe_commands(&full_name(spec, args));
        engine.stats.of(index).rejected_calls += 1;
        shared.stats.record_error(&err);
        return Reply::error(err).into();
    }
    if client.multi.is_some() && !spec.flags.contains(CommandFlags::TX_IMMEDIATE) {
        // Past maxmemory, queueing (of anything) is refused and the transaction aborts, as in
        // Redis: a transaction would otherwise run half of its commands.
        if shared.memory.limited() && shared.memory.over_limit(shared.unix_us_at(Instant::now())) {
            client.multi_error = true;
            engine.stats.of(index).rejected_calls += 1;
            shared.stats.record_error(msg::OOM);
            return Reply::error(msg::OOM).into();
        }
        if let Some(q) = client.multi.as_mut() {
            q.push(args.to_vec());
            client
                .info
                .multi_queued
                .store(q.len(), std::sync::atomic::Ordering::Relaxed);
        }
        return Reply::status("QUEUED").into();
    }
    if spec.flags.contains(CommandFlags::EXEC) {
        let reply = transactions::exec(shared, engine, client, index);
        // Shown after the commands it ran, as Redis shows it.
        if engine.pubsub.monitoring() {
            feed_monitors(engine, client, args);
        }
        return reply.into();
    }
    let out = call(shared, engine, client, index, args, false);
    engine.serve_ready();
    out
}

/// Whether the command named `name` is a container of subcommands (CLIENT, CONFIG…).
pub(crate) fn is_container(name: &str) -> bool {
    lookup(name.as_bytes()).is_some_and(|spec| spec.syntax.starts_with("subcommand"))
}

/// A command's name as Redis 7 reports it: `client|list` for a container's subcommand.
fn full_name(spec: &CommandSpec, args: &[Bytes]) -> String {
    match args.get(1) {
        Some(sub) if spec.syntax.starts_with("subcommand") => {
            format!(
                "{}|{}",
                spec.name,
                String::from_utf8_lossy(sub).to_ascii_lowercase()
            )
        }
        _ => spec.name.to_string(),
    }
}

/// Whether MONITOR leaves a command out: administrative ones (CONFIG, CLIENT KILL…) are
/// never shown, as Redis hides them.
fn hidden_from_monitor(spec: &CommandSpec, args: &[Bytes]) -> bool {
    if spec.flags.contains(CommandFlags::ADMIN) {
        return true;
    }
    spec.name == "client"
        && args.get(1).is_some_and(|sub| {
            [
                &b"kill"[..],
                b"list",
                b"no-evict",
                b"pause",
                b"unpause",
                b"unblock",
            ]
            .iter()
            .any(|a| sub.eq_ignore_ascii_case(a))
        })
}

/// Sends a command to the MONITOR clients, if any.
fn feed_monitors(engine: &mut Engine, client: &ClientState, args: &[Bytes]) {
    let origin = if client.raw_replies {
        pubsub::Origin::Client(&client.info.addr)
    } else {
        pubsub::Origin::Script
    };
    let line = pubsub::monitor_line(engine.now_us, client.db, origin, args);
    engine.pubsub.feed_monitors(line);
}

/// Calls a handler and records its statistics.
fn call(
    shared: &Shared,
    engine: &mut Engine,
    client: &mut ClientState,
    index: usize,
    args: &[Bytes],
    nested: bool,
) -> Outcome {
    let start = Instant::now();
    engine.now_us = shared.unix_us_at(start);
    // While the log is replayed nothing expires: its absolute expiry times are compared with
    // the start of time (deletions of keys that expired are in the log where they happened).
    let now_ms = if engine.loading { 0 } else { engine.now_us / 1000 };
    let spec = &COMMANDS[index];
    if let Some(refusal) = refusal(shared, engine, spec) {
        engine.stats.of(index).rejected_calls += 1;
        shared.stats.record_error(&refusal);
        return Reply::error(refusal).into();
    }
    let (dirty, db) = (engine.dirty, client.db);
    let monitored = engine.pubsub.monitoring() && !engine.loading && !hidden_from_monitor(spec, args);
    // Scripts are shown before the commands they run, as Redis shows them.
    let shown_first = spec.flags.contains(CommandFlags::SKIP_MONITOR);
    // A script tried inline may move to the script thread and run again: its lines wait.
    let trial = shown_first
        && shared
            .script_monitor
            .inline
            .load(std::sync::atomic::Ordering::Relaxed);
    if trial && engine.pubsub.monitoring() {
        engine.pubsub.hold_monitor_lines();
    }
    if monitored && shown_first {
        feed_monitors(engine, client, args);
    }
    if !engine.loading {
        lookups::count(engine, client.db, index, args, now_ms);
    }
    // What a script's commands count while it is tried inline is undone if it moves: it
    // runs again from the start on the script thread.
    let counted = (engine.stats.keyspace_hits, engine.stats.keyspace_misses);
    let mut ctx = Ctx {
        engine,
        client,
        shared,
        args,
        now_ms,
        nested,
    };
    let out = (COMMANDS[index].handler)(&mut ctx);
    if !engine.loading {
        let refused = matches!(out, Outcome::Reply(Reply::Error(_)));
        lookups::count_after(engine, client.db, index, args, refused, now_ms);
    }
    if trial {
        if let Outcome::Migrate = out {
            engine.pubsub.discard_held();
        } else {
            engine.pubsub.release_held();
        }
    }
    if let Outcome::Migrate = out {
        // Not a call: the script runs again on the script thread and is counted there.
        (engine.stats.keyspace_hits, engine.stats.keyspace_misses) = counted;
        return out;
    }
    if monitored && !shown_first {
        feed_monitors(engine, client, args);
    }
    if engine.dirty != dirty && spec.is_write() && engine.feed.is_some() {
        if let Some(offset) = logged::log(engine, db, spec.name, args) {
            client.aof_wait = offset;
        }
    }
    let usec = start.elapsed().as_micros() as u64;
    // A blocked command is reported by Redis once served, not when it starts waiting: its
    // connection does that (`conn.rs`), with this duration.
    if let Outcome::Block { .. } = out {
        client.blocked_call_us = usec;
    } else if engine.slowlog.wants(usec) && !spec.flags.contains(CommandFlags::SKIP_SLOWLOG) {
        admin::log_slow(engine, client, spec, args, usec);
    }
    let event = if spec.flags.contains(CommandFlags::FAST) {
        "fast-command"
    } else {
        "command"
    };
    engine
        .latency
        .observe(event, engine.now_us / 1_000_000, usec / 1000);
    engine.stats.total += 1;
    let st = engine.stats.of(index);
    st.calls += 1;
    st.usec += usec;
    st.record_latency(usec);
    if let Outcome::Reply(Reply::Error(e)) = &out {
        st.failed_calls += 1;
        shared.stats.record_error(e);
    }
    out
}

/// Why a command may not run now: a write while the append-only file cannot be written
/// (`-MISCONF`, as Redis refuses them), or a command that grows memory past `maxmemory`.
fn refusal(shared: &Shared, engine: &Engine, spec: &CommandSpec) -> Option<String> {
    if engine.loading {
        return None;
    }
    if spec.is_write() {
        if let Some(feed) = engine.feed.as_ref() {
            let status = &feed.log().status;
            if !status.last_write_ok.load(std::sync::atomic::Ordering::Relaxed) {
                let error = status.last_error.lock().clone().unwrap_or_default();
                return Some(msg::misconf_aof(&error));
            }
        }
    }
    if spec.flags.contains(CommandFlags::DENYOOM) && shared.memory.over_limit(engine.now_us) {
        return Some(msg::OOM.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_resolves() {
        for c in COMMANDS {
            assert!(lookup(c.name.to_uppercase().as_bytes()).is_some(), "{}", c.name);
        }
    }
}
