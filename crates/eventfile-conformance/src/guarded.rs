//! [`Guarded`]: a store together with what must outlive it, as one `Box<dyn EventStore>`.

use eventfile::{
    AppendRequest, AppendResult, DeleteResult, EventIter, EventStore, ExpectedVersion,
    ImportResult, MultiAppendResult, NewEvent, Query, Read, RecordedEvent, Result, Snapshot,
    StreamAppend, StreamInfo, TermCount,
};
use serde_json::value::RawValue;

/// A store and a guard it needs (a temporary directory, a test database) that is dropped after
/// the store: what a factory returns when a fresh store lives in something fresh.
///
/// Every trait method is the store's own, the provided ones (`append`, `append_multi`)
/// included, so a backend that overrides them is tested as it is.
///
/// ```
/// use eventfile::{EventStore, MemoryStore};
/// use eventfile_conformance::Guarded;
/// // With the file store: `Guarded::new(Store::open(dir.path())?, dir)` for a `TempDir` `dir`.
/// let store: Box<dyn EventStore> = Box::new(Guarded::new(MemoryStore::new(), ()));
/// assert_eq!(store.head_seq()?, 0);
/// # Ok::<(), eventfile::Error>(())
/// ```
pub struct Guarded<S, G> {
    // Field order is drop order: the store goes first.
    store: S,
    _guard: G,
}

impl<S: EventStore, G: Send + Sync> Guarded<S, G> {
    /// `store`, keeping `guard` alive until the store is dropped.
    pub fn new(store: S, guard: G) -> Guarded<S, G> {
        Guarded {
            store,
            _guard: guard,
        }
    }
}

impl<S: EventStore, G: Send + Sync> EventStore for Guarded<S, G> {
    fn append_request(&self, request: AppendRequest) -> Result<MultiAppendResult> {
        self.store.append_request(request)
    }

    fn append_requests(&self, requests: Vec<AppendRequest>) -> Vec<Result<MultiAppendResult>> {
        self.store.append_requests(requests)
    }

    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult> {
        self.store.append(stream, expected, events)
    }

    fn append_multi(&self, appends: &[StreamAppend]) -> Result<MultiAppendResult> {
        self.store.append_multi(appends)
    }

    fn read_stream(&self, stream: &str, read: Read) -> Result<EventIter> {
        self.store.read_stream(stream, read)
    }

    fn read_all(&self, read: Read) -> Result<EventIter> {
        self.store.read_all(read)
    }

    fn query(&self, query: &Query) -> Result<EventIter> {
        self.store.query(query)
    }

    fn count(&self, query: &Query) -> Result<u64> {
        self.store.count(query)
    }

    fn get_event(&self, id: &str) -> Result<Option<RecordedEvent>> {
        self.store.get_event(id)
    }

    fn stream_version(&self, stream: &str) -> Result<u64> {
        self.store.stream_version(stream)
    }

    fn head_seq(&self) -> Result<u64> {
        self.store.head_seq()
    }

    fn log_start(&self) -> Result<u64> {
        self.store.log_start()
    }

    fn subscribe(&self, query: &Query, from: u64) -> Result<eventfile::Subscription> {
        self.store.subscribe(query, from)
    }

    fn wait_for(&self, seq: u64, timeout: std::time::Duration) -> Result<bool> {
        self.store.wait_for(seq, timeout)
    }

    fn streams(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<StreamInfo>> {
        self.store.streams(prefix, after, limit)
    }

    fn event_types(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        self.store.event_types(after, limit)
    }

    fn tags(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        self.store.tags(after, limit)
    }

    fn save_snapshot(&self, stream: &str, version: u64, state: &RawValue) -> Result<Snapshot> {
        self.store.save_snapshot(stream, version, state)
    }

    fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        self.store.load_snapshot(stream)
    }

    fn truncate_stream(&self, stream: &str, before: u64) -> Result<DeleteResult> {
        self.store.truncate_stream(stream, before)
    }

    fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult> {
        self.store.delete_stream(stream, expected)
    }

    fn tombstone_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult> {
        self.store.tombstone_stream(stream, expected)
    }

    fn import(&self, events: &[RecordedEvent]) -> Result<ImportResult> {
        self.store.import(events)
    }

    fn checkpoints(&self) -> &dyn eventfile::Checkpoints {
        self.store.checkpoints()
    }

    fn metrics(&self) -> eventfile::Metrics {
        self.store.metrics()
    }
}
