//! Durable appends, next to the physical limit and SQLite measured in the same run:
//!
//! - the raw loop writes the same JSON lines to a file and `fdatasync`s after each append (with
//!   threads, each thread its own file: what the disk allows in parallel);
//! - SQLite (rusqlite, bundled, WAL, `synchronous=FULL`) inserts the same events into a table with
//!   the indexes an event store needs, one transaction per append (with threads, one connection
//!   shared behind a mutex: SQLite has one writer at a time).
//!
//! Groups: 1 event per append from 1, 4 and 16 threads (each on its own streams); batches of 10,
//! 100 and 1,000 events from one thread, and beside the 1,000-event batch to one stream the bulk
//! loads of 1,000 events each in a new stream (`append_multi`, and `import` with `import` into one
//! stream as its peer). `batch_no_sync` runs the 1,000-event cases without `fdatasync`: the
//! engine's own work, which a busy disk's sync times hide. Every figure is time per event;
//! criterion's throughput line gives events per second. Both sides of a comparison do the same
//! work outside the store: events and stream names made before the clock starts, a copy of the
//! event given to the store and dropped inside the timed part. Run: `cargo bench --bench append`. Stores live in a temporary
//! directory on the real disk (`TMPDIR` decides which).

mod dataset;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eventfile::{Durability, ExpectedVersion, NewEvent, RecordedEvent, Store, StreamAppend};
use rusqlite::{Connection, params};
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

/// A SQLite database with the event table and its indexes, tuned for durable appends.
fn sqlite(path: &Path) -> Connection {
    let db = Connection::open(path).unwrap();
    // The same table and indexes as the query benchmarks' data set.
    db.execute_batch(dataset::SQLITE_SCHEMA).unwrap();
    db
}

/// The eight stream names appender `k` appends to in turn.
fn thread_streams(k: u64) -> Vec<String> {
    (0..8).map(|s| format!("t{k}-{s}")).collect()
}

/// Inserts prepared `events` of `stream` from `version + 1` as one durable transaction.
fn sqlite_insert(db: &mut Connection, stream: &str, version: u64, events: &[NewEvent], i: u64) {
    let tx = db
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    {
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO events (id, stream, version, type, time, data, meta, tags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, '{}', '[]')",
            )
            .unwrap();
        for (k, e) in (0u64..).zip(events) {
            ins.execute(params![
                uuid_like(i + k, stream),
                stream,
                (version + 1 + k) as i64,
                e.event_type(),
                1_700_000_000_000_000i64 + (i + k) as i64,
                e.data_json(),
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// A unique id per (stream, i), as long as a UUID.
fn uuid_like(i: u64, stream: &str) -> String {
    format!("{:08x}-0000-7000-8000-{:012x}", i, dataset::hash(stream))
}

/// `threads` appenders splitting `iters` appends between them exactly (criterion divides the
/// time by `iters`: rounding each thread's share up charged up to `threads - 1` appends too
/// many); `append(t, i)` does one. The time returned covers all of them, so criterion reports
/// time per append.
fn run_threads<F>(threads: u64, iters: u64, mut make: impl FnMut(u64) -> F) -> Duration
where
    F: FnMut(u64) + Send,
{
    let barrier = Barrier::new(threads as usize + 1);
    let workers: Vec<F> = (0..threads).map(&mut make).collect();
    std::thread::scope(|s| {
        for (t, mut work) in (0..threads).zip(workers) {
            let barrier = &barrier;
            let per = iters / threads + u64::from(t < iters % threads);
            s.spawn(move || {
                barrier.wait();
                for i in 0..per {
                    work(i);
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

fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable_append_threads");
    g.throughput(Throughput::Elements(1))
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let line = sample_line();
    for threads in [1u64, 4, 16] {
        g.bench_with_input(BenchmarkId::new("raw", threads), &threads, |b, &t| {
            let dir = tempfile::tempdir().unwrap();
            let files: Vec<std::fs::File> = (0..t)
                .map(|k| {
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.path().join(format!("raw-{k}.jsonl")))
                        .unwrap()
                })
                .collect();
            b.iter_custom(|iters| {
                let mut files = files.iter();
                run_threads(t, iters, |_| {
                    let mut f = files.next().unwrap();
                    let line = &line;
                    move |_| {
                        f.write_all(line).unwrap();
                        f.sync_data().unwrap();
                    }
                })
            });
        });
        // Each appender's stream names and event are made before the clock starts, on every
        // side: the raw loop writes a line made beforehand, and the caller's cost of building
        // an event is not the store's. The event is cloned per append (the store takes it).
        let proto = event(1);
        g.bench_with_input(BenchmarkId::new("eventfile", threads), &threads, |b, &t| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            b.iter_custom(|iters| {
                run_threads(t, iters, |k| {
                    let store = store.clone();
                    let streams = thread_streams(k);
                    let proto = &proto;
                    move |i| {
                        store
                            .append(
                                &streams[(i % 8) as usize],
                                ExpectedVersion::Any,
                                [proto.clone()],
                            )
                            .unwrap();
                    }
                })
            });
        });
        // One connection shared behind a mutex: SQLite has one writer at a time anyway, and with
        // a connection per thread its busy handler sleeps (16 threads took 200 ms per event).
        g.bench_with_input(BenchmarkId::new("sqlite", threads), &threads, |b, &t| {
            let dir = tempfile::tempdir().unwrap();
            let db = std::sync::Mutex::new(sqlite(&dir.path().join("events.sqlite")));
            let mut versions: Vec<Vec<u64>> = (0..t).map(|_| vec![0u64; 8]).collect();
            let mut round = 0u64;
            b.iter_custom(|iters| {
                round += 1;
                let db = &db;
                let mut versions = versions.iter_mut();
                run_threads(t, iters, |k| {
                    let versions = versions.next().unwrap();
                    let streams = thread_streams(k);
                    let proto = &proto;
                    move |i| {
                        let s = (i % 8) as usize;
                        // Cloned before the lock, as each eventfile appender clones its event
                        // on its own thread.
                        let events = [proto.clone()];
                        let mut db = db.lock().unwrap();
                        sqlite_insert(&mut db, &streams[s], versions[s], &events, round << 32 | i);
                        drop(db);
                        versions[s] += 1;
                    }
                })
            });
        });
    }
    g.finish();
}

fn batches(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable_batch");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let line = sample_line();
    for n in [10u64, 100, 1000] {
        g.throughput(Throughput::Elements(n));
        let bytes = line.repeat(n as usize);
        g.bench_with_input(BenchmarkId::new("raw", n), &n, |b, _| {
            let dir = tempfile::tempdir().unwrap();
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join("raw.jsonl"))
                .unwrap();
            b.iter(|| {
                f.write_all(&bytes).unwrap();
                f.sync_data().unwrap();
            });
        });
        // The events are made outside the timed part, on both sides: the caller's cost.
        let prepared: Vec<NewEvent> = (0..n).map(event).collect();
        let durable = |dir: &Path| Store::open(dir).unwrap();
        one_stream(&mut g, n, &prepared, durable);
        if n == 1000 {
            new_streams(&mut g, n, &prepared, durable);
        }
        g.bench_with_input(BenchmarkId::new("sqlite", n), &n, |b, &n| {
            let dir = tempfile::tempdir().unwrap();
            let mut db = sqlite(&dir.path().join("events.sqlite"));
            let mut versions = vec![0u64; 64];
            let mut i = 0;
            // Given its own copy of the events and dropping it inside the timed part, as
            // eventfile's `append` takes its batch and drops it.
            b.iter_batched(
                || prepared.to_vec(),
                |events| {
                    i += 1;
                    let s = (i % 64) as usize;
                    sqlite_insert(&mut db, &format!("order-{s}"), versions[s], &events, i * n);
                    drop(events);
                    versions[s] += n;
                },
                criterion::BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Batches of the `n` `prepared` events appended to one stream (of 64 in turn), on a store
/// `open` makes. The events are copied outside the timed part: the caller's cost.
fn one_stream(g: &mut Group<'_>, n: u64, prepared: &[NewEvent], open: impl Fn(&Path) -> Store) {
    g.bench_with_input(BenchmarkId::new("eventfile", n), &n, |b, _| {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut i = 0;
        b.iter_batched(
            || prepared.to_vec(),
            |events| {
                i += 1;
                store
                    .append(&format!("order-{}", i % 64), ExpectedVersion::Any, events)
                    .unwrap()
            },
            criterion::BatchSize::SmallInput,
        );
    });
}

/// Bulk loads beside the single-stream batch of the same size, in the same group: `n` events
/// each in a stream of its own that did not exist before (`append_multi`, one part per stream),
/// and the same through `import` (what `eventfile import` and `eventfile generate` call), with
/// `import` of `n` events into one stream as its single-stream peer. The requests are built
/// outside the timed part, as for the single-stream batch.
fn new_streams(g: &mut Group<'_>, n: u64, prepared: &[NewEvent], open: impl Fn(&Path) -> Store) {
    g.bench_with_input(BenchmarkId::new("eventfile_new_streams", n), &n, |b, _| {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut round = 0u64;
        b.iter_batched(
            || {
                round += 1;
                let parts: Vec<StreamAppend> = (0..prepared.len())
                    .zip(prepared)
                    .map(|(k, e)| {
                        StreamAppend::new(
                            format!("order-{round}-{k}"),
                            ExpectedVersion::NoStream,
                            [e.clone()],
                        )
                    })
                    .collect();
                parts
            },
            |parts| store.append_multi(&parts).unwrap(),
            criterion::BatchSize::SmallInput,
        );
    });
    for (name, into_one) in [("import_one_stream", true), ("import_new_streams", false)] {
        g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path());
            let mut round = 0u64;
            b.iter_batched(
                || {
                    round += 1;
                    recorded(prepared, round, into_one)
                },
                |events| store.import(&events).unwrap(),
                criterion::BatchSize::SmallInput,
            );
        });
    }
}

/// `events` as another store recorded them, for the `round`-th import: fresh ids, the time now,
/// and either one stream continuing from the previous round or a new stream per event.
fn recorded(events: &[NewEvent], round: u64, one_stream: bool) -> Vec<RecordedEvent> {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let n = events.len() as u64;
    (0..n)
        .zip(events)
        .map(|(k, e)| {
            let (stream, version) = if one_stream {
                ("order-1".to_owned(), (round - 1) * n + k + 1)
            } else {
                (format!("order-{round}-{k}"), 1)
            };
            RecordedEvent {
                seq: 0,
                id: uuid::Uuid::now_v7().to_string(),
                stream,
                version,
                event_type: e.event_type().to_owned(),
                time,
                data: serde_json::value::RawValue::from_string(e.data_json().to_owned()).unwrap(),
                meta: serde_json::Map::new(),
                tags: Vec::new(),
            }
        })
        .collect()
}

/// The engine's own work per batch of 1,000, without `fdatasync` ([`Durability::None`]): the
/// single-stream append beside the bulk loads of 1,000 new streams, as in `durable_batch` but
/// without the disk's time, which on a busy disk hides the difference.
fn batches_no_sync(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_no_sync");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let n = 1000u64;
    g.throughput(Throughput::Elements(n));
    let prepared: Vec<NewEvent> = (0..n).map(event).collect();
    let no_sync = |dir: &Path| {
        eventfile::OpenOptions::new()
            .durability(Durability::None)
            .open(dir)
            .unwrap()
    };
    one_stream(&mut g, n, &prepared, no_sync);
    new_streams(&mut g, n, &prepared, no_sync);
    g.finish();
}

criterion_group!(benches, threads, batches, batches_no_sync);
criterion_main!(benches);
