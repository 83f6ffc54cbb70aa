//! What deduplication costs: resident memory and time of retried appends on a store of EVENTS
//! events (each with its own id, in 10,000 streams), looked up through the id index.
//! `cargo run --release --example dedup_memory -- [EVENTS] [LOOKUPS]`.
//!
//! Prints the heap (anonymous resident memory) after opening the store and after LOOKUPS
//! retries of random old appends plus LOOKUPS fresh appends with ids; deduplication keeps no
//! memory per event, so the second figure should not move with EVENTS.

use std::time::Instant;

use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions};
use serde_json::json;

mod support;

use support::rss;

fn event(i: u64) -> NewEvent {
    NewEvent::new("Paid", json!({ "order": i, "amount": i % 1000 })).with_id(format!("pay-{i:012}"))
}

fn stream(i: u64) -> String {
    format!("order-{}", i % 10_000)
}

fn main() {
    let all: Vec<String> = std::env::args().collect();
    if all.get(1).map(String::as_str) == Some("--measure") {
        let n = |i: usize| all[i].parse::<u64>().expect("number");
        return measure(&all[2], n(3), n(4));
    }
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let lookups: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = OpenOptions::new()
            .durability(Durability::None)
            .open(dir.path())
            .expect("create");
        let started = Instant::now();
        for i in 0..events {
            store
                .append(&stream(i), ExpectedVersion::Any, [event(i)])
                .expect("append");
        }
        store.close().expect("close");
        eprintln!("built {events} events in {:?}", started.elapsed());
    }
    // Measure in a fresh process, so the allocator holds nothing from building.
    let status = std::process::Command::new(std::env::current_exe().expect("this program"))
        .arg("--measure")
        .arg(dir.path())
        .arg(events.to_string())
        .arg(lookups.to_string())
        .status()
        .expect("run measurement");
    assert!(status.success());
}

fn measure(dir: &str, events: u64, lookups: u64) {
    let base = rss();
    let store = OpenOptions::new()
        .durability(Durability::None)
        .open(dir)
        .expect("open");
    let opened = rss();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let started = Instant::now();
    for _ in 0..lookups {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = x % events;
        let r = store
            .append(&stream(i), ExpectedVersion::Any, [event(i)])
            .expect("retry");
        assert!(
            r.replayed && r.first_seq == i + 1,
            "retry of {i} not recognised"
        );
    }
    let retry_time = started.elapsed();
    let after_retries = rss();
    let started = Instant::now();
    for i in events..events + lookups {
        let r = store
            .append(&stream(i), ExpectedVersion::Any, [event(i)])
            .expect("new");
        assert!(!r.replayed);
    }
    let new_time = started.elapsed();
    let after = rss();
    let segments = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        })
        .count();
    let kib = |v: u64| v / 1024;
    println!(
        "{events} events with ids, {segments} segments: heap after open {} KiB; \
         after {lookups} retries {} KiB (+{} KiB); after {lookups} new appends with ids {} KiB; \
         mapped index and segment pages resident {} KiB",
        kib(opened.0.saturating_sub(base.0)),
        kib(after_retries.0.saturating_sub(base.0)),
        kib(after_retries.0.saturating_sub(opened.0)),
        kib(after.0.saturating_sub(base.0)),
        kib(after.1),
    );
    println!(
        "retry recognised in {:.1} µs on average; new append with an id checked and written in {:.1} µs (no fsync)",
        retry_time.as_secs_f64() * 1e6 / lookups as f64,
        new_time.as_secs_f64() * 1e6 / lookups as f64
    );
}
