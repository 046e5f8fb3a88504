//! Research: random search of the `staffing` rule's parameters against the suite.
//! `cargo run --release -p agent --example search -- [TRIALS] [EPISODES] [SEED]`.

#[path = "common/suite.rs"]
mod common;

use agent::spec::PolicySpec;
use rand::{Rng, SeedableRng};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trials: u32 = args.first().map_or(100, |s| s.parse().expect("trials"));
    let episodes: u64 = args.get(1).map_or(8, |s| s.parse().expect("episodes"));
    let seed: u64 = args.get(2).map_or(1, |s| s.parse().expect("seed"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let suite = common::presets();
    let lines: Vec<_> = suite
        .iter()
        .map(|(_, w, st)| common::static_line(w, *st, episodes))
        .collect();
    let log_uniform =
        |rng: &mut rand_chacha::ChaCha8Rng, lo: f64, hi: f64| (rng.gen_range(lo.ln()..hi.ln())).exp();
    let mut best = (f64::NEG_INFINITY, String::new());
    for _ in 0..trials {
        let p = [
            rng.gen_range(0.0..2.0),
            rng.gen_range(0.0..4.0),
            rng.gen_range(0.0..0.5),
            log_uniform(&mut rng, 3.0, 60.0),
            log_uniform(&mut rng, 2.5, 8.0),
            log_uniform(&mut rng, 2.0, 30.0),
            rng.gen_range(0.6..1.0),
            log_uniform(&mut rng, 30.0, 600.0),
        ];
        let name = format!(
            "staffing:{}",
            p.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(":")
        );
        let spec: PolicySpec = name.parse().expect("spec");
        let mut score = 0.0;
        let mut detail = Vec::new();
        for ((wname, w, startup), line) in suite.iter().zip(&lines) {
            let (q, m) = common::run(&spec, w, *startup, episodes);
            let saving = 1.0 - m / common::static_equivalent(line, q);
            let shortfall = (0.985 - q).max(0.0) * 100.0;
            score += saving * 100.0 - 20.0 * shortfall;
            detail.push(format!("{wname} {:.1}%/{:+.0}", q * 100.0, saving * 100.0));
        }
        score /= suite.len() as f64;
        if score > best.0 {
            best = (score, name.clone());
            println!("{score:7.2} {name} | {}", detail.join(" | "));
        }
    }
}
