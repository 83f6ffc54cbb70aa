//! A store's connections and threads live as long as its last clone: dropping it closes the
//! appender's, the listener's and the pool's connections, and ends its subscriptions.

use std::time::{Duration, Instant};

use eventfile::{EventStore, ExpectedVersion, NewEvent, Query};
use eventfile_postgres::PostgresStore;
use eventfile_postgres::testing::{SchemaGuard, server};

fn connections(c: &mut postgres::Client, schema: &str) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
        &[&format!("eventfile/{schema}")],
    )
    .unwrap()
    .get(0)
}

#[test]
fn dropping_the_last_clone_closes_every_connection_and_subscription() {
    let guard = SchemaGuard::new();
    let store = PostgresStore::open_with(server().url(), guard.options()).unwrap();
    let clone = store.clone();
    store
        .append(
            "s",
            ExpectedVersion::Any,
            vec![NewEvent::new("A", serde_json::json!({}))],
        )
        .unwrap();
    assert_eq!(store.head_seq().unwrap(), 1);
    let mut sub = store.subscribe(&Query::new(), 0).unwrap();
    assert_eq!(sub.next().unwrap().unwrap().seq, 1);
    let mut c = postgres::Client::connect(server().url(), postgres::NoTls).unwrap();
    // The appender, the listener and one pooled reader.
    assert!(connections(&mut c, guard.schema()) >= 3);
    drop(store);
    // A clone keeps it open.
    assert!(clone.wait_for(1, Duration::ZERO).unwrap());
    assert!(connections(&mut c, guard.schema()) >= 2);
    drop(clone);
    // The subscription ends rather than waiting for ever.
    assert!(sub.next().is_none());
    // Every connection goes (the listener notices within its poll interval).
    let deadline = Instant::now() + Duration::from_secs(10);
    while connections(&mut c, guard.schema()) > 0 {
        assert!(Instant::now() < deadline, "connections left open");
        std::thread::yield_now();
    }
}
