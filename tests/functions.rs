//! Libraries of functions on the real binary: kept across restarts and rewrites of the
//! append-only file, FUNCTION DUMP payloads exchanged with redis-server both ways, and a
//! library or function that never returns stopped without taking the server with it. Every
//! await runs under a timeout.

mod common;

use common::{have_redis_server, start_node, start_redis_server, within, ServerProcess, IO_TIMEOUT};
use redis::aio::MultiplexedConnection;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autoscale-functions-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

async fn conn(server: &ServerProcess) -> MultiplexedConnection {
    common::conn(&server.url()).await
}

async fn run<T: redis::FromRedisValue>(
    c: &mut MultiplexedConnection,
    args: &[&[u8]],
) -> redis::RedisResult<T> {
    let mut command = redis::cmd(std::str::from_utf8(args[0]).expect("command name"));
    for a in &args[1..] {
        command.arg(*a);
    }
    within(command.query_async(c)).await
}

/// The library names FUNCTION LIST reports, sorted.
async fn library_names(c: &mut MultiplexedConnection) -> Vec<String> {
    let list: redis::Value = run(c, &[b"FUNCTION", b"LIST"]).await.expect("FUNCTION LIST");
    let mut names = Vec::new();
    if let redis::Value::Array(libs) = list {
        for lib in libs {
            let fields: Vec<redis::Value> = match lib {
                redis::Value::Array(f) => f,
                redis::Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => panic!("a library is not a map: {other:?}"),
            };
            for pair in fields.chunks(2) {
                if let [redis::Value::BulkString(k), redis::Value::BulkString(v)] = pair {
                    if k == b"library_name" {
                        names.push(String::from_utf8_lossy(v).into_owned());
                    }
                }
            }
        }
    }
    names.sort();
    names
}

fn library(name: &str, function: &str, body: &str) -> String {
    format!("#!lua name={name}\nredis.register_function('{function}', function(keys, args) {body} end)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libraries_survive_restarts_and_rewrites_of_the_append_only_file() {
    let dir = temp_dir("aof");
    let dir_arg = dir.to_string_lossy().into_owned();
    let args = [
        "--dir",
        &dir_arg,
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let node = start_node(&args);
    let mut c = conn(&node).await;
    let writer = library("jobs", "enqueue", "return redis.call('RPUSH', keys[1], args[1])");
    let gone = library("gone", "vanish", "return 1");
    let kept = library("kept", "answer", "return 42");
    for code in [&writer, &gone, &kept] {
        let _: String = run(&mut c, &[b"FUNCTION", b"LOAD", code.as_bytes()])
            .await
            .unwrap();
    }
    let _: () = run(&mut c, &[b"FUNCTION", b"DELETE", b"gone"]).await.unwrap();
    let len: i64 = run(&mut c, &[b"FCALL", b"enqueue", b"1", b"q", b"job-1"])
        .await
        .unwrap();
    assert_eq!(len, 1);
    // A reset as Redis's own test suite does it: the keys go, the libraries stay.
    let _: () = run(&mut c, &[b"FLUSHALL"]).await.unwrap();
    let len: i64 = run(&mut c, &[b"FCALL", b"enqueue", b"1", b"q", b"job-2"])
        .await
        .unwrap();
    assert_eq!(len, 1);
    drop(node);
    let log = String::from_utf8_lossy(&std::fs::read(dir.join("appendonly.aof")).unwrap()).into_owned();
    assert!(log.contains("FUNCTION"), "library changes are logged: {log}");
    assert!(
        !log.to_lowercase().contains("fcall"),
        "a call is logged as its effects: {log}"
    );

    let node = start_node(&args);
    let mut c = conn(&node).await;
    assert_eq!(library_names(&mut c).await, ["jobs", "kept"]);
    let answer: i64 = run(&mut c, &[b"FCALL", b"answer", b"0"]).await.unwrap();
    assert_eq!(answer, 42);
    let queue: Vec<String> = run(&mut c, &[b"LRANGE", b"q", b"0", b"-1"]).await.unwrap();
    assert_eq!(queue, ["job-2"]);

    // A rewrite loads the libraries again before the keys.
    let _: String = run(&mut c, &[b"BGREWRITEAOF"]).await.unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let info: String = run(&mut c, &[b"INFO", b"persistence"]).await.unwrap();
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_last_bgrewrite_status:ok") {
            break;
        }
        assert!(Instant::now() < deadline, "the rewrite did not finish: {info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(node);
    let node = start_node(&args);
    let mut c = conn(&node).await;
    assert_eq!(library_names(&mut c).await, ["jobs", "kept"]);
    let len: i64 = run(&mut c, &[b"FCALL", b"enqueue", b"1", b"q", b"job-3"])
        .await
        .unwrap();
    assert_eq!(len, 2);

    // FUNCTION FLUSH is kept too.
    let _: () = run(&mut c, &[b"FUNCTION", b"FLUSH"]).await.unwrap();
    drop(node);
    let node = start_node(&args);
    let mut c = conn(&node).await;
    assert!(library_names(&mut c).await.is_empty());
    drop(node);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_payloads_restore_here_and_in_redis_server() {
    if !have_redis_server() {
        eprintln!("skipped: redis-server is not installed");
        return;
    }
    let ours = start_node(&[]);
    let theirs = start_redis_server();
    let mut a = conn(&ours).await;
    let mut b = conn(&theirs).await;
    // Long enough for redis-server to compress it (LZF) in its payload.
    let filler = "local padding = 'abcdefghij abcdefghij abcdefghij abcdefghij'";
    let theirs_code = format!(
        "{}\n{filler}",
        library("fromredis", "theirs", "return 'from redis'")
    );
    let ours_code = format!("{}\n{filler}", library("fromus", "ours", "return 'from us'"));
    let _: String = run(&mut b, &[b"FUNCTION", b"LOAD", theirs_code.as_bytes()])
        .await
        .unwrap();
    let _: String = run(&mut a, &[b"FUNCTION", b"LOAD", ours_code.as_bytes()])
        .await
        .unwrap();
    let their_dump: Vec<u8> = run(&mut b, &[b"FUNCTION", b"DUMP"]).await.unwrap();
    let our_dump: Vec<u8> = run(&mut a, &[b"FUNCTION", b"DUMP"]).await.unwrap();
    // A record, then the code as an RDB string: redis-server's is LZF-encoded (0xC3).
    assert_eq!(their_dump.get(..2), Some(&[245u8, 0xc3][..]), "{their_dump:?}");

    let _: () = run(&mut a, &[b"FUNCTION", b"RESTORE", &their_dump])
        .await
        .unwrap();
    let got: String = run(&mut a, &[b"FCALL", b"theirs", b"0"]).await.unwrap();
    assert_eq!(got, "from redis");
    let _: () = run(&mut b, &[b"FUNCTION", b"RESTORE", &our_dump]).await.unwrap();
    let got: String = run(&mut b, &[b"FCALL", b"ours", b"0"]).await.unwrap();
    assert_eq!(got, "from us");

    // APPEND refuses a library already there and changes nothing; REPLACE and FLUSH do not.
    let err = run::<()>(&mut a, &[b"FUNCTION", b"RESTORE", &our_dump])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Library 'fromus' already exists"),
        "{err}"
    );
    assert_eq!(library_names(&mut a).await, ["fromredis", "fromus"]);
    let _: () = run(&mut a, &[b"FUNCTION", b"RESTORE", &our_dump, b"REPLACE"])
        .await
        .unwrap();
    let _: () = run(&mut a, &[b"FUNCTION", b"RESTORE", &our_dump, b"FLUSH"])
        .await
        .unwrap();
    assert_eq!(library_names(&mut a).await, ["fromus"]);

    // A flipped byte fails the checksum, as in Redis.
    let mut damaged = our_dump.clone();
    damaged[3] ^= 0x20;
    for c in [&mut a, &mut b] {
        let err = run::<()>(c, &[b"FUNCTION", b"RESTORE", &damaged])
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("payload version or checksum are wrong"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_or_function_that_never_returns_is_stopped() {
    let node = start_node(&[]);
    let mut c = conn(&node).await;
    let err = run::<String>(
        &mut c,
        &[b"FUNCTION", b"LOAD", b"#!lua name=spin\nwhile true do end"],
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("Error registering functions")
            && err.to_string().contains("FUNCTION LOAD timeout"),
        "{err}"
    );
    let pong: String = run(&mut c, &[b"PING"]).await.unwrap();
    assert_eq!(pong, "PONG");

    let _: () = run(&mut c, &[b"CONFIG", b"SET", b"busy-reply-threshold", b"50"])
        .await
        .unwrap();
    let code = library("loops", "forever", "while true do end");
    let _: String = run(&mut c, &[b"FUNCTION", b"LOAD", code.as_bytes()])
        .await
        .unwrap();
    let url = node.url();
    let caller = tokio::spawn(async move {
        let mut c = common::conn(&url).await;
        run::<String>(&mut c, &[b"FCALL", b"forever", b"0"]).await
    });
    let mut killer = conn(&node).await;
    let mut raw = common::ReplyReader::new(node.connect());
    let deadline = Instant::now() + IO_TIMEOUT;
    let busy =
        b"-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n";
    // Busy once the function has run past the threshold; SCRIPT KILL is not for functions.
    while raw.command(&["PING"]) != busy {
        assert!(Instant::now() < deadline, "never busy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(raw.command(&["SCRIPT", "KILL"]), busy);
    // FUNCTION STATS answers while the function runs, naming it and its command.
    let stats = raw.command(&["FUNCTION", "STATS"]);
    let expected = b"*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$7\r\nforever\r\n$7\r\ncommand\r\n*3\r\n$5\r\nFCALL\r\n$7\r\nforever\r\n$1\r\n0\r\n$11\r\nduration_ms\r\n:";
    assert!(stats.starts_with(expected), "{}", String::from_utf8_lossy(&stats));
    assert!(
        stats.ends_with(b"$7\r\nengines\r\n*2\r\n$3\r\nLUA\r\n*4\r\n$15\r\nlibraries_count\r\n:1\r\n$15\r\nfunctions_count\r\n:1\r\n"),
        "{}",
        String::from_utf8_lossy(&stats)
    );
    let ok: String = run(&mut killer, &[b"FUNCTION", b"KILL"]).await.unwrap();
    assert_eq!(ok, "OK");
    let outcome = within(caller).await.expect("the caller's task");
    let err = outcome.expect_err("a killed function answers with an error");
    assert!(err.to_string().contains("killed"), "{err}");
    let pong: String = run(&mut killer, &[b"PING"]).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_maxmemory_only_functions_that_cannot_write_or_allow_oom_run() {
    let node = start_node(&[]);
    let mut c = conn(&node).await;
    let code = "#!lua name=oom\n\
        redis.register_function('writer', function() return 1 end)\n\
        redis.register_function{function_name='allowed', callback=function() return 2 end, flags={'allow-oom'}}\n\
        redis.register_function{function_name='reader', callback=function() return 3 end, flags={'no-writes'}}";
    let _: String = run(&mut c, &[b"FUNCTION", b"LOAD", code.as_bytes()])
        .await
        .unwrap();
    let _: () = run(&mut c, &[b"CONFIG", b"SET", b"maxmemory", b"1"])
        .await
        .unwrap();
    let mut raw = common::ReplyReader::new(node.connect());
    assert_eq!(
        raw.command(&["FCALL", "writer", "0"]),
        b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
    assert_eq!(raw.command(&["FCALL", "allowed", "0"]), b":2\r\n");
    assert_eq!(raw.command(&["FCALL", "reader", "0"]), b":3\r\n");
    let _: () = run(&mut c, &[b"CONFIG", b"SET", b"maxmemory", b"0"])
        .await
        .unwrap();
    assert_eq!(raw.command(&["FCALL", "writer", "0"]), b":1\r\n");
}
