//! The store summary (`summary`): the stream table at a clean close, with the sealed segments
//! it describes and the active segment's checkpoint it counts, written at a clean close and
//! read by the next open, so that the open reads neither the sealed segments' sidecars nor the
//! checkpoint's stream terms, and builds no stream table (issue 16).
//!
//! Format 2 (`docs/format.md`): a header and a head (segments, removed ranges, the bases the
//! streams' lists name, a directory of blocks), each with its CRC, read and checked at open;
//! then the streams' records in name order, in blocks of about 4 KiB, each with its CRC in the
//! directory. A look-up ([`SummaryStreams::find`]) reads one block by `pread` and checks it
//! before using a byte of it; nothing of the blocks stays in memory. A damaged block is an
//! error naming this file ([`is_summary_error`]): the caller then builds the stream table
//! from the sidecars instead, as an open without a summary does.
//!
//! It is a cache. An open uses it only if its header and head are intact and it describes
//! exactly the sealed segments the directory holds first (bases, lengths, headers) and the
//! removed ranges the manifest records; anything else, or an open that fails with it, falls
//! back to reading the sidecars. A crash at any point leaves either no summary, the previous
//! one (which then describes a prefix of the segments, or fails to match), or this one: each
//! opens correctly. A summary of format 1 (before this one) is not read: the open reads the
//! sidecars, and the next clean close writes format 2. This module must never decide what
//! exists: it repeats what the sidecars, the checkpoint and the manifest said when it was
//! written.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sealed::{Sealed, Summary};
use crate::segment::{Lines, SegmentData, segment_name};
use crate::segments::Segment;
use crate::state::State;
use crate::storage::{Storage, StorageFile};
use crate::stream_table::{SealedList, StreamTable};

/// Name of the summary file.
pub(crate) const SUMMARY_FILE: &str = "summary";
const MAGIC: &[u8; 8] = b"EVFSUM\0\x01";
const FORMAT: u32 = 2;
/// Bytes of the fixed header, its CRC last.
const HEADER: usize = 112;
/// A block of stream records is closed once it holds this much (a record is never split).
const BLOCK_TARGET: usize = 4096;
/// At most this much of a segment is read to check its header.
const HEADER_BYTES: usize = 4096;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_u64s(out: &mut Vec<u8>, vs: &[u64]) {
    for v in vs {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Encodes the summary of `st`: its sealed segments, and its streams with their versions now
/// (which count the active segment's events: the close writes the checkpoint that holds them
/// first). `Ok(None)` if there is nothing to summarise or no active segment follows; an error
/// if the summary the table reads is damaged.
pub(crate) fn encode(st: &mut State) -> Result<Option<Vec<u8>>> {
    let Some(active) = st.log.segments.last().filter(|s| s.is_active()).cloned() else {
        return Ok(None);
    };
    let sealed: Vec<(u64, u64, Summary)> = st
        .log
        .segments
        .iter()
        .filter_map(|s| s.sealed.as_ref().map(|x| (s.base, s.len, x.summary)))
        .collect();
    if sealed.is_empty() {
        return Ok(None);
    }
    let ranges: Vec<(u64, u64)> = st
        .removed
        .ranges
        .iter()
        .filter(|r| r.base < active.base)
        .map(|r| (r.base, r.end))
        .collect();
    let last_time = sealed
        .iter()
        .map(|s| s.2.last_time)
        .chain(
            st.removed
                .ranges
                .iter()
                .filter(|r| r.base < active.base)
                .map(|r| r.last_time),
        )
        .max()
        .unwrap_or(0);
    // The bases the streams' lists name (segments, removed ranges, and segments removed since
    // the open), numbered in order: a list entry then costs about two bytes.
    let points = st.streams.named_bases();

    // The records, in blocks, and each block's directory entry and first name.
    let mut blocks: Vec<u8> = Vec::new();
    let mut directory: Vec<(usize, usize)> = Vec::new();
    let mut first_names: Vec<String> = Vec::new();
    let (mut streams, mut sealed_streams) = (0u64, 0u64);
    let mut start = 0;
    for item in st.streams.range(Bound::Unbounded) {
        let (name, e) = item?;
        if blocks.len() - start >= BLOCK_TARGET {
            directory.push((start, blocks.len() - start));
            start = blocks.len();
        }
        if start == blocks.len() {
            first_names.push(name.to_string());
        }
        streams += 1;
        let pairs = e.sealed.len();
        if pairs > 0 {
            sealed_streams += 1;
        }
        // Names are at most 1 KiB (`validate_stream`); the store's own are shorter.
        blocks.extend_from_slice(&(name.len() as u16).to_le_bytes());
        blocks.extend_from_slice(name.as_bytes());
        put_varint(&mut blocks, pairs as u64);
        let (mut point, mut version) = (0usize, 0u64);
        for (base, v) in e.sealed.iter() {
            let at = points.partition_point(|&p| p < base);
            put_varint(&mut blocks, (at - point) as u64);
            put_varint(&mut blocks, v - version);
            (point, version) = (at, v);
        }
        put_varint(&mut blocks, e.version - version);
    }
    if start < blocks.len() {
        directory.push((start, blocks.len() - start));
    }

    let mut head = Vec::new();
    for (b, e) in &ranges {
        put_u64s(&mut head, &[*b, *e]);
    }
    for (base, len, s) in &sealed {
        put_u64s(
            &mut head,
            &[*base, *len, s.index_bytes, s.count, s.last_time as u64],
        );
    }
    put_u64s(&mut head, &points);
    // Block offsets are from the file's start: the header, the head (with its CRC), then the
    // blocks.
    let names_len: usize = first_names.iter().map(|n| 2 + n.len()).sum();
    let head_len = head.len() + directory.len() * 16 + names_len + 4;
    let blocks_at = (HEADER + head_len) as u64;
    for &(start, len) in &directory {
        let crc = crc32fast::hash(&blocks[start..start + len]);
        head.extend_from_slice(&(blocks_at + start as u64).to_le_bytes());
        head.extend_from_slice(&(len as u32).to_le_bytes());
        head.extend_from_slice(&crc.to_le_bytes());
    }
    for n in &first_names {
        head.extend_from_slice(&(n.len() as u16).to_le_bytes());
        head.extend_from_slice(n.as_bytes());
    }
    let crc = crc32fast::hash(&head);
    head.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(head.len(), head_len);

    let mut out = Vec::with_capacity(HEADER + head.len() + blocks.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    put_u64s(
        &mut out,
        &[
            active.base,
            last_time as u64,
            st.next_seq - active.base,
            st.log.active_len,
            streams,
            sealed_streams,
            ranges.len() as u64,
            sealed.len() as u64,
            points.len() as u64,
            directory.len() as u64,
            head.len() as u64,
        ],
    );
    out.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len(), HEADER);
    out.extend_from_slice(&head);
    out.extend_from_slice(&blocks);
    Ok(Some(out))
}

/// Reads a summary's bytes, front to back; every read is checked.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
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
    fn varint(&mut self) -> Option<u64> {
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
    fn name(&mut self) -> Option<&str> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }
}

/// What the header and head of a summary say.
struct Head {
    next_seq: u64,
    last_time: i64,
    ranges: Vec<(u64, u64)>,
    /// Per sealed segment: base, length, and its sidecar's summary.
    segments: Vec<(u64, u64, Summary)>,
    streams: SummaryStreams,
}

/// One stream's record in a summary.
#[derive(Debug)]
pub(crate) struct Record {
    pub name: String,
    /// Its sealed segments and removed ranges, with its last version in each.
    pub sealed: SealedList,
    /// Its events in the active segment at the close, up to the checkpoint.
    pub active: u64,
}

/// The stream records of a summary, read in place: a directory of blocks in memory, each
/// block read and checked (its CRC) when a look-up or a walk needs it.
pub(crate) struct SummaryStreams {
    file: Arc<dyn StorageFile>,
    path: PathBuf,
    /// The bases the records' pairs number, ascending.
    points: Vec<u64>,
    /// Per block: offset in the file, length, CRC.
    blocks: Vec<(u64, u32, u32)>,
    /// Per block, its first record's name: `names[ends[i - 1]..ends[i]]`.
    names: String,
    ends: Vec<u32>,
    /// Streams, and of them those with events in a sealed segment or removed range.
    pub streams: u64,
    pub sealed_streams: u64,
    /// The active segment at the close, and how far its checkpoint reached: its events and
    /// length. The records' `active` counts are of those events.
    pub active_base: u64,
    pub active_count: u64,
    pub active_len: u64,
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

/// Whether `e` is a summary's damage found after the open: a caller builds the stream table
/// from the sidecars instead.
pub(crate) fn is_summary_error(e: &Error) -> bool {
    matches!(e, Error::Corrupt { path, .. } if path.file_name().is_some_and(|n| n == SUMMARY_FILE))
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

    /// Block `i`'s bytes, read and checked against the directory's CRC.
    fn block(&self, i: usize) -> Result<Vec<u8>> {
        let (offset, len, crc) = self.blocks[i];
        let mut buf = vec![0u8; len as usize];
        crate::block_cache::read_exact(self.file.as_ref(), &mut buf, offset)
            .map_err(|e| self.damaged(offset, format!("cannot be read: {e}")))?;
        if crc32fast::hash(&buf) != crc {
            return Err(self.damaged(offset, "its CRC does not match"));
        }
        Ok(buf)
    }

    /// The record at the front of `r`, in block `i`, checked: its pairs name known bases in
    /// order, its versions never decrease.
    fn record(&self, i: usize, r: &mut Reader<'_>) -> Result<Record> {
        let offset = self.blocks[i].0;
        let bad = || self.damaged(offset, "a record does not decode");
        let name = r.name().ok_or_else(bad)?.to_owned();
        let k = r.varint().ok_or_else(bad)?;
        if k > (r.0.len() / 2) as u64 {
            return Err(bad());
        }
        let mut sealed = SealedList::default();
        let (mut point, mut version) = (0u64, 0u64);
        for j in 0..k {
            let (dp, dv) = (r.varint().ok_or_else(bad)?, r.varint().ok_or_else(bad)?);
            // Strictly increasing bases, versions not decreasing.
            if j > 0 && dp == 0 {
                return Err(bad());
            }
            point = point.checked_add(dp).ok_or_else(bad)?;
            version = version.checked_add(dv).ok_or_else(bad)?;
            let base = usize::try_from(point)
                .ok()
                .and_then(|p| self.points.get(p))
                .ok_or_else(bad)?;
            sealed.push(*base, version);
        }
        let active = r.varint().ok_or_else(bad)?;
        version.checked_add(active).ok_or_else(bad)?;
        Ok(Record {
            name,
            sealed,
            active,
        })
    }

    /// The record of `stream`, if the summary has one.
    pub(crate) fn find(&self, stream: &str) -> Result<Option<Record>> {
        let Some(i) = self.block_of(stream) else {
            return Ok(None);
        };
        let bytes = self.block(i)?;
        let mut r = Reader(&bytes);
        let mut prev: Option<String> = None;
        while !r.0.is_empty() {
            // Only the name is needed to pass a record, but every record before is checked as
            // a walk checks it: the block is small.
            let rec = self.record(i, &mut r)?;
            self.check_order(i, prev.as_deref(), &rec.name)?;
            match rec.name.as_str().cmp(stream) {
                std::cmp::Ordering::Less => prev = Some(rec.name),
                std::cmp::Ordering::Equal => return Ok(Some(rec)),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Names in a block ascend, and the first is the directory's.
    fn check_order(&self, i: usize, prev: Option<&str>, name: &str) -> Result<()> {
        let fine = match prev {
            None => name == self.first_name(i),
            Some(p) => p < name,
        };
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
                match self.streams.block(self.block) {
                    Ok(b) => self.bytes = b,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                self.at = 0;
                self.prev = None;
            }
            let mut r = Reader(&self.bytes[self.at..]);
            let rec = self.streams.record(self.block, &mut r).and_then(|rec| {
                self.streams
                    .check_order(self.block, self.prev.as_deref(), &rec.name)?;
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

/// Reads and checks the header and head of the summary `file`; `None` if it is damaged or not
/// one this version reads.
fn read_head(file: Arc<dyn StorageFile>, path: PathBuf) -> Option<Head> {
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
    let points = (0..np).map(|_| r.u64()).collect::<Option<Vec<_>>>()?;
    if points.windows(2).any(|w| w[0] >= w[1]) {
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
        next = offset + u64::from(blen);
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
            file,
            path,
            points,
            blocks,
            names,
            ends,
            streams,
            sealed_streams,
            active_base: next_seq,
            active_count,
            active_len,
        },
    })
}

/// Writes the summary of `st` (temp, fsync, rename, directory fsync), or removes a stale one
/// when there is nothing to summarise (or the one the table reads turned out damaged).
pub(crate) fn write(storage: &dyn Storage, dir: &Path, st: &mut State) -> Result<()> {
    let encoded = match encode(st) {
        // The summary the table reads is damaged: the table from the sidecars instead.
        Err(e) if is_summary_error(&e) && st.rebuild_streams().is_ok() => encode(st),
        r => r,
    };
    match encoded {
        Ok(Some(bytes)) => crate::files::write_atomic(storage, dir, SUMMARY_FILE, &bytes),
        Ok(None) | Err(_) => match storage.remove_file(&dir.join(SUMMARY_FILE)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", dir.join(SUMMARY_FILE), e)),
        },
    }
}

/// Applies the summary in `dir` to the fresh state `st`, if it describes the first sealed
/// segments of `bases` (the directory's segments, ascending, without removed ones) and the
/// removed ranges `st` holds. Returns how many of `bases` it covered (0: not used). Opens each
/// segment it covers and checks its length and header; reads no stream record (the table
/// looks them up when asked).
pub(crate) fn apply(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    bases: &[u64],
    max_line: usize,
    st: &mut State,
) -> usize {
    let path = dir.join(SUMMARY_FILE);
    let Ok(file) = storage.open(&path, false) else {
        return 0;
    };
    let Some(d) = read_head(file, path) else {
        return 0;
    };
    let k = d.segments.len();
    // An active segment must follow, and the ranges must be those the manifest records before
    // it (the manifest changes whenever segments are removed).
    let ranges: Vec<(u64, u64)> = st
        .removed
        .ranges
        .iter()
        .filter(|r| r.base < d.next_seq)
        .map(|r| (r.base, r.end))
        .collect();
    if k == 0
        || k >= bases.len()
        || bases[k] < d.next_seq
        || ranges != d.ranges
        || st.next_seq != 1
        || !d.segments.iter().zip(bases).all(|(s, &b)| s.0 == b)
    {
        return 0;
    }
    let mut segments = Vec::with_capacity(k);
    for &(base, len, summary) in &d.segments {
        let path = dir.join(segment_name(base));
        let Ok(file) = storage.open(&path, false) else {
            return 0;
        };
        if file.len().ok() != Some(len) {
            return 0;
        }
        // A header is one short line: read no more than its bound.
        let bound = max_line.min(HEADER_BYTES);
        let mut lines = Lines::new(SegmentData::File(file), len.min(bound as u64 + 1), bound);
        let Ok((header_base, data_start)) = crate::segment::read_header(&mut lines, &path) else {
            return 0;
        };
        if header_base != base {
            return 0;
        }
        let sealed = Sealed::lazy(storage, &st.log.maps, dir, base, path.clone(), len, summary);
        segments.push(Segment {
            base,
            path,
            data_start,
            len,
            sealed: Some(sealed),
        });
    }
    st.log.segments = segments;
    st.streams = StreamTable::from_summary(Arc::new(d.streams));
    st.next_seq = d.next_seq;
    st.last_time = d.last_time;
    st.from_summary = true;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_damage_is_refused() {
        let mut out = Vec::new();
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            put_varint(&mut out, v);
        }
        let mut r = Reader(&out);
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(r.varint(), Some(v));
        }
        assert_eq!(r.varint(), None);
        assert_eq!(Reader(&[0xff; 11]).varint(), None);
    }
}
