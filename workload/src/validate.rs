//! Refusing, before anything is generated, a workload or phase the generator cannot honour
//! within [`limits`](crate::limits), naming the field as the user wrote it.

use crate::config::{Pattern, Phase, Replay, WorkloadConfig};
use crate::limits;

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
    /// A phase whose parts contradict each other (a trace without its count, a duration that
    /// does not match the trace), which would otherwise silently change the workload.
    #[error("{field}: {reason}")]
    Inconsistent { field: String, reason: String },
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
        Pattern::Step { before, after, at_s } => {
            require(
                non_negative(*before),
                name("before"),
                "a non-negative number",
                before,
            )?;
            require(
                non_negative(*after),
                name("after"),
                "a non-negative number",
                after,
            )?;
            require(
                non_negative(*at_s) && *at_s <= d,
                name("at_s"),
                &format!("a number of seconds from 0 to duration_s ({d})"),
                at_s,
            )?;
        }
        Pattern::Ramp { from, to } => {
            require(non_negative(*from), name("from"), "a non-negative number", from)?;
            require(non_negative(*to), name("to"), "a non-negative number", to)?;
        }
        Pattern::Diurnal { floor, peak, periods } => {
            require(
                non_negative(*floor),
                name("floor"),
                "a non-negative number",
                floor,
            )?;
            require(
                peak.is_finite() && peak >= floor,
                name("peak"),
                &format!("at least the floor ({floor})"),
                peak,
            )?;
            require(
                positive(*periods) && *periods <= limits::MAX_CYCLES,
                name("periods"),
                "a number above 0 and at most 100000",
                periods,
            )?;
        }
        Pattern::Mmpp {
            low,
            high,
            mean_low_s,
            mean_high_s,
        } => {
            require(non_negative(*low), name("low"), "a non-negative number", low)?;
            require(non_negative(*high), name("high"), "a non-negative number", high)?;
            for (field, v) in [("mean_low_s", mean_low_s), ("mean_high_s", mean_high_s)] {
                require(
                    v.is_finite() && *v >= limits::MIN_SOJOURN_S,
                    name(field),
                    "a number of seconds of at least 0.1",
                    v,
                )?;
            }
        }
        Pattern::Noisy { sigma, correlation_s } => {
            require(
                non_negative(*sigma) && *sigma <= limits::MAX_NOISE_SIGMA,
                name("sigma"),
                "a number from 0 to 3",
                sigma,
            )?;
            require(
                positive(*correlation_s),
                name("correlation_s"),
                "a positive number of seconds",
                correlation_s,
            )?;
        }
        Pattern::Counts { counts, replay, plan } => {
            require(
                !counts.is_empty() && counts.len() <= limits::MAX_WINDOWS,
                name("counts"),
                "a list of 1 to 1000000 counts",
                format!("{} values", counts.len()),
            )?;
            if let Some((i, c)) = counts.iter().enumerate().find(|(_, c)| !non_negative(**c)) {
                require(false, name(&format!("counts[{i}]")), "a non-negative number", c)?;
            }
            if *replay == Replay::Exact {
                if let Some((i, c)) = counts.iter().enumerate().find(|(_, c)| c.fract() != 0.0) {
                    require(
                        false,
                        name(&format!("counts[{i}]")),
                        "a whole number of tasks for an exact replay (resample a trace of rates)",
                        c,
                    )?;
                }
            }
            check_plan(plan.as_deref(), name)?;
        }
        Pattern::Arrivals {
            times_s,
            processing_s,
            size_px,
            plan,
            ..
        } => {
            require(
                !times_s.is_empty() && times_s.len() <= limits::MAX_TASKS,
                name("times_s"),
                "a list of 1 to 1000000 arrival times",
                format!("{} values", times_s.len()),
            )?;
            let mut previous = 0.0;
            for (i, t) in times_s.iter().enumerate() {
                require(
                    non_negative(*t) && *t >= previous,
                    name(&format!("times_s[{i}]")),
                    &format!("a number of seconds, not before the previous arrival ({previous})"),
                    t,
                )?;
                previous = *t;
            }
            if let Some(p) = processing_s {
                require(
                    p.len() == times_s.len(),
                    name("processing_s"),
                    &format!("one processing time per arrival ({})", times_s.len()),
                    format!("{} values", p.len()),
                )?;
                if let Some((i, t)) = p
                    .iter()
                    .enumerate()
                    .find(|(_, t)| !(positive(**t) && **t <= limits::MAX_PROCESSING_S))
                {
                    require(
                        false,
                        name(&format!("processing_s[{i}]")),
                        "a number of seconds above 0 and at most 3600",
                        t,
                    )?;
                }
            }
            if let Some(px) = size_px {
                require(
                    px.len() == times_s.len(),
                    name("size_px"),
                    &format!("one image size per arrival ({})", times_s.len()),
                    format!("{} values", px.len()),
                )?;
            }
            check_plan(plan.as_deref(), name)?;
        }
    }
    Ok(())
}

/// A plan supplied with a trace: relative rates per second, as many as a trace may have.
fn check_plan(plan: Option<&[f64]>, name: &dyn Fn(&str) -> String) -> Result<(), WorkloadError> {
    let Some(plan) = plan else { return Ok(()) };
    require(
        !plan.is_empty() && plan.len() <= limits::MAX_WINDOWS,
        name("plan"),
        "a list of 1 to 1000000 planned rates",
        format!("{} values", plan.len()),
    )?;
    if let Some((i, r)) = plan.iter().enumerate().find(|(_, r)| !non_negative(**r)) {
        require(false, name(&format!("plan[{i}]")), "a non-negative number", r)?;
    }
    require(
        plan.iter().sum::<f64>() > 0.0,
        name("plan"),
        "a plan with some positive rate",
        "only zeros",
    )
}

/// Refuses a phase whose parts contradict each other — checked after its limits, so that an
/// impossible size is reported as such first. A trace must carry its own task count (it does
/// not follow from the base rate), and its duration must be the trace's length: a longer one
/// would repeat the last second, a shorter one drop the end.
pub fn check_consistency(phase: &Phase, name: &dyn Fn(&str) -> String) -> Result<(), WorkloadError> {
    let d = phase.duration_s;
    let inconsistent = |field: &str, reason: String| {
        Err(WorkloadError::Inconsistent {
            field: name(field),
            reason,
        })
    };
    match &phase.pattern {
        Pattern::Trace { weights, total } => {
            if total.is_none() {
                return inconsistent(
                    "total",
                    "a trace needs its task count (total); it does not follow from the base rate \
                     (for a trace of per-second counts, use kind counts)"
                        .into(),
                );
            }
            if d.ceil() as usize != weights.len() {
                return inconsistent(
                    "duration_s",
                    format!(
                        "{d} s does not match the trace's {} weights (one per second)",
                        weights.len()
                    ),
                );
            }
        }
        Pattern::Counts { counts, plan, .. } => {
            if d.ceil() as usize != counts.len() {
                return inconsistent(
                    "duration_s",
                    format!(
                        "{d} s does not match the trace's {} counts (one per second)",
                        counts.len()
                    ),
                );
            }
            check_plan_length(plan.as_deref(), d, name)?;
        }
        Pattern::Arrivals { times_s, plan, .. } => {
            let last = times_s.last().copied().unwrap_or(0.0);
            if last >= d {
                return inconsistent(
                    "duration_s",
                    format!("{d} s ends before the trace's last arrival at {last} s"),
                );
            }
            check_plan_length(plan.as_deref(), d, name)?;
        }
        _ => {}
    }
    Ok(())
}

fn check_plan_length(
    plan: Option<&[f64]>,
    d: f64,
    name: &dyn Fn(&str) -> String,
) -> Result<(), WorkloadError> {
    match plan {
        Some(p) if p.len() != d.ceil() as usize => Err(WorkloadError::Inconsistent {
            field: name("plan"),
            reason: format!("{} planned rates for a phase of {d} s (one per second)", p.len()),
        }),
        _ => Ok(()),
    }
}

/// The tasks a phase generates and its number of rate windows, as unbounded numbers (so that a
/// nonsensical configuration is reported as it is, not as a saturated integer).
pub fn phase_load(phase: &Phase, base_rate_per_min: f64, window_s: f64) -> (f64, f64) {
    let tasks = phase.task_count(base_rate_per_min);
    let windows = match &phase.pattern {
        // An exact replay keeps one count per second, whatever the window.
        Pattern::Counts {
            counts,
            replay: Replay::Exact,
            ..
        } => (counts.len() as f64).max((phase.duration_s / window_s).round().max(1.0)),
        _ => (phase.duration_s / window_s).round().max(1.0),
    };
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
        check_load("the workload", tasks, windows)?;
        for (i, phase) in self.phases.iter().enumerate() {
            let field = |p: &str| match p {
                "duration_s" | "multiplier" => format!("phases[{i}].{p}"),
                _ => format!("phases[{i}].pattern.{p}"),
            };
            check_consistency(phase, &field)?;
            if let Pattern::Arrivals {
                size_px: Some(px), ..
            } = &phase.pattern
            {
                let range = self.min_size_px..=self.max_size_px;
                if let Some((j, x)) = px.iter().enumerate().find(|(_, x)| !range.contains(x)) {
                    require(
                        false,
                        field(&format!("size_px[{j}]")),
                        &format!(
                            "an image size from min_size_px to max_size_px ({} to {})",
                            self.min_size_px, self.max_size_px
                        ),
                        x,
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
