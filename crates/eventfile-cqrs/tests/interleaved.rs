//! A commit by another process landing between two of the repository's calls to the store.
//!
//! The store here runs a one-shot hook right after a chosen call returns, which appends what a
//! concurrent first commit of the aggregate would. The repository must load what it sees as
//! a new aggregate (whose own commit then conflicts), never report events as missing.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cqrs_es::EventStore as _;
use eventfile::{
    AppendRequest, AppendResult, AsyncStore, Checkpoints, DeleteResult, EventIter, EventStore,
    ExpectedVersion, ImportResult, MemoryStore, Metrics, MultiAppendResult, NewEvent, Query, Read,
    RecordedEvent, Snapshot, StreamAppend, StreamInfo, Subscription, TermCount,
};
use serde_json::value::RawValue;

use support::bank_account::BankAccount;
use support::cases::{commit, opened, repo};

type Hook = Box<dyn FnOnce(&MemoryStore) + Send>;

/// A memory store that runs `hook` once, right after the first call named `after` returns.
struct Interleaved {
    inner: MemoryStore,
    after: &'static str,
    hook: Mutex<Option<Hook>>,
}

impl Interleaved {
    fn fire(&self, call: &str) {
        if call == self.after
            && let Some(hook) = self.hook.lock().unwrap().take()
        {
            hook(&self.inner);
        }
    }
}

impl EventStore for Interleaved {
    fn append_request(&self, request: AppendRequest) -> eventfile::Result<MultiAppendResult> {
        self.inner.append_request(request)
    }
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> eventfile::Result<AppendResult> {
        self.inner.append(stream, expected, events)
    }
    fn append_multi(&self, appends: &[StreamAppend]) -> eventfile::Result<MultiAppendResult> {
        self.inner.append_multi(appends)
    }
    fn read_stream(&self, stream: &str, read: Read) -> eventfile::Result<EventIter> {
        // Read whole before the hook runs, as a read's snapshot would be.
        let events: Vec<_> = self.inner.read_stream(stream, read)?.collect();
        self.fire("read_stream");
        Ok(Box::new(events.into_iter()))
    }
    fn read_all(&self, read: Read) -> eventfile::Result<EventIter> {
        self.inner.read_all(read)
    }
    fn query(&self, query: &Query) -> eventfile::Result<EventIter> {
        self.inner.query(query)
    }
    fn count(&self, query: &Query) -> eventfile::Result<u64> {
        self.inner.count(query)
    }
    fn get_event(&self, id: &str) -> eventfile::Result<Option<RecordedEvent>> {
        self.inner.get_event(id)
    }
    fn stream_version(&self, stream: &str) -> eventfile::Result<u64> {
        self.inner.stream_version(stream)
    }
    fn head_seq(&self) -> eventfile::Result<u64> {
        self.inner.head_seq()
    }
    fn log_start(&self) -> eventfile::Result<u64> {
        self.inner.log_start()
    }
    fn streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> eventfile::Result<Vec<StreamInfo>> {
        self.inner.streams(prefix, after, limit)
    }
    fn event_types(&self, after: Option<&str>, limit: usize) -> eventfile::Result<Vec<TermCount>> {
        self.inner.event_types(after, limit)
    }
    fn tags(&self, after: Option<&str>, limit: usize) -> eventfile::Result<Vec<TermCount>> {
        self.inner.tags(after, limit)
    }
    fn subscribe(&self, query: &Query, from: u64) -> eventfile::Result<Subscription> {
        self.inner.subscribe(query, from)
    }
    fn wait_for(&self, seq: u64, timeout: Duration) -> eventfile::Result<bool> {
        self.inner.wait_for(seq, timeout)
    }
    fn save_snapshot(
        &self,
        stream: &str,
        version: u64,
        state: &RawValue,
    ) -> eventfile::Result<Snapshot> {
        self.inner.save_snapshot(stream, version, state)
    }
    fn load_snapshot(&self, stream: &str) -> eventfile::Result<Option<Snapshot>> {
        let found = self.inner.load_snapshot(stream)?;
        self.fire("load_snapshot");
        Ok(found)
    }
    fn truncate_stream(&self, stream: &str, before: u64) -> eventfile::Result<DeleteResult> {
        self.inner.truncate_stream(stream, before)
    }
    fn delete_stream(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> eventfile::Result<DeleteResult> {
        self.inner.delete_stream(stream, expected)
    }
    fn tombstone_stream(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> eventfile::Result<DeleteResult> {
        self.inner.tombstone_stream(stream, expected)
    }
    fn import(&self, events: &[RecordedEvent]) -> eventfile::Result<ImportResult> {
        self.inner.import(events)
    }
    fn checkpoints(&self) -> &dyn Checkpoints {
        self.inner.checkpoints()
    }
    fn metrics(&self) -> Metrics {
        self.inner.metrics()
    }
}

/// The events (and snapshot, for an aggregate store) that the adapter's first commit of
/// account `a` writes, as another process would append them.
async fn first_commit_of_a(aggregate_store: bool) -> (Vec<NewEvent>, Option<Snapshot>) {
    let elsewhere = AsyncStore::new(MemoryStore::new());
    if aggregate_store {
        commit(
            &repo(&elsewhere).aggregate_store::<BankAccount>(),
            "a",
            vec![opened("a")],
        )
        .await;
    } else {
        commit(
            &repo(&elsewhere).event_store::<BankAccount>(),
            "a",
            vec![opened("a")],
        )
        .await;
    }
    let events = elsewhere
        .read_stream("Account-a", Read::forward())
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            NewEvent::from_json_str(e.event_type, e.data.get())
                .unwrap()
                .with_meta(e.meta)
        })
        .collect();
    let snapshot = elsewhere.load_snapshot("Account-a").await.unwrap();
    (events, snapshot)
}

fn interleaved(
    after: &'static str,
    events: Vec<NewEvent>,
    snapshot: Option<Snapshot>,
) -> AsyncStore {
    let hook: Hook = Box::new(move |store: &MemoryStore| {
        store
            .append("Account-a", ExpectedVersion::NoStream, events)
            .unwrap();
        if let Some(s) = snapshot {
            store.save_snapshot(&s.stream, s.version, &s.state).unwrap();
        }
    });
    AsyncStore::from_arc(Arc::new(Interleaved {
        inner: MemoryStore::new(),
        after,
        hook: Mutex::new(Some(hook)),
    }))
}

/// Before the fix, the event store read the stream empty, then read its version as 1 and
/// reported event 1 as missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_commit_between_the_read_and_the_version_is_not_missing_events() {
    let (events, _) = first_commit_of_a(false).await;
    let store = interleaved("read_stream", events, None);
    let accounts = repo(&store).event_store::<BankAccount>();
    let loaded = accounts.load_aggregate("a").await;
    match loaded {
        Ok(context) => assert!(
            context.current_sequence <= 1,
            "{}",
            context.current_sequence
        ),
        Err(e) => panic!("a concurrent first commit read as missing events: {e}"),
    }
    assert_eq!(store.stream_version("Account-a").await.unwrap(), 1);
}

/// Before the fix, the aggregate store found no snapshot, then read the version as 1 and
/// refused the aggregate as one whose snapshot is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_commit_between_the_snapshot_and_the_version_is_not_a_missing_snapshot() {
    let (events, snapshot) = first_commit_of_a(true).await;
    assert!(snapshot.is_some(), "the aggregate store saved no snapshot");
    let store = interleaved("load_snapshot", events, snapshot);
    let accounts = repo(&store).aggregate_store::<BankAccount>();
    if let Err(e) = accounts.load_aggregate("a").await {
        panic!("a concurrent first commit read as a missing snapshot: {e}");
    }
    // The commit made on what was loaded as new conflicts; nothing is lost or doubled.
    assert_eq!(store.stream_version("Account-a").await.unwrap(), 1);
}
