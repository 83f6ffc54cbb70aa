//! Subscriptions on SQLite: the [`Feed`] that serves them (the head read from the file first,
//! then the events up to it) and the follower thread that notices other processes' commits
//! (`PRAGMA data_version`, polled every [`POLL`] while anyone waits) and advances the
//! [`HeadWatch`].
//!
//! This module owns waiting for the head; it never writes, and never keeps the store open: the
//! feed holds it weakly, and the follower holds only the watch.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use eventfile::subscription::{Feed, FeedEvents, HeadWatch, Waited};
use eventfile::{Query, Result};

use crate::options::Synchronous;
use crate::store::{Inner, Open};

/// How often the follower looks for another process's commit while anyone waits.
pub(crate) const POLL: Duration = Duration::from_millis(2);

/// The follower's state: how many wait, and whether the store is closed.
#[derive(Default)]
struct FollowState {
    waiting: usize,
    closed: bool,
}

/// Notices commits made by other connections (other processes, other handles) and publishes
/// them to the watch.
pub(crate) struct Follower {
    state: Mutex<FollowState>,
    cv: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Follower {
    /// A follower of `path`, publishing to `watch`: its thread sleeps while nobody waits.
    pub(crate) fn start(path: PathBuf, sync: Synchronous, watch: Arc<HeadWatch>) -> Arc<Follower> {
        let f = Arc::new(Follower {
            state: Mutex::new(FollowState::default()),
            cv: Condvar::new(),
            thread: Mutex::new(None),
        });
        let me = Arc::clone(&f);
        let spawned = std::thread::Builder::new()
            .name("eventfile-sqlite-follower".to_owned())
            .spawn(move || me.run(&path, sync, &watch));
        if let Ok(handle) = spawned {
            *f.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        }
        f
    }

    fn lock(&self) -> MutexGuard<'_, FollowState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self, path: &std::path::Path, sync: Synchronous, watch: &HeadWatch) {
        let mut conn = None;
        let mut last_version: Option<i64> = None;
        loop {
            {
                let mut s = self.lock();
                while s.waiting == 0 && !s.closed {
                    s = self.cv.wait(s).unwrap_or_else(PoisonError::into_inner);
                    last_version = None;
                }
                if s.closed {
                    return;
                }
                let (s, _) = self
                    .cv
                    .wait_timeout(s, POLL)
                    .unwrap_or_else(PoisonError::into_inner);
                if s.closed {
                    return;
                }
            }
            if conn.is_none() {
                conn = crate::connection::open(path, false, sync).ok();
            }
            let Some(c) = &conn else {
                continue;
            };
            let Ok(v) = c.pragma_query_value(None, "data_version", |r| r.get::<_, i64>(0)) else {
                continue;
            };
            if last_version == Some(v) {
                continue;
            }
            // The version is taken as seen only once the head was read: a failed read (a busy
            // lock, an I/O error) is tried again at the next poll, not passed over until some
            // later commit changes the version again.
            if let Ok(head) = crate::rows::head(c, path) {
                last_version = Some(v);
                watch.advance(head);
            }
        }
    }

    /// Someone waits until the guard is dropped: the follower polls meanwhile.
    pub(crate) fn waiting(self: &Arc<Self>) -> Waiting {
        self.lock().waiting += 1;
        self.cv.notify_all();
        Waiting(Arc::clone(self))
    }

    /// The store is closed: the thread ends, and is joined.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
    }
}

/// A waiter registered with the follower.
pub(crate) struct Waiting(Arc<Follower>);

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.waiting = s.waiting.saturating_sub(1);
    }
}

/// A subscription's source: the store, held weakly.
pub(crate) struct SqliteFeed {
    pub(crate) inner: Weak<Inner>,
    pub(crate) open: Weak<Open>,
    pub(crate) watch: Arc<HeadWatch>,
    /// Keeps the follower polling for as long as the subscription lives.
    pub(crate) _waiting: Waiting,
}

impl SqliteFeed {
    fn inner(&self) -> Option<Arc<Inner>> {
        let _open = self.open.upgrade()?;
        self.inner.upgrade()
    }
}

impl Feed for SqliteFeed {
    fn read_after(&self, query: &Query, after: u64) -> Result<Option<(FeedEvents, u64)>> {
        let Some(inner) = self.inner() else {
            return Ok(None);
        };
        // `run` reads the head first, then only events up to it.
        inner.run(&query.clone().from_seq(after + 1)).map(Some)
    }

    fn bounds(&self, _fresh: bool) -> Result<Option<(u64, u64)>> {
        let Some(inner) = self.inner() else {
            return Ok(None);
        };
        Ok(Some((inner.read_head()?, 1)))
    }

    fn wait_past(&self, after: u64, deadline: Option<Instant>) -> Waited {
        self.watch.wait_past(after, deadline)
    }
}
