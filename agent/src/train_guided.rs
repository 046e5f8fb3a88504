//! Training the guided policy ([`GuidedPolicy`]): evolution strategies over the rule's
//! parameters (in log space) and the correction network's weights together, on randomised
//! workloads, episodes scored by the same return as the other trainers
//! ([`crate::train::reward_weighted`]). Deterministic for a seed; scored on every core.

use crate::eval::run_episode;
use crate::guided::GuidedPolicy;
use crate::neural::ModelError;
use crate::policy::StaffingParams;
use crate::sim::{EpisodeResult, SimConfig, Simulator};
use crate::train::{reward_weighted, CurvePoint};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use workload::{Workload, WorkloadConfig};

/// A rule parameter `p` is trained as `ln(p) / LOG_SCALE`, so that one step of noise moves it
/// by a similar factor whatever its size.
const LOG_SCALE: f64 = 3.0;

/// Settings of a guided training run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GuidedTrainConfig {
    pub seed: u64,
    pub generations: u32,
    pub pairs: u32,
    pub scenarios: u32,
    pub sigma: f32,
    pub learning_rate: f32,
    pub decision_period_s: f64,
    pub miss_weight: f64,
    /// Train the rule's parameters only (the correction stays zero).
    pub rule_only: bool,
    /// Train the correction only (the rule keeps its parameters).
    pub correction_only: bool,
}

impl Default for GuidedTrainConfig {
    fn default() -> Self {
        GuidedTrainConfig {
            seed: 1,
            generations: 150,
            pairs: 24,
            scenarios: 12,
            sigma: 0.05,
            learning_rate: 0.05,
            decision_period_s: 1.0,
            miss_weight: 4.0,
            rule_only: false,
            correction_only: false,
        }
    }
}

/// One simulated run to train or score on.
#[derive(Clone, Debug)]
pub struct Episode {
    pub workload: WorkloadConfig,
    pub sim: SimConfig,
    pub seed: u64,
}

impl Episode {
    pub fn simulator(&self) -> Simulator {
        let tasks: Vec<_> = Workload::new(&self.workload, self.seed).collect();
        Simulator::new(self.sim.clone(), tasks, self.seed)
    }
}

/// A randomised training episode: three in five from the workload families' sampler (steps,
/// ramps, oscillations, diurnal shapes, on/off bursts, noise, over a wide range of loads), two
/// in five the original phases (shuffled half the time) at a random base rate; a random
/// start-up delay (0.1–10 s) and initial farm.
pub fn random_episode(rng: &mut ChaCha8Rng, period_s: f64) -> Episode {
    let workload = if rng.gen_bool(0.6) {
        workload::random::sample_workload(rng, &workload::random::FamilyConfig::default())
    } else {
        WorkloadConfig {
            base_rate_per_min: rng.gen_range(150.0..500.0),
            shuffle_phases: rng.gen_bool(0.5),
            ..WorkloadConfig::default()
        }
    };
    let delays = [0.1, 0.3, 1.0, 2.0, 3.0, 5.0, 5.0, 8.0, 10.0];
    let sim = SimConfig {
        decision_period_s: period_s,
        startup_delay_s: delays[rng.gen_range(0..delays.len())],
        initial_workers: rng.gen_range(2..=20),
        max_workers: 80,
        ..SimConfig::default()
    };
    Episode {
        workload,
        sim,
        seed: rng.gen(),
    }
}

/// The deployment target of the metrics-only policy: the original workload, 5 s start-up.
pub fn original_episode(period_s: f64, seed: u64) -> Episode {
    Episode {
        workload: WorkloadConfig::default(),
        sim: SimConfig {
            decision_period_s: period_s,
            ..SimConfig::default()
        },
        seed,
    }
}

/// Runs `policy` on one episode (metrics only: no calendar), assuming the workload's mean
/// processing time until it measures one, as `eval` does; its own prior is kept.
pub fn score(policy: &mut GuidedPolicy, episode: &Episode) -> EpisodeResult {
    let own = policy.service_prior_s();
    policy.set_service_prior(episode.workload.mean_processing_s * episode.workload.time_scale);
    let mut sim = episode.simulator();
    let result = run_episode(policy, &mut sim, None).0;
    policy.set_service_prior(own);
    result
}

/// The training vector of a policy: its rule parameters in log space, then its weights.
fn theta_of(policy: &GuidedPolicy) -> Result<Vec<f32>, ModelError> {
    let mut theta: Vec<f32> = policy
        .params
        .to_vec()
        .iter()
        .map(|p| (p.max(1e-6).ln() / LOG_SCALE) as f32)
        .collect();
    theta.extend(policy.weights()?);
    Ok(theta)
}

/// Sets a policy from a training vector: its weights, and its rule's parameters if `rule`
/// (the log-space round trip moves them by a hair, and 0 becomes 1e-6: a rule that is not
/// trained keeps its parameters exactly).
fn apply(policy: &mut GuidedPolicy, theta: &[f32], rule: bool) -> Result<(), ModelError> {
    let k = StaffingParams::NAMES.len();
    if rule {
        let params: Vec<f64> = theta[..k]
            .iter()
            .map(|t| (f64::from(*t) * LOG_SCALE).exp())
            .collect();
        policy.params = StaffingParams::from_slice(&params);
    }
    policy.set_weights(&theta[k..])
}

fn mean_return(policy: &mut GuidedPolicy, episodes: &[Episode], miss_weight: f64) -> (f64, f64, f64) {
    let mut r = (0.0, 0.0, 0.0);
    for e in episodes {
        let res = score(policy, e);
        r.0 += reward_weighted(&res, miss_weight);
        r.1 += res.qos;
        r.2 += res.mean_workers;
    }
    let n = episodes.len().max(1) as f64;
    (r.0 / n, r.1 / n, r.2 / n)
}

/// Mean return of every candidate, on all cores, in candidate order.
fn score_candidates(
    base: &GuidedPolicy,
    candidates: &[Vec<f32>],
    episodes: &[Episode],
    miss_weight: f64,
    rule: bool,
) -> Result<Vec<f64>, ModelError> {
    let (seed, period, reads) = (base.provenance.seed, base.decision_period_s, base.reads_calendar);
    crate::train::score_in_parallel(
        candidates,
        || {
            // Each thread's copy of the base: its rule's parameters and prior included.
            let mut policy = GuidedPolicy::new(seed, period)?;
            policy.reads_calendar = reads;
            policy.params = base.params.clone();
            policy.set_service_prior(base.service_prior_s());
            Ok(policy)
        },
        |policy, c| {
            apply(policy, c, rule)?;
            Ok(mean_return(policy, episodes, miss_weight).0)
        },
    )
}

/// Trains from `policy`; `progress` is called after every generation.
pub fn train_guided(
    mut policy: GuidedPolicy,
    config: &GuidedTrainConfig,
    mut sample: impl FnMut(&mut ChaCha8Rng) -> Episode,
    mut progress: impl FnMut(&CurvePoint),
) -> Result<(GuidedPolicy, Vec<CurvePoint>), ModelError> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut theta = theta_of(&policy)?;
    // The trained slice of theta: the rule's parameters, the correction's weights, or both.
    let k = StaffingParams::NAMES.len();
    let trained = if config.rule_only {
        0..k
    } else if config.correction_only {
        k..theta.len()
    } else {
        0..theta.len()
    };
    let original = original_episode(config.decision_period_s, config.seed);
    let mut curve = Vec::new();
    for generation in 0..config.generations {
        let episodes: Vec<Episode> = (0..config.scenarios).map(|_| sample(&mut rng)).collect();
        let noises: Vec<Vec<f32>> = (0..config.pairs)
            .map(|_| trained.clone().map(|_| StandardNormal.sample(&mut rng)).collect())
            .collect();
        let candidates: Vec<Vec<f32>> = noises
            .iter()
            .flat_map(|eps| {
                [1.0f32, -1.0].map(|sign| {
                    let mut c = theta.clone();
                    for (t, e) in c[trained.clone()].iter_mut().zip(eps) {
                        *t += sign * config.sigma * e;
                    }
                    c
                })
            })
            .collect();
        let returns = score_candidates(
            &policy,
            &candidates,
            &episodes,
            config.miss_weight,
            !config.correction_only,
        )?;
        let ranks = crate::train::centered_ranks(&returns);
        let scale = config.learning_rate / (2.0 * config.pairs as f32 * config.sigma);
        for (i, eps) in noises.iter().enumerate() {
            let weight = (ranks[2 * i] - ranks[2 * i + 1]) * scale;
            for (t, e) in theta[trained.clone()].iter_mut().zip(eps) {
                *t += weight * e;
            }
        }
        apply(&mut policy, &theta, !config.correction_only)?;
        let (mean_return, mean_qos, mean_workers) = mean_return(&mut policy, &episodes, config.miss_weight);
        let orig = score(&mut policy, &original);
        let point = CurvePoint {
            generation,
            mean_return,
            mean_qos,
            mean_workers,
            original_qos: orig.qos,
            original_workers: orig.mean_workers,
        };
        progress(&point);
        curve.push(point);
    }
    if config.generations == 0 {
        // Nothing trained: the file is the starting point, and says so.
        policy.provenance.algorithm =
            "none: the staffing rule's parameters as given and a zero correction".into();
        policy.provenance.seed = config.seed;
        return Ok((policy, curve));
    }
    let p = &mut policy.provenance;
    p.algorithm = format!(
        "openai-es over {} (pairs={}, scenarios={}, sigma={}, lr={}, miss_weight={})",
        if config.rule_only {
            "the rule's parameters (log space)"
        } else if config.correction_only {
            "the correction network (the rule's parameters fixed)"
        } else {
            "the rule's parameters (log space) and the correction network"
        },
        config.pairs,
        config.scenarios,
        config.sigma,
        config.learning_rate,
        config.miss_weight
    );
    p.iterations = u64::from(config.generations);
    p.episodes =
        u64::from(config.generations) * u64::from(2 * config.pairs + 1) * u64::from(config.scenarios);
    p.seed = config.seed;
    Ok((policy, curve))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(correction_only: bool) -> GuidedTrainConfig {
        GuidedTrainConfig {
            generations: 1,
            pairs: 2,
            scenarios: 1,
            decision_period_s: 1.0,
            correction_only,
            rule_only: false,
            ..GuidedTrainConfig::default()
        }
    }

    fn short_episode(rng: &mut ChaCha8Rng) -> Episode {
        let mut e = original_episode(1.0, rng.gen());
        e.workload.phases.truncate(1);
        e
    }

    #[test]
    fn training_the_correction_keeps_the_rule_and_the_prior_exactly() {
        let mut base = GuidedPolicy::new(1, 1.0).unwrap().with_service_prior(2.5);
        base.params.sqrt_spare = 1.1;
        let before = base.params.clone();
        let weights = base.weights().unwrap();
        let (trained, curve) = train_guided(base, &tiny(true), short_episode, |_| {}).unwrap();
        assert_eq!(curve.len(), 1);
        assert_eq!(
            trained.params, before,
            "startup_spare 0 stays 0, the rest unmoved"
        );
        assert_eq!(trained.service_prior_s(), 2.5);
        assert_ne!(trained.weights().unwrap(), weights, "the correction was trained");
    }

    #[test]
    fn training_both_moves_the_rule() {
        let base = GuidedPolicy::new(1, 1.0).unwrap();
        let before = base.params.clone();
        let (trained, _) = train_guided(base, &tiny(false), short_episode, |_| {}).unwrap();
        assert_ne!(trained.params, before);
    }
}
