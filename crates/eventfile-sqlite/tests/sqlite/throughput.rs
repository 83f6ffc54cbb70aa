//! Whether group commit pays: appends/s from 1 and 16 threads through the store, beside 16
//! threads each committing its own transaction on its own connection (what SQLite does without
//! group commit), on the real disk. A measurement, not a check: run with
//! `cargo test -p eventfile-sqlite --release --test sqlite -- --ignored --nocapture throughput`.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use eventfile::{EventStore, ExpectedVersion, NewEvent};
use eventfile_sqlite::SqliteStore;

const SECONDS: Duration = Duration::from_secs(3);

fn event() -> NewEvent {
    NewEvent::new("Measured", serde_json::json!({ "pad": "x".repeat(400) }))
}

/// Appends/s from `threads` threads running for [`SECONDS`].
fn rate(threads: usize, op: impl Fn(usize, u64) + Send + Sync + 'static) -> f64 {
    let op = Arc::new(op);
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (op, start) = (Arc::clone(&op), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let began = Instant::now();
                let mut n = 0;
                while began.elapsed() < SECONDS {
                    op(t, n);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    total as f64 / SECONDS.as_secs_f64()
}

#[test]
#[ignore = "a measurement: run by hand in release"]
fn throughput() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    for threads in [1, 16] {
        let store =
            SqliteStore::open(dir.path().join(format!("store-{threads}.db"))).expect("open");
        let r = rate(threads, move |t, _| {
            store
                .append(&format!("s-{t}"), ExpectedVersion::Any, vec![event()])
                .expect("append");
        });
        println!("eventfile-sqlite, {threads:>2} threads: {r:>8.0} appends/s");
    }
    // Without fsync: what the writer's own work costs.
    for threads in [1, 16] {
        let store = eventfile_sqlite::SqliteOptions::new()
            .synchronous(eventfile_sqlite::Synchronous::Normal)
            .open(dir.path().join(format!("normal-{threads}.db")))
            .expect("open");
        let r = rate(threads, move |t, _| {
            store
                .append(&format!("s-{t}"), ExpectedVersion::Any, vec![event()])
                .expect("append");
        });
        println!("eventfile-sqlite, synchronous=NORMAL, {threads:>2} threads: {r:>8.0} appends/s");
    }
    // The peer: one connection per thread, one transaction per append.
    let file = dir.path().join("plain.db");
    let c = rusqlite::Connection::open(&file).expect("open");
    c.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE t (seq INTEGER PRIMARY KEY, data TEXT NOT NULL);",
    )
    .expect("schema");
    drop(c);
    let conns: Vec<std::sync::Mutex<rusqlite::Connection>> = (0..16)
        .map(|_| {
            let c = rusqlite::Connection::open(&file).expect("open");
            c.busy_timeout(Duration::from_secs(30)).expect("timeout");
            c.pragma_update(None, "synchronous", "FULL").expect("sync");
            std::sync::Mutex::new(c)
        })
        .collect();
    let data = serde_json::json!({ "pad": "x".repeat(400) }).to_string();
    let r = rate(16, move |t, _| {
        let mut c = conns[t].lock().expect("lock");
        let tx = c
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("begin");
        tx.execute(
            "INSERT INTO t (seq, data) VALUES ((SELECT coalesce(max(seq), 0) + 1 FROM t), ?1)",
            [&data],
        )
        .expect("insert");
        tx.commit().expect("commit");
    });
    println!("plain SQLite (no group commit), 16 threads: {r:>8.0} appends/s");
}

/// Tags: the `event_tags` side table (what the store uses) against matching the `tags` JSON
/// column row by row, for a tag on 1% of 100,000 events.
#[test]
#[ignore = "a measurement: run by hand in release"]
fn tag_lookup() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    let file = dir.path().join("tags.db");
    let store = eventfile_sqlite::SqliteOptions::new()
        .synchronous(eventfile_sqlite::Synchronous::Normal)
        .open(&file)
        .expect("open");
    for batch in 0..100u64 {
        let events = (0..1000u64)
            .map(|i| {
                let n = batch * 1000 + i;
                NewEvent::new("T", serde_json::json!({ "n": n }))
                    .with_tag(format!("t={}", n % 100))
                    .with_tag(format!("u={}", n % 7))
            })
            .collect();
        store
            .append(&format!("s-{}", batch % 10), ExpectedVersion::Any, events)
            .expect("append");
    }
    let q = eventfile::Query::new().tag("t=7");
    let time = |f: &dyn Fn() -> u64| {
        let began = Instant::now();
        let mut n = 0;
        for _ in 0..20 {
            n = f();
        }
        (n, began.elapsed() / 20)
    };
    let (a, side) = time(&|| store.query(&q).expect("query").count() as u64);
    let c = rusqlite::Connection::open(&file).expect("open");
    let (b, json) = time(&|| {
        let mut s = c
            .prepare_cached(
                "SELECT e.seq, e.data FROM events e WHERE EXISTS \
                 (SELECT 1 FROM json_each(e.tags) WHERE value = ?1) ORDER BY e.seq",
            )
            .expect("prepare");
        s.query_map(["t=7"], |r| r.get::<_, i64>(0))
            .expect("query")
            .count() as u64
    });
    assert_eq!(a, b);
    println!(
        "tag on 1% of 100k events: side table {side:?} (whole read), JSON scan {json:?} (seqs only)"
    );
}
