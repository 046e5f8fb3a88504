//! What shapes a workload: its phases, their arrival-rate patterns, and the task-size model.

use serde::{Deserialize, Serialize};

/// Shape of the arrival rate inside a phase.
///
/// The original shapes (`steady`, `oscillation`, `burst`, `trace`) only distribute the phase's
/// task total, `int(base · multiplier · duration / 60)`. The levels of the newer shapes
/// (`step`, `ramp`, `diurnal`, `mmpp`) are multipliers of `base · multiplier` themselves, so
/// their total is that rate integrated over the shape; `noisy` has mean 1. A recorded trace
/// (`counts`, `arrivals`) carries its own count and ignores the base rate and multiplier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pattern {
    /// Constant rate.
    Steady,
    /// `mid + amp·sin(2π·cycles·t/duration)` between `min` and `max` (multipliers of the rate).
    Oscillation { min: f64, max: f64, cycles: f64 },
    /// A base rate with `count` evenly spaced spikes `height` times the base, `width_s` wide.
    Burst { height: f64, width_s: f64, count: u32 },
    /// A recorded trace: relative rate per second (`weights[i]` for second `i`), redrawn
    /// around those rates with exactly `total` tasks (required: a trace's count does not follow
    /// from the base rate). Its load calendar is its mean rate, not the recorded seconds.
    Trace { weights: Vec<f64>, total: Option<usize> },
    /// A level change: `before` × the rate until `at_s` seconds into the phase, `after` × it
    /// from then on.
    Step { before: f64, after: f64, at_s: f64 },
    /// A linear change from `from` × the rate at the phase's start to `to` × at its end.
    Ramp { from: f64, to: f64 },
    /// A day-like cycle starting at its trough: `floor + (peak − floor)·(1 − cos(2π·periods·
    /// t/duration))/2` × the rate; `periods` cycles per phase.
    Diurnal { floor: f64, peak: f64, periods: f64 },
    /// On/off bursts, a Markov-modulated Poisson process: the rate switches between `low` and
    /// `high` × the rate, staying in each state an exponential time with mean `mean_low_s` /
    /// `mean_high_s`; the first state is drawn from the stationary distribution. The path is
    /// drawn from the phase's seed; the phase's total is its stationary mean × duration (the
    /// arrivals are the process conditioned on that total), and its load calendar is that
    /// mean, never the realised states.
    Mmpp {
        low: f64,
        high: f64,
        mean_low_s: f64,
        mean_high_s: f64,
    },
    /// Trace-like noise: the rate times `exp(X − sigma²/2)` (mean 1), `X` a stationary
    /// Gaussian AR(1) process with standard deviation `sigma` and autocorrelation
    /// `exp(−Δt / correlation_s)`, drawn from the phase's seed. Its load calendar is flat.
    Noisy { sigma: f64, correlation_s: f64 },
    /// A recorded per-second series: `counts[i]` tasks in second `i` (whole numbers for an
    /// exact replay; any non-negative rates when resampled). See [`Replay`].
    Counts {
        counts: Vec<f64>,
        #[serde(default)]
        replay: Replay,
        /// The load calendar of the phase, a relative rate per second (a separately supplied
        /// plan); default: the trace's mean rate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<Vec<f64>>,
    },
    /// Recorded arrivals: `times_s[i]` seconds into the phase (non-decreasing), optionally
    /// with each task's processing time (seconds) or image size (pixels); otherwise the
    /// calibrated model draws them. See [`Replay`].
    Arrivals {
        times_s: Vec<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        processing_s: Option<Vec<f64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_px: Option<Vec<u32>>,
        #[serde(default)]
        replay: Replay,
        /// As for `counts`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<Vec<f64>>,
    },
}

/// How a recorded trace is replayed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replay {
    /// Every second's count (or every timestamp) exactly as recorded.
    #[default]
    Exact,
    /// A Poisson count per window around the recorded per-second rate, keeping only the total
    /// exact (the generator's treatment of every other shape).
    Resampled,
}

impl std::str::FromStr for Replay {
    type Err = String;
    fn from_str(s: &str) -> Result<Replay, String> {
        match s {
            "exact" => Ok(Replay::Exact),
            "resampled" => Ok(Replay::Resampled),
            other => Err(format!("unknown replay mode {other:?}: use exact or resampled")),
        }
    }
}

impl std::fmt::Display for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Replay::Exact => "exact",
            Replay::Resampled => "resampled",
        })
    }
}

impl Pattern {
    /// The mean level of the shapes whose levels are rate multipliers (see [`Pattern`]) over a
    /// phase of `duration_s`; `None` for the shapes that only distribute a total.
    pub fn mean_level(&self, duration_s: f64) -> Option<f64> {
        match self {
            Pattern::Step { before, after, at_s } => {
                let at = at_s.clamp(0.0, duration_s.max(0.0));
                Some(if duration_s > 0.0 {
                    (before * at + after * (duration_s - at)) / duration_s
                } else {
                    *before
                })
            }
            Pattern::Ramp { from, to } => Some((from + to) / 2.0),
            Pattern::Diurnal { floor, peak, periods } => {
                // The mean of (1 − cos 2πpx)/2 over x in [0, 1].
                let x = 2.0 * std::f64::consts::PI * periods;
                let raised = if x.abs() < 1e-12 {
                    0.0
                } else {
                    0.5 - x.sin() / (2.0 * x)
                };
                Some(floor + (peak - floor) * raised)
            }
            Pattern::Mmpp {
                low,
                high,
                mean_low_s,
                mean_high_s,
            } => {
                let total = mean_low_s + mean_high_s;
                Some(if total > 0.0 {
                    (low * mean_low_s + high * mean_high_s) / total
                } else {
                    (low + high) / 2.0
                })
            }
            Pattern::Noisy { .. } => Some(1.0),
            Pattern::Steady
            | Pattern::Oscillation { .. }
            | Pattern::Burst { .. }
            | Pattern::Trace { .. }
            | Pattern::Counts { .. }
            | Pattern::Arrivals { .. } => None,
        }
    }

    /// Whether the realised rate is drawn from the phase's seed (its plan is its mean).
    pub fn is_stochastic(&self) -> bool {
        matches!(self, Pattern::Mmpp { .. } | Pattern::Noisy { .. })
    }

    /// Whether this is a recorded trace, whose count is its own.
    pub fn is_recorded(&self) -> bool {
        matches!(
            self,
            Pattern::Trace { .. } | Pattern::Counts { .. } | Pattern::Arrivals { .. }
        )
    }

    /// The name of its `kind` as a workload file writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            Pattern::Steady => "steady",
            Pattern::Oscillation { .. } => "oscillation",
            Pattern::Burst { .. } => "burst",
            Pattern::Trace { .. } => "trace",
            Pattern::Step { .. } => "step",
            Pattern::Ramp { .. } => "ramp",
            Pattern::Diurnal { .. } => "diurnal",
            Pattern::Mmpp { .. } => "mmpp",
            Pattern::Noisy { .. } => "noisy",
            Pattern::Counts { .. } => "counts",
            Pattern::Arrivals { .. } => "arrivals",
        }
    }
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
    /// The phase's exact task total, as the original computed it (see [`Pattern`] for the
    /// shapes whose levels multiply the rate, and the recorded ones with their own count).
    pub fn target_tasks(&self, base_rate_per_min: f64) -> usize {
        match &self.pattern {
            Pattern::Trace { total: Some(n), .. } => *n,
            Pattern::Arrivals { times_s, .. } => times_s.len(),
            _ => self.task_count(base_rate_per_min) as usize,
        }
    }

    /// The phase's task total as an unbounded number (not saturated), so that a nonsensical
    /// configuration can be reported as it is.
    pub fn task_count(&self, base_rate_per_min: f64) -> f64 {
        match &self.pattern {
            Pattern::Trace { total: Some(n), .. } => return *n as f64,
            Pattern::Counts { counts, .. } => return counts.iter().sum::<f64>().round().max(0.0),
            Pattern::Arrivals { times_s, .. } => return times_s.len() as f64,
            _ => {}
        }
        let tasks = base_rate_per_min * self.multiplier * self.duration_s / 60.0;
        match self.pattern.mean_level(self.duration_s) {
            Some(level) => (tasks * level).floor().max(0.0),
            None => tasks.floor().max(0.0),
        }
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
            Pattern::Step { before, after, at_s } => {
                if t < *at_s {
                    before.max(0.0)
                } else {
                    after.max(0.0)
                }
            }
            Pattern::Ramp { from, to } => {
                let x = if self.duration_s > 0.0 {
                    (t / self.duration_s).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                (from + (to - from) * x).max(0.0)
            }
            Pattern::Diurnal { floor, peak, periods } => {
                let x = 2.0 * std::f64::consts::PI * periods * t / self.duration_s;
                (floor + (peak - floor) * (1.0 - x.cos()) / 2.0).max(0.0)
            }
            Pattern::Counts { counts, .. } => {
                let i = (t.max(0.0).floor() as usize).min(counts.len().saturating_sub(1));
                counts.get(i).copied().unwrap_or(0.0)
            }
            // Their realised rate is drawn from the seed, and their plan is their mean; a
            // recorded arrival list is replayed from its times.
            Pattern::Mmpp { .. } | Pattern::Noisy { .. } | Pattern::Arrivals { .. } => 1.0,
        }
    }
}
