//! The realised rate of a phase: its shape per window, with the seeded paths of the stochastic
//! shapes (on/off bursts, noise) and recorded per-second series averaged over each window.

use crate::config::{Pattern, Phase, Replay, WorkloadConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, StandardNormal};

/// The number of rate windows of a phase.
pub(crate) fn window_count(config: &WorkloadConfig, phase: &Phase) -> usize {
    (phase.duration_s / config.window_s).round().max(1.0) as usize
}

/// The relative arrival rate of each of a phase's windows (its shape sampled mid-window): the
/// original shapes' weights, and the declared shape of the newer deterministic ones.
pub(crate) fn window_weights(config: &WorkloadConfig, phase: &Phase) -> Vec<f64> {
    (0..window_count(config, phase))
        .map(|w| phase.shape((w as f64 + 0.5) * config.window_s, config.flat_oscillation))
        .collect()
}

/// The weights a load calendar knows: the declared shape; the mean (a flat line) of a
/// stochastic shape; and for a recorded trace its mean rate, or the plan supplied with it —
/// never the recorded seconds.
pub(crate) fn plan_weights(config: &WorkloadConfig, phase: &Phase) -> Vec<f64> {
    let windows = window_count(config, phase);
    match &phase.pattern {
        Pattern::Counts { plan: Some(p), .. } | Pattern::Arrivals { plan: Some(p), .. } => {
            per_second_to_windows(p, config.window_s, windows)
        }
        Pattern::Mmpp { .. }
        | Pattern::Noisy { .. }
        | Pattern::Trace { .. }
        | Pattern::Counts { .. }
        | Pattern::Arrivals { .. } => vec![1.0; windows],
        _ => window_weights(config, phase),
    }
}

/// The weights the generator distributes a phase's total by, for the phase seeded with
/// `seed`. The original shapes' weights are [`window_weights`], unchanged, so their tasks are
/// the same as before these shapes existed.
pub(crate) fn realised_weights(config: &WorkloadConfig, phase: &Phase, seed: u64) -> Vec<f64> {
    let windows = window_count(config, phase);
    match &phase.pattern {
        Pattern::Mmpp {
            low,
            high,
            mean_low_s,
            mean_high_s,
        } => mmpp_weights(
            &mut path_rng(seed),
            [*low, *high],
            [*mean_low_s, *mean_high_s],
            config.window_s,
            windows,
        ),
        Pattern::Noisy { sigma, correlation_s } => noise_weights(
            &mut path_rng(seed),
            *sigma,
            *correlation_s,
            config.window_s,
            windows,
        ),
        Pattern::Counts { counts, .. } => per_second_to_windows(counts, config.window_s, windows),
        Pattern::Arrivals { times_s, .. } => {
            per_second_to_windows(&per_second_counts(times_s), config.window_s, windows)
        }
        _ => window_weights(config, phase),
    }
}

/// Whether a phase's per-window counts are fixed (an exact replay) rather than drawn.
pub(crate) fn exact_replay(phase: &Phase) -> bool {
    matches!(
        phase.pattern,
        Pattern::Counts {
            replay: Replay::Exact,
            ..
        } | Pattern::Arrivals {
            replay: Replay::Exact,
            ..
        }
    )
}

/// The random stream of a stochastic shape's path: apart from the stream the tasks are drawn
/// from, so a path does not shift the tasks' sizes and offsets.
fn path_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    rng
}

/// Arrivals per whole second of `times_s` (non-negative, relative to the phase's start).
pub(crate) fn per_second_counts(times_s: &[f64]) -> Vec<f64> {
    let span = times_s.iter().copied().fold(0.0, f64::max).floor() as usize + 1;
    let mut counts = vec![0.0; span];
    for t in times_s {
        if let Some(c) = counts.get_mut(t.max(0.0).floor() as usize) {
            *c += 1.0;
        }
    }
    counts
}

/// The mean over each of `windows` windows of `window_s` of the step function that is
/// `per_second[i]` during second `i` (0 after the series).
pub(crate) fn per_second_to_windows(per_second: &[f64], window_s: f64, windows: usize) -> Vec<f64> {
    (0..windows)
        .map(|w| {
            let (start, end) = (w as f64 * window_s, (w + 1) as f64 * window_s);
            let mut sum = 0.0;
            let mut s = start.floor() as usize;
            while (s as f64) < end && s < per_second.len() {
                let overlap = (end.min(s as f64 + 1.0) - start.max(s as f64)).max(0.0);
                sum += per_second[s] * overlap;
                s += 1;
            }
            sum / window_s
        })
        .collect()
}

/// The mean level in each window of a two-state Markov path (`levels[state]`, exponential
/// sojourns with `means_s[state]`), started in its stationary distribution.
fn mmpp_weights(
    rng: &mut ChaCha8Rng,
    levels: [f64; 2],
    means_s: [f64; 2],
    window_s: f64,
    windows: usize,
) -> Vec<f64> {
    let end = windows as f64 * window_s;
    let p_high = means_s[1] / (means_s[0] + means_s[1]).max(f64::MIN_POSITIVE);
    let mut state = usize::from(rng.gen::<f64>() < p_high);
    let sojourn = [
        Exp::new(1.0 / means_s[0].max(f64::MIN_POSITIVE)).ok(),
        Exp::new(1.0 / means_s[1].max(f64::MIN_POSITIVE)).ok(),
    ];
    let mut weights = vec![0.0; windows];
    let mut t = 0.0;
    while t < end {
        let stay = sojourn[state].map_or(means_s[state], |e| e.sample(rng));
        let until = (t + stay).min(end);
        // Spread this segment's level over the windows it covers.
        let mut w = (t / window_s) as usize;
        while w < windows && (w as f64) * window_s < until {
            let lo = t.max(w as f64 * window_s);
            let hi = until.min((w + 1) as f64 * window_s);
            weights[w] += levels[state].max(0.0) * (hi - lo).max(0.0) / window_s;
            w += 1;
        }
        t = until;
        state = 1 - state;
    }
    weights
}

/// A log-normal multiplier of mean 1 per window: `exp(X − σ²/2)` with `X` a stationary
/// Gaussian AR(1) of standard deviation `sigma` and correlation time `correlation_s`.
fn noise_weights(
    rng: &mut ChaCha8Rng,
    sigma: f64,
    correlation_s: f64,
    window_s: f64,
    windows: usize,
) -> Vec<f64> {
    let rho = (-window_s / correlation_s.max(f64::MIN_POSITIVE)).exp();
    let innovation = sigma * (1.0 - rho * rho).max(0.0).sqrt();
    let first: f64 = StandardNormal.sample(rng);
    let mut x = sigma * first;
    (0..windows)
        .map(|_| {
            let level = (x - sigma * sigma / 2.0).exp();
            let z: f64 = StandardNormal.sample(rng);
            x = rho * x + innovation * z;
            level
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RatePlan;
    use crate::tasks::{TaskSpec, Workload};

    fn one_phase(base_rate_per_min: f64, duration_s: f64, pattern: Pattern) -> WorkloadConfig {
        WorkloadConfig {
            base_rate_per_min,
            phases: vec![Phase {
                name: "p".into(),
                multiplier: 1.0,
                duration_s,
                pattern,
            }],
            ..WorkloadConfig::default()
        }
    }

    fn counts_per(tasks: &[TaskSpec], window_s: f64, windows: usize) -> Vec<f64> {
        let mut c = vec![0.0; windows];
        for t in tasks {
            c[((t.arrival_s / window_s) as usize).min(windows - 1)] += 1.0;
        }
        c
    }

    #[test]
    fn deterministic_shapes_have_their_levels_as_rates() {
        // 600 tasks/min = 10/s at level 1.
        let step = one_phase(
            600.0,
            100.0,
            Pattern::Step {
                before: 0.5,
                after: 2.0,
                at_s: 40.0,
            },
        );
        step.validate().unwrap();
        let plan = RatePlan::new(&step, 1);
        assert!((plan.rate_at(10.0) - 5.0).abs() < 1e-9);
        assert!((plan.rate_at(70.0) - 20.0).abs() < 1e-9);
        let tasks: Vec<TaskSpec> = Workload::new(&step, 3).collect();
        assert_eq!(tasks.len(), 5 * 40 + 20 * 60);
        let before = tasks.iter().filter(|t| t.arrival_s < 40.0).count() as f64;
        assert!((before - 200.0).abs() < 45.0, "{before}");

        let ramp = one_phase(600.0, 100.0, Pattern::Ramp { from: 0.0, to: 2.0 });
        let tasks: Vec<TaskSpec> = Workload::new(&ramp, 3).collect();
        assert_eq!(tasks.len(), 1000);
        let plan = RatePlan::new(&ramp, 1);
        assert!((plan.rate_at(75.5) - 15.1).abs() < 1e-9, "{}", plan.rate_at(75.5));
        let c = counts_per(&tasks, 25.0, 4);
        assert!(c.windows(2).all(|w| w[0] < w[1]), "rising: {c:?}");

        // Two days, floor 0.2, peak 1.8: mean 1.0 for whole periods; troughs at the ends.
        let diurnal = one_phase(
            600.0,
            200.0,
            Pattern::Diurnal {
                floor: 0.2,
                peak: 1.8,
                periods: 2.0,
            },
        );
        let tasks: Vec<TaskSpec> = Workload::new(&diurnal, 3).collect();
        assert_eq!(tasks.len(), 2000);
        let plan = RatePlan::new(&diurnal, 1);
        assert!(plan.rate_at(0.5) < 2.1 && plan.rate_at(50.5) > 17.9);
        let c = counts_per(&tasks, 25.0, 8);
        assert!(c[1] > 2.0 * c[0] && c[2] > 2.0 * c[3], "{c:?}");
        // A fractional number of periods: the total is the shape's integral.
        let partial = Pattern::Diurnal {
            floor: 0.0,
            peak: 1.0,
            periods: 0.5,
        };
        assert!((partial.mean_level(100.0).unwrap() - 0.5).abs() < 1e-12);
        let quarter = Pattern::Diurnal {
            floor: 0.0,
            peak: 1.0,
            periods: 0.25,
        };
        let numeric: f64 = (0..100_000)
            .map(|i| (1.0 - (2.0 * std::f64::consts::PI * 0.25 * (i as f64 + 0.5) / 100_000.0).cos()) / 2.0)
            .sum::<f64>()
            / 100_000.0;
        assert!((quarter.mean_level(1.0).unwrap() - numeric).abs() < 1e-6);
    }

    #[test]
    fn on_off_bursts_are_seeded_and_planned_at_their_stationary_mean() {
        let mmpp = Pattern::Mmpp {
            low: 0.2,
            high: 3.0,
            mean_low_s: 30.0,
            mean_high_s: 10.0,
        };
        // Stationary mean (0.2·30 + 3·10)/40 = 0.9; 600 s at 10/s × 0.9 = 5400 tasks.
        let config = one_phase(600.0, 600.0, mmpp.clone());
        config.validate().unwrap();
        let a: Vec<TaskSpec> = Workload::new(&config, 7).collect();
        let b: Vec<TaskSpec> = Workload::new(&config, 7).collect();
        let c: Vec<TaskSpec> = Workload::new(&config, 8).collect();
        assert_eq!(a, b, "same seed, same path and tasks");
        assert_ne!(a, c);
        assert_eq!(a.len(), 5400);
        // The plan is the stationary mean everywhere, whatever the seed's path.
        let plan = RatePlan::new(&config, 7);
        for t in [0.5, 100.5, 599.5] {
            assert!((plan.rate_at(t) - 9.0).abs() < 1e-9);
        }
        // The realised path has two levels: per-second counts bunch around 2 and 30.
        let weights = realised_weights(&config, &config.phases[0], phase_seed_for_test(7));
        let high = weights.iter().filter(|w| **w > 1.6).count() as f64 / weights.len() as f64;
        assert!((0.1..0.45).contains(&high), "share of time on: {high}");
        // Over many paths the time share in the high state approaches 10 / 40.
        let mut share = 0.0;
        for seed in 0..200 {
            let w = realised_weights(&config, &config.phases[0], seed);
            share += w.iter().map(|x| (x - 0.2) / 2.8).sum::<f64>() / w.len() as f64;
        }
        assert!((share / 200.0 - 0.25).abs() < 0.02, "{}", share / 200.0);
    }

    fn phase_seed_for_test(seed: u64) -> u64 {
        crate::plan::phase_seed(seed, 0)
    }

    #[test]
    fn noise_has_mean_one_its_correlation_and_a_flat_plan() {
        let config = one_phase(
            600.0,
            2000.0,
            Pattern::Noisy {
                sigma: 0.5,
                correlation_s: 20.0,
            },
        );
        config.validate().unwrap();
        let tasks: Vec<TaskSpec> = Workload::new(&config, 4).collect();
        assert_eq!(tasks.len(), 20_000);
        assert_eq!(tasks, Workload::new(&config, 4).collect::<Vec<_>>());
        let plan = RatePlan::new(&config, 4);
        assert!((plan.rate_at(3.5) - 10.0).abs() < 1e-9 && (plan.rate_at(1999.5) - 10.0).abs() < 1e-9);
        let mut mean = 0.0;
        let mut lag1 = 0.0;
        let mut lag60 = 0.0;
        let runs = 40;
        for seed in 0..runs {
            let w = realised_weights(&config, &config.phases[0], seed);
            let logs: Vec<f64> = w.iter().map(|x| x.ln()).collect();
            let m = logs.iter().sum::<f64>() / logs.len() as f64;
            let var = logs.iter().map(|l| (l - m).powi(2)).sum::<f64>() / logs.len() as f64;
            let corr = |k: usize| {
                logs.windows(k + 1).map(|p| (p[0] - m) * (p[k] - m)).sum::<f64>()
                    / (logs.len() - k) as f64
                    / var
            };
            mean += w.iter().sum::<f64>() / w.len() as f64;
            lag1 += corr(1);
            lag60 += corr(60);
        }
        let n = runs as f64;
        assert!((mean / n - 1.0).abs() < 0.05, "mean multiplier {}", mean / n);
        assert!(
            (lag1 / n - (-1.0f64 / 20.0).exp()).abs() < 0.05,
            "lag 1: {}",
            lag1 / n
        );
        assert!(
            (lag60 / n - (-3.0f64).exp()).abs() < 0.08,
            "lag 60: {}",
            lag60 / n
        );
    }

    #[test]
    fn new_shapes_are_refused_with_the_field_when_out_of_range() {
        let refused = |pattern: Pattern| {
            one_phase(300.0, 60.0, pattern)
                .validate()
                .unwrap_err()
                .to_string()
        };
        let e = refused(Pattern::Step {
            before: 1.0,
            after: 1.0,
            at_s: 90.0,
        });
        assert_eq!(
            e,
            "phases[0].pattern.at_s must be a number of seconds from 0 to duration_s (60), got 90"
        );
        let e = refused(Pattern::Ramp { from: -1.0, to: 1.0 });
        assert!(
            e.starts_with("phases[0].pattern.from must be a non-negative number"),
            "{e}"
        );
        let e = refused(Pattern::Diurnal {
            floor: 2.0,
            peak: 1.0,
            periods: 1.0,
        });
        assert!(
            e.starts_with("phases[0].pattern.peak must be at least the floor (2)"),
            "{e}"
        );
        let e = refused(Pattern::Mmpp {
            low: 0.0,
            high: 1.0,
            mean_low_s: 0.001,
            mean_high_s: 5.0,
        });
        assert!(
            e.starts_with("phases[0].pattern.mean_low_s must be a number of seconds of at least 0.1"),
            "{e}"
        );
        let e = refused(Pattern::Noisy {
            sigma: 9.0,
            correlation_s: 5.0,
        });
        assert!(
            e.starts_with("phases[0].pattern.sigma must be a number from 0 to 3"),
            "{e}"
        );
        // Inconsistent traces, which used to change the workload silently.
        let e = refused(Pattern::Trace {
            weights: vec![1.0; 60],
            total: None,
        });
        assert!(
            e.starts_with("phases[0].pattern.total: a trace needs its task count"),
            "{e}"
        );
        let e = refused(Pattern::Trace {
            weights: vec![1.0; 50],
            total: Some(10),
        });
        assert_eq!(
            e,
            "phases[0].duration_s: 60 s does not match the trace's 50 weights (one per second)"
        );
        let e = refused(Pattern::Counts {
            counts: vec![1.0; 50],
            replay: Replay::Exact,
            plan: None,
        });
        assert_eq!(
            e,
            "phases[0].duration_s: 60 s does not match the trace's 50 counts (one per second)"
        );
        let e = refused(Pattern::Arrivals {
            times_s: vec![1.0, 70.0],
            processing_s: None,
            size_px: None,
            replay: Replay::Exact,
            plan: None,
        });
        assert_eq!(
            e,
            "phases[0].duration_s: 60 s ends before the trace's last arrival at 70 s"
        );
        let e = refused(Pattern::Arrivals {
            times_s: vec![1.0, 0.5],
            processing_s: None,
            size_px: None,
            replay: Replay::Exact,
            plan: None,
        });
        assert!(
            e.starts_with("phases[0].pattern.times_s[1] must be a number of seconds, not before"),
            "{e}"
        );
        let e = refused(Pattern::Arrivals {
            times_s: vec![1.0],
            processing_s: None,
            size_px: Some(vec![10]),
            replay: Replay::Exact,
            plan: None,
        });
        assert_eq!(
            e,
            "phases[0].pattern.size_px[0] must be an image size from min_size_px to max_size_px (512 to 4096), got 10"
        );
    }

    #[test]
    fn the_new_shapes_round_trip_as_workload_json() {
        let json = r#"{"kind":"mmpp","low":0.1,"high":2.5,"mean_low_s":40,"mean_high_s":8}"#;
        let p: Pattern = serde_json::from_str(json).unwrap();
        assert_eq!(
            p,
            Pattern::Mmpp {
                low: 0.1,
                high: 2.5,
                mean_low_s: 40.0,
                mean_high_s: 8.0
            }
        );
        let counts: Pattern = serde_json::from_str(r#"{"kind":"counts","counts":[1,2]}"#).unwrap();
        assert!(matches!(
            counts,
            Pattern::Counts {
                replay: Replay::Exact,
                plan: None,
                ..
            }
        ));
        for p in [
            p,
            counts,
            Pattern::Step {
                before: 1.0,
                after: 2.0,
                at_s: 3.0,
            },
            Pattern::Noisy {
                sigma: 0.3,
                correlation_s: 9.0,
            },
        ] {
            let back: Pattern = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            assert_eq!(back, p);
        }
    }
}
