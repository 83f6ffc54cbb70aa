//! The file store as an [`EventStore`]: each trait method is the store's own method of the same
//! name, boxed or wrapped in `Ok` where the trait is more general, or its fallible variant
//! (`try_`) where the store's own method has no error to give. Nothing else lives here.

use serde_json::value::RawValue;

use crate::api::{
    AppendRequest, DeleteResult, EventIter, EventStore, ImportResult, Snapshot, StreamInfo,
    TermCount,
};
use crate::error::Result;
use crate::event::{ExpectedVersion, MultiAppendResult, RecordedEvent};
use crate::query::Query;
use crate::query::Read;
use crate::store::Store;
use crate::subscription::Subscription;

impl EventStore for Store {
    fn checkpoints(&self) -> &dyn crate::checkpoint::Checkpoints {
        &*self.inner
    }

    fn metrics(&self) -> crate::metrics::Metrics {
        self.inner.metrics.snapshot()
    }

    fn import(&self, events: &[RecordedEvent]) -> Result<ImportResult> {
        Store::import(self, events)
    }

    fn append_request(&self, request: AppendRequest) -> Result<MultiAppendResult> {
        Store::append_request(self, request)
    }

    fn append_requests(&self, requests: Vec<AppendRequest>) -> Vec<Result<MultiAppendResult>> {
        Store::append_requests(self, requests)
    }

    fn read_stream(&self, stream: &str, read: Read) -> Result<EventIter> {
        Ok(Box::new(Store::read_stream(self, stream, read)?))
    }

    fn read_all(&self, read: Read) -> Result<EventIter> {
        Ok(Box::new(Store::read_all(self, read)?))
    }

    fn query(&self, query: &Query) -> Result<EventIter> {
        Ok(Box::new(Store::query(self, query)?))
    }

    fn count(&self, query: &Query) -> Result<u64> {
        Store::count(self, query)
    }

    fn get_event(&self, id: &str) -> Result<Option<RecordedEvent>> {
        Store::get_event(self, id)
    }

    fn stream_version(&self, stream: &str) -> Result<u64> {
        Store::try_stream_version(self, stream)
    }

    fn head_seq(&self) -> Result<u64> {
        Ok(Store::head_seq(self))
    }

    fn log_start(&self) -> Result<u64> {
        Ok(Store::log_start(self))
    }

    fn subscribe(&self, query: &Query, from: u64) -> Result<Subscription> {
        Store::subscribe(self, query, from)
    }

    fn wait_for(&self, seq: u64, timeout: std::time::Duration) -> Result<bool> {
        Store::wait_for(self, seq, timeout)
    }

    fn streams(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<StreamInfo>> {
        Store::try_streams(self, prefix, after, limit)
    }

    fn event_types(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        Store::event_types(self, after, limit)
    }

    fn tags(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        Store::tags(self, after, limit)
    }

    fn save_snapshot(&self, stream: &str, version: u64, state: &RawValue) -> Result<Snapshot> {
        Store::save_snapshot(self, stream, version, state)
    }

    fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        Store::load_snapshot(self, stream)
    }

    fn truncate_stream(&self, stream: &str, before: u64) -> Result<DeleteResult> {
        Store::truncate_stream(self, stream, before)
    }

    fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult> {
        Store::delete_stream(self, stream, expected)
    }

    fn tombstone_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult> {
        Store::tombstone_stream(self, stream, expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewEvent;

    /// The file store serves as a `Box<dyn EventStore>`, with the same answers.
    #[test]
    fn the_file_store_is_an_event_store() {
        let dir = tempfile::tempdir().unwrap();
        let store: Box<dyn EventStore> = Box::new(Store::open(dir.path()).unwrap());
        let r = store
            .append(
                "s",
                ExpectedVersion::NoStream,
                vec![NewEvent::new("T", serde_json::json!({"n": 1}))],
            )
            .unwrap();
        assert_eq!((r.first_seq, r.version), (1, 1));
        assert_eq!(store.head_seq().unwrap(), 1);
        let e: Vec<_> = store
            .read_stream("s", Read::forward())
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(e[0].data.get(), r#"{"n":1}"#);
        assert!(
            store
                .append(
                    "s",
                    ExpectedVersion::NoStream,
                    vec![NewEvent::new("T", serde_json::json!({}))]
                )
                .unwrap_err()
                .is_conflict()
        );
    }
}
