//! Splits an upload body into the files it carries and reads each one's labels: multipart parts
//! one by one (with their filenames), any other body as one file; `Content-Encoding: gzip` or
//! `deflate` is decoded for inspection only (the original bytes are what is forwarded).

use bytes::Bytes;
use labelgate_extract::{extract_with, ExtractError, Extraction, Flag, Limits};
use labelgate_policy::{FileFacts, FileLabel, UnscannableReason};
use std::io::Read;

/// One inspected file.
pub(crate) struct Inspected {
    pub facts: FileFacts,
    pub size: u64,
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

fn one(name: Option<String>, bytes: &[u8], limits: &Limits) -> Inspected {
    Inspected { facts: file_facts(name, &extract_with(bytes, limits)), size: bytes.len() as u64 }
}

fn malformed(name: Option<String>, size: u64) -> Inspected {
    Inspected {
        facts: FileFacts { name, kind: "unknown".into(), labels: Vec::new(), unscannable: Some(UnscannableReason::Malformed) },
        size,
    }
}

/// Decodes a request body's content coding for inspection, capped at `max`.
fn decode(encoding: &str, body: &Bytes, max: u64) -> Result<Bytes, ()> {
    let mut out = Vec::new();
    let limited = |r: &mut dyn Read, out: &mut Vec<u8>| r.take(max + 1).read_to_end(out).map_err(|_| ());
    match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => return Ok(body.clone()),
        "gzip" | "x-gzip" => limited(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)?,
        "deflate" => limited(&mut flate2::read::ZlibDecoder::new(&body[..]), &mut out)?,
        _ => return Err(()),
    };
    if out.len() as u64 > max {
        return Err(());
    }
    Ok(Bytes::from(out))
}

/// Reads a file held on disk, off the async workers (it may read a few pieces of a large file).
async fn one_from_disk(name: Option<String>, file: std::fs::File, size: u64, limits: Limits) -> Inspected {
    let result = tokio::task::spawn_blocking(move || labelgate_extract::extract_reader(std::io::BufReader::new(file), &limits)).await;
    match result {
        Ok(r) => Inspected { facts: file_facts(name, &r), size },
        Err(_) => malformed(None, size),
    }
}

fn oversize(size: u64) -> Inspected {
    Inspected {
        facts: FileFacts { name: None, kind: "unknown".into(), labels: Vec::new(), unscannable: Some(UnscannableReason::Oversize) },
        size,
    }
}

/// Every file in a held body, in memory or spooled to disk. Multipart parts larger than the
/// memory limit are spooled on their own and read from disk.
pub(crate) async fn files_held(
    headers: &http::HeaderMap,
    path: &str,
    body: &mut crate::spool::Spool,
    area: &std::sync::Arc<crate::spool::SpoolArea>,
    max: u64,
) -> Vec<Inspected> {
    if let Some(bytes) = body.memory() {
        return files(headers, path, &bytes, max).await;
    }
    let size = body.len();
    let limits = Limits { max_buffered_bytes: max, ..Limits::default() };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !matches!(header("content-encoding").trim().to_ascii_lowercase().as_str(), "" | "identity") {
        // Decoding a spooled body for inspection is not supported yet: decided as oversize.
        return vec![oversize(size)];
    }
    let Ok(Some(reader)) = body.reader() else { return vec![malformed(None, size)] };
    let content_type = header("content-type");
    if content_type.trim_start().to_ascii_lowercase().starts_with("multipart/form-data") {
        let Ok(boundary) = multer::parse_boundary(content_type) else { return vec![malformed(None, size)] };
        let mut multipart = multer::Multipart::new(crate::spool::stream(None, Some(reader)), boundary);
        let mut out = Vec::new();
        loop {
            match multipart.next_field().await {
                Ok(Some(mut field)) => {
                    let name = field.file_name().map(str::to_string);
                    let is_file = name.is_some() || field.content_type().is_some();
                    let mut part = crate::spool::Spool::new(area);
                    let mut failed = false;
                    loop {
                        match field.chunk().await {
                            Ok(Some(c)) => {
                                if is_file && part.push(&c).is_err() {
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
                        Some(bytes) => out.push(one(name, &bytes, &limits)),
                        None => match part.reader() {
                            Ok(Some(f)) => out.push(one_from_disk(name, f, part.len(), limits.clone()).await),
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
        return out;
    }
    let name = path.rsplit('/').next().filter(|s| !s.is_empty()).map(str::to_string);
    vec![one_from_disk(name, reader, size, limits).await]
}

/// Every file in an upload body.
pub(crate) async fn files(headers: &http::HeaderMap, path: &str, body: &Bytes, max: u64) -> Vec<Inspected> {
    let limits = Limits { max_buffered_bytes: max, ..Limits::default() };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let body = match decode(header("content-encoding"), body, max) {
        Ok(b) => b,
        Err(()) => return vec![malformed(None, body.len() as u64)],
    };
    let content_type = header("content-type");
    if content_type.trim_start().to_ascii_lowercase().starts_with("multipart/form-data") {
        let Ok(boundary) = multer::parse_boundary(content_type) else { return vec![malformed(None, body.len() as u64)] };
        let stream = futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        let mut out = Vec::new();
        loop {
            match multipart.next_field().await {
                Ok(Some(field)) => {
                    let name = field.file_name().map(str::to_string);
                    let is_file = name.is_some() || field.content_type().is_some();
                    match field.bytes().await {
                        Ok(data) if is_file => out.push(one(name, &data, &limits)),
                        Ok(_) => {}
                        Err(_) => {
                            out.push(malformed(name, 0));
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    out.push(malformed(None, 0));
                    break;
                }
            }
        }
        return out;
    }
    // A raw upload: one file, named after the last path segment.
    let name = path.rsplit('/').next().filter(|s| !s.is_empty()).map(str::to_string);
    vec![one(name, &body, &limits)]
}
