//! Truncation, deletion and tombstones, and snapshots: each in a transaction of its own holding
//! the writers' lock, with the rules of `eventfile::backend` ([`plan_deletion`],
//! [`check_snapshot_version`], [`snapshot_usable`]). A deletion's `$lifecycle` event is written
//! by the same append function as any event, so it takes the next seq in commit order.
//!
//! It owns the `deletions` and `snapshots` tables' writes.

use eventfile::backend::{
    DeleteOp, LIFECYCLE_STREAM, check_snapshot_version, check_tombstone, commit_time,
    plan_deletion, snapshot_state, snapshot_usable,
};
use eventfile::{
    DEFAULT_SNAPSHOTS_KEPT, DeleteResult, ExpectedVersion, Result, Snapshot, validate_stream,
    validate_writable_stream,
};
use serde_json::value::RawValue;

use crate::append::{Item, Part, call, call_sql};
use crate::error::{database, pg};
use crate::lookup::{lock_writers, stream_state};
use crate::sql::{pos, stored};
use crate::store::PostgresStore;

/// Applies `op` to `stream`: a `$lifecycle` event and the new deletion state, atomically, or
/// nothing if it changes nothing.
pub(crate) fn lifecycle(store: &PostgresStore, stream: &str, op: DeleteOp) -> Result<DeleteResult> {
    validate_writable_stream(stream)?;
    let s = store.schema();
    let mut conn = store.shared().pool.get()?;
    let stmt = conn.prepare(&call_sql(s)).map_err(pg)?;
    let mut tx = conn.transaction().map_err(pg)?;
    lock_writers(&mut tx, s)?;
    let (version, old) = stream_state(&mut tx, s, stream)?;
    check_tombstone(stream, old)?;
    let (event, new) = match plan_deletion(stream, version, old, op)? {
        Ok(change) => change,
        Err(unchanged) => return Ok(unchanged),
    };
    let events = [event];
    let ids = [uuid::Uuid::now_v7().to_string()];
    let items = [Item {
        key: None,
        parts: vec![Part {
            stream: LIFECYCLE_STREAM,
            expected: ExpectedVersion::Any,
            events: &events,
            ids: &ids,
        }],
    }];
    let Some(Some((seq, _))) = call(&mut tx, &stmt, &items).map_err(pg)?.into_iter().next() else {
        return Err(database("append_batch refused a $lifecycle event"));
    };
    tx.execute(
        &format!(
            "INSERT INTO {s}.deletions (stream, before, tombstone, soft) VALUES ($1, $2, $3, $4)
             ON CONFLICT (stream) DO UPDATE SET before = excluded.before,
                 tombstone = excluded.tombstone, soft = excluded.soft"
        ),
        &[&stream, &pos(new.before), &new.tombstone, &new.soft],
    )
    .map_err(pg)?;
    if !matches!(op, DeleteOp::Truncate(_)) {
        tx.execute(
            &format!("DELETE FROM {s}.snapshots WHERE stream = $1"),
            &[&stream],
        )
        .map_err(pg)?;
    }
    tx.commit().map_err(pg)?;
    store.shared().watch.advance(seq);
    Ok(DeleteResult {
        stream: stream.to_owned(),
        version,
        deleted_before: new.before,
        tombstone: new.tombstone,
        seq: Some(seq),
    })
}

/// Saves a snapshot, keeping the newest [`DEFAULT_SNAPSHOTS_KEPT`] of the stream.
pub(crate) fn save_snapshot(
    store: &PostgresStore,
    stream: &str,
    version: u64,
    state: &RawValue,
) -> Result<Snapshot> {
    validate_stream(stream)?;
    let state = snapshot_state(state)?;
    let s = store.schema();
    let mut conn = store.shared().pool.get()?;
    let mut tx = conn.transaction().map_err(pg)?;
    lock_writers(&mut tx, s)?;
    let (current, deleted) = stream_state(&mut tx, s, stream)?;
    check_tombstone(stream, deleted)?;
    check_snapshot_version(stream, version, current, deleted)?;
    let time = commit_time(0);
    tx.execute(
        &format!(
            "INSERT INTO {s}.snapshots (stream, version, time, state) VALUES ($1, $2, $3, $4)
             ON CONFLICT (stream, version) DO UPDATE SET time = excluded.time, state = excluded.state"
        ),
        &[&stream, &pos(version), &time, &state.get()],
    )
    .map_err(pg)?;
    tx.execute(
        &format!(
            "DELETE FROM {s}.snapshots WHERE stream = $1 AND version NOT IN
             (SELECT version FROM {s}.snapshots WHERE stream = $1 ORDER BY version DESC LIMIT $2)"
        ),
        &[&stream, &(DEFAULT_SNAPSHOTS_KEPT as i64)],
    )
    .map_err(pg)?;
    tx.commit().map_err(pg)?;
    Ok(Snapshot {
        stream: stream.to_owned(),
        version,
        time,
        state,
    })
}

/// The newest usable snapshot of `stream`.
pub(crate) fn load_snapshot(store: &PostgresStore, stream: &str) -> Result<Option<Snapshot>> {
    validate_stream(stream)?;
    let s = store.schema();
    let mut conn = store.shared().pool.get()?;
    let mut tx = conn.transaction().map_err(pg)?;
    let (current, deleted) = stream_state(&mut tx, s, stream)?;
    check_tombstone(stream, deleted)?;
    let rows = tx
        .query(
            &format!(
                "SELECT version, time, state FROM {s}.snapshots WHERE stream = $1
                 ORDER BY version DESC"
            ),
            &[&stream],
        )
        .map_err(pg)?;
    for r in &rows {
        let version = stored(r.get(0), "a snapshot's version")?;
        if snapshot_usable(version, current, deleted) {
            let state: String = r.get(2);
            return Ok(Some(Snapshot {
                stream: stream.to_owned(),
                version,
                time: r.get(1),
                state: RawValue::from_string(state)?,
            }));
        }
    }
    Ok(None)
}
