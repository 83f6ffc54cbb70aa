//! The async facade: [`AsyncStore`] serves any [`EventStore`] to async code (applications on
//! tokio, the server, the cqrs-es adapter) by running each call on tokio's blocking pool.
//!
//! This module owns the bridge between async callers and the synchronous trait: where a call
//! runs, what dropping its future means (both written on [`AsyncStore`]), and how a long read is
//! pulled in batches ([`AsyncEvents`]). It never reaches into a backend (it sees only
//! `dyn EventStore`), and it never runs a backend call on an async worker thread.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::runtime::Handle;

use crate::api::{
    AppendRequest, DeleteResult, EventIter, EventStore, ImportResult, Snapshot, StreamInfo,
    TermCount,
};
use crate::error::{Error, Result};
use crate::event::{
    AppendResult, ExpectedVersion, MultiAppendResult, NewEvent, RecordedEvent, StreamAppend,
};
use crate::query::{Query, Read};

/// Any [`EventStore`] for async code: one `async fn` per trait method, each run on tokio's
/// blocking pool, never on an async worker thread. Cheap to clone (one `Arc`); `Send + Sync`.
///
/// **Where calls run.** The engine is synchronous by design (as redb's and rusqlite's APIs
/// are): an append waits for an fsync and a read may wait for the disk, which on an async worker
/// thread would stall every task sharing it. So each call goes to
/// [`tokio::task::spawn_blocking`] and the future awaits its result. (`block_in_place` would
/// save the hand-off but panics on a current-thread runtime.) An appender holds one pool thread
/// while it waits for the group commit it shares with the others; tokio's pool allows 512 by
/// default. A call needs a tokio runtime of either flavour around it; outside one it fails with
/// [`Error::Aborted`] rather than panicking.
///
/// **Errors** are the backend's own [`Error`]s, plus [`Error::Aborted`] (kind
/// [`crate::ErrorKind::Unavailable`]) when the blocking task panicked or a runtime shutting
/// down cancelled it before it ran.
///
/// **Cancellation.** A call starts when its future is first polled: it hands the work to the
/// blocking pool and waits. Dropping the future after that (a timeout, a `select!`, a client
/// that hung up) does not cancel the work: an append that was handed over runs to its end and,
/// if it succeeds, is durable though no one hears of it. To try again after giving up on an
/// append, send the same events with the same ids ([`NewEvent::with_id`]) or the same
/// idempotency key ([`AppendRequest::key`]): the store recognises the retry and returns the
/// first append's result with `replayed: true`. An event without an id gets a fresh one at
/// every attempt, so its retry is a second append.
///
/// **Reads** come two ways: `read_stream`, `read_all` and `query` collect the events into a
/// `Vec`, for reads bounded by a limit; `read_stream_batches`, `read_all_batches` and
/// `query_batches` return an [`AsyncEvents`] that pulls a batch at a time, for reads of any
/// length.
///
/// ```
/// use eventfile::{AsyncStore, ExpectedVersion, NewEvent, Read, Store};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir().unwrap();
/// let store = AsyncStore::new(Store::open(dir.path())?); // or from a Box<dyn EventStore>
/// // Any tokio runtime: a server's multi-thread one, or this small one.
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// rt.block_on(async {
///     let placed = NewEvent::new("OrderPlaced", json!({"customer": "ann"})).with_id("e-1");
///     let r = store.append("order-42", ExpectedVersion::NoStream, [placed.clone()]).await?;
///     assert_eq!((r.first_seq, r.version), (1, 1));
///
///     // A retry of the same event (same id) returns the first result and writes nothing.
///     let again = store.append("order-42", ExpectedVersion::NoStream, [placed]).await?;
///     assert!(again.replayed);
///
///     // A conflict is the same typed error as in the synchronous API.
///     let late = NewEvent::new("OrderPlaced", json!({}));
///     let err = store.append("order-42", ExpectedVersion::Exact(0), [late]).await.unwrap_err();
///     assert!(err.is_conflict());
///
///     let events = store.read_stream("order-42", Read::forward().limit(100)).await?;
///     assert_eq!(events.len(), 1);
///     Ok::<(), eventfile::Error>(())
/// })?;
/// # Ok::<(), eventfile::Error>(())
/// ```
#[derive(Clone)]
pub struct AsyncStore {
    store: Arc<dyn EventStore>,
}

impl fmt::Debug for AsyncStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncStore").finish_non_exhaustive()
    }
}

impl From<Arc<dyn EventStore>> for AsyncStore {
    fn from(store: Arc<dyn EventStore>) -> AsyncStore {
        AsyncStore { store }
    }
}

impl From<Box<dyn EventStore>> for AsyncStore {
    fn from(store: Box<dyn EventStore>) -> AsyncStore {
        AsyncStore {
            store: Arc::from(store),
        }
    }
}

impl AsyncStore {
    /// Serves `store` to async code.
    pub fn new<S: EventStore + 'static>(store: S) -> AsyncStore {
        AsyncStore {
            store: Arc::new(store),
        }
    }

    /// Serves a store shared with synchronous code (an `Arc<Store>` coerces to this).
    pub fn from_arc(store: Arc<dyn EventStore>) -> AsyncStore {
        AsyncStore { store }
    }

    /// The synchronous store, for code that is already on a blocking thread.
    pub fn inner(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Runs `f` with the store on the blocking pool.
    async fn run<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn EventStore) -> Result<T> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        blocking(op, move || f(&*store)).await
    }

    /// Appends what `request` holds, atomically ([`EventStore::append_request`]).
    pub async fn append_request(&self, request: AppendRequest) -> Result<MultiAppendResult> {
        self.run("append_request", move |s| s.append_request(request))
            .await
    }

    /// Appends independent requests together ([`EventStore::append_requests`]): one pool
    /// thread for all of them, and on the file store one sync. The outer error is
    /// [`Error::Aborted`] only (the call did not run to its end); each request's own outcome
    /// is in the list.
    pub async fn append_requests(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Result<MultiAppendResult>>> {
        self.run("append_requests", move |s| Ok(s.append_requests(requests)))
            .await
    }

    /// Appends `events` to `stream` if it is at `expected` ([`EventStore::append`]).
    pub async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> Result<AppendResult> {
        let stream = stream.to_owned();
        let events: Vec<NewEvent> = events.into_iter().collect();
        self.run("append", move |s| s.append(&stream, expected, events))
            .await
    }

    /// Appends to several streams atomically ([`EventStore::append_multi`]).
    pub async fn append_multi(
        &self,
        appends: impl IntoIterator<Item = StreamAppend>,
    ) -> Result<MultiAppendResult> {
        let appends: Vec<StreamAppend> = appends.into_iter().collect();
        self.run("append_multi", move |s| s.append_multi(&appends))
            .await
    }

    /// Reads one stream ([`EventStore::read_stream`]), collected: give `read` a limit, or use
    /// [`AsyncStore::read_stream_batches`] for a stream of any length.
    pub async fn read_stream(&self, stream: &str, read: Read) -> Result<Vec<RecordedEvent>> {
        let stream = stream.to_owned();
        self.run("read_stream", move |s| {
            s.read_stream(&stream, read)?.collect()
        })
        .await
    }

    /// Reads the global log ([`EventStore::read_all`]), collected: give `read` a limit, or use
    /// [`AsyncStore::read_all_batches`].
    pub async fn read_all(&self, read: Read) -> Result<Vec<RecordedEvent>> {
        self.run("read_all", move |s| s.read_all(read)?.collect())
            .await
    }

    /// The events a query selects ([`EventStore::query`]), collected: give the query a limit,
    /// or use [`AsyncStore::query_batches`].
    pub async fn query(&self, query: &Query) -> Result<Vec<RecordedEvent>> {
        let query = query.clone();
        self.run("query", move |s| s.query(&query)?.collect()).await
    }

    /// Reads one stream a batch at a time ([`AsyncEvents::next_batch`]).
    pub async fn read_stream_batches(&self, stream: &str, read: Read) -> Result<AsyncEvents> {
        let stream = stream.to_owned();
        let iter = self
            .run("read_stream", move |s| s.read_stream(&stream, read))
            .await?;
        Ok(AsyncEvents::new(iter))
    }

    /// Reads the global log a batch at a time ([`AsyncEvents::next_batch`]).
    pub async fn read_all_batches(&self, read: Read) -> Result<AsyncEvents> {
        let iter = self.run("read_all", move |s| s.read_all(read)).await?;
        Ok(AsyncEvents::new(iter))
    }

    /// The events a query selects, a batch at a time ([`AsyncEvents::next_batch`]).
    pub async fn query_batches(&self, query: &Query) -> Result<AsyncEvents> {
        let query = query.clone();
        let iter = self.run("query", move |s| s.query(&query)).await?;
        Ok(AsyncEvents::new(iter))
    }

    /// [`EventStore::subscribe`] as a stream: every event `query` selects above `from`,
    /// history then live (see [`AsyncSubscription`]).
    pub async fn subscribe(&self, query: &Query, from: u64) -> Result<AsyncSubscription> {
        let query = query.clone();
        let sub = self
            .run("subscribe", move |s| s.subscribe(&query, from))
            .await?;
        AsyncSubscription::spawn(sub)
    }

    /// [`EventStore::wait_for`]: waits, on the blocking pool, until `seq` is visible or
    /// `timeout` passes.
    ///
    /// It waits a second at a time, each on a pool thread of its own: a future dropped while
    /// it waits (a client that hung up on a long poll) holds a pool thread for at most the rest
    /// of its second, not for the whole timeout, so abandoned waits cannot fill the pool that
    /// every other call of the facade needs.
    pub async fn wait_for(&self, seq: u64, timeout: std::time::Duration) -> Result<bool> {
        const SLICE: std::time::Duration = std::time::Duration::from_secs(1);
        let deadline = std::time::Instant::now().checked_add(timeout);
        loop {
            let left = deadline.map_or(SLICE, |d| {
                d.saturating_duration_since(std::time::Instant::now())
                    .min(SLICE)
            });
            if self.run("wait_for", move |s| s.wait_for(seq, left)).await? {
                return Ok(true);
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// Gives up this handle on the blocking pool, and returns once that is done: when it was
    /// the store's last handle, once the store is closed (its files synced, its lock released),
    /// so that the store can be opened again at once. A call whose future was dropped while it
    /// ran on the pool (see "Cancellation" above) holds the store until it ends: the close
    /// then happens there, after this returns.
    ///
    /// Dropping the last handle closes the store too, but on the thread that drops it: on an
    /// async worker, that thread then waits for the close's syncs and writes, stalling the
    /// tasks that share it. Errors of the close go to the log either way (an
    /// `Arc<dyn EventStore>` has no close that returns them: call [`crate::Store::close`] on
    /// the store itself for that).
    ///
    /// Outside a tokio runtime (another executor), the handle is given up on the calling
    /// thread: there is no pool to hand it to, and the handle is consumed either way.
    pub async fn close(self) -> Result<()> {
        let store = self.store;
        let Ok(handle) = Handle::try_current() else {
            drop(store);
            return Ok(());
        };
        blocking_on(handle, "close", move || {
            drop(store);
            Ok(())
        })
        .await
    }

    /// How many events a query selects, its limit ignored ([`EventStore::count`]).
    pub async fn count(&self, query: &Query) -> Result<u64> {
        let query = query.clone();
        self.run("count", move |s| s.count(&query)).await
    }

    /// The event with this id, if it is in the log and not deleted ([`EventStore::get_event`]).
    pub async fn get_event(&self, id: &str) -> Result<Option<RecordedEvent>> {
        let id = id.to_owned();
        self.run("get_event", move |s| s.get_event(&id)).await
    }

    /// A stream's current version, 0 if it has none ([`EventStore::stream_version`]).
    pub async fn stream_version(&self, stream: &str) -> Result<u64> {
        let stream = stream.to_owned();
        self.run("stream_version", move |s| s.stream_version(&stream))
            .await
    }

    /// The seq of the newest visible event, 0 for an empty store ([`EventStore::head_seq`]).
    pub async fn head_seq(&self) -> Result<u64> {
        self.run("head_seq", |s| s.head_seq()).await
    }

    /// The oldest seq retention kept ([`EventStore::log_start`]).
    pub async fn log_start(&self) -> Result<u64> {
        self.run("log_start", |s| s.log_start()).await
    }

    /// Streams whose name starts with `prefix`, in name order, after `after`, at most `limit`
    /// ([`EventStore::streams`]).
    pub async fn streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        let prefix = prefix.to_owned();
        let after = after.map(str::to_owned);
        self.run("streams", move |s| {
            s.streams(&prefix, after.as_deref(), limit)
        })
        .await
    }

    /// Event types with their live event counts ([`EventStore::event_types`]).
    pub async fn event_types(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        let after = after.map(str::to_owned);
        self.run("event_types", move |s| {
            s.event_types(after.as_deref(), limit)
        })
        .await
    }

    /// Tags with their live event counts ([`EventStore::tags`]).
    pub async fn tags(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        let after = after.map(str::to_owned);
        self.run("tags", move |s| s.tags(after.as_deref(), limit))
            .await
    }

    /// Saves a snapshot of `stream`'s state as of `version` ([`EventStore::save_snapshot`]).
    /// The state is owned JSON text: `serde_json::value::to_raw_value(&state)?` makes it from
    /// any serialisable value.
    pub async fn save_snapshot(
        &self,
        stream: &str,
        version: u64,
        state: Box<RawValue>,
    ) -> Result<Snapshot> {
        let stream = stream.to_owned();
        self.run("save_snapshot", move |s| {
            s.save_snapshot(&stream, version, &state)
        })
        .await
    }

    /// The newest usable snapshot of `stream`, if any ([`EventStore::load_snapshot`]).
    pub async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        let stream = stream.to_owned();
        self.run("load_snapshot", move |s| s.load_snapshot(&stream))
            .await
    }

    /// Hides `stream`'s events below version `before` ([`EventStore::truncate_stream`]).
    pub async fn truncate_stream(&self, stream: &str, before: u64) -> Result<DeleteResult> {
        let stream = stream.to_owned();
        self.run("truncate_stream", move |s| {
            s.truncate_stream(&stream, before)
        })
        .await
    }

    /// Hides all of `stream`'s events if it is at `expected` ([`EventStore::delete_stream`]).
    pub async fn delete_stream(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Result<DeleteResult> {
        let stream = stream.to_owned();
        self.run("delete_stream", move |s| s.delete_stream(&stream, expected))
            .await
    }

    /// Deletes `stream` for good if it is at `expected` ([`EventStore::tombstone_stream`]).
    pub async fn tombstone_stream(
        &self,
        stream: &str,
        expected: ExpectedVersion,
    ) -> Result<DeleteResult> {
        let stream = stream.to_owned();
        self.run("tombstone_stream", move |s| {
            s.tombstone_stream(&stream, expected)
        })
        .await
    }

    /// Writes another store's events as recorded ([`EventStore::import`]).
    pub async fn import(&self, events: Vec<RecordedEvent>) -> Result<ImportResult> {
        self.run("import", move |s| s.import(&events)).await
    }
}

/// A read pulled a batch at a time, each batch on the blocking pool: a read of any length
/// without holding a blocking thread for its whole life, nor all of it in memory.
///
/// The synchronous [`EventIter`] moves to a pool thread for one batch and comes back with it.
/// There is no `Stream` implementation, since that trait would bring in the `futures` crate;
/// `futures::stream::unfold` over [`AsyncEvents::next_batch`] makes one where it is wanted.
///
/// ```
/// # use eventfile::{AsyncStore, ExpectedVersion, NewEvent, Read, Store};
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = AsyncStore::new(Store::open(dir.path())?);
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// # for i in 0..5 {
/// #     store.append("s", ExpectedVersion::Any, [NewEvent::new("T", serde_json::json!(i))]).await?;
/// # }
/// let mut events = store.read_all_batches(Read::forward()).await?;
/// let mut seen = 0;
/// loop {
///     let batch = events.next_batch(2).await?;
///     if batch.is_empty() {
///         break; // the read is over
///     }
///     seen += batch.len();
/// }
/// assert_eq!(seen, 5);
/// # Ok::<(), eventfile::Error>(())
/// # })?;
/// # Ok::<(), eventfile::Error>(())
/// ```
#[must_use = "a read does nothing until its batches are pulled"]
pub struct AsyncEvents {
    state: Position,
    /// An error that ended the read after events the last batch returned: the next call's.
    pending: Option<Error>,
}

/// Where an [`AsyncEvents`] read is.
enum Position {
    /// More may come.
    Open(EventIter),
    /// The read ended (its last event or its error was returned).
    Ended,
    /// A `next_batch` future was dropped while its iterator was on the pool: the iterator, and
    /// with it the read's position, went with it.
    Lost,
}

impl fmt::Debug for AsyncEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            Position::Open(_) => "open",
            Position::Ended => "ended",
            Position::Lost => "lost",
        };
        f.debug_struct("AsyncEvents")
            .field("state", &state)
            .field("pending", &self.pending)
            .finish()
    }
}

impl AsyncEvents {
    fn new(iter: EventIter) -> AsyncEvents {
        AsyncEvents {
            state: Position::Open(iter),
            pending: None,
        }
    }

    /// The next events, at most `max` (at least 1 is asked for when `max` is 0), in the read's
    /// order; an empty batch once the read is over.
    ///
    /// An error that ends the read after some events comes after them: this call returns the
    /// events, the next one the error, and later ones an empty batch. If a `next_batch` future
    /// is dropped before it finishes, the read's position is lost with it: later calls fail
    /// with [`Error::Aborted`]; start a new read after the last seq or version received.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<RecordedEvent>> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        // Before the iterator is taken: without a runtime, the read stays where it was.
        let handle = runtime("next_batch")?;
        let iter = match std::mem::replace(&mut self.state, Position::Lost) {
            Position::Open(iter) => iter,
            Position::Ended => {
                self.state = Position::Ended;
                return Ok(Vec::new());
            }
            Position::Lost => {
                return Err(Error::Aborted {
                    op: "next_batch",
                    reason: "an earlier next_batch future was dropped before it finished, and \
                             the read's position with it; start a new read after the last event \
                             received"
                        .to_owned(),
                });
            }
        };
        let max = max.max(1);
        // A panic in the iterator leaves the state `Lost`: later calls fail, never look ended.
        let (rest, events, error) =
            blocking_on(handle, "next_batch", move || Ok(pull(iter, max))).await?;
        self.state = match rest {
            Some(iter) => Position::Open(iter),
            None => Position::Ended,
        };
        match error {
            Some(e) if events.is_empty() => Err(e),
            Some(e) => {
                self.pending = Some(e);
                Ok(events)
            }
            None => Ok(events),
        }
    }
}

/// A subscription for async code: a [`futures_core::Stream`] of the events a
/// [`crate::Subscription`] delivers, history then live, in seq order. Made by
/// [`AsyncStore::subscribe`].
///
/// A thread of its own follows the subscription and hands events over through a bounded
/// channel: when the consumer is slow the thread stops reading the log (nothing is dropped, the
/// events wait in the log). Dropping the stream stops the thread; closing the store ends the
/// stream. An [`Error::Gap`] is followed by the events after the gap; any other error ends
/// the stream.
pub struct AsyncSubscription {
    events: tokio::sync::mpsc::Receiver<Result<RecordedEvent>>,
}

impl fmt::Debug for AsyncSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSubscription").finish_non_exhaustive()
    }
}

/// Events the subscription's thread may read ahead of the consumer.
const SUBSCRIPTION_BUFFER: usize = 256;
/// How often an idle subscription's thread checks whether its stream was dropped.
const SUBSCRIPTION_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

impl AsyncSubscription {
    fn spawn(mut sub: crate::subscription::Subscription) -> Result<AsyncSubscription> {
        let (tx, rx) = tokio::sync::mpsc::channel(SUBSCRIPTION_BUFFER);
        std::thread::Builder::new()
            .name("eventfile-subscription".into())
            .spawn(move || {
                let follow = std::panic::AssertUnwindSafe(|| {
                    loop {
                        let item = match sub.next_timeout(SUBSCRIPTION_CHECK) {
                            Ok(Some(e)) => Ok(e),
                            Ok(None) if sub.is_finished() => return,
                            Ok(None) if tx.is_closed() => return,
                            Ok(None) => continue,
                            Err(e) => Err(e),
                        };
                        if tx.blocking_send(item).is_err() || sub.is_finished() {
                            return;
                        }
                    }
                });
                // A panic must not end the stream as if the subscription had finished.
                if let Err(panic) = std::panic::catch_unwind(follow) {
                    let _ = tx.blocking_send(Err(Error::Aborted {
                        op: "subscribe",
                        reason: format!(
                            "the subscription's thread panicked ({}); resubscribe after the last \
                             event received",
                            panic_message(panic.as_ref())
                        ),
                    }));
                }
            })
            .map_err(|e| Error::Aborted {
                op: "subscribe",
                reason: format!("could not start the subscription's thread: {e}"),
            })?;
        Ok(AsyncSubscription { events: rx })
    }

    /// The next event; `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent>> {
        self.events.recv().await
    }
}

impl futures_core::Stream for AsyncSubscription {
    type Item = Result<RecordedEvent>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

/// Up to `max` events from `iter`, and the iterator back unless the read ended (at its end, or
/// at an error, which ends a read).
fn pull(mut iter: EventIter, max: usize) -> (Option<EventIter>, Vec<RecordedEvent>, Option<Error>) {
    let mut events = Vec::with_capacity(max.min(1024));
    while events.len() < max {
        match iter.next() {
            Some(Ok(e)) => events.push(e),
            Some(Err(e)) => return (None, events, Some(e)),
            None => return (None, events, None),
        }
    }
    (Some(iter), events, None)
}

/// Runs `f` on the blocking pool of the runtime the caller is in and waits for it; a panic, a
/// cancellation or a missing runtime is an [`Error::Aborted`], never a panic here.
async fn blocking<T, F>(op: &'static str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    blocking_on(runtime(op)?, op, f).await
}

/// The runtime the caller is in, or why there is none.
fn runtime(op: &'static str) -> Result<Handle> {
    Handle::try_current().map_err(|_| Error::Aborted {
        op,
        reason: "no tokio runtime is running here, and the async facade runs every call on a \
                 runtime's blocking pool; nothing was done"
            .to_owned(),
    })
}

/// [`blocking`] on `handle`'s pool.
async fn blocking_on<T, F>(handle: Handle, op: &'static str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match handle.spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(Error::Aborted {
            op,
            reason: format!(
                "the backend panicked ({}); an append may or may not have been written: \
                 retry it with the same event ids or idempotency key",
                panic_message(e.into_panic().as_ref())
            ),
        }),
        Err(_) => Err(Error::Aborted {
            op,
            reason: "the runtime shut down before the call ran; nothing was done".to_owned(),
        }),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "a panic without a message"
    }
}
