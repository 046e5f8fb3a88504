//! `autoscale-node run`: the whole farm on one machine — embedded broker (or `--redis`),
//! emitter, collector and workers as child processes, the node's control loop deciding every
//! period, a live view, and a report at the end. Against a broker where an autoscale-node is
//! already serving with a scaler, `run` feeds the job and leaves the scaling to that node.

use agent::eval::StepRecord;
use anyhow::Context;
use autoscale_node::control::{ControlConfig, Controller, Source};
use autoscale_node::requests;
use autoscale_node::scaler::local::{function_process, stop_children};
use autoscale_node::scaler::remote::RemoteNode;
use autoscale_node::scaler::{self, terminate_syn, ScalerArgs, ScalerKind};
use autoscale_node::stats::NodeStats;
use clap::Args;
use functions::messages::OutputRecord;
use functions::workload::WorkloadConfig;
use indicatif::{ProgressBar, ProgressStyle};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Child;

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Scale the configured phases to about this many tasks in total (default: the original
    /// workload, 1140 tasks).
    #[arg(long, env = "AUTOSCALE_TASKS")]
    pub tasks: Option<usize>,
    /// Workers at the start (default 12; against a serving node, its current count is kept
    /// unless this is given).
    #[arg(long, env = "AUTOSCALE_WORKERS")]
    pub workers: Option<u32>,
    /// Scaling policy: `bundled`, a `*.safetensors` file, a baseline name (static:N,
    /// reactive-average, reactive-maximum, queue-proportional, load-proportional), `manual`, or
    /// `calendar[:RISK[:WAIT_S]]` — predictive scaling from the workload's planned rates, which
    /// `run` knows because it drives the emitter.
    #[arg(long, env = "AUTOSCALE_POLICY", default_value = "bundled")]
    pub policy: String,
    /// Multiply every duration by this (0.1 runs the 4-minute workload in 24 s).
    #[arg(long, env = "AUTOSCALE_TIME_SCALE", default_value_t = 0.1)]
    pub time_scale: f64,
    /// Use this Redis instead of the embedded broker (its farm keys are cleared first). If an
    /// autoscale-node serves there with a scaler, that node does the scaling.
    #[arg(long, env = "REDIS_URL")]
    pub redis: Option<String>,
    /// Where to write report.json, report.md and timeseries.svg.
    #[arg(long, env = "AUTOSCALE_REPORT", default_value = "report")]
    pub report: PathBuf,
    /// Seed of the workload.
    #[arg(long, env = "AUTOSCALE_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Bounds on the number of workers.
    #[arg(long, env = "AUTOSCALE_MIN_WORKERS", default_value_t = 1)]
    pub min_workers: u32,
    #[arg(long, env = "AUTOSCALE_MAX_WORKERS", default_value_t = 32)]
    pub max_workers: u32,
    /// Seconds between decisions, in workload time (scaled by --time-scale) [default: a
    /// trained policy's own period, else 8 s].
    #[arg(long, env = "AUTOSCALE_DECISION_PERIOD_S")]
    pub decision_period_s: Option<f64>,
    /// Who runs the workers: `local` child processes (default), or `openfaas` / `kubernetes`
    /// (then pass --worker-redis-url: the address of this machine's broker as the cluster
    /// reaches it, and bind the embedded broker with --bind).
    #[arg(long, env = "AUTOSCALE_SCALER", value_enum, default_value_t = ScalerKind::Local)]
    pub scaler: ScalerKind,
    /// Address the embedded broker listens on.
    #[arg(long, env = "AUTOSCALE_BIND", default_value = "127.0.0.1")]
    pub bind: String,
    /// Port of the embedded broker (0 picks a free one).
    #[arg(long, env = "AUTOSCALE_RUN_PORT", default_value_t = 0)]
    pub port: u16,
    /// Do not tell the policy the workload's planned rates (the load calendar): it then sees
    /// only what `serve` sees, the farm's metrics.
    #[arg(long, env = "AUTOSCALE_NO_CALENDAR")]
    pub no_calendar: bool,
    #[command(flatten)]
    pub scalers: ScalerArgs,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    crate::train::single_threaded_tensors();
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        anyhow::bail!("--time-scale must be a positive number");
    }
    if args.min_workers == 0 || args.min_workers > args.max_workers {
        anyhow::bail!("--min-workers must be at least 1 and at most --max-workers");
    }
    if args.scaler == ScalerKind::None {
        anyhow::bail!("run needs workers: use --scaler local, openfaas or kubernetes");
    }
    if args.no_calendar && autoscale_node::is_calendar(&args.policy) {
        anyhow::bail!("--policy calendar reads the load calendar that --no-calendar withholds");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> anyhow::Result<()> {
    let scale = args.time_scale;
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
    let (policy, period) = if autoscale_node::is_calendar(&args.policy) {
        let period = autoscale_node::decision_period(args.decision_period_s, None)?;
        (
            Some(autoscale_node::calendar_policy(&args.policy, &workload, period)?),
            period,
        )
    } else {
        autoscale_node::policy_by_name(&args.policy, args.decision_period_s, !args.no_calendar)?
    };
    let exe = std::env::current_exe().context("locating the autoscale-node executable")?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (url, source) = match &args.redis {
        Some(u) => (u.clone(), None),
        None => {
            let listener = tokio::net::TcpListener::bind(format!("{}:{}", args.bind, args.port))
                .await
                .context("binding the embedded broker")?;
            let mut addr = listener.local_addr()?;
            let broker = broker::Broker::new(broker::BrokerConfig {
                mem_allocator: autoscale_node::MEM_ALLOCATOR,
                ..broker::BrokerConfig::default()
            });
            let stop = shutdown.clone();
            tokio::spawn(broker.clone().serve(listener, stop.cancelled_owned()));
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            (format!("redis://{addr}/"), Some(broker))
        }
    };
    let client = redis::Client::open(url.as_str()).with_context(|| format!("bad redis URL {url}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    // A node already serving this broker owns the workers: feed it, let it scale.
    let delegate = source.is_none() && requests::controller_present(&mut conn).await?;
    clear_farm_keys(&mut conn, !delegate).await?;
    let program_start = if delegate {
        match conn
            .get::<_, Option<String>>(functions::runtime::totals::PROGRAM_START)
            .await?
        {
            Some(s) => s.parse().context("reading the node's program_start_time")?,
            None => functions::runtime::unix_now(),
        }
    } else {
        functions::runtime::unix_now()
    };
    let _: () = conn
        .set(
            functions::runtime::totals::PROGRAM_START,
            program_start.to_string(),
        )
        .await?;

    let workload_duration: f64 = workload.phases.iter().map(|p| p.duration_s).sum();
    // `run` drives the emitter, so it knows the schedule: every observation carries the
    // calendar's outlook (policies that do not read it are unaffected).
    let calendar = (!args.no_calendar).then(|| {
        autoscale_node::run_calendar(
            &workload,
            args.seed,
            period,
            // How long a new worker takes to serve, in workload time: a local process ~0.3 s
            // of wall clock; a cold-started function or pod ~5 s.
            match args.scaler {
                ScalerKind::Local | ScalerKind::None => (0.3 / scale).min(5.0),
                ScalerKind::Openfaas | ScalerKind::Kubernetes => 5.0,
            },
        )
    });

    let (scaler, policy): (Box<dyn scaler::Scaler>, _) = if delegate {
        let status = requests::node_status(&mut conn).await?.unwrap_or_default();
        println!(
            "autoscale-node run: an autoscale-node serves {url} (scaler {}, policy {}); it does the scaling",
            status.scaler, status.policy
        );
        (Box::new(RemoteNode { status }), None)
    } else {
        (
            scaler::build(args.scaler, &args.scalers, &url, program_start).await?,
            policy,
        )
    };
    let stats = Arc::new(NodeStats::default());
    let cfg = ControlConfig {
        decision_period: Duration::from_secs_f64(period * scale),
        time_scale: scale,
        min_workers: args.min_workers,
        max_workers: args.max_workers,
        // Local workers are reaped the moment they exit; this catches remote ones.
        orphan_grace: Duration::from_secs_f64((30.0 * scale).max(2.0)),
        program_start,
        passive: delegate,
    };
    let source = match source {
        Some(b) => Source::InProcess(b),
        None => Source::Remote,
    };
    let initial = match (delegate, args.workers) {
        (true, None) => None,
        (_, w) => Some(w.unwrap_or(12)),
    };
    let mut controller = Controller::new(
        policy,
        scaler,
        source,
        conn.clone(),
        cfg,
        initial.unwrap_or(0),
        stats,
    )
    .await?;
    controller.set_calendar(calendar);

    // The emitter and the collector: on the platform when the scaler has one (OpenFaaS
    // functions, Kubernetes Deployments), else as local processes.
    let scale_arg = scale.to_string();
    let mut children: Vec<Child> = Vec::new();
    let mut on_platform: Vec<&str> = Vec::new();
    for role in ["collector", "emitter"] {
        let env = [
            (
                "AUTOSCALE_PROGRAM_START_TIME".to_string(),
                program_start.to_string(),
            ),
            ("AUTOSCALE_TIME_SCALE".to_string(), scale_arg.clone()),
        ];
        if controller.scaler.start_role(role, &env).await? {
            on_platform.push(role);
        } else {
            let extra: &[&str] = if role == "emitter" {
                &["--time-scale", &scale_arg]
            } else {
                &[]
            };
            children.push(function_process(&exe, role, &url, "1", program_start, extra)?);
        }
    }
    if initial.is_some() {
        controller.start().await?;
    }
    let total = functions::emitter::feed_phases(&mut conn, "input_queue", &workload, args.seed).await?;
    println!(
        "autoscale-node run: {total} tasks over {:.0} s (time scale {scale}), policy {}, broker {url}",
        workload_duration * scale,
        controller.policy_name()
    );

    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} tasks [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    // Workload time plus a drain allowance, then give up waiting.
    let limit = Duration::from_secs_f64((workload_duration + 120.0) * scale + 30.0);
    let mut ticker = tokio::time::interval(controller.tick_interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let interrupted = crate::serve::shutdown_signal();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut interrupted => {
                bar.abandon_with_message("interrupted");
                break;
            }
        }
        let Some(now) = controller.tick().await? else {
            continue;
        };
        let dead: u64 = conn.llen("worker_queue:dead").await?;
        let counts = controller.scaler.counts();
        bar.set_position(now.completed_total);
        bar.set_message(format!(
            "queue {}  workers {} (target {})  QoS so far {:.2}%",
            now.queue_length,
            counts.live + counts.starting,
            controller.target(),
            if now.completed_total == 0 {
                100.0
            } else {
                now.qos_met_total as f64 * 100.0 / now.completed_total as f64
            }
        ));
        if now.completed_total + dead >= total as u64 || started.elapsed() > limit {
            break;
        }
    }
    bar.finish();

    // Stop the job: TERMINATE to the emitter and the collector, the workers through the scaler.
    let _: () = conn.lpush("emitter_control_syn_queue", terminate_syn()).await?;
    let _: () = conn.lpush("collector_control_syn_queue", terminate_syn()).await?;
    controller.shutdown().await?;
    stop_children(children.iter_mut(), Duration::from_secs(5)).await;
    for role in on_platform {
        if let Err(e) = controller.scaler.stop_role(role).await {
            tracing::error!(error = %format!("{e:#}"), role, "stopping a function failed");
        }
    }

    let report = build_report(
        &mut conn,
        scale,
        controller.policy_name().to_string(),
        total,
        controller.scaling_actions,
        controller.vanished_workers,
        controller.max_workers_seen,
        controller.worker_seconds_wall,
        started,
    )
    .await?;
    shutdown.cancel();
    write_report(&args.report, &report, &controller.steps)?;
    println!("{}", report_markdown(&report));
    println!("report written to {}", args.report.display());
    if report.lost != 0 {
        anyhow::bail!("{} tasks are unaccounted for", report.lost);
    }
    Ok(())
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
    pub scaling_actions: u64,
    pub crashed_workers: u64,
    pub completion_p50_s: f64,
    pub completion_p95_s: f64,
    pub completion_p99_s: f64,
    pub wall_clock_s: f64,
}

/// Deletes what an earlier run left (queues, collector totals; with `with_clock`, the farm's
/// clock too — not when a node's workers already agreed on it).
async fn clear_farm_keys(conn: &mut MultiplexedConnection, with_clock: bool) -> anyhow::Result<()> {
    let mut keys: Vec<String> = Vec::new();
    let patterns: &[&str] = if with_clock {
        &["*_queue*", "collector:*", "program_start_time"]
    } else {
        &["*_queue*", "collector:*"]
    };
    for pattern in patterns {
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

#[allow(clippy::too_many_arguments)]
async fn build_report(
    conn: &mut MultiplexedConnection,
    scale: f64,
    policy: String,
    total: usize,
    scaling_actions: u64,
    crashed: u64,
    max_workers: u32,
    worker_seconds_wall: f64,
    started: Instant,
) -> anyhow::Result<RunReport> {
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
        scaling_actions,
        crashed_workers: crashed,
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
