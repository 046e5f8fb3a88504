//! The `openfaas` and `kubernetes` scalers against fakes of their remote APIs (neither an
//! OpenFaaS gateway nor a Kubernetes API server can run here). Each fake follows the
//! documented API (gateway: the OpenFaaS OpenAPI spec; Kubernetes: apps/v1 `deployments/scale`
//! and core/v1 `pods`) and plays the platform's part by starting a real `autoscale-node worker`
//! process per function or pod, so the node's SYN/ACK scale-down runs for real.
//! `#[ignore = "needs cluster"]` tests at the end run against a real cluster.

mod common;

use autoscale_node::scaler::openfaas::{Gateway, GatewayError, Mode, OpenFaasConfig};
use common::fake_http::{self, Request, Response};
use common::node::{scale_ok, task_json, wait_for_workers};
use common::{conn, free_port, start_node_on, within};
use redis::AsyncCommands;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_autoscale-node");

/// Starts a worker the way the platform would: the deployment's environment, our binary.
fn spawn_worker(env: &BTreeMap<String, String>, hostname: &str) -> Child {
    spawn_function("worker", env, hostname)
}

/// Starts `autoscale-node ROLE` as the platform would (the watchdog's HTTP port is left out:
/// many instances share this machine).
fn spawn_function(role: &str, env: &BTreeMap<String, String>, hostname: &str) -> Child {
    Command::new(EXE)
        .args([role, "--poll-interval-s", "0.2"])
        .args(["--parent-pid", &std::process::id().to_string()])
        .envs(env)
        .env("HOSTNAME", hostname)
        .env("AUTOSCALE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn worker")
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let start = Instant::now();
    while child.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `cond` every 100 ms for up to 20 s.
async fn eventually<F: FnMut() -> bool>(what: &str, mut cond: F) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Fake OpenFaaS gateway
// ---------------------------------------------------------------------------------------

const AUTH: &str = "Basic YWRtaW46c2VjcmV0"; // admin:secret

#[derive(Default)]
struct FakeFunction {
    /// The role in `envProcess` (`autoscale-node ROLE --http ...`).
    role: String,
    env: BTreeMap<String, String>,
    replicas: u32,
    procs: Vec<Child>,
    invocations: u32,
}

#[derive(Default)]
struct FakeGateway {
    functions: BTreeMap<String, FakeFunction>,
    /// `METHOD path` of every authorised call, in order.
    calls: Vec<String>,
    /// Answer the next N calls with 500 (to exercise retries).
    fail_next: u32,
}

impl FakeGateway {
    /// Brings the function's processes to its replica count (the provider's job).
    fn converge(&mut self, name: &str) {
        let f = self.functions.get_mut(name).unwrap();
        while (f.procs.len() as u32) < f.replicas {
            let host = format!("{name}-{}", f.procs.len() + 1 + f.invocations as usize * 100);
            f.procs.push(spawn_function(&f.role, &f.env, &host));
        }
        while (f.procs.len() as u32) > f.replicas {
            let mut p = f.procs.pop().unwrap();
            terminate(&mut p);
        }
    }

    fn status(name: &str, f: &mut FakeFunction) -> serde_json::Value {
        let available = f
            .procs
            .iter_mut()
            .map(|p| p.try_wait().ok().flatten().is_none())
            .filter(|alive| *alive)
            .count();
        json!({"name": name, "image": "autoscale-node:latest", "namespace": "openfaas-fn",
               "replicas": f.replicas, "availableReplicas": available, "invocationCount": f.invocations})
    }

    fn handle(&mut self, r: &Request) -> Response {
        if r.headers.get("authorization").map(String::as_str) != Some(AUTH) {
            return Response::empty(401);
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Response::empty(500);
        }
        self.calls.push(format!("{} {}", r.method, r.path));
        let body = r.json();
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/system/functions") => {
                let all: Vec<_> = self
                    .functions
                    .iter_mut()
                    .map(|(n, f)| FakeGateway::status(n, f))
                    .collect();
                Response::json(200, json!(all))
            }
            ("POST", "/system/functions") => {
                let (Some(name), Some(_image)) = (body["service"].as_str(), body["image"].as_str()) else {
                    return Response::empty(400);
                };
                let env: BTreeMap<String, String> =
                    serde_json::from_value(body["envVars"].clone()).unwrap_or_default();
                let process: Vec<&str> = body["envProcess"].as_str().unwrap_or("").split(' ').collect();
                assert_eq!(process[0], "autoscale-node", "{body}");
                self.functions.insert(
                    name.to_string(),
                    FakeFunction {
                        role: process[1].to_string(),
                        env,
                        replicas: 1,
                        ..Default::default()
                    },
                );
                self.converge(name);
                Response::empty(202)
            }
            ("DELETE", "/system/functions") => {
                let name = body["functionName"].as_str().unwrap_or("").to_string();
                match self.functions.remove(&name) {
                    Some(mut f) => {
                        for p in &mut f.procs {
                            terminate(p);
                        }
                        Response::empty(200)
                    }
                    None => Response::empty(404),
                }
            }
            ("GET", p) if p.starts_with("/system/function/") => {
                let name = &p["/system/function/".len()..];
                match self.functions.get_mut(name) {
                    Some(f) => Response::json(200, FakeGateway::status(name, f)),
                    None => Response::empty(404),
                }
            }
            ("POST", p) if p.starts_with("/system/scale-function/") => {
                let name = p["/system/scale-function/".len()..].to_string();
                assert_eq!(body["serviceName"], json!(name));
                match self.functions.get_mut(&name) {
                    Some(f) => {
                        f.replicas = body["replicas"].as_u64().unwrap() as u32;
                        self.converge(&name);
                        Response::empty(202)
                    }
                    None => Response::empty(404),
                }
            }
            ("POST", p) if p.starts_with("/async-function/") => {
                match self.functions.get_mut(&p["/async-function/".len()..]) {
                    Some(f) => {
                        f.invocations += 1;
                        Response::empty(202)
                    }
                    None => Response::empty(404),
                }
            }
            _ => Response::empty(404),
        }
    }
}

fn fake_gateway() -> (Arc<Mutex<FakeGateway>>, u16) {
    let state = Arc::new(Mutex::new(FakeGateway::default()));
    let s = state.clone();
    let port = fake_http::serve(Arc::new(move |r: &Request| s.lock().unwrap().handle(r)));
    (state, port)
}

fn gateway_config(port: u16, password: &str) -> OpenFaasConfig {
    OpenFaasConfig {
        url: format!("http://127.0.0.1:{port}"),
        user: "admin".into(),
        password: Some(password.into()),
        mode: Mode::Instances,
        function: "worker".into(),
        image: "autoscale-node:latest".into(),
        namespace: None,
        worker_redis_url: "redis://127.0.0.1:1/".into(),
        program_start: 0.0,
        attempts: 3,
        backoff: Duration::from_millis(10),
    }
}

#[tokio::test]
async fn openfaas_instances_deploys_invokes_and_deletes_exactly_the_acknowledging_worker() {
    let (gw, gw_port) = fake_gateway();
    let node = start_node_on(
        0,
        &[
            "--scaler",
            "openfaas",
            "--policy",
            "manual",
            "--workers",
            "2",
            "--openfaas-url",
            &format!("http://127.0.0.1:{gw_port}"),
            "--openfaas-password",
            "secret",
        ],
    );
    let url = node.url();
    let mut c = within(conn(&url)).await;
    assert_eq!(within(wait_for_workers(&mut c, 2)).await, ["1", "2"]);
    eventually("both functions invoked once", || {
        let g = gw.lock().unwrap();
        g.functions.len() == 2 && g.functions.values().all(|f| f.invocations == 1)
    })
    .await;
    {
        let g = gw.lock().unwrap();
        assert_eq!(g.functions.keys().collect::<Vec<_>>(), ["worker-1", "worker-2"]);
        let f = &g.functions["worker-1"];
        assert_eq!(f.env["AUTOSCALE_ID"], "1");
        assert_eq!(f.env["REDIS_URL"], url);
    }

    let u = url.clone();
    tokio::task::spawn_blocking(move || scale_ok(&u, "+1"))
        .await
        .unwrap();
    assert_eq!(within(wait_for_workers(&mut c, 3)).await, ["1", "2", "3"]);

    let u = url.clone();
    let text = tokio::task::spawn_blocking(move || scale_ok(&u, "-2"))
        .await
        .unwrap();
    assert!(text.contains("every removed worker acknowledged"), "{text}");
    // The functions left deployed are exactly the workers still connected: the node deleted
    // the two that acknowledged, not two others.
    eventually("two deletions", || {
        gw.lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.starts_with("DELETE"))
            .count()
            == 2
    })
    .await;
    let left = within(wait_for_workers(&mut c, 1)).await;
    let deployed: Vec<String> = gw.lock().unwrap().functions.keys().cloned().collect();
    assert_eq!(deployed, [format!("worker-{}", left[0])]);

    // The lowest free index is reused.
    let u = url.clone();
    tokio::task::spawn_blocking(move || scale_ok(&u, "+1"))
        .await
        .unwrap();
    let ids = within(wait_for_workers(&mut c, 2)).await;
    let expected_new = if left[0] == "1" { "2" } else { "1" };
    assert!(ids.contains(&expected_new.to_string()), "{ids:?}");

    // A node that stops takes its functions with it.
    let mut node = node;
    Command::new("kill")
        .arg(node.child.id().to_string())
        .status()
        .unwrap();
    let _ = node.child.wait();
    assert!(
        gw.lock().unwrap().functions.is_empty(),
        "functions left after shutdown"
    );
}

#[tokio::test]
async fn openfaas_replicas_mode_deploys_one_function_and_scales_it() {
    let (gw, gw_port) = fake_gateway();
    let node = start_node_on(
        0,
        &[
            "--scaler",
            "openfaas",
            "--openfaas-mode",
            "replicas",
            "--policy",
            "manual",
            "--workers",
            "3",
            "--openfaas-url",
            &format!("http://127.0.0.1:{gw_port}"),
            "--openfaas-password",
            "secret",
        ],
    );
    let mut c = within(conn(&node.url())).await;
    within(wait_for_workers(&mut c, 3)).await;
    {
        let g = gw.lock().unwrap();
        assert_eq!(g.functions.keys().collect::<Vec<_>>(), ["worker"]);
        assert_eq!(g.functions["worker"].env["AUTOSCALE_ID"], "auto");
        assert!(
            g.calls
                .contains(&"POST /system/scale-function/worker".to_string()),
            "{:?}",
            g.calls
        );
    }
    let u = node.url();
    tokio::task::spawn_blocking(move || scale_ok(&u, "-1"))
        .await
        .unwrap();
    within(wait_for_workers(&mut c, 2)).await;
    assert_eq!(gw.lock().unwrap().functions["worker"].replicas, 2);
}

/// `run --scaler openfaas`: the emitter, the collector and the workers are deployed through the
/// gateway (as the original's workflow controller did), nothing is lost, and the run removes
/// its functions at the end.
#[tokio::test]
async fn run_on_openfaas_deploys_every_function_through_the_gateway() {
    let (gw, gw_port) = fake_gateway();
    let dir = std::env::temp_dir().join(format!("autoscale-node-run-faas-{}", std::process::id()));
    let gateway = format!("http://127.0.0.1:{gw_port}");
    let out = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            Command::new(EXE)
                .args(["run", "--scaler", "openfaas", "--openfaas-url", &gateway])
                .args([
                    "--openfaas-password",
                    "secret",
                    "--tasks",
                    "60",
                    "--time-scale",
                    "0.05",
                ])
                .args(["--workers", "3", "--policy", "reactive-maximum"])
                .args(["--report", dir.to_str().unwrap()])
                .env("AUTOSCALE_LOG", "warn")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(
        report["completed"].as_u64().unwrap() + report["dead_lettered"].as_u64().unwrap(),
        report["tasks"].as_u64().unwrap()
    );
    let g = gw.lock().unwrap();
    for f in ["emitter", "collector", "worker-1", "worker-2", "worker-3"] {
        assert!(
            g.calls.iter().any(|c| c == "POST /system/functions")
                && g.calls.contains(&format!("POST /async-function/{f}")),
            "{f} was not deployed and invoked: {:?}",
            g.calls
        );
    }
    assert!(
        g.functions.is_empty(),
        "functions left: {:?}",
        g.functions.keys().collect::<Vec<_>>()
    );
    drop(g);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn gateway_errors_are_clear_and_transient_ones_are_retried() {
    let (gw, port) = fake_gateway();
    // Wrong password: a 401 names the fix.
    let bad = Gateway::new(gateway_config(port, "wrong")).unwrap();
    let err = bad.list().await.unwrap_err();
    assert!(matches!(err, GatewayError::Unauthorized(_)), "{err}");
    assert!(err.to_string().contains("OPENFAAS_PASSWORD"), "{err}");

    let good = Gateway::new(gateway_config(port, "secret")).unwrap();
    // 404 on a status read means "no such function".
    assert_eq!(good.status("nope").await.unwrap(), None);
    // Two 500s, then success: retried within the 3 attempts.
    gw.lock().unwrap().fail_next = 2;
    assert_eq!(good.list().await.unwrap(), vec![]);
    // Three 500s: the error says what failed and how.
    gw.lock().unwrap().fail_next = 3;
    let err = good.list().await.unwrap_err();
    assert!(matches!(err, GatewayError::Status { status: 500, .. }), "{err}");
    // Scaling a function that does not exist is a 404, reported as such.
    let err = good.scale("ghost", 2).await.unwrap_err();
    assert!(matches!(err, GatewayError::NotFound(_)), "{err}");
    // Nothing listening: unreachable, after the retries.
    let gone = Gateway::new(gateway_config(free_port(), "secret")).unwrap();
    let err = gone.list().await.unwrap_err();
    assert!(
        matches!(err, GatewayError::Unreachable { attempts: 3, .. }),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Fake Kubernetes API server
// ---------------------------------------------------------------------------------------

/// Where the fake cluster keeps the worker Deployment (the kubeconfig's namespace is this too).
const NAMESPACE: &str = "farm";
const DEPLOYMENT: &str = "autoscale-worker";

struct FakePod {
    annotations: BTreeMap<String, String>,
    created: u32,
    proc: Child,
}

#[derive(Default)]
struct FakeCluster {
    replicas: u32,
    pods: BTreeMap<String, FakePod>,
    /// Pods deleted, in order.
    deleted: Vec<String>,
    /// Pods given a deletion cost, in order.
    annotated: Vec<String>,
    created: u32,
    worker_env: BTreeMap<String, String>,
}

impl FakeCluster {
    /// The ReplicaSet controller: create pods up to `replicas`, delete the surplus — lowest
    /// `pod-deletion-cost` first, then (unlike the real one, to catch a missing annotation)
    /// the newest.
    fn converge(&mut self) {
        while (self.pods.len() as u32) < self.replicas {
            self.created += 1;
            let name = format!("autoscale-worker-{:05}", self.created);
            let proc = spawn_worker(&self.worker_env, &name);
            self.pods.insert(
                name,
                FakePod {
                    annotations: BTreeMap::new(),
                    created: self.created,
                    proc,
                },
            );
        }
        while (self.pods.len() as u32) > self.replicas {
            let victim = self
                .pods
                .iter()
                .min_by_key(|(_, p)| {
                    let cost: i64 = p
                        .annotations
                        .get("controller.kubernetes.io/pod-deletion-cost")
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    (cost, std::cmp::Reverse(p.created))
                })
                .map(|(n, _)| n.clone())
                .unwrap();
            let mut pod = self.pods.remove(&victim).unwrap();
            terminate(&mut pod.proc);
            self.deleted.push(victim);
        }
    }

    fn scale_json(&self) -> serde_json::Value {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
               "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE},
               "spec": {"replicas": self.replicas},
               "status": {"replicas": self.pods.len(), "selector": "app=autoscale-worker"}})
    }

    fn pod_json(name: &str, p: &FakePod) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "autoscale-worker"},
                            "annotations": p.annotations},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    }

    fn handle(&mut self, r: &Request) -> Response {
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
                let items: Vec<_> = self
                    .pods
                    .iter()
                    .map(|(n, p)| FakeCluster::pod_json(n, p))
                    .collect();
                Response::json(
                    200,
                    json!({"apiVersion": "v1", "kind": "PodList",
                                           "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            ("PATCH", p) if p.starts_with(pods) => {
                let name = &p[pods.len() + 1..];
                let Some(pod) = self.pods.get_mut(name) else {
                    return Response::json(
                        404,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                      "reason": "NotFound", "code": 404, "message": "pod not found"}),
                    );
                };
                if let Some(a) = r.json()["metadata"]["annotations"].as_object() {
                    if a.contains_key("controller.kubernetes.io/pod-deletion-cost") {
                        self.annotated.push(name.to_string());
                    }
                    for (k, v) in a {
                        pod.annotations
                            .insert(k.clone(), v.as_str().unwrap_or("").to_string());
                    }
                }
                Response::json(200, FakeCluster::pod_json(name, &self.pods[name]))
            }
            _ => Response::json(
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "reason": "NotFound", "code": 404, "message": "no route"}),
            ),
        }
    }
}

#[tokio::test]
async fn kubernetes_scaler_removes_the_pod_that_acknowledged() {
    // The node's port is chosen first: the fake cluster's pods must know where the broker is.
    let node_port = free_port();
    let broker_url = format!("redis://127.0.0.1:{node_port}/");
    let cluster = Arc::new(Mutex::new(FakeCluster {
        replicas: 1,
        worker_env: BTreeMap::from([
            ("REDIS_URL".into(), broker_url.clone()),
            ("AUTOSCALE_ID".into(), "auto".into()),
            ("AUTOSCALE_ON_SCALE_DOWN".into(), "wait".into()),
        ]),
        ..Default::default()
    }));
    cluster.lock().unwrap().converge();
    let cl = cluster.clone();
    let api_port = fake_http::serve(Arc::new(move |r: &Request| cl.lock().unwrap().handle(r)));
    let dir = std::env::temp_dir().join(format!("autoscale-node-kube-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{api_port}\n\
             users:\n- name: fake\n  user:\n    token: fake-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {NAMESPACE}\n\
             current-context: fake\n"
        ),
    )
    .unwrap();
    std::env::set_var("KUBECONFIG", &kubeconfig);
    let node = start_node_on(
        node_port,
        &["--scaler", "kubernetes", "--policy", "manual", "--workers", "3"],
    );
    let mut c = within(conn(&broker_url)).await;
    let ids = within(wait_for_workers(&mut c, 3)).await;
    assert!(ids.iter().all(|i| i.starts_with("autoscale-worker-")), "{ids:?}");

    let u = broker_url.clone();
    let text = tokio::task::spawn_blocking(move || scale_ok(&u, "-1"))
        .await
        .unwrap();
    assert!(text.contains("every removed worker acknowledged"), "{text}");
    let survivors = within(wait_for_workers(&mut c, 2)).await;
    // Who took the SYN (and so acknowledged): the broker records the consumers of a queue.
    let stats: Vec<redis::Value> = redis::cmd("QSTATS")
        .arg("worker_control_syn_queue")
        .query_async(&mut c)
        .await
        .unwrap();
    fn flatten(v: &redis::Value, out: &mut Vec<String>) {
        match v {
            redis::Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
            redis::Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
            other => out.push(format!("{other:?}")),
        }
    }
    let mut fields = Vec::new();
    stats.iter().for_each(|v| flatten(v, &mut fields));
    let at = fields
        .iter()
        .position(|f| f == "consumers")
        .expect("consumers field");
    let acked = fields[at + 1]
        .strip_prefix("worker:")
        .expect("one consumer")
        .to_string();
    {
        let g = cluster.lock().unwrap();
        assert_eq!(g.replicas, 2);
        assert_eq!(
            g.deleted,
            std::slice::from_ref(&acked),
            "the ReplicaSet must delete the pod that acknowledged"
        );
        assert_eq!(g.annotated, std::slice::from_ref(&acked));
    }
    assert!(!survivors.contains(&acked), "{survivors:?}");

    // The survivors did not acknowledge anything: they still take work.
    for i in 0..4 {
        let _: () = c
            .lpush("worker_queue", task_json(&format!("t-{i}"), 0.01))
            .await
            .unwrap();
    }
    let start = Instant::now();
    loop {
        let done: u64 = c.llen("result_queue").await.unwrap();
        if done == 4 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "survivors did not process the tasks"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(node);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
#[ignore = "needs cluster: an OpenFaaS gateway at OPENFAAS_URL with OPENFAAS_PASSWORD"]
async fn openfaas_gateway_on_a_real_cluster_lists_functions() {
    let url = std::env::var("OPENFAAS_URL").expect("OPENFAAS_URL");
    let mut cfg = gateway_config(0, &std::env::var("OPENFAAS_PASSWORD").expect("OPENFAAS_PASSWORD"));
    cfg.url = url;
    Gateway::new(cfg).unwrap().list().await.expect("list functions");
}

#[tokio::test]
#[ignore = "needs cluster: kubeconfig with the autoscale-worker Deployment of deploy/kubernetes"]
async fn kubernetes_scaler_on_a_real_cluster_reads_the_worker_scale() {
    use autoscale_node::scaler::kubernetes::{KubernetesConfig, KubernetesScaler};
    KubernetesScaler::new(KubernetesConfig {
        namespace: std::env::var("AUTOSCALE_K8S_NAMESPACE").ok(),
        deployment: "autoscale-worker".into(),
        selector: "app=autoscale-worker".into(),
    })
    .await
    .expect("read the worker Deployment's scale");
}

/// A function started by a node that died before the function looked at its parent still
/// stops: it is told its node's pid, not left to notice a change it can no longer see.
#[cfg(unix)]
#[test]
fn a_function_whose_node_is_already_gone_stops_at_once() {
    // No broker listens on this port: the worker would retry its connection for ever.
    let mut child = Command::new(EXE)
        .args(["worker", "--poll-interval-s", "0.2", "--grace-period-s", "0"])
        // A pid that is not this worker's parent: its "node" is gone before it starts.
        .args(["--parent-pid", &u32::MAX.to_string()])
        .env("REDIS_URL", format!("redis://127.0.0.1:{}/", free_port()))
        .env("AUTOSCALE_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn worker");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the orphaned worker kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
