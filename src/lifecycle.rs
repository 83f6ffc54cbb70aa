//! Stream deletion: truncation (soft delete before a version), deletion (soft, of the whole
//! stream) and tombstones (hard delete).
//!
//! Each operation is itself an event, appended to the store's own stream `$lifecycle`, so the log
//! stays the one source of truth and a reader sees deletions in order with everything else. The
//! state they produce (per stream: the first version still live, and whether it is tombstoned) is
//! small and held in memory; it only moves forward, so replaying an operation twice is harmless.
//! On open it is rebuilt from the retention manifest (for operations whose events retention
//! removed) and the `$lifecycle` events of the retained log, found through the stream index.

use std::sync::Arc;

use crate::api::DeleteResult;
use crate::backend::Part;
use crate::deletion::{DeleteOp, LIFECYCLE_STREAM, plan};
use crate::error::{Error, Result};
use crate::event::{ExpectedVersion, validate_writable_stream};
use crate::store::Store;

impl Store {
    /// Soft-deletes the events of `stream` with a version below `before`: they vanish from
    /// stream reads and queries at once, and the segments they live in become reclaimable by
    /// [`Store::compact`] once all their events are dead. The stream keeps its version and later
    /// appends continue its numbering. `before` may be at most the stream's version + 1 (which
    /// deletes every event so far). Truncating to a point at or below an earlier truncation
    /// changes nothing and writes nothing.
    ///
    /// ```
    /// # use eventfile::{ExpectedVersion, NewEvent, Read, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Store::open(dir.path())?;
    /// for i in 0..5 {
    ///     store.append("cart-1", ExpectedVersion::Any, [NewEvent::new("Added", serde_json::json!(i))])?;
    /// }
    /// store.truncate_stream("cart-1", 4)?;
    /// let left: Vec<u64> = store.read_stream("cart-1", Read::forward())?
    ///     .map(|e| e.map(|e| e.version)).collect::<Result<_, _>>()?;
    /// assert_eq!(left, [4, 5]);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn truncate_stream(&self, stream: &str, before: u64) -> Result<DeleteResult> {
        self.lifecycle(stream, DeleteOp::Truncate(before))
    }

    /// Soft-deletes every event of `stream` so far, if its version satisfies `expected`. The
    /// stream reads as empty, but keeps its version: appending to it again continues the
    /// numbering. Its snapshots are removed.
    pub fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult> {
        self.lifecycle(stream, DeleteOp::Delete(expected))
    }

    /// Hard-deletes `stream`, if its version satisfies `expected`: its events vanish and a
    /// tombstone stays, so later appends fail with [`Error::StreamDeleted`] and reads of it too.
    /// Its snapshots are removed. A stream that never existed can be tombstoned, to reserve the
    /// name.
    pub fn tombstone_stream(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Result<DeleteResult> {
        self.lifecycle(stream, DeleteOp::Tombstone(expected))
    }

    fn lifecycle(&self, stream: &str, op: DeleteOp) -> Result<DeleteResult> {
        let inner = &self.inner;
        if inner.read_only {
            return Err(Error::ReadOnly);
        }
        validate_writable_stream(stream)?;
        // A deletion removes the stream's snapshots (they stand for deleted events; a
        // truncation keeps them), before its event is written: a crash between the two leaves
        // the stream as it was without its snapshots (a cache, rebuilt by a replay), never a
        // deleted stream with a snapshot `load_snapshot` would still return. Its snapshot lock
        // keeps `save_snapshot` from writing one in between.
        let removes_snapshots = !matches!(op, DeleteOp::Truncate(_));
        let _snapshots = removes_snapshots.then(|| inner.lock_snapshots());
        let mut guard = inner.lock_state();
        let st = &mut *guard;
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned {
                cause: cause.clone(),
            });
        }
        let version = st.version(stream)?;
        let old = st.deletion(stream)?;
        let (event, merged) = match plan(stream, version, old, op)? {
            Ok(change) => change,
            Err(unchanged) => return Ok(unchanged),
        };
        if removes_snapshots {
            crate::snapshot::remove_all(inner, stream)?;
        }
        let events = [event];
        let parts = [Part {
            stream: LIFECYCLE_STREAM,
            expected: ExpectedVersion::Any,
            events: &events,
        }];
        let ids = vec![vec![crate::backend::new_event_id()]];
        let batch = inner.commit_locked(st, &parts, &ids, None)?;
        // The deletion hides the stream's events from reads and subscriptions, and compaction
        // counts them dead and writes it into its manifest (durably), as soon as it is in the
        // map: so only once its event, and the events it counts, are durable, in every mode. Or
        // a failed sync would leave a deletion the caller was told failed, and that a reopen
        // takes back, in force meanwhile; and a manifest could keep, past a power loss, a
        // deletion whose event and counted versions were lost. Synced here under the state
        // lock, as a roll syncs.
        inner.sync_active(st)?;
        Arc::make_mut(&mut st.deletions.map).insert(stream.to_owned(), merged);
        st.deletions.seen = batch.last_seq;
        drop(guard);
        inner.wait_durable(batch.last_seq, false)?;
        Ok(DeleteResult {
            stream: stream.to_owned(),
            version,
            deleted_before: merged.before,
            tombstone: merged.tombstone,
            seq: Some(batch.last_seq),
        })
    }
}
