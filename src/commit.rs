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
    /// The tickets of the `fdatasync`s of the log running now, the group commit's and a
    /// roll's alike ([`Commit::guarded_sync`]): two at most.
    in_flight: Vec<u64>,
    /// The ticket the next sync takes.
    next_ticket: u64,
    /// Set for good once a sync failed: the lowest ticket of those that failed, and its error
    /// (the lowest, so that a success can tell whether any sync that overlapped it failed).
    sync_failed: Option<(u64, String)>,
    /// Syncs that succeeded and wait for overlapping ones to end (on `Commit::overlap`).
    overlap_waiters: u32,
    /// Set for good once any sync failed (`sync_failed`, or a waiter's sync): from then on no
    /// wait runs a sync again, poisoned or not (what a failed writeback dropped, a later sync
    /// reports as written).
    sync_error: bool,
}

/// The published head and the group commit of one open store.
pub(crate) struct Commit {
    durability: Durability,
    sync: Mutex<SyncState>,
    cv: Condvar,
    /// Where a sync that succeeded waits for those that overlapped it ([`Commit::guarded_sync`]);
    /// apart from `cv`, so that the group commit's waiters are not woken by every sync's end.
    overlap: Condvar,
    /// Highest seq readers may see.
    visible: AtomicU64,
    /// Wakes those waiting for the head to move.
    watch: Arc<HeadWatch>,
    /// The writer's published head for other processes.
    head_file: Option<HeadFile>,
}

/// A sync running in [`Commit::guarded_sync`]: dropped only if it panicked (it is forgotten
/// when it returns), which ends it as failed, so that no one waits for it forever.
struct Running<'a> {
    commit: &'a Commit,
    ticket: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut s = self.commit.lock();
        self.commit.ended(
            &mut s,
            self.ticket,
            Some("an fdatasync panicked".to_owned()),
        );
    }
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
                in_flight: Vec::new(),
                next_ticket: 0,
                sync_failed: None,
                overlap_waiters: 0,
                sync_error: false,
            }),
            cv: Condvar::new(),
            overlap: Condvar::new(),
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

    /// The highest seq a sync covered.
    pub(crate) fn durable_upto(&self) -> u64 {
        self.lock().durable
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

    /// Runs `sync`, one `fdatasync` of the log, so that no sync's success is believed while
    /// another one that overlapped it may have failed. Linux reports a failed writeback once
    /// per open file description (errseq): of two syncs of the same file running together (a
    /// waiter's group-commit sync, and a segment roll's, which runs under the state lock
    /// outside the group commit), the first to check gets EIO and the other success, though
    /// the pages both covered are lost. So a sync that succeeds waits for those that were
    /// running when it ended, and fails if one of them failed (with [`Error::Poisoned`],
    /// naming that failure); after a failure no sync runs again. A `sync` that panics counts
    /// as failed. Takes only this module's lock, never while `sync` runs, and never waits on
    /// anything that needs another lock: a roll calls it under the state lock.
    pub(crate) fn guarded_sync(&self, sync: impl FnOnce() -> Result<()>) -> Result<()> {
        let ticket = {
            let mut s = self.lock();
            if let Some((_, cause)) = &s.sync_failed {
                return Err(Error::Poisoned {
                    cause: cause.clone(),
                });
            }
            let t = s.next_ticket;
            s.next_ticket += 1;
            s.in_flight.push(t);
            t
        };
        let running = Running {
            commit: self,
            ticket,
        };
        let r = sync();
        std::mem::forget(running);
        let mut s = self.lock();
        self.ended(&mut s, ticket, r.as_ref().err().map(Error::to_string));
        r?;
        // The syncs running now started before this one ended: they overlapped it.
        let mark = s.next_ticket;
        let overlapping_failed =
            |s: &SyncState| s.sync_failed.as_ref().is_some_and(|(t, _)| *t < mark);
        s.overlap_waiters += 1;
        let mut s = self
            .overlap
            .wait_while(s, |s| {
                s.in_flight.iter().any(|&t| t < mark) && !overlapping_failed(s)
            })
            .unwrap_or_else(|p| p.into_inner());
        s.overlap_waiters -= 1;
        match &s.sync_failed {
            Some((t, cause)) if *t < mark => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The sync of `ticket` ended, with `failure` if it failed; wakes those waiting on it.
    fn ended(&self, s: &mut SyncState, ticket: u64, failure: Option<String>) {
        s.in_flight.retain(|&t| t != ticket);
        if let Some(cause) = failure {
            if s.sync_failed.as_ref().is_none_or(|(t, _)| ticket < *t) {
                s.sync_failed = Some((ticket, cause.clone()));
            }
            s.sync_error = true;
            s.poisoned.get_or_insert(cause);
            self.cv.notify_all();
        }
        if s.overlap_waiters > 0 {
            self.overlap.notify_all();
        }
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
        let mut synced_poisoned = false;
        loop {
            // Durable first: events a sync covered are acknowledged even if the handle was
            // poisoned since (a sidecar the sealer failed to write, found by a roll or a close
            // on another clone). Answering `Poisoned` for them would have a caller write them
            // again.
            if s.durable >= target {
                return Ok(());
            }
            // A handle poisoned by something other than a failed sync (a failed write, a
            // sidecar the sealer could not write, `HEAD`) refuses new appends, but what it
            // wrote before is as good as ever, and a sync makes it durable: the flusher of
            // `Periodic` mode, a close, or an appender whose batch was written before the
            // failure still syncs it. Before, such a handle synced nothing more, so appends
            // acknowledged in the weaker modes stayed in the page cache for as long as the
            // handle lived. After a failed sync nothing is believed again (`guarded_sync`).
            let poisoned = s.poisoned.clone();
            if let Some(cause) = &poisoned
                && (s.sync_error || synced_poisoned)
            {
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
            // A poisoned handle's sync covers what was written before the failure; a target
            // it does not reach is refused after it, not synced for ever.
            synced_poisoned |= poisoned.is_some();
            match r {
                Ok(upto) => self.made_durable(&mut s, upto)?,
                Err(err) => {
                    s.poisoned.get_or_insert_with(|| err.to_string());
                    s.sync_error = true;
                    self.cv.notify_all();
                    return Err(err);
                }
            }
        }
    }
}

/// Syncs asked for before anyone waits on them: a large batch asks for its sync as soon as its
/// bytes are written (`writer.rs`), and the handle's thread ([`AheadThread`]) runs it through
/// [`Commit::wait_durable`] while the appender, still under the state lock, adds the batch to
/// the indexes. The two used to run one after the other: a batch of 1,000 new streams spent
/// some 300 µs on its index entries and then some 400 µs in `fdatasync`.
///
/// Only a hint: a request no thread serves, or serves late, changes nothing but time, since the
/// appender then waits with [`Commit::wait_durable`] as ever and runs the sync itself if no
/// one is. The sync it asks for covers the bytes written before the request (the thread syncs
/// the file named, which every later segment follows only after a roll synced it). A newer
/// request replaces an older one not yet taken: its sync covers both.
pub(crate) struct Ahead<T> {
    slot: Mutex<AheadSlot<T>>,
    /// Wakes the thread for a request, or to stop.
    work: Condvar,
    /// Wakes those waiting for a sync's outcome ([`Ahead::take_failure`]).
    done: Condvar,
}

struct AheadSlot<T> {
    /// Whether a thread serves requests (none is made otherwise).
    serving: bool,
    stop: bool,
    /// The newest request not yet taken: the last seq its sync covers, and what to sync.
    next: Option<(u64, T)>,
    /// The seq of the request being served.
    running: Option<u64>,
    /// The error of a failed sync, and the request's seq: its appender reports it (the rest
    /// see the poisoned handle), as the appender whose own sync fails does.
    failed: Option<(u64, Error)>,
}

impl<T> Default for Ahead<T> {
    fn default() -> Ahead<T> {
        Ahead {
            slot: Mutex::new(AheadSlot {
                serving: false,
                stop: false,
                next: None,
                running: None,
                failed: None,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        }
    }
}

impl<T> Ahead<T> {
    fn lock(&self) -> MutexGuard<'_, AheadSlot<T>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for a sync covering events up to `upto`, of `what`. Never waits for a sync.
    pub(crate) fn request(&self, upto: u64, what: T) {
        let mut s = self.lock();
        if !s.serving || s.stop {
            return;
        }
        s.next = Some((upto, what));
        drop(s);
        self.work.notify_one();
    }

    /// The error of the failed sync asked for up to exactly `upto`, once: waits for the
    /// outcome if that sync is still being served (its failure poisons the handle before the
    /// thread records it). Only for an appender that met the poison, so never on the way of a
    /// sync that succeeded.
    pub(crate) fn take_failure(&self, upto: u64) -> Option<Error> {
        let mut s = self.lock();
        while s.running == Some(upto) {
            s = self.done.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        match &s.failed {
            Some((at, _)) if *at == upto => s.failed.take().map(|(_, e)| e),
            _ => None,
        }
    }

    /// Serves requests with `run` until stopped: `run(upto, what)` syncs and waits as
    /// [`Commit::wait_durable`] does.
    fn serve(&self, run: impl Fn(u64, T) -> Result<()>) {
        let mut s = self.lock();
        loop {
            if s.stop {
                return;
            }
            let Some((upto, what)) = s.next.take() else {
                s = self.work.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            s.running = Some(upto);
            drop(s);
            let r = run(upto, what);
            s = self.lock();
            s.running = None;
            if let Err(e) = r {
                s.failed = Some((upto, e));
            }
            self.done.notify_all();
        }
    }
}

/// The thread serving an [`Ahead`]. Dropping it stops and joins the thread, so whatever `run`
/// holds is released when the drop returns.
pub(crate) struct AheadThread<T: Send + 'static> {
    ahead: Arc<Ahead<T>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl<T: Send + 'static> AheadThread<T> {
    pub(crate) fn spawn(
        ahead: Arc<Ahead<T>>,
        run: impl Fn(u64, T) -> Result<()> + Send + 'static,
    ) -> AheadThread<T> {
        ahead.lock().serving = true;
        let served = Arc::clone(&ahead);
        let thread = thread::Builder::new()
            .name("eventfile-sync".into())
            .spawn(move || served.serve(run))
            .expect("spawning the sync thread");
        AheadThread {
            ahead,
            thread: Some(thread),
        }
    }
}

impl<T: Send + 'static> Drop for AheadThread<T> {
    fn drop(&mut self) {
        {
            let mut s = self.ahead.lock();
            s.stop = true;
            s.next = None;
        }
        self.ahead.work.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
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

    /// Runs `held` on another thread until it has started, then `second` (which is given the
    /// way to let `held` finish, and after which it finishes anyway); returns both outcomes.
    fn overlapping(
        held: impl FnOnce() -> Result<()> + Send + 'static,
        second: impl FnOnce(&dyn Fn()) -> Result<()>,
    ) -> (Result<()>, Result<()>, Arc<Commit>) {
        use std::sync::mpsc;
        let commit = Arc::new(Commit::new(Durability::Fsync, 0, None));
        let (started, running) = mpsc::channel();
        let (finish, wait_to_finish) = mpsc::channel::<()>();
        let c = Arc::clone(&commit);
        let first = thread::spawn(move || {
            c.guarded_sync(|| {
                started.send(()).unwrap();
                wait_to_finish.recv().unwrap();
                held()
            })
        });
        running.recv().unwrap();
        let release = move || {
            let _ = finish.send(());
        };
        let second = commit.guarded_sync(|| second(&release));
        release();
        (first.join().unwrap(), second, commit)
    }

    fn eio() -> Result<()> {
        Err(Error::io("fdatasync", "seg", std::io::Error::other("EIO")))
    }

    /// The failure ends first; the success beside it, ending after, fails too; after a failed
    /// sync no other one runs (Linux may have dropped the pages and would report success).
    #[test]
    fn no_sync_is_believed_beside_or_after_a_failed_one() {
        let (beside, failed, commit) = overlapping(|| Ok(()), |_| eio());
        assert!(matches!(failed, Err(Error::Io { .. })), "{failed:?}");
        let err = beside.unwrap_err();
        assert!(err.to_string().contains("EIO"), "{err}");
        let err = commit
            .guarded_sync(|| panic!("a sync ran after a failed one"))
            .unwrap_err();
        assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    }

    /// The success ends first and waits; the failure it overlapped comes after and fails it.
    #[test]
    fn a_success_that_ends_first_waits_for_the_failure_beside_it() {
        let (failed, waited, _) = overlapping(eio, |release| {
            release();
            Ok(())
        });
        assert!(matches!(failed, Err(Error::Io { .. })), "{failed:?}");
        assert!(matches!(waited, Err(Error::Poisoned { .. })), "{waited:?}");
    }

    /// A failure of a sync that began after this one ended, recorded first, does not hide the
    /// failure of one that overlapped it.
    #[test]
    fn a_later_failure_does_not_hide_an_overlapping_one() {
        let commit = Commit::new(Durability::Fsync, 0, None);
        let mut s = commit.lock();
        // Ticket 0 (overlapping, still running) and this sync's mark 2 (it was ticket 1).
        s.in_flight.push(0);
        s.next_ticket = 3;
        s.in_flight.push(2);
        commit.ended(&mut s, 2, Some("later".into()));
        commit.ended(&mut s, 0, Some("overlapping".into()));
        assert_eq!(s.sync_failed, Some((0, "overlapping".to_owned())));
    }

    /// Two overlapping syncs that both succeed are both believed.
    #[test]
    fn overlapping_successes_both_succeed() {
        let (a, b, commit) = overlapping(
            || Ok(()),
            |release| {
                release();
                Ok(())
            },
        );
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        assert!(commit.guarded_sync(|| Ok(())).is_ok());
    }

    /// A sync that panics counts as failed: the one beside it does not wait for it forever,
    /// and fails; none runs after it.
    #[test]
    fn a_sync_that_panics_fails_the_one_beside_it() {
        let commit = Arc::new(Commit::new(Durability::Fsync, 0, None));
        let c = Arc::clone(&commit);
        let (started, running) = std::sync::mpsc::channel();
        let (finish, wait_to_finish) = std::sync::mpsc::channel::<()>();
        let held = thread::spawn(move || {
            c.guarded_sync(|| {
                started.send(()).unwrap();
                wait_to_finish.recv().unwrap();
                Ok(())
            })
        });
        running.recv().unwrap();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            commit.guarded_sync(|| {
                finish.send(()).unwrap();
                panic!("the storage panicked")
            })
        }));
        assert!(unwound.is_err());
        let err = held.join().unwrap().unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        assert!(matches!(
            commit.guarded_sync(|| Ok(())),
            Err(Error::Poisoned { .. })
        ));
    }

    /// A sync asked for ahead runs on the thread through the group commit: an appender that
    /// waits meanwhile runs none of its own, and is answered by it. A failed one poisons the
    /// handle, and its error goes to the appender that asked for it, once.
    #[test]
    fn a_sync_asked_for_ahead_answers_its_appender() {
        use std::sync::mpsc;
        let commit = Arc::new(Commit::new(Durability::Fsync, 0, None));
        let ahead: Arc<Ahead<bool>> = Arc::default();
        let (started, syncing) = mpsc::channel();
        let (go, wait_for_go) = mpsc::channel::<()>();
        let c = Arc::clone(&commit);
        let thread = AheadThread::spawn(Arc::clone(&ahead), move |upto, fail| {
            c.wait_durable(upto, false, || {
                started.send(upto).unwrap();
                wait_for_go.recv().unwrap();
                match fail {
                    true => Err(Error::io("fdatasync", "seg", std::io::Error::other("EIO"))),
                    false => Ok(upto),
                }
            })
        });
        let no_sync = || -> Result<u64> { panic!("the appender ran a sync of its own") };

        ahead.request(3, false);
        assert_eq!(syncing.recv().unwrap(), 3);
        go.send(()).unwrap();
        commit.wait_durable(3, false, no_sync).unwrap();
        assert_eq!(commit.visible(), 3);
        assert!(ahead.take_failure(3).is_none());

        ahead.request(7, true);
        assert_eq!(syncing.recv().unwrap(), 7);
        go.send(()).unwrap();
        let err = commit.wait_durable(7, false, no_sync).unwrap_err();
        assert!(matches!(err, Error::Poisoned { .. }), "{err}");
        assert!(ahead.take_failure(5).is_none());
        let err = ahead.take_failure(7).expect("the failed sync's error");
        assert!(
            matches!(
                err,
                Error::Io {
                    op: "fdatasync",
                    ..
                }
            ),
            "{err}"
        );
        assert!(ahead.take_failure(7).is_none(), "given once");
        assert_eq!(commit.visible(), 3);
        // Stopped and joined; a request after that is dropped.
        drop(thread);
        ahead.request(9, false);
        assert!(matches!(
            commit.wait_durable(9, false, no_sync),
            Err(Error::Poisoned { .. })
        ));
    }

    /// A wait for events a sync already covered answers Ok on a poisoned handle (a roll or a
    /// close poisoned it after syncing them). A wait past them, on a handle poisoned by anything
    /// but a failed sync (a sidecar, a write: what was written before is sound), runs one sync
    /// and is answered by it, with the poison if that sync does not reach it; once a sync has
    /// failed, no wait runs one.
    #[test]
    fn a_poisoned_handle_still_acknowledges_what_is_durable() {
        let c = Commit::new(Durability::Fsync, 0, None);
        c.durable(5).unwrap();
        c.poison("a sidecar write failed");
        let no_sync = || -> Result<u64> { panic!("a poisoned handle runs no sync") };
        assert!(c.wait_durable(5, false, no_sync).is_ok());
        assert!(c.wait_durable(3, true, no_sync).is_ok());
        // Written up to 7 before the failure: the sync covers it.
        assert!(c.wait_durable(7, false, || Ok(7)).is_ok());
        let err = c.wait_durable(9, false, || Ok(7)).unwrap_err();
        assert!(
            matches!(&err, Error::Poisoned { cause } if cause == "a sidecar write failed"),
            "{err}"
        );
        let failed = || -> Result<u64> { Err(Error::invalid("sync", "failed")) };
        assert!(c.wait_durable(9, true, failed).is_err());
        let err = c.wait_durable(9, false, no_sync).unwrap_err();
        assert!(
            matches!(&err, Error::Poisoned { cause } if cause == "a sidecar write failed"),
            "{err}"
        );
    }
}
