//! `autoscale-node run`: the whole farm on one machine — embedded broker (or `--redis`),
//! emitter, collector and workers as child processes, the node's control loop deciding every
//! period, a live view, and a report at the end. Against a broker where an autoscale-node is
//! already serving with a scaler, `run` feeds the job and leaves the scaling to that node.
//!
//! The run tells the truth about how it ended: it supervises the emitter and the collector
//! (`supervise`), counts the job's own tasks apart from anything else in the queues
//! (`ledger`), and reports interrupted, failed or incomplete jobs as such, with a non-zero
//! exit code (`report`).

mod ledger;
mod report;
mod supervise;

use crate::limits;
use agent::spec::PolicySpec;
use anyhow::Context;
use autoscale_node::node::reader::{EmbeddedReader, FarmReader, RedisReader};
use autoscale_node::node::wake::QueueWake;
use autoscale_node::node::{Node, NodeConfig};
use autoscale_node::requests;
use autoscale_node::scaler::local::stop_children;
use autoscale_node::scaler::remote::RemoteNode;
use autoscale_node::scaler::{self, ScalerArgs, ScalerKind};
use autoscale_node::stats::NodeStats;
use clap::Args;
use functions::protocol::{agree_program_start, keys, ControlMsg};
use functions::runtime::json;
use indicatif::{ProgressBar, ProgressStyle};
use ledger::JobLedger;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use report::{Outcome, RunReport};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use supervise::Supervisor;
use workload::WorkloadConfig;

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Scale the configured phases to about this many tasks in total, 1 to 1,000,000
    /// (default: the original workload, 1140 tasks).
    #[arg(long, env = "AUTOSCALE_TASKS")]
    pub tasks: Option<usize>,
    /// Workers at the start (default 12; against a serving node, its current count is kept
    /// unless this is given).
    #[arg(long, env = "AUTOSCALE_WORKERS")]
    pub workers: Option<u32>,
    /// Scaling policy: `bundled` (the calendar model; with `--no-calendar` the staffing rule
    /// `serve` runs), a `*.safetensors` file, a rule (staffing[:…], static:N, reactive-average,
    /// reactive-maximum, queue-proportional, load-proportional), `manual`, or
    /// `calendar[:RISK[:WAIT_S]]` — predictive scaling from the workload's planned rates, which
    /// `run` knows because it drives the emitter.
    #[arg(long, env = "AUTOSCALE_POLICY", default_value = "bundled")]
    pub policy: PolicySpec,
    /// Multiply every duration by this, 0.01 to 100 (0.1 runs the 4-minute workload in 24 s).
    #[arg(long, env = "AUTOSCALE_TIME_SCALE", default_value_t = 0.1)]
    pub time_scale: f64,
    /// Use this Redis instead of the embedded broker (its farm keys are cleared first). If an
    /// autoscale-node serves there with a scaler, that node does the scaling.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
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
    /// Port of the live dashboard (and /metrics) on 127.0.0.1 while the job runs (0 picks a
    /// free one; the address is printed).
    #[arg(long, env = "AUTOSCALE_RUN_HTTP_PORT", default_value_t = 0)]
    pub http_port: u16,
    /// Do not tell the policy the workload's planned rates (the load calendar): it then sees
    /// only what `serve` sees, the farm's metrics.
    #[arg(long, env = "AUTOSCALE_NO_CALENDAR")]
    pub no_calendar: bool,
    /// The embedded broker's password and protected mode (as `serve`'s): binding it beyond
    /// loopback for a cluster's workers needs a password, which they then use too.
    #[command(flatten)]
    pub access: crate::serve::AccessArgs,
    #[command(flatten)]
    pub scalers: ScalerArgs,
    /// `--trace`, `--trace-replay`, `--trace-plan`: replay a recorded trace as the job.
    #[command(flatten)]
    pub trace: crate::trace_args::TraceArgs,
    /// Rate limits, the idle rule and the start-up hint, as `serve`'s.
    #[command(flatten)]
    pub decisions: crate::serve::DecisionArgs,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    crate::train::single_threaded_tensors();
    limits::check("--time-scale", args.time_scale, &limits::TIME_SCALE)?;
    limits::check("--max-workers", args.max_workers, &(1..=limits::MAX_WORKERS))?;
    limits::check("--min-workers", args.min_workers, &(1..=args.max_workers))?;
    if let Some(w) = args.workers {
        limits::check("--workers", w, &(args.min_workers..=args.max_workers))?;
    }
    if args.scalers.worker_command.is_some() {
        anyhow::bail!("--worker-command starts a job framework's workers for `serve --queue`; `run` drives the farm's own workers");
    }
    if let Some(n) = args.tasks {
        limits::check("--tasks", n, &limits::TASKS)?;
        if args.trace.trace.is_some() {
            anyhow::bail!("--tasks scales the default phases; a --trace carries its own count");
        }
    }
    if let Some(p) = args.decision_period_s {
        limits::check("--decision-period-s", p, &limits::DECISION_PERIOD_S)?;
    }
    args.decisions.validate(args.max_workers)?;
    if args.scaler == ScalerKind::None {
        anyhow::bail!("run needs workers: use --scaler local, openfaas or kubernetes");
    }
    if args.no_calendar && matches!(args.policy, PolicySpec::Calendar { .. }) {
        anyhow::bail!("--policy calendar reads the load calendar that --no-calendar withholds");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run_async(args))?;
    match report.incomplete() {
        Some(why) => anyhow::bail!(why),
        None => Ok(()),
    }
}

/// Why the watch loop stopped.
enum Stop {
    Done,
    Interrupted,
    Failed(String),
    TimedOut,
}

async fn run_async(args: RunArgs) -> anyhow::Result<RunReport> {
    // From the start: a Ctrl-C during set-up still ends the run as interrupted.
    let mut signals = crate::serve::Signals::install();
    let scale = args.time_scale;
    let mut workload = WorkloadConfig {
        time_scale: scale,
        ..WorkloadConfig::default()
    };
    if let Some(n) = args.tasks {
        let default_total: usize = workload
            .phases
            .iter()
            .map(|p| p.target_tasks(workload.base_rate_per_min))
            .sum();
        workload.base_rate_per_min *= n as f64 / default_total as f64;
    }
    args.trace.apply(&mut workload)?;
    workload.validate().context("the run's workload")?;
    let (policy, period) = autoscale_node::node_policy(
        &args.policy,
        args.decision_period_s,
        (!args.no_calendar).then_some(&workload),
    )?;
    let exe = std::env::current_exe().context("locating the autoscale-node executable")?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (url, source) = match &args.redis {
        Some(u) => (u.clone(), None),
        None => {
            let password = args.access.password()?;
            args.access
                .warn_about_exposure(password.as_deref(), &[&args.bind]);
            let listener = tokio::net::TcpListener::bind(format!("{}:{}", args.bind, args.port))
                .await
                .context("binding the embedded broker")?;
            let mut addr = listener.local_addr()?;
            let broker = broker::Broker::new(broker::BrokerConfig {
                mem_allocator: autoscale_node::MEM_ALLOCATOR,
                requirepass: password.clone(),
                protected_mode: args.access.protected_mode,
                ..broker::BrokerConfig::default()
            });
            let stop = shutdown.clone();
            tokio::spawn(broker.clone().serve(listener, stop.cancelled_owned()));
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let auth = password.map(|p| format!(":{p}@")).unwrap_or_default();
            (format!("redis://{auth}{addr}/"), Some(broker))
        }
    };
    let client = redis::Client::open(url.as_str()).with_context(|| format!("bad redis URL {url}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    // A node already serving this broker owns the workers: feed it, let it scale.
    let delegate = source.is_none() && requests::node_serving(&mut conn, NODE_RESTART_GRACE).await?;
    clear_farm_keys(&mut conn, !delegate).await?;
    // A fresh clock, or the serving node's (its workers already agreed on it).
    let program_start = agree_program_start(&mut conn, functions::runtime::unix_now())
        .await
        .context("agreeing on program_start_time")?;

    let workload_duration: f64 = workload.phases.iter().map(|p| p.duration_s).sum();
    // `run` drives the emitter, so it knows the schedule: every observation carries the
    // calendar's outlook (policies that do not read it are unaffected).
    let calendar = (!args.no_calendar).then(|| {
        autoscale_node::run_calendar(
            &workload,
            args.seed,
            period,
            // How long a new worker takes to serve, in workload time.
            args.decisions.worker_startup_wall_s(args.scaler) / scale,
        )
    });

    // The serving node's status when the job starts: its actions during the job are counted
    // from here.
    let mut node_before: Option<requests::NodeStatus> = None;
    let job_id = uuid::Uuid::new_v4().simple().to_string();
    let (scaler, policy): (Box<dyn scaler::Scaler>, _) = if delegate {
        // The node answers in its status, which it has published by then (a node that has
        // just started may not have published any before).
        let answer = announce_job(&mut conn, &job_id, scale).await?;
        let status = requests::node_status(&mut conn).await?.unwrap_or_default();
        println!(
            "autoscale-node run: an autoscale-node serves {} (scaler {}, policy {}); it does the scaling",
            crate::serve::redacted(&url),
            status.scaler,
            status.policy
        );
        println!("autoscale-node run: {}", answer.message);
        node_before = Some(status.clone());
        (Box::new(RemoteNode { status }), None)
    } else {
        (
            scaler::build(args.scaler, &args.scalers, &url, program_start).await?,
            policy,
        )
    };
    let stats = Arc::new(NodeStats::default());
    // The dashboard on loopback only (so it needs no password), for as long as the job runs.
    let http = tokio::net::TcpListener::bind(("127.0.0.1", args.http_port))
        .await
        .context("binding the dashboard (choose another port with --http-port)")?;
    println!("autoscale-node run: dashboard at http://{}/", http.local_addr()?);
    let endpoint = autoscale_node::http::Endpoint {
        stats: stats.clone(),
        broker: source.clone(),
        access: autoscale_node::http::Access {
            password: None,
            protected_mode: false,
        },
    };
    tokio::spawn(functions::http::serve(http, endpoint.router(), shutdown.clone()));
    let cfg = NodeConfig {
        decision_period_s: period,
        min_decision_gap_s: args.decisions.min_decision_gap_s,
        time_scale: scale,
        time_scale_fixed: true,
        worker_startup_wall_s: args.decisions.worker_startup_wall_s(args.scaler),
        limits: args.decisions.limits(args.min_workers, args.max_workers),
        // Local workers are reaped the moment they exit; this catches remote ones.
        orphan_grace: Duration::from_secs_f64((30.0 * scale).max(2.0)),
        passive: delegate,
        keep_steps: true,
    };
    // The embedded broker wakes the loop on bursts.
    let wake = source.as_ref().map(|b| {
        let wake = Arc::new(QueueWake::new(&functions::Queues::default().worker));
        b.queues().add_hook(wake.clone());
        wake
    });
    let reader: Box<dyn FarmReader> = match source {
        Some(b) => Box::new(EmbeddedReader::new(b, program_start)),
        None => Box::new(RedisReader::new(conn.clone(), program_start)),
    };
    let initial = match (delegate, args.workers) {
        (true, None) => None,
        (_, w) => Some(w.unwrap_or(12)),
    };
    let mut controller = Node::new(
        policy,
        scaler,
        reader,
        conn.clone(),
        cfg,
        initial.unwrap_or(0),
        stats,
    )
    .await?;
    controller.set_calendar(calendar);
    if let Some(wake) = wake {
        controller.set_wake(wake);
    }

    // The emitter and the collector: on the platform when the scaler has one (OpenFaaS
    // functions, Kubernetes Deployments, which restart them themselves), else as local
    // processes supervised here.
    let scale_arg = scale.to_string();
    let mut roles = Supervisor::new(exe, url.clone(), program_start);
    let mut on_platform: Vec<&str> = Vec::new();
    for role in ["collector", "emitter"] {
        let env = [
            (
                "AUTOSCALE_PROGRAM_START_TIME".to_string(),
                program_start.to_string(),
            ),
            ("AUTOSCALE_TIME_SCALE".to_string(), scale_arg.clone()),
        ];
        if controller.scaler().start_role(role, &env).await? {
            on_platform.push(role);
        } else {
            let extra = if role == "emitter" {
                vec!["--time-scale".to_string(), scale_arg.clone()]
            } else {
                Vec::new()
            };
            roles.start(role, extra)?;
        }
    }
    if initial.is_some() {
        controller.start().await?;
    }
    let queues = functions::Queues::default();
    let phases = functions::emitter::phase_messages(&workload, args.seed);
    let mut ledger = JobLedger::new(&phases);
    let total = ledger.total();
    for msg in &phases {
        let _: () = conn.lpush(&queues.input, json(msg)).await?;
    }
    println!(
        "autoscale-node run: {total} tasks over {:.0} s (time scale {scale}), policy {}, broker {}",
        workload_duration * scale,
        match &node_before {
            Some(node) => format!("{} (the serving node's)", node.policy),
            None => controller.policy_name(),
        },
        crate::serve::redacted(&url)
    );

    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} tasks [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    // Workload time plus a drain allowance, then give up waiting.
    let limit = Duration::from_secs_f64((workload_duration + 120.0) * scale + 30.0);
    let interrupted = signals.recv();
    tokio::pin!(interrupted);
    let stop = loop {
        tokio::select! {
            biased;
            _ = &mut interrupted => break Stop::Interrupted,
            _ = controller.woken() => controller.request_decision(),
            _ = tokio::time::sleep(controller.next_tick_in()) => {}
        }
        if let Some(exit) = roles.exited() {
            // A Ctrl-C in a terminal reaches the whole process group: the functions stop
            // as asked, and the run's own signal may land a moment after they are gone.
            if tokio::time::timeout(Duration::from_millis(300), &mut interrupted)
                .await
                .is_ok()
            {
                break Stop::Interrupted;
            }
            match roles.restart(&exit) {
                Ok(line) => bar.suspend(|| eprintln!("autoscale-node run: {line}")),
                Err(e) => break Stop::Failed(format!("{e:#}")),
            }
        }
        let decided = controller.tick_or_log().await;
        if let Err(e) = ledger.poll(&mut conn).await {
            // The serving node went away (a restart: with its append-only log the job's state
            // survives it): wait for it to come back and carry on, as the farm's functions do.
            if !(delegate && broker_lost(&e)) {
                return Err(e.into());
            }
            bar.suspend(|| {
                eprintln!("autoscale-node run: lost the broker ({e}); waiting for it to come back")
            });
            let back = tokio::select! {
                back = reconnect(&client, RECONNECT_FOR) => back,
                _ = &mut interrupted => break Stop::Interrupted,
            };
            match back {
                Ok(fresh) => {
                    conn = fresh;
                    controller.reconnect(conn.clone(), program_start);
                    bar.suspend(|| eprintln!("autoscale-node run: reconnected to the broker"));
                    continue;
                }
                Err(e) => break Stop::Failed(format!("{e:#}")),
            }
        }
        if let Some(why) = &ledger.refused_phase {
            break Stop::Failed(why.clone());
        }
        bar.set_position(ledger.accounted());
        if let Some(now) = decided {
            let counts = controller.counts();
            bar.set_message(format!(
                "queue {}  workers {} (target {})  QoS so far {:.2}%",
                now.queue_length,
                counts.live + counts.starting,
                controller.target(),
                if ledger.completed == 0 {
                    100.0
                } else {
                    ledger.qos_met as f64 * 100.0 / ledger.completed as f64
                }
            ));
        }
        if ledger.done() {
            break Stop::Done;
        }
        if started.elapsed() > limit {
            break Stop::TimedOut;
        }
    };
    let (outcome, failure) = match stop {
        Stop::Done => {
            bar.finish();
            (Outcome::Completed, None)
        }
        Stop::Interrupted => {
            bar.abandon_with_message("interrupted");
            (Outcome::Interrupted, None)
        }
        Stop::Failed(why) => {
            bar.abandon_with_message("failed");
            eprintln!("autoscale-node run: {why}; stopping the job");
            (Outcome::Failed, Some(why))
        }
        Stop::TimedOut => {
            bar.abandon_with_message("timed out");
            (Outcome::TimedOut, None)
        }
    };

    // The job may have stopped (a function that kept failing, Ctrl-C) while the serving node
    // was down, before the ledger noticed: what follows needs the broker, so wait for it as
    // the loop would have, rather than end without a report.
    if delegate {
        if let Err(e) = redis::cmd("PING").query_async::<()>(&mut conn).await {
            if !broker_lost(&e) {
                return Err(e.into());
            }
            if outcome == Outcome::Interrupted {
                anyhow::bail!(
                    "interrupted while the broker was unreachable ({e}); no report (the job's state stays on the broker)"
                );
            }
            eprintln!(
                "autoscale-node run: lost the broker ({e}); waiting for it to come back to end the job"
            );
            conn = tokio::select! {
                back = reconnect(&client, RECONNECT_FOR) => back?,
                _ = &mut interrupted => anyhow::bail!(
                    "interrupted while waiting for the broker; no report (the job's state stays on the broker)"
                ),
            };
            controller.reconnect(conn.clone(), program_start);
        }
    }

    // What the serving node did during the job, from its own status (this side only watched).
    let node_after = match node_before {
        Some(_) => requests::node_status(&mut conn).await?,
        None => None,
    };

    // Stop the job: TERMINATE to the emitter and the collector, the workers through the scaler.
    let end = ControlMsg::terminate().to_json();
    let _: () = conn.lpush(&queues.emitter_control_syn, &end).await?;
    let _: () = conn.lpush(&queues.collector_control_syn, &end).await?;
    controller.shutdown().await?;
    stop_children(roles.children_mut(), Duration::from_secs(5)).await;
    for role in on_platform {
        if let Err(e) = controller.scaler().stop_role(role).await {
            tracing::error!(error = %format!("{e:#}"), role, "stopping a function failed");
        }
    }

    // Everything has stopped: what the lists hold now is final.
    ledger.poll(&mut conn).await?;
    let in_flight = ledger.in_flight(&mut conn).await?;
    let emitted = get_u64(&mut conn, &queues.enqueued_total()).await?;
    let duplicates = get_u64(&mut conn, keys::DUPLICATES_TOTAL).await?;
    let mut times: Vec<f64> = ledger.completion_times.iter().map(|t| t / scale).collect();
    times.sort_by(f64::total_cmp);
    let wall = started.elapsed().as_secs_f64();
    let not_emitted = (total as u64).saturating_sub(emitted);
    if delegate {
        // The job is over: its announcement goes (a later job announces its own).
        let current: Option<String> = conn.get(requests::JOB).await?;
        if current.is_some_and(|raw| raw.contains(&job_id)) {
            let _: () = conn.del(requests::JOB).await?;
        }
    }
    let summary = controller.summary();
    let (policy_name, scaling_actions) = match (&node_before, &node_after) {
        (Some(before), Some(after)) => (
            format!("{} (the serving node's)", after.policy),
            after.scaling_actions.saturating_sub(before.scaling_actions),
        ),
        (Some(before), None) => (
            format!(
                "{} (the serving node's; it stopped before the end)",
                before.policy
            ),
            0,
        ),
        _ => (controller.policy_name(), summary.scaling_actions),
    };
    let report = RunReport {
        policy: policy_name,
        time_scale: scale,
        tasks: total,
        completed: ledger.completed,
        qos_met: ledger.qos_met,
        missed: total as u64 - ledger.qos_met.min(total as u64),
        dead_lettered: ledger.dead_lettered,
        still_queued: in_flight,
        lost: total as i64
            - ledger.completed as i64
            - ledger.dead_lettered as i64
            - in_flight as i64
            - not_emitted as i64,
        duplicates,
        qos_percent: ledger.qos_met as f64 * 100.0 / total.max(1) as f64,
        mean_workers: summary.worker_seconds_wall / wall.max(1e-9),
        max_workers: summary.max_workers_seen,
        worker_seconds: summary.worker_seconds_wall / scale,
        scaling_actions,
        crashed_workers: summary.vanished_workers,
        completion_p50_s: report::quantile(&times, 0.50),
        completion_p95_s: report::quantile(&times, 0.95),
        completion_p99_s: report::quantile(&times, 0.99),
        wall_clock_s: wall,
        interrupted: outcome == Outcome::Interrupted,
        outcome,
        failure,
        emitted,
        not_emitted,
        in_flight,
        foreign_completed: ledger.foreign_completed,
        foreign_dead_lettered: ledger.foreign_dead_lettered,
        restarts: roles.restarts(),
    };
    shutdown.cancel();
    report.write(&args.report, &summary.steps)?;
    println!("{}", report.markdown());
    println!("report written to {}", args.report.display());
    Ok(report)
}

/// Announces the job's clock to the serving node and waits for its answer: adopted, or
/// refused (then the run stops here with the node's reason, before anything is emitted).
async fn announce_job(
    conn: &mut MultiplexedConnection,
    id: &str,
    time_scale: f64,
) -> anyhow::Result<requests::JobAnswer> {
    let job = requests::JobRequest {
        id: id.to_string(),
        time_scale,
    };
    let _: () = conn.set(requests::JOB, json(&job)).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = requests::node_status(conn).await?.and_then(|s| s.job);
        match answer {
            Some(a) if a.id == id && a.accepted => return Ok(a),
            Some(a) if a.id == id => {
                let _: () = conn.del(requests::JOB).await?;
                anyhow::bail!("the serving node refused the job: {}", a.message)
            }
            _ if Instant::now() >= deadline => {
                let _: () = conn.del(requests::JOB).await?;
                anyhow::bail!(
                    "the serving node did not answer the job's announcement ({}) within 10 s; is its control loop running?",
                    requests::JOB
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Deletes what an earlier run left (queues, collector totals; with `with_clock`, the farm's
/// clock too — not when a node's workers already agreed on it).
/// How long a passive `run` waits for its serving node to come back.
const RECONNECT_FOR: Duration = Duration::from_secs(120);

/// How long a run waits for a node that served its broker a moment ago to come back.
const NODE_RESTART_GRACE: Duration = Duration::from_secs(10);

/// Whether `e` says the connection to the broker is gone (as opposed to a refused command).
fn broker_lost(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::IoError
        || e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

/// A new connection to the broker, retried with back-off for up to `within`.
async fn reconnect(client: &redis::Client, within: Duration) -> anyhow::Result<MultiplexedConnection> {
    let deadline = Instant::now() + within;
    let mut delay = Duration::from_millis(100);
    loop {
        match client.get_multiplexed_async_connection().await {
            Ok(conn) => return Ok(conn),
            Err(e) if Instant::now() + delay > deadline => {
                anyhow::bail!("the broker did not come back within {} s: {e}", within.as_secs())
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn clear_farm_keys(conn: &mut MultiplexedConnection, with_clock: bool) -> anyhow::Result<()> {
    let mut keys: Vec<String> = Vec::new();
    for pattern in functions::protocol::farm_key_patterns(with_clock) {
        let found: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(conn).await?;
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
