//! The node's HTTP endpoint: `/metrics` (Prometheus text format 0.0.4), `/healthz`, `/readyz`.

use crate::stats::{NodeStats, LATENCY_BUCKETS};
use functions::http::{Handler, Response};
use std::fmt::Write;
use std::sync::Arc;

/// What the endpoint reads: the node's counters and, when embedded, the broker.
#[derive(Clone)]
pub struct Endpoint {
    pub stats: Arc<NodeStats>,
    pub broker: Option<broker::Broker>,
}

impl Endpoint {
    pub fn handler(self) -> Handler {
        Arc::new(move |method, path, _body| self.route(method, path))
    }

    fn route(&self, method: &str, path: &str) -> Response {
        if method != "GET" && method != "HEAD" {
            return Response::json(405, r#"{"error":"method not allowed"}"#);
        }
        match path {
            "/metrics" => Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: self.render(),
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
            _ => Response::json(404, r#"{"error":"not found; try /metrics, /healthz or /readyz"}"#),
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let s = self.stats.snapshot();
        let mut m = Metrics::default();
        if let Some(b) = &self.broker {
            let queues = b.queues().snapshot();
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
        let text = Endpoint { stats, broker: None }.render();
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

    #[test]
    fn readiness_follows_the_control_loop() {
        let stats = Arc::new(NodeStats::default());
        let e = Endpoint {
            stats: stats.clone(),
            broker: None,
        };
        assert_eq!(e.route("GET", "/readyz").status, 503);
        stats.update(|s| s.ready = true);
        assert_eq!(e.route("GET", "/readyz").status, 200);
        assert_eq!(e.route("GET", "/healthz").status, 200);
        assert_eq!(e.route("POST", "/metrics").status, 405);
        assert_eq!(e.route("GET", "/nope").status, 404);
    }
}
