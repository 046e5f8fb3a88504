//! `autoscale-node run` end to end: the whole farm as real processes on a shrunken workload,
//! with the embedded broker and with a real redis-server; nothing may be lost.

mod common;

use common::{have_redis_server, start_redis_server};
use std::process::Command;

fn run(extra: &[&str], dir: &std::path::Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args([
            "run",
            "--tasks",
            "120",
            "--time-scale",
            "0.05",
            "--report",
            dir.to_str().unwrap(),
        ])
        .args(extra)
        .env("AUTOSCALE_LOG", "warn")
        .output()
        .expect("run autoscale-node");
    assert!(
        out.status.success(),
        "run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("| lost | 0 |"), "{text}");
    for f in ["report.json", "report.md", "timeseries.svg"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

fn check(report: &serde_json::Value) {
    let tasks = report["tasks"].as_u64().unwrap();
    assert!((100..=140).contains(&tasks), "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(
        report["completed"].as_u64().unwrap() + report["dead_lettered"].as_u64().unwrap(),
        tasks
    );
    assert!(report["mean_workers"].as_f64().unwrap() >= 0.9, "{report}");
}

#[test]
fn run_with_the_embedded_broker_and_the_bundled_policy() {
    let dir = std::env::temp_dir().join(format!("autoscale-node-run-{}", std::process::id()));
    let report = run(&[], &dir);
    check(&report);
    // `run` knows the load calendar, so the bundled policy is the calendar-trained model.
    assert_eq!(report["policy"], "neural+calendar");
    // The bundled policy keeps a light farm well inside its deadlines.
    assert!(report["qos_percent"].as_f64().unwrap() > 95.0, "{report}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn run_without_the_calendar_uses_the_metrics_only_model() {
    let dir = std::env::temp_dir().join(format!("autoscale-node-run-nocal-{}", std::process::id()));
    let report = run(&["--no-calendar"], &dir);
    check(&report);
    assert_eq!(report["policy"], "neural");
    assert!(report["qos_percent"].as_f64().unwrap() > 95.0, "{report}");
    std::fs::remove_dir_all(&dir).ok();
    // The calendar rule cannot run without its calendar.
    let out = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(["run", "--policy", "calendar", "--no-calendar"])
        .output()
        .expect("run autoscale-node");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--no-calendar withholds"), "{err}");
}

#[test]
fn run_with_the_load_calendar_policy() {
    let dir = std::env::temp_dir().join(format!("autoscale-node-run-cal-{}", std::process::id()));
    let report = run(&["--policy", "calendar", "--workers", "2"], &dir);
    check(&report);
    assert_eq!(report["policy"], "calendar:0.05:0.8", "{report}");
    // It sizes the farm from the planned rates, starting from 2 workers.
    assert!(report["scaling_actions"].as_u64().unwrap() > 0, "{report}");
    assert!(report["qos_percent"].as_f64().unwrap() > 95.0, "{report}");
    std::fs::remove_dir_all(&dir).ok();

    // `serve` has no schedule to read it from: refused, saying why.
    let out = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(["serve", "--check", "--policy", "calendar"])
        .output()
        .expect("run autoscale-node");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only `run` knows"), "{err}");
}

#[test]
fn run_against_a_real_redis_server_with_a_baseline() {
    if !have_redis_server() {
        eprintln!("skipped: redis-server is not installed");
        return;
    }
    let redis = start_redis_server();
    let dir = std::env::temp_dir().join(format!("autoscale-node-run-redis-{}", std::process::id()));
    let report = run(
        &[
            "--redis",
            &redis.url(),
            "--policy",
            "reactive-maximum",
            "--workers",
            "4",
        ],
        &dir,
    );
    check(&report);
    assert_eq!(report["policy"], "reactive-maximum");
    // The reactive rule moves workers every period; the scaler applied it.
    assert!(report["scaling_actions"].as_u64().unwrap() > 0, "{report}");
    std::fs::remove_dir_all(&dir).ok();
}

#[cfg(unix)]
#[test]
fn a_worker_killed_during_a_run_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("autoscale-node-run-kill-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args([
            "run",
            "--tasks",
            "200",
            "--time-scale",
            "0.05",
            "--policy",
            "static:6",
            "--workers",
            "6",
        ])
        .args(["--report", dir.to_str().unwrap()])
        .env("AUTOSCALE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start run");
    // Find one of its worker processes (children of the run process) and kill -9 it mid-run.
    let parent = child.id().to_string();
    let start = std::time::Instant::now();
    let victim = loop {
        let out = Command::new("pgrep")
            .args(["-P", &parent, "-f", "autoscale-node worker"])
            .output()
            .unwrap();
        let pids = String::from_utf8_lossy(&out.stdout).to_string();
        if let Some(pid) = pids.split_whitespace().next() {
            break pid.to_string();
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "no worker process appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(Command::new("kill")
        .args(["-9", &victim])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "run exited with {status}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["lost"], 0, "{report}");
    assert!(report["crashed_workers"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(
        report["completed"].as_u64().unwrap() + report["dead_lettered"].as_u64().unwrap(),
        report["tasks"].as_u64().unwrap(),
        "{report}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
