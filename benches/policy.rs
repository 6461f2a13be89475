//! Policy evaluations per second on one core with 100 rules (most not matching until the end,
//! the worst realistic case for first-match evaluation).
//!
//! `cargo bench -p labelgate-benches --bench policy`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

#[path = "policy_scenario.rs"]
mod policy_scenario;

fn evaluations(c: &mut Criterion) {
    let scenario = policy_scenario::Scenario::new();
    let tx = scenario.transaction();
    let v = scenario.policy.evaluate(&tx);
    assert_eq!(v.rule.as_deref(), Some("last"), "{}", v.reason);
    let mut group = c.benchmark_group("policy");
    group.throughput(Throughput::Elements(1));
    group.bench_function("evaluate_100_rules", |b| b.iter(|| black_box(scenario.policy.evaluate(black_box(&tx)))));
    group.finish();
}

criterion_group!(benches, evaluations);
criterion_main!(benches);
