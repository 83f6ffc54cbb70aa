//! Snapshots: a stream's state saved at a version, so that rebuilding it reads only the events
//! after that version.
//!
//! Snapshots live outside the log, in `snapshots/`, one file per snapshot named by a 64-bit hash
//! of the stream name and the version (`<hash>-<version>.snap`; the file itself names the stream,
//! so a hash collision is recognised, never confused). A file is one framed JSON line, written
//! atomically (temp, fsync, rename, directory fsync). Snapshots are a cache of what the events
//! say: a damaged one is skipped with a warning (the `log` crate) and reported by `verify`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::api::Snapshot;
use crate::error::{Error, Result};
use crate::event::validate_stream;
use crate::files::SNAPSHOT_DIR;
use crate::record;
use crate::storage::Storage;
use crate::store::{Inner, Store};

const EXT: &str = ".snap";

#[derive(Serialize, Deserialize)]
struct SnapshotFile<'a> {
    eventfile: String,
    stream: String,
    version: u64,
    time: String,
    #[serde(borrow)]
    state: &'a RawValue,
}

/// FNV-1a: a stable 64-bit hash for file names (not for security).
fn name_hash(stream: &str) -> u64 {
    stream.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn prefix(stream: &str) -> String {
    format!("{:016x}-", name_hash(stream))
}

fn file_name(stream: &str, version: u64) -> String {
    format!("{}{version:020}{EXT}", prefix(stream))
}

/// The versions of the snapshot files for `stream` in `dir` (possibly another stream's, on a
/// hash collision), newest first.
fn versions(inner: &Inner, dir: &Path, stream: &str) -> Result<Vec<u64>> {
    let names = match inner.storage.list_dir(dir) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    let p = prefix(stream);
    let mut v: Vec<u64> = names
        .iter()
        .filter_map(|n| n.strip_prefix(&p)?.strip_suffix(EXT)?.parse().ok())
        .collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    Ok(v)
}

/// Reads and checks one snapshot file.
fn read_file(inner: &Inner, path: &Path) -> Result<Snapshot> {
    let bytes = inner
        .storage
        .read(path)
        .map_err(|e| Error::io("read", path, e))?;
    parse(&bytes).map_err(|reason| Error::corrupt(path, 0, reason))
}

fn parse(bytes: &[u8]) -> std::result::Result<Snapshot, String> {
    let f: SnapshotFile<'_> = record::decode_object(bytes)?;
    if f.eventfile != "snapshot" {
        return Err("not a snapshot".into());
    }
    let time = crate::time::parse_rfc3339(&f.time).ok_or("bad time")?;
    Ok(Snapshot {
        stream: f.stream,
        version: f.version,
        time,
        state: f.state.to_owned(),
    })
}

impl Store {
    /// Saves `state` as the state of `stream` at `version` (which must be a version the stream
    /// has, and not below a truncation of it), then removes the stream's older snapshots beyond
    /// the store's `snapshots_kept`. The file is written atomically: a crash leaves the old
    /// snapshots or the new one, never a torn file.
    ///
    /// ```
    /// # use eventfile::{ExpectedVersion, NewEvent, Read, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Store::open(dir.path())?;
    /// for i in 1..=3 {
    ///     store.append("counter-1", ExpectedVersion::Any, [NewEvent::new("Added", serde_json::json!(i))])?;
    /// }
    /// store.save_snapshot("counter-1", 3, &serde_json::json!({ "total": 6 }))?;
    /// let snap = store.load_snapshot("counter-1")?.expect("saved above");
    /// assert_eq!(snap.version, 3);
    /// // Rebuild: the snapshot, then the events after it.
    /// let later = store.read_stream("counter-1", Read::forward().from(snap.version + 1))?.count();
    /// assert_eq!(later, 0);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn save_snapshot<T: Serialize + ?Sized>(
        &self,
        stream: &str,
        version: u64,
        state: &T,
    ) -> Result<Snapshot> {
        let inner = &self.inner;
        if inner.read_only {
            return Err(Error::ReadOnly);
        }
        validate_stream(stream)?;
        // One line: a snapshot file is one framed line, and a pretty-printed `RawValue` would
        // make it several (saved, then never loadable).
        let state = crate::backend::snapshot_state(&serde_json::value::to_raw_value(state)?)?;
        // From the check of the deletion state to the file's write: a deletion removing the
        // stream's snapshots cannot run in between (`lifecycle.rs`).
        let _snapshots = inner.lock_snapshots();
        let (current, deleted) = {
            let mut st = inner.lock_state();
            let version = st.stream(stream)?.map_or(0, |e| e.version);
            (version, st.deletion(stream)?)
        };
        crate::deletion::check_snapshot_version(stream, version, current, deleted)?;
        // The snapshot must not describe events that could still be lost: in the weaker modes
        // too, where nothing else syncs them, or a power loss could keep the snapshot (written
        // durably) and take back the events it stands for, and later appends would reach its
        // version with other events.
        let head = inner.lock_state().next_seq - 1;
        inner.wait_durable(head, true)?;
        let snapshot = Snapshot {
            stream: stream.to_owned(),
            version,
            time: (inner.clock)(),
            state,
        };
        let bytes = record::encode_object(&SnapshotFile {
            eventfile: "snapshot".into(),
            stream: stream.to_owned(),
            version,
            time: crate::time::format_rfc3339(snapshot.time),
            state: &snapshot.state,
        });
        let dir = ensure_dir(inner)?;
        crate::files::write_atomic(
            inner.storage.as_ref(),
            &dir,
            &file_name(stream, version),
            &bytes,
        )?;
        prune(inner, &dir, stream, inner.config.snapshots_kept)?;
        Ok(snapshot)
    }

    /// The newest usable snapshot of `stream`: intact, of a version the stream has, not below a
    /// truncation. Damaged files are skipped with a warning. `None` if there is none.
    pub fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        validate_stream(stream)?;
        let inner = &self.inner;
        let (current, deleted) = {
            let mut st = inner.lock_state();
            let version = st.stream(stream)?.map_or(0, |e| e.version);
            (version, st.deletion(stream)?)
        };
        let dir = inner.dir.join(SNAPSHOT_DIR);
        for version in versions(inner, &dir, stream)? {
            let path = dir.join(file_name(stream, version));
            let snap = match read_file(inner, &path) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("skipping snapshot: {e}");
                    continue;
                }
            };
            if snap.stream != stream {
                continue;
            }
            if snap.version != version {
                log::warn!(
                    "skipping snapshot {}: it holds version {}",
                    path.display(),
                    snap.version
                );
                continue;
            }
            if version > current {
                log::warn!(
                    "skipping snapshot {}: stream `{stream}` is only at version {current}",
                    path.display()
                );
                continue;
            }
            if !crate::deletion::snapshot_usable(version, current, deleted) {
                continue;
            }
            return Ok(Some(snap));
        }
        Ok(None)
    }
}

/// The snapshot directory, created (and made durable) if needed.
fn ensure_dir(inner: &Inner) -> Result<PathBuf> {
    let dir = inner.dir.join(SNAPSHOT_DIR);
    let exists = match inner.storage.list_dir(&dir) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io("list", &dir, e)),
    };
    if !exists {
        crate::files::create_dir(inner.storage.as_ref(), &dir)?;
    }
    Ok(dir)
}

/// Removes the snapshots of `stream` beyond the newest `keep`.
fn prune(inner: &Inner, dir: &Path, stream: &str, keep: usize) -> Result<()> {
    let mut kept = 0;
    let mut removed = false;
    for version in versions(inner, dir, stream)? {
        let path = dir.join(file_name(stream, version));
        // Another stream's file on a hash collision stays; a damaged one counts as ours.
        if read_file(inner, &path).is_ok_and(|s| s.stream != stream) {
            continue;
        }
        kept += 1;
        if kept > keep {
            inner
                .storage
                .remove_file(&path)
                .map_err(|e| Error::io("remove", &path, e))?;
            removed = true;
        }
    }
    if removed {
        inner
            .storage
            .sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(())
}

/// Removes every snapshot of `stream` (it was deleted).
pub(crate) fn remove_all(inner: &Inner, stream: &str) -> Result<()> {
    let dir = inner.dir.join(SNAPSHOT_DIR);
    let versions = versions(inner, &dir, stream)?;
    if versions.is_empty() {
        return Ok(());
    }
    for version in versions {
        let path = dir.join(file_name(stream, version));
        if read_file(inner, &path).is_ok_and(|s| s.stream != stream) {
            continue;
        }
        match inner.storage.remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &path, e)),
        }
    }
    inner
        .storage
        .sync_dir(&dir)
        .map_err(|e| Error::io("fsync directory", &dir, e))
}

/// Checks every snapshot file under `dir` (the store directory): `(path, problem)` for each
/// damaged one, and the number checked.
pub(crate) fn verify_dir(storage: &dyn Storage, dir: &Path) -> (usize, Vec<(PathBuf, String)>) {
    let dir = dir.join(SNAPSHOT_DIR);
    let Ok(mut names) = storage.list_dir(&dir) else {
        return (0, Vec::new());
    };
    names.sort_unstable();
    let mut checked = 0;
    let mut problems = Vec::new();
    for name in names {
        let path = dir.join(&name);
        if name.ends_with(".tmp") {
            continue;
        }
        checked += 1;
        let Some((hash, version)) = name.strip_suffix(EXT).and_then(|stem| stem.split_once('-'))
        else {
            problems.push((path, "not a snapshot file name".into()));
            continue;
        };
        let result = storage
            .read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| parse(&b));
        match result {
            Err(reason) => problems.push((path, reason)),
            Ok(s)
                if prefix(&s.stream) != format!("{hash}-") || version.parse() != Ok(s.version) =>
            {
                problems.push((
                    path,
                    "file name does not match its stream and version".into(),
                ));
            }
            Ok(_) => {}
        }
    }
    (checked, problems)
}
