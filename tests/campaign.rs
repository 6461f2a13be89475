//! The CI slice of the load and fault campaign (`benches/campaign/run.sh` runs the full one):
//! about 100 connections for 10 s of labeled and unlabeled uploads (1 KiB – 10 MiB, some
//! deflate-coded; HTTP/1.1 and HTTP/2 in intercepted tunnels; max_body 4 MiB, so the big ones
//! stream on where policy allows it) through `labelgate serve` on the shipped config, with slow
//! attackers, failing origins, the spool held by stalled uploads, two reloads and a SIGTERM
//! drain under load. No allowed upload may arrive altered, no labeled file whole, nothing may
//! crash or hang.

#[test]
fn the_campaign_slice_holds_every_invariant() {
    let work = std::env::temp_dir().join(format!("labelgate-campaign-slice-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let opts = labelgate_campaign::Options::slice(env!("CARGO_BIN_EXE_labelgate").into(), work.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let report = runtime.block_on(labelgate_campaign::run(&opts)).unwrap();
    let shown = serde_json::to_string_pretty(&report).unwrap();
    println!("{shown}");
    assert!(report.violations().is_empty(), "{:?}\n{shown}", report.violations());
    // The parts of the campaign really ran.
    assert!(report.slow_cut > 0, "slow attackers were cut: {shown}");
    assert!(report.faults.len() >= 3, "failing origins were reached: {shown}");
    assert!(report.reloads_logged >= 1, "the reloads were applied: {shown}");
    assert!(report.audit.get("block").copied().unwrap_or(0) > 0, "{shown}");
    assert!(report.unavailable_during_exhaustion > 0, "the spool held by stalled uploads refused some uploads for now: {shown}");
    let _ = std::fs::remove_dir_all(&work);
}
