//! `labelgate-fakegraph --world FILE [--listen ADDR]`: the fake identity platform + Graph on a
//! loopback port, for demos and manual tests. Point an account's `authority_url` and `graph_url`
//! at the printed URL.

use std::net::SocketAddr;

fn main() -> std::process::ExitCode {
    let mut world_path = None;
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--world" => world_path = args.next(),
            "--listen" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => listen = v,
                None => return usage("--listen needs an address like 127.0.0.1:8089"),
            },
            "-h" | "--help" => return usage(""),
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let Some(path) = world_path else { return usage("--world FILE is required") };
    let world: labelgate_fakegraph::World =
        match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("labelgate-fakegraph: {path}: {e}");
                return std::process::ExitCode::from(2);
            }
        };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("labelgate-fakegraph: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match labelgate_fakegraph::FakeGraph::bind(world, listen).await {
            Ok(fake) => {
                println!("{}", fake.url());
                eprintln!("labelgate-fakegraph: serving on {} (control plane under /_fake/)", fake.url());
                let _ = tokio::signal::ctrl_c().await;
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("labelgate-fakegraph: cannot listen on {listen}: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}

fn usage(problem: &str) -> std::process::ExitCode {
    if !problem.is_empty() {
        eprintln!("labelgate-fakegraph: {problem}");
    }
    eprintln!("usage: labelgate-fakegraph --world FILE [--listen 127.0.0.1:PORT]");
    std::process::ExitCode::from(if problem.is_empty() { 0 } else { 2 })
}
