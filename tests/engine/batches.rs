//! Batch and multi-stream atomicity.

use crate::support::*;
use eventfile::{Error, ExpectedVersion::*, NewEvent, Read, RecordedEvent, StreamAppend};
use serde_json::json;

#[test]
fn a_batch_gets_contiguous_seqs_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    append_one(&store, "other", 0);
    let r = store
        .append("s", NoStream, (1..=5).map(|i| ev("A", i)))
        .unwrap();
    assert_eq!((r.first_seq, r.last_seq, r.version), (2, 6, 5));
    let got = stream(&store, "s", Read::forward());
    assert_eq!(
        got.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 3, 4, 5, 6]
    );
    assert_eq!(
        got.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    // One commit time for the whole batch.
    assert!(got.iter().all(|e| e.time == got[0].time));
}

#[test]
fn multi_stream_append_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    store.append("b", NoStream, [ev("A", 0)]).unwrap();

    // The expectation on `b` fails: nothing is written to `a` or `c` either.
    let parts = [
        StreamAppend::new("a", NoStream, [ev("A", 1), ev("A", 2)]),
        StreamAppend::new("b", NoStream, [ev("A", 3)]),
        StreamAppend::new("c", Any, [ev("A", 4)]),
    ];
    match store.append_multi(&parts).unwrap_err() {
        Error::WrongExpectedVersion { stream, actual, .. } => {
            assert_eq!((stream.as_str(), actual), ("b", 1));
        }
        other => panic!("{other}"),
    }
    assert_eq!(store.head_seq(), 1);
    assert_eq!(store.stream_version("a"), 0);

    let parts = [
        StreamAppend::new("a", NoStream, [ev("A", 1), ev("A", 2)]),
        StreamAppend::new("b", Exact(1), [ev("A", 3)]),
        StreamAppend::new("c", Any, [ev("A", 4)]),
    ];
    let r = store.append_multi(&parts).unwrap();
    assert_eq!((r.first_seq, r.last_seq), (2, 5));
    let per: Vec<(&str, u64, u64, u64)> = r
        .streams
        .iter()
        .map(|(s, a)| (s.as_str(), a.version, a.first_seq, a.last_seq))
        .collect();
    assert_eq!(per, [("a", 2, 2, 3), ("b", 2, 4, 4), ("c", 1, 5, 5)]);
    let events = all(&store);
    assert_gapless(&events);
    assert_eq!(events.len(), 5);
}

#[test]
fn concurrent_batches_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 64 * 1024);
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..25 {
                    let r = store
                        .append(&format!("t{t}"), Any, (0..4).map(|k| ev("B", i * 4 + k)))
                        .unwrap();
                    assert_eq!(r.last_seq - r.first_seq, 3);
                }
            });
        }
    });
    let events = all(&store);
    assert_eq!(events.len(), 400);
    assert_gapless(&events);
    for chunk in events.chunks(4) {
        assert!(
            chunk.iter().all(|e| e.stream == chunk[0].stream),
            "a batch was split"
        );
    }
}

/// A bulk load: imports naming many new streams, one of them in several runs, across segment
/// rolls. Each stream is numbered on from its own last version (the commit takes the
/// versions the checks looked up), the stream table survives a reopen, and the ids are found
/// again (importing twice writes nothing).
#[test]
fn an_import_of_many_new_streams_numbers_each_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 16 << 10);
    append_one(&store, "old", 0);
    let mut events = Vec::new();
    let mut long = 0;
    for i in 0..300u64 {
        let (stream, version) = if i % 7 == 0 {
            long += 1;
            ("long".to_owned(), long)
        } else {
            (format!("s-{i}"), 1)
        };
        let mut e = all(&store).remove(0);
        e.id = format!("import-{i}");
        e.stream = stream;
        e.version = version;
        events.push(e);
    }
    // Six imports of 50 (a batch must fit in a segment), each naming `long` in several runs.
    for (k, chunk) in events.chunks(50).enumerate() {
        let r = store.import(chunk).unwrap();
        assert_eq!((r.written, r.skipped, r.head), (50, 0, 51 + 50 * k as u64));
    }
    let check = |store: &eventfile::Store| {
        assert_eq!(store.stream_version("long"), long);
        assert_eq!(store.stream_version("s-299"), 1);
        let got = stream(store, "long", Read::forward());
        assert_eq!(
            got.iter().map(|e| e.version).collect::<Vec<_>>(),
            (1..=long).collect::<Vec<_>>()
        );
        assert_eq!(store.streams("s-", None, 1000).len(), 300 - long as usize);
    };
    check(&store);
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "jsonl")
        })
        .count();
    assert!(segments > 2, "the import rolled segments ({segments})");
    drop(store);
    let store = small_store(dir.path(), 16 << 10);
    check(&store);
    for chunk in events.chunks(50) {
        let again = store.import(chunk).unwrap();
        assert_eq!((again.written, again.skipped), (0, 50));
    }
}

/// An import prepared ahead on another thread (`prepare_import`, then `import_prepared`)
/// writes byte for byte what `import` writes, across segment rolls and with events the store
/// holds already (skipped, the rest numbered as `import` numbers them), and is refused by the
/// same checks, nothing written.
#[test]
fn a_prepared_import_writes_what_an_import_writes() {
    let src = tempfile::tempdir().unwrap();
    let source = fast_store(src.path(), 1 << 20);
    for i in 0..400u64 {
        let e = NewEvent::new("Placed", json!({ "n": i, "text": "a \"quoted\" line\n" }))
            .with_tag(format!("customer={}", i % 9))
            .with_meta_entry("correlation_id", format!("c-{}", i % 5))
            .with_meta_entry("note", json!({ "nested": [1, 2.5, "x"] }));
        source.append(&format!("s-{}", i % 13), Any, [e]).unwrap();
    }
    let events = all(&source);
    // The first 40, then all of the first 100 (40 skipped), then the rest by hundreds: each
    // import fits in a segment of 40 KiB, and the log rolls over several.
    let chunks: Vec<&[RecordedEvent]> = [0..40, 0..100, 100..200, 200..300, 300..400]
        .into_iter()
        .map(|r| &events[r])
        .collect();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (plain, prepared) = (
        small_store(a.path(), 40 << 10),
        small_store(b.path(), 40 << 10),
    );
    let by_import: Vec<_> = chunks.iter().map(|c| plain.import(c).unwrap()).collect();
    let by_prepared: Vec<_> = std::thread::scope(|s| {
        chunks
            .iter()
            .map(|c| {
                let p = s
                    .spawn(|| prepared.prepare_import(c.to_vec()).unwrap())
                    .join()
                    .unwrap();
                prepared.import_prepared(&p).unwrap()
            })
            .collect()
    });
    assert_eq!(by_prepared, by_import);
    let r = by_import[1];
    assert_eq!((r.written, r.skipped, r.head), (60, 40, 100));
    drop((plain, prepared));
    let (sa, sb) = (
        files_with_ext(a.path(), "jsonl"),
        files_with_ext(b.path(), "jsonl"),
    );
    assert!(sa.len() > 2, "the imports rolled segments ({})", sa.len());
    assert_eq!(sa.len(), sb.len());
    for (x, y) in sa.iter().zip(&sb) {
        assert_eq!(
            std::fs::read(x).unwrap(),
            std::fs::read(y).unwrap(),
            "{x:?}"
        );
    }
    let store = small_store(b.path(), 40 << 10);
    assert_eq!(all(&store), events);

    let mut backwards = events[..3].to_vec();
    backwards.iter_mut().for_each(|e| e.id.push_str("-new"));
    backwards[2].time = backwards[1].time - 1;
    let err = store.prepare_import(backwards).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(store.head_seq(), 400);
}

/// Ids the store generated are found by a later append that reuses one, although appends
/// never look ids up themselves (the id table is caught up by the first lookup).
#[test]
fn a_generated_id_reused_later_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    for n in 0..50 {
        store
            .append("s", Any, (0..10).map(|i| ev("A", n * 10 + i)))
            .unwrap();
    }
    let taken = stream(&store, "s", Read::forward())[123].id.clone();
    store
        .append("t", Any, [ev("A", 0).with_id("fresh-1")])
        .unwrap();
    for _ in 0..3 {
        store.append("s", Any, [ev("A", 0)]).unwrap();
    }
    match store.append("u", Any, [ev("A", 1).with_id(taken.clone())]) {
        Err(Error::DuplicateEventId { id, seq, .. }) => assert_eq!((id, seq), (taken, 124)),
        other => panic!("expected a duplicate id, got {other:?}"),
    }
}

/// Importing a file again writes nothing, even where retention has since removed the
/// segments holding the first import's events (before, their ids were no longer found and
/// each read as a new event that would break its stream's order: the import was refused).
#[test]
fn an_import_repeated_after_retention_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 16 << 10);
    append_one(&store, "old", 0);
    let template = all(&store).remove(0);
    let events: Vec<_> = (0..300u64)
        .map(|i| {
            let mut e = template.clone();
            e.id = format!("import-{i}");
            e.stream = format!("s-{}", i % 3);
            e.version = i / 3 + 1;
            e
        })
        .collect();
    for chunk in events.chunks(50) {
        assert_eq!(store.import(chunk).unwrap().written, 50);
    }
    store
        .set_retention_policy(eventfile::RetentionPolicy::keep_all().max_events(100))
        .unwrap();
    let removed = store.run_retention(false).unwrap();
    assert!(!removed.segments.is_empty(), "retention removed nothing");
    assert!(store.log_start() > 1);
    for chunk in events.chunks(50) {
        let again = store.import(chunk).unwrap();
        assert_eq!((again.written, again.skipped), (0, 50));
    }
    assert_eq!(store.stream_version("s-0"), 100);
}
