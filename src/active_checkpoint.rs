//! The active segment's checkpoint (its index as a clean close saved it, `<base>.idx`) as the
//! active index reads it: checked as it is used, not at open (issue 16).
//!
//! When the summary vouches for the checkpoint (it records the CRC of the one the close wrote
//! just before it), the open reads its header and the position of its last record only, and
//! checks those against the segment (`recovery::open_active`: the record there has the seq the
//! header's count says, and ends a batch exactly where the header says the checkpoint ends).
//! The first use then reads the file's own CRC (which must be the summary's) and, for a
//! format-2 file, its block sums (checked by their own CRC) and header; every later lookup
//! reads whole 4 KiB blocks by `pread`, through the store's block cache, each checked against
//! its sum before use (`sealed_index.rs`), as a sealed segment's sidecar is read. Nothing is
//! mapped: through a map the kernel left up to 11 MB of a full segment's checkpoint resident
//! after one stream read, and checking the whole file at first use was most of that read's
//! time at 10,000,000 events. A format-1 checkpoint (one CRC for the whole file) is checked
//! whole by reads at first use, then read the same way.
//!
//! One that fails (damaged since the close, unreadable) is never trusted: the index of the
//! records it covered is rebuilt from the segment, every record checked (its frame, its seq
//! following the previous one, times never decreasing), and kept in memory; nothing is
//! written. At first use that replaces the file; a damaged block found by a later lookup has
//! the lookup answered again from the rebuilt index, which every later lookup then uses. Damage in the segment itself fails the
//! use that found it with [`Error::Corrupt`] naming the segment, as does every later use that
//! meets the damaged checkpoint (every use, if its first use found it: each tries again, as a
//! sealed segment's rebuild does: damage stays damage), and a close
//! then writes no checkpoint (it copies the checkpoint's records out, checked whole, before
//! writing the next), so that the next open scans the segment and refuses it, as an open
//! without a checkpoint always did. An I/O error reading the segment fails that use only.
//!
//! Uses from several threads (a read-only handle's readers, the writer) are one at a time
//! through the first use: the first checks, the others wait for it and use its result. The
//! checkpoint is read through the file the open opened, never again by name: a writer in
//! another process replaces the file by renaming a new one over it, which leaves the open one
//! as it was.
//!
//! This module owns that deferred check and its fallback; it never changes the stream table
//! (the summary counted the checkpoint's events from the records' stream names at the close, which
//! a rebuild reproduces) nor writes a file.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::block_cache::{BlockCache, Extent};
use crate::error::{Error, Result};
use crate::index::{CheckpointIndex, Kind, MemIndex};
use crate::sealed_index::SealedIndex;
use crate::segment::{Indexed, Lines, ScanEnd, SegmentData};
use crate::storage::{Mapped, StorageFile};

/// What the first use needs to check the checkpoint, or to rebuild its records' index.
pub(crate) struct Deferred {
    /// The checkpoint file, as the open opened it, and its path (for errors).
    pub file: Arc<dyn StorageFile>,
    pub path: PathBuf,
    /// The CRC the summary recorded for it.
    pub crc: u32,
    /// The store's block cache, which lookups read the file through.
    pub cache: Arc<BlockCache>,
    /// The active segment, its path, where its records start, and the line limit.
    pub segment: Arc<dyn StorageFile>,
    pub segment_path: PathBuf,
    pub data_start: u64,
    pub max_line: usize,
}

/// The checkpoint an active index continues from: its records' count and the segment bytes
/// they cover known from the open, their index checked as lookups read it.
pub(crate) struct ActiveCheckpoint {
    /// The segment's base seq.
    base: u64,
    /// Records it holds, and bytes of the segment they take (checked against the segment).
    count: u64,
    segment_len: u64,
    /// The time of the segment's first record (read from the segment, not the checkpoint).
    first_time: Option<i64>,
    /// The index of those records, once the first use opened (or rebuilt) it.
    ready: OnceLock<Arc<SealedIndex>>,
    /// The index rebuilt from the segment after a read of `ready` found it damaged: every
    /// later lookup goes to it. Set once (an index in memory is never found damaged).
    rebuilt: OnceLock<Arc<SealedIndex>>,
    /// The least and greatest event id it holds, once a lookup of an id asked: a new id (a
    /// UUIDv7 sorts after every older one) is then refused without a search.
    ids: OnceLock<Option<(Box<str>, Box<str>)>>,
    /// The postings of its largest terms, decoded once (see [`Memo`]).
    memo: Mutex<Memo>,
    /// What the first use needs, and a rebuild. Held while opening or rebuilding, so that
    /// uses from several threads do each once.
    deferred: Mutex<Deferred>,
}

/// The postings of the checkpoint's terms that are read around the block cache (those of
/// more than [`MEMO_FROM`] records), kept once decoded: a condition of a conditional append
/// (`reader::first_match`) reads a frequent tag's or type's postings under the state lock at
/// every append, and reading and checking them from the file each time tripled its cost
/// against the map it replaced. At most [`MEMO_BYTES`] of them.
#[derive(Default)]
struct Memo {
    terms: Vec<(Term, Arc<[u32]>)>,
    bytes: usize,
}

/// A term, by kind.
type Term = (Kind, Box<str>);

/// Postings of a term worth keeping decoded: 8,192 records, 32 KiB of the file.
const MEMO_FROM: usize = 8 * 1024;
/// Bytes of decoded postings kept (about 250,000 records' worth of frequent terms).
const MEMO_BYTES: usize = 1 << 20;

impl ActiveCheckpoint {
    /// A checkpoint of `count` records covering `segment_len` bytes of segment `base`, whose
    /// first record's time is `first_time`: checked as it is used.
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
            rebuilt: OnceLock::new(),
            ids: OnceLock::new(),
            memo: Mutex::new(Memo::default()),
            deferred: Mutex::new(d),
        }
    }

    fn lock_deferred(&self) -> std::sync::MutexGuard<'_, Deferred> {
        self.deferred.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The index of its records: the one rebuilt after damage, or the checkpoint, opened
    /// first if no use did yet (and rebuilt from the segment if that fails).
    fn index(&self) -> Result<&Arc<SealedIndex>> {
        if let Some(ix) = self.rebuilt.get().or_else(|| self.ready.get()) {
            return Ok(ix);
        }
        let d = self.lock_deferred();
        // Another thread's use may have made it while this one waited.
        if let Some(ix) = self.ready.get() {
            return Ok(ix);
        }
        let ix = match self.load(&d) {
            Some(ix) => ix,
            None => {
                log::warn!(
                    "{}: the checkpoint of the active segment fails its check; its index is \
                     rebuilt from the segment",
                    d.path.display()
                );
                self.rebuild(&d)?
            }
        };
        Ok(self.ready.get_or_init(|| ix))
    }

    /// `f` of the index; if it fails on a damaged block of the checkpoint, `f` of the index
    /// rebuilt from the segment, which every later lookup then uses. If the segment turns out
    /// damaged too, the segment's error: each later lookup meeting the damage tries again.
    fn with<T>(&self, f: impl Fn(&SealedIndex) -> Result<T>) -> Result<T> {
        let ix = self.index()?;
        match f(ix) {
            // (The rebuilt index, in memory, is never found damaged.)
            Err(e) if ix.is_damaged() => {
                log::warn!("{e}; the active segment's index is rebuilt from the segment");
                let d = self.lock_deferred();
                let again = match self.rebuilt.get() {
                    Some(r) => r,
                    None => {
                        let r = self.rebuild(&d)?;
                        self.rebuilt.get_or_init(|| r)
                    }
                };
                drop(d);
                f(again)
            }
            other => other,
        }
    }

    /// Whether event id `id` lies outside the ids it holds (so that none of its records
    /// carries it).
    fn lacks_id(&self, id: &str) -> Result<bool> {
        let range = match self.ids.get() {
            Some(r) => r,
            None => {
                let r = self.with(|ix| ix.id_range())?;
                self.ids.get_or_init(|| r)
            }
        };
        Ok(range
            .as_ref()
            .is_none_or(|(least, greatest)| id < &**least || id > &**greatest))
    }

    /// The postings of `term`, from the memo if they are there; kept in it if large.
    fn postings_of(&self, kind: Kind, term: &str) -> Result<Arc<[u32]>> {
        let lock = || self.memo.lock().unwrap_or_else(|p| p.into_inner());
        let found = lock()
            .terms
            .iter()
            .find(|((k, t), _)| *k == kind && **t == *term)
            .map(|(_, p)| Arc::clone(p));
        if let Some(p) = found {
            return Ok(p);
        }
        let p: Arc<[u32]> = self.with(|ix| ix.postings(kind, term))?.into();
        let size = p.len() * 4;
        let mut memo = lock();
        if p.len() > MEMO_FROM && memo.bytes + size <= MEMO_BYTES {
            memo.bytes += size;
            memo.terms.push(((kind, term.into()), Arc::clone(&p)));
        }
        Ok(p)
    }

    /// The checkpoint, read by `pread` through the store's block cache, if it is the file the
    /// summary vouched for and its header still says what the open read; `None` otherwise.
    /// Format 2: its own CRC must be the summary's, and its block sums check out (each block
    /// is then checked as a lookup reads it); format 1: its whole CRC, read now.
    fn load(&self, d: &Deferred) -> Option<Arc<SealedIndex>> {
        let len = d.file.len().ok()?;
        let mut tail = [0u8; 4];
        crate::block_cache::read_exact(d.file.as_ref(), &mut tail, len.checked_sub(4)?).ok()?;
        if u32::from_le_bytes(tail) != d.crc {
            return None;
        }
        let ix = SealedIndex::open(
            Arc::clone(&d.file),
            &d.path,
            self.base,
            Some(self.segment_len),
        )
        .ok()?;
        if ix.count != self.count {
            return None;
        }
        if !ix.checks_blocks() && crate::sidecar::crc_by_reads(d.file.as_ref()).ok()? != d.crc {
            return None;
        }
        Some(Arc::new(ix.caching(&d.cache)))
    }

    /// The index of the records the checkpoint covered, built from the segment (every record
    /// checked) and kept in memory.
    fn rebuild(&self, d: &Deferred) -> Result<Arc<SealedIndex>> {
        let (base, count, segment_len) = (self.base, self.count, self.segment_len);
        let path = &d.segment_path;
        let data = SegmentData::File(Arc::clone(&d.segment));
        let mut lines = Lines::new(data, segment_len, d.max_line);
        let Indexed {
            mem,
            count: found,
            scan,
            ..
        } = crate::segment::index_records(&mut lines, path, d.data_start, base)?;
        match scan.end {
            ScanEnd::Clean if found == count => {}
            ScanEnd::Clean => {
                return Err(Error::corrupt(
                    path,
                    scan.valid_end,
                    format!(
                        "the segment holds {found} records up to byte {segment_len}, where \
                         {count} were written",
                    ),
                ));
            }
            ScanEnd::TornTail { offset, reason } | ScanEnd::Damaged { offset, reason, .. } => {
                return Err(Error::corrupt(path, offset, reason));
            }
        }
        let bytes = Arc::new(Mapped::Bytes(mem.encode(base, segment_len)?));
        SealedIndex::in_memory(bytes, &d.path, base, segment_len)
            .map(Arc::new)
            .map_err(|e| Error::corrupt(&d.path, 0, format!("rebuilt index: {e}")))
    }
}

impl CheckpointIndex for ActiveCheckpoint {
    fn count(&self) -> u64 {
        self.count
    }

    fn first_time(&self) -> Option<i64> {
        self.first_time
    }

    fn position(&self, ord: u32) -> Result<Option<u32>> {
        self.with(|ix| ix.position(ord))
    }

    fn time(&self, ord: u32) -> Result<Option<i64>> {
        self.with(|ix| ix.time(ord))
    }

    fn first_at_or_after(&self, t: i64) -> Result<u32> {
        self.with(|ix| ix.first_at_or_after(t))
    }

    fn postings(&self, kind: Kind, term: &str) -> Result<Vec<u32>> {
        if kind == Kind::Id && self.lacks_id(term)? {
            return Ok(Vec::new());
        }
        Ok(self.postings_of(kind, term)?.to_vec())
    }

    fn last_posting(&self, kind: Kind, term: &str) -> Result<Option<u32>> {
        if kind == Kind::Id && self.lacks_id(term)? {
            return Ok(None);
        }
        self.with(|ix| ix.last_posting(kind, term))
    }

    fn terms_with_prefix(&self, kind: Kind, prefix: &str) -> Result<Vec<(String, Vec<u32>)>> {
        self.with(|ix| ix.terms_with_prefix(kind, prefix))
    }

    fn extents(&self, ords: &[u32]) -> Result<Vec<Extent>> {
        self.with(|ix| ix.extents(ords.iter().copied(), self.segment_len))
    }

    fn expand(&self) -> Result<MemIndex> {
        let whole = self.with(|ix| ix.whole(self.base))?;
        CheckpointIndex::expand(&whole)
    }
}
