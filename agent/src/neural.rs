//! The neural policy: a small candle MLP over the observation features, stored as safetensors
//! with self-describing metadata (feature schema, normalisation, action set, provenance).

use crate::observe::Observation;
use crate::policy::Policy;
use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder, VarMap};
use std::collections::HashMap;
use std::path::Path;

/// Version of the file layout and metadata keys.
pub const FORMAT_VERSION: &str = "autoscale-node/policy/2";

/// The observation features, in input order, with the constant each is divided by.
///
/// | feature | meaning | unit, window |
/// |---|---|---|
/// | `queue_length` | tasks waiting in worker_queue | tasks, now |
/// | `arrival_rate` | tasks pushed per second | tasks/s, last decision period |
/// | `service_rate` | tasks taken per second | tasks/s, last decision period |
/// | `oldest_age_s` | age of the oldest waiting task | s, now |
/// | `workers_live` | workers able to take tasks | workers, now |
/// | `workers_busy` | workers processing a task | workers, now |
/// | `workers_starting` | workers requested, not ready yet | workers, now |
/// | `window_qos` | deadline compliance of tasks completed | fraction, last period (1 if none) |
/// | `completion_mean_s` | mean completion time of tasks completed | s, last period |
/// | `load_gap` | arrival rate × 1.5 s − provisioned workers | workers, last period |
/// | `planned_rate` | the load calendar's planned arrival rate (observed rate without one) | tasks/s, now |
/// | `planned_peak_rate` | its highest planned rate until a decision now has taken effect (one period + start-up; observed rate without one) | tasks/s, ahead |
/// | `planned_gap` | planned peak rate × 1.5 s − provisioned workers | workers, ahead |
/// | `calendar_known` | 1 when the run has a load calendar, else 0 | flag |
///
/// Provisioned workers are live + starting; 1.5 s is the mean processing time of the original
/// workload, so the gaps are in workers of offered load.
pub const FEATURES: &[(&str, f32)] = &[
    ("queue_length", 50.0),
    ("arrival_rate", 10.0),
    ("service_rate", 10.0),
    ("oldest_age_s", 10.0),
    ("workers_live", 32.0),
    ("workers_busy", 32.0),
    ("workers_starting", 32.0),
    ("window_qos", 1.0),
    ("completion_mean_s", 5.0),
    ("load_gap", 16.0),
    ("planned_rate", 10.0),
    ("planned_peak_rate", 10.0),
    ("planned_gap", 16.0),
    ("calendar_known", 1.0),
];

/// Worker deltas the network chooses between.
pub const ACTIONS: &[i32] = &[-4, -2, -1, 0, 1, 2, 4];

/// Hidden layer width.
pub const HIDDEN: usize = 32;

/// The decision periods a policy file may declare, seconds (what the node and the simulator
/// can run; a file saying 0, a negative or an endless period is refused).
pub const PERIOD_RANGE: std::ops::RangeInclusive<f64> = 0.1..=3600.0;

/// Errors loading or saving a policy file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a valid safetensors file: {reason}")]
    Format { path: String, reason: String },
    #[error("{path} does not match this build: {reason}")]
    Mismatch { path: String, reason: String },
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// The feature vector (already normalised) of an observation.
pub fn features(obs: &Observation) -> Vec<f32> {
    features_with(obs, obs.outlook)
}

/// The features with `outlook` in place of the observation's own (`None`: as without a
/// calendar).
fn features_with(obs: &Observation, outlook: Option<crate::observe::Outlook>) -> Vec<f32> {
    let n = &obs.now;
    let provisioned = f64::from(n.workers_live + n.workers_starting);
    let (planned, peak, known) = match outlook {
        Some(o) => (o.rate_now, o.rate_peak, 1.0),
        None => (obs.arrival_rate, obs.arrival_rate, 0.0),
    };
    let raw = [
        n.queue_length as f64,
        obs.arrival_rate,
        obs.service_rate,
        n.oldest_age_s,
        f64::from(n.workers_live),
        f64::from(n.workers_busy),
        f64::from(n.workers_starting),
        obs.window_qos,
        obs.completion_mean_s,
        obs.arrival_rate * 1.5 - provisioned,
        planned,
        peak,
        peak * 1.5 - provisioned,
        known,
    ];
    raw.iter()
        .zip(FEATURES)
        .map(|(v, (_, scale))| (*v as f32) / scale)
        .collect()
}

/// The MLP: features → HIDDEN → HIDDEN → one score per action (tanh between layers).
pub struct Mlp {
    l1: Linear,
    l2: Linear,
    out: Linear,
}

impl Mlp {
    pub fn new(vb: VarBuilder) -> candle_core::Result<Mlp> {
        Ok(Mlp {
            l1: candle_nn::linear(FEATURES.len(), HIDDEN, vb.pp("l1"))?,
            l2: candle_nn::linear(HIDDEN, HIDDEN, vb.pp("l2"))?,
            out: candle_nn::linear(HIDDEN, ACTIONS.len(), vb.pp("out"))?,
        })
    }

    /// Scores for a batch of feature rows (`[n, FEATURES]` → `[n, ACTIONS]`).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.l1.forward(x)?.tanh()?;
        let h = self.l2.forward(&h)?.tanh()?;
        self.out.forward(&h)
    }

    /// Scores for one feature vector.
    pub fn scores(&self, x: &[f32]) -> candle_core::Result<Vec<f32>> {
        let input = Tensor::from_slice(x, (1, x.len()), &Device::Cpu)?;
        let h = self.l1.forward(&input)?.tanh()?;
        let h = self.l2.forward(&h)?.tanh()?;
        self.out.forward(&h)?.flatten_all()?.to_vec1::<f32>()
    }
}

/// Where a model came from, stored in its metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Provenance {
    pub seed: u64,
    pub algorithm: String,
    pub iterations: u64,
    pub episodes: u64,
    pub workload: String,
    pub code_version: String,
    pub command: String,
}

/// A policy network with its weights, ready to decide.
pub struct NeuralPolicy {
    pub varmap: VarMap,
    mlp: Mlp,
    pub decision_period_s: f64,
    pub provenance: Provenance,
    /// What it calls itself in reports (`neural` unless relabelled).
    label: String,
    /// Whether it was trained with the load calendar among its inputs; a network trained
    /// without one is never shown one (its calendar inputs then carry the observed rate, as in
    /// training).
    pub reads_calendar: bool,
    /// Whether it was told the calendar in every training scenario, so that it never learned
    /// to decide without one: it is then refused where no calendar is known. Metadata
    /// `needs_calendar`; a file without the key needs one if it reads one.
    pub needs_calendar: bool,
}

impl NeuralPolicy {
    /// A freshly initialised network (candle's default init, seeded through `seed`).
    pub fn new_random(seed: u64, decision_period_s: f64) -> Result<NeuralPolicy, ModelError> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let mlp = Mlp::new(vb)?;
        let mut policy = NeuralPolicy {
            varmap,
            mlp,
            decision_period_s,
            provenance: Provenance {
                seed,
                ..Provenance::default()
            },
            label: "neural".into(),
            reads_calendar: true,
            needs_calendar: false,
        };
        // candle's initialisers use their own RNG; overwrite with seeded values for determinism.
        let n = policy.parameter_count();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let init: Vec<f32> = (0..n)
            .map(|_| (rand::Rng::gen::<f32>(&mut rng) * 2.0 - 1.0) * 0.3)
            .collect();
        policy.set_parameters(&init)?;
        Ok(policy)
    }

    fn sorted_vars(&self) -> Vec<(String, candle_core::Var)> {
        crate::weights::sorted(&self.varmap)
    }

    /// Number of trainable parameters.
    pub fn parameter_count(&self) -> usize {
        crate::weights::count(&self.varmap)
    }

    /// All parameters flattened in a stable order (sorted tensor names).
    pub fn parameters(&self) -> Result<Vec<f32>, ModelError> {
        Ok(crate::weights::flatten(&self.varmap)?)
    }

    /// Replaces all parameters from a flat vector (same order as [`Self::parameters`]).
    pub fn set_parameters(&mut self, flat: &[f32]) -> Result<(), ModelError> {
        Ok(crate::weights::assign(&self.varmap, flat)?)
    }

    /// The same network under another name in reports.
    pub fn labelled(mut self, label: &str) -> NeuralPolicy {
        self.label = label.into();
        self
    }

    /// The network, for training.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The chosen worker delta for an observation.
    pub fn action(&self, obs: &Observation) -> i32 {
        let x = features_with(obs, obs.outlook.filter(|_| self.reads_calendar));
        match self.mlp.scores(&x) {
            Ok(scores) => {
                let best = scores
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(ACTIONS.len() / 2, |(i, _)| i);
                ACTIONS[best]
            }
            // A numerical failure keeps the farm as it is rather than guessing.
            Err(_) => 0,
        }
    }

    /// Writes weights and metadata.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (name, v) in self.sorted_vars() {
            tensors.insert(name, v.as_tensor().clone());
        }
        let p = &self.provenance;
        let join = |v: Vec<String>| v.join(",");
        let meta: HashMap<String, String> = [
            ("format_version", FORMAT_VERSION.to_string()),
            (
                "features",
                join(FEATURES.iter().map(|(n, _)| n.to_string()).collect()),
            ),
            (
                "normalisation",
                join(FEATURES.iter().map(|(_, s)| s.to_string()).collect()),
            ),
            ("actions", join(ACTIONS.iter().map(|a| a.to_string()).collect())),
            ("hidden", HIDDEN.to_string()),
            ("decision_period_s", self.decision_period_s.to_string()),
            ("reads_calendar", self.reads_calendar.to_string()),
            ("needs_calendar", self.needs_calendar.to_string()),
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
        let data: Vec<(String, Tensor)> = tensors.into_iter().collect();
        let views: Vec<(&str, &Tensor)> = data.iter().map(|(k, t)| (k.as_str(), t)).collect();
        safetensors::serialize_to_file(views, Some(meta), path).map_err(|e| ModelError::Format {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Loads a policy, refusing a file whose schema does not match this build.
    pub fn load(path: &Path) -> Result<NeuralPolicy, ModelError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: shown.clone(),
            source,
        })?;
        NeuralPolicy::from_bytes(&bytes, &shown)
    }

    /// Loads a policy from the bytes of a safetensors file; `label` names it in errors.
    pub fn from_bytes(bytes: &[u8], label: &str) -> Result<NeuralPolicy, ModelError> {
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
        if get("format_version") != FORMAT_VERSION {
            return Err(mismatch(format!(
                "format_version is {:?}, this build reads {FORMAT_VERSION:?}",
                get("format_version")
            )));
        }
        let want_features = FEATURES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(",");
        if get("features") != want_features {
            return Err(mismatch(format!(
                "it was trained on features [{}] but this build observes [{want_features}]",
                get("features")
            )));
        }
        let want_norm = FEATURES
            .iter()
            .map(|(_, s)| s.to_string())
            .collect::<Vec<_>>()
            .join(",");
        if get("normalisation") != want_norm {
            return Err(mismatch(format!(
                "normalisation [{}] differs from [{want_norm}]",
                get("normalisation")
            )));
        }
        let want_actions = ACTIONS
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",");
        if get("actions") != want_actions {
            return Err(mismatch(format!(
                "action set [{}] differs from [{want_actions}]",
                get("actions")
            )));
        }
        if get("hidden") != HIDDEN.to_string() {
            return Err(mismatch(format!(
                "hidden width {} differs from {HIDDEN}",
                get("hidden")
            )));
        }
        let period: f64 = get("decision_period_s")
            .parse()
            .ok()
            .filter(|p| PERIOD_RANGE.contains(p))
            .ok_or_else(|| {
                mismatch(format!(
                    "decision_period_s {:?} is not a number of seconds within {PERIOD_RANGE:?}",
                    get("decision_period_s")
                ))
            })?;
        let reads_calendar = match get("reads_calendar").as_str() {
            "true" => true,
            "false" => false,
            "" => return Err(mismatch("reads_calendar is missing".into())),
            other => return Err(mismatch(format!("reads_calendar {other:?} is not true or false"))),
        };
        let needs_calendar = match get("needs_calendar").as_str() {
            "true" => true,
            "false" => false,
            "" => reads_calendar,
            other => return Err(mismatch(format!("needs_calendar {other:?} is not true or false"))),
        };
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        let mut policy = NeuralPolicy::new_random(0, period)?;
        policy.reads_calendar = reads_calendar;
        policy.needs_calendar = needs_calendar && reads_calendar;
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
}

impl Policy for NeuralPolicy {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn decide(&mut self, obs: &Observation) -> u32 {
        let current = i64::from(obs.now.workers_live + obs.now.workers_starting);
        (current + i64::from(self.action(obs))).max(0) as u32
    }
    fn decision_period_s(&self) -> Option<f64> {
        Some(self.decision_period_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::FarmMetrics;

    fn sample_obs(q: u64, rate: f64) -> Observation {
        Observation {
            now: FarmMetrics {
                queue_length: q,
                workers_live: 8,
                workers_busy: 6,
                ..FarmMetrics::default()
            },
            arrival_rate: rate,
            window_qos: 0.9,
            ..Observation::default()
        }
    }

    #[test]
    fn safetensors_round_trip_gives_identical_decisions() {
        let dir = std::env::temp_dir().join(format!("autoscale-node-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        let mut a = NeuralPolicy::new_random(42, 8.0).unwrap();
        a.provenance.algorithm = "test".into();
        a.save(&path).unwrap();
        let b = NeuralPolicy::load(&path).unwrap();
        assert_eq!(a.parameters().unwrap(), b.parameters().unwrap());
        assert_eq!(b.provenance.algorithm, "test");
        assert!(b.reads_calendar);
        a.reads_calendar = false;
        a.save(&path).unwrap();
        assert!(!NeuralPolicy::load(&path).unwrap().reads_calendar);
        // Needing the calendar round-trips, and implies reading it.
        a.reads_calendar = true;
        a.needs_calendar = true;
        a.save(&path).unwrap();
        assert!(NeuralPolicy::load(&path).unwrap().needs_calendar);
        a.reads_calendar = false;
        a.save(&path).unwrap();
        assert!(!NeuralPolicy::load(&path).unwrap().needs_calendar);
        for (q, r) in [(0, 0.0), (5, 2.0), (40, 9.0), (120, 12.0)] {
            let o = sample_obs(q, r);
            assert_eq!(
                a.mlp.scores(&features(&o)).unwrap(),
                b.mlp.scores(&features(&o)).unwrap()
            );
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn mismatched_metadata_is_refused_with_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("autoscale-node-test-mm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("other.safetensors");
        let t = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
        let meta: HashMap<String, String> = [
            ("format_version".to_string(), FORMAT_VERSION.to_string()),
            ("features".to_string(), "queue_length,cpu_load".to_string()),
        ]
        .into_iter()
        .collect();
        safetensors::serialize_to_file(vec![("x", &t)], Some(meta), &path).unwrap();
        let err = NeuralPolicy::load(&path).err().expect("refused");
        let text = err.to_string();
        assert!(
            text.contains("trained on features [queue_length,cpu_load]"),
            "{text}"
        );
        let missing = NeuralPolicy::load(&dir.join("nope.safetensors"))
            .err()
            .expect("missing file");
        assert!(missing.to_string().contains("reading"), "{missing}");
        std::fs::write(dir.join("junk.safetensors"), b"not a model").unwrap();
        let junk = NeuralPolicy::load(&dir.join("junk.safetensors"))
            .err()
            .expect("junk");
        assert!(
            junk.to_string().contains("not a valid safetensors file"),
            "{junk}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn calendar_features_fall_back_on_the_observed_rate() {
        let col = |name: &str| FEATURES.iter().position(|(n, _)| *n == name).unwrap();
        let mut o = sample_obs(5, 2.0);
        o.now.workers_starting = 2;
        let blind = features(&o);
        // No calendar: the planned rates are the observed one, the flag is off.
        assert_eq!(blind[col("planned_rate")], blind[col("arrival_rate")]);
        assert_eq!(blind[col("planned_peak_rate")], blind[col("arrival_rate")]);
        assert_eq!(blind[col("planned_gap")], blind[col("load_gap")]);
        assert_eq!(blind[col("calendar_known")], 0.0);
        o.outlook = Some(crate::observe::Outlook {
            rate_now: 1.5,
            rate_peak: 7.5,
        });
        let told = features(&o);
        assert_eq!(told[col("planned_rate")], 0.15);
        assert_eq!(told[col("planned_peak_rate")], 0.75);
        // 7.5 tasks/s × 1.5 s − (8 live + 2 starting) = 1.25 workers short, over 16.
        assert!((told[col("planned_gap")] - 1.25 / 16.0).abs() < 1e-6);
        assert_eq!(told[col("calendar_known")], 1.0);
        // The farm's own metrics do not depend on the calendar.
        assert_eq!(told[..col("planned_rate")], blind[..col("planned_rate")]);
    }

    #[test]
    fn seeded_initialisation_is_deterministic() {
        let a = NeuralPolicy::new_random(3, 8.0).unwrap().parameters().unwrap();
        let b = NeuralPolicy::new_random(3, 8.0).unwrap().parameters().unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.len(),
            FEATURES.len() * HIDDEN
                + HIDDEN
                + HIDDEN * HIDDEN
                + HIDDEN
                + HIDDEN * ACTIONS.len()
                + ACTIONS.len()
        );
    }
}
