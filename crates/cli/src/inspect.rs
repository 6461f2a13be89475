//! `labelgate inspect`: one report per file, as a human-readable block or one JSON line each.

use anyhow::Result;
use clap::Args;
use labelgate_extract::{extract_reader, extract_with, Extraction, Limits};
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Print one JSON object per file per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Files to inspect (`-` reads standard input).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    path: String,
    kind: Option<&'static str>,
    labels: Vec<&'a labelgate_extract::EffectiveLabel>,
    flags: Vec<&'static str>,
    records: Vec<&'a labelgate_extract::LabelRecord>,
    findings: Vec<&'a str>,
    error: Option<String>,
}

fn read_one(path: &PathBuf, limits: &Limits) -> Result<Extraction, String> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        io::stdin().read_to_end(&mut buf).map_err(|e| format!("cannot read standard input: {e}"))?;
        return extract_with(&buf, limits).map_err(|e| e.to_string());
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_dir() {
        return Err("is a directory".into());
    }
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    extract_reader(io::BufReader::new(file), limits).map_err(|e| e.to_string())
}

pub fn run(args: &InspectArgs) -> Result<ExitCode> {
    let limits = Limits::default();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut failed = false;
    for path in &args.paths {
        let result = read_one(path, &limits);
        failed |= result.is_err();
        let shown = path.display().to_string();
        if args.json {
            let report = match &result {
                Ok(ex) => Report {
                    path: shown,
                    kind: Some(ex.kind.as_str()),
                    labels: ex.labels.iter().collect(),
                    flags: ex.flags.iter().map(|f| f.as_str()).collect(),
                    records: ex.records.iter().collect(),
                    findings: ex.findings.iter().map(String::as_str).collect(),
                    error: None,
                },
                Err(e) => Report {
                    path: shown,
                    kind: None,
                    labels: vec![],
                    flags: vec![],
                    records: vec![],
                    findings: vec![],
                    error: Some(e.clone()),
                },
            };
            serde_json::to_writer(&mut out, &report)?;
            writeln!(out)?;
        } else {
            write_human(&mut out, &shown, &result)?;
        }
    }
    out.flush()?;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn write_human(out: &mut impl Write, path: &str, result: &Result<Extraction, String>) -> io::Result<()> {
    match result {
        Err(e) => writeln!(out, "{path}\n  error: {e}\n"),
        Ok(ex) => {
            let flags: Vec<&str> = ex.flags.iter().map(|f| f.as_str()).collect();
            writeln!(out, "{path}")?;
            writeln!(out, "  kind:   {}", ex.kind)?;
            writeln!(out, "  flags:  {}", if flags.is_empty() { "-".to_string() } else { flags.join(", ") })?;
            if ex.labels.is_empty() {
                writeln!(out, "  labels: none")?;
            } else {
                writeln!(out, "  labels:")?;
                writeln!(out, "    {:<36}  {:<36}  {:<12}  {:<10}  NAME", "LABEL", "TENANT", "SOURCE", "METHOD")?;
                for l in &ex.labels {
                    writeln!(
                        out,
                        "    {:<36}  {:<36}  {:<12}  {:<10}  {}",
                        l.id,
                        l.site_id.as_deref().unwrap_or("-"),
                        l.source.as_str(),
                        l.method.as_deref().unwrap_or("-"),
                        l.name.as_deref().unwrap_or("-")
                    )?;
                }
            }
            if !ex.records.is_empty() {
                writeln!(out, "  records:")?;
                writeln!(out, "    {:<36}  {:<12}  {:<8}  STATUS", "LABEL", "SOURCE", "ENABLED")?;
                for r in &ex.records {
                    let enabled = match r.enabled {
                        Some(true) => "true",
                        Some(false) => "false",
                        None => "?",
                    };
                    let status = serde_json::to_value(r.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                    writeln!(out, "    {:<36}  {:<12}  {:<8}  {}", r.id, r.source.as_str(), enabled, status)?;
                }
            }
            for f in &ex.findings {
                writeln!(out, "  note:   {f}")?;
            }
            writeln!(out)
        }
    }
}
