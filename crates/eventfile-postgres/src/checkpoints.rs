//! The consumers' checkpoints (`EventStore::checkpoints`): the `checkpoints` table, one row per
//! consumer, each save one upsert (its own transaction, apart from the writers' lock: a
//! checkpoint never waits for appends).
//!
//! This module owns that table's rows; it never reads or writes events.

use eventfile::backend::{
    check_checkpoint_name, checkpoint_position, clip_checkpoint_error, commit_time,
};
use eventfile::{Checkpoint, Checkpoints, Result};
use postgres::Row;

use crate::error::pg;
use crate::sql::stored;
use crate::store::Shared;

fn checkpoint(r: &Row) -> Result<Checkpoint> {
    Ok(Checkpoint {
        name: r.get(0),
        position: stored(r.get(1), "a checkpoint's position")?,
        error: r.get(2),
        time: r.get(3),
    })
}

impl Checkpoints for Shared {
    fn get(&self, name: &str) -> Result<Option<Checkpoint>> {
        check_checkpoint_name(name)?;
        let s = &self.schema;
        let row = self
            .pool
            .get()?
            .query_opt(
                &format!("SELECT name, position, error, time FROM {s}.checkpoints WHERE name = $1"),
                &[&name],
            )
            .map_err(pg)?;
        row.as_ref().map(checkpoint).transpose()
    }

    fn put(&self, name: &str, position: u64, error: Option<&str>) -> Result<()> {
        check_checkpoint_name(name)?;
        let position = checkpoint_position(name, position)?;
        let error = error.map(clip_checkpoint_error);
        let s = &self.schema;
        self.pool
            .get()?
            .execute(
                &format!(
                    "INSERT INTO {s}.checkpoints (name, position, error, time) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (name) DO UPDATE
                     SET position = excluded.position, error = excluded.error, time = excluded.time"
                ),
                &[&name, &position, &error, &commit_time(0)],
            )
            .map_err(pg)?;
        Ok(())
    }

    fn list(&self) -> Result<Vec<Checkpoint>> {
        let s = &self.schema;
        let rows = self
            .pool
            .get()?
            .query(
                &format!("SELECT name, position, error, time FROM {s}.checkpoints ORDER BY name COLLATE \"C\""),
                &[],
            )
            .map_err(pg)?;
        rows.iter().map(checkpoint).collect()
    }

    fn remove(&self, name: &str) -> Result<bool> {
        check_checkpoint_name(name)?;
        let s = &self.schema;
        let n = self
            .pool
            .get()?
            .execute(
                &format!("DELETE FROM {s}.checkpoints WHERE name = $1"),
                &[&name],
            )
            .map_err(pg)?;
        Ok(n > 0)
    }
}
