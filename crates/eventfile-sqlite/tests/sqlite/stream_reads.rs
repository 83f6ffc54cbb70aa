//! Stream reads: the first page is read in one transaction with the stream's state, the later
//! pages on any pooled connection, bounded by that state; the statements are made once and
//! leave the stream's name out of each row. The read must still be one snapshot over all its
//! pages while another store appends to and deletes from the stream behind it, refuse a
//! tombstoned stream (whatever the direction, start or limit), leave out what a deletion hides,
//! and name each event's stream.

use eventfile::{ErrorKind, EventStore, ExpectedVersion, NewEvent, Read};
use eventfile_sqlite::SqliteStore;

fn events(n: u64, from: u64) -> Vec<NewEvent> {
    (from..from + n)
        .map(|i| NewEvent::new("E", serde_json::json!({ "i": i })))
        .collect()
}

fn versions(store: &SqliteStore, stream: &str, read: Read) -> Vec<u64> {
    store
        .read_stream(stream, read)
        .expect("read")
        .map(|e| {
            let e = e.expect("event");
            assert_eq!(e.stream, stream);
            e.version
        })
        .collect()
}

/// 600 events: three pages of 256. Each read takes its first event, then another store on the
/// same file appends 10 and truncates the stream before 400; the rest of the read is what was
/// there when it began, in order, and a new read sees the change.
#[test]
fn a_stream_read_over_pages_is_one_snapshot_while_another_store_writes() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).expect("open");
    store
        .append("s", ExpectedVersion::NoStream, events(600, 1))
        .expect("append");
    let other = SqliteStore::open(&path).expect("open again");

    let mut fwd = store.read_stream("s", Read::forward()).expect("forward");
    let mut bwd = store.read_stream("s", Read::backward()).expect("backward");
    let mut from = store
        .read_stream("s", Read::forward().from(100).limit(400))
        .expect("forward from 100");
    assert_eq!(fwd.next().expect("one").expect("event").version, 1);
    assert_eq!(bwd.next().expect("one").expect("event").version, 600);
    assert_eq!(from.next().expect("one").expect("event").version, 100);

    other
        .append("s", ExpectedVersion::Exact(600), events(10, 601))
        .expect("append behind the reads");
    other
        .truncate_stream("s", 400)
        .expect("truncate behind the reads");

    let rest: Vec<u64> = fwd.map(|e| e.expect("event").version).collect();
    assert_eq!(rest, (2..=600).collect::<Vec<_>>());
    let rest: Vec<u64> = bwd.map(|e| e.expect("event").version).collect();
    assert_eq!(rest, (1..=599).rev().collect::<Vec<_>>());
    let rest: Vec<u64> = from.map(|e| e.expect("event").version).collect();
    assert_eq!(rest, (101..=499).collect::<Vec<_>>());

    assert_eq!(
        versions(&store, "s", Read::forward()),
        (400..=610).collect::<Vec<_>>()
    );
    assert_eq!(
        versions(&store, "s", Read::backward().limit(300)),
        (400..=610).rev().collect::<Vec<_>>()
    );
    assert_eq!(
        versions(&store, "s", Read::backward().from(450).limit(3)),
        vec![450, 449, 448]
    );
    assert_eq!(
        versions(&store, "s", Read::forward().from(10).limit(2)),
        vec![400, 401]
    );
    assert!(versions(&store, "s", Read::backward().from(399)).is_empty());
    assert!(versions(&store, "s", Read::forward().from(611)).is_empty());
}

/// A tombstoned stream is refused by every read of it, a deleted one reads empty, and a
/// stream never written reads empty.
#[test]
fn a_tombstoned_stream_is_refused_and_a_deleted_one_reads_empty() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path().join("events.db")).expect("open");
    store
        .append("t", ExpectedVersion::NoStream, events(300, 1))
        .expect("append");
    store
        .append("d", ExpectedVersion::NoStream, events(300, 1))
        .expect("append");
    store
        .tombstone_stream("t", ExpectedVersion::Exact(300))
        .expect("tombstone");
    store
        .delete_stream("d", ExpectedVersion::Exact(300))
        .expect("delete");
    for read in [
        Read::forward(),
        Read::backward(),
        Read::forward().limit(0),
        Read::backward().limit(0),
        Read::forward().from(1000),
        Read::backward().from(5).limit(1),
    ] {
        match store.read_stream("t", read) {
            Err(e) => assert_eq!(e.kind(), ErrorKind::StreamDeleted, "{read:?}: {e}"),
            Ok(it) => panic!(
                "{read:?}: a tombstoned stream was read ({} events)",
                it.count()
            ),
        }
        assert!(versions(&store, "d", read).is_empty(), "{read:?}");
        assert!(versions(&store, "never", read).is_empty(), "{read:?}");
    }
    store
        .append("d", ExpectedVersion::Any, events(2, 301))
        .expect("append after the deletion");
    assert_eq!(versions(&store, "d", Read::forward()), vec![301, 302]);
    assert_eq!(versions(&store, "d", Read::backward()), vec![302, 301]);
}
