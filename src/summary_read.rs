//! Reading a summary (`summary`, format 2, `docs/format.md`): its header and head, checked
//! at open ([`read_head`]), and its stream records, searched in place ([`SummaryStreams`]): a
//! look-up reads one block (through the store's block cache, which keeps a block read twice)
//! and checks its CRC before using a byte of it; the summary keeps nothing of the blocks but
//! whether a look-up found each one's names in order. A damaged block is an error naming the
//! summary ([`is_summary_error`]), never a panic and never a wrong answer: the stream table is
//! then built from the sidecars (`State::with_streams`). Writing one, and deciding whether an open
//! uses one, is `summary.rs`; this module reads bytes and decides nothing else.

use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::block_cache::{BlockCache, CachedFile};
use crate::error::{Error, Result};
use crate::sealed::Summary;
use crate::storage::StorageFile;

pub(crate) use crate::files::SUMMARY_FILE;
pub(crate) const MAGIC: &[u8; 8] = b"EVFSUM\0\x01";
pub(crate) const FORMAT: u32 = 2;
/// Bytes of the fixed header, its CRC last.
pub(crate) const HEADER: usize = 112;

/// Reads a summary's bytes, front to back; every read is checked.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    /// A LEB128 varint; one byte is the common case.
    #[inline(always)]
    pub(crate) fn varint(&mut self) -> Option<u64> {
        match self.0.first() {
            Some(&b) if b < 0x80 => {
                self.0 = &self.0[1..];
                Some(u64::from(b))
            }
            _ => self.varint_long(),
        }
    }

    #[cold]
    fn varint_long(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A name: its u16 length, then UTF-8.
    fn name(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.name_bytes()?).ok()
    }

    /// A name's bytes, not yet checked as UTF-8: what a look-up passing over a record compares
    /// (names order as their bytes do).
    fn name_bytes(&mut self) -> Option<&'a [u8]> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        self.take(len)
    }
}

/// What the header and head of a summary say.
pub(crate) struct Head {
    pub next_seq: u64,
    pub last_time: i64,
    pub ranges: Vec<(u64, u64)>,
    /// Per sealed segment: base, length, and its sidecar's summary.
    pub segments: Vec<(u64, u64, Summary)>,
    pub streams: SummaryStreams,
}

/// One stream's record in a summary.
#[derive(Debug)]
pub(crate) struct Record {
    pub name: String,
    /// Its sealed segments and removed ranges, with its last version in each: `(base,
    /// version)`, both ascending.
    pub sealed: Vec<(u64, u64)>,
    /// Its events in the active segment at the close, up to the checkpoint.
    pub active: u64,
}

/// The stream records of a summary, read in place: a directory of blocks in memory, each
/// block read and checked (its CRC) when a look-up or a walk needs it.
pub(crate) struct SummaryStreams {
    /// Read through the store's block cache: a block looked up again is a copy, not a `pread`
    /// (every read is checked all the same).
    file: CachedFile,
    path: PathBuf,
    /// The bases the records' pairs number, ascending.
    points: Vec<u64>,
    /// Per block: offset in the file, length, CRC.
    blocks: Vec<(u64, u32, u32)>,
    /// Per block, its first record's name: `names[ends[i - 1]..ends[i]]`.
    names: String,
    ends: Vec<u32>,
    /// Per block, whether a look-up walked all of it and found its names in order ([`find`]).
    ///
    /// [`find`]: SummaryStreams::find
    ordered: Vec<AtomicBool>,
    /// Streams, and of them those with events in a sealed segment or removed range.
    pub streams: u64,
    pub sealed_streams: u64,
    /// The active segment at the close, and how far its checkpoint reached: its events and
    /// length. The records' `active` counts are of those events.
    pub active_base: u64,
    pub active_count: u64,
    pub active_len: u64,
    /// The CRC of that checkpoint (0: the close wrote none).
    pub checkpoint_crc: u32,
}

impl std::fmt::Debug for SummaryStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SummaryStreams")
            .field("path", &self.path)
            .field("blocks", &self.blocks.len())
            .field("streams", &self.streams)
            .finish()
    }
}

/// Whether `e` is the damage of `summary` (the one the stream table reads, if any), or a failure
/// to read it, found after the open: a caller builds the stream table from the sidecars
/// instead. The error must name that very file (not merely a file or directory of its name).
pub(crate) fn is_summary_error(summary: Option<&Arc<SummaryStreams>>, e: &Error) -> bool {
    summary.is_some_and(|s| match e {
        Error::Corrupt { path, .. } | Error::Io { path, .. } => *path == s.path,
        _ => false,
    })
}

/// Whether `e` is the damage of `summary` (not a failure to read it): a writer's open removes
/// the file, so that the next open does not meet it again.
pub(crate) fn is_summary_damage(summary: Option<&Arc<SummaryStreams>>, e: &Error) -> bool {
    summary.is_some_and(|s| matches!(e, Error::Corrupt { path, .. } if *path == s.path))
}

impl SummaryStreams {
    /// The bases the records' pairs number, ascending.
    pub(crate) fn points(&self) -> &[u64] {
        &self.points
    }

    fn first_name(&self, i: usize) -> &str {
        let from = i.checked_sub(1).map_or(0, |p| self.ends[p] as usize);
        &self.names[from..self.ends[i] as usize]
    }

    /// The block that would hold `name`: the last whose first name is not above it.
    fn block_of(&self, name: &str) -> Option<usize> {
        // A binary search over the blocks' first names.
        let (mut lo, mut hi) = (0, self.blocks.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.first_name(mid) <= name {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    fn damaged(&self, offset: u64, what: impl std::fmt::Display) -> Error {
        Error::corrupt(
            &self.path,
            offset,
            format!("summary block: {what}; the stream table is read from the sidecars instead"),
        )
    }

    /// Block `i`'s bytes, read and checked against the directory's CRC: through the block
    /// cache for a look-up (`cached`), around it for a walk, which is a scan (it reads every
    /// block once, and would otherwise keep them all: a block is not aligned to the cache's,
    /// so each read is the second miss of the cache block it shares with the last).
    fn block(&self, i: usize, cached: bool) -> Result<Vec<u8>> {
        let (offset, len, crc) = self.blocks[i];
        let mut buf = vec![0u8; len as usize];
        let read = match cached {
            true => self.file.read_exact_at(&mut buf, offset),
            false => crate::block_cache::read_exact(self.file.file.as_ref(), &mut buf, offset),
        };
        // A file shorter than its directory says is damage; any other failure to read is an
        // I/O error, perhaps passing: a writer's open removes a damaged summary, not one it
        // could not read (both make the store read the sidecars instead).
        read.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.damaged(offset, "the file ends before it")
            } else {
                Error::io("read", &self.path, e)
            }
        })?;
        if crc32fast::hash(&buf) != crc {
            return Err(self.damaged(offset, "its CRC does not match"));
        }
        Ok(buf)
    }

    /// The record at the front of `r`, in block `i`, checked: its pairs name known bases in
    /// order, with versions that increase.
    fn record(&self, i: usize, r: &mut Reader<'_>) -> Result<Record> {
        let offset = self.blocks[i].0;
        let bad = || self.damaged(offset, "a record does not decode");
        let name = r.name().ok_or_else(bad)?.to_owned();
        let k = r.varint().ok_or_else(bad)?;
        if k > (r.0.len() / 2) as u64 {
            return Err(bad());
        }
        let mut sealed = Vec::new();
        let (mut point, mut version) = (0u64, 0u64);
        for j in 0..k {
            let (dp, dv) = (r.varint().ok_or_else(bad)?, r.varint().ok_or_else(bad)?);
            // Strictly increasing bases and versions: a pair names a segment or range holding
            // at least one of the stream's events (what `StreamTable::sealed` and
            // `add_segment` write), and a list naming one without any would have a stream
            // read select a negative number of versions there.
            if (j > 0 && dp == 0) || dv == 0 {
                return Err(bad());
            }
            point = point.checked_add(dp).ok_or_else(bad)?;
            version = version.checked_add(dv).ok_or_else(bad)?;
            let base = usize::try_from(point)
                .ok()
                .and_then(|p| self.points.get(p))
                .ok_or_else(bad)?;
            sealed.push((*base, version));
        }
        let active = r.varint().ok_or_else(bad)?;
        // No more events than the log holds: those before the active segment, then those of
        // its checkpoint (`read_head` checked that the sum fits).
        if version >= self.active_base.max(1) || active > self.active_count {
            return Err(bad());
        }
        Ok(Record {
            name,
            sealed,
            active,
        })
    }

    /// The record of `stream`, if the summary has one.
    ///
    /// A block's names must ascend for a look-up to stop at the first name past the one it
    /// seeks: the first look-up in a block walks all of it, checking that its names ascend from
    /// the directory's first name to below the next block's, and remembers that it did; later
    /// look-ups stop early and compare no more names than they pass. Each read of the block is
    /// checked against the directory's CRC all the same, so it is the block that was walked.
    pub(crate) fn find(&self, stream: &str) -> Result<Option<Record>> {
        let Some(i) = self.block_of(stream) else {
            return Ok(None);
        };
        let bytes = self.block(i, true)?;
        let ordered = self.ordered[i].load(Ordering::Relaxed);
        let mut r = Reader(&bytes);
        let offset = self.blocks[i].0;
        let bad = || self.damaged(offset, "a record does not decode");
        let mut prev: Option<&[u8]> = None;
        let mut found = None;
        while !r.0.is_empty() {
            // Records are passed over by their names' bytes and their lengths (the block's
            // CRC held); the one asked for is decoded with every check.
            let at = r.0;
            let name = r.name_bytes().ok_or_else(bad)?;
            if !ordered {
                std::str::from_utf8(name).map_err(|_| bad())?;
                self.check_order(i, prev, name, prev.is_none())?;
            }
            if name == stream.as_bytes() {
                found = Some(at);
            }
            if ordered && name >= stream.as_bytes() {
                break;
            }
            let k = r.varint().ok_or_else(bad)?;
            if k > (r.0.len() / 2) as u64 {
                return Err(bad());
            }
            for _ in 0..2 * k + 1 {
                r.varint().ok_or_else(bad)?;
            }
            prev = Some(name);
        }
        if !ordered {
            let below_next = match (prev, i + 1 < self.blocks.len()) {
                (Some(last), true) => last < self.first_name(i + 1).as_bytes(),
                _ => true,
            };
            if !below_next {
                return Err(self.damaged(offset, "its names are out of order"));
            }
            self.ordered[i].store(true, Ordering::Relaxed);
        }
        match found {
            Some(at) => self.record(i, &mut Reader(at)).map(Some),
            None => Ok(None),
        }
    }

    /// Names ascend (bytes: names order as their bytes do), and a block's first is the
    /// directory's: `name`, the first of block `i` if `first`, comes after `prev`.
    fn check_order(&self, i: usize, prev: Option<&[u8]>, name: &[u8], first: bool) -> Result<()> {
        let fine =
            prev.is_none_or(|p| p < name) && (!first || name == self.first_name(i).as_bytes());
        if fine {
            Ok(())
        } else {
            Err(self.damaged(self.blocks[i].0, "its names are out of order"))
        }
    }

    /// The records from `lower` on, in name order.
    pub(crate) fn walk(&self, lower: Bound<&str>) -> SummaryWalk<'_> {
        let (block, lower) = match lower {
            Bound::Unbounded => (0, Bound::Unbounded),
            Bound::Included(l) => (self.block_of(l).unwrap_or(0), Bound::Included(l.to_owned())),
            Bound::Excluded(l) => (self.block_of(l).unwrap_or(0), Bound::Excluded(l.to_owned())),
        };
        SummaryWalk {
            streams: self,
            block,
            bytes: Vec::new(),
            at: 0,
            prev: None,
            lower,
            done: false,
        }
    }
}

/// A walk of a summary's records in name order ([`SummaryStreams::walk`]): one block in
/// memory at a time.
pub(crate) struct SummaryWalk<'a> {
    streams: &'a SummaryStreams,
    /// The block in `bytes`, or the next to read when `bytes` is used up.
    block: usize,
    bytes: Vec<u8>,
    at: usize,
    prev: Option<String>,
    lower: Bound<String>,
    done: bool,
}

impl Iterator for SummaryWalk<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        loop {
            if self.done {
                return None;
            }
            if self.at >= self.bytes.len() {
                if self.block >= self.streams.blocks.len() || !self.bytes.is_empty() {
                    // The block in memory is used up: the next one.
                    if !self.bytes.is_empty() {
                        self.block += 1;
                        self.bytes.clear();
                    }
                    if self.block >= self.streams.blocks.len() {
                        self.done = true;
                        return None;
                    }
                }
                match self.streams.block(self.block, false) {
                    Ok(b) => self.bytes = b,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                self.at = 0;
            }
            let mut r = Reader(&self.bytes[self.at..]);
            // `prev` carries over from the block before: a block's first name must come after
            // the last name of the one before it, as well as be the directory's.
            let rec = self.streams.record(self.block, &mut r).and_then(|rec| {
                self.streams.check_order(
                    self.block,
                    self.prev.as_deref().map(str::as_bytes),
                    rec.name.as_bytes(),
                    self.at == 0,
                )?;
                Ok(rec)
            });
            let rec = match rec {
                Ok(rec) => rec,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            self.at = self.bytes.len() - r.0.len();
            self.prev = Some(rec.name.clone());
            let below = match &self.lower {
                Bound::Unbounded => false,
                Bound::Included(l) => rec.name.as_str() < l.as_str(),
                Bound::Excluded(l) => rec.name.as_str() <= l.as_str(),
            };
            if !below {
                return Some(Ok(rec));
            }
        }
    }
}

/// Why an open does not take a summary that [`read_head`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its header or head fails its checks, or it cannot be read: damage, which `verify`
    /// reports.
    Damaged(String),
    /// A sound header of another format (1, written by the version before): not damage.
    Format(u32),
}

/// Why [`read_head`] refused the summary `file`: its header read again, to tell damage from a
/// summary of another format (asked only after a refusal: a sound header of this format means
/// the head after it failed its checks).
pub(crate) fn refusal(file: &dyn StorageFile) -> Refusal {
    let mut header = [0u8; HEADER];
    if let Err(e) = crate::block_cache::read_exact(file, &mut header, 0) {
        return Refusal::Damaged(match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                format!("shorter than its {HEADER}-byte header")
            }
            _ => format!("its header cannot be read: {e}"),
        });
    }
    if &header[..8] != MAGIC {
        return Refusal::Damaged("it does not begin with the summary's magic".into());
    }
    // Another format is a note only if its header holds together: format 1's (which has no
    // CRC of its own header: one CRC covers its whole file), or one whose header CRC matches
    // (a later format keeping this header). A damaged format field fails the CRC.
    let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    let (body, crc) = header.split_at(HEADER - 4);
    let crc_ok = crc32fast::hash(body).to_le_bytes() == crc;
    if format != FORMAT && (format == 1 || crc_ok) {
        return Refusal::Format(format);
    }
    if !crc_ok {
        return Refusal::Damaged("its header fails its CRC".into());
    }
    Refusal::Damaged("its head (segments, removed ranges, block directory) fails its checks".into())
}

/// Whether the removed ranges and the sealed segments' counts cover the seqs below `next_seq`
/// one after another, with no gap and no overlap, and their last times never go back nor pass
/// the head's: reads and counts plan on these numbers without opening a sidecar (a count too
/// small would pass over a segment's last events, one too large overflow `base + count`).
fn tiles(
    ranges: &[(u64, u64)],
    segments: &[(u64, u64, Summary)],
    next_seq: u64,
    last_time: i64,
) -> bool {
    let mut pieces: Vec<(u64, Option<u64>, Option<i64>)> = ranges
        .iter()
        .map(|&(base, end)| (base, Some(end), None))
        .chain(segments.iter().map(|(base, _, s)| {
            let time = (s.count > 0).then_some(s.last_time);
            (*base, base.checked_add(s.count), time)
        }))
        .collect();
    pieces.sort_unstable_by_key(|p| p.0);
    let mut time = i64::MIN;
    for (i, &(_, end, t)) in pieces.iter().enumerate() {
        let next = pieces.get(i + 1).map_or(next_seq, |p| p.0);
        if end != Some(next) {
            return false;
        }
        if let Some(t) = t {
            if t < time || t > last_time {
                return false;
            }
            time = t;
        }
    }
    true
}

/// Reads and checks the header and head of the summary `file`; `None` if it is damaged or not
/// one this version reads ([`refusal`] says which).
pub(crate) fn read_head(
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    cache: &Arc<BlockCache>,
) -> Option<Head> {
    let len = file.len().ok()?;
    let mut header = [0u8; HEADER];
    crate::block_cache::read_exact(file.as_ref(), &mut header, 0).ok()?;
    let (body, crc) = header.split_at(HEADER - 4);
    if crc32fast::hash(body).to_le_bytes() != crc || &body[..8] != MAGIC {
        return None;
    }
    let mut r = Reader(&body[8..]);
    if r.u32()? != FORMAT || r.u32()? != 0 {
        return None;
    }
    let next_seq = r.u64()?;
    let last_time = r.u64()? as i64;
    let (active_count, active_len) = (r.u64()?, r.u64()?);
    let (streams, sealed_streams) = (r.u64()?, r.u64()?);
    let (nr, ns, np, nb, head_len) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?);
    let checkpoint_crc = r.u32()?;
    // Every count must fit the head, and the head the file, before anything is allocated.
    if head_len > len.saturating_sub(HEADER as u64)
        || nr
            .checked_mul(16)?
            .checked_add(ns.checked_mul(40)?)?
            .checked_add(np.checked_mul(8)?)?
            .checked_add(nb.checked_mul(18)?)?
            .checked_add(4)?
            > head_len
        || sealed_streams > streams
        || streams < nb
        // A record takes at least a byte, and the log's seqs fit a u64: versions bounded by
        // them (`SummaryStreams::record`) cannot overflow when events are added to them.
        || active_count > active_len
        || next_seq.checked_add(active_count).is_none()
    {
        return None;
    }
    let mut head = vec![0u8; head_len as usize];
    crate::block_cache::read_exact(file.as_ref(), &mut head, HEADER as u64).ok()?;
    let (body, crc) = head.split_at(head.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let mut r = Reader(body);
    let ranges = (0..nr)
        .map(|_| Some((r.u64()?, r.u64()?)))
        .collect::<Option<Vec<_>>>()?;
    let mut segments: Vec<(u64, u64, Summary)> = Vec::with_capacity(ns as usize);
    for _ in 0..ns {
        let (base, len) = (r.u64()?, r.u64()?);
        let summary = Summary {
            index_bytes: r.u64()?,
            count: r.u64()?,
            last_time: r.u64()? as i64,
        };
        if segments.last().is_some_and(|&(b, _, _)| b >= base) {
            return None;
        }
        segments.push((base, len, summary));
    }
    if !tiles(&ranges, &segments, next_seq, last_time) {
        return None;
    }
    let points = (0..np).map(|_| r.u64()).collect::<Option<Vec<_>>>()?;
    if points.windows(2).any(|w| w[0] >= w[1]) {
        return None;
    }
    // A list names only what the head describes, the sealed segments and removed ranges, all
    // below the active segment: the CRCs vouch for the bytes, not for the writer, and a base
    // past them would be trusted into the stream table (a list whose bases do not ascend once
    // the active segment is sealed, reads planned on segments that hold no such events).
    let mut known: Vec<u64> = ranges.iter().map(|r| r.0).collect();
    known.extend(segments.iter().map(|s| s.0));
    known.sort_unstable();
    if points
        .iter()
        .any(|p| *p >= next_seq || known.binary_search(p).is_err())
    {
        return None;
    }
    // The blocks follow the head, one after another, to the file's end.
    let mut blocks = Vec::with_capacity(nb as usize);
    let mut next = HEADER as u64 + head_len;
    for _ in 0..nb {
        let (offset, blen, crc) = (r.u64()?, r.u32()?, r.u32()?);
        if offset != next || blen == 0 {
            return None;
        }
        next = offset.checked_add(u64::from(blen))?;
        blocks.push((offset, blen, crc));
    }
    if next != len {
        return None;
    }
    let (mut names, mut ends) = (String::new(), Vec::with_capacity(nb as usize));
    for _ in 0..nb {
        let name = r.name()?;
        let prev = match ends.len() {
            0 => None,
            n => {
                let from = if n >= 2 { ends[n - 2] as usize } else { 0 };
                Some(&names[from..ends[n - 1] as usize])
            }
        };
        if prev.is_some_and(|p| name <= p) {
            return None;
        }
        names.push_str(name);
        ends.push(u32::try_from(names.len()).ok()?);
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(Head {
        next_seq,
        last_time,
        ranges,
        segments,
        streams: SummaryStreams {
            file: CachedFile::new(file, len, cache),
            path,
            points,
            ordered: blocks.iter().map(|_| AtomicBool::new(false)).collect(),
            blocks,
            names,
            ends,
            streams,
            sealed_streams,
            active_base: next_seq,
            active_count,
            active_len,
            checkpoint_crc,
        },
    })
}
