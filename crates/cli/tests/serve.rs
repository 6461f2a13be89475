//! `labelgate serve` as users run it: the real binary on the embedded default config, curl as
//! the client (explicit proxy), a real origin on loopback.

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/files").join(name)
}

/// A blocking origin: answers every request with the sha256 of its body; counts requests.
fn origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                seen.fetch_add(1, Ordering::SeqCst);
                let reply = format!("stored {}", Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect::<String>());
                let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}", reply.len());
            });
        }
    });
    (addr, count)
}

struct Serve(Child);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `labelgate serve` on an ephemeral port and returns it with its address.
fn serve() -> (Serve, SocketAddr) {
    let (s, proxy, _) = serve_with(&[]);
    (s, proxy)
}

/// Starts `labelgate serve` with ephemeral proxy and admin ports; returns both addresses.
fn serve_with(extra: &[&str]) -> (Serve, SocketAddr, SocketAddr) {
    let dir = std::env::temp_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_labelgate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(extra)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let (mut proxy, mut admin) = (None, None);
    while proxy.is_none() || admin.is_none() {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "serve exited before listening");
        if let Some(a) = line.trim().strip_prefix("labelgate: proxy listening on ") {
            proxy = a.parse().ok();
        }
        if let Some(a) = line.trim().strip_prefix("labelgate: admin listening on ") {
            admin = a.parse().ok();
        }
    }
    std::thread::spawn(move || for _ in stderr.lines() {});
    (Serve(child), proxy.unwrap(), admin.unwrap())
}

fn get(url: &str) -> (String, String) {
    let out = Command::new("curl").args(["-s", "-S", "-o", "-", "-w", "\n%{http_code}", url]).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (body.to_string(), code.to_string())
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

fn curl(proxy: SocketAddr, args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-o", "-", "-w", "\n%{http_code}", "-x", &format!("http://{proxy}")])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (body.to_string(), code.to_string())
}

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

/// A blocking HTTPS origin on 127.0.0.1 with its own test CA; answers with the body's sha256.
fn https_origin(dir: &std::path::Path) -> (SocketAddr, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let ca_path = dir.join("origin-ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tls.read(&mut b).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let length: usize =
                    head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                let mut body = vec![0u8; length];
                if tls.read_exact(&mut body).is_err() {
                    return;
                }
                let reply = format!("stored {}", Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect::<String>());
                let _ = write!(tls, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}", reply.len());
                let _ = tls.flush();
            });
        }
    });
    (addr, ca_path)
}

#[test]
fn curl_https_through_interception_trusting_the_exported_ca() {
    let dir = std::env::temp_dir().join(format!("labelgate-serve-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (origin, origin_ca) = https_origin(&dir);
    let state = dir.join("state");
    let export = Command::new(env!("CARGO_BIN_EXE_labelgate")).args(["ca", "export", "--state-dir"]).arg(&state).output().unwrap();
    assert!(export.status.success());
    let ca_pem = dir.join("labelgate-ca.pem");
    std::fs::write(&ca_pem, &export.stdout).unwrap();
    let (_serve, proxy, admin) = serve_with(&["--state-dir", state.to_str().unwrap(), "--upstream-ca", origin_ca.to_str().unwrap()]);
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
    assert!(metrics.contains("labelgate_certificates_minted 1"), "{metrics}");
    let _ = std::fs::remove_dir_all(&dir);
}
