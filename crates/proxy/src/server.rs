//! The listener: accepts client connections (allowed networks only, bounded in number), checks
//! proxy authentication, and routes each request — CONNECT to [`crate::tunnel`], an upload to
//! [`crate::upload`]'s phases, an upgrade or any other request straight to [`crate::upstream`].

use crate::audit::AuditSink;
use crate::auth::{User, Users};
use crate::metrics::ProxyMetrics;
use crate::net::{Cidr, Destinations};
use crate::pool::Pool;
use crate::spool::SpoolArea;
use crate::tls::CertAuthority;
use crate::{InspectionConfig, ProxyConfig};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use labelgate_policy::ResolvedPolicy;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Where the proxy gets the policy in force for each transaction (a reloadable snapshot).
pub type PolicySource = Arc<dyn Fn() -> Arc<ResolvedPolicy> + Send + Sync>;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// What a reload may change, swapped whole: each transaction reads the settings in force.
pub(crate) struct Settings {
    pub(crate) config: ProxyConfig,
    pub(crate) inspection: InspectionConfig,
    pub(crate) clients: Vec<Cidr>,
    pub(crate) destinations: Destinations,
    pub(crate) users: Option<Arc<Users>>,
}

impl Settings {
    fn new(
        config: ProxyConfig,
        inspection: InspectionConfig,
        users: Option<Arc<Users>>,
        own: Vec<SocketAddr>,
    ) -> std::io::Result<Settings> {
        let clients = config.allow_clients.iter().map(|c| Cidr::parse(c)).collect::<Result<Vec<_>, _>>().map_err(std::io::Error::other)?;
        let mut destinations = Destinations::new(&config.deny_destinations, &config.allow_destinations, &config.connect_ports)
            .map_err(std::io::Error::other)?;
        destinations.own = own;
        Ok(Settings { config, inspection, clients, destinations, users })
    }
}

pub(crate) struct State {
    pub(crate) settings: ArcSwap<Settings>,
    pub(crate) policy: PolicySource,
    pub(crate) audit: Arc<AuditSink>,
    pub(crate) tls: Option<Interception>,
    pub(crate) metrics: Option<ProxyMetrics>,
    /// Idle upstream connections.
    pub(crate) pool: Arc<Pool>,
    /// `tls.upstream` offering HTTP/1.1 only (for HTTP/1.1 clients and upgrades).
    pub(crate) upstream_h1: Option<Arc<rustls::ClientConfig>>,
    pub(crate) spool: Arc<SpoolArea>,
    /// Inspections running at once (`max_concurrent_inspections`, fixed at start).
    pub(crate) inspections: Arc<tokio::sync::Semaphore>,
    /// Test-only fault hook: every inspection takes this long first.
    pub(crate) inspection_delay_ms: Option<u64>,
    /// `max_connections`, as permits (resized by a reload).
    pub(crate) limit: Arc<tokio::sync::Semaphore>,
    pub(crate) limit_size: std::sync::atomic::AtomicUsize,
    /// Connections held per client address.
    pub(crate) per_client: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    /// Files sent in pieces, being reassembled.
    pub(crate) sessions: crate::sessions::Sessions,
}

/// Applies reloaded `[proxy]` and `[inspection]` settings to a running proxy: every setting
/// takes effect for the next transaction, except those that need a restart.
#[derive(Clone)]
pub struct SettingsHandle {
    state: Arc<State>,
}

impl SettingsHandle {
    /// Swaps in new settings; answers the names of the changed settings that only a restart
    /// applies (`[proxy] listen`, `[inspection] spool_dir`), or why the settings are refused.
    pub fn apply(&self, config: ProxyConfig, inspection: InspectionConfig, users: Option<Users>) -> Result<Vec<&'static str>, String> {
        let current = self.state.settings.load_full();
        let mut restart = Vec::new();
        let mut config = config;
        let mut inspection = inspection;
        if config.listen != current.config.listen {
            restart.push("[proxy] listen");
            config.listen = current.config.listen;
        }
        if inspection.spool_dir.is_some() && inspection.spool_dir != current.inspection.spool_dir {
            restart.push("[inspection] spool_dir");
        }
        if inspection.max_concurrent_inspections != current.inspection.max_concurrent_inspections {
            restart.push("[inspection] max_concurrent_inspections");
        }
        inspection.spool_dir = current.inspection.spool_dir.clone();
        let settings =
            Settings::new(config, inspection, users.map(Arc::new), current.destinations.own.clone()).map_err(|e| e.to_string())?;
        self.state.spool.set_limits(settings.inspection.memory_limit, settings.inspection.memory_budget, settings.inspection.spool_quota);
        self.state
            .sessions
            .set_limits(settings.inspection.max_upload_sessions, Duration::from_secs(settings.inspection.upload_session_timeout_secs));
        // max_connections: permits added, or taken away as they come free.
        let new_max = settings.config.max_connections.max(1);
        let old_max = self.state.limit_size.swap(new_max, std::sync::atomic::Ordering::SeqCst);
        if new_max > old_max {
            self.state.limit.add_permits(new_max - old_max);
        } else if new_max < old_max {
            let limit = Arc::clone(&self.state.limit);
            let fewer = (old_max - new_max) as u32;
            tokio::spawn(async move {
                if let Ok(p) = limit.acquire_many_owned(fewer).await {
                    p.forget();
                }
            });
        }
        self.state.settings.store(Arc::new(settings));
        // Pooled origin connections were checked under the old address rules.
        self.state.pool.clear();
        Ok(restart)
    }
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
pub(crate) struct Target {
    pub(crate) authority: http::uri::Authority,
    pub(crate) https: bool,
}

/// A bound proxy listener.
pub struct Proxy {
    listener: TcpListener,
    state: Arc<State>,
}

impl Proxy {
    /// Binds the listener of `config.listen`.
    pub async fn bind(
        config: ProxyConfig,
        inspection: InspectionConfig,
        policy: PolicySource,
        audit: Arc<AuditSink>,
    ) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(config.listen).await?;
        let own = vec![listener.local_addr()?];
        // Without a configured directory, one of its own per proxy: preparing it removes what is
        // in it, so two proxies of one process must never share it.
        static UNNAMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = inspection.spool_dir.clone().unwrap_or_else(|| {
            let n = UNNAMED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::env::temp_dir().join(format!("labelgate-spool-{}-{n}", std::process::id()))
        });
        let spool = SpoolArea::prepare(dir, inspection.memory_limit, inspection.memory_budget, inspection.spool_quota)?;
        let sessions =
            crate::sessions::Sessions::new(inspection.max_upload_sessions, Duration::from_secs(inspection.upload_session_timeout_secs));
        let settings = Settings::new(config, inspection, None, own)?;
        let max = settings.config.max_connections.max(1);
        let inspections = settings.inspection.max_concurrent_inspections.max(1);
        let state = State {
            inspections: Arc::new(tokio::sync::Semaphore::new(inspections)),
            inspection_delay_ms: std::env::var("LABELGATE_TEST_FAULT_INSPECTION_DELAY_MS").ok().and_then(|v| v.parse().ok()),
            limit: Arc::new(tokio::sync::Semaphore::new(max)),
            limit_size: std::sync::atomic::AtomicUsize::new(max),
            sessions,
            settings: ArcSwap::from_pointee(settings),
            per_client: Arc::default(),
            policy,
            audit,
            tls: None,
            metrics: None,
            spool,
            pool: Arc::new(Pool::new()),
            upstream_h1: None,
        };
        Ok(Proxy { listener, state: Arc::new(state) })
    }

    /// Requires proxy authentication (HTTP Basic) against `users`.
    pub fn with_users(self, users: Users) -> Proxy {
        let current = self.state.settings.load_full();
        let own = current.destinations.own.clone();
        if let Ok(s) = Settings::new(current.config.clone(), current.inspection.clone(), Some(Arc::new(users)), own) {
            self.state.settings.store(Arc::new(s));
        }
        self
    }

    /// Refuses `addr` (another listener of this process, e.g. the admin one) as a destination.
    pub fn protect(self, addr: SocketAddr) -> Proxy {
        let current = self.state.settings.load_full();
        let mut own = current.destinations.own.clone();
        own.push(addr);
        if let Ok(s) = Settings::new(current.config.clone(), current.inspection.clone(), current.users.clone(), own) {
            self.state.settings.store(Arc::new(s));
        }
        self
    }

    /// A handle that applies reloaded settings to the running proxy.
    pub fn settings_handle(&self) -> SettingsHandle {
        SettingsHandle { state: Arc::clone(&self.state) }
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
        let limit = Arc::clone(&self.state.limit);
        let (draining_tx, draining_rx) = tokio::sync::watch::channel(false);
        // Upload sessions idle past their timeout are dropped (and recorded) even when no
        // further request comes.
        let sweeper = {
            let state = Arc::clone(&self.state);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(5));
                loop {
                    every.tick().await;
                    crate::sessions::sweep(&state);
                }
            })
        };
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    // Only allowed client networks (loopback by default): never an open proxy.
                    if !self.state.settings.load().clients.iter().any(|c| c.contains(peer.ip())) {
                        continue;
                    }
                    // Past the connection limits (all clients, this client) a new connection is
                    // closed at once. The slot is held by the connection and by every tunnel or
                    // upgraded connection it opens.
                    let Some(slot) = Slot::take(&self.state, &limit, peer.ip()) else { continue };
                    // Small writes (TLS records, 100-continue, short responses) must not wait for
                    // Nagle and delayed ACKs: ~40 ms per exchange otherwise.
                    let _ = stream.set_nodelay(true);
                    let state = Arc::clone(&self.state);
                    let mut draining = draining_rx.clone();
                    let header_timeout = Duration::from_secs(state.settings.load().config.header_timeout_secs.max(1));
                    let idle = state.settings.load().config.connection_idle();
                    tokio::spawn(async move {
                        // Nothing moving either way for tunnel_idle_timeout_secs (a client that
                        // stopped reading a response, say) ends the connection.
                        let activity = crate::idle::Activity::new();
                        let stream = activity.wrap(stream);
                        let slot = Arc::new(slot);
                        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                            req.extensions_mut().insert(Arc::clone(&slot));
                            handle(Arc::clone(&state), peer, req)
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(header_timeout)
                            .max_buf_size(64 * 1024)
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades();
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = activity.until_idle(idle) => {}
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
        sweeper.abort();
        let _ = draining_tx.send(true);
        let total = self.state.limit_size.load(std::sync::atomic::Ordering::SeqCst).max(1) as u32;
        let drained =
            tokio::time::timeout(Duration::from_secs(self.state.settings.load().config.drain_timeout_secs), limit.acquire_many(total))
                .await;
        if drained.is_err() {
            tracing::warn!("drain timeout: closing the connections still open");
        }
        Ok(())
    }

    /// Serves forever.
    pub async fn serve(self) -> std::io::Result<()> {
        self.serve_until(std::future::pending()).await
    }
}

/// A client connection's place in `max_connections`, in `max_connections_per_client` and in
/// the active-connections gauge: held by the connection and by every tunnel or upgraded
/// connection it opens (they carry it in their request's extensions), given back when the last
/// of them ends, however it ends.
pub(crate) struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    gauge: Option<prometheus::IntGauge>,
    client: std::net::IpAddr,
    per_client: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl Slot {
    fn take(state: &State, limit: &Arc<tokio::sync::Semaphore>, client: std::net::IpAddr) -> Option<Slot> {
        let max_per_client = state.settings.load().config.max_connections_per_client.max(1);
        {
            let mut counts = state.per_client.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(client).or_insert(0);
            if *n >= max_per_client {
                return None;
            }
            *n += 1;
        }
        let slot_without_permit = |state: &State| {
            let mut counts = state.per_client.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = counts.get_mut(&client) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&client);
                }
            }
        };
        let Ok(permit) = Arc::clone(limit).try_acquire_owned() else {
            slot_without_permit(state);
            return None;
        };
        let gauge = state.metrics.as_ref().map(|m| m.active_connections.clone());
        if let Some(g) = &gauge {
            g.inc();
        }
        Some(Slot { _permit: permit, gauge, client, per_client: Arc::clone(&state.per_client) })
    }

    /// The slot a request's connection holds.
    pub(crate) fn of<B>(req: &Request<B>) -> Option<Arc<Slot>> {
        req.extensions().get::<Arc<Slot>>().cloned()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.dec();
        }
        let mut counts = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub(crate) fn simple(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("{text}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// A client whose network a reload removed from `allow_clients` is refused on its open
/// connections too, not only on new ones.
pub(crate) fn client_refused(state: &State, peer: SocketAddr) -> Option<Response<Body>> {
    if state.settings.load().clients.iter().any(|c| c.contains(peer.ip())) {
        return None;
    }
    let mut r = simple(StatusCode::FORBIDDEN, "this client may not use the proxy");
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(r)
}

async fn handle(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if let Some(refused) = client_refused(&state, peer) {
        return Ok(refused);
    }
    let user = match &state.settings.load().users {
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
        return Ok(crate::tunnel::tunnel(state, peer, req, user).await);
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
pub(crate) async fn relay(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
    target: Target,
    user: Option<User>,
) -> Response<Body> {
    if crate::websocket::is_websocket(&req) {
        return crate::websocket::relay(state, peer, target, user, req).await;
    }
    if req.headers().contains_key(header::UPGRADE) && req.method() == Method::GET {
        return crate::upstream::upgrade_relay(&state, &target, req).await;
    }
    // A transfer coding other than chunked would reach the origin coded while the proxy read
    // it decoded (hyper only undoes chunked): refused, never forwarded uninspected.
    if let Some(coding) = transfer_codings(req.headers()).into_iter().find(|c| c != "chunked") {
        return simple(
            StatusCode::NOT_IMPLEMENTED,
            &format!("transfer coding {coding:?} is not supported; send the body with chunked or a Content-Length"),
        );
    }
    // A request of a resumable or multipart upload session: its piece joins the session's file,
    // decided whole when the file is complete.
    if let Some(recognised) = crate::sessions::recognise(&req, &target) {
        return crate::sessions::run(state, peer, req, target, user, recognised).await;
    }
    // Every request that carries a body is an upload, whatever its method (any token, any case):
    // a body with no declared length is no body (RFC 9112 §6.3) and hyper frames it so.
    // So is a request whose query string or header fields are long enough to carry a file.
    let inspect = !http_body::Body::is_end_stream(req.body())
        || (crate::inspect::request_line_may_carry(req.uri(), req.headers(), 256)
            && crate::inspect::request_line_carries(
                req.uri(),
                req.headers(),
                state.settings.load().inspection.unpack_limits().max_inner_bytes,
            ));
    if !inspect {
        let (parts, body) = req.into_parts();
        return crate::upstream::forward(&state, &target, parts, body.map_err(|e| Box::new(e) as BoxError).boxed(), None).await;
    }
    crate::upload::run(state, peer, req, target, user).await
}

/// The transfer codings a request lists, across all its `Transfer-Encoding` fields, lower-cased.
fn transfer_codings(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| String::from_utf8_lossy(v.as_bytes()).split(',').map(|c| c.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .filter(|c| !c.is_empty())
        .collect()
}
