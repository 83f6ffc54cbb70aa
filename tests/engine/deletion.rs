//! Stream deletion: truncation, soft delete, tombstones; recorded as events, applied at once,
//! kept across restarts.

use std::collections::BTreeMap;

use eventfile::{
    Error, ExpectedVersion, LIFECYCLE_STREAM, NewEvent, OpenOptions, Query, Read, Store,
    TOMBSTONED, TRUNCATED, TermCount,
};
use serde_json::json;

use crate::support::{
    Rng, all, ev, fast_store, files_with_ext, newest_segment, small_store, stream,
};

fn versions(store: &Store, name: &str) -> Vec<u64> {
    stream(store, name, Read::forward())
        .iter()
        .map(|e| e.version)
        .collect()
}

/// `n` events in `order-1` (tagged) interleaved with events in `other`.
fn fixture(store: &Store, n: u64) {
    for i in 0..n {
        store
            .append(
                "order-1",
                ExpectedVersion::Any,
                [ev("Placed", i)
                    .with_tag("region=eu")
                    .with_id(format!("o-{i}"))],
            )
            .unwrap();
        store
            .append(
                "other",
                ExpectedVersion::Any,
                [ev("Placed", i).with_tag("region=eu")],
            )
            .unwrap();
    }
}

#[test]
fn truncation_hides_old_events_from_every_read_at_once_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = small_store(dir.path(), 4096);
        fixture(&store, 30);
        let r = store.truncate_stream("order-1", 21).unwrap();
        assert_eq!((r.version, r.deleted_before, r.tombstone), (30, 21, false));
        let seq = r.seq.expect("recorded");
        // At once, on this handle.
        assert_eq!(versions(&store, "order-1"), (21..=30).collect::<Vec<_>>());
        let backward: Vec<u64> = stream(&store, "order-1", Read::backward())
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(backward, (21..=30).rev().collect::<Vec<_>>());
        assert_eq!(stream(&store, "order-1", Read::forward().from(3)).len(), 10);
        let q = Query::new().tag("region=eu");
        assert_eq!(store.count(&q).unwrap(), 40);
        assert_eq!(store.query(&q).unwrap().count(), 40);
        assert_eq!(store.count(&Query::new().stream("order-1")).unwrap(), 10);
        assert!(store.get_event("o-3").unwrap().is_none());
        assert!(store.get_event("o-25").unwrap().is_some());
        // The global log hides them too, and holds the lifecycle event.
        let all: Vec<_> = store
            .read_all(Read::forward())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(all.len(), 60 - 20 + 1);
        let life = stream(&store, LIFECYCLE_STREAM, Read::forward());
        assert_eq!(life.len(), 1);
        assert_eq!((life[0].seq, life[0].event_type.as_str()), (seq, TRUNCATED));
        assert_eq!(
            life[0].data_value(),
            json!({"stream": "order-1", "before": 21})
        );
        // Numbering continues.
        let next = store
            .append("order-1", ExpectedVersion::Exact(30), [ev("Placed", 99)])
            .unwrap();
        assert_eq!(next.version, 31);
    }
    let store = small_store(dir.path(), 4096);
    assert_eq!(versions(&store, "order-1"), (21..=31).collect::<Vec<_>>());
    assert_eq!(store.count(&Query::new().stream("order-1")).unwrap(), 11);
    assert_eq!(store.stream_version("order-1"), 31);
    assert!(eventfile::verify(dir.path()).unwrap().is_sound());
}

#[test]
fn truncation_points_are_checked_and_only_move_forward() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    fixture(&store, 5);
    let head = store.head_seq();
    for bad in [0, 7, 100] {
        let err = store.truncate_stream("order-1", bad).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err}");
    }
    assert!(matches!(
        store.truncate_stream("nobody", 1),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        store.truncate_stream("$lifecycle", 1),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(store.head_seq(), head);
    store.truncate_stream("order-1", 4).unwrap();
    let again = store.truncate_stream("order-1", 2).unwrap();
    assert_eq!((again.seq, again.deleted_before), (None, 4));
    assert_eq!(store.head_seq(), head + 1);
    // Truncating to version + 1 deletes everything so far.
    store.truncate_stream("order-1", 6).unwrap();
    assert!(versions(&store, "order-1").is_empty());
}

#[test]
fn soft_delete_empties_the_stream_and_later_appends_continue_its_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    fixture(&store, 4);
    let err = store
        .delete_stream("order-1", ExpectedVersion::Exact(3))
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let r = store
        .delete_stream("order-1", ExpectedVersion::Exact(4))
        .unwrap();
    assert_eq!((r.deleted_before, r.tombstone), (5, false));
    assert!(versions(&store, "order-1").is_empty());
    assert_eq!(store.stream_version("order-1"), 4);
    let next = store
        .append("order-1", ExpectedVersion::Exact(4), [ev("Placed", 1)])
        .unwrap();
    assert_eq!(next.version, 5);
    assert_eq!(versions(&store, "order-1"), [5]);
    assert!(matches!(
        store.delete_stream("never", ExpectedVersion::Any),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn a_tombstone_refuses_appends_and_reads_forever() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = small_store(dir.path(), 4096);
        fixture(&store, 10);
        let r = store
            .tombstone_stream("order-1", ExpectedVersion::Any)
            .unwrap();
        assert!(r.tombstone);
        let life = stream(&store, LIFECYCLE_STREAM, Read::forward());
        assert_eq!(life.last().unwrap().event_type, TOMBSTONED);
        // A name that never held events can be reserved.
        store
            .tombstone_stream("reserved", ExpectedVersion::NoStream)
            .unwrap();
    }
    let store = small_store(dir.path(), 4096);
    for name in ["order-1", "reserved"] {
        let err = store
            .append(name, ExpectedVersion::Any, [ev("Placed", 1)])
            .unwrap_err();
        assert!(
            matches!(&err, Error::StreamDeleted { stream, .. } if stream == name),
            "{err}"
        );
        assert!(matches!(
            store.read_stream(name, Read::forward()),
            Err(Error::StreamDeleted { .. })
        ));
        assert!(matches!(
            store.tombstone_stream(name, ExpectedVersion::Any),
            Err(Error::StreamDeleted { .. })
        ));
    }
    // In a multi-stream append, nothing is written.
    let head = store.head_seq();
    let err = store
        .append_multi(&[
            eventfile::StreamAppend::new("fine", ExpectedVersion::Any, vec![ev("T", 1)]),
            eventfile::StreamAppend::new("order-1", ExpectedVersion::Any, vec![ev("T", 1)]),
        ])
        .unwrap_err();
    assert!(matches!(err, Error::StreamDeleted { .. }), "{err}");
    assert_eq!(store.head_seq(), head);
    assert_eq!(store.count(&Query::new().stream("order-1")).unwrap(), 0);
    assert_eq!(versions(&store, "other").len(), 10);
}

#[test]
fn the_store_streams_are_read_only_to_callers() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    let err = store
        .append(
            LIFECYCLE_STREAM,
            ExpectedVersion::Any,
            [NewEvent::new(
                TRUNCATED,
                json!({"stream": "x", "before": 5}),
            )],
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                what: "stream name",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(store.head_seq(), 0);
}

#[test]
fn a_reader_sees_deletions_after_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 4096);
    fixture(&store, 10);
    let reader = OpenOptions::new().read_only(true).open(dir.path()).unwrap();
    assert_eq!(versions(&reader, "order-1").len(), 10);
    store.truncate_stream("order-1", 6).unwrap();
    store
        .tombstone_stream("other", ExpectedVersion::Any)
        .unwrap();
    reader.refresh().unwrap();
    assert_eq!(versions(&reader, "order-1"), (6..=10).collect::<Vec<_>>());
    assert!(matches!(
        reader.read_stream("other", Read::forward()),
        Err(Error::StreamDeleted { .. })
    ));
    assert!(matches!(
        reader.truncate_stream("order-1", 8),
        Err(Error::ReadOnly)
    ));
}

/// Terms with their counts, in name order.
type Counts = Vec<(String, u64)>;

/// Counts by term of the events reads return: what the catalog must list.
fn live_terms(store: &Store) -> (Counts, Counts) {
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    let mut tags: BTreeMap<String, u64> = BTreeMap::new();
    for e in all(store) {
        *types.entry(e.event_type.clone()).or_default() += 1;
        for t in e.tags {
            *tags.entry(t).or_default() += 1;
        }
    }
    (types.into_iter().collect(), tags.into_iter().collect())
}

fn pairs(listing: Vec<TermCount>) -> Counts {
    listing.into_iter().map(|t| (t.name, t.count)).collect()
}

/// Pages through a listing `limit` names at a time, each page continuing after the last name.
fn paged<T>(
    limit: usize,
    page: impl Fn(Option<&str>, usize) -> Vec<T>,
    name: fn(&T) -> &str,
) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    loop {
        let next = page(out.last().map(name), limit);
        assert!(next.len() <= limit);
        if next.is_empty() {
            return out;
        }
        out.extend(next);
    }
}

/// The catalog agrees with reads: every type and tag is listed with the number of events that
/// reads and `count` find, a term with no live event is not listed, pages of any size add up
/// to the whole listing, and the streams listed are those with a live event.
fn assert_catalog_agrees(store: &Store) {
    let (types, tags) = live_terms(store);
    assert_eq!(pairs(store.event_types(None, usize::MAX).unwrap()), types);
    assert_eq!(pairs(store.tags(None, usize::MAX).unwrap()), tags);
    for (name, n) in &types {
        let q = Query::new().event_type(name.as_str());
        assert_eq!(store.count(&q).unwrap(), *n, "type {name}");
    }
    for (name, n) in &tags {
        let q = Query::new().tag(name.as_str());
        assert_eq!(store.count(&q).unwrap(), *n, "tag {name}");
    }
    for limit in [1, 2, 3] {
        let by_type = paged(limit, |a, l| store.event_types(a, l).unwrap(), |t| &t.name);
        assert_eq!(pairs(by_type), types, "types, pages of {limit}");
        let by_tag = paged(limit, |a, l| store.tags(a, l).unwrap(), |t| &t.name);
        assert_eq!(pairs(by_tag), tags, "tags, pages of {limit}");
    }
    let mut live: Vec<String> = all(store).into_iter().map(|e| e.stream).collect();
    live.sort();
    live.dedup();
    let listed = store.streams("", None, usize::MAX);
    assert_eq!(
        listed.iter().map(|s| s.stream.clone()).collect::<Vec<_>>(),
        live
    );
    for s in &listed {
        assert_eq!(s.version, store.stream_version(&s.stream), "{}", s.stream);
    }
    let by_stream = paged(2, |a, l| store.streams("", a, l), |s| &s.stream);
    assert_eq!(by_stream, listed);
    assert_eq!(store.stream_count(), listed.len());
}

/// Events of `stream`, one per append, with a type and tags of their own (`only=<stream>`,
/// `Only-<stream>`) besides shared ones, so deleting the stream empties some terms.
fn tagged(store: &Store, stream: &str, n: u64) {
    for i in 0..n {
        let t = if i % 2 == 0 { "Added" } else { "Removed" };
        store
            .append(
                stream,
                ExpectedVersion::Any,
                [ev(t, i)
                    .with_tag("shop=1")
                    .with_tag(format!("only={stream}"))],
            )
            .unwrap();
        store
            .append(
                stream,
                ExpectedVersion::Any,
                [ev(&format!("Only-{stream}"), i).with_tag(format!("n={}", i % 3))],
            )
            .unwrap();
    }
}

#[test]
fn deleted_events_leave_the_type_tag_and_stream_listings() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = small_store(dir.path(), 4096);
        for s in ["cart-a", "cart-b", "cart-c", "cart-d", "keep"] {
            tagged(&store, s, 12);
        }
        let sealed = files_with_ext(dir.path(), "jsonl").len();
        assert!(sealed >= 4, "the fixture spans several segments: {sealed}");
        assert_catalog_agrees(&store);
        let before = store.event_types(None, usize::MAX).unwrap();
        assert!(before.iter().any(|t| t.name == "Only-cart-b"));

        // Part of a stream, across sealed segments.
        store.truncate_stream("cart-a", 15).unwrap();
        assert_catalog_agrees(&store);
        // Whole streams: soft delete and tombstone.
        store
            .delete_stream("cart-b", ExpectedVersion::Exact(24))
            .unwrap();
        store
            .tombstone_stream("cart-c", ExpectedVersion::Any)
            .unwrap();
        // A truncation to the end is a deletion of everything so far.
        store.truncate_stream("cart-d", 25).unwrap();
        assert_catalog_agrees(&store);
        for gone in ["Only-cart-b", "Only-cart-c", "Only-cart-d"] {
            assert!(
                !store
                    .event_types(None, usize::MAX)
                    .unwrap()
                    .iter()
                    .any(|t| t.name == gone),
                "{gone} is still listed"
            );
            assert_eq!(store.count(&Query::new().event_type(gone)).unwrap(), 0);
        }
        for gone in ["only=cart-b", "only=cart-c", "only=cart-d"] {
            assert!(
                !store
                    .tags(None, usize::MAX)
                    .unwrap()
                    .iter()
                    .any(|t| t.name == gone)
            );
        }
        // Paging resumes after a name that is no longer listed, and the limit counts only
        // listed terms.
        let after_gone = store.event_types(Some("Only-cart-b"), 1).unwrap();
        assert_eq!(pairs(after_gone), [("Only-keep".to_owned(), 12)]);
        let page = store.event_types(Some("Added"), 2).unwrap();
        assert_eq!(
            pairs(page),
            [("Only-cart-a".to_owned(), 5), ("Only-keep".to_owned(), 12)]
        );
        let streams = store.streams("cart-", None, 10);
        assert_eq!(
            streams
                .iter()
                .map(|s| s.stream.as_str())
                .collect::<Vec<_>>(),
            ["cart-a"]
        );
        assert_eq!(streams[0].version, 24);
        assert_eq!(store.stream_version("cart-b"), 24);
        // The limit counts only listed streams, and paging resumes after a hidden name.
        assert_eq!(store.streams("", Some("cart-a"), 1)[0].stream, "keep");
        assert_eq!(store.streams("", Some("cart-b"), 1)[0].stream, "keep");

        // Dead events in the active segment, after the deletions above.
        let first_fresh = store.head_seq() + 1;
        tagged(&store, "fresh", 3);
        let active_base: u64 = newest_segment(dir.path())
            .file_stem()
            .and_then(|s| s.to_str()?.parse().ok())
            .unwrap();
        assert!(
            active_base <= first_fresh,
            "the fresh events are in the active segment"
        );
        store.truncate_stream("fresh", 3).unwrap();
        assert_catalog_agrees(&store);
        store.delete_stream("fresh", ExpectedVersion::Any).unwrap();
        assert_catalog_agrees(&store);
        assert!(
            !store
                .tags(None, usize::MAX)
                .unwrap()
                .iter()
                .any(|t| t.name == "only=fresh")
        );
        // A soft-deleted stream comes back to the listing with its next event, numbered on.
        store
            .append(
                "cart-b",
                ExpectedVersion::Exact(24),
                [ev("Only-cart-b", 99)],
            )
            .unwrap();
        assert_catalog_agrees(&store);
        assert_eq!(
            pairs(store.event_types(Some("Only-cart-a"), 1).unwrap()),
            [("Only-cart-b".to_owned(), 1)]
        );
        assert_eq!(store.streams("cart-b", None, 1)[0].version, 25);
    }
    let store = small_store(dir.path(), 4096);
    assert_catalog_agrees(&store);
    assert_eq!(
        pairs(store.event_types(Some("Only-cart-a"), 1).unwrap()),
        [("Only-cart-b".to_owned(), 1)]
    );
    let reader = OpenOptions::new().read_only(true).open(dir.path()).unwrap();
    assert_catalog_agrees(&reader);
}

#[test]
fn catalog_counts_follow_a_random_history_of_appends_and_deletions() {
    const STREAMS: [&str; 6] = ["s-0", "s-1", "s-2", "s-3", "s-4", "s-5"];
    const TYPES: [&str; 4] = ["A", "B", "C", "D"];
    const TAGS: [&str; 5] = ["k=1", "k=2", "x=1", "y=1", "z=1"];
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_cafe);
    let mut tombstoned: Vec<&str> = Vec::new();
    {
        let store = fast_store(dir.path(), 4096);
        for step in 0..400 {
            let s = rng.pick(&STREAMS);
            if tombstoned.contains(&s) {
                continue;
            }
            match rng.below(40) {
                0..=2 => {
                    let v = store.stream_version(s);
                    if v > 0 {
                        store.truncate_stream(s, 1 + rng.below(v + 1)).unwrap();
                    }
                }
                3 if store.stream_version(s) > 0 => {
                    store.delete_stream(s, ExpectedVersion::Any).unwrap();
                }
                4 if step > 300 => {
                    store.tombstone_stream(s, ExpectedVersion::Any).unwrap();
                    tombstoned.push(s);
                }
                _ => {
                    let mut e = ev(rng.pick(&TYPES), step);
                    for t in TAGS {
                        if rng.below(3) == 0 {
                            e = e.with_tag(t);
                        }
                    }
                    store.append(s, ExpectedVersion::Any, [e]).unwrap();
                }
            }
            if step % 40 == 39 {
                assert_catalog_agrees(&store);
            }
        }
        assert!(files_with_ext(dir.path(), "jsonl").len() > 3);
    }
    let store = fast_store(dir.path(), 4096);
    assert_catalog_agrees(&store);
}
