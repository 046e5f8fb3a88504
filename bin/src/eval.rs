//! `autoscale-node eval`: compare policies in the simulator on identical seeded workloads.

use agent::sim::SimConfig;
use clap::Args;
use functions::workload::WorkloadConfig;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A trained policy file to evaluate beside the baselines.
    #[arg(long, env = "AUTOSCALE_POLICY")]
    pub policy: Option<String>,
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
    /// Shuffle the phase order per episode.
    #[arg(long, env = "AUTOSCALE_SHUFFLE_PHASES")]
    pub shuffle_phases: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, env = "AUTOSCALE_EVAL_JSON")]
    pub json: Option<std::path::PathBuf>,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    if args.episodes == 0 {
        anyhow::bail!("--episodes must be at least 1");
    }
    if !(args.startup_delay_s.is_finite() && args.startup_delay_s >= 0.0) {
        anyhow::bail!("--startup-delay-s must be a non-negative number");
    }
    let mut policies: Vec<String> = match args.baselines.as_str() {
        "all" => agent::policy::BASELINES.iter().map(|s| s.to_string()).collect(),
        "none" => Vec::new(),
        list => list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    if let Some(p) = &args.policy {
        policies.insert(0, p.clone());
    }
    if policies.is_empty() {
        anyhow::bail!("nothing to evaluate: give --policy FILE and/or --baselines");
    }
    let workload = WorkloadConfig {
        shuffle_phases: args.shuffle_phases,
        ..WorkloadConfig::default()
    };
    let sim = SimConfig {
        startup_delay_s: args.startup_delay_s,
        ..SimConfig::default()
    };
    let start = Instant::now();
    let rows = agent::eval::evaluate(&policies, &workload, &sim, args.episodes, args.seed)?;
    let elapsed = start.elapsed().as_secs_f64();
    println!("{}", agent::eval::table(&rows));
    let episodes = rows.len() * args.episodes;
    println!(
        "{episodes} episodes of {} tasks in {elapsed:.2} s ({:.0} episodes/s, one core)",
        functions::workload::Workload::new(&workload, args.seed).count(),
        episodes as f64 / elapsed.max(1e-9)
    );
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rows)?;
        std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
