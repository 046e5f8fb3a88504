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
