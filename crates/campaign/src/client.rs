//! Clients of the proxy: uploads over plain HTTP/1.1 (absolute-form requests) and over HTTP/2
//! inside an intercepted CONNECT tunnel (TLS with labelgate's CA), and the slow attackers.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection through the proxy that requests are sent on.
pub enum Conn {
    /// Plain HTTP/1.1 to the proxy; requests carry absolute URIs.
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    /// HTTP/2 inside a CONNECT tunnel labelgate intercepts.
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// Why a request did not get an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The proxy refused or did not accept the connection.
    Connect,
    /// The CONNECT was refused or the TLS handshake failed.
    Tunnel,
    /// The connection broke while the request or the answer was in flight.
    Broken,
    /// No complete answer within the client's deadline.
    Timeout,
    /// The kept-alive connection had been closed before the request was sent (the proxy closes
    /// idle connections): nothing was sent, and a client opens a new one and sends it there.
    Closed,
}

/// A connection to the proxy from the loopback address `local`.
async fn connect_from(local: IpAddr, proxy: SocketAddr) -> Result<TcpStream, Failure> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|_| Failure::Connect)?;
    socket.bind(SocketAddr::new(local, 0)).map_err(|_| Failure::Connect)?;
    socket.connect(proxy).await.map_err(|_| Failure::Connect)
}

/// Opens a plain HTTP/1.1 connection to the proxy from `local`.
pub async fn h1_from(local: IpAddr, proxy: SocketAddr) -> Result<Conn, Failure> {
    let stream = connect_from(local, proxy).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|_| Failure::Connect)?;
    tokio::spawn(conn);
    Ok(Conn::H1(sender))
}

/// Opens an HTTP/2 connection from `local` to `origin` inside a CONNECT tunnel through the
/// proxy, with `tls` (trusting labelgate's CA).
pub async fn h2_from(local: IpAddr, proxy: SocketAddr, origin: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<Conn, Failure> {
    let mut stream = connect_from(local, proxy).await?;
    stream.write_all(format!("CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n").as_bytes()).await.map_err(|_| Failure::Tunnel)?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || stream.read(&mut byte).await.map_err(|_| Failure::Tunnel)? == 0 {
            return Err(Failure::Tunnel);
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
        return Err(Failure::Tunnel);
    }
    let name = rustls_pki_types::ServerName::IpAddress(origin.ip().into());
    let tls = tokio_rustls::TlsConnector::from(tls).connect(name, stream).await.map_err(|_| Failure::Tunnel)?;
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.map_err(|_| Failure::Tunnel)?;
    tokio::spawn(conn);
    Ok(Conn::H2(sender))
}

/// The client TLS configuration that trusts `ca_pem` and offers h2.
pub fn client_tls(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let mut reader = std::io::BufReader::new(ca_pem.as_bytes());
    for cert in rustls_pki_types::pem::PemObject::pem_reader_iter(&mut reader).flatten() {
        let _ = roots.add(cert);
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// One answer: its status and body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    /// The proxy said it closes the connection (`Connection: close`).
    pub close: bool,
}

/// Sends one upload (PUT `url` with `body`) and reads the whole answer, within `deadline`.
pub async fn upload(conn: &mut Conn, url: &str, body: Bytes, headers: &[(&str, String)], deadline: Duration) -> Result<Answer, Failure> {
    let mut req = Request::put(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(body)).map_err(|_| Failure::Broken)?;
    let exchange = async {
        let resp = match conn {
            Conn::H1(s) => {
                s.ready().await.map_err(|_| Failure::Closed)?;
                s.send_request(req).await.map_err(|_| Failure::Broken)?
            }
            Conn::H2(s) => {
                s.ready().await.map_err(|_| Failure::Closed)?;
                s.send_request(req).await.map_err(|_| Failure::Broken)?
            }
        };
        let status = resp.status();
        let close = resp.headers().get(http::header::CONNECTION).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = resp.into_body().collect().await.map_err(|_| Failure::Broken)?.to_bytes();
        Ok(Answer { status, body, close })
    };
    tokio::time::timeout(deadline, exchange).await.map_err(|_| Failure::Timeout)?
}

/// How a slow attacker holds a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Slow {
    /// A request head, one byte a second.
    Headers,
    /// A CONNECT tunnel that never starts its TLS handshake.
    TlsHandshake,
    /// A request body, one byte a second.
    Body,
}

impl Slow {
    pub const ALL: [Slow; 3] = [Slow::Headers, Slow::TlsHandshake, Slow::Body];
}

/// Holds one connection the slow way until the proxy closes it or `until`; how long it was
/// held, and whether the proxy cut it.
pub async fn slow(proxy: SocketAddr, origin: SocketAddr, how: Slow, until: Instant) -> Option<(Duration, bool)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(proxy).await.ok()?;
    let (first, trickle): (String, &[u8]) = match how {
        Slow::Headers => {
            (format!("PUT http://{origin}/slow HTTP/1.1\r\nHost: {origin}\r\n"), b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        }
        Slow::TlsHandshake => (format!("CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n"), b""),
        Slow::Body => (format!("PUT http://{origin}/slow HTTP/1.1\r\nHost: {origin}\r\nContent-Length: 1000000\r\n\r\n"), &[b'x'; 4096]),
    };
    stream.write_all(first.as_bytes()).await.ok()?;
    let (mut read, mut write) = stream.into_split();
    let closed = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    let mut sent = 0;
    let cut = loop {
        if closed.is_finished() {
            break true;
        }
        if Instant::now() >= until {
            break false;
        }
        if sent < trickle.len() {
            if write.write_all(&trickle[sent..sent + 1]).await.is_err() {
                break true;
            }
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1000).min(until.saturating_duration_since(Instant::now()))).await;
    };
    closed.abort();
    Some((started.elapsed(), cut))
}
