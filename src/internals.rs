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

/// Re-frames `body` with a valid trailing CRC, as the sidecar writer does.
pub fn with_index_crc(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out
}
