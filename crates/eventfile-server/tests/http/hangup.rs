//! Clients that go away at the worst moment: an append whose client hangs up while the store
//! writes it (it happens whole, and a retry with the same ids learns its result), and a feed
//! whose client reads nothing while the server shuts down (the shutdown still completes).

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use eventfile::{
    AppendRequest, DeleteResult, EventIter, EventStore, ExpectedVersion, ImportResult, MemoryStore,
    MultiAppendResult, NewEvent, Query, Read, RecordedEvent, Result, Snapshot, StreamInfo,
    TermCount,
};
use eventfile_server::ServeOptions;
use serde_json::json;
use serde_json::value::RawValue;

use crate::backpressure::{RawFeed, bound};
use crate::common::{TestServer, eventually, json, metric};

/// A memory store whose first append waits, inside the store, until the test lets it go.
struct Gated {
    store: MemoryStore,
    gated: AtomicBool,
    entered: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
    returned: Mutex<mpsc::Sender<()>>,
}

impl EventStore for Gated {
    fn append_request(&self, request: AppendRequest) -> Result<MultiAppendResult> {
        if !self.gated.swap(false, Ordering::AcqRel) {
            return self.store.append_request(request);
        }
        self.entered.lock().unwrap().send(()).unwrap();
        self.release.lock().unwrap().recv().unwrap();
        let r = self.store.append_request(request);
        self.returned.lock().unwrap().send(()).unwrap();
        r
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
    fn wait_for(&self, seq: u64, timeout: Duration) -> Result<bool> {
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

/// A [`Gated`] store, and its channels: told when the gated append entered the store, letting
/// it go, told when it returned.
fn gated() -> (
    Arc<Gated>,
    mpsc::Receiver<()>,
    mpsc::Sender<()>,
    mpsc::Receiver<()>,
) {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let (returned_tx, returned) = mpsc::channel();
    let store = Arc::new(Gated {
        store: MemoryStore::new(),
        gated: AtomicBool::new(true),
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
        returned: Mutex::new(returned_tx),
    });
    (store, entered, release, returned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_client_hangs_up_happens_whole_and_replays() {
    let (store, entered, release, returned) = gated();
    let s = TestServer::start(store.clone(), ServeOptions::new()).await;
    let body = json!([
        {"stream": "a", "events": [{"type": "A", "id": "a-1"}, {"type": "A", "id": "a-2"}]},
        {"stream": "b", "events": [{"type": "B", "id": "b-1"}], "expect": "no-stream"},
    ]);

    // The whole request sent, then the client goes while the store is inside the append.
    let addr = s.addr;
    let text = body.to_string();
    tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        write!(
            c,
            "POST /append HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{text}",
            text.len()
        )
        .unwrap();
        entered.recv().unwrap();
        c.shutdown(std::net::Shutdown::Both).unwrap();
        drop(c);
        release.send(()).unwrap();
        returned.recv().unwrap();
    })
    .await
    .unwrap();

    // The append ran to its end, all of it.
    assert_eq!(store.head_seq().unwrap(), 3);
    assert_eq!(store.stream_version("a").unwrap(), 2);
    assert_eq!(store.stream_version("b").unwrap(), 1);
    // Counted as the store wrote it, though no one was left to answer.
    eventually("the hung-up append counted", async || {
        metric(&s, "eventfile_appends_total").await == 1.0
    })
    .await;
    assert_eq!(metric(&s, "eventfile_events_appended_total").await, 3.0);
    // Its result is learnt by retrying with the same ids: replayed, same positions.
    let (status, r) = json(s.post("/append", body.clone()).await).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["replayed"], true, "{r}");
    assert_eq!(
        (r["first_seq"].as_u64(), r["last_seq"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(store.head_seq().unwrap(), 3);
    // And the server serves on.
    let (status, head) = json(s.get("/head").await).await;
    assert_eq!((status, head["head"].as_u64()), (200, Some(3)));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_completes_while_a_feed_client_reads_nothing() {
    // The grace a shutdown gives a client that takes nothing is the request timeout.
    let options = ServeOptions::new().request_timeout(Duration::from_millis(500));
    let (s, store) = TestServer::memory(options).await;
    let (_feed, rcvbuf) = RawFeed::open(s.addr, false).await;
    let bound = bound(rcvbuf);
    let pad = "x".repeat(1000);
    let events = bound * 2;
    for first in (0..events).step_by(500) {
        let batch = (first..first + 500)
            .map(|i| NewEvent::new("E", json!({"i": i, "pad": pad})))
            .collect();
        store.append("s", ExpectedVersion::Any, batch).unwrap();
    }
    assert!(metric(&s, "eventfile_head_seq").await >= bound as f64);
    // The client still holds its connection, full, and reads nothing: the shutdown cuts it
    // after the grace (or the stall limit, the same request timeout, already has) instead of
    // waiting for it forever.
    tokio::time::timeout(Duration::from_secs(20), s.stop())
        .await
        .expect("the shutdown waited for a client that reads nothing");
}

/// An append that times out while it still waits in the queue (the one worker is inside the
/// store with another) is not made: its 503 tells the client to retry, and an append without
/// its own ids, retried, would otherwise be written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_that_times_out_in_the_queue_is_not_made() {
    let (store, entered, release, returned) = gated();
    let options = ServeOptions::new()
        .append_workers(1)
        .request_timeout(Duration::from_millis(300));
    let s = Arc::new(TestServer::start(store.clone(), options).await);
    // The first append holds the only worker inside the store.
    let first = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            s.post(
                "/streams/a",
                json!({"events": [{"type": "A", "id": "a-1"}]}),
            )
            .await
            .status()
        })
    };
    tokio::task::spawn_blocking(move || entered.recv().unwrap())
        .await
        .unwrap();
    // The second waits behind it, without ids, and times out.
    let late = s
        .post("/streams/late", json!({"events": [{"type": "L"}]}))
        .await;
    assert_eq!(late.status(), 503);
    release.send(()).unwrap();
    tokio::task::spawn_blocking(move || returned.recv().unwrap())
        .await
        .unwrap();
    // The first was in the store when its time ran out: it completed.
    assert_eq!(first.await.unwrap(), 503);
    assert_eq!(store.stream_version("a").unwrap(), 1);
    // A third, queued after the second: once it is answered, the worker is past the second.
    let (status, r) = json(
        s.post(
            "/streams/c",
            json!({"events": [{"type": "C", "id": "c-1"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        store.stream_version("late").unwrap(),
        0,
        "the timed-out append was made"
    );
    assert_eq!(metric(&s, "eventfile_appends_abandoned_total").await, 1.0);
}
