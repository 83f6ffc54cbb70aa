//! The store summary (`summary`): the stream table at a clean close, with the sealed segments
//! it describes and the active segment's checkpoint it counts, written at a clean close and
//! read by the next open, so that the open reads neither the sealed segments' sidecars nor the
//! checkpoint's stream terms, and builds no stream table (issue 16).
//!
//! Format 2 (`docs/format.md`): a header and a head (segments, removed ranges, the bases the
//! streams' lists name, a directory of blocks), each with its CRC, read and checked at open;
//! then the streams' records in name order, in blocks of about 4 KiB, each with its CRC in the
//! directory. A look-up (`SummaryStreams::find`, in `summary_read.rs`) reads one block
//! (through the block cache) and checks it before using a byte of it; the summary keeps
//! nothing of the blocks but whether a look-up found each one's names in order. A damaged
//! block is an error naming this file: the caller then builds the stream table from the
//! sidecars instead, as an open without a summary does.
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
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sealed::{Sealed, Summary};
use crate::segment::{Lines, SegmentData, segment_name};
use crate::segments::Segment;
use crate::state::State;
use crate::storage::Storage;
use crate::stream_table::StreamTable;

pub(crate) use crate::summary_read::SUMMARY_FILE;
use crate::summary_read::{FORMAT, HEADER, MAGIC, is_summary_error, read_head};
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
pub(crate) fn encode(st: &mut State, checkpoint_crc: u32) -> Result<Option<Vec<u8>>> {
    let Some(active) = st.log.segments.last().filter(|s| s.is_active()).cloned() else {
        return Ok(None);
    };
    let sealed: Vec<(u64, u64, Summary)> = st
        .log
        .segments
        .iter()
        .filter_map(|s| {
            s.sealed.as_ref().map(|x| {
                let index_bytes = x.index_bytes();
                (
                    s.base,
                    s.len,
                    crate::sealed::Summary {
                        index_bytes,
                        ..x.summary
                    },
                )
            })
        })
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
    // the open), numbered in order: a list entry then costs about two bytes. A segment removed
    // since the open lies in a removed range (the manifest keeps one range for the segments
    // removed together, the lists each segment's base): it is written as that range's base,
    // so that every base the open takes is exactly a sealed segment's or a removed range's
    // (one anywhere inside a range could be forged to hide a live segment from reads).
    let removed = &st.removed;
    let in_range = |b: u64| removed.range_of(b).map_or(b, |r| r.base);
    let mut points: Vec<u64> = st.streams.named_bases().into_iter().map(in_range).collect();
    points.dedup();

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
        // Pairs in one removed range become one, with the last of their versions.
        let mut pairs: Vec<(u64, u64)> = Vec::with_capacity(e.sealed.len());
        for (base, v) in e.sealed.iter() {
            let base = in_range(base);
            match pairs.last_mut() {
                Some(last) if last.0 == base => last.1 = v,
                _ => pairs.push((base, v)),
            }
        }
        if !pairs.is_empty() {
            sealed_streams += 1;
        }
        // Names are at most 256 bytes (`validate_stream`); the store's own are shorter.
        blocks.extend_from_slice(&(name.len() as u16).to_le_bytes());
        blocks.extend_from_slice(name.as_bytes());
        put_varint(&mut blocks, pairs.len() as u64);
        let (mut point, mut version) = (0usize, 0u64);
        for &(base, v) in &pairs {
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
    out.extend_from_slice(&checkpoint_crc.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len(), HEADER);
    out.extend_from_slice(&head);
    out.extend_from_slice(&blocks);
    Ok(Some(out))
}

/// Writes the summary of `st` (temp, fsync, rename, directory fsync), or removes a stale one
/// when there is nothing to summarise (or the one the table reads turned out damaged).
/// `checkpoint_crc` is the CRC of the active segment's checkpoint the close just wrote (0 if it
/// wrote none).
pub(crate) fn write(
    storage: &dyn Storage,
    dir: &Path,
    st: &mut State,
    checkpoint_crc: u32,
) -> Result<()> {
    let encoded = match encode(st, checkpoint_crc) {
        // The summary the table reads is damaged: the table from the sidecars instead.
        Err(e) if is_summary_error(st.streams.summary(), &e) && st.rebuild_streams().is_ok() => {
            encode(st, checkpoint_crc)
        }
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
    let Some(d) = read_head(file, path, st.log.maps.blocks()) else {
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
    use crate::summary_read::Reader;

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
