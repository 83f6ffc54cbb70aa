//! The active segment's checkpoint (its index as a clean close saved it, `<base>.idx`) as the
//! active index reads it: checked on first use, not at open (issue 16).
//!
//! When the summary vouches for the checkpoint (it records the CRC of the one the close wrote
//! just before it), the open reads its header and the position of its last record only, and
//! checks those against the segment (`recovery::open_active`: the record there has the seq the
//! header's count says, and ends a batch exactly where the header says the checkpoint ends).
//! The rest of the file (about 20 MB for a full 64 MiB segment, 10 ms of reading at open) is
//! checked by the first use of the index: its CRC by reads through small buffers (so that none
//! of its pages stays resident), against its own trailer and the summary's word. Only then is
//! it mapped and answered from.
//!
//! One that fails (damaged since the close, unreadable) is never trusted: the index of the
//! records it covered is rebuilt from the segment, every record checked (its frame, its seq
//! following the previous one, times never decreasing), and kept in memory; nothing is
//! written. Damage in the segment itself fails the use that found it with
//! [`Error::Corrupt`] naming the segment, as does every later use (each tries again, as a
//! sealed segment's rebuild does: damage stays damage), and a close then writes no checkpoint,
//! so that the next open scans the segment and refuses it, as an open without a checkpoint
//! always did. An I/O error reading the segment fails that use only.
//!
//! Uses from several threads (a read-only handle's readers, the writer) are one at a time: the
//! first checks, the others wait for it and use its result. The checkpoint is read through the
//! file the open opened, never again by name: a writer in another process replaces the file by
//! renaming a new one over it, which leaves the open one as it was.
//!
//! This module owns that deferred check and its fallback; it never changes the stream table
//! (the summary counted the checkpoint's events from the records' stream names at the close, which
//! a rebuild reproduces) nor writes a file.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::index::{CheckpointIndex, IndexFile, MemIndex};
use crate::segment::{Lines, ScanEnd, SegmentData};
use crate::storage::{Mapped, StorageFile};

/// What the first use needs to check the checkpoint, or to rebuild its records' index.
pub(crate) struct Deferred {
    /// The checkpoint file, as the open opened it, and its path (for errors).
    pub file: Arc<dyn StorageFile>,
    pub path: PathBuf,
    /// The CRC the summary recorded for it.
    pub crc: u32,
    /// The active segment, its path, where its records start, and the line limit.
    pub segment: Arc<dyn StorageFile>,
    pub segment_path: PathBuf,
    pub data_start: u64,
    pub max_line: usize,
}

/// The checkpoint an active index continues from: its records' count and the segment bytes
/// they cover known from the open, their index checked before its first use.
pub(crate) struct ActiveCheckpoint {
    /// The segment's base seq.
    base: u64,
    /// Records it holds, and bytes of the segment they take (checked against the segment).
    count: u64,
    segment_len: u64,
    /// The time of the segment's first record (read from the segment, not the checkpoint).
    first_time: Option<i64>,
    /// The checked index of those records, once the first use made it.
    ready: OnceLock<Arc<IndexFile>>,
    /// What that first use needs; `None` once `ready` is set. Held while checking, so that
    /// uses from several threads check once.
    pending: Mutex<Option<Deferred>>,
}

impl ActiveCheckpoint {
    /// A checkpoint of `count` records covering `segment_len` bytes of segment `base`, whose
    /// first record's time is `first_time`: checked when first used.
    pub(crate) fn deferred(
        d: Deferred,
        base: u64,
        count: u64,
        segment_len: u64,
        first_time: Option<i64>,
    ) -> ActiveCheckpoint {
        ActiveCheckpoint {
            base,
            count,
            segment_len,
            first_time,
            ready: OnceLock::new(),
            pending: Mutex::new(Some(d)),
        }
    }
}

impl CheckpointIndex for ActiveCheckpoint {
    fn count(&self) -> u64 {
        self.count
    }

    fn first_time(&self) -> Option<i64> {
        self.first_time
    }

    /// The index of its records, checking the checkpoint first if no use did yet (and
    /// rebuilding the index from the segment if it fails).
    fn index(&self) -> Result<&IndexFile> {
        if let Some(ix) = self.ready.get() {
            return Ok(ix);
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        // Another thread's use may have made it while this one waited.
        if let Some(ix) = self.ready.get() {
            return Ok(ix);
        }
        let d = pending
            .as_ref()
            .expect("an unchecked checkpoint keeps what its check needs");
        let ix = match self.load(d) {
            Some(ix) => ix,
            None => {
                log::warn!(
                    "{}: the checkpoint of the active segment fails its check; its index is \
                     rebuilt from the segment",
                    d.path.display()
                );
                self.rebuild(d)?
            }
        };
        *pending = None;
        Ok(self.ready.get_or_init(|| ix))
    }
}

impl ActiveCheckpoint {
    /// The checkpoint, mapped, if its bytes are those the summary vouched for and its header
    /// still says what the open read; `None` otherwise.
    fn load(&self, d: &Deferred) -> Option<Arc<IndexFile>> {
        let crc = crate::sidecar::crc_by_reads(d.file.as_ref()).ok()?;
        if crc != d.crc {
            return None;
        }
        let bytes = match d.file.map().ok()? {
            Some(m) => m,
            None => Mapped::Bytes(read_whole(d.file.as_ref())?),
        };
        let ix =
            IndexFile::open_checked(Arc::new(bytes), self.base, Some(self.segment_len)).ok()?;
        (ix.count == self.count).then(|| Arc::new(ix))
    }

    /// The index of the records the checkpoint covered, built from the segment (every record
    /// checked) and kept in memory.
    fn rebuild(&self, d: &Deferred) -> Result<Arc<IndexFile>> {
        let path = &d.segment_path;
        let data = SegmentData::File(Arc::clone(&d.segment));
        let mut lines = Lines::new(data, self.segment_len, d.max_line);
        let mut mem = MemIndex::default();
        let (mut next, mut last_time) = (self.base, i64::MIN);
        let result = crate::segment::scan(&mut lines, path, d.data_start, |batch| {
            for rec in batch {
                let wrong = if rec.seq != next {
                    Some(format!(
                        "record has seq {} where {next} was expected",
                        rec.seq
                    ))
                } else if rec.time < last_time {
                    Some("record time is before the previous record's".to_owned())
                } else {
                    None
                };
                if let Some(reason) = wrong {
                    return Err(Error::corrupt(path, rec.offset, reason));
                }
                next += 1;
                last_time = rec.time;
                mem.add(rec.offset, rec.time, &rec.terms.borrowed());
            }
            Ok(())
        })?;
        match result.end {
            ScanEnd::Clean if next - self.base == self.count => {}
            ScanEnd::Clean => {
                return Err(Error::corrupt(
                    path,
                    result.valid_end,
                    format!(
                        "the segment holds {} records up to byte {}, where {} were written",
                        next - self.base,
                        self.segment_len,
                        self.count
                    ),
                ));
            }
            ScanEnd::TornTail { offset, reason } | ScanEnd::Damaged { offset, reason } => {
                return Err(Error::corrupt(path, offset, reason));
            }
        }
        crate::sidecar::in_memory_index(&mem, self.base, self.segment_len)
    }
}

/// The whole file, read through `file` (a storage that cannot map).
fn read_whole(file: &dyn StorageFile) -> Option<Vec<u8>> {
    let len = usize::try_from(file.len().ok()?).ok()?;
    let mut v = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut v[done..], done as u64) {
            Ok(0) | Err(_) => return None,
            Ok(n) => done += n,
        }
    }
    Some(v)
}
