//! The `openfaas` scaler: workers are OpenFaaS functions, managed through the gateway's REST
//! API (basic auth; any 2xx is success; connection failures and 5xx are retried with backoff).
//!
//! Two modes. `instances` is the original's: one function per worker, `worker-1..N`, the lowest
//! free index reused; a function is deployed, invoked once asynchronously when its replica is
//! available (the original started its loops by invocation), and deleted when its worker
//! acknowledges a scale-down. `replicas` deploys one `worker` function and scales its replicas;
//! Kubernetes then chooses which replica to stop (SIGTERM: the worker finishes or hands back
//! its task), so scale-down is not SYN/ACK there.
//!
//! OpenFaaS Community Edition caps a function at 5 replicas and an installation at 15
//! functions: farms larger than that need the `kubernetes` scaler or OpenFaaS Pro.

use super::{ScaleDown, Scaler, ScalerFuture, Vanished, WorkerCounts};
use anyhow::Context;
use functions::protocol::{Invocation, WorkerId};
use redis::aio::MultiplexedConnection;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// One function per worker (`worker-1`, `worker-2`, ...), as the original.
    Instances,
    /// One function whose replicas are the workers.
    Replicas,
}

/// How to reach the gateway and what to deploy.
#[derive(Clone, Debug)]
pub struct OpenFaasConfig {
    /// Gateway URL, e.g. `http://gateway.openfaas:8080`.
    pub url: String,
    pub user: String,
    pub password: Option<String>,
    pub mode: Mode,
    /// Function name (`replicas`) or name prefix (`instances`: `<name>-<i>`).
    pub function: String,
    pub image: String,
    pub namespace: Option<String>,
    /// The broker's URL as the functions reach it.
    pub worker_redis_url: String,
    pub program_start: f64,
    /// Attempts per request for retryable failures.
    pub attempts: u32,
    pub backoff: Duration,
}

/// The gateway's `FunctionDeployment`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeployment {
    pub service: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub env_process: String,
    pub env_vars: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub limits: Resources,
    pub requests: Resources,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub memory: String,
    pub cpu: String,
}

/// The fields of the gateway's `FunctionStatus` we read.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStatus {
    pub name: String,
    #[serde(default)]
    pub replicas: u64,
    #[serde(default)]
    pub available_replicas: u64,
}

/// Errors from the gateway, worded for the person who has to fix them.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the OpenFaaS gateway at {0} refused the credentials (401): check --openfaas-user and OPENFAAS_PASSWORD (the basic-auth secret)")]
    Unauthorized(String),
    #[error("not found on the OpenFaaS gateway (404): {0}")]
    NotFound(String),
    #[error("the OpenFaaS gateway answered {status} to {what}: {body}")]
    Status { status: u16, what: String, body: String },
    #[error("cannot reach the OpenFaaS gateway for {what} after {attempts} attempts: {source}")]
    Unreachable {
        what: String,
        attempts: u32,
        source: reqwest::Error,
    },
}

/// A thin client of the gateway API.
#[derive(Clone, Debug)]
pub struct Gateway {
    http: reqwest::Client,
    cfg: OpenFaasConfig,
}

impl Gateway {
    pub fn new(cfg: OpenFaasConfig) -> anyhow::Result<Gateway> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Gateway { http, cfg })
    }

    fn ns_query(&self) -> String {
        self.cfg
            .namespace
            .as_deref()
            .map(|n| format!("?namespace={n}"))
            .unwrap_or_default()
    }

    /// Sends one request, retrying connection failures and 5xx; returns the 2xx body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<String, GatewayError> {
        let url = format!("{}{}", self.cfg.url.trim_end_matches('/'), path);
        let what = format!("{method} {path}");
        let mut delay = self.cfg.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .basic_auth(&self.cfg.user, self.cfg.password.as_deref());
            if let Some(b) = &body {
                req = req.json(b);
            }
            let retry = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(text);
                    }
                    match status {
                        StatusCode::UNAUTHORIZED => {
                            return Err(GatewayError::Unauthorized(self.cfg.url.clone()))
                        }
                        StatusCode::NOT_FOUND => return Err(GatewayError::NotFound(what)),
                        s if s.is_server_error() && attempt < self.cfg.attempts => None,
                        s => {
                            return Err(GatewayError::Status {
                                status: s.as_u16(),
                                what,
                                body: text.trim().chars().take(300).collect(),
                            })
                        }
                    }
                }
                Err(e) if attempt < self.cfg.attempts => Some(e),
                Err(source) => {
                    return Err(GatewayError::Unreachable {
                        what,
                        attempts: attempt,
                        source,
                    })
                }
            };
            tracing::debug!(%what, attempt, error = ?retry, "gateway call failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    pub async fn deploy(&self, f: &FunctionDeployment) -> Result<(), GatewayError> {
        self.call(
            Method::POST,
            "/system/functions",
            Some(serde_json::to_value(f).unwrap_or_default()),
        )
        .await
        .map(drop)
    }

    pub async fn update(&self, f: &FunctionDeployment) -> Result<(), GatewayError> {
        self.call(
            Method::PUT,
            "/system/functions",
            Some(serde_json::to_value(f).unwrap_or_default()),
        )
        .await
        .map(drop)
    }

    pub async fn delete(&self, name: &str) -> Result<(), GatewayError> {
        let mut body = serde_json::json!({ "functionName": name });
        if let Some(ns) = &self.cfg.namespace {
            body["namespace"] = ns.clone().into();
        }
        self.call(Method::DELETE, "/system/functions", Some(body))
            .await
            .map(drop)
    }

    pub async fn scale(&self, name: &str, replicas: u32) -> Result<(), GatewayError> {
        let mut body = serde_json::json!({ "serviceName": name, "replicas": replicas });
        if let Some(ns) = &self.cfg.namespace {
            body["namespace"] = ns.clone().into();
        }
        let path = format!("/system/scale-function/{name}{}", self.ns_query());
        self.call(Method::POST, &path, Some(body)).await.map(drop)
    }

    /// The function's status; `None` if it does not exist.
    pub async fn status(&self, name: &str) -> Result<Option<FunctionStatus>, GatewayError> {
        let path = format!("/system/function/{name}{}", self.ns_query());
        match self.call(Method::GET, &path, None).await {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| GatewayError::Status {
                    status: 200,
                    what: format!("GET {path}"),
                    body: format!("unreadable FunctionStatus: {e}"),
                }),
            Err(GatewayError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn list(&self) -> Result<Vec<FunctionStatus>, GatewayError> {
        let path = format!("/system/functions{}", self.ns_query());
        let text = self.call(Method::GET, &path, None).await?;
        serde_json::from_str(&text).map_err(|e| GatewayError::Status {
            status: 200,
            what: format!("GET {path}"),
            body: format!("unreadable function list: {e}"),
        })
    }

    pub async fn invoke_async(&self, name: &str, payload: &Invocation) -> Result<(), GatewayError> {
        let target = match &self.cfg.namespace {
            Some(ns) => format!("{name}.{ns}"),
            None => name.to_string(),
        };
        self.call(
            Method::POST,
            &format!("/async-function/{target}"),
            serde_json::to_value(payload).ok(),
        )
        .await
        .map(drop)
    }

    /// The deployment of one worker function (`id` is its worker id in `instances` mode).
    pub fn worker_deployment(&self, service: &str, id: Option<&str>) -> FunctionDeployment {
        let mut d = self.function_deployment(service, "worker");
        // Replicas share one spec, so each names itself after its pod.
        d.env_vars
            .insert("AUTOSCALE_ID".to_string(), id.unwrap_or("auto").to_string());
        d
    }

    /// The deployment of a function running `autoscale-node ROLE`.
    pub fn function_deployment(&self, service: &str, role: &str) -> FunctionDeployment {
        let env = BTreeMap::from([
            ("REDIS_URL".to_string(), self.cfg.worker_redis_url.clone()),
            (
                "AUTOSCALE_PROGRAM_START_TIME".to_string(),
                self.cfg.program_start.to_string(),
            ),
            // Long tasks: the watchdog must not cut the function off.
            ("exec_timeout".to_string(), "0".to_string()),
            ("write_timeout".to_string(), "3600s".to_string()),
            ("read_timeout".to_string(), "3600s".to_string()),
            ("mode".to_string(), "http".to_string()),
            ("upstream_url".to_string(), "http://127.0.0.1:8082".to_string()),
        ]);
        FunctionDeployment {
            service: service.to_string(),
            image: self.cfg.image.clone(),
            namespace: self.cfg.namespace.clone(),
            env_process: format!("autoscale-node {role} --http 127.0.0.1:8082"),
            env_vars: env,
            labels: BTreeMap::from([
                (
                    "app.kubernetes.io/part-of".to_string(),
                    "autoscale-node".to_string(),
                ),
                ("autoscale-node/role".to_string(), role.to_string()),
                // The gateway's own autoscaler must not fight ours.
                ("com.openfaas.scale.min".to_string(), "1".to_string()),
                ("com.openfaas.scale.zero".to_string(), "false".to_string()),
            ]),
            annotations: BTreeMap::new(),
            // The original stack's small footprint.
            limits: Resources {
                memory: "128Mi".into(),
                cpu: "200m".into(),
            },
            requests: Resources {
                memory: "32Mi".into(),
                cpu: "50m".into(),
            },
        }
    }
}

/// One worker function in `instances` mode.
#[derive(Debug)]
struct Instance {
    index: u32,
    /// Has an available replica and was invoked.
    live: bool,
    /// Acknowledged a scale-down; deleted.
    leaving: bool,
}

pub struct OpenFaasScaler {
    gateway: Gateway,
    mode: Mode,
    /// `instances` mode: the functions this node deployed.
    instances: Vec<Instance>,
    /// `replicas` mode: the last status read and the replicas requested.
    replicas: Option<FunctionStatus>,
    requested: u32,
    scale_down: ScaleDown,
    /// When every function's status was last read; `None` forces a read at the next reconcile.
    last_poll: Option<std::time::Instant>,
}

/// Running functions are re-read at most this often (functions still starting, every tick):
/// the control loop ticks 4–20 times a second and the gateway should not see that.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

impl OpenFaasScaler {
    pub async fn new(cfg: OpenFaasConfig) -> anyhow::Result<OpenFaasScaler> {
        let mode = cfg.mode;
        let gateway = Gateway::new(cfg)?;
        let mut s = OpenFaasScaler {
            gateway,
            mode,
            instances: Vec::new(),
            replicas: None,
            requested: 0,
            scale_down: ScaleDown::default(),
            last_poll: None,
        };
        match mode {
            Mode::Instances => {
                // Functions left by an earlier node are adopted, not duplicated.
                let prefix = format!("{}-", s.gateway.cfg.function);
                for f in s.gateway.list().await.context("listing functions")? {
                    if let Some(i) = f.name.strip_prefix(&prefix).and_then(|i| i.parse().ok()) {
                        s.instances.push(Instance {
                            index: i,
                            live: f.available_replicas > 0,
                            leaving: false,
                        });
                    }
                }
                s.instances.sort_by_key(|i| i.index);
            }
            Mode::Replicas => {
                let name = s.gateway.cfg.function.clone();
                match s.gateway.status(&name).await? {
                    Some(st) => s.requested = st.replicas as u32,
                    None => {
                        let dep = s.gateway.worker_deployment(&name, None);
                        s.gateway
                            .deploy(&dep)
                            .await
                            .context("deploying the worker function")?;
                        // A new function starts with one replica.
                        s.requested = 1;
                    }
                }
                s.replicas = s.gateway.status(&name).await?;
            }
        }
        Ok(s)
    }

    fn name_of(&self, index: u32) -> String {
        format!("{}-{index}", self.gateway.cfg.function)
    }

    async fn add_instance(&mut self) -> anyhow::Result<()> {
        let used: BTreeSet<u32> = self.instances.iter().map(|i| i.index).collect();
        let index = (1..).find(|i| !used.contains(i)).unwrap_or(1);
        let name = self.name_of(index);
        let dep = self.gateway.worker_deployment(&name, Some(&index.to_string()));
        self.gateway
            .deploy(&dep)
            .await
            .with_context(|| format!("deploying {name}"))?;
        self.instances.push(Instance {
            index,
            live: false,
            leaving: false,
        });
        Ok(())
    }
}

impl Scaler for OpenFaasScaler {
    fn kind(&self) -> &'static str {
        "openfaas"
    }

    fn counts(&self) -> WorkerCounts {
        match self.mode {
            Mode::Instances => {
                let active = self.instances.iter().filter(|i| !i.leaving);
                let live = active.clone().filter(|i| i.live).count() as u32;
                WorkerCounts {
                    live,
                    starting: active.count() as u32 - live,
                    leaving: 0,
                    pending_scale_down: self.scale_down.pending,
                }
            }
            Mode::Replicas => {
                let available = self.replicas.as_ref().map_or(0, |s| s.available_replicas) as u32;
                let live = available.min(self.requested);
                WorkerCounts {
                    live,
                    starting: self.requested.saturating_sub(live),
                    leaving: available.saturating_sub(self.requested),
                    pending_scale_down: 0,
                }
            }
        }
    }

    fn reconcile<'a>(&'a mut self, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, Vec<Vanished>> {
        Box::pin(async move {
            let mut vanished = Vec::new();
            match self.mode {
                Mode::Instances => {
                    for worker in self.scale_down.acknowledged(conn).await? {
                        let Some(pos) = self
                            .instances
                            .iter()
                            .position(|i| Some(i.index) == worker.index())
                        else {
                            tracing::warn!(%worker, "scale-down ACK from a function this node does not manage");
                            continue;
                        };
                        let fname = self.name_of(self.instances[pos].index);
                        self.instances[pos].leaving = true;
                        match self.gateway.delete(&fname).await {
                            Ok(()) | Err(GatewayError::NotFound(_)) => {
                                self.instances.remove(pos);
                            }
                            Err(e) => {
                                // Retried at the next reconcile through the leaving flag.
                                tracing::error!(error = %e, function = %fname, "deleting a scaled-down function failed");
                            }
                        }
                    }
                    // Deletions that failed earlier.
                    let retry: Vec<u32> = self
                        .instances
                        .iter()
                        .filter(|i| i.leaving)
                        .map(|i| i.index)
                        .collect();
                    for index in retry {
                        if let Ok(()) | Err(GatewayError::NotFound(_)) =
                            self.gateway.delete(&self.name_of(index)).await
                        {
                            self.instances.retain(|i| i.index != index);
                        }
                    }
                    let poll_all = self.last_poll.is_none_or(|t| t.elapsed() >= POLL_INTERVAL);
                    if poll_all {
                        self.last_poll = Some(std::time::Instant::now());
                    }
                    let mut i = 0;
                    while i < self.instances.len() {
                        if self.instances[i].live && !poll_all {
                            i += 1;
                            continue;
                        }
                        let name = self.name_of(self.instances[i].index);
                        match self.gateway.status(&name).await? {
                            None => {
                                let gone = self.instances.remove(i);
                                vanished.push(Vanished {
                                    id: WorkerId::from_index(gone.index),
                                    reason: format!("function {name} no longer exists"),
                                });
                                continue;
                            }
                            Some(st) if st.available_replicas > 0 && !self.instances[i].live => {
                                // The original started each function's loop by invoking it.
                                let payload = Invocation {
                                    program_start_time: self.gateway.cfg.program_start,
                                    worker_id: Some(self.instances[i].index),
                                };
                                if let Err(e) = self.gateway.invoke_async(&name, &payload).await {
                                    tracing::warn!(error = %e, function = %name, "async invocation failed (the worker runs anyway)");
                                }
                                self.instances[i].live = true;
                            }
                            Some(_) => {}
                        }
                        i += 1;
                    }
                }
                Mode::Replicas => {
                    let settled = self
                        .replicas
                        .as_ref()
                        .is_some_and(|r| r.available_replicas == u64::from(self.requested));
                    if settled && self.last_poll.is_some_and(|t| t.elapsed() < POLL_INTERVAL) {
                        return Ok(vanished);
                    }
                    self.last_poll = Some(std::time::Instant::now());
                    let name = self.gateway.cfg.function.clone();
                    self.replicas = self.gateway.status(&name).await?;
                    if self.replicas.is_none() {
                        anyhow::bail!("the worker function {name} was deleted from the gateway");
                    }
                }
            }
            Ok(vanished)
        })
    }

    fn scale_to<'a>(&'a mut self, target: u32, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        Box::pin(async move {
            match self.mode {
                Mode::Instances => {
                    let start = self
                        .scale_down
                        .toward(conn, self.counts().effective(), target)
                        .await?;
                    for _ in 0..start {
                        self.add_instance().await?;
                    }
                }
                Mode::Replicas => {
                    let name = self.gateway.cfg.function.clone();
                    self.gateway
                        .scale(&name, target)
                        .await
                        .with_context(|| format!("scaling {name} to {target}"))?;
                    self.requested = target;
                }
            }
            Ok(())
        })
    }

    fn start_role<'a>(&'a mut self, role: &'a str, env: &'a [(String, String)]) -> ScalerFuture<'a, bool> {
        Box::pin(async move {
            let mut dep = self.gateway.function_deployment(role, role);
            dep.env_vars.extend(env.iter().cloned());
            if self.gateway.status(role).await?.is_some() {
                self.gateway
                    .update(&dep)
                    .await
                    .with_context(|| format!("updating {role}"))?;
            } else {
                self.gateway
                    .deploy(&dep)
                    .await
                    .with_context(|| format!("deploying {role}"))?;
            }
            // Wait for a replica, then invoke it once, as the original's controller did.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            loop {
                let st = self.gateway.status(role).await?;
                if st.is_some_and(|s| s.available_replicas > 0) {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    anyhow::bail!("the {role} function has no available replica after 120 s");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let payload = Invocation {
                program_start_time: self.gateway.cfg.program_start,
                worker_id: None,
            };
            self.gateway
                .invoke_async(role, &payload)
                .await
                .with_context(|| format!("invoking {role}"))?;
            Ok(true)
        })
    }

    fn stop_role<'a>(&'a mut self, role: &'a str) -> ScalerFuture<'a, ()> {
        Box::pin(async move {
            match self.gateway.delete(role).await {
                Ok(()) | Err(GatewayError::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn shutdown<'a>(&'a mut self, _conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        // The node and its broker are going away: the farm goes with them.
        Box::pin(async move {
            match self.mode {
                Mode::Instances => {
                    for index in self.instances.iter().map(|i| i.index).collect::<Vec<_>>() {
                        match self.gateway.delete(&self.name_of(index)).await {
                            Ok(()) | Err(GatewayError::NotFound(_)) => {}
                            Err(e) => tracing::error!(error = %e, "removing a worker function failed"),
                        }
                    }
                    self.instances.clear();
                }
                Mode::Replicas => {
                    let name = self.gateway.cfg.function.clone();
                    self.gateway.scale(&name, 0).await?;
                    self.requested = 0;
                }
            }
            Ok(())
        })
    }
}
