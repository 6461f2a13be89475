//! Audit records: one JSON line per inspected transaction, to a file or standard output. A
//! record that cannot be written is counted and said loudly, never silently lost.

use serde::Serialize;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One file of an inspected transaction.
#[derive(Debug, Clone, Serialize)]
pub struct AuditFile {
    /// Multipart filename, when given; for a file inside another, the names joined with ▸.
    pub name: Option<String>,
    /// For a file inside another (an archive member, an attachment): the names from the
    /// uploaded file down, as an array (names may hold any character). Absent for the
    /// uploaded files themselves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    /// Bytes.
    pub size: u64,
    /// The extractor's kind.
    pub kind: String,
    /// Effective labels.
    pub labels: Vec<AuditLabel>,
    /// Why it could not be inspected, if so.
    pub unscannable: Option<String>,
    /// Hex SHA-256 of the file, for labeled or unscannable files (every file with
    /// `[inspection] hash_all`); absent for clean files and bodies too large to read whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// One label on an audited file.
#[derive(Debug, Clone, Serialize)]
pub struct AuditLabel {
    /// Label GUID.
    pub id: String,
    /// Display name from the catalog, when the label is known.
    pub name: Option<String>,
    /// Tenant the file says the label belongs to.
    pub tenant: Option<String>,
}

/// One inspected transaction.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC time.
    pub time: String,
    /// Client address.
    pub client: String,
    /// Authenticated user, if any.
    pub user: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Destination URL (query stripped unless configured).
    pub url: String,
    /// Destination cloud app.
    pub app: Option<String>,
    /// The files.
    pub files: Vec<AuditFile>,
    /// `allow`, `audit` or `block`.
    pub action: String,
    /// Deciding rule.
    pub rule: Option<String>,
    /// Why.
    pub reason: String,
    /// Inspection time in microseconds.
    pub inspect_us: u64,
    /// For a file sent in pieces: the upload session it was reassembled from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<AuditSession>,
}

/// The upload session of a file sent in pieces (one record per session).
#[derive(Debug, Clone, Serialize)]
pub struct AuditSession {
    /// The protocol (`google_resumable`, `graph_upload_session`, `tus`, `s3_multipart`, …).
    pub protocol: String,
    /// Requests that carried pieces of the file.
    pub pieces: u64,
    /// Bytes of the file held when it was decided.
    pub bytes: u64,
    /// Why the file could not be reassembled, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// An audit record could not be written.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the audit record could not be written")]
pub struct AuditLost;

/// Where audit records go.
pub struct AuditSink {
    out: Mutex<Box<dyn Write + Send>>,
    failures: AtomicU64,
    written: AtomicU64,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink").field("written", &self.written()).field("failures", &self.failures()).finish()
    }
}

impl AuditSink {
    /// Records to any writer (a file opened for append, standard output, a test buffer).
    pub fn new(out: Box<dyn Write + Send>) -> AuditSink {
        AuditSink { out: Mutex::new(out), failures: AtomicU64::new(0), written: AtomicU64::new(0) }
    }

    /// Writes one record as a JSON line; `Err` when it was lost (counted and said already).
    pub fn write(&self, record: &AuditRecord) -> Result<(), AuditLost> {
        let line = match serde_json::to_string(record) {
            Ok(l) => l,
            Err(e) => {
                self.fail(&e.to_string());
                return Err(AuditLost);
            }
        };
        let result = match self.out.lock() {
            Ok(mut out) => writeln!(out, "{line}").and_then(|_| out.flush()),
            Err(_) => Err(std::io::Error::other("audit writer poisoned")),
        };
        match result {
            Ok(()) => {
                self.written.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.fail(&e.to_string());
                Err(AuditLost)
            }
        }
    }

    fn fail(&self, why: &str) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        eprintln!("labelgate: AUDIT RECORD LOST ({n} so far): {why}");
    }

    /// Records written.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Records that could not be written.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// Now as RFC 3339 UTC, to the second (`2026-11-27T15:10:00Z`).
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_format() {
        let t = super::now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
