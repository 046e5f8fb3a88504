//! The order and seeds of a run's phases, and its planned arrival rate (the load calendar).

use crate::config::WorkloadConfig;
use crate::modulation::plan_weights;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};

/// The order in which phases run: as configured, or shuffled with `seed`.
pub fn phase_order(config: &WorkloadConfig, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..config.phases.len()).collect();
    if config.shuffle_phases {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    order
}

/// The task seed of the phase at `position` in a run seeded with `seed`.
pub fn phase_seed(seed: u64, position: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(position as u64 + 1)
        .rotate_left(17)
}

/// The planned arrival rate of a run: what a load calendar knows in advance (the phase order,
/// each phase's task total and declared rate shape), without the randomness of the actual
/// arrivals: a stochastic shape (on/off bursts, noise) plans its mean, and a recorded trace its
/// mean rate or the plan supplied with it, never the recorded seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct RatePlan {
    /// Tasks per second in consecutive windows of `window_s` (time-scaled).
    rates: Vec<f64>,
    window_s: f64,
}

impl RatePlan {
    /// The plan of the run seeded with `seed` (the seed only matters for shuffled phases).
    pub fn new(config: &WorkloadConfig, seed: u64) -> RatePlan {
        let scale = config.time_scale.max(1e-9);
        let mut rates = Vec::new();
        for p in phase_order(config, seed) {
            let phase = &config.phases[p];
            let weights = plan_weights(config, phase);
            let sum: f64 = weights.iter().sum();
            let total = phase.target_tasks(config.base_rate_per_min) as f64;
            for w in weights {
                let share = if sum > 0.0 { total * w / sum } else { 0.0 };
                rates.push(share / (config.window_s * scale));
            }
        }
        RatePlan {
            rates,
            window_s: config.window_s * scale,
        }
    }

    /// Planned tasks per second at `t` seconds into the run (0 outside it).
    pub fn rate_at(&self, t: f64) -> f64 {
        if t < 0.0 {
            return 0.0;
        }
        self.rates
            .get((t / self.window_s) as usize)
            .copied()
            .unwrap_or(0.0)
    }

    /// The highest planned rate at any instant of `[from, to]` (0 outside the run).
    pub fn peak_between(&self, from: f64, to: f64) -> f64 {
        if to < from.max(0.0) {
            return 0.0;
        }
        let first = (from.max(0.0) / self.window_s) as usize;
        let last = (to / self.window_s) as usize;
        self.rates
            .iter()
            .take(last.saturating_add(1))
            .skip(first)
            .copied()
            .fold(0.0, f64::max)
    }
}

impl RatePlan {
    /// Arrival times in `[from, to)` drawn from the plan: a Poisson count per window at the
    /// planned rate, spread uniformly over the part of the window inside the interval; sorted.
    /// What a load calendar lets one imagine about the next seconds, not the actual arrivals.
    pub fn sample_arrivals(&self, from: f64, to: f64, rng: &mut impl rand::Rng) -> Vec<f64> {
        let mut out = Vec::new();
        let from = from.max(0.0);
        if to <= from {
            return out;
        }
        let first = (from / self.window_s) as usize;
        for (w, rate) in self.rates.iter().enumerate().skip(first) {
            let start = (w as f64 * self.window_s).max(from);
            let end = ((w + 1) as f64 * self.window_s).min(to);
            if start >= to {
                break;
            }
            let lambda = rate * (end - start);
            let n = match Poisson::new(lambda) {
                Ok(p) if lambda > 0.0 => p.sample(rng) as usize,
                _ => 0,
            };
            let mut times: Vec<f64> = (0..n).map(|_| start + rng.gen::<f64>() * (end - start)).collect();
            times.sort_by(f64::total_cmp);
            out.extend(times);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Workload;

    #[test]
    fn rate_plan_matches_the_generated_arrivals() {
        let config = WorkloadConfig::default();
        let plan = RatePlan::new(&config, 3);
        let tasks: Vec<_> = Workload::new(&config, 3).collect();
        // Over each 60 s phase, the plan integrates to the phase's exact task count.
        for (phase, start) in [(0usize, 0.0), (1, 60.0), (2, 120.0), (3, 180.0)] {
            let planned: f64 = (0..60).map(|s| plan.rate_at(start + s as f64 + 0.5)).sum();
            let actual = tasks.iter().filter(|t| t.phase == phase).count() as f64;
            assert!(
                (planned - actual).abs() < 1e-6,
                "phase {phase}: {planned} vs {actual}"
            );
        }
        // Steady Low is 0.3 × 300/min = 1.5 tasks/s; Steady High 7.5; nothing after the run.
        assert!((plan.rate_at(30.0) - 1.5).abs() < 1e-9);
        assert!((plan.rate_at(90.0) - 7.5).abs() < 1e-9);
        assert_eq!(plan.rate_at(241.0), 0.0);
        assert_eq!(plan.rate_at(-1.0), 0.0);
        // The peak over an interval spans every window it touches, the last one included.
        assert!((plan.peak_between(50.0, 60.0) - 7.5).abs() < 1e-9);
        assert!((plan.peak_between(50.0, 59.9) - 1.5).abs() < 1e-9);
        assert!((plan.peak_between(-5.0, 0.5) - 1.5).abs() < 1e-9);
        assert_eq!(plan.peak_between(300.0, 400.0), 0.0);
        assert_eq!(plan.peak_between(-9.0, -1.0), 0.0);
        // The fast oscillation peaks above its mean.
        let fast: Vec<f64> = (0..60).map(|s| plan.rate_at(180.5 + s as f64)).collect();
        assert!(fast.iter().cloned().fold(0.0, f64::max) > 8.0);
    }

    #[test]
    fn sampled_arrivals_follow_the_plan() {
        let plan = RatePlan::new(&WorkloadConfig::default(), 1);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        // Steady High plans 7.5 tasks/s: 400 draws of a 10 s interval average ~75 arrivals.
        let mut total = 0usize;
        for _ in 0..400 {
            let times = plan.sample_arrivals(70.5, 80.5, &mut rng);
            assert!(times.windows(2).all(|w| w[0] <= w[1]));
            assert!(times.iter().all(|t| (70.5..80.5).contains(t)));
            total += times.len();
        }
        let mean = total as f64 / 400.0;
        assert!((mean - 75.0).abs() < 2.0, "{mean}");
        assert!(plan.sample_arrivals(300.0, 310.0, &mut rng).is_empty());
        assert!(plan.sample_arrivals(10.0, 10.0, &mut rng).is_empty());
    }
}
