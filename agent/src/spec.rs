//! Policy names: the one parser of every name a flag, a config file or a trainer accepts
//! ([`PolicySpec`]), and the one place a name becomes a policy ([`PolicySpec::build`]).
//!
//! | name | what | where |
//! |---|---|---|
//! | `PATH.safetensors` | a trained network ([`NeuralPolicy`]) | everywhere |
//! | `bundled` | the network built into the binary: the calendar-trained one when the node knows the load calendar | node |
//! | `manual` | no policy: the node follows `scale` requests only | node |
//! | `static[:N]` | N workers (12), rounded to a whole number | everywhere |
//! | `reactive-average`, `reactive-maximum` | the original system's ±1 rules | everywhere |
//! | `queue-proportional[:TARGET]` | KEDA's list-length scaler, TARGET tasks per worker (5) | everywhere |
//! | `load-proportional[:HEADROOM]` | measured load × (1 + HEADROOM) (0.3) | everywhere |
//! | `staffing[:SQRT_SPARE[:BASE_SPARE[:STARTUP_SPARE[:DECAY_S[:JUMP_Z[:DRAIN_S[:HOLD_QUANTILE[:HOLD_S]]]]]]]]` | square-root staffing on a rate estimated from the last 1/5/30 s (jumps at once, falls slowly, holds a high quantile), plus draining the queued work (defaults: `agent::policy::StaffingParams`) | everywhere |
//! | `calendar[:RISK[:WAIT_S]]` | Erlang C on the load calendar (5 %, 0.8 s) | `run` |
//! | `oracle` | lookahead on the known tasks | `eval` |
//! | `rate-oracle[:RISK[:WAIT_S]]` | `calendar` as a reference, on the simulator's calendar | `eval` |
//! | `plan-mpc[:MISS[:SAMPLES]]` | MPC over futures imagined from the calendar (0.005, 8) | `eval` |
//! | `mpc-oracle[:HORIZON_S]` | MPC over the known future (horizon: see [`mpc_horizon`]) | `eval` |
//! | `ce-mpc[:MISS[:SAMPLES]]` | MPC over futures at the observed rate: the causal bound (0.005, 8) | `eval` |

use crate::guided::GuidedPolicy;
use crate::neural::{ModelError, NeuralPolicy};
use crate::policy::{
    mpc_horizon, CeMpc, FutureSampler, LoadProportional, MpcOracle, Oracle, PlanMpc, Policy,
    QueueProportional, RateOracle, Reactive, Staffing, StaffingParams, Static,
};
use crate::sim::Simulator;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use workload::{RatePlan, TaskSizer, TaskSpec, WorkloadConfig, WorkloadError};

/// A policy by name, with its parameters (`None`: the policy's default, and left out of the
/// name). `Display` writes the name back as it parses.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicySpec {
    /// A trained network: any name ending in `.safetensors` is a file path.
    Model(PathBuf),
    Bundled,
    Manual,
    /// A positive number of workers, rounded to the nearest whole number when built.
    Static {
        workers: Option<f64>,
    },
    ReactiveAverage,
    ReactiveMaximum,
    QueueProportional {
        target: Option<f64>,
    },
    LoadProportional {
        headroom: Option<f64>,
    },
    /// The causal staffing rule; each parameter `None` takes [`StaffingParams::default`]'s.
    Staffing {
        params: [Option<f64>; 8],
    },
    Oracle,
    RateOracle {
        risk: Option<f64>,
        wait_s: Option<f64>,
    },
    PlanMpc {
        miss: Option<f64>,
        samples: Option<u32>,
    },
    MpcOracle {
        horizon_s: Option<f64>,
    },
    /// Certainty-equivalent MPC on the observed rate.
    CeMpc {
        miss: Option<f64>,
        samples: Option<u32>,
    },
    /// `rate-oracle` under the name the node gives it.
    Calendar {
        risk: Option<f64>,
        wait_s: Option<f64>,
    },
}

/// The names, each written once.
mod names {
    pub const MODEL_SUFFIX: &str = ".safetensors";
    pub const BUNDLED: &str = "bundled";
    pub const MANUAL: &str = "manual";
    pub const STATIC: &str = "static";
    pub const REACTIVE_AVERAGE: &str = "reactive-average";
    pub const REACTIVE_MAXIMUM: &str = "reactive-maximum";
    pub const QUEUE_PROPORTIONAL: &str = "queue-proportional";
    pub const LOAD_PROPORTIONAL: &str = "load-proportional";
    pub const STAFFING: &str = "staffing";
    pub const ORACLE: &str = "oracle";
    pub const RATE_ORACLE: &str = "rate-oracle";
    pub const PLAN_MPC: &str = "plan-mpc";
    pub const MPC_ORACLE: &str = "mpc-oracle";
    pub const CE_MPC: &str = "ce-mpc";
    pub const CALENDAR: &str = "calendar";
}

/// The `staffing` rule's parameters, in order.
const STAFFING_USAGE: &str =
    "staffing[:SQRT_SPARE[:BASE_SPARE[:STARTUP_SPARE[:DECAY_S[:JUMP_Z[:DRAIN_S[:HOLD_QUANTILE[:HOLD_S]]]]]]]]";

/// Every name, for the error that lists them.
const VALID: &str = "a *.safetensors file, static[:N], reactive-average, reactive-maximum, \
     queue-proportional[:TARGET], load-proportional[:HEADROOM] or \
     staffing[:SQRT_SPARE[:BASE_SPARE[:STARTUP_SPARE[:DECAY_S[:JUMP_Z[:DRAIN_S[:HOLD_QUANTILE[:HOLD_S]]]]]]]]; in the node also bundled, manual \
     and (in `run`) calendar[:RISK[:WAIT_S]]; in `eval` also the references oracle, \
     rate-oracle[:RISK[:WAIT_S]], plan-mpc[:MISS[:SAMPLES]], mpc-oracle[:HORIZON_S] and ce-mpc[:MISS[:SAMPLES]]";

/// Why a name is not a policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("unknown policy {0:?} (expected {VALID})")]
    Unknown(String),
    #[error("bad parameter in {spec:?}: {reason}")]
    BadParameter { spec: String, reason: String },
}

/// Why a policy cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The policy exists, but not where it was asked for (or not as what it was asked for).
    #[error("policy {spec:?}: {reason}")]
    Unavailable { spec: String, reason: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
}

impl PolicyError {
    pub fn unavailable(spec: &PolicySpec, reason: &str) -> PolicyError {
        PolicyError::Unavailable {
            spec: spec.to_string(),
            reason: reason.into(),
        }
    }
}

/// The `MISS[:SAMPLES]` of the sampled MPC references (`plan-mpc`, `ce-mpc`).
fn mpc_sampling(p: Params<'_>) -> Result<(Option<f64>, Option<u32>), SpecError> {
    Ok((
        p.get(
            0,
            |m| {
                m.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && (0.0..1.0).contains(v))
            },
            |_| "MISS must be a fraction in [0, 1)".into(),
        )?,
        p.get(
            1,
            |n| n.parse::<u32>().ok().filter(|n| (1..=256).contains(n)),
            |_| "SAMPLES must be a whole number from 1 to 256".into(),
        )?,
    ))
}

/// The parameters after a policy's name, checked one by one.
struct Params<'a> {
    spec: &'a str,
    values: Vec<&'a str>,
}

impl<'a> Params<'a> {
    /// The parameters of `spec` (the text after its first `:`), at most `max` of them.
    fn new(spec: &'a str, rest: Option<&'a str>, max: usize, usage: &'static str) -> Result<Self, SpecError> {
        let values: Vec<&str> = rest.map_or_else(Vec::new, |r| r.split(':').collect());
        let params = Params { spec, values };
        if params.values.len() > max {
            return Err(params.bad(&if max == 0 {
                format!("{usage} takes no parameter")
            } else {
                format!("expected {usage}")
            }));
        }
        Ok(params)
    }

    fn bad(&self, reason: &str) -> SpecError {
        SpecError::BadParameter {
            spec: self.spec.into(),
            reason: reason.into(),
        }
    }

    /// The `i`-th parameter through `check` (`None` if not given).
    fn get<T>(
        &self,
        i: usize,
        check: impl Fn(&str) -> Option<T>,
        why: impl Fn(&str) -> String,
    ) -> Result<Option<T>, SpecError> {
        self.values
            .get(i)
            .map(|p| check(p).ok_or_else(|| self.bad(&why(p))))
            .transpose()
    }

    /// The `i`-th parameter as a positive, finite number.
    fn positive(&self, i: usize) -> Result<Option<f64>, SpecError> {
        self.get(
            i,
            |p| p.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0),
            |p| format!("{p:?} is not a positive number"),
        )
    }
}

impl FromStr for PolicySpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<PolicySpec, SpecError> {
        use names::*;
        if spec.ends_with(MODEL_SUFFIX) {
            return Ok(PolicySpec::Model(PathBuf::from(spec)));
        }
        let (kind, rest) = match spec.split_once(':') {
            Some((kind, rest)) => (kind, Some(rest)),
            None => (spec, None),
        };
        let params = |max, usage| Params::new(spec, rest, max, usage);
        Ok(match kind {
            BUNDLED => params(0, BUNDLED).map(|_| PolicySpec::Bundled)?,
            MANUAL => params(0, MANUAL).map(|_| PolicySpec::Manual)?,
            REACTIVE_AVERAGE => params(0, REACTIVE_AVERAGE).map(|_| PolicySpec::ReactiveAverage)?,
            REACTIVE_MAXIMUM => params(0, REACTIVE_MAXIMUM).map(|_| PolicySpec::ReactiveMaximum)?,
            ORACLE => params(0, ORACLE).map(|_| PolicySpec::Oracle)?,
            STATIC => PolicySpec::Static {
                workers: params(1, "static[:N]")?.positive(0)?,
            },
            QUEUE_PROPORTIONAL => PolicySpec::QueueProportional {
                target: params(1, "queue-proportional[:TARGET]")?.positive(0)?,
            },
            LOAD_PROPORTIONAL => PolicySpec::LoadProportional {
                headroom: params(1, "load-proportional[:HEADROOM]")?.positive(0)?,
            },
            STAFFING => {
                let p = params(8, STAFFING_USAGE)?;
                let mut values = [None; 8];
                for (i, v) in values.iter_mut().enumerate() {
                    *v = p.get(
                        i,
                        |v| v.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0),
                        |v| format!("{v:?} is not a number ≥ 0"),
                    )?;
                }
                PolicySpec::Staffing { params: values }
            }
            RATE_ORACLE => {
                let p = params(2, "rate-oracle[:RISK[:WAIT_S]]")?;
                PolicySpec::RateOracle {
                    risk: p.positive(0)?,
                    wait_s: p.positive(1)?,
                }
            }
            CALENDAR => {
                let p = params(2, "calendar[:RISK[:WAIT_S]]")?;
                PolicySpec::Calendar {
                    risk: p.positive(0)?,
                    wait_s: p.positive(1)?,
                }
            }
            PLAN_MPC => {
                let (miss, samples) = mpc_sampling(params(2, "plan-mpc[:MISS[:SAMPLES]]")?)?;
                PolicySpec::PlanMpc { miss, samples }
            }
            CE_MPC => {
                let (miss, samples) = mpc_sampling(params(2, "ce-mpc[:MISS[:SAMPLES]]")?)?;
                PolicySpec::CeMpc { miss, samples }
            }
            MPC_ORACLE => PolicySpec::MpcOracle {
                horizon_s: params(1, "mpc-oracle[:HORIZON_S]")?.positive(0)?,
            },
            _ => return Err(SpecError::Unknown(spec.into())),
        })
    }
}

impl fmt::Display for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use names::*;
        /// `name`, then each parameter up to the last one given (defaults fill any gap).
        fn with(f: &mut fmt::Formatter<'_>, name: &str, params: &[(Option<String>, String)]) -> fmt::Result {
            f.write_str(name)?;
            let given = params.iter().rposition(|(p, _)| p.is_some()).map_or(0, |i| i + 1);
            for (p, default) in &params[..given] {
                write!(f, ":{}", p.as_deref().unwrap_or(default))?;
            }
            Ok(())
        }
        let num = |v: &Option<f64>| v.map(|v| v.to_string());
        let target = |risk: &Option<f64>, wait_s: &Option<f64>| {
            [
                (num(risk), RateOracle::WAIT_RISK.to_string()),
                (num(wait_s), RateOracle::WAIT_S.to_string()),
            ]
        };
        match self {
            PolicySpec::Model(path) => write!(f, "{}", path.display()),
            PolicySpec::Bundled => f.write_str(BUNDLED),
            PolicySpec::Manual => f.write_str(MANUAL),
            PolicySpec::Static { workers } => with(f, STATIC, &[(num(workers), String::new())]),
            PolicySpec::ReactiveAverage => f.write_str(REACTIVE_AVERAGE),
            PolicySpec::ReactiveMaximum => f.write_str(REACTIVE_MAXIMUM),
            PolicySpec::QueueProportional { target } => {
                with(f, QUEUE_PROPORTIONAL, &[(num(target), String::new())])
            }
            PolicySpec::LoadProportional { headroom } => {
                with(f, LOAD_PROPORTIONAL, &[(num(headroom), String::new())])
            }
            PolicySpec::Staffing { params } => {
                let defaults = StaffingParams::default().to_vec();
                let params: Vec<(Option<String>, String)> = params
                    .iter()
                    .zip(defaults)
                    .map(|(p, d)| (num(p), d.to_string()))
                    .collect();
                with(f, STAFFING, &params)
            }
            PolicySpec::Oracle => f.write_str(ORACLE),
            PolicySpec::RateOracle { risk, wait_s } => with(f, RATE_ORACLE, &target(risk, wait_s)),
            PolicySpec::Calendar { risk, wait_s } => with(f, CALENDAR, &target(risk, wait_s)),
            PolicySpec::PlanMpc { miss, samples } => with(
                f,
                PLAN_MPC,
                &[
                    (num(miss), PlanMpc::MISS_TARGET.to_string()),
                    (samples.map(|n| n.to_string()), PlanMpc::SAMPLES.to_string()),
                ],
            ),
            PolicySpec::MpcOracle { horizon_s } => with(f, MPC_ORACLE, &[(num(horizon_s), String::new())]),
            PolicySpec::CeMpc { miss, samples } => with(
                f,
                CE_MPC,
                &[
                    (num(miss), PlanMpc::MISS_TARGET.to_string()),
                    (samples.map(|n| n.to_string()), PlanMpc::SAMPLES.to_string()),
                ],
            ),
        }
    }
}

/// A policy file: a guided policy (`kind=guided-staffing`) or a plain network. In an episode a
/// guided policy assumes the workload's mean processing time until it measures it.
fn load_model(path: &std::path::Path, setting: &Setting) -> Result<Box<dyn Policy>, PolicyError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: shown.clone(),
        source,
    })?;
    model_from_bytes(&bytes, &shown, None, setting)
}

/// The decision period a policy file was trained at (either kind).
pub fn model_period(path: &std::path::Path) -> Result<f64, PolicyError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: shown.clone(),
        source,
    })?;
    Ok(if GuidedPolicy::is_guided(&bytes) {
        GuidedPolicy::from_bytes(&bytes, &shown)?.decision_period_s
    } else {
        NeuralPolicy::from_bytes(&bytes, &shown)?.decision_period_s
    })
}

/// [`load_model`] from a file's bytes (the bundled models). `source` names the bytes in errors;
/// `name` is what the policy is called in reports (by default `neural` for a network, `source`
/// for a guided policy).
pub fn model_from_bytes(
    bytes: &[u8],
    source: &str,
    name: Option<&str>,
    setting: &Setting,
) -> Result<Box<dyn Policy>, PolicyError> {
    if !GuidedPolicy::is_guided(bytes) {
        let policy = NeuralPolicy::from_bytes(bytes, source)?;
        let calendar_known = match setting {
            Setting::Episode { calendar, .. } => *calendar,
            Setting::Node { calendar, .. } => calendar.is_some(),
        };
        if policy.needs_calendar && !calendar_known {
            return Err(PolicyError::Unavailable {
                spec: source.into(),
                reason: "this model was trained with the load calendar in every scenario and never learned to decide without one, which is withheld here (`eval --no-calendar`, `run --no-calendar`, or `serve`, which knows a calendar only while a job's plan is known: `--policy bundled` switches to the calendar model then)".into(),
            });
        }
        return Ok(Box::new(match name {
            Some(name) => policy.labelled(name),
            None => policy,
        }));
    }
    let policy = GuidedPolicy::from_bytes(bytes, source)?.labelled(name.unwrap_or(source));
    Ok(match setting {
        Setting::Episode { workload, .. } => {
            Box::new(policy.with_service_prior(workload.mean_processing_s * workload.time_scale))
        }
        Setting::Node { .. } => Box::new(policy),
    })
}

/// The networks built into the binary, for `bundled`.
#[derive(Clone, Copy)]
pub struct BundledModels<'a> {
    /// Trained on the farm's metrics only (`serve`, `run --no-calendar`).
    pub metrics: &'a [u8],
    /// Trained with the load calendar among its inputs (`run`).
    pub calendar: &'a [u8],
}

/// Where a policy runs, which decides what it can be built from.
#[derive(Clone, Copy)]
pub enum Setting<'a> {
    /// The live node: it sees the farm's metrics and, under `run`, knows the workload it drives.
    Node {
        decision_period_s: f64,
        /// The workload whose load calendar the node knows (`run`); `None` under `serve` and
        /// `run --no-calendar`.
        calendar: Option<&'a WorkloadConfig>,
        bundled: BundledModels<'a>,
    },
    /// One simulated episode, before it starts: the references may know its tasks and copy its
    /// simulator.
    Episode {
        simulator: &'a Simulator,
        tasks: &'a [TaskSpec],
        workload: &'a WorkloadConfig,
        /// The episode's seed (the references draw their own randomness from it).
        seed: u64,
        /// Whether the episode's observations carry the load calendar.
        calendar: bool,
    },
}

impl PolicySpec {
    /// The policy this spec names, built for `setting`. `manual` builds none (it is the absence
    /// of a policy), and each policy that needs what a setting lacks is refused, saying why.
    pub fn build(&self, setting: &Setting) -> Result<Box<dyn Policy>, PolicyError> {
        let refuse = |reason: &str| Err(PolicyError::unavailable(self, reason));
        Ok(match (self, setting) {
            (PolicySpec::Model(path), _) => load_model(path, setting)?,
            (PolicySpec::Static { workers }, _) => Box::new(Static(
                workers.map_or(Static::DEFAULT_WORKERS, |w| w.round() as u32),
            )),
            (PolicySpec::ReactiveAverage, _) => Box::new(Reactive::average()),
            (PolicySpec::ReactiveMaximum, _) => Box::new(Reactive::maximum()),
            (PolicySpec::QueueProportional { target }, _) => Box::new(QueueProportional::new(
                target.unwrap_or(QueueProportional::DEFAULT_TARGET),
            )),
            (PolicySpec::LoadProportional { headroom }, _) => Box::new(LoadProportional::new(
                headroom.unwrap_or(LoadProportional::DEFAULT_HEADROOM),
            )),
            (PolicySpec::Staffing { params }, setting) => {
                let defaults = StaffingParams::default().to_vec();
                let values: Vec<f64> = params.iter().zip(defaults).map(|(p, d)| p.unwrap_or(d)).collect();
                let params = StaffingParams::from_slice(&values);
                // A first guess of the mean processing time, which the rule then measures.
                let service_s = match setting {
                    Setting::Episode { workload, .. } => workload.mean_processing_s * workload.time_scale,
                    Setting::Node { calendar, .. } => {
                        calendar.map_or(Staffing::DEFAULT_SERVICE_S, |w| w.mean_processing_s)
                    }
                };
                Box::new(Staffing::new(params, service_s))
            }
            (PolicySpec::Manual, Setting::Node { .. }) => {
                return refuse("it is no policy: the node then follows `scale` requests only")
            }
            (
                PolicySpec::Bundled,
                Setting::Node {
                    calendar, bundled, ..
                },
            ) => match calendar {
                Some(_) => model_from_bytes(
                    bundled.calendar,
                    "the bundled calendar model",
                    Some("neural+calendar"),
                    setting,
                )?,
                None => model_from_bytes(bundled.metrics, "the bundled model", Some("guided"), setting)?,
            },
            (
                PolicySpec::Calendar { risk, wait_s },
                Setting::Node {
                    decision_period_s,
                    calendar,
                    ..
                },
            ) => {
                match calendar {
                    // In workload time, as the node decides: the unscaled mean processing time.
                    Some(workload) => Box::new(
                        RateOracle::new(workload.mean_processing_s, *decision_period_s)
                            .with_target(
                                risk.unwrap_or(RateOracle::WAIT_RISK),
                                wait_s.unwrap_or(RateOracle::WAIT_S),
                            )
                            .named("calendar"),
                    ),
                    None => return refuse(
                        "it needs the workload's schedule, which only `run` knows (it drives the emitter)",
                    ),
                }
            }
            (
                PolicySpec::Oracle
                | PolicySpec::RateOracle { .. }
                | PolicySpec::PlanMpc { .. }
                | PolicySpec::MpcOracle { .. }
                | PolicySpec::CeMpc { .. },
                Setting::Node { .. },
            ) => return refuse("this reference needs the workload's future; it exists only in `eval`"),
            (
                PolicySpec::Manual | PolicySpec::Bundled | PolicySpec::Calendar { .. },
                Setting::Episode { .. },
            ) => return refuse("it exists only in the node (`serve`, `run`)"),
            (PolicySpec::Oracle, Setting::Episode { simulator, tasks, .. }) => {
                let config = simulator.config();
                Box::new(Oracle::new(
                    tasks.to_vec(),
                    config.decision_period_s,
                    config.startup_delay_s,
                ))
            }
            (
                PolicySpec::RateOracle { .. } | PolicySpec::PlanMpc { .. },
                Setting::Episode { calendar: false, .. },
            ) => return refuse("this reference reads the load calendar, which this evaluation withholds"),
            (
                PolicySpec::RateOracle { risk, wait_s },
                Setting::Episode {
                    simulator, workload, ..
                },
            ) => Box::new(
                RateOracle::for_workload(workload, simulator.config().decision_period_s).with_target(
                    risk.unwrap_or(RateOracle::WAIT_RISK),
                    wait_s.unwrap_or(RateOracle::WAIT_S),
                ),
            ),
            // The present from a lockstep copy of this very simulator, the future imagined
            // from the planned rates.
            (
                PolicySpec::PlanMpc { miss, samples },
                Setting::Episode {
                    simulator,
                    workload,
                    seed,
                    ..
                },
            ) => Box::new(PlanMpc::new(
                (*simulator).clone(),
                FutureSampler::new(
                    RatePlan::new(workload, *seed),
                    TaskSizer::new(workload),
                    samples.unwrap_or(PlanMpc::SAMPLES),
                    seed ^ 0x5eed_f00d,
                ),
                mpc_horizon(simulator.config()),
                miss.unwrap_or(PlanMpc::MISS_TARGET),
            )),
            (
                PolicySpec::CeMpc { miss, samples },
                Setting::Episode {
                    simulator,
                    workload,
                    seed,
                    ..
                },
            ) => Box::new(CeMpc::new(
                (*simulator).clone(),
                TaskSizer::new(workload),
                seed ^ 0xce_3bc,
                samples.unwrap_or(PlanMpc::SAMPLES),
                mpc_horizon(simulator.config()),
                miss.unwrap_or(PlanMpc::MISS_TARGET),
            )),
            // A lockstep copy of this very simulator.
            (PolicySpec::MpcOracle { horizon_s }, Setting::Episode { simulator, .. }) => {
                Box::new(MpcOracle::new(
                    (*simulator).clone(),
                    horizon_s.unwrap_or_else(|| mpc_horizon(simulator.config())),
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> Result<PolicySpec, SpecError> {
        name.parse()
    }

    #[test]
    fn every_name_parses_and_round_trips() {
        let cases = [
            (
                "models/model.safetensors",
                PolicySpec::Model("models/model.safetensors".into()),
            ),
            ("bundled", PolicySpec::Bundled),
            ("manual", PolicySpec::Manual),
            ("static", PolicySpec::Static { workers: None }),
            ("static:12", PolicySpec::Static { workers: Some(12.0) }),
            ("static:7.4", PolicySpec::Static { workers: Some(7.4) }),
            ("reactive-average", PolicySpec::ReactiveAverage),
            ("reactive-maximum", PolicySpec::ReactiveMaximum),
            (
                "queue-proportional",
                PolicySpec::QueueProportional { target: None },
            ),
            (
                "queue-proportional:2",
                PolicySpec::QueueProportional { target: Some(2.0) },
            ),
            (
                "load-proportional",
                PolicySpec::LoadProportional { headroom: None },
            ),
            (
                "load-proportional:0.5",
                PolicySpec::LoadProportional { headroom: Some(0.5) },
            ),
            ("oracle", PolicySpec::Oracle),
            (
                "rate-oracle",
                PolicySpec::RateOracle {
                    risk: None,
                    wait_s: None,
                },
            ),
            (
                "rate-oracle:0.03",
                PolicySpec::RateOracle {
                    risk: Some(0.03),
                    wait_s: None,
                },
            ),
            (
                "rate-oracle:0.03:1.5",
                PolicySpec::RateOracle {
                    risk: Some(0.03),
                    wait_s: Some(1.5),
                },
            ),
            ("staffing", PolicySpec::Staffing { params: [None; 8] }),
            (
                "staffing:0.1:0.5:0:20",
                PolicySpec::Staffing {
                    params: [
                        Some(0.1),
                        Some(0.5),
                        Some(0.0),
                        Some(20.0),
                        None,
                        None,
                        None,
                        None,
                    ],
                },
            ),
            (
                "ce-mpc:0.01:4",
                PolicySpec::CeMpc {
                    miss: Some(0.01),
                    samples: Some(4),
                },
            ),
            (
                "plan-mpc",
                PolicySpec::PlanMpc {
                    miss: None,
                    samples: None,
                },
            ),
            (
                "plan-mpc:0",
                PolicySpec::PlanMpc {
                    miss: Some(0.0),
                    samples: None,
                },
            ),
            (
                "plan-mpc:0.01:16",
                PolicySpec::PlanMpc {
                    miss: Some(0.01),
                    samples: Some(16),
                },
            ),
            ("mpc-oracle", PolicySpec::MpcOracle { horizon_s: None }),
            (
                "mpc-oracle:24",
                PolicySpec::MpcOracle {
                    horizon_s: Some(24.0),
                },
            ),
            (
                "calendar",
                PolicySpec::Calendar {
                    risk: None,
                    wait_s: None,
                },
            ),
            (
                "calendar:0.05:0.8",
                PolicySpec::Calendar {
                    risk: Some(0.05),
                    wait_s: Some(0.8),
                },
            ),
        ];
        for (name, spec) in cases {
            assert_eq!(parse(name).as_ref(), Ok(&spec), "{name}");
            assert_eq!(spec.to_string(), name);
        }
        // Numbers are written back in their shortest exact form, which parses to the same spec.
        for name in [
            "static:07",
            "queue-proportional:2.50",
            "rate-oracle:3e-2",
            "plan-mpc:0.010:08",
        ] {
            let spec = parse(name).unwrap();
            assert_ne!(spec.to_string(), name);
            assert_eq!(parse(&spec.to_string()), Ok(spec), "{name}");
        }
        // A wait given without a risk (only possible in code) is written with the default risk.
        let spec = PolicySpec::Calendar {
            risk: None,
            wait_s: Some(1.5),
        };
        assert_eq!(spec.to_string(), "calendar:0.05:1.5");
        let spec = PolicySpec::PlanMpc {
            miss: None,
            samples: Some(4),
        };
        assert_eq!(spec.to_string(), "plan-mpc:0.005:4");
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        for name in [
            "magic",
            "",
            "mpc-oraclex",
            "rate-oraclex",
            "Static:3",
            " static:3",
            "model.onnx",
        ] {
            let e = parse(name).unwrap_err();
            assert_eq!(e, SpecError::Unknown(name.into()));
            let text = e.to_string();
            assert!(text.starts_with(&format!(
                "unknown policy {name:?} (expected a *.safetensors file,"
            )));
            for valid in [
                "static[:N]",
                "reactive-average",
                "reactive-maximum",
                "queue-proportional[:TARGET]",
                "load-proportional[:HEADROOM]",
                "bundled",
                "manual",
                "calendar[:RISK[:WAIT_S]]",
                "oracle",
                "rate-oracle[:RISK[:WAIT_S]]",
                "plan-mpc[:MISS[:SAMPLES]]",
                "mpc-oracle[:HORIZON_S]",
            ] {
                assert!(text.contains(valid), "{valid} missing from {text}");
            }
        }
    }

    #[test]
    fn every_parameter_error_names_the_spec_and_the_rule() {
        let bad = |name: &str, reason: &str| {
            assert_eq!(
                parse(name),
                Err(SpecError::BadParameter {
                    spec: name.into(),
                    reason: reason.into()
                }),
                "{name}"
            );
            assert_eq!(
                parse(name).unwrap_err().to_string(),
                format!("bad parameter in {name:?}: {reason}")
            );
        };
        for (name, p) in [
            ("static:-1", "-1"),
            ("static:0", "0"),
            ("static:x", "x"),
            ("static:", ""),
            ("static:inf", "inf"),
            ("queue-proportional:NaN", "NaN"),
            ("load-proportional:-0.3", "-0.3"),
            ("rate-oracle:-1", "-1"),
            ("rate-oracle:0.03:x", "x"),
            ("rate-oracle::1.5", ""),
            ("calendar:0", "0"),
            ("mpc-oracle:-3", "-3"),
            ("mpc-oracle:x", "x"),
        ] {
            bad(name, &format!("{p:?} is not a positive number"));
        }
        bad("static:1:2", "expected static[:N]");
        bad("queue-proportional:5:1", "expected queue-proportional[:TARGET]");
        bad("load-proportional:1:1", "expected load-proportional[:HEADROOM]");
        bad("rate-oracle:1:2:3", "expected rate-oracle[:RISK[:WAIT_S]]");
        bad("calendar:1:2:3", "expected calendar[:RISK[:WAIT_S]]");
        bad("mpc-oracle:24:3", "expected mpc-oracle[:HORIZON_S]");
        bad("plan-mpc:0.1:4:2", "expected plan-mpc[:MISS[:SAMPLES]]");
        for miss in ["plan-mpc:1.5", "plan-mpc:1", "plan-mpc:-0.1", "plan-mpc:x"] {
            bad(miss, "MISS must be a fraction in [0, 1)");
        }
        for samples in ["plan-mpc:0.01:0", "plan-mpc:0.01:257", "plan-mpc:0.01:2.5"] {
            bad(samples, "SAMPLES must be a whole number from 1 to 256");
        }
        for name in [
            "bundled",
            "manual",
            "reactive-average",
            "reactive-maximum",
            "oracle",
        ] {
            bad(&format!("{name}:1"), &format!("{name} takes no parameter"));
        }
    }

    fn node(calendar: Option<&WorkloadConfig>) -> Setting<'_> {
        Setting::Node {
            decision_period_s: 8.0,
            calendar,
            // Not models: nothing here builds `bundled`.
            bundled: BundledModels {
                metrics: b"",
                calendar: b"",
            },
        }
    }

    fn build(name: &str, setting: &Setting) -> Result<Box<dyn Policy>, PolicyError> {
        parse(name).unwrap().build(setting)
    }

    #[test]
    fn the_node_builds_baselines_and_the_calendar_rule_and_refuses_the_rest() {
        let workload = WorkloadConfig::default();
        for setting in [node(None), node(Some(&workload))] {
            for (name, built) in [
                ("static", "static:12"),
                ("static:7.4", "static:7"),
                ("reactive-average", "reactive-average"),
                ("reactive-maximum", "reactive-maximum"),
                ("queue-proportional", "queue-proportional:5"),
                ("queue-proportional:2", "queue-proportional:2"),
                ("load-proportional", "load-proportional:0.3"),
            ] {
                assert_eq!(build(name, &setting).unwrap().name(), built);
            }
            for name in ["oracle", "rate-oracle", "plan-mpc:0.01", "mpc-oracle:24"] {
                let e = build(name, &setting).err().unwrap().to_string();
                assert_eq!(
                    e,
                    format!("policy {name:?}: this reference needs the workload's future; it exists only in `eval`")
                );
            }
            let e = build("manual", &setting).err().unwrap().to_string();
            assert!(e.contains("no policy"), "{e}");
        }
        let calendar = build("calendar:0.03", &node(Some(&workload))).unwrap();
        assert_eq!(calendar.name(), "calendar:0.03:0.8");
        let e = build("calendar", &node(None)).err().unwrap().to_string();
        assert!(e.contains("only `run` knows"), "{e}");
        let e = build("missing.safetensors", &node(None)).err().unwrap();
        assert!(matches!(e, PolicyError::Model(_)), "{e}");
        let e = build("bundled", &node(None)).err().unwrap();
        assert!(e.to_string().contains("the bundled model"), "{e}");
    }

    #[test]
    fn an_episode_builds_every_reference_and_refuses_what_only_the_node_has() {
        let workload = WorkloadConfig::default();
        let tasks: Vec<TaskSpec> = workload::Workload::new(&workload, 3).collect();
        let simulator = Simulator::new(crate::sim::SimConfig::default(), tasks.clone(), 3);
        let episode = |calendar| Setting::Episode {
            simulator: &simulator,
            tasks: &tasks,
            workload: &workload,
            seed: 3,
            calendar,
        };
        for (name, built) in [
            ("static:16", "static:16"),
            ("oracle", "oracle"),
            ("rate-oracle", "rate-oracle:0.05:0.8"),
            ("rate-oracle:0.03:1.5", "rate-oracle:0.03:1.5"),
            ("plan-mpc", "plan-mpc:0.005:8"),
            ("plan-mpc:0.01:4", "plan-mpc:0.01:4"),
            ("mpc-oracle", "mpc-oracle"),
        ] {
            assert_eq!(build(name, &episode(true)).unwrap().name(), built);
        }
        for name in ["rate-oracle", "plan-mpc"] {
            let e = build(name, &episode(false)).err().unwrap().to_string();
            assert!(e.contains("reads the load calendar"), "{e}");
        }
        assert!(build("mpc-oracle", &episode(false)).is_ok());
        for name in ["bundled", "manual", "calendar"] {
            let e = build(name, &episode(true)).err().unwrap().to_string();
            assert_eq!(
                e,
                format!("policy {name:?}: it exists only in the node (`serve`, `run`)")
            );
        }
    }
}
