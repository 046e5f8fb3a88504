//! `autoscale-node serve`: the broker as a service, plus — with `--scaler` — the node's control
//! loop (policy + scaler) and the HTTP endpoint.

use anyhow::Context;
use autoscale_node::control::{ControlConfig, Controller, Source};
use autoscale_node::http::Endpoint;
use autoscale_node::scaler::{self, ScalerArgs, ScalerKind};
use autoscale_node::stats::NodeStats;
use broker::{Broker, BrokerConfig};
use clap::Args;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AUTOSCALE_BIND", default_value = "127.0.0.1")]
    pub bind: String,
    /// TCP port for the Redis protocol (0 picks a free port and prints it).
    #[arg(long, short = 'p', env = "AUTOSCALE_PORT", default_value_t = 6379)]
    pub port: u16,
    /// Require clients to AUTH with this password.
    #[arg(long, env = "AUTOSCALE_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// Number of databases (SELECT 0..N-1).
    #[arg(long, env = "AUTOSCALE_DATABASES", default_value_t = 16)]
    pub databases: usize,
    /// Largest bulk string a client may send, in bytes (`proto-max-bulk-len`).
    #[arg(long, env = "AUTOSCALE_PROTO_MAX_BULK_LEN", default_value_t = 512 * 1024 * 1024)]
    pub proto_max_bulk_len: usize,
    /// Runtime threads. 1 (the default) is Redis's model: one event loop, no cross-thread
    /// wake-ups, fastest when clients share the machine; N > 1 spreads connections over N
    /// threads (the keyspace stays behind one lock); 0 = one per core.
    #[arg(long, env = "AUTOSCALE_THREADS", default_value_t = 1)]
    pub threads: usize,
    /// Port of the HTTP endpoint (`/metrics`, `/healthz`, `/readyz`); 0 picks a free port.
    #[arg(long, env = "AUTOSCALE_HTTP_PORT", default_value_t = 9121)]
    pub http_port: u16,
    /// Address of the HTTP endpoint (default: `--bind`).
    #[arg(long, env = "AUTOSCALE_HTTP_BIND")]
    pub http_bind: Option<String>,
    /// Check the options (flags, environment, --config file) and the policy, print the
    /// effective settings, and exit without serving.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// The control loop's flags, shared by `serve` and `run`.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Who starts and stops workers: `none` (broker and metrics only), `local` (child
    /// processes), `openfaas` (gateway API) or `kubernetes` (a Deployment's scale).
    #[arg(long, env = "AUTOSCALE_SCALER", value_enum, default_value_t = ScalerKind::None)]
    pub scaler: ScalerKind,
    /// Scaling policy: `bundled` (the trained model in this binary), a `*.safetensors` file,
    /// a baseline (static:N, reactive-average, reactive-maximum, queue-proportional,
    /// load-proportional) or `manual` (only `autoscale-node scale` changes the count).
    #[arg(long, env = "AUTOSCALE_POLICY", default_value = "bundled")]
    pub policy: String,
    /// Workers to start with.
    #[arg(long, env = "AUTOSCALE_WORKERS")]
    pub workers: Option<u32>,
    #[arg(long, env = "AUTOSCALE_MIN_WORKERS", default_value_t = 1)]
    pub min_workers: u32,
    #[arg(long, env = "AUTOSCALE_MAX_WORKERS", default_value_t = 32)]
    pub max_workers: u32,
    /// Seconds between decisions, in workload time [default: a trained policy's own period,
    /// else 8 s].
    #[arg(long, env = "AUTOSCALE_DECISION_PERIOD_S")]
    pub decision_period_s: Option<f64>,
    /// Wall-clock seconds per workload second, as given to the emitter (the policy was trained
    /// in workload time).
    #[arg(long, env = "AUTOSCALE_TIME_SCALE", default_value_t = 1.0)]
    pub time_scale: f64,
    /// A worker disconnected this long (wall seconds) has its unfinished tasks re-queued.
    #[arg(long, env = "AUTOSCALE_ORPHAN_GRACE_S", default_value_t = 30.0)]
    pub orphan_grace_s: f64,
    #[command(flatten)]
    pub scalers: ScalerArgs,
}

impl NodeArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            anyhow::bail!("--time-scale must be a positive number");
        }
        autoscale_node::decision_period(self.decision_period_s, None)?;
        if self.min_workers > self.max_workers {
            anyhow::bail!("--min-workers must be at most --max-workers");
        }
        if !(self.orphan_grace_s.is_finite() && self.orphan_grace_s >= 0.0) {
            anyhow::bail!("--orphan-grace-s must be zero or more");
        }
        Ok(())
    }

    /// The control loop's settings, deciding every `decision_period_s` of workload time.
    pub fn control_config(&self, program_start: f64, decision_period_s: f64) -> ControlConfig {
        ControlConfig {
            decision_period: Duration::from_secs_f64(decision_period_s * self.time_scale),
            time_scale: self.time_scale,
            min_workers: self.min_workers,
            max_workers: self.max_workers,
            orphan_grace: Duration::from_secs_f64(self.orphan_grace_s),
            program_start,
            passive: false,
        }
    }
}

impl ServeArgs {
    fn broker_config(&self) -> BrokerConfig {
        BrokerConfig {
            requirepass: self.requirepass.clone().filter(|p| !p.is_empty()),
            databases: self.databases.max(1),
            proto_max_bulk_len: self.proto_max_bulk_len,
            mem_allocator: autoscale_node::MEM_ALLOCATOR,
            ..BrokerConfig::default()
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    args.node.validate()?;
    if args.check {
        let (policy, period) =
            autoscale_node::policy_by_name(&args.node.policy, args.node.decision_period_s, false)?;
        let n = &args.node;
        println!(
            "broker      {}:{} (http {}:{})",
            args.bind,
            args.port,
            args.http_bind.as_deref().unwrap_or(&args.bind),
            args.http_port
        );
        println!("scaler      {:?}", n.scaler);
        println!(
            "policy      {}",
            policy.map_or("manual".to_string(), |p| p.name())
        );
        println!(
            "workers     start {:?}, bounds {}..={}",
            n.workers, n.min_workers, n.max_workers
        );
        println!(
            "decisions   every {period} s of workload time, time scale {}",
            n.time_scale
        );
        println!("configuration ok");
        return Ok(());
    }
    // One thread means Redis's model exactly: a single event loop, no cross-thread wakeups.
    let mut builder = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if args.threads > 1 {
        builder.worker_threads(args.threads);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.node.scaler != ScalerKind::None {
        crate::train::single_threaded_tensors();
    }
    // Load the policy before binding anything, so a bad model file fails fast.
    let (policy, period) = match args.node.scaler {
        ScalerKind::None => (
            None,
            autoscale_node::decision_period(args.node.decision_period_s, None)?,
        ),
        _ => autoscale_node::policy_by_name(&args.node.policy, args.node.decision_period_s, false)?,
    };
    let addr = format!("{}:{}", args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let http_addr = format!(
        "{}:{}",
        args.http_bind.as_deref().unwrap_or(&args.bind),
        args.http_port
    );
    let http_listener = tokio::net::TcpListener::bind(&http_addr).await.with_context(|| {
        format!("binding the HTTP endpoint {http_addr} (choose another with --http-port)")
    })?;
    let http_local = http_listener.local_addr()?;
    // The bound addresses on stdout, so scripts and tests that pass port 0 can find them.
    println!("autoscale-node listening on {local}");
    println!("autoscale-node http on {http_local}");
    std::io::stdout().flush().ok();
    tracing::info!(%local, %http_local, scaler = ?args.node.scaler, "broker ready to accept connections");

    let broker = Broker::new(args.broker_config());
    let stats = Arc::new(NodeStats::default());
    let stop = CancellationToken::new();
    let endpoint = Endpoint {
        stats: stats.clone(),
        broker: Some(broker.clone()),
    };
    tokio::spawn(functions::http::serve(
        http_listener,
        endpoint.handler(),
        stop.clone(),
    ));
    let broker_stop = stop.clone();
    let broker_task = tokio::spawn(broker.clone().serve(listener, broker_stop.cancelled_owned()));

    if args.node.scaler == ScalerKind::None {
        stats.update(|s| {
            s.ready = true;
            s.scaler = "none".into();
        });
        stop_requested(&broker).await;
    } else {
        let result = control_loop(&args, &broker, local, (policy, period), stats.clone()).await;
        if let Err(e) = &result {
            tracing::error!(error = %format!("{e:#}"), "control loop stopped");
        }
        result?;
    }
    stop.cancel();
    broker_task.await.context("broker task")??;
    tracing::info!("broker stopped");
    Ok(())
}

/// Runs the node's control loop against its own broker until Ctrl-C or SIGTERM, then stops the
/// workers it started.
async fn control_loop(
    args: &ServeArgs,
    broker: &Broker,
    local: std::net::SocketAddr,
    (policy, period): (Option<Box<dyn agent::policy::Policy>>, f64),
    stats: Arc<NodeStats>,
) -> anyhow::Result<()> {
    let host = if local.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        local.ip().to_string()
    };
    let pass = args
        .requirepass
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(|p| format!(":{p}@"))
        .unwrap_or_default();
    let url = format!("redis://{pass}{host}:{}/", local.port());
    let client = redis::Client::open(url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    // One clock for the whole farm: task timestamps are relative to `program_start_time`, so
    // the workers this node starts and a `run` that feeds it later must agree on it.
    let _: bool = redis::AsyncCommands::set_nx(
        &mut conn,
        functions::runtime::totals::PROGRAM_START,
        functions::runtime::unix_now().to_string(),
    )
    .await?;
    let start: String =
        redis::AsyncCommands::get(&mut conn, functions::runtime::totals::PROGRAM_START).await?;
    let program_start: f64 = start.parse().context("reading program_start_time")?;
    let scaler = scaler::build(args.node.scaler, &args.node.scalers, &url, program_start).await?;
    let initial = args.node.workers.unwrap_or(args.node.min_workers);
    let mut controller = Controller::new(
        policy,
        scaler,
        Source::InProcess(broker.clone()),
        conn,
        args.node.control_config(program_start, period),
        initial,
        stats,
    )
    .await?;
    controller.start().await?;
    tracing::info!(
        policy = controller.policy_name(),
        workers = initial,
        "control loop started"
    );
    let mut ticker = tokio::time::interval(controller.tick_interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shutdown = stop_requested(broker);
    tokio::pin!(shutdown);
    let by_command = loop {
        tokio::select! {
            _ = ticker.tick() => {}
            by_command = &mut shutdown => break by_command,
        }
        if let Err(e) = controller.tick().await {
            tracing::error!(error = %format!("{e:#}"), "control tick failed; retrying at the next tick");
        }
    };
    match controller.shutdown().await {
        // SHUTDOWN stopped the broker first: the workers cannot be told through it (local
        // ones exit with the node).
        Err(e) if by_command => {
            tracing::warn!(error = %format!("{e:#}"), "workers not stopped through the broker, which a SHUTDOWN stopped");
            Ok(())
        }
        other => other,
    }
}

/// Completes on Ctrl-C, SIGTERM, or a client's SHUTDOWN (then true: the broker has stopped).
async fn stop_requested(broker: &Broker) -> bool {
    tokio::select! {
        _ = shutdown_signal() => false,
        _ = broker.stopped() => {
            tracing::info!("SHUTDOWN received, stopping");
            true
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("interrupt received, shutting down"),
        _ = term => tracing::info!("SIGTERM received, shutting down"),
    }
}
