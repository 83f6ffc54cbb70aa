//! Reads a store over and over, for `perf record` when tuning the read path:
//! `cargo run --release --example profile_read -- DIR [all|stream] [ROUNDS] [EVENTS]`.
//!
//! `DIR` is built first (the bench data set's shape: 10,000 streams round-robin) if it holds no
//! store; `all` reads the whole log and drops each event (the `read_all` bench), `stream` reads
//! one 100-event stream into a `Vec` (the `read_stream_100` bench).

use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions, Read, Store};
use serde_json::json;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next()
            .expect("usage: DIR [all|stream] [ROUNDS] [EVENTS]"),
    );
    let mode = args.next().unwrap_or_else(|| "all".into());
    let rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let events: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    if !dir.join("store.json").exists()
        && std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none())
    {
        let store = OpenOptions::new()
            .durability(Durability::None)
            .open(&dir)
            .expect("open");
        for i in 0..events {
            let e = NewEvent::new(
                format!("Type{}", (i / 7) % 100),
                json!({"order": i % 10_000, "sku": "SKU-000123", "qty": 2, "price_cents": 1250}),
            )
            .with_tag(format!("customer=c{}", (i / 13) % 100))
            .with_tag(format!("region={}", ["eu", "us", "apac"][(i % 3) as usize]))
            .with_meta_entry("actor", format!("user-{}", i % 50));
            store
                .append(&format!("order-{}", i % 10_000), ExpectedVersion::Any, [e])
                .expect("append");
        }
        store.close().expect("close");
    }
    let store = Store::open_read_only(&dir).expect("open");
    let started = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..rounds {
        n += match mode.as_str() {
            "stream" => store
                .read_stream("order-4242", Read::forward())
                .expect("read")
                .map(|e| e.expect("event"))
                .collect::<Vec<_>>()
                .len(),
            _ => {
                let mut n = 0;
                for e in store.read_all(Read::forward()).expect("read") {
                    e.expect("event");
                    n += 1;
                }
                n
            }
        };
    }
    eprintln!(
        "{n} events in {:?} ({:?} per event)",
        started.elapsed(),
        started.elapsed() / n.max(1) as u32
    );
}
