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
    /// Slack of the oldest waiting task: its deadline minus its age minus its processing time,
    /// seconds (negative: it will miss whatever happens; 0 when the queue is empty).
    pub oldest_slack_s: f64,
    /// Σ processing times of the waiting tasks, seconds of work (0 when empty).
    pub queued_work_s: f64,
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
    /// Arrival rates over the last 1, 5 and 30 s, tasks/s (over the history there is when it
    /// is shorter; see [`Observer`]). [`observe`] alone sets all three to `arrival_rate`.
    pub rate_1s: f64,
    pub rate_5s: f64,
    pub rate_30s: f64,
    /// Tasks completed, and those that missed their deadline, over the last 30 s.
    pub completed_30s: u64,
    pub missed_30s: u64,
    /// How long a new worker takes to serve, seconds, as the farm's operator configured or
    /// measured it (0 when unknown): what a policy must look ahead by.
    pub startup_s: f64,
}

/// Builds observations from a stream of snapshots, keeping the last 30 s of them for the
/// multi-window rates. The simulator and the live node both use it, so a policy sees the same
/// features in training and in production, at any decision cadence.
#[derive(Clone, Debug, Default)]
pub struct Observer {
    /// Snapshots of the last [`Observer::HISTORY_S`] seconds (and one before), oldest first.
    history: std::collections::VecDeque<FarmMetrics>,
}

impl Observer {
    /// The longest window an observation looks back over.
    pub const HISTORY_S: f64 = 30.0;

    pub fn new() -> Observer {
        Observer::default()
    }

    /// The observation at `now`, against the previous snapshot (the decision period's rates)
    /// and the history (the 1/5/30 s rates); `None` for the very first snapshot.
    pub fn observe(&mut self, now: FarmMetrics) -> Option<Observation> {
        let prev = self.history.back().cloned();
        self.history.push_back(now.clone());
        // Keep one snapshot at or before the 30 s horizon, so the longest window is full.
        while self.history.len() > 2 && self.history[1].time_s <= now.time_s - Self::HISTORY_S {
            self.history.pop_front();
        }
        let prev = prev?;
        let mut obs = observe(&prev, &now);
        let at = |w: f64| -> &FarmMetrics {
            // The latest snapshot at least `w` seconds old, else the oldest there is.
            self.history
                .iter()
                .rev()
                .find(|m| m.time_s <= now.time_s - w + 1e-9)
                .unwrap_or(&self.history[0])
        };
        let rate = |w: f64| -> f64 {
            let then = at(w);
            let span = now.time_s - then.time_s;
            if span <= 1e-9 {
                obs.arrival_rate
            } else {
                now.pushed_total.saturating_sub(then.pushed_total) as f64 / span
            }
        };
        obs.rate_1s = rate(1.0);
        obs.rate_5s = rate(5.0);
        obs.rate_30s = rate(30.0);
        let then = at(30.0);
        obs.completed_30s = now.completed_total.saturating_sub(then.completed_total);
        let met = now.qos_met_total.saturating_sub(then.qos_met_total);
        obs.missed_30s = obs.completed_30s.saturating_sub(met);
        Some(obs)
    }
}

impl Observation {
    /// The same observation with the farm's start-up delay.
    pub fn with_startup(mut self, startup_s: f64) -> Observation {
        self.startup_s = startup_s;
        self
    }

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
        rate_1s: now.pushed_total.saturating_sub(prev.pushed_total) as f64 / window_s,
        rate_5s: now.pushed_total.saturating_sub(prev.pushed_total) as f64 / window_s,
        rate_30s: now.pushed_total.saturating_sub(prev.pushed_total) as f64 / window_s,
        completed_30s: completed,
        missed_30s: completed - met.min(completed),
        startup_s: 0.0,
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
    fn the_observer_keeps_30_s_of_history_for_its_windows() {
        let snap = |t: f64, pushed: u64, completed: u64, met: u64| FarmMetrics {
            time_s: t,
            pushed_total: pushed,
            completed_total: completed,
            qos_met_total: met,
            ..FarmMetrics::default()
        };
        let mut o = Observer::new();
        assert!(o.observe(snap(0.0, 0, 0, 0)).is_none(), "no previous snapshot");
        // 2 tasks/s for 40 s, then 10 tasks/s for 2 s; one miss every 5 s.
        for t in 1..=40u64 {
            o.observe(snap(t as f64, 2 * t, t, t - t / 5)).unwrap();
        }
        let obs = o.observe(snap(41.0, 90, 41, 33)).unwrap();
        assert_eq!(obs.rate_1s, 10.0);
        assert_eq!(obs.arrival_rate, 10.0);
        assert!((obs.rate_5s - (90.0 - 72.0) / 5.0).abs() < 1e-9);
        assert!((obs.rate_30s - (90.0 - 22.0) / 30.0).abs() < 1e-9);
        assert_eq!(obs.completed_30s, 30);
        assert_eq!(obs.missed_30s, (41 - 33) - (11 - 9));
        assert!(o.history.len() <= 33, "{} snapshots kept", o.history.len());
        // A short history: the windows cover what there is.
        let mut young = Observer::new();
        young.observe(snap(0.0, 0, 0, 0));
        let obs = young.observe(snap(2.0, 6, 0, 0)).unwrap();
        assert_eq!((obs.rate_1s, obs.rate_5s, obs.rate_30s), (3.0, 3.0, 3.0));
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
