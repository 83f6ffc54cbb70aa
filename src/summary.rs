//! The store summary (`summary`): the stream table over the sealed segments, with the segments
//! it describes, written at a clean close and read by the next open, so that the open reads one
//! small file instead of every sealed segment's sidecar (issue 16).
//!
//! It is a cache. An open uses it only if it is intact (its CRC) and describes exactly the
//! sealed segments the directory holds first (bases and lengths, in order) and the removed
//! ranges the manifest records; anything else, or an open that fails with it, falls back to
//! reading the sidecars. A crash at any point leaves either no summary, the previous one (which
//! then describes a prefix of the segments, or fails to match), or this one: each opens
//! correctly. The layout is in `docs/format.md`. This module must never decide what exists: it
//! repeats what the sidecars and the manifest said when it was written.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sealed::{Sealed, Summary};
use crate::segment::{Lines, SegmentData, segment_name};
use crate::segments::Segment;
use crate::state::{SealedList, State, StreamEntry, StreamTable, SummaryPairs};
use crate::storage::Storage;

/// Name of the summary file.
pub(crate) const SUMMARY_FILE: &str = "summary";
const MAGIC: &[u8; 8] = b"EVFSUM\0\x01";
const FORMAT: u32 = 1;
/// At most this much of a segment is read to check its header.
const HEADER_BYTES: usize = 4096;

/// What a summary says.
#[derive(Debug)]
struct Decoded {
    /// The seq after the sealed segments (the next segment's base).
    next_seq: u64,
    /// Time of the last event in them.
    last_time: i64,
    /// The removed ranges `(base, end)` the stream table counts.
    ranges: Vec<(u64, u64)>,
    /// Per sealed segment: base, length, and its sidecar's summary.
    segments: Vec<(u64, u64, Summary)>,
    /// The stream table, in name order.
    streams: Vec<(String, StreamEntry)>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encodes the summary of `st`'s sealed segments; `None` if there is nothing to summarise or
/// no active segment follows them.
pub(crate) fn encode(st: &State) -> Option<Vec<u8>> {
    let active = st.log.segments.last().filter(|s| s.is_active())?;
    let sealed: Vec<(&Segment, &Arc<Sealed>)> = st
        .log
        .segments
        .iter()
        .filter_map(|s| s.sealed.as_ref().map(|x| (s, x)))
        .collect();
    if sealed.is_empty() {
        return None;
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
        .map(|(_, x)| x.summary.last_time)
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
    let mut points: Vec<u64> = st
        .streams
        .iter()
        .map(|(_, e)| e)
        .flat_map(|e| e.sealed.iter().map(|p| p.0))
        .collect();
    points.sort_unstable();
    points.dedup();

    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&active.base.to_le_bytes());
    out.extend_from_slice(&last_time.to_le_bytes());
    out.extend_from_slice(&(ranges.len() as u64).to_le_bytes());
    for (b, e) in &ranges {
        out.extend_from_slice(&b.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
    }
    out.extend_from_slice(&(sealed.len() as u64).to_le_bytes());
    for (seg, x) in &sealed {
        for v in [
            seg.base,
            seg.len,
            x.summary.index_bytes,
            x.summary.count,
            x.summary.last_time as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.extend_from_slice(&(points.len() as u64).to_le_bytes());
    for p in &points {
        out.extend_from_slice(&p.to_le_bytes());
    }
    // In name order, as the reader requires.
    let mut streams: Vec<(&str, &StreamEntry)> = st.streams.sorted();
    streams.retain(|(_, e)| !e.sealed.is_empty());
    out.extend_from_slice(&(streams.len() as u64).to_le_bytes());
    for (name, e) in streams {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        put_varint(&mut out, e.sealed.len() as u64);
        let (mut point, mut version) = (0usize, 0u64);
        for (base, v) in e.sealed.iter() {
            let at = points.partition_point(|&p| p < base);
            put_varint(&mut out, (at - point) as u64);
            put_varint(&mut out, v - version);
            (point, version) = (at, v);
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Some(out)
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
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(a))
    }

    /// A LEB128 varint; one byte is the common case (the streams' pairs are mostly small
    /// differences, and an open at 10,000,000 events checks 8 million of them).
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

    /// A count of items each at least `min` bytes long: never more than the bytes left allow,
    /// so that a damaged count cannot drive a huge allocation.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = self.u64()?;
        (n <= (self.0.len() / min) as u64).then_some(n as usize)
    }
}

/// Decodes a summary; `None` if it is damaged or not one this version reads. The streams'
/// pairs are checked here but stay in `bytes`, which their lists keep (`SealedList`).
fn decode(bytes: Vec<u8>) -> Option<Decoded> {
    let body_len = bytes.len().checked_sub(4)?;
    // Lists point into the bytes with 32-bit offsets.
    u32::try_from(body_len).ok()?;
    let (body, crc) = bytes.split_at_checked(body_len)?;
    if crc32fast::hash(body).to_le_bytes() != crc || body.get(..8)? != MAGIC {
        return None;
    }
    let mut r = Reader(&body[8..]);
    if r.take(4)? != FORMAT.to_le_bytes() || r.take(4)? != [0; 4] {
        return None;
    }
    let next_seq = r.u64()?;
    let last_time = r.u64()? as i64;
    let n = r.count(16)?;
    let ranges = (0..n)
        .map(|_| Some((r.u64()?, r.u64()?)))
        .collect::<Option<Vec<_>>>()?;
    let n = r.count(40)?;
    let mut segments = Vec::with_capacity(n);
    for _ in 0..n {
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
    let n = r.count(8)?;
    let points = (0..n).map(|_| r.u64()).collect::<Option<Vec<_>>>()?;
    if points.windows(2).any(|w| w[0] >= w[1]) {
        return None;
    }
    // The pairs stay where they are, in the bytes every list shares.
    let at = body_len - r.0.len();
    let pairs_of = Arc::new(SummaryPairs { bytes, points });
    let body = &pairs_of.bytes[..body_len];
    let mut r = Reader(&body[at..]);
    let n = r.count(4)?;
    let mut streams: Vec<(String, StreamEntry)> = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u16::from_le_bytes(r.take(2)?.try_into().ok()?) as usize;
        let name = std::str::from_utf8(r.take(len)?).ok()?.to_owned();
        if streams.last().is_some_and(|(prev, _)| *prev >= name) {
            return None;
        }
        let pairs = r.varint()?;
        if pairs == 0 || pairs > (r.0.len() / 2) as u64 {
            return None;
        }
        let start = body_len - r.0.len();
        let (mut point, mut version) = (0u64, 0u64);
        for i in 0..pairs {
            let (dp, dv) = (r.varint()?, r.varint()?);
            // Strictly increasing bases, versions not decreasing.
            if i > 0 && dp == 0 {
                return None;
            }
            point = point.checked_add(dp)?;
            version = version.checked_add(dv)?;
        }
        let end = body_len - r.0.len();
        let base = *pairs_of.points.get(usize::try_from(point).ok()?)?;
        let sealed = SealedList::from_summary(
            Arc::clone(&pairs_of),
            start as u32,
            end as u32,
            (base, version),
        );
        streams.push((name, StreamEntry { version, sealed }));
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(Decoded {
        next_seq,
        last_time,
        ranges,
        segments,
        streams,
    })
}

/// Writes the summary of `st` (temp, fsync, rename, directory fsync), or removes a stale one
/// when there is nothing to summarise.
pub(crate) fn write(storage: &dyn Storage, dir: &Path, st: &State) -> Result<()> {
    match encode(st) {
        Some(bytes) => crate::files::write_atomic(storage, dir, SUMMARY_FILE, &bytes),
        None => match storage.remove_file(&dir.join(SUMMARY_FILE)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", dir.join(SUMMARY_FILE), e)),
        },
    }
}

/// Applies the summary in `dir` to the fresh state `st`, if it describes the first sealed
/// segments of `bases` (the directory's segments, ascending, without removed ones) and the
/// removed ranges `st` holds. Returns how many of `bases` it covered (0: not used). Opens each
/// segment it covers and checks its length and header; maps and checks nothing else.
pub(crate) fn apply(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    bases: &[u64],
    max_line: usize,
    st: &mut State,
) -> usize {
    let Ok(bytes) = storage.read(&dir.join(SUMMARY_FILE)) else {
        return 0;
    };
    let Some(d) = decode(bytes) else {
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
        // A header is one short line: no need to read a whole record's worth.
        let mut lines = Lines::new(SegmentData::File(file), len, max_line.min(HEADER_BYTES));
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
    st.streams = StreamTable::from_sorted(d.streams);
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
        assert!(decode(Vec::new()).is_none());
        assert!(decode(vec![0; 3]).is_none());
    }
}
