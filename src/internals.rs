//! Internals exposed (behind the `internals` feature) for fuzz targets and fault-injection tests.
//! Not a stable API.

use std::path::Path;

use crate::event::RecordedEvent;
use crate::record::{self, RecordOut};

/// Checks and decodes one record line (without its newline); `None` if it is rejected.
pub fn decode_record(line: &[u8]) -> Option<RecordedEvent> {
    record::decode_record(line).ok()?.to_event().ok()
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

/// Frames every line of `text` (see [`frame`]) and joins them with newlines.
pub fn frame_lines(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 32);
    for line in text.split(|&b| b == b'\n') {
        out.extend_from_slice(&frame(line));
        out.push(b'\n');
    }
    out
}
