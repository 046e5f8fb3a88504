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
    match name {
        "manual" => Ok(None),
        "bundled" => Ok(Some(Box::new(agent::neural::NeuralPolicy::from_bytes(
            BUNDLED_MODEL,
            "the bundled model",
        )?))),
        _ => Ok(Some(agent::policy::by_name(name, &[], decision_period_s, 5.0)?)),
    }
}
