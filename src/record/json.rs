//! A validating scanner of compact JSON: where a string or a whole value ends, and whether
//! serde_json would accept it, without serde's machinery.
//!
//! The read path delimits every event's data with [`value_len`] (serde_json's raw-value parse
//! of the data was a tenth of a stream read's time). It accepts a *subset* of what serde_json
//! accepts for one value, and delimits it where serde_json does: JSON without whitespace
//! outside strings (what the writer stores: data is compacted before it is appended), nested
//! less than [`MAX_DEPTH`] deep. Anything else is `None`, and the caller leaves the line to
//! serde_json, which decides. So this must never accept what serde_json refuses, and may refuse
//! what it accepts. Bytes are hostile: nothing here panics or indexes unchecked.

use serde::Deserialize;
use serde::de::value::{BorrowedStrDeserializer, MapDeserializer};
use serde_json::value::RawValue;

/// Values nested this deep are left to serde_json, whose depth limit counts the record's own
/// levels too (a value alone could nest deeper).
pub(super) const MAX_DEPTH: usize = 100;

/// The high bit of each byte of `word` (read little-endian) that may be a `"`, a `\\` or a
/// control character: the lowest set bit is exact (a borrow only runs above a byte that matches),
/// so it marks the first such byte; zero if there is none.
fn special_bytes(word: [u8; 8]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let w = u64::from_le_bytes(word);
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
        | zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
}

/// Where the first byte from `i` on that is a `"`, a `\\` or a control character lies, or
/// the first of the last few bytes (under 8) that were not looked at.
#[inline]
fn skip_plain(b: &[u8], mut i: usize) -> usize {
    while let Some(word) = b.get(i..i + 8).and_then(|s| <[u8; 8]>::try_from(s).ok()) {
        let special = special_bytes(word);
        if special != 0 {
            return i + special.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    i
}

/// The string literal whose opening quote is at `start`: the index just past its closing quote,
/// and whether it holds an escape. Checked as serde_json checks a string it passes over: no
/// control character, only its escapes (`\u` with four hex digits, a lone surrogate included:
/// whether that is allowed depends on what the string is read into, which the caller decides).
#[inline]
pub(super) fn string_end(b: &[u8], start: usize) -> Option<(usize, bool)> {
    if b.get(start) != Some(&b'"') {
        return None;
    }
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        // Eight bytes at a time, straight to the first that is not plain.
        i = skip_plain(b, i);
        match *b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' => {
                        let hex = b.get(i + 2..i + 6)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        i += 6;
                    }
                    _ => return None,
                }
            }
            0..=0x1f => return None,
            _ => i += 1,
        }
    }
}

/// A number as serde_json passes over one: `-`? then `0` or a digit 1-9 and digits, then
/// `.` and digits, then `e`/`E`, a sign and digits (no range: it is not converted). Returns the
/// index past it.
fn number_end(b: &[u8], start: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        while matches!(b.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        i
    };
    let mut i = start + usize::from(b.get(start) == Some(&b'-'));
    i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i + 1),
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

/// The length of the JSON value at the start of `b` (what follows it is not looked at), if it
/// is one this scanner vouches for: valid as serde_json validates a value, with no whitespace
/// outside its strings and nested less than [`MAX_DEPTH`] deep. `None` for anything else
/// (invalid, or merely outside that subset).
pub(super) fn value_len(b: &[u8]) -> Option<usize> {
    // One bit per open level: set for an object, clear for an array.
    let mut objects: u128 = 0;
    let mut depth = 0usize;
    let mut i = 0usize;
    loop {
        // A value is expected at `i`.
        match *b.get(i)? {
            b'"' => i = string_end(b, i)?.0,
            b'-' | b'0'..=b'9' => {
                i = number_end(b, i)?;
                // `01` is not a number followed by another: serde_json refuses it.
                if matches!(b.get(i), Some(b'0'..=b'9')) {
                    return None;
                }
            }
            b't' => i = word_end(b, i, b"true")?,
            b'f' => i = word_end(b, i, b"false")?,
            b'n' => i = word_end(b, i, b"null")?,
            open @ (b'[' | b'{') => {
                depth += 1;
                if depth >= MAX_DEPTH {
                    return None;
                }
                let object = open == b'{';
                objects = (objects << 1) | u128::from(object);
                i += 1;
                let close = if object { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    // Empty: closed at once, then what follows a value.
                    depth -= 1;
                    objects >>= 1;
                    i += 1;
                } else {
                    if object {
                        i = member_key_end(b, i)?;
                    }
                    continue;
                }
            }
            _ => return None,
        }
        // After a value: close levels, or a comma and the next value.
        loop {
            if depth == 0 {
                return Some(i);
            }
            let object = objects & 1 == 1;
            match *b.get(i)? {
                b',' => {
                    i += 1;
                    if object {
                        i = member_key_end(b, i)?;
                    }
                    break;
                }
                b']' if !object => {}
                b'}' if object => {}
                _ => return None,
            }
            i += 1;
            depth -= 1;
            objects >>= 1;
        }
    }
}

/// A member's key at `i` and its colon: the index past them.
fn member_key_end(b: &[u8], i: usize) -> Option<usize> {
    let (end, _) = string_end(b, i)?;
    (b.get(end) == Some(&b':')).then_some(end + 1)
}

/// The literal `word` at `i`: the index past it.
fn word_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    let end = i + word.len();
    (b.get(i..end)? == word).then_some(end)
}

/// The name serde_json gives the one member through which a `RawValue` is handed over (its
/// `raw::TOKEN`, not public): [`boxed_raw`] passes the text this way.
const RAW_TOKEN: &str = "$serde_json::private::RawValue";

/// `json` (checked by [`value_len`]) as a `Box<RawValue>`, copied once into an allocation of its
/// exact length, without serde_json parsing it again: the text is handed to `RawValue`'s own
/// `Deserialize` as serde_json's deserializer hands a raw value over. Should a later serde_json
/// hand it over differently, that fails, and the text is parsed by `RawValue::from_string`
/// instead (slower, same value).
pub(super) fn boxed_raw(json: &str) -> Option<Box<RawValue>> {
    let member = (
        BorrowedStrDeserializer::<serde_json::Error>::new(RAW_TOKEN),
        BorrowedStrDeserializer::<serde_json::Error>::new(json),
    );
    match Box::<RawValue>::deserialize(MapDeserializer::new(std::iter::once(member))) {
        Ok(raw) => Some(raw),
        Err(_) => RawValue::from_string(json.to_owned()).ok(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What serde_json makes of `text` as a value followed by anything: the length of the raw
    /// value it delimits at the start, or `None` if it refuses it.
    fn serde_len(text: &str) -> Option<usize> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw = <&RawValue>::deserialize(&mut de).ok()?;
        // A raw value after leading whitespace starts later; this scanner refuses those.
        (raw.get().as_ptr() == text.as_ptr()).then(|| raw.get().len())
    }

    /// Whether the scanner agrees with serde_json on `text`: if it vouches for a value, serde_json
    /// accepts the same value, ending at the same place. Returns whether it vouched.
    fn agrees(text: &str) -> bool {
        let ours = value_len(text.as_bytes());
        if let Some(n) = ours {
            assert_eq!(serde_len(text), Some(n), "{text:?}");
            // And the value alone is a whole JSON document.
            assert!(
                serde_json::from_str::<&RawValue>(&text[..n]).is_ok(),
                "{text:?}"
            );
        }
        ours.is_some()
    }

    const ACCEPTED: &[&str] = &[
        "null",
        "true",
        "false",
        "0",
        "-0",
        "7",
        "-12",
        "0.5",
        "-0.0e0",
        "1e5",
        "1E+5",
        "1e-5",
        "123456789012345678901234567890",
        "18446744073709551616",
        "-9223372036854775809",
        "1.5e-400",
        "1e999999",
        r#""""#,
        r#""plain""#,
        r#""\u0000\ud83d\ude00\n\"\\\/\b\f\r\t""#,
        r#""\ud800""#,
        r#""\udc00\ud800x""#,
        r#""\uABCD\uabcd""#,
        "\"é 日本 😀 \u{7f}\u{2028}\"",
        "[]",
        "{}",
        "[[]]",
        "[{}]",
        r#"{"a":{}}"#,
        r#"[1,[2,[3,{"a":[{}]}]],"x",null]"#,
        r#"{"":"","a\"b":{"c":[1e5,true]},"[":"{"}"#,
        r#"{"a":1,"a":2}"#,
        r#"{"order":8136,"price_cents":1250,"qty":2,"sku":"SKU-000123"}"#,
        "\"eight by\"",
        "\"a string longer than eight bytes, with \\\"escapes\\\" and more\"",
    ];

    const REFUSED: &[&str] = &[
        "",
        " 1",
        "[ ]",
        "[1 ]",
        "{\"a\" :1}",
        "{\"a\": 1}",
        "[1,\n2]",
        "nul",
        "nulL",
        "tru",
        "fals",
        "True",
        "-",
        "--1",
        "+1",
        "01",
        "-01",
        "00",
        "1.",
        "1.e5",
        ".5",
        "1e",
        "1e+",
        "1E-",
        "x10",
        "NaN",
        "Infinity",
        "\"",
        "\"abc",
        "\"\\\"",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\U0041\"",
        "\"tab\there\"",
        "\"nl\nhere\"",
        "\"\u{1f}\"",
        "\"\0\"",
        "[",
        "]",
        "[1",
        "[1,",
        "[1,]",
        "[,1]",
        "[1,,2]",
        "[1 2]",
        "[1}",
        "{",
        "}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,\"a\":1}",
        "{\"a\":1]",
        "{a:1}",
        "{1:1}",
        "{\"a\"1}",
        "{\"a\":1\"b\":2}",
        "[\"a\":1]",
        "'a'",
    ];

    #[test]
    fn the_scanner_vouches_only_for_what_serde_json_accepts_and_ends_where_it_does() {
        for text in ACCEPTED {
            assert!(agrees(text), "refused {text:?}");
            // Followed by what a record puts after the data: the same value, the same end.
            let followed = format!("{text},\"meta\":{{}}");
            assert!(agrees(&followed), "refused {followed:?}");
            assert_eq!(value_len(followed.as_bytes()), Some(text.len()));
            // Every cut of it: refused, or a shorter value that serde_json takes too.
            for cut in 0..text.len() {
                if let Some(part) = text.get(..cut) {
                    agrees(part);
                }
            }
        }
        for text in REFUSED {
            assert!(!agrees(text), "accepted {text:?}");
        }
        // A number's end is decided by what follows, as serde_json decides it.
        assert_eq!(value_len(b"12,3"), Some(2));
        assert_eq!(value_len(b"0]"), Some(1));
        assert_eq!(value_len(b"[0]x"), Some(3));
        assert_eq!(value_len(b"true1"), Some(4));
        assert_eq!(value_len(b"0x10"), Some(1));
        assert_eq!(serde_len("0x10"), Some(1));
        assert_eq!(serde_len("true1"), Some(4));
    }

    #[test]
    fn deep_values_are_left_to_serde_json() {
        for depth in [1, 2, 50, 98, 99, 100, 101, 127, 128, 129, 200, 1000] {
            for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
                let text = open.repeat(depth) + "1" + &close.repeat(depth);
                assert_eq!(agrees(&text), depth < MAX_DEPTH, "depth {depth}");
                let text = "[".repeat(depth) + &"]".repeat(depth);
                assert_eq!(agrees(&text), depth < MAX_DEPTH, "depth {depth}");
                // Unbalanced: never accepted.
                let text = open.repeat(depth) + "1" + &close.repeat(depth - 1);
                assert!(!agrees(&text));
            }
        }
        // Mixed nesting, 99 levels: the object bits must come back in order.
        let mut text = String::new();
        for i in 0..99 {
            text.push_str(if i % 3 == 0 { "{\"k\":" } else { "[0," });
        }
        text.push('1');
        for i in (0..99).rev() {
            text.push(if i % 3 == 0 { '}' } else { ']' });
        }
        assert!(agrees(&text));
        // A bracket closed by the other kind, at every level.
        for at in 0..99 {
            let bad: String = text
                .char_indices()
                .map(|(i, c)| match (i == text.len() - 1 - at, c) {
                    (true, '}') => ']',
                    (true, ']') => '}',
                    _ => c,
                })
                .collect();
            if bad != text {
                assert!(!agrees(&bad), "{bad}");
            }
        }
    }

    #[test]
    fn strings_end_where_serde_json_ends_them() {
        for text in ACCEPTED.iter().filter(|t| t.starts_with('"')) {
            let (end, _) = string_end(text.as_bytes(), 0).unwrap();
            assert_eq!(end, text.len());
        }
        // Every byte value at every place of a word and of the tail.
        for len in [1, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 40] {
            for at in 0..len {
                // Bytes, not text: every value, the high ones included (none of them special).
                for v in 0..=255u8 {
                    let mut bytes = vec![b'"'];
                    bytes.extend(std::iter::repeat_n(b'a', len));
                    bytes[1 + at] = v;
                    bytes.push(b'"');
                    let want = match v {
                        0..=0x1f | b'\\' => None,
                        b'"' => Some(at + 2),
                        _ => Some(bytes.len()),
                    };
                    assert_eq!(string_end(&bytes, 0).map(|(e, _)| e), want, "{bytes:?}");
                }
                for v in 0..=127u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = v;
                    let text = format!("\"{}\"", String::from_utf8(bytes).unwrap());
                    let ours = string_end(text.as_bytes(), 0).map(|(e, _)| e);
                    let want = match v {
                        0..=0x1f | b'\\' => None,
                        b'"' => Some(at + 2),
                        _ => Some(text.len()),
                    };
                    assert_eq!(ours, want, "{text:?}");
                    if let Some(e) = ours {
                        assert_eq!(serde_len(&text), Some(e));
                    }
                }
            }
        }
    }

    /// Strings that cross 16-byte chunks and 8-byte words, with a special byte at each kind
    /// of place, long ones included.
    #[test]
    fn strings_end_at_the_same_place_whatever_their_length() {
        for len in [
            62, 63, 64, 65, 100, 127, 128, 129, 495, 496, 500, 509, 510, 511, 512, 513, 600, 1000,
        ] {
            for prefix in [0, 1, 15, 16, 17, 63] {
                let places = [0, 1, 14, 15, 16, 47, 48, 62, 63, 64, 65, len / 2, len - 1];
                for at in places.into_iter().filter(|&a| a < len) {
                    for v in [b'"', b'\\', 0x00, 0x1f, b'a', 0x7f, 0xff] {
                        let mut bytes = vec![b'x'; prefix];
                        bytes.push(b'"');
                        bytes.extend(std::iter::repeat_n(b'a', len));
                        bytes[prefix + 1 + at] = v;
                        bytes.push(b'"');
                        bytes.extend_from_slice(b",\"k\":1");
                        let want = match v {
                            // `\\"` escapes the closing quote: the string runs on to `,"`.
                            b'\\' if at == len - 1 => Some(prefix + len + 4),
                            0..=0x1f | b'\\' => None,
                            b'"' => Some(prefix + at + 2),
                            _ => Some(prefix + len + 2),
                        };
                        let ours = string_end(&bytes, prefix).map(|(e, _)| e);
                        assert_eq!(ours, want, "len {len} prefix {prefix} at {at} byte {v}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_raw_value_is_made_without_a_second_parse_and_holds_the_text() {
        for text in ACCEPTED {
            let raw = boxed_raw(text).unwrap();
            assert_eq!(raw.get(), *text);
        }
        // The hand-over through serde_json's raw-value member is what is used, not the
        // fallback: text that is not JSON comes back as it went in.
        assert_eq!(boxed_raw("not json").unwrap().get(), "not json");
    }

    /// Strategy: JSON-ish text from the pieces serde_json's grammar turns on.
    fn jsonish() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "{", "}", "[", "]", ",", ":", "\"", "\"k\"", "\"v\"", "\\", "\\u", "\\ud800", "\\n",
            "0", "1", "9", "-", "+", ".", "e", "E", "true", "false", "null", "tru", " ", "\n",
            "\t", "\u{1}", "é", "😀", "a", "\"\"", "{}", "[]",
        ]);
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn random_text_is_judged_as_serde_json_judges_it(text in jsonish()) {
            agrees(&text);
        }

        #[test]
        fn random_values_are_vouched_for_and_delimited(v in json_values()) {
            let text = serde_json::to_string(&v).unwrap();
            prop_assert!(agrees(&text), "refused {text:?}");
            let followed = format!("{text},\"tags\":[]");
            prop_assert_eq!(value_len(followed.as_bytes()), Some(text.len()));
        }
    }

    /// Strategy: any serde_json value of modest size (compact when written).
    fn json_values() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
