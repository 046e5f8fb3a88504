//! `autoscale-node serve` as a node: the control loop with the `local` scaler (real worker
//! processes), `scale +N/-N` against it, `run --redis` feeding it, `/metrics`, `--config`.

mod common;

use common::node::{scale, task_json, wait_for_workers, worker_clients};
use common::{conn, start_node, within};
use redis::AsyncCommands;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_autoscale-node");

/// GET `path` on the node's HTTP port: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of a sample line `name{labels} value` in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn scale_adds_and_gracefully_removes_local_workers() {
    let node = start_node(&["--scaler", "local", "--policy", "manual", "--workers", "2"]);
    let url = node.url();
    let mut c = within(conn(&url)).await;
    assert_eq!(within(wait_for_workers(&mut c, 2)).await, ["1", "2"]);

    let (ok, text) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || scale(&url, "+2")
    })
    .await
    .unwrap();
    assert!(ok, "{text}");
    assert!(text.contains("target 2 → 4"), "{text}");
    assert_eq!(within(wait_for_workers(&mut c, 4)).await, ["1", "2", "3", "4"]);

    // A graceful removal: an idle worker takes the SYN, acknowledges and exits by itself.
    let (ok, text) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || scale(&url, "-1")
    })
    .await
    .unwrap();
    assert!(ok, "{text}");
    assert!(text.contains("every removed worker acknowledged"), "{text}");
    let left = within(wait_for_workers(&mut c, 3)).await;
    let starts: Vec<String> = c.lrange("worker_start_queue", 0, -1).await.unwrap();
    assert_eq!(starts.len(), 4, "each worker announced itself once");

    // /metrics reports the workers and the node's actions; the readiness probe is green.
    let (status, metrics) = http_get(node.http_port, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(&metrics, "autoscale_workers{state=\"live\"}"),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "autoscale_workers_target"), Some(3.0));
    // The initial start is not a scaling action; +2 and -1 are.
    assert_eq!(
        sample(&metrics, "autoscale_scaling_actions_total{direction=\"up\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "autoscale_scaling_actions_total{direction=\"down\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "autoscale_scale_requests_total"), Some(2.0));
    assert_eq!(http_get(node.http_port, "/readyz").0, 200);
    assert_eq!(http_get(node.http_port, "/healthz").0, 200);

    // Bad input is refused clearly, not half-applied.
    let (ok, text) = scale(&url, "+many");
    assert!(!ok && text.contains("expected +N, -N or N"), "{text}");
    assert_eq!(worker_clients(&mut c).await, left);
}

#[tokio::test]
async fn scale_without_a_node_says_so() {
    let node = start_node(&[]);
    let url = node.url();
    let (ok, text) = tokio::task::spawn_blocking(move || scale(&url, "+1"))
        .await
        .unwrap();
    assert!(!ok);
    assert!(text.contains("no autoscale-node control loop"), "{text}");
}

#[tokio::test]
async fn node_stops_its_workers_when_it_stops() {
    let mut node = start_node(&["--scaler", "local", "--policy", "static:3"]);
    let mut c = within(conn(&node.url())).await;
    within(wait_for_workers(&mut c, 3)).await;
    drop(c);
    // SIGTERM: a clean shutdown, which must take the children with it.
    Command::new("kill")
        .arg(node.child.id().to_string())
        .status()
        .unwrap();
    let start = Instant::now();
    while node.child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(20), "node did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(node.child.wait().unwrap().success());
    let out = Command::new("pgrep")
        .args(["-f", &format!("worker --redis {}", node.url())])
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "workers outlived the node: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Acceptance: `serve --scaler local` + `run --redis` + `scale` against it, with `/metrics`
/// scraped while the run goes.
#[tokio::test]
async fn run_feeds_a_serving_node_which_scales_and_reports_metrics() {
    let node = start_node(&[
        "--scaler",
        "local",
        "--policy",
        "reactive-maximum",
        "--workers",
        "3",
        "--time-scale",
        "0.05",
    ]);
    let url = node.url();
    let mut c = within(conn(&url)).await;
    within(wait_for_workers(&mut c, 3)).await;

    let dir = std::env::temp_dir().join(format!("autoscale-node-serve-run-{}", std::process::id()));
    let run = std::process::Command::new(EXE)
        .args(["run", "--redis", &url, "--tasks", "120", "--time-scale", "0.05"])
        .args(["--report", dir.to_str().unwrap()])
        .env("AUTOSCALE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // While it runs: the queue series move and the node reports its workers.
    let start = Instant::now();
    let metrics = loop {
        let (_, m) = http_get(node.http_port, "/metrics");
        let pushed = sample(
            &m,
            "autoscale_queue_pushed_total{db=\"0\",queue=\"worker_queue\"}",
        );
        if pushed.unwrap_or(0.0) > 0.0 && sample(&m, "autoscale_decisions_total").unwrap_or(0.0) > 0.0 {
            break m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no queue series during the run:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for series in [
        "autoscale_queue_length{db=\"0\",queue=\"worker_queue\"}",
        "autoscale_queue_oldest_age_seconds{db=\"0\",queue=\"worker_queue\"}",
        "autoscale_queue_wait_seconds_count{db=\"0\",queue=\"worker_queue\"}",
        "autoscale_workers{state=\"live\"}",
        "autoscale_workers_busy",
        "autoscale_workers_target",
        "autoscale_decision_latency_seconds_count",
        "autoscale_qos_ratio",
    ] {
        assert!(sample(&metrics, series).is_some(), "{series} missing:\n{metrics}");
    }

    // Manual scaling still works mid-run (the policy may move it again later).
    let (ok, text) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || scale(&url, "+2")
    })
    .await
    .unwrap();
    assert!(ok, "{text}");

    let out = tokio::task::spawn_blocking(move || run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("it does the scaling"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["lost"], 0, "{report}");
    let tasks = report["tasks"].as_u64().unwrap();
    assert_eq!(
        report["completed"].as_u64().unwrap() + report["dead_lettered"].as_u64().unwrap(),
        tasks,
        "{report}"
    );
    // The node's workers did the work and are still there for the next job.
    assert!(!worker_clients(&mut c).await.is_empty());
    let (_, m) = http_get(node.http_port, "/metrics");
    assert!(
        sample(&m, "autoscale_tasks_completed_total").unwrap() > 0.0,
        "{m}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn config_file_sets_options_and_rejects_unknown_keys() {
    let dir = std::env::temp_dir().join(format!("autoscale-node-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("node.toml");
    std::fs::write(
        &good,
        "scaler = \"local\"\npolicy = \"manual\"\nworkers = 2\nmax_workers = 4\n",
    )
    .unwrap();
    let node = start_node(&["--config", good.to_str().unwrap()]);
    let url = node.url();
    let mut c = within(conn(&url)).await;
    within(wait_for_workers(&mut c, 2)).await;
    // max-workers = 4 from the file bounds a request for 10.
    let (ok, text) = tokio::task::spawn_blocking(move || scale(&url, "10"))
        .await
        .unwrap();
    assert!(
        ok && text.contains("limited to the node's bounds 1..=4"),
        "{text}"
    );
    within(wait_for_workers(&mut c, 4)).await;

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "scaler = \"local\"\nmax_wrokers = 4\n").unwrap();
    let out = Command::new(EXE)
        .args([
            "serve",
            "--port",
            "0",
            "--http-port",
            "0",
            "--config",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown option \"max_wrokers\""), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn scale_down_that_nobody_acknowledges_times_out_with_a_clear_message() {
    let node = start_node(&[
        "--scaler",
        "local",
        "--policy",
        "manual",
        "--workers",
        "1",
        "--min-workers",
        "0",
    ]);
    let url = node.url();
    let mut c = within(conn(&url)).await;
    within(wait_for_workers(&mut c, 1)).await;
    // The only worker is busy for 30 s.
    let _: () = c.lpush("worker_queue", task_json("busy", 30.0)).await.unwrap();
    let start = Instant::now();
    while c.llen::<_, u64>("worker_queue").await.unwrap() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the worker never took the task"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = tokio::task::spawn_blocking(move || {
        Command::new(EXE)
            .args(["scale", "-1", "--redis", &url, "--timeout-s", "1"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("did not acknowledge the scale-down in time"),
        "{text}"
    );
    assert!(text.contains("1 scale-downs pending"), "{text}");
    // Nothing was killed: the busy worker is still there, working.
    assert_eq!(worker_clients(&mut c).await, ["1"]);
}

#[tokio::test]
async fn tasks_of_a_worker_that_disconnected_are_requeued_after_the_grace_period() {
    let node = start_node(&[
        "--scaler",
        "local",
        "--policy",
        "manual",
        "--workers",
        "1",
        "--orphan-grace-s",
        "1",
        "--decision-period-s",
        "0.25",
    ]);
    let url = node.url();
    let mut c = within(conn(&url)).await;
    within(wait_for_workers(&mut c, 1)).await;
    // A worker on another machine takes a task into its processing list, then its connection
    // dies (no process of the node's to reap).
    {
        let mut ghost = within(conn(&url)).await;
        let _: () = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg("worker:ghost")
            .query_async(&mut ghost)
            .await
            .unwrap();
        let _: () = ghost.lpush("staging", task_json("orphan", 0.01)).await.unwrap();
        let _: Option<String> = redis::cmd("LMOVE")
            .arg("staging")
            .arg("worker_queue:processing:ghost")
            .arg("RIGHT")
            .arg("LEFT")
            .query_async(&mut ghost)
            .await
            .unwrap();
    }
    // The node's own worker finishes it once it is back on worker_queue.
    let start = Instant::now();
    loop {
        let results: Vec<String> = c.lrange("result_queue", 0, -1).await.unwrap();
        if results.iter().any(|r| r.contains("\"orphan\"")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the orphaned task was never re-queued"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: u64 = c.llen("worker_queue:processing:ghost").await.unwrap();
    assert_eq!(left, 0);
    let (_, m) = http_get(node.http_port, "/metrics");
    assert_eq!(sample(&m, "autoscale_requeued_tasks_total"), Some(1.0), "{m}");
}

/// The collector publishes its running totals and, per 100 ms, the largest completion time; the
/// node reads them — in-process from the embedded broker and over the network alike — with one
/// meaning: the largest completion time of the tasks collected since the previous reading.
/// `reactive-maximum` scales on it.
#[tokio::test]
async fn both_readers_see_what_the_collector_published() {
    use autoscale_node::node::reader::{EmbeddedReader, FarmReader, RedisReader};
    use functions::protocol::keys;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/", listener.local_addr().unwrap());
    let broker = broker::Broker::new(broker::BrokerConfig::default());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(broker.clone().serve(listener, stop.clone().cancelled_owned()));
    let mut c = within(conn(&url)).await;
    // The farm started 100 s ago; a result generated at 100 − t s completes in about t s.
    let program_start = functions::runtime::unix_now() - 100.0;
    let _: () = c.set(keys::PROGRAM_START, program_start).await.unwrap();
    // The real collector, on a thread of its own (its future is not Send).
    let collector = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(functions::collector::run_collector(
                functions::FunctionConfig {
                    redis_url: url,
                    poll_interval_s: 0.1,
                    ..functions::FunctionConfig::default()
                },
                stop,
            ))
        })
    };
    let result = |id: &str, t: f64| {
        serde_json::json!({"task_id": id, "task_application": "image", "task_priority": "normal",
            "task_gen_timestamp": 100.0 - t, "task_deadline": 2.0 * t, "task_emit_timestamp": 100.0 - t,
            "task_emit_time": 0.0, "task_work_timestamp": 100.0, "task_work_time": 0.0,
            "processing_time": 0.1, "image_size": 1024, "status": "completed"})
        .to_string()
    };
    let mut readers: Vec<(&str, Box<dyn FarmReader>)> = vec![
        (
            "embedded",
            Box::new(EmbeddedReader::new(broker.clone(), program_start)),
        ),
        ("redis", Box::new(RedisReader::new(c.clone(), program_start))),
    ];
    for (_, r) in readers.iter_mut() {
        within(r.read()).await.unwrap();
    }
    for (i, t) in [1.0, 3.0, 2.0].into_iter().enumerate() {
        let _: () = c
            .lpush("result_queue", result(&format!("t{i}"), t))
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.get::<_, Option<u64>>(keys::TASKS_TOTAL).await.unwrap() != Some(3) {
        assert!(
            std::time::Instant::now() < deadline,
            "the collector did not collect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the last 100 ms bucket close.
    tokio::time::sleep(Duration::from_millis(250)).await;
    for (name, r) in readers.iter_mut() {
        let reading = within(r.read()).await.unwrap();
        let collected = reading.collected.expect("totals");
        assert_eq!((collected.tasks_total, collected.qos_met_total), (3, 3), "{name}");
        assert!(
            (collected.latency_sum_s - 6.0).abs() < 0.5,
            "{name}: {collected:?}"
        );
        assert!(
            (collected.window_max_s - 3.0).abs() < 0.3,
            "{name}: {collected:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    for (name, r) in readers.iter_mut() {
        let again = within(r.read()).await.unwrap().collected.expect("totals");
        assert_eq!(
            again.window_max_s, 0.0,
            "{name}: nothing collected since the last reading"
        );
        assert_eq!(again.tasks_total, 3, "{name}");
    }
    stop.cancel();
    let _ = collector.join();
}
