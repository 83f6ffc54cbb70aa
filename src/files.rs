//! Files replaced whole: the atomic replacement every small file of the store goes through
//! (configuration, removal manifest, index sidecars, snapshots), and the sweep of the temporary
//! files a crash cut short.
//!
//! It owns the write-temp, fsync, rename, fsync-directory sequence and must never know what the
//! bytes mean.

use std::path::Path;

use crate::error::{Error, Result};
use crate::storage::Storage;

/// The directory holding snapshots, inside the store directory.
pub(crate) const SNAPSHOT_DIR: &str = "snapshots";

/// The directory holding consumers' checkpoints, inside the store directory.
pub(crate) const CHECKPOINT_DIR: &str = "checkpoints";

/// Name of the stream-table summary a clean close writes (`summary_read.rs`).
pub(crate) const SUMMARY_FILE: &str = "summary";

/// Removes the summary, if there is one, before a sidecar is rewritten at another size
/// (`sidecar::write_index`): it records each sidecar's size, and an open would take it and keep
/// the old size until a rebuild. The writer's clean close writes it again. Best effort: if the
/// removal fails, `verify` reports the summary it left.
pub(crate) fn forget_summary(storage: &dyn Storage, dir: &Path) {
    let _ = storage.remove_file(&dir.join(SUMMARY_FILE));
}

/// Creates `dir` (with any missing parents) and makes its entry durable by syncing the
/// directory that holds it.
pub(crate) fn create_dir(storage: &dyn Storage, dir: &Path) -> Result<()> {
    storage
        .create_dir_all(dir)
        .map_err(|e| Error::io("create directory", dir, e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        storage
            .sync_dir(parent)
            .map_err(|e| Error::io("fsync directory", parent, e))?;
    }
    Ok(())
}

/// Replaces `dir/name` with `bytes`: write a temp file, fsync it, rename it over, fsync the dir.
pub(crate) fn write_atomic(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    match storage.remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", tmp, e)),
    }
    let f = storage
        .create_new(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all_at(bytes, 0)
        .map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_data().map_err(|e| Error::io("fdatasync", &tmp, e))?;
    drop(f);
    storage
        .rename(&tmp, &dst)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// Removes the `*.tmp` files among `names` (entries of `dir`): what an atomic replacement cut
/// short left.
pub(crate) fn remove_temps(storage: &dyn Storage, dir: &Path, names: &[String]) -> Result<()> {
    let mut removed = false;
    for name in names.iter().filter(|n| n.ends_with(".tmp")) {
        let path = dir.join(name);
        storage
            .remove_file(&path)
            .map_err(|e| Error::io("remove", &path, e))?;
        removed = true;
    }
    if removed {
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(())
}

/// Removes what saves cut short left in the snapshot directory (`*.tmp`), as a writer's open
/// does for the store's own temporary files. A missing directory holds none.
pub(crate) fn remove_snapshot_temps(storage: &dyn Storage, store_dir: &Path) -> Result<()> {
    let dir = store_dir.join(SNAPSHOT_DIR);
    let names = match storage.list_dir(&dir) {
        Ok(names) => names,
        // No snapshot saved yet; or a file in its place, which verify reports and a save refuses.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(());
        }
        Err(e) => return Err(Error::io("list", &dir, e)),
    };
    remove_temps(storage, &dir, &names)
}
