//! Two `fdatasync`s of the active segment that overlap: a waiter's group-commit sync and a
//! segment roll's (which runs under the state lock, outside the group commit). Linux reports a
//! failed writeback once per open file (errseq): of two syncs of the same file, whichever checks
//! first gets EIO and the other success, though the pages both covered are gone. So neither
//! sync's success may acknowledge anything while the other is still running; a failure, whoever
//! saw it, fails both.
//!
//! The storage here scripts that report: it holds one sync of a segment file at its start until
//! the next one runs, and then answers the two as the kernel may (one EIO, one success), in
//! both orders. Each test drives the store through the public API and waits on channels, never
//! on time.

use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};

use serde_json::json;

use crate::poisoning::assert_sync_error;

use eventfile::{
    Error, ExpectedVersion, NewEvent, OpenOptions, OsStorage, Storage, StorageFile, Store,
};

/// What [`Storage::try_lock`] returns: a guard holding the lock until dropped.
type LockGuard = Box<dyn std::any::Any + Send + Sync>;

/// Which of the two overlapping syncs gets the error.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Failing {
    /// The held one (the waiter's).
    Held,
    /// The one that runs while it is held (the roll's).
    Second,
}

/// Where the script is.
#[derive(Debug, Default)]
enum Phase {
    /// Every sync is a real one.
    #[default]
    Idle,
    /// The next segment sync is held (the sender hears it), then answers as `Failing` says.
    Armed(Failing, Sender<()>),
    /// A sync is held until the next one runs.
    Held(Failing),
    /// The second ran: the held one may answer.
    Released,
}

/// Real files; the `fdatasync` of segment files scripted as above.
#[derive(Debug, Default)]
struct OverlapStorage {
    phase: Mutex<Phase>,
    cv: Condvar,
}

impl OverlapStorage {
    /// Holds the next segment sync; the receiver hears when it is held.
    fn arm(&self, failing: Failing) -> Receiver<()> {
        let (tx, rx) = channel();
        *self.phase.lock().unwrap() = Phase::Armed(failing, tx);
        rx
    }

    fn sync_segment(&self, file: &dyn StorageFile) -> std::io::Result<()> {
        let eio = || Err(std::io::Error::from_raw_os_error(5));
        let mut phase = self.phase.lock().unwrap();
        match std::mem::take(&mut *phase) {
            Phase::Armed(failing, held) => {
                *phase = Phase::Held(failing);
                let _ = held.send(());
                // A watchdog, not a synchronisation: a regression that never runs the
                // second sync fails here instead of hanging.
                let (mut phase, waited) = self
                    .cv
                    .wait_timeout_while(phase, WATCHDOG, |p| matches!(p, Phase::Held(_)))
                    .unwrap();
                assert!(
                    !waited.timed_out(),
                    "no second sync ran beside the held one"
                );
                *phase = Phase::Idle;
                match failing {
                    Failing::Held => eio(),
                    // The error went to the other sync, and the pages it covered are clean.
                    Failing::Second => Ok(()),
                }
            }
            Phase::Held(failing) => {
                *phase = Phase::Released;
                self.cv.notify_all();
                match failing {
                    Failing::Second => eio(),
                    Failing::Held => Ok(()),
                }
            }
            other => {
                *phase = other;
                drop(phase);
                file.sync_data()
            }
        }
    }
}

struct OverlapFile {
    file: Arc<dyn StorageFile>,
    storage: Arc<OverlapStorage>,
    segment: bool,
}

impl StorageFile for OverlapFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        match self.segment {
            true => self.storage.sync_segment(self.file.as_ref()),
            false => self.file.sync_data(),
        }
    }
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn map(&self) -> std::io::Result<Option<eventfile::Mapped>> {
        self.file.map()
    }
}

/// The storage as the store takes it.
#[derive(Debug)]
struct Handle(Arc<OverlapStorage>);

impl Handle {
    fn wrap(&self, file: Arc<dyn StorageFile>, path: &Path) -> Arc<dyn StorageFile> {
        Arc::new(OverlapFile {
            file,
            storage: Arc::clone(&self.0),
            segment: path.extension().is_some_and(|e| e == "jsonl"),
        })
    }
}

impl Storage for Handle {
    fn open(&self, path: &Path, write: bool) -> std::io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(OsStorage.open(path, write)?, path))
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(OsStorage.create_new(path)?, path))
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        OsStorage.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        OsStorage.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        OsStorage.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        OsStorage.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        OsStorage.list_dir(path)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        OsStorage.read(path)
    }
    fn is_dir(&self, path: &Path, follow: bool) -> std::io::Result<bool> {
        OsStorage.is_dir(path, follow)
    }
    fn try_lock(&self, path: &Path, dir: bool) -> std::io::Result<Option<LockGuard>> {
        OsStorage.try_lock(path, dir)
    }
}

const SEGMENT: u64 = 64 * 1024;

/// How long a step may take before the test calls it a hang.
const WATCHDOG: std::time::Duration = std::time::Duration::from_secs(60);

fn ev(n: u64) -> NewEvent {
    NewEvent::new("T", json!({ "n": n }))
}

/// An event of about `bytes` bytes.
fn padded(bytes: usize) -> NewEvent {
    NewEvent::new("Pad", json!({ "pad": "x".repeat(bytes) }))
}

/// Fills half a segment; appends one small event on another thread and holds its sync (the group commit's, run by
/// that appender); then appends an event that rolls the segment, whose sync overlaps it. The
/// two syncs answer as `failing` says. Returns the two appends' outcomes and the store.
fn overlap(dir: &Path, failing: Failing) -> (Result<(), Error>, Result<(), Error>, Store) {
    let storage = Arc::new(OverlapStorage::default());
    let store = OpenOptions::new()
        .segment_bytes(SEGMENT)
        .storage(Arc::new(Handle(Arc::clone(&storage))))
        .open(dir)
        .unwrap();
    // Half the segment, so that the half and more appended below rolls it.
    store
        .append("s", ExpectedVersion::Any, [padded(SEGMENT as usize / 2)])
        .unwrap();
    let held = storage.arm(failing);
    let waiter = {
        let store = store.clone();
        std::thread::spawn(move || store.append("s", ExpectedVersion::Any, [ev(2)]).map(|_| ()))
    };
    held.recv_timeout(WATCHDOG)
        .expect("the waiter's sync is held");
    let roll = store
        .append(
            "s",
            ExpectedVersion::Any,
            [padded(SEGMENT as usize / 2 + 1024)],
        )
        .map(|_| ());
    let waited = waiter.join().unwrap();
    (waited, roll, store)
}

/// Only the event appended before the overlap is visible, in this handle and to a reader in
/// another one (what `HEAD` publishes).
fn assert_only_the_first_is_published(store: &Store, dir: &Path) {
    assert_eq!(
        store.head_seq(),
        1,
        "an event of a failed sync became visible"
    );
    let reader = Store::open_read_only(dir).unwrap();
    assert_eq!(
        reader.head_seq(),
        1,
        "an event of a failed sync was published"
    );
}

/// What a fresh open finds, in order.
fn stored(dir: &Path) -> Vec<u64> {
    crate::poisoning::versions(&Store::open(dir).unwrap(), "s")
}

/// The roll's sync gets the EIO; the waiter's, running beside it, succeeds though its event's
/// pages were in the failed writeback. The waiter's append must not be acknowledged, and the
/// event must not become visible.
#[test]
fn a_sync_that_succeeds_beside_a_roll_whose_sync_failed_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (waited, roll, store) = overlap(dir.path(), Failing::Second);
    assert_sync_error(roll.as_ref().expect_err("the roll's sync failed"));
    assert!(waited.is_err(), "acknowledged beside a failed sync");
    assert_only_the_first_is_published(&store, dir.path());
    assert!(matches!(
        store.append("s", ExpectedVersion::Any, [ev(3)]),
        Err(Error::Poisoned { .. })
    ));
    drop(store);
    // The failed append's outcome is unknown (its bytes are on this real disk); the
    // acknowledged one is there.
    assert_eq!(stored(dir.path())[0], 1);
}

/// The other order: the waiter's sync gets the EIO, and the roll's, running beside it,
/// succeeds. The roll must not publish the waiter's event as durable.
#[test]
fn a_roll_whose_sync_succeeds_beside_a_failed_sync_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (waited, roll, store) = overlap(dir.path(), Failing::Held);
    assert_sync_error(waited.as_ref().expect_err("the waiter's sync failed"));
    assert!(
        roll.is_err(),
        "the roll went on beside a failed sync: {roll:?}"
    );
    assert_only_the_first_is_published(&store, dir.path());
    drop(store);
    assert_eq!(stored(dir.path())[0], 1);
}
