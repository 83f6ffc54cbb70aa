//! Expected versions: each of the four kinds, and the conflict they raise, which names the
//! stream's actual version and writes nothing.

use eventfile::{Error, ErrorKind, ExpectedVersion::*, Read};

use crate::Factory;
use crate::support::*;

/// Checks a conflict's contents: the stream, what was expected, the actual version.
#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(
    r: eventfile::Result<T>,
    stream: &str,
    expected: eventfile::ExpectedVersion,
    actual: u64,
) {
    match err(r) {
        Error::WrongExpectedVersion {
            stream: s,
            expected: e,
            actual: a,
        } => assert_eq!((s.as_str(), e, a), (stream, expected, actual)),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// `NoStream` holds only for a stream with no events.
pub fn no_stream_requires_an_empty_stream(factory: &Factory<'_>) {
    let s = factory();
    let r = s.append("s", NoStream, vec![ev("A", 1)]).unwrap();
    assert_eq!(
        (r.version, r.first_seq, r.last_seq, r.replayed),
        (1, 1, 1, false)
    );
    assert_conflict(s.append("s", NoStream, vec![ev("A", 2)]), "s", NoStream, 1);
    // Another stream is still empty.
    assert_eq!(
        s.append("t", NoStream, vec![ev("A", 3)]).unwrap().version,
        1
    );
}

/// `Exact(v)` holds when the stream is at `v`; `Exact(0)` is an empty stream.
pub fn exact_names_the_current_version(factory: &Factory<'_>) {
    let s = factory();
    assert_eq!(
        s.append("s", Exact(0), vec![ev("A", 1)]).unwrap().version,
        1
    );
    assert_eq!(
        s.append("s", Exact(1), vec![ev("A", 2)]).unwrap().version,
        2
    );
    let e = err(s.append("s", Exact(1), vec![ev("A", 3)]));
    assert!(
        e.to_string().contains("expected 1, actual version is 2"),
        "{e}"
    );
    assert_conflict(s.append("s", Exact(1), vec![ev("A", 3)]), "s", Exact(1), 2);
    assert_conflict(s.append("s", Exact(7), vec![ev("A", 3)]), "s", Exact(7), 2);
    assert_conflict(
        s.append("new", Exact(1), vec![ev("A", 3)]),
        "new",
        Exact(1),
        0,
    );
    assert_eq!(version(&*s, "s"), 2);
}

/// `StreamExists` holds once the stream has an event.
pub fn stream_exists_requires_an_event(factory: &Factory<'_>) {
    let s = factory();
    assert_conflict(
        s.append("s", StreamExists, vec![ev("A", 0)]),
        "s",
        StreamExists,
        0,
    );
    s.append("s", NoStream, vec![ev("A", 1)]).unwrap();
    let r = s.append("s", StreamExists, vec![ev("A", 2)]).unwrap();
    assert_eq!((r.version, r.first_seq), (2, 2));
}

/// `Any` never fails, on new and existing streams.
pub fn any_always_appends(factory: &Factory<'_>) {
    let s = factory();
    for (stream, v) in [("s", 1), ("s", 2), ("t", 1), ("s", 3)] {
        assert_eq!(s.append(stream, Any, vec![ev("A", v)]).unwrap().version, v);
    }
    assert_eq!(version(&*s, "s"), 3);
    assert_eq!(version(&*s, "never"), 0);
}

/// A failed expectation is a typed conflict and leaves the log as it was.
pub fn a_conflict_writes_nothing(factory: &Factory<'_>) {
    let s = factory();
    s.append("s", NoStream, vec![ev("A", 1), ev("A", 2)])
        .unwrap();
    let before = all(&*s);
    for expected in [NoStream, Exact(0), Exact(1), Exact(3)] {
        let e = err(s.append("s", expected, vec![ev("B", 3), ev("B", 4)]));
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        assert!(e.is_conflict());
    }
    assert_kind(
        s.append("empty", StreamExists, vec![ev("B", 5)]),
        ErrorKind::Conflict,
    );
    assert_eq!(all(&*s), before);
    assert_eq!(head(&*s), 2);
    assert_eq!(version(&*s, "s"), 2);
    assert_eq!(version(&*s, "empty"), 0);
    assert!(stream(&*s, "empty", Read::forward()).is_empty());
    // The stream goes on from where it was.
    assert_eq!(
        s.append("s", Exact(2), vec![ev("A", 3)]).unwrap().version,
        3
    );
}
