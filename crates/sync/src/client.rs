//! The HTTP side: app-only tokens from the identity platform (client-credentials grant, cached
//! per account, one request in flight), every page of the tenant's label list from Graph, and the
//! retry rules of docs/graph-labels.md §4.3 (Retry-After honoured, otherwise exponential backoff
//! with full jitter, bounded; a 401 re-acquires the token once and resumes where it stopped).

use crate::clock::{unix, Clock};
use crate::config::{AccountConfig, Credential};
use crate::failure::{aadsts_in, classify_aadsts, Effect, ErrorKind, Failure};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How hard one request is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff step (doubled each retry, full jitter).
    pub base: Duration,
    /// Largest backoff step.
    pub cap: Duration,
    /// A `Retry-After` longer than this abandons the cycle (the next one tries again).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Pages followed at most in one retrieval (a `nextLink` loop is cut here).
    pub max_pages: usize,
    /// Extra CA certificates (PEM) trusted for the identity platform and Graph.
    pub extra_roots_pem: Vec<String>,
    /// Largest answer read (a label page is a few KiB; this bounds a hostile or broken peer).
    pub max_body: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_pages: 100,
            extra_roots_pem: Vec::new(),
            max_body: 8 << 20,
        }
    }
}

/// An access token (prints redacted).
#[derive(Clone)]
pub struct Token {
    value: String,
    refresh_at: SystemTime,
    /// The tenant GUID the token was issued in (`tid`), when it says.
    pub tenant: Option<String>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token {{ [redacted], tenant: {:?} }}", self.tenant)
    }
}

/// One account's token, reused until shortly before it expires; the lock keeps one token
/// request in flight per account.
#[derive(Debug, Default)]
pub struct TokenCache {
    slot: tokio::sync::Mutex<Option<Token>>,
}

impl TokenCache {
    /// A valid token: the cached one, or a new one (`fresh` forces a new one).
    pub async fn get(&self, client: &Client, account: &AccountConfig, credential: &Credential, fresh: bool) -> Result<Token, Failure> {
        let mut slot = self.slot.lock().await;
        if let Some(t) = slot.as_ref() {
            if !fresh && client.clock.now() < t.refresh_at {
                return Ok(t.clone());
            }
        }
        *slot = None;
        let token = client.request_token(account, credential).await?;
        *slot = Some(token.clone());
        Ok(token)
    }
}

/// The identity platform + Graph client shared by all accounts.
pub struct Client {
    http: reqwest::Client,
    pub(crate) clock: Arc<dyn Clock>,
    options: ClientOptions,
}

/// An answer, read whole.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An extra CA certificate is not usable.
    #[error("bad CA certificate: {0}")]
    Ca(String),
    /// TLS or the HTTP client could not be set up.
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

const USER_AGENT: &str = concat!("labelgate/", env!("CARGO_PKG_VERSION"));

impl Client {
    /// A client verifying TLS against the webpki roots plus `options.extra_roots_pem`.
    pub fn new(options: ClientOptions, clock: Arc<dyn Clock>) -> Result<Client, ClientError> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for pem in &options.extra_roots_pem {
            use rustls_pki_types::pem::PemObject;
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| ClientError::Ca(e.to_string()))?;
                roots.add(cert).map_err(|e| ClientError::Ca(e.to_string()))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Build(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(options.request_timeout)
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Client { http, clock, options })
    }

    /// Sends a request (rebuilt for each attempt), retrying throttling, 5xx and network failures.
    async fn send(&self, what: &str, make: impl Fn() -> reqwest::RequestBuilder) -> Result<Answer, Failure> {
        let retry = &self.options.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let last = attempt >= retry.max_attempts;
            let received = match make().header("retry-attempt", (attempt - 1).to_string()).send().await {
                Ok(resp) => receive(resp, self.options.max_body).await,
                Err(e) => Err(e),
            };
            let (failure, wait) = match received {
                Err(e) => (network_failure(what, &e), self.backoff(attempt)),
                Ok((status, _, None)) => {
                    let too_large = format!("{what}: the answer is larger than {} bytes", self.options.max_body);
                    return Err(Failure::new(Effect::Transient, ErrorKind::Malformed, too_large).http(status));
                }
                Ok((status, headers, Some(body))) => {
                    let answer = Answer { status, headers, body };
                    if !matches!(status, 429 | 500 | 502 | 503 | 504) {
                        return Ok(answer);
                    }
                    let retry_after = answer.header("retry-after").and_then(|v| self.parse_retry_after(&v));
                    let kind = if status == 429 { ErrorKind::Throttled } else { ErrorKind::Unavailable };
                    let mut f =
                        Failure::new(Effect::Transient, kind, format!("{what}: HTTP {status} after {attempt} attempt(s)")).http(status);
                    f.error.request_id = answer.header("request-id");
                    f.error.graph_code = graph_code(&answer.body);
                    if let Some(ra) = retry_after {
                        if ra > retry.max_retry_after {
                            f.error.message = format!("{what}: HTTP {status} with Retry-After {}s; this cycle gives up", ra.as_secs());
                            return Err(f);
                        }
                    }
                    (f, retry_after.unwrap_or_else(|| self.backoff(attempt)))
                }
            };
            if last {
                return Err(failure);
            }
            self.clock.sleep(wait).await;
        }
    }

    /// Full jitter: a random wait in [0, min(cap, base * 2^(attempt-1))], at least 100 ms.
    fn backoff(&self, attempt: u32) -> Duration {
        let retry = &self.options.retry;
        let ceiling = retry.base.saturating_mul(1u32 << (attempt - 1).min(16)).min(retry.cap);
        let mut r = [0u8; 4];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r);
        let fraction = f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX);
        ceiling.mul_f64(fraction).max(Duration::from_millis(100))
    }

    fn parse_retry_after(&self, value: &str) -> Option<Duration> {
        if let Ok(secs) = value.trim().parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = httpdate::parse_http_date(value.trim()).ok()?;
        Some(at.duration_since(self.clock.now()).unwrap_or(Duration::ZERO))
    }

    /// Client-credentials grant for one account.
    pub async fn request_token(&self, account: &AccountConfig, credential: &Credential) -> Result<Token, Failure> {
        let url = format!("{}/{}/oauth2/v2.0/token", account.authority_url.trim_end_matches('/'), account.tenant_id);
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", account.client_id.clone()),
            ("scope", account.scope.clone()),
            ("grant_type", "client_credentials".to_string()),
        ];
        match credential {
            Credential::Secret(s) => form.push(("client_secret", s.expose().to_string())),
            Credential::Certificate(c) => {
                let jwt = c
                    .assertion(&account.client_id, &url, unix(self.clock.now()))
                    .map_err(|e| Failure::new(Effect::ValidationFailed, ErrorKind::Configuration, e.to_string()))?;
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string()));
                form.push(("client_assertion", jwt));
            }
        }
        let body = form_urlencode(&form);
        let answer = self
            .send("token request", || {
                self.http
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("accept", "application/json")
                    .header("client-request-id", crate::new_guid())
                    .body(body.clone())
            })
            .await?;
        let json: Option<Value> = serde_json::from_slice(&answer.body).ok();
        if answer.status == 200 {
            let token = json.as_ref().and_then(|j| j.get("access_token")).and_then(Value::as_str);
            let Some(token) = token.filter(|t| !t.is_empty()) else {
                return Err(Failure::new(Effect::Transient, ErrorKind::Malformed, "token response without access_token").http(200));
            };
            let expires_in = json.as_ref().and_then(|j| j.get("expires_in")).and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
            let lifetime = Duration::from_secs(expires_in.unwrap_or(3599));
            // Renewed 5 minutes before expiry (or half way through a short-lived token).
            let margin = Duration::from_secs(300).min(lifetime / 2);
            return Ok(Token { value: token.to_string(), refresh_at: self.clock.now() + lifetime - margin, tenant: jwt_tenant(token) });
        }
        let Some(json) = json else {
            return Err(Failure::new(
                Effect::Transient,
                ErrorKind::Malformed,
                format!("token endpoint: HTTP {} without a JSON error body", answer.status),
            )
            .http(answer.status));
        };
        let error = json.get("error").and_then(Value::as_str).unwrap_or("").to_string();
        let code = json
            .get("error_codes")
            .and_then(|c| c.get(0))
            .and_then(Value::as_u64)
            .and_then(|c| u32::try_from(c).ok())
            .or_else(|| json.get("error_description").and_then(Value::as_str).and_then(aadsts_in));
        let (effect, kind) = code.and_then(classify_aadsts).unwrap_or(match (error.as_str(), answer.status) {
            ("temporarily_unavailable" | "server_error", _) => (Effect::Transient, ErrorKind::Unavailable),
            (_, 400 | 401) => (Effect::ValidationFailed, ErrorKind::Authentication),
            _ => (Effect::Transient, ErrorKind::Unavailable),
        });
        let summary = match code {
            Some(c) => format!("token request refused: {error} (AADSTS{c}): {}", aadsts_meaning(c)),
            None => format!("token request refused: {error}"),
        };
        let mut f = Failure::new(effect, kind, summary).http(answer.status);
        f.error.aadsts = code;
        f.error.request_id = json.get("trace_id").and_then(Value::as_str).map(str::to_string);
        Err(f)
    }

    /// Every label object of the tenant (all pages), or only the first page for a validation.
    /// A 401 re-acquires the token once and resumes at the same page.
    pub async fn fetch_labels(
        &self,
        account: &AccountConfig,
        credential: &Credential,
        tokens: &TokenCache,
        first_page_only: bool,
    ) -> Result<(Vec<Value>, Option<String>), Failure> {
        let base = account.graph_url.trim_end_matches('/').to_string();
        let origin = origin_of(&base);
        let mut url = format!("{base}{}", account.api.path());
        let mut token = tokens.get(self, account, credential, false).await?;
        let mut refreshed = false;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut first = true;
        for _ in 0..self.options.max_pages {
            seen.insert(url.clone());
            let bearer = format!("Bearer {}", token.value);
            let answer = self
                .send("label list", || {
                    self.http
                        .get(&url)
                        .header("authorization", &bearer)
                        .header("accept", "application/json")
                        .header("client-request-id", crate::new_guid())
                })
                .await?;
            match answer.status {
                200 => {}
                401 if !refreshed => {
                    refreshed = true;
                    token = tokens.get(self, account, credential, true).await?;
                    continue;
                }
                // No label policy in the tenant: an empty list.
                404 if first => return Ok((Vec::new(), token.tenant)),
                status => return Err(graph_failure(status, &answer)),
            }
            let Ok(page) = serde_json::from_slice::<Value>(&answer.body) else {
                return Err(Failure::new(Effect::Transient, ErrorKind::Malformed, "label list: the answer is not JSON").http(200));
            };
            let Some(values) = page.get("value").and_then(Value::as_array) else {
                return Err(Failure::new(Effect::Transient, ErrorKind::Malformed, "label list: the answer has no value array").http(200));
            };
            out.extend(values.iter().cloned());
            first = false;
            if first_page_only {
                return Ok((out, token.tenant));
            }
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                None => return Ok((out, token.tenant)),
                Some(next) if seen.contains(next) => return Ok((out, token.tenant)),
                Some(next) if origin_of(next) != origin => {
                    // The bearer token goes to the configured Graph host only.
                    return Err(Failure::new(Effect::Transient, ErrorKind::Malformed, "label list: nextLink points to another host"));
                }
                Some(next) => url = next.to_string(),
            }
        }
        Err(Failure::new(Effect::Transient, ErrorKind::Malformed, format!("label list: more than {} pages", self.options.max_pages)))
    }
}

/// Status, headers and the whole body, the body `None` when it passes `max` bytes (reading stops
/// there).
async fn receive(mut resp: reqwest::Response, max: usize) -> Result<(u16, reqwest::header::HeaderMap, Option<Vec<u8>>), reqwest::Error> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > max {
            return Ok((status, headers, None));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, headers, Some(body)))
}

fn network_failure(what: &str, e: &reqwest::Error) -> Failure {
    let why = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "connection failed"
    };
    Failure::new(Effect::Transient, ErrorKind::Network, format!("{what}: {why}"))
}

fn graph_code(body: &[u8]) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    json.get("error")?.get("code")?.as_str().map(str::to_string)
}

fn graph_failure(status: u16, answer: &Answer) -> Failure {
    let code = graph_code(&answer.body);
    let (effect, kind, what) = match status {
        401 => (Effect::ValidationFailed, ErrorKind::Authentication, "Graph refused the token again after a new one was acquired"),
        403 => (
            Effect::ValidationFailed,
            ErrorKind::Permission,
            "Graph denied access (InformationProtectionPolicy.Read.All or SensitivityLabels.Read.All granted with admin consent?)",
        ),
        400 => (Effect::Transient, ErrorKind::BadRequest, "Graph rejected the request"),
        _ => (Effect::Transient, ErrorKind::Unavailable, "Graph answered an unexpected status"),
    };
    let mut f = Failure::new(effect, kind, format!("label list: HTTP {status}: {what}")).http(status);
    f.error.graph_code = code;
    f.error.request_id = answer.header("request-id");
    f
}

fn origin_of(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
    url[..end].to_ascii_lowercase()
}

/// The `tid` claim of a JWT access token (read for labelling labels with their tenant, never
/// for an authorisation decision).
fn jwt_tenant(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let json: Value = serde_json::from_slice(&bytes).ok()?;
    json.get("tid")?.as_str().map(|s| s.to_ascii_lowercase())
}

fn aadsts_meaning(code: u32) -> &'static str {
    match code {
        7000215 => "invalid client secret",
        7000222 => "the client secret has expired",
        7000218 | 7000216 => "no client secret or assertion in the request",
        700027 | 50012 | 700030 => "the client assertion was not accepted",
        700016 => "the application was not found in the tenant",
        7000112 => "the application is disabled",
        70011 | 1002012 => "invalid scope",
        500011 => "Microsoft Graph is not available in the tenant",
        53003 | 530032 => "blocked by Conditional Access",
        900023 => "the tenant identifier is not valid",
        90002 => "tenant not found",
        5000225 => "the tenant is blocked for inactivity",
        5000224 => "the tenant is decommissioned",
        90055 | 50196 => "throttled",
        _ => "see https://login.microsoftonline.com/error",
    }
}

/// `application/x-www-form-urlencoded` (RFC 3986 unreserved characters kept, spaces as `+`).
fn form_urlencode(pairs: &[(&str, String)]) -> String {
    fn enc(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(k, &mut out);
        out.push('=');
        enc(v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_urlencode(&[("a", "x y".into()), ("scope", "https://g/.default".into())]),
            "a=x+y&scope=https%3A%2F%2Fg%2F.default"
        );
    }

    #[test]
    fn origins() {
        assert_eq!(origin_of("http://127.0.0.1:8080/beta/x?y"), "http://127.0.0.1:8080");
        assert_eq!(origin_of("https://GRAPH.microsoft.com"), "https://graph.microsoft.com");
    }
}
