//! Prints one simulated episode of a policy, decision by decision, for looking at what a
//! policy does: `cargo run -p agent --example episode -- POLICY [PERIOD_S] [SEED] [STARTUP_S] [SUITE_WORKLOAD]`.

#[path = "common/suite.rs"]
mod common;

use agent::eval::run_episode;
use agent::sim::{SimConfig, Simulator};
use agent::spec::{PolicySpec, Setting};
use workload::{Workload, WorkloadConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec: PolicySpec = args.first().map_or("staffing", String::as_str).parse()?;
    let period: f64 = args.get(1).map_or(Ok(1.0), |s| s.parse())?;
    let seed: u64 = args.get(2).map_or(Ok(1), |s| s.parse())?;
    let startup: f64 = args.get(3).map_or(Ok(5.0), |s| s.parse())?;
    let workload = match args.get(4) {
        Some(name) => common::suite()
            .into_iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, w, _)| w)
            .ok_or("no such workload in the suite")?,
        None => WorkloadConfig::default(),
    };
    let tasks: Vec<_> = Workload::new(&workload, seed).collect();
    let config = SimConfig {
        decision_period_s: period,
        startup_delay_s: startup,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(config, tasks.clone(), seed);
    let mut policy = spec.build(&Setting::Episode {
        simulator: &sim,
        tasks: &tasks,
        workload: &workload,
        seed,
        calendar: false,
    })?;
    let (result, steps) = run_episode(policy.as_mut(), &mut sim, None);
    println!("time_s\tworkers\ttarget\tqueue\tarrival_rate\twindow_qos");
    for s in &steps {
        println!(
            "{:.0}\t{}\t{}\t{}\t{:.2}\t{:.3}",
            s.time_s, s.workers, s.target, s.queue_length, s.arrival_rate, s.window_qos
        );
    }
    eprintln!(
        "{}: QoS {:.2} %, mean workers {:.2}, max {}",
        policy.name(),
        result.qos * 100.0,
        result.mean_workers,
        result.max_workers
    );
    Ok(())
}
