//! Event ids, idempotency keys and retries: a retry of a whole append returns the first result
//! and writes nothing; every other reuse of an id is a duplicate.

use std::collections::HashSet;

use eventfile::{
    AppendRequest, Error, ErrorKind, EventStore, ExpectedVersion::*, MultiAppendResult, NewEvent,
    Read, StreamAppend,
};
use serde_json::json;

use crate::Factory;
use crate::support::*;

fn with_id(id: &str) -> NewEvent {
    NewEvent::new("Paid", json!({ "id": id })).with_id(id)
}

/// Runs `retry` and checks that it replayed `first`: the same positions, `replayed` set,
/// nothing written.
#[track_caller]
fn assert_replays(
    s: &dyn EventStore,
    first: &MultiAppendResult,
    retry: impl FnOnce() -> eventfile::Result<MultiAppendResult>,
) {
    let head_before = head(s);
    let retry = retry().expect("the retry succeeds");
    assert!(retry.replayed, "{retry:?}");
    assert_eq!(
        (retry.first_seq, retry.last_seq),
        (first.first_seq, first.last_seq)
    );
    assert_eq!(retry.streams.len(), first.streams.len());
    for ((s1, a), (s2, b)) in first.streams.iter().zip(&retry.streams) {
        assert_eq!(s1, s2);
        assert_eq!(
            (a.version, a.first_seq, a.last_seq),
            (b.version, b.first_seq, b.last_seq)
        );
        assert!(b.replayed);
    }
    assert_eq!(head(s), head_before, "a retry wrote");
}

/// Ids the store makes are distinct UUIDv7s.
pub fn generated_ids_are_unique_uuid_v7(factory: &Factory<'_>) {
    let s = factory();
    for i in 0..10 {
        append(&*s, "s", (0..5).map(|k| ev("T", i * 5 + k)).collect());
    }
    let log = all(&*s);
    let ids: HashSet<&str> = log.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 50);
    for e in &log {
        let b = e.id.as_bytes();
        assert!(
            b.len() == 36 && b[8] == b'-' && b[13] == b'-' && b[14] == b'7',
            "not a UUIDv7: {}",
            e.id
        );
        let found = s.get_event(&e.id).unwrap().expect("found by id");
        assert_eq!(&found, e);
    }
}

/// The same ids, to the same stream, as one batch: the first result, even though the
/// expectation no longer holds.
pub fn a_retried_batch_returns_the_first_result(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "other", 0);
    let batch = || vec![with_id("a"), with_id("b"), with_id("c")];
    let first = s.append("order-1", NoStream, batch()).unwrap();
    assert!(!first.replayed);
    let again = s.append("order-1", NoStream, batch()).unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.version, again.first_seq, again.last_seq),
        (first.version, first.first_seq, first.last_seq)
    );
    // Different data under the same ids is still the same append: the ids name it.
    let changed: Vec<NewEvent> = ["a", "b", "c"]
        .iter()
        .map(|id| NewEvent::new("Other", json!(9)).with_id(*id))
        .collect();
    assert!(s.append("order-1", Exact(3), changed).unwrap().replayed);
    assert_eq!(head(&*s), 4);
    assert_eq!(stream(&*s, "order-1", Read::forward()).len(), 3);
    assert_eq!(
        s.get_event("b").unwrap().unwrap().data.get(),
        r#"{"id":"b"}"#
    );
}

/// A retried multi-stream append replays every stream's part.
pub fn a_retried_multi_stream_batch_replays_every_part(factory: &Factory<'_>) {
    let s = factory();
    let req = || {
        vec![
            StreamAppend::new("a", NoStream, vec![with_id("m1")]),
            StreamAppend::new("b", NoStream, vec![with_id("m2"), with_id("m3")]),
        ]
    };
    let first = s.append_multi(&req()).unwrap();
    assert!(!first.replayed);
    assert_replays(&*s, &first, || s.append_multi(&req()));
    assert_eq!(head(&*s), 3);
    // The streams in another order are another append.
    let swapped = vec![
        StreamAppend::new("b", Any, vec![with_id("m2"), with_id("m3")]),
        StreamAppend::new("a", Any, vec![with_id("m1")]),
    ];
    assert_kind(s.append_multi(&swapped), ErrorKind::DuplicateId);
}

/// Part of a batch, more than a batch, other streams, other order, ids of two batches, a batch
/// that mixes given and generated ids: each a duplicate naming an id, its seq and stream.
pub fn every_other_reuse_of_an_id_is_a_duplicate(factory: &Factory<'_>) {
    let s = factory();
    append(&*s, "s", vec![with_id("a"), with_id("b")]);
    append(&*s, "s", vec![with_id("c")]);
    // Given and generated ids together: never recognised as a retry.
    append(&*s, "m", vec![with_id("x"), ev("T", 1)]);
    let head_before = head(&*s);
    let holder = |id: &str| if id == "x" { "m" } else { "s" };
    let cases: Vec<(&str, Vec<NewEvent>)> = vec![
        ("s", vec![with_id("a")]),
        ("s", vec![with_id("a"), with_id("b"), with_id("new")]),
        ("s", vec![with_id("new"), with_id("a")]),
        ("t", vec![with_id("a"), with_id("b")]),
        ("s", vec![with_id("b"), with_id("c")]),
        ("s", vec![with_id("b"), with_id("a")]),
        ("m", vec![with_id("x"), ev("T", 1)]),
        ("s", vec![with_id("x")]),
    ];
    for (stream_name, events) in cases {
        let ids: Vec<String> = events
            .iter()
            .filter_map(|e| e.id().map(str::to_owned))
            .collect();
        match s.append(stream_name, Any, events) {
            Err(e @ Error::DuplicateEventId { .. }) => {
                assert_eq!(e.kind(), ErrorKind::DuplicateId);
                let Error::DuplicateEventId { id, seq, stream } = e else {
                    unreachable!()
                };
                assert!(ids.contains(&id), "{id} not in {ids:?}");
                let holder_event = s.get_event(&id).unwrap().expect("the id's event");
                assert_eq!((seq, stream.as_str()), (holder_event.seq, holder(&id)));
            }
            other => panic!("{stream_name} {ids:?}: expected a duplicate, got {other:?}"),
        }
    }
    assert_eq!(head(&*s), head_before);
}

/// An id given twice in one append is invalid input, whatever the log holds.
pub fn an_id_twice_in_one_append_is_refused(factory: &Factory<'_>) {
    let s = factory();
    assert_invalid(
        s.append("s", Any, vec![with_id("a"), with_id("a")]),
        "event id",
    );
    assert_invalid(
        s.append_multi(&[
            StreamAppend::new("s", Any, vec![with_id("a")]),
            StreamAppend::new("t", Any, vec![with_id("a")]),
        ]),
        "event id",
    );
    assert_eq!(head(&*s), 0);
}

/// An append under a key already in the log returns that append's result, whatever the events
/// and expectation given now; another key writes.
pub fn a_key_returns_the_first_result(factory: &Factory<'_>) {
    let s = factory();
    let first = s
        .append_request(AppendRequest::new("acct-1", Any, [ev("Debited", 5)]).key("cmd-1"))
        .unwrap();
    tick(&*s, "other", 1);
    assert_replays(&*s, &first, || {
        s.append_request(
            AppendRequest::new("acct-1", Exact(0), [ev("Debited", 999), ev("Debited", 1)])
                .key("cmd-1"),
        )
    });
    let single = s
        .append_request(AppendRequest::new("acct-1", NoStream, [ev("Debited", 2)]).key("cmd-1"))
        .unwrap();
    assert!(single.replayed);
    let other = s
        .append_request(AppendRequest::new("acct-1", Any, [ev("Debited", 5)]).key("cmd-2"))
        .unwrap();
    assert!(!other.replayed);
    assert_eq!(other.streams[0].1.version, 2);
    // Multi-stream appends take keys too.
    let req = || {
        AppendRequest::multi([
            StreamAppend::new("a", Any, [ev("T", 1)]),
            StreamAppend::new("b", Any, [ev("T", 2)]),
        ])
        .key("transfer-9")
    };
    let first = s.append_request(req()).unwrap();
    assert_replays(&*s, &first, || s.append_request(req()));
    assert_eq!(head(&*s), 5);
}

/// A key already used for an append to other streams (or the same in another order) is
/// refused as invalid input.
pub fn a_key_reused_for_other_streams_is_refused(factory: &Factory<'_>) {
    let s = factory();
    s.append_request(AppendRequest::new("a", Any, [ev("T", 1)]).key("k"))
        .unwrap();
    let e = err(s.append_request(AppendRequest::new("b", Any, [ev("T", 1)]).key("k")));
    assert!(
        matches!(
            &e,
            Error::InvalidInput {
                what: "idempotency key",
                ..
            }
        ),
        "{e}"
    );
    s.append_request(
        AppendRequest::new("a", Any, [ev("T", 1)])
            .and("b", Any, [ev("T", 2)])
            .key("k2"),
    )
    .unwrap();
    for req in [
        AppendRequest::new("b", Any, [ev("T", 1)]).and("a", Any, [ev("T", 2)]),
        AppendRequest::new("a", Any, [ev("T", 1)]),
    ] {
        assert_invalid(s.append_request(req.key("k2")), "idempotency key");
    }
    assert_eq!(head(&*s), 3);
}

/// Deleting events does not free their ids or keys: a retry is still recognised, another use
/// of the id is still a duplicate.
pub fn ids_and_keys_of_deleted_events_stay_taken(factory: &Factory<'_>) {
    let s = factory();
    let first = s
        .append_multi(&[StreamAppend::new(
            "s",
            Any,
            vec![with_id("d1"), with_id("d2")],
        )])
        .unwrap();
    let keyed = s
        .append_request(AppendRequest::new("k", Any, [ev("T", 1)]).key("key-1"))
        .unwrap();
    s.delete_stream("s", Any).unwrap();
    s.tombstone_stream("k", Any).unwrap();
    let head_before = head(&*s);
    assert!(s.get_event("d1").unwrap().is_none());
    assert_replays(&*s, &first, || {
        s.append_multi(&[StreamAppend::new(
            "s",
            Any,
            vec![with_id("d1"), with_id("d2")],
        )])
    });
    assert_kind(
        s.append("t", Any, vec![with_id("d2")]),
        ErrorKind::DuplicateId,
    );
    assert_replays(&*s, &keyed, || {
        s.append_request(AppendRequest::new("k", Any, [ev("T", 1)]).key("key-1"))
    });
    assert_eq!(head(&*s), head_before);
}

/// Threads retrying the same appends at once: each append is written once, and every other
/// attempt gets its result.
pub fn concurrent_retries_write_once(factory: &Factory<'_>) {
    let s = factory();
    let store = &*s;
    let results: Vec<Vec<eventfile::AppendResult>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(move || {
                    (0..10)
                        .map(|i| {
                            let id = format!("req-{i}");
                            store
                                .append(&format!("s-{i}"), Any, vec![with_id(&id)])
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(head(store), 10);
    for i in 0..10 {
        let seqs: Vec<u64> = results.iter().map(|r| r[i].first_seq).collect();
        assert!(seqs.iter().all(|&s| s == seqs[0]), "{seqs:?}");
        assert_eq!(results.iter().filter(|r| !r[i].replayed).count(), 1);
    }
    assert_gapless(&all(store));
}
