//! The live dashboard in a real browser: headless chromium (driven over its DevTools protocol
//! by `tests/py/dashboard_probe.py`) loads the page of a node serving a real job, and the page
//! must show live values — updated by the event stream between two screenshots — that agree
//! with `/metrics`.

mod common;

use common::{http_get_with as http_get, sample, start_node};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_dashboard_shows_live_values_that_agree_with_the_metrics() {
    let node = start_node(&["--scaler", "local", "--policy", "static:3", "--workers", "3"]);
    // A job, so that the page has something to show.
    let dir = std::env::temp_dir().join(format!("autoscale-node-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut job = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(["run", "--redis", &node.url(), "--tasks", "400", "--report"])
        .arg(dir.join("report"))
        .env("AUTOSCALE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let (_, m) = http_get(node.http_port, "/metrics", None);
        if sample(
            &m,
            "autoscale_queue_pushed_total{db=\"0\",queue=\"worker_queue\"}",
        )
        .unwrap_or(0.0)
            > 0.0
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the job did not start");
        std::thread::sleep(Duration::from_millis(200));
    }

    let expression = "({updates: +document.getElementById('status').dataset.updates || 0, \
        decisions: +document.getElementById('decisions').textContent, \
        target: +document.getElementById('target').textContent, \
        live: +document.getElementById('live').textContent, \
        policy: document.getElementById('policy').textContent, \
        queues: document.querySelectorAll('#queues tbody tr').length, \
        lines: document.getElementById('c-workers').toDataURL().length})";
    let shots = dir.join("dashboard");
    let probe = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/py/dashboard_probe.py"
        ))
        .arg(format!("http://127.0.0.1:{}/", node.http_port))
        .arg(&shots)
        .arg(expression)
        .arg("2.5")
        .output()
        .expect("run the browser probe");
    let _ = job.kill();
    let _ = job.wait();
    let stdout = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success(),
        "probe failed: {stdout}\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("probe JSON");
    let (first, second) = (&seen["first"], &seen["second"]);
    eprintln!("dashboard: {first} then {second}");
    // Live: the event stream kept the page updating between the two screenshots.
    let n = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    assert!(n(first, "updates") >= 1.0, "{first}");
    assert!(n(second, "updates") > n(first, "updates"), "{first} {second}");
    assert!(n(second, "decisions") > n(first, "decisions"), "{first} {second}");
    // The values agree with /metrics (a static policy holds the target still).
    let (_, metrics) = http_get(node.http_port, "/metrics", None);
    assert_eq!(
        Some(n(second, "target")),
        sample(&metrics, "autoscale_workers_target")
    );
    assert_eq!(n(second, "target"), 3.0);
    assert_eq!(second["policy"], "static:3");
    assert!(
        n(second, "queues") >= 3.0,
        "the queue table lists the farm's queues: {second}"
    );
    for i in [1, 2] {
        let png = std::fs::read(format!("{}-{i}.png", shots.display())).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "screenshot {i}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_dashboard_asks_for_the_password_when_there_is_one() {
    let node = start_node(&["--requirepass", "s3cret"]);
    let (status, _) = http_get(node.http_port, "/", None);
    assert_eq!(status, 401);
    let (status, _) = http_get(node.http_port, "/events", None);
    assert_eq!(status, 401);
    let (status, page) = http_get(node.http_port, "/", Some("Bearer s3cret"));
    assert_eq!(status, 200);
    assert!(page.contains("<canvas id=\"c-workers\">") && page.contains("EventSource"));
    // The page needs nothing from elsewhere.
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "external asset"
    );
}

/// `/metrics` read by the Prometheus reference client's own parser (Python
/// `prometheus_client.parser`): every family well-formed, with HELP and TYPE, samples numeric.
#[test]
fn metrics_parse_with_the_prometheus_reference_parser() {
    let node = start_node(&["--scaler", "local", "--policy", "static:2", "--workers", "2"]);
    // Some queue traffic, so that the per-queue families have samples.
    let mut c = std::net::TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"RPUSH jobs a b c\r\nLPOP jobs\r\n").unwrap();
    let mut buf = [0u8; 64];
    let _ = c.read(&mut buf).unwrap();
    let start = Instant::now();
    let metrics = loop {
        let (status, m) = http_get(node.http_port, "/metrics", None);
        assert_eq!(status, 200);
        if sample(&m, "autoscale_decisions_total").unwrap_or(0.0) > 0.0 {
            break m;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no decision yet:\n{m}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut parser = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/py/parse_metrics.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    parser
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = parser.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{metrics}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(parsed["families"].as_u64().unwrap() >= 15, "{parsed}");
    for (family, kind) in [
        ("autoscale_queue_length", "gauge"),
        ("autoscale_queue_pushed_total", "counter"),
        ("autoscale_queue_wait_seconds", "summary"),
        ("autoscale_decision_latency_seconds", "histogram"),
        ("autoscale_workers_target", "gauge"),
    ] {
        assert_eq!(parsed["types"][family], kind, "{family}: {parsed}");
    }
}
