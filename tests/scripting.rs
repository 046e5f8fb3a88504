//! Lua scripting against the real binary: redis-py's register_script flow (compared with a
//! real redis-server), KEDA's length script, atomicity under concurrency, and wake-ups and
//! metrics for pushes made by scripts.

mod common;

use common::{conn, have_redis_server, start_node, start_redis_server, within, T};
use std::process::Command;
use std::time::{Duration, Instant};

/// SCRIPT LOAD, returning the SHA.
async fn load(c: &mut redis::aio::MultiplexedConnection, body: &str) -> String {
    within(redis::cmd("SCRIPT").arg("LOAD").arg(body).query_async(c))
        .await
        .unwrap()
}

/// EVALSHA of a script with one key and one argument.
async fn evalsha<T: redis::FromRedisValue>(
    c: &mut redis::aio::MultiplexedConnection,
    sha: &str,
    key: &str,
    arg: impl redis::ToRedisArgs,
) -> redis::RedisResult<T> {
    within(
        redis::cmd("EVALSHA")
            .arg(sha)
            .arg(1)
            .arg(key)
            .arg(arg)
            .query_async(c),
    )
    .await
}

fn python_with_redis() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "CI must install python3 with redis-py (.ci/run does)"
    );
    ok
}

fn run_py(script: &str, port: u16) -> serde_json::Value {
    let path = format!("{}/../tests/py/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .args([&path, &port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("script prints JSON")
}

#[test]
fn redis_py_register_script_flow_matches_redis_server() {
    if !python_with_redis() {
        eprintln!("skipped: python3 with redis-py is not installed");
        return;
    }
    let node = start_node(&[]);
    let ours = run_py("register_script.py", node.port);
    assert_eq!(ours["cached_before"], false);
    assert_eq!(
        ours["cached_after"], true,
        "NOSCRIPT made redis-py load the script"
    );
    assert_eq!(ours["counter"], "5");
    assert_eq!(ours["results"][4], serde_json::json!([5, 5]));
    assert_eq!(
        ours["keda_lengths"],
        serde_json::json!({"worker_queue": 5, "a_string": 0, "missing": 0})
    );
    assert_eq!(ours["evalsha_failed"], 1, "exactly one EVALSHA hit NOSCRIPT");
    if have_redis_server() {
        let redis = start_redis_server();
        let theirs = run_py("register_script.py", redis.port);
        assert_eq!(ours, theirs, "same results on redis-server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_modify_write_scripts_never_lose_an_update() {
    // Several runtime threads so that connections really race.
    let node = start_node(&["--threads", "2"]);
    let script = redis::Script::new(
        "local v = tonumber(redis.call('GET', KEYS[1]) or '0'); redis.call('SET', KEYS[1], v + 1); return v + 1",
    );
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let url = node.url();
        let script = script.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = conn(&url).await;
            for _ in 0..250 {
                let _: i64 = within(script.key("counter").invoke_async(&mut c)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    let mut c = conn(&node.url()).await;
    let v: i64 = within(redis::cmd("GET").arg("counter").query_async(&mut c))
        .await
        .unwrap();
    assert_eq!(v, 16 * 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_inside_a_script_wakes_a_waiter_and_counts_in_metrics() {
    let node = start_node(&[]);
    let url = node.url();
    let waiter = tokio::spawn(async move {
        let mut c = conn(&url).await;
        let v: (String, String) = within(redis::cmd("BRPOP").arg("sq").arg(0).query_async(&mut c))
            .await
            .unwrap();
        v.1
    });
    let mut c = conn(&node.url()).await;
    let start = Instant::now();
    loop {
        let info: String = within(redis::cmd("INFO").arg("clients").query_async(&mut c))
            .await
            .unwrap();
        if info.contains("blocked_clients:1\r") {
            break;
        }
        assert!(start.elapsed() < T);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let n: i64 = within(
        redis::cmd("EVAL")
            .arg("redis.call('LPUSH', KEYS[1], 'a'); redis.call('LPUSH', KEYS[1], 'b'); return redis.call('LLEN', KEYS[1])")
            .arg(1)
            .arg("sq")
            .query_async(&mut c),
    )
    .await
    .unwrap();
    // The script saw both elements: the waiter is served only after the script ends.
    assert_eq!(n, 2);
    assert_eq!(within(waiter).await.unwrap(), "a");
    let stats: std::collections::HashMap<String, std::collections::HashMap<String, String>> =
        within(redis::cmd("QSTATS").arg("sq").query_async(&mut c))
            .await
            .unwrap();
    assert_eq!(stats["sq"]["pushed_total"], "2");
    assert_eq!(stats["sq"]["popped_total"], "1");
    let info: String = within(redis::cmd("INFO").arg("memory").query_async(&mut c))
        .await
        .unwrap();
    assert!(info.contains("number_of_cached_scripts:1"), "{info}");
}

/// CONFIG SET on `c`, which must succeed.
async fn config_set(c: &mut redis::aio::MultiplexedConnection, key: &str, value: &str) {
    let _: () = within(redis::cmd("CONFIG").arg("SET").arg(key).arg(value).query_async(c))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_script_gets_busy_replies_and_script_kill() {
    let node = start_node(&[]);
    let mut admin = conn(&node.url()).await;
    config_set(&mut admin, "busy-reply-threshold", "100").await;
    let url = node.url();
    let runaway = tokio::spawn(async move {
        let mut c = conn(&url).await;
        let r: redis::RedisResult<i64> = within(
            redis::cmd("EVAL")
                .arg("local i = 0 while true do i = i + 1 end")
                .arg(0)
                .query_async(&mut c),
        )
        .await;
        r
    });
    // Past the threshold every other command is refused with -BUSY, without hanging.
    let start = Instant::now();
    let busy = loop {
        let r: redis::RedisResult<String> = within(redis::cmd("PING").query_async(&mut admin)).await;
        match r {
            Err(e) if e.to_string().contains("BUSY") => break e,
            _ => {}
        }
        assert!(start.elapsed() < T, "never saw -BUSY");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(busy.to_string().contains("SCRIPT KILL"), "{busy}");
    let _: () = within(redis::cmd("SCRIPT").arg("KILL").query_async(&mut admin))
        .await
        .unwrap();
    let killed = within(runaway).await.unwrap().unwrap_err();
    assert!(
        killed
            .to_string()
            .contains("Script killed by user with SCRIPT KILL"),
        "{killed}"
    );
    let pong: String = within(redis::cmd("PING").query_async(&mut admin)).await.unwrap();
    assert_eq!(pong, "PONG");
    let e = within(redis::cmd("SCRIPT").arg("KILL").query_async::<()>(&mut admin))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("No scripts in execution"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_wrote_cannot_be_killed() {
    let node = start_node(&[]);
    let mut admin = conn(&node.url()).await;
    config_set(&mut admin, "lua-time-limit", "50").await;
    let url = node.url();
    // Runs until the server process is killed at the end of the test.
    let _writer = tokio::spawn(async move {
        let mut c = conn(&url).await;
        let _: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg("redis.call('SET', 'x', '1') local i = 0 while true do i = i + 1 end")
            .arg(0)
            .query_async(&mut c)
            .await;
    });
    let start = Instant::now();
    loop {
        let r: redis::RedisResult<()> =
            within(redis::cmd("SCRIPT").arg("KILL").query_async(&mut admin)).await;
        match r {
            Err(e) if e.to_string().contains("UNKILLABLE") => break,
            _ => {}
        }
        assert!(start.elapsed() < T, "never saw -UNKILLABLE");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A script with a record of finishing fast runs inline on the connection's event loop. If one
/// call of it turns out long before it has written anything, it is stopped and re-run from the
/// start on the script thread: it runs once (no double effects), other clients get -BUSY and
/// SCRIPT KILL works, exactly as for a script that never ran inline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_script_that_turns_long_moves_to_the_script_thread() {
    let node = start_node(&[]);
    let mut admin = conn(&node.url()).await;
    config_set(&mut admin, "busy-reply-threshold", "100").await;
    let body = "if ARGV[1] == 'spin' then local i = 0 while true do i = i + 1 end end \
                return redis.call('INCR', KEYS[1])";
    let sha = load(&mut admin, body).await;
    // Enough fast runs to run inline from now on.
    for i in 1..=5 {
        let n: i64 = evalsha(&mut admin, &sha, "n", "go").await.unwrap();
        assert_eq!(n, i);
    }
    let inline = |info: &str, field: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} missing"))
    };
    let info: String = within(redis::cmd("INFO").arg("memory").query_async(&mut admin))
        .await
        .unwrap();
    assert_eq!(
        inline(&info, "scripts_run_inline"),
        2,
        "runs 4 and 5 were inline:\n{info}"
    );
    let url = node.url();
    let spinner = tokio::spawn({
        let sha = sha.clone();
        async move {
            let mut c = conn(&url).await;
            let r: redis::RedisResult<i64> = evalsha(&mut c, &sha, "n", "spin").await;
            r
        }
    });
    // Had it stayed on the (single) event loop, nothing below would be answered at all.
    let start = Instant::now();
    loop {
        let r: redis::RedisResult<String> = within(redis::cmd("PING").query_async(&mut admin)).await;
        if matches!(&r, Err(e) if e.to_string().contains("BUSY")) {
            break;
        }
        assert!(start.elapsed() < T, "never saw -BUSY");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _: () = within(redis::cmd("SCRIPT").arg("KILL").query_async(&mut admin))
        .await
        .unwrap();
    let killed = within(spinner).await.unwrap().unwrap_err();
    assert!(killed.to_string().contains("Script killed"), "{killed}");
    // The spinning call never reached its INCR; nothing ran twice.
    let n: i64 = within(redis::cmd("GET").arg("n").query_async(&mut admin))
        .await
        .unwrap();
    assert_eq!(n, 5);
    let n: i64 = evalsha(&mut admin, &sha, "n", "go").await.unwrap();
    assert_eq!(n, 6);
    // The migration is not a call: it does not show in the command statistics.
    let info: String = within(redis::cmd("INFO").arg("commandstats").query_async(&mut admin))
        .await
        .unwrap();
    let line = info
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .expect("evalsha stats");
    assert!(line.contains("calls=7,"), "{line}");
    let info: String = within(redis::cmd("INFO").arg("memory").query_async(&mut admin))
        .await
        .unwrap();
    assert_eq!(inline(&info, "scripts_moved_to_script_thread"), 1, "{info}");
}

/// A script that has written cannot be stopped and re-run: one that writes and then runs long
/// finishes where it started, and its write happens exactly once.
#[tokio::test]
async fn a_fast_script_that_wrote_finishes_inline_exactly_once() {
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    // Busy-waits `ARGV[1]` ms after its write (TIME is read from the server clock).
    let body = "local n = redis.call('INCR', KEYS[1]) \
                local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] \
                while true do local u = redis.call('TIME') \
                if u[1] * 1000000 + u[2] - start >= tonumber(ARGV[1]) * 1000 then break end end \
                return n";
    let sha = load(&mut c, body).await;
    for i in 1..=4 {
        let n: i64 = evalsha(&mut c, &sha, "w", 0).await.unwrap();
        assert_eq!(n, i);
    }
    // Now inline, and 30 ms long: well past the 2 ms budget, but after its write.
    let n: i64 = evalsha(&mut c, &sha, "w", 30).await.unwrap();
    assert_eq!(n, 5);
    let n: i64 = within(redis::cmd("GET").arg("w").query_async(&mut c))
        .await
        .unwrap();
    assert_eq!(n, 5, "the write happened once");
    let info: String = within(redis::cmd("INFO").arg("memory").query_async(&mut c))
        .await
        .unwrap();
    assert!(info.contains("scripts_run_inline:2\r\n"), "{info}");
    assert!(info.contains("scripts_moved_to_script_thread:0\r\n"), "{info}");
}

/// Hostile input to the binary libraries is an error reply, never a crash or a huge
/// allocation: random bytes through cmsgpack.unpack and random formats through struct.
#[tokio::test]
async fn binary_libraries_survive_random_input() {
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    // A small deterministic generator: no extra dependency, same cases every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let formats = b"<>=!bBhHlLTiIfdxcs0123456789 q";
    for _ in 0..300 {
        let len = (next() % 24) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // A claimed length far beyond the input must not allocate it.
        let mut huge = vec![0xdd];
        huge.extend_from_slice(&(next() as u32).to_be_bytes());
        for input in [bytes.clone(), huge] {
            let _: redis::RedisResult<redis::Value> = within(
                redis::cmd("EVAL")
                    .arg("return {cmsgpack.unpack(ARGV[1])}")
                    .arg(0)
                    .arg(&input)
                    .query_async(&mut c),
            )
            .await;
        }
        let fmt: Vec<u8> = (0..(next() % 8))
            .map(|_| formats[(next() % formats.len() as u64) as usize])
            .collect();
        let _: redis::RedisResult<redis::Value> = within(
            redis::cmd("EVAL")
                .arg("return {struct.unpack(ARGV[1], ARGV[2])}")
                .arg(0)
                .arg(&fmt)
                .arg(&bytes)
                .query_async(&mut c),
        )
        .await;
    }
    // Sizes that overflow any arithmetic on them.
    for fmt in [
        "c99999999999999999999999",
        "i99999999999999999999",
        "!99999999999999999999 h",
    ] {
        let r: redis::RedisResult<redis::Value> = within(
            redis::cmd("EVAL")
                .arg("return {struct.unpack(ARGV[1], 'abc'), struct.size(ARGV[1])}")
                .arg(0)
                .arg(fmt)
                .query_async(&mut c),
        )
        .await;
        assert!(r.is_err(), "{fmt}: {r:?}");
    }
    let pong: String = within(redis::cmd("PING").query_async(&mut c)).await.unwrap();
    assert_eq!(pong, "PONG");
    // Round trip of what was packed stays exact.
    let v: Vec<i64> = within(
        redis::cmd("EVAL")
            .arg("return {cmsgpack.unpack(cmsgpack.pack(-70000, 70000, 3))}")
            .arg(0)
            .query_async(&mut c),
    )
    .await
    .unwrap();
    assert_eq!(v, [-70000, 70000, 3]);
}

#[tokio::test]
async fn binary_and_large_values_cross_redis_call_intact() {
    // redis.call reads its arguments off the Lua stack and pushes replies onto it: every byte
    // value, thousands of arguments and a long reply must come through unchanged.
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    let every_byte: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let echo = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])";
    let back: Vec<u8> = within(
        redis::cmd("EVAL")
            .arg(echo)
            .arg(1)
            .arg("bin")
            .arg(&every_byte)
            .query_async(&mut c),
    )
    .await
    .unwrap();
    assert_eq!(back, every_byte);

    let items: Vec<String> = (0..5000).map(|i| format!("item-{i}")).collect();
    let pushed: i64 = within(
        redis::cmd("EVAL")
            .arg("return redis.call('RPUSH', KEYS[1], unpack(ARGV))")
            .arg(1)
            .arg("long")
            .arg(&items)
            .query_async(&mut c),
    )
    .await
    .unwrap();
    assert_eq!(pushed, 5000);
    let listed: Vec<String> = within(
        redis::cmd("EVAL")
            .arg("return redis.call('LRANGE', KEYS[1], 0, -1)")
            .arg(1)
            .arg("long")
            .query_async(&mut c),
    )
    .await
    .unwrap();
    assert_eq!(listed, items);

    // Many error replies in one script: each comes back as a table, nothing accumulates.
    let errors: i64 = within(
        redis::cmd("EVAL")
            .arg(
                "local n = 0 for i = 1, 20000 do local r = redis.pcall('INCR', KEYS[1]) \
                 if type(r) == 'table' and r.err then n = n + 1 end end return n",
            )
            .arg(1)
            .arg("bin")
            .query_async(&mut c),
    )
    .await
    .unwrap();
    assert_eq!(errors, 20000);
}

// ---- Issue 12: the sandbox, crashes, SCRIPT KILL and SHUTDOWN ---------------------------------

/// Where the complete reply at the start of `buf` ends, without recursion (replies here nest
/// thousands of levels deep).
fn reply_len(buf: &[u8]) -> Option<usize> {
    let (mut pos, mut pending) = (0usize, 1u64);
    while pending > 0 {
        let le = pos + buf.get(pos..)?.windows(2).position(|w| w == b"\r\n")?;
        let n = || -> Option<i64> { std::str::from_utf8(&buf[pos + 1..le]).ok()?.parse().ok() };
        pending -= 1;
        match buf[pos] {
            b'*' | b'~' => pending += n()?.max(0) as u64,
            b'%' => pending += 2 * n()?.max(0) as u64,
            b'$' | b'=' if n()? >= 0 => {
                let end = le + 2 + n()? as usize + 2;
                if buf.len() < end {
                    return None;
                }
                pos = end;
                continue;
            }
            _ => {}
        }
        pos = le + 2;
    }
    Some(pos)
}

/// Sends one command on a raw connection and reads its whole reply.
fn raw_command(stream: &mut std::net::TcpStream, args: &[&[u8]]) -> Vec<u8> {
    use std::io::{Read, Write};
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    stream.write_all(&common::encode_command(&args)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    while reply_len(&buf) != Some(buf.len()) {
        let n = stream.read(&mut chunk).expect("reply within the timeout");
        assert!(n > 0, "connection closed after {} bytes", buf.len());
        buf.extend_from_slice(&chunk[..n]);
    }
    buf
}

fn raw_eval(stream: &mut std::net::TcpStream, body: &str, argv: &[&[u8]]) -> Vec<u8> {
    let mut args: Vec<&[u8]> = vec![b"EVAL", body.as_bytes(), b"0"];
    args.extend_from_slice(argv);
    raw_command(stream, &args)
}

fn assert_pong(stream: &mut std::net::TcpStream) {
    assert_eq!(
        raw_command(stream, &[b"PING"]),
        b"+PONG\r\n",
        "the server still answers"
    );
}

/// `*1` `depth` times around an empty array.
fn nested_arrays(depth: usize) -> Vec<u8> {
    [b"*1\r\n".repeat(depth), b"*0\r\n".to_vec()].concat()
}

#[test]
fn deep_replies_are_answered_like_redis_server_and_never_overflow_the_stack() {
    // The reproduction from the issue: 5,000 levels aborted the process.
    let repro = "local t={} local c=t for i=1,5000 do local n={} c[1]=n c=n end return t";
    let deep =
        "local t = {} local c = t for i = 1, tonumber(ARGV[1]) do local n = {} c[1] = n c = n end return t";
    let cycle = "local a = {} local b = {a} a[1] = b return a";
    let cut = [
        b"*1\r\n".repeat(7995),
        b"-ERR reached lua stack limit\r\n".to_vec(),
    ]
    .concat();
    /// A script, its ARGV, the reply redis-server gives.
    type Case<'a> = (&'a str, &'a [&'a [u8]], Vec<u8>);
    let cases: [Case; 4] = [
        (repro, &[], nested_arrays(5000)),
        // 7,995 nested arrays: the deepest reply that is not cut.
        (deep, &[b"7994"], nested_arrays(7994)),
        (deep, &[b"8000"], cut.clone()),
        (cycle, &[], cut),
    ];
    // Two runtime threads: inline runs happen on a tokio worker (2 MB of stack).
    let node = start_node(&["--threads", "2"]);
    let mut ours = node.connect();
    let redis = have_redis_server().then(start_redis_server);
    for (body, argv, expected) in &cases {
        assert_eq!(&raw_eval(&mut ours, body, argv), expected, "{body} {argv:?}");
        if let Some(redis) = &redis {
            assert_eq!(
                &raw_eval(&mut redis.connect(), body, argv),
                expected,
                "redis-server: {body}"
            );
        }
        assert_pong(&mut ours);
    }
    // The same conversion inline, on the event loop: a script with a record of fast runs.
    let sha = String::from_utf8(raw_command(&mut ours, &[b"SCRIPT", b"LOAD", deep.as_bytes()])).unwrap();
    let sha = sha
        .trim_start_matches(|c| c == '$' || char::is_ascii_digit(&c))
        .trim();
    for _ in 0..4 {
        assert_eq!(
            raw_command(&mut ours, &[b"EVALSHA", sha.as_bytes(), b"0", b"1"]),
            nested_arrays(1)
        );
    }
    assert_eq!(
        raw_command(&mut ours, &[b"EVALSHA", sha.as_bytes(), b"0", b"6000"]),
        nested_arrays(6000)
    );
    assert_pong(&mut ours);
}

#[test]
fn deep_cjson_and_cmsgpack_input_is_an_error_or_an_answer_never_a_crash() {
    let node = start_node(&["--threads", "2"]);
    let mut c = node.connect();
    // Run inline (after fast runs with a small input), then with a deep one.
    let unpack = "return cmsgpack.unpack(ARGV[1])";
    let encode = "return #cjson.encode(cmsgpack.unpack(ARGV[1]))";
    let decode = "return type(cjson.decode(ARGV[1]))";
    for body in [unpack, encode, decode] {
        for _ in 0..4 {
            let small: &[u8] = if body == decode { b"[1]" } else { b"\x91\x01" };
            assert!(!raw_eval(&mut c, body, &[small]).starts_with(b"-"), "{body}");
        }
    }
    let arrays = |n: usize| [vec![0x91u8; n], vec![0x01]].concat();
    let unpacked = raw_eval(&mut c, unpack, &[&arrays(3999)]);
    assert_eq!(unpacked, [b"*1\r\n".repeat(3999), b":1\r\n".to_vec()].concat());
    let too_deep = String::from_utf8(raw_eval(&mut c, unpack, &[&arrays(100_000)])).unwrap();
    assert!(
        too_deep.contains("stack overflow (in function mp_decode_to_lua_array)"),
        "{too_deep}"
    );
    assert_eq!(raw_eval(&mut c, encode, &[&arrays(999)]), b":1999\r\n");
    let nesting = String::from_utf8(raw_eval(&mut c, encode, &[&arrays(1001)])).unwrap();
    assert!(
        nesting.contains("Cannot serialise, excessive nesting (1001)"),
        "{nesting}"
    );
    let brackets = "[".repeat(100_000);
    let decoded = String::from_utf8(raw_eval(&mut c, decode, &[brackets.as_bytes()])).unwrap();
    assert!(
        decoded.contains("Found too many nested data structures (1001) at character 1001"),
        "{decoded}"
    );
    assert_pong(&mut c);
}

#[test]
fn deep_recursion_in_lua_is_an_error_not_a_crash() {
    let node = start_node(&[]);
    let mut c = node.connect();
    for (body, expected) in [
        (
            "local function f() return f() + 1 end return f()",
            "user_script:1: stack overflow",
        ),
        (
            "local function f() local ok, e = pcall(f) if not ok then error(e, 0) end end f()",
            "C stack overflow",
        ),
        (
            "local t = setmetatable({}, {__index = function(t, k) return t[k] end}) return t.x",
            "C stack overflow",
        ),
    ] {
        let reply = String::from_utf8(raw_eval(&mut c, body, &[])).unwrap();
        assert!(
            reply.starts_with("-ERR") && reply.contains(expected),
            "{body}: {reply}"
        );
        assert_pong(&mut c);
    }
    // Many results through pcall, xpcall and the script's own return used to trip Lua's stack
    // check (an abort in debug builds).
    for body in [
        "local t = {} for i = 1, 300 do t[i] = i end return #{pcall(unpack, t)}",
        "local t = {} for i = 1, 300 do t[i] = i end return #{xpcall(function() return unpack(t) end, error)}",
        "local t = {} for i = 1, 300 do t[i] = i end return unpack(t)",
        "local function f() return pcall(f) end return f()",
    ] {
        let reply = raw_eval(&mut c, body, &[]);
        assert!(reply.starts_with(b":"), "{body}: {}", common::show(&reply));
        assert_pong(&mut c);
    }
}

#[test]
fn no_global_reaches_the_disk_and_no_file_can_be_read() {
    let dir = std::env::temp_dir().join(format!("autoscale-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret.env");
    std::fs::write(&secret, "KEY=\"s3cret-value\"\n").unwrap();
    let path = secret.to_string_lossy().into_owned();
    let node = start_node(&[]);
    let mut c = node.connect();
    for body in [
        "return loadfile(ARGV[1])()",
        "return dofile(ARGV[1])",
        "return io.open(ARGV[1]):read('*a')",
        "return require(ARGV[1])",
        "return package.loadlib(ARGV[1], 'x')",
        "return module(ARGV[1])",
        "print(ARGV[1])",
        "return os.getenv('HOME')",
        "return getfenv(0)",
        "return newproxy(true)",
        "return debug.getinfo(1)",
        // A file's first line as an error message, the way /etc/shadow leaked.
        "return dofile('/etc/passwd')",
    ] {
        let reply = String::from_utf8_lossy(&raw_eval(&mut c, body, &[path.as_bytes()])).into_owned();
        assert!(
            reply.starts_with("-ERR user_script:1: Script attempted to access nonexistent global variable"),
            "{body}: {reply}"
        );
        assert!(
            !reply.contains("s3cret") && !reply.contains("root:"),
            "{body} leaked: {reply}"
        );
    }
    // What is left cannot open files either: load and loadstring take text, not paths.
    let reply = String::from_utf8_lossy(&raw_eval(
        &mut c,
        "return {loadstring(ARGV[1])}",
        &[path.as_bytes()],
    ))
    .into_owned();
    assert!(!reply.contains("s3cret"), "{reply}");
    assert_pong(&mut c);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bytecode_is_refused_and_a_corrupted_chunk_cannot_crash_the_server() {
    let node = start_node(&[]);
    let mut c = node.connect();
    // The issue's crash: string.dump output with two bytes changed, loaded and called.
    let corrupted =
        "local s = string.dump(function() local t = {} for i = 1, 10 do t[i] = i end return t end) \
                     s = s:sub(1, 30) .. string.char(255, 255) .. s:sub(33) \
                     local f, e = loadstring(s) if f then return f() end return e";
    let reply = String::from_utf8_lossy(&raw_eval(&mut c, corrupted, &[])).into_owned();
    assert!(reply.contains(":1: unexpected symbol near 'char(27)'"), "{reply}");
    assert_pong(&mut c);
    let via_load = "local s = string.dump(function() return 1 end) local f, e = load(function() local p = s s = nil return p end) return e";
    let reply = String::from_utf8_lossy(&raw_eval(&mut c, via_load, &[])).into_owned();
    assert_eq!(reply, "$43\r\n(load):1: unexpected symbol near 'char(27)'\r\n");
    // A script body that is bytecode.
    let reply = raw_command(
        &mut c,
        &[b"EVAL", b"\x1bLuaQ\x00\x01\x04\x08\x04\x08\x00\xff\xff", b"0"],
    );
    assert_eq!(
        reply,
        b"-ERR Error compiling script (new function): user_script:1: unexpected symbol near 'char(27)'\r\n"
    );
    assert_pong(&mut c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hijacks_are_refused_and_invisible_to_every_later_script() {
    let node = start_node(&[]);
    let mut attacker = conn(&node.url()).await;
    for body in [
        "redis.call = function() return 'hijacked' end return 'ok'",
        "rawset(redis, 'call', function() return 'hijacked' end) return 'ok'",
        "rawset(_G, 'x', 1) return 'ok'",
        "setmetatable(_G, nil) return 'ok'",
        "getmetatable('').__index.rep = function() return 'hijacked' end return 'ok'",
        "table.insert(redis, 1) return 'ok'",
        "local mt = getmetatable(_G) mt.__index = function() return 'hijacked' end",
        "loadstring('redis.call = nil')() return 'ok'",
    ] {
        let e = within(
            redis::cmd("EVAL")
                .arg(body)
                .arg(0)
                .query_async::<String>(&mut attacker),
        )
        .await
        .unwrap_err();
        assert!(
            e.to_string().contains("Attempt to modify a readonly table"),
            "{body}: {e}"
        );
    }
    // Nothing survives SCRIPT FLUSH either (it used to be where a hijack persisted).
    let _: () = within(redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut attacker))
        .await
        .unwrap();
    // A client that never saw the attacks: EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA.
    let mut victim = conn(&node.url()).await;
    let push = redis::Script::new("return redis.call('RPUSH', KEYS[1], ARGV[1])");
    for i in 1..=3 {
        let n: i64 = within(push.key("jobs").arg(format!("job-{i}")).invoke_async(&mut victim))
            .await
            .unwrap();
        assert_eq!(n, i);
    }
    let jobs: Vec<String> = within(
        redis::cmd("LRANGE")
            .arg("jobs")
            .arg(0)
            .arg(-1)
            .query_async(&mut victim),
    )
    .await
    .unwrap();
    assert_eq!(jobs, ["job-1", "job-2", "job-3"]);
    let state: Vec<String> = within(
        redis::cmd("EVAL")
            .arg("return {type(redis.call), type(rawget(_G, 'x')), ('ab'):rep(2)}")
            .arg(0)
            .query_async(&mut victim),
    )
    .await
    .unwrap();
    assert_eq!(state, ["function", "nil", "abab"]);
}

#[test]
fn redis_py_sees_every_hijack_refused_as_redis_server_does() {
    if !python_with_redis() {
        eprintln!("skipped: python3 with redis-py is not installed");
        return;
    }
    let node = start_node(&[]);
    let ours = run_py("sandbox_hijack.py", node.port);
    assert_eq!(ours["lengths"], serde_json::json!([1, 2, 3]));
    assert_eq!(ours["jobs"], serde_json::json!(["job-0", "job-1", "job-2"]));
    assert_eq!(ours["call_is_a_function"], "function");
    for attempt in ours["attempts"].as_array().unwrap() {
        assert_eq!(attempt[0], "error", "{attempt}");
    }
    if have_redis_server() {
        let redis = start_redis_server();
        assert_eq!(
            ours,
            run_py("sandbox_hijack.py", redis.port),
            "same results on redis-server"
        );
    }
}

/// Starts `body` (which never ends by itself) on its own connection and waits until other
/// clients get -BUSY; returns the task holding the script's reply.
async fn start_runaway(
    url: &str,
    admin: &mut redis::aio::MultiplexedConnection,
    body: &'static str,
) -> tokio::task::JoinHandle<redis::RedisResult<redis::Value>> {
    let url = url.to_string();
    let runaway = tokio::spawn(async move {
        let mut c = conn(&url).await;
        redis::cmd("EVAL").arg(body).arg(0).query_async(&mut c).await
    });
    let start = Instant::now();
    loop {
        let r: redis::RedisResult<String> = within(redis::cmd("PING").query_async(admin)).await;
        if matches!(&r, Err(e) if e.to_string().contains("BUSY")) {
            return runaway;
        }
        assert!(start.elapsed() < T, "never saw -BUSY for {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_kill_stops_a_script_that_catches_every_error() {
    let node = start_node(&[]);
    let mut admin = conn(&node.url()).await;
    config_set(&mut admin, "busy-reply-threshold", "50").await;
    for body in [
        // The issue's reproduction.
        "local f=function() while 1 do redis.call('ping') end end while 1 do pcall(f) end",
        "while true do xpcall(function() while true do end end, function(e) return e end) end",
        // Lua runs a message handler with hooks off for an error raised by a hook.
        "while true do xpcall(function() while true do end end, function(e) while true do end end) end",
        "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
        "local co = coroutine.wrap(function() while true do pcall(function() while true do end end) end end) co()",
        "while true do pcall(loadstring('while true do end')) end",
    ] {
        let runaway = start_runaway(&node.url(), &mut admin, body).await;
        let _: () = within(redis::cmd("SCRIPT").arg("KILL").query_async(&mut admin))
            .await
            .unwrap();
        let killed = within(runaway).await.unwrap().unwrap_err();
        assert!(
            killed.to_string().contains("Script killed by user with SCRIPT KILL"),
            "{body}: {killed}"
        );
        let pong: String = within(redis::cmd("PING").query_async(&mut admin)).await.unwrap();
        assert_eq!(pong, "PONG", "{body}");
    }
}

/// An inline script (one with a record of finishing fast) that turns long while catching
/// every error must still be moved off the event loop: with one runtime thread, had it stayed,
/// nothing would be answered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_script_cannot_catch_its_move_to_the_script_thread() {
    let node = start_node(&[]);
    let mut admin = conn(&node.url()).await;
    config_set(&mut admin, "busy-reply-threshold", "100").await;
    let body = "if ARGV[1] == 'spin' then while true do pcall(function() while true do end end) end end \
                return redis.call('INCR', KEYS[1])";
    let sha = load(&mut admin, body).await;
    for i in 1..=5 {
        let n: i64 = evalsha(&mut admin, &sha, "n", "go").await.unwrap();
        assert_eq!(n, i);
    }
    let url = node.url();
    let spinner = tokio::spawn(async move {
        let mut c = conn(&url).await;
        evalsha::<i64>(&mut c, &sha, "n", "spin").await
    });
    let start = Instant::now();
    loop {
        let r: redis::RedisResult<String> = within(redis::cmd("PING").query_async(&mut admin)).await;
        if matches!(&r, Err(e) if e.to_string().contains("BUSY")) {
            break;
        }
        assert!(start.elapsed() < T, "never saw -BUSY");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _: () = within(redis::cmd("SCRIPT").arg("KILL").query_async(&mut admin))
        .await
        .unwrap();
    let killed = within(spinner).await.unwrap().unwrap_err();
    assert!(killed.to_string().contains("Script killed"), "{killed}");
    let n: i64 = within(redis::cmd("GET").arg("n").query_async(&mut admin))
        .await
        .unwrap();
    assert_eq!(n, 5, "the spinning call never reached its INCR");
}

/// Waits for the node process to exit and returns its exit status.
fn wait_exit(node: &mut common::ServerProcess) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < T, "the node did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shutdown_stops_the_node_which_exits_with_code_0() {
    let mut node = start_node(&[]);
    let mut c = node.connect();
    // Refusals first: nothing to save to, no shutdown to abort, not inside MULTI.
    assert_eq!(
        raw_command(&mut c, &[b"SHUTDOWN", b"SAVE"]),
        b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n"
    );
    assert_eq!(
        raw_command(&mut c, &[b"SHUTDOWN", b"ABORT"]),
        b"-ERR No shutdown in progress.\r\n"
    );
    assert_eq!(
        raw_command(&mut c, &[b"SHUTDOWN", b"SAVE", b"NOSAVE"]),
        b"-ERR syntax error\r\n"
    );
    assert_eq!(raw_command(&mut c, &[b"MULTI"]), b"+OK\r\n");
    assert_eq!(
        raw_command(&mut c, &[b"SHUTDOWN", b"NOSAVE"]),
        b"-ERR Command not allowed inside a transaction\r\n"
    );
    assert!(raw_command(&mut c, &[b"EXEC"]).starts_with(b"-EXECABORT"));
    assert_pong(&mut c);
    let mut other = node.connect();
    assert_pong(&mut other);
    // Redis closes the connection without a reply when it stops.
    use std::io::{Read, Write};
    c.write_all(&common::encode_command(&[b"SHUTDOWN".to_vec()]))
        .unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        c.read(&mut buf).unwrap_or(0),
        0,
        "no reply, the connection closes"
    );
    assert_eq!(other.read(&mut buf).unwrap_or(0), 0, "every connection closes");
    assert!(wait_exit(&mut node).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_nosave_stops_a_busy_script_that_wrote() {
    let mut node = start_node(&[]);
    let mut admin = conn(&node.url()).await;
    config_set(&mut admin, "busy-reply-threshold", "50").await;
    let runaway = start_runaway(
        &node.url(),
        &mut admin,
        "redis.call('SET', 'x', '1') local f = function() while 1 do end end while 1 do pcall(f) end",
    )
    .await;
    let e = within(redis::cmd("SCRIPT").arg("KILL").query_async::<()>(&mut admin))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("UNKILLABLE"), "{e}");
    // Without NOSAVE, SHUTDOWN is refused while busy (as in Redis).
    let e = within(redis::cmd("SHUTDOWN").query_async::<()>(&mut admin))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("BUSY"), "{e}");
    let e = within(redis::cmd("SHUTDOWN").arg("NOW").query_async::<()>(&mut admin))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("BUSY"), "{e}");
    let _ = within(redis::cmd("SHUTDOWN").arg("NOSAVE").query_async::<()>(&mut admin)).await;
    let _ = within(runaway).await;
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut node))
        .await
        .unwrap();
    assert!(status.success(), "{status}");
}

/// With a control loop, SHUTDOWN stops the broker before the loop can tell the workers through
/// it; the node still exits cleanly (local workers exit with it).
#[test]
fn shutdown_stops_a_node_running_its_control_loop() {
    let mut node = start_node(&["--scaler", "local", "--workers", "1", "--policy", "static:1"]);
    let mut c = node.connect();
    let start = Instant::now();
    while !String::from_utf8_lossy(&raw_command(&mut c, &[b"CLIENT", b"LIST"])).contains("name=worker:") {
        assert!(start.elapsed() < T, "the worker never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    use std::io::Write;
    c.write_all(&common::encode_command(&[b"SHUTDOWN".to_vec()]))
        .unwrap();
    assert!(wait_exit(&mut node).success());
}
