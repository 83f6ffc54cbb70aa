//! Review of the lazy stream table (branch `lazytable`): a randomized differential test of
//! opens with the summary against opens without it, across sessions that append, delete,
//! truncate, tombstone, run retention and compaction, close cleanly or "crash".

use std::path::Path;

use eventfile::{ExpectedVersion, Read, Store};

use crate::support::*;

type View = (
    Vec<(String, u64, Result<Vec<(u64, u64)>, String>)>,
    Vec<(String, u64)>,
    usize,
    u64,
);

fn view(store: &Store, names: &[String]) -> View {
    let streams = names
        .iter()
        .map(|s| {
            let events = store
                .read_stream(s, Read::forward())
                .map_err(|e| format!("{:?}", e.kind()))
                .and_then(|it| {
                    it.map(|e| e.map(|e| (e.seq, e.version)))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| e.to_string())
                });
            (s.clone(), store.stream_version(s), events)
        })
        .collect();
    let listed = store
        .streams("", None, usize::MAX)
        .into_iter()
        .map(|i| (i.stream, i.version))
        .collect();
    (streams, listed, store.stream_count(), store.head_seq())
}

/// After a clean close: `verify` finds the store sound, and a read-only open reads `expected`.
fn assert_sound_after_the_close(dir: &Path, names: &[String], expected: &View) {
    let report = eventfile::verify(dir).unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    assert_eq!(
        &view(&Store::open_read_only(dir).unwrap(), names),
        expected,
        "after the close"
    );
}

fn without_summary(dir: &Path, names: &[String]) -> View {
    let copy = copy_of(dir);
    let _ = std::fs::remove_file(copy.path().join("summary"));
    view(&Store::open_read_only(copy.path()).unwrap(), names)
}

fn name(rng: &mut Rng) -> String {
    // Long names so the summary has several blocks.
    format!("stream-{:04}-{}", rng.below(400), "x".repeat(40))
}

/// Sessions of random operations; after each, the store opened with its summary (read-only,
/// then writable) must read exactly as it does without the summary, and appends with an exact
/// expected version (the model's) must succeed.
#[test]
fn review_random_sessions_read_the_same_with_and_without_the_summary() {
    for seed in 1..=6u64 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x1234_5678_9abc_def1));
        let mut dir = tempfile::tempdir().unwrap();
        let mut names: Vec<String> = Vec::new();
        for session in 0..8 {
            let store = fast_store(dir.path(), 16 * 1024);
            // Check before anything: the open used the summary.
            let expected = without_summary(dir.path(), &names);
            assert_eq!(
                view(&store, &names),
                expected,
                "seed {seed} session {session}: writable open"
            );
            let reader = Store::open_read_only(dir.path()).unwrap();
            for _ in 0..rng.below(300) + 20 {
                let op = rng.below(100);
                let s = if rng.below(4) == 0 && !names.is_empty() {
                    names[rng.below(names.len() as u64) as usize].clone()
                } else {
                    name(&mut rng)
                };
                if !names.contains(&s) {
                    names.push(s.clone());
                }
                let v = store.stream_version(&s);
                match op {
                    0..=84 => {
                        let n = rng.below(3) + 1;
                        let evs: Vec<_> = (0..n).map(|i| ev("T", i)).collect();
                        match store.append(&s, ExpectedVersion::Exact(v), evs) {
                            Ok(r) => assert_eq!(r.version, v + n, "seed {seed} {s}"),
                            Err(e) => assert_eq!(
                                e.kind(),
                                eventfile::ErrorKind::StreamDeleted,
                                "seed {seed} {s}: {e}"
                            ),
                        }
                    }
                    85..=89 if v > 1 => {
                        let _ = store.truncate_stream(&s, v);
                    }
                    90..=92 => {
                        let _ = store.delete_stream(&s, ExpectedVersion::Exact(v));
                    }
                    93 => {
                        let _ = store.tombstone_stream(&s, ExpectedVersion::Exact(v));
                    }
                    94..=95 => {
                        let _ = store.compact(false);
                    }
                    96 => {
                        let head = store.head_seq();
                        if head > 200 {
                            let policy =
                                eventfile::RetentionPolicy::keep_all().max_events(head * 9 / 10);
                            if store.set_retention_policy(policy).is_ok() {
                                let _ = store.run_retention(false);
                            }
                            let _ =
                                store.set_retention_policy(eventfile::RetentionPolicy::keep_all());
                        }
                    }
                    _ => {
                        store.sync().unwrap();
                        reader.refresh().unwrap();
                        let live = view(&store, &names);
                        assert_eq!(
                            view(&reader, &names),
                            live,
                            "seed {seed} session {session}: reader"
                        );
                    }
                }
            }
            store.sync().unwrap();
            let live = view(&store, &names);
            reader.refresh().unwrap();
            assert_eq!(
                view(&reader, &names),
                live,
                "seed {seed} session {session}: reader end"
            );
            drop(reader);
            if rng.below(3) == 0 {
                // A crash: the files as they are now, no close.
                let crashed = copy_of(dir.path());
                drop(store);
                dir = crashed;
            } else {
                drop(store);
            }
            let with = view(&Store::open_read_only(dir.path()).unwrap(), &names);
            assert_eq!(
                with, live,
                "seed {seed} session {session}: reopen read-only"
            );
            assert_eq!(
                without_summary(dir.path(), &names),
                live,
                "seed {seed} session {session}: without summary"
            );
            let report = eventfile::verify(dir.path()).unwrap();
            assert!(
                report.is_sound(),
                "seed {seed} session {session}: {:?}",
                report.problems
            );
        }
    }
}

/// Names of `n` streams over a few sealed segments and the active one, closed: the summary has
/// several blocks.
fn many_streams(dir: &Path, n: usize) -> Vec<String> {
    let store = fast_store(dir, 64 * 1024);
    let names: Vec<String> = (0..n).map(|i| format!("k{:05}", 2 * i)).collect();
    for round in 0..3 {
        for name in &names {
            append_one(&store, name, round);
        }
    }
    store.close().unwrap();
    names
}

/// [`many_streams`] of 1,500, the last truncated, closed: every open loads that deleted
/// stream, so it reads the summary's last block itself.
fn many_streams_last_truncated(dir: &Path) -> Vec<String> {
    let names = many_streams(dir, 1500);
    let store = fast_store(dir, 64 * 1024);
    store
        .truncate_stream(&names[names.len() - 1], 2)
        .expect("truncate the last stream");
    store.close().unwrap();
    names
}

/// Damages the last block of the summary in place (same inode: handles holding it open see it).
fn damage_last_block(dir: &Path) {
    let path = dir.join("summary");
    let mut bytes = std::fs::read(&path).unwrap();
    let blocks = summary_blocks(&bytes);
    let (offset, len) = *blocks.last().unwrap();
    bytes[offset + len / 2] ^= 0x10;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &bytes, 0).unwrap();
}

/// A read-only handle whose refresh finds a summary block damaged: it starts over from the
/// sidecars; if that fails too (an old sealed segment damaged with its sidecar), the refresh
/// must leave the handle as it was, not with part of the writer's new batches applied (head,
/// versions) and its scan position behind them (every later refresh then fails).
#[test]
fn review_a_refresh_failing_on_a_summary_block_leaves_the_reader_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let names = many_streams(dir.path(), 1500);
    let first = names[0].clone();
    let last = names[names.len() - 1].clone();
    let writer = fast_store(dir.path(), 64 * 1024);
    let reader = Store::open_read_only(dir.path()).unwrap();
    let snapshot = |s: &Store| {
        (
            s.head_seq(),
            s.stream_version(&first),
            s.stream_version(&last),
        )
    };
    let before = snapshot(&reader);
    // The writer appends to the first stream, then the last, while the summary is sound.
    let v_first = writer.stream_version(&first);
    writer
        .append(&first, ExpectedVersion::Exact(v_first), [ev("T", 2)])
        .unwrap();
    let v_last = writer.stream_version(&last);
    writer
        .append(&last, ExpectedVersion::Exact(v_last), [ev("T", 1)])
        .unwrap();
    writer.sync().unwrap();
    // Now the last block goes bad, and an old sealed segment with its sidecar.
    damage_last_block(dir.path());
    damage_old_segment(dir.path());
    let err = reader
        .refresh()
        .expect_err("the damaged summary and old segment");
    assert_eq!(err.kind(), eventfile::ErrorKind::Corrupt, "{err}");
    assert_eq!(
        (reader.head_seq(), reader.stream_version(&first)),
        (before.0, before.1),
        "a failed refresh changed the reader"
    );
    // And a later refresh does not report a sound segment as damaged.
    let again = reader.refresh().expect_err("still damaged");
    assert!(!again.to_string().contains("where"), "{again}");
}

/// Damages an old sealed segment along with its sidecar (removed): a rebuild from the sidecars
/// then fails.
fn damage_old_segment(dir: &Path) {
    let mut segs = files_with_ext(dir, "jsonl");
    segs.pop();
    let seg = segs[0].clone();
    std::fs::remove_file(seg.with_extension("idx")).unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    let digit = (at..bytes.len())
        .find(|&i| bytes[i].is_ascii_digit())
        .unwrap();
    bytes[digit] = if bytes[digit] == b'7' { b'8' } else { b'7' };
    std::fs::write(&seg, bytes).unwrap();
}

/// A summary block damaged where the sidecars cannot stand in (an old sealed segment is
/// damaged with its sidecar): a stream that holds events must not be reported at version 0
/// (nor the listing silently empty) — `EventStore::stream_version` returns a `Result` and has
/// an error to give.
#[test]
fn review_a_damaged_summary_block_is_an_error_through_the_trait_and_no_append_acts_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let names = many_streams(dir.path(), 1500);
    let last = names[names.len() - 1].clone();
    let expected = Store::open_read_only(dir.path())
        .unwrap()
        .stream_version(&last);
    assert_eq!(expected, 3);
    damage_last_block(dir.path());
    damage_old_segment(dir.path());
    let store = Store::open(dir.path()).unwrap();
    // The trait names the damage; the infallible method says 0, as its documentation says,
    // and an append cannot act on that 0.
    let got = eventfile::EventStore::stream_version(&store, &last);
    assert_eq!(
        got.map_err(|e| e.kind()),
        Err(eventfile::ErrorKind::Corrupt),
        "stream_version of a stream with 3 events"
    );
    assert_eq!(store.stream_version(&last), 0, "Store::stream_version");
    let append = store.append(
        &last,
        ExpectedVersion::Exact(0),
        [eventfile::NewEvent::new("T", serde_json::json!(1))],
    );
    assert_eq!(
        append.map_err(|e| e.kind()).err(),
        Some(eventfile::ErrorKind::Corrupt),
        "an append expecting the 0"
    );
}

/// The same damage, asked about what the stream's events cannot tell: a name with no events
/// that sorts into the damaged block (its absence would need the damaged segment's sidecar),
/// and a listing through the block. The trait gives a typed error; the inherent methods give
/// what their docs say (0, an empty page, the count without the deletions).
#[test]
fn review_a_damaged_summary_block_gives_the_trait_an_error_where_events_cannot_tell() {
    let dir = tempfile::tempdir().unwrap();
    let names = many_streams(dir.path(), 1500);
    let last = names[names.len() - 1].clone();
    {
        let store = fast_store(dir.path(), 64 * 1024);
        store.truncate_stream(&names[3], 2).unwrap();
        store.close().unwrap();
    }
    damage_last_block(dir.path());
    damage_old_segment(dir.path());
    let store = Store::open(dir.path()).unwrap();
    let absent = format!("{last}x");
    let err = eventfile::EventStore::stream_version(&store, &absent).unwrap_err();
    assert_eq!(err.kind(), eventfile::ErrorKind::Corrupt, "{err}");
    assert_eq!(store.stream_version(&absent), 0);
    let err = eventfile::EventStore::streams(&store, "", None, usize::MAX).unwrap_err();
    assert_eq!(err.kind(), eventfile::ErrorKind::Corrupt, "{err}");
    assert!(store.streams("", None, usize::MAX).is_empty());
    // Every stream with events, the truncated one and `$lifecycle` too.
    assert_eq!(store.stream_count(), names.len() + 1);
    // A stream in a sound block still answers, and the damaged block's streams from their
    // newest events.
    assert_eq!(store.stream_version(&names[0]), 3);
    assert_eq!(
        eventfile::EventStore::stream_version(&store, &names[0]).unwrap(),
        3
    );
}

/// `verify` reports a summary with a damaged block (docs/format.md: "reports a summary that
/// differs or has a damaged block"), also when the block is one the open itself reads: the
/// block holding a deleted stream (every deleted stream is loaded at open), where the open
/// silently starts over without the summary.
#[test]
fn review_verify_reports_a_damaged_block_that_the_open_reads() {
    let dir = tempfile::tempdir().unwrap();
    many_streams_last_truncated(dir.path());
    assert!(eventfile::verify(dir.path()).unwrap().is_sound());
    damage_last_block(dir.path());
    let path = dir.path().join("summary");
    let report = eventfile::verify(dir.path()).unwrap();
    assert!(
        report.problems.iter().any(|p| p.path == path),
        "verify does not name the damaged summary: {:?}",
        report.problems
    );
}

/// An open that meets a damaged block it reads itself (a deleted stream's) starts over
/// without the summary. A writer's open then removes it, so that the next open does not take
/// it and start over again; a read-only open writes nothing and leaves it. Both read what an
/// open without the summary reads, and the writer's clean close writes a sound one again.
#[test]
fn a_writer_open_removes_a_summary_with_a_damaged_block_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let names = many_streams_last_truncated(dir.path());
    let expected = without_summary(dir.path(), &names);
    damage_last_block(dir.path());
    let path = dir.path().join("summary");
    let damaged = std::fs::read(&path).unwrap();

    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(view(&reader, &names), expected, "read-only");
    drop(reader);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        damaged,
        "a read-only open wrote"
    );

    let store = Store::open(dir.path()).unwrap();
    assert!(!path.exists(), "the writer's open left the damaged summary");
    assert_eq!(view(&store, &names), expected, "writer");
    store.close().unwrap();
    assert!(path.exists(), "the clean close wrote no summary");
    assert_sound_after_the_close(dir.path(), &names, &expected);
}

/// A block the writer's open reads itself (a truncated stream's) that cannot be read, an I/O
/// error that may pass, is not damage: the open starts over without the summary, as for a
/// damaged block, and reads what an open without it reads, but leaves the file as it was (it
/// removed it, when the read error counted as damage). The clean close then writes a sound one.
#[test]
fn a_writer_open_keeps_a_summary_whose_block_it_could_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let names = many_streams_last_truncated(dir.path());
    let expected = without_summary(dir.path(), &names);
    let path = dir.path().join("summary");
    let bytes = std::fs::read(&path).unwrap();
    let storage = eventfile::FaultyStorage::new();
    // Every block fails to read; the header and the head read.
    storage.fail_reads_of("summary", summary_blocks(&bytes)[0].0 as u64);
    let store = eventfile::OpenOptions::new()
        .storage(std::sync::Arc::new(std::sync::Arc::clone(&storage)))
        .open(dir.path())
        .unwrap();
    assert_eq!(
        std::fs::read(&path).ok().as_ref(),
        Some(&bytes),
        "the writer's open removed or changed a summary it could not read"
    );
    assert_eq!(view(&store, &names), expected, "writer");
    // `verify` names it, and does not advise removing a file it merely could not read.
    let as_storage: std::sync::Arc<dyn eventfile::Storage> =
        std::sync::Arc::new(std::sync::Arc::clone(&storage));
    let report = eventfile::internals::verify_on(&as_storage, dir.path()).unwrap();
    let problem = report.problems.iter().find(|p| p.path == path);
    assert!(
        problem.is_some_and(|p| !p.message.contains("remove it")),
        "{:?}",
        report.problems
    );
    storage.heal_reads();
    store.close().unwrap();
    assert_sound_after_the_close(dir.path(), &names, &expected);
}

/// A block damaged after the close, in a store with deletions in other blocks: the fallback
/// (the table from the sidecars) must keep deletions, counts and listings, and appends must go
/// on from the right versions.
#[test]
fn review_a_damaged_block_with_deletions_elsewhere_reads_as_without_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let names = many_streams(dir.path(), 1500);
    {
        let store = fast_store(dir.path(), 64 * 1024);
        store.truncate_stream(&names[3], 2).unwrap();
        store
            .delete_stream(&names[10], ExpectedVersion::Any)
            .unwrap();
        store
            .tombstone_stream(&names[20], ExpectedVersion::Any)
            .unwrap();
        store.close().unwrap();
    }
    let path = dir.path().join("summary");
    let bytes = std::fs::read(&path).unwrap();
    let blocks = summary_blocks(&bytes);
    let (offset, len) = blocks[blocks.len() / 2];
    let mut damaged = bytes.clone();
    damaged[offset + len / 2] ^= 0x10;
    std::fs::write(&path, &damaged).unwrap();
    let expected = without_summary(dir.path(), &names);
    let store = Store::open(dir.path()).unwrap();
    // A listing first (it meets the damaged block), then everything.
    assert_eq!(view(&store, &names), expected);
    let mid = names[names.len() / 2].clone();
    let v = store.stream_version(&mid);
    assert_eq!(v, 3);
    store
        .append(&mid, ExpectedVersion::Exact(v), [ev("T", 1)])
        .unwrap();
    assert_eq!(store.stream_version(&mid), 4);
    let live = view(&store, &names);
    drop(store);
    assert_eq!(without_summary(dir.path(), &names), live);
    assert_eq!(
        view(&Store::open_read_only(dir.path()).unwrap(), &names),
        live
    );
}

/// A summary whose CRCs match but whose last list base is not a segment's (past the active
/// segment's base): nothing checks the bases against the segments and ranges, so the open
/// trusts it; once the segment active at the open is sealed, a read of a stream with events
/// in it must not panic (a debug assertion in `SealedList::push`) nor read wrong events.
#[test]
fn review_a_forged_list_base_past_the_active_segment_neither_panics_nor_misreads() {
    let dir = tempfile::tempdir().unwrap();
    let streams = ["a", "b", "c", "d", "e"];
    {
        let store = fast_store(dir.path(), 4096);
        fill_streams(&store, dir.path(), &streams, 4);
        store.close().unwrap();
    }
    let expected = stream(
        &Store::open_read_only(dir.path()).unwrap(),
        "a",
        Read::forward(),
    );
    let path = dir.path().join("summary");
    let mut bytes = std::fs::read(&path).unwrap();
    let (points_at, points) = summary_points(&bytes);
    assert!(!points.is_empty());
    let last_point = points_at + (points.len() - 1) * 8;
    let v = points[points.len() - 1] + 1_000_000;
    bytes[last_point..last_point + 8].copy_from_slice(&v.to_le_bytes());
    recrc_summary(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let store = fast_store(dir.path(), 4096);
    let segments = files_with_ext(dir.path(), "jsonl").len();
    let mut n = 0;
    while files_with_ext(dir.path(), "jsonl").len() == segments {
        append_one(&store, "other", n);
        n += 1;
    }
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store
            .read_stream("a", Read::forward())
            .map(|it| it.collect::<Result<Vec<_>, _>>())
    }));
    // Not dropped: its close would meet the same assertion while this test unwinds (an abort
    // of the whole test binary).
    std::mem::forget(store);
    match got {
        Err(_) => panic!("a read panicked on a forged summary"),
        Ok(Ok(Ok(events))) => assert_eq!(events, expected, "a read trusted a forged summary"),
        Ok(_) => {} // a typed error is fine
    }
}

/// A summary whose CRCs match but whose count of a sealed segment's events, or its last time,
/// is not the segment's: a time-bounded query and a count plan on these numbers without
/// opening the sidecar, so the open must refuse the summary (and read the sidecars), not pass
/// over the segment's events or overflow `base + count`.
#[test]
fn review_a_forged_segment_count_or_last_time_is_not_trusted() {
    use eventfile::{OpenOptions, Query};
    let dir = tempfile::tempdir().unwrap();
    let streams = ["a", "b", "c", "d", "e"];
    {
        let store = fast_store(dir.path(), 4096);
        fill_streams(&store, dir.path(), &streams, 4);
        store.close().unwrap();
    }
    let log = all(&Store::open_read_only(dir.path()).unwrap());
    let path = dir.path().join("summary");
    let good = std::fs::read(&path).unwrap();
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let (ranges, segments) = (u64_at(&good, 64) as usize, u64_at(&good, 72));
    assert!(segments >= 3, "{segments} sealed segments");
    // The second sealed segment's entry: base, length, index bytes, count, last time.
    let entry = 112 + ranges * 16 + 40;
    let base = u64_at(&good, entry);
    let since = log.iter().find(|e| e.seq == base).unwrap().time;
    let want: Vec<u64> = log
        .iter()
        .filter(|e| e.time >= since)
        .map(|e| e.seq)
        .collect();
    let after = log.iter().filter(|e| e.seq > base).count() as u64;
    for (field, value) in [(24, 1u64), (24, u64::MAX), (32, 0)] {
        let mut bytes = good.clone();
        bytes[entry + field..entry + field + 8].copy_from_slice(&value.to_le_bytes());
        recrc_summary(&mut bytes);
        for read_only in [true, false] {
            let case = format!("field at {field} set to {value}, read-only {read_only}");
            std::fs::write(&path, &bytes).unwrap();
            let store = OpenOptions::new()
                .read_only(read_only)
                .open(dir.path())
                .unwrap();
            let got: Vec<u64> = store
                .query(&Query::new().since(since))
                .unwrap()
                .map(|e| e.unwrap().seq)
                .collect();
            assert_eq!(got, want, "{case}");
            let counted = store.count(&Query::new().from_seq(base + 1)).unwrap();
            assert_eq!(counted, after, "{case}");
        }
    }
}
