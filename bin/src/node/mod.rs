//! The node's reconcile loop, shared by `serve` and `run`: observe → decide → act.
//!
//! ```text
//!            ┌──────────── every tick (¼ period, 50–250 ms) ─────────────┐
//!            │ scaler.reconcile  → vanished workers' tasks re-queued      │
//!            │ reader.connected  → scaler.observe_connected               │
//!            │ scale requests    → target, replies                        │
//!            │ a job's clock     → adopted or refused (autoscale:job)     │
//!            │ recorded arrivals → the trace file (serve --record)        │
//!            │ status published  (autoscale:node:status, /metrics)        │
//!            └────────────────────────────────────────────────────────────┘
//!  every decision period, or sooner when the work queue jumps (QueueWake, rate-limited):
//!   FarmReader::read ─▶ FarmMetrics (workload time) ─▶ Observer (1/5/30 s rates) ─▶ + start-up,
//!   + the plan's outlook ─▶ decide() ─▶ Plan ─▶ act: Scaler::scale_to
//!   (embedded: in-process; redis: over the connection)   (pure: policy, bounds, idle, rate limit)
//! ```
//!
//! Errors are typed ([`NodeError`]), logged and counted by kind (`/metrics`
//! `autoscale_reconcile_errors_total{kind}`); the loop carries on at the next tick, in `serve`
//! and in `run` alike.

pub mod clock;
pub mod decide;
pub mod job;
pub mod plan;
pub mod reader;
pub mod record;
pub mod scale_requests;
pub mod selector;
pub mod wake;

use crate::requests::{self, JobAnswer, NodeStatus};
use crate::scaler::{Scaler, WorkerCounts};
use crate::stats::NodeStats;
use agent::eval::StepRecord;
use agent::observe::{Calendar, FarmMetrics, Observation, Observer};
use agent::policy::Policy;
use clock::FarmClock;
use decide::{Cadence, DecisionState, Limits, Plan};
use functions::protocol::{Queues, WorkerId};
use plan::{JobPlan, PlanBook};
use reader::{FarmReader, FarmReading, ReadError};
use record::ArrivalRecorder;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use scale_requests::ScaleRequests;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wake::QueueWake;

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

/// The loop's settings. Durations of the farm in workload seconds unless named `wall`.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Workload seconds between decisions (of the policy deciding without a plan).
    pub decision_period_s: f64,
    /// Events (a jump of the work queue) bring a decision forward, but never closer than this
    /// to the previous one (workload seconds).
    pub min_decision_gap_s: f64,
    /// Wall-clock seconds per workload second (the policy sees workload time).
    pub time_scale: f64,
    /// The operator set the time scale: a job announcing another one is refused.
    pub time_scale_fixed: bool,
    /// How long a new worker takes to serve, wall seconds: every observation's `startup_s`.
    pub worker_startup_wall_s: f64,
    /// Bounds, rate limits and the idle rule of every plan.
    pub limits: Limits,
    /// A processing list whose worker has been disconnected this long is re-queued.
    pub orphan_grace: Duration,
    /// Observe only: another node on this broker owns the workers, answers `scale` requests,
    /// publishes the status and re-queues orphans (`run` against a serving node).
    pub passive: bool,
    /// Keep one record per decision for a report (`run`); a long-running `serve` does not,
    /// or its memory would grow with every decision.
    pub keep_steps: bool,
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

/// A policy and the period it decides at (workload seconds).
pub struct PeriodicPolicy {
    pub policy: Box<dyn Policy>,
    pub period_s: f64,
}

pub struct Node {
    /// `None`: manual mode, the target changes only through `scale`.
    policy: Option<Box<dyn Policy>>,
    /// The policy for when a plan is known (the bundled calendar model), if it is another one.
    plan_policy: Option<PeriodicPolicy>,
    /// Whether `plan_policy` decides now.
    on_plan_policy: bool,
    scaler: Box<dyn Scaler>,
    reader: Box<dyn FarmReader>,
    conn: MultiplexedConnection,
    queues: Queues,
    cfg: NodeConfig,
    stats: Arc<NodeStats>,
    clock: FarmClock,
    observer: Observer,
    last: Option<FarmMetrics>,
    target: u32,
    decision_state: DecisionState,
    cadence: Cadence,
    last_tick: Instant,
    orphans: HashMap<WorkerId, Instant>,
    /// Processing lists the broker held when the node started (replayed from its log after a
    /// restart, or left by a node before this one), whose workers may never come back: they
    /// follow the orphan rule even if the reader does not list them.
    inherited: Vec<WorkerId>,
    requests: ScaleRequests,
    /// The load calendar, when the node knows the workload's schedule (`run` does).
    calendar: Option<Calendar>,
    /// Read the job's plan from the broker at every decision (`serve`).
    read_plans: bool,
    plan_book: PlanBook,
    job_plan: Option<JobPlan>,
    wake: Option<Arc<QueueWake>>,
    recorder: Option<ArrivalRecorder>,
    /// The last job announcement seen, and the answer given.
    job_seen: Option<String>,
    job: Option<JobAnswer>,
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
        let target = initial_target.clamp(cfg.limits.min_workers, cfg.limits.max_workers);
        let inherited = if cfg.passive {
            Vec::new()
        } else {
            reader::scan_processing(&mut conn, &Queues::default())
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        if !inherited.is_empty() {
            tracing::info!(
                lists = inherited.len(),
                "found the processing lists of workers from before this node; their tasks go back to the queue unless the workers reconnect within the orphan grace"
            );
        }
        let node = Node {
            policy,
            plan_policy: None,
            on_plan_policy: false,
            scaler,
            reader,
            conn,
            queues: Queues::default(),
            clock: FarmClock::new(cfg.time_scale),
            observer: Observer::new(),
            last: None,
            target,
            decision_state: DecisionState::default(),
            cadence: Cadence::new(cfg.decision_period_s, cfg.min_decision_gap_s),
            last_tick: Instant::now(),
            orphans: HashMap::new(),
            inherited,
            requests: ScaleRequests::default(),
            calendar: None,
            read_plans: false,
            plan_book: PlanBook::default(),
            job_plan: None,
            wake: None,
            recorder: None,
            job_seen: None,
            job: None,
            summary: LoopSummary::default(),
            cfg,
            stats,
        };
        let (scaler_kind, policy_name) = (node.scaler.kind().to_string(), node.policy_name());
        node.stats.update(|s| {
            s.scaler = scaler_kind;
            s.policy = policy_name;
        });
        Ok(node)
    }

    /// Gives every observation the calendar's outlook (in workload time, as the snapshots).
    pub fn set_calendar(&mut self, calendar: Option<Calendar>) {
        self.calendar = calendar;
    }

    /// Reads the job's plan from the broker at every decision (needs a reader that can: the
    /// embedded broker's), and decides with `plan_policy` while one is known (`None`: the one
    /// policy, which then sees the plan's outlook).
    pub fn read_plans(&mut self, plan_policy: Option<PeriodicPolicy>) {
        self.read_plans = true;
        self.plan_policy = plan_policy;
    }

    /// Wakes the loop on bursts: `wake` is registered on the embedded broker's queue hooks,
    /// and the loop waits on it beside its timer ([`Self::woken`]).
    pub fn set_wake(&mut self, wake: Arc<QueueWake>) {
        self.wake = Some(wake);
    }

    /// Records every arrival to a trace (see [`record`]); the hook must already be registered.
    pub fn set_recorder(&mut self, mut recorder: ArrivalRecorder, program_start: f64) {
        let since_start = functions::runtime::unix_now() - program_start;
        recorder.set_origin(self.clock.workload_s(since_start) - self.clock.now_s());
        self.recorder = Some(recorder);
    }

    /// The policy deciding now, by name (`manual` without one).
    pub fn policy_name(&self) -> String {
        match (&self.plan_policy, self.on_plan_policy, &self.policy) {
            (Some(p), true, _) => p.policy.name(),
            (_, _, Some(p)) => p.name(),
            (_, _, None) => "manual".to_string(),
        }
    }

    pub fn target(&self) -> u32 {
        self.target
    }

    pub fn time_scale(&self) -> f64 {
        self.clock.time_scale()
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

    /// How often the housekeeping should run: often enough to answer requests and ACKs
    /// promptly.
    pub fn tick_interval(&self) -> Duration {
        let period = Duration::from_secs_f64(self.clock.wall_s(self.cadence.period_s));
        (period / 4).clamp(Duration::from_millis(50), Duration::from_millis(250))
    }

    /// How long the loop may sleep before the next [`Self::tick`]: until the housekeeping or
    /// a decision is due, whichever comes first.
    pub fn next_tick_in(&self) -> Duration {
        let housekeeping = self.tick_interval().saturating_sub(self.last_tick.elapsed());
        let decision = self.clock.wall_s(self.cadence.wait_s(self.clock.now_s()));
        housekeeping
            .min(Duration::from_secs_f64(decision.clamp(0.0, 3600.0)))
            .max(Duration::from_millis(1))
    }

    /// Completes when the work queue jumped since the last decision (never without a wake
    /// hook); the loop then calls [`Self::request_decision`].
    pub async fn woken(&self) {
        match &self.wake {
            Some(w) => w.woken().await,
            None => std::future::pending().await,
        }
    }

    /// Brings the next decision forward, as far as the minimum gap allows.
    pub fn request_decision(&mut self) {
        self.cadence.request();
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

    /// Carries on over a new connection to the broker, reading the farm over it too, after the
    /// old one was lost — a serving node restarted under a passive `run`.
    pub fn reconnect(&mut self, conn: MultiplexedConnection, program_start: f64) {
        self.reader = Box::new(reader::RedisReader::new(conn.clone(), program_start));
        self.conn = conn;
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
            self.check_job().await?;
        }
        self.record();

        let mut decided = None;
        let now_s = self.clock.now_s();
        if self.cadence.due(now_s) {
            // Marked decided only once the farm was read: a failed read is retried at the next
            // tick, not a whole period later.
            let reading = self.reader.read().await?;
            self.cadence.decided(now_s);
            if !self.cfg.passive {
                self.requeue_orphans(&reading).await?;
            }
            let now = self.metrics(&reading);
            if self.read_plans {
                self.update_plan(now.time_s);
            }
            if let Some(obs) = self.observer.observe(now.clone()) {
                self.decide_and_act(obs).await?;
            }
            if let Some(wake) = &self.wake {
                let idle = now.workers_live.saturating_sub(now.workers_busy);
                wake.arm(now.queue_length, idle);
            }
            self.stats.update(|s| s.last = now.clone());
            self.last = Some(now.clone());
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
        let last = self.last.clone().unwrap_or_default();
        let (completed, met, sum_s, max_s) = match &reading.collected {
            Some(c) => (
                c.tasks_total,
                c.qos_met_total,
                self.clock.workload_s(c.latency_sum_s),
                self.clock.workload_s(c.window_max_s),
            ),
            // The keyspace was busy (a long script): keep the last totals.
            None => (
                last.completed_total,
                last.qos_met_total,
                last.completion_sum_s,
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
            workers_busy: reading.busy_workers(counts.live),
            workers_starting: counts.starting,
            oldest_slack_s: self.clock.workload_s(reading.queue.oldest_slack_s),
            queued_work_s: self.clock.workload_s(reading.queue.queued_work_s),
        }
    }

    /// How long a new worker takes to serve, workload seconds.
    fn startup_s(&self) -> f64 {
        self.clock.workload_s(self.cfg.worker_startup_wall_s)
    }

    /// Reads the job's plan and, with a policy of its own, switches to it (or back).
    fn update_plan(&mut self, now_s: f64) {
        let plan = self
            .reader
            .plan_inputs()
            .and_then(|inputs| self.plan_book.build(&inputs, now_s, self.clock.time_scale()));
        let before = self.job_plan.as_ref().map(|p| p.source);
        let after = plan.as_ref().map(|p| p.source);
        self.job_plan = plan;
        if before == after {
            return;
        }
        let on_plan = self.job_plan.is_some() && self.plan_policy.is_some();
        if on_plan != self.on_plan_policy {
            self.on_plan_policy = on_plan;
            self.cadence.period_s = match (&self.plan_policy, on_plan) {
                (Some(p), true) => p.period_s,
                _ => self.cfg.decision_period_s,
            };
        }
        let policy = self.policy_name();
        self.stats.update(|s| s.policy = policy.clone());
        match &self.job_plan {
            Some(p) => tracing::info!(
                source = p.source.describe(),
                phases = p.phases(),
                ends_in_s = format!("{:.0}", p.end_s() - now_s),
                policy,
                "the job's plan is known"
            ),
            None => tracing::info!(policy, "no job plan any more"),
        }
    }

    async fn decide_and_act(&mut self, obs: Observation) -> Result<(), NodeError> {
        let startup_s = self.startup_s();
        let mut obs = obs.with_startup(startup_s).with_calendar(self.calendar.as_ref());
        if let Some(plan) = &self.job_plan {
            // As a calendar looks: one period plus the slowest start-up.
            obs.outlook = Some(plan.outlook(obs.now.time_s, self.cadence.period_s + 1.2 * startup_s));
        }
        let policy = match (&mut self.plan_policy, self.on_plan_policy) {
            (Some(p), true) => Some(p.policy.as_mut()),
            _ => self.policy.as_deref_mut(),
        };
        if let Some(policy) = policy {
            let t0 = Instant::now();
            let plan: Plan = decide::decide(
                &obs,
                policy,
                self.target,
                &self.cfg.limits,
                &mut self.decision_state,
            );
            self.stats.record_decision(t0.elapsed());
            tracing::debug!(wanted = plan.wanted, target = plan.target, adjustment = ?plan.adjustment, queue = obs.now.queue_length, "decision");
            self.target = plan.target;
        }
        if !self.cfg.passive {
            // Also in manual mode: a worker that died is replaced to hold the target.
            self.act().await;
        }
        if !self.cfg.keep_steps {
            return Ok(());
        }
        self.summary.steps.push(StepRecord {
            time_s: obs.now.time_s,
            workers: self.scaler.counts().effective(),
            target: self.target,
            queue_length: obs.now.queue_length,
            arrival_rate: obs.arrival_rate,
            window_qos: obs.window_qos,
        });
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
            // Nothing changed: the platform caps the farm (the scaler reports it in the
            // counts' `capped`), which is no scaling action.
            Ok(()) if self.scaler.counts().effective() == before => {}
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

    /// A job's announced clock (`autoscale:job`): adopted or refused, once per announcement.
    async fn check_job(&mut self) -> Result<(), NodeError> {
        let raw: Option<String> = self.conn.get(requests::JOB).await?;
        if raw == self.job_seen {
            return Ok(());
        }
        self.job_seen = raw.clone();
        let Some(raw) = raw else { return Ok(()) };
        let verdict = job::answer(&raw, self.clock.time_scale(), self.cfg.time_scale_fixed);
        if let Some(scale) = verdict.adopt {
            self.clock.set_time_scale(scale);
            // Rates and sums measured on the old clock do not mix with the new one.
            self.observer = Observer::new();
            tracing::info!(time_scale = scale, job = %verdict.answer.id, "adopted the job's time scale");
        } else if !verdict.answer.accepted {
            tracing::warn!(job = %verdict.answer.id, reason = %verdict.answer.message, "refused a job's time scale");
        }
        self.job = Some(verdict.answer);
        Ok(())
    }

    /// Writes the arrivals recorded since the last tick; a failing file stops the recording
    /// (with an error in the log), never the node.
    fn record(&mut self) {
        let Some(rec) = self.recorder.as_mut() else { return };
        if let Err(e) = rec.drain(&self.clock) {
            tracing::error!(path = %rec.path().display(), error = %e, "recording stopped");
            self.recorder = None;
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
        // An inherited list stays a candidate until its worker connects or it is re-queued.
        self.inherited.retain(|id| !reading.connected.contains(id));
        let candidates: Vec<WorkerId> = reading
            .processing
            .iter()
            .map(|(id, _)| id.clone())
            .chain(self.inherited.iter().cloned())
            .collect();
        self.orphans
            .retain(|id, _| candidates.contains(id) && !reading.connected.contains(id));
        let mut due = Vec::new();
        for id in &candidates {
            if reading.connected.contains(id) || due.contains(id) {
                continue;
            }
            let since = *self.orphans.entry(id.clone()).or_insert(now);
            if now.duration_since(since) >= self.cfg.orphan_grace {
                due.push(id.clone());
            }
        }
        for id in due {
            self.orphans.remove(&id);
            self.inherited.retain(|i| *i != id);
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
                    self.policy_name()
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
        let stats = self.stats.snapshot();
        let plan = match (&self.job_plan, &self.calendar) {
            (Some(p), _) => Some(p.source.describe().to_string()),
            (None, Some(_)) => Some("the run's workload".to_string()),
            (None, None) => None,
        };
        let status = NodeStatus {
            scaler: self.scaler.kind().to_string(),
            policy: self.policy_name(),
            target: self.target,
            workers: counts.clone(),
            decisions: stats.decisions,
            scaling_actions: self.summary.scaling_actions,
            min_workers: self.cfg.limits.min_workers,
            max_workers: self.cfg.limits.max_workers,
            scale_ups: stats.scale_ups,
            scale_downs: stats.scale_downs,
            time_scale: self.clock.time_scale(),
            plan,
            job: self.job.clone(),
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

    /// Stops the workers the scaler started, and finishes the recording.
    pub async fn shutdown(&mut self) -> Result<(), NodeError> {
        self.stats.update(|s| s.ready = false);
        if let Some(rec) = self.recorder.as_mut() {
            match rec.finish(&self.clock) {
                Ok(()) => tracing::info!(
                    path = %rec.path().display(),
                    arrivals = rec.recorded,
                    not_tasks = rec.skipped,
                    "recording written"
                ),
                Err(e) => tracing::error!(path = %rec.path().display(), error = %e, "recording failed"),
            }
        }
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
