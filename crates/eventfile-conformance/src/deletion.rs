//! Deletion: truncation and soft deletion hide events from every read, query, count and
//! look-up at once while numbering continues; a tombstone refuses the stream for good. Each is
//! recorded as an event of the store's own `$lifecycle` stream.

use eventfile::{
    DELETED, Error, ErrorKind, ExpectedVersion::*, LIFECYCLE_STREAM, NewEvent, Query, Read,
    StreamAppend, TOMBSTONED, TRUNCATED,
};
use serde_json::json;

use crate::Factory;
use crate::support::*;

/// `order-1` (ids `o-1`..) and `other` take turns, `n` events each, all tagged `region=eu`.
fn fixture(s: &dyn eventfile::EventStore, n: u64) {
    for i in 1..=n {
        append(
            s,
            "order-1",
            vec![
                ev("Placed", i)
                    .with_tag("region=eu")
                    .with_id(format!("o-{i}")),
            ],
        );
        append(s, "other", vec![ev("Placed", i).with_tag("region=eu")]);
    }
}

/// After a truncation, the events before the point are gone from stream reads (both ways, from
/// any version), the global log, queries, counts and look-ups by id; the stream keeps its
/// version and goes on from it.
pub fn truncation_hides_earlier_events_from_every_read(factory: &Factory<'_>) {
    let s = factory();
    fixture(&*s, 6);
    let r = s.truncate_stream("order-1", 4).unwrap();
    assert_eq!(
        (
            r.stream.as_str(),
            r.version,
            r.deleted_before,
            r.tombstone,
            r.seq
        ),
        ("order-1", 6, 4, false, Some(13))
    );
    let read = |read: Read| versions(&stream(&*s, "order-1", read));
    assert_eq!(read(Read::forward()), [4, 5, 6]);
    assert_eq!(read(Read::backward()), [6, 5, 4]);
    assert_eq!(read(Read::forward().from(2)), [4, 5, 6]);
    assert_eq!(read(Read::forward().from(2).limit(1)), [4]);
    assert_eq!(read(Read::backward().from(5)), [5, 4]);
    assert!(read(Read::backward().from(2)).is_empty());
    let tagged = Query::new().tag("region=eu");
    assert_eq!(s.count(&tagged).unwrap(), 9);
    assert_eq!(collect(s.query(&tagged)).len(), 9);
    assert_eq!(s.count(&Query::new().stream("order-1")).unwrap(), 3);
    assert!(s.get_event("o-3").unwrap().is_none());
    assert_eq!(s.get_event("o-4").unwrap().unwrap().version, 4);
    let log = all(&*s);
    assert_eq!(log.len(), 12 - 3 + 1);
    assert!(!log.iter().any(|e| e.stream == "order-1" && e.version < 4));
    assert_eq!(
        collect(s.read_all(Read::backward().limit(1)))[0].stream,
        LIFECYCLE_STREAM
    );
    assert_eq!(version(&*s, "order-1"), 6);
    let next = s
        .append("order-1", Exact(6), vec![ev("Placed", 7)])
        .unwrap();
    assert_eq!(next.version, 7);
    assert_eq!(read(Read::forward()), [4, 5, 6, 7]);
}

/// A truncation point must be from 1 to the version + 1, of a stream with events that is not
/// the store's own; truncating to or below an earlier point changes and writes nothing.
pub fn truncation_points_are_checked_and_only_move_forward(factory: &Factory<'_>) {
    let s = factory();
    fixture(&*s, 5);
    let head_before = head(&*s);
    for bad in [0, 7, 100] {
        assert_invalid(s.truncate_stream("order-1", bad), "truncation point");
    }
    assert_kind(s.truncate_stream("nobody", 1), ErrorKind::InvalidInput);
    assert_invalid(s.truncate_stream(LIFECYCLE_STREAM, 1), "stream name");
    assert_invalid(s.truncate_stream("", 1), "stream name");
    assert_eq!(head(&*s), head_before);
    assert!(s.truncate_stream("order-1", 4).unwrap().seq.is_some());
    for again in [2, 4] {
        let r = s.truncate_stream("order-1", again).unwrap();
        assert_eq!((r.seq, r.deleted_before), (None, 4));
    }
    assert_eq!(head(&*s), head_before + 1);
    // To the version + 1: everything so far.
    let r = s.truncate_stream("order-1", 6).unwrap();
    assert_eq!(r.deleted_before, 6);
    assert!(stream(&*s, "order-1", Read::forward()).is_empty());
}

/// A soft delete empties the stream but keeps its version: appends continue the numbering and
/// are read again.
pub fn a_soft_delete_empties_the_stream_and_numbering_continues(factory: &Factory<'_>) {
    let s = factory();
    fixture(&*s, 4);
    let r = s.delete_stream("order-1", Exact(4)).unwrap();
    assert_eq!(
        (r.version, r.deleted_before, r.tombstone, r.seq),
        (4, 5, false, Some(9))
    );
    assert!(stream(&*s, "order-1", Read::forward()).is_empty());
    assert_eq!(s.count(&Query::new().stream("order-1")).unwrap(), 0);
    assert_eq!(version(&*s, "order-1"), 4);
    assert_kind(
        s.append("order-1", NoStream, vec![ev("Placed", 5)]),
        ErrorKind::Conflict,
    );
    let next = s
        .append("order-1", Exact(4), vec![ev("Placed", 5)])
        .unwrap();
    assert_eq!(next.version, 5);
    assert_eq!(versions(&stream(&*s, "order-1", Read::forward())), [5]);
    // Deleting again hides the new event too; a stream with no events cannot be deleted.
    assert_eq!(s.delete_stream("order-1", Any).unwrap().deleted_before, 6);
    assert_kind(s.delete_stream("never", Any), ErrorKind::InvalidInput);
    assert_eq!(versions(&stream(&*s, "other", Read::forward())).len(), 4);
}

/// A tombstoned stream is gone for good: appends (also as part of a multi-stream append),
/// reads, snapshots and further deletion fail with `StreamDeleted`; other streams are untouched.
pub fn a_tombstone_refuses_appends_and_reads(factory: &Factory<'_>) {
    let s = factory();
    fixture(&*s, 3);
    let state = serde_json::value::to_raw_value(&json!({})).unwrap();
    s.save_snapshot("order-1", 3, &state).unwrap();
    let r = s.tombstone_stream("order-1", Exact(3)).unwrap();
    assert_eq!((r.version, r.deleted_before, r.tombstone), (3, 4, true));
    let head_before = head(&*s);
    let gone = |e: Error| match e {
        Error::StreamDeleted { stream, .. } => assert_eq!(stream, "order-1"),
        other => panic!("expected StreamDeleted, got {other:?}"),
    };
    gone(err(s.append("order-1", Any, vec![ev("Placed", 9)])));
    gone(err(s.read_stream("order-1", Read::forward())));
    gone(err(s.read_stream("order-1", Read::backward())));
    gone(err(s.load_snapshot("order-1")));
    gone(err(s.save_snapshot("order-1", 3, &state)));
    gone(err(s.tombstone_stream("order-1", Any)));
    gone(err(s.delete_stream("order-1", Any)));
    gone(err(s.truncate_stream("order-1", 2)));
    let e = err(s.append_multi(&[
        StreamAppend::new("fine", Any, vec![ev("T", 1)]),
        StreamAppend::new("order-1", Any, vec![ev("T", 1)]),
    ]));
    assert_eq!(e.kind(), ErrorKind::StreamDeleted);
    assert_eq!(head(&*s), head_before);
    assert_eq!(s.count(&Query::new().stream("order-1")).unwrap(), 0);
    assert!(s.get_event("o-1").unwrap().is_none());
    assert_eq!(version(&*s, "order-1"), 3);
    assert_eq!(stream(&*s, "other", Read::forward()).len(), 3);
}

/// A name that never held events can be tombstoned, to reserve it.
pub fn a_name_that_never_held_events_can_be_tombstoned(factory: &Factory<'_>) {
    let s = factory();
    let r = s.tombstone_stream("reserved", NoStream).unwrap();
    assert_eq!(
        (r.version, r.deleted_before, r.tombstone, r.seq),
        (0, 1, true, Some(1))
    );
    assert_kind(
        s.append("reserved", NoStream, vec![ev("T", 1)]),
        ErrorKind::StreamDeleted,
    );
    assert_kind(
        s.read_stream("reserved", Read::forward()),
        ErrorKind::StreamDeleted,
    );
    assert_eq!(head(&*s), 1);
}

/// Each deletion appends one event to `$lifecycle`, readable like any other, typed after the
/// operation, naming the stream and the point; callers cannot append to `$lifecycle`.
pub fn each_deletion_is_a_lifecycle_event(factory: &Factory<'_>) {
    let s = factory();
    fixture(&*s, 3);
    let seqs = [
        s.truncate_stream("order-1", 2).unwrap().seq,
        s.delete_stream("order-1", Any).unwrap().seq,
        s.tombstone_stream("other", Exact(3)).unwrap().seq,
    ];
    let life = stream(&*s, LIFECYCLE_STREAM, Read::forward());
    let got: Vec<(Option<u64>, &str, serde_json::Value)> = life
        .iter()
        .map(|e| (Some(e.seq), e.event_type.as_str(), e.data_value()))
        .collect();
    assert_eq!(
        got,
        [
            (
                seqs[0],
                TRUNCATED,
                json!({"stream": "order-1", "before": 2})
            ),
            (seqs[1], DELETED, json!({"stream": "order-1", "before": 4})),
            (seqs[2], TOMBSTONED, json!({"stream": "other", "before": 4})),
        ]
    );
    assert_eq!(versions(&life), [1, 2, 3]);
    assert!(life.iter().all(|e| e.tags.is_empty() && e.meta.is_empty()));
    assert_eq!(s.count(&Query::new().stream(LIFECYCLE_STREAM)).unwrap(), 3);
    assert_invalid(
        s.append(
            LIFECYCLE_STREAM,
            Any,
            vec![NewEvent::new(
                TRUNCATED,
                json!({"stream": "x", "before": 5}),
            )],
        ),
        "stream name",
    );
    assert_eq!(head(&*s), 9);
}

/// Deletion and tombstones check their expectation like appends: a conflict names the actual
/// version and deletes nothing.
pub fn deletion_expectations_conflict_with_the_actual_version(factory: &Factory<'_>) {
    let s = factory();
    fixture(&*s, 4);
    let head_before = head(&*s);
    for expected in [Exact(3), NoStream] {
        for r in [
            s.delete_stream("order-1", expected),
            s.tombstone_stream("order-1", expected),
        ] {
            match err(r) {
                Error::WrongExpectedVersion {
                    stream, actual: 4, ..
                } if stream == "order-1" => {}
                other => panic!("expected a conflict at 4, got {other:?}"),
            }
        }
    }
    assert_kind(s.tombstone_stream("new", StreamExists), ErrorKind::Conflict);
    assert_eq!(head(&*s), head_before);
    assert_eq!(stream(&*s, "order-1", Read::forward()).len(), 4);
    assert!(s.delete_stream("order-1", StreamExists).is_ok());
}
