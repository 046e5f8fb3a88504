//! Randomised workloads for training: several phases, each of a family drawn at random (steady,
//! step, ramp, slow and fast oscillation, diurnal, spikes, on/off bursts, noise) with random
//! parameters, and a base rate chosen so that the whole run's mean offered load is a drawn
//! number of workers.

use crate::config::{Pattern, Phase, WorkloadConfig};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A family of phase shapes the sampler draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Steady,
    Step,
    Ramp,
    /// Periods of a quarter to twice the phase.
    SlowOscillation,
    /// Periods of 10–40 s.
    FastOscillation,
    /// One to three smooth cycles with a floor, over a longer phase.
    Diurnal,
    /// Evenly spaced spikes (the `burst` shape).
    Spikes,
    /// On/off bursts, a Markov-modulated Poisson process (the `mmpp` shape).
    OnOff,
    /// A log-normal AR(1) rate multiplier (the `noisy` shape).
    Noisy,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 9] = [
        Family::Steady,
        Family::Step,
        Family::Ramp,
        Family::SlowOscillation,
        Family::FastOscillation,
        Family::Diurnal,
        Family::Spikes,
        Family::OnOff,
        Family::Noisy,
    ];
}

/// What [`sample_workload`] draws from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FamilyConfig {
    /// The families phases are drawn from (uniformly); empty means every family.
    pub families: Vec<Family>,
    /// Phases per workload, drawn uniformly from `min_phases..=max_phases`.
    pub min_phases: usize,
    pub max_phases: usize,
    /// Length of an ordinary phase in seconds, uniform in this range (diurnal phases are
    /// twice as long).
    pub phase_duration_s: (f64, f64),
    /// The run's mean offered load in workers (mean arrival rate × mean processing time),
    /// log-uniform in this range.
    pub mean_load_workers: (f64, f64),
    /// The workload's mean processing time in seconds (the generator's default 1.5).
    pub mean_processing_s: f64,
}

impl Default for FamilyConfig {
    fn default() -> Self {
        FamilyConfig {
            families: Family::ALL.to_vec(),
            min_phases: 1,
            max_phases: 4,
            phase_duration_s: (60.0, 180.0),
            mean_load_workers: (2.0, 25.0),
            mean_processing_s: 1.5,
        }
    }
}

/// A random multi-phase workload drawn with `rng` (same state, same workload). Every phase's
/// multiplier varies around 1 (0.5–1.5) and the base rate is set so that the run's mean
/// offered load, `Σ tasks × mean_processing_s / duration`, is the drawn number of workers.
pub fn sample_workload(rng: &mut impl Rng, config: &FamilyConfig) -> WorkloadConfig {
    let families: &[Family] = if config.families.is_empty() {
        &Family::ALL
    } else {
        &config.families
    };
    let (lo, hi) = ordered(config.min_phases.max(1), config.max_phases.max(1));
    let count = rng.gen_range(lo..=hi);
    let (d_lo, d_hi) = ordered(
        config.phase_duration_s.0.max(1.0),
        config.phase_duration_s.1.max(1.0),
    );
    let phases: Vec<Phase> = (0..count)
        .map(|i| {
            let family = *families.choose(rng).unwrap_or(&Family::Steady);
            let mut duration_s = uniform(rng, d_lo, d_hi).round();
            if family == Family::Diurnal {
                duration_s *= 2.0;
            }
            Phase {
                name: format!("{} {}", family_name(family), i + 1),
                multiplier: uniform(rng, 0.5, 1.5),
                duration_s,
                pattern: draw_pattern(rng, family, duration_s),
            }
        })
        .collect();
    let (l_lo, l_hi) = ordered(
        config.mean_load_workers.0.max(0.01),
        config.mean_load_workers.1.max(0.01),
    );
    let load = (uniform(rng, l_lo.ln(), l_hi.ln())).exp();
    // Relative tasks per second, averaged over the run, at a base rate of 60/min (1/s).
    let duration: f64 = phases.iter().map(|p| p.duration_s).sum();
    let relative: f64 = phases
        .iter()
        .map(|p| p.multiplier * p.pattern.mean_level(p.duration_s).unwrap_or(1.0) * p.duration_s)
        .sum::<f64>()
        / duration;
    let rate_per_s = load / config.mean_processing_s.max(1e-9);
    WorkloadConfig {
        base_rate_per_min: rate_per_s * 60.0 / relative.max(1e-9),
        phases,
        mean_processing_s: config.mean_processing_s,
        ..WorkloadConfig::default()
    }
}

/// The run's mean offered load in workers: its tasks × the mean processing time ÷ its length
/// (what a farm needs on average, before any queueing).
pub fn mean_offered_load(config: &WorkloadConfig) -> f64 {
    let tasks: f64 = config
        .phases
        .iter()
        .map(|p| p.target_tasks(config.base_rate_per_min) as f64)
        .sum();
    let duration: f64 = config.phases.iter().map(|p| p.duration_s).sum();
    tasks * config.mean_processing_s / duration.max(1e-9)
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::Steady => "Steady",
        Family::Step => "Step",
        Family::Ramp => "Ramp",
        Family::SlowOscillation => "Slow Oscillation",
        Family::FastOscillation => "Fast Oscillation",
        Family::Diurnal => "Diurnal",
        Family::Spikes => "Spikes",
        Family::OnOff => "On/Off",
        Family::Noisy => "Noisy",
    }
}

fn draw_pattern(rng: &mut impl Rng, family: Family, duration_s: f64) -> Pattern {
    match family {
        Family::Steady => Pattern::Steady,
        Family::Step => {
            let before = uniform(rng, 0.3, 2.0);
            // At least a 40 % change, up or down.
            let after = if rng.gen_bool(0.5) {
                before * uniform(rng, 1.4, 3.0)
            } else {
                before / uniform(rng, 1.4, 3.0)
            };
            Pattern::Step {
                before,
                after,
                at_s: (duration_s * uniform(rng, 0.2, 0.8)).round(),
            }
        }
        Family::Ramp => {
            let (a, b) = (uniform(rng, 0.1, 0.8), uniform(rng, 1.2, 2.5));
            let (from, to) = if rng.gen_bool(0.5) { (a, b) } else { (b, a) };
            Pattern::Ramp { from, to }
        }
        Family::SlowOscillation | Family::FastOscillation => {
            let min = uniform(rng, 0.1, 0.7);
            let max = uniform(rng, 1.3, 2.0);
            let period_s = if family == Family::SlowOscillation {
                duration_s * uniform(rng, 0.25, 2.0)
            } else {
                uniform(rng, 10.0, 40.0)
            };
            Pattern::Oscillation {
                min,
                max,
                cycles: duration_s / period_s,
            }
        }
        Family::Diurnal => Pattern::Diurnal {
            floor: uniform(rng, 0.1, 0.5),
            peak: uniform(rng, 1.5, 2.5),
            periods: rng.gen_range(1..=3) as f64,
        },
        Family::Spikes => Pattern::Burst {
            height: uniform(rng, 2.0, 5.0),
            width_s: uniform(rng, 2.0, 8.0),
            count: rng.gen_range(1..=4),
        },
        Family::OnOff => Pattern::Mmpp {
            low: uniform(rng, 0.0, 0.5),
            high: uniform(rng, 2.0, 5.0),
            mean_low_s: uniform(rng, 10.0, 60.0),
            mean_high_s: uniform(rng, 3.0, 20.0),
        },
        Family::Noisy => Pattern::Noisy {
            sigma: uniform(rng, 0.2, 0.8),
            correlation_s: uniform(rng, 5.0, 60.0),
        },
    }
}

fn ordered<T: PartialOrd>(a: T, b: T) -> (T, T) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    if hi > lo {
        rng.gen_range(lo..hi)
    } else {
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Workload;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashSet;

    #[test]
    fn sampled_workloads_are_valid_seeded_and_span_the_loads_asked() {
        let config = FamilyConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut seen = HashSet::new();
        let (mut lowest, mut highest) = (f64::INFINITY, 0.0f64);
        for _ in 0..400 {
            let w = sample_workload(&mut rng, &config);
            w.validate().unwrap();
            assert!((1..=4).contains(&w.phases.len()));
            let load = mean_offered_load(&w);
            // Whole-task rounding moves the load a little below the drawn one.
            assert!((1.9..=25.0).contains(&load), "{load}");
            lowest = lowest.min(load);
            highest = highest.max(load);
            for p in &w.phases {
                seen.insert(p.pattern.kind());
            }
        }
        assert!(lowest < 2.5 && highest > 20.0, "{lowest}..{highest}");
        assert_eq!(seen.len(), 8, "every shape appears: {seen:?}");
        let draw = |seed| sample_workload(&mut ChaCha8Rng::seed_from_u64(seed), &config);
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
    }

    #[test]
    fn the_sampled_load_is_the_generated_one() {
        // The tasks the generator gives carry the load the sampler aimed at (Gamma(4) times,
        // clamped to the model's range, average ≈1.47 s against the nominal 1.5 s).
        let config = FamilyConfig {
            families: vec![Family::OnOff, Family::Diurnal, Family::Step],
            mean_load_workers: (10.0, 10.0),
            ..FamilyConfig::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for seed in 0..20 {
            let w = sample_workload(&mut rng, &config);
            assert!((mean_offered_load(&w) - 10.0).abs() < 0.1);
            let tasks: Vec<_> = Workload::new(&w, seed).collect();
            let duration: f64 = w.phases.iter().map(|p| p.duration_s).sum();
            let load = tasks.iter().map(|t| t.processing_s).sum::<f64>() / duration;
            assert!((load - 10.0).abs() < 1.0, "{load}");
        }
    }
}
