//! A simulated disk for power-loss tests, behind the storage seam.
//!
//! Files and the directory live in memory. Each file keeps its durable bytes (as of its last
//! `sync_data`) and the operations since (writes and truncations); the directory keeps its
//! durable entries (as of its last `sync_dir`) and the creates, renames and removes since. At the
//! chosen operation the power fails: the surviving image keeps everything durable plus, for each
//! file and for the directory, a random prefix of what came after (the last write of a prefix
//! possibly torn), which is what Linux may leave on disk (FIELD.md's crash-consistency rules).
//! From then on every operation that would change the disk fails, as on a dead device.
//!
//! Directories are entries too: each keeps its own pending creates, renames and removes, made
//! durable only by a `sync_dir` of that directory, and a subdirectory whose own entry did not
//! survive takes its files with it.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::storage::{LockGuard, Mapped, Storage, StorageFile};

/// What survived a power loss: file name to bytes.
pub type Image = BTreeMap<String, Vec<u8>>;

#[derive(Clone)]
enum FileOp {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Clone)]
enum DirOp {
    Link(String, u64),
    Unlink(String),
    Rename(String, String),
}

/// The file id that marks a directory entry.
const DIR: u64 = u64::MAX;

/// The directory holding `name` ("" for the root).
fn parent(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(p, _)| p)
}

impl DirOp {
    fn dir(&self) -> &str {
        match self {
            DirOp::Link(name, _) | DirOp::Unlink(name) | DirOp::Rename(name, _) => parent(name),
        }
    }
}

#[derive(Default)]
struct File {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<FileOp>,
}

fn apply(bytes: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Write(at, data) => {
            let end = *at as usize + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[*at as usize..end].copy_from_slice(data);
        }
        FileOp::SetLen(len) => bytes.resize(*len as usize, 0),
    }
}

fn apply_dir(names: &mut BTreeMap<String, u64>, op: &DirOp) {
    match op {
        DirOp::Link(name, id) => {
            names.insert(name.clone(), *id);
        }
        DirOp::Unlink(name) => {
            names.remove(name);
        }
        DirOp::Rename(from, to) => {
            if let Some(id) = names.remove(from) {
                names.insert(to.clone(), id);
            }
        }
    }
}

struct State {
    files: HashMap<u64, File>,
    durable_names: BTreeMap<String, u64>,
    names: BTreeMap<String, u64>,
    dir_pending: Vec<DirOp>,
    next_id: u64,
    ops: u64,
    crash_at: u64,
    rng: u64,
    image: Option<Image>,
}

impl State {
    fn random(&mut self, n: usize) -> usize {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % (n as u64 + 1)) as usize
    }

    /// Counts one operation that changes the disk; fails it (and every later one) once the
    /// power is out.
    fn tick(&mut self) -> io::Result<()> {
        if self.image.is_none() {
            self.ops += 1;
            if self.ops >= self.crash_at {
                self.image = Some(self.survivors());
            }
        }
        if self.image.is_some() {
            return Err(io::Error::other("simulated power loss"));
        }
        Ok(())
    }

    /// Records a directory change (after counting it as an operation).
    fn change_dir(&mut self, op: DirOp) -> io::Result<()> {
        self.tick()?;
        apply_dir(&mut self.names, &op);
        self.dir_pending.push(op);
        Ok(())
    }

    /// The disk as a power loss now would leave it.
    fn survivors(&mut self) -> Image {
        let mut names = self.durable_names.clone();
        // One crash in four keeps nothing unsynced: the harshest outcome, where a missing sync
        // always shows.
        let harsh = self.random(3) == 0;
        // Each directory keeps a random prefix of its own pending entries.
        let dirs: std::collections::BTreeSet<String> = self
            .dir_pending
            .iter()
            .map(|op| op.dir().to_owned())
            .collect();
        let mut keep: HashMap<String, usize> = HashMap::new();
        for d in dirs {
            let n = self.dir_pending.iter().filter(|op| op.dir() == d).count();
            let k = if harsh { 0 } else { self.random(n) };
            keep.insert(d, k);
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for op in &self.dir_pending {
            let d = op.dir().to_owned();
            let i = seen.entry(d.clone()).or_default();
            if *i < keep[&d] {
                apply_dir(&mut names, op);
            }
            *i += 1;
        }
        let lost_dir = |name: &str| {
            let p = parent(name);
            !p.is_empty() && names.get(p) != Some(&DIR)
        };
        let survivors: Vec<(String, u64)> = names
            .iter()
            .filter(|(n, id)| **id != DIR && !lost_dir(n))
            .map(|(n, id)| (n.clone(), *id))
            .collect();
        let mut image = Image::new();
        for (name, id) in survivors {
            let file = self
                .files
                .get(&id)
                .map(|f| (f.durable.clone(), f.pending.clone()));
            let Some((mut bytes, pending)) = file else {
                continue;
            };
            let keep = if harsh { 0 } else { self.random(pending.len()) };
            for op in &pending[..keep] {
                apply(&mut bytes, op);
            }
            // The next write may have reached the disk in part.
            if let Some(FileOp::Write(at, data)) = pending.get(keep).filter(|_| !harsh) {
                let part = self.random(data.len());
                apply(&mut bytes, &FileOp::Write(*at, data[..part].to_vec()));
            }
            image.insert(name, bytes);
        }
        image
    }
}

/// The simulated disk. Paths are taken relative to its root directory.
pub struct SimDisk {
    root: PathBuf,
    state: Mutex<State>,
    /// Paths locked with `try_lock`: advisory, like `flock`, and not on the disk (a power loss
    /// releases them with the processes that held them).
    locks: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl SimDisk {
    /// A disk holding `image`, losing power at operation `crash_at` (counting from 1; `u64::MAX`
    /// for never), with `seed` choosing what survives.
    pub fn new(root: &Path, image: Image, crash_at: u64, seed: u64) -> Arc<SimDisk> {
        let mut files = HashMap::new();
        let mut names = BTreeMap::new();
        for (i, (name, bytes)) in image.into_iter().enumerate() {
            let id = i as u64;
            if !parent(&name).is_empty() {
                names.insert(parent(&name).to_owned(), DIR);
            }
            names.insert(name, id);
            files.insert(
                id,
                File {
                    durable: bytes.clone(),
                    current: bytes,
                    pending: Vec::new(),
                },
            );
        }
        Arc::new(SimDisk {
            root: root.to_owned(),
            locks: Arc::default(),
            state: Mutex::new(State {
                next_id: files.len() as u64,
                files,
                durable_names: names.clone(),
                names,
                dir_pending: Vec::new(),
                ops: 0,
                crash_at,
                rng: seed | 1,
                image: None,
            }),
        })
    }

    /// What is on the disk after the power loss (now, if it has not happened yet).
    pub fn power_loss(&self) -> Image {
        let mut st = self.lock();
        if st.image.is_none() {
            st.crash_at = st.ops;
            let image = st.survivors();
            st.image = Some(image);
        }
        st.image.clone().unwrap_or_default()
    }

    /// Operations that changed the disk so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn name(&self, path: &Path) -> io::Result<String> {
        path.strip_prefix(&self.root)
            .ok()
            .and_then(|p| p.to_str())
            .map(str::to_owned)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "outside the simulated disk"))
    }
}

struct SimFile {
    disk: Arc<SimDisk>,
    id: u64,
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let st = self.disk.lock();
        let bytes = &st.files[&self.id].current;
        let start = (offset as usize).min(bytes.len());
        let n = buf.len().min(bytes.len() - start);
        buf[..n].copy_from_slice(&bytes[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.disk.lock();
        st.tick()?;
        let f = st.files.get_mut(&self.id).expect("open file exists");
        let op = FileOp::Write(offset, buf.to_vec());
        apply(&mut f.current, &op);
        f.pending.push(op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.disk.lock();
        st.tick()?;
        let f = st.files.get_mut(&self.id).expect("open file exists");
        f.durable = f.current.clone();
        f.pending.clear();
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.disk.lock().files[&self.id].current.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.disk.lock();
        st.tick()?;
        let f = st.files.get_mut(&self.id).expect("open file exists");
        let op = FileOp::SetLen(len);
        apply(&mut f.current, &op);
        f.pending.push(op);
        Ok(())
    }

    fn map(&self) -> io::Result<Option<Mapped>> {
        Ok(Some(Mapped::Bytes(
            self.disk.lock().files[&self.id].current.clone(),
        )))
    }
}

impl Storage for Arc<SimDisk> {
    fn open(&self, path: &Path, _write: bool) -> io::Result<Arc<dyn StorageFile>> {
        let name = self.name(path)?;
        let id = *self
            .lock()
            .names
            .get(&name)
            .filter(|&&id| id != DIR)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name))?;
        Ok(Arc::new(SimFile {
            disk: Arc::clone(self),
            id,
        }))
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let name = self.name(path)?;
        let mut st = self.lock();
        if st.names.contains_key(&name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, name));
        }
        let id = st.next_id;
        st.change_dir(DirOp::Link(name, id))?;
        st.next_id += 1;
        st.files.insert(id, File::default());
        drop(st);
        Ok(Arc::new(SimFile {
            disk: Arc::clone(self),
            id,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let name = self.name(path)?;
        let mut st = self.lock();
        if name.is_empty() || st.names.get(&name) == Some(&DIR) {
            return Ok(());
        }
        st.change_dir(DirOp::Link(name, DIR))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (self.name(from)?, self.name(to)?);
        let mut st = self.lock();
        if !st.names.contains_key(&from) {
            return Err(io::Error::new(io::ErrorKind::NotFound, from));
        }
        st.change_dir(DirOp::Rename(from, to))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let name = self.name(path)?;
        let mut st = self.lock();
        if !st.names.contains_key(&name) {
            return Err(io::Error::new(io::ErrorKind::NotFound, name));
        }
        st.change_dir(DirOp::Unlink(name))
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let dir = self.name(path)?;
        let mut st = self.lock();
        st.tick()?;
        let pending = std::mem::take(&mut st.dir_pending);
        let (mine, others): (Vec<DirOp>, Vec<DirOp>) =
            pending.into_iter().partition(|op| op.dir() == dir);
        for op in &mine {
            apply_dir(&mut st.durable_names, op);
        }
        st.dir_pending = others;
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let dir = self.name(path)?;
        let st = self.lock();
        if !dir.is_empty() && st.names.get(&dir) != Some(&DIR) {
            return Err(io::Error::new(io::ErrorKind::NotFound, dir));
        }
        Ok(st
            .names
            .keys()
            .filter(|n| parent(n) == dir)
            .map(|n| n.rsplit('/').next().unwrap_or(n).to_owned())
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let name = self.name(path)?;
        let st = self.lock();
        let id = st
            .names
            .get(&name)
            .filter(|&&id| id != DIR)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name))?;
        Ok(st.files[id].current.clone())
    }

    fn is_dir(&self, path: &Path, _follow: bool) -> io::Result<bool> {
        let name = self.name(path)?;
        match self.lock().names.get(&name) {
            _ if name.is_empty() => Ok(true),
            Some(&id) => Ok(id == DIR),
            None => Err(io::Error::new(io::ErrorKind::NotFound, name)),
        }
    }

    fn try_lock(&self, path: &Path, dir: bool) -> io::Result<Option<LockGuard>> {
        let name = self.name(path)?;
        let found = self.lock().names.get(&name).copied();
        match found {
            _ if name.is_empty() && dir => {}
            None if !dir => drop(self.create_new(path)?),
            Some(id) if (id == DIR) == dir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name}: not a {}", if dir { "directory" } else { "file" }),
                ));
            }
        }
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if !locks.insert(name.clone()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock {
            locks: Arc::clone(&self.locks),
            name,
        })))
    }
}

/// A lock held on the simulated disk.
struct SimLock {
    locks: Arc<Mutex<std::collections::HashSet<String>>>,
    name: String,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDisk").field("root", &self.root).finish()
    }
}

#[cfg(test)]
mod tests {
    //! Power loss at every kind of moment never loses an acknowledged append, snapshot or
    //! deletion, whatever the store was doing: appends, rolls, clean closes, snapshots,
    //! deletions, retention and compaction runs, or recovery itself.

    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::{
        ExpectedVersion, NewEvent, OpenOptions, Read, RetentionPolicy, Store, StreamAppend,
    };

    /// Events retention keeps in the simulated store (small, so runs remove segments).
    const KEEP: u64 = 60;

    fn open(root: &Path, disk: &Arc<SimDisk>) -> crate::Result<Store> {
        let mut opts = OpenOptions::new()
            .segment_bytes(4096)
            .retention(RetentionPolicy::keep_all().max_events(KEEP));
        opts.storage = Arc::new(Arc::clone(disk));
        opts.open(root)
    }

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    fn batch(id: &str, n: u64) -> Vec<NewEvent> {
        (0..n)
            .map(|i| NewEvent::new("Step", json!({ "batch": id, "i": i, "n": n })))
            .collect()
    }

    /// Everything a workload was told succeeded.
    #[derive(Default)]
    struct Acked {
        /// Batch id -> (first seq, last seq).
        batches: HashMap<String, (u64, u64)>,
        /// Stream -> newest snapshot version saved.
        snapshots: HashMap<String, u64>,
        /// Streams deleted.
        deleted: Vec<String>,
        /// The highest log start a retention run reported.
        log_start: u64,
        /// How many of each operation were acknowledged.
        ops: HashMap<&'static str, u64>,
    }

    impl Acked {
        fn count(&mut self, op: &'static str) {
            *self.ops.entry(op).or_default() += 1;
        }
    }

    /// Runs a random workload until the power fails (or it ends), recording what was
    /// acknowledged.
    fn workload(root: &Path, disk: &Arc<SimDisk>, rng: &mut Rng, run: usize, acked: &mut Acked) {
        let Ok(mut store) = open(root, disk) else {
            return;
        };
        for k in 0..30 {
            let id = format!("r{run}-{k}");
            let stream = format!("s{}", rng.below(3));
            let r = match rng.below(10) {
                0 => {
                    // A clean close (checkpoint written) and a reopen.
                    drop(store);
                    match open(root, disk) {
                        Ok(s) => store = s,
                        Err(_) => return,
                    }
                    acked.count("reopen");
                    continue;
                }
                1 => {
                    let n = 2 + rng.below(3);
                    let mut first = batch(&id, n);
                    let rest = first.split_off(1);
                    store
                        .append_multi(&[
                            StreamAppend::new("m-a", ExpectedVersion::Any, first),
                            StreamAppend::new("m-b", ExpectedVersion::Any, rest),
                        ])
                        .map(|m| (m.first_seq, m.last_seq))
                }
                2 => {
                    let v = store.stream_version("s0");
                    if v == 0 {
                        continue;
                    }
                    if store.save_snapshot("s0", v, &json!({ "at": v })).is_err() {
                        return;
                    }
                    let e = acked.snapshots.entry("s0".into()).or_default();
                    *e = (*e).max(v);
                    acked.count("snapshot");
                    continue;
                }
                3 => {
                    // A short-lived stream, written and deleted.
                    let junk = format!("junk-{id}");
                    let ok = store
                        .append(&junk, ExpectedVersion::NoStream, batch(&id, 6))
                        .and_then(|_| store.delete_stream(&junk, ExpectedVersion::Exact(6)));
                    if ok.is_err() {
                        return;
                    }
                    acked.deleted.push(junk);
                    acked.count("delete");
                    continue;
                }
                4 => {
                    match store.run_retention(false) {
                        Ok(r) => acked.log_start = acked.log_start.max(r.log_start),
                        Err(_) => return,
                    }
                    acked.count("retention");
                    continue;
                }
                5 => {
                    if store.compact(false).is_err() {
                        return;
                    }
                    acked.count("compaction");
                    continue;
                }
                _ => store
                    .append(&stream, ExpectedVersion::Any, batch(&id, 1 + rng.below(4)))
                    .map(|a| (a.first_seq, a.last_seq)),
            };
            match r {
                Ok(range) => {
                    acked.batches.insert(id, range);
                    acked.count("append");
                }
                Err(_) => return,
            }
        }
    }

    /// Recovers on what survived: this must succeed and hold everything acknowledged.
    fn check(root: &Path, image: &Image, acked: &mut Acked, run: usize) -> Image {
        let disk = SimDisk::new(root, image.clone(), u64::MAX, 0);
        let store = open(root, &disk).unwrap_or_else(|e| panic!("run {run}: recovery failed: {e}"));
        let log_start = store.log_start();
        assert!(
            log_start >= acked.log_start,
            "run {run}: the log start went back"
        );
        let events: Vec<_> = store
            .read_all(Read::forward())
            .unwrap()
            .map(|e| e.unwrap_or_else(|e| panic!("run {run}: read failed: {e}")))
            .collect();
        let mut batches: HashMap<String, Vec<u64>> = HashMap::new();
        let mut last = 0;
        for e in events
            .iter()
            .filter(|e| e.stream != crate::LIFECYCLE_STREAM)
        {
            assert!(e.seq > last, "run {run}: seqs out of order");
            last = e.seq;
            let d = e.data_value();
            batches
                .entry(d["batch"].as_str().unwrap().to_owned())
                .or_default()
                .push(e.seq);
        }
        for (id, seqs) in &batches {
            let n = events
                .iter()
                .find(|e| e.seq == seqs[0])
                .unwrap()
                .data_value()["n"]
                .as_u64()
                .unwrap();
            assert_eq!(
                seqs.len() as u64,
                n,
                "run {run}: partial batch {id} visible"
            );
        }
        for (id, &(first, last)) in &acked.batches {
            match batches.get(id) {
                Some(seqs) => assert_eq!(
                    (seqs[0], seqs[seqs.len() - 1]),
                    (first, last),
                    "run {run}: {id} moved"
                ),
                None => assert!(
                    last < log_start,
                    "run {run}: acknowledged batch {id} lost (seq {first}, log start {log_start})"
                ),
            }
        }
        for junk in &acked.deleted {
            assert!(
                store
                    .read_stream(junk, Read::forward())
                    .unwrap()
                    .next()
                    .is_none(),
                "run {run}: deleted stream {junk} came back"
            );
        }
        for (s, &v) in &acked.snapshots {
            let snap = store
                .load_snapshot(s)
                .unwrap()
                .unwrap_or_else(|| panic!("run {run}: acknowledged snapshot of {s} lost"));
            assert!(snap.version >= v, "run {run}: snapshot of {s} went back");
        }
        let head = store.head_seq();
        let r = store
            .append(
                "after",
                ExpectedVersion::Any,
                batch(&format!("after-{run}"), 1),
            )
            .unwrap();
        assert_eq!(r.first_seq, head + 1);
        acked
            .batches
            .insert(format!("after-{run}"), (r.first_seq, r.last_seq));
        drop(store);
        let image = disk.power_loss();
        // `verify` on the image itself, through the same storage seam as the store.
        let survivor: Arc<dyn Storage> = Arc::new(SimDisk::new(root, image.clone(), u64::MAX, 0));
        let report = crate::verify::verify_on(&survivor, root).unwrap();
        assert!(report.is_sound(), "run {run}: {:?}", report.problems);
        image
    }

    #[test]
    fn power_loss_never_loses_an_acknowledged_operation() {
        let runs: usize = std::env::var("EVENTFILE_POWER_LOSS_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let root = tempfile::tempdir().unwrap();
        let mut rng = Rng(0x0dd_ba11);
        let mut image = Image::new();
        let mut acked = Acked::default();
        let mut during_open = 0;
        let mut totals: HashMap<&'static str, u64> = HashMap::new();
        let mut add_totals = |acked: &Acked| {
            for (op, n) in &acked.ops {
                *totals.entry(op).or_default() += n;
            }
        };
        for run in 0..runs {
            if run % 25 == 0 {
                add_totals(&acked);
                image.clear();
                acked = Acked::default();
            }
            let disk = SimDisk::new(
                root.path(),
                image.clone(),
                1 + rng.below(200),
                rng.below(u64::MAX),
            );
            let before = acked.ops.values().sum::<u64>();
            workload(root.path(), &disk, &mut rng, run, &mut acked);
            during_open +=
                usize::from(disk.ops() < 12 && acked.ops.values().sum::<u64>() == before);
            image = disk.power_loss();
            image = check(root.path(), &image, &mut acked, run);
        }
        add_totals(&acked);
        let mut ops: Vec<_> = totals.into_iter().collect();
        ops.sort();
        eprintln!(
            "power loss: {runs} simulated, {during_open} while opening; acknowledged and checked \
             after the crashes: {ops:?}; none lost"
        );
    }
}
