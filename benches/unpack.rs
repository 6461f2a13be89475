//! Files inside files: what a container costs beyond the file it carries. A labeled corpus docx
//! bare, in a stored zip (read in place: a window onto the archive), in a deflated zip (one
//! inflate of the member); a 100 MiB zip of 1,000 stored unlabeled members (each member's first
//! bytes are checked, none is read further).
//!
//! `cargo bench -p labelgate-benches --bench unpack`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use labelgate_extract::Limits;
use labelgate_testkit::{filler, zip, Entry};
use labelgate_unpack::{inspect_slice, UnpackLimits};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

fn labeled_docx() -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/files/lab_caf_identity-baseline-discipline-template.docx");
    std::fs::read(path).expect("the shared corpus beside the repository")
}

fn containers(c: &mut Criterion) {
    let limits = Limits::default();
    // Inner files' audit hashes off: the bare docx is not hashed here either (the proxy hashes
    // both, a labeled upload whole and a labeled inner file whole).
    let bounds = UnpackLimits { hash_flagged: false, ..UnpackLimits::default() };
    let hashing = UnpackLimits::default();
    let docx = labeled_docx();
    let stored = zip(&[Entry::new("notes.txt", b"minutes\n".repeat(100)), Entry::new("finance/q3.docx", &docx).stored()]);
    let deflated = zip(&[Entry::new("notes.txt", b"minutes\n".repeat(100)), Entry::new("finance/q3.docx", &docx)]);
    for bytes in [&docx, &stored, &deflated] {
        assert_eq!(inspect_slice(bytes, &limits, &bounds).all_labels().count(), 1);
    }
    let mut group = c.benchmark_group("unpack");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(40);
    group.bench_function("docx bare", |b| b.iter(|| inspect_slice(black_box(&docx), &limits, &bounds)));
    group.bench_function("docx in stored zip", |b| b.iter(|| inspect_slice(black_box(&stored), &limits, &bounds)));
    group.bench_function("docx in deflated zip", |b| b.iter(|| inspect_slice(black_box(&deflated), &limits, &bounds)));
    group.bench_function("docx in stored zip, inner hash on", |b| b.iter(|| inspect_slice(black_box(&stored), &limits, &hashing)));
    // The inflate alone, for the "bare + one inflate" comparison.
    let compressed = labelgate_testkit::deflate(&docx);
    group.bench_function("inflate of the docx member", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(docx.len());
            let mut d = flate2::read::DeflateDecoder::new(black_box(&compressed[..]));
            std::io::Read::read_to_end(&mut d, &mut out).unwrap();
            out
        })
    });
    group.finish();

    let members: Vec<Entry> =
        (0..1000).map(|n| Entry::new(&format!("media/{n:04}.bin"), filler(100 * 1024, n as u64 + 1)).stored()).collect();
    let big = zip(&members);
    assert!(inspect_slice(&big, &limits, &bounds).inner.is_empty());
    let mut group = c.benchmark_group("unpack-large");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3)).sample_size(20);
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("100 MiB zip of 1000 stored members", |b| b.iter(|| inspect_slice(black_box(&big), &limits, &bounds)));
    group.finish();
}

criterion_group!(benches, containers);
criterion_main!(benches);
