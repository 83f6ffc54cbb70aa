//! A server that cannot be used: none listening, a refused login, a connection killed under an
//! append. Each is `Error::Unreachable`, quickly, never quoting a password, never half written.

use std::time::{Duration, Instant};

use eventfile::{Error, ErrorKind, EventStore, ExpectedVersion, NewEvent};
use eventfile_postgres::testing::{PASSWORD_ROLE, fresh_schema, server};
use eventfile_postgres::{PostgresOptions, PostgresStore};

fn client() -> postgres::Client {
    postgres::Client::connect(server().url(), postgres::NoTls).expect("connect")
}

#[test]
fn no_server_is_unreachable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://postgres:hunter2-secret@localhost/postgres?host={}",
        dir.path().display()
    );
    let started = Instant::now();
    let err = PostgresStore::open(&url).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            Error::Unreachable {
                backend: "postgres",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[test]
fn a_wrong_password_is_unreachable_and_never_quoted() {
    let mut c = client();
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS pwtest CASCADE; DROP ROLE IF EXISTS {PASSWORD_ROLE}; \
         CREATE ROLE {PASSWORD_ROLE} LOGIN SUPERUSER PASSWORD 'right-pass-41'"
    ))
    .unwrap();
    let base = server().url();
    let with = |pw: &str| base.replacen("postgres@", &format!("{PASSWORD_ROLE}:{pw}@"), 1);
    let wrong = "wrong-pass-97";
    match PostgresStore::open_with(&with(wrong), PostgresOptions::new().schema("pwtest")) {
        Err(err) => {
            assert!(matches!(err, Error::Unreachable { .. }), "{err}");
            assert!(!err.to_string().contains(wrong), "{err}");
            assert!(!format!("{err:?}").contains(wrong), "{err:?}");
            assert!(!err.to_string().contains("right-pass-41"), "{err}");
        }
        Ok(_) => panic!(
            "a wrong password opened the store: the server trusts {PASSWORD_ROLE}; a server \
             named by EVENTFILE_TEST_POSTGRES_URL must ask it for a password (pg_hba.conf: \
             `local all {PASSWORD_ROLE} scram-sha-256` first, as .ci/run sets it)"
        ),
    }
    // The right one opens.
    let guard = eventfile_postgres::testing::SchemaGuard::new();
    let store = PostgresStore::open_with(&with("right-pass-41"), guard.options()).unwrap();
    assert_eq!(store.head_seq().unwrap(), 0);
    drop(store);
    drop(guard);
}

/// The appender's connection is terminated while its append waits for the head lock: the
/// append is `Unreachable`, nothing of it is written, and the same append with the same ids
/// then succeeds on a new connection.
#[test]
fn an_append_across_a_killed_connection_writes_nothing_half() {
    let (store, guard) = fresh_schema();
    store
        .append(
            "s",
            ExpectedVersion::Any,
            vec![NewEvent::new("A", serde_json::json!({}))],
        )
        .unwrap();
    let schema = guard.schema().to_owned();
    // Hold the writers' lock so the next append waits inside its transaction.
    let mut holder = client();
    let mut tx = holder.transaction().unwrap();
    tx.execute(&format!("SELECT \"{schema}\".lock_writers()"), &[])
        .unwrap();
    let events: Vec<NewEvent> = (0..3)
        .map(|i| {
            NewEvent::new("B", serde_json::json!({ "i": i }))
                .with_id(format!("0190a0b0-0000-7000-8000-00000000000{i}"))
        })
        .collect();
    let appender = {
        let (store, events) = (store.clone(), events.clone());
        std::thread::spawn(move || {
            store.append_multi(&[
                eventfile::StreamAppend::new("t", ExpectedVersion::NoStream, events[..2].to_vec()),
                eventfile::StreamAppend::new("u", ExpectedVersion::Any, events[2..].to_vec()),
            ])
        })
    };
    // Find the appender's backend, blocked on the lock we hold.
    let mut killer = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid: i32 = loop {
        let row = killer
            .query_opt(
                "SELECT pid FROM pg_stat_activity
                 WHERE query LIKE '%append_batch%' AND wait_event_type = 'Lock' LIMIT 1",
                &[],
            )
            .unwrap();
        if let Some(r) = row {
            break r.get(0);
        }
        assert!(
            Instant::now() < deadline,
            "the append never waited on the lock"
        );
        std::thread::yield_now();
    };
    let killed: bool = killer
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap()
        .get(0);
    assert!(killed);
    let err = appender.join().unwrap().unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    tx.rollback().unwrap();
    // Nothing of it is there.
    assert_eq!(store.head_seq().unwrap(), 1);
    assert_eq!(store.stream_version("t").unwrap(), 0);
    assert_eq!(store.stream_version("u").unwrap(), 0);
    assert!(
        store
            .get_event("0190a0b0-0000-7000-8000-000000000000")
            .unwrap()
            .is_none()
    );
    // The retry with the same ids writes it, once.
    let r = store
        .append_multi(&[
            eventfile::StreamAppend::new("t", ExpectedVersion::NoStream, events[..2].to_vec()),
            eventfile::StreamAppend::new("u", ExpectedVersion::Any, events[2..].to_vec()),
        ])
        .unwrap();
    assert_eq!((r.first_seq, r.last_seq, r.replayed), (2, 4, false));
    let again = store
        .append_multi(&[
            eventfile::StreamAppend::new("t", ExpectedVersion::NoStream, events[..2].to_vec()),
            eventfile::StreamAppend::new("u", ExpectedVersion::Any, events[2..].to_vec()),
        ])
        .unwrap();
    assert!(again.replayed);
    assert_eq!(store.head_seq().unwrap(), 4);
}
