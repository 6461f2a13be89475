//! Request framing through `labelgate serve`, over raw sockets: each request-smuggling shape is
//! refused (400) or normalised, and the origin — which records the raw bytes it receives —
//! sees one well-framed request or none; bytes after a request without a declared length are
//! never a body.

use crate::common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An origin that records every connection's raw bytes (read until the request is framed by
/// its own headers, or for at most a second) and answers 200 with `Connection: close`.
fn recording_origin() -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let record = Arc::clone(&record);
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(400)));
                let mut raw = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                }
                record.lock().unwrap().push(raw);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            });
        }
    });
    (addr, seen)
}

/// Sends raw bytes to the proxy; its answer (read until close or a second of silence).
fn raw(proxy: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(2500))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether raw bytes are exactly one request whose body its own headers frame (Content-Length
/// or chunked, never both), with nothing after it.
fn one_well_framed(raw: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(raw);
    let Some(end) = text.find("\r\n\r\n") else { return Err(format!("no header end: {text:?}")) };
    let head = text[..end].to_ascii_lowercase();
    if head.contains("\n ") || head.contains("\n\t") || head.lines().skip(1).any(|l| l.contains(" :")) {
        return Err(format!("malformed header lines reached the origin: {head:?}"));
    }
    let lengths: Vec<&str> = head.lines().filter_map(|l| l.strip_prefix("content-length:")).map(str::trim).collect();
    let chunked = head.lines().any(|l| l.starts_with("transfer-encoding:"));
    let body = &raw[end + 4..];
    match (lengths.as_slice(), chunked) {
        ([], false) => (body.is_empty()).then_some(()).ok_or(format!("{} bytes after a request without a length", body.len())),
        ([n], false) => {
            let n: usize = n.parse().map_err(|_| format!("bad length {n}"))?;
            (body.len() == n).then_some(()).ok_or(format!("length {n} but {} bytes", body.len()))
        }
        ([], true) => body.ends_with(b"0\r\n\r\n").then_some(()).ok_or("chunked body does not end".into()),
        _ => Err(format!("ambiguous framing: {head:?}")),
    }
}

#[test]
fn smuggling_shapes_are_refused_or_reach_the_origin_well_framed() {
    let (_serve, proxy, _admin) = serve_with(&[]);
    let (origin, seen) = recording_origin();
    let host = origin.to_string();
    let target = format!("http://{host}/upload");
    let shapes: Vec<(&str, String)> = vec![
        ("CL and TE", format!("POST {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")),
        ("TE and CL", format!("POST {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n5\r\nhello\r\n0\r\n\r\n")),
        ("duplicate Content-Length", format!("POST {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")),
        ("list Content-Length", format!("POST {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 5, 6\r\n\r\nhello!")),
        ("equal duplicate Content-Length", format!("POST {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")),
        ("obs-fold", format!("POST {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nX-Note: a\r\n b\r\nContent-Length: 5\r\n\r\nhello")),
        ("whitespace before the colon", format!("POST {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length : 5\r\n\r\nhello")),
        ("bare LF", format!("POST {target} HTTP/1.1\nHost: {host}\nConnection: close\nContent-Length: 5\n\nhello")),
        ("TE with a bad chunked spelling", format!("POST {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello")),
        ("no length, then bytes", format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\nPK\u{3}\u{4}not a body")),
    ];
    for (name, request) in shapes {
        seen.lock().unwrap().clear();
        let answer = raw(proxy, request.as_bytes());
        let status = answer.split_whitespace().nth(1).unwrap_or("").to_string();
        // Wait for the origin's record of this connection (or of none).
        std::thread::sleep(Duration::from_millis(500));
        let got = seen.lock().unwrap().clone();
        match status.as_str() {
            "400" | "501" => assert!(
                got.is_empty(),
                "{name}: refused, yet the origin saw {:?}",
                got.iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect::<Vec<_>>()
            ),
            "200" => {
                assert_eq!(got.len(), 1, "{name}: one request at the origin");
                if let Err(why) = one_well_framed(&got[0]) {
                    panic!("{name}: {why}\n{}", String::from_utf8_lossy(&got[0]));
                }
            }
            other => panic!("{name}: unexpected answer {other}: {answer}"),
        }
        eprintln!("{name}: {status}");
    }
}
