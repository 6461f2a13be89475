//! `labelgate scan`'s engine over a tree of corpus copies (4 × the 72 corpus files, 2 workers):
//! every file inside files read (the default), each file's own labels only
//! (`[scan] files_inside = false`), and a re-scan answered by the incremental index. The whole
//! tool beside ExifTool on a 36,000-file tree is `benches/scan/run.sh`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use labelgate_extract::Limits;
use labelgate_scan::{index::Index, scan, Found, Progress, Settings};
use labelgate_unpack::UnpackLimits;
use std::path::PathBuf;

const COPIES: usize = 4;

fn tree() -> (tempfile::TempDir, usize) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let files = labelgate_testkit::corpus_dir().join("files");
    let mut n = 0;
    for copy in 0..COPIES {
        let d = dir.path().join(format!("copy{copy}"));
        std::fs::create_dir_all(&d).expect("a directory");
        for f in std::fs::read_dir(&files).expect("the corpus").flatten() {
            std::fs::copy(f.path(), d.join(f.file_name())).expect("a copy");
            n += 1;
        }
    }
    (dir, n)
}

fn settings(files_inside: bool, index: Option<Index>) -> Settings {
    Settings {
        limits: Limits::default(),
        bounds: UnpackLimits::default(),
        jobs: 2,
        walk: Default::default(),
        index,
        files_inside,
        detection: None,
    }
}

fn run(roots: &[PathBuf], s: &Settings) -> usize {
    let mut files = 0;
    let render = |f: &labelgate_scan::Scanned| f.result.is_ok();
    scan(roots, s, &Progress::default(), &render, &mut |f| {
        if let Found::File(_, ok) = f {
            files += usize::from(ok);
        }
    })
    .expect("the scan runs");
    files
}

fn bench(c: &mut Criterion) {
    let (dir, n) = tree();
    let roots = vec![dir.path().to_path_buf()];
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    let full = settings(true, None);
    g.bench_function("files_inside", |b| b.iter(|| run(&roots, &full)));
    let own = settings(false, None);
    g.bench_function("labels_only", |b| b.iter(|| run(&roots, &own)));
    // Labels only plus every file's text through the built-in detectors.
    let detectors = Settings { detection: Some(labelgate_scan::detection::compile(&[], Default::default()).0), ..settings(false, None) };
    g.bench_function("labels_only_with_detectors", |b| b.iter(|| run(&roots, &detectors)));
    let index_dir = tempfile::tempdir().expect("a temp dir");
    let index = Index::open(&index_dir.path().join("index"), "bench").expect("the index");
    let indexed = settings(true, Some(index));
    run(&roots, &indexed);
    g.bench_function("incremental_rescan", |b| b.iter(|| run(&roots, &indexed)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
