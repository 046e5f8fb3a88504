//! The autoscaling brain: a fast simulator of the farm, the observation builder shared with
//! the live node, the policies — baselines, references and the trained network — and the
//! evaluation that compares them.
//!
//! # Layout
//! Listed bottom-up: each module uses only those above it (the workload generator is the
//! `workload` crate).
//! - [`observe`]: [`observe::FarmMetrics`] snapshots, the [`observe::Metrics`] source trait,
//!   the one function that builds an observation, and the load [`observe::Calendar`] whose
//!   outlook (planned arrival rates) an observation may carry.
//! - [`sim`]: the discrete-event farm simulator (virtual time, seeded, deterministic).
//! - [`policy`]: the [`policy::Policy`] trait; the baselines (`static:N`, reactive-average,
//!   reactive-maximum, queue-proportional, load-proportional) and the references (oracle,
//!   rate-oracle — `calendar` in the node —, plan-mpc, mpc-oracle).
//! - [`neural`]: the candle MLP policy and its self-describing safetensors file.
//! - [`spec`]: [`spec::PolicySpec`], the one parser of policy names, and the one constructor
//!   of a policy from a name.
//! - [`eval`]: episodes, summaries, and the results table.
//! - [`plot`]: SVG time series and QoS-vs-cost scatter for reports.
//! - [`train`]: the evolution-strategies trainer and its reward.
//! - [`imitate`]: DAgger from an expert (`mpc-oracle` or `rate-oracle`).
//!
//! # Example
//! ```
//! use agent::{eval, sim::SimConfig, spec::PolicySpec};
//! use workload::WorkloadConfig;
//! let policies: Vec<PolicySpec> = vec!["static:12".parse().unwrap()];
//! let rows = eval::evaluate(&policies, &WorkloadConfig::default(), &SimConfig::default(), 1, 7, false).unwrap();
//! println!("{}", eval::table(&rows));
//! ```

pub mod eval;
pub mod guided;
pub mod imitate;
pub mod neural;
pub mod observe;
pub mod plot;
pub mod policy;
pub mod scaling_rules;
pub mod sim;
pub mod spec;
pub mod train;
pub mod train_guided;
mod weights;
