//! `replicas` mode: one `worker` function whose replicas are the workers; Kubernetes picks the
//! replica to stop on a scale-down (the worker's SIGTERM grace hands back an unfinished task).

use super::{FunctionStatus, Gateway, POLL_INTERVAL};
use crate::scaler::{Scaler, ScalerFuture, Vanished, WorkerCounts};
use anyhow::Context;
use redis::aio::MultiplexedConnection;

pub struct ReplicasScaler {
    gateway: Gateway,
    /// The last status read, and the replicas requested.
    replicas: Option<FunctionStatus>,
    requested: u32,
    /// When the status was last read.
    last_poll: Option<std::time::Instant>,
}

impl ReplicasScaler {
    /// Deploys the worker function unless it exists, and reads its replicas.
    pub async fn new(gateway: Gateway) -> anyhow::Result<ReplicasScaler> {
        let mut s = ReplicasScaler {
            gateway,
            replicas: None,
            requested: 0,
            last_poll: None,
        };
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
        Ok(s)
    }
}

impl Scaler for ReplicasScaler {
    fn kind(&self) -> &'static str {
        "openfaas"
    }

    fn counts(&self) -> WorkerCounts {
        let available = self.replicas.as_ref().map_or(0, |s| s.available_replicas) as u32;
        let live = available.min(self.requested);
        WorkerCounts {
            live,
            starting: self.requested.saturating_sub(live),
            leaving: available.saturating_sub(self.requested),
            pending_scale_down: 0,
        }
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
            let name = self.gateway.cfg.function.clone();
            self.gateway
                .scale(&name, target)
                .await
                .with_context(|| format!("scaling {name} to {target}"))?;
            self.requested = target;
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
        // The node and its broker are going away: the farm goes with them.
        Box::pin(async move {
            let name = self.gateway.cfg.function.clone();
            self.gateway.scale(&name, 0).await?;
            self.requested = 0;
            Ok(())
        })
    }
}
