//! Every backend side by side in one run, through the same `EventStore` trait, with the peers
//! issue 12 measures them against:
//!
//! - **file**: the file store (`Store`, default options: every append fdatasynced);
//! - **sqlite**: `eventfile-sqlite` (WAL, `synchronous=FULL`);
//! - **postgres**: `eventfile-postgres` on a private PostgreSQL 15 server on a unix socket
//!   (`eventfile_postgres::testing`, or the server `EVENTFILE_TEST_POSTGRES_URL` names);
//! - **postgres-plain**: the baseline on the same server: a copy of the backend's `events` table
//!   with the same indexes and constraints and no checks, one prepared `INSERT` per event in its
//!   own autocommit transaction (with threads, one connection each), and for batches the plain
//!   loop `BEGIN; INSERT x100; COMMIT`;
//! - **postgres-sql**, **sqlite-sql**: the queries written by hand in SQL against the backend's
//!   own tables and indexes, prepared once, giving the same answer as the backend on any store
//!   (events a deletion hides left out), each row materialised into the same `RecordedEvent` the
//!   backend returns (data as raw JSON text, metadata parsed into a map, tags into a vector).
//!
//! Groups: one event per append from 1 and 16 threads (each thread on its own stream; times per
//! event), batches of 100 events (time per event), reading one stream of 100 events, a type
//! filter selecting 1,000 of 20,000 events and a tag filter selecting 400 (time per read, every
//! event collected into a `Vec`).
//! Run: `cargo bench --bench backends`. Stores live in a temporary directory on the real disk.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eventfile::{EventStore, ExpectedVersion, NewEvent, Query, Read, RecordedEvent, Store};
use eventfile_postgres::{PostgresOptions, PostgresStore};
use eventfile_sqlite::SqliteStore;
use serde_json::json;

/// A ~200-byte event, as in `append.rs`.
fn event(i: u64) -> NewEvent {
    NewEvent::new(
        format!("Type{}", i % 20),
        json!({"order": i, "sku": "SKU-000123", "qty": 2, "price_cents": 1250}),
    )
    .with_tag(format!("customer=c{}", i % 50))
}

/// The PostgreSQL server's URL, or why there is none (the PostgreSQL rows are then skipped).
fn postgres_url() -> Option<String> {
    match std::panic::catch_unwind(|| eventfile_postgres::testing::server().url().to_owned()) {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!("backends: no PostgreSQL server could start; its rows are skipped");
            None
        }
    }
}

/// The stores under test, each fresh, and what keeps them alive.
struct Stores {
    list: Vec<(&'static str, Arc<dyn EventStore>)>,
    pg: Option<(String, PostgresOptions)>,
    _dir: tempfile::TempDir,
}

impl Stores {
    fn new(tag: &str) -> Stores {
        let dir = tempfile::tempdir().unwrap();
        let mut list: Vec<(&'static str, Arc<dyn EventStore>)> = vec![
            (
                "file",
                Arc::new(Store::open(dir.path().join("file")).unwrap()),
            ),
            (
                "sqlite",
                Arc::new(SqliteStore::open(dir.path().join("events.db")).unwrap()),
            ),
        ];
        let pg = postgres_url().map(|url| {
            let options = PostgresOptions::new()
                .schema(format!("bench_{tag}_{}", std::process::id()))
                .pool_size(20);
            // Whatever an earlier run with the same pid left.
            eventfile_postgres::migrate::down(&url, &options, 0).unwrap();
            let store = PostgresStore::open_with(&url, options.clone()).unwrap();
            list.push(("postgres", Arc::new(store)));
            (url, options)
        });
        Stores {
            list,
            pg,
            _dir: dir,
        }
    }
}

impl Drop for Stores {
    fn drop(&mut self) {
        self.list.clear();
        if let Some((url, options)) = &self.pg {
            let _ = eventfile_postgres::migrate::down(url, options, 0);
        }
    }
}

/// The plain baseline's table on the server: a copy of the backend's `events` table with all
/// its indexes and constraints (`LIKE ... INCLUDING ALL`), so both sides store the same row
/// with the same index upkeep; seq and version come from sequences, with no checks.
fn plain_table(url: &str, schema: &str) -> String {
    let table = format!("plain_events_{}", std::process::id());
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table};
         DROP SEQUENCE IF EXISTS {table}_seq;
         DROP SEQUENCE IF EXISTS {table}_version;
         CREATE SEQUENCE {table}_seq;
         CREATE SEQUENCE {table}_version;
         CREATE TABLE {table} (LIKE {schema}.events INCLUDING ALL);
         ALTER TABLE {table} ALTER COLUMN seq SET DEFAULT nextval('{table}_seq');"
    ))
    .unwrap();
    table
}

/// The plain baseline's statement: one INSERT, prepared once per connection as any
/// application would.
fn plain_statement(c: &mut postgres::Client, table: &str, stream: &str) -> postgres::Statement {
    c.prepare(&format!(
        "INSERT INTO {table} (id, stream, version, type, time, data, meta, tags, more)
         VALUES ($1, '{stream}', nextval('{table}_version'), $2, 0, $3::text::json, '{{}}', $4,
                 false)"
    ))
    .unwrap()
}

fn plain_insert(c: &mut impl postgres::GenericClient, insert: &postgres::Statement, e: &NewEvent) {
    let id = uuid::Uuid::now_v7().to_string();
    let tags: Vec<String> = e.tags().to_vec();
    c.execute(insert, &[&id, &e.event_type(), &e.data_json(), &tags])
        .unwrap();
}

/// Runs `per_thread(t, n)` on `threads` threads started together, `iters` operations in all;
/// the time from the start until the last finishes.
fn run_threads(
    threads: u64,
    iters: u64,
    per_thread: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Duration {
    let per_thread = Arc::new(per_thread);
    let barrier = Arc::new(Barrier::new(threads as usize + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let n = iters / threads + u64::from(t < iters % threads);
            let (f, b) = (Arc::clone(&per_thread), Arc::clone(&barrier));
            std::thread::spawn(move || {
                b.wait();
                f(t, n);
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
                    run_threads(threads, iters, move |t, n| {
                        let stream = format!("s-{threads}-{t}");
                        for i in 0..n {
                            store
                                .append(&stream, ExpectedVersion::Any, vec![event(i)])
                                .unwrap();
                        }
                    })
                })
            });
        }
        if let Some((url, table)) = &plain {
            g.bench_function(
                BenchmarkId::new("postgres-plain", format!("{threads}-threads")),
                |b| {
                    b.iter_custom(|iters| {
                        let (url, table) = (url.clone(), table.clone());
                        run_threads(threads, iters, move |t, n| {
                            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                            let insert =
                                plain_statement(&mut c, &table, &format!("s-{threads}-{t}"));
                            for i in 0..n {
                                plain_insert(&mut c, &insert, &event(i));
                            }
                        })
                    })
                },
            );
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
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        c.batch_execute(&format!(
            "DROP TABLE {table}; DROP SEQUENCE {table}_seq; DROP SEQUENCE {table}_version"
        ))
        .unwrap();
    }
}

/// 20,000 events in 200 streams of 100 (appended in batches of 100, stream after stream),
/// 20 types: a type selects 1,000 events spread over the log.
fn fill(store: &dyn EventStore) {
    for s in 0..200u64 {
        let batch: Vec<NewEvent> = (0..100).map(|k| event(s * 100 + k)).collect();
        store
            .append(&format!("order-{s}"), ExpectedVersion::NoStream, batch)
            .unwrap();
    }
}

/// A row of the hand-written SQL, materialised as the backends materialise theirs.
#[allow(clippy::too_many_arguments)]
fn recorded(
    seq: i64,
    id: String,
    stream: String,
    version: i64,
    event_type: String,
    time: i64,
    data: String,
    meta: &str,
    tags: Vec<String>,
) -> RecordedEvent {
    RecordedEvent {
        seq: seq as u64,
        id,
        stream,
        version: version as u64,
        event_type,
        time,
        data: serde_json::value::RawValue::from_string(data).unwrap(),
        meta: serde_json::from_str(meta).unwrap(),
        tags,
    }
}

fn pg_rows(c: &mut postgres::Client, sql: &postgres::Statement, arg: &str) -> Vec<RecordedEvent> {
    c.query(sql, &[&arg])
        .unwrap()
        .into_iter()
        .map(|r| {
            recorded(
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get::<_, &str>(7),
                r.get(8),
            )
        })
        .collect()
}

fn sqlite_rows(c: &rusqlite::Connection, sql: &str, arg: &str) -> Vec<RecordedEvent> {
    let mut st = c.prepare_cached(sql).unwrap();
    st.query_map([arg], |r| {
        let tags: String = r.get(8)?;
        Ok(recorded(
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            &r.get::<_, String>(7)?,
            serde_json::from_str(&tags).unwrap(),
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn queries(c: &mut Criterion) {
    let stores = Stores::new("query");
    for (_, store) in &stores.list {
        fill(&**store);
    }
    let sqlite_path = stores._dir.path().join("events.db");
    let lite = rusqlite::Connection::open(&sqlite_path).unwrap();
    let mut pg = stores.pg.as_ref().map(|(url, options)| {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        c.batch_execute(&format!("SET search_path TO {}", options.schema_name()))
            .unwrap();
        // What autovacuum would do within a minute of the fill, done now: the statistics, and
        // the visibility map and hint bits of the new rows. Otherwise the side measured first
        // pays for setting the hint bits of every row it reads, and autovacuum may run in the
        // middle of one side's samples: both sides read a store in its steady state.
        c.batch_execute("VACUUM ANALYZE").unwrap();
        c
    });
    const COLUMNS_PG: &str = "seq, id, stream, version, type, time, data::text, meta::text, tags";
    const COLUMNS_LITE: &str = "seq, id, stream, version, type, time, data, meta, tags";

    let mut g = c.benchmark_group("backends/read-stream-100");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    for (name, store) in &stores.list {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let got: Vec<RecordedEvent> = store
                    .read_stream("order-117", Read::forward())
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert_eq!(got.len(), 100);
                got
            })
        });
    }
    // The same answer as the backend's in general: events a deletion hides are left out.
    let by_stream_lite = format!(
        "SELECT {COLUMNS_LITE} FROM events WHERE stream = ?1 AND version >= coalesce(
             (SELECT max(deleted_before) FROM deletions WHERE stream = ?1), 1)
         ORDER BY version"
    );
    g.bench_function("sqlite-sql", |b| {
        b.iter(|| {
            let got = sqlite_rows(&lite, &by_stream_lite, "order-117");
            assert_eq!(got.len(), 100);
            got
        })
    });
    if let Some(pg) = pg.as_mut() {
        let sql = pg
            .prepare(&format!(
                "SELECT {COLUMNS_PG} FROM events WHERE stream = $1 AND version >= coalesce(
                     (SELECT before FROM deletions WHERE stream = $1), 1)
                 ORDER BY version"
            ))
            .unwrap();
        g.bench_function("postgres-sql", |b| {
            b.iter(|| {
                let got = pg_rows(pg, &sql, "order-117");
                assert_eq!(got.len(), 100);
                got
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("backends/type-filter-1000");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let q = Query::new().event_type("Type7");
    for (name, store) in &stores.list {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let got: Vec<RecordedEvent> =
                    store.query(&q).unwrap().collect::<Result<_, _>>().unwrap();
                assert_eq!(got.len(), 1000);
                got
            })
        });
    }
    let by_type_lite = format!(
        "SELECT {COLUMNS_LITE} FROM events e WHERE type = ?1 AND NOT EXISTS (
             SELECT 1 FROM deletions d WHERE d.stream = e.stream AND e.version < d.deleted_before)
         ORDER BY seq"
    );
    g.bench_function("sqlite-sql", |b| {
        b.iter(|| {
            let got = sqlite_rows(&lite, &by_type_lite, "Type7");
            assert_eq!(got.len(), 1000);
            got
        })
    });
    if let Some(pg) = pg.as_mut() {
        let sql = pg
            .prepare(&format!(
                "SELECT {COLUMNS_PG} FROM events e WHERE type = $1 AND NOT EXISTS (
                     SELECT 1 FROM deletions d WHERE d.stream = e.stream AND e.version < d.before)
                 ORDER BY seq"
            ))
            .unwrap();
        g.bench_function("postgres-sql", |b| {
            b.iter(|| {
                let got = pg_rows(pg, &sql, "Type7");
                assert_eq!(got.len(), 1000);
                got
            })
        });
    }
    g.finish();

    // A tag on 2% of the events (400 of 20,000): PostgreSQL's GIN index on the tags array,
    // SQLite's (tag, seq) side table.
    let mut g = c.benchmark_group("backends/tag-filter-400");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let q = Query::new().tag("customer=c7");
    for (name, store) in &stores.list {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let got: Vec<RecordedEvent> =
                    store.query(&q).unwrap().collect::<Result<_, _>>().unwrap();
                assert_eq!(got.len(), 400);
                got
            })
        });
    }
    let by_tag_lite = format!(
        "SELECT {COLUMNS_LITE} FROM events e WHERE seq IN (SELECT seq FROM event_tags WHERE tag = ?1)
         AND NOT EXISTS (
             SELECT 1 FROM deletions d WHERE d.stream = e.stream AND e.version < d.deleted_before)
         ORDER BY seq"
    );
    g.bench_function("sqlite-sql", |b| {
        b.iter(|| {
            let got = sqlite_rows(&lite, &by_tag_lite, "customer=c7");
            assert_eq!(got.len(), 400);
            got
        })
    });
    if let Some(pg) = pg.as_mut() {
        let sql = pg
            .prepare(&format!(
                "SELECT {COLUMNS_PG} FROM events e WHERE tags @> ARRAY[$1::text] AND NOT EXISTS (
                     SELECT 1 FROM deletions d WHERE d.stream = e.stream AND e.version < d.before)
                 ORDER BY seq"
            ))
            .unwrap();
        g.bench_function("postgres-sql", |b| {
            b.iter(|| {
                let got = pg_rows(pg, &sql, "customer=c7");
                assert_eq!(got.len(), 400);
                got
            })
        });
    }
    g.finish();
}

criterion_group!(benches, appends, queries);
criterion_main!(benches);
