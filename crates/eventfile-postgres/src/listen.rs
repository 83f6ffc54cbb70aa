//! How the store learns of commits it did not make: a thread per store holding a connection
//! that, while the store has subscriptions or waiters ([`Interest`]), `LISTEN`s on the schema's
//! channel (an append sends `NOTIFY` with the new head inside its transaction, so it is
//! delivered at commit), advancing the store's [`HeadWatch`]; and, since a notification can be
//! lost with a connection (and none is sent while no store listens), a poll of the head whenever
//! none came for [`POLL`] and after every reconnection. Also the [`Feed`] that serves
//! subscriptions.
//!
//! A listening connection also holds the schema's listeners' advisory lock, shared and
//! session-scoped: the lean append (`append_one`) sends its `NOTIFY` only when it cannot take
//! that lock exclusively, that is, while some store listens. So an append that no one listens
//! for wakes no one: on the server, a `NOTIFY` signals every listening backend, which forwards
//! it to its client's thread (a measured 20 to 30 µs of CPU per append over the three
//! processes, and two wake-ups). The order that makes this safe: `LISTEN`, then the shared lock
//! (which waits for an append holding it exclusively to commit), then a read of the head, so a
//! commit is either notified or seen by that read.
//!
//! It owns the watch's advances from outside this process; it never writes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use eventfile::subscription::{Feed, FeedEvents, HeadWatch, Waited};
use eventfile::{Query, Result};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config};

use crate::lookup::head;
use crate::pool::connect;
use crate::store::{PostgresStore, Shared};

/// Longest wait without a notification before the head is read anyway; also how soon the
/// thread notices that its store was dropped.
pub(crate) const POLL: Duration = Duration::from_millis(250);

/// How many subscriptions and waiters the store has now: the listener thread `LISTEN`s only
/// while there is one.
#[derive(Default)]
pub(crate) struct Interest {
    count: AtomicUsize,
    /// The listener thread, woken when the first subscription or waiter comes.
    thread: OnceLock<Thread>,
}

impl Interest {
    /// Counts one more subscription or waiter until the returned guard is dropped.
    pub(crate) fn hold(self: &Arc<Interest>) -> Held {
        if self.count.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
        Held(Arc::clone(self))
    }

    /// Names the thread that [`Interest::hold`] wakes.
    pub(crate) fn set_thread(&self, thread: Thread) {
        let _ = self.thread.set(thread);
    }

    fn wanted(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }
}

/// One subscription's or waiter's part of the [`Interest`].
pub(crate) struct Held(Arc<Interest>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Starts (`on`) or stops listening on `channel`, with the listeners' lock.
fn set_listening(
    c: &mut Client,
    channel: &str,
    on: bool,
) -> std::result::Result<(), postgres::Error> {
    let key = format!("hashtextextended('eventfile listeners {channel}', 0)");
    if on {
        c.batch_execute(&format!(
            "LISTEN \"{channel}\"; SELECT pg_advisory_lock_shared({key})"
        ))
    } else {
        c.batch_execute(&format!(
            "UNLISTEN \"{channel}\"; SELECT pg_advisory_unlock_shared({key})"
        ))
    }
}

/// Runs the listener until `stop` is set: each notification's head, or the polled head,
/// advances `watch`; it listens while `interest` wants it.
pub(crate) fn run(
    config: Config,
    schema: String,
    channel: String,
    mut client: Option<Client>,
    watch: Arc<HeadWatch>,
    stop: Arc<AtomicBool>,
    interest: Arc<Interest>,
) {
    let mut listening = false;
    while !stop.load(Ordering::Acquire) {
        let Some(c) = client.as_mut() else {
            match connect(&config) {
                Ok(mut c) => {
                    // Whatever was committed while no one listened.
                    if let Ok(h) = head(&mut c, &schema) {
                        watch.advance(h);
                    }
                    client = Some(c);
                    listening = false;
                }
                // Try again after a pause: the server is away.
                Err(_) => std::thread::sleep(POLL),
            }
            continue;
        };
        let want = interest.wanted();
        if want != listening {
            if set_listening(c, &channel, want).is_err() {
                client = None;
                continue;
            }
            listening = want;
            if want {
                // What was committed before the lock was granted, notified or not.
                match head(c, &schema) {
                    Ok(h) => watch.advance(h),
                    Err(_) => client = None,
                }
                continue;
            }
        }
        if !listening {
            // Nothing to receive: wait for a first subscription or waiter, or the poll.
            std::thread::park_timeout(POLL);
            if interest.wanted() {
                continue;
            }
            match head(c, &schema) {
                Ok(h) => watch.advance(h),
                Err(_) => client = None,
            }
            continue;
        }
        let next = c.notifications().timeout_iter(POLL).next();
        match next {
            Ok(Some(n)) => {
                if let Ok(h) = n.payload().parse::<u64>() {
                    watch.advance(h);
                }
            }
            Ok(None) => match head(c, &schema) {
                Ok(h) => watch.advance(h),
                Err(_) => client = None,
            },
            Err(_) => client = None,
        }
    }
}

/// A subscription's feed: holds the store weakly, so that dropping the store ends it.
pub(crate) struct PgFeed {
    pub(crate) shared: Weak<Shared>,
    pub(crate) watch: Arc<HeadWatch>,
    /// Keeps the listener listening while the subscription lives.
    pub(crate) _interest: Held,
}

impl PgFeed {
    fn store(&self) -> Option<PostgresStore> {
        self.shared.upgrade().map(PostgresStore::from_shared)
    }
}

impl Feed for PgFeed {
    fn read_after(&self, query: &Query, after: u64) -> Result<Option<(FeedEvents, u64)>> {
        let Some(store) = self.store() else {
            return Ok(None);
        };
        store.run(&query.clone().from_seq(after + 1)).map(Some)
    }

    fn bounds(&self, _fresh: bool) -> Result<Option<(u64, u64)>> {
        match self.store() {
            Some(s) => Ok(Some((s.read_head()?, 1))),
            None => Ok(None),
        }
    }

    fn wait_past(&self, after: u64, deadline: Option<Instant>) -> Waited {
        self.watch.wait_past(after, deadline)
    }
}
