//! Scalers: what turns "run N workers" into workers.
//!
//! Every scaler speaks the farm's scale-down protocol (docs/protocol.md): a `SCALE_DOWN` SYN is
//! pushed to `worker_control_syn_queue`, the first idle worker takes it and answers with an ACK
//! naming itself, and the scaler removes exactly that worker. A SYN nobody has taken yet is
//! withdrawn (LREM) when the target goes up again, so no worker is started only to replace
//! one that is about to leave.

pub mod keda;
pub mod kubernetes;
pub mod local;
pub mod openfaas;
pub mod remote;
pub mod signal;

use functions::protocol::{AckMsg, ControlMsg, Queues, WorkerId};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

/// A boxed future borrowed from the scaler (object-safe async methods).
pub type ScalerFuture<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + 'a>>;

/// How many workers a scaler has, by state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerCounts {
    /// Workers ready to take tasks (running process, available replica, ready pod).
    pub live: u32,
    /// Requested but not ready yet.
    pub starting: u32,
    /// Acknowledged a scale-down and on their way out.
    pub leaving: u32,
    /// Scale-down requests no worker has taken yet.
    pub pending_scale_down: u32,
    /// Set while the platform cannot run what the node asked for: the node then reports the
    /// limit instead of waiting for workers that will never come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped: Option<Capped>,
}

/// A target the platform cannot meet, and what runs instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Capped {
    /// The target the node asked for.
    pub requested: u32,
    /// The workers the scaler runs instead.
    pub running: u32,
    /// Why, worded for the operator (e.g. "capped by OpenFaaS CE: at most 5 replicas").
    pub reason: String,
}

impl WorkerCounts {
    /// The workers that will exist once pending changes settle: what a target is compared to.
    pub fn effective(&self) -> u32 {
        (self.live + self.starting).saturating_sub(self.pending_scale_down)
    }
}

/// A worker the scaler saw leave without being asked: its tasks must go back to the queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Vanished {
    pub id: WorkerId,
    pub reason: String,
}

/// Turns a target into workers. Methods are called from one control loop, never concurrently.
pub trait Scaler {
    /// `none`, `local`, `openfaas`, `kubernetes` or `node` (a remote node's scaler).
    fn kind(&self) -> &'static str;
    fn counts(&self) -> WorkerCounts;
    /// Brings the scaler's view up to date: reads scale-down ACKs, reaps or lists workers.
    /// Returns workers that disappeared without being asked to.
    fn reconcile<'a>(&'a mut self, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, Vec<Vanished>>;
    /// Starts or gracefully stops workers so that `counts().effective()` becomes `target`.
    fn scale_to<'a>(&'a mut self, target: u32, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()>;
    /// Stops every worker the scaler started (the node is stopping).
    fn shutdown<'a>(&'a mut self, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()>;
    /// How many `worker:*` clients are connected to the broker right now (scalers that cannot
    /// see their workers otherwise use it).
    fn observe_connected(&mut self, _workers: u32) {}
    /// Starts the emitter or the collector (`role`) on the platform, for `run`. `Ok(false)`:
    /// this scaler has no such notion, and `run` starts a local process instead.
    fn start_role<'a>(&'a mut self, _role: &'a str, _env: &'a [(String, String)]) -> ScalerFuture<'a, bool> {
        Box::pin(async { Ok(false) })
    }
    /// Stops what `start_role` started.
    fn stop_role<'a>(&'a mut self, _role: &'a str) -> ScalerFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// The scale-down half of the control protocol, shared by every scaler.
#[derive(Debug, Default)]
pub struct ScaleDown {
    /// SYNs pushed and neither taken nor withdrawn.
    pub pending: u32,
    queues: Queues,
}

impl ScaleDown {
    /// Asks `n` workers to leave.
    pub async fn request(&mut self, conn: &mut MultiplexedConnection, n: u32) -> anyhow::Result<()> {
        let syn = ControlMsg::scale_down().to_json();
        for _ in 0..n {
            let _: () = conn.lpush(&self.queues.worker_control_syn, &syn).await?;
            self.pending += 1;
        }
        Ok(())
    }

    /// Moves from `current` effective workers toward `target`: going down asks workers to
    /// leave; going up first withdraws scale-downs not taken yet. Returns how many workers the
    /// caller must start.
    pub async fn toward(
        &mut self,
        conn: &mut MultiplexedConnection,
        current: u32,
        target: u32,
    ) -> anyhow::Result<u32> {
        if target < current {
            self.request(conn, current - target).await?;
            return Ok(0);
        }
        let add = target - current;
        Ok(add - self.withdraw(conn, add).await?)
    }

    /// Withdraws up to `n` requests no worker has taken yet (the SYN's bytes never change, so
    /// LREM finds them); returns how many were withdrawn.
    pub async fn withdraw(&mut self, conn: &mut MultiplexedConnection, n: u32) -> anyhow::Result<u32> {
        let syn = ControlMsg::scale_down().to_json();
        let mut withdrawn = 0;
        while withdrawn < n && self.pending > 0 {
            let removed: i64 = conn.lrem(&self.queues.worker_control_syn, 1, &syn).await?;
            if removed == 0 {
                break;
            }
            self.pending -= 1;
            withdrawn += 1;
        }
        Ok(withdrawn)
    }

    /// The workers that acknowledged since last time.
    pub async fn acknowledged(&mut self, conn: &mut MultiplexedConnection) -> anyhow::Result<Vec<WorkerId>> {
        let mut workers = Vec::new();
        loop {
            let ack: Option<String> = conn.rpop(&self.queues.worker_control_ack, None).await?;
            let Some(ack) = ack else { break };
            match serde_json::from_str::<AckMsg>(&ack) {
                Ok(ack) => {
                    self.pending = self.pending.saturating_sub(1);
                    workers.push(ack.worker());
                }
                Err(e) => tracing::warn!(%ack, error = %e, "ignoring a malformed scale-down ACK"),
            }
        }
        Ok(workers)
    }
}

/// The `none` scaler: records the target and starts nothing (advisory mode, or workers managed
/// elsewhere, e.g. by KEDA). Live workers are the connected `worker:*` clients the node sees.
#[derive(Debug, Default)]
pub struct NoScaler {
    pub observed_live: u32,
}

impl Scaler for NoScaler {
    fn kind(&self) -> &'static str {
        "none"
    }

    fn counts(&self) -> WorkerCounts {
        WorkerCounts {
            live: self.observed_live,
            ..WorkerCounts::default()
        }
    }

    fn reconcile<'a>(&'a mut self, _conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, Vec<Vanished>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn scale_to<'a>(
        &'a mut self,
        _target: u32,
        _conn: &'a mut MultiplexedConnection,
    ) -> ScalerFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn shutdown<'a>(&'a mut self, _conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn observe_connected(&mut self, workers: u32) {
        self.observed_live = workers;
    }
}

/// Which scaler a node uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScalerKind {
    None,
    Local,
    Openfaas,
    Kubernetes,
    /// The node decides, KEDA applies: serve the external scaler with `--keda-port`.
    Keda,
}

/// Flags of the remote scalers (shared by `serve` and `run`).
#[derive(clap::Args, Debug, Clone)]
pub struct ScalerArgs {
    /// OpenFaaS gateway URL.
    #[arg(long, env = "OPENFAAS_URL", default_value = "http://127.0.0.1:8080")]
    pub openfaas_url: String,
    /// Gateway basic-auth user.
    #[arg(long, env = "OPENFAAS_USER", default_value = "admin")]
    pub openfaas_user: String,
    /// Gateway basic-auth password (the `basic-auth` secret's value).
    #[arg(long, env = "OPENFAAS_PASSWORD", hide_env_values = true)]
    pub openfaas_password: Option<String>,
    /// File holding the password, e.g. the mounted secret `/var/secrets/basic-auth-password`.
    #[arg(long, env = "OPENFAAS_PASSWORD_FILE")]
    pub openfaas_password_file: Option<std::path::PathBuf>,
    /// Which OpenFaaS the gateway runs: `ce` (Community Edition: 1..5 replicas a function, 15
    /// functions), `pro` (no such limits) or `auto` (the gateway's /system/info, CE limits
    /// when it does not say).
    #[arg(long, env = "OPENFAAS_EDITION", value_enum, default_value_t = openfaas::EditionArg::Auto)]
    pub openfaas_edition: openfaas::EditionArg,
    /// `instances`: one function per worker (worker-1..N); `replicas`: one function scaled.
    #[arg(long, env = "OPENFAAS_MODE", value_enum, default_value_t = openfaas::Mode::Instances)]
    pub openfaas_mode: openfaas::Mode,
    /// Worker function name (prefix in `instances` mode).
    #[arg(long, env = "OPENFAAS_FUNCTION", default_value = "worker")]
    pub openfaas_function: String,
    /// Image of the worker functions (this binary's image). OpenFaaS CE only runs images it can
    /// pull anonymously: push it to a public registry and name it here.
    #[arg(long, env = "OPENFAAS_IMAGE", default_value = "autoscale-node:latest")]
    pub openfaas_image: String,
    /// Namespace for functions (default: the gateway's, usually openfaas-fn).
    #[arg(long, env = "OPENFAAS_NAMESPACE")]
    pub openfaas_namespace: Option<String>,
    /// Namespace of the worker Deployment (default: in-cluster namespace or kubeconfig's).
    #[arg(long, env = "AUTOSCALE_K8S_NAMESPACE")]
    pub k8s_namespace: Option<String>,
    /// Name of the worker Deployment.
    #[arg(long, env = "AUTOSCALE_K8S_DEPLOYMENT", default_value = "autoscale-worker")]
    pub k8s_deployment: String,
    /// Label selector of the worker pods.
    #[arg(long, env = "AUTOSCALE_K8S_SELECTOR", default_value = "app=autoscale-worker")]
    pub k8s_selector: String,
    /// The broker URL as remote workers reach it (default: the node's own address), e.g.
    /// `redis://autoscale-node.farm.svc:6379/`.
    #[arg(long, env = "AUTOSCALE_WORKER_REDIS_URL")]
    pub worker_redis_url: Option<String>,
    /// `--scaler local`: start each worker with this command line (run by `sh -c`, with
    /// `REDIS_URL`, `AUTOSCALE_WORKER_ID` and `AUTOSCALE_WORKER_INDEX` set) instead of
    /// `autoscale-node worker`, e.g. `rq worker -u "$REDIS_URL" default`. Scaling down sends
    /// the newest one SIGTERM.
    #[arg(long, env = "AUTOSCALE_WORKER_COMMAND")]
    pub worker_command: Option<String>,
    /// Seconds a `--worker-command` worker may take to exit after SIGTERM (finishing its
    /// job) before it is killed.
    #[arg(long, env = "AUTOSCALE_WORKER_STOP_GRACE_S", default_value_t = 30.0)]
    pub worker_stop_grace_s: f64,
}

impl ScalerArgs {
    /// The command workers run, if `--worker-command` is set (with a usable grace period).
    pub fn worker_command(&self) -> anyhow::Result<Option<local::WorkerCommand>> {
        let Some(line) = &self.worker_command else {
            return Ok(None);
        };
        if line.trim().is_empty() {
            anyhow::bail!("--worker-command is empty");
        }
        let grace = self.worker_stop_grace_s;
        if !(grace.is_finite() && (0.0..=86_400.0).contains(&grace)) {
            anyhow::bail!("--worker-stop-grace-s {grace}: expected 0 to 86400 seconds");
        }
        Ok(Some(local::WorkerCommand {
            line: line.clone(),
            stop_grace: std::time::Duration::from_secs_f64(grace),
        }))
    }
}

/// `worker_url` with the password of `node_url` when it names none itself: the workers a node
/// starts authenticate as the node does unless told otherwise.
fn with_password_of(worker_url: &str, node_url: &str) -> anyhow::Result<String> {
    let mut worker = reqwest::Url::parse(worker_url)
        .map_err(|e| anyhow::anyhow!("--worker-redis-url {worker_url:?} is not a URL: {e}"))?;
    let node_password = reqwest::Url::parse(node_url)
        .ok()
        .and_then(|u| u.password().map(str::to_string));
    if worker.password().is_none() {
        if let Some(p) = node_password {
            worker
                .set_password(Some(&p))
                .map_err(|()| anyhow::anyhow!("--worker-redis-url {worker_url:?} cannot carry a password"))?;
        }
    }
    Ok(worker.to_string())
}

/// Builds the scaler for `kind`. `redis_url` is the broker the node itself uses.
pub async fn build(
    kind: ScalerKind,
    args: &ScalerArgs,
    redis_url: &str,
    program_start: f64,
) -> anyhow::Result<Box<dyn Scaler>> {
    let worker_url = match &args.worker_redis_url {
        Some(url) => with_password_of(url, redis_url)?,
        None => redis_url.to_string(),
    };
    Ok(match kind {
        ScalerKind::None => Box::new(NoScaler::default()),
        ScalerKind::Local => {
            let exe = std::env::current_exe()
                .map_err(|e| anyhow::anyhow!("locating the autoscale-node executable: {e}"))?;
            let scaler = local::LocalScaler::new(exe, worker_url, program_start);
            match args.worker_command()? {
                Some(command) => Box::new(scaler.with_command(command)),
                None => Box::new(scaler),
            }
        }
        ScalerKind::Openfaas => {
            let password = match (&args.openfaas_password, &args.openfaas_password_file) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(f)) => Some(
                    std::fs::read_to_string(f)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?
                        .trim()
                        .to_string(),
                ),
                (None, None) => None,
            };
            openfaas::build(openfaas::OpenFaasConfig {
                url: args.openfaas_url.clone(),
                user: args.openfaas_user.clone(),
                password,
                mode: args.openfaas_mode,
                edition: args.openfaas_edition,
                function: args.openfaas_function.clone(),
                image: args.openfaas_image.clone(),
                namespace: args.openfaas_namespace.clone(),
                worker_redis_url: worker_url,
                program_start,
                attempts: 4,
                backoff: std::time::Duration::from_millis(200),
            })
            .await?
        }
        ScalerKind::Keda => Box::new(keda::KedaScaler::default()),
        ScalerKind::Kubernetes => Box::new(
            kubernetes::KubernetesScaler::new(kubernetes::KubernetesConfig {
                namespace: args.k8s_namespace.clone(),
                deployment: args.k8s_deployment.clone(),
                selector: args.k8s_selector.clone(),
            })
            .await?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_urls_inherit_the_node_password_unless_they_have_one() {
        let node = "redis://:s3cret@127.0.0.1:6379/";
        assert_eq!(
            with_password_of("redis://farm.svc:6379/", node).unwrap(),
            "redis://:s3cret@farm.svc:6379/"
        );
        assert_eq!(
            with_password_of("redis://:own@farm.svc:6379/", node).unwrap(),
            "redis://:own@farm.svc:6379/"
        );
        assert_eq!(
            with_password_of("redis://farm.svc:6379/", "redis://127.0.0.1:6379/").unwrap(),
            "redis://farm.svc:6379/"
        );
        assert!(with_password_of("not a url", node).is_err());
    }
}
