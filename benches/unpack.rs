//! Files inside files: what a container costs beyond the file it carries. A labeled corpus docx
//! bare, in a stored zip (read in place: a window onto the archive), in a deflated zip (one
//! inflate of the member); a 100 MiB zip of 1,000 stored unlabeled members (each member's first
//! bytes are checked, none is read further); files hidden in documents (embeddings, attachments,
//! prefixes, owner-password PDFs, VelvetSweatshop workbooks) beside the bare files.
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
    let path = labelgate_testkit::corpus_dir().join("files/lab_caf_identity-baseline-discipline-template.docx");
    std::fs::read(path).expect("the corpus (labelgate_testkit::corpus_dir())")
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

/// Files hidden in documents (crates/unpack/tests/make_hidden.py): what seeing through an
/// embedding, a prefix or a password that is no secret costs beside the bare file.
fn hidden(c: &mut Criterion) {
    let limits = Limits::default();
    let bounds = UnpackLimits { hash_flagged: false, ..UnpackLimits::default() };
    let dir = std::env::temp_dir().join(format!("labelgate-bench-hidden-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    labelgate_testkit::make_hidden_fixtures(&dir);
    let corpus = labelgate_testkit::corpus_dir().join("files");
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("pdf bare", read(corpus.join("lab_openchain_simpleqa.pdf"))),
        ("pdf owner password RC4-40", read(dir.join("lab_pdf_owner_rc4_40.pdf"))),
        ("pdf owner password AES-128", read(dir.join("lab_pdf_owner_aes128.pdf"))),
        ("pdf owner password AES-256", read(dir.join("lab_pdf_owner_aes256.pdf"))),
        ("pdf with an attached docx", read(dir.join("lab_pdf_attached_docx.pdf"))),
        ("xlsx bare", read(corpus.join("lab_gc_cloud-guardrails-crosswalk.xlsx"))),
        ("xlsx VelvetSweatshop standard", read(dir.join("lab_xlsx_velvet_standard.xlsx"))),
        ("xlsx VelvetSweatshop agile", read(dir.join("lab_xlsx_velvet_agile.xlsx"))),
        ("docx bare", labeled_docx()),
        ("docx behind 64 KiB of noise", read(dir.join("lab_prefix64k_docx.docx"))),
        ("docx with an OLE-packaged docx", read(dir.join("lab_docx_oleobject_native.docx"))),
    ];
    let _ = std::fs::remove_dir_all(&dir);
    // Inner files of a large PDF: its structure is walked and the whole file is scanned once for
    // embedded-file streams outside it.
    let large = labelgate_testkit::large_pdf(3000, 34 * 1024);
    let mut group = c.benchmark_group("hidden-large");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3)).sample_size(10);
    group.throughput(Throughput::Bytes(large.len() as u64));
    group.bench_function("extract: 100 MiB PDF, 3000 pages", |b| b.iter(|| labelgate_extract::extract_with(black_box(&large), &limits)));
    group.bench_function("inspect: 100 MiB PDF, 3000 pages", |b| b.iter(|| inspect_slice(black_box(&large), &limits, &bounds)));
    group.finish();
    let mut group = c.benchmark_group("hidden");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
    for (name, bytes) in &cases {
        assert!(inspect_slice(bytes, &limits, &bounds).all_labels().count() >= 1, "{name}");
        // Each iteration reads the file as new: keys derived from a password are not carried over.
        group.bench_function(format!("extract: {name}"), |b| {
            b.iter(|| {
                labelgate_extract::forget_derived_keys();
                labelgate_extract::extract_with(black_box(bytes), &limits)
            })
        });
        group.bench_function(format!("inspect: {name}"), |b| {
            b.iter(|| {
                labelgate_extract::forget_derived_keys();
                inspect_slice(black_box(bytes), &limits, &bounds)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, containers, hidden);
criterion_main!(benches);
