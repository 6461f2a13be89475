//! Evaluates the bench policy N times (for instruction counts under callgrind):
//! `cargo run --release -p labelgate-benches --example policy_loop -- 100000`.

#[path = "../policy_scenario.rs"]
mod policy_scenario;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let scenario = policy_scenario::Scenario::new();
    let tx = scenario.transaction();
    let start = std::time::Instant::now();
    let mut audits = 0;
    for _ in 0..n {
        audits += usize::from(scenario.policy.evaluate(std::hint::black_box(&tx)).rule.is_some());
    }
    println!("{:?} per evaluation ({audits} matches)", start.elapsed() / n as u32);
}
