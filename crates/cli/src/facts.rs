//! Turns what the extractor found into the facts policy evaluates.

use labelgate_extract::{ExtractError, Extraction, Flag};
use labelgate_policy::{FileFacts, FileLabel, UnscannableReason};

/// The facts of one file; a read error becomes an unscannable reason.
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
