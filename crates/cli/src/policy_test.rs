//! `labelgate policy test`: what the configured policy would do with this file sent to this URL,
//! using the real extractor and the real policy engine, and why.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use labelgate_policy::{Direction, Transaction};
use labelgate_proxy::inspection_facts;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct PolicyTestArgs {
    /// The file to upload.
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// Where it is sent (`https://host/path`).
    #[arg(long)]
    url: String,
    /// The authenticated user.
    #[arg(long)]
    user: Option<String>,
    /// The user's groups (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// The HTTP method.
    #[arg(long, default_value = "POST")]
    method: String,
    /// Evaluate as a file at rest (rules with `direction = "at_rest"`) instead of an upload.
    #[arg(long)]
    at_rest: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// State directory of `labelgate serve` (label names retrieved from Graph are known from it).
    #[arg(long, value_name = "DIR", default_value = "state")]
    state_dir: PathBuf,
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    url: &'a str,
    host: &'a str,
    kind: &'a str,
    labels: Vec<LabelReport>,
    files: &'a [labelgate_policy::FileFacts],
    verdict: &'a labelgate_policy::Verdict,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct LabelReport {
    id: String,
    tenant: Option<String>,
    name: Option<String>,
}

/// Host and query-less URL of an absolute http(s) URL.
fn split_url(url: &str) -> Result<(String, String)> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| anyhow!("--url must be absolute (https://host/path): {url:?}"))?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        bail!("--url must be http or https: {url:?}");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        bail!("--url has no host: {url:?}");
    }
    let path = rest[authority.len()..].split(['?', '#']).next().unwrap_or("");
    Ok((
        host.to_ascii_lowercase(),
        format!("{}://{}{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase(), if path.is_empty() { "/" } else { path }),
    ))
}

pub fn run(config: Option<&Path>, args: &PolicyTestArgs) -> Result<ExitCode> {
    let loaded = match crate::load_or_report(config)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let (host, url) = split_url(&args.url)?;
    let catalog = crate::stored_catalog(&loaded, &args.state_dir);
    let (policy, diagnostics) = loaded.resolve(catalog.clone());
    let file = std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    // The proxy's reading: the same [inspection] limits, every file inside the file.
    let inspection = labelgate_unpack::inspect_reader(
        std::io::BufReader::new(file),
        &loaded.file.inspection.extract_limits(),
        &loaded.file.inspection.unpack_limits(),
    );
    let name = args.file.file_name().map(|n| n.to_string_lossy().into_owned());
    let facts: Vec<labelgate_policy::FileFacts> = inspection_facts(name, &inspection).into_iter().map(|r| r.facts).collect();
    let result = &inspection.outer;
    let method = args.method.to_ascii_uppercase();
    let tx = Transaction {
        direction: if args.at_rest { Direction::AtRest } else { Direction::Upload },
        method: &method,
        host: &host,
        url: &url,
        user: args.user.as_deref(),
        groups: &args.groups,
        files: &facts,
        // At rest, the file's path is what `paths` / `not_paths` match.
        path: args.at_rest.then_some(args.file.as_path()),
    };
    let verdict = policy.evaluate(&tx);
    let labels: Vec<LabelReport> = facts
        .iter()
        .flat_map(|f| f.labels.iter())
        .map(|l| {
            // The catalog's display name, else the name the file itself states.
            let stated = inspection.all_labels().find(|e| e.id == l.id).and_then(|e| e.name.clone());
            let name = catalog.lookup(l.tenant.as_deref(), &l.id).map(|k| k.display_name.clone()).or(stated);
            LabelReport { id: l.id.clone(), tenant: l.tenant.clone(), name }
        })
        .collect();
    let report = Report {
        file: args.file.display().to_string(),
        url: &url,
        host: &host,
        kind: &facts[0].kind,
        labels,
        files: &facts,
        verdict: &verdict,
        warnings: loaded.warnings.iter().chain(diagnostics.iter()).map(ToString::to_string).collect(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("verdict:  {}", verdict.action.as_str().to_uppercase());
        println!("reason:   {}", verdict.reason);
        println!("rule:     {}", verdict.rule.as_deref().unwrap_or("- (default action)"));
        if let Some(m) = &verdict.message {
            println!("message:  {m}");
        }
        println!("file:     {} ({})", report.file, report.kind);
        if let Err(e) = &result {
            println!("          could not be read: {e}");
        }
        if let Some(reason) = facts[0].unscannable {
            println!("          unscannable: {}", reason.as_str());
        }
        for inner in &facts[1..] {
            let labels: Vec<&str> = inner.labels.iter().map(|l| l.id.as_str()).collect();
            let unscannable = inner.unscannable.map(|u| format!(" unscannable: {}", u.as_str())).unwrap_or_default();
            println!(
                "inside:   {} ({}){}{}",
                inner.name.as_deref().unwrap_or("-"),
                inner.kind,
                if labels.is_empty() { String::new() } else { format!(" labels: {}", labels.join(", ")) },
                unscannable
            );
        }
        if let Some(i) = verdict.file.filter(|&i| i > 0) {
            println!("decided by: {}", facts[i].name.as_deref().unwrap_or("-"));
        }
        for l in &report.labels {
            println!("label:    {} {} (tenant {})", l.id, l.name.as_deref().unwrap_or("(unnamed)"), l.tenant.as_deref().unwrap_or("-"));
        }
        println!("to:       {url} (cloud app: {})", verdict.cloud_app.as_deref().unwrap_or("none"));
        for w in &report.warnings {
            eprintln!("{w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
