//! Stream deletion: truncation (soft delete before a version), deletion (soft, of the whole
//! stream) and tombstones (hard delete).
//!
//! Each operation is itself an event, appended to the store's own stream `$lifecycle`, so the log
//! stays the one source of truth and a reader sees deletions in order with everything else. The
//! state they produce (per stream: the first version still live, and whether it is tombstoned) is
//! small and held in memory; it only moves forward, so replaying an operation twice is harmless.
//! On open it is rebuilt from the retention manifest (for operations whose events retention
//! removed) and the `$lifecycle` events of the retained log, found through the stream index.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::{ExpectedVersion, NewEvent, RecordedEvent, validate_writable_stream};
use crate::index::Kind;
use crate::query::IndexRef;
use crate::store::{State, Store};
use crate::writer::Part;

/// The store's own stream, holding one event per deletion.
pub const LIFECYCLE_STREAM: &str = "$lifecycle";

/// Event type of a truncation.
pub const TRUNCATED: &str = "$stream-truncated";
/// Event type of a soft deletion of a whole stream.
pub const DELETED: &str = "$stream-deleted";
/// Event type of a hard deletion (tombstone).
pub const TOMBSTONED: &str = "$stream-tombstoned";

/// What has been deleted of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Deletion {
    /// Events with a version below this are deleted.
    pub before: u64,
    /// Hard-deleted: nothing may be appended any more.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tombstone: bool,
}

impl Deletion {
    /// Combines two deletions of a stream (operations only move forward).
    pub(crate) fn merge(self, other: Deletion) -> Deletion {
        Deletion {
            before: self.before.max(other.before),
            tombstone: self.tombstone || other.tombstone,
        }
    }
}

/// Per stream, what is deleted.
pub(crate) type Deletions = HashMap<String, Deletion>;

/// The data of a lifecycle event.
#[derive(Serialize, Deserialize)]
pub(crate) struct LifecycleData {
    pub(crate) stream: String,
    pub(crate) before: u64,
}

/// The outcome of a truncation or deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeleteResult {
    /// The stream.
    pub stream: String,
    /// The stream's version (deletion never changes it: later appends continue the numbering).
    pub version: u64,
    /// Events of the stream with a version below this are deleted.
    pub deleted_before: u64,
    /// Whether the stream is tombstoned (hard-deleted).
    pub tombstone: bool,
    /// Seq of the `$lifecycle` event that records the operation; `None` if nothing changed (the
    /// stream was already truncated at least that far).
    pub seq: Option<u64>,
}

/// Which deletion.
#[derive(Clone, Copy)]
enum Op {
    Truncate(u64),
    Delete(ExpectedVersion),
    Tombstone(ExpectedVersion),
}

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
        self.lifecycle(stream, Op::Truncate(before))
    }

    /// Soft-deletes every event of `stream` so far, if its version satisfies `expected`. The
    /// stream reads as empty, but keeps its version: appending to it again continues the
    /// numbering. Its snapshots are removed.
    pub fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult> {
        self.lifecycle(stream, Op::Delete(expected))
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
        self.lifecycle(stream, Op::Tombstone(expected))
    }

    fn lifecycle(&self, stream: &str, op: Op) -> Result<DeleteResult> {
        let inner = &self.inner;
        if inner.read_only {
            return Err(Error::ReadOnly);
        }
        validate_writable_stream(stream)?;
        let mut guard = inner.lock_state();
        let st = &mut *guard;
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned {
                cause: cause.clone(),
            });
        }
        let version = st.version(stream);
        let old = st.deletion(stream)?;
        let check = |expected: ExpectedVersion| {
            if expected.matches(version) {
                Ok(())
            } else {
                Err(Error::WrongExpectedVersion {
                    stream: stream.to_owned(),
                    expected,
                    actual: version,
                })
            }
        };
        let (event_type, new) = match op {
            Op::Truncate(before) => {
                if version == 0 {
                    return Err(Error::invalid(
                        "stream",
                        format!("stream `{stream}` holds no events to truncate"),
                    ));
                }
                if before == 0 || before > version + 1 {
                    return Err(Error::invalid(
                        "truncation point",
                        format!(
                            "stream `{stream}` is at version {version}: truncate before a version from 1 to {}",
                            version + 1
                        ),
                    ));
                }
                (
                    TRUNCATED,
                    Deletion {
                        before,
                        tombstone: false,
                    },
                )
            }
            Op::Delete(expected) => {
                check(expected)?;
                if version == 0 {
                    return Err(Error::invalid(
                        "stream",
                        format!("stream `{stream}` holds no events to delete"),
                    ));
                }
                (
                    DELETED,
                    Deletion {
                        before: version + 1,
                        tombstone: false,
                    },
                )
            }
            Op::Tombstone(expected) => {
                check(expected)?;
                (
                    TOMBSTONED,
                    Deletion {
                        before: version + 1,
                        tombstone: true,
                    },
                )
            }
        };
        let unchanged = Deletion {
            before: 1,
            tombstone: false,
        };
        let merged = old.unwrap_or(unchanged).merge(new);
        if old.unwrap_or(unchanged) == merged {
            return Ok(DeleteResult {
                stream: stream.to_owned(),
                version,
                deleted_before: merged.before,
                tombstone: merged.tombstone,
                seq: None,
            });
        }
        let event = NewEvent::new(
            event_type,
            serde_json::to_value(LifecycleData {
                stream: stream.to_owned(),
                before: new.before,
            })?,
        );
        let events = [event];
        let parts = [Part {
            stream: LIFECYCLE_STREAM,
            expected: ExpectedVersion::Any,
            events: &events,
        }];
        let ids = vec![vec![uuid::Uuid::now_v7().to_string()]];
        let batch = inner.commit_locked(st, &parts, &ids, None)?;
        Arc::make_mut(&mut st.deleted).insert(stream.to_owned(), merged);
        st.lifecycle_seen = batch.last_seq;
        drop(guard);
        inner.wait_durable(batch.last_seq, false)?;
        if !matches!(op, Op::Truncate(_)) {
            crate::snapshot::remove_all(inner, stream)?;
        }
        Ok(DeleteResult {
            stream: stream.to_owned(),
            version,
            deleted_before: merged.before,
            tombstone: merged.tombstone,
            seq: Some(batch.last_seq),
        })
    }
}

impl State {
    /// What is deleted of `stream`, if anything; a tombstoned stream is refused with
    /// [`Error::StreamDeleted`], as every operation on it is.
    pub(crate) fn deletion(&self, stream: &str) -> Result<Option<Deletion>> {
        match self.deleted.get(stream) {
            Some(d) if d.tombstone => Err(Error::StreamDeleted {
                stream: stream.to_owned(),
                version: d.before - 1,
            }),
            d => Ok(d.copied()),
        }
    }
}

/// Applies one `$lifecycle` event to the deletion state.
pub(crate) fn apply_event(deleted: &mut Deletions, e: &RecordedEvent) {
    let tombstone = match e.event_type.as_str() {
        TRUNCATED | DELETED => false,
        TOMBSTONED => true,
        _ => return,
    };
    let Ok(d) = serde_json::from_str::<LifecycleData>(e.data.get()) else {
        return;
    };
    let new = Deletion {
        before: d.before,
        tombstone,
    };
    let merged = deleted.get(&d.stream).map_or(new, |o| o.merge(new));
    deleted.insert(d.stream, merged);
}

/// Applies the `$lifecycle` events the state has not seen yet (after open or catch-up).
pub(crate) fn catch_up(st: &mut State, max_line: usize) -> Result<()> {
    let seen = st.lifecycle_seen;
    let from = st
        .segments
        .partition_point(|s| s.base <= seen)
        .saturating_sub(1);
    let mut seqs = Vec::new();
    for seg in &st.segments[from..] {
        let ix;
        let r = match &seg.sealed {
            Some(s) => {
                ix = s.index()?;
                IndexRef::File(&ix)
            }
            None => IndexRef::Mem(&st.active_index),
        };
        seqs.extend(
            r.postings(Kind::Stream, LIFECYCLE_STREAM)
                .into_iter()
                .map(|o| seg.base + u64::from(o))
                .filter(|&s| s > seen),
        );
    }
    for seq in seqs {
        if let Some(found) = crate::lookup::record_at(st, seq, max_line)? {
            apply_event(Arc::make_mut(&mut st.deleted), &found.event);
        }
    }
    st.lifecycle_seen = st.next_seq - 1;
    Ok(())
}

/// Whether an event is live (not deleted).
pub(crate) fn is_live(deleted: &Deletions, stream: &str, version: u64) -> bool {
    deleted.get(stream).is_none_or(|d| version >= d.before)
}

/// Per deleted stream with events in a segment: how many of its first events there are dead.
pub(crate) type DeadCounts = Vec<(String, usize)>;

/// The [`DeadCounts`] of the segment at `base`. The caller turns them into ordinals with the
/// segment's stream postings.
pub(crate) fn dead_counts(st: &State, base: u64, active: bool) -> DeadCounts {
    let mut out = Vec::new();
    for (name, d) in st.deleted.iter() {
        let Some(entry) = st.streams.get(name) else {
            continue;
        };
        // The stream's versions in this segment: after its previous segment's last, up to
        // this one's last (the list is in base order: a binary search, as this runs per
        // deleted stream for every segment a read plans).
        let i = entry.sealed.partition_point(|&(b, _)| b < base);
        let first = i.checked_sub(1).map_or(1, |p| entry.sealed[p].1 + 1);
        let range = match entry.sealed.get(i) {
            Some(&(b, last)) if b == base => Some((first, last)),
            None if active && first <= entry.version => Some((first, entry.version)),
            _ => None,
        };
        if let Some((first, last)) = range
            && d.before > first
        {
            let dead = (d.before.min(last + 1) - first) as usize;
            out.push((name.clone(), dead));
        }
    }
    out
}

/// The ordinals of a segment's dead events, ascending.
pub(crate) fn dead_ordinals(ix: &IndexRef<'_>, dead: &[(String, usize)]) -> Vec<u32> {
    let mut ords: Vec<u32> = dead
        .iter()
        .flat_map(|(name, n)| ix.postings(Kind::Stream, name).into_iter().take(*n))
        .collect();
    ords.sort_unstable();
    ords
}
