//! The listener and one transaction's phases: parse the request head, hold and inspect an upload
//! body, decide, then block (403 + page) or forward the exact bytes to the origin.

use crate::audit::{now_rfc3339, AuditFile, AuditLabel, AuditRecord, AuditSink};
use crate::auth::{User, Users};
use crate::block::{self, BlockedFile};
use crate::metrics::ProxyMetrics;
use crate::net::{host_matches, Cidr};
use crate::pool::{Pool, PoolKey, Sender};
use crate::spool::{Held, Spool, SpoolArea, SpoolError};
use crate::tls::CertAuthority;
use crate::{inspect, InspectionConfig, InspectionMode, ProxyConfig};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use labelgate_policy::{Action, Direction, ResolvedPolicy, Transaction, UnscannableReason};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// Where the proxy gets the policy in force for each transaction (a reloadable snapshot).
pub type PolicySource = Arc<dyn Fn() -> Arc<ResolvedPolicy> + Send + Sync>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

struct State {
    config: ProxyConfig,
    inspection: InspectionConfig,
    policy: PolicySource,
    audit: Arc<AuditSink>,
    tls: Option<Interception>,
    metrics: Option<ProxyMetrics>,
    clients: Vec<Cidr>,
    deny_nets: Vec<Cidr>,
    deny_hosts: Vec<String>,
    /// Idle upstream connections.
    pool: Arc<Pool>,
    /// `tls.upstream` offering HTTP/1.1 only (for HTTP/1.1 clients and upgrades).
    upstream_h1: Option<Arc<rustls::ClientConfig>>,
    users: Option<Arc<Users>>,
    spool: Arc<SpoolArea>,
}

/// What TLS interception needs: the local CA and the verified client config towards origins.
#[derive(Clone)]
pub struct Interception {
    /// Mints the per-host certificates browsers see.
    pub ca: Arc<CertAuthority>,
    /// Verifies origins.
    pub upstream: Arc<rustls::ClientConfig>,
}

/// Where a request goes: its authority, and whether it travels over TLS.
#[derive(Clone)]
struct Target {
    authority: http::uri::Authority,
    https: bool,
}

/// A bound proxy listener.
pub struct Proxy {
    listener: TcpListener,
    state: Arc<State>,
}

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

impl Proxy {
    /// Binds the listener of `config.listen`.
    pub async fn bind(
        config: ProxyConfig,
        inspection: InspectionConfig,
        policy: PolicySource,
        audit: Arc<AuditSink>,
    ) -> std::io::Result<Proxy> {
        let clients = config.allow_clients.iter().map(|c| Cidr::parse(c)).collect::<Result<Vec<_>, _>>().map_err(std::io::Error::other)?;
        let (mut deny_nets, mut deny_hosts) = (Vec::new(), Vec::new());
        for d in &config.deny_destinations {
            match Cidr::parse(d) {
                Ok(c) => deny_nets.push(c),
                Err(_) if !d.contains('/') => deny_hosts.push(d.to_ascii_lowercase()),
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
        let listener = TcpListener::bind(config.listen).await?;
        let dir =
            inspection.spool_dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("labelgate-spool-{}", std::process::id())));
        let spool = SpoolArea::prepare(dir, inspection.memory_limit, inspection.memory_budget, inspection.spool_quota)?;
        let state = State {
            config,
            inspection,
            policy,
            audit,
            tls: None,
            metrics: None,
            clients,
            deny_nets,
            deny_hosts,
            users: None,
            spool,
            pool: Arc::new(Pool::new()),
            upstream_h1: None,
        };
        Ok(Proxy { listener, state: Arc::new(state) })
    }

    /// Requires proxy authentication (HTTP Basic) against `users`.
    pub fn with_users(mut self, users: Users) -> Proxy {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.users = Some(Arc::new(users));
        }
        self
    }

    /// Records metrics.
    pub fn with_metrics(mut self, metrics: ProxyMetrics) -> Proxy {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.metrics = Some(metrics);
        }
        self
    }

    /// Intercepts CONNECT tunnels with TLS (without it, CONNECT is a blind tunnel).
    pub fn with_interception(mut self, interception: Interception) -> Proxy {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            let mut h1 = (*interception.upstream).clone();
            h1.alpn_protocols = vec![b"http/1.1".to_vec()];
            state.upstream_h1 = Some(Arc::new(h1));
            state.tls = Some(interception);
        }
        self
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; connections in flight finish on their own tasks.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        let limit = Arc::new(tokio::sync::Semaphore::new(self.state.config.max_connections.max(1)));
        let (draining_tx, draining_rx) = tokio::sync::watch::channel(false);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            eprintln!("labelgate: accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    // Only allowed client networks (loopback by default): never an open proxy.
                    if !self.state.clients.iter().any(|c| c.contains(peer.ip())) {
                        continue;
                    }
                    // Past the connection limit a new connection is closed at once.
                    let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else { continue };
                    // Small writes (TLS records, 100-continue, short responses) must not wait for
                    // Nagle and delayed ACKs: ~40 ms per exchange otherwise.
                    let _ = stream.set_nodelay(true);
                    let state = Arc::clone(&self.state);
                    let mut draining = draining_rx.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let gauge = state.metrics.as_ref().map(|m| m.active_connections.clone());
                        if let Some(g) = &gauge {
                            g.inc();
                        }
                        let _open = OnDrop(move || {
                            if let Some(g) = &gauge {
                                g.dec();
                            }
                        });
                        let service = hyper::service::service_fn(move |req| handle(Arc::clone(&state), peer, req));
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(Duration::from_secs(30))
                            .max_buf_size(64 * 1024)
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades();
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = async { let _ = draining.wait_for(|d| *d).await.map(|_| ()); } => {
                                // Finish the transaction in flight, then close (idle connections close now).
                                conn.as_mut().graceful_shutdown();
                                let _ = conn.await;
                            }
                        }
                    });
                }
            }
        }
        // Drain: no new connections; transactions in flight finish (up to drain_timeout).
        drop(self.listener);
        let _ = draining_tx.send(true);
        let total = self.state.config.max_connections.max(1) as u32;
        let drained = tokio::time::timeout(Duration::from_secs(self.state.config.drain_timeout_secs), limit.acquire_many(total)).await;
        if drained.is_err() {
            eprintln!("labelgate: drain timeout: closing the connections still open");
        }
        Ok(())
    }

    /// Serves forever.
    pub async fn serve(self) -> std::io::Result<()> {
        self.serve_until(std::future::pending()).await
    }
}

/// Runs a closure when dropped (connection gauges survive panics and early returns).
struct OnDrop<F: FnMut()>(F);
impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

fn simple(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("{text}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

async fn handle(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let user = match &state.users {
        None => None,
        Some(users) => {
            let header = req.headers().get(header::PROXY_AUTHORIZATION).and_then(|v| v.to_str().ok());
            match users.check(header) {
                Some(u) => Some(u),
                None => {
                    let mut r = simple(StatusCode::PROXY_AUTHENTICATION_REQUIRED, "proxy authentication required");
                    r.headers_mut().insert(header::PROXY_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"labelgate\""));
                    return Ok(r);
                }
            }
        }
    };
    if req.method() == Method::CONNECT {
        return Ok(tunnel(state, peer, req, user));
    }
    let uri = req.uri().clone();
    let (Some(authority), Some("http")) = (uri.authority().cloned(), uri.scheme_str()) else {
        return Ok(simple(StatusCode::BAD_REQUEST, "labelgate is a proxy: send absolute-form http:// requests or CONNECT"));
    };
    // The destination policy sees is the one the request is sent to: a Host header that names
    // another host is refused rather than forwarded.
    if let Some(host) = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()) {
        let strip = |s: &str| s.trim().trim_end_matches(":80").to_ascii_lowercase();
        if strip(host) != strip(authority.as_str()) {
            return Ok(simple(StatusCode::MISDIRECTED_REQUEST, "the Host header does not match the request target"));
        }
    }
    Ok(relay(state, peer, req, Target { authority, https: false }, user).await)
}

/// Inspects uploads, passes everything else through.
async fn relay(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>, target: Target, user: Option<User>) -> Response<Body> {
    if req.headers().contains_key(header::UPGRADE) && req.method() == Method::GET {
        return upgrade_relay(&state, &target, req).await;
    }
    let inspect = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if !inspect {
        let (parts, body) = req.into_parts();
        return forward(&state, &target, parts, body.map_err(|e| Box::new(e) as BoxError).boxed(), None).await;
    }
    inspect_and_decide(state, peer, req, target, user).await
}

/// A request inside an intercepted tunnel: origin-form, for the CONNECT authority.
async fn intercepted(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
    authority: http::uri::Authority,
    user: Option<User>,
) -> Result<Response<Body>, Infallible> {
    let host_header = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string);
    let named = host_header.or_else(|| req.uri().authority().map(|a| a.as_str().to_string()));
    if let Some(named) = named {
        let strip = |s: &str| s.trim().trim_end_matches(":443").to_ascii_lowercase();
        if strip(&named) != strip(authority.as_str()) {
            return Ok(simple(StatusCode::MISDIRECTED_REQUEST, "the Host header does not match the CONNECT target"));
        }
    }
    Ok(relay(state, peer, req, Target { authority, https: true }, user).await)
}

async fn inspect_and_decide(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
    target: Target,
    user: Option<User>,
) -> Response<Body> {
    let groups: Vec<String> = user.as_ref().map(|u| u.groups.clone()).unwrap_or_default();
    let user_name = user.as_ref().map(|u| u.name.clone());
    let authority = target.authority.clone();
    let started = Instant::now();
    let (parts, mut body) = req.into_parts();
    // `hold`: nothing reaches the origin before the verdict. `stream`: the upstream request starts
    // now and receives the body as it arrives, minus a withheld tail.
    let mut outflow = match state.inspection.mode {
        InspectionMode::Hold => None,
        InspectionMode::Stream => Some(start_streaming(&state, &target, &parts)),
    };
    let max = state.inspection.max_body;
    // In memory up to the memory limit, then spooled to a private file.
    let mut spool = Spool::new(&state.spool);
    if let Some(expected) = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()) {
        spool.expect(expected.min(max));
    }
    let mut oversize = false;
    let mut pending: Option<Bytes> = None;
    let idle = Duration::from_secs(state.config.body_idle_timeout_secs);
    // A body that trickles in just under the idle timeout still has to finish in time.
    let deadline = started + Duration::from_secs(state.config.upload_timeout_secs);
    loop {
        let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
        let frame = match tokio::time::timeout(wait, body.frame()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            // (An outflow dropped here aborts the upstream request.)
            Err(_) => return simple(StatusCode::REQUEST_TIMEOUT, "the upload stalled"),
        };
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    if let Some((out, _)) = &mut outflow {
                        out.push(data.clone()).await;
                    }
                    if spool.len() + data.len() as u64 > max {
                        // (Streaming has already queued this chunk.)
                        pending = if outflow.is_some() { None } else { Some(data) };
                        oversize = true;
                        break;
                    }
                    if let Err(e) = spool.push(data) {
                        if let SpoolError::Io(e) = e {
                            eprintln!("labelgate: cannot spool an upload: {e}");
                        }
                        // Out of spool space or disk: decided like a body too large to inspect.
                        oversize = true;
                        break;
                    }
                }
            }
            // The client went away mid-upload: nothing to forward, nothing to record.
            Err(_) => return simple(StatusCode::BAD_REQUEST, "the upload was interrupted"),
        }
    }
    let path = parts.uri.path().to_string();
    let files = if oversize {
        vec![inspect::Inspected {
            facts: labelgate_policy::FileFacts {
                name: None,
                kind: "unknown".into(),
                labels: vec![],
                unscannable: Some(UnscannableReason::Oversize),
            },
            path: Vec::new(),
            size: spool.len(),
            sha256: None,
        }]
    } else {
        inspect::files_held(
            &parts.headers,
            &path,
            &mut spool,
            &state.spool,
            inspect::Reading {
                max,
                hash_all: state.inspection.hash_all,
                unpack: state.inspection.unpack_limits(),
                budget: Arc::new(labelgate_unpack::Budget::new()),
            },
        )
        .await
    };
    let facts: Vec<labelgate_policy::FileFacts> = files.iter().map(|f| f.facts.clone()).collect();
    let host = authority.host().to_ascii_lowercase();
    let scheme = if target.https { "https" } else { "http" };
    let url = format!("{scheme}://{}{}", authority.as_str().to_ascii_lowercase(), path);
    let policy = (state.policy)();
    let verdict = policy.evaluate(&Transaction {
        direction: Direction::Upload,
        method: parts.method.as_str(),
        host: &host,
        url: &url,
        user: user_name.as_deref(),
        groups: &groups,
        files: &facts,
    });
    if let Some(m) = &state.metrics {
        m.transactions.with_label_values(&[verdict.action.as_str(), verdict.rule.as_deref().unwrap_or("")]).inc();
        m.bytes_inspected.inc_by(spool.len());
        m.inspection_seconds.observe(started.elapsed().as_secs_f64());
        let catalog = policy.catalog();
        for f in &facts {
            for l in &f.labels {
                let known = catalog.lookup(l.tenant.as_deref(), &l.id).is_some();
                m.labels_seen.with_label_values(&[if known { l.id.as_str() } else { "unknown" }]).inc();
            }
            if let Some(u) = f.unscannable {
                m.unscannable.with_label_values(&[u.as_str()]).inc();
            }
        }
    }
    let shown_url = match (state.config.audit_query, parts.uri.query()) {
        (true, Some(q)) => format!("{url}?{q}"),
        _ => url.clone(),
    };
    let catalog = policy.catalog();
    state.audit.write(&AuditRecord {
        time: now_rfc3339(),
        client: peer.to_string(),
        user: user_name.clone(),
        method: parts.method.to_string(),
        url: shown_url,
        app: verdict.cloud_app.clone(),
        files: files
            .iter()
            .map(|f| AuditFile {
                name: f.facts.name.clone(),
                path: f.path.clone(),
                size: f.size,
                kind: f.facts.kind.clone(),
                labels: f
                    .facts
                    .labels
                    .iter()
                    .map(|l| AuditLabel {
                        id: l.id.clone(),
                        name: catalog.lookup(l.tenant.as_deref(), &l.id).map(|k| k.display_name.clone()),
                        tenant: l.tenant.clone(),
                    })
                    .collect(),
                sha256: f.sha256.clone(),
                unscannable: f.facts.unscannable.map(|u| u.as_str().to_string()),
            })
            .collect(),
        action: verdict.action.as_str().to_string(),
        rule: verdict.rule.clone(),
        reason: verdict.reason.clone(),
        inspect_us: started.elapsed().as_micros() as u64,
    });
    if verdict.action == Action::Block {
        let catalog = policy.catalog();
        let blocked: Vec<BlockedFile> = facts
            .iter()
            .filter(|f| f.unscannable.is_some() || !f.labels.is_empty())
            .map(|f| BlockedFile {
                name: f.name.clone(),
                labels: f
                    .labels
                    .iter()
                    .map(|l| catalog.lookup(l.tenant.as_deref(), &l.id).map_or_else(|| l.id.clone(), |k| k.display_name.clone()))
                    .collect(),
            })
            .collect();
        let (content_type, page) = if block::wants_json(&parts.headers) {
            ("application/json", block::json(&verdict, &url, &blocked))
        } else {
            ("text/html; charset=utf-8", block::html(&verdict, &url, &blocked))
        };
        let mut r = Response::new(full(page));
        *r.status_mut() = StatusCode::FORBIDDEN;
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some((out, _)) = outflow {
            out.abort();
        }
        return r;
    }
    if let Some((mut out, response)) = outflow {
        out.release().await;
        if oversize {
            // Allowed although too large to inspect: the rest passes straight through.
            loop {
                match tokio::time::timeout(idle, body.frame()).await {
                    Ok(Some(Ok(f))) => {
                        if let Ok(data) = f.into_data() {
                            out.pass(data).await;
                        }
                    }
                    Ok(None) => break,
                    Ok(Some(Err(_))) | Err(_) => {
                        out.abort();
                        return simple(StatusCode::BAD_REQUEST, "the upload was interrupted");
                    }
                }
            }
        }
        out.finish();
        return response.await.unwrap_or_else(|_| simple(StatusCode::BAD_GATEWAY, "the upstream request failed"));
    }
    let held_file = match spool.reader() {
        Ok(f) => f,
        Err(e) => return simple(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot read the held upload: {e}")),
    };
    let mut replay = None;
    let body: Body = match (oversize, spool.memory(), held_file) {
        // Held in memory and complete: forwarded as the chunks it arrived in.
        (false, Some(held), None) => {
            let body = held.body().map_err(|never| match never {}).boxed();
            replay = Some(held);
            body
        }
        // Spooled, or allowed although too large to inspect: the held bytes, then the rest as it comes.
        (_, memory, file) => {
            let held = futures_util::StreamExt::map(crate::spool::stream(memory, file), |r| r.map(Frame::data).map_err(hyper_io_error));
            let tail = futures_util::stream::iter(pending.map(|b| Ok(Frame::data(b))));
            let rest = futures_util::StreamExt::map(http_body_util::BodyStream::new(body), |f| f.map_err(|e| Box::new(e) as BoxError));
            if oversize {
                StreamBody::new(futures_util::StreamExt::chain(futures_util::StreamExt::chain(held, tail), rest)).boxed()
            } else {
                StreamBody::new(held).boxed()
            }
        }
    };
    forward(&state, &target, parts, body, replay).await
}

/// Starts a `stream`-mode upload: the upstream request runs in its own task and takes the body
/// from the returned outflow.
fn start_streaming(
    state: &Arc<State>,
    target: &Target,
    parts: &http::request::Parts,
) -> (crate::stream::Outflow, tokio::task::JoinHandle<Response<Body>>) {
    let (outflow, stream) = crate::stream::channel(state.inspection.stream_holdback);
    let mut request = Request::new(StreamBody::new(stream).boxed());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    let (fwd_parts, fwd_body) = request.into_parts();
    let state = Arc::clone(state);
    let target = Target { authority: target.authority.clone(), https: target.https };
    let response = tokio::spawn(async move { forward(&state, &target, fwd_parts, fwd_body, None).await });
    (outflow, response)
}

/// Sends the request to the origin (origin-form, hop-by-hop headers removed; over verified TLS
/// for intercepted tunnels) and streams its response back.
/// `replay` is the whole body when it is held in memory: a request that fails on a pooled
/// connection the origin closed meanwhile is then sent once more on a fresh one, as browsers do.
async fn forward(state: &State, target: &Target, parts: http::request::Parts, body: Body, replay: Option<Held>) -> Response<Body> {
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
async fn upgrade_relay(state: &State, target: &Target, mut req: Request<Incoming>) -> Response<Body> {
    let client_side = hyper::upgrade::on(&mut req);
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
        if let (Ok(client), Ok(origin)) = (client_side.await, origin_side.await) {
            let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(origin)).await;
        }
    });
    let (rparts, _) = resp.into_parts();
    Response::from_parts(rparts, Empty::new().map_err(|never| match never {}).boxed())
}

/// Connects (address rules, verified TLS for tunnels) and sends one request in origin-form.
/// With `upgrade`, the upgrade headers are kept and the connection can switch protocols.
async fn send_upstream(
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
    let mut sent = dispatch(target, &mut sender, parts, body).await;
    if let (Err(_), Some((parts, body))) = (&sent, retry) {
        // The origin closed the reused connection as the request went out: once more, fresh.
        sender = open_upstream(state, target, offer_h2, upgrade).await?;
        sent = dispatch(target, &mut sender, parts, body).await;
    }
    if sent.is_ok() && !upgrade {
        state.pool.recycle(key, sender);
    }
    sent.map_err(|e| simple(StatusCode::BAD_GATEWAY, &format!("the origin {} failed: {e}", target.authority)))
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
        let stream = match connector.connect(name, stream).await {
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

/// Connects to a destination after the address rules: denied host globs, then every resolved
/// address against the denied networks; the connection uses the very address that was checked.
async fn connect(state: &State, host: &str, port: u16) -> Result<TcpStream, Response<Body>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if state.deny_hosts.iter().any(|g| host_matches(g, host)) {
        return Err(error_page(StatusCode::FORBIDDEN, "Destination denied", &format!("{host} may not be reached through this proxy.")));
    }
    let addrs = match tokio::net::lookup_host((host, port)).await {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => {
            upstream_error(state);
            return Err(simple(StatusCode::BAD_GATEWAY, &format!("cannot resolve {host}: {e}")));
        }
    };
    let allowed: Vec<SocketAddr> = addrs.iter().copied().filter(|a| !state.deny_nets.iter().any(|n| n.contains(a.ip()))).collect();
    if allowed.is_empty() {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "Destination denied",
            &format!("{host} resolves to a network this proxy does not reach."),
        ));
    }
    let mut last = None;
    for addr in allowed {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    upstream_error(state);
    Err(simple(StatusCode::BAD_GATEWAY, &format!("cannot reach {host}:{port}: {}", last.map_or_else(String::new, |e| e.to_string()))))
}

fn hyper_io_error(e: std::io::Error) -> BoxError {
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
    match hyper::client::conn::http1::handshake(io).await {
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

fn error_page(status: StatusCode, title: &str, detail: &str) -> Response<Body> {
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

fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

/// CONNECT: with interception, TLS is terminated with a minted leaf and the requests inside are
/// relayed (and inspected) like plain ones; without it, a blind tunnel.
fn tunnel(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>, user: Option<User>) -> Response<Body> {
    let Some(authority) = req.uri().authority().cloned() else {
        return simple(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
    };
    let bypass = state.config.bypass.iter().any(|g| host_matches(g, authority.host()));
    let port = authority.port_u16().unwrap_or(443);
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else { return };
        match state.tls.clone().filter(|_| !bypass) {
            Some(tls) => {
                let config = tls.ca.server_config(authority.host());
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let Ok(stream) = acceptor.accept(TokioIo::new(upgraded)).await else { return };
                // The browser chooses: h2 when it offers it, HTTP/1.1 (with upgrades) otherwise.
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                let service =
                    hyper::service::service_fn(move |req| intercepted(Arc::clone(&state), peer, req, authority.clone(), user.clone()));
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                } else {
                    // A small read buffer per connection keeps memory flat under many uploads.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .max_buf_size(64 * 1024)
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                }
            }
            None => {
                // Bypassed (or no interception): a blind relay, still under the address rules.
                let Ok(mut server) = connect(&state, authority.host(), port).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(upgraded), &mut server).await;
            }
        }
    });
    Response::new(Empty::new().map_err(|never| match never {}).boxed())
}
