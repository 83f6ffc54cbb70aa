//! Bad input: every refusal is `InvalidInput` (naming what was wrong, through the library's
//! `validate_*` names) before anything is written, by every method that takes the input; the
//! log is left exactly as it was.

use eventfile::{
    AppendRequest, DEFAULT_MAX_EVENT_BYTES, Error, ErrorKind, EventStore, ExpectedVersion::*,
    LIFECYCLE_STREAM, MAX_NAME_BYTES, NewEvent, Query, Read, StreamAppend,
};
use serde_json::json;
use serde_json::value::RawValue;

use crate::Factory;
use crate::support::*;

/// Tries `events` on `stream` by every way of appending (alone, as one part of a multi-stream
/// append, through a request with a key) and checks each is refused as invalid `what`.
#[track_caller]
fn refused_everywhere(s: &dyn EventStore, stream: &str, events: Vec<NewEvent>, what: &str) {
    assert_invalid(s.append(stream, Any, events.clone()), what);
    assert_invalid(
        s.append_multi(&[
            StreamAppend::new("fine", Any, [ev("T", 1)]),
            StreamAppend::new(stream, Any, events.clone()),
        ]),
        what,
    );
    assert_invalid(
        s.append_request(AppendRequest::new(stream, Any, events).key("k-bad")),
        what,
    );
}

/// Names that are empty, too long (in bytes, not characters) or hold control characters are
/// refused wherever they are given: stream names, event types, tags, ids, idempotency keys,
/// indexed metadata. The longest allowed name is accepted.
pub fn bad_names_are_refused_and_nothing_is_written(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "s", 0);
    let before = all(&*s);
    let long = "x".repeat(MAX_NAME_BYTES + 1);
    // 129 two-byte characters: 258 bytes.
    let wide = "é".repeat(MAX_NAME_BYTES / 2 + 1);
    let bad_texts = [
        "",
        long.as_str(),
        wide.as_str(),
        "a\nb",
        "a\u{7}b",
        "\u{0}",
        "tab\t",
    ];
    for bad in bad_texts {
        refused_everywhere(&*s, bad, vec![ev("T", 1)], "stream name");
        refused_everywhere(&*s, "s", vec![ev(bad, 1)], "event type");
        refused_everywhere(&*s, "s", vec![ev("T", 1).with_id(bad)], "event id");
        let tag = format!("k={bad}");
        if !bad.is_empty() {
            refused_everywhere(&*s, "s", vec![ev("T", 1).with_tag(tag)], "tag");
        }
        assert_invalid(
            s.append_request(AppendRequest::new("s", Any, [ev("T", 1)]).key(bad)),
            "idempotency key",
        );
        assert_invalid(s.truncate_stream(bad, 1), "stream name");
        assert_invalid(s.delete_stream(bad, Any), "stream name");
        assert_invalid(s.tombstone_stream(bad, Any), "stream name");
    }
    for tag in ["", "no-equals", "=value", "=", "k\n=v"] {
        refused_everywhere(&*s, "s", vec![ev("T", 1).with_tag(tag)], "tag");
    }
    // A bad event anywhere in a batch refuses the whole batch.
    refused_everywhere(
        &*s,
        "s",
        vec![ev("T", 1), ev("T", 2), ev("", 3)],
        "event type",
    );
    refused_everywhere(
        &*s,
        "s",
        vec![ev("T", 1), ev("T", 2).with_tag("bad")],
        "tag",
    );
    assert_unchanged(&*s, &before);

    // The longest names are fine, counted in bytes.
    let max = "x".repeat(MAX_NAME_BYTES);
    let max_wide = "é".repeat(MAX_NAME_BYTES / 2);
    let e = ev(&max, 1)
        .with_id(max_wide.clone())
        .with_tag(format!("k={}", "v".repeat(MAX_NAME_BYTES - 2)))
        .with_meta_entry("actor", max.clone());
    let r = s
        .append_request(AppendRequest::new(max_wide.clone(), NoStream, [e]).key(max.clone()))
        .unwrap();
    let got = stream(&*s, &max_wide, Read::forward());
    assert_eq!((got.len(), r.first_seq), (1, 2));
    assert_eq!(
        (got[0].id.as_str(), got[0].event_type.as_str()),
        (max_wide.as_str(), max.as_str())
    );
}

/// An append with no streams, or a stream with no events, is refused, however it is made.
pub fn empty_appends_are_refused(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "s", 0);
    let before = all(&*s);
    assert_invalid(s.append("s", Any, Vec::new()), "append");
    assert_invalid(s.append("new", NoStream, Vec::new()), "append");
    assert_invalid(s.append_multi(&[]), "append");
    assert_invalid(
        s.append_multi(&[
            StreamAppend::new("a", Any, [ev("T", 1)]),
            StreamAppend::new("b", Any, Vec::<NewEvent>::new()),
        ]),
        "append",
    );
    assert_invalid(s.append_request(AppendRequest::multi([])), "append");
    assert_invalid(
        s.append_request(AppendRequest::multi([]).key("k")),
        "append",
    );
    assert_invalid(
        s.append_request(AppendRequest::new("s", Any, Vec::<NewEvent>::new()).key("k")),
        "append",
    );
    assert_unchanged(&*s, &before);
    assert_eq!(version(&*s, "a"), 0);
}

/// An event over the store's size limit ([`DEFAULT_MAX_EVENT_BYTES`] encoded, the file store's
/// default) is refused, alone or in a batch, with [`Error::EventTooLarge`] (an `InvalidInput`);
/// a large event under the limit is kept whole.
pub fn an_event_over_the_size_limit_is_refused(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "s", 0);
    let before = all(&*s);
    let huge = NewEvent::new(
        "Huge",
        json!({ "blob": "x".repeat(DEFAULT_MAX_EVENT_BYTES) }),
    );
    let check = |e: Error| {
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        match e {
            Error::EventTooLarge {
                event_type, size, ..
            } => {
                assert_eq!(event_type, "Huge");
                assert!(size > DEFAULT_MAX_EVENT_BYTES, "{size}");
            }
            other => panic!("expected EventTooLarge, got {other:?}"),
        }
    };
    check(err(s.append("s", Any, vec![huge.clone()])));
    check(err(s.append(
        "s",
        Any,
        vec![ev("T", 1), huge.clone(), ev("T", 2)],
    )));
    check(err(s.append_multi(&[
        StreamAppend::new("a", Any, [ev("T", 1)]),
        StreamAppend::new("b", Any, [huge]),
    ])));
    assert_unchanged(&*s, &before);
    // 8 KiB of data is well within any store's limit.
    let blob = "y".repeat(8 * 1024);
    append(
        &*s,
        "s",
        vec![NewEvent::new("Big", json!({ "blob": blob }))],
    );
    let got = stream(&*s, "s", Read::backward().limit(1)).remove(0);
    assert_eq!(got.data_value()["blob"].as_str(), Some(blob.as_str()));
}

/// Streams named with the store's `$` prefix are read-only to callers: every write to one is
/// refused (appends, multi-stream parts, deletions), while reading and querying them work.
pub fn reserved_stream_names_refuse_appends(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "s", 0);
    s.truncate_stream("s", 2).unwrap();
    let before = all(&*s);
    for name in [LIFECYCLE_STREAM, "$", "$mine", "$lifecycle-2"] {
        refused_everywhere(&*s, name, vec![ev("T", 1)], "stream name");
        assert_invalid(s.truncate_stream(name, 1), "stream name");
        assert_invalid(s.delete_stream(name, Any), "stream name");
        assert_invalid(s.tombstone_stream(name, Any), "stream name");
    }
    assert_unchanged(&*s, &before);
    // Reading is fine.
    assert_eq!(stream(&*s, LIFECYCLE_STREAM, Read::forward()).len(), 1);
    assert_eq!(s.count(&Query::new().stream(LIFECYCLE_STREAM)).unwrap(), 1);
    assert!(stream(&*s, "$mine", Read::forward()).is_empty());
    // A name with a `$` elsewhere is an ordinary name.
    assert_eq!(append(&*s, "price-$5", vec![ev("T", 1)]).version, 1);
}

/// The indexed metadata keys (`correlation_id`, `causation_id`, `actor`) must be strings of 1
/// to 256 bytes without control characters; other metadata may be any JSON.
pub fn indexed_metadata_must_be_short_strings(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "s", 0);
    let before = all(&*s);
    let long = "m".repeat(MAX_NAME_BYTES + 1);
    for key in eventfile::INDEXED_META_KEYS {
        for bad in [
            json!(5),
            json!(null),
            json!(true),
            json!(["a"]),
            json!({"a": "b"}),
            json!(""),
            json!(long),
            json!("a\nb"),
        ] {
            let e = ev("T", 1).with_meta_entry(key, bad.clone());
            refused_everywhere(&*s, "s", vec![e], "metadata");
        }
    }
    assert_unchanged(&*s, &before);
    let e = ev("T", 1)
        .with_meta_entry("correlation_id", "c-1")
        .with_meta_entry("count", 5)
        .with_meta_entry("nested", json!({"actor": 7, "list": [null, 1.5]}))
        .with_meta_entry("empty", "");
    append(&*s, "s", vec![e]);
    let got = stream(&*s, "s", Read::backward().limit(1)).remove(0);
    assert_eq!(got.meta["count"], json!(5));
    assert_eq!(got.meta["nested"], json!({"actor": 7, "list": [null, 1.5]}));
    assert_eq!(s.count(&Query::new().correlation("c-1")).unwrap(), 1);
}

/// Reads, look-ups and snapshots refuse bad names too, as invalid input, not as "nothing
/// found".
pub fn bad_read_arguments_are_refused(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "s", 0);
    let before = all(&*s);
    let long = "x".repeat(MAX_NAME_BYTES + 1);
    let state = RawValue::from_string("{}".to_owned()).unwrap();
    for bad in ["", long.as_str(), "a\nb"] {
        assert_invalid(s.read_stream(bad, Read::forward()), "stream name");
        assert_invalid(s.read_stream(bad, Read::backward()), "stream name");
        assert_invalid(s.get_event(bad), "event id");
        assert_invalid(s.load_snapshot(bad), "stream name");
        assert_invalid(s.save_snapshot(bad, 1, &state), "stream name");
        assert_invalid(s.query(&Query::new().stream(bad)), "stream name");
        assert_invalid(s.count(&Query::new().stream(bad)), "stream name");
    }
    assert_unchanged(&*s, &before);
}

/// Metadata nested as deep as every backend reads back (126 levels, the metadata object
/// counted) is appended and read back as given; one level deeper is refused by appends and
/// imports, and nothing is written. The file store once took it and then read the record back
/// as damaged: an acknowledged event that no read returned.
pub fn metadata_nested_deeper_than_can_be_read_back_is_refused(factory: &Factory<'_>) {
    let s = factory();
    let nested = |levels: usize| {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!([v]);
        }
        v
    };
    // The metadata object, then 125 arrays: 126 levels.
    let deepest = ev("T", 1).with_meta_entry("deep", nested(125));
    s.append("s", Any, vec![deepest]).unwrap();
    let read = all(&*s);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].meta["deep"], nested(125));
    let before = all(&*s);
    refused_everywhere(
        &*s,
        "s",
        vec![ev("T", 2).with_meta_entry("deep", nested(126))],
        "metadata",
    );
    let mut imported = read[0].clone();
    imported.id = "another-id".into();
    imported.stream = "t".into();
    imported.version = 1;
    imported.meta.insert("deep".into(), nested(126));
    assert_invalid(s.import(&[imported]), "import");
    assert_eq!(all(&*s), before);
}
