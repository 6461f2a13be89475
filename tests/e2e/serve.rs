//! `labelgate serve` as users run it: the real binary on the embedded default config, curl as
//! the client (explicit proxy), a real origin on loopback.

use crate::common::*;
use sha2::{Digest, Sha256};
use std::process::Command;
use std::sync::atomic::Ordering;

#[test]
fn curl_through_labelgate_serve_on_the_default_config() {
    let (origin, count) = origin();
    let (_serve, proxy) = serve();
    let labeled = corpus("lab_caf_identity-baseline-discipline-template.docx");
    let clean = corpus("unl_markitdown_test.pdf");
    let url = format!("http://{origin}/upload");

    let (page, code) = curl(proxy, &["-T", labeled.to_str().unwrap(), &url]);
    assert_eq!(code, "403", "{page}");
    assert!(page.contains("Upload blocked") && page.contains("sanctioned applications"), "{page}");
    assert_eq!(count.load(Ordering::SeqCst), 0, "the origin never sees a blocked upload");

    let (page, code) = curl(proxy, &["-F", &format!("file=@{}", labeled.display()), &url]);
    assert_eq!(code, "403", "{page}");
    assert!(page.contains("lab_caf_identity-baseline-discipline-template.docx"));

    let (reply, code) = curl(proxy, &["-T", clean.to_str().unwrap(), &url]);
    assert_eq!(code, "200", "{reply}");
    let sha: String = Sha256::digest(std::fs::read(&clean).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(reply, format!("stored {sha}"), "byte-exact at the origin");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn curl_https_through_interception_trusting_the_exported_ca() {
    let dir = std::env::temp_dir().join(format!("labelgate-serve-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_serve, proxy, admin, ca_pem, origin) = serve_intercepting(&dir);
    let url = format!("https://{origin}/upload");
    let cacert = ["--cacert", ca_pem.to_str().unwrap()];

    let labeled = corpus("lab_d365_headless-commerce-lab.pdf");
    let (page, code) = curl(proxy, &[&cacert[..], &["-T", labeled.to_str().unwrap(), &url]].concat());
    assert_eq!(code, "403", "{page}");
    assert!(page.contains("Upload blocked"), "{page}");

    let clean = corpus("unl_gc_pco-summary-word.docx");
    let (reply, code) = curl(proxy, &[&cacert[..], &["-T", clean.to_str().unwrap(), &url]].concat());
    assert_eq!(code, "200", "{reply}");
    let sha: String = Sha256::digest(std::fs::read(&clean).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(reply, format!("stored {sha}"));

    // Without labelgate's CA the client refuses the minted certificate.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", &format!("http://{proxy}"), &url])
        .output()
        .unwrap();
    assert!(!out.status.success(), "curl must not trust an unknown CA");
    let (metrics, _) = get(&format!("http://{admin}/metrics"));
    assert!(metrics.contains("labelgate_certificates_minted_total 1"), "{metrics}");
    assert!(metrics.contains("labelgate_certificate_cache_hits_total 2"), "three handshakes for one host: one mint, two hits\n{metrics}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn admin_listener_serves_health_metrics_and_pac() {
    let (origin, _) = origin();
    let (_serve, proxy, admin) = serve_with(&[]);
    assert_eq!(get(&format!("http://{admin}/healthz")).1, "200");
    assert_eq!(get(&format!("http://{admin}/readyz")).1, "200");
    let (pac, code) = get(&format!("http://{admin}/proxy.pac"));
    assert_eq!(code, "200");
    assert!(pac.contains(&format!("PROXY {proxy}")), "{pac}");
    let labeled = corpus("lab_caf_identity-baseline-discipline-template.docx");
    let (_, code) = curl(proxy, &["-T", labeled.to_str().unwrap(), &format!("http://{origin}/u")]);
    assert_eq!(code, "403");
    let (metrics, code) = get(&format!("http://{admin}/metrics"));
    assert_eq!(code, "200");
    assert!(
        metrics.contains("labelgate_transactions_total{action=\"block\",rule=\"Labeled files stay in sanctioned apps\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("labelgate_labels_seen_total{label=\"unknown\"} 1"), "label ids the catalog does not know are one series");
    assert!(metrics.contains("labelgate_inspection_seconds_count 1"));
    assert_eq!(get(&format!("http://{admin}/nope")).1, "404");
}

#[test]
fn a_real_prometheus_scrapes_the_metrics_and_answers_queries_over_them() {
    // Debian's Prometheus (installed by scripts/test.sh) scrapes /metrics every second on
    // loopback; its HTTP API then answers for a counter labelgate incremented and for the
    // inspection-latency histogram.
    let dir = std::env::temp_dir().join(format!("labelgate-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (origin, _) = origin();
    let (_serve, proxy, admin) = serve_with(&[]);
    let labeled = corpus("lab_caf_identity-baseline-discipline-template.docx");
    assert_eq!(curl(proxy, &["-T", labeled.to_str().unwrap(), &format!("http://{origin}/u")]).1, "403");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: labelgate\n    static_configs:\n      - targets: ['{admin}']\n"
        ),
    )
    .unwrap();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus is installed by scripts/test.sh (Debian package prometheus)");
    let _prometheus = Kill(prometheus);
    let query = |q: &str| -> Option<String> {
        let url = format!("http://127.0.0.1:{port}/api/v1/query?query={}", percent(q));
        let (body, code) = get(&url);
        if code != "200" {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"][0]["value"][1].as_str().map(str::to_string)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let blocked = loop {
        if let Some(v) = query(r#"sum(labelgate_transactions_total{job="labelgate",action="block"})"#) {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "Prometheus never answered for labelgate's series");
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(blocked, "1", "one blocked upload, as scraped");
    assert_eq!(query(r#"up{job="labelgate"}"#).as_deref(), Some("1"));
    let count = query("labelgate_inspection_seconds_count").expect("the latency histogram is scraped");
    assert_eq!(count, "1");
    // The quantile an SRE watches: finite, within the histogram's buckets.
    let p99: f64 = query("histogram_quantile(0.99, labelgate_inspection_seconds_bucket)").unwrap().parse().unwrap();
    assert!(p99 > 0.0 && p99 <= 60.0, "{p99}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PromQL query as a URL query value.
fn percent(q: &str) -> String {
    q.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[test]
fn the_admin_listener_speaks_tls_when_configured_and_must_beyond_loopback() {
    let dir = std::env::temp_dir().join(format!("labelgate-admin-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=labelgate-admin",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(dir.join("admin.key"))
        .arg("-out")
        .arg(dir.join("admin.crt"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let config = dir.join("labelgate.toml");
    std::fs::write(&config, "[admin]\ntls_cert = \"admin.crt\"\ntls_key = \"admin.key\"\n").unwrap();
    let (_serve, _proxy, admin) = serve_with(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    let https = Command::new("curl")
        .args(["-s", "-o", "-", "--cacert"])
        .arg(dir.join("admin.crt"))
        .arg(format!("https://{admin}/healthz"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&https.stdout), "ok\n", "{}", String::from_utf8_lossy(&https.stderr));
    let plain =
        Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{admin}/healthz")]).output().unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200", "no clear-text answer");
    // Beyond loopback without TLS: a `check` error, and `serve` refuses to start.
    let open = dir.join("open.toml");
    std::fs::write(&open, "[admin]\nlisten = \"0.0.0.0:9180\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_labelgate")).args(["check", "--config", open.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("open.toml:2:1: error: [admin] listen 0.0.0.0:9180 is reachable beyond loopback"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}
