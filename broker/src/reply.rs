//! Replies, their RESP2/RESP3 encoding, and every error string the broker sends.

use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;

/// Protocol version a connection speaks (`HELLO 2|3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// A reply to one command, independent of the protocol version.
///
/// Encoding to bytes happens at the connection, so a reply can also be handed to another
/// client (a blocked waiter) or converted for a script.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`
    Ok,
    /// A simple string (`+PONG`, `+QUEUED`).
    Status(Cow<'static, str>),
    /// An error; the text starts with its code (`ERR ...`, `WRONGTYPE ...`).
    Error(Cow<'static, str>),
    Int(i64),
    Bulk(Bytes),
    /// The null bulk string (`$-1` / `_`).
    Null,
    /// The null array (`*-1` / `_`).
    NullArray,
    Array(Vec<Reply>),
    /// A map (`%` in RESP3, a flat array in RESP2).
    Map(Vec<(Reply, Reply)>),
    /// A set (`~` in RESP3, an array in RESP2).
    Set(Vec<Reply>),
    /// A double (`,` in RESP3, a bulk string in RESP2).
    Double(f64),
    /// A boolean (`#t` in RESP3, `:1`/`:0` in RESP2).
    Bool(bool),
    /// Verbatim text (`=` with format `txt` in RESP3, a bulk string in RESP2).
    Verbatim(Bytes),
    /// Bytes already encoded for the client that receives them: valid in both protocols (an
    /// array of bulk strings, only produced for clients with `raw_replies`; scripts need the
    /// structured form), or the table a script returned, encoded for its caller's protocol.
    Raw(Bytes),
}

impl Reply {
    pub fn error(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(text.into())
    }

    pub fn status(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Status(text.into())
    }

    pub fn bulk(data: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(data.as_ref()))
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Encodes the reply for a client speaking `proto`.
    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        match self {
            Reply::Ok => out.put_slice(b"+OK\r\n"),
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Int(n) => int_line(out, b':', *n),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Null => match proto {
                Protocol::Resp2 => out.put_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Reply::NullArray => match proto {
                Protocol::Resp2 => out.put_slice(b"*-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Reply::Array(items) => {
                int_line(out, b'*', items.len() as i64);
                for item in items {
                    item.encode(proto, out);
                }
            }
            Reply::Set(items) => {
                let tag = if proto == Protocol::Resp3 { b'~' } else { b'*' };
                int_line(out, tag, items.len() as i64);
                for item in items {
                    item.encode(proto, out);
                }
            }
            Reply::Map(pairs) => {
                match proto {
                    Protocol::Resp2 => int_line(out, b'*', 2 * pairs.len() as i64),
                    Protocol::Resp3 => int_line(out, b'%', pairs.len() as i64),
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Double(d) => {
                let text = format_double(*d);
                match proto {
                    Protocol::Resp2 => bulk(out, text.as_bytes()),
                    Protocol::Resp3 => line(out, b',', text.as_bytes()),
                }
            }
            Reply::Bool(b) => match proto {
                Protocol::Resp2 => int_line(out, b':', i64::from(*b)),
                Protocol::Resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            },
            Reply::Raw(bytes) => out.put_slice(bytes),
            Reply::Verbatim(text) => match proto {
                Protocol::Resp2 => bulk(out, text),
                Protocol::Resp3 => {
                    int_line(out, b'=', text.len() as i64 + 4);
                    out.put_slice(b"txt:");
                    out.put_slice(text);
                    out.put_slice(b"\r\n");
                }
            },
        }
    }
}

fn line(out: &mut BytesMut, tag: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(tag);
    // A status or error line must not contain CR/LF; Redis replaces them with spaces.
    if memchr::memchr2(b'\r', b'\n', text).is_some() {
        out.extend(
            text.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

fn int_line(out: &mut BytesMut, tag: u8, n: i64) {
    let mut buf = itoa::Buffer::new();
    let s = buf.format(n);
    out.reserve(s.len() + 3);
    out.put_u8(tag);
    out.put_slice(s.as_bytes());
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, data: &[u8]) {
    int_line(out, b'$', data.len() as i64);
    out.reserve(data.len() + 2);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// Encodes an array of bulk strings (identical in RESP2 and RESP3).
pub fn encode_bulk_array<'a>(items: impl Iterator<Item = &'a [u8]> + Clone, len: usize) -> Bytes {
    // Exact size up front: one allocation, no growth.
    let size = 24 + items.clone().map(|i| i.len() + 26).sum::<usize>();
    let mut out = BytesMut::with_capacity(size);
    int_line(&mut out, b'*', len as i64);
    for item in items {
        bulk(&mut out, item);
    }
    out.freeze()
}

/// Formats a double as Redis 7.0's `addReplyDouble` does: C's `%.17g` (17 significant
/// digits, so `0.1` is `0.10000000000000001`), `inf`, `-inf`, `nan`, and `-0` for negative zero.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Integers below 2^53 (most scores) print as their digits under `%.17g`; the exact
    // formatting below costs more than half of a ZRANGE … WITHSCORES reply.
    if d.fract() == 0.0 && d.abs() < 9_007_199_254_740_992.0 {
        return itoa::Buffer::new().format(d as i64).to_owned();
    }
    // `{:.16e}` is the correctly rounded 17-digit mantissa and its exponent, as printf computes.
    let sci = format!("{d:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        let m = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.unsigned_abs())
    } else {
        let fixed = format!("{d:.prec$}", prec = (16 - exp) as usize);
        trim_fraction(&fixed).to_string()
    }
}

/// `%g`'s removal of trailing zeros (and of a bare decimal point).
fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Every error and fixed reply text, worded exactly as Redis 7 words it.
pub mod msg {
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const NOT_INT: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const SYNTAX: &str = "ERR syntax error";
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    pub const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const INCR_FLOAT_NAN: &str = "ERR increment would produce NaN or Infinity";
    pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
    pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
    pub const TIMEOUT_OUT_OF_RANGE: &str = "ERR timeout is out of range";
    pub const DB_INDEX: &str = "ERR DB index is out of range";
    pub const BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";
    pub const BIT_VALUE: &str = "ERR bit is not an integer or out of range";
    pub const BITPOS_BIT: &str = "ERR The bit argument must be 1 or 0.";
    pub const BITOP_NOT: &str = "ERR BITOP NOT must be called with a single source key.";
    pub const OFFSET_OUT_OF_RANGE: &str = "ERR offset is out of range";
    pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    pub const LCS_NOT_STRINGS: &str = "ERR The specified keys must contain string values";
    pub const LCS_IDX_AND_LEN: &str = "ERR If you want both the length and indexes, please just use IDX.";
    pub const LCS_TOO_BIG: &str =
        "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len";
    pub const LCS_NO_MEMORY: &str = "ERR Insufficient memory, failed allocating transient memory for LCS";
    pub const DUMP_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
    pub const BAD_DATA_FORMAT: &str = "ERR Bad data format";
    pub const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
    pub const RESTORE_TTL: &str = "ERR Invalid TTL value, must be >= 0";
    pub const RESTORE_IDLETIME: &str = "ERR Invalid IDLETIME value, must be >= 0";
    pub const RESTORE_FREQ: &str = "ERR Invalid FREQ value, must be >= 0 and <= 255";
    pub const SORT_SCORE: &str = "ERR One or more scores can't be converted into double";
    pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
    pub const LFU_NOT_SELECTED: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
    pub const NOAUTH: &str = "NOAUTH Authentication required.";
    /// Sent (then the connection closes) to a non-loopback client while protected mode is on
    /// and no password is set; worded as Redis 7.0 words it, typo included.
    pub const DENIED: &str = "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.";
    pub const MAX_CLIENTS: &str = "ERR max number of clients reached";
    pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
    pub const AUTH_NOT_CONFIGURED: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
    pub const MULTI_NESTED: &str = "ERR MULTI calls can not be nested";
    pub const EXEC_WITHOUT_MULTI: &str = "ERR EXEC without MULTI";
    pub const DISCARD_WITHOUT_MULTI: &str = "ERR DISCARD without MULTI";
    pub const WATCH_IN_MULTI: &str = "ERR WATCH inside MULTI is not allowed";
    pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
    /// EXEC refused while a script is busy: the transaction is discarded with the reason.
    /// EXEC of a transaction that a busy script or function made fail (`busy` is its -BUSY text).
    pub fn execabort_because(busy: &str) -> String {
        format!("EXECABORT Transaction discarded because of: {busy}")
    }
    pub const COUNT_POSITIVE: &str = "ERR value is out of range, must be positive";
    pub const NUMKEYS_POSITIVE: &str = "ERR numkeys should be greater than 0";
    pub const COUNT_ZERO: &str = "ERR count should be greater than 0";
    pub const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
    pub const MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";
    pub const COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
    pub const INVALID_CURSOR: &str = "ERR invalid cursor";
    pub const NO_SUCH_CLIENT: &str = "ERR No such client";
    pub const UNBLOCK_REASON: &str = "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR";
    /// What a client blocked in BLPOP & co. gets from `CLIENT UNBLOCK id ERROR`.
    pub const UNBLOCKED: &str = "UNBLOCKED client unblocked via CLIENT UNBLOCK";
    pub const CLIENT_NAME_SPACES: &str =
        "ERR Client names cannot contain spaces, newlines or special characters.";
    pub const BUSY: &str =
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
    /// -BUSY while a function (FCALL) runs.
    pub const BUSY_FUNCTION: &str =
        "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
    pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
    pub const HELLO_PROTO: &str = "NOPROTO unsupported protocol version";
    pub const NO_MULTI: &str = "ERR Command not allowed inside a transaction";
    pub const NO_SHUTDOWN_IN_PROGRESS: &str = "ERR No shutdown in progress.";
    pub const SHUTDOWN_FAILED: &str = "ERR Errors trying to SHUTDOWN. Check logs.";
    /// Our own: Redis has no limit (a table that refers to itself twice never finishes).
    pub const SCRIPT_REPLY_TOO_LARGE: &str = "ERR reply of the script is larger than 512 MB";
    pub const RANK_OUT_OF_RANGE: &str =
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
    pub const DECR_OVERFLOW: &str = "ERR decrement would overflow";
    // Hashes and sets.
    pub const HASH_NOT_INT: &str = "ERR hash value is not an integer";
    pub const HASH_NOT_FLOAT: &str = "ERR hash value is not a float";
    pub const NAN_OR_INFINITY: &str = "ERR value is NaN or Infinity";
    pub const OUT_OF_RANGE: &str = "ERR value is out of range";
    pub const NUMKEYS_OVER_ARGS: &str = "ERR Number of keys can't be greater than number of args";
    pub const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
    pub const EXPIRE_NX_AND_XX_GT_LT: &str =
        "ERR NX and XX, GT or LT options at the same time are not compatible";
    pub const EXPIRE_GT_AND_LT: &str = "ERR GT and LT options at the same time are not compatible";

    // Connection, CLIENT, COMMAND and CONFIG.
    pub const HELLO_PROTO_NOT_INT: &str = "ERR Protocol version is not an integer or out of range";
    pub const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
    pub const CONFIG_EVENT_CLASS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";
    pub const MONITOR_DENY_BLOCKING: &str = "ERR MONITOR isn't allowed for DENY BLOCKING client";
    pub const INVALID_CLIENT_ID: &str = "ERR Invalid client ID";
    pub const CLIENT_ID_POSITIVE: &str = "ERR client-id should be greater than 0";
    pub const INVALID_COMMAND: &str = "ERR Invalid command specified";
    pub const NO_KEY_ARGUMENTS: &str = "ERR The command has no key arguments";
    pub const AOF_REWRITE_IN_PROGRESS: &str = "ERR Background append only file rewriting already in progress";
    /// Ours: Redis would write a file even with the log off.
    pub const AOF_DISABLED: &str =
        "ERR the append-only file is off (appendonly no): there is nothing to rewrite";
    /// Ours: this server persists only through the append-only file.
    pub const NO_RDB: &str =
        "ERR this server keeps no RDB snapshot; its persistence is the append-only file (CONFIG SET appendonly yes)";
    pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
    pub const NO_CONFIG_FILE: &str = "ERR The server is running without a config file";
    /// Reasons for [`config_set_failed`].
    pub const CONFIG_NOT_INTEGER: &str = "argument couldn't be parsed into an integer";
    pub const CONFIG_MAXCLIENTS_RANGE: &str = "argument must be between 1 and 4294967295 inclusive";
    pub const CONFIG_NOT_YES_NO: &str = "argument must be 'yes' or 'no'";
    pub const CONFIG_IMMUTABLE: &str = "can't set immutable config";
    pub const CONFIG_NOT_MEMORY: &str = "argument must be a memory value";
    pub const CONFIG_APPENDFSYNC_VALUES: &str =
        "argument(s) must be one of the following: everysec, always, no";
    pub const CONFIG_MAXMEMORY_POLICY_VALUES: &str = "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction";
    /// Ours: evicting would drop queued elements.
    pub const CONFIG_ONLY_NOEVICTION: &str =
        "only noeviction is supported: a broker of queues must not evict elements";
    /// Ours: there is no RDB file to save to.
    pub const CONFIG_NO_SAVE_POINTS: &str =
        "RDB save points are not supported (persistence is the append-only file): only '' is accepted";
    /// Ours: a corrupt tail of the append-only file is always cut off with a warning.
    pub const CONFIG_LOAD_TRUNCATED_ONLY_YES: &str = "only 'yes' is supported";
    pub const CONFIG_NOT_MEMORY_OR_PERCENT: &str = "argument must be a memory or percent value";
    pub const CONFIG_PERCENT_RANGE: &str = "percentage argument must be less or equal to 100";
    pub const CONFIG_PROTECTED: &str = "can't set protected config";
    pub const CONFIG_DUPLICATE: &str = "duplicate parameter";
    pub const CONFIG_INVALID_SAVE: &str = "Invalid save parameters";
    pub const CONFIG_BUFFER_LIMIT_ARGS: &str = "Wrong number of arguments in buffer limit configuration.";
    pub const CONFIG_BUFFER_LIMIT_CLASS: &str =
        "Invalid client class specified in buffer limit configuration.";
    pub const CONFIG_BUFFER_LIMIT_VALUES: &str =
        "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
    pub const CONFIG_WRONG_ARG_COUNT: &str = "wrong number of arguments";
    pub const CONFIG_OOM_SCORE_VALUES: &str =
        "Invalid oom-score-adj-values, elements must be between -2000 and 2000.";
    pub const CONFIG_PROC_TITLE_INVALID: &str = "template format is invalid or contains unknown variables";
    pub const CONFIG_PERCENTILES_INVALID: &str = "Invalid latency-tracking-info-percentiles parameters";
    pub const CONFIG_PERCENTILES_RANGE: &str =
        "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]";

    // Scripting.
    pub const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
    pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
    pub const NUMKEYS_NEGATIVE: &str = "ERR Number of keys can't be negative";
    pub const NUMKEYS_TOO_MANY: &str = "ERR Number of keys can't be greater than number of args";
    pub const SCRIPT_FLUSH_OPTION: &str = "ERR SCRIPT FLUSH only support SYNC|ASYNC option";
    pub const SCRIPT_UNKNOWN_COMMAND: &str = "ERR Unknown Redis command called from script";
    pub const SCRIPT_WRONG_ARGS: &str = "ERR Wrong number of args calling Redis command from script";
    pub const SCRIPT_NOT_ALLOWED: &str = "ERR This Redis command is not allowed from script";
    pub const SCRIPT_WRITE_IN_READONLY: &str = "ERR Write commands are not allowed from read-only scripts.";
    pub const CALL_ARGS_NOT_STRINGS: &str = "ERR Lua redis lib command arguments must be strings or integers";
    pub const CALL_WITHOUT_ARGS: &str = "ERR Please specify at least one argument for this redis lib call";
    pub const LUA_STACK_LIMIT: &str = "ERR reached lua stack limit";
    /// The Lua error that stops a script for SCRIPT KILL (the reply adds `ERR`, the script's
    /// SHA and line: [`script_killed`]).
    pub const SCRIPT_KILLED: &str = "Script killed by user with SCRIPT KILL...";
    /// Our own, with the next five: the Lua error that stops an inline script overrunning its
    /// budget, and the reply its later `redis.call`s get (it runs again on the script thread).
    pub const SCRIPT_MOVED: &str = "script moved to the script thread";
    pub const SCRIPT_MOVED_REPLY: &str = "ERR script moved to the script thread";
    pub const SCRIPT_UNKNOWN_ERROR: &str = "ERR unknown error";
    pub const NO_SCRIPT_RUNNING: &str = "ERR no script is running";
    pub const CALL_OUTSIDE_SCRIPT: &str = "ERR redis.call used outside of a running script";
    pub const CALL_PANICKED: &str = "ERR internal error while running a command from a script";
    pub const SCRIPT_RUNNER_LOST: &str = "ERR script runner lost";
    pub const SHUTTING_DOWN: &str = "ERR server is shutting down";

    // streams
    pub const STREAM_INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
    pub const STREAM_INVALID_START: &str = "ERR invalid start ID for the interval";
    pub const STREAM_INVALID_END: &str = "ERR invalid end ID for the interval";
    pub const STREAM_ID_ZERO: &str = "ERR The ID specified in XADD must be greater than 0-0";
    pub const STREAM_ID_TOO_SMALL: &str =
        "ERR The ID specified in XADD is equal or smaller than the target stream top item";
    pub const STREAM_EXHAUSTED: &str =
        "ERR The stream has exhausted the last possible ID, unable to add more items";
    pub const STREAM_MAXLEN_NEGATIVE: &str = "ERR The MAXLEN argument must be >= 0.";
    pub const STREAM_LIMIT_NEGATIVE: &str = "ERR The LIMIT argument must be >= 0.";
    pub const STREAM_MAXLEN_AND_MINID: &str =
        "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
    pub const STREAM_LIMIT_NO_APPROX: &str =
        "ERR syntax error, LIMIT cannot be used without the special ~ option";
    pub const STREAM_LIMIT_NO_STRATEGY: &str =
        "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy";
    pub const TIMEOUT_NOT_INT: &str = "ERR timeout is not an integer or out of range";
    pub const INT32_RANGE: &str = "ERR value is out of range, value must between -2147483648 and 2147483647";
    pub const SWAPDB_FIRST_INDEX: &str = "ERR invalid first DB index";
    pub const SWAPDB_SECOND_INDEX: &str = "ERR invalid second DB index";
    pub const SLOWLOG_COUNT: &str = "ERR count should be greater than or equal to -1";
    pub const LATENCY_DOCTOR_DISABLED: &str = "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n";
    pub const LATENCY_DOCTOR_NO_SPIKES: &str = "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n";
    /// Ours: Redis's written analysis of recorded spikes is not reproduced.
    pub const LATENCY_DOCTOR_UNSUPPORTED: &str =
        "ERR LATENCY DOCTOR cannot analyse recorded spikes here; read them with LATENCY LATEST and LATENCY HISTORY";
    /// Ours: Redis's ASCII drawing of recorded samples is not reproduced.
    pub const LATENCY_GRAPH_UNSUPPORTED: &str =
        "ERR LATENCY GRAPH cannot draw recorded samples here; read them with LATENCY HISTORY";
    pub const XREAD_GROUP_OPTION: &str =
        "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.";
    pub const XREAD_NOACK_OPTION: &str =
        "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.";
    pub const XREAD_UNBALANCED: &str =
        "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.";
    pub const XREADGROUP_MISSING_GROUP: &str = "ERR Missing GROUP option for XREADGROUP";
    pub const XREADGROUP_DOLLAR: &str = "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.";
    pub const XREAD_GT_ID: &str = "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.";
    /// To a client blocked in XREADGROUP whose stream was deleted or replaced.
    pub const XREADGROUP_STREAM_GONE: &str = "UNBLOCKED the stream key no longer exists";
    pub const XREADGROUP_GROUP_GONE: &str =
        "NOGROUP the consumer group this client was blocked on no longer exists";
    pub const XGROUP_NO_KEY: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";
    pub const BUSYGROUP: &str = "BUSYGROUP Consumer Group name already exists";
    pub const ENTRIESREAD_RANGE: &str = "ERR value for ENTRIESREAD must be positive or -1";
    pub const XCLAIM_MIN_IDLE: &str = "ERR Invalid min-idle-time argument for XCLAIM";
    pub const XCLAIM_IDLE: &str = "ERR Invalid IDLE option argument for XCLAIM";
    pub const XCLAIM_TIME: &str = "ERR Invalid TIME option argument for XCLAIM";
    pub const XCLAIM_RETRYCOUNT: &str = "ERR Invalid RETRYCOUNT option argument for XCLAIM";
    pub const XAUTOCLAIM_MIN_IDLE: &str = "ERR Invalid min-idle-time argument for XAUTOCLAIM";
    pub const XAUTOCLAIM_COUNT: &str = "ERR COUNT must be > 0";
    pub const XSETID_TOO_SMALL: &str =
        "ERR The ID specified in XSETID is smaller than the target stream top item";
    pub const XSETID_ENTRIES_ADDED_SMALL: &str =
        "ERR The entries_added specified in XSETID is smaller than the target stream length";
    pub const XSETID_BELOW_MAX_DELETED: &str =
        "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id";
    pub const XSETID_ENTRIES_ADDED_NEGATIVE: &str = "ERR entries_added must be positive";

    /// XREADGROUP on a missing key or group.
    pub fn xreadgroup_nogroup(key: &[u8], group: &[u8]) -> String {
        format!(
            "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(group)
        )
    }

    /// XPENDING, XCLAIM, XAUTOCLAIM on a missing key or group.
    pub fn stream_nogroup(key: &[u8], group: &[u8]) -> String {
        format!(
            "NOGROUP No such key '{}' or consumer group '{}'",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(group)
        )
    }

    /// XGROUP and XINFO CONSUMERS on a missing group.
    pub fn xgroup_nogroup(group: &[u8], key: &[u8]) -> String {
        format!(
            "NOGROUP No such consumer group '{}' for key name '{}'",
            String::from_utf8_lossy(group),
            String::from_utf8_lossy(key)
        )
    }

    pub fn xclaim_unrecognized(opt: &[u8]) -> String {
        format!(
            "ERR Unrecognized XCLAIM option '{}'",
            String::from_utf8_lossy(opt)
        )
    }

    /// `ERR No samples available for event '<event>'` (LATENCY GRAPH).
    pub fn latency_no_samples(event: &[u8]) -> String {
        format!(
            "ERR No samples available for event '{}'",
            String::from_utf8_lossy(event)
        )
    }

    /// `ERR wrong number of arguments for 'cmd' command`
    pub fn wrong_args(cmd: &str) -> String {
        format!("ERR wrong number of arguments for '{cmd}' command")
    }

    /// `ERR unknown command 'x', with args beginning with: 'a' 'b' `
    pub fn unknown_command(name: &[u8], args: &[bytes::Bytes]) -> String {
        let mut list = String::new();
        for a in args.iter() {
            if list.len() >= 128 {
                break;
            }
            let room = 128 - list.len();
            list.push('\'');
            list.push_str(&trunc(a, room));
            list.push_str("' ");
        }
        format!(
            "ERR unknown command '{}', with args beginning with: {list}",
            trunc(name, 128)
        )
    }

    /// `ERR unknown subcommand 'x'. Try CMD HELP.`
    pub fn unknown_subcommand(cmd: &str, sub: &[u8]) -> String {
        format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            trunc(sub, 128),
            cmd.to_ascii_uppercase()
        )
    }

    pub fn invalid_expire(cmd: &str) -> String {
        format!("ERR invalid expire time in '{cmd}' command")
    }

    /// `ERR <text>`: a message from elsewhere (a protocol error, a Lua error) as an error reply.
    pub fn err(text: impl std::fmt::Display) -> String {
        format!("ERR {text}")
    }

    /// `ERR Unsupported option <opt>` (EXPIRE family).
    pub fn unsupported_option(opt: &[u8]) -> String {
        format!("ERR Unsupported option {}", String::from_utf8_lossy(opt))
    }

    /// `ERR unknown subcommand or wrong number of arguments for 'sub'. Try CMD HELP.`: a known
    /// subcommand with the wrong number of arguments.
    pub fn subcommand_arity(cmd: &str, sub: &[u8]) -> String {
        format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
            String::from_utf8_lossy(sub),
            cmd.to_ascii_uppercase()
        )
    }

    /// A RESP2 client in subscribed mode ran `fullname` (`get`, `client|list`).
    pub fn only_subscribe_commands(fullname: &str) -> String {
        format!("ERR Can't execute '{fullname}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
    }

    pub fn hello_syntax(opt: &[u8]) -> String {
        format!(
            "ERR Syntax error in HELLO option '{}'",
            String::from_utf8_lossy(opt)
        )
    }

    /// CLIENT SETINFO with a value that is not printable ASCII without spaces.
    pub fn client_info_invalid(attr: &[u8]) -> String {
        format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(attr)
        )
    }

    pub fn unrecognized_option(opt: &[u8]) -> String {
        format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(opt))
    }

    // Functions (FUNCTION, FCALL).
    pub const FUNCTION_NO_METADATA: &str = "ERR Missing library metadata";
    pub const FUNCTION_NAME_TWICE: &str =
        "ERR Invalid metadata value, name argument was given multiple times";
    pub const FUNCTION_NO_LIBRARY_NAME: &str = "ERR Library name was not given";
    /// Without "ERR ": Redis 7.0 raises it inside the library for a bad function name too.
    pub const FUNCTION_BAD_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";
    pub const FUNCTION_NONE_REGISTERED: &str = "ERR No functions registered";
    pub const FUNCTION_NO_SUCH_LIBRARY: &str = "ERR Library not found";
    pub const FUNCTION_NOT_FOUND: &str = "ERR Function not found";
    pub const FUNCTION_PAYLOAD_INVALID: &str = "ERR DUMP payload version or checksum are wrong";
    pub const FUNCTION_PAYLOAD_NOT_FUNCTION: &str = "ERR given type is not a function";
    /// Ours: a payload whose trailer checks out but whose records do not parse.
    pub const FUNCTION_PAYLOAD_DAMAGED: &str = "ERR the payload's library records are damaged";
    pub const FUNCTION_RO_WRITE: &str = "ERR Can not execute a script with write flag using *_ro command.";
    pub const FUNCTION_BAD_NUMKEYS: &str = "ERR Bad number of keys provided";
    pub const FUNCTION_FLUSH_OPTION: &str = "ERR FUNCTION FLUSH only supports SYNC|ASYNC option";
    pub const FUNCTION_RESTORE_POLICY: &str =
        "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.";
    pub const FUNCTION_LIST_NO_PATTERN: &str = "ERR library name argument was not given";
    pub const FUNCTION_LOAD_TIMEOUT: &str = "FUNCTION LOAD timeout";

    pub fn function_engine_not_found(engine: &str) -> String {
        format!("ERR Engine '{engine}' not found")
    }

    pub fn function_bad_metadata(part: &str) -> String {
        format!("ERR Invalid metadata value given: {part}")
    }

    pub fn function_library_exists(name: &str) -> String {
        format!("ERR Library '{name}' already exists")
    }

    pub fn function_exists(name: &str) -> String {
        format!("ERR Function {name} already exists")
    }

    pub fn function_compile_error(message: &str) -> String {
        format!("ERR Error compiling function: {message}")
    }

    /// The library's top-level code failed; `message` is the error reply it raised.
    pub fn function_register_error(message: &str) -> String {
        format!("ERR Error registering functions: {message}")
    }

    pub fn function_list_unknown(arg: &[u8]) -> String {
        format!("ERR Unknown argument {}", String::from_utf8_lossy(arg))
    }

    pub fn function_load_unknown_option(arg: &[u8]) -> String {
        format!("ERR Unknown option given: {}", String::from_utf8_lossy(arg))
    }

    pub fn no_such_user(user: &[u8]) -> String {
        format!("ERR No such user '{}'", String::from_utf8_lossy(user))
    }

    pub fn unknown_client_type(kind: &[u8]) -> String {
        format!("ERR Unknown client type '{}'", String::from_utf8_lossy(kind))
    }

    /// `CONFIG SET` refused a value; `reason` is one of the `CONFIG_*` texts or
    /// [`config_maxclients_os`].
    pub fn config_set_failed(name: &str, reason: &str) -> String {
        format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")
    }

    /// A number outside a parameter's range.
    pub fn config_range(min: i64, max: i64) -> String {
        format!("argument must be between {min} and {max} inclusive")
    }

    /// A value that is none of an enumerated parameter's names.
    pub fn config_one_of(names: &[&str]) -> String {
        format!("argument(s) must be one of the following: {}", names.join(", "))
    }

    pub fn config_maxclients_os(most: usize) -> String {
        format!("The operating system is not able to handle the specified number of clients, try with {most}")
    }

    /// Ours: CONFIG SET appendonly yes could not create the log.
    pub fn aof_enable_failed(error: &str) -> String {
        format!("ERR could not start the append-only file: {error}")
    }

    pub fn misconf_aof(error: &str) -> String {
        format!("MISCONF Errors writing to the AOF file: {error}")
    }

    pub fn config_set_unknown(name: &str) -> String {
        format!("ERR Unknown option or number of arguments for CONFIG SET - '{name}'")
    }

    pub fn lua_start_failed(error: impl std::fmt::Display) -> String {
        format!("ERR could not start the Lua interpreter: {error}")
    }

    /// A body that does not compile; `message` is Lua's (`user_script:1: ...`).
    pub fn script_compile_error(message: &str) -> String {
        format!("ERR Error compiling script (new function): {message}")
    }

    /// A script stopped by SCRIPT KILL at `line` of the user's script.
    pub fn script_killed(sha: &str, line: i64) -> String {
        format!("ERR {SCRIPT_KILLED} script: {sha}, on @user_script:{line}.")
    }

    /// A script that failed before any of its own lines ran.
    pub fn script_failed_at_start(message: &str, sha: &str) -> String {
        format!("ERR {message} script: {sha}, on @user_script:0.")
    }

    /// A script's error reply: its message, the script and, when known, where it was raised.
    pub fn script_error(message: &str, sha: &str, place: Option<(&str, i64)>) -> String {
        match place {
            Some((source, line)) => format!("{message} script: {sha}, on {source}:{line}."),
            None => format!("{message} script: {sha}"),
        }
    }

    // Sorted sets.
    pub const ZADD_NX_XX: &str = "ERR XX and NX options at the same time are not compatible";
    pub const ZADD_GT_LT_NX: &str = "ERR GT, LT, and/or NX options at the same time are not compatible";
    pub const ZADD_INCR_PAIR: &str = "ERR INCR option supports a single increment-element pair";
    pub const ZSCORE_NAN: &str = "ERR resulting score is not a number (NaN)";
    pub const ZRANGE_NOT_FLOAT: &str = "ERR min or max is not a float";
    pub const ZRANGE_NOT_LEX: &str = "ERR min or max not valid string range item";
    pub const ZRANGE_LIMIT: &str =
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
    pub const ZRANGE_LEX_WITHSCORES: &str =
        "ERR syntax error, WITHSCORES not supported in combination with BYLEX";
    pub const WEIGHT_NOT_FLOAT: &str = "ERR weight value is not a float";

    /// ZUNION, ZINTER, ZDIFF (and their STORE forms), ZINTERCARD with `numkeys` below 1.
    pub fn no_input_keys(cmd: &str) -> String {
        format!("ERR at least 1 input key is needed for '{cmd}' command")
    }

    fn trunc(b: &[u8], max: usize) -> String {
        let s = String::from_utf8_lossy(b);
        s.chars().take(max).collect()
    }
}
