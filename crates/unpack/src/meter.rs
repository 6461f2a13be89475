//! Metering of decompressed bytes: every byte a decoder produces is charged to the
//! transaction's expansion budget and checked against the expansion ratio of its stream, so
//! bombs (42.zip, overlapping entries, quines, bzip2 runs) end as a typed limit, never as memory
//! or CPU exhaustion.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// Below this many output bytes a stream's ratio is not judged (tiny inputs of zeros compress
/// a thousandfold and are harmless).
pub(crate) const RATIO_FLOOR: u64 = 1024 * 1024;

/// A limit reached while reading a stream, carried through `io::Error` to the walker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LimitHit {
    pub limit: &'static str,
    pub max: u64,
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "limit {} ({}) reached", self.limit, self.max)
    }
}

impl std::error::Error for LimitHit {}

/// The limit inside an I/O error, if that is what stopped a read.
pub(crate) fn limit_hit(e: &io::Error) -> Option<LimitHit> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<LimitHit>()).copied()
}

/// Counts bytes read through it (the compressed side of a stream).
pub(crate) struct Counted<R> {
    pub inner: R,
    pub count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// The decompressed side of a stream: charges the shared budget and checks the ratio against
/// the compressed bytes consumed so far.
pub(crate) struct Metered<R> {
    pub inner: R,
    pub consumed: Rc<Cell<u64>>,
    pub produced: u64,
    pub budget: Rc<Cell<u64>>,
    pub max_expanded: u64,
    pub max_ratio: u64,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.produced += n as u64;
        let spent = self.budget.get() + n as u64;
        self.budget.set(spent);
        if spent > self.max_expanded {
            return Err(io::Error::other(LimitHit { limit: "max_expanded_bytes", max: self.max_expanded }));
        }
        if self.produced > RATIO_FLOOR && self.produced / self.consumed.get().max(1) > self.max_ratio {
            return Err(io::Error::other(LimitHit { limit: "max_ratio", max: self.max_ratio }));
        }
        Ok(n)
    }
}
