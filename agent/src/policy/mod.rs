//! Scaling policies behind one trait. The trait sits at the bottom of the agent (it depends on
//! the observation only), so the neural policy and every rule implement it without knowing each
//! other; `spec::PolicySpec` (above this module) turns a name into one of them.
//!
//! - [`baselines`]: rules a deployed autoscaler could run on the farm's metrics — `static:N`,
//!   `reactive-average`, `reactive-maximum`, `queue-proportional[:TARGET]`,
//!   `load-proportional[:HEADROOM]`.
//! - [`references`]: sizing from knowledge a deployed autoscaler lacks — `oracle` (the future
//!   tasks) and `rate-oracle` (Erlang C on the load calendar; `calendar` in `run`, which knows
//!   the schedule it drives).
//! - [`mpc`]: `mpc-oracle` and `plan-mpc`, which decide on forks of the simulator.
//! - [`queueing`]: `staffing`, a causal rule on the farm's own metrics at any cadence.
//!
//! The neural policy is `neural::NeuralPolicy`, which implements the trait from above it.

use crate::observe::Observation;

pub mod baselines;
pub mod mpc;
pub mod queueing;
pub mod references;

pub use baselines::{LoadProportional, QueueProportional, Reactive, Static};
pub use mpc::{mpc_choice, mpc_horizon, plan_mpc_choice, CeMpc, FutureSampler, MpcOracle, PlanMpc};
pub use queueing::{Staffing, StaffingParams, StaffingState};
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
