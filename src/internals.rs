//! Internals exposed (behind the `internals` feature) for fuzz targets and the scenario suites
//! (`tests/scenarios`). Not a stable API.

use std::path::Path;
use std::sync::Arc;

use crate::event::RecordedEvent;
use crate::record::{self, RecordOut};
use crate::storage::Storage;
use crate::{Result, VerifyReport};

/// [`verify`](crate::verify) through any storage: the power-loss suite checks each image the
/// simulated disk leaves, where `verify(dir)` could only read the real disk.
pub fn verify_on(storage: &Arc<dyn Storage>, dir: &Path) -> Result<VerifyReport> {
    crate::verify::verify_on(storage, dir)
}

/// Checks and decodes one record line (without its newline); `None` if it is rejected.
pub fn decode_record(line: &[u8]) -> Option<RecordedEvent> {
    record::decode_event(line).ok()
}

/// [`decode_record`] through serde_json alone: the reference the read path's own decoder must
/// agree with.
pub fn decode_record_serde(line: &[u8]) -> Option<RecordedEvent> {
    record::check_frame(line).ok()?;
    record::decode_event_serde(std::str::from_utf8(line).ok()?).ok()
}

/// Checks and decodes a segment header line; the base seq if it is a supported header.
pub fn decode_header(line: &[u8]) -> Option<u64> {
    match record::decode_header(line).ok()? {
        record::Header::Ok { base_seq } => Some(base_seq),
        record::Header::Unsupported { .. } => None,
    }
}

/// Encodes an event as a framed record line (with its newline).
pub fn encode_event(e: &RecordedEvent, more: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    record::encode_record(
        &mut buf,
        &RecordOut {
            seq: e.seq,
            id: &e.id,
            stream: &e.stream,
            version: e.version,
            event_type: &e.event_type,
            time: &record::record_time(e.time),
            data: &e.data,
            meta: &e.meta,
            tags: &e.tags,
            key: None,
            more,
        },
    );
    buf
}

/// Creates a store in the empty directory `dir` whose only segment is a valid header followed by
/// `body`.
pub fn write_store_with_segment(dir: &Path, body: &[u8]) -> std::io::Result<()> {
    let storage = crate::storage::OsStorage;
    crate::config::write_config(
        &storage,
        dir,
        &crate::config::StoreConfig::default(),
        "fuzz",
    )
    .map_err(std::io::Error::other)?;
    let mut bytes = record::encode_header(1);
    bytes.extend_from_slice(body);
    std::fs::write(dir.join(crate::segment::segment_name(1)), bytes)
}

/// Frames `body` (normally a JSON object without its closing brace) with a valid CRC
/// suffix, as the writer does: lets a fuzzer reach the parser behind the checksum.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut buf = body.to_vec();
    record::seal_line(&mut buf, 0);
    buf.pop(); // the newline
    buf
}

/// A `HEAD` file whose two slots name `a` and `b`, both valid: lets a fuzzer choose published
/// heads (above the log, below it) rather than fight the CRC.
pub fn head_file(a: u64, b: u64) -> Vec<u8> {
    crate::head::file_bytes(a, b)
}

/// Frames every line of `text` (see [`frame`]) and joins them with newlines.
pub fn frame_lines(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 32);
    for line in text.split(|&b| b == b'\n') {
        out.extend_from_slice(&frame(line));
        out.push(b'\n');
    }
    out
}

/// Opens arbitrary bytes as an index sidecar of segment 1 and, if they validate, exercises every
/// lookup: a fuzz target for the sidecar reader. Returns the number of records described.
pub fn probe_index(bytes: &[u8]) -> Option<u64> {
    use crate::index::{IndexFile, Kind};
    let f = IndexFile::open(
        std::sync::Arc::new(crate::storage::Mapped::Bytes(bytes.to_vec())),
        1,
        None,
    )
    .ok()?;
    for i in 0..=f.count as u32 {
        let _ = (f.position(i), f.time(i));
    }
    let _ = f.first_at_or_after(0);
    for kind in Kind::ALL {
        let terms: Vec<String> = f
            .terms_with_prefix(kind, "")
            .map(|(t, _)| t.to_owned())
            .collect();
        for t in terms {
            let p = f.postings(kind, &t);
            assert!(
                p.iter().all(|o| u64::from(o) < f.count),
                "posting out of range"
            );
        }
    }
    Some(f.count)
}

/// Opens arbitrary bytes as a sealed segment's sidecar read by `pread` (`SealedIndex`, as a
/// store reads one: a format-2 file checked block by block), and, if it opens, exercises every
/// lookup; every answer must stay within what the header describes. A fuzz target for the
/// reader of sidecars that are not checked whole. Returns the number of records described.
pub fn probe_sealed_index(bytes: &[u8]) -> Option<u64> {
    use crate::index::Kind;
    use crate::sealed_index::SealedIndex;
    let file: Arc<dyn crate::storage::StorageFile> = Arc::new(BytesFile(bytes.to_vec()));
    let ix = SealedIndex::open(file, Path::new("probe.idx"), 1, None)
        .ok()?
        .caching(&crate::block_cache::BlockCache::new(64 << 10));
    for i in (0..=ix.count as u32).step_by(7) {
        let _ = (ix.position(i), ix.time(i));
    }
    let _ = ix.first_at_or_after(0);
    let _ = ix.id_range();
    for kind in Kind::ALL {
        let Ok((text, ends)) = ix.term_counts(kind) else {
            continue;
        };
        let mut from = 0;
        for &(end, _) in ends.iter().take(64) {
            let Some(t) = text.get(from..end as usize) else {
                break;
            };
            from = end as usize;
            if let Ok(p) = ix.postings(kind, t) {
                assert!(
                    p.iter().all(|&o| u64::from(o) < ix.count),
                    "posting out of range"
                );
            }
            let _ = ix.term_count(kind, t);
            if kind == Kind::Stream {
                let _ = ix.stream_extents(t, ix.segment_len, 0, 100);
            }
        }
        let _ = ix.terms_with_prefix(kind, "a");
    }
    Some(ix.count)
}

/// A sidecar's bytes in memory, as a read-only file.
struct BytesFile(Vec<u8>);

impl crate::storage::StorageFile for BytesFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let at = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let n = buf.len().min(self.0.len() - at);
        buf[..n].copy_from_slice(&self.0[at..at + n]);
        Ok(n)
    }
    fn write_all_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
        Err(std::io::ErrorKind::PermissionDenied.into())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.0.len() as u64)
    }
    fn set_len(&self, _: u64) -> std::io::Result<()> {
        Err(std::io::ErrorKind::PermissionDenied.into())
    }
    fn map(&self) -> std::io::Result<Option<crate::storage::Mapped>> {
        Ok(None)
    }
}

/// Completes `body` (a format-2 sidecar's header and sections, its sample included) with its
/// block sums, their CRC and the file's CRC, as the sidecar writer does: what a fuzzer needs
/// to reach the checks behind them.
pub fn with_index_sums(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    let sums = crate::block_cache::block_sums(body);
    out.extend_from_slice(&sums);
    out.extend_from_slice(&crc32fast::hash(&sums).to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Re-frames `body` with a valid trailing CRC, as the sidecar writer does.
pub fn with_index_crc(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out
}
