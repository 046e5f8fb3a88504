//! Real job frameworks, unchanged, on our broker: RQ and Celery (Python) and BullMQ (Node.js)
//! each run a workload of 1,000 jobs with delayed jobs, retries and a worker killed mid-job,
//! once against redis-server and once against autoscale-node. Every job must come back with
//! its result (none lost), and the summaries — what became of every job, including the killed
//! worker's — must be identical: whatever the framework promises on Redis, it keeps on ours.
//!
//! The drivers live in `tests/frameworks/`; `.ci/run` installs the frameworks (pinned).

mod common;

use common::{have_redis_server, start_node, start_redis_server, ServerProcess};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const JOBS: usize = 1000;
/// A whole driver run (1,000 jobs, a killed worker, retries) takes 15-40 s against
/// redis-server; this bound only turns a hang into a failure.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(480);

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/frameworks")
}

/// Whether `probe` succeeds; in CI a missing framework is a failure, not a skip.
fn have(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .current_dir(dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{tool} {}` failed: required in CI (.ci/run installs it)",
            probe.join(" ")
        );
        eprintln!("skipped: `{tool} {}` failed", probe.join(" "));
    }
    ok
}

/// Runs a driver against `server` and returns its JSON summary (its last stdout line).
fn run_driver(program: &str, script: &str, target: &str, label: &str) -> serde_json::Value {
    let mut child = Command::new(program)
        .arg(dir().join(script))
        .arg(target)
        .arg(JOBS.to_string())
        .current_dir(dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program} {script}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait for the driver").is_some() {
            break;
        }
        if start.elapsed() > DRIVER_TIMEOUT {
            let _ = child.kill();
            let out = child.wait_with_output().expect("driver output");
            panic!(
                "{script} against {label} did not finish in {DRIVER_TIMEOUT:?}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("driver output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} against {label} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("{script} against {label} printed no summary:\n{stdout}\n{stderr}"));
    eprintln!(
        "{script} against {label} ({:.1} s): {line}",
        start.elapsed().as_secs_f64()
    );
    serde_json::from_str(line).expect("the driver's summary is JSON")
}

/// One framework at a time: each runs several worker processes, and timing-sensitive parts
/// (a worker killed mid-job, lock expiry) should not compete with another framework's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The same workload against redis-server and our broker: nothing lost, same outcome.
fn same_outcome_on_both(program: &str, script: &str, target: impl Fn(&ServerProcess) -> String) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let reference = start_redis_server();
    let theirs = run_driver(program, script, &target(&reference), "redis-server");
    drop(reference);
    let node = start_node(&[]);
    let ours = run_driver(program, script, &target(&node), "autoscale-node");
    assert_eq!(
        theirs["wrong_or_lost"], 0,
        "the reference run itself lost jobs: {theirs}"
    );
    assert_eq!(
        ours["wrong_or_lost"], 0,
        "jobs lost or wrong on our broker: {ours}"
    );
    assert_eq!(ours["retried_once"], (JOBS / 20) as u64, "{ours}");
    assert_eq!(ours, theirs, "the framework behaved differently on our broker");
}

#[test]
fn rq_runs_unchanged_on_the_broker() {
    if !have_redis_server() || !have("python3", &["-c", "import rq"]) {
        return;
    }
    same_outcome_on_both("python3", "rq_driver.py", |s| format!("{}0", s.url()));
}

#[test]
fn celery_runs_unchanged_on_the_broker() {
    if !have_redis_server() || !have("python3", &["-c", "import celery, redis"]) {
        return;
    }
    same_outcome_on_both("python3", "celery_driver.py", |s| format!("{}0", s.url()));
}

#[test]
fn bullmq_runs_unchanged_on_the_broker() {
    if !have_redis_server()
        || !have(
            "node",
            &[
                "--input-type=module",
                "-e",
                "await import('bullmq'); await import('ioredis')",
            ],
        )
    {
        return;
    }
    same_outcome_on_both("node", "bullmq_driver.mjs", |s| s.port.to_string());
}

/// Polls `probe` every 100 ms until it returns `Some`, for at most `timeout`.
fn poll<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node scaling `worker` processes on `queue` by KEDA's list rule (10 waiting per worker,
/// 1 to 4 workers, a decision every half second), and a connection to its broker.
fn scaling_node(queue: &str, worker: &str) -> (ServerProcess, redis::Connection) {
    let node = start_node(&[
        "--scaler",
        "local",
        "--queue",
        queue,
        "--policy",
        "queue-proportional:10",
        "--min-workers",
        "1",
        "--max-workers",
        "4",
        "--decision-period-s",
        "0.5",
        "--worker-command",
        worker,
        "--worker-stop-grace-s",
        "10",
    ]);
    let client = redis::Client::open(node.url()).expect("url");
    let c = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (node, c)
}

/// The node scales a framework's own workers on the framework's queues: `serve --queue
/// list:rq:queue:high,list:rq:queue:jobs --scaler local --worker-command 'rq worker … high
/// jobs'`. A burst of RQ jobs on both queues makes it start more RQ workers
/// (queue-proportional, KEDA's rule, on the sum), every job completes, and scaling down stops
/// RQ workers with SIGTERM (RQ's warm shutdown) without losing a job.
#[test]
fn the_node_scales_rq_workers_on_their_queue() {
    if !have("python3", &["-c", "import rq"]) {
        return;
    }
    let worker = format!(
        "cd '{}' && exec rq worker --quiet --url \"$REDIS_URL\" --worker-class rq.worker.SimpleWorker --name \"rq-$AUTOSCALE_WORKER_ID\" high jobs",
        dir().display()
    );
    let (node, mut c) = scaling_node("list:rq:queue:high,list:rq:queue:jobs", &worker);
    let rq_workers =
        |c: &mut redis::Connection| -> usize { redis::cmd("SCARD").arg("rq:workers").query(c).unwrap_or(0) };
    poll(Duration::from_secs(60), "the first RQ worker", || {
        (rq_workers(&mut c) >= 1).then_some(())
    });

    // 300 jobs of 50 ms, half on each queue (RQ's worker empties `high` first): the rule asks
    // for the maximum (the sum's exactness is `node::several_framework_queues_are_read_…`).
    let enqueue = Command::new("python3")
        .args([
            "-c",
            "import sys, redis; from rq import Queue\n\
             r = redis.Redis.from_url(sys.argv[1])\n\
             high, jobs = Queue('high', connection=r), Queue('jobs', connection=r)\n\
             for i in range(150): high.enqueue('fwjobs.slow', i, 0.05); jobs.enqueue('fwjobs.slow', i, 0.05)",
            &format!("{}0", node.url()),
        ])
        .current_dir(dir())
        .status()
        .expect("run the enqueuer");
    assert!(enqueue.success(), "enqueue failed");
    let mut most = 0;
    let finished = poll(Duration::from_secs(120), "the 300 jobs to finish", || {
        most = most.max(rq_workers(&mut c));
        let done: usize = ["rq:finished:high", "rq:finished:jobs"]
            .iter()
            .map(|k| redis::cmd("ZCARD").arg(k).query::<usize>(&mut c).unwrap_or(0))
            .sum();
        (done >= 300).then_some(done)
    });
    assert_eq!(finished, 300);
    assert!(
        most >= 3,
        "the node ran at most {most} RQ workers for a 300-job burst"
    );
    let (_, m) = common::http_get(node.http_port, "/metrics");
    for queue in ["rq:queue:high", "rq:queue:jobs"] {
        assert_eq!(
            common::sample(
                &m,
                &format!(r#"autoscale_queue_info{{db="0",queue="{queue}",kind="list"}}"#)
            ),
            Some(1.0),
            "the selected queue {queue} is listed: {m}"
        );
        let pushed = format!(r#"autoscale_queue_pushed_total{{db="0",queue="{queue}"}}"#);
        assert!(
            common::sample(&m, &pushed).unwrap_or(0.0) >= 150.0,
            "{pushed}: {m}"
        );
    }

    // Scaling down by hand: the extra RQ workers get SIGTERM and leave (RQ deregisters them).
    let status = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(["scale", "1", "--redis", &node.url(), "--timeout-s", "60"])
        .stdout(Stdio::null())
        .status()
        .expect("run autoscale-node scale");
    assert!(status.success(), "autoscale-node scale 1 failed");
    poll(Duration::from_secs(60), "the RQ workers to stop", || {
        (rq_workers(&mut c) == 1).then_some(())
    });
    let failed: usize = ["rq:failed:high", "rq:failed:jobs"]
        .iter()
        .map(|k| redis::cmd("ZCARD").arg(k).query::<usize>(&mut c).unwrap_or(0))
        .sum();
    assert_eq!(failed, 0, "no job failed");
}

/// The same for a stream's consumer group (`--queue stream:KEY@GROUP`): consumers written with
/// redis-py are started as entries pile up, and every entry is delivered and acknowledged.
#[test]
fn the_node_scales_consumers_of_a_stream_group() {
    if !have("python3", &["-c", "import redis"]) {
        return;
    }
    let worker = format!(
        "exec python3 '{}' jobs workers 0.05",
        dir().join("stream_worker.py").display()
    );
    let (_node, mut c) = scaling_node("stream:jobs@workers", &worker);
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "jobs", "workers", "$", "MKSTREAM"])
        .query(&mut c)
        .unwrap();
    let mut add = redis::pipe();
    for i in 0..300 {
        add.cmd("XADD").arg("jobs").arg("*").arg("n").arg(i).ignore();
    }
    let _: () = add.query(&mut c).unwrap();
    let group = |c: &mut redis::Connection| -> std::collections::HashMap<String, redis::Value> {
        let groups: Vec<std::collections::HashMap<String, redis::Value>> =
            redis::cmd("XINFO").arg(&["GROUPS", "jobs"]).query(c).unwrap();
        groups.into_iter().next().expect("the group")
    };
    let int = |v: &redis::Value| -> i64 { redis::from_redis_value(v).unwrap_or(-1) };
    poll(Duration::from_secs(120), "every entry acknowledged", || {
        let g = group(&mut c);
        (int(&g["lag"]) == 0 && int(&g["pending"]) == 0).then_some(())
    });
    let consumers = int(&group(&mut c)["consumers"]);
    assert!(
        consumers >= 3,
        "only {consumers} consumers were started for 300 entries"
    );
    let stats: std::collections::HashMap<String, std::collections::HashMap<String, String>> =
        redis::cmd("QSTATS").arg("jobs").query(&mut c).unwrap();
    assert_eq!(stats["jobs@workers"]["acked_total"], "300", "{stats:?}");
    assert_eq!(stats["jobs@workers"]["wait_count"], "300");
}
