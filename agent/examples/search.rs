//! Research: random search of the `erlang` rule's parameters against the suite.
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
    let suite = common::suite();
    let log_uniform =
        |rng: &mut rand_chacha::ChaCha8Rng, lo: f64, hi: f64| (rng.gen_range(lo.ln()..hi.ln())).exp();
    let mut best = (f64::NEG_INFINITY, String::new());
    for _ in 0..trials {
        let p = [
            log_uniform(&mut rng, 0.05, 0.9),
            log_uniform(&mut rng, 0.3, 2.0),
            log_uniform(&mut rng, 0.01, 1.0),
            log_uniform(&mut rng, 0.01, 1.0),
            log_uniform(&mut rng, 5.0, 60.0),
            log_uniform(&mut rng, 3.0, 12.0),
            log_uniform(&mut rng, 1.0, 20.0),
        ];
        let name = format!(
            "erlang:{}",
            p.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(":")
        );
        let spec: PolicySpec = name.parse().expect("spec");
        let mut score = 0.0;
        let mut detail = Vec::new();
        for (wname, w, startup) in &suite {
            let (q, _, _, saving) = common::compare(&spec, w, *startup, episodes);
            let shortfall = (0.995 - q).max(0.0) * 100.0;
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
