//! Label lookups per second on one core while another thread publishes a new snapshot 100 times
//! a second, for three cache designs: the arc-swap snapshot labelgate uses, a DashMap updated in
//! place, and an RwLock around the snapshot.
//!
//! `cargo bench -p labelgate-benches --bench catalog`

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dashmap::DashMap;
use labelgate_catalog::{parse_guid, Catalog, Label, LabelCache};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn labels(round: usize) -> Vec<Label> {
    (0..200)
        .map(|i| {
            let mut l = Label::new(&format!("{i:08x}-0000-4000-8000-{round:012x}"), &format!("Label {i}"));
            l.id = format!("{i:08x}-0000-4000-8000-000000000000");
            l.tenant = Some(TENANT.into());
            l.priority = i as i64;
            l
        })
        .collect()
}

/// Runs `publish` 100 times a second on another thread while the closure benchmarks.
fn with_publisher<F: Fn(usize) + Send + Sync + 'static>(publish: F, bench: impl FnOnce()) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let t = std::thread::spawn(move || {
        let mut round = 0;
        while !flag.load(Ordering::Relaxed) {
            publish(round);
            round += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    bench();
    stop.store(true, Ordering::Relaxed);
    let _ = t.join();
}

fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("catalog_lookup");
    group.throughput(Throughput::Elements(1)).measurement_time(Duration::from_secs(3));
    let ids: Vec<String> = (0..200).map(|i| format!("{i:08x}-0000-4000-8000-000000000000")).collect();

    let cache = Arc::new(LabelCache::new(Catalog::default()));
    cache.replace_account("a", labels(0));
    let writer = Arc::clone(&cache);
    with_publisher(
        move |r| writer.replace_account("a", labels(r)),
        || {
            let mut i = 0usize;
            group.bench_function("arc_swap_snapshot", |b| {
                b.iter(|| {
                    i = (i + 1) % ids.len();
                    let snap = cache.load();
                    black_box(snap.lookup(Some(TENANT), &ids[i]).map(|l| l.priority))
                })
            });
            // The hot path parses a file's label GUIDs once, then looks them up.
            let tenant = parse_guid(TENANT);
            let parsed: Vec<u128> = ids.iter().filter_map(|id| parse_guid(id)).collect();
            group.bench_function("arc_swap_snapshot_parsed", |b| {
                b.iter(|| {
                    i = (i + 1) % parsed.len();
                    let snap = cache.load();
                    black_box(snap.lookup_guid(tenant, parsed[i]).map(|l| l.priority))
                })
            });
            // A transaction loads the snapshot once and looks up each of its labels: 8 here.
            group.throughput(Throughput::Elements(8));
            group.bench_function("arc_swap_snapshot_per_transaction_8_lookups", |b| {
                b.iter(|| {
                    let snap = cache.load();
                    let mut sum = 0i64;
                    for _ in 0..8 {
                        i = (i + 1) % parsed.len();
                        sum += snap.lookup_guid(tenant, parsed[i]).map_or(0, |l| l.priority);
                    }
                    black_box(sum)
                })
            });
            group.throughput(Throughput::Elements(1));
        },
    );

    let map: Arc<DashMap<(String, String), Arc<Label>>> = Arc::new(DashMap::new());
    for l in labels(0) {
        map.insert((TENANT.to_string(), l.id.clone()), Arc::new(l));
    }
    let writer = Arc::clone(&map);
    with_publisher(
        move |r| {
            // DashMap can only update key by key: readers may see a mix of rounds.
            for l in labels(r) {
                writer.insert((TENANT.to_string(), l.id.clone()), Arc::new(l));
            }
        },
        || {
            let mut i = 0usize;
            let key: Vec<(String, String)> = ids.iter().map(|id| (TENANT.to_string(), id.clone())).collect();
            group.bench_function("dashmap_in_place", |b| {
                b.iter(|| {
                    i = (i + 1) % key.len();
                    black_box(map.get(&key[i]).map(|l| l.priority))
                })
            });
        },
    );

    let locked = Arc::new(RwLock::new(Arc::new(Catalog::build(Vec::new(), labels(0)))));
    let writer = Arc::clone(&locked);
    with_publisher(
        move |r| {
            let next = Arc::new(Catalog::build(Vec::new(), labels(r)));
            if let Ok(mut w) = writer.write() {
                *w = next;
            }
        },
        || {
            let mut i = 0usize;
            group.bench_function("rwlock_snapshot", |b| {
                b.iter(|| {
                    i = (i + 1) % ids.len();
                    let snap = locked.read().map(|g| Arc::clone(&g)).ok();
                    black_box(snap.and_then(|s| s.lookup(Some(TENANT), &ids[i]).map(|l| l.priority)))
                })
            });
        },
    );
    let _ = ArcSwap::from_pointee(0u8);
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
