//! The workload: phases of arrivals and the tasks they carry, generated purely from a seed —
//! by the simulator in virtual time and by the farm's emitter in real time, which is why it is
//! a crate of its own with no I/O (no async runtime, no Redis client).
//!
//! Defaults reproduce the original system: base rate 300 tasks/min, four 60 s phases (Steady
//! Low ×0.3, Steady High ×1.5, Slow Oscillation 0.5–1.5 ×1 cycle, Fast Oscillation 0.3–1.7 ×4
//! cycles) = 1140 tasks; per 1 s window a controlled Poisson count with exact phase totals and
//! exponential gaps; processing time Gamma(shape 4, mean 1.5 s) mapped through the calibrated
//! quadratic image-size model; deadline clamp(2·t, 0.1, 30) s.
//!
//! Workload files and phase configurations come from users and other programs, so
//! [`WorkloadConfig::validate`] and [`check_phase`] refuse what the generator cannot honour
//! within [`limits`] before anything is generated, and a phase's tasks are produced lazily
//! ([`PhaseTasks`]), one window at a time.
//!
//! # Layout
//! - `config`: [`WorkloadConfig`], [`Phase`], [`Pattern`] (steady, oscillation, burst, trace,
//!   step, ramp, diurnal, mmpp, noisy, counts, arrivals), [`CalibratedModel`] (the defaults
//!   above).
//! - [`limits`] and `validate`: what a workload may ask for, [`WorkloadError`] naming the field.
//! - `modulation`: the realised rate of a phase per window (the seeded on/off and noise paths)
//!   and the rate its load calendar knows.
//! - `trace`: [`load_trace`], recorded arrivals or per-second counts from CSV as a phase,
//!   replayed exactly or resampled ([`Replay`]); [`plan_from_csv`], a calendar for a trace.
//! - [`random`]: [`random::sample_workload`], randomised multi-phase workloads for training.
//! - [`presets`]: the named evaluation workloads ([`presets::preset`]).
//! - `plan`: [`phase_order`], [`phase_seed`] and the planned rates of a run ([`RatePlan`], what a
//!   load calendar knows).
//! - `tasks`: [`TaskSpec`], [`TaskSizer`], one phase's tasks ([`PhaseTasks`]) and a whole run's
//!   ([`Workload`]).
//!
//! # Example
//! ```
//! use workload::{Workload, WorkloadConfig};
//! let tasks: Vec<_> = Workload::new(&WorkloadConfig::default(), 42).collect();
//! assert_eq!(tasks.len(), 1140);
//! ```

mod config;
pub mod limits;
mod modulation;
mod plan;
pub mod presets;
pub mod random;
mod tasks;
mod trace;
mod validate;

pub use config::{CalibratedModel, Pattern, Phase, Replay, WorkloadConfig};
pub use plan::{phase_order, phase_seed, RatePlan};
pub use tasks::{phase_tasks, PhaseTasks, RecordedSize, TaskSizer, TaskSpec, Workload};
pub use trace::{load_trace, plan_from_csv, trace_from_csv, LoadedTrace, TraceError};
pub use validate::{check_consistency, check_load, check_phase, check_time_scale, phase_load, WorkloadError};
