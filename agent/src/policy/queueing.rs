//! `erlang`: a causal queueing rule on the farm's own metrics — no calendar, no knowledge of
//! the tasks. It estimates the arrival rate over several windows (rising at once when the last
//! 5 s or the last second jumped beyond Poisson noise, falling slowly), sizes the farm by
//! Erlang C so that a task rarely waits longer than a fraction of its own processing time (a
//! task's deadline is twice its processing time), adds spare workers for what may arrive while
//! new ones start, and drains work already waiting.

use super::{erlang_c_wait_exceeds, Policy};
use crate::observe::Observation;

/// Parameters of [`CausalErlang`], in the order `erlang:` takes them.
#[derive(Clone, Debug, PartialEq)]
pub struct ErlangParams {
    /// Accepted probability that a task waits longer than `wait_factor` × the mean
    /// processing time.
    pub risk: f64,
    pub wait_factor: f64,
    /// Spare workers per √(offered load in erlangs): room for Poisson bursts.
    pub spare_sqrt: f64,
    /// Spare workers per erlang of offered load per 5 s of start-up delay: room for the rate to
    /// rise while new workers start.
    pub spare_linear: f64,
    /// The planned rate falls toward a lower measured one with this time constant, seconds.
    pub decay_s: f64,
    /// A short-window rate this many standard deviations above the planned one is a jump.
    pub jump_z: f64,
    /// Work already waiting (beyond what idle workers take at once) is drained within this
    /// long, seconds.
    pub drain_s: f64,
}

impl ErlangParams {
    /// The parameters as a vector (for training), in the order of [`ErlangParams::NAMES`].
    pub fn to_vec(&self) -> Vec<f64> {
        vec![
            self.risk,
            self.wait_factor,
            self.spare_sqrt,
            self.spare_linear,
            self.decay_s,
            self.jump_z,
            self.drain_s,
        ]
    }

    /// The inverse of [`ErlangParams::to_vec`]; missing values take the defaults.
    pub fn from_slice(v: &[f64]) -> ErlangParams {
        let d = ErlangParams::default().to_vec();
        let g = |i: usize| v.get(i).copied().unwrap_or(d[i]);
        ErlangParams {
            risk: g(0),
            wait_factor: g(1),
            spare_sqrt: g(2),
            spare_linear: g(3),
            decay_s: g(4),
            jump_z: g(5),
            drain_s: g(6),
        }
    }

    pub const NAMES: [&'static str; 7] = [
        "risk",
        "wait_factor",
        "spare_sqrt",
        "spare_linear",
        "decay_s",
        "jump_z",
        "drain_s",
    ];
}

impl Default for ErlangParams {
    fn default() -> Self {
        ErlangParams {
            risk: 0.05,
            wait_factor: 0.3,
            spare_sqrt: 1.0,
            spare_linear: 0.1,
            decay_s: 20.0,
            jump_z: 4.0,
            drain_s: 5.0,
        }
    }
}

/// What the rule has learned about the farm so far.
#[derive(Clone, Debug)]
pub struct ErlangState {
    /// Mean processing time, seconds: a prior, then busy workers ÷ tasks started per second
    /// (Little's law) over about half a minute.
    pub service_s: f64,
    busy: f64,
    started: f64,
    /// The arrival rate the farm is sized for, tasks/s, and when it was last updated.
    pub planned_rate: f64,
    last_s: Option<f64>,
}

impl ErlangState {
    pub fn new(service_s: f64) -> ErlangState {
        ErlangState {
            service_s: service_s.max(0.01),
            busy: 0.0,
            started: 0.0,
            planned_rate: 0.0,
            last_s: None,
        }
    }

    /// Folds in an observation: the service-time estimate and the planned rate.
    pub fn update(&mut self, obs: &Observation, p: &ErlangParams) {
        let n = &obs.now;
        let w = (obs.window_s / 30.0).clamp(0.0, 1.0);
        self.busy = (1.0 - w) * self.busy + w * f64::from(n.workers_busy);
        self.started = (1.0 - w) * self.started + w * obs.service_rate;
        if self.started > 0.5 {
            self.service_s = (self.busy / self.started).clamp(0.05, 600.0);
        }
        let dt = self.last_s.map_or(obs.window_s, |t| (n.time_s - t).max(0.0));
        self.last_s = Some(n.time_s);
        let above =
            |fast: f64, slow: f64, window_s: f64| fast > slow + p.jump_z * (slow.max(0.5) / window_s).sqrt();
        let mut measured = obs.rate_30s;
        if above(obs.rate_5s, measured, 5.0) {
            measured = obs.rate_5s;
        }
        if above(obs.rate_1s, measured, 1.0) {
            measured = obs.rate_1s;
        }
        self.planned_rate = if measured >= self.planned_rate {
            measured
        } else {
            // Falls toward the measured rate, never below it.
            let k = (-dt / p.decay_s.max(1e-3)).exp();
            measured + (self.planned_rate - measured) * k
        };
    }
}

/// The rule.
pub struct CausalErlang {
    params: ErlangParams,
    state: ErlangState,
}

impl CausalErlang {
    /// The mean processing time assumed until the farm shows its own: the original workload's.
    pub const DEFAULT_SERVICE_S: f64 = 1.5;

    pub fn new(params: ErlangParams, service_s: f64) -> CausalErlang {
        CausalErlang {
            params,
            state: ErlangState::new(service_s),
        }
    }

    pub fn state(&self) -> &ErlangState {
        &self.state
    }

    /// The rule's target for the current state (after [`ErlangState::update`]).
    pub fn target(state: &ErlangState, p: &ErlangParams, obs: &Observation) -> f64 {
        let n = &obs.now;
        let s = state.service_s;
        let a = state.planned_rate * s;
        let mut target = if a <= 0.0 {
            0.0
        } else {
            let mu = 1.0 / s;
            let wait = p.wait_factor * s;
            let mut c = (a.ceil() as u32).max(1);
            while c < 4096 && erlang_c_wait_exceeds(c, a, mu, wait) > p.risk {
                c += 1;
            }
            f64::from(c) + p.spare_sqrt * a.sqrt() + p.spare_linear * a * (obs.startup_s / 5.0)
        };
        let idle = f64::from(n.workers_live.saturating_sub(n.workers_busy));
        let waiting = (n.queued_work_s - idle * s).max(0.0);
        target += waiting / p.drain_s.max(1e-3);
        target
    }
}

impl Policy for CausalErlang {
    fn name(&self) -> String {
        let v: Vec<String> = self.params.to_vec().iter().map(f64::to_string).collect();
        format!("erlang:{}", v.join(":"))
    }

    fn decide(&mut self, obs: &Observation) -> u32 {
        self.state.update(obs, &self.params);
        CausalErlang::target(&self.state, &self.params, obs).ceil() as u32
    }
}
