//! Following the log: the file store's subscriptions and `wait_for`, and the follower that
//! keeps a read-only handle up with a writer in another process.
//!
//! In the writer's process a subscription waits on the head that `commit.rs` publishes. A
//! read-only handle learns of new events from the writer's `HEAD` file (`head.rs`): its
//! follower thread, started by the handle's first subscription or wait, sleeps on an inotify
//! watch of that file (Linux) and refreshes the handle each time the writer rewrites it, with a
//! poll as the fallback where there is no inotify and as a safety net where there is
//! (`docs/design.md`, "Following across processes").
//!
//! This module owns the file store's [`Feed`] and the follower thread; it never holds a store
//! open (both hold it weakly, so closing the store ends them) and never decides what is visible
//! (the writer's published head does).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::query::Query;
use crate::store::{Gate, Inner, StopFlag, Store};
use crate::subscription::{Feed, FeedEvents, HeadWatch, Subscription, Waited};

/// How often a follower looks at the writer's head without a notification: the latency where
/// the file system gives none.
const POLL: Duration = Duration::from_millis(50);
/// How often it looks even with notifications (a file system that drops them).
const SAFETY_POLL: Duration = Duration::from_secs(1);

/// A store held weakly: what outlives the user's handles without keeping the store open. It
/// is used only inside the store's gate, so the last handle's drop waits for it to let go.
#[derive(Clone)]
struct WeakStore {
    inner: Weak<Inner>,
    gate: Arc<Gate>,
}

impl WeakStore {
    fn new(store: &Store) -> WeakStore {
        WeakStore {
            inner: Arc::downgrade(&store.inner),
            gate: Arc::clone(&store.handle.gate),
        }
    }

    /// Runs `f` on the store, unless it was closed.
    fn with<T>(&self, f: impl FnOnce(&Inner) -> T) -> Option<T> {
        let _inside = self.gate.enter()?;
        let inner = self.inner.upgrade()?;
        Some(f(&inner))
    }
}

/// The file store's feed of a subscription.
struct FileFeed {
    store: WeakStore,
    watch: Arc<HeadWatch>,
    read_only: bool,
}

impl Feed for FileFeed {
    fn read_after(&self, query: &Query, after: u64) -> Result<Option<(FeedEvents, u64)>> {
        self.store
            .with(|inner| {
                let mut events = inner.run(query.clone().from_seq(after + 1), true)?;
                // A subscription to the whole log catches up as `read_all` reads.
                if query.is_log_scan() {
                    events = events.scan();
                }
                let upto = events.visible_upto();
                Ok((Box::new(events) as FeedEvents, upto))
            })
            .transpose()
    }

    fn bounds(&self, fresh: bool) -> Result<Option<(u64, u64)>> {
        self.store
            .with(|inner| {
                if fresh || inner.stalled.load(Ordering::Acquire) {
                    inner.refresh()?;
                    inner.stalled.store(false, Ordering::Release);
                }
                let start = inner.lock_state().removed.log_start;
                Ok((inner.commit.visible(), start))
            })
            .transpose()
    }

    /// A read-only handle's waiter also wakes each [`SAFETY_POLL`] to see whether its
    /// follower has stalled, and if so answers as if the head moved: the subscription then asks
    /// [`Feed::bounds`], which refreshes and returns the error that ends it. Without this a
    /// subscriber waited for ever for events its handle could not apply (damaged after the
    /// writer published them), though every such error is meant to end a subscription.
    fn wait_past(&self, after: u64, deadline: Option<Instant>) -> Waited {
        if !self.read_only {
            return self.watch.wait_past(after, deadline);
        }
        wait_watching_stall(&self.watch, after, deadline, || {
            self.store
                .with(|inner| inner.stalled.load(Ordering::Acquire))
        })
    }
}

/// [`HeadWatch::wait_past`] for a read-only handle: a [`SAFETY_POLL`] at a time, answering
/// `Waited::Advanced(after)` (look again) once `stalled` says the follower stalled, and
/// `Waited::Closed` once it says the store is closed (`None`).
fn wait_watching_stall(
    watch: &HeadWatch,
    after: u64,
    deadline: Option<Instant>,
    stalled: impl Fn() -> Option<bool>,
) -> Waited {
    loop {
        let slice = Instant::now() + SAFETY_POLL;
        let until = deadline.map_or(slice, |d| d.min(slice));
        match watch.wait_past(after, Some(until)) {
            Waited::TimedOut if deadline.is_none_or(|d| Instant::now() < d) => match stalled() {
                None => return Waited::Closed,
                Some(true) => return Waited::Advanced(after),
                Some(false) => {}
            },
            waited => return waited,
        }
    }
}

impl Store {
    /// Every event `query` selects with a seq above `from`: first those already in the log,
    /// then each new one as soon as it is durable and visible, in seq order, with no gap and
    /// no duplicate (see [`Subscription`]). `from` is a position: 0 for the whole log, or a
    /// saved [`Subscription::position`]. A `from` above the head waits for the log to get
    /// there.
    ///
    /// A read-only handle follows the writer in another process on its own (no
    /// [`Store::refresh`] needed), and sees only what the writer has made durable: with the
    /// weaker [`crate::Durability`] modes, what the writer's flusher, `sync` or close has
    /// synced (or a segment roll), not each append.
    ///
    /// Closing the store (dropping its last handle) ends its subscriptions; the drop waits for
    /// a read a subscription has under way to let go of the store, so the store is closed when
    /// it returns.
    ///
    /// ```
    /// # use eventfile::{ExpectedVersion, NewEvent, Query, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path())?;
    /// let mut sub = store.subscribe(&Query::new().prefix("order-"), 0)?;
    /// let writer = store.clone();
    /// std::thread::spawn(move || {
    ///     writer.append("order-1", ExpectedVersion::Any, [NewEvent::new("Placed", serde_json::json!({}))])
    /// });
    /// assert_eq!(sub.next().unwrap()?.stream, "order-1");
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn subscribe(&self, query: &Query, from: u64) -> Result<Subscription> {
        self.inner.check_cursor(query)?;
        self.follow();
        let feed = FileFeed {
            store: WeakStore::new(self),
            watch: Arc::clone(self.inner.commit.watch()),
            read_only: self.inner.read_only,
        };
        Subscription::new(Box::new(feed), query, from)
    }

    /// Blocks until the event at `seq` is visible (the head is at or past it): true, or false
    /// if `timeout` passed first. For reading your own writes through another handle, and for
    /// tests. A read-only handle follows the writer meanwhile.
    pub fn wait_for(&self, seq: u64, timeout: Duration) -> Result<bool> {
        if self.head_seq() >= seq {
            return Ok(true);
        }
        self.follow();
        let watch = self.inner.commit.watch();
        if !self.inner.read_only {
            return Ok(watch.wait_for(seq, timeout));
        }
        // A read-only handle whose follower stalls answers the error a refresh meets (as its
        // subscriptions do, [`FileFeed::wait_past`]), rather than waiting out the timeout.
        let deadline = Instant::now().checked_add(timeout);
        let stalled = || Some(self.inner.stalled.load(Ordering::Acquire));
        loop {
            match wait_watching_stall(watch, seq - 1, deadline, stalled) {
                Waited::Advanced(head) if head >= seq => return Ok(true),
                Waited::Advanced(_) => {
                    self.inner.refresh()?;
                    self.inner.stalled.store(false, Ordering::Release);
                }
                Waited::TimedOut | Waited::Closed => return Ok(false),
            }
        }
    }

    /// Starts a read-only handle's follower, once.
    fn follow(&self) {
        if self.inner.read_only {
            self.handle
                .follower
                .get_or_init(|| spawn_follower(WeakStore::new(self), self.inner.dir.clone()));
        }
    }
}

/// Starts a read-only handle's follower of the writer: a thread that refreshes the handle
/// whenever the writer publishes a new head. The returned flag, owned by the handle, stops it
/// when the handle's last clone is dropped; the thread then ends at its next wake-up (at most
/// [`SAFETY_POLL`] later), holding nothing open meanwhile.
fn spawn_follower(store: WeakStore, dir: PathBuf) -> StopFlag {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let spawned = std::thread::Builder::new()
        .name("eventfile-follow".into())
        .spawn(move || follow(&store, &dir, &flag));
    if let Err(e) = spawned {
        log::warn!("could not start the follower thread: {e}");
    }
    StopFlag(stop)
}

/// The follower's loop.
fn follow(store: &WeakStore, dir: &std::path::Path, stop: &AtomicBool) {
    let mut notify = notify::Notify::new(dir);
    let wait = if notify.is_some() { SAFETY_POLL } else { POLL };
    let mut seen: Option<u64> = None;
    let mut failures = 0u32;
    while !stop.load(Ordering::Acquire) {
        let looked = store.with(|inner| {
            let head = crate::head::read_head(inner.storage.as_ref(), dir);
            // Without a published head (a writer of an earlier version) every look refreshes.
            let changed = match &head {
                Ok(Some(h)) => seen != Some(*h) && *h > inner.commit.visible(),
                Ok(None) => true,
                Err(_) => false,
            };
            if !changed {
                return Ok(());
            }
            inner.refresh()?;
            seen = head.ok().flatten();
            Ok::<(), Error>(())
        });
        match looked {
            None => return,
            Some(Ok(())) => {
                failures = 0;
                store.with(|inner| inner.stalled.store(false, Ordering::Release));
            }
            Some(Err(e)) => {
                failures += 1;
                // The files may be mid-change; a persistent failure is logged, not spun on,
                // and the handle's waiters are told (they meet the error themselves).
                if failures == 3 {
                    log::warn!("following {}: {e}", dir.display());
                    store.with(|inner| inner.stalled.store(true, Ordering::Release));
                }
            }
        }
        match &mut notify {
            Some(n) => n.wait(wait),
            None => std::thread::sleep(wait),
        }
    }
}

#[cfg(target_os = "linux")]
mod notify {
    //! inotify through rustix: a watch on the store's `HEAD` (rewritten in place by the writer
    //! each time it publishes) and on the directory (for a `HEAD` created after the follower
    //! started).

    use std::mem::MaybeUninit;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::fd::OwnedFd;
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

    pub(super) struct Notify {
        fd: OwnedFd,
        head: PathBuf,
        head_watched: bool,
    }

    impl Notify {
        /// `None` where inotify is unavailable (then the follower polls).
        pub(super) fn new(dir: &Path) -> Option<Notify> {
            let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
            inotify::add_watch(&fd, dir, WatchFlags::CREATE | WatchFlags::MOVED_TO).ok()?;
            let mut n = Notify {
                fd,
                head: dir.join(crate::head::HEAD_FILE),
                head_watched: false,
            };
            n.watch_head();
            Some(n)
        }

        fn watch_head(&mut self) {
            if !self.head_watched {
                self.head_watched =
                    inotify::add_watch(&self.fd, &self.head, WatchFlags::MODIFY).is_ok();
            }
        }

        /// Blocks until the directory or `HEAD` changed, or `timeout` passed.
        pub(super) fn wait(&mut self, timeout: Duration) {
            let ts = Timespec {
                tv_sec: timeout.as_secs() as _,
                tv_nsec: timeout.subsec_nanos() as _,
            };
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            // An error (an interrupted wait) is a wake-up like any other.
            let _ = poll(&mut fds, Some(&ts));
            let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
            let mut events = inotify::Reader::new(&self.fd, &mut buf);
            while events.next().is_ok() {}
            self.watch_head();
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod notify {
    //! No notification here: the follower polls.

    pub(super) struct Notify;

    impl Notify {
        pub(super) fn new(_: &std::path::Path) -> Option<Notify> {
            None
        }

        pub(super) fn wait(&mut self, _: std::time::Duration) {}
    }
}
