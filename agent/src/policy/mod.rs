//! Scaling policies behind one trait. The trait sits at the bottom of the agent (it depends on
//! the observation only), so the neural policy and every rule implement it without knowing each
//! other.
//!
//! - [`baselines`]: what a deployed autoscaler could run — `static:N`, `reactive-average`,
//!   `reactive-maximum`, `queue-proportional[:TARGET]`, `load-proportional[:HEADROOM]`.
//! - [`references`]: `oracle` (knows the future tasks) and `rate-oracle` (Erlang C on the load
//!   calendar; `calendar` in the node).
//! - [`mpc`]: `mpc-oracle` and `plan-mpc`, which decide on forks of the simulator.
//!
//! The neural policy is [`crate::neural::NeuralPolicy`].

use crate::observe::Observation;
use workload::TaskSpec;

pub mod baselines;
pub mod mpc;
pub mod references;

pub use baselines::{LoadProportional, QueueProportional, Reactive, Static};
pub use mpc::{mpc_choice, mpc_horizon_from_name, plan_mpc_choice, FutureSampler, MpcOracle, PlanMpc};
pub use references::{erlang_c_wait_exceeds, Oracle, RateOracle};

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
pub(crate) fn current_workers(obs: &Observation) -> u32 {
    obs.now.workers_live + obs.now.workers_starting
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
