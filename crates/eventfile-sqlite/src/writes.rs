//! The writes other than appends, each one `BEGIN IMMEDIATE` transaction on the writer:
//! truncation, deletion and tombstones (a `$lifecycle` event and the stream's row in
//! `deletions`), snapshots (the newest [`DEFAULT_SNAPSHOTS_KEPT`] per stream), and imports.
//!
//! This module owns these writes; the rules come from `eventfile::backend`.

use std::sync::PoisonError;

use eventfile::backend::{self, DeleteOp, ImportStep, LIFECYCLE_STREAM};
use eventfile::{
    DEFAULT_SNAPSHOTS_KEPT, DeleteResult, ImportResult, RecordedEvent, Result, Snapshot,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde_json::value::RawValue;

use crate::connection::Sql;
use crate::rows::{self, Insert, int};
use crate::store::Inner;

impl Inner {
    /// Runs `f` in a write transaction and commits it; publishes the head it returns.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<(T, Option<u64>)>,
    ) -> Result<T> {
        let path = &self.path;
        self.check_poisoned()?;
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .sql(path)?;
        let (out, head) = f(&tx)?;
        tx.commit().inspect_err(|e| self.poison_on(e)).sql(path)?;
        drop(conn);
        if let Some(h) = head {
            self.publish(h);
        }
        Ok(out)
    }

    /// Truncation, deletion or tombstone of `stream`.
    pub(crate) fn lifecycle(&self, stream: &str, op: DeleteOp) -> Result<DeleteResult> {
        eventfile::validate_writable_stream(stream)?;
        let path = &self.path;
        self.write(|tx| {
            let version = rows::stream_version(tx, path, stream)?;
            let old = rows::deletion(tx, path, stream)?;
            backend::check_tombstone(stream, old)?;
            let (event, new) = match backend::plan_deletion(stream, version, old, op)? {
                Ok(change) => change,
                Err(unchanged) => return Ok((unchanged, None)),
            };
            let seq = rows::head(tx, path)? + 1;
            let id = uuid::Uuid::now_v7().to_string();
            rows::insert(
                tx,
                path,
                &Insert {
                    seq,
                    id: &id,
                    stream: LIFECYCLE_STREAM,
                    version: rows::stream_version(tx, path, LIFECYCLE_STREAM)? + 1,
                    event_type: event.event_type(),
                    time: backend::commit_time(rows::last_time(tx, path)?),
                    data: event.data(),
                    meta: event.meta(),
                    tags: event.tags(),
                    more: false,
                    key: None,
                },
            )?;
            rows::set_deletion(tx, path, stream, seq, new)?;
            if !matches!(op, DeleteOp::Truncate(_)) {
                tx.execute("DELETE FROM snapshots WHERE stream = ?1", [stream])
                    .sql(path)?;
            }
            let result = DeleteResult {
                stream: stream.to_owned(),
                version,
                deleted_before: new.before,
                tombstone: new.tombstone,
                seq: Some(seq),
            };
            Ok((result, Some(seq)))
        })
    }

    /// Saves a snapshot and keeps the newest few of the stream.
    pub(crate) fn save_snapshot(
        &self,
        stream: &str,
        version: u64,
        state: &RawValue,
    ) -> Result<Snapshot> {
        eventfile::validate_stream(stream)?;
        let state = backend::snapshot_state(state)?;
        let path = &self.path;
        self.write(|tx| {
            let current = rows::stream_version(tx, path, stream)?;
            let deleted = rows::deletion(tx, path, stream)?;
            backend::check_tombstone(stream, deleted)?;
            backend::check_snapshot_version(stream, version, current, deleted)?;
            let time = backend::commit_time(0);
            tx.execute(
                "INSERT OR REPLACE INTO snapshots (stream, version, time, state) \
                 VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![stream, int(version), time, state.get()],
            )
            .sql(path)?;
            tx.execute(
                "DELETE FROM snapshots WHERE stream = ?1 AND version NOT IN \
                 (SELECT version FROM snapshots WHERE stream = ?1 ORDER BY version DESC LIMIT ?2)",
                rusqlite::params![stream, int(DEFAULT_SNAPSHOTS_KEPT as u64)],
            )
            .sql(path)?;
            let snapshot = Snapshot {
                stream: stream.to_owned(),
                version,
                time,
                state,
            };
            Ok((snapshot, None))
        })
    }

    /// The newest usable snapshot of a stream.
    pub(crate) fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        eventfile::validate_stream(stream)?;
        let path = &self.path;
        self.pool.with(|c| {
            let tx = c.unchecked_transaction().sql(path)?;
            let current = rows::stream_version(&tx, path, stream)?;
            let deleted = rows::deletion(&tx, path, stream)?;
            backend::check_tombstone(stream, deleted)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT version, time, state FROM snapshots WHERE stream = ?1 \
                     ORDER BY version DESC",
                )
                .sql(path)?;
            let mut rows = stmt.query([stream]).sql(path)?;
            while let Some(r) = rows.next().sql(path)? {
                let version: u64 = r.get(0).sql(path)?;
                if !backend::snapshot_usable(version, current, deleted) {
                    continue;
                }
                let state: String = r.get(2).sql(path)?;
                let state =
                    RawValue::from_string(state).map_err(|e| eventfile::Error::Database {
                        backend: "sqlite",
                        reason: format!(
                            "{}: the snapshot of stream `{stream}` at version {version} is not \
                         valid JSON: {e}",
                            path.display()
                        ),
                    })?;
                return Ok(Some(Snapshot {
                    stream: stream.to_owned(),
                    version,
                    time: r.get(1).sql(path)?,
                    state,
                }));
            }
            Ok(None)
        })
    }

    /// Imports events recorded by another store, all-or-nothing.
    pub(crate) fn import(&self, events: &[RecordedEvent]) -> Result<ImportResult> {
        backend::check_import(events)?;
        let path = &self.path;
        self.write(|tx| {
            let mut last_time = rows::last_time(tx, path)?;
            let mut head = rows::head(tx, path)?;
            let mut current: std::collections::HashMap<&str, u64> = Default::default();
            let mut write = Vec::with_capacity(events.len());
            for (i, e) in events.iter().enumerate() {
                let existing: Option<(String, u64)> = tx
                    .prepare_cached("SELECT stream, version FROM events WHERE id = ?1")
                    .sql(path)?
                    .query_row([&e.id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .sql(path)?;
                let existing = existing.as_ref().map(|(s, v)| (s.as_str(), *v));
                // What is already there is skipped before the stream's state is looked at,
                // so a re-import skips it even in a stream tombstoned since.
                let cur = match (existing, current.get(e.stream.as_str())) {
                    (Some(_), _) => 0,
                    (None, Some(&v)) => v,
                    (None, None) => {
                        backend::check_tombstone(&e.stream, rows::deletion(tx, path, &e.stream)?)?;
                        rows::stream_version(tx, path, &e.stream)?
                    }
                };
                if backend::import_step(i, e, existing, cur, last_time)? == ImportStep::Write {
                    current.insert(&e.stream, e.version);
                    last_time = e.time;
                    write.push(e);
                }
            }
            let first = head + 1;
            for (i, e) in write.iter().enumerate() {
                head += 1;
                rows::insert(
                    tx,
                    path,
                    &Insert {
                        seq: head,
                        id: &e.id,
                        stream: &e.stream,
                        version: e.version,
                        event_type: &e.event_type,
                        time: e.time,
                        data: &e.data,
                        meta: &e.meta,
                        tags: &e.tags,
                        more: i + 1 < write.len(),
                        key: None,
                    },
                )?;
            }
            let result = ImportResult {
                written: write.len() as u64,
                skipped: (events.len() - write.len()) as u64,
                head,
            };
            Ok((result, (head >= first).then_some(head)))
        })
    }
}
