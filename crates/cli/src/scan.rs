//! `labelgate scan`: labeled files where they sit. Walks the given trees with `labelgate-scan`,
//! evaluates each file with the policy's `direction = "at_rest"` rules (which may name `paths`),
//! resolves labels through the catalog of the state directory's stored snapshots, and prints
//! JSON lines, CSV or a table, then a summary. Exit status: 0 when no file matched a rule whose
//! action is `block` or `audit`, 3 when one did, 1 when the scan itself failed (a root that
//! cannot be read, the output or the index failing; per-file errors too with `--strict`), 2 on
//! usage errors.

use anyhow::Result;
use clap::Args;
use labelgate_policy::{Action, Transaction};
use labelgate_scan::output::{self, Format, Rendered, Summary, Writer};
use labelgate_scan::walk::{Exclude, WalkOptions};
use labelgate_scan::{Found, Progress, Settings};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum FormatArg {
    Table,
    Json,
    Csv,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// State directory of `labelgate serve`: label names from its stored snapshots, and the
    /// incremental index.
    #[arg(long, value_name = "DIR", default_value = "state")]
    state_dir: PathBuf,
    /// Output: a table for people (files with a label, a rule match or a problem), one JSON
    /// object per file per line, or CSV with stable columns.
    #[arg(long, value_enum, default_value = "table")]
    format: FormatArg,
    /// Write the files here instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Files read at once (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=512))]
    jobs: Option<u16>,
    /// Leave out paths matching GLOB (a glob without `/` matches a name anywhere, one with `/`
    /// the whole path; `**` crosses directories). Repeatable.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Follow symbolic links (a link back to a directory being walked is never entered).
    #[arg(long)]
    follow_symlinks: bool,
    /// Keep what was read from each file in the state directory, keyed by the file's identity,
    /// and read only new or changed files next time (verdicts are always evaluated anew).
    #[arg(long)]
    incremental: bool,
    /// A file that cannot be read fails the scan (exit 1).
    #[arg(long)]
    strict: bool,
    /// Write the label of each matching rule's `apply_label` into the file (without it, a dry
    /// run reports what would be done). Originals are kept in the state directory; the run
    /// prints the undo log to give to --undo.
    #[arg(long, conflicts_with = "undo")]
    apply: bool,
    /// Put back the originals of an --apply run (its log.jsonl), where the labelled file is
    /// still exactly what the run wrote.
    #[arg(long, value_name = "LOG")]
    undo: Option<PathBuf>,
    /// Directories and files to scan.
    #[arg(required_unless_present = "undo", value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// The index (an LMDB environment) under the state directory.
pub fn index_path(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("scan-index")
}

/// A path for an error line: control characters escaped, so a file name cannot forge lines.
fn shown(path: &std::path::Path) -> String {
    output::printable(&path.to_string_lossy())
}

/// The absolute path, `.` and `..` resolved lexically (not through links: the scan reports
/// the path it walked), for `paths` / `not_paths`.
fn absolute(path: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let full = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in full.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Shows files, bytes, labeled files and the rate on a terminal, every 200 ms.
fn progress_line(progress: &Progress, started: Instant, out: &mut std::io::Stderr) {
    let files = progress.files.load(Ordering::Relaxed);
    let bytes = progress.bytes.load(Ordering::Relaxed);
    let labeled = progress.labeled.load(Ordering::Relaxed);
    let rate = files as f64 / started.elapsed().as_secs_f64().max(1e-3);
    let _ = write!(out, "\r\x1b[2K  {files} files  {:.1} MB  {labeled} labeled  {rate:.0} files/s", bytes as f64 / 1e6);
    let _ = out.flush();
}

/// `--undo LOG`: every change put back, or why not.
fn undo(log: &std::path::Path) -> ExitCode {
    let restored = match labelgate_apply::undo::restore(log) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("labelgate scan: --undo {}: {e}", log.display());
            return ExitCode::from(1);
        }
    };
    let mut left = 0;
    for r in &restored {
        match &r.left {
            None => println!("restored  {}", shown(&r.path)),
            Some(why) => {
                left += 1;
                println!("left      {}: {}", shown(&r.path), output::printable(why));
            }
        }
    }
    eprintln!("labelgate scan: restored {} of {} files", restored.len() - left, restored.len());
    if left > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

pub fn run(config: Option<&std::path::Path>, args: &ScanArgs) -> Result<ExitCode> {
    if let Some(log) = &args.undo {
        return Ok(undo(log));
    }
    let loaded = match crate::load_or_report(config)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let exclude = match Exclude::new(&args.exclude) {
        Ok(e) => e,
        Err(why) => {
            eprintln!("labelgate scan: {why}");
            return Ok(ExitCode::from(2));
        }
    };
    let catalog = crate::stored_catalog(&loaded, &args.state_dir);
    let (policy, _) = loaded.resolve(catalog.clone());
    let limits = loaded.file.inspection.extract_limits();
    let bounds = loaded.file.inspection.unpack_limits();
    let jobs = args.jobs.map(usize::from).unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    // Text is read only when a rule asks what the detectors found: labels alone cost a file's
    // metadata, text costs its content.
    let detection = loaded.policy.uses_detectors().then(|| loaded.detection.clone());
    let mut settings = Settings {
        limits,
        bounds,
        jobs,
        walk: WalkOptions { follow_symlinks: args.follow_symlinks, exclude },
        index: None,
        files_inside: loaded.file.scan.files_inside,
        detection,
    };
    if args.incremental {
        match labelgate_scan::index::Index::open(&index_path(&args.state_dir), &settings.fingerprint()) {
            Ok(i) => settings.index = Some(i),
            Err(e) => {
                eprintln!("labelgate scan: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    // Labelling: a dry run unless --apply; with it, an undo log for this run.
    let set_date = time::OffsetDateTime::now_utc();
    let undo_log = if args.apply {
        let d = set_date;
        let stamp = format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", d.year(), u8::from(d.month()), d.day(), d.hour(), d.minute(), d.second());
        match labelgate_apply::undo::Log::create(&args.state_dir, &stamp) {
            Ok(log) => Some(log),
            Err(e) => {
                eprintln!("labelgate scan: cannot create the undo log under {}: {e}", args.state_dir.display());
                return Ok(ExitCode::from(1));
            }
        }
    } else {
        None
    };
    let labeller = labelgate_apply::Labeller {
        catalog: &catalog,
        limits: &settings.limits,
        undo: undo_log.as_ref(),
        state_dir: args.state_dir.canonicalize().ok(),
        set_date: set_date
            .replace_nanosecond(0)
            .unwrap_or(set_date)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    };
    let format = match args.format {
        FormatArg::Table => Format::Table,
        FormatArg::Json => Format::Json,
        FormatArg::Csv => Format::Csv,
    };
    let destination: Box<dyn Write> = match &args.output {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("labelgate scan: cannot write {}: {e}", path.display());
                return Ok(ExitCode::from(1));
            }
        },
        None => Box::new(std::io::stdout().lock()),
    };
    let mut writer = Writer::new(std::io::BufWriter::with_capacity(256 * 1024, destination), format);
    let mut summary = Summary::default();
    let progress = Progress::default();
    let started = Instant::now();
    let (mut matched, mut file_errors, mut failed) = (false, 0u64, false);
    let roots: Vec<PathBuf> = args.paths.clone();
    let show_progress = std::io::stderr().is_terminal();
    let stop = std::sync::atomic::AtomicBool::new(false);
    /// Ends the progress line however the scan ends.
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let outcome = std::thread::scope(|s| {
        let _stop = Stop(&stop);
        if show_progress {
            s.spawn(|| {
                let mut err = std::io::stderr();
                while !stop.load(Ordering::Relaxed) {
                    progress_line(&progress, started, &mut err);
                    std::thread::sleep(Duration::from_millis(200));
                }
                let _ = write!(err, "\r\x1b[2K");
            });
        }
        // Per file, on the worker that read it: the verdict, the output line, the summary's count.
        let render = |file: &labelgate_scan::Scanned| -> (Rendered, bool) {
            let verdict = file.result.as_ref().ok().map(|ex| {
                // Rules match the absolute path, however the root was typed.
                policy.evaluate(&Transaction::at_rest(&ex.facts, &absolute(&file.entry.path)))
            });
            let matched = verdict.as_ref().is_some_and(|v| v.rule.is_some() && v.action != Action::Allow);
            let e = &file.entry;
            let target = labelgate_apply::Target {
                path: &e.path,
                dev: e.dev,
                ino: e.ino,
                size: e.size,
                mtime_ns: e.mtime_ns,
                ctime_ns: e.ctime_ns,
                nlink: e.nlink,
            };
            let labelled = verdict.as_ref().and_then(|v| v.apply_label.as_deref()).map(|label| labeller.label(&target, label));
            (output::render(format, file, verdict.as_ref(), labelled.as_ref(), &catalog), matched)
        };
        let result = labelgate_scan::scan(&roots, &settings, &progress, &render, &mut |found| match found {
            Found::File(file, (rendered, hit)) => {
                matched |= hit;
                if let Some(e) = &file.error {
                    file_errors += 1;
                    eprintln!("labelgate scan: {}: {e}", shown(&file.entry.path));
                }
                if let Some(why) = rendered.tally.labelling_failure() {
                    failed = true;
                    eprintln!("labelgate scan: {}: labelling failed: {}", shown(&file.entry.path), output::printable(why));
                }
                if let Err(e) = writer.write(&rendered) {
                    if !failed {
                        eprintln!("labelgate scan: cannot write the output: {e}");
                    }
                    failed = true;
                }
                summary.add(rendered.tally);
            }
            Found::Skipped(_, why) => summary.skipped(why),
            Found::Error(path, e) => {
                summary.errors += 1;
                eprintln!("labelgate scan: {}: {e}", shown(&path));
                if roots.contains(&path) {
                    failed = true;
                } else {
                    file_errors += 1;
                }
            }
        });
        stop.store(true, Ordering::Relaxed);
        result
    });
    if let Err(e) = outcome {
        eprintln!("labelgate scan: {e}");
        failed = true;
    }

    summary.finish(started.elapsed());
    if let Some(log) = &undo_log {
        let applied = summary.by_labelling.get("applied").copied().unwrap_or(0);
        if log.changes() > 0 {
            eprintln!(
                "labelgate scan: labelled {applied} files; to put the originals back: labelgate scan --undo {}",
                log.path().display()
            );
        } else if let Some(dir) = log.path().parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    match writer.finish() {
        Ok(mut out) => {
            if format == Format::Table {
                let _ = writeln!(out);
                let _ = summary.write_text(&mut out);
                let _ = out.flush();
            } else {
                let _ = summary.write_text(&mut std::io::stderr());
            }
        }
        Err(e) => {
            eprintln!("labelgate scan: cannot write the output: {e}");
            failed = true;
        }
    }
    Ok(if failed || (args.strict && file_errors > 0) {
        ExitCode::from(1)
    } else if matched {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
