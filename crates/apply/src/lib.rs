//! `labelgate-apply`: writes a sensitivity label into files at rest as Office writes it (Office
//! Open XML packages: see `package`; PDFs: an incremental update from `labelgate-extract`),
//! safely on a share that people are using:
//!
//! - a file is labelled only if it is still the file the scan read (device, inode, size, times),
//!   is an OOXML package or a PDF that is neither encrypted, rights-protected nor ambiguous, is not
//!   hard-linked (a new file would split the links), and carries no label of the label's tenant
//!   with a higher (or unknown) priority: a label is never lowered;
//! - a label that applies protection (encryption) is not written: that needs the MIP SDK;
//! - the new package is written beside the file, read back (the label must be effective), given
//!   the original's owner, mode, extended attributes (ACLs included) and times, and renamed over
//!   the original only after its identity and size are checked once more — by exchanging the
//!   two names atomically and checking what was displaced, so a save that lands at the last
//!   moment is put back, not overwritten;
//! - the original is kept (hard-linked when it can be, else copied) in an undo directory whose
//!   log records every change before it is made; [`undo`] puts the originals back.

mod package;
pub mod undo;
mod zip;

use labelgate_catalog::{Catalog, Label};
use labelgate_extract::{FileKind, Flag, Limits};
use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The package rewrite over bytes in memory (fuzzing): the labelled package, or why not.
#[doc(hidden)]
pub fn relabel_bytes(package: &[u8], label: &NewLabel) -> Result<Vec<u8>, ApplyError> {
    let archive = zip::read(package, package.len() as u64)?;
    let edits = package::edits(package, &archive, label)?;
    let mut out = Vec::new();
    zip::rewrite(package, package.len() as u64, &archive, &edits, &mut out)?;
    Ok(out)
}

/// Why a package could not be labelled.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The package cannot be rewritten as it is.
    #[error("{0}")]
    Package(String),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The label to write, with the values of its properties.
#[derive(Debug, Clone)]
pub struct NewLabel {
    /// GUID, lowercase.
    pub id: String,
    /// Its name (`MSIP_Label_…_Name`).
    pub name: String,
    /// Its tenant (`SiteId`), lowercase GUID.
    pub tenant: String,
    /// When it is set (`SetDate`, RFC 3339 UTC).
    pub set_date: String,
    /// This labelling action's id (`ActionId`).
    pub action_id: String,
}

/// The file as the scan found it.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// Its path.
    pub path: &'a Path,
    /// Device, inode, size, times (ns) and links as the scan saw them.
    pub dev: u64,
    #[allow(missing_docs)]
    pub ino: u64,
    #[allow(missing_docs)]
    pub size: u64,
    #[allow(missing_docs)]
    pub mtime_ns: i128,
    #[allow(missing_docs)]
    pub ctime_ns: i128,
    #[allow(missing_docs)]
    pub nlink: u64,
}

impl<'a> Target<'a> {
    /// The file at `path` as `meta` describes it now.
    pub fn of(path: &'a Path, meta: &std::fs::Metadata) -> Target<'a> {
        let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
        Target {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            nlink: meta.nlink(),
        }
    }
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The label's GUID, or the reference no known label has.
    pub label: String,
    /// Its name, when known.
    pub name: Option<String>,
    /// `applied`, `would_apply` (a dry run), `unchanged` (it already carries the label),
    /// `skipped` (left as it is, and why) or `failed`.
    pub outcome: &'static str,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How to label.
pub struct Labeller<'a> {
    /// Label priorities, names and tenants.
    pub catalog: &'a Catalog,
    /// The extractor's limits (reading the file's labels, and the rewritten file's).
    pub limits: &'a Limits,
    /// `None`: a dry run. Otherwise where originals are kept.
    pub undo: Option<&'a undo::Log>,
    /// `SetDate` for this run.
    pub set_date: String,
    /// labelgate's state directory (canonical): files under it (kept originals among them) are
    /// never labelled.
    pub state_dir: Option<PathBuf>,
}

impl Labeller<'_> {
    /// Labels the file at `target` with the label `reference` (a GUID from the policy, or a name
    /// no label has).
    pub fn label(&self, target: &Target<'_>, reference: &str) -> Outcome {
        let Some(label) = self.catalog.lookup(None, reference) else {
            return Outcome {
                label: reference.to_string(),
                name: None,
                outcome: "skipped",
                reason: Some("apply_label names no known label (not in [[labels]] nor a retrieved account)".into()),
            };
        };
        let (outcome, reason) = match self.try_label(target, label) {
            Ok(Done::Applied) => ("applied", None),
            Ok(Done::WouldApply) => ("would_apply", None),
            Ok(Done::Unchanged) => ("unchanged", None),
            Err(Refusal::Skip(why)) => ("skipped", Some(why)),
            Err(Refusal::Fail(why) | Refusal::Stranded(why)) => ("failed", Some(why)),
        };
        Outcome { label: label.id.clone(), name: Some(label.display_name.clone()), outcome, reason }
    }

    fn try_label(&self, target: &Target<'_>, label: &Label) -> Result<Done, Refusal> {
        if label.has_protection {
            return Err(skip("the label applies protection (encryption), which needs the MIP SDK"));
        }
        if !label.is_active || label.deleted {
            return Err(skip("the label is not active"));
        }
        let tenant = label.tenant.clone().ok_or_else(|| skip("the label's tenant is unknown (a [[labels]] entry needs tenant)"))?;
        if target.nlink > 1 {
            return Err(skip(format!("it has {} hard links: a labelled copy would split them", target.nlink)));
        }
        let dir = target.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if let (Some(state), Ok(dir)) = (&self.state_dir, dir.canonicalize()) {
            if dir.starts_with(state) {
                return Err(skip("it is inside labelgate's state directory"));
            }
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(target.path)
            .map_err(|e| skip(format!("cannot open: {e}")))?;
        let meta = file.metadata().map_err(|e| fail(format!("cannot read: {e}")))?;
        if !same_state(&meta, target) {
            return Err(skip("it changed since it was scanned"));
        }
        let found = labelgate_extract::extract_reader(&file, self.limits).map_err(|e| skip(format!("cannot read its labels: {e}")))?;
        if found.has_flag(Flag::Encrypted) || found.has_flag(Flag::Protected) {
            return Err(skip("it is encrypted or rights-protected"));
        }
        if found.has_flag(Flag::Ambiguous) {
            return Err(skip("its structure is ambiguous (see labelgate inspect)"));
        }
        if !is_labelable(found.kind) {
            return Err(skip(format!("{} files are not labelled (Office Open XML documents and PDFs are)", found.kind.as_str())));
        }
        // Never lower: the tenant's current label must be of lower known priority.
        let mut replaced: Vec<String> = vec![label.id.clone()];
        for current in &found.labels {
            let site = current.site_id.as_deref().map(labelgate_catalog::normalize_id);
            if site.as_deref().is_some_and(|s| s != tenant) {
                continue;
            }
            replaced.push(current.id.clone());
            if current.id == label.id {
                return Ok(Done::Unchanged);
            }
            match self.catalog.lookup(site.as_deref(), &current.id) {
                Some(known) if known.priority < label.priority => {}
                Some(known) => {
                    return Err(skip(format!(
                        "it carries {:?} (priority {}), not lower than {:?} (priority {}): a label is never lowered",
                        known.display_name, known.priority, label.display_name, label.priority
                    )))
                }
                None => return Err(skip(format!("it carries label {} of unknown priority: a label is never lowered", current.id))),
            }
        }
        let Some(undo) = self.undo else { return Ok(Done::WouldApply) };
        let new = NewLabel {
            id: label.id.clone(),
            name: label.name.clone(),
            tenant,
            set_date: self.set_date.clone(),
            action_id: random_guid().map_err(|e| fail(e.to_string()))?,
        };
        let rewrite = if found.kind == FileKind::Pdf {
            // An incremental update, as Office labels a PDF: the original's bytes, then the
            // label's Info entries, XMP and cross-reference section.
            let remove: Vec<String> = replaced.iter().map(|id| format!("MSIP_Label_{id}_")).collect();
            let mut input = labelgate_extract::ReaderInput::new(&file).map_err(|e| fail(format!("cannot read it: {e}")))?;
            let appended = labelgate_extract::pdf_label_update(&mut input, self.limits, &pdf_properties(&new), &remove)
                .map_err(|e| skip(format!("the document cannot be updated: {e}")))?;
            Rewrite::Append(appended)
        } else {
            let archive = zip::read(&file, meta.len()).map_err(|e| skip(format!("the package cannot be rewritten: {e}")))?;
            let edits = package::edits(&file, &archive, &new).map_err(|e| skip(format!("the package cannot be rewritten: {e}")))?;
            Rewrite::Package(archive, edits)
        };
        let staged = Staged::create(target.path).map_err(|e| fail(format!("cannot write beside it: {e}")))?;
        let result = self.replace(target, &file, &meta, &rewrite, &new, &staged, undo);
        if result.is_err() {
            staged.discard();
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn replace(
        &self,
        target: &Target<'_>,
        file: &std::fs::File,
        meta: &std::fs::Metadata,
        rewrite: &Rewrite,
        new: &NewLabel,
        staged: &Staged,
        undo: &undo::Log,
    ) -> Result<Done, Refusal> {
        let mut hashing = HashingWriter {
            inner: std::io::BufWriter::with_capacity(1 << 20, &staged.file),
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            len: 0,
        };
        let wrote = match rewrite {
            Rewrite::Package(archive, edits) => zip::rewrite(file, meta.len(), archive, edits, &mut hashing),
            Rewrite::Append(appended) => copy_then(file, meta.len(), appended, &mut hashing),
        };
        wrote.map_err(|e| fail(format!("cannot write the labelled file: {e}")))?;
        hashing.inner.flush().map_err(|e| fail(format!("cannot write the labelled package: {e}")))?;
        let HashingWriter { digest, len, .. } = hashing;
        let written = (hex(digest.finish().as_ref()), len);
        // Read back: the label must be what a reader now sees, and nothing ambiguous.
        let back = labelgate_extract::extract_reader(&staged.file, self.limits)
            .map_err(|e| fail(format!("the labelled package does not read back: {e}")))?;
        if !back.labels.iter().any(|l| l.id == new.id) || back.has_flag(Flag::Ambiguous) {
            return Err(fail("the labelled package does not read back with the label"));
        }
        keep_metadata(file, meta, &staged.file).map_err(|e| skip(format!("cannot keep its owner, mode or attributes: {e}")))?;
        staged.file.sync_all().map_err(|e| fail(format!("cannot write the labelled package: {e}")))?;
        // Still the same file, unchanged, at the same path? Checked before the original is
        // kept, and again just before the rename (keeping it by a hard link changes its ctime:
        // the second check expects the ctime the link left).
        let unchanged = |expected: &Target<'_>| -> Result<(), Refusal> {
            let now = file.metadata().map_err(|e| fail(e.to_string()))?;
            let at_path = std::fs::symlink_metadata(expected.path).map_err(|e| skip(format!("it is gone: {e}")))?;
            if !same_state(&now, expected) || at_path.dev() != expected.dev || at_path.ino() != expected.ino {
                return Err(skip("it changed while it was being labelled"));
            }
            Ok(())
        };
        unchanged(target)?;
        let (original_sha256, _) = sha256_of(file).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let original = undo.keep(target.path, file, meta).map_err(|e| fail(format!("cannot keep the original for undo: {e}")))?;
        let kept = file.metadata().map_err(|e| fail(e.to_string()))?;
        let after_keep = Target { ctime_ns: Target::of(target.path, &kept).ctime_ns, ..target.clone() };
        undo.record(&undo::Change {
            // Absolute: --undo may run from another directory.
            path: std::path::absolute(target.path).unwrap_or_else(|_| target.path.to_path_buf()),
            original: original.clone(),
            original_size: meta.len(),
            original_sha256,
            written_sha256: written.0,
            written_size: written.1,
            label: new.id.clone(),
            mtime_ns: i64::try_from(target.mtime_ns).unwrap_or(0),
        })
        .map_err(|e| fail(format!("cannot write the undo log: {e}")))?;
        let renamed = unchanged(&after_keep).and_then(|()| swap_in(&staged.path, target.path, &after_keep));
        match renamed {
            Ok(()) => {}
            // The labelled file is in place and the other one beside it: the record stays, so
            // --undo can still put the original back.
            Err(refusal @ Refusal::Stranded(_)) => return Err(refusal),
            Err(refusal) => {
                let _ = undo.withdraw(&original);
                return Err(refusal);
            }
        }
        if let Some(dir) = target.path.parent() {
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(Done::Applied)
    }
}

/// How the labelled file is made from the original.
enum Rewrite {
    /// An OPC package rewritten: these parts replaced and added, every other member copied.
    Package(zip::Archive, zip::Edits),
    /// A PDF: the original, then these bytes (an incremental update).
    Append(Vec<u8>),
}

/// The original's `len` bytes, then `appended`.
fn copy_then(file: &std::fs::File, len: u64, appended: &[u8], out: &mut dyn Write) -> Result<(), ApplyError> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; (1 << 20).min(len.max(1) as usize)];
    let mut at = 0u64;
    while at < len {
        let n = ((len - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at)?;
        out.write_all(&buf[..n])?;
        at += n as u64;
    }
    out.write_all(appended)?;
    Ok(())
}

/// The label's properties as Office writes them into a PDF's Info dictionary and XMP.
fn pdf_properties(label: &NewLabel) -> Vec<(String, String)> {
    let prefix = format!("MSIP_Label_{}_", label.id);
    [
        ("Enabled", "true"),
        ("SetDate", label.set_date.as_str()),
        ("Method", "Standard"),
        ("Name", label.name.as_str()),
        ("SiteId", label.tenant.as_str()),
        ("ActionId", label.action_id.as_str()),
        ("ContentBits", "0"),
    ]
    .iter()
    .map(|(k, v)| (format!("{prefix}{k}"), v.to_string()))
    .collect()
}

enum Done {
    Applied,
    WouldApply,
    Unchanged,
}

enum Refusal {
    Skip(String),
    Fail(String),
    /// Failed after the names were exchanged and could not be exchanged back.
    Stranded(String),
}

fn skip(why: impl Into<String>) -> Refusal {
    Refusal::Skip(why.into())
}

fn fail(why: impl Into<String>) -> Refusal {
    Refusal::Fail(why.into())
}

fn is_labelable(kind: FileKind) -> bool {
    use FileKind as K;
    matches!(
        kind,
        K::Docx
            | K::Docm
            | K::Dotx
            | K::Dotm
            | K::Xlsx
            | K::Xlsm
            | K::Xltx
            | K::Xltm
            | K::Xlsb
            | K::Xlam
            | K::Pptx
            | K::Pptm
            | K::Potx
            | K::Potm
            | K::Ppsx
            | K::Ppsm
            | K::Vsdx
            | K::Vsdm
            | K::Pdf
    )
}

/// Whether `meta` is the file the scan saw: same identity, size and times.
fn same_state(meta: &std::fs::Metadata, target: &Target<'_>) -> bool {
    let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
    meta.is_file()
        && meta.dev() == target.dev
        && meta.ino() == target.ino
        && meta.len() == target.size
        && ns(meta.mtime(), meta.mtime_nsec()) == target.mtime_ns
        && ns(meta.ctime(), meta.ctime_nsec()) == target.ctime_ns
}

/// A new file beside the target, removed unless renamed over it.
pub(crate) struct Staged {
    pub(crate) path: PathBuf,
    pub(crate) file: std::fs::File,
}

impl Staged {
    pub(crate) fn create(beside: &Path) -> std::io::Result<Staged> {
        let dir = beside.parent().unwrap_or(Path::new("."));
        let name = beside.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let short: String = name.chars().take(64).collect();
        for attempt in 0..16u32 {
            let path = dir.join(format!(".{short}.labelgate-{}-{attempt}.tmp", std::process::id()));
            match std::fs::OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(&path)
            {
                Ok(file) => return Ok(Staged { path, file }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free temporary name"))
    }

    /// Removes the staged file, if its name still names it (after an exchange it may name
    /// someone else's file, which is never removed).
    pub(crate) fn discard(&self) {
        let ours = self.file.metadata().ok().map(|m| (m.dev(), m.ino()));
        let there = std::fs::symlink_metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == there {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Puts the staged file at `path` by exchanging the two names atomically (`renameat2` with
/// `RENAME_EXCHANGE`), then checks that what it displaced is the file that was checked, with
/// the same size and modification time: a save that landed after the last check (a new file
/// renamed in, or bytes written in place) is exchanged back and the file skipped. Where the file
/// system cannot exchange, a plain rename after the checks already made.
fn swap_in(staged: &Path, path: &Path, expected: &Target<'_>) -> Result<(), Refusal> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, staged, CWD, path, RenameFlags::EXCHANGE) {
        Ok(()) => {
            // `staged` now names what was at `path`. A rename changes its ctime, so the
            // comparison is of identity, size and modification time.
            let displaced = std::fs::symlink_metadata(staged);
            let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
            let same = displaced.as_ref().is_ok_and(|m| {
                m.is_file()
                    && m.dev() == expected.dev
                    && m.ino() == expected.ino
                    && m.len() == expected.size
                    && ns(m.mtime(), m.mtime_nsec()) == expected.mtime_ns
            });
            if same {
                let _ = std::fs::remove_file(staged);
                return Ok(());
            }
            match renameat_with(CWD, staged, CWD, path, RenameFlags::EXCHANGE) {
                Ok(()) => Err(skip("it changed while it was being labelled (put back as it was)")),
                Err(e) => Err(Refusal::Stranded(format!(
                    "it changed while it was being labelled, and exchanging it back failed ({e}): the labelled file is at the path, the changed one at {}",
                    staged.display()
                ))),
            }
        }
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::OPNOTSUPP => {
            std::fs::rename(staged, path).map_err(|e| fail(format!("cannot replace it: {e}")))
        }
        Err(e) => Err(fail(format!("cannot replace it: {e}"))),
    }
}

/// Gives `to` the owner, group, mode, extended attributes (ACLs are among them) and access and
/// modification times of `from`.
pub(crate) fn keep_metadata(from: &std::fs::File, meta: &std::fs::Metadata, to: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    use xattr::FileExt;
    let mine = to.metadata()?;
    if mine.uid() != meta.uid() || mine.gid() != meta.gid() {
        std::os::unix::fs::fchown(to, Some(meta.uid()), Some(meta.gid()))?;
    }
    for name in from.list_xattr()? {
        if let Some(value) = from.get_xattr(&name)? {
            to.set_xattr(&name, &value)?;
        }
    }
    // The mode after the owner: a change of owner clears set-id bits.
    to.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    let times = std::fs::FileTimes::new().set_accessed(meta.accessed()?).set_modified(meta.modified()?);
    to.set_times(times)
}

struct HashingWriter<W: Write> {
    inner: W,
    digest: ring::digest::Context,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random (version 4) GUID, as Office's ActionId.
fn random_guid() -> Result<String, ring::error::Unspecified> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    Ok(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
}

/// The SHA-256 of a file's content, hex, and its length.
pub(crate) fn sha256_of(file: &std::fs::File) -> std::io::Result<(String, u64)> {
    use std::os::unix::fs::FileExt;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read_at(&mut buf, len)?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex(digest.finish().as_ref()), len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn seen(path: &Path) -> Target<'_> {
        Target::of(path, &std::fs::metadata(path).unwrap())
    }

    #[test]
    fn a_save_landing_at_the_last_moment_is_put_back_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.docx");
        std::fs::write(&path, b"original").unwrap();
        let target = seen(&path);
        // The labelled file is staged; then someone saves: a new file renamed over the path.
        let staged = Staged::create(&path).unwrap();
        (&staged.file).write_all(b"labelled").unwrap();
        let theirs = dir.path().join("save.tmp");
        std::fs::write(&theirs, b"their save").unwrap();
        std::fs::rename(&theirs, &path).unwrap();
        let refused = swap_in(&staged.path, &path, &target);
        assert!(matches!(refused, Err(Refusal::Skip(ref why)) if why.contains("changed")));
        staged.discard();
        assert_eq!(std::fs::read(&path).unwrap(), b"their save", "their save stays");
        assert!(!staged.path.exists(), "the labelled copy is removed");
        // Unchanged, it is swapped in and the displaced original's name removed.
        let target = seen(&path);
        let staged = Staged::create(&path).unwrap();
        (&staged.file).write_all(b"labelled").unwrap();
        assert!(swap_in(&staged.path, &path, &target).is_ok());
        assert_eq!(std::fs::read(&path).unwrap(), b"labelled");
        assert!(!staged.path.exists());
    }
}
