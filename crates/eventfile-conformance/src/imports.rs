//! Imports: another store's events written as they were recorded, once, or refused whole.

use eventfile::{ErrorKind, ExpectedVersion::*, NewEvent, Query, RecordedEvent};
use serde_json::json;

use crate::Factory;
use crate::support::*;

/// A small history with every field set, read back from a store of the factory's kind.
fn history(factory: &Factory<'_>) -> Vec<RecordedEvent> {
    let src = factory();
    let rich = |n: u64| {
        NewEvent::new("Placed", json!({ "n": n, "pi": 3.25, "s": "é\u{1}\"" }))
            .with_meta_entry("correlation_id", format!("c{n}"))
            .with_meta_entry("extra", json!({ "nested": [1, 2.5, null] }))
            .with_tag(format!("order={n}"))
            .with_tag("region=eu")
    };
    src.append("order-1", NoStream, vec![rich(1), rich(2)])
        .unwrap();
    src.append("order-2", NoStream, vec![rich(3)]).unwrap();
    src.append("order-1", Exact(2), vec![ev("Paid", 4)])
        .unwrap();
    all(&*src)
}

fn kind_of(r: eventfile::Result<eventfile::ImportResult>) -> ErrorKind {
    r.expect_err("the import is refused").kind()
}

/// An import writes every field as recorded (ids, streams, versions, types, times, data,
/// metadata, tags), each event at the next seq, and the indexes find the imported events.
pub fn an_import_keeps_every_field(factory: &Factory<'_>) {
    let events = history(factory);
    let dst = factory();
    let r = dst.import(&events).unwrap();
    assert_eq!((r.written, r.skipped, r.head), (4, 0, 4));
    let got = all(&*dst);
    assert_eq!(got.len(), events.len());
    for (a, b) in events.iter().zip(&got) {
        assert_eq!(
            (a.seq, &a.id, &a.stream, a.version, &a.event_type, a.time),
            (b.seq, &b.id, &b.stream, b.version, &b.event_type, b.time)
        );
        assert_eq!(a.data.get(), b.data.get());
        assert_eq!((&a.meta, &a.tags), (&b.meta, &b.tags));
    }
    assert_eq!(version(&*dst, "order-1"), 3);
    let tagged = collect(dst.query(&Query::new().tag("order=3")));
    assert_eq!(seqs(&tagged), [3]);
    let by_id = dst.get_event(&events[1].id).unwrap().expect("found by id");
    assert_eq!(by_id.seq, 2);
    let correlated = dst.count(&Query::new().correlation("c2")).unwrap();
    assert_eq!(correlated, 1);
    // Appends continue the imported streams.
    let next = dst
        .append("order-1", Exact(3), vec![ev("Shipped", 5)])
        .unwrap();
    assert_eq!((next.version, next.first_seq), (4, 5));
}

/// Importing the same events again writes nothing: each is found by its id.
pub fn importing_twice_writes_nothing(factory: &Factory<'_>) {
    let events = history(factory);
    let dst = factory();
    dst.import(&events[..2]).unwrap();
    let r = dst.import(&events).unwrap();
    assert_eq!((r.written, r.skipped, r.head), (2, 2, 4));
    let r = dst.import(&events).unwrap();
    assert_eq!((r.written, r.skipped, r.head), (0, 4, 4));
    assert_eq!(all(&*dst).len(), 4);
}

/// A version out of order, an id the store holds elsewhere, a time before the store's newest
/// event or a `$`-stream: the whole import is refused with the event's index, nothing written.
pub fn a_bad_import_is_refused_whole(factory: &Factory<'_>) {
    let events = history(factory);
    let dst = factory();

    let mut gap = events.clone();
    gap[3].version = 4;
    let err = dst.import(&gap).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("event 3"), "{err}");
    assert_eq!(head(&*dst), 0);

    let mut first_not_one = events.clone();
    first_not_one[0].version = 2;
    first_not_one[1].version = 3;
    first_not_one[3].version = 4;
    assert_eq!(kind_of(dst.import(&first_not_one)), ErrorKind::InvalidInput);
    assert_eq!(head(&*dst), 0);

    // A hostile version at the top of the range: the next event of its stream is refused, not
    // an overflow (a panic in a debug build).
    let mut huge = events.clone();
    huge[0].version = u64::MAX;
    let err = dst.import(&huge).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(head(&*dst), 0);

    let mut backwards = events.clone();
    backwards[2].time = backwards[1].time - 1;
    assert_eq!(kind_of(dst.import(&backwards)), ErrorKind::InvalidInput);

    let mut system = events.clone();
    system[2].stream = "$lifecycle".into();
    assert_eq!(kind_of(dst.import(&system)), ErrorKind::InvalidInput);
    assert_eq!(head(&*dst), 0);

    let mut loose = events.clone();
    loose[1].data = serde_json::value::RawValue::from_string("{\"n\": 2}".into()).unwrap();
    assert_eq!(kind_of(dst.import(&loose)), ErrorKind::InvalidInput);

    let mut future = events.clone();
    // Ten years ahead of any clock this runs on.
    future[3].time += 10 * 365 * 86_400_000_000;
    assert_eq!(kind_of(dst.import(&future)), ErrorKind::InvalidInput);
    assert_eq!(head(&*dst), 0);

    // The store's own newer event: an import older than it is refused.
    let own = dst
        .append(
            "other",
            NoStream,
            vec![ev("X", 0).with_id(events[2].id.clone())],
        )
        .unwrap();
    assert_eq!(own.first_seq, 1);
    let err = dst.import(&events).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(head(&*dst), 1);

    // An id the store holds in another stream, at a time after the store's newest event.
    let newest = all(&*dst)[0].time;
    let mut elsewhere = events[2].clone();
    elsewhere.stream = "order-9".into();
    elsewhere.version = 1;
    elsewhere.time = newest;
    let err = dst.import(std::slice::from_ref(&elsewhere)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("already in the store"), "{err}");
    assert_eq!(head(&*dst), 1);
}

/// An import continues a stream the store holds: its first event must follow the stream's
/// version, and a tombstoned stream takes none.
pub fn an_import_continues_the_stores_streams(factory: &Factory<'_>) {
    let events = history(factory);
    let dst = factory();
    // Nothing written yet: order-1 at version 0 cannot take version 3 alone.
    assert_eq!(kind_of(dst.import(&events[3..])), ErrorKind::InvalidInput);
    dst.import(&events[..3]).unwrap();
    let r = dst.import(&events[3..]).unwrap();
    assert_eq!((r.written, r.head), (1, 4));
    dst.tombstone_stream("order-2", Any).unwrap();
    let mut more = events[2].clone();
    more.id = "0190a0b0-0000-7000-8000-000000000001".into();
    more.version = 2;
    more.time = all(&*dst).last().expect("the tombstone's event").time;
    assert_eq!(
        kind_of(dst.import(std::slice::from_ref(&more))),
        ErrorKind::StreamDeleted
    );
    // What is already there is skipped, tombstone or not.
    let r = dst.import(&events[2..3]).unwrap();
    assert_eq!((r.written, r.skipped), (0, 1));
}
