//! Scaling policies behind one trait, chosen by name: `static:N`, `reactive-average`,
//! `reactive-maximum`, `queue-proportional[:TARGET]`, and the clairvoyant `oracle`.

use crate::observe::Observation;
use workload::TaskSpec;

/// Decides how many workers the farm should run, once per decision period.
pub trait Policy {
    fn name(&self) -> String;
    /// The desired number of workers (the caller clamps it to its bounds).
    fn decide(&mut self, obs: &Observation) -> u32;
    /// The decision period this policy must run at, if it has one (a trained model does).
    fn decision_period_s(&self) -> Option<f64> {
        None
    }
}

/// Errors choosing a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("unknown policy {0:?} (expected a *.safetensors file, static:N, reactive-average, reactive-maximum, queue-proportional[:TARGET], load-proportional[:HEADROOM], or in `eval` the references oracle, rate-oracle[:RISK[:WAIT_S]], plan-mpc[:MISS[:SAMPLES]] and mpc-oracle[:HORIZON_S])")]
    Unknown(String),
    #[error("bad parameter in {0:?}: {1}")]
    BadParameter(String, String),
    #[error(transparent)]
    Model(#[from] crate::neural::ModelError),
}

/// Workers the farm currently has or has asked for.
fn current_workers(obs: &Observation) -> u32 {
    obs.now.workers_live + obs.now.workers_starting
}

/// Always the same number of workers.
pub struct Static(pub u32);

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
    pub fn for_workload(workload: &workload::WorkloadConfig, period_s: f64) -> RateOracle {
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

    /// The `RISK` and `WAIT_S` of a name like `rate-oracle:0.03:1.5` (defaults where left out).
    pub fn target_from_name(name: &str) -> Result<(f64, f64), PolicyError> {
        let mut params = name.split(':').skip(1).map(|p| {
            p.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    PolicyError::BadParameter(name.into(), format!("{p:?} is not a positive number"))
                })
        });
        let risk = params.next().transpose()?.unwrap_or(Self::WAIT_RISK);
        let wait_s = params.next().transpose()?.unwrap_or(Self::WAIT_S);
        if params.next().is_some() {
            return Err(PolicyError::BadParameter(
                name.into(),
                "expected NAME[:RISK[:WAIT_S]]".into(),
            ));
        }
        Ok((risk, wait_s))
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

/// A clairvoyant model-predictive reference: it keeps a copy of the simulator in lockstep with
/// the real one (same tasks, same seed, same decisions) and, at every decision, tries each
/// worker count on a fork of it for `horizon_s` of the known future, choosing the smallest
/// count with no certain deadline miss in that window (or, if none, the fewest misses). It
/// sees the future tasks *and* the start-up jitter, so it is an optimistic reference for what
/// any causal policy could reach, not a policy to deploy.
pub struct MpcOracle {
    shadow: crate::sim::Simulator,
    horizon_s: f64,
}

impl MpcOracle {
    pub fn new(shadow: crate::sim::Simulator, horizon_s: f64) -> MpcOracle {
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

/// The `HORIZON_S` of `mpc-oracle[:HORIZON_S]` (`None`: not given, use a default).
pub fn mpc_horizon_from_name(name: &str) -> Result<Option<f64>, PolicyError> {
    match name.strip_prefix("mpc-oracle") {
        Some("") => Ok(None),
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|h| h.parse::<f64>().ok())
            .filter(|h| h.is_finite() && *h > 0.0)
            .map(Some)
            .ok_or_else(|| PolicyError::BadParameter(name.into(), "expected mpc-oracle[:HORIZON_S]".into())),
        None => Err(PolicyError::Unknown(name.into())),
    }
}

/// The clairvoyant choice at the simulator's present: the smallest worker count with no certain
/// deadline miss over the next `horizon_s` of the known future (or the fewest misses).
pub fn mpc_choice(sim: &crate::sim::Simulator, horizon_s: f64) -> u32 {
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
    shadow: crate::sim::Simulator,
    futures: FutureSampler,
    horizon_s: f64,
    miss_target: f64,
}

/// Draws imagined futures from a load calendar.
pub struct FutureSampler {
    plan: workload::RatePlan,
    sizer: workload::TaskSizer,
    samples: u32,
    rng: rand_chacha::ChaCha8Rng,
}

impl FutureSampler {
    pub fn new(
        plan: workload::RatePlan,
        sizer: workload::TaskSizer,
        samples: u32,
        seed: u64,
    ) -> FutureSampler {
        FutureSampler {
            plan,
            sizer,
            samples: samples.max(1),
            rng: <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed),
        }
    }

    /// Forks of `sim`'s present, one per imagined future of `horizon_s`, and the number of
    /// tasks in play across them (queued now plus imagined arrivals).
    fn forks(&mut self, sim: &crate::sim::Simulator, horizon_s: f64) -> (Vec<crate::sim::Simulator>, u64) {
        use rand::Rng;
        let now = sim.now();
        let mut in_play = 0;
        let forks = (0..self.samples)
            .map(|_| {
                let times = self.plan.sample_arrivals(now, now + horizon_s, &mut self.rng);
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

    /// The `MISS` and `SAMPLES` of a name like `plan-mpc:0.005:8` (defaults where left out).
    pub fn params_from_name(name: &str) -> Result<(f64, u32), PolicyError> {
        let bad = |why: &str| PolicyError::BadParameter(name.into(), why.into());
        let mut params = name.split(':').skip(1);
        let miss = match params.next() {
            None => Self::MISS_TARGET,
            Some(p) => p
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && (0.0..1.0).contains(v))
                .ok_or_else(|| bad("MISS must be a fraction in [0, 1)"))?,
        };
        let samples = match params.next() {
            None => Self::SAMPLES,
            Some(p) => p
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| bad("SAMPLES must be a whole number from 1 to 256"))?,
        };
        if params.next().is_some() {
            return Err(bad("expected plan-mpc[:MISS[:SAMPLES]]"));
        }
        Ok((miss, samples))
    }

    pub fn new(
        shadow: crate::sim::Simulator,
        futures: FutureSampler,
        horizon_s: f64,
        miss_target: f64,
    ) -> PlanMpc {
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
    sim: &crate::sim::Simulator,
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

/// A policy by name. `tasks` and the timing are only used by the oracle.
pub fn by_name(
    name: &str,
    tasks: &[TaskSpec],
    period_s: f64,
    startup_delay_s: f64,
) -> Result<Box<dyn Policy>, PolicyError> {
    if name.ends_with(".safetensors") {
        return Ok(Box::new(crate::neural::NeuralPolicy::load(
            std::path::Path::new(name),
        )?));
    }
    let (kind, arg) = match name.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (name, None),
    };
    let number = |a: Option<&str>, default: f64| -> Result<f64, PolicyError> {
        match a {
            None => Ok(default),
            Some(s) => match s.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
                _ => Err(PolicyError::BadParameter(
                    name.into(),
                    format!("{s:?} is not a positive number"),
                )),
            },
        }
    };
    Ok(match kind {
        "static" => {
            let n = number(arg, 12.0)?;
            Box::new(Static(n.round() as u32))
        }
        "reactive-average" => Box::new(Reactive::average()),
        "reactive-maximum" => Box::new(Reactive::maximum()),
        "queue-proportional" => Box::new(QueueProportional::new(number(arg, 5.0)?)),
        "load-proportional" => Box::new(LoadProportional::new(number(arg, 0.3)?)),
        "oracle" => Box::new(Oracle::new(tasks.to_vec(), period_s, startup_delay_s)),
        n if n.starts_with("mpc-oracle") || n.starts_with("rate-oracle") || n.starts_with("plan-mpc") => {
            return Err(PolicyError::BadParameter(
                n.into(),
                "this reference needs the workload's future; it exists only in `eval`".into(),
            ))
        }
        _ => return Err(PolicyError::Unknown(name.into())),
    })
}

/// The baselines `eval --baselines all` compares.
pub const BASELINES: &[&str] = &[
    "static:8",
    "static:12",
    "static:16",
    "reactive-average",
    "reactive-maximum",
    "queue-proportional",
    "load-proportional",
    "oracle",
    "rate-oracle",
    "mpc-oracle",
];

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

    #[test]
    fn plan_mpc_names_and_scaling_ahead_of_the_planned_jump() {
        assert_eq!(PlanMpc::params_from_name("plan-mpc").unwrap(), (0.005, 8));
        assert_eq!(PlanMpc::params_from_name("plan-mpc:0.01:16").unwrap(), (0.01, 16));
        for bad in [
            "plan-mpc:1.5",
            "plan-mpc:0.01:0",
            "plan-mpc:x",
            "plan-mpc:0.1:4:2",
        ] {
            assert!(PlanMpc::params_from_name(bad).is_err(), "{bad}");
        }
        let config = workload::WorkloadConfig::default();
        let sim_config = crate::sim::SimConfig {
            decision_period_s: 4.0,
            initial_workers: 4,
            ..Default::default()
        };
        let tasks: Vec<_> = workload::Workload::new(&config, 1).collect();
        let mut sim = crate::sim::Simulator::new(sim_config, tasks, 1);
        let mut futures = FutureSampler::new(
            workload::RatePlan::new(&config, 1),
            workload::TaskSizer::new(&config),
            8,
            3,
        );
        // In Steady Low (1.5 tasks/s ≈ 2.25 erlangs) a few workers do; at 52 s the next 10 s
        // reach into Steady High (7.5 tasks/s ≈ 11 erlangs), so it asks for many more.
        sim.advance_to(20.0);
        let low = plan_mpc_choice(&sim, &mut futures, 10.0, 0.005);
        sim.advance_to(52.0);
        let ahead = plan_mpc_choice(&sim, &mut futures, 10.0, 0.005);
        assert!((2..=8).contains(&low), "{low}");
        assert!(ahead >= low + 5, "{low} -> {ahead}");
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

    #[test]
    fn names_parse_and_errors_are_clear() {
        assert_eq!(by_name("static:7", &[], 8.0, 5.0).unwrap().name(), "static:7");
        assert_eq!(
            by_name("queue-proportional:2", &[], 8.0, 5.0).unwrap().name(),
            "queue-proportional:2"
        );
        assert!(matches!(
            by_name("magic", &[], 8.0, 5.0),
            Err(PolicyError::Unknown(_))
        ));
        assert!(matches!(
            by_name("static:-1", &[], 8.0, 5.0),
            Err(PolicyError::BadParameter(..))
        ));
    }
}
