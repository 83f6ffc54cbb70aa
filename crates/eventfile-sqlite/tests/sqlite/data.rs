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

/// Rows edited outside eventfile (the tables have no checks) are errors naming the problem,
/// never a panic or a made-up value: a negative version read as 0, a negative snapshot version
/// read as a snapshot at 0 (from which a replay would apply every event on top of it), a
/// tombstone whose `deleted_before` is 0 (a subtraction below zero panicked in every read and
/// append of the stream), a snapshot whose state is not JSON blamed on the caller's input. The
/// store goes on serving everything else.
#[test]
fn rows_edited_outside_eventfile_are_errors_not_panics_or_zeros() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).expect("open");
    for n in 1..=3 {
        store
            .append("s", ExpectedVersion::Any, vec![numbered("s", n)])
            .expect("append");
    }
    store
        .save_snapshot("s", 2, &serde_json::value::to_raw_value(&2).unwrap())
        .expect("snapshot");
    let edit = |sql: &str| {
        rusqlite::Connection::open(&path)
            .expect("second connection")
            .execute_batch(sql)
            .expect("edit");
    };

    edit("UPDATE snapshots SET version = -1 WHERE stream = 's'");
    let err = store.load_snapshot("s").expect_err("a negative version");
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.to_string().contains("-1"), "{err}");
    edit("UPDATE snapshots SET version = 2, state = '{\"n\":' WHERE stream = 's'");
    let err = store.load_snapshot("s").expect_err("state not JSON");
    assert_ne!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("not valid JSON"), "{err}");

    edit("UPDATE events SET version = -3 WHERE seq = 1");
    let err = store
        .read_all(Read::forward())
        .and_then(|events| events.collect::<Result<Vec<_>, _>>())
        .expect_err("a negative version");
    assert!(err.to_string().contains("-3"), "{err}");
    edit("UPDATE events SET version = 1 WHERE seq = 1");

    edit("INSERT INTO deletions (stream, seq, deleted_before, tombstone) VALUES ('x', 1, 0, 1)");
    let err = store
        .read_stream("x", Read::forward())
        .err()
        .expect("a tombstoned stream");
    assert_eq!(err.kind(), ErrorKind::StreamDeleted, "{err}");
    let err = store
        .append("x", ExpectedVersion::Any, vec![numbered("x", 1)])
        .expect_err("a tombstoned stream");
    assert_eq!(err.kind(), ErrorKind::StreamDeleted, "{err}");
    edit("UPDATE deletions SET deleted_before = -1 WHERE stream = 'x'");
    let err = store
        .read_stream("x", Read::forward())
        .err()
        .expect("a negative deletion");
    assert!(err.to_string().contains("-1"), "{err}");

    // Everything else is served as before, on connections left in no transaction.
    store
        .append("t", ExpectedVersion::Any, vec![numbered("t", 1)])
        .expect("append");
    assert_eq!(store.head_seq().expect("head"), 4);
    assert_eq!(all(&store).len(), 4);
}

/// A file SQLite finds malformed is `Corrupt`, at the open or at the read that meets it.
#[test]
fn a_malformed_file_is_corrupt() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("events.db");
    {
        let store = SqliteStore::open(&path).expect("open");
        for n in 1..=200 {
            store
                .append("s", ExpectedVersion::Any, vec![numbered("s", n)])
                .expect("append");
        }
    }
    // The last connection's close checkpointed the WAL into the file: page 2 on is table data.
    let mut bytes = std::fs::read(&path).expect("read the file");
    assert!(bytes.len() >= 3 * 4096, "{} bytes", bytes.len());
    bytes[4096..8192].fill(0xff);
    std::fs::write(&path, &bytes).expect("damage");
    let err = SqliteStore::open(&path)
        .and_then(|s| s.read_all(Read::forward())?.collect::<Result<Vec<_>, _>>())
        .expect_err("a malformed file");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}
