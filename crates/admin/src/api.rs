//! `/api/v1/`: the MIP accounts as admins see them, read side. Every request carries
//! `Authorization: Bearer <token>` (compared in constant time). Answers never carry a secret:
//! account views are built from names, ids, statuses and error codes only.
//!
//! - `GET /api/v1/accounts[?q=text]`: every account (search over name, tenant, client id, status)
//! - `GET /api/v1/accounts/{name}`: one account
//! - `GET /api/v1/accounts/{name}/labels`: its labels (JSON)
//! - `GET /api/v1/accounts/{name}/labels.csv`: the same as a CSV download
//! - `POST /api/v1/accounts/{name}/refresh`: retrieve now (202)

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::Full;
use labelgate_catalog::Label;
use labelgate_sync::{AccountView, Syncer};
use serde::Serialize;
use serde_json::json;

type Answer = http::Response<Full<Bytes>>;

fn json_answer(status: StatusCode, body: &impl Serialize) -> Answer {
    let bytes = serde_json::to_vec_pretty(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = http::Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn problem(status: StatusCode, message: &str) -> Answer {
    json_answer(status, &json!({"error": message}))
}

/// The credentials of an `Authorization: Bearer …` value (the scheme matched
/// case-insensitively, RFC 9110 §11.1).
fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Whether `authorization` carries the API token.
pub fn authorized(authorization: Option<&str>, token: &str) -> bool {
    let Some(given) = authorization.and_then(bearer) else { return false };
    same(given, token)
}

/// Compared in constant time over the digests (lengths leak nothing either).
fn same(given: &str, token: &str) -> bool {
    let a = ring::digest::digest(&ring::digest::SHA256, given.as_bytes());
    let b = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    a.as_ref().iter().zip(b.as_ref()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token `authorization` carries, among `tokens` (every one compared, in constant time).
pub fn signed_in<'a>(authorization: Option<&str>, tokens: &'a [crate::NamedToken]) -> Option<&'a crate::NamedToken> {
    let given = authorization.and_then(bearer)?;
    tokens.iter().fold(None, |found, t| if same(given, &t.value) && found.is_none() { Some(t) } else { found })
}

/// Failed sign-ins per client address: past `LIMIT` within `WINDOW`, the address waits out
/// the rest of the window (429 with Retry-After).
#[derive(Default)]
pub struct Throttle {
    failures: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (std::time::Instant, u32)>>,
}

impl Throttle {
    const LIMIT: u32 = 10;
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

    /// A failed sign-in from `peer`.
    pub fn failed(&self, peer: std::net::IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        map.retain(|_, (since, _)| now.duration_since(*since) < Self::WINDOW);
        if map.len() >= 10_000 && !map.contains_key(&peer) {
            // Full: the oldest entry goes (never every counter at once).
            if let Some(oldest) = map.iter().min_by_key(|(_, (since, _))| *since).map(|(ip, _)| *ip) {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(peer).or_insert((now, 0));
        entry.1 += 1;
    }

    /// How long `peer` must wait, when it failed too often.
    pub fn blocked(&self, peer: std::net::IpAddr) -> Option<std::time::Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (since, n) = map.get(&peer)?;
        let left = Self::WINDOW.checked_sub(since.elapsed())?;
        (*n >= Self::LIMIT).then_some(left)
    }
}

/// The account list entry the issue specifies, plus what helps an admin act on it.
#[derive(Serialize)]
struct AccountEntry<'a> {
    name: &'a str,
    tenant_id: &'a str,
    client_id: &'a str,
    status: labelgate_sync::Status,
    label_count: usize,
    last_retrieval: &'a Option<String>,
    last_attempt: &'a Option<String>,
    last_error: &'a Option<labelgate_sync::LastError>,
    retrieval: bool,
    api: &'a str,
    refresh_interval: &'a str,
    credential: &'a str,
}

impl<'a> From<&'a AccountView> for AccountEntry<'a> {
    fn from(v: &'a AccountView) -> Self {
        AccountEntry {
            name: &v.name,
            tenant_id: &v.tenant_id,
            client_id: &v.client_id,
            status: v.status,
            label_count: v.label_count,
            last_retrieval: &v.last_retrieval,
            last_attempt: &v.last_attempt,
            last_error: &v.last_error,
            retrieval: v.retrieval,
            api: v.api,
            refresh_interval: &v.refresh_interval,
            credential: v.credential,
        }
    }
}

/// One label as the API and the CSV show it.
#[derive(Serialize)]
struct LabelEntry<'a> {
    id: &'a str,
    name: &'a str,
    display_name: &'a str,
    parent: Option<&'a str>,
    parent_name: Option<&'a str>,
    priority: i64,
    active: bool,
    deleted: bool,
    protection: bool,
    tooltip: Option<&'a str>,
    description: Option<&'a str>,
    color: Option<&'a str>,
    content_formats: &'a [String],
    tenant: Option<&'a str>,
}

fn entries(labels: &[Label]) -> Vec<LabelEntry<'_>> {
    labels
        .iter()
        .map(|l| LabelEntry {
            id: &l.id,
            name: &l.name,
            display_name: &l.display_name,
            parent: l.parent.as_deref(),
            parent_name: l.parent.as_deref().and_then(|p| labels.iter().find(|x| x.id == p)).map(|p| p.display_name.as_str()),
            priority: l.priority,
            active: l.is_active,
            deleted: l.deleted,
            protection: l.has_protection,
            tooltip: l.tooltip.as_deref(),
            description: l.description.as_deref(),
            color: l.color.as_deref(),
            content_formats: &l.content_formats,
            tenant: l.tenant.as_deref(),
        })
        .collect()
}

pub use labelgate_catalog::csv_cell;

/// The labels of an account as CSV (CRLF line ends, header row first).
pub fn labels_csv(labels: &[Label]) -> String {
    let mut out = String::from("id,name,display_name,parent,priority,active,protection,tooltip,deleted\r\n");
    for e in entries(labels) {
        let row = [
            e.id.to_string(),
            e.name.to_string(),
            e.display_name.to_string(),
            e.parent_name.or(e.parent).unwrap_or("").to_string(),
            e.priority.to_string(),
            e.active.to_string(),
            e.protection.to_string(),
            e.tooltip.unwrap_or("").to_string(),
            e.deleted.to_string(),
        ];
        out.push_str(&row.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

/// A path segment, percent-decoded (`Contoso%20EU` → `Contoso EU`; a `+` stays a `+`).
pub(crate) fn percent_decode(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment).decode_utf8().ok().map(|s| s.into_owned())
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// `POST /api/v1/accounts/{name}/validate`: a token and one label request now (no retrieval,
/// no status change), the result in the answer.
pub async fn validate(syncer: &Syncer, raw_name: &str) -> Answer {
    let Some(name) = percent_decode(raw_name) else { return problem(StatusCode::BAD_REQUEST, "the account name is not valid UTF-8") };
    match syncer.validate(&name).await {
        None => problem(StatusCode::NOT_FOUND, "no such account"),
        Some(Ok(labels)) => json_answer(StatusCode::OK, &json!({"account": name, "valid": true, "labels_on_first_page": labels})),
        Some(Err(error)) => json_answer(StatusCode::OK, &json!({"account": name, "valid": false, "error": error})),
    }
}

/// Routes one `/api/v1/` request (already authorised).
pub fn route(syncer: &Syncer, method: &Method, path: &str, query: Option<&str>) -> Answer {
    let Some(rest) = path.strip_prefix("/api/v1/accounts") else { return problem(StatusCode::NOT_FOUND, "no such API route") };
    if rest.is_empty() || rest == "/" {
        if method != Method::GET && method != Method::HEAD {
            return problem(StatusCode::METHOD_NOT_ALLOWED, "GET only");
        }
        let q = query_param(query, "q").map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty());
        let views = syncer.accounts();
        let list: Vec<AccountEntry> = views
            .iter()
            .filter(|v| match &q {
                None => true,
                Some(q) => [v.name.as_str(), &v.tenant_id, &v.client_id, v.status.as_str()].iter().any(|f| f.to_lowercase().contains(q)),
            })
            .map(AccountEntry::from)
            .collect();
        return json_answer(StatusCode::OK, &list);
    }
    let rest = rest.trim_start_matches('/');
    let (raw_name, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(name) = percent_decode(raw_name) else { return problem(StatusCode::BAD_REQUEST, "the account name is not valid UTF-8") };
    let Some(view) = syncer.account(&name) else { return problem(StatusCode::NOT_FOUND, "no such account") };
    match (method.as_str(), tail) {
        // One account: its list entry plus its recent status changes.
        ("GET" | "HEAD", "") => {
            #[derive(Serialize)]
            struct Detail<'a> {
                #[serde(flatten)]
                entry: AccountEntry<'a>,
                history: &'a [labelgate_sync::Transition],
            }
            json_answer(StatusCode::OK, &Detail { entry: AccountEntry::from(&view), history: &view.history })
        }
        ("GET" | "HEAD", "labels") => {
            let labels = syncer.labels(&name).unwrap_or_default();
            json_answer(StatusCode::OK, &entries(&labels))
        }
        ("GET" | "HEAD", "labels.csv") => {
            let labels = syncer.labels(&name).unwrap_or_default();
            let mut r = http::Response::new(Full::new(Bytes::from(labels_csv(&labels))));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
            let file: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}-labels.csv\"")) {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        ("POST", "refresh") => {
            syncer.request_refresh(&name);
            json_answer(StatusCode::ACCEPTED, &json!({"account": name, "refresh": "started"}))
        }
        (_, "" | "labels" | "labels.csv" | "refresh") => problem(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here"),
        _ => problem(StatusCode::NOT_FOUND, "no such API route"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2"), "'-2", "a negative priority reads as text, not a formula");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn bearer_tokens() {
        assert!(authorized(Some("Bearer abc"), "abc"));
        assert!(!authorized(Some("Bearer abd"), "abc"));
        assert!(!authorized(Some("Basic abc"), "abc"));
        assert!(!authorized(None, "abc"));
    }

    #[test]
    fn path_segments_are_decoded_strictly() {
        assert_eq!(percent_decode("Contoso%20EU").as_deref(), Some("Contoso EU"));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"), "a path keeps its plus signs");
        assert_eq!(percent_decode("%FF"), None, "not UTF-8: refused, not guessed");
    }

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(query_param(Some("q=Contoso%20EU&x=1"), "q").as_deref(), Some("Contoso EU"));
        assert_eq!(query_param(Some("q=a+b"), "q").as_deref(), Some("a b"));
        assert_eq!(query_param(Some("x=1"), "q"), None);
    }
}
