//! `instances` mode: one function per worker, `worker-1..N`, the lowest free index reused; a
//! worker that acknowledges a scale-down has its function deleted.

use super::{Gateway, GatewayError, POLL_INTERVAL};
use crate::scaler::{ScaleDown, Scaler, ScalerFuture, Vanished, WorkerCounts};
use anyhow::Context;
use functions::protocol::{Invocation, WorkerId};
use redis::aio::MultiplexedConnection;
use std::collections::BTreeSet;

/// One worker function.
#[derive(Debug)]
struct Instance {
    index: u32,
    /// Has an available replica and was invoked.
    live: bool,
    /// Acknowledged a scale-down; deleted.
    leaving: bool,
}

pub struct InstancesScaler {
    gateway: Gateway,
    /// The functions this node deployed (or adopted).
    instances: Vec<Instance>,
    scale_down: ScaleDown,
    /// When every function's status was last read; `None` forces a read at the next reconcile.
    last_poll: Option<std::time::Instant>,
}

impl InstancesScaler {
    /// Adopts the worker functions an earlier node left, rather than duplicating them.
    pub async fn new(gateway: Gateway) -> anyhow::Result<InstancesScaler> {
        let mut s = InstancesScaler {
            gateway,
            instances: Vec::new(),
            scale_down: ScaleDown::default(),
            last_poll: None,
        };
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

impl Scaler for InstancesScaler {
    fn kind(&self) -> &'static str {
        "openfaas"
    }

    fn counts(&self) -> WorkerCounts {
        let active = self.instances.iter().filter(|i| !i.leaving);
        let live = active.clone().filter(|i| i.live).count() as u32;
        WorkerCounts {
            live,
            starting: active.count() as u32 - live,
            leaving: 0,
            pending_scale_down: self.scale_down.pending,
        }
    }

    fn reconcile<'a>(&'a mut self, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, Vec<Vanished>> {
        Box::pin(async move {
            let mut vanished = Vec::new();
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
            Ok(vanished)
        })
    }

    fn scale_to<'a>(&'a mut self, target: u32, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        Box::pin(async move {
            let start = self
                .scale_down
                .toward(conn, self.counts().effective(), target)
                .await?;
            for _ in 0..start {
                self.add_instance().await?;
            }
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
            for index in self.instances.iter().map(|i| i.index).collect::<Vec<_>>() {
                match self.gateway.delete(&self.name_of(index)).await {
                    Ok(()) | Err(GatewayError::NotFound(_)) => {}
                    Err(e) => tracing::error!(error = %e, "removing a worker function failed"),
                }
            }
            self.instances.clear();
            Ok(())
        })
    }
}
