//! The I/O seam: every file operation the store makes goes through [`Storage`] and
//! [`StorageFile`].
//!
//! [`OsStorage`] is the real file system and the default. Tests substitute implementations that
//! fail the Nth operation or forget unsynced bytes (simulated power loss). This module must never
//! hold policy: it moves bytes and reports errors, nothing else.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

/// An open file.
#[allow(clippy::len_without_is_empty)] // a file's length is an I/O result, not a size
pub trait StorageFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// The file's current length.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Maps the whole file read-only, or `None` if this storage cannot map (the caller then reads).
    ///
    /// Called for sealed segments, and for the active segment, of which only the complete
    /// batches (bytes that are never truncated or rewritten) are ever read through the map.
    fn map(&self) -> io::Result<Option<Mapped>>;
}

/// A read-only view of a whole immutable file.
pub enum Mapped {
    /// A memory map.
    Mmap(memmap2::Mmap),
    /// The bytes, read into memory (storages that cannot map, such as test doubles).
    #[cfg_attr(not(any(test, feature = "internals")), allow(dead_code))]
    Bytes(Vec<u8>),
}

impl Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Mapped::Mmap(m) => m,
            Mapped::Bytes(b) => b,
        }
    }
}

/// A directory-level file system.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Opens an existing file for reading, or reading and writing.
    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Creates a new file for reading and writing; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Reads a whole (small) file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Whether `path` is a directory; through a symbolic link if `follow`.
    fn is_dir(&self, path: &Path, follow: bool) -> io::Result<bool>;
    /// Takes an exclusive advisory lock on `path`, a directory (`dir`) or a file (created empty
    /// if missing), held until the guard is dropped; `None` if another holder has it.
    fn try_lock(&self, path: &Path, dir: bool) -> io::Result<Option<LockGuard>>;
}

/// Holds a lock taken with [`Storage::try_lock`] until dropped.
pub(crate) type LockGuard = Box<dyn std::any::Any + Send + Sync>;

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsStorage;

struct OsFile(File);

impl StorageFile for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match os::read_at(&self.0, buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        os::write_all_at(&self.0, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn map(&self) -> io::Result<Option<Mapped>> {
        map_file(&self.0).map(|m| Some(Mapped::Mmap(m)))
    }
}

/// Maps an immutable file.
#[allow(unsafe_code)]
fn map_file(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: reading a map is undefined behaviour (SIGBUS, or bytes changing under a `&[u8]`)
    // where the file is truncated or rewritten while mapped. The store reads through maps only
    // bytes that are never truncated or rewritten: sealed segments (never written again), and
    // the complete batches of the active segment (appends only add bytes after them; recovery
    // cuts only a torn tail past the last complete batch, and refuses to open rather than cut
    // damage in the middle). Removing a file only unlinks it, which keeps the pages of existing
    // maps alive. A map may extend past the bytes read (over a batch still being written); those
    // pages are never touched.
    unsafe { memmap2::Mmap::map(file) }
}

impl Storage for OsStorage {
    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn StorageFile>> {
        let f = OpenOptions::new().read(true).write(write).open(path)?;
        Ok(Arc::new(OsFile(f)))
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(OsFile(f)))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        os::sync_dir(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn is_dir(&self, path: &Path, follow: bool) -> io::Result<bool> {
        let meta = if follow {
            fs::metadata(path)?
        } else {
            fs::symlink_metadata(path)?
        };
        Ok(meta.is_dir())
    }

    fn try_lock(&self, path: &Path, dir: bool) -> io::Result<Option<LockGuard>> {
        let file = if dir {
            match os::open_dir(path)? {
                Some(f) => f,
                // A platform that cannot open a directory as a file: the lock file alone.
                None => return Ok(Some(Box::new(()))),
            }
        } else {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(file))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// What differs between operating systems, in one place.
#[cfg(unix)]
mod os {
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    pub(super) fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        f.read_at(buf, offset)
    }

    pub(super) fn write_all_at(f: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        f.write_all_at(buf, offset)
    }

    /// Makes a directory's entries durable: `fsync` on the directory.
    pub(super) fn sync_dir(path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    pub(super) fn open_dir(path: &Path) -> io::Result<Option<File>> {
        File::open(path).map(Some)
    }
}

/// What differs between operating systems, in one place.
#[cfg(windows)]
mod os {
    use std::fs::File;
    use std::io;
    use std::os::windows::fs::FileExt;
    use std::path::Path;

    pub(super) fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        f.seek_read(buf, offset)
    }

    pub(super) fn write_all_at(f: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match f.seek_write(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Windows has no directory `fsync`; NTFS journals its metadata, so a rename or create is
    /// durable with the next flush of the journal. (Not measured: the crash suites run on Linux.)
    pub(super) fn sync_dir(_: &Path) -> io::Result<()> {
        Ok(())
    }

    /// Opening a directory as a file needs flags std does not expose: the lock file alone.
    pub(super) fn open_dir(_: &Path) -> io::Result<Option<File>> {
        Ok(None)
    }
}

/// Test double: the real file system, except that chosen operations fail.
///
/// Each counter names the 1-based operation of its kind that fails (0: never), counted across
/// files from when the storage was made. A failing write first writes half of its buffer, as a
/// short write on a full disk does. The error is ENOSPC or EIO, as chosen by `enospc`. Reads
/// fail only as [`FaultyStorage::fail_reads_of`] says: `read_at` of a file opened or created
/// through this storage, by the name it had then, with EIO (`Storage::read` and maps never). Used by
/// a unit test of `catalog.rs` and, behind the `internals` feature, by the scenario suites
/// (`tests/scenarios`: `faults.rs`, `poisoning.rs`).
#[cfg(any(test, feature = "internals"))]
#[derive(Debug, Default)]
pub struct FaultyStorage {
    /// Fail the Nth `write_all_at`.
    pub fail_write: std::sync::atomic::AtomicU64,
    /// Fail the Nth `sync_data` or `sync_dir`.
    pub fail_sync: std::sync::atomic::AtomicU64,
    /// Fail the Nth `create_new`.
    pub fail_create: std::sync::atomic::AtomicU64,
    /// Fail the Nth `rename`.
    pub fail_rename: std::sync::atomic::AtomicU64,
    /// Fail with ENOSPC (true) or EIO (false, the default).
    pub enospc: std::sync::atomic::AtomicBool,
    counts: Arc<FaultCounts>,
    /// While set, reads of files of this name that reach past this offset fail.
    failing_reads: std::sync::Mutex<Option<(std::ffi::OsString, u64)>>,
}

/// The kinds of operation [`FaultyStorage`] can fail.
#[cfg(any(test, feature = "internals"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `write_all_at`.
    Write,
    /// `sync_data` and `sync_dir`.
    Sync,
    /// `create_new`.
    Create,
    /// `rename`.
    Rename,
}

#[cfg(any(test, feature = "internals"))]
#[derive(Debug, Default)]
struct FaultCounts {
    writes: std::sync::atomic::AtomicU64,
    syncs: std::sync::atomic::AtomicU64,
    creates: std::sync::atomic::AtomicU64,
    renames: std::sync::atomic::AtomicU64,
}

#[cfg(any(test, feature = "internals"))]
impl FaultyStorage {
    /// A storage that fails nothing until told to.
    pub fn new() -> Arc<FaultyStorage> {
        Arc::new(FaultyStorage::default())
    }

    fn slots(
        &self,
        kind: FaultKind,
    ) -> (&std::sync::atomic::AtomicU64, &std::sync::atomic::AtomicU64) {
        let c = &self.counts;
        match kind {
            FaultKind::Write => (&c.writes, &self.fail_write),
            FaultKind::Sync => (&c.syncs, &self.fail_sync),
            FaultKind::Create => (&c.creates, &self.fail_create),
            FaultKind::Rename => (&c.renames, &self.fail_rename),
        }
    }

    /// Makes the `n`th operation of `kind` from now fail (1: the next one).
    pub fn fail_in(&self, kind: FaultKind, n: u64) {
        use std::sync::atomic::Ordering::SeqCst;
        let (count, target) = self.slots(kind);
        target.store(count.load(SeqCst) + n, SeqCst);
    }

    /// How many operations of `kind` ran so far.
    pub fn count(&self, kind: FaultKind) -> u64 {
        self.slots(kind).0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Makes the next write (counting from now) fail.
    pub fn fail_next_write(&self) {
        self.fail_in(FaultKind::Write, 1);
    }

    /// Makes the next sync (counting from now) fail.
    pub fn fail_next_sync(&self) {
        self.fail_in(FaultKind::Sync, 1);
    }

    /// Makes the next file creation (counting from now) fail.
    pub fn fail_next_create(&self) {
        self.fail_in(FaultKind::Create, 1);
    }

    /// Makes every `read_at` of a file named `name` that reaches past offset `from` fail with
    /// EIO, until [`FaultyStorage::heal_reads`] (one name at a time: a later call replaces it).
    pub fn fail_reads_of(&self, name: &str, from: u64) {
        *self.reads() = Some((name.into(), from));
    }

    /// Reads no longer fail.
    pub fn heal_reads(&self) {
        *self.reads() = None;
    }

    fn reads(&self) -> std::sync::MutexGuard<'_, Option<(std::ffi::OsString, u64)>> {
        self.failing_reads.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self) -> io::Error {
        if self.enospc.load(std::sync::atomic::Ordering::SeqCst) {
            io::Error::from_raw_os_error(28) // ENOSPC
        } else {
            io::Error::from_raw_os_error(5) // EIO
        }
    }

    fn wrap(self: &Arc<Self>, file: Arc<dyn StorageFile>, path: &Path) -> Arc<dyn StorageFile> {
        Arc::new(FaultyFile {
            file,
            storage: Arc::clone(self),
            name: path.file_name().map(Into::into),
        })
    }
}

#[cfg(any(test, feature = "internals"))]
fn hits(counter: &std::sync::atomic::AtomicU64, target: &std::sync::atomic::AtomicU64) -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    let n = counter.fetch_add(1, SeqCst) + 1;
    n == target.load(SeqCst)
}

#[cfg(any(test, feature = "internals"))]
struct FaultyFile {
    file: Arc<dyn StorageFile>,
    storage: Arc<FaultyStorage>,
    name: Option<std::ffi::OsString>,
}

#[cfg(any(test, feature = "internals"))]
impl StorageFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let fails = self.storage.reads().as_ref().is_some_and(|(name, from)| {
            self.name.as_ref() == Some(name) && offset.saturating_add(buf.len() as u64) > *from
        });
        if fails {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        self.file.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let s = &self.storage;
        if hits(&s.counts.writes, &s.fail_write) {
            self.file.write_all_at(&buf[..buf.len() / 2], offset)?;
            return Err(s.error());
        }
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        let s = &self.storage;
        if hits(&s.counts.syncs, &s.fail_sync) {
            return Err(s.error());
        }
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

/// Forwards to the OS, wrapping files so their writes, syncs and reads can fail.
#[cfg(any(test, feature = "internals"))]
impl Storage for Arc<FaultyStorage> {
    fn open(&self, path: &Path, write: bool) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(OsStorage.open(path, write)?, path))
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        if hits(&self.counts.creates, &self.fail_create) {
            return Err(self.error());
        }
        Ok(self.wrap(OsStorage.create_new(path)?, path))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        OsStorage.create_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if hits(&self.counts.renames, &self.fail_rename) {
            return Err(self.error());
        }
        OsStorage.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        OsStorage.remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if hits(&self.counts.syncs, &self.fail_sync) {
            return Err(self.error());
        }
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

    fn try_lock(&self, path: &Path, dir: bool) -> io::Result<Option<LockGuard>> {
        OsStorage.try_lock(path, dir)
    }
}
