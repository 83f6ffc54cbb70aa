//! Data fidelity: numbers and text in event data and snapshot state are stored exactly as given;
//! metadata numbers are kept exactly or refused (hostile testing, issue 17 item 3).

use std::path::Path;

use eventfile::{Error, ExpectedVersion, NewEvent, Read, RecordedEvent, Store};
use serde_json::value::RawValue;

use crate::support::{all, files_with_ext, small_store};

/// Numbers that a round trip through `serde_json::Value` changes or refuses.
const NUMBERS: [&str; 13] = [
    "18446744073709551616",  // u64::MAX + 1: became 1.8446744073709552e+19
    "100000000000000000001", // became 1e+20
    "-9223372036854775809",  // i64::MIN - 1: lost digits
    "1.5e-400",              // underflows f64: became 0.0
    "1e400",                 // overflows f64: was refused
    "-1e400",                //
    "-0",                    // became -0.0
    "1E+2",                  // became 100.0
    "0.10",                  // became 0.1
    "0.1000000000000000055511151231257827", // became 0.1
    "123456789012345678901234567890.123456789e-5",
    "9007199254740993", // 2^53 + 1: exact as u64, not as f64
    "2.5e-3",
];

fn append_text(store: &Store, stream: &str, text: &str) -> RecordedEvent {
    let event = NewEvent::from_json_str("T", text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let r = store.append(stream, ExpectedVersion::Any, [event]).unwrap();
    store.get_seq(r.first_seq)
}

trait GetSeq {
    fn get_seq(&self, seq: u64) -> RecordedEvent;
}

impl GetSeq for Store {
    fn get_seq(&self, seq: u64) -> RecordedEvent {
        self.read_all(Read::forward().from(seq).limit(1))
            .unwrap()
            .next()
            .expect("the event just appended")
            .unwrap()
    }
}

/// Every data text, read back now and after reopening, is byte for byte what was appended.
fn assert_kept(dir: &Path, texts: &[String]) {
    let store = small_store(dir, 1 << 20);
    for t in texts {
        let e = append_text(&store, "s", t);
        assert_eq!(e.data.get(), t);
        assert!(e.to_json().contains(&format!(r#""data":{t},"meta""#)));
    }
    store.close().unwrap();
    for _ in 0..2 {
        let store = small_store(dir, 1 << 20);
        let read: Vec<String> = all(&store)
            .iter()
            .map(|e| e.data.get().to_owned())
            .collect();
        assert_eq!(&read, texts);
    }
}

#[test]
fn data_numbers_read_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut texts = Vec::new();
    for n in NUMBERS {
        texts.push(n.to_owned());
        texts.push(format!(r#"{{"x":{n}}}"#));
        texts.push(format!("[{n},{n},[{n}]]"));
    }
    texts.push(format!("[{}]", NUMBERS.join(",")));
    assert_kept(dir.path(), &texts);
}

#[test]
fn big_nested_arrays_keep_every_digit() {
    let dir = tempfile::tempdir().unwrap();
    let row: Vec<String> = (0..200u64)
        .map(|i| format!("{}{:020}", i + 1, i * 7919))
        .collect();
    let mut nested = format!("[{}]", row.join(","));
    // Two levels per step: 121 in all, within the 127 that serde_json reads back.
    for depth in 0..60 {
        let n = format!("-{}.{depth}1e-{depth}0", depth + 1);
        nested = format!(r#"{{"level":{depth},"n":{n},"inner":[{nested}]}}"#);
    }
    assert_kept(dir.path(), &[nested]);
}

#[test]
fn pretty_printed_data_becomes_one_line_and_strings_are_untouched() {
    let given = concat!(
        "\r\n {\n",
        "\t\"text\" : \"two  spaces, a\\ttab\\nescaped newline\" ,\n",
        "  \"quote\": \"say \\\"hi\\\" \" ,\n",
        "  \"backslash\": \"\\\\\" , \"both\": \"\\\\\\\"\",\n",
        "  \"unicode\": [\"é 😀 日本\", \"\\u00e9 \\ud83d\\ude00\", \"\\u0020 \\/\"] ,\n",
        "  \"amount\" : 100000000000000000001 ,\n",
        "  \"empty\" : { } , \"none\" : [ ] , \"flags\" : [ true , false , null ]\n",
        "}\n\n",
    );
    let expected = concat!(
        "{\"text\":\"two  spaces, a\\ttab\\nescaped newline\",",
        "\"quote\":\"say \\\"hi\\\" \",",
        "\"backslash\":\"\\\\\",\"both\":\"\\\\\\\"\",",
        "\"unicode\":[\"é 😀 日本\",\"\\u00e9 \\ud83d\\ude00\",\"\\u0020 \\/\"],",
        "\"amount\":100000000000000000001,",
        "\"empty\":{},\"none\":[],\"flags\":[true,false,null]}",
    );
    let e = NewEvent::from_json_str("T", given).unwrap();
    assert_eq!(e.data_json(), expected);

    let dir = tempfile::tempdir().unwrap();
    assert_kept(dir.path(), &[expected.to_owned()]);
    // One record per line: the header and the event.
    let segments = files_with_ext(dir.path(), "jsonl");
    let text = std::fs::read_to_string(&segments[0]).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    // The decoded strings are the ones given.
    let store = small_store(dir.path(), 1 << 20);
    let v = all(&store)[0].data_value();
    assert_eq!(v["text"], "two  spaces, a\ttab\nescaped newline");
    assert_eq!(v["both"], "\\\"");
    assert_eq!(v["unicode"][1], "é 😀");
}

#[test]
fn data_that_serde_json_could_not_read_back_is_refused() {
    // Nesting: serde_json reads at most 127 levels, as `from_json_str` did before.
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(NewEvent::from_json_str("T", &deep(127)).is_ok());
    let err = NewEvent::from_json_str("T", &deep(128)).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("127"), "{err}");
    // A lone surrogate is not a character: no string could be decoded from it.
    for text in [r#""\ud800""#, r#"["\udc00x"]"#, r#"{"\ud83dx":1}"#] {
        let err = NewEvent::from_json_str("T", text).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{text}: {err}");
    }
    // Malformed text stays a JSON error, trailing garbage too.
    for text in [
        "", " ", "{", "[1,]", "01", "1.", ".5", "1e", "+1", "NaN", "1 2", "\"\n\"",
    ] {
        let err = NewEvent::from_json_str("T", text).unwrap_err();
        assert!(matches!(err, Error::Json(_)), "{text:?}: {err}");
    }
}

/// A `RawValue` inside a serialised value is written as it is; a pretty-printed one must not
/// split the record over two lines.
#[test]
fn raw_values_with_newlines_are_stored_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let raw = RawValue::from_string("{\n  \"a\" : \"x y\",\n  \"n\": 1e400\n}".into()).unwrap();
    let store = small_store(dir.path(), 1 << 20);
    let e = NewEvent::serialize("T", &[&raw]).unwrap();
    assert_eq!(e.data_json(), r#"[{"a":"x y","n":1e400}]"#);
    store.append("s", ExpectedVersion::Any, [e]).unwrap();
    store.close().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    let events = all(&store);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data.get(), r#"[{"a":"x y","n":1e400}]"#);
}

#[test]
fn snapshot_state_keeps_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    append_text(&store, "s", "{}");
    let state = format!("{{\"n\":[{}]}}", NUMBERS.join(","));
    let raw = RawValue::from_string(state.clone()).unwrap();
    store.save_snapshot("s", 1, &raw).unwrap();
    store.close().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    let snap = store.load_snapshot("s").unwrap().unwrap();
    assert_eq!(snap.state.get(), state);
}
