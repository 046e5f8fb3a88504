//! Research: a policy against the static line on a suite of workloads (metrics only, 1 s
//! decisions). `cargo run --release -p agent --example suite -- POLICY [EPISODES] [presets]`.

#[path = "common/suite.rs"]
mod common;

use agent::spec::PolicySpec;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec: PolicySpec = args
        .first()
        .map_or("staffing", String::as_str)
        .parse()
        .expect("policy");
    let episodes: u64 = args.get(1).map_or(20, |s| s.parse().expect("episodes"));
    println!("| workload | policy QoS % | policy workers | static workers at that QoS | saving % |");
    println!("|---|---|---|---|---|");
    let workloads: Vec<(String, workload::WorkloadConfig, f64)> =
        if args.get(2).is_some_and(|s| s == "presets") {
            common::presets()
        } else {
            common::suite()
                .into_iter()
                .map(|(n, w, s)| (n.to_string(), w, s))
                .collect()
        };
    for (name, w, startup) in workloads {
        let (q, m, eq, saving) = common::compare(&spec, &w, startup, episodes);
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.1} |",
            q * 100.0,
            m,
            eq,
            saving * 100.0
        );
    }
}
