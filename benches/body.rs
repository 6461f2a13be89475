//! Bodies in every shape: what finding files encoded in a body costs, as the proxy does it (the
//! body read as a file, then walked for encoded files, each candidate read in turn).
//!
//! - a 1 MiB JSON body carrying the labeled corpus docx as base64 (target: decided in ≤ 2 ms);
//! - a 10 MiB JSON body with no file against a raw 10 MiB body (target: ≤ 1.2×).
//!
//! `cargo bench -p labelgate-benches --bench body`

use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use labelgate_extract::Limits;
use labelgate_unpack::{inspect_slice, UnpackLimits};
use std::hint::black_box;
use std::time::Duration;

fn labeled_docx() -> Vec<u8> {
    let path = labelgate_testkit::corpus_dir().join("files/lab_caf_identity-baseline-discipline-template.docx");
    std::fs::read(path).expect("the corpus (labelgate_testkit::corpus_dir())")
}

/// The proxy's reading of a body: the body as a file, then its encoded files, each inspected.
fn inspect_body(body: &[u8], limits: &Limits, bounds: &UnpackLimits, walk: &labelgate_body::Limits) -> usize {
    let outer = inspect_slice(body, limits, bounds);
    let mut labels = outer.all_labels().count();
    let (found, _) = labelgate_body::json_candidates(&mut std::io::Cursor::new(body), walk);
    for c in found {
        if let Ok(data) = c.data {
            labels += inspect_slice(&data, limits, bounds).all_labels().count();
        }
    }
    labels
}

fn bodies(c: &mut Criterion) {
    let limits = Limits::default();
    let bounds = UnpackLimits { hash_flagged: false, ..UnpackLimits::default() };
    let walk = labelgate_body::Limits::default();
    let docx = labeled_docx();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&docx);
    // Pad with ordinary JSON (short strings, numbers) to 1 MiB.
    let mut filler = String::new();
    let mut i = 0;
    while filler.len() + b64.len() < (1 << 20) - 200 {
        filler.push_str(&format!(r#"{{"id":{i},"text":"message number {i} in the thread","read":true}},"#));
        i += 1;
    }
    let one_mib = format!(r#"{{"history":[{}{{}}],"attachment":{{"name":"q3.docx","contentBytes":"{b64}"}}}}"#, filler);
    assert_eq!(inspect_body(one_mib.as_bytes(), &limits, &bounds, &walk), 1);

    let mut ten = String::from(r#"{"rows":["#);
    let mut n = 0;
    while ten.len() < 10 << 20 {
        ten.push_str(&format!(r#"{{"n":{n},"name":"customer {n}","note":"{}"}},"#, "lorem ipsum dolor sit amet ".repeat(12)));
        n += 1;
    }
    ten.push_str("{}]}");
    let raw: Vec<u8> = labelgate_testkit::filler(ten.len(), 9);

    let mut group = c.benchmark_group("body");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3)).sample_size(20);
    group.throughput(Throughput::Bytes(one_mib.len() as u64));
    group.bench_function("1 MiB JSON with a base64 docx", |b| {
        b.iter(|| inspect_body(black_box(one_mib.as_bytes()), &limits, &bounds, &walk))
    });
    // Its parts: the body read as a file, and the walk (with the decode of the candidate).
    group.bench_function("1 MiB JSON: the body as a file", |b| b.iter(|| inspect_slice(black_box(one_mib.as_bytes()), &limits, &bounds)));
    group.bench_function("1 MiB JSON: the walk", |b| {
        b.iter(|| labelgate_body::json_candidates(&mut std::io::Cursor::new(black_box(one_mib.as_bytes())), &walk).0.len())
    });
    group.throughput(Throughput::Bytes(ten.len() as u64));
    group.bench_function("10 MiB JSON, no file", |b| b.iter(|| inspect_body(black_box(ten.as_bytes()), &limits, &bounds, &walk)));
    group.bench_function("10 MiB JSON: the body as a file", |b| b.iter(|| inspect_slice(black_box(ten.as_bytes()), &limits, &bounds)));
    group.bench_function("10 MiB raw body", |b| b.iter(|| inspect_slice(black_box(&raw), &limits, &bounds)));
    group.finish();
}

criterion_group!(benches, bodies);
criterion_main!(benches);
