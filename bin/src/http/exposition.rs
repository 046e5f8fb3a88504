//! The `/metrics` exposition (Prometheus text format 0.0.4), encoded by `prometheus-client`.
//!
//! The node's counters live in [`NodeStats`] and the broker's queue registry, not in
//! `prometheus-client` metric objects, so each scrape takes one snapshot of both ([`Scrape`]),
//! a [`Collector`], and encodes each family from it as a constant (the pattern of an exporter). Counters are
//! registered without their `_total` suffix, which the encoder adds to both the samples and the
//! `# HELP`/`# TYPE` lines, so every series keeps the name it had before the crate.
//!
//! The one exception is `autoscale_queue_wait_seconds`, a summary (quantiles, sum and count from
//! the broker's histogram estimates): `prometheus-client` has no summary type, so that family is
//! written after the registry's output in the same format by [`write_wait_summary`].

use crate::stats::{NodeSnapshot, NodeStats, LATENCY_BUCKETS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric, NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt::Write;
use std::sync::Arc;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What one scrape reads, taken once so that every family (the summary too) shows the same
/// moment and the same queues.
pub struct Scrape {
    node: NodeSnapshot,
    /// The listed queues and how many were left out, when the broker is embedded.
    queues: Option<(Vec<broker::QueueStats>, usize)>,
    connected_clients: usize,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

impl Scrape {
    pub fn take(stats: &NodeStats, broker: Option<&broker::Broker>) -> Scrape {
        Scrape {
            node: stats.snapshot(),
            queues: broker.map(|b| b.listed_queues()),
            connected_clients: broker.map_or(0, |b| b.connected_clients()),
        }
    }

    /// The exposition text.
    pub fn render(self) -> String {
        let scrape = Arc::new(self);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(scrape.clone()));
        let mut out = String::new();
        // Writing to a String cannot fail, and the collector returns no error of its own.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        if let Some((queues, _)) = &scrape.queues {
            let _ = write_wait_summary(&mut out, queues);
        }
        out
    }
}

/// Labels of a per-queue sample: the database and key, and a stream's consumer group.
fn queue_labels(q: &broker::QueueStats) -> Vec<(&'static str, String)> {
    let mut labels = vec![
        ("db", q.db.to_string()),
        ("queue", String::from_utf8_lossy(&q.name).into_owned()),
    ];
    if let Some(g) = &q.group {
        labels.push(("group", String::from_utf8_lossy(g).into_owned()));
    }
    labels
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> std::fmt::Result {
    ConstGauge::new(value).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// A counter `NAME_total` (`name` without the suffix).
fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    ConstCounter::new(value).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// A gauge family, one sample per label set.
fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> std::fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A counter family `NAME_total` (`name` without the suffix), one sample per label set.
fn counters<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> std::fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        if let Some((queues, omitted)) = &self.queues {
            encode_queues(&mut enc, queues, *omitted, self.connected_clients)?;
        }
        encode_node(&mut enc, &self.node)
    }
}

fn encode_queues(
    enc: &mut DescriptorEncoder,
    queues: &[broker::QueueStats],
    omitted: usize,
    connected_clients: usize,
) -> std::fmt::Result {
    gauge(
        enc,
        "autoscale_queues_omitted",
        "Queues left out of the per-queue series (at most 1000 are exported: the farm's queues first, then the most recently active).",
        omitted as u64,
    )?;
    use broker::QueueKind::{Delayed, List, Stream};
    // One family per queue field, one sample per queue (of the kinds the field exists for).
    let of = |kinds: &'static [broker::QueueKind], field: fn(&broker::QueueStats) -> u64| {
        queues
            .iter()
            .filter(move |q| kinds.contains(&q.kind))
            .map(move |q| (queue_labels(q), field(q)))
    };
    let seconds = |kinds: &'static [broker::QueueKind], field: fn(&broker::QueueStats) -> f64| {
        queues
            .iter()
            .filter(move |q| kinds.contains(&q.kind))
            .map(move |q| (queue_labels(q), field(q) / 1000.0))
    };
    gauges(
        enc,
        "autoscale_queue_info",
        "What a queue is made of (kind: list, stream for a stream's consumer group, delayed for a sorted set of jobs scored by due time); always 1.",
        queues.iter().map(|q| {
            let mut labels = queue_labels(q);
            labels.push(("kind", q.kind.name().to_owned()));
            (labels, 1u32)
        }),
    )?;
    gauges(
        enc,
        "autoscale_queue_length",
        "What waits to be taken: a list's length, the entries not yet delivered to a consumer group (its lag), the due jobs of a delayed set.",
        of(&[List, Stream, Delayed], |q| q.length),
    )?;
    counters(
        enc,
        "autoscale_queue_pushed",
        "Elements pushed to a list; entries ever added to a stream.",
        of(&[List, Stream], |q| q.pushed_total),
    )?;
    counters(
        enc,
        "autoscale_queue_popped",
        "Elements popped or moved out of a list; entries delivered to a consumer group.",
        of(&[List, Stream], |q| q.popped_total),
    )?;
    gauges(
        enc,
        "autoscale_queue_oldest_age_seconds",
        "How long the oldest waiting element has waited: since its push (list), since its id's time (stream group), since it was due (delayed set); 0 when none waits.",
        seconds(&[List, Stream, Delayed], |q| q.oldest_age_ms),
    )?;
    gauges(
        enc,
        "autoscale_queue_blocked_clients",
        "Clients blocked waiting on a queue's key.",
        of(&[List, Stream, Delayed], |q| q.blocked_clients),
    )?;
    gauges(
        enc,
        "autoscale_queue_pending",
        "Entries delivered to a consumer group and not acknowledged yet.",
        of(&[Stream], |q| q.pending),
    )?;
    counters(
        enc,
        "autoscale_queue_acked",
        "Entries a consumer group acknowledged.",
        of(&[Stream], |q| q.acked_total),
    )?;
    gauges(
        enc,
        "autoscale_queue_oldest_pending_age_seconds",
        "Age of a consumer group's oldest pending entry, from its id (0 when none is pending).",
        seconds(&[Stream], |q| q.oldest_pending_age_ms),
    )?;
    gauges(
        enc,
        "autoscale_queue_consumers",
        "Consumers of a consumer group; named clients that popped from a list.",
        of(&[List, Stream], |q| q.consumers.len() as u64),
    )?;
    gauges(
        enc,
        "autoscale_queue_scheduled",
        "Jobs of a delayed set that are not due yet.",
        of(&[Delayed], |q| q.scheduled),
    )?;
    gauges(
        enc,
        "autoscale_queue_next_due_seconds",
        "Time until the next scheduled job of a delayed set is due (0 when none is scheduled).",
        seconds(&[Delayed], |q| q.next_due_ms),
    )?;
    gauge(
        enc,
        "autoscale_connected_clients",
        "Clients connected to the broker.",
        connected_clients as u64,
    )
}

fn encode_node(enc: &mut DescriptorEncoder, s: &NodeSnapshot) -> std::fmt::Result {
    gauges(
        enc,
        "autoscale_node_info",
        "The node's scaler and policy.",
        [(
            [("scaler", s.scaler.as_str()), ("policy", s.policy.as_str())],
            1u32,
        )],
    )?;
    gauges(
        enc,
        "autoscale_workers",
        "Workers by state.",
        [
            ("live", s.workers.live),
            ("starting", s.workers.starting),
            ("leaving", s.workers.leaving),
        ]
        .map(|(state, n)| ([("state", state)], n)),
    )?;
    if let Some(c) = &s.workers.capped {
        gauges(
            enc,
            "autoscale_workers_capped",
            "Workers the platform runs while the target is beyond its limits (absent when not capped).",
            [(
                [
                    ("requested", c.requested.to_string()),
                    ("reason", c.reason.clone()),
                ],
                c.running,
            )],
        )?;
    }
    gauge(
        enc,
        "autoscale_workers_busy",
        "Workers processing a task at the last decision.",
        s.last.workers_busy as u64,
    )?;
    gauge(
        enc,
        "autoscale_workers_target",
        "The number of workers the node is scaling to.",
        u64::from(s.target),
    )?;
    gauge(
        enc,
        "autoscale_scale_down_pending",
        "Scale-down requests no worker has acknowledged yet.",
        u64::from(s.workers.pending_scale_down),
    )?;
    counter(enc, "autoscale_decisions", "Policy decisions made.", s.decisions)?;
    // The snapshot's buckets are per bucket, as the encoder wants them; it adds them up.
    let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
        .iter()
        .copied()
        .zip(s.latency_buckets.iter().copied())
        .collect();
    enc.encode_descriptor(
        "autoscale_decision_latency_seconds",
        "Time to build the observation and run the policy.",
        None,
        MetricType::Histogram,
    )?
    .encode_histogram::<NoLabelSet>(s.latency_sum_s, s.decisions, &buckets, None)?;
    counters(
        enc,
        "autoscale_scaling_actions",
        "Changes of the worker count.",
        [("up", s.scale_ups), ("down", s.scale_downs)].map(|(d, n)| ([("direction", d)], n)),
    )?;
    counter(
        enc,
        "autoscale_scaler_errors",
        "Scaling calls that failed.",
        s.scaler_errors,
    )?;
    counters(
        enc,
        "autoscale_reconcile_errors",
        "Failed steps of the control loop, by kind (read: the farm could not be read; scale: the scaler failed; broker: a request, reply, status or re-queue failed).",
        ["read", "scale", "broker"].map(|kind| ([("kind", kind)], s.errors.get(kind).copied().unwrap_or(0))),
    )?;
    counter(
        enc,
        "autoscale_requeued_tasks",
        "Tasks of vanished workers put back on the queue.",
        s.requeued_tasks,
    )?;
    counter(
        enc,
        "autoscale_scale_requests",
        "`scale` requests received.",
        s.scale_requests,
    )?;
    counter(
        enc,
        "autoscale_tasks_completed",
        "Tasks the collector recorded.",
        s.last.completed_total,
    )?;
    counter(
        enc,
        "autoscale_tasks_qos_met",
        "Recorded tasks that met their deadline.",
        s.last.qos_met_total,
    )?;
    let qos = if s.last.completed_total == 0 {
        1.0
    } else {
        s.last.qos_met_total as f64 / s.last.completed_total as f64
    };
    gauge(
        enc,
        "autoscale_qos_ratio",
        "Fraction of recorded tasks that met their deadline.",
        qos,
    )
}

/// `autoscale_queue_wait_seconds`, a summary per queue: the median and 99th percentile of the
/// time popped elements spent in the list, their sum and count. Label values are escaped as
/// the format requires.
pub fn write_wait_summary(out: &mut String, queues: &[broker::QueueStats]) -> std::fmt::Result {
    const NAME: &str = "autoscale_queue_wait_seconds";
    writeln!(
        out,
        "# HELP {NAME} Time popped elements spent in a list; time from a stream entry's id to its acknowledgement by a consumer group."
    )?;
    writeln!(out, "# TYPE {NAME} summary")?;
    for q in queues.iter().filter(|q| q.kind != broker::QueueKind::Delayed) {
        let mut labels = format!(
            "db=\"{}\",queue=\"{}\"",
            q.db,
            escape(&String::from_utf8_lossy(&q.name))
        );
        if let Some(g) = &q.group {
            let _ = write!(labels, ",group=\"{}\"", escape(&String::from_utf8_lossy(g)));
        }
        for (quantile, ms) in [("0.5", q.wait_p50_ms), ("0.99", q.wait_p99_ms)] {
            writeln!(
                out,
                "{NAME}{{{labels},quantile=\"{quantile}\"}} {}",
                number(ms / 1000.0)
            )?;
        }
        let sum_s = q.wait_mean_ms * q.wait_count as f64 / 1000.0;
        writeln!(out, "{NAME}_sum{{{labels}}} {}", number(sum_s))?;
        writeln!(out, "{NAME}_count{{{labels}}} {}", q.wait_count)?;
    }
    Ok(())
}

/// A sample value as the format writes it (`NaN`, `+Inf`, `-Inf` by name).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
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
    fn counters_keep_their_total_names_and_the_histogram_is_cumulative() {
        let stats = Arc::new(NodeStats::default());
        stats.record_decision(std::time::Duration::from_micros(3));
        stats.record_decision(std::time::Duration::from_micros(30));
        stats.record_decision(std::time::Duration::from_secs(1));
        stats.update(|s| s.scale_ups = 2);
        let text = Scrape::take(&stats, None).render();
        for line in [
            "# HELP autoscale_decisions_total Policy decisions made.\n",
            "# TYPE autoscale_decisions_total counter\n",
            "autoscale_decisions_total 3\n",
            "# TYPE autoscale_scaling_actions_total counter\n",
            "autoscale_scaling_actions_total{direction=\"up\"} 2\n",
            "autoscale_reconcile_errors_total{kind=\"scale\"} 0\n",
            "# TYPE autoscale_decision_latency_seconds histogram\n",
            // Bounds as Go's client writes them (strconv 'g').
            "autoscale_decision_latency_seconds_bucket{le=\"5e-06\"} 1\n",
            "autoscale_decision_latency_seconds_bucket{le=\"5e-05\"} 2\n",
            "autoscale_decision_latency_seconds_bucket{le=\"0.1\"} 2\n",
            "autoscale_decision_latency_seconds_bucket{le=\"+Inf\"} 3\n",
            "autoscale_decision_latency_seconds_count 3\n",
            "autoscale_workers{state=\"live\"} 0\n",
            "autoscale_qos_ratio 1.0\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
    }

    #[test]
    fn the_wait_summary_has_quantiles_sum_and_count() {
        let q = broker::QueueStats {
            name: bytes::Bytes::from_static(b"jobs\"x"),
            db: 0,
            pushed_total: 4,
            popped_total: 4,
            length: 0,
            oldest_age_ms: 0.0,
            wait_count: 4,
            wait_mean_ms: 250.0,
            wait_p50_ms: 200.0,
            wait_p99_ms: 900.0,
            blocked_clients: 0,
            last_push_ms: 0,
            last_pop_ms: 0,
            consumers: Vec::new(),
            ..broker::QueueStats::default()
        };
        let mut out = String::new();
        write_wait_summary(&mut out, &[q]).unwrap();
        assert_eq!(
            out,
            "# HELP autoscale_queue_wait_seconds Time popped elements spent in a list; time from a stream entry's id to its acknowledgement by a consumer group.\n\
             # TYPE autoscale_queue_wait_seconds summary\n\
             autoscale_queue_wait_seconds{db=\"0\",queue=\"jobs\\\"x\",quantile=\"0.5\"} 0.2\n\
             autoscale_queue_wait_seconds{db=\"0\",queue=\"jobs\\\"x\",quantile=\"0.99\"} 0.9\n\
             autoscale_queue_wait_seconds_sum{db=\"0\",queue=\"jobs\\\"x\"} 1\n\
             autoscale_queue_wait_seconds_count{db=\"0\",queue=\"jobs\\\"x\"} 4\n"
        );
    }
}
