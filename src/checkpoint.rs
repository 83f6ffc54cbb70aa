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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::{OsStorage, Storage};

/// Saved positions by consumer name. Names are 1 to 128 characters of ASCII letters, digits,
/// `.`, `_` and `-`, not starting with `.`; anything else is [`Error::InvalidInput`].
pub trait Checkpoints: Send + Sync {
    /// The position saved under `name`, `None` if there is none. A damaged checkpoint is
    /// [`Error::Corrupt`], never `None`.
    fn load(&self, name: &str) -> Result<Option<u64>>;

    /// Saves `position` under `name`, durably and atomically: after a crash, `load` returns
    /// this position or the one saved before, never a mix.
    fn save(&self, name: &str, position: u64) -> Result<()>;
}

/// Checks a consumer's name.
fn validate_name(name: &str) -> Result<()> {
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
}

const FORMAT: u32 = 1;
const EXT: &str = "checkpoint";

/// Checkpoints kept as files in a directory, one per consumer (`NAME.checkpoint`, replaced
/// atomically on every save: written beside, synced, renamed over, directory synced). Keep the
/// directory anywhere the consumer may write; it need not be the store's. One process saves a
/// given name at a time.
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
    /// Saves of this handle, one at a time (they share temporary names).
    saving: Mutex<()>,
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
        let dir = dir.as_ref();
        let storage: Arc<dyn Storage> = Arc::new(OsStorage);
        if !storage.is_dir(dir, true).unwrap_or(false) {
            crate::files::create_dir(storage.as_ref(), dir)?;
        }
        Ok(FileCheckpoints {
            dir: dir.to_owned(),
            storage,
            saving: Mutex::new(()),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{EXT}"))
    }
}

impl Checkpoints for FileCheckpoints {
    fn load(&self, name: &str) -> Result<Option<u64>> {
        validate_name(name)?;
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
        Ok(Some(saved.position))
    }

    fn save(&self, name: &str, position: u64) -> Result<()> {
        validate_name(name)?;
        let bytes = crate::record::encode_object(&Saved {
            format: FORMAT,
            name: name.to_owned(),
            position,
        });
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        crate::files::write_atomic(
            self.storage.as_ref(),
            &self.dir,
            &format!("{name}.{EXT}"),
            &bytes,
        )
    }
}

/// Checkpoints in memory, for tests of consumers; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpoints {
    saved: Arc<Mutex<HashMap<String, u64>>>,
}

impl MemoryCheckpoints {
    /// No checkpoints.
    pub fn new() -> MemoryCheckpoints {
        MemoryCheckpoints::default()
    }
}

impl Checkpoints for MemoryCheckpoints {
    fn load(&self, name: &str) -> Result<Option<u64>> {
        validate_name(name)?;
        let saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        Ok(saved.get(name).copied())
    }

    fn save(&self, name: &str, position: u64) -> Result<()> {
        validate_name(name)?;
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        saved.insert(name.to_owned(), position);
        Ok(())
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
}
