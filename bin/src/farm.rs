//! `autoscale-node emitter|worker|collector`: one farm function as a process.

use crate::limits;
use clap::Args;
use functions::FunctionConfig;
use tokio_util::sync::CancellationToken;
use workload::WorkloadConfig;

/// Connection and identity flags shared by the three functions.
#[derive(Args, Debug, Clone)]
pub struct FunctionArgs {
    /// Broker URL, `redis://[:password@]host:port/db`. Without it, REDIS_HOSTNAME, REDIS_PORT
    /// and REDIS_PASSWORD are used as the original did, defaulting to 127.0.0.1:6379.
    #[arg(long = "redis", env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Instance id; the connection is named `<role>:<id>`. `auto` takes the host name (the
    /// pod's name in Kubernetes), for replicas that share one spec.
    #[arg(long, env = "AUTOSCALE_ID", default_value = "1")]
    pub id: String,
    /// Unix time (s) the run started. Default: the broker key `program_start_time`, set by
    /// the first function to start.
    #[arg(long, env = "AUTOSCALE_PROGRAM_START_TIME")]
    pub program_start_time: Option<f64>,
    /// On SIGTERM, finish the current task within this many seconds, else hand it back.
    #[arg(long, env = "AUTOSCALE_GRACE_PERIOD_S", default_value_t = 25.0)]
    pub grace_period_s: f64,
    /// Seconds a blocking wait lasts before control queues are checked again.
    #[arg(long, env = "AUTOSCALE_POLL_INTERVAL_S", default_value_t = 1.0)]
    pub poll_interval_s: f64,
    /// Stop (as on SIGTERM) when this process's parent is no longer PID: set by a node (its
    /// own pid) for the functions it starts, so none outlives a node that was killed — even
    /// one killed before the function got to look at its parent.
    #[arg(long, hide = true, value_name = "PID")]
    pub parent_pid: Option<u32>,
    /// Also serve HTTP for the OpenFaaS of-watchdog (`mode: http`) on this address, e.g.
    /// `127.0.0.1:8082`: `GET /_/health` and `POST /` (the original's invocation).
    #[arg(long, env = "AUTOSCALE_HTTP")]
    pub http: Option<String>,
    /// Keep this file present exactly while the function is connected to the broker, for a
    /// Kubernetes `exec` readiness probe (`test -f PATH`): the of-watchdog answers its own
    /// health path and never asks the function.
    #[arg(long, env = "AUTOSCALE_READY_FILE")]
    pub ready_file: Option<std::path::PathBuf>,
}

/// What a worker does after acknowledging a scale-down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnScaleDown {
    /// Exit (a local process, an OpenFaaS instance about to be deleted).
    Exit,
    /// Stay idle until SIGTERM: a Kubernetes pod must not exit, or its container restarts;
    /// the node deletes the pod instead.
    Wait,
}

#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub common: FunctionArgs,
    #[arg(long, env = "AUTOSCALE_ON_SCALE_DOWN", value_enum, default_value_t = OnScaleDown::Exit)]
    pub on_scale_down: OnScaleDown,
}

#[derive(Args, Debug, Clone)]
pub struct EmitterArgs {
    #[command(flatten)]
    pub common: FunctionArgs,
    /// Multiply every duration (gaps, processing times, deadlines, phase lengths) by this,
    /// 0.01 to 100.
    #[arg(long, env = "AUTOSCALE_TIME_SCALE", default_value_t = 1.0)]
    pub time_scale: f64,
}

impl FunctionArgs {
    /// Refuses values the functions cannot honour: a NaN poll interval, say, would turn every
    /// blocking wait into a broker error, retried for ever.
    pub fn check(&self) -> anyhow::Result<()> {
        limits::check(
            "--poll-interval-s",
            self.poll_interval_s,
            &limits::POLL_INTERVAL_S,
        )?;
        limits::check("--grace-period-s", self.grace_period_s, &limits::GRACE_PERIOD_S)?;
        if let Some(t) = self.program_start_time {
            if !(t.is_finite() && t >= 0.0) {
                anyhow::bail!("--program-start-time must be a Unix time in seconds, got {t}");
            }
        }
        Ok(())
    }

    pub fn config(&self) -> FunctionConfig {
        let url = self.redis_url.clone().unwrap_or_else(|| {
            let host = std::env::var("REDIS_HOSTNAME").unwrap_or_else(|_| "127.0.0.1".into());
            let port = std::env::var("REDIS_PORT").unwrap_or_else(|_| "6379".into());
            match std::env::var("REDIS_PASSWORD") {
                Ok(p) if !p.is_empty() => format!("redis://:{p}@{host}:{port}/"),
                _ => format!("redis://{host}:{port}/"),
            }
        });
        let instance_id = if self.id == "auto" {
            std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| format!("{}", std::process::id()))
        } else {
            self.id.clone()
        };
        FunctionConfig {
            redis_url: url,
            instance_id,
            program_start_time: self.program_start_time,
            grace_period_s: self.grace_period_s.max(0.0),
            poll_interval_s: self.poll_interval_s.clamp(0.01, 60.0),
            ..FunctionConfig::default()
        }
    }
}

/// Which function to run.
pub enum Role {
    Emitter(EmitterArgs),
    Worker(WorkerArgs),
    Collector(FunctionArgs),
}

/// Binds the optional OpenFaaS endpoint and starts the optional ready file, both fed by the
/// connection state recorded in `config`. Cancelling the returned token (the function loop
/// ended) takes the ready file away; await the handle to be sure it is gone.
async fn start_http(
    args: &FunctionArgs,
    role: &str,
    config: &mut FunctionConfig,
    cancel: &CancellationToken,
) -> anyhow::Result<(CancellationToken, Option<tokio::task::JoinHandle<()>>)> {
    let done = CancellationToken::new();
    if args.http.is_none() && args.ready_file.is_none() {
        return Ok((done, None));
    }
    let state = functions::http::HealthState::new(role);
    config.health = Some(state.clone());
    if let Some(addr) = &args.http {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding the HTTP endpoint {addr}: {e}"))?;
        tracing::info!(addr = %listener.local_addr()?, "OpenFaaS endpoint ready");
        tokio::spawn(functions::http::serve_http(
            listener,
            state.clone(),
            cancel.clone(),
        ));
    }
    let mirror = args
        .ready_file
        .clone()
        .map(|path| tokio::spawn(mirror_ready(path, state, done.clone())));
    Ok((done, mirror))
}

/// Keeps `path` present while the function is connected and its loop runs.
async fn mirror_ready(
    path: std::path::PathBuf,
    state: std::sync::Arc<functions::http::HealthState>,
    done: CancellationToken,
) {
    let (mut shown, mut warned) = (false, false);
    loop {
        let up = !done.is_cancelled() && state.connected.load(std::sync::atomic::Ordering::Relaxed);
        if up != shown {
            let r = if up {
                std::fs::write(&path, b"connected\n")
            } else {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    r => r,
                }
            };
            match r {
                Ok(()) => (shown, warned) = (up, false),
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(path = %path.display(), error = %e, "updating the ready file failed; retrying");
                }
                Err(_) => {}
            }
        }
        if done.is_cancelled() && !shown {
            return;
        }
        tokio::select! {
            _ = done.cancelled(), if !done.is_cancelled() => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
    }
}

/// Ends what [`start_http`] started for the ready file.
async fn stop_ready(ready: (CancellationToken, Option<tokio::task::JoinHandle<()>>)) {
    ready.0.cancel();
    if let Some(h) = ready.1 {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), h).await;
    }
}

/// A stop requested (SIGTERM, parent gone) before the broker was ever reached is a clean exit.
fn stopped_ok<T>(r: Result<T, functions::FunctionError>) -> anyhow::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(functions::FunctionError::Cancelled) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Cancels when this process is re-parented (its parent exited, however it died).
async fn watch_parent(parent: u32, cancel: CancellationToken) {
    #[cfg(unix)]
    loop {
        if std::os::unix::process::parent_id() != parent {
            tracing::warn!(parent, "the node that started this function is gone; stopping");
            cancel.cancel();
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    #[cfg(not(unix))]
    let _ = (parent, cancel);
}

pub fn run(role: Role) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let cancel = CancellationToken::new();
        let signal = cancel.clone();
        let mut signals = crate::serve::Signals::install();
        tokio::spawn(async move {
            signals.recv().await;
            signal.cancel();
        });
        let common = match &role {
            Role::Emitter(a) => &a.common,
            Role::Worker(a) => &a.common,
            Role::Collector(a) => a,
        };
        common.check()?;
        if let Some(parent) = common.parent_pid {
            tokio::spawn(watch_parent(parent, cancel.clone()));
        }
        match role {
            Role::Emitter(args) => {
                limits::check("--time-scale", args.time_scale, &limits::TIME_SCALE)?;
                let mut config = args.common.config();
                let ready = start_http(&args.common, "emitter", &mut config, &cancel).await?;
                let workload = WorkloadConfig {
                    time_scale: args.time_scale,
                    ..WorkloadConfig::default()
                };
                let r = functions::emitter::run_emitter(config, workload, cancel).await;
                stop_ready(ready).await;
                stopped_ok(r)?;
            }
            Role::Worker(args) => {
                let mut config = args.common.config();
                let ready = start_http(&args.common, "worker", &mut config, &cancel).await?;
                let r = functions::worker::run_worker(config, cancel.clone()).await;
                // A worker that stopped taking tasks (scaled down, waiting for deletion) is no
                // longer ready, whatever its connection.
                stop_ready(ready).await;
                let exit = stopped_ok(r)?;
                tracing::info!(?exit, "worker stopped");
                if exit == Some(functions::worker::WorkerExit::ScaledDown)
                    && args.on_scale_down == OnScaleDown::Wait
                {
                    tracing::info!("scaled down; idle until the pod is deleted");
                    cancel.cancelled().await;
                }
            }
            Role::Collector(args) => {
                let mut config = args.config();
                let ready = start_http(&args, "collector", &mut config, &cancel).await?;
                let r = functions::collector::run_collector(config, cancel).await;
                stop_ready(ready).await;
                stopped_ok(r)?;
            }
        }
        Ok(())
    })
}
