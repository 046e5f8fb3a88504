//! Runs policies on identical seeded workloads in the simulator and summarises the results.

use crate::observe::{Calendar, Metrics, Observer};
use crate::policy::Policy;
use crate::sim::{EpisodeResult, SimConfig, Simulator};
use crate::spec::{PolicyError, PolicySpec, Setting};
use serde::Serialize;
use workload::{RatePlan, Workload, WorkloadConfig};

/// One decision of an episode, for time-series plots.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepRecord {
    pub time_s: f64,
    pub workers: u32,
    pub target: u32,
    pub queue_length: u64,
    pub arrival_rate: f64,
    pub window_qos: f64,
}

/// Runs one episode of `policy` on `sim`; with a `calendar`, every observation carries its
/// outlook.
pub fn run_episode(
    policy: &mut dyn Policy,
    sim: &mut Simulator,
    calendar: Option<&Calendar>,
) -> (EpisodeResult, Vec<StepRecord>) {
    run_episode_with(sim, calendar, |_, obs| policy.decide(obs))
}

/// Runs `sim` to the end, asking `decide` (which may also look at the simulator, as the
/// imitation trainer's expert does) for the target at every decision period.
pub fn run_episode_with(
    sim: &mut Simulator,
    calendar: Option<&Calendar>,
    decide: impl FnMut(&Simulator, &crate::observe::Observation) -> u32,
) -> (EpisodeResult, Vec<StepRecord>) {
    let (result, steps, _) = run_episode_clamped(sim, calendar, decide);
    (result, steps)
}

/// Like [`run_episode_with`], also counting the decisions whose target lay outside the
/// simulator's `min_workers..=max_workers` and was clamped to it.
pub fn run_episode_clamped(
    sim: &mut Simulator,
    calendar: Option<&Calendar>,
    mut decide: impl FnMut(&Simulator, &crate::observe::Observation) -> u32,
) -> (EpisodeResult, Vec<StepRecord>, u32) {
    let period = sim.config().decision_period_s;
    let (lo, hi) = (sim.config().min_workers, sim.config().max_workers);
    let rules = sim
        .config()
        .node_rules
        .then(|| crate::scaling_rules::Limits::node(lo, hi));
    let mut rule_state = crate::scaling_rules::DecisionState::default();
    let mut current = sim.config().initial_workers.clamp(lo, hi.max(lo));
    let mut clamped = 0;
    let mut observer = Observer::new();
    observer.observe(sim.snapshot());
    let mut steps = Vec::new();
    let mut t = 0.0;
    while !sim.finished() {
        t += period;
        sim.advance_to(t);
        let now = sim.snapshot();
        let Some(obs) = observer.observe(now.clone()) else {
            continue;
        };
        let obs = obs
            .with_calendar(calendar)
            .with_startup(sim.config().startup_delay_s);
        let wanted = decide(sim, &obs);
        if wanted.clamp(lo, hi.max(lo)) != wanted {
            clamped += 1;
        }
        let planned = match &rules {
            Some(limits) => crate::scaling_rules::plan(wanted, &obs, current, limits, &mut rule_state).target,
            None => wanted,
        };
        let target = sim.scale_to(planned);
        current = target;
        steps.push(StepRecord {
            time_s: now.time_s,
            workers: now.workers_live + now.workers_starting,
            target,
            queue_length: now.queue_length,
            arrival_rate: obs.arrival_rate,
            window_qos: obs.window_qos,
        });
    }
    (sim.result(), steps, clamped)
}

/// The policies `eval --baselines all` compares: the baselines and the references.
pub const BASELINES: &[PolicySpec] = &[
    PolicySpec::Static { workers: Some(8.0) },
    PolicySpec::Static { workers: Some(12.0) },
    PolicySpec::Static { workers: Some(16.0) },
    PolicySpec::ReactiveAverage,
    PolicySpec::ReactiveMaximum,
    PolicySpec::QueueProportional { target: None },
    PolicySpec::LoadProportional { headroom: None },
    PolicySpec::Oracle,
    PolicySpec::RateOracle {
        risk: None,
        wait_s: None,
    },
    PolicySpec::MpcOracle { horizon_s: None },
];

/// A policy's results averaged over the episodes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicySummary {
    pub policy: String,
    pub episodes: usize,
    pub qos: f64,
    pub mean_workers: f64,
    pub max_workers: f64,
    pub worker_seconds: f64,
    /// Mean workers ÷ offered load (1.0 is the unreachable ideal).
    pub workers_per_load: f64,
    pub scaling_actions: f64,
    pub completion_p50_s: f64,
    pub completion_p99_s: f64,
    /// Decisions per episode whose target lay outside the worker bounds and was clamped to
    /// them (`static:40` under a bound of 32 is clamped at every decision).
    pub clamped: f64,
}

/// Evaluates `policies` over `episodes` seeded workloads (episode i uses seed + i for every
/// policy, so all see the same tasks); each is reported under its name as written by
/// `PolicySpec`'s `Display`. With `calendar`, every observation carries the load
/// calendar's outlook (the workload's planned rates); policies that do not read it are
/// unaffected.
pub fn evaluate(
    policies: &[PolicySpec],
    workload: &WorkloadConfig,
    sim: &SimConfig,
    episodes: usize,
    seed: u64,
    calendar: bool,
) -> Result<Vec<PolicySummary>, PolicyError> {
    Ok(evaluate_with_series(policies, workload, sim, episodes, seed, calendar)?.0)
}

/// Like [`evaluate`], also returning each policy's decisions in the first episode.
#[allow(clippy::type_complexity)]
pub fn evaluate_with_series(
    policies: &[PolicySpec],
    workload: &WorkloadConfig,
    sim: &SimConfig,
    episodes: usize,
    seed: u64,
    calendar: bool,
) -> Result<(Vec<PolicySummary>, Vec<(String, Vec<StepRecord>)>), PolicyError> {
    // Every episode generates the whole workload: a configuration beyond the generator's
    // limits would exhaust memory long before it finished.
    workload.validate()?;
    let mut out = Vec::new();
    let mut series = Vec::new();
    for spec in policies {
        let name = spec.to_string();
        let mut results = Vec::new();
        let mut clamped = 0u64;
        for e in 0..episodes as u64 {
            let tasks: Vec<_> = Workload::new(workload, seed + e).collect();
            let mut simulator = Simulator::new(sim.clone(), tasks.clone(), seed + e);
            let schedule = calendar.then(|| {
                Calendar::new(
                    RatePlan::new(workload, seed + e),
                    sim.decision_period_s,
                    sim.startup_delay_s,
                )
            });
            let mut policy = spec.build(&Setting::Episode {
                simulator: &simulator,
                tasks: &tasks,
                workload,
                seed: seed + e,
                calendar,
            })?;
            let (result, steps, clamps) =
                run_episode_clamped(&mut simulator, schedule.as_ref(), |_, obs| policy.decide(obs));
            clamped += u64::from(clamps);
            if e == 0 {
                series.push((name.clone(), steps));
            }
            results.push(result);
        }
        let n = results.len().max(1) as f64;
        let avg = |f: &dyn Fn(&EpisodeResult) -> f64| results.iter().map(f).sum::<f64>() / n;
        out.push(PolicySummary {
            policy: name.clone(),
            episodes,
            qos: avg(&|r| r.qos),
            mean_workers: avg(&|r| r.mean_workers),
            max_workers: avg(&|r| f64::from(r.max_workers)),
            worker_seconds: avg(&|r| r.worker_seconds),
            workers_per_load: avg(&|r| r.mean_workers / r.offered_load.max(1e-9)),
            scaling_actions: avg(&|r| f64::from(r.scaling_actions)),
            completion_p50_s: avg(&|r| r.completion_p50_s),
            completion_p99_s: avg(&|r| r.completion_p99_s),
            clamped: clamped as f64 / n,
        });
    }
    Ok((out, series))
}

/// The summaries as a Markdown table. A `clamped` column (decisions per episode clamped to the
/// worker bounds) appears when any policy was clamped, so that no bound acts unseen.
pub fn table(rows: &[PolicySummary]) -> String {
    let any_clamped = rows.iter().any(|r| r.clamped > 0.0);
    let mut s = String::from(
        "| policy | QoS % | mean workers | max workers | worker-s | workers ÷ load | scaling actions | p50 s | p99 s |",
    );
    s.push_str(if any_clamped {
        " clamped |\n|---|---|---|---|---|---|---|---|---|---|\n"
    } else {
        "\n|---|---|---|---|---|---|---|---|---|\n"
    });
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.1} | {:.0} | {:.2} | {:.1} | {:.2} | {:.2} |",
            r.policy,
            r.qos * 100.0,
            r.mean_workers,
            r.max_workers,
            r.worker_seconds,
            r.workers_per_load,
            r.scaling_actions,
            r.completion_p50_s,
            r.completion_p99_s
        ));
        if any_clamped {
            s.push_str(&format!(" {:.1} |", r.clamped));
        }
        s.push('\n');
    }
    s
}

/// A line for under the table naming the policies whose targets were clamped to the worker
/// bounds `min_workers..=max_workers`, if any were.
pub fn clamp_note(rows: &[PolicySummary], min_workers: u32, max_workers: u32) -> Option<String> {
    let clamped: Vec<String> = rows
        .iter()
        .filter(|r| r.clamped > 0.0)
        .map(|r| format!("{} ({:.1} decisions per episode)", r.policy, r.clamped))
        .collect();
    (!clamped.is_empty()).then(|| {
        format!(
            "Clamped to the worker bounds {min_workers}..={max_workers} (--min-workers/--max-workers): {}; their results are those of the clamped targets.",
            clamped.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_sees_the_same_tasks_and_runs_are_reproducible() {
        let names = BASELINES.to_vec();
        let run = || {
            evaluate(
                &names,
                &WorkloadConfig::default(),
                &SimConfig::default(),
                2,
                11,
                true,
            )
        };
        let (a, b) = (run().unwrap(), run().unwrap());
        assert_eq!(a, b);
        assert_eq!(a.len(), names.len());
        for r in &a {
            assert!(r.qos >= 0.0 && r.qos <= 1.0);
            assert!(r.workers_per_load > 0.5, "{r:?}");
        }
        // A static farm far above the load meets almost every deadline.
        let big = evaluate(
            &[PolicySpec::Static { workers: Some(32.0) }],
            &WorkloadConfig::default(),
            &SimConfig::default(),
            1,
            11,
            true,
        )
        .unwrap();
        assert!(big[0].qos > 0.95, "{:?}", big[0]);
    }

    #[test]
    fn the_clairvoyant_reference_stays_in_lockstep_and_beats_the_static_line() {
        let names = vec![
            PolicySpec::MpcOracle { horizon_s: None },
            PolicySpec::Static { workers: Some(14.0) },
        ];
        let r = evaluate(
            &names,
            &WorkloadConfig::default(),
            &SimConfig::default(),
            2,
            5,
            true,
        )
        .unwrap();
        let (mpc, fixed) = (&r[0], &r[1]);
        // Its forks replay the real simulator exactly: if the shadow drifted, the chosen counts
        // would stop preventing misses and QoS would fall well below this.
        assert!(mpc.qos >= 0.995, "{mpc:?}");
        assert!(
            mpc.mean_workers < fixed.mean_workers - 1.0,
            "{mpc:?} vs {fixed:?}"
        );
        let again = evaluate(
            &names[..1],
            &WorkloadConfig::default(),
            &SimConfig::default(),
            2,
            5,
            true,
        )
        .unwrap();
        assert_eq!(again[0], *mpc, "deterministic");
        let huge = WorkloadConfig {
            base_rate_per_min: 1e9,
            ..WorkloadConfig::default()
        };
        let e = evaluate(&names[..1], &huge, &SimConfig::default(), 1, 5, true).unwrap_err();
        assert!(e.to_string().contains("would generate 3800000000 tasks"), "{e}");
        // A horizon that is no number never reaches an episode.
        assert!("mpc-oracle:x".parse::<PolicySpec>().is_err());
    }

    #[test]
    fn a_clamped_policy_says_so() {
        let policies = [
            PolicySpec::Static { workers: Some(40.0) },
            PolicySpec::Static { workers: Some(12.0) },
        ];
        let workload = WorkloadConfig::default();
        let capped = evaluate(&policies, &workload, &SimConfig::default(), 2, 3, false).unwrap();
        // Every decision of static:40 asks for 40 and gets 32: one per 8 s period.
        assert!(capped[0].clamped > 25.0, "{:?}", capped[0]);
        assert_eq!(capped[0].max_workers, 32.0);
        assert_eq!(capped[1].clamped, 0.0);
        let text = table(&capped);
        assert!(text.lines().next().unwrap().ends_with("| clamped |"), "{text}");
        let note = clamp_note(&capped, 1, 32).unwrap();
        assert!(note.starts_with("Clamped to the worker bounds 1..=32"), "{note}");
        assert!(
            note.contains("static:40 (") && !note.contains("static:12"),
            "{note}"
        );
        let wide = SimConfig {
            max_workers: 48,
            ..SimConfig::default()
        };
        let free = evaluate(&policies, &workload, &wide, 2, 3, false).unwrap();
        assert_eq!(free[0].clamped, 0.0);
        assert_eq!(free[0].max_workers, 40.0);
        assert!(clamp_note(&free, 1, 48).is_none());
        assert!(!table(&free).contains("clamped"));
    }
}
