//! The consumers' checkpoints (`EventStore::checkpoints`): the `checkpoints` table, one row per
//! consumer, replaced in one write transaction per save.
//!
//! This module owns that table's rows; it never reads or writes events.

use eventfile::{Checkpoint, Checkpoints, Result};
use rusqlite::OptionalExtension;

use crate::connection::Sql;
use crate::store::Inner;

/// A checkpoint's row. A negative position (written by something else, or damaged: the table
/// has no check) is an error: read as 0, it would replay the whole log without a word.
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Checkpoint> {
    let position = r.get::<_, i64>(1)?;
    Ok(Checkpoint {
        name: r.get(0)?,
        position: u64::try_from(position)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(1, position))?,
        error: r.get(2)?,
        time: r.get(3)?,
    })
}

const COLUMNS: &str = "SELECT name, position, error, time FROM checkpoints";

impl Checkpoints for Inner {
    fn get(&self, name: &str) -> Result<Option<Checkpoint>> {
        eventfile::backend::check_checkpoint_name(name)?;
        let path = &self.path;
        self.pool.with(|conn| {
            conn.prepare_cached(&format!("{COLUMNS} WHERE name = ?1"))
                .sql(path)?
                .query_row([name], row)
                .optional()
                .sql(path)
        })
    }

    fn put(&self, name: &str, at: u64, error: Option<&str>) -> Result<()> {
        eventfile::backend::check_checkpoint_name(name)?;
        let at = eventfile::backend::checkpoint_position(name, at)?;
        let error = error.map(eventfile::backend::clip_checkpoint_error);
        let path = &self.path;
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO checkpoints (name, position, error, time) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .sql(path)?
            .execute(rusqlite::params![
                name,
                at,
                error,
                eventfile::backend::commit_time(0)
            ])
            .sql(path)?;
            Ok(((), None))
        })
    }

    fn list(&self) -> Result<Vec<Checkpoint>> {
        let path = &self.path;
        self.pool.with(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!("{COLUMNS} ORDER BY name"))
                .sql(path)?;
            let rows = stmt.query_map([], row).sql(path)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().sql(path)
        })
    }

    fn remove(&self, name: &str) -> Result<bool> {
        eventfile::backend::check_checkpoint_name(name)?;
        let path = &self.path;
        self.write(|tx| {
            let n = tx
                .execute("DELETE FROM checkpoints WHERE name = ?1", [name])
                .sql(path)?;
            Ok((n > 0, None))
        })
    }
}
