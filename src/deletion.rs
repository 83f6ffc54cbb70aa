//! The deletion state: per stream, the first version still live and whether it is tombstoned,
//! as the `$lifecycle` events in the log define it (see `lifecycle.rs` for the operations that
//! append them). Small, held in memory, and only moving forward, so replaying an event twice is
//! harmless.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::DeleteResult;
use crate::error::{Error, Result};
use crate::event::{NewEvent, RecordedEvent};
use crate::expected::ExpectedVersion;
use crate::index::Kind;
use crate::query::IndexRef;

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
    /// `before` was set by a soft deletion of the whole stream, not a truncation: the version
    /// below it ended the stream's life, and no snapshot at or below it stands for the life
    /// the stream may begin again (a truncation's `before - 1` may: the state of everything it
    /// deleted). Absent in a manifest written before it existed, and read as false there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub soft: bool,
}

impl Deletion {
    /// Combines two deletions of a stream (operations only move forward): the one that set
    /// the larger `before` says whether it was a soft deletion.
    pub(crate) fn merge(self, other: Deletion) -> Deletion {
        use std::cmp::Ordering;
        Deletion {
            before: self.before.max(other.before),
            tombstone: self.tombstone || other.tombstone,
            soft: match other.before.cmp(&self.before) {
                Ordering::Greater => other.soft,
                Ordering::Equal => self.soft || other.soft,
                Ordering::Less => self.soft,
            },
        }
    }
}

/// Per stream, what is deleted.
pub(crate) type Deletions = HashMap<String, Deletion>;

/// What is deleted, and how far the log's `$lifecycle` events have been applied.
#[derive(Default)]
pub(crate) struct DeletionState {
    /// Per stream (copied by reads, replaced on change).
    pub map: Arc<Deletions>,
    /// The last seq whose `$lifecycle` events are applied to `map`.
    pub seen: u64,
}

/// The data of a lifecycle event.
#[derive(Serialize, Deserialize)]
pub(crate) struct LifecycleData {
    pub(crate) stream: String,
    pub(crate) before: u64,
}

/// Applies one `$lifecycle` event to the deletion state.
pub(crate) fn apply_event(deleted: &mut Deletions, e: &RecordedEvent) {
    let (tombstone, soft) = match e.event_type.as_str() {
        TRUNCATED => (false, false),
        DELETED => (false, true),
        TOMBSTONED => (true, false),
        _ => return,
    };
    let Ok(d) = serde_json::from_str::<LifecycleData>(e.data.get()) else {
        return;
    };
    let new = Deletion {
        before: d.before,
        tombstone,
        soft,
    };
    let merged = deleted.get(&d.stream).map_or(new, |o| o.merge(new));
    deleted.insert(d.stream, merged);
}

/// Whether an event is live (not deleted).
pub(crate) fn is_live(deleted: &Deletions, stream: &str, version: u64) -> bool {
    deleted.get(stream).is_none_or(|d| version >= d.before)
}

/// The ordinals of a segment's dead events, ascending.
pub(crate) fn dead_ordinals(ix: &IndexRef<'_>, dead: &[(String, usize)]) -> Result<Vec<u32>> {
    let mut ords: Vec<u32> = Vec::new();
    for (name, n) in dead {
        ords.extend(ix.postings(Kind::Stream, name)?.into_iter().take(*n));
    }
    ords.sort_unstable();
    Ok(ords)
}

/// Per deleted stream with events in a segment: how many of its first events there are dead.
pub(crate) type DeadCounts = Vec<(String, usize)>;

/// Which deletion.
#[derive(Clone, Copy)]
pub(crate) enum DeleteOp {
    Truncate(u64),
    Delete(ExpectedVersion),
    Tombstone(ExpectedVersion),
}

/// Whether a snapshot of `stream` at `version` may be saved, the stream being at `current`
/// with deletion state `deleted`: the version must exist, and not lie below a truncation (the
/// snapshot would stand for events that are deleted after it). Every backend checks this.
pub(crate) fn check_snapshot_version(
    stream: &str,
    version: u64,
    current: u64,
    deleted: Option<Deletion>,
) -> Result<()> {
    if version == 0 || version > current {
        return Err(Error::invalid(
            "snapshot version",
            format!("stream `{stream}` has no version {version} (it is at version {current})"),
        ));
    }
    if let Some(d) = deleted.filter(|d| d.soft && version < d.before) {
        return Err(Error::invalid(
            "snapshot version",
            format!(
                "stream `{stream}` was deleted at version {}: a snapshot at {version} would \
                 stand for its deleted events",
                d.before - 1
            ),
        ));
    }
    if let Some(d) = deleted.filter(|d| version + 1 < d.before) {
        return Err(Error::invalid(
            "snapshot version",
            format!(
                "stream `{stream}` is truncated before version {}: a snapshot at {version} \
                 would miss the deleted events after it",
                d.before
            ),
        ));
    }
    Ok(())
}

/// Whether a snapshot at `version` may stand for a stream at `current` with deletion state
/// `deleted`: it exists, covers every event a truncation deleted after it, and does not lie in
/// a life a soft deletion ended.
pub(crate) fn snapshot_usable(version: u64, current: u64, deleted: Option<Deletion>) -> bool {
    version <= current
        && deleted.is_none_or(|d| version + 1 >= d.before && !(d.soft && version < d.before))
}

/// What a deletion does to a stream at `version` with the deletion state `old`: nothing
/// (`Err(result)` to return as is), or the `$lifecycle` event to append and the state it
/// leaves. The one statement of the rules, for every backend: checks and expectations first, and
/// a change that changes nothing writes nothing.
pub(crate) fn plan(
    stream: &str,
    version: u64,
    old: Option<Deletion>,
    op: DeleteOp,
) -> Result<std::result::Result<(NewEvent, Deletion), DeleteResult>> {
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
        DeleteOp::Truncate(before) => {
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
                    soft: false,
                },
            )
        }
        DeleteOp::Delete(expected) => {
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
                    soft: true,
                },
            )
        }
        DeleteOp::Tombstone(expected) => {
            check(expected)?;
            (
                TOMBSTONED,
                Deletion {
                    before: version + 1,
                    tombstone: true,
                    soft: false,
                },
            )
        }
    };
    let unchanged = Deletion {
        before: 1,
        tombstone: false,
        soft: false,
    };
    let merged = old.unwrap_or(unchanged).merge(new);
    if old.unwrap_or(unchanged) == merged {
        return Ok(Err(DeleteResult {
            stream: stream.to_owned(),
            version,
            deleted_before: merged.before,
            tombstone: merged.tombstone,
            seq: None,
        }));
    }
    let event = NewEvent::new(
        event_type,
        serde_json::to_value(LifecycleData {
            stream: stream.to_owned(),
            before: new.before,
        })?,
    );
    Ok(Ok((event, merged)))
}
