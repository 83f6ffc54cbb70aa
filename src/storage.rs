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
use std::os::unix::fs::FileExt;
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
    /// Only ever called for files that will not change again (sealed segments).
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
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsStorage;

struct OsFile(File);

impl StorageFile for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.0.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
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
    // SAFETY: a map is undefined behaviour (SIGBUS, or bytes changing under a `&[u8]`) if the
    // file is truncated or rewritten while mapped. The store maps only sealed segments: files
    // that are never written, truncated or removed again while any handle of this store is open
    // (recovery truncates only the newest segment, which is never mapped, and retention removes
    // whole files only by unlinking, which keeps the pages of existing maps alive).
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
        File::open(path)?.sync_all()
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
}
