//! References that size the farm from knowledge no deployed autoscaler has: `oracle` (the
//! future tasks) and `rate-oracle` (the load calendar's planned rates, by Erlang C), which the
//! node runs as `calendar` because `run` knows the schedule it drives.

use super::Policy;
use crate::observe::Observation;
use workload::{TaskSpec, WorkloadConfig};

/// A clairvoyant reference: it knows every future task and provisions, one start-up delay
/// ahead, exactly the work that will arrive in the next period plus the queue, with 10 %
/// headroom. Not deployable; it shows how far a policy is from what knowing the future buys.
pub struct Oracle {
    tasks: Vec<TaskSpec>,
    period_s: f64,
    lead_s: f64,
}

impl Oracle {
    pub fn new(tasks: Vec<TaskSpec>, period_s: f64, startup_delay_s: f64) -> Oracle {
        Oracle {
            tasks,
            period_s,
            lead_s: startup_delay_s,
        }
    }
}

impl Policy for Oracle {
    fn name(&self) -> String {
        "oracle".into()
    }
    fn decide(&mut self, obs: &Observation) -> u32 {
        let now = obs.now.time_s;
        let (from, to) = (now + self.lead_s, now + self.lead_s + self.period_s);
        let future: f64 = self
            .tasks
            .iter()
            .filter(|t| t.arrival_s >= from && t.arrival_s < to)
            .map(|t| t.processing_s)
            .sum();
        let mean_task = if self.tasks.is_empty() {
            1.5
        } else {
            self.tasks.iter().map(|t| t.processing_s).sum::<f64>() / self.tasks.len() as f64
        };
        let queued = obs.now.queue_length as f64 * mean_task;
        ((future + queued) / self.period_s * 1.1).ceil().max(1.0) as u32
    }
}

/// Erlang-C sizing from the load calendar: a reference that knows the *planned* arrival rate
/// (the observation's [`Outlook`](crate::observe::Outlook), from a
/// [`Calendar`](crate::observe::Calendar) — phase order, phase totals and shapes) but not the
/// tasks. At each decision it sizes the farm so that, at the highest planned rate until its next
/// decision takes effect, a task waits longer than `wait_s` (default [`RateOracle::WAIT_S`])
/// with probability at most `risk` (default [`RateOracle::WAIT_RISK`]), and adds what drains the
/// current queue within one period. `eval` names it `rate-oracle[:RISK[:WAIT_S]]`, the node
/// `calendar`. It shows what knowing the schedule (not the future tasks) is worth. Without a
/// calendar it sizes on the last period's observed rate — a causal rule, and a poor one
/// (one period's rate is too noisy to size on).
pub struct RateOracle {
    service_s: f64,
    period_s: f64,
    risk: f64,
    wait_s: f64,
    /// What it calls itself (`rate-oracle` in `eval`, `calendar` in the node).
    label: &'static str,
}

impl RateOracle {
    /// The waiting time a task may exceed only rarely (deadlines are 2× the processing time,
    /// so a task of mean size has 1.5 s of slack).
    pub const WAIT_S: f64 = 0.8;
    /// How rarely.
    pub const WAIT_RISK: f64 = 0.05;

    /// For the tasks of `workload` (its mean processing time, in its own time scale).
    pub fn for_workload(workload: &WorkloadConfig, period_s: f64) -> RateOracle {
        RateOracle::new(workload.mean_processing_s * workload.time_scale, period_s)
    }

    /// `service_s` is the mean processing time of a task.
    pub fn new(service_s: f64, period_s: f64) -> RateOracle {
        RateOracle {
            service_s: service_s.max(1e-3),
            period_s,
            risk: Self::WAIT_RISK,
            wait_s: Self::WAIT_S,
            label: "rate-oracle",
        }
    }

    /// The same under another name.
    pub fn named(mut self, label: &'static str) -> RateOracle {
        self.label = label;
        self
    }

    /// The same with another risk of waiting longer than `wait_s`.
    pub fn with_target(mut self, risk: f64, wait_s: f64) -> RateOracle {
        self.risk = risk;
        self.wait_s = wait_s;
        self
    }
}

/// P(wait > `t`) in an M/M/c queue with `c` servers, offered load `a` erlangs and service
/// rate `mu` per server (1 when `c` ≤ `a`: the queue grows without bound).
pub fn erlang_c_wait_exceeds(c: u32, a: f64, mu: f64, t: f64) -> f64 {
    let cf = f64::from(c);
    if cf <= a {
        return 1.0;
    }
    // Erlang B by its stable recursion, then Erlang C from it.
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let wait_prob = cf * b / (cf - a * (1.0 - b));
    wait_prob * (-(cf - a) * mu * t).exp()
}

impl Policy for RateOracle {
    fn name(&self) -> String {
        format!("{}:{}:{}", self.label, self.risk, self.wait_s)
    }
    fn decide(&mut self, obs: &Observation) -> u32 {
        let mu = 1.0 / self.service_s;
        let peak = obs.outlook.map_or(obs.arrival_rate, |o| o.rate_peak);
        let a = peak * self.service_s;
        let mut c = 1u32;
        while c < 1024 && erlang_c_wait_exceeds(c, a, mu, self.wait_s) > self.risk {
            c += 1;
        }
        let backlog = (obs.now.queue_length as f64 * self.service_s / self.period_s).ceil() as u32;
        c + backlog
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_by_hand() {
        // M/M/1 at ρ = 0.5: P(wait > 0) = ρ, P(wait > 1) = ρ·e^{−(μ−λ)} = 0.5·e^{−0.5}.
        assert!((erlang_c_wait_exceeds(1, 0.5, 1.0, 0.0) - 0.5).abs() < 1e-12);
        assert!((erlang_c_wait_exceeds(1, 0.5, 1.0, 1.0) - 0.5 * (-0.5f64).exp()).abs() < 1e-12);
        // Two servers, one erlang: C = (a²/2·2/(2−a)) / (1 + a + a²/2·2/(2−a)) = 1/3.
        assert!((erlang_c_wait_exceeds(2, 1.0, 1.0, 0.0) - 1.0 / 3.0).abs() < 1e-12);
        // Not enough servers: every task waits, forever in the limit.
        assert_eq!(erlang_c_wait_exceeds(3, 3.0, 1.0, 10.0), 1.0);
    }

    #[test]
    fn rate_oracle_provisions_ahead_of_the_planned_jump() {
        let config = workload::WorkloadConfig::default();
        let calendar = crate::observe::Calendar::new(workload::RatePlan::new(&config, 1), 8.0, 5.0);
        let mut p = RateOracle::new(1.5, 8.0);
        let at = |t: f64| {
            Observation {
                now: crate::observe::FarmMetrics {
                    time_s: t,
                    ..Default::default()
                },
                window_s: 8.0,
                ..Default::default()
            }
            .with_calendar(Some(&calendar))
        };
        // Steady Low (1.5 tasks/s × 1.5 s = 2.25 erlangs) far from the jump.
        let low = p.decide(&at(16.0));
        // 56 s: the next decision takes effect after 64 s, in Steady High (11.25 erlangs).
        let before_jump = p.decide(&at(56.0));
        let high = p.decide(&at(90.0));
        assert!((4..=8).contains(&low), "{low}");
        assert_eq!(before_jump, high);
        assert!(high >= 12, "{high}");
        // A queue adds what drains it within one period: 16 tasks × 1.5 s / 8 s = 3.
        let mut queued = at(16.0);
        queued.now.queue_length = 16;
        assert_eq!(p.decide(&queued), low + 3);
        // Without a calendar it sizes on the observed rate: Steady High's rate seen at 16 s
        // asks for what the calendar asked for in Steady High.
        let mut observed = at(16.0);
        observed.outlook = None;
        observed.arrival_rate = 7.5;
        assert_eq!(p.decide(&observed), high);
    }
}
