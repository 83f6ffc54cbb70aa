//! A simulated disk for power-loss tests, behind the storage seam (the `internals` feature).
//! Its suites are in `tests/scenarios` (`power_loss.rs`, `model.rs`, `races.rs`), in
//! `crates/eventfile-conformance/tests/sim.rs` and in the fuzz `operations` target.
//!
//! Files and the directory live in memory. Each file keeps its durable bytes (as of its last
//! `sync_data`) and the operations since (writes and truncations); the directory keeps its
//! durable entries (as of its last `sync_dir`) and the creates, renames and removes since. At the
//! chosen operation the power fails: the surviving image keeps everything durable plus, for each
//! file and for the directory, a random prefix of what came after (the last write of a prefix
//! possibly torn), or, for a file, any subset of the pages those writes changed (the others
//! reading as before, zeros past the old end), which is what Linux may leave on disk (FIELD.md's
//! crash-consistency rules).
//! From then on every operation that would change the disk fails, as on a dead device.
//!
//! Directories are entries too: each keeps its own pending creates, renames and removes, made
//! durable only by a `sync_dir` of that directory, and a subdirectory whose own entry did not
//! survive takes everything under it along, at any depth. `create_dir_all` makes each missing
//! directory an entry of its parent, as `mkdir -p` does.

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
    /// How many of the next `sync_data` calls fail (see [`SimDisk::fail_syncs`]).
    failed_syncs: u64,
    /// How many of the next `write_all_at` calls fail (see [`SimDisk::fail_writes`]).
    failed_writes: u64,
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
        // A name survives only if every directory above it does: a directory whose own entry
        // was lost takes everything under it along, however durable.
        let lost_dir = |name: &str| {
            let mut p = parent(name);
            while !p.is_empty() {
                if names.get(p) != Some(&DIR) {
                    return true;
                }
                p = parent(p);
            }
            false
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
            // One crash in three of the rest writes back pages out of order: Linux's writeback
            // and the device may persist any page of the writes since the last sync and not
            // another, and a page that was never written reads as zeros.
            if !harsh
                && self.random(2) == 0
                && pending.iter().all(|op| matches!(op, FileOp::Write(..)))
            {
                bytes = self.scattered(bytes, &pending);
                image.insert(name, bytes);
                continue;
            }
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

impl State {
    /// `durable` after `pending` (writes only), as a power loss may leave it when pages are
    /// written back in any order: each page the writes changed holds its new bytes or its old
    /// ones (zeros past the durable end), and the file's length is the new one or ends at the
    /// last page that got through.
    fn scattered(&mut self, durable: Vec<u8>, pending: &[FileOp]) -> Vec<u8> {
        const PAGE: usize = 4096;
        let mut full = durable.clone();
        for op in pending {
            apply(&mut full, op);
        }
        let mut bytes = durable;
        let old_len = bytes.len();
        bytes.resize(full.len(), 0);
        let mut last_kept = old_len;
        for start in (0..full.len()).step_by(PAGE) {
            let end = (start + PAGE).min(full.len());
            if bytes[start..end] != full[start..end] && self.random(1) == 0 {
                bytes[start..end].copy_from_slice(&full[start..end]);
                last_kept = last_kept.max(end);
            }
        }
        if self.random(1) == 0 {
            bytes.truncate(last_kept);
        }
        bytes
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
            let mut dir = parent(&name);
            while !dir.is_empty() {
                names.insert(dir.to_owned(), DIR);
                dir = parent(dir);
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
                failed_syncs: 0,
                failed_writes: 0,
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

    /// Fails the next `n` calls of `sync_data` (on any file) with `EIO`, as a device error
    /// during writeback would. Each drops its file's writes since the last sync unwritten,
    /// though reads still return them, and no later sync writes them: Linux marks the pages of
    /// a failed writeback clean, and keeps them in the page cache.
    pub fn fail_syncs(&self, n: u64) {
        self.lock().failed_syncs = n;
    }

    /// Fails the next `n` calls of `write_all_at` (on any file) with `ENOSPC`, writing nothing,
    /// as a full disk would.
    pub fn fail_writes(&self, n: u64) {
        self.lock().failed_writes = n;
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
        if st.failed_writes > 0 {
            st.failed_writes -= 1;
            return Err(io::Error::from_raw_os_error(28));
        }
        let f = st.files.get_mut(&self.id).expect("open file exists");
        let op = FileOp::Write(offset, buf.to_vec());
        apply(&mut f.current, &op);
        f.pending.push(op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.disk.lock();
        st.tick()?;
        let failed = st.failed_syncs > 0;
        st.failed_syncs = st.failed_syncs.saturating_sub(1);
        let f = st.files.get_mut(&self.id).expect("open file exists");
        let pending = std::mem::take(&mut f.pending);
        if failed {
            // Linux marks the pages of a failed writeback clean: they stay readable, but no
            // later sync writes them.
            return Err(io::Error::from_raw_os_error(5));
        }
        for op in &pending {
            apply(&mut f.durable, op);
        }
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
        // Each missing directory, outermost first, is an entry of its own parent's.
        let mut missing = Vec::new();
        let mut at = name.as_str();
        while !at.is_empty() && st.names.get(at) != Some(&DIR) {
            missing.push(at.to_owned());
            at = parent(at);
        }
        for dir in missing.into_iter().rev() {
            st.change_dir(DirOp::Link(dir, DIR))?;
        }
        Ok(())
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
