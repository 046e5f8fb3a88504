//! The guided policy: the causal staffing rule ([`Staffing`]) with a learned correction —
//! a small candle MLP that reads the farm's metrics and the rule's own state and adds a
//! residual (±[`MAX_RESIDUAL`] workers) to the rule's target. The rule's parameters are trained
//! with the network (evolution strategies, see `train::train_guided`) and stored with it, so a
//! file is the whole policy. With the network's output layer at zero the policy is exactly the
//! rule, which is where training starts.
//!
//! File format `autoscale-node/policy/3` (safetensors): tensors `l1.*`, `l2.*`, `out.*` (the
//! MLP, as candle-nn names them), metadata `kind=guided-staffing`, the feature names and their
//! normalisation, `rule_params` (the rule's parameters in [`StaffingParams::NAMES`] order),
//! `max_residual`, `hidden`, `decision_period_s`, `reads_calendar`, provenance.

use crate::neural::{ModelError, Provenance};
use crate::observe::Observation;
use crate::policy::{Policy, Staffing, StaffingParams, StaffingState};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder, VarMap};
use std::collections::HashMap;
use std::path::Path;

/// Version of the file layout and metadata keys.
pub const FORMAT_VERSION: &str = "autoscale-node/policy/3";
/// The `kind` a guided policy file declares.
pub const KIND: &str = "guided-staffing";

/// The network's inputs, in order, with the constant each is divided by.
///
/// | feature | meaning | unit, window |
/// |---|---|---|
/// | `rate_1s`, `rate_5s`, `rate_30s` | tasks pushed per second | tasks/s, last 1 / 5 / 30 s |
/// | `planned_rate` | the rate the rule sizes for (rises at once, decays slowly) | tasks/s |
/// | `held_rate` | the rate the rule holds capacity for (a quantile of the sustained 5 s rates) | tasks/s, held window |
/// | `volatility` | how far the 5 s rate strays from the 30 s rate, relative to it | ratio, ~60 s |
/// | `service_s` | the rule's estimate of the mean processing time (Little's law) | s, ~120 s |
/// | `queue_length` | tasks waiting | tasks, now |
/// | `queued_work_s` | Σ processing times of waiting tasks | s of work, now |
/// | `oldest_age_s` | how long the oldest waiting task has waited | s, now |
/// | `oldest_slack_s` | its deadline − age − processing time | s, now |
/// | `workers_live`, `workers_busy`, `workers_starting` | workers by state | workers, now |
/// | `rule_target` | the rule's target before the correction | workers |
/// | `window_qos` | share of tasks completed in the last period that met their deadline | fraction |
/// | `missed_30s` | tasks that missed their deadline | tasks, last 30 s |
/// | `startup_s` | how long a new worker takes to serve | s |
/// | `planned_now`, `planned_peak` | the load calendar's rate now and until a decision takes effect (the measured planned rate without one) | tasks/s |
/// | `calendar_known` | 1 with a load calendar, else 0 | flag |
pub const FEATURES: &[(&str, f32)] = &[
    ("rate_1s", 10.0),
    ("rate_5s", 10.0),
    ("rate_30s", 10.0),
    ("planned_rate", 10.0),
    ("held_rate", 10.0),
    ("volatility", 1.0),
    ("service_s", 5.0),
    ("queue_length", 50.0),
    ("queued_work_s", 50.0),
    ("oldest_age_s", 10.0),
    ("oldest_slack_s", 10.0),
    ("workers_live", 32.0),
    ("workers_busy", 32.0),
    ("workers_starting", 32.0),
    ("rule_target", 32.0),
    ("window_qos", 1.0),
    ("missed_30s", 10.0),
    ("startup_s", 10.0),
    ("planned_now", 10.0),
    ("planned_peak", 10.0),
    ("calendar_known", 1.0),
];

/// Hidden layer width.
pub const HIDDEN: usize = 24;
/// The largest correction, in workers.
pub const MAX_RESIDUAL: f32 = 8.0;

/// The network's weights as plain arrays, for deciding: candle's tensor machinery costs about
/// 90 µs per tiny forward pass, a loop over these about 1 µs (`agent/benches/decision.rs`).
/// Rebuilt from the candle variables whenever they change, so both always agree (a test checks).
#[derive(Clone, Debug, Default)]
struct Dense {
    /// Row-major `[out][in]` weights and biases of each layer.
    layers: Vec<(Vec<f32>, Vec<f32>, usize)>,
}

impl Dense {
    fn from_vars(vars: &[(String, candle_core::Var)]) -> candle_core::Result<Dense> {
        let get = |name: &str| -> candle_core::Result<Vec<f32>> {
            vars.iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {name}")))?
                .1
                .as_tensor()
                .flatten_all()?
                .to_vec1::<f32>()
        };
        let mut layers = Vec::new();
        for (layer, inputs) in [("l1", FEATURES.len()), ("l2", HIDDEN), ("out", HIDDEN)] {
            layers.push((
                get(&format!("{layer}.weight"))?,
                get(&format!("{layer}.bias"))?,
                inputs,
            ));
        }
        Ok(Dense { layers })
    }

    /// The output in [−1, 1] for one feature vector.
    fn correction(&self, x: &[f32]) -> f32 {
        let mut input = x.to_vec();
        for (w, b, n_in) in &self.layers {
            let out: Vec<f32> = b
                .iter()
                .enumerate()
                .map(|(o, bias)| {
                    let row = &w[o * n_in..(o + 1) * n_in];
                    (bias + row.iter().zip(&input).map(|(a, b)| a * b).sum::<f32>()).tanh()
                })
                .collect();
            input = out;
        }
        input.first().copied().unwrap_or(0.0)
    }
}

/// The MLP: features → HIDDEN → HIDDEN → 1 (tanh between layers and at the output). Building
/// it names and shapes the variables (the file's tensors); its candle forward pass is the
/// reference that [`Dense`] is checked against.
#[cfg_attr(not(test), allow(dead_code))]
struct Mlp {
    l1: Linear,
    l2: Linear,
    out: Linear,
}

impl Mlp {
    fn new(vb: VarBuilder) -> candle_core::Result<Mlp> {
        Ok(Mlp {
            l1: candle_nn::linear(FEATURES.len(), HIDDEN, vb.pp("l1"))?,
            l2: candle_nn::linear(HIDDEN, HIDDEN, vb.pp("l2"))?,
            out: candle_nn::linear(HIDDEN, 1, vb.pp("out"))?,
        })
    }

    /// The correction for one feature vector, in [−1, 1].
    #[cfg_attr(not(test), allow(dead_code))]
    fn correction(&self, x: &[f32]) -> candle_core::Result<f32> {
        let input = Tensor::from_slice(x, (1, x.len()), &Device::Cpu)?;
        let h = self.l1.forward(&input)?.tanh()?;
        let h = self.l2.forward(&h)?.tanh()?;
        let y = self.out.forward(&h)?.tanh()?;
        Ok(y.flatten_all()?.to_vec1::<f32>()?.first().copied().unwrap_or(0.0))
    }
}

/// The normalised inputs for an observation and the rule's state.
pub fn features(
    obs: &Observation,
    state: &StaffingState,
    rule_target: f64,
    reads_calendar: bool,
) -> Vec<f32> {
    let n = &obs.now;
    let (planned_now, planned_peak, known) = match obs.outlook.filter(|_| reads_calendar) {
        Some(o) => (o.rate_now, o.rate_peak, 1.0),
        None => (state.planned_rate, state.planned_rate, 0.0),
    };
    let raw = [
        obs.rate_1s,
        obs.rate_5s,
        obs.rate_30s,
        state.planned_rate,
        state.held_rate,
        state.volatility,
        state.service_s,
        n.queue_length as f64,
        n.queued_work_s,
        n.oldest_age_s,
        n.oldest_slack_s,
        f64::from(n.workers_live),
        f64::from(n.workers_busy),
        f64::from(n.workers_starting),
        rule_target,
        obs.window_qos,
        obs.missed_30s as f64,
        obs.startup_s,
        planned_now,
        planned_peak,
        known,
    ];
    raw.iter()
        .zip(FEATURES)
        .map(|(v, (_, scale))| ((*v as f32) / scale).clamp(-10.0, 10.0))
        .collect()
}

/// A trained guided policy (or one being trained).
pub struct GuidedPolicy {
    varmap: VarMap,
    #[cfg_attr(not(test), allow(dead_code))]
    mlp: Mlp,
    dense: Dense,
    pub params: StaffingParams,
    state: StaffingState,
    /// The mean processing time assumed before the farm shows its own.
    service_prior_s: f64,
    pub decision_period_s: f64,
    pub reads_calendar: bool,
    pub provenance: Provenance,
    label: String,
}

impl GuidedPolicy {
    /// The rule with its default parameters and a network whose output layer is zero, so the
    /// policy starts as exactly the rule; the hidden layers are seeded.
    pub fn new(seed: u64, decision_period_s: f64) -> Result<GuidedPolicy, ModelError> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let mlp = Mlp::new(vb)?;
        let mut policy = GuidedPolicy {
            varmap,
            mlp,
            dense: Dense::default(),
            params: StaffingParams::default(),
            state: StaffingState::new(Staffing::DEFAULT_SERVICE_S),
            service_prior_s: Staffing::DEFAULT_SERVICE_S,
            decision_period_s,
            reads_calendar: false,
            provenance: Provenance {
                seed,
                ..Provenance::default()
            },
            label: "guided".into(),
        };
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let mut init = Vec::new();
        for (name, v) in policy.sorted_vars() {
            let scale = if name.starts_with("out.") { 0.0 } else { 0.3 };
            init.extend((0..v.elem_count()).map(|_| (rand::Rng::gen::<f32>(&mut rng) * 2.0 - 1.0) * scale));
        }
        policy.set_weights(&init)?;
        Ok(policy)
    }

    /// The same policy assuming `service_s` as the mean processing time until it measures it
    /// (the workload's, when known).
    pub fn with_service_prior(mut self, service_s: f64) -> GuidedPolicy {
        self.set_service_prior(service_s);
        self
    }

    /// The mean processing time it assumes until it measures one, seconds.
    pub fn service_prior_s(&self) -> f64 {
        self.service_prior_s
    }

    /// [`Self::with_service_prior`] in place.
    pub fn set_service_prior(&mut self, service_s: f64) {
        self.service_prior_s = service_s.max(0.01);
        self.state = StaffingState::new(self.service_prior_s);
    }

    /// Forgets what it learned about the current farm (a new episode).
    pub fn reset(&mut self) {
        self.state = StaffingState::new(self.service_prior_s);
    }

    pub fn labelled(mut self, label: &str) -> GuidedPolicy {
        self.label = label.into();
        self
    }

    fn sorted_vars(&self) -> Vec<(String, candle_core::Var)> {
        crate::weights::sorted(&self.varmap)
    }

    /// Number of network weights.
    pub fn weight_count(&self) -> usize {
        crate::weights::count(&self.varmap)
    }

    /// The network's weights flattened in a stable order (sorted tensor names).
    pub fn weights(&self) -> Result<Vec<f32>, ModelError> {
        Ok(crate::weights::flatten(&self.varmap)?)
    }

    /// Replaces the network's weights (same order as [`Self::weights`]).
    pub fn set_weights(&mut self, flat: &[f32]) -> Result<(), ModelError> {
        crate::weights::assign(&self.varmap, flat)?;
        self.dense = Dense::from_vars(&self.sorted_vars())?;
        Ok(())
    }

    /// The rule's target and the network's correction for an observation (after updating the
    /// rule's state with it).
    pub fn evaluate(&mut self, obs: &Observation) -> (f64, f64) {
        self.state.update(obs, &self.params);
        let base = Staffing::target(&self.state, &self.params, obs);
        let x = features(obs, &self.state, base, self.reads_calendar);
        let correction = self.dense.correction(&x);
        (base, f64::from(correction * MAX_RESIDUAL))
    }

    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let p = &self.provenance;
        let join = |v: Vec<String>| v.join(",");
        let meta: HashMap<String, String> = [
            ("format_version", FORMAT_VERSION.to_string()),
            ("kind", KIND.to_string()),
            (
                "features",
                join(FEATURES.iter().map(|(n, _)| n.to_string()).collect()),
            ),
            (
                "normalisation",
                join(FEATURES.iter().map(|(_, s)| s.to_string()).collect()),
            ),
            (
                "rule_params",
                join(self.params.to_vec().iter().map(f64::to_string).collect()),
            ),
            ("rule_param_names", StaffingParams::NAMES.join(",")),
            ("service_prior_s", self.service_prior_s.to_string()),
            ("max_residual", MAX_RESIDUAL.to_string()),
            ("hidden", HIDDEN.to_string()),
            ("decision_period_s", self.decision_period_s.to_string()),
            ("reads_calendar", self.reads_calendar.to_string()),
            ("seed", p.seed.to_string()),
            ("algorithm", p.algorithm.clone()),
            ("iterations", p.iterations.to_string()),
            ("episodes", p.episodes.to_string()),
            ("workload", p.workload.clone()),
            ("code_version", p.code_version.clone()),
            ("command", p.command.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let data: Vec<(String, Tensor)> = self
            .sorted_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let views: Vec<(&str, &Tensor)> = data.iter().map(|(k, t)| (k.as_str(), t)).collect();
        safetensors::serialize_to_file(views, Some(meta), path).map_err(|e| ModelError::Format {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Whether `bytes` hold a guided policy (its metadata says `kind=guided-staffing`).
    pub fn is_guided(bytes: &[u8]) -> bool {
        safetensors::SafeTensors::read_metadata(bytes)
            .ok()
            .and_then(|(_, h)| h.metadata().clone())
            .is_some_and(|m| m.get("kind").map(String::as_str) == Some(KIND))
    }

    /// Loads a guided policy from a safetensors file's bytes; `label` names it in errors. A
    /// file of another schema is refused, naming the difference.
    pub fn from_bytes(bytes: &[u8], label: &str) -> Result<GuidedPolicy, ModelError> {
        let shown = label.to_string();
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| ModelError::Format {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
        let mismatch = |reason: String| ModelError::Mismatch {
            path: shown.clone(),
            reason,
        };
        if get("format_version") != FORMAT_VERSION || get("kind") != KIND {
            return Err(mismatch(format!(
                "format {:?} kind {:?}; this build reads {FORMAT_VERSION:?} kind {KIND:?}",
                get("format_version"),
                get("kind")
            )));
        }
        let expect = |key: &str, want: String| -> Result<(), ModelError> {
            if get(key) == want {
                Ok(())
            } else {
                Err(mismatch(format!(
                    "{key} [{}] differs from this build's [{want}]",
                    get(key)
                )))
            }
        };
        expect(
            "features",
            FEATURES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(","),
        )?;
        expect(
            "normalisation",
            FEATURES
                .iter()
                .map(|(_, s)| s.to_string())
                .collect::<Vec<_>>()
                .join(","),
        )?;
        expect("rule_param_names", StaffingParams::NAMES.join(","))?;
        expect("max_residual", MAX_RESIDUAL.to_string())?;
        expect("hidden", HIDDEN.to_string())?;
        let number = |key: &str| -> Result<f64, ModelError> {
            get(key)
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| mismatch(format!("{key} {:?} is not a number", get(key))))
        };
        let period = number("decision_period_s")?;
        if !crate::neural::PERIOD_RANGE.contains(&period) {
            return Err(mismatch(format!(
                "decision_period_s {period} is not within {:?} s",
                crate::neural::PERIOD_RANGE
            )));
        }
        let prior = number("service_prior_s")?;
        let values: Vec<f64> = get("rule_params")
            .split(',')
            .map(|v| v.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0))
            .collect::<Option<Vec<f64>>>()
            .filter(|v| v.len() == StaffingParams::NAMES.len())
            .ok_or_else(|| {
                mismatch(format!(
                    "rule_params {:?} are not {} numbers ≥ 0",
                    get("rule_params"),
                    StaffingParams::NAMES.len()
                ))
            })?;
        let reads_calendar = match get("reads_calendar").as_str() {
            "true" => true,
            "false" => false,
            other => return Err(mismatch(format!("reads_calendar {other:?} is not true or false"))),
        };
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        let mut policy = GuidedPolicy::new(0, period)?.with_service_prior(prior);
        policy.params = StaffingParams::from_slice(&values);
        policy.reads_calendar = reads_calendar;
        for (name, v) in policy.sorted_vars() {
            let t = tensors
                .get(&name)
                .ok_or_else(|| mismatch(format!("tensor {name:?} is missing")))?;
            if t.shape() != v.shape() {
                return Err(mismatch(format!(
                    "tensor {name:?} has shape {:?}, expected {:?}",
                    t.shape(),
                    v.shape()
                )));
            }
            v.set(&t.to_dtype(DType::F32)?)?;
        }
        policy.dense = Dense::from_vars(&policy.sorted_vars())?;
        policy.provenance = Provenance {
            seed: get("seed").parse().unwrap_or(0),
            algorithm: get("algorithm"),
            iterations: get("iterations").parse().unwrap_or(0),
            episodes: get("episodes").parse().unwrap_or(0),
            workload: get("workload"),
            code_version: get("code_version"),
            command: get("command"),
        };
        Ok(policy)
    }

    pub fn load(path: &Path) -> Result<GuidedPolicy, ModelError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: shown.clone(),
            source,
        })?;
        GuidedPolicy::from_bytes(&bytes, &shown)
    }
}

impl Policy for GuidedPolicy {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn decide(&mut self, obs: &Observation) -> u32 {
        let (base, correction) = self.evaluate(obs);
        (base + correction).max(0.0).ceil() as u32
    }

    fn decision_period_s(&self) -> Option<f64> {
        Some(self.decision_period_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untrained_policy_is_exactly_the_rule() {
        let mut guided = GuidedPolicy::new(3, 1.0).unwrap();
        let mut rule = Staffing::new(StaffingParams::default(), Staffing::DEFAULT_SERVICE_S);
        for (t, rate) in [(1.0, 2.0), (2.0, 6.0), (3.0, 9.0), (4.0, 1.0)] {
            let obs = Observation {
                now: crate::observe::FarmMetrics {
                    time_s: t,
                    queue_length: 3,
                    queued_work_s: 4.5,
                    workers_live: 4,
                    workers_busy: 4,
                    ..Default::default()
                },
                window_s: 1.0,
                arrival_rate: rate,
                rate_1s: rate,
                rate_5s: rate,
                rate_30s: rate,
                service_rate: 2.0,
                startup_s: 5.0,
                ..Default::default()
            };
            assert_eq!(guided.decide(&obs), rule.decide(&obs), "at {t} s");
        }
    }

    #[test]
    fn the_fast_forward_pass_agrees_with_candle() {
        let mut p = GuidedPolicy::new(9, 1.0).unwrap();
        let w: Vec<f32> = (0..p.weight_count())
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        p.set_weights(&w).unwrap();
        for k in 0..20 {
            let x: Vec<f32> = (0..FEATURES.len())
                .map(|i| ((i * 31 + k * 17) % 23) as f32 / 11.0 - 1.0)
                .collect();
            let (fast, slow) = (p.dense.correction(&x), p.mlp.correction(&x).unwrap());
            assert!((fast - slow).abs() < 1e-5, "{fast} vs {slow}");
        }
    }

    #[test]
    fn a_saved_policy_loads_back_identical_and_other_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("guided-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.safetensors");
        let mut p = GuidedPolicy::new(5, 1.0).unwrap().with_service_prior(2.0);
        let w: Vec<f32> = (0..p.weight_count())
            .map(|i| (i as f32 * 0.37).sin() * 0.2)
            .collect();
        p.set_weights(&w).unwrap();
        p.params.sqrt_spare = 1.3;
        p.save(&path).unwrap();
        let back = GuidedPolicy::load(&path).unwrap();
        assert_eq!(back.weights().unwrap(), w);
        assert_eq!(back.params, p.params);
        assert_eq!(back.service_prior_s, 2.0);
        assert!(GuidedPolicy::is_guided(&std::fs::read(&path).unwrap()));
        // A file of the older kind is not a guided policy, and says why.
        let old = crate::neural::NeuralPolicy::new_random(1, 8.0).unwrap();
        let old_path = dir.join("old.safetensors");
        old.save(&old_path).unwrap();
        let e = GuidedPolicy::load(&old_path).err().unwrap().to_string();
        assert!(e.contains("kind"), "{e}");
        // A period the node cannot run (0 would decide without pause, 1e20 overflows a timer)
        // is refused at load, for both kinds of file.
        for period in [0.0, -1.0, 1e20] {
            GuidedPolicy::new(5, period).unwrap().save(&path).unwrap();
            let e = GuidedPolicy::load(&path).err().unwrap().to_string();
            assert!(e.contains("decision_period_s"), "{e}");
            crate::neural::NeuralPolicy::new_random(1, period)
                .unwrap()
                .save(&old_path)
                .unwrap();
            let e = crate::neural::NeuralPolicy::load(&old_path)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("decision_period_s"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
