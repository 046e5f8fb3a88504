//! `autoscale-node serve`: the broker as a service, plus — with `--scaler` — the node's control
//! loop (policy + scaler) and the HTTP endpoint.

use anyhow::Context;
use autoscale_node::http::{Access, Endpoint};
use autoscale_node::node::decide::Limits;
use autoscale_node::node::reader::EmbeddedReader;
use autoscale_node::node::record::ArrivalRecorder;
use autoscale_node::node::selector::QueueSelector;
use autoscale_node::node::wake::QueueWake;
use autoscale_node::node::{Node, NodeConfig, PeriodicPolicy};
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
    #[command(flatten)]
    pub access: AccessArgs,
    /// Most clients connected at once (`maxclients`); lowered to what the open-file limit
    /// allows, as Redis does.
    #[arg(long, env = "AUTOSCALE_MAXCLIENTS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub maxclients: u32,
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
    /// Address of the HTTP endpoint: loopback whatever `--bind` says; in a cluster use
    /// 0.0.0.0 so that Prometheus and the kubelet's probes reach it.
    #[arg(long, env = "AUTOSCALE_HTTP_BIND", default_value = "127.0.0.1")]
    pub http_bind: String,
    /// Serve KEDA's external scaler (gRPC) on this port, for `--scaler keda`: KEDA reads the
    /// node's target and applies it (0 picks a free port).
    #[arg(long, env = "AUTOSCALE_KEDA_PORT")]
    pub keda_port: Option<u16>,
    /// Address of the KEDA external scaler: loopback by default; in a cluster 0.0.0.0, with a
    /// NetworkPolicy that lets only KEDA's operator in (the gRPC service has no password).
    #[arg(long, env = "AUTOSCALE_KEDA_BIND", default_value = "127.0.0.1")]
    pub keda_bind: String,
    #[command(flatten)]
    pub persistence: PersistenceArgs,
    /// Check the options (flags, environment, --config file) and the policy, print the
    /// effective settings, and exit without serving.
    #[arg(long)]
    pub check: bool,
    /// The queue the node scales on: `farm` (the farm's worker_queue, its deadlines and the
    /// collector's totals), or a job framework's queue — `list:KEY` (RQ's `rq:queue:NAME`,
    /// Celery's `celery`, BullMQ's `bull:NAME:wait`), `stream:KEY@GROUP` (a consumer group:
    /// undelivered entries wait, pending ones are in flight), `delayed:KEY[@s|ms|bullmq]` (a
    /// sorted set of jobs scored by due time: due ones wait); several framework queues one
    /// pool of workers serves joined by commas (`list:rq:queue:high,list:rq:queue:default`):
    /// their lengths add up.
    #[arg(long, env = "AUTOSCALE_QUEUE", default_value = "farm")]
    pub queue: QueueSelector,
    #[command(flatten)]
    pub node: NodeArgs,
}

impl ServeArgs {
    /// The policy to run: as asked, except that the bundled models (trained on the farm's
    /// deadline-bound tasks and the collector's totals, which a framework's queue does not
    /// have) give way to KEDA's list rule, `queue-proportional`, on a framework's queue.
    pub fn policy(&self) -> agent::spec::PolicySpec {
        if !self.queue.is_farm() && self.node.policy == agent::spec::PolicySpec::Bundled {
            return agent::spec::PolicySpec::QueueProportional { target: None };
        }
        self.node.policy.clone()
    }
}

/// The append-only file and the memory limit (`serve` only: `run`'s embedded broker keeps
/// nothing across restarts). See docs/persistence.md.
#[derive(Args, Debug, Clone)]
pub struct PersistenceArgs {
    /// Log every write to an append-only file and replay it at start-up (`yes`/`no`).
    #[arg(long, env = "AUTOSCALE_APPENDONLY", default_value = "no", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub appendonly: bool,
    /// When the log reaches the disk: `always` (a reply waits for the fsync covering its write;
    /// writes arriving meanwhile share one fsync), `everysec` (at most about a second is lost
    /// in a crash) or `no` (when the operating system decides).
    #[arg(long, env = "AUTOSCALE_APPENDFSYNC", default_value = "everysec")]
    pub appendfsync: broker::aof::Fsync,
    /// Directory of the append-only file (created if missing).
    #[arg(long, env = "AUTOSCALE_DIR", default_value = ".")]
    pub dir: std::path::PathBuf,
    /// File name of the append-only file inside `--dir`.
    #[arg(long, env = "AUTOSCALE_APPENDFILENAME", default_value = "appendonly.aof")]
    pub appendfilename: String,
    /// Refuse commands that grow memory (`-OOM`) once the process's resident memory is above
    /// this (bytes, or Redis units: 50mb, 2gb); 0 = no limit. Policy: noeviction.
    #[arg(long, env = "AUTOSCALE_MAXMEMORY", default_value = "0", value_parser = parse_maxmemory)]
    pub maxmemory: u64,
}

fn parse_maxmemory(v: &str) -> Result<u64, String> {
    broker::commands::parse_memory(v)
        .ok_or_else(|| "must be a memory value (bytes, or e.g. 50mb, 2gb)".into())
}

impl PersistenceArgs {
    fn aof_config(&self) -> broker::aof::AofConfig {
        broker::aof::AofConfig {
            enabled: self.appendonly,
            fsync: self.appendfsync,
            dir: self.dir.clone(),
            filename: self.appendfilename.clone(),
            ..broker::aof::AofConfig::default()
        }
    }
}

/// The control loop's flags, shared by `serve` and `run`.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Who starts and stops workers: `none` (broker and metrics only), `local` (child
    /// processes), `openfaas` (gateway API) or `kubernetes` (a Deployment's scale).
    #[arg(long, env = "AUTOSCALE_SCALER", value_enum, default_value_t = ScalerKind::None)]
    pub scaler: ScalerKind,
    /// Scaling policy: `bundled` (the policies in this binary: the staffing rule deciding every
    /// second from the broker's metrics; the calendar model while a job's plan is known), a
    /// `*.safetensors` file (e.g. one `train --method guided --trace` fine-tuned on traffic
    /// `--record` captured), a rule (staffing[:…], static:N, reactive-average,
    /// reactive-maximum, queue-proportional, load-proportional) or `manual` (only
    /// `autoscale-node scale` changes the count).
    #[arg(long, env = "AUTOSCALE_POLICY", default_value = "bundled")]
    pub policy: agent::spec::PolicySpec,
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
    /// in workload time). Left unset, it is 1 until a job (`run --redis`) announces its own,
    /// which the node then adopts; set, a job on another clock is refused.
    #[arg(long, env = "AUTOSCALE_TIME_SCALE")]
    pub time_scale: Option<f64>,
    /// A worker disconnected this long (wall seconds) has its unfinished tasks re-queued.
    #[arg(long, env = "AUTOSCALE_ORPHAN_GRACE_S", default_value_t = 30.0)]
    pub orphan_grace_s: f64,
    /// Do not read the job's plan from the broker (`input_queue`, `autoscale:plan`): decide on
    /// the farm's metrics alone.
    #[arg(long, env = "AUTOSCALE_NO_CALENDAR")]
    pub no_calendar: bool,
    /// Record every task pushed to worker_queue to this CSV file (`timestamp,processing_s`,
    /// workload seconds since the farm's start): a trace `eval --trace` and `train --trace`
    /// replay. Flushed every second and at shutdown.
    #[arg(long, env = "AUTOSCALE_RECORD")]
    pub record: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub decisions: DecisionArgs,
    #[command(flatten)]
    pub scalers: ScalerArgs,
}

/// The time scale of a node whose operator did not set one: jobs announce theirs.
pub const DEFAULT_TIME_SCALE: f64 = 1.0;

impl NodeArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        use crate::limits;
        if let Some(t) = self.time_scale {
            limits::check("--time-scale", t, &limits::TIME_SCALE)?;
        }
        if let Some(p) = self.decision_period_s {
            limits::check("--decision-period-s", p, &limits::DECISION_PERIOD_S)?;
        }
        limits::check("--max-workers", self.max_workers, &(1..=limits::MAX_WORKERS))?;
        limits::check("--min-workers", self.min_workers, &(0..=self.max_workers))?;
        if let Some(w) = self.workers {
            limits::check("--workers", w, &(self.min_workers..=self.max_workers))?;
        }
        limits::check("--orphan-grace-s", self.orphan_grace_s, &limits::GRACE_PERIOD_S)?;
        self.decisions.validate(self.max_workers)
    }

    pub fn time_scale(&self) -> f64 {
        self.time_scale.unwrap_or(DEFAULT_TIME_SCALE)
    }

    /// The control loop's settings, deciding every `decision_period_s` of workload time.
    pub fn node_config(&self, decision_period_s: f64) -> NodeConfig {
        NodeConfig {
            decision_period_s,
            min_decision_gap_s: self.decisions.min_decision_gap_s,
            time_scale: self.time_scale(),
            time_scale_fixed: self.time_scale.is_some(),
            worker_startup_wall_s: self.decisions.worker_startup_wall_s(self.scaler),
            limits: self.decisions.limits(self.min_workers, self.max_workers),
            orphan_grace: Duration::from_secs_f64(self.orphan_grace_s),
            passive: false,
            keep_steps: false,
        }
    }
}

/// How the node decides: rate limits, the idle rule, the start-up hint (`serve` and `run`).
#[derive(Args, Debug, Clone)]
pub struct DecisionArgs {
    /// A scale-down waits this many workload seconds after the previous change of the count
    /// (0: none).
    #[arg(long, env = "AUTOSCALE_SCALE_DOWN_COOLDOWN_S", default_value_t = Limits::SCALE_DOWN_COOLDOWN_S)]
    pub scale_down_cooldown_s: f64,
    /// Hysteresis: a scale-down goes no lower than the largest count the policy asked for in
    /// the last this-many workload seconds, so a wish that flickers does not move the farm at
    /// every decision (0: none).
    #[arg(long, env = "AUTOSCALE_SCALE_DOWN_WINDOW_S", default_value_t = Limits::SCALE_DOWN_WINDOW_S)]
    pub scale_down_window_s: f64,
    /// Most workers one decision may add [default: no limit].
    #[arg(long, env = "AUTOSCALE_MAX_STEP_UP")]
    pub max_step_up: Option<u32>,
    /// A farm with no arrival, no queue and no busy worker for this many workload seconds goes
    /// to --min-workers, whatever the policy says (0 turns this off). Independently, a
    /// scale-up is refused while no task arrived in the last 30 s and nothing is queued.
    #[arg(long, env = "AUTOSCALE_IDLE_AFTER_S", default_value_t = Limits::IDLE_AFTER_S)]
    pub idle_after_s: f64,
    /// When the work queue jumps (it doubles, or outgrows the idle workers by a few tasks),
    /// an embedded node decides at once instead of at the next period — but never sooner than
    /// this many workload seconds after the previous decision.
    #[arg(long, env = "AUTOSCALE_MIN_DECISION_GAP_S", default_value_t = 0.25)]
    pub min_decision_gap_s: f64,
    /// How long a new worker takes to serve, in wall seconds: what every observation tells
    /// the policy (converted to workload time) [default: 0.3 for local processes, 5 for
    /// OpenFaaS functions and Kubernetes pods].
    #[arg(long, env = "AUTOSCALE_WORKER_STARTUP_S")]
    pub worker_startup_s: Option<f64>,
}

/// The range of the decision flags given in seconds.
const DECISION_SECONDS: std::ops::RangeInclusive<f64> = 0.0..=3600.0;

impl DecisionArgs {
    pub fn validate(&self, max_workers: u32) -> anyhow::Result<()> {
        use crate::limits::check;
        check(
            "--scale-down-cooldown-s",
            self.scale_down_cooldown_s,
            &DECISION_SECONDS,
        )?;
        check(
            "--scale-down-window-s",
            self.scale_down_window_s,
            &DECISION_SECONDS,
        )?;
        check("--idle-after-s", self.idle_after_s, &DECISION_SECONDS)?;
        check("--min-decision-gap-s", self.min_decision_gap_s, &(0.01..=3600.0))?;
        if let Some(n) = self.max_step_up {
            check("--max-step-up", n, &(1..=max_workers))?;
        }
        if let Some(s) = self.worker_startup_s {
            check("--worker-startup-s", s, &DECISION_SECONDS)?;
        }
        Ok(())
    }

    pub fn limits(&self, min_workers: u32, max_workers: u32) -> Limits {
        Limits {
            scale_down_cooldown_s: self.scale_down_cooldown_s,
            scale_down_window_s: self.scale_down_window_s,
            max_step_up: self.max_step_up,
            idle_after_s: (self.idle_after_s > 0.0).then_some(self.idle_after_s),
            ..Limits::bounds(min_workers, max_workers)
        }
    }

    /// The start-up hint in wall seconds: as given, else what `scaler`'s workers take.
    pub fn worker_startup_wall_s(&self, scaler: ScalerKind) -> f64 {
        self.worker_startup_s.unwrap_or(match scaler {
            ScalerKind::Local => 0.3,
            ScalerKind::Openfaas | ScalerKind::Kubernetes | ScalerKind::Keda => 5.0,
            ScalerKind::None => 0.0,
        })
    }
}

/// Who may use the embedded broker: its password and protected mode (`serve` and `run`).
#[derive(Args, Debug, Clone)]
pub struct AccessArgs {
    /// Require clients to AUTH with this password (prefer the environment variable or
    /// `--requirepass-file`: a command line is visible to every user through `ps`).
    #[arg(long, env = "AUTOSCALE_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// Read the password from this file (a mounted Kubernetes Secret); trailing newlines are
    /// ignored.
    #[arg(long, env = "AUTOSCALE_REQUIREPASS_FILE", conflicts_with = "requirepass")]
    pub requirepass_file: Option<std::path::PathBuf>,
    /// Protected mode: without a password, accept only loopback clients (127.0.0.1, ::1) on
    /// the broker and on `/metrics`; others get Redis's `-DENIED` answer. `no` opens both to
    /// whoever can reach them.
    #[arg(long, env = "AUTOSCALE_PROTECTED_MODE", default_value = "yes", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub protected_mode: bool,
}

impl AccessArgs {
    /// The password from `--requirepass` or `--requirepass-file` (empty means none).
    pub fn password(&self) -> anyhow::Result<Option<String>> {
        let raw = match &self.requirepass_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading the password file {}", path.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            None => self.requirepass.clone().unwrap_or_default(),
        };
        Ok((!raw.is_empty()).then_some(raw))
    }

    /// Warns about settings that expose the node on `binds`, once, at start.
    pub fn warn_about_exposure(&self, password: Option<&str>, binds: &[&str]) {
        let argv: Vec<String> = std::env::args().collect();
        if argv
            .iter()
            .any(|a| a == "--requirepass" || a.starts_with("--requirepass="))
        {
            tracing::warn!(
                "--requirepass on the command line is visible to every user of this machine (ps); use AUTOSCALE_REQUIREPASS or --requirepass-file"
            );
        }
        let exposed = binds.iter().any(|host| !is_loopback_host(host));
        if password.is_none() && !self.protected_mode && exposed {
            tracing::warn!(
                binds = ?binds,
                "protected mode is off and no password is set: anyone who can reach these addresses can read, change and delete every queue"
            );
        } else if password.is_none() && exposed {
            tracing::info!(
                "protected mode: with no password only loopback clients are accepted; set AUTOSCALE_REQUIREPASS (or --requirepass-file) for remote workers"
            );
        }
    }
}

/// `url` with its password replaced by `***`, for printing.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// `yes`/`no` (also `true`/`false`), as Redis spells its boolean options.
pub fn parse_yes_no(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err("must be yes or no".into()),
    }
}

/// Whether every address `host` can mean is a loopback one.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl ServeArgs {
    fn broker_config(&self, password: Option<String>, maxclients: usize) -> BrokerConfig {
        BrokerConfig {
            requirepass: password,
            protected_mode: self.access.protected_mode,
            maxclients,
            databases: self.databases.max(1),
            proto_max_bulk_len: self.proto_max_bulk_len,
            mem_allocator: autoscale_node::MEM_ALLOCATOR,
            aof: self.persistence.aof_config(),
            maxmemory_bytes: self.persistence.maxmemory,
            ..BrokerConfig::default()
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    args.node.validate()?;
    check_queue_and_scaler(&args)?;
    if !args.queue.is_farm() && args.node.record.is_some() {
        anyhow::bail!(
            "--record captures the farm's tasks (their processing times): it needs --queue farm, not {}",
            args.queue
        );
    }
    if args.check {
        let (policy, period) =
            autoscale_node::node_policy(&args.policy(), args.node.decision_period_s, None)?;
        let n = &args.node;
        let password = args.access.password()?;
        println!(
            "broker      {}:{} (http {}:{}), password {}, protected mode {}",
            args.bind,
            args.port,
            args.http_bind,
            args.http_port,
            if password.is_some() { "set" } else { "none" },
            if args.access.protected_mode { "yes" } else { "no" }
        );
        let p = &args.persistence;
        println!(
            "persistence appendonly {}, appendfsync {}, file {}, maxmemory {}",
            if p.appendonly { "yes" } else { "no" },
            p.appendfsync.name(),
            p.aof_config().path().display(),
            p.maxmemory
        );
        println!("scaler      {:?}", n.scaler);
        println!("queue       {}", args.queue);
        println!(
            "policy      {}",
            policy.map_or("manual".to_string(), |p| p.name())
        );
        println!(
            "workers     start {:?}, bounds {}..={}",
            n.workers, n.min_workers, n.max_workers
        );
        println!(
            "decisions   every {period} s of workload time (sooner on bursts, {} s apart at least), time scale {}",
            n.decisions.min_decision_gap_s,
            match n.time_scale {
                Some(t) => format!("{t}"),
                None => format!("{DEFAULT_TIME_SCALE} until a job sets it"),
            }
        );
        let l = n.decisions.limits(n.min_workers, n.max_workers);
        println!(
            "limits      scale-down cooldown {} s, window {} s, step up {}, idle after {}, worker start-up {} s",
            l.scale_down_cooldown_s,
            l.scale_down_window_s,
            l.max_step_up.map_or("unlimited".to_string(), |n| format!("≤ {n}")),
            l.idle_after_s.map_or("never".to_string(), |s| format!("{s} s")),
            n.decisions.worker_startup_wall_s(n.scaler)
        );
        if let Some(path) = &n.record {
            println!("record      {}", path.display());
        }
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

/// A framework's workers can be scaled only by what does not need them to speak the farm's
/// scale-down protocol; the farm's workers only ever take the farm's queue.
fn check_queue_and_scaler(args: &ServeArgs) -> anyhow::Result<()> {
    let command = args.node.scalers.worker_command()?;
    let (scaler, queue) = (args.node.scaler, &args.queue);
    if command.is_some() && scaler != ScalerKind::Local {
        anyhow::bail!("--worker-command starts local processes: it needs --scaler local");
    }
    if queue.is_farm() {
        return Ok(());
    }
    match scaler {
        ScalerKind::Local if command.is_none() => anyhow::bail!(
            "--queue {queue}: the farm's own workers take only the farm's queue; add --worker-command to start the framework's workers (e.g. --worker-command 'rq worker -u \"$REDIS_URL\" default')"
        ),
        ScalerKind::Openfaas | ScalerKind::Kubernetes => anyhow::bail!(
            "--queue {queue} with --scaler {}: a framework's workers do not answer the farm's scale-down requests, so this scaler could never remove one; use --scaler keda (KEDA scales the framework's Deployment to the node's target) or --scaler local --worker-command",
            format!("{scaler:?}").to_lowercase()
        ),
        _ => Ok(()),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Before the address is printed: whoever reads it may signal at once.
    let mut signals = Signals::install();
    if args.node.scaler != ScalerKind::None {
        crate::train::single_threaded_tensors();
    }
    // Load the policy before binding anything, so a bad model file fails fast.
    let (policy, period) = match args.node.scaler {
        ScalerKind::None => (
            None,
            autoscale_node::decision_period(args.node.decision_period_s, None)?,
        ),
        _ => {
            let spec = args.policy();
            if spec != args.node.policy {
                tracing::warn!(queue = %args.queue, policy = %spec, "the bundled models were trained on the farm's deadline-bound tasks; on a framework's queue the node scales by queue length (set --policy to choose another rule)");
            }
            autoscale_node::node_policy(&spec, args.node.decision_period_s, None)?
        }
    };
    match (args.node.scaler, args.keda_port) {
        (ScalerKind::Keda, None) => anyhow::bail!(
            "--scaler keda: KEDA applies the node's target, which it reads from the external scaler; add --keda-port"
        ),
        (kind, Some(_)) if kind != ScalerKind::Keda => anyhow::bail!(
            "--keda-port: KEDA applies the node's target only with --scaler keda (with another scaler the two would fight over the workers)"
        ),
        _ => {}
    }
    let password = args.access.password()?;
    args.access
        .warn_about_exposure(password.as_deref(), &[&args.bind, &args.http_bind]);
    let maxclients = client_limit(args.maxclients as usize);
    let addr = format!("{}:{}", args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let http_addr = format!("{}:{}", args.http_bind, args.http_port);
    let http_listener = tokio::net::TcpListener::bind(&http_addr).await.with_context(|| {
        format!("binding the HTTP endpoint {http_addr} (choose another with --http-port)")
    })?;
    let http_local = http_listener.local_addr()?;
    let keda_listener = match args.keda_port {
        Some(port) => {
            let addr = format!("{}:{port}", args.keda_bind);
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("binding the KEDA external scaler {addr}"))?;
            Some(listener)
        }
        None => None,
    };
    let broker = Broker::new(args.broker_config(password.clone(), maxclients));
    // Before the address is printed: clients find the data there once they can connect.
    broker.open_log().context("opening the append-only file")?;
    let announce = Announce {
        local,
        http_local,
        keda: keda_listener.as_ref().map(|l| l.local_addr()).transpose()?,
    };
    tracing::info!("dashboard at http://{http_local}/");

    let stats = Arc::new(NodeStats::default());
    let stop = CancellationToken::new();
    let endpoint = Endpoint {
        stats: stats.clone(),
        broker: Some(broker.clone()),
        access: Access {
            password: password.clone(),
            protected_mode: args.access.protected_mode,
        },
    };
    tokio::spawn(functions::http::serve(
        http_listener,
        endpoint.router(),
        stop.clone(),
    ));
    tokio::spawn(release_memory_periodically(stop.clone()));
    if let Some(listener) = keda_listener {
        let (stats, stop) = (stats.clone(), stop.clone());
        tokio::spawn(async move {
            if let Err(e) = autoscale_node::keda::serve(listener, stats, stop).await {
                tracing::error!(error = %format!("{e:#}"), "the KEDA external scaler stopped");
            }
        });
    }
    let broker_stop = stop.clone();
    let broker_task = tokio::spawn(broker.clone().serve(listener, broker_stop.cancelled_owned()));

    if args.node.scaler == ScalerKind::None {
        if args.node.policy != agent::spec::PolicySpec::Bundled || args.node.workers.is_some() {
            tracing::warn!(
                policy = %args.node.policy,
                "no --scaler: this node is a plain broker and will not start or scale workers, so --policy and --workers have no effect (add --scaler local, openfaas or kubernetes)"
            );
        }
        stats.update(|s| {
            s.ready = true;
            s.scaler = "none".into();
        });
        announce.print(args.node.scaler);
        stop_requested(&broker, &mut signals).await;
    } else {
        let result = control_loop(
            &args,
            password.as_deref(),
            &broker,
            &mut signals,
            (policy, period),
            stats.clone(),
            &announce,
        )
        .await;
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
    password: Option<&str>,
    broker: &Broker,
    signals: &mut Signals,
    (policy, period): (Option<Box<dyn agent::policy::Policy>>, f64),
    stats: Arc<NodeStats>,
    announce: &Announce,
) -> anyhow::Result<()> {
    let local = announce.local;
    let host = if local.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        local.ip().to_string()
    };
    let pass = password.map(|p| format!(":{p}@")).unwrap_or_default();
    let url = format!("redis://{pass}{host}:{}/", local.port());
    let client = redis::Client::open(url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    // One clock for the whole farm: task timestamps are relative to `program_start_time`, so
    // the workers this node starts and a `run` that feeds it later must agree on it.
    let program_start =
        functions::protocol::agree_program_start(&mut conn, functions::runtime::unix_now()).await?;
    let scaler = scaler::build(args.node.scaler, &args.node.scalers, &url, program_start).await?;
    let initial = args.node.workers.unwrap_or(args.node.min_workers);
    // A framework's queue has no job plan to read.
    let read_plans = !args.node.no_calendar && args.queue.is_farm();
    let plan_policy = if !read_plans {
        None
    } else {
        plan_policy(&args.node.policy, args.node.decision_period_s)
    };
    let mut node = Node::new(
        policy,
        scaler,
        Box::new(EmbeddedReader::new(broker.clone(), program_start).with_queue(args.queue.clone())),
        conn,
        args.node.node_config(period),
        initial,
        stats,
    )
    .await?;
    // The controller's connection is named now: a `run` that reads the address and connects
    // at once finds the node and lets it scale (before, it could take the farm for its own).
    announce.print(args.node.scaler);
    if read_plans {
        node.read_plans(plan_policy);
    }
    let queues = functions::Queues::default();
    // Pushes wake the loop early on lists; streams and delayed sets are read each period.
    let woken_by = match &args.queue {
        QueueSelector::Farm => vec![queues.worker.as_str()],
        selected => selected.list_keys(),
    };
    if !woken_by.is_empty() {
        let wake = Arc::new(QueueWake::on(&woken_by));
        broker.queues().add_hook(wake.clone());
        node.set_wake(wake);
    }
    if let Some(path) = &args.node.record {
        let (recorder, hook) = ArrivalRecorder::create(path, &queues.worker)
            .with_context(|| format!("creating the recording {}", path.display()))?;
        broker.queues().add_hook(hook);
        node.set_recorder(recorder, program_start);
        tracing::info!(path = %path.display(), "recording arrivals");
    }
    node.start().await?;
    tracing::info!(
        policy = node.policy_name(),
        workers = initial,
        "control loop started"
    );
    let shutdown = stop_requested(broker, signals);
    tokio::pin!(shutdown);
    let by_command = loop {
        tokio::select! {
            _ = tokio::time::sleep(node.next_tick_in()) => {}
            _ = node.woken() => node.request_decision(),
            by_command = &mut shutdown => break by_command,
        }
        node.tick_or_log().await;
    };
    match node.shutdown().await {
        // SHUTDOWN stopped the broker first: the workers cannot be told through it (local
        // ones exit with the node).
        Err(e) if by_command => {
            tracing::warn!(error = %e, "workers not stopped through the broker, which a SHUTDOWN stopped");
            Ok(())
        }
        other => Ok(other?),
    }
}

/// The policy for when the job's plan is known, if it is another one than `spec` without a
/// plan: `bundled` is then the calendar model (trained with the plan's outlook among its
/// inputs). A calendar model that cannot run at the asked period is left out, with a warning.
fn plan_policy(spec: &agent::spec::PolicySpec, asked: Option<f64>) -> Option<PeriodicPolicy> {
    if *spec != agent::spec::PolicySpec::Bundled {
        return None;
    }
    // The node reads a plan's rates, not a workload file: the model needs only to know that
    // there is one.
    let workload = workload::WorkloadConfig::default();
    match autoscale_node::node_policy(spec, asked, Some(&workload)) {
        Ok((Some(policy), period_s)) => Some(PeriodicPolicy { policy, period_s }),
        Ok((None, _)) => None,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "the calendar model is not used; the metrics-only model decides with or without a plan");
            None
        }
    }
}

/// Gives freed memory back to the system once a second (see `autoscale_node::allocator`).
/// With the default single-threaded runtime this runs on the broker's own thread, where the
/// keyspace's memory is freed.
pub async fn release_memory_periodically(stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => autoscale_node::allocator::release_free_memory(),
            _ = stop.cancelled() => return,
        }
    }
}

/// The bound addresses, printed on stdout (so scripts and tests that pass port 0 can find
/// them) once the node is ready for clients: the broker serves and, with a scaler, the control
/// loop is connected.
struct Announce {
    local: std::net::SocketAddr,
    http_local: std::net::SocketAddr,
    keda: Option<std::net::SocketAddr>,
}

impl Announce {
    fn print(&self, scaler: ScalerKind) {
        println!("autoscale-node listening on {}", self.local);
        println!("autoscale-node http on {}", self.http_local);
        if let Some(keda) = self.keda {
            println!("autoscale-node keda on {keda}");
        }
        std::io::stdout().flush().ok();
        tracing::info!(local = %self.local, http_local = %self.http_local, ?scaler, "broker ready to accept connections");
    }
}

/// Completes on Ctrl-C, SIGTERM, or a client's SHUTDOWN (then true: the broker has stopped).
async fn stop_requested(broker: &Broker, signals: &mut Signals) -> bool {
    tokio::select! {
        _ = signals.recv() => false,
        _ = broker.stopped() => {
            tracing::info!("SHUTDOWN received, stopping");
            true
        }
    }
}

/// Raises the open-file limit to fit `requested` clients (as Redis does at start) and returns
/// the `maxclients` the limit allows, warning when it had to be lowered.
pub fn client_limit(requested: usize) -> usize {
    let wanted = requested as u64 + broker::state::RESERVED_FDS;
    let limit = rlimit::increase_nofile_limit(wanted)
        .ok()
        .or_else(broker::state::open_file_limit);
    match limit {
        Some(limit) => {
            let allowed = broker::state::fd_limited_maxclients(requested, limit);
            if allowed < requested {
                tracing::warn!(
                    requested,
                    allowed,
                    open_file_limit = limit,
                    "maxclients lowered to fit the open-file limit; raise `ulimit -n` for more clients"
                );
            }
            allowed
        }
        None => requested,
    }
}

/// Ctrl-C and SIGTERM, listened to from the moment [`Signals::install`] runs: a signal that
/// arrives before anyone awaits it is kept, not lost (and does not kill the process with the
/// default action, which a signal arriving before the handler existed used to do).
pub struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers now (call it before announcing readiness). Needs a runtime.
    pub fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Completes at the first Ctrl-C or SIGTERM since [`Signals::install`].
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.interrupt) => tracing::info!("interrupt received, shutting down"),
                _ = next(&mut self.terminate) => tracing::info!("SIGTERM received, shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("interrupt received, shutting down");
        }
    }
}
