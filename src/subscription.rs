//! Subscriptions: every event a query selects after a position, first the history, then each
//! new event as soon as it is visible, in `seq` order, with no gap and no duplicate across the
//! switch ([`Subscription`]); and what a backend provides to serve one ([`Feed`], with
//! [`HeadWatch`] for waking waiters).
//!
//! A subscription pulls: it reads the log from its position through the backend's ordinary
//! query path (lazily, one segment or one page at a time), and when it has read everything
//! visible it waits for the head to move past its position. Nothing is queued for it, so a slow
//! subscriber never holds up an appender and never misses an event: whatever it has not read is
//! still in the log. The one way an event can escape it is retention removing the event first,
//! and that is reported as [`Error::Gap`] naming the exact range, never skipped silently.
//!
//! This module owns the subscription's position and its switch from history to live; it never
//! knows how a backend stores events, nor does it ever hold a backend open: a backend's
//! [`Feed`] holds it weakly, so closing the store ends its subscriptions.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::query::{Direction, Query};

/// Events in `seq` order, each an event or the error that ended the read.
pub type FeedEvents = Box<dyn Iterator<Item = Result<RecordedEvent>> + Send>;

/// How a wait on the head ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The head is past the position waited on; the new head.
    Advanced(u64),
    /// The deadline passed first.
    TimedOut,
    /// The store was closed.
    Closed,
}

/// What a backend provides to serve subscriptions. The file store and the in-memory store
/// implement it; another backend implements it to hand out [`Subscription`]s from
/// [`crate::EventStore::subscribe`] with [`Subscription::new`].
///
/// A feed must not keep its store open: once the store is closed, every call returns
/// [`Waited::Closed`] or an error, and subscriptions end.
pub trait Feed: Send {
    /// The events `query` selects with a seq above `after`, up to the head visible when the
    /// read is made, and that head: once the iterator is exhausted, the subscription has seen
    /// everything up to it. `None` when the store is closed. Events removed by retention are
    /// never skipped: if any seq above `after` is gone, the read (or its iterator) fails with
    /// an error of kind [`crate::ErrorKind::Expired`] or an I/O error, and the subscription
    /// asks [`Feed::bounds`] what was lost.
    fn read_after(&self, query: &Query, after: u64) -> Result<Option<(FeedEvents, u64)>>;

    /// The newest visible seq, and the oldest seq retention kept; `None` when the store is
    /// closed. With `fresh` (after a read failed), a backend whose view of another process's
    /// changes may lag brings it up to date first.
    fn bounds(&self, fresh: bool) -> Result<Option<(u64, u64)>>;

    /// Blocks until the head is above `after`, the deadline passes, or the store is closed.
    fn wait_past(&self, after: u64, deadline: Option<Instant>) -> Waited;
}

/// Wakes the waiters of a backend's head: what [`Feed::wait_past`] and
/// [`crate::EventStore::wait_for`] block on. The backend calls [`HeadWatch::advance`] each
/// time it makes events visible and [`HeadWatch::close`] when the store closes.
///
/// ```
/// use eventfile::subscription::{HeadWatch, Waited};
/// use std::time::{Duration, Instant};
/// let watch = std::sync::Arc::new(HeadWatch::new(0));
/// let w = watch.clone();
/// let t = std::thread::spawn(move || w.wait_past(2, None));
/// watch.advance(3);
/// assert_eq!(t.join().unwrap(), Waited::Advanced(3));
/// let soon = Instant::now() + Duration::from_millis(1);
/// assert_eq!(watch.wait_past(3, Some(soon)), Waited::TimedOut);
/// ```
#[derive(Debug, Default)]
pub struct HeadWatch {
    state: Mutex<WatchState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct WatchState {
    head: u64,
    closed: bool,
    /// Threads waiting: an advance with none skips the wake-up call.
    waiters: usize,
}

impl HeadWatch {
    /// A watch whose head is `head`.
    pub fn new(head: u64) -> HeadWatch {
        HeadWatch {
            state: Mutex::new(WatchState {
                head,
                ..WatchState::default()
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The head as last advanced.
    pub fn head(&self) -> u64 {
        self.lock().head
    }

    /// Whether [`HeadWatch::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Events up to `seq` are visible: wakes the waiters it satisfies. A lower `seq` than the
    /// current head changes nothing.
    pub fn advance(&self, seq: u64) {
        let mut s = self.lock();
        if seq > s.head {
            s.head = seq;
            if s.waiters > 0 {
                self.cv.notify_all();
            }
        }
    }

    /// The store is closed: every waiter, now and later, gets [`Waited::Closed`].
    pub fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        self.cv.notify_all();
    }

    /// Blocks until the event at `seq` is visible (the head is at or past it): `true`, or
    /// `false` if `timeout` passed first or the watch was closed. What
    /// [`crate::EventStore::wait_for`] does on every backend built on a watch.
    pub fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let Some(after) = seq.checked_sub(1) else {
            return true;
        };
        let deadline = Instant::now().checked_add(timeout);
        matches!(self.wait_past(after, deadline), Waited::Advanced(_))
    }

    /// Blocks until the head is above `after` (returning it), `deadline` passes, or the watch
    /// is closed. A head already above `after` returns at once, even on a closed watch.
    pub fn wait_past(&self, after: u64, deadline: Option<Instant>) -> Waited {
        let mut s = self.lock();
        loop {
            if s.head > after {
                return Waited::Advanced(s.head);
            }
            if s.closed {
                return Waited::Closed;
            }
            let timeout = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Waited::TimedOut,
                },
            };
            s.waiters += 1;
            s = match timeout {
                None => self.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(left) => {
                    self.cv
                        .wait_timeout(s, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            s.waiters -= 1;
        }
    }
}

/// Most times a read may fail in a row at one position before the error is returned: a read
/// that meets a segment removed under it (by compaction, or by retention that a refresh then
/// reports as a gap) starts over from the position.
const RETRIES: u32 = 3;

/// Every event a query selects after a position: the history first, then each new event as it
/// becomes visible, in `seq` order, never a gap, never one twice. Made by
/// [`crate::EventStore::subscribe`] (or [`crate::Store::subscribe`]).
///
/// As an [`Iterator`] it blocks until the next event and ends (`None`) when the store is
/// closed, when the query's limit is reached, or when the query's `to_seq` is passed.
/// [`Subscription::next_timeout`] waits at most a given time. Events that retention removed
/// before the subscription reached them come as one [`Error::Gap`] naming the seq range; the
/// subscription goes on after it. Any other error ends it.
///
/// Delivery is at-least-once across restarts when the consumer saves
/// [`Subscription::position`] after handling the events (see `docs/design.md`, "Subscriptions",
/// and [`crate::Checkpoints`]).
///
/// ```
/// use eventfile::{EventStore, ExpectedVersion, MemoryStore, NewEvent, Query};
/// use std::time::Duration;
/// let store = MemoryStore::new();
/// store.append("order-1", ExpectedVersion::Any, vec![NewEvent::new("Placed", serde_json::json!({}))])?;
/// let mut sub = store.subscribe(&Query::new().event_type("Placed"), 0)?;
/// // History first...
/// assert_eq!(sub.next().unwrap()?.seq, 1);
/// assert!(sub.next_timeout(Duration::from_millis(1))?.is_none());
/// assert!(sub.is_caught_up());
/// // ...then what is appended meanwhile.
/// store.append("order-2", ExpectedVersion::Any, vec![NewEvent::new("Placed", serde_json::json!({}))])?;
/// assert_eq!(sub.next().unwrap()?.stream, "order-2");
/// # Ok::<(), eventfile::Error>(())
/// ```
#[must_use = "a subscription does nothing until read"]
pub struct Subscription {
    feed: Box<dyn Feed>,
    query: Query,
    /// Everything matching up to here has been delivered.
    position: u64,
    /// The read in progress and the head it reads to.
    reading: Option<(FeedEvents, u64)>,
    /// Events still to deliver before the query's limit ends the subscription.
    remaining: Option<usize>,
    /// The subscription ends once its position reaches this.
    end: u64,
    caught_up: bool,
    finished: bool,
    failures: u32,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("query", &self.query)
            .field("position", &self.position)
            .field("caught_up", &self.caught_up)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Subscription {
    /// A subscription to the events `query` selects with a seq above `from`, served by `feed`.
    /// The query's `from_seq` and cursor raise the start further; its `to_seq` and limit end the
    /// subscription; it must read forward. A `from` above the head is allowed: the
    /// subscription waits for the log to reach it.
    pub fn new(feed: Box<dyn Feed>, query: &Query, from: u64) -> Result<Subscription> {
        query.validate()?;
        if query.direction == Direction::Backward
            || query.after.as_ref().is_some_and(|c| c.backward)
        {
            return Err(Error::invalid(
                "subscription",
                "a subscription reads forward; the query asks for a backward read",
            ));
        }
        let mut start = from;
        if let Some(f) = query.from_seq {
            start = start.max(f.saturating_sub(1));
        }
        if let Some(c) = &query.after {
            start = start.max(c.seq);
        }
        let mut q = query.clone();
        q.limit = None;
        q.after = None;
        q.from_seq = None;
        Ok(Subscription {
            feed,
            end: query.to_seq.unwrap_or(u64::MAX),
            query: q,
            position: start,
            reading: None,
            remaining: query.limit,
            caught_up: false,
            finished: false,
            failures: 0,
        })
    }

    /// The seq up to which every matching event has been delivered (events the query does not
    /// select count as passed): what a consumer saves as its checkpoint, and resumes from with
    /// `subscribe(query, position)`.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Whether the subscription has delivered everything that was visible when it last
    /// looked: it is live, not catching up. A subscription that falls behind (events are
    /// appended faster than it reads) is caught up again only once it reaches the head.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up
    }

    /// Whether the subscription has ended: the store was closed, the query's limit or `to_seq`
    /// was reached, or an error ended it.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next event, waiting at most `timeout` for one: `Ok(None)` when none came in time or
    /// the subscription has ended ([`Subscription::is_finished`] tells which).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<RecordedEvent>> {
        let deadline = Instant::now().checked_add(timeout);
        self.next_until(deadline)
    }

    /// The next event, waiting until `deadline` (`None`: for ever).
    pub fn next_until(&mut self, deadline: Option<Instant>) -> Result<Option<RecordedEvent>> {
        loop {
            if self.finished {
                return Ok(None);
            }
            if self.position >= self.end || self.remaining == Some(0) {
                self.finished = true;
                return Ok(None);
            }
            if let Some((events, upto)) = &mut self.reading {
                match events.next() {
                    Some(Ok(e)) if e.seq <= self.position => continue,
                    Some(Ok(e)) if e.seq > self.end => {
                        self.finished = true;
                        return Ok(None);
                    }
                    Some(Ok(e)) => {
                        self.position = e.seq;
                        self.failures = 0;
                        if let Some(r) = &mut self.remaining {
                            *r -= 1;
                        }
                        return Ok(Some(e));
                    }
                    Some(Err(err)) => {
                        self.reading = None;
                        self.failures += 1;
                        if let Some(e) = self.after_failure(err)? {
                            return Err(e);
                        }
                        continue;
                    }
                    None => {
                        self.position = self.position.max((*upto).min(self.end));
                        self.reading = None;
                        self.failures = 0;
                        continue;
                    }
                }
            }
            // An error here ends the subscription, as every error but an expired read does
            // (a database backend's head that could not be read).
            let Some((head, start)) = self
                .feed
                .bounds(false)
                .inspect_err(|_| self.finished = true)?
            else {
                self.finished = true;
                return Ok(None);
            };
            if head > self.position {
                if let Some(gap) = self.gap_below(start) {
                    return Err(gap);
                }
                self.caught_up = false;
                match self.feed.read_after(&self.query, self.position) {
                    Ok(Some(r)) => self.reading = Some(r),
                    Ok(None) => {
                        self.finished = true;
                        return Ok(None);
                    }
                    Err(err) if err.kind() == crate::error::ErrorKind::Expired => {
                        self.failures += 1;
                        if let Some(e) = self.after_failure(err)? {
                            return Err(e);
                        }
                    }
                    Err(err) => {
                        self.finished = true;
                        return Err(err);
                    }
                }
                continue;
            }
            self.caught_up = true;
            match self.feed.wait_past(self.position, deadline) {
                Waited::Advanced(_) => {}
                Waited::TimedOut => return Ok(None),
                Waited::Closed => {
                    self.finished = true;
                    return Ok(None);
                }
            }
        }
    }

    /// After a failed read (`failures` in a row): the gap retention opened below the position,
    /// to return and go on after; or `err` (or the failure to look), which ends the
    /// subscription, once the retries are spent; or nothing: read again.
    fn after_failure(&mut self, err: Error) -> Result<Option<Error>> {
        let bounds = self
            .feed
            .bounds(true)
            .inspect_err(|_| self.finished = true)?;
        let Some((_, start)) = bounds else {
            self.finished = true;
            return Ok(None);
        };
        if let Some(gap) = self.gap_below(start) {
            return Ok(Some(gap));
        }
        if self.failures >= RETRIES {
            self.finished = true;
            return Ok(Some(err));
        }
        Ok(None)
    }

    /// The events from the position up to `start` (the log start) are gone: moves past them
    /// and names them.
    fn gap_below(&mut self, start: u64) -> Option<Error> {
        if self.position + 1 >= start {
            return None;
        }
        let first = self.position + 1;
        let last = (start - 1).min(self.end);
        self.position = last;
        self.reading = None;
        self.failures = 0;
        Some(Error::Gap { first, last })
    }
}

impl Iterator for Subscription {
    type Item = Result<RecordedEvent>;

    /// Blocks until the next event; `None` once the subscription has ended. An
    /// [`Error::Gap`] is followed by the events after the gap.
    fn next(&mut self) -> Option<Result<RecordedEvent>> {
        match self.next_until(None) {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}
