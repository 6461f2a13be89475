//! What `labelgate scan` prints: one JSON object per file per line (the fields of
//! `labelgate inspect --json` plus `path`, `size`, `modified`, `verdict`, `rule`), CSV with
//! stable columns for a spreadsheet or a SIEM, or a table for people (files with a label, a
//! rule match or a problem); and a summary of the whole scan. Labels are resolved through the
//! catalog (`label_info`: display name, priority, account). A path that is not UTF-8 is printed lossily in
//! `path` and exactly, as hex bytes, in `path_bytes`.

use crate::walk::Skip;
use crate::{Extracted, Scanned};
use labelgate_apply::Outcome;
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
    "detections",
    "apply_label",
    "apply_outcome",
];

/// Text for a terminal: control characters (and only they) escaped, so a file or label name
/// cannot forge or erase lines.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

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

/// The catalog's facts about each label of the file and of the files inside it.
fn label_info(ex: &Extracted, catalog: &Catalog) -> Vec<Value> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for l in ex.facts.iter().flat_map(|f| f.labels.iter()) {
        if seen.contains(&l.id.as_str()) {
            continue;
        }
        seen.push(&l.id);
        let known = catalog.lookup(l.tenant.as_deref(), &l.id);
        out.push(json!({
            "id": l.id,
            "name": known.map(|k| k.display_name.clone()).or_else(|| stated(ex, &l.id).map(str::to_string)),
            "priority": known.map(|k| k.priority),
            "account": known.and_then(|k| k.account.clone()),
        }));
    }
    out
}

fn stated<'a>(ex: &'a Extracted, id: &str) -> Option<&'a str> {
    ex.stated.iter().find(|(i, _)| i == id).map(|(_, n)| n.as_str())
}

/// One scanned file as a JSON line: its path and state, the report's fields passed through as
/// they were written when the file was read, the catalog's facts about its labels
/// (`label_info`), and the verdict.
pub fn json_line(file: &Scanned, verdict: Option<&Verdict>, labelled: Option<&Outcome>, catalog: &Catalog) -> Vec<u8> {
    let shown = file.entry.path.to_string_lossy();
    let mut head = Map::new();
    head.insert("path".into(), json!(shown));
    if let Some(bytes) = path_bytes(&file.entry.path) {
        head.insert("path_bytes".into(), json!(bytes));
    }
    head.insert("size".into(), json!(file.entry.size));
    head.insert("modified".into(), json!(rfc3339(file.entry.mtime_ns)));
    if file.entry.nlink > 1 {
        head.insert("hard_links".into(), json!(file.entry.nlink));
    }
    let mut tail = Map::new();
    tail.insert("label_info".into(), json!(file.result.as_ref().map(|ex| label_info(ex, catalog)).unwrap_or_default()));
    tail.insert("verdict".into(), json!(verdict.map(|v| v.action.as_str())));
    tail.insert("rule".into(), json!(verdict.and_then(|v| v.rule.clone())));
    if let Some(v) = verdict {
        tail.insert("reason".into(), json!(v.reason));
    }
    tail.insert("cached".into(), json!(file.cached));
    if let Some(found) = file.result.as_ref().ok().and_then(|ex| ex.detections.as_ref()) {
        tail.insert("detections".into(), json!(found.counts));
        let mut text = Map::new();
        text.insert("bytes".into(), json!(found.text_bytes));
        if let Some(limit) = &found.truncated {
            text.insert("truncated".into(), json!(limit));
        }
        if !found.unreadable.is_empty() {
            text.insert("unreadable".into(), json!(found.unreadable));
        }
        tail.insert("text".into(), Value::Object(text));
    }
    if let Some(outcome) = labelled {
        tail.insert("apply".into(), json!(outcome));
    }
    let report: String = match &file.result {
        // Read under another name (a hard link): the inner paths begin with this one.
        Ok(ex) if ex.root != shown && ex.report.get().contains("\"inner\":[{") => rooted(ex.report.get(), &shown),
        Ok(ex) => ex.report.get().to_string(),
        Err(e) => Value::Object(crate::report::error_report(e)).to_string(),
    };
    let mut line = Vec::with_capacity(256 + report.len());
    let head = Value::Object(head).to_string();
    let tail = Value::Object(tail).to_string();
    // Three objects with distinct keys, joined into one.
    line.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    let body = report.trim();
    let body = body.strip_prefix('{').and_then(|b| b.strip_suffix('}')).unwrap_or("").trim();
    if !body.is_empty() {
        line.push(b',');
        line.extend_from_slice(body.as_bytes());
    }
    line.push(b',');
    line.extend_from_slice(&tail.as_bytes()[1..]);
    line.push(b'\n');
    line
}

/// The report with its inner paths beginning with `shown`.
fn rooted(report: &str, shown: &str) -> String {
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(report) else { return report.to_string() };
    if let Some(Value::Array(inner)) = map.get_mut("inner") {
        for f in inner.iter_mut() {
            if let Some(Value::Array(p)) = f.get_mut("path") {
                if let Some(first) = p.first_mut() {
                    *first = json!(shown);
                }
            }
        }
    }
    Value::Object(map).to_string()
}

fn label_ids(ex: &Extracted) -> Vec<String> {
    let mut ids: Vec<String> = ex.facts.iter().flat_map(|f| f.labels.iter().map(|l| l.id.clone())).collect();
    ids.sort();
    ids.dedup();
    ids
}

fn label_name(id: &str, catalog: &Catalog, ex: &Extracted) -> String {
    // The catalog's display name (for the tenant the file names), else the name the file itself
    // states, else the GUID: as `label_info` resolves it.
    let tenant = ex.facts.iter().flat_map(|f| f.labels.iter()).find(|l| l.id == id).and_then(|l| l.tenant.as_deref());
    catalog
        .lookup(tenant, id)
        .map(|l| l.display_name.clone())
        .or_else(|| stated(ex, id).map(str::to_string))
        .unwrap_or_else(|| id.to_string())
}

/// One file, rendered where it was read (on a worker): its output line, and what the summary
/// counts of it.
#[derive(Debug, Default)]
pub struct Rendered {
    /// The bytes to write (nothing for a table row of a file not worth a look).
    pub line: Vec<u8>,
    /// What the summary counts.
    pub tally: Tally,
}

/// What the summary counts of one file.
#[derive(Debug, Default)]
pub struct Tally {
    size: u64,
    cached: bool,
    /// `None`: it could not be read.
    kind: Option<String>,
    labeled: bool,
    labels: Vec<(String, Option<String>)>,
    verdict: Option<(&'static str, Option<String>)>,
    /// Detectors that hold on the file.
    detected: Vec<String>,
    /// What labelling did, and why it failed.
    labelling: Option<(&'static str, Option<String>)>,
}

impl Tally {
    /// Why labelling this file failed (not a skip: an error to report), if it did.
    pub fn labelling_failure(&self) -> Option<&str> {
        match &self.labelling {
            Some(("failed", why)) => Some(why.as_deref().unwrap_or("unknown")),
            _ => None,
        }
    }
}

/// Renders one file in `format`.
pub fn render(format: Format, file: &Scanned, verdict: Option<&Verdict>, labelled: Option<&Outcome>, catalog: &Catalog) -> Rendered {
    let mut line = Vec::new();
    match format {
        Format::Json => line = json_line(file, verdict, labelled, catalog),
        Format::Csv => {
            let row = csv_row(file, verdict, labelled, catalog);
            line.extend_from_slice(row.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",").as_bytes());
            line.extend_from_slice(b"\r\n");
        }
        Format::Table => table_row(&mut line, file, verdict, labelled, catalog),
    }
    Rendered { line, tally: tally(file, verdict, labelled, catalog) }
}

/// The detectors that hold on a file, with their counts: `payment_card×3`.
fn detected_shown(ex: &Extracted) -> Vec<String> {
    let Some(found) = &ex.detections else { return Vec::new() };
    let holding = ex.facts.first().map(|f| f.detected.as_slice()).unwrap_or_default();
    found.counts.iter().filter(|c| holding.contains(&c.detector)).map(|c| format!("{}×{}", c.detector, c.count)).collect()
}

fn table_row(out: &mut Vec<u8>, file: &Scanned, verdict: Option<&Verdict>, labelled: Option<&Outcome>, catalog: &Catalog) {
    let interesting = match &file.result {
        Ok(ex) => {
            ex.labeled()
                || ex.facts.iter().any(|f| f.unscannable.is_some())
                || verdict.is_some_and(|v| v.rule.is_some())
                || ex.facts.first().is_some_and(|f| !f.detected.is_empty())
        }
        Err(_) => true,
    };
    if !interesting {
        return;
    }
    let (kind, labels) = match &file.result {
        Ok(ex) => {
            let mut shown: Vec<String> = label_ids(ex).iter().map(|id| label_name(id, catalog, ex)).collect();
            if let Some(u) = ex.facts.iter().find_map(|f| f.unscannable) {
                shown.push(format!("[{}]", u.as_str()));
            }
            shown.extend(detected_shown(ex).into_iter().map(|d| format!("<{d}>")));
            if let Some(l) = labelled {
                let name = l.name.as_deref().unwrap_or(&l.label);
                shown.push(match &l.reason {
                    Some(why) => format!("→ {name}: {} ({why})", l.outcome),
                    None => format!("→ {name}: {}", l.outcome),
                });
            }
            (ex.kind().to_string(), if shown.is_empty() { "-".to_string() } else { shown.join(", ") })
        }
        Err(e) => ("error".to_string(), e.clone()),
    };
    let verdict = verdict.map_or("-", |v| v.action.as_str());
    // Control characters in names are shown escaped, not sent to the terminal.
    let path = printable(&file.entry.path.to_string_lossy());
    let labels = printable(&labels);
    let _ = writeln!(out, "{verdict:<7}  {kind:<10}  {labels:<40}  {path}");
}

fn tally(file: &Scanned, verdict: Option<&Verdict>, labelled: Option<&Outcome>, catalog: &Catalog) -> Tally {
    let (kind, labeled, labels) = match &file.result {
        Ok(ex) => {
            let labels = label_ids(ex)
                .into_iter()
                .map(|id| {
                    let name = label_name(&id, catalog, ex);
                    let name = (name != id).then_some(name);
                    (id, name)
                })
                .collect();
            (Some(ex.kind().to_string()), ex.labeled(), labels)
        }
        Err(_) => (None, false, Vec::new()),
    };
    Tally {
        size: file.entry.size,
        cached: file.cached,
        kind,
        labeled,
        labels,
        verdict: verdict.map(|v| (v.action.as_str(), v.rule.clone())),
        detected: file.result.as_ref().ok().and_then(|ex| ex.facts.first()).map(|f| f.detected.clone()).unwrap_or_default(),
        labelling: labelled.map(|l| (l.outcome, l.reason.clone())),
    }
}

/// Writes rendered files in the order they come (the header first), then flushes.
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

    /// One rendered file.
    pub fn write(&mut self, rendered: &Rendered) -> io::Result<()> {
        if rendered.line.is_empty() {
            return Ok(());
        }
        if !self.header {
            self.header = true;
            match self.format {
                Format::Json => {}
                Format::Csv => write!(self.out, "{}\r\n", CSV_COLUMNS.join(","))?,
                Format::Table => writeln!(self.out, "{:<7}  {:<10}  {:<40}  PATH", "VERDICT", "KIND", "LABELS")?,
            }
        }
        self.out.write_all(&rendered.line)
    }

    /// Flushes and gives the destination back.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn csv_row(file: &Scanned, verdict: Option<&Verdict>, labelled: Option<&Outcome>, catalog: &Catalog) -> Vec<String> {
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
        file.result
            .as_ref()
            .ok()
            .and_then(|ex| ex.detections.as_ref())
            .map_or_else(String::new, |d| d.counts.iter().map(|c| format!("{}={}", c.detector, c.count)).collect::<Vec<_>>().join(";")),
        labelled.map_or_else(String::new, |l| l.label.clone()),
        labelled.map_or_else(String::new, |l| match &l.reason {
            Some(why) => format!("{}: {why}", l.outcome),
            None => l.outcome.to_string(),
        }),
    ]
}

/// Totals of a scan.
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Files scanned (read now or known from the index).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files opened and read this run (the others came from the index or could not be opened).
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
    /// Files on which each content detector holds.
    pub by_detector: BTreeMap<String, u64>,
    /// Files by labelling outcome (`applied`, `would_apply`, `unchanged`, `skipped`, `failed`).
    pub by_labelling: BTreeMap<String, u64>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Files per second.
    pub files_per_second: f64,
    /// Megabytes (10^6) per second.
    pub mb_per_second: f64,
}

/// `  title: a 1, b 2` for a count map that is not empty.
fn counts_line(out: &mut dyn Write, title: &str, counts: &BTreeMap<String, u64>) -> io::Result<()> {
    if counts.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(out, "  {title}: {}", parts.join(", "))
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
    pub fn add(&mut self, t: Tally) {
        self.files += 1;
        self.bytes += t.size;
        // Read: opened and read this run (a file that could not be opened is an error).
        match (&t.kind, t.cached) {
            (_, true) => self.cached += 1,
            (Some(_), false) => self.read += 1,
            (None, false) => {}
        }
        match t.kind {
            Some(kind) => {
                let count = self.by_kind.entry(kind).or_default();
                count.files += 1;
                count.bytes += t.size;
            }
            None => self.errors += 1,
        }
        if t.labeled {
            self.labeled += 1;
        }
        for (id, name) in t.labels {
            let count = self.by_label.entry(id).or_default();
            if count.name.is_none() {
                count.name = name;
            }
            count.files += 1;
        }
        for d in t.detected {
            *self.by_detector.entry(d).or_default() += 1;
        }
        if let Some((outcome, _)) = t.labelling {
            *self.by_labelling.entry(outcome.to_string()).or_default() += 1;
        }
        if let Some((action, rule)) = t.verdict {
            *self.by_verdict.entry(action.to_string()).or_default() += 1;
            if let Some(rule) = rule {
                *self.by_rule.entry(rule).or_default() += 1;
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
        counts_line(out, "skipped", &self.skipped)?;
        counts_line(out, "by verdict", &self.by_verdict)?;
        for (rule, n) in &self.by_rule {
            writeln!(out, "  rule \"{}\": {n}", printable(rule))?;
        }
        counts_line(out, "files by detector", &self.by_detector)?;
        counts_line(out, "labelling", &self.by_labelling)?;
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
                writeln!(out, "    {:>8}  {id}  {}", c.files, printable(c.name.as_deref().unwrap_or("-")))?;
            }
        }
        Ok(())
    }
}
