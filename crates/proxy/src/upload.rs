//! One upload, phase by phase, over a per-transaction context ([`Upload`]):
//!
//! `admit` → `receive` → `inspect` → `decide` → `record` → `block` | `release`
//!
//! - **admit**: the transaction's context; in `stream` mode the upstream request starts now.
//! - **receive**: the body is held (memory, then the spool), streamed on at the same time in
//!   `stream` mode — and in `hold` mode too once it grows past `max_body` ([`Upload::stream_from_here`]):
//!   the spool keeps every byte for the inspection, only the last `stream_holdback` bytes wait
//!   for the verdict. Past `max_inspect` the intake ends [`Intake::Oversize`]; a spool that
//!   cannot hold the body answers 503 (never a pass, never a dropped byte).
//! - **inspect**: every file the held body carries (content codings, multipart parts, files
//!   inside files) is read.
//! - **decide**: the policy's verdict over those files, counted in the metrics.
//! - **record**: one audit record.
//! - **block**: a 403 with the block page (the streamed request, if any, is aborted);
//!   **release**: the held bytes go to the origin exactly as they came (then, for an oversize
//!   body the policy allows, the rest as it arrives).
//!
//! Hold and stream are the two states of [`Outflow`]; complete and oversize are the two of
//! [`Intake`]: each phase matches on them instead of testing flags.

use crate::audit::{now_rfc3339, AuditFile, AuditLabel, AuditRecord, AuditSession};
use crate::auth::User;
use crate::block::{self, BlockedFile};
use crate::inspect::{self, Inspected};
use crate::server::{full, simple, Body, BoxError, State, Target};
use crate::spool::{Spool, SpoolError};
use crate::upstream::{forward, hyper_io_error};
use crate::InspectionMode;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use labelgate_policy::{Action, Direction, FileFacts, ResolvedPolicy, Transaction, UnscannableReason, Verdict};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the body goes while it is received.
enum Outflow {
    /// Nothing reaches the origin before the verdict.
    Hold,
    /// The upstream request runs already and receives the body as it arrives, minus a withheld
    /// tail that waits for the verdict.
    Stream { out: crate::stream::Outflow, response: tokio::task::JoinHandle<Response<Body>> },
}

/// How the body's intake ended.
pub(crate) enum Intake {
    /// The whole body is held.
    Complete,
    /// Past `max_inspect`: only its start is held; `pending` is the chunk that did not fit (in
    /// hold mode), the rest is still in the request body.
    Oversize { pending: Option<Bytes> },
}

/// One upload transaction: who sends what where, and what has been received so far.
pub(crate) struct Upload {
    pub(crate) state: Arc<State>,
    pub(crate) peer: SocketAddr,
    pub(crate) target: Target,
    pub(crate) user: Option<User>,
    pub(crate) parts: http::request::Parts,
    body: Incoming,
    pub(crate) started: Instant,
    outflow: Outflow,
    pub(crate) spool: Spool,
}

/// The verdict with what it was reached on.
#[derive(Clone)]
pub(crate) struct Decision {
    pub(crate) policy: Arc<ResolvedPolicy>,
    pub(crate) verdict: Verdict,
    pub(crate) facts: Vec<FileFacts>,
    pub(crate) url: String,
}

/// Who sends where: what the decide and record phases need besides the files.
pub(crate) struct Who<'a> {
    pub(crate) state: &'a State,
    pub(crate) peer: SocketAddr,
    pub(crate) target: &'a Target,
    pub(crate) user: Option<&'a User>,
}

/// The decide phase, for an upload or a WebSocket message: the policy in force judges the
/// transaction; the metrics count it.
pub(crate) fn decide(who: &Who<'_>, method: &http::Method, uri: &http::Uri, files: &[Inspected], bytes: u64, started: Instant) -> Decision {
    let facts: Vec<FileFacts> = files.iter().map(|f| f.facts.clone()).collect();
    let (policy, verdict, url) = judge(who, method, uri, &facts);
    if let Some(m) = &who.state.metrics {
        m.transactions.with_label_values(&[verdict.action.as_str(), verdict.rule.as_deref().unwrap_or("")]).inc();
        m.bytes_inspected.inc_by(bytes);
        m.inspection_seconds.observe(started.elapsed().as_secs_f64());
        let catalog = policy.catalog();
        for f in &facts {
            for l in &f.labels {
                let known = catalog.lookup(l.tenant.as_deref(), &l.id).is_some();
                m.labels_seen.with_label_values(&[if known { l.id.as_str() } else { "unknown" }]).inc();
            }
            if let Some(u) = f.unscannable {
                m.unscannable.with_label_values(&[u.as_str()]).inc();
            }
        }
    }
    Decision { policy, verdict, facts, url }
}

/// The policy in force over a transaction with these files: the policy, its verdict, the URL.
fn judge(who: &Who<'_>, method: &http::Method, uri: &http::Uri, facts: &[FileFacts]) -> (Arc<ResolvedPolicy>, Verdict, String) {
    let authority = &who.target.authority;
    let host = authority.host().to_ascii_lowercase();
    let scheme = if who.target.https { "https" } else { "http" };
    let url = format!("{scheme}://{}{}", authority.as_str().to_ascii_lowercase(), uri.path());
    let groups: Vec<String> = who.user.map(|u| u.groups.clone()).unwrap_or_default();
    let policy = (who.state.policy)();
    let verdict = policy.evaluate(&Transaction {
        direction: Direction::Upload,
        method: method.as_str(),
        host: &host,
        url: &url,
        user: who.user.map(|u| u.name.as_str()),
        groups: &groups,
        files: facts,
        path: None,
    });
    (policy, verdict, url)
}

/// The record phase: one audit record (label names from the catalog; the query only when
/// configured).
pub(crate) async fn record(
    who: &Who<'_>,
    method: &str,
    uri: &http::Uri,
    files: &[Inspected],
    decision: &Decision,
    started: Instant,
    session: Option<AuditSession>,
) -> Recorded {
    let required = who.state.settings.load().config.audit_required;
    let record = audit_record(who, method, uri, files, decision, started, session);
    // With audit_required the verdict waits for its record to be written; otherwise it is
    // queued for the writer.
    let written = if required { who.state.audit.write_acknowledged(&record).await } else { who.state.audit.write(&record) };
    match written {
        Ok(()) => Recorded::Yes,
        Err(_) if required => Recorded::LostRequired,
        Err(_) => Recorded::Lost,
    }
}

/// The audit record of a decided transaction (label names from the catalog; the query only when
/// configured).
pub(crate) fn audit_record(
    who: &Who<'_>,
    method: &str,
    uri: &http::Uri,
    files: &[Inspected],
    decision: &Decision,
    started: Instant,
    session: Option<AuditSession>,
) -> AuditRecord {
    let Decision { policy, verdict, url, .. } = decision;
    let shown_url = match (who.state.settings.load().config.audit_query, uri.query()) {
        (true, Some(q)) => format!("{url}?{q}"),
        _ => url.clone(),
    };
    let catalog = policy.catalog();
    AuditRecord {
        time: now_rfc3339(),
        client: who.peer.to_string(),
        user: who.user.map(|u| u.name.clone()),
        method: method.to_string(),
        url: shown_url,
        app: verdict.cloud_app.clone(),
        files: files
            .iter()
            .map(|f| AuditFile {
                name: f.facts.name.clone(),
                path: f.path.clone(),
                size: f.size,
                kind: f.facts.kind.clone(),
                labels: f
                    .facts
                    .labels
                    .iter()
                    .map(|l| AuditLabel {
                        id: l.id.clone(),
                        name: catalog.lookup(l.tenant.as_deref(), &l.id).map(|k| k.display_name.clone()),
                        tenant: l.tenant.clone(),
                    })
                    .collect(),
                sha256: f.sha256.clone(),
                unscannable: f.facts.unscannable.map(|u| u.as_str().to_string()),
            })
            .collect(),
        action: verdict.action.as_str().to_string(),
        rule: verdict.rule.clone(),
        reason: verdict.reason.clone(),
        inspect_us: started.elapsed().as_micros() as u64,
        session,
    }
}

/// Whether the record phase wrote its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    Yes,
    /// Lost, counted and said; the transaction goes on.
    Lost,
    /// Lost while `audit_required` is set: an allowed transaction must not go through.
    LostRequired,
}

impl Recorded {
    /// An allowed transaction may go through.
    pub(crate) fn may_release(self) -> bool {
        self != Recorded::LostRequired
    }
}

/// A shared resource is exhausted (`why`: `spool_quota`, `spool_write`, `upload_sessions`): the
/// transaction cannot be inspected now, so it is refused for now — 503 with `Retry-After`,
/// counted, and one audit record with action `unavailable` — never passed as `oversize`.
pub(crate) fn unavailable(who: &Who<'_>, method: &str, uri: &http::Uri, why: &'static str) -> Response<Body> {
    if let Some(m) = &who.state.metrics {
        m.unavailable.with_label_values(&[why]).inc();
    }
    let scheme = if who.target.https { "https" } else { "http" };
    let _ = who.state.audit.write(&AuditRecord {
        time: now_rfc3339(),
        client: who.peer.to_string(),
        user: who.user.map(|u| u.name.clone()),
        method: method.to_string(),
        url: format!("{scheme}://{}{}", who.target.authority.as_str().to_ascii_lowercase(), uri.path()),
        app: None,
        files: Vec::new(),
        action: "unavailable".into(),
        rule: None,
        reason: format!("{why}: the upload could not be held for inspection; the client is asked to retry"),
        inspect_us: 0,
        session: None,
    });
    let mut r = simple(StatusCode::SERVICE_UNAVAILABLE, "labelgate cannot inspect this upload right now; retry shortly");
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Runs one upload through its phases.
pub(crate) async fn run(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>, target: Target, user: Option<User>) -> Response<Body> {
    let mode = state.settings.load().inspection.mode;
    let mut upload = Upload::admit(state, peer, req, target, user, mode);
    let intake = match upload.receive().await {
        Ok(intake) => intake,
        Err(response) => return response,
    };
    // Inspections run a few at a time (they are CPU work); one that waits too long for its turn
    // is refused for now (503), never passed uninspected.
    let Some(_turn) = inspection_turn(&upload.state).await else {
        if let Outflow::Stream { out, .. } = std::mem::replace(&mut upload.outflow, Outflow::Hold) {
            out.abort();
        }
        return unavailable(&upload.who(), upload.parts.method.as_str(), &upload.parts.uri, "inspections");
    };
    let files = match upload.inspect(&intake).await {
        Ok(files) => files,
        // The spool could not hold what the body decodes to: refused for now, never decided on
        // part of it (a streamed request is aborted as the outflow drops).
        Err(inspect::Unavailable(why)) => return unavailable(&upload.who(), upload.parts.method.as_str(), &upload.parts.uri, why),
    };
    let decision = upload.decide(&files);
    let recorded = upload.record(&files, &decision).await;
    match decision.verdict.action {
        Action::Block => {
            if matches!(intake, Intake::Oversize { .. }) {
                // The rest of an oversize body is still coming: the streamed request (if any) is
                // aborted now, and the rest read and dropped, so the client gets its block page
                // instead of a reset mid-send.
                upload.abort_upstream();
                upload.discard_rest().await;
            }
            upload.block(&decision)
        }
        // audit_required, and the record is lost: not let through (a streamed request is
        // aborted as the outflow drops).
        _ if !recorded.may_release() => {
            upload.abort_upstream();
            upload.discard_rest().await;
            unavailable(&upload.who(), upload.parts.method.as_str(), &upload.parts.uri, "audit")
        }
        _ => upload.release(intake).await,
    }
}

/// A turn to inspect: waits up to `inspection_queue_secs` for one of `max_concurrent_inspections`.
pub(crate) async fn inspection_turn(state: &State) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let wait = Duration::from_secs(state.settings.load().inspection.inspection_queue_secs);
    let permit = tokio::time::timeout(wait, Arc::clone(&state.inspections).acquire_owned()).await.ok()?.ok()?;
    // Test-only fault hook: an inspection that takes this long (LABELGATE_TEST_FAULT_INSPECTION_DELAY_MS).
    if let Some(ms) = state.inspection_delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    Some(permit)
}

impl Upload {
    /// admit: the context, and in `stream` mode the upstream request, started now.
    pub(crate) fn admit(
        state: Arc<State>,
        peer: SocketAddr,
        req: Request<Incoming>,
        target: Target,
        user: Option<User>,
        mode: InspectionMode,
    ) -> Upload {
        let (parts, body) = req.into_parts();
        let outflow = match mode {
            InspectionMode::Hold => Outflow::Hold,
            InspectionMode::Stream => {
                let (out, response) = start_streaming(&state, &target, &parts);
                Outflow::Stream { out, response }
            }
        };
        // In memory up to the memory limit, then spooled to a private file.
        let mut spool = Spool::new(&state.spool);
        if let Some(expected) = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        {
            spool.expect(expected.min(state.settings.load().inspection.max_body));
        }
        Upload { state, peer, target, user, parts, body, started: Instant::now(), outflow, spool }
    }

    /// receive: holds the body up to `max_body` (streaming it on in `stream` mode). A stalled or
    /// interrupted upload ends the transaction here (an outflow dropped with it aborts the
    /// upstream request).
    pub(crate) async fn receive(&mut self) -> Result<Intake, Response<Body>> {
        let (max_body, max) = {
            let s = self.state.settings.load();
            (s.inspection.max_body, s.inspection.inspect_limit())
        };
        let idle = Duration::from_secs(self.state.settings.load().config.body_idle_timeout_secs);
        // A body that trickles in just under the idle timeout still has to finish in time.
        let deadline = self.started + Duration::from_secs(self.state.settings.load().config.upload_timeout_secs);
        // And every window of body_rate_window_secs must bring body_min_bytes_per_sec on average:
        // a trickle just under the idle timeout cannot hold the connection for the whole hour.
        let (rate, window_len) = {
            let s = self.state.settings.load();
            (s.config.body_min_bytes_per_sec, Duration::from_secs(s.config.body_rate_window_secs.max(1)))
        };
        let needed = rate.saturating_mul(window_len.as_secs());
        let mut window = (Instant::now(), 0u64);
        // Asked once, when a held body first passes max_body.
        let mut may_stream_on: Option<bool> = None;
        loop {
            let now = Instant::now();
            if needed > 0 && now >= window.0 + window_len {
                if window.1 < needed {
                    return Err(simple(StatusCode::REQUEST_TIMEOUT, "the upload is slower than body_min_bytes_per_sec"));
                }
                window = (now, 0);
            }
            let mut wait = idle.min(deadline.saturating_duration_since(now));
            if needed > 0 {
                wait = wait.min((window.0 + window_len).saturating_duration_since(now));
            }
            let frame = match tokio::time::timeout(wait, self.body.frame()).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(Intake::Complete),
                // The rate window ended first: judged at the top of the loop.
                Err(_) if needed > 0 && Instant::now() >= window.0 + window_len && Instant::now() < deadline => continue,
                Err(_) => return Err(simple(StatusCode::REQUEST_TIMEOUT, "the upload stalled")),
            };
            // The client went away mid-upload: nothing to forward, nothing to record.
            let Ok(frame) = frame else { return Err(simple(StatusCode::BAD_REQUEST, "the upload was interrupted")) };
            let Ok(data) = frame.into_data() else { continue };
            window.1 += data.len() as u64;
            // Past max_body a held body starts towards the origin: the spool still keeps it all
            // for the inspection, and the tail waits for the verdict as in stream mode.
            if matches!(self.outflow, Outflow::Hold)
                && self.spool.len() + data.len() as u64 > max_body
                && self.spool.len() + data.len() as u64 <= max
                && *may_stream_on.get_or_insert_with(|| self.may_stream_on())
            {
                if let Err(e) = self.stream_from_here().await {
                    tracing::error!(error = %e, "cannot read back a spooled upload");
                    self.discard_rest().await;
                    return Err(unavailable(&self.who(), self.parts.method.as_str(), &self.parts.uri, "spool_write"));
                }
            }
            if let Outflow::Stream { out, .. } = &mut self.outflow {
                out.push(data.clone()).await;
            }
            if self.spool.len() + data.len() as u64 > max {
                // (Streaming has already queued this chunk.)
                let pending = match self.outflow {
                    Outflow::Hold => Some(data),
                    Outflow::Stream { .. } => None,
                };
                return Ok(Intake::Oversize { pending });
            }
            if let Err(e) = self.spool.push(data) {
                // Out of spool space or disk: the body cannot be held for inspection. Never a
                // pass and never a dropped chunk: 503 with Retry-After (a streamed request is
                // aborted upstream as the outflow drops), counted and recorded.
                let why = match e {
                    SpoolError::Io(e) => {
                        tracing::error!(error = %e, "cannot spool an upload");
                        "spool_write"
                    }
                    SpoolError::Quota => "spool_quota",
                };
                // A streamed request is aborted now; the rest of the body is read and dropped so
                // the client receives the answer (closing with unread bytes would reset the
                // connection under it).
                self.abort_upstream();
                self.discard_rest().await;
                return Err(unavailable(&self.who(), self.parts.method.as_str(), &self.parts.uri, why));
            }
        }
    }

    /// Whether a held body past `max_body` may start towards the origin before its verdict: only
    /// where the policy lets a file it cannot read through (it allows `oversize` here — the
    /// sanctioned apps of the shipped config). Where it would block one (where labeled files
    /// may not go), the body stays held, on disk, up to `max_inspect`: streaming on there would
    /// hand the origin all but the tail before the verdict — a labeled file placed first in a
    /// multipart body would arrive complete.
    fn may_stream_on(&self) -> bool {
        let probe = [FileFacts {
            name: None,
            kind: "unknown".into(),
            labels: vec![],
            unscannable: Some(UnscannableReason::Oversize),
            detected: Vec::new(),
        }];
        judge(&self.who(), &self.parts.method, &self.parts.uri, &probe).1.action != Action::Block
    }

    /// A held body grown past `max_body` goes on as a streamed one: the upstream request starts
    /// with the bytes held so far (read back from the spool) except the last `stream_holdback`,
    /// which join the withheld tail; every later chunk takes the stream-mode path.
    async fn stream_from_here(&mut self) -> std::io::Result<()> {
        let holdback = self.state.settings.load().inspection.stream_holdback;
        let held = self.spool.len();
        let sent_now = held.saturating_sub(holdback);
        let memory = self.spool.memory();
        let file = self.spool.reader()?;
        let tail = self.spool.copy_range(sent_now, held)?;
        let prefix = futures_util::StreamExt::map(crate::spool::stream_prefix(memory, file, sent_now), |r| {
            r.map(Frame::data).map_err(hyper_io_error)
        });
        // A block aborts the prefix too: the origin is not sent the rest of it.
        let (mut out, body) = crate::stream::channel_after(holdback, Some(Box::pin(prefix)));
        if !tail.is_empty() {
            out.push(tail).await;
        }
        let response = start_upstream(&self.state, &self.target, &self.parts, StreamBody::new(body).boxed());
        self.outflow = Outflow::Stream { out, response };
        Ok(())
    }

    /// inspect: every file the held body carries; an oversize body is one unscannable file.
    async fn inspect(&mut self, intake: &Intake) -> inspect::Found {
        // One reading, so one expansion budget, for everything the transaction carries.
        let reading = inspect::Reading::new(&self.state.settings.load().inspection);
        let mut files = self.inspect_body(intake, &reading).await?;
        files.extend(inspect::request_line_files(&self.parts.uri, &self.parts.headers, &reading).await);
        Ok(files)
    }

    async fn inspect_body(&mut self, intake: &Intake, reading: &inspect::Reading) -> inspect::Found {
        match intake {
            Intake::Oversize { .. } => Ok(vec![Inspected {
                facts: FileFacts {
                    name: None,
                    kind: "unknown".into(),
                    labels: vec![],
                    unscannable: Some(UnscannableReason::Oversize),
                    detected: Vec::new(),
                },
                path: Vec::new(),
                size: self.spool.len(),
                sha256: None,
            }]),
            Intake::Complete => {
                let path = self.parts.uri.path().to_string();
                inspect::files_held(&self.parts.headers, &path, &mut self.spool, &self.state.spool, reading.clone()).await
            }
        }
    }

    /// Aborts a streamed upstream request now (the origin never completes it).
    fn abort_upstream(&mut self) {
        if let Outflow::Stream { out, .. } = std::mem::replace(&mut self.outflow, Outflow::Hold) {
            out.abort();
        }
    }

    /// Reads what is left of the body and drops it before an early answer, so the client reads
    /// the answer instead of a reset mid-send: a lingering close, as nginx does it — for at most
    /// 30 s in all, and while bytes keep coming (5 s without any ends it).
    async fn discard_rest(&mut self) {
        let idle = Duration::from_secs(self.state.settings.load().config.body_idle_timeout_secs.clamp(1, 5));
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let wait = idle.min(until.saturating_duration_since(Instant::now()));
            match tokio::time::timeout(wait, self.body.frame()).await {
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
    }

    /// Who sends where.
    pub(crate) fn who(&self) -> Who<'_> {
        Who { state: &self.state, peer: self.peer, target: &self.target, user: self.user.as_ref() }
    }

    /// decide: the policy in force judges the transaction; the metrics count it.
    pub(crate) fn decide(&self, files: &[Inspected]) -> Decision {
        let who = Who { state: &self.state, peer: self.peer, target: &self.target, user: self.user.as_ref() };
        decide(&who, &self.parts.method, &self.parts.uri, files, self.spool.len(), self.started)
    }

    /// record: one audit record (label names from the catalog; the query only when configured).
    pub(crate) async fn record(&self, files: &[Inspected], decision: &Decision) -> Recorded {
        self.record_session(files, decision, None).await
    }

    /// record, for the file of an upload session.
    pub(crate) async fn record_session(&self, files: &[Inspected], decision: &Decision, session: Option<AuditSession>) -> Recorded {
        let who = Who { state: &self.state, peer: self.peer, target: &self.target, user: self.user.as_ref() };
        record(&who, self.parts.method.as_str(), &self.parts.uri, files, decision, self.started, session).await
    }

    /// block: the block page (JSON for API clients), and a streamed request aborted so the origin
    /// never completes it.
    pub(crate) fn block(self, decision: &Decision) -> Response<Body> {
        let catalog = decision.policy.catalog();
        let blocked: Vec<BlockedFile> = decision
            .facts
            .iter()
            .filter(|f| f.unscannable.is_some() || !f.labels.is_empty())
            .map(|f| BlockedFile {
                name: f.name.clone(),
                labels: f
                    .labels
                    .iter()
                    .map(|l| catalog.lookup(l.tenant.as_deref(), &l.id).map_or_else(|| l.id.clone(), |k| k.display_name.clone()))
                    .collect(),
            })
            .collect();
        let (content_type, page) = if block::wants_json(&self.parts.headers) {
            ("application/json", block::json(&decision.verdict, &decision.url, &blocked))
        } else {
            ("text/html; charset=utf-8", block::html(&decision.verdict, &decision.url, &blocked))
        };
        let mut r = Response::new(full(page));
        *r.status_mut() = StatusCode::FORBIDDEN;
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Outflow::Stream { out, .. } = self.outflow {
            out.abort();
        }
        r
    }

    /// release: the allowed body goes to the origin exactly as it came.
    pub(crate) async fn release(self, intake: Intake) -> Response<Body> {
        let Upload { state, target, parts, mut body, mut spool, outflow, .. } = self;
        let oversize = matches!(intake, Intake::Oversize { .. });
        match outflow {
            Outflow::Stream { mut out, response } => {
                // (The spool lives until the answer: a held start read back from it may still be
                // going out, and its disk stays counted until then.)
                out.release().await;
                if oversize {
                    // Allowed although too large to inspect: the rest passes straight through.
                    let idle = Duration::from_secs(state.settings.load().config.body_idle_timeout_secs);
                    loop {
                        match tokio::time::timeout(idle, body.frame()).await {
                            Ok(Some(Ok(f))) => {
                                if let Ok(data) = f.into_data() {
                                    out.pass(data).await;
                                }
                            }
                            Ok(None) => break,
                            Ok(Some(Err(_))) | Err(_) => {
                                out.abort();
                                return simple(StatusCode::BAD_REQUEST, "the upload was interrupted");
                            }
                        }
                    }
                }
                out.finish();
                let answer = response.await.unwrap_or_else(|_| simple(StatusCode::BAD_GATEWAY, "the upstream request failed"));
                drop(spool);
                answer
            }
            Outflow::Hold => {
                let held_file = match spool.reader() {
                    Ok(f) => f,
                    Err(e) => return simple(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot read the held upload: {e}")),
                };
                let mut replay = None;
                let forwarded: Body = match (intake, spool.memory(), held_file) {
                    // Held in memory and complete: forwarded as the chunks it arrived in.
                    (Intake::Complete, Some(held), None) => {
                        let forwarded = held.body().map_err(|never| match never {}).boxed();
                        replay = Some(held);
                        forwarded
                    }
                    // Spooled: the held bytes.
                    (Intake::Complete, memory, file) => StreamBody::new(held_stream(memory, file)).boxed(),
                    // Allowed although too large to inspect: the held bytes, then the rest as it comes.
                    (Intake::Oversize { pending }, memory, file) => {
                        let tail = futures_util::stream::iter(pending.map(|b| Ok(Frame::data(b))));
                        let rest =
                            futures_util::StreamExt::map(http_body_util::BodyStream::new(body), |f| f.map_err(|e| Box::new(e) as BoxError));
                        let held = futures_util::StreamExt::chain(held_stream(memory, file), tail);
                        StreamBody::new(futures_util::StreamExt::chain(held, rest)).boxed()
                    }
                };
                forward(&state, &target, parts, forwarded, replay).await
            }
        }
    }
}

/// The held bytes (memory part, then the spooled file) as body frames.
fn held_stream(
    memory: Option<crate::spool::Held>,
    file: Option<std::fs::File>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> {
    futures_util::StreamExt::map(crate::spool::stream(memory, file), |r| r.map(Frame::data).map_err(hyper_io_error))
}

/// Starts a `stream`-mode upload: the upstream request runs in its own task and takes the body
/// from the returned outflow.
fn start_streaming(
    state: &Arc<State>,
    target: &Target,
    parts: &http::request::Parts,
) -> (crate::stream::Outflow, tokio::task::JoinHandle<Response<Body>>) {
    let (outflow, stream) = crate::stream::channel(state.settings.load().inspection.stream_holdback);
    (outflow, start_upstream(state, target, parts, StreamBody::new(stream).boxed()))
}

/// The upstream request of a streamed upload, in its own task, sending `body`.
fn start_upstream(
    state: &Arc<State>,
    target: &Target,
    parts: &http::request::Parts,
    body: Body,
) -> tokio::task::JoinHandle<Response<Body>> {
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    let (fwd_parts, fwd_body) = request.into_parts();
    let state = Arc::clone(state);
    let target = Target { authority: target.authority.clone(), https: target.https };
    tokio::spawn(async move { forward(&state, &target, fwd_parts, fwd_body, None).await })
}
