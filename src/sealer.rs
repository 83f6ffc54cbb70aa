//! The sealer: encodes and writes a rolled segment's index sidecar off the appending thread.
//!
//! A roll (`writer.rs`) syncs the full segment, seals it in memory, creates the next segment and
//! lets the append go on; the sealer meanwhile encodes the segment's index (sorting its terms and
//! ids: 50 ms or more for a 64 MiB segment of 250,000 events), holds the encoded index in memory
//! for reads (`Sealed::encoded`; a read of that segment before then waits for it), writes the
//! sidecar as every sidecar is written (temp, fsync, rename, directory fsync:
//! `files::write_atomic`), and lets the segment drop its in-memory copy (`Sealed::written`):
//! later reads open the file, checking it in full first. On the appending thread, a 1,000-event
//! batch that rolled took 88 to 420 ms, 7 to 30% of the time of all batches; now 2 to 38 ms,
//! 1.3 to 4.4% (issue 16, `examples/batch_times.rs`, on a shared machine).
//!
//! Why a crash at any instant is still safe: a sidecar is a cache. The segment was synced
//! before the next one was created, as before; a crash before the sidecar is durable leaves it
//! missing (or a stray `*.tmp`, removed on open), and the next open rebuilds it by scanning the
//! segment, as it does any missing sidecar. The summary a clean close writes is written after
//! the sealer is done.
//!
//! At most one sidecar is in hand: a roll first waits for the previous one. Everything else that
//! writes or removes sidecars waits for it too (retention, compaction, `reindex`, a closing
//! writer), through `Sealer::wait`. A failed write is reported as the failed roll it used to be,
//! by the next append, roll, retention, compaction or `reindex` of the handle, which poisons the
//! handle (`Sealer::failed`), or by `Store::close`; a failure that only a dropped handle sees is
//! left to the next open, which rebuilds the sidecar. `Sealer::wait` holds its slot while it
//! joins, so that every caller waits, not just the first. The sealed segment's emptied index
//! comes back for a later segment to fill (`Sealer::spare`), so that a bulk load does not grow
//! those tables from empty again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::index::{INDEX_EXT, IndexFile, MemIndex};
use crate::sealed::Sealed;
use crate::sealed_index::SealedIndex;
use crate::storage::{Mapped, Storage};

/// Encodes and writes sealed segments' sidecars on a thread of its own, one at a time.
#[derive(Default)]
pub(crate) struct Sealer {
    job: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
}

/// What the sealer's thread hands back.
#[derive(Default)]
struct Shared {
    /// Whether `error` holds an error no call has reported yet.
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    /// The last sealed segment's index, emptied.
    spare: Mutex<Option<MemIndex>>,
}

/// One sidecar to make: the segment sealed by `Sealed::sealing`, and its index.
struct Job {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    sealed: Arc<Sealed>,
    mem: MemIndex,
}

/// Makes sure that no read waits for an index that a panicking job will never encode.
struct Unblock<'a>(&'a Sealed);

impl Drop for Unblock<'_> {
    fn drop(&mut self) {
        // Nothing if it was encoded; otherwise the segment's sidecar is rebuilt on first use.
        self.0.encoded(None);
    }
}

impl Job {
    fn run(mut self, shared: &Shared) {
        let unblock = Unblock(&self.sealed);
        let (base, len) = (self.sealed.base, self.sealed.len);
        let encoded = self.mem.encode(base, len);
        self.mem.clear();
        *lock(&shared.spare) = Some(self.mem);
        // Only where the checkpoint the index continued had to be rebuilt, and the segment
        // turned out damaged: reported as the roll's failure would have been; reads of the
        // segment rebuild its index (and meet the damage).
        let bytes = match encoded {
            Ok(bytes) => Arc::new(Mapped::Bytes(bytes)),
            Err(e) => {
                drop(unblock);
                shared.fail(e);
                return;
            }
        };
        // Not checked again here: the file is checked in full when first used, as a sidecar an
        // open took from the summary (every access is bounds-checked against the header).
        let path = crate::segment::index_path(&self.dir, base);
        let index = IndexFile::open_checked(Arc::clone(&bytes), base, Some(len))
            .and_then(|_| SealedIndex::in_memory(Arc::clone(&bytes), &path, base, len));
        self.sealed
            .encoded(index.ok().map(|ix| (ix, bytes.len() as u64)));
        drop(unblock);
        let name = format!("{base:020}.{INDEX_EXT}");
        let r = crate::files::write_atomic(self.storage.as_ref(), &self.dir, &name, &bytes);
        // Written or not, the segment goes to its file: a missing one is rebuilt on first use.
        self.sealed.written();
        if let Err(e) = r {
            shared.fail(e);
        }
    }
}

impl Shared {
    fn fail(&self, e: Error) {
        lock(&self.error).get_or_insert(e);
        self.failed.store(true, Ordering::Release);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sealer {
    /// Encodes `mem`, the index of `sealed` (made by `Sealed::sealing`), and writes it as the
    /// segment's sidecar, on a thread of its own (here, if no thread can be started). The
    /// caller has waited for the previous sidecar (`Sealer::wait`).
    pub(crate) fn start(
        &self,
        storage: &Arc<dyn Storage>,
        dir: &Path,
        sealed: Arc<Sealed>,
        mem: MemIndex,
    ) {
        let job = Job {
            storage: Arc::clone(storage),
            dir: dir.to_owned(),
            sealed,
            mem,
        };
        // The job goes to the thread through this slot, so that it is still here if no
        // thread can be started.
        let slot = Arc::new(Mutex::new(Some(job)));
        let (theirs, shared) = (Arc::clone(&slot), Arc::clone(&self.shared));
        let spawned = std::thread::Builder::new()
            .name("eventfile-sealer".into())
            .spawn(move || {
                if let Some(job) = lock(&theirs).take() {
                    job.run(&shared);
                }
            });
        match spawned {
            Ok(handle) => *lock(&self.job) = Some(handle),
            Err(_) => {
                if let Some(job) = lock(&slot).take() {
                    job.run(&self.shared);
                }
            }
        }
    }

    /// The emptied index of the segment sealed last, once the sealer is done with it.
    pub(crate) fn spare(&self) -> Option<MemIndex> {
        lock(&self.shared.spare).take()
    }

    /// Waits for the sidecar in hand, if any; then [`Sealer::failed`].
    pub(crate) fn wait(&self) -> Result<()> {
        let mut job = lock(&self.job);
        if let Some(handle) = job.take() {
            // A job that panicked (a bug) left its segment's sidecar to be rebuilt on first use.
            let _ = handle.join();
        }
        drop(job);
        self.failed()
    }

    /// The error of a sidecar write that failed and was not reported yet (once: the caller
    /// poisons the handle with it).
    pub(crate) fn failed(&self) -> Result<()> {
        if !self.shared.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let error = lock(&self.shared.error).take();
        self.shared.failed.store(false, Ordering::Release);
        error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc::channel;

    /// A second caller of `wait` waits too while the first is still joining the job: a
    /// retention that waits while `reindex` joins must not remove the segment whose sidecar is
    /// still being written.
    #[test]
    fn every_caller_of_wait_waits_for_the_job_in_hand() {
        let sealer = Arc::new(Sealer::default());
        let done = Arc::new(AtomicBool::new(false));
        let (release, gate) = channel::<()>();
        {
            let done = Arc::clone(&done);
            *lock(&sealer.job) = Some(std::thread::spawn(move || {
                let _ = gate.recv();
                done.store(true, Ordering::SeqCst);
            }));
        }
        let first = {
            let sealer = Arc::clone(&sealer);
            std::thread::spawn(move || sealer.wait())
        };
        // Until the first caller has the job: it holds the slot's lock while it joins (or, as
        // it once did, took the handle out and left the slot empty).
        loop {
            match sealer.job.try_lock() {
                Err(_) => break,
                Ok(slot) if slot.is_none() => break,
                Ok(_) => std::thread::yield_now(),
            }
        }
        let (calling, called) = channel::<()>();
        let second = {
            let (sealer, done) = (Arc::clone(&sealer), Arc::clone(&done));
            std::thread::spawn(move || {
                calling.send(()).unwrap();
                sealer.wait().unwrap();
                done.load(Ordering::SeqCst)
            })
        };
        called.recv().unwrap();
        release.send(()).unwrap();
        first.join().unwrap().unwrap();
        assert!(
            second.join().unwrap(),
            "a second wait returned while the job was still running"
        );
    }
}
