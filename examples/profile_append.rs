//! A CPU profile target for the append path: batches of BATCH prepared events (default 1,000),
//! without fsync, so the profile shows encoding, checksums, index maintenance and allocation.
//! `cargo build --release --example profile_append && perf record -g target/release/examples/profile_append`

mod append_batch;

use std::time::Instant;

use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions};

fn main() {
    let batch: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let events: Vec<NewEvent> = append_batch::order_items(batch);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = OpenOptions::new()
        .durability(Durability::None)
        .open(dir.path())
        .expect("open");
    let rounds = 2_000_000 / batch;
    let started = Instant::now();
    for i in 0..rounds {
        store
            .append(
                &format!("order-{}", i % 64),
                ExpectedVersion::Any,
                events.clone(),
            )
            .expect("append");
    }
    let elapsed = started.elapsed();
    println!(
        "{} events in batches of {batch}: {:.2} µs per event",
        rounds * batch,
        elapsed.as_secs_f64() * 1e6 / (rounds * batch) as f64
    );
}
