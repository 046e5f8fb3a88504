//! The farm functions as real processes against the real broker (and a real redis-server):
//! the full original workload, kill -9 recovery, dead-lettering, and redis-py interop.

mod common;

use common::{conn, have_redis_server, start_node, start_redis_server, within, ServerProcess, T};
use functions::messages::{OutputRecord, Task};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use workload::WorkloadConfig;

/// Child processes killed when the test ends, however it ends.
struct Farm {
    url: String,
    children: Vec<(String, Child)>,
}

impl Farm {
    fn new(url: &str) -> Farm {
        Farm {
            url: url.to_string(),
            children: Vec::new(),
        }
    }

    fn spawn(&mut self, role: &str, id: &str, extra: &[&str]) {
        let child = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
            .args([role, "--redis", &self.url, "--id", id, "--poll-interval-s", "0.2"])
            .args(extra)
            .env("AUTOSCALE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn function");
        self.children.push((format!("{role}:{id}"), child));
    }

    fn kill9(&mut self, name: &str) {
        let pos = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .expect("known child");
        let (_, mut child) = self.children.remove(pos);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits for every child to exit by itself (after TERMINATE).
    fn wait_all_exit(&mut self) {
        let start = Instant::now();
        for (name, child) in &mut self.children {
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "{name} exited with {status}");
                    break;
                }
                assert!(start.elapsed() < T, "{name} did not exit after TERMINATE");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.children.clear();
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn wait_for(c: &mut MultiplexedConnection, key: &str, want: i64, limit: Duration) {
    let start = Instant::now();
    loop {
        let n: Option<i64> = within(c.get(key)).await.unwrap();
        if n == Some(want) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{key} is {n:?}, expected {want} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn terminate(c: &mut MultiplexedConnection, workers: usize) {
    let syn =
        |kind: &str| format!(r#"{{"type":"{kind}","action":"SYN","message":"test over","SYN_timestamp":0}}"#);
    let _: () = within(c.lpush("emitter_control_syn_queue", syn("TERMINATE")))
        .await
        .unwrap();
    let _: () = within(c.lpush("collector_control_syn_queue", syn("TERMINATE")))
        .await
        .unwrap();
    for _ in 0..workers {
        let _: () = within(c.lpush("worker_control_syn_queue", syn("TERMINATE")))
            .await
            .unwrap();
    }
}

async fn outputs(c: &mut MultiplexedConnection) -> Vec<OutputRecord> {
    let raw: Vec<String> = within(c.lrange("output_queue", 0, -1)).await.unwrap();
    raw.iter()
        .map(|r| serde_json::from_str(r).expect("output record parses"))
        .collect()
}

/// Emitter + 8 workers + collector on the original 4-phase workload at time scale 0.05.
async fn full_workload(server: &ServerProcess) {
    let url = server.url();
    let mut c = conn(&url).await;
    let mut farm = Farm::new(&url);
    farm.spawn("collector", "1", &[]);
    for i in 1..=8 {
        farm.spawn("worker", &i.to_string(), &[]);
    }
    farm.spawn("emitter", "1", &["--time-scale", "0.05"]);
    let workload = WorkloadConfig {
        time_scale: 0.05,
        ..WorkloadConfig::default()
    };
    let expected = within(functions::emitter::feed_phases(
        &mut c,
        "input_queue",
        &workload,
        42,
    ))
    .await
    .unwrap();
    assert_eq!(expected, 1140);
    wait_for(&mut c, "collector:tasks_total", 1140, Duration::from_secs(90)).await;
    let records = outputs(&mut c).await;
    assert_eq!(records.len(), 1140);
    let ids: HashSet<&str> = records.iter().map(|r| r.task_id.as_str()).collect();
    assert_eq!(ids.len(), 1140, "no duplicates");
    let enqueued: i64 = within(c.get("worker_queue:enqueued_total")).await.unwrap();
    assert_eq!(enqueued, 1140);
    let left: i64 = within(c.llen("worker_queue")).await.unwrap();
    assert_eq!(left, 0);
    let dups: Option<i64> = within(c.get("collector:duplicates_total")).await.unwrap();
    assert_eq!(dups.unwrap_or(0), 0);
    let met: i64 = within(c.get("collector:qos_met_total")).await.unwrap();
    assert_eq!(met as usize, records.iter().filter(|r| r.task_qos).count());
    for r in &records {
        assert!((r.task_completion_time - (r.task_collect_timestamp - r.task_gen_timestamp)).abs() < 1e-6);
        assert_eq!(r.task_qos, r.task_deadline >= r.task_completion_time);
    }
    let starts: i64 = within(c.llen("worker_start_queue")).await.unwrap();
    assert_eq!(starts, 8, "every worker announced itself");
    terminate(&mut c, 8).await;
    farm.wait_all_exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_workload_end_to_end_on_autoscale_node() {
    let node = start_node(&[]);
    full_workload(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_workload_end_to_end_on_redis_server() {
    if !have_redis_server() {
        eprintln!("skipped: redis-server is not installed");
        return;
    }
    let redis = start_redis_server();
    full_workload(&redis).await;
}

fn task_json(id: &str, processing_s: f64) -> String {
    serde_json::to_string(&Task {
        task_id: id.into(),
        task_gen_timestamp: 0.0,
        task_application: "image_processing".into(),
        task_priority: "normal".into(),
        task_data_size: 1024,
        task_processing_time_simulated: processing_s,
        task_expected_duration: processing_s,
        task_deadline: 60.0,
        task_emit_timestamp: 0.0,
        task_emit_time: 0.0,
    })
    .unwrap()
}

async fn wait_len(c: &mut MultiplexedConnection, key: &str, want: i64) {
    let start = Instant::now();
    loop {
        let n: i64 = within(c.llen(key)).await.unwrap();
        if n == want {
            return;
        }
        assert!(start.elapsed() < T, "{key} has {n}, expected {want}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_task_loses_nothing_and_duplicates_nothing() {
    let node = start_node(&[]);
    let url = node.url();
    let mut c = conn(&url).await;
    let mut farm = Farm::new(&url);
    farm.spawn("collector", "1", &[]);
    farm.spawn("worker", "a", &[]);
    farm.spawn("worker", "b", &[]);
    for i in 0..8 {
        let _: () = within(c.lpush("worker_queue", task_json(&format!("t{i}"), 0.4)))
            .await
            .unwrap();
    }
    // Worker a dies mid-task; the scaler's library call puts its task back.
    wait_len(&mut c, "worker_queue:processing:a", 1).await;
    farm.kill9("worker:a");
    let moved = within(functions::requeue_processing(
        &mut c,
        "worker_queue:processing:a",
        "worker_queue",
    ))
    .await
    .unwrap();
    assert_eq!(moved, 1);
    // Worker b dies mid-task and comes back under the same id: it recovers its own list.
    wait_len(&mut c, "worker_queue:processing:b", 1).await;
    farm.kill9("worker:b");
    farm.spawn("worker", "b", &[]);
    wait_for(&mut c, "collector:tasks_total", 8, Duration::from_secs(30)).await;
    let records = outputs(&mut c).await;
    let ids: HashSet<String> = records.iter().map(|r| r.task_id.clone()).collect();
    assert_eq!(ids, (0..8).map(|i| format!("t{i}")).collect::<HashSet<_>>());
    assert_eq!(records.len(), 8, "exactly once");
    terminate(&mut c, 1).await;
    farm.wait_all_exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_dead_lettered_and_loops_continue() {
    let node = start_node(&[]);
    let url = node.url();
    let mut c = conn(&url).await;
    let mut farm = Farm::new(&url);
    farm.spawn("collector", "1", &[]);
    farm.spawn("worker", "1", &[]);
    farm.spawn("emitter", "1", &[]);
    let _: () = within(c.lpush("worker_queue", "this is not json")).await.unwrap();
    let _: () = within(c.lpush("worker_queue", r#"{"task_id": 5}"#))
        .await
        .unwrap();
    let _: () = within(c.lpush("result_queue", "{broken")).await.unwrap();
    let _: () = within(c.lpush("input_queue", r#"{"type":"phase_config","phase_number":1}"#))
        .await
        .unwrap();
    let _: () = within(c.lpush("worker_control_syn_queue", "??")).await.unwrap();
    let _: () = within(c.lpush("worker_queue", task_json("good", 0.01)))
        .await
        .unwrap();
    wait_for(&mut c, "collector:tasks_total", 1, Duration::from_secs(10)).await;
    wait_len(&mut c, "worker_queue:dead", 2).await;
    wait_len(&mut c, "result_queue:dead", 1).await;
    wait_len(&mut c, "input_queue:dead", 1).await;
    wait_len(&mut c, "worker_control_syn_queue:dead", 1).await;
    let dead: Vec<String> = within(c.lrange("worker_queue:dead", 0, -1)).await.unwrap();
    for d in &dead {
        let v: serde_json::Value = serde_json::from_str(d).unwrap();
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{d}");
        assert!(v["message"].is_string());
    }
    let left: i64 = within(c.llen("worker_queue:processing:1")).await.unwrap();
    assert_eq!(left, 0, "bad messages do not linger in the processing list");
    terminate(&mut c, 1).await;
    farm.wait_all_exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_is_acknowledged_by_exactly_one_worker() {
    let node = start_node(&[]);
    let url = node.url();
    let mut c = conn(&url).await;
    let mut farm = Farm::new(&url);
    farm.spawn("worker", "1", &[]);
    farm.spawn("worker", "2", &[]);
    wait_len(&mut c, "worker_start_queue", 2).await;
    let syn = r#"{"type":"SCALE_DOWN","action":"SYN","message":"one fewer","SYN_timestamp":1.0}"#;
    let _: () = within(c.lpush("worker_control_syn_queue", syn)).await.unwrap();
    let (_, ack): (String, String) = within(c.brpop("worker_control_ack_queue", 5.0)).await.unwrap();
    let ack: serde_json::Value = serde_json::from_str(&ack).unwrap();
    assert_eq!(ack["type"], "SCALE_DOWN");
    assert_eq!(ack["action"], "ACK");
    assert!(ack["task_id"].is_null());
    let pod = ack["pod_name"].as_str().unwrap().to_string();
    assert!(pod == "worker-1" || pod == "worker-2", "{pod}");
    // Exactly that worker exits; the other keeps running.
    let start = Instant::now();
    let gone = loop {
        let exited: Vec<String> = farm
            .children
            .iter_mut()
            .filter_map(|(n, ch)| ch.try_wait().unwrap().map(|_| n.clone()))
            .collect();
        if !exited.is_empty() {
            break exited;
        }
        assert!(start.elapsed() < T);
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(gone, vec![pod.replace('-', ":")]);
    farm.children.retain(|(n, _)| !gone.contains(n));
    terminate(&mut c, 1).await;
    farm.wait_all_exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_speaks_the_original_message_format() {
    let python_ok = Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !python_ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install python3 with redis-py (.ci/run does)"
        );
        eprintln!("skipped: python3 with redis-py is not installed");
        return;
    }
    let node = start_node(&[]);
    let mut farm = Farm::new(&node.url());
    farm.spawn("collector", "1", &[]);
    farm.spawn("worker", "1", &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/py/original_roundtrip.py");
    let out = Command::new("python3")
        .args([script, &node.port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-py script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = conn(&node.url()).await;
    terminate(&mut c, 1).await;
    farm.wait_all_exit();
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(start.elapsed() < limit, "process did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_within_grace_or_hands_the_task_back() {
    let node = start_node(&[]);
    let url = node.url();
    let mut c = conn(&url).await;
    let mut farm = Farm::new(&url);
    // Short task, long grace: the task is finished and its result pushed.
    farm.spawn("worker", "f", &["--grace-period-s", "5"]);
    let _: () = within(c.lpush("worker_queue", task_json("finish-me", 0.5)))
        .await
        .unwrap();
    wait_len(&mut c, "worker_queue:processing:f", 1).await;
    sigterm(&farm.children[0].1);
    let status = wait_exit(&mut farm.children[0].1, T);
    assert!(status.success(), "{status}");
    let results: i64 = within(c.llen("result_queue")).await.unwrap();
    assert_eq!(results, 1);
    farm.children.clear();
    // Long task, short grace: the task goes back to the queue untouched, nothing is lost.
    farm.spawn("worker", "g", &["--grace-period-s", "0.2"]);
    let _: () = within(c.lpush("worker_queue", task_json("hand-back", 30.0)))
        .await
        .unwrap();
    wait_len(&mut c, "worker_queue:processing:g", 1).await;
    let start = Instant::now();
    sigterm(&farm.children[0].1);
    let status = wait_exit(&mut farm.children[0].1, T);
    assert!(status.success(), "{status}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "exit took {:?}",
        start.elapsed()
    );
    farm.children.clear();
    let queued: Vec<String> = within(c.lrange("worker_queue", 0, -1)).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert!(queued[0].contains("hand-back"));
    wait_len(&mut c, "worker_queue:processing:g", 0).await;
}

fn http_request(addr: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openfaas_watchdog_endpoint() {
    let node = start_node(&[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut farm = Farm::new(&node.url());
    farm.spawn("worker", "h", &["--http", &addr]);
    let start = Instant::now();
    loop {
        if std::net::TcpStream::connect(&addr).is_ok() {
            let (status, _) = http_request(
                &addr,
                "GET /_/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            if status == 200 {
                break;
            }
        }
        assert!(start.elapsed() < T, "health never turned 200");
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = r#"{"program_start_time": 0, "seed": 1}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, text) = http_request(&addr, &req);
    assert_eq!(status, 202, "{text}");
    assert!(text.contains("\"running\""));
    let (status, _) = http_request(
        &addr,
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz",
    );
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_reconnect_after_the_broker_restarts() {
    let port = common::free_port();
    let node = common::start_node_on(port, &[]);
    let url = node.url();
    let mut farm = Farm::new(&url);
    farm.spawn("collector", "1", &[]);
    farm.spawn("worker", "1", &[]);
    let mut c = conn(&url).await;
    for i in 0..3 {
        let _: () = within(c.lpush("worker_queue", task_json(&format!("before-{i}"), 0.01)))
            .await
            .unwrap();
    }
    wait_for(&mut c, "collector:tasks_total", 3, T).await;
    // The broker dies and comes back (empty: it keeps no data on disk) on the same port.
    drop(c);
    drop(node);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = common::start_node_on(port, &[]);
    let mut c = conn(&node.url()).await;
    for i in 0..3 {
        let _: () = within(c.lpush("worker_queue", task_json(&format!("after-{i}"), 0.01)))
            .await
            .unwrap();
    }
    // Backoff is capped at 5 s, so both functions are back well within this bound.
    wait_for(&mut c, "collector:tasks_total", 3, Duration::from_secs(20)).await;
    let records = outputs(&mut c).await;
    let mut ids: Vec<String> = records.into_iter().map(|r| r.task_id).collect();
    ids.sort();
    assert_eq!(ids, vec!["after-0", "after-1", "after-2"]);
    terminate(&mut c, 1).await;
    farm.wait_all_exit();
}

/// A one-phase workload of `tasks` tasks over 60 s of workload time (3 s at time scale 0.05).
fn one_phase(tasks: f64) -> WorkloadConfig {
    WorkloadConfig {
        time_scale: 0.05,
        base_rate_per_min: tasks,
        phases: vec![workload::Phase {
            name: "steady".into(),
            multiplier: 1.0,
            duration_s: 60.0,
            pattern: workload::Pattern::Steady,
        }],
        ..WorkloadConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_configs_the_emitter_cannot_honour_are_dead_lettered_and_it_carries_on() {
    let node = start_node(&[]);
    let url = node.url();
    let mut c = conn(&url).await;
    let mut farm = Farm::new(&url);
    farm.spawn("emitter", "1", &["--time-scale", "0.05"]);
    let good = functions::emitter::phase_messages(&one_phase(40.0), 9).remove(0);
    let bad = [
        functions::messages::PhaseConfigMsg {
            phase_duration: 1e12,
            ..good.clone()
        },
        functions::messages::PhaseConfigMsg {
            base_rate: 1e9,
            ..good.clone()
        },
        functions::messages::PhaseConfigMsg {
            target_tasks: 1_000_000_000_000,
            ..good.clone()
        },
    ];
    for msg in bad.iter().chain([&good]) {
        let _: () = within(c.lpush("input_queue", serde_json::to_string(msg).unwrap()))
            .await
            .unwrap();
    }
    wait_len(&mut c, "input_queue:dead", 3).await;
    let dead: Vec<String> = within(c.lrange("input_queue:dead", 0, -1)).await.unwrap();
    let reasons: Vec<String> = dead
        .iter()
        .rev()
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["error"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(reasons[0].starts_with("phase_duration must be"), "{reasons:?}");
    assert!(
        reasons[1].contains("would generate 1000000000 tasks; at most 1000000"),
        "{reasons:?}"
    );
    assert!(reasons[2].starts_with("target_tasks of phase 1"), "{reasons:?}");
    // Still running: the valid phase after them is emitted in full.
    wait_for(&mut c, "worker_queue:enqueued_total", 40, Duration::from_secs(20)).await;
    assert!(
        farm.children[0].1.try_wait().unwrap().is_none(),
        "the emitter exited"
    );
    terminate(&mut c, 0).await;
    farm.wait_all_exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emitter_killed_mid_phase_resumes_with_the_same_task_ids() {
    let node = start_node(&[]);
    let url = node.url();
    let mut c = conn(&url).await;
    let mut farm = Farm::new(&url);
    farm.spawn("emitter", "1", &["--time-scale", "0.05"]);
    let phase = functions::emitter::phase_messages(&one_phase(150.0), 5).remove(0);
    assert_eq!(phase.target_tasks, 150);
    let _: () = within(c.lpush("input_queue", serde_json::to_string(&phase).unwrap()))
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let n: Option<i64> = within(c.get("worker_queue:enqueued_total")).await.unwrap();
        if n.unwrap_or(0) >= 20 {
            break;
        }
        assert!(start.elapsed() < T, "the emitter did not start emitting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    farm.kill9("emitter:1");
    let pushed: i64 = within(c.get("worker_queue:enqueued_total")).await.unwrap();
    assert!(pushed < 150, "killed too late to test anything: {pushed}");
    farm.spawn("emitter", "1", &["--time-scale", "0.05"]);
    wait_for(
        &mut c,
        "worker_queue:enqueued_total",
        150,
        Duration::from_secs(20),
    )
    .await;
    let queued: Vec<String> = within(c.lrange("worker_queue", 0, -1)).await.unwrap();
    let ids: Vec<String> = queued
        .iter()
        .map(|t| serde_json::from_str::<Task>(t).unwrap().task_id)
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        (ids.len(), unique.len()),
        (150, 150),
        "each task pushed exactly once"
    );
    let expected: HashSet<String> = functions::emitter::task_ids(phase.task_seed.unwrap())
        .take(150)
        .collect();
    assert_eq!(
        unique,
        expected.iter().collect(),
        "the resumed phase keeps its task ids"
    );
    terminate(&mut c, 0).await;
    farm.wait_all_exit();
}
