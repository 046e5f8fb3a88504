//! The ranges the commands' numeric options must lie in, checked in one place so that every
//! refusal names the flag and its range the same way (and `docs/node.md` can list them).

use std::fmt::Display;
use std::ops::RangeInclusive;

/// `--time-scale` (`run`, `emitter`): the generator's own range.
pub const TIME_SCALE: RangeInclusive<f64> = workload::limits::TIME_SCALE;
/// `run --tasks`: the generator's task limit.
pub const TASKS: RangeInclusive<usize> = 1..=workload::limits::MAX_TASKS;
/// `--max-workers` (and so `--workers`, `--min-workers`): beyond this a value is a typo, and a
/// local farm that size would exhaust the machine's processes.
pub const MAX_WORKERS: u32 = 10_000;
/// `--decision-period-s` in workload seconds: below 0.1 s a simulated episode takes millions of
/// steps; above an hour the farm is not being controlled.
pub const DECISION_PERIOD_S: RangeInclusive<f64> = 0.1..=3600.0;
/// `eval --episodes`.
pub const EPISODES: RangeInclusive<usize> = 1..=100_000;
/// `eval --startup-delay-s`.
pub const STARTUP_DELAY_S: RangeInclusive<f64> = 0.0..=3600.0;
/// `train --generations` (ES iterations or DAgger rounds) and `--epochs`.
pub const ITERATIONS: RangeInclusive<u32> = 1..=100_000;
/// `train --method guided --generations`: 0 writes the untrained starting policy.
pub const GUIDED_GENERATIONS: RangeInclusive<u32> = 0..=100_000;
/// `train --pairs` and `--scenarios`.
pub const PER_ITERATION: RangeInclusive<u32> = 1..=10_000;
/// `train --sigma` and `--learning-rate`.
pub const STEP: RangeInclusive<f64> = 0.000_001..=10.0;
/// `train --miss-weight`.
pub const MISS_WEIGHT: RangeInclusive<f64> = 0.0..=1_000_000.0;
/// `train --calendar-share`.
pub const SHARE: RangeInclusive<f64> = 0.0..=1.0;
/// The functions' `--poll-interval-s`.
pub const POLL_INTERVAL_S: RangeInclusive<f64> = 0.01..=60.0;
/// The functions' `--grace-period-s`.
pub const GRACE_PERIOD_S: RangeInclusive<f64> = 0.0..=3600.0;

/// Refuses `value` outside `range` (NaN included), naming the flag and the range.
pub fn check<T: PartialOrd + Display>(flag: &str, value: T, range: &RangeInclusive<T>) -> anyhow::Result<()> {
    if range.contains(&value) {
        return Ok(());
    }
    let (lo, hi) = (range.start(), range.end());
    anyhow::bail!("{flag} must be between {lo} and {hi}, got {value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_flag_and_the_range() {
        assert!(check("--time-scale", 0.05, &TIME_SCALE).is_ok());
        let e = check("--time-scale", 1e-9, &TIME_SCALE).unwrap_err().to_string();
        assert_eq!(e, "--time-scale must be between 0.01 and 100, got 0.000000001");
        let e = check("--time-scale", f64::NAN, &TIME_SCALE)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--time-scale must be between 0.01 and 100, got NaN");
        let e = check("--tasks", 0, &TASKS).unwrap_err().to_string();
        assert_eq!(e, "--tasks must be between 1 and 1000000, got 0");
        let e = check("--sigma", 0.0f64, &STEP).unwrap_err().to_string();
        assert_eq!(e, "--sigma must be between 0.000001 and 10, got 0");
    }
}
