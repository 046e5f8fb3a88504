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
//! OpenFaaS Community Edition keeps a function between 1 and 5 replicas (the gateway clamps
//! and still answers 202), refuses a 16th function and any image it cannot pull anonymously.
//! The scalers know those [`Limits`] ([`Edition`], from `--openfaas-edition` or the gateway's
//! `/system/info`): a target beyond them is clamped and reported as
//! [`Capped`](crate::scaler::Capped) rather than waited for; farms larger than that need the
//! `kubernetes` scaler or OpenFaaS Pro.

pub mod gateway;
pub mod instances;
pub mod replicas;

pub use gateway::{FunctionDeployment, FunctionStatus, Gateway, GatewayError, Resources};

use super::Scaler;
use anyhow::Context;
use functions::protocol::Invocation;
use std::time::Duration;

/// `--openfaas-edition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EditionArg {
    Ce,
    Pro,
    /// Ask the gateway (`/system/info`); CE limits when it does not say.
    Auto,
}

/// The OpenFaaS edition the gateway runs, as far as the node can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edition {
    Ce,
    Pro,
}

impl Edition {
    /// The edition a provider names itself as in `/system/info` (`faas-netes-ce`,
    /// `faas-netes-pro`, `openfaas-operator`...): `None` when the name does not tell.
    pub fn from_provider(provider: &str) -> Option<Edition> {
        let p = provider.to_ascii_lowercase();
        let words: Vec<&str> = p.split(|c: char| !c.is_ascii_alphanumeric()).collect();
        if words.contains(&"ce") || words.contains(&"community") {
            Some(Edition::Ce)
        } else if words.contains(&"pro") || words.contains(&"enterprise") || words.contains(&"operator") {
            // The operator ships with Pro only.
            Some(Edition::Pro)
        } else {
            None
        }
    }

    pub fn limits(self) -> Limits {
        match self {
            Edition::Ce => Limits {
                min_replicas: 1,
                max_replicas: Some(5),
                max_functions: Some(15),
            },
            Edition::Pro => Limits {
                min_replicas: 0,
                max_replicas: None,
                max_functions: None,
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Edition::Ce => "OpenFaaS CE",
            Edition::Pro => "OpenFaaS Pro",
        }
    }
}

/// What the gateway lets one node run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// CE never scales a function below one replica (a request for 0 becomes 1).
    pub min_replicas: u32,
    pub max_replicas: Option<u32>,
    /// Functions in the whole installation (CE: the 16th deploy is refused).
    pub max_functions: Option<u32>,
}

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
    pub edition: EditionArg,
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
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How long a deploy waits for a deleted function's name to be released.
pub(crate) const NAME_FREE_WAIT: Duration = Duration::from_secs(60);

/// The scaler for `cfg.mode`, connected to the gateway and caught up with what it runs.
pub async fn build(cfg: OpenFaasConfig) -> anyhow::Result<Box<dyn Scaler>> {
    let gateway = Gateway::new(cfg)?;
    let edition = edition(&gateway).await;
    tracing::info!(edition = edition.name(), "OpenFaaS limits");
    Ok(match gateway.cfg.mode {
        Mode::Instances => Box::new(instances::InstancesScaler::new(gateway, edition).await?),
        Mode::Replicas => Box::new(replicas::ReplicasScaler::new(gateway, edition).await?),
    })
}

/// The edition `--openfaas-edition` names, or the one the gateway reports. A gateway that does
/// not say (older providers, an unreadable answer) gets CE's limits: assuming Pro there would
/// wait for replicas CE never starts.
pub async fn edition(gateway: &Gateway) -> Edition {
    match gateway.cfg.edition {
        EditionArg::Ce => Edition::Ce,
        EditionArg::Pro => Edition::Pro,
        EditionArg::Auto => match gateway.provider().await {
            Ok(Some(p)) => Edition::from_provider(&p).unwrap_or_else(|| {
                tracing::warn!(provider = %p, "the gateway's provider does not name its edition; assuming OpenFaaS CE's limits (set --openfaas-edition pro otherwise)");
                Edition::Ce
            }),
            Ok(None) => Edition::Ce,
            Err(e) => {
                tracing::warn!(error = %e, "reading the gateway's /system/info failed; assuming OpenFaaS CE's limits");
                Edition::Ce
            }
        },
    }
}

/// Deploys `dep`, waiting while its name is still taken by a deletion in progress (OpenFaaS
/// deletes a function's pods in the foreground, and the name stays taken until they are gone).
pub async fn deploy_when_free(
    gateway: &Gateway,
    dep: &FunctionDeployment,
    wait: Duration,
) -> Result<(), GatewayError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match gateway.deploy(dep).await {
            Err(GatewayError::AlreadyExists(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
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
        deploy_when_free(gateway, &dep, NAME_FREE_WAIT)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_name_their_edition_or_get_none() {
        assert_eq!(Edition::from_provider("faas-netes-ce"), Some(Edition::Ce));
        assert_eq!(Edition::from_provider("faas-netes-pro"), Some(Edition::Pro));
        assert_eq!(Edition::from_provider("openfaas-operator"), Some(Edition::Pro));
        assert_eq!(Edition::from_provider("faas-netes"), None);
        // "ce" as a word, not a substring: "faasd-service" is not CE by name.
        assert_eq!(Edition::from_provider("faasd-service"), None);
    }
}
