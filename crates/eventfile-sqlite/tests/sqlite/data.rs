//! Data as given: metadata with floats and nesting, tags in order with repeats, times exact,
//! through a reopen; and imports from another store (written once, skipped the second time,
//! refused when out of order).

use eventfile::{
    ErrorKind, EventStore, ExpectedVersion, MemoryStore, NewEvent, Read, RecordedEvent,
};
use eventfile_sqlite::SqliteStore;

use super::numbered;

fn all(store: &dyn EventStore) -> Vec<RecordedEvent> {
    store
        .read_all(Read::forward())
        .expect("read")
        .collect::<Result<_, _>>()
        .expect("events")
}

#[test]
fn events_read_back_exactly_after_a_reopen() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("events.db");
    let store = SqliteStore::open(&file).expect("open");
    let e = NewEvent::from_json_str("T", r#"{"x":0.1,"y":[1e300,-0.0],"s":"\u2603"}"#)
        .expect("json")
        .with_meta_json(r#"{"f":0.30000000000000004,"n":{"a":[null,true]},"actor":"ann"}"#)
        .expect("meta")
        .with_tag("b=2")
        .with_tag("a=1")
        .with_tag("b=2");
    store
        .append("s", ExpectedVersion::NoStream, vec![e.clone()])
        .expect("append");
    let before = all(&store);
    drop(store);
    let store = SqliteStore::open(&file).expect("reopen");
    let after = all(&store);
    assert_eq!(before, after);
    assert_eq!(after[0].data.get(), e.data().get());
    assert_eq!(&after[0].meta, e.meta());
    assert_eq!(after[0].tags, ["b=2", "a=1", "b=2"]);
    let tags = store.tags(None, 10).expect("tags");
    assert_eq!(
        tags.iter()
            .map(|t| (t.name.as_str(), t.count))
            .collect::<Vec<_>>(),
        [("a=1", 1), ("b=2", 1)]
    );
}

#[test]
fn an_import_writes_once_and_refuses_what_breaks_order() {
    let source = MemoryStore::new();
    for n in 1..=5 {
        source
            .append("a", ExpectedVersion::Any, vec![numbered("a", n)])
            .expect("append");
        source
            .append("b", ExpectedVersion::Any, vec![numbered("b", n)])
            .expect("append");
    }
    let exported = all(&source);
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path().join("events.db")).expect("open");
    let r = store.import(&exported).expect("import");
    assert_eq!((r.written, r.skipped, r.head), (10, 0, 10));
    let again = store.import(&exported).expect("import again");
    assert_eq!((again.written, again.skipped, again.head), (0, 10, 10));
    assert_eq!(all(&store), exported);
    // A stream's version out of order: nothing of the import is written.
    let mut bad = exported[..2].to_vec();
    bad[0].id = "new-1".to_owned();
    bad[0].version = 6;
    bad[1].id = "new-2".to_owned();
    bad[1].version = 9;
    bad[1].stream = "a".to_owned();
    let err = store.import(&bad).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(store.head_seq().expect("head"), 10);
}

/// A read sees the log as it was when it began, across its pages: a truncation committed
/// meanwhile hides nothing from it, and everything from the reads made after.
#[test]
fn a_read_in_progress_keeps_its_view_of_deletions() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path().join("events.db")).expect("open");
    let events = (1..=600).map(|n| numbered("s", n)).collect();
    store
        .append("s", ExpectedVersion::NoStream, events)
        .expect("append");
    let q = eventfile::Query::new().stream("s");
    let mut query = store.query(&q).expect("query");
    let mut stream = store.read_stream("s", Read::forward()).expect("read");
    let mut log = store.read_all(Read::forward()).expect("read all");
    assert_eq!(query.next().expect("first").expect("event").version, 1);
    assert_eq!(stream.next().expect("first").expect("event").version, 1);
    assert_eq!(log.next().expect("first").expect("event").version, 1);
    store.truncate_stream("s", 500).expect("truncate");
    assert_eq!(query.count(), 599);
    assert_eq!(stream.count(), 599);
    assert_eq!(log.count(), 599);
    assert_eq!(store.count(&q).expect("count"), 101);
    assert_eq!(store.query(&q).expect("query").count(), 101);
}

/// A checkpoint whose position is negative in the table (written by something else, or
/// damaged: the table has no check) is an error, not position 0, from which a consumer would
/// replay the whole log without a word.
#[test]
fn a_negative_checkpoint_position_is_an_error_not_zero() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).expect("open");
    store.checkpoints().save("reader", 7).expect("save");
    let conn = rusqlite::Connection::open(&path).expect("second connection");
    conn.execute(
        "UPDATE checkpoints SET position = -5 WHERE name = 'reader'",
        [],
    )
    .expect("damage");
    let err = store
        .checkpoints()
        .get("reader")
        .expect_err("a negative position");
    assert!(err.to_string().contains("-5"), "{err}");
}
