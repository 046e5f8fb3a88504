//! The collector: turns results into output records with the task's QoS, de-duplicates
//! redeliveries by `task_id`, and keeps running totals in the broker (see `runtime::totals`).

use crate::messages::{OutputRecord, TaskResult};
use crate::runtime::supervise;
use crate::runtime::{
    json, poll_control, requeue_processing, totals, Broker, Control, FunctionConfig, FunctionError,
};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

/// Completion times seen so far, for the running percentiles.
#[derive(Default)]
struct Latencies {
    values: Vec<f64>,
    sum: f64,
}

impl Latencies {
    fn add(&mut self, v: f64) {
        self.sum += v;
        let at = self.values.partition_point(|x| *x < v);
        self.values.insert(at, v);
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
    let name = format!("collector:{}", config.instance_id);
    let mut broker = Broker::connect(&config, &name, &cancel).await?;
    let mut latencies = Latencies::default();
    let mut recovered = false;
    let pod = name.replace(':', "-");
    let config = &config;
    supervise(
        &mut broker,
        &cancel,
        (),
        async |broker: &mut Broker| {
            requeue_processing(&mut broker.conn, totals::PROCESSING, &config.queues.result).await?;
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
    if let Some(Control::Terminate) = poll_control(broker, &q.collector_control_syn).await? {
        return Ok(true);
    }
    let mut take = redis::cmd("BLMOVE");
    take.arg(&q.result)
        .arg(totals::PROCESSING)
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
                .dead_letter_from(&q.result, totals::PROCESSING, &raw, &e.to_string())
                .await?;
            return Ok(false);
        }
    };
    let seen_key = format!("{}{}", totals::SEEN_PREFIX, result.task_id);
    if broker.conn.exists::<_, bool>(&seen_key).await? {
        tracing::info!(task = %result.task_id, "duplicate result dropped");
        redis::pipe()
            .atomic()
            .incr(totals::DUPLICATES, 1)
            .ignore()
            .lrem(totals::PROCESSING, 1, &raw)
            .ignore()
            .query_async::<()>(&mut broker.conn)
            .await?;
        return Ok(false);
    }
    let record = output_record(&result, broker.now());
    latencies.add(record.task_completion_time);
    redis::pipe()
        .atomic()
        .lpush(&q.output, json(&record))
        .ignore()
        .set(&seen_key, 1)
        .ignore()
        .incr(totals::TASKS, 1)
        .ignore()
        .incr(totals::QOS_MET, i64::from(record.task_qos))
        .ignore()
        .set(totals::LATENCY_MEAN_S, latencies.mean())
        .ignore()
        .set(totals::LATENCY_P50_S, latencies.quantile(0.50))
        .ignore()
        .set(totals::LATENCY_P99_S, latencies.quantile(0.99))
        .ignore()
        .lrem(totals::PROCESSING, 1, &raw)
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
            l.add(v);
        }
        assert_eq!(l.quantile(0.5), 3.0);
        assert_eq!(l.quantile(0.99), 5.0);
        assert!((l.mean() - 3.0).abs() < 1e-12);
    }
}
