//! The backend-neutral API: [`EventStore`], what an application needs of an event store
//! whatever keeps the events, and the append request it takes ([`AppendRequest`], with an
//! optional DCB [`AppendCondition`]).
//!
//! This module owns the contract every backend keeps (written on the trait) and never depends
//! on how a backend stores anything: the file store implements it in `store_impl.rs`.

use serde_json::value::RawValue;

use serde::Serialize;

use crate::checkpoint::Checkpoints;
use crate::error::Result;
use crate::event::{AppendResult, ExpectedVersion, MultiAppendResult, NewEvent, RecordedEvent};
use crate::event::{StreamAppend, validate_key};
use crate::metrics::Metrics;
use crate::query::Read;
use crate::query::{Query, QueryItem};
use crate::subscription::Subscription;
use crate::time::Micros;
use std::time::Duration;

/// Events as a backend reads them: in order, each an event or the error that ended the read.
pub type EventIter = Box<dyn Iterator<Item = Result<RecordedEvent>> + Send>;

/// A condition checked atomically with an append (the Dynamic Consistency Boundary model):
/// the append fails with [`crate::Error::ConditionFailed`], naming the first matching seq, if
/// any event its query selects exists after `after`.
///
/// The query's filters (streams, types, tags, DCB items, metadata, times) select the events; its
/// direction, limit and cursor are ignored, and a `from_seq` or `to_seq` narrows the range
/// further. Deleted events do not match.
///
/// ```
/// use eventfile::{AppendCondition, Query, QueryItem};
/// // Fail if a CourseCreated or StudentSubscribed event tagged course=c1 appeared after seq 41.
/// let c = AppendCondition::new(Query::new().item(QueryItem::new(
///     ["CourseCreated", "StudentSubscribed"],
///     ["course=c1"],
/// )))
/// .after(41);
/// # let _ = c;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub struct AppendCondition {
    /// The events that must not exist.
    pub query: Query,
    /// Only events after this seq count (0: the whole log). Default 0.
    pub after: u64,
}

impl AppendCondition {
    /// Fails the append if any event matching `query` exists (in the whole log, until
    /// [`AppendCondition::after`] narrows it).
    pub fn new(query: Query) -> AppendCondition {
        AppendCondition { query, after: 0 }
    }

    /// A condition over DCB items alone: any of `items` (each: any of its types, all of its
    /// tags).
    pub fn items(items: impl IntoIterator<Item = QueryItem>) -> AppendCondition {
        let query = items.into_iter().fold(Query::new(), Query::item);
        AppendCondition::new(query)
    }

    /// Only events after `seq` count: typically the head seq of the read the decision was
    /// based on.
    pub fn after(mut self, seq: u64) -> AppendCondition {
        self.after = seq;
        self
    }
}

/// Everything one append may carry: one or more streams' events (all-or-nothing), an optional
/// idempotency key, an optional condition.
///
/// ```
/// use eventfile::{AppendCondition, AppendRequest, ExpectedVersion, NewEvent, Query};
/// let r = AppendRequest::new("order-42", ExpectedVersion::NoStream,
///         [NewEvent::new("OrderPlaced", serde_json::json!({}))])
///     .and("customer-7", ExpectedVersion::Any, [NewEvent::new("OrderLinked", serde_json::json!({}))])
///     .key("checkout-9f2")
///     .condition(AppendCondition::new(Query::new().event_type("CartClosed").tag("cart=9f2")));
/// # let _ = r;
/// ```
#[derive(Debug, Clone)]
#[must_use]
#[non_exhaustive]
pub struct AppendRequest {
    /// The streams' parts, in order; a stream appears at most once.
    pub streams: Vec<StreamAppend>,
    /// An idempotency key: an append with a key already in the log returns that append's
    /// result and writes nothing. Default none.
    pub key: Option<String>,
    /// A condition checked atomically with the write. Default none.
    pub condition: Option<AppendCondition>,
}

impl AppendRequest {
    /// An append of `events` to `stream`, checked against `expected`.
    pub fn new(
        stream: impl Into<String>,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> AppendRequest {
        AppendRequest {
            streams: vec![StreamAppend::new(stream, expected, events)],
            key: None,
            condition: None,
        }
    }

    /// An append of several streams' parts, all-or-nothing.
    pub fn multi(streams: impl IntoIterator<Item = StreamAppend>) -> AppendRequest {
        AppendRequest {
            streams: streams.into_iter().collect(),
            key: None,
            condition: None,
        }
    }

    /// Adds another stream's part.
    pub fn and(
        mut self,
        stream: impl Into<String>,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> AppendRequest {
        self.streams
            .push(StreamAppend::new(stream, expected, events));
        self
    }

    /// Sets the idempotency key.
    pub fn key(mut self, key: impl Into<String>) -> AppendRequest {
        self.key = Some(key.into());
        self
    }

    /// Sets the condition.
    pub fn condition(mut self, condition: AppendCondition) -> AppendRequest {
        self.condition = Some(condition);
        self
    }

    /// Checks what can be checked without a store: the key and the condition's query.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(k) = &self.key {
            validate_key(k)?;
        }
        if let Some(c) = &self.condition {
            c.query.validate()?;
        }
        Ok(())
    }
}

/// An event store, whatever keeps the events: the contract every backend keeps, tested by the
/// conformance suite (`crates/eventfile-conformance`). Synchronous and object-safe, so a
/// `Box<dyn EventStore>` chosen from configuration serves an application.
///
/// The contract:
/// - **Positions.** Every event gets a global `seq`, gapless and increasing from the log
///   start (1 until retention removes a prefix), and a per-stream `version` (first event 1,
///   an empty stream is at 0).
/// - **Visibility.** An event becomes visible to readers only once it is durable, and in `seq`
///   order: no reader ever sees `n + 1` without `n`.
/// - **Atomicity.** An append is all-or-nothing, across streams too. On any error nothing is
///   written.
/// - **Typed failures**, matched through [`crate::Error::kind`]: a version conflict
///   ([`crate::ErrorKind::Conflict`]), a failed condition (`ConditionFailed`, naming the first
///   matching seq), an event id already used by another append (`DuplicateId`), a tombstoned
///   stream (`StreamDeleted`), bad input (`InvalidInput`), a position removed by retention
///   (`Expired`).
/// - **Retries.** An append whose events carry ids all already written, as one whole append to
///   the same streams, or whose idempotency key is already in the log, returns the first
///   append's result with `replayed: true` and writes nothing, even when its expectation or
///   condition would now fail.
/// - **Deletion.** Truncated, deleted and tombstoned events are hidden from every read, query,
///   count and listing at once; stream numbering continues after a soft delete.
/// - **Subscriptions.** A subscription delivers every matching visible event above its
///   position exactly once, in seq order, history then live; a slow subscriber never blocks an
///   appender and never loses an event (it reads the log, not a queue).
pub trait EventStore: Send + Sync {
    /// Appends what `request` holds, atomically. See the trait's contract for the outcomes.
    fn append_request(&self, request: AppendRequest) -> Result<MultiAppendResult>;

    /// Appends several independent requests, in order: each is all-or-nothing and judged on
    /// its own, as if passed to [`EventStore::append_request`] after the ones before it (a
    /// conflict, a failed condition or bad input fails that request alone, and the next still
    /// runs). Returns one outcome per request, in order, once every appended request is
    /// durable.
    ///
    /// As with concurrent appends, a request is judged against the earlier ones' events once
    /// they are written, before they are durable: if the sync then fails, every written
    /// request fails with it, while a later request may already have been refused (a
    /// conflict, say) because of events that no reopen will show.
    ///
    /// What it is for: a caller that gathers many unrelated appends (the server, a command
    /// bus) hands them over at once instead of holding one waiting thread per append. The file
    /// store writes them all, then waits for one sync that covers every one; backends without
    /// a shared sync append them one at a time (the default).
    ///
    /// ```
    /// use eventfile::{AppendRequest, Error, EventStore, ExpectedVersion, NewEvent, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path())?;
    /// let placed = || vec![NewEvent::new("OrderPlaced", serde_json::json!({}))];
    /// let out = store.append_requests(vec![
    ///     AppendRequest::new("order-1", ExpectedVersion::NoStream, placed()),
    ///     AppendRequest::new("order-1", ExpectedVersion::NoStream, placed()), // a conflict
    ///     AppendRequest::new("order-2", ExpectedVersion::NoStream, placed()),
    /// ]);
    /// assert_eq!(out[0].as_ref().unwrap().first_seq, 1);
    /// assert!(matches!(out[1], Err(Error::WrongExpectedVersion { actual: 1, .. })));
    /// assert_eq!(out[2].as_ref().unwrap().first_seq, 2);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    fn append_requests(&self, requests: Vec<AppendRequest>) -> Vec<Result<MultiAppendResult>> {
        requests
            .into_iter()
            .map(|r| self.append_request(r))
            .collect()
    }

    /// Appends `events` to `stream` if it is at `expected`.
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult> {
        let r = self.append_request(AppendRequest::new(stream, expected, events))?;
        Ok(single(r))
    }

    /// Appends to several streams atomically.
    fn append_multi(&self, appends: &[StreamAppend]) -> Result<MultiAppendResult> {
        self.append_request(AppendRequest::multi(appends.iter().cloned()))
    }

    /// Reads one stream, in either direction, from a version, with a limit. A tombstoned
    /// stream is [`crate::Error::StreamDeleted`]; a stream with no events reads empty.
    fn read_stream(&self, stream: &str, read: Read) -> Result<EventIter>;

    /// Reads the global log in seq order (or reversed), from a seq, with a limit.
    fn read_all(&self, read: Read) -> Result<EventIter>;

    /// The events a query selects.
    fn query(&self, query: &Query) -> Result<EventIter>;

    /// How many events a query selects (its limit ignored).
    fn count(&self, query: &Query) -> Result<u64>;

    /// The event with this id, if it is in the log and not deleted.
    fn get_event(&self, id: &str) -> Result<Option<RecordedEvent>>;

    /// A stream's current version (0 if it has none): what an `Exact` expectation names.
    fn stream_version(&self, stream: &str) -> Result<u64>;

    /// The seq of the newest visible event (0 for an empty store).
    fn head_seq(&self) -> Result<u64>;

    /// The oldest seq retention kept (1 until it removes something).
    fn log_start(&self) -> Result<u64>;

    /// Streams whose name starts with `prefix` and that hold a live event, in name order,
    /// after `after`, at most `limit`.
    fn streams(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<StreamInfo>>;

    /// Event types with their live event counts, in name order, after `after`, at most
    /// `limit`.
    fn event_types(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>>;

    /// Tags with their live event counts, in order, after `after`, at most `limit`.
    fn tags(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>>;

    /// Every event `query` selects with a seq above `from`: the history first, then each new
    /// event as soon as it is visible, in seq order, with no gap and no duplicate across the
    /// switch. `from` is a position (0: the whole log; a saved
    /// [`Subscription::position`] to resume); one above the head waits for the log to reach
    /// it. The query must read forward; its `to_seq` and limit end the subscription. Events
    /// retention removed before the subscription reached them come as one
    /// [`crate::Error::Gap`]. Closing the store ends its subscriptions.
    fn subscribe(&self, query: &Query, from: u64) -> Result<Subscription>;

    /// Blocks until the event at `seq` is visible (the head is at or past it): `true`, or
    /// `false` if `timeout` passed first or the store closed.
    fn wait_for(&self, seq: u64, timeout: Duration) -> Result<bool>;

    /// Saves a snapshot of `stream`'s state as of `version` (a version the stream has).
    fn save_snapshot(&self, stream: &str, version: u64, state: &RawValue) -> Result<Snapshot>;

    /// The newest usable snapshot of `stream`, if any.
    fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>>;

    /// Hides `stream`'s events below version `before`; numbering continues.
    fn truncate_stream(&self, stream: &str, before: u64) -> Result<DeleteResult>;

    /// Hides all of `stream`'s events (if it is at `expected`); later appends continue its
    /// numbering.
    fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult>;

    /// Deletes `stream` for good (if it is at `expected`): later appends and reads fail with
    /// [`crate::Error::StreamDeleted`].
    fn tombstone_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult>;

    /// Writes `events` as another store recorded them, for moving a log between stores
    /// (`eventfile export | eventfile import`): ids, streams, versions, types, times, data,
    /// metadata and tags kept; each event takes the next seq. All-or-nothing, durable on
    /// return like an append.
    ///
    /// An event whose id is already in the store at the same stream and version is skipped
    /// (imported before), so importing the same events twice writes nothing the second time;
    /// the import returns once the skipped events are durable too. On the file store, an
    /// event at a version of its stream that retention or compaction has since removed from
    /// the store is skipped too: its event cannot be found to compare, and is taken as
    /// imported before. Every other event must
    /// follow its stream's version (the store's, then the import's own), carry a time no
    /// earlier than the store's newest event (and not from the far future), and be an event an
    /// append would accept, its data compact as [`RecordedEvent::from_json`] makes it. Anything
    /// else is [`crate::Error::InvalidInput`] naming the event by its index (from 0); a
    /// tombstoned stream is [`crate::Error::StreamDeleted`], and a batch over the store's
    /// limits fails as an append would. The checks are `eventfile::backend::check_import` and
    /// `import_step`. `$`-streams are refused: deletions are not imported.
    /// Idempotency keys are not carried over, so an append retried across a migration is
    /// recognised by its event ids only.
    fn import(&self, events: &[RecordedEvent]) -> Result<ImportResult>;

    /// Where the store's consumers (projections, subscribers) keep their positions, beside the
    /// events: files in the file store's `checkpoints/` directory, a table in a database.
    /// `eventfile projections` lists them. Checkpoints are the consumers' state, not the log's:
    /// a read-only handle may save them too.
    ///
    /// ```
    /// use eventfile::{EventStore, MemoryStore};
    /// let store = MemoryStore::new();
    /// store.checkpoints().save("order-summary", 0)?;
    /// assert_eq!(store.checkpoints().load("order-summary")?, Some(0));
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    fn checkpoints(&self) -> &dyn Checkpoints;

    /// What this handle has done since it was opened: appends, events, bytes, syncs and their
    /// time (`Metrics::default()` from a backend that counts nothing). `eventfile stats` and the
    /// server's `/metrics` show them. Required, so that a wrapper cannot drop them unnoticed.
    fn metrics(&self) -> Metrics;
}

/// Forwards every method of [`EventStore`] to the store a pointer holds, so that `&Store`,
/// `Arc<dyn EventStore>` and `Box<dyn EventStore>` serve wherever an `EventStore` is asked for
/// (an aggregate repository, a projection runner).
macro_rules! forward_event_store {
    ($($ptr:ty),*) => {$(
        impl<T: EventStore + ?Sized> EventStore for $ptr {
            fn append_request(&self, request: AppendRequest) -> Result<MultiAppendResult> {
                (**self).append_request(request)
            }
            fn append_requests(
                &self,
                requests: Vec<AppendRequest>,
            ) -> Vec<Result<MultiAppendResult>> {
                (**self).append_requests(requests)
            }
            fn append(
                &self,
                stream: &str,
                expected: ExpectedVersion,
                events: Vec<NewEvent>,
            ) -> Result<AppendResult> {
                (**self).append(stream, expected, events)
            }
            fn append_multi(&self, appends: &[StreamAppend]) -> Result<MultiAppendResult> {
                (**self).append_multi(appends)
            }
            fn read_stream(&self, stream: &str, read: Read) -> Result<EventIter> {
                (**self).read_stream(stream, read)
            }
            fn read_all(&self, read: Read) -> Result<EventIter> {
                (**self).read_all(read)
            }
            fn query(&self, query: &Query) -> Result<EventIter> {
                (**self).query(query)
            }
            fn count(&self, query: &Query) -> Result<u64> {
                (**self).count(query)
            }
            fn get_event(&self, id: &str) -> Result<Option<RecordedEvent>> {
                (**self).get_event(id)
            }
            fn stream_version(&self, stream: &str) -> Result<u64> {
                (**self).stream_version(stream)
            }
            fn head_seq(&self) -> Result<u64> {
                (**self).head_seq()
            }
            fn log_start(&self) -> Result<u64> {
                (**self).log_start()
            }
            fn streams(
                &self,
                prefix: &str,
                after: Option<&str>,
                limit: usize,
            ) -> Result<Vec<StreamInfo>> {
                (**self).streams(prefix, after, limit)
            }
            fn event_types(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
                (**self).event_types(after, limit)
            }
            fn tags(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
                (**self).tags(after, limit)
            }
            fn subscribe(&self, query: &Query, from: u64) -> Result<Subscription> {
                (**self).subscribe(query, from)
            }
            fn wait_for(&self, seq: u64, timeout: Duration) -> Result<bool> {
                (**self).wait_for(seq, timeout)
            }
            fn save_snapshot(
                &self,
                stream: &str,
                version: u64,
                state: &RawValue,
            ) -> Result<Snapshot> {
                (**self).save_snapshot(stream, version, state)
            }
            fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
                (**self).load_snapshot(stream)
            }
            fn truncate_stream(&self, stream: &str, before: u64) -> Result<DeleteResult> {
                (**self).truncate_stream(stream, before)
            }
            fn delete_stream(
                &self,
                stream: &str,
                expected: ExpectedVersion,
            ) -> Result<DeleteResult> {
                (**self).delete_stream(stream, expected)
            }
            fn tombstone_stream(
                &self,
                stream: &str,
                expected: ExpectedVersion,
            ) -> Result<DeleteResult> {
                (**self).tombstone_stream(stream, expected)
            }
            fn import(&self, events: &[RecordedEvent]) -> Result<ImportResult> {
                (**self).import(events)
            }
            fn checkpoints(&self) -> &dyn Checkpoints {
                (**self).checkpoints()
            }
            fn metrics(&self) -> Metrics {
                (**self).metrics()
            }
        }
    )*};
}

forward_event_store!(&T, std::sync::Arc<T>, Box<T>);

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ImportResult {
    /// Events written.
    pub written: u64,
    /// Events skipped: already in the store.
    pub skipped: u64,
    /// The store's head seq after the import.
    pub head: u64,
}

/// The one stream's result of a single-stream append.
pub(crate) fn single(r: MultiAppendResult) -> AppendResult {
    let mut a = r
        .streams
        .into_iter()
        .next()
        .map(|(_, a)| a)
        .unwrap_or_default();
    a.replayed = r.replayed;
    a
}

/// A term and how many events carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermCount {
    /// The event type or tag.
    pub name: String,
    /// Events carrying it.
    pub count: u64,
}

/// A stream and its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream name.
    pub stream: String,
    /// Its current version: the version of its last event, which the next append follows.
    /// Deletion does not lower it, so after a truncation it is more than the number of events
    /// left.
    pub version: u64,
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

/// A stream's state at a version.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The stream.
    pub stream: String,
    /// The version of the stream's last event the state includes.
    pub version: u64,
    /// When the snapshot was saved (microseconds since the Unix epoch).
    pub time: Micros,
    /// The state, verbatim JSON.
    pub state: Box<RawValue>,
}

impl Snapshot {
    /// Decodes the state into any deserialisable type.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_str(self.state.get())?)
    }

    /// The snapshot as one JSON object (`stream`, `version`, `time`, `state`): the CLI's output.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            stream: &'a str,
            version: u64,
            time: String,
            state: &'a RawValue,
        }
        serde_json::to_string(&Out {
            stream: &self.stream,
            version: self.version,
            time: crate::time::format_rfc3339(self.time),
            state: &self.state,
        })
        .expect("strings and JSON serialise")
    }
}
