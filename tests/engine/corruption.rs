//! The corruption matrix: bit flips and overwritten byte ranges in every kind of file a store
//! holds. Damage to events is detected by CRC and reported with the file and byte offset;
//! damage to a sidecar is repaired by rebuilding it; reads of undamaged segments keep working;
//! nothing panics.

use std::path::{Path, PathBuf};

use eventfile::{Error, OpenOptions, Query, Read, RecordedEvent, RetentionPolicy, Store, verify};
use serde_json::json;

use crate::support::{append_one, files_with_ext};

const SEG: u64 = 4096;

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A closed store with sealed segments, an active one with a checkpoint, sidecars, a snapshot
/// and a removal manifest.
fn fixture(dir: &Path) {
    let store = OpenOptions::new()
        .segment_bytes(SEG)
        .retention(RetentionPolicy::keep_all().max_events(150))
        .open(dir)
        .unwrap();
    for i in 0..200u64 {
        append_one(&store, ["a", "b", "c"][i as usize % 3], i);
    }
    store.run_retention(false).unwrap();
    for i in 0..40u64 {
        append_one(&store, ["a", "b", "c"][i as usize % 3], i);
    }
    let v = store.stream_version("a");
    store.save_snapshot("a", v, &json!({ "count": v })).unwrap();
    store.close().unwrap();
}

/// The ways bytes get damaged.
#[derive(Debug, Clone, Copy)]
enum Damage {
    Flip,
    Overwrite,
    Zero,
}

fn damage(path: &Path, at: usize, how: Damage) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    match how {
        Damage::Flip => bytes[at] ^= 0x08,
        Damage::Overwrite => {
            for b in bytes.iter_mut().skip(at).take(16) {
                *b = 0xaa;
            }
        }
        Damage::Zero => {
            for b in bytes.iter_mut().skip(at).take(64) {
                *b = 0;
            }
        }
    }
    std::fs::write(path, bytes).unwrap();
}

fn read_all(store: &Store) -> Vec<Result<RecordedEvent, Error>> {
    store.read_all(Read::forward()).unwrap().collect()
}

/// Whether `verify` names `file` as damaged at or before byte `at`.
fn verify_reports(dir: &Path, file: &Path, at: usize) -> bool {
    match verify(dir) {
        Ok(r) => r
            .problems
            .iter()
            .any(|p| p.path == file && p.offset <= at as u64),
        Err(Error::Corrupt { path, .. }) => path == file,
        Err(e) => panic!("verify failed: {e}"),
    }
}

/// Offsets into a file: near its start, a quarter, the middle, three quarters, near its end.
fn offsets(len: usize) -> Vec<usize> {
    vec![len / 8, len / 4, len / 2, len * 3 / 4, len - len / 10]
}

const DAMAGES: [Damage; 3] = [Damage::Flip, Damage::Overwrite, Damage::Zero];

#[test]
fn the_corruption_matrix() {
    let pristine = tempfile::tempdir().unwrap();
    fixture(pristine.path());
    let expected: Vec<RecordedEvent> = {
        let s = Store::open_read_only(pristine.path()).unwrap();
        read_all(&s).into_iter().map(Result::unwrap).collect()
    };
    let segments = files_with_ext(pristine.path(), "jsonl");
    assert!(segments.len() >= 4, "{segments:?}");
    let name = |p: &PathBuf| p.file_name().unwrap().to_owned();
    let mut tried = 0;
    let mut detected = 0;

    // Event bytes in a sealed segment: found by verify and by the read that reaches them; reads
    // of the other segments go on.
    let sealed = &segments[1];
    let next_base: u64 = name(&segments[2]).to_string_lossy()[..20].parse().unwrap();
    let len = std::fs::metadata(sealed).unwrap().len() as usize;
    for at in offsets(len) {
        for how in DAMAGES {
            tried += 1;
            let case = format!("sealed segment, {how:?} at {at}");
            let dir = tempfile::tempdir().unwrap();
            copy_tree(pristine.path(), dir.path());
            let file = dir.path().join(name(sealed));
            damage(&file, at, how);
            assert!(
                verify_reports(dir.path(), &file, at),
                "{case}: verify missed it"
            );
            let store = match Store::open(dir.path()) {
                Ok(s) => s,
                Err(Error::Corrupt { path, .. }) => {
                    assert_eq!(path, file, "{case}");
                    detected += 1;
                    continue;
                }
                Err(e) => panic!("{case}: {e}"),
            };
            let bad = read_all(&store).into_iter().find_map(Result::err);
            match bad {
                Some(Error::Corrupt { path, offset, .. }) => {
                    assert_eq!(path, file, "{case}");
                    assert!(offset <= at as u64, "{case}: reported at {offset}");
                }
                other => panic!("{case}: the read returned {other:?}"),
            }
            let later: Vec<RecordedEvent> = store
                .query(&Query::new().from_seq(next_base))
                .unwrap()
                .map(|e| e.unwrap_or_else(|e| panic!("{case}: undamaged segment: {e}")))
                .collect();
            let want: Vec<&RecordedEvent> =
                expected.iter().filter(|e| e.seq >= next_base).collect();
            assert_eq!(later.iter().collect::<Vec<_>>(), want, "{case}");
            detected += 1;
        }
    }

    // The middle of the active segment (valid records after the damage): the open refuses, or
    // (the part a clean close checkpointed) the read reports it.
    let active = segments.last().unwrap();
    let len = std::fs::metadata(active).unwrap().len() as usize;
    for at in [len / 4, len / 3, len / 2] {
        for how in DAMAGES {
            tried += 1;
            let case = format!("active segment, {how:?} at {at}");
            let dir = tempfile::tempdir().unwrap();
            copy_tree(pristine.path(), dir.path());
            let file = dir.path().join(name(active));
            damage(&file, at, how);
            assert!(
                verify_reports(dir.path(), &file, at),
                "{case}: verify missed it"
            );
            // Without the checkpoint, the open scans and refuses.
            let no_ckpt = tempfile::tempdir().unwrap();
            copy_tree(dir.path(), no_ckpt.path());
            std::fs::remove_file(no_ckpt.path().join(name(active)).with_extension("idx")).unwrap();
            match Store::open(no_ckpt.path()) {
                Err(Error::Corrupt { path, offset, .. }) => {
                    assert_eq!(path, no_ckpt.path().join(name(active)), "{case}");
                    assert!(offset <= at as u64, "{case}: reported at {offset}");
                }
                other => panic!("{case}: open gave {:?}", other.map(|_| ())),
            }
            match Store::open(dir.path()) {
                Err(Error::Corrupt { path, .. }) => assert_eq!(path, file, "{case}"),
                Ok(store) => {
                    let bad = read_all(&store).into_iter().find_map(Result::err);
                    assert!(
                        matches!(&bad, Some(Error::Corrupt { path, .. }) if *path == file),
                        "{case}: {bad:?}"
                    );
                }
                Err(e) => panic!("{case}: {e}"),
            }
            detected += 1;
        }
    }

    // Sidecars (sealed, and the active segment's checkpoint): rebuilt, reads unchanged.
    let sidecars = files_with_ext(pristine.path(), "idx");
    for sidecar in [&sidecars[0], &sidecars[1], sidecars.last().unwrap()] {
        let len = std::fs::metadata(sidecar).unwrap().len() as usize;
        for at in offsets(len) {
            for how in DAMAGES {
                tried += 1;
                let case = format!("sidecar {:?}, {how:?} at {at}", name(sidecar));
                let dir = tempfile::tempdir().unwrap();
                copy_tree(pristine.path(), dir.path());
                let file = dir.path().join(name(sidecar));
                damage(&file, at, how);
                let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{case}: {e}"));
                let got: Vec<RecordedEvent> =
                    read_all(&store).into_iter().map(Result::unwrap).collect();
                assert_eq!(got, expected, "{case}");
                assert_eq!(
                    store.count(&Query::new().stream("a")).unwrap(),
                    expected.iter().filter(|e| e.stream == "a").count() as u64,
                    "{case}"
                );
                drop(store);
                assert_eq!(
                    std::fs::read(&file).unwrap(),
                    std::fs::read(sidecar).unwrap(),
                    "{case}: not rebuilt"
                );
                assert!(verify(dir.path()).unwrap().is_sound(), "{case}");
                detected += 1;
            }
        }
    }

    // A snapshot: skipped (the stream has no usable snapshot), reported by verify.
    let snap = files_with_ext(&pristine.path().join("snapshots"), "snap")
        .pop()
        .unwrap();
    let len = std::fs::metadata(&snap).unwrap().len() as usize;
    for at in offsets(len) {
        for how in DAMAGES {
            tried += 1;
            let case = format!("snapshot, {how:?} at {at}");
            let dir = tempfile::tempdir().unwrap();
            copy_tree(pristine.path(), dir.path());
            let file = dir.path().join("snapshots").join(snap.file_name().unwrap());
            damage(&file, at, how);
            let store = Store::open(dir.path()).unwrap();
            assert!(store.load_snapshot("a").unwrap().is_none(), "{case}");
            drop(store);
            assert!(verify_reports(dir.path(), &file, at), "{case}");
            detected += 1;
        }
    }

    // The store's own metadata: the configuration and the removal manifest refuse the open.
    for meta in ["eventfile.json", "removed.json"] {
        let len = std::fs::metadata(pristine.path().join(meta)).unwrap().len() as usize;
        for at in offsets(len) {
            for how in DAMAGES {
                tried += 1;
                let case = format!("{meta}, {how:?} at {at}");
                let dir = tempfile::tempdir().unwrap();
                copy_tree(pristine.path(), dir.path());
                let file = dir.path().join(meta);
                damage(&file, at, how);
                match Store::open(dir.path()) {
                    Err(Error::Corrupt { path, .. }) => assert_eq!(path, file, "{case}"),
                    other => panic!("{case}: open gave {:?}", other.map(|_| ())),
                }
                assert!(verify_reports(dir.path(), &file, at), "{case}");
                detected += 1;
            }
        }
    }
    eprintln!("corruption matrix: {tried} cases, {detected} detected or repaired");
    assert_eq!(tried, detected);
}

/// A read-only handle refreshing past events the writer published, whose records are then
/// damaged or missing in the active segment, is told so: it must not stop silently at the
/// events before them (a follower would wait forever for events the writer acknowledged).
#[test]
fn a_reader_refreshing_over_damaged_published_events_gets_corrupt() {
    // The last published batch damaged with nothing valid after it (what a torn tail looks
    // like), and the file cut at a batch boundary before the published head.
    for cut in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = OpenOptions::new().open(dir.path()).unwrap();
        for i in 0..3 {
            append_one(&store, "a", i);
        }
        let reader = Store::open_read_only(dir.path()).unwrap();
        assert_eq!(reader.head_seq(), 3);
        let seg = crate::support::newest_segment(dir.path());
        let before = std::fs::metadata(&seg).unwrap().len();
        for i in 3..5 {
            append_one(&store, "a", i);
        }
        // Seq 5's line: the bytes from the end of seq 4's to the end of the file.
        let bytes = std::fs::read(&seg).unwrap();
        let last_start = bytes[..bytes.len() - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap()
            + 1;
        assert!(last_start as u64 > before);
        if cut {
            std::fs::write(&seg, &bytes[..last_start]).unwrap();
        } else {
            damage(&seg, last_start + 20, Damage::Flip);
        }
        // And again: a refresh that finds nothing new to scan must not take the head it
        // stopped at for the published one.
        for attempt in 0..2 {
            match reader.refresh() {
                Err(Error::Corrupt { path, .. }) => assert_eq!(path, seg, "cut: {cut}"),
                other => panic!("cut: {cut}, attempt {attempt}: refresh gave {other:?}"),
            }
        }
        // A failed refresh moves no head: the reader still reads what it had, whole.
        assert_eq!(reader.head_seq(), 3, "cut: {cut}");
        let seen = crate::support::all(&reader);
        assert_eq!(seen.len(), 3, "cut: {cut}");
        crate::support::assert_gapless(&seen);
        drop(store);
    }
}
