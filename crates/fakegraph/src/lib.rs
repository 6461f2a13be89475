//! `labelgate-fakegraph`: a fake Microsoft identity platform and Microsoft Graph sensitivity-label
//! API for tests and demos, on loopback, speaking the wire formats of docs/graph-labels.md §7:
//! the v2.0 token endpoint (client secret in the form or HTTP Basic, or a client assertion) with
//! the real error bodies, the beta and v1.0 label lists with `@odata.nextLink` paging and the
//! Graph error envelope, the legacy endpoint answering 404, and scripted faults (bad secret,
//! unknown app, unknown/blocked tenant, 403, 429 with Retry-After, 5xx, slow answers, malformed
//! JSON, expired tokens, resets, empty tenants), and OneDrive large-file upload sessions
//! (`createUploadSession`, fragment `PUT`s: drive.rs). A `/_fake/` control plane replaces the world,
//! installs faults and reads the request log. It is its own crate: nothing of it is linked into
//! labelgate.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let world: labelgate_fakegraph::World = serde_json::from_str(r#"{"tenants": []}"#)?;
//! let fake = labelgate_fakegraph::FakeGraph::start(world).await?;
//! println!("authority_url = graph_url = {}", fake.url());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The identity world the fake serves.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// Tenants.
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    /// Access token lifetime (default 3599 s).
    #[serde(default = "default_lifetime")]
    pub token_lifetime_secs: u64,
    /// Labels per page (default 100).
    #[serde(default = "default_page")]
    pub page_size: usize,
    /// Faults installed at start.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

fn default_lifetime() -> u64 {
    3599
}
fn default_page() -> usize {
    100
}

/// A tenant's lifecycle state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TenantState {
    /// Works.
    #[default]
    Active,
    /// AADSTS90002.
    NotFound,
    /// AADSTS5000225.
    BlockedInactive,
    /// AADSTS5000224.
    Decommissioned,
}

/// One tenant.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// Directory GUID.
    pub id: String,
    /// Verified domains (`contoso.onmicrosoft.com`).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Lifecycle.
    #[serde(default)]
    pub state: TenantState,
    /// How AADSTS90002 spells its `error` (`invalid_tenant`, default, or `invalid_request`).
    #[serde(default)]
    pub not_found_error: Option<String>,
    /// App registrations.
    #[serde(default)]
    pub apps: Vec<App>,
    /// Published labels (flat; sublabels name their parent).
    #[serde(default)]
    pub labels: Vec<FakeLabel>,
    /// No label policy: the collections answer 404 `itemNotFound`.
    #[serde(default)]
    pub no_label_policy: bool,
}

/// An app registration.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Application (client) id.
    pub client_id: String,
    /// Client secrets.
    #[serde(default)]
    pub secrets: Vec<AppSecret>,
    /// base64url SHA-256 thumbprints of registered certificates.
    #[serde(default)]
    pub cert_thumbprints_s256: Vec<String>,
    /// Service principal disabled (AADSTS7000112).
    #[serde(default)]
    pub disabled: bool,
    /// Granted application roles (default: both label permissions).
    #[serde(default = "default_roles")]
    pub roles: Vec<String>,
}

fn default_roles() -> Vec<String> {
    vec!["InformationProtectionPolicy.Read.All".into(), "SensitivityLabels.Read.All".into()]
}

/// A client secret.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AppSecret {
    /// The value.
    pub value: String,
    /// Expired (AADSTS7000222).
    #[serde(default)]
    pub expired: bool,
}

/// A published label.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FakeLabel {
    /// GUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// v1.0 `displayName` (beta has none).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Tooltip.
    #[serde(default)]
    pub tooltip: String,
    /// Colour.
    #[serde(default)]
    pub color: String,
    /// Sensitivity (beta; v1.0 `priority` is derived as 100 - sensitivity).
    #[serde(default)]
    pub sensitivity: i32,
    /// Active.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Protection.
    #[serde(default)]
    pub has_protection: bool,
    /// Content formats.
    #[serde(default = "default_formats")]
    pub content_formats: Vec<String>,
    /// Parent label id.
    #[serde(default)]
    pub parent: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_formats() -> Vec<String> {
    vec!["file".into(), "email".into()]
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// The token endpoint.
    Token,
    /// The label lists.
    Labels,
}

/// A scripted fault: applies to the matching requests after `after` of them, `times` times
/// (0: for ever).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Route.
    pub route: Route,
    /// Tenant GUID (or domain, for the token route) it is limited to.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Limited to one page of a label list (1 = the first).
    #[serde(default)]
    pub page: Option<usize>,
    /// Matching requests let through first.
    #[serde(default)]
    pub after: u32,
    /// How many times it applies (0: always).
    #[serde(default)]
    pub times: u32,
    /// What happens.
    pub action: FaultAction,
    /// Matches so far (state).
    #[serde(default, skip_deserializing)]
    pub seen: u32,
}

/// What a fault does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// An HTTP error: the Graph envelope with `code` (labels) or an identity error (token, with
    /// `aadsts` when given), and `Retry-After` when given.
    Status {
        /// HTTP status.
        status: u16,
        /// Graph `error.code` / identity `error`.
        #[serde(default)]
        code: Option<String>,
        /// Graph `error.message`.
        #[serde(default)]
        message: Option<String>,
        /// AADSTS code (token route).
        #[serde(default)]
        aadsts: Option<u32>,
        /// `Retry-After` header value.
        #[serde(default)]
        retry_after: Option<String>,
    },
    /// Waits, then answers normally.
    DelayMs(u64),
    /// A body that is not JSON (`status` default 200 for labels, 500 for the token endpoint).
    Malformed {
        /// HTTP status.
        #[serde(default)]
        status: Option<u16>,
    },
    /// 401 `InvalidAuthenticationToken` "Access token has expired or is not yet valid."
    ExpiredToken,
    /// The connection is closed without an answer.
    Reset,
    /// The page's nextLink points back at itself.
    NextLinkLoop,
    /// An empty page (`value: []`) whose nextLink leads to the page that was asked for.
    EmptyPage,
}

/// One request the fake received (secrets left out).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEntry {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string.
    pub query: Option<String>,
    /// `client-request-id`.
    pub client_request_id: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// An `Authorization` header was present.
    pub authorization: bool,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Form field names of a token request.
    pub form_fields: Vec<String>,
    /// `scope` of a token request.
    pub scope: Option<String>,
    /// Tenant of the token (Graph) or of the path (token endpoint).
    pub tenant: Option<String>,
    /// The status answered (0 for a reset).
    pub status: u16,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

struct Inner {
    world: World,
    log: Vec<LogEntry>,
    /// Changes with every world replacement (stale skiptokens are refused).
    generation: u64,
}

mod drive;

struct Shared {
    drive: Mutex<drive::Drive>,
    inner: Mutex<Inner>,
    key: ring::hmac::Key,
    base: String,
}

/// A running fake.
pub struct FakeGraph {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGraph {
    /// Starts on an ephemeral loopback port.
    pub async fn start(world: World) -> std::io::Result<FakeGraph> {
        FakeGraph::bind(world, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr`.
    pub async fn bind(world: World, addr: SocketAddr) -> std::io::Result<FakeGraph> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).map_err(|_| std::io::Error::other("no randomness"))?;
        let shared = Arc::new(Shared {
            drive: Mutex::default(),
            inner: Mutex::new(Inner { world, log: Vec::new(), generation: 1 }),
            key,
            base: format!("http://{addr}"),
        });
        let serving = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let shared = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { handle(shared, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(FakeGraph { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT` (both the authority and the Graph base URL).
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the world (labels, tenants, apps) in place.
    pub fn edit(&self, f: impl FnOnce(&mut World)) {
        let mut inner = self.shared.lock();
        f(&mut inner.world);
        inner.generation += 1;
    }

    /// Installs a fault.
    pub fn fault(&self, fault: Fault) {
        self.shared.lock().world.faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.lock().world.faults.clear();
    }

    /// The request log.
    pub fn log(&self) -> Vec<LogEntry> {
        self.shared.lock().log.clone()
    }

    /// Empties the request log.
    pub fn clear_log(&self) {
        self.shared.lock().log.clear();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fault shorthand: `action` on `route`, `times` times (0: always).
pub fn fault(route: Route, times: u32, action: FaultAction) -> Fault {
    Fault { route, tenant: None, page: None, after: 0, times, action, seen: 0 }
}

type Answer = Response<Full<Bytes>>;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn guid() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn json_answer(status: u16, body: &Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    r
}

fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36 && b.iter().enumerate().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

struct Reject(String);

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Answer, Reject> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let hv = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut entry = LogEntry {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        client_request_id: hv("client-request-id"),
        user_agent: hv("user-agent"),
        authorization: headers.contains_key(header::AUTHORIZATION),
        content_type: hv("content-type"),
        form_fields: Vec::new(),
        scope: None,
        tenant: None,
        status: 0,
        at_ms: now_ms(),
    };
    let outcome = if path.starts_with("/_fake/") {
        Ok(control(&shared, &method, &path, &body))
    } else if method == Method::POST && path.ends_with("/oauth2/v2.0/token") {
        token(&shared, &path, &headers, &body, &mut entry).await
    } else if let Some(answer) = drive::route(&shared, &method, &path, query.as_deref(), &headers, &body) {
        Ok(answer)
    } else if method == Method::GET {
        graph(&shared, &path, query.as_deref(), &headers, &mut entry).await
    } else {
        Ok(graph_error(405, "Request_BadRequest", "Method not allowed", entry.client_request_id.as_deref()))
    };
    entry.status = outcome.as_ref().map(|a| a.status().as_u16()).unwrap_or(0);
    if !path.starts_with("/_fake/") {
        shared.lock().log.push(entry);
    }
    outcome
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::fmt::Debug for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Reject {}

fn control(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> Answer {
    let mut inner = shared.lock();
    match (method.as_str(), path) {
        ("GET", "/_fake/world") => json_answer(200, &serde_json::to_value(&inner.world).unwrap_or(Value::Null)),
        ("PUT", "/_fake/world") => match serde_json::from_slice::<World>(body) {
            Ok(w) => {
                inner.world = w;
                inner.generation += 1;
                json_answer(200, &json!({"ok": true}))
            }
            Err(e) => json_answer(400, &json!({"error": e.to_string()})),
        },
        ("POST", "/_fake/faults") => match serde_json::from_slice::<Fault>(body) {
            Ok(f) => {
                inner.world.faults.push(f);
                json_answer(200, &json!({"ok": true}))
            }
            Err(e) => json_answer(400, &json!({"error": e.to_string()})),
        },
        ("DELETE", "/_fake/faults") => {
            inner.world.faults.clear();
            json_answer(200, &json!({"ok": true}))
        }
        ("GET", "/_fake/log") => json_answer(200, &serde_json::to_value(&inner.log).unwrap_or(Value::Null)),
        ("DELETE", "/_fake/log") => {
            inner.log.clear();
            json_answer(200, &json!({"ok": true}))
        }
        _ => json_answer(404, &json!({"error": "unknown control route"})),
    }
}

/// The first fault that matches (counting it).
fn take_fault(shared: &Shared, route: Route, tenant: Option<&str>, page: Option<usize>) -> Option<FaultAction> {
    let mut inner = shared.lock();
    for f in inner.world.faults.iter_mut() {
        if f.route != route {
            continue;
        }
        if let (Some(want), Some(t)) = (&f.tenant, tenant) {
            if !want.eq_ignore_ascii_case(t) {
                continue;
            }
        } else if f.tenant.is_some() {
            continue;
        }
        if f.page.is_some() && f.page != page {
            continue;
        }
        f.seen += 1;
        if f.seen <= f.after {
            continue;
        }
        if f.times != 0 && f.seen > f.after + f.times {
            continue;
        }
        return Some(f.action.clone());
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Identity platform
// ---------------------------------------------------------------------------------------------

fn identity_error(status: u16, error: &str, code: u32, text: &str) -> Answer {
    let trace = guid();
    let correlation = guid();
    let ts = httpdate::fmt_http_date(SystemTime::now());
    json_answer(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}"),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

async fn token(shared: &Shared, path: &str, headers: &http::HeaderMap, body: &[u8], entry: &mut LogEntry) -> Result<Answer, Reject> {
    let tenant_ref = path.trim_start_matches('/').split('/').next().unwrap_or("").to_string();
    entry.tenant = Some(tenant_ref.clone());
    let fields = form(body);
    entry.form_fields = fields.iter().map(|(k, _)| k.clone()).collect();
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    entry.scope = get("scope");
    match take_fault(shared, Route::Token, Some(&tenant_ref), None) {
        Some(FaultAction::Status { status, code, aadsts, retry_after, message }) => {
            let mut a = match aadsts {
                Some(c) => {
                    identity_error(status, code.as_deref().unwrap_or("invalid_request"), c, message.as_deref().unwrap_or("Scripted fault."))
                }
                None => {
                    identity_error(status, code.as_deref().unwrap_or("temporarily_unavailable"), 90033, "A transient error has occurred.")
                }
            };
            if let Some(ra) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                a.headers_mut().insert(header::RETRY_AFTER, ra);
            }
            return Ok(a);
        }
        Some(FaultAction::DelayMs(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Some(FaultAction::Malformed { status }) => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"<html><body>Service Unavailable</body></html>")));
            *r.status_mut() = StatusCode::from_u16(status.unwrap_or(500)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(r);
        }
        Some(FaultAction::Reset) => return Err(Reject("scripted reset".into())),
        Some(FaultAction::ExpiredToken | FaultAction::NextLinkLoop | FaultAction::EmptyPage) | None => {}
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Ok(identity_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."));
    }
    let inner = shared.lock();
    let world = &inner.world;
    let looks_like_domain = tenant_ref.contains('.') && !tenant_ref.contains(' ');
    if !is_guid(&tenant_ref) && !looks_like_domain {
        return Ok(identity_error(
            400,
            "invalid_request",
            900023,
            &format!("Specified tenant identifier '{tenant_ref}' is neither a valid DNS name, nor a valid external domain."),
        ));
    }
    let tenant = world
        .tenants
        .iter()
        .find(|t| t.id.eq_ignore_ascii_case(&tenant_ref) || t.domains.iter().any(|d| d.eq_ignore_ascii_case(&tenant_ref)));
    let not_found = |t: Option<&Tenant>| {
        let spelled = t.and_then(|t| t.not_found_error.clone()).unwrap_or_else(|| "invalid_tenant".into());
        identity_error(400, &spelled, 90002, &format!("Tenant '{tenant_ref}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. This may happen if there are no active subscriptions for the tenant."))
    };
    let Some(tenant) = tenant else { return Ok(not_found(None)) };
    match tenant.state {
        TenantState::Active => {}
        TenantState::NotFound => return Ok(not_found(Some(tenant))),
        TenantState::BlockedInactive => {
            return Ok(identity_error(400, "interaction_required", 5000225, "This tenant has been blocked due to inactivity."))
        }
        TenantState::Decommissioned => {
            return Ok(identity_error(400, "invalid_request", 5000224, "We are sorry, this resource is not available."))
        }
    }
    if get("grant_type").as_deref() != Some("client_credentials") {
        return Ok(identity_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."));
    }
    let scope = get("scope").unwrap_or_default();
    if scope.split(' ').count() != 1 || !scope.ends_with("/.default") {
        return Ok(identity_error(400, "invalid_scope", 1002012, &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")));
    }
    // Client id and secret from the form, or from HTTP Basic.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())));
    let client_id = get("client_id").or_else(|| basic.as_ref().map(|b| b.0.clone())).unwrap_or_default();
    let Some(app) = tenant.apps.iter().find(|a| a.client_id.eq_ignore_ascii_case(&client_id)) else {
        return Ok(identity_error(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{}'.", tenant.id),
        ));
    };
    if app.disabled {
        return Ok(identity_error(400, "unauthorized_client", 7000112, &format!("Application '{client_id}' is disabled.")));
    }
    let secret = get("client_secret").or_else(|| basic.as_ref().map(|b| b.1.clone()));
    let assertion = get("client_assertion");
    match (secret, assertion) {
        (Some(s), _) => match app.secrets.iter().find(|x| x.value == s) {
            Some(x) if x.expired => {
                return Ok(identity_error(401, "invalid_client", 7000222, &format!("The provided client secret keys for app '{client_id}' are expired.")))
            }
            Some(_) => {}
            None => {
                return Ok(identity_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app."))
            }
        },
        (None, Some(jwt)) => {
            if get("client_assertion_type").as_deref() != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
                return Ok(identity_error(400, "invalid_request", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."));
            }
            let audience = format!("{}{path}", shared.base);
            if let Err(why) = check_assertion(&jwt, &client_id, &audience, app) {
                return Ok(identity_error(401, "invalid_client", 700027, &format!("Client assertion failed signature validation: {why}.")));
            }
        }
        (None, None) => {
            return Ok(identity_error(400, "invalid_request", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."))
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let lifetime = world.token_lifetime_secs;
    let claims = json!({
        "aud": "https://graph.microsoft.com", "iss": format!("https://sts.windows.net/{}/", tenant.id),
        "tid": tenant.id, "appid": app.client_id, "roles": app.roles, "iat": now, "nbf": now, "exp": now + lifetime, "idtyp": "app",
    });
    let jwt = sign(&shared.key, &claims);
    Ok(json_answer(200, &json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": jwt})))
}

fn check_assertion(jwt: &str, client_id: &str, audience: &str, app: &App) -> Result<(), &'static str> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(_sig)) = (parts.next(), parts.next(), parts.next()) else { return Err("not a JWT") };
    let header: Value = URL_SAFE_NO_PAD.decode(h).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or("bad header")?;
    let claims: Value = URL_SAFE_NO_PAD.decode(c).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or("bad claims")?;
    let thumb = header.get("x5t#S256").or_else(|| header.get("x5t")).and_then(Value::as_str).ok_or("no thumbprint")?;
    if !app.cert_thumbprints_s256.iter().any(|t| t == thumb) {
        return Err("certificate not registered");
    }
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if s("iss") != Some(client_id) || s("sub") != Some(client_id) {
        return Err("iss/sub is not the client id");
    }
    if s("aud") != Some(audience) {
        return Err("wrong audience");
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    if claims.get("exp").and_then(Value::as_u64).unwrap_or(0) <= now {
        return Err("expired");
    }
    Ok(())
}

fn sign(key: &ring::hmac::Key, claims: &Value) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let tag = ring::hmac::sign(key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn verify(key: &ring::hmac::Key, token: &str) -> Option<Value> {
    let (input, sig) = token.rsplit_once('.')?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    ring::hmac::verify(key, input.as_bytes(), &sig).ok()?;
    let claims = URL_SAFE_NO_PAD.decode(input.split('.').nth(1)?).ok()?;
    serde_json::from_slice(&claims).ok()
}

// ---------------------------------------------------------------------------------------------
// Graph
// ---------------------------------------------------------------------------------------------

fn graph_error(status: u16, code: &str, message: &str, client_request_id: Option<&str>) -> Answer {
    let request_id = guid();
    let mut a = json_answer(
        status,
        &json!({"error": {"code": code, "message": message, "innerError": {
            "date": httpdate::fmt_http_date(SystemTime::now()), "request-id": request_id,
            "client-request-id": client_request_id.map_or_else(guid, str::to_string)}}}),
    );
    graph_headers(&mut a, &request_id, client_request_id);
    a
}

fn graph_headers(a: &mut Answer, request_id: &str, client_request_id: Option<&str>) {
    let h = a.headers_mut();
    let set = |h: &mut http::HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(h, "request-id", request_id);
    set(h, "client-request-id", &client_request_id.map_or_else(guid, str::to_string));
    set(h, "date", &httpdate::fmt_http_date(SystemTime::now()));
    set(
        h,
        "x-ms-ags-diagnostic",
        r#"{"ServerInfo":{"DataCenter":"Loopback","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"FAKE","ADSiteName":"LBK"}}"#,
    );
}

enum Api {
    Beta,
    V1,
}

async fn graph(
    shared: &Shared,
    path: &str,
    query: Option<&str>,
    headers: &http::HeaderMap,
    entry: &mut LogEntry,
) -> Result<Answer, Reject> {
    let crid = entry.client_request_id.clone();
    let crid = crid.as_deref();
    if path == "/beta/informationProtection/policy/labels"
        || path.starts_with("/beta/users/") && path.ends_with("/informationProtection/policy/labels")
    {
        return Ok(graph_error(404, "itemNotFound", "The information protection policy API is retired.", crid));
    }
    let (api, rest) = if let Some(r) = path.strip_prefix("/beta/security/informationProtection/sensitivityLabels") {
        (Api::Beta, r)
    } else if let Some(r) = path.strip_prefix("/v1.0/security/dataSecurityAndGovernance/sensitivityLabels") {
        (Api::V1, r)
    } else if let Some(r) = path
        .strip_prefix("/beta/users/")
        .and_then(|r| r.split_once('/'))
        .and_then(|(_, r)| r.strip_prefix("security/informationProtection/sensitivityLabels"))
    {
        (Api::Beta, r)
    } else {
        return Ok(graph_error(400, "BadRequest", &format!("Resource not found for the segment '{path}'."), crid));
    };
    // Authentication first, as Graph does.
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let unauthorized = |message: &str| {
        let mut a = graph_error(401, "InvalidAuthenticationToken", message, crid);
        a.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#),
        );
        a
    };
    let Some(token) = bearer else { return Ok(unauthorized("Access token is empty.")) };
    let Some(claims) = verify(&shared.key, token) else { return Ok(unauthorized("CompactToken parsing failed with error code: 80049217")) };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    if claims.get("exp").and_then(Value::as_u64).unwrap_or(0) <= now {
        return Ok(unauthorized("Access token has expired or is not yet valid."));
    }
    let tid = claims.get("tid").and_then(Value::as_str).unwrap_or("").to_string();
    entry.tenant = Some(tid.clone());
    let skiptoken = query.and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "$skiptoken").map(|(_, v)| v.into_owned()));
    if query.is_some_and(|q| q.contains("isScopedToUser")) {
        return Ok(graph_error(400, "BadRequest", "isScopedToUser is not supported for tenant-level requests.", crid));
    }
    let generation = shared.lock().generation;
    let offset = match &skiptoken {
        None => 0,
        Some(t) => match open_skiptoken(&shared.key, t, generation) {
            Some(o) => o,
            None => return Ok(graph_error(400, "BadRequest", "The skip token is invalid or has expired.", crid)),
        },
    };
    let page_size = shared.lock().world.page_size.max(1);
    let page_number = offset / page_size + 1;
    let mut next_loop = false;
    match take_fault(shared, Route::Labels, Some(&tid), Some(page_number)) {
        Some(FaultAction::Status { status, code, message, retry_after, .. }) => {
            let default_code = match status {
                429 => "TooManyRequests",
                403 => "Authorization_RequestDenied",
                503 => "serviceNotAvailable",
                404 => "itemNotFound",
                _ => "UnknownError",
            };
            let mut a = graph_error(status, code.as_deref().unwrap_or(default_code), message.as_deref().unwrap_or("Scripted fault."), crid);
            if let Some(ra) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                a.headers_mut().insert(header::RETRY_AFTER, ra);
            }
            return Ok(a);
        }
        Some(FaultAction::DelayMs(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Some(FaultAction::Malformed { status }) => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"{\"@odata.context\": \"trunc")));
            *r.status_mut() = StatusCode::from_u16(status.unwrap_or(200)).unwrap_or(StatusCode::OK);
            return Ok(r);
        }
        Some(FaultAction::ExpiredToken) => return Ok(unauthorized("Access token has expired or is not yet valid.")),
        Some(FaultAction::Reset) => return Err(Reject("scripted reset".into())),
        Some(FaultAction::NextLinkLoop) => next_loop = true,
        Some(FaultAction::EmptyPage) => {
            let token = seal_skiptoken(&shared.key, offset, generation);
            let (collection, context) = collection_of(&api, &shared.base);
            let mut a = json_answer(
                200,
                &json!({"@odata.context": context, "value": [],
                "@odata.nextLink": format!("{}{collection}?$skiptoken={token}", shared.base)}),
            );
            graph_headers(&mut a, &guid(), crid);
            return Ok(a);
        }
        None => {}
    }
    let inner = shared.lock();
    let Some(tenant) = inner.world.tenants.iter().find(|t| t.id.eq_ignore_ascii_case(&tid)) else {
        return Ok(unauthorized("Access token validation failure. Invalid audience."));
    };
    let roles: Vec<&str> =
        claims.get("roles").and_then(Value::as_array).map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let needed = match api {
        Api::Beta => "InformationProtectionPolicy.Read.All",
        Api::V1 => "SensitivityLabels.Read.All",
    };
    if !roles.contains(&needed) {
        return Ok(graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", crid));
    }
    if tenant.no_label_policy {
        return Ok(graph_error(404, "itemNotFound", "No label policy was found for the tenant.", crid));
    }
    let by_id = |id: &str| tenant.labels.iter().find(|l| l.id.eq_ignore_ascii_case(id));
    let single = rest.trim_start_matches('/');
    let request_id = guid();
    let base = shared.base.clone();
    let (collection, context) = collection_of(&api, &base);
    if !single.is_empty() {
        let Some(l) = by_id(single) else { return Ok(graph_error(404, "itemNotFound", "The label was not found.", crid)) };
        let v = match api {
            Api::Beta => beta_label(l, &by_id),
            Api::V1 => v1_label(l, &tenant.labels),
        };
        let mut a = json_answer(200, &v);
        graph_headers(&mut a, &request_id, crid);
        return Ok(a);
    }
    // v1.0 pages over top-level labels (sublabels nested); beta over every label, flat.
    // v1.0 honours `$filter` on `id in (...)` and `applicableTo has '...'` (joined by `and`).
    let filter = query.and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "$filter").map(|(_, v)| v.into_owned()));
    let clauses = match (&api, &filter) {
        (_, None) => Vec::new(),
        (Api::Beta, Some(_)) => return Ok(graph_error(400, "BadRequest", "$filter is not supported on this resource.", crid)),
        (Api::V1, Some(f)) => match parse_filter(f) {
            Some(c) => c,
            None => return Ok(graph_error(400, "BadRequest", &format!("Invalid filter clause: {f}"), crid)),
        },
    };
    let items: Vec<Value> = match api {
        Api::Beta => tenant.labels.iter().map(|l| beta_label(l, &by_id)).collect(),
        Api::V1 => tenant
            .labels
            .iter()
            .filter(|l| l.parent.as_deref().and_then(&by_id).is_none() || !clauses.is_empty())
            .filter(|l| clauses.iter().all(|c| c.matches(l)))
            .map(|l| v1_label(l, &tenant.labels))
            .collect(),
    };
    let page: Vec<Value> = items.iter().skip(offset).take(page_size).cloned().collect();
    let mut body = json!({"@odata.context": context, "value": page});
    if next_loop {
        body["@odata.nextLink"] = json!(format!("{base}{collection}{}", query.map(|q| format!("?{q}")).unwrap_or_default()));
    } else if offset + page_size < items.len() {
        let token = seal_skiptoken(&shared.key, offset + page_size, inner.generation);
        // The link carries the original parameters, as Graph's do.
        let filter_param = filter
            .as_deref()
            .map_or_else(String::new, |f| format!("$filter={}&", form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>()));
        body["@odata.nextLink"] = json!(format!("{base}{collection}?{filter_param}$skiptoken={token}"));
    }
    let mut a = json_answer(200, &body);
    graph_headers(&mut a, &request_id, crid);
    Ok(a)
}

/// One `$filter` clause of the v1.0 label list.
enum Clause {
    IdIn(Vec<String>),
    ApplicableToHas(String),
}

impl Clause {
    fn matches(&self, l: &FakeLabel) -> bool {
        match self {
            Clause::IdIn(ids) => ids.iter().any(|i| i.eq_ignore_ascii_case(&l.id)),
            Clause::ApplicableToHas(f) => l.content_formats.iter().any(|c| c.eq_ignore_ascii_case(f)),
        }
    }
}

fn parse_filter(filter: &str) -> Option<Vec<Clause>> {
    let quoted = |s: &str| s.trim().strip_prefix('\'').and_then(|s| s.strip_suffix('\'')).map(str::to_string);
    filter
        .split(" and ")
        .map(|clause| {
            let c = clause.trim();
            if let Some(list) = c.strip_prefix("id in (").and_then(|r| r.strip_suffix(')')) {
                return list.split(',').map(quoted).collect::<Option<Vec<_>>>().map(Clause::IdIn);
            }
            c.strip_prefix("applicableTo has ").and_then(quoted).map(Clause::ApplicableToHas)
        })
        .collect()
}

fn collection_of(api: &Api, base: &str) -> (&'static str, String) {
    match api {
        Api::Beta => (
            "/beta/security/informationProtection/sensitivityLabels",
            format!("{base}/beta/$metadata#security/informationProtection/sensitivityLabels"),
        ),
        Api::V1 => (
            "/v1.0/security/dataSecurityAndGovernance/sensitivityLabels",
            format!("{base}/v1.0/$metadata#security/dataSecurityAndGovernance/sensitivityLabel"),
        ),
    }
}

/// An opaque, signed `$skiptoken` (offset, world generation, a nonce so two links to the same
/// offset differ).
fn seal_skiptoken(key: &ring::hmac::Key, offset: usize, generation: u64) -> String {
    let mut nonce = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce);
    let input = format!("{offset}.{generation}.{}", u32::from_le_bytes(nonce));
    let tag = ring::hmac::sign(key, input.as_bytes());
    URL_SAFE_NO_PAD.encode(format!("{input}.{}", URL_SAFE_NO_PAD.encode(&tag.as_ref()[..12])))
}

fn open_skiptoken(key: &ring::hmac::Key, token: &str, generation: u64) -> Option<usize> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let (input, tag) = raw.rsplit_once('.')?;
    let expected = ring::hmac::sign(key, input.as_bytes());
    if URL_SAFE_NO_PAD.encode(&expected.as_ref()[..12]) != tag {
        return None;
    }
    let mut parts = input.split('.');
    let offset = parts.next()?.parse().ok()?;
    (parts.next()?.parse::<u64>().ok()? == generation).then_some(offset)
}

fn beta_label<'a>(l: &FakeLabel, by_id: &dyn Fn(&str) -> Option<&'a FakeLabel>) -> Value {
    let parent = l.parent.as_deref().map(|p| match by_id(p) {
        Some(pl) => json!({"id": pl.id, "name": pl.name, "description": pl.description, "color": pl.color,
            "sensitivity": pl.sensitivity, "tooltip": pl.tooltip, "isActive": pl.is_active, "isAppliable": false,
            "contentFormats": pl.content_formats, "hasProtection": pl.has_protection}),
        None => json!({"id": p, "name": "", "isAppliable": false}),
    });
    let mut v = json!({"id": l.id, "name": l.name, "description": l.description, "color": l.color, "sensitivity": l.sensitivity,
        "tooltip": l.tooltip, "isActive": l.is_active, "isAppliable": l.parent.is_some(), "contentFormats": l.content_formats,
        "hasProtection": l.has_protection, "parent": parent});
    if l.parent.is_some() {
        v["parent@odata.context"] =
            json!("https://graph.microsoft.com/beta/$metadata#security/informationProtection/sensitivityLabels('x')/parent/$entity");
    }
    v
}

fn v1_label(l: &FakeLabel, all: &[FakeLabel]) -> Value {
    let subs: Vec<Value> =
        all.iter().filter(|s| s.parent.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(&l.id))).map(|s| v1_label(s, all)).collect();
    json!({"id": l.id, "name": l.name, "displayName": l.display_name.clone().unwrap_or_else(|| l.name.clone()),
        "description": l.description, "color": l.color, "priority": 100 - l.sensitivity, "sensitivity": l.sensitivity,
        "toolTip": l.tooltip, "isEnabled": l.is_active, "isEndpointProtectionEnabled": true, "autoTooltip": "",
        "actionSource": "manual", "applicableTo": l.content_formats.join(","), "hasProtection": l.has_protection,
        "sublabels": subs})
}
