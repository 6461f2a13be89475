//! `/api/v1/` write side: account changes, applied by an [`AccountStore`] (the binary wires the
//! config file behind it). Every change needs `If-Match` with the ETag of the config (the
//! SHA-256 of its bytes): 428 without it, 412 when the file changed since (by hand too). Errors
//! are `{"errors": [{"field": …, "message": …}]}`; a configuration that cannot be written
//! answers 409 `config_read_only`.
//!
//! - `POST /api/v1/accounts` (add), `PUT /api/v1/accounts/{name}` (edit, rename included),
//!   `DELETE /api/v1/accounts/{name}`, `POST /api/v1/accounts/{name}/duplicate`,
//!   `POST /api/v1/accounts/{name}/enable` and `/disable` (label retrieval on or off).

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// One change, as the API received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountOp<'a> {
    /// `POST /api/v1/accounts`.
    Add,
    /// `PUT /api/v1/accounts/{name}`.
    Edit(&'a str),
    /// `DELETE /api/v1/accounts/{name}`.
    Delete(&'a str),
    /// `POST /api/v1/accounts/{name}/duplicate`.
    Duplicate(&'a str),
    /// `POST /api/v1/accounts/{name}/enable` (true) and `/disable` (false).
    Retrieval(&'a str, bool),
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
    /// 404.
    NotFound,
    /// 409 `config_read_only`.
    ReadOnly(String),
    /// 412: the ETag does not match.
    Stale,
    /// 500: unexpected I/O, with the OS error text.
    Io(String),
}

/// Applies account changes to the configuration behind the admin API.
pub trait AccountStore: Send + Sync {
    /// The configuration's ETag now (`None` when there is no file to write).
    fn etag(&self) -> Option<String>;
    /// Applies `op` with the JSON `body`, if the configuration is still `if_match`; on success,
    /// the new ETag. `who` (the token's name) goes to the change's audit record.
    fn apply(&self, op: AccountOp<'_>, body: &[u8], if_match: &str, who: &str) -> Result<String, ChangeError>;
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
pub fn change(store: &dyn AccountStore, op: AccountOp<'_>, body: &[u8], if_match: Option<&str>, who: &str) -> Answer {
    let Some(if_match) = if_match else {
        return one(StatusCode::PRECONDITION_REQUIRED, None, "If-Match with the ETag of the configuration is required");
    };
    match store.apply(op, body, if_match, who) {
        Ok(etag) => {
            let status = if op == AccountOp::Add || matches!(op, AccountOp::Duplicate(_)) { StatusCode::CREATED } else { StatusCode::OK };
            let mut r = json(status, &serde_json::json!({"ok": true}));
            if let Ok(v) = HeaderValue::from_str(&etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
        Err(ChangeError::Invalid(list)) => errors(StatusCode::BAD_REQUEST, list),
        Err(ChangeError::NotFound) => one(StatusCode::NOT_FOUND, Some("name"), "no such account"),
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
