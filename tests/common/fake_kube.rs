//! A fake Kubernetes API server for one worker Deployment: the apps/v1 `scale` subresource and
//! the core/v1 pods of one namespace, with a ReplicaSet controller and a kubelet that start a
//! real `autoscale-node worker` per pod. Pods go through the states a real cluster shows
//! (unscheduled, Pending, Running but not Ready, Ready), and a scale-down removes pods in the
//! order the ReplicaSet controller documents, so a node that trusts one annotation to pick
//! the pod is caught.

use super::fake_http::{Request, Response};
use super::fake_openfaas::{spawn_function, terminate};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

pub const NAMESPACE: &str = "farm";
pub const DEPLOYMENT: &str = "autoscale-worker";
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

pub struct FakePod {
    pub annotations: BTreeMap<String, String>,
    created: u32,
    created_at: Instant,
    proc: Option<Child>,
    /// The readiness probe: `test -f` on this file (the worker's `--ready-file`).
    ready_file: PathBuf,
    ready_since: Option<Instant>,
}

impl FakePod {
    fn scheduled(&self, c: &FakeCluster) -> bool {
        self.created_at.elapsed() >= c.schedule_delay
    }

    fn running(&self) -> bool {
        self.proc.is_some()
    }
}

pub struct FakeCluster {
    pub replicas: u32,
    pub pods: BTreeMap<String, FakePod>,
    /// Pods deleted (by the controller or through the API), in order.
    pub deleted: Vec<String>,
    /// Pods deleted through the API, in order.
    pub deleted_by_api: Vec<String>,
    /// Pods given a deletion cost, in order.
    pub annotated: Vec<String>,
    created: u32,
    pub worker_env: BTreeMap<String, String>,
    /// Where pods' ready files live.
    pub dir: PathBuf,
    /// A new pod waits this long for a node, then `start_delay` more for its container.
    pub schedule_delay: Duration,
    pub start_delay: Duration,
    /// Without a readiness probe a running container is Ready at once (what deploy/ had before
    /// it gave workers a probe).
    pub probe: bool,
}

impl FakeCluster {
    pub fn new(worker_env: BTreeMap<String, String>, dir: PathBuf) -> FakeCluster {
        std::fs::create_dir_all(&dir).unwrap();
        FakeCluster {
            replicas: 0,
            pods: BTreeMap::new(),
            deleted: Vec::new(),
            deleted_by_api: Vec::new(),
            annotated: Vec::new(),
            created: 0,
            worker_env,
            dir,
            schedule_delay: Duration::ZERO,
            start_delay: Duration::ZERO,
            probe: true,
        }
    }

    /// The kubelet: starts containers whose pod is scheduled and due, and runs the readiness
    /// probes.
    pub fn kubelet(&mut self) {
        let (sched, start, probe) = (self.schedule_delay, self.start_delay, self.probe);
        for (name, p) in self.pods.iter_mut() {
            if p.proc.is_none() && p.created_at.elapsed() >= sched + start {
                let mut env = self.worker_env.clone();
                env.insert("AUTOSCALE_READY_FILE".into(), p.ready_file.display().to_string());
                p.proc = Some(spawn_function("worker", &env, name));
            }
            let alive = p
                .proc
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_none());
            let ready = alive && (!probe || p.ready_file.exists());
            match (ready, p.ready_since) {
                (true, None) => p.ready_since = Some(Instant::now()),
                (false, Some(_)) => p.ready_since = None,
                _ => {}
            }
        }
    }

    fn ready(&self, p: &FakePod) -> bool {
        p.ready_since.is_some() && p.scheduled(self)
    }

    /// The ReplicaSet controller: create pods up to `replicas`, delete the surplus in the
    /// controller's documented order — unscheduled before scheduled, Pending before Running,
    /// not Ready before Ready, lower `pod-deletion-cost` first, Ready for less time first,
    /// newer first. The cost is only a tie-breaker among pods in the same state.
    pub fn converge(&mut self) {
        self.kubelet();
        while (self.pods.len() as u32) < self.replicas {
            self.created += 1;
            let name = format!("{DEPLOYMENT}-{:05}", self.created);
            let ready_file = self.dir.join(format!("{name}.ready"));
            let _ = std::fs::remove_file(&ready_file);
            self.pods.insert(
                name,
                FakePod {
                    annotations: BTreeMap::new(),
                    created: self.created,
                    created_at: Instant::now(),
                    proc: None,
                    ready_file,
                    ready_since: None,
                },
            );
        }
        self.kubelet();
        while (self.pods.len() as u32) > self.replicas {
            let victim = self
                .pods
                .iter()
                .min_by_key(|(_, p)| {
                    let cost: i64 = p
                        .annotations
                        .get(DELETION_COST)
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    (
                        p.scheduled(self),
                        p.running(),
                        self.ready(p),
                        cost,
                        std::cmp::Reverse(p.ready_since),
                        std::cmp::Reverse(p.created),
                    )
                })
                .map(|(n, _)| n.clone())
                .unwrap();
            self.remove(&victim);
        }
    }

    fn remove(&mut self, name: &str) {
        if let Some(mut pod) = self.pods.remove(name) {
            if let Some(p) = pod.proc.as_mut() {
                terminate(p);
            }
            let _ = std::fs::remove_file(&pod.ready_file);
            self.deleted.push(name.to_string());
        }
    }

    fn scale_json(&self) -> serde_json::Value {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
               "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE},
               "spec": {"replicas": self.replicas},
               "status": {"replicas": self.pods.len(), "selector": "app=autoscale-worker"}})
    }

    fn pod_json(&self, name: &str, p: &FakePod) -> serde_json::Value {
        let scheduled = p.scheduled(self);
        let phase = if p.running() { "Running" } else { "Pending" };
        let ready = if self.ready(p) { "True" } else { "False" };
        let mut conditions =
            vec![json!({"type": "PodScheduled", "status": if scheduled { "True" } else { "False" }})];
        if scheduled {
            conditions.push(json!({"type": "Ready", "status": ready}));
        }
        let mut spec = json!({"containers": [{"name": "worker", "image": "autoscale-node"}]});
        if scheduled {
            spec["nodeName"] = json!("fake-node");
        }
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "autoscale-worker"},
                            "annotations": p.annotations},
               "spec": spec,
               "status": {"phase": phase, "conditions": conditions}})
    }

    fn not_found(what: &str) -> Response {
        Response::json(
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "reason": "NotFound", "code": 404, "message": format!("{what} not found")}),
        )
    }

    pub fn handle(&mut self, r: &Request) -> Response {
        self.converge();
        // The apps/v1 scale subresource and the core/v1 pod collection of the fake's namespace.
        let scale_path = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}/scale");
        let pods_path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
        let (scale, pods) = (scale_path.as_str(), pods_path.as_str());
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", p) if p == scale => Response::json(200, self.scale_json()),
            ("PATCH", p) if p == scale => {
                let ct = r.headers.get("content-type").cloned().unwrap_or_default();
                assert_eq!(ct, "application/merge-patch+json");
                self.replicas = r.json()["spec"]["replicas"].as_u64().expect("replicas") as u32;
                self.converge();
                Response::json(200, self.scale_json())
            }
            ("GET", p) if p == pods => {
                assert!(
                    r.query.contains("labelSelector=app%3Dautoscale-worker"),
                    "{}",
                    r.query
                );
                let items: Vec<_> = self.pods.iter().map(|(n, p)| self.pod_json(n, p)).collect();
                Response::json(
                    200,
                    json!({"apiVersion": "v1", "kind": "PodList",
                           "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            ("PATCH", p) if p.starts_with(pods) => {
                let name = p[pods.len() + 1..].to_string();
                let Some(pod) = self.pods.get_mut(&name) else {
                    return FakeCluster::not_found("pod");
                };
                if let Some(a) = r.json()["metadata"]["annotations"].as_object() {
                    for (k, v) in a {
                        pod.annotations
                            .insert(k.clone(), v.as_str().unwrap_or("").to_string());
                    }
                    if a.contains_key(DELETION_COST) {
                        self.annotated.push(name.clone());
                    }
                }
                Response::json(200, self.pod_json(&name, &self.pods[&name]))
            }
            // Deleting a pod of a ReplicaSet: the controller replaces it if the replica count
            // still asks for it.
            ("DELETE", p) if p.starts_with(pods) => {
                let name = p[pods.len() + 1..].to_string();
                if !self.pods.contains_key(&name) {
                    return FakeCluster::not_found("pod");
                }
                let body = self.pod_json(&name, &self.pods[&name]);
                self.remove(&name);
                self.deleted_by_api.push(name);
                self.converge();
                Response::json(200, body)
            }
            _ => FakeCluster::not_found("route"),
        }
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        for p in self.pods.values_mut() {
            if let Some(c) = p.proc.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
