//! What `labelgate scan` prints: one JSON object per file per line (the fields of
//! `labelgate inspect --json` plus `path`, `size`, `modified`, `verdict`, `rule`), CSV with
//! stable columns for a spreadsheet or a SIEM, or a table for people (files with a label, a
//! rule match or a problem); and a summary of the whole scan. Labels are resolved through the
//! catalog (display name, priority, account). A path that is not UTF-8 is printed lossily in
//! `path` and exactly, as hex bytes, in `path_bytes`.

use crate::walk::Skip;
use crate::{Extracted, Scanned};
use labelgate_catalog::{csv_cell, Catalog};
use labelgate_policy::Verdict;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Table,
    /// One JSON object per line.
    Json,
    /// Comma-separated, header first.
    Csv,
}

/// The stable CSV columns.
pub const CSV_COLUMNS: &[&str] = &[
    "path",
    "path_bytes",
    "size",
    "modified",
    "kind",
    "labels",
    "label_names",
    "verdict",
    "rule",
    "unscannable",
    "error",
    "inner_files",
    "inner_labeled",
    "cached",
];

/// The exact bytes of a path that is not UTF-8, as hex (`None` for a UTF-8 path).
pub fn path_bytes(path: &Path) -> Option<String> {
    let bytes = path.as_os_str().as_bytes();
    std::str::from_utf8(bytes).is_err().then(|| bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// RFC 3339 (UTC, seconds) of nanoseconds since the epoch.
pub fn rfc3339(ns: i128) -> String {
    let secs = i64::try_from(ns.div_euclid(1_000_000_000)).unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Adds the catalog's display name, priority and account to each label object of `labels`.
fn resolve_labels(labels: Option<&mut Value>, catalog: &Catalog) {
    let Some(Value::Array(list)) = labels else { return };
    for label in list.iter_mut() {
        let Value::Object(l) = label else { continue };
        let id = l.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let tenant = l.get("site_id").and_then(Value::as_str).map(str::to_string);
        if let Some(known) = catalog.lookup(tenant.as_deref(), &id) {
            l.insert("display_name".into(), json!(known.display_name));
            l.insert("priority".into(), json!(known.priority));
            l.insert("account".into(), json!(known.account));
        }
    }
}

/// The JSON object of one scanned file.
pub fn file_object(file: &Scanned, verdict: Option<&Verdict>, catalog: &Catalog) -> Map<String, Value> {
    let shown = file.entry.path.to_string_lossy().into_owned();
    let mut out = Map::new();
    out.insert("path".into(), json!(shown));
    if let Some(bytes) = path_bytes(&file.entry.path) {
        out.insert("path_bytes".into(), json!(bytes));
    }
    out.insert("size".into(), json!(file.entry.size));
    out.insert("modified".into(), json!(rfc3339(file.entry.mtime_ns)));
    if file.entry.nlink > 1 {
        out.insert("hard_links".into(), json!(file.entry.nlink));
    }
    let report = match &file.result {
        Ok(ex) => ex.report.clone(),
        Err(e) => crate::report::error_report(e),
    };
    out.extend(report);
    resolve_labels(out.get_mut("labels"), catalog);
    if let Some(Value::Array(inner)) = out.get_mut("inner") {
        for f in inner.iter_mut() {
            // The file may have been found under another name when it was read: its path now.
            if let Some(Value::Array(p)) = f.get_mut("path") {
                if let Some(first) = p.first_mut() {
                    *first = json!(shown);
                }
            }
            resolve_labels(f.get_mut("labels"), catalog);
        }
    }
    out.insert("verdict".into(), json!(verdict.map(|v| v.action.as_str())));
    out.insert("rule".into(), json!(verdict.and_then(|v| v.rule.clone())));
    if let Some(v) = verdict {
        out.insert("reason".into(), json!(v.reason));
    }
    out.insert("cached".into(), json!(file.cached));
    out
}

fn label_ids(ex: &Extracted) -> Vec<String> {
    let mut ids: Vec<String> = ex.facts.iter().flat_map(|f| f.labels.iter().map(|l| l.id.clone())).collect();
    ids.sort();
    ids.dedup();
    ids
}

fn label_name(id: &str, catalog: &Catalog, ex: &Extracted) -> String {
    catalog.lookup(None, id).map(|l| l.display_name.clone()).unwrap_or_else(|| {
        // The name the file itself states, else the GUID.
        ex.report
            .get("labels")
            .and_then(Value::as_array)
            .and_then(|l| l.iter().find(|x| x["id"] == id))
            .and_then(|x| x["name"].as_str())
            .unwrap_or(id)
            .to_string()
    })
}

/// Writes files as they come, then the summary.
pub struct Writer<W: Write> {
    out: W,
    format: Format,
    header: bool,
}

impl<W: Write> Writer<W> {
    /// A writer of `format` to `out`.
    pub fn new(out: W, format: Format) -> Writer<W> {
        Writer { out, format, header: false }
    }

    /// One file.
    pub fn file(&mut self, file: &Scanned, verdict: Option<&Verdict>, catalog: &Catalog) -> io::Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.out, &file_object(file, verdict, catalog))?;
                writeln!(self.out)
            }
            Format::Csv => {
                if !self.header {
                    self.header = true;
                    writeln!(self.out, "{}\r", CSV_COLUMNS.join(","))?;
                }
                let row = csv_row(file, verdict, catalog);
                writeln!(self.out, "{}\r", row.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","))
            }
            Format::Table => {
                let interesting = match &file.result {
                    Ok(ex) => ex.labeled() || ex.facts.iter().any(|f| f.unscannable.is_some()) || verdict.is_some_and(|v| v.rule.is_some()),
                    Err(_) => true,
                };
                if !interesting {
                    return Ok(());
                }
                if !self.header {
                    self.header = true;
                    writeln!(self.out, "{:<7}  {:<10}  {:<40}  PATH", "VERDICT", "KIND", "LABELS")?;
                }
                let (kind, labels) = match &file.result {
                    Ok(ex) => {
                        let mut shown: Vec<String> = label_ids(ex).iter().map(|id| label_name(id, catalog, ex)).collect();
                        if let Some(u) = ex.facts.iter().find_map(|f| f.unscannable) {
                            shown.push(format!("[{}]", u.as_str()));
                        }
                        (ex.kind().to_string(), if shown.is_empty() { "-".to_string() } else { shown.join(", ") })
                    }
                    Err(e) => ("error".to_string(), e.clone()),
                };
                let verdict = verdict.map_or("-", |v| v.action.as_str());
                // Control characters in names are shown escaped, not sent to the terminal.
                let path = format!("{:?}", file.entry.path.to_string_lossy());
                let path = &path[1..path.len() - 1];
                writeln!(self.out, "{verdict:<7}  {kind:<10}  {labels:<40}  {path}")
            }
        }
    }

    /// Flushes and gives the destination back.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn csv_row(file: &Scanned, verdict: Option<&Verdict>, catalog: &Catalog) -> Vec<String> {
    let e = &file.entry;
    let (kind, ids, names, unscannable, error, inner, inner_labeled) = match &file.result {
        Ok(ex) => {
            let ids = label_ids(ex);
            let names: Vec<String> = ids.iter().map(|id| label_name(id, catalog, ex)).collect();
            (
                ex.kind().to_string(),
                ids.join(";"),
                names.join(";"),
                ex.facts.iter().find_map(|f| f.unscannable).map(|u| u.as_str().to_string()).unwrap_or_default(),
                String::new(),
                ex.facts.len().saturating_sub(1).to_string(),
                ex.facts.iter().skip(1).filter(|f| !f.labels.is_empty()).count().to_string(),
            )
        }
        Err(err) => ("unknown".into(), String::new(), String::new(), String::new(), err.clone(), "0".into(), "0".into()),
    };
    vec![
        e.path.to_string_lossy().into_owned(),
        path_bytes(&e.path).unwrap_or_default(),
        e.size.to_string(),
        rfc3339(e.mtime_ns),
        kind,
        ids,
        names,
        verdict.map_or("", |v| v.action.as_str()).to_string(),
        verdict.and_then(|v| v.rule.clone()).unwrap_or_default(),
        unscannable,
        error,
        inner,
        inner_labeled,
        file.cached.to_string(),
    ]
}

/// Totals of a scan.
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Files scanned (read now or known from the index).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files opened and read this run (the rest came from the index).
    pub read: u64,
    /// Files known from the index.
    pub cached: u64,
    /// Files with a label on them or inside them.
    pub labeled: u64,
    /// Files and bytes by kind.
    pub by_kind: BTreeMap<String, Count>,
    /// Files by label GUID, with the label's name (the catalog's, else the first a file states).
    pub by_label: BTreeMap<String, LabelCount>,
    /// Files by verdict.
    pub by_verdict: BTreeMap<String, u64>,
    /// Files by the rule that matched them.
    pub by_rule: BTreeMap<String, u64>,
    /// Paths that could not be read (files, directories, roots).
    pub errors: u64,
    /// What was not scanned, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Files per second.
    pub files_per_second: f64,
    /// Megabytes (10^6) per second.
    pub mb_per_second: f64,
}

/// A label and the files carrying it.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct LabelCount {
    /// Its name, when known.
    pub name: Option<String>,
    /// Files carrying it (on them or inside).
    pub files: u64,
}

/// Files and bytes.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Count {
    /// Files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Summary {
    /// Counts one file.
    pub fn file(&mut self, file: &Scanned, verdict: Option<&Verdict>, catalog: &Catalog) {
        self.files += 1;
        self.bytes += file.entry.size;
        if file.cached {
            self.cached += 1;
        } else {
            self.read += 1;
        }
        match &file.result {
            Ok(ex) => {
                let kind = self.by_kind.entry(ex.kind().to_string()).or_default();
                kind.files += 1;
                kind.bytes += file.entry.size;
                if ex.labeled() {
                    self.labeled += 1;
                }
                for id in label_ids(ex) {
                    let name = label_name(&id, catalog, ex);
                    let count = self.by_label.entry(id.clone()).or_default();
                    if count.name.is_none() && name != id {
                        count.name = Some(name);
                    }
                    count.files += 1;
                }
            }
            Err(_) => self.errors += 1,
        }
        if let Some(v) = verdict {
            *self.by_verdict.entry(v.action.as_str().to_string()).or_default() += 1;
            if let Some(rule) = &v.rule {
                *self.by_rule.entry(rule.clone()).or_default() += 1;
            }
        }
    }

    /// Counts something not scanned.
    pub fn skipped(&mut self, why: Skip) {
        *self.skipped.entry(why.as_str().to_string()).or_default() += 1;
    }

    /// Sets the time and rates.
    pub fn finish(&mut self, elapsed: Duration) {
        self.seconds = elapsed.as_secs_f64();
        let s = self.seconds.max(1e-9);
        self.files_per_second = self.files as f64 / s;
        self.mb_per_second = self.bytes as f64 / 1e6 / s;
    }

    /// The summary for people.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "scanned {} files, {} bytes in {:.2} s ({:.0} files/s, {:.1} MB/s)",
            self.files, self.bytes, self.seconds, self.files_per_second, self.mb_per_second
        )?;
        writeln!(out, "  read {}, from the index {}, labeled {}, errors {}", self.read, self.cached, self.labeled, self.errors)?;
        if !self.skipped.is_empty() {
            let parts: Vec<String> = self.skipped.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(out, "  skipped: {}", parts.join(", "))?;
        }
        if !self.by_verdict.is_empty() {
            let parts: Vec<String> = self.by_verdict.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(out, "  by verdict: {}", parts.join(", "))?;
        }
        for (rule, n) in &self.by_rule {
            writeln!(out, "  rule {rule:?}: {n}")?;
        }
        if !self.by_kind.is_empty() {
            writeln!(out, "  by kind:")?;
            for (k, c) in &self.by_kind {
                writeln!(out, "    {k:<16} {:>8} files {:>14} bytes", c.files, c.bytes)?;
            }
        }
        if !self.by_label.is_empty() {
            writeln!(out, "  by label:")?;
            let mut labels: Vec<(&String, &LabelCount)> = self.by_label.iter().collect();
            labels.sort_by(|a, b| b.1.files.cmp(&a.1.files).then(a.0.cmp(b.0)));
            for (id, c) in labels {
                writeln!(out, "    {:>8}  {id}  {}", c.files, c.name.as_deref().unwrap_or("-"))?;
            }
        }
        Ok(())
    }
}
