//! Versioned migrations of the store's schema: each with its down SQL, recorded in the table
//! `schema_version` inside the schema, applied in one transaction under an advisory lock so
//! that two processes opening at once are safe. A migration that changes anything also holds
//! the writers' lock, so that stores still running never append in the middle of it.
//!
//! This module owns the schema's SQL (see the crate docs for the tables) and the decision
//! whether a schema is ours, older, or newer than this build; it never touches events.
//!
//! ```no_run
//! use eventfile_postgres::{PostgresOptions, migrate};
//! let url = "postgres://postgres@localhost/postgres?host=/tmp/pgdev";
//! let options = PostgresOptions::new().schema("orders");
//! let (current, latest) = migrate::status(url, &options)?;
//! if current < latest {
//!     migrate::up(url, &options, None)?;
//! }
//! # Ok::<(), eventfile::Error>(())
//! ```

use eventfile::{Error, Result};
use postgres::{Client, Transaction};

use crate::PostgresOptions;
use crate::error::{BACKEND, pg};
use crate::pool::{config, connect};

/// One step of the schema: what `up` creates and what `down` removes, each SQL texts run in
/// order (a down step that puts back earlier functions runs the migrations' own texts rather
/// than copies). `{s}` stands for the quoted schema name, `{n}` for the bare name (the NOTIFY
/// channel).
struct Migration {
    version: u32,
    name: &'static str,
    up: &'static [&'static str],
    down: &'static [&'static str],
}

/// Migration 1's append function; migration 7's down step creates it again.
const APPEND_BATCH_1: &str = include_str!("sql/001_append_batch.up.sql");
/// Migration 3's set-based append, and its removal; both serve migration 7's down step too.
const GROUP_3_UP: &str = include_str!("sql/003_group.up.sql");
const GROUP_3_DOWN: &str = include_str!("sql/003_group.down.sql");
/// Migration 5's lean append, and migration 6's; each is the other's way back.
const ONE_5: &str = include_str!("sql/005_one.up.sql");
const ONE_6: &str = include_str!("sql/006_notify.up.sql");
/// Migration 7's functions; migration 8's down step creates them again.
const VERSIONS_7: &str = include_str!("sql/007_versions.up.sql");

/// Every migration, in order: version `n` at index `n - 1`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tables, the writers lock and the append function",
        up: &[include_str!("sql/001_tables.up.sql"), APPEND_BATCH_1],
        down: &[include_str!("sql/001_tables.down.sql")],
    },
    Migration {
        version: 2,
        name: "indexes for queries",
        up: &[include_str!("sql/002_indexes.up.sql")],
        down: &[include_str!("sql/002_indexes.down.sql")],
    },
    Migration {
        version: 3,
        name: "the set-based append of independent groups",
        up: &[GROUP_3_UP],
        down: &[GROUP_3_DOWN],
    },
    Migration {
        version: 4,
        name: "consumers' checkpoints",
        up: &[include_str!("sql/004_checkpoints.up.sql")],
        down: &[include_str!("sql/004_checkpoints.down.sql")],
    },
    Migration {
        version: 5,
        name: "the lean append of a lone request on one stream",
        up: &[ONE_5],
        down: &[include_str!("sql/005_one.down.sql")],
    },
    Migration {
        version: 6,
        name: "the lean append notifies only while some store listens",
        up: &[ONE_6],
        // Back to migration 5's function, which always notifies.
        down: &[ONE_5],
    },
    Migration {
        version: 7,
        name: "a stream's version is read from the log's (stream, version) index",
        up: &[VERSIONS_7],
        down: &[
            include_str!("sql/007_versions.down.sql"),
            GROUP_3_DOWN,
            APPEND_BATCH_1,
            GROUP_3_UP,
            ONE_6,
        ],
    },
    Migration {
        version: 8,
        name: "append_batch stops at the first request it refuses",
        up: &[include_str!("sql/008_batch_stops.up.sql")],
        // Migration 7's functions again (`CREATE OR REPLACE`; two of them are unchanged).
        down: &[VERSIONS_7],
    },
    Migration {
        version: 9,
        name: "deletions say whether a soft deletion set them",
        up: &[include_str!("sql/009_soft.up.sql")],
        down: &[include_str!("sql/009_soft.down.sql")],
    },
];

/// The schema version this build writes and reads.
pub const LATEST: u32 = 9;

/// The schema name quoted as an SQL identifier (checked before: no quote inside).
pub(crate) fn quoted(schema: &str) -> String {
    format!("\"{schema}\"")
}

fn sql(template: &str, schema: &str) -> String {
    template
        .replace("{s}", &quoted(schema))
        .replace("{n}", schema)
}

/// The schema's current version and this build's latest: `(0, LATEST)` for a schema that does
/// not exist yet. A schema holding tables that are not ours, or a newer version than this
/// build knows, is [`Error::ForeignSchema`].
pub fn status(url: &str, options: &PostgresOptions) -> Result<(u32, u32)> {
    let schema = options.checked_schema()?;
    let mut client = connect(&config(url)?)?;
    let mut tx = client.transaction().map_err(pg)?;
    let current = current_version(&mut tx, schema)?;
    check_known(schema, current)?;
    Ok((current, LATEST))
}

/// Applies the migrations above the current version, up to `to` (default: the latest), in one
/// transaction; returns the version reached. Creates the schema if needed.
pub fn up(url: &str, options: &PostgresOptions, to: Option<u32>) -> Result<u32> {
    let mut client = connect(&config(url)?)?;
    up_with(&mut client, options, to)
}

/// Undoes the migrations above `to`, newest first, in one transaction; returns `to`. Down to
/// 0 drops every table of the store, its events included, and the version table (the schema
/// itself is left, empty).
pub fn down(url: &str, options: &PostgresOptions, to: u32) -> Result<u32> {
    let schema = options.checked_schema()?;
    let mut client = connect(&config(url)?)?;
    let mut tx = locked(&mut client, schema)?;
    let current = current_version(&mut tx, schema)?;
    check_known(schema, current)?;
    if current > to {
        hold_writers(&mut tx, schema)?;
    }
    for m in MIGRATIONS.iter().rev() {
        if m.version > to && m.version <= current {
            for part in m.down {
                tx.batch_execute(&sql(part, schema)).map_err(pg)?;
            }
            tx.execute(
                &format!(
                    "DELETE FROM {}.schema_version WHERE version = $1",
                    quoted(schema)
                ),
                &[&(m.version as i32)],
            )
            .map_err(pg)?;
        }
    }
    if to == 0 && current > 0 {
        tx.batch_execute(&sql("DROP TABLE {s}.schema_version", schema))
            .map_err(pg)?;
    }
    tx.commit().map_err(pg)?;
    Ok(to.min(current))
}

/// [`up`] on an open connection: what opening a store runs.
pub(crate) fn up_with(
    client: &mut Client,
    options: &PostgresOptions,
    to: Option<u32>,
) -> Result<u32> {
    let schema = options.checked_schema()?;
    let to = to.unwrap_or(LATEST);
    if to > LATEST {
        return Err(Error::InvalidInput {
            what: "schema version",
            reason: format!("this build knows versions up to {LATEST}, not {to}"),
        });
    }
    let mut tx = locked(client, schema)?;
    let current = current_version(&mut tx, schema)?;
    check_known(schema, current)?;
    if current < to {
        hold_writers(&mut tx, schema)?;
    }
    if current == 0 {
        tx.batch_execute(&sql(
            "CREATE TABLE IF NOT EXISTS {s}.schema_version (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
            schema,
        ))
        .map_err(pg)?;
    }
    for m in MIGRATIONS {
        if m.version > current && m.version <= to {
            for part in m.up {
                tx.batch_execute(&sql(part, schema)).map_err(pg)?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO {}.schema_version (version, name) VALUES ($1, $2)",
                    quoted(schema)
                ),
                &[&(m.version as i32), &m.name],
            )
            .map_err(pg)?;
        }
    }
    tx.commit().map_err(pg)?;
    Ok(current.max(to))
}

/// The schema's version without changing anything: what opening without `migrate` checks.
pub(crate) fn check_current(client: &mut Client, schema: &str) -> Result<()> {
    let mut tx = client.transaction().map_err(pg)?;
    let current = current_version(&mut tx, schema)?;
    check_known(schema, current)?;
    if current == 0 {
        return Err(Error::ForeignSchema {
            backend: BACKEND,
            reason: format!(
                "schema `{schema}` holds no eventfile store: create it by opening it for \
                 writing (migrations on) or with `eventfile migrate up`"
            ),
        });
    }
    if current != LATEST {
        return Err(Error::ForeignSchema {
            backend: BACKEND,
            reason: format!(
                "schema `{schema}` is at version {current}, this build needs {LATEST}: \
                 run the migrations (open with `migrate(true)` or `migrate::up`)"
            ),
        });
    }
    Ok(())
}

/// A transaction holding the schema's migration lock, with the schema created if it was
/// missing. Only then: `CREATE SCHEMA IF NOT EXISTS` needs the `CREATE` privilege on the
/// database even when the schema exists, which an application's role usually lacks, and every
/// open migrates (to nothing, once the schema is current).
fn locked<'a>(client: &'a mut Client, schema: &str) -> Result<Transaction<'a>> {
    let mut tx = client.transaction().map_err(pg)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('eventfile migrate ' || $1::text)::bigint)",
        &[&schema],
    )
    .map_err(pg)?;
    let exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .map_err(pg)?
        .is_some();
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA {}", quoted(schema)))
            .map_err(pg)?;
    }
    Ok(tx)
}

/// Takes the writers' lock (the one every transaction that writes events takes first,
/// `lib.rs`, "Gapless seqs in commit order") for the rest of the migration's transaction,
/// before any of its statements touches a table. A migration that rewrites what appends keep
/// up to date (migration 7's `down` refills `streams.version` from the log, then puts back the
/// functions that read it) would otherwise race the appends of stores still running: one
/// committed between the refill and the migration's commit leaves its stream's row behind,
/// and every later append to the stream conflicts. Writers hold no table lock while they wait
/// for it, so taking it first cannot deadlock with them.
fn hold_writers(tx: &mut Transaction<'_>, schema: &str) -> Result<()> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('eventfile ' || $1::text, 0))",
        &[&schema],
    )
    .map_err(pg)?;
    Ok(())
}

/// The version recorded in the schema (0: none). A schema with tables but no version table of
/// ours is [`Error::ForeignSchema`].
fn current_version(tx: &mut Transaction<'_>, schema: &str) -> Result<u32> {
    let tables: Vec<String> = tx
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            &[&schema],
        )
        .map_err(pg)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if tables.is_empty() {
        return Ok(0);
    }
    if !tables.iter().any(|t| t == "schema_version") {
        let mut names = tables;
        names.sort();
        names.truncate(5);
        return Err(Error::ForeignSchema {
            backend: BACKEND,
            reason: format!(
                "schema `{schema}` holds tables ({}) but no eventfile schema_version table",
                names.join(", ")
            ),
        });
    }
    // Another tool's table of the same name (Flyway's, in a shared schema) is not ours: its
    // versions would be read as ours, or fail to decode.
    let columns: Vec<(String, String)> = tx
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = 'schema_version'
               AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
            &[&schema],
        )
        .map_err(pg)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ours = [
        ("version", "integer"),
        ("name", "text"),
        ("applied_at", "timestamp with time zone"),
    ];
    if columns.len() != ours.len()
        || columns
            .iter()
            .zip(ours)
            .any(|((n, t), (on, ot))| n != on || t != ot)
    {
        let found: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
        return Err(Error::ForeignSchema {
            backend: BACKEND,
            reason: format!(
                "schema `{schema}` holds a schema_version table that is not eventfile's \
                 (columns: {})",
                found.join(", ")
            ),
        });
    }
    let v: Option<i32> = tx
        .query_one(
            &format!("SELECT max(version) FROM {}.schema_version", quoted(schema)),
            &[],
        )
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    Ok(v.unwrap_or(0).max(0) as u32)
}

/// A version newer than this build's is [`Error::ForeignSchema`] naming both.
fn check_known(schema: &str, current: u32) -> Result<()> {
    if current > LATEST {
        return Err(Error::ForeignSchema {
            backend: BACKEND,
            reason: format!(
                "schema `{schema}` is at version {current}, newer than this build's {LATEST}"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_up_to_latest() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
        }
        assert_eq!(MIGRATIONS.len() as u32, LATEST);
    }
}
