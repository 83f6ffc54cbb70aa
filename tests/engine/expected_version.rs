//! Every expected-version mode, and the conflict error's contents.

use crate::support::*;
use eventfile::{Error, ExpectedVersion::*, Read};

#[test]
fn no_stream_then_exact_then_exists_then_any() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    assert_eq!(store.stream_version("s"), 0);

    // StreamExists on an empty stream fails.
    let err = store.append("s", StreamExists, [ev("A", 0)]).unwrap_err();
    assert!(matches!(
        err,
        Error::WrongExpectedVersion {
            actual: 0,
            expected: StreamExists,
            ..
        }
    ));

    let r = store.append("s", NoStream, [ev("A", 1)]).unwrap();
    assert_eq!((r.version, r.first_seq, r.last_seq), (1, 1, 1));

    let err = store.append("s", NoStream, [ev("A", 2)]).unwrap_err();
    match err {
        Error::WrongExpectedVersion {
            stream,
            expected,
            actual,
        } => {
            assert_eq!((stream.as_str(), expected, actual), ("s", NoStream, 1));
        }
        other => panic!("wrong error {other}"),
    }

    assert_eq!(
        store.append("s", Exact(1), [ev("A", 2)]).unwrap().version,
        2
    );
    let err = store.append("s", Exact(1), [ev("A", 3)]).unwrap_err();
    assert!(matches!(
        err,
        Error::WrongExpectedVersion {
            actual: 2,
            expected: Exact(1),
            ..
        }
    ));
    assert!(
        err.to_string().contains("expected 1, actual version is 2"),
        "{err}"
    );
    let err = store.append("s", Exact(7), [ev("A", 3)]).unwrap_err();
    assert!(err.is_conflict());

    assert_eq!(
        store
            .append("s", StreamExists, [ev("A", 3)])
            .unwrap()
            .version,
        3
    );
    assert_eq!(store.append("s", Any, [ev("A", 4)]).unwrap().version, 4);
    assert_eq!(store.append("t", Any, [ev("A", 5)]).unwrap().version, 1);
    assert_eq!(
        store.append("u", Exact(0), [ev("A", 6)]).unwrap().version,
        1
    );

    // Nothing was written by the failed appends.
    let events = all(&store);
    assert_eq!(events.len(), 6);
    assert_gapless(&events);
    let s: Vec<u64> = stream(&store, "s", Read::forward())
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(s, [1, 2, 3, 4]);
}

#[test]
fn conflicts_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = small_store(dir.path(), 1 << 20);
        store
            .append("s", NoStream, [ev("A", 1), ev("A", 2)])
            .unwrap();
    }
    let store = small_store(dir.path(), 1 << 20);
    assert_eq!(store.stream_version("s"), 2);
    assert!(
        store
            .append("s", Exact(1), [ev("A", 3)])
            .unwrap_err()
            .is_conflict()
    );
    assert_eq!(
        store.append("s", Exact(2), [ev("A", 3)]).unwrap().version,
        3
    );
}
