//! The segment set: the segments of the log in order, the last one active, and the operations
//! that change it (create the next segment, seal the active one, unlink a removed one).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::index::{IndexFile, MemIndex};
use crate::record;
use crate::sealed::{Held, MapCache, Sealed};
use crate::segment::{index_path, segment_name};
use crate::storage::{Mapped, Storage, StorageFile};

/// A segment known to the store.
#[derive(Clone)]
pub(crate) struct Segment {
    /// First seq the segment holds (or would hold, if empty).
    pub base: u64,
    /// Its file.
    pub path: PathBuf,
    /// Offset of the first record (just past the header).
    pub data_start: u64,
    /// Length of a sealed segment (unused for the active one: the state tracks it).
    pub len: u64,
    /// A sealed segment's summary and maps; `None` for the active segment, whose file, length
    /// and index are in the state.
    pub(crate) sealed: Option<Arc<Sealed>>,
}

impl Segment {
    /// Whether this is the active segment (the newest, still appended to).
    pub(crate) fn is_active(&self) -> bool {
        self.sealed.is_none()
    }
}

/// The segments of the log, the active one last, with the active segment's file, length, index
/// and map. It owns what a segment is in memory and how the set grows (a new active segment)
/// and changes (sealing); it must never decide which events exist, which is the stream table's
/// and the recovery's business.
pub(crate) struct SegmentSet {
    /// All segments in order; the last is the active one.
    pub segments: Vec<Segment>,
    /// The active segment's file (writable for a writer).
    pub active_file: Option<Arc<dyn StorageFile>>,
    /// Bytes of the active segment that belong to complete batches.
    pub active_len: u64,
    /// The active segment's index.
    pub active_index: MemIndex,
    /// The index of the segment sealed last, emptied, for the next active segment to fill: its
    /// tables keep their size, so a bulk load does not grow them again from empty (rehashing
    /// and faulting in fresh pages) for every segment.
    pub spare_index: Option<MemIndex>,
    /// A map of a prefix of the active segment (complete batches only), for reads.
    pub active_map: Option<Arc<Mapped>>,
    /// Bounds how many sealed segments are mapped at once.
    pub maps: Arc<MapCache>,
}

impl SegmentSet {
    pub(crate) fn new(maps: Arc<MapCache>) -> SegmentSet {
        SegmentSet {
            segments: Vec::new(),
            active_file: None,
            active_len: 0,
            active_index: MemIndex::default(),
            spare_index: None,
            active_map: None,
            maps,
        }
    }

    /// The active segment.
    pub(crate) fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("an open store has an active segment")
    }

    /// How readers should read the active segment: through a map of its prefix where there is
    /// one, remapped once the segment has grown `REMAP_BYTES` past it; `pread` beyond that.
    ///
    /// Mapping a file that is still appended to is safe here because the mapped bytes are
    /// never read beyond `active_len`, the end of complete batches, and complete batches are
    /// never truncated: recovery cuts only a torn tail past the last complete batch (and refuses
    /// to open on damage in the middle), so no page a reader touches can vanish under it. See
    /// the SAFETY note in `storage.rs`.
    pub(crate) fn active_data(&mut self) -> Option<crate::segment::SegmentData> {
        use crate::segment::SegmentData;
        const REMAP_BYTES: u64 = 1 << 20;
        let file = self.active_file.clone()?;
        let mapped = self.active_map.as_ref().map_or(0, |m| m.len() as u64);
        if self.active_len >= mapped + REMAP_BYTES {
            // A failed map only means reads use pread.
            self.active_map = file.map().ok().flatten().map(Arc::new);
        }
        Some(match &self.active_map {
            Some(map) => SegmentData::Active {
                map: Arc::clone(map),
                file,
            },
            None => SegmentData::File(file),
        })
    }
}

impl SegmentSet {
    /// Turns the active segment into a sealed one in memory (the caller has made it durable and
    /// written its sidecar, or built `index` in memory: see [`Held`]; or, with `Err(summary)`,
    /// leaves the sidecar to the sealer: see [`Sealed::sealing`]). Returns the sealed segment
    /// and the active index it replaced.
    pub(crate) fn seal_active(
        &mut self,
        storage: &Arc<dyn Storage>,
        dir: &Path,
        index: std::result::Result<(Arc<IndexFile>, Held), crate::sealed::Summary>,
    ) -> (Arc<Sealed>, MemIndex) {
        let active = self
            .segments
            .pop()
            .expect("an open store has an active segment");
        let mem = std::mem::take(&mut self.active_index);
        let (base, path, len) = (active.base, active.path.clone(), self.active_len);
        let sealed = match index {
            Ok((index, held)) => {
                Sealed::new(storage, &self.maps, dir, base, path, len, index, held)
            }
            Err(summary) => Sealed::sealing(storage, &self.maps, dir, base, path, len, summary),
        };
        self.segments.push(Segment {
            len: self.active_len,
            sealed: Some(Arc::clone(&sealed)),
            ..active
        });
        self.active_file = None;
        self.active_map = None;
        self.active_len = 0;
        (sealed, mem)
    }

    /// Creates a new, empty active segment starting at `base`: header written, file fsynced,
    /// directory fsynced.
    pub(crate) fn create(&mut self, storage: &dyn Storage, dir: &Path, base: u64) -> Result<()> {
        let path = dir.join(segment_name(base));
        let io = |op, e| Error::io(op, &path, e);
        let file = storage.create_new(&path).map_err(|e| io("create", e))?;
        let header = record::encode_header(base);
        file.write_all_at(&header, 0).map_err(|e| io("write", e))?;
        file.sync_data().map_err(|e| io("fdatasync", e))?;
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
        self.segments.push(Segment {
            base,
            path,
            data_start: header.len() as u64,
            len: 0,
            sealed: None,
        });
        self.active_file = Some(file);
        self.active_map = None;
        self.active_len = header.len() as u64;
        self.active_index = self.spare_index.take().unwrap_or_default();
        Ok(())
    }
}

/// Unlinks a segment and its sidecar (either may already be gone).
pub(crate) fn unlink_segment(storage: &dyn Storage, dir: &Path, base: u64) -> Result<()> {
    for path in [dir.join(segment_name(base)), index_path(dir, base)] {
        match storage.remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", path, e)),
        }
    }
    Ok(())
}
