//! Snapshots: saved atomically outside the log, the newest K kept, damage skipped and reported.

use std::path::{Path, PathBuf};

use eventfile::{Error, ExpectedVersion, OpenOptions, Store, verify};
use serde_json::json;

use crate::support::{append_one, files_with_ext};

fn store(dir: &Path) -> Store {
    OpenOptions::new().snapshots_kept(2).open(dir).unwrap()
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    files_with_ext(&dir.join("snapshots"), "snap")
}

#[test]
fn save_load_and_keep_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = store(dir.path());
        assert!(store.load_snapshot("acct-1").unwrap().is_none());
        for v in 1..=6 {
            append_one(&store, "acct-1", v);
            append_one(&store, "acct-2", v);
            if v >= 3 {
                store
                    .save_snapshot("acct-1", v, &json!({ "balance": v * 10 }))
                    .unwrap();
            }
        }
        store
            .save_snapshot("acct-2", 2, &json!({ "balance": 2 }))
            .unwrap();
        // Two kept for acct-1 (5 and 6), one for acct-2.
        assert_eq!(snapshot_files(dir.path()).len(), 3);
        let s = store.load_snapshot("acct-1").unwrap().unwrap();
        assert_eq!((s.stream.as_str(), s.version), ("acct-1", 6));
        assert_eq!(
            s.decode::<serde_json::Value>().unwrap(),
            json!({"balance": 60})
        );
        // One framed JSON line, readable with jq.
        let text = std::fs::read_to_string(&snapshot_files(dir.path())[0]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["crc"].is_string() && v["state"].is_object());
    }
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.load_snapshot("acct-2").unwrap().unwrap().version, 2);
    assert!(matches!(
        reader.save_snapshot("acct-2", 2, &json!(1)),
        Err(Error::ReadOnly)
    ));
}

#[test]
fn a_snapshot_of_a_version_the_stream_does_not_have_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    for v in 1..=5 {
        append_one(&store, "s", v);
    }
    for bad in [0, 6, 100] {
        let err = store.save_snapshot("s", bad, &json!({})).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err}");
    }
    assert!(store.save_snapshot("nobody", 1, &json!({})).is_err());
    store.truncate_stream("s", 4).unwrap();
    // A snapshot at 2 would miss the deleted event 3; at 3 it covers everything deleted.
    assert!(matches!(
        store.save_snapshot("s", 2, &json!({})),
        Err(Error::InvalidInput { .. })
    ));
    store.save_snapshot("s", 3, &json!({})).unwrap();
    assert!(snapshot_files(dir.path()).len() == 1);
}

#[test]
fn a_damaged_snapshot_is_skipped_and_reported_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = store(dir.path());
        for v in 1..=4 {
            append_one(&store, "s", v);
        }
        store.save_snapshot("s", 3, &json!({"at": 3})).unwrap();
        store.save_snapshot("s", 4, &json!({"at": 4})).unwrap();
    }
    let newest = snapshot_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&newest, bytes).unwrap();
    let store = store(dir.path());
    let s = store.load_snapshot("s").unwrap().unwrap();
    assert_eq!(s.version, 3, "the damaged newest one must be skipped");
    drop(store);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.snapshots, 2);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].path, newest);
    // A torn snapshot (a crash cannot make one, but a disk can) is skipped the same way.
    std::fs::write(&newest, b"{\"eventfile\":\"snap").unwrap();
    let store = self::store(dir.path());
    assert_eq!(store.load_snapshot("s").unwrap().unwrap().version, 3);
}

#[test]
fn deleting_a_stream_removes_its_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    for v in 1..=3 {
        append_one(&store, "a", v);
        append_one(&store, "b", v);
    }
    store.save_snapshot("a", 3, &json!(1)).unwrap();
    store.save_snapshot("b", 3, &json!(1)).unwrap();
    store.delete_stream("a", ExpectedVersion::Any).unwrap();
    assert!(store.load_snapshot("a").unwrap().is_none());
    store.tombstone_stream("b", ExpectedVersion::Any).unwrap();
    assert!(matches!(
        store.load_snapshot("b"),
        Err(Error::StreamDeleted { .. })
    ));
    assert!(snapshot_files(dir.path()).is_empty());
}

#[test]
fn a_save_cut_short_leaves_nothing_after_the_next_writer_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(dir.path());
        append_one(&s, "cart", 1);
        s.save_snapshot("cart", 1, &json!({"n": 1})).unwrap();
    }
    // What a crash between writing a snapshot's temporary file and renaming it leaves.
    let tmp = dir
        .path()
        .join("snapshots")
        .join("00000000000000ab-1.snap.tmp");
    std::fs::write(&tmp, b"half a snap").unwrap();
    // A reader leaves it alone; a writer's open removes it.
    drop(Store::open_read_only(dir.path()).unwrap());
    assert!(tmp.exists());
    let s = store(dir.path());
    assert!(!tmp.exists());
    assert_eq!(snapshot_files(dir.path()).len(), 1);
    assert_eq!(s.load_snapshot("cart").unwrap().unwrap().version, 1);
}

#[test]
fn a_pretty_printed_raw_state_is_saved_on_one_line_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    append_one(&s, "cart", 1);
    let pretty = serde_json::value::RawValue::from_string(
        "{\n  \"items\": [1, 18446744073709551616],\n  \"note\": \"a  b\"\n}".to_owned(),
    )
    .unwrap();
    s.save_snapshot("cart", 1, &pretty).unwrap();
    let loaded = s
        .load_snapshot("cart")
        .unwrap()
        .expect("the snapshot loads");
    assert_eq!(
        loaded.state.get(),
        r#"{"items":[1,18446744073709551616],"note":"a  b"}"#
    );
}

/// A soft deletion of the whole stream stays one across reopens, also once retention has
/// removed its `$lifecycle` event (the removal manifest carries it): a snapshot of the life it
/// ended (at its `before - 1`, which a truncation would allow) is refused and never loaded.
#[test]
fn a_soft_deletion_refuses_snapshots_of_its_life_after_reopen_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = OpenOptions::new()
            .segment_bytes(4096)
            .open(dir.path())
            .unwrap();
        for v in 1..=3 {
            append_one(&store, "a", v);
        }
        store.delete_stream("a", ExpectedVersion::Any).unwrap();
        for n in 0..200 {
            append_one(&store, "filler", n);
        }
        store.close().unwrap();
    }
    let refused = |store: &Store, what: &str| {
        let e = store.save_snapshot("a", 3, &json!(1)).unwrap_err();
        assert_eq!(e.kind(), eventfile::ErrorKind::InvalidInput, "{what}: {e}");
    };
    let store = Store::open(dir.path()).unwrap();
    refused(&store, "after a reopen");
    store
        .set_retention_policy(eventfile::RetentionPolicy::keep_all().max_events(50))
        .unwrap();
    store.run_retention(false).unwrap();
    assert!(
        store.log_start() > 4,
        "the deletion's event (seq 4) is kept"
    );
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    refused(&store, "after retention removed the deletion's event");
    append_one(&store, "a", 4);
    refused(&store, "once the stream lives again");
    assert!(store.load_snapshot("a").unwrap().is_none());
    store.save_snapshot("a", 4, &json!(4)).unwrap();
    assert_eq!(
        store.load_snapshot("a").unwrap().map(|s| s.version),
        Some(4)
    );
}
