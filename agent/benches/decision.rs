//! Decision latency: observation building plus the MLP forward pass, per decision — without a
//! load calendar (what `serve` does) and with one (what `run` does: the outlook is read from
//! the workload's rate plan at every decision).

use agent::neural::NeuralPolicy;
use agent::observe::{observe, Calendar, FarmMetrics};
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

criterion_group!(benches, decision);
criterion_main!(benches);
