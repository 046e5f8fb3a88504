//! `autoscale-node run`: the whole farm on one machine — embedded broker (or `--redis`),
//! emitter, collector and workers as child processes, the policy deciding every period, a live
//! view, and a report at the end.

use agent::eval::StepRecord;
use agent::observe::{observe, FarmMetrics};
use agent::policy::Policy;
use anyhow::Context;
use clap::Args;
use functions::messages::OutputRecord;
use functions::workload::WorkloadConfig;
use indicatif::{ProgressBar, ProgressStyle};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The policy trained by `train` and bundled in the binary (see models/README.md).
const BUNDLED_MODEL: &[u8] = include_bytes!("../../models/model.safetensors");

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Scale the configured phases to about this many tasks in total (default: the original
    /// workload, 1140 tasks).
    #[arg(long, env = "AUTOSCALE_TASKS")]
    pub tasks: Option<usize>,
    /// Workers at the start.
    #[arg(long, env = "AUTOSCALE_WORKERS", default_value_t = 12)]
    pub workers: u32,
    /// Scaling policy: a `*.safetensors` file, a baseline name (static:N, reactive-average,
    /// reactive-maximum, queue-proportional, load-proportional), or `bundled`.
    #[arg(long, env = "AUTOSCALE_POLICY", default_value = "bundled")]
    pub policy: String,
    /// Multiply every duration by this (0.1 runs the 4-minute workload in 24 s).
    #[arg(long, env = "AUTOSCALE_TIME_SCALE", default_value_t = 0.1)]
    pub time_scale: f64,
    /// Use this Redis instead of the embedded broker (its farm keys are cleared first).
    #[arg(long, env = "REDIS_URL")]
    pub redis: Option<String>,
    /// Where to write report.json, report.md and timeseries.svg.
    #[arg(long, env = "AUTOSCALE_REPORT", default_value = "report")]
    pub report: PathBuf,
    /// Seed of the workload.
    #[arg(long, env = "AUTOSCALE_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Bounds on the number of workers.
    #[arg(long, default_value_t = 1)]
    pub min_workers: u32,
    #[arg(long, default_value_t = 32)]
    pub max_workers: u32,
    /// Seconds between decisions, in workload time (scaled by --time-scale).
    #[arg(long, default_value_t = 8.0)]
    pub decision_period_s: f64,
}

/// One local worker process.
struct LocalWorker {
    id: u32,
    child: Child,
    /// A SCALE_DOWN was acknowledged by this worker: it is leaving on its own.
    leaving: bool,
}

/// The `local` scaler: spawns `autoscale-node worker` children, removes exactly the worker
/// that acknowledged a scale-down, re-queues the tasks of a worker that died.
struct LocalScaler {
    exe: PathBuf,
    url: String,
    program_start: f64,
    workers: Vec<LocalWorker>,
    pending_scale_down: u32,
    scaling_actions: u32,
    crashed: u32,
}

impl LocalScaler {
    fn spawn(&mut self) -> anyhow::Result<()> {
        // Lowest free id first, as the original reused worker names.
        let mut id = 1;
        while self.workers.iter().any(|w| w.id == id) {
            id += 1;
        }
        let child = function_process(
            &self.exe,
            "worker",
            &self.url,
            &id.to_string(),
            self.program_start,
            &[],
        )?;
        self.workers.push(LocalWorker {
            id,
            child,
            leaving: false,
        });
        Ok(())
    }

    /// Workers that count: running and not leaving, minus scale-downs not yet acknowledged.
    fn effective(&self) -> u32 {
        let live = self.workers.iter().filter(|w| !w.leaving).count() as u32;
        live.saturating_sub(self.pending_scale_down)
    }

    async fn scale_to(&mut self, target: u32, conn: &mut MultiplexedConnection) -> anyhow::Result<()> {
        let current = self.effective();
        if target > current {
            let mut add = target - current;
            while add > 0 && self.pending_scale_down > 0 {
                // A scale-down no worker has taken yet can simply be withdrawn.
                let removed: i64 = conn.lrem("worker_control_syn_queue", 1, scale_down_syn()).await?;
                if removed == 0 {
                    break;
                }
                self.pending_scale_down -= 1;
                add -= 1;
            }
            for _ in 0..add {
                self.spawn()?;
            }
            self.scaling_actions += 1;
        } else if target < current {
            for _ in 0..(current - target) {
                let _: () = conn.lpush("worker_control_syn_queue", scale_down_syn()).await?;
                self.pending_scale_down += 1;
            }
            self.scaling_actions += 1;
        }
        Ok(())
    }

    /// Reads ACKs and reaps exited children. Tasks of a worker that died are re-queued.
    async fn housekeeping(&mut self, conn: &mut MultiplexedConnection) -> anyhow::Result<()> {
        loop {
            let ack: Option<String> = conn.rpop("worker_control_ack_queue", None).await?;
            let Some(ack) = ack else { break };
            let pod = serde_json::from_str::<serde_json::Value>(&ack)
                .ok()
                .and_then(|v| v["pod_name"].as_str().map(str::to_string))
                .unwrap_or_default();
            if let Some(w) = self
                .workers
                .iter_mut()
                .find(|w| format!("worker-{}", w.id) == pod)
            {
                w.leaving = true;
                self.pending_scale_down = self.pending_scale_down.saturating_sub(1);
            }
        }
        let mut i = 0;
        while i < self.workers.len() {
            if let Ok(Some(status)) = self.workers[i].child.try_wait() {
                let w = self.workers.remove(i);
                if !w.leaving {
                    self.crashed += 1;
                    tracing::warn!(worker = w.id, %status, "worker exited without being asked; re-queueing its tasks");
                }
                let processing = format!("worker_queue:processing:{}", w.id);
                functions::requeue_processing(conn, &processing, "worker_queue").await?;
                continue;
            }
            i += 1;
        }
        Ok(())
    }
}

fn scale_down_syn() -> String {
    // A fixed body, so a not-yet-taken request can be withdrawn with LREM.
    r#"{"type":"SCALE_DOWN","action":"SYN","message":"scale down by one worker","SYN_timestamp":null}"#
        .to_string()
}

fn terminate_syn() -> String {
    r#"{"type":"TERMINATE","action":"SYN","message":"run finished","SYN_timestamp":null}"#.to_string()
}

fn function_process(
    exe: &PathBuf,
    role: &str,
    url: &str,
    id: &str,
    program_start: f64,
    extra: &[&str],
) -> anyhow::Result<Child> {
    let mut cmd = Command::new(exe);
    cmd.args([role, "--redis", url, "--id", id, "--poll-interval-s", "0.2"])
        .args(["--program-start-time", &program_start.to_string()])
        .args(extra)
        .env(
            "AUTOSCALE_LOG",
            std::env::var("AUTOSCALE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd.spawn().with_context(|| format!("starting {role} {id}"))
}

/// The numbers a run ends with.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub policy: String,
    pub time_scale: f64,
    pub tasks: usize,
    pub completed: u64,
    pub qos_met: u64,
    pub missed: u64,
    pub dead_lettered: u64,
    pub still_queued: u64,
    /// Tasks accounted for nowhere. Must be 0.
    pub lost: i64,
    pub duplicates: u64,
    pub qos_percent: f64,
    pub mean_workers: f64,
    pub max_workers: u32,
    /// Worker-seconds in workload time (wall-clock worker-seconds ÷ time scale).
    pub worker_seconds: f64,
    pub scaling_actions: u32,
    pub crashed_workers: u32,
    pub completion_p50_s: f64,
    pub completion_p95_s: f64,
    pub completion_p99_s: f64,
    pub wall_clock_s: f64,
}

async fn clear_farm_keys(conn: &mut MultiplexedConnection) -> anyhow::Result<()> {
    let mut keys: Vec<String> = Vec::new();
    for pattern in ["*_queue*", "collector:*", "program_start_time"] {
        let found: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(conn).await?;
        keys.extend(found);
    }
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(conn).await?;
    }
    Ok(())
}

async fn get_u64(conn: &mut MultiplexedConnection, key: &str) -> anyhow::Result<u64> {
    let v: Option<String> = conn.get(key).await?;
    Ok(v.and_then(|s| s.parse::<f64>().ok())
        .map_or(0, |f| f.max(0.0) as u64))
}

async fn get_f64(conn: &mut MultiplexedConnection, key: &str) -> anyhow::Result<f64> {
    let v: Option<String> = conn.get(key).await?;
    Ok(v.and_then(|s| s.parse().ok()).unwrap_or(0.0))
}

/// A snapshot of the farm, converted to workload time (so the policy sees the units it was
/// trained on, whatever the time scale).
async fn farm_metrics(
    conn: &mut MultiplexedConnection,
    scaler: &LocalScaler,
    started: Instant,
    scale: f64,
) -> anyhow::Result<FarmMetrics> {
    let queue_length: u64 = conn.llen("worker_queue").await?;
    let pushed = get_u64(conn, "worker_queue:enqueued_total").await?;
    let completed = get_u64(conn, functions::runtime::totals::TASKS).await?;
    let qos_met = get_u64(conn, functions::runtime::totals::QOS_MET).await?;
    let mean = get_f64(conn, functions::runtime::totals::LATENCY_MEAN_S).await?;
    let mut busy = 0u32;
    for w in &scaler.workers {
        let n: u64 = conn.llen(format!("worker_queue:processing:{}", w.id)).await?;
        busy += n.min(1) as u32;
    }
    let oldest_age_s = match conn.lindex::<_, Option<String>>("worker_queue", -1).await? {
        Some(raw) => serde_json::from_str::<functions::messages::Task>(&raw)
            .map(|t| ((started.elapsed().as_secs_f64() - t.task_gen_timestamp) / scale).max(0.0))
            .unwrap_or(0.0),
        None => 0.0,
    };
    Ok(FarmMetrics {
        time_s: started.elapsed().as_secs_f64() / scale,
        queue_length,
        pushed_total: pushed,
        popped_total: pushed.saturating_sub(queue_length),
        oldest_age_s,
        completed_total: completed,
        qos_met_total: qos_met,
        completion_sum_s: mean * completed as f64 / scale,
        completion_max_s: 0.0,
        workers_live: scaler.workers.iter().filter(|w| !w.leaving).count() as u32,
        workers_busy: busy,
        workers_starting: 0,
    })
}

fn policy_by_name(name: &str, period_s: f64) -> anyhow::Result<Box<dyn Policy>> {
    if name == "bundled" {
        return Ok(Box::new(agent::neural::NeuralPolicy::from_bytes(
            BUNDLED_MODEL,
            "the bundled model",
        )?));
    }
    Ok(agent::policy::by_name(name, &[], period_s, 5.0)?)
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    crate::train::single_threaded_tensors();
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        anyhow::bail!("--time-scale must be a positive number");
    }
    if args.min_workers == 0 || args.min_workers > args.max_workers {
        anyhow::bail!("--min-workers must be at least 1 and at most --max-workers");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> anyhow::Result<()> {
    let scale = args.time_scale;
    let mut policy = policy_by_name(&args.policy, args.decision_period_s)?;
    let exe = std::env::current_exe().context("locating the autoscale-node executable")?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let url = match &args.redis {
        Some(u) => u.clone(),
        None => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding the embedded broker")?;
            let addr = listener.local_addr()?;
            let broker = broker::Broker::new(broker::BrokerConfig::default());
            let stop = shutdown.clone();
            tokio::spawn(async move { broker.serve(listener, stop.cancelled_owned()).await });
            format!("redis://{addr}/")
        }
    };
    let client = redis::Client::open(url.as_str()).with_context(|| format!("bad redis URL {url}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    clear_farm_keys(&mut conn).await?;
    let program_start = functions::runtime::unix_now();
    let _: () = conn
        .set(
            functions::runtime::totals::PROGRAM_START,
            program_start.to_string(),
        )
        .await?;

    let mut workload = WorkloadConfig {
        time_scale: scale,
        ..WorkloadConfig::default()
    };
    if let Some(n) = args.tasks {
        if n == 0 {
            anyhow::bail!("--tasks must be at least 1");
        }
        let default_total: usize = workload
            .phases
            .iter()
            .map(|p| p.target_tasks(workload.base_rate_per_min))
            .sum();
        workload.base_rate_per_min *= n as f64 / default_total as f64;
    }
    let workload_duration: f64 = workload.phases.iter().map(|p| p.duration_s).sum();

    let scale_arg = scale.to_string();
    let mut children: Vec<Child> = vec![
        function_process(&exe, "collector", &url, "1", program_start, &[])?,
        function_process(
            &exe,
            "emitter",
            &url,
            "1",
            program_start,
            &["--time-scale", &scale_arg],
        )?,
    ];
    let mut scaler = LocalScaler {
        exe: exe.clone(),
        url: url.clone(),
        program_start,
        workers: Vec::new(),
        pending_scale_down: 0,
        scaling_actions: 0,
        crashed: 0,
    };
    for _ in 0..args.workers.clamp(args.min_workers, args.max_workers) {
        scaler.spawn()?;
    }
    let total = functions::emitter::feed_phases(&mut conn, "input_queue", &workload, args.seed).await?;
    println!(
        "autoscale-node run: {total} tasks over {:.0} s (time scale {scale}), policy {}, broker {url}",
        workload_duration * scale,
        policy.name()
    );

    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} tasks [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let period = Duration::from_secs_f64(args.decision_period_s * scale);
    // Workload time plus a drain allowance, then give up waiting.
    let limit = Duration::from_secs_f64((workload_duration + 120.0) * scale + 30.0);
    let mut prev = farm_metrics(&mut conn, &scaler, started, scale).await?;
    let mut steps: Vec<StepRecord> = Vec::new();
    let mut worker_seconds_wall = 0.0;
    let mut max_workers = scaler.workers.len() as u32;
    let mut last_tick = Instant::now();
    let mut ticker = tokio::time::interval(period);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = crate::serve::shutdown_signal() => {
                bar.abandon_with_message("interrupted");
                break;
            }
        }
        scaler.housekeeping(&mut conn).await?;
        let elapsed = last_tick.elapsed().as_secs_f64();
        last_tick = Instant::now();
        worker_seconds_wall += elapsed * scaler.workers.len() as f64;
        let now = farm_metrics(&mut conn, &scaler, started, scale).await?;
        let obs = observe(&prev, &now);
        let target = policy.decide(&obs).clamp(args.min_workers, args.max_workers);
        scaler.scale_to(target, &mut conn).await?;
        max_workers = max_workers.max(scaler.workers.len() as u32);
        let dead: u64 = conn.llen("worker_queue:dead").await?;
        steps.push(StepRecord {
            time_s: now.time_s,
            workers: scaler.effective(),
            target,
            queue_length: now.queue_length,
            arrival_rate: obs.arrival_rate,
            window_qos: obs.window_qos,
        });
        bar.set_position(now.completed_total);
        bar.set_message(format!(
            "queue {}  workers {} (target {})  QoS so far {:.2}%",
            now.queue_length,
            scaler.workers.len(),
            target,
            if now.completed_total == 0 {
                100.0
            } else {
                now.qos_met_total as f64 * 100.0 / now.completed_total as f64
            }
        ));
        prev = now.clone();
        if now.completed_total + dead >= total as u64 || started.elapsed() > limit {
            break;
        }
    }
    bar.finish();

    // Stop everything: TERMINATE to every function, then wait briefly for them to leave.
    let _: () = conn.lpush("emitter_control_syn_queue", terminate_syn()).await?;
    let _: () = conn.lpush("collector_control_syn_queue", terminate_syn()).await?;
    for _ in 0..scaler.workers.len() {
        let _: () = conn.lpush("worker_control_syn_queue", terminate_syn()).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for child in children
        .iter_mut()
        .chain(scaler.workers.iter_mut().map(|w| &mut w.child))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }

    let report = build_report(
        &mut conn,
        &args,
        policy.name(),
        total,
        scaler,
        max_workers,
        worker_seconds_wall,
        started,
    )
    .await?;
    shutdown.cancel();
    write_report(&args.report, &report, &steps)?;
    println!("{}", report_markdown(&report));
    println!("report written to {}", args.report.display());
    if report.lost != 0 {
        anyhow::bail!("{} tasks are unaccounted for", report.lost);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn build_report(
    conn: &mut MultiplexedConnection,
    args: &RunArgs,
    policy: String,
    total: usize,
    scaler: LocalScaler,
    max_workers: u32,
    worker_seconds_wall: f64,
    started: Instant,
) -> anyhow::Result<RunReport> {
    let scale = args.time_scale;
    let raw: Vec<String> = conn.lrange("output_queue", 0, -1).await?;
    let records: Vec<OutputRecord> = raw.iter().filter_map(|r| serde_json::from_str(r).ok()).collect();
    let mut times: Vec<f64> = records.iter().map(|r| r.task_completion_time / scale).collect();
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| -> f64 {
        if times.is_empty() {
            return 0.0;
        }
        times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1]
    };
    let completed = get_u64(conn, functions::runtime::totals::TASKS).await?;
    let qos_met = get_u64(conn, functions::runtime::totals::QOS_MET).await?;
    let duplicates = get_u64(conn, functions::runtime::totals::DUPLICATES).await?;
    let mut dead = 0u64;
    for q in ["worker_queue:dead", "result_queue:dead"] {
        dead += conn.llen::<_, u64>(q).await?;
    }
    let mut queued: u64 = conn.llen("worker_queue").await?;
    queued += conn.llen::<_, u64>("result_queue").await?;
    queued += conn
        .llen::<_, u64>(functions::runtime::totals::PROCESSING)
        .await?;
    let processing: Vec<String> = redis::cmd("KEYS")
        .arg("worker_queue:processing:*")
        .query_async(conn)
        .await?;
    for key in processing {
        queued += conn.llen::<_, u64>(key).await?;
    }
    let wall = started.elapsed().as_secs_f64();
    let worker_seconds = worker_seconds_wall / scale;
    Ok(RunReport {
        policy,
        time_scale: scale,
        tasks: total,
        completed,
        qos_met,
        missed: total as u64 - qos_met.min(total as u64),
        dead_lettered: dead,
        still_queued: queued,
        lost: total as i64 - completed as i64 - dead as i64 - queued as i64,
        duplicates,
        qos_percent: qos_met as f64 * 100.0 / total.max(1) as f64,
        mean_workers: worker_seconds_wall / wall.max(1e-9),
        max_workers,
        worker_seconds,
        scaling_actions: scaler.scaling_actions,
        crashed_workers: scaler.crashed,
        completion_p50_s: pct(0.50),
        completion_p95_s: pct(0.95),
        completion_p99_s: pct(0.99),
        wall_clock_s: wall,
    })
}

fn report_markdown(r: &RunReport) -> String {
    let rows: BTreeMap<&str, String> = [
        ("01 policy", r.policy.clone()),
        ("02 tasks", r.tasks.to_string()),
        ("03 QoS %", format!("{:.2}", r.qos_percent)),
        ("04 completed", r.completed.to_string()),
        ("05 missed deadline or unfinished", r.missed.to_string()),
        ("06 dead-lettered", r.dead_lettered.to_string()),
        ("07 still queued", r.still_queued.to_string()),
        ("08 lost", r.lost.to_string()),
        ("09 duplicates dropped", r.duplicates.to_string()),
        ("10 mean workers", format!("{:.2}", r.mean_workers)),
        ("11 max workers", r.max_workers.to_string()),
        (
            "12 worker-seconds (workload time)",
            format!("{:.0}", r.worker_seconds),
        ),
        ("13 scaling actions", r.scaling_actions.to_string()),
        ("14 crashed workers", r.crashed_workers.to_string()),
        (
            "15 completion p50 / p95 / p99 s (workload time)",
            format!(
                "{:.2} / {:.2} / {:.2}",
                r.completion_p50_s, r.completion_p95_s, r.completion_p99_s
            ),
        ),
        ("16 wall clock s", format!("{:.1}", r.wall_clock_s)),
    ]
    .into_iter()
    .collect();
    let mut s = String::from("| | |\n|---|---|\n");
    for (k, v) in rows {
        s.push_str(&format!("| {} | {v} |\n", &k[3..]));
    }
    s
}

fn write_report(dir: &PathBuf, report: &RunReport, steps: &[StepRecord]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(report)?)?;
    std::fs::write(
        dir.join("report.md"),
        format!("# Run report\n\n{}", report_markdown(report)),
    )?;
    std::fs::write(
        dir.join("timeseries.svg"),
        agent::plot::timeseries_svg(&[(report.policy.clone(), steps.to_vec())]),
    )?;
    Ok(())
}
