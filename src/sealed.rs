//! A sealed segment as the store keeps it: a small summary known since open, and its two
//! memory maps (the segment's bytes and its index sidecar), loaded on first use and dropped
//! again when too many are live.
//!
//! Why: the kernel allows a process about 65,000 maps (`vm.max_map_count`), and a store that
//! mapped every sealed segment and sidecar could not open past about 32,700 segments. Here a
//! store-wide [`MapCache`] keeps at most `max_mapped_segments` sealed segments mapped (two maps
//! each), and unmaps the one loaded longest ago when another is loaded. A read that holds a map
//! keeps it alive after eviction: eviction only drops the cache's reference.
//!
//! A segment's files may vanish under a read-only handle when the writer (another process)
//! removes them by retention or compaction. A load that finds them gone consults the removal
//! manifest: a segment it covers is reported as [`Error::Expired`], anything else as the I/O
//! error naming the file. This module must never write a file.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::error::{Error, Result};
use crate::index::IndexFile;
use crate::segment::SegmentData;
use crate::storage::{Mapped, Storage};

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

/// The maps of a loaded sealed segment.
#[derive(Clone)]
struct Loaded {
    data: SegmentData,
    index: Arc<IndexFile>,
}

/// A sealed segment: immutable files, mapped on demand.
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
    pinned: Option<Arc<IndexFile>>,
    slot: Mutex<Option<Loaded>>,
    /// The least and greatest event id in the segment (`None`: it holds none), read from the
    /// sidecar by the first id lookup and kept after the map is dropped.
    id_range: OnceLock<Option<(Box<str>, Box<str>)>>,
}

impl Sealed {
    /// A sealed segment whose maps are already made (`index` read from its sidecar, or built in
    /// memory when `pinned`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        storage: &Arc<dyn Storage>,
        cache: &Arc<MapCache>,
        dir: &Path,
        base: u64,
        path: PathBuf,
        len: u64,
        data: SegmentData,
        index: Arc<IndexFile>,
        pinned: bool,
    ) -> Arc<Sealed> {
        let sealed = Arc::new(Sealed {
            base,
            path,
            len,
            summary: Summary::of(&index),
            dir: dir.to_owned(),
            storage: Arc::clone(storage),
            cache: Arc::clone(cache),
            pinned: pinned.then(|| Arc::clone(&index)),
            slot: Mutex::new(Some(Loaded { data, index })),
            id_range: OnceLock::new(),
        });
        sealed.cache.loaded(&sealed);
        sealed
    }

    /// The segment's index, mapping it if it is not.
    pub(crate) fn index(self: &Arc<Self>) -> Result<Arc<IndexFile>> {
        Ok(self.load()?.index)
    }

    /// Whether the segment may hold event `id`: false when the id sorts outside the segment's
    /// least and greatest id. Ids that grow with time (UUIDv7, as the store makes them) fall
    /// outside every older segment, so an import or a retry looks up a new id without searching
    /// each sealed sidecar (an import into a store of ten segments spent half its time there).
    pub(crate) fn may_hold_id(self: &Arc<Self>, id: &str) -> Result<bool> {
        let range = match self.id_range.get() {
            Some(r) => r,
            None => {
                let r = self.index()?.id_range();
                self.id_range.get_or_init(|| r)
            }
        };
        Ok(range
            .as_ref()
            .is_some_and(|(least, greatest)| &**least <= id && id <= &**greatest))
    }

    /// The segment's bytes, mapping them if they are not.
    pub(crate) fn data(self: &Arc<Self>) -> Result<SegmentData> {
        Ok(self.load()?.data)
    }

    /// Replaces the index (after `reindex` rewrote the sidecar).
    pub(crate) fn set_index(&self, index: Arc<IndexFile>) {
        if let Some(l) = self.lock_slot().as_mut() {
            l.index = index;
        }
    }

    fn lock_slot(&self) -> std::sync::MutexGuard<'_, Option<Loaded>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the maps (a read holding them keeps them).
    fn evict(&self) {
        self.lock_slot().take();
    }

    fn load(self: &Arc<Self>) -> Result<Loaded> {
        let mut slot = self.lock_slot();
        if let Some(l) = slot.as_ref() {
            return Ok(l.clone());
        }
        let loaded = self.map_files().map_err(|e| self.explain(e))?;
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
        let data = match file.map().map_err(|e| Error::io("map", &self.path, e))? {
            Some(m) => SegmentData::Sealed(Arc::new(m)),
            None => SegmentData::File(file),
        };
        let index = match &self.pinned {
            Some(ix) => Arc::clone(ix),
            None => self.map_index()?,
        };
        Ok(Loaded { data, index })
    }

    fn map_index(&self) -> Result<Arc<IndexFile>> {
        let path = crate::segment::index_path(&self.dir, self.base);
        let io = |op, e| Error::io(op, &path, e);
        let file = self.storage.open(&path, false).map_err(|e| io("open", e))?;
        let bytes = match file.map().map_err(|e| io("map", e))? {
            Some(m) => m,
            None => Mapped::Bytes(self.storage.read(&path).map_err(|e| io("read", e))?),
        };
        let changed = |reason: String| {
            Error::corrupt(
                &path,
                0,
                format!("index sidecar changed since the store was opened: {reason}"),
            )
        };
        let ix = IndexFile::open(Arc::new(bytes), self.base, Some(self.len)).map_err(changed)?;
        if ix.count != self.summary.count {
            return Err(changed(format!(
                "it holds {} events, not {}",
                ix.count, self.summary.count
            )));
        }
        Ok(Arc::new(ix))
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
    /// Loaded segments, oldest load first (entries whose segment is gone are skipped).
    queue: Mutex<VecDeque<Weak<Sealed>>>,
}

impl MapCache {
    pub(crate) fn new(max: usize) -> Arc<MapCache> {
        Arc::new(MapCache {
            max: max.max(1),
            queue: Mutex::new(VecDeque::new()),
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
