//! Research: a lower bound on what any causal policy spends for a QoS on the original workload
//! (5 s start-up). Steady Low gives no sign of the jump to Steady High at 60 s, so whatever a
//! policy holds during Low is what it has when the jump comes; reinforcements asked for at the
//! first sign of the jump arrive a start-up later. This runs "hold N until DETECT s, then as
//! many workers as wanted" for each N and reports the misses that alone cause.
//! `cargo run --release -p agent --example bound -- [EPISODES] [DETECT_S]`.

use agent::eval::run_episode_with;
use agent::sim::{SimConfig, Simulator};
use workload::{Workload, WorkloadConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let episodes: u64 = args.first().map_or(50, |s| s.parse().expect("episodes"));
    let detect: f64 = args.get(1).map_or(61.0, |s| s.parse().expect("detect"));
    let w = WorkloadConfig::default();
    println!("held during Steady Low | QoS % (all later phases unlimited) | misses per run");
    for n in 4..=16u32 {
        let (mut qos, mut misses) = (0.0, 0.0);
        for i in 0..episodes {
            let seed = 1000 + i;
            let tasks: Vec<_> = Workload::new(&w, seed).collect();
            let total = tasks.len() as f64;
            let config = SimConfig {
                decision_period_s: 1.0,
                max_workers: 80,
                initial_workers: n,
                ..SimConfig::default()
            };
            let mut sim = Simulator::new(config, tasks, seed);
            let (r, _) = run_episode_with(&mut sim, None, |s, _| if s.now() < detect { n } else { 80 });
            qos += r.qos;
            misses += (1.0 - r.qos) * total;
        }
        println!(
            "{n} | {:.3} | {:.2}",
            qos * 100.0 / episodes as f64,
            misses / episodes as f64
        );
    }
}
