//! The model-predictive references, which decide by running forks of the simulator:
//! `mpc-oracle` (the known future), `plan-mpc` (futures imagined from the load calendar) and
//! `ce-mpc` (futures imagined at the rate the farm shows now: causal, certainty-equivalent).
//! Both keep a lockstep copy of the simulated farm, so they exist only in `eval`.

use super::Policy;
use crate::observe::Observation;
use crate::sim::{SimConfig, Simulator};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use workload::{RatePlan, TaskSizer};

/// A clairvoyant model-predictive reference: it keeps a copy of the simulator in lockstep with
/// the real one (same tasks, same seed, same decisions) and, at every decision, tries each
/// worker count on a fork of it for `horizon_s` of the known future, choosing the smallest
/// count with no certain deadline miss in that window (or, if none, the fewest misses). It
/// sees the future tasks *and* the start-up jitter, so it is an optimistic reference for what
/// any causal policy could reach, not a policy to deploy.
pub struct MpcOracle {
    shadow: Simulator,
    horizon_s: f64,
}

impl MpcOracle {
    pub fn new(shadow: Simulator, horizon_s: f64) -> MpcOracle {
        MpcOracle { shadow, horizon_s }
    }
}

impl Policy for MpcOracle {
    fn name(&self) -> String {
        "mpc-oracle".into()
    }

    fn decide(&mut self, obs: &Observation) -> u32 {
        self.shadow.advance_to(obs.now.time_s);
        let chosen = mpc_choice(&self.shadow, self.horizon_s);
        self.shadow.scale_to(chosen);
        chosen
    }
}

/// How far the model-predictive references look ahead by default: far enough to see a worker
/// asked for now start and serve a period (shorter, they would never see the point of scaling
/// up), and at least two periods.
pub fn mpc_horizon(sim: &SimConfig) -> f64 {
    (2.0 * sim.decision_period_s)
        .max(sim.startup_delay_s * (1.0 + sim.startup_jitter) + sim.decision_period_s)
}

/// The clairvoyant choice at the simulator's present: the smallest worker count with no certain
/// deadline miss over the next `horizon_s` of the known future (or the fewest misses).
pub fn mpc_choice(sim: &Simulator, horizon_s: f64) -> u32 {
    let (lo, hi) = (sim.config().min_workers, sim.config().max_workers);
    let base = sim.certain_misses();
    let end = sim.now() + horizon_s;
    let mut best = (u64::MAX, hi);
    for w in lo..=hi {
        let mut fork = sim.clone();
        fork.scale_to(w);
        fork.advance_to(end);
        let misses = fork.certain_misses().saturating_sub(base);
        if misses < best.0 {
            best = (misses, w);
        }
        if misses == 0 {
            break;
        }
    }
    best.1
}

/// Where imagined futures come from: the load calendar's planned rates, or a constant rate
/// (the certainty-equivalent guess of a causal controller).
enum Rates {
    Plan(RatePlan),
    Constant(f64),
}

/// Arrival times in `[from, to)`: from the plan, or a Poisson process at the constant rate.
fn sample_arrivals(rates: &Rates, from: f64, to: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    match rates {
        Rates::Plan(plan) => plan.sample_arrivals(from, to, rng),
        Rates::Constant(rate) if *rate > 0.0 => {
            let mut out = Vec::new();
            let mut t = from;
            loop {
                t += -(1.0 - rng.gen::<f64>()).ln() / rate;
                if t >= to {
                    return out;
                }
                out.push(t);
            }
        }
        Rates::Constant(_) => Vec::new(),
    }
}

/// A causal model-predictive reference: like `plan-mpc`, but the futures it imagines arrive
/// at a constant rate — the rate the farm's own metrics show now (the `erlang` rule's
/// `staffing` rule's estimate: the last 30 s, the last 5 s or 1 s when they jumped, held). It sees the present
/// exactly (a lockstep copy of the simulator), so it shows what a policy deciding on the same
/// observations at the same cadence can reach without knowing what comes. `eval` only.
pub struct CeMpc {
    shadow: Simulator,
    sizer: TaskSizer,
    rng: ChaCha8Rng,
    samples: u32,
    horizon_s: f64,
    miss_target: f64,
    /// Rate estimates are the `erlang` rule's.
    rule: super::StaffingState,
}

impl CeMpc {
    pub fn new(
        shadow: Simulator,
        sizer: TaskSizer,
        seed: u64,
        samples: u32,
        horizon_s: f64,
        miss_target: f64,
    ) -> CeMpc {
        CeMpc {
            shadow,
            sizer,
            rng: ChaCha8Rng::seed_from_u64(seed),
            samples: samples.max(1),
            horizon_s,
            miss_target,
            rule: super::StaffingState::new(1.5),
        }
    }
}

impl Policy for CeMpc {
    fn name(&self) -> String {
        format!("ce-mpc:{}:{}", self.miss_target, self.samples)
    }

    fn decide(&mut self, obs: &Observation) -> u32 {
        self.shadow.advance_to(obs.now.time_s);
        self.rule.update(obs, &super::StaffingParams::default());
        let rate = self.rule.planned_rate;
        let mut futures = FutureSampler {
            rates: Rates::Constant(rate),
            sizer: self.sizer.clone(),
            samples: self.samples,
            rng: ChaCha8Rng::seed_from_u64(self.rng.gen()),
        };
        let chosen = plan_mpc_choice(&self.shadow, &mut futures, self.horizon_s, self.miss_target);
        self.shadow.scale_to(chosen);
        chosen
    }
}

/// A model-predictive reference that knows the load calendar and the farm's present, not the
/// tasks to come. At each decision it imagines `samples` futures for the next `horizon_s`
/// (arrivals drawn from the planned rates, sizes from the workload's size distribution,
/// start-up jitter of its own), runs each worker count on a fork of the present with each
/// future, and takes the smallest count whose misses exceed the unavoidable ones by at most
/// `miss_target` of the tasks in play (same futures for every count). Unlike `mpc-oracle` it cannot know the Poisson bursts
/// inside a phase; unlike `rate-oracle` it sees the transient — the queue, the workers still
/// starting, the slow scale-down — exactly. It keeps a lockstep copy of the simulator for the
/// present, so it exists only in the simulator (`eval`).
pub struct PlanMpc {
    shadow: Simulator,
    futures: FutureSampler,
    horizon_s: f64,
    miss_target: f64,
}

/// Draws imagined futures from a load calendar.
pub struct FutureSampler {
    rates: Rates,
    sizer: TaskSizer,
    samples: u32,
    rng: ChaCha8Rng,
}

impl FutureSampler {
    pub fn new(plan: RatePlan, sizer: TaskSizer, samples: u32, seed: u64) -> FutureSampler {
        FutureSampler {
            rates: Rates::Plan(plan),
            sizer,
            samples: samples.max(1),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Forks of `sim`'s present, one per imagined future of `horizon_s`, and the number of
    /// tasks in play across them (queued now plus imagined arrivals).
    fn forks(&mut self, sim: &Simulator, horizon_s: f64) -> (Vec<Simulator>, u64) {
        let now = sim.now();
        let mut in_play = 0;
        let forks = (0..self.samples)
            .map(|_| {
                let times = sample_arrivals(&self.rates, now, now + horizon_s, &mut self.rng);
                in_play += times.len() as u64 + sim.queue_length() as u64;
                let future: Vec<_> = times
                    .into_iter()
                    .map(|t| self.sizer.draw(&mut self.rng, t))
                    .collect();
                let seed = self.rng.gen();
                sim.fork_with_future(future, seed)
            })
            .collect();
        (forks, in_play)
    }
}

impl PlanMpc {
    /// Default share of the tasks in play that may miss.
    pub const MISS_TARGET: f64 = 0.005;
    /// Default number of imagined futures per decision.
    pub const SAMPLES: u32 = 8;

    pub fn new(shadow: Simulator, futures: FutureSampler, horizon_s: f64, miss_target: f64) -> PlanMpc {
        PlanMpc {
            shadow,
            futures,
            horizon_s,
            miss_target,
        }
    }
}

impl Policy for PlanMpc {
    fn name(&self) -> String {
        format!("plan-mpc:{}:{}", self.miss_target, self.futures.samples)
    }

    fn decide(&mut self, obs: &Observation) -> u32 {
        self.shadow.advance_to(obs.now.time_s);
        let chosen = plan_mpc_choice(&self.shadow, &mut self.futures, self.horizon_s, self.miss_target);
        self.shadow.scale_to(chosen);
        chosen
    }
}

/// The calendar-MPC choice at the simulator's present (see [`PlanMpc`]): binary search for the
/// smallest worker count whose misses over the imagined futures exceed the fewest possible (with
/// the most workers) by at most `miss_target` of the tasks in play.
pub fn plan_mpc_choice(
    sim: &Simulator,
    futures: &mut FutureSampler,
    horizon_s: f64,
    miss_target: f64,
) -> u32 {
    let (forks, in_play) = futures.forks(sim, horizon_s);
    let base = sim.certain_misses();
    let end = sim.now() + horizon_s;
    let misses = |w: u32| -> u64 {
        forks
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f.scale_to(w);
                f.advance_to(end);
                f.certain_misses().saturating_sub(base)
            })
            .sum()
    };
    let (mut lo, mut hi) = (sim.config().min_workers, sim.config().max_workers);
    // Misses no count avoids (tasks that will be late before any new worker is ready) do not
    // count against the target.
    let allowed = misses(hi) as f64 + miss_target * in_play as f64;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if misses(mid) as f64 <= allowed {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_mpc_scales_ahead_of_the_planned_jump() {
        let config = workload::WorkloadConfig::default();
        let sim_config = SimConfig {
            decision_period_s: 4.0,
            initial_workers: 4,
            ..Default::default()
        };
        let tasks: Vec<_> = workload::Workload::new(&config, 1).collect();
        let mut sim = Simulator::new(sim_config, tasks, 1);
        let mut futures = FutureSampler::new(RatePlan::new(&config, 1), TaskSizer::new(&config), 8, 3);
        // In Steady Low (1.5 tasks/s ≈ 2.25 erlangs) a few workers do; at 52 s the next 10 s
        // reach into Steady High (7.5 tasks/s ≈ 11 erlangs), so it asks for many more.
        sim.advance_to(20.0);
        let low = plan_mpc_choice(&sim, &mut futures, 10.0, 0.005);
        sim.advance_to(52.0);
        let ahead = plan_mpc_choice(&sim, &mut futures, 10.0, 0.005);
        assert!((2..=8).contains(&low), "{low}");
        assert!(ahead >= low + 5, "{low} -> {ahead}");
    }
}
