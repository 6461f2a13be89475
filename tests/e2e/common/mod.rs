//! Shared by the CLI end-to-end tests: origins (plain and HTTPS with a test CA), the real
//! `labelgate serve`, and curl.

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub fn corpus(name: &str) -> PathBuf {
    labelgate_testkit::corpus_dir().join("files").join(name)
}

/// A blocking origin: answers every request with the sha256 of its body; counts requests.
pub fn origin() -> (SocketAddr, Arc<AtomicUsize>) {
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

pub struct Serve(pub Child, pub Arc<std::sync::Mutex<Vec<String>>>, pub Arc<std::sync::Mutex<Vec<String>>>);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Serve {
    /// The audit records written so far (serve's standard output), parsed.
    #[allow(dead_code)]
    pub fn audit(&self) -> Vec<serde_json::Value> {
        self.1.lock().unwrap().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Waits (up to 10 s) for a line of serve's standard error that contains `needle`.
    #[allow(dead_code)]
    pub fn log_line(&self, needle: &str) -> Option<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(l) = self.2.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits (up to 10 s) for the audit records to satisfy `done`, and returns them.
    #[allow(dead_code)]
    pub fn audit_until(&self, done: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let records = self.audit();
            if done(&records) || std::time::Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Starts `labelgate serve` on an ephemeral port and returns it with its address.
pub fn serve() -> (Serve, SocketAddr) {
    let (s, proxy, _) = serve_with(&[]);
    (s, proxy)
}

/// The one place tests open the proxy's built-in destination refusals: their origins listen on
/// loopback, at ephemeral ports. `config` is the shipped file (or one derived from it, whose
/// `allow_destinations = []` and `connect_ports = [443]` lines are rewritten) or a file
/// without a `[proxy]` table (one is added).
pub fn loopback_origins(config: &str) -> String {
    let allow = r#"allow_destinations = ["127.0.0.0/8", "::1/128", "localhost"]"#;
    let ports = r#"connect_ports = [443, "1024-65535"]"#;
    if config.contains("\nallow_destinations = []") {
        assert!(config.contains("\nconnect_ports = [443]"), "a config with allow_destinations also lists connect_ports");
        config.replacen("\nallow_destinations = []", &format!("\n{allow}"), 1).replacen("\nconnect_ports = [443]", &format!("\n{ports}"), 1)
    } else if !config.contains("[proxy]") {
        format!("{config}\n[proxy]\n{allow}\n{ports}\n")
    } else {
        panic!("loopback_origins: a [proxy] table without the shipped allow_destinations line")
    }
}

/// Starts `labelgate serve` with ephemeral proxy and admin ports; returns both addresses. The
/// config (`--config` in `extra`, else the shipped one) is given `loopback_origins`, written
/// beside the original (relative paths in it still resolve).
pub fn serve_with(extra: &[&str]) -> (Serve, SocketAddr, SocketAddr) {
    serve_process(extra, true, &[])
}

/// `serve_with`, with environment variables set for the process (test fault hooks).
#[allow(dead_code)]
pub fn serve_with_env(extra: &[&str], env: &[(&str, &str)]) -> (Serve, SocketAddr, SocketAddr) {
    serve_process(extra, true, env)
}

/// `labelgate serve` exactly as configured: the built-in destination refusals stand.
#[allow(dead_code)]
pub fn serve_as_configured(extra: &[&str]) -> (Serve, SocketAddr, SocketAddr) {
    serve_process(extra, false, &[])
}

fn serve_process(extra: &[&str], loopback: bool, env: &[(&str, &str)]) -> (Serve, SocketAddr, SocketAddr) {
    let dir = std::env::temp_dir();
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let config = match args.iter().position(|a| a == "--config") {
        Some(i) => PathBuf::from(&args[i + 1]),
        None => {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let shipped = dir.join(format!("labelgate-test-{}-{}.toml", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst)));
            std::fs::write(&shipped, include_str!("../../../config/labelgate.toml")).unwrap();
            args.extend(["--config".to_string(), shipped.display().to_string()]);
            shipped
        }
    };
    if loopback {
        let rewritten = config.with_extension("loopback.toml");
        std::fs::write(&rewritten, loopback_origins(&std::fs::read_to_string(&config).unwrap())).unwrap();
        if let Some(i) = args.iter().position(|a| a == "--config") {
            args[i + 1] = rewritten.display().to_string();
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_labelgate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(&args)
        .envs(env.iter().copied())
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let audit = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let lines = Arc::clone(&audit);
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let (mut proxy, mut admin) = (None, None);
    while proxy.is_none() || admin.is_none() {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "serve exited before listening");
        if let Some(a) = line.split_once("proxy listening on ").and_then(|(_, rest)| rest.split_whitespace().next()) {
            proxy = a.parse().ok();
        }
        if let Some(a) = line.split_once("admin listening on ").and_then(|(_, rest)| rest.split_whitespace().next()) {
            admin = a.parse().ok();
        }
    }
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let lines = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    (Serve(child, audit, log), proxy.unwrap(), admin.unwrap())
}

pub fn get(url: &str) -> (String, String) {
    let out = Command::new("curl").args(["-s", "-S", "-o", "-", "-w", "\n%{http_code}", url]).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (body.to_string(), code.to_string())
}

pub fn curl(proxy: SocketAddr, args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-o", "-", "-w", "\n%{http_code}", "-x", &format!("http://{proxy}")])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (body.to_string(), code.to_string())
}

/// A blocking HTTPS origin on 127.0.0.1 with its own test CA; answers with the body's sha256.
pub fn https_origin(dir: &std::path::Path) -> (SocketAddr, PathBuf) {
    https_origin_with_pages(dir, Vec::new())
}

/// As `https_origin`, also serving `pages` (path → HTML) to GET; a POST to `/upload-html`
/// answers an HTML page with the body's sha256.
pub fn https_origin_with_pages(dir: &std::path::Path, pages: Vec<(String, String)>) -> (SocketAddr, PathBuf) {
    let pages = Arc::new(pages);
    let (config, ca_pem) = labelgate_testkit::loopback_server_tls(&[]);
    let ca_path = dir.join("origin-ca.pem");
    std::fs::write(&ca_path, ca_pem).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let config = Arc::clone(&config);
            let pages = Arc::clone(&pages);
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
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                // A GET with a body is an upload like any other here (the proxy inspects it).
                if head.starts_with("get ") && !head.contains("content-length:") {
                    let (status, page) = match pages.iter().find(|(p, _)| p.to_ascii_lowercase() == path) {
                        Some((_, html)) => ("200 OK", html.clone()),
                        None => ("404 Not Found", "not found".to_string()),
                    };
                    let _ = write!(
                        tls,
                        "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                        page.len()
                    );
                    let _ = tls.flush();
                    return;
                }
                let length: usize =
                    head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                let mut body = vec![0u8; length];
                if tls.read_exact(&mut body).is_err() {
                    return;
                }
                let mut reply = format!("stored {}", Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect::<String>());
                let mut content_type = "text/plain";
                if path == "/upload-html" {
                    reply = format!("<!doctype html><html><body><p id=\"ok\">UPLOAD-OK {reply}</p></body></html>");
                    content_type = "text/html";
                }
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = tls.flush();
            });
        }
    });
    (addr, ca_path)
}

/// An HTTPS origin and `labelgate serve` intercepting TLS toward it, with labelgate's CA exported
/// for the client: (serve, proxy, admin, CA PEM path for `curl --cacert`, origin).
pub fn serve_intercepting(dir: &std::path::Path) -> (Serve, SocketAddr, SocketAddr, PathBuf, SocketAddr) {
    let (origin, origin_ca) = https_origin(dir);
    let (serve, proxy, admin, ca_pem) = serve_trusting(dir, &origin_ca);
    (serve, proxy, admin, ca_pem, origin)
}

/// `labelgate serve` with its state in `dir/state`, trusting `origin_ca` toward origins, with its
/// own CA exported for clients: (serve, proxy, admin, CA PEM path).
pub fn serve_trusting(dir: &std::path::Path, origin_ca: &std::path::Path) -> (Serve, SocketAddr, SocketAddr, PathBuf) {
    let state = dir.join("state");
    let export = Command::new(env!("CARGO_BIN_EXE_labelgate")).args(["ca", "export", "--state-dir"]).arg(&state).output().unwrap();
    assert!(export.status.success());
    let ca_pem = dir.join("labelgate-ca.pem");
    std::fs::write(&ca_pem, &export.stdout).unwrap();
    let (serve, proxy, admin) = serve_with(&["--state-dir", state.to_str().unwrap(), "--upstream-ca", origin_ca.to_str().unwrap()]);
    (serve, proxy, admin, ca_pem)
}

/// A peer process (a Python origin) stopped when the test ends, however it ends.
pub struct Kill(pub Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a Python peer (`python script origin dir`) that prints its port on its first line.
pub fn python_origin(script: &str, dir: &std::path::Path) -> (Kill, u16) {
    use std::io::BufRead;
    let mut child = Command::new(labelgate_testkit::test_python())
        .args([script, "origin"])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| panic!("{script}: no port, got {line:?}"));
    (Kill(child), port)
}

/// The admin API of a running `labelgate serve`, spoken with curl.
pub struct AdminApi {
    pub admin: std::net::SocketAddr,
    pub token: String,
}

impl AdminApi {
    /// (status, ETag, body)
    pub fn call(&self, method: &str, path: &str, body: Option<&str>, if_match: Option<&str>) -> (u16, Option<String>, serde_json::Value) {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-D", "-", "-X", method, "-H", &format!("Authorization: Bearer {}", self.token)]);
        if let Some(e) = if_match {
            cmd.args(["-H", &format!("If-Match: {e}")]);
        }
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        let out = cmd.arg(format!("http://{}{path}", self.admin)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let etag = head.lines().find_map(|l| l.strip_prefix("etag: ").or_else(|| l.strip_prefix("ETag: "))).map(|v| v.trim().to_string());
        (status, etag, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
    }

    pub fn etag(&self) -> String {
        self.call("GET", "/api/v1/accounts", None, None).1.expect("reads carry the ETag")
    }
}

/// `labelgate policy test` of a labeled corpus file (label General) sent to `url` under
/// `config`: (action, rule).
pub fn policy_test_labeled(config: &std::path::Path, url: &str) -> (String, Option<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_labelgate"))
        .arg("--config")
        .arg(config)
        .args(["policy", "test", "--json", "--url", url, "--file"])
        .arg(corpus("lab_caf_identity-baseline-discipline-template.docx"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["verdict"]["action"].as_str().unwrap_or_default().to_string(), v["verdict"]["rule"].as_str().map(str::to_string))
}
