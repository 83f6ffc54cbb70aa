//! The async facade (`AsyncStore`, feature `async`) over the file store: every call gives what
//! the synchronous store gives, concurrent appenders get gapless seqs, failures stay typed, and
//! batched reads and dropped futures behave as documented.
#![cfg(feature = "async")]

use std::future::Future;
use std::pin::pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use eventfile::{
    AppendRequest, AsyncStore, DeleteResult, Error, ErrorKind, EventIter, EventStore,
    ExpectedVersion, MultiAppendResult, NewEvent, Query, QueryItem, Read, RecordedEvent, Snapshot,
    Store, StreamAppend, StreamInfo, TermCount,
};
use serde_json::json;
use serde_json::value::RawValue;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .expect("runtime")
}

fn collect(iter: EventIter) -> Vec<RecordedEvent> {
    iter.collect::<Result<_, _>>().expect("events")
}

fn event(t: &str, n: u64) -> NewEvent {
    NewEvent::new(t, json!({ "n": n }))
        .with_tag(format!("parity={}", n % 2))
        .with_meta_entry("actor", "test")
}

/// A store with three streams, several types and tags.
async fn populate(store: &AsyncStore) {
    for i in 0..30u64 {
        let stream = format!("order-{}", i % 3);
        let t = ["Placed", "Paid", "Shipped"][(i % 3) as usize];
        store
            .append(&stream, ExpectedVersion::Any, [event(t, i)])
            .await
            .expect("append");
    }
}

#[test]
fn every_call_gives_what_the_synchronous_store_gives() {
    let dir = tempfile::tempdir().unwrap();
    let sync = Arc::new(Store::open(dir.path()).unwrap());
    let store = AsyncStore::from_arc(sync.clone());
    runtime().block_on(async {
        // Appends: what they return is what the log then holds.
        let one = store
            .append(
                "cart-1",
                ExpectedVersion::NoStream,
                [event("Opened", 0), event("Added", 1)],
            )
            .await
            .unwrap();
        assert_eq!((one.first_seq, one.last_seq, one.version), (1, 2, 2));
        let multi: MultiAppendResult = store
            .append_multi([
                StreamAppend::new("cart-1", ExpectedVersion::Exact(2), [event("Added", 2)]),
                StreamAppend::new("cart-2", ExpectedVersion::NoStream, [event("Opened", 3)]),
            ])
            .await
            .unwrap();
        assert_eq!((multi.first_seq, multi.last_seq), (3, 4));
        let keyed = AppendRequest::new("cart-2", ExpectedVersion::Exact(1), [event("Added", 4)])
            .key("checkout-1");
        let first = store.append_request(keyed.clone()).await.unwrap();
        let again = store.append_request(keyed).await.unwrap();
        assert!(!first.replayed && again.replayed);
        assert_eq!(
            (again.first_seq, again.last_seq),
            (first.first_seq, first.last_seq)
        );
        populate(&store).await;

        // Reads, in both directions and with limits, equal the synchronous reads.
        for read in [
            Read::forward(),
            Read::backward(),
            Read::forward().from(3).limit(4),
            Read::backward().from(20).limit(7),
        ] {
            assert_eq!(
                store.read_all(read).await.unwrap(),
                collect(EventStore::read_all(&*sync, read).unwrap()),
                "{read:?}"
            );
            assert_eq!(
                store.read_stream("order-1", read).await.unwrap(),
                collect(EventStore::read_stream(&*sync, "order-1", read).unwrap()),
                "{read:?}"
            );
        }
        let all = store.read_all(Read::forward()).await.unwrap();
        assert_eq!(all.len(), 35);
        assert!(all.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1));

        // Queries and counts.
        let queries = [
            Query::new().event_type("Paid"),
            Query::new().tag("parity=1").stream("order-2"),
            Query::new()
                .item(QueryItem::new(["Placed", "Shipped"], ["parity=0"]))
                .limit(3),
            Query::new().from_seq(10).backward(),
        ];
        for q in &queries {
            let got = store.query(q).await.unwrap();
            assert_eq!(got, collect(EventStore::query(&*sync, q).unwrap()), "{q:?}");
            assert!(!got.is_empty(), "{q:?} selects something");
            assert_eq!(
                store.count(q).await.unwrap(),
                EventStore::count(&*sync, q).unwrap()
            );
        }

        // Single values.
        let e = &all[7];
        assert_eq!(store.get_event(&e.id).await.unwrap().as_ref(), Some(e));
        assert_eq!(store.get_event("no-such-id").await.unwrap(), None);
        assert_eq!(store.stream_version("cart-1").await.unwrap(), 3);
        assert_eq!(store.stream_version("nothing").await.unwrap(), 0);
        assert_eq!(store.head_seq().await.unwrap(), 35);
        assert_eq!(store.log_start().await.unwrap(), 1);

        // The catalog.
        let streams: Vec<StreamInfo> = store.streams("order-", None, 10).await.unwrap();
        assert_eq!(
            streams,
            EventStore::streams(&*sync, "order-", None, 10).unwrap()
        );
        assert_eq!(streams.len(), 3);
        assert_eq!(
            store.streams("", Some("cart-2"), 2).await.unwrap(),
            EventStore::streams(&*sync, "", Some("cart-2"), 2).unwrap()
        );
        let types: Vec<TermCount> = store.event_types(None, 100).await.unwrap();
        assert_eq!(types, EventStore::event_types(&*sync, None, 100).unwrap());
        assert_eq!(
            store.event_types(Some("Opened"), 1).await.unwrap(),
            EventStore::event_types(&*sync, Some("Opened"), 1).unwrap()
        );
        assert_eq!(
            store.tags(None, 100).await.unwrap(),
            EventStore::tags(&*sync, None, 100).unwrap()
        );

        // Snapshots.
        assert!(store.load_snapshot("order-0").await.unwrap().is_none());
        let state = serde_json::value::to_raw_value(&json!({ "total": 6 })).unwrap();
        let saved: Snapshot = store.save_snapshot("order-0", 4, state).await.unwrap();
        let loaded = store.load_snapshot("order-0").await.unwrap().unwrap();
        let loaded_sync = EventStore::load_snapshot(&*sync, "order-0")
            .unwrap()
            .unwrap();
        for s in [&loaded, &loaded_sync] {
            assert_eq!((s.stream.as_str(), s.version), ("order-0", 4));
            assert_eq!(s.state.get(), saved.state.get());
        }
        assert_eq!(loaded.decode::<serde_json::Value>().unwrap()["total"], 6);

        // Deletion: hidden at once, for the synchronous store too.
        let t: DeleteResult = store.truncate_stream("order-0", 5).await.unwrap();
        assert_eq!((t.version, t.deleted_before, t.tombstone), (10, 5, false));
        let left = store.read_stream("order-0", Read::forward()).await.unwrap();
        assert_eq!(left.first().map(|e| e.version), Some(5));
        assert_eq!(
            left,
            collect(EventStore::read_stream(&*sync, "order-0", Read::forward()).unwrap())
        );
        let d = store
            .delete_stream("order-1", ExpectedVersion::Exact(10))
            .await
            .unwrap();
        assert_eq!((d.version, d.deleted_before), (10, 11));
        assert!(
            store
                .read_stream("order-1", Read::forward())
                .await
                .unwrap()
                .is_empty()
        );
        let tomb = store
            .tombstone_stream("order-2", ExpectedVersion::Any)
            .await
            .unwrap();
        assert!(tomb.tombstone);
        let err = store
            .read_stream("order-2", Read::forward())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StreamDeleted, "{err}");
        assert_eq!(
            store.read_all(Read::forward()).await.unwrap(),
            collect(EventStore::read_all(&*sync, Read::forward()).unwrap())
        );
        assert_eq!(
            store.count(&Query::new()).await.unwrap(),
            EventStore::count(&*sync, &Query::new()).unwrap()
        );

        // Import: a log into another store, as recorded; a second import writes nothing.
        let source_dir = tempfile::tempdir().unwrap();
        let source = AsyncStore::from_arc(Arc::new(Store::open(source_dir.path()).unwrap()));
        source
            .append(
                "a",
                ExpectedVersion::NoStream,
                [event("X", 1), event("Y", 2)],
            )
            .await
            .unwrap();
        source
            .append("b", ExpectedVersion::NoStream, [event("X", 3)])
            .await
            .unwrap();
        let log = source.read_all(Read::forward()).await.unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let other = AsyncStore::from_arc(Arc::new(Store::open(other_dir.path()).unwrap()));
        let r = other.import(log.clone()).await.unwrap();
        assert_eq!((r.written, r.skipped), (log.len() as u64, 0));
        let again = other.import(log.clone()).await.unwrap();
        assert_eq!((again.written, again.skipped), (0, log.len() as u64));
        let copied = other.read_all(Read::forward()).await.unwrap();
        assert_eq!(
            copied
                .iter()
                .map(RecordedEvent::to_json)
                .collect::<Vec<_>>(),
            log.iter().map(RecordedEvent::to_json).collect::<Vec<_>>()
        );
    });
}

#[test]
fn concurrent_appenders_get_distinct_gapless_seqs() {
    const TASKS: u64 = 16;
    const EACH: u64 = 25;
    let dir = tempfile::tempdir().unwrap();
    let store = AsyncStore::new(Store::open(dir.path()).unwrap());
    let rt = runtime();
    let mut seqs: Vec<u64> = rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut seqs = Vec::new();
                    for i in 0..EACH {
                        // Its own stream at an exact version, and one stream all tasks share.
                        let r = store
                            .append(
                                &format!("task-{t}"),
                                ExpectedVersion::Exact(i),
                                [event("Own", i)],
                            )
                            .await
                            .unwrap();
                        assert_eq!(r.version, i + 1);
                        seqs.push(r.first_seq);
                        let r = store
                            .append("shared", ExpectedVersion::Any, [event("Shared", i)])
                            .await
                            .unwrap();
                        seqs.push(r.first_seq);
                    }
                    seqs
                })
            })
            .collect();
        let mut seqs = Vec::new();
        for task in tasks {
            seqs.extend(task.await.expect("appender task"));
        }
        seqs
    });
    seqs.sort_unstable();
    let expected: Vec<u64> = (1..=TASKS * EACH * 2).collect();
    assert_eq!(seqs, expected, "distinct and gapless");

    let all = rt.block_on(store.read_all(Read::forward())).unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), expected);
    let shared = rt
        .block_on(store.read_stream("shared", Read::forward()))
        .unwrap();
    let versions: Vec<u64> = shared.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=TASKS * EACH).collect::<Vec<_>>());
}

#[test]
fn a_wrong_expected_version_is_a_typed_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = AsyncStore::new(Store::open(dir.path()).unwrap());
    runtime().block_on(async {
        store
            .append(
                "s",
                ExpectedVersion::NoStream,
                [event("A", 1), event("A", 2)],
            )
            .await
            .unwrap();
        let err = store
            .append("s", ExpectedVersion::Exact(1), [event("A", 3)])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(
            matches!(&err, Error::WrongExpectedVersion { stream, actual: 2, .. } if stream == "s"),
            "{err}"
        );
        // Nothing was written.
        assert_eq!(store.head_seq().await.unwrap(), 2);
        let err = store
            .append("", ExpectedVersion::Any, [event("A", 3)])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    });
}

#[test]
fn batched_reads_equal_the_collected_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = AsyncStore::new(Store::open(dir.path()).unwrap());
    runtime().block_on(async {
        populate(&store).await;
        let query = Query::new().tag("parity=0");
        for read in [Read::forward(), Read::backward().limit(11)] {
            for max in [0, 1, 3, 7, 1000] {
                let mut batches = store.read_all_batches(read).await.unwrap();
                let got = drain(&mut batches, max).await;
                assert_eq!(got, store.read_all(read).await.unwrap(), "{read:?} {max}");
                let mut batches = store.read_stream_batches("order-1", read).await.unwrap();
                let got = drain(&mut batches, max).await;
                assert_eq!(got, store.read_stream("order-1", read).await.unwrap());
            }
        }
        let mut batches = store.query_batches(&query).await.unwrap();
        let got = drain(&mut batches, 4).await;
        assert_eq!(got.len(), 15);
        assert_eq!(got, store.query(&query).await.unwrap());
        // Opening a read fails as the synchronous one does.
        store
            .tombstone_stream("order-0", ExpectedVersion::Any)
            .await
            .unwrap();
        let err = store
            .read_stream_batches("order-0", Read::forward())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StreamDeleted);
    });
}

/// Pulls batches of at most `max` until an empty one, checking each batch's size.
async fn drain(batches: &mut eventfile::AsyncEvents, max: usize) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    loop {
        let batch = batches.next_batch(max).await.unwrap();
        assert!(batch.len() <= max.max(1));
        if batch.is_empty() {
            // Over is over.
            assert!(batches.next_batch(max).await.unwrap().is_empty());
            return all;
        }
        all.extend(batch);
    }
}

/// The file store with a fault: what the facade must turn into typed outcomes.
struct Faulty {
    inner: Store,
    fault: Fault,
}

enum Fault {
    /// `head_seq` panics.
    PanicOnHead,
    /// `read_all` yields this many events, then a corruption error.
    CorruptAfter(usize),
    /// `read_all`'s first event and `append_request` wait for a message on this channel, and
    /// `append_request` reports its seq on `done` when it finishes.
    Gate {
        go: Arc<Mutex<mpsc::Receiver<()>>>,
        done: mpsc::Sender<u64>,
    },
    /// A subscription's feed panics on its first read.
    PanicInSubscription,
}

/// A feed that panics when read.
struct PanickingFeed;

impl eventfile::subscription::Feed for PanickingFeed {
    fn read_after(
        &self,
        _: &Query,
        _: u64,
    ) -> eventfile::Result<Option<(eventfile::subscription::FeedEvents, u64)>> {
        panic!("injected panic in the feed")
    }
    fn bounds(&self, _: bool) -> eventfile::Result<Option<(u64, u64)>> {
        Ok(Some((1, 1)))
    }
    fn wait_past(&self, _: u64, _: Option<std::time::Instant>) -> eventfile::subscription::Waited {
        eventfile::subscription::Waited::Advanced(1)
    }
}

impl Faulty {
    fn wait(&self) {
        if let Fault::Gate { go, .. } = &self.fault {
            go.lock().unwrap().recv().unwrap();
        }
    }
}

impl EventStore for Faulty {
    fn append_request(&self, request: AppendRequest) -> eventfile::Result<MultiAppendResult> {
        self.wait();
        let r = self.inner.append_request(request);
        if let (Fault::Gate { done, .. }, Ok(r)) = (&self.fault, &r) {
            done.send(r.last_seq).unwrap();
        }
        r
    }
    fn read_stream(&self, stream: &str, read: Read) -> eventfile::Result<EventIter> {
        EventStore::read_stream(&self.inner, stream, read)
    }
    fn read_all(&self, read: Read) -> eventfile::Result<EventIter> {
        let events = EventStore::read_all(&self.inner, read)?;
        Ok(match &self.fault {
            Fault::CorruptAfter(n) => {
                Box::new(events.take(*n).chain(std::iter::once(Err(Error::Corrupt {
                    path: "segment".into(),
                    offset: 7,
                    reason: "injected".into(),
                }))))
            }
            Fault::Gate { go, .. } => {
                let go = go.clone();
                Box::new(events.inspect(move |_| go.lock().unwrap().recv().unwrap()))
            }
            Fault::PanicOnHead | Fault::PanicInSubscription => events,
        })
    }
    fn query(&self, query: &Query) -> eventfile::Result<EventIter> {
        EventStore::query(&self.inner, query)
    }
    fn count(&self, query: &Query) -> eventfile::Result<u64> {
        EventStore::count(&self.inner, query)
    }
    fn get_event(&self, id: &str) -> eventfile::Result<Option<RecordedEvent>> {
        EventStore::get_event(&self.inner, id)
    }
    fn stream_version(&self, stream: &str) -> eventfile::Result<u64> {
        EventStore::stream_version(&self.inner, stream)
    }
    fn head_seq(&self) -> eventfile::Result<u64> {
        if let Fault::PanicOnHead = self.fault {
            panic!("injected panic in head_seq");
        }
        EventStore::head_seq(&self.inner)
    }
    fn log_start(&self) -> eventfile::Result<u64> {
        EventStore::log_start(&self.inner)
    }
    fn subscribe(&self, query: &Query, from: u64) -> eventfile::Result<eventfile::Subscription> {
        if let Fault::PanicInSubscription = self.fault {
            return eventfile::Subscription::new(Box::new(PanickingFeed), query, from);
        }
        EventStore::subscribe(&self.inner, query, from)
    }
    fn wait_for(&self, seq: u64, timeout: std::time::Duration) -> eventfile::Result<bool> {
        EventStore::wait_for(&self.inner, seq, timeout)
    }
    fn streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> eventfile::Result<Vec<StreamInfo>> {
        EventStore::streams(&self.inner, prefix, after, limit)
    }
    fn event_types(&self, after: Option<&str>, limit: usize) -> eventfile::Result<Vec<TermCount>> {
        EventStore::event_types(&self.inner, after, limit)
    }
    fn tags(&self, after: Option<&str>, limit: usize) -> eventfile::Result<Vec<TermCount>> {
        EventStore::tags(&self.inner, after, limit)
    }
    fn save_snapshot(
        &self,
        stream: &str,
        version: u64,
        state: &RawValue,
    ) -> eventfile::Result<Snapshot> {
        EventStore::save_snapshot(&self.inner, stream, version, state)
    }
    fn load_snapshot(&self, stream: &str) -> eventfile::Result<Option<Snapshot>> {
        EventStore::load_snapshot(&self.inner, stream)
    }
    fn truncate_stream(&self, stream: &str, before: u64) -> eventfile::Result<DeleteResult> {
        EventStore::truncate_stream(&self.inner, stream, before)
    }
    fn delete_stream(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> eventfile::Result<DeleteResult> {
        EventStore::delete_stream(&self.inner, stream, expected)
    }
    fn tombstone_stream(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> eventfile::Result<DeleteResult> {
        EventStore::tombstone_stream(&self.inner, stream, expected)
    }

    fn import(&self, events: &[RecordedEvent]) -> eventfile::Result<eventfile::ImportResult> {
        self.wait();
        EventStore::import(&self.inner, events)
    }

    fn checkpoints(&self) -> &dyn eventfile::Checkpoints {
        EventStore::checkpoints(&self.inner)
    }

    fn metrics(&self) -> eventfile::Metrics {
        EventStore::metrics(&self.inner)
    }
}

fn faulty(dir: &std::path::Path, fault: Fault) -> AsyncStore {
    let store: Box<dyn EventStore> = Box::new(Faulty {
        inner: Store::open(dir).unwrap(),
        fault,
    });
    AsyncStore::from(store)
}

/// Polls `fut` once (handing its call to the blocking pool) and drops it.
fn poll_once_and_drop<F: Future>(fut: F) {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending(), "the call is gated");
}

#[test]
fn a_backend_panic_is_an_aborted_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = faulty(dir.path(), Fault::PanicOnHead);
    runtime().block_on(async {
        let err = store.head_seq().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            matches!(&err, Error::Aborted { op: "head_seq", .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("injected panic in head_seq"),
            "{err}"
        );
        // The facade still serves other calls.
        assert_eq!(store.log_start().await.unwrap(), 1);
    });
}

#[test]
fn outside_a_runtime_a_call_fails_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let store = AsyncStore::new(Store::open(dir.path()).unwrap());
    let mut fut = pin!(store.append("s", ExpectedVersion::Any, [event("A", 1)]));
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Err(err)) => {
            assert_eq!(err.kind(), ErrorKind::Unavailable);
            assert!(err.to_string().contains("no tokio runtime"), "{err}");
        }
        other => panic!("expected an immediate error, got {other:?}"),
    }
    assert_eq!(store.inner().head_seq().unwrap(), 0, "nothing was written");
}

/// A panic in a subscription's thread ends the stream with an error, never with `None`, which
/// says the subscription finished (before, the stream just ended).
#[test]
fn a_panicking_subscription_ends_with_an_error_not_as_finished() {
    let dir = tempfile::tempdir().unwrap();
    let store = faulty(dir.path(), Fault::PanicInSubscription);
    runtime().block_on(async {
        let mut sub = store.subscribe(&Query::new(), 0).await.unwrap();
        match sub.next().await {
            Some(Err(err)) => {
                assert!(
                    matches!(
                        &err,
                        Error::Aborted {
                            op: "subscribe",
                            ..
                        }
                    ),
                    "{err}"
                );
                assert!(
                    err.to_string().contains("injected panic in the feed"),
                    "{err}"
                );
            }
            other => panic!("expected the panic as an error, got {other:?}"),
        }
        assert!(sub.next().await.is_none());
    });
}

/// `next_batch` outside a runtime fails and leaves the read where it was (before, it took the
/// read's iterator first and dropped it, so every later call failed as if a future had been
/// dropped).
#[test]
fn outside_a_runtime_next_batch_fails_and_keeps_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = AsyncStore::new(Store::open(dir.path()).unwrap());
    let rt = runtime();
    let mut batches = rt.block_on(async {
        populate(&store).await;
        store.read_all_batches(Read::forward()).await.unwrap()
    });
    {
        let mut fut = pin!(batches.next_batch(2));
        let mut cx = Context::from_waker(Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Err(err)) => assert!(err.to_string().contains("no tokio runtime"), "{err}"),
            other => panic!("expected an immediate error, got {other:?}"),
        }
    }
    let first = rt.block_on(batches.next_batch(2)).unwrap();
    assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
}

/// `close` outside a runtime gives the handle up there and then: the store is closed when it
/// returns (before, it said "nothing was done" with the handle already dropped).
#[test]
fn outside_a_runtime_close_closes() {
    let dir = tempfile::tempdir().unwrap();
    let store = AsyncStore::new(Store::open(dir.path()).unwrap());
    let mut fut = pin!(store.close());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    Store::open(dir.path()).unwrap();
}

#[test]
fn an_error_ending_a_read_comes_after_the_events_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = faulty(dir.path(), Fault::CorruptAfter(3));
    runtime().block_on(async {
        populate(&store).await;
        let mut batches = store.read_all_batches(Read::forward()).await.unwrap();
        let first = batches.next_batch(2).await.unwrap();
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        // The third event, then the error on the next call, then the end.
        let second = batches.next_batch(10).await.unwrap();
        assert_eq!(second.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
        let err = batches.next_batch(10).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(batches.next_batch(10).await.unwrap().is_empty());
        // The collected form fails as a whole.
        let err = store.read_all(Read::forward()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
    });
}

#[test]
fn a_dropped_append_still_completes_and_its_retry_replays() {
    let dir = tempfile::tempdir().unwrap();
    let (go, gate) = mpsc::channel();
    let (done, finished) = mpsc::channel();
    let store = faulty(
        dir.path(),
        Fault::Gate {
            go: Arc::new(Mutex::new(gate)),
            done,
        },
    );
    let events = [event("A", 1).with_id("id-1"), event("A", 2).with_id("id-2")];
    runtime().block_on(async {
        // Handed to the pool, then abandoned (as a timeout would), then let through.
        poll_once_and_drop(store.append("s", ExpectedVersion::NoStream, events.clone()));
        go.send(()).unwrap();
        assert_eq!(
            finished.recv().unwrap(),
            2,
            "the abandoned append completed"
        );
        assert_eq!(store.head_seq().await.unwrap(), 2);
        // The retry with the same ids gets the first result, though `NoStream` no longer holds.
        go.send(()).unwrap();
        let r = store
            .append("s", ExpectedVersion::NoStream, events)
            .await
            .unwrap();
        assert!(r.replayed);
        assert_eq!((r.first_seq, r.last_seq, r.version), (1, 2, 2));
        assert_eq!(store.head_seq().await.unwrap(), 2, "written once");
    });
}

#[test]
fn a_dropped_batch_loses_the_read_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let (go, gate) = mpsc::channel();
    let (done, _finished) = mpsc::channel();
    let store = faulty(
        dir.path(),
        Fault::Gate {
            go: Arc::new(Mutex::new(gate)),
            done,
        },
    );
    runtime().block_on(async {
        go.send(()).unwrap();
        store
            .append("s", ExpectedVersion::Any, [event("A", 1)])
            .await
            .unwrap();
        let mut batches = store.read_all_batches(Read::forward()).await.unwrap();
        poll_once_and_drop(batches.next_batch(1));
        go.send(()).unwrap();
        let err = batches.next_batch(1).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            matches!(
                &err,
                Error::Aborted {
                    op: "next_batch",
                    ..
                }
            ),
            "{err}"
        );
    });
}

#[test]
fn the_facade_and_its_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    send_sync_clone::<AsyncStore>();
    let dir = tempfile::tempdir().unwrap();
    let store = AsyncStore::new(Store::open(dir.path()).unwrap());
    // Futures that a multi-thread runtime's `spawn` accepts (never polled here).
    send(&store.append("s", ExpectedVersion::Any, [event("A", 1)]));
    send(&store.read_all(Read::forward()));
    send(&store.query(&Query::new()));
    let mut batches = runtime()
        .block_on(store.read_all_batches(Read::forward()))
        .unwrap();
    send(&batches.next_batch(1));
}

/// A subscription as a stream: the history, then what is appended while it waits, in order;
/// closing the store (dropping its last handle) ends the stream.
#[test]
fn a_subscription_streams_history_then_live_and_ends_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let facade = AsyncStore::new(store);
        for i in 0..3 {
            facade
                .append("s", ExpectedVersion::Any, [NewEvent::new("T", json!(i))])
                .await
                .unwrap();
        }
        let mut sub = facade.subscribe(&Query::new(), 0).await.unwrap();
        let mut seqs = Vec::new();
        for _ in 0..3 {
            seqs.push(sub.next().await.unwrap().unwrap().seq);
        }
        let writer = facade.clone();
        let appending = tokio::spawn(async move {
            for i in 3..6 {
                writer
                    .append("s", ExpectedVersion::Any, [NewEvent::new("T", json!(i))])
                    .await
                    .unwrap();
            }
        });
        for _ in 3..6 {
            seqs.push(sub.next().await.unwrap().unwrap().seq);
        }
        appending.await.unwrap();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
        assert!(
            facade
                .wait_for(6, std::time::Duration::from_secs(5))
                .await
                .unwrap()
        );
        drop(facade);
        assert!(sub.next().await.is_none(), "the stream ends with the store");
    });
}

/// `append_requests` through the facade: each request's own outcome, in order, and one sync
/// for the file store's written requests.
#[test]
fn independent_requests_through_the_facade_share_one_sync() {
    let dir = tempfile::tempdir().unwrap();
    let sync = Arc::new(eventfile::Store::open(dir.path()).unwrap());
    let store = AsyncStore::from_arc(sync.clone());
    let out = runtime().block_on(async {
        store
            .append_requests(vec![
                AppendRequest::new("a", ExpectedVersion::NoStream, [event("A", 1)]),
                AppendRequest::new("a", ExpectedVersion::NoStream, [event("A", 2)]),
                AppendRequest::new("b", ExpectedVersion::NoStream, [event("B", 3)]),
            ])
            .await
            .unwrap()
    });
    assert_eq!(out[0].as_ref().unwrap().first_seq, 1);
    assert_eq!(
        out[1].as_ref().unwrap_err().kind(),
        eventfile::ErrorKind::Conflict
    );
    assert_eq!(out[2].as_ref().unwrap().first_seq, 2);
    assert_eq!(EventStore::metrics(&*sync).syncs, 1);
}

/// `close` gives the handle up on the blocking pool and returns once that is done: the last
/// handle's close leaves the store closed (opened again at once), while another clone keeps
/// it open.
#[test]
fn close_returns_once_the_last_handle_closed_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = AsyncStore::new(Store::open(dir.path()).unwrap());
        store
            .append("s", ExpectedVersion::Any, [event("A", 1)])
            .await
            .unwrap();
        let clone = store.clone();
        store.close().await.unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        clone.close().await.unwrap();
        assert_eq!(Store::open(dir.path()).unwrap().head_seq(), 1);
    });
}

/// A `wait_for` future dropped while it waits holds a blocking-pool thread for at most a
/// second, not its whole timeout: with a pool of one thread, the next call runs soon after
/// (before, it waited out the abandoned call's 120 s).
#[test]
fn an_abandoned_wait_for_frees_its_pool_thread_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let store = AsyncStore::new(Store::open(dir.path()).unwrap());
    rt.block_on(async {
        poll_once_and_drop(store.wait_for(100, std::time::Duration::from_secs(120)));
        let started = std::time::Instant::now();
        assert_eq!(store.head_seq().await.unwrap(), 0);
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(60),
            "the next call waited {took:?}"
        );
    });
}
