//! One file sent in pieces is inspected as one file: resumable and multipart upload sessions
//! through `labelgate serve` on its shipped policy, against an origin that speaks the protocols
//! as their services do (crates/cli/tests/pieces_peer.py). Real clients (google-resumable-media,
//! tuspy) and curl for the orderings a client library never produces: out of order, overlapping,
//! retried, from two client addresses, with a gap, after expiry, conflicting.
//!
//! The labeled corpus docx is blocked at the request that completes it (or earlier) and the
//! origin never assembles it; its unlabeled twin is assembled byte-exact.

use crate::common::*;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

const LABELED: &str = "lab_caf_identity-baseline-discipline-template.docx";
const UNLABELED: &str = "unl_gc_pco-summary-word.docx";

fn peer() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e/pieces_peer.py")
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("labelgate-pieces-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `labelgate serve` on the shipped config with `edit` applied, its state in `dir`.
fn serve_config(dir: &Path, edit: impl Fn(String) -> String) -> (Serve, SocketAddr) {
    let config = dir.join("labelgate.toml");
    std::fs::write(&config, edit(include_str!("../../config/labelgate.toml").to_string())).unwrap();
    let (serve, proxy, _admin) = serve_with(&["--config", config.to_str().unwrap(), "--state-dir", dir.join("state").to_str().unwrap()]);
    (serve, proxy)
}

/// The files the origin assembled: (name, sha256).
fn assembled(origin: u16) -> Vec<(String, String)> {
    let (body, code) = get(&format!("http://127.0.0.1:{origin}/_done"));
    assert_eq!(code, "200");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap_or("").to_string(), f["sha256"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// An answer: status, header fields (lower-case names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// One request through the proxy with curl: `headers`, and `body` as the exact bytes.
fn send(proxy: SocketAddr, dir: &Path, method: &str, url: &str, headers: &[String], body: Option<&[u8]>, from: &str) -> Answer {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "-i", "--interface", from, "-x", &format!("http://{proxy}"), "-X", method, "-H", "Expect:"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(body) = body {
        let file = dir.join(format!("body-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()));
        std::fs::write(&file, body).unwrap();
        cmd.args(["--data-binary", &format!("@{}", file.display())]);
    }
    let out = cmd.arg(url).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer to {method} {url}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    Answer { status, headers, body: body.to_string() }
}

/// A `Content-Range` piece of `file`: bytes `a..b`.
fn piece(proxy: SocketAddr, dir: &Path, url: &str, file: &[u8], a: usize, b: usize, from: &str) -> Answer {
    let range = format!("Content-Range: bytes {a}-{}/{}", b - 1, file.len());
    send(proxy, dir, "PUT", url, &[range, "Content-Type: application/octet-stream".into()], Some(&file[a..b]), from)
}

/// The audit records of upload sessions.
fn session_records(serve: &Serve) -> Vec<serde_json::Value> {
    serve.audit().into_iter().filter(|r| r.get("session").is_some()).collect()
}

#[test]
fn google_resumable_media_and_tuspy_uploads_are_decided_whole() {
    let dir = scratch("clients");
    let python = labelgate_testkit::test_python();
    let (_origin, port) = python_origin(peer(), &dir);
    let (serve, proxy) = serve_config(&dir, |c| c);
    // About 700 KB each: google-resumable-media sends 256 KiB chunks (its minimum), tuspy 100 KB.
    let pad = |src: &str, dst: &str| {
        let out = Command::new(&python).args([peer(), "pad"]).arg(corpus(src)).arg(dir.join(dst)).arg("700000").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(dir.join(dst)).unwrap()
    };
    let labeled = pad(LABELED, "q3-plan.docx");
    let unlabeled = pad(UNLABELED, "minutes.docx");
    let upload = |client: &str, file: &str, chunk: &str| -> serde_json::Value {
        let out = Command::new(&python)
            .args([peer(), client, &proxy.port().to_string(), &port.to_string()])
            .arg(dir.join(file))
            .arg(chunk)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("{client} {file}: {e}: {text} {}", String::from_utf8_lossy(&out.stderr)))
    };
    for (client, chunk) in [("google", "262144"), ("tus", "100000")] {
        let blocked = upload(client, "q3-plan.docx", chunk);
        assert_eq!((blocked["ok"].as_bool(), blocked["status"].as_u64()), (Some(false), Some(403)), "{client}: {blocked}");
        let stored = upload(client, "minutes.docx", chunk);
        assert_eq!(stored["ok"], true, "{client}: {stored}");
    }
    let done = assembled(port);
    let shas: Vec<&str> = done.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(shas, [sha(&unlabeled), sha(&unlabeled)], "the unlabeled file assembled byte-exact by both, the labeled one never");
    // One record per session, with the assembled file's hash and the session's protocol.
    let records = session_records(&serve);
    for protocol in ["google_resumable", "tus"] {
        let of: Vec<_> = records.iter().filter(|r| r["session"]["protocol"] == protocol).collect();
        assert_eq!(of.len(), 2, "{protocol}: {records:?}");
        assert_eq!(of[0]["action"], "block");
        assert_eq!(of[0]["files"][0]["sha256"], sha(&labeled).as_str());
        assert_eq!(of[0]["files"][0]["labels"][0]["id"], "f42aa342-8706-4288-bd11-ebb85995028c");
        assert!(of[0]["session"]["pieces"].as_u64().unwrap() >= 3, "{:?}", of[0]);
        assert_eq!(of[1]["action"], "allow");
        assert_eq!(of[1]["files"][0]["sha256"], sha(&unlabeled).as_str());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn content_range_pieces_in_any_order_from_any_client_are_one_file() {
    let dir = scratch("orders");
    let (_origin, port) = python_origin(peer(), &dir);
    let (serve, proxy) = serve_config(&dir, |c| c);
    let labeled = std::fs::read(corpus(LABELED)).unwrap();
    let unlabeled = std::fs::read(corpus(UNLABELED)).unwrap();
    let n = |f: &[u8]| f.len();
    // (name, the pieces as byte ranges in the order sent, the client address of each)
    type Plan = (&'static str, fn(usize) -> Vec<(usize, usize)>, [&'static str; 4]);
    let plans: [Plan; 5] = [
        ("in-order", |n| vec![(0, n / 3), (n / 3, 2 * n / 3), (2 * n / 3, n)], ["127.0.0.1"; 4]),
        // The session starts with its first byte; then the last piece comes before the middle
        // one (sent in parallel, as a client with several connections does): it is held until
        // the middle one fills the gap.
        ("out-of-order", |n| vec![(0, 1000), (2 * n / 3, n), (1000, 2 * n / 3)], ["127.0.0.1"; 4]),
        ("overlapping", |n| vec![(0, n / 2), (n / 3, 3 * n / 4), (n / 2, n)], ["127.0.0.1"; 4]),
        ("retried", |n| vec![(0, n / 2), (0, n / 2), (n / 2, n)], ["127.0.0.1"; 4]),
        ("two-clients", |n| vec![(0, n / 2), (n / 2, n - 10), (n - 10, n)], ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"]),
    ];
    for (name, plan, from) in plans {
        for (twin, file) in [("labeled", &labeled), ("unlabeled", &unlabeled)] {
            let url = format!("http://127.0.0.1:{port}/dav/{name}-{twin}.docx");
            let pieces = plan(n(file));
            let mut answers: Vec<u16> = Vec::new();
            std::thread::scope(|scope| {
                let mut background = None;
                for (i, (&(a, b), from)) in pieces.iter().zip(from).enumerate() {
                    if name == "out-of-order" && i == 1 {
                        let (url, dir) = (url.clone(), dir.clone());
                        background = Some(scope.spawn(move || piece(proxy, &dir, &url, file, a, b, from).status));
                        std::thread::sleep(std::time::Duration::from_millis(300));
                        continue;
                    }
                    answers.push(piece(proxy, &dir, &url, file, a, b, from).status);
                }
                answers.extend(background.map(|h| h.join().unwrap()));
            });
            match twin {
                "labeled" => {
                    assert!(answers.contains(&403) && !answers.contains(&201), "{name}: the completing piece is blocked: {answers:?}");
                    assert!(answers.iter().all(|s| *s == 202 || *s == 403), "{name}: {answers:?}");
                    // Every later request of the blocked session is refused too.
                    assert_eq!(piece(proxy, &dir, &url, file, 0, 100, "127.0.0.1").status, 403, "{name}");
                }
                _ => {
                    assert_eq!(answers.iter().filter(|s| **s == 201).count(), 1, "{name}: {answers:?}");
                    assert!(answers.iter().all(|s| *s == 202 || *s == 201), "{name}: {answers:?}");
                }
            }
        }
    }
    let done = assembled(port);
    for (name, _, _) in plans {
        let labeled_name = format!("{name}-labeled.docx");
        let unlabeled_name = format!("{name}-unlabeled.docx");
        assert!(!done.iter().any(|(n, _)| *n == labeled_name), "{name}: the labeled file was never assembled: {done:?}");
        assert_eq!(done.iter().filter(|(n, s)| *n == unlabeled_name && *s == sha(&unlabeled)).count(), 1, "{name}: {done:?}");
    }
    let records = session_records(&serve);
    assert_eq!(records.len(), 10, "one record per session: {records:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_session_that_cannot_be_reassembled_is_incomplete_for_policy() {
    let dir = scratch("incomplete");
    let (_origin, port) = python_origin(peer(), &dir);
    let (serve, proxy) = serve_config(&dir, |c| {
        c.replace("upload_session_timeout_secs = 3600", "upload_session_timeout_secs = 1")
            .replace("upload_gap_wait_secs = 30", "upload_gap_wait_secs = 1")
    });
    let file = std::fs::read(corpus(UNLABELED)).unwrap();
    let n = file.len();
    let url = |name: &str| format!("http://127.0.0.1:{port}/dav/{name}.docx");

    // The last bytes while bytes before them are missing, and nothing fills the gap: held, then
    // refused (forwarded, the origin could complete the file with bytes from elsewhere).
    assert_eq!(piece(proxy, &dir, &url("tail-first"), &file, 0, n / 3, "127.0.0.1").status, 202);
    assert_eq!(piece(proxy, &dir, &url("tail-first"), &file, 2 * n / 3, n, "127.0.0.1").status, 403);

    // A start never seen: the first piece the proxy sees begins mid-file.
    assert_eq!(piece(proxy, &dir, &url("midway"), &file, n / 2, n, "127.0.0.1").status, 403);
    // Bytes that disagree with the same bytes sent before.
    assert_eq!(piece(proxy, &dir, &url("conflict"), &file, 0, n / 2, "127.0.0.1").status, 202);
    let mut changed = file.clone();
    changed[n / 4] ^= 0xff;
    assert_eq!(piece(proxy, &dir, &url("conflict"), &changed, n / 4, n, "127.0.0.1").status, 403);
    // X-Goog-Upload-Protocol finalised with bytes missing.
    let start = send(
        proxy,
        &dir,
        "POST",
        &format!("http://127.0.0.1:{port}/xgoog"),
        &["X-Goog-Upload-Protocol: resumable".into(), "X-Goog-Upload-Command: start".into()],
        None,
        "127.0.0.1",
    );
    let session = start.header("x-goog-upload-url").unwrap_or_else(|| panic!("{}", start.body)).to_string();
    let first = send(
        proxy,
        &dir,
        "POST",
        &session,
        &["X-Goog-Upload-Command: upload".into(), "X-Goog-Upload-Offset: 0".into()],
        Some(&file[..1000]),
        "127.0.0.1",
    );
    assert_eq!(first.status, 200, "{}", first.body);
    let finalize = send(
        proxy,
        &dir,
        "POST",
        &session,
        &["X-Goog-Upload-Command: upload, finalize".into(), format!("X-Goog-Upload-Offset: {}", n / 2)],
        Some(&file[n / 2..]),
        "127.0.0.1",
    );
    assert_eq!(finalize.status, 403, "finalised with a gap: {}", finalize.body);

    // A tus PATCH whose creation (the request that says the file's size) was never seen.
    let orphan = send(
        proxy,
        &dir,
        "PATCH",
        &format!("http://127.0.0.1:{port}/files/elsewhere"),
        &["Tus-Resumable: 1.0.0".into(), "Upload-Offset: 0".into(), "Content-Type: application/offset+octet-stream".into()],
        Some(&file),
        "127.0.0.1",
    );
    assert_eq!(orphan.status, 403, "{}", orphan.body);
    // A whole encrypted archive sent as the "first piece" of a file that never completes: what
    // only a whole file shows (here: encrypted) is decided at once, as it would be uploaded whole.
    let mut encrypted_entry = labelgate_testkit::Entry::new("q3.docx", &file);
    encrypted_entry.encrypted = true;
    let encrypted = labelgate_testkit::zip(&[encrypted_entry]);
    let inflated = format!("Content-Range: bytes 0-{}/{}", encrypted.len() - 1, encrypted.len() * 2);
    let early = send(proxy, &dir, "PUT", &url("encrypted"), &[inflated], Some(&encrypted), "127.0.0.1");
    assert_eq!(early.status, 403, "{}", early.body);
    assert!(early.body.contains("encrypted"), "{}", early.body);

    // A gap that never reaches the file's end: the pieces pass (the origin cannot assemble the
    // file either); the session expires unfinished and is recorded incomplete.
    assert_eq!(piece(proxy, &dir, &url("gap"), &file, 0, n / 3, "127.0.0.1").status, 202);
    assert_eq!(piece(proxy, &dir, &url("gap"), &file, n / 2, 2 * n / 3, "127.0.0.1").status, 202);
    // After expiry: the session's next piece is one whose start was never seen.
    assert_eq!(piece(proxy, &dir, &url("expiry"), &file, 0, n / 2, "127.0.0.1").status, 202);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(piece(proxy, &dir, &url("expiry"), &file, n / 2, n, "127.0.0.1").status, 403, "after expiry");

    let records = serve.audit_until(|r| r.iter().filter(|r| r.get("session").is_some()).count() >= 9);
    let reasons: Vec<(String, String)> = records
        .iter()
        .filter_map(|r| Some((r.get("session")?["incomplete"].as_str()?.to_string(), r["action"].as_str()?.to_string())))
        .collect();
    let find = |needle: &str| reasons.iter().filter(|(why, _)| why.contains(needle)).count();
    assert!(find("start was never seen") >= 3, "the midway piece, the orphan PATCH, the piece after expiry: {reasons:#?}");
    assert_eq!(find("differ from the same bytes"), 1, "{reasons:#?}");
    assert_eq!(find("finalised with bytes missing"), 1, "{reasons:#?}");
    assert_eq!(find("expired before its file was complete"), 2, "the gap and the expired session: {reasons:#?}");
    assert_eq!(find("and those never came"), 1, "{reasons:#?}");
    let unscannable: Vec<&str> =
        records.iter().filter(|r| r.get("session").is_some()).filter_map(|r| r["files"][0]["unscannable"].as_str()).collect();
    assert_eq!(unscannable.iter().filter(|u| **u == "incomplete").count(), 8, "{records:#?}");
    assert_eq!(unscannable.iter().filter(|u| **u == "encrypted").count(), 1, "{records:#?}");
    assert!(assembled(port).is_empty(), "nothing was assembled at the origin");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tus_creation_with_upload_and_concatenation_are_decided_whole() {
    let dir = scratch("tus");
    let (_origin, port) = python_origin(peer(), &dir);
    let (_serve, proxy) = serve_config(&dir, |c| c);
    let tus = |extra: &[String]| -> Vec<String> {
        let mut h = vec!["Tus-Resumable: 1.0.0".to_string(), "Content-Type: application/offset+octet-stream".to_string()];
        h.extend_from_slice(extra);
        h
    };
    for (twin, name) in [("labeled", LABELED), ("unlabeled", UNLABELED)] {
        let file = std::fs::read(corpus(name)).unwrap();
        let n = file.len();
        // creation-with-upload: the creation POST carries the first half.
        let created = send(
            proxy,
            &dir,
            "POST",
            &format!("http://127.0.0.1:{port}/files/"),
            &tus(&[format!("Upload-Length: {n}")]),
            Some(&file[..n / 2]),
            "127.0.0.1",
        );
        assert_eq!(created.status, 201, "{twin}: {}", created.body);
        let at = created.header("location").unwrap().to_string();
        let rest = send(proxy, &dir, "PATCH", &at, &tus(&[format!("Upload-Offset: {}", n / 2)]), Some(&file[n / 2..]), "127.0.0.1");
        // concatenation: two partial uploads, then the final one.
        let mut partials = Vec::new();
        for (a, b) in [(0, n / 3), (n / 3, n)] {
            let p = send(
                proxy,
                &dir,
                "POST",
                &format!("http://127.0.0.1:{port}/files/"),
                &tus(&[format!("Upload-Length: {}", b - a), "Upload-Concat: partial".into()]),
                None,
                "127.0.0.1",
            );
            let at = p.header("location").unwrap().to_string();
            let patched = send(proxy, &dir, "PATCH", &at, &tus(&["Upload-Offset: 0".into()]), Some(&file[a..b]), "127.0.0.1");
            assert_eq!(patched.status, 204, "{twin}: a partial upload's own completion is no file: {}", patched.body);
            partials.push(at);
        }
        let fin = send(
            proxy,
            &dir,
            "POST",
            &format!("http://127.0.0.1:{port}/files/"),
            &tus(&[format!("Upload-Concat: final;{}", partials.join(" "))]),
            None,
            "127.0.0.1",
        );
        match twin {
            "labeled" => {
                assert_eq!(rest.status, 403, "{}", rest.body);
                assert_eq!(fin.status, 403, "{}", fin.body);
            }
            _ => {
                assert_eq!(rest.status, 204, "{}", rest.body);
                assert_eq!(fin.status, 201, "{}", fin.body);
            }
        }
    }
    let unlabeled = sha(&std::fs::read(corpus(UNLABELED)).unwrap());
    let done: Vec<String> = assembled(port).into_iter().map(|(_, s)| s).collect();
    assert_eq!(done, [unlabeled.clone(), unlabeled], "the unlabeled file twice (PATCH, concatenation), the labeled one never");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_graph_upload_session_by_curl_is_decided_whole() {
    // OneDrive large-file upload against labelgate-fakegraph: a token from the identity
    // platform, createUploadSession on graph (127.0.0.1), fragments to its uploadUrl on another
    // host (localhost), all through the proxy.
    use labelgate_fakegraph::{App, AppSecret, FakeGraph, Tenant, World};
    let dir = scratch("graph");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tenant = "8f0e3a9d-1b2c-4d5e-8f90-a1b2c3d4e5f6";
    let world = World {
        tenants: vec![Tenant {
            id: tenant.into(),
            apps: vec![App {
                client_id: "app-1".into(),
                secrets: vec![AppSecret { value: "s3cret".into(), expired: false }],
                ..App::default()
            }],
            ..Tenant::default()
        }],
        token_lifetime_secs: 3599,
        page_size: 100,
        faults: vec![],
    };
    let fake = runtime.block_on(FakeGraph::start(world)).unwrap();
    let (serve, proxy) = serve_config(&dir, |c| c);
    let token_answer = send(
        proxy,
        &dir,
        "POST",
        &format!("{}/{tenant}/oauth2/v2.0/token", fake.url()),
        &["Content-Type: application/x-www-form-urlencoded".into()],
        Some(b"grant_type=client_credentials&client_id=app-1&client_secret=s3cret&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"),
        "127.0.0.1",
    );
    let token: serde_json::Value = serde_json::from_str(&token_answer.body).unwrap_or_else(|e| panic!("{e}: {}", token_answer.body));
    let bearer = format!("Authorization: Bearer {}", token["access_token"].as_str().unwrap());
    let fragment = 20_000usize;
    for (twin, name, expected) in [("labeled", LABELED, 403), ("unlabeled", UNLABELED, 201)] {
        let file = std::fs::read(corpus(name)).unwrap();
        let created = send(
            proxy,
            &dir,
            "POST",
            &format!("{}/v1.0/me/drive/root:/Reports/{twin}.docx:/createUploadSession", fake.url()),
            &[bearer.clone(), "Content-Type: application/json".into()],
            Some(br#"{"item": {"@microsoft.graph.conflictBehavior": "replace"}}"#),
            "127.0.0.1",
        );
        assert_eq!(created.status, 200, "{}", created.body);
        let session: serde_json::Value = serde_json::from_str(&created.body).unwrap();
        let upload_url = session["uploadUrl"].as_str().unwrap().to_string();
        assert!(upload_url.starts_with("http://localhost:"), "{upload_url}");
        let mut statuses = Vec::new();
        let mut a = 0;
        while a < file.len() {
            let b = (a + fragment).min(file.len());
            statuses.push(piece(proxy, &dir, &upload_url, &file, a, b, "127.0.0.1").status);
            a = b;
        }
        assert!(statuses.len() >= 3, "{statuses:?}");
        assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 202), "{twin}: {statuses:?}");
        assert_eq!(*statuses.last().unwrap(), expected, "{twin}: {statuses:?}");
        let item = send(
            proxy,
            &dir,
            "GET",
            &format!("{}/v1.0/me/drive/root:/Reports/{twin}.docx", fake.url()),
            std::slice::from_ref(&bearer),
            None,
            "127.0.0.1",
        );
        if expected == 201 {
            let item: serde_json::Value = serde_json::from_str(&item.body).unwrap();
            assert_eq!(item["file"]["hashes"]["sha256Hash"].as_str().unwrap().to_ascii_lowercase(), sha(&file), "assembled byte-exact");
        } else {
            assert_eq!(item.status, 404, "the labeled file never became an item: {}", item.body);
        }
    }
    let records = session_records(&serve);
    let graph: Vec<_> = records.iter().filter(|r| r["session"]["protocol"] == "graph_upload_session").collect();
    assert_eq!(graph.len(), 2, "{records:#?}");
    assert_eq!(
        (graph[0]["action"].as_str(), graph[0]["files"][0]["name"].as_str()),
        (Some("block"), Some("labeled.docx")),
        "{:?}",
        graph[0]
    );
    assert_eq!(graph[1]["action"], "allow");
    drop(fake);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_same_url_uploaded_again_is_a_new_file_but_a_blocked_one_stays_blocked() {
    let dir = scratch("again");
    let (_origin, port) = python_origin(peer(), &dir);
    let (_serve, proxy) = serve_config(&dir, |c| c);
    let unlabeled = std::fs::read(corpus(UNLABELED)).unwrap();
    let labeled = std::fs::read(corpus(LABELED)).unwrap();
    let url = format!("http://127.0.0.1:{port}/dav/again.docx");
    let n = unlabeled.len();
    // Twice the unlabeled file, in two pieces each: both complete.
    for _ in 0..2 {
        assert_eq!(piece(proxy, &dir, &url, &unlabeled, 0, n / 2, "127.0.0.1").status, 202);
        assert_eq!(piece(proxy, &dir, &url, &unlabeled, n / 2, n, "127.0.0.1").status, 201);
    }
    // Then the labeled file to the same URL: blocked at completion; and starting over does not
    // open a new session, since the origin still holds the blocked file's first piece.
    let m = labeled.len();
    assert_eq!(piece(proxy, &dir, &url, &labeled, 0, m / 2, "127.0.0.1").status, 202);
    assert_eq!(piece(proxy, &dir, &url, &labeled, m / 2, m, "127.0.0.1").status, 403);
    assert_eq!(piece(proxy, &dir, &url, &labeled, 0, 10, "127.0.0.1").status, 403);
    assert_eq!(piece(proxy, &dir, &url, &labeled, m / 2, m, "127.0.0.1").status, 403);
    let done = assembled(port);
    assert_eq!(done.len(), 2, "{done:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn azure_block_blobs_are_decided_at_put_block_list() {
    // Blocks uploaded in any order (as the Azure SDKs do in parallel), one of them twice; the
    // blob is the list's order, decided when Put Block List commits it.
    let dir = scratch("azure");
    let (_origin, port) = python_origin(peer(), &dir);
    let (serve, proxy) = serve_config(&dir, |c| c);
    for (twin, name, expected) in [("labeled", LABELED, 403), ("unlabeled", UNLABELED, 201)] {
        let file = std::fs::read(corpus(name)).unwrap();
        let n = file.len();
        let url = format!("http://127.0.0.1:{port}/blob/{twin}.docx");
        let cuts = [(0, n / 3), (n / 3, 2 * n / 3), (2 * n / 3, n)];
        let ids = ["QUFBQQ==", "QkJC+w==", "Q0NDQw=="];
        for i in [2, 0, 1, 1] {
            let (a, b) = cuts[i];
            let id = ids[i].replace('+', "%2B").replace('=', "%3D");
            let block = send(
                proxy,
                &dir,
                "PUT",
                &format!("{url}?comp=block&blockid={id}"),
                &["x-ms-version: 2021-08-06".into()],
                Some(&file[a..b]),
                "127.0.0.1",
            );
            assert_eq!(block.status, 201, "{twin}: {}", block.body);
        }
        let list = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{}</BlockList>",
            ids.iter().map(|i| format!("<Latest>{i}</Latest>")).collect::<String>()
        );
        let commit = send(
            proxy,
            &dir,
            "PUT",
            &format!("{url}?comp=blocklist"),
            &["Content-Type: application/xml".into()],
            Some(list.as_bytes()),
            "127.0.0.1",
        );
        assert_eq!(commit.status, expected, "{twin}: {}", commit.body);
    }
    // A list that names a block committed before (never sent through the proxy): incomplete.
    let list = "<BlockList><Committed>T0xE</Committed></BlockList>";
    let commit =
        send(proxy, &dir, "PUT", &format!("http://127.0.0.1:{port}/blob/old.docx?comp=blocklist"), &[], Some(list.as_bytes()), "127.0.0.1");
    assert_eq!(commit.status, 403, "{}", commit.body);
    let done: Vec<String> = assembled(port).into_iter().map(|(n, s)| format!("{n} {s}")).collect();
    assert_eq!(done, [format!("unlabeled.docx {}", sha(&std::fs::read(corpus(UNLABELED)).unwrap()))]);
    let records = session_records(&serve);
    let azure: Vec<_> = records.iter().filter(|r| r["session"]["protocol"] == "azure_block_blob").collect();
    assert_eq!(azure.len(), 3, "{records:#?}");
    assert_eq!(
        (azure[0]["action"].as_str(), azure[0]["files"][0]["name"].as_str()),
        (Some("block"), Some("labeled.docx")),
        "{:?}",
        azure[0]
    );
    assert_eq!(azure[2]["files"][0]["unscannable"], "incomplete");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_google_upload_of_unknown_size_is_decided_at_its_empty_finalising_request() {
    // Google resumable with the size unknown while uploading: every chunk says `bytes a-b/*`,
    // and an empty `PUT` with `Content-Range: bytes */N` finalises the file. That request is held
    // and decides; a status query (`bytes */*`) passes.
    let dir = scratch("unknown-size");
    let (_origin, port) = python_origin(peer(), &dir);
    let (_serve, proxy) = serve_config(&dir, |c| c);
    for (twin, name, expected) in [("labeled", LABELED, 403), ("unlabeled", UNLABELED, 200)] {
        let file = std::fs::read(corpus(name)).unwrap();
        let n = file.len();
        let start = send(
            proxy,
            &dir,
            "POST",
            &format!("http://127.0.0.1:{port}/upload/drive/v3/files?uploadType=resumable"),
            &["Content-Type: application/json".into()],
            Some(format!("{{\"name\": \"{twin}.docx\"}}").as_bytes()),
            "127.0.0.1",
        );
        let session = start.header("location").unwrap_or_else(|| panic!("{}", start.body)).to_string();
        for (a, b) in [(0, n / 2), (n / 2, n)] {
            let chunk =
                send(proxy, &dir, "PUT", &session, &[format!("Content-Range: bytes {a}-{}/*", b - 1)], Some(&file[a..b]), "127.0.0.1");
            assert_eq!(chunk.status, 308, "{twin}: {}", chunk.body);
        }
        let query = send(proxy, &dir, "PUT", &session, &["Content-Range: bytes */*".into()], None, "127.0.0.1");
        assert_eq!(query.status, 308, "{twin}: a status query passes");
        let finalize = send(proxy, &dir, "PUT", &session, &[format!("Content-Range: bytes */{n}")], None, "127.0.0.1");
        assert_eq!(finalize.status, expected, "{twin}: {}", finalize.body);
    }
    let done: Vec<String> = assembled(port).into_iter().map(|(_, s)| s).collect();
    assert_eq!(done, [sha(&std::fs::read(corpus(UNLABELED)).unwrap())]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn red_team_regressions_stay_closed() {
    // Found by a red-team pass over this feature; each once let the labeled file be assembled
    // at the origin, or blocked an unlabeled one.
    let dir = scratch("redteam");
    let (_origin, port) = python_origin(peer(), &dir);
    let (_serve, proxy) = serve_config(&dir, |c| c.replace("upload_gap_wait_secs = 30", "upload_gap_wait_secs = 1"));
    let labeled = std::fs::read(corpus(LABELED)).unwrap();
    let unlabeled = std::fs::read(corpus(UNLABELED)).unwrap();
    let tus = |extra: &[String]| -> Vec<String> {
        let mut h = vec!["Tus-Resumable: 1.0.0".to_string(), "Content-Type: application/offset+octet-stream".to_string()];
        h.extend_from_slice(extra);
        h
    };
    // tus sizes and offsets written as some servers still read them: `+N`, leading zeros.
    let n = labeled.len();
    let created =
        send(proxy, &dir, "POST", &format!("http://127.0.0.1:{port}/files/"), &tus(&[format!("Upload-Length: +{n}")]), None, "127.0.0.1");
    let at = created.header("location").unwrap().to_string();
    let first = send(proxy, &dir, "PATCH", &at, &tus(&["Upload-Offset: 0".into()]), Some(&labeled[..n / 2]), "127.0.0.1");
    assert_eq!(first.status, 204);
    let rest = send(proxy, &dir, "PATCH", &at, &tus(&[format!("Upload-Offset: 000{}", n / 2)]), Some(&labeled[n / 2..]), "127.0.0.1");
    assert_eq!(rest.status, 403, "{}", rest.body);
    // Another protocol's header on a Content-Range piece does not hide the piece.
    let url = format!("http://127.0.0.1:{port}/dav/mixed.docx");
    let mark = "X-Goog-Upload-Command: x".to_string();
    let a = send(
        proxy,
        &dir,
        "PUT",
        &url,
        &[format!("Content-Range: bytes 0-{}/{n}", n / 2 - 1), mark.clone()],
        Some(&labeled[..n / 2]),
        "127.0.0.1",
    );
    let b = send(
        proxy,
        &dir,
        "PUT",
        &url,
        &[format!("Content-Range: bytes {}-{}/{n}", n / 2, n - 1), mark],
        Some(&labeled[n / 2..]),
        "127.0.0.1",
    );
    assert_eq!((a.status, b.status), (202, 403));
    // An Azure block list whose id holds a character reference names the block an XML parser
    // reads (`b0000x`), not a decoy under `b0000`.
    let blob = format!("http://127.0.0.1:{port}/blob/decoy.docx");
    assert_eq!(send(proxy, &dir, "PUT", &format!("{blob}?comp=block&blockid=b0000"), &[], Some(&unlabeled), "127.0.0.1").status, 201);
    let real = send(proxy, &dir, "PUT", &format!("{blob}?comp=block&blockid=b0000x"), &[], Some(&labeled), "127.0.0.1");
    assert_eq!(real.status, 403, "the labeled block, read alone, is already refused: {}", real.body);
    let list = send(
        proxy,
        &dir,
        "PUT",
        &format!("{blob}?comp=blocklist"),
        &[],
        Some(b"<BlockList><Latest>b0000&#120;</Latest></BlockList>"),
        "127.0.0.1",
    );
    assert_eq!(list.status, 403, "{}", list.body);
    // A concatenation that lists one partial upload twice is answered (it once deadlocked).
    let p = send(
        proxy,
        &dir,
        "POST",
        &format!("http://127.0.0.1:{port}/files/"),
        &tus(&["Upload-Length: 10".into(), "Upload-Concat: partial".into()]),
        None,
        "127.0.0.1",
    );
    let pa = p.header("location").unwrap().to_string();
    assert_eq!(send(proxy, &dir, "PATCH", &pa, &tus(&["Upload-Offset: 0".into()]), Some(b"0123456789"), "127.0.0.1").status, 204);
    let twice = send(
        proxy,
        &dir,
        "POST",
        &format!("http://127.0.0.1:{port}/files/"),
        &tus(&[format!("Upload-Concat: final;{pa} {pa}")]),
        None,
        "127.0.0.1",
    );
    assert_eq!(twice.status, 201, "{}", twice.body);
    // Unlabeled PDFs in pieces: a PDF cut short is not an `ambiguous` file.
    for pdf in std::fs::read_dir(corpus(""))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with("unl_") && f.ends_with(".pdf"))
    {
        let file = std::fs::read(corpus(&pdf)).unwrap();
        let url = format!("http://127.0.0.1:{port}/dav/{pdf}");
        let mut statuses = Vec::new();
        for a in (0..file.len()).step_by(65536) {
            statuses.push(piece(proxy, &dir, &url, &file, a, (a + 65536).min(file.len()), "127.0.0.1").status);
        }
        assert_eq!(statuses.last(), Some(&201), "{pdf}: {statuses:?}");
        assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 202), "{pdf}: {statuses:?}");
    }
    let done: Vec<String> = assembled(port).into_iter().map(|(_, s)| s).collect();
    assert!(!done.contains(&sha(&labeled)), "{done:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_dropbox_upload_session_is_decided_at_finish() {
    let dir = scratch("dropbox");
    let (_origin, port) = python_origin(peer(), &dir);
    let (serve, proxy) = serve_config(&dir, |c| c);
    for (twin, name, expected) in [("labeled", LABELED, 403), ("unlabeled", UNLABELED, 200)] {
        let file = std::fs::read(corpus(name)).unwrap();
        let n = file.len();
        let base = format!("http://127.0.0.1:{port}/2/files/upload_session");
        let octets = "Content-Type: application/octet-stream".to_string();
        let started = send(
            proxy,
            &dir,
            "POST",
            &format!("{base}/start"),
            &[octets.clone(), r#"Dropbox-API-Arg: {"close": false}"#.into()],
            Some(&file[..n / 3]),
            "127.0.0.1",
        );
        assert_eq!(started.status, 200, "{twin}: {}", started.body);
        let id = serde_json::from_str::<serde_json::Value>(&started.body).unwrap()["session_id"].as_str().unwrap().to_string();
        let arg =
            |offset: usize, extra: &str| format!(r#"Dropbox-API-Arg: {{"cursor": {{"session_id": "{id}", "offset": {offset}}}{extra}}}"#);
        let appended = send(
            proxy,
            &dir,
            "POST",
            &format!("{base}/append_v2"),
            &[octets.clone(), arg(n / 3, r#", "close": false"#)],
            Some(&file[n / 3..2 * n / 3]),
            "127.0.0.1",
        );
        assert_eq!(appended.status, 200, "{twin}: {}", appended.body);
        let commit = format!(r#", "commit": {{"path": "/Reports/{twin}.docx", "mode": "add"}}"#);
        let finished =
            send(proxy, &dir, "POST", &format!("{base}/finish"), &[octets, arg(2 * n / 3, &commit)], Some(&file[2 * n / 3..]), "127.0.0.1");
        assert_eq!(finished.status, expected, "{twin}: {}", finished.body);
    }
    let done: Vec<String> = assembled(port).into_iter().map(|(_, s)| s).collect();
    assert_eq!(done, [sha(&std::fs::read(corpus(UNLABELED)).unwrap())]);
    let records = session_records(&serve);
    let dropbox: Vec<_> = records.iter().filter(|r| r["session"]["protocol"] == "dropbox_upload_session").collect();
    assert_eq!(dropbox.len(), 2, "{records:#?}");
    assert_eq!(dropbox[0]["action"], "block");
    assert_eq!(dropbox[0]["session"]["pieces"], 3);
    let _ = std::fs::remove_dir_all(&dir);
}
