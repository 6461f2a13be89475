//! Runs extraction on one file in a loop (for profiling): `cargo run --release --example loop -- FILE [N]`.
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: loop FILE [N]");
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let bytes = std::fs::read(&path).expect("readable file");
    let start = std::time::Instant::now();
    let mut labels = 0;
    for _ in 0..n {
        labels += labelgate_extract::extract(&bytes).map(|e| e.labels.len()).unwrap_or(0);
    }
    println!("{:?} per call, {labels} labels", start.elapsed() / n as u32);
}
