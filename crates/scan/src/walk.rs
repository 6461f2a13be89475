//! Walking file trees: depth first, one directory's entries at a time, never looping and never
//! leaving the given roots unless told to follow symbolic links (then a link back to a directory
//! being walked is reported, not entered). Special files (FIFOs, sockets, devices) are never
//! opened: a FIFO would block the scan. What cannot be read is reported and the walk goes on.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A regular file found, with the identity the index keys on.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// Its path: a root as given, joined with the names below it.
    pub path: PathBuf,
    /// Identity and state: device, inode, size, modification and change times (ns since the
    /// epoch). The change time cannot be set by a user: a file rewritten with its old mtime is
    /// still seen as changed.
    pub dev: u64,
    #[allow(missing_docs)]
    pub ino: u64,
    #[allow(missing_docs)]
    pub size: u64,
    #[allow(missing_docs)]
    pub mtime_ns: i128,
    #[allow(missing_docs)]
    pub ctime_ns: i128,
    /// Hard links to it.
    pub nlink: u64,
}

impl FileEntry {
    /// The entry of `path` with the state `meta` gives.
    pub fn of(path: PathBuf, meta: &std::fs::Metadata) -> FileEntry {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileEntry {
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

/// Why something found was not scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// Matched an `--exclude` glob.
    Excluded,
    /// A symbolic link, not followed (without `--follow-symlinks`).
    Symlink,
    /// A link back to a directory being walked (with `--follow-symlinks`).
    Loop,
    /// A FIFO, socket or device.
    Special,
}

impl Skip {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Excluded => "excluded",
            Skip::Symlink => "symlink",
            Skip::Loop => "loop",
            Skip::Special => "special",
        }
    }
}

/// What the walk found, in order.
#[derive(Debug)]
pub enum Walked {
    /// A regular file to scan.
    File(FileEntry),
    /// Something not scanned, and why.
    Skipped(PathBuf, Skip),
    /// A directory or entry that could not be read.
    Error(PathBuf, String),
}

/// How to walk.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Follow symbolic links (loops are still never entered).
    pub follow_symlinks: bool,
    /// Paths left out: a glob without `/` matches a file or directory name anywhere; one with
    /// `/` matches the whole path.
    pub exclude: Exclude,
}

/// `--exclude` globs.
#[derive(Debug, Clone, Default)]
pub struct Exclude {
    by_name: Option<GlobSet>,
    by_path: Option<GlobSet>,
}

impl Exclude {
    /// Compiles the globs (`*` and `?` stay within a name, `**` crosses directories).
    pub fn new(globs: &[String]) -> Result<Exclude, String> {
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        let (mut any_name, mut any_path) = (false, false);
        for g in globs {
            let glob = GlobBuilder::new(g).literal_separator(true).build().map_err(|e| format!("--exclude {g:?}: {}", e.kind()))?;
            if g.contains('/') {
                paths.add(glob);
                any_path = true;
            } else {
                names.add(glob);
                any_name = true;
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| e.to_string());
        Ok(Exclude { by_name: any_name.then(|| build(names)).transpose()?, by_path: any_path.then(|| build(paths)).transpose()? })
    }

    fn excludes(&self, path: &Path) -> bool {
        self.by_name.as_ref().is_some_and(|set| path.file_name().is_some_and(|n| set.is_match(n)))
            || self.by_path.as_ref().is_some_and(|set| set.is_match(path))
    }
}

/// Walks `roots`, handing each finding to `found` in order; stops early when it returns false.
/// A root is followed even when it is a symbolic link (it was named).
pub fn walk(roots: &[PathBuf], options: &WalkOptions, found: &mut dyn FnMut(Walked) -> bool) {
    for root in roots {
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                if !found(Walked::Error(root.clone(), format!("cannot read: {e}"))) {
                    return;
                }
                continue;
            }
        };
        if meta.is_dir() {
            if !walk_dir(root, &meta, options, found) {
                return;
            }
        } else if !file_or_special(root.clone(), &meta, found) {
            return;
        }
    }
}

fn file_or_special(path: PathBuf, meta: &std::fs::Metadata, found: &mut dyn FnMut(Walked) -> bool) -> bool {
    if meta.is_file() {
        found(Walked::File(FileEntry::of(path, meta)))
    } else {
        found(Walked::Skipped(path, Skip::Special))
    }
}

/// Depth first with an explicit stack: memory follows the depth and the widest directory, not
/// the number of files. `ancestors` holds the (device, inode) of the directories above the one
/// being read: a directory reached again through a link is a loop.
fn walk_dir(root: &Path, meta: &std::fs::Metadata, options: &WalkOptions, found: &mut dyn FnMut(Walked) -> bool) -> bool {
    let mut stack: Vec<(PathBuf, usize, (u64, u64))> = vec![(root.to_path_buf(), 0, (meta.dev(), meta.ino()))];
    let mut ancestors: Vec<(u64, u64)> = Vec::new();
    // Following links, a directory reached twice is walked once: two links to the next level
    // at each of n levels would otherwise be 2^n walks. (Directories only: memory follows them,
    // not the files.)
    let mut visited: std::collections::HashSet<(u64, u64)> = std::collections::HashSet::new();
    while let Some((dir, depth, id)) = stack.pop() {
        ancestors.truncate(depth);
        if ancestors.contains(&id) || (options.follow_symlinks && !visited.insert(id)) {
            if !found(Walked::Skipped(dir, Skip::Loop)) {
                return false;
            }
            continue;
        }
        ancestors.push(id);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                if !found(Walked::Error(dir, format!("cannot read the directory: {e}"))) {
                    return false;
                }
                continue;
            }
        };
        // Entries as the directory yields them: a directory of millions of files is streamed,
        // not held (only its subdirectories wait on the stack).
        let mut subdirs = Vec::new();
        for entry in entries {
            let (entry, kind) = match entry.and_then(|e| {
                let kind = e.file_type()?;
                Ok((e, kind))
            }) {
                Ok(pair) => pair,
                Err(e) => {
                    if !found(Walked::Error(dir.clone(), format!("cannot read a directory entry: {e}"))) {
                        return false;
                    }
                    continue;
                }
            };
            let path = entry.path();
            if options.exclude.excludes(&path) {
                if !found(Walked::Skipped(path, Skip::Excluded)) {
                    return false;
                }
                continue;
            }
            let meta = if kind.is_symlink() {
                if !options.follow_symlinks {
                    if !found(Walked::Skipped(path, Skip::Symlink)) {
                        return false;
                    }
                    continue;
                }
                std::fs::metadata(&path)
            } else {
                // Relative to the open directory (fstatat), not a walk of the whole path.
                entry.metadata()
            };
            let meta = match meta {
                Ok(m) => m,
                Err(e) => {
                    if !found(Walked::Error(path, format!("cannot read: {e}"))) {
                        return false;
                    }
                    continue;
                }
            };
            if meta.is_dir() {
                subdirs.push((path, depth + 1, (meta.dev(), meta.ino())));
            } else if !file_or_special(path, &meta, found) {
                return false;
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(roots: &[PathBuf], options: &WalkOptions) -> Vec<String> {
        let mut out = Vec::new();
        walk(roots, options, &mut |w| {
            out.push(match w {
                Walked::File(f) => format!("file {}", f.path.display()),
                Walked::Skipped(p, why) => format!("{} {}", why.as_str(), p.display()),
                Walked::Error(p, _) => format!("error {}", p.display()),
            });
            true
        });
        // A directory's entries come in the order the file system gives them.
        out.sort();
        out
    }

    fn sorted<const N: usize>(mut v: [String; N]) -> Vec<String> {
        v.sort();
        v.to_vec()
    }

    #[test]
    fn links_are_not_followed_unless_asked_and_a_loop_is_never_entered() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f.txt"), "x").unwrap();
        std::os::unix::fs::symlink(d.join("a"), d.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("/", d.join("a/root")).unwrap();
        let plain = all(&[d.to_path_buf()], &WalkOptions::default());
        let f = format!("file {}", d.join("a/b/f.txt").display());
        assert_eq!(
            plain,
            sorted([format!("symlink {}", d.join("a/root").display()), f.clone(), format!("symlink {}", d.join("a/b/up").display())])
        );
        let mut options = WalkOptions { follow_symlinks: true, exclude: Exclude::new(&["root".into()]).unwrap() };
        let followed = all(&[d.to_path_buf()], &options);
        assert_eq!(
            followed,
            sorted([format!("excluded {}", d.join("a/root").display()), f, format!("loop {}", d.join("a/b/up").display())])
        );
        options.exclude = Exclude::new(&[format!("{}/a/b/**", d.display())]).unwrap();
        options.follow_symlinks = false;
        let by_path = all(&[d.to_path_buf()], &options);
        assert_eq!(
            by_path,
            sorted([
                format!("symlink {}", d.join("a/root").display()),
                format!("excluded {}", d.join("a/b/f.txt").display()),
                format!("excluded {}", d.join("a/b/up").display())
            ])
        );
    }

    #[test]
    fn a_fifo_is_skipped_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(all(&[dir.path().to_path_buf()], &WalkOptions::default()), [format!("special {}", fifo.display())]);
    }
}
