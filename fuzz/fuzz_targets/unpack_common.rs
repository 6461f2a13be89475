// Shared by the files-inside-files targets: every entry point of labelgate-unpack must give the
// same answer, and tight limits must hold (no panic, no OOM, no hang).
use labelgate_extract::Limits;
use labelgate_unpack::{inspect_reader, inspect_segments, inspect_slice, Inspection, UnpackLimits};

fn summary(i: &Inspection) -> String {
    let inner: Vec<String> = i.inner.iter().map(|f| format!("{:?}|{}|{:?}|{:?}|{:?}", f.path, f.depth, f.kind, f.labels, f.error)).collect();
    format!("{:?}\n{:?}\n{}", i.outer.as_ref().map_err(|e| e.to_string()), i.container, inner.join("\n"))
}

pub fn check(data: &[u8]) {
    let limits = Limits { max_part_bytes: 1 << 20, max_buffered_bytes: 8 << 20, ..Limits::default() };
    let bounds = UnpackLimits { max_depth: 4, max_inner_bytes: 4 << 20, max_expanded_bytes: 16 << 20, max_members: 256, max_ratio: 250, hash_flagged: true };
    let a = summary(&inspect_slice(data, &limits, &bounds));
    let cut = (data.first().copied().unwrap_or(1) as usize).max(1);
    let pieces: Vec<&[u8]> = data.chunks(cut).collect();
    assert_eq!(a, summary(&inspect_segments(&pieces, &limits, &bounds)), "slice and pieces disagree");
    assert_eq!(a, summary(&inspect_reader(std::io::Cursor::new(data), &limits, &bounds)), "slice and reader disagree");
}

/// Keeps mutated inputs inside one container reader by restoring its magic bytes.
pub fn with_magic(data: &[u8], magic: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    if v.len() < magic.len() {
        v.resize(magic.len(), 0);
    }
    v[..magic.len()].copy_from_slice(magic);
    v
}
