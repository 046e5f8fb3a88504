//! `autoscale-node eval`: compare policies in the simulator on identical seeded workloads.

use crate::limits;
use agent::sim::SimConfig;
use agent::spec::PolicySpec;
use clap::Args;
use std::io::Write;
use std::time::Instant;
use workload::{WorkloadConfig, WorkloadError};

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A trained policy file to evaluate beside the baselines (or any policy name).
    #[arg(long, env = "AUTOSCALE_POLICY")]
    pub policy: Option<PolicySpec>,
    /// Policies to compare (comma-separated names, e.g. `static:12,reactive-average`), `all`
    /// for every baseline, or `none`.
    #[arg(long, env = "AUTOSCALE_BASELINES", default_value = "all")]
    pub baselines: String,
    /// Episodes per policy; episode i uses seed + i for every policy.
    #[arg(long, env = "AUTOSCALE_EPISODES", default_value_t = 10)]
    pub episodes: usize,
    /// Base seed of the workloads.
    #[arg(long, env = "AUTOSCALE_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Mean worker start-up delay in seconds (≈5 for OpenFaaS cold starts, ≈0.1 locally).
    #[arg(long, env = "AUTOSCALE_STARTUP_DELAY_S", default_value_t = 5.0)]
    pub startup_delay_s: f64,
    /// Seconds between decisions [default: the policy file's own period, else 8 s — the
    /// original controller's step].
    #[arg(long, env = "AUTOSCALE_DECISION_PERIOD_S")]
    pub decision_period_s: Option<f64>,
    /// Workload file (JSON of the workload configuration: base_rate_per_min, phases, ...; see
    /// docs/workloads.md, and --print-workload for a start), checked against the generator's
    /// limits (at most 1,000,000 tasks and 1,000,000 rate windows; see docs/node.md); default:
    /// the original four-phase workload.
    #[arg(long, env = "AUTOSCALE_WORKLOAD", conflicts_with = "workload_preset")]
    pub workload: Option<std::path::PathBuf>,
    /// A named evaluation workload instead of a file (see docs/workloads.md).
    #[arg(long, env = "AUTOSCALE_WORKLOAD_PRESET", value_parser = preset_names())]
    pub workload_preset: Option<String>,
    #[command(flatten)]
    pub trace: crate::trace_args::TraceArgs,
    /// Print the effective workload (default, file, preset, trace and overrides applied) as
    /// JSON and exit: a start for a workload file.
    #[arg(long)]
    pub print_workload: bool,
    /// The fewest workers any policy may have.
    #[arg(long, env = "AUTOSCALE_MIN_WORKERS", default_value_t = 1)]
    pub min_workers: u32,
    /// The most workers any policy may have; a policy asking for more is clamped, and the
    /// report says so [default: 32, raised (and reported) when the workload's busiest 10 s
    /// need more or a static policy asks for more].
    #[arg(long, env = "AUTOSCALE_MAX_WORKERS")]
    pub max_workers: Option<u32>,
    /// Override the base rate (tasks per minute at multiplier 1).
    #[arg(long, env = "AUTOSCALE_BASE_RATE")]
    pub base_rate: Option<f64>,
    /// Shuffle the phase order per episode.
    #[arg(long, env = "AUTOSCALE_SHUFFLE_PHASES")]
    pub shuffle_phases: bool,
    /// Withhold the load calendar (the workload's planned rates) from the policies, as under
    /// `serve`; `rate-oracle` then cannot run.
    #[arg(long, env = "AUTOSCALE_NO_CALENDAR")]
    pub no_calendar: bool,
    /// Apply only the worker bounds to the policies' decisions, not the node's other scaling
    /// rules (idle farm held, scale-down cooldown and hysteresis) that `serve` and `run`
    /// apply: the policies' raw trade-offs, as measured before the simulator had the rules.
    #[arg(long)]
    pub no_node_rules: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, env = "AUTOSCALE_EVAL_JSON")]
    pub json: Option<std::path::PathBuf>,
    /// Write a report here: eval.json, eval.md, timeseries.svg/.png (first episode of every
    /// policy) and scatter.svg (QoS against worker-seconds).
    #[arg(long, env = "AUTOSCALE_REPORT")]
    pub report: Option<std::path::PathBuf>,
}

/// The presets `--workload-preset` accepts, each with its description for `--help`.
fn preset_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        workload::presets::PRESETS
            .iter()
            .map(|p| clap::builder::PossibleValue::new(p.name).help(p.description)),
    )
}

/// The workload the flags describe: default, file or preset; then the trace, the shuffle and
/// the base rate; checked against the generator's limits (every episode holds the whole
/// workload) with the source named in errors.
fn effective_workload(args: &EvalArgs) -> anyhow::Result<WorkloadConfig> {
    let mut workload = match (&args.workload, &args.workload_preset) {
        (Some(path), _) => crate::trace_args::read_workload(path)?,
        (None, Some(name)) => workload::presets::preset(name)?,
        (None, None) => WorkloadConfig::default(),
    };
    let traced = args.trace.apply(&mut workload)?;
    if args.shuffle_phases {
        workload.shuffle_phases = true;
    }
    if let Some(rate) = args.base_rate {
        if !(rate.is_finite() && rate > 0.0) {
            anyhow::bail!("--base-rate must be a positive number, got {rate}");
        }
        if traced {
            anyhow::bail!("--base-rate does not apply to --trace: a trace's counts are its rates");
        }
        workload.base_rate_per_min = rate;
    }
    workload
        .validate()
        .map_err(|e| match (&args.workload, args.base_rate) {
            (_, Some(rate)) if matches!(e, WorkloadError::TooManyTasks { .. }) => {
                anyhow::anyhow!("--base-rate {rate}: {e}")
            }
            (Some(path), _) => anyhow::anyhow!("{}: {e}", path.display()),
            (None, _) => match (&args.trace.trace, &args.workload_preset) {
                (Some(path), _) => anyhow::anyhow!("{}: {e}", path.display()),
                (None, Some(name)) => anyhow::anyhow!("workload preset {name}: {e}"),
                (None, None) => anyhow::anyhow!("{e}"),
            },
        })?;
    Ok(workload)
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    crate::train::single_threaded_tensors();
    limits::check("--episodes", args.episodes, &limits::EPISODES)?;
    limits::check(
        "--startup-delay-s",
        args.startup_delay_s,
        &limits::STARTUP_DELAY_S,
    )?;
    if let Some(p) = args.decision_period_s {
        limits::check("--decision-period-s", p, &limits::DECISION_PERIOD_S)?;
    }
    if let Some(max) = args.max_workers {
        limits::check("--max-workers", max, &(1..=limits::MAX_WORKERS))?;
    }
    limits::check(
        "--min-workers",
        args.min_workers,
        &(1..=args.max_workers.unwrap_or(limits::MAX_WORKERS)),
    )?;
    let workload = effective_workload(&args)?;
    if args.print_workload {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string_pretty(&workload)?)?;
        return Ok(());
    }
    let mut policies: Vec<PolicySpec> = match args.baselines.as_str() {
        "all" => agent::eval::BASELINES.to_vec(),
        "none" => Vec::new(),
        list => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?,
    };
    if let Some(p) = &args.policy {
        policies.insert(0, p.clone());
    }
    if policies.is_empty() {
        anyhow::bail!("nothing to evaluate: give --policy FILE and/or --baselines");
    }
    // A trained policy was trained at one decision period; evaluating it at another would
    // misread its rate features.
    let model_period = match &args.policy {
        Some(PolicySpec::Model(path)) => Some(agent::spec::model_period(path)?),
        _ => None,
    };
    let decision_period_s = autoscale_node::decision_period(args.decision_period_s, model_period)?;
    let (max_workers, raised) = match args.max_workers {
        Some(max) => (max, None),
        None => {
            let largest_static = policies
                .iter()
                .filter_map(|p| match p {
                    PolicySpec::Static { workers: Some(n) } => {
                        Some(n.round().clamp(0.0, f64::from(u32::MAX)) as u32)
                    }
                    _ => None,
                })
                .max();
            crate::trace_args::default_max_workers(&workload, args.seed, args.episodes, largest_static)
        }
    };
    if args.min_workers > max_workers {
        anyhow::bail!(
            "--min-workers {} is above the bound of {max_workers} workers",
            args.min_workers
        );
    }
    let sim = SimConfig {
        startup_delay_s: args.startup_delay_s,
        decision_period_s,
        min_workers: args.min_workers,
        max_workers,
        node_rules: !args.no_node_rules,
        ..SimConfig::default()
    };
    let start = Instant::now();
    let (rows, series) = agent::eval::evaluate_with_series(
        &policies,
        &workload,
        &sim,
        args.episodes,
        args.seed,
        !args.no_calendar,
    )?;
    let elapsed = start.elapsed().as_secs_f64();
    // What bounded the policies, when it was not the default: said under the table.
    let mut notes: Vec<String> = Vec::new();
    if args.min_workers != 1 || args.max_workers.is_some() {
        notes.push(format!("Worker bounds: {}..={max_workers}.", args.min_workers));
    }
    notes.extend(raised.map(|why| format!("Worker bounds: {}..={max_workers}; {why}.", args.min_workers)));
    notes.extend(agent::eval::clamp_note(&rows, args.min_workers, max_workers));
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        let write = |name: &str, text: String| -> anyhow::Result<()> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
        };
        write("eval.json", serde_json::to_string_pretty(&rows)?)?;
        let source = match (&args.workload, &args.workload_preset) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(name)) => format!("preset {name}"),
            (None, None) => "the original four phases".to_string(),
        };
        let source = match args.trace.describe() {
            Some(trace) => format!("{source} with its phases replaced by the {trace}"),
            None => source,
        };
        write(
            "eval.md",
            format!(
                "# Evaluation\n\n{} episodes per policy, seed {}, workload {}, base rate {}/min, start-up delay {} s, decisions every {} s, shuffled phases: {}, load calendar told to the policies: {}.\n\n{}{}",
                args.episodes,
                args.seed,
                source,
                workload.base_rate_per_min,
                args.startup_delay_s,
                decision_period_s,
                workload.shuffle_phases,
                if args.no_calendar { "no" } else { "yes" },
                agent::eval::table(&rows),
                notes
                    .iter()
                    .map(|n| format!("\n{n}\n"))
                    .collect::<String>()
            ),
        )?;
        // Each chart as SVG and PNG.
        agent::plot::write_chart(&dir.join("timeseries.svg"), |f| {
            agent::plot::timeseries(&series, f)
        })?;
        agent::plot::write_chart(&dir.join("scatter.svg"), |f| agent::plot::scatter(&rows, f))?;
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rows)?;
        std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    // Files first, then the terminal: `eval | head` closes the pipe early, which must end the
    // command quietly (main treats a broken pipe as a normal end) with the report written.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", agent::eval::table(&rows))?;
    for note in &notes {
        writeln!(out, "{note}")?;
    }
    let episodes = rows.len() * args.episodes;
    writeln!(
        out,
        "{episodes} episodes of {} tasks in {elapsed:.2} s ({:.0} episodes/s, one core)",
        workload::Workload::new(&workload, args.seed).count(),
        episodes as f64 / elapsed.max(1e-9)
    )?;
    if let Some(dir) = &args.report {
        writeln!(out, "report written to {}", dir.display())?;
    }
    Ok(())
}
