//! Every backend side by side in one run, through the same `EventStore` trait, with the peers
//! issue 12 measures them against:
//!
//! - **file**: the file store (`Store`, default options: every append fdatasynced);
//! - **sqlite**: `eventfile-sqlite` (WAL, `synchronous=FULL`);
//! - **postgres**: `eventfile-postgres` on a private PostgreSQL 15 server on a unix socket
//!   (`eventfile_postgres::testing`, or the server `EVENTFILE_TEST_POSTGRES_URL` names);
//! - **postgres-plain**: the baseline on the same server: a copy of the backend's `events` table
//!   with the same indexes and constraints and no checks, one prepared `INSERT` per event in its
//!   own autocommit transaction (one round trip; with threads, one connection each, connected
//!   before the timing starts), and for batches the plain loop `BEGIN; INSERT x100; COMMIT`;
//! - **postgres-plain-tx** (1 thread): the same INSERT in a transaction of its own, as an
//!   application writes one (`client.transaction()`, `execute`, `commit`: `BEGIN`, the INSERT,
//!   `COMMIT`, three round trips), the literal reading of issue 12's "plain one-INSERT-per-event
//!   transaction";
//! - **postgres-sql**, **sqlite-sql**: the queries written by hand in SQL against the backend's
//!   own tables and indexes (`peers.rs`), prepared once, giving the same answer as the backend
//!   on any store (events a deletion hides left out). Both sides do the same work: the hand side
//!   reads every column with a fallible getter and decodes each row into the same
//!   `RecordedEvent` the backend returns (data as raw JSON text, metadata parsed into a map, tags
//!   into a vector), an error handed back rather than a panic; both collect with
//!   `collect::<Result<Vec<_>, _>>()` (the backend's `EventIter` as the `EventStore` API gives
//!   it), neither reserving the `Vec`.
//!
//! Groups: one event per append from 1 and 16 threads (each thread on its own stream; times per
//! event), batches of 100 events (time per batch), reading one stream of 100 events, a type
//! filter selecting 1,000 of 20,000 events and a tag filter selecting 400 (time per read, every
//! event collected into a `Vec`).
//! Run: `cargo bench --bench backends`. Stores live in a temporary directory on the real disk.
//!
//! Criterion runs its groups one after the other, so on a shared machine a ratio between two
//! of them moves with the load; `backends_alt.rs` measures the pairs the targets compare
//! alternately, and its ratios are the ones to go by.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eventfile::{EventStore, ExpectedVersion, NewEvent, Query, Read, RecordedEvent};
use peers::*;

mod peers;

/// A read through the `EventStore` API.
type Reader = fn(&dyn EventStore) -> eventfile::Result<eventfile::EventIter>;

/// Runs `per_thread(&mut setup(t), n)` on `threads` threads started together, `iters`
/// operations in all; the time from the start (every thread's `setup` done: a peer's
/// connection is not timed) until the last finishes.
fn run_threads<S>(
    threads: u64,
    iters: u64,
    setup: impl Fn(u64) -> S + Send + Sync + 'static,
    per_thread: impl Fn(&mut S, u64) + Send + Sync + 'static,
) -> Duration {
    let (setup, per_thread) = (Arc::new(setup), Arc::new(per_thread));
    let barrier = Arc::new(Barrier::new(threads as usize + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let n = iters / threads + u64::from(t < iters % threads);
            let (s, f, b) = (
                Arc::clone(&setup),
                Arc::clone(&per_thread),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                let mut state = s(t);
                b.wait();
                f(&mut state, n);
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

fn appends(c: &mut Criterion) {
    let stores = Stores::new("append");
    let plain = stores
        .pg
        .as_ref()
        .map(|(url, options)| (url.clone(), plain_table(url, options.schema_name())));
    let mut g = c.benchmark_group("backends/append");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
    for threads in [1u64, 16] {
        for (name, store) in &stores.list {
            g.bench_function(BenchmarkId::new(*name, format!("{threads}-threads")), |b| {
                b.iter_custom(|iters| {
                    let store = Arc::clone(store);
                    run_threads(
                        threads,
                        iters,
                        move |t| format!("s-{threads}-{t}"),
                        move |stream, n| {
                            for i in 0..n {
                                store
                                    .append(stream, ExpectedVersion::Any, vec![event(i)])
                                    .unwrap();
                            }
                        },
                    )
                })
            });
        }
        if let Some((url, table)) = &plain {
            // The autocommit INSERT (one round trip), and for one thread also the INSERT in a
            // transaction of its own as an application writes it (`BEGIN`, INSERT, `COMMIT`).
            let peers: &[(&str, PlainInsert)] = if threads == 1 {
                &[
                    ("postgres-plain", plain_insert),
                    ("postgres-plain-tx", plain_insert_tx),
                ]
            } else {
                &[("postgres-plain", plain_insert)]
            };
            for &(name, insert_one) in peers {
                g.bench_function(BenchmarkId::new(name, format!("{threads}-threads")), |b| {
                    b.iter_custom(|iters| {
                        let (url, table) = (url.clone(), table.clone());
                        run_threads(
                            threads,
                            iters,
                            move |t| {
                                let mut c =
                                    postgres::Client::connect(&url, postgres::NoTls).unwrap();
                                let insert =
                                    plain_statement(&mut c, &table, &format!("s-{threads}-{t}"));
                                (c, insert)
                            },
                            move |(c, insert), n| {
                                for i in 0..n {
                                    insert_one(c, insert, &event(i));
                                }
                            },
                        )
                    })
                });
            }
        }
    }
    g.finish();

    let mut g = c.benchmark_group("backends/batch-100");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(100));
    for (name, store) in &stores.list {
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for i in 0..iters {
                    let batch: Vec<NewEvent> = (0..100).map(|k| event(i * 100 + k)).collect();
                    store
                        .append("batches", ExpectedVersion::Any, batch)
                        .unwrap();
                }
                start.elapsed()
            })
        });
    }
    if let Some((url, table)) = &plain {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let insert = plain_statement(&mut client, table, "batches");
        g.bench_function("postgres-plain", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for i in 0..iters {
                    let mut tx = client.transaction().unwrap();
                    for k in 0..100 {
                        plain_insert(&mut tx, &insert, &event(i * 100 + k));
                    }
                    tx.commit().unwrap();
                }
                start.elapsed()
            })
        });
    }
    g.finish();
    if let Some((url, table)) = &plain {
        drop_plain_table(url, table);
    }
}

fn queries(c: &mut Criterion) {
    let stores = Stores::new("query");
    for (_, store) in &stores.list {
        fill(&**store);
    }
    let lite = rusqlite::Connection::open(stores.dir.path().join("events.db")).unwrap();
    let mut pg = stores.pg.as_ref().map(|(url, options)| {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        c.batch_execute(&format!("SET search_path TO {}", options.schema_name()))
            .unwrap();
        // What autovacuum would do within a minute of the fill, done now: the statistics, and
        // the visibility map and hint bits of the new rows. Otherwise the side measured first
        // pays for setting the hint bits of every row it reads, and autovacuum may run in the
        // middle of one side's samples: both sides read a store in its steady state.
        c.batch_execute("VACUUM ANALYZE").unwrap();
        let statements = pg_sql().map(|sql| c.prepare(&sql).unwrap());
        (c, statements)
    });
    let lite_sql = sqlite_sql();
    // Group, what the backend is asked, the hand queries' index and argument, events.
    let reads: [(&str, Reader, usize, &str, usize); 3] = [
        (
            "backends/read-stream-100",
            |s| s.read_stream(STREAM, Read::forward()),
            0,
            STREAM,
            100,
        ),
        (
            "backends/type-filter-1000",
            |s| s.query(&Query::new().event_type(TYPE)),
            1,
            TYPE,
            1000,
        ),
        // A tag on 2% of the events: PostgreSQL's GIN index on the tags array, SQLite's
        // (tag, seq) side table.
        (
            "backends/tag-filter-400",
            |s| s.query(&Query::new().tag(TAG)),
            2,
            TAG,
            400,
        ),
    ];
    for (group, read, at, arg, n) in &reads {
        let mut g = c.benchmark_group(*group);
        g.sample_size(20).measurement_time(Duration::from_secs(3));
        for (name, store) in &stores.list {
            g.bench_function(*name, |b| {
                b.iter(|| {
                    let got: Vec<RecordedEvent> =
                        read(&**store).unwrap().collect::<Result<_, _>>().unwrap();
                    assert_eq!(got.len(), *n);
                    got
                })
            });
        }
        g.bench_function("sqlite-sql", |b| {
            b.iter(|| {
                let got = sqlite_events(&lite, &lite_sql[*at], arg, *at == 0).unwrap();
                assert_eq!(got.len(), *n);
                got
            })
        });
        if let Some((client, statements)) = pg.as_mut() {
            g.bench_function("postgres-sql", |b| {
                b.iter(|| {
                    let got = pg_events(client, &statements[*at], arg, *at == 0).unwrap();
                    assert_eq!(got.len(), *n);
                    got
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, appends, queries);
criterion_main!(benches);
