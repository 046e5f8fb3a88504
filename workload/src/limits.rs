//! What a workload may ask for. The generator keeps one number per rate window and draws each
//! task, so these bound the memory and time one workload file or phase configuration can cost.

/// Tasks of one workload (all phases together), and of one phase configuration.
pub const MAX_TASKS: usize = 1_000_000;
/// Rate windows of one workload (all phases together), and of one phase configuration.
pub const MAX_WINDOWS: usize = 1_000_000;
/// The longest phase, in seconds of workload time (about 11.6 days).
pub const MAX_PHASE_DURATION_S: f64 = 1_000_000.0;
/// The longest processing time the calibrated model may give, in seconds.
pub const MAX_PROCESSING_S: f64 = 3600.0;
/// Time scales accepted: below 0.01 the broker's and processes' own latency (milliseconds)
/// outweighs the tasks; above 100 the original 4-minute workload lasts over 6 hours.
pub const TIME_SCALE: std::ops::RangeInclusive<f64> = 0.01..=100.0;
/// The most cycles of an oscillating shape per phase (a diurnal phase's periods).
pub const MAX_CYCLES: f64 = 100_000.0;
/// The shortest mean sojourn of an on/off (MMPP) state, in seconds: the path costs one step per
/// sojourn, so this bounds its cost at 10 steps per second of phase.
pub const MIN_SOJOURN_S: f64 = 0.1;
/// The largest standard deviation of the log-rate of a noisy phase (exp(3) ≈ 20× swings).
pub const MAX_NOISE_SIGMA: f64 = 3.0;
