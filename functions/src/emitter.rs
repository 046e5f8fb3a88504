//! The emitter: takes phase configs from `input_queue` and emits each phase's tasks in real
//! time, scheduled against absolute instants (no drift), counting every push — and its
//! processing time, so that the node knows the queued work without reading the queue —
//! atomically.
//!
//! A phase survives the emitter: the config is moved (not popped) into the emitter's own
//! processing list, and every push records how far the phase got in the same transaction.
//! An emitter restarted under the same id — after a crash, or a broker error mid-phase —
//! regenerates the phase from its seed, skips the tasks already pushed and carries on at the
//! phase's original schedule, so no task is lost and none is pushed twice.

use crate::messages::{PhaseConfigMsg, Task};
use crate::protocol::ControlKind;
use crate::runtime::supervise;
use crate::runtime::{json, poll_control, Broker, FunctionConfig, FunctionError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use workload::{phase_order, phase_seed, PhaseTasks, WorkloadConfig};

/// How often the emitter looks at its control queue while waiting for the next arrival.
const CONTROL_CHECK: Duration = Duration::from_millis(250);

/// The phase configs of `workload` run with `seed`, in their seeded order: what
/// [`feed_phases`] pushes, and (with [`task_ids`]) which tasks a job consists of.
pub fn phase_messages(workload: &WorkloadConfig, seed: u64) -> Vec<PhaseConfigMsg> {
    phase_order(workload, seed)
        .into_iter()
        .enumerate()
        .map(|(position, p)| {
            PhaseConfigMsg::from_phase(
                &workload.phases[p],
                position as u32 + 1,
                workload.base_rate_per_min,
                workload.window_s,
                phase_seed(seed, position),
            )
        })
        .collect()
}

/// Pushes the phase configs of `workload` (in its seeded order) to the input queue; returns
/// how many tasks they will produce.
pub async fn feed_phases(
    conn: &mut redis::aio::MultiplexedConnection,
    input_queue: &str,
    workload: &WorkloadConfig,
    seed: u64,
) -> redis::RedisResult<usize> {
    let mut total = 0;
    for msg in phase_messages(workload, seed) {
        total += msg.target_tasks;
        conn.lpush::<_, _, ()>(input_queue, json(&msg)).await?;
    }
    Ok(total)
}

/// The `task_id`s of a phase emitted with the task seed `seed`, in emission order. They are a
/// function of the seed alone, so a resumed phase gives its tasks the ids they would have had,
/// and whoever fed the phases knows which tasks are its own.
pub fn task_ids(seed: u64) -> impl Iterator<Item = String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x05EE_D1D5);
    std::iter::repeat_with(move || {
        uuid::Builder::from_random_bytes(rng.gen())
            .into_uuid()
            .to_string()
    })
}

/// How far the emitter got through its current phase (see the module docs), kept at
/// `input_queue:progress:<id>`; the node reads `started_at` to anchor the job's plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The task seed in use (the message's, or one drawn for a message without one).
    pub seed: u64,
    /// When the phase started, in seconds of the run's clock: a resumed phase keeps its
    /// schedule and its tasks' generation timestamps.
    pub started_at: f64,
    /// Tasks pushed so far.
    pub emitted: usize,
}

/// Runs the emitter until TERMINATE or cancellation. `workload` supplies the task model and
/// time scale; each phase config supplies the phase itself.
pub async fn run_emitter(
    config: FunctionConfig,
    workload: WorkloadConfig,
    cancel: CancellationToken,
) -> Result<(), FunctionError> {
    let function = crate::protocol::FunctionName::emitter(&config.instance_id);
    let name = function.client_name();
    let mut broker = Broker::connect(&config, &name, &cancel).await?;
    let pod = function.pod_name();
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

/// Takes one phase config — the one left from before a restart, else a new one — and emits
/// its phase. `true` means stop.
async fn step(
    broker: &mut Broker,
    config: &FunctionConfig,
    workload: &WorkloadConfig,
    cancel: &CancellationToken,
) -> redis::RedisResult<bool> {
    let q = &config.queues;
    if let Some(ControlKind::Terminate) = poll_control(broker, &q.emitter_control_syn).await? {
        return Ok(true);
    }
    let processing = q.emitter_processing(&config.instance_id);
    let progress_key = q.emitter_progress(&config.instance_id);
    let left_over: Option<String> = broker.conn.lindex(&processing, -1).await?;
    let resumed = left_over.is_some();
    let raw = match left_over {
        Some(raw) => raw,
        None => {
            let mut take = redis::cmd("BLMOVE");
            take.arg(&q.input)
                .arg(&processing)
                .arg("RIGHT")
                .arg("LEFT")
                .arg(config.poll_interval_s);
            let taken: Option<String> = tokio::select! {
                r = take.query_async(&mut broker.conn) => r?,
                _ = cancel.cancelled() => return Ok(true),
            };
            let Some(raw) = taken else { return Ok(false) };
            raw
        }
    };
    let parsed = serde_json::from_str::<PhaseConfigMsg>(&raw)
        .map_err(|e| e.to_string())
        .and_then(|msg| {
            msg.to_phase()
                .map(|phase| (msg, phase))
                .map_err(|e| e.to_string())
        });
    let (msg, phase) = match parsed {
        Ok(ok) => ok,
        Err(reason) => {
            broker
                .dead_letter_from(&q.input, &processing, &raw, &reason)
                .await?;
            return Ok(false);
        }
    };
    let phase_workload = WorkloadConfig {
        base_rate_per_min: msg.base_rate,
        window_s: msg.window_duration,
        ..workload.clone()
    };
    let total = phase.target_tasks(msg.base_rate);
    if total != msg.target_tasks {
        tracing::warn!(
            phase = %phase.name,
            declared = msg.target_tasks,
            generated = total,
            "target_tasks differs from base_rate × phase_multiplier × phase_duration / 60; emitting the latter"
        );
    }
    let saved: Option<String> = if resumed {
        broker.conn.get(&progress_key).await?
    } else {
        None
    };
    let progress = match saved.map(|s| serde_json::from_str::<Progress>(&s)) {
        Some(Ok(p)) => {
            tracing::warn!(phase = %phase.name, emitted = p.emitted, total, "resuming a phase");
            p
        }
        other => {
            if let Some(Err(e)) = other {
                tracing::warn!(error = %e, "unreadable progress record; starting the phase afresh");
            }
            let fresh = Progress {
                seed: msg.task_seed.unwrap_or_else(rand::random),
                started_at: broker.now(),
                emitted: 0,
            };
            broker.conn.set::<_, _, ()>(&progress_key, json(&fresh)).await?;
            fresh
        }
    };
    tracing::info!(phase = %phase.name, tasks = total, "emitting phase");

    // The phase's schedule is anchored at its recorded start, which may lie before this
    // process existed: tasks that fell due meanwhile go out at once.
    let behind = Duration::from_secs_f64((broker.now() - progress.started_at).clamp(0.0, 1e9));
    let now = Instant::now();
    let start = now.checked_sub(behind).unwrap_or(now);
    let tasks = PhaseTasks::new(&phase_workload, &phase, progress.seed).zip(task_ids(progress.seed));
    for (emitted, (spec, task_id)) in (progress.emitted + 1..).zip(tasks.skip(progress.emitted)) {
        if wait_until(
            broker,
            config,
            start + Duration::from_secs_f64(spec.arrival_s),
            cancel,
        )
        .await?
        {
            return Ok(true);
        }
        let gen_ts = progress.started_at + spec.arrival_s;
        let emit_ts = broker.now();
        let task = Task {
            task_id,
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
        let record = Progress {
            emitted,
            ..progress.clone()
        };
        redis::pipe()
            .atomic()
            .lpush(&q.worker, json(&task))
            .ignore()
            .incr(q.enqueued_total(), 1)
            .ignore()
            .cmd("INCRBYFLOAT")
            .arg(q.enqueued_work_s())
            .arg(crate::protocol::counted_work_s(spec.processing_s).unwrap_or(0.0))
            .ignore()
            .set(&progress_key, json(&record))
            .ignore()
            .query_async::<()>(&mut broker.conn)
            .await?;
    }
    // The phase lasts its full duration even if its last arrival came early.
    let end = start + Duration::from_secs_f64(phase.duration_s * phase_workload.time_scale);
    if wait_until(broker, config, end, cancel).await? {
        return Ok(true);
    }
    redis::pipe()
        .atomic()
        .lrem(&processing, 1, &raw)
        .ignore()
        .del(&progress_key)
        .ignore()
        .query_async::<()>(&mut broker.conn)
        .await?;
    Ok(false)
}

/// Sleeps to the absolute instant `due`, looking at the control queue meanwhile. `true`
/// means stop (TERMINATE or cancellation).
async fn wait_until(
    broker: &mut Broker,
    config: &FunctionConfig,
    due: Instant,
    cancel: &CancellationToken,
) -> redis::RedisResult<bool> {
    loop {
        let now = Instant::now();
        if now >= due {
            return Ok(false);
        }
        let nap = (due - now).min(CONTROL_CHECK);
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = cancel.cancelled() => return Ok(true),
        }
        if Instant::now() < due {
            if let Some(ControlKind::Terminate) =
                poll_control(broker, &config.queues.emitter_control_syn).await?
            {
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_depend_on_the_seed_alone() {
        let a: Vec<String> = task_ids(7).take(5).collect();
        assert_eq!(a, task_ids(7).take(5).collect::<Vec<_>>());
        assert_ne!(a, task_ids(8).take(5).collect::<Vec<_>>());
        assert!(a.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()));
        let mut unique = a.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 5);
    }

    #[test]
    fn phase_messages_carry_each_phase_and_its_seed() {
        let workload = WorkloadConfig::default();
        let msgs = phase_messages(&workload, 3);
        assert_eq!(msgs.iter().map(|m| m.target_tasks).sum::<usize>(), 1140);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.phase_number as usize, i + 1);
            assert_eq!(m.task_seed, Some(phase_seed(3, i)));
            assert!(m.to_phase().is_ok());
        }
    }
}
