//! `INFO stats` as monitoring reads it, against redis-server 7.0: keyspace hits and misses and
//! `keymiss` events counted for the same lookups (command by command, on present, missing and
//! expired keys), and the traffic counters and rates that move with real traffic.

mod common;

use common::{have_redis_server, show, start_node, start_redis_server, ReplyReader, ServerProcess};
use std::time::Duration;

/// Keys every case starts from: one of each type, and one that has just expired.
const SETUP: &[&[&str]] = &[
    &["FLUSHALL"],
    &["SET", "s", "hello"],
    &["RPUSH", "l", "a", "b", "c"],
    &["HSET", "h", "f", "v"],
    &["SADD", "st", "m", "n"],
    &["ZADD", "z", "1", "m", "2", "n"],
    &["XADD", "x", "1-1", "f", "v"],
    &["SET", "gone", "v", "PX", "1"],
];

/// Each case runs alone after [`SETUP`]; `missing` never exists, `gone` has expired.
const CASES: &[&[&str]] = &[
    &["GET", "s"],
    &["GET", "missing"],
    &["GET", "gone"],
    &["MGET", "s", "missing", "s", "gone"],
    &["EXISTS", "s", "missing"],
    &["TYPE", "missing"],
    &["TTL", "missing"],
    &["PTTL", "s"],
    &["EXPIRETIME", "missing"],
    &["STRLEN", "missing"],
    &["GETRANGE", "s", "0", "1"],
    &["BITCOUNT", "s"],
    &["GETBIT", "missing", "0"],
    &["LRANGE", "l", "0", "-1"],
    &["LRANGE", "missing", "0", "-1"],
    &["LLEN", "l"],
    &["LINDEX", "missing", "0"],
    &["LPOS", "l", "a"],
    &["HGET", "h", "f"],
    &["HGETALL", "missing"],
    &["HLEN", "h"],
    &["HSCAN", "h", "0"],
    &["HRANDFIELD", "missing"],
    &["SMEMBERS", "st"],
    &["SISMEMBER", "missing", "m"],
    &["SMISMEMBER", "st", "m", "x"],
    &["SINTER", "st", "missing"],
    &["SUNION", "missing", "st"],
    &["SINTERCARD", "2", "st", "missing"],
    &["ZRANGE", "z", "0", "-1"],
    &["ZSCORE", "missing", "m"],
    &["ZUNION", "2", "z", "missing"],
    &["ZINTERCARD", "2", "missing", "z"],
    &["XRANGE", "x", "-", "+"],
    &["XLEN", "missing"],
    &["XREAD", "STREAMS", "x", "missing", "0", "0"],
    &["XREAD", "COUNT", "1", "STREAMS", "x", "x", "0", "5-0"],
    &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "missing", ">"],
    &["XREAD", "STREAMS", "x", "s", "0", "0"],
    &["XREADGROUP", "GROUP", "streams", "c", "STREAMS", "x", ">"],
    &["XREAD", "STREAMS", "x", "x", "0"],
    &["XACK", "x", "g", "1-1"],
    &["XACK", "missing", "g", "1-1"],
    &["XCLAIM", "x", "g", "c", "0", "1-1"],
    &["XAUTOCLAIM", "missing", "g", "c", "0", "0"],
    &["ZUNION", "5", "z", "missing"],
    &["ZUNION", "18446744073709551615", "z", "missing"],
    &["SINTERCARD", "3", "st", "missing"],
    &["XINFO", "STREAM", "missing"],
    &["OBJECT", "ENCODING", "missing"],
    &["OBJECT", "ENCODING", "s"],
    &["DUMP", "missing"],
    &["TOUCH", "s", "missing"],
    &["LCS", "s", "missing"],
    &["SORT_RO", "l", "ALPHA"],
    &["SORT", "missing"],
    &["SINTERSTORE", "dst", "st", "missing"],
    &["ZUNIONSTORE", "dst", "2", "z", "missing"],
    &["ZRANGESTORE", "dst", "z", "0", "-1"],
    &["BITOP", "AND", "dst", "s", "missing"],
    &["COPY", "missing", "dst"],
    &["COPY", "s", "dst"],
    &["GETDEL", "missing"],
    &["GETEX", "s"],
    &["GETSET", "missing", "v"],
    &["SET", "s", "v", "GET"],
    &["SET", "new", "v"],
    &["LPUSH", "missing", "x"],
    &["RPOPLPUSH", "missing", "l"],
    &["INCR", "missing"],
    &["DEL", "missing", "s"],
    &["EXPIRE", "missing", "10"],
    &["RENAME", "s", "s2"],
    &["APPEND", "missing", "x"],
    &["SADD", "st", "o"],
    &["RANDOMKEY"],
    &["DBSIZE"],
    &["KEYS", "*"],
    &["SCAN", "0"],
];

/// Field `name` of an INFO reply, as a number.
fn field(info: &[u8], name: &str) -> f64 {
    let text = String::from_utf8_lossy(info);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in INFO: {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// `keyspace_hits` and `keyspace_misses` from an INFO reply.
fn hits_and_misses(info: &[u8]) -> (u64, u64) {
    (
        field(info, "keyspace_hits") as u64,
        field(info, "keyspace_misses") as u64,
    )
}

/// What one case did to the counters and which `keymiss` events it published, on `server`.
fn observe(server: &ServerProcess, case: &[&str]) -> (u64, u64, Vec<String>, Vec<u8>) {
    let mut c = ReplyReader::new(server.connect());
    for cmd in SETUP {
        c.command(cmd);
    }
    // `gone` expires (1 ms) without being touched.
    std::thread::sleep(Duration::from_millis(5));
    c.command(&["CONFIG", "SET", "notify-keyspace-events", "Em"]);
    let mut events = ReplyReader::new(server.connect());
    events.command(&["SUBSCRIBE", "__keyevent@0__:keymiss"]);
    c.command(&["CONFIG", "RESETSTAT"]);
    let reply = c.command(case);
    let (hits, misses) = hits_and_misses(&c.command(&["INFO", "stats"]));
    // A PING on the subscribed connection is answered after the messages published before it.
    let ping = common::encode_command(&[b"PING".to_vec()]);
    events.send(&ping);
    let mut keys = Vec::new();
    loop {
        let r = events.read_reply();
        let shown = show(&r);
        assert!(!r.is_empty(), "the subscriber's connection closed");
        if shown.contains("pong") {
            break;
        }
        // *3 $7 message $22 __keyevent@0__:keymiss $N key
        let key = String::from_utf8_lossy(&r)
            .split("\r\n")
            .nth(6)
            .unwrap_or_default()
            .to_string();
        keys.push(key);
    }
    c.command(&["CONFIG", "SET", "notify-keyspace-events", ""]);
    (hits, misses, keys, reply)
}

#[test]
fn hits_misses_and_keymiss_events_match_redis_server() {
    if !have_redis_server() {
        return;
    }
    let redis = start_redis_server();
    let ours = start_node(&[]);
    let mut differences = Vec::new();
    let mut counted = 0;
    for case in CASES {
        let (rh, rm, re, rreply) = observe(&redis, case);
        let (oh, om, oe, oreply) = observe(&ours, case);
        counted += rh + rm;
        if (rh, rm, &re) != (oh, om, &oe) {
            differences.push(format!(
                "{case:?}: redis-server hits {rh} misses {rm} keymiss {re:?}; ours hits {oh} misses {om} keymiss {oe:?} (replies {} / {})",
                show(&rreply),
                show(&oreply)
            ));
        }
    }
    // The cases do look keys up (the comparison is not of zeros everywhere).
    assert!(counted > 50, "only {counted} lookups counted by redis-server");
    assert!(
        differences.is_empty(),
        "{} of {} cases differ:\n{}",
        differences.len(),
        CASES.len(),
        differences.join("\n")
    );
}

/// The traffic counters move with the bytes sent and received, the rates with recent traffic,
/// and CONFIG RESETSTAT clears them, as in redis-server.
#[test]
fn traffic_counters_and_rates_follow_the_traffic() {
    let node = start_node(&[]);
    let mut c = ReplyReader::new(node.connect());
    c.command(&["CONFIG", "RESETSTAT"]);
    let before = c.command(&["INFO", "stats"]);
    // 2,000 SETs of 1 KB: about 2 MB in, 10 KB out, in well under a second.
    let value = "v".repeat(1024);
    let mut batch = Vec::new();
    for i in 0..2000 {
        batch.extend(common::encode_command(&[
            b"SET".to_vec(),
            format!("k{i}").into_bytes(),
            value.as_bytes().to_vec(),
        ]));
    }
    c.send(&batch);
    for _ in 0..2000 {
        assert_eq!(c.read_reply(), b"+OK\r\n");
    }
    let after = c.command(&["INFO", "stats"]);
    let input = field(&after, "total_net_input_bytes") - field(&before, "total_net_input_bytes");
    let output = field(&after, "total_net_output_bytes") - field(&before, "total_net_output_bytes");
    assert!(
        (batch.len() as f64..batch.len() as f64 + 1000.0).contains(&input),
        "input grew by {input}, {} bytes were sent",
        batch.len()
    );
    // 2,000 "+OK\r\n" and the first INFO's reply.
    assert!(output >= 10_000.0, "output grew by {output}");
    assert!(field(&after, "total_reads_processed") >= 1.0);
    assert!(field(&after, "total_writes_processed") >= 2.0);
    // The rates are sampled every 100 ms and averaged over the last 16 samples: the burst
    // shows within a sample or two (polled, for a loaded machine) and stays for 1.6 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let sampled = loop {
        let info = c.command(&["INFO", "stats"]);
        if field(&info, "instantaneous_ops_per_sec") > 0.0 {
            break info;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rate after the burst: {}",
            show(&info)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        field(&sampled, "instantaneous_input_kbps") > 0.0,
        "{}",
        show(&sampled)
    );
    c.command(&["CONFIG", "RESETSTAT"]);
    let reset = c.command(&["INFO", "stats"]);
    assert!(field(&reset, "total_net_input_bytes") < 200.0, "{}", show(&reset));
    assert_eq!(field(&reset, "keyspace_hits"), 0.0);
}

/// The fields Redis dashboards and exporters read are there, with redis-server's values where
/// the two must agree (the machine's memory, the clocks, no cluster).
#[test]
fn info_has_the_fields_dashboards_read() {
    if !have_redis_server() {
        return;
    }
    let redis = start_redis_server();
    let ours = start_node(&[]);
    let theirs = ReplyReader::new(redis.connect()).command(&["INFO"]);
    let mine = ReplyReader::new(ours.connect()).command(&["INFO"]);
    for name in [
        "uptime_in_seconds",
        "connected_clients",
        "blocked_clients",
        "used_memory",
        "used_memory_rss",
        "used_memory_peak",
        "maxmemory",
        "total_commands_processed",
        "instantaneous_ops_per_sec",
        "total_net_input_bytes",
        "total_net_output_bytes",
        "expired_keys",
        "evicted_keys",
        "keyspace_hits",
        "keyspace_misses",
        "connected_slaves",
        "rdb_changes_since_last_save",
        "used_cpu_sys",
        "used_cpu_user",
    ] {
        field(&mine, name);
    }
    for name in ["total_system_memory", "configured_hz", "cluster_enabled"] {
        assert_eq!(field(&mine, name), field(&theirs, name), "{name}");
    }
    assert!((field(&mine, "lru_clock") - field(&theirs, "lru_clock")).abs() <= 3.0);
    let micros = (field(&mine, "server_time_usec") - field(&theirs, "server_time_usec")).abs();
    assert!(micros < 5e6, "server_time_usec {micros} µs apart");
    let text = String::from_utf8_lossy(&mine);
    for human in [
        "used_memory_rss_human:",
        "used_memory_peak_human:",
        "total_system_memory_human:",
    ] {
        assert!(text.contains(human), "{human} missing");
    }
}
