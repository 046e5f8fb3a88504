//! `replicas` mode: one `worker` function whose replicas are the workers; Kubernetes picks the
//! replica to stop on a scale-down (the worker's SIGTERM grace hands back an unfinished task).
//!
//! Targets outside the edition's replica range are clamped and reported as capped: OpenFaaS CE
//! answers 202 to any replica count and quietly runs 1..5, so asking for 12 and counting 12 as
//! "starting" would wait for workers that never come. The node's shutdown deletes the function
//! (CE cannot scale it to 0, and a replica left running would work for a broker that is gone).

use super::{
    deploy_when_free, Edition, FunctionStatus, Gateway, GatewayError, NAME_FREE_WAIT, POLL_INTERVAL,
};
use crate::scaler::{Capped, Scaler, ScalerFuture, Vanished, WorkerCounts};
use anyhow::Context;
use redis::aio::MultiplexedConnection;

pub struct ReplicasScaler {
    gateway: Gateway,
    edition: Edition,
    /// The last status read, and the replicas requested.
    replicas: Option<FunctionStatus>,
    requested: u32,
    /// Set while the last target was beyond the edition's limits.
    capped: Option<Capped>,
    /// When the status was last read.
    last_poll: Option<std::time::Instant>,
    /// `worker:*` clients connected to the broker, last observed: an available replica is
    /// live only once its worker has connected (the watchdog makes it available before).
    connected: u32,
}

/// The replicas `edition` runs for `target`, and the report when that is not `target`.
pub fn clamp(edition: Edition, target: u32) -> (u32, Option<Capped>) {
    let limits = edition.limits();
    let max = limits.max_replicas.unwrap_or(u32::MAX);
    let want = target.clamp(limits.min_replicas, max);
    let capped = (want != target).then(|| Capped {
        requested: target,
        running: want,
        reason: if want > target {
            format!(
                "capped by {}: a function keeps at least {} replica",
                edition.name(),
                limits.min_replicas
            )
        } else {
            format!("capped by {}: at most {max} replicas a function", edition.name())
        },
    });
    (want, capped)
}

impl ReplicasScaler {
    /// Deploys the worker function unless it exists, and reads its replicas. A gateway that
    /// refuses the deployment (CE and a private image) is an error naming the fix.
    pub async fn new(gateway: Gateway, edition: Edition) -> anyhow::Result<ReplicasScaler> {
        let mut s = ReplicasScaler {
            gateway,
            edition,
            replicas: None,
            requested: 0,
            capped: None,
            last_poll: None,
            connected: 0,
        };
        let name = s.gateway.cfg.function.clone();
        match s.gateway.status(&name).await? {
            Some(st) => s.requested = st.replicas as u32,
            None => {
                let dep = s.gateway.worker_deployment(&name, None);
                match deploy_when_free(&s.gateway, &dep, NAME_FREE_WAIT).await {
                    Ok(()) => {}
                    Err(e @ GatewayError::Refused { .. }) => {
                        return Err(anyhow::Error::new(e).context(refused_hint(&s.gateway, edition, &name)))
                    }
                    Err(e) => return Err(e).context("deploying the worker function"),
                }
                // A new function starts with one replica.
                s.requested = 1;
            }
        }
        s.replicas = s.gateway.status(&name).await?;
        Ok(s)
    }
}

/// What to tell an operator whose deployment the gateway refused.
pub fn refused_hint(gateway: &Gateway, edition: Edition, name: &str) -> String {
    format!(
        "deploying function {name} with image {}: {} only runs images it can pull anonymously \
         (push the image to a public registry and pass it as --openfaas-image), and at most 15 functions",
        gateway.cfg.image,
        edition.name()
    )
}

impl Scaler for ReplicasScaler {
    fn kind(&self) -> &'static str {
        "openfaas"
    }

    fn counts(&self) -> WorkerCounts {
        let available = self.replicas.as_ref().map_or(0, |s| s.available_replicas) as u32;
        let live = available.min(self.requested).min(self.connected);
        WorkerCounts {
            live,
            starting: self.requested.saturating_sub(live),
            leaving: available.saturating_sub(self.requested),
            pending_scale_down: 0,
            capped: self.capped.clone(),
        }
    }

    fn observe_connected(&mut self, workers: u32) {
        self.connected = workers;
    }

    fn reconcile<'a>(&'a mut self, _conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, Vec<Vanished>> {
        Box::pin(async move {
            let settled = self
                .replicas
                .as_ref()
                .is_some_and(|r| r.available_replicas == u64::from(self.requested));
            if settled && self.last_poll.is_some_and(|t| t.elapsed() < POLL_INTERVAL) {
                return Ok(Vec::new());
            }
            self.last_poll = Some(std::time::Instant::now());
            let name = self.gateway.cfg.function.clone();
            self.replicas = self.gateway.status(&name).await?;
            if self.replicas.is_none() {
                anyhow::bail!("the worker function {name} was deleted from the gateway");
            }
            Ok(Vec::new())
        })
    }

    fn scale_to<'a>(&'a mut self, target: u32, _conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        Box::pin(async move {
            let (want, capped) = clamp(self.edition, target);
            if capped != self.capped {
                if let Some(c) = &capped {
                    tracing::warn!(requested = c.requested, running = c.running, reason = %c.reason, "target capped");
                }
                self.capped = capped;
            }
            if want == self.requested {
                return Ok(());
            }
            let name = self.gateway.cfg.function.clone();
            self.gateway
                .scale(&name, want)
                .await
                .with_context(|| format!("scaling {name} to {want}"))?;
            self.requested = want;
            self.last_poll = None;
            Ok(())
        })
    }

    fn start_role<'a>(&'a mut self, role: &'a str, env: &'a [(String, String)]) -> ScalerFuture<'a, bool> {
        Box::pin(super::start_role(&self.gateway, role, env))
    }

    fn stop_role<'a>(&'a mut self, role: &'a str) -> ScalerFuture<'a, ()> {
        Box::pin(super::stop_role(&self.gateway, role))
    }

    fn shutdown<'a>(&'a mut self, _conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        // The node and its broker are going away: the farm goes with them. Deleted, not scaled
        // to 0: CE keeps one replica of any function it is asked to scale to 0.
        Box::pin(async move {
            let name = self.gateway.cfg.function.clone();
            match self.gateway.delete(&name).await {
                Ok(()) | Err(GatewayError::NotFound(_)) => {}
                Err(e) => return Err(e).with_context(|| format!("deleting {name}")),
            }
            self.requested = 0;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ce_targets_outside_one_to_five_are_clamped_and_reported() {
        assert_eq!(clamp(Edition::Ce, 3), (3, None));
        let (want, capped) = clamp(Edition::Ce, 12);
        assert_eq!(want, 5);
        let c = capped.unwrap();
        assert_eq!((c.requested, c.running), (12, 5));
        assert!(c.reason.contains("capped by OpenFaaS CE"), "{}", c.reason);
        let (want, capped) = clamp(Edition::Ce, 0);
        assert_eq!(want, 1);
        assert_eq!(capped.unwrap().running, 1);
        assert_eq!(clamp(Edition::Pro, 12), (12, None));
        assert_eq!(clamp(Edition::Pro, 0), (0, None));
    }
}
