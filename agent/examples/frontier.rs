//! Research: policies against the static frontier on every evaluation preset (metrics only).
//!
//! For each preset (5 s start-up, and 0.1 s for the bursty ones) it runs static farms of
//! 1, 2, … workers until the QoS reaches 100 % — the static line, what an operator who knew the
//! workload in advance could provision — and each policy, all on the same episodes (seeds
//! 1000…). A policy earns its keep on a workload when its point lies above and left of the line.
//!
//! `cargo run --release -p agent --example frontier -- [EPISODES] [OUT_DIR] [[LABEL=]SPEC[@PERIOD_S]]…`
//! writes `OUT_DIR/frontier.md` (a table) and `OUT_DIR/frontier.svg` and `.png` (one panel per
//! workload).
//! Policies run every 1 s unless `@PERIOD_S` says otherwise.

#[path = "common/suite.rs"]
mod common;

use agent::plot::FrontierPanel;
use agent::spec::PolicySpec;
use std::fmt::Write as _;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let episodes: u64 = args.first().map_or(20, |s| s.parse().expect("EPISODES"));
    let out = std::path::PathBuf::from(args.get(1).map_or("target/frontier", String::as_str));
    let specs: Vec<String> = if args.len() > 2 {
        args[2..].to_vec()
    } else {
        vec![
            "staffing".into(),
            "queue-proportional@8".into(),
            "reactive-average@8".into(),
        ]
    };
    let parsed: Vec<(String, PolicySpec, f64)> = specs
        .iter()
        .map(|s| {
            // `LABEL=SPEC@PERIOD_S`: the label shown instead of the spec.
            let (label, s) = match s.split_once('=') {
                Some((label, spec)) => (label.to_string(), spec),
                None => (s.clone(), s.as_str()),
            };
            let (spec, period) = match s.split_once('@') {
                Some((spec, p)) => (spec, p.parse().expect("PERIOD_S")),
                None => (s, 1.0),
            };
            (label, spec.parse().expect("policy"), period)
        })
        .collect();
    std::fs::create_dir_all(&out).expect("OUT_DIR");
    let mut md = String::from(
        "| workload | start-up | policy | QoS % | mean workers | static workers at that QoS | saving % |\n|---|---|---|---|---|---|---|\n",
    );
    let mut panels = Vec::new();
    for (name, w, startup) in common::presets() {
        let line = common::static_line(&w, startup, episodes);
        let mut points = Vec::new();
        for (label, spec, period) in &parsed {
            let (q, m) = common::run_at(spec, &w, startup, episodes, *period);
            let eq = common::static_equivalent(&line, q);
            let _ = writeln!(
                md,
                "| {} | {startup} s | {label} | {:.2} | {:.2} | {:.2} | {:+.1} |",
                name.split(" (").next().unwrap_or(&name),
                q * 100.0,
                m,
                eq,
                (1.0 - m / eq) * 100.0
            );
            eprintln!("{name}: {label} {:.2} % at {m:.2} (static {eq:.2})", q * 100.0);
            points.push((points.len(), m, q * 100.0));
        }
        panels.push(FrontierPanel {
            title: name,
            line: line.iter().map(|(q, m)| (*m, q * 100.0)).collect(),
            points,
        });
    }
    std::fs::write(out.join("frontier.md"), md).expect("write frontier.md");
    let labels: Vec<String> = parsed.iter().map(|p| p.0.clone()).collect();
    agent::plot::write_chart(&out.join("frontier.svg"), |f| {
        agent::plot::frontier(&panels, &labels, f)
    })
    .expect("write frontier.svg and frontier.png");
    println!(
        "wrote {0}/frontier.md, {0}/frontier.svg, {0}/frontier.png",
        out.display()
    );
}
