//! `autoscale-node serve` as a node: the control loop with the `local` scaler (real worker
//! processes), `scale +N/-N` against it, `run --redis` feeding it, `/metrics`, `--config`.

mod common;

use common::node::{scale, task_json, wait_for_workers, worker_clients};
use common::{cmd, conn, http_get, sample, start_node, within};
use redis::AsyncCommands;
use std::process::Command;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_autoscale-node");

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

/// The address line is the node's "ready": a `run --redis` that connects the moment it is
/// printed must find the controller (it once could not, for a few milliseconds, and then ran
/// its own workers beside the node's and could not survive the node's restart).
#[tokio::test]
async fn a_node_is_found_by_the_time_it_prints_its_address() {
    for _ in 0..3 {
        let node = start_node(&["--scaler", "local", "--policy", "static:1", "--workers", "1"]);
        let mut c = within(conn(&node.url())).await;
        let clients: String = within(cmd(&mut c, &["CLIENT", "LIST"])).await.unwrap();
        assert!(
            clients.contains("name=autoscale-node:controller"),
            "no controller among the clients right after the address was printed:\n{clients}"
        );
    }
}

#[tokio::test]
async fn node_stops_its_workers_when_it_stops() {
    // `--workers 3`: an idle node never scales up on its own, static policy or not.
    let mut node = start_node(&["--scaler", "local", "--policy", "static:3", "--workers", "3"]);
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

    let (broker, url, stop) = embedded_broker().await;
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

/// The node's published status (`autoscale:node:status`), `null` if none.
async fn status(c: &mut redis::aio::MultiplexedConnection) -> serde_json::Value {
    let raw: Option<String> = within(c.get("autoscale:node:status")).await.unwrap();
    raw.map_or(serde_json::Value::Null, |r| serde_json::from_str(&r).unwrap())
}

/// Polls the status until `done` holds, failing after `secs` with `what` and the last status.
async fn status_until(
    c: &mut redis::aio::MultiplexedConnection,
    secs: u64,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let s = status(c).await;
        if done(&s) {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s; status {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Acceptance: an idle `serve --scaler local` for the equivalent of 60 s never scales up —
/// although its policy (`static:10`) asks for more workers at every decision — and ends at
/// `--min-workers`, where it stays.
#[tokio::test]
async fn an_idle_node_never_scales_up_and_settles_at_the_minimum() {
    let node = start_node(&[
        "--scaler",
        "local",
        "--workers",
        "4",
        "--min-workers",
        "2",
        "--policy",
        "static:10",
        "--decision-period-s",
        "1",
        "--time-scale",
        "0.1",
    ]);
    let mut c = within(conn(&node.url())).await;
    within(wait_for_workers(&mut c, 4)).await;
    // 60 s of workload time with no client at all.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let s = status_until(&mut c, 20, "down to the minimum", |s| {
        s["target"] == 2 && s["workers"]["live"] == 2 && s["workers"]["leaving"] == 0
    })
    .await;
    assert_eq!(s["scale_ups"], 0, "{s}");
    assert!(s["decisions"].as_u64().unwrap() >= 20, "{s}");
    // It stays there: more decisions, no change.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = status(&mut c).await;
    assert_eq!(
        (later["target"].as_u64(), later["scale_ups"].as_u64()),
        (Some(2), Some(0)),
        "{later}"
    );
    assert_eq!(later["scaling_actions"], 1, "4 → 2 in one step: {later}");
    assert!(later["decisions"].as_u64() > s["decisions"].as_u64(), "{later}");
    assert_eq!(worker_clients(&mut c).await.len(), 2);
}

/// A burst wakes an embedded node at once: with a 10-minute decision period, only the queue
/// hook can make it scale within the test's bounds.
#[tokio::test]
async fn a_burst_wakes_the_node_long_before_its_period() {
    let node = start_node(&[
        "--scaler",
        "local",
        "--workers",
        "1",
        "--policy",
        "queue-proportional:5",
        "--decision-period-s",
        "600",
    ]);
    let mut c = within(conn(&node.url())).await;
    within(wait_for_workers(&mut c, 1)).await;
    let before = status_until(&mut c, 10, "a first decision", |s| s["target"] == 1).await;
    let tasks: Vec<String> = (0..40).map(|i| task_json(&format!("b{i}"), 5.0)).collect();
    let _: () = within(c.lpush("worker_queue", &tasks)).await.unwrap();
    let s = status_until(&mut c, 20, "scaled up on the burst", |s| {
        s["target"].as_u64().unwrap_or(0) > 1
    })
    .await;
    assert!(s["scale_ups"].as_u64().unwrap() >= 1, "{s}");
    // Event decisions are rate-limited: a handful, not one per pushed task.
    let decisions = s["decisions"].as_u64().unwrap() - before["decisions"].as_u64().unwrap();
    assert!((1..=5).contains(&decisions), "{decisions} decisions: {s}");
}

/// Runs `autoscale-node ARGS` to completion (under a generous bound) and returns it.
fn run_to_end(args: &[&str]) -> std::process::Output {
    let child = Command::new(EXE)
        .args(args)
        .env("AUTOSCALE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("autoscale-node {args:?} did not finish in 180 s");
        }
    }
}

/// An in-process broker serving a free loopback port: it, its URL, and what stops it.
async fn embedded_broker() -> (broker::Broker, String, tokio_util::sync::CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/", listener.local_addr().unwrap());
    let broker = broker::Broker::new(broker::BrokerConfig::default());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(broker.clone().serve(listener, stop.clone().cancelled_owned()));
    (broker, url, stop)
}

/// `run --redis` of 10 tasks against `node`, to its end, on a blocking thread (the report's
/// directory cannot be created: these runs are refused before they would write one).
fn run_ten_tasks(node: &common::ServerProcess) -> tokio::task::JoinHandle<std::process::Output> {
    let url = node.url();
    tokio::task::spawn_blocking(move || {
        run_to_end(&[
            "run",
            "--redis",
            &url,
            "--tasks",
            "10",
            "--report",
            "/nonexistent/report",
        ])
    })
}

fn report_of(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// Acceptance: the README's `serve` + `run --redis` example, as written (only the ports and
/// the job's size differ): `serve` has no time scale and no plan, `run` announces its clock
/// (0.1) and pushes its phases. The node adopts the clock, reads the plan from `input_queue`
/// and decides with the calendar model; the job reaches about the QoS of `run` alone, and the
/// report names the node's policy and the node's own scaling actions.
#[tokio::test]
async fn the_readme_serve_and_run_example_reaches_the_qos_of_run_alone() {
    let node = start_node(&["--scaler", "local", "--workers", "4"]);
    let url = node.url();
    let mut c = within(conn(&url)).await;
    within(wait_for_workers(&mut c, 4)).await;
    let idle_policy = status_until(&mut c, 10, "a status", |s| s.is_object()).await["policy"].clone();
    let base = std::env::temp_dir().join(format!("autoscale-node-readme-{}", std::process::id()));
    let (served_dir, alone_dir) = (base.join("served"), base.join("alone"));

    let served = tokio::task::spawn_blocking({
        let (url, dir) = (url.clone(), served_dir.clone());
        move || {
            run_to_end(&[
                "run",
                "--redis",
                &url,
                "--tasks",
                "150",
                "--report",
                dir.to_str().unwrap(),
            ])
        }
    });
    // While the job runs, the node says it decides on the job's clock and plan.
    let during = status_until(&mut c, 30, "the job's clock and plan", |s| {
        s["time_scale"] == 0.1 && s["plan"] == "input_queue"
    })
    .await;
    assert_ne!(
        during["policy"], idle_policy,
        "bundled switches to its calendar model: {during}"
    );
    let out = served.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "run --redis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("adopted the job's time scale 0.1"), "{stdout}");
    let after = status(&mut c).await;
    let alone = tokio::task::spawn_blocking({
        let dir = alone_dir.clone();
        move || run_to_end(&["run", "--tasks", "150", "--report", dir.to_str().unwrap()])
    })
    .await
    .unwrap();
    assert!(
        alone.status.success(),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );

    let (served, alone) = (report_of(&served_dir), report_of(&alone_dir));
    let qos = |r: &serde_json::Value| r["qos_percent"].as_f64().unwrap();
    eprintln!(
        "README example: QoS {:.2} % with serve + run --redis, {:.2} % with run alone",
        qos(&served),
        qos(&alone)
    );
    assert_eq!(served["lost"], 0, "{served}");
    assert!(
        qos(&served) >= 95.0 && qos(&served) >= qos(&alone) - 3.0,
        "{served}\n{alone}"
    );
    // The report names the node's policy and counts the node's actions.
    let policy = served["policy"].as_str().unwrap();
    assert!(policy.contains("the serving node's"), "{policy}");
    assert!(
        policy.starts_with(during["policy"].as_str().unwrap()),
        "{policy} vs {during}"
    );
    let actions = served["scaling_actions"].as_u64().unwrap();
    assert!(actions > 0, "{served}");
    assert!(
        actions <= after["scaling_actions"].as_u64().unwrap(),
        "{served}\n{after}"
    );
    std::fs::remove_dir_all(&base).ok();
}

/// A node whose operator fixed its clock refuses a job on another one, and `run` stops before
/// emitting anything, with the node's reason.
#[tokio::test]
async fn a_job_on_another_clock_is_refused_by_a_node_with_a_fixed_one() {
    let node = start_node(&[
        "--scaler",
        "local",
        "--workers",
        "1",
        "--policy",
        "manual",
        "--time-scale",
        "1",
    ]);
    let mut c = within(conn(&node.url())).await;
    within(wait_for_workers(&mut c, 1)).await;
    let out = run_ten_tasks(&node).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("refused the job") && stderr.contains("--time-scale 1"),
        "{stderr}"
    );
    let pushed: Option<u64> = within(c.get("worker_queue:enqueued_total")).await.unwrap();
    assert_eq!(pushed, None, "nothing was emitted");
    assert_eq!(status(&mut c).await["time_scale"], 1.0);
}

/// A run started while its node restarts (the node's status still fresh, its controller not
/// connected yet) waits for the node instead of taking the farm for its own: here a stand-in
/// controller connects a second later and refuses the job, which only a run that waited and
/// delegated can hear.
#[tokio::test]
async fn a_run_waits_for_a_node_that_is_restarting() {
    // A node's status as it publishes it (expiring 5 s after its last tick).
    let mut status = serde_json::json!({"scaler": "local", "policy": "manual", "target": 1,
        "workers": {"live": 0, "starting": 0, "leaving": 0, "pending_scale_down": 0},
        "decisions": 0, "scaling_actions": 0, "min_workers": 0, "max_workers": 4});
    let node = start_node(&[]);
    let mut c = within(conn(&node.url())).await;
    let _: () = within(c.set_ex("autoscale:node:status", status.to_string(), 5))
        .await
        .unwrap();
    let run = run_ten_tasks(&node);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut controller = within(conn(&node.url())).await;
    let _: () = within(cmd(
        &mut controller,
        &["CLIENT", "SETNAME", "autoscale-node:controller"],
    ))
    .await
    .unwrap();
    // Answer the job's announcement as a node with another clock would.
    let deadline = Instant::now() + Duration::from_secs(20);
    let job: serde_json::Value = loop {
        let raw: Option<String> = within(controller.get("autoscale:job")).await.unwrap();
        if let Some(raw) = raw {
            break serde_json::from_str(&raw).unwrap();
        }
        assert!(Instant::now() < deadline, "the run announced no job");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    status["job"] =
        serde_json::json!({"id": job["id"], "accepted": false, "message": "refused by the stand-in"});
    let _: () = within(controller.set_ex("autoscale:node:status", status.to_string(), 5))
        .await
        .unwrap();
    let out = run.await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("its control loop is not connected now; waiting"),
        "{stderr}"
    );
    assert!(stderr.contains("refused by the stand-in"), "{stderr}");
}

/// A controller that publishes a plan at `autoscale:plan` gives the node its calendar (and
/// the bundled policy its calendar model) without any phase in `input_queue`; without it the
/// node is back on its metrics.
#[tokio::test]
async fn a_published_plan_switches_the_node_to_the_calendar_and_back() {
    let node = start_node(&["--scaler", "local", "--workers", "1"]);
    let mut c = within(conn(&node.url())).await;
    within(wait_for_workers(&mut c, 1)).await;
    let before = status_until(&mut c, 10, "a status", |s| s.is_object()).await;
    assert_eq!(before["plan"], serde_json::Value::Null, "{before}");
    let start: f64 = within(c.get::<_, String>("program_start_time"))
        .await
        .unwrap()
        .parse()
        .unwrap();
    let phases = functions::emitter::phase_messages(&workload::WorkloadConfig::default(), 1);
    let plan = serde_json::json!({
        "start_s": functions::runtime::unix_now() - start,
        "phases": phases,
    });
    let _: () = within(c.set("autoscale:plan", plan.to_string())).await.unwrap();
    let planned = status_until(&mut c, 20, "the published plan", |s| {
        s["plan"] == "autoscale:plan"
    })
    .await;
    assert_ne!(planned["policy"], before["policy"], "{planned}");
    let _: () = within(c.del("autoscale:plan")).await.unwrap();
    let after = status_until(&mut c, 20, "no plan", |s| s["plan"].is_null()).await;
    assert_eq!(after["policy"], before["policy"], "{after}");
}

/// `serve --record`: the traffic a job brought is written as a trace, and `eval --trace`
/// replays it.
#[tokio::test]
async fn serve_records_the_traffic_and_eval_replays_it() {
    let dir = std::env::temp_dir().join(format!("autoscale-node-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("served.csv");
    let mut node = start_node(&[
        "--scaler",
        "local",
        "--workers",
        "3",
        "--policy",
        "static:3",
        "--record",
        trace.to_str().unwrap(),
    ]);
    let mut c = within(conn(&node.url())).await;
    within(wait_for_workers(&mut c, 3)).await;
    let out = tokio::task::spawn_blocking({
        let (url, report) = (node.url(), dir.join("report"));
        move || {
            run_to_end(&[
                "run",
                "--redis",
                &url,
                "--tasks",
                "40",
                "--time-scale",
                "0.05",
                "--report",
                report.to_str().unwrap(),
            ])
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let emitted = report_of(&dir.join("report"))["emitted"].as_u64().unwrap();
    // A re-queued or foreign non-task element is not an arrival of work.
    let _: () = within(c.rpush("worker_queue", "not a task")).await.unwrap();
    // SIGTERM: the node writes what is left and exits.
    Command::new("kill")
        .arg(node.child.id().to_string())
        .status()
        .unwrap();
    let start = Instant::now();
    while node.child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(20), "node did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&trace).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "timestamp,processing_s");
    assert_eq!(rows.len() as u64 - 1, emitted, "one row per emitted task");
    // The processing times are the workload's (about 1.5 s on average), not the scaled ones.
    let mean: f64 = rows[1..]
        .iter()
        .map(|r| r.split(',').nth(1).unwrap().parse::<f64>().unwrap())
        .sum::<f64>()
        / emitted as f64;
    assert!((0.5..4.0).contains(&mean), "mean processing time {mean}");

    let eval = run_to_end(&[
        "eval",
        "--trace",
        trace.to_str().unwrap(),
        "--baselines",
        "static:4",
        "--episodes",
        "1",
    ]);
    let stdout = String::from_utf8_lossy(&eval.stdout);
    assert!(
        eval.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    assert!(stdout.contains("static:4"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Queued work and the oldest task's slack, read in-process and over the network alike, from
/// what the real emitter and worker count: the emitter adds each task's time, the worker adds
/// what it takes, a hand-back subtracts it.
#[tokio::test]
async fn both_readers_see_the_queued_work_and_the_oldest_slack() {
    use autoscale_node::node::reader::{EmbeddedReader, FarmReader, RedisReader};
    use functions::protocol::keys;

    let (broker, url, stop) = embedded_broker().await;
    let mut c = within(conn(&url)).await;
    let program_start = functions::runtime::unix_now();
    let _: () = within(c.set(keys::PROGRAM_START, program_start)).await.unwrap();
    // One phase of 3 tasks, emitted within a second at time scale 10 (so each takes 3–30 s
    // to process: the worker below holds its first task for the whole check).
    let mut workload = workload::WorkloadConfig {
        base_rate_per_min: 1800.0,
        window_s: 0.1,
        ..workload::WorkloadConfig::default()
    };
    workload.phases.truncate(1);
    workload.phases[0].multiplier = 1.0;
    workload.phases[0].duration_s = 0.1;
    assert_eq!(
        within(functions::emitter::feed_phases(
            &mut c,
            "input_queue",
            &workload,
            3
        ))
        .await
        .unwrap(),
        3
    );
    let function = |stop: tokio_util::sync::CancellationToken, url: String, worker: bool| {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let config = functions::FunctionConfig {
                redis_url: url,
                poll_interval_s: 0.1,
                grace_period_s: 0.0,
                ..functions::FunctionConfig::default()
            };
            if worker {
                let _ = rt.block_on(functions::worker::run_worker(config, stop));
            } else {
                let slow = workload::WorkloadConfig {
                    time_scale: 10.0,
                    ..workload::WorkloadConfig::default()
                };
                let _ = rt.block_on(functions::emitter::run_emitter(config, slow, stop));
            }
        })
    };
    let emitter_stop = tokio_util::sync::CancellationToken::new();
    let emitter = function(emitter_stop.clone(), url.clone(), false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while within(c.get::<_, Option<u64>>("worker_queue:enqueued_total"))
        .await
        .unwrap()
        != Some(3)
    {
        assert!(Instant::now() < deadline, "the emitter did not emit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut readers: Vec<(&str, Box<dyn FarmReader>)> = vec![
        (
            "embedded",
            Box::new(EmbeddedReader::new(broker.clone(), program_start)),
        ),
        ("redis", Box::new(RedisReader::new(c.clone(), program_start))),
    ];
    // The reference: the waiting tasks themselves.
    let waiting = |tasks: Vec<String>| -> (f64, f64) {
        let tasks: Vec<functions::messages::Task> =
            tasks.iter().map(|t| serde_json::from_str(t).unwrap()).collect();
        let work = tasks.iter().map(|t| t.task_processing_time_simulated).sum();
        let oldest = tasks.last().unwrap();
        let slack = oldest.task_gen_timestamp + oldest.task_deadline
            - oldest.task_processing_time_simulated
            - (functions::runtime::unix_now() - program_start);
        (work, slack)
    };
    let check = async |readers: &mut Vec<(&str, Box<dyn FarmReader>)>,
                       c: &mut redis::aio::MultiplexedConnection| {
        let (work, slack) = waiting(within(c.lrange("worker_queue", 0, -1)).await.unwrap());
        for (name, r) in readers.iter_mut() {
            let q = within(r.read()).await.unwrap().queue;
            assert!((q.queued_work_s - work).abs() < 1e-6, "{name}: {q:?} vs {work}");
            assert!((q.oldest_slack_s - slack).abs() < 0.5, "{name}: {q:?} vs {slack}");
        }
    };
    check(&mut readers, &mut c).await;

    // A worker takes one task: its work leaves the count.
    let worker_stop = tokio_util::sync::CancellationToken::new();
    let worker = function(worker_stop.clone(), url.clone(), true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while within(c.llen::<_, u64>("worker_queue:processing:1"))
        .await
        .unwrap()
        != 1
    {
        assert!(Instant::now() < deadline, "the worker took nothing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(within(c.llen::<_, u64>("worker_queue")).await.unwrap(), 2);
    check(&mut readers, &mut c).await;
    // Stopped with no grace, it hands the task back: the work is queued again.
    worker_stop.cancel();
    // Joined off the runtime: the broker the worker talks to runs on this one.
    within(tokio::task::spawn_blocking(move || worker.join()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(within(c.llen::<_, u64>("worker_queue")).await.unwrap(), 3);
    check(&mut readers, &mut c).await;
    emitter_stop.cancel();
    within(tokio::task::spawn_blocking(move || emitter.join()))
        .await
        .unwrap()
        .unwrap();
    stop.cancel();
}

/// Acceptance: the metrics-only path — `serve` told to ignore the job's plan runs the bundled
/// staffing policy every second of workload time; a job fed with `run --redis` loses nothing,
/// and the node's decisions are many while its scaling actions stay few (no thrash).
#[tokio::test]
async fn the_metrics_only_bundled_policy_decides_every_second_and_loses_nothing() {
    let node = start_node(&["--scaler", "local", "--workers", "2", "--no-calendar"]);
    let url = node.url();
    let mut c = within(conn(&url)).await;
    within(wait_for_workers(&mut c, 2)).await;
    let dir = std::env::temp_dir().join(format!("autoscale-node-metrics-only-{}", std::process::id()));
    let before = status_until(&mut c, 10, "a status", |s| s.is_object()).await;
    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let (url, dir) = (url.clone(), dir.clone());
        move || {
            run_to_end(&[
                "run",
                "--redis",
                &url,
                "--tasks",
                "300",
                "--report",
                dir.to_str().unwrap(),
            ])
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = report_of(&dir);
    let after = status(&mut c).await;
    assert_eq!(report["lost"], 0, "{report}");
    assert!(
        report["policy"].as_str().unwrap().starts_with("guided"),
        "{report}"
    );
    assert!(after["plan"].is_null(), "{after}");
    // At the job's 0.1 time scale a workload second is 0.1 s of wall time: one decision per
    // workload second makes ~10 a second (event decisions add a few; a loaded machine fewer).
    let wall_s = started.elapsed().as_secs_f64();
    let (decisions, actions) = (
        after["decisions"].as_u64().unwrap() - before["decisions"].as_u64().unwrap(),
        after["scaling_actions"].as_u64().unwrap(),
    );
    assert!(
        decisions as f64 >= 5.0 * wall_s,
        "{decisions} decisions in {wall_s:.1} s: {after}"
    );
    assert!(actions >= 1 && actions * 4 <= decisions, "{after}");
    eprintln!(
        "metrics only: QoS {} %, {decisions} decisions, {actions} scaling actions",
        report["qos_percent"]
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `serve --queue A,B,…`: the node reads one queue made of its parts — waiting and in-flight
/// counts add up over a list, another list, a stream group and a delayed-job set, the oldest
/// wait is the oldest of all.
#[tokio::test]
async fn several_framework_queues_are_read_as_their_sum() {
    use autoscale_node::node::reader::{EmbeddedReader, FarmReader};

    let (broker, url, stop) = embedded_broker().await;
    let mut c = within(conn(&url)).await;
    let selector = "list:q:high,list:q:low,stream:s@g,delayed:later@s"
        .parse()
        .unwrap();
    let mut reader = EmbeddedReader::new(broker.clone(), functions::runtime::unix_now()).with_queue(selector);
    let empty = within(reader.read()).await.unwrap().queue;
    assert_eq!((empty.length, empty.in_flight), (0, 0));

    for _ in 0..5 {
        let _: () = c.lpush("q:high", "job").await.unwrap();
    }
    // The low list's oldest job has waited about 2 s by the time it is read.
    let _: () = c.lpush("q:low", "old").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    for _ in 0..6 {
        let _: () = c.lpush("q:low", "job").await.unwrap();
    }
    let _: () = within(cmd(&mut c, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]))
        .await
        .unwrap();
    for _ in 0..4 {
        let _: String = within(cmd(&mut c, &["XADD", "s", "*", "f", "v"])).await.unwrap();
    }
    // One entry delivered and not acknowledged: in flight, no longer waiting.
    let _: redis::Value = within(cmd(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "w1",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">",
        ],
    ))
    .await
    .unwrap();
    let now = functions::runtime::unix_now();
    for (score, job) in [(now - 1.0, "due1"), (now - 0.5, "due2"), (now + 3600.0, "later")] {
        let _: () = c.zadd("later", job, score).await.unwrap();
    }
    let q = within(reader.read()).await.unwrap().queue;
    assert_eq!(q.length, 5 + 7 + 3 + 2, "{q:?}");
    assert_eq!(q.in_flight, 1, "{q:?}");
    assert_eq!(q.pushed_total, 5 + 7 + 4, "lists' and stream's pushes: {q:?}");
    assert!(
        (1.5..10.0).contains(&q.oldest_age_s),
        "the oldest is the low list's first job: {q:?}"
    );
    stop.cancel();
}
