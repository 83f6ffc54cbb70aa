//! JSON text from callers: checked, put on one line, and its numbers left alone.
//!
//! Event data and snapshot state are stored as the caller's own text. A record is one line, so
//! whitespace outside strings is removed; no other byte changes. Nothing here re-encodes text
//! through `serde_json::Value`, which would round every number to an `i64`, `u64` or `f64`.
//!
//! Metadata is different: the public API hands it back as `serde_json::Value`, so a metadata
//! number is kept only if it reads back as the same number, and [`check_numbers`] refuses the
//! others rather than store a changed amount.
//!
//! The scanners here run on text that serde_json has already accepted as one JSON value; they
//! never panic on any input.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// How deeply serde_json nests arrays and objects when it decodes: text nested deeper could be
/// stored but never read back as a `Value` or a Rust type.
pub(crate) const MAX_DEPTH: usize = 127;

/// Whether JSON `text` (already accepted by serde_json, as its own serialiser's output is)
/// could not be read back: nested deeper than [`MAX_DEPTH`] (or, from a `RawValue` inside it,
/// a string escaping half of a surrogate pair). The scan [`one_line`] checks with.
pub(crate) fn nests_too_deep(text: &str) -> bool {
    compact(text, true).is_err()
}

/// The refusal of `what` nested deeper than [`MAX_DEPTH`].
pub(crate) fn too_deep(what: &'static str) -> Error {
    Error::invalid(
        what,
        format!(
            "arrays and objects nest deeper than {MAX_DEPTH} levels; serde_json could not read it back"
        ),
    )
}

/// Checks that `text` is one JSON value that can be stored and read back, and returns it on one
/// line: whitespace outside strings removed, every other byte as given. `what` names the input
/// in errors (`event data`, `JSON`).
///
/// Malformed text is an [`Error::Json`]. Well-formed text that serde_json could not decode again
/// is an [`Error::InvalidInput`]: nesting deeper than [`MAX_DEPTH`], or a string escaping half
/// of a UTF-16 surrogate pair (`"\ud800"`). Numbers are not converted, so any number is kept.
pub(crate) fn one_line(what: &'static str, text: &str) -> Result<Box<RawValue>> {
    // Checks the syntax only: a RawValue scans numbers without converting them. This must come
    // first: removing whitespace could join tokens of malformed text (`1 2`) into valid JSON.
    let raw: &RawValue = serde_json::from_str(text)?;
    match compact(raw.get(), true).map_err(|reason| Error::invalid(what, reason))? {
        Cow::Borrowed(_) => Ok(raw.to_owned()),
        Cow::Owned(shorter) => Ok(RawValue::from_string(shorter)?),
    }
}

/// Whether `text` is one JSON value that [`one_line`] accepts and leaves as it is (no
/// whitespace outside strings), without copying it: an import checks every event's data so.
/// Malformed or undecodable text is refused as by [`one_line`].
pub(crate) fn is_one_line(what: &'static str, text: &str) -> Result<bool> {
    let raw: &RawValue = serde_json::from_str(text)?;
    match compact(raw.get(), true).map_err(|reason| Error::invalid(what, reason))? {
        Cow::Borrowed(kept) => Ok(kept.len() == text.len()),
        Cow::Owned(_) => Ok(false),
    }
}

/// Puts serialiser output on one line. serde_json writes compact JSON, except that a `RawValue`
/// inside the serialised value is written as it is, pretty-printed or not; a newline in it would
/// split the record in two, and recovery would cut the event off as a torn tail.
pub(crate) fn one_line_raw(raw: Box<RawValue>) -> Result<Box<RawValue>> {
    if memchr::memchr2(b'\n', b'\r', raw.get().as_bytes()).is_none() {
        return Ok(raw);
    }
    match compact(raw.get(), false) {
        Ok(Cow::Owned(shorter)) => Ok(RawValue::from_string(shorter)?),
        // Not reached: a raw newline can only be whitespace (strings escape it), and without
        // `check` nothing is refused.
        Ok(Cow::Borrowed(_)) | Err(_) => Ok(raw),
    }
}

/// Removes whitespace outside strings from valid JSON `text`, copying every other byte. With
/// `check`, also refuses what serde_json could not decode again (see [`one_line`]).
fn compact(text: &str, check: bool) -> std::result::Result<Cow<'_, str>, String> {
    let bytes = text.as_bytes();
    // Allocated at the first byte removed; `text[..copied]` is accounted for in it.
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {
                // Whitespace is ASCII, so `i` and `i + 1` are character boundaries.
                let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
                out.push_str(&text[copied..i]);
                copied = i + 1;
            }
            b'[' | b'{' => {
                depth += 1;
                if check && depth > MAX_DEPTH {
                    return Err(format!(
                        "arrays and objects nest deeper than {MAX_DEPTH} levels at byte {i}; \
                         serde_json could not read it back"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'"' => {
                let (end, has_u_escape) = string_end(bytes, i);
                if check && has_u_escape {
                    check_string(&text[i..end], i)?;
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
    })
}

/// The string literal starting at `bytes[start]` (a `"`): the index just past its closing quote
/// (or the end of the text), and whether it holds a `\u` escape.
fn string_end(bytes: &[u8], start: usize) -> (usize, bool) {
    let mut has_u_escape = false;
    let mut i = start + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return (i + 1, has_u_escape),
            b'\\' => {
                has_u_escape |= bytes.get(i + 1) == Some(&b'u');
                i += 2;
            }
            _ => i += 1,
        }
    }
    (bytes.len(), has_u_escape)
}

/// Refuses a string literal with a `\u` escape that does not decode to text: one half of a
/// surrogate pair on its own. serde_json, which the store and `decode` read with, refuses it.
fn check_string(literal: &str, at: usize) -> std::result::Result<(), String> {
    match serde_json::from_str::<String>(literal) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "the string at byte {at} escapes half of a surrogate pair (\\uD800-\\uDFFF) on its \
             own, so it does not decode to text"
        )),
    }
}

/// Where a number sits in the metadata object, for the error message: `amount`, `lines[2].price`.
enum Frame {
    /// In an object, after this key (`None` until the key is read).
    Object(Option<String>),
    /// In an array, at this index.
    Array(usize),
}

fn path(stack: &[Frame]) -> String {
    let mut s = String::new();
    for frame in stack {
        match frame {
            Frame::Object(Some(key)) if s.is_empty() => s.push_str(key),
            Frame::Object(Some(key)) => {
                s.push('.');
                s.push_str(key);
            }
            Frame::Object(None) => {}
            Frame::Array(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Refuses a number in the metadata text (valid JSON) that would not read back as the same
/// number, naming where it is. Metadata is decoded as `serde_json::Value`, so a number is kept
/// exactly if it is an integer that fits `i64` or `u64`, or a fraction or exponent whose `f64`
/// prints back as the same decimal value (`0.1`, `1e2`, `-0.5`, not `1e400`, `1.5e-400` or
/// `0.1000000000000000055511151231257827`).
pub(crate) fn check_numbers(text: &str) -> Result<()> {
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'{' => stack.push(Frame::Object(None)),
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => drop(stack.pop()),
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object(key)) => *key = None,
                None => {}
            },
            b'"' => {
                let (end, _) = string_end(bytes, i);
                if let Some(Frame::Object(key @ None)) = stack.last_mut() {
                    let literal = &text[i..end];
                    *key = Some(serde_json::from_str(literal).unwrap_or_else(|_| literal.into()));
                }
                i = end;
                continue;
            }
            b'-' | b'0'..=b'9' => {
                let len = bytes[i..]
                    .iter()
                    .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .unwrap_or(bytes.len() - i);
                let token = &text[i..i + len];
                if !reads_back_exactly(token) {
                    return Err(Error::invalid(
                        "metadata",
                        format!(
                            "the number {token} at `{}` cannot be stored exactly: metadata \
                             numbers must fit a 64-bit integer or read back as the same f64; \
                             store it as a string (\"{token}\") or put it in the event data, \
                             which keeps numbers as given",
                            path(&stack)
                        ),
                    ));
                }
                i += len;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Whether the number `token` reads back through `serde_json::Value` as the same number.
fn reads_back_exactly(token: &str) -> bool {
    // The same parse `Value` does; out of f64's range it fails.
    let Ok(n) = serde_json::from_str::<serde_json::Number>(token) else {
        return false;
    };
    if !token.contains(['.', 'e', 'E']) {
        // An integer outside i64 and u64 would come back as a float: refused, except `-0`,
        // which serde_json reads as the float -0.0, the same number.
        return n.is_i64() || n.is_u64() || token == "-0";
    }
    decimal(token) == decimal(&n.to_string())
}

/// A decimal number's value in a normal form: its sign, its significant digits (no leading or
/// trailing zeros) and the exponent `e` such that the value is `0.DIGITS × 10^e`. Zero has no
/// digits and exponent 0. `token` is a JSON number (or serde_json's printing of one: `1e+20`).
fn decimal(token: &str) -> (bool, String, i128) {
    let (negative, unsigned) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let (mantissa, exponent) = unsigned.split_once(['e', 'E']).unwrap_or((unsigned, "0"));
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = int.chars().chain(frac.chars()).collect();
    let without_leading = digits.trim_start_matches('0');
    let significant = without_leading.trim_end_matches('0');
    if significant.is_empty() {
        return (negative, String::new(), 0);
    }
    let leading = digits.len() - without_leading.len();
    // Saturating: a thousand-digit exponent must not wrap around to a plausible one.
    let point = i128::try_from(int.len())
        .unwrap_or(i128::MAX)
        .saturating_sub(i128::try_from(leading).unwrap_or(i128::MAX));
    (
        negative,
        significant.to_owned(),
        exponent_value(exponent).saturating_add(point),
    )
}

/// The value of an exponent's text (`-7`, `+20`, `400`), saturating.
fn exponent_value(text: &str) -> i128 {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0i128, |v, d| {
            v.saturating_mul(10).saturating_add(i128::from(d - b'0'))
        });
    if negative { -magnitude } else { magnitude }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> String {
        one_line("JSON", text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .get()
            .to_owned()
    }

    #[test]
    fn whitespace_goes_only_outside_strings() {
        assert_eq!(one(" {\n\t\"a b\" :\r\n [ 1 , 2 ] }\n"), r#"{"a b":[1,2]}"#);
        assert_eq!(one("\"  \""), "\"  \"");
        assert_eq!(one("[ \"\\\\\" , \"x\" ]"), r#"["\\","x"]"#);
        assert_eq!(one("[ \"\\\"\" , \" \" ]"), r#"["\""," "]"#);
        assert_eq!(one("[ \"\\\\\\\" \" , 1 ]"), r#"["\\\" ",1]"#);
        assert_eq!(
            one(r#"[ "\\" , "\"", "a\"b\\" ]"#),
            r#"["\\","\"","a\"b\\"]"#
        );
        assert_eq!(
            one("{ \"é\" : \"日本 😀 \\u00e9\\ud83d\\ude00\" }"),
            "{\"é\":\"日本 😀 \\u00e9\\ud83d\\ude00\"}"
        );
        assert_eq!(one("\"\u{2028} \u{a0}\""), "\"\u{2028} \u{a0}\"");
        // Non-ASCII whitespace outside strings is not JSON whitespace: serde_json refuses it.
        assert!(one_line("JSON", "[1,\u{a0}2]").is_err());
    }

    #[test]
    fn compact_text_is_told_apart_without_a_copy() {
        for text in [r#"{"a":[1,"x y"]}"#, "1e400", r#""\\u00e9""#] {
            assert!(is_one_line("JSON", text).unwrap(), "{text}");
        }
        for text in [" 1", "[1, 2]", "{\"a\":\n1}", "1\n"] {
            assert!(!is_one_line("JSON", text).unwrap(), "{text:?}");
        }
        assert!(matches!(is_one_line("JSON", "[1,]"), Err(Error::Json(_))));
        assert!(matches!(
            is_one_line("JSON", r#""\ud800""#),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn numbers_and_compact_text_are_untouched() {
        for text in [
            "1e400",
            "-0",
            "[1E+2,0.10,18446744073709551616,-9223372036854775809,1.5e-400]",
            r#"{"a":{"b":[true,false,null,"",{}]}}"#,
        ] {
            assert_eq!(one(text), text);
            assert_eq!(one(&format!("  {text}\n")), text);
        }
    }

    #[test]
    fn malformed_text_is_refused_before_whitespace_could_join_it() {
        for text in [
            "1 2",
            "tru e",
            "- 1",
            "1 .5",
            "{\"a\":1} x",
            "[1,]",
            "\"a\nb\"",
        ] {
            assert!(
                matches!(one_line("JSON", text), Err(Error::Json(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn text_serde_json_cannot_decode_is_refused() {
        let deep = |n| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(one_line("JSON", &deep(MAX_DEPTH)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&deep(MAX_DEPTH)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&deep(MAX_DEPTH + 1)).is_err());
        let err = one_line("JSON", &deep(MAX_DEPTH + 1)).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        for text in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#"["\ud800\u0041"]"#,
            r#"{"\udfff":1}"#,
        ] {
            let err = one_line("JSON", text).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{text}: {err}");
        }
        assert!(one_line("JSON", r#""\ud83d\ude00 \u0000 \\ud800""#).is_ok());
    }

    #[test]
    fn serialiser_output_is_made_one_line() {
        let raw = RawValue::from_string("[ {\n \"a\" : \" x \" } ]".into()).unwrap();
        assert_eq!(one_line_raw(raw).unwrap().get(), r#"[{"a":" x "}]"#);
        let raw = RawValue::from_string("[ 1 ]".into()).unwrap();
        assert_eq!(one_line_raw(raw).unwrap().get(), "[ 1 ]");
    }

    #[test]
    fn decimals_compare_by_value() {
        let d = |t| decimal(t);
        assert_eq!(d("1e2"), d("100.0"));
        assert_eq!(d("1E+2"), d("100"));
        assert_eq!(d("0.10"), d("0.1"));
        assert_eq!(d("00.0012e3"), d("1.2"));
        assert_eq!(d("1e+20"), d("100000000000000000000"));
        assert_eq!(d("-0"), d("-0.0"));
        assert_ne!(d("-0"), d("0"));
        assert_ne!(d("0.1"), d("0.01"));
        assert_ne!(d("1.5e-400"), d("0.0"));
        assert_eq!(d("0e99999999999999999999999999999999999999999999"), d("0"));
        assert_ne!(
            d("1e99999999999999999999999999999999999999999999"),
            d("1e308")
        );
    }

    #[test]
    fn metadata_numbers_are_kept_exactly_or_refused() {
        for ok in [
            "0",
            "-0",
            "1",
            "-1",
            "0.1",
            "1.0",
            "1e2",
            "1E+2",
            "-0.5",
            "0.10",
            "2.5e-3",
            "18446744073709551615",
            "-9223372036854775808",
            "5e-324",
            "1.7976931348623157e308",
            "985.6906946328695",
            "0e400",
        ] {
            assert!(reads_back_exactly(ok), "{ok}");
        }
        for refused in [
            "18446744073709551616",
            "100000000000000000001",
            "100000000000000000000",
            "-9223372036854775809",
            "1e400",
            "-1e400",
            "1.5e-400",
            "0.1000000000000000055511151231257827",
            "9007199254740993.0",
        ] {
            assert!(!reads_back_exactly(refused), "{refused}");
        }
    }

    #[test]
    fn a_refused_metadata_number_is_named_by_its_place() {
        let err = |text: &str| check_numbers(text).unwrap_err().to_string();
        let e = err(r#"{"n":100000000000000000001}"#);
        assert!(e.contains("100000000000000000001 at `n`"), "{e}");
        assert!(e.contains("string"), "{e}");
        let e = err(r#"{"a":"x,y","b":{"c":[1,{"d":"]"},[2,1e400]]}}"#);
        assert!(e.contains("1e400 at `b.c[2][1]`"), "{e}");
        let e = err(r#"{"a":{"x":1},"b\"q":-1.5e-400}"#);
        assert!(e.contains("at `b\"q`"), "{e}");
        assert!(check_numbers(r#"{"a":[0.1,-0,{"b":1e2}],"c":"1e400"}"#).is_ok());
    }
}
