//! Arguments for the hash, set, sorted-set, stream, pub/sub, bit, substring and generic
//! (SORT, COPY, DUMP/RESTORE, OBJECT, MEMORY) commands and FUNCTION, where the documented
//! syntax alone would fill every placeholder with a plain element: stream ids at the `u64`
//! edges and the special ids (`$`, `>`, `+`, `-`, `*`), scores and lex bounds (`inf`, `nan`,
//! `(1`, `[a`), consumer groups, channels, real and damaged DUMP payloads, function libraries,
//! and the container commands' subcommands. Whole commands are built here where a count must
//! match what follows (`numkeys`, XREAD's keys and ids) for the command to get past parsing.

use super::choices::Choices;
use super::grammar::{element, integer, key, random_case, Options};
use super::payloads;

/// The commands the generator favours from these families (repeated names weigh more).
pub const COMMANDS: &[&str] = &[
    "hset",
    "hset",
    "hget",
    "hdel",
    "hincrby",
    "hincrbyfloat",
    "hrandfield",
    "hscan",
    "hgetall",
    "hmget",
    "sadd",
    "sadd",
    "srem",
    "spop",
    "srandmember",
    "smove",
    "sinterstore",
    "sintercard",
    "sunion",
    "sdiffstore",
    "sscan",
    "smismember",
    "zadd",
    "zadd",
    "zadd",
    "zincrby",
    "zrange",
    "zrangestore",
    "zrangebyscore",
    "zrevrangebylex",
    "zremrangebyscore",
    "zremrangebylex",
    "zremrangebyrank",
    "zpopmin",
    "zpopmax",
    "zmpop",
    "zrandmember",
    "zunionstore",
    "zinter",
    "zdiff",
    "zintercard",
    "zcount",
    "zlexcount",
    "zscan",
    "zrank",
    "zmscore",
    "xadd",
    "xadd",
    "xadd",
    "xreadgroup",
    "xreadgroup",
    "xread",
    "xack",
    "xclaim",
    "xautoclaim",
    "xpending",
    "xinfo",
    "xgroup",
    "xgroup",
    "xgroup",
    "xtrim",
    "xsetid",
    "xrange",
    "xrevrange",
    "xdel",
    "xlen",
    "subscribe",
    "psubscribe",
    "unsubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
    "publish",
    "publish",
    "spublish",
    "pubsub",
    "sort",
    "sort_ro",
    "setbit",
    "getbit",
    "bitcount",
    "bitpos",
    "bitop",
    "setrange",
    "getrange",
    "substr",
    "lcs",
    "copy",
    "dump",
    "restore",
    "restore",
    "object",
    "memory",
    "function",
    "function",
    "fcall",
    "fcall_ro",
    "config",
];

/// Blocking commands of these families; a push to the key they wait on often follows.
pub const BLOCKING: &[&str] = &["bzpopmin", "bzpopmax", "bzmpop", "xreadgroup", "xread"];

const SCORES: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "2.5",
    "-0",
    "1e308",
    "-1e308",
    "1e309",
    "inf",
    "-inf",
    "+inf",
    "nan",
    "-nan",
    "",
    "abc",
    "0x10",
    "1e-320",
    "9007199254740993",
    "3.0e2",
    "(1",
    " 1",
    "1 ",
];

const SCORE_BOUNDS: &[&str] = &[
    "-inf", "+inf", "inf", "(1", "(-inf", "(+inf", "(nan", "nan", "0", "1", "-1", "2.5", "(", "((1", "[1",
    "(1e309", "", "abc", "(0", "1e308",
];

const LEX_BOUNDS: &[&[u8]] = &[
    b"-", b"+", b"[a", b"(a", b"[b", b"(c", b"[", b"(", b"a", b"", b"[\xff", b"(\x00", b"+inf", b"[1", b"-+",
];

/// Stream ids: the edges of both halves, incomplete and malformed ones, and the special ids.
const STREAM_IDS: &[&str] = &[
    "0",
    "0-0",
    "0-1",
    "1",
    "1-0",
    "1-1",
    "2-0",
    "5",
    "$",
    ">",
    "+",
    "-",
    "*",
    "18446744073709551615-18446744073709551615",
    "18446744073709551615",
    "18446744073709551615-0",
    "18446744073709551614-18446744073709551615",
    "18446744073709551616",
    "1-18446744073709551616",
    "-1",
    "1-",
    "-1-1",
    "1-*",
    "0-*",
    "18446744073709551615-*",
    "(0-1",
    "(1",
    "(18446744073709551615-18446744073709551615",
    "(-",
    "(+",
    "abc",
    "",
    "1-2-3",
    " 1",
];

const GROUPS: &[&[u8]] = &[b"g", b"g", b"g2", b"", b"$", b"\x00"];
const CONSUMERS: &[&[u8]] = &[b"c", b"c", b"c2", b"", b">"];

const CHANNELS: &[&[u8]] = &[
    b"ch",
    b"ch",
    b"news.1",
    b"",
    b"__keyspace@0__:q",
    b"__keyevent@0__:rpush",
    b"__keyevent@0__:del",
    b"\x00\r\n",
];

pub(super) const CHANNEL_PATTERNS: &[&[u8]] = &[
    b"*",
    b"ch*",
    b"news.[0-9]",
    b"__key*__:*",
    b"__keyevent@*__:*",
    b"[",
    b"\\",
    b"",
];

/// SORT's BY and GET patterns: `#`, `nosort`, hash fields (`->`), and their broken forms.
const SORT_PATTERNS: &[&[u8]] = &[
    b"#", b"nosort", b"w_*", b"*->f", b"h*->f", b"k*", b"*", b"-", b"*->", b"w_*->", b"", b"q*",
];

/// Offsets for SETRANGE, SETBIT and GETBIT: mostly small; else the first refused ones (a
/// string past 512 MB), a 1 MB string, the largest bit GETBIT reads, negative and `i64` edges.
/// The largest accepted SETRANGE/SETBIT offsets are left out: a bit operation on the 512 MB
/// string they make takes tens of seconds in a debug build (two seeded inputs, a BITOP over
/// one, took 23 and 31 s), near the seeded driver's hang limit; the differential test has
/// `SETRANGE k 536870911 x`.
fn offset(c: &mut impl Choices, command: &str) -> Vec<u8> {
    if c.chance(85) {
        return c.below(70).to_string().into_bytes();
    }
    let pool: &[&str] = match command {
        "setrange" => &["536870912", "1048575", "-1", "9223372036854775807", "abc", ""],
        "setbit" => &["4294967296", "8388607", "-1", "9223372036854775807", "abc", ""],
        _ => &["4294967295", "4294967296", "-1", "9223372036854775807", "abc", ""],
    };
    c.pick(pool).as_bytes().to_vec()
}

/// Ids that name entries the commands here create, so that reads, acks and claims find them.
const VALID_IDS: &[&str] = &["0", "0-0", "0-1", "1", "1-1", "1-2", "2-0", "5", "$", "+", "-"];

pub fn stream_id(c: &mut impl Choices, now_ms: u64) -> Vec<u8> {
    if c.chance(60) {
        return c.pick(VALID_IDS).as_bytes().to_vec();
    }
    if c.chance(15) {
        // Around now, as `*` makes them.
        let ms = now_ms.saturating_sub(c.below(3) as u64);
        return format!("{ms}-{}", c.below(3)).into_bytes();
    }
    c.pick(STREAM_IDS).as_bytes().to_vec()
}

pub(super) fn score(c: &mut impl Choices) -> Vec<u8> {
    if c.chance(50) {
        return (c.below(9) as i64 - 3).to_string().into_bytes();
    }
    c.pick(SCORES).as_bytes().to_vec()
}

pub(super) fn group(c: &mut impl Choices) -> Vec<u8> {
    c.pick(GROUPS).to_vec()
}

pub(super) fn consumer(c: &mut impl Choices) -> Vec<u8> {
    c.pick(CONSUMERS).to_vec()
}

pub fn channel(c: &mut impl Choices) -> Vec<u8> {
    if c.chance(10) {
        return key(c);
    }
    c.pick(CHANNELS).to_vec()
}

fn is_stream(command: &str) -> bool {
    command.starts_with('x')
}

fn is_lex(command: &str) -> bool {
    command.ends_with("lex")
}

/// A value for placeholder `name` of `command`, where these families mean something other
/// than an element by it; `None` leaves it to the general grammar.
pub fn placeholder(c: &mut impl Choices, name: &str, command: &str, now_ms: u64) -> Option<Vec<u8>> {
    Some(match name {
        "id" | "last-id" | "lastid" | "max-deleted-id" => stream_id(c, now_ms),
        "start" | "end" if is_stream(command) => stream_id(c, now_ms),
        "threshold" => {
            if c.chance(50) {
                stream_id(c, now_ms)
            } else {
                integer(c)
            }
        }
        "group" => group(c),
        "consumer" => consumer(c),
        "min-idle-time" | "ms" | "entries-added" | "frequency" | "min-match-len" | "limit" => integer(c),
        "score" => score(c),
        "increment" if matches!(command, "zincrby" | "hincrbyfloat") => score(c),
        "weight" => score(c),
        "min" | "max" if is_lex(command) => c.pick(LEX_BOUNDS).to_vec(),
        "min" | "max" if command == "zrangestore" => match c.below(3) {
            0 => c.pick(LEX_BOUNDS).to_vec(),
            1 => c.pick(SCORE_BOUNDS).as_bytes().to_vec(),
            _ => integer(c),
        },
        "min" | "max" => c.pick(SCORE_BOUNDS).as_bytes().to_vec(),
        "start" | "stop" if command == "zrange" && c.chance(40) => {
            if c.chance(50) {
                c.pick(LEX_BOUNDS).to_vec()
            } else {
                c.pick(SCORE_BOUNDS).as_bytes().to_vec()
            }
        }
        "start" | "end" | "offset" if matches!(command, "getrange" | "substr" | "bitcount" | "bitpos") => {
            integer(c)
        }
        "offset" if matches!(command, "setrange" | "setbit" | "getbit") => offset(c, command),
        "offset" => integer(c),
        "bit" => c.pick(&["0", "1", "2", "-1", ""]).as_bytes().to_vec(),
        "value" if command == "setbit" => c.pick(&["0", "1", "2", "-1", ""]).as_bytes().to_vec(),
        "operation" => {
            let op = *c.pick(&["AND", "OR", "XOR", "NOT", "bogus", ""]);
            random_case(c, op.as_bytes())
        }
        "destkey" | "dst" | "src" | "key1" | "key2" => key(c),
        "destination-db" => c.pick(&["0", "1", "15", "16", "-1", "abc"]).as_bytes().to_vec(),
        "ttl" => integer(c),
        "serialized-value" => payloads::payload(c),
        "pattern" if matches!(command, "sort" | "sort_ro") => c.pick(SORT_PATTERNS).to_vec(),
        "pattern" if command.starts_with("psub") || command.starts_with("punsub") => {
            c.pick(CHANNEL_PATTERNS).to_vec()
        }
        "channel" | "shardchannel" => channel(c),
        "message" if c.chance(50) => c.pick(&[&b"hello"[..], b"", b"\r\n"]).to_vec(),
        _ => return None,
    })
}

/// `count` keys, colliding as the general grammar's keys do.
fn keys(c: &mut impl Choices, count: usize, out: &mut Vec<Vec<u8>>) {
    for _ in 0..count {
        out.push(key(c));
    }
}

/// A `numkeys` that is usually the number of keys that follow, sometimes not.
fn numkeys(c: &mut impl Choices, n: usize) -> Vec<u8> {
    if c.chance(85) {
        n.to_string().into_bytes()
    } else {
        integer(c)
    }
}

fn count_option(c: &mut impl Choices, out: &mut Vec<Vec<u8>>) {
    if c.chance(50) {
        out.push(b"COUNT".to_vec());
        out.push(if c.chance(50) {
            (1 + c.below(3)).to_string().into_bytes()
        } else {
            integer(c)
        });
    }
}

/// A whole command for the commands whose counts must agree with what follows, or `None` to
/// use the documented syntax (which makes the near-misses).
pub fn command(
    c: &mut impl Choices,
    name: &str,
    opts: Options,
    nesting: usize,
    now_ms: u64,
) -> Option<Vec<Vec<u8>>> {
    let is_container = matches!(
        name,
        "object" | "memory" | "xgroup" | "xinfo" | "pubsub" | "function" | "config"
    );
    if !is_container && c.chance(30) {
        return None;
    }
    let mut out = vec![random_case(c, name.to_ascii_uppercase().as_bytes())];
    let n = 1 + c.below(3);
    match name {
        "zunion" | "zinter" | "zdiff" | "zunionstore" | "zinterstore" | "zdiffstore" | "zintercard"
        | "sintercard" => {
            if name.ends_with("store") {
                out.push(key(c));
            }
            out.push(numkeys(c, n));
            keys(c, n, &mut out);
            if c.chance(40) && !name.starts_with("zdiff") && !name.ends_with("card") {
                out.push(b"WEIGHTS".to_vec());
                for _ in 0..n {
                    out.push(score(c));
                }
            }
            if c.chance(30) && !name.starts_with("zdiff") && !name.ends_with("card") {
                out.push(b"AGGREGATE".to_vec());
                out.push(c.pick(&["SUM", "MIN", "MAX", "bogus"]).as_bytes().to_vec());
            }
            if name.ends_with("card") && c.chance(50) {
                out.push(b"LIMIT".to_vec());
                out.push(integer(c));
            }
            if c.chance(40) && !name.ends_with("store") && !name.ends_with("card") {
                out.push(b"WITHSCORES".to_vec());
            }
        }
        "zmpop" | "bzmpop" => {
            if name == "bzmpop" {
                out.push(super::grammar::timeout(c));
            }
            out.push(numkeys(c, n));
            keys(c, n, &mut out);
            out.push(c.pick(&["MIN", "MAX", "min", "LEFT"]).as_bytes().to_vec());
            count_option(c, &mut out);
        }
        "xread" | "xreadgroup" => {
            if name == "xreadgroup" {
                out.push(b"GROUP".to_vec());
                out.push(group(c));
                out.push(consumer(c));
            }
            count_option(c, &mut out);
            if c.chance(50) {
                out.push(b"BLOCK".to_vec());
                let block = ["0", "0", "0", "1", "10", "-1", "abc", "9223372036854775807"];
                out.push(c.pick(&block).as_bytes().to_vec());
            }
            if name == "xreadgroup" && c.chance(20) {
                out.push(b"NOACK".to_vec());
            }
            out.push(b"STREAMS".to_vec());
            keys(c, n, &mut out);
            let ids = if c.chance(90) { n } else { n + 1 };
            for _ in 0..ids {
                out.push(if c.chance(50) {
                    if name == "xreadgroup" {
                        b">".to_vec()
                    } else {
                        b"$".to_vec()
                    }
                } else {
                    stream_id(c, now_ms)
                });
            }
        }
        "fcall" | "fcall_ro" => {
            out.push(c.pick(&[&b"f"[..], b"f", b"g", b"nosuch", b""]).to_vec());
            out.push(numkeys(c, n));
            keys(c, n, &mut out);
            for _ in 0..c.below(3) {
                out.push(element(c));
            }
        }
        "xadd" if c.chance(50) => {
            out.push(key(c));
            if c.chance(10) {
                out.push(b"NOMKSTREAM".to_vec());
            }
            if c.chance(30) {
                out.push(c.pick(&["MAXLEN", "MINID"]).as_bytes().to_vec());
                if c.chance(50) {
                    out.push(c.pick(&["=", "~"]).as_bytes().to_vec());
                }
                out.push(if c.chance(50) {
                    integer(c)
                } else {
                    stream_id(c, now_ms)
                });
            }
            out.push(if c.chance(60) {
                b"*".to_vec()
            } else {
                stream_id(c, now_ms)
            });
            for _ in 0..n {
                out.push(c.pick(&[&b"f"[..], b"g", b""]).to_vec());
                out.push(element(c));
            }
        }
        "restore" => {
            out.push(key(c));
            out.push(if c.chance(70) { b"0".to_vec() } else { integer(c) });
            out.push(payloads::payload(c));
            for (option, value) in [
                ("REPLACE", false),
                ("ABSTTL", false),
                ("IDLETIME", true),
                ("FREQ", true),
            ] {
                if c.chance(25) {
                    out.push(option.as_bytes().to_vec());
                    if value {
                        out.push(integer(c));
                    }
                }
            }
        }
        "object" | "memory" | "xgroup" | "xinfo" | "pubsub" | "function" | "config" => {
            super::containers::subcommand(c, name, opts, nesting, now_ms, &mut out);
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_favoured_name_is_a_command() {
        for name in COMMANDS.iter().chain(BLOCKING) {
            assert!(
                crate::commands::COMMANDS.iter().any(|s| s.name == *name),
                "{name} is not in the command table"
            );
        }
    }
}
