//! The undo log of one `labelgate scan --apply` run: a directory under the state directory
//! holding each original (hard-linked when the file system allows, else copied) and
//! `log.jsonl`, one line per change written (and synced) before the change is made.
//! [`restore`] puts every original back whose labelled file is still exactly what was written.

use crate::{keep_metadata, sha256_of, Staged};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One change, as the log records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    /// The file labelled.
    pub path: PathBuf,
    /// Where its original is kept (a name inside the log's directory).
    pub original: String,
    /// The original's size and SHA-256: a kept original is put back only if it still is that.
    pub original_size: u64,
    #[allow(missing_docs)]
    pub original_sha256: String,
    /// What was written: its SHA-256 and size (undo restores only a file still like this).
    pub written_sha256: String,
    #[allow(missing_docs)]
    pub written_size: u64,
    /// The label written.
    pub label: String,
    /// The original's modification time (ns since the epoch), given back on undo.
    pub mtime_ns: i64,
}

/// A line of the log: a change, or the withdrawal of one that was recorded but not made.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Change(Change),
    Withdrawn { withdrawn: String },
}

/// An open undo log.
pub struct Log {
    dir: PathBuf,
    inner: Mutex<(std::fs::File, u64)>,
}

impl Log {
    /// A new log under `state_dir/undo/` (mode 0700), named by the time and process.
    pub fn create(state_dir: &Path, stamp: &str) -> std::io::Result<Log> {
        use std::os::unix::fs::DirBuilderExt;
        let parent = state_dir.join("undo");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&parent)?;
        let dir = parent.join(format!("{stamp}-{}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let file = std::fs::OpenOptions::new().append(true).create_new(true).open(dir.join("log.jsonl"))?;
        Ok(Log { dir, inner: Mutex::new((file, 0)) })
    }

    /// The log file's path (what `--undo` takes).
    pub fn path(&self) -> PathBuf {
        self.dir.join("log.jsonl")
    }

    /// Changes recorded.
    pub fn changes(&self) -> u64 {
        self.inner.lock().map_or(0, |g| g.1)
    }

    /// Keeps the original of `path` (open as `file`): a hard link to its inode when the file
    /// system allows (checked to be that inode), else a copy of its bytes.
    pub(crate) fn keep(&self, path: &Path, file: &std::fs::File, meta: &std::fs::Metadata) -> std::io::Result<String> {
        let n = {
            let mut guard = self.inner.lock().map_err(|_| std::io::Error::other("undo log poisoned"))?;
            guard.1 += 1;
            guard.1
        };
        let name = format!("{n}.orig");
        let kept = self.dir.join(&name);
        if std::fs::hard_link(path, &kept).is_ok() {
            let linked = std::fs::symlink_metadata(&kept)?;
            if linked.dev() == meta.dev() && linked.ino() == meta.ino() {
                return Ok(name);
            }
            std::fs::remove_file(&kept)?;
        }
        let mut copy = std::fs::OpenOptions::new().write(true).create_new(true).open(&kept)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        loop {
            let got = file.read_at(&mut buf, at)?;
            if got == 0 {
                break;
            }
            copy.write_all(&buf[..got])?;
            at += got as u64;
        }
        if at != meta.len() {
            return Err(std::io::Error::other("the file changed while it was copied"));
        }
        copy.sync_all()?;
        Ok(name)
    }

    /// Records a change (synced) before it is made.
    pub(crate) fn record(&self, change: &Change) -> std::io::Result<()> {
        self.append(&Line::Change(change.clone()))
    }

    /// Withdraws a recorded change that was not made.
    pub(crate) fn withdraw(&self, original: &str) -> std::io::Result<()> {
        let _ = std::fs::remove_file(self.dir.join(original));
        self.append(&Line::Withdrawn { withdrawn: original.to_string() })
    }

    fn append(&self, line: &Line) -> std::io::Result<()> {
        let mut text = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        text.push(b'\n');
        let guard = self.inner.lock().map_err(|_| std::io::Error::other("undo log poisoned"))?;
        let mut file = &guard.0;
        file.write_all(&text)?;
        file.sync_data()
    }
}

/// What became of one change on undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The file.
    pub path: PathBuf,
    /// `None`: restored; otherwise why it was left as it is.
    pub left: Option<String>,
}

/// Puts back the originals of the log at `log`, newest change first. A file is restored only
/// if it is still exactly what the run wrote (size and SHA-256); its owner, mode, attributes
/// are kept and its modification time is the original's.
pub fn restore(log: &Path) -> std::io::Result<Vec<Restored>> {
    let dir = log.parent().unwrap_or(Path::new("."));
    let text = std::fs::read_to_string(log)?;
    let mut changes = Vec::new();
    let mut withdrawn = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str::<Line>(line) {
            Ok(Line::Change(c)) => changes.push(c),
            Ok(Line::Withdrawn { withdrawn: w }) => withdrawn.push(w),
            Err(e) => return Err(std::io::Error::other(format!("{}:{}: not an undo record: {e}", log.display(), n + 1))),
        }
    }
    let mut out = Vec::new();
    for change in changes.into_iter().rev().filter(|c| !withdrawn.contains(&c.original)) {
        let left = restore_one(dir, &change).err();
        out.push(Restored { path: change.path, left });
    }
    Ok(out)
}

fn restore_one(dir: &Path, change: &Change) -> Result<(), String> {
    if change.original.contains('/') || change.original.starts_with('.') {
        return Err("the record names a file outside the undo directory".into());
    }
    let current =
        std::fs::OpenOptions::new().read(true).custom_flags_nofollow().open(&change.path).map_err(|e| format!("cannot open: {e}"))?;
    let meta = current.metadata().map_err(|e| e.to_string())?;
    let (sha, size) = sha256_of(&current).map_err(|e| e.to_string())?;
    if size != change.written_size || sha != change.written_sha256 {
        return Err("it changed since it was labelled; left as it is".into());
    }
    let original = std::fs::File::open(dir.join(&change.original)).map_err(|e| format!("the kept original is missing: {e}"))?;
    // Kept by a hard link, the original's inode could still be written by a process that had
    // it open: it is put back only if it is what was there.
    let (kept_sha, kept_size) = sha256_of(&original).map_err(|e| e.to_string())?;
    if kept_size != change.original_size || kept_sha != change.original_sha256 {
        return Err("the kept original is not what was recorded; left as it is".into());
    }
    let staged = Staged::create(&change.path).map_err(|e| format!("cannot write beside it: {e}"))?;
    let result = (|| -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(&staged.file);
        std::io::copy(&mut std::io::BufReader::new(&original), &mut out)?;
        out.flush()?;
        drop(out);
        keep_metadata(&current, &meta, &staged.file)?;
        let still = std::fs::symlink_metadata(&change.path)?;
        let now = current.metadata()?;
        if still.ino() != meta.ino()
            || still.dev() != meta.dev()
            || now.len() != meta.len()
            || now.mtime_nsec() != meta.mtime_nsec()
            || now.mtime() != meta.mtime()
        {
            return Err(std::io::Error::other("it changed while it was being restored"));
        }
        let modified = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(u64::try_from(change.mtime_ns).unwrap_or(0));
        staged.file.set_times(std::fs::FileTimes::new().set_modified(modified))?;
        staged.file.sync_all()?;
        std::fs::rename(&staged.path, &change.path)
    })();
    if let Err(e) = result {
        staged.discard();
        return Err(format!("cannot restore: {e}"));
    }
    Ok(())
}

/// `O_NOFOLLOW` on an open: undo never writes through a link planted at a labelled path.
trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW)
    }
}
