//! What the container tests compare: the labels and problems of an inspection, and the same
//! answer from every entry point.

use labelgate_extract::Limits;
use labelgate_unpack::{inspect_reader, inspect_segments, inspect_slice, Inspection, UnpackLimits};

/// Every label id found anywhere, sorted, once each.
pub fn labels(i: &Inspection) -> Vec<String> {
    let mut v: Vec<String> = i.all_labels().map(|l| l.id.clone()).collect();
    v.sort();
    v.dedup();
    v
}

/// Every problem: each inner file's, the container's, the outer file's.
pub fn problems(i: &Inspection) -> Vec<String> {
    let mut out: Vec<String> = i.inner.iter().filter_map(|f| f.error.as_ref().map(|e| format!("{:?}: {e}", f.path))).collect();
    if let Some(p) = &i.container {
        out.push(format!("container: {p}"));
    }
    if let Err(e) = &i.outer {
        out.push(format!("outer: {e}"));
    }
    out
}

/// The same answer from a slice, pieces of `piece` bytes, and a reader.
pub fn inspect_all_ways_in(bytes: &[u8], piece: usize) -> Inspection {
    let limits = Limits::default();
    let bounds = UnpackLimits::default();
    let a = inspect_slice(bytes, &limits, &bounds);
    let pieces: Vec<&[u8]> = bytes.chunks(piece).collect();
    let b = inspect_segments(&pieces, &limits, &bounds);
    let c = inspect_reader(std::io::Cursor::new(bytes), &limits, &bounds);
    for other in [&b, &c] {
        assert_eq!(labels(&a), labels(other));
        assert_eq!(problems(&a), problems(other));
        let paths = |i: &Inspection| i.inner.iter().map(|f| (f.path.clone(), f.kind)).collect::<Vec<_>>();
        assert_eq!(paths(&a), paths(other));
    }
    a
}
