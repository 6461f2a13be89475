//! `labelgate-pieces`: one file sent over several requests. Recognises the requests of the
//! resumable and multipart upload protocols the web uses, names the origin's upload session each
//! belongs to, and keeps track of which bytes of the file have been seen.
//!
//! | protocol | starts a session | a piece | completes the file |
//! |---|---|---|---|
//! | Google resumable | `?uploadType=resumable` (answer: `Location`) | `PUT` + `Content-Range` | the piece after which `0..N-1` are held |
//! | Google `X-Goog-Upload-Protocol` | command `start` (answer: `X-Goog-Upload-URL`) | command `upload` + `X-Goog-Upload-Offset` | command `finalize` |
//! | Graph / OneDrive / SharePoint | `POST …/createUploadSession` (answer: JSON `uploadUrl`) | `PUT` + `Content-Range` | as Google |
//! | tus 1.0 | `POST` + `Tus-Resumable` (answer: `Location`) | `PATCH` + `Upload-Offset` | the offset reaches `Upload-Length`; `Upload-Concat: final` |
//! | S3 multipart | `POST ?uploads` (answer: XML `UploadId`) | `PUT ?partNumber&uploadId` | `POST ?uploadId` (CompleteMultipartUpload) |
//! | Azure block blob | the blob URL itself | `PUT ?comp=block&blockid` | `PUT ?comp=blocklist` (Put Block List) |
//! | Dropbox | `upload_session/start` (answer: JSON `session_id`; its body is the first bytes) | `append_v2` + `Dropbox-API-Arg` cursor | `finish` |
//! | any other | — | `PUT`/`PATCH`/`POST` + `Content-Range` | as Google |
//!
//! Pure: no I/O, no clock. What is untrusted here (header values, answer bodies, the
//! CompleteMultipartUpload document) is parsed under the limits below and never panics.
//!
//! ```
//! use labelgate_pieces::{recognise, RequestHead, Recognised};
//! let mut headers = http::HeaderMap::new();
//! headers.insert("content-range", "bytes 0-99/300".parse().unwrap());
//! let head = RequestHead { method: &http::Method::PUT, authority: "Upload.Example:443", path: "/s/1", query: None, headers: &headers, has_body: true };
//! let Some(Recognised::Piece(piece)) = recognise(&head) else { panic!() };
//! assert_eq!((piece.offset, piece.end, piece.total), (0, Some(100), Some(300)));
//! assert_eq!(piece.key.as_str(), "upload.example/s/1");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod coverage;
mod parse;

pub use coverage::Coverage;
pub use parse::{azure_block_list, complete_multipart_parts, content_range, ContentRange, ListedPart, PartListError, MAX_PARTS};

use http::{HeaderMap, Method};

/// The largest offset or length a piece may name (2^53: larger numbers are no real file).
pub const MAX_OFFSET: u64 = 1 << 53;

/// The upload protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Google's `uploadType=resumable` (Drive, Cloud Storage JSON API, YouTube).
    GoogleResumable,
    /// Google's `X-Goog-Upload-Protocol: resumable` variant.
    GoogleUploadProtocol,
    /// Microsoft Graph / OneDrive / SharePoint upload sessions.
    GraphSession,
    /// tus 1.0 (core, creation, creation-with-upload, concatenation).
    Tus,
    /// Amazon S3 multipart upload (and S3-compatible stores).
    S3Multipart,
    /// Azure Blob Storage block blobs (Put Block, Put Block List).
    AzureBlocks,
    /// Dropbox upload sessions (`/2/files/upload_session/*`).
    Dropbox,
    /// Any other `Content-Range` upload to one URL.
    ContentRange,
}

impl Protocol {
    /// The stable name (audit, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::GoogleResumable => "google_resumable",
            Protocol::GoogleUploadProtocol => "google_upload_protocol",
            Protocol::GraphSession => "graph_upload_session",
            Protocol::Tus => "tus",
            Protocol::S3Multipart => "s3_multipart",
            Protocol::AzureBlocks => "azure_block_blob",
            Protocol::Dropbox => "dropbox_upload_session",
            Protocol::ContentRange => "content_range",
        }
    }

    /// Whether the file is complete only when a request says so (`finalize`), rather than when
    /// its last byte arrives.
    pub fn completes_on_finalize(self) -> bool {
        matches!(self, Protocol::GoogleUploadProtocol | Protocol::Dropbox)
    }
}

/// The origin's upload session: its host (lower-case, default port dropped) and the URL that
/// names the session. Pieces sent from different clients meet under the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(String);

impl SessionKey {
    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host part.
    pub fn host(&self) -> &str {
        self.0.split(['/', '?']).next().unwrap_or("")
    }
}

/// What the recogniser looks at: a request's head, and whether it has a body.
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// `host[:port]` the request goes to.
    pub authority: &'a str,
    /// The URL path.
    pub path: &'a str,
    /// The query string, if any.
    pub query: Option<&'a str>,
    /// The header fields.
    pub headers: &'a HeaderMap,
    /// Whether the request carries a body.
    pub has_body: bool,
}

/// Where the answer to a session-starting request names the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The `Location` header.
    Location,
    /// `X-Goog-Upload-URL` (or `Location`).
    GoogleUploadUrl,
    /// The `uploadUrl` member of a JSON body.
    JsonUploadUrl,
    /// The `UploadId` element of an S3 `InitiateMultipartUploadResult`.
    S3UploadId,
    /// The `session_id` member of a Dropbox JSON answer.
    DropboxSessionId,
}

/// A request that starts an upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The protocol.
    pub protocol: Protocol,
    /// The file's size, when the request declares it.
    pub total: Option<u64>,
    /// The file's name, when the request gives it.
    pub name: Option<String>,
    /// tus `Upload-Concat: partial`: a piece of a later concatenation, not a file of its own.
    pub partial: bool,
    /// The request's size could not be read (or, for tus, is absent without
    /// `Upload-Defer-Length`): the session it starts is incomplete.
    pub unreadable: bool,
    /// Where the answer names the session.
    pub answer: Answer,
    authority: String,
    path: String,
}

/// Bytes of the file at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The protocol.
    pub protocol: Protocol,
    /// The session.
    pub key: SessionKey,
    /// Where the bytes go.
    pub offset: u64,
    /// Where they end (exclusive), when the request declares it (`Content-Range`); otherwise
    /// the body's length decides.
    pub end: Option<u64>,
    /// The file's size, when the request declares it.
    pub total: Option<u64>,
    /// The request says the file is complete after it (`X-Goog-Upload-Command: finalize`).
    pub finalize: bool,
}

/// A part kept by name until a list puts the parts in order: an S3 part, an Azure block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The protocol.
    pub protocol: Protocol,
    /// The session (S3: the `uploadId`; Azure: the blob).
    pub key: SessionKey,
    /// The part's name: S3's `partNumber` (1–10000) in decimal, Azure's `blockid` (base64).
    pub id: String,
    /// `UploadPartCopy`, `Put Block From URL`: the bytes come from elsewhere, never through the
    /// proxy.
    pub copy: bool,
}

/// How a completing request lists the parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartList {
    /// S3 `CompleteMultipartUpload`.
    S3,
    /// Azure `BlockList`.
    AzureBlockList,
}

/// What a request is to an upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recognised {
    /// Starts a session (its answer names it).
    Start(Start),
    /// Bytes at an offset.
    Piece(Piece),
    /// An S3 part.
    Part(Part),
    /// S3 CompleteMultipartUpload, Azure Put Block List: the body lists the parts.
    Complete(SessionKey, PartList),
    /// tus `Upload-Concat: final`: the file is the concatenation of these sessions.
    Concat(Vec<SessionKey>),
    /// The session is abandoned (S3 AbortMultipartUpload, tus termination).
    Abort(SessionKey),
}

/// The query parameters that name a session or a part: one that appears twice makes the request
/// one whose place the proxy cannot know (a server reads one of them, which one is its choice).
const SESSION_PARAMS: [&str; 7] = ["uploadId", "partNumber", "uploads", "upload_id", "uploadType", "comp", "blockid"];

/// What `head` is to an upload session, if anything.
///
/// Fails closed: a request that carries a session's marks (its headers or query parameters) but
/// whose numbers or lists cannot be read is a piece whose place is unknown (`offset` =
/// `u64::MAX`), which the proxy decides as `incomplete` — never "not a piece".
pub fn recognise(head: &RequestHead<'_>) -> Option<Recognised> {
    // Header values as text, whatever bytes they hold (a value that is not visible ASCII is
    // still present, and still says what the request is).
    let header = |name: &str| head.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string());
    let query = parse::Query::new(head.query.unwrap_or(""));
    let start = |protocol, total, name, answer| Start {
        protocol,
        total,
        name,
        partial: false,
        unreadable: false,
        answer,
        authority: head.authority.to_string(),
        path: head.path.to_string(),
    };
    let method = head.method;
    let url_key = url_key(head.authority, head.path, head.query);
    let unplaced =
        |protocol, key: SessionKey| Recognised::Piece(Piece { protocol, key, offset: u64::MAX, end: None, total: None, finalize: false });
    if SESSION_PARAMS.iter().any(|p| query.repeated(p)) {
        return Some(unplaced(Protocol::ContentRange, url_key));
    }

    // S3: the query names the operation.
    if let Some(id) = query.get("uploadId") {
        let key = s3_key(head.authority, head.path, &id);
        match *method {
            Method::PUT => {
                let Some(number) = query.get("partNumber") else { return Some(unplaced(Protocol::S3Multipart, key)) };
                let Some(number) = parse::number(&number).filter(|n| (1..=u64::from(MAX_PARTS)).contains(n)) else {
                    return Some(unplaced(Protocol::S3Multipart, key));
                };
                return Some(Recognised::Part(Part {
                    protocol: Protocol::S3Multipart,
                    key,
                    id: number.to_string(),
                    copy: head.headers.contains_key("x-amz-copy-source"),
                }));
            }
            Method::POST => return Some(Recognised::Complete(key, PartList::S3)),
            Method::DELETE => return Some(Recognised::Abort(key)),
            _ => {}
        }
    }
    // Azure block blobs: blocks by id, then the list that commits them.
    if *method == Method::PUT {
        let blob = SessionKey(format!("{}{}", host_key(head.authority), head.path));
        match query.get("comp").map(|c| c.to_ascii_lowercase()).as_deref() {
            Some("block") => {
                let Some(id) = query.get("blockid").filter(|id| !id.is_empty() && id.len() <= 1024) else {
                    return Some(unplaced(Protocol::AzureBlocks, blob));
                };
                let copy = head.headers.contains_key("x-ms-copy-source");
                return Some(Recognised::Part(Part { protocol: Protocol::AzureBlocks, key: blob, id, copy }));
            }
            Some("blocklist") => return Some(Recognised::Complete(blob, PartList::AzureBlockList)),
            _ => {}
        }
    }
    if *method == Method::POST && query.has("uploads") {
        return Some(Recognised::Start(start(Protocol::S3Multipart, None, last_segment(head.path), Answer::S3UploadId)));
    }

    // tus: every request carries Tus-Resumable.
    if header("tus-resumable").is_some() {
        match *method {
            Method::POST => {
                if let Some(concat) = header("upload-concat") {
                    if concat.get(..5).is_some_and(|f| f.eq_ignore_ascii_case("final")) {
                        // Every listed URL must name a session; one that does not parse stands
                        // for a session the proxy never saw.
                        let urls = concat[5..].trim_start().strip_prefix(';').unwrap_or("\u{0}");
                        let mut keys: Vec<SessionKey> = urls
                            .split_ascii_whitespace()
                            .take(MAX_PARTS as usize)
                            .map(|u| key_of_url(u, head.authority).unwrap_or_else(unknown_session))
                            .collect();
                        if keys.is_empty() || urls.split_ascii_whitespace().count() > MAX_PARTS as usize {
                            keys.push(unknown_session());
                        }
                        return Some(Recognised::Concat(keys));
                    }
                }
                let length = header("upload-length");
                let total = length.as_deref().and_then(parse::number);
                let name = header("upload-metadata").as_deref().and_then(parse::tus_filename);
                let mut s = start(Protocol::Tus, total, name, Answer::Location);
                s.partial = header("upload-concat").is_some_and(|c| c.eq_ignore_ascii_case("partial"));
                // A size that cannot be read (or none, without Upload-Defer-Length) would leave
                // the session without an end: it is incomplete from the start.
                s.unreadable = (length.is_some() && total.is_none()) || (length.is_none() && header("upload-defer-length").is_none());
                return Some(Recognised::Start(s));
            }
            Method::PATCH => {
                let offset = header("upload-offset").as_deref().and_then(parse::number);
                let length = header("upload-length");
                let total = length.as_deref().and_then(parse::number);
                if offset.is_none() || (length.is_some() && total.is_none()) {
                    return Some(unplaced(Protocol::Tus, url_key));
                }
                return Some(Recognised::Piece(Piece {
                    protocol: Protocol::Tus,
                    key: url_key,
                    offset: offset.unwrap_or(u64::MAX),
                    end: None,
                    total,
                    finalize: false,
                }));
            }
            Method::DELETE => return Some(Recognised::Abort(url_key)),
            _ => {}
        }
    }

    // Dropbox: the operation is the path, the cursor a JSON header (or the `arg` parameter).
    if *method == Method::POST {
        if let Some(op) = head.path.strip_prefix("/2/files/upload_session/") {
            let arg = header("dropbox-api-arg").or_else(|| query.get("arg"));
            let arg: Option<serde_json::Value> = arg.as_deref().and_then(|a| serde_json::from_str(a).ok());
            let cursor = |arg: &Option<serde_json::Value>| -> Option<(String, u64)> {
                let arg = arg.as_ref()?;
                // append_v2 and finish carry a cursor; the older append names the session directly.
                let cursor = arg.get("cursor").unwrap_or(arg);
                let id = cursor.get("session_id")?.as_str()?.to_string();
                let offset = cursor.get("offset")?.as_u64().filter(|o| *o <= MAX_OFFSET)?;
                Some((id, offset))
            };
            let unplaced_here =
                || unplaced(Protocol::Dropbox, SessionKey(format!("{}/2/files/upload_session#?", host_key(head.authority))));
            return match op.trim_end_matches('/') {
                // Sessions started in a batch carry no bytes: their first append starts them here.
                "start_batch" => None,
                "start" => Some(Recognised::Start(start(Protocol::Dropbox, None, None, Answer::DropboxSessionId))),
                "append" | "append_v2" | "finish" => Some(match cursor(&arg) {
                    Some((id, offset)) => {
                        let finalize = op.starts_with("finish");
                        Recognised::Piece(Piece {
                            protocol: Protocol::Dropbox,
                            key: dropbox_key(head.authority, &id),
                            offset,
                            end: None,
                            total: None,
                            finalize,
                        })
                    }
                    None => unplaced_here(),
                }),
                // finish_batch commits sessions without carrying bytes: not read here, so the
                // sessions it names cannot be decided; refused as incomplete.
                _ => Some(unplaced_here()),
            };
        }
    }

    // Google's X-Goog-Upload-Protocol: the command says what the request is.
    if let Some(command) = header("x-goog-upload-command") {
        let commands: Vec<String> = command.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
        let has = |c: &str| commands.iter().any(|x| x == c);
        if has("start") {
            let total = header("x-goog-upload-header-content-length").as_deref().and_then(parse::number);
            return Some(Recognised::Start(start(Protocol::GoogleUploadProtocol, total, None, Answer::GoogleUploadUrl)));
        }
        if has("upload") || has("finalize") {
            let Some(offset) = header("x-goog-upload-offset").as_deref().and_then(parse::number) else {
                return Some(unplaced(Protocol::GoogleUploadProtocol, url_key));
            };
            return Some(Recognised::Piece(Piece {
                protocol: Protocol::GoogleUploadProtocol,
                key: url_key,
                offset,
                end: None,
                total: None,
                finalize: has("finalize"),
            }));
        }
        if has("cancel") {
            return Some(Recognised::Abort(url_key));
        }
        // `query`, or a command this recogniser does not know: what follows decides.
    }

    // Google resumable: the initiating request, then pieces to the session URL.
    let resumable = query.get("uploadType").is_some_and(|t| t.eq_ignore_ascii_case("resumable"));
    if resumable && query.get("upload_id").is_none() && (*method == Method::POST || *method == Method::PUT) {
        let total = header("x-upload-content-length").as_deref().and_then(parse::number);
        return Some(Recognised::Start(start(Protocol::GoogleResumable, total, None, Answer::Location)));
    }

    // Graph: createUploadSession on a drive item path (`…/root:/folder/name.docx:/createUploadSession`).
    if *method == Method::POST && head.path.to_ascii_lowercase().trim_end_matches('/').ends_with("/createuploadsession") {
        return Some(Recognised::Start(start(Protocol::GraphSession, None, parse::graph_item_name(head.path), Answer::JsonUploadUrl)));
    }

    // Any piece with a Content-Range (Google and Graph sessions, and others like them).
    if let Some(range) = header("content-range") {
        if *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS {
            return None;
        }
        let protocol = if query.get("upload_id").is_some() { Protocol::GoogleResumable } else { Protocol::ContentRange };
        return Some(match content_range(&range) {
            Some(ContentRange::Bytes { first, last, total }) if head.has_body => {
                Recognised::Piece(Piece { protocol, key: url_key, offset: first, end: Some(last + 1), total, finalize: false })
            }
            // `bytes */N` without bytes: a status query, or (Google) the request that finalises a
            // file whose size was not known before: an empty piece at the file's end.
            Some(ContentRange::Unsatisfied { total }) if !head.has_body => {
                Recognised::Piece(Piece { protocol, key: url_key, offset: total, end: Some(total), total: Some(total), finalize: false })
            }
            // `bytes */*` without bytes: only a status query.
            None if !head.has_body && range.split_ascii_whitespace().collect::<String>().eq_ignore_ascii_case("bytes*/*") => return None,
            // Anything else: a piece whose place the proxy cannot know.
            _ => unplaced(protocol, url_key),
        });
    }
    None
}

/// A key no session has: what a concatenation lists where it lists nothing readable.
fn unknown_session() -> SessionKey {
    SessionKey("\u{0}unreadable".into())
}

impl Start {
    /// Whether the session is named in the answer's body (JSON or XML), not only its headers.
    pub fn needs_body(&self) -> bool {
        matches!(self.answer, Answer::JsonUploadUrl | Answer::S3UploadId | Answer::DropboxSessionId)
    }

    /// Whether the request's own body is the file's first bytes (tus creation-with-upload,
    /// Dropbox's `start`), rather than metadata.
    pub fn carries_first_bytes(&self) -> bool {
        matches!(self.protocol, Protocol::Tus | Protocol::Dropbox)
    }

    /// The session the origin's answer names, if the answer is a success that names one.
    pub fn session(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Option<SessionKey> {
        if !(200..300).contains(&status) {
            return None;
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        match self.answer {
            Answer::Location => key_of_url(header("location")?, &self.authority),
            Answer::GoogleUploadUrl => key_of_url(header("x-goog-upload-url").or_else(|| header("location"))?, &self.authority),
            Answer::JsonUploadUrl => {
                let value: serde_json::Value = serde_json::from_slice(body).ok()?;
                key_of_url(value.get("uploadUrl")?.as_str()?, &self.authority)
            }
            Answer::S3UploadId => Some(s3_key(&self.authority, &self.path, &parse::s3_upload_id(body)?)),
            Answer::DropboxSessionId => {
                let value: serde_json::Value = serde_json::from_slice(body).ok()?;
                Some(dropbox_key(&self.authority, value.get("session_id")?.as_str()?))
            }
        }
    }
}

/// The key of a Dropbox upload session.
fn dropbox_key(authority: &str, session_id: &str) -> SessionKey {
    SessionKey(format!("{}/2/files/upload_session#{session_id}", host_key(authority)))
}

/// The key of an S3 multipart upload.
fn s3_key(authority: &str, path: &str, upload_id: &str) -> SessionKey {
    SessionKey(format!("{}{}?uploadId={}", host_key(authority), path, upload_id))
}

/// The key of a session URL: Google's `upload_id` alone names its session; otherwise the whole
/// path and query.
fn url_key(authority: &str, path: &str, query: Option<&str>) -> SessionKey {
    let host = host_key(authority);
    let q = parse::Query::new(query.unwrap_or(""));
    if let Some(id) = q.get("upload_id") {
        return SessionKey(format!("{host}{path}?upload_id={id}"));
    }
    match query {
        Some(q) if !q.is_empty() => SessionKey(format!("{host}{path}?{q}")),
        _ => SessionKey(format!("{host}{path}")),
    }
}

/// The key of an absolute URL, or of a path on `authority`.
fn key_of_url(url: &str, authority: &str) -> Option<SessionKey> {
    let uri: http::Uri = url.trim().parse().ok()?;
    let host = match uri.authority() {
        Some(a) => a.as_str().to_string(),
        None if url.starts_with('/') => authority.to_string(),
        None => return None,
    };
    Some(url_key(&host, uri.path(), uri.query()))
}

/// A host as keys spell it: lower-case, without a default port.
fn host_key(authority: &str) -> String {
    let lower = authority.to_ascii_lowercase();
    let lower = lower.rsplit_once('@').map_or(lower.as_str(), |(_, h)| h);
    lower.strip_suffix(":443").or_else(|| lower.strip_suffix(":80")).unwrap_or(lower).trim_end_matches('.').to_string()
}

/// The last non-empty path segment, percent-decoded.
fn last_segment(path: &str) -> Option<String> {
    let seg = path.rsplit('/').find(|s| !s.is_empty())?;
    Some(percent_encoding::percent_decode_str(seg).decode_utf8_lossy().into_owned())
}

#[cfg(test)]
mod tests;
