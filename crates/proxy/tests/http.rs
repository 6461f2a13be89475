//! The proxy over real loopback sockets: a real origin server, real HTTP/1.1 clients through the
//! proxy, the real corpus. Labeled files are blocked before a byte reaches the origin; everything
//! else arrives byte-exact.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use labelgate_catalog::Catalog;
use labelgate_policy::{CloudAppConfig, Policy, PolicyConfig};
use labelgate_proxy::{AuditSink, InspectionConfig, Proxy, ProxyConfig};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, String, String)>>>);

/// An origin that records (method, path, sha256 of the body) and answers 200.
async fn origin() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let record = record.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let record = record.clone();
                    async move {
                        // A proxy credential must never reach an origin: mark it if it does.
                        let leaked = req.headers().contains_key("proxy-authorization");
                        let method = format!("{}{}", req.method(), if leaked { "!proxy-authorization" } else { "" });
                        let path = req.uri().path().to_string();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let sha = hex(&Sha256::digest(&body));
                        record.0.lock().unwrap().push((method, path, sha.clone()));
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("stored {sha}")))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (addr, seen)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(serde::Deserialize)]
struct File {
    policy: PolicyConfig,
    #[serde(default)]
    cloud_apps: Vec<CloudAppConfig>,
}

/// The policy most tests use: labeled uploads are blocked.
const BLOCK_LABELED: &str = "[[policy.rules]]\nname = \"labeled\"\naction = \"block\"\nlabeled = true\n";

/// A proxy configuration on an ephemeral loopback port.
/// The one place these tests open the built-in destination refusals: their origins listen on
/// loopback, at ephemeral ports.
fn loopback() -> ProxyConfig {
    ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        allow_destinations: vec!["127.0.0.0/8".into(), "::1/128".into(), "localhost".into()],
        connect_ports: vec![labelgate_proxy::PortSpec::Range("1-65535".into())],
        ..ProxyConfig::default()
    }
}

async fn proxy(max_body: u64, oversize: &str) -> (SocketAddr, Buf) {
    proxy_with(max_body, oversize, loopback()).await
}

async fn proxy_with(max_body: u64, oversize: &str, config: ProxyConfig) -> (SocketAddr, Buf) {
    let rules = "[[policy.rules]]\nname = \"labeled\"\naction = \"block\"\nlabeled = true\nmessage = \"Labeled files stay inside.\"\n";
    proxy_full(max_body, oversize, config, rules, None).await
}

async fn proxy_full(
    max_body: u64,
    oversize: &str,
    config: ProxyConfig,
    rules: &str,
    users: Option<labelgate_proxy::Users>,
) -> (SocketAddr, Buf) {
    // These tests inspect up to max_body and no further.
    proxy_spooling(InspectionConfig { max_body, max_inspect: max_body, ..InspectionConfig::default() }, oversize, config, rules, users)
        .await
}

async fn proxy_spooling(
    inspection: InspectionConfig,
    oversize: &str,
    config: ProxyConfig,
    rules: &str,
    users: Option<labelgate_proxy::Users>,
) -> (SocketAddr, Buf) {
    let text = format!("[policy]\non_unscannable = {{ oversize = \"{oversize}\" }}\n{rules}");
    let file: File = toml::from_str(&text).unwrap();
    let (policy, problems) = Policy::compile(&file.policy, &file.cloud_apps, &["docx", "xlsx", "pptx", "pdf", "unknown"], &[]);
    assert!(problems.is_empty(), "{problems:?}");
    let (resolved, _) = policy.resolve(Arc::new(Catalog::default()));
    let resolved = Arc::new(resolved);
    let audit = Buf::default();
    let sink = Arc::new(AuditSink::new(Box::new(audit.clone())));
    let p = Proxy::bind(config, inspection, Arc::new(move || Arc::clone(&resolved)), sink).await.unwrap();
    let p = match users {
        Some(u) => p.with_users(u),
        None => p,
    };
    let addr = p.local_addr().unwrap();
    tokio::spawn(p.serve());
    (addr, audit)
}

/// Sends `req` (absolute-form URI) through the proxy at `proxy`.
async fn send<B>(proxy: SocketAddr, req: Request<B>) -> (StatusCode, http::HeaderMap, String)
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn corpus() -> Vec<(String, bool, Vec<u8>)> {
    let dir = labelgate_testkit::corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    manifest
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c[0].to_string(), c[5] != "-", std::fs::read(dir.join("files").join(c[0])).unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_file_is_blocked_or_arrives_byte_exact() {
    let (origin_addr, seen) = origin().await;
    let (proxy_addr, audit) = proxy(64 * 1024 * 1024, "block").await;
    let files = corpus();
    for (name, labeled, bytes) in &files {
        let url = format!("http://{origin_addr}/upload/{name}");
        let req = Request::put(&url).header("host", origin_addr.to_string()).body(Full::new(Bytes::from(bytes.clone()))).unwrap();
        let (status, headers, body) = send(proxy_addr, req).await;
        let before = seen.0.lock().unwrap().iter().filter(|(_, p, _)| p.ends_with(name.as_str())).count();
        if *labeled {
            assert_eq!(status, StatusCode::FORBIDDEN, "{name}");
            assert!(headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/html"));
            assert!(body.contains("Upload blocked") && body.contains("Labeled files stay inside."), "{name}");
            assert_eq!(before, 0, "{name}: the origin must never see a blocked upload");
        } else {
            assert_eq!(status, StatusCode::OK, "{name}: {body}");
            let sha = hex(&Sha256::digest(bytes));
            assert_eq!(body, format!("stored {sha}"), "{name}: byte-exact at the origin");
        }
    }
    let lines: Vec<serde_json::Value> =
        String::from_utf8(audit.0.lock().unwrap().clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), files.len(), "one audit record per inspected transaction");
    let blocked = lines.iter().filter(|l| l["action"] == "block").count();
    assert_eq!(blocked, files.iter().filter(|f| f.1).count());
    // Blocked files are identified by hash; clean files are not hashed on the hot path.
    for ((name, labeled, bytes), line) in files.iter().zip(&lines) {
        let file = &line["files"][0];
        if *labeled {
            assert_eq!(file["sha256"], hex(&Sha256::digest(bytes)), "{name}");
            assert!(file["labels"][0]["id"].as_str().is_some_and(|id| id.len() == 36), "{name}: {file}");
        } else if file["unscannable"].is_null() {
            assert!(file.get("sha256").is_none(), "{name}");
        }
    }
}

fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----labelgate-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n").as_bytes());
    for (name, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_with_several_files_chunked_and_json_clients() {
    let (origin_addr, seen) = origin().await;
    let (proxy_addr, audit) = proxy(64 * 1024 * 1024, "block").await;
    let files = corpus();
    let labeled = files.iter().find(|f| f.0 == "lab_caf_identity-baseline-discipline-template.docx").unwrap();
    let clean = files.iter().find(|f| f.0 == "unl_markitdown_test.pdf").unwrap();
    let clean2 = files.iter().find(|f| f.0 == "unl_gc_azuregr.xlsx").unwrap();
    let url = format!("http://{origin_addr}/form");

    // Two clean files: forwarded byte-exact, as a chunked body.
    let (ct, body) = multipart(&[("a.pdf", &clean.2), ("b.xlsx", &clean2.2)]);
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = body.chunks(7000).map(|c| Ok(Frame::data(Bytes::copy_from_slice(c)))).collect();
    let req = Request::post(&url).header("content-type", &ct).body(StreamBody::new(futures_util::stream::iter(chunks))).unwrap();
    let (status, _, reply) = send(proxy_addr, req).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply, format!("stored {}", hex(&Sha256::digest(&body))));

    // A clean file and a labeled one: the strictest decides; the page names the labeled file.
    let (ct, body) = multipart(&[("fine.pdf", &clean.2), ("q3 <plan>.docx", &labeled.2)]);
    let req = Request::post(&url).header("content-type", &ct).body(Full::new(Bytes::from(body))).unwrap();
    let (status, _, page) = send(proxy_addr, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("q3 &lt;plan&gt;.docx"), "{page}");
    assert!(!page.contains("fine.pdf"));
    assert_eq!(seen.0.lock().unwrap().len(), 1, "only the clean upload reached the origin");

    // fetch/XHR clients get JSON.
    let (ct, body) = multipart(&[("q3.docx", &labeled.2)]);
    let req = Request::post(&url).header("content-type", &ct).header("sec-fetch-mode", "cors").body(Full::new(Bytes::from(body))).unwrap();
    let (status, headers, json) = send(proxy_addr, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["error"], "blocked");
    assert_eq!(v["files"][0]["name"], "q3.docx");

    let records: Vec<serde_json::Value> =
        String::from_utf8(audit.0.lock().unwrap().clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[1]["files"].as_array().unwrap().len(), 2);
    assert_eq!(records[1]["files"][1]["labels"][0]["id"], "f42aa342-8706-4288-bd11-ebb85995028c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_malformed_host_mismatch_and_passthrough() {
    let (origin_addr, seen) = origin().await;
    let url = format!("http://{origin_addr}/x");
    // Oversize under each on_unscannable choice.
    let big = vec![7u8; 200_000];
    let (blocking, _) = proxy(100_000, "block").await;
    let (status, _, _) = send(blocking, Request::put(&url).body(Full::new(Bytes::from(big.clone()))).unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(seen.0.lock().unwrap().is_empty());
    let (allowing, _) = proxy(100_000, "allow").await;
    let (status, _, reply) = send(allowing, Request::put(&url).body(Full::new(Bytes::from(big.clone()))).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply, format!("stored {}", hex(&Sha256::digest(&big))), "an allowed oversize body arrives whole");

    // A broken multipart body is malformed, blocked by default.
    let req = Request::post(&url)
        .header("content-type", "multipart/form-data; boundary=zz")
        .body(Full::new(Bytes::from_static(b"--zz\r\nnot a header line\r\n")))
        .unwrap();
    let (status, _, _) = send(blocking, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A Host header naming another host is refused, not forwarded.
    let req = Request::post(&url).header("host", "evil.example").body(Full::new(Bytes::from_static(b"x"))).unwrap();
    let (status, _, _) = send(blocking, req).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);

    // Non-upload traffic passes through untouched.
    let before = seen.0.lock().unwrap().len();
    let (status, _, reply) = send(blocking, Request::get(&url).body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(reply.starts_with("stored "));
    assert_eq!(seen.0.lock().unwrap().len(), before + 1);

    // Origin-form requests are not proxy requests.
    let stream = TcpStream::connect(blocking).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(Request::get("/local").body(Full::new(Bytes::new())).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_allow_list_and_denied_destinations() {
    let (origin_addr, seen) = origin().await;
    let url = format!("http://{origin_addr}/x");
    // A proxy that serves only 10.0.0.0/8: a loopback client is not served at all.
    let config = ProxyConfig { allow_clients: vec!["10.0.0.0/8".into()], ..loopback() };
    let (closed, _) = proxy_with(1 << 20, "block", config).await;
    let stream = TcpStream::connect(closed).await.unwrap();
    let handshake = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await;
    if let Ok((mut sender, conn)) = handshake {
        tokio::spawn(conn);
        assert!(sender.send_request(Request::get(&url).body(Full::new(Bytes::new())).unwrap()).await.is_err(), "not served");
    }
    // Denied destinations, by network (checked on the resolved address) and by host name.
    let config = ProxyConfig { deny_destinations: vec!["127.0.0.0/8".into()], ..loopback() };
    let (denying, _) = proxy_with(1 << 20, "block", config).await;
    let (status, _, page) = send(denying, Request::get(&url).body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Destination denied"));
    let config = ProxyConfig { deny_destinations: vec!["localhost".into()], ..loopback() };
    let (by_name, _) = proxy_with(1 << 20, "block", config).await;
    let local = format!("http://localhost:{}/x", origin_addr.port());
    let (status, _, _) = send(
        by_name,
        Request::get(&local).header("host", format!("localhost:{}", origin_addr.port())).body(Full::new(Bytes::new())).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(seen.0.lock().unwrap().is_empty(), "nothing reached the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_authentication_feeds_policy_and_never_reaches_origins() {
    use base64::Engine;
    let (origin_addr, seen) = origin().await;
    let users = labelgate_proxy::Users::parse(&format!(
        "{}:finance\n{}\n",
        labelgate_proxy::hash_line("alice", "wonderland").unwrap(),
        labelgate_proxy::hash_line("bob", "builder").unwrap()
    ))
    .unwrap();
    let rules = "[[policy.rules]]\nname = \"finance keeps labels\"\naction = \"block\"\nlabeled = true\ngroups = [\"finance\"]\n";
    let config = loopback();
    let (proxy_addr, audit) = proxy_full(1 << 24, "block", config, rules, Some(users)).await;
    let labeled = corpus().into_iter().find(|f| f.0 == "lab_caf_identity-baseline-discipline-template.docx").unwrap().2;
    let url = format!("http://{origin_addr}/up");
    let basic = |cred: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(cred));
    let put = |auth: Option<String>| {
        let mut b = Request::put(&url);
        if let Some(a) = auth {
            b = b.header("proxy-authorization", a);
        }
        b.body(Full::new(Bytes::from(labeled.clone()))).unwrap()
    };
    let (status, headers, _) = send(proxy_addr, put(None)).await;
    assert_eq!(status, StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    assert_eq!(headers.get("proxy-authenticate").unwrap(), "Basic realm=\"labelgate\"");
    assert_eq!(send(proxy_addr, put(Some(basic("alice:wrong")))).await.0, StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    assert_eq!(send(proxy_addr, put(Some(basic("alice:wonderland")))).await.0, StatusCode::FORBIDDEN, "alice is in finance");
    assert_eq!(send(proxy_addr, put(Some(basic("bob:builder")))).await.0, StatusCode::OK, "bob is not");
    let recorded = seen.0.lock().unwrap().clone();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].0, "PUT", "Proxy-Authorization is stripped before the origin");
    let lines: Vec<serde_json::Value> =
        String::from_utf8(audit.0.lock().unwrap().clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["user"], "alice");
    assert_eq!(lines[1]["user"], "bob");
    assert!(!String::from_utf8(audit.0.lock().unwrap().clone()).unwrap().contains("wonderland"), "no secret in audit records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_bodies_decide_the_same_and_leave_nothing_behind() {
    let (origin_addr, _) = origin().await;
    let spool = std::env::temp_dir().join(format!("labelgate-spool-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&spool);
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join("upload-left-by-a-crash"), b"x").unwrap();
    let inspection = InspectionConfig {
        max_body: 64 << 20,
        memory_limit: 4096,
        spool_quota: 1 << 30,
        spool_dir: Some(spool.clone()),
        ..InspectionConfig::default()
    };
    let rules = BLOCK_LABELED;
    let config = loopback();
    let (proxy_addr, _) = proxy_spooling(inspection, "block", config, rules, None).await;
    assert!(!spool.join("upload-left-by-a-crash").exists(), "leftovers are removed on start");
    let url = format!("http://{origin_addr}/s");
    for (name, labeled, bytes) in corpus().into_iter().filter(|f| f.2.len() > 4096).take(24) {
        // Raw and multipart, both larger than the memory limit.
        let (status, _, reply) = send(proxy_addr, Request::put(&url).body(Full::new(Bytes::from(bytes.clone()))).unwrap()).await;
        let (ct, form) = multipart(&[(name.as_str(), &bytes)]);
        let (mstatus, _, mreply) =
            send(proxy_addr, Request::post(&url).header("content-type", ct).body(Full::new(Bytes::from(form.clone()))).unwrap()).await;
        if labeled {
            assert_eq!((status, mstatus), (StatusCode::FORBIDDEN, StatusCode::FORBIDDEN), "{name}");
        } else {
            assert_eq!(reply, format!("stored {}", hex(&Sha256::digest(&bytes))), "{name}");
            assert_eq!(mreply, format!("stored {}", hex(&Sha256::digest(&form))), "{name}");
        }
    }
    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    assert!(left.is_empty(), "spool files are removed after use: {left:?}");
    // A quota that other uploads hold: the body cannot be held, so it is refused for now (503
    // with Retry-After, audited), never decided as oversize. (A body larger than the whole quota
    // can never be held: that one is oversize.)
    let inspection = InspectionConfig {
        max_body: 64 << 20,
        memory_limit: 1024,
        spool_quota: 16_000,
        spool_dir: Some(spool.clone()),
        ..InspectionConfig::default()
    };
    let config = loopback();
    let (tight, audit) = proxy_spooling(inspection, "block", config, rules, None).await;
    let mut stalled = TcpStream::connect(tight).await.unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let head = format!("PUT {url} HTTP/1.1\r\nHost: {}\r\nContent-Length: 15000\r\n\r\n", url.split('/').nth(2).unwrap());
        stalled.write_all(head.as_bytes()).await.unwrap();
        stalled.write_all(&[3u8; 9000]).await.unwrap();
    }
    let spooled = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while std::fs::read_dir(&spool).unwrap().next().is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(spooled.is_ok(), "the stalled upload holds spool space");
    let (status, headers, _) = send(tight, Request::put(&url).body(Full::new(Bytes::from(vec![1u8; 10_000]))).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "5");
    let log = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("\"action\":\"unavailable\"") && log.contains("spool_quota"), "{log}");
    drop(stalled);
    let released = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while std::fs::read_dir(&spool).unwrap().next().is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(released.is_ok(), "the abandoned upload gives its spool space back");
    let (status, _, _) = send(tight, Request::put(&url).body(Full::new(Bytes::from(vec![1u8; 20_000]))).unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "larger than the whole spool: oversize, blocked here");
    let log = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
    assert!(log.lines().last().unwrap().contains("\"unscannable\":\"oversize\""), "{log}");
    let _ = std::fs::remove_dir_all(&spool);
}

/// A proxy that stops on `stop`; returns its address and the serving task.
async fn stoppable(
    config: ProxyConfig,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let file: File = toml::from_str("[[policy.rules]]\nname = \"labeled\"\naction = \"block\"\nlabeled = true\n").unwrap();
    let (policy, _) = Policy::compile(&file.policy, &file.cloud_apps, &["docx", "pdf"], &[]);
    let resolved = Arc::new(policy.resolve(Arc::new(Catalog::default())).0);
    let p = Proxy::bind(
        config,
        InspectionConfig::default(),
        Arc::new(move || Arc::clone(&resolved)),
        Arc::new(AuditSink::new(Box::new(std::io::sink()))),
    )
    .await
    .unwrap();
    let addr = p.local_addr().unwrap();
    (
        addr,
        tokio::spawn(p.serve_until(async move {
            let _ = stop.await;
        })),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_uploads_in_flight_and_stalled_uploads_time_out() {
    let (origin_addr, _) = origin().await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let config = ProxyConfig { body_idle_timeout_secs: 1, drain_timeout_secs: 10, ..loopback() };
    let (proxy_addr, task) = stoppable(config, stop_rx).await;
    let url = format!("http://{origin_addr}/drain");
    // An upload in flight when shutdown begins still completes.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) }));
    let stream = TcpStream::connect(proxy_addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let pending = tokio::spawn(async move { sender.send_request(Request::put(&url).body(body).unwrap()).await });
    tx.send(Ok(Frame::data(Bytes::from_static(b"first half, ")))).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop_tx.send(()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(TcpStream::connect(proxy_addr).await.is_err(), "no new connections while draining");
    tx.send(Ok(Frame::data(Bytes::from_static(b"second half")))).await.unwrap();
    drop(tx);
    let resp = pending.await.unwrap().expect("the transaction in flight completes");
    assert_eq!(resp.status(), StatusCode::OK);
    let reply = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(reply, format!("stored {}", hex(&Sha256::digest(b"first half, second half"))));
    task.await.unwrap().unwrap();

    // A stalled upload fails with 408 instead of holding the connection forever.
    let (_keep, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = ProxyConfig { body_idle_timeout_secs: 1, ..loopback() };
    let (proxy_addr, _task) = stoppable(config, stop_rx).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) }));
    tx.send(Ok(Frame::data(Bytes::from_static(b"and then nothing")))).await.unwrap();
    let (status, _, _) = send(proxy_addr, Request::put(format!("http://{origin_addr}/stall")).body(body).unwrap()).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    drop(tx);
}

/// An origin that accepts an Upgrade and echoes what it receives.
async fn echo_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                    let up = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        if let Ok(upgraded) = up.await {
                            let mut io = TokioIo::new(upgraded);
                            let mut buf = [0u8; 64];
                            use tokio::io::{AsyncReadExt, AsyncWriteExt};
                            while let Ok(n) = io.read(&mut buf).await {
                                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    });
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                    r.headers_mut().insert("upgrade", "websocket".parse().unwrap());
                    r.headers_mut().insert("connection", "Upgrade".parse().unwrap());
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).with_upgrades().await;
            });
        }
    });
    addr
}

/// A WebSocket handshake (with `extra` headers) through a proxy to the echo origin: the upgraded
/// connection.
async fn websocket_through_proxy(extra: &[(&str, &str)]) -> TokioIo<hyper::upgrade::Upgraded> {
    let origin = echo_origin().await;
    let (proxy_addr, _) = proxy(1 << 20, "block").await;
    let stream = TcpStream::connect(proxy_addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn.with_upgrades());
    let mut req = Request::get(format!("http://{origin}/ws"))
        .header("host", origin.to_string())
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    let resp = sender.send_request(req.body(Full::new(Bytes::new())).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    TokioIo::new(hyper::upgrade::on(resp).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_pass_through() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut io = websocket_through_proxy(&[]).await;
    // One masked text frame, as a client sends it: inspected (plain text carries no file), then
    // relayed byte for byte; the echo origin sends the same bytes back.
    let payload = b"ping through labelgate";
    let key = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    io.write_all(&frame).await.unwrap();
    let mut buf = vec![0u8; frame.len()];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, frame);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_that_cannot_be_relayed_faithfully_close_with_1002() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut io = websocket_through_proxy(&[("sec-websocket-extensions", "permessage-deflate")]).await;
    // A compressed frame (RSV1) although no extension was negotiated: refused.
    io.write_all(&[0xC1, 0x80 | 2, 0, 0, 0, 0, 0x4b, 0x4c]).await.unwrap();
    let mut close = [0u8; 4];
    io.read_exact(&mut close).await.unwrap();
    assert_eq!(close, [0x88, 2, 0x03, 0xEA], "close 1002");
}

/// What a watching origin saw of one request.
#[derive(Debug, PartialEq)]
enum Arrival {
    /// Body bytes received so far (sent as they come).
    Bytes(usize),
    /// The whole body arrived: its sha256.
    Complete(String),
    /// The body broke off before it was complete.
    BrokenOff(usize),
}

/// An origin that reports body progress frame by frame, so a test can see when bytes arrive.
async fn watching_origin() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Arrival>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let mut body = req.into_body();
                        let mut got = Vec::new();
                        loop {
                            match body.frame().await {
                                Some(Ok(f)) => {
                                    if let Ok(d) = f.into_data() {
                                        got.extend_from_slice(&d);
                                        let _ = tx.send(Arrival::Bytes(got.len()));
                                    }
                                }
                                Some(Err(_)) => {
                                    let _ = tx.send(Arrival::BrokenOff(got.len()));
                                    return Err("broken off");
                                }
                                None => break,
                            }
                        }
                        let sha = hex(&Sha256::digest(&got));
                        let _ = tx.send(Arrival::Complete(sha.clone()));
                        Ok::<_, &str>(Response::new(Full::new(Bytes::from(format!("stored {sha}")))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (addr, rx)
}

/// The next arrival that is not mere progress (a connection that closes mid-body may also just
/// end the request without an error frame: then nothing completes).
/// A whole body that fits in the holdback may be aborted before the origin sees the request at
/// all, so `wait` bounds how long to look.
async fn outcome(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Arrival>, wait: std::time::Duration) -> Option<Arrival> {
    loop {
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(Arrival::Bytes(_))) => continue,
            Ok(other) => return other,
            Err(_) => return None,
        }
    }
}

async fn streaming_proxy(holdback: u64) -> (SocketAddr, Buf) {
    let inspection = InspectionConfig {
        max_body: 64 << 20,
        mode: labelgate_proxy::InspectionMode::Stream,
        stream_holdback: holdback,
        ..InspectionConfig::default()
    };
    let rules = "[[policy.rules]]\nname = \"labeled\"\naction = \"block\"\nlabeled = true\nmessage = \"Labeled files stay inside.\"\n";
    let config = loopback();
    proxy_spooling(inspection, "block", config, rules, None).await
}

type Chunks = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, Infallible>>;
type FedBody = StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

/// A chunked request whose body the test feeds piece by piece.
fn fed_request(url: &str, host: SocketAddr) -> (Chunks, Request<FedBody>) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let stream: futures_util::stream::BoxStream<'static, _> =
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) }));
    (tx, Request::post(url).header("host", host.to_string()).body(StreamBody::new(stream)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_forwards_while_inspecting_and_aborts_blocked_uploads() {
    let (origin_addr, mut arrivals) = watching_origin().await;
    let (proxy_addr, audit) = streaming_proxy(4096).await;
    let url = format!("http://{origin_addr}/upload");

    // Bytes flow before the client has finished: the origin sees the head of the body while the
    // client still holds the rest back.
    let (feed, req) = fed_request(&url, origin_addr);
    let reply = tokio::spawn(send(proxy_addr, req));
    let head = vec![b'a'; 200_000];
    feed.send(Ok(Frame::data(Bytes::from(head.clone())))).await.unwrap();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), arrivals.recv()).await;
    match first {
        Ok(Some(Arrival::Bytes(n))) => assert!(n > 0 && n <= 200_000 - 4096 + 1, "only bytes beyond the holdback flow early: {n}"),
        other => panic!("the origin saw nothing before the upload ended: {other:?}"),
    }
    feed.send(Ok(Frame::data(Bytes::from_static(b"tail")))).await.unwrap();
    drop(feed);
    let (status, _, body) = reply.await.unwrap();
    let mut whole = head.clone();
    whole.extend_from_slice(b"tail");
    let sha = hex(&Sha256::digest(&whole));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("stored {sha}"));
    assert_eq!(outcome(&mut arrivals, std::time::Duration::from_secs(3)).await, Some(Arrival::Complete(sha)));

    // A labeled file, fed in small chunks: the origin receives its first bytes, never its end.
    let files = corpus();
    let labeled = files.iter().find(|f| f.0 == "lab_caf_identity-baseline-discipline-template.docx").unwrap();
    assert!(labeled.2.len() > 16 * 1024, "the test needs a file larger than the holdback");
    let (feed, req) = fed_request(&url, origin_addr);
    let reply = tokio::spawn(send(proxy_addr, req));
    for piece in labeled.2.chunks(1024) {
        feed.send(Ok(Frame::data(Bytes::copy_from_slice(piece)))).await.unwrap();
    }
    drop(feed);
    let (status, _, body) = reply.await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("Labeled files stay inside."));
    match outcome(&mut arrivals, std::time::Duration::from_secs(3)).await {
        Some(Arrival::Complete(_)) => panic!("a blocked chunked upload reached the origin complete"),
        Some(Arrival::BrokenOff(n)) => assert!(n < labeled.2.len(), "the tail was withheld"),
        Some(Arrival::Bytes(_)) | None => {}
    }

    // Every corpus file with a Content-Length body: labeled ones broken off, the rest byte-exact.
    for (name, is_labeled, bytes) in &files {
        let req = Request::put(format!("{url}/{name}"))
            .header("host", origin_addr.to_string())
            .body(Full::new(Bytes::from(bytes.clone())))
            .unwrap();
        let (status, _, body) = send(proxy_addr, req).await;
        let wait = std::time::Duration::from_millis(if *is_labeled { 300 } else { 10_000 });
        let mut got = outcome(&mut arrivals, wait).await;
        // A late report of an earlier blocked upload breaking off belongs to that upload.
        while !is_labeled && matches!(got, Some(Arrival::BrokenOff(_))) {
            got = outcome(&mut arrivals, wait).await;
        }
        if *is_labeled {
            assert_eq!(status, StatusCode::FORBIDDEN, "{name}");
            assert!(!matches!(got, Some(Arrival::Complete(_))), "{name}: a blocked upload must not arrive complete");
        } else {
            let sha = hex(&Sha256::digest(bytes));
            assert_eq!((status, body), (StatusCode::OK, format!("stored {sha}")), "{name}");
            assert_eq!(got, Some(Arrival::Complete(sha)), "{name}");
        }
    }
    let records = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
    assert_eq!(records.lines().count(), files.len() + 2, "one audit record per streamed transaction");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_coded_uploads_are_decoded_for_inspection_in_memory_and_spooled() {
    let (origin_addr, seen) = origin().await;
    let spool = std::env::temp_dir().join(format!("labelgate-spool-gz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&spool);
    // A 1 MiB decoded cap, 8 KiB in memory: small bodies decode in memory, larger ones on disk.
    let inspection = InspectionConfig {
        max_body: 1 << 20,
        memory_limit: 8192,
        spool_quota: 1 << 30,
        spool_dir: Some(spool.clone()),
        ..InspectionConfig::default()
    };
    let rules = BLOCK_LABELED;
    let config = loopback();
    let (proxy_addr, audit) = proxy_spooling(inspection, "block", config, rules, None).await;
    let url = format!("http://{origin_addr}/coded");
    let files = corpus();
    let picks = [
        "lab_caf_identity-baseline-discipline-template.docx",
        "lab_markitdown_repair-invoice.pdf",
        "unl_markitdown_test.pdf",
        "unl_gc_azuregr.xlsx",
    ];
    for name in picks {
        let (_, labeled, bytes) = files.iter().find(|f| f.0 == name).unwrap();
        let (ct, form) = multipart(&[(name, bytes)]);
        for (coding, encoded) in [("gzip", gzip(&form)), ("deflate", deflate(&form))] {
            let req = Request::post(&url)
                .header("content-type", &ct)
                .header("content-encoding", coding)
                .body(Full::new(Bytes::from(encoded.clone())))
                .unwrap();
            let (status, _, reply) = send(proxy_addr, req).await;
            if *labeled {
                assert_eq!(status, StatusCode::FORBIDDEN, "{name} as {coding}: a coded body is inspected decoded");
            } else {
                assert_eq!(
                    reply,
                    format!("stored {}", hex(&Sha256::digest(&encoded))),
                    "{name} as {coding}: the coded bytes are forwarded"
                );
            }
        }
    }
    let origin_saw = seen.0.lock().unwrap().len();
    assert_eq!(origin_saw, 4, "only the unlabeled uploads reached the origin");
    // A small body that inflates past max_body more than max_ratio times is a bomb, nested_limit
    // (its decoded start is read too), never a memory spike nor a spool filled; corrupt data and
    // unknown codings are malformed.
    let bomb = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 4 << 20]).unwrap();
        e.finish().unwrap()
    };
    assert!(bomb.len() < 8192);
    for (coding, body, reason) in
        [("gzip", bomb, "nested_limit"), ("gzip", b"not gzip at all".to_vec(), "malformed"), ("br", gzip(b"x"), "malformed")]
    {
        let req = Request::put(&url).header("content-encoding", coding).body(Full::new(Bytes::from(body))).unwrap();
        let (status, _, _) = send(proxy_addr, req).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{reason}");
        let log = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
        let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        let reasons: Vec<&str> = last["files"].as_array().unwrap().iter().filter_map(|f| f["unscannable"].as_str()).collect();
        assert!(reasons.contains(&reason), "{reason}: {last}");
    }
    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    assert!(left.is_empty(), "decoded spools are removed too: {left:?}");
}

/// An origin that counts the TCP connections it accepts; with `close`, it ends each one after
/// one response.
async fn counting_origin(close: bool) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let mut r = Response::new(Full::new(Bytes::from(format!("got {}", body.len()))));
                    if close {
                        r.headers_mut().insert("connection", http::HeaderValue::from_static("close"));
                    }
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new().keep_alive(!close).serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_closed_ones_are_not() {
    let (proxy_addr, _) = proxy(1 << 20, "block").await;
    for (close, expected) in [(false, 1), (true, 6)] {
        let (origin_addr, accepted) = counting_origin(close).await;
        for i in 0..6 {
            // A fresh client connection each time: reuse is on the origin side.
            let req = Request::post(format!("http://{origin_addr}/u{i}")).body(Full::new(Bytes::from(vec![b'x'; 1000 + i]))).unwrap();
            let (status, _, body) = send(proxy_addr, req).await;
            assert_eq!((status, body), (StatusCode::OK, format!("got {}", 1000 + i)), "request {i} (origin closes: {close})");
            // Give a closing origin's FIN time to land, as it would between real uploads.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), expected, "origin connections (origin closes: {close})");
    }
}

/// An origin that answers the first request on each connection (keeping it open) and drops the
/// connection when a second one arrives: the moment an idle keep-alive connection is closed by
/// the server just as the proxy reuses it.
async fn one_request_per_connection_origin() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                // Read one request (head + Content-Length body), answer, then wait for more bytes
                // and drop the connection unanswered when they come.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let body = format!("got {len}");
                            let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                            let _ = stream.write_all(reply.as_bytes()).await;
                            break;
                        }
                    }
                }
                let _ = stream.read(&mut chunk).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_upload_is_resent_when_a_reused_connection_was_closed_under_it() {
    let (proxy_addr, audit) = proxy(1 << 20, "block").await;
    let (origin_addr, accepted) = one_request_per_connection_origin().await;
    for i in 0..4 {
        let req = Request::post(format!("http://{origin_addr}/u{i}")).body(Full::new(Bytes::from(vec![b'x'; 2000 + i]))).unwrap();
        let (status, _, body) = send(proxy_addr, req).await;
        assert_eq!((status, body), (StatusCode::OK, format!("got {}", 2000 + i)), "request {i}");
    }
    // Each reuse found the connection dropped and went out again on a new one.
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 4);
    assert_eq!(
        String::from_utf8(audit.0.lock().unwrap().clone()).unwrap().lines().count(),
        4,
        "one record per transaction, retries included"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_trickles_in_past_the_upload_timeout_fails_with_408() {
    let (origin_addr, seen) = origin().await;
    let (_keep, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = ProxyConfig { body_idle_timeout_secs: 1, upload_timeout_secs: 1, ..loopback() };
    let (proxy_addr, _task) = stoppable(config, stop_rx).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) }));
    // A byte every 300 ms never trips the 1 s idle timeout, but the whole upload takes longer.
    let feeder = tokio::spawn(async move {
        for _ in 0..10 {
            if tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    });
    // (Without the upload timeout the trickle completes after 3 s and the origin answers 200.)
    let (status, _, _) = send(proxy_addr, Request::put(format!("http://{origin_addr}/trickle")).body(body).unwrap()).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert!(seen.0.lock().unwrap().is_empty(), "nothing reached the origin");
    feeder.abort();
}

/// An origin that counts the body bytes it has received so far (all requests together) and
/// records (path, sha256) of each body it received whole.
async fn counting_bytes_origin() -> (SocketAddr, Arc<std::sync::atomic::AtomicU64>, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = Seen::default();
    let (counter, record) = (Arc::clone(&received), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (counter, record) = (Arc::clone(&counter), record.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (counter, record) = (Arc::clone(&counter), record.clone());
                    async move {
                        let path = req.uri().path().to_string();
                        let mut body = req.into_body();
                        let mut hasher = Sha256::new();
                        while let Some(frame) = body.frame().await {
                            let Ok(frame) = frame else { return Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) };
                            if let Ok(data) = frame.into_data() {
                                counter.fetch_add(data.len() as u64, std::sync::atomic::Ordering::SeqCst);
                                hasher.update(&data);
                            }
                        }
                        let sha = hex(&hasher.finalize());
                        record.0.lock().unwrap().push(("PUT".into(), path, sha.clone()));
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("stored {sha}")))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (addr, received, seen)
}

/// A docx whose label part comes after `padding` bytes of stored media (labeled or not).
fn padded_docx(padding: usize, labeled: bool) -> Vec<u8> {
    let mut entries = vec![labelgate_testkit::Entry::new("word/media/video.mp4", labelgate_testkit::filler(padding, 11)).stored()];
    let custom = labeled.then(|| labelgate_testkit::custom_xml(&[(labelgate_testkit::GUID_A, labelgate_testkit::SITE_OTHER, "true")]));
    entries.extend(labelgate_testkit::docx(custom, None));
    labelgate_testkit::zip(&entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_body_past_max_body_streams_on_while_it_is_inspected_whole() {
    // Hold mode, max_body 1 MiB, max_inspect 16 MiB: a 6 MiB docx whose label sits after 6 MiB of
    // media. The client sends 3 MiB and waits until the origin has received more than max_body
    // (the body streams on past it), then sends the rest. Labeled: 403, and the origin never
    // receives the whole body; unlabeled: 200, byte-exact.
    let (origin_addr, received, seen) = counting_bytes_origin().await;
    let spool = std::env::temp_dir().join(format!("labelgate-spool-stream-on-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&spool);
    let inspection = InspectionConfig {
        max_body: 1 << 20,
        max_inspect: 16 << 20,
        memory_limit: 256 * 1024,
        spool_dir: Some(spool.clone()),
        ..InspectionConfig::default()
    };
    let (proxy_addr, audit) = proxy_spooling(inspection, "allow", loopback(), BLOCK_LABELED, None).await;
    for labeled in [true, false] {
        let file = padded_docx(6 << 20, labeled);
        let before = received.load(std::sync::atomic::Ordering::SeqCst);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        let body = StreamBody::new(tokio_stream_from(rx));
        let url = format!("http://{origin_addr}/big-{labeled}.docx");
        let req = Request::put(&url).header("content-length", file.len().to_string()).body(body).unwrap();
        let sending = tokio::spawn(send(proxy_addr, req));
        let split = 3 << 20;
        for chunk in file[..split].chunks(64 * 1024) {
            tx.send(Ok(Frame::data(Bytes::copy_from_slice(chunk)))).await.unwrap();
        }
        // The origin receives bytes past max_body before the client has sent the end.
        let waited = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while received.load(std::sync::atomic::Ordering::SeqCst) - before <= 1 << 20 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "labeled={labeled}: past max_body the body streams on before it ends");
        for chunk in file[split..].chunks(64 * 1024) {
            tx.send(Ok(Frame::data(Bytes::copy_from_slice(chunk)))).await.unwrap();
        }
        drop(tx);
        let (status, _, reply) = sending.await.unwrap();
        let whole = hex(&Sha256::digest(&file));
        if labeled {
            assert_eq!(status, StatusCode::FORBIDDEN, "the label after the media is read from the spool");
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert!(!seen.0.lock().unwrap().iter().any(|(_, _, sha)| sha == &whole), "the origin never has the labeled file whole");
            let got = received.load(std::sync::atomic::Ordering::SeqCst) - before;
            assert!(got < file.len() as u64, "the withheld tail never left: {got} of {}", file.len());
        } else {
            assert_eq!(status, StatusCode::OK);
            assert_eq!(reply, format!("stored {whole}"), "byte-exact");
        }
    }
    let log = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
    let records: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["action"], "block");
    assert_eq!(records[0]["files"][0]["labels"][0]["id"], labelgate_testkit::GUID_A);
    assert!(records.iter().all(|r| r["files"][0]["unscannable"].is_null()), "fully inspected, never oversize: {records:?}");
    assert!(std::fs::read_dir(&spool).unwrap().next().is_none(), "spool files removed");
}

/// A body stream fed from a channel.
fn tokio_stream_from<T: Send + 'static>(rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_inspect_a_body_is_oversize_and_its_policy_decides_in_both_modes() {
    let (origin_addr, _received, seen) = counting_bytes_origin().await;
    let file = padded_docx(5 << 20, false);
    for mode in ["hold", "stream"] {
        for (action, status) in [("block", StatusCode::FORBIDDEN), ("allow", StatusCode::OK)] {
            let inspection = InspectionConfig {
                max_body: 1 << 20,
                max_inspect: 2 << 20,
                memory_limit: 256 * 1024,
                mode: if mode == "hold" { labelgate_proxy::InspectionMode::Hold } else { labelgate_proxy::InspectionMode::Stream },
                ..InspectionConfig::default()
            };
            let (proxy_addr, audit) = proxy_spooling(inspection, action, loopback(), BLOCK_LABELED, None).await;
            let url = format!("http://{origin_addr}/{mode}-{action}");
            let (got, _, reply) = send(proxy_addr, Request::put(&url).body(Full::new(Bytes::from(file.clone()))).unwrap()).await;
            assert_eq!(got, status, "{mode}/{action}");
            let whole = hex(&Sha256::digest(&file));
            if action == "allow" {
                assert_eq!(reply, format!("stored {whole}"), "{mode}: an allowed oversize body arrives whole");
            } else {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                assert!(!seen.0.lock().unwrap().iter().any(|(_, p, _)| p == &format!("/{mode}-{action}")), "{mode}: never completed");
            }
            let log = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
            let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
            assert_eq!(last["files"][0]["unscannable"], "oversize", "{mode}/{action}: {last}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coded_body_or_part_is_judged_by_what_it_decodes_to_past_max_body() {
    // max_body 1 MiB: a labeled docx padded with 3 MiB of media, gzip-coded (it barely
    // compresses) as a body, and as a multipart part with its own Content-Encoding or a base64
    // transfer encoding: decoded whole into the spool, the label read, 403. The unlabeled twin
    // arrives byte-exact. The same docx padded with zeros (a 1000:1 bomb) is nested_limit.
    let (origin_addr, seen) = origin().await;
    let inspection = InspectionConfig { max_body: 1 << 20, memory_limit: 256 * 1024, ..InspectionConfig::default() };
    let (proxy_addr, audit) = proxy_spooling(inspection, "allow", loopback(), BLOCK_LABELED, None).await;
    use base64::Engine;
    for labeled in [true, false] {
        let docx = padded_docx(3 << 20, labeled);
        let part = |headers: &str, data: &[u8]| {
            let mut b = format!("--zz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.docx\"\r\n{headers}\r\n").into_bytes();
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n--zz--\r\n");
            b
        };
        let mut wrapped = Vec::new();
        for line in base64::engine::general_purpose::STANDARD.encode(&docx).as_bytes().chunks(76) {
            wrapped.extend_from_slice(line);
            wrapped.extend_from_slice(b"\r\n");
        }
        let shapes: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
            ("body gzip", Some("gzip"), gzip(&docx)),
            ("part gzip", None, part("Content-Encoding: gzip\r\n", &gzip(&docx))),
            ("part base64", None, part("Content-Transfer-Encoding: base64\r\n", &wrapped)),
        ];
        for (shape, coding, body) in shapes {
            let mut req = Request::post(format!("http://{origin_addr}/coded"));
            if let Some(c) = coding {
                req = req.header("content-encoding", c);
            } else {
                req = req.header("content-type", "multipart/form-data; boundary=zz");
            }
            let (status, _, reply) = send(proxy_addr, req.body(Full::new(Bytes::from(body.clone()))).unwrap()).await;
            if labeled {
                assert_eq!(status, StatusCode::FORBIDDEN, "{shape}: judged by what it decodes to");
            } else {
                assert_eq!(
                    reply,
                    format!("stored {}", hex(&Sha256::digest(&body))),
                    "{shape}: forwarded as sent: {}",
                    String::from_utf8_lossy(&audit.0.lock().unwrap())
                );
                let log = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
                let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
                assert!(
                    last["files"].as_array().unwrap().iter().all(|f| f["unscannable"].is_null()),
                    "{shape}: read whole, nothing oversize: {last}"
                );
            }
        }
    }
    // A labeled docx behind a stray `=` in a base64 part: refused (data after padding), never an
    // empty part that passes.
    let labeled = padded_docx(1000, true);
    let mut hidden = b"=".to_vec();
    hidden.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(&labeled).as_bytes());
    let mut body =
        b"--zz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.docx\"\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    body.extend_from_slice(&hidden);
    body.extend_from_slice(b"\r\n--zz--\r\n");
    let req = Request::post(format!("http://{origin_addr}/hidden"))
        .header("content-type", "multipart/form-data; boundary=zz")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let (status, _, _) = send(proxy_addr, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "base64 after padding is malformed, blocked");

    // Zeros compress 1000:1: past max_body that is a bomb, not a file to spool whole.
    let mut zeros = vec![labelgate_testkit::Entry::new("word/media/blank.bin", vec![0u8; 3 << 20]).stored()];
    zeros.extend(labelgate_testkit::docx(None, None));
    let bomb = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&labelgate_testkit::zip(&zeros)).unwrap();
        e.finish().unwrap()
    };
    let before = seen.0.lock().unwrap().len();
    let req =
        Request::post(format!("http://{origin_addr}/bomb")).header("content-encoding", "gzip").body(Full::new(Bytes::from(bomb))).unwrap();
    let (status, _, _) = send(proxy_addr, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(seen.0.lock().unwrap().len(), before);
    let log = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert!(last["files"].as_array().unwrap().iter().any(|f| f["unscannable"] == "nested_limit"), "{last}");
}

/// An audit destination that has failed (a full disk, a log shipper gone).
struct BrokenAudit;
impl std::io::Write for BrokenAudit {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_audit_sink_blocks_allowed_uploads_only_when_audit_is_required() {
    let (origin_addr, seen) = origin().await;
    let files = corpus();
    let (_, _, unlabeled) = files.iter().find(|f| f.0 == "unl_gc_azuregr.xlsx").unwrap();
    let (_, _, labeled) = files.iter().find(|f| f.0 == "lab_caf_identity-baseline-discipline-template.docx").unwrap();
    for required in [false, true] {
        let file: File = toml::from_str(&format!("[policy]\n{BLOCK_LABELED}")).unwrap();
        let (policy, _) = Policy::compile(&file.policy, &file.cloud_apps, &["docx", "xlsx"], &[]);
        let resolved = Arc::new(policy.resolve(Arc::new(Catalog::default())).0);
        let sink = Arc::new(AuditSink::new(Box::new(BrokenAudit)));
        let config = ProxyConfig { audit_required: required, ..loopback() };
        let p = Proxy::bind(config, InspectionConfig::default(), Arc::new(move || Arc::clone(&resolved)), Arc::clone(&sink)).await.unwrap();
        let proxy_addr = p.local_addr().unwrap();
        tokio::spawn(p.serve());
        let before = seen.0.lock().unwrap().len();
        let url = format!("http://{origin_addr}/audit-{required}");
        let (status, headers, _) = send(proxy_addr, Request::put(&url).body(Full::new(Bytes::from(unlabeled.clone()))).unwrap()).await;
        if required {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "no record, no pass");
            assert_eq!(headers["retry-after"], "5");
            assert_eq!(seen.0.lock().unwrap().len(), before, "never forwarded");
        } else {
            assert_eq!(status, StatusCode::OK, "the loss is loud, the upload goes on");
            assert_eq!(seen.0.lock().unwrap().len(), before + 1);
        }
        let (status, _, _) = send(proxy_addr, Request::put(&url).body(Full::new(Bytes::from(labeled.clone()))).unwrap()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a block stays a block");
        assert!(sink.failures() >= 2, "every lost record is counted: {}", sink.failures());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_upload_that_keeps_moving_is_not_cut_by_the_response_timeout() {
    // response_timeout_secs = 1; a streamed upload that takes 3 s, a part every 250 ms, reaches
    // the origin whole: the origin's answer is timed from the body's end, not from its start.
    let (origin_addr, seen) = origin().await;
    let inspection = InspectionConfig { mode: labelgate_proxy::InspectionMode::Stream, ..InspectionConfig::default() };
    let config = ProxyConfig { response_timeout_secs: 1, ..loopback() };
    let (proxy_addr, _) = proxy_spooling(inspection, "allow", config, BLOCK_LABELED, None).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let req = Request::put(format!("http://{origin_addr}/slow-and-steady")).body(StreamBody::new(tokio_stream_from(rx))).unwrap();
    let sending = tokio::spawn(send(proxy_addr, req));
    let mut all = Vec::new();
    for i in 0..12u8 {
        let part = vec![i; 100_000];
        all.extend_from_slice(&part);
        tx.send(Ok(Frame::data(Bytes::from(part)))).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    drop(tx);
    let (status, _, reply) = sending.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply, format!("stored {}", hex(&Sha256::digest(&all))));
    assert_eq!(seen.0.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_not_read_whole_is_unscannable_never_clean() {
    // max_body 1 MiB: a UTF-16 JSON body of 1.5 MiB carrying a labeled docx (base64) past its
    // first MiB is cut where it is read as text: oversize, blocked here. So is a body of more
    // encoded files than max_candidates (1000 decoys, the labeled one last): nested_limit.
    use base64::Engine;
    let (origin_addr, seen) = origin().await;
    let inspection = InspectionConfig { max_body: 1 << 20, ..InspectionConfig::default() };
    let (proxy_addr, audit) = proxy_spooling(inspection, "block", loopback(), BLOCK_LABELED, None).await;
    let docx = base64::engine::general_purpose::STANDARD.encode(padded_docx(1000, true));
    let json = format!(r#"{{"pad": "{}", "file": "{docx}"}}"#, "x".repeat(600_000));
    let mut wide = vec![0xff, 0xfe];
    for unit in json.encode_utf16() {
        wide.extend_from_slice(&unit.to_le_bytes());
    }
    let req = Request::post(format!("http://{origin_addr}/wide"))
        .header("content-type", "application/json; charset=utf-16")
        .body(Full::new(Bytes::from(wide)))
        .unwrap();
    let (status, _, _) = send(proxy_addr, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&audit.0.lock().unwrap()));
    let last_reasons = |audit: &Buf| -> Vec<String> {
        let log = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
        let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        last["files"].as_array().unwrap().iter().filter_map(|f| f["unscannable"].as_str().map(str::to_string)).collect()
    };
    assert!(last_reasons(&audit).contains(&"oversize".to_string()), "{:?}", last_reasons(&audit));
    let decoy = base64::engine::general_purpose::STANDARD.encode(labelgate_testkit::simple_pdf("/Title (decoy)", None, false));
    let mut many: Vec<String> = (0..1000).map(|i| format!(r#""d{i}": "{decoy}""#)).collect();
    many.push(format!(r#""real": "{}""#, base64::engine::general_purpose::STANDARD.encode(padded_docx(1000, true))));
    let req = Request::post(format!("http://{origin_addr}/many"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!("{{{}}}", many.join(",")))))
        .unwrap();
    let (status, _, _) = send(proxy_addr, req).await;
    let log = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
    let l = log.lines().last().unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{} files: {}", l.matches("\"name\"").count(), &l[l.len().saturating_sub(1500)..]);
    assert!(last_reasons(&audit).contains(&"nested_limit".to_string()), "{:?}", last_reasons(&audit));
    assert!(seen.0.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_an_unread_file_would_be_blocked_a_big_body_stays_held_until_its_verdict() {
    // Hold mode, max_body 1 MiB, oversize = block (labeled files may not go here): a 4 MiB body
    // past max_body is not streamed on — nothing reaches the origin before the verdict, so a
    // labeled file placed first in a multipart body never arrives; the unlabeled twin arrives
    // whole after it.
    let (origin_addr, received, seen) = counting_bytes_origin().await;
    let inspection = InspectionConfig { max_body: 1 << 20, memory_limit: 256 * 1024, ..InspectionConfig::default() };
    let (proxy_addr, _) = proxy_spooling(inspection, "block", loopback(), BLOCK_LABELED, None).await;
    for labeled in [true, false] {
        let docx = padded_docx(1000, labeled);
        let mut body = b"--zz\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.docx\"\r\n\r\n".to_vec();
        body.extend_from_slice(&docx);
        body.extend_from_slice(b"\r\n--zz\r\nContent-Disposition: form-data; name=\"b\"; filename=\"b.mp4\"\r\n\r\n");
        body.extend_from_slice(&labelgate_testkit::filler(4 << 20, 5));
        body.extend_from_slice(b"\r\n--zz--\r\n");
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        let req = Request::post(format!("http://{origin_addr}/first-{labeled}"))
            .header("content-type", "multipart/form-data; boundary=zz")
            .header("content-length", body.len().to_string())
            .body(StreamBody::new(tokio_stream_from(rx)))
            .unwrap();
        let before = received.load(std::sync::atomic::Ordering::SeqCst);
        let sending = tokio::spawn(send(proxy_addr, req));
        let last = body.len() - 1000;
        for chunk in body[..last].chunks(64 * 1024) {
            tx.send(Ok(Frame::data(Bytes::copy_from_slice(chunk)))).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(received.load(std::sync::atomic::Ordering::SeqCst), before, "labeled={labeled}: nothing before the verdict");
        tx.send(Ok(Frame::data(Bytes::copy_from_slice(&body[last..])))).await.unwrap();
        drop(tx);
        let (status, _, reply) = sending.await.unwrap();
        if labeled {
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(received.load(std::sync::atomic::Ordering::SeqCst), before, "never a byte of it");
        } else {
            assert_eq!(reply, format!("stored {}", hex(&Sha256::digest(&body))));
        }
    }
    assert_eq!(seen.0.lock().unwrap().len(), 1);
}
