//! `labelgate-scan`: labeled files where they sit. Walks file trees ([`walk`]), reads each file
//! with the proxy's own engine (`labelgate-unpack` over random access: a label costs the file's
//! metadata, not its size; archive members and nested files up to the `[inspection]` limits),
//! and hands every result, in walk order per worker, to the caller, which evaluates at-rest
//! policy and writes the output ([`output`]). Files are read in parallel by `jobs` workers; the
//! queues between the walker, the workers and the caller are bounded, so memory follows the
//! number of workers, not of files. With an [`index::Index`], a file whose identity and state
//! are unchanged is not opened again.

pub mod detection;
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
    /// Report fields (kind, labels, flags, records, findings, error, container_error, inner) as
    /// one JSON object, written once when the file is read and passed through to the output.
    pub report: Box<serde_json::value::RawValue>,
    /// The path the report's inner paths begin with: the file's path when it was read.
    pub root: String,
    /// The facts of the file, then of each file inside it.
    pub facts: Vec<FileFacts>,
    /// The names the file itself states for its labels, by GUID (shown for labels the
    /// catalog does not know).
    pub stated: Vec<(String, String)>,
    /// What the content detectors found in the file's text, when they ran.
    pub detections: Option<detection::Detections>,
}

/// What the index keeps of an [`Extracted`] besides its report.
#[derive(Serialize, Deserialize)]
struct Kept {
    root: String,
    facts: Vec<FileFacts>,
    stated: Vec<(String, String)>,
    #[serde(default)]
    detections: Option<detection::Detections>,
}

impl Extracted {
    /// The index's form: the small facts as JSON behind their length, then the report's JSON
    /// as it is (a lookup parses the facts, not the report).
    pub fn to_index(&self) -> Option<Vec<u8>> {
        let kept = serde_json::to_vec(&Kept {
            root: self.root.clone(),
            facts: self.facts.clone(),
            stated: self.stated.clone(),
            detections: self.detections.clone(),
        })
        .ok()?;
        let report = self.report.get().as_bytes();
        let mut out = Vec::with_capacity(4 + kept.len() + report.len());
        out.extend_from_slice(&u32::try_from(kept.len()).ok()?.to_le_bytes());
        out.extend_from_slice(&kept);
        out.extend_from_slice(report);
        Some(out)
    }

    /// Back from [`Extracted::to_index`]; `None` for anything else (a miss: read again).
    pub fn from_index(bytes: &[u8]) -> Option<Extracted> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let kept: Kept = serde_json::from_slice(bytes.get(4..4 + len)?).ok()?;
        let report = std::str::from_utf8(bytes.get(4 + len..)?).ok()?;
        // The index is the scan's own (0700); the report is checked to be one JSON object, not
        // parsed into values.
        let trimmed = report.trim();
        if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
            return None;
        }
        let report = serde_json::value::RawValue::from_string(report.to_string()).ok()?;
        Some(Extracted { report, root: kept.root, facts: kept.facts, stated: kept.stated, detections: kept.detections })
    }

    /// Whether the file or a file inside it carries a label.
    pub fn labeled(&self) -> bool {
        self.facts.iter().any(|f| !f.labels.is_empty())
    }

    /// The file's kind name (`unknown` when it could not be read).
    pub fn kind(&self) -> &str {
        self.facts.first().map_or("unknown", |f| f.kind.as_str())
    }
}

/// `[scan]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    /// Open archives, e-mail and files embedded in documents, and read every file inside, as the
    /// proxy does (the default). `false` reads each file's own labels only (what ExifTool and
    /// the MIP scanner read): much faster on trees of Office documents; an archive or a message
    /// is then reported `nested_limit` (its files were not read), never clean.
    #[serde(default = "yes")]
    pub files_inside: bool,
    /// Text read per file for content detectors (UTF-8 bytes; default 8 MiB). Past it the
    /// counts are of the text read, and the file's `detections` say `truncated`.
    #[serde(default = "default_max_text_bytes")]
    pub max_text_bytes: u64,
    /// Decompressed bytes (XML, PDF content, message bodies) read per file to find its text
    /// (default 128 MiB).
    #[serde(default = "default_max_text_source_bytes")]
    pub max_text_source_bytes: u64,
}

fn default_max_text_bytes() -> u64 {
    labelgate_extract::TextLimits::default().max_text_bytes
}

fn default_max_text_source_bytes() -> u64 {
    labelgate_extract::TextLimits::default().max_source_bytes
}

impl ScanConfig {
    /// Values out of range, located at their keys.
    pub fn problems(&self) -> Vec<labelgate_diagnostics::Problem> {
        let mut problems = Vec::new();
        for (key, value, min) in
            [("max_text_bytes", self.max_text_bytes, 1024), ("max_text_source_bytes", self.max_text_source_bytes, 4096)]
        {
            if value < min || value > 1 << 40 {
                problems.push(labelgate_diagnostics::Problem::error(
                    labelgate_diagnostics::key(&["scan", key]),
                    format!("[scan] {key} must be between {min} and 2^40 bytes"),
                ));
            }
        }
        problems
    }

    /// The text limits for detectors.
    pub fn text_limits(&self) -> labelgate_extract::TextLimits {
        labelgate_extract::TextLimits { max_text_bytes: self.max_text_bytes, max_source_bytes: self.max_text_source_bytes }
    }
}

fn yes() -> bool {
    true
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig { files_inside: true, max_text_bytes: default_max_text_bytes(), max_text_source_bytes: default_max_text_source_bytes() }
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
    /// Read the files inside files (`[scan] files_inside`).
    pub files_inside: bool,
    /// Content detectors to run on each file's text, when a rule needs them.
    pub detection: Option<detection::Detection>,
}

impl Settings {
    /// What changes the extractor's results: the index keys on it.
    pub fn fingerprint(&self) -> String {
        let detection = self.detection.as_ref().map_or_else(|| "no detectors".to_string(), detection::Detection::fingerprint);
        let (limits, bounds, files_inside) = (&self.limits, &self.bounds, self.files_inside);
        format!(
            "labelgate-scan {} index {INDEX_FORMAT} {limits:?} {bounds:?} files_inside={files_inside} {detection}",
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// What the scan found, in the order the caller receives it.
#[derive(Debug)]
pub enum Found<R> {
    /// A file, read now or known from the index, and what the caller's `render` made of it (on
    /// the worker that read it: the results themselves stay there).
    File(Done, R),
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

/// A file scanned, as the caller's thread sees it.
#[derive(Debug)]
pub struct Done {
    /// The file as the walk found it.
    pub entry: FileEntry,
    /// Known from the index: not opened.
    pub cached: bool,
    /// Why it could not be read, if so.
    pub error: Option<String>,
}

/// Counters the caller may show while the scan runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files read or known from the index.
    pub files: AtomicU64,
    /// Their bytes.
    pub bytes: AtomicU64,
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
/// Raised whenever what is kept, or how files are read, changes within a version: entries of
/// another revision are never looked up.
const INDEX_FORMAT: u32 = 1;
/// Entries handed to a worker at once, and results handed back.
const BATCH: usize = 32;
/// Results written to the index in one transaction: few commits, since every commit rewrites
/// the tree's path while the workers' read views keep the old pages alive.
const INDEX_BATCH: usize = 4096;

/// Scans `roots`: each file is read (or recalled from the index) and handed to `render` on the
/// worker that read it, so the work per file runs on every core; `found` then gets everything
/// found, with what `render` made of each file, on the calling thread. `progress` is kept
/// current.
pub fn scan<R: Send>(
    roots: &[PathBuf],
    settings: &Settings,
    progress: &Progress,
    render: &(dyn Fn(&Scanned) -> R + Sync),
    found: &mut dyn FnMut(Found<R>),
) -> Result<(), ScanError> {
    let jobs = settings.jobs.max(1);
    // Handed on in batches: one wake-up per batch, not per file.
    let (work_tx, work_rx) = mpsc::sync_channel::<Vec<Walked>>(QUEUE / BATCH + 1);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = mpsc::sync_channel::<Vec<Found<R>>>(QUEUE / BATCH + 1);
    let (index_tx, index_rx) = mpsc::sync_channel::<(index::Key, Vec<u8>)>(QUEUE);
    let index_error: Mutex<Option<index::IndexError>> = Mutex::new(None);
    std::thread::scope(|s| {
        // The walker: one thread, depth first.
        s.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            walk::walk(roots, &settings.walk, &mut |w| {
                batch.push(w);
                batch.len() < BATCH || work_tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_ok()
            });
            if !batch.is_empty() {
                let _ = work_tx.send(batch);
            }
        });
        // The workers, each with its own view of the index.
        for _ in 0..jobs {
            let (work_rx, done_tx, index_tx) = (Arc::clone(&work_rx), done_tx.clone(), index_tx.clone());
            let index_error = &index_error;
            s.spawn(move || {
                let reader = settings.index.as_ref().map(index::Index::reader).transpose();
                let reader = match reader {
                    Ok(r) => r,
                    Err(e) => {
                        if let Ok(mut slot) = index_error.lock() {
                            slot.get_or_insert(e);
                        }
                        None
                    }
                };
                loop {
                    let next = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(walked) = next else { return };
                    let out: Vec<Found<R>> = walked
                        .into_iter()
                        .map(|walked| match walked {
                            Walked::File(entry) => {
                                let path = entry.path.clone();
                                // A parser bug on one file is that file's error, not the end of the scan (nor a
                                // worker lost with its batch).
                                let one = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    let scanned = read_or_recall(entry, settings, reader.as_ref(), &index_tx, index_error);
                                    if scanned.result.as_ref().is_ok_and(Extracted::labeled) {
                                        progress.labeled.fetch_add(1, Ordering::Relaxed);
                                    }
                                    let made = render(&scanned);
                                    let Scanned { entry, result, cached } = scanned;
                                    Found::File(Done { entry, cached, error: result.err() }, made)
                                }));
                                one.unwrap_or_else(|_| {
                                    Found::Error(path, "the reader failed on this file (a labelgate bug; please report it)".into())
                                })
                            }
                            Walked::Skipped(p, why) => Found::Skipped(p, why),
                            Walked::Error(p, e) => Found::Error(p, e),
                        })
                        .collect();
                    if done_tx.send(out).is_err() {
                        return;
                    }
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
        for item in done_rx.iter().flatten() {
            if let Found::File(f, _) = &item {
                progress.files.fetch_add(1, Ordering::Relaxed);
                progress.bytes.fetch_add(f.entry.size, Ordering::Relaxed);
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
    reader: Option<&index::Reader<'_>>,
    index_tx: &mpsc::SyncSender<(index::Key, Vec<u8>)>,
    index_error: &Mutex<Option<index::IndexError>>,
) -> Scanned {
    let key = settings.index.as_ref().map(|i| i.key(&entry));
    if let (Some(reader), Some(key)) = (reader, &key) {
        match reader.get(key) {
            Ok(Some(known)) => return Scanned { entry, result: Ok(known), cached: true },
            Ok(None) => {}
            Err(e) => {
                if let Ok(mut slot) = index_error.lock() {
                    slot.get_or_insert(e);
                }
            }
        }
    }
    let result = read_file_and_state(&entry, settings);
    if let (Some(index), Ok((extracted, state))) = (&settings.index, &result) {
        // Keyed by the state that was read; and a file changed within the last second is not
        // kept (a write in the same clock tick would leave its times as they were: git's
        // "racily clean" rule).
        let settled = now_ns() - state.mtime_ns.max(state.ctime_ns) > RACY_NS;
        if let (true, Some(bytes)) = (settled, extracted.to_index()) {
            let _ = index_tx.send((index.key(state), bytes));
        }
    }
    Scanned { entry, result: result.map(|(extracted, _)| extracted), cached: false }
}

/// Files changed more recently than this (ns) are read but not kept in the index.
const RACY_NS: i128 = 1_000_000_000;

fn now_ns() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

/// Opens the file the walk found: without following a link swapped in since, without blocking
/// on a FIFO swapped in since, without updating its access time where the OS allows; and only
/// if it is still that regular file.
fn open_found(entry: &FileEntry, follow_symlinks: bool) -> Result<(std::fs::File, std::fs::Metadata), String> {
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
    Ok((file, meta))
}

/// Reads one file with the proxy's engine: random access, every file inside it within the
/// limits.
pub fn read_file(entry: &FileEntry, settings: &Settings) -> Result<Extracted, String> {
    read_file_and_state(entry, settings).map(|(extracted, _)| extracted)
}

/// [`read_file`], with the file's state as `fstat` gave it on the open descriptor (what the
/// index keys on: what was read, not what the walk saw before).
fn read_file_and_state(entry: &FileEntry, settings: &Settings) -> Result<(Extracted, FileEntry), String> {
    let (file, meta) = open_found(entry, settings.walk.follow_symlinks)?;
    let state = FileEntry::of(entry.path.clone(), &meta);
    let inspection = if settings.files_inside {
        labelgate_unpack::inspect_reader(&file, &settings.limits, &settings.bounds)
    } else {
        labels_only(&file, &settings.limits)
    };
    let shown = entry.path.to_string_lossy();
    let name = entry.path.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut facts: Vec<FileFacts> = labelgate_policy::facts::inspection_facts(name, &inspection).into_iter().map(|r| r.facts).collect();
    // The file's own text: what would be labelled is this file, not the files inside it. An
    // encrypted file's text cannot be read.
    let detections = match (&settings.detection, facts.first_mut()) {
        (Some(detection), Some(first)) if first.unscannable != Some(labelgate_policy::UnscannableReason::Encrypted) => {
            let found = detection::detect(&file, &first.kind, detection, &settings.limits);
            first.detected = found.holding(detection);
            // What the detectors did not see is decided by policy (`on_unscannable.text_unread`),
            // never taken for clean.
            if first.unscannable.is_none() && found.incomplete(&first.kind) {
                first.unscannable = Some(labelgate_policy::UnscannableReason::TextUnread);
            }
            Some(found)
        }
        _ => None,
    };
    let mut stated: Vec<(String, String)> = Vec::new();
    for l in inspection.all_labels() {
        if let Some(name) = &l.name {
            if !stated.iter().any(|(id, _)| id == &l.id) {
                stated.push((l.id.clone(), name.clone()));
            }
        }
    }
    let report = serde_json::value::to_raw_value(&report::inspection_report(&shown, &inspection)).map_err(|e| e.to_string())?;
    Ok((Extracted { report, root: shown.into_owned(), facts, stated, detections }, state))
}

/// The file's own labels, nothing inside it opened: a container (an archive or a message) is
/// reported `nested_limit`, since the files it holds were not read.
fn labels_only(file: &std::fs::File, limits: &Limits) -> labelgate_unpack::Inspection {
    use labelgate_extract::FileKind as K;
    let outer = labelgate_extract::extract_reader(file, limits);
    let holds_files = outer.as_ref().is_ok_and(|ex| {
        matches!(
            ex.kind,
            K::Zip
                | K::Gzip
                | K::Bzip2
                | K::Xz
                | K::Zstd
                | K::Tar
                | K::Cpio
                | K::Ar
                | K::Lzma
                | K::SevenZ
                | K::Rar
                | K::Tnef
                | K::Compress
                | K::Cab
                | K::Wim
                | K::Lz4
                | K::Eml
                | K::Msg
        )
    });
    let container = holds_files.then_some(labelgate_unpack::Problem::NestedLimit { limit: "[scan] files_inside", max: 0 });
    labelgate_unpack::Inspection { outer, container, inner: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            limits: Limits::default(),
            bounds: UnpackLimits::default(),
            jobs: 1,
            walk: WalkOptions::default(),
            index: None,
            files_inside: true,
            detection: None,
        }
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
    fn reading_a_file_leaves_its_access_time_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.docx");
        std::fs::write(&path, labelgate_testkit::zip(&labelgate_testkit::docx(None, None))).unwrap();
        // An access time older than the modification time: relatime would update it on a read.
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        std::fs::File::options().write(true).open(&path).unwrap().set_times(std::fs::FileTimes::new().set_accessed(old)).unwrap();
        read_file(&entry(&path), &settings()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().accessed().unwrap(), old, "opened with O_NOATIME");
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
