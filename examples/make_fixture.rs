//! Writes the compatibility fixture (see "Compatibility fixture" in `docs/format.md`): a small
//! store made by this version of eventfile, which every later version must open, verify and
//! read identically.
//!
//! `cargo run --example make_fixture -- tests/fixtures/v2` writes, for a path `P`:
//!
//! * `P/`: the store, closed cleanly (its active segment has a checkpoint);
//! * `P-unclean/`: a copy of the same store taken before the close (no checkpoint, as after a
//!   crash or a kill);
//! * `P.expected.jsonl`: [`dump`] of the store, which both copies must reproduce.
//!
//! It refuses to write over any of them: a fixture, once committed, is never regenerated in place
//! (a new format gets a new fixture version beside the old one).
//!
//! Everything is deterministic (a fixed clock, fixed event ids, a fixed store id) except the ids
//! of the store's own `$lifecycle` events, which the store draws itself (UUIDv7).
//! `tests/engine/fixture.rs` uses [`generate`] and [`dump`] from here.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use eventfile::{
    ExpectedVersion, Micros, NewEvent, OpenOptions, Query, QueryItem, Read, RetentionPolicy, Store,
    StreamAppend,
};
use serde_json::{Value, json};

/// Segment size of the fixture: the smallest a store allows, so a few dozen events make several
/// segments.
pub const SEGMENT_BYTES: u64 = 4096;

/// The store id written into `eventfile.json` instead of a random one.
pub const STORE_ID: &str = "00000000000070008000000000000001";

/// Every stream name the fixture uses (plus one it never writes), for the per-stream checks.
pub const STREAMS: [&str; 12] = [
    "$lifecycle",
    "audit-x",
    "cart-7",
    "inventory-1",
    "ledger-1",
    "legacy-0",
    "legacy-1",
    "never-written",
    "order-1",
    "order-2",
    "order-3",
    "session-9",
];

/// Where the copy without a clean close goes.
pub fn unclean_path(out: &Path) -> PathBuf {
    let name = out.file_name().expect("a directory name").to_string_lossy();
    out.with_file_name(format!("{name}-unclean"))
}

/// Where the expected dump goes.
pub fn expected_path(out: &Path) -> PathBuf {
    let name = out.file_name().expect("a directory name").to_string_lossy();
    out.with_file_name(format!("{name}.expected.jsonl"))
}

/// Time of the first events: 2025-03-01T08:00:00.000001Z.
fn t0() -> Micros {
    eventfile::parse_rfc3339("2025-03-01T08:00:00.000001Z").expect("a valid time")
}

const SECOND: Micros = 1_000_000;
const DAY: Micros = 86_400 * SECOND;

/// The fixture's clock: whatever the generator last set, however often the store asks.
struct Clock(Arc<AtomicI64>);

impl Clock {
    /// Moves the clock forward by `micros`.
    fn tick(&self, micros: Micros) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
}

/// A fixed id shaped like a UUIDv7 (of the epoch, so it sorts before every id the store draws).
pub fn uid(n: u32) -> String {
    format!("00000000-0000-7000-8000-{n:012}")
}

fn event(id: impl Into<String>, event_type: &str, data: Value) -> NewEvent {
    NewEvent::new(event_type, data).with_id(id)
}

/// Appends single events of `stream` with padded data until the store starts a new segment;
/// the event that started it is the new segment's first. Returns the number appended.
fn fill_until_roll(
    store: &Store,
    clock: &Clock,
    stream: &str,
    id_prefix: &str,
) -> Result<u64, Box<dyn Error>> {
    let segments = |dir: &Path| -> std::io::Result<usize> {
        Ok(std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
            .count())
    };
    let before = segments(store.dir())?;
    let mut n = 0;
    loop {
        clock.tick(SECOND);
        let v = store.stream_version(stream) + 1;
        let pad = "x".repeat(160);
        store.append(
            stream,
            ExpectedVersion::Exact(v - 1),
            [event(
                format!("{id_prefix}-{v}"),
                "Padding",
                json!({ "n": v, "pad": pad }),
            )],
        )?;
        n += 1;
        if segments(store.dir())? > before {
            return Ok(n);
        }
    }
}

/// Writes the fixture for `out` (see the module docs). Fails if any of its paths exists.
pub fn generate(out: &Path) -> Result<(), Box<dyn Error>> {
    let unclean = unclean_path(out);
    let expected = expected_path(out);
    for p in [out, unclean.as_path(), expected.as_path()] {
        if p.exists() {
            return Err(format!("{} exists: a fixture is never overwritten", p.display()).into());
        }
    }
    let now = Arc::new(AtomicI64::new(t0()));
    let clock = Clock(Arc::clone(&now));
    let options = || {
        let now = Arc::clone(&now);
        OpenOptions::new()
            .segment_bytes(SEGMENT_BYTES)
            .snapshots_kept(2)
            .clock(move || now.load(Ordering::SeqCst))
    };

    // Create the store, then give it a fixed id so that `eventfile.json` is reproducible. It is
    // rewritten by the store itself when the retention policy is set below.
    options().open(out)?.close()?;
    set_store_id(out)?;
    let store = options().create(false).open(out)?;
    populate(&store, &clock)?;

    // Everything above is durable (fsynced appends): a copy now is the store as a crash would
    // leave it, with an active segment that has no checkpoint.
    store.sync()?;
    copy_store(out, &unclean)?;
    store.close()?;
    std::fs::remove_file(out.join("LOCK"))?;

    let reader = Store::open_read_only(out)?;
    std::fs::write(&expected, dump(&reader)?)?;
    Ok(())
}

/// Replaces the random store id in `eventfile.json` with [`STORE_ID`], keeping the frame valid.
fn set_store_id(dir: &Path) -> Result<(), Box<dyn Error>> {
    let path = dir.join("eventfile.json");
    let text = std::fs::read_to_string(&path)?;
    let start = text.find("\"store_id\":\"").ok_or("no store_id")? + "\"store_id\":\"".len();
    let end = start + text[start..].find('"').ok_or("unterminated store_id")?;
    let body = format!(
        "{}{STORE_ID}{}",
        &text[..start],
        &text[end..text.len() - ",\"crc\":\"00000000\"}\n".len()]
    );
    let framed = format!(
        "{body},\"crc\":\"{:08x}\"}}\n",
        crc32fast::hash(body.as_bytes())
    );
    std::fs::write(&path, framed)?;
    Ok(())
}

/// Copies the store's files (not the writer's `LOCK`).
fn copy_store(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "LOCK" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            copy_store(&entry.path(), &to.join(&name))?;
        } else {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// The fixture's history. Old events (phase A), then sixty days later the rest (phase B), so a
/// retention policy of thirty days removes the oldest segment.
fn populate(store: &Store, clock: &Clock) -> Result<(), Box<dyn Error>> {
    use ExpectedVersion::{Any, Exact, NoStream};

    // Phase A: segment 1, removed by retention at the end.
    clock.tick(123_456);
    store.append(
        "order-1",
        NoStream,
        [event(
            uid(1),
            "OrderPlaced",
            json!({ "customer": "ann", "total": 12.5, "note": "Zoë ✓ \"quoted\"\nsecond line" }),
        )
        .with_tag("region=eu")
        .with_tag("customer=ann")
        .with_meta_entry("correlation_id", "corr-order-1")
        .with_meta_entry("actor", "ann")
        .with_meta_entry("client", json!({ "app": "web", "build": 42 }))],
    )?;
    clock.tick(SECOND);
    store.append(
        "order-1",
        Exact(1),
        [
            event(uid(2), "ItemAdded", json!({ "sku": "A-1", "qty": 2 }))
                .with_tag("sku=A-1")
                .with_meta_entry("correlation_id", "corr-order-1")
                .with_meta_entry("causation_id", uid(1)),
            event(uid(3), "ItemAdded", json!({ "sku": "B-2", "qty": 1 }))
                .with_tag("sku=B-2")
                .with_meta_entry("correlation_id", "corr-order-1")
                .with_meta_entry("causation_id", uid(1)),
        ],
    )?;
    clock.tick(SECOND);
    store.append(
        "legacy-0",
        NoStream,
        [
            event(
                uid(10),
                "Imported",
                json!({ "rows": [1, 2, 3], "ok": null }),
            ),
            event(
                uid(11),
                "Imported",
                json!({ "rows": [], "ok": true, "big": 9007199254740993u64 }),
            ),
        ],
    )?;
    clock.tick(SECOND);
    store.save_snapshot("legacy-0", 2, &json!({ "imported": 2 }))?;
    store.save_snapshot("order-1", 3, &json!({ "items": ["A-1", "A-1", "B-2"] }))?;
    fill_until_roll(store, clock, "legacy-1", "legacy-1")?;

    // Phase B.
    clock.tick(60 * DAY);
    let pay = || {
        event("pay-order-1", "OrderPaid", json!({ "amount": 12.5 }))
            .with_tag("region=eu")
            .with_meta_entry("correlation_id", "corr-order-1")
            .with_meta_entry("actor", "ann")
    };
    let first = store.append_with_key("cmd-pay-order-1", "order-1", Exact(3), [pay()])?;
    clock.tick(SECOND);
    let again = store.append_with_key("cmd-pay-order-1", "order-1", Exact(3), [pay()])?;
    assert!(again.replayed && again.first_seq == first.first_seq);

    clock.tick(SECOND);
    let placed = || {
        [
            event(
                uid(20),
                "OrderPlaced",
                json!({
                    "customer": "bob",
                    "note": "Zoë ✓ \"quoted\"\nsecond line\ttab \u{1} end",
                    "total": 12.5,
                    "discount": -0.25,
                    "huge": 1e300,
                    "big": 18446744073709551615u64,
                    "lines": [{ "sku": "A-1" }, null, true, [], {}],
                }),
            )
            .with_tag("region=us")
            .with_tag("customer=bob")
            .with_meta_entry("correlation_id", "corr-order-2")
            .with_meta_entry("actor", "bob")
            .with_meta_entry("client", json!({ "app": "web", "build": 42 })),
            event(uid(21), "ItemAdded", json!({ "sku": "A-1", "qty": 5 }))
                .with_tag("sku=A-1")
                .with_meta_entry("correlation_id", "corr-order-2")
                .with_meta_entry("causation_id", uid(20)),
        ]
    };
    let r = store.append("order-2", NoStream, placed())?;
    clock.tick(SECOND);
    // A retry of that batch (same ids): recognised, nothing written.
    let retry = store.append("order-2", NoStream, placed())?;
    assert!(retry.replayed && retry.first_seq == r.first_seq);

    clock.tick(SECOND);
    store.append_multi(&[
        StreamAppend::new(
            "order-2",
            Exact(2),
            [
                event(uid(22), "ItemReserved", json!({ "sku": "A-1", "qty": 5 }))
                    .with_meta_entry("correlation_id", "corr-order-2")
                    .with_meta_entry("causation_id", uid(21)),
            ],
        ),
        StreamAppend::new(
            "inventory-1",
            NoStream,
            [
                event(uid(30), "StockReserved", json!({ "sku": "A-1", "qty": -5 }))
                    .with_tag("sku=A-1")
                    .with_meta_entry("correlation_id", "corr-order-2")
                    .with_meta_entry("causation_id", uid(21)),
            ],
        ),
    ])?;
    clock.tick(SECOND);
    let ship = || {
        [
            StreamAppend::new(
                "order-2",
                Exact(3),
                [event(uid(23), "OrderShipped", json!({ "carrier": "post" }))
                    .with_tag("region=us")
                    .with_meta_entry("correlation_id", "corr-order-2")
                    .with_meta_entry("actor", "warehouse")],
            ),
            StreamAppend::new(
                "inventory-1",
                Exact(1),
                [
                    event(uid(31), "StockShipped", json!({ "sku": "A-1", "qty": 5 }))
                        .with_tag("sku=A-1")
                        .with_meta_entry("correlation_id", "corr-order-2")
                        .with_meta_entry("actor", "warehouse"),
                ],
            ),
        ]
    };
    let shipped = store.append_multi_with_key("cmd-ship-order-2", &ship())?;
    let again = store.append_multi_with_key("cmd-ship-order-2", &ship())?;
    assert!(again.replayed && again.first_seq == shipped.first_seq);

    // A truncated stream.
    clock.tick(SECOND);
    store.append(
        "cart-7",
        NoStream,
        [
            event(uid(40), "CartOpened", json!({})),
            event(uid(41), "CartItem", json!({ "sku": "C-3" })).with_tag("sku=C-3"),
        ],
    )?;
    clock.tick(SECOND);
    store.append(
        "cart-7",
        Exact(2),
        [
            event(uid(42), "CartItem", json!({ "sku": "D-4" })).with_tag("sku=D-4"),
            event(uid(43), "CartItem", json!({ "sku": "C-3" })).with_tag("sku=C-3"),
        ],
    )?;
    clock.tick(SECOND);
    store.truncate_stream("cart-7", 3)?;
    clock.tick(SECOND);
    store.save_snapshot("cart-7", 4, &json!({ "skus": ["D-4", "C-3"] }))?;

    // A soft-deleted stream, appended to again after its deletion.
    clock.tick(SECOND);
    store.append(
        "session-9",
        NoStream,
        [
            event(uid(50), "SessionStarted", json!({ "user": "ann" })).with_tag("user=ann"),
            event(uid(51), "PageViewed", json!({ "page": "/" })).with_tag("user=ann"),
        ],
    )?;
    clock.tick(SECOND);
    store.save_snapshot("session-9", 2, &json!({ "pages": 1 }))?;
    clock.tick(SECOND);
    store.delete_stream("session-9", Exact(2))?;
    clock.tick(SECOND);
    store.append(
        "session-9",
        Exact(2),
        [event(
            uid(52),
            "SessionStarted",
            json!({ "user": "ann", "again": true }),
        )
        .with_tag("user=ann")],
    )?;

    // A segment whose events all die: the rest of this one filled with a scratch stream, then a
    // whole segment of a stream that is tombstoned and of more scratch events.
    fill_until_roll(store, clock, "scratch-1", "scratch-1")?;
    clock.tick(SECOND);
    store.append(
        "audit-x",
        NoStream,
        [
            event(uid(60), "Audited", json!({ "by": "eve" })).with_meta_entry("actor", "eve"),
            event(uid(61), "Audited", json!({ "by": "eve", "again": true }))
                .with_meta_entry("actor", "eve"),
        ],
    )?;
    clock.tick(SECOND);
    store.save_snapshot("audit-x", 2, &json!({ "audits": 2 }))?;
    clock.tick(SECOND);
    store.tombstone_stream("audit-x", Any)?;
    fill_until_roll(store, clock, "scratch-1", "scratch-1")?;
    clock.tick(SECOND);
    store.delete_stream("scratch-1", Any)?;
    // A live stream fills the rest of that segment, which stays sealed beside its dead events.
    fill_until_roll(store, clock, "ledger-1", "ledger-1")?;

    // More live events, snapshots (two kept per stream: the oldest of order-1 is pruned).
    clock.tick(SECOND);
    store.append(
        "order-1",
        Exact(4),
        [event(uid(4), "OrderShipped", json!({ "carrier": "post" }))
            .with_tag("region=eu")
            .with_meta_entry("correlation_id", "corr-order-1")
            .with_meta_entry("actor", "warehouse")],
    )?;
    clock.tick(SECOND);
    store.save_snapshot("order-1", 4, &json!({ "paid": true }))?;
    clock.tick(SECOND);
    store.save_snapshot("order-1", 5, &json!({ "paid": true, "shipped": true }))?;
    clock.tick(SECOND);
    store.save_snapshot("inventory-1", 2, &json!({ "A-1": 0 }))?;
    clock.tick(SECOND);
    store.append(
        "order-3",
        NoStream,
        [
            event(uid(70), "OrderPlaced", json!({ "customer": "cy" }))
                .with_tag("region=eu")
                .with_tag("customer=cy")
                .with_meta_entry("actor", "cy"),
            event(uid(71), "ItemAdded", json!({ "sku": "B-2", "qty": 3 }))
                .with_tag("sku=B-2")
                .with_meta_entry("causation_id", uid(70)),
        ],
    )?;

    // Retention (thirty days: the phase A segment goes) and compaction (the dead segment goes;
    // the committed format-1 fixture lost the one holding the tombstone of `audit-x` too, which
    // compaction keeps since 2026-12-03: `tests/engine/fixture.rs`, `KEPT_SEGMENT`).
    clock.tick(SECOND);
    store.set_retention_policy(
        RetentionPolicy::keep_all()
            .max_age(Duration::from_secs(30 * 86_400))
            .max_events(10_000),
    )?;
    let retained = store.run_retention(false)?;
    assert!(retained.events > 0 && retained.log_start > 1);
    // Nothing, since: the only dead segment holds a `$lifecycle` event. (A new fixture should
    // add a dead segment without one, so that its store has a compacted range.)
    let compacted = store.compact(false)?;
    assert_eq!(compacted.events, 0);

    // The active segment's last events, after both runs.
    clock.tick(SECOND);
    store.append(
        "order-3",
        Exact(2),
        [event("pay-order-3", "OrderPaid", json!({ "amount": 7 }))
            .with_tag("region=eu")
            .with_meta_entry("actor", "cy")],
    )?;
    clock.tick(SECOND + 1);
    store.append(
        "session-9",
        Exact(3),
        [event(uid(53), "PageViewed", json!({ "page": "/orders" })).with_tag("user=ann")],
    )?;
    Ok(())
}

/// A read result: the seqs it returned, or the error.
fn seqs(read: eventfile::Result<eventfile::Events>) -> Value {
    match read.and_then(|events| {
        events
            .map(|e| e.map(|e| e.seq))
            .collect::<Result<Vec<_>, _>>()
    }) {
        Ok(seqs) => json!(seqs),
        Err(e) => error(&e),
    }
}

/// An error by kind and the fields that do not name a file.
fn error(e: &eventfile::Error) -> Value {
    use eventfile::Error;
    match e {
        Error::StreamDeleted { stream, version } => {
            json!({ "error": "StreamDeleted", "stream": stream, "version": version })
        }
        Error::Expired {
            what,
            requested,
            first_available,
        } => json!({
            "error": "Expired",
            "what": what,
            "requested": requested,
            "first_available": first_available,
        }),
        Error::InvalidInput { what, reason } => {
            json!({ "error": "InvalidInput", "what": what, "reason": reason })
        }
        other => json!({ "error": other.to_string() }),
    }
}

fn counts(terms: eventfile::Result<Vec<eventfile::TermCount>>) -> Value {
    match terms {
        Ok(terms) => terms
            .iter()
            .map(|t| json!({ "name": t.name, "count": t.count }))
            .collect(),
        Err(e) => error(&e),
    }
}

/// Everything a reader can observe of the store, one JSON line each: every event as
/// [`eventfile::RecordedEvent::to_json`] gives it (the CLI's format), then one line per check
/// (`{"check":…,…}`): positions, stream versions, catalogs, snapshots, stream reads, queries.
/// Reads only: a read-only handle gives the same as a writer.
pub fn dump(store: &Store) -> eventfile::Result<String> {
    let mut out = String::new();
    for e in store.read_all(Read::forward())? {
        out.push_str(&e?.to_json());
        out.push('\n');
    }
    let mut check = |name: &str, args: Value, value: Value| {
        let line = json!({ "check": name, "args": args, "value": value });
        out.push_str(&line.to_string());
        out.push('\n');
    };
    check("head_seq", json!(null), json!(store.head_seq()));
    check("log_start", json!(null), json!(store.log_start()));
    check("stream_count", json!(null), json!(store.stream_count()));
    let streams = |prefix: &str, after: Option<&str>, limit: usize| -> Value {
        store
            .streams(prefix, after, limit)
            .iter()
            .map(|s| json!({ "stream": s.stream, "version": s.version }))
            .collect()
    };
    check("streams", json!(["", null, 1000]), streams("", None, 1000));
    check(
        "streams",
        json!(["order-", "order-1", 1]),
        streams("order-", Some("order-1"), 1),
    );
    check(
        "event_types",
        json!([null, 1000]),
        counts(store.event_types(None, 1000)),
    );
    check(
        "event_types",
        json!(["ItemAdded", 2]),
        counts(store.event_types(Some("ItemAdded"), 2)),
    );
    check("tags", json!([null, 1000]), counts(store.tags(None, 1000)));
    check(
        "tags",
        json!(["region=eu", 5]),
        counts(store.tags(Some("region=eu"), 5)),
    );

    for stream in STREAMS {
        check(
            "stream_version",
            json!(stream),
            json!(store.stream_version(stream)),
        );
        let forward = seqs(store.read_stream(stream, Read::forward()));
        check("read_stream", json!([stream, "forward"]), forward);
        let backward = seqs(store.read_stream(stream, Read::backward().limit(2)));
        check(
            "read_stream",
            json!([stream, "backward", null, 2]),
            backward,
        );
        let snapshot = match store.load_snapshot(stream) {
            Ok(Some(s)) => serde_json::from_str(&s.to_json()).expect("a snapshot is JSON"),
            Ok(None) => Value::Null,
            Err(e) => error(&e),
        };
        check("load_snapshot", json!(stream), snapshot);
    }
    for (stream, from) in [
        ("order-1", 1),
        ("order-1", 4),
        ("legacy-1", 1),
        ("cart-7", 1),
    ] {
        let read = seqs(store.read_stream(stream, Read::forward().from(from)));
        check("read_stream", json!([stream, "forward", from]), read);
    }
    let read = seqs(store.read_stream("order-1", Read::backward().from(4).limit(3)));
    check("read_stream", json!(["order-1", "backward", 4, 3]), read);

    let start = store.log_start();
    check(
        "read_all",
        json!(["backward", null, 5]),
        seqs(store.read_all(Read::backward().limit(5))),
    );
    check(
        "read_all",
        json!(["forward", start - 1]),
        seqs(store.read_all(Read::forward().from(start - 1))),
    );
    check(
        "read_all",
        json!(["forward", start, 3]),
        seqs(store.read_all(Read::forward().from(start).limit(3))),
    );

    let t0 = t0();
    let queries: Vec<(&str, Query)> = vec![
        ("tag region=eu", Query::new().tag("region=eu")),
        (
            "prefix order- type OrderPaid",
            Query::new().prefix("order-").event_type("OrderPaid"),
        ),
        (
            "types ItemAdded|CartItem tag sku=C-3",
            Query::new().types(["ItemAdded", "CartItem"]).tag("sku=C-3"),
        ),
        (
            "streams order-2|inventory-1 backward limit 3",
            Query::new()
                .streams(["order-2", "inventory-1"])
                .backward()
                .limit(3),
        ),
        (
            "correlation corr-order-2",
            Query::new().correlation("corr-order-2"),
        ),
        ("causation uid(21)", Query::new().causation(uid(21))),
        ("actor warehouse", Query::new().actor("warehouse")),
        ("actor eve (tombstoned)", Query::new().actor("eve")),
        (
            "items",
            Query::new()
                .item(QueryItem::new(["ItemAdded"], ["sku=A-1"]))
                .item(QueryItem::new(["OrderShipped"], [])),
        ),
        (
            "since t0+60d+5s until t0+60d+15s",
            Query::new()
                .since(t0 + 60 * DAY + 5 * SECOND)
                .until(t0 + 60 * DAY + 15 * SECOND),
        ),
        ("stream $lifecycle", Query::new().stream("$lifecycle")),
        (
            "stream scratch-1 (deleted)",
            Query::new().stream("scratch-1"),
        ),
        (
            "seq range",
            Query::new().from_seq(start + 2).to_seq(start + 6),
        ),
        ("from_seq 1", Query::new().from_seq(1)),
    ];
    for (name, q) in &queries {
        check("query", json!(name), seqs(store.query(q)));
        let count = store.count(q).map_or_else(|e| error(&e), |n| json!(n));
        check("count", json!(name), count);
    }

    // Pagination: a page of three, then the rest after its cursor.
    let q = Query::new().prefix("order-");
    let mut page = store.query(&q.clone().limit(3))?;
    let first: Vec<u64> = page
        .by_ref()
        .map(|e| e.map(|e| e.seq))
        .collect::<Result<_, _>>()?;
    let rest = match page.cursor() {
        Some(c) => seqs(store.query(&q.after(c))),
        None => Value::Null,
    };
    check(
        "query_pages",
        json!("prefix order- limit 3"),
        json!([first, rest]),
    );

    for id in [
        uid(20),
        uid(1),
        uid(40),
        uid(60),
        "pay-order-3".into(),
        "no-such-id".into(),
    ] {
        let found = match store.get_event(&id) {
            Ok(Some(e)) => serde_json::from_str(&e.to_json()).expect("an event is JSON"),
            Ok(None) => Value::Null,
            Err(e) => error(&e),
        };
        check("get_event", json!(id), found);
    }
    for t in [
        t0,
        t0 + 60 * DAY,
        t0 + 60 * DAY + 30 * SECOND,
        t0 + 365 * DAY,
    ] {
        let seq = store.seq_at(t).map_or_else(|e| error(&e), |s| json!(s));
        check("seq_at", json!(eventfile::format_rfc3339(t)), seq);
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn Error>> {
    let Some(out) = std::env::args_os().nth(1) else {
        return Err("usage: cargo run --example make_fixture -- tests/fixtures/vN".into());
    };
    let out = PathBuf::from(out);
    generate(&out)?;
    println!(
        "wrote {}, {} and {}",
        out.display(),
        unclean_path(&out).display(),
        expected_path(&out).display()
    );
    Ok(())
}
