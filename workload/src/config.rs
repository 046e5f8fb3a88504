//! What shapes a workload: its phases, their arrival-rate patterns, and the task-size model.

use serde::{Deserialize, Serialize};

/// Shape of the arrival rate inside a phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pattern {
    /// Constant rate.
    Steady,
    /// `mid + amp·sin(2π·cycles·t/duration)` between `min` and `max` (multipliers of the rate).
    Oscillation { min: f64, max: f64, cycles: f64 },
    /// A base rate with `count` evenly spaced spikes `height` times the base, `width_s` wide.
    Burst { height: f64, width_s: f64, count: u32 },
    /// A recorded trace: relative rate per second (`weights[i]` for second `i`); `total`, when
    /// set (timestamp traces), replaces the phase's computed task count.
    Trace { weights: Vec<f64>, total: Option<usize> },
}

/// One phase of the workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    /// Multiplier of the base rate; the phase's task total is `int(base·mult·duration/60)`.
    pub multiplier: f64,
    pub duration_s: f64,
    pub pattern: Pattern,
}

/// The calibrated processing-time model `t = a·size² + b` (seconds, pixels).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibratedModel {
    pub a: f64,
    pub b: f64,
}

impl Default for CalibratedModel {
    fn default() -> Self {
        CalibratedModel {
            a: 1.709_901_320_534_612_5e-7,
            b: 0.001_665_477_754_040_911_6,
        }
    }
}

/// Everything that shapes the generated tasks. Defaults equal the original system's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadConfig {
    pub base_rate_per_min: f64,
    pub window_s: f64,
    pub phases: Vec<Phase>,
    /// Shuffle the phase order with the seed.
    pub shuffle_phases: bool,
    /// Ignore oscillation shapes (the original's behaviour, which never applied them).
    pub flat_oscillation: bool,
    pub gamma_shape: f64,
    pub mean_processing_s: f64,
    pub model: CalibratedModel,
    pub min_size_px: u32,
    pub max_size_px: u32,
    pub deadline_factor: f64,
    pub min_deadline_s: f64,
    pub max_deadline_s: f64,
    /// Multiplies every duration (gaps, processing times, deadlines, phase lengths).
    pub time_scale: f64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        let phase = |name: &str, multiplier, pattern| Phase {
            name: name.into(),
            multiplier,
            duration_s: 60.0,
            pattern,
        };
        WorkloadConfig {
            base_rate_per_min: 300.0,
            window_s: 1.0,
            phases: vec![
                phase("Steady Low", 0.3, Pattern::Steady),
                phase("Steady High", 1.5, Pattern::Steady),
                phase(
                    "Slow Oscillation",
                    1.0,
                    Pattern::Oscillation {
                        min: 0.5,
                        max: 1.5,
                        cycles: 1.0,
                    },
                ),
                phase(
                    "Fast Oscillation",
                    1.0,
                    Pattern::Oscillation {
                        min: 0.3,
                        max: 1.7,
                        cycles: 4.0,
                    },
                ),
            ],
            shuffle_phases: false,
            flat_oscillation: false,
            gamma_shape: 4.0,
            mean_processing_s: 1.5,
            model: CalibratedModel::default(),
            min_size_px: 512,
            max_size_px: 4096,
            deadline_factor: 2.0,
            min_deadline_s: 0.1,
            max_deadline_s: 30.0,
            time_scale: 1.0,
        }
    }
}

impl Phase {
    /// The phase's exact task total, as the original computed it.
    pub fn target_tasks(&self, base_rate_per_min: f64) -> usize {
        if let Pattern::Trace { total: Some(n), .. } = &self.pattern {
            return *n;
        }
        (base_rate_per_min * self.multiplier * self.duration_s / 60.0)
            .floor()
            .max(0.0) as usize
    }

    /// Relative arrival rate at time `t` seconds into the phase.
    pub(crate) fn shape(&self, t: f64, flat_oscillation: bool) -> f64 {
        match &self.pattern {
            Pattern::Steady => 1.0,
            Pattern::Oscillation { .. } if flat_oscillation => 1.0,
            Pattern::Oscillation { min, max, cycles } => {
                let (mid, amp) = ((min + max) / 2.0, (max - min) / 2.0);
                (mid + amp * (2.0 * std::f64::consts::PI * cycles * t / self.duration_s).sin()).max(0.0)
            }
            Pattern::Trace { weights, .. } => {
                let i = (t.max(0.0).floor() as usize).min(weights.len().saturating_sub(1));
                weights.get(i).copied().unwrap_or(1.0)
            }
            Pattern::Burst {
                height,
                width_s,
                count,
            } => {
                if *count == 0 {
                    return 1.0;
                }
                let spacing = self.duration_s / f64::from(*count);
                let centre = (t / spacing).floor() * spacing + spacing / 2.0;
                if (t - centre).abs() <= width_s / 2.0 {
                    height.max(0.0)
                } else {
                    1.0
                }
            }
        }
    }
}
