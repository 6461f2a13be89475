//! The origins of the campaign, on loopback: one that checks every byte it is sent, over plain
//! HTTP/1.1 and over TLS (HTTP/2 or HTTP/1.1 by ALPN), and the failing ones — an origin that
//! resets, one that stalls, one that answers garbage, one that closes mid-response.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the checking origin saw.
#[derive(Debug, Default)]
pub struct OriginCounts {
    /// Bodies received whole.
    pub complete: AtomicU64,
    /// Bodies received whole whose SHA-256 is not the one the client sent (`x-expect-sha256`).
    pub corrupt_complete: AtomicU64,
    /// Labeled files (`x-labeled: 1`) received whole: labelgate let one through.
    pub labeled_complete: AtomicU64,
    /// Bodies that ended early (the proxy aborted them, or the client went away).
    pub truncated: AtomicU64,
    /// Body bytes received, whole or not.
    pub bytes: AtomicU64,
}

/// The checking origin: its plain addresses (127.0.0.1, and 127.0.0.2 which the campaign's
/// config names a sanctioned app), its TLS address and its counts.
pub struct CheckingOrigin {
    pub plain: SocketAddr,
    pub sanctioned: SocketAddr,
    pub tls: SocketAddr,
    pub counts: Arc<OriginCounts>,
}

/// Starts the checking origin; `tls` is its server configuration (ALPN h2 and http/1.1).
pub async fn checking(tls: Arc<rustls::ServerConfig>) -> std::io::Result<CheckingOrigin> {
    let counts = Arc::new(OriginCounts::default());
    let plain = TcpListener::bind("127.0.0.1:0").await?;
    let sanctioned = TcpListener::bind("127.0.0.2:0").await?;
    let secure = TcpListener::bind("127.0.0.1:0").await?;
    let addrs = (plain.local_addr()?, secure.local_addr()?, sanctioned.local_addr()?);
    for listener in [plain, sanctioned] {
        let c = Arc::clone(&counts);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let c = Arc::clone(&c);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| check(Arc::clone(&c), req));
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
    }
    let c = Arc::clone(&counts);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        while let Ok((stream, _)) = secure.accept().await {
            let (c, acceptor) = (Arc::clone(&c), acceptor.clone());
            tokio::spawn(async move {
                let Ok(Ok(tls)) = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await else { return };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let svc = hyper::service::service_fn(move |req| check(Arc::clone(&c), req));
                let io = TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, svc).await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                }
            });
        }
    });
    Ok(CheckingOrigin { plain: addrs.0, tls: addrs.1, sanctioned: addrs.2, counts })
}

/// Reads the whole body, hashing it: `stored <sha256>` when it is what the client sent, 422 when
/// it arrived whole with other bytes; a labeled file arriving whole is counted as a leak.
async fn check(counts: Arc<OriginCounts>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let expect = req.headers().get("x-expect-sha256").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let labeled = req.headers().get("x-labeled").is_some_and(|v| v == "1");
    let mut body = req.into_body();
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    counts.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    digest.update(data);
                }
            }
            Some(Err(_)) => {
                counts.truncated.fetch_add(1, Ordering::Relaxed);
                let mut r = Response::new(Full::new(Bytes::from_static(b"truncated")));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                return Ok(r);
            }
            None => break,
        }
    }
    counts.complete.fetch_add(1, Ordering::Relaxed);
    if labeled {
        counts.labeled_complete.fetch_add(1, Ordering::Relaxed);
    }
    let sha = hex(digest.finish().as_ref());
    if !expect.is_empty() && sha != expect {
        counts.corrupt_complete.fetch_add(1, Ordering::Relaxed);
        let mut r = Response::new(Full::new(Bytes::from(format!("corrupt {sha}"))));
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    Ok(Response::new(Full::new(Bytes::from(format!("stored {sha}")))))
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// How a failing origin fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Reads the request head, then resets the connection (RST).
    Reset,
    /// Reads the request and never answers.
    Stall,
    /// Answers bytes that are no HTTP response.
    Garbage,
    /// Answers a head promising 100,000 bytes, sends 100, and closes.
    CloseMidResponse,
}

impl Fault {
    pub const ALL: [Fault; 4] = [Fault::Reset, Fault::Stall, Fault::Garbage, Fault::CloseMidResponse];
}

/// Starts an origin failing in `fault`'s way.
pub async fn failing(fault: Fault) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf)).await;
                match fault {
                    Fault::Reset => {
                        // A zero linger makes the close a reset (and cannot block: nothing lingers).
                        #[allow(deprecated)]
                        let _ = stream.set_linger(Some(std::time::Duration::ZERO));
                    }
                    Fault::Stall => {
                        // Keeps reading (so the request body is never what blocks) and never answers.
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    }
                    Fault::Garbage => {
                        let _ = stream.write_all(b"\x00\xffNOT HTTP AT ALL\r\n\r\n\x13\x37").await;
                    }
                    Fault::CloseMidResponse => {
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n").await;
                        let _ = stream.write_all(&[b'x'; 100]).await;
                    }
                }
            });
        }
    });
    Ok(addr)
}
