//! Hashes and sets on the real binary with redis-rs: the properties of the random commands
//! (SRANDMEMBER, SPOP, HRANDFIELD) that a byte-for-byte comparison with redis-server cannot
//! check, HSCAN/SSCAN's guarantee under concurrent changes, and SCAN … TYPE. Every await runs
//! under a timeout.

mod common;

use common::{start_node, within};
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeSet, HashMap};

async fn cmd<T: redis::FromRedisValue>(c: &mut MultiplexedConnection, args: &[&str]) -> T {
    common::cmd(c, args)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

async fn sadd(c: &mut MultiplexedConnection, key: &str, members: &[String]) {
    let mut args = vec!["SADD", key];
    args.extend(members.iter().map(String::as_str));
    let added: usize = cmd(c, &args).await;
    assert_eq!(added, members.len());
}

async fn members(c: &mut MultiplexedConnection, key: &str) -> BTreeSet<String> {
    cmd::<Vec<String>>(c, &["SMEMBERS", key])
        .await
        .into_iter()
        .collect()
}

/// One set per representation: integers (intset), a few strings (the flat pack), many (table).
fn shapes() -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("ints", (0..40).map(|i| (i * 3 - 20).to_string()).collect()),
        ("small", (0..40).map(|i| format!("member:{i}")).collect()),
        ("large", (0..3000).map(|i| format!("member:{i}")).collect()),
    ]
}

#[tokio::test]
async fn srandmember_returns_members_distinct_or_repeated_as_asked() {
    let node = start_node(&[]);
    let mut c = common::conn(&node.url()).await;
    for (key, all) in shapes() {
        sadd(&mut c, key, &all).await;
        let all: BTreeSet<String> = all.into_iter().collect();
        let one: String = cmd(&mut c, &["SRANDMEMBER", key]).await;
        assert!(all.contains(&one), "{key}: {one}");
        for n in [1usize, 7, all.len() - 1] {
            let got: Vec<String> = cmd(&mut c, &["SRANDMEMBER", key, &n.to_string()]).await;
            let distinct: BTreeSet<String> = got.iter().cloned().collect();
            assert_eq!(got.len(), n, "{key}: SRANDMEMBER {n}");
            assert_eq!(distinct.len(), n, "{key}: SRANDMEMBER {n} repeated a member");
            assert!(distinct.is_subset(&all), "{key}");
        }
        let whole: BTreeSet<String> = cmd::<Vec<String>>(&mut c, &["SRANDMEMBER", key, "100000"])
            .await
            .into_iter()
            .collect();
        assert_eq!(whole, all, "{key}: a count past the size gives the whole set");
        // Negative: exactly that many, repeats allowed, and over many draws every member shows
        // up (40 members, 20,000 draws: 500 expected each; fewer than 100 is a broken draw).
        if all.len() <= 40 {
            let got: Vec<String> = cmd(&mut c, &["SRANDMEMBER", key, "-20000"]).await;
            assert_eq!(got.len(), 20_000);
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for m in &got {
                assert!(all.contains(m), "{key}: {m}");
                *counts.entry(m.as_str()).or_default() += 1;
            }
            assert_eq!(counts.len(), all.len(), "{key}: every member drawn");
            assert!(
                counts.values().all(|&n| n >= 100),
                "{key}: skewed draw {counts:?}"
            );
        }
        // Distinct draws are spread too: 300 draws of 5 out of 40 touch every member.
        if all.len() == 40 {
            let mut seen = BTreeSet::new();
            for _ in 0..300 {
                let got: Vec<String> = cmd(&mut c, &["SRANDMEMBER", key, "5"]).await;
                seen.extend(got);
            }
            assert_eq!(seen, all, "{key}: some member never drawn");
        }
        assert_eq!(
            members(&mut c, key).await,
            all,
            "{key}: SRANDMEMBER changed the set"
        );
    }
}

#[tokio::test]
async fn spop_removes_exactly_what_it_returns() {
    let node = start_node(&[]);
    let mut c = common::conn(&node.url()).await;
    for (key, all) in shapes() {
        sadd(&mut c, key, &all).await;
        let mut left: BTreeSet<String> = all.iter().cloned().collect();
        let one: String = cmd(&mut c, &["SPOP", key]).await;
        assert!(left.remove(&one), "{key}: SPOP gave {one}");
        for n in [1usize, 5, 13] {
            let got: Vec<String> = cmd(&mut c, &["SPOP", key, &n.to_string()]).await;
            assert_eq!(got.len(), n, "{key}: SPOP {n}");
            for m in &got {
                assert!(left.remove(m), "{key}: SPOP {n} gave {m} twice or from nowhere");
            }
            assert_eq!(members(&mut c, key).await, left, "{key}: after SPOP {n}");
            let card: usize = cmd(&mut c, &["SCARD", key]).await;
            assert_eq!(card, left.len());
        }
        let rest: Vec<String> = cmd(&mut c, &["SPOP", key, "100000"]).await;
        assert_eq!(rest.into_iter().collect::<BTreeSet<_>>(), left, "{key}: the rest");
        let exists: i64 = cmd(&mut c, &["EXISTS", key]).await;
        assert_eq!(exists, 0, "{key}: an emptied set is deleted");
    }
}

#[tokio::test]
async fn hrandfield_returns_fields_with_their_values() {
    let node = start_node(&[]);
    let mut c = common::conn(&node.url()).await;
    for (key, n) in [("small", 30usize), ("large", 2000)] {
        let mut args = vec!["HSET".to_string(), key.to_string()];
        let mut all = HashMap::new();
        for i in 0..n {
            all.insert(format!("f{i}"), format!("v{i}"));
            args.push(format!("f{i}"));
            args.push(format!("v{i}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _: usize = cmd(&mut c, &args).await;
        let one: String = cmd(&mut c, &["HRANDFIELD", key]).await;
        assert!(all.contains_key(&one));
        let got: Vec<String> = cmd(&mut c, &["HRANDFIELD", key, "10"]).await;
        let distinct: BTreeSet<&String> = got.iter().collect();
        assert_eq!((got.len(), distinct.len()), (10, 10), "{key}: distinct fields");
        assert!(got.iter().all(|f| all.contains_key(f)));
        let pairs: Vec<(String, String)> = cmd(&mut c, &["HRANDFIELD", key, "-500", "WITHVALUES"]).await;
        assert_eq!(pairs.len(), 500);
        for (f, v) in &pairs {
            assert_eq!(all.get(f), Some(v), "{key}: {f} came with {v}");
        }
        let pairs: Vec<(String, String)> = cmd(&mut c, &["HRANDFIELD", key, "7", "WITHVALUES"]).await;
        assert_eq!(pairs.iter().map(|(f, _)| f).collect::<BTreeSet<_>>().len(), 7);
        for (f, v) in &pairs {
            assert_eq!(all.get(f), Some(v));
        }
        let whole: Vec<(String, String)> = cmd(&mut c, &["HRANDFIELD", key, "100000", "WITHVALUES"]).await;
        assert_eq!(whole.into_iter().collect::<HashMap<_, _>>(), all);
    }
}

/// A full HSCAN/SSCAN returns every element present from start to end at least once (here:
/// exactly once), while other elements come and go and the table resizes between calls.
#[tokio::test]
async fn a_full_scan_returns_every_element_present_throughout() {
    let node = start_node(&[]);
    let mut c = common::conn(&node.url()).await;
    let stable: Vec<String> = (0..2500).map(|i| format!("stable:{i}")).collect();
    sadd(&mut c, "s", &stable).await;
    for f in &stable {
        let _: i64 = cmd(&mut c, &["HSET", "h", f, &format!("{f}!")]).await;
    }
    for (scan, key) in [("SSCAN", "s"), ("HSCAN", "h")] {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut cursor = "0".to_string();
        let mut round = 0;
        loop {
            let (next, items): (String, Vec<String>) =
                cmd(&mut c, &[scan, key, &cursor, "COUNT", "37"]).await;
            if scan == "HSCAN" {
                for pair in items.chunks(2) {
                    if pair[0].starts_with("stable:") {
                        assert_eq!(pair[1], format!("{}!", pair[0]));
                    }
                    *seen.entry(pair[0].clone()).or_default() += 1;
                }
            } else {
                for m in items {
                    *seen.entry(m).or_default() += 1;
                }
            }
            // Churn: grow well past the start size, then remove some of the new ones.
            for j in 0..40 {
                let m = format!("churn:{round}:{j}");
                if scan == "HSCAN" {
                    let _: i64 = cmd(&mut c, &["HSET", key, &m, "x"]).await;
                } else {
                    let _: i64 = cmd(&mut c, &["SADD", key, &m]).await;
                }
            }
            let gone = format!("churn:{}:{}", round / 2, round % 40);
            let _: i64 = cmd(
                &mut c,
                &[if scan == "HSCAN" { "HDEL" } else { "SREM" }, key, &gone],
            )
            .await;
            round += 1;
            assert!(round < 10_000, "{scan} never finished");
            if next == "0" {
                break;
            }
            cursor = next;
        }
        for f in &stable {
            assert_eq!(seen.get(f), Some(&1), "{scan}: {f}");
        }
        assert!(round > 10, "{scan}: COUNT was not honoured ({round} rounds)");
    }
}

#[tokio::test]
async fn scan_type_finds_hashes_and_sets() {
    let node = start_node(&[]);
    let mut c = common::conn(&node.url()).await;
    let _: i64 = cmd(&mut c, &["HSET", "h1", "f", "v"]).await;
    let _: i64 = cmd(&mut c, &["HSET", "h2", "f", "v"]).await;
    let _: i64 = cmd(&mut c, &["SADD", "s1", "m"]).await;
    let _: i64 = cmd(&mut c, &["RPUSH", "l1", "e"]).await;
    let _: () = cmd(&mut c, &["SET", "str", "v"]).await;
    for (kind, expected) in [
        ("hash", vec!["h1", "h2"]),
        ("set", vec!["s1"]),
        ("list", vec!["l1"]),
    ] {
        let (next, keys): (String, Vec<String>) =
            cmd(&mut c, &["SCAN", "0", "COUNT", "100", "TYPE", kind]).await;
        assert_eq!(next, "0");
        let keys: BTreeSet<String> = keys.into_iter().collect();
        let expected: BTreeSet<String> = expected.into_iter().map(String::from).collect();
        assert_eq!(keys, expected, "SCAN TYPE {kind}");
        for k in &keys {
            let t: String = cmd(&mut c, &["TYPE", k]).await;
            assert_eq!(t, kind);
        }
    }
}

/// A huge negative count (picks with repetition) is refused with Redis's range error instead of
/// building an impossible reply — the fuzzer's `HRANDFIELD h -9223372036854775807` aborted the
/// process on allocation — and the largest allowed count is served in full.
#[tokio::test]
async fn absurd_random_pick_counts_are_refused_and_the_server_lives() {
    let node = start_node(&[]);
    let mut c = common::conn(&node.url()).await;
    let _: i64 = cmd(&mut c, &["SADD", "s", "a", "b"]).await;
    let _: i64 = cmd(&mut c, &["HSET", "h", "f", "v"]).await;
    let _: i64 = cmd(&mut c, &["ZADD", "z", "1", "m"]).await;
    for args in [
        ["SRANDMEMBER", "s", "-9223372036854775807"],
        ["HRANDFIELD", "h", "-9223372036854775807"],
        ["ZRANDMEMBER", "z", "-9223372036854775807"],
        ["SRANDMEMBER", "s", "-1048577"],
    ] {
        let mut command = redis::cmd(args[0]);
        command.arg(args[1]).arg(args[2]);
        let err = within(command.query_async::<Vec<String>>(&mut c))
            .await
            .expect_err("refused");
        assert!(
            err.to_string().contains("value is out of range"),
            "{args:?}: {err}"
        );
    }
    let many: Vec<String> = cmd(&mut c, &["SRANDMEMBER", "s", "-1048576"]).await;
    assert_eq!(many.len(), 1 << 20);
    let pong: String = cmd(&mut c, &["PING"]).await;
    assert_eq!(pong, "PONG");
}
