//! The per-request cost of split-upload bookkeeping: recognising a piece (headers and query of
//! every protocol looked at) and placing 320 pieces of a 100 MiB file into a session's coverage,
//! in order and shuffled. The end-to-end CPU of a 100 MiB upload in 320 KiB fragments against
//! one request is `benches/pieces/run.sh` (figures in benches/README.md).
//!
//! `cargo bench -p labelgate-benches --bench pieces`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use labelgate_pieces::{recognise, Coverage, Recognised, RequestHead};
use std::hint::black_box;

const FRAGMENT: u64 = 320 * 1024;
const TOTAL: u64 = 100 * 1024 * 1024;

fn pieces(c: &mut Criterion) {
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/octet-stream".parse().unwrap());
    headers.insert("content-range", format!("bytes {}-{}/{TOTAL}", 5 * FRAGMENT, 6 * FRAGMENT - 1).parse().unwrap());
    headers.insert("user-agent", "google-resumable-media-python/2.11.0".parse().unwrap());
    let head = RequestHead {
        method: &http::Method::PUT,
        authority: "www.googleapis.com:443",
        path: "/upload/drive/v3/files",
        query: Some("uploadType=resumable&upload_id=ADPycdvq0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"),
        headers: &headers,
        has_body: true,
    };
    assert!(matches!(recognise(&head), Some(Recognised::Piece(_))));
    let plain = http::HeaderMap::new();
    let ordinary = RequestHead {
        method: &http::Method::POST,
        authority: "example.com",
        path: "/form",
        query: Some("a=1&b=2"),
        headers: &plain,
        has_body: true,
    };
    let mut group = c.benchmark_group("pieces");
    group.throughput(Throughput::Elements(1));
    group.bench_function("recognise_a_google_piece", |b| b.iter(|| black_box(recognise(black_box(&head)))));
    group.bench_function("recognise_an_ordinary_upload", |b| b.iter(|| black_box(recognise(black_box(&ordinary)))));
    let n = TOTAL.div_ceil(FRAGMENT);
    let in_order: Vec<(u64, u64)> = (0..n).map(|i| (i * FRAGMENT, ((i + 1) * FRAGMENT).min(TOTAL))).collect();
    let mut shuffled = in_order.clone();
    // A fixed permutation (multiplicative step coprime with n): every piece once, far apart.
    let step = 97 % n;
    shuffled.iter_mut().enumerate().for_each(|(i, p)| *p = in_order[(i as u64 * step % n) as usize]);
    group.throughput(Throughput::Elements(n));
    for (name, order) in [("cover_320_pieces_in_order", &in_order), ("cover_320_pieces_shuffled", &shuffled)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut c = Coverage::new();
                for &(a, e) in order.iter() {
                    c.insert(a, e);
                }
                assert!(c.is_complete(TOTAL));
                black_box(c)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pieces);
criterion_main!(benches);
