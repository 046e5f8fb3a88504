//! The `openfaas` and `kubernetes` scalers against fakes of their remote APIs (neither an
//! OpenFaaS gateway nor a Kubernetes API server can run here). Each fake follows the
//! documented API (gateway: the OpenFaaS OpenAPI spec; Kubernetes: apps/v1 `deployments/scale`
//! and core/v1 `pods`) and plays the platform's part by starting a real `autoscale-node worker`
//! process per function or pod, so the node's SYN/ACK scale-down runs for real.
//! `#[ignore = "needs cluster"]` tests at the end run against a real cluster.

mod common;

use autoscale_node::scaler::openfaas::{
    EditionArg, FunctionDeployment, Gateway, GatewayError, Mode, OpenFaasConfig,
};
use common::fake_http::{self, Request};
use common::fake_kube::{FakeCluster, NAMESPACE};
use common::fake_openfaas::{terminate, FakeEdition, FakeGateway, PUBLIC_IMAGE};
use common::node::{scale, scale_ok, task_json, wait_for_workers};
use common::{conn, free_port, start_node_on, within};
use redis::AsyncCommands;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_autoscale-node");

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
// Fake OpenFaaS gateway (tests/common/fake_openfaas.rs)
// ---------------------------------------------------------------------------------------

fn fake_gateway() -> (Arc<Mutex<FakeGateway>>, u16) {
    FakeGateway::new(FakeEdition::Ce).serve()
}

/// `serve --scaler openfaas` against the fake on `gw_port`, with a public image.
fn openfaas_node(gw_port: u16, extra: &[&str]) -> common::ServerProcess {
    let gateway = format!("http://127.0.0.1:{gw_port}");
    let mut args = vec![
        "--scaler",
        "openfaas",
        "--openfaas-url",
        &gateway,
        "--openfaas-password",
        "secret",
        "--openfaas-image",
        PUBLIC_IMAGE,
    ];
    args.extend_from_slice(extra);
    start_node_on(0, &args)
}

fn gateway_config(port: u16, password: &str) -> OpenFaasConfig {
    OpenFaasConfig {
        url: format!("http://127.0.0.1:{port}"),
        user: "admin".into(),
        password: Some(password.into()),
        mode: Mode::Instances,
        edition: EditionArg::Auto,
        function: "worker".into(),
        image: PUBLIC_IMAGE.into(),
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
    let node = openfaas_node(gw_port, &["--policy", "manual", "--workers", "2"]);
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

    // A deleted function keeps its name for a while (the fake: 3 s): the new worker takes
    // the lowest index that is neither running nor still being deleted, and no deploy meets
    // "already exists".
    let u = url.clone();
    tokio::task::spawn_blocking(move || scale_ok(&u, "+1"))
        .await
        .unwrap();
    let ids = within(wait_for_workers(&mut c, 2)).await;
    // 1, 2 and 3 are running or still being deleted.
    assert!(ids.contains(&"4".to_string()), "{ids:?}");
    assert!(
        gw.lock().unwrap().errors.is_empty(),
        "{:?}",
        gw.lock().unwrap().errors
    );

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
    let node = openfaas_node(
        gw_port,
        &[
            "--openfaas-mode",
            "replicas",
            "--policy",
            "manual",
            "--workers",
            "3",
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
                .args(["--openfaas-image", PUBLIC_IMAGE])
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
    // Scaling a function that does not exist is a 500 from faas-netes (not a 404), reported
    // with the gateway's words after the retries.
    let err = good.scale("ghost", 2).await.unwrap_err();
    assert!(matches!(err, GatewayError::Status { status: 500, .. }), "{err}");
    assert!(err.to_string().contains("ghost"), "{err}");
    // Nothing listening: unreachable, after the retries.
    let gone = Gateway::new(gateway_config(free_port(), "secret")).unwrap();
    let err = gone.list().await.unwrap_err();
    assert!(
        matches!(err, GatewayError::Unreachable { attempts: 3, .. }),
        "{err}"
    );
}

/// The fake gateway itself follows the CE rules the scalers must live with.
#[tokio::test]
async fn the_fake_ce_gateway_clamps_caps_refuses_and_keeps_deleted_names() {
    let (gw, port) = fake_gateway();
    let g = Gateway::new(gateway_config(port, "secret")).unwrap();
    let dep = |name: &str, image: &str| {
        let mut d: FunctionDeployment = g.worker_deployment(name, Some("1"));
        d.image = image.into();
        d
    };
    // A private image: 400, not retried, the gateway's words kept.
    let err = g
        .deploy(&dep("private", "registry.example/autoscale-node:latest"))
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("public images"), "{err}");
    assert_eq!(gw.lock().unwrap().calls.len(), 1, "a 400 must not be retried");
    // Replicas are clamped to 1..5 with a 202.
    within(g.deploy(&dep("clamped", PUBLIC_IMAGE))).await.unwrap();
    within(g.scale("clamped", 9)).await.unwrap();
    assert_eq!(within(g.status("clamped")).await.unwrap().unwrap().replicas, 5);
    within(g.scale("clamped", 0)).await.unwrap();
    assert_eq!(within(g.status("clamped")).await.unwrap().unwrap().replicas, 1);
    // Async calls to a function that does not exist are accepted.
    let payload = functions::protocol::Invocation {
        program_start_time: 0.0,
        worker_id: None,
    };
    within(g.invoke_async("ghost", &payload)).await.unwrap();
    assert_eq!(gw.lock().unwrap().orphan_invocations, 1);
    // A deleted function's name stays taken for a while: "already exists", not retried blindly.
    within(g.delete("clamped")).await.unwrap();
    assert_eq!(within(g.status("clamped")).await.unwrap(), None);
    let err = within(g.deploy(&dep("clamped", PUBLIC_IMAGE))).await.unwrap_err();
    assert!(matches!(err, GatewayError::AlreadyExists(_)), "{err}");
    // The 16th function (the lingering one counts) is refused.
    for i in 1..=14 {
        within(g.deploy(&dep(&format!("f{i}"), PUBLIC_IMAGE)))
            .await
            .unwrap();
    }
    let err = within(g.deploy(&dep("f15", PUBLIC_IMAGE))).await.unwrap_err();
    assert!(matches!(err, GatewayError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("15 functions"), "{err}");
    for i in 1..=14 {
        within(g.delete(&format!("f{i}"))).await.unwrap();
    }
}

/// `serve --scaler openfaas` on CE with an image the gateway cannot pull: the node stops at
/// start with an error that names the fix, after one refused deploy (no retry loop).
#[tokio::test]
async fn openfaas_ce_refusing_a_private_image_stops_the_node_with_a_clear_error() {
    let (gw, gw_port) = fake_gateway();
    for mode in ["replicas", "instances"] {
        let gateway = format!("http://127.0.0.1:{gw_port}");
        let out = tokio::task::spawn_blocking(move || {
            let mut child = Command::new(EXE)
                .args(["serve", "--port", "0", "--http-port", "0", "--scaler", "openfaas"])
                .args(["--openfaas-url", &gateway, "--openfaas-password", "secret"])
                .args(["--openfaas-mode", mode, "--workers", "2", "--policy", "manual"])
                .env("AUTOSCALE_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let start = Instant::now();
            while child.try_wait().unwrap().is_none() {
                if start.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                    panic!("the node kept running with a refused image ({mode})");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("public registry"), "{mode}: {stderr}");
        assert!(stderr.contains("--openfaas-image"), "{mode}: {stderr}");
        assert!(!stderr.contains("panicked"), "{mode}: {stderr}");
    }
    let g = gw.lock().unwrap();
    let refusals = g.errors.iter().filter(|e| e.starts_with("400")).count();
    assert_eq!(refusals, 2, "one refused deploy per node: {:?}", g.errors);
    assert!(g.functions.is_empty());
}

/// Fetches `path` from the node's HTTP endpoint: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

/// Replicas mode on CE: 12 workers asked, 5 run, and the node says so in its status and on
/// `/metrics` instead of counting 7 "starting" workers that never come; its shutdown leaves
/// nothing running (CE cannot scale to 0: the function is deleted).
#[tokio::test]
async fn openfaas_ce_replicas_target_of_12_is_reported_capped_at_5_and_shutdown_leaves_nothing() {
    let (gw, gw_port) = fake_gateway();
    let node = openfaas_node(
        gw_port,
        &[
            "--openfaas-mode",
            "replicas",
            "--policy",
            "manual",
            "--workers",
            "12",
            "--max-workers",
            "32",
        ],
    );
    let mut c = within(conn(&node.url())).await;
    within(wait_for_workers(&mut c, 5)).await;
    let status = {
        let start = Instant::now();
        loop {
            let raw: Option<String> = c.get("autoscale:node:status").await.unwrap();
            let st: serde_json::Value = serde_json::from_str(&raw.unwrap_or_default()).unwrap_or_default();
            if st["workers"]["live"] == 5 {
                break st;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{st}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(status["target"], 12, "{status}");
    assert_eq!(status["workers"]["starting"], 0, "{status}");
    let capped = &status["workers"]["capped"];
    assert_eq!(
        (capped["requested"].as_u64(), capped["running"].as_u64()),
        (Some(12), Some(5)),
        "{status}"
    );
    assert!(
        capped["reason"]
            .as_str()
            .unwrap()
            .contains("capped by OpenFaaS CE"),
        "{status}"
    );
    let (code, metrics) = http_get(node.http_port, "/metrics");
    assert_eq!(code, 200);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("autoscale_workers_capped{"))
        .unwrap_or_else(|| panic!("no capped gauge in {metrics}"));
    assert!(
        line.contains("requested=\"12\"") && line.contains("capped by OpenFaaS CE"),
        "{line}"
    );
    assert!(line.ends_with(" 5"), "{line}");
    assert_eq!(gw.lock().unwrap().functions["worker"].replicas, 5);

    let mut node = node;
    Command::new("kill")
        .arg(node.child.id().to_string())
        .status()
        .unwrap();
    let _ = node.child.wait();
    let mut g = gw.lock().unwrap();
    assert_eq!(g.running(), 0, "workers left running after shutdown");
    assert!(
        g.functions.is_empty(),
        "{:?}",
        g.functions.keys().collect::<Vec<_>>()
    );
    assert!(!g.errors.iter().any(|e| e.starts_with("500")), "{:?}", g.errors);
}

/// Instances mode on CE through 30 scale-up/scale-down cycles: a deleted function keeps its
/// name for 3 s in the fake, so reusing the lowest index would meet "already exists" (500);
/// the scaler never does, and every scale request succeeds.
#[tokio::test]
async fn openfaas_ce_instances_survive_30_scale_cycles_without_a_500() {
    let (gw, gw_port) = fake_gateway();
    let node = openfaas_node(
        gw_port,
        &["--policy", "manual", "--workers", "2", "--max-workers", "4"],
    );
    let url = node.url();
    let mut c = within(conn(&url)).await;
    within(wait_for_workers(&mut c, 2)).await;
    for cycle in 0..30 {
        let u = url.clone();
        let up = tokio::task::spawn_blocking(move || scale(&u, "+1"))
            .await
            .unwrap();
        assert!(up.0, "cycle {cycle}: {}", up.1);
        within(wait_for_workers(&mut c, 3)).await;
        let u = url.clone();
        let down = tokio::task::spawn_blocking(move || scale(&u, "-1"))
            .await
            .unwrap();
        assert!(down.0, "cycle {cycle}: {}", down.1);
        within(wait_for_workers(&mut c, 2)).await;
    }
    {
        let g = gw.lock().unwrap();
        assert!(!g.errors.iter().any(|e| e.starts_with("500")), "{:?}", g.errors);
        let deletes = g.calls.iter().filter(|c| c.starts_with("DELETE")).count();
        assert_eq!(deletes, 30, "one deletion per cycle");
        assert!(g.max_functions_seen <= 15);
    }
    let mut node = node;
    Command::new("kill")
        .arg(node.child.id().to_string())
        .status()
        .unwrap();
    let _ = node.child.wait();
    assert_eq!(gw.lock().unwrap().running(), 0);
}

// ---------------------------------------------------------------------------------------
// Fake Kubernetes API server (tests/common/fake_kube.rs)
// ---------------------------------------------------------------------------------------

/// A fake cluster whose workers reach the broker at `broker_url`, served on a loopback port,
/// and a kubeconfig pointing at it (set as `KUBECONFIG` for the nodes this test starts).
fn fake_cluster(
    broker_url: &str,
    tag: &str,
    setup: impl FnOnce(&mut FakeCluster),
) -> (Arc<Mutex<FakeCluster>>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("autoscale-node-kube-{tag}-{}", std::process::id()));
    let mut cluster = FakeCluster::new(
        BTreeMap::from([
            ("REDIS_URL".into(), broker_url.to_string()),
            ("AUTOSCALE_ID".into(), "auto".into()),
            ("AUTOSCALE_ON_SCALE_DOWN".into(), "wait".into()),
        ]),
        dir.join("pods"),
    );
    setup(&mut cluster);
    cluster.converge();
    let cluster = Arc::new(Mutex::new(cluster));
    let cl = cluster.clone();
    let api_port = fake_http::serve(Arc::new(move |r: &Request| cl.lock().unwrap().handle(r)));
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
    (cluster, kubeconfig)
}

/// `serve --scaler kubernetes` with `kubeconfig`.
fn kube_node(port: u16, kubeconfig: &std::path::Path, extra: &[&str]) -> common::ServerProcess {
    std::env::set_var("KUBECONFIG", kubeconfig);
    let mut args = vec!["--scaler", "kubernetes", "--policy", "manual"];
    args.extend_from_slice(extra);
    start_node_on(port, &args)
}

/// The id of the worker that took the scale-down SYN: the broker records a queue's consumers.
async fn syn_consumer(c: &mut redis::aio::MultiplexedConnection) -> String {
    let stats: Vec<redis::Value> = redis::cmd("QSTATS")
        .arg("worker_control_syn_queue")
        .query_async(c)
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
    fields[at + 1]
        .strip_prefix("worker:")
        .expect("one consumer")
        .to_string()
}

/// The node's published status.
async fn node_status(c: &mut redis::aio::MultiplexedConnection) -> serde_json::Value {
    let raw: Option<String> = c.get("autoscale:node:status").await.unwrap();
    serde_json::from_str(&raw.unwrap_or_default()).unwrap_or_default()
}

#[tokio::test]
async fn kubernetes_scaler_removes_the_pod_that_acknowledged() {
    // The node's port is chosen first: the fake cluster's pods must know where the broker is.
    let node_port = free_port();
    let broker_url = format!("redis://127.0.0.1:{node_port}/");
    let (cluster, kubeconfig) = fake_cluster(&broker_url, "ack", |c| c.replicas = 1);
    let node = kube_node(node_port, &kubeconfig, &["--workers", "3"]);
    let mut c = within(conn(&broker_url)).await;
    let ids = within(wait_for_workers(&mut c, 3)).await;
    assert!(ids.iter().all(|i| i.starts_with("autoscale-worker-")), "{ids:?}");

    let u = broker_url.clone();
    let text = tokio::task::spawn_blocking(move || scale_ok(&u, "-1"))
        .await
        .unwrap();
    assert!(text.contains("every removed worker acknowledged"), "{text}");
    let survivors = within(wait_for_workers(&mut c, 2)).await;
    let acked = syn_consumer(&mut c).await;
    {
        let g = cluster.lock().unwrap();
        assert_eq!(g.replicas, 2);
        assert_eq!(
            g.deleted,
            std::slice::from_ref(&acked),
            "the ReplicaSet must delete the pod that acknowledged"
        );
        assert_eq!(g.annotated, std::slice::from_ref(&acked));
        assert!(g.deleted_by_api.is_empty(), "no correction was needed");
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
    std::fs::remove_dir_all(kubeconfig.parent().unwrap()).ok();
}

/// A scale-down right after a scale-up: the new pod is still Pending, so the ReplicaSet's
/// ranking deletes it rather than the pod whose worker acknowledged (the deletion cost only
/// breaks ties between pods in the same state). The node notices and deletes the acknowledged
/// pod itself; the farm ends at the target without the acknowledged worker.
#[tokio::test]
async fn kubernetes_scale_down_while_a_pod_starts_still_removes_the_acknowledged_pod() {
    let node_port = free_port();
    let broker_url = format!("redis://127.0.0.1:{node_port}/");
    let (cluster, kubeconfig) = fake_cluster(&broker_url, "starting", |c| c.replicas = 2);
    let node = kube_node(node_port, &kubeconfig, &["--workers", "2"]);
    let mut c = within(conn(&broker_url)).await;
    within(wait_for_workers(&mut c, 2)).await;
    // From now on, new pods take 8 s to start.
    cluster.lock().unwrap().start_delay = Duration::from_secs(8);
    let u = broker_url.clone();
    tokio::task::spawn_blocking(move || scale_ok(&u, "+1"))
        .await
        .unwrap();
    let starting = {
        let g = cluster.lock().unwrap();
        assert_eq!(g.replicas, 3);
        g.pods.keys().last().unwrap().clone()
    };
    let u = broker_url.clone();
    let text = tokio::task::spawn_blocking(move || scale_ok(&u, "-1"))
        .await
        .unwrap();
    assert!(text.contains("every removed worker acknowledged"), "{text}");
    let acked = syn_consumer(&mut c).await;
    assert_ne!(acked, starting);
    eventually("the acknowledged pod deleted", || {
        !cluster.lock().unwrap().pods.contains_key(&acked)
    })
    .await;
    {
        let g = cluster.lock().unwrap();
        assert_eq!(g.replicas, 2);
        // The controller took the starting pod first: that is what the node had to correct.
        assert_eq!(g.deleted.first(), Some(&starting), "{:?}", g.deleted);
        assert_eq!(g.deleted_by_api, std::slice::from_ref(&acked));
        assert_eq!(g.pods.len(), 2, "{:?}", g.pods.keys().collect::<Vec<_>>());
    }
    // The replacement starts, and the farm is back at 2 connected workers, none of them the
    // acknowledged one.
    let ids = within(wait_for_workers(&mut c, 2)).await;
    assert!(!ids.contains(&acked), "{ids:?}");
    drop(node);
    std::fs::remove_dir_all(kubeconfig.parent().unwrap()).ok();
}

/// Pods Ready without a readiness probe (a container that merely started) whose workers never
/// reach the broker: the node counts none of them live.
#[tokio::test]
async fn kubernetes_live_count_never_includes_a_worker_that_has_not_connected() {
    let node_port = free_port();
    // The workers are pointed at a port where no broker listens.
    let nowhere = format!("redis://127.0.0.1:{}/", free_port());
    let (cluster, kubeconfig) = fake_cluster(&nowhere, "unconnected", |c| {
        c.replicas = 2;
        c.probe = false;
    });
    let node = kube_node(node_port, &kubeconfig, &["--workers", "2"]);
    let mut c = within(conn(&node.url())).await;
    let mut samples = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let st = node_status(&mut c).await;
        if st["workers"].is_object() {
            samples += 1;
            assert_eq!(st["workers"]["live"], 0, "{st}");
            assert_eq!(st["workers"]["starting"], 2, "{st}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(samples > 5, "the node published no status");
    // The pods were Ready as far as the API said.
    let ready = {
        let g = cluster.lock().unwrap();
        g.pods.len()
    };
    assert_eq!(ready, 2);
    drop(node);
    std::fs::remove_dir_all(kubeconfig.parent().unwrap()).ok();
}

/// With the readiness probe the deploy files give workers (the ready file), a pod is Ready
/// only once its worker has connected, and a worker that stops working takes it away.
#[test]
fn a_worker_keeps_its_ready_file_exactly_while_connected() {
    let dir = std::env::temp_dir().join(format!("autoscale-node-ready-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ready");
    let port = free_port();
    let mut worker = Command::new(EXE)
        .args(["worker", "--poll-interval-s", "0.2", "--grace-period-s", "0"])
        .args(["--parent-pid", &std::process::id().to_string()])
        .args(["--ready-file", file.to_str().unwrap()])
        .env("REDIS_URL", format!("redis://127.0.0.1:{port}/"))
        .env("AUTOSCALE_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // No broker yet: not ready.
    std::thread::sleep(Duration::from_millis(800));
    assert!(!file.exists(), "ready before connecting");
    let node = start_node_on(port, &["--scaler", "none"]);
    let start = Instant::now();
    while !file.exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    terminate(&mut worker);
    assert!(!file.exists(), "the ready file outlived the worker");
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
