//! Files sent in pieces: resumable and multipart upload sessions (Google, Graph / OneDrive /
//! SharePoint, tus, S3, any `Content-Range` upload), reassembled and decided as one file.
//!
//! Pieces are grouped by the origin's upload session ([`labelgate_pieces::SessionKey`]: host and
//! session URL, never the client) and written into one sparse spool file per session at their
//! offsets (S3 parts side by side, one copy per upload of a part). Each piece passes through the
//! phases of any upload, with its own steps in between:
//!
//! `admit` → `receive` → `read alone` → `place` → (`assemble` → `inspect` → `decide` → `record`)
//! → `block` | `release`
//!
//! - **read alone**: a piece is read on its own for labels a whole file inside it would carry
//!   (so a labeled file cannot travel as one piece of a session that never completes); what is
//!   not a label (a truncated container) is nothing, a piece being no file.
//! - **place**: the piece joins its session's file. A session that cannot be reassembled — its
//!   start never seen (sent before a restart, through another replica, after expiry), bytes that
//!   disagree with bytes sent before, a piece too large to keep, no room for the session — is
//!   `incomplete` for policy, decided once and recorded once; its later requests get the same
//!   decision.
//! - **assemble / inspect / decide / record**: the request that completes the file (its last
//!   missing byte, `finalize`, CompleteMultipartUpload, a tus final concatenation) is held while
//!   the whole file is inspected like any upload; one audit record per session, with the file's
//!   SHA-256. A block answers 403 to it and to every later request of the session, so the origin
//!   never has the whole labeled file.
//!
//! Sessions are bounded: `max_upload_sessions` at once, `max_inspect` bytes each, the spool quota
//! shared with held bodies, and `upload_session_timeout_secs` of idleness, after which an
//! unfinished session is recorded `incomplete` and forgotten.

use crate::audit::AuditSession;
use crate::auth::User;
use crate::inspect::{self, Inspected};
use crate::server::{full, simple, Body, BoxError, State, Target};
use crate::spool::{Held, SpoolArea};
use crate::upload::{Decision, Intake, Upload, Who};
use crate::InspectionMode;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use labelgate_pieces::{Coverage, ListedPart, Part, PartList, Piece, Protocol, Recognised, SessionKey, Start};
use labelgate_policy::{Action, FileFacts, UnscannableReason};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest answer to a session-starting request read for the session's name, and the
/// largest CompleteMultipartUpload document.
const MAX_DOCUMENT: u64 = 1 << 20;

/// The upload sessions in progress.
pub(crate) struct Sessions {
    table: Mutex<HashMap<SessionKey, Arc<tokio::sync::Mutex<Session>>>>,
    max: std::sync::atomic::AtomicUsize,
    idle_ms: AtomicU64,
    /// When the table was last swept, in milliseconds since `epoch`.
    swept: AtomicU64,
    epoch: Instant,
}

/// One upload session.
struct Session {
    protocol: Protocol,
    name: Option<String>,
    total: Option<u64>,
    /// tus `Upload-Concat: partial`: complete, it waits for the final concatenation.
    partial: bool,
    stage: Stage,
    store: Option<Store>,
    pieces: u64,
    last_seen: Instant,
    /// Who sent the last piece: the record of a session that expires unfinished names them.
    last: Option<Sender>,
    /// Woken whenever a piece joins or the session is decided: a held piece waits on it.
    changed: Arc<tokio::sync::Notify>,
}

struct Sender {
    peer: SocketAddr,
    target: Target,
    user: Option<User>,
    method: http::Method,
    uri: http::Uri,
}

/// Where a session is.
enum Stage {
    /// Pieces arrive.
    Open,
    /// It cannot be reassembled: why, and the policy's decision once made.
    Incomplete { why: &'static str, decision: Option<Decision> },
    /// Blocked (its file, or a piece read alone): every later request is too.
    Blocked(Decision),
    /// Assembled, allowed, and accepted by the origin.
    Done,
}

/// What becomes of a request once its session has been updated.
enum Outcome {
    Block(Box<Decision>),
    Release,
    /// The file's last bytes while bytes before them are missing: held until they come.
    Wait,
    /// A shared resource is exhausted: 503, retry later.
    Unavailable(&'static str),
    /// Released; when the origin accepts it the session is done.
    Complete,
}

impl Sessions {
    pub(crate) fn new(max: usize, idle: Duration) -> Sessions {
        Sessions {
            table: Mutex::new(HashMap::new()),
            max: std::sync::atomic::AtomicUsize::new(max),
            idle_ms: AtomicU64::new(idle.as_millis() as u64),
            swept: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Reloaded bounds (sessions in progress keep their pieces).
    pub(crate) fn set_limits(&self, max: usize, idle: Duration) {
        self.max.store(max, Ordering::Relaxed);
        self.idle_ms.store(idle.as_millis() as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms.load(Ordering::Relaxed))
    }

    fn get(&self, key: &SessionKey) -> Option<Arc<tokio::sync::Mutex<Session>>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// The session under `key`, or `make()` added; when the table is full, `make()` in
    /// `incomplete` outside the table.
    fn get_or_insert(&self, key: &SessionKey, make: impl FnOnce() -> Session) -> Arc<tokio::sync::Mutex<Session>> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = table.get(key) {
            return Arc::clone(s);
        }
        let mut session = make();
        if table.len() >= self.max.load(Ordering::Relaxed) {
            // Room is made by forgetting the settled session seen longest ago (done, blocked or
            // decided incomplete: a later request of it is one whose start was never seen, which
            // policy decides as it decided the session).
            let settled = table
                .iter()
                .filter_map(|(k, s)| {
                    let s = s.try_lock().ok()?;
                    let settled = matches!(s.stage, Stage::Done | Stage::Blocked(_) | Stage::Incomplete { decision: Some(_), .. });
                    settled.then(|| (k.clone(), s.last_seen))
                })
                .min_by_key(|(_, seen)| *seen)
                .map(|(k, _)| k);
            match settled {
                Some(k) => {
                    table.remove(&k);
                }
                None => {
                    session.fail("no room for another upload session (max_upload_sessions)");
                    return Arc::new(tokio::sync::Mutex::new(session));
                }
            }
        }
        let s = Arc::new(tokio::sync::Mutex::new(session));
        table.insert(key.clone(), Arc::clone(&s));
        s
    }

    /// Whether a new session can be tracked: the table has room, or a settled session to forget.
    fn has_room(&self) -> bool {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.len() < self.max.load(Ordering::Relaxed)
            || table.values().any(|s| {
                s.try_lock().is_ok_and(|s| matches!(s.stage, Stage::Done | Stage::Blocked(_) | Stage::Incomplete { decision: Some(_), .. }))
            })
    }

    fn remove(&self, key: &SessionKey) {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// Sessions in the table.
    pub(crate) fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Drops sessions idle past the timeout (at most once a second); one that never completed is
/// recorded `incomplete`.
pub(crate) fn sweep(state: &State) {
    let sessions = &state.sessions;
    let now = sessions.epoch.elapsed().as_millis() as u64;
    let last = sessions.swept.load(Ordering::Relaxed);
    if now < last + 1000 || sessions.swept.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err() {
        return;
    }
    let expired: Vec<Arc<tokio::sync::Mutex<Session>>> = {
        let mut table = sessions.table.lock().unwrap_or_else(|e| e.into_inner());
        let mut gone = Vec::new();
        table.retain(|_, s| {
            // A session in use is not idle.
            let idle = s.try_lock().is_ok_and(|s| s.last_seen.elapsed() >= sessions.idle());
            if idle {
                gone.push(Arc::clone(s));
            }
            !idle
        });
        gone
    };
    for s in expired {
        if let Ok(mut s) = s.try_lock() {
            s.expire(state);
        }
    }
    if let Some(m) = &state.metrics {
        m.upload_sessions.set(sessions.len() as i64);
    }
}

impl Session {
    fn new(protocol: Protocol) -> Session {
        Session {
            protocol,
            name: None,
            total: None,
            partial: false,
            stage: Stage::Open,
            store: None,
            pieces: 0,
            last_seen: Instant::now(),
            last: None,
            changed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// A new upload under the same key: what was held is dropped, and pieces arrive again.
    fn restart(&mut self) {
        self.stage = Stage::Open;
        self.store = None;
        self.total = None;
        self.pieces = 1;
    }

    /// The session cannot be reassembled: its pieces are dropped.
    fn fail(&mut self, why: &'static str) {
        if matches!(self.stage, Stage::Open | Stage::Done) {
            self.stage = Stage::Incomplete { why, decision: None };
        }
        self.store = None;
    }

    fn touch(&mut self, upload: &Upload) {
        self.last_seen = Instant::now();
        self.pieces += 1;
        self.last = Some(Sender {
            peer: upload.peer,
            target: upload.target.clone(),
            user: upload.user.clone(),
            method: upload.parts.method.clone(),
            uri: upload.parts.uri.clone(),
        });
    }

    fn held(&self) -> u64 {
        self.store.as_ref().map_or(0, |s| s.coverage.len() + s.part_bytes())
    }

    fn audit(&self, bytes: u64, incomplete: Option<&str>) -> AuditSession {
        AuditSession { protocol: self.protocol.as_str().into(), pieces: self.pieces, bytes, incomplete: incomplete.map(str::to_string) }
    }

    /// The one file of an incomplete session.
    fn incomplete_files(&self) -> Vec<Inspected> {
        vec![Inspected {
            facts: FileFacts {
                name: self.name.clone(),
                kind: "unknown".into(),
                labels: Vec::new(),
                unscannable: Some(UnscannableReason::Incomplete),
                detected: Vec::new(),
            },
            path: Vec::new(),
            size: self.held(),
            sha256: None,
        }]
    }

    /// An incomplete session's decision: made (and recorded) once, by the first request that
    /// finds the session incomplete; `None` when its record is lost under `audit_required` (the
    /// next request of the session decides again).
    async fn incomplete_decision(&mut self, upload: &Upload) -> Option<Decision> {
        let held = self.held();
        let files = self.incomplete_files();
        let audit = |why: &str| self.audit(held, Some(why));
        match &self.stage {
            Stage::Incomplete { decision: Some(d), .. } => Some(d.clone()),
            Stage::Incomplete { why, decision: None } => {
                let why = *why;
                let d = upload.decide(&files);
                let recorded = upload.record_session(&files, &d, Some(audit(why))).await;
                if d.verdict.action != Action::Block && !recorded.may_release() {
                    return None;
                }
                self.stage = Stage::Incomplete { why, decision: Some(d.clone()) };
                Some(d)
            }
            _ => Some(upload.decide(&files)),
        }
    }

    /// A session dropped after its idle time: recorded when it never reached a decision.
    fn expire(&mut self, state: &State) {
        let why = match &self.stage {
            Stage::Open if self.pieces > 0 => "the upload session expired before its file was complete",
            Stage::Incomplete { why, decision: None } => why,
            _ => return,
        };
        let Some(last) = &self.last else { return };
        let files = self.incomplete_files();
        let who = Who { state, peer: last.peer, target: &last.target, user: last.user.as_ref() };
        let started = Instant::now();
        let decision = crate::upload::decide(&who, &last.method, &last.uri, &files, 0, started);
        // No verdict waits on this record: queued, never waited for.
        let record = crate::upload::audit_record(
            &who,
            last.method.as_str(),
            &last.uri,
            &files,
            &decision,
            started,
            Some(self.audit(self.held(), Some(why))),
        );
        let _ = state.audit.write(&record);
        self.store = None;
    }
}

/// The session a request belongs to, if any.
pub(crate) fn recognise(req: &Request<Incoming>, target: &Target) -> Option<Recognised> {
    let head = labelgate_pieces::RequestHead {
        method: req.method(),
        authority: target.authority.as_str(),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
        has_body: !http_body::Body::is_end_stream(req.body()),
    };
    labelgate_pieces::recognise(&head)
}

/// Runs one request of an upload session.
pub(crate) async fn run(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
    target: Target,
    user: Option<User>,
    recognised: Recognised,
) -> Response<Body> {
    sweep(&state);
    match recognised {
        Recognised::Start(start) => start_session(state, peer, req, target, user, start).await,
        Recognised::Piece(piece) => {
            let key = piece.key.clone();
            arrive(state, peer, req, target, user, key, Arrival::Bytes(piece)).await
        }
        Recognised::Part(part) => {
            let key = part.key.clone();
            arrive(state, peer, req, target, user, key, Arrival::Part(part)).await
        }
        Recognised::Complete(key, list) => complete_parts(state, peer, req, target, user, key, list).await,
        Recognised::Concat(keys) => concatenate(state, peer, req, target, user, keys).await,
        Recognised::Abort(key) => {
            let (parts, body) = req.into_parts();
            let response = crate::upstream::forward(&state, &target, parts, body.map_err(|e| Box::new(e) as BoxError).boxed(), None).await;
            if response.status().is_success() {
                state.sessions.remove(&key);
            }
            response
        }
    }
}

/// A piece of bytes or an S3 part.
enum Arrival {
    Bytes(Piece),
    Part(Part),
}

/// A piece's content: the body, decoded when it carries a `Content-Encoding`.
struct Content {
    memory: Option<Held>,
    file: Option<std::fs::File>,
    len: u64,
    /// Keeps a decoded body's spool alive.
    _decoded: Option<crate::spool::Spool>,
}

impl Content {
    /// The piece's content; `Ok(None)` when it cannot be kept (it does not decode within the
    /// limits), `Err` when the spool cannot hold what it decodes to (503).
    async fn of(upload: &mut Upload) -> Result<Option<Content>, inspect::Unavailable> {
        let area = Arc::clone(&upload.state.spool);
        let reading = inspect::Reading::new(&upload.state.settings.load().inspection);
        let decoded = inspect::decoded_body(&upload.parts.headers, &mut upload.spool, &area, &reading).await?;
        let mut spool = match decoded {
            Ok(Some(d)) => d,
            Ok(None) => {
                let memory = upload.spool.memory();
                let Ok(file) = upload.spool.reader() else { return Err(inspect::Unavailable("spool_read")) };
                return Ok(Some(Content { len: upload.spool.len(), memory, file, _decoded: None }));
            }
            Err(()) => return Ok(None),
        };
        let memory = spool.memory();
        let Ok(file) = spool.reader() else { return Err(inspect::Unavailable("spool_read")) };
        Ok(Some(Content { len: spool.len(), memory, file, _decoded: Some(spool) }))
    }

    fn handle(&self) -> Result<ContentHandle, ()> {
        Ok(ContentHandle {
            memory: self.memory.clone(),
            file: match &self.file {
                Some(f) => Some(f.try_clone().map_err(|_| ())?),
                None => None,
            },
        })
    }
}

/// What a blocking task reads a piece from.
struct ContentHandle {
    memory: Option<Held>,
    file: Option<std::fs::File>,
}

impl ContentHandle {
    /// Reads `buf.len()` bytes at `pos`.
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if let Some(f) = &self.file {
            return f.read_exact_at(buf, pos);
        }
        let mut at = 0u64;
        let mut filled = 0usize;
        for c in self.memory.iter().flat_map(|m| m.chunks().iter()) {
            let (start, end) = (at, at + c.len() as u64);
            at = end;
            let want = pos + filled as u64;
            if want >= end {
                continue;
            }
            let from = (want - start) as usize;
            let n = (c.len() - from).min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&c[from..from + n]);
            filled += n;
            if filled == buf.len() {
                return Ok(());
            }
        }
        if filled == buf.len() {
            Ok(())
        } else {
            Err(std::io::ErrorKind::UnexpectedEof.into())
        }
    }
}

/// One copy of an S3 part in the session file.
struct PartCopy {
    at: u64,
    len: u64,
    md5: String,
}

/// A session's bytes: a sparse spool file (0600, removed with the session), charged to the
/// spool quota by its length.
struct Store {
    area: Arc<SpoolArea>,
    file: tempfile::NamedTempFile,
    charged: u64,
    coverage: Coverage,
    parts: BTreeMap<String, Vec<PartCopy>>,
    appended: u64,
    /// SHA-256 of the file's bytes `0..hashed`, fed by pieces as they extend it (in order, the
    /// usual case, no byte is read back to hash the file).
    hash: ring::digest::Context,
    hashed: u64,
}

/// Why a piece could not join its session.
enum StoreError {
    Conflict,
    NoRoom,
}

impl Store {
    fn new(area: &Arc<SpoolArea>) -> Result<Store, StoreError> {
        let file = tempfile::Builder::new().prefix("upload-session-").tempfile_in(&area.dir).map_err(|_| StoreError::NoRoom)?;
        Ok(Store {
            area: Arc::clone(area),
            file,
            charged: 0,
            coverage: Coverage::new(),
            parts: BTreeMap::new(),
            appended: 0,
            hash: ring::digest::Context::new(&ring::digest::SHA256),
            hashed: 0,
        })
    }

    /// The hex SHA-256 of bytes `0..total`: what the pieces did not feed in order is read back.
    async fn digest(&mut self, total: u64) -> Option<String> {
        let mut hash = self.hash.clone();
        let from = self.hashed.min(total);
        if from < total {
            let file = self.file.as_file().try_clone().ok()?;
            hash = tokio::task::spawn_blocking(move || -> Option<ring::digest::Context> {
                let mut buf = vec![0u8; 256 * 1024];
                let mut at = from;
                while at < total {
                    let n = ((total - at) as usize).min(buf.len());
                    file.read_exact_at(&mut buf[..n], at).ok()?;
                    hash.update(&buf[..n]);
                    at += n as u64;
                }
                Some(hash)
            })
            .await
            .ok()??;
        }
        Some(hash.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Feeds a piece that extends the hashed prefix.
    fn feed(&mut self, offset: u64, content: &Content) {
        if offset != self.hashed {
            return;
        }
        let Some(held) = &content.memory else { return };
        for c in held.chunks() {
            self.hash.update(c);
        }
        self.hashed += content.len;
    }

    /// Charges the file's length up to `end` to the spool quota.
    fn charge(&mut self, end: u64) -> Result<(), StoreError> {
        if end <= self.charged {
            return Ok(());
        }
        let more = end - self.charged;
        let before = self.area.used.fetch_add(more, Ordering::SeqCst);
        if before + more > self.area.quota() {
            self.area.used.fetch_sub(more, Ordering::SeqCst);
            return Err(StoreError::NoRoom);
        }
        self.charged = end;
        Ok(())
    }

    fn part_bytes(&self) -> u64 {
        self.parts.values().flat_map(|v| v.last()).map(|p| p.len).sum()
    }

    /// Writes a piece at `offset`; bytes that overlap earlier ones must equal them.
    async fn write(&mut self, offset: u64, content: &Content) -> Result<(), StoreError> {
        let end = offset + content.len;
        self.charge(end)?;
        let overlaps = self.coverage.overlaps(offset, end);
        let source = content.handle().map_err(|_| StoreError::NoRoom)?;
        let dest = self.file.as_file().try_clone().map_err(|_| StoreError::NoRoom)?;
        let len = content.len;
        // The common piece: in memory, new bytes, small: its chunks written where they go, on
        // this worker (page-cache writes of a few hundred KiB cost less than a thread hop).
        if overlaps.is_empty() && content.file.is_none() && len <= INLINE_WRITE {
            copy(&source, len, &dest, offset, false).map_err(|_| StoreError::NoRoom)?;
            self.coverage.insert(offset, end);
            self.feed(offset, content);
            return Ok(());
        }
        let written = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let mut a = vec![0u8; 64 * 1024];
            let mut b = vec![0u8; 64 * 1024];
            for (s, e) in overlaps {
                let mut at = s;
                while at < e {
                    let n = ((e - at) as usize).min(a.len());
                    dest.read_exact_at(&mut a[..n], at).map_err(|_| StoreError::NoRoom)?;
                    source.read_at(at - offset, &mut b[..n]).map_err(|_| StoreError::NoRoom)?;
                    if a[..n] != b[..n] {
                        return Err(StoreError::Conflict);
                    }
                    at += n as u64;
                }
            }
            copy(&source, len, &dest, offset, false).map(|_| ()).map_err(|_| StoreError::NoRoom)
        })
        .await
        .unwrap_or(Err(StoreError::NoRoom));
        written?;
        self.coverage.insert(offset, end);
        self.feed(offset, content);
        Ok(())
    }

    /// Keeps one more copy of S3 part `number`, after the others.
    async fn append_part(&mut self, id: &str, content: &Content, max: u64) -> Result<(), StoreError> {
        let at = self.appended;
        if self.part_bytes() + content.len > max {
            return Err(StoreError::NoRoom);
        }
        self.charge(at + content.len)?;
        let source = content.handle().map_err(|_| StoreError::NoRoom)?;
        let dest = self.file.as_file().try_clone().map_err(|_| StoreError::NoRoom)?;
        let len = content.len;
        let md5 = tokio::task::spawn_blocking(move || copy(&source, len, &dest, at, true))
            .await
            .map_err(|_| StoreError::NoRoom)?
            .map_err(|_| StoreError::NoRoom)?;
        self.appended += len;
        self.parts.entry(id.to_string()).or_default().push(PartCopy { at, len, md5: md5.unwrap_or_default() });
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.area.used.fetch_sub(self.charged, Ordering::SeqCst);
    }
}

/// Pieces at most this large, held in memory, are written on the async worker.
const INLINE_WRITE: u64 = 1 << 20;

/// Copies `len` bytes of `source` into `dest` at `at`; with `md5`, the MD5 of what was copied
/// (an S3 part's ETag).
fn copy(source: &ContentHandle, len: u64, dest: &std::fs::File, at: u64, md5: bool) -> std::io::Result<Option<String>> {
    use md5::Digest;
    let mut hash = md5.then(md5::Md5::new);
    if source.file.is_none() {
        // Held chunks are written as they are: no copy buffer.
        let mut done = 0u64;
        for c in source.memory.iter().flat_map(|m| m.chunks().iter()) {
            let n = (c.len() as u64).min(len - done) as usize;
            if let Some(h) = hash.as_mut() {
                h.update(&c[..n]);
            }
            dest.write_all_at(&c[..n], at + done)?;
            done += n as u64;
            if done == len {
                break;
            }
        }
        if done < len {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        return Ok(hash.map(|h| h.finalize().iter().map(|b| format!("{b:02x}")).collect()));
    }
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(buf.len());
        source.read_at(done, &mut buf[..n])?;
        if let Some(h) = hash.as_mut() {
            h.update(&buf[..n]);
        }
        dest.write_all_at(&buf[..n], at + done)?;
        done += n as u64;
    }
    Ok(hash.map(|h| h.finalize().iter().map(|b| format!("{b:02x}")).collect()))
}

/// A file assembled for inspection, charged to the spool quota while it lives.
struct Assembled {
    file: std::fs::File,
    len: u64,
    charge: Option<(Arc<SpoolArea>, u64)>,
}

impl Drop for Assembled {
    fn drop(&mut self) {
        if let Some((area, n)) = &self.charge {
            area.used.fetch_sub(*n, Ordering::SeqCst);
        }
    }
}

/// Inspects a session's assembled file: every file in it, the file itself always hashed.
async fn inspect_assembled(
    upload: &Upload,
    name: Option<String>,
    file: &std::fs::File,
    len: u64,
    sha256: Option<String>,
) -> inspect::Found {
    let reading = inspect::Reading::new(&upload.state.settings.load().inspection);
    let Ok(handle) = file.try_clone() else { return Err(inspect::Unavailable("spool_write")) };
    let mut files = inspect::one_body(name, None, Some(handle), len, "", &upload.state.spool, &reading, 0).await?;
    if let Some(top) = files.iter_mut().find(|f| f.path.is_empty()) {
        if sha256.is_some() {
            top.sha256 = sha256;
        } else if top.sha256.is_none() {
            if let Ok(mut f) = file.try_clone() {
                top.sha256 = tokio::task::spawn_blocking(move || inspect::hash_file(&mut f).ok()).await.ok().flatten();
            }
        }
    }
    Ok(files)
}

/// read alone: what a piece carries on its own that only a whole file could show — labels, and
/// a container it found whole but could not see into (encrypted, unsupported, past the nesting
/// limits). A piece is no file: a truncated container in it (`malformed`, or `ambiguous` as a
/// PDF cut short often is) is nothing.
async fn read_alone(upload: &Upload, content: &Content) -> inspect::Found {
    let reading = inspect::Reading::new(&upload.state.settings.load().inspection);
    let file = content.file.as_ref().and_then(|f| f.try_clone().ok());
    let content_type = upload.parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let files = inspect::one_body(None, content.memory.clone(), file, content.len, content_type, &upload.state.spool, &reading, 0).await?;
    let whole_file_fact = |r: Option<UnscannableReason>| {
        matches!(r, Some(UnscannableReason::Encrypted | UnscannableReason::Unsupported | UnscannableReason::NestedLimit))
    };
    Ok(files
        .into_iter()
        .filter(|f| !f.facts.labels.is_empty() || whole_file_fact(f.facts.unscannable))
        .map(|mut f| {
            if !whole_file_fact(f.facts.unscannable) {
                f.facts.unscannable = None;
            }
            f
        })
        .collect())
}

/// A piece or part arrives: admit, receive, read alone, place, and the outcome.
async fn arrive(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
    target: Target,
    user: Option<User>,
    key: SessionKey,
    arrival: Arrival,
) -> Response<Body> {
    let protocol = match &arrival {
        Arrival::Bytes(p) => p.protocol,
        Arrival::Part(p) => p.protocol,
    };
    let mut upload = Upload::admit(Arc::clone(&state), peer, req, target, user, InspectionMode::Hold);
    // admit: a new session needs room in the table; without it the piece cannot be tracked, and
    // is refused for now (503) rather than let through or decided as incomplete.
    let known = state.sessions.get(&key);
    if known.is_none() && !state.sessions.has_room() {
        return crate::upload::unavailable(&upload.who(), upload.parts.method.as_str(), &upload.parts.uri, "upload_sessions");
    }
    // A session already blocked refuses at once, before its body is read; any other is in use
    // from now on (a slow piece does not let it expire under it).
    if let Some(s) = known {
        let mut s = s.lock().await;
        s.last_seen = Instant::now();
        if let Stage::Blocked(d) = &s.stage {
            let d = d.clone();
            return upload.block(&d);
        }
    }
    let intake = match upload.receive().await {
        Ok(i) => i,
        Err(response) => return response,
    };
    let content = match intake {
        Intake::Complete => match Content::of(&mut upload).await {
            Ok(c) => c,
            Err(inspect::Unavailable(why)) => {
                return crate::upload::unavailable(&upload.who(), upload.parts.method.as_str(), &upload.parts.uri, why)
            }
        },
        Intake::Oversize { .. } => None,
    };
    // read alone (not a whole file sent as its only piece: that is inspected as the file).
    let whole = matches!(&arrival, Arrival::Bytes(p) if p.offset == 0 && content.as_ref().is_some_and(|c| p.total == Some(c.len)));
    let alone = match &content {
        Some(c) if !whole => {
            // Reading a piece is an inspection like any other: it waits its turn, or 503.
            let Some(_turn) = crate::upload::inspection_turn(&state).await else {
                return crate::upload::unavailable(&upload.who(), upload.parts.method.as_str(), &upload.parts.uri, "inspections");
            };
            match read_alone(&upload, c).await {
                Ok(files) => files,
                Err(inspect::Unavailable(why)) => {
                    return crate::upload::unavailable(&upload.who(), upload.parts.method.as_str(), &upload.parts.uri, why)
                }
            }
        }
        _ => Vec::new(),
    };

    let session = state.sessions.get_or_insert(&key, || {
        let mut s = Session::new(protocol);
        // The first piece seen starts the session only if it holds the file's first byte (and,
        // for tus, says the file's size: without the creation request nothing else will).
        let starts = match &arrival {
            Arrival::Bytes(p) => p.offset == 0 && (p.protocol != Protocol::Tus || p.total.is_some()),
            // An S3 upload starts with the request that names it; an Azure blob with any block.
            Arrival::Part(p) => p.protocol == Protocol::AzureBlocks,
        };
        if !starts {
            s.fail(match arrival {
                Arrival::Part(_) => "the multipart upload's start was never seen",
                Arrival::Bytes(_) => "the upload session's start was never seen",
            });
        }
        if let Arrival::Part(p) = &arrival {
            s.name = p.key.as_str().split('?').next().and_then(|p| p.rsplit('/').next()).map(str::to_string);
        }
        s
    });
    let outcome = {
        let mut session = session.lock().await;
        session.touch(&upload);
        if !alone.is_empty() && matches!(session.stage, Stage::Open | Stage::Done) {
            let decision = upload.decide(&alone);
            if decision.verdict.action == Action::Block {
                let _ = upload.record_session(&alone, &decision, Some(session.audit(session.held(), None))).await;
                session.stage = Stage::Blocked(decision.clone());
                session.store = None;
            }
        }
        let outcome = match arrival {
            Arrival::Bytes(piece) => place_bytes(&mut session, &upload, content, piece).await,
            Arrival::Part(part) => place_part(&mut session, &upload, content, part).await,
        };
        session.changed.notify_waiters();
        outcome
    };
    let outcome = match outcome {
        Outcome::Wait => wait_for_gap(&session, &upload).await,
        o => o,
    };
    finish(state, &session, upload, intake, outcome).await
}

/// A held last piece waits for the bytes missing before it: the piece that brings them decides
/// the file (this one then shares its verdict); if they do not come within
/// `upload_gap_wait_secs`, the session is `incomplete`. (Forwarded at once, the last piece
/// could let the origin complete the file with bytes that reached it some other way — another
/// replica, or the same URL spelled differently.)
async fn wait_for_gap(session: &Arc<tokio::sync::Mutex<Session>>, upload: &Upload) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(upload.state.settings.load().inspection.upload_gap_wait_secs);
    loop {
        let changed = Arc::clone(&session.lock().await.changed);
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut s = session.lock().await;
            match &s.stage {
                Stage::Blocked(d) => return Outcome::Block(Box::new(d.clone())),
                Stage::Incomplete { .. } => return settled(&mut s, upload).await,
                Stage::Done => return Outcome::Release,
                Stage::Open => {
                    if s.total.zip(s.store.as_ref()).is_some_and(|(t, store)| store.coverage.is_complete(t)) {
                        return Outcome::Release;
                    }
                }
            }
            if Instant::now() >= deadline {
                s.fail("the file's last bytes came while bytes before them were missing, and those never came");
                s.changed.notify_waiters();
                return settled(&mut s, upload).await;
            }
        }
        let _ = tokio::time::timeout_at(deadline.into(), notified).await;
    }
}

/// block | release, and a completed session marked done once the origin accepts the file.
async fn finish(
    state: Arc<State>,
    session: &Arc<tokio::sync::Mutex<Session>>,
    upload: Upload,
    intake: Intake,
    outcome: Outcome,
) -> Response<Body> {
    match outcome {
        Outcome::Block(d) => upload.block(&d),
        Outcome::Release | Outcome::Wait => upload.release(intake).await,
        Outcome::Unavailable(why) => crate::upload::unavailable(&upload.who(), upload.parts.method.as_str(), &upload.parts.uri, why),
        Outcome::Complete => {
            let response = upload.release(intake).await;
            if response.status().is_success() {
                let mut s = session.lock().await;
                if matches!(s.stage, Stage::Open) {
                    s.stage = Stage::Done;
                    s.store = None;
                }
                s.changed.notify_waiters();
            }
            if let Some(m) = &state.metrics {
                m.upload_sessions.set(state.sessions.len() as i64);
            }
            response
        }
    }
}

/// The outcome of a session that has just been found incomplete (or blocked): never a release
/// by accident.
async fn settled(session: &mut Session, upload: &Upload) -> Outcome {
    session.fail("the session could not be reassembled");
    match decided(session, upload).await {
        Some(outcome) => outcome,
        None => session.incomplete_decision(upload).await.map_or(Outcome::Unavailable("audit"), |d| Outcome::Block(Box::new(d))),
    }
}

/// The outcome for a session whose stage already decides it.
async fn decided(session: &mut Session, upload: &Upload) -> Option<Outcome> {
    match &session.stage {
        Stage::Open => None,
        Stage::Blocked(d) => Some(Outcome::Block(Box::new(d.clone()))),
        Stage::Incomplete { .. } => Some(match session.incomplete_decision(upload).await {
            Some(d) if d.verdict.action == Action::Block => Outcome::Block(Box::new(d)),
            Some(_) => Outcome::Release,
            None => Outcome::Unavailable("audit"),
        }),
        Stage::Done => None,
    }
}

/// The content of a piece the session can take, or the outcome for a session already decided,
/// or for a piece whose content could not be kept (`why_missing`).
async fn kept(
    session: &mut Session,
    upload: &Upload,
    content: Option<Content>,
    why_missing: &'static str,
) -> Result<Content, Box<Outcome>> {
    if let Some(outcome) = decided(session, upload).await {
        return Err(Box::new(outcome));
    }
    match content {
        Some(c) => Ok(c),
        None => {
            session.fail(why_missing);
            Err(Box::new(settled(session, upload).await))
        }
    }
}

/// place: bytes at an offset join the session's file; the piece that completes it has the
/// file inspected.
async fn place_bytes(session: &mut Session, upload: &Upload, content: Option<Content>, piece: Piece) -> Outcome {
    if matches!(session.stage, Stage::Done) {
        if content.as_ref().is_some_and(|c| c.len == 0) {
            // A status query after the file was complete (the client missed the answer).
            return Outcome::Release;
        }
        if piece.offset == 0 {
            // A new file to the same URL (a WebDAV-style path uploaded again): a new session.
            // (Never after a block: the origin still holds the blocked file's other pieces.)
            session.restart();
        } else {
            session.fail("a piece arrived after the file was complete");
        }
    }
    let content =
        match kept(session, upload, content, "a piece too large to keep (max_inspect), or one whose Content-Encoding could not be decoded")
            .await
        {
            Ok(c) => c,
            Err(outcome) => return *outcome,
        };
    let max = upload.state.settings.load().inspection.inspect_limit();
    let len = content.len;
    let offset = piece.offset;
    // A URL that names no session of its own (a WebDAV-style path) uploaded again from its first
    // byte, the earlier upload abandoned: a new session. (The earlier pieces at the origin cannot
    // complete anything: the new file's last bytes wait until every byte before them came.)
    let restarts = session.protocol == Protocol::ContentRange && offset == 0 && len > 0;
    if restarts && piece.total.is_some_and(|t| session.total.is_some_and(|s| s != t)) {
        session.restart();
    }
    let why = if offset == u64::MAX {
        Some("a piece whose place in the file is not stated")
    } else if piece.end.is_some_and(|e| e != offset + len) {
        Some("a piece whose length disagrees with its Content-Range")
    } else if offset.saturating_add(len) > max || piece.total.or(session.total).is_some_and(|t| t > max) {
        Some("a file larger than max_inspect: its pieces are not kept")
    } else {
        let total = if piece.finalize { Some(offset + len) } else { piece.total };
        match (session.total, total) {
            (Some(a), Some(b)) if a != b => Some("the file's size changed during the upload"),
            (_, Some(t)) if offset + len > t => Some("a piece past the end of the file"),
            (Some(t), _) if offset + len > t => Some("a piece past the end of the file"),
            (None, Some(t)) => {
                session.total = Some(t);
                None
            }
            _ => None,
        }
    };
    if let Some(why) = why {
        session.fail(why);
        return settled(session, upload).await;
    }
    if session.store.is_none() {
        match Store::new(&upload.state.spool) {
            Ok(s) => session.store = Some(s),
            // No spool file now: refused for now, the session goes on.
            Err(_) => return Outcome::Unavailable("spool_write"),
        }
    }
    let Some(store) = session.store.as_mut() else { return settled(session, upload).await };
    let mut written = store.write(offset, &content).await;
    if restarts && matches!(written, Err(StoreError::Conflict)) {
        session.restart();
        session.total = piece.total;
        let Ok(fresh) = Store::new(&upload.state.spool) else { return Outcome::Unavailable("spool_write") };
        session.store = Some(fresh);
        written = match session.store.as_mut() {
            Some(store) => store.write(offset, &content).await,
            None => Err(StoreError::NoRoom),
        };
    }
    let Some(store) = session.store.as_mut() else { return settled(session, upload).await };
    match written {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            session.fail("a piece whose bytes differ from the same bytes sent before");
            return settled(session, upload).await;
        }
        Err(StoreError::NoRoom) => {
            // The spool is full for now: the piece is neither kept nor forwarded; the client
            // retries it later, and the session goes on.
            return Outcome::Unavailable("spool_quota");
        }
    }
    let complete = session.total.is_some_and(|t| store.coverage.is_complete(t));
    if piece.finalize && !complete {
        session.fail("the upload was finalised with bytes missing");
        return settled(session, upload).await;
    }
    let completes = if session.protocol.completes_on_finalize() { piece.finalize } else { complete };
    let last_bytes = session.total.is_some_and(|t| offset + len == t);
    if last_bytes && !complete && !session.protocol.completes_on_finalize() {
        // A request without bytes (`bytes */N`) is the client asking where to resume: passed.
        return if len == 0 { Outcome::Release } else { Outcome::Wait };
    }
    if !completes || session.partial {
        return Outcome::Release;
    }
    let total = session.total.unwrap_or(0);
    let file = match store.file.as_file().try_clone() {
        Ok(f) => f,
        Err(_) => {
            session.fail("the spool could not keep the session's pieces");
            return settled(session, upload).await;
        }
    };
    let sha256 = store.digest(total).await;
    decide_file(session, upload, &file, total, sha256).await
}

/// inspect, decide, record: the session's whole file.
async fn decide_file(session: &mut Session, upload: &Upload, file: &std::fs::File, len: u64, sha256: Option<String>) -> Outcome {
    let files = match inspect_assembled(upload, session.name.clone(), file, len, sha256).await {
        Ok(files) => files,
        Err(inspect::Unavailable(why)) => return Outcome::Unavailable(why),
    };
    let decision = upload.decide(&files);
    let recorded = upload.record_session(&files, &decision, Some(session.audit(len, None))).await;
    if decision.verdict.action == Action::Block {
        session.stage = Stage::Blocked(decision.clone());
        session.store = None;
        return Outcome::Block(Box::new(decision));
    }
    if !recorded.may_release() {
        // audit_required, and the record is lost: the completing request is refused for now
        // (the session stays whole: a retry decides again).
        return Outcome::Unavailable("audit");
    }
    Outcome::Complete
}

/// place: an S3 part is kept beside the session's other parts.
async fn place_part(session: &mut Session, upload: &Upload, content: Option<Content>, part: Part) -> Outcome {
    if part.copy {
        session.fail("a part copied from another object (UploadPartCopy) never passed through the proxy");
    }
    if matches!(session.stage, Stage::Done) {
        if part.protocol == Protocol::AzureBlocks {
            // A new version of the blob: its blocks are a new session.
            session.restart();
        } else {
            session.fail("a part arrived after the upload was complete");
        }
    }
    let content =
        match kept(session, upload, content, "a part too large to keep (max_inspect), or one whose Content-Encoding could not be decoded")
            .await
        {
            Ok(c) => c,
            Err(outcome) => return *outcome,
        };
    let max = upload.state.settings.load().inspection.inspect_limit();
    if session.store.as_ref().map_or(0, Store::part_bytes) + content.len > max {
        session.fail("the parts add up to more than max_inspect");
        return settled(session, upload).await;
    }
    if session.store.is_none() {
        match Store::new(&upload.state.spool) {
            Ok(s) => session.store = Some(s),
            // No spool file now: refused for now, the session goes on.
            Err(_) => return Outcome::Unavailable("spool_write"),
        }
    }
    let Some(store) = session.store.as_mut() else { return Outcome::Unavailable("spool_write") };
    // The spool's quota spent by other uploads, or a write failing: refused for now (the client
    // retries the part), never decided as incomplete.
    if store.append_part(&part.id, &content, max).await.is_err() {
        return Outcome::Unavailable("spool_quota");
    }
    Outcome::Release
}

/// S3 CompleteMultipartUpload, Azure Put Block List: the file is the parts the document lists,
/// in that order.
async fn complete_parts(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
    target: Target,
    user: Option<User>,
    key: SessionKey,
    format: PartList,
) -> Response<Body> {
    let mut upload = Upload::admit(Arc::clone(&state), peer, req, target, user, InspectionMode::Hold);
    let intake = match upload.receive().await {
        Ok(i) => i,
        Err(response) => return response,
    };
    let document: Option<Vec<u8>> = match (&intake, upload.spool.len() <= MAX_DOCUMENT) {
        (Intake::Complete, true) => upload.spool.memory().map(|h| h.chunks().concat()),
        _ => None,
    };
    let protocol = match format {
        PartList::S3 => Protocol::S3Multipart,
        PartList::AzureBlockList => Protocol::AzureBlocks,
    };
    let session = state.sessions.get_or_insert(&key, || {
        let mut s = Session::new(protocol);
        s.fail(match format {
            PartList::S3 => "the multipart upload's start was never seen",
            PartList::AzureBlockList => "a listed block never passed through the proxy",
        });
        s
    });
    let outcome = {
        let mut session = session.lock().await;
        session.touch(&upload);
        match decided(&mut session, &upload).await {
            Some(o) => o,
            None => {
                let list = document.as_deref().map(|d| match format {
                    PartList::S3 => labelgate_pieces::complete_multipart_parts(d),
                    PartList::AzureBlockList => labelgate_pieces::azure_block_list(d),
                });
                match list {
                    Some(Ok(list)) => assemble_parts(&mut session, &upload, &list).await,
                    _ => {
                        session.fail("the part list (CompleteMultipartUpload, BlockList) could not be read");
                        settled(&mut session, &upload).await
                    }
                }
            }
        }
    };
    finish(state, &session, upload, intake, outcome).await
}

/// assemble: the listed parts, each the copy its ETag names (or the only one), in order.
async fn assemble_parts(session: &mut Session, upload: &Upload, list: &[ListedPart]) -> Outcome {
    let mut ranges = Vec::new();
    let Some(store) = session.store.as_ref() else {
        session.fail("a listed part never passed through the proxy");
        return settled(session, upload).await;
    };
    let max = upload.state.settings.load().inspection.inspect_limit();
    let mut len = 0u64;
    for part in list {
        let copies = store.parts.get(&part.id).map(Vec::as_slice).unwrap_or(&[]);
        // An ETag that is an MD5 (S3 without KMS) names the copy; one that is not (KMS, SSE-C)
        // cannot, and then only a part sent once is certain.
        let md5_etag = part.etag.as_ref().filter(|e| e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit()));
        let chosen = match (copies, md5_etag) {
            // A block committed before: its bytes are not what this session holds.
            _ if part.committed => None,
            ([], _) => None,
            (many, Some(etag)) => many.iter().rev().find(|c| &c.md5 == etag),
            ([only], None) => Some(only),
            // Azure's list names a block id, and the block last uploaded under it is the one.
            (many, None) if session.protocol == Protocol::AzureBlocks => many.last(),
            (_, None) => None,
        };
        let Some(copy) = chosen else {
            session.fail("a listed part never passed through the proxy, or is not the copy the list names");
            return settled(session, upload).await;
        };
        len += copy.len;
        if len > max {
            session.fail("the listed parts add up to more than max_inspect");
            return settled(session, upload).await;
        }
        ranges.push((copy.at, copy.len));
    }
    let Ok(file) = store.file.as_file().try_clone() else {
        session.fail("the spool could not read the session's parts");
        return settled(session, upload).await;
    };
    let segments = vec![(Arc::new(file), ranges)];
    match assemble_segments(&upload.state.spool, segments).await {
        Ok(assembled) => {
            let (file, len) = (assembled.file.try_clone(), assembled.len);
            match file {
                Ok(f) => decide_file(session, upload, &f, len, None).await,
                Err(_) => {
                    session.fail("the spool could not read the assembled file");
                    settled(session, upload).await
                }
            }
        }
        // No room to assemble now: the completing request is refused for now (the parts stay).
        Err(()) => Outcome::Unavailable("spool_quota"),
    }
}

/// Ranges (offset, length) of a file, in the order they are joined.
type Segment = (Arc<std::fs::File>, Vec<(u64, u64)>);

/// Joins `segments` into a new spool file.
async fn assemble_segments(area: &Arc<SpoolArea>, segments: Vec<Segment>) -> Result<Assembled, ()> {
    let len: u64 = segments.iter().flat_map(|(_, r)| r.iter().map(|r| r.1)).sum();
    let before = area.used.fetch_add(len, Ordering::SeqCst);
    let charge = Some((Arc::clone(area), len));
    // An unnamed temporary file: nothing to remove, whatever happens.
    let assembled = Assembled { file: tempfile::tempfile_in(&area.dir).map_err(|_| ())?, len, charge };
    if before + len > area.quota() {
        return Err(());
    }
    let dest = assembled.file.try_clone().map_err(|_| ())?;
    let copied = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut at = 0u64;
        for (file, ranges) in segments {
            for (from, n) in ranges {
                let mut done = 0u64;
                while done < n {
                    let k = ((n - done) as usize).min(buf.len());
                    file.read_exact_at(&mut buf[..k], from + done)?;
                    dest.write_all_at(&buf[..k], at + done)?;
                    done += k as u64;
                }
                at += n;
            }
        }
        Ok(())
    })
    .await;
    match copied {
        Ok(Ok(())) => Ok(assembled),
        _ => Err(()),
    }
}

/// tus `Upload-Concat: final`: the file is the partial uploads, in the order listed.
async fn concatenate(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
    target: Target,
    user: Option<User>,
    keys: Vec<SessionKey>,
) -> Response<Body> {
    let mut upload = Upload::admit(Arc::clone(&state), peer, req, target, user, InspectionMode::Hold);
    let intake = match upload.receive().await {
        Ok(i) => i,
        Err(response) => return response,
    };
    // The concatenation is a session of its own: its record, its decision.
    let mut whole = Session::new(Protocol::Tus);
    whole.touch(&upload);
    // Each partial upload is locked once (a list may name one twice), in key order (two
    // concatenations of the same partials never wait on each other).
    let mut unique: Vec<&SessionKey> = keys.iter().collect();
    unique.sort();
    unique.dedup();
    let mut partials = Vec::new();
    let mut segments = Vec::new();
    let mut missing = keys.is_empty();
    for key in &unique {
        match state.sessions.get(key) {
            Some(s) => partials.push(((*key).clone(), s)),
            None => missing = true,
        }
    }
    let mut guards = Vec::new();
    for (key, s) in &partials {
        guards.push((key.clone(), s.lock().await));
    }
    let mut len = 0u64;
    for (_, g) in &guards {
        whole.pieces += g.pieces;
        if let Stage::Blocked(d) = &g.stage {
            whole.stage = Stage::Blocked(d.clone());
        }
    }
    for key in &keys {
        let Some((_, g)) = guards.iter().find(|(k, _)| k == key) else {
            missing = true;
            continue;
        };
        let complete =
            matches!(g.stage, Stage::Open) && g.partial && g.store.as_ref().zip(g.total).is_some_and(|(s, t)| s.coverage.is_complete(t));
        len += g.total.unwrap_or(0);
        match (complete, g.store.as_ref().and_then(|s| s.file.as_file().try_clone().ok())) {
            (true, Some(f)) if len <= state.settings.load().inspection.inspect_limit() => {
                segments.push((Arc::new(f), vec![(0, g.total.unwrap_or(0))]))
            }
            _ => missing = true,
        }
    }
    if missing {
        whole.fail("a partial upload of the concatenation never passed through the proxy, or is not complete");
    }
    let outcome = match decided(&mut whole, &upload).await {
        Some(o) => o,
        None => match assemble_segments(&state.spool, segments).await {
            Ok(assembled) => match assembled.file.try_clone() {
                Ok(f) => decide_file(&mut whole, &upload, &f, assembled.len, None).await,
                Err(_) => {
                    whole.fail("the spool could not read the assembled file");
                    settled(&mut whole, &upload).await
                }
            },
            Err(()) => Outcome::Unavailable("spool_quota"),
        },
    };
    // The partial uploads share the concatenation's fate.
    if let Outcome::Block(d) = &outcome {
        for (_, g) in guards.iter_mut() {
            g.stage = Stage::Blocked((**d).clone());
            g.store = None;
        }
    }
    drop(guards);
    match outcome {
        Outcome::Block(d) => upload.block(&d),
        Outcome::Release | Outcome::Wait => upload.release(intake).await,
        Outcome::Unavailable(why) => crate::upload::unavailable(&upload.who(), upload.parts.method.as_str(), &upload.parts.uri, why),
        Outcome::Complete => {
            let response = upload.release(intake).await;
            if response.status().is_success() {
                for (_, s) in &partials {
                    let mut s = s.lock().await;
                    s.stage = Stage::Done;
                    s.store = None;
                }
            }
            response
        }
    }
}

/// A request that starts a session: forwarded as any request (its body, if any, inspected as
/// an upload), then the session the answer names is opened.
async fn start_session(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
    target: Target,
    user: Option<User>,
    start: Start,
) -> Response<Body> {
    // A session that could not be tracked would leave its pieces undecidable: refused for now.
    if !state.sessions.has_room() {
        let upload = Upload::admit(Arc::clone(&state), peer, req, target, user, InspectionMode::Hold);
        return crate::upload::unavailable(&upload.who(), upload.parts.method.as_str(), &upload.parts.uri, "upload_sessions");
    }
    let has_body = !http_body::Body::is_end_stream(req.body());
    let declared = req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let first_bytes = start.carries_first_bytes() && has_body && !(start.total.is_some() && declared == start.total);
    // tus creation-with-upload, Dropbox's start: the body is the file's first bytes, a piece
    // like any other.
    let (response, content, pieces) = if first_bytes {
        let mut upload = Upload::admit(Arc::clone(&state), peer, req, target, user, InspectionMode::Hold);
        let intake = match upload.receive().await {
            Ok(i) => i,
            Err(response) => return response,
        };
        let content = match intake {
            Intake::Complete => match Content::of(&mut upload).await {
                Ok(c) => c,
                Err(inspect::Unavailable(why)) => {
                    return crate::upload::unavailable(&upload.who(), upload.parts.method.as_str(), &upload.parts.uri, why)
                }
            },
            Intake::Oversize { .. } => None,
        };
        if let Some(c) = &content {
            let alone = match read_alone(&upload, c).await {
                Ok(files) => files,
                Err(inspect::Unavailable(why)) => {
                    return crate::upload::unavailable(&upload.who(), upload.parts.method.as_str(), &upload.parts.uri, why)
                }
            };
            if !alone.is_empty() {
                let decision = upload.decide(&alone);
                if decision.verdict.action == Action::Block {
                    let _ = upload.record(&alone, &decision).await;
                    return upload.block(&decision);
                }
            }
        }
        (upload.release(intake).await, content, 1)
    } else if has_body {
        let response = crate::upload::run(Arc::clone(&state), peer, req, target, user).await;
        (response, None, 0)
    } else {
        let (parts, body) = req.into_parts();
        let response = crate::upstream::forward(&state, &target, parts, body.map_err(|e| Box::new(e) as BoxError).boxed(), None).await;
        (response, None, 0)
    };
    let (response, key) = read_answer(response, &start).await;
    let Some(key) = key else { return response };
    let session = state.sessions.get_or_insert(&key, || Session::new(start.protocol));
    let mut s = session.lock().await;
    s.name = start.name.clone();
    s.total = start.total;
    s.partial = start.partial;
    if start.unreadable {
        s.fail("the upload's size could not be read");
    }
    s.pieces += pieces;
    s.last_seen = Instant::now();
    let open = matches!(s.stage, Stage::Open);
    if let (Some(content), true) = (content, open) {
        // The origin says how much of the body it kept.
        let kept = response.headers().get("upload-offset").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        if kept.is_none_or(|k| k == content.len) {
            match Store::new(&state.spool) {
                Ok(mut store) => {
                    if store.write(0, &content).await.is_ok() {
                        s.store = Some(store);
                    } else {
                        s.fail("the spool could not keep the session's first bytes");
                    }
                }
                Err(_) => s.fail("the spool could not keep the session's first bytes"),
            }
        } else {
            s.fail("the origin kept only part of the session's first bytes");
        }
    }
    if let Some(m) = &state.metrics {
        m.upload_sessions.set(state.sessions.len() as i64);
    }
    response
}

/// The origin's answer to a session-starting request, and the session it names (its body read
/// when the name is in it, up to [`MAX_DOCUMENT`] bytes, and passed on unchanged).
async fn read_answer(response: Response<Body>, start: &Start) -> (Response<Body>, Option<SessionKey>) {
    let status = response.status().as_u16();
    if !start.needs_body() || !(200..300).contains(&status) {
        let key = start.session(status, response.headers(), b"");
        return (response, key);
    }
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut whole = false;
    loop {
        match tokio::time::timeout_at(deadline.into(), body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                    if bytes.len() as u64 > MAX_DOCUMENT {
                        break;
                    }
                }
            }
            Ok(None) => {
                whole = true;
                break;
            }
            _ => break,
        }
    }
    match whole {
        true => {
            let key = start.session(status, &parts.headers, &bytes);
            (Response::from_parts(parts, full(bytes)), key)
        }
        _ => (simple(StatusCode::BAD_GATEWAY, "the origin's answer to an upload session request could not be read"), None),
    }
}
