//! One writer at a time; any number of read-only openers, in other processes too.

use crate::support::*;
use eventfile::{Error, Store};

#[test]
fn a_second_writer_gets_locked() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap();
    match Store::open(dir.path()) {
        Err(Error::Locked { path }) => assert!(path.ends_with("LOCK")),
        other => panic!("expected Locked, got {other:?}"),
    }
    // Read-only opens are not blocked by the writer.
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert!(reader.is_read_only());
    drop(first);
    let second = Store::open(dir.path()).unwrap();
    append_one(&second, "s", 1);
}

#[test]
fn a_reader_opened_mid_roll_catches_up_later() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 4096);
    let n = fill_until_segments(&store, dir.path(), 2);
    store.close().unwrap();
    // The newest segment as a roll leaves it just after creating the file: no header yet.
    std::fs::write(newest_segment(dir.path()), b"").unwrap();
    published_up_to(dir.path(), n - 1);

    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.head_seq(), n - 1);
    assert_eq!(reader.refresh().unwrap(), n - 1);

    let writer = small_store(dir.path(), 4096);
    for i in 0..100 {
        append_one(&writer, "s", i);
    }
    let head = reader.refresh().unwrap();
    assert_eq!(head, n - 1 + 100);
    let events = all(&reader);
    assert_gapless(&events);
    assert_eq!(events.len() as u64, head);
}

#[test]
fn a_hostile_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(small_store(dir.path(), 1 << 20));
    let body = r#"{"eventfile":"store","format":1,"segment_bytes":67108864,"max_event_bytes":1152921504606846976"#;
    std::fs::write(dir.path().join("eventfile.json"), frame(body)).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("maximum event size"), "{err}");
    let body = r#"{"eventfile":"store","format":2,"segment_bytes":67108864,"max_event_bytes":4096"#;
    std::fs::write(dir.path().join("eventfile.json"), frame(body)).unwrap();
    let err = Store::open_read_only(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedFormat {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_removed_or_replaced_lock_file_lets_no_second_writer_in() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap();
    let lock = dir.path().join("LOCK");
    std::fs::remove_file(&lock).unwrap();
    assert!(matches!(Store::open(dir.path()), Err(Error::Locked { .. })));
    std::fs::write(&lock, b"").unwrap();
    assert!(matches!(Store::open(dir.path()), Err(Error::Locked { .. })));
    append_one(&first, "s", 1);
    drop(first);
    let second = Store::open(dir.path()).unwrap();
    assert_eq!(second.head_seq(), 1);
}

#[test]
fn a_directory_refused_as_not_a_store_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    match Store::open(dir.path()) {
        Err(Error::NotAStore { .. }) => {}
        other => panic!("expected NotAStore, got {other:?}"),
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
}
