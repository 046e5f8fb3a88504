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
