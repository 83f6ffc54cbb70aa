//! A stream read's first statement carries the stream's state in a row of the events' own
//! columns (seq NULL; version, tombstone flag and deletion bound in the version's, type's and
//! time's places), and its rows leave the stream's name out (the read copies it): every read
//! must still refuse a tombstoned stream, start at a deletion's bound, name each event's
//! stream, and stay within what was there when it began.

use eventfile::{ErrorKind, EventStore, ExpectedVersion, NewEvent, Read};
use serde_json::json;

fn events(n: u64) -> Vec<NewEvent> {
    (0..n)
        .map(|k| NewEvent::new("E", json!({ "k": k })))
        .collect()
}

fn versions(store: &dyn EventStore, stream: &str, read: Read) -> Vec<u64> {
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

#[test]
fn the_state_row_refuses_tombstones_and_bounds_every_page() {
    let (store, _guard) = eventfile_postgres::testing::fresh_schema();
    store
        .append("s", ExpectedVersion::NoStream, events(1500))
        .expect("append");
    store
        .append("t", ExpectedVersion::NoStream, events(3))
        .expect("append");
    store
        .append("d", ExpectedVersion::NoStream, events(3))
        .expect("append");
    store
        .tombstone_stream("t", ExpectedVersion::Exact(3))
        .expect("tombstone");
    store
        .delete_stream("d", ExpectedVersion::Exact(3))
        .expect("delete");

    // Over two pages, with an append and a truncation behind the reads.
    let mut fwd = store.read_stream("s", Read::forward()).expect("forward");
    let mut bwd = store.read_stream("s", Read::backward()).expect("backward");
    assert_eq!(fwd.next().expect("one").expect("event").version, 1);
    assert_eq!(bwd.next().expect("one").expect("event").version, 1500);
    store
        .append("s", ExpectedVersion::Exact(1500), events(5))
        .expect("append behind");
    store.truncate_stream("s", 1100).expect("truncate behind");
    let rest: Vec<u64> = fwd.map(|e| e.expect("event").version).collect();
    assert_eq!(rest, (2..=1500).collect::<Vec<_>>());
    let rest: Vec<u64> = bwd.map(|e| e.expect("event").version).collect();
    assert_eq!(rest.len(), 1499);
    assert_eq!(rest.last(), Some(&1));

    // After: the deletion's bound, both ways, with starts and limits.
    assert_eq!(
        versions(&store, "s", Read::forward()),
        (1100..=1505).collect::<Vec<_>>()
    );
    assert_eq!(
        versions(&store, "s", Read::backward()),
        (1100..=1505).rev().collect::<Vec<_>>()
    );
    assert_eq!(
        versions(&store, "s", Read::forward().from(5).limit(2)),
        vec![1100, 1101]
    );
    assert!(versions(&store, "s", Read::backward().from(1099)).is_empty());

    for read in [
        Read::forward(),
        Read::backward(),
        Read::forward().limit(0),
        Read::backward().from(2).limit(1),
        Read::forward().from(100),
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
}
