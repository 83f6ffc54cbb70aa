//! The benchmark data set, built the same way in eventfile and in SQLite, so both answer the
//! same queries over the same events.
//!
//! `EVENTS` events in `STREAMS` streams, appended round-robin (so every stream spreads over the
//! whole log), one event every 3.6 s of synthetic time (1,000 per hour); `TYPES` event types and
//! `CUSTOMERS` `customer=` tags, each matching 1% of the events.

#![allow(dead_code)] // each bench uses part of this module

use std::path::Path;

use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions, RecordedEvent};
use rusqlite::{Connection, params};
use serde_json::json;

pub const EVENTS: u64 = 1_000_000;
pub const STREAMS: u64 = 10_000;
pub const TYPES: u64 = 100;
pub const CUSTOMERS: u64 = 100;
pub const START: i64 = 1_700_000_000_000_000;
pub const STEP: i64 = 3_600_000;

pub fn stream(i: u64) -> String {
    format!("order-{}", i % STREAMS)
}

pub fn event_type(i: u64) -> String {
    format!("Type{}", (i / 7) % TYPES)
}

pub fn tag(i: u64) -> String {
    format!("customer=c{}", (i / 13) % CUSTOMERS)
}

/// The id of event `i` (seq `i + 1`), the same in both stores: a UUID in the hyphenated form
/// eventfile generates, 36 bytes (SQLite's rows once held `id-{seq}`, shorter ids than the
/// eventfile store's to read, copy and allocate).
pub fn event_id(i: u64) -> String {
    format!("01900000-0000-7000-8000-{:012x}", i + 1)
}

fn event(i: u64) -> NewEvent {
    NewEvent::new(
        event_type(i),
        json!({"order": i % STREAMS, "sku": "SKU-000123", "qty": 2, "price_cents": 1250}),
    )
    .with_tag(tag(i))
    .with_tag(format!("region={}", ["eu", "us", "apac"][(i % 3) as usize]))
    .with_meta_entry("actor", format!("user-{}", i % 50))
}

/// How many events the data set holds: `EVENTFILE_BENCH_EVENTS` (to shrink it for a quick
/// look), else [`EVENTS`].
pub fn events() -> u64 {
    std::env::var("EVENTFILE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EVENTS)
}

/// [`build_eventfile`], saying how long it took.
pub fn build_eventfile_timed(dir: &Path, events: u64) {
    let started = std::time::Instant::now();
    build_eventfile(dir, events);
    println!(
        "built a store of {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Builds the eventfile store (closed cleanly, so it opens from its checkpoint).
pub fn build_eventfile(dir: &Path, events: u64) {
    let next = std::sync::atomic::AtomicI64::new(START);
    let store = OpenOptions::new()
        .durability(Durability::None)
        .clock(move || next.fetch_add(STEP, std::sync::atomic::Ordering::Relaxed))
        .open(dir)
        .unwrap();
    for i in 0..events {
        store
            .append(
                &stream(i),
                ExpectedVersion::Any,
                [event(i).with_id(event_id(i))],
            )
            .unwrap();
    }
    store.close().unwrap();
}

pub const SQLITE_SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = FULL;
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        stream TEXT NOT NULL,
        version INTEGER NOT NULL,
        type TEXT NOT NULL,
        time INTEGER NOT NULL,
        data TEXT NOT NULL,
        meta TEXT NOT NULL,
        tags TEXT NOT NULL,
        UNIQUE (stream, version)
    );
    CREATE INDEX events_type ON events (type, seq);
    CREATE INDEX events_time ON events (time);
    CREATE TABLE event_tags (tag TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (tag, seq)) WITHOUT ROWID;
";

/// Builds the same events in SQLite with the indexes an event store needs.
pub fn build_sqlite(path: &Path, events: u64) -> Connection {
    let mut db = Connection::open(path).unwrap();
    db.execute_batch(SQLITE_SCHEMA).unwrap();
    let mut versions = vec![0u64; STREAMS as usize];
    let mut i = 0;
    while i < events {
        let tx = db.transaction().unwrap();
        {
            let mut ins = tx
                .prepare("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
                .unwrap();
            let mut tag_ins = tx
                .prepare("INSERT INTO event_tags VALUES (?1, ?2)")
                .unwrap();
            for i in i..(i + 10_000).min(events) {
                let e = event(i);
                let seq = i + 1;
                let v = &mut versions[(i % STREAMS) as usize];
                *v += 1;
                let tags = vec![
                    tag(i),
                    format!("region={}", ["eu", "us", "apac"][(i % 3) as usize]),
                ];
                ins.execute(params![
                    seq as i64,
                    event_id(i),
                    stream(i),
                    *v as i64,
                    e.event_type(),
                    START + i as i64 * STEP,
                    e.data_json(),
                    json!({"actor": format!("user-{}", i % 50)}).to_string(),
                    serde_json::to_string(&tags).unwrap(),
                ])
                .unwrap();
                for t in &tags {
                    tag_ins.execute(params![t, seq as i64]).unwrap();
                }
            }
        }
        tx.commit().unwrap();
        i += 10_000;
    }
    db
}

/// Reads rows of `SELECT seq, id, stream, version, type, time, data, meta, tags ...` into the
/// same values eventfile produces.
pub fn sqlite_events(db: &Connection, sql: &str, p: impl rusqlite::Params) -> Vec<RecordedEvent> {
    let mut stmt = db.prepare_cached(sql).unwrap();
    stmt.query_map(p, sqlite_row)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The rows of `sql`, each decoded into a `RecordedEvent` as [`sqlite_events`] does and
/// dropped, counted: the streamed form, for comparison with an eventfile iterator that is
/// counted rather than collected.
pub fn sqlite_streamed(db: &Connection, sql: &str, p: impl rusqlite::Params) -> usize {
    let mut stmt = db.prepare_cached(sql).unwrap();
    stmt.query_map(p, sqlite_row)
        .unwrap()
        .map(Result::unwrap)
        .count()
}

/// A row of `SELECT` decoded into a `RecordedEvent`: JSON columns parsed, the payload kept as
/// raw JSON text, as eventfile's reads produce them. Metadata and tags are parsed from
/// SQLite's own buffer (`get_ref`), as eventfile parses from its segment: copying them into a
/// `String` first would cost SQLite's side two allocations an event that eventfile's does not
/// make.
fn sqlite_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedEvent> {
    let data: String = r.get(6)?;
    let meta = r.get_ref(7)?.as_str()?;
    let tags = r.get_ref(8)?.as_str()?;
    Ok(RecordedEvent {
        seq: r.get::<_, i64>(0)? as u64,
        id: r.get(1)?,
        stream: r.get(2)?,
        version: r.get::<_, i64>(3)? as u64,
        event_type: r.get(4)?,
        time: r.get(5)?,
        data: serde_json::value::RawValue::from_string(data).unwrap(),
        meta: serde_json::from_str(meta).unwrap(),
        tags: serde_json::from_str(tags).unwrap(),
    })
}

/// FNV-1a of a string, for ids that differ per stream.
pub fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Builds a store whose active segment is full (64 MiB, the default size) and has no
/// checkpoint, as a crash leaves it; returns the segment's size.
pub fn build_full_active(dir: &Path) -> u64 {
    let store = OpenOptions::new()
        .durability(Durability::None)
        .open(dir)
        .unwrap();
    let seg = dir.join("00000000000000000001.jsonl");
    let limit = eventfile::DEFAULT_SEGMENT_BYTES - 64 * 1024;
    let mut i = 0;
    while std::fs::metadata(&seg).unwrap().len() < limit {
        for _ in 0..1000 {
            store
                .append(&stream(i), ExpectedVersion::Any, [event(i)])
                .unwrap();
            i += 1;
        }
    }
    store.close().unwrap();
    std::fs::remove_file(dir.join("00000000000000000001.idx")).unwrap();
    std::fs::metadata(&seg).unwrap().len()
}
