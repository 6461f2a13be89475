//! `/api/v1/` write side: changes to accounts and cloud apps, applied by a [`ConfigStore`] (the
//! binary wires the config file behind it). Every change needs `If-Match` with the ETag of the
//! config (the SHA-256 of its bytes): 428 without it, 412 when the file changed since (by hand
//! too). Errors are `{"errors": [{"field": …, "message": …}]}`; a configuration that cannot be
//! written answers 409 `config_read_only`.
//!
//! - `POST /api/v1/accounts` (add), `PUT /api/v1/accounts/{name}` (edit, rename included),
//!   `DELETE /api/v1/accounts/{name}`, `POST /api/v1/accounts/{name}/duplicate`,
//!   `POST /api/v1/accounts/{name}/enable` and `/disable` (label retrieval on or off);
//! - `GET /api/v1/cloud-apps` (apps and tags, with the rules naming each),
//!   `POST /api/v1/cloud-apps` (add), `PUT /api/v1/cloud-apps/{name}` (edit, rename included),
//!   `DELETE /api/v1/cloud-apps/{name}`, `POST /api/v1/cloud-apps/{name}/tags` (`{"tag": …}`),
//!   `DELETE /api/v1/cloud-apps/{name}/tags/{tag}`, `PUT /api/v1/cloud-app-tags/{tag}`
//!   (`{"name": …}`: renamed on every app) and `DELETE /api/v1/cloud-app-tags/{tag}` (removed
//!   from every app). A change that would leave a rule naming an app or tag nothing defines any
//!   more is refused (400), naming the rule.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// One change to an account, as the API received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountOp {
    /// `POST /api/v1/accounts`.
    Add,
    /// `PUT /api/v1/accounts/{name}`.
    Edit(String),
    /// `DELETE /api/v1/accounts/{name}`.
    Delete(String),
    /// `POST /api/v1/accounts/{name}/duplicate`.
    Duplicate(String),
    /// `POST /api/v1/accounts/{name}/enable` (true) and `/disable` (false).
    Retrieval(String, bool),
}

/// One change to the cloud apps, as the API received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudAppOp {
    /// `POST /api/v1/cloud-apps`.
    Add,
    /// `PUT /api/v1/cloud-apps/{name}`.
    Edit(String),
    /// `DELETE /api/v1/cloud-apps/{name}`.
    Delete(String),
    /// `POST /api/v1/cloud-apps/{name}/tags`.
    Tag(String),
    /// `DELETE /api/v1/cloud-apps/{name}/tags/{tag}`.
    Untag(String, String),
    /// `PUT /api/v1/cloud-app-tags/{tag}`.
    RenameTag(String),
    /// `DELETE /api/v1/cloud-app-tags/{tag}`.
    DeleteTag(String),
}

/// A change the API routes to the [`ConfigStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// To `[[accounts]]`.
    Account(AccountOp),
    /// To `[[cloud_apps]]`.
    CloudApp(CloudAppOp),
}

impl Change {
    /// Whether it creates an entry (201).
    fn creates(&self) -> bool {
        matches!(self, Change::Account(AccountOp::Add | AccountOp::Duplicate(_)) | Change::CloudApp(CloudAppOp::Add))
    }
}

/// A field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The key, when the problem is about one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Why a change was refused.
#[derive(Debug, Clone)]
pub enum ChangeError {
    /// 400: the body or a field is not valid.
    Invalid(Vec<FieldError>),
    /// 404, with what was not found.
    NotFound(String),
    /// 409 `config_read_only`.
    ReadOnly(String),
    /// 412: the ETag does not match.
    Stale,
    /// 500: unexpected I/O, with the OS error text.
    Io(String),
}

/// The configuration behind the admin API: changes applied to it, and what the API reads from
/// the file itself (the cloud apps).
pub trait ConfigStore: Send + Sync {
    /// The configuration's ETag now (`None` when there is no file to write).
    fn etag(&self) -> Option<String>;
    /// Applies `change` with the JSON `body`, if the configuration is still `if_match`; on
    /// success, the new ETag. `who` (the token's name) goes to the change's audit record.
    fn apply(&self, change: Change, body: &[u8], if_match: &str, who: &str) -> Result<String, ChangeError>;
    /// The cloud apps and tags as configured now, as JSON, with the ETag of the same bytes.
    fn cloud_apps(&self) -> Result<(serde_json::Value, Option<String>), ChangeError>;
}

type Answer = http::Response<Full<Bytes>>;

fn json(status: StatusCode, body: &impl Serialize) -> Answer {
    let bytes = serde_json::to_vec_pretty(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = http::Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn errors(status: StatusCode, list: Vec<FieldError>) -> Answer {
    #[derive(Serialize)]
    struct Errors {
        errors: Vec<FieldError>,
    }
    json(status, &Errors { errors: list })
}

fn one(status: StatusCode, field: Option<&str>, message: &str) -> Answer {
    errors(status, vec![FieldError { field: field.map(str::to_string), message: message.to_string() }])
}

/// Runs one change and answers it.
pub fn change(store: &dyn ConfigStore, change: Change, body: &[u8], if_match: Option<&str>, who: &str) -> Answer {
    let Some(if_match) = if_match else {
        return one(StatusCode::PRECONDITION_REQUIRED, None, "If-Match with the ETag of the configuration is required");
    };
    let status = if change.creates() { StatusCode::CREATED } else { StatusCode::OK };
    match store.apply(change, body, if_match, who) {
        Ok(etag) => {
            let mut r = json(status, &serde_json::json!({"ok": true}));
            if let Ok(v) = HeaderValue::from_str(&etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
        Err(ChangeError::Invalid(list)) => errors(StatusCode::BAD_REQUEST, list),
        Err(ChangeError::NotFound(what)) => one(StatusCode::NOT_FOUND, Some("name"), &what),
        Err(ChangeError::ReadOnly(why)) => {
            #[derive(Serialize)]
            struct ReadOnly {
                error: &'static str,
                errors: Vec<FieldError>,
            }
            json(StatusCode::CONFLICT, &ReadOnly { error: "config_read_only", errors: vec![FieldError { field: None, message: why }] })
        }
        Err(ChangeError::Stale) => {
            let mut r = one(StatusCode::PRECONDITION_FAILED, None, "the configuration changed since it was read: read it again");
            if let Some(v) = store.etag().and_then(|e| HeaderValue::from_str(&e).ok()) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
        Err(ChangeError::Io(why)) => one(StatusCode::INTERNAL_SERVER_ERROR, None, &why),
    }
}

/// `GET /api/v1/cloud-apps`: the apps and tags of the configuration file, with its ETag.
pub fn cloud_apps(store: &dyn ConfigStore) -> Answer {
    match store.cloud_apps() {
        Ok((list, etag)) => {
            let mut r = json(StatusCode::OK, &list);
            if let Some(v) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
        Err(ChangeError::Io(why)) | Err(ChangeError::ReadOnly(why)) => one(StatusCode::INTERNAL_SERVER_ERROR, None, &why),
        Err(_) => one(StatusCode::INTERNAL_SERVER_ERROR, None, "the cloud apps cannot be read"),
    }
}

/// `{prefix}`, `{prefix}/{name}` or `{prefix}/{name}/{tail}` (trailing slashes ignored): the
/// decoded name, when there is one, and the rest.
fn under<'p>(path: &'p str, prefix: &str) -> Option<(Option<String>, &'p str)> {
    let rest = path.strip_prefix(prefix)?.trim_end_matches('/');
    if rest.is_empty() {
        return Some((None, ""));
    }
    let rest = rest.strip_prefix('/')?;
    let (raw, tail) = rest.split_once('/').unwrap_or((rest, ""));
    Some((Some(crate::api::percent_decode(raw).filter(|n| !n.is_empty())?), tail))
}

/// The change a request asks for, if it is one.
pub fn change_of(method: &http::Method, path: &str) -> Option<Change> {
    let method = method.as_str();
    if let Some(found) = under(path, "/api/v1/accounts") {
        let op = match (method, found) {
            ("POST", (None, _)) => AccountOp::Add,
            ("PUT", (Some(name), "")) => AccountOp::Edit(name),
            ("DELETE", (Some(name), "")) => AccountOp::Delete(name),
            ("POST", (Some(name), "duplicate")) => AccountOp::Duplicate(name),
            ("POST", (Some(name), "enable")) => AccountOp::Retrieval(name, true),
            ("POST", (Some(name), "disable")) => AccountOp::Retrieval(name, false),
            _ => return None,
        };
        return Some(Change::Account(op));
    }
    if let Some(found) = under(path, "/api/v1/cloud-app-tags") {
        let op = match (method, found) {
            ("PUT", (Some(tag), "")) => CloudAppOp::RenameTag(tag),
            ("DELETE", (Some(tag), "")) => CloudAppOp::DeleteTag(tag),
            _ => return None,
        };
        return Some(Change::CloudApp(op));
    }
    let op = match (method, under(path, "/api/v1/cloud-apps")?) {
        ("POST", (None, _)) => CloudAppOp::Add,
        ("PUT", (Some(name), "")) => CloudAppOp::Edit(name),
        ("DELETE", (Some(name), "")) => CloudAppOp::Delete(name),
        ("POST", (Some(name), "tags")) => CloudAppOp::Tag(name),
        ("DELETE", (Some(name), tail)) => {
            let tag = crate::api::percent_decode(tail.strip_prefix("tags/")?).filter(|t| !t.is_empty() && !t.contains('/'))?;
            CloudAppOp::Untag(name, tag)
        }
        _ => return None,
    };
    Some(Change::CloudApp(op))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn changes_are_recognised_with_or_without_a_trailing_slash_and_names_are_decoded() {
        let app = |n: &str| n.to_string();
        assert_eq!(change_of(&Method::POST, "/api/v1/accounts/"), Some(Change::Account(AccountOp::Add)));
        assert_eq!(change_of(&Method::PUT, "/api/v1/accounts/Contoso%20EU/"), Some(Change::Account(AccountOp::Edit(app("Contoso EU")))));
        assert_eq!(change_of(&Method::POST, "/api/v1/accountsX"), None);
        assert_eq!(change_of(&Method::GET, "/api/v1/cloud-apps"), None);
        assert_eq!(change_of(&Method::DELETE, "/api/v1/cloud-apps/a%2Fb"), Some(Change::CloudApp(CloudAppOp::Delete(app("a/b")))));
        assert_eq!(
            change_of(&Method::DELETE, "/api/v1/cloud-apps/Box/tags/Un%20sanctioned/"),
            Some(Change::CloudApp(CloudAppOp::Untag(app("Box"), app("Un sanctioned"))))
        );
        assert_eq!(change_of(&Method::DELETE, "/api/v1/cloud-apps/Box/tags/a/b"), None, "a raw slash is not part of a tag");
        assert_eq!(
            change_of(&Method::PUT, "/api/v1/cloud-app-tags/Personal/"),
            Some(Change::CloudApp(CloudAppOp::RenameTag(app("Personal"))))
        );
        assert_eq!(change_of(&Method::PUT, "/api/v1/cloud-app-tags/a/b"), None);
        assert_eq!(change_of(&Method::DELETE, "/api/v1/cloud-app-tags/"), None);
        assert_eq!(change_of(&Method::PATCH, "/api/v1/cloud-apps/Box"), None);
    }
}
