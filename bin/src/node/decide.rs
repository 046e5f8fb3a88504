//! Decide: a pure function from what the node observed to the plan it will apply — the
//! policy's wish, clamped to the node's bounds and rate-limited so that fast decisions cannot
//! thrash the farm.

use agent::observe::Observation;
use agent::policy::Policy;

/// What bounds a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub min_workers: u32,
    pub max_workers: u32,
    /// A scale-down follows the previous change of the target by at least this long (workload
    /// seconds); 0 lets every decision lower the target.
    pub scale_down_cooldown_s: f64,
    /// A target may rise by at most this many workers per decision (`None`: no limit).
    pub max_step_up: Option<u32>,
}

impl Limits {
    /// Only the bounds: no rate limiting.
    pub fn bounds(min_workers: u32, max_workers: u32) -> Limits {
        Limits {
            min_workers,
            max_workers,
            scale_down_cooldown_s: 0.0,
            max_step_up: None,
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
    /// A scale-up cut to `max_step_up`.
    StepLimited,
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
}

/// Asks `policy` and turns its answer into a plan for a farm whose target is `current`.
pub fn decide(
    obs: &Observation,
    policy: &mut dyn Policy,
    current: u32,
    limits: &Limits,
    state: &mut DecisionState,
) -> Plan {
    let wanted = policy.decide(obs);
    plan(wanted, obs.now.time_s, current, limits, state)
}

/// The rules of [`decide`] without the policy: pure, for tests.
pub fn plan(wanted: u32, now_s: f64, current: u32, limits: &Limits, state: &mut DecisionState) -> Plan {
    let mut target = wanted.clamp(limits.min_workers, limits.max_workers.max(limits.min_workers));
    let mut adjustment = if target == wanted {
        Adjustment::None
    } else {
        Adjustment::Clamped
    };
    if target < current {
        let cooling = state
            .last_change_s
            .is_some_and(|t| now_s - t < limits.scale_down_cooldown_s);
        if cooling {
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

    fn limits() -> Limits {
        Limits::bounds(2, 10)
    }

    #[test]
    fn a_wish_within_bounds_is_taken_as_is() {
        let mut s = DecisionState::default();
        let p = plan(7, 0.0, 4, &limits(), &mut s);
        assert_eq!((p.target, p.adjustment), (7, Adjustment::None));
        assert_eq!(s.last_change_s, Some(0.0));
        // No change, no change recorded.
        let p = plan(7, 5.0, 7, &limits(), &mut s);
        assert_eq!((p.target, p.adjustment), (7, Adjustment::None));
        assert_eq!(s.last_change_s, Some(0.0));
    }

    #[test]
    fn wishes_beyond_the_bounds_are_clamped() {
        let mut s = DecisionState::default();
        let p = plan(40, 0.0, 4, &limits(), &mut s);
        assert_eq!((p.wanted, p.target, p.adjustment), (40, 10, Adjustment::Clamped));
        let p = plan(0, 1.0, 10, &limits(), &mut s);
        assert_eq!((p.target, p.adjustment), (2, Adjustment::Clamped));
        // Bounds given upside down never panic: the minimum wins.
        let p = plan(5, 2.0, 3, &Limits::bounds(6, 4), &mut s);
        assert_eq!(p.target, 6);
    }

    #[test]
    fn scale_downs_wait_out_the_cooldown_scale_ups_do_not() {
        let l = Limits {
            scale_down_cooldown_s: 10.0,
            ..limits()
        };
        let mut s = DecisionState::default();
        assert_eq!(plan(8, 0.0, 4, &l, &mut s).target, 8);
        // 4 s after the rise: held.
        let p = plan(5, 4.0, 8, &l, &mut s);
        assert_eq!((p.target, p.adjustment), (8, Adjustment::CoolingDown));
        // A rise is never held, and restarts the cooldown.
        assert_eq!(plan(9, 6.0, 8, &l, &mut s).target, 9);
        assert_eq!(plan(5, 15.0, 9, &l, &mut s).adjustment, Adjustment::CoolingDown);
        // 10 s after the last change: allowed.
        let p = plan(5, 16.0, 9, &l, &mut s);
        assert_eq!((p.target, p.adjustment), (5, Adjustment::None));
    }

    #[test]
    fn scale_ups_can_be_limited_per_decision() {
        let l = Limits {
            max_step_up: Some(3),
            ..limits()
        };
        let mut s = DecisionState::default();
        let p = plan(10, 0.0, 4, &l, &mut s);
        assert_eq!((p.target, p.adjustment), (7, Adjustment::StepLimited));
        assert_eq!(plan(10, 1.0, 7, &l, &mut s).target, 10);
    }

    #[test]
    fn decide_asks_the_policy_with_the_observation() {
        let mut policy = agent::policy::Static(30);
        let mut s = DecisionState::default();
        let p = decide(&Observation::default(), &mut policy, 4, &limits(), &mut s);
        assert_eq!((p.wanted, p.target), (30, 10));
    }
}
