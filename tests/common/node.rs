//! Helpers for tests that drive a node: `scale`, the connected workers, task messages.

use std::process::Command;
use std::time::{Duration, Instant};

/// `autoscale-node scale CHANGE --redis URL`: (success, stdout + stderr).
pub fn scale(url: &str, change: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(["scale", change, "--redis", url, "--timeout-s", "20"])
        .env("AUTOSCALE_LOG", "warn")
        .output()
        .expect("run scale");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Like [`scale`], failing the test unless it succeeds; returns the output.
pub fn scale_ok(url: &str, change: &str) -> String {
    let (ok, text) = scale(url, change);
    assert!(ok, "scale {change} failed: {text}");
    text
}

/// Ids of the connected `worker:<id>` clients, sorted.
pub async fn worker_clients(c: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(c).await.unwrap();
    let mut names: Vec<String> = list
        .lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("name=worker:")))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// Polls until exactly `n` workers are connected (or fails after 20 s); returns their ids.
pub async fn wait_for_workers(c: &mut redis::aio::MultiplexedConnection, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let w = worker_clients(c).await;
        if w.len() == n {
            return w;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "expected {n} workers, have {w:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A task message in the original's format that takes `seconds` to process.
pub fn task_json(id: &str, seconds: f64) -> String {
    serde_json::to_string(&functions::messages::Task {
        task_id: id.into(),
        task_gen_timestamp: 0.0,
        task_application: "image".into(),
        task_priority: "normal".into(),
        task_data_size: 10,
        task_processing_time_simulated: seconds,
        task_expected_duration: seconds,
        task_deadline: seconds * 2.0,
        task_emit_timestamp: 0.0,
        task_emit_time: 0.0,
    })
    .unwrap()
}
