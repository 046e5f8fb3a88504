//! Training the neural policy in the simulator with evolution strategies (OpenAI-ES:
//! antithetic Gaussian perturbations of the network's weights, rank-normalised episode returns,
//! a gradient step on the mean), on randomised workloads.
//!
//! # Reward
//! An episode's return is `−MISS_WEIGHT · (percentage of tasks that missed their deadline or
//! never finished) − mean workers`. It rewards exactly what users want — deadlines met, few
//! worker-seconds — and nothing else: no per-action bonus that thrashing could farm. With
//! `MISS_WEIGHT` = 5, one percentage point of QoS is worth five workers on average.

use crate::eval::run_episode;
use crate::neural::NeuralPolicy;
use crate::observe::Calendar;
use crate::sim::{EpisodeResult, SimConfig, Simulator};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use workload::{Pattern, RatePlan, Workload, WorkloadConfig};

/// Default weight of one percentage point of missed tasks against one mean worker.
pub const MISS_WEIGHT: f64 = 5.0;

/// The return of one episode (see the module docs) with the default weight.
pub fn reward(result: &EpisodeResult) -> f64 {
    reward_weighted(result, MISS_WEIGHT)
}

/// The return with an explicit weight of one percentage point of misses.
pub fn reward_weighted(result: &EpisodeResult, miss_weight: f64) -> f64 {
    -miss_weight * (1.0 - result.qos) * 100.0 - result.mean_workers
}

/// Settings of a training run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainConfig {
    pub seed: u64,
    /// ES iterations.
    pub generations: u32,
    /// Antithetic pairs per iteration.
    pub pairs: u32,
    /// Randomised scenarios every candidate is scored on per iteration.
    pub scenarios: u32,
    /// Perturbation scale.
    pub sigma: f32,
    pub learning_rate: f32,
    pub decision_period_s: f64,
    /// Weight of one percentage point of missed tasks against one mean worker.
    pub miss_weight: f64,
    /// Share of scenarios in which the policy is told the load calendar.
    pub calendar_share: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 1,
            generations: 300,
            pairs: 16,
            scenarios: 6,
            sigma: 0.05,
            learning_rate: 0.03,
            decision_period_s: 8.0,
            miss_weight: MISS_WEIGHT,
            calendar_share: CALENDAR_SHARE,
        }
    }
}

/// One point of the training curve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    pub generation: u32,
    /// Mean return of the current weights on this iteration's scenarios.
    pub mean_return: f64,
    pub mean_qos: f64,
    pub mean_workers: f64,
    /// The same on the original workload (5 s start-up), the deployment target.
    pub original_qos: f64,
    pub original_workers: f64,
}

/// One simulated run: the workload, the farm's settings, the seed of its tasks and start-ups,
/// and whether the policy is told the load calendar.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub workload: WorkloadConfig,
    pub sim: SimConfig,
    pub seed: u64,
    pub calendar: bool,
}

impl Scenario {
    /// A fresh simulator of this run.
    pub fn simulator(&self) -> Simulator {
        let tasks: Vec<_> = Workload::new(&self.workload, self.seed).collect();
        Simulator::new(self.sim.clone(), tasks, self.seed)
    }

    /// The load calendar the policy is given, if any.
    pub fn calendar(&self) -> Option<Calendar> {
        self.calendar.then(|| self.full_calendar())
    }

    /// The run's load calendar, whether or not the policy is told it.
    pub fn full_calendar(&self) -> Calendar {
        Calendar::new(
            RatePlan::new(&self.workload, self.seed),
            self.sim.decision_period_s,
            self.sim.startup_delay_s,
        )
    }
}

/// Default share of training scenarios whose policy is told the load calendar; the rest teach
/// the network to fall back on the observed rate (as under `serve`, which has no calendar).
pub const CALENDAR_SHARE: f64 = 0.75;

/// The deployment target every trainer reports on: the original workload, 5 s start-up, told
/// its calendar (as `run` does) if `calendar`.
pub fn original_scenario(period_s: f64, seed: u64, calendar: bool) -> Scenario {
    Scenario {
        workload: WorkloadConfig::default(),
        sim: SimConfig {
            decision_period_s: period_s,
            ..SimConfig::default()
        },
        seed,
        calendar,
    }
}

/// A randomised training scenario: workload shape, base rate, start-up delay, initial farm,
/// and the calendar told to the policy with probability `calendar_share`.
pub fn random_scenario(rng: &mut ChaCha8Rng, period_s: f64, calendar_share: f64) -> Scenario {
    let mut workload = WorkloadConfig {
        shuffle_phases: rng.gen_bool(0.5),
        base_rate_per_min: rng.gen_range(200.0..400.0),
        ..WorkloadConfig::default()
    };
    if rng.gen_bool(0.3) {
        let i = rng.gen_range(0..workload.phases.len());
        workload.phases[i].pattern = Pattern::Burst {
            height: rng.gen_range(2.0..4.0),
            width_s: rng.gen_range(2.0..8.0),
            count: rng.gen_range(1..4),
        };
    }
    let delays = [0.1, 1.0, 3.0, 5.0, 5.0, 8.0];
    let sim = SimConfig {
        decision_period_s: period_s,
        startup_delay_s: delays[rng.gen_range(0..delays.len())],
        initial_workers: rng.gen_range(4..=16),
        ..SimConfig::default()
    };
    Scenario {
        workload,
        sim,
        seed: rng.gen(),
        calendar: rng.gen_bool(calendar_share.clamp(0.0, 1.0)),
    }
}

/// Runs `policy` on one scenario.
pub fn score(policy: &mut NeuralPolicy, scenario: &Scenario) -> EpisodeResult {
    run_episode(policy, &mut scenario.simulator(), scenario.calendar().as_ref()).0
}

fn mean_result(policy: &mut NeuralPolicy, scenarios: &[Scenario], miss_weight: f64) -> (f64, f64, f64) {
    let mut r = (0.0, 0.0, 0.0);
    for s in scenarios {
        let res = score(policy, s);
        r.0 += reward_weighted(&res, miss_weight);
        r.1 += res.qos;
        r.2 += res.mean_workers;
    }
    let n = scenarios.len().max(1) as f64;
    (r.0 / n, r.1 / n, r.2 / n)
}

/// Mean returns of each candidate weight vector, computed on all cores (each thread has its
/// own network; the order of results is the order of candidates, so runs stay deterministic).
fn score_candidates(
    candidates: &[Vec<f32>],
    scenarios: &[Scenario],
    config: &TrainConfig,
) -> Result<Vec<f64>, crate::neural::ModelError> {
    score_in_parallel(
        candidates,
        || {
            let mut policy = NeuralPolicy::new_random(config.seed, config.decision_period_s)?;
            policy.reads_calendar = config.calendar_share > 0.0;
            policy.needs_calendar = config.calendar_share >= 1.0;
            Ok(policy)
        },
        |policy, c| {
            policy.set_parameters(c)?;
            Ok(mean_result(policy, scenarios, config.miss_weight).0)
        },
    )
}

/// `score` of every candidate, on up to 8 threads, each with its own policy from `make`; the
/// results in candidate order (so a run is deterministic whatever the thread count).
pub(crate) fn score_in_parallel<P>(
    candidates: &[Vec<f32>],
    make: impl Fn() -> Result<P, crate::neural::ModelError> + Sync,
    score: impl Fn(&mut P, &[f32]) -> Result<f64, crate::neural::ModelError> + Sync,
) -> Result<Vec<f64>, crate::neural::ModelError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = candidates.len().div_ceil(threads).max(1);
    let (make, score) = (&make, &score);
    std::thread::scope(|scope| {
        let handles: Vec<_> = candidates
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> Result<Vec<f64>, crate::neural::ModelError> {
                    let mut policy = make()?;
                    part.iter().map(|c| score(&mut policy, c)).collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(candidates.len());
        for h in handles {
            match h.join() {
                Ok(part) => all.extend(part?),
                Err(_) => return Err(candle_core::Error::Msg("a training thread panicked".into()).into()),
            }
        }
        Ok(all)
    })
}

/// Centered ranks in [−0.5, 0.5] (robust to the scale of returns).
pub(crate) fn centered_ranks(values: &[f64]) -> Vec<f32> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0f32; values.len()];
    let denom = (values.len().max(2) - 1) as f32;
    for (rank, &i) in idx.iter().enumerate() {
        ranks[i] = rank as f32 / denom - 0.5;
    }
    ranks
}

/// Trains a policy; `progress` is called after every iteration. Deterministic given the seed.
pub fn train(
    config: &TrainConfig,
    progress: impl FnMut(&CurvePoint),
) -> Result<(NeuralPolicy, Vec<CurvePoint>), crate::neural::ModelError> {
    let policy = NeuralPolicy::new_random(config.seed, config.decision_period_s)?;
    train_from(policy, config, progress)
}

/// ES starting from `policy`'s weights (e.g. an imitation-trained network).
pub fn train_from(
    mut policy: NeuralPolicy,
    config: &TrainConfig,
    mut progress: impl FnMut(&CurvePoint),
) -> Result<(NeuralPolicy, Vec<CurvePoint>), crate::neural::ModelError> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    policy.reads_calendar = config.calendar_share > 0.0;
    policy.needs_calendar = config.calendar_share >= 1.0;
    let mut theta = policy.parameters()?;
    let n = theta.len();
    let original = original_scenario(config.decision_period_s, config.seed, config.calendar_share > 0.0);
    let mut curve = Vec::new();
    for generation in 0..config.generations {
        let scenarios: Vec<_> = (0..config.scenarios)
            .map(|_| random_scenario(&mut rng, config.decision_period_s, config.calendar_share))
            .collect();
        let noises: Vec<Vec<f32>> = (0..config.pairs)
            .map(|_| (0..n).map(|_| StandardNormal.sample(&mut rng)).collect())
            .collect();
        let candidates: Vec<Vec<f32>> = noises
            .iter()
            .flat_map(|eps| {
                [1.0f32, -1.0].map(|sign| {
                    theta
                        .iter()
                        .zip(eps)
                        .map(|(t, e)| t + sign * config.sigma * e)
                        .collect()
                })
            })
            .collect();
        let returns = score_candidates(&candidates, &scenarios, config)?;
        let ranks = centered_ranks(&returns);
        let scale = config.learning_rate / (2.0 * config.pairs as f32 * config.sigma);
        for (i, eps) in noises.iter().enumerate() {
            let weight = (ranks[2 * i] - ranks[2 * i + 1]) * scale;
            for (t, e) in theta.iter_mut().zip(eps) {
                *t += weight * e;
            }
        }
        policy.set_parameters(&theta)?;
        let point = curve_point(&mut policy, generation, &scenarios, &original, config.miss_weight);
        progress(&point);
        curve.push(point);
    }
    stamp(
        &mut policy,
        format!(
            "openai-es(pairs={}, scenarios={}, sigma={}, lr={}, miss_weight={}, calendar_share={})",
            config.pairs,
            config.scenarios,
            config.sigma,
            config.learning_rate,
            config.miss_weight,
            config.calendar_share
        ),
        u64::from(config.generations),
        u64::from(config.generations) * u64::from(2 * config.pairs + 1) * u64::from(config.scenarios),
        config.seed,
    );
    Ok((policy, curve))
}

/// One training-curve point: means over this iteration's scenarios, and the original workload.
pub(crate) fn curve_point(
    policy: &mut NeuralPolicy,
    generation: u32,
    scenarios: &[Scenario],
    original: &Scenario,
    miss_weight: f64,
) -> CurvePoint {
    let (mean_return, mean_qos, mean_workers) = mean_result(policy, scenarios, miss_weight);
    let orig = score(policy, original);
    CurvePoint {
        generation,
        mean_return,
        mean_qos,
        mean_workers,
        original_qos: orig.qos,
        original_workers: orig.mean_workers,
    }
}

/// Records how a trained model was made, in its metadata.
pub(crate) fn stamp(policy: &mut NeuralPolicy, algorithm: String, iterations: u64, episodes: u64, seed: u64) {
    let p = &mut policy.provenance;
    p.algorithm = algorithm;
    p.iterations = iterations;
    p.episodes = episodes;
    p.seed = seed;
    p.workload = "randomised: phase order, base rate 200-400/min, bursts, start-up 0.1-8 s".into();
}

/// The training curve as a chart (see [`crate::plot::curve`]).
pub fn curve_chart(
    curve: &[CurvePoint],
    format: crate::plot::Format,
) -> Result<Vec<u8>, crate::plot::PlotError> {
    crate::plot::curve(curve, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reward_prefers_deadlines_then_fewer_workers() {
        let r = |qos: f64, workers: f64| {
            reward(&EpisodeResult {
                tasks: 100,
                completed: 100,
                qos,
                mean_workers: workers,
                max_workers: 0,
                worker_seconds: 0.0,
                scaling_actions: 0,
                completion_p50_s: 0.0,
                completion_p99_s: 0.0,
                offered_load: 7.0,
                duration_s: 240.0,
            })
        };
        assert!((r(1.0, 10.0) - -10.0).abs() < 1e-9);
        assert!((r(0.99, 10.0) - -15.0).abs() < 1e-9);
        assert!(r(0.995, 11.0) > r(1.0, 16.0));
        assert!(r(0.95, 8.0) < r(0.995, 12.0));
    }

    #[test]
    fn tiny_training_is_deterministic_and_writes_a_curve() {
        let config = TrainConfig {
            generations: 2,
            pairs: 2,
            scenarios: 1,
            ..TrainConfig::default()
        };
        let (a, curve_a) = train(&config, |_| {}).unwrap();
        let (b, curve_b) = train(&config, |_| {}).unwrap();
        assert_eq!(a.parameters().unwrap(), b.parameters().unwrap());
        assert_eq!(curve_a, curve_b);
        assert_eq!(curve_a.len(), 2);
        assert!(curve_chart(&curve_a, crate::plot::Format::Svg)
            .unwrap()
            .starts_with(b"<svg"));
    }

    #[test]
    fn ranks_are_centered() {
        assert_eq!(centered_ranks(&[3.0, 1.0, 2.0]), vec![0.5, -0.5, 0.0]);
    }
}
