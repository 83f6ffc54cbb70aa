//! A simulated disk for power-loss tests, behind the storage seam.
//!
//! Files and the directory live in memory. Each file keeps its durable bytes (as of its last
//! `sync_data`) and the operations since (writes and truncations); the directory keeps its
//! durable entries (as of its last `sync_dir`) and the creates, renames and removes since. At the
//! chosen operation the power fails: the surviving image keeps everything durable plus, for each
//! file and for the directory, a random prefix of what came after (the last write of a prefix
//! possibly torn), which is what Linux may leave on disk (FIELD.md's crash-consistency rules).
//! From then on every operation that would change the disk fails, as on a dead device.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::storage::{Mapped, Storage, StorageFile};

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

    /// The disk as a power loss now would leave it.
    fn survivors(&mut self) -> Image {
        let mut names = self.durable_names.clone();
        let keep = self.random(self.dir_pending.len());
        for op in &self.dir_pending[..keep] {
            apply_dir(&mut names, op);
        }
        let mut image = Image::new();
        for (name, id) in names {
            let file = self
                .files
                .get(&id)
                .map(|f| (f.durable.clone(), f.pending.clone()));
            let Some((mut bytes, pending)) = file else {
                continue;
            };
            let keep = self.random(pending.len());
            for op in &pending[..keep] {
                apply(&mut bytes, op);
            }
            // The next write may have reached the disk in part.
            if let Some(FileOp::Write(at, data)) = pending.get(keep) {
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
}

impl SimDisk {
    /// A disk holding `image`, losing power at operation `crash_at` (counting from 1; `u64::MAX`
    /// for never), with `seed` choosing what survives.
    pub fn new(root: &Path, image: Image, crash_at: u64, seed: u64) -> Arc<SimDisk> {
        let mut files = HashMap::new();
        let mut names = BTreeMap::new();
        for (i, (name, bytes)) in image.into_iter().enumerate() {
            let id = i as u64;
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
        st.tick()?;
        let id = st.next_id;
        st.next_id += 1;
        st.files.insert(id, File::default());
        let op = DirOp::Link(name, id);
        apply_dir(&mut st.names, &op);
        st.dir_pending.push(op);
        drop(st);
        Ok(Arc::new(SimFile {
            disk: Arc::clone(self),
            id,
        }))
    }

    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (self.name(from)?, self.name(to)?);
        let mut st = self.lock();
        if !st.names.contains_key(&from) {
            return Err(io::Error::new(io::ErrorKind::NotFound, from));
        }
        st.tick()?;
        let op = DirOp::Rename(from, to);
        apply_dir(&mut st.names, &op);
        st.dir_pending.push(op);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let name = self.name(path)?;
        let mut st = self.lock();
        if !st.names.contains_key(&name) {
            return Err(io::Error::new(io::ErrorKind::NotFound, name));
        }
        st.tick()?;
        let op = DirOp::Unlink(name);
        apply_dir(&mut st.names, &op);
        st.dir_pending.push(op);
        Ok(())
    }

    fn sync_dir(&self, _path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.tick()?;
        st.durable_names = st.names.clone();
        st.dir_pending.clear();
        Ok(())
    }

    fn list_dir(&self, _path: &Path) -> io::Result<Vec<String>> {
        Ok(self.lock().names.keys().cloned().collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let name = self.name(path)?;
        let st = self.lock();
        let id = st
            .names
            .get(&name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name))?;
        Ok(st.files[id].current.clone())
    }
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDisk").field("root", &self.root).finish()
    }
}

#[cfg(test)]
mod tests {
    //! Power loss at every kind of moment never loses an acknowledged append.

    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::{ExpectedVersion, NewEvent, OpenOptions, Read, Store, StreamAppend};

    fn open(root: &Path, disk: &Arc<SimDisk>) -> crate::Result<Store> {
        let mut opts = OpenOptions::new().segment_bytes(4096);
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

    /// Runs a random workload until the power fails (or it ends); returns what was acknowledged:
    /// batch id -> (first seq, last seq).
    fn workload(
        root: &Path,
        disk: &Arc<SimDisk>,
        rng: &mut Rng,
        run: usize,
    ) -> HashMap<String, (u64, u64)> {
        let mut acks = HashMap::new();
        let Ok(mut store) = open(root, disk) else {
            return acks;
        };
        for k in 0..30 {
            let id = format!("r{run}-{k}");
            let stream = format!("s{}", rng.below(3));
            let r = match rng.below(6) {
                0 => {
                    // A clean close (checkpoint written) and a reopen.
                    drop(store);
                    match open(root, disk) {
                        Ok(s) => store = s,
                        Err(_) => return acks,
                    }
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
                _ => store
                    .append(&stream, ExpectedVersion::Any, batch(&id, 1 + rng.below(4)))
                    .map(|a| (a.first_seq, a.last_seq)),
            };
            match r {
                Ok(range) => {
                    acks.insert(id, range);
                }
                Err(_) => break,
            }
        }
        acks
    }

    #[test]
    fn power_loss_never_loses_an_acknowledged_append() {
        let runs: usize = std::env::var("EVENTFILE_POWER_LOSS_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let root = tempfile::tempdir().unwrap();
        let mut rng = Rng(0x0dd_ba11);
        let mut image = Image::new();
        let mut acked: HashMap<String, (u64, u64)> = HashMap::new();
        let (mut crashed, mut during_open) = (0, 0);
        for run in 0..runs {
            if run % 25 == 0 {
                image.clear();
                acked.clear();
            }
            let disk = SimDisk::new(
                root.path(),
                image.clone(),
                1 + rng.below(160),
                rng.below(u64::MAX),
            );
            let acks = workload(root.path(), &disk, &mut rng, run);
            during_open += usize::from(disk.ops() < 12 && acks.is_empty());
            acked.extend(acks);
            image = disk.power_loss();
            crashed += 1;

            // Recover on what survived: this must succeed and hold every acknowledged batch.
            let disk = SimDisk::new(root.path(), image.clone(), u64::MAX, 0);
            let store = open(root.path(), &disk)
                .unwrap_or_else(|e| panic!("run {run}: recovery failed: {e}"));
            let events: Vec<_> = store
                .read_all(Read::forward())
                .unwrap()
                .map(|e| e.unwrap_or_else(|e| panic!("run {run}: read failed: {e}")))
                .collect();
            let mut batches: HashMap<String, Vec<u64>> = HashMap::new();
            for (i, e) in events.iter().enumerate() {
                assert_eq!(e.seq, i as u64 + 1, "run {run}: seq gap");
                let d = e.data_value();
                batches
                    .entry(d["batch"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(e.seq);
            }
            for (id, seqs) in &batches {
                let n = events[seqs[0] as usize - 1].data_value()["n"]
                    .as_u64()
                    .unwrap();
                assert_eq!(
                    seqs.len() as u64,
                    n,
                    "run {run}: partial batch {id} visible"
                );
            }
            for (id, &(first, last)) in &acked {
                let seqs = batches
                    .get(id)
                    .unwrap_or_else(|| panic!("run {run}: acknowledged batch {id} lost"));
                assert_eq!(
                    (seqs[0], seqs[seqs.len() - 1]),
                    (first, last),
                    "run {run}: {id} moved"
                );
            }
            let r = store
                .append(
                    "after",
                    ExpectedVersion::Any,
                    batch(&format!("after-{run}"), 1),
                )
                .unwrap();
            assert_eq!(r.first_seq, events.len() as u64 + 1);
            acked.insert(format!("after-{run}"), (r.first_seq, r.last_seq));
            drop(store);
            image = disk.power_loss();
        }
        eprintln!(
            "power loss: {crashed} simulated, {during_open} while opening, {} acknowledged batches at the end, none lost",
            acked.len()
        );
    }
}
