//! `autoscale-node emitter|worker|collector`: one farm function as a process.

use clap::Args;
use functions::workload::WorkloadConfig;
use functions::FunctionConfig;
use tokio_util::sync::CancellationToken;

/// Connection and identity flags shared by the three functions.
#[derive(Args, Debug, Clone)]
pub struct FunctionArgs {
    /// Broker URL, `redis://[:password@]host:port/db`. Without it, REDIS_HOSTNAME, REDIS_PORT
    /// and REDIS_PASSWORD are used as the original did, defaulting to 127.0.0.1:6379.
    #[arg(long = "redis", env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Instance id; the connection is named `<role>:<id>`.
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
    /// Also serve HTTP for the OpenFaaS of-watchdog (`mode: http`) on this address, e.g.
    /// `127.0.0.1:8082`: `GET /_/health` and `POST /` (the original's invocation).
    #[arg(long, env = "AUTOSCALE_HTTP")]
    pub http: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct EmitterArgs {
    #[command(flatten)]
    pub common: FunctionArgs,
    /// Multiply every duration (gaps, processing times, deadlines, phase lengths) by this.
    #[arg(long, env = "AUTOSCALE_TIME_SCALE", default_value_t = 1.0)]
    pub time_scale: f64,
}

impl FunctionArgs {
    pub fn config(&self) -> FunctionConfig {
        let url = self.redis_url.clone().unwrap_or_else(|| {
            let host = std::env::var("REDIS_HOSTNAME").unwrap_or_else(|_| "127.0.0.1".into());
            let port = std::env::var("REDIS_PORT").unwrap_or_else(|_| "6379".into());
            match std::env::var("REDIS_PASSWORD") {
                Ok(p) if !p.is_empty() => format!("redis://:{p}@{host}:{port}/"),
                _ => format!("redis://{host}:{port}/"),
            }
        });
        FunctionConfig {
            redis_url: url,
            instance_id: self.id.clone(),
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
    Worker(FunctionArgs),
    Collector(FunctionArgs),
}

/// Binds the optional OpenFaaS endpoint and records its state in `config`.
async fn start_http(
    args: &FunctionArgs,
    role: &str,
    config: &mut FunctionConfig,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let Some(addr) = &args.http else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the HTTP endpoint {addr}: {e}"))?;
    let state = functions::http::HealthState::new(role);
    config.health = Some(state.clone());
    tracing::info!(addr = %listener.local_addr()?, "OpenFaaS endpoint ready");
    tokio::spawn(functions::http::serve_http(listener, state, cancel.clone()));
    Ok(())
}

pub fn run(role: Role) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let cancel = CancellationToken::new();
        let signal = cancel.clone();
        tokio::spawn(async move {
            crate::serve::shutdown_signal().await;
            signal.cancel();
        });
        match role {
            Role::Emitter(args) => {
                if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
                    anyhow::bail!("--time-scale must be a positive number, got {}", args.time_scale);
                }
                let mut config = args.common.config();
                start_http(&args.common, "emitter", &mut config, &cancel).await?;
                let workload = WorkloadConfig {
                    time_scale: args.time_scale,
                    ..WorkloadConfig::default()
                };
                functions::emitter::run_emitter(config, workload, cancel).await?;
            }
            Role::Worker(args) => {
                let mut config = args.config();
                start_http(&args, "worker", &mut config, &cancel).await?;
                let exit = functions::worker::run_worker(config, cancel).await?;
                tracing::info!(?exit, "worker stopped");
            }
            Role::Collector(args) => {
                let mut config = args.config();
                start_http(&args, "collector", &mut config, &cancel).await?;
                functions::collector::run_collector(config, cancel).await?;
            }
        }
        Ok(())
    })
}
