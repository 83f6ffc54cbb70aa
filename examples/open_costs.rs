//! What opening a store costs: time (clean, from the checkpoint; and after a crash, scanning the
//! active segment) and resident memory, for a store of EVENTS events in STREAMS streams.
//! `cargo run --release --example open_costs -- [EVENTS] [STREAMS]`.

use std::time::Instant;

use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions, Store};
use serde_json::json;

mod support;

use support::rss;

/// In a fresh process (so the allocator holds nothing from building): open the store at `dir`
/// and print the open time and the resident memory it added.
fn measure_open(dir: &str, streams: u64) {
    let before = rss();
    let started = Instant::now();
    let store = Store::open(dir).expect("open");
    let clean = started.elapsed();
    let after = rss();
    let anon = after.0.saturating_sub(before.0);
    let file = after.1.saturating_sub(before.1);
    println!(
        "clean open: {clean:?}; resident memory: heap +{} KiB ({:.0} bytes per stream), mapped files +{} KiB",
        anon / 1024,
        anon as f64 / streams as f64,
        file / 1024
    );
    drop(store);
}

fn main() {
    let all: Vec<String> = std::env::args().collect();
    if all.get(1).map(String::as_str) == Some("--open") {
        return measure_open(&all[2], all[3].parse().expect("streams"));
    }
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let streams: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    {
        let store = OpenOptions::new()
            .durability(Durability::None)
            .open(dir.path())
            .expect("open");
        for i in 0..events {
            let e = NewEvent::new(
                "ItemAdded",
                json!({"order": i % streams, "sku": "SKU-000123", "qty": 2}),
            )
            .with_tag(format!("customer=c{}", i % 100));
            store
                .append(&format!("order-{}", i % streams), ExpectedVersion::Any, [e])
                .expect("append");
        }
        store.close().expect("close");
    }
    let segments = std::fs::read_dir(dir.path())
        .expect("list")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        })
        .count();

    println!("{events} events in {streams} streams, {segments} segments");
    let out = std::process::Command::new(std::env::current_exe().expect("this program"))
        .arg("--open")
        .arg(dir.path())
        .arg(streams.to_string())
        .output()
        .expect("measure in a fresh process");
    print!("{}", String::from_utf8_lossy(&out.stdout));

    // After a crash there is no checkpoint: the active segment is scanned.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    names.sort();
    let active = names.last().expect("a segment").clone();
    let active_bytes = std::fs::metadata(&active).expect("stat").len();
    std::fs::remove_file(active.with_extension("idx")).expect("remove checkpoint");
    let started = Instant::now();
    let store = Store::open(dir.path()).expect("open");
    let recovered = started.elapsed();
    assert_eq!(store.head_seq(), events);

    println!(
        "open after a crash, scanning a {:.1} MiB active segment: {recovered:?}",
        active_bytes as f64 / 1048576.0
    );
}
