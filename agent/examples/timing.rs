//! How long one episode of the guided policy and of the bare rule take (release build).
use agent::eval::run_episode;
use agent::guided::GuidedPolicy;
use agent::policy::{Staffing, StaffingParams};
use agent::train_guided::{original_episode, random_episode};
use rand::SeedableRng;

fn main() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let episodes: Vec<_> = (0..10)
        .map(|_| random_episode(&mut rng, 1.0))
        .chain([original_episode(1.0, 1)])
        .collect();
    let mut guided = GuidedPolicy::new(1, 1.0).unwrap();
    let t = std::time::Instant::now();
    let mut decisions = 0;
    for e in &episodes {
        guided.reset();
        let (_, steps) = run_episode(&mut guided, &mut e.simulator(), None);
        decisions += steps.len();
    }
    let g = t.elapsed();
    let t = std::time::Instant::now();
    for e in &episodes {
        let mut rule = Staffing::new(StaffingParams::default(), 1.5);
        run_episode(&mut rule, &mut e.simulator(), None);
    }
    let r = t.elapsed();
    let t = std::time::Instant::now();
    for e in &episodes {
        let mut s = agent::policy::Static(12);
        run_episode(&mut s, &mut e.simulator(), None);
    }
    let st = t.elapsed();
    println!(
        "{} episodes, {decisions} decisions: guided {:?} ({:.1} µs/decision), rule {:?}, static {:?}",
        episodes.len(),
        g,
        g.as_secs_f64() * 1e6 / decisions as f64,
        r,
        st
    );
}
