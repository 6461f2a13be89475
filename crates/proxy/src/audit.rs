//! Audit records: one JSON line per inspected transaction, to a file or standard output,
//! written off the async workers by a thread of their own. A record that cannot be written is
//! counted and said loudly, never silently lost; with `audit_required` the verdict waits for it.

use serde::Serialize;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

/// Records a writer thread takes at most at once before it flushes.
const BATCH: usize = 256;

/// Where audit records go: written inline (tests, embedding), or by a writer thread of their
/// own behind a bounded queue (`labelgate serve`), so no async worker ever blocks on standard
/// output or a disk. A full queue drops the record — counted with the failures and said loudly
/// — rather than stall every transaction; a transaction that needs its record
/// ([`AuditSink::write_acknowledged`], `audit_required`) waits for the writer's answer instead,
/// and a full queue is a loss it is told about.
pub struct AuditSink {
    mode: Mode,
    counts: Arc<Counts>,
}

enum Mode {
    Inline(Mutex<Box<dyn Write + Send>>),
    Thread { queue: std::sync::mpsc::SyncSender<Entry>, reopen: Arc<std::sync::atomic::AtomicBool> },
}

#[derive(Default)]
struct Counts {
    failures: AtomicU64,
    written: AtomicU64,
}

/// One line for the writer thread, with whom to tell how it went.
struct Entry {
    line: String,
    ack: Option<tokio::sync::oneshot::Sender<bool>>,
}

/// The writer thread's destination.
pub enum AuditDestination {
    /// Standard output (the default: the service manager's journal, a container's log).
    Stdout,
    /// A file, appended to (created 0600), reopened on [`AuditSink::reopen`] — logrotate's
    /// convention: rename the file, send SIGHUP, the next record goes to a new file.
    File(std::path::PathBuf),
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink").field("written", &self.written()).field("failures", &self.failures()).finish()
    }
}

fn open_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

impl AuditSink {
    /// Records written inline to any writer (a test buffer; an embedding with its own thread).
    pub fn new(out: Box<dyn Write + Send>) -> AuditSink {
        AuditSink { mode: Mode::Inline(Mutex::new(out)), counts: Arc::new(Counts::default()) }
    }

    /// Records written by a thread of their own to `destination`, queued up to `capacity`.
    /// Fails only when a file destination cannot be opened now.
    pub fn spawn(destination: AuditDestination, capacity: usize) -> std::io::Result<AuditSink> {
        let (queue, rx) = std::sync::mpsc::sync_channel::<Entry>(capacity.max(1));
        let counts = Arc::new(Counts::default());
        let reopen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut out: Box<dyn Write + Send> = match &destination {
            AuditDestination::Stdout => Box::new(std::io::stdout()),
            AuditDestination::File(path) => Box::new(open_append(path)?),
        };
        let (c, again) = (Arc::clone(&counts), Arc::clone(&reopen));
        std::thread::Builder::new().name("labelgate-audit".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                if again.swap(false, Ordering::SeqCst) {
                    if let AuditDestination::File(path) = &destination {
                        match open_append(path) {
                            Ok(f) => out = Box::new(f),
                            Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot reopen the audit file; still writing to the old one"),
                        }
                    }
                }
                // A batch: what is queued now, written, then flushed once, then acknowledged.
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let mut results = Vec::with_capacity(batch.len());
                for e in &batch {
                    results.push(writeln!(out, "{}", e.line));
                }
                let flushed = out.flush();
                for (entry, result) in batch.into_iter().zip(results) {
                    let ok = match result.and_then(|()| flushed.as_ref().map(|_| ()).map_err(|e| std::io::Error::new(e.kind(), e.to_string()))) {
                        Ok(()) => {
                            c.written.fetch_add(1, Ordering::Relaxed);
                            true
                        }
                        Err(e) => {
                            fail(&c, &e.to_string());
                            false
                        }
                    };
                    if let Some(ack) = entry.ack {
                        let _ = ack.send(ok);
                    }
                }
            }
        })?;
        Ok(AuditSink { mode: Mode::Thread { queue, reopen }, counts })
    }

    /// The next record goes to a freshly opened file (after logrotate renamed the old one).
    pub fn reopen(&self) {
        if let Some(flag) = self.reopen_flag() {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// The flag [`AuditSink::reopen`] sets, for a signal handler to set (SIGHUP).
    pub fn reopen_flag(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        match &self.mode {
            Mode::Thread { reopen, .. } => Some(Arc::clone(reopen)),
            Mode::Inline(_) => None,
        }
    }

    fn line(&self, record: &AuditRecord) -> Result<String, AuditLost> {
        serde_json::to_string(record).map_err(|e| {
            fail(&self.counts, &e.to_string());
            AuditLost
        })
    }

    /// Writes one record as a JSON line, without waiting for it: `Err` when it is lost now
    /// (inline: the write failed; threaded: the queue is full). A later write failure of the
    /// writer thread is counted and said, like every loss.
    pub fn write(&self, record: &AuditRecord) -> Result<(), AuditLost> {
        let line = self.line(record)?;
        match &self.mode {
            Mode::Inline(out) => self.write_inline(out, &line),
            Mode::Thread { queue, .. } => queue.try_send(Entry { line, ack: None }).map_err(|_| {
                fail(&self.counts, "the audit queue is full (the destination is slower than the traffic)");
                AuditLost
            }),
        }
    }

    /// Writes any JSON line to the trail (an admin's change to the configuration), queued like
    /// a record.
    pub fn write_value(&self, value: &serde_json::Value) -> Result<(), AuditLost> {
        let line = value.to_string();
        match &self.mode {
            Mode::Inline(out) => self.write_inline(out, &line),
            Mode::Thread { queue, .. } => queue.try_send(Entry { line, ack: None }).map_err(|_| {
                fail(&self.counts, "the audit queue is full (the destination is slower than the traffic)");
                AuditLost
            }),
        }
    }

    /// Writes one record and waits until it is written and flushed (`audit_required`): `Err`
    /// when it was not, or the queue is full.
    pub async fn write_acknowledged(&self, record: &AuditRecord) -> Result<(), AuditLost> {
        let line = self.line(record)?;
        match &self.mode {
            Mode::Inline(out) => self.write_inline(out, &line),
            Mode::Thread { queue, .. } => {
                let (ack, answer) = tokio::sync::oneshot::channel();
                if queue.try_send(Entry { line, ack: Some(ack) }).is_err() {
                    fail(&self.counts, "the audit queue is full (the destination is slower than the traffic)");
                    return Err(AuditLost);
                }
                match answer.await {
                    Ok(true) => Ok(()),
                    _ => Err(AuditLost),
                }
            }
        }
    }

    /// Writes one record from a blocking thread (an admin's configuration change, already
    /// applied): waits for room in the queue rather than dropping the record, then until it is
    /// written and flushed. `Err` when it was not.
    pub fn write_value_blocking(&self, value: &serde_json::Value) -> Result<(), AuditLost> {
        let line = value.to_string();
        match &self.mode {
            Mode::Inline(out) => self.write_inline(out, &line),
            Mode::Thread { queue, .. } => {
                let (ack, answer) = tokio::sync::oneshot::channel();
                if queue.send(Entry { line, ack: Some(ack) }).is_err() {
                    fail(&self.counts, "the audit writer has stopped");
                    return Err(AuditLost);
                }
                match answer.blocking_recv() {
                    Ok(true) => Ok(()),
                    _ => Err(AuditLost),
                }
            }
        }
    }

    fn write_inline(&self, out: &Mutex<Box<dyn Write + Send>>, line: &str) -> Result<(), AuditLost> {
        let result = match out.lock() {
            Ok(mut out) => writeln!(out, "{line}").and_then(|_| out.flush()),
            Err(_) => Err(std::io::Error::other("audit writer poisoned")),
        };
        match result {
            Ok(()) => {
                self.counts.written.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                fail(&self.counts, &e.to_string());
                Err(AuditLost)
            }
        }
    }

    /// Records written.
    pub fn written(&self) -> u64 {
        self.counts.written.load(Ordering::Relaxed)
    }

    /// Records lost (not written, or dropped with the queue full).
    pub fn failures(&self) -> u64 {
        self.counts.failures.load(Ordering::Relaxed)
    }
}

/// A lost record: counted, and said loudly.
fn fail(counts: &Counts, why: &str) {
    let n = counts.failures.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::error!(lost_so_far = n, reason = why, "AUDIT RECORD LOST");
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
