//! Checkpoints: where each named consumer of the log got to, saved durably, so that it resumes
//! there after a crash ([`Checkpoints`], with [`FileCheckpoints`] and [`MemoryCheckpoints`]).
//!
//! A consumer handles events from a [`crate::Subscription`], then saves
//! [`crate::Subscription::position`]; after a restart it subscribes from the saved position.
//! Delivery is at-least-once: the events handled after the last save are delivered again. To
//! get exactly-once, keep the position in the consumer's own database and write it in the same
//! transaction as the changes the events caused (`docs/design.md`, "Subscriptions").
//!
//! This module owns the checkpoint file's layout (a framed line, like the store's own small
//! files) and its atomic replacement; it never reads the
//! log, and never turns a damaged checkpoint into a position (a silent 0 would replay the whole
//! log into a consumer that believes it is current; a silent skip would lose events).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::{OsStorage, Storage};
use crate::time::Micros;

/// A consumer's saved position: what [`Checkpoints::get`] and [`Checkpoints::list`] return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// The consumer's name.
    pub name: String,
    /// The position saved: the seq of the last event the consumer is done with (0: none).
    pub position: u64,
    /// Why the consumer stopped at the event after `position`, if it stopped on an error
    /// (at most [`MAX_ERROR_BYTES`]; longer messages are cut at a character boundary).
    pub error: Option<String>,
    /// When it was saved, microseconds since the Unix epoch.
    pub time: Micros,
}

/// The longest error message a checkpoint keeps, in bytes.
pub const MAX_ERROR_BYTES: usize = 4096;

/// Saved positions by consumer name. Names are 1 to 128 characters of ASCII letters, digits,
/// `.`, `_` and `-`, not starting with `.`; anything else is [`Error::InvalidInput`].
///
/// Every [`crate::EventStore`] keeps its consumers' checkpoints beside its events
/// ([`crate::EventStore::checkpoints`]), where `eventfile projections` lists them; a consumer
/// may also keep them anywhere else ([`FileCheckpoints`], [`MemoryCheckpoints`]).
pub trait Checkpoints: Send + Sync {
    /// The checkpoint saved under `name`, `None` if there is none. A damaged checkpoint is
    /// [`Error::Corrupt`], never `None`.
    fn get(&self, name: &str) -> Result<Option<Checkpoint>>;

    /// Saves `position` under `name` with the error that stopped the consumer (`None` clears
    /// it), durably and atomically: after a crash, `get` returns this checkpoint or the one
    /// saved before, never a mix.
    fn put(&self, name: &str, position: u64, error: Option<&str>) -> Result<()>;

    /// Every checkpoint, in name order.
    fn list(&self) -> Result<Vec<Checkpoint>>;

    /// Removes the checkpoint saved under `name`: `true` if there was one.
    fn remove(&self, name: &str) -> Result<bool>;

    /// The position saved under `name`, `None` if there is none.
    fn load(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.get(name)?.map(|c| c.position))
    }

    /// Saves `position` under `name`, clearing any error.
    fn save(&self, name: &str, position: u64) -> Result<()> {
        self.put(name, position, None)
    }
}

/// `position` as a database's signed 64-bit integer: a position past `i64::MAX` is no seq a
/// store can reach, and [`Error::InvalidInput`] for a backend that keeps positions that way.
pub fn position_i64(name: &str, position: u64) -> Result<i64> {
    i64::try_from(position).map_err(|_| {
        Error::invalid(
            "checkpoint position",
            format!("{position} for {name:?} is past the largest seq a store can hold"),
        )
    })
}

/// `error` cut to at most [`MAX_ERROR_BYTES`] at a character boundary: what a checkpoint keeps.
pub fn clip_error(error: &str) -> &str {
    if error.len() <= MAX_ERROR_BYTES {
        return error;
    }
    let mut end = MAX_ERROR_BYTES;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

/// Checks a consumer's name.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "checkpoint name",
            format!(
                "{name:?}: use 1 to 128 ASCII letters, digits, `.`, `_` or `-`, not starting with `.`"
            ),
        ))
    }
}

/// The layout of a checkpoint file: one framed JSON line, as the store's own small files are
/// (`record::encode_object`: the object's members, then a CRC32 of them as a `crc` member).
#[derive(Serialize, Deserialize)]
struct Saved {
    /// The layout's version: 1.
    format: u32,
    name: String,
    position: u64,
    /// The error that stopped the consumer; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// When it was saved (RFC 3339); absent in checkpoints saved before errors were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<String>,
}

const FORMAT: u32 = 1;
const EXT: &str = "checkpoint";

/// Checkpoints kept as files in a directory, one per consumer (`NAME.checkpoint`, replaced
/// atomically on every save: written beside, synced, renamed over, directory synced). Keep the
/// directory anywhere the consumer may write; the file store keeps its own in `checkpoints/`
/// ([`crate::EventStore::checkpoints`]). Handles and processes may save the same name at
/// once: each save writes a temporary file of its own (`NAME.checkpoint.PID-N.tmp`), and the
/// last one renamed over the checkpoint is the one kept, whole. The first save of a handle
/// removes what saves cut short by a crash left (the temporary files of processes gone).
///
/// ```
/// use eventfile::{Checkpoints, FileCheckpoints};
/// # let dir = tempfile::tempdir().unwrap();
/// let checkpoints = FileCheckpoints::open(dir.path().join("checkpoints"))?;
/// assert_eq!(checkpoints.load("billing")?, None);
/// checkpoints.save("billing", 42)?;
/// assert_eq!(checkpoints.load("billing")?, Some(42));
/// # Ok::<(), eventfile::Error>(())
/// ```
pub struct FileCheckpoints {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    /// Saves and removals of this handle, one at a time; `true` once the first save has
    /// removed the temporary files crashed saves left.
    saving: Mutex<bool>,
}

impl std::fmt::Debug for FileCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCheckpoints")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl FileCheckpoints {
    /// Opens the checkpoints in `dir`, creating the directory if needed.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileCheckpoints> {
        let c = FileCheckpoints::lazy(Arc::new(OsStorage), dir.as_ref().to_owned());
        c.create_dir()?;
        Ok(c)
    }

    /// The checkpoints in `dir` through `storage`, the directory created by the first save
    /// (so that a read-only store handle creates nothing until a consumer saves).
    pub(crate) fn lazy(storage: Arc<dyn Storage>, dir: PathBuf) -> FileCheckpoints {
        FileCheckpoints {
            dir,
            storage,
            saving: Mutex::new(false),
        }
    }

    fn create_dir(&self) -> Result<()> {
        if !self.storage.is_dir(&self.dir, true).unwrap_or(false) {
            crate::files::create_dir(self.storage.as_ref(), &self.dir)?;
        }
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{EXT}"))
    }

    fn read(&self, name: &str) -> Result<Option<Checkpoint>> {
        let path = self.path(name);
        let bytes = match self.storage.read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let damaged = |reason: String| Error::corrupt(&path, 0, reason);
        let saved: Saved = crate::record::decode_object(&bytes)
            .map_err(|e| damaged(format!("damaged checkpoint: {e}")))?;
        if saved.format != FORMAT {
            return Err(damaged(format!(
                "checkpoint format {} is not one this version reads ({FORMAT})",
                saved.format
            )));
        }
        if saved.name != name {
            return Err(damaged(format!(
                "the checkpoint names consumer {:?}, not {name:?}",
                saved.name
            )));
        }
        let time = match &saved.time {
            None => 0,
            Some(t) => crate::time::parse_rfc3339(t)
                .ok_or_else(|| damaged(format!("checkpoint time {t:?} is not an RFC 3339 time")))?,
        };
        Ok(Some(Checkpoint {
            name: saved.name,
            position: saved.position,
            error: saved.error,
            time,
        }))
    }
}

impl Checkpoints for FileCheckpoints {
    fn get(&self, name: &str) -> Result<Option<Checkpoint>> {
        validate_name(name)?;
        self.read(name)
    }

    fn put(&self, name: &str, position: u64, error: Option<&str>) -> Result<()> {
        validate_name(name)?;
        let bytes = crate::record::encode_object(&Saved {
            format: FORMAT,
            name: name.to_owned(),
            position,
            error: error.map(|e| clip_error(e).to_owned()),
            time: Some(crate::time::format_rfc3339(crate::time::now_micros())),
        });
        let mut swept = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        self.create_dir()?;
        if !*swept {
            let names = self
                .storage
                .list_dir(&self.dir)
                .map_err(|e| Error::io("list", &self.dir, e))?;
            crate::files::remove_orphaned_temps(self.storage.as_ref(), &self.dir, &names)?;
            *swept = true;
        }
        crate::files::write_atomic_shared(
            self.storage.as_ref(),
            &self.dir,
            &format!("{name}.{EXT}"),
            &bytes,
        )
    }

    fn list(&self) -> Result<Vec<Checkpoint>> {
        let names = match self.storage.list_dir(&self.dir) {
            Ok(names) => names,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &self.dir, e)),
        };
        let mut names: Vec<&str> = names
            .iter()
            .filter_map(|n| n.strip_suffix(&format!(".{EXT}")))
            .filter(|n| validate_name(n).is_ok())
            .collect();
        names.sort_unstable();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            // Removed between the listing and the read: not listed.
            out.extend(self.read(name)?);
        }
        Ok(out)
    }

    fn remove(&self, name: &str) -> Result<bool> {
        validate_name(name)?;
        let path = self.path(name);
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        match self.storage.remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("remove", path, e)),
        }
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        Ok(true)
    }
}

/// Checkpoints in memory, for tests of consumers and for [`crate::MemoryStore`]; clones share
/// them.
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpoints {
    saved: Arc<Mutex<BTreeMap<String, Checkpoint>>>,
}

impl MemoryCheckpoints {
    /// No checkpoints.
    pub fn new() -> MemoryCheckpoints {
        MemoryCheckpoints::default()
    }

    fn saved(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Checkpoint>> {
        self.saved.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Checkpoints for MemoryCheckpoints {
    fn get(&self, name: &str) -> Result<Option<Checkpoint>> {
        validate_name(name)?;
        Ok(self.saved().get(name).cloned())
    }

    fn put(&self, name: &str, position: u64, error: Option<&str>) -> Result<()> {
        validate_name(name)?;
        let checkpoint = Checkpoint {
            name: name.to_owned(),
            position,
            error: error.map(|e| clip_error(e).to_owned()),
            time: crate::time::now_micros(),
        };
        self.saved().insert(name.to_owned(), checkpoint);
        Ok(())
    }

    fn list(&self) -> Result<Vec<Checkpoint>> {
        Ok(self.saved().values().cloned().collect())
    }

    fn remove(&self, name: &str) -> Result<bool> {
        validate_name(name)?;
        Ok(self.saved().remove(name).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn positions_round_trip_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileCheckpoints::open(dir.path().join("c")).unwrap();
        let mem = MemoryCheckpoints::new();
        for c in [&file as &dyn Checkpoints, &mem] {
            assert_eq!(c.load("a").unwrap(), None);
            c.save("a", 7).unwrap();
            c.save("b.x-1_2", u64::MAX).unwrap();
            c.save("a", 9).unwrap();
            assert_eq!(c.load("a").unwrap(), Some(9));
            assert_eq!(c.load("b.x-1_2").unwrap(), Some(u64::MAX));
            for bad in ["", ".hidden", "a/b", "../x", "é", &"x".repeat(129)] {
                assert_eq!(c.save(bad, 1).unwrap_err().kind(), ErrorKind::InvalidInput);
                assert_eq!(c.load(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
            }
        }
        // Nothing but the two checkpoints was left in the directory.
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("c"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a.checkpoint", "b.x-1_2.checkpoint"]);
    }

    #[test]
    fn a_damaged_checkpoint_is_reported_never_reset() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCheckpoints::open(dir.path()).unwrap();
        c.save("a", 1234).unwrap();
        let path = dir.path().join("a.checkpoint");
        let good = std::fs::read_to_string(&path).unwrap();
        let damaged = [
            good.replace("1234", "1235"),
            good.replace("\"a\"", "\"b\""),
            good.replace("\"format\":1", "\"format\":2"),
            good[..good.len() / 2].to_owned(),
            String::new(),
            "\u{0}\u{0}\u{0}".to_owned(),
            good.replace('}', ",\"extra\":1}"),
        ];
        for bytes in damaged {
            std::fs::write(&path, &bytes).unwrap();
            let err = c.load("a").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{bytes:?}: {err}");
        }
        // Saving again repairs it.
        c.save("a", 5).unwrap();
        assert_eq!(c.load("a").unwrap(), Some(5));
    }

    /// Two handles on one directory save the same checkpoint at once while a third reads it:
    /// every save and every read succeeds, and the checkpoint ends at one of the last values
    /// saved. With one temporary name for every save, a save renamed the other's empty or
    /// half-written file over the checkpoint: a read found it damaged, and a crash would have
    /// kept it so.
    #[test]
    fn handles_saving_one_checkpoint_at_once_never_tear_it() {
        let dir = tempfile::tempdir().unwrap();
        let handles: Vec<FileCheckpoints> = (0..2)
            .map(|_| FileCheckpoints::open(dir.path()).unwrap())
            .collect();
        handles[0].save("x", 0).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let savers: Vec<_> = handles
                .iter()
                .enumerate()
                .map(|(h, c)| {
                    s.spawn(move || (0..150u64).try_for_each(|i| c.save("x", i * 2 + h as u64)))
                })
                .collect();
            let reader = s.spawn(|| {
                let c = FileCheckpoints::open(dir.path()).unwrap();
                let mut reads = 0u64;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    c.load("x")?;
                    reads += 1;
                }
                Ok::<u64, Error>(reads)
            });
            let saved: Vec<Result<()>> = savers.into_iter().map(|t| t.join().unwrap()).collect();
            done.store(true, std::sync::atomic::Ordering::Release);
            let read = reader.join().unwrap();
            for r in saved {
                r.unwrap();
            }
            assert!(read.unwrap() > 0);
        });
        let last = handles[1].load("x").unwrap().unwrap();
        assert!([298, 299].contains(&last), "{last}");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["x.checkpoint"], "no temporary file left");
    }

    /// A crashed save's temporary file is removed by a handle's first save, when its process
    /// is gone; a running process's is left alone.
    #[test]
    fn a_first_save_removes_temporary_files_of_processes_gone() {
        if !std::path::Path::new("/proc/self").exists() {
            return; // Nothing tells which processes run: nothing is removed (by design).
        }
        let dir = tempfile::tempdir().unwrap();
        // A pid above the kernel's largest (4,194,304) is no running process.
        let gone = dir.path().join("x.checkpoint.4194305-0.tmp");
        let running = dir
            .path()
            .join(format!("x.checkpoint.{}-7.tmp", std::process::id()));
        let other = dir.path().join("notes.tmp");
        for p in [&gone, &running, &other] {
            std::fs::write(p, b"half").unwrap();
        }
        let c = FileCheckpoints::open(dir.path()).unwrap();
        c.save("y", 1).unwrap();
        assert!(!gone.exists());
        assert!(running.exists());
        assert!(other.exists(), "not a checkpoint save's");
    }
}
