//! The node's reconcile loop, shared by `serve` and `run`: observe → decide → act.
//!
//! ```text
//!            ┌──────────── every tick (¼ period, 50–250 ms) ─────────────┐
//!            │ scaler.reconcile  → vanished workers' tasks re-queued      │
//!            │ reader.connected  → scaler.observe_connected               │
//!            │ scale requests    → target, replies                        │
//!            │ status published  (autoscale:node:status, /metrics)        │
//!            └────────────────────────────────────────────────────────────┘
//!  every decision period:
//!   FarmReader::read ──▶ FarmMetrics (workload time) ──▶ observe() ──▶ decide() ──▶ Plan ──▶ act: Scaler::scale_to
//!   (embedded: in-process; redis: over the connection)      (pure: policy, bounds, rate limit)
//! ```
//!
//! Errors are typed ([`NodeError`]), logged and counted by kind (`/metrics`
//! `autoscale_reconcile_errors_total{kind}`); the loop carries on at the next tick, in `serve`
//! and in `run` alike.

pub mod decide;
pub mod reader;
pub mod scale_requests;

use crate::requests::{self, NodeStatus};
use crate::scaler::{Scaler, WorkerCounts};
use crate::stats::NodeStats;
use agent::eval::StepRecord;
use agent::observe::{observe, Calendar, FarmMetrics};
use agent::policy::Policy;
use decide::{DecisionState, Limits, Plan};
use functions::protocol::{Queues, WorkerId};
use reader::{FarmReader, FarmReading, ReadError};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use scale_requests::ScaleRequests;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a tick failed. The loop logs it, counts it by [`NodeError::kind`] and carries on.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("reading the farm: {0}")]
    Read(#[from] ReadError),
    #[error("the scaler failed: {0:#}")]
    Scale(anyhow::Error),
    #[error("talking to the broker: {0}")]
    Broker(#[from] redis::RedisError),
}

impl NodeError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            NodeError::Read(_) => "read",
            NodeError::Scale(_) => "scale",
            NodeError::Broker(_) => "broker",
        }
    }
}

/// The loop's settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Wall-clock time between decisions.
    pub decision_period: Duration,
    /// Wall-clock seconds per workload second (the policy sees workload time).
    pub time_scale: f64,
    /// Bounds and rate limits of every plan.
    pub limits: Limits,
    /// A processing list whose worker has been disconnected this long is re-queued.
    pub orphan_grace: Duration,
    /// Observe only: another node on this broker owns the workers, answers `scale` requests,
    /// publishes the status and re-queues orphans (`run` against a serving node).
    pub passive: bool,
}

/// The farm's clock in workload time: the one place wall-clock readings are converted.
#[derive(Clone, Debug)]
struct FarmClock {
    started: Instant,
    time_scale: f64,
}

impl FarmClock {
    fn now_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64() / self.time_scale
    }

    fn workload_s(&self, wall_s: f64) -> f64 {
        wall_s / self.time_scale
    }
}

/// What a run reports about the loop: one record per decision and the totals.
#[derive(Clone, Debug, Default)]
pub struct LoopSummary {
    pub steps: Vec<StepRecord>,
    /// Σ workers × wall seconds (live, starting and leaving workers all cost).
    pub worker_seconds_wall: f64,
    pub max_workers_seen: u32,
    pub scaling_actions: u64,
    pub requeued_tasks: u64,
    pub vanished_workers: u64,
}

pub struct Node {
    /// `None`: manual mode, the target changes only through `scale`.
    policy: Option<Box<dyn Policy>>,
    policy_name: String,
    scaler: Box<dyn Scaler>,
    reader: Box<dyn FarmReader>,
    conn: MultiplexedConnection,
    queues: Queues,
    cfg: NodeConfig,
    stats: Arc<NodeStats>,
    clock: FarmClock,
    prev: Option<FarmMetrics>,
    target: u32,
    decision_state: DecisionState,
    last_decision: Option<Instant>,
    last_tick: Instant,
    orphans: HashMap<WorkerId, Instant>,
    requests: ScaleRequests,
    /// The load calendar, when the node knows the workload's schedule (`run` does).
    calendar: Option<Calendar>,
    summary: LoopSummary,
}

impl Node {
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        policy: Option<Box<dyn Policy>>,
        scaler: Box<dyn Scaler>,
        reader: Box<dyn FarmReader>,
        mut conn: MultiplexedConnection,
        cfg: NodeConfig,
        initial_target: u32,
        stats: Arc<NodeStats>,
    ) -> Result<Node, NodeError> {
        if !cfg.passive {
            let _: () = redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(requests::CONTROLLER_NAME)
                .query_async(&mut conn)
                .await?;
        }
        let policy_name = policy.as_ref().map_or("manual".to_string(), |p| p.name());
        stats.update(|s| {
            s.scaler = scaler.kind().to_string();
            s.policy = policy_name.clone();
        });
        let target = initial_target.clamp(cfg.limits.min_workers, cfg.limits.max_workers);
        Ok(Node {
            policy,
            policy_name,
            scaler,
            reader,
            conn,
            queues: Queues::default(),
            clock: FarmClock {
                started: Instant::now(),
                time_scale: cfg.time_scale,
            },
            cfg,
            stats,
            prev: None,
            target,
            decision_state: DecisionState::default(),
            last_decision: None,
            last_tick: Instant::now(),
            orphans: HashMap::new(),
            requests: ScaleRequests::default(),
            calendar: None,
            summary: LoopSummary::default(),
        })
    }

    /// Gives every observation the calendar's outlook (in workload time, as the snapshots).
    pub fn set_calendar(&mut self, calendar: Option<Calendar>) {
        self.calendar = calendar;
    }

    pub fn policy_name(&self) -> &str {
        &self.policy_name
    }

    pub fn target(&self) -> u32 {
        self.target
    }

    pub fn scaler(&mut self) -> &mut dyn Scaler {
        self.scaler.as_mut()
    }

    pub fn counts(&self) -> WorkerCounts {
        self.scaler.counts()
    }

    pub fn summary(&self) -> &LoopSummary {
        &self.summary
    }

    /// How often `tick` should run: often enough to answer requests and ACKs promptly.
    pub fn tick_interval(&self) -> Duration {
        (self.cfg.decision_period / 4).clamp(Duration::from_millis(50), Duration::from_millis(250))
    }

    /// Starts the initial workers.
    pub async fn start(&mut self) -> Result<(), NodeError> {
        self.scaler
            .scale_to(self.target, &mut self.conn)
            .await
            .map_err(NodeError::Scale)?;
        self.summary.max_workers_seen = workers_held(&self.scaler.counts());
        self.publish().await
    }

    /// [`Self::tick`] under the loop's error policy: a failure is logged and counted by kind,
    /// and the next tick tries again.
    pub async fn tick_or_log(&mut self) -> Option<FarmMetrics> {
        match self.tick().await {
            Ok(decided) => decided,
            Err(e) => {
                tracing::error!(kind = e.kind(), error = %e, "reconcile failed; retrying at the next tick");
                self.stats.record_error(e.kind());
                None
            }
        }
    }

    /// One round of housekeeping, plus a decision when one is due. Returns the snapshot the
    /// decision was made on.
    pub async fn tick(&mut self) -> Result<Option<FarmMetrics>, NodeError> {
        let elapsed = self.last_tick.elapsed().as_secs_f64();
        self.last_tick = Instant::now();
        self.summary.worker_seconds_wall += elapsed * workers_held(&self.scaler.counts()) as f64;

        let vanished = self
            .scaler
            .reconcile(&mut self.conn)
            .await
            .map_err(NodeError::Scale)?;
        for v in vanished {
            self.summary.vanished_workers += 1;
            self.requeue(&v.id, &v.reason).await?;
        }
        let connected = self.reader.connected().await?;
        self.scaler.observe_connected(connected.len() as u32);
        if !self.cfg.passive {
            self.handle_requests().await?;
        }

        let due = self
            .last_decision
            .is_none_or(|t| t.elapsed() >= self.cfg.decision_period);
        let mut decided = None;
        if due {
            self.last_decision = Some(Instant::now());
            let reading = self.reader.read().await?;
            if !self.cfg.passive {
                self.requeue_orphans(&reading).await?;
            }
            let now = self.metrics(&reading);
            if let Some(prev) = self.prev.replace(now.clone()) {
                self.decide_and_act(&prev, &now).await?;
            }
            decided = Some(now);
        }
        let counts = self.scaler.counts();
        self.requests.answer_pending(&mut self.conn, &counts).await?;
        self.summary.max_workers_seen = self.summary.max_workers_seen.max(workers_held(&counts));
        self.publish().await?;
        Ok(decided)
    }

    /// The reading in workload time, with the scaler's view of the workers.
    fn metrics(&self, reading: &FarmReading) -> FarmMetrics {
        let counts = self.scaler.counts();
        let prev = self.prev.clone().unwrap_or_default();
        let (completed, met, sum_s, max_s) = match &reading.collected {
            Some(c) => (
                c.tasks_total,
                c.qos_met_total,
                self.clock.workload_s(c.latency_sum_s),
                self.clock.workload_s(c.window_max_s),
            ),
            // The keyspace was busy (a long script): keep the last totals.
            None => (
                prev.completed_total,
                prev.qos_met_total,
                prev.completion_sum_s,
                0.0,
            ),
        };
        FarmMetrics {
            time_s: self.clock.now_s(),
            queue_length: reading.queue.length,
            pushed_total: reading.queue.pushed_total,
            popped_total: reading.queue.popped_total,
            oldest_age_s: self.clock.workload_s(reading.queue.oldest_age_s),
            completed_total: completed,
            qos_met_total: met,
            completion_sum_s: sum_s,
            completion_max_s: max_s,
            workers_live: counts.live,
            workers_busy: reading.busy_workers(),
            workers_starting: counts.starting,
            oldest_slack_s: self.clock.workload_s(reading.queue.oldest_slack_s),
            queued_work_s: self.clock.workload_s(reading.queue.queued_work_s),
        }
    }

    async fn decide_and_act(&mut self, prev: &FarmMetrics, now: &FarmMetrics) -> Result<(), NodeError> {
        let obs = observe(prev, now).with_calendar(self.calendar.as_ref());
        if let Some(policy) = self.policy.as_mut() {
            let t0 = Instant::now();
            let plan: Plan = decide::decide(
                &obs,
                policy.as_mut(),
                self.target,
                &self.cfg.limits,
                &mut self.decision_state,
            );
            self.stats.record_decision(t0.elapsed());
            tracing::debug!(wanted = plan.wanted, target = plan.target, adjustment = ?plan.adjustment, queue = now.queue_length, "decision");
            self.target = plan.target;
        }
        if !self.cfg.passive {
            // Also in manual mode: a worker that died is replaced to hold the target.
            self.act().await;
        }
        self.summary.steps.push(StepRecord {
            time_s: now.time_s,
            workers: self.scaler.counts().effective(),
            target: self.target,
            queue_length: now.queue_length,
            arrival_rate: obs.arrival_rate,
            window_qos: obs.window_qos,
        });
        self.stats.update(|s| s.last = now.clone());
        Ok(())
    }

    /// Act: brings the workers to the target through the scaler. A scaler error (gateway down,
    /// API refusing) must not stop the node: it is logged and counted, and the next decision
    /// tries again.
    async fn act(&mut self) {
        let before = self.scaler.counts().effective();
        if before == self.target {
            return;
        }
        match self.scaler.scale_to(self.target, &mut self.conn).await {
            Ok(()) => {
                self.summary.scaling_actions += 1;
                tracing::info!(
                    from = before,
                    to = self.target,
                    scaler = self.scaler.kind(),
                    "scaled"
                );
                let up = self.target > before;
                self.stats
                    .update(|s| if up { s.scale_ups += 1 } else { s.scale_downs += 1 });
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), target = self.target, "scaling failed");
                self.stats.update(|s| s.scaler_errors += 1);
                self.stats.record_error("scale");
            }
        }
    }

    /// Moves a worker's unfinished tasks back to the queue.
    async fn requeue(&mut self, id: &WorkerId, reason: &str) -> Result<(), NodeError> {
        let list = self.queues.processing(id);
        let n = functions::requeue_tasks(&mut self.conn, &list, &self.queues).await?;
        if n > 0 {
            tracing::warn!(worker = %id, tasks = n, reason, "re-queued the tasks of a vanished worker");
        }
        self.summary.requeued_tasks += n as u64;
        self.stats.update(|s| s.requeued_tasks += n as u64);
        Ok(())
    }

    /// A processing list whose worker has been gone for the grace period goes back to the
    /// queue: the worker died without its process being ours to reap (a pod, a remote host).
    async fn requeue_orphans(&mut self, reading: &FarmReading) -> Result<(), NodeError> {
        let now = Instant::now();
        let held = |id: &WorkerId| reading.processing.iter().any(|(l, _)| l == id);
        self.orphans
            .retain(|id, _| held(id) && !reading.connected.contains(id));
        let mut due = Vec::new();
        for (id, _) in &reading.processing {
            if reading.connected.contains(id) {
                continue;
            }
            let since = *self.orphans.entry(id.clone()).or_insert(now);
            if now.duration_since(since) >= self.cfg.orphan_grace {
                due.push(id.clone());
            }
        }
        for id in due {
            self.orphans.remove(&id);
            self.summary.vanished_workers += 1;
            self.requeue(&id, "disconnected past the grace period").await?;
        }
        Ok(())
    }

    async fn handle_requests(&mut self) -> Result<(), NodeError> {
        while let Some(taken) = self.requests.take(&mut self.conn).await? {
            self.stats.update(|s| s.scale_requests += 1);
            let before = self.target;
            let wanted = taken.wanted(before);
            let limits = &self.cfg.limits;
            self.target = wanted.clamp(limits.min_workers, limits.max_workers);
            let mut note = String::new();
            if self.target != wanted {
                note = format!(
                    " (limited to the node's bounds {}..={})",
                    limits.min_workers, limits.max_workers
                );
            }
            if self.policy.is_some() {
                note.push_str(&format!(
                    "; policy {} decides again at its next period",
                    self.policy_name
                ));
            }
            tracing::info!(op = ?taken.request.op, n = taken.request.n, from = before, to = self.target, "scale request");
            self.act().await;
            let counts = self.scaler.counts();
            self.requests
                .answer(&mut self.conn, taken, before, self.target, &note, &counts)
                .await?;
        }
        Ok(())
    }

    async fn publish(&mut self) -> Result<(), NodeError> {
        if self.cfg.passive {
            return Ok(());
        }
        let counts = self.scaler.counts();
        let status = NodeStatus {
            scaler: self.scaler.kind().to_string(),
            policy: self.policy_name.clone(),
            target: self.target,
            workers: counts.clone(),
            decisions: self.stats.decisions(),
            scaling_actions: self.summary.scaling_actions,
            min_workers: self.cfg.limits.min_workers,
            max_workers: self.cfg.limits.max_workers,
        };
        let target = self.target;
        self.stats.update(|s| {
            s.target = target;
            s.workers = counts;
            s.ready = true;
        });
        let _: () = self
            .conn
            .set_ex(requests::STATUS, functions::runtime::json(&status), 5)
            .await?;
        Ok(())
    }

    /// Stops the workers the scaler started.
    pub async fn shutdown(&mut self) -> Result<(), NodeError> {
        self.stats.update(|s| s.ready = false);
        self.scaler
            .shutdown(&mut self.conn)
            .await
            .map_err(NodeError::Scale)?;
        if !self.cfg.passive {
            let _: () = self.conn.del(requests::STATUS).await?;
        }
        Ok(())
    }
}

fn workers_held(c: &WorkerCounts) -> u32 {
    c.live + c.starting + c.leaving
}
