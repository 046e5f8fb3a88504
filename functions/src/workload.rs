//! The workload: phases of arrivals and the tasks they carry, generated purely from a seed.
//!
//! Defaults reproduce the original system: base rate 300 tasks/min, four 60 s
//! phases (Steady Low ×0.3, Steady High ×1.5, Slow Oscillation 0.5–1.5 ×1 cycle, Fast
//! Oscillation 0.3–1.7 ×4 cycles) = 1140 tasks; per 1 s window a controlled Poisson count with
//! exact phase totals and exponential gaps; processing time Gamma(shape 4, mean 1.5 s) mapped
//! through the calibrated quadratic image-size model; deadline clamp(2·t, 0.1, 30) s.
//!
//! Workload files and phase configurations come from users and other programs, so
//! [`WorkloadConfig::validate`] and [`check_phase`] refuse what the generator cannot honour
//! within [`limits`] before anything is generated, and a phase's tasks are produced lazily
//! ([`PhaseTasks`]), one window at a time.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Gamma, Poisson};
use serde::{Deserialize, Serialize};

/// Shape of the arrival rate inside a phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pattern {
    /// Constant rate.
    Steady,
    /// `mid + amp·sin(2π·cycles·t/duration)` between `min` and `max` (multipliers of the rate).
    Oscillation { min: f64, max: f64, cycles: f64 },
    /// A base rate with `count` evenly spaced spikes `height` times the base, `width_s` wide.
    Burst { height: f64, width_s: f64, count: u32 },
    /// A recorded trace: relative rate per second (`weights[i]` for second `i`); `total`, when
    /// set (timestamp traces), replaces the phase's computed task count.
    Trace { weights: Vec<f64>, total: Option<usize> },
}

/// Errors reading a trace file.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TraceError {
    #[error("trace line {line}: {reason}")]
    Bad { line: usize, reason: String },
    #[error("the trace has no data rows")]
    Empty,
}

/// Reads a trace from CSV text. Two shapes are accepted, told apart by the header:
/// `timestamp` (or `arrival`): one arrival time in seconds per row, replayed as per-second
/// counts with the exact total; `rate` (optionally beside a `second` column): the rate of each
/// consecutive second. Returns the pattern and the trace length in seconds.
pub fn trace_from_csv(text: &str) -> Result<(Pattern, f64), TraceError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let (_, header) = lines.next().ok_or(TraceError::Empty)?;
    let cols: Vec<String> = header.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
    let pick = |names: &[&str]| cols.iter().position(|c| names.contains(&c.as_str()));
    let parse = |line: usize, row: &str, col: usize| -> Result<f64, TraceError> {
        let cell = row.split(',').nth(col).map(str::trim).unwrap_or("");
        match cell.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(TraceError::Bad {
                line: line + 1,
                reason: format!("{cell:?} is not a non-negative number"),
            }),
        }
    };
    if let Some(col) = pick(&["timestamp", "arrival", "arrival_s"]) {
        let mut times = Vec::new();
        for (n, row) in lines {
            times.push(parse(n, row, col)?);
        }
        if times.is_empty() {
            return Err(TraceError::Empty);
        }
        let t0 = times.iter().cloned().fold(f64::INFINITY, f64::min);
        let span_s = times.iter().map(|t| t - t0).fold(0.0, f64::max).floor() + 1.0;
        // One weight per second: a trace spanning more than the generator's window limit would
        // cost memory in proportion to its length, not its rows.
        if span_s > limits::MAX_WINDOWS as f64 {
            return Err(TraceError::Bad {
                line: 1,
                reason: format!(
                    "the trace spans {span_s:.0} s; at most {} s are allowed",
                    limits::MAX_WINDOWS
                ),
            });
        }
        let span = span_s as usize;
        let mut weights = vec![0.0; span];
        for t in &times {
            weights[((t - t0).floor() as usize).min(span - 1)] += 1.0;
        }
        let total = Some(times.len());
        Ok((Pattern::Trace { weights, total }, span as f64))
    } else if let Some(col) = pick(&["rate", "rate_per_s", "count"]) {
        let mut weights = Vec::new();
        for (n, row) in lines {
            weights.push(parse(n, row, col)?);
        }
        if weights.is_empty() {
            return Err(TraceError::Empty);
        }
        if weights.len() > limits::MAX_WINDOWS {
            return Err(TraceError::Bad {
                line: 1,
                reason: format!(
                    "{} rows; at most {} are allowed",
                    weights.len(),
                    limits::MAX_WINDOWS
                ),
            });
        }
        let len = weights.len() as f64;
        Ok((Pattern::Trace { weights, total: None }, len))
    } else {
        Err(TraceError::Bad {
            line: 1,
            reason: format!("header {header:?} has no timestamp or rate column"),
        })
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

/// What a workload may ask for. The generator keeps one number per rate window and draws each
/// task, so these bound the memory and time one workload file or phase configuration can cost.
pub mod limits {
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
}

/// Why a workload or phase cannot be generated. Field names are as the user wrote them.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WorkloadError {
    #[error("{field} must be {allowed}, got {value}")]
    OutOfRange {
        field: String,
        allowed: String,
        value: String,
    },
    #[error(
        "{what} would generate {tasks:.0} tasks; at most {max} are allowed (lower the base rate, \
         the multipliers or the durations)"
    )]
    TooManyTasks { what: String, tasks: f64, max: usize },
    #[error(
        "{what} has {windows:.0} rate windows; at most {max} are allowed (lengthen the window or \
         shorten the phases)"
    )]
    TooManyWindows { what: String, windows: f64, max: usize },
    #[error("the workload has no phases")]
    NoPhases,
}

fn require(
    ok: bool,
    field: impl Into<String>,
    allowed: &str,
    value: impl std::fmt::Display,
) -> Result<(), WorkloadError> {
    if ok {
        Ok(())
    } else {
        Err(WorkloadError::OutOfRange {
            field: field.into(),
            allowed: allowed.into(),
            value: value.to_string(),
        })
    }
}

fn non_negative(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

/// Checks a phase's own parameters (not its task and window counts: see [`phase_load`]).
/// `name` turns a parameter — `duration_s`, `multiplier`, or a pattern's `min`, `max`,
/// `cycles`, `height`, `width_s`, `weights[i]` — into the field name the user wrote, which
/// differs between a workload file and a phase-config message.
pub fn check_phase(phase: &Phase, name: &dyn Fn(&str) -> String) -> Result<(), WorkloadError> {
    let d = phase.duration_s;
    require(
        positive(d) && d <= limits::MAX_PHASE_DURATION_S,
        name("duration_s"),
        "a number of seconds above 0 and at most 1000000",
        d,
    )?;
    require(
        non_negative(phase.multiplier),
        name("multiplier"),
        "a non-negative number",
        phase.multiplier,
    )?;
    match &phase.pattern {
        Pattern::Steady => {}
        Pattern::Oscillation { min, max, cycles } => {
            require(non_negative(*min), name("min"), "a non-negative number", min)?;
            require(non_negative(*max), name("max"), "a non-negative number", max)?;
            require(
                max >= min,
                name("max"),
                &format!("at least the minimum ({min})"),
                max,
            )?;
            require(
                non_negative(*cycles),
                name("cycles"),
                "a non-negative number",
                cycles,
            )?;
        }
        Pattern::Burst { height, width_s, .. } => {
            require(
                non_negative(*height),
                name("height"),
                "a non-negative number",
                height,
            )?;
            require(
                non_negative(*width_s),
                name("width_s"),
                "a non-negative number",
                width_s,
            )?;
        }
        Pattern::Trace { weights, .. } => {
            require(
                !weights.is_empty() && weights.len() <= limits::MAX_WINDOWS,
                name("weights"),
                "a list of 1 to 1000000 rates",
                format!("{} values", weights.len()),
            )?;
            if let Some((i, w)) = weights.iter().enumerate().find(|(_, w)| !non_negative(**w)) {
                require(false, name(&format!("weights[{i}]")), "a non-negative number", w)?;
            }
        }
    }
    Ok(())
}

/// The tasks a phase generates and its number of rate windows, as unbounded numbers (so that a
/// nonsensical configuration is reported as it is, not as a saturated integer).
pub fn phase_load(phase: &Phase, base_rate_per_min: f64, window_s: f64) -> (f64, f64) {
    let tasks = match &phase.pattern {
        Pattern::Trace { total: Some(n), .. } => *n as f64,
        _ => (base_rate_per_min * phase.multiplier * phase.duration_s / 60.0)
            .floor()
            .max(0.0),
    };
    let windows = (phase.duration_s / window_s).round().max(1.0);
    (tasks, windows)
}

/// Refuses a task or window count above the limits; `what` names the phase or workload.
pub fn check_load(what: &str, tasks: f64, windows: f64) -> Result<(), WorkloadError> {
    if tasks.is_nan() || tasks > limits::MAX_TASKS as f64 {
        return Err(WorkloadError::TooManyTasks {
            what: what.into(),
            tasks,
            max: limits::MAX_TASKS,
        });
    }
    if windows.is_nan() || windows > limits::MAX_WINDOWS as f64 {
        return Err(WorkloadError::TooManyWindows {
            what: what.into(),
            windows,
            max: limits::MAX_WINDOWS,
        });
    }
    Ok(())
}

/// The time scale, if it lies in [`limits::TIME_SCALE`]; `field` names it for the error.
pub fn check_time_scale(field: &str, scale: f64) -> Result<(), WorkloadError> {
    require(
        limits::TIME_SCALE.contains(&scale),
        field,
        "between 0.01 and 100",
        scale,
    )
}

impl WorkloadConfig {
    /// Everything the generator, the simulator and the emitter need to hold: finite, in
    /// range, and within [`limits`]. A workload file goes through this before anything runs.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if self.phases.is_empty() {
            return Err(WorkloadError::NoPhases);
        }
        require(
            positive(self.base_rate_per_min),
            "base_rate_per_min",
            "a positive number",
            self.base_rate_per_min,
        )?;
        require(
            positive(self.window_s),
            "window_s",
            "a positive number of seconds",
            self.window_s,
        )?;
        check_time_scale("time_scale", self.time_scale)?;
        require(
            positive(self.gamma_shape),
            "gamma_shape",
            "a positive number",
            self.gamma_shape,
        )?;
        require(
            positive(self.mean_processing_s),
            "mean_processing_s",
            "a positive number of seconds",
            self.mean_processing_s,
        )?;
        require(
            positive(self.model.a),
            "model.a",
            "a positive number",
            self.model.a,
        )?;
        require(
            self.model.b.is_finite(),
            "model.b",
            "a finite number",
            self.model.b,
        )?;
        require(
            self.min_size_px >= 1,
            "min_size_px",
            "at least 1",
            self.min_size_px,
        )?;
        require(
            self.max_size_px >= self.min_size_px,
            "max_size_px",
            &format!("at least min_size_px ({})", self.min_size_px),
            self.max_size_px,
        )?;
        let t_max = self.model.a * f64::from(self.max_size_px).powi(2) + self.model.b;
        require(
            t_max.is_finite() && t_max <= limits::MAX_PROCESSING_S,
            "model",
            "a model whose processing time at max_size_px is at most 3600 s",
            format!("{t_max} s"),
        )?;
        require(
            positive(self.deadline_factor),
            "deadline_factor",
            "a positive number",
            self.deadline_factor,
        )?;
        require(
            non_negative(self.min_deadline_s),
            "min_deadline_s",
            "a non-negative number of seconds",
            self.min_deadline_s,
        )?;
        require(
            self.max_deadline_s.is_finite() && self.max_deadline_s >= self.min_deadline_s,
            "max_deadline_s",
            &format!(
                "a number of seconds at least min_deadline_s ({})",
                self.min_deadline_s
            ),
            self.max_deadline_s,
        )?;
        let (mut tasks, mut windows) = (0.0, 0.0);
        for (i, phase) in self.phases.iter().enumerate() {
            check_phase(phase, &|p| match p {
                "duration_s" | "multiplier" => format!("phases[{i}].{p}"),
                _ => format!("phases[{i}].pattern.{p}"),
            })?;
            let (t, w) = phase_load(phase, self.base_rate_per_min, self.window_s);
            tasks += t;
            windows += w;
        }
        check_load("the workload", tasks, windows)
    }
}

impl Phase {
    /// The phase's exact task total, as the original computed it.
    pub fn target_tasks(&self, base_rate_per_min: f64) -> usize {
        if let Pattern::Trace { total: Some(n), .. } = &self.pattern {
            return *n;
        }
        (base_rate_per_min * self.multiplier * self.duration_s / 60.0)
            .floor()
            .max(0.0) as usize
    }

    /// Relative arrival rate at time `t` seconds into the phase.
    fn shape(&self, t: f64, flat_oscillation: bool) -> f64 {
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
        }
    }
}

/// One generated task. Times are seconds from the start of the workload, already time-scaled.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    pub phase: usize,
    pub arrival_s: f64,
    pub processing_s: f64,
    pub size_px: u32,
    pub deadline_s: f64,
}

/// The pure, seeded iterator of task specs, in arrival order.
pub struct Workload {
    tasks: std::vec::IntoIter<TaskSpec>,
}

impl Workload {
    /// Generates the whole workload for `seed`. Same config and seed ⇒ same tasks.
    ///
    /// The phase order is shuffled (if asked) with `seed`; each phase is then generated by
    /// [`phase_tasks`] with the seed [`phase_seed`]`(seed, position)`, exactly as the emitter
    /// generates a phase from the `task_seed` of its phase-config message.
    pub fn new(config: &WorkloadConfig, seed: u64) -> Workload {
        let mut tasks = Vec::new();
        let mut phase_start = 0.0;
        for (position, p) in phase_order(config, seed).into_iter().enumerate() {
            let phase = &config.phases[p];
            for mut t in PhaseTasks::new(config, phase, phase_seed(seed, position)) {
                t.phase = p;
                t.arrival_s += phase_start * config.time_scale;
                tasks.push(t);
            }
            phase_start += phase.duration_s;
        }
        Workload {
            tasks: tasks.into_iter(),
        }
    }
}

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
/// each phase's task total and rate shape), without the randomness of the actual arrivals.
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
            let weights = window_weights(config, phase);
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

/// Draws task sizes as the generator does: a processing time from the Gamma model, clamped to
/// the calibrated range and rounded down to a whole image size, and the deadline that follows.
#[derive(Clone, Debug)]
pub struct TaskSizer {
    gamma: Option<Gamma<f64>>,
    mean_s: f64,
    t_min: f64,
    t_max: f64,
    model: CalibratedModel,
    min_px: u32,
    max_px: u32,
    deadline_factor: f64,
    min_deadline_s: f64,
    max_deadline_s: f64,
    scale: f64,
}

impl TaskSizer {
    pub fn new(config: &WorkloadConfig) -> TaskSizer {
        let m = config.model;
        TaskSizer {
            gamma: Gamma::new(config.gamma_shape, config.mean_processing_s / config.gamma_shape).ok(),
            mean_s: config.mean_processing_s,
            t_min: m.a * f64::from(config.min_size_px).powi(2) + m.b,
            t_max: m.a * f64::from(config.max_size_px).powi(2) + m.b,
            model: m,
            min_px: config.min_size_px,
            max_px: config.max_size_px,
            deadline_factor: config.deadline_factor,
            min_deadline_s: config.min_deadline_s,
            max_deadline_s: config.max_deadline_s,
            scale: config.time_scale.max(1e-9),
        }
    }

    /// One task arriving at `arrival_s` (already time-scaled); durations time-scaled.
    pub fn draw(&self, rng: &mut impl rand::Rng, arrival_s: f64) -> TaskSpec {
        let m = self.model;
        let raw = self.gamma.map_or(self.mean_s, |g| g.sample(rng));
        let t = raw.clamp(self.t_min, self.t_max);
        let size = (((t - m.b) / m.a).max(0.0).sqrt().floor() as u32).clamp(self.min_px, self.max_px);
        let processing = m.a * f64::from(size).powi(2) + m.b;
        let deadline = (self.deadline_factor * processing).clamp(self.min_deadline_s, self.max_deadline_s);
        TaskSpec {
            phase: 0,
            arrival_s,
            processing_s: processing * self.scale,
            size_px: size,
            deadline_s: deadline * self.scale,
        }
    }
}

/// The relative arrival rate of each of a phase's windows (its shape sampled mid-window).
fn window_weights(config: &WorkloadConfig, phase: &Phase) -> Vec<f64> {
    let windows = (phase.duration_s / config.window_s).round().max(1.0) as usize;
    (0..windows)
        .map(|w| phase.shape((w as f64 + 0.5) * config.window_s, config.flat_oscillation))
        .collect()
}

/// The tasks of one phase with the seed `seed`: arrival times relative to the phase start, all
/// durations scaled by `config.time_scale`; `phase` of every spec is 0 (callers set it).
pub fn phase_tasks(config: &WorkloadConfig, phase: &Phase, seed: u64) -> Vec<TaskSpec> {
    PhaseTasks::new(config, phase, seed).collect()
}

/// One phase's tasks, generated lazily in arrival order — the same tasks as [`phase_tasks`].
/// It holds one number per window and the current window's arrival offsets, never a number
/// per task, so the emitter's memory does not grow with the count a phase configuration asks
/// for.
///
/// Each window's count is a Poisson draw with mean `remaining · weight / remaining weight`
/// (the last window takes what is left), so the phase total is exact.
pub struct PhaseTasks {
    rng: ChaCha8Rng,
    sizer: TaskSizer,
    weights: Vec<f64>,
    /// `rest[w]`: the weight of windows `w..`, so each window's mean costs O(1).
    rest: Vec<f64>,
    next_window: usize,
    remaining: usize,
    window_s: f64,
    scale: f64,
    window_start: f64,
    offsets: std::vec::IntoIter<f64>,
}

impl PhaseTasks {
    pub fn new(config: &WorkloadConfig, phase: &Phase, seed: u64) -> PhaseTasks {
        let weights = window_weights(config, phase);
        let mut rest = vec![0.0; weights.len()];
        let mut acc = 0.0;
        for (r, w) in rest.iter_mut().zip(&weights).rev() {
            acc += w;
            *r = acc;
        }
        PhaseTasks {
            rng: ChaCha8Rng::seed_from_u64(seed),
            sizer: TaskSizer::new(config),
            weights,
            rest,
            next_window: 0,
            remaining: phase.target_tasks(config.base_rate_per_min),
            window_s: config.window_s,
            scale: config.time_scale.max(1e-9),
            window_start: 0.0,
            offsets: Vec::new().into_iter(),
        }
    }
}

impl Iterator for PhaseTasks {
    type Item = TaskSpec;

    fn next(&mut self) -> Option<TaskSpec> {
        loop {
            if let Some(offset) = self.offsets.next() {
                let arrival = (self.window_start + offset) * self.scale;
                return Some(self.sizer.draw(&mut self.rng, arrival));
            }
            let w = self.next_window;
            if w >= self.weights.len() {
                return None;
            }
            let count = if w + 1 == self.weights.len() {
                self.remaining
            } else {
                let lambda = if self.rest[w] > 0.0 {
                    self.remaining as f64 * self.weights[w] / self.rest[w]
                } else {
                    0.0
                };
                let draw = Poisson::new(lambda).map_or(0.0, |d| d.sample(&mut self.rng));
                (draw as usize).min(self.remaining)
            };
            self.remaining -= count;
            self.next_window += 1;
            self.window_start = w as f64 * self.window_s;
            self.offsets = window_offsets(&mut self.rng, count, self.window_s).into_iter();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.remaining + self.offsets.len();
        (left, Some(left))
    }
}

/// `count` arrival offsets inside a window of `window_s`, spaced by exponential gaps and
/// squeezed into the window if the gaps overrun it (the count is exact by construction).
fn window_offsets(rng: &mut ChaCha8Rng, count: usize, window_s: f64) -> Vec<f64> {
    if count == 0 {
        return Vec::new();
    }
    let mean_gap = window_s / (count as f64 + 1.0);
    let exp = Exp::new(1.0 / mean_gap).ok();
    let mut t = 0.0;
    let mut offsets: Vec<f64> = (0..count)
        .map(|_| {
            t += exp.map_or(mean_gap, |e| e.sample(rng));
            t
        })
        .collect();
    if t >= window_s {
        let squeeze = window_s * 0.999 / t;
        offsets.iter_mut().for_each(|o| *o *= squeeze);
    }
    offsets
}

impl Iterator for Workload {
    type Item = TaskSpec;
    fn next(&mut self) -> Option<TaskSpec> {
        self.tasks.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator as it was before it became lazy (a quadratic sum per window): the lazy one
    /// must give the same tasks, so seeds, reports and trained models stay comparable.
    fn reference_phase_tasks(config: &WorkloadConfig, phase: &Phase, seed: u64) -> Vec<TaskSpec> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scale = config.time_scale.max(1e-9);
        let sizer = TaskSizer::new(config);
        let weights = window_weights(config, phase);
        let windows = weights.len();
        let mut tasks = Vec::new();
        let mut remaining = phase.target_tasks(config.base_rate_per_min);
        for w in 0..windows {
            let count = if w + 1 == windows {
                remaining
            } else {
                let rest: f64 = weights[w..].iter().sum();
                let lambda = if rest > 0.0 {
                    remaining as f64 * weights[w] / rest
                } else {
                    0.0
                };
                let draw = Poisson::new(lambda).map_or(0.0, |d| d.sample(&mut rng));
                (draw as usize).min(remaining)
            };
            remaining -= count;
            let window_start = w as f64 * config.window_s;
            for offset in window_offsets(&mut rng, count, config.window_s) {
                tasks.push(sizer.draw(&mut rng, (window_start + offset) * scale));
            }
        }
        tasks
    }

    #[test]
    fn lazy_generation_gives_the_reference_tasks() {
        let default = WorkloadConfig::default();
        let fine = WorkloadConfig {
            window_s: 0.25,
            base_rate_per_min: 900.0,
            ..WorkloadConfig::default()
        };
        let mut extra = vec![
            Phase {
                name: "burst".into(),
                multiplier: 1.3,
                duration_s: 90.0,
                pattern: Pattern::Burst {
                    height: 4.0,
                    width_s: 3.0,
                    count: 4,
                },
            },
            Phase {
                name: "trace".into(),
                multiplier: 1.0,
                duration_s: 50.0,
                pattern: Pattern::Trace {
                    // Whole-number weights: their sums are exact in any order. (With fractional
                    // ones the suffix sums can differ from the old forward sums in the last
                    // bit, which changes a draw only when a window's mean lands exactly on
                    // the Poisson sampler's switch at 12; no reported workload has such a
                    // trace.)
                    weights: (0..50).map(|i| ((i * 37) % 11) as f64).collect(),
                    total: Some(333),
                },
            },
        ];
        extra.extend(default.phases.iter().cloned());
        let mixed = WorkloadConfig {
            phases: extra,
            ..WorkloadConfig::default()
        };
        let mut checked = 0;
        for config in [&default, &fine, &mixed] {
            for phase in &config.phases {
                for seed in 0..300u64 {
                    let lazy: Vec<TaskSpec> = PhaseTasks::new(config, phase, seed).collect();
                    let reference = reference_phase_tasks(config, phase, seed);
                    assert_eq!(lazy.len(), reference.len());
                    if let Some(i) = (0..lazy.len()).find(|&i| lazy[i] != reference[i]) {
                        panic!(
                            "{} seed {seed}: task {i}: {:?} vs {:?}",
                            phase.name, lazy[i], reference[i]
                        );
                    }
                    checked += lazy.len();
                }
            }
        }
        assert!(checked > 1_000_000, "{checked}");
        let mut it = PhaseTasks::new(&default, &default.phases[1], 3);
        assert_eq!(it.size_hint(), (450, Some(450)));
        it.next();
        assert_eq!(it.size_hint(), (449, Some(449)));
    }

    #[test]
    fn a_phase_at_the_task_limit_is_generated_one_window_at_a_time() {
        // A phase at the task limit is generated one window at a time: taking its first tasks
        // costs one window's arrivals, whatever the total.
        let config = WorkloadConfig {
            base_rate_per_min: 60_000.0,
            ..WorkloadConfig::default()
        };
        let phase = Phase {
            name: "big".into(),
            multiplier: 1.0,
            duration_s: 1000.0,
            pattern: Pattern::Steady,
        };
        assert_eq!(phase.target_tasks(config.base_rate_per_min), limits::MAX_TASKS);
        let mut it = PhaseTasks::new(&config, &phase, 1);
        let first: Vec<TaskSpec> = it.by_ref().take(10).collect();
        assert_eq!(first.len(), 10);
        assert!(
            it.offsets.len() <= 2_000,
            "one window's arrivals at most: {}",
            it.offsets.len()
        );
        assert_eq!(it.size_hint().0, limits::MAX_TASKS - 10);
    }

    fn refused(config: &WorkloadConfig) -> String {
        config.validate().expect_err("must be refused").to_string()
    }

    #[test]
    fn validation_names_the_field_and_the_limit() {
        assert_eq!(WorkloadConfig::default().validate(), Ok(()));
        let with = |f: &dyn Fn(&mut WorkloadConfig)| {
            let mut c = WorkloadConfig::default();
            f(&mut c);
            c
        };
        // The reported reproductions: a billion tasks a minute, a phase of 10^12 seconds.
        let e = refused(&with(&|c| c.base_rate_per_min = 1e9));
        assert!(
            e.contains("would generate 3800000000 tasks; at most 1000000"),
            "{e}"
        );
        let e = refused(&with(&|c| c.phases[0].duration_s = 1e12));
        assert!(e.starts_with("phases[0].duration_s must be"), "{e}");
        assert!(e.contains("got 1000000000000"), "{e}");
        // Many short windows: the window count, not the duration, is the limit.
        let e = refused(&with(&|c| {
            c.window_s = 1e-4;
        }));
        assert!(e.contains("2400000 rate windows; at most 1000000"), "{e}");
        for (f, field) in [
            (
                &(|c: &mut WorkloadConfig| c.base_rate_per_min = f64::NAN) as &dyn Fn(&mut WorkloadConfig),
                "base_rate_per_min",
            ),
            (&|c| c.base_rate_per_min = -1.0, "base_rate_per_min"),
            (&|c| c.window_s = 0.0, "window_s"),
            (&|c| c.time_scale = 1e-9, "time_scale"),
            (&|c| c.time_scale = f64::INFINITY, "time_scale"),
            (&|c| c.gamma_shape = 0.0, "gamma_shape"),
            (&|c| c.mean_processing_s = -2.0, "mean_processing_s"),
            (&|c| c.model.a = 0.0, "model.a"),
            (&|c| c.model.a = 1.0, "model"),
            (&|c| c.min_size_px = 0, "min_size_px"),
            (&|c| c.max_size_px = 10, "max_size_px"),
            (&|c| c.deadline_factor = f64::NAN, "deadline_factor"),
            (&|c| c.max_deadline_s = 0.01, "max_deadline_s"),
            (&|c| c.phases[1].multiplier = -0.5, "phases[1].multiplier"),
            (
                &|c| {
                    c.phases[2].pattern = Pattern::Oscillation {
                        min: 2.0,
                        max: 1.0,
                        cycles: 1.0,
                    }
                },
                "phases[2].pattern.max",
            ),
            (
                &|c| {
                    c.phases[3].pattern = Pattern::Burst {
                        height: f64::INFINITY,
                        width_s: 1.0,
                        count: 2,
                    }
                },
                "phases[3].pattern.height",
            ),
            (
                &|c| {
                    c.phases[0].pattern = Pattern::Trace {
                        weights: vec![1.0, -1.0],
                        total: None,
                    }
                },
                "phases[0].pattern.weights[1]",
            ),
            (
                &|c| {
                    c.phases[0].pattern = Pattern::Trace {
                        weights: vec![1.0],
                        total: Some(usize::MAX),
                    }
                },
                "would generate",
            ),
        ] {
            let e = refused(&with(f));
            assert!(e.starts_with(field) || e.contains(field), "{field}: {e}");
        }
        assert_eq!(
            refused(&with(&|c| c.phases.clear())),
            "the workload has no phases"
        );
        let e = check_time_scale("--time-scale", 1e-9).unwrap_err().to_string();
        assert_eq!(e, "--time-scale must be between 0.01 and 100, got 0.000000001");
    }

    #[test]
    fn a_trace_spanning_too_long_is_refused_before_allocating() {
        let e = trace_from_csv("timestamp\n0\n1000000000000\n").unwrap_err();
        assert!(e.to_string().contains("spans 1000000000001 s"), "{e}");
    }

    #[test]
    fn exact_phase_totals() {
        let cfg = WorkloadConfig::default();
        let tasks: Vec<TaskSpec> = Workload::new(&cfg, 7).collect();
        let per_phase: Vec<usize> = (0..4)
            .map(|p| tasks.iter().filter(|t| t.phase == p).count())
            .collect();
        assert_eq!(per_phase, vec![90, 450, 300, 300]);
        assert!(tasks.windows(2).all(|w| w[0].arrival_s <= w[1].arrival_s));
        assert!(tasks.iter().all(|t| t.arrival_s < 240.0));
    }

    #[test]
    fn same_seed_same_tasks_other_seed_other_tasks() {
        let cfg = WorkloadConfig {
            shuffle_phases: true,
            ..WorkloadConfig::default()
        };
        let a: Vec<TaskSpec> = Workload::new(&cfg, 1).collect();
        let b: Vec<TaskSpec> = Workload::new(&cfg, 1).collect();
        let c: Vec<TaskSpec> = Workload::new(&cfg, 2).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

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

    #[test]
    fn processing_time_and_deadline_distribution() {
        let cfg = WorkloadConfig {
            base_rate_per_min: 300.0 * 100_000.0 / 1140.0,
            ..WorkloadConfig::default()
        };
        let tasks: Vec<TaskSpec> = Workload::new(&cfg, 3).collect();
        assert!(tasks.len() > 99_000, "{}", tasks.len());
        let mean = tasks.iter().map(|t| t.processing_s).sum::<f64>() / tasks.len() as f64;
        assert!((mean - 1.47).abs() < 0.02, "mean processing time {mean}");
        for t in &tasks {
            assert!((512..=4096).contains(&t.size_px));
            assert!(t.deadline_s >= 0.1 && t.deadline_s <= 30.0);
            assert!((t.deadline_s - (2.0 * t.processing_s).clamp(0.1, 30.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn oscillation_shape_shows_in_window_counts() {
        let cfg = WorkloadConfig {
            base_rate_per_min: 3000.0,
            phases: vec![Phase {
                name: "osc".into(),
                multiplier: 1.0,
                duration_s: 60.0,
                pattern: Pattern::Oscillation {
                    min: 0.2,
                    max: 1.8,
                    cycles: 1.0,
                },
            }],
            ..WorkloadConfig::default()
        };
        let tasks: Vec<TaskSpec> = Workload::new(&cfg, 5).collect();
        let first_half = tasks.iter().filter(|t| t.arrival_s < 30.0).count();
        let second_half = tasks.len() - first_half;
        // sin > 0 over the first half-cycle: far more arrivals there.
        assert!(first_half > 2 * second_half, "{first_half} vs {second_half}");
        let flat: Vec<TaskSpec> = Workload::new(
            &WorkloadConfig {
                flat_oscillation: true,
                ..cfg
            },
            5,
        )
        .collect();
        let flat_first = flat.iter().filter(|t| t.arrival_s < 30.0).count();
        assert!((flat_first as f64 / flat.len() as f64 - 0.5).abs() < 0.05);
    }

    #[test]
    fn burst_spikes_show_in_window_counts() {
        let cfg = WorkloadConfig {
            base_rate_per_min: 600.0,
            phases: vec![Phase {
                name: "burst".into(),
                multiplier: 1.0,
                duration_s: 60.0,
                pattern: Pattern::Burst {
                    height: 5.0,
                    width_s: 4.0,
                    count: 3,
                },
            }],
            ..WorkloadConfig::default()
        };
        let tasks: Vec<TaskSpec> = Workload::new(&cfg, 11).collect();
        assert_eq!(tasks.len(), 600);
        // Spikes are centred at 10, 30 and 50 s; 12 of 60 windows at 5x the base weight.
        let in_spikes = tasks
            .iter()
            .filter(|t| [10.0, 30.0, 50.0].iter().any(|c| (t.arrival_s - c).abs() <= 2.0))
            .count();
        let expected = 600.0 * (12.0 * 5.0) / (12.0 * 5.0 + 48.0);
        assert!(
            (in_spikes as f64 - expected).abs() < 60.0,
            "{in_spikes} vs {expected}"
        );
    }

    #[test]
    fn traces_replay_from_csv() {
        let (pattern, len) = trace_from_csv("timestamp\n0.1\n0.2\n0.3\n2.5\n").unwrap();
        assert_eq!(len, 3.0);
        let phase = Phase {
            name: "trace".into(),
            multiplier: 1.0,
            duration_s: len,
            pattern,
        };
        let cfg = WorkloadConfig {
            phases: vec![phase],
            ..WorkloadConfig::default()
        };
        let tasks: Vec<TaskSpec> = Workload::new(&cfg, 1).collect();
        assert_eq!(tasks.len(), 4, "timestamp traces keep their exact count");
        assert_eq!(
            tasks.iter().filter(|t| t.arrival_s < 1.0).count()
                + tasks.iter().filter(|t| t.arrival_s >= 2.0).count(),
            4
        );
        let (pattern, len) = trace_from_csv("second,rate\n0,10\n1,0\n2,30\n").unwrap();
        assert_eq!(len, 3.0);
        assert!(matches!(pattern, Pattern::Trace { total: None, .. }));
        assert_eq!(
            trace_from_csv("timestamp\n1\nabc\n").unwrap_err(),
            TraceError::Bad {
                line: 3,
                reason: "\"abc\" is not a non-negative number".into()
            }
        );
        assert_eq!(
            trace_from_csv("foo\n1\n").unwrap_err(),
            TraceError::Bad {
                line: 1,
                reason: "header \"foo\" has no timestamp or rate column".into()
            }
        );
        assert_eq!(trace_from_csv("").unwrap_err(), TraceError::Empty);
    }

    #[test]
    fn time_scale_scales_durations_not_counts() {
        let base: Vec<TaskSpec> = Workload::new(&WorkloadConfig::default(), 9).collect();
        let fast: Vec<TaskSpec> = Workload::new(
            &WorkloadConfig {
                time_scale: 0.1,
                ..WorkloadConfig::default()
            },
            9,
        )
        .collect();
        assert_eq!(base.len(), fast.len());
        for (a, b) in base.iter().zip(&fast) {
            assert!((a.arrival_s * 0.1 - b.arrival_s).abs() < 1e-9);
            assert!((a.processing_s * 0.1 - b.processing_s).abs() < 1e-9);
            assert!((a.deadline_s * 0.1 - b.deadline_s).abs() < 1e-9);
        }
    }
}
