//! A sealed segment as the store keeps it: a small summary known since open, and its two
//! open files (the segment and its index sidecar), opened on first use and closed again when
//! too many are open.
//!
//! Both files are read with `pread`, not mapped (issue 16): through a map, the kernel maps the
//! page-cache folios around each page a read touches, and reading one stream of a 1,000,000-event
//! store left 12 MiB of each sidecar and 1.6 MiB of each segment resident. Lookups in the
//! sidecar read the bytes they need (`sealed_index.rs`); reads of records read their runs of
//! bytes (`segment.rs`, `Lines`).
//!
//! [`crate::OpenOptions::map_sealed_segments`] maps both instead, for speed at the price of
//! that resident memory.
//!
//! A store-wide [`MapCache`] keeps at most `max_mapped_segments` sealed segments open (two
//! files each), and closes the one opened longest ago when another is opened, so that a store
//! of any number of segments stays within the process's limit on open files. A read that holds
//! a segment's files keeps them open after eviction: eviction only drops the cache's reference.
//!
//! A sidecar is checked when it is first used, not when the store is opened (issue 16): a
//! format-2 one by its header and block sums, then block by block as lookups read it
//! (`sealed_index.rs`); a format-1 one in full, by reads through small buffers (`sidecar.rs`).
//! One that is missing or fails the check, or whose block fails its sum under a lookup, is
//! rebuilt from its segment (every record checked) and rewritten (a writer) or kept in memory
//! (a read-only handle): never trusted. Later opens of the same segment (after eviction) check
//! only the header and the count (and a format-2 file's block sums again): sidecars are
//! replaced only by such rebuilds, with the same contents.
//!
//! A segment's files may vanish under a read-only handle when the writer (another process)
//! removes them by retention or compaction. A load that finds them gone consults the removal
//! manifest: a segment it covers is reported as [`Error::Expired`], anything else as the I/O
//! error naming the file. This module writes no file but a rebuilt sidecar.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::block_cache::{BlockCache, CachedFile};
use crate::error::{Error, Result};
use crate::index::IndexFile;
use crate::sealed_index::{Samples, SealedIndex};
use crate::segment::{Indexed, Lines, ScanEnd, SegmentData};
use crate::storage::{Storage, StorageFile};

/// What a sealed segment's sidecar says, kept without its map.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    /// Events in the segment.
    pub count: u64,
    /// Time of its last event (0 if it holds none).
    pub last_time: i64,
    /// Size of the sidecar in bytes.
    pub index_bytes: u64,
}

impl Summary {
    pub(crate) fn of(ix: &IndexFile) -> Summary {
        let last = ix.count.checked_sub(1).map(|l| l as u32);
        Summary {
            count: ix.count,
            last_time: last.and_then(|l| ix.time(l)).unwrap_or(0),
            index_bytes: ix.byte_len(),
        }
    }
}

/// The open files of a loaded sealed segment.
#[derive(Clone)]
struct Loaded {
    data: SegmentData,
    index: Arc<SealedIndex>,
}

/// A sealed segment: immutable files, opened on demand.
pub(crate) struct Sealed {
    pub base: u64,
    /// The segment file.
    pub path: PathBuf,
    /// Its length (the sidecar describes exactly this many bytes).
    pub len: u64,
    pub summary: Summary,
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    cache: Arc<MapCache>,
    /// An index with no file behind it (rebuilt by a read-only handle): never evicted.
    pinned: OnceLock<Arc<SealedIndex>>,
    /// The index of a segment whose sidecar the sealer is still encoding or writing
    /// (`sealer.rs`): reads wait for it to be encoded, then use it instead of the file until
    /// [`Sealed::written`].
    writing: Mutex<Writing>,
    /// Signalled when `writing` leaves [`Writing::Encoding`].
    encoded: std::sync::Condvar,
    /// The sidecar's size (`summary.index_bytes`, set by the sealer once it has encoded it).
    index_bytes: AtomicU64,
    /// Whether the sidecar passed its full check (at open, or when first mapped).
    checked: AtomicBool,
    slot: Mutex<Option<Loaded>>,
    /// The least and greatest event id in the segment (`None`: it holds none), read from the
    /// sidecar by the first id lookup and kept after the map is dropped.
    id_range: OnceLock<IdRange>,
    /// Set when the segment got another sidecar (`reindex`, a rebuild after a damaged block)
    /// whose id range is not the one kept: the one kept came from a sidecar that passed its
    /// checks but was not this segment's, and is no longer used.
    id_range_stale: AtomicBool,
    /// The sidecar's sample of terms, read by the first lookup and kept when the files are
    /// closed: an evicted segment's next lookup would otherwise read it again.
    sample: Samples,
    /// Held while the sidecar is rebuilt or rewritten ([`Sealed::lock_rebuild`]).
    rebuilding: Mutex<()>,
}

/// The least and greatest event id of a segment, `None` if it holds none.
type IdRange = Option<(Box<str>, Box<str>)>;

/// Where a newly sealed segment's index is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// In its sidecar, which was written and checked.
    File,
    /// In memory only, for good (a read-only handle cannot write the sidecar it rebuilt).
    Pinned,
}

/// A segment's index while the sealer makes its sidecar.
enum Writing {
    /// Its sidecar is a file, or will be rebuilt from the segment if it is not.
    Done,
    /// Being encoded: a use waits.
    Encoding,
    /// Encoded, held in memory while the file is written.
    Encoded(Arc<SealedIndex>),
}

/// Why a sealed segment's sidecar was not used.
enum Unusable {
    /// Missing, or failing its checks: rebuilt from the segment.
    Rebuild,
    /// It could not be opened for a reason that says nothing about it: the lookup fails.
    Failed(Error),
}

impl Sealed {
    /// A sealed segment whose index was just checked (`index`, read from its sidecar, or built
    /// in memory: see [`Held`]). Its files are opened again when first used: what it keeps of
    /// `index` is the summary (and, while held in memory, the bytes).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        storage: &Arc<dyn Storage>,
        cache: &Arc<MapCache>,
        dir: &Path,
        base: u64,
        path: PathBuf,
        len: u64,
        index: Arc<IndexFile>,
        held: Held,
    ) -> Arc<Sealed> {
        let sealed = Sealed::lazy(storage, cache, dir, base, path, len, Summary::of(&index));
        sealed.checked.store(true, Ordering::Release);
        if held == Held::Pinned
            && let Ok(ix) =
                SealedIndex::in_memory(Arc::clone(index.bytes()), &sealed.path, base, len)
        {
            let _ = sealed.pinned.set(Arc::new(ix));
        }
        sealed
    }

    /// A segment just sealed whose sidecar the sealer is about to encode and write
    /// (`sealer.rs`): `summary` has its events and last time (its sidecar size is known once
    /// encoded: [`Sealed::index_bytes`]). A use of its index waits for [`Sealed::encoded`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sealing(
        storage: &Arc<dyn Storage>,
        cache: &Arc<MapCache>,
        dir: &Path,
        base: u64,
        path: PathBuf,
        len: u64,
        summary: Summary,
    ) -> Arc<Sealed> {
        let sealed = Sealed::lazy(storage, cache, dir, base, path, len, summary);
        sealed.checked.store(true, Ordering::Release);
        *sealed.lock_writing() = Writing::Encoding;
        sealed
    }

    /// The sealer has encoded the index of a segment made by [`Sealed::sealing`] (`None`: it
    /// could not, and the segment's sidecar is rebuilt from the segment on first use).
    pub(crate) fn encoded(&self, index: Option<(SealedIndex, u64)>) {
        let mut w = self.lock_writing();
        if !matches!(*w, Writing::Encoding) {
            return;
        }
        *w = match index {
            Some((ix, bytes)) => {
                self.index_bytes.store(bytes, Ordering::Release);
                // The sidecar will hold the same bytes: its sample is the same too.
                Writing::Encoded(Arc::new(ix.sharing(&self.sample)))
            }
            None => {
                self.checked.store(false, Ordering::Release);
                Writing::Done
            }
        };
        drop(w);
        self.encoded.notify_all();
    }

    /// The sealer is done with the sidecar: the index held in memory is dropped, and the next
    /// use opens the file and checks it in full, as it does a sidecar known from the summary
    /// (one the sealer failed to write is missing, and is rebuilt from the segment).
    pub(crate) fn written(&self) {
        let mut w = self.lock_writing();
        if matches!(*w, Writing::Encoded(_)) {
            *w = Writing::Done;
            drop(w);
            self.checked.store(false, Ordering::Release);
            self.evict();
        }
    }

    /// The size of the segment's sidecar, waiting for the sealer to have encoded it.
    pub(crate) fn index_bytes(&self) -> u64 {
        drop(self.wait_encoded());
        self.index_bytes.load(Ordering::Acquire)
    }

    /// The sidecar's state, once it is no longer being encoded.
    fn wait_encoded(&self) -> std::sync::MutexGuard<'_, Writing> {
        let mut w = self.lock_writing();
        while matches!(*w, Writing::Encoding) {
            w = self.encoded.wait(w).unwrap_or_else(|p| p.into_inner());
        }
        w
    }

    fn lock_writing(&self) -> std::sync::MutexGuard<'_, Writing> {
        self.writing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sealed segment known from the store's summary (`summary.rs`): nothing mapped or
    /// checked until it is first used.
    pub(crate) fn lazy(
        storage: &Arc<dyn Storage>,
        cache: &Arc<MapCache>,
        dir: &Path,
        base: u64,
        path: PathBuf,
        len: u64,
        summary: Summary,
    ) -> Arc<Sealed> {
        Arc::new(Sealed {
            base,
            path,
            len,
            summary,
            dir: dir.to_owned(),
            storage: Arc::clone(storage),
            cache: Arc::clone(cache),
            pinned: OnceLock::new(),
            writing: Mutex::new(Writing::Done),
            encoded: std::sync::Condvar::new(),
            index_bytes: AtomicU64::new(summary.index_bytes),
            checked: AtomicBool::new(false),
            slot: Mutex::new(None),
            id_range: OnceLock::new(),
            id_range_stale: AtomicBool::new(false),
            sample: Samples::default(),
            rebuilding: Mutex::new(()),
        })
    }

    /// The segment's index, opening it if it is not.
    pub(crate) fn index(self: &Arc<Self>) -> Result<Arc<SealedIndex>> {
        Ok(self.load()?.index)
    }

    /// Whether the segment may hold event `id`: false when the id sorts outside the segment's
    /// least and greatest id. Ids that grow with time (UUIDv7, as the store makes them) fall
    /// outside every older segment, so an import or a retry looks up a new id without searching
    /// each sealed sidecar (an import into a store of ten segments spent half its time there).
    pub(crate) fn may_hold_id(self: &Arc<Self>, id: &str) -> Result<bool> {
        let holds = |r: &IdRange| {
            r.as_ref()
                .is_some_and(|(least, greatest)| &**least <= id && id <= &**greatest)
        };
        if self.id_range_stale.load(Ordering::Acquire) {
            return Ok(holds(&self.index()?.id_range()?));
        }
        let range = match self.id_range.get() {
            Some(r) => r,
            None => {
                let r = self.index()?.id_range()?;
                self.id_range.get_or_init(|| r)
            }
        };
        Ok(holds(range))
    }

    /// The segment has another sidecar, whose id range is `new`: the range kept is no longer
    /// used if `new` differs (or could not be read).
    fn check_id_range(&self, new: Result<IdRange>) {
        if let Some(kept) = self.id_range.get()
            && new.ok().as_ref() != Some(kept)
        {
            self.id_range_stale.store(true, Ordering::Release);
        }
    }

    /// The segment's bytes, opening the file if it is not.
    pub(crate) fn data(self: &Arc<Self>) -> Result<SegmentData> {
        Ok(self.load()?.data)
    }

    /// Forgets the open sidecar after `reindex` rewrote it (`bytes` long): the next use opens
    /// the new one.
    pub(crate) fn reload_index(&self, written: &crate::index::IndexFile) {
        self.index_bytes
            .store(written.byte_len(), Ordering::Release);
        self.evict();
        self.check_id_range(Ok(written.id_range()));
    }

    fn lock_slot(&self) -> std::sync::MutexGuard<'_, Option<Loaded>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the files (a read holding them keeps them open).
    fn evict(&self) {
        self.lock_slot().take();
    }

    fn load(self: &Arc<Self>) -> Result<Loaded> {
        let mut slot = self.lock_slot();
        if let Some(l) = slot.as_ref() {
            return Ok(l.clone());
        }
        let loaded = self.map_files().map_err(|e| self.explain(e))?;
        self.healable(&loaded.index);
        *slot = Some(loaded.clone());
        drop(slot);
        self.cache.loaded(self);
        Ok(loaded)
    }

    fn map_files(&self) -> Result<Loaded> {
        let file = self
            .storage
            .open(&self.path, false)
            .map_err(|e| Error::io("open", &self.path, e))?;
        let len = file.len().map_err(|e| Error::io("stat", &self.path, e))?;
        if len != self.len {
            return Err(Error::corrupt(
                &self.path,
                len.min(self.len),
                format!(
                    "sealed segment is {len} bytes long, but was {} when the store was opened",
                    self.len
                ),
            ));
        }
        let writing = match &*self.wait_encoded() {
            Writing::Encoded(ix) => Some(Arc::clone(ix)),
            _ => None,
        };
        let index = match self.pinned.get().cloned().or(writing) {
            Some(ix) => ix,
            None => self.map_index(&file)?,
        };
        // Read, not mapped, unless asked: see the module's documentation.
        let data = match self.cache.map {
            true => file.map().map_err(|e| Error::io("map", &self.path, e))?,
            false => None,
        };
        Ok(Loaded {
            data: match data {
                Some(map) => SegmentData::Active {
                    map: Arc::new(map),
                    file,
                },
                None => SegmentData::Sealed(CachedFile::new(file, self.len, &self.cache.blocks)),
            },
            index,
        })
    }

    /// Opens the sidecar, checking it in full the first time; rebuilds one that is missing or
    /// fails its checks (from `segment`, the segment's file). An error opening it that says
    /// nothing about the file (out of descriptors, no permission) is passed on: rebuilding
    /// would scan the whole segment only to fail writing the sidecar the same way.
    fn map_index(&self, segment: &Arc<dyn StorageFile>) -> Result<Arc<SealedIndex>> {
        let path = crate::segment::index_path(&self.dir, self.base);
        match self.open_index(&path) {
            Ok(ix) => Ok(ix),
            Err(Unusable::Failed(e)) => Err(e),
            // Why it is unusable does not matter: the rebuild checks every record.
            Err(Unusable::Rebuild) => self.rebuild(segment),
        }
    }

    /// The sidecar, if it is sound and describes this segment as the store knows it.
    fn open_index(&self, path: &Path) -> std::result::Result<Arc<SealedIndex>, Unusable> {
        let file = match self.storage.open(path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Unusable::Rebuild);
            }
            Err(e) => return Err(Unusable::Failed(Error::io("open", path, e))),
        };
        // A format-2 sidecar read by `pread` is checked a block at a time as lookups read it
        // (`SealedIndex::open` checks its block sums and header now). Any other (format 1, or
        // one to be mapped) is checked in full by reads the first time: a sidecar this crate
        // wrote passes; anything else is rebuilt (never read whole into memory to look again:
        // its length is whatever the file says).
        let full_check = |file: &Arc<dyn StorageFile>| {
            if !self.checked.load(Ordering::Acquire) {
                crate::sidecar::check_by_reads(file.as_ref(), self.base, Some(self.len))
                    .map_err(|_| Unusable::Rebuild)?;
                // Only a whole check says so: a format-2 open checks only what it reads, and a
                // format-1 file found at the path later (an older version's rebuild) is checked.
                self.checked.store(true, Ordering::Release);
            }
            Ok(())
        };
        let ix = match self.cache.map {
            true => {
                full_check(&file)?;
                let map = file
                    .map()
                    .map_err(|e| Unusable::Failed(Error::io("map", path, e)))?;
                match map {
                    Some(m) => SealedIndex::in_memory(Arc::new(m), path, self.base, self.len),
                    None => SealedIndex::open(file, path, self.base, Some(self.len)),
                }
                .map_err(|_| Unusable::Rebuild)?
            }
            false => {
                let ix = SealedIndex::open(Arc::clone(&file), path, self.base, Some(self.len))
                    .map_err(|_| Unusable::Rebuild)?;
                if !ix.checks_blocks() {
                    full_check(&file)?;
                }
                ix
            }
        }
        .sharing(&self.sample)
        .caching(&self.cache.blocks);
        // Not the events the store counted for the segment, or not ending at the time it
        // recorded (which queries use to pass over the segment without its sidecar).
        let last = ix.count.checked_sub(1).map(|l| l as u32);
        let last_time = match last.map(|l| ix.time(l)).transpose() {
            Ok(t) => t.flatten().unwrap_or(0),
            Err(_) => return Err(Unusable::Rebuild),
        };
        if ix.count != self.summary.count || last_time != self.summary.last_time {
            return Err(Unusable::Rebuild);
        }
        Ok(Arc::new(ix))
    }

    /// Rebuilds the sidecar from the segment's records, every one checked (its frame, and its
    /// seq following the previous one), and holding the events the store counted for it. A
    /// writer rewrites the sidecar; a read-only handle keeps the index in memory.
    /// Read with bounded reads, not through the map: a scan through a map would make the whole
    /// segment resident.
    fn rebuild(&self, segment: &Arc<dyn StorageFile>) -> Result<Arc<SealedIndex>> {
        let _rebuilding = self.lock_rebuild();
        let data = SegmentData::File(Arc::clone(segment));
        let mut lines = Lines::new(data, self.len, self.cache.max_line);
        let (header_base, data_start) = crate::segment::read_header(&mut lines, &self.path)?;
        if header_base != self.base {
            return Err(Error::corrupt(
                &self.path,
                0,
                format!(
                    "header says base seq {header_base}, file name says {}",
                    self.base
                ),
            ));
        }
        let Indexed {
            mem,
            count,
            last_time,
            scan,
        } = crate::segment::index_records(&mut lines, &self.path, data_start, self.base)?;
        match scan.end {
            ScanEnd::Clean => {}
            ScanEnd::TornTail { offset, reason } | ScanEnd::Damaged { offset, reason, .. } => {
                return Err(Error::corrupt(
                    &self.path,
                    offset,
                    format!("sealed segment: {reason}"),
                ));
            }
        }
        if count != self.summary.count {
            return Err(Error::corrupt(
                &self.path,
                0,
                format!(
                    "sealed segment holds {count} events, but {} when the store was opened",
                    self.summary.count
                ),
            ));
        }
        let last_time = last_time.unwrap_or(0);
        if last_time != self.summary.last_time {
            return Err(Error::corrupt(
                &self.path,
                0,
                format!(
                    "sealed segment's last event is at {}, but {} when the store was opened",
                    crate::time::format_rfc3339(last_time),
                    crate::time::format_rfc3339(self.summary.last_time)
                ),
            ));
        }
        let path = crate::segment::index_path(&self.dir, self.base);
        let ix = if self.cache.read_only {
            None
        } else {
            let written = crate::sidecar::write_index(
                self.storage.as_ref(),
                &self.dir,
                self.base,
                self.len,
                &mem,
            )?;
            // Its size may differ from the one replaced (a format-1 file rewritten as format 2):
            // what the next summary records, and `verify` holds it to.
            self.index_bytes
                .store(written.byte_len(), Ordering::Release);
            self.storage
                .open(&path, false)
                .ok()
                .and_then(|f| SealedIndex::open(f, &path, self.base, Some(self.len)).ok())
                .map(|ix| ix.sharing(&self.sample).caching(&self.cache.blocks))
        };
        let ix = match ix {
            Some(ix) => Arc::new(ix),
            // Read-only, or the rewritten sidecar cannot be read back: held in memory.
            None => {
                let bytes = Arc::new(crate::storage::Mapped::Bytes(
                    mem.encode(self.base, self.len)?,
                ));
                let ix = SealedIndex::in_memory(bytes, &path, self.base, self.len)
                    .map_err(|r| Error::corrupt(&path, 0, r))?;
                Arc::clone(self.pinned.get_or_init(|| Arc::new(ix)))
            }
        };
        self.checked.store(true, Ordering::Release);
        Ok(ix)
    }

    /// Makes the index again from the segment after a lookup found a block of the sidecar
    /// damaged (rewriting the sidecar, or holding the index in memory in a read-only handle),
    /// and has later uses take the new one.
    fn heal(self: &Arc<Self>) -> Result<Arc<SealedIndex>> {
        let segment = self
            .storage
            .open(&self.path, false)
            .map_err(|e| self.explain(Error::io("open", &self.path, e)))?;
        let ix = self.rebuild(&segment).map_err(|e| self.explain(e))?;
        self.check_id_range(ix.id_range());
        self.healable(&ix);
        if let Some(l) = self.lock_slot().as_mut() {
            l.index = Arc::clone(&ix);
        }
        Ok(ix)
    }

    /// Has `ix` made again from this segment when a read finds a block of its file damaged
    /// (nothing, once the segment is no longer the store's: the read's error stands).
    fn healable(self: &Arc<Self>, ix: &Arc<SealedIndex>) {
        let this = Arc::downgrade(self);
        ix.healing_by(Box::new(move || match this.upgrade() {
            Some(s) => s.heal().map(Some),
            None => Ok(None),
        }));
    }

    /// Held while this segment's sidecar is rebuilt or rewritten (`rebuild`, `reindex`): two
    /// writers of one sidecar would share its temporary file.
    pub(crate) fn lock_rebuild(&self) -> std::sync::MutexGuard<'_, ()> {
        self.rebuilding.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A file that vanished was removed on purpose if the removal manifest covers the segment
    /// (retention or compaction in the writer's process): its events expired.
    fn explain(&self, err: Error) -> Error {
        let vanished = matches!(&err, Error::Io { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound);
        if !vanished {
            return err;
        }
        match crate::manifest::load_manifest(self.storage.as_ref(), &self.dir) {
            Ok(m) => match m.range_of(self.base) {
                Some(r) => Error::Expired {
                    what: "seq".into(),
                    requested: self.base,
                    first_available: if r.base < m.log_start {
                        m.log_start
                    } else {
                        r.end
                    },
                },
                None => err,
            },
            Err(_) => err,
        }
    }
}

/// Bounds how many sealed segments are mapped at once, store-wide.
pub(crate) struct MapCache {
    max: usize,
    /// Whether the store is read-only: a sidecar rebuilt on first use is then kept in memory.
    read_only: bool,
    /// The longest record line, for such rebuilds.
    max_line: usize,
    /// Whether open segments and sidecars are mapped rather than read
    /// (`OpenOptions::map_sealed_segments`).
    map: bool,
    /// Loaded segments, oldest load first (entries whose segment is gone are skipped).
    queue: Mutex<VecDeque<Weak<Sealed>>>,
    /// Blocks of the files read by `pread` (`OpenOptions::read_cache_bytes`).
    blocks: Arc<BlockCache>,
}

impl MapCache {
    /// The store-wide block cache (the summary's blocks are read through it too).
    pub(crate) fn blocks(&self) -> &Arc<BlockCache> {
        &self.blocks
    }

    /// A cache of at most `max` open segments, for a store opened `read_only` whose records
    /// are at most `max_line` bytes, keeping `cache_bytes` of their blocks.
    pub(crate) fn new(
        max: usize,
        read_only: bool,
        max_line: usize,
        map: bool,
        cache_bytes: usize,
    ) -> Arc<MapCache> {
        Arc::new(MapCache {
            max: max.max(1),
            read_only,
            max_line,
            map,
            queue: Mutex::new(VecDeque::new()),
            blocks: BlockCache::new(cache_bytes),
        })
    }

    fn loaded(&self, s: &Arc<Sealed>) {
        self.push(Arc::downgrade(s));
    }

    fn push(&self, w: Weak<Sealed>) {
        let victims: Vec<Arc<Sealed>> = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.push_back(w);
            let mut victims = Vec::new();
            while q.len() > self.max {
                if let Some(v) = q.pop_front().and_then(|w| w.upgrade()) {
                    victims.push(v);
                }
            }
            victims
        };
        // Never under the queue's lock: eviction takes the segment's own lock.
        for v in victims {
            v.evict();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{MemIndex, Terms};
    use crate::storage::OsStorage;

    /// An index of 100 events whose ids are `{prefix}-0000` to `{prefix}-0099`.
    fn ids(prefix: &str) -> MemIndex {
        let mut m = MemIndex::default();
        for i in 0..100u64 {
            let terms = Terms {
                stream: "s".into(),
                event_type: "T".into(),
                id: format!("{prefix}-{i:04}"),
                ..Terms::default()
            };
            m.add(100 + i * 40, 1_000 + i as i64, &terms.borrowed());
        }
        m
    }

    /// The id range a segment keeps from its first sidecar answers "not here" without a
    /// lookup. One kept from a sidecar that passed its checks but was not the segment's (here:
    /// other ids) is not used once `reindex` wrote the right one: it would answer "not here"
    /// for the segment's own ids, and a retry of one of them would be appended again.
    #[test]
    fn an_id_range_kept_from_a_replaced_sidecar_of_other_ids_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(OsStorage);
        let cache = MapCache::new(4, false, 1 << 20, false, 1 << 20);
        let (base, len) = (1, 100 + 100 * 40);
        let path = dir.path().join(crate::segment::segment_name(base));
        std::fs::write(&path, vec![b'x'; len as usize]).unwrap();
        let wrong = crate::sidecar::write_index(storage.as_ref(), dir.path(), base, len, &ids("a"))
            .unwrap();
        let sealed = Sealed::new(
            &storage,
            &cache,
            dir.path(),
            base,
            path,
            len,
            wrong,
            Held::File,
        );
        assert!(sealed.may_hold_id("a-0050").unwrap());
        assert!(!sealed.may_hold_id("b-0050").unwrap());
        let right = crate::sidecar::write_index(storage.as_ref(), dir.path(), base, len, &ids("b"))
            .unwrap();
        sealed.reload_index(&right);
        assert!(sealed.may_hold_id("b-0050").unwrap());
        assert!(!sealed.may_hold_id("a-0050").unwrap());
        // Rewritten with the same ids: the range kept stays in use.
        let fresh = Sealed::new(
            &storage,
            &cache,
            dir.path(),
            base,
            sealed.path.clone(),
            len,
            right,
            Held::File,
        );
        assert!(fresh.may_hold_id("b-0001").unwrap());
        let again = crate::sidecar::write_index(storage.as_ref(), dir.path(), base, len, &ids("b"))
            .unwrap();
        fresh.reload_index(&again);
        assert!(!fresh.id_range_stale.load(Ordering::Acquire));
    }
}
