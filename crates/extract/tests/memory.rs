//! Bounded memory, measured: a counting global allocator records the peak heap while hostile
//! inputs are read with tight limits. Counted per thread, so tests running beside one another
//! never enter each other's measurement.

use labelgate_extract::{extract_with, ExtractError, Inspector, Limits};
use labelgate_testkit::*;
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Peak heap growth of this thread while `f` runs (other tests' threads are not counted).
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    peak_heap_during(f)
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
