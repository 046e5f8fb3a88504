//! The emitter: takes phase configs from `input_queue` and emits each phase's tasks in real
//! time, scheduled against absolute instants (no drift), counting every push atomically.

use crate::messages::{PhaseConfigMsg, Task};
use crate::runtime::supervise;
use crate::runtime::{json, poll_control, Broker, Control, FunctionConfig, FunctionError};
use crate::workload::{phase_order, phase_seed, phase_tasks, WorkloadConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use redis::AsyncCommands;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the emitter looks at its control queue while waiting for the next arrival.
const CONTROL_CHECK: Duration = Duration::from_millis(250);

/// Pushes the phase configs of `workload` (in its seeded order) to the input queue; returns
/// how many tasks they will produce.
pub async fn feed_phases(
    conn: &mut redis::aio::MultiplexedConnection,
    input_queue: &str,
    workload: &WorkloadConfig,
    seed: u64,
) -> redis::RedisResult<usize> {
    let mut total = 0;
    for (position, p) in phase_order(workload, seed).into_iter().enumerate() {
        let phase = &workload.phases[p];
        let msg = PhaseConfigMsg::from_phase(
            phase,
            position as u32 + 1,
            workload.base_rate_per_min,
            workload.window_s,
            phase_seed(seed, position),
        );
        total += msg.target_tasks;
        conn.lpush::<_, _, ()>(input_queue, json(&msg)).await?;
    }
    Ok(total)
}

/// Runs the emitter until TERMINATE or cancellation. `workload` supplies the task model and
/// time scale; each phase config supplies the phase itself.
pub async fn run_emitter(
    config: FunctionConfig,
    workload: WorkloadConfig,
    cancel: CancellationToken,
) -> Result<(), FunctionError> {
    let name = format!("emitter:{}", config.instance_id);
    let mut broker = Broker::connect(&config, &name, &cancel).await?;
    let pod = name.replace(':', "-");
    let (config, workload) = (&config, &workload);
    supervise(
        &mut broker,
        &cancel,
        (),
        async |broker: &mut Broker| broker.announce(&config.queues.emitter_start, &pod).await,
        async |broker: &mut Broker| Ok(step(broker, config, workload, &cancel).await?.then_some(())),
    )
    .await
}

/// Waits for one phase config and emits its phase. `true` means stop.
async fn step(
    broker: &mut Broker,
    config: &FunctionConfig,
    workload: &WorkloadConfig,
    cancel: &CancellationToken,
) -> redis::RedisResult<bool> {
    let q = &config.queues;
    if let Some(Control::Terminate) = poll_control(broker, &q.emitter_control_syn).await? {
        return Ok(true);
    }
    let popped: Option<(String, String)> = tokio::select! {
        r = broker.conn.brpop(&q.input, config.poll_interval_s) => r?,
        _ = cancel.cancelled() => return Ok(true),
    };
    let Some((_, raw)) = popped else {
        return Ok(false);
    };
    let msg: PhaseConfigMsg = match serde_json::from_str(&raw) {
        Ok(m) => m,
        Err(e) => {
            broker.dead_letter(&q.input, &raw, &e.to_string()).await?;
            return Ok(false);
        }
    };
    let phase = match msg.to_phase() {
        Ok(p) => p,
        Err(e) => {
            broker.dead_letter(&q.input, &raw, &e).await?;
            return Ok(false);
        }
    };
    let phase_workload = WorkloadConfig {
        base_rate_per_min: msg.base_rate,
        window_s: msg.window_duration,
        ..workload.clone()
    };
    let seed = msg.task_seed.unwrap_or_else(rand::random);
    let tasks = phase_tasks(&phase_workload, &phase, seed);
    let mut ids = ChaCha8Rng::seed_from_u64(seed ^ 0x05EE_D1D5);
    tracing::info!(phase = %phase.name, tasks = tasks.len(), "emitting phase");
    let start = Instant::now();
    let start_prog = broker.now();
    for spec in &tasks {
        let due = start + Duration::from_secs_f64(spec.arrival_s);
        // Sleep to the absolute instant, looking at the control queue meanwhile.
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            let nap = (due - now).min(CONTROL_CHECK);
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = cancel.cancelled() => return Ok(true),
            }
            if Instant::now() < due {
                if let Some(Control::Terminate) = poll_control(broker, &q.emitter_control_syn).await? {
                    return Ok(true);
                }
            }
        }
        let gen_ts = start_prog + spec.arrival_s;
        let emit_ts = broker.now();
        let task = Task {
            task_id: uuid::Builder::from_random_bytes(ids.gen())
                .into_uuid()
                .to_string(),
            task_gen_timestamp: gen_ts,
            task_application: "image_processing".into(),
            task_priority: "normal".into(),
            task_data_size: spec.size_px,
            task_processing_time_simulated: spec.processing_s,
            task_expected_duration: spec.processing_s,
            task_deadline: spec.deadline_s,
            task_emit_timestamp: emit_ts,
            task_emit_time: emit_ts - gen_ts,
        };
        redis::pipe()
            .atomic()
            .lpush(&q.worker, json(&task))
            .ignore()
            .incr(q.enqueued_total(), 1)
            .ignore()
            .query_async::<()>(&mut broker.conn)
            .await?;
    }
    // The phase lasts its full duration even if its last arrival came early.
    let end = start + Duration::from_secs_f64(phase.duration_s * phase_workload.time_scale);
    tokio::select! {
        _ = tokio::time::sleep_until(end) => {}
        _ = cancel.cancelled() => return Ok(true),
    }
    Ok(false)
}
