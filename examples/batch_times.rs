//! Wall time of each durable 1,000-event append to one stream, and how much of the total the
//! appends that rolled a segment took: `batch_times [ROUNDS]` (default 1,500 batches, about
//! five 64 MiB segments). A measurement aid for issue 16 item 5 (`docs/performance.md`).

use std::time::Instant;

use eventfile::{ExpectedVersion, NewEvent, Store};
use serde_json::json;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1500);
    let events: Vec<NewEvent> = (0..1000u64)
        .map(|i| {
            NewEvent::new(
                "ItemAdded",
                json!({"order": i, "sku": "SKU-000123", "qty": 2, "price_cents": 1250}),
            )
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    let segments = || {
        std::fs::read_dir(dir.path())
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            })
            .count()
    };
    let mut times = Vec::with_capacity(rounds);
    let mut rolled = Vec::new();
    let mut before = segments();
    for i in 0..rounds {
        let batch = events.clone();
        let t = Instant::now();
        store
            .append(&format!("order-{}", i % 64), ExpectedVersion::Any, batch)
            .expect("append");
        let us = t.elapsed().as_secs_f64() * 1e6;
        times.push(us);
        if i % 50 == 49 || i + 1 == rounds {
            let now = segments();
            if now != before {
                // The roll happened somewhere in the last 50: take the slowest of them.
                let from = times.len().saturating_sub(50);
                let (k, _) = times[from..]
                    .iter()
                    .enumerate()
                    .fold((0, 0.0f64), |m, (k, &v)| if v > m.1 { (k, v) } else { m });
                rolled.push(times[from + k]);
                before = now;
            }
        }
    }
    let total: f64 = times.iter().sum();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{rounds} batches: mean {:.0} µs, median {:.0} µs, p90 {:.0} µs; {} rolls, slowest batch of each: {:?} µs ({:.1}% of the total)",
        total / rounds as f64,
        sorted[rounds / 2],
        sorted[rounds * 9 / 10],
        rolled.len(),
        rolled.iter().map(|v| v.round()).collect::<Vec<_>>(),
        rolled.iter().sum::<f64>() * 100.0 / total
    );
}
