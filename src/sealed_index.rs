//! A sealed segment's index sidecar (or the active segment's checkpoint, `active_checkpoint.rs`)
//! as lookups read it: by `pread` of the few bytes each lookup needs (a binary search of the
//! term directory, one term's postings, the positions of the records a read wants), never
//! through a map of the whole file.
//!
//! Why (issue 16): through a map, the kernel maps the page-cache folios around every page a
//! lookup touches (up to a whole large folio, 2 MiB here), so that reading one 100-event stream
//! of a 1,000,000-event store left 12 MiB of each sidecar it touched resident in the process.
//! Read by `pread`, the pages stay in the page cache, which the kernel reclaims, and the
//! process holds only the bytes it asked for.
//!
//! A format-2 sidecar is checked as it is read: [`SealedIndex::open`] checks its header and its
//! block sums (against their own CRC), and every later read from the file is of whole 4 KiB
//! blocks, each checked against its sum before use (`block_cache.rs`). A block that fails is
//! never used: the index is made again from the segment ([`SealedIndex::healing_by`]) and the
//! read answered from that, which holds the same bytes at the same offsets. A format-1
//! sidecar was checked in full before a [`SealedIndex`] is made of it (by reads, on first use:
//! `sealed.rs`, `sidecar.rs`). Sidecars are never rewritten but with the same contents. Every
//! read here is also bounds-checked against the header, and whatever does not add up is an
//! [`Error::Corrupt`], a failed read an [`Error::Io`]: nothing panics and nothing is answered
//! from bytes that were not read and checked. The layout is in `docs/format.md`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::block_cache::{BlockCache, BlockSums, CachedFile, Extent, read_exact as read_file};
use crate::error::{Error, Result};
use crate::index::{FORMAT, HEADER, Header, IndexFile, Kind, SAMPLE_EVERY};
use crate::storage::{Mapped, StorageFile};

/// Where the sidecar's bytes come from.
enum Source {
    /// The file, read with `pread`, lookups through the store's block cache.
    File(CachedFile),
    /// Bytes in memory: an index a read-only handle rebuilt and could not write, or an active
    /// segment's checkpoint rebuilt from the segment.
    Bytes(Arc<Mapped>),
}

/// Positions apart that two wanted records' positions are still read together (4 KiB): a
/// run of wanted records closer than this reads its positions in one piece.
const POSITIONS_AT_ONCE: u64 = 1024;
/// Positions read at most at a time, in such a run (64 KiB): an unfiltered query over a
/// segment wants every record, and 4 KiB at a time was a `pread` per 1,024 of them.
const POSITIONS_RUN: u64 = 16 * 1024;
/// Bytes of entries read at a time when walking terms in order.
const ENTRIES_CHUNK: u64 = 64 * 1024;
/// Entries a binary search reads at once when no more than this many remain.
const TAIL: u64 = SAMPLE_EVERY;
/// A term's first bytes, read with its entry's fixed fields in one read.
const ENTRY_GUESS: usize = 64;
/// Bytes of entry fixed fields besides the term: kind 1, length 2, first posting 4, count 4.
const ENTRY_FIXED: u64 = 11;

/// A checked sidecar, read where needed.
pub(crate) struct SealedIndex {
    source: Source,
    path: PathBuf,
    /// Events in the segment.
    pub count: u64,
    /// Bytes of the segment described.
    pub segment_len: u64,
    terms: u64,
    times_at: u64,
    offsets_at: u64,
    entries_at: u64,
    entries_len: u64,
    postings_at: u64,
    postings_len: u64,
    /// Every [`TAIL`]th term, read by the first lookup: a lookup then reads two spans of the
    /// file instead of searching it step by step. Shared with the segment ([`Samples`]), so
    /// that closing its files (the cache of open segments) does not throw it away.
    sample: Samples,
    /// This index's own sample, where the segment's was read from a sidecar of another number
    /// of terms.
    own_sample: OnceLock<Sample>,
    /// Where a format-2 sidecar keeps that sample (offset, length): read in one piece.
    sample_in_file: Option<(u64, u64)>,
    /// Set when a read found a block that fails its CRC.
    damaged: AtomicBool,
    /// Makes the index again from the segment (set by the segment that opened it).
    heal: OnceLock<Heal>,
    /// The index made again, which lookups use once this one was found damaged.
    healed: Mutex<Option<Arc<SealedIndex>>>,
}

/// Makes a sealed segment's index again from its records (`sealed.rs`); `None` if the segment
/// is no longer the store's.
pub(crate) type Heal = Box<dyn Fn() -> Result<Option<Arc<SealedIndex>>> + Send + Sync>;

/// A segment's sample of terms, kept by the segment across its files being closed and opened
/// again: rebuilding it costs a `pread` per sampled term. A sidecar is a function of its
/// segment's records, so one rebuilt or rewritten has the same terms, and the sample stays
/// true of it. One that was not (a sidecar that passed its checks but was another segment's,
/// or another build's, replaced by `reindex` or by a rebuild after a damaged block) may have
/// another number of terms: an index uses the shared sample only if it was read from a sidecar
/// of as many terms as its own, else a sample of its own ([`SealedIndex::sample`]).
pub(crate) type Samples = Arc<OnceLock<Sample>>;

/// Terms `0, TAIL, 2 * TAIL, ...` of a sidecar, in order, as one arena (about 20 KB for a
/// 64 MiB segment's sidecar of 250,000 terms).
#[derive(Default)]
pub(crate) struct Sample {
    /// The number of terms of the sidecar it was read from.
    terms: u64,
    kinds: Vec<u8>,
    ends: Vec<u32>,
    text: Vec<u8>,
}

impl Sample {
    fn key(&self, i: usize) -> (u8, &[u8]) {
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p] as usize);
        (self.kinds[i], &self.text[start..self.ends[i] as usize])
    }

    /// How many sampled terms sort before `(kind, term)`.
    fn before(&self, kind: Kind, term: &[u8]) -> usize {
        let (mut a, mut b) = (0, self.kinds.len());
        while a < b {
            let mid = a + (b - a) / 2;
            if self.key(mid) < (kind as u8, term) {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        a
    }
}

/// One term's entry: where its postings are.
struct Entry {
    kind: Kind,
    term: Vec<u8>,
    first: u64,
    n: u64,
}

/// A term of a listing's walk ([`SealedIndex::terms_after`]): its text, and where its postings
/// are.
pub(crate) struct TermAt {
    pub(crate) term: String,
    first: u64,
    /// How many records carry it.
    pub(crate) n: u64,
}

impl SealedIndex {
    /// The sidecar in `file` (at `path`), already checked: reads and checks its header only
    /// (that it describes segment `base` and, if given, `segment_len` bytes of it).
    pub(crate) fn open(
        file: Arc<dyn StorageFile>,
        path: &Path,
        base: u64,
        segment_len: Option<u64>,
    ) -> std::result::Result<SealedIndex, String> {
        SealedIndex::open_as(file, path, base, segment_len, true)
    }

    /// [`SealedIndex::open`], but reading a format-2 file's bytes without its block sums (not
    /// even read): for the open's look at an active segment's checkpoint, which reads only its
    /// header and a position (its first use then opens it with its sums,
    /// `active_checkpoint.rs`).
    pub(crate) fn open_unsummed(
        file: Arc<dyn StorageFile>,
        path: &Path,
        base: u64,
        segment_len: Option<u64>,
    ) -> std::result::Result<SealedIndex, String> {
        SealedIndex::open_as(file, path, base, segment_len, false)
    }

    fn open_as(
        file: Arc<dyn StorageFile>,
        path: &Path,
        base: u64,
        segment_len: Option<u64>,
        sums: bool,
    ) -> std::result::Result<SealedIndex, String> {
        let len = file.len().map_err(|e| format!("cannot be read: {e}"))?;
        let mut head = [0u8; HEADER];
        if len >= HEADER as u64 {
            read_file(file.as_ref(), &mut head, 0).map_err(|e| format!("cannot be read: {e}"))?;
        }
        let h = Header::parse(&head, len, base, segment_len)?;
        let mut cached = CachedFile::new(file, len, &BlockCache::new(0));
        if h.format == FORMAT && sums {
            // The block sums, checked by their own CRC; then the header's block by its sum.
            let body = h.body_len();
            let mut sums = vec![0u8; (h.blocks() * 4 + 4) as usize];
            read_file(cached.file.as_ref(), &mut sums, body)
                .map_err(|e| format!("cannot be read: {e}"))?;
            let crc = sums.split_off(sums.len() - 4);
            if crc32fast::hash(&sums).to_le_bytes()[..] != crc[..] {
                return Err("index sidecar block sums fail their crc".into());
            }
            let sums = BlockSums::new(sums.into_boxed_slice(), body)
                .ok_or("index sidecar block sums do not cover it")?;
            cached = cached.checked_by(Arc::new(sums));
            let mut again = [0u8; HEADER];
            cached
                .read_around(&mut again, 0)
                .map_err(|e| format!("header: {e}"))?;
            if again != head {
                return Err("index sidecar header changed while read".into());
            }
        }
        Ok(SealedIndex::with(Source::File(cached), path, &h))
    }

    /// An index held in memory (checked already).
    pub(crate) fn in_memory(
        bytes: Arc<Mapped>,
        path: &Path,
        base: u64,
        segment_len: u64,
    ) -> std::result::Result<SealedIndex, String> {
        let h = Header::parse(&bytes, bytes.len() as u64, base, Some(segment_len))?;
        Ok(SealedIndex::with(Source::Bytes(bytes), path, &h))
    }

    fn with(source: Source, path: &Path, h: &Header) -> SealedIndex {
        SealedIndex {
            source,
            path: path.to_owned(),
            count: h.count,
            segment_len: h.segment_len,
            terms: h.terms,
            times_at: HEADER as u64 + h.count * 4,
            offsets_at: h.offsets_at(),
            entries_at: h.entries_at(),
            entries_len: h.entries_len,
            postings_at: h.postings_at(),
            postings_len: h.postings_len,
            sample_in_file: (h.format == FORMAT).then(|| (h.sample_at(), h.sample_len)),
            sample: Samples::default(),
            own_sample: OnceLock::new(),
            damaged: AtomicBool::new(false),
            heal: OnceLock::new(),
            healed: Mutex::new(None),
        }
    }

    /// How to make this index again from its segment when a block of its file turns out
    /// damaged: the read that found it, and every later one, are then answered from what
    /// `heal` gives.
    pub(crate) fn healing_by(&self, heal: Heal) {
        let _ = self.heal.set(heal);
    }

    /// Whether every read of the file is checked against its block sums (format 2).
    pub(crate) fn checks_blocks(&self) -> bool {
        matches!(&self.source, Source::File(f) if f.sums().is_some())
    }

    /// Whether a read found a block of the file damaged.
    pub(crate) fn is_damaged(&self) -> bool {
        self.damaged.load(Ordering::Acquire)
    }

    /// The index made again from the segment after a read of this one found a damaged block
    /// (made once, for every reader), if it can be made and lays out the same sections: a
    /// sidecar is a function of its segment's records, so the new file holds the same bytes,
    /// and a read is answered from it at the same offset.
    fn heal_now(&self) -> Result<Option<Arc<SealedIndex>>> {
        let Some(heal) = self.heal.get() else {
            return Ok(None);
        };
        let mut healed = self.lock_healed();
        let h = match healed.as_ref() {
            Some(h) => Arc::clone(h),
            None => match heal()? {
                Some(h) => Arc::clone(healed.insert(h)),
                None => return Ok(None),
            },
        };
        // The same layout, and the same bytes: the sums of this file (checked by their own
        // CRC) against those of the one made again.
        let layout = |x: &SealedIndex| {
            let l = (
                x.count,
                x.segment_len,
                x.terms,
                x.entries_len,
                x.postings_len,
            );
            (l, x.sample_in_file)
        };
        let same = layout(&h) == layout(self)
            && match (self.block_sums(), h.block_sums()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            };
        Ok(same.then_some(h))
    }

    /// The CRC of each block of the body: a checked file's, or computed from bytes in memory.
    fn block_sums(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        match &self.source {
            Source::File(f) => f.sums().map(std::borrow::Cow::Borrowed),
            Source::Bytes(b) => {
                let (at, len) = self.sample_in_file?;
                let body = b.get(..usize::try_from(at + len).ok()?)?;
                Some(std::borrow::Cow::Owned(crate::block_cache::block_sums(
                    body,
                )))
            }
        }
    }

    fn lock_healed(&self) -> std::sync::MutexGuard<'_, Option<Arc<SealedIndex>>> {
        self.healed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This index, its lookups read through `cache` (the store's) rather than none.
    pub(crate) fn caching(mut self, cache: &Arc<BlockCache>) -> SealedIndex {
        if let Source::File(f) = &self.source {
            self.source = Source::File(f.recached(cache));
        }
        self
    }

    /// This index, keeping its sample of terms in `sample` (the segment's).
    pub(crate) fn sharing(mut self, sample: &Samples) -> SealedIndex {
        self.sample = Arc::clone(sample);
        self
    }

    /// The sample of terms, read now if it is not yet: the segment's if it was read from a
    /// sidecar of as many terms as this one (this one's, or one with the same terms), else this
    /// index's own. A sample of another number of terms would send a lookup to entries the file
    /// does not have (a window past its last term), or to the wrong ones.
    fn sample(&self) -> Result<&Sample> {
        if let Some(s) = self.sample.get().filter(|s| s.terms == self.terms) {
            return Ok(s);
        }
        if let Some(s) = self.own_sample.get() {
            return Ok(s);
        }
        let s = self.read_sample()?;
        match self.sample.set(s) {
            // Shared now, and of this file's terms.
            Ok(()) => self.sample(),
            Err(s) => Ok(self.own_sample.get_or_init(|| s)),
        }
    }

    /// Reads the sample of terms from the file.
    fn read_sample(&self) -> Result<Sample> {
        let mut s = Sample {
            terms: self.terms,
            ..Sample::default()
        };
        if let Some((at, len)) = self.sample_in_file {
            // Format 2: the sample is a section of its own, checked as it is parsed.
            let bytes = self.read_vec_via(at, len, false)?;
            let terms = crate::index::sample_terms(&bytes, self.terms)
                .map_err(|e| self.malformed(at, &e))?;
            for (kind, term) in terms {
                s.kinds.push(kind as u8);
                s.text.extend_from_slice(term);
                s.ends.push(
                    u32::try_from(s.text.len())
                        .map_err(|_| self.malformed(at, "terms too long"))?,
                );
            }
            return Ok(s);
        }
        for i in (0..self.terms).step_by(TAIL as usize) {
            // Around the cache: one entry of every 512 would fill it with blocks read once.
            let e = self.entry_via(i, false)?;
            s.kinds.push(e.kind as u8);
            s.text.extend_from_slice(&e.term);
            s.ends.push(
                u32::try_from(s.text.len())
                    .map_err(|_| self.malformed(self.entries_at, "terms too long"))?,
            );
        }
        Ok(s)
    }

    fn malformed(&self, at: u64, what: &str) -> Error {
        Error::corrupt(&self.path, at, format!("index sidecar: {what}"))
    }

    /// Reads exactly `buf.len()` bytes at `at` (through the block cache).
    fn read(&self, buf: &mut [u8], at: u64) -> Result<()> {
        self.read_via(buf, at, true)
    }

    /// Reads exactly `buf.len()` bytes at `at`, through the block cache if `cached`.
    fn read_via(&self, buf: &mut [u8], at: u64, cached: bool) -> Result<()> {
        match &self.source {
            Source::File(f) => match cached {
                true => f.read_exact_at(buf, at),
                false => f.read_around(buf, at),
            }
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    self.malformed(at, "shorter than its header says")
                }
                std::io::ErrorKind::InvalidData => {
                    self.damaged.store(true, Ordering::Release);
                    self.malformed(at, &e.to_string())
                }
                _ => Error::io("read", &self.path, e),
            })
            .or_else(|e| match self.is_damaged() {
                // A damaged block: the same bytes from the index made again, if it can be.
                true => match self.heal_now()? {
                    Some(h) => h.read_via(buf, at, cached),
                    None => Err(e),
                },
                false => Err(e),
            }),
            Source::Bytes(b) => {
                let src = usize::try_from(at)
                    .ok()
                    .and_then(|s| b.get(s..s.checked_add(buf.len())?))
                    .ok_or_else(|| self.malformed(at, "shorter than its header says"))?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }
    }

    fn read_vec(&self, at: u64, len: u64) -> Result<Vec<u8>> {
        self.read_vec_via(at, len, true)
    }

    fn read_vec_via(&self, at: u64, len: u64, cached: bool) -> Result<Vec<u8>> {
        let len = usize::try_from(len).map_err(|_| self.malformed(at, "section too long"))?;
        let mut v = vec![0u8; len];
        self.read_via(&mut v, at, cached)?;
        Ok(v)
    }

    fn u32_at(&self, at: u64) -> Result<u32> {
        self.u32_via(at, true)
    }

    fn u32_via(&self, at: u64, cached: bool) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_via(&mut b, at, cached)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Byte offset of record `ord` in the segment.
    pub(crate) fn position(&self, ord: u32) -> Result<Option<u32>> {
        if u64::from(ord) >= self.count {
            return Ok(None);
        }
        self.u32_at(HEADER as u64 + u64::from(ord) * 4).map(Some)
    }

    /// Time of record `ord`.
    pub(crate) fn time(&self, ord: u32) -> Result<Option<i64>> {
        if u64::from(ord) >= self.count {
            return Ok(None);
        }
        let mut b = [0u8; 8];
        self.read(&mut b, self.times_at + u64::from(ord) * 8)?;
        Ok(Some(i64::from_le_bytes(b)))
    }

    /// The first ordinal whose time is at least `t` (`count` if none).
    pub(crate) fn first_at_or_after(&self, t: i64) -> Result<u32> {
        let (mut lo, mut hi) = (0u32, self.count as u32);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.time(mid)?.is_some_and(|m| m < t) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// The entry of term `i`.
    fn entry(&self, i: u64) -> Result<Entry> {
        self.entry_via(i, true)
    }

    /// The entry of term `i`, read through the block cache if `cached`.
    fn entry_via(&self, i: u64, cached: bool) -> Result<Entry> {
        let at = self.offsets_at + i * 4;
        let off = u64::from(self.u32_via(at, cached)?);
        let end = self.entries_at + self.entries_len;
        let e = self.entries_at + off;
        if off + ENTRY_FIXED > self.entries_len {
            return Err(self.malformed(at, &format!("term {i} is malformed")));
        }
        // The fixed fields and, usually, the whole term in one read.
        let mut buf = [0u8; ENTRY_GUESS + ENTRY_FIXED as usize];
        let first_read = ((end - e) as usize).min(buf.len());
        self.read_via(&mut buf[..first_read], e, cached)?;
        let kind = Kind::from_u8(buf[0])
            .ok_or_else(|| self.malformed(e, &format!("term {i} is malformed")))?;
        let len = u64::from(u16::from_le_bytes([buf[1], buf[2]]));
        if e + ENTRY_FIXED + len > end {
            return Err(self.malformed(e, &format!("term {i} is malformed")));
        }
        let whole = (3 + len + 8) as usize;
        if whole <= first_read {
            let (term, tail) = buf[3..whole].split_at(len as usize);
            return self.entry_of(i, e, kind, term, tail);
        }
        let rest = self.read_vec_via(e + 3, len + 8, cached)?;
        let (term, tail) = rest.split_at(len as usize);
        self.entry_of(i, e, kind, term, tail)
    }

    /// Entry `i` (at `e`) of `kind` and `term`, from the 8 bytes after its term (its first
    /// posting and their count), which must lie inside the postings.
    fn entry_of(&self, i: u64, e: u64, kind: Kind, term: &[u8], tail: &[u8]) -> Result<Entry> {
        let first = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
        let n = u64::from(u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]));
        if first + n > self.postings_len {
            return Err(self.malformed(e, &format!("term {i} is malformed")));
        }
        Ok(Entry {
            kind,
            term: term.to_vec(),
            first,
            n,
        })
    }

    /// Index of the first entry not less than `(kind, term)`: a binary search of the sample in
    /// memory leaves fewer than [`TAIL`] entries, whose offsets and entries are then read in
    /// two reads and searched in memory (two reads instead of about forty).
    fn lower_bound(&self, kind: Kind, term: &[u8]) -> Result<u64> {
        // The answer lies after the last sampled term before the key, up to the next sampled
        // term, so fewer than `TAIL` entries remain.
        let (mut lo, mut hi) = match self.sample()?.before(kind, term) as u64 {
            0 => return Ok(0),
            j => ((j - 1) * TAIL + 1, (j * TAIL).min(self.terms)),
        };
        if lo == hi {
            return Ok(lo);
        }
        // Entries lo..hi, which this crate writes side by side and in order.
        let offsets = self.read_vec(self.offsets_at + lo * 4, (hi - lo) * 4)?;
        let offsets: Vec<u64> = offsets
            .chunks_exact(4)
            .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect();
        let end = match hi < self.terms {
            true => u64::from(self.u32_at(self.offsets_at + hi * 4)?),
            false => self.entries_len,
        };
        let start = offsets[0];
        let in_order = offsets.windows(2).all(|w| w[0] < w[1]) && offsets.last() < Some(&end);
        if !in_order || end > self.entries_len || end - start > ENTRIES_CHUNK {
            // Some other layout: step by step.
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let e = self.entry(mid)?;
                if (e.kind, e.term.as_slice()) < (kind, term) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            return Ok(lo);
        }
        let span = self.read_vec(self.entries_at + start, end - start)?;
        let key = |i: usize| -> Result<(Kind, &[u8])> {
            let at = (offsets[i] - start) as usize;
            let bad = || self.malformed(self.entries_at + offsets[i], "a term is malformed");
            let head = span.get(at..at + 3).ok_or_else(bad)?;
            let kind = Kind::from_u8(head[0]).ok_or_else(bad)?;
            let len = usize::from(u16::from_le_bytes([head[1], head[2]]));
            Ok((kind, span.get(at + 3..at + 3 + len).ok_or_else(bad)?))
        };
        let (mut a, mut b) = (0usize, offsets.len());
        while a < b {
            let mid = a + (b - a) / 2;
            if key(mid)? < (kind, term) {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        Ok(lo + a as u64)
    }

    /// The entry of exactly `(kind, term)`, if there is one.
    fn find(&self, kind: Kind, term: &str) -> Result<Option<Entry>> {
        let i = self.lower_bound(kind, term.as_bytes())?;
        if i >= self.terms {
            return Ok(None);
        }
        let e = self.entry(i)?;
        Ok((e.kind == kind && e.term == term.as_bytes()).then_some(e))
    }

    /// Postings `first..first + n`, read through the block cache if `cached` (a lookup's, not
    /// a walk's).
    fn postings_of(&self, first: u64, n: u64, cached: bool) -> Result<Vec<u32>> {
        let at = self.postings_at + first * 4;
        let bytes = self.read_vec_via(at, n * 4, cached)?;
        let p: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        // What the whole check holds a sidecar to, for the postings read (a format-2 file is
        // checked by its blocks' sums, which say nothing of its structure): in range here, in
        // order term by term ([`SealedIndex::ascending`]).
        if p.iter().any(|&o| u64::from(o) >= self.count) {
            return Err(self.malformed(at, "a posting names a record past the segment's"));
        }
        Ok(p)
    }

    /// `p`, one term's postings, checked strictly ascending.
    fn ascending(&self, p: Vec<u32>) -> Result<Vec<u32>> {
        match p.windows(2).any(|w| w[0] >= w[1]) {
            true => Err(self.malformed(self.postings_at, "postings out of order")),
            false => Ok(p),
        }
    }

    /// The ordinals of records carrying `term`, ascending (empty if none).
    pub(crate) fn postings(&self, kind: Kind, term: &str) -> Result<Vec<u32>> {
        match self.find(kind, term)? {
            Some(e) => self.ascending(self.postings_of(e.first, e.n, true)?),
            None => Ok(Vec::new()),
        }
    }

    /// How many records carry `term`: its entry's count (the sidecar's check found its postings
    /// strictly ascending, one per record), no posting read.
    pub(crate) fn term_count(&self, kind: Kind, term: &str) -> Result<u64> {
        match self.find(kind, term)? {
            // Read again now: a file changed since its check must not give a count above the
            // records it describes.
            Some(e) if e.n > self.count => {
                Err(self.malformed(self.entries_at, "an entry lists more postings than records"))
            }
            e => Ok(e.map_or(0, |e| e.n)),
        }
    }

    /// The greatest ordinal of a record carrying `term`.
    pub(crate) fn last_posting(&self, kind: Kind, term: &str) -> Result<Option<u32>> {
        match self.find(kind, term)? {
            Some(e) if e.n > 0 => Ok(self.postings_of(e.first + e.n - 1, 1, true)?.pop()),
            _ => Ok(None),
        }
    }

    /// Every term of `kind` starting with `prefix`, in order, with its postings: the entries
    /// read in 64 KiB chunks, and the postings of neighbouring terms in one read.
    pub(crate) fn terms_with_prefix(
        &self,
        kind: Kind,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u32>)>> {
        let start = self.lower_bound(kind, prefix.as_bytes())?;
        let mut found: Vec<Entry> = Vec::new();
        let mut chunk = Chunk::default();
        for i in start..self.terms {
            let e = self.entry_chunked(i, &mut chunk)?;
            if e.kind != kind || !e.term.starts_with(prefix.as_bytes()) {
                break;
            }
            found.push(e);
        }
        // Postings of neighbouring terms lie side by side: one read per run of them.
        let mut out = Vec::with_capacity(found.len());
        let mut k = 0;
        while k < found.len() {
            let first = found[k].first;
            let (mut end, mut j) = (first + found[k].n, k + 1);
            while j < found.len() && found[j].first == end && (end - first) * 4 < ENTRIES_CHUNK {
                end += found[j].n;
                j += 1;
            }
            // A walk: around the cache, which it would fill with what no lookup reuses.
            let run = self.postings_of(first, end - first, false)?;
            for e in &found[k..j] {
                let from = (e.first - first) as usize;
                let term = String::from_utf8(e.term.clone())
                    .map_err(|_| self.malformed(self.entries_at, "a term is not UTF-8"))?;
                out.push((
                    term,
                    self.ascending(run[from..from + e.n as usize].to_vec())?,
                ));
            }
            k = j;
        }
        Ok(out)
    }

    /// The terms of `kind` after `after` (every one if `None`), in order, each with how many
    /// records carry it, for a listing paged by name: a walk from the first term after
    /// `after` that reads only as far as its caller takes it, and no postings (see
    /// [`SealedIndex::postings_of_term`]).
    pub(crate) fn terms_after<'a>(
        &'a self,
        kind: Kind,
        after: Option<&'a str>,
    ) -> Result<impl Iterator<Item = Result<TermAt>> + 'a> {
        let start = self.lower_bound(kind, after.unwrap_or("").as_bytes())?;
        let mut chunk = Chunk::default();
        let mut i = start;
        Ok(std::iter::from_fn(move || {
            while i < self.terms {
                let e = match self.entry_chunked(i, &mut chunk) {
                    Ok(e) => e,
                    Err(err) => {
                        i = self.terms;
                        return Some(Err(err));
                    }
                };
                i += 1;
                if e.kind != kind {
                    i = self.terms;
                    return None;
                }
                if after.is_some_and(|a| e.term == a.as_bytes()) {
                    continue;
                }
                return Some(match String::from_utf8(e.term) {
                    Ok(term) => Ok(TermAt {
                        term,
                        first: e.first,
                        n: e.n,
                    }),
                    Err(_) => {
                        i = self.terms;
                        Err(self.malformed(self.entries_at, "a term is not UTF-8"))
                    }
                });
            }
            None
        }))
    }

    /// The postings of a term [`SealedIndex::terms_after`] gave, read around the block cache
    /// (a walk's).
    pub(crate) fn postings_of_term(&self, t: &TermAt) -> Result<Vec<u32>> {
        self.ascending(self.postings_of(t.first, t.n, false)?)
    }

    /// Every term of `kind`, in order, with how many records carry it (its postings are not
    /// read): the terms as one text, each with where it ends in it.
    pub(crate) fn term_counts(&self, kind: Kind) -> Result<(String, Vec<(u32, u32)>)> {
        let start = self.lower_bound(kind, b"")?;
        let (mut text, mut ends) = (Vec::new(), Vec::new());
        let mut chunk = Chunk::default();
        for i in start..self.terms {
            let e = self.entry_chunked(i, &mut chunk)?;
            if e.kind != kind {
                break;
            }
            text.extend_from_slice(&e.term);
            // Both fit: the entries' and the postings' sections are at most 4 GiB long.
            ends.push((text.len() as u32, e.n as u32));
        }
        let text = String::from_utf8(text)
            .map_err(|_| self.malformed(self.entries_at, "a term is not UTF-8"))?;
        Ok((text, ends))
    }

    /// Entry `i`, read through `chunk` (entries are read in order, so most are in it already).
    /// A walk's step: read around the block cache.
    fn entry_chunked(&self, i: u64, chunk: &mut Chunk) -> Result<Entry> {
        let at = self.offsets_at + i * 4;
        let off = u64::from(self.u32_via(at, false)?);
        if off + ENTRY_FIXED > self.entries_len {
            return Err(self.malformed(at, &format!("term {i} is malformed")));
        }
        let end = self.entries_at + self.entries_len;
        let e = self.entries_at + off;
        let head = chunk.get(self, e, 3, end)?;
        let len = u64::from(u16::from_le_bytes([head[1], head[2]]));
        let kind = Kind::from_u8(head[0])
            .ok_or_else(|| self.malformed(e, &format!("term {i} is malformed")))?;
        if e + ENTRY_FIXED + len > end {
            return Err(self.malformed(e, &format!("term {i} is malformed")));
        }
        let b = chunk.get(self, e, (ENTRY_FIXED + len) as usize, end)?;
        let (term, tail) = b[3..].split_at(len as usize);
        self.entry_of(i, e, kind, term, tail)
    }

    /// The least and greatest event id of the segment, if it holds any.
    pub(crate) fn id_range(&self) -> Result<Option<(Box<str>, Box<str>)>> {
        let first = self.lower_bound(Kind::Id, b"")?;
        let end = self.lower_bound(Kind::Key, b"")?;
        let Some(last) = end.checked_sub(1).filter(|&l| l >= first) else {
            return Ok(None);
        };
        let id = |i: u64| -> Result<Option<Box<str>>> {
            let e = self.entry(i)?;
            Ok((e.kind == Kind::Id)
                .then(|| std::str::from_utf8(&e.term).ok().map(Box::from))
                .flatten())
        };
        Ok(match (id(first)?, id(last)?) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        })
    }

    /// The whole index as one [`IndexFile`] in memory, checked whole (its CRC, then its
    /// structure): for copying its records out, as an active segment's checkpoint is when the
    /// segment is sealed or the store closed. A file that fails is marked damaged
    /// ([`SealedIndex::is_damaged`]) and the error returned: its owner makes the index again.
    pub(crate) fn whole(&self, base: u64) -> Result<IndexFile> {
        let bytes = match &self.source {
            Source::Bytes(b) => Arc::clone(b),
            Source::File(f) => {
                let len = usize::try_from(f.len())
                    .map_err(|_| self.malformed(0, "longer than memory can hold"))?;
                let mut v = vec![0u8; len];
                read_file(f.file.as_ref(), &mut v, 0).map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => {
                        self.malformed(0, "shorter than its header says")
                    }
                    _ => Error::io("read", &self.path, e),
                })?;
                Arc::new(Mapped::Bytes(v))
            }
        };
        let whole = IndexFile::open(bytes, base, Some(self.segment_len)).and_then(|ix| {
            (ix.count == self.count)
                .then_some(ix)
                .ok_or_else(|| "its record count changed".to_owned())
        });
        match whole {
            Ok(ix) => Ok(ix),
            Err(e) => {
                self.damaged.store(true, Ordering::Release);
                Err(self.malformed(0, &e))
            }
        }
    }

    /// Where each of the records `ords` (strictly ascending: else the sidecar is corrupt)
    /// starts, how long it is and its ordinal; the last record ends at `end`. Positions that do
    /// not add up (out of order, or past the segment's end: a file whose sums hold but whose
    /// positions are not its segment's) fail the lookup with `Corrupt`, never leaving a record
    /// out of an answer in silence.
    ///
    /// The positions of neighbouring wanted records are read together, up to 4 KiB at a time,
    /// so that a read of many records of a segment reads each part of the table once, and
    /// around the block cache; a record alone (a stream's events are spread over the log) reads
    /// its position and the next through the cache.
    pub(crate) fn extents(&self, ords: impl Iterator<Item = u32>, end: u64) -> Result<Vec<Extent>> {
        let out = self.extents_of_each(ords, end)?;
        if let Some(&(_, _, o)) = out.iter().find(|e| e.0 == u64::MAX) {
            return Err(self.malformed(
                HEADER as u64 + u64::from(o) * 4,
                "record positions out of order or past the segment's end",
            ));
        }
        Ok(out)
    }

    /// The records of postings `skip..skip + take` of stream `stream` (fewer if it has fewer),
    /// in version order, as [`SealedIndex::extents`] gives them but one per posting
    /// (`(u64::MAX, 0, ord)` where positions do not add up), so that a read can tell which
    /// version each is.
    ///
    /// The stream's extents in this segment are remembered in the block cache's memo when they
    /// fit it (a stream read again then makes no lookup), and then computed for all of its
    /// postings; a stream too large for the memo has only the wanted ones computed.
    pub(crate) fn stream_extents(
        &self,
        stream: &str,
        end: u64,
        skip: usize,
        take: usize,
    ) -> Result<Vec<Extent>> {
        let wanted = |all: &[Extent]| all.iter().skip(skip).take(take).copied().collect();
        let memo = match &self.source {
            Source::File(f) if end == self.segment_len => Some(f),
            _ => None,
        };
        if let Some(e) = memo.and_then(|f| f.remembered(stream)) {
            return Ok(wanted(&e));
        }
        let Some(e) = self.find(Kind::Stream, stream)? else {
            return Ok(Vec::new());
        };
        let n = usize::try_from(e.n).unwrap_or(usize::MAX);
        if let Some(f) = memo.filter(|f| f.would_remember(stream, n)) {
            let postings = self.postings_of(e.first, e.n, true)?;
            let all: Arc<[Extent]> = self.extents_of_each(postings.into_iter(), end)?.into();
            f.remember(stream, &all);
            return Ok(wanted(&all));
        }
        // Only the wanted postings, as a read did before the memo: a stream of many events in
        // this segment must not cost a position read for each of them.
        let skip = (skip as u64).min(e.n);
        let take = (take as u64).min(e.n - skip);
        let postings = self.postings_of(e.first + skip, take, true)?;
        self.extents_of_each(postings.into_iter(), end)
    }

    /// [`SealedIndex::extents`], with `(u64::MAX, 0, ord)` for each record left out (those
    /// past the end are not listed).
    fn extents_of_each(&self, ords: impl Iterator<Item = u32>, end: u64) -> Result<Vec<Extent>> {
        let ords: Vec<u32> = ords.take_while(|&o| u64::from(o) < self.count).collect();
        // Postings are checked ascending with the rest of the sidecar on its first use, but the
        // file is read again after its files are closed and opened: what is read now is what
        // counts, and the arithmetic below needs it.
        if let Some(w) = ords.windows(2).find(|w| w[0] >= w[1]) {
            return Err(self.malformed(
                self.postings_at,
                &format!("postings out of order ({} then {})", w[0], w[1]),
            ));
        }
        let mut out = Vec::with_capacity(ords.len());
        let mut buf = Vec::<u8>::new();
        let mut k = 0;
        while k < ords.len() {
            // Ords k..j, each within 4 KiB of positions of the one before, whose positions and
            // the one after the last span at most 64 KiB.
            let from = u64::from(ords[k]);
            let mut j = k + 1;
            while j < ords.len()
                && u64::from(ords[j] - ords[j - 1]) < POSITIONS_AT_ONCE
                && u64::from(ords[j]) - from + 1 < POSITIONS_RUN
            {
                j += 1;
            }
            let upto = (u64::from(ords[j - 1]) + 2).min(self.count);
            buf.resize(((upto - from) * 4) as usize, 0);
            self.read_via(&mut buf, HEADER as u64 + from * 4, j - k == 1)?;
            let position = |o: u64| -> Option<u64> {
                if o >= upto {
                    return Some(end);
                }
                let i = usize::try_from(o.checked_sub(from)?.checked_mul(4)?).ok()?;
                let b = buf.get(i..i.checked_add(4)?)?;
                Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            };
            for &o in &ords[k..j] {
                let at = position(u64::from(o));
                let next = position(u64::from(o) + 1);
                // A position past the segment's end (the sidecar's sums match, its positions
                // are someone else's) would have a read look beyond the data.
                let len = at
                    .zip(next)
                    .filter(|&(_, next)| next <= end)
                    .and_then(|(at, next)| next.checked_sub(at))
                    .and_then(|l| u32::try_from(l).ok());
                match (at, len) {
                    (Some(at), Some(len)) => out.push((at, len, o)),
                    _ => out.push((u64::MAX, 0, o)),
                }
            }
            k = j;
        }
        Ok(out)
    }
}

/// A window of a sidecar's bytes, for reading a section in order.
#[derive(Default)]
struct Chunk {
    at: u64,
    buf: Vec<u8>,
}

impl Chunk {
    /// The `len` bytes at `at`, reading up to 64 KiB (never past `limit`) when they are not here.
    fn get(&mut self, ix: &SealedIndex, at: u64, len: usize, limit: u64) -> Result<&[u8]> {
        let here = at >= self.at && at + len as u64 <= self.at + self.buf.len() as u64;
        if !here {
            let want = (len as u64)
                .max(ENTRIES_CHUNK)
                .min(limit.saturating_sub(at));
            if want < len as u64 {
                return Err(ix.malformed(at, "an entry runs past its section"));
            }
            // Around the block cache: a walk's chunk is read once.
            self.buf = ix.read_vec_via(at, want, false)?;
            self.at = at;
        }
        let s = (at - self.at) as usize;
        Ok(&self.buf[s..s + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{IndexFile, MemIndex, Terms};

    fn sample(n: u64) -> MemIndex {
        let mut m = MemIndex::default();
        for i in 0..n {
            m.add(
                100 + i * 40,
                1_000 + i as i64 / 3,
                &Terms {
                    stream: format!("s{}", i % 7),
                    event_type: format!("T{}", i % 3),
                    id: format!("id-{i:06}"),
                    tags: vec![format!("k={}", i % 2), format!("long-{}", "x".repeat(90))],
                    key: i.is_multiple_of(10).then(|| format!("key-{i}")),
                    ..Terms::default()
                }
                .borrowed(),
            );
        }
        m
    }

    /// The same sidecar read by `pread` from a file, from memory, and through `IndexFile`.
    fn three(n: u64) -> (SealedIndex, SealedIndex, IndexFile, tempfile::TempDir) {
        let bytes = sample(n).encode(7, 100 + n * 40).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        std::fs::write(&path, &bytes).unwrap();
        let file = crate::storage::Storage::open(&crate::storage::OsStorage, &path, false).unwrap();
        let len = 100 + n * 40;
        let by_reads = SealedIndex::open(file, &path, 7, Some(len))
            .unwrap()
            .caching(&BlockCache::new(1 << 20));
        let mapped = Arc::new(Mapped::Bytes(bytes));
        let in_memory = SealedIndex::in_memory(Arc::clone(&mapped), &path, 7, len).unwrap();
        let whole = IndexFile::open(mapped, 7, Some(len)).unwrap();
        (by_reads, in_memory, whole, dir)
    }

    #[test]
    fn every_lookup_answers_as_the_whole_file_does() {
        for n in [0, 1, 3, 2_500] {
            let (a, b, f, _dir) = three(n);
            for ix in [&a, &b] {
                assert_eq!(ix.count, f.count);
                for ord in (0..n as u32 + 2).step_by(7) {
                    assert_eq!(ix.position(ord).unwrap(), f.position(ord), "{n} {ord}");
                    assert_eq!(ix.time(ord).unwrap(), f.time(ord), "{n} {ord}");
                }
                for t in [0, 1_000, 1_001, 1_300, 1_833, 99_999] {
                    assert_eq!(ix.first_at_or_after(t).unwrap(), f.first_at_or_after(t));
                }
                for kind in Kind::ALL {
                    let (text, ends) = ix.term_counts(kind).unwrap();
                    let mut from = 0;
                    let got: Vec<(&str, usize)> = ends
                        .iter()
                        .map(|&(end, count)| {
                            let t = &text[from..end as usize];
                            from = end as usize;
                            (t, count as usize)
                        })
                        .collect();
                    let want: Vec<(&str, usize)> = f
                        .terms_with_prefix(kind, "")
                        .map(|(t, p)| (t, p.len()))
                        .collect();
                    assert_eq!(got, want, "{n} {kind:?}");
                    for prefix in ["", "s", "k=", "long", "id-0000", "T2", "zz"] {
                        let got = ix.terms_with_prefix(kind, prefix).unwrap();
                        let want: Vec<(String, Vec<u32>)> = f
                            .terms_with_prefix(kind, prefix)
                            .map(|(t, p)| (t.to_owned(), p.iter().collect()))
                            .collect();
                        assert_eq!(got, want, "{n} {kind:?} {prefix}");
                        for (t, p) in &want {
                            assert_eq!(&ix.postings(kind, t).unwrap(), p);
                            assert_eq!(ix.last_posting(kind, t).unwrap(), p.last().copied());
                        }
                    }
                    assert!(ix.postings(kind, "absent").unwrap().is_empty());
                    assert_eq!(ix.last_posting(kind, "absent").unwrap(), None);
                }
                assert_eq!(ix.id_range().unwrap(), f.id_range());
                let ords: Vec<u32> = (0..n as u32).step_by(3).chain([n as u32 + 5]).collect();
                let end = 100 + n * 40;
                let want: Vec<Extent> = ords
                    .iter()
                    .filter_map(|&o| {
                        let at = u64::from(f.position(o)?);
                        let next = f.position(o + 1).map_or(end, u64::from);
                        Some((at, (next - at) as u32, o))
                    })
                    .collect();
                assert_eq!(ix.extents(ords.into_iter(), end).unwrap(), want);
                // A stream's extents, asked twice (the second from the memo when cached), whole
                // and in part.
                for _ in 0..2 {
                    for s in ["s0", "s3", "s6", "absent"] {
                        let p: Vec<u32> = f.postings(Kind::Stream, s).iter().collect();
                        let want = ix.extents(p.into_iter(), end).unwrap();
                        for (skip, take) in [(0, usize::MAX), (0, 1), (3, 5), (want.len(), 2)] {
                            let part: Vec<Extent> =
                                want.iter().skip(skip).take(take).copied().collect();
                            let got = ix.stream_extents(s, end, skip, take).unwrap();
                            assert_eq!(got, part, "{n} {s} {skip} {take}");
                        }
                    }
                }
            }
        }
    }

    /// A segment keeps the sample of terms its first sidecar gave. A sidecar that replaces one
    /// of another number of terms (one that passed its checks but was not the segment's,
    /// replaced by `reindex` or a rebuild) reads its own: the other's sent a lookup past the
    /// file's last term (a window whose start passed its end, and a length that underflowed).
    #[test]
    fn a_sample_read_from_a_sidecar_of_other_terms_is_not_used() {
        let len = 100 + 2_500 * 40;
        let dir = tempfile::tempdir().unwrap();
        let open = |n: u64, name: &str| {
            let path = dir.path().join(name);
            let bytes = sample(n).encode(7, len).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            let file =
                crate::storage::Storage::open(&crate::storage::OsStorage, &path, false).unwrap();
            let ix = SealedIndex::open(file, &path, 7, Some(len)).unwrap();
            (
                ix,
                IndexFile::open(Arc::new(Mapped::Bytes(bytes)), 7, Some(len)).unwrap(),
            )
        };
        let shared = Samples::default();
        let (first, _) = open(2_500, "first.idx");
        let first = first.sharing(&shared);
        assert!(first.postings(Kind::Tag, "k=1").unwrap().len() > 1_000);
        assert!(shared.get().is_some(), "the first lookup read the sample");
        let (second, whole) = open(600, "second.idx");
        let second = second.sharing(&shared);
        for kind in Kind::ALL {
            for (t, p) in whole.terms_with_prefix(kind, "") {
                let want: Vec<u32> = p.iter().collect();
                assert_eq!(second.postings(kind, t).unwrap(), want, "{kind:?} {t}");
            }
        }
    }

    /// Postings damaged after the sidecar's check (its files closed and opened again) are an
    /// error, not a panic: out of order, they once underflowed (`[7, 0]`) or indexed past the
    /// positions read (`[5, 4]`).
    #[test]
    fn postings_out_of_order_after_the_check_are_corrupt_not_a_panic() {
        for (bad, cached) in [
            ([7u32, 0u32], false),
            ([5, 4], false),
            ([5, 5], true),
            ([9, 2], true),
        ] {
            let (_, _, _, dir) = three(500);
            let path = dir.path().join("x.idx");
            let end = 100 + 500 * 40;
            let open = || {
                let file = crate::storage::Storage::open(&crate::storage::OsStorage, &path, false)
                    .unwrap();
                let ix = SealedIndex::open(file, &path, 7, Some(end)).unwrap();
                match cached {
                    true => ix.caching(&BlockCache::new(1 << 20)),
                    false => ix,
                }
            };
            // Checked: stream s1's first postings are 1 and 8.
            let e = open().find(Kind::Stream, "s1").unwrap().unwrap();
            assert_eq!(open().postings(Kind::Stream, "s1").unwrap()[..2], [1, 8]);
            let at = open().postings_at + e.first * 4;
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[at as usize..at as usize + 4].copy_from_slice(&bad[0].to_le_bytes());
            bytes[at as usize + 4..at as usize + 8].copy_from_slice(&bad[1].to_le_bytes());
            std::fs::write(&path, &bytes).unwrap();
            // Opened again, as after its files were closed.
            let ix = open();
            let err = ix.stream_extents("s1", end, 0, usize::MAX).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{bad:?}: {err}");
            let err = ix.extents(bad.into_iter(), end).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{bad:?}: {err}");
        }
    }

    /// A sidecar file that counts the bytes read from it.
    struct Counting(Arc<dyn StorageFile>, std::sync::atomic::AtomicU64);

    impl StorageFile for Counting {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            let n = self.0.read_at(buf, offset)?;
            self.1
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            Ok(n)
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
            unreachable!("read only")
        }
        fn sync_data(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn len(&self) -> std::io::Result<u64> {
            self.0.len()
        }
        fn set_len(&self, _: u64) -> std::io::Result<()> {
            unreachable!("read only")
        }
        fn map(&self) -> std::io::Result<Option<Mapped>> {
            Ok(None)
        }
    }

    /// A stream the memo would not keep has only the wanted postings' positions read: a read of
    /// its first event must not cost a position read for each of its events in the segment.
    #[test]
    fn a_stream_too_large_for_the_memo_reads_only_the_wanted_positions() {
        let n = 20_000;
        let (_, _, whole, dir) = three(n);
        let path = dir.path().join("x.idx");
        let end = 100 + n * 40;
        for capacity in [0, 64 * 1024] {
            let file =
                crate::storage::Storage::open(&crate::storage::OsStorage, &path, false).unwrap();
            let counting = Arc::new(Counting(file, Default::default()));
            let ix = SealedIndex::open(counting.clone(), &path, 7, Some(end))
                .unwrap()
                .caching(&BlockCache::new(capacity));
            let read = |skip, take| {
                let before = counting.1.load(std::sync::atomic::Ordering::Relaxed);
                let got = ix.stream_extents("s3", end, skip, take).unwrap();
                (
                    got,
                    counting.1.load(std::sync::atomic::Ordering::Relaxed) - before,
                )
            };
            read(0, 1); // the sample of terms, read once
            let (one, bytes_one) = read(5, 1);
            let (all, bytes_all) = read(0, usize::MAX);
            assert_eq!(all.len(), whole.postings(Kind::Stream, "s3").len());
            assert_eq!(one, all[5..6]);
            // 2,857 positions 28 bytes apart (80 KB, read in runs of up to 64 KiB) against a
            // lookup and two positions (whole 4 KiB blocks when they go through the cache): the
            // one read leaves out at least 60 KB of what reading all of them reads.
            assert!(bytes_all > 60_000, "{capacity}: {bytes_all}");
            assert!(
                bytes_one + 60_000 < bytes_all,
                "{capacity}: {bytes_one} of {bytes_all}"
            );
        }
    }

    /// Walks of the terms (a prefix query's, the counts of every term) read around the block
    /// cache: however often they run, they keep nothing in it.
    #[test]
    fn walks_of_the_terms_leave_nothing_in_the_block_cache() {
        let (_, _, _, dir) = three(2_500);
        let path = dir.path().join("x.idx");
        let file = crate::storage::Storage::open(&crate::storage::OsStorage, &path, false).unwrap();
        let cache = BlockCache::new(1 << 20);
        let ix = SealedIndex::open(file, &path, 7, Some(100 + 2_500 * 40))
            .unwrap()
            .caching(&cache);
        // The first kind: its lower bound is found from the sample, with no read.
        let kind = Kind::ALL[0];
        for _ in 0..3 {
            assert!(!ix.terms_with_prefix(kind, "").unwrap().is_empty());
            assert!(!ix.term_counts(kind).unwrap().1.is_empty());
        }
        assert_eq!(cache.bytes(), 0);
        // A lookup repeated is kept.
        for _ in 0..2 {
            ix.postings(Kind::Stream, "s1").unwrap();
        }
        assert!(cache.bytes() > 0);
    }

    #[test]
    fn a_sidecar_cut_short_after_its_check_is_an_error_not_an_answer() {
        let (_, _, _, dir) = three(500);
        let path = dir.path().join("x.idx");
        let file = crate::storage::Storage::open(&crate::storage::OsStorage, &path, false).unwrap();
        let ix = SealedIndex::open(file, &path, 7, Some(100 + 500 * 40)).unwrap();
        let cut = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        cut.set_len(HEADER as u64 + 100).unwrap();
        let err = ix.postings(Kind::Stream, "s1").unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(ix.extents([400].into_iter(), 0).is_err());
        assert!(ix.terms_with_prefix(Kind::Type, "").is_err());
    }

    /// Every lookup a store makes, as text to compare.
    fn answers(ix: &SealedIndex, end: u64) -> Vec<String> {
        let mut out = Vec::new();
        for ord in (0..ix.count as u32 + 1).step_by(13) {
            out.push(format!("{:?} {:?}", ix.position(ord), ix.time(ord)));
        }
        out.push(format!("{:?}", ix.first_at_or_after(1_050)));
        out.push(format!("{:?}", ix.id_range()));
        for kind in Kind::ALL {
            out.push(format!("{:?}", ix.term_counts(kind)));
        }
        for s in ["s0", "s3", "s6"] {
            out.push(format!("{:?}", ix.stream_extents(s, end, 0, usize::MAX)));
        }
        for (kind, t) in [
            (Kind::Type, "T1"),
            (Kind::Tag, "k=0"),
            (Kind::Id, "id-000123"),
        ] {
            out.push(format!("{:?}", ix.postings(kind, t)));
        }
        out
    }

    /// A format-2 sidecar damaged anywhere under an open index (a byte of every 3 flipped in
    /// turn, its files opened again after each): every lookup answers as before or fails with
    /// `Corrupt`: never a different answer, never a panic.
    #[test]
    fn a_damaged_byte_anywhere_fails_the_lookup_that_reads_it_never_answers_wrong() {
        let (_, _, _, dir) = three(300);
        let path = dir.path().join("x.idx");
        let end = 100 + 300 * 40;
        let good = std::fs::read(&path).unwrap();
        let open = || {
            let file =
                crate::storage::Storage::open(&crate::storage::OsStorage, &path, false).unwrap();
            SealedIndex::open(file, &path, 7, Some(end))
                .map(|ix| ix.caching(&BlockCache::new(1 << 20)))
        };
        let want = answers(&open().unwrap(), end);
        assert!(want.iter().all(|a| !a.contains("Err")), "{want:?}");
        let (mut refused, mut failed) = (0, 0);
        for at in (0..good.len()).step_by(3) {
            let mut bad = good.clone();
            bad[at] ^= 0x08;
            std::fs::write(&path, &bad).unwrap();
            let Ok(ix) = open() else {
                refused += 1;
                continue;
            };
            let got = answers(&ix, end);
            for (g, w) in got.iter().zip(&want) {
                assert!(g == w || g.contains("Corrupt"), "byte {at}: {g} for {w}");
            }
            failed += usize::from(got != want);
        }
        // The header and the block sums are checked at open; damage elsewhere by the lookups.
        assert!(refused > 0 && failed > 0, "{refused} {failed}");
    }
}
