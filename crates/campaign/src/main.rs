//! `labelgate-campaign`: the load and fault campaign, or the peak-RSS measurement, against a
//! `labelgate` binary; prints the report as JSON and exits 1 when an invariant broke.
//!
//! ```text
//! labelgate-campaign run  LABELGATE WORKDIR [CONNECTIONS] [SECONDS] [MODE]
//! labelgate-campaign rss  LABELGATE WORKDIR [CONCURRENCY] [MIB] [MODE]
//! ```

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: labelgate-campaign run|rss LABELGATE WORKDIR [CONNECTIONS|CONCURRENCY] [SECONDS|MIB] [hold|stream]");
        std::process::exit(2)
    };
    if args.len() < 3 {
        usage();
    }
    let number = |i: usize, default: u64| args.get(i).map_or(Some(default), |v| v.parse().ok()).unwrap_or_else(|| usage());
    let mode: &'static str = match args.get(5).map(String::as_str) {
        None | Some("hold") => "hold",
        Some("stream") => "stream",
        Some(_) => usage(),
    };
    let (labelgate, work) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("labelgate-campaign: {e}");
            std::process::exit(1)
        }
    };
    match args[0].as_str() {
        "run" => {
            let mut opts = labelgate_campaign::Options::slice(labelgate, work);
            opts.connections = number(3, 100) as usize;
            opts.duration = Duration::from_secs(number(4, 10));
            opts.slow = (opts.connections / 20).max(3);
            opts.mode = mode;
            if opts.connections > 200 {
                opts.spool_quota = 1 << 30;
                opts.stall_bytes = 256 << 20;
            }
            match runtime.block_on(labelgate_campaign::run(&opts)) {
                Ok(report) => {
                    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
                    let violations = report.violations();
                    for v in &violations {
                        eprintln!("VIOLATION: {v}");
                    }
                    std::process::exit(if violations.is_empty() { 0 } else { 1 });
                }
                Err(e) => {
                    eprintln!("labelgate-campaign: {e}");
                    std::process::exit(1)
                }
            }
        }
        "rss" => {
            let (concurrency, mib) = (number(3, 300) as usize, number(4, 10) as usize);
            match runtime.block_on(labelgate_campaign::peak_rss(&labelgate, &work, concurrency, mib << 20, mode)) {
                Ok((kib, answers)) => {
                    println!(
                        "{}",
                        serde_json::json!({"concurrency": concurrency, "size_mib": mib, "mode": mode, "peak_rss_mib": kib as f64 / 1024.0, "answers": answers})
                    );
                }
                Err(e) => {
                    eprintln!("labelgate-campaign: {e}");
                    std::process::exit(1)
                }
            }
        }
        _ => usage(),
    }
}
