//! Stream deletion: truncation, soft delete, tombstones; recorded as events, applied at once,
//! kept across restarts.

use eventfile::{
    Error, ExpectedVersion, LIFECYCLE_STREAM, NewEvent, OpenOptions, Query, Read, Store,
    TOMBSTONED, TRUNCATED,
};
use serde_json::json;

use crate::support::{ev, small_store, stream};

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
