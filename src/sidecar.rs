//! Index sidecars as files: reading one (checked), writing one, and checking one by reads: the
//! checks [`IndexFile::open`] makes (the CRC, and every section's order and bounds), made
//! through a few small buffers instead of a memory map.
//!
//! Why: a sealed segment's sidecar is checked when it is first used, not at open (issue 16).
//! Checked through its map, every page of it would stay resident in the process (a 64 MiB
//! segment's sidecar is about 12 MiB), so that reading one stream of a store made the whole of
//! every sidecar the stream touches resident. Read into 64 KiB buffers, the pages stay in the
//! page cache, which the kernel reclaims, and the map afterwards touches only what reads need.
//!
//! The layout is the one the writer makes (`MemIndex::encode`), and these checks hold it to that
//! exactly: entries and their postings are contiguous and in order. A sidecar that passes
//! [`IndexFile::open`] but not this (none that this crate writes) is then checked through the
//! map. This module never decides what to do with a bad sidecar: its callers rebuild it.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::index::{
    FORMAT, HEADER, Header, INDEX_EXT, IndexFile, Kind, MemIndex, SAMPLE_EVERY, sample_terms,
};
use crate::segment::index_path;
use crate::storage::{Mapped, Storage, StorageFile};

/// Bytes read at a time by each of the four cursors.
const CHUNK: usize = 64 * 1024;

/// Reads one section of the file front to back, hashing what it reads.
struct Cursor<'a> {
    file: &'a dyn StorageFile,
    /// File offset of the next chunk.
    at: u64,
    /// End of the section.
    end: u64,
    buf: Vec<u8>,
    pos: usize,
    crc: crc32fast::Hasher,
}

impl<'a> Cursor<'a> {
    fn new(file: &'a dyn StorageFile, start: u64, end: u64) -> Cursor<'a> {
        Cursor {
            file,
            at: start,
            end,
            buf: Vec::new(),
            pos: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    /// Refills the buffer, keeping its unread bytes.
    #[cold]
    #[inline(never)]
    fn fill(&mut self, need: usize) -> Result<(), String> {
        self.buf.drain(..self.pos);
        self.pos = 0;
        while self.buf.len() < need {
            let want = (self.end - self.at).min(CHUNK.max(need) as u64) as usize;
            if want == 0 {
                return Err("index sidecar section ends early".into());
            }
            let old = self.buf.len();
            self.buf.resize(old + want, 0);
            let n = self
                .file
                .read_at(&mut self.buf[old..], self.at)
                .map_err(|e| format!("index sidecar cannot be read: {e}"))?;
            self.buf.truncate(old + n);
            if n == 0 {
                return Err("index sidecar is shorter than its header says".into());
            }
            self.crc.update(&self.buf[old..]);
            self.at += n as u64;
        }
        Ok(())
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.buf.len() - self.pos < n {
            self.fill(n)?;
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Up to `max` whole items of `size` bytes (at least one), as one slice.
    fn items(&mut self, size: usize, max: usize) -> Result<&[u8], String> {
        let buffered = (self.buf.len() - self.pos) / size;
        let n = if buffered == 0 { 1 } else { buffered.min(max) };
        self.take(n * size)
    }

    #[inline(always)]
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The hash of the whole section, which must have been read to its end.
    fn finish(self, what: &str) -> Result<crc32fast::Hasher, String> {
        if self.pos != self.buf.len() || self.at != self.end {
            return Err(format!(
                "index sidecar {what} section has bytes past its last entry"
            ));
        }
        Ok(self.crc)
    }
}

fn read_exact_at(file: &dyn StorageFile, buf: &mut [u8], at: u64) -> Result<(), String> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => return Err("index sidecar is shorter than its header says".into()),
            Ok(n) => done += n,
            Err(e) => return Err(format!("index sidecar cannot be read: {e}")),
        }
    }
    Ok(())
}

/// Checks the sidecar in `file` as [`IndexFile::open`] would (describing the segment at `base`
/// and, if given, exactly `segment_len` bytes of it), reading it through small buffers.
/// Returns the reason it is refused.
pub(crate) fn check_by_reads(
    file: &dyn StorageFile,
    base: u64,
    segment_len: Option<u64>,
) -> Result<(), String> {
    let len = file
        .len()
        .map_err(|e| format!("index sidecar cannot be read: {e}"))?;
    let mut header = [0u8; HEADER];
    if len >= HEADER as u64 {
        read_exact_at(file, &mut header, 0)?;
    }
    let h = Header::parse(&header, len, base, segment_len)?;
    let (seg_len, count, terms, postings_len) = (h.segment_len, h.count, h.terms, h.postings_len);
    let (body, offsets_at, entries_at, postings_at) = (
        h.sample_at(),
        h.offsets_at(),
        h.entries_at(),
        h.postings_at(),
    );
    // Format 2: every `SAMPLE_EVERY`th term, to hold its sample to.
    let mut sampled: Vec<(u8, Vec<u8>)> = Vec::new();

    // Positions, then times: `head` reads on through both.
    let mut head = Cursor::new(file, HEADER as u64, offsets_at);
    head.crc.update(&header);
    // A chunk at a time: these are most of a sidecar's records.
    let (mut prev, mut left) = (None::<u32>, count as usize);
    while left > 0 {
        let chunk = head.items(4, left)?;
        left -= chunk.len() / 4;
        for b in chunk.chunks_exact(4) {
            let p = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if prev.is_some_and(|q| p <= q) || u64::from(p) >= seg_len {
                return Err(format!(
                    "index position {p} is out of order or past the segment"
                ));
            }
            prev = Some(p);
        }
    }
    let (mut prev_time, mut left) = (i64::MIN, count as usize);
    while left > 0 {
        let chunk = head.items(8, left)?;
        left -= chunk.len() / 8;
        for b in chunk.chunks_exact(8) {
            let t = i64::from_le_bytes(b.try_into().expect("8 bytes"));
            if t < prev_time {
                return Err("index times decrease".into());
            }
            prev_time = t;
        }
    }

    // The term table: offsets, entries and postings side by side, each front to back.
    let mut offsets = Cursor::new(file, offsets_at, entries_at);
    let mut entries = Cursor::new(file, entries_at, postings_at);
    let mut postings = Cursor::new(file, postings_at, body);
    let (mut entry_at, mut posting_at) = (0u64, 0u64);
    // The previous entry's (kind, term) and this one's, in buffers reused for every entry.
    let (mut prev_kind, mut prev_term, mut term) = (None::<u8>, Vec::new(), Vec::new());
    for i in 0..terms {
        let malformed = || format!("index term {i} is malformed");
        if u64::from(offsets.u32()?) != entry_at {
            return Err(malformed());
        }
        // An entry: kind u8, term_len u16, the term, first posting u32, postings u32.
        let head3 = entries.take(3)?;
        let kind = head3[0];
        Kind::from_u8(kind).ok_or_else(malformed)?;
        let term_len = u16::from_le_bytes([head3[1], head3[2]]) as usize;
        let rest = entries.take(term_len + 8)?;
        let (t, tail) = rest.split_at(term_len);
        let start = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let n = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]);
        term.clear();
        term.extend_from_slice(t);
        entry_at += 3 + term_len as u64 + 8;
        if u64::from(start) != posting_at {
            return Err(malformed());
        }
        posting_at += u64::from(n);
        if posting_at > postings_len {
            return Err(malformed());
        }
        if prev_kind.is_some_and(|k| (k, prev_term.as_slice()) >= (kind, term.as_slice())) {
            return Err("index terms out of order".into());
        }
        prev_kind = Some(kind);
        if h.format == FORMAT && i % SAMPLE_EVERY == 0 {
            sampled.push((kind, term.clone()));
        }
        std::mem::swap(&mut prev_term, &mut term);
        let (mut last, mut left) = (None::<u32>, n as usize);
        while left > 0 {
            let chunk = postings.items(4, left)?;
            left -= chunk.len() / 4;
            for b in chunk.chunks_exact(4) {
                let o = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if u64::from(o) >= count || last.is_some_and(|l| o <= l) {
                    return Err("index postings out of order or out of range".into());
                }
                last = Some(o);
            }
        }
    }
    let mut crc = head.finish("record")?;
    crc.combine(&offsets.finish("offsets")?);
    crc.combine(&entries.finish("entries")?);
    crc.combine(&postings.finish("postings")?);
    if h.format == FORMAT {
        // The sample, the block sums and their own CRC.
        let tail_len = usize::try_from(len - 4 - body).map_err(|_| "index sidecar too long")?;
        let mut tail = vec![0u8; tail_len];
        read_exact_at(file, &mut tail, body)?;
        crc.update(&tail);
        let (sample, sums) = tail.split_at(h.sample_len as usize);
        let (sums, sums_crc) = sums.split_at(sums.len() - 4);
        if crc32fast::hash(sums).to_le_bytes()[..] != *sums_crc {
            return Err("index sidecar block sums fail their crc".into());
        }
        let terms = sample_terms(sample, terms)?;
        if terms.len() != sampled.len()
            || terms
                .iter()
                .zip(&sampled)
                .any(|(&(k, t), (sk, st))| k as u8 != *sk || t != st.as_slice())
        {
            return Err("index sample differs from the terms".into());
        }
        // The blocks are not held to their sums here (that would read the file twice): the
        // file's CRC, checked below, covers the body and the sums, which the writer made from
        // that very body. A file whose CRCs hold but whose sums do not fit its blocks was not
        // written by this crate; a read by `pread` refuses each such block and rebuilds it.
    }
    let mut stored = [0u8; 4];
    read_exact_at(file, &mut stored, len - 4)?;
    if crc.finalize().to_le_bytes() != stored {
        return Err("index sidecar crc mismatch".into());
    }
    Ok(())
}

/// Loads and checks the sidecar of segment `base`; `None` if it is missing or unusable.
/// `segment_len`: the length it must describe, or `None` for a checkpoint of the active segment.
pub(crate) fn read_index(
    storage: &dyn Storage,
    dir: &Path,
    base: u64,
    segment_len: Option<u64>,
) -> Option<Arc<IndexFile>> {
    let file = storage.open(&index_path(dir, base), false).ok()?;
    // Checked by reads first, so that the check leaves none of its pages resident.
    let by_reads = check_by_reads(file.as_ref(), base, segment_len);
    let bytes = Arc::new(match file.map().ok()? {
        Some(m) => m,
        None => Mapped::Bytes(storage.read(&index_path(dir, base)).ok()?),
    });
    match by_reads {
        Ok(()) => IndexFile::open_checked(bytes, base, segment_len),
        Err(_) => IndexFile::open(bytes, base, segment_len),
    }
    .ok()
    .map(Arc::new)
}

/// The CRC of the sidecar in `file`, read through small buffers (as [`check_by_reads`]
/// reads, so that no page of it stays resident), if it matches the file's own trailing CRC:
/// what the first use of an active segment's checkpoint of format 1 checks against the CRC the
/// summary recorded for it (`active_checkpoint.rs`; one of format 2 is checked a block at a
/// time). Its structure is this crate's own encoding of
/// that very file, and every access to it is bounds-checked, so it is not walked (at
/// 10,000,000 events that walk was most of a clean open). Returns the reason it is refused.
pub(crate) fn crc_by_reads(file: &dyn StorageFile) -> Result<u32, String> {
    let len = file
        .len()
        .map_err(|e| format!("index sidecar cannot be read: {e}"))?;
    let body = len
        .checked_sub(4)
        .filter(|&b| b >= HEADER as u64)
        .ok_or("not an index sidecar")?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < body {
        let n = (body - at).min(CHUNK as u64) as usize;
        read_exact_at(file, &mut buf[..n], at)?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    let mut tail = [0u8; 4];
    read_exact_at(file, &mut tail, body)?;
    let got = hasher.finalize();
    if got.to_le_bytes() != tail {
        return Err("index sidecar crc mismatch".into());
    }
    Ok(got)
}

/// An index held in memory only (a read-only handle cannot write the sidecar it rebuilt).
pub(crate) fn in_memory_index(mem: &MemIndex, base: u64, len: u64) -> Result<Arc<IndexFile>> {
    let bytes = Arc::new(Mapped::Bytes(mem.encode(base, len)?));
    IndexFile::open(bytes, base, Some(len))
        .map(Arc::new)
        .map_err(|r| Error::corrupt(index_path(Path::new(""), base), 0, r))
}

/// Writes a segment's sidecar (temp, fsync, rename, directory fsync) and maps it.
pub(crate) fn write_index(
    storage: &dyn Storage,
    dir: &Path,
    base: u64,
    len: u64,
    mem: &MemIndex,
) -> Result<Arc<IndexFile>> {
    let name = format!("{base:020}.{INDEX_EXT}");
    let bytes = mem.encode(base, len)?;
    // The summary records each sidecar's size: one that would name a size this file no longer
    // has (a format-1 file rewritten as format 2, or one missing) goes before the file changes,
    // so that no crash leaves it naming the old size. The writer's clean close writes it again.
    let old_len = storage
        .open(&index_path(dir, base), false)
        .and_then(|f| f.len())
        .ok();
    if old_len != Some(bytes.len() as u64) {
        crate::files::forget_summary(storage, dir);
    }
    crate::files::write_atomic(storage, dir, &name, &bytes)?;
    match read_index(storage, dir, base, Some(len)) {
        Some(ix) => Ok(ix),
        None => in_memory_index(mem, base, len),
    }
}

/// Whether [`check_by_reads`] and [`IndexFile::open`] agree on `bytes` (tests).
#[cfg(test)]
fn agree(bytes: &[u8], base: u64, len: Option<u64>) -> (bool, bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.idx");
    std::fs::write(&path, bytes).unwrap();
    let file = crate::storage::OsStorage.open(&path, false).unwrap();
    let by_reads = check_by_reads(file.as_ref(), base, len).is_ok();
    let by_map = IndexFile::open(
        std::sync::Arc::new(Mapped::Bytes(bytes.to_vec())),
        base,
        len,
    );
    (by_reads, by_map.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{MemIndex, Terms};

    fn sample(n: u64) -> Vec<u8> {
        let mut m = MemIndex::default();
        for i in 0..n {
            m.add(
                100 + i * 40,
                1_000 + i as i64 / 3,
                &Terms {
                    stream: format!("s{}", i % 7),
                    event_type: format!("T{}", i % 3),
                    id: format!("id-{i:06}"),
                    tags: vec![format!("k={}", i % 2)],
                    correlation: i.is_multiple_of(5).then(|| "corr".to_string()),
                    key: i.is_multiple_of(10).then(|| format!("key-{i}")),
                    ..Terms::default()
                }
                .borrowed(),
            );
        }
        m.encode(7, 100 + n * 40).unwrap()
    }

    #[test]
    fn a_sound_sidecar_passes_both_checks_large_or_empty() {
        // 20,000 records: sections far larger than one chunk, read across chunk boundaries.
        for n in [0, 1, 50, 20_000] {
            assert_eq!(
                agree(&sample(n), 7, Some(100 + n * 40)),
                (true, true),
                "{n}"
            );
        }
    }

    #[test]
    fn every_flip_truncation_and_mismatch_is_refused_by_reads() {
        let bytes = sample(300);
        let len = Some(100 + 300 * 40);
        for i in (0..bytes.len()).step_by(5) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(!agree(&bad, 7, len).0, "flip at {i} accepted");
        }
        for cut in [1, 4, 100, bytes.len() - HEADER] {
            assert!(!agree(&bytes[..bytes.len() - cut], 7, len).0, "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 8]);
        assert!(!agree(&longer, 7, len).0);
        assert!(!agree(&bytes, 8, len).0);
        assert!(!agree(&bytes, 7, Some(1)).0);
        assert!(agree(&bytes, 7, None).0);
    }
}
