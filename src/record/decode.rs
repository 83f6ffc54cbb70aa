//! The read path's decoder: a record line in the layout [`super::encode_record`] writes, walked
//! once, without serde's generic machinery.
//!
//! Every read decodes every event it returns, and serde_json's derive over the whole line was
//! most of a read's time (a `read_all` spent 60% of it in serde_json). The layout is ours and
//! fixed, so this walks it directly: names are copied straight out of the line, the data is
//! checked and delimited by [`super::json`]'s scanner and copied as it is, and the time is read
//! in place.
//!
//! It accepts a subset of what serde_json accepts and gives the same event for it: [`event`]
//! returns `None` for anything else (another key order, a key twice, deep nesting, a number out
//! of range, a time with an escape) and the caller then decodes the line with serde_json,
//! which decides. So a valid record decodes identically either way, and a hostile one is refused
//! by serde_json with its message. Bytes are hostile here even under a good CRC: the scanner
//! checks the JSON grammar of everything it passes over and never panics.

use std::cell::Cell;

use serde_json::{Map, Value};

use super::json;
use crate::event::RecordedEvent;
use crate::time::{Micros, days_from_civil, days_in_month, parse_rfc3339};

/// A position in a record's body (the line without its crc member).
struct Walk<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

/// Decodes a record line (UTF-8, its frame checked) whose body ends at `body_end`, or `None` if
/// it is not in the layout this decoder knows: then serde_json decides.
pub(super) fn event(text: &str, body_end: usize) -> Option<RecordedEvent> {
    let body = text.get(..body_end)?;
    let mut w = Walk {
        text: body,
        bytes: body.as_bytes(),
        at: 0,
    };
    w.literal(b"{\"seq\":")?;
    let seq = w.unsigned()?;
    w.literal(b",\"id\":")?;
    let id = w.owned_string()?;
    w.literal(b",\"stream\":")?;
    let stream = w.owned_string()?;
    w.literal(b",\"version\":")?;
    let version = w.unsigned()?;
    w.literal(b",\"type\":")?;
    let event_type = w.owned_string()?;
    w.literal(b",\"time\":")?;
    let time = w.time()?;
    w.literal(b",\"data\":")?;
    let data = json::boxed_raw(w.value()?)?;
    w.literal(b",\"meta\":{")?;
    let mut meta = Map::new();
    if !w.eat(b'}') {
        loop {
            let key = w.owned_string()?;
            w.literal(b":")?;
            let value = if w.peek() == Some(b'"') {
                Value::String(w.owned_string()?)
            } else {
                serde_json::from_str(w.value()?).ok()?
            };
            // A key given twice keeps the last value, as serde_json's map does.
            meta.insert(key, value);
            if !w.eat(b',') {
                w.literal(b"}")?;
                break;
            }
        }
    }
    w.literal(b",\"tags\":[")?;
    let mut tags = Vec::new();
    if !w.eat(b']') {
        loop {
            tags.push(w.owned_string()?);
            if !w.eat(b',') {
                w.literal(b"]")?;
                break;
            }
        }
    }
    // The batch members the event does not carry, checked as serde_json checks ignored ones.
    if w.literal(b",\"key\":").is_some() {
        w.string()?;
    }
    let _ = w.literal(b",\"more\":true");
    if w.at != w.bytes.len() {
        return None;
    }
    Some(RecordedEvent {
        seq,
        id,
        stream,
        version,
        event_type,
        time,
        data,
        meta,
        tags,
    })
}

thread_local! {
    /// The last month [`writer_time`] read (`YYYY-MM`), with the day number of its first day
    /// and its length in days: records written close together share it (a stream's events lie
    /// hours apart, so a day would change every few events; a month seldom does).
    static MONTH: Cell<Option<([u8; 7], i64, i64)>> = const { Cell::new(None) };
}

/// A record's time, as [`parse_rfc3339`] reads it: the writer's form by [`writer_time`], any
/// other form (a leap second, an offset) by [`parse_rfc3339`].
fn parse_time(s: &str) -> Option<Micros> {
    writer_time(s.as_bytes()).or_else(|| parse_rfc3339(s))
}

/// A time in the form the writer uses (`2026-11-22T21:31:12.123456Z`), read as
/// [`parse_rfc3339`] reads it, with its checks of the date and time; `None` for any other text
/// (which [`parse_rfc3339`] may still take). Every one of its 27 bytes is checked to be a digit
/// or its separator, so none is a quote, a backslash or a control character. The month is
/// parsed only when it differs from the last one.
fn writer_time(b: &[u8]) -> Option<Micros> {
    let b: &[u8; 27] = b.try_into().ok()?;
    let num = |from: usize, n: usize| -> Option<i64> {
        b.get(from..from + n)?.iter().try_fold(0i64, |v, &c| {
            c.is_ascii_digit().then(|| v * 10 + i64::from(c - b'0'))
        })
    };
    let seps = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[26] == b'Z';
    if !seps {
        return None;
    }
    let (h, mi, sec, frac) = (num(11, 2)?, num(14, 2)?, num(17, 2)?, num(20, 6)?);
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let d = num(8, 2)?;
    let mut key = [0u8; 7];
    key.copy_from_slice(&b[..7]);
    let (first, days) = match MONTH.get() {
        Some((k, first, days)) if k == key => (first, days),
        _ => {
            let (y, mo) = (num(0, 4)?, num(5, 2)?);
            if !(1..=12).contains(&mo) {
                return None;
            }
            let (first, days) = (
                days_from_civil(y, mo as u32, 1),
                i64::from(days_in_month(y, mo as u32)),
            );
            MONTH.set(Some((key, first, days)));
            (first, days)
        }
    };
    if d < 1 || d > days {
        return None;
    }
    Some((((first + d - 1) * 24 + h) * 60 + mi) * 60 * 1_000_000 + sec * 1_000_000 + frac)
}

impl<'a> Walk<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Steps over `b` if it comes next.
    fn eat(&mut self, b: u8) -> bool {
        let next = self.peek() == Some(b);
        self.at += usize::from(next);
        next
    }

    /// Steps over `lit` if it comes next (compared as an array of known length, inline).
    fn literal<const N: usize>(&mut self, lit: &[u8; N]) -> Option<()> {
        let next = self.bytes.get(self.at..self.at + N)?;
        if <&[u8; N]>::try_from(next).ok()? == lit {
            self.at += N;
            Some(())
        } else {
            None
        }
    }

    /// A u64 as serde_json reads one: digits without a leading zero, in range.
    fn unsigned(&mut self) -> Option<u64> {
        let start = self.at;
        let mut v: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.at += 1;
        }
        match self.at - start {
            0 => None,
            1 => Some(v),
            _ if self.bytes[start] == b'0' => None,
            _ => Some(v),
        }
    }

    /// A string literal: its text between the quotes, and whether that holds an escape. Checked
    /// as serde_json checks one ([`json::string_end`]).
    fn string(&mut self) -> Option<(&'a str, bool)> {
        let (end, escaped) = json::string_end(self.bytes, self.at)?;
        let text = self.text.get(self.at + 1..end - 1)?;
        self.at = end;
        Some((text, escaped))
    }

    /// The record's time: in the writer's form read in place (its 27 bytes checked by
    /// [`writer_time`] between quotes), else a string without escapes read by [`parse_time`].
    fn time(&mut self) -> Option<Micros> {
        let quoted = self.peek() == Some(b'"') && self.bytes.get(self.at + 28) == Some(&b'"');
        if let Some(t) = quoted
            .then(|| self.bytes.get(self.at + 1..self.at + 28))
            .flatten()
            .and_then(writer_time)
        {
            self.at += 29;
            return Some(t);
        }
        let (time, escaped) = self.string()?;
        if escaped {
            return None;
        }
        parse_time(time)
    }

    /// A string literal's value: copied when it has no escape, else unescaped by serde_json
    /// (which refuses what it refuses in a whole record, such as half a surrogate pair).
    fn owned_string(&mut self) -> Option<String> {
        let start = self.at;
        let (s, escaped) = self.string()?;
        if escaped {
            serde_json::from_str(self.text.get(start..self.at)?).ok()
        } else {
            Some(s.to_owned())
        }
    }

    /// The JSON value at the cursor, if [`json::value_len`] vouches for it (valid as serde_json
    /// checks it, compact, not deeply nested): else `None`, and serde_json decides the line.
    fn value(&mut self) -> Option<&'a str> {
        let len = json::value_len(self.bytes.get(self.at..)?)?;
        let v = self.text.get(self.at..self.at + len)?;
        self.at += len;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;
    use serde_json::value::RawValue;

    use super::super::{RecordOut, SUFFIX_LEN, decode_event, decode_event_serde, encode_record};
    use super::*;

    /// Frames `body` (an object without its closing brace) with a valid CRC, as a line without
    /// its newline.
    fn framed(body: &[u8]) -> Vec<u8> {
        let mut line = body.to_vec();
        super::super::seal_line(&mut line, 0);
        line.pop();
        line
    }

    /// What this decoder makes of a framed line: `None` if it is not UTF-8 (never reached).
    fn fast(line: &[u8]) -> Option<RecordedEvent> {
        event(std::str::from_utf8(line).ok()?, line.len() - SUFFIX_LEN)
    }

    /// The same event, down to the order of the metadata's keys.
    fn same(a: &RecordedEvent, b: &RecordedEvent) -> bool {
        a == b && serde_json::to_string(&a.meta).unwrap() == serde_json::to_string(&b.meta).unwrap()
    }

    /// Checks that the read path decodes `line` exactly as serde_json does (the same event, or
    /// an error from both), and that this decoder accepts only what serde_json accepts; returns
    /// whether this decoder took it.
    ///
    /// A line must start with its object's `{` (the frame's rule, `check_frame`): serde_json
    /// would also take whitespace before it, which no writer puts there, so the read path's
    /// refusal of such a line is the expected answer.
    fn agrees(line: &[u8]) -> bool {
        let reference = if line.first() == Some(&b'{') {
            std::str::from_utf8(line)
                .map_err(|e| e.to_string())
                .and_then(decode_event_serde)
        } else {
            Err("not a framed record: the line does not start with `{`".to_string())
        };
        let ours = fast(line);
        if let Some(e) = &ours {
            let r = reference
                .as_ref()
                .expect("serde_json refuses what the fast path accepts");
            assert!(same(e, r), "{e:?} != {r:?}");
        }
        match (decode_event(line), &reference) {
            (Ok(a), Ok(b)) => assert!(same(&a, b)),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("read path {a:?}, serde_json {b:?}"),
        }
        ours.is_some()
    }

    struct Rec {
        id: String,
        stream: String,
        event_type: String,
        data: String,
        meta: Map<String, Value>,
        tags: Vec<String>,
        key: Option<String>,
        more: bool,
    }

    fn encode(r: &Rec, seq: u64) -> Vec<u8> {
        let data = RawValue::from_string(r.data.clone()).unwrap();
        let mut buf = Vec::new();
        encode_record(
            &mut buf,
            &RecordOut {
                seq,
                id: &r.id,
                stream: &r.stream,
                version: seq / 3 + 1,
                event_type: &r.event_type,
                time: "2026-11-22T21:31:12.123456Z",
                data: &data,
                meta: &r.meta,
                tags: &r.tags,
                key: r.key.as_deref(),
                more: r.more,
            },
        );
        buf.pop();
        buf
    }

    fn plain() -> Rec {
        let mut meta = Map::new();
        meta.insert("actor".into(), "ann".into());
        Rec {
            id: "01a2334b-d73c-7113-9538-4d00bc61615c".into(),
            stream: "order-42".into(),
            event_type: "OrderPlaced".into(),
            data: r#"{"order":42,"sku":"SKU-1","qty":2}"#.into(),
            meta,
            tags: vec!["customer=c1".into(), "region=eu".into()],
            key: None,
            more: false,
        }
    }

    const TEXTS: &[&str] = &[
        "",
        "plain",
        "q\"uote",
        "back\\slash",
        "tab\there\nnewline",
        "nul\0\u{1f}",
        "\u{7f}\u{80}\u{9f}",
        "é 日本 😀 \u{2028}",
        "</script>",
        "exactly8",
        "sixteen-bytes-ok",
        "a string longer than a few words, 8 bytes at a time \"quoted\" at the end\\",
    ];

    const DATA: &[&str] = &[
        "null",
        "true",
        "false",
        "0",
        "-0",
        "18446744073709551616",
        "-9223372036854775809",
        "1.5e-400",
        "1E+2",
        "-1.25e300",
        r#""""#,
        r#""\u0000\ud83d\ude00\n\"\\\/\b\f\r\t""#,
        r#""\ud800""#,
        r#""é 日本 😀""#,
        "[]",
        "{}",
        r#"[1,[2,[3,{"a":[{}]}]],"x",null]"#,
        r#"{"":"","a\"b":{"c":[1e5,true]},"[":"{"}"#,
    ];

    /// Found by the proptest below (an edit put a space before the line's `{`): the frame
    /// refuses it, whatever serde_json would make of the rest.
    #[test]
    fn whitespace_before_the_opening_brace_is_not_a_record() {
        let line = encode(&plain(), 7);
        let mut body = b" ".to_vec();
        body.extend_from_slice(&line[..line.len() - SUFFIX_LEN]);
        let spaced = framed(&body);
        assert!(
            std::str::from_utf8(&spaced)
                .map_err(|e| e.to_string())
                .and_then(decode_event_serde)
                .is_ok(),
            "serde_json takes the leading space"
        );
        assert!(decode_event(&spaced).is_err());
        assert!(!agrees(&spaced));
    }

    #[test]
    fn our_records_take_the_fast_path_and_decode_as_serde_json_does() {
        let mut seq = 0;
        let mut check = |r: &Rec| {
            seq += 1;
            assert!(agrees(&encode(r, seq)), "fast path refused {:?}", r.data);
        };
        for t in TEXTS {
            for field in 0..4 {
                let mut r = plain();
                match field {
                    0 => r.id = t.to_string(),
                    1 => r.stream = t.to_string(),
                    2 => r.event_type = t.to_string(),
                    _ => r.tags = vec![t.to_string(), t.to_string()],
                }
                check(&r);
            }
            let mut r = plain();
            r.meta.insert(t.to_string(), Value::String(t.to_string()));
            r.key = Some(t.to_string());
            r.more = true;
            check(&r);
        }
        for d in DATA {
            let mut r = plain();
            r.data = d.to_string();
            check(&r);
            // Half a surrogate pair is data, but no metadata `Value`.
            if let Ok(v) = serde_json::from_str(d) {
                r.meta.insert("v".into(), v);
                check(&r);
            }
        }
        // Long records, long strings with escapes and non-ASCII text.
        for n in [100, 180, 200, 230, 250, 300, 600] {
            let long = "é\\\"x".repeat(n / 4) + &"y".repeat(n % 4);
            let mut r = plain();
            r.data = serde_json::to_string(&json!({"text": long, "n": [1, 2.5, null]})).unwrap();
            r.tags = vec![long.clone(), "short".into(), long.clone()];
            check(&r);
            r.id = long.clone();
            check(&r);
        }
        let mut r = plain();
        r.meta = Map::new();
        r.tags = Vec::new();
        check(&r);
        for v in [
            json!(u64::MAX),
            json!(i64::MIN),
            json!(0.1),
            json!(f64::MAX),
            json!(null),
            json!({"nested": {"deeper": [1, "two", {"three": false}]}}),
            json!([]),
        ] {
            r.meta.insert(format!("k{}", r.meta.len()), v);
            check(&r);
        }
        for more in [false, true] {
            let mut r = plain();
            r.key = Some("batch-1".into());
            r.more = more;
            check(&r);
            r.key = None;
            check(&r);
        }
        // Every seq and version width.
        for s in [0, 1, 9, 10, 99, u64::MAX / 3, u64::MAX] {
            let mut body = encode(&plain(), 1);
            let text = String::from_utf8(body[..body.len() - SUFFIX_LEN].to_vec()).unwrap();
            let text = text.replacen("\"seq\":1,", &format!("\"seq\":{s},"), 1);
            body = framed(text.as_bytes());
            assert!(agrees(&body));
            assert_eq!(fast(&body).unwrap().seq, s);
        }
    }

    #[test]
    fn deep_data_is_decoded_as_serde_json_decodes_it() {
        for depth in [1, 64, 98, 99, 100, 101, 125, 126, 127, 128, 200] {
            let data = "[".repeat(depth) + &"]".repeat(depth);
            let mut r = plain();
            r.data = data.clone();
            if let Ok(raw) = RawValue::from_string(data) {
                let data = raw.get().to_string();
                let line = encode(&r, 1);
                assert_eq!(agrees(&line), depth < json::MAX_DEPTH, "depth {depth}");
                let mut r = plain();
                r.meta.insert(
                    "deep".into(),
                    serde_json::from_str(&data).unwrap_or(Value::Null),
                );
                agrees(&encode(&r, 1));
            }
            // Framed by hand, for depths serde_json would not write.
            let body = format!(
                r#"{{"seq":1,"id":"i","stream":"s","version":1,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":{},"meta":{{"m":{}}},"tags":[]"#,
                "[".repeat(depth) + &"]".repeat(depth),
                "{\"a\":".repeat(depth) + "1" + &"}".repeat(depth),
            );
            agrees(&framed(body.as_bytes()));
        }
    }

    /// Lines that are framed with a valid CRC but are not records as we write them.
    #[test]
    fn hostile_lines_are_refused_or_decoded_as_serde_json_decodes_them() {
        let good = r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":{"a":[1,2]},"meta":{"m":"v"},"tags":["x=y"]"#;
        assert!(agrees(&framed(good.as_bytes())));
        let must_fail = [
            // Truncated or extended.
            r#"{"seq":1"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":{"a":[1,2]},"meta":{"m":"v"},"tags":["x=y"}"#,
            // Bad escapes and control characters.
            r#"{"seq":1,"id":"\x","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"\u12","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"\ud800","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            "{\"seq\":1,\"id\":\"a\tb\",\"stream\":\"s\",\"version\":2,\"type\":\"t\",\"time\":\"2026-11-22T21:31:12.123456Z\",\"data\":1,\"meta\":{},\"tags\":[]",
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":"\q","meta":{},"tags":[]"#,
            // Invalid JSON in the data.
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":{"a":},"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":01,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1.,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":-,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":tru,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":[1,],"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":,"meta":{},"tags":[]"#,
            // Wrong types.
            r#"{"seq":"1","id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            r#"{"seq":-1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            r#"{"seq":1.0,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":7,"stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":[],"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":{}"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[1]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{"a":1,},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"yesterday","data":1,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-13-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            // Duplicate keys.
            r#"{"seq":1,"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[],"data":2"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[],"tags":[]"#,
            // Huge numbers.
            r#"{"seq":18446744073709551616,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":99999999999999999999999,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            // Missing members.
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{}"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","data":1,"meta":{},"tags":[]"#,
        ];
        for body in must_fail {
            let line = framed(body.as_bytes());
            assert!(!agrees(&line), "fast path took {body}");
            assert!(decode_event(&line).is_err(), "accepted {body}");
        }
        // Valid JSON records in another form: serde_json decodes them, the same either way.
        let other_forms = [
            r#"{"id":"i","seq":1,"stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            r#"{ "seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data": 1,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456\u005a","data":1,"meta":{},"tags":[]"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[],"extra":{"x":[]}"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[],"more":false"#,
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{},"tags":[],"key":7"#,
        ];
        for body in other_forms {
            let line = framed(body.as_bytes());
            assert!(!agrees(&line), "fast path took {body}");
            assert!(decode_event(&line).is_ok(), "refused {body}");
        }
        // Valid, in our form, with what the fast path handles itself.
        let ours = [
            // A metadata key twice: the last value wins, as in serde_json's map.
            r#"{"seq":1,"id":"i","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{"a":"1","b":2,"a":[3]},"tags":[]"#,
            r#"{"seq":1,"id":"\u0041\n","stream":"s","version":2,"type":"t","time":"2026-11-22T21:31:12.123456Z","data":1,"meta":{"\u00e9":"\ud83d\ude00"},"tags":["\/"]"#,
        ];
        for body in ours {
            assert!(agrees(&framed(body.as_bytes())), "fast path refused {body}");
        }
        let e = decode_event(&framed(ours[0].as_bytes())).unwrap();
        assert_eq!(e.meta["a"], json!([3]));
        // Every cut of a good line, each framed anew: refused, never a different event.
        for cut in 0..good.len() {
            let line = framed(&good.as_bytes()[..cut]);
            assert!(!agrees(&line), "cut at {cut} taken");
            assert!(decode_event(&line).is_err(), "cut at {cut} accepted");
        }
    }

    #[test]
    fn times_are_read_as_parse_rfc3339_reads_them() {
        let mut texts = vec![
            "2026-11-22T21:31:12.123456Z".to_string(),
            "2026-11-22T21:31:12.123456z".into(),
            "2026-11-22T21:31:60.123456Z".into(),
            "2026-11-22T21:31:59.999999Z".into(),
            "2026-11-22T21:31:12.12345Z".into(),
            "2026-11-22T21:31:12.1234567Z".into(),
            "2026-11-22T21:31:12Z".into(),
            "2026-11-22T21:31:12.123456+01:00".into(),
            "2026-11-22 21:31:12.123456Z".into(),
            "2026-11-22T21:31:1a.123456Z".into(),
            "2026-11-22T21:31:12.12345aZ".into(),
            "2026-11-22T21:31:12,123456Z".into(),
            "2026-11-22T21:31-12.123456Z".into(),
            "2026-02-28T23:59:59.999999Z".into(),
            "2026-02-29T00:00:00.000000Z".into(),
            "2026-04-30T00:00:00.000000Z".into(),
            "2026-04-31T00:00:00.000000Z".into(),
            "2026-04-00T00:00:00.000000Z".into(),
            "2026-04-3aT00:00:00.000000Z".into(),
            "2026-04-01T00:00:00.000000Z".into(),
            "2026-00-01T00:00:00.000000Z".into(),
            "2026-13-01T00:00:00.000000Z".into(),
            "2024-02-29T00:00:00.000000Z".into(),
            "2026-11-22T24:00:00.000000Z".into(),
            "2026-11-22T21:61:00.000000Z".into(),
            "0000-01-01T00:00:00.000000Z".into(),
            "9999-12-31T23:59:59.999999Z".into(),
            "1969-12-31T23:59:59.999999Z".into(),
            "".into(),
            "2026-11-22T21:31:1".into(),
        ];
        // A run of seconds within and across minutes, hours and days, twice over.
        for round in 0..2 {
            for s in 0..200 {
                let t = 1_700_000_000 + s * 37 + round;
                texts.push(crate::time::format_rfc3339(t * 1_000_000 + s * 7919));
            }
        }
        for t in &texts {
            // Once after another minute, once right after itself (from the cache).
            assert_eq!(parse_time(t), parse_rfc3339(t), "{t}");
            assert_eq!(parse_time(t), parse_rfc3339(t), "{t}");
        }
        // A minute in the cache does not vouch for an invalid second of it.
        assert!(parse_time("2026-11-22T21:31:12.123456Z").is_some());
        assert_eq!(parse_time("2026-11-22T21:31:99.123456Z"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any edit of a record's bytes, framed anew so that the CRC passes: the read path
        /// decodes it as serde_json does, or refuses it with serde_json, and never panics.
        #[test]
        fn edited_records_decode_as_serde_json_decodes_them(
            edits in proptest::collection::vec(
                (0usize..400, 0u8..4, prop::sample::select(
                    b"\"\\{}[],:-0123456789.eE+tfnulru \x00\x1f\x7f\xc3\xa9ax".to_vec(),
                )),
                1..4,
            ),
            more in any::<bool>(),
        ) {
            let mut r = plain();
            r.data = r#"{"a":"x\ny","n":[1,-2.5e3,true,null],"o":{}}"#.into();
            r.meta.insert("n".into(), json!(12));
            r.more = more;
            r.key = more.then(|| "k".to_string());
            let line = encode(&r, 7);
            let mut body = line[..line.len() - SUFFIX_LEN].to_vec();
            for (at, op, b) in edits {
                let at = at % (body.len() + 1);
                match op {
                    0 => body.insert(at, b),
                    1 if at < body.len() => { body.remove(at); }
                    2 if at < body.len() => body[at] = b,
                    _ => body.truncate(at),
                }
            }
            agrees(&framed(&body));
        }
    }
}
