//! Batch and multi-stream atomicity.

use crate::support::*;
use eventfile::{Error, ExpectedVersion::*, Read, StreamAppend};

#[test]
fn a_batch_gets_contiguous_seqs_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    append_one(&store, "other", 0);
    let r = store
        .append("s", NoStream, (1..=5).map(|i| ev("A", i)))
        .unwrap();
    assert_eq!((r.first_seq, r.last_seq, r.version), (2, 6, 5));
    let got = stream(&store, "s", Read::forward());
    assert_eq!(
        got.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 3, 4, 5, 6]
    );
    assert_eq!(
        got.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    // One commit time for the whole batch.
    assert!(got.iter().all(|e| e.time == got[0].time));
}

#[test]
fn multi_stream_append_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    store.append("b", NoStream, [ev("A", 0)]).unwrap();

    // The expectation on `b` fails: nothing is written to `a` or `c` either.
    let parts = [
        StreamAppend::new("a", NoStream, [ev("A", 1), ev("A", 2)]),
        StreamAppend::new("b", NoStream, [ev("A", 3)]),
        StreamAppend::new("c", Any, [ev("A", 4)]),
    ];
    match store.append_multi(&parts).unwrap_err() {
        Error::WrongExpectedVersion { stream, actual, .. } => {
            assert_eq!((stream.as_str(), actual), ("b", 1));
        }
        other => panic!("{other}"),
    }
    assert_eq!(store.head_seq(), 1);
    assert_eq!(store.stream_version("a"), 0);

    let parts = [
        StreamAppend::new("a", NoStream, [ev("A", 1), ev("A", 2)]),
        StreamAppend::new("b", Exact(1), [ev("A", 3)]),
        StreamAppend::new("c", Any, [ev("A", 4)]),
    ];
    let r = store.append_multi(&parts).unwrap();
    assert_eq!((r.first_seq, r.last_seq), (2, 5));
    let per: Vec<(&str, u64, u64, u64)> = r
        .streams
        .iter()
        .map(|(s, a)| (s.as_str(), a.version, a.first_seq, a.last_seq))
        .collect();
    assert_eq!(per, [("a", 2, 2, 3), ("b", 2, 4, 4), ("c", 1, 5, 5)]);
    let events = all(&store);
    assert_gapless(&events);
    assert_eq!(events.len(), 5);
}

#[test]
fn concurrent_batches_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 64 * 1024);
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..25 {
                    let r = store
                        .append(&format!("t{t}"), Any, (0..4).map(|k| ev("B", i * 4 + k)))
                        .unwrap();
                    assert_eq!(r.last_seq - r.first_seq, 3);
                }
            });
        }
    });
    let events = all(&store);
    assert_eq!(events.len(), 400);
    assert_gapless(&events);
    for chunk in events.chunks(4) {
        assert!(
            chunk.iter().all(|e| e.stream == chunk[0].stream),
            "a batch was split"
        );
    }
}
