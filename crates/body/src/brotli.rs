//! Brotli decoding whose ring buffer is reused. Brotli has no signature, so bodies sent without a
//! declared coding have their start tried as brotli; a random start names a window of up to
//! 16 MiB, and the standard allocator zeroes a fresh one every time (1–2 ms per try, most of the
//! CPU of a binary upload cut in pieces). Here the process keeps a few large buffers: a try costs
//! the bytes it decodes. Reused bytes are never output: the decoder only copies from ring-buffer
//! positions it has written (a distance past them is a dictionary reference or an error).

use brotli_decompressor::{Allocator, SliceWrapper, SliceWrapperMut, StandardAlloc};
use std::io::Read;
use std::sync::Mutex;

/// Buffers kept per thread, and the largest kept.
const KEEP: usize = 4;
const KEEP_MAX: usize = 32 << 20;
const KEEP_MIN: usize = 64 << 10;

/// Process-wide (the decodes run on whichever blocking thread is free), a few buffers long.
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn pool() -> std::sync::MutexGuard<'static, Vec<Vec<u8>>> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A byte buffer from the pool: `len` bytes of a vector that may be longer.
#[derive(Default)]
pub(crate) struct Pooled {
    bytes: Vec<u8>,
    len: usize,
}

impl SliceWrapper<u8> for Pooled {
    fn slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl SliceWrapperMut<u8> for Pooled {
    fn slice_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }
}

/// Hands out pooled byte buffers (only grown parts are zeroed).
#[derive(Default, Clone, Copy)]
pub(crate) struct PoolAlloc;

impl Allocator<u8> for PoolAlloc {
    type AllocatedMemory = Pooled;

    fn alloc_cell(&mut self, len: usize) -> Pooled {
        if len == 0 {
            return Pooled::default();
        }
        if len < KEEP_MIN {
            return Pooled { bytes: vec![0; len], len };
        }
        let mut bytes = {
            let mut pool = pool();
            // The smallest kept buffer that is large enough, else the largest.
            let pick = pool.iter().enumerate().filter(|(_, b)| b.len() >= len).min_by_key(|(_, b)| b.len()).map(|(i, _)| i);
            match pick.or_else(|| pool.iter().enumerate().max_by_key(|(_, b)| b.len()).map(|(i, _)| i)) {
                Some(i) => pool.swap_remove(i),
                None => Vec::new(),
            }
        };
        if bytes.len() < len {
            bytes.resize(len, 0);
        }
        Pooled { bytes, len }
    }

    fn free_cell(&mut self, data: Pooled) {
        // Only ring-buffer-sized buffers are worth keeping; the largest are kept.
        if data.bytes.len() < KEEP_MIN || data.bytes.len() > KEEP_MAX {
            return;
        }
        let mut pool = pool();
        if pool.len() < KEEP {
            pool.push(data.bytes);
        } else if let Some(smallest) = pool.iter_mut().min_by_key(|b| b.len()).filter(|b| b.len() < data.bytes.len()) {
            *smallest = data.bytes;
        }
    }
}

/// A brotli decoder over `input` with pooled byte buffers.
pub(crate) fn decoder<R: Read>(input: R, buffer_size: usize) -> impl Read {
    let mut alloc = PoolAlloc;
    let buffer = alloc.alloc_cell(buffer_size.max(4096));
    brotli_decompressor::reader::DecompressorCustomAlloc::new(input, buffer, alloc, StandardAlloc::default(), StandardAlloc::default())
}
