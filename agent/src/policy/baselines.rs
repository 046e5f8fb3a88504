//! The baselines: rules that see only the farm's metrics, as a deployed autoscaler would —
//! `static:N`, the original system's `reactive-average` and `reactive-maximum`, KEDA's
//! `queue-proportional[:TARGET]`, and `load-proportional[:HEADROOM]`.

use super::Policy;
use crate::observe::Observation;

/// Workers the farm currently has or has asked for.
fn current_workers(obs: &Observation) -> u32 {
    obs.now.workers_live + obs.now.workers_starting
}

/// Always the same number of workers.
pub struct Static(pub u32);

impl Static {
    /// The farm the simulator and `run` start with.
    pub const DEFAULT_WORKERS: u32 = 12;
}

impl Policy for Static {
    fn name(&self) -> String {
        format!("static:{}", self.0)
    }
    fn decide(&mut self, _obs: &Observation) -> u32 {
        self.0
    }
}

/// The original system's reactive baselines: ±1 worker per step from a queueing estimate.
///
/// Service time S is the average (or maximum) end-to-end latency in the window; horizon
/// H = max(8, S, 1); optimal = max(1, queue/H·S + arrival·S); busy = in-flight·S/H·factor
/// (factor 0.5 for average, 1.0 for maximum); +1 if optimal − (workers − busy) ≥ 0.5, −1 if it
/// is ≤ −0.5.
pub struct Reactive {
    use_max: bool,
    /// The last service time seen, used while no task completes.
    last_service_s: f64,
}

impl Reactive {
    pub fn average() -> Reactive {
        Reactive {
            use_max: false,
            last_service_s: 1.5,
        }
    }
    pub fn maximum() -> Reactive {
        Reactive {
            use_max: true,
            last_service_s: 1.5,
        }
    }

    /// The step (−1, 0, +1) for the given inputs; pure, for tests.
    pub fn step(
        service_s: f64,
        queue: f64,
        arrival_rate: f64,
        workers: f64,
        in_flight: f64,
        factor: f64,
    ) -> i32 {
        let horizon = service_s.max(8.0).max(1.0);
        let optimal = (queue / horizon * service_s + arrival_rate * service_s).max(1.0);
        let busy = in_flight * service_s / horizon * factor;
        let gap = optimal - (workers - busy);
        if gap >= 0.5 {
            1
        } else if gap <= -0.5 {
            -1
        } else {
            0
        }
    }
}

impl Policy for Reactive {
    fn name(&self) -> String {
        if self.use_max {
            "reactive-maximum"
        } else {
            "reactive-average"
        }
        .into()
    }
    fn decide(&mut self, obs: &Observation) -> u32 {
        if obs.completed > 0 {
            self.last_service_s = if self.use_max {
                obs.completion_max_s
            } else {
                obs.completion_mean_s
            };
        }
        let workers = current_workers(obs);
        let factor = if self.use_max { 1.0 } else { 0.5 };
        let step = Reactive::step(
            self.last_service_s,
            obs.now.queue_length as f64,
            obs.arrival_rate,
            f64::from(workers),
            f64::from(obs.now.workers_busy),
            factor,
        );
        (i64::from(workers) + i64::from(step)).max(0) as u32
    }
}

/// KEDA's Redis-list scaler through the HPA: desired = ceil(queue / target), no change within
/// 10 % of the current count, scale-down only to the highest recommendation of the
/// stabilization window.
pub struct QueueProportional {
    pub target_per_worker: f64,
    pub tolerance: f64,
    pub stabilization_s: f64,
    history: Vec<(f64, u32)>,
}

impl QueueProportional {
    /// KEDA's default list length per replica.
    pub const DEFAULT_TARGET: f64 = 5.0;

    /// KEDA's default list-length target (5) and the HPA defaults (10 %, 300 s).
    pub fn new(target_per_worker: f64) -> QueueProportional {
        QueueProportional {
            target_per_worker,
            tolerance: 0.1,
            stabilization_s: 300.0,
            history: Vec::new(),
        }
    }

    /// The HPA recommendation for a metric total and the current replica count; pure.
    pub fn recommend(queue: f64, target: f64, current: u32, tolerance: f64) -> u32 {
        let desired = (queue / target).ceil().max(1.0);
        if current > 0 && (desired / f64::from(current) - 1.0).abs() <= tolerance {
            return current;
        }
        desired as u32
    }
}

impl Policy for QueueProportional {
    fn name(&self) -> String {
        format!("queue-proportional:{}", self.target_per_worker)
    }
    fn decide(&mut self, obs: &Observation) -> u32 {
        let current = current_workers(obs);
        let rec = QueueProportional::recommend(
            obs.now.queue_length as f64,
            self.target_per_worker,
            current,
            self.tolerance,
        );
        let now = obs.now.time_s;
        self.history.push((now, rec));
        self.history.retain(|(t, _)| now - t <= self.stabilization_s);
        if rec >= current {
            rec
        } else {
            // Scale down no further than the highest recommendation in the window.
            self.history
                .iter()
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(rec)
                .min(current)
        }
    }
}

/// Provision the measured load plus headroom: target = ceil(λ·S·(1 + headroom) + queue·S/P),
/// with λ the arrival rate of the last period, S the mean service time (Little's law:
/// busy workers ÷ service rate, 1.5 s until measured) and P the decision period. The rule an
/// engineer would write first; a strong, simple baseline.
pub struct LoadProportional {
    pub headroom: f64,
    service_s: f64,
}

impl LoadProportional {
    /// The default headroom: 30 % above the measured load.
    pub const DEFAULT_HEADROOM: f64 = 0.3;

    pub fn new(headroom: f64) -> LoadProportional {
        LoadProportional {
            headroom,
            service_s: 1.5,
        }
    }
}

impl Policy for LoadProportional {
    fn name(&self) -> String {
        format!("load-proportional:{}", self.headroom)
    }
    fn decide(&mut self, obs: &Observation) -> u32 {
        if obs.service_rate > 0.5 && obs.now.workers_busy > 0 {
            // Exponential smoothing keeps one noisy window from swinging the estimate.
            let measured = f64::from(obs.now.workers_busy) / obs.service_rate;
            self.service_s = 0.7 * self.service_s + 0.3 * measured.clamp(0.05, 30.0);
        }
        let load = obs.arrival_rate * self.service_s;
        let backlog = obs.now.queue_length as f64 * self.service_s / obs.window_s.max(1.0);
        (load * (1.0 + self.headroom) + backlog).ceil().max(1.0) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactive_formula_by_hand() {
        // S = 2, H = 8: optimal = 16/8·2 + 3·2 = 10; busy = 4·2/8·0.5 = 0.5; gap = 10 − (8 − 0.5).
        assert_eq!(Reactive::step(2.0, 16.0, 3.0, 8.0, 4.0, 0.5), 1);
        // optimal = max(1, 0 + 0.5·2) = 1; busy = 0; gap = 1 − 5 = −4.
        assert_eq!(Reactive::step(2.0, 0.0, 0.5, 5.0, 0.0, 0.5), -1);
        // gap = 1·... exactly balanced: optimal 4 (rate 2 × S 2), workers 4, busy 0.
        assert_eq!(Reactive::step(2.0, 0.0, 2.0, 4.0, 0.0, 1.0), 0);
        // S above the 8 s floor becomes the horizon: H = 10, optimal = 20/10·10 = 20, busy = 10,
        // gap = 20 − (25 − 10) = 5.
        assert_eq!(Reactive::step(10.0, 20.0, 0.0, 25.0, 10.0, 1.0), 1);
    }

    #[test]
    fn hpa_tolerance_and_rounding() {
        assert_eq!(QueueProportional::recommend(23.0, 5.0, 4, 0.1), 5);
        // ceil(21/5) = 5 vs current 5: within tolerance.
        assert_eq!(QueueProportional::recommend(21.0, 5.0, 5, 0.1), 5);
        // 10/1 = 10 vs 11 current: |10/11 − 1| = 0.09 ≤ 0.1 → keep 11.
        assert_eq!(QueueProportional::recommend(10.0, 1.0, 11, 0.1), 11);
        assert_eq!(QueueProportional::recommend(0.0, 5.0, 3, 0.1), 1);
    }

    #[test]
    fn hpa_stabilization_holds_scale_down() {
        let mut p = QueueProportional::new(1.0);
        let mut obs = Observation::default();
        obs.now.workers_live = 2;
        obs.now.queue_length = 10;
        obs.now.time_s = 0.0;
        assert_eq!(p.decide(&obs), 10);
        obs.now.workers_live = 10;
        obs.now.queue_length = 0;
        obs.now.time_s = 8.0;
        assert_eq!(
            p.decide(&obs),
            10,
            "the earlier recommendation holds within the window"
        );
        obs.now.time_s = 400.0;
        assert_eq!(p.decide(&obs), 1);
    }
}
