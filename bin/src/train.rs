//! `autoscale-node train`: train the neural policy in the simulator and write it.

use crate::limits;
use agent::train::{train, TrainConfig};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Where to write the model (safetensors, with metadata).
    #[arg(long, env = "AUTOSCALE_MODEL_OUT", default_value = "model.safetensors")]
    pub out: PathBuf,
    /// Seed of every random choice; the same seed gives the same model.
    #[arg(long, env = "AUTOSCALE_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Evolution-strategies iterations (`--method guided`: 0 writes the starting policy).
    #[arg(long, env = "AUTOSCALE_GENERATIONS", default_value_t = 300)]
    pub generations: u32,
    /// Antithetic perturbation pairs per iteration.
    #[arg(long, env = "AUTOSCALE_PAIRS", default_value_t = 16)]
    pub pairs: u32,
    /// Randomised scenarios each candidate is scored on per iteration.
    #[arg(long, env = "AUTOSCALE_SCENARIOS", default_value_t = 6)]
    pub scenarios: u32,
    /// Perturbation scale.
    #[arg(long, default_value_t = 0.05)]
    pub sigma: f32,
    /// Step size.
    #[arg(long, default_value_t = 0.03)]
    pub learning_rate: f32,
    /// Reward weight of one percentage point of missed deadlines against one mean worker.
    #[arg(long, default_value_t = agent::train::MISS_WEIGHT)]
    pub miss_weight: f64,
    /// `es`: evolution strategies on the reward; `imitation`: DAgger from --expert (uses
    /// --generations as rounds, --scenarios per round, --epochs).
    #[arg(long, value_enum, default_value_t = Method::Es)]
    pub method: Method,
    /// Imitation: optimiser steps over the dataset after each round.
    #[arg(long, default_value_t = 300)]
    pub epochs: u32,
    /// Start ES from this model's weights instead of random ones.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Imitation: the reference imitated — `mpc-oracle[:HORIZON_S]` (knows the tasks) or
    /// `rate-oracle[:RISK[:WAIT_S]]` (knows the load calendar).
    #[arg(long, default_value = "mpc-oracle")]
    pub expert: agent::spec::PolicySpec,
    /// Share of training scenarios in which the policy is told the load calendar (the
    /// workload's planned rates, as `run` knows them); 0 trains a policy for `serve`.
    #[arg(long, default_value_t = agent::train::CALENDAR_SHARE)]
    pub calendar_share: f64,
    /// Seconds between the policy's decisions (stored in the model; the node and `eval` use it).
    #[arg(long, env = "AUTOSCALE_DECISION_PERIOD_S", default_value_t = 8.0)]
    pub decision_period_s: f64,
    /// `--trace`, `--trace-replay`, `--trace-plan`: a recorded trace to train on.
    #[command(flatten)]
    pub trace: crate::trace_args::TraceArgs,
    /// The fewest workers the simulated farm may have.
    #[arg(long, env = "AUTOSCALE_MIN_WORKERS", default_value_t = 1)]
    pub min_workers: u32,
    /// The most workers the simulated farm may have.
    #[arg(long, env = "AUTOSCALE_MAX_WORKERS", default_value_t = 32)]
    pub max_workers: u32,
    /// `--method guided`: which part to train.
    #[arg(long, value_enum, default_value_t = Part::Correction)]
    pub part: Part,
    /// `--method guided --trace`: the mean worker start-up delay of the farm the trace came
    /// from, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub startup_delay_s: f64,
}

impl TrainArgs {
    /// The recorded workload `--trace` asks to train on (the default workload's task sizes with
    /// the trace as its one phase), checked; `None` without `--trace`.
    pub fn trace_workload(&self) -> anyhow::Result<Option<workload::WorkloadConfig>> {
        let mut workload = workload::WorkloadConfig::default();
        if !self.trace.apply(&mut workload)? {
            return Ok(None);
        }
        workload.validate().map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}",
                self.trace
                    .trace
                    .as_deref()
                    .unwrap_or(std::path::Path::new("--trace"))
                    .display()
            )
        })?;
        Ok(Some(workload))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    Es,
    Imitation,
    /// The guided policy: the `staffing` rule's parameters and a learned correction, by ES
    /// (`--part`), on randomised workloads or on `--trace`. The serve default's kind.
    Guided,
}

/// What `--method guided` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// The rule's parameters (the correction stays as it is).
    Rule,
    /// The correction network (the rule's parameters stay as they are).
    Correction,
    Both,
}

/// candle parallelises even tiny matrix products; for a 10×32 network that costs far more
/// than it saves (measured: 5× slower). Training parallelises across candidates instead.
pub fn single_threaded_tensors() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    single_threaded_tensors();
    // `--method guided --generations 0` writes the starting policy (the rule as a file, to
    // fine-tune later or to run as it is).
    let generations = if args.method == Method::Guided {
        limits::GUIDED_GENERATIONS
    } else {
        limits::ITERATIONS
    };
    limits::check("--generations", args.generations, &generations)?;
    limits::check("--pairs", args.pairs, &limits::PER_ITERATION)?;
    limits::check("--scenarios", args.scenarios, &limits::PER_ITERATION)?;
    limits::check("--epochs", args.epochs, &limits::ITERATIONS)?;
    limits::check("--sigma", f64::from(args.sigma), &limits::STEP)?;
    limits::check("--learning-rate", f64::from(args.learning_rate), &limits::STEP)?;
    limits::check("--miss-weight", args.miss_weight, &limits::MISS_WEIGHT)?;
    limits::check(
        "--decision-period-s",
        args.decision_period_s,
        &limits::DECISION_PERIOD_S,
    )?;
    limits::check("--calendar-share", args.calendar_share, &limits::SHARE)?;
    limits::check("--max-workers", args.max_workers, &(1..=limits::MAX_WORKERS))?;
    limits::check("--min-workers", args.min_workers, &(1..=args.max_workers))?;
    let trace = args.trace_workload()?;
    if args.method == Method::Guided {
        return run_guided(&args, trace);
    }
    // The network trainers draw their own scenarios and farm bounds (agent::train,
    // agent::imitate); a flag that silently did nothing would mislead, so these are refused.
    if trace.is_some() || args.min_workers != 1 || args.max_workers != 32 {
        anyhow::bail!(
            "train --trace/--min-workers/--max-workers: only --method guided trains on a recorded workload or within worker bounds (the files were checked and are valid)"
        );
    }
    let config = TrainConfig {
        decision_period_s: args.decision_period_s,
        calendar_share: args.calendar_share,
        seed: args.seed,
        generations: args.generations,
        pairs: args.pairs,
        scenarios: args.scenarios,
        sigma: args.sigma,
        learning_rate: args.learning_rate,
        miss_weight: args.miss_weight,
    };
    let bar = progress_bar(args.generations);
    let show = |p: &agent::train::CurvePoint| show_progress(&bar, p);
    let (mut policy, curve) = match args.method {
        Method::Es => match &args.init {
            Some(path) => {
                let init = agent::neural::NeuralPolicy::load(path)?;
                if (init.decision_period_s - args.decision_period_s).abs() > 1e-9 {
                    anyhow::bail!(
                        "{} decides every {} s; pass --decision-period-s {} to continue it",
                        path.display(),
                        init.decision_period_s,
                        init.decision_period_s
                    );
                }
                agent::train::train_from(init, &config, show)?
            }
            None => train(&config, show)?,
        },
        Method::Guided => unreachable!("handled above"),
        Method::Imitation => {
            let imitation = agent::imitate::ImitateConfig {
                seed: args.seed,
                rounds: args.generations,
                scenarios: args.scenarios,
                epochs: args.epochs,
                expert: agent::imitate::Expert::from_spec(&args.expert)?,
                decision_period_s: args.decision_period_s,
                calendar_share: args.calendar_share,
                ..agent::imitate::ImitateConfig::default()
            };
            agent::imitate::imitate(&imitation, show)?
        }
    };
    bar.finish();
    policy.provenance.code_version = env!("CARGO_PKG_VERSION").into();
    policy.provenance.command = std::env::args().collect::<Vec<_>>().join(" ");
    policy.save(&args.out)?;
    let stem = args.out.with_extension("");
    let curve_csv = stem.with_extension("curve.csv");
    let mut csv =
        String::from("generation,mean_return,mean_qos,mean_workers,original_qos,original_workers\n");
    for p in &curve {
        csv.push_str(&format!(
            "{},{:.4},{:.5},{:.3},{:.5},{:.3}\n",
            p.generation, p.mean_return, p.mean_qos, p.mean_workers, p.original_qos, p.original_workers
        ));
    }
    std::fs::write(&curve_csv, csv)?;
    let curve_svg = stem.with_extension("curve.svg");
    agent::plot::write_chart(&curve_svg, |f| agent::train::curve_chart(&curve, f))?;
    println!(
        "wrote {}, {}, {} (and .png)",
        args.out.display(),
        curve_csv.display(),
        curve_svg.display()
    );
    Ok(())
}

/// `train --method guided`: ES on the guided policy — from `--init` (a guided file) or the
/// rule's defaults with a zero correction — on randomised workloads, or on `--trace` (the
/// recorded workload resampled with a new seed for every episode).
fn run_guided(args: &TrainArgs, trace: Option<workload::WorkloadConfig>) -> anyhow::Result<()> {
    use agent::guided::GuidedPolicy;
    use agent::train_guided::{random_episode, train_guided, Episode, GuidedTrainConfig};
    limits::check(
        "--startup-delay-s",
        args.startup_delay_s,
        &limits::STARTUP_DELAY_S,
    )?;
    let mut policy = match &args.init {
        Some(path) => GuidedPolicy::load(path)?,
        None => GuidedPolicy::new(args.seed, args.decision_period_s)?,
    };
    if (policy.decision_period_s - args.decision_period_s).abs() > 1e-9 {
        anyhow::bail!(
            "the policy decides every {} s; pass --decision-period-s {} (or start afresh)",
            policy.decision_period_s,
            policy.decision_period_s
        );
    }
    policy.provenance.seed = args.seed;
    let config = GuidedTrainConfig {
        seed: args.seed,
        generations: args.generations,
        pairs: args.pairs,
        scenarios: args.scenarios,
        sigma: args.sigma,
        learning_rate: args.learning_rate,
        decision_period_s: args.decision_period_s,
        miss_weight: args.miss_weight,
        rule_only: args.part == Part::Rule,
        correction_only: args.part == Part::Correction,
    };
    let sim = |startup: f64, initial: u32| agent::sim::SimConfig {
        decision_period_s: args.decision_period_s,
        startup_delay_s: startup,
        min_workers: args.min_workers,
        max_workers: args.max_workers,
        initial_workers: initial.clamp(args.min_workers, args.max_workers),
        ..agent::sim::SimConfig::default()
    };
    let bar = progress_bar(args.generations);
    let show = |p: &agent::train::CurvePoint| show_progress(&bar, p);
    let (mut policy, curve) = match trace {
        Some(workload) => {
            use rand::Rng;
            let initial = (workload::random::mean_offered_load(&workload).ceil() as u32).max(1);
            train_guided(
                policy,
                &config,
                |rng| Episode {
                    workload: workload.clone(),
                    sim: sim(args.startup_delay_s, initial),
                    seed: rng.gen(),
                },
                show,
            )?
        }
        None => train_guided(
            policy,
            &config,
            |rng| {
                let mut e = random_episode(rng, args.decision_period_s);
                e.sim = sim(e.sim.startup_delay_s, e.sim.initial_workers);
                e
            },
            show,
        )?,
    };
    bar.finish();
    policy.provenance.code_version = env!("CARGO_PKG_VERSION").into();
    policy.provenance.command = std::env::args().collect::<Vec<_>>().join(" ");
    policy.provenance.workload = match &args.trace.trace {
        _ if args.generations == 0 => "none (untrained)".into(),
        Some(path) => format!("recorded trace {}", path.display()),
        None => {
            "randomised: the workload families' sampler and the original phases, start-up 0.1-10 s".into()
        }
    };
    policy.save(&args.out)?;
    let curve_csv = args.out.with_extension("curve.csv");
    let mut csv =
        String::from("generation,mean_return,mean_qos,mean_workers,original_qos,original_workers\n");
    for p in &curve {
        csv.push_str(&format!(
            "{},{:.4},{:.5},{:.3},{:.5},{:.3}\n",
            p.generation, p.mean_return, p.mean_qos, p.mean_workers, p.original_qos, p.original_workers
        ));
    }
    std::fs::write(&curve_csv, csv)?;
    let curve_svg = args.out.with_extension("curve.svg");
    if !curve.is_empty() {
        agent::plot::write_chart(&curve_svg, |f| agent::train::curve_chart(&curve, f))?;
    }
    println!("wrote {}, {}", args.out.display(), curve_csv.display());
    Ok(())
}

/// The training progress bar: one step per iteration.
fn progress_bar(iterations: u32) -> ProgressBar {
    let bar = ProgressBar::new(u64::from(iterations));
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// One iteration done: its return, and QoS and workers on its scenarios and the original.
fn show_progress(bar: &ProgressBar, p: &agent::train::CurvePoint) {
    bar.set_message(format!(
        "return {:.1}  qos {:.2}%  workers {:.1}  | original: qos {:.2}% workers {:.1}",
        p.mean_return,
        p.mean_qos * 100.0,
        p.mean_workers,
        p.original_qos * 100.0,
        p.original_workers
    ));
    bar.inc(1);
}
