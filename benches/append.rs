//! Durable appends, next to the physical limit measured in the same run: a raw loop that writes
//! the same JSON lines to a file and `fdatasync`s after each one.
//!
//! Every figure is time per event; criterion's throughput line gives events per second.
//! Run: `cargo bench --bench append`. Stores live in a temporary directory on the real disk
//! (`TMPDIR` decides which).

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eventfile::{ExpectedVersion, NewEvent, Store};
use serde_json::json;

/// A ~200-byte event, the size the FIELD figures were measured with.
fn event(i: u64) -> NewEvent {
    NewEvent::new(
        "ItemAdded",
        json!({"order": i, "sku": "SKU-000123", "qty": 2, "price_cents": 1250}),
    )
}

/// The line eventfile writes for `event(i)`, so the raw loop writes the same bytes.
fn sample_line() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .append("order-1", ExpectedVersion::Any, [event(1)])
        .unwrap();
    let seg = std::fs::read(dir.path().join("00000000000000000001.jsonl")).unwrap();
    let line = seg
        .split_inclusive(|&b| b == b'\n')
        .nth(1)
        .unwrap()
        .to_vec();
    assert!(line.len() > 150, "sample line is {} bytes", line.len());
    line
}

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable_append_1_thread");
    g.throughput(Throughput::Elements(1))
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));

    let line = sample_line();
    g.bench_function("raw_write_fdatasync", |b| {
        let dir = tempfile::tempdir().unwrap();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("raw.jsonl"))
            .unwrap();
        b.iter(|| {
            f.write_all(&line).unwrap();
            f.sync_data().unwrap();
        });
    });

    g.bench_function("eventfile", |b| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut i = 0;
        b.iter(|| {
            i += 1;
            store
                .append("order-1", ExpectedVersion::Any, [event(i)])
                .unwrap()
        });
    });
    g.finish();
}

/// `threads` appenders, each on its own streams, splitting `iters` events between them; the
/// time returned covers all of them, so criterion reports time per event.
fn run_threads(store: &Store, threads: u64, iters: u64) -> Duration {
    let per = iters.div_ceil(threads);
    let barrier = Barrier::new(threads as usize + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let store = store.clone();
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for i in 0..per {
                    let stream = format!("t{t}-{}", i % 8);
                    store
                        .append(&stream, ExpectedVersion::Any, [event(i)])
                        .unwrap();
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn many_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable_append_threads");
    g.throughput(Throughput::Elements(1))
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for threads in [1u64, 4, 16] {
        g.bench_with_input(BenchmarkId::new("eventfile", threads), &threads, |b, &t| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            b.iter_custom(|iters| run_threads(&store, t, iters));
        });
    }
    g.finish();
}

criterion_group!(benches, single_thread, many_threads);
criterion_main!(benches);
