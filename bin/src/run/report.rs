//! The report a run ends with: report.json, report.md and timeseries.svg. Its counts add up:
//! `tasks = completed + dead_lettered + in_flight + not_emitted + lost`.

use agent::eval::StepRecord;
use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every task of the job completed or was dead-lettered.
    Completed,
    /// Stopped by SIGINT or SIGTERM before the job was done.
    Interrupted,
    /// A role (emitter, collector) failed for good, or the emitter refused a phase.
    Failed,
    /// The job was not done within the workload's time plus the drain allowance.
    TimedOut,
}

impl Outcome {
    /// The name in report.json.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Interrupted => "interrupted",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
        }
    }
}

/// The numbers a run ends with. Fields are only ever added, so older readers keep working.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub policy: String,
    pub time_scale: f64,
    /// The job's tasks.
    pub tasks: usize,
    pub completed: u64,
    pub qos_met: u64,
    /// Tasks that missed their deadline or did not complete.
    pub missed: u64,
    /// The job's tasks that were dead-lettered (see `foreign_dead_lettered` for the rest).
    pub dead_lettered: u64,
    /// The job's tasks still in a queue or a processing list when the run ended.
    pub still_queued: u64,
    /// Tasks accounted for nowhere. Must be 0.
    pub lost: i64,
    pub duplicates: u64,
    pub qos_percent: f64,
    pub mean_workers: f64,
    pub max_workers: u32,
    /// Worker-seconds in workload time (wall-clock worker-seconds ÷ time scale).
    pub worker_seconds: f64,
    pub scaling_actions: u64,
    pub crashed_workers: u64,
    pub completion_p50_s: f64,
    pub completion_p95_s: f64,
    pub completion_p99_s: f64,
    pub wall_clock_s: f64,
    pub outcome: Outcome,
    pub interrupted: bool,
    /// Why the run failed, when it did.
    pub failure: Option<String>,
    /// Tasks the emitter pushed.
    pub emitted: u64,
    /// Tasks of the job never pushed (the run ended first).
    pub not_emitted: u64,
    /// Emitted and not finished (the same count as `still_queued`).
    pub in_flight: u64,
    /// Messages that were not the job's tasks: completed by the farm, or dead-lettered
    /// (malformed, injected); never counted against the job.
    pub foreign_completed: u64,
    pub foreign_dead_lettered: u64,
    /// Restarts of the emitter and the collector after they exited unasked.
    pub restarts: BTreeMap<String, u32>,
}

impl RunReport {
    /// Why the run must end with a non-zero exit code, if it must.
    pub fn incomplete(&self) -> Option<String> {
        let counts = format!(
            "{} of {} tasks completed, {} dead-lettered, {} in flight, {} not yet emitted",
            self.completed, self.tasks, self.dead_lettered, self.in_flight, self.not_emitted
        );
        match (&self.outcome, &self.failure) {
            (Outcome::Failed, Some(why)) => Some(format!("{why} ({counts})")),
            (Outcome::Failed, None) => Some(format!("the run failed ({counts})")),
            (Outcome::Interrupted, _) => Some(format!("interrupted: {counts}")),
            (Outcome::TimedOut, _) => Some(format!("gave up waiting for the job: {counts}")),
            (Outcome::Completed, _) if self.lost != 0 => {
                Some(format!("{} tasks are unaccounted for ({counts})", self.lost))
            }
            (Outcome::Completed, _) => None,
        }
    }

    pub fn markdown(&self) -> String {
        let restarts = self
            .restarts
            .iter()
            .map(|(role, n)| format!("{role} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut outcome = self.outcome.as_str().to_string();
        if let Some(why) = &self.failure {
            outcome.push_str(&format!(": {why}"));
        }
        let rows: Vec<(&str, String)> = vec![
            ("outcome", outcome),
            ("policy", self.policy.clone()),
            ("tasks", self.tasks.to_string()),
            ("QoS %", format!("{:.2}", self.qos_percent)),
            ("completed", self.completed.to_string()),
            ("missed deadline or unfinished", self.missed.to_string()),
            ("dead-lettered", self.dead_lettered.to_string()),
            ("still queued", self.still_queued.to_string()),
            ("not yet emitted", self.not_emitted.to_string()),
            ("lost", self.lost.to_string()),
            ("duplicates dropped", self.duplicates.to_string()),
            (
                "foreign messages completed / dead-lettered",
                format!("{} / {}", self.foreign_completed, self.foreign_dead_lettered),
            ),
            ("restarts", restarts),
            ("mean workers", format!("{:.2}", self.mean_workers)),
            ("max workers", self.max_workers.to_string()),
            (
                "worker-seconds (workload time)",
                format!("{:.0}", self.worker_seconds),
            ),
            ("scaling actions", self.scaling_actions.to_string()),
            ("crashed workers", self.crashed_workers.to_string()),
            (
                "completion p50 / p95 / p99 s (workload time)",
                format!(
                    "{:.2} / {:.2} / {:.2}",
                    self.completion_p50_s, self.completion_p95_s, self.completion_p99_s
                ),
            ),
            ("wall clock s", format!("{:.1}", self.wall_clock_s)),
        ];
        let mut s = String::from("| | |\n|---|---|\n");
        for (k, v) in rows {
            s.push_str(&format!("| {k} | {v} |\n"));
        }
        s
    }

    /// Writes report.json, report.md and timeseries.svg (and .png) to `dir`.
    pub fn write(&self, dir: &Path, steps: &[StepRecord]) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        std::fs::write(
            dir.join("report.md"),
            format!("# Run report\n\n{}", self.markdown()),
        )?;
        let series = [(self.policy.clone(), steps.to_vec())];
        agent::plot::write_chart(&dir.join("timeseries.svg"), |f| {
            agent::plot::timeseries(&series, f)
        })?;
        Ok(())
    }
}

/// The `q` quantile of sorted `values` (0 when empty).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome, lost: i64) -> RunReport {
        RunReport {
            policy: "static:4".into(),
            time_scale: 0.05,
            tasks: 10,
            completed: 6,
            qos_met: 6,
            missed: 4,
            dead_lettered: 1,
            still_queued: 2,
            lost,
            duplicates: 0,
            qos_percent: 60.0,
            mean_workers: 4.0,
            max_workers: 4,
            worker_seconds: 100.0,
            scaling_actions: 0,
            crashed_workers: 0,
            completion_p50_s: 1.0,
            completion_p95_s: 2.0,
            completion_p99_s: 3.0,
            wall_clock_s: 5.0,
            interrupted: outcome == Outcome::Interrupted,
            failure: (outcome == Outcome::Failed).then(|| "the emitter refused phase 2: x".to_string()),
            outcome,
            emitted: 9,
            not_emitted: 1,
            in_flight: 2,
            foreign_completed: 0,
            foreign_dead_lettered: 0,
            restarts: BTreeMap::new(),
        }
    }

    #[test]
    fn only_a_completed_job_with_nothing_lost_exits_cleanly() {
        assert_eq!(report(Outcome::Completed, 0).incomplete(), None);
        let counts = "6 of 10 tasks completed, 1 dead-lettered, 2 in flight, 1 not yet emitted";
        for (outcome, lost, says) in [
            (
                Outcome::Completed,
                3,
                format!("3 tasks are unaccounted for ({counts})"),
            ),
            (Outcome::Interrupted, 0, format!("interrupted: {counts}")),
            (
                Outcome::TimedOut,
                0,
                format!("gave up waiting for the job: {counts}"),
            ),
            (
                Outcome::Failed,
                0,
                format!("the emitter refused phase 2: x ({counts})"),
            ),
        ] {
            assert_eq!(report(outcome, lost).incomplete(), Some(says));
        }
        let json = serde_json::to_value(report(Outcome::TimedOut, 0)).unwrap();
        assert_eq!(json["outcome"], "timed_out");
        assert!(report(Outcome::TimedOut, 0)
            .markdown()
            .contains("| outcome | timed_out |"));
        assert!(report(Outcome::Failed, 0)
            .markdown()
            .contains("| outcome | failed: the emitter refused phase 2: x |"));
    }
}
