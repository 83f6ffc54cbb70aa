//! The sealer (`src/sealer.rs`): a rolled segment's sidecar written off the appending thread.
//! A storage whose one-shot gates fail a chosen operation makes its cases deterministic.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::json;

use eventfile::{
    ExpectedVersion, Mapped, NewEvent, OpenOptions, OsStorage, Storage, StorageFile, Store,
};

/// A one-shot gate: the first operation on a path ending with `suffix` (on the sealer's thread
/// only, if asked) is noted, and failed if armed to fail.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Default)]
struct GateState {
    suffix: Option<String>,
    /// Only operations on the sealer's thread.
    sealer_only: bool,
    fail: bool,
    reached: bool,
}

impl Gate {
    fn arm(&self, suffix: &str, fail: bool) {
        self.arm_for(suffix, fail, false);
    }

    fn arm_for(&self, suffix: &str, fail: bool, sealer_only: bool) {
        let mut s = self.state.lock().unwrap();
        *s = GateState {
            suffix: Some(suffix.to_owned()),
            sealer_only,
            fail,
            ..GateState::default()
        };
    }

    /// Holds the caller if `path` matches (once); `Err` if armed to fail.
    fn pass(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        let hit = s
            .suffix
            .as_deref()
            .is_some_and(|x| path.to_string_lossy().ends_with(x))
            && (!s.sealer_only || std::thread::current().name() == Some("eventfile-sealer"));
        if !hit {
            return Ok(());
        }
        s.suffix = None;
        s.reached = true;
        self.cv.notify_all();
        if s.fail {
            return Err(io::Error::from_raw_os_error(5));
        }
        Ok(())
    }

    fn wait_reached(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.reached {
            let (g, t) = self.cv.wait_timeout(s, Duration::from_secs(20)).unwrap();
            s = g;
            assert!(!t.timed_out() || s.reached, "gate never reached");
        }
    }
}

#[derive(Default)]
struct Gated {
    create: Gate,
    write: Gate,
    open: Gate,
}

impl std::fmt::Debug for Gated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gated")
    }
}

struct GatedFile {
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    gates: Arc<Gated>,
}

impl StorageFile for GatedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.gates.write.pass(&self.path)?;
        self.file.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn map(&self) -> io::Result<Option<Mapped>> {
        self.file.map()
    }
}

#[derive(Debug)]
struct GatedStorage(Arc<Gated>);

impl GatedStorage {
    fn wrap(&self, file: Arc<dyn StorageFile>, path: &Path) -> Arc<dyn StorageFile> {
        Arc::new(GatedFile {
            file,
            path: path.to_owned(),
            gates: Arc::clone(&self.0),
        })
    }
}

impl Storage for GatedStorage {
    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn StorageFile>> {
        self.0.open.pass(path)?;
        Ok(self.wrap(OsStorage.open(path, write)?, path))
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.0.create.pass(path)?;
        Ok(self.wrap(OsStorage.create_new(path)?, path))
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

fn open(dir: &Path) -> (Store, Arc<Gated>) {
    let gates = Arc::new(Gated::default());
    let store = OpenOptions::new()
        .segment_bytes(SEGMENT)
        .storage(Arc::new(GatedStorage(Arc::clone(&gates))))
        .open(dir)
        .unwrap();
    (store, gates)
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
    let (store, gates) = open(dir.path());
    let mut n = 0;
    gates.create.arm("00000000000000000001.idx.tmp", true);
    append_until_roll(&store, dir.path(), &mut n);
    gates.create.wait_reached();
    let closed = store.close();
    assert!(closed.is_err(), "close hid the failed sidecar write");
}
