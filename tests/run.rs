//! `autoscale-node run` end to end: the whole farm as real processes on a shrunken workload,
//! with the embedded broker and with a real redis-server; nothing may be lost.

mod common;

use common::{have_redis_server, start_redis_server};
use std::process::Command;
use std::time::{Duration, Instant};

fn run(extra: &[&str], dir: &std::path::Path) -> serde_json::Value {
    run_at("0.05", extra, dir)
}

/// [`run`] at another time scale. A QoS claim needs the default 0.1: at 0.05 a worker's
/// start-up (≈ 0.3 s of wall time) is 6 s of workload time, and a busy machine stretches it.
fn run_at(time_scale: &str, extra: &[&str], dir: &std::path::Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args([
            "run",
            "--tasks",
            "120",
            "--time-scale",
            time_scale,
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
    assert!(text.contains("dashboard at http://127.0.0.1:"), "{text}");
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
    let report = run_at("0.1", &[], &dir);
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
    let report = run_at("0.1", &["--no-calendar"], &dir);
    check(&report);
    assert_eq!(report["policy"], "guided");
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

/// A `run` started in the background on a known broker port, its output going to files so
/// that its own children (which inherit stderr) can never block it on a full pipe.
#[cfg(unix)]
struct BackgroundRun {
    child: std::process::Child,
    dir: std::path::PathBuf,
    url: String,
}

#[cfg(unix)]
impl BackgroundRun {
    fn start(name: &str, extra: &[&str]) -> BackgroundRun {
        let dir = std::env::temp_dir().join(format!("autoscale-node-run-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = common::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
            .args(["run", "--time-scale", "0.05", "--port", &port.to_string()])
            .args(["--report", dir.join("report").to_str().unwrap()])
            .args(extra)
            .env("AUTOSCALE_LOG", "warn")
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("start run");
        BackgroundRun {
            child,
            dir,
            url: format!("redis://127.0.0.1:{port}/"),
        }
    }

    /// A connection to the run's embedded broker, once it listens.
    fn redis(&self) -> redis::Connection {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let start = Instant::now();
        loop {
            if let Ok(c) = client.get_connection_with_timeout(Duration::from_secs(2)) {
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                return c;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the run's broker never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the counter `key` reaches `at_least`.
    fn wait_counter(&self, c: &mut redis::Connection, key: &str, at_least: u64) {
        let start = Instant::now();
        loop {
            let n: Option<u64> = redis::cmd("GET").arg(key).query(c).unwrap();
            if n.unwrap_or(0) >= at_least {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{key} stayed at {n:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of the run's `role` process (a child of the run), waiting for one that is not
    /// `not`.
    fn role_pid(&self, role: &str, not: Option<&str>) -> String {
        let start = Instant::now();
        loop {
            let out = Command::new("pgrep")
                .args([
                    "-P",
                    &self.child.id().to_string(),
                    "-f",
                    &format!("autoscale-node {role}"),
                ])
                .output()
                .unwrap();
            let pids = String::from_utf8_lossy(&out.stdout).to_string();
            if let Some(pid) = pids.split_whitespace().find(|p| Some(*p) != not) {
                return pid.to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no {role} process appeared"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the run to exit (bounded), returning its status.
    fn wait(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > Duration::from_secs(120) {
                let _ = self.child.kill();
                panic!("run did not end within 120 s:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    fn report(&self) -> serde_json::Value {
        let path = self.dir.join("report").join("report.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), self.stderr()));
        serde_json::from_str(&text).unwrap()
    }
}

#[cfg(unix)]
impl Drop for BackgroundRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

#[cfg(unix)]
fn signal(sig: &str, pid: &str) {
    assert!(Command::new("kill").args([sig, pid]).status().unwrap().success());
}

/// Every task of the job is somewhere in the report, and nothing is counted twice.
fn counts_add_up(r: &serde_json::Value) {
    let n = |k: &str| r[k].as_i64().unwrap_or_else(|| panic!("{k} missing: {r}"));
    assert_eq!(
        n("completed") + n("dead_lettered") + n("in_flight") + n("not_emitted") + n("lost"),
        n("tasks"),
        "{r}"
    );
    assert_eq!(n("emitted") + n("not_emitted"), n("tasks"), "{r}");
    assert_eq!(n("in_flight"), n("still_queued"), "{r}");
    assert_eq!(n("lost"), 0, "{r}");
}

#[cfg(unix)]
#[test]
fn a_collector_killed_during_a_run_is_restarted_and_the_job_completes() {
    let mut run = BackgroundRun::start(
        "collector",
        &["--tasks", "150", "--policy", "static:6", "--workers", "6"],
    );
    let mut c = run.redis();
    run.wait_counter(&mut c, "collector:tasks_total", 10);
    signal("-9", &run.role_pid("collector", None));
    let status = run.wait();
    let err = run.stderr();
    assert!(status.success(), "run exited with {status}:\n{err}");
    assert!(
        err.contains("the collector was killed by signal 9 (SIGKILL); restarted it (restart 1 of 1)"),
        "{err}"
    );
    let r = run.report();
    counts_add_up(&r);
    assert_eq!(r["outcome"], "completed", "{r}");
    assert_eq!(r["restarts"]["collector"], 1, "{r}");
    assert_eq!(r["completed"], r["tasks"], "{r}");
}

#[cfg(unix)]
#[test]
fn an_emitter_killed_during_a_run_resumes_its_phase_without_duplicating_tasks() {
    let mut run = BackgroundRun::start(
        "emitter",
        &["--tasks", "150", "--policy", "static:6", "--workers", "6"],
    );
    let mut c = run.redis();
    run.wait_counter(&mut c, "worker_queue:enqueued_total", 20);
    signal("-9", &run.role_pid("emitter", None));
    let status = run.wait();
    let err = run.stderr();
    assert!(status.success(), "run exited with {status}:\n{err}");
    assert!(
        err.contains("the emitter was killed by signal 9 (SIGKILL); restarted it (restart 1 of 1)"),
        "{err}"
    );
    assert!(err.contains("resuming a phase"), "{err}");
    let r = run.report();
    counts_add_up(&r);
    assert_eq!(r["outcome"], "completed", "{r}");
    assert_eq!(r["restarts"]["emitter"], 1, "{r}");
    assert_eq!(r["completed"], r["tasks"], "{r}");
    // Pushed exactly once each: the counter the emitter increments with every push.
    assert_eq!(r["emitted"], r["tasks"], "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
}

#[cfg(unix)]
#[test]
fn an_emitter_that_dies_twice_fails_the_run_with_a_clear_error() {
    let mut run = BackgroundRun::start(
        "emitter-twice",
        &["--tasks", "150", "--policy", "static:4", "--workers", "4"],
    );
    let mut c = run.redis();
    run.wait_counter(&mut c, "worker_queue:enqueued_total", 10);
    let first = run.role_pid("emitter", None);
    signal("-9", &first);
    let second = run.role_pid("emitter", Some(&first));
    signal("-9", &second);
    let status = run.wait();
    let err = run.stderr();
    assert!(!status.success(), "a run without its emitter must fail:\n{err}");
    let why = "the emitter was killed by signal 9 (SIGKILL) again after 1 restart; the job cannot complete without it";
    assert!(err.contains(&format!("autoscale-node: error: {why}")), "{err}");
    let r = run.report();
    counts_add_up(&r);
    assert_eq!(r["outcome"], "failed", "{r}");
    assert_eq!(r["failure"], why, "{r}");
    assert_eq!(r["interrupted"], false, "{r}");
    assert!(r["not_emitted"].as_u64().unwrap() > 0, "{r}");
    assert!(
        run.stdout()
            .contains("| outcome | failed: the emitter was killed"),
        "{}",
        run.stdout()
    );
}

#[cfg(unix)]
#[test]
fn foreign_and_malformed_messages_count_apart_and_the_run_waits_for_its_own_tasks() {
    let mut run = BackgroundRun::start(
        "foreign",
        &["--tasks", "120", "--policy", "static:4", "--workers", "4"],
    );
    let mut c = run.redis();
    run.wait_counter(&mut c, "worker_queue:enqueued_total", 5);
    let malformed = [
        "this is not json",
        r#"{"task_id": 5}"#,
        "{}",
        "[1,2,3]",
        r#"{"task_id":"x","task_gen_timestamp":"soon"}"#,
        "\u{0}\u{1}",
    ];
    for m in malformed {
        let _: () = redis::cmd("LPUSH")
            .arg("worker_queue")
            .arg(m)
            .query(&mut c)
            .unwrap();
    }
    for id in ["foreign-1", "foreign-2"] {
        let task = functions::messages::Task {
            task_id: id.into(),
            task_gen_timestamp: 0.0,
            task_application: "image_processing".into(),
            task_priority: "normal".into(),
            task_data_size: 1024,
            task_processing_time_simulated: 0.01,
            task_expected_duration: 0.01,
            task_deadline: 60.0,
            task_emit_timestamp: 0.0,
            task_emit_time: 0.0,
        };
        let _: () = redis::cmd("LPUSH")
            .arg("worker_queue")
            .arg(serde_json::to_string(&task).unwrap())
            .query(&mut c)
            .unwrap();
    }
    let status = run.wait();
    let err = run.stderr();
    assert!(status.success(), "run exited with {status}:\n{err}");
    let r = run.report();
    counts_add_up(&r);
    assert_eq!(r["outcome"], "completed", "{r}");
    assert_eq!(r["foreign_dead_lettered"], 6, "{r}");
    assert_eq!(r["foreign_completed"], 2, "{r}");
    assert_eq!(r["dead_lettered"], 0, "{r}");
    // The run waited for every one of its own tasks, not for a count the foreign ones padded.
    assert_eq!(r["completed"], r["tasks"], "{r}");
}

#[cfg(unix)]
#[test]
fn an_interrupted_run_says_so_and_accounts_for_every_task() {
    let mut run = BackgroundRun::start(
        "sigint",
        &["--tasks", "200", "--policy", "static:4", "--workers", "4"],
    );
    let mut c = run.redis();
    run.wait_counter(&mut c, "collector:tasks_total", 10);
    signal("-INT", &run.child.id().to_string());
    let status = run.wait();
    let err = run.stderr();
    assert!(!status.success(), "an interrupted run must not exit 0:\n{err}");
    assert!(err.contains("autoscale-node: error: interrupted: "), "{err}");
    let r = run.report();
    counts_add_up(&r);
    assert_eq!(r["outcome"], "interrupted", "{r}");
    assert_eq!(r["interrupted"], true, "{r}");
    assert!(r["not_emitted"].as_u64().unwrap() > 0, "{r}");
    assert!(r["completed"].as_u64().unwrap() >= 10, "{r}");
    assert!(
        run.stdout().contains("| outcome | interrupted |"),
        "{}",
        run.stdout()
    );
}

fn refused(args: &[&str], env: &[(&str, &str)], says: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run autoscale-node");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} was accepted");
    assert!(err.contains(says), "{args:?}: {err}");
}

#[test]
fn nonsense_values_are_refused_naming_the_flag_and_its_range() {
    for (args, says) in [
        (
            &["run", "--time-scale", "1e-9"][..],
            "--time-scale must be between 0.01 and 100, got 0.000000001",
        ),
        (
            &["run", "--time-scale", "NaN"],
            "--time-scale must be between 0.01 and 100, got NaN",
        ),
        (
            &["run", "--time-scale=-1"],
            "--time-scale must be between 0.01 and 100, got -1",
        ),
        (
            &["run", "--tasks", "0"],
            "--tasks must be between 1 and 1000000, got 0",
        ),
        (
            &["run", "--tasks", "1000000000000"],
            "--tasks must be between 1 and 1000000",
        ),
        (
            &["run", "--workers", "100"],
            "--workers must be between 1 and 32, got 100",
        ),
        (
            &["run", "--max-workers", "4000000000"],
            "--max-workers must be between 1 and 10000",
        ),
        (
            &["run", "--decision-period-s", "1e-9"],
            "--decision-period-s must be between 0.1 and 3600",
        ),
        (
            &["eval", "--episodes", "0"],
            "--episodes must be between 1 and 100000, got 0",
        ),
        (
            &["eval", "--episodes", "1000000000"],
            "--episodes must be between 1 and 100000",
        ),
        (
            &["eval", "--startup-delay-s", "NaN"],
            "--startup-delay-s must be between 0 and 3600, got NaN",
        ),
        (
            &["eval", "--base-rate", "1e9", "--episodes", "1"],
            "--base-rate 1000000000: the workload would generate 3800000000 tasks",
        ),
        (
            &["train", "--generations", "0"],
            "--generations must be between 1 and 100000, got 0",
        ),
        (
            &["train", "--sigma", "inf"],
            "--sigma must be between 0.000001 and 10, got inf",
        ),
        (
            &["emitter", "--time-scale", "1e-9"],
            "--time-scale must be between 0.01 and 100",
        ),
        (
            &["worker", "--poll-interval-s", "NaN"],
            "--poll-interval-s must be between 0.01 and 60, got NaN",
        ),
        (
            &["worker", "--grace-period-s", "1e300"],
            "--grace-period-s must be between 0 and 3600",
        ),
    ] {
        refused(args, &[], says);
    }
    // The same limits hold for values from the environment and from a --config file.
    refused(
        &["run"],
        &[("AUTOSCALE_TIME_SCALE", "1e-9")],
        "--time-scale must be between 0.01 and 100",
    );
    let file = std::env::temp_dir().join(format!("autoscale-node-limits-{}.toml", std::process::id()));
    std::fs::write(&file, "time-scale = 1e-9\n").unwrap();
    refused(
        &["run", "--config", file.to_str().unwrap()],
        &[],
        "--time-scale must be between 0.01 and 100",
    );
    std::fs::remove_file(&file).ok();
}
