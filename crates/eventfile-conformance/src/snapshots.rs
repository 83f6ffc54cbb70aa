//! Snapshots: a stream's state saved at a version it has, loaded back exactly (the newest that
//! still describes the stream), refused below a truncation, removed with the stream.

use eventfile::{ErrorKind, EventStore, ExpectedVersion::*, Snapshot};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::Factory;
use crate::support::*;

fn raw(v: Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(&v).expect("a value serialises")
}

fn save(s: &dyn EventStore, stream: &str, version: u64, state: Value) -> Snapshot {
    s.save_snapshot(stream, version, &raw(state))
        .unwrap_or_else(|e| panic!("snapshot of {stream} at {version}: {e}"))
}

/// The version of the snapshot `load_snapshot` returns, if any.
fn loaded(s: &dyn EventStore, stream: &str) -> Option<u64> {
    s.load_snapshot(stream)
        .expect("load_snapshot")
        .map(|x| x.version)
}

/// Checks that `got` is what `save_snapshot` returned.
#[track_caller]
fn assert_same(got: &Snapshot, saved: &Snapshot) {
    assert_eq!(
        (got.stream.as_str(), got.version, got.state.get(), got.time),
        (
            saved.stream.as_str(),
            saved.version,
            saved.state.get(),
            saved.time
        )
    );
}

/// The snapshot of the highest version is loaded, whatever order they were saved in; saving a
/// version again replaces it; streams do not share snapshots.
pub fn the_newest_snapshot_is_loaded(factory: &Factory<'_>) {
    let s = factory();
    assert!(s.load_snapshot("acct-1").unwrap().is_none());
    for v in 1..=6 {
        tick(&*s, "acct-1", v);
        tick(&*s, "acct-2", v);
    }
    let first = save(&*s, "acct-1", 2, json!({"balance": 20}));
    assert_eq!((first.stream.as_str(), first.version), ("acct-1", 2));
    assert_same(&s.load_snapshot("acct-1").unwrap().unwrap(), &first);
    let newest = save(&*s, "acct-1", 5, json!({"balance": 50}));
    save(&*s, "acct-1", 4, json!({"balance": 40}));
    assert_same(&s.load_snapshot("acct-1").unwrap().unwrap(), &newest);
    let again = save(&*s, "acct-1", 5, json!({"balance": 55}));
    let got = s.load_snapshot("acct-1").unwrap().unwrap();
    assert_same(&got, &again);
    assert_eq!(got.decode::<Value>().unwrap(), json!({"balance": 55}));
    assert_eq!(loaded(&*s, "acct-2"), None);
    save(&*s, "acct-2", 6, json!(null));
    assert_eq!(loaded(&*s, "acct-2"), Some(6));
    assert_eq!(loaded(&*s, "acct-1"), Some(5));
    assert_eq!(loaded(&*s, "acct-3"), None);
    // Snapshots are not events.
    assert_eq!(head(&*s), 12);
    // A snapshot's time is a commit-style time, near the events'.
    let last = all(&*s).pop().unwrap();
    assert!(
        (got.time - last.time).abs() < 60_000_000,
        "{} vs {}",
        got.time,
        last.time
    );
}

/// Only a version the stream has can be snapshotted: not 0, not above its version, not of a
/// stream with no events. Nothing is saved.
pub fn a_snapshot_of_a_version_the_stream_lacks_is_refused(factory: &Factory<'_>) {
    let s = factory();
    for v in 1..=5 {
        tick(&*s, "s", v);
    }
    for bad in [0, 6, 100, u64::MAX] {
        assert_invalid(
            s.save_snapshot("s", bad, &raw(json!({}))),
            "snapshot version",
        );
    }
    assert_invalid(
        s.save_snapshot("nobody", 1, &raw(json!({}))),
        "snapshot version",
    );
    assert_invalid(
        s.save_snapshot("nobody", 0, &raw(json!({}))),
        "snapshot version",
    );
    assert_eq!(loaded(&*s, "s"), None);
    assert_eq!(loaded(&*s, "nobody"), None);
    save(&*s, "s", 5, json!({}));
    assert_eq!(loaded(&*s, "s"), Some(5));
    assert_eq!(head(&*s), 5);
}

/// A snapshot must include every deleted event of a truncated stream: below the truncation it
/// is refused, and one saved before the truncation is no longer loaded.
pub fn a_snapshot_below_a_truncation_is_refused_and_not_loaded(factory: &Factory<'_>) {
    let s = factory();
    for v in 1..=6 {
        tick(&*s, "s", v);
    }
    save(&*s, "s", 2, json!({"at": 2}));
    s.truncate_stream("s", 4).unwrap();
    // At 2 it would miss the deleted event 3; at 3 it covers everything deleted.
    assert_eq!(loaded(&*s, "s"), None);
    assert_invalid(s.save_snapshot("s", 2, &raw(json!({}))), "snapshot version");
    assert_invalid(s.save_snapshot("s", 1, &raw(json!({}))), "snapshot version");
    save(&*s, "s", 3, json!({"at": 3}));
    assert_eq!(loaded(&*s, "s"), Some(3));
    save(&*s, "s", 6, json!({"at": 6}));
    assert_eq!(loaded(&*s, "s"), Some(6));
    // Truncating further leaves the newest usable one.
    s.truncate_stream("s", 5).unwrap();
    assert_eq!(loaded(&*s, "s"), Some(6));
    s.truncate_stream("s", 7).unwrap();
    assert_eq!(loaded(&*s, "s"), Some(6));
    tick(&*s, "s", 7);
    assert_eq!(loaded(&*s, "s"), Some(6));
}

/// Deleting or tombstoning a stream removes its snapshots: after a soft delete none is loaded,
/// even once the stream is appended to again, and none of a version the deletion ended is
/// taken (unlike a truncation's `before - 1`); a tombstoned stream's snapshots are refused like
/// its reads.
pub fn deleting_a_stream_removes_its_snapshots(factory: &Factory<'_>) {
    let s = factory();
    for v in 1..=3 {
        tick(&*s, "a", v);
        tick(&*s, "b", v);
        tick(&*s, "c", v);
    }
    for name in ["a", "b", "c"] {
        save(&*s, name, 3, json!({"n": 3}));
    }
    s.delete_stream("a", Any).unwrap();
    assert_eq!(loaded(&*s, "a"), None);
    // A snapshot of the deleted life, as a worker that read the stream before the deletion
    // would save it, is refused: it would be loaded once the stream lives again.
    assert_invalid(s.save_snapshot("a", 3, &raw(json!({}))), "snapshot version");
    tick(&*s, "a", 4);
    // The one at 3 would describe every deleted event, but it was removed with the stream.
    assert_eq!(loaded(&*s, "a"), None);
    assert_invalid(s.save_snapshot("a", 3, &raw(json!({}))), "snapshot version");
    save(&*s, "a", 4, json!({"n": 4}));
    assert_eq!(loaded(&*s, "a"), Some(4));
    s.tombstone_stream("b", Exact(3)).unwrap();
    assert_kind(s.load_snapshot("b"), ErrorKind::StreamDeleted);
    assert_kind(
        s.save_snapshot("b", 3, &raw(json!({}))),
        ErrorKind::StreamDeleted,
    );
    // Others keep theirs.
    assert_eq!(loaded(&*s, "c"), Some(3));
}

/// The state comes back as the JSON text saved, of any JSON kind: every digit of every number,
/// every character of every string. Text on one line is kept as it is; text over several lines
/// is put on one by removing the whitespace outside strings.
pub fn a_snapshot_state_is_kept_exactly(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "s", 1);
    let cases = [
        (
            "{\n  \"items\": [1, 18446744073709551616, 1.50, -0.0, 1E+2],\n  \"note\": \"a  b \\\"c\\\" Zürich\\n\"\n}",
            r#"{"items":[1,18446744073709551616,1.50,-0.0,1E+2],"note":"a  b \"c\" Zürich\n"}"#,
        ),
        ("[ ]", "[ ]"),
        ("[\n]", "[]"),
        ("\"text\"", "\"text\""),
        ("12345678901234567890123", "12345678901234567890123"),
        ("null", "null"),
        (
            "{\"\u{1F600}\": {\"deep\": [[{}]]}}",
            "{\"\u{1F600}\": {\"deep\": [[{}]]}}",
        ),
        ("{\"a\":\r\n 1}", "{\"a\":1}"),
    ];
    for (given, kept) in cases {
        let state = RawValue::from_string(given.to_owned()).unwrap();
        let saved = s.save_snapshot("s", 1, &state).unwrap();
        assert_eq!(saved.state.get(), kept);
        let got = s.load_snapshot("s").unwrap().unwrap();
        assert_eq!(got.state.get(), kept, "{given}");
        assert_same(&got, &saved);
    }
}
