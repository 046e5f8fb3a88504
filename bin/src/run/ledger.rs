//! The job's ledger: which tasks are the job's own (their ids follow from the phase seeds),
//! and what became of each — completed, dead-lettered, in flight — so that messages someone
//! else pushed into the farm's queues are counted apart and never mistaken for the job's.

use functions::messages::{OutputRecord, PhaseConfigMsg};
use functions::protocol::{keys, Queues};
use functions::runtime::json;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use std::collections::{HashMap, HashSet};

/// What became of one of the job's tasks, as far as the ledger has seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Unseen,
    Completed,
    DeadLettered,
}

/// Elements fetched per LRANGE while catching up with a list.
const PAGE: usize = 1000;

/// The accounting of one job, kept up to date by [`JobLedger::poll`].
#[derive(Debug)]
pub struct JobLedger {
    queues: Queues,
    /// Keyed by the id's 128 bits: a million tasks cost ~32 MB, not the ~100 MB of strings.
    tasks: HashMap<u128, Fate>,
    /// The phase configs as pushed, to recognise one of ours among the emitter's refusals.
    phases: HashMap<String, u32>,
    /// Elements read so far of each list the ledger follows: the output list and the dead
    /// letters. All are written with LPUSH and never popped during a run, so the oldest
    /// element is the last and what was read stays at the tail.
    read: HashMap<String, usize>,
    pub completed: u64,
    pub qos_met: u64,
    pub dead_lettered: u64,
    /// Output records and dead letters of messages that are not the job's tasks.
    pub foreign_completed: u64,
    pub foreign_dead_lettered: u64,
    /// Completion times (seconds of wall clock) of the job's completed tasks.
    pub completion_times: Vec<f64>,
    /// A phase of the job the emitter refused, with its reason: the job cannot complete.
    pub refused_phase: Option<String>,
}

impl JobLedger {
    /// The ledger of the job made of `phases` (each with its task seed and count).
    pub fn new(phases: &[PhaseConfigMsg]) -> JobLedger {
        let mut tasks = HashMap::new();
        for p in phases {
            if let Some(seed) = p.task_seed {
                for id in functions::emitter::task_ids(seed).take(p.target_tasks) {
                    if let Some(key) = id_key(&id) {
                        tasks.insert(key, Fate::Unseen);
                    }
                }
            }
        }
        JobLedger {
            queues: Queues::default(),
            tasks,
            phases: phases.iter().map(|p| (json(p), p.phase_number)).collect(),
            read: HashMap::new(),
            completed: 0,
            qos_met: 0,
            dead_lettered: 0,
            foreign_completed: 0,
            foreign_dead_lettered: 0,
            completion_times: Vec::new(),
            refused_phase: None,
        }
    }

    /// The job's tasks.
    pub fn total(&self) -> usize {
        self.tasks.len()
    }

    /// Tasks that reached an end: completed or dead-lettered.
    pub fn accounted(&self) -> u64 {
        self.completed + self.dead_lettered
    }

    /// Every task of the job has reached an end.
    pub fn done(&self) -> bool {
        self.accounted() >= self.total() as u64
    }

    /// Reads what was appended to the output and dead-letter lists since the last call.
    pub async fn poll(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let output = self.queues.output.clone();
        for raw in self.read_new(conn, &output).await? {
            match serde_json::from_str::<OutputRecord>(&raw) {
                Ok(r) => self.completed(&r),
                Err(_) => self.foreign_completed += 1,
            }
        }
        for queue in [
            Queues::dead(&self.queues.worker),
            Queues::dead(&self.queues.result),
        ] {
            for raw in self.read_new(conn, &queue).await? {
                let id = dead_letter_message(&raw).and_then(|m| task_id(&m));
                self.dead_lettered(id.as_deref());
            }
        }
        for raw in self.read_new(conn, &Queues::dead(&self.queues.input)).await? {
            let Some(message) = dead_letter_message(&raw) else {
                continue;
            };
            if let Some(number) = self.phases.get(&message) {
                let reason = serde_json::from_str::<serde_json::Value>(&raw)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or_default();
                self.refused_phase = Some(format!("the emitter refused phase {number}: {reason}"));
            }
        }
        Ok(())
    }

    fn completed(&mut self, r: &OutputRecord) {
        match id_key(&r.task_id).and_then(|k| self.tasks.get_mut(&k)) {
            Some(fate @ (Fate::Unseen | Fate::DeadLettered)) => {
                // What was dead-lettered under this id was a broken copy (the task itself
                // went through): the completion is what happened to the task.
                if *fate == Fate::DeadLettered {
                    self.dead_lettered -= 1;
                    self.foreign_dead_lettered += 1;
                }
                *fate = Fate::Completed;
                self.completed += 1;
                self.qos_met += u64::from(r.task_qos);
                self.completion_times.push(r.task_completion_time);
            }
            // The collector drops duplicates, so a second record is someone else's copy.
            Some(Fate::Completed) | None => self.foreign_completed += 1,
        }
    }

    fn dead_lettered(&mut self, id: Option<&str>) {
        match id.and_then(id_key).and_then(|k| self.tasks.get_mut(&k)) {
            Some(fate @ Fate::Unseen) => {
                *fate = Fate::DeadLettered;
                self.dead_lettered += 1;
            }
            _ => self.foreign_dead_lettered += 1,
        }
    }

    /// The job's tasks that are neither completed nor dead-lettered but sit in a queue or a
    /// processing list (emitted and not finished). Read once, when the run ends.
    pub async fn in_flight(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<u64> {
        let mut lists = vec![
            self.queues.worker.clone(),
            self.queues.result.clone(),
            keys::COLLECTOR_PROCESSING.to_string(),
        ];
        let processing: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.queues.processing_prefix()))
            .query_async(conn)
            .await?;
        lists.extend(processing);
        let mut seen = HashSet::new();
        for list in lists {
            let items: Vec<String> = conn.lrange(&list, 0, -1).await?;
            for raw in items {
                if let Some(key) = task_id(&raw).as_deref().and_then(id_key) {
                    if self.tasks.get(&key) == Some(&Fate::Unseen) {
                        seen.insert(key);
                    }
                }
            }
        }
        Ok(seen.len() as u64)
    }

    /// Elements appended to `list` since the last call, oldest first.
    async fn read_new(
        &mut self,
        conn: &mut MultiplexedConnection,
        list: &str,
    ) -> redis::RedisResult<Vec<String>> {
        let read = self.read.entry(list.to_string()).or_insert(0);
        let mut out = Vec::new();
        loop {
            // Counted from the tail, which does not move while others push at the head; a
            // start before the head is clamped by the broker.
            let start = -((*read + PAGE) as isize);
            let stop = -(*read as isize) - 1;
            let mut page: Vec<String> = conn.lrange(list, start, stop).await?;
            let n = page.len();
            page.reverse();
            out.extend(page);
            *read += n;
            if n < PAGE {
                return Ok(out);
            }
        }
    }
}

/// The job's ids are UUIDs; anything else is not one of its tasks.
fn id_key(id: &str) -> Option<u128> {
    uuid::Uuid::parse_str(id).ok().map(|u| u.as_u128())
}

/// The message a dead-letter record carries.
fn dead_letter_message(record: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(record).ok()?;
    v["message"].as_str().map(str::to_string)
}

/// The `task_id` of a task or result, if the text is a JSON object with a string id.
fn task_id(raw: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    v["task_id"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use workload::WorkloadConfig;

    fn record(id: &str, qos: bool) -> OutputRecord {
        OutputRecord {
            task_id: id.into(),
            task_application: "image_processing".into(),
            task_gen_timestamp: 0.0,
            task_emit_timestamp: 0.0,
            task_emit_time: 0.0,
            task_work_timestamp: 0.5,
            task_work_time: 0.5,
            task_deadline: 2.0,
            task_collect_timestamp: 1.0,
            task_collect_time: 0.5,
            task_completion_time: 1.0,
            task_qos: qos,
            task_result_data: String::new(),
            task_output_size: 512,
        }
    }

    #[test]
    fn the_job_is_its_phases_tasks_and_foreign_messages_count_apart() {
        let phases = functions::emitter::phase_messages(&WorkloadConfig::default(), 4);
        let mut ledger = JobLedger::new(&phases);
        assert_eq!(ledger.total(), 1140);
        let ids: Vec<String> = functions::emitter::task_ids(phases[0].task_seed.unwrap())
            .take(3)
            .collect();
        ledger.completed(&record(&ids[0], true));
        ledger.completed(&record(&ids[1], false));
        // A foreign task, a second record of a job task, garbage dead-lettered.
        ledger.completed(&record("not-ours", true));
        ledger.completed(&record(&ids[0], true));
        ledger.dead_lettered(None);
        ledger.dead_lettered(Some("not-ours"));
        // A malformed copy carrying a job id, then the task itself completes.
        ledger.dead_lettered(Some(&ids[2]));
        assert_eq!((ledger.completed, ledger.dead_lettered), (2, 1));
        ledger.completed(&record(&ids[2], true));
        assert_eq!(
            (
                ledger.completed,
                ledger.qos_met,
                ledger.dead_lettered,
                ledger.foreign_completed,
                ledger.foreign_dead_lettered
            ),
            (3, 2, 0, 2, 3)
        );
        assert!(!ledger.done());
        assert_eq!(ledger.completion_times.len(), 3);
    }
}
