//! The autoscaling brain: a fast simulator of the farm, the observation builder shared with
//! the live node, baseline policies, and the evaluation that compares them.
//!
//! # Layout
//! - [`observe`]: [`observe::FarmMetrics`] snapshots, the [`observe::Metrics`] source trait,
//!   the one function that builds an observation, and the load [`observe::Calendar`] whose
//!   outlook (planned arrival rates) an observation may carry.
//! - [`sim`]: the discrete-event farm simulator (virtual time, seeded, deterministic).
//! - [`policy`]: the [`policy::Policy`] trait and the baselines (`static:N`, reactive-average,
//!   reactive-maximum, queue-proportional, load-proportional) and the references (oracle,
//!   rate-oracle, mpc-oracle).
//! - [`eval`]: episodes, summaries, and the results table.
//! - [`plot`]: SVG time series and QoS-vs-cost scatter for reports.
//! - [`neural`]: the candle MLP policy and its self-describing safetensors file.
//! - [`train`]: the evolution-strategies trainer and its reward.
//! - [`imitate`]: DAgger from an expert (`mpc-oracle` or `rate-oracle`).
//!
//! # Example
//! ```
//! use agent::{eval, sim::SimConfig};
//! use workload::WorkloadConfig;
//! let rows = eval::evaluate(&["static:12".into()], &WorkloadConfig::default(), &SimConfig::default(), 1, 7, false).unwrap();
//! println!("{}", eval::table(&rows));
//! ```

pub mod eval;
pub mod imitate;
pub mod neural;
pub mod observe;
pub mod plot;
pub mod policy;
pub mod sim;
pub mod train;
