//! Extraction cost: every labeled corpus docx/xlsx/pptx and PDF, and generated large files
//! (1 MiB vs 100 MiB docx; a 1 MiB vs 100 MiB PDF with thousands of pages) to show that cost
//! follows the metadata, not the file size.
//!
//! `cargo bench -p labelgate-benches --bench extract`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use labelgate_extract::{extract, Limits};
use std::hint::black_box;
use std::time::Duration;

use std::path::PathBuf;

/// The corpus's files (`files/` of `labelgate_testkit::corpus_dir()`).
fn corpus_files_dir() -> PathBuf {
    labelgate_testkit::corpus_dir().join("files")
}

/// Corpus files whose names start with `prefix` and end with one of `exts`, sorted.
fn corpus_files(prefix: &str, exts: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_files_dir())
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.starts_with(prefix) && exts.iter().any(|e| name.ends_with(e))
        })
        .filter_map(|p| Some((p.file_name()?.to_string_lossy().into_owned(), std::fs::read(&p).ok()?)))
        .collect();
    out.sort();
    out
}

fn corpus(c: &mut Criterion) {
    let mut group = c.benchmark_group("corpus");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).sample_size(30);
    for (name, bytes) in corpus_files("lab_", &[".docx", ".xlsx", ".pptx", ".xlsm", ".xlsb", ".pdf"]) {
        assert!(extract(&bytes).map(|e| e.is_labeled()).unwrap_or(false), "{name} must read as labeled");
        group.bench_with_input(BenchmarkId::from_parameter(&name), &bytes, |b, bytes| b.iter(|| extract(black_box(bytes))));
    }
    group.finish();
}

fn large(c: &mut Criterion) {
    let mut group = c.benchmark_group("large");
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2)).sample_size(30);
    let limits = Limits::default();
    let files = [
        ("docx_1MiB", labelgate_testkit::large_docx(1 << 20)),
        ("docx_100MiB", labelgate_testkit::large_docx(100 << 20)),
        ("pdf_1MiB_30pages", labelgate_testkit::large_pdf(30, (1 << 20) / 30)),
        ("pdf_100MiB_3000pages", labelgate_testkit::large_pdf(3000, (100 << 20) / 3000)),
    ];
    for (name, bytes) in &files {
        assert!(extract(bytes).map(|e| e.is_labeled()).unwrap_or(false), "{name} must read as labeled");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), bytes, |b, bytes| {
            b.iter(|| labelgate_extract::extract_with(black_box(bytes), &limits))
        });
    }
    group.finish();
}

criterion_group!(benches, corpus, large);
criterion_main!(benches);
