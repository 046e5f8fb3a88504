//! The node's scaling rules, applied to every policy's wish wherever it decides — in the live
//! node (`serve`, `run`) and in the simulator's episodes (`eval`, `train`), so that what is
//! evaluated is what runs: the node's bounds, an idle farm held (no scale-up without demand,
//! idle → the minimum), and rate limits so that fast decisions cannot thrash the farm.

use crate::observe::Observation;
use std::collections::VecDeque;

/// What bounds a plan. Durations in workload seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub min_workers: u32,
    pub max_workers: u32,
    /// A scale-down follows the previous change of the target by at least this long; 0 lets
    /// every decision lower the target.
    pub scale_down_cooldown_s: f64,
    /// A scale-down goes no lower than the largest wish of this last stretch of time
    /// (hysteresis: a wish that flickers around a value does not move the count at every
    /// decision); 0 takes each wish as it comes.
    pub scale_down_window_s: f64,
    /// A target may rise by at most this many workers per decision (`None`: no limit).
    pub max_step_up: Option<u32>,
    /// A farm with no arrival, nothing queued and nothing in progress for this long goes to
    /// `min_workers`, whatever the policy wants (`None`: never on the node's own account).
    pub idle_after_s: Option<f64>,
}

impl Limits {
    /// The defaults of `serve` and `run`.
    pub const SCALE_DOWN_COOLDOWN_S: f64 = 2.0;
    pub const SCALE_DOWN_WINDOW_S: f64 = 5.0;
    pub const IDLE_AFTER_S: f64 = 30.0;

    /// Only the bounds: no rate limiting, no idle rule.
    pub fn bounds(min_workers: u32, max_workers: u32) -> Limits {
        Limits {
            min_workers,
            max_workers,
            scale_down_cooldown_s: 0.0,
            scale_down_window_s: 0.0,
            max_step_up: None,
            idle_after_s: None,
        }
    }

    /// The bounds with the node's default rate limits and idle rule.
    pub fn node(min_workers: u32, max_workers: u32) -> Limits {
        Limits {
            scale_down_cooldown_s: Self::SCALE_DOWN_COOLDOWN_S,
            scale_down_window_s: Self::SCALE_DOWN_WINDOW_S,
            idle_after_s: Some(Self::IDLE_AFTER_S),
            ..Limits::bounds(min_workers, max_workers)
        }
    }
}

/// Why the plan differs from what the policy asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adjustment {
    /// Taken as asked.
    None,
    /// Raised to `min_workers` or lowered to `max_workers`.
    Clamped,
    /// A scale-down held back by the cooldown.
    CoolingDown,
    /// A scale-down held at the largest wish of the recent window.
    Stabilized,
    /// A scale-up cut to `max_step_up`.
    StepLimited,
    /// A scale-up refused: no task arrived in the last 30 s and nothing is queued.
    NoDemand,
    /// The farm has been idle for `idle_after_s`: down to `min_workers`.
    Idle,
}

/// The decision: the target to apply and how it came about.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// What the policy asked for.
    pub wanted: u32,
    /// What the node will apply.
    pub target: u32,
    pub adjustment: Adjustment,
}

/// What `decide` remembers between decisions (the rate limiter's state).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecisionState {
    /// Workload time of the last change of the target, if any.
    pub last_change_s: Option<f64>,
    /// Since when the farm has been idle (no arrival, empty queue, no busy worker), if it is.
    pub idle_since_s: Option<f64>,
    /// The wishes (clamped to the bounds) of the last `scale_down_window_s`, oldest first.
    wishes: VecDeque<(f64, u32)>,
}

/// The rules applied to a policy's wish `wanted` for a farm whose target is `current`.
pub fn plan(
    wanted: u32,
    obs: &Observation,
    current: u32,
    limits: &Limits,
    state: &mut DecisionState,
) -> Plan {
    let now_s = obs.now.time_s;
    let (lo, hi) = (limits.min_workers, limits.max_workers.max(limits.min_workers));
    let wish = wanted.clamp(lo, hi);
    let mut target = wish;
    let mut adjustment = if target == wanted {
        Adjustment::None
    } else {
        Adjustment::Clamped
    };

    // The window of recent wishes, this one included.
    state.wishes.push_back((now_s, wish));
    while state
        .wishes
        .front()
        .is_some_and(|&(t, _)| t < now_s - limits.scale_down_window_s)
    {
        state.wishes.pop_front();
    }

    let idle_now = obs.arrival_rate == 0.0 && obs.now.queue_length == 0 && obs.now.workers_busy == 0;
    state.idle_since_s = if idle_now {
        Some(state.idle_since_s.unwrap_or(now_s))
    } else {
        None
    };
    // Nothing to serve: no arrival over the last 30 s and nothing waiting.
    let no_demand = obs.rate_30s == 0.0 && obs.now.queue_length == 0;
    let idle_long = match (limits.idle_after_s, state.idle_since_s) {
        (Some(after), Some(since)) => now_s - since >= after,
        _ => false,
    };

    if idle_long {
        target = lo;
        adjustment = Adjustment::Idle;
    } else if target > current && no_demand {
        target = current.clamp(lo, hi);
        adjustment = Adjustment::NoDemand;
    } else if target < current {
        let floor = state.wishes.iter().map(|&(_, w)| w).max().unwrap_or(wish);
        if floor > target {
            target = floor.min(current);
            adjustment = Adjustment::Stabilized;
        }
        let cooling = state
            .last_change_s
            .is_some_and(|t| now_s - t < limits.scale_down_cooldown_s);
        if target < current && cooling {
            target = current;
            adjustment = Adjustment::CoolingDown;
        }
    } else if let Some(step) = limits.max_step_up {
        if target > current.saturating_add(step) {
            target = current.saturating_add(step);
            adjustment = Adjustment::StepLimited;
        }
    }
    if target != current {
        state.last_change_s = Some(now_s);
    }
    Plan {
        wanted,
        target,
        adjustment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::FarmMetrics;

    fn limits() -> Limits {
        Limits::bounds(2, 10)
    }

    /// A busy farm at `t`: tasks arrive and some wait.
    fn busy(t: f64) -> Observation {
        Observation {
            now: FarmMetrics {
                time_s: t,
                queue_length: 3,
                workers_busy: 4,
                queued_work_s: 4.5,
                ..FarmMetrics::default()
            },
            arrival_rate: 5.0,
            rate_30s: 5.0,
            ..Observation::default()
        }
    }

    /// A farm with nothing to do at `t`.
    fn idle(t: f64) -> Observation {
        Observation {
            now: FarmMetrics {
                time_s: t,
                ..FarmMetrics::default()
            },
            ..Observation::default()
        }
    }

    #[test]
    fn a_wish_within_bounds_is_taken_as_is() {
        let mut s = DecisionState::default();
        let p = plan(7, &busy(0.0), 4, &limits(), &mut s);
        assert_eq!((p.target, p.adjustment), (7, Adjustment::None));
        assert_eq!(s.last_change_s, Some(0.0));
        // No change, no change recorded.
        let p = plan(7, &busy(5.0), 7, &limits(), &mut s);
        assert_eq!((p.target, p.adjustment), (7, Adjustment::None));
        assert_eq!(s.last_change_s, Some(0.0));
    }

    #[test]
    fn wishes_beyond_the_bounds_are_clamped() {
        let mut s = DecisionState::default();
        let p = plan(40, &busy(0.0), 4, &limits(), &mut s);
        assert_eq!((p.wanted, p.target, p.adjustment), (40, 10, Adjustment::Clamped));
        let p = plan(0, &busy(1.0), 10, &limits(), &mut s);
        assert_eq!((p.target, p.adjustment), (2, Adjustment::Clamped));
        // Bounds given upside down never panic: the minimum wins.
        let p = plan(5, &busy(2.0), 3, &Limits::bounds(6, 4), &mut s);
        assert_eq!(p.target, 6);
    }

    #[test]
    fn scale_downs_wait_out_the_cooldown_scale_ups_do_not() {
        let l = Limits {
            scale_down_cooldown_s: 10.0,
            ..limits()
        };
        let mut s = DecisionState::default();
        assert_eq!(plan(8, &busy(0.0), 4, &l, &mut s).target, 8);
        // 4 s after the rise: held.
        let p = plan(5, &busy(4.0), 8, &l, &mut s);
        assert_eq!((p.target, p.adjustment), (8, Adjustment::CoolingDown));
        // A rise is never held, and restarts the cooldown.
        assert_eq!(plan(9, &busy(6.0), 8, &l, &mut s).target, 9);
        assert_eq!(
            plan(5, &busy(15.0), 9, &l, &mut s).adjustment,
            Adjustment::CoolingDown
        );
        // 10 s after the last change: allowed.
        let p = plan(5, &busy(16.0), 9, &l, &mut s);
        assert_eq!((p.target, p.adjustment), (5, Adjustment::None));
    }

    #[test]
    fn scale_ups_can_be_limited_per_decision() {
        let l = Limits {
            max_step_up: Some(3),
            ..limits()
        };
        let mut s = DecisionState::default();
        let p = plan(10, &busy(0.0), 4, &l, &mut s);
        assert_eq!((p.target, p.adjustment), (7, Adjustment::StepLimited));
        assert_eq!(plan(10, &busy(1.0), 7, &l, &mut s).target, 10);
    }

    #[test]
    fn a_scale_down_goes_no_lower_than_the_recent_wishes() {
        let l = Limits {
            scale_down_window_s: 5.0,
            ..limits()
        };
        let mut s = DecisionState::default();
        plan(8, &busy(0.0), 8, &l, &mut s);
        plan(6, &busy(1.0), 8, &l, &mut s);
        // 8 was wished 2 s ago: hold 8; 5 s after it, 6 (the window's largest) is allowed.
        let p = plan(4, &busy(2.0), 8, &l, &mut s);
        assert_eq!((p.target, p.adjustment), (8, Adjustment::Stabilized));
        let p = plan(4, &busy(5.5), 8, &l, &mut s);
        assert_eq!((p.target, p.adjustment), (6, Adjustment::Stabilized));
        let p = plan(4, &busy(6.5), 6, &l, &mut s);
        assert_eq!((p.target, p.adjustment), (4, Adjustment::None));
    }

    /// The acceptance case for fast decisions: a wish that flickers at every decision (noise
    /// around a level) changes the count a few times, not at every decision.
    #[test]
    fn noisy_wishes_at_ten_decisions_a_second_do_not_thrash() {
        let l = Limits::node(1, 32);
        let mut s = DecisionState::default();
        let mut current = 12;
        let (mut actions, mut unlimited_actions, mut unlimited) = (0, 0, 12);
        let mut free = DecisionState::default();
        // 60 s at 10 decisions per second; the wish cycles 11, 13, 12, 14, 12, 13, …
        let noise = [11, 13, 12, 14, 12, 13, 11, 12, 14, 13];
        for i in 0..600 {
            let t = i as f64 * 0.1;
            let wish = noise[i % noise.len()];
            let p = plan(wish, &busy(t), current, &l, &mut s);
            if p.target != current {
                actions += 1;
                current = p.target;
            }
            let p = plan(wish, &busy(t), unlimited, &Limits::bounds(1, 32), &mut free);
            if p.target != unlimited {
                unlimited_actions += 1;
                unlimited = p.target;
            }
        }
        assert!(unlimited_actions > 400, "{unlimited_actions} without limits");
        // 12 → 11 at the first decision (no history yet), → 13, → 14, then held.
        assert!(actions <= 3, "{actions} scaling actions in 60 s of noise");
        assert_eq!(current, 14, "held at the top of the noise");
    }

    #[test]
    fn an_idle_farm_never_scales_up_and_goes_to_the_minimum() {
        let l = Limits::node(2, 32);
        let mut s = DecisionState::default();
        let mut current = 4;
        let mut targets = Vec::new();
        // A policy that always wants 14, on a farm with nothing to do, one decision a second.
        for t in 0..60 {
            let p = plan(14, &idle(t as f64), current, &l, &mut s);
            assert!(p.target <= current, "scaled up at {t} s: {p:?}");
            if t < 30 {
                assert_eq!(p.adjustment, Adjustment::NoDemand, "at {t} s");
            }
            current = p.target;
            targets.push(current);
        }
        assert_eq!(targets[29], 4, "held until idle for 30 s");
        assert_eq!(targets[30], 2, "then the minimum");
        assert!(targets[30..].iter().all(|&t| t == 2), "and it stays there");
        // Work arrives: the policy is followed again at once.
        let p = plan(14, &busy(61.0), current, &l, &mut s);
        assert_eq!((p.target, p.adjustment), (14, Adjustment::None));
        assert_eq!(s.idle_since_s, None);
    }

    #[test]
    fn a_queue_or_a_recent_arrival_is_demand() {
        let l = Limits::node(1, 32);
        let mut s = DecisionState::default();
        // No arrival for a while, but tasks wait (e.g. re-queued): scale-ups are allowed.
        let mut waiting = idle(0.0);
        waiting.now.queue_length = 5;
        waiting.now.queued_work_s = 7.0;
        assert_eq!(plan(6, &waiting, 1, &l, &mut s).target, 6);
        // An arrival 20 s ago (the 30 s rate is not 0): allowed too.
        let mut recent = idle(1.0);
        recent.rate_30s = 0.05;
        assert_eq!(plan(8, &recent, 6, &l, &mut s).target, 8);
        // Work the counters still show for an empty queue is no demand.
        let mut phantom = idle(2.0);
        phantom.now.queued_work_s = 3.0;
        assert_eq!(plan(12, &phantom, 8, &l, &mut s).adjustment, Adjustment::NoDemand);
    }
}
