//! Bounded inflation (raw deflate for ZIP entries, zlib for PDF streams) on miniz_oxide, with a
//! resumable form that decodes only the prefix a lookup needs (large xref streams).

use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The output would exceed the cap.
    TooLarge,
    /// The data is not valid deflate (and produced nothing usable).
    Corrupt,
}

/// A decoder that can be asked for more output as it is needed.
pub(crate) struct Inflater {
    compressed: Vec<u8>,
    state: Box<DecompressorOxide>,
    in_pos: usize,
    out: Vec<u8>,
    out_pos: usize,
    flags: u32,
    ended: bool,
    failed: bool,
    cap: usize,
}

impl Inflater {
    pub(crate) fn new(compressed: Vec<u8>, zlib: bool, cap: u64) -> Inflater {
        let mut flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
        if zlib {
            flags |= inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER | inflate_flags::TINFL_FLAG_IGNORE_ADLER32;
        }
        Inflater {
            compressed,
            state: Box::default(),
            in_pos: 0,
            out: Vec::new(),
            out_pos: 0,
            flags,
            ended: false,
            failed: false,
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
        }
    }

    /// Decodes until at least `want` bytes are out, the stream ends, or the cap is reached.
    pub(crate) fn fill(&mut self, want: usize) -> Result<&[u8], InflateError> {
        while self.out_pos < want && !self.ended {
            if self.out_pos >= self.cap {
                return Err(InflateError::TooLarge);
            }
            let target = want.max(self.out.len().saturating_mul(2)).max(1024).min(self.cap.saturating_add(1));
            if self.out.len() < target {
                self.out.resize(target, 0);
            }
            let (status, consumed, written) = decompress(&mut self.state, &self.compressed[self.in_pos..], &mut self.out, self.out_pos, self.flags);
            self.in_pos += consumed;
            self.out_pos += written;
            match status {
                TINFLStatus::Done => self.ended = true,
                TINFLStatus::HasMoreOutput => {
                    if self.out_pos > self.cap {
                        return Err(InflateError::TooLarge);
                    }
                }
                // Truncated or corrupt: keep what decoded, as PDF readers do.
                _ => {
                    self.ended = true;
                    self.failed = true;
                }
            }
        }
        if self.out_pos > self.cap {
            return Err(InflateError::TooLarge);
        }
        Ok(&self.out[..self.out_pos])
    }

    /// Decodes everything.
    pub(crate) fn finish(mut self) -> Result<(Vec<u8>, bool), InflateError> {
        self.fill(usize::MAX)?;
        self.out.truncate(self.out_pos);
        Ok((self.out, self.failed))
    }
}

/// Inflates all of `data`; `size_hint` (e.g. a ZIP entry's declared size) sizes the first buffer.
pub(crate) fn inflate(data: &[u8], zlib: bool, cap: u64, size_hint: usize) -> Result<Vec<u8>, InflateError> {
    let mut inflater = Inflater::new(data.to_vec(), zlib, cap);
    let first = size_hint.max(64).min(inflater.cap.saturating_add(1));
    inflater.fill(first)?;
    let (out, failed) = inflater.finish()?;
    if failed && (out.is_empty() || !zlib) {
        return Err(InflateError::Corrupt);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(data: &[u8]) -> Vec<u8> {
        miniz_oxide::deflate::compress_to_vec(data, 6)
    }

    #[test]
    fn round_trip_and_cap() {
        let data = vec![7u8; 100_000];
        assert_eq!(inflate(&raw(&data), false, 200_000, 10).unwrap(), data);
        assert_eq!(inflate(&raw(&data), false, 99_999, 100_000), Err(InflateError::TooLarge));
        assert_eq!(inflate(b"\xff\xff\xff", false, 1000, 10), Err(InflateError::Corrupt));
    }

    #[test]
    fn prefix_only() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut inf = Inflater::new(miniz_oxide::deflate::compress_to_vec_zlib(&data, 6), true, 1 << 20);
        assert_eq!(&inf.fill(10).unwrap()[..10], &data[..10]);
        assert_eq!(inf.fill(150_000).unwrap()[..150_000], data[..150_000]);
    }
}
