//! The store handle: shared state, opening and closing, and the small read-only queries.
//!
//! Appends live in `writer.rs`, recovery and catch-up in `recovery.rs`, reads in `reader.rs`.
//! This module owns the in-memory state they share ([`State`]) and the locks around it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::{self, Durability, OpenOptions, StoreConfig};
use crate::error::{Error, Result};
use crate::state::State;
use crate::storage::{LockGuard, Storage};

/// Name of the lock file the writer holds.
pub(crate) const LOCK_FILE: &str = "LOCK";

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub storage: Arc<dyn Storage>,
    pub config: StoreConfig,
    /// The retention policy in force (persisted in the config file).
    pub policy: Mutex<crate::config::RetentionPolicy>,
    pub read_only: bool,
    /// Names the store in cursors.
    pub store_id: String,
    pub clock: crate::config::Clock,
    pub state: Mutex<State>,
    /// Held by `save_snapshot` from its check of the stream's deletion state to its file's
    /// write, and by a deletion that removes snapshots from their removal to its event's
    /// durability: no snapshot of a stream is saved between the removal of its snapshots and
    /// its deletion. Taken before `state`.
    pub snapshots: Mutex<()>,
    /// Group commit and the published head.
    pub commit: crate::commit::Commit,
    /// The consumers' checkpoints, in `checkpoints/` (created by the first save).
    pub checkpoints: crate::checkpoint::FileCheckpoints,
    /// What this handle has done since it was opened.
    pub metrics: crate::metrics::Counters,
    /// The writer's locks: the store's directory, and its `LOCK` file.
    _lock: Option<(LockGuard, LockGuard)>,
    /// Writes rolled segments' sidecars off the appending thread.
    pub sealer: crate::sealer::Sealer,
    /// Large batches' syncs, asked for as soon as their bytes are written (`commit.rs`,
    /// [`crate::commit::Ahead`]): the file to sync and its path.
    pub ahead: Arc<crate::commit::Ahead<SyncTarget>>,
    /// A read-only handle's follower failed to apply what the writer published, time after
    /// time (`follow.rs`): its waiters look again, refresh themselves and meet the error.
    pub stalled: std::sync::atomic::AtomicBool,
}

/// A file to sync ahead of its waiters, and its path for the error.
pub(crate) type SyncTarget = (Arc<dyn crate::storage::StorageFile>, PathBuf);

/// An open event store. Cheap to clone; clones share one handle and may be used from any
/// number of threads.
///
/// ```
/// use eventfile::{ExpectedVersion, NewEvent, Read, Store};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(dir.path())?;
/// store.append("order-42", ExpectedVersion::NoStream, [
///     NewEvent::new("OrderPlaced", json!({"customer": "ann"})),
///     NewEvent::new("ItemAdded", json!({"sku": "A-1", "qty": 2})),
/// ])?;
/// let types: Vec<String> = store
///     .read_stream("order-42", Read::forward())?
///     .map(|e| e.map(|e| e.event_type))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(types, ["OrderPlaced", "ItemAdded"]);
/// assert_eq!(store.stream_version("order-42"), 2);
/// # Ok::<(), eventfile::Error>(())
/// ```
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
    /// Shared by the clones only (never by background threads): when the last clone goes, it
    /// stops and joins the flusher, so that the store is closed (synced, checkpointed, lock
    /// released) by the time that drop returns.
    pub(crate) handle: Arc<Handle>,
}

/// Owns the background threads of a store: dropping it stops and joins the flusher, stops the
/// follower, and ends the subscriptions (they hold the store weakly and wait on `watch`).
pub(crate) struct Handle {
    _flusher: Option<crate::commit::Flusher>,
    /// Serves [`Inner::ahead`] in the default durability mode.
    _ahead: Option<crate::commit::AheadThread<SyncTarget>>,
    watch: Arc<crate::subscription::HeadWatch>,
    /// A read-only handle's follower of the writer, started by the first subscription or wait.
    pub(crate) follower: std::sync::OnceLock<StopFlag>,
    /// What the subscriptions and the follower pass through to use the store.
    pub(crate) gate: Arc<Gate>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.watch.close();
        // Wait for subscriptions and the follower to let go of the store, so that it is closed
        // (synced, lock released) when the last handle's drop returns, not on their threads.
        self.gate.close();
    }
}

/// The way in for the threads that use a store without a handle of their own (a subscription's
/// reads, the follower's refreshes): each call holds the store only inside the gate, and the
/// last handle's drop closes the gate and waits for those inside to leave.
#[derive(Default)]
pub(crate) struct Gate {
    /// Whether it is closed, and how many calls are inside.
    state: Mutex<(bool, usize)>,
    left: std::sync::Condvar,
}

/// A call inside the [`Gate`]; leaving is dropping it.
pub(crate) struct Inside<'a>(&'a Gate);

impl Gate {
    /// Enters, unless the store was closed.
    pub(crate) fn enter(&self) -> Option<Inside<'_>> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0 {
            return None;
        }
        s.1 += 1;
        Some(Inside(self))
    }

    fn close(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 = true;
        while s.1 > 0 {
            s = self.left.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 -= 1;
        if s.1 == 0 {
            self.0.left.notify_all();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .field("read_only", &self.inner.read_only)
            .field("head_seq", &self.head_seq())
            .finish()
    }
}

// Here rather than in config.rs: the options sit below the store that they open.
impl OpenOptions {
    /// Opens (or creates) the store in `dir`.
    pub fn open(self, dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(PathBuf::from(dir.as_ref()), self)
    }
}

impl Store {
    /// Opens the store in `dir` for writing with the default options, creating it if needed.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        OpenOptions::new().open(dir)
    }

    /// Opens the store in `dir` read-only (no lock taken; the writer may be running).
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Store> {
        OpenOptions::new().read_only(true).open(dir)
    }

    pub(crate) fn open_with(dir: PathBuf, opts: OpenOptions) -> Result<Store> {
        opts.validate()?;
        let storage = opts.storage.clone();
        let exists = dir.is_dir();
        if !exists && (opts.read_only || !opts.create) {
            return Err(Error::NotAStore {
                path: dir,
                reason: "the directory does not exist".into(),
            });
        }
        if !exists {
            crate::files::create_dir(storage.as_ref(), &dir)?;
        }
        // The directory itself first: it cannot be removed or replaced while the store is in it,
        // as a `LOCK` file can (tmp cleaners delete old empty files).
        let dir_lock = if opts.read_only {
            None
        } else {
            Some(lock(storage.as_ref(), &dir, None)?)
        };
        let loaded = config::load_config(storage.as_ref(), &dir)?;
        if loaded.is_none() {
            if opts.read_only || !opts.create {
                return Err(Error::NotAStore {
                    path: dir,
                    reason: format!("{} is missing", config::CONFIG_FILE),
                });
            }
            // Before any file is made: a directory refused here is left as it was.
            check_empty(storage.as_ref(), &dir)?;
        }
        // `LOCK` too, which is all that writers of earlier versions lock.
        let lock = match dir_lock {
            Some(d) => Some((d, lock(storage.as_ref(), &dir, Some(LOCK_FILE))?)),
            None => None,
        };
        let (config, store_id) = match loaded {
            Some((c, Some(id))) => (c, id),
            // Made before stores had ids: a reader cannot write one, so it uses a fixed one.
            Some((c, None)) if opts.read_only => (c, "unnamed".to_owned()),
            Some((c, None)) => {
                let id = config::new_store_id();
                config::write_config(storage.as_ref(), &dir, &c, &id)?;
                (c, id)
            }
            None => {
                let id = config::new_store_id();
                config::write_config(storage.as_ref(), &dir, &opts.config, &id)?;
                (opts.config, id)
            }
        };
        let mut state = State::new(crate::sealed::MapCache::new(
            opts.max_mapped_segments,
            opts.read_only,
            config.max_line(),
            opts.map_sealed,
            opts.read_cache_bytes,
        ));
        let limit = published_limit(storage.as_ref(), &dir, opts.read_only)?;
        crate::recovery::catch_up(&storage, &dir, &config, opts.read_only, limit, &mut state)?;
        if !opts.read_only {
            crate::files::remove_snapshot_temps(storage.as_ref(), &dir)?;
        }
        let head = state.next_seq - 1;
        // What recovery found is what readers may see from now on, in this process and others:
        // make it durable (a writer killed between its write and its sync left its last batch in
        // the page cache only), then publish it. Unless `HEAD` names exactly that head already:
        // a writer names in it only events it synced (`commit.rs`), so then there is nothing
        // to sync (a clean close published all it wrote), and the open makes no `fdatasync`
        // (0.3 to 5 ms on a busy disk, most of a clean open that read no checkpoint).
        let head_file = if opts.read_only {
            None
        } else {
            let published = crate::head::read_head(storage.as_ref(), &dir)
                .ok()
                .flatten();
            if let Some(file) = &state.log.active_file
                && published != Some(head)
            {
                let path = &state.active().path;
                rewrite_unpublished(
                    file.as_ref(),
                    unpublished_from(&state, published)?,
                    state.log.active_len,
                )
                .map_err(|e| Error::io("rewrite the unpublished tail of", path, e))?;
                file.sync_data()
                    .map_err(|e| Error::io("fdatasync", path, e))?;
            }
            Some(crate::head::HeadFile::create(storage.as_ref(), &dir, head)?)
        };
        let checkpoints = crate::checkpoint::FileCheckpoints::lazy(
            Arc::clone(&storage),
            dir.join(crate::files::CHECKPOINT_DIR),
        );
        let inner = Arc::new(Inner {
            dir,
            storage,
            checkpoints,
            metrics: crate::metrics::Counters::new(),
            config,
            policy: Mutex::new(config.retention),
            read_only: opts.read_only,
            store_id,
            clock: opts.clock.clone(),
            state: Mutex::new(state),
            snapshots: Mutex::new(()),
            commit: crate::commit::Commit::new(opts.durability, head, head_file),
            _lock: lock,
            sealer: crate::sealer::Sealer::default(),
            ahead: Arc::default(),
            stalled: Default::default(),
        });
        // The flusher holds its own reference to the store: joining it (when the last clone
        // drops its handle) means the store has been closed when that drop returns.
        let flusher = match (opts.durability, opts.read_only) {
            (Durability::Periodic(every), false) => {
                let inner = Arc::clone(&inner);
                Some(crate::commit::Flusher::spawn(every, move || {
                    let target = inner.lock_state().next_seq - 1;
                    // An error poisons the handle; the next append reports it.
                    let _ = inner.wait_durable(target, true);
                }))
            }
            _ => None,
        };
        // Holds its own reference too, released as the flusher's is.
        let ahead = (opts.durability == Durability::Fsync && !opts.read_only).then(|| {
            let served = Arc::clone(&inner);
            crate::commit::AheadThread::spawn(
                Arc::clone(&inner.ahead),
                move |upto, (file, path)| served.sync_ahead(upto, file.as_ref(), &path),
            )
        });
        let handle = Handle {
            _flusher: flusher,
            _ahead: ahead,
            watch: Arc::clone(inner.commit.watch()),
            follower: std::sync::OnceLock::new(),
            gate: Arc::default(),
        };
        Ok(Store {
            inner,
            handle: Arc::new(handle),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options the store was created with.
    pub fn config(&self) -> StoreConfig {
        StoreConfig {
            retention: self.inner.policy(),
            ..self.inner.config
        }
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// The seq of the newest event a reader can see (0 for an empty store).
    pub fn head_seq(&self) -> u64 {
        self.inner.commit.visible()
    }

    /// The oldest seq retention kept: reads by position below it fail with
    /// [`Error::Expired`]. 1 until retention first removes something.
    pub fn log_start(&self) -> u64 {
        self.inner.lock_state().removed.log_start
    }

    /// The current version of `stream`: the number of events appended to it (0 if none). This is
    /// the version an [`crate::ExpectedVersion::Exact`] append must name.
    ///
    /// Where the summary block that holds `stream` is found damaged and the stream table cannot
    /// be rebuilt from the sidecars either (a sealed segment is damaged too), this returns 0, and
    /// the stream's reads and appends report the damage (an append cannot use that 0: it fails
    /// with the same error). [`crate::EventStore::stream_version`] returns the error instead:
    /// use it where a store may be damaged.
    pub fn stream_version(&self, stream: &str) -> u64 {
        self.try_stream_version(stream).unwrap_or(0)
    }

    /// [`Store::stream_version`], with the error where the stream table cannot be read.
    pub(crate) fn try_stream_version(&self, stream: &str) -> Result<u64> {
        Ok(self
            .inner
            .lock_state()
            .stream(stream)?
            .map_or(0, |e| e.version))
    }

    /// The number of streams holding at least one live event: those [`Store::streams`] lists
    /// (a stream whose every event is deleted is not counted).
    ///
    /// Where a summary block is found damaged and the stream table cannot be rebuilt from the
    /// sidecars either (a sealed segment is damaged too), and some stream is deleted, this
    /// returns the number of streams that hold events, deleted ones too (without deletions the
    /// count needs no block).
    pub fn stream_count(&self) -> usize {
        self.try_stream_count()
            .unwrap_or_else(|_| self.inner.lock_state().streams.len())
    }

    /// [`Store::stream_count`], with the error where a damaged summary block and a failed
    /// rebuild from the sidecars leave the deleted streams' versions unknown.
    pub(crate) fn try_stream_count(&self) -> Result<usize> {
        let mut st = self.inner.lock_state();
        if st.deletions.map.is_empty() {
            return Ok(st.streams.len());
        }
        let deleted = Arc::clone(&st.deletions.map);
        st.with_streams(|t| {
            let mut n = 0;
            for item in t.range(std::ops::Bound::Unbounded) {
                let (name, e) = item?;
                n += usize::from(crate::deletion::is_live(&deleted, &name, e.version));
            }
            Ok(n)
        })
    }

    /// Read-only handles: picks up events (and segments) the writer made durable since this
    /// handle was opened or last refreshed. Returns the new head seq. On a writer, returns the
    /// head seq.
    pub fn refresh(&self) -> Result<u64> {
        self.inner.refresh()?;
        Ok(self.head_seq())
    }

    /// Makes every append so far durable (useful with the weaker [`Durability`] modes).
    pub fn sync(&self) -> Result<()> {
        if self.inner.read_only {
            return Ok(());
        }
        let (target, poisoned) = {
            let st = self.inner.lock_state();
            (st.next_seq - 1, st.poisoned.clone())
        };
        let synced = self.inner.wait_durable(target, true);
        // A poisoned handle says so, even when everything it wrote is now durable (a handle
        // poisoned by a failed write still syncs what it wrote before, `commit.rs`): its next
        // append would be refused.
        match poisoned {
            Some(cause) => synced.and(Err(Error::Poisoned { cause })),
            None => synced,
        }
    }

    /// Syncs and closes this handle, reporting any error (dropping the last handle does the same
    /// but can only ignore errors).
    pub fn close(self) -> Result<()> {
        let r = self.sync().and_then(|()| {
            if self.inner.read_only {
                return Ok(());
            }
            // Under the state lock, as a roll waits: an append on a clone must not pass its
            // check of the sealer between this taking the failure and poisoning the handle.
            let mut st = self.inner.lock_state();
            self.inner
                .sealer
                .wait()
                .inspect_err(|e| self.inner.poison(&mut st, e))
        });
        drop(self);
        r
    }
}

impl Inner {
    /// A read-only handle's catch-up with the writer's files (see [`Store::refresh`]); nothing
    /// on a writer.
    pub(crate) fn refresh(&self) -> Result<()> {
        if !self.read_only {
            return Ok(());
        }
        let mut st = self.lock_state();
        // The published head is read under the lock: of two refreshes, the later never applies
        // an older limit than the earlier one did.
        let limit = published_limit(self.storage.as_ref(), &self.dir, true)?;
        crate::recovery::catch_up(&self.storage, &self.dir, &self.config, true, limit, &mut st)?;
        let head = st.next_seq - 1;
        // Published with the lock released: the subscribers it wakes go straight to reading.
        drop(st);
        self.commit.caught_up(head);
        Ok(())
    }

    pub(crate) fn lock_snapshots(&self) -> MutexGuard<'_, ()> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the log inconsistent (the file is the
        // truth and appends write it last), so keep going with the inner state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn policy(&self) -> crate::config::RetentionPolicy {
        *self.policy.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The store's checkpoints, as [`crate::EventStore::checkpoints`] gives them: a position is
/// saved only once the events up to it are durable. In the weaker durability modes a consumer
/// in this process sees events before they are; a checkpoint saved past the durable head
/// would, after a power loss, pass over the events the log then gives those seqs to.
impl crate::checkpoint::Checkpoints for Inner {
    fn get(&self, name: &str) -> Result<Option<crate::checkpoint::Checkpoint>> {
        self.checkpoints.get(name)
    }

    fn put(&self, name: &str, position: u64, error: Option<&str>) -> Result<()> {
        // A read-only handle sees only what the writer published as durable.
        if !self.read_only {
            self.wait_durable(position.min(self.commit.visible()), true)?;
        }
        self.checkpoints.put(name, position, error)
    }

    fn list(&self) -> Result<Vec<crate::checkpoint::Checkpoint>> {
        self.checkpoints.list()
    }

    fn remove(&self, name: &str) -> Result<bool> {
        self.checkpoints.remove(name)
    }
}

impl Drop for Inner {
    // The flusher holds its own reference, so by the time this runs it has been stopped and
    // joined by the last `Handle`.
    fn drop(&mut self) {
        if self.read_only {
            return;
        }
        // The summary below names every sealed segment's sidecar: let the last one be written.
        // A failure is left to the next open, which rebuilds a missing sidecar.
        let _ = self.sealer.wait();
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let Some(file) = st.log.active_file.clone().filter(|_| st.poisoned.is_none()) else {
            return;
        };
        // Everything written is synced (in the default mode every append already was), then the
        // active segment's index is saved as a checkpoint so the next open need not rescan it.
        if self.commit.durability() != Durability::Fsync {
            if file.sync_data().is_err() {
                return;
            }
            // Readers in other processes see what the weaker modes wrote only now. (In the
            // default mode every batch was synced and published by its own append.)
            let _ = self.commit.durable(st.next_seq - 1);
        }
        let mut checkpoint_crc = 0;
        if let Some(seg) = st.log.segments.last().filter(|s| s.is_active())
            && st.log.active_len > seg.data_start
        {
            let name = format!("{:020}.{}", seg.base, crate::index::INDEX_EXT);
            // No checkpoint where the one this index continues from had to be rebuilt and the
            // segment turned out damaged: the next open scans the segment and reports it.
            if let Ok(bytes) = st.log.active_index.encode(seg.base, st.log.active_len)
                && crate::files::write_atomic(self.storage.as_ref(), &self.dir, &name, &bytes)
                    .is_ok()
                && let Some(crc) = bytes.last_chunk::<4>()
            {
                checkpoint_crc = u32::from_le_bytes(*crc);
            }
        }
        // And the stream table, so that the next open need not read the sealed segments'
        // sidecars nor the checkpoint's stream terms. A failure costs the next open only time.
        let _ = crate::summary::write(self.storage.as_ref(), &self.dir, st, checkpoint_crc);
    }
}

/// Up to which seq a read-only handle may apply what the files hold: the head the writer
/// published (`head.rs`), read before the files, so that everything up to it is durable. No
/// limit for the writer, nor for a store no writer of this version has opened (no `HEAD`).
fn published_limit(storage: &dyn Storage, dir: &Path, read_only: bool) -> Result<u64> {
    if !read_only {
        return Ok(u64::MAX);
    }
    Ok(crate::head::read_head(storage, dir)?.unwrap_or(u64::MAX))
}

/// Where the bytes of the active segment that `HEAD` does not name start: the record after the
/// published head, or the file's start when the published head lies below the segment (or
/// there is none).
fn unpublished_from(state: &State, published: Option<u64>) -> Result<u64> {
    let active = state.active();
    let Some(ord) = published
        .and_then(|p| (p + 1).checked_sub(active.base))
        .and_then(|o| u32::try_from(o).ok())
    else {
        return Ok(0);
    };
    Ok(state
        .log
        .active_index
        .position(ord)?
        .map_or(state.log.active_len, u64::from))
}

/// Writes `file`'s bytes `from..to` again, as they read now, before the open syncs them.
///
/// A writer whose `fdatasync` failed may have left them in the page cache only: Linux marks
/// the pages of a failed writeback clean though they never reached the disk, so a later
/// `fdatasync` (this open's, on a descriptor that never saw the error) returns success without
/// writing them. Recovery reads them back from the cache all the same, and the open would then
/// publish them as durable. Written again, they are dirty, and the sync writes them or fails.
/// Bytes the previous writer did sync are written twice, which costs one batch's bytes after a
/// crash and nothing after a clean close (the open syncs nothing then).
fn rewrite_unpublished(
    file: &dyn crate::storage::StorageFile,
    from: u64,
    to: u64,
) -> std::io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    let mut buf = Vec::new();
    let mut at = from;
    while at < to {
        let n = (to - at).min(CHUNK) as usize;
        buf.resize(n, 0);
        crate::block_cache::read_exact(file, &mut buf, at)?;
        file.write_all_at(&buf, at)?;
        at += n as u64;
    }
    Ok(())
}

/// Stops a background thread when dropped: the thread checks the flag at each wake-up.
pub(crate) struct StopFlag(pub(crate) Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Locks the store's directory (an exclusive `flock` on the directory itself), so that one
/// writer per store holds even when the `LOCK` file is removed or replaced under a running one;
/// or, with `name`, the file `name` in it (created if missing).
fn lock(storage: &dyn Storage, dir: &Path, name: Option<&str>) -> Result<LockGuard> {
    let path = name.map_or_else(|| dir.to_owned(), |n| dir.join(n));
    match storage.try_lock(&path, name.is_none()) {
        Ok(Some(guard)) => Ok(guard),
        Ok(None) => Err(Error::Locked {
            path: dir.join(LOCK_FILE),
        }),
        Err(e) => Err(Error::io("lock", path, e)),
    }
}

/// Refuses to create a store in a directory holding someone else's files.
fn check_empty(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let names = storage
        .list_dir(dir)
        .map_err(|e| Error::io("list", dir, e))?;
    let foreign: Vec<&String> = names
        .iter()
        .filter(|n| *n != LOCK_FILE && !n.ends_with(".tmp"))
        .collect();
    if let Some(name) = foreign.first() {
        return Err(Error::NotAStore {
            path: dir.to_owned(),
            reason: format!(
                "it has no {} but is not empty (it holds `{name}`); refusing to create a store there",
                config::CONFIG_FILE
            ),
        });
    }
    Ok(())
}
