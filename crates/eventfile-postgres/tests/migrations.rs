//! Migrations: up, down and up again; opens racing to migrate; schemas this build must not use.

use std::sync::{Arc, Barrier};

use eventfile::{Error, EventStore, ExpectedVersion, NewEvent};
use eventfile_postgres::migrate::{self, LATEST};
use eventfile_postgres::testing::{SchemaGuard, server};
use eventfile_postgres::{PostgresOptions, PostgresStore};

fn client() -> postgres::Client {
    postgres::Client::connect(server().url(), postgres::NoTls).expect("connect")
}

fn count(sql: &str, schema: &str) -> i64 {
    client().query_one(sql, &[&schema]).expect(sql).get(0)
}

fn tables(schema: &str) -> i64 {
    count(
        "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
        schema,
    )
}

fn indexes(schema: &str) -> i64 {
    count(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE 'events\\_%' AND indexname NOT LIKE '%key'",
        schema,
    )
}

fn functions(schema: &str) -> i64 {
    count(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = $1",
        schema,
    )
}

fn has_function(schema: &str, name: &str) -> bool {
    client()
        .query_one(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = $1 AND p.proname = $2",
            &[&schema, &name],
        )
        .unwrap()
        .get::<_, i64>(0)
        == 1
}

fn event() -> NewEvent {
    NewEvent::new("Happened", serde_json::json!({"n": 1.50}))
}

#[test]
fn up_down_and_up_again() {
    let guard = SchemaGuard::new();
    let (url, options) = (server().url(), guard.options());
    assert_eq!(migrate::status(url, &options).unwrap(), (0, LATEST));
    assert_eq!(migrate::up(url, &options, Some(1)).unwrap(), 1);
    assert_eq!(migrate::status(url, &options).unwrap(), (1, LATEST));
    assert_eq!(indexes(guard.schema()), 0);
    // Opening without migrating refuses an old schema; with, it brings it up.
    let refused = PostgresStore::open_with(url, options.clone().migrate(false)).unwrap_err();
    assert!(matches!(refused, Error::ForeignSchema { .. }), "{refused}");
    let store = PostgresStore::open_with(url, options.clone()).unwrap();
    assert_eq!(migrate::status(url, &options).unwrap(), (LATEST, LATEST));
    assert_eq!(indexes(guard.schema()), 6);
    store
        .append("s", ExpectedVersion::NoStream, vec![event(), event()])
        .unwrap();
    drop(store);
    // A re-open with nothing to migrate keeps the data.
    let store = PostgresStore::open_with(url, options.clone().migrate(false)).unwrap();
    assert_eq!(store.head_seq().unwrap(), 2);
    drop(store);
    // Down to 4 drops the lean append function (migration 5) and nothing else; up again brings
    // it back, and a lone append (which calls it) continues the log.
    assert_eq!(functions(guard.schema()), 4);
    assert!(has_function(guard.schema(), "append_one"));
    assert_eq!(migrate::down(url, &options, 4).unwrap(), 4);
    assert_eq!(migrate::status(url, &options).unwrap(), (4, LATEST));
    assert!(!has_function(guard.schema(), "append_one"));
    assert_eq!(functions(guard.schema()), 3);
    assert_eq!(indexes(guard.schema()), 6);
    assert_eq!(migrate::up(url, &options, None).unwrap(), LATEST);
    assert!(has_function(guard.schema(), "append_one"));
    let store = PostgresStore::open_with(url, options.clone().migrate(false)).unwrap();
    let r = store
        .append("s", ExpectedVersion::Exact(2), vec![event()])
        .unwrap();
    assert_eq!((r.first_seq, r.version), (3, 3));
    drop(store);
    // Down one step drops the indexes and keeps the events.
    assert_eq!(migrate::down(url, &options, 1).unwrap(), 1);
    assert_eq!(indexes(guard.schema()), 0);
    assert_eq!(
        count(
            &format!(
                "SELECT count(*) FROM \"{}\".events WHERE $1::text IS NOT NULL",
                guard.schema()
            ),
            guard.schema()
        ),
        3
    );
    // Down to 0 drops every table; up again makes an empty store.
    assert_eq!(migrate::down(url, &options, 0).unwrap(), 0);
    assert_eq!(tables(guard.schema()), 0);
    assert_eq!(migrate::status(url, &options).unwrap(), (0, LATEST));
    assert_eq!(migrate::up(url, &options, None).unwrap(), LATEST);
    assert_eq!(tables(guard.schema()), 8);
    let store = PostgresStore::open_with(url, options).unwrap();
    assert_eq!(store.head_seq().unwrap(), 0);
}

#[test]
fn concurrent_opens_migrate_once() {
    let guard = SchemaGuard::new();
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (barrier, options) = (Arc::clone(&barrier), guard.options());
            std::thread::spawn(move || {
                barrier.wait();
                PostgresStore::open_with(server().url(), options)
            })
        })
        .collect();
    let stores: Vec<PostgresStore> = threads
        .into_iter()
        .map(|t| t.join().unwrap().expect("every open succeeds"))
        .collect();
    assert_eq!(
        count(
            &format!(
                "SELECT count(*) FROM \"{}\".schema_version WHERE $1::text IS NOT NULL",
                guard.schema()
            ),
            guard.schema()
        ),
        i64::from(LATEST)
    );
    // They are one store.
    stores[0]
        .append("s", ExpectedVersion::Any, vec![event()])
        .unwrap();
    for s in &stores {
        assert_eq!(s.head_seq().unwrap(), 1);
    }
}

#[test]
fn a_newer_schema_version_is_refused() {
    let guard = SchemaGuard::new();
    let (url, options) = (server().url(), guard.options());
    migrate::up(url, &options, None).unwrap();
    client()
        .batch_execute(&format!(
            "INSERT INTO \"{}\".schema_version (version, name) VALUES ({}, 'from the future')",
            guard.schema(),
            LATEST + 1
        ))
        .unwrap();
    for err in [
        PostgresStore::open_with(url, options.clone()).unwrap_err(),
        migrate::status(url, &options).unwrap_err(),
        migrate::up(url, &options, None).unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, Error::ForeignSchema { .. }), "{text}");
        assert!(
            text.contains(&format!("version {}", LATEST + 1))
                && text.contains(&format!("{LATEST}")),
            "{text}"
        );
    }
}

#[test]
fn a_foreign_schema_is_refused_and_left_alone() {
    let guard = SchemaGuard::new();
    client()
        .batch_execute(&format!(
            "CREATE SCHEMA \"{s}\"; CREATE TABLE \"{s}\".orders (id int)",
            s = guard.schema()
        ))
        .unwrap();
    let err = PostgresStore::open_with(server().url(), guard.options()).unwrap_err();
    assert!(matches!(err, Error::ForeignSchema { .. }), "{err}");
    assert!(err.to_string().contains("orders"), "{err}");
    assert_eq!(tables(guard.schema()), 1);
}

/// Another tool's `schema_version` table in a shared schema (Flyway 4's has a text version;
/// another's an integer one) is not ours: refused as foreign, with nothing written, where it
/// once panicked decoding the text version, or took the integer one for ours and migrated.
#[test]
fn another_tools_schema_version_table_is_foreign() {
    for version_type in ["varchar(50)", "integer"] {
        let guard = SchemaGuard::new();
        client()
            .batch_execute(&format!(
                "CREATE SCHEMA \"{s}\"; CREATE TABLE \"{s}\".schema_version \
                 (installed_rank int, version {version_type}, script text); \
                 INSERT INTO \"{s}\".schema_version VALUES (1, '1', 'V1__init.sql')",
                s = guard.schema()
            ))
            .unwrap();
        for migrate in [true, false] {
            let err = PostgresStore::open_with(server().url(), guard.options().migrate(migrate))
                .unwrap_err();
            assert!(
                matches!(err, Error::ForeignSchema { .. }),
                "{version_type}: {err}"
            );
            assert!(err.to_string().contains("not eventfile's"), "{err}");
        }
        assert_eq!(tables(guard.schema()), 1, "{version_type}");
    }
}

/// Without migrations, a schema that does not exist is refused, saying so, and not created (the
/// command-line tool's reading commands open so: a mistyped schema name must not make one).
#[test]
fn an_open_without_migrations_creates_no_schema() {
    let guard = SchemaGuard::new();
    let err = PostgresStore::open_with(server().url(), guard.options().migrate(false)).unwrap_err();
    assert!(matches!(err, Error::ForeignSchema { .. }), "{err}");
    assert!(
        err.to_string().contains("holds no eventfile store"),
        "{err}"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            guard.schema()
        ),
        0
    );
}

#[test]
fn a_bad_schema_name_is_invalid_input() {
    let err = PostgresStore::open_with(
        server().url(),
        PostgresOptions::new().schema("x\"; DROP TABLE y; --"),
    )
    .unwrap_err();
    assert_eq!(err.kind(), eventfile::ErrorKind::InvalidInput);
}

/// Migration 7 stops lone appends from rewriting `streams.version` (versions come from the
/// log's index); going down to 6 must leave every stream's row at its newest event's version,
/// as migration 6's functions read it, and up again the store goes on with the right versions.
#[test]
fn down_from_7_refills_the_versions_lone_appends_left_behind() {
    let guard = SchemaGuard::new();
    let (url, options) = (server().url(), guard.options());
    let store = PostgresStore::open_with(url, options.clone()).unwrap();
    for n in 0..5u64 {
        store
            .append("a", ExpectedVersion::Exact(n), vec![event()])
            .unwrap();
    }
    store
        .append("b", ExpectedVersion::NoStream, vec![event(), event()])
        .unwrap();
    store
        .append("b", ExpectedVersion::Exact(2), vec![event()])
        .unwrap();
    assert_eq!(store.stream_version("a").unwrap(), 5);
    drop(store);
    let stale = format!(
        "SELECT count(*) FROM {s}.streams st WHERE st.version <>
             (SELECT max(ev.version) FROM {s}.events ev WHERE ev.stream = st.stream)
             AND $1 <> ''",
        s = guard.schema()
    );
    let rows = format!(
        "SELECT count(*) FROM {}.streams WHERE $1 <> ''",
        guard.schema()
    );
    assert_eq!(count(&rows, guard.schema()), 2);
    assert_eq!(migrate::down(url, &options, 6).unwrap(), 6);
    assert_eq!(count(&stale, guard.schema()), 0);
    assert_eq!(migrate::up(url, &options, None).unwrap(), LATEST);
    let store = PostgresStore::open_with(url, options.clone().migrate(false)).unwrap();
    let r = store
        .append("a", ExpectedVersion::Exact(5), vec![event()])
        .unwrap();
    assert_eq!((r.first_seq, r.version), (9, 6));
    let listed: Vec<(String, u64)> = store
        .streams("", None, 10)
        .unwrap()
        .into_iter()
        .map(|s| (s.stream, s.version))
        .collect();
    assert_eq!(listed, [("a".to_owned(), 6), ("b".to_owned(), 3)]);
}

/// Every function of the schema as PostgreSQL prints it back, with the schema's name taken out
/// (so that two schemas compare).
fn function_defs(schema: &str) -> Vec<String> {
    client()
        .query(
            "SELECT pg_get_functiondef(p.oid) FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = $1 ORDER BY p.proname",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0).replace(schema, "SCHEMA"))
        .collect()
}

/// A down step that puts back earlier functions puts back exactly what those migrations made:
/// each schema migrated up to N and each brought down to N from the latest have the same
/// functions, text for text.
#[test]
fn a_down_step_restores_the_functions_of_the_version_before() {
    for to in 1..LATEST {
        let (up, down) = (SchemaGuard::new(), SchemaGuard::new());
        let url = server().url();
        assert_eq!(migrate::up(url, &up.options(), Some(to)).unwrap(), to);
        assert_eq!(migrate::up(url, &down.options(), None).unwrap(), LATEST);
        assert_eq!(migrate::down(url, &down.options(), to).unwrap(), to);
        let (a, b) = (function_defs(up.schema()), function_defs(down.schema()));
        assert!(!a.is_empty());
        assert_eq!(a, b, "version {to}");
    }
}

/// `down` takes the writers' lock before it changes anything: migration 7's `down` refills
/// each stream's version from the log, and an append committed by a store still running
/// between that refill and the migration's commit left its stream's row one behind, after
/// which every append to the stream conflicted (`Any` included). Shown by holding the lock in
/// another transaction: `down` waits for it, and goes on once it is let go.
#[test]
fn down_waits_for_the_writers_lock() {
    let guard = SchemaGuard::new();
    let (url, options) = (server().url(), guard.options());
    let store = PostgresStore::open_with(url, options.clone()).unwrap();
    store
        .append("s", ExpectedVersion::Any, vec![event()])
        .unwrap();
    drop(store);
    let mut holder = client();
    let mut tx = holder.transaction().unwrap();
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('eventfile ' || $1::text, 0))",
        &[&guard.schema()],
    )
    .unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let (url2, options2) = (url.to_owned(), options.clone());
    let down = std::thread::spawn(move || {
        let r = migrate::down(&url2, &options2, 6);
        done.send(()).unwrap();
        r
    });
    // Without the lock taken, `down` is done in a few milliseconds.
    assert!(
        finished
            .recv_timeout(std::time::Duration::from_millis(500))
            .is_err(),
        "down went ahead while a writer held the lock"
    );
    tx.commit().unwrap();
    assert_eq!(down.join().unwrap().unwrap(), 6);
    assert_eq!(migrate::up(url, &options, None).unwrap(), LATEST);
    let store = PostgresStore::open_with(url, options).unwrap();
    let r = store
        .append("s", ExpectedVersion::Any, vec![event()])
        .unwrap();
    assert_eq!(r.version, 2);
}

/// An application's role with no `CREATE` privilege on the database opens a schema that is
/// already current, migrations on (before, every open ran `CREATE SCHEMA IF NOT EXISTS`,
/// which PostgreSQL refuses without that privilege even when the schema exists).
#[test]
fn a_role_without_create_on_the_database_opens_a_current_schema() {
    let guard = SchemaGuard::new();
    let (url, options) = (server().url(), guard.options());
    drop(PostgresStore::open_with(url, options.clone()).unwrap());
    let role = format!("app_{}", guard.schema());
    let s = guard.schema();
    let mut admin = client();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             GRANT USAGE ON SCHEMA {s} TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {role};
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {s} TO {role};"
        ))
        .unwrap();
    let can_create: bool = admin
        .query_one(
            "SELECT has_database_privilege($1, current_database(), 'CREATE')",
            &[&role],
        )
        .unwrap()
        .get(0);
    assert!(!can_create, "the role must lack CREATE on the database");
    // The test server's URL names the user `postgres` (as `failures.rs` relies on too).
    assert!(url.contains("postgres@"), "{url}");
    let as_role = url.replacen("postgres@", &format!("{role}@"), 1);
    let opened = PostgresStore::open_with(&as_role, options);
    let r = opened.and_then(|store| {
        store
            .append("s", ExpectedVersion::Any, vec![event()])
            .map(|r| r.version)
    });
    admin
        .batch_execute(&format!(
            "REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {role};
             REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {s} FROM {role};
             REVOKE ALL ON SCHEMA {s} FROM {role};
             DROP ROLE {role};"
        ))
        .unwrap();
    assert_eq!(r.unwrap(), 1);
}
