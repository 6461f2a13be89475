//! Splits an upload body into the files it carries and reads each one's labels: multipart parts
//! one by one (with their filenames), any other body as one file; `Content-Encoding: gzip` or
//! `deflate` is decoded for inspection only (the original bytes are what is forwarded). Each
//! file is opened in turn (archives, e-mail) and every file inside it becomes a file of the
//! transaction, with its path, exactly as if it had been uploaded alone.

use crate::spool::{Held, Spool, SpoolArea};
use bytes::Bytes;
use labelgate_extract::{ExtractError, Extraction, Flag, Limits};
use labelgate_policy::{FileFacts, FileLabel, UnscannableReason};
use labelgate_unpack::{InnerFile, Inspection, Problem, UnpackLimits};
use std::io::Read;
use std::sync::Arc;

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
    pub max: u64,
    pub hash_all: bool,
    pub unpack: UnpackLimits,
    /// The transaction's expansion budget, shared by all its files (multipart parts).
    pub budget: Arc<labelgate_unpack::Budget>,
}

impl Reading {
    fn limits(&self) -> Limits {
        Limits { max_buffered_bytes: self.max, ..Limits::default() }
    }

    fn wants_hash(&self, facts: &FileFacts) -> bool {
        self.hash_all || !facts.labels.is_empty() || facts.unscannable.is_some()
    }
}

fn hex_sha256(digest: ring::digest::Digest) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The facts policy evaluates for one file; a read error becomes an unscannable reason.
pub fn file_facts(name: Option<String>, result: &Result<Extraction, ExtractError>) -> FileFacts {
    match result {
        Ok(ex) => FileFacts {
            name,
            kind: ex.kind.as_str().to_string(),
            labels: ex.labels.iter().map(|l| FileLabel { id: l.id.clone(), tenant: l.site_id.clone() }).collect(),
            // Ambiguity outranks encryption: a file with both could be hiding a label.
            unscannable: if ex.has_flag(Flag::Ambiguous) {
                Some(UnscannableReason::Ambiguous)
            } else if ex.has_flag(Flag::Encrypted) {
                Some(UnscannableReason::Encrypted)
            } else {
                None
            },
        },
        Err(e) => FileFacts {
            name,
            kind: "unknown".to_string(),
            labels: Vec::new(),
            unscannable: Some(match e {
                ExtractError::LimitExceeded { limit: "max_buffered_bytes", .. } => UnscannableReason::Oversize,
                _ => UnscannableReason::Malformed,
            }),
        },
    }
}

/// The unscannable reason a container problem stands for.
fn problem_reason(problem: &Problem) -> UnscannableReason {
    match problem {
        Problem::NestedLimit { .. } => UnscannableReason::NestedLimit,
        Problem::Encrypted(_) => UnscannableReason::Encrypted,
        Problem::Unsupported(_) => UnscannableReason::Unsupported,
        Problem::Malformed(_) => UnscannableReason::Malformed,
    }
}

/// The facts policy evaluates for one file found inside another.
pub fn inner_facts(outer_name: Option<&str>, file: &InnerFile) -> FileFacts {
    let mut shown = outer_name.unwrap_or("(upload)").to_string();
    for p in &file.path {
        shown.push_str(" \u{25b8} ");
        shown.push_str(p);
    }
    FileFacts {
        name: Some(shown),
        kind: file.kind.as_str().to_string(),
        labels: file.labels.iter().map(|l| FileLabel { id: l.id.clone(), tenant: l.site_id.clone() }).collect(),
        unscannable: if file.flags.contains(&Flag::Ambiguous) {
            Some(UnscannableReason::Ambiguous)
        } else if let Some(problem) = &file.error {
            Some(problem_reason(problem))
        } else if file.flags.contains(&Flag::Encrypted) {
            Some(UnscannableReason::Encrypted)
        } else {
            None
        },
    }
}

/// One file of an inspection: what policy evaluates, and what the audit record adds.
#[derive(Debug, Clone)]
pub struct FileRecord {
    /// The facts policy evaluates.
    pub facts: FileFacts,
    /// For a file inside another, the names from the inspected file down (empty for it).
    pub path: Vec<String>,
    /// Its size, when known.
    pub size: Option<u64>,
    /// Its SHA-256, when the engine took it (labeled or flagged inner files).
    pub sha256: Option<String>,
}

/// The facts of a file and of every file inside it: the uploaded file first (a container
/// problem is its unscannable reason when it has no other), then the inner files depth-first.
pub fn inspection_facts(name: Option<String>, inspection: &Inspection) -> Vec<FileRecord> {
    let mut outer = file_facts(name.clone(), &inspection.outer);
    if outer.unscannable.is_none() {
        outer.unscannable = inspection.container.as_ref().map(problem_reason);
    }
    let mut out = Vec::with_capacity(1 + inspection.inner.len());
    out.push(FileRecord { facts: outer, path: Vec::new(), size: None, sha256: None });
    for file in &inspection.inner {
        out.push(FileRecord {
            facts: inner_facts(name.as_deref(), file),
            path: file.path.clone(),
            size: file.size,
            sha256: file.sha256.clone(),
        });
    }
    out
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
    Inspected {
        facts: FileFacts { name, kind: "unknown".into(), labels: Vec::new(), unscannable: Some(UnscannableReason::Malformed) },
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

fn hash_file(file: &mut std::fs::File) -> std::io::Result<String> {
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

fn oversize(size: u64) -> Inspected {
    Inspected {
        facts: FileFacts { name: None, kind: "unknown".into(), labels: Vec::new(), unscannable: Some(UnscannableReason::Oversize) },
        path: Vec::new(),
        size,
        sha256: None,
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
) -> Vec<Inspected> {
    let max = reading.max;
    let size = body.len();
    let reading = &reading;
    let memory = body.memory();
    let file = match (&memory, body.reader()) {
        (Some(_), _) => None,
        (None, Ok(Some(f))) => Some(f),
        (None, _) => return vec![malformed(None, size)],
    };
    let encoding = headers.get(http::header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_ascii_lowercase();
    if !matches!(encoding.as_str(), "" | "identity") {
        // An encoded body is decoded into a second spool (memory up to the limit, then disk),
        // never into an unbounded buffer, and inspected from there.
        let encoded: Box<dyn Read + Send> = match (memory, file) {
            (Some(held), _) => Box::new(ChunksReader { held, next: 0, at: 0 }),
            (None, Some(f)) => Box::new(std::io::BufReader::new(f)),
            (None, None) => return vec![malformed(None, size)],
        };
        let spool_area = Arc::clone(area);
        let decoded = tokio::task::spawn_blocking(move || decode_to_spool(&encoding, encoded, &spool_area, max)).await;
        return match decoded {
            Ok(Ok(mut plain)) => {
                let mut identity = headers.clone();
                identity.remove(http::header::CONTENT_ENCODING);
                Box::pin(files_held(&identity, path, &mut plain, area, reading.clone())).await
            }
            Ok(Err(DecodeFailure::TooLarge)) => vec![oversize(size)],
            Ok(Err(DecodeFailure::Broken)) | Err(_) => vec![malformed(None, size)],
        };
    }
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.trim_start().to_ascii_lowercase().starts_with("multipart/form-data") {
        let Ok(boundary) = multer::parse_boundary(content_type) else { return vec![malformed(None, size)] };
        return multipart_files(crate::spool::stream(memory, file), boundary, area, reading.clone()).await;
    }
    // A raw upload: one file, named after the last path segment.
    let name = path.rsplit('/').next().filter(|s| !s.is_empty()).map(str::to_string);
    match (memory, file) {
        (Some(held), _) => one_held(name, held, reading.clone()).await,
        (None, Some(f)) => one_from_disk(name, f, size, reading.clone()).await,
        (None, None) => vec![malformed(name, size)],
    }
}

/// Every file part of a multipart body, whether it is held in memory or on disk. Each part is
/// held on its own (in memory, or spooled when large) and read from there.
async fn multipart_files(
    body: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    boundary: String,
    area: &Arc<SpoolArea>,
    reading: Reading,
) -> Vec<Inspected> {
    let mut multipart = multer::Multipart::new(body, boundary);
    let mut out = Vec::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(mut field)) => {
                let name = field.file_name().map(str::to_string);
                let is_file = name.is_some() || field.content_type().is_some();
                let mut part = Spool::new(area);
                let mut failed = false;
                loop {
                    match field.chunk().await {
                        Ok(Some(c)) => {
                            if is_file && part.push(c).is_err() {
                                out.push(oversize(part.len()));
                                failed = true;
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            out.push(malformed(name.clone(), part.len()));
                            return out;
                        }
                    }
                }
                if !is_file || failed {
                    continue;
                }
                match part.memory() {
                    Some(held) => out.extend(one_held(name, held, reading.clone()).await),
                    None => match part.reader() {
                        Ok(Some(f)) => out.extend(one_from_disk(name, f, part.len(), reading.clone()).await),
                        _ => out.push(malformed(name, part.len())),
                    },
                }
            }
            Ok(None) => break,
            Err(_) => {
                out.push(malformed(None, 0));
                break;
            }
        }
    }
    out
}

/// Reads a held body's chunks in order (the input of a decoder).
struct ChunksReader {
    held: Held,
    next: usize,
    at: usize,
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
    /// It decodes to more than `max_body` (or the spool is full).
    TooLarge,
    /// The coding is unknown or the data is corrupt.
    Broken,
}

/// Decodes a content-coded body into a new spool, at most `max` decoded bytes.
fn decode_to_spool(encoding: &str, encoded: impl Read, area: &Arc<SpoolArea>, max: u64) -> Result<Spool, DecodeFailure> {
    let mut reader: Box<dyn Read> = match encoding {
        "gzip" | "x-gzip" => Box::new(flate2::read::GzDecoder::new(encoded)),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(encoded)),
        _ => return Err(DecodeFailure::Broken),
    };
    let mut out = Spool::new(area);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|_| DecodeFailure::Broken)?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n as u64 > max {
            return Err(DecodeFailure::TooLarge);
        }
        out.push(Bytes::copy_from_slice(&buf[..n])).map_err(|_| DecodeFailure::TooLarge)?;
    }
}
