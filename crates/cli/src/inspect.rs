//! `labelgate inspect`: one report per file, as a human-readable block or one JSON line each,
//! with every file inside it (archive members, attachments) as a tree or a flat `inner` list.
//! Read with the `[inspection]` limits of the configuration in use, so the answer is the proxy's.

use anyhow::Result;
use clap::Args;
use labelgate_extract::{Extraction, Limits};
use labelgate_unpack::{inspect_reader, inspect_slice, InnerFile, Inspection, UnpackLimits};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
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

/// The whole inspection of one path, or why it could not be read at all.
fn read_one(path: &Path, limits: &Limits, bounds: &UnpackLimits) -> Result<Inspection, String> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        io::stdin().read_to_end(&mut buf).map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(inspect_slice(&buf, limits, bounds));
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.is_dir() {
        return Err("is a directory".into());
    }
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    Ok(inspect_reader(io::BufReader::new(file), limits, bounds))
}

pub fn run(config: Option<&Path>, args: &InspectArgs) -> Result<ExitCode> {
    let loaded = match crate::load_or_report(config)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let limits = loaded.file.inspection.extract_limits();
    let bounds = loaded.file.inspection.unpack_limits();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut failed = false;
    for path in &args.paths {
        let inspection = read_one(path, &limits, &bounds);
        let result: Result<&Extraction, String> = match &inspection {
            Ok(i) => i.outer.as_ref().map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        failed |= result.is_err();
        let shown = path.display().to_string();
        let inner: &[InnerFile] = inspection.as_ref().map(|i| i.inner.as_slice()).unwrap_or(&[]);
        let container = inspection.as_ref().ok().and_then(|i| i.container.as_ref()).map(ToString::to_string);
        if args.json {
            // The fields `labelgate scan --format json` prints too (one definition).
            let mut report = serde_json::Map::new();
            report.insert("path".into(), serde_json::Value::String(shown.clone()));
            report.extend(match &inspection {
                Ok(i) => labelgate_scan::report::inspection_report(&shown, i),
                Err(e) => labelgate_scan::report::error_report(e),
            });
            serde_json::to_writer(&mut out, &report)?;
            writeln!(out)?;
        } else {
            write_human(&mut out, &shown, &result)?;
            if result.is_ok() {
                write_tree(&mut out, container.as_deref(), inner)?;
                writeln!(out)?;
            }
        }
    }
    out.flush()?;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The files inside, as an indented tree under the file's own block.
fn write_tree(out: &mut impl Write, container: Option<&str>, inner: &[InnerFile]) -> io::Result<()> {
    if let Some(problem) = container {
        writeln!(out, "  opened: incompletely: {problem}")?;
    }
    if inner.is_empty() {
        return Ok(());
    }
    writeln!(out, "  inside:")?;
    for f in inner {
        let indent = "  ".repeat(f.depth as usize);
        let name = f.path.last().map(String::as_str).unwrap_or("");
        let labels: Vec<String> =
            f.labels.iter().map(|l| format!("{}{}", l.id, l.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default())).collect();
        let mut line = format!("  {indent}{name:?}  {}", f.kind);
        if !labels.is_empty() {
            line.push_str(&format!("  labels: {}", labels.join(", ")));
        }
        let flags: Vec<&str> = f.flags.iter().map(|x| x.as_str()).collect();
        if !flags.is_empty() {
            line.push_str(&format!("  flags: {}", flags.join(", ")));
        }
        if let Some(e) = &f.error {
            line.push_str(&format!("  [{}] {e}", e.reason()));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn write_human(out: &mut impl Write, path: &str, result: &Result<&Extraction, String>) -> io::Result<()> {
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
            Ok(())
        }
    }
}
