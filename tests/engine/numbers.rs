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

fn meta_json(text: &str) -> eventfile::Result<NewEvent> {
    NewEvent::new("T", serde_json::json!({})).with_meta_json(text)
}

#[test]
fn metadata_numbers_that_would_change_are_refused() {
    for n in [
        "18446744073709551616",
        "100000000000000000001",
        "-9223372036854775809",
        "1e400",
        "-1e400",
        "1.5e-400",
        "0.1000000000000000055511151231257827",
        "9007199254740993.0",
    ] {
        let err = meta_json(&format!(r#"{{"actor":"ann","amount":{n}}}"#)).unwrap_err();
        match &err {
            Error::InvalidInput { what, reason } => {
                assert_eq!(*what, "metadata");
                assert!(reason.contains(&format!("{n} at `amount`")), "{err}");
                assert!(reason.contains("cannot be stored exactly"), "{err}");
                assert!(reason.contains(&format!("\"{n}\"")), "{err}");
            }
            other => panic!("{n}: {other}"),
        }
    }
    let err = meta_json(r#"{"order":{"lines":[{"price":1},{"price":1e400}]}}"#).unwrap_err();
    assert!(
        err.to_string().contains("at `order.lines[1].price`"),
        "{err}"
    );
    // As a string, the same digits are kept.
    let e = meta_json(r#"{"amount":"100000000000000000001"}"#).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    store.append("s", ExpectedVersion::Any, [e]).unwrap();
    assert_eq!(all(&store)[0].meta["amount"], "100000000000000000001");
}

#[test]
fn metadata_must_be_a_json_object() {
    for (text, kind) in [
        ("[1]", "an array"),
        ("\"x\"", "a string"),
        ("1", "a number"),
        ("null", "null"),
        ("true", "a boolean"),
    ] {
        let err = meta_json(text).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{text}: {err}");
        assert!(err.to_string().contains(kind), "{text}: {err}");
    }
    assert!(matches!(meta_json("{\"a\":"), Err(Error::Json(_))));
    assert!(matches!(meta_json("{} {}"), Err(Error::Json(_))));
}

#[test]
fn metadata_numbers_that_fit_read_back_the_same() {
    let text = concat!(
        r#"{"u":18446744073709551615,"i":-9223372036854775808,"zero":0,"neg_zero":-0,"#,
        r#""rate":0.1,"one":1.0,"hundred":1e2,"half":-0.5,"tenth":0.10,"#,
        r#""tiny":5e-324,"max":1.7976931348623157e308,"odd":985.6906946328695,"#,
        r#""nested":{"a":[1,2.5,{"b":-3}]},"actor":"ann"}"#,
    );
    let given: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    {
        let store = small_store(dir.path(), 1 << 20);
        let e = meta_json(text).unwrap();
        store.append("s", ExpectedVersion::Any, [e]).unwrap();
        store.close().unwrap();
    }
    let store = small_store(dir.path(), 1 << 20);
    let e = &all(&store)[0];
    assert_eq!(e.meta, given);
    assert_eq!(e.meta["u"].as_u64(), Some(u64::MAX));
    assert_eq!(e.meta["i"].as_i64(), Some(i64::MIN));
    assert_eq!(e.meta["rate"].as_f64(), Some(0.1));
    assert_eq!(e.meta["hundred"].as_f64(), Some(100.0));
    assert_eq!(e.meta["tiny"].as_f64(), Some(5e-324));
    assert_eq!(e.meta["odd"].as_f64(), Some(985.690_694_632_869_5));
    assert!(e.meta["neg_zero"].as_f64().unwrap().is_sign_negative());
    let json = e.to_json();
    assert!(json.contains(r#""u":18446744073709551615"#), "{json}");
    assert!(json.contains(r#""odd":985.6906946328695"#), "{json}");
}

/// serde_json's default float parser can land one ULP off; metadata f64s must come back with
/// the same bits (the `float_roundtrip` feature).
#[test]
fn metadata_f64_values_read_back_bit_for_bit() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut values = vec![985.690_694_632_869_5, 212.918_907_267_134_6, 0.1, -1e-300];
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let f = f64::from_bits(x);
        if f.is_finite() {
            values.push(f);
        }
        values.push((x >> 11) as f64 / (1u64 << 53) as f64 * 1000.0);
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = small_store(dir.path(), 1 << 22);
        let events = values
            .iter()
            .map(|&f| NewEvent::new("T", serde_json::json!({})).with_meta_entry("x", f));
        store.append("s", ExpectedVersion::Any, events).unwrap();
        store.close().unwrap();
    }
    let store = small_store(dir.path(), 1 << 22);
    let read = all(&store);
    assert_eq!(read.len(), values.len());
    for (e, f) in read.iter().zip(&values) {
        let got = e.meta["x"].as_f64().unwrap();
        assert_eq!(got.to_bits(), f.to_bits(), "{f:e} read back as {got:e}");
        let text = serde_json::to_string(f).unwrap();
        assert!(meta_json(&format!(r#"{{"x":{text}}}"#)).is_ok(), "{text}");
    }
}

/// The same bound for data built in code (`NewEvent::new` of a `Value`, `NewEvent::serialize`):
/// nothing the parser would not read back is written. Such data was appended, and every read
/// of the record failed afterwards.
#[test]
fn data_built_in_code_too_deep_to_read_back_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    let nested = |n: usize| {
        let mut v = serde_json::json!([]);
        for _ in 1..n {
            v = serde_json::json!([v]);
        }
        v
    };
    store
        .append("s", ExpectedVersion::Any, [NewEvent::new("T", nested(127))])
        .unwrap();
    // `new` cannot fail: the append refuses it. `serialize` refuses it itself.
    let refused = [
        store
            .append("s", ExpectedVersion::Any, [NewEvent::new("T", nested(128))])
            .unwrap_err(),
        NewEvent::serialize("T", &nested(200)).unwrap_err(),
    ];
    for err in refused {
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains("127"), "{err}");
    }
    store.close().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    let events = all(&store);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data.get(), nested(127).to_string());
}
