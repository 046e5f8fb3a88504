//! The node: the pieces of `autoscale-node serve` and `run` that tie the broker, the agent and
//! the functions together — the control loop, the scalers, the HTTP endpoint and the `scale`
//! request protocol. The CLI in `main.rs` only parses flags and calls into here.

pub mod control;
pub mod http;
pub mod requests;
pub mod scaler;
pub mod stats;

/// mimalloc, as Redis ships with jemalloc: the broker and the Lua interpreter allocate many
/// small short-lived objects per command, where glibc's allocator cost ~10 % of a scripted
/// enqueue (`perf`); with it, EVALSHA of the enqueue script gains ~12 % at both pipeline depths
/// (`scripts/bench-broker.sh`) and 1,000,000 queued elements take the same memory.
/// (Declared in the library so the binary and every test that links it use the same one.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator's name, for INFO `mem_allocator`.
pub const MEM_ALLOCATOR: &str = "mimalloc";

/// The policy trained by `train` and bundled in the binary (see models/README.md).
pub const BUNDLED_MODEL: &[u8] = include_bytes!("../../models/model.safetensors");

/// A policy by name: `bundled`, `manual` (`None`: only `scale` changes the target), a
/// `*.safetensors` file, or a baseline (`static:N`, `reactive-average`, ...).
pub fn policy_by_name(
    name: &str,
    decision_period_s: f64,
) -> anyhow::Result<Option<Box<dyn agent::policy::Policy>>> {
    if is_calendar(name) {
        anyhow::bail!(
            "the calendar policy needs the workload's schedule, which only `run` knows (it drives the emitter)"
        );
    }
    match name {
        "manual" => Ok(None),
        "bundled" => Ok(Some(Box::new(agent::neural::NeuralPolicy::from_bytes(
            BUNDLED_MODEL,
            "the bundled model",
        )?))),
        _ => Ok(Some(agent::policy::by_name(name, &[], decision_period_s, 5.0)?)),
    }
}

/// Whether `name` asks for the load-calendar policy (`calendar[:RISK[:WAIT_S]]`).
pub fn is_calendar(name: &str) -> bool {
    name == "calendar" || name.starts_with("calendar:")
}

/// Predictive scaling from a known schedule: `calendar[:RISK[:WAIT_S]]` is
/// [`agent::policy::RateOracle`] given the planned rates of `workload` (seeded with `seed`), in
/// workload time. It provisions for the highest planned rate until its next decision takes
/// effect — one period plus `startup_s` (workload seconds, +20 %) — so it scales up before a
/// planned rise.
pub fn calendar_policy(
    name: &str,
    workload: &functions::workload::WorkloadConfig,
    seed: u64,
    decision_period_s: f64,
    startup_s: f64,
) -> anyhow::Result<Box<dyn agent::policy::Policy>> {
    let (risk, wait_s) = agent::policy::RateOracle::target_from_name(name)?;
    // The node's clock is workload time, so the plan is too.
    let unscaled = functions::workload::WorkloadConfig {
        time_scale: 1.0,
        ..workload.clone()
    };
    Ok(Box::new(
        agent::policy::RateOracle::new(
            functions::workload::RatePlan::new(&unscaled, seed),
            unscaled.mean_processing_s,
            decision_period_s,
            startup_s,
        )
        .with_target(risk, wait_s)
        .named("calendar"),
    ))
}
