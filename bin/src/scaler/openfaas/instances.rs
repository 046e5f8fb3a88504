//! `instances` mode: one function per worker, `worker-1..N`, the lowest free index reused; a
//! worker that acknowledges a scale-down has its function deleted.
//!
//! A deleted function keeps its name until its pods are gone (foreground deletion, and the
//! watchdog's drain on SIGTERM), and a deploy under that name meanwhile fails with "already
//! exists". So a deleted index is not reused for [`LINGER`]; a name found taken anyway is set
//! aside the same way and the next free index used: worker ids may grow past the target, and
//! no scale-up waits on a deletion. The edition's function cap (CE: 15 in the installation,
//! other functions included) clamps the target and is reported as capped; a deploy the gateway
//! refuses caps the farm at what runs, or fails the start when nothing does.

use super::{Edition, Gateway, GatewayError, POLL_INTERVAL};
use crate::scaler::{Capped, ScaleDown, Scaler, ScalerFuture, Vanished, WorkerCounts};
use anyhow::Context;
use functions::protocol::{Invocation, WorkerId};
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long a deleted function's name is left alone before it is tried again.
pub const LINGER: Duration = Duration::from_secs(30);
/// How long a refused deploy holds the farm at what it has before trying again.
const REFUSED_RETRY: Duration = Duration::from_secs(30);

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
    edition: Edition,
    /// Functions on the gateway that are not this node's workers (they count toward the cap).
    other_functions: u32,
    /// The functions this node deployed (or adopted).
    instances: Vec<Instance>,
    /// Indices whose names are still taken by a deletion, and since when.
    lingering: BTreeMap<u32, Instant>,
    /// The last refused deploy: the gateway's words, when, and how many instances ran then.
    refused: Option<(String, Instant, u32)>,
    capped: Option<Capped>,
    /// `worker:*` clients connected to the broker, last observed: a function is live only
    /// once its worker has connected, whatever the gateway says of its replica.
    connected: u32,
    scale_down: ScaleDown,
    /// When every function's status was last read; `None` forces a read at the next reconcile.
    last_poll: Option<std::time::Instant>,
}

impl InstancesScaler {
    /// Adopts the worker functions an earlier node left, rather than duplicating them.
    pub async fn new(gateway: Gateway, edition: Edition) -> anyhow::Result<InstancesScaler> {
        let mut s = InstancesScaler {
            gateway,
            edition,
            other_functions: 0,
            instances: Vec::new(),
            lingering: BTreeMap::new(),
            refused: None,
            capped: None,
            connected: 0,
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
            } else {
                s.other_functions += 1;
            }
        }
        s.instances.sort_by_key(|i| i.index);
        Ok(s)
    }

    fn name_of(&self, index: u32) -> String {
        format!("{}-{index}", self.gateway.cfg.function)
    }

    /// The most workers the edition lets this node run, and why, when there is a limit.
    fn limit(&self) -> Option<(u32, String)> {
        let refused = self
            .refused
            .as_ref()
            .filter(|(_, at, _)| at.elapsed() < REFUSED_RETRY)
            .map(|(why, _, n)| {
                (
                    *n,
                    format!("the OpenFaaS gateway refused another function: {why}"),
                )
            });
        let cap = self.edition.limits().max_functions.map(|max| {
            (
                max.saturating_sub(self.other_functions),
                format!(
                    "capped by {}: at most {max} functions ({} of them not workers)",
                    self.edition.name(),
                    self.other_functions
                ),
            )
        });
        match (refused, cap) {
            (Some(r), Some(c)) => Some(if r.0 <= c.0 { r } else { c }),
            (r, c) => r.or(c),
        }
    }

    /// Deploys one more worker function under the lowest index neither used nor lingering.
    async fn add_instance(&mut self) -> anyhow::Result<()> {
        self.lingering.retain(|_, at| at.elapsed() < LINGER);
        loop {
            let taken: BTreeSet<u32> = self
                .instances
                .iter()
                .map(|i| i.index)
                .chain(self.lingering.keys().copied())
                .collect();
            let index = (1..).find(|i| !taken.contains(i)).unwrap_or(1);
            let name = self.name_of(index);
            let dep = self.gateway.worker_deployment(&name, Some(&index.to_string()));
            match self.gateway.deploy(&dep).await {
                Ok(()) => {
                    self.instances.push(Instance {
                        index,
                        live: false,
                        leaving: false,
                    });
                    return Ok(());
                }
                Err(GatewayError::AlreadyExists(_)) => {
                    tracing::info!(function = %name, "name still taken by a deletion; using the next index");
                    self.lingering.insert(index, Instant::now());
                }
                Err(GatewayError::Refused { body, .. }) if !self.instances.is_empty() => {
                    // Earlier deploys of the same image worked: this is the installation's
                    // function cap, not the image. Hold at what runs.
                    tracing::warn!(function = %name, reason = %body, "the gateway refused another function; holding the farm at its size");
                    self.refused = Some((body, Instant::now(), self.instances.len() as u32));
                    return Ok(());
                }
                Err(e @ GatewayError::Refused { .. }) => {
                    let hint = super::replicas::refused_hint(&self.gateway, self.edition, &name);
                    return Err(anyhow::Error::new(e).context(hint));
                }
                Err(e) => return Err(e).with_context(|| format!("deploying {name}")),
            }
        }
    }
}

impl Scaler for InstancesScaler {
    fn kind(&self) -> &'static str {
        "openfaas"
    }

    fn counts(&self) -> WorkerCounts {
        let active = self.instances.iter().filter(|i| !i.leaving);
        let live = (active.clone().filter(|i| i.live).count() as u32).min(self.connected);
        WorkerCounts {
            live,
            starting: active.count() as u32 - live,
            leaving: 0,
            pending_scale_down: self.scale_down.pending,
            capped: self.capped.clone(),
        }
    }

    fn observe_connected(&mut self, workers: u32) {
        self.connected = workers;
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
                        let gone = self.instances.remove(pos);
                        self.lingering.insert(gone.index, Instant::now());
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
                    self.lingering.insert(index, Instant::now());
                }
            }
            let poll_all = self
                .last_poll
                .is_none_or(|t: Instant| t.elapsed() >= POLL_INTERVAL);
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
            let want = match self.limit() {
                Some((max, reason)) if target > max => {
                    let capped = Capped {
                        requested: target,
                        running: max,
                        reason,
                    };
                    if self.capped.as_ref() != Some(&capped) {
                        tracing::warn!(requested = target, running = max, reason = %capped.reason, "target capped");
                    }
                    self.capped = Some(capped);
                    max
                }
                _ => {
                    self.capped = None;
                    target
                }
            };
            let start = self
                .scale_down
                .toward(conn, self.counts().effective(), want)
                .await?;
            for _ in 0..start {
                self.add_instance().await?;
                if self
                    .refused
                    .as_ref()
                    .is_some_and(|(_, at, _)| at.elapsed() < REFUSED_RETRY)
                {
                    break;
                }
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
