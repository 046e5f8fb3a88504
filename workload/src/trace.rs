//! Recorded traces from CSV: arrival timestamps (optionally with each task's processing time or
//! image size) or per-second counts and rates, replayed exactly or resampled as a phase.

use crate::config::{Pattern, Phase, Replay};
use crate::limits;

/// Errors reading a trace file. Lines are numbered from 1, as an editor numbers them.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TraceError {
    #[error("trace line {line}: {reason}")]
    Bad { line: usize, reason: String },
    #[error("the trace has no data rows")]
    Empty,
}

/// A trace read from CSV, ready to become a phase.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedTrace {
    /// [`Pattern::Arrivals`] for timestamps, [`Pattern::Counts`] for per-second counts or rates.
    pub pattern: Pattern,
    /// Its length in seconds: whole seconds from the first arrival (or row) to the last.
    pub duration_s: f64,
    /// Its task count (rates are rounded to a whole total).
    pub tasks: usize,
}

impl LoadedTrace {
    /// The trace as a phase named `name` (multiplier 1: a trace's count is its own).
    pub fn phase(&self, name: &str) -> Phase {
        Phase {
            name: name.into(),
            multiplier: 1.0,
            duration_s: self.duration_s,
            pattern: self.pattern.clone(),
        }
    }

    /// Its mean arrival rate, tasks per second: what its load calendar knows by default.
    pub fn mean_rate_per_s(&self) -> f64 {
        self.tasks as f64 / self.duration_s.max(1e-9)
    }

    /// Gives the trace a load calendar of its own: relative planned rates per second (see
    /// [`plan_from_csv`]), as many as the trace has seconds.
    pub fn with_plan(mut self, plan: Vec<f64>) -> Result<LoadedTrace, TraceError> {
        let seconds = self.duration_s.ceil() as usize;
        if plan.len() != seconds {
            return Err(TraceError::Bad {
                line: 1,
                reason: format!(
                    "the plan has {} seconds of rates; the trace lasts {seconds} s",
                    plan.len()
                ),
            });
        }
        match &mut self.pattern {
            Pattern::Counts { plan: p, .. } | Pattern::Arrivals { plan: p, .. } => *p = Some(plan),
            _ => {}
        }
        Ok(self)
    }
}

/// Reads a trace from CSV text, replayed as `replay` says. The header names the columns
/// (case-insensitive, in any order, others ignored):
/// - `timestamp` (or `arrival`, `arrival_s`): one arrival per row, in seconds, non-decreasing;
///   optionally `processing_s` (or `duration_s`, `processing_time`) or `size_px` (or
///   `image_size`) per task — otherwise the calibrated model draws each task's size;
/// - `count` (or `rate`, `rate_per_s`, `requests`): tasks in each second, optionally beside a
///   `second` column (increasing; seconds it skips had no arrivals). An exact replay needs
///   whole counts; rates are resampled.
///
/// Blank lines and lines starting with `#` are skipped.
pub fn load_trace(text: &str, replay: Replay) -> Result<LoadedTrace, TraceError> {
    let table = Table::parse(text)?;
    if let Some(col) = table.pick(&["timestamp", "arrival", "arrival_s"]) {
        arrivals(&table, col, replay)
    } else if let Some(col) = table.pick(&["count", "rate", "rate_per_s", "requests"]) {
        let counts = series(&table, col, replay == Replay::Exact)?;
        let tasks = counts.iter().sum::<f64>().round();
        if tasks > limits::MAX_TASKS as f64 {
            return Err(too_many(table.header_line, tasks));
        }
        if tasks == 0.0 {
            return Err(TraceError::Bad {
                line: table.header_line,
                reason: "the trace has no arrivals (every count is 0)".into(),
            });
        }
        let duration_s = counts.len() as f64;
        Ok(LoadedTrace {
            pattern: Pattern::Counts {
                counts,
                replay,
                plan: None,
            },
            duration_s,
            tasks: tasks as usize,
        })
    } else {
        Err(TraceError::Bad {
            line: table.header_line,
            reason: format!("header {:?} has no timestamp or rate column", table.header),
        })
    }
}

/// Reads a load calendar for a trace: relative planned rates per second from CSV with a
/// `rate` (or `count`, `rate_per_s`, `requests`) column, optionally beside `second`.
pub fn plan_from_csv(text: &str) -> Result<Vec<f64>, TraceError> {
    let table = Table::parse(text)?;
    let col = table
        .pick(&["rate", "count", "rate_per_s", "requests"])
        .ok_or_else(|| TraceError::Bad {
            line: table.header_line,
            reason: format!("header {:?} has no rate column", table.header),
        })?;
    let rates = series(&table, col, false)?;
    if rates.iter().sum::<f64>() <= 0.0 {
        return Err(TraceError::Bad {
            line: table.header_line,
            reason: "the plan has no positive rate".into(),
        });
    }
    Ok(rates)
}

/// A trace resampled around its per-second rates (see [`load_trace`]), as a pattern and its
/// length in seconds.
pub fn trace_from_csv(text: &str) -> Result<(Pattern, f64), TraceError> {
    let trace = load_trace(text, Replay::Resampled)?;
    Ok((trace.pattern, trace.duration_s))
}

/// The data rows of a CSV text under its header.
struct Table<'a> {
    header: &'a str,
    header_line: usize,
    columns: Vec<String>,
    /// (line number, row)
    rows: Vec<(usize, &'a str)>,
}

impl<'a> Table<'a> {
    fn parse(text: &'a str) -> Result<Table<'a>, TraceError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(n, l)| (n + 1, l))
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let (header_line, header) = lines.next().ok_or(TraceError::Empty)?;
        let columns: Vec<String> = header.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
        let rows: Vec<(usize, &str)> = lines.collect();
        if rows.is_empty() {
            return Err(TraceError::Empty);
        }
        Ok(Table {
            header,
            header_line,
            columns,
            rows,
        })
    }

    fn pick(&self, names: &[&str]) -> Option<usize> {
        self.columns.iter().position(|c| names.contains(&c.as_str()))
    }

    /// The number in column `col` of a row: finite and non-negative, or an error naming the line.
    fn number(&self, line: usize, row: &str, col: usize) -> Result<f64, TraceError> {
        let cell = row.split(',').nth(col).map(str::trim).unwrap_or("");
        match cell.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(TraceError::Bad {
                line,
                reason: if cell.is_empty() {
                    format!("no value in column {:?}", self.columns[col])
                } else {
                    format!("{cell:?} is not a non-negative number")
                },
            }),
        }
    }
}

fn too_many(line: usize, tasks: f64) -> TraceError {
    TraceError::Bad {
        line,
        reason: format!(
            "the trace has {tasks:.0} tasks; at most {} are allowed",
            limits::MAX_TASKS
        ),
    }
}

fn arrivals(table: &Table, col: usize, replay: Replay) -> Result<LoadedTrace, TraceError> {
    if table.rows.len() > limits::MAX_TASKS {
        return Err(too_many(table.header_line, table.rows.len() as f64));
    }
    let processing_col = table.pick(&["processing_s", "duration_s", "processing_time"]);
    let size_col = table.pick(&["size_px", "image_size"]);
    let mut times = Vec::with_capacity(table.rows.len());
    let mut processing = processing_col.map(|_| Vec::with_capacity(table.rows.len()));
    let mut sizes = size_col.map(|_| Vec::with_capacity(table.rows.len()));
    let mut previous: Option<f64> = None;
    for &(line, row) in &table.rows {
        let t = table.number(line, row, col)?;
        if let Some(p) = previous {
            if t < p {
                return Err(TraceError::Bad {
                    line,
                    reason: format!("timestamp {t} is before the previous one ({p})"),
                });
            }
        }
        previous = Some(t);
        times.push(t);
        if let (Some(c), Some(out)) = (processing_col, processing.as_mut()) {
            let v = table.number(line, row, c)?;
            if !(v > 0.0 && v <= limits::MAX_PROCESSING_S) {
                return Err(TraceError::Bad {
                    line,
                    reason: format!("processing time {v} s is not above 0 and at most 3600 s"),
                });
            }
            out.push(v);
        }
        if let (Some(c), Some(out)) = (size_col, sizes.as_mut()) {
            let v = table.number(line, row, c)?;
            if v.fract() != 0.0 || !(1.0..=f64::from(u32::MAX)).contains(&v) {
                return Err(TraceError::Bad {
                    line,
                    reason: format!("image size {v} is not a whole number of pixels"),
                });
            }
            out.push(v as u32);
        }
    }
    let t0 = times[0];
    let span_s = (times[times.len() - 1] - t0).floor() + 1.0;
    // The replay keeps a number per second: a trace spanning more than the generator's window
    // limit would cost memory in proportion to its length, not its rows.
    if span_s > limits::MAX_WINDOWS as f64 {
        return Err(TraceError::Bad {
            line: table.header_line,
            reason: format!(
                "the trace spans {span_s:.0} s; at most {} s are allowed",
                limits::MAX_WINDOWS
            ),
        });
    }
    times.iter_mut().for_each(|t| *t -= t0);
    let tasks = times.len();
    Ok(LoadedTrace {
        pattern: Pattern::Arrivals {
            times_s: times,
            // One of the two: a processing time says more than the size it came from.
            size_px: if processing.is_some() { None } else { sizes },
            processing_s: processing,
            replay,
            plan: None,
        },
        duration_s: span_s,
        tasks,
    })
}

/// A per-second series from column `col` (with an optional `second` column placing each row;
/// skipped seconds are 0).
fn series(table: &Table, col: usize, whole: bool) -> Result<Vec<f64>, TraceError> {
    let second_col = table.pick(&["second", "second_s", "time_s"]);
    let mut values: Vec<f64> = Vec::new();
    let mut first: Option<f64> = None;
    for &(line, row) in &table.rows {
        let v = table.number(line, row, col)?;
        if whole && v.fract() != 0.0 {
            return Err(TraceError::Bad {
                line,
                reason: format!(
                    "{v} is not a whole count; an exact replay needs counts (resample a trace of rates)"
                ),
            });
        }
        let index = match second_col {
            None => values.len(),
            Some(c) => {
                let s = table.number(line, row, c)?;
                let s0 = *first.get_or_insert(s);
                let i = (s - s0).floor();
                if i >= limits::MAX_WINDOWS as f64 {
                    return Err(TraceError::Bad {
                        line,
                        reason: format!(
                            "second {s} lies {i:.0} s after the first; at most {} s are allowed",
                            limits::MAX_WINDOWS
                        ),
                    });
                }
                let i = i as usize;
                if !values.is_empty() && i < values.len() {
                    return Err(TraceError::Bad {
                        line,
                        reason: format!("second {s} repeats or goes back (seconds must increase)"),
                    });
                }
                i
            }
        };
        if index >= limits::MAX_WINDOWS {
            return Err(TraceError::Bad {
                line,
                reason: format!("more than {} seconds of rates", limits::MAX_WINDOWS),
            });
        }
        values.resize(index, 0.0);
        values.push(v);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WorkloadConfig;
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
        // A rate trace carries its own count (40), not one derived from the base rate.
        assert!(matches!(
            &pattern,
            Pattern::Counts { counts, replay: Replay::Resampled, .. } if counts.iter().sum::<f64>() == 40.0
        ));
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

    fn workload_of(trace: &LoadedTrace) -> WorkloadConfig {
        WorkloadConfig {
            phases: vec![trace.phase("trace")],
            ..WorkloadConfig::default()
        }
    }

    fn per_second(tasks: &[TaskSpec], seconds: usize) -> Vec<usize> {
        let mut counts = vec![0; seconds];
        for t in tasks {
            counts[t.arrival_s.floor() as usize] += 1;
        }
        counts
    }

    #[test]
    fn an_exact_replay_keeps_every_second_and_every_timestamp() {
        let text = "# a comment\nsecond,count\n0,3\n1,0\n2,7\n5,1\n";
        let trace = load_trace(text, Replay::Exact).unwrap();
        assert_eq!((trace.duration_s, trace.tasks), (6.0, 11));
        let config = workload_of(&trace);
        config.validate().unwrap();
        for seed in 0..20 {
            let tasks: Vec<TaskSpec> = Workload::new(&config, seed).collect();
            assert_eq!(per_second(&tasks, 6), vec![3, 0, 7, 0, 0, 1], "seed {seed}");
        }
        // Resampled: the total stays, the seconds are redrawn around the rates.
        let resampled = load_trace(text, Replay::Resampled).unwrap();
        let config = workload_of(&resampled);
        let moved = (0..20).any(|seed| {
            let tasks: Vec<TaskSpec> = Workload::new(&config, seed).collect();
            assert_eq!(tasks.len(), 11);
            per_second(&tasks, 6) != vec![3, 0, 7, 0, 0, 1]
        });
        assert!(moved, "resampling redraws the seconds' counts");

        let stamps = "timestamp,processing_s\n100.25,0.5\n100.5,2.0\n103.75,1.25\n";
        let trace = load_trace(stamps, Replay::Exact).unwrap();
        assert_eq!((trace.duration_s, trace.tasks), (4.0, 3));
        let config = workload_of(&trace);
        config.validate().unwrap();
        let a: Vec<TaskSpec> = Workload::new(&config, 1).collect();
        let b: Vec<TaskSpec> = Workload::new(&config, 2).collect();
        assert_eq!(a, b, "an exact replay with recorded sizes draws nothing");
        let times: Vec<f64> = a.iter().map(|t| t.arrival_s).collect();
        assert_eq!(times, vec![0.0, 0.25, 3.5]);
        let processing: Vec<f64> = a.iter().map(|t| t.processing_s).collect();
        assert_eq!(processing, vec![0.5, 2.0, 1.25]);
        assert!((a[1].deadline_s - 4.0).abs() < 1e-12);
        // Image sizes are mapped through the model; without either, the model draws.
        let sized = load_trace("arrival,size_px\n0,1024\n1,4096\n", Replay::Exact).unwrap();
        let tasks: Vec<TaskSpec> = Workload::new(&workload_of(&sized), 1).collect();
        assert_eq!(
            tasks.iter().map(|t| t.size_px).collect::<Vec<_>>(),
            vec![1024, 4096]
        );
        let drawn = load_trace("arrival\n0\n1\n", Replay::Exact).unwrap();
        let c = workload_of(&drawn);
        assert_ne!(
            Workload::new(&c, 1).collect::<Vec<_>>(),
            Workload::new(&c, 2).collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_trace_files_are_refused_with_the_line() {
        let bad = |text: &str, replay| load_trace(text, replay).unwrap_err().to_string();
        assert_eq!(
            bad("timestamp\n5\n7\n6\n", Replay::Exact),
            "trace line 4: timestamp 6 is before the previous one (7)"
        );
        assert_eq!(
            bad("second,count\n0,1\n1,-2\n", Replay::Exact),
            "trace line 3: \"-2\" is not a non-negative number"
        );
        assert_eq!(
            bad("second,count\n0,1\n1,2.5\n", Replay::Exact),
            "trace line 3: 2.5 is not a whole count; an exact replay needs counts (resample a trace of rates)"
        );
        assert!(load_trace("second,count\n0,1\n1,2.5\n", Replay::Resampled).is_ok());
        assert_eq!(
            bad("second,count\n0,1\n2,1\n2,1\n", Replay::Exact),
            "trace line 4: second 2 repeats or goes back (seconds must increase)"
        );
        assert_eq!(
            bad("count\n0\n0\n", Replay::Exact),
            "trace line 1: the trace has no arrivals (every count is 0)"
        );
        assert_eq!(bad("timestamp\n", Replay::Exact), "the trace has no data rows");
        assert_eq!(
            bad("\n# only a comment\n", Replay::Exact),
            "the trace has no data rows"
        );
        assert_eq!(
            bad("timestamp,processing_s\n0,1\n1\n", Replay::Exact),
            "trace line 3: no value in column \"processing_s\""
        );
        assert_eq!(
            bad("timestamp,processing_s\n0,0\n", Replay::Exact),
            "trace line 2: processing time 0 s is not above 0 and at most 3600 s"
        );
        assert_eq!(
            bad("timestamp,size_px\n0,12.5\n", Replay::Exact),
            "trace line 2: image size 12.5 is not a whole number of pixels"
        );
    }

    #[test]
    fn a_trace_plans_its_mean_rate_or_the_plan_given_with_it() {
        let trace = load_trace("count\n10\n0\n0\n30\n", Replay::Exact).unwrap();
        assert_eq!(trace.mean_rate_per_s(), 10.0);
        let plan = crate::plan::RatePlan::new(&workload_of(&trace), 1);
        for t in [0.5, 1.5, 2.5, 3.5] {
            assert!((plan.rate_at(t) - 10.0).abs() < 1e-9, "flat at the mean: {t}");
        }
        let rates = plan_from_csv("second,rate\n0,1\n1,1\n2,1\n3,5\n").unwrap();
        let planned = trace.clone().with_plan(rates).unwrap();
        let plan = crate::plan::RatePlan::new(&workload_of(&planned), 1);
        assert!((plan.rate_at(0.5) - 5.0).abs() < 1e-9);
        assert!((plan.rate_at(3.5) - 25.0).abs() < 1e-9);
        let e = trace.with_plan(vec![1.0; 3]).unwrap_err().to_string();
        assert_eq!(
            e,
            "trace line 1: the plan has 3 seconds of rates; the trace lasts 4 s"
        );
    }
}
