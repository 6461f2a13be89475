//! Splits an upload body into the files it carries and reads each one's labels: multipart parts
//! one by one (with their filenames), any other body as one file; `Content-Encoding: gzip` or
//! `deflate` is decoded for inspection only (the original bytes are what is forwarded). Each
//! file is opened in turn (archives, e-mail) and every file inside it becomes a file of the
//! transaction, with its path, exactly as if it had been uploaded alone.

use crate::spool::{Held, Spool, SpoolArea};
use bytes::Bytes;
use labelgate_extract::Limits;
use labelgate_policy::facts::{inspection_facts, FileRecord};
use labelgate_policy::{FileFacts, UnscannableReason};
use labelgate_unpack::{Inspection, UnpackLimits};
use std::io::Read;
use std::sync::Arc;

/// A shared resource (the spool) ran out while a body was being read for inspection: the
/// transaction is refused for now (503), never decided on what could be read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unavailable(pub(crate) &'static str);

impl From<crate::spool::SpoolError> for Unavailable {
    fn from(e: crate::spool::SpoolError) -> Self {
        match e {
            crate::spool::SpoolError::Quota => Unavailable("spool_quota"),
            crate::spool::SpoolError::Io(e) => {
                tracing::error!(error = %e, "cannot spool an upload for inspection");
                Unavailable("spool_write")
            }
        }
    }
}

/// What a walk over a body found, or why it could not be read now.
pub(crate) type Found = Result<Vec<Inspected>, Unavailable>;

/// One inspected file.
pub(crate) struct Inspected {
    pub facts: FileFacts,
    /// For a file inside another: the names from the uploaded file down (empty for the
    /// uploaded file itself).
    pub path: Vec<String>,
    pub size: u64,
    /// Hex SHA-256 of the file: for labeled or unscannable files (those blocks and audits are
    /// about), or for every file with `hash_all`. Clean files are not hashed on the hot path.
    pub sha256: Option<String>,
}

/// How files are read: the size cap, the limits on files inside files, and whether every file
/// is hashed.
#[derive(Clone)]
pub(crate) struct Reading {
    /// `max_body`: what one file or text is read into memory up to.
    pub max: u64,
    /// `max_inspect` (within the spool): what a body decodes into the spool up to.
    pub inspect_limit: u64,
    pub hash_all: bool,
    pub unpack: UnpackLimits,
    /// The transaction's expansion budget, shared by all its files (multipart parts).
    pub budget: Arc<labelgate_unpack::Budget>,
}

impl Reading {
    /// How a transaction's files are read under `config`, with a fresh expansion budget.
    pub(crate) fn new(config: &crate::InspectionConfig) -> Reading {
        Reading {
            max: config.max_body,
            inspect_limit: config.inspect_limit(),
            hash_all: config.hash_all,
            unpack: config.unpack_limits(),
            budget: Arc::new(labelgate_unpack::Budget::new()),
        }
    }

    fn limits(&self) -> Limits {
        Limits { max_buffered_bytes: self.max, ..Limits::default() }
    }

    /// The bounds of the walks for files encoded in a body.
    pub(crate) fn body_limits(&self) -> labelgate_body::Limits {
        labelgate_body::Limits { max_decoded_bytes: self.unpack.max_inner_bytes, ..labelgate_body::Limits::default() }
    }

    fn wants_hash(&self, facts: &FileFacts) -> bool {
        self.hash_all || !facts.labels.is_empty() || facts.unscannable.is_some()
    }
}

fn hex_sha256(digest: ring::digest::Digest) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The outer file's record, then one per inner file (labeled and flagged inner files carry the
/// SHA-256 the engine took while their bytes were at hand).
fn with_inner(
    name: Option<String>,
    inspection: &Inspection,
    size: u64,
    outer_hash: impl FnOnce(&FileFacts) -> Option<String>,
) -> Vec<Inspected> {
    let mut out = Vec::new();
    let mut outer_hash = Some(outer_hash);
    let root = name.clone().unwrap_or_else(|| "(upload)".to_string());
    for FileRecord { facts, path, size: inner_size, sha256: inner_sha256 } in inspection_facts(name, inspection) {
        match outer_hash.take() {
            Some(hash) => {
                let sha256 = hash(&facts);
                out.push(Inspected { facts, path, size, sha256 });
            }
            None => {
                let mut full = Vec::with_capacity(path.len() + 1);
                full.push(root.clone());
                full.extend(path);
                out.push(Inspected { facts, path: full, size: inner_size.unwrap_or(0), sha256: inner_sha256 });
            }
        }
    }
    out
}

/// Reads a file held in memory and every file in it. Opening containers can cost real CPU
/// (decompression up to `max_expanded_bytes`), so anything the engine reads beyond plain bytes
/// is read off the async workers; a body whose first bytes match no format stays inline.
async fn one_held(name: Option<String>, held: Held, reading: Reading) -> Vec<Inspected> {
    let head: Vec<u8> = {
        let mut head = Vec::with_capacity(labelgate_extract::SNIFF_BYTES);
        for chunk in held.chunks() {
            let take = (labelgate_extract::SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            if head.len() == labelgate_extract::SNIFF_BYTES {
                break;
            }
        }
        head
    };
    if labelgate_extract::sniff_kind(&head).is_none() && held.len() <= labelgate_extract::SNIFF_BYTES as u64 {
        // Nothing a small unrecognised body could open costs more than reading it.
        return one(name, &held, &reading);
    }
    let size = held.len();
    tokio::task::spawn_blocking(move || one(name, &held, &reading)).await.unwrap_or_else(|_| vec![malformed(None, size)])
}

/// Reads a file held in memory, in place (its chunks are never joined), and every file in it.
fn one(name: Option<String>, held: &Held, reading: &Reading) -> Vec<Inspected> {
    let mut input = labelgate_extract::SegmentsInput::new(held.chunks());
    let inspection = labelgate_unpack::inspect_with_budget(&mut input, &reading.limits(), &reading.unpack, &reading.budget);
    with_inner(name, &inspection, held.len(), |facts| {
        reading.wants_hash(facts).then(|| {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            for c in held.chunks() {
                ctx.update(c);
            }
            hex_sha256(ctx.finish())
        })
    })
}

fn malformed(name: Option<String>, size: u64) -> Inspected {
    unscannable(name, size, UnscannableReason::Malformed)
}

fn unscannable(name: Option<String>, size: u64, reason: UnscannableReason) -> Inspected {
    Inspected {
        facts: FileFacts { name, kind: "unknown".into(), labels: Vec::new(), unscannable: Some(reason), detected: Vec::new() },
        path: Vec::new(),
        size,
        sha256: None,
    }
}

/// Reads a file held on disk, and every file in it, off the async workers (it may read a few
/// pieces of a large file, or decompress members).
async fn one_from_disk(name: Option<String>, file: std::fs::File, size: u64, reading: Reading) -> Vec<Inspected> {
    let result = tokio::task::spawn_blocking(move || {
        let mut file = file;
        let inspection = match labelgate_extract::ReaderInput::new(std::io::BufReader::new(&mut file)) {
            Ok(mut input) => labelgate_unpack::inspect_with_budget(&mut input, &reading.limits(), &reading.unpack, &reading.budget),
            Err(e) => Inspection { outer: Err(e), container: None, inner: Vec::new() },
        };
        with_inner(name, &inspection, size, |facts| if reading.wants_hash(facts) { hash_file(&mut file).ok() } else { None })
    })
    .await;
    result.unwrap_or_else(|_| vec![malformed(None, size)])
}

pub(crate) fn hash_file(file: &mut std::fs::File) -> std::io::Result<String> {
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex_sha256(ctx.finish()));
        }
        ctx.update(&buf[..n]);
    }
}

/// Every file in a held body, in memory or spooled to disk. Multipart parts larger than the
/// memory limit are spooled on their own and read from disk.
pub(crate) async fn files_held(
    headers: &http::HeaderMap,
    path: &str,
    body: &mut crate::spool::Spool,
    area: &std::sync::Arc<crate::spool::SpoolArea>,
    reading: Reading,
) -> Found {
    let size = body.len();
    let reading = &reading;
    let memory = body.memory();
    let file = match (&memory, body.reader()) {
        (Some(_), _) => None,
        (None, Ok(Some(f))) => Some(f),
        // The spool file cannot be opened again (out of descriptors, an I/O error): not a
        // malformed upload, a resource gone — refused for now.
        (None, _) => return Err(Unavailable("spool_read")),
    };
    // Every content coding, in every Content-Encoding field, undone in reverse order.
    let codings = match labelgate_body::coding::parse_codings(headers.get_all(http::header::CONTENT_ENCODING).iter().map(|v| v.as_bytes()))
    {
        Ok(c) => c,
        Err(_) => return Ok(vec![unscannable(None, size, UnscannableReason::Unsupported)]),
    };
    if !codings.is_empty() {
        // An encoded body is decoded into a second spool (memory up to the limit, then disk),
        // never into an unbounded buffer, and inspected from there.
        let encoded: Box<dyn Read + Send> = match (memory, file) {
            (Some(held), _) => Box::new(ChunksReader { held, next: 0, at: 0 }),
            (None, Some(f)) => Box::new(std::io::BufReader::new(f)),
            (None, None) => return Ok(vec![malformed(None, size)]),
        };
        let spool_area = Arc::clone(area);
        let limits = reading.decode_limits(size);
        let decoded = tokio::task::spawn_blocking(move || {
            let decoder = labelgate_body::coding::decoder(&codings, encoded).map_err(|_| DecodeFailure::Broken)?;
            decode_into_spool(decoder, &spool_area, limits)
        })
        .await;
        let mut identity = headers.clone();
        identity.remove(http::header::CONTENT_ENCODING);
        return match decoded {
            Ok(Ok(mut plain)) => Box::pin(files_held(&identity, path, &mut plain, area, reading.clone())).await,
            // Decoded past a limit (max_inspect, or max_ratio past max_body: a bomb): what was
            // decoded is still inspected — a file at its start is read — and the body is also
            // unscannable for that reason.
            Ok(Err(DecodeFailure::PastLimit(mut start, reason))) => {
                let mut files = Box::pin(files_held(&identity, path, &mut start, area, reading.clone())).await?;
                files.push(unscannable(None, size, reason));
                Ok(files)
            }
            Ok(Err(DecodeFailure::Unavailable(why))) => Err(why),
            Ok(Err(DecodeFailure::Broken)) | Err(_) => Ok(vec![malformed(None, size)]),
        };
    }
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    // A raw upload: one file, named after the last path segment.
    let name = path.rsplit('/').next().filter(|s| !s.is_empty()).map(str::to_string);
    Box::pin(one_body(name, memory, file, size, content_type, area, reading, 0)).await
}

/// The `boundary` parameter of a `multipart/*` media type (any subtype: form-data, mixed,
/// related, alternative…).
fn multipart_boundary(content_type: &str) -> Option<String> {
    let lower = content_type.trim_start().to_ascii_lowercase();
    if !lower.starts_with("multipart/") {
        return None;
    }
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string()).filter(|b| !b.is_empty())
    })
}

/// What a held body decodes to under its `Content-Encoding`: `Ok(Ok(None))` when it has none, a
/// new spool when it has one, `Ok(Err(()))` when it cannot be decoded within the limits, `Err`
/// when the spool could not hold what it decodes to.
pub(crate) async fn decoded_body(
    headers: &http::HeaderMap,
    body: &mut Spool,
    area: &Arc<SpoolArea>,
    reading: &Reading,
) -> Result<Result<Option<Spool>, ()>, Unavailable> {
    let Ok(codings) = labelgate_body::coding::parse_codings(headers.get_all(http::header::CONTENT_ENCODING).iter().map(|v| v.as_bytes()))
    else {
        return Ok(Err(()));
    };
    if codings.is_empty() {
        return Ok(Ok(None));
    }
    let encoded: Box<dyn Read + Send> = match (body.memory(), body.reader()) {
        (Some(held), _) => Box::new(ChunksReader { held, next: 0, at: 0 }),
        (None, Ok(Some(f))) => Box::new(std::io::BufReader::new(f)),
        _ => return Ok(Err(())),
    };
    let area = Arc::clone(area);
    let limits = reading.decode_limits(body.len());
    let decoded = tokio::task::spawn_blocking(move || {
        let decoder = labelgate_body::coding::decoder(&codings, encoded).map_err(|_| DecodeFailure::Broken)?;
        decode_into_spool(decoder, &area, limits)
    })
    .await;
    match decoded {
        Ok(Ok(plain)) => Ok(Ok(Some(plain))),
        Ok(Err(DecodeFailure::Unavailable(why))) => Err(why),
        _ => Ok(Err(())),
    }
}

/// How deep multipart bodies inside multipart parts are opened.
const MAX_MULTIPART_DEPTH: u32 = 8;

/// One body (an upload, a multipart part): a multipart body part by part, otherwise one file
/// held in memory or on disk and — when its bytes are text (JSON, a form, base64) — every file
/// encoded in it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn one_body(
    name: Option<String>,
    memory: Option<Held>,
    file: Option<std::fs::File>,
    size: u64,
    content_type: &str,
    area: &Arc<SpoolArea>,
    reading: &Reading,
    depth: u32,
) -> Found {
    if let Some(boundary) = multipart_boundary(content_type) {
        if depth >= MAX_MULTIPART_DEPTH {
            return Ok(vec![unscannable(name, size, UnscannableReason::NestedLimit)]);
        }
        return multipart_body(name, memory, file, size, boundary, area, reading, depth).await;
    }
    let mut files = match (&memory, &file) {
        (Some(held), _) => one_held(name.clone(), held.clone(), reading.clone()).await,
        (None, Some(f)) => match f.try_clone() {
            Ok(f) => one_from_disk(name.clone(), f, size, reading.clone()).await,
            Err(_) => return Err(Unavailable("spool_read")),
        },
        (None, None) => vec![malformed(name.clone(), size)],
    };
    let raw_kind_known = files.first().is_some_and(|f| f.facts.kind != "unknown");
    if raw_kind_known {
        return Ok(files);
    }
    // The body from its start, as many times as the walk needs it.
    let open = move || from_start(&memory, &file);
    let form = content_type.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded");
    let charset = content_type
        .split(';')
        .skip(1)
        .find_map(|p| p.split_once('=').filter(|(k, _)| k.trim().eq_ignore_ascii_case("charset")).map(|(_, v)| v.trim().to_string()));
    let limits = reading.body_limits();
    let text_cap = reading.max;
    let (found, unread) =
        tokio::task::spawn_blocking(move || encoded_files(&open, form, charset.as_deref(), &limits, text_cap)).await.unwrap_or_default();
    files.extend(inspect_candidates(name.as_deref(), found, reading).await);
    if let Some(reason) = unread {
        // Not read whole (text past max_body, more encoded files than max_candidates): what it
        // may still carry is not known.
        files.push(unscannable(name, size, reason));
    }
    Ok(files)
}

/// The files encoded in a text body: JSON strings (when it starts like JSON), form values (when
/// it is declared or shaped as a form), or the body as one encoded string.
fn encoded_files(
    open: &dyn Fn() -> Option<Box<dyn std::io::BufRead + Send>>,
    declared_form: bool,
    charset: Option<&str>,
    limits: &labelgate_body::Limits,
    text_cap: u64,
) -> (Vec<labelgate_body::Candidate>, Option<UnscannableReason>) {
    // What could not be read whole: text past max_body is `oversize`; more encoded files than
    // max_candidates is `nested_limit` (decoys could hide one more).
    let capped = |found: &[labelgate_body::Candidate]| (found.len() >= limits.max_candidates).then_some(UnscannableReason::NestedLimit);
    // The body from its start, UTF-16 and UTF-32 text (by BOM, charset or its NUL pattern) read
    // as UTF-8; with whether it was cut at text_cap.
    let open_text = || -> Option<(Box<dyn std::io::BufRead + Send>, bool)> {
        let mut reader = open()?;
        let wide = {
            use std::io::BufRead;
            let head = reader.fill_buf().ok()?;
            labelgate_body::wide_text_as_utf8(&head[..head.len().min(64)], charset).is_some()
        };
        if !wide {
            return Some((reader, false));
        }
        let mut raw = Vec::new();
        reader.take(text_cap.saturating_add(1)).read_to_end(&mut raw).ok()?;
        let cut = raw.len() as u64 > text_cap;
        if cut {
            // Cut on a whole code unit of either width.
            raw.truncate((text_cap - text_cap % 4) as usize);
        }
        let text = labelgate_body::wide_text_as_utf8(&raw, charset).unwrap_or_default();
        Some((Box::new(std::io::Cursor::new(text)), cut))
    };
    let Some((mut reader, mut cut)) = open_text() else { return (Vec::new(), None) };
    let first = {
        use std::io::BufRead;
        let head = reader.fill_buf().unwrap_or(&[]);
        head.iter().find(|b| !b.is_ascii_whitespace()).copied()
    };
    let mut from_json = Vec::new();
    if matches!(first, Some(b'{' | b'[')) {
        let (found, error) = labelgate_body::json_candidates(&mut reader, limits);
        if matches!(error, Some(labelgate_body::BodyError::Limit { .. })) {
            // A walk limit (max_candidates, nesting): decoys could hide one more.
            return (found, Some(UnscannableReason::NestedLimit));
        }
        if error.is_none() {
            let why = capped(&found).or(cut.then_some(UnscannableReason::Oversize));
            return (found, why);
        }
        // Not JSON after all, or broken where a lenient parser would go on: read as text too.
        from_json = found;
        let Some((again, again_cut)) = open_text() else { return (from_json, None) };
        (reader, cut) = (again, again_cut);
    }
    // Forms and text are read whole (bounded by max_body, as the body is); a body whose start is
    // not text (media, archives, anything binary) is not: no form or base64 run is in it.
    let looks_text = {
        use std::io::BufRead;
        let head = reader.fill_buf().unwrap_or(&[]);
        let head = &head[..head.len().min(4096)];
        !head.is_empty()
            && memchr::memchr(0, head).is_none()
            && head.iter().filter(|&&b| b < 0x20 && !b.is_ascii_whitespace()).count() * 100 <= head.len()
    };
    if !looks_text {
        // A compressed stream sent without a declared coding (zlib, raw deflate, brotli): its
        // decompressed start decides whether the whole is decompressed.
        let head_decides = {
            use std::io::BufRead;
            let head = reader.fill_buf().unwrap_or(&[]);
            labelgate_body::decompressed_file(&head[..head.len().min(8192)], limits).is_some()
        };
        if !head_decides {
            return (from_json, None);
        }
        let cap = limits.max_decoded_bytes.saturating_mul(4);
        let mut all = Vec::new();
        if reader.take(cap.saturating_add(1)).read_to_end(&mut all).is_err() {
            return (from_json, None);
        }
        let why = (all.len() as u64 > cap).then_some(UnscannableReason::Oversize);
        let mut found = from_json;
        found.extend(
            labelgate_body::decompressed_file(&all[..all.len().min(cap as usize)], limits)
                .map(|data| labelgate_body::Candidate { name: "(decompressed body)".into(), data }),
        );
        return (found, why);
    }
    let mut text = Vec::new();
    if reader.take(text_cap.saturating_add(1)).read_to_end(&mut text).is_err() {
        return (from_json, None);
    }
    if text.len() as u64 > text_cap {
        cut = true;
        text.truncate(text_cap as usize);
    }
    let form_shaped =
        !text.is_empty() && text[..text.len().min(4096)].iter().all(|&b| b.is_ascii_graphic()) && memchr::memchr(b'=', &text).is_some();
    let mut found = Vec::new();
    if declared_form || form_shaped {
        found = labelgate_body::form_candidates(&text, limits);
    }
    if found.is_empty() {
        found = labelgate_body::text_candidates(&text, limits);
    }
    let why = capped(&found).or(cut.then_some(UnscannableReason::Oversize));
    found.splice(0..0, from_json);
    (found, why)
}

/// Inspects candidate files found encoded in a body (named by where they were found).
pub(crate) async fn inspect_candidates(outer: Option<&str>, found: Vec<labelgate_body::Candidate>, reading: &Reading) -> Vec<Inspected> {
    let mut out = Vec::new();
    for candidate in found {
        let name = Some(match outer {
            Some(o) => format!("{o} \u{25b8} {}", candidate.name),
            None => candidate.name.clone(),
        });
        match candidate.data {
            Ok(data) => out.extend(one_held(name, Held::from_vec(data), reading.clone()).await),
            Err(labelgate_body::BodyError::Limit { .. }) => out.push(unscannable(name, 0, UnscannableReason::NestedLimit)),
            Err(_) => out.push(malformed(name, 0)),
        }
    }
    out
}

/// A multipart body: its parts, and what lies outside them (a preamble before the first
/// delimiter, an epilogue after the close delimiter — bytes no part accounts for, which a
/// receiving application may still read).
#[allow(clippy::too_many_arguments)]
async fn multipart_body(
    name: Option<String>,
    memory: Option<Held>,
    file: Option<std::fs::File>,
    size: u64,
    boundary: String,
    area: &Arc<SpoolArea>,
    reading: &Reading,
    depth: u32,
) -> Found {
    let outside = {
        let source = from_start(&memory, &file);
        let delimiter = boundary.clone();
        let cap = reading.unpack.max_inner_bytes;
        match source {
            Some(source) => {
                tokio::task::spawn_blocking(move || labelgate_body::multipart::outside_parts(source, delimiter.as_bytes(), cap))
                    .await
                    .unwrap_or_default()
            }
            None => Default::default(),
        }
    };
    if let Some(f) = &file {
        // The scan above read through a clone that shares this file's offset.
        use std::io::Seek;
        let _ = f.try_clone().map(|mut f| f.seek(std::io::SeekFrom::Start(0)));
    }
    let mut out = multipart_files(crate::spool::stream(memory, file), boundary, area, reading.clone(), depth).await?;
    if out.is_empty() {
        // A multipart body with no part at all is still a body: its bytes as one file.
        out.push(Inspected {
            facts: FileFacts { name: name.clone(), kind: "unknown".into(), labels: Vec::new(), unscannable: None, detected: Vec::new() },
            path: Vec::new(),
            size,
            sha256: None,
        });
    }
    for (label, bytes) in [("(preamble)", outside.0), ("(epilogue)", outside.1)] {
        let trimmed_len = bytes.trim_ascii().len();
        if trimmed_len == 0 {
            continue;
        }
        let shown = Some(match &name {
            Some(n) => format!("{n} \u{25b8} {label}"),
            None => label.to_string(),
        });
        let len = bytes.len() as u64;
        let mut found = Box::pin(one_body(shown, Some(Held::from_vec(bytes)), None, len, "", area, reading, depth + 1)).await?;
        if found.first().is_some_and(|f| f.facts.kind == "unknown" && f.facts.labels.is_empty() && f.facts.unscannable.is_none()) {
            found.remove(0);
        }
        out.extend(found);
    }
    Ok(out)
}

/// Every file part of a multipart body, whether it is held in memory or on disk. Each part is
/// held on its own (in memory, or spooled when large) and read from there; a part with a
/// transfer encoding or a content coding is decoded into a spool of its own as it is read.
async fn multipart_files(
    body: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    boundary: String,
    area: &Arc<SpoolArea>,
    reading: Reading,
    depth: u32,
) -> Found {
    let mut multipart = multer::Multipart::new(body, boundary);
    let mut out = Vec::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(mut field)) => {
                // Every part is read, file or not: a text field may carry a file encoded.
                let out_name_is_file = field.file_name().is_some();
                let name = field.file_name().or(field.name()).map(str::to_string);
                let part_type = field.content_type().map(|m| m.to_string()).unwrap_or_default();
                let part_codings = labelgate_body::coding::parse_codings(
                    field.headers().get_all(http::header::CONTENT_ENCODING).iter().map(|v| v.as_bytes()),
                );
                let transfer = field
                    .headers()
                    .get("content-transfer-encoding")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim().to_ascii_lowercase())
                    .unwrap_or_default();
                let mut part = Spool::new(area);
                loop {
                    match field.chunk().await {
                        // A part the spool cannot hold: the body cannot be inspected now.
                        Ok(Some(c)) => part.push(c)?,
                        Ok(None) => break,
                        Err(_) => {
                            out.push(malformed(name.clone(), part.len()));
                            return Ok(out);
                        }
                    }
                }
                let (memory, file) = match (part.memory(), part.reader()) {
                    (Some(held), _) => (Some(held), None),
                    (None, Ok(Some(f))) => (None, Some(f)),
                    _ => {
                        out.push(malformed(name, part.len()));
                        continue;
                    }
                };
                let Ok(codings) = part_codings else {
                    out.push(unscannable(name, part.len(), UnscannableReason::Unsupported));
                    continue;
                };
                let transfer_coded = matches!(transfer.as_str(), "base64" | "quoted-printable");
                // The part as it decodes (transfer encoding, then content codings), into a spool of
                // its own: never whole in memory, bounded as a body is.
                let mut decoded_spool = None;
                let (memory, file, size) = if transfer_coded || !codings.is_empty() {
                    let source: Box<dyn Read + Send> = match (memory, file) {
                        (Some(held), _) => Box::new(ChunksReader { held, next: 0, at: 0 }),
                        (None, Some(f)) => Box::new(std::io::BufReader::new(f)),
                        (None, None) => Box::new(std::io::empty()),
                    };
                    let source: Box<dyn Read + Send> = match transfer.as_str() {
                        "base64" => Box::new(labelgate_unpack::transfer::Base64Reader::new(source)),
                        "quoted-printable" => Box::new(labelgate_unpack::transfer::QuotedPrintableReader::new(source)),
                        _ => source,
                    };
                    let spool_area = Arc::clone(area);
                    let limits = reading.decode_limits(part.len());
                    let decoded = tokio::task::spawn_blocking(move || {
                        let decoder: Box<dyn Read + Send> = if codings.is_empty() {
                            source
                        } else {
                            Box::new(labelgate_body::coding::decoder(&codings, source).map_err(|_| DecodeFailure::Broken)?)
                        };
                        decode_into_spool(decoder, &spool_area, limits)
                    })
                    .await;
                    let mut plain = match decoded {
                        Ok(Ok(plain)) => plain,
                        // Past a limit: its decoded start is still read, and the part is unscannable.
                        Ok(Err(DecodeFailure::PastLimit(start, reason))) => {
                            out.push(unscannable(name.clone(), part.len(), reason));
                            start
                        }
                        Ok(Err(DecodeFailure::Unavailable(why))) => return Err(why),
                        Ok(Err(DecodeFailure::Broken)) | Err(_) => {
                            out.push(malformed(name, part.len()));
                            continue;
                        }
                    };
                    let size = plain.len();
                    let (memory, file) = match (plain.memory(), plain.reader()) {
                        (Some(held), _) => (Some(held), None),
                        (None, Ok(Some(f))) => (None, Some(f)),
                        _ => {
                            out.push(malformed(name, size));
                            continue;
                        }
                    };
                    decoded_spool = Some(plain);
                    (memory, file, size)
                } else {
                    (memory, file, part.len())
                };
                let text_field = field_is_text(&part_type, &out_name_is_file);
                let mut found = Box::pin(one_body(name, memory, file, size, &part_type, area, &reading, depth + 1)).await?;
                drop(decoded_spool);
                // A text field that is plain text is no file of the upload: only what it carries is.
                if text_field
                    && found
                        .first()
                        .is_some_and(|f| f.facts.kind == "unknown" && f.facts.labels.is_empty() && f.facts.unscannable.is_none())
                {
                    found.remove(0);
                }
                out.extend(found);
            }
            Ok(None) => break,
            Err(_) => {
                out.push(malformed(None, 0));
                break;
            }
        }
    }
    Ok(out)
}

/// A held body (in memory, or spooled) from its start, as many times as a walk needs it.
fn from_start(memory: &Option<Held>, file: &Option<std::fs::File>) -> Option<Box<dyn std::io::BufRead + Send>> {
    match (memory, file) {
        (Some(held), _) => Some(Box::new(ChunksReader { held: held.clone(), next: 0, at: 0 })),
        (None, Some(f)) => {
            // Clones share the file's offset: back to the start each time.
            use std::io::Seek;
            let mut f = f.try_clone().ok()?;
            f.seek(std::io::SeekFrom::Start(0)).ok()?;
            Some(Box::new(std::io::BufReader::with_capacity(64 * 1024, f)))
        }
        (None, None) => None,
    }
}

/// Reads a held body's chunks in order (the input of a decoder).
struct ChunksReader {
    held: Held,
    next: usize,
    at: usize,
}

/// The held chunks are the buffer: a walk reads them in place, never copied into another one.
impl std::io::BufRead for ChunksReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while let Some(chunk) = self.held.chunks().get(self.next) {
            if self.at < chunk.len() {
                return Ok(&self.held.chunks()[self.next][self.at..]);
            }
            self.next += 1;
            self.at = 0;
        }
        Ok(&[])
    }

    fn consume(&mut self, amount: usize) {
        self.at += amount;
    }
}

impl Read for ChunksReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(chunk) = self.held.chunks().get(self.next) {
            let rest = &chunk[self.at..];
            if rest.is_empty() {
                self.next += 1;
                self.at = 0;
                continue;
            }
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.at += n;
            return Ok(n);
        }
        Ok(0)
    }
}

/// Why an encoded body could not be decoded for inspection.
enum DecodeFailure {
    /// It decodes past a limit: what was decoded until then, and the unscannable reason
    /// (`oversize` past `max_inspect`; `nested_limit` past `max_ratio`, a decompression bomb).
    PastLimit(Spool, UnscannableReason),
    /// The spool could not hold what it decodes to.
    Unavailable(Unavailable),
    /// The coding is unknown or the data is corrupt.
    Broken,
}

/// How far an encoded body (or part) of `encoded` bytes is decoded.
#[derive(Clone, Copy)]
pub(crate) struct DecodeLimits {
    encoded: u64,
    max_body: u64,
    inspect_limit: u64,
    max_ratio: u64,
}

impl Reading {
    /// The decoding limits of a body or part of `encoded` bytes.
    pub(crate) fn decode_limits(&self, encoded: u64) -> DecodeLimits {
        DecodeLimits { encoded, max_body: self.max, inspect_limit: self.inspect_limit, max_ratio: self.unpack.max_ratio }
    }
}

/// Decodes into a new spool (memory, then disk): up to `max_inspect` decoded bytes, and past
/// `max_body` only while the body inflates at most `max_ratio` times — what it decodes to is
/// judged, however small it was sent, without a bomb filling the spool.
fn decode_into_spool(mut reader: Box<dyn Read + Send>, area: &Arc<SpoolArea>, limits: DecodeLimits) -> Result<Spool, DecodeFailure> {
    let mut out = Spool::new(area);
    let mut buf = vec![0u8; 64 * 1024];
    let bomb_at = limits.max_body.max(limits.encoded.saturating_mul(limits.max_ratio));
    loop {
        let n = reader.read(&mut buf).map_err(|_| DecodeFailure::Broken)?;
        if n == 0 {
            return Ok(out);
        }
        let total = out.len() + n as u64;
        if total > limits.inspect_limit {
            return Err(DecodeFailure::PastLimit(out, UnscannableReason::Oversize));
        }
        if total > bomb_at {
            return Err(DecodeFailure::PastLimit(out, UnscannableReason::NestedLimit));
        }
        out.push(Bytes::copy_from_slice(&buf[..n])).map_err(|e| DecodeFailure::Unavailable(e.into()))?;
    }
}

/// A form field that is text (no file name, no content type, or a `text/*` one).
fn field_is_text(content_type: &str, has_file_name: &bool) -> bool {
    !*has_file_name && (content_type.is_empty() || content_type.to_ascii_lowercase().starts_with("text/"))
}

/// Whether the request line or a header field may carry an encoded file (long values only; the
/// sniff decodes a value's first bytes): such a request is inspected even without a body.
pub(crate) fn request_line_may_carry(uri: &http::Uri, headers: &http::HeaderMap, min_len: usize) -> bool {
    uri.query().is_some_and(|q| q.len() >= min_len) || headers.values().any(|v| v.len() >= min_len)
}

/// The part of a header value that may be encoded: the last space-separated token (`Bearer …`,
/// `Basic …`, cookie pairs).
fn encoded_token(value: &http::HeaderValue) -> &[u8] {
    let raw = value.as_bytes();
    raw.rsplit(|&b| b == b' ').next().unwrap_or(raw)
}

/// Whether a long query-string or header value encodes a file the engine reads (decoding only
/// as far as the sniff needs, unless it does).
pub(crate) fn request_line_carries(uri: &http::Uri, headers: &http::HeaderMap, max_inner_bytes: u64) -> bool {
    let limits = labelgate_body::Limits { max_decoded_bytes: max_inner_bytes, ..labelgate_body::Limits::default() };
    let query = uri
        .query()
        .is_some_and(|q| q.len() >= limits.min_encoded_len && !labelgate_body::form_candidates(q.as_bytes(), &limits).is_empty());
    query
        || headers.iter().any(|(name, value)| {
            value.len() >= limits.min_encoded_len && labelgate_body::candidate(name.as_str(), encoded_token(value), &limits).is_some()
        })
}

/// Files encoded in the request line and header fields: long query-string values (percent- and
/// base64url-decoded) and long header values, named `(query) ▸ field` and `(header) ▸ name`.
pub(crate) async fn request_line_files(uri: &http::Uri, headers: &http::HeaderMap, reading: &Reading) -> Vec<Inspected> {
    let limits = reading.body_limits();
    let mut found = Vec::new();
    if let Some(query) = uri.query().filter(|q| q.len() >= limits.min_encoded_len) {
        found.extend(labelgate_body::form_candidates(query.as_bytes(), &limits).into_iter().map(|c| ("(query)", c)));
    }
    for (name, value) in headers {
        if value.len() < limits.min_encoded_len || found.len() >= limits.max_candidates {
            continue;
        }
        if let Some(c) = labelgate_body::candidate(name.as_str(), encoded_token(value), &limits) {
            found.push(("(header)", c));
        }
    }
    let mut out = Vec::new();
    for (origin, candidate) in found {
        out.extend(inspect_candidates(Some(origin), vec![candidate], reading).await);
    }
    out
}

/// Every file one message carries (a WebSocket message: binary as a file, text as a body whose
/// JSON, form values or base64 may encode files).
pub(crate) async fn message_files(name: &str, payload: Vec<u8>, area: &Arc<SpoolArea>, reading: &Reading) -> Found {
    let size = payload.len() as u64;
    let mut found = Box::pin(one_body(Some(name.to_string()), Some(Held::from_vec(payload)), None, size, "", area, reading, 0)).await?;
    // A message that is plain text is no file: only what it carries is.
    if found.first().is_some_and(|f| f.facts.kind == "unknown" && f.facts.labels.is_empty() && f.facts.unscannable.is_none()) {
        found.remove(0);
    }
    Ok(found)
}

#[cfg(test)]
mod encoded_tests {
    use super::*;

    #[test]
    fn a_json_body_yields_its_base64_file() {
        let docx = labelgate_testkit::zip(&labelgate_testkit::docx(Some(labelgate_testkit::custom_xml(&[])), None));
        use base64::Engine;
        let json = format!(r#"{{"name": "q3.docx", "contentBytes": "{}"}}"#, base64::engine::general_purpose::STANDARD.encode(&docx));
        let held = Held::from_vec(json.into_bytes());
        let open = || Some(Box::new(ChunksReader { held: held.clone(), next: 0, at: 0 }) as Box<dyn std::io::BufRead + Send>);
        let (found, unread) = encoded_files(&open, false, None, &labelgate_body::Limits::default(), 1 << 20);
        assert!(unread.is_none());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].data.as_ref().unwrap(), &docx);
    }
}
