//! One file's report, as `labelgate inspect --json` prints it and `labelgate scan` extends it:
//! kind, effective labels, flags, raw records, findings, why it could not be read, and every
//! file inside it (archive members, attachments) depth-first. One definition for both commands.

use labelgate_extract::Extraction;
use labelgate_unpack::{InnerFile, Inspection};
use serde::Serialize;

#[derive(Serialize)]
struct Report<'a> {
    kind: Option<&'static str>,
    labels: Vec<&'a labelgate_extract::EffectiveLabel>,
    flags: Vec<&'static str>,
    records: Vec<&'a labelgate_extract::LabelRecord>,
    findings: Vec<&'a str>,
    error: Option<String>,
    /// Why the file could not be opened completely as a container (a limit, encryption, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    container_error: Option<String>,
    /// Every file inside it, depth-first.
    inner: Vec<InnerReport<'a>>,
}

#[derive(Serialize)]
struct InnerReport<'a> {
    /// The inspected path first, then the names inside (an array: names may hold any character).
    path: Vec<&'a str>,
    depth: u32,
    kind: &'static str,
    labels: &'a [labelgate_extract::EffectiveLabel],
    flags: Vec<&'static str>,
    /// `nested_limit`, `encrypted`, `unsupported` or `malformed` when it could not be read.
    unscannable: Option<&'static str>,
    error: Option<String>,
    /// SHA-256 of a labeled or flagged inner file.
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
}

fn inner_report<'a>(root: &'a str, f: &'a InnerFile) -> InnerReport<'a> {
    let mut path = vec![root];
    path.extend(f.path.iter().map(String::as_str));
    InnerReport {
        path,
        depth: f.depth,
        kind: f.kind.as_str(),
        labels: &f.labels,
        flags: f.flags.iter().map(|x| x.as_str()).collect(),
        unscannable: f.error.as_ref().map(|e| e.reason()),
        error: f.error.as_ref().map(ToString::to_string),
        sha256: f.sha256.as_deref(),
    }
}

/// The report of an inspection of the file shown as `shown` (without the `path` key: the caller
/// adds it with what else it knows).
pub fn inspection_report(shown: &str, inspection: &Inspection) -> serde_json::Map<String, serde_json::Value> {
    let report = match &inspection.outer {
        Ok(ex) => found(shown, ex, inspection),
        Err(e) => unreadable(e.to_string()),
    };
    match serde_json::to_value(report) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

fn found<'a>(shown: &'a str, ex: &'a Extraction, inspection: &'a Inspection) -> Report<'a> {
    Report {
        kind: Some(ex.kind.as_str()),
        labels: ex.labels.iter().collect(),
        flags: ex.flags.iter().map(|f| f.as_str()).collect(),
        records: ex.records.iter().collect(),
        findings: ex.findings.iter().map(String::as_str).collect(),
        error: None,
        container_error: inspection.container.as_ref().map(ToString::to_string),
        inner: inspection.inner.iter().map(|f| inner_report(shown, f)).collect(),
    }
}

fn unreadable<'a>(error: String) -> Report<'a> {
    Report {
        kind: None,
        labels: vec![],
        flags: vec![],
        records: vec![],
        findings: vec![],
        error: Some(error),
        container_error: None,
        inner: vec![],
    }
}

/// The report of a file that could not be read at all.
pub fn error_report(error: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(unreadable(error.to_string())) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}
