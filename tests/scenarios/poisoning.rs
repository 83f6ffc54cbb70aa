//! Write and sync failures poison the handle (`writer.rs` never retries a failed write or
//! fsync); a reopen recovers every acknowledged event.

use std::sync::Arc;

use serde_json::json;

use eventfile::{Error, ExpectedVersion, FaultyStorage, NewEvent, OpenOptions, Read, Store};

fn open(dir: &std::path::Path, storage: &Arc<FaultyStorage>, segment_bytes: u64) -> Store {
    OpenOptions::new()
        .segment_bytes(segment_bytes)
        .storage(Arc::new(Arc::clone(storage)))
        .open(dir)
        .unwrap()
}

fn ev(n: u64) -> NewEvent {
    NewEvent::new("T", json!({ "n": n }))
}

/// The versions of `stream`'s events, in order.
pub(crate) fn versions(store: &Store, stream: &str) -> Vec<u64> {
    store
        .read_stream(stream, Read::forward())
        .unwrap()
        .map(|e| e.unwrap().version)
        .collect()
}

/// `err` is the failed `fdatasync`'s own error.
pub(crate) fn assert_sync_error(err: &Error) {
    assert!(
        matches!(
            err,
            Error::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{err}"
    );
}

/// Checks the poisoned handle, then reopens on the real file system and checks recovery.
fn assert_poisoned_then_recovers(dir: &std::path::Path, store: Store, acked: u64) {
    assert_poisoned_then_recovers_upto(dir, store, acked, acked + 1);
}

/// The same, when the failed call may have written up to `written` events.
fn assert_poisoned_then_recovers_upto(
    dir: &std::path::Path,
    store: Store,
    acked: u64,
    written: u64,
) {
    let err = store
        .append("s", ExpectedVersion::Any, [ev(99)])
        .unwrap_err();
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    assert!(err.to_string().contains("reopen"), "{err}");
    assert!(matches!(store.sync(), Err(Error::Poisoned { .. })));
    // Readers keep working on what was acknowledged.
    assert_eq!(versions(&store, "s"), (1..=acked).collect::<Vec<_>>());
    drop(store);

    let store = Store::open(dir).unwrap();
    let got = versions(&store, "s");
    // The failed append's outcome is unknown; every acknowledged one is there.
    assert!(
        got.len() as u64 >= acked && got.len() as u64 <= written,
        "{got:?}"
    );
    assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>());
    let r = store.append("s", ExpectedVersion::Any, [ev(100)]).unwrap();
    assert_eq!(r.version, got.len() as u64 + 1);
    drop(store);
    assert!(eventfile::verify(dir).unwrap().is_sound());
}

#[test]
fn a_failed_fsync_poisons_and_is_never_retried() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FaultyStorage::new();
    let store = open(dir.path(), &storage, 1 << 20);
    for i in 0..5 {
        store.append("s", ExpectedVersion::Any, [ev(i)]).unwrap();
    }
    storage.fail_next_sync();
    let err = store
        .append("s", ExpectedVersion::Any, [ev(5)])
        .unwrap_err();
    assert_sync_error(&err);
    assert_eq!(store.head_seq(), 5, "an unsynced event became visible");
    assert_poisoned_then_recovers(dir.path(), store, 5);
}

/// A batch with enough index work to ask for its sync before adding its entries (`commit.rs`,
/// `Ahead`; 600 new streams), whose sync fails, gets that sync's error as a small batch does,
/// and poisons.
#[test]
fn a_large_batch_whose_sync_fails_gets_the_syncs_error() {
    use eventfile::StreamAppend;
    let dir = tempfile::tempdir().unwrap();
    let storage = FaultyStorage::new();
    let store = open(dir.path(), &storage, 1 << 20);
    for i in 0..5 {
        store.append("s", ExpectedVersion::Any, [ev(i)]).unwrap();
    }
    let new_streams = |round: u64| -> Vec<StreamAppend> {
        (0..600)
            .map(|i| StreamAppend::new(format!("n{round}-{i}"), ExpectedVersion::NoStream, [ev(i)]))
            .collect()
    };
    // Succeeds, sync and all, whichever thread runs it.
    store.append_multi(&new_streams(0)).unwrap();
    storage.fail_next_sync();
    let err = store.append_multi(&new_streams(1)).unwrap_err();
    assert_sync_error(&err);
    assert_eq!(store.head_seq(), 605, "an unsynced event became visible");
    assert_poisoned_then_recovers_upto(dir.path(), store, 5, 5);
}

#[test]
fn a_short_write_poisons_and_recovery_cuts_the_torn_batch() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FaultyStorage::new();
    let store = open(dir.path(), &storage, 1 << 20);
    for i in 0..5 {
        store.append("s", ExpectedVersion::Any, [ev(i)]).unwrap();
    }
    storage.fail_next_write();
    let err = store
        .append("s", ExpectedVersion::Any, [ev(5), ev(6), ev(7)])
        .unwrap_err();
    assert!(matches!(err, Error::Io { op: "write", .. }), "{err}");
    assert_eq!(store.head_seq(), 5);
    assert_poisoned_then_recovers(dir.path(), store, 5);
    // The half-written batch was cut: exactly the five acknowledged events plus the probe.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(versions(&store, "s"), (1..=6).collect::<Vec<_>>());
}

#[test]
fn a_failure_while_rolling_a_segment_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FaultyStorage::new();
    let store = open(dir.path(), &storage, 4096);
    let mut acked = 0;
    // Fill the first segment, then make creating the next one fail.
    while std::fs::metadata(dir.path().join("00000000000000000001.jsonl"))
        .unwrap()
        .len()
        < 4096 - 200
    {
        store
            .append("s", ExpectedVersion::Any, [ev(acked)])
            .unwrap();
        acked += 1;
    }
    storage.fail_next_create();
    let err = loop {
        match store.append("s", ExpectedVersion::Any, [ev(acked)]) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Io { op: "create", .. }), "{err}");
    assert_poisoned_then_recovers(dir.path(), store, acked);
}

/// A failed sync after `append_requests` wrote several requests fails every one of them (none
/// is acknowledged); the first with the sync's error, the rest with an I/O error too (their
/// outcome is as unknown as the first's; `Poisoned` would say they were never written). A
/// reopen keeps every event acknowledged before.
#[test]
fn a_failed_shared_sync_fails_every_written_request() {
    use eventfile::AppendRequest;
    let dir = tempfile::tempdir().unwrap();
    let storage = FaultyStorage::new();
    let store = open(dir.path(), &storage, 1 << 20);
    for i in 0..5 {
        store.append("s", ExpectedVersion::Any, [ev(i)]).unwrap();
    }
    storage.fail_next_sync();
    let out = store.append_requests(vec![
        AppendRequest::new("s", ExpectedVersion::Exact(5), [ev(5)]),
        AppendRequest::new("s", ExpectedVersion::Exact(0), [ev(6)]),
        AppendRequest::new("s", ExpectedVersion::Exact(6), [ev(7)]),
    ]);
    assert_sync_error(out[0].as_ref().unwrap_err());
    assert!(
        matches!(out[1], Err(Error::WrongExpectedVersion { actual: 6, .. })),
        "{:?}",
        out[1]
    );
    assert!(
        matches!(&out[2], Err(Error::Io { op: "fdatasync", source, .. })
            if source.to_string().contains("the sync that was to cover this append failed")),
        "{:?}",
        out[2]
    );
    assert_eq!(store.head_seq(), 5, "an unsynced event became visible");
    assert_poisoned_then_recovers_upto(dir.path(), store, 5, 7);
}

/// `seq_at` turns a time into a seq for readers: it must never name an event that is written
/// but not durable (here, never: its sync failed), that is pass `head_seq() + 1`.
#[test]
fn seq_at_never_passes_the_visible_head() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FaultyStorage::new();
    let store = open(dir.path(), &storage, 1 << 20);
    let first = store.append("s", ExpectedVersion::Any, [ev(0)]).unwrap();
    let t0 = store
        .read_all(Read::forward())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .time;
    let at = |k: i64, version: u64| eventfile::RecordedEvent {
        seq: 0,
        id: format!("late-{k}"),
        stream: "late".to_owned(),
        version,
        event_type: "T".to_owned(),
        time: t0 + k * 1_000_000,
        data: serde_json::value::RawValue::from_string("{}".to_owned()).unwrap(),
        meta: serde_json::Map::new(),
        tags: Vec::new(),
    };
    storage.fail_next_sync();
    let err = store.import(&[at(1, 1), at(2, 2)]).unwrap_err();
    assert_sync_error(&err);
    assert_eq!(store.head_seq(), first.last_seq);
    let seq = store.seq_at(t0 + 2_000_000).unwrap();
    assert!(
        seq <= store.head_seq() + 1,
        "seq_at named seq {seq}, past the visible head {}",
        store.head_seq()
    );
}
