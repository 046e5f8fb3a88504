//! SLOWLOG, LATENCY, LASTSAVE and WAIT on the real binary, beside redis-server where the
//! reply carries clocks, durations or ports the differential test cannot compare byte for byte:
//! entries are compared with their clocks left out.

mod common;

use common::{have_redis_server, start_node, start_redis_server, ServerProcess, IO_TIMEOUT};
use redis::Value;
use std::time::{Duration, Instant};

fn connect(server: &ServerProcess) -> redis::Connection {
    let client = redis::Client::open(server.url()).expect("url");
    let c = client.get_connection_with_timeout(IO_TIMEOUT).expect("connect");
    c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    c.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    c
}

fn run<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<T> {
    let mut command = redis::cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    command.query(c)
}

/// A slow-log entry without its clocks: id, arguments, client address, client name.
type Entry = (i64, Vec<Vec<u8>>, String, String);

/// A slow-log entry as SLOWLOG GET sends it: id, time, duration, arguments, address, name.
type RawEntry = (i64, i64, i64, Vec<Vec<u8>>, String, String);

fn slowlog(c: &mut redis::Connection) -> Vec<Entry> {
    let raw: Vec<RawEntry> = run(c, &["SLOWLOG", "GET", "-1"]).expect("slowlog get");
    raw.into_iter()
        .map(|(id, time, duration, args, addr, name)| {
            assert!(time > 1_600_000_000, "unix seconds: {time}");
            assert!(duration >= 0);
            (id, args, addr, name)
        })
        .collect()
}

/// Runs the same commands on `server` and returns its slow log (oldest first) without ids.
fn slow_commands(server: &ServerProcess) -> Vec<(Vec<Vec<u8>>, String, String)> {
    let mut c = connect(server);
    let _: () = run(&mut c, &["CLIENT", "SETNAME", "app"]).expect("setname");
    let _: () = run(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]).expect("config");
    let _: () = run(&mut c, &["SLOWLOG", "RESET"]).expect("reset");
    let long = "x".repeat(200);
    let _: () = run(&mut c, &["SET", "k", &long]).expect("set");
    let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let mut rpush = vec!["RPUSH", "l"];
    rpush.extend(many.iter().map(String::as_str));
    let _: i64 = run(&mut c, &rpush).expect("rpush");
    let _: i64 = run(&mut c, &["EVAL", "return redis.call('incr', KEYS[1])", "1", "n"]).expect("eval");
    assert!(run::<()>(&mut c, &["AUTH", "secret"]).is_err());
    assert!(run::<()>(&mut c, &["HELLO", "2", "AUTH", "user", "secret"]).is_err());
    let _: () = run(&mut c, &["CONFIG", "SET", "requirepass", ""]).expect("config");
    let entries = slowlog(&mut c);
    // Newest first, ids one apart.
    for pair in entries.windows(2) {
        assert_eq!(pair[0].0, pair[1].0 + 1, "{entries:?}");
    }
    let local = format!("127.0.0.1:{}", c_local_port(&mut c));
    let mut out: Vec<_> = entries
        .into_iter()
        .rev()
        .map(|(_, args, addr, name)| {
            // The client's own address, or none for a script's commands.
            if addr != "?:0" {
                assert_eq!(addr, local);
            }
            (args, addr.replace(&local, "client"), name)
        })
        .collect();
    let _: () = run(&mut c, &["CONFIG", "SET", "slowlog-max-len", "2"]).expect("config");
    let _: () = run(&mut c, &["PING"]).expect("ping");
    let len: i64 = run(&mut c, &["SLOWLOG", "LEN"]).expect("len");
    assert_eq!(len, 2, "a shorter log keeps its newest entries");
    let _: () = run(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "-1"]).expect("config");
    let _: () = run(&mut c, &["SLOWLOG", "RESET"]).expect("reset");
    let _: () = run(&mut c, &["PING"]).expect("ping");
    let len: i64 = run(&mut c, &["SLOWLOG", "LEN"]).expect("len");
    assert_eq!(len, 0, "a negative threshold logs nothing");
    out.retain(|(args, _, _)| args.first().is_none_or(|a| a != b"CLIENT"));
    out
}

/// This connection's local port, from CLIENT INFO's `addr=`.
fn c_local_port(c: &mut redis::Connection) -> u16 {
    let info: String = run(c, &["CLIENT", "INFO"]).expect("client info");
    let addr = info
        .split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .expect("addr field");
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

#[test]
fn slowlog_entries_hold_arguments_shortened_redacted_and_their_client() {
    let node = start_node(&[]);
    let ours = slow_commands(&node);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let set = ours.iter().find(|(a, _, _)| a[0] == b"SET").expect("SET logged");
    assert_eq!(set.0.len(), 3);
    assert_eq!(text(&set.0[2]), format!("{}... (72 more bytes)", "x".repeat(128)));
    assert_eq!((set.1.as_str(), set.2.as_str()), ("client", "app"));
    let rpush = ours
        .iter()
        .find(|(a, _, _)| a[0] == b"RPUSH")
        .expect("RPUSH logged");
    assert_eq!(rpush.0.len(), 32);
    assert_eq!(text(&rpush.0[31]), "... (11 more arguments)");
    let incr = ours
        .iter()
        .find(|(a, _, _)| a[0] == b"incr")
        .expect("script command logged");
    assert_eq!((incr.1.as_str(), incr.2.as_str()), ("?:0", ""));
    let auth = ours
        .iter()
        .find(|(a, _, _)| a[0] == b"AUTH")
        .expect("AUTH logged");
    assert_eq!(auth.0[1], b"(redacted)");
    if have_redis_server() {
        let theirs = slow_commands(&start_redis_server());
        assert_eq!(ours, theirs, "the same entries as redis-server");
    }
}

#[test]
fn lastsave_is_the_start_when_nothing_was_ever_saved() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let node = start_node(&[]);
    let mut c = connect(&node);
    let last: i64 = run(&mut c, &["LASTSAVE"]).expect("lastsave");
    let info: String = run(&mut c, &["INFO", "persistence"]).expect("info");
    let shown: i64 = info
        .lines()
        .find_map(|l| l.strip_prefix("rdb_last_save_time:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("rdb_last_save_time");
    assert_eq!(last, shown);
    assert!(last >= before && last <= before + 60, "{last} vs {before}");
}

/// WAIT for a replica that never comes: only the waiting client waits, for its timeout, and
/// CLIENT UNBLOCK ends a wait without one (0 replicas, or -UNBLOCKED).
fn wait_behaviour(server: &ServerProcess) -> Vec<String> {
    let mut waiting = connect(server);
    let mut other = connect(server);
    let start = Instant::now();
    let acked: i64 = run(&mut waiting, &["WAIT", "1", "200"]).expect("wait");
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "WAIT returned before its timeout"
    );
    let mut out = vec![format!("timeout: {acked}")];
    let id: i64 = run(&mut waiting, &["CLIENT", "ID"]).expect("id");
    for how in ["TIMEOUT", "ERROR"] {
        let handle = {
            let url = server.url();
            std::thread::spawn(move || {
                let client = redis::Client::open(url).expect("url");
                let mut c = client.get_connection_with_timeout(IO_TIMEOUT).expect("connect");
                c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                match run::<i64>(&mut c, &["WAIT", "1", "0"]) {
                    Ok(n) => format!("{how}: {n}"),
                    Err(e) => format!("{how}: {}", e.code().unwrap_or("?")),
                }
            })
        };
        // Meanwhile the server answers everyone else; the waiter shows up as blocked.
        let deadline = Instant::now() + IO_TIMEOUT;
        let target = loop {
            let _: () = run(&mut other, &["PING"]).expect("ping");
            let list: String = run(&mut other, &["CLIENT", "LIST"]).expect("client list");
            let blocked = list
                .lines()
                .find(|l| l.contains("cmd=wait") && l.contains("flags=b"))
                .and_then(|l| l.strip_prefix("id="))
                .and_then(|l| l.split(' ').next())
                .and_then(|n| n.parse::<i64>().ok());
            if let Some(t) = blocked {
                break t;
            }
            assert!(
                Instant::now() < deadline,
                "the WAIT client never showed as blocked"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_ne!(target, id);
        let done: i64 = run(&mut other, &["CLIENT", "UNBLOCK", &target.to_string(), how]).expect("unblock");
        assert_eq!(done, 1);
        out.push(handle.join().expect("waiter thread"));
    }
    out
}

#[test]
fn wait_blocks_only_its_client_until_timeout_or_unblock() {
    let node = start_node(&[]);
    let ours = wait_behaviour(&node);
    assert_eq!(ours, ["timeout: 0", "TIMEOUT: 0", "ERROR: UNBLOCKED"]);
    if have_redis_server() {
        assert_eq!(ours, wait_behaviour(&start_redis_server()));
    }
}

/// Runs a script that keeps the server busy for `ms` milliseconds (reading TIME).
fn busy(c: &mut redis::Connection, ms: u64) {
    let script = "local t = redis.call('time') local start = t[1] * 1000000 + t[2] \
                  repeat t = redis.call('time') until t[1] * 1000000 + t[2] - start >= tonumber(ARGV[1]) * 1000 \
                  return 1";
    let _: i64 = run(c, &["EVAL", script, "0", &ms.to_string()]).expect("busy script");
}

/// The latency monitor's events after a 30 ms command with the threshold at 5 ms, and what
/// LATENCY RESET answers; latencies are checked, then left out.
fn latency_events(server: &ServerProcess) -> (Vec<String>, i64) {
    let mut c = connect(server);
    let _: () = run(&mut c, &["CONFIG", "SET", "latency-monitor-threshold", "5"]).expect("config");
    busy(&mut c, 30);
    let latest: Vec<(String, i64, i64, i64)> = run(&mut c, &["LATENCY", "LATEST"]).expect("latest");
    let history: Vec<(i64, i64)> = run(&mut c, &["LATENCY", "HISTORY", "command"]).expect("history");
    assert_eq!(history.len(), 1, "{history:?}");
    for (name, time, last, max) in &latest {
        assert!(*last >= 30 && max >= last, "{name}: {last} {max}");
        assert_eq!((*time, *last), history[0], "LATEST's sample is HISTORY's");
    }
    let reset: i64 = run(&mut c, &["LATENCY", "RESET"]).expect("reset");
    let after: Vec<Value> = run(&mut c, &["LATENCY", "LATEST"]).expect("latest");
    assert!(after.is_empty());
    (latest.into_iter().map(|e| e.0).collect(), reset)
}

#[test]
fn latency_monitor_records_commands_over_its_threshold() {
    let node = start_node(&[]);
    let ours = latency_events(&node);
    assert_eq!(ours, (vec!["command".to_string()], 1));
    if have_redis_server() {
        assert_eq!(ours, latency_events(&start_redis_server()));
    }
}

/// LATENCY HISTOGRAM after three SETs: the map's shape, with the bucket labels checked against
/// the ones Redis prints and the counts cumulative up to the calls.
fn histogram_of_set(server: &ServerProcess) -> Vec<String> {
    let mut c = connect(server);
    let _: () = run(&mut c, &["CONFIG", "RESETSTAT"]).expect("resetstat");
    for i in 0..3 {
        let _: () = run(&mut c, &["SET", "k", &i.to_string()]).expect("set");
    }
    let reply: Value = run(&mut c, &["LATENCY", "HISTOGRAM", "set", "nosuchcommand"]).expect("histogram");
    let Value::Array(top) = reply else {
        panic!("RESP2 map as a flat array: {reply:?}")
    };
    let mut shape = Vec::new();
    for pair in top.chunks(2) {
        let (Value::BulkString(name), Value::Array(fields)) = (&pair[0], &pair[1]) else {
            panic!("{pair:?}")
        };
        shape.push(String::from_utf8_lossy(name).into_owned());
        for f in fields.chunks(2) {
            match (&f[0], &f[1]) {
                (Value::BulkString(k), Value::Int(n)) if k == b"calls" => {
                    assert_eq!(*n, 3);
                    shape.push("calls".into());
                }
                (Value::BulkString(k), Value::Array(buckets)) if k == b"histogram_usec" => {
                    shape.push("histogram_usec".into());
                    let labels: Vec<i64> = (0..21)
                        .map(|k| ((1024i64 << k) + (8i64 << k) - 1) / 1000)
                        .collect();
                    let mut last = (0, 0);
                    for b in buckets.chunks(2) {
                        let (Value::Int(label), Value::Int(count)) = (&b[0], &b[1]) else {
                            panic!("{b:?}")
                        };
                        assert!(labels.contains(label), "bucket label {label}");
                        assert!(*label > last.0 && *count > last.1, "ascending, cumulative");
                        last = (*label, *count);
                    }
                    assert_eq!(last.1, 3);
                }
                other => panic!("unexpected field {other:?}"),
            }
        }
    }
    shape
}

#[test]
fn latency_histogram_has_redis_shape_and_buckets() {
    let node = start_node(&[]);
    let ours = histogram_of_set(&node);
    assert_eq!(ours, ["set", "calls", "histogram_usec"]);
    if have_redis_server() {
        assert_eq!(ours, histogram_of_set(&start_redis_server()));
    }
}

type QueueStats = std::collections::HashMap<String, std::collections::HashMap<String, String>>;

/// The `length` QSTATS reports for `key` in the connection's database, if it lists the key.
fn queue_length(c: &mut redis::Connection, key: &str) -> Option<String> {
    let stats: QueueStats = run(c, &["QSTATS", key]).expect("qstats");
    stats.get(key).and_then(|s| s.get("length")).cloned()
}

#[test]
fn a_list_moved_or_swapped_to_another_database_is_counted_there() {
    let node = start_node(&[]);
    let mut c = connect(&node);
    let _: i64 = run(&mut c, &["RPUSH", "q", "a", "b", "c"]).expect("rpush");
    assert_eq!(queue_length(&mut c, "q").as_deref(), Some("3"));
    let moved: i64 = run(&mut c, &["MOVE", "q", "1"]).expect("move");
    assert_eq!(moved, 1);
    assert_ne!(
        queue_length(&mut c, "q").as_deref(),
        Some("3"),
        "db 0 lost the list"
    );
    let _: () = run(&mut c, &["SELECT", "1"]).expect("select");
    assert_eq!(queue_length(&mut c, "q").as_deref(), Some("3"), "db 1 counts it");
    let _: String = run(&mut c, &["LPOP", "q"]).expect("lpop");
    assert_eq!(queue_length(&mut c, "q").as_deref(), Some("2"));
    // Both sides hold a list named q: each takes the other database's counters.
    let _: () = run(&mut c, &["SELECT", "0"]).expect("select");
    let _: i64 = run(&mut c, &["RPUSH", "q", "x"]).expect("rpush");
    let _: () = run(&mut c, &["SWAPDB", "0", "1"]).expect("swapdb");
    assert_eq!(queue_length(&mut c, "q").as_deref(), Some("2"));
    let _: () = run(&mut c, &["SELECT", "1"]).expect("select");
    assert_eq!(queue_length(&mut c, "q").as_deref(), Some("1"));
    let _: i64 = run(&mut c, &["RPUSH", "q", "y"]).expect("rpush");
    assert_eq!(queue_length(&mut c, "q").as_deref(), Some("2"));
    let _: () = run(&mut c, &["SELECT", "0"]).expect("select");
    let _: String = run(&mut c, &["RPOP", "q"]).expect("rpop");
    assert_eq!(queue_length(&mut c, "q").as_deref(), Some("1"));
}

/// A fresh directory for one test's append-only file.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("autoscale-admin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// Reads every database's keys, values and whether they expire (sorted), for comparing.
fn dump_dbs(c: &mut redis::Connection) -> Vec<(usize, String, String, bool)> {
    let mut out = Vec::new();
    for db in 0..4 {
        let _: () = run(c, &["SELECT", &db.to_string()]).expect("select");
        let keys: Vec<String> = run(c, &["KEYS", "*"]).expect("keys");
        for k in keys {
            let kind: String = run(c, &["TYPE", &k]).expect("type");
            let value = match kind.as_str() {
                "string" => run::<String>(c, &["GET", &k]).expect("get"),
                "list" => run::<Vec<String>>(c, &["LRANGE", &k, "0", "-1"])
                    .expect("lrange")
                    .join(","),
                other => other.to_string(),
            };
            let ttl: i64 = run(c, &["PTTL", &k]).expect("pttl");
            out.push((db, k, value, ttl > 0));
        }
    }
    out.sort();
    out
}

#[test]
fn moves_and_swaps_survive_a_restart_and_a_rewrite() {
    let dir = temp_dir("aof");
    let dir_arg = dir.to_string_lossy().into_owned();
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        &dir_arg,
    ];
    let node = start_node(&args);
    let mut c = connect(&node);
    let _: () = run(&mut c, &["SET", "k", "v", "EX", "1000"]).expect("set");
    let _: i64 = run(&mut c, &["RPUSH", "l", "a", "b"]).expect("rpush");
    let _: () = run(&mut c, &["SET", "stay", "0"]).expect("set");
    let _: i64 = run(&mut c, &["MOVE", "k", "1"]).expect("move");
    let _: i64 = run(&mut c, &["MOVE", "l", "2"]).expect("move");
    let _: () = run(&mut c, &["SWAPDB", "0", "2"]).expect("swapdb");
    let _: () = run(&mut c, &["SWAPDB", "1", "3"]).expect("swapdb");
    let before = dump_dbs(&mut c);
    assert_eq!(
        before,
        [
            (0, "l".to_string(), "a,b".to_string(), false),
            (2, "stay".to_string(), "0".to_string(), false),
            (3, "k".to_string(), "v".to_string(), true),
        ]
    );
    drop(c);
    drop(node);
    let node = start_node(&args);
    let mut c = connect(&node);
    assert_eq!(dump_dbs(&mut c), before, "replayed from the log");
    let _: String = run(&mut c, &["BGREWRITEAOF"]).expect("rewrite");
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let info: String = run(&mut c, &["INFO", "persistence"]).expect("info");
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrites:1") {
            break;
        }
        assert!(Instant::now() < deadline, "the rewrite did not finish: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(c);
    drop(node);
    let node = start_node(&args);
    let mut c = connect(&node);
    assert_eq!(dump_dbs(&mut c), before, "loaded from the rewritten log");
    drop(node);
    let _ = std::fs::remove_dir_all(dir);
}

/// The commands in the slow log (oldest first) after a BLPOP that timed out and one that was
/// served by an RPUSH from another client.
fn blocked_in_slowlog(server: &ServerProcess) -> Vec<String> {
    let mut c = connect(server);
    let mut other = connect(server);
    let _: () = run(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]).expect("config");
    let _: () = run(&mut c, &["SLOWLOG", "RESET"]).expect("reset");
    let none: Option<Vec<String>> = run(&mut c, &["BLPOP", "nothing", "0.05"]).expect("blpop");
    assert_eq!(none, None);
    let url = server.url();
    let waiter = std::thread::spawn(move || {
        let client = redis::Client::open(url).expect("url");
        let mut c = client.get_connection_with_timeout(IO_TIMEOUT).expect("connect");
        c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        run::<Vec<String>>(&mut c, &["BLPOP", "bq", "0"]).expect("blpop")
    });
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let list: String = run(&mut other, &["CLIENT", "LIST"]).expect("client list");
        if list
            .lines()
            .any(|l| l.contains("cmd=blpop") && l.contains("flags=b"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "BLPOP never blocked");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _: i64 = run(&mut other, &["RPUSH", "bq", "x"]).expect("rpush");
    assert_eq!(waiter.join().expect("waiter"), ["bq", "x"]);
    let entries = slowlog(&mut c);
    let _: () = run(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "10000"]).expect("config");
    entries
        .into_iter()
        .rev()
        .map(|(_, args, _, _)| {
            args.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|line| !line.starts_with("CLIENT"))
        .collect()
}

#[test]
fn a_blocking_command_is_logged_once_served_and_not_when_it_times_out() {
    let node = start_node(&[]);
    let ours = blocked_in_slowlog(&node);
    assert_eq!(ours, ["SLOWLOG RESET", "RPUSH bq x", "BLPOP bq 0"]);
    if have_redis_server() {
        assert_eq!(ours, blocked_in_slowlog(&start_redis_server()));
    }
}
