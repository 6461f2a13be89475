//! Random access to the bytes being read: a borrowed slice, pieces held in memory, any
//! `Read + Seek`, or a window onto another input (a stored archive member, read in place).
//!
//! Container parsers ask for the few pieces they need (a ZIP central directory, a PDF trailer,
//! a CFB sector), so reading a file on disk costs what the metadata costs, not what the file
//! weighs.

use crate::error::ExtractError;
use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom};

/// Random access to a file's bytes. Container parsers ask for the pieces they need.
pub trait Input {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// No bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Exactly `len` bytes at `offset`, or a `Malformed` error naming `container` when the range
    /// runs past the end.
    fn read_at(&mut self, offset: u64, len: usize, container: &'static str) -> Result<Cow<'_, [u8]>, ExtractError>;
    /// Up to `len` bytes at `offset` (fewer at the end of the input).
    fn read_upto(&mut self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>, ExtractError> {
        let total = self.len();
        let offset = offset.min(total);
        let len = (len as u64).min(total - offset) as usize;
        self.read_at(offset, len, "input")
    }
}

/// A file held in one slice.
pub struct SliceInput<'a> {
    data: &'a [u8],
}

impl<'a> SliceInput<'a> {
    /// Reads `data`.
    pub fn new(data: &'a [u8]) -> SliceInput<'a> {
        SliceInput { data }
    }
}

impl Input for SliceInput<'_> {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_at(&mut self, offset: u64, len: usize, container: &'static str) -> Result<Cow<'_, [u8]>, ExtractError> {
        let start = usize::try_from(offset).map_err(|_| truncated(container))?;
        let end = start.checked_add(len).ok_or_else(|| truncated(container))?;
        self.data.get(start..end).map(Cow::Borrowed).ok_or_else(|| truncated(container))
    }
}

/// A file behind any `Read + Seek` (a file on disk, a spooled upload).
pub struct ReaderInput<R> {
    inner: R,
    len: u64,
}

impl<R: Read + Seek> ReaderInput<R> {
    /// Reads `inner` (its length is found by seeking to the end).
    pub fn new(mut inner: R) -> Result<ReaderInput<R>, ExtractError> {
        let len = inner.seek(SeekFrom::End(0))?;
        inner.seek(SeekFrom::Start(0))?;
        Ok(ReaderInput { inner, len })
    }
}

impl<R: Read + Seek> Input for ReaderInput<R> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, len: usize, container: &'static str) -> Result<Cow<'_, [u8]>, ExtractError> {
        within(offset, len, self.len, container)?;
        self.inner.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len];
        self.inner.read_exact(&mut buf)?;
        Ok(Cow::Owned(buf))
    }
}

/// `len` bytes at `offset` lie within `total`, or the `Malformed` error naming `container`.
fn within(offset: u64, len: usize, total: u64, container: &'static str) -> Result<(), ExtractError> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= total => Ok(()),
        _ => Err(truncated(container)),
    }
}

fn truncated(container: &'static str) -> ExtractError {
    ExtractError::malformed(container, "truncated: a structure points past the end of the file")
}

/// A file held as consecutive pieces (the chunks an upload arrived in), read in place: a range
/// inside one piece is borrowed, one that straddles pieces is copied.
pub struct SegmentsInput<'a, S> {
    segments: &'a [S],
    /// Offset of each segment's first byte, and the total length at the end.
    starts: Vec<u64>,
}

impl<'a, S: AsRef<[u8]>> SegmentsInput<'a, S> {
    /// Reads the consecutive `segments` as one file.
    pub fn new(segments: &'a [S]) -> SegmentsInput<'a, S> {
        let mut starts = Vec::with_capacity(segments.len() + 1);
        let mut at = 0u64;
        for s in segments {
            starts.push(at);
            at += s.as_ref().len() as u64;
        }
        starts.push(at);
        SegmentsInput { segments, starts }
    }
}

impl<S: AsRef<[u8]>> Input for SegmentsInput<'_, S> {
    fn len(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    fn read_at(&mut self, offset: u64, len: usize, container: &'static str) -> Result<Cow<'_, [u8]>, ExtractError> {
        within(offset, len, self.len(), container)?;
        if len == 0 {
            return Ok(Cow::Borrowed(&[]));
        }
        // The segment holding `offset`: the last one starting at or before it (empty ones skipped).
        let first = self.starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let mut index = first;
        let mut skip = (offset - self.starts[index]) as usize;
        while index < self.segments.len() && skip >= self.segments[index].as_ref().len() {
            skip -= self.segments[index].as_ref().len();
            index += 1;
        }
        let head = self.segments.get(index).map(|s| s.as_ref()).unwrap_or(&[]);
        if let Some(piece) = head.get(skip..skip + len) {
            return Ok(Cow::Borrowed(piece));
        }
        let mut out = Vec::with_capacity(len);
        let mut rest = len;
        for segment in &self.segments[index..] {
            let bytes = &segment.as_ref()[skip..];
            skip = 0;
            let take = bytes.len().min(rest);
            out.extend_from_slice(&bytes[..take]);
            rest -= take;
            if rest == 0 {
                break;
            }
        }
        Ok(Cow::Owned(out))
    }
}

/// A range of another input, read in place: a stored archive member is a file of its own
/// without being copied out.
pub struct WindowInput<'a> {
    parent: &'a mut dyn Input,
    start: u64,
    len: u64,
}

impl<'a> WindowInput<'a> {
    /// The `len` bytes of `parent` at `start`; `None` when the range runs past its end.
    pub fn new(parent: &'a mut dyn Input, start: u64, len: u64) -> Option<WindowInput<'a>> {
        let end = start.checked_add(len)?;
        (end <= parent.len()).then_some(WindowInput { parent, start, len })
    }
}

impl Input for WindowInput<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, len: usize, container: &'static str) -> Result<Cow<'_, [u8]>, ExtractError> {
        within(offset, len, self.len, container)?;
        self.parent.read_at(self.start + offset, len, container)
    }
}

/// Reads an input from start to end as a stream (the input of a decompressor, a tar reader).
pub struct InputReader<'a> {
    input: &'a mut dyn Input,
    at: u64,
}

impl<'a> InputReader<'a> {
    /// A reader at the start of `input`.
    pub fn new(input: &'a mut dyn Input) -> InputReader<'a> {
        InputReader { input, at: 0 }
    }
}

impl Read for InputReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        read_from(self.input, &mut self.at, buf)
    }
}

/// `Read::read` over an input at a position it advances: reads at most 256 KiB at once.
pub(crate) fn read_from(input: &mut dyn Input, at: &mut u64, buf: &mut [u8]) -> std::io::Result<usize> {
    let piece = input.read_upto(*at, buf.len().min(256 * 1024)).map_err(std::io::Error::other)?;
    let n = piece.len();
    buf[..n].copy_from_slice(&piece);
    *at += n as u64;
    Ok(n)
}

impl Seek for InputReader<'_> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let len = self.input.len() as i128;
        let target = match pos {
            SeekFrom::Start(n) => n as i128,
            SeekFrom::End(d) => len + d as i128,
            SeekFrom::Current(d) => self.at as i128 + d as i128,
        };
        if target < 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"));
        }
        self.at = u64::try_from(target).unwrap_or(u64::MAX);
        Ok(self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_read_like_one_slice() {
        let whole: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let cuts = [0usize, 0, 7, 300, 300, 301, 999, 1000];
        let segments: Vec<&[u8]> = cuts.windows(2).map(|w| &whole[w[0]..w[1]]).collect();
        let mut pieces = SegmentsInput::new(&segments);
        let mut slice = SliceInput::new(&whole);
        assert_eq!(pieces.len(), 1000);
        for offset in [0u64, 1, 6, 7, 299, 300, 301, 500, 998, 999, 1000] {
            for len in [0usize, 1, 2, 293, 700, 1000] {
                let a = pieces.read_at(offset, len, "t").map(|c| c.into_owned()).map_err(|e| e.to_string());
                let b = slice.read_at(offset, len, "t").map(|c| c.into_owned()).map_err(|e| e.to_string());
                assert_eq!(a, b, "offset {offset} len {len}");
            }
        }
        assert!(matches!(pieces.read_at(7, 293, "t").unwrap(), Cow::Borrowed(_)), "a range inside one piece is not copied");
    }
}
