//! Random access to the bytes being read: a borrowed slice, or any `Read + Seek`.
//!
//! Container parsers ask for the few pieces they need (a ZIP central directory, a PDF trailer,
//! a CFB sector), so reading a file on disk costs what the metadata costs, not what the file
//! weighs.

use crate::error::ExtractError;
use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom};

pub(crate) trait Input {
    /// Total length in bytes.
    fn len(&self) -> u64;
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

pub(crate) struct SliceInput<'a> {
    data: &'a [u8],
}

impl<'a> SliceInput<'a> {
    pub(crate) fn new(data: &'a [u8]) -> SliceInput<'a> {
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

pub(crate) struct ReaderInput<R> {
    inner: R,
    len: u64,
}

impl<R: Read + Seek> ReaderInput<R> {
    pub(crate) fn new(mut inner: R) -> Result<ReaderInput<R>, ExtractError> {
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
        let end = offset.checked_add(len as u64).ok_or_else(|| truncated(container))?;
        if end > self.len {
            return Err(truncated(container));
        }
        self.inner.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len];
        self.inner.read_exact(&mut buf)?;
        Ok(Cow::Owned(buf))
    }
}

fn truncated(container: &'static str) -> ExtractError {
    ExtractError::malformed(container, "truncated: a structure points past the end of the file")
}
