//! A lone append `NOTIFY`s only while some store listens (migration 6): with no subscription
//! anywhere, a raw `LISTEN` on the schema's channel hears nothing; once a store holds a
//! subscription (its listener holds the listeners' lock), every lone append is notified, and
//! the subscriber sees an append another store made without waiting for the poll.

use std::time::{Duration, Instant};

use eventfile::{EventStore, ExpectedVersion, NewEvent, Query};
use eventfile_postgres::PostgresStore;
use eventfile_postgres::testing::{fresh_schema, server};
use postgres::fallible_iterator::FallibleIterator;

fn event() -> NewEvent {
    NewEvent::new("Noted", serde_json::json!({"n": 1}))
}

/// The notifications `raw` receives within `wait`.
fn heard(raw: &mut postgres::Client, wait: Duration) -> Vec<String> {
    raw.notifications()
        .timeout_iter(wait)
        .iterator()
        .map(|n| n.unwrap().payload().to_owned())
        .collect()
}

#[test]
fn lone_appends_notify_only_while_a_store_listens() {
    let (writer, guard) = fresh_schema();
    let schema = guard.schema().to_owned();
    let mut raw = postgres::Client::connect(server().url(), postgres::NoTls).unwrap();
    raw.batch_execute(&format!("LISTEN \"{schema}\"")).unwrap();

    // No store has a subscription: the append is not notified.
    writer
        .append("s", ExpectedVersion::Any, vec![event()])
        .unwrap();
    assert_eq!(
        heard(&mut raw, Duration::from_millis(300)),
        Vec::<String>::new()
    );

    // Another store subscribes: once its listener holds the lock, appends are notified.
    let reader = PostgresStore::open_with(server().url(), guard.options()).unwrap();
    let mut sub = reader.subscribe(&Query::new(), 1).unwrap();
    let key = format!("hashtextextended('eventfile listeners {schema}', 0)");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held: i64 = raw
            .query_one(
                &format!(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                       AND mode = 'ShareLock' AND granted
                       AND (classid::bigint << 32 | objid::bigint) = {key}"
                ),
                &[],
            )
            .unwrap()
            .get(0);
        if held > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the listener never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    writer
        .append("s", ExpectedVersion::Exact(1), vec![event()])
        .unwrap();
    let got = sub.next_timeout(Duration::from_secs(5)).unwrap().unwrap();
    eprintln!("delivered to the other store in {:?}", started.elapsed());
    assert_eq!(got.seq, 2);
    let first = raw
        .notifications()
        .timeout_iter(Duration::from_secs(5))
        .next();
    assert_eq!(
        first.unwrap().map(|n| n.payload().to_owned()),
        Some("2".to_owned())
    );

    // The subscription gone, the listener lets the lock go and appends are silent again.
    drop(sub);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        writer
            .append("s", ExpectedVersion::Any, vec![event()])
            .unwrap();
        if heard(&mut raw, Duration::from_millis(100)).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "appends stayed notified");
    }
    drop(reader);
}
