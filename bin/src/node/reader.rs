//! Observe: what the broker says about the farm, read in-process from the embedded broker or
//! over a Redis connection, with one meaning per field whichever way it was read.

use super::plan::{PlanInputs, MAX_QUEUED_PHASES};
use super::selector::QueueSelector;
use functions::protocol::{keys, FunctionName, Queues, WorkerId};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use std::future::Future;
use std::pin::Pin;

/// Why the farm could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the broker did not answer: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the embedded broker's keyspace stayed busy (a long script?)")]
    Busy,
}

/// A boxed future borrowed from the reader (object-safe async methods).
pub type ReadFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ReadError>> + Send + 'a>>;

/// The work queue, as the broker counts it. Wall-clock units.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueReading {
    /// Tasks waiting now.
    pub length: u64,
    /// Tasks ever pushed to the queue (re-queued ones count again).
    pub pushed_total: u64,
    /// Tasks ever taken from it.
    pub popped_total: u64,
    /// How long the oldest waiting task has waited, wall seconds (0 when empty).
    pub oldest_age_s: f64,
    /// The oldest waiting task's deadline minus its age minus its processing time, wall
    /// seconds (0 when empty).
    pub oldest_slack_s: f64,
    /// Σ processing times of the waiting tasks, wall seconds.
    pub queued_work_s: f64,
    /// Taken and not finished, as the queue itself knows it (a stream group's pending
    /// entries; 0 for queues that cannot tell).
    pub in_flight: u64,
}

impl QueueReading {
    /// A framework queue's figures as the broker lists them (`--queue`).
    fn of(q: &broker::QueueStats) -> QueueReading {
        QueueReading {
            length: q.length,
            pushed_total: q.pushed_total,
            popped_total: q.popped_total,
            oldest_age_s: q.oldest_age_ms / 1000.0,
            in_flight: q.pending,
            ..QueueReading::default()
        }
    }

    /// Adds another framework queue served by the same workers: counts add up, the oldest
    /// is the oldest of both (framework queues carry no deadlines, so no slack or work).
    fn add(&mut self, other: &QueueReading) {
        self.length += other.length;
        self.pushed_total += other.pushed_total;
        self.popped_total += other.popped_total;
        self.in_flight += other.in_flight;
        self.oldest_age_s = self.oldest_age_s.max(other.oldest_age_s);
    }
}

/// The collector's running totals. Wall-clock units.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CollectedReading {
    pub tasks_total: u64,
    pub qos_met_total: u64,
    /// Σ completion times of collected tasks, wall seconds.
    pub latency_sum_s: f64,
    /// The largest completion time of the tasks collected since the previous reading, wall
    /// seconds (0 if none).
    pub window_max_s: f64,
}

/// One reading of the farm.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FarmReading {
    /// Workers whose `worker:<id>` connection exists.
    pub connected: Vec<WorkerId>,
    /// Workers with a non-empty processing list, and its length.
    pub processing: Vec<(WorkerId, u64)>,
    pub queue: QueueReading,
    /// `None` when the totals could not be read this time (keep the last ones).
    pub collected: Option<CollectedReading>,
}

impl FarmReading {
    /// Connected workers holding a task; for a framework's stream, its in-flight entries (at
    /// most `live` workers hold them).
    pub fn busy_workers(&self, live: u32) -> u32 {
        let farm = self
            .processing
            .iter()
            .filter(|(id, _)| self.connected.contains(id))
            .count() as u32;
        farm.max(self.queue.in_flight.min(u64::from(live)) as u32)
    }
}

/// Where the node reads the farm from.
pub trait FarmReader: Send {
    /// Workers connected now (cheap: called every housekeeping tick).
    fn connected(&mut self) -> ReadFuture<'_, Vec<WorkerId>>;
    /// Everything a decision needs.
    fn read(&mut self) -> ReadFuture<'_, FarmReading>;
    /// What the broker holds about the job's plan (after a [`FarmReader::read`]), for a node
    /// that reads it there; `None` for readers that do not (over a connection, `run` knows
    /// its own plan) or when the keyspace stayed busy.
    fn plan_inputs(&mut self) -> Option<PlanInputs> {
        None
    }
}

/// The window-maximum buckets to read: the complete ones (the current bucket may still fill)
/// since the previous reading, at most a minute's worth. `next` is the first bucket not read
/// yet; each bucket is read exactly once, at most 100 ms after it closed.
fn buckets_since(next: &mut Option<u64>, now_s: f64) -> std::ops::Range<u64> {
    let current = keys::latency_bucket(now_s);
    let from = next.unwrap_or(current).max(current.saturating_sub(600));
    *next = Some(current);
    from..current
}

/// The slack of the oldest waiting task (its raw message, the queue's tail): deadline − age −
/// processing time, wall seconds, with `since_start_s` the farm's clock now; 0 for an element
/// that is not a task.
fn oldest_slack_s(oldest: Option<&[u8]>, since_start_s: f64) -> f64 {
    oldest
        .and_then(|raw| serde_json::from_slice::<functions::messages::Task>(raw).ok())
        .map_or(0.0, |t| {
            let slack =
                t.task_gen_timestamp + t.task_deadline - t.task_processing_time_simulated - since_start_s;
            if slack.is_finite() {
                slack
            } else {
                0.0
            }
        })
}

/// Queued work from the two counters (enqueued − taken, never below 0), wall seconds; 0 for
/// an empty queue whatever the counters say (a worker that died between taking a task and
/// counting it, or sums added in different orders, must not leave phantom work behind).
fn queued_work_s(length: u64, enqueued: f64, taken: f64) -> f64 {
    if length == 0 {
        0.0
    } else {
        (enqueued - taken).max(0.0)
    }
}

fn parse_f64(raw: Option<&[u8]>) -> f64 {
    raw.and_then(|b| std::str::from_utf8(b).ok()?.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .unwrap_or(0.0)
}

/// The embedded broker, read in-process: its queue counters, client registry and keyspace.
pub struct EmbeddedReader {
    broker: broker::Broker,
    queues: Queues,
    selector: QueueSelector,
    program_start: f64,
    next_bucket: Option<u64>,
    /// Emitters with a phase in their processing list at the last reading.
    emitters_running: Vec<String>,
}

impl EmbeddedReader {
    /// Reads `broker`; `program_start` is the farm's clock (task timestamps are relative to it).
    pub fn new(broker: broker::Broker, program_start: f64) -> EmbeddedReader {
        let queues = Queues::default();
        // The farm's queues keep their counters (and their `/metrics` series) while empty.
        for name in queues.data_queues() {
            broker.queues().pin(0, name.as_bytes());
        }
        EmbeddedReader {
            broker,
            queues,
            selector: QueueSelector::Farm,
            program_start,
            next_bucket: None,
            emitters_running: Vec::new(),
        }
    }

    /// Scales on `selector`'s queue instead of the farm's (declared to the broker, so it is
    /// listed while empty).
    pub fn with_queue(mut self, selector: QueueSelector) -> EmbeddedReader {
        selector.pin(&self.broker.queues());
        self.selector = selector;
        self
    }

    fn connected_now(&self) -> Vec<WorkerId> {
        self.broker
            .client_names()
            .into_iter()
            .filter_map(|(_, n)| WorkerId::from_client_name(n.as_deref()?))
            .collect()
    }
}

impl FarmReader for EmbeddedReader {
    fn connected(&mut self) -> ReadFuture<'_, Vec<WorkerId>> {
        let connected = self.connected_now();
        Box::pin(async move { Ok(connected) })
    }

    fn plan_inputs(&mut self) -> Option<PlanInputs> {
        let b = &self.broker;
        let q = &self.queues;
        let published = b.get_strings(0, &[crate::requests::PLAN])?.pop().flatten();
        let mut running = Vec::new();
        for id in &self.emitters_running {
            let (_, config) = b.list_tail(0, &q.emitter_processing(id), 1)?;
            let Some(config) = config.into_iter().next() else {
                continue;
            };
            let progress = b.get_strings(0, &[&q.emitter_progress(id)])?.pop().flatten();
            running.push((config, progress));
        }
        let (_, queued) = b.list_tail(0, &q.input, MAX_QUEUED_PHASES)?;
        let idle_emitters = b
            .client_names()
            .into_iter()
            .filter_map(|(_, n)| FunctionName::from_client_name(n.as_deref()?))
            .filter(|f| f.is_emitter() && !self.emitters_running.contains(&f.id))
            .count();
        Some(PlanInputs {
            published,
            running,
            queued,
            idle_emitters,
            since_start_s: functions::runtime::unix_now() - self.program_start,
        })
    }

    fn read(&mut self) -> ReadFuture<'_, FarmReading> {
        Box::pin(async move {
            let registry = self.broker.queues();
            let mut processing = Vec::new();
            self.emitters_running.clear();
            for q in registry.snapshot() {
                if q.db != 0 || q.length == 0 {
                    continue;
                }
                let name = String::from_utf8_lossy(&q.name);
                if let Some(id) = self.queues.worker_of_processing(&name) {
                    processing.push((id, q.length));
                } else if let Some(emitter) = self.queues.emitter_of_processing(&name) {
                    self.emitters_running.push(emitter.to_string());
                }
            }
            if !self.selector.is_farm() {
                let mut queue = QueueReading::default();
                for part in self.selector.parts() {
                    let key = part.key().unwrap_or_default();
                    let stats = self.broker.queues_of(0, key.as_bytes()).ok_or(ReadError::Busy)?;
                    if let Some(q) = part.pick(&stats) {
                        queue.add(&QueueReading::of(q));
                    }
                }
                return Ok(FarmReading {
                    connected: self.connected_now(),
                    processing,
                    queue,
                    collected: None,
                });
            }
            let mut queue = registry
                .queue(0, self.queues.worker.as_bytes())
                .map(|q| QueueReading {
                    length: q.length,
                    pushed_total: q.pushed_total,
                    popped_total: q.popped_total,
                    oldest_age_s: q.oldest_age_ms / 1000.0,
                    ..QueueReading::default()
                })
                .unwrap_or_default();
            let now = functions::runtime::unix_now();
            if queue.length > 0 {
                // One element, however long the queue: the tail is the oldest task.
                let (_, oldest) = self
                    .broker
                    .list_tail(0, &self.queues.worker, 1)
                    .ok_or(ReadError::Busy)?;
                queue.oldest_slack_s =
                    oldest_slack_s(oldest.first().map(|b| b.as_ref()), now - self.program_start);
            }
            let buckets: Vec<String> = buckets_since(&mut self.next_bucket, now)
                .map(keys::latency_max_s)
                .collect();
            let (enqueued_work, taken_work) = (self.queues.enqueued_work_s(), self.queues.taken_work_s());
            let mut names = vec![
                enqueued_work.as_str(),
                taken_work.as_str(),
                keys::TASKS_TOTAL,
                keys::QOS_MET_TOTAL,
                keys::LATENCY_SUM_S,
            ];
            names.extend(buckets.iter().map(String::as_str));
            let values = self.broker.get_strings(0, &names);
            let collected = values.as_ref().map(|v| {
                let f = |i: usize| parse_f64(v.get(i).and_then(|b| b.as_deref()));
                queue.queued_work_s = queued_work_s(queue.length, f(0), f(1));
                CollectedReading {
                    tasks_total: f(2).max(0.0) as u64,
                    qos_met_total: f(3).max(0.0) as u64,
                    latency_sum_s: f(4),
                    window_max_s: (5..v.len()).map(f).fold(0.0, f64::max),
                }
            });
            Ok(FarmReading {
                connected: self.connected_now(),
                processing,
                queue,
                collected,
            })
        })
    }
}

/// Any Redis server — another autoscale-node or redis-server — read over a connection.
///
/// The queue's counters come from `QSTATS` when the server is an autoscale-node; plain Redis
/// has no such counters, so there `pushed_total` is the emitter's `enqueued_total` (re-queued
/// tasks do not count again), `popped_total` is pushed − length, and the oldest task's age is
/// taken from its `task_emit_timestamp` (time since it was first emitted).
pub struct RedisReader {
    conn: MultiplexedConnection,
    queues: Queues,
    program_start: f64,
    next_bucket: Option<u64>,
    /// Whether the server answers QSTATS (learned at the first reading).
    has_qstats: Option<bool>,
}

impl RedisReader {
    pub fn new(conn: MultiplexedConnection, program_start: f64) -> RedisReader {
        RedisReader {
            conn,
            queues: Queues::default(),
            program_start,
            next_bucket: None,
            has_qstats: None,
        }
    }

    async fn connected_now(&mut self) -> Result<Vec<WorkerId>, ReadError> {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut self.conn)
            .await?;
        Ok(list
            .lines()
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("name=")))
            .filter_map(WorkerId::from_client_name)
            .collect())
    }

    async fn processing(&mut self) -> Result<Vec<(WorkerId, u64)>, ReadError> {
        scan_processing(&mut self.conn, &self.queues).await
    }

    /// The queue's counters, plus its oldest task's slack and the queued work (one `LINDEX`
    /// and one `MGET`, whatever the queue's length).
    async fn queue(&mut self) -> Result<QueueReading, ReadError> {
        let mut reading = self.queue_counters().await?;
        let oldest: Option<Vec<u8>> = self.conn.lindex(&self.queues.worker, -1).await?;
        let since_start = functions::runtime::unix_now() - self.program_start;
        reading.oldest_slack_s = oldest_slack_s(oldest.as_deref(), since_start);
        let work: Vec<Option<String>> = redis::cmd("MGET")
            .arg(self.queues.enqueued_work_s())
            .arg(self.queues.taken_work_s())
            .query_async(&mut self.conn)
            .await?;
        let f = |i: usize| parse_f64(work.get(i).and_then(|v| v.as_deref()).map(str::as_bytes));
        reading.queued_work_s = queued_work_s(reading.length, f(0), f(1));
        Ok(reading)
    }

    async fn queue_counters(&mut self) -> Result<QueueReading, ReadError> {
        if self.has_qstats != Some(false) {
            let answer: redis::RedisResult<redis::Value> = redis::cmd("QSTATS")
                .arg(&self.queues.worker)
                .query_async(&mut self.conn)
                .await;
            match answer {
                Ok(v) => {
                    self.has_qstats = Some(true);
                    return Ok(queue_from_qstats(&v, &self.queues.worker));
                }
                Err(e) if e.kind() == redis::ErrorKind::ResponseError || e.code() == Some("ERR") => {
                    self.has_qstats = Some(false);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let length: u64 = self.conn.llen(&self.queues.worker).await?;
        let enqueued: Option<String> = self.conn.get(self.queues.enqueued_total()).await?;
        let pushed = parse_f64(enqueued.as_deref().map(str::as_bytes)).max(0.0) as u64;
        let oldest: Option<String> = self.conn.lindex(&self.queues.worker, -1).await?;
        let oldest_age_s = oldest
            .and_then(|raw| serde_json::from_str::<functions::messages::Task>(&raw).ok())
            .map_or(0.0, |t| {
                let since_start = functions::runtime::unix_now() - self.program_start;
                (since_start - t.task_emit_timestamp).max(0.0)
            });
        Ok(QueueReading {
            length,
            pushed_total: pushed,
            popped_total: pushed.saturating_sub(length),
            oldest_age_s,
            ..QueueReading::default()
        })
    }

    async fn collected(&mut self) -> Result<CollectedReading, ReadError> {
        let mut names: Vec<String> = vec![
            keys::TASKS_TOTAL.into(),
            keys::QOS_MET_TOTAL.into(),
            keys::LATENCY_SUM_S.into(),
        ];
        names.extend(
            buckets_since(&mut self.next_bucket, functions::runtime::unix_now()).map(keys::latency_max_s),
        );
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&names).query_async(&mut self.conn).await?;
        let f = |i: usize| parse_f64(values.get(i).and_then(|v| v.as_deref()).map(str::as_bytes));
        Ok(CollectedReading {
            tasks_total: f(0).max(0.0) as u64,
            qos_met_total: f(1).max(0.0) as u64,
            latency_sum_s: f(2),
            window_max_s: (3..values.len()).map(f).fold(0.0, f64::max),
        })
    }
}

/// The worker queue's counters from a `QSTATS <queue>` reply (a map of one map, RESP2 or RESP3).
fn queue_from_qstats(v: &redis::Value, queue: &str) -> QueueReading {
    let fields = pairs(v)
        .into_iter()
        .find(|(k, _)| text(k).as_deref() == Some(queue))
        .map(|(_, inner)| pairs(inner))
        .unwrap_or_default();
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some(name))
            .and_then(|(_, v)| text(v)?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    QueueReading {
        length: get("length") as u64,
        pushed_total: get("pushed_total") as u64,
        popped_total: get("popped_total") as u64,
        oldest_age_s: get("oldest_age_ms") / 1000.0,
        in_flight: get("pending") as u64,
        ..QueueReading::default()
    }
}

fn pairs(v: &redis::Value) -> Vec<(&redis::Value, &redis::Value)> {
    match v {
        redis::Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        redis::Value::Array(a) => a
            .chunks(2)
            .filter_map(|c| Some((c.first()?, c.get(1)?)))
            .collect(),
        _ => Vec::new(),
    }
}

fn text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) | redis::Value::VerbatimString { text: s, .. } => Some(s.clone()),
        redis::Value::Int(i) => Some(i.to_string()),
        redis::Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

impl FarmReader for RedisReader {
    fn connected(&mut self) -> ReadFuture<'_, Vec<WorkerId>> {
        Box::pin(self.connected_now())
    }

    fn read(&mut self) -> ReadFuture<'_, FarmReading> {
        Box::pin(async move {
            Ok(FarmReading {
                connected: self.connected_now().await?,
                processing: self.processing().await?,
                queue: self.queue().await?,
                collected: Some(self.collected().await?),
            })
        })
    }
}

/// Every non-empty worker processing list, found by SCAN (whatever the queue registry
/// tracks: a list replayed from the append-only log is found too).
pub async fn scan_processing(
    conn: &mut MultiplexedConnection,
    queues: &Queues,
) -> Result<Vec<(WorkerId, u64)>, ReadError> {
    let pattern = format!("{}*", queues.processing_prefix());
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut out = Vec::new();
    for key in keys {
        let Some(id) = queues.worker_of_processing(&key) else {
            continue;
        };
        let n: u64 = conn.llen(&key).await?;
        if n > 0 {
            out.push((id, n));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn qstats_replies_in_both_protocols() {
        let fields = vec![
            (bulk("length"), bulk("3")),
            (bulk("pushed_total"), bulk("10")),
            (bulk("popped_total"), bulk("7")),
            (bulk("oldest_age_ms"), bulk("1500.000")),
        ];
        let expected = QueueReading {
            length: 3,
            pushed_total: 10,
            popped_total: 7,
            oldest_age_s: 1.5,
            ..QueueReading::default()
        };
        let resp3 = Value::Map(vec![(bulk("worker_queue"), Value::Map(fields.clone()))]);
        assert_eq!(queue_from_qstats(&resp3, "worker_queue"), expected);
        let flat: Vec<Value> = fields.into_iter().flat_map(|(k, v)| [k, v]).collect();
        let resp2 = Value::Array(vec![bulk("worker_queue"), Value::Array(flat)]);
        assert_eq!(queue_from_qstats(&resp2, "worker_queue"), expected);
        assert_eq!(
            queue_from_qstats(&Value::Array(vec![]), "worker_queue"),
            QueueReading::default()
        );
    }

    #[test]
    fn the_oldest_tasks_slack_and_the_queued_work() {
        let task = serde_json::json!({"task_id": "t", "task_gen_timestamp": 10.0,
            "task_application": "image", "task_priority": "normal", "task_data_size": 1024,
            "task_processing_time_simulated": 1.5, "task_expected_duration": 1.5,
            "task_deadline": 3.0, "task_emit_timestamp": 10.0, "task_emit_time": 0.0})
        .to_string();
        // Generated at 10 s with a 3 s budget and 1.5 s of work: at 11 s, 0.5 s to spare.
        assert!((oldest_slack_s(Some(task.as_bytes()), 11.0) - 0.5).abs() < 1e-12);
        assert!((oldest_slack_s(Some(task.as_bytes()), 12.0) + 0.5).abs() < 1e-12);
        assert_eq!(oldest_slack_s(Some(b"not a task"), 11.0), 0.0);
        assert_eq!(oldest_slack_s(None, 11.0), 0.0);
        assert_eq!(queued_work_s(2, 7.5, 3.0), 4.5);
        assert_eq!(queued_work_s(2, 1.0, 3.0), 0.0, "never negative");
        assert_eq!(queued_work_s(0, 7.5, 3.0), 0.0, "an empty queue holds no work");
    }

    #[test]
    fn busy_means_connected_and_holding_a_task() {
        let reading = FarmReading {
            connected: vec![WorkerId::from_index(1), WorkerId::from_index(2)],
            processing: vec![(WorkerId::from_index(2), 1), (WorkerId::from_index(9), 1)],
            ..FarmReading::default()
        };
        assert_eq!(reading.busy_workers(4), 1);
        // A framework's stream: its pending entries, held by at most the live workers.
        let stream = FarmReading {
            queue: QueueReading {
                in_flight: 3,
                ..QueueReading::default()
            },
            ..FarmReading::default()
        };
        assert_eq!((stream.busy_workers(5), stream.busy_workers(2)), (3, 2));
    }

    #[test]
    fn each_closed_window_bucket_is_read_once_and_at_most_a_minute_of_them() {
        let mut next = None;
        assert!(
            buckets_since(&mut next, 100.05).is_empty(),
            "the first reading starts the window"
        );
        // 100.0–100.1 s closed; 100.1–100.2 is still filling.
        assert_eq!(buckets_since(&mut next, 100.15), 1000..1001);
        assert_eq!(
            buckets_since(&mut next, 100.18),
            1001..1001,
            "nothing closed since"
        );
        assert_eq!(buckets_since(&mut next, 100.45), 1001..1004);
        let mut stale = Some(0);
        let r = buckets_since(&mut stale, 1000.0);
        assert_eq!((r.start, r.end), (9400, 10000), "at most a minute of buckets");
    }
}
