//! The `openfaas` scaler: workers are OpenFaaS functions, managed through the gateway's REST
//! API ([`gateway`]).
//!
//! Two modes, each its own scaler. [`instances`] is the original's: one function per worker,
//! `worker-1..N`, the lowest free index reused; a function is deployed, invoked once
//! asynchronously when its replica is available (the original started its loops by
//! invocation), and deleted when its worker acknowledges a scale-down. [`replicas`] deploys one
//! `worker` function and scales its replicas; Kubernetes then chooses which replica to stop
//! (SIGTERM: the worker finishes or hands back its task), so scale-down is not SYN/ACK there.
//! Both run `run`'s emitter and collector as functions too ([`start_role`], [`stop_role`]).
//!
//! OpenFaaS Community Edition caps a function at 5 replicas and an installation at 15
//! functions: farms larger than that need the `kubernetes` scaler or OpenFaaS Pro.

pub mod gateway;
pub mod instances;
pub mod replicas;

pub use gateway::{FunctionDeployment, FunctionStatus, Gateway, GatewayError, Resources};

use super::Scaler;
use anyhow::Context;
use functions::protocol::Invocation;
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

/// Running functions are re-read at most this often (functions still starting, every tick):
/// the control loop ticks 4–20 times a second and the gateway should not see that.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The scaler for `cfg.mode`, connected to the gateway and caught up with what it runs.
pub async fn build(cfg: OpenFaasConfig) -> anyhow::Result<Box<dyn Scaler>> {
    Ok(match cfg.mode {
        Mode::Instances => Box::new(instances::InstancesScaler::new(Gateway::new(cfg)?).await?),
        Mode::Replicas => Box::new(replicas::ReplicasScaler::new(Gateway::new(cfg)?).await?),
    })
}

/// Runs `autoscale-node ROLE` (the emitter or the collector) as a function: deployed (or
/// updated) with `env`, then invoked once its replica is available, as the original's
/// controller did.
pub async fn start_role(gateway: &Gateway, role: &str, env: &[(String, String)]) -> anyhow::Result<bool> {
    let mut dep = gateway.function_deployment(role, role);
    dep.env_vars.extend(env.iter().cloned());
    if gateway.status(role).await?.is_some() {
        gateway
            .update(&dep)
            .await
            .with_context(|| format!("updating {role}"))?;
    } else {
        gateway
            .deploy(&dep)
            .await
            .with_context(|| format!("deploying {role}"))?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let st = gateway.status(role).await?;
        if st.is_some_and(|s| s.available_replicas > 0) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("the {role} function has no available replica after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let payload = Invocation {
        program_start_time: gateway.cfg.program_start,
        worker_id: None,
    };
    gateway
        .invoke_async(role, &payload)
        .await
        .with_context(|| format!("invoking {role}"))?;
    Ok(true)
}

/// Removes what [`start_role`] deployed.
pub async fn stop_role(gateway: &Gateway, role: &str) -> anyhow::Result<()> {
    match gateway.delete(role).await {
        Ok(()) | Err(GatewayError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
