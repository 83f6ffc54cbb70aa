//! The active segment's checkpoint, checked as it is used (issue 16): a clean open reads its
//! header and one position, not the whole file; the first use of the active index (a read, a
//! lookup, an append that needs it) reads its block sums, and each lookup reads the blocks it
//! needs, checked, by `pread` (never a map); one damaged since the close is rebuilt from the
//! segment when a read meets the damage, never trusted, and writes nothing; damage in the
//! segment under it fails every use with a typed error. Every scenario ends in reads that
//! return exactly the events appended.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Barrier};

use eventfile::{
    AppendCondition, AppendRequest, Durability, Error, ExpectedVersion, Mapped, NewEvent,
    OpenOptions, OsStorage, Query, Read, RecordedEvent, Storage, StorageFile, Store,
};

use crate::support::*;

/// What [`Storage::try_lock`] returns.
type LockGuard = Box<dyn std::any::Any + Send + Sync>;

/// The real disk, counting the bytes read from one file (by `pread`) and its maps.
#[derive(Debug, Default)]
struct Counting {
    name: String,
    read: AtomicU64,
    maps: AtomicU64,
}

impl Counting {
    fn new(name: &str) -> Arc<Counting> {
        Arc::new(Counting {
            name: name.to_owned(),
            ..Counting::default()
        })
    }

    /// Bytes read and maps made so far.
    fn seen(&self) -> (u64, u64) {
        (self.read.load(SeqCst), self.maps.load(SeqCst))
    }
}

struct CountedFile {
    file: Arc<dyn StorageFile>,
    counts: Arc<Counting>,
}

impl StorageFile for CountedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = self.file.read_at(buf, offset)?;
        self.counts.read.fetch_add(n as u64, SeqCst);
        Ok(n)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
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
        self.counts.maps.fetch_add(1, SeqCst);
        self.file.map()
    }
}

/// The storage of a store whose file `counts.name` is counted.
struct CountingStorage(Arc<Counting>);

impl std::fmt::Debug for CountingStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CountingStorage")
    }
}

impl Storage for CountingStorage {
    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = OsStorage.open(path, write)?;
        if path.file_name().and_then(|n| n.to_str()) != Some(self.0.name.as_str()) {
            return Ok(file);
        }
        Ok(Arc::new(CountedFile {
            file,
            counts: Arc::clone(&self.0),
        }))
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
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
        if path.file_name().and_then(|n| n.to_str()) == Some(self.0.name.as_str()) {
            let bytes = OsStorage.read(path)?;
            self.0.read.fetch_add(bytes.len() as u64, SeqCst);
            return Ok(bytes);
        }
        OsStorage.read(path)
    }
    fn is_dir(&self, path: &Path, follow: bool) -> io::Result<bool> {
        OsStorage.is_dir(path, follow)
    }
    fn try_lock(&self, path: &Path, dir: bool) -> io::Result<Option<LockGuard>> {
        OsStorage.try_lock(path, dir)
    }
}

const STREAMS: usize = 12;
const SEGMENT_BYTES: u64 = 128 * 1024;

fn name(i: usize) -> String {
    format!("s{i}")
}

/// A closed store of a few sealed segments and an active one holding at least `active` bytes
/// of records, its events round-robin over [`STREAMS`] streams. Returns the active segment's
/// checkpoint.
fn closed_store(dir: &Path, active: u64) -> PathBuf {
    closed_store_of(dir, SEGMENT_BYTES, active)
}

/// [`closed_store`] with segments of `segment` bytes.
fn closed_store_of(dir: &Path, segment: u64, active: u64) -> PathBuf {
    let store = fast_store(dir, segment);
    let mut n = 0u64;
    loop {
        append_one(&store, &name(n as usize % STREAMS), n);
        n += 1;
        let segments = files_with_ext(dir, "jsonl");
        let len = std::fs::metadata(segments.last().unwrap()).unwrap().len();
        if segments.len() >= 3 && len >= active {
            break;
        }
    }
    let active = files_with_ext(dir, "jsonl").pop().unwrap();
    store.close().unwrap();
    let checkpoint = active.with_extension("idx");
    assert!(checkpoint.exists(), "a clean close writes the checkpoint");
    checkpoint
}

/// Every stream's version and events, every event, a count and an event found by its id.
type Contents = (
    Vec<(u64, Vec<RecordedEvent>)>,
    Vec<RecordedEvent>,
    u64,
    RecordedEvent,
);

fn contents(store: &Store) -> Contents {
    let streams = (0..STREAMS)
        .map(|i| {
            let s = name(i);
            (store.stream_version(&s), stream(store, &s, Read::forward()))
        })
        .collect();
    let every = all(store);
    let count = store.count(&Query::new().stream("s3")).unwrap();
    let last = every.last().unwrap();
    let found = store.get_event(&last.id).unwrap().expect("found by id");
    (streams, every, count, found)
}

fn open_counting(dir: &Path, counts: &Arc<Counting>, read_only: bool) -> Store {
    OpenOptions::new()
        .segment_bytes(SEGMENT_BYTES)
        .durability(Durability::None)
        .read_only(read_only)
        .storage(Arc::new(CountingStorage(Arc::clone(counts))))
        .open(dir)
        .unwrap()
}

fn file_name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

/// The open reads the checkpoint's header and the position of its last record (a few dozen
/// bytes), and maps nothing of it; the first read of a stream reads the blocks it needs, a
/// part of the file; nothing ever maps it.
#[test]
fn a_clean_open_reads_the_checkpoints_header_only_and_the_first_use_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    // Large enough that a stream's records (one in twelve) lie in a part of its blocks.
    let checkpoint = closed_store_of(dir.path(), 1 << 20, 768 * 1024);
    let len = std::fs::metadata(&checkpoint).unwrap().len();
    assert!(len > 200_000, "a checkpoint worth not reading: {len} bytes");
    let expected = contents(&Store::open_read_only(dir.path()).unwrap());

    for read_only in [false, true] {
        let counts = Counting::new(file_name(&checkpoint));
        let store = open_counting(dir.path(), &counts, read_only);
        let (read, maps) = counts.seen();
        assert!(
            read <= 256,
            "read-only {read_only}: the open read {read} of {len} bytes"
        );
        assert_eq!(
            maps, 0,
            "read-only {read_only}: the open mapped the checkpoint"
        );
        // The head and versions come from the summary and the segment, not the checkpoint.
        assert_eq!(store.head_seq(), expected.1.len() as u64);
        assert_eq!(counts.seen(), (read, 0));

        let s = stream(&store, "s3", Read::forward());
        assert_eq!(s, expected.0[3].1);
        let (first, maps) = counts.seen();
        assert!(
            first > read && first < len / 2,
            "read-only {read_only}: the first read of a stream read {first} of {len} bytes"
        );
        assert_eq!(maps, 0, "read-only {read_only}: mapped");

        assert_eq!(contents(&store), expected, "read-only {read_only}");
        assert_eq!(counts.seen().1, 0, "read-only {read_only}: mapped");
    }
}

/// A term of the checkpoint with more records than a block-cache read holds (every event is a
/// `Tick`, some 12,000 here) has its postings kept decoded after the first lookup: conditions
/// of conditional appends and counts over it answer the same, lookup after lookup, on a sound
/// checkpoint and on one damaged in its postings.
#[test]
fn a_frequent_terms_postings_answer_the_same_lookup_after_lookup() {
    let pristine = tempfile::tempdir().unwrap();
    let checkpoint = closed_store_of(pristine.path(), 4 << 20, 2_500_000);
    let expected = contents(&Store::open_read_only(pristine.path()).unwrap());
    let len = std::fs::metadata(&checkpoint).unwrap().len();
    let ticks = Query::new().event_type("Tick");
    for damage in [None, Some(len * 3 / 4)] {
        let dir = copy_of(pristine.path());
        if let Some(at) = damage {
            flip(&dir.path().join(file_name(&checkpoint)), at);
        }
        let store = Store::open(dir.path()).unwrap();
        let head = store.head_seq();
        let tick_count = expected.1.iter().filter(|e| e.event_type == "Tick").count() as u64;
        assert!(tick_count > 10_000, "{tick_count} ticks");
        for round in 0..3 {
            let case = format!("damage {damage:?}, round {round}");
            assert_eq!(store.count(&ticks).unwrap(), tick_count, "{case}");
            // A Tick after seq 1 exists: the condition fails, naming the first one after it.
            let err = store
                .append_request(
                    AppendRequest::new("c", ExpectedVersion::Any, [ev("Other", 0)])
                        .condition(AppendCondition::new(ticks.clone()).after(1)),
                )
                .unwrap_err();
            let first_after = expected
                .1
                .iter()
                .find(|e| e.seq > 1 && e.event_type == "Tick");
            assert!(
                matches!(err, Error::ConditionFailed { seq, after: 1 }
                    if Some(seq) == first_after.map(|e| e.seq)),
                "{case}: {err}"
            );
            // None after the head: it holds, and writes.
            store
                .append_request(
                    AppendRequest::new("c", ExpectedVersion::Any, [ev("Other", round)])
                        .condition(AppendCondition::new(ticks.clone()).after(head)),
                )
                .unwrap();
        }
        assert_eq!(store.head_seq(), head + 3);
    }
}

/// Flips a bit of each of a few bytes of `path` (never its first 64: a damaged header makes
/// the open check the checkpoint in full, as before).
fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = (at as usize).clamp(64, bytes.len() - 1);
    bytes[at] ^= 0x04;
    std::fs::write(path, bytes).unwrap();
}

/// A checkpoint damaged after the close (anywhere: records, terms, postings, its block sums,
/// its CRC) is found by the first use (header, sums, CRC) or by the read that meets the damage,
/// and rebuilt from the segment: every read, count and lookup is right, the
/// damaged file is left as it was until the close replaces it, appends go on, and the next
/// open finds a sound checkpoint.
#[test]
fn a_checkpoint_damaged_after_the_close_is_rebuilt_when_met_never_trusted() {
    let pristine = tempfile::tempdir().unwrap();
    let checkpoint = closed_store(pristine.path(), 64 * 1024);
    let len = std::fs::metadata(&checkpoint).unwrap().len();
    let expected = contents(&Store::open_read_only(pristine.path()).unwrap());
    for at in [
        100,
        len / 8,
        len / 4,
        len / 2,
        3 * len / 4,
        len - 5,
        len - 1,
    ] {
        for read_only in [false, true] {
            let case = format!("damage at {at} of {len}, read-only {read_only}");
            let dir = copy_of(pristine.path());
            let ckpt = dir.path().join(file_name(&checkpoint));
            flip(&ckpt, at);
            let damaged = std::fs::read(&ckpt).unwrap();
            let counts = Counting::new(file_name(&checkpoint));
            let store = open_counting(dir.path(), &counts, read_only);
            assert_eq!(contents(&store), expected, "{case}");
            // Rebuilt, not mapped: nothing of it was answered from.
            assert_eq!(counts.seen().1, 0, "{case}: mapped");
            assert_eq!(std::fs::read(&ckpt).unwrap(), damaged, "{case}: written");
            if read_only {
                continue;
            }
            let v = store.stream_version("s5");
            let r = store
                .append("s5", ExpectedVersion::Exact(v), [ev("T", 1)])
                .unwrap();
            assert_eq!(r.version, v + 1, "{case}");
            let mut after = stream(&store, "s5", Read::forward());
            store.close().unwrap();
            assert_ne!(std::fs::read(&ckpt).unwrap(), damaged, "{case}: replaced");
            let store = Store::open(dir.path()).unwrap();
            let again = contents(&store);
            assert_eq!(again.0[5].1, after, "{case}");
            after.pop();
            assert_eq!(after, expected.0[5].1, "{case}");
            assert_eq!(again.1.len(), expected.1.len() + 1, "{case}");
            drop(store);
            let report = eventfile::verify(dir.path()).unwrap();
            assert!(report.is_sound(), "{case}: {report:?}");
        }
    }
}

/// A checkpoint damaged anywhere, under a writer that appends and closes without reading: the
/// close copies the checkpoint's records into the next checkpoint, checked whole, so it meets
/// the damage there and copies the rebuilt index instead; the next open reads exactly what was
/// appended, and the store verifies.
#[test]
fn a_close_that_meets_a_damaged_checkpoint_writes_the_rebuilt_one() {
    let pristine = tempfile::tempdir().unwrap();
    let checkpoint = closed_store(pristine.path(), 64 * 1024);
    let len = std::fs::metadata(&checkpoint).unwrap().len();
    let expected = contents(&Store::open_read_only(pristine.path()).unwrap());
    for at in [100, len / 3, 2 * len / 3, len - 5] {
        let case = format!("damage at {at} of {len}");
        let dir = copy_of(pristine.path());
        let ckpt = dir.path().join(file_name(&checkpoint));
        flip(&ckpt, at);
        let damaged = std::fs::read(&ckpt).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let v = store.stream_version("s2");
        store
            .append("s2", ExpectedVersion::Exact(v), [ev("T", 7)])
            .unwrap();
        store.close().unwrap();
        // The close wrote a checkpoint (from the rebuilt index), not none.
        let written = std::fs::read(&ckpt).expect("a checkpoint");
        assert!(written != damaged, "{case}: the damaged checkpoint left");
        let store = Store::open_read_only(dir.path()).unwrap();
        let after = contents(&store);
        assert_eq!(after.1[..expected.1.len()], expected.1[..], "{case}");
        assert_eq!(after.1.len(), expected.1.len() + 1, "{case}");
        assert_eq!(after.0[2].0, v + 1, "{case}");
        drop(store);
        let report = eventfile::verify(dir.path()).unwrap();
        assert!(report.is_sound(), "{case}: {report:?}");
    }
}

/// Under a damaged checkpoint, damage in the records it covered: the open (which no longer
/// scans them) succeeds, and every use of the active index fails with the segment's
/// [`Error::Corrupt`], writing nothing; the close writes no checkpoint, so the next open scans
/// the segment and refuses it, as an open without a checkpoint does.
#[test]
fn damage_in_the_segment_under_a_damaged_checkpoint_fails_each_use_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = closed_store(dir.path(), 64 * 1024);
    let segment = checkpoint.with_extension("jsonl");
    let seg_len = std::fs::metadata(&segment).unwrap().len();
    flip(
        &checkpoint,
        std::fs::metadata(&checkpoint).unwrap().len() / 2,
    );
    // A digit in a record's data in the middle of the segment: the frame's CRC fails.
    let mut bytes = std::fs::read(&segment).unwrap();
    let mid = seg_len as usize / 2;
    let at = mid
        + bytes[mid..]
            .windows(4)
            .position(|w| w == b"\"n\":")
            .unwrap()
        + 4;
    assert!(bytes[at].is_ascii_digit());
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(&segment, &bytes).unwrap();
    let files = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !file_name(p).starts_with("LOCK") && file_name(p) != "HEAD")
            .map(|p| (file_name(&p).to_owned(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    let before = files(dir.path());

    let store = Store::open(dir.path()).unwrap();
    for _ in 0..2 {
        let err = store
            .read_stream("s1", Read::forward())
            .map(|events| events.collect::<Result<Vec<_>, _>>())
            .and_then(|r| r)
            .unwrap_err();
        match err {
            Error::Corrupt { path, offset, .. } => {
                assert_eq!(path, segment);
                assert!(offset <= at as u64, "reported at {offset}, damage at {at}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.count(&Query::new().event_type("Tick")),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            store.get_event("no-such-id"),
            Err(Error::Corrupt { .. })
        ));
    }
    assert_eq!(files(dir.path()), before, "nothing written");
    drop(store);
    match Store::open(dir.path()) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, segment),
        other => panic!("the next open gave {:?}", other.map(|_| ())),
    }
}

/// Several threads' first uses at once: one checks (and here rebuilds), the others wait for it;
/// every thread reads the right events. A read-only handle opened before the checkpoint was
/// replaced (by a rename, as a writer's close replaces it) checks the file it opened, which
/// the summary it read vouches for, not the one in its place now.
#[test]
fn first_uses_from_several_threads_and_a_checkpoint_replaced_under_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = closed_store(dir.path(), 64 * 1024);
    let expected = contents(&Store::open_read_only(dir.path()).unwrap());
    let counts = Counting::new(file_name(&checkpoint));
    let reader = open_counting(dir.path(), &counts, true);
    // A damaged copy renamed over the checkpoint.
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    let third = bytes.len() / 3;
    bytes[third] ^= 0x04;
    let temp = dir.path().join("replacement.tmp");
    std::fs::write(&temp, &bytes).unwrap();
    std::fs::rename(&temp, &checkpoint).unwrap();

    let writer_counts = Counting::new(file_name(&checkpoint));
    let store = Arc::new(open_counting(dir.path(), &writer_counts, false));
    let threads = 6;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let s = name(t % STREAMS);
                (t, stream(&store, &s, Read::forward()), all(&store).len())
            })
        })
        .collect();
    for h in handles {
        let (t, events, n) = h.join().unwrap();
        assert_eq!(events, expected.0[t % STREAMS].1, "thread {t}");
        assert_eq!(n, expected.1.len(), "thread {t}");
    }
    // Read by `pread` only; the damaged block never answered (the events above are right).
    assert_eq!(writer_counts.seen().1, 0, "the checkpoint was mapped");

    // The writer appends and closes: a new checkpoint and summary in place.
    let store = Arc::into_inner(store).unwrap();
    append_one(&store, "s0", 1);
    store.close().unwrap();
    let (before, maps) = counts.seen();
    assert_eq!(maps, 0);
    assert_eq!(contents(&reader), expected);
    let (after, maps) = counts.seen();
    assert!(
        after > before && maps == 0,
        "the reader's own checkpoint, read by pread: {before} -> {after} bytes, {maps} maps"
    );
    reader.refresh().unwrap();
    assert_eq!(all(&reader).len(), expected.1.len() + 1);
    assert_eq!(
        stream(&reader, "s0", Read::forward()).len(),
        expected.0[0].1.len() + 1
    );
}

/// A clean close's checkpoint covers the first bytes of the active segment, up to its covered
/// length. An open that cuts the segment below that length (its last batch damaged on the
/// medium since the close) cannot use the checkpoint, and removes it before anything is
/// appended: the appends after the cut fill the same bytes with other events, and an open after
/// a crash would otherwise find a checkpoint whose first and last records fit the segment again
/// and trust its postings of the events that were cut.
#[test]
fn a_checkpoint_over_bytes_the_open_cut_is_removed_before_they_are_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 1 << 20);
    let mut old = Vec::new();
    for v in 0..10 {
        let id = format!("old-{v}");
        let e = NewEvent::new("Old", serde_json::json!({ "n": v })).with_id(&id);
        store.append("s", ExpectedVersion::Exact(v), [e]).unwrap();
        old.push(id);
    }
    store.close().unwrap();
    let seg = newest_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    assert!(seg.with_extension("idx").exists(), "the close's checkpoint");
    // Damage in the last record, never published (a crash before `HEAD` named it): the open
    // cuts it as a torn tail.
    flip(&seg, len - 30);
    published_up_to(dir.path(), 9);
    let store = fast_store(dir.path(), 1 << 20);
    assert_eq!(store.head_seq(), 9);
    assert!(
        !seg.with_extension("idx").exists(),
        "the checkpoint over the cut bytes is removed"
    );
    // An event of the same size, of another type: it fills exactly the bytes that were cut.
    let new_id = "new-9".to_string();
    let new = NewEvent::new("New", serde_json::json!({ "n": 9 })).with_id(&new_id);
    store.append("s", ExpectedVersion::Exact(9), [new]).unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    // A crash now: the files as they are, without the close.
    let crashed = copy_of(dir.path());
    drop(store);
    let store = small_store(crashed.path(), 1 << 20);
    let of_type = |t: &str| {
        store
            .query(&Query::new().event_type(t))
            .unwrap()
            .map(|e| e.unwrap().id)
            .collect::<Vec<_>>()
    };
    assert_eq!(of_type("New"), std::slice::from_ref(&new_id));
    assert_eq!(of_type("Old"), old[..9]);
    assert_eq!(store.get_event(&old[9]).unwrap(), None, "the cut event");
    assert_eq!(store.get_event(&new_id).unwrap().unwrap().event_type, "New");
    assert_eq!(store.stream_version("s"), 10);
    drop(store);
    assert!(eventfile::verify(crashed.path()).unwrap().is_sound());
}
