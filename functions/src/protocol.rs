//! The farm's wire protocol, defined once: queue and key names, worker identities, the control
//! messages (SYN, ACK, START) and the farm's clock. The functions and the node both import it;
//! no queue name, key or control message shape is written anywhere else. (The data messages —
//! phase configs, tasks, results, output records — are in [`crate::messages`].) The contract is
//! documented in `docs/protocol.md`.

use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Queue names; defaults are the original system's.
#[derive(Clone, Debug, PartialEq)]
pub struct Queues {
    pub input: String,
    pub worker: String,
    pub result: String,
    pub output: String,
    pub worker_control_syn: String,
    pub worker_control_ack: String,
    pub emitter_control_syn: String,
    pub collector_control_syn: String,
    pub worker_start: String,
    pub emitter_start: String,
    pub collector_start: String,
}

impl Default for Queues {
    fn default() -> Self {
        Queues {
            input: "input_queue".into(),
            worker: "worker_queue".into(),
            result: "result_queue".into(),
            output: "output_queue".into(),
            worker_control_syn: "worker_control_syn_queue".into(),
            worker_control_ack: "worker_control_ack_queue".into(),
            emitter_control_syn: "emitter_control_syn_queue".into(),
            collector_control_syn: "collector_control_syn_queue".into(),
            worker_start: "worker_start_queue".into(),
            emitter_start: "emitter_start_queue".into(),
            collector_start: "collector_start_queue".into(),
        }
    }
}

impl Queues {
    /// The processing list of one worker: tasks it has taken and not yet finished.
    pub fn processing(&self, worker: &WorkerId) -> String {
        format!("{}{}", self.processing_prefix(), worker.as_str())
    }

    /// What every worker's processing list starts with (for listing them).
    pub fn processing_prefix(&self) -> String {
        format!("{}:processing:", self.worker)
    }

    /// The worker a processing list belongs to, if `key` is one.
    pub fn worker_of_processing(&self, key: &str) -> Option<WorkerId> {
        key.strip_prefix(&self.processing_prefix())
            .filter(|id| !id.is_empty())
            .map(WorkerId::new)
    }

    /// Where unparsable or invalid messages of `queue` go, with the error.
    pub fn dead(queue: &str) -> String {
        format!("{queue}:dead")
    }

    /// Counter of tasks the emitter enqueued, incremented atomically with each push.
    pub fn enqueued_total(&self) -> String {
        format!("{}:enqueued_total", self.worker)
    }

    /// Σ processing times (`task_processing_time_simulated`, wall seconds) of the tasks the
    /// emitter enqueued, incremented (INCRBYFLOAT) in the same transaction as each push.
    pub fn enqueued_work_s(&self) -> String {
        format!("{}:enqueued_work_s", self.worker)
    }

    /// Σ processing times of the tasks workers took from the queue (a worker adds a task's time
    /// when it takes it; a re-queue subtracts it). Queued work = enqueued − taken: what waits,
    /// in seconds of processing, read in O(1) however long the queue.
    pub fn taken_work_s(&self) -> String {
        format!("{}:taken_work_s", self.worker)
    }

    /// The phase config an emitter is working through, moved here from the input queue so that
    /// an emitter that dies mid-phase finds it again when restarted under the same id.
    pub fn emitter_processing(&self, emitter_id: &str) -> String {
        format!("{}:processing:{emitter_id}", self.input)
    }

    /// The emitter whose processing list `key` is, if it is one.
    pub fn emitter_of_processing<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(&self.input)?
            .strip_prefix(":processing:")
            .filter(|id| !id.is_empty())
    }

    /// How far that emitter got through the phase (seed, start, tasks pushed), written with
    /// every push, so a restart resumes after the last task pushed and duplicates none.
    pub fn emitter_progress(&self, emitter_id: &str) -> String {
        format!("{}:progress:{emitter_id}", self.input)
    }

    /// The data queues whose counters the node keeps while they are empty.
    pub fn data_queues(&self) -> [&str; 4] {
        [&self.input, &self.worker, &self.result, &self.output]
    }
}

/// Keys outside the queues: the farm's clock and the collector's running totals, so nobody
/// reads the whole output list.
pub mod keys {
    /// Unix time (s) the run started; agreed by [`super::agree_program_start`].
    pub const PROGRAM_START: &str = "program_start_time";
    /// Tasks collected (one per task id).
    pub const TASKS_TOTAL: &str = "collector:tasks_total";
    /// Collected tasks that met their deadline.
    pub const QOS_MET_TOTAL: &str = "collector:qos_met_total";
    /// Results dropped as redeliveries of a task already collected.
    pub const DUPLICATES_TOTAL: &str = "collector:duplicates_total";
    /// Σ completion times (generation → collection) of collected tasks, wall seconds: the
    /// running sum, so a reader's window mean is (Δ sum) / (Δ tasks).
    pub const LATENCY_SUM_S: &str = "collector:latency_sum_s";
    /// The running mean, p50 and p99 of completion times, wall seconds (for people and
    /// dashboards; programs use the sum).
    pub const LATENCY_MEAN_S: &str = "collector:latency_mean_s";
    pub const LATENCY_P50_S: &str = "collector:latency_p50_s";
    pub const LATENCY_P99_S: &str = "collector:latency_p99_s";
    /// Prefix of the per-task de-duplication markers.
    pub const SEEN_PREFIX: &str = "collector:seen:";
    /// The collector's own processing list (results taken, output not yet written).
    pub const COLLECTOR_PROCESSING: &str = "collector:processing";
    /// Width of one bucket of [`latency_max_s`], milliseconds.
    pub const LATENCY_MAX_BUCKET_MS: u64 = 100;
    /// How long a bucket of [`latency_max_s`] is kept, seconds.
    pub const LATENCY_MAX_TTL_S: u64 = 120;

    /// The largest completion time (wall seconds) of the tasks collected during the 100 ms
    /// starting at Unix time `bucket × 100 ms`: a reader takes the maximum over the buckets of
    /// its window (expire after two minutes).
    pub fn latency_max_s(bucket: u64) -> String {
        format!("collector:latency_max_s:{bucket}")
    }

    /// The [`latency_max_s`] bucket of Unix time `unix_s`.
    pub fn latency_bucket(unix_s: f64) -> u64 {
        (unix_s.max(0.0) * 1000.0 / LATENCY_MAX_BUCKET_MS as f64) as u64
    }
}

/// How a function names its connection (`CLIENT SETNAME <role>:<id>`) and its START messages
/// (`<role>-<id>`): the emitter's and the collector's; workers use [`WorkerId`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionName {
    pub role: &'static str,
    pub id: String,
}

impl FunctionName {
    const EMITTER: &'static str = "emitter";
    const COLLECTOR: &'static str = "collector";

    pub fn emitter(id: &str) -> FunctionName {
        FunctionName {
            role: Self::EMITTER,
            id: id.into(),
        }
    }

    pub fn collector(id: &str) -> FunctionName {
        FunctionName {
            role: Self::COLLECTOR,
            id: id.into(),
        }
    }

    pub fn is_emitter(&self) -> bool {
        self.role == Self::EMITTER
    }

    pub fn client_name(&self) -> String {
        format!("{}:{}", self.role, self.id)
    }

    /// The emitter or collector behind a connection name, if it is one of theirs.
    pub fn from_client_name(name: &str) -> Option<FunctionName> {
        let (role, id) = name.split_once(':')?;
        let role = [Self::EMITTER, Self::COLLECTOR]
            .into_iter()
            .find(|r| *r == role)?;
        (!id.is_empty()).then(|| FunctionName { role, id: id.into() })
    }

    pub fn pod_name(&self) -> String {
        format!("{}-{}", self.role, self.id)
    }
}

/// What the node sends when it invokes a function through the OpenFaaS gateway, as the
/// original's controller did to start each function's loop (our functions start from their
/// flags anyway, so the invocation only confirms the clock).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    pub program_start_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<u32>,
}

/// The processing time a task adds to the queued-work counters ([`Queues::enqueued_work_s`],
/// [`Queues::taken_work_s`]): a positive, finite time below 10^9 s, else none (the re-queue
/// script applies the same rule, so every side counts the same tasks).
pub fn counted_work_s(processing_s: f64) -> Option<f64> {
    (processing_s > 0.0 && processing_s < 1e9).then_some(processing_s)
}

/// Key patterns a fresh run clears: every queue of the farm (with processing lists, dead
/// letters and counters) and the collector's totals; with `with_clock`, the clock too.
pub fn farm_key_patterns(with_clock: bool) -> Vec<String> {
    let mut patterns = vec!["*_queue*".to_string(), "collector:*".to_string()];
    if with_clock {
        patterns.push(keys::PROGRAM_START.to_string());
    }
    patterns
}

/// A worker's identity. One value, three spellings: the connection name `worker:<id>` (how
/// the node knows the worker is connected), the `pod_name` `worker-<id>` in its START and ACK
/// messages (also an OpenFaaS function name in instances mode), and its processing list
/// `worker_queue:processing:<id>`. Local and OpenFaaS-instance workers are numbered
/// ([`WorkerId::from_index`]); Kubernetes workers take their pod's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(String);

impl WorkerId {
    const CLIENT_PREFIX: &'static str = "worker:";
    const POD_PREFIX: &'static str = "worker-";

    pub fn new(id: impl Into<String>) -> WorkerId {
        WorkerId(id.into())
    }

    /// The `n`-th numbered worker.
    pub fn from_index(n: u32) -> WorkerId {
        WorkerId(n.to_string())
    }

    /// Its number, for numbered workers.
    pub fn index(&self) -> Option<u32> {
        self.0.parse().ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `worker:<id>`, the name the worker's connection gives itself.
    pub fn client_name(&self) -> String {
        format!("{}{}", Self::CLIENT_PREFIX, self.0)
    }

    /// The worker behind a connection name, if it is a worker's.
    pub fn from_client_name(name: &str) -> Option<WorkerId> {
        name.strip_prefix(Self::CLIENT_PREFIX)
            .filter(|id| !id.is_empty())
            .map(WorkerId::new)
    }

    /// `worker-<id>`, the `pod_name` of its messages.
    pub fn pod_name(&self) -> String {
        format!("{}{}", Self::POD_PREFIX, self.0)
    }

    /// The worker that sent a message signed `pod_name` (a name without the prefix — an
    /// original Python worker's pod — is taken whole).
    pub fn from_pod_name(pod_name: &str) -> WorkerId {
        WorkerId::new(pod_name.strip_prefix(Self::POD_PREFIX).unwrap_or(pod_name))
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a control message asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlKind {
    /// One worker should finish its task, acknowledge and leave.
    #[serde(rename = "SCALE_DOWN")]
    ScaleDown,
    /// The function should stop (the run is over).
    #[serde(rename = "TERMINATE")]
    Terminate,
}

/// A control request (SYN) on a control queue, in the original's JSON shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlMsg {
    #[serde(rename = "type")]
    pub kind: ControlKind,
    pub action: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(rename = "SYN_timestamp", default)]
    pub syn_timestamp: Option<f64>,
}

impl ControlMsg {
    /// A SYN of `kind`; `at` is the farm's clock (None for a message whose bytes must be the
    /// same every time, so that an untaken one can be withdrawn with LREM).
    pub fn syn(kind: ControlKind, message: &str, at: Option<f64>) -> ControlMsg {
        ControlMsg {
            kind,
            action: "SYN".into(),
            message: Some(message.into()),
            syn_timestamp: at,
        }
    }

    /// The node's scale-down request: always the same bytes.
    pub fn scale_down() -> ControlMsg {
        ControlMsg::syn(ControlKind::ScaleDown, "scale down by one worker", None)
    }

    /// The end of a run, for the emitter, the collector and every worker.
    pub fn terminate() -> ControlMsg {
        ControlMsg::syn(ControlKind::Terminate, "run finished", None)
    }

    pub fn to_json(&self) -> String {
        crate::runtime::json(self)
    }
}

/// A worker's acknowledgement of SCALE_DOWN on `worker_control_ack_queue`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AckMsg {
    #[serde(rename = "type")]
    pub kind: ControlKind,
    pub action: String,
    pub ack_timestamp: f64,
    pub task_id: Option<String>,
    pub pod_name: String,
    pub message: String,
}

impl AckMsg {
    /// `worker` acknowledges a scale-down at `at` (the farm's clock).
    pub fn scale_down(worker: &WorkerId, at: f64) -> AckMsg {
        let pod_name = worker.pod_name();
        AckMsg {
            kind: ControlKind::ScaleDown,
            action: "ACK".into(),
            ack_timestamp: at,
            task_id: None,
            message: format!("{pod_name} finished its work and is leaving"),
            pod_name,
        }
    }

    /// Who acknowledged.
    pub fn worker(&self) -> WorkerId {
        WorkerId::from_pod_name(&self.pod_name)
    }
}

/// Sent by every function when it starts, on its start queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartMsg {
    #[serde(rename = "type")]
    pub kind: String,
    pub action: String,
    pub start_timestamp: String,
    pub pod_name: String,
}

impl StartMsg {
    /// `pod_name` started at `at` (the farm's clock; the original sent it as a string).
    pub fn new(pod_name: &str, at: f64) -> StartMsg {
        StartMsg {
            kind: "START".into(),
            action: "SYNC".into(),
            start_timestamp: format!("{at:.6}"),
            pod_name: pod_name.into(),
        }
    }
}

/// The farm's clock: the Unix time (s) at which the run started, agreed through the broker in
/// one atomic step (`SET NX GET`, Redis ≥ 7.0): the first caller's `now` wins and every later
/// caller gets the same value. Task timestamps are seconds since it.
pub async fn agree_program_start<C: ConnectionLike>(conn: &mut C, now: f64) -> redis::RedisResult<f64> {
    let existing: Option<String> = redis::cmd("SET")
        .arg(keys::PROGRAM_START)
        .arg(now.to_string())
        .arg("NX")
        .arg("GET")
        .query_async(conn)
        .await?;
    match existing {
        None => Ok(now),
        Some(v) => v.parse().map_err(|_| {
            redis::RedisError::from((
                redis::ErrorKind::TypeError,
                "program_start_time is not a number",
                v,
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_id_has_three_spellings_that_round_trip() {
        let w = WorkerId::from_index(7);
        assert_eq!(w.client_name(), "worker:7");
        assert_eq!(w.pod_name(), "worker-7");
        assert_eq!(Queues::default().processing(&w), "worker_queue:processing:7");
        assert_eq!(WorkerId::from_client_name(&w.client_name()), Some(w.clone()));
        assert_eq!(WorkerId::from_pod_name(&w.pod_name()), w);
        assert_eq!(
            Queues::default().worker_of_processing("worker_queue:processing:7"),
            Some(w.clone())
        );
        assert_eq!(w.index(), Some(7));
        // A pod-named worker, and names that are not a worker's.
        let pod = WorkerId::new("autoscale-worker-5d8f9-x2x7q");
        assert_eq!(WorkerId::from_client_name(&pod.client_name()), Some(pod.clone()));
        assert_eq!(pod.index(), None);
        assert_eq!(WorkerId::from_client_name("collector:1"), None);
        assert_eq!(WorkerId::from_client_name("worker:"), None);
        assert_eq!(
            Queues::default().worker_of_processing("input_queue:processing:1"),
            None
        );
        assert_eq!(
            WorkerId::from_pod_name("python-worker"),
            WorkerId::new("python-worker")
        );
    }

    #[test]
    fn control_messages_round_trip_in_the_original_shape() {
        let down = ControlMsg::scale_down();
        assert_eq!(
            down.to_json(),
            r#"{"type":"SCALE_DOWN","action":"SYN","message":"scale down by one worker","SYN_timestamp":null}"#
        );
        assert_eq!(
            ControlMsg::scale_down().to_json(),
            down.to_json(),
            "same bytes every time"
        );
        let end = ControlMsg::terminate();
        assert_eq!(serde_json::from_str::<ControlMsg>(&end.to_json()).unwrap(), end);
        let timed = ControlMsg::syn(ControlKind::ScaleDown, "remove one worker", Some(33.2));
        assert_eq!(
            serde_json::from_str::<ControlMsg>(&timed.to_json()).unwrap(),
            timed
        );
        // The original's message, and a kind nobody knows.
        let original =
            r#"{"type":"SCALE_DOWN","action":"SYN","message":"remove one worker","SYN_timestamp":33.2}"#;
        assert_eq!(serde_json::from_str::<ControlMsg>(original).unwrap(), timed);
        assert!(serde_json::from_str::<ControlMsg>(r#"{"type":"REBOOT","action":"SYN"}"#).is_err());

        let ack = AckMsg::scale_down(&WorkerId::from_index(3), 12.5);
        let v: serde_json::Value = serde_json::from_str(&crate::runtime::json(&ack)).unwrap();
        assert_eq!(v["type"], "SCALE_DOWN");
        assert_eq!(v["action"], "ACK");
        assert_eq!(v["pod_name"], "worker-3");
        assert_eq!(v["task_id"], serde_json::Value::Null);
        let back: AckMsg = serde_json::from_value(v).unwrap();
        assert_eq!((back.worker(), back), (WorkerId::from_index(3), ack));

        let start = StartMsg::new("emitter-1", 1.25);
        let v: serde_json::Value = serde_json::from_str(&crate::runtime::json(&start)).unwrap();
        assert_eq!(
            (
                v["type"].as_str(),
                v["action"].as_str(),
                v["start_timestamp"].as_str()
            ),
            (Some("START"), Some("SYNC"), Some("1.250000"))
        );
        assert_eq!(serde_json::from_value::<StartMsg>(v).unwrap(), start);
    }

    #[test]
    fn function_names_and_invocations() {
        let e = FunctionName::emitter("1");
        assert_eq!(
            (e.client_name(), e.pod_name()),
            ("emitter:1".to_string(), "emitter-1".to_string())
        );
        assert_eq!(FunctionName::collector("x").client_name(), "collector:x");
        assert_eq!(FunctionName::from_client_name("emitter:1"), Some(e.clone()));
        assert!(e.is_emitter() && !FunctionName::collector("1").is_emitter());
        assert_eq!(FunctionName::from_client_name("worker:1"), None);
        assert_eq!(FunctionName::from_client_name("emitter:"), None);
        let q = Queues::default();
        assert_eq!(q.emitter_of_processing(&q.emitter_processing("7")), Some("7"));
        assert_eq!(q.emitter_of_processing("worker_queue:processing:7"), None);
        assert_eq!(q.emitter_of_processing("input_queue:processing:"), None);
        let inv = Invocation {
            program_start_time: 1.5,
            worker_id: Some(3),
        };
        let json = crate::runtime::json(&inv);
        assert_eq!(json, r#"{"program_start_time":1.5,"worker_id":3}"#);
        assert_eq!(serde_json::from_str::<Invocation>(&json).unwrap(), inv);
        let plain = Invocation {
            program_start_time: 2.0,
            worker_id: None,
        };
        assert_eq!(crate::runtime::json(&plain), r#"{"program_start_time":2.0}"#);
        assert_eq!(
            farm_key_patterns(true).last().map(String::as_str),
            Some(keys::PROGRAM_START)
        );
        assert_eq!(farm_key_patterns(false).len(), 2);
    }

    #[test]
    fn latency_buckets_are_100_ms_wide() {
        assert_eq!(keys::latency_bucket(1.0), 10);
        assert_eq!(keys::latency_bucket(1.0999), 10);
        assert_eq!(keys::latency_bucket(1.1), 11);
        assert_eq!(keys::latency_max_s(11), "collector:latency_max_s:11");
    }
}
