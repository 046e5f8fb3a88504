//! Imitation of an expert (DAgger): the network learns, from its own observations, the worker
//! counts that a reference with privileged knowledge would choose — `mpc-oracle` (knows the
//! tasks) or `rate-oracle` (knows the load calendar, even in scenarios where the learner is not
//! told it).
//!
//! Each round runs randomised scenarios (the same distribution as ES training) in which the
//! acting policy is the expert in round 0 and the current network afterwards; every decision
//! state visited is labelled with the expert's choice in that very state (for `mpc-oracle`,
//! computed on a fork of the simulator: `policy::mpc_choice`), and added to one growing
//! dataset. The network is then fitted to the whole dataset with cross-entropy over the action
//! set. Labelling the learner's own states is what lets it learn to recover from its mistakes,
//! which plain behaviour cloning cannot.

use crate::eval::run_episode_with;
use crate::neural::{features, NeuralPolicy, ACTIONS, FEATURES};
use crate::policy::{mpc_choice, Policy, RateOracle};
use crate::spec::{PolicyError, PolicySpec};
use crate::train::{curve_point, original_scenario, random_scenario, stamp, CurvePoint, Scenario};
use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The reference the network imitates.
#[derive(Clone, Debug, PartialEq)]
pub enum Expert {
    /// `mpc-oracle[:HORIZON_S]`: tries every worker count on a fork of the known future.
    Mpc { horizon_s: f64 },
    /// `rate-oracle[:RISK[:WAIT_S]]`: Erlang-C sizing from the load calendar.
    Rate { risk: f64, wait_s: f64 },
}

impl Expert {
    /// The `mpc-oracle` horizon when none is given.
    pub const MPC_HORIZON_S: f64 = 16.0;

    /// The expert a spec names: `mpc-oracle[:HORIZON_S]` (horizon [`Self::MPC_HORIZON_S`] by
    /// default) or `rate-oracle[:RISK[:WAIT_S]]`.
    pub fn from_spec(spec: &PolicySpec) -> Result<Expert, PolicyError> {
        match spec {
            PolicySpec::MpcOracle { horizon_s } => Ok(Expert::Mpc {
                horizon_s: horizon_s.unwrap_or(Self::MPC_HORIZON_S),
            }),
            PolicySpec::RateOracle { risk, wait_s } => Ok(Expert::Rate {
                risk: risk.unwrap_or(RateOracle::WAIT_RISK),
                wait_s: wait_s.unwrap_or(RateOracle::WAIT_S),
            }),
            other => Err(PolicyError::unavailable(
                other,
                "the expert is mpc-oracle[:HORIZON_S] or rate-oracle[:RISK[:WAIT_S]]",
            )),
        }
    }

    /// The expert as a spec, every parameter written out.
    pub fn spec(&self) -> PolicySpec {
        match self {
            Expert::Mpc { horizon_s } => PolicySpec::MpcOracle {
                horizon_s: Some(*horizon_s),
            },
            Expert::Rate { risk, wait_s } => PolicySpec::RateOracle {
                risk: Some(*risk),
                wait_s: Some(*wait_s),
            },
        }
    }
}

impl std::str::FromStr for Expert {
    type Err = PolicyError;

    fn from_str(name: &str) -> Result<Expert, PolicyError> {
        Expert::from_spec(&name.parse()?)
    }
}

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
    pub expert: Expert,
    pub decision_period_s: f64,
    /// Share of scenarios in which the learner is told the load calendar.
    pub calendar_share: f64,
}

impl Default for ImitateConfig {
    fn default() -> Self {
        ImitateConfig {
            seed: 1,
            rounds: 8,
            scenarios: 24,
            epochs: 300,
            learning_rate: 3e-3,
            expert: Expert::Mpc {
                horizon_s: Expert::MPC_HORIZON_S,
            },
            decision_period_s: 8.0,
            calendar_share: crate::train::CALENDAR_SHARE,
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

/// The expert's choice in a state (the simulator for forks, the observation for the rest).
type Labeller<'a> = dyn FnMut(&crate::sim::Simulator, &crate::observe::Observation) -> u32 + 'a;

/// Runs one scenario, acting with the expert or the learner, and appends every visited state
/// (as the learner observes it) with the expert's label to `xs`/`ys`.
fn collect(
    learner: &mut NeuralPolicy,
    use_expert: bool,
    scenario: &Scenario,
    expert: &Expert,
    xs: &mut Vec<f32>,
    ys: &mut Vec<u32>,
) {
    // The calendar expert always knows the calendar, whether or not the learner is told it.
    let full = scenario.full_calendar();
    let mut label: Box<Labeller> = match expert {
        Expert::Mpc { horizon_s } => {
            let horizon_s = *horizon_s;
            Box::new(move |sim, _| mpc_choice(sim, horizon_s))
        }
        Expert::Rate { risk, wait_s } => {
            let mut rate = RateOracle::for_workload(&scenario.workload, scenario.sim.decision_period_s)
                .with_target(*risk, *wait_s);
            let full = &full;
            Box::new(move |_, obs| rate.decide(&obs.clone().with_calendar(Some(full))))
        }
    };
    run_episode_with(
        &mut scenario.simulator(),
        scenario.calendar.then_some(&full),
        |sim, obs| {
            let current = i64::from(obs.now.workers_live + obs.now.workers_starting);
            let choice = label(sim, obs);
            xs.extend(features(obs));
            ys.push(nearest_action(i64::from(choice) - current));
            if use_expert {
                choice
            } else {
                learner.decide(obs)
            }
        },
    );
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
    policy.reads_calendar = config.calendar_share > 0.0;
    policy.needs_calendar = config.calendar_share >= 1.0;
    let mut opt = AdamW::new(
        policy.varmap.all_vars(),
        ParamsAdamW {
            lr: config.learning_rate,
            ..ParamsAdamW::default()
        },
    )?;
    let original = original_scenario(config.decision_period_s, config.seed, config.calendar_share > 0.0);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let mut curve = Vec::new();
    for round in 0..config.rounds {
        let scenarios: Vec<_> = (0..config.scenarios)
            .map(|_| random_scenario(&mut rng, config.decision_period_s, config.calendar_share))
            .collect();
        for s in &scenarios {
            collect(&mut policy, round == 0, s, &config.expert, &mut xs, &mut ys);
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
            "dagger(expert={}, rounds={}, scenarios={}, epochs={}, lr={}, calendar_share={})",
            config.expert.spec(),
            config.rounds,
            config.scenarios,
            config.epochs,
            config.learning_rate,
            config.calendar_share
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
            let s = random_scenario(&mut rng, 8.0, 0.5);
            collect(
                &mut learner,
                true,
                &s,
                &Expert::Mpc { horizon_s: 16.0 },
                &mut xs,
                &mut ys,
            );
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
    fn experts_by_name() {
        assert_eq!(
            "mpc-oracle".parse::<Expert>().unwrap(),
            Expert::Mpc { horizon_s: 16.0 }
        );
        assert_eq!(
            "mpc-oracle:24".parse::<Expert>().unwrap(),
            Expert::Mpc { horizon_s: 24.0 }
        );
        assert_eq!(
            "rate-oracle:0.03:1.5".parse::<Expert>().unwrap(),
            Expert::Rate {
                risk: 0.03,
                wait_s: 1.5
            }
        );
        for bad in ["mpc-oracle:-3", "mpc-oraclex", "static:12", "rate-oracle:x"] {
            assert!(bad.parse::<Expert>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_calendar_expert_labels_states_the_learner_sees_without_a_calendar() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut s = random_scenario(&mut rng, 4.0, 1.0);
        s.workload = workload::WorkloadConfig::default();
        s.sim.startup_delay_s = 5.0;
        let expert = Expert::Rate {
            risk: 0.03,
            wait_s: 1.5,
        };
        let mut learner = NeuralPolicy::new_random(3, 4.0).unwrap();
        let known = FEATURES.iter().position(|(n, _)| *n == "calendar_known").unwrap();
        let mut labels = Vec::new();
        for told in [true, false] {
            s.calendar = told;
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            collect(&mut learner, true, &s, &expert, &mut xs, &mut ys);
            let flag = if told { 1.0 } else { 0.0 };
            assert!(xs.chunks(FEATURES.len()).all(|row| row[known] == flag));
            labels.push(ys);
        }
        // Acting as the expert, the run is the same either way, and so are its labels.
        assert_eq!(labels[0], labels[1]);
        // Before the Steady High jump (60 s) the expert grows the farm.
        let up = ACTIONS.iter().position(|a| *a > 0).unwrap() as u32;
        assert!(
            labels[0][12..15].iter().any(|l| *l >= up),
            "{:?}",
            &labels[0][..20]
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
