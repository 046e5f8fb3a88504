//! Streams on the real binary: blocking XREAD/XREADGROUP woken by XADD from another client,
//! one entry per consumer of a group, XGROUP DESTROY ending a blocked group read, and the
//! stream with its groups and pending entries surviving a crash and a rewrite of the log.
//! Every await runs under a timeout.

mod common;

use common::{cmd, flatten};

use common::{start_node, within, ServerProcess};
use redis::aio::MultiplexedConnection;
use std::path::PathBuf;
use std::time::{Duration, Instant};

async fn conn(node: &ServerProcess) -> MultiplexedConnection {
    common::conn(&node.url()).await
}

/// A connection on which blocking reads do not hit redis-rs's response timeout first.
async fn blocking_conn(node: &ServerProcess) -> MultiplexedConnection {
    let client = redis::Client::open(node.url()).expect("valid URL");
    within(client.get_multiplexed_async_connection())
        .await
        .expect("connect")
}

#[tokio::test]
async fn xread_block_is_woken_by_xadd_and_times_out_with_nil() {
    let node = start_node(&[]);
    let mut c = conn(&node).await;
    let mut reader = blocking_conn(&node).await;
    let waiting = tokio::spawn(async move {
        let v: redis::Value = cmd(&mut reader, &["XREAD", "BLOCK", "5000", "STREAMS", "s", "$"])
            .await
            .unwrap();
        flatten(&v)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id: String = cmd(&mut c, &["XADD", "s", "5-1", "f", "v"]).await.unwrap();
    assert_eq!(id, "5-1");
    let got = within(waiting).await.unwrap();
    assert_eq!(got, ["s", "5-1", "f", "v"]);
    let started = Instant::now();
    let v: redis::Value = cmd(&mut c, &["XREAD", "BLOCK", "100", "STREAMS", "s", "$"])
        .await
        .unwrap();
    assert_eq!(v, redis::Value::Nil, "a timed-out XREAD answers nil");
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "it waited for its timeout"
    );
}

/// Two consumers of one group blocked on `>`: each XADD goes to exactly one of them, and the
/// pending list says who holds what.
#[tokio::test]
async fn blocked_group_readers_each_get_different_entries() {
    let node = start_node(&[]);
    let mut c = conn(&node).await;
    let _: () = cmd(&mut c, &["XGROUP", "CREATE", "jobs", "workers", "$", "MKSTREAM"])
        .await
        .unwrap();
    let mut handles = Vec::new();
    for name in ["w1", "w2"] {
        let mut r = blocking_conn(&node).await;
        handles.push(tokio::spawn(async move {
            let v: redis::Value = cmd(
                &mut r,
                &[
                    "XREADGROUP",
                    "GROUP",
                    "workers",
                    name,
                    "COUNT",
                    "1",
                    "BLOCK",
                    "5000",
                    "STREAMS",
                    "jobs",
                    ">",
                ],
            )
            .await
            .unwrap();
            (name, flatten(&v))
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _: String = cmd(&mut c, &["XADD", "jobs", "1-1", "job", "a"]).await.unwrap();
    let _: String = cmd(&mut c, &["XADD", "jobs", "2-1", "job", "b"]).await.unwrap();
    let mut got = Vec::new();
    for h in handles {
        got.push(within(h).await.unwrap());
    }
    let mut ids: Vec<String> = got.iter().map(|(_, v)| v[1].clone()).collect();
    ids.sort();
    assert_eq!(ids, ["1-1", "2-1"], "each entry went to one reader: {got:?}");
    for (name, v) in &got {
        let pending: redis::Value = cmd(&mut c, &["XPENDING", "jobs", "workers", "-", "+", "10", name])
            .await
            .unwrap();
        let p = flatten(&pending);
        assert_eq!(p[0], v[1], "{name} holds what it read");
        assert_eq!(p[1], *name);
        assert_eq!(p[3], "1", "delivered once");
    }
}

#[tokio::test]
async fn destroying_the_group_ends_a_blocked_group_read() {
    let node = start_node(&[]);
    let mut c = conn(&node).await;
    let _: () = cmd(&mut c, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"])
        .await
        .unwrap();
    let mut r = blocking_conn(&node).await;
    let waiting = tokio::spawn(async move {
        cmd::<redis::Value>(
            &mut r,
            &["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let n: i64 = cmd(&mut c, &["XGROUP", "DESTROY", "s", "g"]).await.unwrap();
    assert_eq!(n, 1);
    let e = within(waiting)
        .await
        .unwrap()
        .expect_err("the read ends with an error");
    assert_eq!(e.code(), Some("NOGROUP"), "{e}");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autoscale-streams-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// What must survive: entries, id bookkeeping, groups, consumers, pending entries with their
/// owners, delivery times and counts (XINFO STREAM FULL without the consumers' seen times,
/// which a restart renews).
async fn fingerprint(c: &mut MultiplexedConnection) -> Vec<String> {
    let v: redis::Value = cmd(c, &["XINFO", "STREAM", "s", "FULL", "COUNT", "0"])
        .await
        .unwrap();
    let mut words = flatten(&v);
    while let Some(i) = words.iter().position(|w| w == "seen-time") {
        words.drain(i..i + 2);
    }
    let summary: redis::Value = cmd(c, &["XPENDING", "s", "g"]).await.unwrap();
    words.extend(flatten(&summary));
    words
}

/// A stream with two groups, consumers with and without pending entries, acknowledged,
/// claimed and deleted entries survives `kill -9` (the log holds effects: generated ids,
/// XCLAIMs, no XREADGROUP) and then a rewrite of the log and a restart.
#[tokio::test]
async fn streams_and_their_groups_survive_restarts_and_rewrites() {
    let dir = temp_dir("aof");
    let d = dir.to_string_lossy().into_owned();
    let args = [
        "--dir",
        d.as_str(),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let node = start_node(&args);
    let mut c = conn(&node).await;
    let _: String = cmd(&mut c, &["XADD", "s", "1-1", "f", "a"]).await.unwrap();
    let generated: String = cmd(&mut c, &["XADD", "s", "*", "f", "b"]).await.unwrap();
    for i in 0..5 {
        let _: String = cmd(
            &mut c,
            &["XADD", "s", "MAXLEN", "~", "1000", "*", "n", &i.to_string()],
        )
        .await
        .unwrap();
    }
    let _: () = cmd(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]).await.unwrap();
    let _: () = cmd(&mut c, &["XGROUP", "CREATE", "s", "late", "$"])
        .await
        .unwrap();
    let _: redis::Value = cmd(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "3",
            "STREAMS",
            "s",
            ">",
        ],
    )
    .await
    .unwrap();
    let _: redis::Value = cmd(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "bob",
            "COUNT",
            "2",
            "STREAMS",
            "s",
            ">",
        ],
    )
    .await
    .unwrap();
    let _: i64 = cmd(&mut c, &["XACK", "s", "g", "1-1"]).await.unwrap();
    let _: redis::Value = cmd(&mut c, &["XCLAIM", "s", "g", "carol", "0", &generated])
        .await
        .unwrap();
    let _: redis::Value = cmd(&mut c, &["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", "0"])
        .await
        .unwrap();
    let _: i64 = cmd(&mut c, &["XGROUP", "CREATECONSUMER", "s", "g", "idle"])
        .await
        .unwrap();
    let _: i64 = cmd(&mut c, &["XDEL", "s", "1-1"]).await.unwrap();
    let _: String = cmd(&mut c, &["XADD", "s", "*", "f", "undelivered"])
        .await
        .unwrap();
    let before = fingerprint(&mut c).await;
    assert!(before.iter().any(|w| w == "carol"), "{before:?}");
    drop(node);
    let text =
        String::from_utf8_lossy(&std::fs::read(dir.join("appendonly.aof")).expect("the log")).into_owned();
    assert!(
        !text.contains("\r\n*\r\n"),
        "generated ids are logged as ids: {text}"
    );
    assert!(
        !text.contains("XREADGROUP"),
        "group reads are logged as their effects: {text}"
    );
    assert!(text.contains("XCLAIM"), "{text}");

    let node = start_node(&args);
    let mut c = conn(&node).await;
    assert_eq!(fingerprint(&mut c).await, before, "after kill -9 and replay");
    let started: String = cmd(&mut c, &["BGREWRITEAOF"]).await.unwrap();
    assert_eq!(started, "Background append only file rewriting started");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = cmd(&mut c, &["INFO", "persistence"]).await.unwrap();
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_last_bgrewrite_status:ok") {
            break;
        }
        assert!(Instant::now() < deadline, "the rewrite did not finish: {info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(node);
    let text =
        String::from_utf8_lossy(&std::fs::read(dir.join("appendonly.aof")).expect("the log")).into_owned();
    assert!(
        text.contains("XSETID"),
        "the rewritten log rebuilds the stream: {text}"
    );

    let node = start_node(&args);
    let mut c = conn(&node).await;
    assert_eq!(fingerprint(&mut c).await, before, "after a rewrite and a restart");
    // The group carries on where it was: the undelivered entry is next.
    let v: redis::Value = cmd(&mut c, &["XREADGROUP", "GROUP", "g", "dave", "STREAMS", "s", ">"])
        .await
        .unwrap();
    assert!(flatten(&v).contains(&"undelivered".to_string()), "{v:?}");
    drop(node);
    let _ = std::fs::remove_dir_all(dir);
}
