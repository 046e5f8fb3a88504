//! The node's HTTP endpoint: `/metrics` (Prometheus text format 0.0.4), `/healthz`, `/readyz`.
//!
//! Access (see docs/security.md): with a password set, `/metrics` needs it, as a bearer token
//! or as the password of HTTP basic auth (any user name); without one, protected mode limits
//! `/metrics` to loopback clients, as the broker does. The probes stay open: they disclose
//! nothing but "up" and "ready", and a kubelet probe cannot carry a Secret.

use crate::stats::{NodeStats, LATENCY_BUCKETS};
use base64::Engine;
use functions::http::{Handler, Request, Response};
use std::fmt::Write;
use std::sync::Arc;

/// Who may read the protected endpoints.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// The broker's password (`requirepass`); when set, it is required.
    pub password: Option<String>,
    /// Without a password: refuse non-loopback clients (the broker's `protected-mode`).
    pub protected_mode: bool,
}

impl Access {
    /// `None` if the request may proceed, else the refusal.
    fn check(&self, req: &Request<'_>) -> Option<Response> {
        match &self.password {
            Some(password) => {
                let presented = req.authorization.and_then(credential);
                if presented.is_some_and(|p| constant_time_eq(p.as_bytes(), password.as_bytes())) {
                    None
                } else {
                    Some(Response::json(
                        401,
                        r#"{"error":"authentication required: send the node's password as a bearer token or with basic auth"}"#,
                    ))
                }
            }
            None if self.protected_mode && !broker::state::is_local_peer(&req.peer) => Some(Response::json(
                403,
                r#"{"error":"protected mode: without a password only loopback clients may read this; set --requirepass or --protected-mode no"}"#,
            )),
            None => None,
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

impl Endpoint {
    pub fn handler(self) -> Handler {
        Arc::new(move |req: &Request<'_>| self.route(req))
    }

    fn route(&self, req: &Request<'_>) -> Response {
        if req.method != "GET" && req.method != "HEAD" {
            return Response::json(405, r#"{"error":"method not allowed"}"#);
        }
        match req.path {
            "/metrics" => match self.access.check(req) {
                Some(refusal) => refusal,
                None => Response::text(200, "text/plain; version=0.0.4; charset=utf-8", self.render()),
            },
            // The live dashboard and its event stream: what /metrics shows, for people.
            "/" | "/dashboard" => match self.access.check(req) {
                Some(refusal) => refusal,
                None => Response::text(200, "text/html; charset=utf-8", DASHBOARD),
            },
            "/events" => match self.access.check(req) {
                Some(refusal) => refusal,
                None => {
                    let (stats, broker) = (self.stats.clone(), self.broker.clone());
                    Response::events(functions::http::EventSource {
                        period: std::time::Duration::from_millis(500),
                        next: Arc::new(move || dashboard_state(&stats, broker.as_ref())),
                    })
                }
            },
            // Alive: the process answers.
            "/healthz" => Response::json(200, r#"{"status":"ok"}"#),
            // Ready: the broker accepts connections and the control loop has run.
            "/readyz" => {
                if self.stats.snapshot().ready {
                    Response::json(200, r#"{"status":"ready"}"#)
                } else {
                    Response::json(503, r#"{"status":"starting"}"#)
                }
            }
            _ => Response::json(
                404,
                r#"{"error":"not found; try / (the dashboard), /metrics, /healthz or /readyz"}"#,
            ),
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let s = self.stats.snapshot();
        let mut m = Metrics::default();
        if let Some(b) = &self.broker {
            let (queues, omitted) = b.queues().listed(broker::metrics::MAX_LISTED_QUEUES);
            m.family(
                "autoscale_queues_omitted",
                "gauge",
                "Queues left out of the per-queue series (at most 1000 are exported: the farm's queues first, then the most recently active).",
            );
            m.sample("autoscale_queues_omitted", "", omitted as f64);
            let lbl = |q: &broker::QueueStats| {
                format!(
                    "db=\"{}\",queue=\"{}\"",
                    q.db,
                    escape(&String::from_utf8_lossy(&q.name))
                )
            };
            // One gauge or counter family per queue field, one sample per queue.
            type Field = fn(&broker::QueueStats) -> f64;
            let simple: [(&str, &str, &str, Field); 5] = [
                (
                    "autoscale_queue_length",
                    "gauge",
                    "Current length of a broker list.",
                    |q| q.length as f64,
                ),
                (
                    "autoscale_queue_pushed_total",
                    "counter",
                    "Elements pushed to a list.",
                    |q| q.pushed_total as f64,
                ),
                (
                    "autoscale_queue_popped_total",
                    "counter",
                    "Elements popped or moved out of a list.",
                    |q| q.popped_total as f64,
                ),
                (
                    "autoscale_queue_oldest_age_seconds",
                    "gauge",
                    "Age of the oldest element of a list (0 when empty).",
                    |q| q.oldest_age_ms / 1000.0,
                ),
                (
                    "autoscale_queue_blocked_clients",
                    "gauge",
                    "Clients blocked waiting on a list.",
                    |q| q.blocked_clients as f64,
                ),
            ];
            for (name, kind, help, field) in simple {
                m.family(name, kind, help);
                for q in &queues {
                    m.sample(name, &lbl(q), field(q));
                }
            }
            m.family(
                "autoscale_queue_wait_seconds",
                "summary",
                "Time popped elements spent in a list.",
            );
            for q in &queues {
                let l = lbl(q);
                m.sample(
                    "autoscale_queue_wait_seconds",
                    &format!("{l},quantile=\"0.5\""),
                    q.wait_p50_ms / 1000.0,
                );
                m.sample(
                    "autoscale_queue_wait_seconds",
                    &format!("{l},quantile=\"0.99\""),
                    q.wait_p99_ms / 1000.0,
                );
                m.sample(
                    "autoscale_queue_wait_seconds_sum",
                    &l,
                    q.wait_mean_ms * q.wait_count as f64 / 1000.0,
                );
                m.sample("autoscale_queue_wait_seconds_count", &l, q.wait_count as f64);
            }
            m.family(
                "autoscale_connected_clients",
                "gauge",
                "Clients connected to the broker.",
            );
            m.sample("autoscale_connected_clients", "", b.connected_clients() as f64);
        }
        m.family("autoscale_node_info", "gauge", "The node's scaler and policy.");
        m.sample(
            "autoscale_node_info",
            &format!(
                "scaler=\"{}\",policy=\"{}\"",
                escape(&s.scaler),
                escape(&s.policy)
            ),
            1.0,
        );
        m.family("autoscale_workers", "gauge", "Workers by state.");
        for (state, n) in [
            ("live", s.workers.live),
            ("starting", s.workers.starting),
            ("leaving", s.workers.leaving),
        ] {
            m.sample("autoscale_workers", &format!("state=\"{state}\""), n as f64);
        }
        if let Some(c) = &s.workers.capped {
            m.family(
                "autoscale_workers_capped",
                "gauge",
                "Workers the platform runs while the target is beyond its limits (absent when not capped).",
            );
            m.sample(
                "autoscale_workers_capped",
                &format!("requested=\"{}\",reason=\"{}\"", c.requested, escape(&c.reason)),
                c.running as f64,
            );
        }
        m.family(
            "autoscale_workers_busy",
            "gauge",
            "Workers processing a task at the last decision.",
        );
        m.sample("autoscale_workers_busy", "", s.last.workers_busy as f64);
        m.family(
            "autoscale_workers_target",
            "gauge",
            "The number of workers the node is scaling to.",
        );
        m.sample("autoscale_workers_target", "", s.target as f64);
        m.family(
            "autoscale_scale_down_pending",
            "gauge",
            "Scale-down requests no worker has acknowledged yet.",
        );
        m.sample(
            "autoscale_scale_down_pending",
            "",
            s.workers.pending_scale_down as f64,
        );
        m.family("autoscale_decisions_total", "counter", "Policy decisions made.");
        m.sample("autoscale_decisions_total", "", s.decisions as f64);
        m.family(
            "autoscale_decision_latency_seconds",
            "histogram",
            "Time to build the observation and run the policy.",
        );
        let mut cumulative = 0;
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += s.latency_buckets[i];
            m.sample(
                "autoscale_decision_latency_seconds_bucket",
                &format!("le=\"{b}\""),
                cumulative as f64,
            );
        }
        m.sample(
            "autoscale_decision_latency_seconds_bucket",
            "le=\"+Inf\"",
            s.decisions as f64,
        );
        m.sample("autoscale_decision_latency_seconds_sum", "", s.latency_sum_s);
        m.sample("autoscale_decision_latency_seconds_count", "", s.decisions as f64);
        m.family(
            "autoscale_scaling_actions_total",
            "counter",
            "Changes of the worker count.",
        );
        m.sample(
            "autoscale_scaling_actions_total",
            "direction=\"up\"",
            s.scale_ups as f64,
        );
        m.sample(
            "autoscale_scaling_actions_total",
            "direction=\"down\"",
            s.scale_downs as f64,
        );
        m.family(
            "autoscale_scaler_errors_total",
            "counter",
            "Scaling calls that failed.",
        );
        m.sample("autoscale_scaler_errors_total", "", s.scaler_errors as f64);
        m.family(
            "autoscale_reconcile_errors_total",
            "counter",
            "Failed steps of the control loop, by kind (read: the farm could not be read; scale: the scaler failed; broker: a request, reply, status or re-queue failed).",
        );
        for kind in ["read", "scale", "broker"] {
            let n = s.errors.get(kind).copied().unwrap_or(0);
            m.sample(
                "autoscale_reconcile_errors_total",
                &format!("kind=\"{kind}\""),
                n as f64,
            );
        }
        m.family(
            "autoscale_requeued_tasks_total",
            "counter",
            "Tasks of vanished workers put back on the queue.",
        );
        m.sample("autoscale_requeued_tasks_total", "", s.requeued_tasks as f64);
        m.family(
            "autoscale_scale_requests_total",
            "counter",
            "`scale` requests received.",
        );
        m.sample("autoscale_scale_requests_total", "", s.scale_requests as f64);
        m.family(
            "autoscale_tasks_completed_total",
            "counter",
            "Tasks the collector recorded.",
        );
        m.sample(
            "autoscale_tasks_completed_total",
            "",
            s.last.completed_total as f64,
        );
        m.family(
            "autoscale_tasks_qos_met_total",
            "counter",
            "Recorded tasks that met their deadline.",
        );
        m.sample("autoscale_tasks_qos_met_total", "", s.last.qos_met_total as f64);
        m.family(
            "autoscale_qos_ratio",
            "gauge",
            "Fraction of recorded tasks that met their deadline.",
        );
        let qos = if s.last.completed_total == 0 {
            1.0
        } else {
            s.last.qos_met_total as f64 / s.last.completed_total as f64
        };
        m.sample("autoscale_qos_ratio", "", qos);
        m.out
    }
}

#[derive(Default)]
struct Metrics {
    out: String,
}

impl Metrics {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: f64) {
        let v = if value.is_finite() {
            value.to_string()
        } else if value.is_nan() {
            "NaN".into()
        } else if value > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {v}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {v}");
        }
    }
}

/// Escapes a label value as the exposition format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
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
            b.queues()
                .listed(broker::metrics::MAX_LISTED_QUEUES)
                .0
                .into_iter()
                .map(|q| (String::from_utf8_lossy(&q.name).into_owned(), q.db, q.length))
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

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn histogram_is_cumulative_and_counts_every_decision() {
        let stats = Arc::new(NodeStats::default());
        stats.record_decision(std::time::Duration::from_micros(3));
        stats.record_decision(std::time::Duration::from_micros(30));
        stats.record_decision(std::time::Duration::from_secs(1));
        let text = Endpoint {
            stats,
            broker: None,
            access: Access::default(),
        }
        .render();
        assert!(
            text.contains("autoscale_decision_latency_seconds_bucket{le=\"0.000005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("autoscale_decision_latency_seconds_bucket{le=\"0.00005\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("autoscale_decision_latency_seconds_bucket{le=\"0.1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("autoscale_decision_latency_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("autoscale_decisions_total 3\n"));
    }

    fn request<'a>(
        method: &'a str,
        path: &'a str,
        peer: &str,
        authorization: Option<&'a str>,
    ) -> Request<'a> {
        Request {
            method,
            path,
            body: b"",
            authorization,
            peer: peer.parse().unwrap(),
        }
    }

    fn endpoint(access: Access) -> Endpoint {
        Endpoint {
            stats: Arc::new(NodeStats::default()),
            broker: None,
            access,
        }
    }

    #[test]
    fn readiness_follows_the_control_loop() {
        let e = endpoint(Access::default());
        let get = |path| e.route(&request("GET", path, "127.0.0.1:1", None)).status;
        assert_eq!(get("/readyz"), 503);
        e.stats.update(|s| s.ready = true);
        assert_eq!(get("/readyz"), 200);
        assert_eq!(get("/healthz"), 200);
        assert_eq!(
            e.route(&request("POST", "/metrics", "127.0.0.1:1", None)).status,
            405
        );
        assert_eq!(get("/nope"), 404);
    }

    #[test]
    fn metrics_need_the_password_when_one_is_set() {
        let e = endpoint(Access {
            password: Some("s3cret".into()),
            protected_mode: true,
        });
        let status = |auth| e.route(&request("GET", "/metrics", "10.0.0.7:5000", auth)).status;
        assert_eq!(status(None), 401);
        assert_eq!(status(Some("Bearer wrong")), 401);
        assert_eq!(status(Some("Bearer s3cret")), 200);
        // "prometheus:s3cret" and "default:wrong" in base64.
        assert_eq!(status(Some("Basic cHJvbWV0aGV1czpzM2NyZXQ=")), 200);
        assert_eq!(status(Some("Basic ZGVmYXVsdDp3cm9uZw==")), 401);
        assert_eq!(status(Some("Basic !!!")), 401);
        assert_eq!(status(Some("Digest s3cret")), 401);
        // Probes stay open.
        assert_eq!(
            e.route(&request("GET", "/healthz", "10.0.0.7:5000", None)).status,
            200
        );
    }

    #[test]
    fn protected_mode_keeps_metrics_on_loopback_without_a_password() {
        let protected = endpoint(Access {
            password: None,
            protected_mode: true,
        });
        let status = |e: &Endpoint, peer| e.route(&request("GET", "/metrics", peer, None)).status;
        assert_eq!(status(&protected, "127.0.0.1:4000"), 200);
        assert_eq!(status(&protected, "[::1]:4000"), 200);
        assert_eq!(status(&protected, "127.0.0.2:4000"), 403);
        assert_eq!(status(&protected, "10.1.2.3:4000"), 403);
        let open = endpoint(Access {
            password: None,
            protected_mode: false,
        });
        assert_eq!(status(&open, "10.1.2.3:4000"), 200);
    }

    #[test]
    fn password_comparison_needs_every_byte() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
