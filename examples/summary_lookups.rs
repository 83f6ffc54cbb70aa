//! What a stream the open left in the summary costs on first use: a store of STREAMS streams
//! (one event each, in sealed segments of 1 MiB) is closed, then opened again several times,
//! and each time measures, per operation (wall time, without `fdatasync`):
//!
//! - an append to a new stream (`ExpectedVersion::NoStream`: the summary is searched, and has
//!   no record of it);
//! - `stream_version` of a stream of the summary (its record is read, nothing is loaded);
//! - the first append to a stream of the summary (its record is read and loaded).
//!
//! `cargo run --release --example summary_lookups -- [STREAMS]` (default 100,000). Prints the
//! median of the rounds for each.

use std::time::Instant;

use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions, RecordedEvent};
use serde_json::json;

/// Operations of each kind per round, and rounds.
const OPS: u64 = 10_000;
const ROUNDS: u64 = 6;

fn main() {
    let streams: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000)
        .max(OPS);
    let dir = tempfile::tempdir().expect("temp dir");
    let options = || {
        OpenOptions::new()
            .durability(Durability::None)
            .segment_bytes(1 << 20)
    };
    let store = options().open(dir.path()).expect("open");
    for chunk in 0..streams / 1000 {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_micros() as i64;
        let events: Vec<RecordedEvent> = (0..1000)
            .map(|k| RecordedEvent {
                seq: 0,
                id: uuid::Uuid::now_v7().to_string(),
                stream: format!("old-{}", chunk * 1000 + k),
                version: 1,
                event_type: "Created".into(),
                time,
                data: serde_json::value::RawValue::from_string("{\"a\":1}".into())
                    .expect("valid JSON"),
                meta: serde_json::Map::new(),
                tags: Vec::new(),
            })
            .collect();
        store.import(&events).expect("import");
    }
    store.close().expect("close");
    let count = streams / 1000 * 1000;
    let (mut new, mut first, mut version) = (Vec::new(), Vec::new(), Vec::new());
    let per_op = |t: Instant| t.elapsed().as_nanos() as u64 / OPS;
    for round in 0..ROUNDS {
        let store = options().open(dir.path()).expect("open");
        let t = Instant::now();
        for i in 0..OPS {
            let event = NewEvent::new("Created", json!({"a": 1}));
            store
                .append(
                    &format!("new-{round}-{i}"),
                    ExpectedVersion::NoStream,
                    [event],
                )
                .expect("append to a new stream");
        }
        new.push(per_op(t));
        let t = Instant::now();
        for i in 0..OPS {
            store.stream_version(&format!("old-{}", (i * 104_729 + round * 17) % count));
        }
        version.push(per_op(t));
        let t = Instant::now();
        for i in 0..OPS {
            let stream = format!("old-{}", (i * 7919 + round * 13) % count);
            let event = NewEvent::new("Next", json!({"a": 1}));
            store
                .append(&stream, ExpectedVersion::Any, [event])
                .expect("append");
        }
        first.push(per_op(t));
        store.close().expect("close");
    }
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    println!(
        "{count} streams in the summary; per operation, median of {ROUNDS} rounds: \
         append to a new stream {} ns, stream_version of a stream of the summary {} ns, \
         first append to a stream of the summary {} ns",
        median(&mut new),
        median(&mut version),
        median(&mut first)
    );
}
