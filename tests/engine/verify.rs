//! `verify` finds every damaged record and names its file and offset.

use std::path::{Path, PathBuf};

use eventfile::{Error, Read, Store};

use crate::support::*;

#[test]
fn a_sound_store_verifies_and_damage_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 4096);
    for i in 0..100 {
        append_one(&store, &format!("s{}", i % 3), i);
    }
    store.close().unwrap();
    let report = eventfile::verify(dir.path()).unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    assert_eq!(report.events, 100);
    assert_eq!(report.streams, 3);
    assert!(report.segments > 2);

    // Damage two records in the first (sealed) segment.
    let first = dir.path().join("00000000000000000001.jsonl");
    let mut bytes = std::fs::read(&first).unwrap();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let (r2, r5) = (starts[2], starts[5]);
    bytes[r2 + 15] ^= 0x01;
    bytes[r5 + 40] = b'#';
    std::fs::write(&first, &bytes).unwrap();
    let report = eventfile::verify(dir.path()).unwrap();
    let offsets: Vec<u64> = report.problems.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, [r2 as u64, r5 as u64], "{:?}", report.problems);
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.path == first && p.message.contains("crc"))
    );
    assert_eq!(report.events, 98);
}

#[test]
fn unexpected_files_are_noted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 4096);
    append_one(&store, "s", 1);
    store.close().unwrap();
    std::fs::write(dir.path().join("README.txt"), "hi").unwrap();
    let report = eventfile::verify(dir.path()).unwrap();
    assert!(report.is_sound());
    assert!(report.notes.iter().any(|n| n.contains("README.txt")));
}

// ---------------------------------------------------------------------------------------------
// Whatever stops a writer open is a problem `verify` reports, naming the file. Each test damages
// a closed store in one way, runs `verify` first (it writes nothing), then a writer open.

/// A closed store of `segments` 4 KiB segments, all events in stream `s`; returns its head seq.
fn closed_store(segments: usize) -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 4096);
    fill_until_segments(&store, dir.path(), segments);
    let head = store.head_seq();
    store.close().unwrap();
    (dir, head)
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.jsonl"))
}

fn sidecar_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.idx"))
}

fn base_of(path: &Path) -> u64 {
    let name = path.file_name().unwrap().to_str().unwrap();
    name[..20].parse().unwrap()
}

/// The file an open error names.
fn error_path(e: &Error) -> Option<&Path> {
    match e {
        Error::Corrupt { path, .. }
        | Error::Io { path, .. }
        | Error::UnsupportedFormat { path, .. }
        | Error::NotAStore { path, .. }
        | Error::Locked { path } => Some(path),
        _ => None,
    }
}

/// `verify` reports a problem naming `culprit`, and a writer open fails, naming it too.
fn refused_and_reported(dir: &Path, culprit: &Path) -> Error {
    reported(dir, culprit);
    let err = refused(dir, culprit);
    assert_eq!(error_path(&err), Some(culprit), "open said: {err}");
    err
}

/// `verify` reports a problem naming `culprit`.
fn reported(dir: &Path, culprit: &Path) {
    let report = eventfile::verify(dir).unwrap();
    assert!(
        report.problems.iter().any(|p| p.path == culprit),
        "verify does not name {}: problems {:?}, notes {:?}",
        culprit.display(),
        report.problems,
        report.notes
    );
}

/// A writer open fails.
fn refused(dir: &Path, culprit: &Path) -> Error {
    match Store::open(dir) {
        Ok(_) => panic!(
            "a writer open accepted the store with {}",
            culprit.display()
        ),
        Err(e) => e,
    }
}

/// `verify` calls the store sound, a writer open succeeds, and the store still verifies after.
fn opens_and_verifies(dir: &Path) -> eventfile::VerifyReport {
    let report = eventfile::verify(dir).unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    Store::open(dir).unwrap().close().unwrap();
    let after = eventfile::verify(dir).unwrap();
    assert!(after.is_sound(), "after the open: {:?}", after.problems);
    report
}

/// Writes a removal manifest removing `ranges` (all events of stream `s`).
fn write_manifest(dir: &Path, ranges: &[(u64, u64)]) {
    let ranges: Vec<String> = ranges
        .iter()
        .map(|(b, e)| {
            format!(
                r#"{{"base":{b},"end":{e},"last_time":0,"streams":{{"s":{}}}}}"#,
                e - b
            )
        })
        .collect();
    let body = format!(
        r#"{{"eventfile":"removed","log_start":1,"ranges":[{}],"deleted":{{}}"#,
        ranges.join(",")
    );
    std::fs::write(dir.join("removed.json"), frame(&body)).unwrap();
}

#[test]
fn an_empty_segment_past_the_head_is_a_problem() {
    let (dir, head) = closed_store(3);
    let stray = segment_path(dir.path(), head + 10);
    std::fs::write(&stray, b"").unwrap();
    refused_and_reported(dir.path(), &stray);
    // The refused open wrote nothing into it.
    assert_eq!(std::fs::read(&stray).unwrap(), b"");
}

#[test]
fn a_segment_of_garbage_past_the_head_is_a_problem() {
    let (dir, head) = closed_store(3);
    let stray = segment_path(dir.path(), head + 10);
    std::fs::write(&stray, b"\x00\xffnot a segment\nnor is this\n").unwrap();
    refused_and_reported(dir.path(), &stray);
    // The refused open wrote nothing into it.
    assert_eq!(
        std::fs::read(&stray).unwrap(),
        b"\x00\xffnot a segment\nnor is this\n"
    );
}

#[test]
fn an_empty_segment_named_like_the_next_is_a_crash_during_a_roll() {
    // What a crash between creating the next segment and writing its header leaves: the writer
    // writes the header, so it is a note, not a problem.
    let (dir, head) = closed_store(3);
    let next = segment_path(dir.path(), head + 1);
    std::fs::write(&next, b"").unwrap();
    let report = opens_and_verifies(dir.path());
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains(&*next.to_string_lossy())),
        "{:?}",
        report.notes
    );
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.head_seq(), head);
    assert_eq!(append_one(&store, "s", 0).first_seq, head + 1);
}

#[test]
fn a_segment_numbered_zero_is_a_problem() {
    let (dir, _) = closed_store(2);
    let stray = segment_path(dir.path(), 0);
    std::fs::write(&stray, b"").unwrap();
    refused_and_reported(dir.path(), &stray);
    // The refused open wrote nothing into it.
    assert_eq!(std::fs::read(&stray).unwrap(), b"");
}

#[test]
fn a_segment_inside_another_segments_seqs_is_a_problem() {
    let (dir, _) = closed_store(3);
    let second = base_of(&files_with_ext(dir.path(), "jsonl")[1]);
    let stray = segment_path(dir.path(), second - 2);
    std::fs::copy(segment_path(dir.path(), second), &stray).unwrap();
    refused_and_reported(dir.path(), &stray);
}

#[test]
fn a_segment_that_is_a_directory_is_a_problem() {
    let (dir, head) = closed_store(3);
    let stray = segment_path(dir.path(), head + 1);
    std::fs::create_dir(&stray).unwrap();
    refused_and_reported(dir.path(), &stray);
}

#[test]
fn a_header_naming_another_base_is_a_problem() {
    let (dir, _) = closed_store(3);
    let first = segment_path(dir.path(), 1);
    let bytes = std::fs::read(&first).unwrap();
    let header_end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut damaged = frame(r#"{"eventfile":"segment","format":1,"base_seq":7"#).into_bytes();
    damaged.extend_from_slice(&bytes[header_end..]);
    std::fs::write(&first, damaged).unwrap();
    refused_and_reported(dir.path(), &first);
}

#[test]
fn a_gap_between_segments_is_a_problem() {
    let (dir, _) = closed_store(4);
    let segments = files_with_ext(dir.path(), "jsonl");
    let gone = base_of(&segments[1]);
    std::fs::remove_file(&segments[1]).unwrap();
    std::fs::remove_file(sidecar_path(dir.path(), gone)).unwrap();
    refused_and_reported(dir.path(), &segments[2]);
}

#[test]
fn a_directory_named_like_a_temporary_file_is_a_problem() {
    for name in ["00000000000000000042.idx.tmp", "eventfile.json.tmp"] {
        let (dir, _) = closed_store(2);
        let stray = dir.path().join(name);
        std::fs::create_dir(&stray).unwrap();
        refused_and_reported(dir.path(), &stray);
    }
}

#[test]
fn a_leftover_temporary_file_is_removed_and_not_a_problem() {
    let (dir, _) = closed_store(2);
    for name in [
        "00000000000000000001.idx.tmp",
        "eventfile.json.tmp",
        "removed.json.tmp",
    ] {
        std::fs::write(dir.path().join(name), b"half written").unwrap();
    }
    opens_and_verifies(dir.path());
    assert!(!dir.path().join("eventfile.json.tmp").exists());
}

#[test]
fn a_lock_file_that_is_a_directory_is_a_problem() {
    let (dir, _) = closed_store(2);
    let lock = dir.path().join("LOCK");
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    refused_and_reported(dir.path(), &lock);
}

#[test]
fn a_sealed_segments_sidecar_that_is_a_directory_is_a_problem() {
    let (dir, _) = closed_store(3);
    let sidecar = sidecar_path(dir.path(), 1);
    std::fs::remove_file(&sidecar).unwrap();
    std::fs::create_dir(&sidecar).unwrap();
    reported(dir.path(), &sidecar);
    // The open takes the segment from the summary the close wrote; the first read that needs
    // the sidecar rebuilds it and fails to rename the new one over the directory: its error
    // names the temporary file.
    let store = Store::open(dir.path()).unwrap();
    let err = store
        .read_stream("s", Read::forward())
        .and_then(|events| events.collect::<Result<Vec<_>, _>>())
        .unwrap_err();
    drop(store);
    std::fs::remove_file(dir.path().join("summary")).unwrap();
    // Without the summary, the open itself rebuilds it, and fails the same way.
    let err2 = refused(dir.path(), &sidecar);
    for err in [err, err2] {
        assert!(
            matches!(&err, Error::Io { op: "rename", path, .. }
            if path.to_string_lossy().ends_with("00000000000000000001.idx.tmp")),
            "{err}"
        );
    }
}

#[test]
fn a_removal_manifest_that_is_a_directory_is_a_problem() {
    let (dir, _) = closed_store(2);
    let manifest = dir.path().join("removed.json");
    std::fs::create_dir(&manifest).unwrap();
    refused_and_reported(dir.path(), &manifest);
}

#[test]
fn an_unreadable_removal_manifest_is_a_problem() {
    let (dir, _) = closed_store(2);
    let manifest = dir.path().join("removed.json");
    std::fs::write(&manifest, b"{\"eventfile\":\"removed\"\n").unwrap();
    refused_and_reported(dir.path(), &manifest);
}

#[test]
fn a_manifest_covering_the_newest_segment_is_a_problem() {
    let (dir, _) = closed_store(3);
    let newest = base_of(&newest_segment(dir.path()));
    write_manifest(dir.path(), &[(newest, newest + 1)]);
    refused_and_reported(dir.path(), &dir.path().join("removed.json"));
}

#[test]
fn a_manifest_range_ending_inside_a_segment_is_a_problem() {
    let (dir, _) = closed_store(3);
    write_manifest(dir.path(), &[(1, 3)]);
    refused_and_reported(dir.path(), &dir.path().join("removed.json"));
}

#[test]
fn a_manifest_range_beyond_the_log_is_a_problem() {
    let (dir, head) = closed_store(3);
    write_manifest(dir.path(), &[(head + 5, head + 6)]);
    refused_and_reported(dir.path(), &dir.path().join("removed.json"));
}

#[test]
fn a_removed_segment_left_as_a_directory_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 4096);
    fill_until_segments(&store, dir.path(), 4);
    store
        .set_retention_policy(eventfile::RetentionPolicy::keep_all().max_events(20))
        .unwrap();
    let removed = store.run_retention(false).unwrap();
    assert!(!removed.segments.is_empty());
    store.close().unwrap();
    let leftover = segment_path(dir.path(), 1);
    assert!(!leftover.exists());
    std::fs::create_dir(&leftover).unwrap();
    refused_and_reported(dir.path(), &leftover);
}

#[test]
fn a_configuration_that_is_a_directory_is_an_error_naming_it() {
    let (dir, _) = closed_store(2);
    let config = dir.path().join("eventfile.json");
    std::fs::remove_file(&config).unwrap();
    std::fs::create_dir(&config).unwrap();
    let err = eventfile::verify(dir.path()).unwrap_err();
    assert_eq!(error_path(&err), Some(config.as_path()), "{err}");
    let err = Store::open(dir.path()).map(|_| ()).unwrap_err();
    assert_eq!(error_path(&err), Some(config.as_path()), "{err}");
}

#[test]
fn a_snapshots_file_in_place_of_the_directory_is_a_problem() {
    // The open does not look at `snapshots/`, but every snapshot save, load and stream deletion
    // fails on it: not harmless.
    let (dir, _) = closed_store(2);
    let snapshots = dir.path().join("snapshots");
    std::fs::write(&snapshots, b"").unwrap();
    let report = eventfile::verify(dir.path()).unwrap();
    assert!(
        report.problems.iter().any(|p| p.path == snapshots),
        "{:?}",
        report.problems
    );
    let store = Store::open(dir.path()).unwrap();
    assert!(store.save_snapshot("s", 1, &serde_json::json!({})).is_err());
}

#[test]
fn names_the_store_does_not_own_are_noted_and_ignored() {
    let (dir, head) = closed_store(2);
    let strangers = [
        format!("{:019}.jsonl", head + 1),
        "99999999999999999999.jsonl".to_owned(),
        format!("{:020}.JSONL", head + 1),
    ];
    for s in &strangers {
        std::fs::write(dir.path().join(s), b"").unwrap();
    }
    let report = opens_and_verifies(dir.path());
    for s in &strangers {
        assert!(
            report.notes.iter().any(|n| n.contains(s.as_str())),
            "{s}: {:?}",
            report.notes
        );
    }
}

#[test]
fn a_damaged_sealed_sidecar_is_noted_and_rewritten_by_the_next_writer_open() {
    let (dir, _) = closed_store(3);
    let damaged = sidecar_path(dir.path(), 1);
    let good = std::fs::read(&damaged).unwrap();
    let mut bytes = good.clone();
    bytes[70] ^= 0x40;
    std::fs::write(&damaged, &bytes).unwrap();
    let second = base_of(&files_with_ext(dir.path(), "jsonl")[1]);
    let missing = sidecar_path(dir.path(), second);
    std::fs::remove_file(&missing).unwrap();

    let report = opens_and_verifies(dir.path());
    for path in [&damaged, &missing] {
        let name = path.to_string_lossy();
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains(&*name) && n.contains("rebuilds it from its segment")),
            "{name}: {:?}",
            report.notes
        );
    }
    // The open did what the note says: when the sidecars are first used (the open took the
    // segments from the summary the close wrote), and the reads return every event.
    let store = Store::open(dir.path()).unwrap();
    let events: Vec<_> = store
        .read_stream("s", Read::forward())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(events.len() as u64, store.head_seq());
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64 + 1)
    );
    store.close().unwrap();
    assert_eq!(std::fs::read(&damaged).unwrap(), good);
    assert!(missing.exists());
    let after = eventfile::verify(dir.path()).unwrap();
    assert!(
        !after.notes.iter().any(|n| n.contains(".idx")),
        "{:?}",
        after.notes
    );
}

#[test]
fn a_sidecar_that_passes_its_checks_but_differs_from_its_segment_is_a_problem() {
    // An open trusts a sidecar that passes its checks, so it is not rebuilt: the note would lie.
    let (dir, _) = closed_store(3);
    let sidecar = sidecar_path(dir.path(), 1);
    let mut bytes = std::fs::read(&sidecar).unwrap();
    let count = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    // The last record's time, one microsecond later: times still do not decrease.
    let at = 64 + count * 4 + (count - 1) * 8;
    let t = i64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) + 1;
    bytes[at..at + 8].copy_from_slice(&t.to_le_bytes());
    recrc_sidecar(&mut bytes);
    std::fs::write(&sidecar, &bytes).unwrap();
    Store::open(dir.path()).unwrap().close().unwrap();
    assert_eq!(std::fs::read(&sidecar).unwrap(), bytes, "the open kept it");
    let report = eventfile::verify(dir.path()).unwrap();
    assert!(
        report.problems.iter().any(|p| p.path == sidecar),
        "{:?} {:?}",
        report.problems,
        report.notes
    );
}

#[test]
fn a_manifest_with_no_segment_after_it_is_a_problem() {
    let (dir, head) = closed_store(3);
    for p in files_with_ext(dir.path(), "jsonl")
        .into_iter()
        .chain(files_with_ext(dir.path(), "idx"))
    {
        std::fs::remove_file(p).unwrap();
    }
    write_manifest(dir.path(), &[(1, head + 1)]);
    let manifest = dir.path().join("removed.json");
    reported(dir.path(), &manifest);
    // Not a store with no events yet: numbering afresh would reuse the removed seqs.
    let err = refused(dir.path(), &manifest);
    assert_eq!(error_path(&err), Some(manifest.as_path()), "{err}");
    assert!(
        files_with_ext(dir.path(), "jsonl").is_empty(),
        "nothing created"
    );
}
