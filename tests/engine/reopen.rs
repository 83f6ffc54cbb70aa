//! Reopening keeps everything; index sidecars are caches that are rebuilt when missing or damaged.

use crate::support::*;
use eventfile::{ExpectedVersion, Read};

fn build(dir: &std::path::Path) -> Vec<eventfile::RecordedEvent> {
    let store = fast_store(dir, 4096);
    for i in 0..200u64 {
        store
            .append(
                &format!("s{}", i % 5),
                ExpectedVersion::Any,
                [ev("A", i), ev("B", i)],
            )
            .unwrap();
    }
    store.close().unwrap();
    let store = small_store(dir, 4096);
    all(&store)
}

#[test]
fn reopen_preserves_every_event_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let before = build(dir.path());
    assert_eq!(before.len(), 400);
    assert_gapless(&before);
    for _ in 0..3 {
        let store = small_store(dir.path(), 4096);
        assert_eq!(all(&store), before);
        for s in 0..5 {
            assert_eq!(store.stream_version(&format!("s{s}")), 80);
        }
        assert_eq!(store.head_seq(), 400);
    }
    // New appends continue the numbering.
    let store = small_store(dir.path(), 4096);
    let r = store
        .append("s0", ExpectedVersion::Exact(80), [ev("C", 0)])
        .unwrap();
    assert_eq!((r.first_seq, r.version), (401, 81));
}

#[test]
fn missing_or_damaged_index_sidecars_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let before = build(dir.path());
    let sums = files_with_ext(dir.path(), "idx");
    assert!(sums.len() >= 3, "expected several sealed segments");
    let original = std::fs::read(&sums[1]).unwrap();
    std::fs::remove_file(&sums[0]).unwrap();
    let mut bad = original.clone();
    bad[20] ^= 0x40;
    std::fs::write(&sums[1], &bad).unwrap();
    std::fs::write(&sums[2], b"garbage").unwrap();

    let store = small_store(dir.path(), 4096);
    assert_eq!(all(&store), before);
    for s in 0..5 {
        let got: Vec<u64> = stream(&store, &format!("s{s}"), Read::forward())
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(got, (1..=80).collect::<Vec<_>>());
    }
    drop(store);
    // Rebuilt on open, byte for byte the same as the one written at seal time.
    assert!(sums[0].exists());
    assert_eq!(std::fs::read(&sums[1]).unwrap(), original);
    assert!(eventfile::verify(dir.path()).unwrap().notes.is_empty());
}

#[test]
fn a_clean_open_does_not_read_sealed_segments() {
    // Damage in a sealed segment's middle is not noticed by a clean open (its index is
    // trusted), only by a read that reaches it, which reports it instead of skipping it.
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let first = dir.path().join("00000000000000000001.jsonl");
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&first, &bytes).unwrap();
    let store = small_store(dir.path(), 4096);
    assert_eq!(store.head_seq(), 400);
    let err = store
        .read_all(Read::forward())
        .unwrap()
        .find_map(|e| e.err())
        .expect("the damage is reported");
    assert!(matches!(err, eventfile::Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("00000000000000000001.jsonl"));
}

/// On open the stream table is rebuilt from the sidecars, merged in one pass when a segment
/// holds many of the streams and looked up one by one when it holds few: both ways agree with
/// what was written.
#[test]
fn the_stream_table_is_rebuilt_exactly_from_many_small_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut versions = std::collections::BTreeMap::new();
    {
        let store = crate::support::fast_store(dir.path(), 4096);
        for i in 0..3000u64 {
            // Few streams first (merged), then many (looked up one by one).
            let s = if i < 300 {
                format!("s-{}", i % 7)
            } else {
                format!("s-{}", i * 7919 % 400)
            };
            let r = crate::support::append_one(&store, &s, i);
            versions.insert(s, r.version);
        }
    }
    for read_only in [false, true] {
        let store = eventfile::OpenOptions::new()
            .read_only(read_only)
            .open(dir.path())
            .unwrap();
        assert_eq!(store.stream_count(), versions.len());
        for (s, &v) in &versions {
            assert_eq!(store.stream_version(s), v, "{s}");
            let read: Vec<u64> = store
                .read_stream(s, eventfile::Read::backward().limit(2))
                .unwrap()
                .map(|e| e.unwrap().version)
                .collect();
            assert_eq!(read[0], v, "{s}");
        }
    }
}

/// A clean open syncs nothing: `HEAD` names every event recovery finds, and a writer names in
/// it only events it synced. An open after a writer that wrote without syncing (killed before
/// its sync) finds more than `HEAD` names, and syncs it before publishing it.
#[test]
fn a_clean_open_syncs_nothing_and_an_open_after_unsynced_writes_syncs_them() {
    use eventfile::{Durability, FaultKind, FaultyStorage, OpenOptions};
    use std::sync::Arc;
    let open = |dir: &std::path::Path, storage: &Arc<FaultyStorage>| {
        OpenOptions::new()
            .segment_bytes(1 << 20)
            .durability(Durability::None)
            .storage(Arc::new(Arc::clone(storage)))
            .open(dir)
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 1 << 20);
    for i in 0..20 {
        append_one(&store, "s", i);
    }
    store.close().unwrap();

    let storage = FaultyStorage::new();
    let store = open(dir.path(), &storage);
    assert_eq!(storage.count(FaultKind::Sync), 0, "a clean open synced");
    assert_eq!(store.head_seq(), 20);
    // Written, never synced (no durability, no close): a kill leaves them in the page cache.
    for i in 20..25 {
        append_one(&store, "s", i);
    }
    std::mem::forget(store); // keeps the lock held, as a crashed process would until it exits
    let crashed = copy_of(dir.path());
    let storage = FaultyStorage::new();
    let store = open(crashed.path(), &storage);
    assert!(
        storage.count(FaultKind::Sync) >= 1,
        "unsynced events published unsynced"
    );
    assert_eq!(store.head_seq(), 25);
    assert_eq!(stream(&store, "s", Read::forward()).len(), 25);
}
