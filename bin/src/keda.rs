//! KEDA's external scaler, served by the node (`serve --keda-port`): KEDA asks the node how
//! many workers to run and whether the farm is active, and its HPA applies the answer — the
//! node decides, KEDA acts (`--scaler keda`).
//!
//! The metric is the node's target itself. `GetMetricSpec` declares a target size of 1 per
//! replica, so the HPA KEDA creates (an `AverageValue` external metric) computes
//! `desiredReplicas = ceil(metricValue / targetSize) = ceil(target / 1) = target`: it lands
//! exactly on the node's target, whatever the current replica count (KEDA's
//! `minReplicaCount`/`maxReplicaCount` and the HPA's own behaviour settings still apply on top).
//!
//! Active means demand: tasks waiting, a worker busy, or a task pushed in the last
//! [`ACTIVE_AFTER_ARRIVAL`]. An inactive farm lets KEDA scale the Deployment to its minimum
//! (0 if so configured); the first push wakes it through `StreamIsActive`.

use crate::stats::NodeStats;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// The generated messages, server and client.
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod proto {
    tonic::include_proto!("externalscaler");
}

use proto::external_scaler_server::{ExternalScaler, ExternalScalerServer};
use proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec, MetricValue,
    ScaledObjectRef,
};

/// The metric's name, unless the trigger's metadata names another (`metricName`).
pub const METRIC: &str = "autoscale-node-target";
/// A farm that received a task this recently is active.
pub const ACTIVE_AFTER_ARRIVAL: Duration = Duration::from_secs(30);
/// How often a `StreamIsActive` stream looks at the farm.
const STREAM_POLL: Duration = Duration::from_millis(250);

/// What decides activity, kept across calls: when the last task arrived.
#[derive(Debug, Default)]
struct Activity {
    pushed: Option<u64>,
    last_arrival: Option<Instant>,
}

impl Activity {
    fn active(&mut self, stats: &NodeStats) -> bool {
        let s = stats.snapshot();
        let now = Instant::now();
        if self.pushed.is_some_and(|p| s.last.pushed_total > p) {
            self.last_arrival = Some(now);
        }
        self.pushed = Some(s.last.pushed_total);
        s.last.queue_length > 0
            || s.last.workers_busy > 0
            || self
                .last_arrival
                .is_some_and(|t| now.duration_since(t) < ACTIVE_AFTER_ARRIVAL)
    }
}

/// The gRPC service over the node's published state.
#[derive(Clone)]
pub struct KedaService {
    stats: Arc<NodeStats>,
    activity: Arc<parking_lot::Mutex<Activity>>,
    stop: CancellationToken,
}

impl KedaService {
    pub fn new(stats: Arc<NodeStats>, stop: CancellationToken) -> KedaService {
        KedaService {
            stats,
            activity: Arc::default(),
            stop,
        }
    }

    fn active(&self) -> bool {
        self.activity.lock().active(&self.stats)
    }

    fn metric_name(scaled_object: Option<&ScaledObjectRef>) -> String {
        scaled_object
            .and_then(|r| r.scaler_metadata.get("metricName"))
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| METRIC.to_string())
    }
}

type ActivityStream = Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalScaler for KedaService {
    async fn is_active(
        &self,
        _request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        Ok(Response::new(IsActiveResponse {
            result: self.active(),
        }))
    }

    type StreamIsActiveStream = ActivityStream;

    /// The current activity at once, then every change.
    async fn stream_is_active(
        &self,
        _request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let service = self.clone();
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let active = service.active();
                if last != Some(active) {
                    if tx.send(Ok(IsActiveResponse { result: active })).await.is_err() {
                        return;
                    }
                    last = Some(active);
                }
                tokio::select! {
                    _ = tokio::time::sleep(STREAM_POLL) => {}
                    _ = tx.closed() => return,
                    _ = service.stop.cancelled() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        Ok(Response::new(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: Self::metric_name(Some(request.get_ref())),
                target_size: 1,
                target_size_float: 1.0,
            }],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let snapshot = self.stats.snapshot();
        if !snapshot.ready {
            return Err(Status::unavailable("the node has not decided yet"));
        }
        let asked = &request.get_ref().metric_name;
        let name = if asked.is_empty() {
            Self::metric_name(request.get_ref().scaled_object_ref.as_ref())
        } else {
            asked.clone()
        };
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: name,
                metric_value: i64::from(snapshot.target),
                metric_value_float: f64::from(snapshot.target),
            }],
        }))
    }
}

/// Serves the external scaler on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    stats: Arc<NodeStats>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let service = KedaService::new(stats, stop.clone());
    tonic::transport::Server::builder()
        .timeout(Duration::from_secs(30))
        .concurrency_limit_per_connection(32)
        .add_service(ExternalScalerServer::new(service))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            stop.cancelled_owned(),
        )
        .await?;
    Ok(())
}
