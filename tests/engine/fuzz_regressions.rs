//! Findings of the fuzz targets, each kept as a named test.

use crate::support::*;
use eventfile::Error;

/// segment_recovery, crash-c90979298ee7c6a8ab8630a9aa3be711b21cf678: a CRC-valid batch whose
/// second record's time is before the first's opened fine, but `verify` then called the store
/// unsound. Recovery now enforces the same invariant and refuses the open, naming the record.
#[test]
fn recovery_refuses_time_going_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        frame(&body(1, "order-1", 1, "6810-11-22T21:31:12.123456Z", true)),
        frame(&body(2, "order-1", 2, "2026-11-22T21:31:12.123456Z", false)),
    ];
    store_with_lines(dir.path(), &lines);
    let header_len = std::fs::read(dir.path().join("00000000000000000001.jsonl"))
        .unwrap()
        .len()
        - lines[0].len()
        - lines[1].len();
    match eventfile::Store::open(dir.path()) {
        Err(Error::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset as usize, header_len + lines[0].len());
            assert!(reason.contains("before the previous record"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let report = eventfile::verify(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1);
}

/// The same numbering rules hold for seq and version in forged, CRC-valid records.
#[test]
fn recovery_refuses_forged_numbering() {
    let t = "2026-11-22T21:31:12.123456Z";
    for (name, lines) in [
        (
            "seq gap",
            vec![
                frame(&body(1, "a", 1, t, false)),
                frame(&body(3, "a", 2, t, false)),
            ],
        ),
        (
            "version gap",
            vec![
                frame(&body(1, "a", 1, t, false)),
                frame(&body(2, "a", 3, t, false)),
            ],
        ),
        ("first seq", vec![frame(&body(2, "a", 1, t, false))]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        store_with_lines(dir.path(), &lines);
        let err = eventfile::Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{name}: {err}");
        assert!(!eventfile::verify(dir.path()).unwrap().is_sound(), "{name}");
    }
}

/// A removal manifest whose CRC checks out but whose numbers do not add up (forged, or written
/// by a broken build) is refused, never trusted into an overflow.
#[test]
fn a_manifest_with_impossible_numbers_is_refused() {
    for body in [
        // Counts that overflow a stream's version.
        r#"{"eventfile":"removed","log_start":1,"ranges":[{"base":1,"end":5,"last_time":0,"streams":{"s":18446744073709551615}}],"deleted":{}"#,
        // More events in a range than seqs.
        r#"{"eventfile":"removed","log_start":1,"ranges":[{"base":1,"end":5,"last_time":0,"streams":{"s":9}}],"deleted":{}"#,
        // A range reaching past every seq.
        r#"{"eventfile":"removed","log_start":1,"ranges":[{"base":1,"end":18446744073709551615,"last_time":0,"streams":{"s":1}}],"deleted":{}"#,
        // A log start inside nothing removed.
        r#"{"eventfile":"removed","log_start":99,"ranges":[],"deleted":{}"#,
        // A log start before the first seq.
        r#"{"eventfile":"removed","log_start":0,"ranges":[{"base":1,"end":5,"last_time":0,"streams":{"s":4}}],"deleted":{}"#,
        // A deletion from version 0 (a tombstone's version, one below it, underflowed).
        r#"{"eventfile":"removed","log_start":1,"ranges":[],"deleted":{"s":{"before":0,"tombstone":true}}"#,
    ] {
        let dir = tempfile::tempdir().unwrap();
        drop(crate::support::fast_store(dir.path(), 4096));
        std::fs::write(dir.path().join("removed.json"), frame(body)).unwrap();
        match eventfile::Store::open(dir.path()) {
            Err(eventfile::Error::Corrupt { path, .. }) => {
                assert_eq!(path, dir.path().join("removed.json"), "{body}")
            }
            other => panic!("{body}: open gave {:?}", other.map(|_| ())),
        }
    }
}

/// segment_recovery, crash-b5e6201ade082d05923058c87c0918e57b79f778 (a CI smoke run): a
/// CRC-valid record with a second `data` member passed recovery, which did not parse `data`,
/// and then failed every read. Recovery now parses what the reader parses: the record is damage
/// (refused when valid records follow, cut as a torn tail when it is last).
#[test]
fn recovery_parses_what_reads_parse() {
    let dup = body(1, "order-1", 1, "2026-11-22T21:31:12.123456Z", false).replacen(
        r#""tags":[]"#,
        r#""tags":[],"data":true"#,
        1,
    );
    let good = body(1, "order-1", 1, "2026-11-22T21:31:12.123456Z", false);

    let dir = tempfile::tempdir().unwrap();
    store_with_lines(
        dir.path(),
        &[
            frame(&dup),
            frame(&good.replace(r#""seq":1"#, r#""seq":2"#)),
        ],
    );
    match eventfile::Store::open(dir.path()) {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(reason.contains("duplicate field"), "{reason}")
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }

    let dir = tempfile::tempdir().unwrap();
    store_with_lines(
        dir.path(),
        &[
            frame(&good),
            frame(
                &dup.replace(r#""seq":1"#, r#""seq":2"#)
                    .replace(r#""version":1"#, r#""version":2"#),
            ),
        ],
    );
    let store = eventfile::Store::open(dir.path()).unwrap();
    assert_eq!(all(&store).len(), 1);
    drop(store);
    assert!(eventfile::verify(dir.path()).unwrap().is_sound());
}
