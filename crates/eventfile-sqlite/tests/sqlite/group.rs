//! Group commit: requests committed together are each checked before their writes, so a
//! refused one writes nothing and the others are unaffected.

use std::sync::{Arc, Barrier};

use eventfile::{AppendCondition, AppendRequest, ErrorKind, EventStore, ExpectedVersion, Query};
use eventfile_sqlite::SqliteStore;

use super::numbered;

#[test]
fn refused_requests_in_a_batch_write_nothing_and_disturb_no_other() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path().join("events.db")).expect("open");
    store
        .append(
            "taken",
            ExpectedVersion::NoStream,
            vec![numbered("taken", 1)],
        )
        .expect("seed");
    let threads = 16;
    let rounds = 20;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, barrier) = (store.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut ok = 0u64;
                for round in 0..rounds {
                    barrier.wait();
                    let stream = format!("s-{t}");
                    let n = round as u64 + 1;
                    let r = match t % 4 {
                        // A conflict: the stream `taken` is at 1.
                        0 => store.append(
                            "taken",
                            ExpectedVersion::NoStream,
                            vec![numbered(&stream, n)],
                        ),
                        // A failing condition: `taken` has a Numbered event.
                        1 => store
                            .append_request(
                                AppendRequest::new(
                                    &stream,
                                    ExpectedVersion::Any,
                                    [numbered(&stream, n)],
                                )
                                .condition(AppendCondition::new(Query::new().stream("taken"))),
                            )
                            .map(|r| r.streams[0].1),
                        // A duplicate id: the seed's.
                        2 => {
                            store.append(&stream, ExpectedVersion::Any, vec![numbered("taken", 1)])
                        }
                        _ => store.append(
                            &stream,
                            ExpectedVersion::Exact(n - 1),
                            vec![numbered(&stream, n)],
                        ),
                    };
                    match (t % 4, r) {
                        (3, Ok(_)) => ok += 1,
                        (0, Err(e)) => assert_eq!(e.kind(), ErrorKind::Conflict),
                        (1, Err(e)) => assert_eq!(e.kind(), ErrorKind::ConditionFailed),
                        (2, Err(e)) => assert_eq!(e.kind(), ErrorKind::DuplicateId),
                        (k, r) => panic!("kind {k}: {r:?}"),
                    }
                }
                ok
            })
        })
        .collect();
    let ok: u64 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(ok, (threads as u64 / 4) * rounds as u64);
    assert_eq!(store.head_seq().expect("head"), 1 + ok);
    assert_eq!(store.count(&Query::new()).expect("count"), 1 + ok);
    for t in (3..threads).step_by(4) {
        assert_eq!(
            store.stream_version(&format!("s-{t}")).expect("v"),
            rounds as u64
        );
    }
}

/// `append_requests` queues every request at once: they share one transaction (one commit,
/// one fsync), and a refused one (bad input before queueing, a conflict inside) disturbs no
/// other.
#[test]
fn independent_requests_share_one_commit() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path().join("events.db")).expect("open");
    let requests = (0..10u64)
        .map(|i| {
            let stream = format!("s-{}", i % 5);
            let mut events = vec![numbered(&stream, i)];
            if i == 7 {
                events.clear(); // no events: refused before it is queued
            }
            AppendRequest::new(stream, ExpectedVersion::NoStream, events)
        })
        .collect();
    let out = store.append_requests(requests);
    assert_eq!(out.len(), 10);
    for (i, r) in out.iter().enumerate() {
        match (i, r) {
            (0..5, Ok(r)) => assert_eq!(r.first_seq, i as u64 + 1),
            (7, Err(e)) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}"),
            (5..10, Err(e)) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    let m = store.metrics();
    assert_eq!((m.appends, m.events, m.syncs), (5, 5, 1));
    assert_eq!(store.head_seq().expect("head"), 5);
}

/// SQLite rolls the whole transaction back on some errors (`SQLITE_FULL`, `SQLITE_IOERR`,
/// `SQLITE_NOMEM`, a trigger's `RAISE(ROLLBACK)`), not just the statement. A request of a batch
/// meeting one must not let the requests after it commit on their own: a savepoint outside a
/// transaction opens one of its own, and its release commits it, while every request of the
/// batch was answered as failed (a retry without its own ids would write it twice). Here a
/// trigger the test adds rolls back the transaction of the batch's middle request.
#[test]
fn a_rollback_of_the_whole_transaction_commits_no_request_of_the_batch() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).expect("open");
    let conn = rusqlite::Connection::open(&path).expect("second connection");
    conn.execute_batch(
        "CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.stream = 'boom' \
         BEGIN SELECT RAISE(ROLLBACK, 'injected'); END;",
    )
    .expect("trigger");
    let requests = ["a", "boom", "c"]
        .map(|s| AppendRequest::new(s, ExpectedVersion::NoStream, [numbered(s, 1)]))
        .to_vec();
    let results = store.append_requests(requests);
    assert!(results.iter().all(|r| r.is_err()), "{results:?}");
    // Nothing of the batch is in the log: not `a` (rolled back with the batch), not `c`.
    assert_eq!(store.head_seq().expect("head"), 0);
    conn.execute_batch("DROP TRIGGER boom")
        .expect("drop trigger");
    drop(conn);
    let r = store
        .append("c", ExpectedVersion::NoStream, vec![numbered("c", 1)])
        .expect("the store goes on");
    assert_eq!(r.first_seq, 1);
}
