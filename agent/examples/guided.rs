//! Research driver for the guided policy: trains (ES) and prints the curve, then writes the
//! model: `cargo run --release -p agent --example guided -- OUT.safetensors [GENERATIONS] [rule|nn|all] [MISS_WEIGHT] [SEED] [R:W:...: starting rule parameters]`.

use agent::guided::GuidedPolicy;
use agent::train_guided::{random_episode, train_guided, GuidedTrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .first()
        .cloned()
        .unwrap_or_else(|| "/tmp/guided.safetensors".into());
    let generations: u32 = args.get(1).map_or(Ok(60), |s| s.parse())?;
    let rule_only: bool = args.get(2).is_some_and(|s| s == "rule");
    let correction_only: bool = args.get(2).is_some_and(|s| s == "nn");
    let miss_weight: f64 = args.get(3).map_or(Ok(4.0), |s| s.parse())?;
    let seed: u64 = args.get(4).map_or(Ok(1), |s| s.parse())?;
    let config = GuidedTrainConfig {
        seed,
        generations,
        rule_only,
        correction_only,
        miss_weight,
        ..GuidedTrainConfig::default()
    };
    let start = std::time::Instant::now();
    let mut policy = GuidedPolicy::new(seed, config.decision_period_s)?;
    if let Some(start) = args.get(5) {
        let values: Vec<f64> = start.split(':').map(|v| v.parse()).collect::<Result<_, _>>()?;
        policy.params = agent::policy::StaffingParams::from_slice(&values);
    }
    let (policy, _) = train_guided(
        policy,
        &config,
        |rng| random_episode(rng, config.decision_period_s),
        |p| {
            eprintln!(
                "gen {:3} return {:7.2} qos {:6.2} % workers {:5.2} | original {:6.2} % {:5.2} [{:.0} s]",
                p.generation,
                p.mean_return,
                p.mean_qos * 100.0,
                p.mean_workers,
                p.original_qos * 100.0,
                p.original_workers,
                start.elapsed().as_secs_f64()
            )
        },
    )?;
    eprintln!("rule params {:?}", policy.params);
    policy.save(std::path::Path::new(&out))?;
    Ok(())
}
