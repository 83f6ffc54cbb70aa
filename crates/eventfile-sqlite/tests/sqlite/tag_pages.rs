//! Tag filters over many pages of a read: the first tag drives the statement and every tag is
//! bounded by the page's seq range (`src/sql.rs`), so each page must still return exactly the
//! events a brute-force scan selects, in both directions, with limits, seq ranges, more tags,
//! types, DCB items and a deleted stream beside them.

use eventfile::{EventStore, ExpectedVersion, NewEvent, Query, QueryItem, Read, RecordedEvent};
use eventfile_sqlite::SqliteStore;

fn collect(q: &Query, store: &SqliteStore) -> Vec<u64> {
    store
        .query(q)
        .expect("query")
        .map(|e| e.expect("event").seq)
        .collect()
}

#[test]
fn tag_filters_over_many_pages_match_a_brute_force_scan() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path().join("events.db")).expect("open");
    // 3,000 events in 30 streams of 100: `t=a` on a third (1,000, several pages), `t=b` on a
    // fifth, both on a fifteenth.
    for s in 0..30u64 {
        let batch: Vec<NewEvent> = (0..100u64)
            .map(|k| {
                let i = s * 100 + k;
                let mut e = NewEvent::new(format!("T{}", i % 4), serde_json::json!({ "i": i }));
                if i % 3 == 0 {
                    e = e.with_tag("t=a");
                }
                if i % 5 == 0 {
                    e = e.with_tag("t=b");
                }
                e.with_tag(format!("s={s}"))
            })
            .collect();
        store
            .append(&format!("s-{s}"), ExpectedVersion::NoStream, batch)
            .expect("append");
    }
    store
        .delete_stream("s-7", ExpectedVersion::Any)
        .expect("delete");
    store.truncate_stream("s-12", 40).expect("truncate");
    let log: Vec<RecordedEvent> = store
        .read_all(Read::forward())
        .expect("read")
        .collect::<Result<_, _>>()
        .expect("events");
    let queries = [
        Query::new().tag("t=a"),
        Query::new().tag("t=a").tag("t=b"),
        Query::new().tag("t=b").event_type("T1"),
        Query::new().tag("t=a").from_seq(700).to_seq(2_400),
        Query::new().tag("t=a").stream("s-12"),
        Query::new().tag("s=7"),
        Query::new()
            .tag("t=a")
            .item(QueryItem::new(["T2"], ["t=b"]))
            .item(QueryItem::new(Vec::<&str>::new(), ["s=3"])),
    ];
    for q in queries {
        let want: Vec<u64> = log
            .iter()
            .filter(|e| eventfile::backend::matches(&q, e))
            .map(|e| e.seq)
            .collect();
        assert_eq!(collect(&q, &store), want, "{q:?}");
        let back: Vec<u64> = want.iter().rev().copied().collect();
        assert_eq!(
            collect(&q.clone().backward(), &store),
            back,
            "backward {q:?}"
        );
        for limit in [1, 255, 256, 257, 600] {
            let first: Vec<u64> = want.iter().take(limit).copied().collect();
            assert_eq!(
                collect(&q.clone().limit(limit), &store),
                first,
                "{limit} {q:?}"
            );
            let last: Vec<u64> = back.iter().take(limit).copied().collect();
            assert_eq!(
                collect(&q.clone().backward().limit(limit), &store),
                last,
                "backward {limit} {q:?}"
            );
        }
        assert_eq!(store.count(&q).expect("count"), want.len() as u64, "{q:?}");
    }
    // The first query reads more than three pages: the test covers what it claims.
    assert!(
        log.iter()
            .filter(|e| e.tags.contains(&"t=a".to_owned()))
            .count()
            > 3 * 256
    );
}
