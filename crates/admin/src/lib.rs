//! `labelgate-admin`: the admin listener (default `127.0.0.1:9180`). It serves Prometheus
//! metrics, liveness and readiness, the PAC file that points browsers at the proxy, and the MIP
//! account API under `/api/v1/` (bearer token; see [`api`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod write;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, Registry, TextEncoder};
use serde::Deserialize;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the admin listener binds (default `127.0.0.1:9180`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The proxy address the PAC file names (default: the proxy's listen address).
    #[serde(default)]
    pub pac_proxy: Option<String>,
    /// File holding the `/api/v1/` bearer token (relative to the config file). Without it and
    /// `api_token_env`, a token is generated on first start into `<state-dir>/admin-token` (0600).
    #[serde(default)]
    pub api_token_file: Option<std::path::PathBuf>,
    /// Environment variable holding the `/api/v1/` bearer token.
    #[serde(default)]
    pub api_token_env: Option<String>,
    /// More named tokens (`[[admin.tokens]]`), each `read` or `write`; the token above is the
    /// write token named `admin`.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Serve the admin listener over TLS: a PEM certificate chain and its PEM private key
    /// (relative to the config file). Required when `listen` is not loopback.
    #[serde(default)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<std::path::PathBuf>,
}

/// One named API token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who it is (in audit records).
    pub name: String,
    /// File holding it (relative to the config file).
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
    /// Environment variable holding it.
    #[serde(default)]
    pub token_env: Option<String>,
    /// `read` (sees everything, changes nothing) or `write`.
    pub role: Role,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees everything, changes nothing.
    Read,
    /// Also changes accounts.
    Write,
}

/// A token as the API checks it: its name, its role, and the value.
#[derive(Clone)]
pub struct NamedToken {
    /// Who.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The token (never printed).
    pub value: String,
}

impl std::fmt::Debug for NamedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedToken").field("name", &self.name).field("role", &self.role).field("value", &"[redacted]").finish()
    }
}

impl AdminConfig {
    /// What `labelgate check` reports: a listener reachable beyond loopback carries bearer tokens
    /// and account changes in clear text without TLS (an error), and half a TLS pair.
    pub fn problems(&self) -> Vec<labelgate_diagnostics::Problem> {
        use labelgate_diagnostics::{key, Problem};
        let mut out = Vec::new();
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            out.push(Problem::error(
                key(&["admin", if self.tls_cert.is_some() { "tls_cert" } else { "tls_key" }]),
                "[admin] tls_cert and tls_key go together",
            ));
        }
        if !self.listen.ip().is_loopback() && self.tls_cert.is_none() {
            out.push(Problem::error(
                key(&["admin", "listen"]),
                format!("[admin] listen {} is reachable beyond loopback: set tls_cert and tls_key (tokens and account changes must not travel in clear text)", self.listen),
            ));
        }
        out
    }

    /// The TLS configuration of the listener, when `tls_cert` and `tls_key` are set.
    pub fn tls(&self, base_dir: &std::path::Path) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else { return Ok(None) };
        use rustls::pki_types::pem::PemObject;
        let (cert, key) = (base_dir.join(cert), base_dir.join(key));
        let chain: Vec<rustls::pki_types::CertificateDer<'static>> = rustls::pki_types::CertificateDer::pem_file_iter(&cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsError { path: cert.display().to_string(), reason: e.to_string() })?;
        let private = rustls::pki_types::PrivateKeyDer::from_pem_file(&key)
            .map_err(|e| TlsError { path: key.display().to_string(), reason: e.to_string() })?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError { path: cert.display().to_string(), reason: e.to_string() })?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| TlsError { path: cert.display().to_string(), reason: e.to_string() })?;
        Ok(Some(Arc::new(config)))
    }

    /// Every API token: `admin` (write: `api_token_env`, `api_token_file` or the generated one)
    /// and the `[[admin.tokens]]`.
    pub fn named_tokens(&self, base_dir: &std::path::Path, state_dir: &std::path::Path) -> Result<Vec<NamedToken>, TokenError> {
        let (tokens, mut problems) = self.named_tokens_each(base_dir, state_dir);
        match problems.pop() {
            Some(e) => Err(e),
            None => Ok(tokens),
        }
    }

    /// Every token that can be read, and why the others cannot (a reload stores the readable
    /// ones: a token removed from the config must stop working even when another is broken).
    pub fn named_tokens_each(&self, base_dir: &std::path::Path, state_dir: &std::path::Path) -> (Vec<NamedToken>, Vec<TokenError>) {
        let mut tokens = Vec::new();
        let mut problems = Vec::new();
        match self.api_token(base_dir, state_dir) {
            Ok(value) => tokens.push(NamedToken { name: "admin".into(), role: Role::Write, value }),
            Err(e) => problems.push(e),
        }
        for t in &self.tokens {
            match self.one_token(t, base_dir) {
                Ok(value) => tokens.push(NamedToken { name: t.name.clone(), role: t.role, value }),
                Err(e) => problems.push(e),
            }
        }
        (tokens, problems)
    }

    /// One `[[admin.tokens]]` entry's value.
    fn one_token(&self, t: &TokenConfig, base_dir: &std::path::Path) -> Result<String, TokenError> {
        match (&t.token_env, &t.token_file) {
            (Some(var), _) => std::env::var(var)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| TokenError::EnvUnset(var.clone())),
            (None, Some(f)) => {
                let path = base_dir.join(f);
                match std::fs::read_to_string(&path) {
                    Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                    Ok(_) => Err(TokenError::FileEmpty(path.display().to_string())),
                    Err(source) => Err(TokenError::FileUnreadable { path: path.display().to_string(), source }),
                }
            }
            (None, None) => Err(TokenError::NoSource(t.name.clone())),
        }
    }

    /// The API token: from `api_token_env`, `api_token_file`, or `<state_dir>/admin-token`
    /// (created with 32 random bytes, mode 0600, when missing).
    pub fn api_token(&self, base_dir: &std::path::Path, state_dir: &std::path::Path) -> Result<String, TokenError> {
        if let Some(var) = &self.api_token_env {
            return std::env::var(var)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| TokenError::EnvUnset(var.clone()));
        }
        let (path, generate) = match &self.api_token_file {
            Some(f) => (base_dir.join(f), false),
            None => (state_dir.join("admin-token"), true),
        };
        match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
            Ok(_) if !generate => return Err(TokenError::FileEmpty(path.display().to_string())),
            Err(source) if !generate => return Err(TokenError::FileUnreadable { path: path.display().to_string(), source }),
            _ => {}
        }
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| TokenError::Randomness)?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let create = |path: &std::path::Path| {
            let shown = path.display().to_string();
            move |source| TokenError::Create { path: shown, source }
        };
        std::fs::create_dir_all(state_dir).map_err(create(state_dir))?;
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(create(&path))?;
        f.write_all(format!("{token}\n").as_bytes()).map_err(create(&path))?;
        Ok(token)
    }
}

/// The admin listener's certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("[admin] TLS: {path}: {reason}")]
pub struct TlsError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// Why the admin API token cannot be had (never showing the token).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// `api_token_env` names a variable that is not set (or empty).
    #[error("[admin] api_token_env: {0} is not set")]
    EnvUnset(String),
    /// `api_token_file` is empty.
    #[error("[admin] api_token_file: {0} is empty")]
    FileEmpty(String),
    /// `api_token_file` cannot be read.
    #[error("[admin] api_token_file: {path}: {source}")]
    FileUnreadable {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// No randomness for a new token.
    #[error("no randomness for a new admin token")]
    Randomness,
    /// A `[[admin.tokens]]` entry with neither `token_file` nor `token_env`.
    #[error("[[admin.tokens]] {0:?}: give token_file or token_env")]
    NoSource(String),
    /// The generated token cannot be stored.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9180))
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_listen(),
            pac_proxy: None,
            api_token_file: None,
            api_token_env: None,
            tokens: Vec::new(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// What the admin listener serves.
pub struct AdminState {
    /// Metrics to expose.
    pub registry: Registry,
    /// Set once the proxy accepts connections.
    pub ready: Arc<AtomicBool>,
    /// `host:port` browsers should use (reloadable).
    pub pac_proxy: arc_swap::ArcSwap<String>,
    /// Called before each scrape to refresh gauges read from elsewhere.
    pub before_scrape: Option<Box<dyn Fn() + Send + Sync>>,
    /// The MIP accounts (`/api/v1/`); without them the API answers 404.
    pub accounts: Option<Arc<labelgate_sync::Syncer>>,
    /// The bearer tokens `/api/v1/` accepts (reloadable).
    pub api_tokens: arc_swap::ArcSwap<Vec<NamedToken>>,
    /// Failed sign-ins per client address (throttled).
    pub failures: api::Throttle,
    /// Where admin events go (failed sign-ins): the audit trail.
    pub audit: Option<Box<dyn Fn(serde_json::Value) + Send + Sync>>,
    /// The config file behind the API: account and cloud app changes go to it, the cloud apps
    /// are read from it; without it the API reads accounts only.
    pub config_store: Option<Arc<dyn write::ConfigStore>>,
}

/// The PAC file: local and plain host names go direct, everything else through labelgate, with
/// no DIRECT fallback (if the proxy is down, uploads fail rather than leave uninspected).
pub fn pac(proxy: &str) -> String {
    format!(
        "function FindProxyForURL(url, host) {{\n  if (isPlainHostName(host) || host == \"localhost\" || shExpMatch(host, \"127.*\") || host == \"[::1]\") {{\n    return \"DIRECT\";\n  }}\n  return \"PROXY {proxy}\";\n}}\n"
    )
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The admin pages (`/ui/`: MIP Labels; `/ui/cloud-apps`: Cloud Application Tags), served by
/// the binary itself: no CDN, no network at run time,
/// no inline script (the Content-Security-Policy forbids it), nothing framed.
fn ui(path: &str) -> Option<Response<Full<Bytes>>> {
    let (content_type, body): (&str, &'static str) = match path {
        "/ui" | "/ui/" | "/ui/index.html" | "/ui/cloud-apps" | "/ui/cloud-apps/" => {
            ("text/html; charset=utf-8", include_str!("../ui/index.html"))
        }
        "/ui/app.js" => ("text/javascript; charset=utf-8", include_str!("../ui/app.js")),
        "/ui/common.js" => ("text/javascript; charset=utf-8", include_str!("../ui/common.js")),
        "/ui/accounts.js" => ("text/javascript; charset=utf-8", include_str!("../ui/accounts.js")),
        "/ui/cloud-apps.js" => ("text/javascript; charset=utf-8", include_str!("../ui/cloud-apps.js")),
        "/ui/app.css" => ("text/css; charset=utf-8", include_str!("../ui/app.css")),
        _ => return None,
    };
    let mut r = respond(StatusCode::OK, content_type, body);
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; base-uri 'none'"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    Some(r)
}

/// Bytes an API request body may have.
const MAX_BODY: usize = 256 * 1024;

async fn route(state: &AdminState, req: Request<Incoming>, peer: std::net::IpAddr) -> Response<Full<Bytes>> {
    if req.uri().path().starts_with("/api/") {
        let tokens = state.api_tokens.load_full();
        let Some(syncer) = state.accounts.as_ref().filter(|_| !tokens.is_empty()) else {
            return respond(StatusCode::NOT_FOUND, "text/plain", "no account API here\n");
        };
        // A client that failed to sign in too often waits, whatever it sends now: guesses are
        // not even checked (each failure is audited). (An address shared by many admins behind
        // NAT shares this budget.)
        if let Some(wait) = state.failures.blocked(peer) {
            let mut r =
                respond(StatusCode::TOO_MANY_REQUESTS, "application/json", "{\"error\": \"too many failed sign-ins; retry later\"}\n");
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let signed_in = api::signed_in(given, &tokens);
        let Some(signed_in) = signed_in else {
            state.failures.failed(peer);
            if let Some(audit) = &state.audit {
                audit(
                    serde_json::json!({"event": "admin_sign_in_failed", "client": peer.to_string(), "method": req.method().as_str(), "path": req.uri().path()}),
                );
            }
            let mut r = respond(
                StatusCode::UNAUTHORIZED,
                "application/json",
                "{\"error\": \"a bearer token is required (see <state-dir>/admin-token)\"}\n",
            );
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"labelgate-admin\""));
            return r;
        };
        if *req.method() == Method::POST {
            if let Some(name) = req.uri().path().strip_prefix("/api/v1/accounts/").and_then(|r| r.strip_suffix("/validate")) {
                return api::validate(syncer, name).await;
            }
        }
        if req.uri().path() == "/api/v1/whoami" {
            let role = match signed_in.role {
                Role::Read => "read",
                Role::Write => "write",
            };
            let body = serde_json::json!({"name": signed_in.name, "role": role}).to_string();
            let mut r = respond(StatusCode::OK, "application/json", body);
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return r;
        }
        let writes = !matches!(*req.method(), Method::GET | Method::HEAD);
        let change = if writes { write::change_of(req.method(), req.uri().path()) } else { None };
        if change.is_some() && signed_in.role == Role::Read {
            return respond(
                StatusCode::FORBIDDEN,
                "application/json",
                "{\"errors\": [{\"field\": null, \"message\": \"this token may read, not change\"}]}\n",
            );
        }
        let cloud_apps = req.uri().path().trim_end_matches('/') == "/api/v1/cloud-apps";
        if let (Some(store), true, false) = (&state.config_store, cloud_apps, writes) {
            let store = Arc::clone(store);
            return tokio::task::spawn_blocking(move || write::cloud_apps(store.as_ref())).await.unwrap_or_else(|_| {
                respond(StatusCode::INTERNAL_SERVER_ERROR, "application/json", "{\"error\": \"the cloud apps cannot be read\"}\n")
            });
        }
        if let (Some(change), Some(store)) = (change, &state.config_store) {
            let (parts, body) = req.into_parts();
            let body = match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, MAX_BODY)).await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return respond(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "application/json",
                        "{\"errors\": [{\"field\": null, \"message\": \"the body is too large\"}]}\n",
                    )
                }
            };
            let if_match = parts.headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_string);
            let (store, who) = (Arc::clone(store), signed_in.name.clone());
            // File reads, fsyncs and renames: off the async workers (the proxy shares them).
            let answered =
                tokio::task::spawn_blocking(move || write::change(store.as_ref(), change, &body, if_match.as_deref(), &who)).await;
            return answered.unwrap_or_else(|_| {
                respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "application/json",
                    "{\"errors\": [{\"field\": null, \"message\": \"the change failed\"}]}\n",
                )
            });
        }
        let mut answer = api::route(syncer, req.method(), req.uri().path(), req.uri().query());
        if let Some(etag) = state.config_store.as_ref().and_then(|s| s.etag()).and_then(|e| HeaderValue::from_str(&e).ok()) {
            answer.headers_mut().insert(header::ETAG, etag);
        }
        return answer;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    if let Some(page) = ui(req.uri().path()) {
        return page;
    }
    match req.uri().path() {
        "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => {
            if state.ready.load(Ordering::Relaxed) {
                respond(StatusCode::OK, "text/plain", "ready\n")
            } else {
                respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "starting\n")
            }
        }
        "/metrics" => {
            if let Some(f) = &state.before_scrape {
                f();
            }
            let mut out = Vec::new();
            match TextEncoder::new().encode(&state.registry.gather(), &mut out) {
                Ok(()) => respond(StatusCode::OK, "text/plain; version=0.0.4", out),
                Err(e) => respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("{e}\n")),
            }
        }
        "/proxy.pac" => respond(StatusCode::OK, "application/x-ns-proxy-autoconfig", pac(&state.pac_proxy.load())),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// A connection, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Admin connections served at once; more are closed at accept.
const MAX_CONNECTIONS: usize = 256;

/// Serves the admin endpoints on `listener` (over TLS with `tls`) until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    // Bounded like the proxy's: a few hundred connections at once, a request head within 30 s.
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else { continue };
                let state = Arc::clone(&state);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let io: Box<dyn Io> = match acceptor {
                        None => Box::new(stream),
                        Some(acceptor) => match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => Box::new(tls),
                            _ => return,
                        },
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(route(&state, req, peer.ip()).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(std::time::Duration::from_secs(30))
                        .serve_connection(TokioIo::new(io), service)
                        .await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pac_names_the_proxy_without_a_direct_fallback() {
        let p = super::pac("127.0.0.1:3128");
        assert!(p.contains("return \"PROXY 127.0.0.1:3128\";"));
        assert!(!p.contains("PROXY 127.0.0.1:3128; DIRECT"));
    }
}
