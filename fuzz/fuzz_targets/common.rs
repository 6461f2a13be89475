// Shared by every target: run every entry point and require that they agree.
use labelgate_extract::{extract_reader, extract_segments, extract_with, Inspector, Limits};

pub fn check(data: &[u8]) {
    // Smaller limits keep each execution fast; they are still real limits that must hold.
    let limits = Limits { max_part_bytes: 1 << 20, max_buffered_bytes: 8 << 20, ..Limits::default() };
    let a = extract_with(data, &limits).map_err(|e| e.to_string());
    let b = extract_reader(std::io::Cursor::new(data), &limits).map_err(|e| e.to_string());
    assert_eq!(a, b, "slice and reader disagree");
    // Uneven pieces, as an upload arrives: ranges that straddle them are joined.
    let cut = (data.first().copied().unwrap_or(1) as usize).max(1);
    let pieces: Vec<&[u8]> = data.chunks(cut).collect();
    let d = extract_segments(&pieces, &limits).map_err(|e| e.to_string());
    assert_eq!(a, d, "slice and pieces disagree");
    let mut inspector = Inspector::new(limits);
    let mid = data.len() / 3;
    let _ = inspector.feed(&data[..mid]);
    let _ = inspector.feed(&data[mid..]);
    let c = inspector.finish().map_err(|e| e.to_string());
    assert_eq!(a, c, "slice and push disagree");
}

/// Keeps mutated inputs inside one container parser by restoring its magic bytes.
pub fn with_magic(data: &[u8], magic: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    if v.len() < magic.len() {
        v.resize(magic.len(), 0);
    }
    v[..magic.len()].copy_from_slice(magic);
    v
}
