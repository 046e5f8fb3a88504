//! DUMP and RESTORE of streams on the real binary: a stream with groups, consumers and pending
//! entries comes back whole (XRANGE, XINFO STREAM FULL, XPENDING) and goes on working; payloads
//! cross to and from redis-server 7.0.15 in both directions, byte-identical where no clock is
//! involved; damaged payloads are refused with Redis's errors. Every await runs under a timeout.

mod common;

use common::{cmd, flatten, have_redis_server, start_node, start_redis_server, within};
use redis::aio::MultiplexedConnection;

async fn dump(c: &mut MultiplexedConnection, key: &str) -> Vec<u8> {
    within(redis::cmd("DUMP").arg(key).query_async(c))
        .await
        .expect("DUMP")
}

async fn restore(c: &mut MultiplexedConnection, key: &str, payload: &[u8]) -> redis::RedisResult<String> {
    within(redis::cmd("RESTORE").arg(key).arg(0).arg(payload).query_async(c)).await
}

/// What a stream is: its entries, bookkeeping, nodes, groups, consumers with their seen
/// times, pending entries with owners, delivery times and counts, and each group's XPENDING
/// summary. Nothing here depends on when it is asked.
async fn state(c: &mut MultiplexedConnection, key: &str) -> Vec<String> {
    let full: redis::Value = cmd(c, &["XINFO", "STREAM", key, "FULL", "COUNT", "0"])
        .await
        .unwrap();
    let mut words = flatten(&full);
    let range: redis::Value = cmd(c, &["XRANGE", key, "-", "+"]).await.unwrap();
    words.extend(flatten(&range));
    let groups: redis::Value = cmd(c, &["XINFO", "GROUPS", key]).await.unwrap();
    let names: Vec<String> = flatten(&groups)
        .windows(2)
        .filter(|w| w[0] == "name")
        .map(|w| w[1].clone())
        .collect();
    for g in names {
        let summary: redis::Value = cmd(c, &["XPENDING", key, &g]).await.unwrap();
        words.push(format!("XPENDING {g}"));
        words.extend(flatten(&summary));
    }
    words
}

/// The same commands on any server: several nodes (long and numeric fields), entries deleted
/// in the middle and at a node's start, a group two consumers read from (one acknowledges,
/// one entry is claimed with a retry count), a group at `$` with an idle consumer, and a
/// group created with an explicit entries-read.
async fn build(c: &mut MultiplexedConnection, key: &str) {
    for i in 1..=240u64 {
        let id = format!("{}-{}", 1_700_000_000_000 + i / 3, i % 3);
        let payload = "x".repeat((i * 53 % 700) as usize);
        let fields: Vec<String> = if i % 11 == 0 {
            vec!["blob".into(), payload]
        } else {
            vec!["job".into(), i.to_string(), "neg".into(), format!("-{}", i * 977)]
        };
        let mut args = vec!["XADD", key, id.as_str()];
        args.extend(fields.iter().map(String::as_str));
        let _: String = cmd(c, &args).await.unwrap();
    }
    let _: i64 = cmd(
        c,
        &[
            "XDEL",
            key,
            "1700000000010-1",
            "1700000000033-0",
            "1700000000050-2",
        ],
    )
    .await
    .unwrap();
    let _: () = cmd(c, &["XGROUP", "CREATE", key, "work", "0"]).await.unwrap();
    let _: redis::Value = cmd(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "work",
            "alice",
            "COUNT",
            "4",
            "STREAMS",
            key,
            ">",
        ],
    )
    .await
    .unwrap();
    let _: redis::Value = cmd(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "work",
            "bob",
            "COUNT",
            "3",
            "STREAMS",
            key,
            ">",
        ],
    )
    .await
    .unwrap();
    let _: i64 = cmd(c, &["XACK", key, "work", "1700000000000-2"]).await.unwrap();
    let _: redis::Value = cmd(
        c,
        &[
            "XCLAIM",
            key,
            "work",
            "bob",
            "0",
            "1700000000001-0",
            "RETRYCOUNT",
            "5",
            "JUSTID",
        ],
    )
    .await
    .unwrap();
    let _: () = cmd(c, &["XGROUP", "CREATE", key, "audit", "$"]).await.unwrap();
    let _: i64 = cmd(c, &["XGROUP", "CREATECONSUMER", key, "audit", "idle"])
        .await
        .unwrap();
    let _: () = cmd(
        c,
        &[
            "XGROUP",
            "CREATE",
            key,
            "late",
            "1700000000040-0",
            "ENTRIESREAD",
            "120",
        ],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn streams_restore_whole_with_groups_consumers_and_pending_entries() {
    let node = start_node(&[]);
    let mut c = common::conn(&node.url()).await;
    build(&mut c, "s").await;
    let original = state(&mut c, "s").await;
    assert!(original.contains(&"alice".to_string()) && original.contains(&"idle".to_string()));
    let payload = dump(&mut c, "s").await;
    assert_eq!(restore(&mut c, "copy", &payload).await.unwrap(), "OK");
    assert_eq!(state(&mut c, "copy").await, original);
    assert_eq!(
        dump(&mut c, "copy").await,
        payload,
        "the copy dumps to the same bytes"
    );

    // The copy carries on as the original: the next group read delivers the same entries and
    // takes the same ids as pending; appends and trims land in the same nodes.
    for key in ["s", "copy"] {
        let _: redis::Value = cmd(
            &mut c,
            &[
                "XREADGROUP",
                "GROUP",
                "work",
                "carol",
                "COUNT",
                "2",
                "STREAMS",
                key,
                ">",
            ],
        )
        .await
        .unwrap();
        let _: i64 = cmd(&mut c, &["XACK", key, "work", "1700000000001-0"])
            .await
            .unwrap();
        for i in 0..130 {
            let _: String = cmd(
                &mut c,
                &[
                    "XADD",
                    key,
                    "MAXLEN",
                    "~",
                    "200",
                    &format!("1800000000000-{i}"),
                    "k",
                    "v",
                ],
            )
            .await
            .unwrap();
        }
    }
    let (a, b) = (state(&mut c, "s").await, state(&mut c, "copy").await);
    let seen_free = |words: Vec<String>| -> Vec<String> {
        // carol was created by each read a moment apart.
        let mut w = words;
        while let Some(i) = w.iter().position(|x| x == "seen-time") {
            w.drain(i..i + 2);
        }
        w
    };
    let (a, b) = (seen_free(a), seen_free(b));
    let pending_of_carol = |w: &[String]| w.iter().filter(|x| *x == "carol").count();
    assert!(pending_of_carol(&a) > 0);
    // Delivery times of carol's reads may differ by a millisecond; compare everything else.
    let strip_times = |w: Vec<String>| -> Vec<String> {
        w.into_iter()
            .map(|x| match x.parse::<u64>() {
                Ok(t) if t > 1_000_000_000_000 && t < 4_000_000_000_000 => "<time>".into(),
                _ => x,
            })
            .collect()
    };
    assert_eq!(strip_times(a), strip_times(b));

    // RESTORE refuses an existing key without REPLACE, and replaces with it.
    let busy = restore(&mut c, "s", &payload).await.unwrap_err();
    assert!(busy.to_string().contains("BUSYKEY"), "{busy}");
    let replaced: String = within(
        redis::cmd("RESTORE")
            .arg("s")
            .arg(0)
            .arg(&payload[..])
            .arg("REPLACE")
            .query_async(&mut c),
    )
    .await
    .unwrap();
    assert_eq!(replaced, "OK");
    assert_eq!(state(&mut c, "s").await, original);
}

#[tokio::test]
async fn stream_payloads_cross_with_redis_server_both_ways() {
    if !have_redis_server() {
        eprintln!("redis-server not installed: skipped");
        return;
    }
    let redis = start_redis_server();
    let node = start_node(&[]);
    let mut theirs = common::conn(&redis.url()).await;
    let mut ours = common::conn(&node.url()).await;

    // Without consumers nothing depends on the clock: the same commands give the same bytes.
    for c in [&mut theirs, &mut ours] {
        build(c, "s").await;
        let _: i64 = cmd(c, &["XGROUP", "DELCONSUMER", "s", "work", "alice"])
            .await
            .unwrap();
        let _: i64 = cmd(c, &["XGROUP", "DELCONSUMER", "s", "work", "bob"])
            .await
            .unwrap();
        let _: i64 = cmd(c, &["XGROUP", "DELCONSUMER", "s", "audit", "idle"])
            .await
            .unwrap();
        let _: String = cmd(c, &["XADD", "empty", "MAXLEN", "0", "7-7", "a", "b"])
            .await
            .unwrap();
    }
    for key in ["s", "empty"] {
        assert_eq!(
            dump(&mut ours, key).await,
            dump(&mut theirs, key).await,
            "DUMP {key} is byte-identical with redis-server's"
        );
    }

    // redis-server's payload restored here, and ours restored there: each copy is its source.
    for c in [&mut theirs, &mut ours] {
        build(c, "g").await;
    }
    let from_redis = dump(&mut theirs, "g").await;
    assert_eq!(
        restore(&mut ours, "g_from_redis", &from_redis).await.unwrap(),
        "OK"
    );
    assert_eq!(
        state(&mut ours, "g_from_redis").await,
        state(&mut theirs, "g").await
    );
    assert_eq!(dump(&mut ours, "g_from_redis").await, from_redis);

    let from_us = dump(&mut ours, "g").await;
    assert_eq!(restore(&mut theirs, "g_from_us", &from_us).await.unwrap(), "OK");
    assert_eq!(state(&mut theirs, "g_from_us").await, state(&mut ours, "g").await);
    assert_eq!(dump(&mut theirs, "g_from_us").await, from_us);

    // Both sides answer the same to damaged payloads: a cut one, a flipped bit under the
    // checksum, and a node key that is not 16 bytes (its checksum made right).
    let mut cut = from_us.clone();
    cut.truncate(cut.len() / 2);
    let mut flipped = from_us.clone();
    flipped[from_us.len() / 3] ^= 0x10;
    let mut short_key = vec![0x13, 0x01, 0x0f];
    short_key.extend_from_slice(&[0u8; 15]);
    short_key.extend_from_slice(&from_us[19..from_us.len() - 10]);
    short_key.extend_from_slice(&10u16.to_le_bytes());
    let crc = broker::commands::crc64(&short_key);
    short_key.extend_from_slice(&crc.to_le_bytes());
    for bad in [&cut, &flipped, &short_key] {
        let a = restore(&mut ours, "bad", bad).await.unwrap_err().to_string();
        let b = restore(&mut theirs, "bad", bad).await.unwrap_err().to_string();
        assert_eq!(a, b);
        assert!(
            a.contains("checksum are wrong") || a.contains("Bad data format"),
            "{a}"
        );
    }
    let alive: String = cmd(&mut ours, &["PING"]).await.unwrap();
    assert_eq!(alive, "PONG");
}
