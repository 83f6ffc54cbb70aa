//! The summary a clean close writes, and sidecars checked on first use (issue 16): an open
//! takes the sealed segments from the summary without reading their sidecars; a sidecar damaged
//! after the close is found when first used and rebuilt from its segment, never trusted; a
//! stale, damaged or missing summary is ignored. Every scenario ends in reads that return
//! exactly the events appended.

use std::path::{Path, PathBuf};

use eventfile::{ErrorKind, OpenOptions, Read, RecordedEvent, Store};

use crate::support::*;

const STREAMS: [&str; 5] = ["a", "b", "c", "d", "e"];

/// A closed store of at least `segments` segments, its events round-robin over `STREAMS`.
fn closed_store(dir: &Path, segments: usize) {
    let store = fast_store(dir, 4096);
    fill_streams(&store, dir, &STREAMS, segments);
    store.close().unwrap();
}

/// Every stream's events and version, and every event, as `store` reads them.
fn contents(store: &Store) -> (Vec<(u64, Vec<RecordedEvent>)>, Vec<RecordedEvent>) {
    let streams = STREAMS
        .iter()
        .map(|s| (store.stream_version(s), stream(store, s, Read::forward())))
        .collect();
    (streams, all(store))
}

fn sidecar(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.idx"))
}

/// The bases of the sealed segments (every segment but the newest).
fn sealed_bases(dir: &Path) -> Vec<u64> {
    let mut segs = files_with_ext(dir, "jsonl");
    segs.pop();
    segs.iter()
        .map(|p| {
            p.file_name().unwrap().to_str().unwrap()[..20]
                .parse()
                .unwrap()
        })
        .collect()
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 5);
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

/// Removes the sidecar of the sealed segment at `base` and changes a digit in the middle of the
/// segment (same length): only a rebuild from the segment would find it, and that fails.
fn damage_with_sidecar(dir: &Path, base: u64) {
    std::fs::remove_file(sidecar(dir, base)).unwrap();
    let seg = dir.join(format!("{base:020}.jsonl"));
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    let digit = (at..bytes.len())
        .find(|&i| bytes[i].is_ascii_digit())
        .unwrap();
    bytes[digit] = if bytes[digit] == b'7' { b'8' } else { b'7' };
    std::fs::write(&seg, bytes).unwrap();
}

/// Rewrites the summary with `forge`, then makes its CRCs match again; returns its path.
fn forge_summary(dir: &Path, forge: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let path = dir.join("summary");
    let mut bytes = std::fs::read(&path).unwrap();
    forge(&mut bytes);
    recrc_summary(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    path
}

/// `verify` names the summary among its problems.
fn assert_verify_reports(dir: &Path, path: &Path) {
    let report = eventfile::verify(dir).unwrap();
    assert!(
        report.problems.iter().any(|p| p.path == path),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_clean_close_writes_a_summary_that_the_next_open_uses_without_reading_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 6);
    assert!(dir.path().join("summary").is_file());
    let expected = contents(&Store::open_read_only(dir.path()).unwrap());
    let bases = sealed_bases(dir.path());
    assert!(bases.len() >= 5, "{bases:?}");
    assert_opens_take_the_summary(dir.path(), &expected);
    assert_eq!(contents(&Store::open(dir.path()).unwrap()), expected);
}

/// Every sealed sidecar made unreadable as a file (a directory in its place), a read-only and
/// a writable open must each answer every stream's version and the head as `expected` says:
/// an open that read a sidecar would fail, so each took them all from the summary. The
/// sidecars are put back.
fn assert_opens_take_the_summary(
    dir: &Path,
    expected: &(Vec<(u64, Vec<RecordedEvent>)>, Vec<RecordedEvent>),
) {
    let bases = sealed_bases(dir);
    for &b in &bases {
        let p = sidecar(dir, b);
        std::fs::rename(&p, p.with_extension("moved")).unwrap();
        std::fs::create_dir(&p).unwrap();
    }
    for read_only in [true, false] {
        let opened = OpenOptions::new().read_only(read_only).open(dir).unwrap();
        for (s, (version, _)) in STREAMS.iter().zip(&expected.0) {
            assert_eq!(opened.stream_version(s), *version, "read-only {read_only}");
        }
        let head = expected.1.last().map_or(0, |e| e.seq);
        assert_eq!(opened.head_seq(), head, "read-only {read_only}");
    }
    for &b in &bases {
        let p = sidecar(dir, b);
        std::fs::remove_dir(&p).unwrap();
        std::fs::rename(p.with_extension("moved"), &p).unwrap();
    }
}

#[test]
fn a_sidecar_damaged_after_a_clean_close_is_rebuilt_when_first_used() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 6);
    let expected = contents(&Store::open(dir.path()).unwrap());
    let bases = sealed_bases(dir.path());
    let originals: Vec<Vec<u8>> = bases
        .iter()
        .map(|&b| std::fs::read(sidecar(dir.path(), b)).unwrap())
        .collect();
    // One flipped in its postings, one in its record table, one cut short, one removed.
    let len = originals[0].len();
    flip(&sidecar(dir.path(), bases[0]), len - 8);
    flip(&sidecar(dir.path(), bases[1]), 70);
    let cut = std::fs::read(sidecar(dir.path(), bases[2])).unwrap();
    std::fs::write(sidecar(dir.path(), bases[2]), &cut[..cut.len() / 2]).unwrap();
    std::fs::remove_file(sidecar(dir.path(), bases[3])).unwrap();
    let damaged: Vec<Option<Vec<u8>>> = bases
        .iter()
        .map(|&b| std::fs::read(sidecar(dir.path(), b)).ok())
        .collect();

    // A read-only handle reads exactly the events, and leaves the files as they are.
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(contents(&reader), expected);
    drop(reader);
    for (i, &b) in bases.iter().enumerate() {
        assert_eq!(std::fs::read(sidecar(dir.path(), b)).ok(), damaged[i]);
    }

    // A writer's open touches none of them; its first reads rebuild each one it uses.
    let store = Store::open(dir.path()).unwrap();
    for (i, &b) in bases.iter().enumerate() {
        assert_eq!(std::fs::read(sidecar(dir.path(), b)).ok(), damaged[i]);
    }
    assert_eq!(contents(&store), expected);
    for (i, &b) in bases.iter().enumerate() {
        assert_eq!(
            std::fs::read(sidecar(dir.path(), b)).unwrap(),
            originals[i],
            "sidecar of segment {b}"
        );
    }
    drop(store);
    assert!(eventfile::verify(dir.path()).unwrap().is_sound());
}

#[test]
fn a_sealed_segment_damaged_with_its_sidecar_fails_reads_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 4);
    let base = sealed_bases(dir.path())[1];
    damage_with_sidecar(dir.path(), base);

    for read_only in [true, false] {
        let store = OpenOptions::new()
            .read_only(read_only)
            .open(dir.path())
            .unwrap();
        for s in STREAMS {
            let got = store
                .read_stream(s, Read::forward())
                .and_then(|events| events.collect::<Result<Vec<_>, _>>());
            let err = got.expect_err("a read through the damaged segment");
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        }
    }
    assert!(!sidecar(dir.path(), base).exists());
}

#[test]
fn a_damaged_stale_or_missing_summary_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 4);
    let summary = dir.path().join("summary");
    let early = std::fs::read(&summary).unwrap();
    // More segments sealed, then closed: a newer summary.
    let store = fast_store(dir.path(), 4096);
    fill_streams(&store, dir.path(), &STREAMS, 8);
    store.close().unwrap();
    let expected = contents(&Store::open_read_only(dir.path()).unwrap());
    let current = std::fs::read(&summary).unwrap();
    assert_ne!(early, current);

    let flipped = |at: usize, bits: u8| {
        let mut b = current.clone();
        b[at] ^= bits;
        b
    };
    let blocks = summary_blocks(&current);
    assert!(
        blocks[0].0 > 112 + 8,
        "a head of {} bytes",
        blocks[0].0 - 112
    );
    // Each case: its name, the summary's bytes (none: no file), and what `verify` says of it:
    // a problem naming the summary and saying this, or nothing (the summary is sound: a stale
    // one is a prefix, as a crash leaves it).
    type Case = (&'static str, Option<Vec<u8>>, Option<&'static str>);
    let cases: [Case; 9] = [
        ("damaged", Some(flipped(current.len() / 2, 1)), Some("")),
        (
            "header damaged",
            Some(flipped(20, 1)),
            Some("its header fails its CRC"),
        ),
        // The format field is under the header's CRC: format 3 and format 0 here are damage,
        // not summaries of another format.
        (
            "format 3",
            Some(flipped(8, 1)),
            Some("its header fails its CRC"),
        ),
        (
            "format 0",
            Some(flipped(8, 2)),
            Some("its header fails its CRC"),
        ),
        ("head damaged", Some(flipped(112 + 4, 1)), Some("its head")),
        (
            "cut short",
            Some(current[..current.len() - 3].to_vec()),
            Some("its head"),
        ),
        (
            "empty",
            Some(Vec::new()),
            Some("shorter than its 112-byte header"),
        ),
        // Describes the first segments only: it covers them, the sidecars the rest.
        ("stale", Some(early), None),
        ("missing", None, None),
    ];
    for (what, bytes, said) in cases {
        let copy = copy_of(dir.path());
        let path = copy.path().join("summary");
        match &bytes {
            Some(b) => std::fs::write(&path, b).unwrap(),
            None => std::fs::remove_file(&path).unwrap(),
        }
        let report = eventfile::verify(copy.path()).unwrap();
        match said {
            Some(said) => assert!(
                report.problems.len() == 1
                    && report.problems[0].path == path
                    && report.problems[0].message.contains(said),
                "{what}: {:?}",
                report.problems
            ),
            None => assert!(report.is_sound(), "{what}: {:?}", report.problems),
        }
        assert!(report.notes.is_empty(), "{what}: {:?}", report.notes);
        let reader = Store::open_read_only(copy.path()).unwrap();
        assert_eq!(contents(&reader), expected, "{what}, read-only");
        drop(reader);
        let store = Store::open(copy.path()).unwrap();
        assert_eq!(contents(&store), expected, "{what}");
        // The versions carry on from the right place.
        let next = store
            .append(
                "a",
                eventfile::ExpectedVersion::Exact(expected.0[0].0),
                [ev("T", 1)],
            )
            .unwrap();
        assert_eq!(next.version, expected.0[0].0 + 1, "{what}");
        store.close().unwrap();
        // The close wrote a fresh one, which the next open uses.
        let store = Store::open(copy.path()).unwrap();
        assert_eq!(store.stream_version("a"), expected.0[0].0 + 1, "{what}");
        assert_eq!(
            stream(&store, "b", Read::forward()),
            expected.0[1].1,
            "{what}"
        );
    }
}

/// A close after a retention run that removed several segments at once (one removed range,
/// while the streams' lists still name each removed segment's base) writes a summary that the
/// next open takes: with every sealed sidecar unreadable, the opens still answer from it, and
/// `verify` finds it sound. (The open refused such a summary and read every sidecar, until
/// the close after that open wrote one anew.)
#[test]
fn a_summary_written_after_retention_removed_several_segments_is_used() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 8);
    let before = sealed_bases(dir.path());
    {
        let store = fast_store(dir.path(), 4096);
        let head = store.head_seq();
        let policy = eventfile::RetentionPolicy::keep_all().max_events(head / 2);
        store.set_retention_policy(policy).unwrap();
        store.run_retention(false).unwrap();
        store.close().unwrap();
    }
    let after = sealed_bases(dir.path());
    assert!(
        before.len() >= after.len() + 2,
        "retention removed fewer than two segments: {before:?} then {after:?}"
    );
    let report = eventfile::verify(dir.path()).unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    let expected = contents(&Store::open_read_only(dir.path()).unwrap());
    assert_opens_take_the_summary(dir.path(), &expected);
}

#[test]
fn a_summary_from_before_a_retention_run_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 6);
    let old = std::fs::read(dir.path().join("summary")).unwrap();
    let store = fast_store(dir.path(), 4096);
    let policy = eventfile::RetentionPolicy::keep_all().max_events(store.head_seq() / 2);
    store.set_retention_policy(policy).unwrap();
    let report = store.run_retention(false).unwrap();
    assert!(!report.segments.is_empty());
    let expected = contents(&store);
    drop(store);
    // The summary of the store as it was before the run: the manifest no longer matches it.
    std::fs::write(dir.path().join("summary"), old).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(contents(&store), expected);
}

#[test]
fn a_crash_after_a_clean_close_and_more_seals_opens_with_the_old_summary_as_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 3);
    let store = fast_store(dir.path(), 4096);
    fill_streams(&store, dir.path(), &STREAMS, 7);
    store.sync().unwrap();
    let expected = contents(&store);
    // The files as a crash would leave them: the summary is the one the first close wrote.
    let crashed = copy_of(dir.path());
    drop(store);
    let store = Store::open(crashed.path()).unwrap();
    assert_eq!(contents(&store), expected);
}

#[test]
fn verify_reports_a_summary_that_passes_its_checks_but_differs_from_the_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 4);
    assert!(eventfile::verify(dir.path()).unwrap().is_sound());
    // Stream `e` renamed `f` (still in name order), and the CRC made to match.
    let path = forge_summary(dir.path(), |bytes| {
        let at = bytes
            .windows(3)
            .rposition(|w| w == [1, 0, b'e'])
            .expect("stream e in the summary");
        bytes[at + 2] = b'f';
    });
    assert_verify_reports(dir.path(), &path);
    // Removing it, as the report says, gives the store back.
    std::fs::remove_file(&path).unwrap();
    assert!(eventfile::verify(dir.path()).unwrap().is_sound());
    assert!(Store::open(dir.path()).unwrap().stream_version("e") > 0);
}

/// A read-only handle opened from the summary, over a store with an old sealed segment damaged
/// along with its sidecar (found only when that segment is first used): a refresh that fails
/// (after a retention run the reader starts over and meets the damaged segment) returns the
/// error and leaves the handle's view as it was, never a state half rebuilt from the sidecars.
#[test]
fn a_failed_refresh_leaves_a_read_only_handle_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 8);
    let bases = sealed_bases(dir.path());
    damage_with_sidecar(dir.path(), bases[bases.len() - 2]);

    let reader = Store::open_read_only(dir.path()).unwrap();
    let view = |s: &Store| {
        (
            s.head_seq(),
            STREAMS.map(|name| s.stream_version(name)),
            s.read_stream("a", Read::backward().limit(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
        )
    };
    let before = view(&reader);

    // Segments removed by retention: the reader starts over, meets the damaged old segment.
    let writer = fast_store(dir.path(), 4096);
    let policy = eventfile::RetentionPolicy::keep_all().max_events(writer.head_seq() / 2);
    writer.set_retention_policy(policy).unwrap();
    assert!(!writer.run_retention(false).unwrap().segments.is_empty());
    let err = reader.refresh().expect_err("the damaged old segment");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert_eq!(view(&reader), before);
}

/// The same for a sealed segment's own fields in the summary (its last event's time, which
/// time lookups and age retention use before the sidecar is first read): `verify` compares them
/// with the sidecar's.
#[test]
fn verify_reports_a_summary_with_a_wrong_segment_time() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 4);
    let base = sealed_bases(dir.path())[1];
    let len = std::fs::metadata(dir.path().join(format!("{base:020}.jsonl")))
        .unwrap()
        .len();
    let path = forge_summary(dir.path(), |bytes| {
        let mut key = base.to_le_bytes().to_vec();
        key.extend_from_slice(&len.to_le_bytes());
        // The segment's entry: base, length, sidecar bytes, count, last time.
        let at = bytes
            .windows(16)
            .position(|w| w == key)
            .expect("the segment in the summary")
            + 32;
        let time = i64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        bytes[at..at + 8].copy_from_slice(&(time - 3_600_000_000).to_le_bytes());
    });
    assert_verify_reports(dir.path(), &path);
}

/// A stream's segment list stays in the summary's bytes and is decoded when a read asks for it
/// (issue 16), so the open checks every list where it is: one that names a segment past the
/// summary's table, or the same segment twice, makes the open ignore the summary (and read the
/// sidecars), even with its CRC made to match.
#[test]
fn a_summary_whose_lists_point_outside_its_table_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 6);
    let expected = contents(&Store::open_read_only(dir.path()).unwrap());
    let original = std::fs::read(dir.path().join("summary")).unwrap();
    // Stream `e`'s record: name length 1, `e`, pair count, then (point, version) varints.
    let pairs_at = |bytes: &[u8]| {
        let at = bytes
            .windows(3)
            .rposition(|w| w == [1, 0, b'e'])
            .expect("stream e in the summary");
        assert!(bytes[at + 3] >= 2, "e is in at least two segments");
        at + 4
    };
    let skip_varint = |bytes: &[u8], mut at: usize| {
        while bytes[at] & 0x80 != 0 {
            at += 1;
        }
        at + 1
    };
    // Replaces the varint at `at` by a longer one, `v`, moving the blocks after it.
    let put_varint = move |b: &mut Vec<u8>, at: usize, mut v: u64| {
        let mut new = Vec::new();
        while v >= 0x80 {
            new.push(v as u8 | 0x80);
            v >>= 7;
        }
        new.push(v as u8);
        let old = skip_varint(b, at) - at;
        let grown = new.len() - old;
        let blocks = summary_blocks(b);
        b.splice(at..at + old, new);
        let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        let (r, s, p) = (u64_at(b, 64), u64_at(b, 72), u64_at(b, 80));
        let directory = 112 + (r * 16 + s * 40 + p * 8) as usize;
        for (i, (offset, len)) in blocks.into_iter().enumerate() {
            let entry = directory + i * 16;
            if offset > at {
                let moved = (offset + grown) as u64;
                b[entry..entry + 8].copy_from_slice(&moved.to_le_bytes());
            } else if at < offset + len {
                let len = (len + grown) as u32;
                b[entry + 8..entry + 12].copy_from_slice(&len.to_le_bytes());
            }
        }
    };
    type Forge = Box<dyn Fn(&mut Vec<u8>)>;
    let forgeries: [(&str, Forge); 4] = [
        (
            // A version no log of this length holds: trusted, it would be the stream's, and
            // an append's `version + n` could overflow.
            "a version past the log",
            Box::new(move |b: &mut Vec<u8>| {
                let version = skip_varint(b, pairs_at(b));
                put_varint(b, version, 1 << 62);
            }),
        ),
        (
            "more events in the active segment than its checkpoint holds",
            Box::new(move |b: &mut Vec<u8>| {
                let k = b[pairs_at(b) - 1];
                assert!(k < 0x80);
                let mut active = pairs_at(b);
                for _ in 0..2 * k {
                    active = skip_varint(b, active);
                }
                put_varint(b, active, 1 << 62);
            }),
        ),
        (
            "past the table",
            Box::new(move |b: &mut Vec<u8>| {
                let at = pairs_at(b);
                b[at] = 0x7f;
            }),
        ),
        (
            "a segment twice",
            Box::new(move |b: &mut Vec<u8>| {
                let first = pairs_at(b);
                let second = skip_varint(b, skip_varint(b, first));
                b[second] = 0;
            }),
        ),
    ];
    for (what, forge) in forgeries {
        std::fs::write(dir.path().join("summary"), &original).unwrap();
        forge_summary(dir.path(), |b| forge(b));
        let reader = Store::open_read_only(dir.path()).unwrap();
        assert_eq!(contents(&reader), expected, "{what}, read-only");
        drop(reader);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(contents(&store), expected, "{what}");
    }
}

/// A closed store of `n` streams over a few sealed segments and the active one, so that its
/// summary has several blocks; every seventh stream has events only in the active segment.
fn many_streams(dir: &Path, n: usize) -> Vec<String> {
    let store = fast_store(dir, 64 * 1024);
    let names: Vec<String> = (0..n).map(|i| format!("k{:05}", 2 * i)).collect();
    for round in 0..3 {
        for (i, name) in names.iter().enumerate() {
            if round < 2 && i % 7 == 0 {
                continue;
            }
            append_one(&store, name, round);
        }
    }
    store.close().unwrap();
    names
}

/// Every stream's version and events, and the listing and count, as `store` reads them.
type View = (Vec<(u64, Vec<RecordedEvent>)>, Vec<(String, u64)>, usize);

/// What a read-only open of a copy of `dir` without its summary reads.
fn view_without_summary(dir: &Path, names: &[String]) -> View {
    let copy = copy_of(dir);
    std::fs::remove_file(copy.path().join("summary")).unwrap();
    view(&Store::open_read_only(copy.path()).unwrap(), names)
}

fn view(store: &Store, names: &[String]) -> View {
    let streams = names
        .iter()
        .map(|s| (store.stream_version(s), stream(store, s, Read::forward())))
        .collect();
    let listed = store
        .streams("", None, usize::MAX)
        .into_iter()
        .map(|i| (i.stream, i.version))
        .collect();
    (streams, listed, store.stream_count())
}

/// A block of the summary damaged after the close (its CRC no longer matches): the open still
/// takes the segments from the summary's head, and the first look-up in that block finds the
/// damage, so the table is built from the sidecars: every stream reads, lists and continues as
/// without a summary, and `verify` names it.
#[test]
fn a_damaged_summary_block_is_never_trusted_the_sidecars_stand_in() {
    let dir = tempfile::tempdir().unwrap();
    let names = many_streams(dir.path(), 1500);
    let bytes = std::fs::read(dir.path().join("summary")).unwrap();
    let blocks = summary_blocks(&bytes);
    assert!(blocks.len() >= 4, "{} blocks", blocks.len());
    let expected = view_without_summary(dir.path(), &names);
    assert_eq!(
        view(&Store::open_read_only(dir.path()).unwrap(), &names),
        expected
    );
    for which in [0, blocks.len() / 2, blocks.len() - 1] {
        let copy = copy_of(dir.path());
        let (offset, len) = blocks[which];
        let mut damaged = bytes.clone();
        damaged[offset + len / 2] ^= 0x10;
        let path = copy.path().join("summary");
        std::fs::write(&path, &damaged).unwrap();
        assert_verify_reports(copy.path(), &path);

        let reader = Store::open_read_only(copy.path()).unwrap();
        assert_eq!(view(&reader, &names), expected, "block {which}, read-only");
        drop(reader);
        let store = Store::open(copy.path()).unwrap();
        // A look-up in the damaged block first, then everything.
        let offset_name = names[names.len() * which / blocks.len()].clone();
        let version = store.stream_version(&offset_name);
        assert_eq!(view(&store, &names), expected, "block {which}");
        let r = store
            .append(
                &offset_name,
                eventfile::ExpectedVersion::Exact(version),
                [ev("T", 9)],
            )
            .unwrap();
        assert_eq!(r.version, version + 1, "block {which}");
        store.close().unwrap();
        // The close wrote a sound summary again.
        assert!(eventfile::verify(copy.path()).unwrap().is_sound());
        let store = Store::open(copy.path()).unwrap();
        assert_eq!(store.stream_version(&offset_name), version + 1);
        assert_eq!(store.stream_count(), expected.2);
    }
}

/// The records of a format-2 summary's block at `offset` (`len` bytes): where each name's
/// bytes start, and the name.
fn block_names(bytes: &[u8], offset: usize, len: usize) -> Vec<(usize, String)> {
    let varint = |at: &mut usize| {
        while bytes[*at] & 0x80 != 0 {
            *at += 1;
        }
        *at += 1;
    };
    let mut names = Vec::new();
    let mut at = offset;
    while at < offset + len {
        let n = u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
        names.push((
            at + 2,
            String::from_utf8(bytes[at + 2..at + 2 + n].to_vec()).unwrap(),
        ));
        at += 2 + n;
        let k = bytes[at];
        assert!(k < 0x80);
        for _ in 0..2 * u32::from(k) + 2 {
            varint(&mut at);
        }
    }
    names
}

/// A block whose names are out of order or not UTF-8, its CRCs made to match (what a faulty
/// close could write), is never trusted either, whether the stream after the misplaced name or
/// another of the block is looked up first, and a listing never returns it. A look-up that
/// stopped at the first name past the one it sought answered that a stream after a misplaced
/// name had no events, and an append expecting no stream then wrote its version 1 again. The
/// forms: a name too great for its place in the block; a block's last name past the next
/// block's first (a look-up of that stream goes to the next block); a name whose last byte is
/// not UTF-8 but still in order.
#[test]
fn a_summary_block_with_names_out_of_order_is_never_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let names = many_streams(dir.path(), 1500);
    let original = std::fs::read(dir.path().join("summary")).unwrap();
    let blocks = summary_blocks(&original);
    let which = blocks.len() / 2;
    let in_block = block_names(&original, blocks[which].0, blocks[which].1);
    let next_first = block_names(&original, blocks[which + 1].0, blocks[which + 1].1)[0]
        .1
        .clone();
    assert!(in_block.len() >= 4, "{} records", in_block.len());
    let middle = in_block.len() / 2;
    let (last_at, last) = in_block.last().unwrap().clone();
    assert_eq!(last.len(), next_first.len());
    // A name that differs from the next name before its last byte: 0xff there keeps the
    // order, so that only the UTF-8 check can find it.
    let j = (1..in_block.len() - 1)
        .find(|&j| {
            let (a, b) = (&in_block[j].1, &in_block[j + 1].1);
            a[..a.len() - 1] != b[..b.len() - 1]
        })
        .unwrap();
    let (unicode_at, unicode) = in_block[j].clone();
    let next = &in_block[j + 1].1;
    let mut forged = unicode.clone().into_bytes();
    *forged.last_mut().unwrap() = 0xff;
    assert!(
        forged.as_slice() < next.as_bytes(),
        "the forged name stays in order"
    );
    let forgeries: [(&str, usize, Vec<u8>, String); 3] = [
        (
            "a name too great for its place",
            in_block[middle].0,
            b"k99998".to_vec(),
            in_block[middle + 1].1.clone(),
        ),
        (
            "the last name past the next block's first",
            last_at,
            next_first.into_bytes(),
            last,
        ),
        (
            "a name not UTF-8",
            unicode_at + unicode.len() - 1,
            vec![0xff],
            unicode,
        ),
    ];
    let expected = view_without_summary(dir.path(), &names);
    let listing = |store: &Store| {
        let listed: Vec<(String, u64)> = store
            .streams("", None, usize::MAX)
            .into_iter()
            .map(|i| (i.stream, i.version))
            .collect();
        listed
    };
    for (what, at, bytes, sought) in forgeries {
        let version = store_version_in(&expected, &names, &sought);
        assert!(version > 0, "{what}: {sought} has events");
        for other_first in [false, true] {
            let copy = copy_of(dir.path());
            let path = forge_summary(copy.path(), |b| {
                b[at..at + bytes.len()].copy_from_slice(&bytes);
            });
            assert_verify_reports(copy.path(), &path);
            let reader = Store::open_read_only(copy.path()).unwrap();
            // (`assert!`: the listing has 1,500 names.)
            assert!(listing(&reader) == expected.1, "{what}: a listing first");
            drop(reader);
            let reader = Store::open_read_only(copy.path()).unwrap();
            if other_first {
                reader.stream_version(&in_block[1].1);
            }
            assert_eq!(reader.stream_version(&sought), version, "{what}, read-only");
            assert_eq!(view(&reader, &names), expected, "{what}, read-only");
            drop(reader);
            let store = Store::open(copy.path()).unwrap();
            if other_first {
                store.stream_version(&in_block[1].1);
            }
            let e = store
                .append(&sought, eventfile::ExpectedVersion::NoStream, [ev("T", 9)])
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Conflict, "{what}: {e}");
            assert_eq!(view(&store, &names), expected, "{what}");
        }
    }
}

/// The version `view` gave `stream`.
fn store_version_in(view: &View, names: &[String], stream: &str) -> u64 {
    let i = names.iter().position(|n| n == stream).unwrap();
    view.0[i].0
}

/// Listings merge the summary's streams with the streams loaded since the open (new ones, and
/// the summary's appended to): random rounds of appends, each followed by listings (whole, by
/// prefix, after a name, limited) compared with a sorted model; then again after a close.
#[test]
fn listings_merge_the_summary_with_new_streams_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let names = many_streams(dir.path(), 300);
    let mut model: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    {
        let store = Store::open_read_only(dir.path()).unwrap();
        for n in &names {
            model.insert(n.clone(), store.stream_version(n));
        }
    }
    let check = |store: &Store, model: &std::collections::BTreeMap<String, u64>, rng: &mut Rng| {
        let all: Vec<(String, u64)> = model.iter().map(|(n, v)| (n.clone(), *v)).collect();
        let listed: Vec<(String, u64)> = store
            .streams("", None, usize::MAX)
            .into_iter()
            .map(|i| (i.stream, i.version))
            .collect();
        assert_eq!(listed, all);
        assert_eq!(store.stream_count(), model.len());
        for _ in 0..5 {
            let prefix = ["", "k", "k0", "k001", "n", "z"][rng.below(6) as usize];
            let after = format!("k{:05}", rng.below(700));
            let limit = rng.below(40) as usize + 1;
            let want: Vec<(String, u64)> = all
                .iter()
                .filter(|(n, _)| n.starts_with(prefix) && n.as_str() > after.as_str())
                .take(limit)
                .cloned()
                .collect();
            let got: Vec<(String, u64)> = store
                .streams(prefix, Some(&after), limit)
                .into_iter()
                .map(|i| (i.stream, i.version))
                .collect();
            assert_eq!(got, want, "prefix {prefix:?} after {after} limit {limit}");
        }
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..2 {
        let store = fast_store(dir.path(), 64 * 1024);
        check(&store, &model, &mut rng);
        for round in [1u64, 3, 0, 20, 7, 150, 2] {
            for _ in 0..round {
                // A summary stream, a new one between them (odd numbers), or a new prefix.
                let name = match rng.below(3) {
                    0 => format!("k{:05}", 2 * rng.below(300)),
                    1 => format!("k{:05}", 2 * rng.below(350) + 1),
                    _ => format!("n{:03}", rng.below(100)),
                };
                let v = model.get(&name).copied().unwrap_or(0);
                let r = store
                    .append(&name, eventfile::ExpectedVersion::Exact(v), [ev("T", v)])
                    .unwrap();
                assert_eq!(r.version, v + 1, "{name}");
                model.insert(name, v + 1);
            }
            check(&store, &model, &mut rng);
        }
        store.close().unwrap();
        let store = Store::open_read_only(dir.path()).unwrap();
        check(&store, &model, &mut rng);
    }
}

/// Streams of the summary with events in the segment that was active at the open: that segment
/// sealed since (appends to other streams rolled it, twice), they read all their events, from
/// the writer, from a read-only handle that follows it, and after the next close.
#[test]
fn summary_streams_read_right_after_the_segment_active_at_the_open_is_sealed() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 4);
    let expected = contents(&Store::open_read_only(dir.path()).unwrap());
    let store = fast_store(dir.path(), 4096);
    let reader = Store::open_read_only(dir.path()).unwrap();
    let segments = files_with_ext(dir.path(), "jsonl").len();
    let mut appended = Vec::new();
    while files_with_ext(dir.path(), "jsonl").len() < segments + 2 {
        appended.push(append_one(&store, "other", appended.len() as u64).first_seq);
    }
    // The writer publishes what it made durable; the reader follows that far.
    store.sync().unwrap();
    reader.refresh().unwrap();
    for s in [&store, &reader] {
        for (name, (version, events)) in STREAMS.iter().zip(&expected.0) {
            assert_eq!(s.stream_version(name), *version, "{name}");
            assert_eq!(&stream(s, name, Read::forward()), events, "{name}");
        }
        assert_eq!(s.stream_version("other"), appended.len() as u64);
    }
    // One of them appended to now: it goes on from its version.
    let v = store.stream_version("c");
    let r = store
        .append("c", eventfile::ExpectedVersion::Exact(v), [ev("T", 1)])
        .unwrap();
    assert_eq!(r.version, v + 1);
    drop(reader);
    store.close().unwrap();
    assert!(eventfile::verify(dir.path()).unwrap().is_sound());
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(stream(&store, "b", Read::forward()), expected.0[1].1);
    assert_eq!(store.stream_version("c"), v + 1);
}

/// The summary vouches for the checkpoint the close wrote just before it (its CRC), and its
/// records count that checkpoint's events. A checkpoint damaged since, or another one in its
/// place (a crash after a later close wrote its checkpoint and before it wrote its summary),
/// is not trusted on the summary's word: it is checked in full (and the active segment scanned
/// if it fails), and its own stream counts are used.
#[test]
fn a_checkpoint_the_summary_does_not_vouch_for_is_checked_and_counted_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 4);
    let checkpoint = files_with_ext(dir.path(), "idx").pop().unwrap();
    let early_summary = std::fs::read(dir.path().join("summary")).unwrap();
    // More events in the same active segment, and a clean close: a newer checkpoint.
    let store = fast_store(dir.path(), 4096);
    let segments = files_with_ext(dir.path(), "jsonl").len();
    for (i, s) in STREAMS.iter().take(3).enumerate() {
        append_one(&store, s, 100 + i as u64);
    }
    assert_eq!(files_with_ext(dir.path(), "jsonl").len(), segments);
    store.close().unwrap();
    let expected = contents(&Store::open_read_only(dir.path()).unwrap());

    // The newer checkpoint with the older summary.
    let stale = copy_of(dir.path());
    std::fs::write(stale.path().join("summary"), &early_summary).unwrap();
    // The newer summary with its checkpoint damaged.
    let damaged = copy_of(dir.path());
    flip(&damaged.path().join(checkpoint.file_name().unwrap()), 200);
    for (what, copy) in [("stale summary", &stale), ("damaged checkpoint", &damaged)] {
        let reader = Store::open_read_only(copy.path()).unwrap();
        assert_eq!(contents(&reader), expected, "{what}, read-only");
        drop(reader);
        let store = Store::open(copy.path()).unwrap();
        assert_eq!(contents(&store), expected, "{what}");
        let v = store.stream_version("a");
        let r = store
            .append("a", eventfile::ExpectedVersion::Exact(v), [ev("T", 1)])
            .unwrap();
        assert_eq!(r.version, v + 1, "{what}");
    }
}

/// A summary whose CRCs hold but whose list names a segment where the stream has no event (a
/// pair repeating the version before it) is refused, as a damaged one is, and the sidecars stand
/// in: a stream read took such a pair for a negative count of versions and overflowed (found by
/// the `summary` fuzz target).
#[test]
fn a_list_naming_a_segment_without_the_streams_events_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 4);
    let expected = contents(&Store::open_read_only(dir.path()).unwrap());
    forge_summary(dir.path(), |b| {
        let first_block = summary_blocks(b)[0].0;
        // The record of "c": its name (a u16 length, then the bytes), k, then (base, version)
        // differences, one byte each in a store this small.
        let at = first_block
            + b[first_block..]
                .windows(3)
                .position(|w| w == [1, 0, b'c'])
                .unwrap();
        assert!(b[at + 3] >= 2, "c has events in several sealed segments");
        assert!(
            b[at + 7] > 0 && b[at + 7] < 0x80,
            "a one-byte version difference"
        );
        b[at + 7] = 0;
    });
    let store = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(contents(&store), expected);
}

/// Review: a head-only forgery (one list base moved from the first live sealed segment into the
/// removed range just below it, CRCs recomputed, no block touched) must be refused: taken, every
/// read of a stream would skip that segment without an error. The close writes a segment
/// removed since the open as its range's base, so the open can require bases to be exact.
#[test]
fn review_a_forged_base_inside_a_removed_range_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 8);
    {
        let store = fast_store(dir.path(), 4096);
        let policy = eventfile::RetentionPolicy::keep_all().max_events(store.head_seq() / 2);
        store.set_retention_policy(policy).unwrap();
        store.run_retention(false).unwrap();
        store.close().unwrap();
    }
    let live = sealed_bases(dir.path());
    let expected = contents(&Store::open_read_only(dir.path()).unwrap());
    let path = dir.path().join("summary");
    let mut bytes = std::fs::read(&path).unwrap();
    let (points_at, points) = summary_points(&bytes);
    let i = points
        .iter()
        .position(|&b| b == live[0])
        .expect("first live base is a point");
    assert!(i > 0 && points[i - 1] < live[0] - 1, "{points:?}");
    let at = points_at + i * 8;
    bytes[at..at + 8].copy_from_slice(&(live[0] - 1).to_le_bytes());
    recrc_summary(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    // An open refuses it (and reads the sidecars); `verify` names it.
    assert_verify_reports(dir.path(), &path);
    for read_only in [true, false] {
        let store = OpenOptions::new()
            .read_only(read_only)
            .open(dir.path())
            .unwrap();
        for (s, (version, events)) in STREAMS.iter().zip(&expected.0) {
            assert_eq!(store.stream_version(s), *version, "read-only {read_only}");
            let got = store
                .read_stream(s, Read::forward())
                .and_then(|it| it.collect::<Result<Vec<_>, _>>());
            if let Ok(got) = got {
                assert_eq!(
                    got.len(),
                    events.len(),
                    "stream {s}, read-only {read_only}: a read trusted a forged summary"
                );
            }
        }
        drop(store);
    }
}

/// Listing streams walks the summary around the block cache, as every scan reads: a listing
/// of a summary larger than the cache leaves what reads keep there, such as a hot stream's
/// blocks, in place.
#[test]
fn a_listing_does_not_flush_the_block_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 64 << 10);
    for i in 0..6000u64 {
        if i % 2000 == 0 {
            append_one(&store, "hot", i);
        }
        append_one(&store, &format!("a-stream-with-a-long-name-{i:05}"), i);
    }
    store.close().unwrap();
    let summary = std::fs::metadata(dir.path().join("summary")).unwrap().len();
    assert!(
        summary > 200 << 10,
        "the summary must outgrow the cache ({summary} bytes)"
    );

    let segment_reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&segment_reads);
    let note = move |path: &Path, _: u64, _: usize| {
        if path.extension().is_some_and(|e| e == "jsonl") {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let store = OpenOptions::new()
        .read_only(true)
        .read_cache_bytes(128 << 10)
        .storage(std::sync::Arc::new(NotingStorage(std::sync::Arc::new(
            note,
        ))))
        .open(dir.path())
        .unwrap();
    let reads_of_hot = || {
        let before = segment_reads.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(stream(&store, "hot", Read::forward()).len(), 3);
        segment_reads.load(std::sync::atomic::Ordering::SeqCst) - before
    };
    reads_of_hot();
    reads_of_hot(); // the second miss of each block: kept
    assert_eq!(reads_of_hot(), 0, "the hot stream is held");
    assert_eq!(store.streams("", None, 10_000).len(), 6001);
    assert_eq!(
        reads_of_hot(),
        0,
        "the listing left the hot stream's blocks"
    );
}

/// A summary whose CRCs hold but which gives a sealed segment a wrong last time (what a time
/// range uses to pass over a segment without its sidecar) is caught when the sidecar is first
/// used: the sidecar that disagrees is not trusted, and the segment, read again, disagrees too,
/// so the read fails with `Corrupt` instead of answering from a table that lies.
#[test]
fn a_summary_giving_a_segment_a_wrong_last_time_is_caught_at_first_use() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path(), 4);
    let log = all(&Store::open_read_only(dir.path()).unwrap());
    forge_summary(dir.path(), |b| {
        let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        let (r, s) = (u64_at(b, 64), u64_at(b, 72));
        assert!(s >= 2, "sealed segments: {s}");
        // The first sealed segment's record: base, length, sidecar bytes, count, last time.
        let at = 112 + r as usize * 16 + 32;
        let last = u64_at(b, at);
        assert_eq!(last as i64, log[u64_at(b, at - 8) as usize - 1].time);
        b[at..at + 8].copy_from_slice(&(last - 1).to_le_bytes());
    });
    let store = Store::open_read_only(dir.path()).unwrap();
    let err = store
        .read_stream("a", Read::forward())
        .unwrap()
        .find_map(Result::err)
        .expect("the first sealed segment's read fails");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}
