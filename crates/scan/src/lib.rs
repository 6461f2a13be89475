//! `labelgate-scan`: labeled files where they sit. Walks file trees ([`walk`]), reads each file
//! with the proxy's own engine (`labelgate-unpack` over random access: a label costs the file's
//! metadata, not its size; archive members and nested files up to the `[inspection]` limits),
//! and hands every result, in walk order per worker, to the caller, which evaluates at-rest
//! policy and writes the output ([`output`]). Files are read in parallel by `jobs` workers; the
//! queues between the walker, the workers and the caller are bounded, so memory follows the
//! number of workers, not of files. With an [`index::Index`], a file whose identity and state
//! are unchanged is not opened again.

pub mod index;
pub mod output;
pub mod report;
pub mod walk;

use labelgate_extract::Limits;
use labelgate_policy::FileFacts;
use labelgate_unpack::UnpackLimits;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use walk::{FileEntry, Skip, WalkOptions, Walked};

/// What was read from one file: its report (the fields of `labelgate inspect --json`) and the
/// facts policy evaluates (the file first, then every file inside it). This is what the index
/// keeps; verdicts are not kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extracted {
    /// Report fields (kind, labels, flags, records, findings, error, container_error, inner).
    pub report: serde_json::Map<String, serde_json::Value>,
    /// The facts of the file, then of each file inside it.
    pub facts: Vec<FileFacts>,
}

impl Extracted {
    /// Whether the file or a file inside it carries a label.
    pub fn labeled(&self) -> bool {
        self.facts.iter().any(|f| !f.labels.is_empty())
    }

    /// The file's kind name (`unknown` when it could not be read).
    pub fn kind(&self) -> &str {
        self.facts.first().map_or("unknown", |f| f.kind.as_str())
    }
}

/// How to scan.
pub struct Settings {
    /// The extractor's limits (`[inspection]`).
    pub limits: Limits,
    /// The limits on files inside files (`[inspection]`).
    pub bounds: UnpackLimits,
    /// Workers reading files at once.
    pub jobs: usize,
    /// Symbolic links and exclusions.
    pub walk: WalkOptions,
    /// The incremental index, when asked for.
    pub index: Option<index::Index>,
}

impl Settings {
    /// What changes the extractor's results: the index keys on it.
    pub fn fingerprint(limits: &Limits, bounds: &UnpackLimits) -> String {
        format!("labelgate-scan {} {limits:?} {bounds:?}", env!("CARGO_PKG_VERSION"))
    }
}

/// What the scan found, in the order the caller receives it.
#[derive(Debug)]
pub enum Found {
    /// A file, read now or known from the index.
    File(Scanned),
    /// Something not scanned, and why.
    Skipped(PathBuf, Skip),
    /// A path that could not be read (a root, a directory, a file that vanished).
    Error(PathBuf, String),
}

/// One file scanned.
#[derive(Debug)]
pub struct Scanned {
    /// The file as the walk found it.
    pub entry: FileEntry,
    /// What was read, or why it could not be.
    pub result: Result<Extracted, String>,
    /// Known from the index: not opened.
    pub cached: bool,
}

/// Counters the caller may show while the scan runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files read or known from the index.
    pub files: AtomicU64,
    /// Their bytes.
    pub bytes: AtomicU64,
    /// Files opened and read this run.
    pub read: AtomicU64,
    /// Files with a label (on them or inside).
    pub labeled: AtomicU64,
}

/// Why the scan could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The index could not be read or written.
    #[error(transparent)]
    Index(#[from] index::IndexError),
}

/// Entries between the walker and the workers, and results between the workers and the caller:
/// bounded, so a fast walker or a slow output never piles up memory.
const QUEUE: usize = 256;
/// Results written to the index in one transaction.
const INDEX_BATCH: usize = 512;

/// Scans `roots`, calling `found` for everything found (on the calling thread); `progress` is
/// kept current.
pub fn scan(roots: &[PathBuf], settings: &Settings, progress: &Progress, found: &mut dyn FnMut(Found)) -> Result<(), ScanError> {
    let jobs = settings.jobs.max(1);
    let (work_tx, work_rx) = mpsc::sync_channel::<Walked>(QUEUE);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = mpsc::sync_channel::<Found>(QUEUE);
    let (index_tx, index_rx) = mpsc::sync_channel::<(index::Key, Vec<u8>)>(QUEUE);
    let index_error: Mutex<Option<index::IndexError>> = Mutex::new(None);
    std::thread::scope(|s| {
        // The walker: one thread, depth first.
        s.spawn(move || walk::walk(roots, &settings.walk, &mut |w| work_tx.send(w).is_ok()));
        // The workers.
        for _ in 0..jobs {
            let (work_rx, done_tx, index_tx) = (Arc::clone(&work_rx), done_tx.clone(), index_tx.clone());
            let index_error = &index_error;
            s.spawn(move || loop {
                let next = match work_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(walked) = next else { return };
                let out = match walked {
                    Walked::File(entry) => Found::File(read_or_recall(entry, settings, &index_tx, index_error)),
                    Walked::Skipped(p, why) => Found::Skipped(p, why),
                    Walked::Error(p, e) => Found::Error(p, e),
                };
                if done_tx.send(out).is_err() {
                    return;
                }
            });
        }
        drop((done_tx, index_tx));
        // The index writer: batches, one transaction each.
        if let Some(index) = &settings.index {
            let index_error = &index_error;
            s.spawn(move || {
                let mut batch = Vec::with_capacity(INDEX_BATCH);
                let flush = |batch: &mut Vec<(index::Key, Vec<u8>)>| {
                    if let Err(e) = index.put(batch) {
                        if let Ok(mut slot) = index_error.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                    batch.clear();
                };
                for item in index_rx.iter() {
                    batch.push(item);
                    if batch.len() >= INDEX_BATCH {
                        flush(&mut batch);
                    }
                }
                if !batch.is_empty() {
                    flush(&mut batch);
                }
            });
        } else {
            drop(index_rx);
        }
        for item in done_rx.iter() {
            if let Found::File(f) = &item {
                progress.files.fetch_add(1, Ordering::Relaxed);
                progress.bytes.fetch_add(f.entry.size, Ordering::Relaxed);
                if !f.cached {
                    progress.read.fetch_add(1, Ordering::Relaxed);
                }
                if f.result.as_ref().is_ok_and(Extracted::labeled) {
                    progress.labeled.fetch_add(1, Ordering::Relaxed);
                }
            }
            found(item);
        }
    });
    match index_error.into_inner().ok().flatten() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// The file's results from the index, else read now (and given to the index writer).
fn read_or_recall(
    entry: FileEntry,
    settings: &Settings,
    index_tx: &mpsc::SyncSender<(index::Key, Vec<u8>)>,
    index_error: &Mutex<Option<index::IndexError>>,
) -> Scanned {
    let key = settings.index.as_ref().map(|i| i.key(&entry));
    if let (Some(index), Some(key)) = (&settings.index, &key) {
        match index.get(key) {
            Ok(Some(known)) => return Scanned { entry, result: Ok(known), cached: true },
            Ok(None) => {}
            Err(e) => {
                if let Ok(mut slot) = index_error.lock() {
                    slot.get_or_insert(e);
                }
            }
        }
    }
    let result = read_file(&entry, settings);
    if let (Some(key), Ok(extracted)) = (key, &result) {
        if let Ok(bytes) = serde_json::to_vec(extracted) {
            let _ = index_tx.send((key, bytes));
        }
    }
    Scanned { entry, result, cached: false }
}

/// Opens the file the walk found: without following a link swapped in since, without blocking
/// on a FIFO swapped in since, without updating its access time where the OS allows; and only
/// if it is still that regular file.
fn open_found(entry: &FileEntry, follow_symlinks: bool) -> Result<std::fs::File, String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let base = libc::O_NONBLOCK | if follow_symlinks { 0 } else { libc::O_NOFOLLOW };
    let open = |flags: i32| std::fs::OpenOptions::new().read(true).custom_flags(flags).open(&entry.path);
    // O_NOATIME is refused (EPERM) on files the scanning user does not own.
    let file = match open(base | libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(base),
        other => other,
    }
    .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() || meta.dev() != entry.dev || meta.ino() != entry.ino {
        return Err("the file was replaced while the scan ran".into());
    }
    Ok(file)
}

/// Reads one file with the proxy's engine: random access, every file inside it within the
/// limits.
pub fn read_file(entry: &FileEntry, settings: &Settings) -> Result<Extracted, String> {
    let file = open_found(entry, settings.walk.follow_symlinks)?;
    let inspection = labelgate_unpack::inspect_reader(file, &settings.limits, &settings.bounds);
    let shown = entry.path.to_string_lossy();
    let name = entry.path.file_name().map(|n| n.to_string_lossy().into_owned());
    let facts = labelgate_policy::facts::inspection_facts(name, &inspection).into_iter().map(|r| r.facts).collect();
    Ok(Extracted { report: report::inspection_report(&shown, &inspection), facts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings { limits: Limits::default(), bounds: UnpackLimits::default(), jobs: 1, walk: WalkOptions::default(), index: None }
    }

    fn entry(path: &std::path::Path) -> FileEntry {
        let mut found = None;
        walk::walk(&[path.to_path_buf()], &WalkOptions::default(), &mut |w| {
            if let Walked::File(f) = w {
                found = Some(f);
            }
            true
        });
        found.expect("a regular file")
    }

    #[test]
    fn a_sparse_10_gib_docx_is_read_by_its_metadata() {
        use labelgate_testkit::{custom_xml, docx, sparse_zip};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.docx");
        let id = "3d0ca00b-3f0e-465a-aac7-1a6a22fcea40";
        let custom = custom_xml(&[(id, "72f988bf-86f1-41af-91ab-2d7cd011db47", "true")]);
        sparse_zip(&path, &docx(Some(custom), None), "word/media/video.bin", 10 << 30).unwrap();
        let found = read_file(&entry(&path), &settings()).unwrap();
        assert_eq!(found.kind(), "docx", "{:?}", found.report);
        assert_eq!(found.facts[0].labels.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), [id], "{:?}", found.report);
    }
}
