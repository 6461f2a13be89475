//! What went wrong talking to the identity platform or Graph, classified by what it means for
//! the account (section 2.5 and 4.2 of docs/graph-labels.md), with the identifiers support asks
//! for. Built from status codes and error codes only: never from a request body, so it cannot
//! carry a secret.

use serde::{Deserialize, Serialize};

/// The kind of failure, as reported to admins and counted in metrics (a bounded set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The credential or app was refused (wrong/expired secret, unknown or disabled app, bad
    /// scope or tenant syntax, a Graph token refused twice).
    Authentication,
    /// Graph answered 403: the app lacks the permission (or admin consent).
    Permission,
    /// The tenant is not found, blocked for inactivity or decommissioned.
    TenantInactive,
    /// The account's own configuration cannot be used (missing secret, unreadable key).
    Configuration,
    /// 429 / throttled, after the allowed retries.
    Throttled,
    /// 5xx or an identity-platform transient error, after the allowed retries.
    Unavailable,
    /// Connection refused/reset, timeout, TLS or DNS failure.
    Network,
    /// An answer that is not the documented JSON.
    Malformed,
    /// Graph answered 400 to our request.
    BadRequest,
}

impl ErrorKind {
    /// Every kind (metrics are pre-registered for each).
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Authentication,
        ErrorKind::Permission,
        ErrorKind::TenantInactive,
        ErrorKind::Configuration,
        ErrorKind::Throttled,
        ErrorKind::Unavailable,
        ErrorKind::Network,
        ErrorKind::Malformed,
        ErrorKind::BadRequest,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Authentication => "authentication",
            ErrorKind::Permission => "permission",
            ErrorKind::TenantInactive => "tenant_inactive",
            ErrorKind::Configuration => "configuration",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Network => "network",
            ErrorKind::Malformed => "malformed",
            ErrorKind::BadRequest => "bad_request",
        }
    }
}

/// What a failure does to the account's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Validation Failed.
    ValidationFailed,
    /// Tenant Inactive.
    TenantInactive,
    /// Tenant not found (AADSTS90002): Validation Failed if the account never validated,
    /// Tenant Inactive if it did.
    TenantNotFound,
    /// The status stays; the next cycle tries again.
    Transient,
}

/// The last error of an account, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// A one-line explanation (built by labelgate, never copied from a request).
    pub message: String,
    /// The AADSTS code of an identity-platform error.
    pub aadsts: Option<u32>,
    /// HTTP status of the failing answer.
    pub http_status: Option<u16>,
    /// Graph's `error.code`.
    pub graph_code: Option<String>,
    /// Graph's `request-id` (or the identity platform's trace id), for Microsoft support.
    pub request_id: Option<String>,
    /// When it happened (RFC 3339, UTC).
    pub at: String,
}

/// A classified failure.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Its effect on the status.
    pub effect: Effect,
    /// What the admin sees.
    pub error: LastError,
}

impl Failure {
    pub(crate) fn new(effect: Effect, kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            effect,
            error: LastError {
                kind,
                message: message.into(),
                aadsts: None,
                http_status: None,
                graph_code: None,
                request_id: None,
                at: String::new(),
            },
        }
    }

    pub(crate) fn http(mut self, status: u16) -> Failure {
        self.error.http_status = Some(status);
        self
    }
}

/// The effect and kind of an identity-platform error code (docs/graph-labels.md §2.5).
pub fn classify_aadsts(code: u32) -> Option<(Effect, ErrorKind)> {
    use Effect::*;
    Some(match code {
        7000215 | 7000222 | 7000218 | 7000216 | 700027 | 50012 | 700030 | 700016 | 7000112 | 70011 | 1002012 | 500011 | 53003 | 530032
        | 900023 => (ValidationFailed, ErrorKind::Authentication),
        90002 => (TenantNotFound, ErrorKind::TenantInactive),
        5000225 | 5000224 => (TenantInactive, ErrorKind::TenantInactive),
        90055 | 50196 => (Transient, ErrorKind::Throttled),
        90033 | 90006 | 90024 | 50000 | 50033 => (Transient, ErrorKind::Unavailable),
        _ => return None,
    })
}

/// The first `AADSTSnnnn` code in a description.
pub fn aadsts_in(text: &str) -> Option<u32> {
    let at = text.find("AADSTS")? + 6;
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(aadsts_in("AADSTS7000215: Invalid client secret provided."), Some(7000215));
        assert_eq!(aadsts_in("nothing here"), None);
        assert_eq!(classify_aadsts(7000215), Some((Effect::ValidationFailed, ErrorKind::Authentication)));
        assert_eq!(classify_aadsts(5000224).map(|c| c.0), Some(Effect::TenantInactive));
        assert_eq!(classify_aadsts(90002).map(|c| c.0), Some(Effect::TenantNotFound));
        assert_eq!(classify_aadsts(50196).map(|c| c.0), Some(Effect::Transient));
        assert_eq!(classify_aadsts(1), None);
    }
}
