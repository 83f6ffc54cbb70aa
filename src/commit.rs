//! Group commit and the published head: the one place that decides "seq N is now durable and
//! visible", and the one place a handle is poisoned.
//!
//! Appenders write their batch under the state lock, then wait here until it is durable. The
//! first to wait becomes the syncer: it runs one `fdatasync` for everything written so far,
//! without holding any lock, then publishes the new durable seq and wakes the others (okaywal's
//! `synchronize_locked`). A failed sync poisons the handle for good: Linux may drop the dirty
//! pages and report success on a retry, so it is never retried. With the weaker
//! [`Durability`] modes, written events are published at once and a background flusher (or
//! close) syncs. Publishing wakes the subscriptions and `wait_for` callers waiting on the head
//! ([`HeadWatch`]); each sync also writes the durable head for other processes (`head.rs`),
//! which in every mode see durable events only.
//!
//! This module owns the published head, the sync bookkeeping and the flusher thread; it never
//! touches a segment itself (the caller's closure runs the sync) and never takes the state
//! lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::head::HeadFile;
use crate::subscription::HeadWatch;

/// Group-commit bookkeeping.
struct SyncState {
    /// Highest seq known durable.
    durable: u64,
    /// Whether some appender is running an fdatasync now.
    syncing: bool,
    /// Set when a write or sync failed.
    poisoned: Option<String>,
}

/// The published head and the group commit of one open store.
pub(crate) struct Commit {
    durability: Durability,
    sync: Mutex<SyncState>,
    cv: Condvar,
    /// Highest seq readers may see.
    visible: AtomicU64,
    /// Wakes those waiting for the head to move.
    watch: Arc<HeadWatch>,
    /// The writer's published head for other processes.
    head_file: Option<HeadFile>,
}

impl Commit {
    /// A store whose events up to `head` are durable (just recovered); a writer passes the
    /// file it publishes its head in.
    pub(crate) fn new(durability: Durability, head: u64, head_file: Option<HeadFile>) -> Commit {
        Commit {
            durability,
            sync: Mutex::new(SyncState {
                durable: head,
                syncing: false,
                poisoned: None,
            }),
            cv: Condvar::new(),
            visible: AtomicU64::new(head),
            watch: Arc::new(HeadWatch::new(head)),
            head_file,
        }
    }

    /// What waiters on the head block on.
    pub(crate) fn watch(&self) -> &Arc<HeadWatch> {
        &self.watch
    }

    pub(crate) fn durability(&self) -> Durability {
        self.durability
    }

    fn lock(&self) -> MutexGuard<'_, SyncState> {
        self.sync.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The highest seq readers may see.
    pub(crate) fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Makes events up to `seq` visible. Callers: a sync that covered them, a read-only
    /// handle's refresh that found them durable in the writer's files, or (weaker modes) the
    /// write itself.
    fn publish(&self, seq: u64) {
        self.visible.fetch_max(seq, Ordering::AcqRel);
        self.watch.advance(seq);
        self.cv.notify_all();
    }

    /// Events up to `seq` are durable: publishes them here and tells other processes
    /// (`HEAD`), which see only durable events whatever the durability mode. A failure to
    /// tell them poisons the handle (the caller holds the sync lock).
    fn made_durable(&self, s: &mut SyncState, seq: u64) -> Result<()> {
        s.durable = s.durable.max(seq);
        self.publish(seq);
        let Some(h) = &self.head_file else {
            return Ok(());
        };
        h.publish(seq).inspect_err(|e| {
            s.poisoned.get_or_insert_with(|| e.to_string());
            self.cv.notify_all();
        })
    }

    /// A read-only handle caught up with the writer's files to `seq`.
    pub(crate) fn caught_up(&self, seq: u64) {
        self.publish(seq);
    }

    /// Events up to `seq` were written: visible at once unless appends wait for their sync.
    pub(crate) fn written(&self, seq: u64) {
        if self.durability != Durability::Fsync {
            self.publish(seq);
        }
    }

    /// Events up to `seq` were synced by someone other than a waiter (a segment roll, a close).
    pub(crate) fn durable(&self, seq: u64) -> Result<()> {
        let mut s = self.lock();
        self.made_durable(&mut s, seq)
    }

    /// Poisons the handle: every later wait fails with [`Error::Poisoned`].
    pub(crate) fn poison(&self, cause: &str) {
        self.lock().poisoned.get_or_insert_with(|| cause.to_owned());
        self.cv.notify_all();
    }

    /// Waits until every event up to `target` is durable, running `sync` itself if no other
    /// thread is. `sync` makes everything written so far durable and returns the seq that
    /// covers (it runs with no lock held here). With `force`, syncs in the weaker modes too. A
    /// failed sync poisons the handle and is returned.
    pub(crate) fn wait_durable(
        &self,
        target: u64,
        force: bool,
        sync: impl Fn() -> Result<u64>,
    ) -> Result<()> {
        if self.durability != Durability::Fsync && !force {
            return Ok(());
        }
        let mut s = self.lock();
        loop {
            // Durable first: events a sync covered are acknowledged even if the handle was
            // poisoned since (a sidecar the sealer failed to write, found by a roll or a close
            // on another clone). Answering `Poisoned` for them would have a caller write them
            // again.
            if s.durable >= target {
                return Ok(());
            }
            if let Some(cause) = &s.poisoned {
                return Err(Error::Poisoned {
                    cause: cause.clone(),
                });
            }
            if s.syncing {
                s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            s.syncing = true;
            drop(s);
            // Let appenders that are ready to run write first, so this sync covers them too. A
            // scheduling hint, not a timed delay: with nothing else runnable it returns at once.
            thread::yield_now();
            let r = sync();
            s = self.lock();
            s.syncing = false;
            match r {
                Ok(upto) => self.made_durable(&mut s, upto)?,
                Err(err) => {
                    s.poisoned.get_or_insert_with(|| err.to_string());
                    self.cv.notify_all();
                    return Err(err);
                }
            }
        }
    }
}

/// The background thread of [`Durability::Periodic`]: runs `tick` every `every` until stopped.
/// Dropping it stops and joins the thread, so whatever `tick` holds is released when the drop
/// returns.
pub(crate) struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Flusher {
    pub(crate) fn spawn(every: Duration, tick: impl Fn() + Send + 'static) -> Flusher {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("eventfile-flush".into())
            .spawn(move || {
                let (stopped, cv) = &*flag;
                let mut guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
                while !*guard {
                    let (g, _) = cv
                        .wait_timeout(guard, every)
                        .unwrap_or_else(|p| p.into_inner());
                    guard = g;
                    if *guard {
                        break;
                    }
                    drop(guard);
                    tick();
                    guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
                }
            })
            .expect("spawning the flush thread");
        Flusher {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let (flag, cv) = &*self.stop;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait for events a sync already covered answers Ok on a poisoned handle (a roll or a
    /// close poisoned it after syncing them); a wait past them gets the poison, and no wait
    /// runs a sync.
    #[test]
    fn a_poisoned_handle_still_acknowledges_what_is_durable() {
        let c = Commit::new(Durability::Fsync, 0, None);
        c.durable(5).unwrap();
        c.poison("a sidecar write failed");
        let no_sync = || -> Result<u64> { panic!("a poisoned handle runs no sync") };
        assert!(c.wait_durable(5, false, no_sync).is_ok());
        assert!(c.wait_durable(3, true, no_sync).is_ok());
        let err = c.wait_durable(6, false, no_sync).unwrap_err();
        assert!(
            matches!(&err, Error::Poisoned { cause } if cause == "a sidecar write failed"),
            "{err}"
        );
    }
}
