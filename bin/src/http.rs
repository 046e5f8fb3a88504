//! The node's HTTP endpoint (axum): `/metrics` (Prometheus text format 0.0.4), the live
//! dashboard `/` and its event stream `/events`, and the probes `/healthz` and `/readyz`. The
//! server under it, with its limits and timeouts, is `functions::http::serve`.
//!
//! Access (see docs/security.md): with a password set, `/metrics` and the dashboard need it, as
//! a bearer token or as the password of HTTP basic auth (any user name); without one, protected
//! mode limits them to loopback clients, as the broker does. The probes stay open: they
//! disclose nothing but "up" and "ready", and a kubelet probe cannot carry a Secret.

mod exposition;

use crate::stats::NodeStats;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use functions::http::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::StreamExt;

pub use exposition::Scrape;

/// Who may read the protected endpoints.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// The broker's password (`requirepass`); when set, it is required.
    pub password: Option<String>,
    /// Without a password: refuse non-loopback clients (the broker's `protected-mode`).
    pub protected_mode: bool,
}

/// Why a request for a protected endpoint is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: the password is required and was not presented.
    Unauthenticated,
    /// 403: no password is set and the client is not on loopback.
    ProtectedMode,
}

impl Access {
    /// `None` if a request with this `Authorization` header from `peer` may proceed (an unknown
    /// peer counts as remote).
    pub fn check(&self, authorization: Option<&str>, peer: Option<&SocketAddr>) -> Option<Refusal> {
        match &self.password {
            Some(password) => {
                let presented = authorization.and_then(credential);
                if presented.is_some_and(|p| constant_time_eq(p.as_bytes(), password.as_bytes())) {
                    None
                } else {
                    Some(Refusal::Unauthenticated)
                }
            }
            None if self.protected_mode && !peer.is_some_and(broker::state::is_local_peer) => {
                Some(Refusal::ProtectedMode)
            }
            None => None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthenticated => {
                let mut response = json(
                    401,
                    r#"{"error":"authentication required: send the node's password as a bearer token or with basic auth"}"#,
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Basic realm=\"autoscale-node\", charset=\"UTF-8\""),
                );
                response
            }
            Refusal::ProtectedMode => json(
                403,
                r#"{"error":"protected mode: without a password only loopback clients may read this; set --requirepass or --protected-mode no"}"#,
            ),
        }
    }
}

/// The password in an `Authorization` header: `Bearer TOKEN`, or `Basic base64(user:password)`.
fn credential(header: &str) -> Option<String> {
    let (scheme, value) = header.trim().split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(value).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text.split_once(':').map(|(_, password)| password.to_string());
    }
    None
}

/// Compares without stopping at the first difference, so response time does not reveal how
/// much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the endpoint reads: the node's counters and, when embedded, the broker.
#[derive(Clone)]
pub struct Endpoint {
    pub stats: Arc<NodeStats>,
    pub broker: Option<broker::Broker>,
    pub access: Access,
}

/// How often the dashboard's event stream sends the node's state.
const EVENT_PERIOD: Duration = Duration::from_millis(500);

impl Endpoint {
    /// The routes; serve them with `functions::http::serve`.
    pub fn router(self) -> Router {
        let node = Arc::new(self);
        // The dashboard and the exposition: what the node knows, for people and for scrapers.
        let protected = Router::new()
            .route("/metrics", get(metrics))
            .route("/", get(dashboard))
            .route("/dashboard", get(dashboard))
            .route("/events", get(events))
            .route_layer(axum::middleware::from_fn_with_state(node.clone(), require_access));
        let probes = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz));
        protected
            .merge(probes)
            .fallback(|| async {
                json(
                    404,
                    r#"{"error":"not found; try / (the dashboard), /metrics, /healthz or /readyz"}"#,
                )
            })
            .with_state(node)
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        Scrape::take(&self.stats, self.broker.as_ref()).render()
    }
}

async fn require_access(State(node): State<Arc<Endpoint>>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match node.access.check(authorization, peer.as_ref()) {
        Some(refusal) => refusal.into_response(),
        None => next.run(request).await,
    }
}

async fn metrics(State(node): State<Arc<Endpoint>>) -> Response {
    ([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], node.render()).into_response()
}

async fn dashboard() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], DASHBOARD).into_response()
}

/// Server-sent events: the node's state every [`EVENT_PERIOD`] until the client goes away or
/// the server stops (a client that stops reading is dropped by the server's write deadline).
async fn events(State(node): State<Arc<Endpoint>>) -> Response {
    let mut every = tokio::time::interval(EVENT_PERIOD);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let retry = tokio_stream::once(Event::default().retry(Duration::from_secs(2)));
    let states = tokio_stream::wrappers::IntervalStream::new(every)
        .map(move |_| Event::default().data(dashboard_state(&node.stats, node.broker.as_ref())));
    Sse::new(retry.chain(states).map(Ok::<_, std::convert::Infallible>)).into_response()
}

/// Alive: the process answers.
async fn healthz() -> Response {
    json(200, r#"{"status":"ok"}"#)
}

/// Ready: the broker accepts connections and the control loop has run.
async fn readyz(State(node): State<Arc<Endpoint>>) -> Response {
    if node.stats.snapshot().ready {
        json(200, r#"{"status":"ready"}"#)
    } else {
        json(503, r#"{"status":"starting"}"#)
    }
}

/// The dashboard page: one self-contained file (no CDN), charts drawn on canvases by its own
/// script from `/events`.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Queues the dashboard lists at most (the longest first).
const DASHBOARD_QUEUES: usize = 20;

/// One dashboard event: the node's state now, as JSON (the page derives rates from the
/// differences between events).
fn dashboard_state(stats: &NodeStats, broker: Option<&broker::Broker>) -> String {
    let s = stats.snapshot();
    // The queues /metrics lists (real queues, capped), not every counter the registry holds.
    let mut queues: Vec<(String, usize, u64)> = broker
        .map(|b| {
            b.listed_queues()
                .0
                .into_iter()
                .map(|q| (String::from_utf8_lossy(&q.label()).into_owned(), q.db, q.length))
                .collect()
        })
        .unwrap_or_default();
    queues.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    queues.truncate(DASHBOARD_QUEUES);
    let unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    serde_json::json!({
        "unix_s": unix_s,
        "ready": s.ready,
        "scaler": s.scaler,
        "policy": s.policy,
        "target": s.target,
        "live": s.workers.live,
        "starting": s.workers.starting,
        "leaving": s.workers.leaving,
        "busy": s.last.workers_busy,
        "queue": s.last.queue_length,
        "oldest_age_s": s.last.oldest_age_s,
        "queued_work_s": s.last.queued_work_s,
        "pushed": s.last.pushed_total,
        "popped": s.last.popped_total,
        "completed": s.last.completed_total,
        "qos_met": s.last.qos_met_total,
        "decisions": s.decisions,
        "scale_ups": s.scale_ups,
        "scale_downs": s.scale_downs,
        "scaler_errors": s.scaler_errors,
        "requeued": s.requeued_tasks,
        "queues": queues
            .iter()
            .map(|(name, db, length)| serde_json::json!({"name": name, "db": db, "length": length}))
            .collect::<Vec<_>>(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn endpoint(access: Access) -> Endpoint {
        Endpoint {
            stats: Arc::new(NodeStats::default()),
            broker: None,
            access,
        }
    }

    /// The status `router` answers `method path` from `peer` with.
    async fn status(e: &Endpoint, method: &str, path: &str, peer: &str, auth: Option<&str>) -> u16 {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if let Some(a) = auth {
            request = request.header(header::AUTHORIZATION, a);
        }
        let mut request = request.body(Body::empty()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = tower::ServiceExt::oneshot(e.clone().router(), request)
            .await
            .unwrap();
        response.status().as_u16()
    }

    #[tokio::test]
    async fn readiness_follows_the_control_loop() {
        let e = endpoint(Access::default());
        assert_eq!(status(&e, "GET", "/readyz", "127.0.0.1:1", None).await, 503);
        e.stats.update(|s| s.ready = true);
        assert_eq!(status(&e, "GET", "/readyz", "127.0.0.1:1", None).await, 200);
        assert_eq!(status(&e, "GET", "/healthz", "127.0.0.1:1", None).await, 200);
        assert_eq!(status(&e, "HEAD", "/healthz", "127.0.0.1:1", None).await, 200);
        assert_eq!(status(&e, "POST", "/metrics", "127.0.0.1:1", None).await, 405);
        assert_eq!(status(&e, "GET", "/nope", "127.0.0.1:1", None).await, 404);
    }

    #[tokio::test]
    async fn metrics_and_the_dashboard_need_the_password_when_one_is_set() {
        let e = endpoint(Access {
            password: Some("s3cret".into()),
            protected_mode: true,
        });
        let peer = "10.0.0.7:5000";
        for path in ["/metrics", "/", "/events"] {
            assert_eq!(status(&e, "GET", path, peer, None).await, 401, "{path}");
        }
        assert_eq!(
            status(&e, "GET", "/metrics", peer, Some("Bearer wrong")).await,
            401
        );
        assert_eq!(
            status(&e, "GET", "/metrics", peer, Some("Bearer s3cret")).await,
            200
        );
        assert_eq!(status(&e, "GET", "/", peer, Some("Bearer s3cret")).await, 200);
        // "prometheus:s3cret" and "default:wrong" in base64.
        let basic = Some("Basic cHJvbWV0aGV1czpzM2NyZXQ=");
        assert_eq!(status(&e, "GET", "/metrics", peer, basic).await, 200);
        for wrong in ["Basic ZGVmYXVsdDp3cm9uZw==", "Basic !!!", "Digest s3cret"] {
            assert_eq!(e.access.check(Some(wrong), None), Some(Refusal::Unauthenticated));
        }
        // Probes stay open.
        assert_eq!(status(&e, "GET", "/healthz", peer, None).await, 200);
    }

    #[test]
    fn a_refusal_asks_for_basic_auth() {
        let response = Refusal::Unauthenticated.into_response();
        assert_eq!(response.status().as_u16(), 401);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(Refusal::ProtectedMode.into_response().status().as_u16(), 403);
    }

    #[tokio::test]
    async fn protected_mode_keeps_metrics_on_loopback_without_a_password() {
        let protected = endpoint(Access {
            password: None,
            protected_mode: true,
        });
        assert_eq!(
            status(&protected, "GET", "/metrics", "127.0.0.1:4000", None).await,
            200
        );
        assert_eq!(
            status(&protected, "GET", "/metrics", "[::1]:4000", None).await,
            200
        );
        assert_eq!(
            status(&protected, "GET", "/metrics", "127.0.0.2:4000", None).await,
            403
        );
        assert_eq!(status(&protected, "GET", "/", "10.1.2.3:4000", None).await, 403);
        // An address nobody told us is not trusted.
        assert_eq!(protected.access.check(None, None), Some(Refusal::ProtectedMode));
        let open = endpoint(Access {
            password: None,
            protected_mode: false,
        });
        assert_eq!(status(&open, "GET", "/metrics", "10.1.2.3:4000", None).await, 200);
    }

    #[test]
    fn password_comparison_needs_every_byte() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
