//! The append throughput targets, against plain `INSERT`s on the same server in the same run
//! (ignored by default: a measurement, run with `cargo test --release -p eventfile-postgres
//! --test throughput -- --ignored --nocapture`, best with `EVENTFILE_TEST_POSTGRES_URL` naming
//! a server with its production settings):
//! - one event per append, one thread: at least 0.8 times a plain autocommit `INSERT`;
//! - 16 threads: at least 3 times one thread;
//! - batches of 100 events: at least 2 times a loop of 100 `INSERT`s in one transaction.

use std::time::{Duration, Instant};

use eventfile::{EventStore, ExpectedVersion, NewEvent};
use eventfile_postgres::testing::{fresh_schema, server};

fn event(i: usize) -> NewEvent {
    NewEvent::new(
        "ItemAdded",
        serde_json::json!({ "order": i, "sku": "SKU-000123", "qty": 2, "price": 19.99,
                            "note": "x".repeat(120) }),
    )
    .with_tag(format!("order={}", i % 100))
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn plain(table: &str) -> postgres::Client {
    let mut c = postgres::Client::connect(server().url(), postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (seq bigserial PRIMARY KEY, \
         stream text, type text, data json)"
    ))
    .unwrap();
    c
}

#[test]
#[ignore = "a measurement: run it on its own, in release mode"]
fn append_throughput_meets_its_targets() {
    let n = 2000;
    let data = serde_json::to_string(event(0).data()).unwrap();

    let mut c = plain("plain_single");
    let stmt = c
        .prepare("INSERT INTO plain_single (stream, type, data) VALUES ($1, $2, $3::text::json)")
        .unwrap();
    let t = Instant::now();
    for i in 0..n {
        c.execute(&stmt, &[&format!("s-{}", i % 100), &"ItemAdded", &data])
            .unwrap();
    }
    let plain_single = per_sec(n, t.elapsed());

    let (store, _guard) = fresh_schema();
    let t = Instant::now();
    for i in 0..n {
        store
            .append(
                &format!("s-{}", i % 100),
                ExpectedVersion::Any,
                vec![event(i)],
            )
            .unwrap();
    }
    let one_thread = per_sec(n, t.elapsed());

    let t = Instant::now();
    let threads: Vec<_> = (0..16)
        .map(|k| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..n / 4 {
                    store
                        .append(
                            &format!("t{k}-{}", i % 10),
                            ExpectedVersion::Any,
                            vec![event(i)],
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let sixteen = per_sec(16 * (n / 4), t.elapsed());

    let batches = 50;
    let mut c = plain("plain_batch");
    let stmt = c
        .prepare("INSERT INTO plain_batch (stream, type, data) VALUES ($1, $2, $3::text::json)")
        .unwrap();
    let t = Instant::now();
    for b in 0..batches {
        let mut tx = c.transaction().unwrap();
        for _ in 0..100 {
            tx.execute(&stmt, &[&format!("b-{b}"), &"ItemAdded", &data])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let plain_batch = per_sec(batches * 100, t.elapsed());
    let t = Instant::now();
    for b in 0..batches {
        store
            .append(
                &format!("b-{b}"),
                ExpectedVersion::Any,
                (0..100).map(event).collect(),
            )
            .unwrap();
    }
    let batch = per_sec(batches * 100, t.elapsed());

    println!("plain INSERT, autocommit:       {plain_single:>10.0} rows/s");
    println!(
        "append, 1 event, 1 thread:      {one_thread:>10.0} events/s ({:.2}x)",
        one_thread / plain_single
    );
    println!(
        "append, 1 event, 16 threads:    {sixteen:>10.0} events/s ({:.2}x one thread)",
        sixteen / one_thread
    );
    println!("plain INSERT loop of 100 in tx: {plain_batch:>10.0} rows/s");
    println!(
        "append, batches of 100:         {batch:>10.0} events/s ({:.2}x)",
        batch / plain_batch
    );
    assert!(one_thread >= 0.8 * plain_single);
    assert!(sixteen >= 3.0 * one_thread);
    assert!(batch >= 2.0 * plain_batch);
}
