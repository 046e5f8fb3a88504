//! The node's control loop, shared by `serve` and `run`: every tick it reconciles the scaler,
//! re-queues the tasks of workers that vanished, answers `scale` requests and publishes the
//! node's status; every decision period it builds the observation from the broker's metrics
//! (in-process when the broker is embedded), asks the policy and scales.

use crate::requests::{self, NodeStatus, ScaleOp, ScaleReply, ScaleRequest};
use crate::scaler::{Scaler, WorkerCounts, WORKER_QUEUE};
use crate::stats::NodeStats;
use agent::eval::StepRecord;
use agent::observe::{observe, Calendar, FarmMetrics};
use agent::policy::Policy;
use functions::runtime::totals;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Prefix of a worker's processing list; the worker's id follows.
pub const PROCESSING_PREFIX: &str = "worker_queue:processing:";

/// Where the farm's metrics come from.
pub enum Source {
    /// The embedded broker: queue counters and client names read in-process.
    InProcess(broker::Broker),
    /// Another Redis server: polled over the control connection.
    Remote,
}

#[derive(Clone, Debug)]
pub struct ControlConfig {
    /// Wall-clock time between decisions.
    pub decision_period: Duration,
    /// Wall-clock seconds per workload second (the policy sees workload time).
    pub time_scale: f64,
    pub min_workers: u32,
    pub max_workers: u32,
    /// A processing list whose worker has been disconnected this long is re-queued.
    pub orphan_grace: Duration,
    /// Unix time (s) the farm's clock started (task timestamps are relative to it).
    pub program_start: f64,
    /// Observe only: another node on this broker owns the workers, answers `scale` requests,
    /// publishes the status and re-queues orphans (`run` against a serving node).
    pub passive: bool,
}

/// A `scale` request waiting for its scale-downs to be acknowledged.
struct PendingReply {
    id: String,
    deadline: Instant,
    /// Requested removals still unacknowledged when the request arrived plus this request's.
    until_pending_at_most: u32,
    target: u32,
}

pub struct Controller {
    /// `None`: manual mode, the target changes only through `scale`.
    policy: Option<Box<dyn Policy>>,
    policy_name: String,
    pub scaler: Box<dyn Scaler>,
    source: Source,
    conn: MultiplexedConnection,
    cfg: ControlConfig,
    pub stats: Arc<NodeStats>,
    started: Instant,
    prev: Option<FarmMetrics>,
    target: u32,
    last_decision: Option<Instant>,
    last_tick: Instant,
    orphans: HashMap<String, Instant>,
    pending_replies: Vec<PendingReply>,
    /// One record per decision, for the run report's plots.
    pub steps: Vec<StepRecord>,
    /// Σ workers × wall seconds (live, starting and leaving workers all cost).
    pub worker_seconds_wall: f64,
    pub max_workers_seen: u32,
    pub scaling_actions: u64,
    pub requeued_tasks: u64,
    pub vanished_workers: u64,
    /// Length of `output_queue` at the last snapshot: records past it are new.
    output_seen: usize,
    /// The load calendar, when the node knows the workload's schedule (`run` does).
    calendar: Option<Calendar>,
}

/// Where the collector writes one record per task (newest first).
const OUTPUT_QUEUE: &str = "output_queue";
/// At most this many new records are read per decision for the window's completion maximum.
const MAX_NEW_RECORDS: usize = 10_000;

impl Controller {
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        policy: Option<Box<dyn Policy>>,
        scaler: Box<dyn Scaler>,
        source: Source,
        mut conn: MultiplexedConnection,
        cfg: ControlConfig,
        initial_target: u32,
        stats: Arc<NodeStats>,
    ) -> anyhow::Result<Controller> {
        if !cfg.passive {
            let _: () = redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(requests::CONTROLLER_NAME)
                .query_async(&mut conn)
                .await?;
        }
        if let Source::InProcess(b) = &source {
            // The farm's queues keep their counters (and their `/metrics` series) while empty.
            let q = functions::Queues::default();
            for name in [&q.input, &q.worker, &q.result, &q.output] {
                b.queues().pin(0, name.as_bytes());
            }
        }
        let policy_name = policy.as_ref().map_or("manual".to_string(), |p| p.name());
        stats.update(|s| {
            s.scaler = scaler.kind().to_string();
            s.policy = policy_name.clone();
        });
        Ok(Controller {
            policy,
            policy_name,
            scaler,
            source,
            conn,
            target: initial_target.clamp(cfg.min_workers, cfg.max_workers),
            cfg,
            stats,
            started: Instant::now(),
            prev: None,
            last_decision: None,
            last_tick: Instant::now(),
            orphans: HashMap::new(),
            pending_replies: Vec::new(),
            steps: Vec::new(),
            worker_seconds_wall: 0.0,
            max_workers_seen: 0,
            scaling_actions: 0,
            requeued_tasks: 0,
            vanished_workers: 0,
            output_seen: 0,
            calendar: None,
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

    pub fn conn(&mut self) -> &mut MultiplexedConnection {
        &mut self.conn
    }

    /// How often `tick` should run: often enough to answer requests and ACKs promptly.
    pub fn tick_interval(&self) -> Duration {
        (self.cfg.decision_period / 4).clamp(Duration::from_millis(50), Duration::from_millis(250))
    }

    /// Starts the initial workers.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.scaler.scale_to(self.target, &mut self.conn).await?;
        self.max_workers_seen = self.workers_held(&self.scaler.counts());
        self.publish().await
    }

    fn workers_held(&self, c: &WorkerCounts) -> u32 {
        c.live + c.starting + c.leaving
    }

    /// One round of housekeeping, plus a decision when one is due. Returns the latest snapshot
    /// when a decision was made.
    pub async fn tick(&mut self) -> anyhow::Result<Option<FarmMetrics>> {
        let elapsed = self.last_tick.elapsed().as_secs_f64();
        self.last_tick = Instant::now();
        self.worker_seconds_wall += elapsed * self.workers_held(&self.scaler.counts()) as f64;

        for v in self.scaler.reconcile(&mut self.conn).await? {
            self.vanished_workers += 1;
            self.requeue(&v.id, &v.reason).await?;
        }
        let connected = self.connected_workers().await?;
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
            let lists = self.processing_lists().await?;
            if !self.cfg.passive {
                self.requeue_orphans(&connected, &lists).await?;
            }
            let now = self.snapshot_with(busy_workers(&lists, &connected)).await?;
            if let Some(prev) = self.prev.replace(now.clone()) {
                self.decide(&prev, &now).await?;
            }
            decided = Some(now);
        }
        self.answer_pending().await?;
        let counts = self.scaler.counts();
        self.max_workers_seen = self.max_workers_seen.max(self.workers_held(&counts));
        self.publish().await?;
        Ok(decided)
    }

    async fn decide(&mut self, prev: &FarmMetrics, now: &FarmMetrics) -> anyhow::Result<()> {
        let obs = observe(prev, now).with_calendar(self.calendar.as_ref());
        if let Some(policy) = self.policy.as_mut() {
            let t0 = Instant::now();
            let wanted = policy.decide(&obs);
            let latency = t0.elapsed();
            self.target = wanted.clamp(self.cfg.min_workers, self.cfg.max_workers);
            self.stats.record_decision(latency);
            tracing::debug!(wanted, target = self.target, queue = now.queue_length, "decision");
        }
        if !self.cfg.passive {
            // Also in manual mode: a worker that died is replaced to hold the target.
            self.apply_target().await?;
        }
        self.steps.push(StepRecord {
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

    async fn apply_target(&mut self) -> anyhow::Result<()> {
        let before = self.scaler.counts().effective();
        if before == self.target {
            return Ok(());
        }
        match self.scaler.scale_to(self.target, &mut self.conn).await {
            Ok(()) => {
                self.scaling_actions += 1;
                tracing::info!(
                    from = before,
                    to = self.target,
                    scaler = self.scaler.kind(),
                    "scaled"
                );
                self.stats.update(|s| {
                    if self.target > before {
                        s.scale_ups += 1
                    } else {
                        s.scale_downs += 1
                    }
                });
                Ok(())
            }
            Err(e) => {
                // A scaler error (gateway down, API refusing) must not stop the node: count it,
                // log it and try again at the next decision.
                tracing::error!(error = %format!("{e:#}"), target = self.target, "scaling failed");
                self.stats.update(|s| s.scaler_errors += 1);
                Ok(())
            }
        }
    }

    /// Moves a worker's unfinished tasks back to the queue.
    async fn requeue(&mut self, id: &str, reason: &str) -> anyhow::Result<()> {
        let list = format!("{PROCESSING_PREFIX}{id}");
        let n = functions::requeue_processing(&mut self.conn, &list, WORKER_QUEUE).await?;
        if n > 0 {
            tracing::warn!(
                worker = id,
                tasks = n,
                reason,
                "re-queued the tasks of a vanished worker"
            );
        }
        self.requeued_tasks += n as u64;
        self.stats.update(|s| s.requeued_tasks += n as u64);
        Ok(())
    }

    /// Ids of the connected `worker:<id>` clients.
    async fn connected_workers(&mut self) -> anyhow::Result<Vec<String>> {
        let names: Vec<String> = match &self.source {
            Source::InProcess(b) => b.client_names().into_iter().filter_map(|(_, n)| n).collect(),
            Source::Remote => {
                let list: String = redis::cmd("CLIENT")
                    .arg("LIST")
                    .query_async(&mut self.conn)
                    .await?;
                list.lines()
                    .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("name=")))
                    .map(str::to_string)
                    .collect()
            }
        };
        Ok(names
            .into_iter()
            .filter_map(|n| n.strip_prefix("worker:").map(str::to_string))
            .collect())
    }

    /// Processing lists that hold tasks, by worker id, with their lengths.
    async fn processing_lists(&mut self) -> anyhow::Result<Vec<(String, u64)>> {
        match &self.source {
            Source::InProcess(b) => Ok(b
                .queues()
                .snapshot()
                .into_iter()
                .filter(|q| q.db == 0 && q.length > 0)
                .filter_map(|q| {
                    let name = String::from_utf8_lossy(&q.name).into_owned();
                    name.strip_prefix(PROCESSING_PREFIX)
                        .map(|id| (id.to_string(), q.length))
                })
                .collect()),
            Source::Remote => {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{PROCESSING_PREFIX}*"))
                    .query_async(&mut self.conn)
                    .await?;
                let mut out = Vec::new();
                for k in keys {
                    let n: u64 = self.conn.llen(&k).await?;
                    if n > 0 {
                        out.push((k[PROCESSING_PREFIX.len()..].to_string(), n));
                    }
                }
                Ok(out)
            }
        }
    }

    /// A processing list whose worker has been gone for the grace period goes back to the
    /// queue: the worker died without its process being ours to reap (a pod, a remote host).
    async fn requeue_orphans(&mut self, connected: &[String], lists: &[(String, u64)]) -> anyhow::Result<()> {
        let now = Instant::now();
        self.orphans
            .retain(|id, _| lists.iter().any(|(l, _)| l == id) && !connected.contains(id));
        let mut due = Vec::new();
        for (id, _) in lists {
            if connected.contains(id) {
                continue;
            }
            let since = *self.orphans.entry(id.clone()).or_insert(now);
            if now.duration_since(since) >= self.cfg.orphan_grace {
                due.push(id.clone());
            }
        }
        for id in due {
            self.orphans.remove(&id);
            self.vanished_workers += 1;
            self.requeue(&id, "disconnected past the grace period").await?;
        }
        Ok(())
    }

    /// The farm as the policy sees it, in workload time.
    pub async fn snapshot(&mut self) -> anyhow::Result<FarmMetrics> {
        let connected = self.connected_workers().await?;
        let lists = self.processing_lists().await?;
        self.snapshot_with(busy_workers(&lists, &connected)).await
    }

    /// [`Self::snapshot`] with the busy-worker count already known.
    async fn snapshot_with(&mut self, busy: u32) -> anyhow::Result<FarmMetrics> {
        let scale = self.cfg.time_scale;
        let counts = self.scaler.counts();
        let time_s = self.started.elapsed().as_secs_f64() / scale;
        let prev = self.prev.clone().unwrap_or_default();
        let (queue_length, pushed, popped, oldest_age_s, totals) = match &self.source {
            Source::InProcess(b) => {
                let q = b.queues().queue(0, WORKER_QUEUE.as_bytes());
                let totals = b
                    .get_strings(0, &[totals::TASKS, totals::QOS_MET, totals::LATENCY_MEAN_S])
                    .map(|v| {
                        v.into_iter()
                            .map(|b| {
                                b.and_then(|b| std::str::from_utf8(&b).ok()?.parse::<f64>().ok())
                                    .unwrap_or(0.0)
                            })
                            .collect::<Vec<f64>>()
                    });
                match q {
                    Some(q) => (
                        q.length,
                        q.pushed_total,
                        q.popped_total,
                        q.oldest_age_ms / 1000.0 / scale,
                        totals,
                    ),
                    None => (0, 0, 0, 0.0, totals),
                }
            }
            Source::Remote => {
                let len: u64 = self.conn.llen(WORKER_QUEUE).await?;
                let pushed = get_f64(&mut self.conn, "worker_queue:enqueued_total").await? as u64;
                let oldest = match self.conn.lindex::<_, Option<String>>(WORKER_QUEUE, -1).await? {
                    Some(raw) => serde_json::from_str::<functions::messages::Task>(&raw)
                        .ok()
                        .map_or(0.0, |t| {
                            let since_start = functions::runtime::unix_now() - self.cfg.program_start;
                            ((since_start - t.task_gen_timestamp) / scale).max(0.0)
                        }),
                    None => 0.0,
                };
                let mut totals = Vec::new();
                for k in [totals::TASKS, totals::QOS_MET, totals::LATENCY_MEAN_S] {
                    totals.push(get_f64(&mut self.conn, k).await?);
                }
                (len, pushed, pushed.saturating_sub(len), oldest, Some(totals))
            }
        };
        let (completed, met, completion_sum_s) = match totals {
            // The collector's mean latency is in wall seconds.
            Some(t) => {
                let completed = t[0].max(0.0) as u64;
                (completed, t[1].max(0.0) as u64, t[2] * completed as f64 / scale)
            }
            // The keyspace was busy (a long script): keep the last totals.
            None => (prev.completed_total, prev.qos_met_total, prev.completion_sum_s),
        };
        Ok(FarmMetrics {
            time_s,
            queue_length,
            pushed_total: pushed,
            popped_total: popped,
            oldest_age_s,
            completed_total: completed,
            qos_met_total: met,
            completion_sum_s,
            completion_max_s: self.window_completion_max().await? / scale,
            workers_live: counts.live,
            workers_busy: busy,
            workers_starting: counts.starting,
        })
    }

    /// The largest completion time (wall seconds) among the output records written since the
    /// last snapshot — what `reactive-maximum` scales on. 0 when none.
    async fn window_completion_max(&mut self) -> anyhow::Result<f64> {
        let (len, records) = match &self.source {
            Source::InProcess(b) => match b.list_head(0, OUTPUT_QUEUE, MAX_NEW_RECORDS) {
                Some((len, all)) => {
                    // A shorter list was cleared and refilled: all of it is new.
                    let new = if len < self.output_seen {
                        len
                    } else {
                        len - self.output_seen
                    };
                    (
                        len,
                        all.into_iter()
                            .take(new)
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .collect(),
                    )
                }
                None => return Ok(0.0),
            },
            Source::Remote => {
                let len: usize = self.conn.llen(OUTPUT_QUEUE).await?;
                let new = if len < self.output_seen {
                    len
                } else {
                    len - self.output_seen
                };
                let records: Vec<String> = if new == 0 {
                    Vec::new()
                } else {
                    self.conn
                        .lrange(OUTPUT_QUEUE, 0, new.min(MAX_NEW_RECORDS) as isize - 1)
                        .await?
                };
                (len, records)
            }
        };
        self.output_seen = len;
        Ok(records
            .iter()
            .filter_map(|r| serde_json::from_str::<functions::messages::OutputRecord>(r).ok())
            .map(|r| r.task_completion_time)
            .fold(0.0, f64::max))
    }

    async fn handle_requests(&mut self) -> anyhow::Result<()> {
        loop {
            let raw: Option<String> = self.conn.rpop(requests::REQUESTS, None).await?;
            let Some(raw) = raw else { return Ok(()) };
            let req: ScaleRequest = match serde_json::from_str(&raw) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, %raw, "ignoring a malformed scale request");
                    continue;
                }
            };
            self.stats.update(|s| s.scale_requests += 1);
            let before = self.target;
            let wanted = match req.op {
                ScaleOp::Add => self.target.saturating_add(req.n),
                ScaleOp::Remove => self.target.saturating_sub(req.n),
                ScaleOp::Set => req.n,
            };
            self.target = wanted.clamp(self.cfg.min_workers, self.cfg.max_workers);
            let mut note = String::new();
            if self.target != wanted {
                note = format!(
                    " (limited to the node's bounds {}..={})",
                    self.cfg.min_workers, self.cfg.max_workers
                );
            }
            if self.policy.is_some() {
                note.push_str(&format!(
                    "; policy {} decides again at its next period",
                    self.policy_name
                ));
            }
            tracing::info!(op = ?req.op, n = req.n, from = before, to = self.target, "scale request");
            self.apply_target().await?;
            if !req.reply {
                continue;
            }
            let counts = self.scaler.counts();
            if self.target < before && counts.pending_scale_down > 0 {
                self.pending_replies.push(PendingReply {
                    id: req.id,
                    deadline: Instant::now() + Duration::from_secs_f64(req.timeout_s.clamp(0.0, 3600.0)),
                    until_pending_at_most: counts.pending_scale_down
                        - (before - self.target).min(counts.pending_scale_down),
                    target: self.target,
                });
                continue;
            }
            let reply = ScaleReply {
                ok: true,
                message: format!("target {} → {}{note}", before, self.target),
                target: self.target,
                workers: counts,
            };
            self.reply(&req.id, &reply).await?;
        }
    }

    /// Answers `scale -N` requests once their scale-downs are acknowledged, or at their deadline.
    async fn answer_pending(&mut self) -> anyhow::Result<()> {
        let counts = self.scaler.counts();
        let mut i = 0;
        while i < self.pending_replies.len() {
            let p = &self.pending_replies[i];
            let done = counts.pending_scale_down <= p.until_pending_at_most;
            if !done && Instant::now() < p.deadline {
                i += 1;
                continue;
            }
            let p = self.pending_replies.remove(i);
            let reply = if done {
                ScaleReply {
                    ok: true,
                    message: format!(
                        "scaled down to {} workers; every removed worker acknowledged",
                        p.target
                    ),
                    target: p.target,
                    workers: counts.clone(),
                }
            } else {
                let missing = counts.pending_scale_down - p.until_pending_at_most;
                ScaleReply {
                    ok: false,
                    message: format!(
                        "{missing} worker(s) did not acknowledge the scale-down in time (all busy?); \
                         the request stays queued and the next worker to finish a task will leave"
                    ),
                    target: p.target,
                    workers: counts.clone(),
                }
            };
            self.reply(&p.id, &reply).await?;
        }
        Ok(())
    }

    async fn reply(&mut self, id: &str, reply: &ScaleReply) -> anyhow::Result<()> {
        let _: () = self
            .conn
            .set_ex(requests::reply_key(id), serde_json::to_string(reply)?, 60)
            .await?;
        Ok(())
    }

    async fn publish(&mut self) -> anyhow::Result<()> {
        let counts = self.scaler.counts();
        if self.cfg.passive {
            return Ok(());
        }
        let status = NodeStatus {
            scaler: self.scaler.kind().to_string(),
            policy: self.policy_name.clone(),
            target: self.target,
            workers: counts.clone(),
            decisions: self.stats.decisions(),
            scaling_actions: self.scaling_actions,
            min_workers: self.cfg.min_workers,
            max_workers: self.cfg.max_workers,
        };
        self.stats.update(|s| {
            s.target = self.target;
            s.workers = counts;
            s.ready = true;
        });
        let _: () = self
            .conn
            .set_ex(requests::STATUS, serde_json::to_string(&status)?, 5)
            .await?;
        Ok(())
    }

    /// Stops the workers the scaler started.
    pub async fn shutdown(&mut self) -> anyhow::Result<()> {
        self.stats.update(|s| s.ready = false);
        self.scaler.shutdown(&mut self.conn).await?;
        if !self.cfg.passive {
            let _: () = self.conn.del(requests::STATUS).await?;
        }
        Ok(())
    }
}

/// Connected workers holding a task (a non-empty processing list).
fn busy_workers(lists: &[(String, u64)], connected: &[String]) -> u32 {
    lists.iter().filter(|(id, _)| connected.contains(id)).count() as u32
}

async fn get_f64(conn: &mut MultiplexedConnection, key: &str) -> anyhow::Result<f64> {
    let v: Option<String> = conn.get(key).await?;
    Ok(v.and_then(|s| s.parse().ok()).unwrap_or(0.0))
}
