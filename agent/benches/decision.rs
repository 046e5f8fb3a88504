//! Decision latency: observation building plus the policy, per decision — the old network
//! without a load calendar and with one (the outlook read from the rate plan at every
//! decision), and the guided policy `serve` bundles (the 30 s observer history, the staffing
//! rule's state and its correction network's plain forward pass).

use agent::guided::GuidedPolicy;
use agent::neural::NeuralPolicy;
use agent::observe::{observe, Calendar, FarmMetrics, Observer};
use agent::policy::Policy;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn decision(c: &mut Criterion) {
    let mut policy = NeuralPolicy::new_random(1, 8.0).expect("policy");
    let prev = FarmMetrics {
        time_s: 8.0,
        pushed_total: 40,
        popped_total: 38,
        ..FarmMetrics::default()
    };
    let now = FarmMetrics {
        time_s: 16.0,
        queue_length: 12,
        pushed_total: 100,
        popped_total: 88,
        oldest_age_s: 1.2,
        completed_total: 80,
        qos_met_total: 78,
        completion_sum_s: 120.0,
        completion_max_s: 3.1,
        workers_live: 11,
        workers_busy: 10,
        workers_starting: 1,
        oldest_slack_s: 0.4,
        queued_work_s: 17.5,
    };
    c.bench_function("observe + forward pass (neural decide)", |b| {
        b.iter(|| {
            let obs = observe(black_box(&prev), black_box(&now));
            black_box(policy.decide(&obs))
        })
    });
    let calendar = Calendar::new(
        workload::RatePlan::new(&workload::WorkloadConfig::default(), 1),
        4.0,
        5.0,
    );
    c.bench_function("observe + calendar outlook + forward pass (neural decide)", |b| {
        b.iter(|| {
            let obs = observe(black_box(&prev), black_box(&now)).with_calendar(Some(black_box(&calendar)));
            black_box(policy.decide(&obs))
        })
    });
}

fn guided(c: &mut Criterion) {
    let mut policy = GuidedPolicy::new(1, 1.0).expect("policy");
    let weights: Vec<f32> = (0..policy.weight_count())
        .map(|i| ((i * 7919) % 1000) as f32 / 5000.0 - 0.1)
        .collect();
    policy.set_weights(&weights).expect("weights");
    let mut observer = Observer::new();
    let mut t = 0.0;
    let snapshot = |t: f64| FarmMetrics {
        time_s: t,
        queue_length: 3,
        pushed_total: (t * 7.5) as u64,
        popped_total: (t * 7.5) as u64 - 3,
        oldest_age_s: 0.4,
        completed_total: (t * 7.4) as u64,
        qos_met_total: (t * 7.35) as u64,
        completion_sum_s: t * 7.4 * 1.6,
        workers_live: 14,
        workers_busy: 11,
        queued_work_s: 4.5,
        oldest_slack_s: 0.8,
        ..FarmMetrics::default()
    };
    // A full 30 s history, as at any decision past the first half-minute.
    for _ in 0..40 {
        t += 1.0;
        observer.observe(snapshot(t));
    }
    c.bench_function(
        "observe (30 s history) + staffing rule + correction (guided decide)",
        |b| {
            b.iter(|| {
                t += 1.0;
                let obs = observer
                    .observe(black_box(snapshot(t)))
                    .expect("history")
                    .with_startup(5.0);
                black_box(policy.decide(&obs))
            })
        },
    );
}

criterion_group!(benches, decision, guided);
criterion_main!(benches);
