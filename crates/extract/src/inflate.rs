//! Bounded inflation (raw deflate for ZIP entries, zlib for PDF streams) with a resumable form
//! that decodes only the prefix a lookup needs (large xref streams).
//!
//! Built on flate2's zlib-rs backend (pure Rust, faster than miniz_oxide on the small parts that
//! dominate here); decoder state is reused per thread because setting it up costs more than
//! inflating a 2 KiB metadata part.

use flate2::{Decompress, FlushDecompress, Status};
use std::cell::RefCell;

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
    zlib: bool,
    /// Always `Some` until dropped (then handed back to the thread's pool).
    state: Option<Decompress>,
    out: Vec<u8>,
    ended: bool,
    failed: bool,
    cap: usize,
}

impl Inflater {
    pub(crate) fn new(compressed: Vec<u8>, zlib: bool, cap: u64) -> Inflater {
        // Take this thread's spare decoder if there is one (see `Drop`).
        let cell = if zlib { &ZLIB } else { &RAW };
        let state = match cell.with(|slot| slot.borrow_mut().take()) {
            Some(mut state) => {
                state.reset(zlib);
                state
            }
            None => Decompress::new(zlib),
        };
        Inflater {
            compressed,
            zlib,
            state: Some(state),
            out: Vec::new(),
            ended: false,
            failed: false,
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
        }
    }

    /// Decodes until at least `want` bytes are out, the stream ends, or the cap is reached.
    pub(crate) fn fill(&mut self, want: usize) -> Result<&[u8], InflateError> {
        if let Some(state) = self.state.as_mut() {
            drive(state, &self.compressed, &mut self.out, want, self.cap, &mut self.ended, &mut self.failed)?;
        }
        Ok(&self.out)
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // Hand the decoder back for the next part on this thread.
        if let Some(state) = self.state.take() {
            let cell = if self.zlib { &ZLIB } else { &RAW };
            cell.with(|slot| {
                if let Ok(mut slot) = slot.try_borrow_mut() {
                    slot.get_or_insert(state);
                }
            });
        }
    }
}

/// Runs `state` over `input` (resuming where it stopped) until `out` holds `want` bytes or the
/// stream ends.
fn drive(
    state: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    want: usize,
    cap: usize,
    ended: &mut bool,
    failed: &mut bool,
) -> Result<(), InflateError> {
    while out.len() < want && !*ended {
        if out.len() > cap {
            return Err(InflateError::TooLarge);
        }
        let room = out.capacity() - out.len();
        if room < 256 {
            let grow = out.capacity().max(1024).min(cap.saturating_add(1).saturating_sub(out.len()).max(256));
            out.reserve(grow);
        }
        let consumed = state.total_in() as usize;
        let Some(rest) = input.get(consumed..) else {
            *ended = true;
            break;
        };
        let before = (state.total_in(), state.total_out());
        match state.decompress_vec(rest, out, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) => *ended = true,
            Ok(_) => {
                if (state.total_in(), state.total_out()) == before && out.capacity() > out.len() {
                    // No progress with room to spare: the input is truncated.
                    *ended = true;
                    *failed = true;
                }
            }
            Err(_) => {
                *ended = true;
                *failed = true;
            }
        }
    }
    if out.len() > cap {
        return Err(InflateError::TooLarge);
    }
    Ok(())
}

thread_local! {
    static RAW: RefCell<Option<Decompress>> = const { RefCell::new(None) };
    static ZLIB: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Inflates all of `data`; `size_hint` (e.g. a ZIP entry's declared size) sizes the buffer.
/// PDF (`zlib`) streams that end early keep what decoded, as readers do.
pub(crate) fn inflate(data: &[u8], zlib: bool, cap: u64, size_hint: usize) -> Result<Vec<u8>, InflateError> {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let cell = if zlib { &ZLIB } else { &RAW };
    cell.with(|slot| {
        let mut slot = slot.borrow_mut();
        let state = slot.get_or_insert_with(|| Decompress::new(zlib));
        state.reset(zlib);
        let mut out = Vec::with_capacity(size_hint.saturating_add(1).clamp(64, cap.saturating_add(1)));
        let (mut ended, mut failed) = (false, false);
        drive(state, data, &mut out, usize::MAX, cap, &mut ended, &mut failed)?;
        if failed && (out.is_empty() || !zlib) {
            return Err(InflateError::Corrupt);
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn compress(data: &[u8], zlib: bool) -> Vec<u8> {
        if zlib {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        } else {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
    }

    #[test]
    fn round_trip_and_cap() {
        let data = vec![7u8; 100_000];
        assert_eq!(inflate(&compress(&data, false), false, 200_000, 10).unwrap(), data);
        assert_eq!(inflate(&compress(&data, false), false, 99_999, 100_000), Err(InflateError::TooLarge));
        assert_eq!(inflate(b"\xff\xff\xff", false, 1000, 10), Err(InflateError::Corrupt));
        let z = compress(&data, true);
        assert_eq!(inflate(&z[..z.len() / 2], true, 200_000, 0).map(|v| !v.is_empty()), Ok(true), "truncated zlib keeps its prefix");
    }

    #[test]
    fn prefix_only() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut inf = Inflater::new(compress(&data, true), true, 1 << 20);
        let first = inf.fill(10).unwrap().len();
        assert!(first >= 10 && first < data.len());
        assert_eq!(inf.fill(150_000).unwrap()[..150_000], data[..150_000]);
        assert_eq!(inf.fill(usize::MAX).unwrap(), &data[..]);
    }
}
