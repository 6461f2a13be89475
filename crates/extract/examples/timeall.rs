//! Times extraction of every file in a directory and prints the slowest (for finding slow paths
//! in fuzz corpora): `cargo run --release --example timeall -- DIR`.
fn main() {
    let dir = std::env::args().nth(1).expect("usage: timeall DIR");
    let mut times = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("readable dir").flatten() {
        let bytes = std::fs::read(entry.path()).expect("readable file");
        let start = std::time::Instant::now();
        let result = labelgate_extract::extract(&bytes);
        times.push((start.elapsed(), bytes.len(), entry.path(), result.map(|e| e.kind.as_str()).unwrap_or("error")));
    }
    times.sort();
    let total: std::time::Duration = times.iter().map(|t| t.0).sum();
    println!("{} files, total {:?}", times.len(), total);
    for (t, len, path, kind) in times.iter().rev().take(8) {
        println!("{t:?} {len} {kind} {}", path.display());
    }
}
