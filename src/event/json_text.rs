//! JSON text from callers: checked, put on one line, and its numbers left alone.
//!
//! Event data and snapshot state are stored as the caller's own text. A record is one line, so
//! whitespace outside strings is removed; no other byte changes. Nothing here re-encodes text
//! through `serde_json::Value`, which would round every number to an `i64`, `u64` or `f64`.
//!
//! The scanners here run on text that serde_json has already accepted as one JSON value; they
//! never panic on any input.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// How deeply serde_json nests arrays and objects when it decodes: text nested deeper could be
/// stored but never read back as a `Value` or a Rust type.
pub(crate) const MAX_DEPTH: usize = 127;

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
                let (end, escapes_code_unit) = string_end(bytes, i);
                if check && escapes_code_unit {
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
    let mut escapes_code_unit = false;
    let mut i = start + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return (i + 1, escapes_code_unit),
            b'\\' => {
                escapes_code_unit |= bytes.get(i + 1) == Some(&b'u');
                i += 2;
            }
            _ => i += 1,
        }
    }
    (bytes.len(), escapes_code_unit)
}

/// Refuses a string literal with a `\u` escape that does not decode to text: one half of a
/// surrogate pair on its own. serde_json, which every reader decodes with, refuses it.
fn check_string(literal: &str, at: usize) -> std::result::Result<(), String> {
    match serde_json::from_str::<String>(literal) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "the string at byte {at} does not decode to text ({e}); \
             a \\uD800-\\uDFFF escape must be half of a surrogate pair"
        )),
    }
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
}
