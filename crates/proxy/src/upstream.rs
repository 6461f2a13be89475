//! The origin side: connections (address rules, verified TLS, h2 when the client speaks it),
//! the pool of idle ones, one request in origin-form with hop-by-hop headers removed, upgrades
//! joined byte for byte, and the error pages a failed origin gets.

use crate::pool::{PoolKey, Sender};
use crate::server::{full, simple, Body, BoxError, State, Target};
use crate::spool::Held;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Sends the request to the origin (origin-form, hop-by-hop headers removed; over verified TLS
/// for intercepted tunnels) and streams its response back.
/// `replay` is the whole body when it is held in memory: a request that fails on a pooled
/// connection the origin closed meanwhile is then sent once more on a fresh one, as browsers do.
pub(crate) async fn forward(
    state: &State,
    target: &Target,
    parts: http::request::Parts,
    body: Body,
    replay: Option<Held>,
) -> Response<Body> {
    match send_upstream(state, target, parts, body, false, replay).await {
        Ok(resp) => {
            let (mut rparts, rbody) = resp.into_parts();
            strip_hop_by_hop(&mut rparts.headers);
            Response::from_parts(rparts, rbody.map_err(|e| Box::new(e) as BoxError).boxed())
        }
        Err(r) => r,
    }
}

/// WebSocket (and other GET upgrades): the handshake goes to the origin with its upgrade headers;
/// on `101 Switching Protocols` both sides are joined byte for byte.
pub(crate) async fn upgrade_relay(state: &State, target: &Target, mut req: Request<Incoming>) -> Response<Body> {
    let client_side = hyper::upgrade::on(&mut req);
    let slot = crate::server::Slot::of(&req);
    let idle = Duration::from_secs(state.settings.load().config.tunnel_idle_timeout_secs.max(1));
    let (parts, _) = req.into_parts();
    let empty = Empty::new().map_err(|never| match never {}).boxed();
    let mut resp = match send_upstream(state, target, parts, empty, true, None).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut rparts, rbody) = resp.into_parts();
        strip_hop_by_hop(&mut rparts.headers);
        return Response::from_parts(rparts, rbody.map_err(|e| Box::new(e) as BoxError).boxed());
    }
    let origin_side = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let _slot = slot;
        if let (Ok(client), Ok(origin)) = (client_side.await, origin_side.await) {
            crate::idle::relay(TokioIo::new(client), TokioIo::new(origin), idle).await;
        }
    });
    let (rparts, _) = resp.into_parts();
    Response::from_parts(rparts, Empty::new().map_err(|never| match never {}).boxed())
}

/// Connects (address rules, verified TLS for tunnels) and sends one request in origin-form.
/// With `upgrade`, the upgrade headers are kept and the connection can switch protocols.
pub(crate) async fn send_upstream(
    state: &State,
    target: &Target,
    mut parts: http::request::Parts,
    body: Body,
    upgrade: bool,
    replay: Option<Held>,
) -> Result<Response<Incoming>, Response<Body>> {
    // Mirror the browser: offer h2 upstream only when the client speaks h2 (an upgrade needs
    // HTTP/1.1). Origins then see the protocol the user's browser would have used.
    let offer_h2 = !upgrade && parts.version == http::Version::HTTP_2;
    let key = PoolKey { https: target.https, authority: target.authority.as_str().to_ascii_lowercase(), h2: offer_h2 };
    // Under the address rules in force: a connection opened before a reload changed them is not
    // taken (the pool was emptied) nor given back.
    let born = state.pool.generation();
    let pooled = if upgrade { None } else { state.pool.take(&key) };
    let from_pool = pooled.is_some();
    let mut sender = match pooled {
        Some(s) => {
            if let Some(m) = &state.metrics {
                m.upstream_reused.inc();
            }
            s
        }
        None => open_upstream(state, target, offer_h2, upgrade).await?,
    };
    if upgrade {
        // Keep Connection: upgrade and Upgrade; drop the rest of the hop-by-hop set.
        for name in HOP_BY_HOP.iter().filter(|n| !matches!(**n, "connection" | "upgrade")) {
            parts.headers.remove(*name);
        }
    } else {
        strip_hop_by_hop(&mut parts.headers);
    }
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |pq| Uri::try_from(pq.as_str()).unwrap_or_else(|_| Uri::from_static("/")));
    if !parts.headers.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(target.authority.as_str()) {
            parts.headers.insert(header::HOST, v);
        }
    }
    // A copy for one retry, only when the body can be sent again and the connection was reused.
    let retry = match (&replay, from_pool) {
        (Some(held), true) => {
            let mut copy = Request::new(held.body().map_err(|never| match never {}).boxed());
            *copy.method_mut() = parts.method.clone();
            *copy.uri_mut() = parts.uri.clone();
            *copy.headers_mut() = parts.headers.clone();
            Some(copy.into_parts())
        }
        _ => None,
    };
    // The origin answers within response_timeout_secs of the request body's end, and takes
    // each part of a body within it too (a long upload streaming on is not cut short, an
    // origin that stops reading is), or the request fails with 504.
    let answer_within = Duration::from_secs(state.settings.load().config.response_timeout_secs.max(1));
    let timed_out = || simple(StatusCode::GATEWAY_TIMEOUT, &format!("the origin {} did not answer in time", target.authority));
    let (body, progress) = Progress::watch(body);
    let mut sent = progress.answered_within(answer_within, dispatch(target, &mut sender, parts, body)).await.ok_or_else(timed_out)?;
    if let (Err(_), Some((parts, body))) = (&sent, retry) {
        // The origin closed the reused connection as the request went out: once more, fresh.
        sender = open_upstream(state, target, offer_h2, upgrade).await?;
        let (body, progress) = Progress::watch(body);
        sent = progress.answered_within(answer_within, dispatch(target, &mut sender, parts, body)).await.ok_or_else(timed_out)?;
    }
    if sent.is_ok() && !upgrade {
        state.pool.recycle(key, sender, born);
    }
    sent.map_err(|e| simple(StatusCode::BAD_GATEWAY, &format!("the origin {} failed: {e}", target.authority)))
}

/// When a request body last moved towards the origin (a part taken, or its end).
#[derive(Clone)]
struct Progress {
    since: Instant,
    last_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl Progress {
    /// `body`, noting each part the origin connection takes and the end.
    fn watch(body: Body) -> (Body, Progress) {
        let progress = Progress { since: Instant::now(), last_ms: Arc::new(std::sync::atomic::AtomicU64::new(0)) };
        (ProgressBody { inner: body, progress: progress.clone() }.boxed(), progress)
    }

    fn touch(&self) {
        self.last_ms.store(self.since.elapsed().as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        self.since.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(std::sync::atomic::Ordering::Relaxed)))
    }

    /// `exchange`'s result, unless the body stood still (or the answer did not come after it)
    /// for `within`: `None` then.
    async fn answered_within<T>(&self, within: Duration, exchange: impl std::future::Future<Output = T>) -> Option<T> {
        let mut exchange = std::pin::pin!(exchange);
        loop {
            match tokio::time::timeout(within.saturating_sub(self.idle()), &mut exchange).await {
                Ok(answer) => return Some(answer),
                Err(_) if self.idle() >= within => return None,
                Err(_) => continue,
            }
        }
    }
}

/// A request body that reports its progress.
struct ProgressBody {
    inner: Body,
    progress: Progress,
}

impl http_body::Body for ProgressBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if polled.is_ready() {
            self.progress.touch();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Sends one request on an open connection, in the form its HTTP version wants.
async fn dispatch(
    target: &Target,
    sender: &mut Sender,
    mut parts: http::request::Parts,
    body: Body,
) -> Result<Response<Incoming>, hyper::Error> {
    match sender {
        Sender::H1(s) => {
            parts.version = http::Version::HTTP_11;
            s.send_request(Request::from_parts(parts, body)).await
        }
        Sender::H2(s) => {
            parts.version = http::Version::HTTP_2;
            // h2 takes the target from :scheme/:authority, not from a Host header.
            parts.headers.remove(header::HOST);
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
            parts.uri = Uri::try_from(format!("https://{}{path}", target.authority)).unwrap_or_else(|_| Uri::from_static("/"));
            s.send_request(Request::from_parts(parts, body)).await
        }
    }
}

/// Opens a new connection to an origin: address rules, then verified TLS for tunnels.
async fn open_upstream(state: &State, target: &Target, offer_h2: bool, upgrade: bool) -> Result<Sender, Response<Body>> {
    let authority = &target.authority;
    let port = authority.port_u16().unwrap_or(if target.https { 443 } else { 80 });
    let stream = connect(state, authority.host(), port).await?;
    let sender = if target.https {
        let Some(tls) = &state.tls else { return Err(simple(StatusCode::BAD_GATEWAY, "TLS interception is not configured")) };
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        let Ok(name) = rustls::pki_types::ServerName::try_from(host) else {
            return Err(simple(StatusCode::BAD_GATEWAY, &format!("{authority} is not a valid TLS server name")));
        };
        let config = match (&state.upstream_h1, offer_h2) {
            (Some(h1), false) => Arc::clone(h1),
            _ => Arc::clone(&tls.upstream),
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls_within = Duration::from_secs(state.settings.load().config.tls_handshake_timeout_secs.max(1));
        let Ok(connected) = tokio::time::timeout(tls_within, connector.connect(name, stream)).await else {
            upstream_error(state);
            return Err(simple(StatusCode::GATEWAY_TIMEOUT, &format!("the TLS handshake with {authority} timed out")));
        };
        let stream = match connected {
            Ok(s) => s,
            Err(e) => {
                upstream_error(state);
                return Err(error_page(
                    StatusCode::BAD_GATEWAY,
                    "The destination's certificate could not be verified",
                    &format!("{authority}: {e}. labelgate does not pass unverified connections through."),
                ));
            }
        };
        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            match hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(stream)).await {
                Ok((sender, conn)) => {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    Ok(Sender::H2(sender))
                }
                Err(e) => Err(simple(StatusCode::BAD_GATEWAY, &format!("cannot talk h2 to {authority}: {e}"))),
            }
        } else {
            handshake(TokioIo::new(stream), authority, upgrade).await.map(Sender::H1)
        }
    } else {
        handshake(TokioIo::new(stream), authority, upgrade).await.map(Sender::H1)
    };
    sender
}

/// The addresses `host` may be reached at under the address rules (denied names, then every
/// resolved address: `deny_destinations`, the built-in refusals `allow_destinations` opens,
/// labelgate's own listeners), or the refusal page.
pub(crate) async fn destination(state: &State, host: &str, port: u16) -> Result<Vec<SocketAddr>, Response<Body>> {
    // `name.` is `name` (a fully qualified spelling): checked and resolved as one.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.len() > 1 { host.trim_end_matches('.') } else { host };
    let settings = state.settings.load_full();
    let refused = |why: crate::net::Refusal| {
        error_page(
            StatusCode::FORBIDDEN,
            "Destination denied",
            &format!("{host} may not be reached through this proxy: {}.", why.explain()),
        )
    };
    settings.destinations.check_name(host).map_err(refused)?;
    let timeout = Duration::from_secs(settings.config.connect_timeout_secs.max(1));
    let addrs = match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(a)) => a.collect::<Vec<_>>(),
        Ok(Err(e)) => {
            upstream_error(state);
            return Err(simple(StatusCode::BAD_GATEWAY, &format!("cannot resolve {host}: {e}")));
        }
        Err(_) => {
            upstream_error(state);
            return Err(simple(StatusCode::GATEWAY_TIMEOUT, &format!("resolving {host} timed out")));
        }
    };
    let mut allowed = Vec::new();
    let mut refusal = None;
    for a in addrs {
        match settings.destinations.check_address(host, a) {
            Ok(()) => allowed.push(a),
            Err(r) => refusal = Some(r),
        }
    }
    match (allowed.is_empty(), refusal) {
        // A name that resolves to a refused address and an allowed one is refused whole: which
        // one a client's next request lands on must not decide.
        (_, Some(r)) => Err(refused(r)),
        (true, None) => Err(simple(StatusCode::BAD_GATEWAY, &format!("{host} has no address"))),
        (false, None) => Ok(allowed),
    }
}

/// Connects to a destination after the address rules; the connection uses the very address that
/// was checked, within `connect_timeout_secs`, and is refused if it turns out to be labelgate
/// itself.
pub(crate) async fn connect(state: &State, host: &str, port: u16) -> Result<TcpStream, Response<Body>> {
    let allowed = destination(state, host, port).await?;
    let settings = state.settings.load_full();
    let timeout = Duration::from_secs(settings.config.connect_timeout_secs.max(1));
    let mut last = None;
    for addr in allowed {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                if let (Ok(local), Ok(peer)) = (s.local_addr(), s.peer_addr()) {
                    if let Err(why) = settings.destinations.check_connected(host, local, peer) {
                        return Err(error_page(
                            StatusCode::FORBIDDEN,
                            "Destination denied",
                            &format!("{host} may not be reached through this proxy: {}.", why.explain()),
                        ));
                    }
                }
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => last = Some("timed out".into()),
        }
    }
    upstream_error(state);
    Err(simple(StatusCode::BAD_GATEWAY, &format!("cannot reach {host}:{port}: {}", last.unwrap_or_default())))
}

pub(crate) fn hyper_io_error(e: std::io::Error) -> BoxError {
    Box::new(e)
}

fn upstream_error(state: &State) {
    if let Some(m) = &state.metrics {
        m.upstream_errors.inc();
    }
}

async fn handshake<I>(
    io: I,
    authority: &http::uri::Authority,
    upgrade: bool,
) -> Result<hyper::client::conn::http1::SendRequest<Body>, Response<Body>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // A small write queue: a body read from the spool faster than the origin takes it waits in
    // the file, not in memory (hyper's default lets ~400 KiB queue per connection).
    match hyper::client::conn::http1::Builder::new().max_buf_size(64 * 1024).handshake(io).await {
        Ok((sender, conn)) => {
            if upgrade {
                tokio::spawn(async move {
                    let _ = conn.with_upgrades().await;
                });
            } else {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Ok(sender)
        }
        Err(e) => Err(simple(StatusCode::BAD_GATEWAY, &format!("cannot talk to {authority}: {e}"))),
    }
}

pub(crate) fn error_page(status: StatusCode, title: &str, detail: &str) -> Response<Body> {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p>{d}</p></body></html>",
        t = esc(title),
        d = esc(detail)
    );
    let mut r = Response::new(full(page));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in HOP_BY_HOP.iter().map(|s| s.to_string()).chain(listed) {
        headers.remove(name.as_str());
    }
}
