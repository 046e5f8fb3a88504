//! The metrics a farm exposes and the one function that turns them into a policy observation.
//!
//! The live node (broker queue counters + collector totals) and the simulator both produce
//! [`FarmMetrics`] snapshots, so a policy sees identical features in training and production.

use serde::Serialize;
use workload::RatePlan;

/// A point-in-time snapshot of the farm, cumulative counters included.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FarmMetrics {
    /// Seconds since the run started.
    pub time_s: f64,
    /// Tasks waiting in worker_queue.
    pub queue_length: u64,
    /// Tasks ever pushed to worker_queue.
    pub pushed_total: u64,
    /// Tasks ever taken from worker_queue.
    pub popped_total: u64,
    /// Age of the oldest waiting task, seconds (0 when empty).
    pub oldest_age_s: f64,
    /// Tasks completed (collected).
    pub completed_total: u64,
    /// Completed tasks that met their deadline.
    pub qos_met_total: u64,
    /// Sum of completion times of completed tasks, seconds.
    pub completion_sum_s: f64,
    /// Largest completion time seen in the current window, seconds (reset by the producer
    /// at every snapshot it hands out).
    pub completion_max_s: f64,
    /// Workers able to take tasks (idle or busy).
    pub workers_live: u32,
    /// Workers processing a task.
    pub workers_busy: u32,
    /// Workers requested but not ready yet.
    pub workers_starting: u32,
}

/// A source of snapshots: the live broker or the simulator.
pub trait Metrics {
    fn snapshot(&mut self) -> FarmMetrics;
}

/// What a policy sees at a decision: the current snapshot and rates over the last period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Observation {
    pub now: FarmMetrics,
    /// Length of the window the rates cover, seconds.
    pub window_s: f64,
    /// Tasks per second pushed during the window.
    pub arrival_rate: f64,
    /// Tasks per second taken during the window.
    pub service_rate: f64,
    /// Mean completion time of tasks completed during the window (s; 0 if none).
    pub completion_mean_s: f64,
    /// Largest completion time during the window (s; 0 if none).
    pub completion_max_s: f64,
    /// Fraction of tasks completed during the window that met their deadline (1 if none).
    pub window_qos: f64,
    /// Tasks completed during the window.
    pub completed: u64,
    /// What the load calendar plans, when the run has one (see [`Calendar`]).
    pub outlook: Option<Outlook>,
}

impl Observation {
    /// The same observation with the calendar's outlook at its time (none without a calendar).
    pub fn with_calendar(mut self, calendar: Option<&Calendar>) -> Observation {
        self.outlook = calendar.map(|c| c.outlook(self.now.time_s));
        self
    }
}

/// The planned arrival rates around a decision, read from a [`Calendar`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Outlook {
    /// Planned tasks per second now.
    pub rate_now: f64,
    /// Highest planned tasks per second from now until a decision taken now has taken effect
    /// and served one period.
    pub rate_peak: f64,
}

/// A load calendar: the planned arrival rate of the run ([`RatePlan`] — phase order, totals and
/// shapes, not the tasks), known in advance to whoever drives the emitter, and how far ahead a
/// decision has to look: one decision period plus the slowest worker start-up (the mean delay
/// + 20 % jitter), the time until the workers asked for at the next decision are serving.
#[derive(Clone, Debug, PartialEq)]
pub struct Calendar {
    plan: RatePlan,
    horizon_s: f64,
}

impl Calendar {
    /// `plan` must be in the same clock as the observations' `time_s`.
    pub fn new(plan: RatePlan, decision_period_s: f64, startup_delay_s: f64) -> Calendar {
        Calendar {
            plan,
            horizon_s: decision_period_s + startup_delay_s * 1.2,
        }
    }

    /// The planned rates at `now_s`.
    pub fn outlook(&self, now_s: f64) -> Outlook {
        Outlook {
            rate_now: self.plan.rate_at(now_s),
            rate_peak: self.plan.peak_between(now_s, now_s + self.horizon_s),
        }
    }
}

/// Builds the observation from the previous and current snapshots.
pub fn observe(prev: &FarmMetrics, now: &FarmMetrics) -> Observation {
    let window_s = (now.time_s - prev.time_s).max(1e-9);
    let completed = now.completed_total.saturating_sub(prev.completed_total);
    let met = now.qos_met_total.saturating_sub(prev.qos_met_total);
    let sum = now.completion_sum_s - prev.completion_sum_s;
    Observation {
        now: now.clone(),
        window_s,
        arrival_rate: now.pushed_total.saturating_sub(prev.pushed_total) as f64 / window_s,
        service_rate: now.popped_total.saturating_sub(prev.popped_total) as f64 / window_s,
        completion_mean_s: if completed == 0 {
            0.0
        } else {
            sum / completed as f64
        },
        completion_max_s: now.completion_max_s,
        window_qos: if completed == 0 {
            1.0
        } else {
            met as f64 / completed as f64
        },
        completed,
        outlook: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_window_qos() {
        let prev = FarmMetrics {
            time_s: 8.0,
            pushed_total: 10,
            popped_total: 8,
            ..FarmMetrics::default()
        };
        let now = FarmMetrics {
            time_s: 16.0,
            pushed_total: 50,
            popped_total: 40,
            completed_total: 30,
            qos_met_total: 27,
            completion_sum_s: 45.0,
            ..FarmMetrics::default()
        };
        let o = observe(&prev, &now);
        assert_eq!(o.arrival_rate, 5.0);
        assert_eq!(o.service_rate, 4.0);
        assert_eq!(o.completed, 30);
        assert!((o.window_qos - 0.9).abs() < 1e-12);
        assert!((o.completion_mean_s - 1.5).abs() < 1e-12);
        let idle = observe(
            &now,
            &FarmMetrics {
                time_s: 24.0,
                ..now.clone()
            },
        );
        assert_eq!((idle.window_qos, idle.completion_mean_s), (1.0, 0.0));
        assert_eq!(idle.outlook, None);
    }

    #[test]
    fn the_calendar_looks_one_period_and_a_start_up_ahead() {
        let plan = RatePlan::new(&workload::WorkloadConfig::default(), 1);
        // Steady Low (1.5 tasks/s) until 60 s, then Steady High (7.5 tasks/s).
        let calendar = Calendar::new(plan, 8.0, 5.0);
        let at = |t: f64| {
            let now = FarmMetrics {
                time_s: t,
                ..FarmMetrics::default()
            };
            observe(&FarmMetrics::default(), &now)
                .with_calendar(Some(&calendar))
                .outlook
                .unwrap()
        };
        // 40 s + 8 s + 6 s = 54 s: the jump is not yet in sight.
        assert_eq!(
            at(40.0),
            Outlook {
                rate_now: 1.5,
                rate_peak: 1.5
            }
        );
        // 48 s + 14 s = 62 s: it is.
        let seen = at(48.0);
        assert!((seen.rate_now - 1.5).abs() < 1e-9 && (seen.rate_peak - 7.5).abs() < 1e-9);
        assert_eq!(at(300.0), Outlook::default(), "nothing planned after the run");
    }
}
