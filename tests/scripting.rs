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
