//! One segment file: its name, its bytes, reading its lines, and scanning it with validation.
//!
//! A segment is either *sealed* (immutable, read through a memory map) or *active* (the newest,
//! appended to by the writer, read with `pread` up to a length the caller knows to be complete).
//! The scan here checks every frame and reports where the valid data ends and whether what
//! follows is a torn tail or damage in the middle; it never decides what to do about it.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use crate::block_cache::CachedFile;
use crate::error::{Error, Result};
use crate::index::{MemIndex, Terms};
use crate::record::{self, Header, RecordMeta};
use crate::storage::{Mapped, StorageFile};

/// Extension of segment files.
pub(crate) const SEGMENT_EXT: &str = "jsonl";

/// The file name of the segment whose first seq is `base`: 20 digits, so names sort as numbers.
pub(crate) fn segment_name(base: u64) -> String {
    format!("{base:020}.{SEGMENT_EXT}")
}

/// The base seq a segment file name encodes, if `name` is a segment file name.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".jsonl")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The index sidecar of the segment starting at `base`.
pub(crate) fn index_path(dir: &Path, base: u64) -> std::path::PathBuf {
    dir.join(format!("{base:020}.{}", crate::index::INDEX_EXT))
}

/// Where a segment's bytes come from.
#[derive(Clone)]
pub(crate) enum SegmentData {
    /// A segment read with `pread`: a sealed one (whose lookups read only what they need,
    /// `sealed.rs`), or the active one.
    File(Arc<dyn StorageFile>),
    /// A sealed segment as reads see it: small reads (records a stream or a query picks out)
    /// through the store's block cache, scans around it.
    Sealed(CachedFile),
    /// The active segment: a map of a prefix of complete batches, `pread` beyond it.
    Active {
        map: Arc<Mapped>,
        file: Arc<dyn StorageFile>,
    },
}

impl SegmentData {
    /// The bytes available without a read: a mapped prefix of the active segment.
    fn mapped(&self) -> &[u8] {
        match self {
            SegmentData::Active { map: m, .. } => m,
            SegmentData::File(_) | SegmentData::Sealed(_) => &[],
        }
    }
}

/// Reads lines of a segment up to a fixed end offset, forwards or backwards, with bounded memory:
/// no line longer than `max_line` is ever buffered.
pub(crate) struct Lines {
    data: SegmentData,
    end: u64,
    max_line: usize,
    buf: Vec<u8>,
    buf_off: u64,
    /// Whether a sealed segment's small reads go through the block cache (a lookup's, not a
    /// scan's).
    cached: bool,
}

/// Where the line starting at some offset ends.
pub(crate) enum LineEnd {
    /// A complete line of this many bytes (the newline excluded).
    Line(usize),
    /// The bytes up to `end` hold no newline: a torn final line.
    Partial,
    /// No newline within `max_line` bytes.
    TooLong,
}

const CHUNK: usize = 256 * 1024;

fn short() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "segment shorter than expected",
    )
}

impl Lines {
    /// A reader of `data` that never looks at or beyond `end`.
    pub(crate) fn new(data: SegmentData, end: u64, max_line: usize) -> Lines {
        Lines {
            data,
            end,
            max_line,
            buf: Vec::new(),
            buf_off: 0,
            cached: true,
        }
    }

    /// This reader, its reads of a sealed segment through the block cache only if `cached`:
    /// scans (a `read_all`, a reindex) pass `false`, so that records read once do not evict
    /// what lookups reuse.
    pub(crate) fn through_cache(mut self, cached: bool) -> Lines {
        self.cached = cached;
        self
    }

    /// The file a scan reads around the block cache with `pread` (a sealed segment neither
    /// mapped nor read through the cache), for a read-ahead to read from; `None` otherwise.
    pub(crate) fn scan_file(&self) -> Option<Arc<dyn StorageFile>> {
        match &self.data {
            SegmentData::Sealed(c) if !self.cached => Some(Arc::clone(&c.file)),
            _ => None,
        }
    }

    /// The offset reads stop at.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// The bytes `[start, start + len)`, which must lie below `end`; a read, if needed, also
    /// fetches what follows (up to 256 KiB).
    pub(crate) fn window(&mut self, start: u64, len: usize) -> std::io::Result<&[u8]> {
        let stop = start + len as u64;
        debug_assert!(stop <= self.end);
        if !self.covers(start, len) {
            self.load(start, (start + len.max(CHUNK) as u64).min(self.end))?;
        }
        let mapped = self.data.mapped();
        if stop <= mapped.len() as u64 {
            return mapped.get(start as usize..stop as usize).ok_or_else(short);
        }
        let s = (start - self.buf_off) as usize;
        self.buf.get(s..s + len).ok_or_else(short)
    }

    /// Whether `[start, start + len)` is already in memory (mapped or read).
    pub(crate) fn covers(&self, start: u64, len: usize) -> bool {
        let stop = start + len as u64;
        stop <= self.data.mapped().len() as u64
            || (start >= self.buf_off && stop <= self.buf_off + self.buf.len() as u64)
    }

    /// Reads exactly `[start, end)` into memory with one `pread` (a no-op where it is mapped).
    pub(crate) fn load(&mut self, start: u64, end: u64) -> std::io::Result<()> {
        let f = match &self.data {
            _ if end <= self.data.mapped().len() as u64 => return Ok(()),
            SegmentData::File(f) | SegmentData::Active { file: f, .. } => f,
            SegmentData::Sealed(c) => {
                let end = end.min(self.end);
                self.buf.resize(end.saturating_sub(start) as usize, 0);
                let read = match self.cached {
                    true => c.read_exact_at(&mut self.buf, start),
                    false => crate::block_cache::read_exact(c.file.as_ref(), &mut self.buf, start),
                };
                if let Err(e) = read {
                    self.buf.clear();
                    return Err(e);
                }
                self.buf_off = start;
                return Ok(());
            }
        };
        let end = end.min(self.end);
        self.buf.resize(end.saturating_sub(start) as usize, 0);
        let mut done = 0;
        while done < self.buf.len() {
            let n = f.read_at(&mut self.buf[done..], start + done as u64)?;
            if n == 0 {
                return Err(short());
            }
            done += n;
        }
        self.buf_off = start;
        Ok(())
    }

    /// Finds the end of the line starting at `pos`.
    pub(crate) fn line_end(&mut self, pos: u64) -> std::io::Result<LineEnd> {
        let avail = self.end.saturating_sub(pos);
        let cap = (self.max_line as u64 + 1).min(avail) as usize;
        // Search what is already in memory first: a scan reads each chunk once, not per line.
        let mut want = self.in_memory_from(pos).min(cap);
        if want > 0 {
            let w = self.window(pos, want)?;
            if let Some(i) = memchr::memchr(b'\n', w) {
                return Ok(LineEnd::Line(i));
            }
        }
        loop {
            if want == cap {
                return Ok(if cap as u64 == avail && cap <= self.max_line {
                    LineEnd::Partial
                } else {
                    LineEnd::TooLong
                });
            }
            want = (want * 2).max(CHUNK).min(cap);
            let w = self.window(pos, want)?;
            if let Some(i) = memchr::memchr(b'\n', w) {
                return Ok(LineEnd::Line(i));
            }
        }
    }

    /// How many bytes from `pos` on are in memory (mapped or buffered) and below `end`.
    fn in_memory_from(&self, pos: u64) -> usize {
        let mapped = self.data.mapped().len() as u64;
        let buffered = self.buf_off + self.buf.len() as u64;
        let upto = if pos < mapped {
            mapped
        } else if pos >= self.buf_off && pos < buffered {
            buffered
        } else {
            pos
        };
        upto.min(self.end).saturating_sub(pos) as usize
    }
}

/// Reads and checks a segment's header; returns its base seq and the offset of the first record.
pub(crate) fn read_header(lines: &mut Lines, path: &Path) -> Result<(u64, u64)> {
    let io = |e| Error::io("read", path, e);
    match lines.line_end(0).map_err(io)? {
        LineEnd::Line(n) => {
            let line = lines.window(0, n).map_err(io)?;
            match record::decode_header(line).map_err(|r| Error::corrupt(path, 0, r))? {
                Header::Ok { base_seq } => Ok((base_seq, n as u64 + 1)),
                Header::Unsupported { found } => Err(Error::UnsupportedFormat {
                    path: path.to_owned(),
                    found,
                    supported: record::FORMAT_VERSION,
                }),
            }
        }
        _ => Err(Error::corrupt(path, 0, "segment header is missing or torn")),
    }
}

/// One record seen by a scan: what the stream table and indexes need.
#[derive(Debug, Clone)]
pub(crate) struct Scanned {
    pub seq: u64,
    pub version: u64,
    pub time: i64,
    pub offset: u64,
    /// Stream, type, id, tags and indexed metadata.
    pub terms: Terms,
}

/// How the valid data of a scanned segment ends.
#[derive(Debug)]
pub(crate) enum ScanEnd {
    /// Every byte up to the end belongs to complete batches.
    Clean,
    /// The bytes from `valid_end` on are a torn tail: a partial batch, a torn line, or damaged
    /// lines with no valid record after them. `reason` says what was found first.
    TornTail { offset: u64, reason: String },
    /// A record at `offset` fails its checks and a valid frame follows it, at `next`: damage in
    /// the middle (or pages of unsynced writes that reached the disk out of order: recovery
    /// tells the two apart, [`lost_pages`]).
    Damaged {
        offset: u64,
        next: u64,
        reason: String,
    },
}

/// The result of scanning a segment.
pub(crate) struct ScanResult {
    /// End offset of the last complete batch.
    pub valid_end: u64,
    /// What follows `valid_end`.
    pub end: ScanEnd,
}

/// One line of a segment, as [`walk`] finds it.
pub(crate) enum Step<'a> {
    /// A line whose frame and record checks pass; the next line starts at `next`.
    Record {
        offset: u64,
        next: u64,
        meta: RecordMeta<'a>,
    },
    /// A complete line that fails them, and why.
    Bad { offset: u64, reason: String },
}

/// Where a [`walk`] stopped.
pub(crate) enum WalkEnd {
    /// At the reader's end, after a complete line (or the visitor stopped it).
    Clean,
    /// At a final line with no newline, starting at `offset`.
    Partial { offset: u64 },
    /// At `offset`, where no line end lies within the line limit.
    TooLong { offset: u64 },
}

/// Walks the lines of a segment from `start` (a line boundary) up to the reader's end, handing
/// each to `visit`: a checked record, or a complete line that fails the checks (the walk goes on
/// past it if `visit` continues). The one place that frames and decodes a segment's lines:
/// recovery, `reindex` and `verify` all read segments through it, and differ only in what they
/// do with each line.
pub(crate) fn walk(
    lines: &mut Lines,
    path: &Path,
    start: u64,
    mut visit: impl FnMut(Step<'_>) -> Result<ControlFlow<()>>,
) -> Result<WalkEnd> {
    let io = |e| Error::io("read", path, e);
    let mut pos = start;
    while pos < lines.end() {
        let n = match lines.line_end(pos).map_err(io)? {
            LineEnd::Line(n) => n,
            LineEnd::Partial => return Ok(WalkEnd::Partial { offset: pos }),
            LineEnd::TooLong => return Ok(WalkEnd::TooLong { offset: pos }),
        };
        let line = lines.window(pos, n).map_err(io)?;
        let step = match record::decode_record(line) {
            Ok(meta) => Step::Record {
                offset: pos,
                next: pos + n as u64 + 1,
                meta,
            },
            Err(reason) => Step::Bad {
                offset: pos,
                reason,
            },
        };
        if visit(step)?.is_break() {
            break;
        }
        pos += n as u64 + 1;
    }
    Ok(WalkEnd::Clean)
}

/// A segment's records indexed by [`index_records`].
pub(crate) struct Indexed {
    pub mem: MemIndex,
    /// How many records were indexed.
    pub count: u64,
    /// The last one's time, if any.
    pub last_time: Option<i64>,
    /// Where the scan stopped: the caller judges it.
    pub scan: ScanResult,
}

/// The index of the records of segment `base` from `data_start`, every record checked: its
/// frame, its seq following the previous one's (the first's is `base`), and its time not
/// before the previous one's (a log's times never decrease). What a rebuild of a sealed
/// sidecar and of the active segment's checkpoint both read.
pub(crate) fn index_records(
    lines: &mut Lines,
    path: &Path,
    data_start: u64,
    base: u64,
) -> Result<Indexed> {
    let mut mem = MemIndex::default();
    let (mut next, mut last_time) = (base, None);
    let scan = scan(lines, path, data_start, |batch| {
        for rec in batch {
            let reason = if rec.seq != next {
                format!("record has seq {} where {next} was expected", rec.seq)
            } else if last_time.is_some_and(|t| rec.time < t) {
                "record time is before the previous record's".to_owned()
            } else {
                next += 1;
                last_time = Some(rec.time);
                mem.add(rec.offset, rec.time, &rec.terms.borrowed());
                continue;
            };
            return Err(Error::corrupt(path, rec.offset, reason));
        }
        Ok(())
    })?;
    Ok(Indexed {
        mem,
        count: next - base,
        last_time,
        scan,
    })
}

/// Scans the records of a segment from `start` (a record boundary) up to the reader's end,
/// checking every frame. `on_batch` is called with each complete batch, in order; an error it
/// returns stops the scan and is returned. The scan stops at the first line that fails (a
/// record whose terms do not parse fails too), and tells a torn tail from damage in the middle.
pub(crate) fn scan(
    lines: &mut Lines,
    path: &Path,
    start: u64,
    on_batch: impl FnMut(&[Scanned]) -> Result<()>,
) -> Result<ScanResult> {
    scan_upto(lines, path, start, u64::MAX, on_batch)
}

/// [`scan`], stopping cleanly before the first batch that ends above seq `limit` (a read-only
/// handle's published head: what lies beyond may not be durable yet). `valid_end` is then where
/// that batch starts.
pub(crate) fn scan_upto(
    lines: &mut Lines,
    path: &Path,
    start: u64,
    limit: u64,
    mut on_batch: impl FnMut(&[Scanned]) -> Result<()>,
) -> Result<ScanResult> {
    let mut valid_end = start;
    let mut batch: Vec<Scanned> = Vec::new();
    let mut failed: Option<(u64, String)> = None;
    let max_line = lines.max_line;
    let walked = walk(lines, path, start, |step| {
        let (offset, next, meta) = match step {
            Step::Record { offset, next, meta } => (offset, next, meta),
            Step::Bad { offset, reason } => {
                failed = Some((offset, reason));
                return Ok(ControlFlow::Break(()));
            }
        };
        let terms = match meta.terms() {
            Ok(t) => t,
            Err(reason) => {
                failed = Some((offset, reason));
                return Ok(ControlFlow::Break(()));
            }
        };
        let RecordMeta { rec, time } = meta;
        batch.push(Scanned {
            seq: rec.seq,
            version: rec.version,
            time,
            offset,
            terms,
        });
        if !rec.more {
            if rec.seq > limit {
                return Ok(ControlFlow::Break(()));
            }
            on_batch(&batch)?;
            batch.clear();
            valid_end = next;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let failed = failed.or(match walked {
        WalkEnd::Clean => None,
        WalkEnd::Partial { offset } => Some((offset, "torn final line (no newline)".to_string())),
        WalkEnd::TooLong { offset } => {
            Some((offset, format!("no line end within {max_line} bytes")))
        }
    });
    if let Some((pos, problem)) = failed {
        // The first bad line. Damage in the middle if any valid frame follows it.
        let io = |e| Error::io("read", path, e);
        let end = if let Some(at) = valid_frame_after(lines, pos).map_err(io)? {
            ScanEnd::Damaged {
                offset: pos,
                next: at,
                reason: format!("{problem}; a valid record follows at byte {at}"),
            }
        } else {
            ScanEnd::TornTail {
                offset: pos,
                reason: problem,
            }
        };
        return Ok(ScanResult { valid_end, end });
    }
    if !batch.is_empty() {
        let offset = batch[0].offset;
        return Ok(ScanResult {
            valid_end,
            end: ScanEnd::TornTail {
                offset,
                reason: format!("partial batch of {} records", batch.len()),
            },
        });
    }
    Ok(ScanResult {
        valid_end,
        end: ScanEnd::Clean,
    })
}

/// The disk's smallest unit of writing: a sector, 512 bytes. A write the power cut short leaves
/// whole sectors (and pages of eight) as they were.
pub(crate) const SECTOR: u64 = 512;

/// Whether the bad bytes from `from` (where the first bad line starts) to `to` (the next valid
/// frame) look like writes whose pages a power loss kept out of order: a run of zeros that
/// starts the damage, after at most the start of one torn line (no line end before it), and
/// ends on a sector boundary.
///
/// No record holds a zero byte (JSON escapes it), so such a run was never written. A page of
/// the unsynced tail that did not reach the disk reads as it was before: zeros from where the
/// file ended at the last sync (`from`, when the lost page holds it) or the whole page; the
/// line before it, if any, is the start of a record cut at the page's end. Damage to written
/// bytes (a flipped bit, a misdirected write) leaves other bytes, and a complete line damaged
/// before the zeros (its line end before them) is refused too: it may be an acknowledged event.
pub(crate) fn lost_pages(lines: &mut Lines, from: u64, to: u64) -> std::io::Result<bool> {
    // The first zero byte, with no line end before it.
    let mut at = from;
    let zeros = loop {
        if at >= to {
            return Ok(false);
        }
        let len = ((to - at) as usize).min(CHUNK);
        let w = lines.window(at, len)?;
        match w.iter().position(|&b| b == 0 || b == b'\n') {
            Some(i) if w[i] == 0 => break at + i as u64,
            Some(_) => return Ok(false),
            None => at += len as u64,
        }
    };
    // Where the run of zeros ends.
    let mut at = zeros;
    while at < to {
        let len = ((to - at) as usize).min(CHUNK);
        let w = lines.window(at, len)?;
        match w.iter().position(|&b| b != 0) {
            Some(i) => return Ok((at + i as u64).is_multiple_of(SECTOR)),
            None => at += len as u64,
        }
    }
    Ok(false)
}

/// The offset of the first line after `pos` whose frame is valid, if any.
fn valid_frame_after(lines: &mut Lines, pos: u64) -> std::io::Result<Option<u64>> {
    let end = lines.end();
    let mut at = pos;
    while at < end {
        let len = ((end - at) as usize).min(CHUNK);
        let w = lines.window(at, len)?;
        let Some(i) = memchr::memchr(b'\n', w) else {
            at += len as u64;
            continue;
        };
        let start = at + i as u64 + 1;
        if start >= end {
            return Ok(None);
        }
        if let LineEnd::Line(n) = lines.line_end(start)? {
            let line = lines.window(start, n)?;
            if record::check_frame(line).is_ok() {
                return Ok(Some(start));
            }
        }
        at = start;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(segment_name(1), "00000000000000000001.jsonl");
        assert_eq!(parse_segment_name("00000000000000000001.jsonl"), Some(1));
        assert_eq!(parse_segment_name("1.jsonl"), None);
        assert_eq!(parse_segment_name("00000000000000000001.summary"), None);
        assert_eq!(parse_segment_name("0000000000000000000a.jsonl"), None);
    }

    fn sealed(bytes: &[u8]) -> Lines {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(&path, bytes).unwrap();
        let file = crate::storage::Storage::open(&crate::storage::OsStorage, &path, false).unwrap();
        Lines::new(SegmentData::File(file), bytes.len() as u64, 16)
    }

    #[test]
    fn line_ends_and_starts() {
        let mut l = sealed(b"ab\ncde\nfg");
        assert!(matches!(l.line_end(0).unwrap(), LineEnd::Line(2)));
        assert!(matches!(l.line_end(3).unwrap(), LineEnd::Line(3)));
        assert!(matches!(l.line_end(7).unwrap(), LineEnd::Partial));
        let mut long = sealed(&[b'x'; 40]);
        assert!(matches!(long.line_end(0).unwrap(), LineEnd::TooLong));
    }

    /// A file in memory that counts its reads.
    struct CountingFile(Vec<u8>, std::sync::atomic::AtomicUsize);

    impl StorageFile for CountingFile {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let start = (offset as usize).min(self.0.len());
            let n = buf.len().min(self.0.len() - start);
            buf[..n].copy_from_slice(&self.0[start..start + n]);
            Ok(n)
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
            unreachable!("read only")
        }
        fn sync_data(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn len(&self) -> std::io::Result<u64> {
            Ok(self.0.len() as u64)
        }
        fn set_len(&self, _: u64) -> std::io::Result<()> {
            unreachable!("read only")
        }
        fn map(&self) -> std::io::Result<Option<Mapped>> {
            Ok(None)
        }
    }

    /// Scanning line by line reads each chunk once. (The reader used to re-read a 256 KiB window
    /// for every line, which made recovery of a full segment 7x slower.)
    /// A scan's reads of a sealed segment (`through_cache(false)`) keep nothing in the block
    /// cache, however often repeated; a lookup's are kept on their second miss.
    #[test]
    fn scans_read_around_the_block_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(&path, vec![b'x'; 20_000]).unwrap();
        let file = crate::storage::Storage::open(&crate::storage::OsStorage, &path, false).unwrap();
        let cache = crate::block_cache::BlockCache::new(1 << 20);
        let cached = crate::block_cache::CachedFile::new(file, 20_000, &cache);
        for through in [false, true] {
            let data = SegmentData::Sealed(cached.clone());
            let mut lines = Lines::new(data, 20_000, 16).through_cache(through);
            for _ in 0..3 {
                lines.load(100, 5_000).unwrap();
                assert_eq!(lines.window(100, 4_900).unwrap(), &[b'x'; 4_900][..]);
            }
            assert_eq!(cache.bytes() > 0, through, "through the cache: {through}");
        }
    }

    #[test]
    fn a_scan_reads_each_chunk_once() {
        let line = format!("{}\n", "x".repeat(999));
        let bytes = line.repeat(1024).into_bytes(); // 1,024 lines of 1,000 bytes
        let file = Arc::new(CountingFile(bytes, Default::default()));
        // The default line limit (4 MiB + 64 KiB): the old reader asked for a 256 KiB window per line.
        let max_line = crate::config::DEFAULT_MAX_EVENT_BYTES + crate::record::LINE_SLACK;
        let mut lines = Lines::new(SegmentData::File(file.clone()), 1024 * 1000, max_line);
        let mut pos = 0;
        let mut count = 0;
        while let LineEnd::Line(n) = lines.line_end(pos).unwrap() {
            pos += n as u64 + 1;
            count += 1;
            if pos == lines.end() {
                break;
            }
        }
        assert_eq!(count, 1024);
        let reads = file.1.load(std::sync::atomic::Ordering::Relaxed);
        assert!(reads <= 10, "{reads} reads for a 1 MiB scan");
    }
}
