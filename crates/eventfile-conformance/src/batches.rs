//! Batches and multi-stream appends: contiguous positions, one commit time, all or nothing.

use eventfile::{
    AppendCondition, AppendRequest, ErrorKind, ExpectedVersion::*, Query, Read, StreamAppend,
};

use crate::Factory;
use crate::support::*;

/// A batch's events get consecutive seqs and versions, and share one time.
pub fn a_batch_gets_contiguous_positions_and_one_time(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "other", 0);
    let r = s
        .append("s", NoStream, (1..=5).map(|i| ev("A", i)).collect())
        .unwrap();
    assert_eq!((r.first_seq, r.last_seq, r.version), (2, 6, 5));
    let got = stream(&*s, "s", Read::forward());
    assert_eq!(seqs(&got), [2, 3, 4, 5, 6]);
    assert_eq!(versions(&got), [1, 2, 3, 4, 5]);
    assert!(got.iter().all(|e| e.time == got[0].time), "{got:?}");
    assert_gapless(&all(&*s));
}

/// A multi-stream append reports each stream's new version and seq range, in request order.
pub fn a_multi_stream_append_reports_each_stream(factory: &Factory<'_>) {
    let s = factory();
    s.append("b", NoStream, vec![ev("A", 0)]).unwrap();
    let r = s
        .append_multi(&[
            StreamAppend::new("a", NoStream, [ev("A", 1), ev("A", 2)]),
            StreamAppend::new("b", Exact(1), [ev("A", 3)]),
            StreamAppend::new("c", Any, [ev("A", 4)]),
        ])
        .unwrap();
    assert_eq!((r.first_seq, r.last_seq, r.replayed), (2, 5, false));
    let per: Vec<(&str, u64, u64, u64)> = r
        .streams
        .iter()
        .map(|(s, a)| (s.as_str(), a.version, a.first_seq, a.last_seq))
        .collect();
    assert_eq!(per, [("a", 2, 2, 3), ("b", 2, 4, 4), ("c", 1, 5, 5)]);
    let log = all(&*s);
    assert_gapless(&log);
    // One commit time for the whole batch.
    assert!(log[1..].iter().all(|e| e.time == log[1].time));
    // The same through an `AppendRequest` built with `and`.
    let r = s
        .append_request(AppendRequest::new("d", NoStream, [ev("A", 5)]).and(
            "a",
            Exact(2),
            [ev("A", 6)],
        ))
        .unwrap();
    assert_eq!((r.first_seq, r.last_seq), (6, 7));
    assert_eq!(r.streams[1].1.version, 3);
}

/// Whatever makes one stream's part fail (its expectation, a bad event, a tombstone, the
/// request's condition), nothing of any stream is written.
pub fn a_failing_stream_leaves_nothing_written(factory: &Factory<'_>) {
    let s = factory();
    s.append("b", NoStream, vec![ev("A", 0)]).unwrap();
    s.tombstone_stream("gone", NoStream).unwrap();
    let before = all(&*s);
    let with_b = |b: StreamAppend| {
        vec![
            StreamAppend::new("a", NoStream, [ev("A", 1), ev("A", 2)]),
            b,
            StreamAppend::new("c", Any, [ev("A", 4)]),
        ]
    };
    let e = err(s.append_multi(&with_b(StreamAppend::new("b", NoStream, [ev("A", 3)]))));
    match e {
        eventfile::Error::WrongExpectedVersion { stream, actual, .. } => {
            assert_eq!((stream.as_str(), actual), ("b", 1));
        }
        other => panic!("expected a conflict on b, got {other:?}"),
    }
    assert_kind(
        s.append_multi(&with_b(StreamAppend::new("b", Any, [ev("", 3)]))),
        ErrorKind::InvalidInput,
    );
    assert_kind(
        s.append_multi(&with_b(StreamAppend::new("gone", Any, [ev("A", 3)]))),
        ErrorKind::StreamDeleted,
    );
    let condition = AppendCondition::new(Query::new().stream("b"));
    assert_kind(
        s.append_request(
            AppendRequest::multi(with_b(StreamAppend::new("b", Any, [ev("A", 3)])))
                .condition(condition),
        ),
        ErrorKind::ConditionFailed,
    );
    assert_eq!(all(&*s), before);
    for name in ["a", "c"] {
        assert_eq!(version(&*s, name), 0, "{name}");
        assert!(stream(&*s, name, Read::forward()).is_empty());
    }
    assert_eq!(version(&*s, "b"), 1);
}

/// A stream may appear only once in an append.
pub fn a_stream_twice_in_one_append_is_refused(factory: &Factory<'_>) {
    let s = factory();
    let twice = [
        StreamAppend::new("a", Any, [ev("A", 1)]),
        StreamAppend::new("b", Any, [ev("A", 2)]),
        StreamAppend::new("a", Any, [ev("A", 3)]),
    ];
    assert_invalid(s.append_multi(&twice), "append");
    assert_invalid(
        s.append_request(AppendRequest::new("x", Any, [ev("A", 1)]).and("x", Any, [ev("A", 2)])),
        "append",
    );
    assert_eq!(head(&*s), 0);
}

/// Batches appended from several threads at once each land whole and in one piece.
pub fn concurrent_batches_never_interleave(factory: &Factory<'_>) {
    let s = factory();
    let store = &*s;
    std::thread::scope(|scope| {
        for t in 0..4 {
            scope.spawn(move || {
                for i in 0..8 {
                    let r = append(
                        store,
                        &format!("t{t}"),
                        (0..4).map(|k| ev("B", i * 4 + k)).collect(),
                    );
                    assert_eq!(r.last_seq - r.first_seq, 3);
                }
            });
        }
    });
    let log = all(store);
    assert_eq!(log.len(), 128);
    assert_gapless(&log);
    for chunk in log.chunks(4) {
        assert!(
            chunk.iter().all(|e| e.stream == chunk[0].stream),
            "a batch was split: {chunk:?}"
        );
    }
}

/// `append_requests` judges each request on its own, in order, as separate `append_request`
/// calls would: a conflict, bad input or a failed condition fails that request alone, a later
/// request sees the earlier ones' events, a retry replays, and only the successful requests'
/// events are in the log, gapless.
pub fn independent_requests_are_judged_each_on_its_own(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "other", 0);
    assert!(s.append_requests(Vec::new()).is_empty());
    let paid = |n: u64| ev("Paid", n).with_id(format!("paid-{n}"));
    let out = s.append_requests(vec![
        AppendRequest::new("a", NoStream, [paid(1), paid(2)]),
        AppendRequest::new("a", NoStream, [ev("A", 3)]),
        AppendRequest::new("b", Any, [ev("", 4)]),
        AppendRequest::new("a", Exact(2), [ev("A", 5)]),
        AppendRequest::new("a", NoStream, [paid(1), paid(2)]),
        AppendRequest::new("c", Any, [ev("A", 6)])
            .condition(AppendCondition::new(Query::new().stream("a")).after(1)),
        AppendRequest::new("d", NoStream, [ev("A", 7)]).key("key-d"),
    ]);
    assert_eq!(out.len(), 7);
    let ok = |i: usize| match &out[i] {
        Ok(r) => (r.first_seq, r.last_seq, r.replayed),
        Err(e) => panic!("request {i} failed: {e}"),
    };
    let failed = |i: usize| match &out[i] {
        Ok(r) => panic!("request {i} should have failed, got {r:?}"),
        Err(e) => e.kind(),
    };
    assert_eq!(ok(0), (2, 3, false));
    assert_eq!(failed(1), ErrorKind::Conflict);
    assert_eq!(failed(2), ErrorKind::InvalidInput);
    assert_eq!(ok(3), (4, 4, false));
    assert_eq!(out[3].as_ref().unwrap().streams[0].1.version, 3);
    assert_eq!(ok(4), (2, 3, true));
    assert_eq!(failed(5), ErrorKind::ConditionFailed);
    assert_eq!(ok(6), (5, 5, false));
    let log = all(&*s);
    assert_gapless(&log);
    assert_eq!(seqs(&log), [1, 2, 3, 4, 5]);
    let a = stream(&*s, "a", Read::forward());
    assert_eq!(versions(&a), [1, 2, 3]);
    assert_eq!(version(&*s, "b"), 0);
    assert_eq!(version(&*s, "c"), 0);
    // Durable and visible on return, as after `append_request`.
    assert_eq!(head(&*s), 5);
}

/// `append_requests` judges each request before the ones after it, even where a later one
/// would change its answer: a request expecting a stream that a later request creates
/// conflicts, and a condition that a later request's event would fail passes.
pub fn each_request_is_judged_before_the_ones_after_it(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "other", 0);
    tick(&*s, "other", 1);
    let nothing_in_t = || AppendCondition::new(Query::new().stream("t")).after(2);
    let out: Vec<Result<(u64, u64), ErrorKind>> = s
        .append_requests(vec![
            AppendRequest::new("s", StreamExists, [ev("A", 1)]),
            AppendRequest::new("s", NoStream, [ev("A", 2)]),
            AppendRequest::new("s", NoStream, [ev("A", 3)]),
            AppendRequest::new("s", Exact(1), [ev("A", 4)]),
            AppendRequest::new("c", Any, [ev("A", 5)]).condition(nothing_in_t()),
            AppendRequest::new("t", Any, [ev("A", 6)]),
            AppendRequest::new("u", Any, [ev("A", 7)]).condition(nothing_in_t()),
            AppendRequest::new("s", Exact(2), [ev("A", 8)]),
        ])
        .iter()
        .map(|r| {
            r.as_ref()
                .map(|r| (r.first_seq, r.last_seq))
                .map_err(|e| e.kind())
        })
        .collect();
    assert_eq!(
        out,
        [
            Err(ErrorKind::Conflict),
            Ok((3, 3)),
            Err(ErrorKind::Conflict),
            Ok((4, 4)),
            Ok((5, 5)),
            Ok((6, 6)),
            Err(ErrorKind::ConditionFailed),
            Ok((7, 7)),
        ]
    );
    let log = all(&*s);
    assert_gapless(&log);
    assert_eq!(versions(&stream(&*s, "s", Read::forward())), [1, 2, 3]);
}
