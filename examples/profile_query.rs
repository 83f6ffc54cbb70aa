//! Builds a store and runs one query many times: a target for `perf record` or callgrind when
//! tuning the read path. `cargo run --release --example profile_query -- [EVENTS] [ROUNDS]`.

use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions, Query, Store};
use serde_json::json;

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = OpenOptions::new()
        .durability(Durability::None)
        .open(dir.path())
        .expect("open");
    for i in 0..events {
        let e = NewEvent::new(
            format!("Type{}", (i / 7) % 100),
            json!({"order": i % 10_000, "sku": "SKU-000123", "qty": 2}),
        )
        .with_tag(format!("customer=c{}", (i / 13) % 100))
        .with_meta_entry("actor", format!("user-{}", i % 50));
        store
            .append(&format!("order-{}", i % 10_000), ExpectedVersion::Any, [e])
            .expect("append");
    }
    store.close().expect("close");
    let store = Store::open_read_only(dir.path()).expect("open");
    let q = Query::new().event_type("Type7");
    let started = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..rounds {
        for event in store.query(&q).expect("query") {
            event.expect("event");
            n += 1;
        }
    }
    eprintln!(
        "{n} events in {:?} ({:?} per event)",
        started.elapsed(),
        started.elapsed() / n as u32
    );
}
