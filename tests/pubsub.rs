//! Pub/sub, keyspace notifications, MONITOR and CLIENT on the real binary: redis-rs subscribers, raw
//! sockets, the exact event sequence compared with redis-server, and real `redis-cli
//! subscribe`, `monitor` and `--stat` processes. Every read has a timeout.

mod common;

use common::{
    encode_command, have_redis_server, start_node, start_redis_server, ReplyReader, ServerProcess, IO_TIMEOUT,
};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn send(r: &mut ReplyReader, args: &[&str]) {
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    r.send(&encode_command(&args));
}

/// The bulk strings of one reply frame, in order (integers and nulls left out).
fn bulks(frame: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < frame.len() {
        let Some(le) = frame[pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| pos + i)
        else {
            break;
        };
        if frame[pos] == b'$' {
            let n: i64 = std::str::from_utf8(&frame[pos + 1..le]).unwrap().parse().unwrap();
            if n >= 0 {
                let start = le + 2;
                let end = start + n as usize;
                out.push(String::from_utf8_lossy(&frame[start..end]).into_owned());
                pos = end + 2;
                continue;
            }
        }
        pos = le + 2;
    }
    out
}

/// Polls `f` until it is true, for at most [`IO_TIMEOUT`].
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < IO_TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn integer(frame: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(frame);
    text.trim()
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {text:?}"))
}

#[test]
fn messages_reach_channel_and_pattern_subscribers_in_order() {
    let node = start_node(&[]);
    let client = redis::Client::open(node.url()).expect("url");
    let mut a = client.get_connection().expect("connect");
    let mut b = client.get_connection().expect("connect");
    let mut publisher = client.get_connection().expect("connect");
    let mut sub_a = a.as_pubsub();
    let mut sub_b = b.as_pubsub();
    sub_a.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    sub_b.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    sub_a.subscribe("news").expect("subscribe");
    sub_b.psubscribe("n*s").expect("psubscribe");
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("first")
        .query(&mut publisher)
        .expect("publish");
    assert_eq!(receivers, 2);
    let nope: i64 = redis::cmd("PUBLISH")
        .arg("other")
        .arg("x")
        .query(&mut publisher)
        .expect("publish");
    assert_eq!(nope, 0);
    for i in 0..200 {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("news")
            .arg(format!("m{i}"))
            .query(&mut publisher)
            .expect("publish");
    }
    let m = sub_a.get_message().expect("message");
    assert_eq!(m.get_channel_name(), "news");
    assert!(!m.from_pattern());
    assert_eq!(m.get_payload::<String>().expect("payload"), "first");
    let m = sub_b.get_message().expect("pmessage");
    assert!(m.from_pattern());
    assert_eq!(m.get_pattern::<String>().expect("pattern"), "n*s");
    assert_eq!(m.get_channel_name(), "news");
    assert_eq!(m.get_payload::<String>().expect("payload"), "first");
    for i in 0..200 {
        let got: String = sub_a
            .get_message()
            .expect("message")
            .get_payload()
            .expect("payload");
        assert_eq!(got, format!("m{i}"));
        let got: String = sub_b
            .get_message()
            .expect("message")
            .get_payload()
            .expect("payload");
        assert_eq!(got, format!("m{i}"));
    }
    // A subscriber that leaves takes its subscriptions with it.
    drop(sub_a);
    drop(a);
    eventually("the subscription to go", || {
        let n: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("news")
            .query(&mut publisher)
            .expect("numsub");
        n == vec![("news".to_string(), 0)]
    });
}

#[test]
fn a_resp3_subscriber_receives_messages_while_blocked_and_while_idle() {
    let node = start_node(&[]);
    let mut sub = ReplyReader::new(node.connect());
    let mut other = ReplyReader::new(node.connect());
    send(&mut sub, &["HELLO", "3"]);
    sub.read_reply();
    assert_eq!(
        sub.command(&["SUBSCRIBE", "ch"]),
        b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
    );
    send(&mut sub, &["BLPOP", "q", "0"]);
    eventually("the client to block", || {
        let info = String::from_utf8_lossy(&other.command(&["INFO", "clients"])).into_owned();
        info.contains("blocked_clients:1")
    });
    assert_eq!(integer(&other.command(&["PUBLISH", "ch", "while blocked"])), 1);
    assert_eq!(
        sub.read_reply(),
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$13\r\nwhile blocked\r\n"
    );
    other.command(&["RPUSH", "q", "x"]);
    assert_eq!(sub.read_reply(), b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
    assert_eq!(integer(&other.command(&["PUBLISH", "ch", "idle"])), 1);
    assert_eq!(bulks(&sub.read_reply()), ["message", "ch", "idle"]);
}

#[test]
fn a_subscriber_that_stops_reading_is_disconnected_at_the_output_limit() {
    let node = start_node(&[]);
    let mut sub = ReplyReader::new(node.connect());
    let mut publisher = ReplyReader::new(node.connect());
    sub.command(&["SUBSCRIBE", "flood"]);
    // 64 MB for a client that reads nothing: past the 32 MB hard limit whatever the socket
    // buffers hold.
    let payload = "x".repeat(1 << 20);
    for _ in 0..64 {
        publisher.command(&["PUBLISH", "flood", &payload]);
    }
    eventually("the subscriber to be dropped", || {
        publisher.command(&["PUBSUB", "NUMSUB", "flood"]) == b"*2\r\n$5\r\nflood\r\n:0\r\n"
    });
    assert_eq!(integer(&publisher.command(&["PUBLISH", "flood", "more"])), 0);
    // The socket ends after what was already in flight, well short of everything published.
    let mut received = 0usize;
    let start = Instant::now();
    loop {
        let frame = sub.read_reply();
        if frame.is_empty() {
            break;
        }
        received += frame.len();
        assert!(start.elapsed() < IO_TIMEOUT, "the connection was not closed");
    }
    assert!(
        received < 48 << 20,
        "{received} bytes were delivered: no limit applied"
    );
}

/// The keyspace events (channel, message) a sequence of commands produces on `server`.
fn keyspace_events(server: &ServerProcess) -> Vec<(String, String)> {
    let mut c = ReplyReader::new(server.connect());
    let mut blocked = ReplyReader::new(server.connect());
    let mut sub = ReplyReader::new(server.connect());
    c.command(&["FLUSHALL"]);
    c.command(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    sub.command(&["PSUBSCRIBE", "__key*@0__:*"]);
    let script: &[&[&str]] = &[
        &["SET", "s", "1"],
        &["INCR", "s"],
        &["INCRBYFLOAT", "s", "0.5"],
        &["APPEND", "s", "0"],
        &["SETEX", "t", "100", "v"],
        &["GETEX", "t", "PERSIST"],
        &["GETDEL", "t"],
        &["MSET", "a", "1", "b", "2"],
        &["DEL", "a", "b", "c"],
        &["RPUSH", "l", "1", "2", "3", "4"],
        &["LINSERT", "l", "AFTER", "1", "x"],
        &["LSET", "l", "0", "y"],
        &["LREM", "l", "0", "x"],
        &["LTRIM", "l", "0", "1"],
        &["LMPOP", "1", "l", "RIGHT", "COUNT", "5"],
        &["RPUSH", "m", "a"],
        &["RPOPLPUSH", "m", "m2"],
        &["RENAME", "m2", "m3"],
        &["EXPIRE", "m3", "100"],
        &["PEXPIRE", "m3", "0"],
    ];
    for args in script {
        c.command(args);
    }
    // A pop served to a blocked client, then a move served to one.
    send(&mut blocked, &["BLPOP", "bq", "0"]);
    eventually("BLPOP to block", || {
        String::from_utf8_lossy(&c.command(&["INFO", "clients"])).contains("blocked_clients:1")
    });
    c.command(&["RPUSH", "bq", "v"]);
    assert_eq!(bulks(&blocked.read_reply()), ["bq", "v"]);
    send(&mut blocked, &["BLMOVE", "src", "dst", "LEFT", "LEFT", "0"]);
    eventually("BLMOVE to block", || {
        String::from_utf8_lossy(&c.command(&["INFO", "clients"])).contains("blocked_clients:1")
    });
    c.command(&["LPUSH", "src", "w"]);
    assert_eq!(bulks(&blocked.read_reply()), ["w"]);
    // Expiry: one key removed by the active cycle, one found expired by a read.
    c.command(&["SET", "gone", "v", "PX", "20"]);
    std::thread::sleep(Duration::from_millis(400));
    c.command(&["SET", "lazy", "v", "PX", "1"]);
    std::thread::sleep(Duration::from_millis(5));
    c.command(&["GET", "lazy"]);
    c.command(&["CONFIG", "SET", "notify-keyspace-events", ""]);
    c.command(&["PUBLISH", "__keyspace@0__:end", "end"]);
    let mut events = Vec::new();
    loop {
        let frame = sub.read_reply();
        let parts = bulks(&frame);
        assert_eq!(parts.len(), 4, "not a pmessage: {}", common::show(&frame));
        if parts[3] == "end" {
            break;
        }
        events.push((parts[2].clone(), parts[3].clone()));
    }
    events
}

#[test]
fn keyspace_events_match_redis_server_command_for_command() {
    if !have_redis_server() {
        eprintln!("skipped: redis-server is not installed");
        return;
    }
    let ours = keyspace_events(&start_node(&[]));
    let theirs = keyspace_events(&start_redis_server());
    assert!(ours.len() > 60, "too few events: {ours:?}");
    // The lazily expired key may also be caught by the active cycle first: either way it
    // is one `expired` event in the same place.
    assert_eq!(ours, theirs);
}

/// MONITOR lines with the time and the client's address replaced, so that servers compare.
fn monitored(server: &ServerProcess) -> (Vec<String>, String) {
    let mut monitor = ReplyReader::new(server.connect());
    assert_eq!(monitor.command(&["MONITOR"]), b"+OK\r\n");
    let mut c = ReplyReader::new(server.connect());
    let script: &[&[&str]] = &[
        &["SET", "k", "va\"l\n\x01"],
        &["AUTH", "user", "secret"],
        &["HELLO", "2", "AUTH", "default", "secret"],
        &["MULTI"],
        &["INCR", "n"],
        &["EXEC"],
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 'x') return redis.call('get', KEYS[1])",
            "1",
            "sk",
        ],
        &["CONFIG", "GET", "hz"],
        &["CLIENT", "LIST"],
        &["SELECT", "2"],
        &["DEL", "k"],
        &["PING"],
    ];
    for args in script {
        c.command(args);
    }
    let mut lines = Vec::new();
    let mut address = String::new();
    loop {
        let frame = monitor.read_reply();
        let line = String::from_utf8(frame).expect("utf-8");
        assert!(line.starts_with('+') && line.ends_with("\r\n"), "{line:?}");
        let line = line[1..line.len() - 2].to_string();
        // "<seconds>.<6 digits> [<db> <addr>] ..."
        let (time, rest) = line.split_once(' ').expect("a time");
        let (secs, micros) = time.split_once('.').expect("seconds.micros");
        assert!(
            secs.len() >= 10 && secs.bytes().all(|b| b.is_ascii_digit()),
            "{line}"
        );
        assert!(
            micros.len() == 6 && micros.bytes().all(|b| b.is_ascii_digit()),
            "{line}"
        );
        let (origin, args) = rest.split_once("] ").expect("an origin");
        let (db, addr) = origin
            .trim_start_matches('[')
            .split_once(' ')
            .expect("db and addr");
        if addr != "lua" {
            address = addr.to_string();
        }
        lines.push(format!(
            "[{db} {}] {args}",
            if addr == "lua" { "lua" } else { "client" }
        ));
        if args == "\"PING\"" {
            break;
        }
    }
    (lines, address)
}

#[test]
fn monitor_lines_match_redis_server() {
    if !have_redis_server() {
        eprintln!("skipped: redis-server is not installed");
        return;
    }
    let node = start_node(&[]);
    let (ours, address) = monitored(&node);
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    let (theirs, _) = monitored(&start_redis_server());
    assert_eq!(ours, theirs);
    assert!(ours
        .iter()
        .any(|l| l.contains("\"AUTH\" \"(redacted)\" \"(redacted)\"")));
    assert!(ours.iter().any(|l| l.starts_with("[0 lua] \"set\" \"sk\" \"x\"")));
}

/// A child process whose stdout lines arrive on a channel; killed when dropped.
struct Cli {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Cli {
    fn start(args: &[&str]) -> Cli {
        // Line-buffered, as on a terminal: redis-cli writes through stdio.
        let mut child = Command::new("stdbuf")
            .arg("-oL")
            .arg("redis-cli")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-cli");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Cli { child, lines }
    }

    /// Reads lines until one satisfies `f`; returns it.
    fn until(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if f(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("redis-cli never printed {what}"),
            }
        }
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have_redis_cli() -> bool {
    Command::new("redis-cli")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn redis_cli_subscribe_monitor_and_stat_work() {
    if !have_redis_cli() {
        eprintln!("skipped: redis-cli is not installed");
        return;
    }
    let node = start_node(&[]);
    let port = node.port.to_string();
    let mut c = ReplyReader::new(node.connect());

    let subscriber = Cli::start(&["-p", &port, "subscribe", "ch"]);
    subscriber.until("the subscription count", |l| l == "1");
    let monitor = Cli::start(&["-p", &port, "monitor"]);
    monitor.until("OK", |l| l == "OK");
    assert_eq!(integer(&c.command(&["PUBLISH", "ch", "hello from the test"])), 1);
    subscriber.until("the message", |l| l == "hello from the test");
    c.command(&["SET", "cli-key", "cli value"]);
    let line = monitor.until("the SET", |l| l.contains("\"SET\" \"cli-key\""));
    assert!(line.ends_with("\"SET\" \"cli-key\" \"cli value\""), "{line}");

    let stat = Cli::start(&["-p", &port, "--stat", "-i", "0.1"]);
    stat.until("the header", |l| l.starts_with("keys"));
    let row = stat.until("a row", |l| {
        l.split_whitespace()
            .next()
            .is_some_and(|k| k.parse::<u64>().is_ok())
    });
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[0], "1", "one key in db0: {row}");
    // The subscriber, the monitor, this connection and --stat itself.
    assert_eq!(fields[2], "4", "clients: {row}");
}

/// The `name=value` fields of a CLIENT LIST / CLIENT INFO line.
fn fields(line: &[u8]) -> std::collections::HashMap<String, String> {
    let text = String::from_utf8_lossy(line);
    let body = text.split_once("\r\n").map_or(&*text, |(_, rest)| rest);
    body.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn client_list_shows_subscriptions_the_running_command_multi_and_qbuf() {
    let node = start_node(&[]);
    let mut sub = ReplyReader::new(node.connect());
    send(&mut sub, &["HELLO", "3"]);
    sub.read_reply();
    for args in [
        &["SUBSCRIBE", "a", "b"][..],
        &["PSUBSCRIBE", "p*"],
        &["SSUBSCRIBE", "s"],
    ] {
        send(&mut sub, args);
        for _ in 1..args.len() {
            sub.read_reply();
        }
    }
    let me = fields(&sub.command(&["CLIENT", "INFO"]));
    assert_eq!(
        (
            &*me["sub"],
            &*me["psub"],
            &*me["ssub"],
            &*me["flags"],
            &*me["cmd"]
        ),
        ("2", "1", "1", "P", "client|info")
    );
    // The request being executed is still in the query buffer, as in Redis.
    assert_eq!(me["qbuf"], "26", "*2 $6 CLIENT $4 INFO");

    let mut tx = ReplyReader::new(node.connect());
    let tx_id = String::from_utf8_lossy(&tx.command(&["CLIENT", "ID"])).trim()[1..].to_string();
    tx.command(&["MULTI"]);
    tx.command(&["GET", "a"]);
    tx.command(&["SET", "b", "c"]);
    let mut other = ReplyReader::new(node.connect());
    let seen = fields(&other.command(&["CLIENT", "LIST", "ID", &tx_id]));
    assert_eq!(
        (&*seen["multi"], &*seen["flags"], &*seen["cmd"], &*seen["qbuf"]),
        ("2", "x", "set", "0")
    );
    tx.command(&["EXEC"]);
    let seen = fields(&other.command(&["CLIENT", "LIST", "ID", &tx_id]));
    assert_eq!(
        (&*seen["multi"], &*seen["flags"], &*seen["cmd"]),
        ("-1", "N", "exec")
    );
    let pubsub_clients = other.command(&["CLIENT", "LIST", "TYPE", "pubsub"]);
    assert_eq!(String::from_utf8_lossy(&pubsub_clients).matches("id=").count(), 1);
}

#[test]
fn client_unblock_ends_a_block_with_a_timeout_or_an_error() {
    let node = start_node(&[]);
    let mut blocked = ReplyReader::new(node.connect());
    let mut admin = ReplyReader::new(node.connect());
    let id = String::from_utf8_lossy(&blocked.command(&["CLIENT", "ID"])).trim()[1..].to_string();
    assert_eq!(
        integer(&admin.command(&["CLIENT", "UNBLOCK", &id])),
        0,
        "not blocked yet"
    );
    for (how, expected) in [
        ("TIMEOUT", &b"*-1\r\n"[..]),
        (
            "ERROR",
            &b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"[..],
        ),
    ] {
        send(&mut blocked, &["BLPOP", "nothing", "0"]);
        eventually("BLPOP to block", || {
            String::from_utf8_lossy(&admin.command(&["INFO", "clients"])).contains("blocked_clients:1")
        });
        assert_eq!(integer(&admin.command(&["CLIENT", "UNBLOCK", &id, how])), 1);
        assert_eq!(blocked.read_reply(), expected, "{how}");
        // The waiter is gone: a push later stays in the list.
        assert_eq!(integer(&admin.command(&["RPUSH", "nothing", "x"])), 1);
        admin.command(&["DEL", "nothing"]);
    }
    assert_eq!(&blocked.command(&["PING"]), b"+PONG\r\n");
}

#[test]
fn client_reply_off_and_skip_silence_replies() {
    let node = start_node(&[]);
    let mut c = ReplyReader::new(node.connect());
    send(&mut c, &["CLIENT", "REPLY", "OFF"]);
    send(&mut c, &["SET", "k", "1"]);
    send(&mut c, &["INCR", "k"]);
    assert_eq!(c.command(&["CLIENT", "REPLY", "ON"]), b"+OK\r\n");
    send(&mut c, &["CLIENT", "REPLY", "SKIP"]);
    send(&mut c, &["INCR", "k"]);
    assert_eq!(c.command(&["GET", "k"]), b"$1\r\n3\r\n");
}
