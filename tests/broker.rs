//! Integration tests of the broker: the real binary on a free port, driven by redis-rs and by
//! raw bytes. Every await runs under a timeout.

mod common;

use common::cmd;

use common::{conn, start_node, within, ReplyReader, T};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn strings_keys_and_counters() {
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    let _: () = within(c.set("k", "v")).await.unwrap();
    let v: String = within(c.get("k")).await.unwrap();
    assert_eq!(v, "v");
    let n: i64 = within(c.incr("n", 5)).await.unwrap();
    assert_eq!(n, 5);
    let f: f64 = cmd(&mut c, &["INCRBYFLOAT", "n", "0.5"]).await.unwrap();
    assert!((f - 5.5).abs() < 1e-9);
    let _: () = cmd(&mut c, &["SET", "e", "x", "PX", "50"]).await.unwrap();
    let ttl: i64 = cmd(&mut c, &["PTTL", "e"]).await.unwrap();
    assert!(ttl > 0 && ttl <= 50);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let gone: Option<String> = within(c.get("e")).await.unwrap();
    assert_eq!(gone, None);
    cmd::<()>(&mut c, &["RENAME", "k", "k2"]).await.unwrap();
    let t: String = cmd(&mut c, &["TYPE", "k2"]).await.unwrap();
    assert_eq!(t, "string");
    let err = cmd::<i64>(&mut c, &["LPUSH", "k2", "x"]).await.unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
}

#[tokio::test]
async fn active_expiry_removes_keys_nobody_reads() {
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    for i in 0..50 {
        let _: () = cmd(&mut c, &["SET", &format!("tmp{i}"), "v", "PX", "30"])
            .await
            .unwrap();
    }
    let _: () = cmd(&mut c, &["SET", "keep", "v"]).await.unwrap();
    let start = Instant::now();
    loop {
        let n: i64 = cmd(&mut c, &["DBSIZE"]).await.unwrap();
        if n == 1 {
            break;
        }
        assert!(
            start.elapsed() < T,
            "expired keys were never removed (dbsize {n})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn scan_visits_every_key_once() {
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    for i in 0..250 {
        let _: () = cmd(&mut c, &["SET", &format!("key:{i}"), "v"]).await.unwrap();
    }
    let _: () = cmd(&mut c, &["RPUSH", "alist", "x"]).await.unwrap();
    let mut cursor = "0".to_string();
    let mut seen = std::collections::HashSet::new();
    loop {
        let (next, keys): (String, Vec<String>) =
            cmd(&mut c, &["SCAN", &cursor, "MATCH", "key:*", "COUNT", "17"])
                .await
                .unwrap();
        for k in keys {
            assert!(seen.insert(k.clone()), "{k} returned twice");
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 250);
    let (_, lists): (String, Vec<String>) = cmd(&mut c, &["SCAN", "0", "COUNT", "1000", "TYPE", "list"])
        .await
        .unwrap();
    assert_eq!(lists, vec!["alist".to_string()]);
}

#[tokio::test]
async fn blocking_pop_checks_keys_in_the_order_given() {
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    let _: () = cmd(&mut c, &["RPUSH", "b", "from-b"]).await.unwrap();
    let _: () = cmd(&mut c, &["RPUSH", "c", "from-c"]).await.unwrap();
    let got: (String, String) = cmd(&mut c, &["BLPOP", "a", "c", "b", "1.0"]).await.unwrap();
    assert_eq!(got, ("c".into(), "from-c".into()));
}

#[tokio::test]
async fn blocked_clients_are_served_first_come_first_served() {
    let node = start_node(&[]);
    let mut producer = conn(&node.url()).await;
    let mut handles = Vec::new();
    for i in 0..3 {
        let url = node.url();
        handles.push(tokio::spawn(async move {
            let mut c = conn(&url).await;
            let _: () = cmd(&mut c, &["CLIENT", "SETNAME", &format!("waiter{i}")])
                .await
                .unwrap();
            let v: (String, String) = cmd(&mut c, &["BRPOP", "jobs", "0"]).await.unwrap();
            v.1
        }));
        // Make the arrival order unambiguous.
        let start = Instant::now();
        loop {
            let info: String = cmd(&mut producer, &["INFO", "clients"]).await.unwrap();
            if info.contains(&format!("blocked_clients:{}", i + 1)) {
                break;
            }
            assert!(start.elapsed() < T);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // One push per waiter, in order; each element goes to exactly one waiter, oldest first.
    for job in ["j0", "j1", "j2"] {
        let _: () = cmd(&mut producer, &["LPUSH", "jobs", job]).await.unwrap();
    }
    let mut got = Vec::new();
    for h in handles {
        got.push(within(h).await.unwrap());
    }
    assert_eq!(got, vec!["j0", "j1", "j2"]);
    let left: i64 = cmd(&mut producer, &["LLEN", "jobs"]).await.unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn blocking_pop_times_out_and_connection_stays_usable() {
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    let start = Instant::now();
    let v: Option<(String, String)> = cmd(&mut c, &["BLPOP", "empty", "0.2"]).await.unwrap();
    assert_eq!(v, None);
    assert!(start.elapsed() >= Duration::from_millis(190));
    let pong: String = cmd(&mut c, &["PING"]).await.unwrap();
    assert_eq!(pong, "PONG");
    let e = cmd::<Value>(&mut c, &["BLPOP", "empty", "-1"]).await.unwrap_err();
    assert!(e.to_string().contains("timeout is negative"), "{e}");
    let e = cmd::<Value>(&mut c, &["BLPOP", "empty", "soon"])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("timeout is not a float"), "{e}");
}

#[tokio::test]
async fn push_wakes_a_blocked_client_immediately() {
    let node = start_node(&[]);
    let url = node.url();
    let waiter = tokio::spawn(async move {
        let mut c = conn(&url).await;
        let start = Instant::now();
        let v: (String, String) = cmd(&mut c, &["BLPOP", "wake", "0"]).await.unwrap();
        (v, start.elapsed())
    });
    let mut p = conn(&node.url()).await;
    wait_blocked(&mut p, 1).await;
    let _: () = cmd(&mut p, &["RPUSH", "wake", "now"]).await.unwrap();
    let ((key, value), _) = within(waiter).await.unwrap();
    assert_eq!((key.as_str(), value.as_str()), ("wake", "now"));
}

async fn wait_blocked(c: &mut MultiplexedConnection, n: usize) {
    let start = Instant::now();
    loop {
        let info: String = cmd(c, &["INFO", "clients"]).await.unwrap();
        if info.contains(&format!("blocked_clients:{n}\r")) {
            return;
        }
        assert!(start.elapsed() < T, "never saw {n} blocked clients: {info}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn push_inside_multi_exec_wakes_a_waiter() {
    let node = start_node(&[]);
    let url = node.url();
    let waiter = tokio::spawn(async move {
        let mut c = conn(&url).await;
        let v: (String, String) = cmd(&mut c, &["BLPOP", "txq", "0"]).await.unwrap();
        v.1
    });
    let mut p = conn(&node.url()).await;
    wait_blocked(&mut p, 1).await;
    let (n,): (i64,) = within(redis::pipe().atomic().lpush("txq", "in-tx").query_async(&mut p))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(within(waiter).await.unwrap(), "in-tx");
}

#[tokio::test]
async fn a_client_that_disconnects_while_blocked_consumes_nothing() {
    let node = start_node(&[]);
    // Raw socket so we control exactly when the connection dies.
    let mut raw = ReplyReader::new(node.connect());
    raw.send(b"*3\r\n$5\r\nBLPOP\r\n$4\r\ngone\r\n$1\r\n0\r\n");
    let mut p = conn(&node.url()).await;
    wait_blocked(&mut p, 1).await;
    drop(raw);
    wait_blocked(&mut p, 0).await;
    let _: () = cmd(&mut p, &["RPUSH", "gone", "kept"]).await.unwrap();
    let len: i64 = cmd(&mut p, &["LLEN", "gone"]).await.unwrap();
    assert_eq!(len, 1, "the element must stay in the list");
}

#[tokio::test]
async fn a_killed_blocked_client_consumes_nothing() {
    let node = start_node(&[]);
    let url = node.url();
    let victim = tokio::spawn(async move {
        let mut c = conn(&url).await;
        let _: () = cmd(&mut c, &["CLIENT", "SETNAME", "victim"]).await.unwrap();
        cmd::<Value>(&mut c, &["BLPOP", "killq", "0"]).await
    });
    let mut p = conn(&node.url()).await;
    wait_blocked(&mut p, 1).await;
    let list: String = cmd(&mut p, &["CLIENT", "LIST"]).await.unwrap();
    let id = list
        .lines()
        .find(|l| l.contains("name=victim"))
        .and_then(|l| l.split(' ').next())
        .and_then(|f| f.strip_prefix("id="))
        .expect("victim listed")
        .to_string();
    assert!(
        list.lines()
            .any(|l| l.contains("name=victim") && l.contains("flags=b")),
        "{list}"
    );
    let killed: i64 = cmd(&mut p, &["CLIENT", "KILL", "ID", &id]).await.unwrap();
    assert_eq!(killed, 1);
    assert!(
        within(victim).await.unwrap().is_err(),
        "killed client must see its connection drop"
    );
    let _: () = cmd(&mut p, &["RPUSH", "killq", "x"]).await.unwrap();
    let len: i64 = cmd(&mut p, &["LLEN", "killq"]).await.unwrap();
    assert_eq!(len, 1);
}

#[tokio::test]
async fn blmove_hands_each_element_to_exactly_one_consumer() {
    // Several runtime threads: connections really do race for the keyspace lock here.
    let node = start_node(&["--threads", "2"]);
    const ITEMS: usize = 600;
    let mut consumers = Vec::new();
    for w in 0..4 {
        let url = node.url();
        consumers.push(tokio::spawn(async move {
            let mut c = conn(&url).await;
            let processing = format!("proc:{w}");
            let mut got = Vec::new();
            loop {
                let v: Option<String> = cmd(&mut c, &["BLMOVE", "work", &processing, "RIGHT", "LEFT", "0.3"])
                    .await
                    .unwrap();
                match v {
                    Some(item) if item == "stop" => break,
                    Some(item) => {
                        let _: i64 = cmd(&mut c, &["LREM", &processing, "1", &item]).await.unwrap();
                        got.push(item);
                    }
                    None => {}
                }
            }
            got
        }));
    }
    let mut p = conn(&node.url()).await;
    for i in 0..ITEMS {
        let _: () = cmd(&mut p, &["LPUSH", "work", &i.to_string()]).await.unwrap();
    }
    for _ in 0..4 {
        let _: () = cmd(&mut p, &["LPUSH", "work", "stop"]).await.unwrap();
    }
    let mut all = Vec::new();
    for c in consumers {
        all.extend(within(c).await.unwrap());
    }
    all.sort_by_key(|s| s.parse::<usize>().unwrap());
    let expected: Vec<String> = (0..ITEMS).map(|i| i.to_string()).collect();
    assert_eq!(all, expected, "every element exactly once");
    let q: Value = cmd(&mut p, &["QSTATS", "work"]).await.unwrap();
    let text = format!("{q:?}");
    assert!(text.contains("popped_total"), "{text}");
}

#[tokio::test]
async fn multi_exec_and_watch() {
    let node = start_node(&[]);
    let mut a = conn(&node.url()).await;
    let mut b = conn(&node.url()).await;
    let (x, y): (i64, i64) = within(
        redis::pipe()
            .atomic()
            .incr("c", 1)
            .incr("c", 10)
            .query_async(&mut a),
    )
    .await
    .unwrap();
    assert_eq!((x, y), (1, 11));
    // A raw connection for WATCH, since the multiplexed one shares state.
    let mut w = ReplyReader::new(node.connect());
    assert_eq!(w.command(&["WATCH", "c"]), b"+OK\r\n");
    let _: () = cmd(&mut b, &["SET", "c", "changed"]).await.unwrap();
    assert_eq!(w.command(&["MULTI"]), b"+OK\r\n");
    assert_eq!(w.command(&["SET", "c", "mine"]), b"+QUEUED\r\n");
    assert_eq!(w.command(&["EXEC"]), b"*-1\r\n", "WATCH conflict aborts EXEC");
    let v: String = cmd(&mut b, &["GET", "c"]).await.unwrap();
    assert_eq!(v, "changed");
    assert_eq!(w.command(&["MULTI"]), b"+OK\r\n");
    assert_eq!(
        w.command(&["LPUSH"]),
        b"-ERR wrong number of arguments for 'lpush' command\r\n"
    );
    assert_eq!(
        w.command(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
}

#[tokio::test]
async fn resp3_replies() {
    let node = start_node(&[]);
    let mut r = ReplyReader::new(node.connect());
    let hello = r.command(&["HELLO", "3"]);
    assert!(hello.starts_with(b"%7\r\n"), "{}", common::show(&hello));
    assert_eq!(r.command(&["GET", "nothing"]), b"_\r\n");
    assert_eq!(r.command(&["BLPOP", "nothing", "0.01"]), b"_\r\n");
    assert_eq!(r.command(&["RPUSH", "q", "a"]), b":1\r\n");
    let cfg = r.command(&["CONFIG", "GET", "appendonly"]);
    assert_eq!(cfg, b"%1\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    let info = r.command(&["INFO", "queues"]);
    assert!(info.starts_with(b"="), "INFO is verbatim text in RESP3");
    let qs = r.command(&["QSTATS", "q"]);
    assert!(qs.starts_with(b"%1\r\n$1\r\nq\r\n%"), "{}", common::show(&qs));

    // redis-rs speaking RESP3 end to end.
    let mut c = conn(&format!("{}?protocol=resp3", node.url())).await;
    let _: () = cmd(&mut c, &["RPUSH", "r3", "x"]).await.unwrap();
    let v: Option<String> = cmd(&mut c, &["LPOP", "missing"]).await.unwrap();
    assert_eq!(v, None);
    let got: Vec<String> = cmd(&mut c, &["LRANGE", "r3", "0", "-1"]).await.unwrap();
    assert_eq!(got, vec!["x"]);
}

#[tokio::test]
async fn ten_thousand_pipelined_commands() {
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    let mut pipe = redis::pipe();
    for i in 0..10_000 {
        pipe.rpush("pipe", i);
    }
    let lens: Vec<i64> = within(pipe.query_async(&mut c)).await.unwrap();
    assert_eq!(lens, (1..=10_000).collect::<Vec<i64>>());
    // And the same as one raw write, replies in order.
    let mut raw = ReplyReader::new(node.connect());
    let mut bytes = Vec::new();
    for i in 0..10_000 {
        bytes.extend(common::encode_command(&[
            b"LINDEX".to_vec(),
            b"pipe".to_vec(),
            i.to_string().into_bytes(),
        ]));
    }
    raw.send(&bytes);
    for i in 0..10_000 {
        let want = format!("${}\r\n{}\r\n", i.to_string().len(), i);
        assert_eq!(raw.read_reply(), want.as_bytes());
    }
}

#[tokio::test]
async fn inline_commands_work() {
    let node = start_node(&[]);
    let mut raw = ReplyReader::new(node.connect());
    raw.send(b"PING\r\n");
    assert_eq!(raw.read_reply(), b"+PONG\r\n");
    raw.send(b"set greeting \"hello world\"\nget greeting\r\n");
    assert_eq!(raw.read_reply(), b"+OK\r\n");
    assert_eq!(raw.read_reply(), b"$11\r\nhello world\r\n");
}

#[tokio::test]
async fn malformed_input_closes_only_that_connection() {
    let node = start_node(&[]);
    let cases: &[(&[u8], &str)] = &[
        (b"*1\r\n$abc\r\n", "-ERR Protocol error: invalid bulk length\r\n"),
        (b"*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*2\r\n:1\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"),
        (b"*1\r\n$-3\r\n", "-ERR Protocol error: invalid bulk length\r\n"),
        (
            b"echo \"unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (input, expected) in cases {
        let mut raw = ReplyReader::new(node.connect());
        raw.send(input);
        assert_eq!(String::from_utf8_lossy(&raw.read_reply()), *expected);
        assert!(raw.closed(), "connection must close after a protocol error");
    }
    // A bulk length beyond proto-max-bulk-len is refused before any data is buffered.
    let mut raw = ReplyReader::new(node.connect());
    raw.send(b"*1\r\n$99999999999\r\n");
    assert_eq!(raw.read_reply(), b"-ERR Protocol error: invalid bulk length\r\n");
    // Random garbage never takes the server down.
    let mut seed = 0x2545F4914F6CDD1Du64;
    for _ in 0..50 {
        let mut raw = ReplyReader::new(node.connect());
        let mut junk = vec![b'*'];
        for _ in 0..64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push(b"*$:\r\n0123456789-+abc"[(seed % 20) as usize]);
        }
        raw.send(&junk);
        drop(raw);
    }
    let mut c = conn(&node.url()).await;
    let pong: String = cmd(&mut c, &["PING"]).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn requirepass_is_enforced() {
    let node = start_node(&["--requirepass", "s3cret"]);
    let mut raw = ReplyReader::new(node.connect());
    assert_eq!(
        raw.command(&["GET", "x"]),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert!(raw.command(&["AUTH", "wrong"]).starts_with(b"-WRONGPASS"));
    assert_eq!(raw.command(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert_eq!(raw.command(&["GET", "x"]), b"$-1\r\n");
    let mut c = conn(&format!("redis://:s3cret@{}/", node.addr())).await;
    let pong: String = cmd(&mut c, &["PING"]).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn queue_metrics_in_info_qstats_and_client_list() {
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    let _: () = cmd(&mut c, &["CLIENT", "SETNAME", "worker:7"]).await.unwrap();
    let _: () = cmd(&mut c, &["LPUSH", "wq", "a", "b", "c"]).await.unwrap();
    let _: String = cmd(&mut c, &["RPOP", "wq"]).await.unwrap();
    let _: Vec<String> = cmd(&mut c, &["RPOP", "wq", "2"]).await.unwrap();
    // Drained, then recreated: the counters carry on.
    let _: () = cmd(&mut c, &["LPUSH", "wq", "d"]).await.unwrap();
    let info: String = cmd(&mut c, &["INFO", "queues"]).await.unwrap();
    let line = info
        .lines()
        .find(|l| l.starts_with("queue_wq:"))
        .expect("queue line");
    assert!(line.contains("length=1,pushed_total=4,popped_total=3"), "{line}");
    assert!(line.contains("consumers=worker:7"), "{line}");
    let stats: std::collections::HashMap<String, std::collections::HashMap<String, String>> =
        cmd(&mut c, &["QSTATS", "wq"]).await.unwrap();
    assert_eq!(stats["wq"]["pushed_total"], "4");
    assert_eq!(stats["wq"]["length"], "1");
    let list: String = cmd(&mut c, &["CLIENT", "LIST"]).await.unwrap();
    assert!(list.contains("name=worker:7"), "{list}");
    let _: () = cmd(&mut c, &["QSTATS", "RESET", "wq"]).await.unwrap();
    let stats: std::collections::HashMap<String, std::collections::HashMap<String, String>> =
        cmd(&mut c, &["QSTATS", "wq"]).await.unwrap();
    assert_eq!(stats["wq"]["pushed_total"], "0");
    assert_eq!(stats["wq"]["length"], "1");
    // FLUSHALL forgets the queue with its list (nothing is blocked on it, nothing pinned it).
    let _: () = cmd(&mut c, &["FLUSHALL"]).await.unwrap();
    let info: String = cmd(&mut c, &["INFO", "queues"]).await.unwrap();
    assert!(!info.contains("queue_wq:"), "{info}");
    // A client blocked on a key keeps it listed through FLUSHALL, from zero.
    let mut blocked = conn(&node.url()).await;
    let waiter = tokio::spawn(async move {
        let _: Option<(String, String)> = cmd(&mut blocked, &["BLPOP", "bq", "5"]).await.unwrap();
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let info: String = cmd(&mut c, &["INFO", "queues"]).await.unwrap();
        if info.contains("queue_bq:") && info.contains("blocked_clients=1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{info}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _: () = cmd(&mut c, &["FLUSHALL"]).await.unwrap();
    let info: String = cmd(&mut c, &["INFO", "queues"]).await.unwrap();
    assert!(
        info.contains("queue_bq:kind=list,length=0,pushed_total=0"),
        "{info}"
    );
    let _: () = cmd(&mut c, &["RPUSH", "bq", "x"]).await.unwrap();
    within(waiter).await.unwrap();
}

#[tokio::test]
async fn info_has_the_fields_tools_read() {
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    let _: () = cmd(&mut c, &["SET", "a", "1"]).await.unwrap();
    let _ = cmd::<Value>(&mut c, &["LPUSH", "a", "x"]).await;
    let info: String = cmd(&mut c, &["INFO", "all"]).await.unwrap();
    for field in [
        "redis_version:",
        "connected_clients:",
        "blocked_clients:",
        "used_memory:",
        "total_commands_processed:",
        "db0:keys=1",
        "cmdstat_set:calls=1",
        "errorstat_WRONGTYPE:count=1",
        // The binary runs with mimalloc (as Redis reports its jemalloc).
        "mem_allocator:mimalloc\r\n",
    ] {
        assert!(info.contains(field), "INFO lacks {field}");
    }
    let n: i64 = cmd(&mut c, &["COMMAND", "COUNT"]).await.unwrap();
    assert!(n > 60);
    let docs: Value = cmd(&mut c, &["COMMAND", "DOCS", "lpush"]).await.unwrap();
    assert!(format!("{docs:?}").contains("element"));
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_cleanly() {
    let mut node = start_node(&[]);
    let _c = node.connect();
    let pid = node.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    loop {
        if let Some(s) = node.child.try_wait().unwrap() {
            assert!(s.success(), "exit status {s}");
            break;
        }
        assert!(start.elapsed() < T, "server did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}
