//! The file itself: what is refused (another application's tables, a newer schema, a file that
//! is not SQLite, a missing file without `create`), and that the `sqlite3` shell reads it.

use std::process::Command;

use eventfile::{Error, EventStore, ExpectedVersion, NewEvent, Read};
use eventfile_sqlite::{SqliteOptions, SqliteStore, migrate};

use super::numbered;

fn sqlite3(file: &std::path::Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(file)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim_end()
        .to_owned()
}

#[test]
fn another_applications_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("app.db");
    let c = rusqlite::Connection::open(&file).expect("create");
    c.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);")
        .expect("table");
    drop(c);
    let err = SqliteStore::open(&file).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ForeignSchema {
                backend: "sqlite",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("users"), "{err}");
    assert_eq!(
        sqlite3(&file, "SELECT group_concat(name) FROM sqlite_schema"),
        "users"
    );
    assert_eq!(sqlite3(&file, "PRAGMA journal_mode"), "delete");
    assert!(matches!(
        migrate::up(&file, None),
        Err(Error::ForeignSchema { .. })
    ));
}

#[test]
fn a_newer_schema_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("events.db");
    drop(SqliteStore::open(&file).expect("create"));
    sqlite3(
        &file,
        "INSERT INTO eventfile_migrations VALUES (7, 'from the future', 0, 'SELECT 1;')",
    );
    let err = SqliteStore::open(&file).unwrap_err();
    assert!(matches!(err, Error::ForeignSchema { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("version 7") && text.contains('3'), "{text}");
    assert_eq!(migrate::status(&file).expect("status"), (7, 3));
    // Its own recorded SQL takes it back down.
    assert_eq!(migrate::down(&file, 3).expect("down"), 3);
    assert!(SqliteStore::open(&file).is_ok());
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "these are my notes, not a database; ".repeat(40)).expect("write");
    let err = SqliteStore::open(&file).unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    assert!(err.to_string().contains("not a SQLite database"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "these are my notes, not a database; ".repeat(40)
    );
}

#[test]
fn without_create_a_missing_file_is_an_error() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("missing.db");
    let err = SqliteOptions::new().create(false).open(&file).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(!file.exists());
}

#[test]
fn the_sqlite3_shell_reads_the_file_while_the_store_is_open() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("events.db");
    let store = SqliteStore::open(&file).expect("open");
    for n in 1..=10 {
        store
            .append("s", ExpectedVersion::Any, vec![numbered("s", n)])
            .expect("append");
    }
    let given = r#"{"b":1,"a":[1.0,2e5,"é\u00e9"],"c":{"z":null}}"#;
    store
        .append(
            "t",
            ExpectedVersion::NoStream,
            vec![NewEvent::from_json_str("Exact", given).expect("json")],
        )
        .expect("append");
    assert_eq!(sqlite3(&file, "SELECT count(*) FROM events"), "11");
    assert_eq!(
        sqlite3(
            &file,
            "SELECT count(*) FROM events WHERE json_extract(meta, '$.correlation_id') = 'c1'"
        ),
        "2"
    );
    assert_eq!(
        sqlite3(&file, "SELECT count(*) FROM event_tags WHERE tag = 'n=0'"),
        "3"
    );
    // The data text is kept byte for byte.
    assert_eq!(
        sqlite3(&file, "SELECT data FROM events WHERE stream = 't'"),
        given
    );
    let back: Vec<_> = store
        .read_stream("t", Read::forward())
        .expect("read")
        .collect::<Result<_, _>>()
        .expect("events");
    assert_eq!(back[0].data.get(), given);
    assert_eq!(sqlite3(&file, "PRAGMA journal_mode"), "wal");
    // The README's queries.
    store.truncate_stream("s", 4).expect("truncate");
    assert_eq!(
        sqlite3(
            &file,
            "SELECT count(*) FROM events e JOIN event_tags t ON t.seq = e.seq WHERE t.tag = 'n=1' \
             AND datetime(e.time / 1000000, 'unixepoch') IS NOT NULL"
        ),
        "4"
    );
    assert_eq!(
        sqlite3(
            &file,
            "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM deletions d \
             WHERE d.stream = e.stream AND e.version < d.deleted_before)"
        ),
        // 11 appended and the `$lifecycle` event, less the 3 truncated.
        "9"
    );
    assert_eq!(
        sqlite3(
            &file,
            "SELECT group_concat(version) FROM eventfile_migrations"
        ),
        "1,2,3"
    );
    assert_eq!(sqlite3(&file, "PRAGMA user_version"), "3");
}
