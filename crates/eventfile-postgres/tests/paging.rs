//! Reads longer than a page (1,000 events): every event once, in order, in both directions,
//! with limits at and around the page size, and the deletion bound kept across pages.

use eventfile::{EventStore, ExpectedVersion, NewEvent, Query, Read};
use serde_json::json;

fn seqs(it: eventfile::EventIter) -> Vec<u64> {
    it.map(|e| e.unwrap().seq).collect()
}

#[test]
fn reads_span_pages() {
    let (store, _guard) = eventfile_postgres::testing::fresh_schema();
    for chunk in 0..5u64 {
        let batch: Vec<NewEvent> = (0..500)
            .map(|k| NewEvent::new(format!("T{}", (chunk * 500 + k) % 2), json!({"k": k})))
            .collect();
        store.append("s", ExpectedVersion::Any, batch).unwrap();
    }
    let all: Vec<u64> = (1..=2500).collect();
    let back: Vec<u64> = all.iter().rev().copied().collect();
    assert_eq!(seqs(store.read_all(Read::forward()).unwrap()), all);
    assert_eq!(seqs(store.read_all(Read::backward()).unwrap()), back);
    assert_eq!(seqs(store.read_stream("s", Read::forward()).unwrap()), all);
    assert_eq!(
        seqs(store.read_stream("s", Read::backward()).unwrap()),
        back
    );
    for n in [999, 1000, 1001, 2000, 2499, 2500, 2501] {
        let want: Vec<u64> = all.iter().take(n).copied().collect();
        assert_eq!(
            seqs(store.read_stream("s", Read::forward().limit(n)).unwrap()),
            want
        );
        assert_eq!(
            seqs(store.query(&Query::new().limit(n)).unwrap()),
            want,
            "{n}"
        );
        let want: Vec<u64> = back.iter().take(n).copied().collect();
        assert_eq!(
            seqs(store.read_all(Read::backward().limit(n)).unwrap()),
            want
        );
    }
    let odd: Vec<u64> = all.iter().copied().filter(|s| s % 2 == 0).collect();
    assert_eq!(
        seqs(store.query(&Query::new().event_type("T1")).unwrap()),
        odd
    );
    assert_eq!(store.count(&Query::new().event_type("T1")).unwrap(), 1250);
    let both = Query::new().event_type("T0").event_type("T1");
    assert_eq!(seqs(store.query(&both).unwrap()), all);
    assert_eq!(store.count(&both).unwrap(), 2500);
    // A read begun before an append never sees it, past the first page too.
    let mut it = store.read_all(Read::forward()).unwrap();
    assert_eq!(it.next().unwrap().unwrap().seq, 1);
    store
        .append(
            "s",
            ExpectedVersion::Any,
            vec![NewEvent::new("T0", json!({}))],
        )
        .unwrap();
    assert_eq!(it.count(), 2499);
    let mut it = store.read_stream("s", Read::forward()).unwrap();
    assert_eq!(it.next().unwrap().unwrap().version, 1);
    store
        .append(
            "s",
            ExpectedVersion::Any,
            vec![NewEvent::new("T0", json!({}))],
        )
        .unwrap();
    assert_eq!(it.count(), 2500);
    // Truncated: the pages start at the deletion's bound.
    store.truncate_stream("s", 1200).unwrap();
    let got = seqs(store.read_stream("s", Read::forward()).unwrap());
    assert_eq!(got.first(), Some(&1200));
    assert_eq!(got.len(), 2502 - 1200 + 1);
    let got = seqs(store.read_stream("s", Read::backward()).unwrap());
    assert_eq!(got.last(), Some(&1200));
}
