//! Retried appends: by event id (the same batch again) and by idempotency key.

use eventfile::{Error, ExpectedVersion, NewEvent, Query, Read, StreamAppend};
use serde_json::json;

use crate::support::{all, assert_gapless, fast_store, small_store, stream};

fn with_id(id: &str) -> NewEvent {
    NewEvent::new("Paid", json!({ "id": id })).with_id(id)
}

#[test]
fn a_retried_batch_returns_the_original_result_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    store
        .append(
            "other",
            ExpectedVersion::Any,
            [NewEvent::new("X", json!(1))],
        )
        .unwrap();
    let batch = || [with_id("a"), with_id("b"), with_id("c")];
    let first = store
        .append("order-1", ExpectedVersion::NoStream, batch())
        .unwrap();
    assert!(!first.replayed);
    // The retry names the expectation of the original request, which no longer holds: the
    // retry is still recognised, before the version check.
    let again = store
        .append("order-1", ExpectedVersion::NoStream, batch())
        .unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.version, again.first_seq, again.last_seq),
        (first.version, first.first_seq, first.last_seq)
    );
    assert_eq!(store.head_seq(), 4);
    assert_eq!(stream(&store, "order-1", Read::forward()).len(), 3);
}

#[test]
fn retries_are_recognised_after_a_restart_and_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = small_store(dir.path(), 4096);
        let r = store
            .append(
                "order-1",
                ExpectedVersion::Any,
                [with_id("p-1"), with_id("p-2")],
            )
            .unwrap();
        // Push the batch into a sealed segment, found through its sidecar.
        crate::support::fill_until_segments(&store, dir.path(), 3);
        r
    };
    let store = small_store(dir.path(), 4096);
    assert!(crate::support::files_with_ext(dir.path(), "jsonl").len() > 2);
    let head = store.head_seq();
    let again = store
        .append(
            "order-1",
            ExpectedVersion::Any,
            [with_id("p-1"), with_id("p-2")],
        )
        .unwrap();
    assert!(again.replayed);
    assert_eq!((again.first_seq, again.version), (first.first_seq, 2));
    assert_eq!(store.head_seq(), head);
    assert_gapless(&all(&store));
}

#[test]
fn any_other_reuse_of_an_id_is_a_duplicate_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    store
        .append("s", ExpectedVersion::Any, [with_id("a"), with_id("b")])
        .unwrap();
    store
        .append("s", ExpectedVersion::Any, [with_id("c")])
        .unwrap();
    let head = store.head_seq();
    let cases: Vec<(&str, Vec<NewEvent>)> = vec![
        // Part of the batch.
        ("s", vec![with_id("a")]),
        // The batch plus a new event.
        ("s", vec![with_id("a"), with_id("b"), with_id("new")]),
        // A new event first.
        ("s", vec![with_id("new"), with_id("a")]),
        // The same ids to another stream.
        ("t", vec![with_id("a"), with_id("b")]),
        // Ids of two batches.
        ("s", vec![with_id("b"), with_id("c")]),
        // Reordered.
        ("s", vec![with_id("b"), with_id("a")]),
    ];
    for (stream_name, events) in cases {
        let ids: Vec<String> = events.iter().map(|e| e.id().unwrap().to_owned()).collect();
        match store.append(stream_name, ExpectedVersion::Any, events) {
            Err(Error::DuplicateEventId { id, seq, stream }) => {
                assert!(ids.contains(&id), "{id} not in {ids:?}");
                assert!(seq >= 1 && seq <= head);
                assert_eq!(stream, "s");
            }
            other => panic!("{stream_name} {ids:?}: expected a duplicate, got {other:?}"),
        }
    }
    assert_eq!(store.head_seq(), head);
}

#[test]
fn an_id_twice_in_one_append_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    let err = store
        .append("s", ExpectedVersion::Any, [with_id("a"), with_id("a")])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(store.head_seq(), 0);
}

#[test]
fn multi_stream_retries_replay_every_part() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    let req = || {
        vec![
            StreamAppend::new("a", ExpectedVersion::NoStream, vec![with_id("m1")]),
            StreamAppend::new(
                "b",
                ExpectedVersion::NoStream,
                vec![with_id("m2"), with_id("m3")],
            ),
        ]
    };
    let first = store.append_multi(&req()).unwrap();
    let again = store.append_multi(&req()).unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.first_seq, again.last_seq),
        (first.first_seq, first.last_seq)
    );
    for ((s1, r1), (s2, r2)) in first.streams.iter().zip(&again.streams) {
        assert_eq!(s1, s2);
        assert_eq!(
            (r1.version, r1.first_seq, r1.last_seq),
            (r2.version, r2.first_seq, r2.last_seq)
        );
    }
    assert_eq!(store.head_seq(), 3);
}

#[test]
fn an_idempotency_key_returns_the_first_result_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = small_store(dir.path(), 4096);
        let r = store
            .append_with_key(
                "cmd-1",
                "acct-1",
                ExpectedVersion::Any,
                [NewEvent::new("Debited", json!(5))],
            )
            .unwrap();
        // Push the batch into a sealed segment, found through its sidecar.
        crate::support::fill_until_segments(&store, dir.path(), 3);
        r
    };
    let store = small_store(dir.path(), 4096);
    let head = store.head_seq();
    // Different events, different expectation: the command already ran.
    let again = store
        .append_with_key(
            "cmd-1",
            "acct-1",
            ExpectedVersion::Exact(0),
            [
                NewEvent::new("Debited", json!(999)),
                NewEvent::new("Debited", json!(1)),
            ],
        )
        .unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.first_seq, again.last_seq, again.version),
        (first.first_seq, first.last_seq, 1)
    );
    assert_eq!(store.head_seq(), head);
    // The key is in the log, on the batch's first record.
    let seg = std::fs::read_to_string(dir.path().join("00000000000000000001.jsonl")).unwrap();
    assert!(seg.lines().nth(1).unwrap().contains(r#""key":"cmd-1""#));
    // Another key writes.
    let other = store
        .append_with_key(
            "cmd-2",
            "acct-1",
            ExpectedVersion::Any,
            [NewEvent::new("Debited", json!(5))],
        )
        .unwrap();
    assert!(!other.replayed);
    assert_eq!(other.version, 2);
}

#[test]
fn a_key_reused_for_another_stream_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    store
        .append_with_key(
            "k",
            "a",
            ExpectedVersion::Any,
            [NewEvent::new("T", json!(1))],
        )
        .unwrap();
    let err = store
        .append_with_key(
            "k",
            "b",
            ExpectedVersion::Any,
            [NewEvent::new("T", json!(1))],
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                what: "idempotency key",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("`a`") || err.to_string().contains(" a "),
        "{err}"
    );
    assert_eq!(store.head_seq(), 1);
    for bad in ["", "a\nb"] {
        assert!(matches!(
            store.append_with_key(
                bad,
                "a",
                ExpectedVersion::Any,
                [NewEvent::new("T", json!(1))]
            ),
            Err(Error::InvalidInput { .. })
        ));
    }
}

#[test]
fn multi_stream_appends_take_keys_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    let req = || {
        vec![
            StreamAppend::new(
                "a",
                ExpectedVersion::Any,
                vec![NewEvent::new("T", json!(1))],
            ),
            StreamAppend::new(
                "b",
                ExpectedVersion::Any,
                vec![NewEvent::new("T", json!(2))],
            ),
        ]
    };
    let first = store.append_multi_with_key("transfer-9", &req()).unwrap();
    let again = store.append_multi_with_key("transfer-9", &req()).unwrap();
    assert!(again.replayed && !first.replayed);
    assert_eq!(again.first_seq, first.first_seq);
    assert_eq!(store.head_seq(), 2);
}

#[test]
fn concurrent_retries_write_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..20)
                    .map(|i| {
                        let id = format!("req-{i}");
                        store
                            .append(&format!("s-{i}"), ExpectedVersion::Any, [with_id(&id)])
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<_>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(store.head_seq(), 20);
    for i in 0..20 {
        let seqs: Vec<u64> = results.iter().map(|r| r[i].first_seq).collect();
        assert!(seqs.iter().all(|&s| s == seqs[0]), "{seqs:?}");
        assert_eq!(results.iter().filter(|r| !r[i].replayed).count(), 1);
    }
}

#[test]
fn dedup_lookups_use_the_index_not_memory_per_event() {
    // Many events with ids: lookups stay correct for every one of them after a reopen.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = fast_store(dir.path(), 64 * 1024);
        for i in 0..2000 {
            store
                .append(
                    &format!("s-{}", i % 13),
                    ExpectedVersion::Any,
                    [with_id(&format!("id-{i}"))],
                )
                .unwrap();
        }
    }
    let store = fast_store(dir.path(), 64 * 1024);
    for i in (0..2000).step_by(97) {
        let r = store
            .append(
                &format!("s-{}", i % 13),
                ExpectedVersion::Any,
                [with_id(&format!("id-{i}"))],
            )
            .unwrap();
        assert!(r.replayed);
        assert_eq!(r.first_seq, i + 1);
    }
    assert_eq!(store.count(&Query::new()).unwrap(), 2000);
}

/// Ids in no particular order across sealed segments: a lookup skips a segment only when the id
/// sorts outside the segment's least and greatest id, so a reused id is found wherever it is.
#[test]
fn a_reused_id_is_found_in_any_sealed_segment_whatever_the_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 4 << 10);
    let ids = ["m-5", "a-1", "z-9", "c-3", "y-8", "b-2", "x-7"];
    for (n, id) in ids.iter().enumerate() {
        for k in 0..30 {
            let e = crate::support::ev("A", k).with_id(format!("{id}-{k}"));
            store
                .append(&format!("s{n}"), ExpectedVersion::Any, [e])
                .unwrap();
        }
    }
    for (n, id) in ids.iter().enumerate() {
        for k in [0, 17, 29] {
            let reused = crate::support::ev("B", k).with_id(format!("{id}-{k}"));
            match store.append("other", ExpectedVersion::Any, [reused]) {
                Err(Error::DuplicateEventId { stream, .. }) => assert_eq!(stream, format!("s{n}")),
                other => panic!("`{id}-{k}` should be a duplicate, got {other:?}"),
            }
        }
    }
    // Inside some segment's range but in none: written.
    store
        .append(
            "other",
            ExpectedVersion::Any,
            [crate::support::ev("C", 0).with_id("n-0")],
        )
        .unwrap();
}
