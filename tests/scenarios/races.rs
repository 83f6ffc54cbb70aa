//! The race between a read-only handle and the writer's removal of segments, made
//! deterministic: the reader's storage runs the writer's retention (or compaction, or an unlink
//! nobody recorded) at the exact moment the reader is about to open a segment it listed. Each
//! scenario runs on the real disk and on the simulated one (writer and reader sharing it).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;

use eventfile::sim::{Image, SimDisk};
use eventfile::{
    Error, ExpectedVersion, NewEvent, OpenOptions, OsStorage, Read, RetentionPolicy, Storage,
    StorageFile, Store,
};

type Hook = Box<dyn FnOnce() + Send>;

/// What [`Storage::try_lock`] returns: a guard holding the lock until dropped.
type LockGuard = Box<dyn std::any::Any + Send + Sync>;

/// A storage (the real disk or the simulated one) whose `n`th open of a segment file
/// (counting from 0) first runs a hook.
struct Racing {
    disk: Arc<dyn Storage>,
    hook: Mutex<Option<(usize, Hook)>>,
}

impl std::fmt::Debug for Racing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Racing")
    }
}

impl Racing {
    fn new(disk: &Arc<dyn Storage>) -> Arc<Racing> {
        Arc::new(Racing {
            disk: Arc::clone(disk),
            hook: Mutex::new(None),
        })
    }

    fn arm(&self, after_opens: usize, hook: impl FnOnce() + Send + 'static) {
        *self.hook.lock().unwrap() = Some((after_opens, Box::new(hook)));
    }
}

impl Storage for Racing {
    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn StorageFile>> {
        if path.extension().is_some_and(|e| e == "jsonl") {
            let mut slot = self.hook.lock().unwrap();
            let fire = match slot.as_mut() {
                Some((0, _)) => slot.take().map(|(_, h)| h),
                Some((n, _)) => {
                    *n -= 1;
                    None
                }
                None => None,
            };
            drop(slot);
            if let Some(hook) = fire {
                hook();
            }
        }
        self.disk.open(path, write)
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.disk.create_new(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.disk.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.disk.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.disk.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.disk.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.disk.list_dir(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.disk.read(path)
    }

    fn is_dir(&self, path: &Path, follow: bool) -> io::Result<bool> {
        self.disk.is_dir(path, follow)
    }

    fn try_lock(&self, path: &Path, dir: bool) -> io::Result<Option<LockGuard>> {
        self.disk.try_lock(path, dir)
    }
}

/// The disks each scenario runs on, for a store in `dir`: the real one (`0`), and a simulated
/// one (`1`, in memory, rooted at `dir`) that the writer and the reader share.
fn disk(which: usize, dir: &Path) -> Arc<dyn Storage> {
    match which {
        0 => Arc::new(OsStorage),
        _ => Arc::new(SimDisk::new(dir, Image::new(), u64::MAX, 1)),
    }
}

/// The segment files in `dir` on `disk`. A segment is created under its final name before the
/// store counts it, and nothing here removes one, so after an append this is the store's number
/// of segments (sealed and active).
fn segments(dir: &Path, disk: &Arc<dyn Storage>) -> usize {
    let names = disk.list_dir(dir).unwrap();
    names.iter().filter(|n| n.ends_with(".jsonl")).count()
}

/// A writer on `disk` with 10 sealed segments of stream `s`.
fn writer(dir: &Path, disk: &Arc<dyn Storage>) -> Store {
    let store = OpenOptions::new()
        .segment_bytes(4096)
        .storage(Arc::clone(disk))
        .open(dir)
        .unwrap();
    let mut n = 0;
    while segments(dir, disk) < 11 {
        store
            .append(
                "s",
                ExpectedVersion::Any,
                [NewEvent::new("T", json!({ "n": n }))],
            )
            .unwrap();
        n += 1;
    }
    store
}

/// Appends `n` single events to `stream`.
fn fill(store: &Store, stream: &str, n: u64) {
    for i in 0..n {
        store
            .append(
                stream,
                ExpectedVersion::Any,
                [NewEvent::new("T", json!({ "n": i }))],
            )
            .unwrap();
    }
}

fn reader(dir: &Path, storage: &Arc<Racing>) -> eventfile::Result<Store> {
    OpenOptions::new()
        .read_only(true)
        .storage(Arc::clone(storage) as Arc<dyn Storage>)
        .open(dir)
}

fn seqs(store: &Store) -> Vec<u64> {
    store
        .read_all(Read::forward())
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect()
}

/// Retention (keep about half) run by the writer, as a hook.
fn retention(store: &Store) -> impl FnOnce() + Send + 'static {
    let store = store.clone();
    move || {
        let keep = store.head_seq() / 2;
        store
            .set_retention_policy(RetentionPolicy::keep_all().max_events(keep))
            .unwrap();
        assert!(!store.run_retention(false).unwrap().segments.is_empty());
    }
}

#[test]
fn a_read_only_open_that_loses_the_race_to_retention_reads_from_the_new_log_start() {
    for which in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let disk = disk(which, dir.path());
        let store = writer(dir.path(), &disk);
        let storage = Racing::new(&disk);
        // The reader has listed the directory and opened the first segments when retention runs.
        storage.arm(3, retention(&store));
        let r = reader(dir.path(), &storage).unwrap();
        assert!(storage.hook.lock().unwrap().is_none(), "the race was run");
        let start = store.log_start();
        assert!(start > 1);
        assert_eq!(r.log_start(), start);
        assert_eq!(seqs(&r), (start..=store.head_seq()).collect::<Vec<_>>());
    }
}

#[test]
fn a_refresh_that_loses_the_race_to_retention_reads_from_the_new_log_start() {
    for which in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let disk = disk(which, dir.path());
        let store = writer(dir.path(), &disk);
        let storage = Racing::new(&disk);
        let r = reader(dir.path(), &storage).unwrap();
        let before = seqs(&r);
        assert_eq!(before.first(), Some(&1));
        // New segments for the refresh to open; retention runs as it opens the first of them.
        fill(&store, "t", 300);
        storage.arm(0, retention(&store));
        r.refresh().unwrap();
        assert!(storage.hook.lock().unwrap().is_none(), "the race was run");
        let start = store.log_start();
        assert_eq!(r.log_start(), start);
        assert_eq!(seqs(&r), (start..=store.head_seq()).collect::<Vec<_>>());
    }
}

#[test]
fn compaction_racing_a_read_only_open_is_resolved_by_the_manifest() {
    for which in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let disk = disk(which, dir.path());
        let store = writer(dir.path(), &disk);
        // The middle segments' events all belong to a stream deleted whole.
        fill(&store, "doomed", 200);
        fill(&store, "s", 100);
        store.delete_stream("doomed", ExpectedVersion::Any).unwrap();
        let live: Vec<u64> = seqs(&store);
        let storage = Racing::new(&disk);
        let w = store.clone();
        storage.arm(12, move || {
            assert!(!w.compact(false).unwrap().segments.is_empty());
        });
        let r = reader(dir.path(), &storage).unwrap();
        assert!(storage.hook.lock().unwrap().is_none(), "the race was run");
        assert_eq!(seqs(&r), live);
    }
}

#[test]
fn a_segment_that_vanishes_unrecorded_is_an_error_naming_it() {
    for which in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let disk = disk(which, dir.path());
        let store = writer(dir.path(), &disk);
        drop(store);
        let storage = Racing::new(&disk);
        let victim: PathBuf = dir.path().join("00000000000000000001.jsonl");
        let (v, d) = (victim.clone(), Arc::clone(&disk));
        storage.arm(0, move || d.remove_file(&v).unwrap());
        match reader(dir.path(), &storage) {
            Err(Error::Io { path, source, .. }) => {
                assert_eq!(path, victim);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected the missing file named, got {other:?}"),
        }
    }
}
