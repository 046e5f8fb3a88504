//! The flags that replay a recorded trace (`--trace`, `--trace-replay`, `--trace-plan`), shared
//! by `eval`, `train` and `run`, and the worker bounds of the simulator commands.

use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use workload::{LoadedTrace, Replay, WorkloadConfig};

#[derive(Args, Debug, Clone, Default)]
pub struct TraceArgs {
    /// Replay a recorded trace (CSV) in place of the workload's phases: a `timestamp` column
    /// (one arrival per row, seconds; optionally `processing_s` or `size_px` per task, else the
    /// calibrated model draws them) or a `count`/`rate` column (tasks per second, optionally
    /// beside `second`). Its load calendar is its mean rate (or --trace-plan), never the
    /// recorded seconds. See docs/workloads.md.
    #[arg(long, env = "AUTOSCALE_TRACE")]
    pub trace: Option<PathBuf>,
    /// `exact`: every second's count (or every timestamp) as recorded; `resampled`: a Poisson
    /// count per window around the recorded rate, only the total kept.
    #[arg(long, env = "AUTOSCALE_TRACE_REPLAY", default_value_t = Replay::Exact, requires = "trace")]
    pub trace_replay: Replay,
    /// A load calendar for the trace (CSV with a `rate` column, optionally beside `second`,
    /// one row per second of the trace): relative planned rates, scaled to the trace's count.
    #[arg(long, env = "AUTOSCALE_TRACE_PLAN", requires = "trace")]
    pub trace_plan: Option<PathBuf>,
}

impl TraceArgs {
    /// The trace, read and checked, if one was given; errors name the file (and the line).
    pub fn load(&self) -> anyhow::Result<Option<LoadedTrace>> {
        let Some(path) = &self.trace else {
            return Ok(None);
        };
        let trace = workload::load_trace(&read(path)?, self.trace_replay)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let trace = match &self.trace_plan {
            None => trace,
            Some(plan_path) => {
                let plan = workload::plan_from_csv(&read(plan_path)?)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", plan_path.display()))?;
                trace
                    .with_plan(plan)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", plan_path.display()))?
            }
        };
        Ok(Some(trace))
    }

    /// Replaces `workload`'s phases with the trace, if one was given (its other settings —
    /// task sizes, deadlines, time scale — stay); returns whether it did.
    pub fn apply(&self, workload: &mut WorkloadConfig) -> anyhow::Result<bool> {
        let Some(trace) = self.load()? else {
            return Ok(false);
        };
        let name = self
            .trace
            .as_deref()
            .and_then(Path::file_stem)
            .map_or("trace".into(), |s| s.to_string_lossy().into_owned());
        workload.phases = vec![trace.phase(&name)];
        workload.shuffle_phases = false;
        Ok(true)
    }

    /// How the report names the trace.
    pub fn describe(&self) -> Option<String> {
        let path = self.trace.as_ref()?;
        Some(format!(
            "trace {} ({} replay{})",
            path.display(),
            self.trace_replay,
            self.trace_plan
                .as_ref()
                .map_or(String::new(), |p| format!(", calendar from {}", p.display()))
        ))
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Reads a workload file (JSON of the workload configuration), naming the file in errors.
pub fn read_workload(path: &Path) -> anyhow::Result<WorkloadConfig> {
    serde_json::from_str(&read(path)?)
        .map_err(|e| anyhow::anyhow!("{} is not a workload configuration: {e}", path.display()))
}

/// The simulator's bound on the workers when `--max-workers` is not given: the default 32, or
/// more if the workload's busiest 10 s (over the first few episodes) offers more than 32
/// workers' worth of processing with 50 % headroom, or a static policy asks for more. Returns
/// the bound and, when it was raised, why.
pub fn default_max_workers(
    workload: &WorkloadConfig,
    seed: u64,
    episodes: usize,
    largest_static: Option<u32>,
) -> (u32, Option<String>) {
    const DEFAULT: u32 = 32;
    const WINDOW_S: f64 = 10.0;
    let mut peak = 0.0f64;
    for e in 0..episodes.clamp(1, 5) as u64 {
        let mut buckets: Vec<f64> = Vec::new();
        for t in workload::Workload::new(workload, seed + e) {
            let i = (t.arrival_s / workload.time_scale / WINDOW_S) as usize;
            if buckets.len() <= i {
                buckets.resize(i + 1, 0.0);
            }
            buckets[i] += t.processing_s / workload.time_scale;
        }
        peak = buckets.iter().map(|w| w / WINDOW_S).fold(peak, f64::max);
    }
    let wanted = (peak * 1.5).ceil() as u32;
    let static_n = largest_static.unwrap_or(0);
    let bound = DEFAULT.max(wanted).max(static_n).min(crate::limits::MAX_WORKERS);
    let why = if bound == DEFAULT {
        None
    } else if static_n >= wanted {
        Some(format!(
            "max workers raised from {DEFAULT} to {bound} for static:{static_n} (give --max-workers to bound it)"
        ))
    } else {
        Some(format!(
            "max workers raised from {DEFAULT} to {bound}: the workload's busiest 10 s offer {peak:.1} workers of processing (bound: 1.5 times that; give --max-workers to set it)"
        ))
    };
    (bound, why)
}
