//! A query chooses how it tests that no deletion hides an event from what the store saw at
//! its previous query (no deletion at all: a gated test). The choice must never change an
//! answer: here another store on the same schema deletes while this one believes the schema
//! holds no deletion, and every query, over several pages, still leaves out exactly the deleted
//! events, as `count` does.

use eventfile::{EventStore, ExpectedVersion, NewEvent, Query};
use eventfile_postgres::PostgresStore;
use serde_json::json;

fn events(n: u64) -> Vec<NewEvent> {
    (0..n)
        .map(|k| NewEvent::new("T", json!({"k": k})))
        .collect()
}

/// The seqs `store` returns for type `T`, checked against its count.
fn seqs(store: &PostgresStore) -> Vec<u64> {
    let q = Query::new().event_type("T");
    let got: Vec<u64> = store.query(&q).unwrap().map(|e| e.unwrap().seq).collect();
    assert_eq!(store.count(&q).unwrap(), got.len() as u64);
    got
}

#[test]
fn deletions_by_another_store_are_hidden_whatever_test_a_query_chose() {
    let (reader, guard) = eventfile_postgres::testing::fresh_schema();
    let url = eventfile_postgres::testing::server().url().to_owned();
    let writer = PostgresStore::open_with(&url, guard.options()).unwrap();
    // Seqs 1-3 in "a", 4-6 in "b", 7-1206 in "c" (two pages of a query).
    for (stream, n) in [("a", 3), ("b", 3), ("c", 1200)] {
        writer
            .append(stream, ExpectedVersion::NoStream, events(n))
            .unwrap();
    }
    // The reader sees no deletion: its next query takes the gated test.
    assert_eq!(seqs(&reader), (1..=1206).collect::<Vec<_>>());

    writer.delete_stream("a", ExpectedVersion::Any).unwrap();
    // Gated (the reader's belief is stale), then the plain test: the same answer.
    for _ in 0..2 {
        assert_eq!(seqs(&reader), (4..=1206).collect::<Vec<_>>());
    }

    // A fresh reader's first query takes the plain test; the schema is then seen with deletions.
    let other = PostgresStore::open_with(&url, guard.options()).unwrap();
    assert_eq!(seqs(&other), (4..=1206).collect::<Vec<_>>());

    // Truncating a stream across the page boundary: both pages keep to it.
    writer.truncate_stream("c", 1100).unwrap();
    let want: Vec<u64> = (4..=6).chain(1106..=1206).collect();
    assert_eq!(seqs(&reader), want);
    assert_eq!(seqs(&other), want);
}

#[test]
fn a_store_that_saw_no_deletion_still_hides_its_own() {
    let (store, _guard) = eventfile_postgres::testing::fresh_schema();
    store
        .append("a", ExpectedVersion::NoStream, events(2))
        .unwrap();
    store
        .append("b", ExpectedVersion::NoStream, events(2))
        .unwrap();
    assert_eq!(seqs(&store), vec![1, 2, 3, 4]);
    store.tombstone_stream("b", ExpectedVersion::Any).unwrap();
    assert_eq!(seqs(&store), vec![1, 2]);
    assert_eq!(seqs(&store), vec![1, 2]);
}
