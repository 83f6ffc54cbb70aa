//! [`EventfileEventRepository`]: cqrs-es's [`PersistedEventRepository`] over any eventfile
//! store.
//!
//! This module owns the calls the repository makes to the store and their order: an append
//! with the aggregate's expected version, then (never before) the snapshot. It never names a
//! stream itself ([`crate::stream_name`]) nor lays out a record ([`crate::mapping`]).

use std::fmt;

use cqrs_es::Aggregate;
use cqrs_es::persist::{
    PersistedEventRepository, PersistedEventStore, PersistenceError, ReplayStream, SerializedEvent,
    SerializedSnapshot,
};
use eventfile::{AsyncStore, ExpectedVersion, Query, Read, RecordedEvent};
use serde_json::Value;

use crate::error::{Error, persistence_error};
use crate::mapping::{self, SNAPSHOT_FORMAT, SnapshotState};
use crate::replay::{self, Order};
use crate::stream_name::{stream_name, type_prefix};

/// The default number of events a replay stream buffers ahead of its reader (as cqrs-es's
/// PostgreSQL backend).
pub const DEFAULT_STREAMING_CHANNEL_SIZE: usize = 200;

/// cqrs-es's event repository on an eventfile store: file, memory, SQLite, PostgreSQL or any
/// other [`eventfile::EventStore`], served through [`AsyncStore`].
///
/// One aggregate instance is one stream, `{Aggregate::TYPE}-{aggregate_id}`; a cqrs-es sequence
/// number is the event's version in it. The README of this crate says what maps to what.
///
/// ```
/// use cqrs_es::persist::PersistedEventStore;
/// use eventfile::{AsyncStore, MemoryStore};
/// use eventfile_cqrs::EventfileEventRepository;
/// # use cqrs_es::doc::MyAggregate;
///
/// let repo = EventfileEventRepository::new(AsyncStore::new(MemoryStore::new()));
/// let store = PersistedEventStore::<_, MyAggregate>::new_event_store(repo);
/// # let _ = store;
/// ```
#[derive(Clone)]
pub struct EventfileEventRepository {
    store: AsyncStore,
    snapshot_size: Option<usize>,
    channel_size: usize,
}

impl fmt::Debug for EventfileEventRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventfileEventRepository")
            .field("snapshot_size", &self.snapshot_size)
            .field("channel_size", &self.channel_size)
            .finish_non_exhaustive()
    }
}

impl EventfileEventRepository {
    /// A repository on `store`: an [`AsyncStore`], or an `Arc<dyn EventStore>` or
    /// `Box<dyn EventStore>` that becomes one.
    pub fn new(store: impl Into<AsyncStore>) -> EventfileEventRepository {
        EventfileEventRepository {
            store: store.into(),
            snapshot_size: None,
            channel_size: DEFAULT_STREAMING_CHANNEL_SIZE,
        }
    }

    /// How many events a replay stream buffers ahead of its reader. Default:
    /// [`DEFAULT_STREAMING_CHANNEL_SIZE`].
    #[must_use]
    pub fn with_streaming_channel_size(mut self, size: usize) -> EventfileEventRepository {
        self.channel_size = size.max(1);
        self
    }

    /// Tells the repository the `snapshot_size` its [`PersistedEventStore::new_snapshot_store`]
    /// uses, so that it saves each snapshot at the version the snapshot is of. Default: none,
    /// and a snapshot is saved at the version of the last event committed with it.
    ///
    /// Why: cqrs-es passes the snapshot's state but not its version. With `new_aggregate_store`
    /// the state includes every event of the commit; with `new_snapshot_store(repo, n)` it
    /// includes the events up to the last multiple of `n`, which is not the last event when one
    /// command emits several events across that multiple. [`Self::snapshot_store`] sets both
    /// sizes at once. Do not set it for an aggregate store.
    #[must_use]
    pub fn with_snapshot_size(mut self, snapshot_size: usize) -> EventfileEventRepository {
        self.snapshot_size = Some(snapshot_size.max(1));
        self
    }

    /// A [`PersistedEventStore`] using events as the only source of truth.
    pub fn event_store<A: Aggregate>(self) -> PersistedEventStore<Self, A> {
        PersistedEventStore::new_event_store(self)
    }

    /// A [`PersistedEventStore`] that saves a snapshot every `snapshot_size` events and loads
    /// from the newest one, the repository told the same size ([`Self::with_snapshot_size`]).
    pub fn snapshot_store<A: Aggregate>(
        self,
        snapshot_size: usize,
    ) -> PersistedEventStore<Self, A> {
        let snapshot_size = snapshot_size.max(1);
        PersistedEventStore::new_snapshot_store(
            self.with_snapshot_size(snapshot_size),
            snapshot_size,
        )
    }

    /// A [`PersistedEventStore`] that loads the aggregate from its snapshot alone, saved at
    /// every commit (the events are stored too). Not crash-atomic here: see the README.
    pub fn aggregate_store<A: Aggregate>(mut self) -> PersistedEventStore<Self, A> {
        self.snapshot_size = None;
        PersistedEventStore::new_aggregate_store(self)
    }

    /// The store.
    pub fn store(&self) -> &AsyncStore {
        &self.store
    }

    /// One aggregate's events from version `from`, checked to follow each other from it.
    async fn read_from(
        &self,
        aggregate_type: &'static str,
        aggregate_id: &str,
        from: u64,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let stream = stream_name(aggregate_type, aggregate_id)?;
        let events = self
            .store
            .read_stream(&stream, Read::forward().from(from))
            .await
            .map_err(persistence_error)?;
        if !events.is_empty() {
            return convert_consecutive(aggregate_type, &stream, from, events);
        }
        // Nothing from `from` on. Either the stream has not reached it, or every event there
        // is deleted or truncated: loaded as a new aggregate, its every commit would conflict.
        // The version is read before a second read, never after the first: a commit between
        // the two would otherwise look like events that vanished. Versions only grow, so
        // whatever the version counts is in the second read unless it was deleted.
        let version = self
            .store
            .stream_version(&stream)
            .await
            .map_err(persistence_error)?;
        if version < from {
            return Ok(Vec::new());
        }
        let events = self
            .store
            .read_stream(&stream, Read::forward().from(from))
            .await
            .map_err(persistence_error)?;
        if events.is_empty() {
            return Err(Error::MissingEvents {
                stream,
                expected: from,
                found: 0,
            }
            .into());
        }
        convert_consecutive(aggregate_type, &stream, from, events)
    }

    /// Whether snapshots are a cache of the events (a snapshot store, which was told its
    /// size), not the aggregate's only source of truth (an aggregate store, which loads the
    /// snapshot and no event).
    fn snapshots_are_a_cache(&self) -> bool {
        self.snapshot_size.is_some()
    }

    /// The version a snapshot committed with events `first..=last` is of.
    fn snapshot_version(&self, stream: &str, first: u64, last: u64) -> Result<u64, Error> {
        let Some(size) = self.snapshot_size else {
            return Ok(last);
        };
        let size = size as u64;
        let version = last - last % size;
        if version < first {
            return Err(Error::Snapshot {
                stream: stream.to_owned(),
                reason: format!(
                    "the repository's snapshot size is {size}, but no multiple of it lies among \
                     the versions {first}..={last} committed: the PersistedEventStore uses \
                     another size (build both with EventfileEventRepository::snapshot_store)"
                ),
            });
        }
        Ok(version)
    }
}

/// `events`, read from version `from` of `stream`, as cqrs-es events, or the gap found.
fn convert_consecutive(
    aggregate_type: &str,
    stream: &str,
    from: u64,
    events: Vec<RecordedEvent>,
) -> Result<Vec<SerializedEvent>, PersistenceError> {
    let mut out = Vec::with_capacity(events.len());
    for (expected, event) in (from..).zip(events) {
        if event.version != expected {
            return Err(Error::MissingEvents {
                stream: stream.to_owned(),
                expected,
                found: event.version,
            }
            .into());
        }
        out.push(mapping::serialized_event(aggregate_type, event)?);
    }
    Ok(out)
}

/// The aggregate id of a batch to persist and its first and last sequence numbers, checked.
fn check_batch<'a>(
    aggregate_type: &str,
    events: &'a [SerializedEvent],
) -> Result<(&'a str, u64, u64), Error> {
    let bad = |reason: String| Err(Error::BadBatch { reason });
    let Some(first) = events.first() else {
        return bad("there are none".to_owned());
    };
    if first.sequence == 0 {
        return bad("the first sequence number is 0".to_owned());
    }
    for (expected, e) in (first.sequence..).zip(events) {
        if e.aggregate_id != first.aggregate_id {
            return bad(format!(
                "aggregate ids `{}` and `{}` in one batch",
                first.aggregate_id, e.aggregate_id
            ));
        }
        if e.aggregate_type != aggregate_type {
            return bad(format!(
                "aggregate type `{}` in a batch of `{aggregate_type}`",
                e.aggregate_type
            ));
        }
        if e.sequence != expected {
            return bad(format!(
                "sequence {} where {expected} should come",
                e.sequence
            ));
        }
    }
    let last = first.sequence + events.len() - 1;
    Ok((&first.aggregate_id, first.sequence as u64, last as u64))
}

impl PersistedEventRepository for EventfileEventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.read_from(A::TYPE, aggregate_id, 1).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.read_from(A::TYPE, aggregate_id, last_sequence as u64 + 1)
            .await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        let stream = stream_name(A::TYPE, aggregate_id)?;
        // An aggregate store needs the stream's version to tell a new aggregate from one whose
        // snapshot is missing. It is read before the snapshot: read after, a first commit
        // landing between the two would look like events without a snapshot.
        let version = if self.snapshots_are_a_cache() {
            0
        } else {
            self.store
                .stream_version(&stream)
                .await
                .map_err(persistence_error)?
        };
        let found = self
            .store
            .load_snapshot(&stream)
            .await
            .map_err(persistence_error)?;
        let reason = match &found {
            Some(snapshot) => match mapping::serialized_snapshot(aggregate_id, snapshot) {
                Ok(s) => return Ok(Some(s)),
                Err(reason) => reason,
            },
            None => String::new(),
        };
        if self.snapshots_are_a_cache() {
            // A snapshot store reads the events after whatever it is given: one that is not
            // ours is passed over, and the aggregate is loaded from its events.
            if let Some(snapshot) = found {
                log::warn!(
                    "snapshot of `{stream}` at version {} ignored, the aggregate is loaded \
                     without it: {reason}",
                    snapshot.version
                );
            }
            return Ok(None);
        }
        // An aggregate store loads the snapshot and no event: without one, a stream that has
        // events would load as a new aggregate, and every commit on it would conflict.
        match found {
            None if version == 0 => Ok(None),
            None => Err(Error::Snapshot {
                stream,
                reason: format!(
                    "the aggregate store's source of truth is its snapshot, and the stream, at \
                     version {version}, has none (deleted or never saved): load it with an event \
                     or snapshot store"
                ),
            }
            .into()),
            Some(snapshot) => Err(Error::Snapshot {
                stream,
                reason: format!(
                    "the aggregate store's source of truth is its snapshot, and the one at \
                     version {} is not usable ({reason}): load it with an event or snapshot \
                     store",
                    snapshot.version
                ),
            }
            .into()),
        }
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if events.is_empty() {
            return match snapshot_update {
                None => Ok(()),
                Some((aggregate_id, ..)) => Err(Error::Snapshot {
                    stream: stream_name(A::TYPE, &aggregate_id)?,
                    reason: "an eventfile snapshot is of a version of the stream, and no event \
                             was committed with this one"
                        .to_owned(),
                }
                .into()),
            };
        }
        let (aggregate_id, first, last) = check_batch(A::TYPE, events)?;
        let stream = stream_name(A::TYPE, aggregate_id)?;
        // Everything about the snapshot is checked before anything is written.
        let snapshot = match snapshot_update {
            None => None,
            Some((snapshot_id, _, _)) if snapshot_id != aggregate_id => {
                return Err(Error::BadBatch {
                    reason: format!(
                        "a snapshot of aggregate `{snapshot_id}` with events of `{aggregate_id}`"
                    ),
                }
                .into());
            }
            Some((_, aggregate, current_snapshot)) => {
                let version = self.snapshot_version(&stream, first, last)?;
                let state = SnapshotState {
                    eventfile_cqrs: SNAPSHOT_FORMAT,
                    current_snapshot,
                    aggregate,
                };
                Some((version, serde_json::value::to_raw_value(&state)?))
            }
        };
        // The events first, with the version the aggregate was loaded at: a concurrent commit
        // makes this one fail whole, as the optimistic lock.
        let new_events = events.iter().map(mapping::new_event);
        self.store
            .append(&stream, ExpectedVersion::Exact(first - 1), new_events)
            .await
            .map_err(persistence_error)?;
        // Then the snapshot, of versions that are now in the log: a crash between the two
        // leaves the snapshot behind the events, never ahead of them.
        if let Some((version, state)) = snapshot
            && let Err(source) = self.store.save_snapshot(&stream, version, state).await
        {
            // The command is committed. To a snapshot store the snapshot is a cache (the next
            // load reads the events after the last one saved): the failure costs load time,
            // and reporting the command as failed would keep its events from cqrs-es's
            // queries and invite a retry that applies it twice. An aggregate store loads the
            // snapshot alone: its next commit could not succeed, so the caller hears of it.
            if self.snapshots_are_a_cache() {
                log::warn!("{stream}: snapshot at version {version} not saved: {source}");
            } else {
                return Err(Error::SnapshotAfterCommit {
                    stream: stream.clone(),
                    version: last,
                    source,
                }
                .into());
            }
        }
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        let stream = stream_name(A::TYPE, aggregate_id)?;
        // Read before the events: a replay that ends short of it lost events to a deletion
        // (versions only grow, so a commit during the replay cannot make it look short).
        let through = self
            .store
            .stream_version(&stream)
            .await
            .map_err(persistence_error)?;
        let events = self
            .store
            .read_stream_batches(&stream, Read::forward())
            .await
            .map_err(persistence_error)?;
        Ok(replay::spawn(
            A::TYPE,
            events,
            Order::Versions { stream, through },
            self.channel_size,
        ))
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        let query = Query::new().prefix(type_prefix(A::TYPE)?);
        let events = self
            .store
            .query_batches(&query)
            .await
            .map_err(persistence_error)?;
        Ok(replay::spawn(
            A::TYPE,
            events,
            Order::Seq,
            self.channel_size,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: &str, sequence: usize) -> SerializedEvent {
        SerializedEvent::new(
            id.into(),
            sequence,
            "T".into(),
            "E".into(),
            "1".into(),
            json!(null),
            json!({}),
        )
    }

    #[test]
    fn a_batch_is_one_aggregates_consecutive_sequences() {
        assert_eq!(
            check_batch("T", &[event("a", 3), event("a", 4)]).unwrap(),
            ("a", 3, 4)
        );
        for bad in [
            vec![],
            vec![event("a", 0)],
            vec![event("a", 3), event("a", 2)],
            vec![event("a", 3), event("a", 5)],
            vec![event("a", 1), event("b", 2)],
        ] {
            assert!(
                matches!(check_batch("T", &bad), Err(Error::BadBatch { .. })),
                "{bad:?}"
            );
        }
        assert!(check_batch("U", &[event("a", 1)]).is_err());
    }

    #[test]
    fn a_snapshot_is_at_the_multiple_of_its_size_that_cqrs_es_applied() {
        let repo = EventfileEventRepository::new(AsyncStore::new(eventfile::MemoryStore::new()));
        assert_eq!(repo.snapshot_version("s", 6, 9).unwrap(), 9);
        let repo = repo.with_snapshot_size(4);
        // Events 6..=9 after version 5: cqrs-es's snapshot holds them up to 8.
        assert_eq!(repo.snapshot_version("s", 6, 9).unwrap(), 8);
        assert_eq!(repo.snapshot_version("s", 5, 8).unwrap(), 8);
        assert!(matches!(
            repo.snapshot_version("s", 5, 7),
            Err(Error::Snapshot { .. })
        ));
    }
}
