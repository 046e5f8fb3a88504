//! What the node counts, for `/metrics`, `/readyz` and the status it publishes.

use crate::scaler::WorkerCounts;
use agent::observe::FarmMetrics;
use parking_lot::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the decision-latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 10] = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 1e-3, 1e-2, 1e-1];

/// The node's counters and gauges; written by the control loop, read by the HTTP endpoint.
#[derive(Debug, Default)]
pub struct NodeStats {
    inner: Mutex<NodeSnapshot>,
}

#[derive(Clone, Debug, Default)]
pub struct NodeSnapshot {
    pub scaler: String,
    pub policy: String,
    /// The control loop has run at least once (and the node is not stopping).
    pub ready: bool,
    pub target: u32,
    pub workers: WorkerCounts,
    /// The farm at the last decision (workload time).
    pub last: FarmMetrics,
    pub decisions: u64,
    /// Per bucket of [`LATENCY_BUCKETS`] (not cumulative), plus the overflow bucket.
    pub latency_buckets: [u64; LATENCY_BUCKETS.len() + 1],
    pub latency_sum_s: f64,
    pub scale_ups: u64,
    pub scale_downs: u64,
    pub scaler_errors: u64,
    pub requeued_tasks: u64,
    pub scale_requests: u64,
    /// Failed reconcile steps by kind (`read`, `scale`, `broker`).
    pub errors: std::collections::BTreeMap<&'static str, u64>,
}

impl NodeStats {
    pub fn update(&self, f: impl FnOnce(&mut NodeSnapshot)) {
        f(&mut self.inner.lock());
    }

    pub fn snapshot(&self) -> NodeSnapshot {
        self.inner.lock().clone()
    }

    pub fn decisions(&self) -> u64 {
        self.inner.lock().decisions
    }

    /// Counts a failed reconcile step of `kind`.
    pub fn record_error(&self, kind: &'static str) {
        *self.inner.lock().errors.entry(kind).or_default() += 1;
    }

    pub fn record_decision(&self, latency: Duration) {
        let s = latency.as_secs_f64();
        let mut g = self.inner.lock();
        g.decisions += 1;
        g.latency_sum_s += s;
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        g.latency_buckets[i] += 1;
    }
}
