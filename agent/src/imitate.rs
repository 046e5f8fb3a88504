//! Imitation of the clairvoyant expert (DAgger): the network learns, from observations alone,
//! the worker counts that `mpc-oracle` would choose.
//!
//! Each round runs randomised scenarios (the same distribution as ES training) in which the
//! acting policy is the expert in round 0 and the current network afterwards; every decision
//! state visited is labelled with the expert's choice, computed on a fork of that very state
//! (`policy::mpc_choice`), and added to one growing dataset. The network is then fitted to the
//! whole dataset with cross-entropy over the action set. Labelling the learner's own states is
//! what lets it learn to recover from its mistakes, which plain behaviour cloning cannot.

use crate::eval::run_episode_with;
use crate::neural::{features, NeuralPolicy, ACTIONS, FEATURES};
use crate::policy::{mpc_choice, Policy};
use crate::sim::{SimConfig, Simulator};
use crate::train::{curve_point, original_scenario, random_scenario, stamp, CurvePoint};
use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use functions::workload::{Workload, WorkloadConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Settings of an imitation run.
#[derive(Clone, Debug, PartialEq)]
pub struct ImitateConfig {
    pub seed: u64,
    /// DAgger rounds (round 0 follows the expert).
    pub rounds: u32,
    /// Scenarios run per round.
    pub scenarios: u32,
    /// Optimiser steps (full batch) after each round.
    pub epochs: u32,
    pub learning_rate: f64,
    /// The expert's lookahead, seconds.
    pub horizon_s: f64,
    pub decision_period_s: f64,
}

impl Default for ImitateConfig {
    fn default() -> Self {
        ImitateConfig {
            seed: 1,
            rounds: 8,
            scenarios: 24,
            epochs: 300,
            learning_rate: 3e-3,
            horizon_s: 16.0,
            decision_period_s: 8.0,
        }
    }
}

/// The action whose delta is closest to `delta` (ties to the smaller step).
pub fn nearest_action(delta: i64) -> u32 {
    ACTIONS
        .iter()
        .enumerate()
        .min_by_key(|(_, a)| ((i64::from(**a) - delta).abs(), i64::from(**a).abs()))
        .map_or(0, |(i, _)| i as u32)
}

/// Runs one scenario, acting with the expert or the learner, and appends every visited state
/// with the expert's label to `xs`/`ys`.
fn collect(
    learner: &mut NeuralPolicy,
    use_expert: bool,
    scenario: &(WorkloadConfig, SimConfig, u64),
    horizon_s: f64,
    xs: &mut Vec<f32>,
    ys: &mut Vec<u32>,
) {
    let (workload, sim, seed) = scenario;
    let tasks: Vec<_> = Workload::new(workload, *seed).collect();
    let mut sim = Simulator::new(sim.clone(), tasks, *seed);
    run_episode_with(&mut sim, |sim, obs| {
        let current = i64::from(obs.now.workers_live + obs.now.workers_starting);
        let expert = mpc_choice(sim, horizon_s);
        xs.extend(features(obs));
        ys.push(nearest_action(i64::from(expert) - current));
        if use_expert {
            expert
        } else {
            learner.decide(obs)
        }
    });
}

/// Full-batch cross-entropy steps on the dataset; returns the loss before and after.
fn fit(
    policy: &NeuralPolicy,
    opt: &mut AdamW,
    xs: &[f32],
    ys: &[u32],
    epochs: u32,
) -> candle_core::Result<(f32, f32)> {
    let n = ys.len();
    let x = Tensor::from_slice(xs, (n, FEATURES.len()), &Device::Cpu)?;
    let y = Tensor::from_slice(ys, n, &Device::Cpu)?;
    let loss_of = || candle_nn::loss::cross_entropy(&policy.mlp().forward(&x)?, &y);
    let before = loss_of()?.to_scalar::<f32>()?;
    for _ in 0..epochs {
        opt.backward_step(&loss_of()?)?;
    }
    Ok((before, loss_of()?.to_scalar::<f32>()?))
}

/// Trains a network by DAgger; `progress` gets one point per round (scenario means and the
/// original workload with 5 s start-up).
pub fn imitate(
    config: &ImitateConfig,
    mut progress: impl FnMut(&CurvePoint),
) -> Result<(NeuralPolicy, Vec<CurvePoint>), crate::neural::ModelError> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut policy = NeuralPolicy::new_random(config.seed, config.decision_period_s)?;
    let mut opt = AdamW::new(
        policy.varmap.all_vars(),
        ParamsAdamW {
            lr: config.learning_rate,
            ..ParamsAdamW::default()
        },
    )?;
    let original = original_scenario(config.decision_period_s, config.seed);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let mut curve = Vec::new();
    for round in 0..config.rounds {
        let scenarios: Vec<_> = (0..config.scenarios)
            .map(|_| random_scenario(&mut rng, config.decision_period_s))
            .collect();
        for s in &scenarios {
            collect(&mut policy, round == 0, s, config.horizon_s, &mut xs, &mut ys);
        }
        fit(&policy, &mut opt, &xs, &ys, config.epochs)?;
        let point = curve_point(
            &mut policy,
            round,
            &scenarios,
            &original,
            crate::train::MISS_WEIGHT,
        );
        progress(&point);
        curve.push(point);
    }
    stamp(
        &mut policy,
        format!(
            "dagger(expert=mpc-oracle horizon {} s, rounds={}, scenarios={}, epochs={}, lr={})",
            config.horizon_s, config.rounds, config.scenarios, config.epochs, config.learning_rate
        ),
        u64::from(config.rounds),
        u64::from(config.rounds) * u64::from(config.scenarios),
        config.seed,
    );
    Ok((policy, curve))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_imitation_is_deterministic() {
        let config = ImitateConfig {
            rounds: 2,
            scenarios: 2,
            epochs: 150,
            ..ImitateConfig::default()
        };
        let (a, curve) = imitate(&config, |_| {}).unwrap();
        let (b, _) = imitate(&config, |_| {}).unwrap();
        assert_eq!(a.parameters().unwrap(), b.parameters().unwrap());
        assert_eq!(curve.len(), 2);
    }

    #[test]
    fn fitting_reduces_the_loss_on_expert_labels() {
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        let mut learner = NeuralPolicy::new_random(3, 8.0).unwrap();
        for _ in 0..2 {
            let s = random_scenario(&mut rng, 8.0);
            collect(&mut learner, true, &s, 16.0, &mut xs, &mut ys);
        }
        let mut opt = AdamW::new(
            learner.varmap.all_vars(),
            ParamsAdamW {
                lr: 3e-3,
                ..ParamsAdamW::default()
            },
        )
        .unwrap();
        let (before, after) = fit(&learner, &mut opt, &xs, &ys, 300).unwrap();
        assert!(
            after < 0.7 * before,
            "loss {before} -> {after} on {} labels",
            ys.len()
        );
    }

    #[test]
    fn labels_map_to_the_nearest_step() {
        let idx = |d| ACTIONS[nearest_action(d) as usize];
        assert_eq!(idx(0), 0);
        assert_eq!(idx(3), 2);
        assert_eq!(idx(10), 4);
        assert_eq!(idx(-3), -2);
        assert_eq!(idx(-9), -4);
    }
}
