//! The node: the pieces of `autoscale-node serve` and `run` that tie the broker, the agent and
//! the functions together — the control loop, the scalers, the HTTP endpoint and the `scale`
//! request protocol. The CLI in `main.rs` only parses flags and calls into here.

pub mod allocator;
pub mod http;
pub mod keda;
pub mod node;
pub mod requests;
pub mod scaler;
pub mod stats;

use agent::policy::Policy;
use agent::spec::{BundledModels, PolicySpec, Setting};
use workload::WorkloadConfig;

/// mimalloc, as Redis ships with jemalloc: the broker and the Lua interpreter allocate many
/// small short-lived objects per command, where glibc's allocator cost ~10 % of a scripted
/// enqueue (`perf`); with it, EVALSHA of the enqueue script gains ~12 % at both pipeline depths
/// (`scripts/bench-broker.sh`) and 1,000,000 queued elements take the same memory.
/// (Declared in the library so the binary and every test that links it use the same one.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator's name, for INFO `mem_allocator`.
pub const MEM_ALLOCATOR: &str = "mimalloc";

/// The policies trained by `train` and bundled in the binary (see models/README.md): for a
/// node that sees only the farm's metrics — `serve`, or `run --no-calendar` — and for a node
/// that also knows the load calendar (`run`, which drives the emitter), trained with the
/// calendar's outlook among its inputs.
pub const BUNDLED_MODELS: BundledModels<'static> = BundledModels {
    metrics: include_bytes!("../../models/model.safetensors"),
    calendar: include_bytes!("../../models/calendar.safetensors"),
};

/// The decision period when none is asked for and the policy has none of its own: the
/// original controller's step.
pub const DEFAULT_DECISION_PERIOD_S: f64 = 8.0;

/// The node's policy for `spec` (`None` for `manual`: only `scale` changes the target) and the
/// decision period it runs at: a trained model's own (asking for another is refused: its rate
/// features and what it learned about start-up delays assume its period), else `asked`, else
/// 8 s. `calendar` is the workload whose load calendar the node knows (`run` without
/// `--no-calendar`): `bundled` is then the calendar model, and `calendar[:RISK[:WAIT_S]]` —
/// [`agent::policy::RateOracle`] reading the outlook of the run's load calendar
/// ([`run_calendar`]) — can run, provisioning before a planned rise.
pub fn node_policy(
    spec: &PolicySpec,
    asked: Option<f64>,
    calendar: Option<&WorkloadConfig>,
) -> anyhow::Result<(Option<Box<dyn Policy>>, f64)> {
    let period = decision_period(asked, None)?;
    let policy = match spec {
        PolicySpec::Manual => None,
        spec => Some(spec.build(&Setting::Node {
            decision_period_s: period,
            calendar,
            bundled: BUNDLED_MODELS,
        })?),
    };
    let period = decision_period(asked, policy.as_ref().and_then(|p| p.decision_period_s()))?;
    Ok((policy, period))
}

/// The decision period: `asked` if given (a positive number, equal to the policy's own if it
/// has one), else the policy's own, else [`DEFAULT_DECISION_PERIOD_S`].
pub fn decision_period(asked: Option<f64>, own: Option<f64>) -> anyhow::Result<f64> {
    match (asked, own) {
        (Some(a), _) if !(a.is_finite() && a > 0.0) => {
            anyhow::bail!("--decision-period-s must be a positive number")
        }
        (_, Some(o)) if !agent::neural::PERIOD_RANGE.contains(&o) => {
            anyhow::bail!(
                "the policy's own decision period {o} s is not within {:?} s",
                agent::neural::PERIOD_RANGE
            )
        }
        (Some(a), Some(o)) if (a - o).abs() > 1e-9 => {
            anyhow::bail!("--decision-period-s {a} differs from the {o} s the policy was trained with")
        }
        (Some(a), _) => Ok(a),
        (None, Some(o)) => Ok(o),
        (None, None) => Ok(DEFAULT_DECISION_PERIOD_S),
    }
}

/// The load calendar of a run of `workload` seeded with `seed`, in workload time (the node's
/// clock): the planned rates, looking one period plus `startup_s` (workload seconds) ahead.
pub fn run_calendar(
    workload: &WorkloadConfig,
    seed: u64,
    decision_period_s: f64,
    startup_s: f64,
) -> agent::observe::Calendar {
    let unscaled = WorkloadConfig {
        time_scale: 1.0,
        ..workload.clone()
    };
    agent::observe::Calendar::new(
        workload::RatePlan::new(&unscaled, seed),
        decision_period_s,
        startup_s,
    )
}
