//! Secure by default, through `labelgate serve` as an attacker on the same network would try it:
//! no destination on this host (however spelled) or link-local, never the proxy's own listeners;
//! every connection bounded (per client, TLS handshakes in tunnels, trickling bodies); a reload
//! applies security settings live and names what needs a restart; `/readyz` says 503 while
//! draining.

use crate::common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("labelgate-secure-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const SHIPPED: &str = include_str!("../../config/labelgate.toml");

/// `CONNECT host:port` with curl; the proxy's answer to the CONNECT.
fn connect_code(proxy: SocketAddr, target: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_connect}", "-p", "-x", &format!("http://{proxy}"), "--max-time", "5"])
        .arg(format!("https://{target}/"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn this_host_link_local_and_the_proxy_itself_are_refused_by_default() {
    let (_serve, proxy, admin) = serve_as_configured(&[]);
    let (origin, count) = crate::common::origin();
    let port = origin.port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://localhost.:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://127.0.0.1:{}/metrics", admin.port()),
        format!("http://127.0.0.1:{}/api/v1/accounts", admin.port()),
    ] {
        let (body, code) = curl(proxy, &["--max-time", "5", &url]);
        assert_eq!(code, "403", "{url}: {body}");
        assert!(body.contains("may not be reached"), "{url}: {body}");
    }
    // CONNECT: to this host's services, to the proxy itself, and to a port other than 443.
    assert_eq!(connect_code(proxy, "127.0.0.1:22"), "403");
    assert_eq!(connect_code(proxy, &proxy.to_string()), "403");
    assert_eq!(connect_code(proxy, "example.invalid:8443"), "403", "CONNECT goes to 443 only");
    assert_eq!(count.load(Ordering::SeqCst), 0, "nothing reached the loopback origin");
    // `labelgate check` lists the rules in force.
    let check = Command::new(env!("CARGO_BIN_EXE_labelgate")).arg("check").output().unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("169.254.0.0/16") && text.contains("labelgate's own listeners") && text.contains("CONNECT ports: 443"), "{text}");
}

#[test]
fn allow_destinations_opens_exceptions_deny_wins_and_the_own_listeners_stay_closed() {
    let dir = scratch("allow");
    let config = dir.join("labelgate.toml");
    std::fs::write(
        &config,
        SHIPPED
            .replace("allow_destinations = []", r#"allow_destinations = ["127.0.0.0/8"]"#)
            .replace("deny_destinations = []", r#"deny_destinations = ["127.0.0.2/32"]"#),
    )
    .unwrap();
    let (_serve, proxy, admin) =
        serve_as_configured(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    let (origin, count) = crate::common::origin();
    let (_, code) = curl(proxy, &["--max-time", "5", &format!("http://127.0.0.1:{}/", origin.port())]);
    assert_eq!(code, "200", "opened by allow_destinations");
    let (body, code) = curl(proxy, &["--max-time", "5", &format!("http://127.0.0.2:{}/", origin.port())]);
    assert_eq!(code, "403", "deny_destinations wins: {body}");
    for own in [admin, proxy] {
        let (body, code) = curl(proxy, &["--max-time", "5", &format!("http://127.0.0.1:{}/metrics", own.port())]);
        assert_eq!(code, "403", "{own}: {body}");
        assert!(body.contains("own listeners"), "{body}");
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits (up to 10 s) for `labelgate_active_connections` to read `want`; answers what it read.
fn active_becomes(admin: SocketAddr, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = active(admin);
        if now == want || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `labelgate_active_connections` from /metrics.
fn active(admin: SocketAddr) -> i64 {
    let (metrics, _) = get(&format!("http://{admin}/metrics"));
    metrics.lines().find_map(|l| l.strip_prefix("labelgate_active_connections ")).and_then(|v| v.trim().parse().ok()).unwrap_or(-1)
}

/// Whether the proxy closes `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn every_connection_is_bounded_and_counted() {
    let dir = scratch("bounded");
    let config = dir.join("labelgate.toml");
    std::fs::write(
        &config,
        SHIPPED
            .replace("max_connections_per_client = 256", "max_connections_per_client = 3")
            .replace("tls_handshake_timeout_secs = 10", "tls_handshake_timeout_secs = 1")
            .replace("body_min_bytes_per_sec = 512", "body_min_bytes_per_sec = 1000")
            .replace("body_rate_window_secs = 30", "body_rate_window_secs = 1"),
    )
    .unwrap();
    let (_serve, proxy, admin) = serve_with(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    let (origin, count) = crate::common::origin();

    // One client cannot hold more than max_connections_per_client: the fourth is closed at once.
    let mut held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(proxy).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fourth = TcpStream::connect(proxy).unwrap();
    assert!(closed_within(&mut fourth, Duration::from_secs(10)), "the fourth connection of one client is closed");
    held.clear();
    // Room again once the proxy has seen them close.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut code = String::new();
    while code != "200" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        code = curl(proxy, &["--max-time", "5", &format!("http://{origin}/")]).1;
    }
    assert_eq!(code, "200", "room again once they closed");

    // A CONNECT tunnel counts while it is open, and one that never sends a ClientHello is closed
    // after tls_handshake_timeout_secs.
    let mut tunnel = TcpStream::connect(proxy).unwrap();
    write!(tunnel, "CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    tunnel.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(active_becomes(admin, 1), 1, "the open tunnel is an active connection");
    let opened = Instant::now();
    assert!(closed_within(&mut tunnel, Duration::from_secs(15)), "a silent tunnel is closed");
    assert!(opened.elapsed() < Duration::from_secs(12), "after the 1 s handshake timeout, not the default");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(active_becomes(admin, 0), 0, "and given back");

    // A body that trickles (10 bytes every 100 ms, 100 B/s) fails the minimum rate with 408.
    let mut slow = TcpStream::connect(proxy).unwrap();
    write!(slow, "POST http://{origin}/upload HTTP/1.1\r\nHost: {origin}\r\nContent-Length: 100000\r\n\r\n").unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    slow.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    while started.elapsed() < Duration::from_secs(8) {
        if slow.write_all(&[b'a'; 10]).is_err() {
            break;
        }
        let mut b = [0u8; 256];
        match slow.read(&mut b) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&b[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1, "the trickle never reached the origin");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reload_applies_security_settings_and_names_what_needs_a_restart() {
    let dir = scratch("reload");
    let config = dir.join("labelgate.toml");
    let base = loopback_origins(SHIPPED);
    std::fs::write(&config, &base).unwrap();
    let (serve, proxy, _admin) =
        serve_as_configured(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    // A keep-alive origin: the proxy pools its connection to it, and a reload must not let a
    // pooled connection outlive the rules it was checked under.
    let (_origin, port) = python_origin(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e/pieces_peer.py"), &dir);
    let url = format!("http://127.0.0.1:{port}/_done");
    assert_eq!(curl(proxy, &["--max-time", "5", &url]).1, "200");
    assert_eq!(curl(proxy, &["--max-time", "5", &url]).1, "200");
    // Deny the origin's address, and move the spool (which only a restart can do).
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(
        &config,
        base.replace("deny_destinations = []", r#"deny_destinations = ["127.0.0.1/32"]"#)
            .replace("[inspection]\n", "[inspection]\nspool_dir = \"elsewhere\"\n"),
    )
    .unwrap();
    let line = serve.log_line("configuration reloaded").expect("the reload is logged");
    assert!(line.contains("[inspection] spool_dir"), "the log names what needs a restart: {line}");
    let (body, code) = curl(proxy, &["--max-time", "5", &url]);
    assert_eq!(code, "403", "the new deny_destinations applies at once: {body}");
    // max_connections too: down to 2, a third connection is closed at once.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&config, base.replace("max_connections = 10000", "max_connections = 2")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while serve.2.lock().unwrap().iter().filter(|l| l.contains("configuration reloaded")).count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let _held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(proxy).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(proxy).unwrap();
    assert!(closed_within(&mut third, Duration::from_secs(10)), "max_connections reloaded");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn readyz_says_503_while_draining() {
    let dir = scratch("drain");
    let (serve, proxy, admin) = serve_with(&["--state-dir", dir.join("state").to_str().unwrap()]);
    let (_, code) = get(&format!("http://{admin}/readyz"));
    assert_eq!(code, "200", "ready once listening with its policy");
    let (origin, _) = crate::common::origin();
    // A transaction in flight keeps the drain going.
    let mut slow = TcpStream::connect(proxy).unwrap();
    write!(slow, "POST http://{origin}/upload HTTP/1.1\r\nHost: {origin}\r\nContent-Length: 10\r\n\r\nabc").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = serve.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(serve.log_line("draining").is_some());
    let (_, code) = get(&format!("http://{admin}/readyz"));
    assert_eq!(code, "503", "not ready while draining");
    let _ = slow.write_all(b"defghij");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_client_removed_from_allow_clients_is_refused_on_its_open_connection() {
    let dir = scratch("clients");
    let config = dir.join("labelgate.toml");
    let base = loopback_origins(SHIPPED);
    std::fs::write(&config, &base).unwrap();
    let (serve, proxy, _admin) =
        serve_as_configured(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    let (origin, _) = crate::common::origin();
    let request = format!("GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\n\r\n");
    let mut conn = TcpStream::connect(proxy).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut b = [0u8; 12];
    conn.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"HTTP/1.1 200");
    // The rest of the first answer, whole (it may come in several reads).
    let mut first = Vec::new();
    conn.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut rest = [0u8; 4096];
    loop {
        match conn.read(&mut rest) {
            Ok(0) => panic!("the proxy closed the keep-alive connection"),
            Ok(n) => first.extend_from_slice(&rest[..n]),
            Err(_) => break,
        }
    }
    let first = String::from_utf8_lossy(&first).to_string();
    assert!(first.contains("stored "), "{first}");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&config, base.replace(r#"allow_clients = ["127.0.0.0/8", "::1/128"]"#, r#"allow_clients = ["10.0.0.0/8"]"#)).unwrap();
    serve.log_line("configuration reloaded").expect("reloaded");
    conn.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 403"), "{}", String::from_utf8_lossy(&answer));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn idle_connections_silent_tunnels_and_mute_origins_are_bounded() {
    let dir = scratch("deadlines");
    let config = dir.join("labelgate.toml");
    std::fs::write(
        &config,
        SHIPPED
            .replace("header_timeout_secs = 30", "header_timeout_secs = 1")
            .replace("response_timeout_secs = 300", "response_timeout_secs = 1")
            .replace("tunnel_idle_timeout_secs = 600", "tunnel_idle_timeout_secs = 1")
            .replace("bypass = []", r#"bypass = ["127.0.0.1"]"#),
    )
    .unwrap();
    let (_serve, proxy, admin) = serve_with(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    // An idle keep-alive connection (no request head) is closed after header_timeout_secs.
    let mut idle = TcpStream::connect(proxy).unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(15)));
    assert!(started.elapsed() < Duration::from_secs(12), "after the 1 s header timeout, not the default 30 s: {:?}", started.elapsed());
    // An origin that accepts and never answers: 504 after response_timeout_secs.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mute_addr = mute.local_addr().unwrap();
    let _keep = std::thread::spawn(move || {
        let held: Vec<TcpStream> = mute.incoming().take(2).filter_map(Result::ok).collect();
        std::thread::sleep(Duration::from_secs(30));
        drop(held);
    });
    let started = Instant::now();
    let (_, code) = curl(proxy, &["--max-time", "25", &format!("http://{mute_addr}/")]);
    assert_eq!(code, "504");
    assert!(started.elapsed() < Duration::from_secs(20));
    // A blind (bypassed) tunnel silent both ways is closed after tunnel_idle_timeout_secs, and
    // counted while open.
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    let _echo = std::thread::spawn(move || {
        if let Some(Ok(mut s)) = echo.incoming().next() {
            let mut b = [0u8; 64];
            while let Ok(n) = s.read(&mut b) {
                if n == 0 || s.write_all(&b[..n]).is_err() {
                    break;
                }
            }
        }
    });
    let mut tunnel = TcpStream::connect(proxy).unwrap();
    write!(tunnel, "CONNECT {echo_addr} HTTP/1.1\r\nHost: {echo_addr}\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    tunnel.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let mut rest = [0u8; 64];
    tunnel.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let _ = tunnel.read(&mut rest);
    tunnel.write_all(b"ping").unwrap();
    let mut pong = [0u8; 4];
    tunnel.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    tunnel.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"ping", "the blind tunnel relays");
    assert_eq!(active_becomes(admin, 1), 1);
    let started = Instant::now();
    assert!(closed_within(&mut tunnel, Duration::from_secs(15)), "a silent blind tunnel is closed");
    assert!(started.elapsed() < Duration::from_secs(12), "after the 1 s idle timeout, not the default 600 s");
    let _ = std::fs::remove_dir_all(&dir);
}
