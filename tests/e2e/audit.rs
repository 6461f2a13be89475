//! The audit trail as operators run it: records written by their own thread to `[proxy]
//! audit_file`, reopened on SIGHUP after logrotate renames the file; and `audit_required` with
//! a destination that fails (`/dev/full`): allowed uploads are refused for now, blocks stay
//! blocks.

use crate::common::*;
use std::sync::atomic::Ordering;

const SHIPPED: &str = include_str!("../../config/labelgate.toml");

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn audit_records_go_to_their_file_and_sighup_reopens_it_after_logrotate() {
    let dir = std::env::temp_dir().join(format!("labelgate-audit-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("labelgate.toml");
    std::fs::write(&config, SHIPPED.replace("# audit_file = \"audit.log\"", "audit_file = \"audit.log\"")).unwrap();
    let (serve, proxy, _admin) = serve_with(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    let (origin, _) = origin();
    let labeled = corpus("lab_caf_identity-baseline-discipline-template.docx");
    assert_eq!(curl(proxy, &["-T", labeled.to_str().unwrap(), &format!("http://{origin}/first")]).1, "403");
    let log = dir.join("audit.log");
    wait_for("the first record reaches the file", || lines(&log).len() == 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
    // logrotate: rename, then SIGHUP; the next record goes to a new file at the same path.
    std::fs::rename(&log, dir.join("audit.log.1")).unwrap();
    let pid = serve.0.id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(curl(proxy, &["-T", labeled.to_str().unwrap(), &format!("http://{origin}/second")]).1, "403");
    wait_for("the second record reaches the new file", || lines(&log).len() == 1);
    let rotated = lines(&dir.join("audit.log.1"));
    assert_eq!(rotated.len(), 1);
    assert!(rotated[0]["url"].as_str().unwrap().ends_with("/first"));
    assert!(lines(&log)[0]["url"].as_str().unwrap().ends_with("/second"));
    assert!(serve.audit().is_empty(), "nothing on standard output");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn with_audit_required_a_failing_destination_refuses_allowed_uploads_and_keeps_blocking() {
    let dir = std::env::temp_dir().join(format!("labelgate-audit-required-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("labelgate.toml");
    std::fs::write(
        &config,
        SHIPPED
            .replace("# audit_file = \"audit.log\"", "audit_file = \"/dev/full\"")
            .replace("audit_required = false", "audit_required = true"),
    )
    .unwrap();
    let (_serve, proxy, admin) = serve_with(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    let (origin, count) = origin();
    let clean = corpus("unl_markitdown_test.pdf");
    let (answer, code) = curl(proxy, &["-T", clean.to_str().unwrap(), &format!("http://{origin}/clean")]);
    assert_eq!(code, "503", "no record, no pass: {answer}");
    assert_eq!(count.load(Ordering::SeqCst), 0);
    let labeled = corpus("lab_caf_identity-baseline-discipline-template.docx");
    assert_eq!(curl(proxy, &["-T", labeled.to_str().unwrap(), &format!("http://{origin}/labeled")]).1, "403", "a block stays a block");
    let (metrics, _) = get(&format!("http://{admin}/metrics"));
    let lost: u64 =
        metrics.lines().find_map(|l| l.strip_prefix("labelgate_audit_failures_total ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    assert!(lost >= 2, "every lost record is counted: {lost}");
    assert!(metrics.contains("labelgate_unavailable_total{resource=\"audit\"} 1"), "{metrics}");
    let _ = std::fs::remove_dir_all(&dir);
}
