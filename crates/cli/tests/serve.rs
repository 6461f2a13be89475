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
    let dir = std::env::temp_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_labelgate"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "serve exited before listening");
        if let Some(a) = line.trim().strip_prefix("labelgate: proxy listening on ") {
            break a.parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in stderr.lines() {});
    (Serve(child), addr)
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
