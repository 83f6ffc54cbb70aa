//! A query's deletion test is skipped while `deletions` is empty (`rows::live_at`): the
//! answers must be those of the full test whether the file has no deletion, gets its first
//! one behind a read in progress, or has some.

use eventfile::{EventStore, ExpectedVersion, NewEvent, Query};
use eventfile_sqlite::SqliteStore;

fn seqs(store: &SqliteStore, q: &Query) -> Vec<u64> {
    store
        .query(q)
        .expect("query")
        .map(|e| e.expect("event").seq)
        .collect()
}

/// 20 streams of 100 events, type `T{i % 4}`: `T1` selects 500 events, two pages (256 and
/// 244; the second from seq 1,026 on).
#[test]
fn the_first_deletion_behind_a_query_and_after_it() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).expect("open");
    for s in 0..20u64 {
        let batch: Vec<NewEvent> = (0..100u64)
            .map(|k| {
                NewEvent::new(
                    format!("T{}", (s * 100 + k) % 4),
                    serde_json::json!({ "k": k }),
                )
            })
            .collect();
        store
            .append(&format!("s-{s}"), ExpectedVersion::NoStream, batch)
            .expect("append");
    }
    let other = SqliteStore::open(&path).expect("open again");
    let q = Query::new().event_type("T1");
    let all: Vec<u64> = (1..=2000).filter(|s| (s - 1) % 4 == 1).collect();
    assert_eq!(seqs(&store, &q), all);

    // A read that began before the first deletion: its later pages see every event it began
    // with, although `deletions` is no longer empty when they run.
    let mut reading = store.query(&q).expect("query");
    assert_eq!(reading.next().expect("one").expect("event").seq, all[0]);
    other
        .delete_stream("s-13", ExpectedVersion::Any)
        .expect("delete");
    other.truncate_stream("s-17", 51).expect("truncate");
    let rest: Vec<u64> = reading.map(|e| e.expect("event").seq).collect();
    assert_eq!(rest, all[1..]);

    // After: stream 13 (seqs 1,301..=1,400) gone, stream 17's first 50 (1,701..=1,750) gone.
    let live: Vec<u64> = all
        .iter()
        .copied()
        .filter(|s| !(1301..=1400).contains(s) && !(1701..=1750).contains(s))
        .collect();
    assert_eq!(seqs(&store, &q), live);
    assert_eq!(store.count(&q).expect("count"), live.len() as u64);
    let back: Vec<u64> = seqs(&store, &q.clone().backward());
    assert_eq!(back, live.iter().rev().copied().collect::<Vec<_>>());
}
