//! The record frame: one compact JSON object per line, ending in `,"crc":"XXXXXXXX"}`.
//!
//! This module owns the byte layout of a line (see `docs/format.md`): encoding an event into a
//! framed line, checking a line's frame, and parsing a checked line. Bytes from disk are hostile
//! until [`check_frame`] accepts them; nothing here panics on any input.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::event::{RecordedEvent, any_byte_below_or};
use crate::time::{Micros, format_rfc3339, parse_rfc3339};

mod decode;
mod json;

/// The segment format this build writes and reads.
pub(crate) const FORMAT_VERSION: u64 = 1;

/// `,"crc":"` + 8 hex digits + `"}`.
const SUFFIX_LEN: usize = 18;
const SUFFIX_HEAD: &[u8] = b",\"crc\":\"";

/// Room a line may take beyond the event size limit (position fields, metadata framing).
pub(crate) const LINE_SLACK: usize = 64 * 1024;

/// Appends the frame suffix for the bytes `buf[start..]` (which must be a JSON object without
/// its closing brace) and a newline.
pub(crate) fn seal_line(buf: &mut Vec<u8>, start: usize) {
    let crc = crc32fast::hash(&buf[start..]);
    buf.extend_from_slice(SUFFIX_HEAD);
    buf.extend_from_slice(&hex_crc(crc));
    buf.extend_from_slice(b"\"}\n");
}

/// A CRC as the frame writes it: 8 lowercase hex digits.
fn hex_crc(crc: u32) -> [u8; 8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 8];
    for (i, d) in out.iter_mut().enumerate() {
        *d = HEX[((crc >> ((7 - i) * 4)) & 0xf) as usize];
    }
    out
}

/// Checks the frame of one line (without its newline): shape of the suffix and the CRC.
pub(crate) fn check_frame(line: &[u8]) -> Result<(), String> {
    if line.len() < SUFFIX_LEN + 2 || line[0] != b'{' {
        return Err(format!(
            "line of {} bytes is not a framed record",
            line.len()
        ));
    }
    let (body, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    if &suffix[..8] != SUFFIX_HEAD || &suffix[16..] != b"\"}" {
        return Err("line does not end with a crc member".into());
    }
    let actual = crc32fast::hash(body);
    // Compared as text: writing 8 hex digits is cheaper than parsing them branch by branch.
    if suffix[8..16] != hex_crc(actual) {
        let stored = &suffix[8..16];
        if !stored
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err("crc member is not 8 lowercase hex digits".into());
        }
        return Err(format!(
            "crc mismatch: stored {}, computed {actual:08x}",
            String::from_utf8_lossy(stored)
        ));
    }
    Ok(())
}

/// Writes a JSON string literal, byte for byte as serde_json writes it: a string without `"`,
/// `\\` or a control character below 0x20 (nearly every name and id) is copied between quotes
/// (serde_json's escaping loop was 5% of a bulk load's CPU), any other goes through serde_json.
fn push_str(buf: &mut Vec<u8>, s: &str) {
    if needs_escape(s) {
        serde_json::to_writer(&mut *buf, s).expect("writing a string to a Vec cannot fail");
        return;
    }
    buf.reserve(s.len() + 2);
    buf.push(b'"');
    buf.extend_from_slice(s.as_bytes());
    buf.push(b'"');
}

/// At least the length [`push_str`] writes for `s`: exact unless it needs escapes, when each
/// byte counts as six (`\u001f`).
pub(crate) fn str_len_bound(s: &str) -> usize {
    if needs_escape(s) {
        6 * s.len() + 2
    } else {
        s.len() + 2
    }
}

/// Whether serde_json escapes anything in `s`.
fn needs_escape(s: &str) -> bool {
    any_byte_below_or(s.as_bytes(), 0x20, b'"', b'\\')
}

/// At least the length [`push_meta`] writes for `meta`.
pub(crate) fn meta_len_bound(meta: &Map<String, Value>) -> usize {
    // Braces, a colon per member and a comma between two.
    1 + usize::from(meta.is_empty())
        + meta
            .iter()
            .map(|(k, v)| {
                2 + str_len_bound(k)
                    + match v {
                        Value::String(s) => str_len_bound(s),
                        v => {
                            let mut n = Counter(0);
                            serde_json::to_writer(&mut n, v)
                                .expect("counting JSON bytes cannot fail");
                            n.0
                        }
                    }
            })
            .sum::<usize>()
}

/// An `io::Write` that only counts the bytes.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `v` in decimal.
fn push_u64(buf: &mut Vec<u8>, v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = v;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Writes metadata as `serde_json::to_writer` does (compact, in the map's order), its keys and
/// string values through [`push_str`].
fn push_meta(buf: &mut Vec<u8>, meta: &Map<String, Value>) {
    buf.push(b'{');
    for (i, (k, v)) in meta.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        push_str(buf, k);
        buf.push(b':');
        match v {
            Value::String(s) => push_str(buf, s),
            v => serde_json::to_writer(&mut *buf, v).expect("writing JSON to a Vec cannot fail"),
        }
    }
    buf.push(b'}');
}

/// Writes tags as `serde_json::to_writer` does.
fn push_tags(buf: &mut Vec<u8>, tags: &[String]) {
    buf.push(b'[');
    for (i, t) in tags.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        push_str(buf, t);
    }
    buf.push(b']');
}

/// The fields of one record, borrowed from the caller, ready to encode.
pub(crate) struct RecordOut<'a> {
    pub seq: u64,
    pub id: &'a str,
    pub stream: &'a str,
    pub version: u64,
    pub event_type: &'a str,
    pub time: &'a str,
    pub data: &'a RawValue,
    pub meta: &'a Map<String, Value>,
    pub tags: &'a [String],
    /// The batch's idempotency key, on its first record only.
    pub key: Option<&'a str>,
    pub more: bool,
}

/// Appends one framed record line to `buf`.
pub(crate) fn encode_record(buf: &mut Vec<u8>, r: &RecordOut<'_>) {
    let start = buf.len();
    buf.extend_from_slice(b"{\"seq\":");
    push_u64(buf, r.seq);
    encode_tail(buf, r);
    finish_record(buf, start, r.key, r.more);
}

/// The bytes of `r`'s record that do not depend on where it is written: from `,"id":` through
/// its tags (everything but its seq, its batch's key and `more`). An import encodes these
/// before it takes the state lock ([`crate::PreparedImport`]), and [`encode_with_tail`] makes the
/// same line from them as [`encode_record`].
pub(crate) fn encode_tail(buf: &mut Vec<u8>, r: &RecordOut<'_>) {
    buf.extend_from_slice(b",\"id\":");
    push_str(buf, r.id);
    buf.extend_from_slice(b",\"stream\":");
    push_str(buf, r.stream);
    buf.extend_from_slice(b",\"version\":");
    push_u64(buf, r.version);
    buf.extend_from_slice(b",\"type\":");
    push_str(buf, r.event_type);
    buf.extend_from_slice(b",\"time\":\"");
    buf.extend_from_slice(r.time.as_bytes());
    buf.extend_from_slice(b"\",\"data\":");
    buf.extend_from_slice(r.data.get().as_bytes());
    buf.extend_from_slice(b",\"meta\":");
    push_meta(buf, r.meta);
    buf.extend_from_slice(b",\"tags\":");
    push_tags(buf, r.tags);
}

/// Appends the framed record line of seq `seq` whose [`encode_tail`] bytes are `tail`: the
/// line [`encode_record`] writes for the same fields.
pub(crate) fn encode_with_tail(
    buf: &mut Vec<u8>,
    seq: u64,
    tail: &[u8],
    key: Option<&str>,
    more: bool,
) {
    let start = buf.len();
    buf.reserve(tail.len() + 64);
    buf.extend_from_slice(b"{\"seq\":");
    push_u64(buf, seq);
    buf.extend_from_slice(tail);
    finish_record(buf, start, key, more);
}

/// The end of the line started at `start`: the key, `more`, and the frame.
fn finish_record(buf: &mut Vec<u8>, start: usize, key: Option<&str>, more: bool) {
    if let Some(key) = key {
        buf.extend_from_slice(b",\"key\":");
        push_str(buf, key);
    }
    if more {
        buf.extend_from_slice(b",\"more\":true");
    }
    seal_line(buf, start);
}

/// A record's position fields and raw metadata, parsed from a checked line and borrowing from
/// it (the data is checked as JSON but not kept: the read path uses [`decode_event`]).
#[derive(Deserialize)]
pub(crate) struct RecordRef<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub stream: Cow<'a, str>,
    pub version: u64,
    #[serde(rename = "type", borrow)]
    pub event_type: Cow<'a, str>,
    #[serde(borrow)]
    pub time: Cow<'a, str>,
    /// Parsed (as JSON, not kept) so that recovery accepts exactly the records the reader
    /// decodes: a second `data` member, say, is refused by both.
    #[serde(borrow)]
    #[allow(dead_code)]
    pub data: &'a RawValue,
    #[serde(borrow)]
    pub meta: &'a RawValue,
    #[serde(borrow)]
    pub tags: &'a RawValue,
    #[serde(default, borrow)]
    pub key: Option<Cow<'a, str>>,
    #[serde(default)]
    pub more: bool,
}

/// A record's position fields, parsed from a checked line: what recovery and scans need.
pub(crate) struct RecordMeta<'a> {
    pub rec: RecordRef<'a>,
    pub time: Micros,
}

/// Checks the frame and parses a record line (without its newline).
pub(crate) fn decode_record(line: &[u8]) -> Result<RecordMeta<'_>, String> {
    check_frame(line)?;
    let text = std::str::from_utf8(line).map_err(|e| format!("record is not UTF-8: {e}"))?;
    let rec: RecordRef<'_> =
        serde_json::from_str(text).map_err(|e| format!("malformed record: {e}"))?;
    let time = parse_rfc3339(&rec.time).ok_or_else(|| format!("bad time `{}`", rec.time))?;
    if !rec.meta.get().starts_with('{') {
        return Err("meta is not a JSON object".into());
    }
    Ok(RecordMeta { rec, time })
}

/// Reads a metadata value as a string; other JSON types are not indexed.
fn meta_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.and_then(|v| match v {
        Value::String(s) => Some(s),
        _ => None,
    }))
}

/// The indexed metadata keys of a record.
#[derive(Deserialize)]
struct IndexedMeta {
    #[serde(default, deserialize_with = "meta_str")]
    correlation_id: Option<String>,
    #[serde(default, deserialize_with = "meta_str")]
    causation_id: Option<String>,
    #[serde(default, deserialize_with = "meta_str")]
    actor: Option<String>,
}

impl RecordMeta<'_> {
    /// The index terms of this record.
    pub(crate) fn terms(&self) -> Result<crate::index::Terms, String> {
        let meta: IndexedMeta = serde_json::from_str(self.rec.meta.get())
            .map_err(|e| format!("malformed meta: {e}"))?;
        let tags: Vec<String> = serde_json::from_str(self.rec.tags.get())
            .map_err(|e| format!("malformed tags: {e}"))?;
        Ok(crate::index::Terms {
            stream: self.rec.stream.to_string(),
            event_type: self.rec.event_type.to_string(),
            id: self.rec.id.to_string(),
            tags,
            correlation: meta.correlation_id,
            causation: meta.causation_id,
            actor: meta.actor,
            key: self.rec.key.as_deref().map(str::to_owned),
        })
    }
}

/// A record parsed straight into owned values, in one pass: the read path.
#[derive(Deserialize)]
struct RecordOwned<'a> {
    seq: u64,
    id: String,
    stream: String,
    version: u64,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(borrow)]
    time: Cow<'a, str>,
    data: Box<RawValue>,
    meta: Map<String, Value>,
    tags: Vec<String>,
}

/// Checks the frame and decodes a record line (without its newline) into an event.
pub(crate) fn decode_event(line: &[u8]) -> Result<RecordedEvent, String> {
    check_frame(line)?;
    // One UTF-8 check of the whole line, then parsers that do not repeat it per string.
    let text = std::str::from_utf8(line).map_err(|e| format!("record is not UTF-8: {e}"))?;
    decode_checked_event(text)
}

/// Decodes a record line (without its newline) whose frame [`check_frame`] accepted: what
/// [`decode_event`] does after its checks, for a line checked elsewhere (a scan's read-ahead
/// checks each run's records before handing the run over).
pub(crate) fn decode_checked_event(text: &str) -> Result<RecordedEvent, String> {
    // Our own layout, walked directly; anything else is for serde_json to accept or refuse.
    match decode::event(text, text.len().saturating_sub(SUFFIX_LEN)) {
        Some(event) => Ok(event),
        None => decode_event_serde(text),
    }
}

/// Decodes a record line (UTF-8, its frame checked) with serde_json: what [`decode_event`]
/// falls back to, and the reference its own decoder is tested against.
pub(crate) fn decode_event_serde(text: &str) -> Result<RecordedEvent, String> {
    let r: RecordOwned<'_> =
        serde_json::from_str(text).map_err(|e| format!("malformed record: {e}"))?;
    let time = parse_rfc3339(&r.time).ok_or_else(|| format!("bad time `{}`", r.time))?;
    Ok(RecordedEvent {
        seq: r.seq,
        id: r.id,
        stream: r.stream,
        version: r.version,
        event_type: r.event_type,
        time,
        data: r.data,
        meta: r.meta,
        tags: r.tags,
    })
}

/// The first line of a segment.
#[derive(Deserialize)]
struct HeaderLine<'a> {
    eventfile: &'a str,
    format: u64,
    base_seq: u64,
}

/// Encodes a segment header line.
pub(crate) fn encode_header(base_seq: u64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(80);
    buf.extend_from_slice(b"{\"eventfile\":\"segment\",\"format\":");
    push_u64(&mut buf, FORMAT_VERSION);
    buf.extend_from_slice(b",\"base_seq\":");
    push_u64(&mut buf, base_seq);
    seal_line(&mut buf, 0);
    buf
}

/// What a header line said.
pub(crate) enum Header {
    /// A valid header of the format this build reads.
    Ok { base_seq: u64 },
    /// A valid header of another format version.
    Unsupported { found: u64 },
}

/// Checks and parses a segment header line (without its newline).
pub(crate) fn decode_header(line: &[u8]) -> Result<Header, String> {
    check_frame(line)?;
    let h: HeaderLine<'_> =
        serde_json::from_slice(line).map_err(|e| format!("malformed segment header: {e}"))?;
    if h.eventfile != "segment" {
        return Err(format!("header names `{}`, not a segment", h.eventfile));
    }
    if h.format != FORMAT_VERSION {
        return Ok(Header::Unsupported { found: h.format });
    }
    Ok(Header::Ok {
        base_seq: h.base_seq,
    })
}

/// Encodes an arbitrary serialisable object as a framed line (used for the store config and
/// the like).
pub(crate) fn encode_object<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut buf = serde_json::to_vec(value).expect("serialising plain data cannot fail");
    debug_assert_eq!(buf.last(), Some(&b'}'));
    buf.pop();
    seal_line(&mut buf, 0);
    buf
}

/// Checks the frame of a single-line file and parses it.
pub(crate) fn decode_object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if memchr::memchr(b'\n', line).is_some() {
        return Err("more than one line".into());
    }
    check_frame(line)?;
    serde_json::from_slice(line).map_err(|e| format!("malformed: {e}"))
}

/// Formats a time for a record.
pub(crate) fn record_time(micros: Micros) -> String {
    format_rfc3339(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(more: bool) -> Vec<u8> {
        let data =
            serde_json::value::to_raw_value(&serde_json::json!({"a":"x\ny","n":[1,2]})).unwrap();
        let mut meta = Map::new();
        meta.insert("actor".into(), "ann".into());
        let tags = vec!["region=eu".to_string()];
        let mut buf = Vec::new();
        encode_record(
            &mut buf,
            &RecordOut {
                seq: 7,
                id: "id-\"1\"",
                stream: "order-42",
                version: 3,
                event_type: "OrderPlaced",
                time: "2026-11-22T21:31:12.123456Z",
                data: &data,
                meta: &meta,
                tags: &tags,
                key: more.then_some("k-1"),
                more,
            },
        );
        buf
    }

    #[test]
    fn strings_meta_and_tags_are_written_as_serde_json_writes_them() {
        let texts = [
            "",
            "plain",
            "q\"uote",
            "back\\slash",
            "tab\there",
            "nul\0",
            "\u{1f}\u{7f}\u{80}\u{9f}",
            "é 日本 😀 \u{2028}",
            "</script>",
        ];
        for t in texts {
            let mut ours = Vec::new();
            push_str(&mut ours, t);
            assert_eq!(ours, serde_json::to_vec(t).unwrap(), "{t:?}");
        }
        let tags: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        for n in [0, 1, tags.len()] {
            let mut ours = Vec::new();
            push_tags(&mut ours, &tags[..n]);
            assert_eq!(ours, serde_json::to_vec(&tags[..n]).unwrap());
        }
        let mut meta = Map::new();
        let mut ours = Vec::new();
        push_meta(&mut ours, &meta);
        assert_eq!(ours, b"{}");
        for (i, t) in texts.iter().enumerate() {
            meta.insert(format!("{t}{i}"), Value::String(t.to_string()));
        }
        meta.insert(
            "n".into(),
            serde_json::json!([1, -2.5, 1e300, null, true, {"a\n": "b"}]),
        );
        meta.insert("u".into(), serde_json::json!(u64::MAX));
        let mut ours = Vec::new();
        push_meta(&mut ours, &meta);
        assert_eq!(ours, serde_json::to_vec(&meta).unwrap());
        assert!(meta_len_bound(&meta) >= ours.len());
        for t in texts {
            assert!(str_len_bound(t) >= serde_json::to_vec(t).unwrap().len());
        }
        meta.retain(|k, _| k.starts_with("plain"));
        assert_eq!(
            meta_len_bound(&meta),
            serde_json::to_vec(&meta).unwrap().len()
        );
        // Every byte value at every place of a word and of the tail.
        for len in [1, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for v in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = v;
                    let want = v < 0x20 || v == b'"' || v == b'\\';
                    assert_eq!(any_byte_below_or(&bytes, 0x20, b'"', b'\\'), want);
                    let want = v < 0x20 || v == 0x7f || v == 0xc2;
                    assert_eq!(any_byte_below_or(&bytes, 0x20, 0x7f, 0xc2), want);
                }
            }
        }
        for v in [0, 9, 10, 12_345, u64::MAX] {
            let mut ours = Vec::new();
            push_u64(&mut ours, v);
            assert_eq!(ours, v.to_string().as_bytes());
        }
    }

    #[test]
    fn record_round_trip_and_valid_json() {
        for more in [false, true] {
            let buf = sample(more);
            assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
            let line = &buf[..buf.len() - 1];
            let v: Value = serde_json::from_slice(line).unwrap();
            assert_eq!(v["stream"], "order-42");
            let m = decode_record(line).unwrap();
            assert_eq!(m.rec.seq, 7);
            assert_eq!(m.rec.id, "id-\"1\"");
            assert_eq!(m.rec.more, more);
            assert_eq!(m.rec.key.as_deref(), more.then_some("k-1"));
            let e = decode_event(line).unwrap();
            assert_eq!((e.seq, e.id.as_str(), e.version), (7, "id-\"1\"", 3));
            assert_eq!(
                (e.stream.as_str(), e.event_type.as_str()),
                ("order-42", "OrderPlaced")
            );
            assert_eq!(e.data_value()["a"], "x\ny");
            assert_eq!(e.tags, vec!["region=eu"]);
            assert_eq!(e.meta["actor"], "ann");
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let buf = sample(false);
        let line = &buf[..buf.len() - 1];
        for i in 0..line.len() {
            for bit in 0..8 {
                let mut bad = line.to_vec();
                bad[i] ^= 1 << bit;
                assert!(decode_record(&bad).is_err(), "flip at {i} bit {bit} passed");
            }
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let buf = sample(true);
        let line = &buf[..buf.len() - 1];
        for cut in 0..line.len() {
            assert!(decode_record(&line[..cut]).is_err(), "cut at {cut} passed");
        }
    }

    #[test]
    fn header_round_trip() {
        let h = encode_header(52113);
        match decode_header(&h[..h.len() - 1]).unwrap() {
            Header::Ok { base_seq } => assert_eq!(base_seq, 52113),
            Header::Unsupported { .. } => panic!("own header unsupported"),
        }
        assert!(decode_header(b"{}").is_err());
    }
}
