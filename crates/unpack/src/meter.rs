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

/// zstd frames one after another (as `zstd` and `pzstd` write them; skippable frames are
/// skipped), decoded as one stream with `ruzstd` (pure Rust; windows over 100 MiB refused).
pub(crate) struct ZstdFrames<R> {
    source: R,
    decoder: ruzstd::decoding::FrameDecoder,
    started: bool,
}

impl<R: io::BufRead> ZstdFrames<R> {
    pub(crate) fn new(source: R) -> ZstdFrames<R> {
        ZstdFrames { source, decoder: ruzstd::decoding::FrameDecoder::new(), started: false }
    }
}

impl<R: io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.started || (self.decoder.is_finished() && self.decoder.can_collect() == 0) {
                if self.source.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.decoder.reset(&mut self.source) {
                    Ok(()) => self.started = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame { length, .. })) => {
                        let skipped = io::copy(&mut (&mut self.source).take(length as u64), &mut io::sink())?;
                        if skipped != length as u64 {
                            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated skippable frame"));
                        }
                        continue;
                    }
                    Err(e) => return Err(io::Error::other(e.to_string())),
                }
            }
            while self.decoder.can_collect() < buf.len() && !self.decoder.is_finished() {
                let more = buf.len() - self.decoder.can_collect();
                self.decoder
                    .decode_blocks(&mut self.source, ruzstd::decoding::BlockDecodingStrategy::UptoBytes(more))
                    .map_err(|e| io::Error::other(e.to_string()))?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
        }
    }
}
