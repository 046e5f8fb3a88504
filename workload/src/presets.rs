//! Named evaluation workloads: the original four phases (as configured, shuffled, at other base
//! rates), one workload per family of shapes, and two recorded request traces.
//!
//! The shaped presets run 8–10 minutes at a mean of about 5 tasks per second (≈7.5 workers at
//! 1.5 s per task), as the original does, so that results compare across them.

use crate::config::{Pattern, Phase, Replay, WorkloadConfig};
use crate::trace::load_trace;

/// A named workload and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub description: &'static str,
}

/// Every preset, in the order `--help` lists them.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "original",
        description: "the original four phases, 300 tasks/min base, 240 s, 1140 tasks",
    },
    Preset {
        name: "shuffled",
        description: "the original phases in a seeded random order per episode",
    },
    Preset {
        name: "rate200",
        description: "the original phases at 200 tasks/min base",
    },
    Preset {
        name: "rate400-shuffled",
        description: "the original phases at 400 tasks/min base, shuffled",
    },
    Preset {
        name: "diurnal",
        description: "900 s, three day-like cycles from 0.2x to 1.8x of 5 tasks/s",
    },
    Preset {
        name: "ramp",
        description: "600 s, a linear ramp from 1 to 10 tasks/s and back",
    },
    Preset {
        name: "step",
        description: "480 s, a step from 2 to 9 tasks/s and back",
    },
    Preset {
        name: "slow-oscillation",
        description: "600 s, a 300 s sine between 1.5 and 8.5 tasks/s",
    },
    Preset {
        name: "fast-oscillation",
        description: "600 s, a 20 s sine between 1.5 and 8.5 tasks/s",
    },
    Preset {
        name: "bursty-mmpp",
        description: "600 s, on/off bursts: 2 tasks/s for ~40 s, 15 tasks/s for ~10 s (MMPP)",
    },
    Preset {
        name: "noisy",
        description: "600 s, 5 tasks/s times log-normal AR(1) noise (sigma 0.6, 30 s correlation)",
    },
    Preset {
        name: "trace-smooth",
        description: "recorded requests (NASA-HTTP, 1 Aug 1995): 63 minutes of per-minute counts as 600 s at 5.5/s mean, peak 14/s, exact replay (traces/README.md)",
    },
    Preset {
        name: "trace-bursty",
        description: "recorded requests (NASA-HTTP, 1 Aug 1995): every request of the same 63 minutes compressed to 274 s (5.5/s mean), exact timestamps (traces/README.md)",
    },
];

/// The smooth recorded trace, per-second counts (the CSV in `traces/`).
pub const TRACE_SMOOTH_CSV: &str = include_str!("../../traces/nasa-smooth.csv");
/// The bursty recorded trace, arrival timestamps (the CSV in `traces/`).
pub const TRACE_BURSTY_CSV: &str = include_str!("../../traces/nasa-bursty.csv");

/// Why a preset name was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PresetError {
    #[error("unknown workload preset {name:?}; choose one of: {}", names().collect::<Vec<_>>().join(", "))]
    Unknown { name: String },
    #[error("the built-in trace of preset {name:?} does not load: {reason}")]
    BadTrace { name: String, reason: String },
}

/// The names of every preset.
pub fn names() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|p| p.name)
}

/// The workload called `name`.
pub fn preset(name: &str) -> Result<WorkloadConfig, PresetError> {
    let original = WorkloadConfig::default;
    // 300 tasks/min base: level 1 is 5 tasks/s.
    let shaped = |phases: Vec<Phase>| WorkloadConfig {
        phases,
        ..WorkloadConfig::default()
    };
    let phase = |name: &str, duration_s: f64, pattern: Pattern| Phase {
        name: name.into(),
        multiplier: 1.0,
        duration_s,
        pattern,
    };
    let trace = |csv: &str, phase_name: &str| {
        load_trace(csv, Replay::Exact)
            .map(|t| shaped(vec![t.phase(phase_name)]))
            .map_err(|e| PresetError::BadTrace {
                name: name.into(),
                reason: e.to_string(),
            })
    };
    Ok(match name {
        "original" => original(),
        "shuffled" => WorkloadConfig {
            shuffle_phases: true,
            ..original()
        },
        "rate200" => WorkloadConfig {
            base_rate_per_min: 200.0,
            ..original()
        },
        "rate400-shuffled" => WorkloadConfig {
            base_rate_per_min: 400.0,
            shuffle_phases: true,
            ..original()
        },
        "diurnal" => shaped(vec![phase(
            "Diurnal",
            900.0,
            Pattern::Diurnal {
                floor: 0.2,
                peak: 1.8,
                periods: 3.0,
            },
        )]),
        "ramp" => shaped(vec![
            phase("Ramp Up", 300.0, Pattern::Ramp { from: 0.2, to: 2.0 }),
            phase("Ramp Down", 300.0, Pattern::Ramp { from: 2.0, to: 0.2 }),
        ]),
        "step" => shaped(vec![
            phase(
                "Step Up",
                240.0,
                Pattern::Step {
                    before: 0.4,
                    after: 1.8,
                    at_s: 120.0,
                },
            ),
            phase(
                "Step Down",
                240.0,
                Pattern::Step {
                    before: 1.8,
                    after: 0.4,
                    at_s: 120.0,
                },
            ),
        ]),
        "slow-oscillation" => shaped(vec![phase(
            "Slow Oscillation",
            600.0,
            Pattern::Oscillation {
                min: 0.3,
                max: 1.7,
                cycles: 2.0,
            },
        )]),
        "fast-oscillation" => shaped(vec![phase(
            "Fast Oscillation",
            600.0,
            Pattern::Oscillation {
                min: 0.3,
                max: 1.7,
                cycles: 30.0,
            },
        )]),
        "bursty-mmpp" => shaped(vec![phase(
            "On/Off Bursts",
            600.0,
            Pattern::Mmpp {
                low: 0.4,
                high: 3.0,
                mean_low_s: 40.0,
                mean_high_s: 10.0,
            },
        )]),
        "noisy" => shaped(vec![phase(
            "Noisy",
            600.0,
            Pattern::Noisy {
                sigma: 0.6,
                correlation_s: 30.0,
            },
        )]),
        "trace-smooth" => trace(TRACE_SMOOTH_CSV, "Trace (smooth)")?,
        "trace-bursty" => trace(TRACE_BURSTY_CSV, "Trace (bursty)")?,
        _ => return Err(PresetError::Unknown { name: name.into() }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::mean_offered_load;
    use crate::tasks::Workload;

    #[test]
    fn every_preset_builds_validates_and_carries_its_load() {
        for p in PRESETS {
            let w = preset(p.name).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            w.validate().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            let load = mean_offered_load(&w);
            assert!((2.0..=15.0).contains(&load), "{}: {load} workers", p.name);
            let tasks = Workload::new(&w, 1).count();
            assert!(tasks >= 760, "{}: {tasks}", p.name);
        }
        assert_eq!(preset("original").unwrap(), WorkloadConfig::default());
        let e = preset("nope").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown workload preset \"nope\"; choose one of: original, shuffled, rate200"),
            "{e}"
        );
        assert!(e.ends_with("trace-smooth, trace-bursty"), "{e}");
    }
}
