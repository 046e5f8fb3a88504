//! The worker: takes tasks reliably (BLMOVE into its own processing list), processes them,
//! pushes results, and leaves on SCALE_DOWN (with ACK), TERMINATE or SIGTERM.

use crate::messages::{Task, TaskResult};
use crate::protocol::{AckMsg, ControlKind, WorkerId};
use crate::runtime::supervise;
use crate::runtime::{json, poll_control, requeue_tasks, Broker, FunctionConfig, FunctionError};
use redis::AsyncCommands;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a worker stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// Acknowledged a SCALE_DOWN.
    ScaledDown,
    Terminated,
    /// SIGTERM (or the embedding process) asked it to stop.
    Cancelled,
}

/// The seam where real work would go: the original simulated image processing by sleeping
/// for the task's processing time, and so do we.
async fn process(task: &Task) -> (f64, &'static str) {
    let secs = task.task_processing_time_simulated.clamp(0.0, 3600.0);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    (secs, "completed")
}

/// Runs one worker until it is scaled down, terminated or cancelled.
pub async fn run_worker(
    config: FunctionConfig,
    cancel: CancellationToken,
) -> Result<WorkerExit, FunctionError> {
    let id = WorkerId::new(config.instance_id.clone());
    let mut broker = Broker::connect(&config, &id.client_name(), &cancel).await?;
    let q = config.queues.clone();
    let processing = q.processing(&id);
    let config = &config;
    supervise(
        &mut broker,
        &cancel,
        WorkerExit::Cancelled,
        async |broker: &mut Broker| {
            // Whatever this worker held when it last died goes back to the queue first.
            let n = requeue_tasks(&mut broker.conn, &processing, &q).await?;
            if n > 0 {
                tracing::info!(worker = %id, tasks = n, "re-queued unfinished tasks");
            }
            broker.announce(&q.worker_start, &id.pod_name()).await
        },
        async |broker: &mut Broker| step(broker, config, &processing, &id, &cancel).await,
    )
    .await
}

/// One iteration: control check, one blocking take, one task. `Some` means stop.
async fn step(
    broker: &mut Broker,
    config: &FunctionConfig,
    processing: &str,
    id: &WorkerId,
    cancel: &CancellationToken,
) -> redis::RedisResult<Option<WorkerExit>> {
    let q = &config.queues;
    match poll_control(broker, &q.worker_control_syn).await? {
        Some(ControlKind::Terminate) => return Ok(Some(WorkerExit::Terminated)),
        Some(ControlKind::ScaleDown) => {
            let ack = AckMsg::scale_down(id, broker.now());
            broker
                .conn
                .lpush::<_, _, ()>(&q.worker_control_ack, json(&ack))
                .await?;
            return Ok(Some(WorkerExit::ScaledDown));
        }
        None => {}
    }
    let mut take = redis::cmd("BLMOVE");
    take.arg(&q.worker)
        .arg(processing)
        .arg("RIGHT")
        .arg("LEFT")
        .arg(config.poll_interval_s);
    let taken: Option<String> = tokio::select! {
        r = take.query_async(&mut broker.conn) => r?,
        _ = cancel.cancelled() => return Ok(Some(WorkerExit::Cancelled)),
    };

    let Some(raw) = taken else { return Ok(None) };
    let task: Task = match serde_json::from_str(&raw) {
        Ok(t) => t,
        Err(e) => {
            broker.dead_letter(&q.worker, &raw, &e.to_string()).await?;
            broker.conn.lrem::<_, _, ()>(processing, 1, &raw).await?;
            return Ok(None);
        }
    };
    // The task no longer waits: its work leaves the queue's count (docs/protocol.md).
    if let Some(work_s) = crate::protocol::counted_work_s(task.task_processing_time_simulated) {
        redis::cmd("INCRBYFLOAT")
            .arg(q.taken_work_s())
            .arg(work_s)
            .query_async::<()>(&mut broker.conn)
            .await?;
    }
    let work = process(&task);
    tokio::pin!(work);
    let (processing_time, status) = tokio::select! {
        done = &mut work => done,
        _ = cancel.cancelled() => {
            // SIGTERM: finish within the grace period, or hand the task back untouched.
            match tokio::time::timeout(Duration::from_secs_f64(config.grace_period_s), &mut work).await {
                Ok(done) => {
                    finish(broker, config, processing, &raw, &task, done).await?;
                    return Ok(Some(WorkerExit::Cancelled));
                }
                Err(_) => {
                    requeue_tasks(&mut broker.conn, processing, q).await?;
                    return Ok(Some(WorkerExit::Cancelled));
                }
            }
        }
    };
    finish(broker, config, processing, &raw, &task, (processing_time, status)).await?;
    Ok(None)
}

/// Pushes the result and drops the task from the processing list, atomically.
async fn finish(
    broker: &mut Broker,
    config: &FunctionConfig,
    processing: &str,
    raw: &str,
    task: &Task,
    (processing_time, status): (f64, &str),
) -> redis::RedisResult<()> {
    let work_ts = broker.now();
    let result = TaskResult {
        task_id: task.task_id.clone(),
        task_application: task.task_application.clone(),
        task_priority: task.task_priority.clone(),
        task_gen_timestamp: task.task_gen_timestamp,
        task_deadline: task.task_deadline,
        task_emit_timestamp: task.task_emit_timestamp,
        task_emit_time: task.task_emit_time,
        task_work_timestamp: work_ts,
        task_work_time: work_ts - task.task_emit_timestamp,
        processing_time,
        image_size: task.task_data_size,
        status: status.into(),
        worker_id: Some(config.instance_id.clone()),
    };
    redis::pipe()
        .atomic()
        .lpush(&config.queues.result, json(&result))
        .ignore()
        .lrem(processing, 1, raw)
        .ignore()
        .query_async::<()>(&mut broker.conn)
        .await
}
