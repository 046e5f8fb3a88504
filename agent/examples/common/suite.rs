//! A suite of workloads and the static line, shared by the research examples.
#![allow(dead_code)]

use agent::eval::run_episode;
use agent::sim::{SimConfig, Simulator};
use agent::spec::{PolicySpec, Setting};
use workload::{Pattern, Phase, Workload, WorkloadConfig};

pub fn phase(name: &str, multiplier: f64, duration_s: f64, pattern: Pattern) -> Phase {
    Phase {
        name: name.into(),
        multiplier,
        duration_s,
        pattern,
    }
}

pub fn suite() -> Vec<(&'static str, WorkloadConfig, f64)> {
    let original = WorkloadConfig::default();
    let shuffled = WorkloadConfig {
        shuffle_phases: true,
        ..original.clone()
    };
    let rate200 = WorkloadConfig {
        base_rate_per_min: 200.0,
        ..original.clone()
    };
    let rate400s = WorkloadConfig {
        base_rate_per_min: 400.0,
        shuffle_phases: true,
        ..original.clone()
    };
    let diurnal = WorkloadConfig {
        phases: vec![phase(
            "diurnal",
            1.0,
            600.0,
            Pattern::Oscillation {
                min: 0.2,
                max: 1.8,
                cycles: 1.0,
            },
        )],
        ..original.clone()
    };
    let ramp = WorkloadConfig {
        phases: vec![phase(
            "ramp",
            1.0,
            600.0,
            Pattern::Oscillation {
                min: 0.3,
                max: 1.7,
                cycles: 0.5,
            },
        )],
        ..original.clone()
    };
    let steps = WorkloadConfig {
        phases: [0.5, 1.5, 0.8, 1.2, 0.4]
            .iter()
            .map(|m| phase("step", *m, 120.0, Pattern::Steady))
            .collect(),
        ..original.clone()
    };
    let bursty = WorkloadConfig {
        phases: vec![
            phase(
                "calm",
                0.6,
                120.0,
                Pattern::Burst {
                    height: 4.0,
                    width_s: 5.0,
                    count: 3,
                },
            ),
            phase(
                "busy",
                1.0,
                120.0,
                Pattern::Burst {
                    height: 3.0,
                    width_s: 8.0,
                    count: 2,
                },
            ),
        ],
        ..original.clone()
    };
    vec![
        ("original", original, 5.0),
        ("shuffled", shuffled, 5.0),
        ("rate200", rate200, 5.0),
        ("rate400-shuffled", rate400s, 5.0),
        ("diurnal", diurnal, 5.0),
        ("ramp", ramp, 5.0),
        ("steps", steps, 5.0),
        ("bursty-0.1s", bursty.clone(), 0.1),
        ("bursty-5s", bursty, 5.0),
    ]
}

pub fn run(spec: &PolicySpec, w: &WorkloadConfig, startup: f64, episodes: u64) -> (f64, f64) {
    run_at(spec, w, startup, episodes, 1.0)
}

/// [`run`] with decisions every `period_s`.
pub fn run_at(
    spec: &PolicySpec,
    w: &WorkloadConfig,
    startup: f64,
    episodes: u64,
    period_s: f64,
) -> (f64, f64) {
    let (mut qos, mut workers) = (0.0, 0.0);
    for i in 0..episodes {
        let seed = 1000 + i;
        let tasks: Vec<_> = Workload::new(w, seed).collect();
        let config = SimConfig {
            decision_period_s: period_s,
            startup_delay_s: startup,
            max_workers: 80,
            ..SimConfig::default()
        };
        let mut sim = Simulator::new(config, tasks.clone(), seed);
        let mut p = spec
            .build(&Setting::Episode {
                simulator: &sim,
                tasks: &tasks,
                workload: w,
                seed,
                calendar: false,
            })
            .expect("policy");
        let r = run_episode(p.as_mut(), &mut sim, None).0;
        qos += r.qos;
        workers += r.mean_workers;
    }
    (qos / episodes as f64, workers / episodes as f64)
}

/// The policy's (QoS, mean workers) on a workload, the static workers reaching that QoS
/// (interpolated), and the saving.
pub fn compare(spec: &PolicySpec, w: &WorkloadConfig, startup: f64, episodes: u64) -> (f64, f64, f64, f64) {
    let (q, m) = run(spec, w, startup, episodes);
    let mut prev: Option<(f64, f64)> = None;
    let mut equivalent = f64::NAN;
    for n in 1..=80u32 {
        let s: PolicySpec = format!("static:{n}").parse().expect("static");
        let (sq, sm) = run(&s, w, startup, episodes);
        if sq >= q {
            equivalent = match prev {
                Some((pq, pm)) if sq > pq => pm + (sm - pm) * (q - pq) / (sq - pq),
                _ => sm,
            };
            break;
        }
        prev = Some((sq, sm));
    }
    (q, m, equivalent, 1.0 - m / equivalent)
}

/// The static line of a workload: (QoS, mean workers) of static N for N = 1, 2, ... until the
/// QoS reaches 100 % (or 80 workers).
pub fn static_line(w: &WorkloadConfig, startup: f64, episodes: u64) -> Vec<(f64, f64)> {
    let mut line = Vec::new();
    for n in 1..=80u32 {
        let s: PolicySpec = format!("static:{n}").parse().expect("static");
        let point = run(&s, w, startup, episodes);
        line.push(point);
        if point.0 >= 0.99999 {
            break;
        }
    }
    line
}

/// The mean workers a static farm needs for QoS `q`, interpolated on `line`.
pub fn static_equivalent(line: &[(f64, f64)], q: f64) -> f64 {
    let mut prev: Option<(f64, f64)> = None;
    for &(sq, sm) in line {
        if sq >= q {
            return match prev {
                Some((pq, pm)) if sq > pq => pm + (sm - pm) * (q - pq) / (sq - pq),
                _ => sm,
            };
        }
        prev = Some((sq, sm));
    }
    line.last().map_or(f64::NAN, |p| p.1)
}

/// The evaluation presets (docs/workloads.md), each at a 5 s start-up, and the bursty ones
/// also at 0.1 s (local processes).
pub fn presets() -> Vec<(String, WorkloadConfig, f64)> {
    let mut out = Vec::new();
    for p in workload::presets::PRESETS {
        let w = workload::presets::preset(p.name).expect("preset");
        out.push((format!("{} (5 s)", p.name), w.clone(), 5.0));
        if matches!(
            p.name,
            "bursty-mmpp" | "noisy" | "trace-bursty" | "fast-oscillation" | "original"
        ) {
            out.push((format!("{} (0.1 s)", p.name), w, 0.1));
        }
    }
    out
}
