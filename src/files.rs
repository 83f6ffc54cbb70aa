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
/// directory that holds it, and so for each parent it created: a new directory whose own entry
/// is not durable can vanish in a power loss with everything under it (a store opened at
/// `new/events` kept its acknowledged events in a directory its parent might not name).
pub(crate) fn create_dir(storage: &dyn Storage, dir: &Path) -> Result<()> {
    // The directories missing now, innermost first (a path that cannot be asked about stops
    // the walk, as one that exists does).
    let mut missing = vec![dir];
    let mut at = dir.parent();
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty()) {
        let absent = matches!(storage.is_dir(d, true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        if !absent {
            break;
        }
        missing.push(d);
        at = d.parent();
    }
    storage
        .create_dir_all(dir)
        .map_err(|e| Error::io("create directory", dir, e))?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            storage
                .sync_dir(parent)
                .map_err(|e| Error::io("fsync directory", parent, e))?;
        }
    }
    Ok(())
}

/// Replaces `dir/name` with `bytes`: write a temp file, fsync it, rename it over, fsync the dir.
/// For files one process writes (the writer's): the temp file's name is fixed.
pub(crate) fn write_atomic(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    match storage.remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", tmp, e)),
    }
    replace_through(storage, dir, name, &tmp, bytes)
}

/// [`write_atomic`] for a file that several handles or processes may replace at once (a
/// consumer's checkpoint): each save writes a temp file of its own,
/// `NAME.PID-N.tmp`, so that one save never renames another's half-written file over `name`.
/// The last rename wins, whole.
pub(crate) fn write_atomic_shared(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SAVES: AtomicU64 = AtomicU64::new(0);
    let n = SAVES.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{name}.{}-{n}.tmp", std::process::id()));
    replace_through(storage, dir, name, &tmp, bytes)
}

/// The temp files of [`write_atomic_shared`] among `names` (entries of `dir`) whose process is
/// gone (no `/proc/PID`): what a save cut short by a crash left. Removed; where `/proc` does
/// not tell (another system), nothing is.
pub(crate) fn remove_orphaned_temps(
    storage: &dyn Storage,
    dir: &Path,
    names: &[String],
) -> Result<()> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return Ok(());
    }
    let mut removed = false;
    for name in names {
        let Some(pid) = name
            .strip_suffix(".tmp")
            .and_then(|n| n.rsplit_once('.'))
            .and_then(|(_, tag)| tag.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()))
        else {
            continue;
        };
        if pid == std::process::id() || proc.join(pid.to_string()).exists() {
            continue;
        }
        let path = dir.join(name);
        match storage.remove_file(&path) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", path, e)),
        }
    }
    if removed {
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(())
}

/// Writes `bytes` to the new file `tmp`, fsyncs it, renames it over `dir/name` and fsyncs
/// `dir`.
fn replace_through(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    tmp: &Path,
    bytes: &[u8],
) -> Result<()> {
    let (tmp, dst) = (tmp.to_path_buf(), dir.join(name));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Image, SimDisk};

    /// Every directory `create_dir` made survives a power loss, however many were missing: a
    /// file written durably in the innermost one is there after it.
    #[test]
    fn nested_new_directories_survive_a_power_loss() {
        let root = tempfile::tempdir().unwrap();
        for seed in 1..=8u64 {
            let disk = SimDisk::new(root.path(), Image::new(), u64::MAX, seed);
            let dir = root.path().join(format!("n{seed}/a/b"));
            create_dir(&disk, &dir).unwrap();
            write_atomic(&disk, &dir, "f", b"kept").unwrap();
            let disk = SimDisk::new(root.path(), disk.power_loss(), u64::MAX, 0);
            assert_eq!(
                disk.read(&dir.join("f")).ok().as_deref(),
                Some(&b"kept"[..]),
                "seed {seed}: {} lost",
                dir.display()
            );
        }
    }
}
