//! Bounded memory, measured: a counting global allocator records the peak heap while hostile
//! inputs are read with tight limits. (Its own test binary, so no other test shares the counter.)

use labelgate_extract::{extract_with, ExtractError, Inspector, Limits};
use labelgate_testkit::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static SERIAL: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the allocator really behaves for large blocks (grown in place or remapped).
        if new_size >= layout.size() {
            let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::SeqCst) + new_size - layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap growth while `f` runs.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst).saturating_sub(base))
}

const MIB: usize = 1024 * 1024;

#[test]
fn zip_bomb_stays_within_the_part_limit() {
    let mut entries = docx(Some(String::new()), None);
    entries[3].data = vec![b' '; 64 * MIB];
    let bytes = zip(&entries);
    let limits = Limits { max_part_bytes: MIB as u64, ..Limits::default() };
    let (result, peak) = peak_during(|| extract_with(&bytes, &limits));
    assert!(matches!(result, Err(ExtractError::LimitExceeded { limit: "max_part_bytes", .. })));
    assert!(peak < 4 * MIB, "peak heap {peak} bytes while reading a 64 MiB bomb with a 1 MiB part limit");
}

#[test]
fn large_files_cost_metadata_not_size() {
    let docx = large_docx(32 * MIB);
    let pdf = large_pdf(2000, 32 * 1024);
    for bytes in [&docx, &pdf] {
        let (result, peak) = peak_during(|| extract_with(bytes, &Limits::default()));
        assert!(result.map(|e| e.is_labeled()).unwrap_or(false));
        assert!(peak < 2 * MIB, "peak heap {peak} bytes for a {} byte file", bytes.len());
    }
}

#[test]
fn push_interface_holds_no_more_than_its_buffer_limit() {
    let limits = Limits { max_buffered_bytes: 4 * MIB as u64, ..Limits::default() };
    let chunk = vec![0u8; 64 * 1024];
    let (_, peak) = peak_during(|| {
        // A PDF-looking upload far larger than the buffer limit.
        let mut inspector = Inspector::new(limits.clone());
        let _ = inspector.feed(b"%PDF-1.7\n");
        for _ in 0..512 {
            let _ = inspector.feed(&chunk);
        }
        inspector.finish()
    });
    assert!(peak < 6 * MIB, "peak heap {peak} bytes for a 32 MiB upload with a 4 MiB buffer limit");
}
