//! The sealer (`src/sealer.rs`): a rolled segment's sidecar written off the appending thread.
//! A storage that fails one chosen file's creation, once, makes its case deterministic.

use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::json;

use eventfile::{ExpectedVersion, NewEvent, OpenOptions, OsStorage, Storage, StorageFile, Store};

/// A one-shot failure: the first creation of a file whose path ends with the armed suffix fails
/// with EIO, and is noted for [`FailOnce::wait_reached`].
#[derive(Default)]
struct FailOnce {
    /// The suffix armed, and whether a creation has met it.
    state: Mutex<(Option<String>, bool)>,
    cv: Condvar,
}

impl FailOnce {
    fn arm(&self, suffix: &str) {
        *self.state.lock().unwrap() = (Some(suffix.to_owned()), false);
    }

    /// `Err` if `path` is the one armed (once).
    fn pass(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let hit =
            s.0.as_deref()
                .is_some_and(|x| path.to_string_lossy().ends_with(x));
        if !hit {
            return Ok(());
        }
        *s = (None, true);
        self.cv.notify_all();
        Err(io::Error::from_raw_os_error(5))
    }

    fn wait_reached(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.1 {
            let (g, t) = self.cv.wait_timeout(s, Duration::from_secs(20)).unwrap();
            s = g;
            assert!(!t.timed_out() || s.1, "the armed file was never created");
        }
    }
}

/// The OS's storage, but for the creation [`FailOnce`] fails.
struct FailingStorage(Arc<FailOnce>);

impl std::fmt::Debug for FailingStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FailingStorage")
    }
}

impl Storage for FailingStorage {
    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn StorageFile>> {
        OsStorage.open(path, write)
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.0.pass(path)?;
        OsStorage.create_new(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        OsStorage.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsStorage.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        OsStorage.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        OsStorage.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        OsStorage.list_dir(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        OsStorage.read(path)
    }
    fn is_dir(&self, path: &Path, follow: bool) -> io::Result<bool> {
        OsStorage.is_dir(path, follow)
    }
    fn try_lock(
        &self,
        path: &Path,
        dir: bool,
    ) -> io::Result<Option<Box<dyn std::any::Any + Send + Sync>>> {
        OsStorage.try_lock(path, dir)
    }
}

const SEGMENT: u64 = 4096;

fn open(dir: &Path) -> (Store, Arc<FailOnce>) {
    let fail = Arc::new(FailOnce::default());
    let store = OpenOptions::new()
        .segment_bytes(SEGMENT)
        .storage(Arc::new(FailingStorage(Arc::clone(&fail))))
        .open(dir)
        .unwrap();
    (store, fail)
}

fn ev(n: u64) -> NewEvent {
    NewEvent::new("T", json!({ "n": n, "pad": "x".repeat(100) }))
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".jsonl")
        })
        .count()
}

/// Appends until the active segment rolls (the append that rolls is the last one).
fn append_until_roll(store: &Store, dir: &Path, n: &mut u64) {
    let before = segments(dir);
    while segments(dir) == before {
        *n += 1;
        store.append("s", ExpectedVersion::Any, [ev(*n)]).unwrap();
    }
}

/// `close` syncs and closes "reporting any error". A sidecar the sealer failed to write for the
/// handle's last roll was reported by that roll's append before the sealer; now no call
/// reports it.
#[test]
fn close_reports_a_failed_sidecar_write() {
    let dir = tempfile::tempdir().unwrap();
    let (store, fail) = open(dir.path());
    let mut n = 0;
    fail.arm("00000000000000000001.idx.tmp");
    append_until_roll(&store, dir.path(), &mut n);
    fail.wait_reached();
    let closed = store.close();
    assert!(closed.is_err(), "close hid the failed sidecar write");
}
