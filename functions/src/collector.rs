//! The collector: turns results into output records with the task's QoS, de-duplicates
//! redeliveries by `task_id`, and keeps running totals in the broker (see
//! [`crate::protocol::keys`]): counts, the running sum of completion times and, per 100 ms, the
//! largest — what the node reads, so nobody re-derives them from the output records.

use crate::messages::{OutputRecord, TaskResult};
use crate::protocol::{keys, ControlKind};
use crate::runtime::supervise;
use crate::runtime::{
    json, poll_control, requeue_processing, unix_now, Broker, FunctionConfig, FunctionError,
};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

/// Completion times seen so far, for the running percentiles, and the largest of the current
/// 100 ms bucket.
#[derive(Default)]
struct Latencies {
    values: Vec<f64>,
    sum: f64,
    /// (bucket, largest completion time in it) of the last task collected.
    window_max: (u64, f64),
}

impl Latencies {
    /// Records a completion time; returns the bucket it fell in and the bucket's maximum so far
    /// (the collector is the only writer of the buckets: one collector per run).
    fn add(&mut self, v: f64, bucket: u64) -> (u64, f64) {
        self.window_max = if self.window_max.0 == bucket {
            (bucket, self.window_max.1.max(v))
        } else {
            (bucket, v)
        };
        self.sum += v;
        let at = self.values.partition_point(|x| *x < v);
        self.values.insert(at, v);
        self.window_max
    }

    /// The completion times of the records already written: a collector restarted mid-run
    /// (after a crash) carries on with the run's percentiles, not only its own. Read once, at
    /// start-up, a page at a time.
    async fn recover(conn: &mut redis::aio::MultiplexedConnection, output: &str) -> redis::RedisResult<Self> {
        const PAGE: isize = 1000;
        let mut latencies = Latencies::default();
        let mut from = 0;
        loop {
            let page: Vec<String> = conn.lrange(output, from, from + PAGE - 1).await?;
            for raw in &page {
                if let Ok(r) = serde_json::from_str::<OutputRecord>(raw) {
                    latencies.sum += r.task_completion_time;
                    latencies.values.push(r.task_completion_time);
                }
            }
            if (page.len() as isize) < PAGE {
                break;
            }
            from += PAGE;
        }
        latencies.values.sort_by(f64::total_cmp);
        if !latencies.values.is_empty() {
            tracing::warn!(
                records = latencies.values.len(),
                "collector resumed over earlier output"
            );
        }
        Ok(latencies)
    }

    fn quantile(&self, q: f64) -> f64 {
        if self.values.is_empty() {
            return 0.0;
        }
        let idx = ((q * self.values.len() as f64).ceil() as usize).clamp(1, self.values.len()) - 1;
        self.values[idx]
    }

    fn mean(&self) -> f64 {
        if self.values.is_empty() {
            0.0
        } else {
            self.sum / self.values.len() as f64
        }
    }
}

/// Builds the output record of a result collected at `collect_ts` (seconds since start).
pub fn output_record(result: &TaskResult, collect_ts: f64) -> OutputRecord {
    let completion = collect_ts - result.task_gen_timestamp;
    OutputRecord {
        task_id: result.task_id.clone(),
        task_application: result.task_application.clone(),
        task_gen_timestamp: result.task_gen_timestamp,
        task_emit_timestamp: result.task_emit_timestamp,
        task_emit_time: result.task_emit_time,
        task_work_timestamp: result.task_work_timestamp,
        task_work_time: result.task_work_time,
        task_deadline: result.task_deadline,
        task_collect_timestamp: collect_ts,
        task_collect_time: collect_ts - result.task_work_timestamp,
        task_completion_time: completion,
        task_qos: result.task_deadline >= completion,
        task_result_data: format!("processed image {}x{}", result.image_size, result.image_size),
        task_output_size: result.image_size,
    }
}

/// Runs the collector until TERMINATE or cancellation. One collector per run: the
/// de-duplication check and the output write are not atomic across several collectors.
pub async fn run_collector(config: FunctionConfig, cancel: CancellationToken) -> Result<(), FunctionError> {
    let function = crate::protocol::FunctionName::collector(&config.instance_id);
    let name = function.client_name();
    let mut broker = Broker::connect(&config, &name, &cancel).await?;
    let mut latencies = Latencies::default();
    let mut recovered = false;
    let pod = function.pod_name();
    let config = &config;
    supervise(
        &mut broker,
        &cancel,
        (),
        async |broker: &mut Broker| {
            requeue_processing(
                &mut broker.conn,
                keys::COLLECTOR_PROCESSING,
                &config.queues.result,
            )
            .await?;
            broker.announce(&config.queues.collector_start, &pod).await
        },
        async |broker: &mut Broker| {
            if !recovered {
                latencies = Latencies::recover(&mut broker.conn, &config.queues.output).await?;
                recovered = true;
            }
            Ok(step(broker, config, &mut latencies, &cancel).await?.then_some(()))
        },
    )
    .await
}

async fn step(
    broker: &mut Broker,
    config: &FunctionConfig,
    latencies: &mut Latencies,
    cancel: &CancellationToken,
) -> redis::RedisResult<bool> {
    let q = &config.queues;
    if let Some(ControlKind::Terminate) = poll_control(broker, &q.collector_control_syn).await? {
        return Ok(true);
    }
    let mut take = redis::cmd("BLMOVE");
    take.arg(&q.result)
        .arg(keys::COLLECTOR_PROCESSING)
        .arg("RIGHT")
        .arg("LEFT")
        .arg(config.poll_interval_s);
    let taken: Option<String> = tokio::select! {
        r = take.query_async(&mut broker.conn) => r?,
        _ = cancel.cancelled() => return Ok(true),
    };

    let Some(raw) = taken else { return Ok(false) };
    let result: TaskResult = match serde_json::from_str(&raw) {
        Ok(r) => r,
        Err(e) => {
            broker
                .dead_letter_from(&q.result, keys::COLLECTOR_PROCESSING, &raw, &e.to_string())
                .await?;
            return Ok(false);
        }
    };
    let seen_key = format!("{}{}", keys::SEEN_PREFIX, result.task_id);
    if broker.conn.exists::<_, bool>(&seen_key).await? {
        tracing::info!(task = %result.task_id, "duplicate result dropped");
        redis::pipe()
            .atomic()
            .incr(keys::DUPLICATES_TOTAL, 1)
            .ignore()
            .lrem(keys::COLLECTOR_PROCESSING, 1, &raw)
            .ignore()
            .query_async::<()>(&mut broker.conn)
            .await?;
        return Ok(false);
    }
    let record = output_record(&result, broker.now());
    let (bucket, bucket_max) = latencies.add(record.task_completion_time, keys::latency_bucket(unix_now()));
    redis::pipe()
        .atomic()
        .lpush(&q.output, json(&record))
        .ignore()
        .set(&seen_key, 1)
        .ignore()
        .incr(keys::TASKS_TOTAL, 1)
        .ignore()
        .incr(keys::QOS_MET_TOTAL, i64::from(record.task_qos))
        .ignore()
        .cmd("INCRBYFLOAT")
        .arg(keys::LATENCY_SUM_S)
        .arg(record.task_completion_time)
        .ignore()
        .set_ex(keys::latency_max_s(bucket), bucket_max, keys::LATENCY_MAX_TTL_S)
        .ignore()
        .set(keys::LATENCY_MEAN_S, latencies.mean())
        .ignore()
        .set(keys::LATENCY_P50_S, latencies.quantile(0.50))
        .ignore()
        .set(keys::LATENCY_P99_S, latencies.quantile(0.99))
        .ignore()
        .lrem(keys::COLLECTOR_PROCESSING, 1, &raw)
        .ignore()
        .query_async::<()>(&mut broker.conn)
        .await?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_is_deadline_against_completion_time() {
        let result = TaskResult {
            task_id: "t".into(),
            task_application: "image_processing".into(),
            task_priority: "normal".into(),
            task_gen_timestamp: 10.0,
            task_deadline: 2.0,
            task_emit_timestamp: 10.0,
            task_emit_time: 0.0,
            task_work_timestamp: 11.5,
            task_work_time: 1.5,
            processing_time: 1.0,
            image_size: 1024,
            status: "completed".into(),
            worker_id: None,
        };
        let met = output_record(&result, 12.0);
        assert!(met.task_qos);
        assert!((met.task_completion_time - 2.0).abs() < 1e-12);
        assert!((met.task_collect_time - 0.5).abs() < 1e-12);
        assert!(!output_record(&result, 12.01).task_qos);
    }

    #[test]
    fn running_percentiles() {
        let mut l = Latencies::default();
        for v in [5.0, 1.0, 3.0, 2.0, 4.0] {
            l.add(v, 1);
        }
        assert_eq!(l.window_max, (1, 5.0));
        assert_eq!(l.quantile(0.5), 3.0);
        assert_eq!(l.quantile(0.99), 5.0);
        assert!((l.mean() - 3.0).abs() < 1e-12);
        assert_eq!(l.add(0.5, 2), (2, 0.5), "a new bucket starts from its first task");
    }
}
