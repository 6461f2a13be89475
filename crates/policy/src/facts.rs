//! What an inspection means to policy: the facts of a file and of every file inside it, as the
//! proxy (in flight) and the scanner (at rest) both evaluate them, so that one file gets one
//! verdict wherever it is.

use crate::{FileFacts, FileLabel, UnscannableReason};
use labelgate_extract::{ExtractError, Extraction, Flag};
use labelgate_unpack::{InnerFile, Inspection, Problem};

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
            detected: Vec::new(),
        },
        Err(e) => FileFacts {
            name,
            kind: "unknown".to_string(),
            labels: Vec::new(),
            unscannable: Some(match e {
                ExtractError::LimitExceeded { limit: "max_buffered_bytes", .. } => UnscannableReason::Oversize,
                _ => UnscannableReason::Malformed,
            }),
            detected: Vec::new(),
        },
    }
}

/// The unscannable reason a container problem stands for.
pub fn problem_reason(problem: &Problem) -> UnscannableReason {
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
        detected: Vec::new(),
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
