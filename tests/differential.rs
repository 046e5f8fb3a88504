//! Differential test: the same command scripts run against a real `redis-server` and against
//! autoscale-node; every reply must be identical byte for byte.
//!
//! Scripts live in `tests/diff/*.txt`, one command per line in redis-cli quoting. Directives:
//! `@2 CMD` sends on a second connection; `!nocompare CMD` runs without comparing (ids, clocks);
//! `!sorted CMD` compares an array reply ignoring element order (KEYS); `!sleep MS` pauses;
//! `!send CMD` sends without reading the reply (a command that blocks, a reply CLIENT REPLY
//! silences) and `!recv` (or `!read`) reads and compares the connection's next reply without
//! sending (after `@2 !send`, a pushed pub/sub message, the second answer of SUBSCRIBE a b).

mod common;

use common::{encode_command, have_redis_server, show, start_node, start_redis_server, ReplyReader};

const SCRIPTS: &[(&str, &str)] = &[
    ("lists", include_str!("diff/lists.txt")),
    ("strings", include_str!("diff/strings.txt")),
    ("keys", include_str!("diff/keys.txt")),
    ("tx", include_str!("diff/tx.txt")),
    ("conn", include_str!("diff/conn.txt")),
    ("scripting", include_str!("diff/scripting.txt")),
    ("config", include_str!("diff/config.txt")),
    ("functions", include_str!("diff/functions.txt")),
    ("hashes", include_str!("diff/hashes.txt")),
    ("sets", include_str!("diff/sets.txt")),
    ("generic", include_str!("diff/generic.txt")),
    ("bits", include_str!("diff/bits.txt")),
    ("streams", include_str!("diff/streams.txt")),
    ("pubsub", include_str!("diff/pubsub.txt")),
    ("client", include_str!("diff/client.txt")),
    ("zsets", include_str!("diff/zsets.txt")),
    ("admin", include_str!("diff/admin.txt")),
];

/// Splits an array reply into its element replies, sorted, for order-insensitive comparison.
fn sorted_elements(reply: &[u8]) -> Vec<Vec<u8>> {
    let first = reply
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(reply.len(), |i| i + 2);
    let mut items = Vec::new();
    let mut pos = first;
    while pos < reply.len() {
        let Some(end) = common::reply_end(reply, pos) else {
            break;
        };
        items.push(reply[pos..end].to_vec());
        pos = end;
    }
    items.sort();
    items
}

struct Side {
    conns: [ReplyReader; 2],
}

impl Side {
    fn new(server: &common::ServerProcess) -> Side {
        Side {
            conns: [
                ReplyReader::new(server.connect()),
                ReplyReader::new(server.connect()),
            ],
        }
    }
}

#[test]
fn replies_match_redis_server_byte_for_byte() {
    if !have_redis_server() {
        eprintln!("skipped: redis-server is not installed");
        return;
    }
    let ours = start_node(&[]);
    let theirs = start_redis_server();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for (name, script) in SCRIPTS {
        let mut a = Side::new(&ours);
        let mut b = Side::new(&theirs);
        a.conns[0].command(&["FLUSHALL"]);
        b.conns[0].command(&["FLUSHALL"]);
        for (lineno, raw) in script.lines().enumerate() {
            let mut line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(ms) = line.strip_prefix("!sleep ") {
                std::thread::sleep(std::time::Duration::from_millis(ms.trim().parse().unwrap()));
                continue;
            }
            let mut conn = 0;
            let (mut compare, mut sorted, mut send, mut recv) = (true, false, true, true);
            if let Some(rest) = line.strip_prefix("@2 ") {
                conn = 1;
                line = rest;
            }
            if let Some(rest) = line.strip_prefix("!send ") {
                recv = false;
                line = rest;
            } else if line == "!recv" || line == "!read" {
                send = false;
            }
            if let Some(rest) = line.strip_prefix("!nocompare ") {
                compare = false;
                line = rest;
            } else if let Some(rest) = line.strip_prefix("!sorted ") {
                sorted = true;
                line = rest;
            }
            if send {
                let args: Vec<Vec<u8>> = broker::resp::split_args(line.as_bytes())
                    .unwrap_or_else(|| panic!("{name}:{}: bad quoting", lineno + 1))
                    .into_iter()
                    .map(|b| b.to_vec())
                    .collect();
                let request = encode_command(&args);
                a.conns[conn].send(&request);
                b.conns[conn].send(&request);
            }
            if !recv {
                continue;
            }
            let ra = a.conns[conn].read_reply();
            let rb = b.conns[conn].read_reply();
            if !compare {
                continue;
            }
            compared += 1;
            // A frame `!read` expects must arrive, and so must the reply to a command sent
            // and read at once: two silent servers (both timed out) are not a match. A
            // command that blocks is sent with `!send`.
            let same = if (line == "!read" || send) && ra.is_empty() {
                false
            } else if sorted {
                sorted_elements(&ra) == sorted_elements(&rb)
            } else {
                ra == rb
            };
            if !same {
                mismatches.push(format!(
                    "{name}:{}: {line}\n    autoscale-node: {}\n    redis-server:   {}",
                    lineno + 1,
                    show(&ra),
                    show(&rb)
                ));
            }
        }
    }
    assert!(
        compared > 400,
        "the corpus shrank: only {compared} replies compared"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {compared} replies differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// `COMMAND`'s positional fields — arity, flags, first/last key and step — equal redis-server's
/// for every command both servers have (clients such as cluster-aware ones read keys and
/// flags from it). ACL categories, tips, key specifications and subcommands are not compared:
/// see docs/architecture.md, "Known differences".
#[test]
fn command_table_flags_and_key_positions_match_redis_server() {
    if !have_redis_server() {
        eprintln!("skipped: redis-server is not installed");
        return;
    }
    let ours = start_node(&[]);
    let theirs = start_redis_server();
    let table = |server: &common::ServerProcess| {
        let client = redis::Client::open(server.url()).expect("url");
        let mut c = client
            .get_connection_with_timeout(std::time::Duration::from_secs(10))
            .expect("connect");
        let reply: redis::Value = redis::cmd("COMMAND").query(&mut c).expect("COMMAND");
        let redis::Value::Array(commands) = reply else {
            panic!("COMMAND: {reply:?}")
        };
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Value::SimpleString(s) => s.clone(),
            redis::Value::Int(i) => i.to_string(),
            other => format!("{other:?}"),
        };
        commands
            .iter()
            .map(|c| {
                let redis::Value::Array(fields) = c else {
                    panic!("COMMAND entry: {c:?}")
                };
                let flags: Vec<String> = match &fields[2] {
                    redis::Value::Array(f) | redis::Value::Set(f) => f.iter().map(text).collect(),
                    other => panic!("flags: {other:?}"),
                };
                let positions: Vec<String> = [1, 3, 4, 5].iter().map(|&i| text(&fields[i])).collect();
                (text(&fields[0]), (positions, flags))
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (a, b) = (table(&ours), table(&theirs));
    let differ: Vec<String> = a
        .iter()
        .filter_map(|(name, ours)| {
            let theirs = b.get(name)?;
            (ours != theirs).then(|| format!("{name}: ours {ours:?}, redis-server {theirs:?}"))
        })
        .collect();
    assert!(a.len() > 200, "only {} commands", a.len());
    assert!(
        differ.is_empty(),
        "{} commands differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}
