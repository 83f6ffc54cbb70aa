//! The schema and its versioned migrations: what each version adds and how it is removed,
//! recorded in the file itself (`eventfile_migrations`, mirrored in `PRAGMA user_version`), and
//! the check on open that a file is ours, not another application's, and not newer than this
//! build.
//!
//! This module owns every `CREATE` and `DROP`; it never reads or writes events.
//!
//! ```
//! use eventfile_sqlite::migrate;
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("events.db");
//! assert_eq!(migrate::up(&path, None)?, migrate::LATEST);
//! assert_eq!(migrate::down(&path, 1)?, 1);
//! assert_eq!(migrate::status(&path)?, (1, migrate::LATEST));
//! assert_eq!(migrate::down(&path, 0)?, 0);
//! # Ok::<(), eventfile::Error>(())
//! ```

use std::path::Path;

use eventfile::{Error, Result};
use rusqlite::{Connection, TransactionBehavior};

use crate::connection::{self, Sql};
use crate::options::Synchronous;

/// `PRAGMA application_id` of an eventfile store ("EVFT"): the file header names its owner.
pub(crate) const APPLICATION_ID: i32 = 0x4556_4654;

/// The schema version this build writes and reads.
pub const LATEST: u32 = 3;

/// One step of the schema.
struct Migration {
    version: u32,
    name: &'static str,
    up: &'static str,
    down: &'static str,
}

/// Every migration, in order: migration `n` takes the schema from `n - 1` to `n`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events, tags, deletions and snapshots",
        up: "
CREATE TABLE eventfile_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE events (
    seq     INTEGER PRIMARY KEY,
    id      TEXT    NOT NULL UNIQUE,
    stream  TEXT    NOT NULL,
    version INTEGER NOT NULL,
    type    TEXT    NOT NULL,
    time    INTEGER NOT NULL,
    data    TEXT    NOT NULL,
    meta    TEXT    NOT NULL,
    tags    TEXT    NOT NULL,
    more    INTEGER NOT NULL,
    key     TEXT    UNIQUE,
    UNIQUE (stream, version)
);
CREATE INDEX events_type ON events (type);
CREATE INDEX events_time ON events (time);
CREATE TABLE event_tags (
    tag TEXT    NOT NULL,
    seq INTEGER NOT NULL REFERENCES events (seq),
    PRIMARY KEY (tag, seq)
) WITHOUT ROWID;
CREATE TABLE deletions (
    stream         TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    deleted_before INTEGER NOT NULL,
    tombstone      INTEGER NOT NULL,
    PRIMARY KEY (stream, seq)
) WITHOUT ROWID;
CREATE TABLE snapshots (
    stream  TEXT    NOT NULL,
    version INTEGER NOT NULL,
    time    INTEGER NOT NULL,
    state   TEXT    NOT NULL,
    PRIMARY KEY (stream, version)
) WITHOUT ROWID;
",
        down: "
DROP TABLE snapshots;
DROP TABLE deletions;
DROP TABLE event_tags;
DROP TABLE events;
DROP TABLE eventfile_meta;
",
    },
    Migration {
        version: 2,
        name: "metadata indexes (correlation, causation, actor)",
        up: "
CREATE INDEX events_correlation ON events (json_extract(meta, '$.correlation_id'));
CREATE INDEX events_causation ON events (json_extract(meta, '$.causation_id'));
CREATE INDEX events_actor ON events (json_extract(meta, '$.actor'));
",
        down: "
DROP INDEX events_actor;
DROP INDEX events_causation;
DROP INDEX events_correlation;
",
    },
    Migration {
        version: 3,
        name: "consumers' checkpoints",
        up: "
CREATE TABLE checkpoints (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL,
    error    TEXT,
    time     INTEGER NOT NULL
) WITHOUT ROWID;
",
        down: "
DROP TABLE checkpoints;
",
    },
];

/// The bookkeeping table: one row per applied migration, with the SQL that removes it.
const MIGRATIONS_TABLE: &str = "
CREATE TABLE IF NOT EXISTS eventfile_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL,
    down       TEXT    NOT NULL
);
";

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// No tables at all: a new file.
    Empty,
    /// Our schema at this version (0: our bookkeeping table with every migration undone).
    Ours(u32),
    /// Tables, none of them ours (their names), or another application's id.
    Foreign(String),
}

/// What `conn`'s file holds. Reads only.
pub(crate) fn inspect(conn: &Connection, path: &Path) -> Result<Found> {
    let app: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .sql(path)?;
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        )
        .sql(path)?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .sql(path)?
        .collect::<rusqlite::Result<_>>()
        .sql(path)?;
    if app != 0 && app != APPLICATION_ID {
        return Ok(Found::Foreign(format!(
            "the file's application_id is {app:#x}, not eventfile's {APPLICATION_ID:#x}"
        )));
    }
    if tables.iter().any(|t| t == "eventfile_migrations") {
        let v: Option<i64> = conn
            .query_row("SELECT max(version) FROM eventfile_migrations", [], |r| {
                r.get(0)
            })
            .sql(path)?;
        return Ok(Found::Ours(
            u32::try_from(v.unwrap_or(0)).unwrap_or(u32::MAX),
        ));
    }
    if tables.is_empty() {
        return Ok(Found::Empty);
    }
    Ok(Found::Foreign(format!(
        "it holds other tables ({}) and none of eventfile's",
        tables.join(", ")
    )))
}

/// Refuses a file that is not ours or is newer than this build.
pub(crate) fn check_usable(found: &Found) -> Result<u32> {
    match found {
        Found::Foreign(why) => Err(Error::ForeignSchema {
            backend: "sqlite",
            reason: why.clone(),
        }),
        Found::Ours(v) if *v > LATEST => Err(newer(*v)),
        Found::Ours(v) => Ok(*v),
        Found::Empty => Ok(0),
    }
}

fn newer(v: u32) -> Error {
    Error::ForeignSchema {
        backend: "sqlite",
        reason: format!(
            "its schema is at version {v}, newer than this build's {LATEST}; \
             use a newer eventfile-sqlite"
        ),
    }
}

/// Brings the schema to `to` (up or down) in one `BEGIN IMMEDIATE` transaction, checking the
/// version again inside it, so that two processes migrating at once do the work once. Returns
/// the version reached. Migrates only in the direction asked (`down`), so a racing migration
/// is never undone; only going down may start from a version newer than this build's (the
/// file's recorded SQL undoes it).
pub(crate) fn migrate_to(conn: &mut Connection, path: &Path, to: u32, down: bool) -> Result<u32> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .sql(path)?;
    let current = match inspect(&tx, path)? {
        Found::Ours(v) if down => v,
        found => check_usable(&found)?,
    };
    if current == to || (down && current < to) || (!down && current > to) {
        return Ok(current);
    }
    if to > current {
        tx.execute_batch(MIGRATIONS_TABLE).sql(path)?;
        for m in MIGRATIONS
            .iter()
            .filter(|m| m.version > current && m.version <= to)
        {
            tx.execute_batch(m.up).sql(path)?;
            tx.execute(
                "INSERT INTO eventfile_migrations (version, name, applied_at, down) \
                 VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    m.version,
                    m.name,
                    eventfile::backend::commit_time(0),
                    m.down
                ],
            )
            .sql(path)?;
            if m.version == 1 {
                tx.execute(
                    "INSERT INTO eventfile_meta (key, value) VALUES ('application', 'eventfile'), \
                     ('store_id', ?1)",
                    [eventfile::backend::new_store_id()],
                )
                .sql(path)?;
            }
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .sql(path)?;
    } else {
        // The file's own record of how to undo each step, newest first: a file migrated by
        // a newer build goes down with that build's SQL.
        let steps: Vec<(u32, String)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT version, down FROM eventfile_migrations WHERE version > ?1 \
                     ORDER BY version DESC",
                )
                .sql(path)?;
            stmt.query_map([to], |r| Ok((r.get(0)?, r.get(1)?)))
                .sql(path)?
                .collect::<rusqlite::Result<_>>()
                .sql(path)?
        };
        for (v, down) in steps {
            tx.execute_batch(&down).sql(path)?;
            tx.execute("DELETE FROM eventfile_migrations WHERE version = ?1", [v])
                .sql(path)?;
        }
        if to == 0 {
            tx.execute_batch("DROP TABLE eventfile_migrations;")
                .sql(path)?;
            tx.pragma_update(None, "application_id", 0).sql(path)?;
        }
    }
    tx.pragma_update(None, "user_version", to).sql(path)?;
    tx.commit().sql(path)?;
    Ok(to)
}

fn open_existing(path: &Path, create: bool) -> Result<Connection> {
    connection::open(path, create, Synchronous::Full)
}

/// The file's schema version and this build's latest: `(current, latest)`. A file with none of
/// eventfile's tables is at 0; another application's file is [`Error::ForeignSchema`].
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("events.db");
/// eventfile_sqlite::SqliteStore::open(&path)?;
/// let (current, latest) = eventfile_sqlite::migrate::status(&path)?;
/// assert_eq!(current, latest);
/// # Ok::<(), eventfile::Error>(())
/// ```
pub fn status(path: impl AsRef<Path>) -> Result<(u32, u32)> {
    let path = path.as_ref();
    let conn = open_existing(path, false)?;
    connection::retry_busy(|| match inspect(&conn, path)? {
        Found::Empty => Ok((0, LATEST)),
        Found::Ours(v) => Ok((v, LATEST)),
        f @ Found::Foreign(_) => check_usable(&f).map(|v| (v, LATEST)),
    })
}

/// Applies the migrations up to `to` (`None`: [`LATEST`]), creating the file if missing, in
/// one transaction; returns the version reached. A target below the file's version is refused
/// (use [`down`]).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("events.db");
/// use eventfile_sqlite::migrate;
/// assert_eq!(migrate::up(&path, Some(1))?, 1);
/// assert_eq!(migrate::up(&path, None)?, migrate::LATEST);
/// # Ok::<(), eventfile::Error>(())
/// ```
pub fn up(path: impl AsRef<Path>, to: Option<u32>) -> Result<u32> {
    let path = path.as_ref();
    let to = to.unwrap_or(LATEST);
    if to > LATEST {
        return Err(Error::InvalidInput {
            what: "migration",
            reason: format!("version {to} is above this build's latest, {LATEST}"),
        });
    }
    let mut conn = open_existing(path, true)?;
    connection::retry_busy(|| {
        let current = check_usable(&inspect(&conn, path)?)?;
        if to < current {
            return Err(Error::InvalidInput {
                what: "migration",
                reason: format!("the file is at version {current}, above {to}: migrate down"),
            });
        }
        connection::wal(&conn, path)?;
        migrate_to(&mut conn, path, to, false)
    })
}

/// Undoes migrations down to `to` with the SQL recorded in the file, in one transaction;
/// returns the version reached. `0` removes every table of eventfile's, events included.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("events.db");
/// use eventfile_sqlite::migrate;
/// migrate::up(&path, None)?;
/// assert_eq!(migrate::down(&path, 0)?, 0);
/// assert_eq!(migrate::status(&path)?, (0, migrate::LATEST));
/// # Ok::<(), eventfile::Error>(())
/// ```
pub fn down(path: impl AsRef<Path>, to: u32) -> Result<u32> {
    let path = path.as_ref();
    let mut conn = open_existing(path, false)?;
    connection::retry_busy(|| {
        let current = match inspect(&conn, path)? {
            // A newer file may go down: its own SQL says how.
            Found::Ours(v) => v,
            f => check_usable(&f)?,
        };
        if to > current {
            return Err(Error::InvalidInput {
                what: "migration",
                reason: format!("the file is at version {current}, below {to}: migrate up"),
            });
        }
        migrate_to(&mut conn, path, to, true)
    })
}
