//! Holding an upload body: in memory up to `memory_limit` (and while all bodies together stay
//! within `memory_budget`, so many concurrent uploads cannot exhaust RAM), then in a private temporary file
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
    memory_limit: AtomicU64,
    memory_budget: AtomicU64,
    pub memory_used: AtomicU64,
    quota: AtomicU64,
    pub used: AtomicU64,
    /// Test-only fault injection: spool writes fail once this many bytes have been written in
    /// all (`LABELGATE_TEST_FAULT_SPOOL_WRITE_AFTER`, read at start). Unset in production.
    fault_after: Option<u64>,
    written: AtomicU64,
}

impl SpoolArea {
    /// Creates the directory and removes leftovers from an earlier run.
    pub(crate) fn prepare(dir: PathBuf, memory_limit: u64, memory_budget: u64, quota: u64) -> std::io::Result<Arc<SpoolArea>> {
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with("upload-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Arc::new(SpoolArea {
            dir,
            memory_limit: AtomicU64::new(memory_limit),
            memory_budget: AtomicU64::new(memory_budget),
            memory_used: AtomicU64::new(0),
            quota: AtomicU64::new(quota),
            used: AtomicU64::new(0),
            fault_after: std::env::var("LABELGATE_TEST_FAULT_SPOOL_WRITE_AFTER").ok().and_then(|v| v.parse().ok()),
            written: AtomicU64::new(0),
        }))
    }

    /// Writes `bytes` to a spool file (failing as the test fault hook says).
    fn write(&self, file: &mut impl Write, bytes: &[u8]) -> Result<(), SpoolError> {
        if let Some(limit) = self.fault_after {
            let before = self.written.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            if before + bytes.len() as u64 > limit {
                return Err(SpoolError::Io(std::io::Error::other("injected spool write failure (LABELGATE_TEST_FAULT_SPOOL_WRITE_AFTER)")));
            }
        }
        file.write_all(bytes).map_err(SpoolError::Io)
    }

    /// Bytes of one body kept in memory.
    pub(crate) fn memory_limit(&self) -> u64 {
        self.memory_limit.load(Ordering::Relaxed)
    }

    /// Bytes all bodies may keep in memory together.
    pub(crate) fn memory_budget(&self) -> u64 {
        self.memory_budget.load(Ordering::Relaxed)
    }

    /// Disk all spooled bodies may use together.
    pub(crate) fn quota(&self) -> u64 {
        self.quota.load(Ordering::Relaxed)
    }

    /// Reloaded limits (bytes already held stay where they are).
    pub(crate) fn set_limits(&self, memory_limit: u64, memory_budget: u64, quota: u64) {
        self.memory_limit.store(memory_limit, Ordering::Relaxed);
        self.memory_budget.store(memory_budget, Ordering::Relaxed);
        self.quota.store(quota, Ordering::Relaxed);
    }
}

/// A body held in memory as the chunks it arrived in (shared, never copied or joined: the
/// extractor reads it in place and forwarding sends the same chunks).
#[derive(Clone, Default)]
pub(crate) struct Held {
    chunks: Arc<Vec<Bytes>>,
    len: u64,
}

impl Held {
    /// Bytes decoded from a body (a candidate file found encoded in it), held as one chunk.
    pub(crate) fn from_vec(data: Vec<u8>) -> Held {
        let len = data.len() as u64;
        Held { chunks: Arc::new(vec![Bytes::from(data)]), len }
    }

    pub(crate) fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The chunks as a request body of known length.
    pub(crate) fn body(&self) -> HeldBody {
        HeldBody { held: self.clone(), next: 0, remaining: self.len }
    }
}

/// A [`Held`] body sent as its chunks, with an exact size hint.
pub(crate) struct HeldBody {
    held: Held,
    next: usize,
    remaining: u64,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let chunk = self.held.chunks.get(self.next).cloned();
        self.next += 1;
        if let Some(c) = &chunk {
            self.remaining -= c.len() as u64;
        }
        std::task::Poll::Ready(chunk.map(|c| Ok(http_body::Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// One body being held.
pub(crate) struct Spool {
    area: Arc<SpoolArea>,
    memory: Vec<Bytes>,
    /// The in-memory body once read out (shared by inspection and forwarding).
    frozen: Option<Held>,
    /// Bytes of `memory_budget` this body holds.
    in_memory: u64,
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
        Spool { area: Arc::clone(area), memory: Vec::new(), frozen: None, in_memory: 0, file: None, len: 0, reserved: 0 }
    }

    /// Charges a body of `expected` bytes (its Content-Length) to the shared budget up front when
    /// it fits the per-body limit and the budget, so concurrent bodies cannot all pass the budget
    /// check and then overrun it together as their bytes arrive.
    pub(crate) fn expect(&mut self, expected: u64) {
        if expected > self.area.memory_limit() || self.len > 0 || self.in_memory > 0 {
            return;
        }
        let before = self.area.memory_used.fetch_add(expected, Ordering::SeqCst);
        if before + expected <= self.area.memory_budget() {
            self.in_memory = expected;
        } else {
            self.area.memory_used.fetch_sub(expected, Ordering::SeqCst);
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends a chunk (kept as it is, not copied), moving to disk past the memory limit. Disk
    /// writes are small and sequential into the page cache; they run inline rather than on a
    /// blocking thread.
    pub(crate) fn push(&mut self, chunk: Bytes) -> Result<(), SpoolError> {
        if let Some(frozen) = self.frozen.take() {
            self.memory = Arc::unwrap_or_clone(frozen.chunks);
        }
        let n = chunk.len() as u64;
        self.len += n;
        if self.file.is_none() && self.len <= self.area.memory_limit() {
            if self.len <= self.in_memory {
                // Within what this body has already been charged.
                self.memory.push(chunk);
                return Ok(());
            }
            let extra = self.len - self.in_memory;
            let before = self.area.memory_used.fetch_add(extra, Ordering::SeqCst);
            self.in_memory += extra;
            if before + extra <= self.area.memory_budget() {
                self.memory.push(chunk);
                return Ok(());
            }
            // The shared memory budget is spent: this body moves to disk.
        }
        // Reserve disk against the global quota before writing.
        let held: u64 = self.memory.iter().map(|c| c.len() as u64).sum();
        let want = chunk.len() as u64 + if self.file.is_none() { held } else { 0 };
        let before = self.area.used.fetch_add(want, Ordering::SeqCst);
        self.reserved += want;
        if before + want > self.area.quota() {
            return Err(SpoolError::Quota);
        }
        if self.file.is_none() {
            let mut f = tempfile::Builder::new().prefix("upload-").tempfile_in(&self.area.dir).map_err(SpoolError::Io)?;
            for c in &self.memory {
                self.area.write(&mut f, c)?;
            }
            self.memory = Vec::new();
            self.file = Some(f);
            self.release_memory();
        }
        if let Some(f) = self.file.as_mut() {
            self.area.write(f, &chunk)?;
        }
        Ok(())
    }

    fn release_memory(&mut self) {
        self.area.memory_used.fetch_sub(self.in_memory, Ordering::SeqCst);
        self.in_memory = 0;
    }

    /// The body in memory, when it never left it (a shared handle: no copy).
    pub(crate) fn memory(&mut self) -> Option<Held> {
        if self.file.is_some() {
            return None;
        }
        if self.frozen.is_none() {
            let chunks = std::mem::take(&mut self.memory);
            let len = chunks.iter().map(|c| c.len() as u64).sum();
            self.frozen = Some(Held { chunks: Arc::new(chunks), len });
        }
        self.frozen.clone()
    }

    /// Bytes `start..end` of the body held so far, copied (a stream-mode tail: small).
    pub(crate) fn copy_range(&mut self, start: u64, end: u64) -> std::io::Result<Bytes> {
        let end = end.min(self.len);
        if start >= end {
            return Ok(Bytes::new());
        }
        let want = usize::try_from(end - start).map_err(std::io::Error::other)?;
        let mut out = Vec::with_capacity(want);
        if let Some(held) = self.memory() {
            let mut at = 0u64;
            for chunk in held.chunks() {
                let (lo, hi) = (at, at + chunk.len() as u64);
                if hi > start && lo < end {
                    let from = (start.max(lo) - lo) as usize;
                    let to = (end.min(hi) - lo) as usize;
                    out.extend_from_slice(&chunk[from..to]);
                }
                at = hi;
            }
            return Ok(Bytes::from(out));
        }
        let file = self.reader()?.ok_or_else(|| std::io::Error::other("no spool file"))?;
        out.resize(want, 0);
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut out, start)?;
        Ok(Bytes::from(out))
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
        // The temporary file removes itself; give its bytes back to the quota and the budget.
        self.area.used.fetch_sub(self.reserved, Ordering::SeqCst);
        self.release_memory();
    }
}

/// The first `len` bytes of a held body, in chunks (the body may still be growing behind them).
pub(crate) fn stream_prefix(
    memory: Option<Held>,
    file: Option<std::fs::File>,
    len: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    use futures_util::StreamExt;
    stream(memory, file).scan(len, |left, chunk| {
        let item = match chunk {
            Ok(_) if *left == 0 => None,
            Ok(c) => {
                let take = (c.len() as u64).min(*left) as usize;
                *left -= take as u64;
                Some(Ok(c.slice(..take)))
            }
            Err(e) => Some(Err(e)),
        };
        futures_util::future::ready(item)
    })
}

/// A stream of a held body, in chunks.
pub(crate) fn stream(
    memory: Option<Held>,
    file: Option<std::fs::File>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    use futures_util::StreamExt;
    let chunks: Vec<Bytes> = memory.map(|m| m.chunks().to_vec()).unwrap_or_default();
    let first = futures_util::stream::iter(chunks.into_iter().map(Ok));
    // Spool files were just written and sit in the page cache: read inline, as they are written,
    // not through tokio::fs (a blocking-pool thread per concurrent reader: hundreds of threads,
    // each with its own allocator cache, under a burst of uploads).
    let rest = futures_util::stream::unfold(file, |f| async move {
        use std::io::Read;
        let mut f = f?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_memory_budget_sends_bodies_to_disk_and_is_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let area = SpoolArea::prepare(dir.path().to_path_buf(), 1 << 20, 10 * 1024, 1 << 30).unwrap();
        let mut a = Spool::new(&area);
        a.push(Bytes::from_static(&[1u8; 8192])).unwrap();
        let first = a.memory().unwrap();
        assert_eq!(first.chunks()[0].as_ptr(), a.memory().unwrap().chunks()[0].as_ptr(), "reading the body twice does not copy it");
        let mut b = Spool::new(&area);
        b.push(Bytes::from_static(&[2u8; 8192])).unwrap();
        assert!(b.memory().is_none(), "past the shared budget a small body goes to disk");
        let mut read = Vec::new();
        std::io::Read::read_to_end(&mut b.reader().unwrap().unwrap(), &mut read).unwrap();
        assert_eq!(read, vec![2u8; 8192]);
        assert_eq!(area.memory_used.load(Ordering::SeqCst), 8192, "the spooled body holds no budget");
        drop(a);
        drop(b);
        assert_eq!(area.memory_used.load(Ordering::SeqCst), 0);
        assert_eq!(area.used.load(Ordering::SeqCst), 0);
        let mut c = Spool::new(&area);
        c.push(Bytes::from_static(&[3u8; 8192])).unwrap();
        assert_eq!(c.memory().unwrap().len(), 8192, "the budget was given back");
        drop(c);
        // A Content-Length reservation is charged up front: a second one that does not fit
        // leaves its body to be charged (and spooled) as it arrives.
        let mut d = Spool::new(&area);
        d.expect(6000);
        assert_eq!(area.memory_used.load(Ordering::SeqCst), 6000);
        let mut e = Spool::new(&area);
        e.expect(6000);
        assert_eq!(area.memory_used.load(Ordering::SeqCst), 6000, "a reservation past the budget is not made");
        d.push(Bytes::from_static(&[4u8; 6000])).unwrap();
        e.push(Bytes::from_static(&[5u8; 6000])).unwrap();
        assert!(d.memory().is_some() && e.memory().is_none());
        assert_eq!(area.memory_used.load(Ordering::SeqCst), 6000, "charged once, not again when the bytes land");
        drop((d, e));
        assert_eq!(area.memory_used.load(Ordering::SeqCst), 0);
    }
}
