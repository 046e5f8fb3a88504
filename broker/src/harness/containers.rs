//! The container commands' subcommands with their arguments (OBJECT, MEMORY, XGROUP, XINFO,
//! PUBSUB, FUNCTION), function libraries for FUNCTION LOAD, and the CONFIG SET of parameters
//! a whole run may keep changed.

use super::choices::Choices;
use super::families::{channel, consumer, group, stream_id, CHANNEL_PATTERNS};
use super::grammar::{integer, key, random_case, Options};
use super::payloads;

/// Parameters safe to change for a whole run, with values that mean something to them.
const CONFIG_PARAMS: &[&str] = &[
    "notify-keyspace-events",
    "notify-keyspace-events",
    "set-max-intset-entries",
    "zset-max-listpack-entries",
    "zset-max-ziplist-entries",
    "zset-max-listpack-value",
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "list-max-listpack-size",
    "list-compress-depth",
    "stream-node-max-entries",
    "stream-node-max-bytes",
];

const NOTIFY_FLAGS: &[&str] = &[
    "KEA", "AKE", "Kx", "E$", "Elh", "KEg", "KEz", "KEt", "KEm", "KEd", "KEn", "Exe", "", "bogus", "A", "K",
];

/// The parameters above, once each (what a driver restores between inputs).
pub fn harmless_params() -> Vec<&'static str> {
    let mut params = CONFIG_PARAMS.to_vec();
    params.sort_unstable();
    params.dedup();
    params
}

/// Whether `args` is a `CONFIG SET` of the parameters above only (the wire test allows those:
/// they cannot stop a server from answering the next session).
pub fn is_harmless_config_set(args: &[impl AsRef<[u8]>]) -> bool {
    args.len() >= 4
        && args.len().is_multiple_of(2)
        && args[0].as_ref().eq_ignore_ascii_case(b"config")
        && args[1].as_ref().eq_ignore_ascii_case(b"set")
        && args[2..].chunks(2).all(|p| {
            CONFIG_PARAMS
                .iter()
                .any(|h| p[0].as_ref().eq_ignore_ascii_case(h.as_bytes()))
        })
}

/// A library for FUNCTION LOAD: a shebang (sometimes broken), then registrations of `f` and
/// `g` whose bodies are generated scripts (the callback's parameters named `KEYS` and `ARGV`,
/// as EVAL's globals, so that what the script generator writes works), or code that fails
/// while loading. A `clean` library
/// always loads: `lib` with `f` and `g` once each, valid flags, nothing after them.
pub fn library(c: &mut impl Choices, opts: Options, nesting: usize, clean: bool) -> Vec<u8> {
    let name = if clean {
        "lib"
    } else {
        *c.pick(&["lib", "lib", "lib", "lib2", "a b", ""])
    };
    let mut s = match c.below(12) {
        _ if clean => "#!lua name=lib\n".to_string(),
        0 => String::new(),
        1 => "#!js name=lib\n".to_string(),
        2 => "#!lua\n".to_string(),
        3 => format!("#!lua name={name} bogus=1\n"),
        _ => format!("#!lua name={name}\n"),
    };
    let names: Vec<&str> = if clean {
        vec!["f", "g"]
    } else {
        let n = if c.chance(80) { 1 + c.below(2) } else { c.below(4) };
        (0..n)
            .map(|_| *c.pick(&["f", "f", "f", "g", "", "x y"]))
            .collect()
    };
    for f in names {
        let body = if nesting == 0 && c.chance(70) {
            super::lua::script(c, 2, opts)
        } else {
            "return #KEYS".to_string()
        };
        if c.chance(70) {
            s.push_str(&format!(
                "redis.register_function('{f}', function(KEYS, ARGV)\n{body}\nend)\n"
            ));
        } else {
            let flags = if clean {
                *c.pick(&["{}", "{'no-writes'}", "{'allow-oom', 'no-writes'}"])
            } else {
                *c.pick(&[
                    "{}",
                    "{'no-writes'}",
                    "{'allow-oom', 'no-writes'}",
                    "{'bogus'}",
                    "'x'",
                ])
            };
            s.push_str(&format!(
                "redis.register_function{{function_name='{f}', callback=function(KEYS, ARGV)\n{body}\nend, flags={flags}}}\n"
            ));
        }
    }
    match c.below(20) {
        _ if clean => {}
        0 => s.push_str("redis.call('SET', 'k', 'v')\n"),
        1 => s.push_str("error('at load')\n"),
        2 => s.push_str("return 1\n"),
        3 => s.push_str("redis.register_function('f', 1)\n"),
        _ => {}
    }
    s.into_bytes()
}

pub fn subcommand(
    c: &mut impl Choices,
    name: &str,
    opts: Options,
    nesting: usize,
    now_ms: u64,
    out: &mut Vec<Vec<u8>>,
) {
    let sub = match name {
        "object" => *c.pick(&[
            "ENCODING", "ENCODING", "REFCOUNT", "IDLETIME", "FREQ", "HELP", "bogus",
        ]),
        "memory" => *c.pick(&[
            "USAGE",
            "USAGE",
            "DOCTOR",
            "STATS",
            "MALLOC-STATS",
            "PURGE",
            "HELP",
            "bogus",
        ]),
        "xgroup" => *c.pick(&[
            "CREATE",
            "CREATE",
            "SETID",
            "DESTROY",
            "CREATECONSUMER",
            "DELCONSUMER",
            "HELP",
            "bogus",
        ]),
        "xinfo" => *c.pick(&["STREAM", "STREAM", "GROUPS", "CONSUMERS", "HELP", "bogus"]),
        "pubsub" => *c.pick(&[
            "CHANNELS",
            "NUMSUB",
            "NUMPAT",
            "SHARDCHANNELS",
            "SHARDNUMSUB",
            "HELP",
            "bogus",
        ]),
        "function" => *c.pick(&[
            "LOAD", "LOAD", "LOAD", "DELETE", "FLUSH", "LIST", "STATS", "DUMP", "RESTORE", "RESTORE", "KILL",
            "HELP", "bogus",
        ]),
        _ => "SET",
    };
    out.push(random_case(c, sub.as_bytes()));
    match (name, sub) {
        ("object", "HELP") | ("memory", "DOCTOR" | "STATS" | "MALLOC-STATS" | "PURGE" | "HELP") => {}
        ("object", _) => out.push(key(c)),
        ("memory", _) => {
            out.push(key(c));
            if c.chance(30) {
                out.push(b"SAMPLES".to_vec());
                out.push(integer(c));
            }
        }
        ("xgroup", "CREATE" | "SETID") => {
            out.push(key(c));
            out.push(group(c));
            out.push(if c.chance(40) {
                c.pick(&["$", "0", "0-0"]).as_bytes().to_vec()
            } else {
                stream_id(c, now_ms)
            });
            if sub == "CREATE" && c.chance(60) {
                out.push(b"MKSTREAM".to_vec());
            }
            if c.chance(30) {
                out.push(b"ENTRIESREAD".to_vec());
                out.push(integer(c));
            }
        }
        ("xgroup", "DESTROY") => {
            out.push(key(c));
            out.push(group(c));
        }
        ("xgroup", "CREATECONSUMER" | "DELCONSUMER") => {
            out.push(key(c));
            out.push(group(c));
            out.push(consumer(c));
        }
        ("xinfo", "STREAM") => {
            out.push(key(c));
            if c.chance(50) {
                out.push(b"FULL".to_vec());
                if c.chance(50) {
                    out.push(b"COUNT".to_vec());
                    out.push(integer(c));
                }
            }
        }
        ("xinfo", "GROUPS") => out.push(key(c)),
        ("xinfo", "CONSUMERS") => {
            out.push(key(c));
            out.push(group(c));
        }
        ("pubsub", "CHANNELS" | "SHARDCHANNELS") if c.chance(50) => {
            out.push(c.pick(CHANNEL_PATTERNS).to_vec())
        }
        ("pubsub", "NUMSUB" | "SHARDNUMSUB") => {
            for _ in 0..c.below(3) {
                out.push(channel(c));
            }
        }
        ("function", "LOAD") => {
            if c.chance(30) {
                out.push(b"REPLACE".to_vec());
            }
            out.push(library(c, opts, nesting, false));
        }
        ("function", "DELETE") => out.push(c.pick(&[&b"lib"[..], b"lib2", b"nosuch", b""]).to_vec()),
        ("function", "FLUSH") if c.chance(50) => {
            out.push(c.pick(&["SYNC", "ASYNC", "bogus"]).as_bytes().to_vec())
        }
        ("function", "LIST") => {
            if c.chance(40) {
                out.push(b"LIBRARYNAME".to_vec());
                out.push(c.pick(&[&b"lib*"[..], b"*", b"nosuch", b"["]).to_vec());
            }
            if c.chance(40) {
                out.push(b"WITHCODE".to_vec());
            }
        }
        ("function", "RESTORE") => {
            out.push(if c.chance(40) {
                payloads::FUNCTIONS.to_vec()
            } else {
                payloads::damaged(c, payloads::FUNCTIONS)
            });
            if c.chance(60) {
                out.push(
                    c.pick(&["FLUSH", "APPEND", "REPLACE", "bogus"])
                        .as_bytes()
                        .to_vec(),
                );
            }
        }
        ("config", _) => {
            for _ in 0..1 + c.below(2) {
                let param = *c.pick(CONFIG_PARAMS);
                out.push(param.as_bytes().to_vec());
                out.push(if param == "notify-keyspace-events" {
                    c.pick(NOTIFY_FLAGS).as_bytes().to_vec()
                } else {
                    c.pick(&[
                        "0", "1", "2", "3", "16", "128", "512", "-1", "-2", "-5", "-6", "1kb", "abc",
                    ])
                    .as_bytes()
                    .to_vec()
                });
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmless_config_sets_are_recognised() {
        assert!(is_harmless_config_set(&[
            "CONFIG",
            "set",
            "notify-keyspace-events",
            "KEA"
        ]));
        assert!(!is_harmless_config_set(&["CONFIG", "SET", "requirepass", "x"]));
        assert!(!is_harmless_config_set(&[
            "CONFIG",
            "SET",
            "notify-keyspace-events",
            "KEA",
            "maxclients",
            "0"
        ]));
        assert!(!is_harmless_config_set(&[
            "CONFIG",
            "SET",
            "notify-keyspace-events"
        ]));
    }
}
