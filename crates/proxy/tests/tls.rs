//! TLS interception over loopback: a client tunnels with CONNECT, trusts labelgate's CA, and
//! uploads to an HTTPS origin that has its own test CA (trusted by labelgate as an extra upstream
//! root). Labeled files are blocked inside the tunnel; clean ones arrive byte-exact; an origin
//! labelgate cannot verify gets an error page, never a silent pass-through.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use labelgate_catalog::Catalog;
use labelgate_policy::{CloudAppConfig, Policy, PolicyConfig};
use labelgate_proxy::{upstream_client_config, AuditSink, CertAuthority, InspectionConfig, Interception, Proxy, ProxyConfig};
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An HTTPS origin on 127.0.0.1 with a certificate from its own test CA; returns the CA PEM.
async fn https_origin() -> (SocketAddr, String) {
    let (config, ca_pem) = labelgate_testkit::loopback_server_tls(&[b"h2", b"http/1.1"]);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let version = format!("{:?}", req.version());
                    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let mut r = Response::new(Full::new(Bytes::from(format!("stored {}", hex(&Sha256::digest(&body))))));
                    r.headers_mut().insert("x-origin-version", version.parse().unwrap());
                    Ok::<_, Infallible>(r)
                });
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
                }
            });
        }
    });
    (addr, ca_pem)
}

#[derive(serde::Deserialize)]
struct File {
    policy: PolicyConfig,
    #[serde(default)]
    cloud_apps: Vec<CloudAppConfig>,
}

async fn proxy(state_dir: &std::path::Path, extra_roots: &[String]) -> (SocketAddr, Arc<CertAuthority>) {
    proxy_bypassing(state_dir, extra_roots, &[]).await
}

async fn proxy_bypassing(state_dir: &std::path::Path, extra_roots: &[String], bypass: &[&str]) -> (SocketAddr, Arc<CertAuthority>) {
    proxy_inspecting(state_dir, extra_roots, bypass, InspectionConfig::default()).await
}

async fn proxy_inspecting(
    state_dir: &std::path::Path,
    extra_roots: &[String],
    bypass: &[&str],
    inspection: InspectionConfig,
) -> (SocketAddr, Arc<CertAuthority>) {
    let file: File = toml::from_str("[[policy.rules]]\nname = \"labeled\"\naction = \"block\"\nlabeled = true\n").unwrap();
    let (policy, _) = Policy::compile(&file.policy, &file.cloud_apps, &["docx", "pdf"], &[]);
    let resolved = Arc::new(policy.resolve(Arc::new(Catalog::default())).0);
    let ca = Arc::new(CertAuthority::load_or_create(state_dir).unwrap());
    let upstream = upstream_client_config(extra_roots).unwrap();
    let config = ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        bypass: bypass.iter().map(|s| s.to_string()).collect(),
        // These tests' origins listen on loopback, at ephemeral ports.
        allow_destinations: vec!["127.0.0.0/8".into(), "::1/128".into(), "localhost".into()],
        connect_ports: vec![labelgate_proxy::PortSpec::Range("1-65535".into())],
        ..ProxyConfig::default()
    };
    let p = Proxy::bind(config, inspection, Arc::new(move || Arc::clone(&resolved)), Arc::new(AuditSink::new(Box::new(std::io::sink()))))
        .await
        .unwrap()
        .with_interception(Interception { ca: Arc::clone(&ca), upstream });
    let addr = p.local_addr().unwrap();
    tokio::spawn(p.serve());
    (addr, ca)
}

/// CONNECT through the proxy, TLS with labelgate's CA trusted, one request; returns status and body.
async fn upload(proxy: SocketAddr, origin: SocketAddr, labelgate_ca_pem: &str, body: Vec<u8>) -> (StatusCode, String) {
    try_upload(proxy, origin, labelgate_ca_pem, body).await.expect("the minted leaf verifies against labelgate's CA")
}

/// CONNECT through the proxy to `origin` and TLS inside the tunnel, trusting `trusted_ca_pem` and
/// offering `alpn`; `None` when the handshake fails (the proxy's leaf did not verify).
async fn tunnel(
    proxy: SocketAddr,
    origin: SocketAddr,
    trusted_ca_pem: &str,
    alpn: &[&[u8]],
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(format!("CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n").as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(stream.read(&mut b).await.unwrap(), 1);
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(pem_der(trusted_ca_pem))).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("127.0.0.1").unwrap(), stream).await.ok()
}

async fn try_upload(proxy: SocketAddr, origin: SocketAddr, trusted_ca_pem: &str, body: Vec<u8>) -> Option<(StatusCode, String)> {
    let tls = tunnel(proxy, origin, trusted_ca_pem, &[]).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::put("/upload/file").header("host", origin.to_string()).body(Full::new(Bytes::from(body))).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    Some((status, String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned()))
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(labelgate_testkit::corpus_dir().join("files").join(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intercepted_https_uploads_are_inspected() {
    let (origin, origin_ca) = https_origin().await;
    let dir = tempfile_dir("intercept");
    let (proxy_addr, ca) = proxy(&dir, &[origin_ca]).await;
    let (status, page) = upload(proxy_addr, origin, ca.pem(), corpus("lab_caf_identity-baseline-discipline-template.docx")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Upload blocked") && page.contains("https://127.0.0.1:"), "{page}");
    let clean = corpus("unl_markitdown_test.pdf");
    let (status, reply) = upload(proxy_addr, origin, ca.pem(), clean.clone()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply, format!("stored {}", hex(&Sha256::digest(&clean))));
    assert_eq!(ca.minted(), 1, "one leaf for 127.0.0.1, reused from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_labelgate_cannot_verify_gets_an_error_page() {
    let (origin, _) = https_origin().await;
    let dir = tempfile_dir("unverified");
    let (proxy_addr, ca) = proxy(&dir, &[]).await;
    let (status, page) = upload(proxy_addr, origin, ca.pem(), corpus("unl_markitdown_test.pdf")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(page.contains("could not be verified"), "{page}");
}

fn tempfile_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("labelgate-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypassed_hosts_are_tunnelled_without_interception() {
    let (origin, origin_ca) = https_origin().await;
    let dir = tempfile_dir("bypass");
    let (proxy_addr, ca) = proxy_bypassing(&dir, std::slice::from_ref(&origin_ca), &["127.0.0.1"]).await;
    let labeled = corpus("lab_caf_identity-baseline-discipline-template.docx");
    assert!(try_upload(proxy_addr, origin, ca.pem(), labeled.clone()).await.is_none(), "no labelgate certificate on a bypassed host");
    let (status, reply) = try_upload(proxy_addr, origin, &origin_ca, labeled.clone()).await.expect("the origin's own certificate");
    assert_eq!(status, StatusCode::OK, "bypassed traffic is not inspected");
    assert_eq!(reply, format!("stored {}", hex(&Sha256::digest(&labeled))));
    assert_eq!(ca.minted(), 0);
}

/// Over h2 on both sides: a labeled upload is blocked, a clean one reaches the origin over h2.
async fn h2_round_trip(inspection: InspectionConfig) {
    let (origin, origin_ca) = https_origin().await;
    let dir = tempfile_dir("h2");
    let (proxy_addr, ca) = proxy_inspecting(&dir, &[origin_ca], &[], inspection).await;
    let tls = tunnel(proxy_addr, origin, ca.pem(), &[b"h2"]).await.expect("the minted leaf verifies");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "labelgate speaks h2 to the browser");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let url = format!("https://{origin}/upload");
    let labeled = corpus("lab_d365_headless-commerce-lab.pdf");
    let resp = sender.send_request(Request::put(&url).body(Full::new(Bytes::from(labeled))).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let clean = corpus("unl_markitdown_test.pdf");
    let resp = sender.send_request(Request::put(&url).body(Full::new(Bytes::from(clean.clone()))).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers().get("x-origin-version").unwrap(), "HTTP/2.0", "and h2 to the origin");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, format!("stored {}", hex(&Sha256::digest(&clean))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_the_browser_and_with_the_origin() {
    h2_round_trip(InspectionConfig::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_inside_an_intercepted_h2_tunnel() {
    h2_round_trip(InspectionConfig { mode: labelgate_proxy::InspectionMode::Stream, stream_holdback: 4096, ..InspectionConfig::default() })
        .await;
}
