//! Recorded traces: arrival timestamps or per-second rates from CSV, replayed as a phase pattern.

use crate::config::Pattern;
use crate::limits;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Phase, WorkloadConfig};
    use crate::tasks::{TaskSpec, Workload};

    #[test]
    fn a_trace_spanning_too_long_is_refused_before_allocating() {
        let e = trace_from_csv("timestamp\n0\n1000000000000\n").unwrap_err();
        assert!(e.to_string().contains("spans 1000000000001 s"), "{e}");
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
}
