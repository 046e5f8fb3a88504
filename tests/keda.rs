//! The KEDA external scaler, through a real gRPC client (tonic) against the real binary:
//! the metric spec, the metric equal to the node's target, and activity pushed on change.
//! (KEDA itself cannot run here: it needs a Kubernetes cluster.)

mod common;

use autoscale_node::keda::proto::external_scaler_client::ExternalScalerClient;
use autoscale_node::keda::proto::{GetMetricsRequest, ScaledObjectRef};
use common::node::task_json;
use common::{conn, within};
use redis::AsyncCommands;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `serve ARGS` with its Redis and KEDA ports, killed when dropped.
struct Node {
    child: Child,
    redis_port: u16,
    keda_port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
        .args(["serve", "--port", "0", "--http-port", "0", "--keda-port", "0"])
        .args(args)
        .env("AUTOSCALE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn autoscale-node");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let port = |line: &str| line.rsplit(':').next().and_then(|p| p.trim().parse::<u16>().ok());
        let mut redis = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("autoscale-node listening on") {
                redis = port(&line);
            }
            if line.starts_with("autoscale-node keda on") {
                let _ = tx.send((redis, port(&line)));
            }
        }
    });
    let (redis, keda) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the node did not start");
    Node {
        child,
        redis_port: redis.unwrap(),
        keda_port: keda.unwrap(),
    }
}

fn scaled_object() -> ScaledObjectRef {
    ScaledObjectRef {
        name: "workers".into(),
        namespace: "farm".into(),
        scaler_metadata: Default::default(),
    }
}

/// The node's published target.
async fn node_target(c: &mut redis::aio::MultiplexedConnection) -> Option<i64> {
    let raw: Option<String> = within(c.get("autoscale:node:status")).await.unwrap();
    raw.and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok()?["target"].as_i64())
}

#[tokio::test]
async fn keda_reads_the_nodes_target_and_hears_when_the_farm_wakes() {
    let node = start(&[
        "--scaler",
        "keda",
        "--policy",
        "queue-proportional:5",
        "--decision-period-s",
        "1",
        "--workers",
        "1",
    ]);
    let mut c = within(conn(&format!("redis://127.0.0.1:{}/", node.redis_port))).await;
    let mut keda = within(ExternalScalerClient::connect(format!(
        "http://127.0.0.1:{}",
        node.keda_port
    )))
    .await
    .unwrap();

    // The spec: one metric, a target of 1 per replica (so the HPA lands on the value).
    let spec = within(keda.get_metric_spec(scaled_object()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(spec.metric_specs.len(), 1);
    assert_eq!(spec.metric_specs[0].metric_name, "autoscale-node-target");
    assert_eq!(spec.metric_specs[0].target_size, 1);
    // A trigger may name its metric.
    let mut named = scaled_object();
    named
        .scaler_metadata
        .insert("metricName".into(), "farm-workers".into());
    let spec = within(keda.get_metric_spec(named)).await.unwrap().into_inner();
    assert_eq!(spec.metric_specs[0].metric_name, "farm-workers");

    // The metric is the node's target, once the node has decided.
    let metric = |keda: &mut ExternalScalerClient<tonic::transport::Channel>| {
        let mut keda = keda.clone();
        async move {
            keda.get_metrics(GetMetricsRequest {
                scaled_object_ref: Some(scaled_object()),
                metric_name: "autoscale-node-target".into(),
            })
            .await
            .map(|r| r.into_inner().metric_values[0].metric_value)
        }
    };
    let start = Instant::now();
    let idle_target = loop {
        if let (Ok(value), Some(target)) = (within(metric(&mut keda)).await, node_target(&mut c).await) {
            if value == target {
                break value;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no metric matching the node's target"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Idle: inactive, and the stream says so first.
    assert!(
        !within(keda.is_active(scaled_object()))
            .await
            .unwrap()
            .into_inner()
            .result
    );
    let mut stream = within(keda.stream_is_active(scaled_object()))
        .await
        .unwrap()
        .into_inner();
    let first = within(stream.message()).await.unwrap().unwrap();
    assert!(!first.result);

    // Work arrives: the stream pushes "active" and the metric follows the node's new target.
    let tasks: Vec<String> = (0..40).map(|i| task_json(&format!("k{i}"), 5.0)).collect();
    let _: () = within(c.lpush("worker_queue", &tasks)).await.unwrap();
    let woke = within(stream.message()).await.unwrap().unwrap();
    assert!(woke.result);
    assert!(
        within(keda.is_active(scaled_object()))
            .await
            .unwrap()
            .into_inner()
            .result
    );
    let start = Instant::now();
    loop {
        let value = within(metric(&mut keda)).await.unwrap();
        let target = node_target(&mut c).await;
        if value > idle_target && Some(value) == target {
            // queue-proportional:5 with 40 tasks waiting asks for 8 workers.
            assert_eq!(value, 8);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "metric {value}, node target {target:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn keda_needs_its_port_and_only_with_its_scaler() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_autoscale-node"))
            .args(["serve", "--port", "0", "--http-port", "0"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--scaler", "keda"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --keda-port"));
    let out = run(&["--scaler", "local", "--keda-port", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only with --scaler keda"));
}
