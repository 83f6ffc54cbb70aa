//! Bad input gets a typed error and writes nothing.

use crate::support::*;
use eventfile::{Error, ExpectedVersion, NewEvent, OpenOptions, StreamAppend};
use serde_json::json;

fn file_sizes(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn each_bad_input_is_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = OpenOptions::new()
        .max_event_bytes(1024)
        .open(dir.path())
        .unwrap();
    append_one(&store, "s", 0);
    let before = file_sizes(dir.path());

    let invalid = |r: eventfile::Result<eventfile::AppendResult>, what: &str| match r {
        Err(Error::InvalidInput { what: w, reason }) => {
            assert_eq!(w, what, "{reason}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected invalid {what}, got {other:?}"),
    };
    let any = ExpectedVersion::Any;
    invalid(store.append("", any, [ev("A", 1)]), "stream name");
    invalid(
        store.append(&"x".repeat(257), any, [ev("A", 1)]),
        "stream name",
    );
    invalid(store.append("a\u{7}b", any, [ev("A", 1)]), "stream name");
    invalid(store.append("s", any, [ev("", 1)]), "event type");
    invalid(store.append("s", any, [ev("A\n", 1)]), "event type");
    invalid(
        store.append("s", any, [ev("A", 1).with_tag("notag")]),
        "tag",
    );
    invalid(store.append("s", any, [ev("A", 1).with_id("")]), "event id");
    invalid(store.append("s", any, Vec::<NewEvent>::new()), "append");
    // A bad event anywhere in a batch rejects the whole batch.
    invalid(
        store.append("s", any, [ev("A", 1), ev("", 2)]),
        "event type",
    );

    // Metadata serde_json would not read back as written: its raw-value marker as a key, at
    // any depth (the last event of the batch, so that the first is refused with it).
    for meta in [
        json!({"$serde_json::private::RawValue": "1"}),
        json!({"k": [{"a": {"$serde_json::private::RawValue": "x"}}]}),
    ] {
        let bad = ev("A", 2).with_meta(meta.as_object().unwrap().clone());
        invalid(store.append("s", any, [ev("A", 1), bad]), "metadata");
    }

    let big = NewEvent::new("Big", json!({"blob": "x".repeat(2000)}));
    match store.append("s", any, [ev("A", 1), big]) {
        Err(Error::EventTooLarge {
            size,
            max: 1024,
            event_type,
        }) => {
            assert!(size > 2000);
            assert_eq!(event_type, "Big");
        }
        other => panic!("expected EventTooLarge, got {other:?}"),
    }

    let dup = [
        StreamAppend::new("a", any, [ev("A", 1)]),
        StreamAppend::new("a", any, [ev("A", 2)]),
    ];
    assert!(matches!(
        store.append_multi(&dup),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        store.append_multi(&[]),
        Err(Error::InvalidInput { .. })
    ));

    assert_eq!(
        file_sizes(dir.path()),
        before,
        "a rejected append wrote bytes"
    );
    assert_eq!(all(&store).len(), 1);
    assert_eq!(store.head_seq(), 1);
}

#[test]
fn metadata_must_be_an_object_when_parsed_from_text() {
    // The Rust API takes a Map, so a non-object cannot be built; text input is checked.
    let err = NewEvent::from_json_str("A", "{not json").unwrap_err();
    assert!(matches!(err, Error::Json(_)));
}

#[test]
fn read_only_store_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let w = small_store(dir.path(), 1 << 20);
    append_one(&w, "s", 1);
    let r = eventfile::Store::open_read_only(dir.path()).unwrap();
    assert!(matches!(
        r.append("s", ExpectedVersion::Any, [ev("A", 1)]),
        Err(Error::ReadOnly)
    ));
}

#[test]
fn open_refuses_a_foreign_directory_and_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let err = eventfile::Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    assert!(err.to_string().contains("notes.txt"));

    let empty = tempfile::tempdir().unwrap();
    let err = OpenOptions::new()
        .segment_bytes(10)
        .open(empty.path())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }));
    let err = eventfile::Store::open_read_only(empty.path().join("nope")).unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }));
}
