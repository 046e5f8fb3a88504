//! The `kubernetes` scaler: workers are the pods of one Deployment, scaled through its `scale`
//! subresource with the `kube` crate (`Config::infer()`: in-cluster service account, else
//! `KUBECONFIG`/`~/.kube/config`).
//!
//! Scale-down keeps the farm's SYN/ACK protocol: the worker that acknowledges stops taking
//! tasks and waits (`--on-scale-down wait`, so the container does not exit and restart); the
//! node marks its pod with a low `controller.kubernetes.io/pod-deletion-cost` and lowers the
//! replica count. The ReplicaSet controller only uses that cost among pods in the same state:
//! it deletes unscheduled, Pending and not-Ready pods first, so a scale-down right after a
//! scale-up removes a pod still starting and leaves the acknowledged one idle. The node checks
//! its work: when the pods are down to the replica count and the acknowledged pod is still
//! there, it deletes that pod itself, and the controller replaces the starting pod it took
//! (the farm ends at the target, with the acknowledged worker gone). Pods are listed by label
//! to count ready workers (every 2 s, and right after the node changes the scale); a pod that
//! disappears without having acknowledged has its processing list re-queued. A pod counts as
//! live only while it is Ready and no more pods are counted than `worker:*` clients are
//! connected to the broker: Ready alone may mean only that a container started.

use super::{ScaleDown, Scaler, ScalerFuture, Vanished, WorkerCounts};
use anyhow::Context;
use functions::protocol::WorkerId;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, Config};
use redis::aio::MultiplexedConnection;
use std::collections::BTreeSet;

/// The annotation the ReplicaSet controller reads to choose which pod to delete first.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

#[derive(Clone, Debug)]
pub struct KubernetesConfig {
    /// Namespace of the worker Deployment (default: the client's default namespace).
    pub namespace: Option<String>,
    pub deployment: String,
    /// Label selector of the worker pods.
    pub selector: String,
}

pub struct KubernetesScaler {
    deployments: Api<Deployment>,
    pods: Api<Pod>,
    cfg: KubernetesConfig,
    /// `spec.replicas` of the Deployment as last read or written.
    replicas: u32,
    ready: u32,
    terminating: u32,
    /// Pods seen last tick, to notice ones that vanish.
    known: BTreeSet<String>,
    /// Pods that acknowledged a scale-down (their removal is expected).
    acked: BTreeSet<String>,
    /// Acknowledged pods the replicas were lowered for, not yet seen gone.
    unconfirmed: BTreeSet<String>,
    /// Pods the node deleted itself because the controller took another one.
    pub corrected: u64,
    /// `worker:*` clients connected to the broker, last observed.
    connected: Option<u32>,
    scale_down: ScaleDown,
    /// When pods were last listed; `None` forces a list at the next reconcile (after a change).
    last_list: Option<std::time::Instant>,
}

/// Pods are listed at most this often unless the node just changed something: the control loop
/// ticks 4–20 times a second and the API server should not see that.
const LIST_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

impl KubernetesScaler {
    /// Connects with `Config::infer()` and reads the Deployment's current scale.
    pub async fn new(cfg: KubernetesConfig) -> anyhow::Result<KubernetesScaler> {
        let config = Config::infer()
            .await
            .context("finding Kubernetes credentials (in-cluster service account or KUBECONFIG)")?;
        let ns = cfg
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).context("building the Kubernetes client")?;
        KubernetesScaler::with_client(client, &ns, cfg).await
    }

    pub async fn with_client(
        client: Client,
        ns: &str,
        cfg: KubernetesConfig,
    ) -> anyhow::Result<KubernetesScaler> {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let pods: Api<Pod> = Api::namespaced(client, ns);
        let scale = deployments.get_scale(&cfg.deployment).await.with_context(|| {
            format!(
                "reading the scale of Deployment {ns}/{} (does it exist, and may this service account get deployments/scale?)",
                cfg.deployment
            )
        })?;
        let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
        Ok(KubernetesScaler {
            deployments,
            pods,
            cfg,
            replicas,
            ready: 0,
            terminating: 0,
            known: BTreeSet::new(),
            acked: BTreeSet::new(),
            unconfirmed: BTreeSet::new(),
            corrected: 0,
            connected: None,
            scale_down: ScaleDown::default(),
            last_list: None,
        })
    }

    async fn set_replicas(&mut self, n: u32) -> anyhow::Result<()> {
        let patch = serde_json::json!({ "spec": { "replicas": n } });
        self.deployments
            .patch_scale(
                &self.cfg.deployment,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .with_context(|| format!("scaling Deployment {} to {n}", self.cfg.deployment))?;
        self.replicas = n;
        self.last_list = None;
        Ok(())
    }

    /// Marks `pod` as the cheapest to delete, then removes one replica.
    async fn remove_pod(&mut self, pod: &str) -> anyhow::Result<()> {
        let patch = serde_json::json!({ "metadata": { "annotations": { DELETION_COST: "-1000" } } });
        self.pods
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("annotating pod {pod} for deletion"))?;
        self.set_replicas(self.replicas.saturating_sub(1)).await?;
        self.unconfirmed.insert(pod.to_string());
        Ok(())
    }

    /// The controller is done when no more pods than replicas remain (terminating ones aside);
    /// an acknowledged pod still among them was passed over for one that was starting, and is
    /// deleted here.
    async fn confirm_removals(&mut self, pods: &[Pod]) {
        let active: Vec<&str> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let settled = active.len() as u32 <= self.replicas;
        for pod in self.unconfirmed.clone() {
            if !active.contains(&pod.as_str()) {
                self.unconfirmed.remove(&pod);
            } else if settled {
                tracing::warn!(%pod, "the ReplicaSet removed another pod instead of the acknowledged one; deleting it");
                match self.pods.delete(&pod, &DeleteParams::default()).await {
                    Ok(_) => {
                        self.corrected += 1;
                        self.unconfirmed.remove(&pod);
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        self.unconfirmed.remove(&pod);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, %pod, "deleting an acknowledged pod failed; retrying")
                    }
                }
                self.last_list = None;
            }
        }
    }
}

/// Ready and not being deleted: only such a pod's worker may be counted, or asked to leave.
fn is_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Scaler for KubernetesScaler {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn observe_connected(&mut self, workers: u32) {
        self.connected = Some(workers);
    }

    fn counts(&self) -> WorkerCounts {
        let live = self.ready.min(self.replicas).min(self.connected.unwrap_or(0));
        WorkerCounts {
            live,
            starting: self.replicas - live,
            leaving: self.terminating,
            pending_scale_down: self.scale_down.pending,
            capped: None,
        }
    }

    fn reconcile<'a>(&'a mut self, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, Vec<Vanished>> {
        Box::pin(async move {
            for worker in self.scale_down.acknowledged(conn).await? {
                // Kubernetes workers are named after their pod.
                let pod = worker.as_str().to_string();
                self.acked.insert(pod.clone());
                if let Err(e) = self.remove_pod(&pod).await {
                    tracing::error!(error = %format!("{e:#}"), %pod, "removing an acknowledged pod failed");
                }
            }
            if self.last_list.is_some_and(|t| t.elapsed() < LIST_INTERVAL) {
                return Ok(Vec::new());
            }
            self.last_list = Some(std::time::Instant::now());
            let list = self
                .pods
                .list(&ListParams::default().labels(&self.cfg.selector))
                .await
                .with_context(|| format!("listing pods with {}", self.cfg.selector))?;
            self.confirm_removals(&list.items).await;
            let mut seen = BTreeSet::new();
            let (mut ready, mut terminating) = (0, 0);
            for p in &list.items {
                let Some(name) = p.metadata.name.clone() else {
                    continue;
                };
                if p.metadata.deletion_timestamp.is_some() {
                    terminating += 1;
                } else if is_ready(p) && !self.acked.contains(&name) {
                    ready += 1;
                }
                seen.insert(name);
            }
            self.ready = ready;
            self.terminating = terminating;
            let mut vanished = Vec::new();
            for gone in self.known.difference(&seen) {
                if !self.acked.remove(gone) {
                    vanished.push(Vanished {
                        id: WorkerId::new(gone.clone()),
                        reason: "pod deleted".into(),
                    });
                }
            }
            self.known = seen;
            Ok(vanished)
        })
    }

    fn scale_to<'a>(&'a mut self, target: u32, conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        Box::pin(async move {
            let start = self
                .scale_down
                .toward(conn, self.counts().effective(), target)
                .await?;
            if start > 0 {
                self.set_replicas(self.replicas + start).await?;
            }
            Ok(())
        })
    }

    /// The emitter and the collector are Deployments `autoscale-<role>` kept at 0 replicas
    /// (deploy/kubernetes/functions.yaml); a run scales them to 1 and back to 0. Their
    /// environment (broker URL, time scale) is in that manifest.
    fn start_role<'a>(&'a mut self, role: &'a str, _env: &'a [(String, String)]) -> ScalerFuture<'a, bool> {
        Box::pin(async move {
            let name = format!("autoscale-{role}");
            let patch = serde_json::json!({ "spec": { "replicas": 1 } });
            self.deployments
                .patch_scale(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| {
                    format!("starting Deployment {name} (apply deploy/kubernetes/functions.yaml)")
                })?;
            Ok(true)
        })
    }

    fn stop_role<'a>(&'a mut self, role: &'a str) -> ScalerFuture<'a, ()> {
        Box::pin(async move {
            let name = format!("autoscale-{role}");
            let patch = serde_json::json!({ "spec": { "replicas": 0 } });
            self.deployments
                .patch_scale(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| format!("stopping Deployment {name}"))?;
            Ok(())
        })
    }

    fn shutdown<'a>(&'a mut self, _conn: &'a mut MultiplexedConnection) -> ScalerFuture<'a, ()> {
        // The workers' broker is this node: without it they cannot work.
        Box::pin(async move { self.set_replicas(0).await })
    }
}
