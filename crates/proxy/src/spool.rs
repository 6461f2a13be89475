//! Holding an upload body: in memory up to `memory_limit`, then in a private temporary file
//! (0600) in the spool directory, counted against a global disk quota and removed when the
//! transaction ends (and on start, for files a crash left behind).

use bytes::Bytes;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Shared spool settings and the disk in use.
#[derive(Debug)]
pub(crate) struct SpoolArea {
    pub dir: PathBuf,
    pub memory_limit: u64,
    pub quota: u64,
    pub used: AtomicU64,
}

impl SpoolArea {
    /// Creates the directory and removes leftovers from an earlier run.
    pub(crate) fn prepare(dir: PathBuf, memory_limit: u64, quota: u64) -> std::io::Result<Arc<SpoolArea>> {
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with("upload-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Arc::new(SpoolArea { dir, memory_limit, quota, used: AtomicU64::new(0) }))
    }
}

/// One body being held.
pub(crate) struct Spool {
    area: Arc<SpoolArea>,
    memory: Vec<u8>,
    file: Option<tempfile::NamedTempFile>,
    len: u64,
    reserved: u64,
}

/// Why a body could not be held.
#[derive(Debug)]
pub(crate) enum SpoolError {
    /// The disk quota is used up.
    Quota,
    /// Writing the spool file failed.
    Io(std::io::Error),
}

impl Spool {
    pub(crate) fn new(area: &Arc<SpoolArea>) -> Spool {
        Spool { area: Arc::clone(area), memory: Vec::new(), file: None, len: 0, reserved: 0 }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends a chunk, moving to disk past the memory limit. Disk writes are small and
    /// sequential into the page cache; they run inline rather than on a blocking thread.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), SpoolError> {
        self.len += chunk.len() as u64;
        if self.file.is_none() && self.len <= self.area.memory_limit {
            self.memory.extend_from_slice(chunk);
            return Ok(());
        }
        // Reserve disk against the global quota before writing.
        let want = chunk.len() as u64 + if self.file.is_none() { self.memory.len() as u64 } else { 0 };
        let before = self.area.used.fetch_add(want, Ordering::SeqCst);
        self.reserved += want;
        if before + want > self.area.quota {
            return Err(SpoolError::Quota);
        }
        if self.file.is_none() {
            let mut f = tempfile::Builder::new().prefix("upload-").tempfile_in(&self.area.dir).map_err(SpoolError::Io)?;
            f.write_all(&self.memory).map_err(SpoolError::Io)?;
            self.memory = Vec::new();
            self.file = Some(f);
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(chunk).map_err(SpoolError::Io)?;
        }
        Ok(())
    }

    /// The body in memory, when it never left it.
    pub(crate) fn memory(&self) -> Option<Bytes> {
        self.file.is_none().then(|| Bytes::copy_from_slice(&self.memory))
    }

    /// Flushes the file and gives an independent read handle to it.
    pub(crate) fn reader(&mut self) -> std::io::Result<Option<std::fs::File>> {
        match self.file.as_mut() {
            Some(f) => {
                f.flush()?;
                Ok(Some(f.reopen()?))
            }
            None => Ok(None),
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // The temporary file removes itself; give its bytes back to the quota.
        self.area.used.fetch_sub(self.reserved, Ordering::SeqCst);
    }
}

/// A stream of a held body, in chunks.
pub(crate) fn stream(
    memory: Option<Bytes>,
    file: Option<std::fs::File>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    use futures_util::StreamExt;
    let first = futures_util::stream::iter(memory.map(Ok));
    let rest = futures_util::stream::unfold(file.map(tokio::fs::File::from_std), |f| async move {
        use tokio::io::AsyncReadExt;
        let mut f = f?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    first.chain(rest)
}
