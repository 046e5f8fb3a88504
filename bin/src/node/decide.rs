//! Decide: the policy's wish turned into the plan the node applies (the rules of
//! [`agent::scaling_rules`], which the simulator applies too), and the cadence that says when
//! to decide (every period, and sooner when the broker reports a burst, at most so often).

use agent::observe::Observation;
use agent::policy::Policy;
pub use agent::scaling_rules::{plan, Adjustment, DecisionState, Limits, Plan};

/// Asks `policy` and turns its answer into a plan for a farm whose target is `current`.
pub fn decide(
    obs: &Observation,
    policy: &mut dyn Policy,
    current: u32,
    limits: &Limits,
    state: &mut DecisionState,
) -> Plan {
    let wanted = policy.decide(obs);
    plan(wanted, obs, current, limits, state)
}

/// When to decide, in workload seconds: every `period_s`, and — when the broker reports a
/// burst — as soon as `min_gap_s` has passed since the previous decision, so that events can
/// make decisions sooner but never more often than one per `min_gap_s`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cadence {
    pub period_s: f64,
    pub min_gap_s: f64,
    last_s: Option<f64>,
    requested: bool,
}

impl Cadence {
    pub fn new(period_s: f64, min_gap_s: f64) -> Cadence {
        Cadence {
            period_s,
            min_gap_s: min_gap_s.min(period_s),
            last_s: None,
            requested: false,
        }
    }

    /// An event asks for a decision as soon as the gap allows.
    pub fn request(&mut self) {
        self.requested = true;
    }

    /// Whether a decision is due at `now_s`.
    pub fn due(&self, now_s: f64) -> bool {
        self.wait_s(now_s) <= 0.0
    }

    /// Workload seconds until the next decision is due (0: now).
    pub fn wait_s(&self, now_s: f64) -> f64 {
        let Some(last) = self.last_s else { return 0.0 };
        // A hair of slack, so that a timer firing on the dot counts as due.
        let eps = 1e-6;
        let periodic = last + self.period_s - now_s - eps;
        let wait = if self.requested {
            periodic.min(last + self.min_gap_s - now_s - eps)
        } else {
            periodic
        };
        wait.max(0.0)
    }

    /// A decision was made at `now_s`.
    pub fn decided(&mut self, now_s: f64) {
        self.last_s = Some(now_s);
        self.requested = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent::observe::FarmMetrics;

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

    #[test]
    fn decide_asks_the_policy_with_the_observation() {
        let mut policy = agent::policy::Static(30);
        let mut s = DecisionState::default();
        let p = decide(&busy(0.0), &mut policy, 4, &limits(), &mut s);
        assert_eq!((p.wanted, p.target), (30, 10));
    }

    #[test]
    fn events_make_decisions_sooner_but_never_more_often_than_the_gap() {
        let mut c = Cadence::new(1.0, 0.25);
        let mut decisions = 0;
        let mut t = 0.0;
        // 10 s of events every 10 ms (a queue that keeps jumping).
        while t < 10.0 {
            c.request();
            if c.due(t) {
                c.decided(t);
                decisions += 1;
            }
            t += 0.01;
        }
        assert!((39..=41).contains(&decisions), "{decisions} decisions");
        // Without events: one per period.
        let mut c = Cadence::new(1.0, 0.25);
        let mut periodic = 0;
        let mut t = 0.0;
        while t < 10.0 {
            if c.due(t) {
                c.decided(t);
                periodic += 1;
            }
            t += 0.01;
        }
        assert!((10..=11).contains(&periodic), "{periodic} decisions");
    }

    #[test]
    fn the_cadence_says_how_long_to_wait() {
        let mut c = Cadence::new(8.0, 0.25);
        assert_eq!(c.wait_s(0.0), 0.0, "the first decision is due at once");
        c.decided(0.0);
        assert!((c.wait_s(1.0) - 7.0).abs() < 1e-3);
        c.request();
        assert_eq!(c.wait_s(1.0), 0.0, "an event after the gap: now");
        c.decided(1.0);
        c.request();
        assert!((c.wait_s(1.1) - 0.15).abs() < 1e-3, "{}", c.wait_s(1.1));
        // A gap longer than the period is the period.
        assert_eq!(Cadence::new(1.0, 5.0).min_gap_s, 1.0);
    }
}
