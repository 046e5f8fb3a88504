//! Queue metrics for every queue shape — a stream's consumer groups and sorted sets of
//! delayed jobs besides lists — through INFO, QSTATS and `/metrics`, on the real binary.

mod common;

use common::{cmd, conn, http_get, sample, start_node, within};
use std::collections::HashMap;

type Stats = HashMap<String, HashMap<String, String>>;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn num(stats: &Stats, queue: &str, field: &str) -> f64 {
    stats
        .get(queue)
        .and_then(|f| f.get(field))
        .unwrap_or_else(|| panic!("{queue}.{field} missing from {stats:?}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_groups_lag_pending_entries_and_ack_waits() {
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    let _: () = cmd(&mut c, &["XGROUP", "CREATE", "jobs", "workers", "$", "MKSTREAM"])
        .await
        .unwrap();
    let _: () = cmd(&mut c, &["XGROUP", "CREATE", "jobs", "audit", "0"])
        .await
        .unwrap();
    // Five entries whose ids say they were added 4 s ago.
    let t0 = now_ms() - 4_000;
    for i in 0..5 {
        let id = format!("{t0}-{i}");
        let _: String = cmd(&mut c, &["XADD", "jobs", &id, "n", &i.to_string()])
            .await
            .unwrap();
    }
    let read: redis::Value = cmd(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "workers",
            "w1",
            "COUNT",
            "2",
            "STREAMS",
            "jobs",
            ">",
        ],
    )
    .await
    .unwrap();
    assert!(matches!(read, redis::Value::Array(_)), "{read:?}");
    let acked: i64 = cmd(&mut c, &["XACK", "jobs", "workers", &format!("{t0}-0")])
        .await
        .unwrap();
    assert_eq!(acked, 1);

    let stats: Stats = cmd(&mut c, &["QSTATS", "jobs"]).await.unwrap();
    let w = &stats["jobs@workers"];
    assert_eq!(
        (w["kind"].as_str(), w["key"].as_str(), w["group"].as_str()),
        ("stream", "jobs", "workers")
    );
    assert_eq!(num(&stats, "jobs@workers", "length"), 3.0, "undelivered: the lag");
    assert_eq!(num(&stats, "jobs@workers", "pending"), 1.0);
    assert_eq!(num(&stats, "jobs@workers", "pushed_total"), 5.0);
    assert_eq!(num(&stats, "jobs@workers", "popped_total"), 2.0, "delivered");
    assert_eq!(num(&stats, "jobs@workers", "acked_total"), 1.0);
    assert_eq!(num(&stats, "jobs@workers", "wait_count"), 1.0);
    assert!(
        num(&stats, "jobs@workers", "wait_mean_ms") >= 4_000.0,
        "{stats:?}"
    );
    assert!(num(&stats, "jobs@workers", "oldest_age_ms") >= 4_000.0);
    assert!(num(&stats, "jobs@workers", "oldest_pending_age_ms") >= 4_000.0);
    assert_eq!(w["consumers"], "w1");
    // The other group has read nothing.
    assert_eq!(num(&stats, "jobs@audit", "length"), 5.0);
    assert_eq!(num(&stats, "jobs@audit", "pending"), 0.0);
    assert_eq!(num(&stats, "jobs@audit", "oldest_pending_age_ms"), 0.0);

    // Deleting an undelivered entry in the middle: Redis no longer knows the lag, the
    // entries are counted.
    let _: i64 = cmd(&mut c, &["XDEL", "jobs", &format!("{t0}-3")]).await.unwrap();
    let stats: Stats = cmd(&mut c, &["QSTATS", "jobs"]).await.unwrap();
    assert_eq!(num(&stats, "jobs@workers", "length"), 2.0);

    // INFO lists each group, named key@group.
    let info: String = cmd(&mut c, &["INFO", "queues"]).await.unwrap();
    let line = info
        .lines()
        .find(|l| l.starts_with("queue_jobs@workers:"))
        .unwrap_or_else(|| panic!("no group line in {info}"));
    assert!(
        line.contains("kind=stream,key=jobs,group=workers,length=2,pending=1"),
        "{line}"
    );

    // /metrics: a sample per group, labelled with it.
    let (status, m) = within(async { http_get(node.http_port, "/metrics") }).await;
    assert_eq!(status, 200);
    let labels = r#"{db="0",queue="jobs",group="workers"}"#;
    assert_eq!(
        sample(&m, &format!("autoscale_queue_pending{labels}")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(sample(&m, &format!("autoscale_queue_length{labels}")), Some(2.0));
    assert_eq!(
        sample(&m, &format!("autoscale_queue_acked_total{labels}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, &format!("autoscale_queue_wait_seconds_count{labels}")),
        Some(1.0)
    );
    let info_series = r#"autoscale_queue_info{db="0",queue="jobs",group="workers",kind="stream"}"#;
    assert_eq!(sample(&m, info_series), Some(1.0), "{m}");

    // QSTATS RESET clears the acknowledgement counters; a destroyed group is no queue.
    let _: () = cmd(&mut c, &["QSTATS", "RESET", "jobs"]).await.unwrap();
    let stats: Stats = cmd(&mut c, &["QSTATS", "jobs"]).await.unwrap();
    assert_eq!(num(&stats, "jobs@workers", "acked_total"), 0.0);
    let _: i64 = cmd(&mut c, &["XGROUP", "DESTROY", "jobs", "audit"])
        .await
        .unwrap();
    let stats: Stats = cmd(&mut c, &["QSTATS"]).await.unwrap();
    assert!(
        stats.contains_key("jobs@workers") && !stats.contains_key("jobs@audit"),
        "{stats:?}"
    );
    let _: i64 = cmd(&mut c, &["DEL", "jobs"]).await.unwrap();
    let stats: Stats = cmd(&mut c, &["QSTATS"]).await.unwrap();
    assert!(!stats.keys().any(|k| k.starts_with("jobs")), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_job_sets_count_due_and_scheduled_jobs() {
    let node = start_node(&[]);
    let mut c = conn(&node.url()).await;
    let now = now_ms();
    // RQ's scheduled registry: Unix seconds. One job 10 s overdue, two in 100 s.
    let s = |ms: u64| format!("{}", ms as f64 / 1000.0);
    let _: i64 = cmd(
        &mut c,
        &[
            "ZADD",
            "rq:scheduled:default",
            &s(now - 10_000),
            "a",
            &s(now + 100_000),
            "b",
            &s(now + 100_000),
            "c",
        ],
    )
    .await
    .unwrap();
    // BullMQ's delayed set: ms × 4096 plus a counter.
    let bull = |ms: u64, n: u64| (ms * 4096 + n).to_string();
    let _: i64 = cmd(
        &mut c,
        &[
            "ZADD",
            "bull:mail:delayed",
            &bull(now - 2_000, 7),
            "1",
            &bull(now - 1_000, 8),
            "2",
            &bull(now + 60_000, 9),
            "3",
        ],
    )
    .await
    .unwrap();
    // A sorted set no pattern names is no queue.
    let _: i64 = cmd(&mut c, &["ZADD", "leaderboard", "1", "x"]).await.unwrap();

    let stats: Stats = cmd(&mut c, &["QSTATS"]).await.unwrap();
    assert!(!stats.contains_key("leaderboard"), "{stats:?}");
    let rq = &stats["rq:scheduled:default"];
    assert_eq!((rq["kind"].as_str(), rq["unit"].as_str()), ("delayed", "s"));
    assert_eq!(num(&stats, "rq:scheduled:default", "length"), 1.0, "due now");
    assert_eq!(num(&stats, "rq:scheduled:default", "scheduled"), 2.0);
    let overdue = num(&stats, "rq:scheduled:default", "oldest_age_ms");
    assert!((10_000.0..20_000.0).contains(&overdue), "{overdue}");
    let next = num(&stats, "rq:scheduled:default", "next_due_ms");
    assert!((80_000.0..=100_000.0).contains(&next), "{next}");
    assert_eq!(stats["bull:mail:delayed"]["unit"], "bullmq");
    assert_eq!(num(&stats, "bull:mail:delayed", "length"), 2.0);
    assert_eq!(num(&stats, "bull:mail:delayed", "scheduled"), 1.0);
    let overdue = num(&stats, "bull:mail:delayed", "oldest_age_ms");
    assert!((2_000.0..12_000.0).contains(&overdue), "{overdue}");

    // Patterns are configurable; sets created afterwards are matched.
    let bad: redis::RedisResult<()> =
        cmd(&mut c, &["CONFIG", "SET", "queue-delayed-sets", "later:* hours"]).await;
    let e = bad.unwrap_err().to_string();
    assert!(e.contains("unknown score unit 'hours'"), "{e}");
    let _: () = cmd(&mut c, &["CONFIG", "SET", "queue-delayed-sets", "later:*   ms"])
        .await
        .unwrap();
    let got: Vec<String> = cmd(&mut c, &["CONFIG", "GET", "queue-delayed-sets"])
        .await
        .unwrap();
    assert_eq!(got, ["queue-delayed-sets", "later:* ms"]);
    let _: i64 = cmd(&mut c, &["ZADD", "later:x", &(now - 500).to_string(), "j"])
        .await
        .unwrap();
    let info: String = cmd(&mut c, &["INFO", "queues"]).await.unwrap();
    assert!(
        info.contains("queue_later:x:kind=delayed,unit=ms,length=1,scheduled=0"),
        "{info}"
    );

    let (_, m) = within(async { http_get(node.http_port, "/metrics") }).await;
    let rq_labels = r#"{db="0",queue="rq:scheduled:default"}"#;
    assert_eq!(
        sample(&m, &format!("autoscale_queue_scheduled{rq_labels}")),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, &format!("autoscale_queue_length{rq_labels}")),
        Some(1.0)
    );
    // Delayed sets count no pushes or pops: no such sample for them.
    assert_eq!(
        sample(&m, &format!("autoscale_queue_pushed_total{rq_labels}")),
        None
    );

    // Removing the due job leaves only scheduled ones; emptying the set ends the queue.
    let _: i64 = cmd(&mut c, &["ZREM", "rq:scheduled:default", "a"]).await.unwrap();
    let stats: Stats = cmd(&mut c, &["QSTATS", "rq:scheduled:default"]).await.unwrap();
    assert_eq!(num(&stats, "rq:scheduled:default", "length"), 0.0);
    assert_eq!(num(&stats, "rq:scheduled:default", "oldest_age_ms"), 0.0);
    let _: i64 = cmd(&mut c, &["DEL", "rq:scheduled:default"]).await.unwrap();
    let stats: Stats = cmd(&mut c, &["QSTATS"]).await.unwrap();
    assert!(!stats.contains_key("rq:scheduled:default"), "{stats:?}");
}
