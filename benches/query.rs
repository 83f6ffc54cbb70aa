//! Queries over a 1,000,000-event store in 10,000 streams, next to SQLite holding the same events
//! with the equivalent indexes, in the same run. Both sides produce `RecordedEvent`s and do the
//! same with them: a filter or a stream's read collects them into a `Vec` on both sides;
//! `read_all` drops each after decoding it (streamed) on both sides.
//!
//! Also: `read_all` of the whole log, and reopening after a crash with a full 64 MiB active
//! segment (no checkpoint: scanned).
//!
//! Run: `cargo bench --bench query` (building the two stores takes about a minute first).
//! `EVENTFILE_BENCH_EVENTS` shrinks the data set for a quick look.

mod dataset;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dataset::*;
use eventfile::{Query, Read, Store};
use rusqlite::params;

const SELECT: &str = "SELECT seq, id, stream, version, type, time, data, meta, tags FROM events";

fn queries(c: &mut Criterion) {
    let events = dataset::events();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("eventfile");
    let started = std::time::Instant::now();
    build_eventfile(&dir, events);
    eprintln!(
        "built eventfile store of {events} events in {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let db = build_sqlite(&tmp.path().join("events.sqlite"), events);
    eprintln!("built SQLite database in {:?}", started.elapsed());
    let store = Store::open_read_only(&dir).unwrap();
    let collect = |q: &Query| -> Vec<eventfile::RecordedEvent> {
        store.query(q).unwrap().map(Result::unwrap).collect()
    };

    let mut g = c.benchmark_group("query");
    g.sample_size(20).measurement_time(Duration::from_secs(4));

    // One stream of 100 events.
    let s = stream(4242);
    assert_eq!(
        store.read_stream(&s, Read::forward()).unwrap().count() as u64,
        events / STREAMS
    );
    g.bench_function("read_stream_100/eventfile", |b| {
        b.iter(|| {
            store
                .read_stream(&s, Read::forward())
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
                .len()
        })
    });
    g.bench_function("read_stream_100/sqlite", |b| {
        let sql = format!("{SELECT} WHERE stream = ?1 ORDER BY version");
        b.iter(|| sqlite_events(&db, &sql, params![s]).len())
    });

    // A type filter matching 1% of the events.
    let t = event_type(700);
    let q = Query::new().event_type(t.clone());
    let n = collect(&q).len();
    assert_eq!(
        n,
        sqlite_events(
            &db,
            &format!("{SELECT} WHERE type = ?1 ORDER BY seq"),
            params![t]
        )
        .len()
    );
    g.bench_function("type_1pct/eventfile", |b| b.iter(|| collect(&q).len()));
    g.bench_function("type_1pct/sqlite", |b| {
        let sql = format!("{SELECT} WHERE type = ?1 ORDER BY seq");
        b.iter(|| sqlite_events(&db, &sql, params![t]).len())
    });

    // One hour of events (1,000) from the middle of the log.
    let since = START + (events as i64 / 2) * STEP;
    let until = since + 3_600_000_000;
    let q = Query::new().since(since).until(until);
    // Times never go down along seqs, so ordering by the time index's key gives seq order
    // without a sort (`ORDER BY seq` made SQLite sort the hour's rows).
    let time_sql = format!("{SELECT} WHERE time >= ?1 AND time < ?2 ORDER BY time, seq");
    assert_eq!(collect(&q).len(), 1000.min(events as usize / 2));
    let ids = |events: Vec<eventfile::RecordedEvent>| -> Vec<(u64, String)> {
        events.into_iter().map(|e| (e.seq, e.id)).collect()
    };
    assert_eq!(
        ids(collect(&q)),
        ids(sqlite_events(&db, &time_sql, params![since, until]))
    );
    g.bench_function("time_1h/eventfile", |b| b.iter(|| collect(&q).len()));
    g.bench_function("time_1h/sqlite", |b| {
        b.iter(|| sqlite_events(&db, &time_sql, params![since, until]).len())
    });

    // A tag filter matching 1% of the events.
    let tg = tag(1300);
    let q = Query::new().tag(tg.clone());
    // Joined and read in the `(tag, seq)` key's order, as the SQLite backend reads a tag (the
    // `seq IN (...)` form builds a temporary index of the tag's seqs first).
    let tag_sql = "SELECT e.seq, e.id, e.stream, e.version, e.type, e.time, e.data, e.meta, \
                   e.tags FROM events e JOIN event_tags t ON t.seq = e.seq AND t.tag = ?1 \
                   ORDER BY t.seq";
    assert_eq!(
        collect(&q).len(),
        sqlite_events(&db, tag_sql, params![tg]).len()
    );
    g.bench_function("tag_1pct/eventfile", |b| b.iter(|| collect(&q).len()));
    g.bench_function("tag_1pct/sqlite", |b| {
        b.iter(|| sqlite_events(&db, tag_sql, params![tg]).len())
    });

    // Counting a type filter, without reading events.
    let q = Query::new().event_type(t.clone());
    g.bench_function("count_type/eventfile", |b| {
        b.iter(|| store.count(&q).unwrap())
    });
    g.bench_function("count_type/sqlite", |b| {
        let mut stmt = db
            .prepare_cached("SELECT COUNT(*) FROM events WHERE type = ?1")
            .unwrap();
        b.iter(|| stmt.query_row(params![t], |r| r.get::<_, i64>(0)).unwrap())
    });

    g.finish();

    // The whole log, producing `RecordedEvent`s on both sides, each dropped once decoded.
    let mut g = c.benchmark_group("read_all");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1))
        .throughput(criterion::Throughput::Elements(events));
    g.bench_function("eventfile", |b| {
        b.iter(|| {
            store
                .read_all(Read::forward())
                .unwrap()
                .map(Result::unwrap)
                .count()
        })
    });
    g.bench_function("sqlite", |b| {
        let sql = format!("{SELECT} ORDER BY seq");
        b.iter(|| sqlite_streamed(&db, &sql, []))
    });
    g.finish();

    // Opening the store cleanly (writer, and read-only beside a writer).
    let mut g = c.benchmark_group("query");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    drop(store);
    // Each open is timed alone; dropping the handle (which writes the checkpoint) is not.
    let time_opens = |iters: u64, read_only: bool| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let started = std::time::Instant::now();
            let store = if read_only {
                Store::open_read_only(&dir)
            } else {
                Store::open(&dir)
            };
            total += started.elapsed();
            drop(store.unwrap());
        }
        total
    };
    g.bench_function("open/eventfile_writer", |b| {
        b.iter_custom(|n| time_opens(n, false))
    });
    g.bench_function("open/eventfile_read_only", |b| {
        b.iter_custom(|n| time_opens(n, true))
    });
    g.finish();
}

/// Reopening after a crash with a full default-size (64 MiB) active segment and no checkpoint:
/// the whole segment is scanned and every frame checked.
fn recovery(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("eventfile");
    let bytes = build_full_active(&dir);
    let mut g = c.benchmark_group("recovery");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(6))
        .warm_up_time(Duration::from_secs(1))
        .throughput(criterion::Throughput::Bytes(bytes));
    // Read-only, so no open writes a checkpoint that would spare the next one the scan.
    g.bench_function("open_full_active_segment", |b| {
        b.iter(|| Store::open_read_only(&dir).unwrap().head_seq())
    });
    g.finish();
}

criterion_group!(benches, queries, recovery);
criterion_main!(benches);
