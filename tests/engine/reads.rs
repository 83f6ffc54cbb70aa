//! Stream and global reads, forwards and backwards, across sealed and active segments.

use crate::support::*;
use eventfile::{Direction, Read};

/// 300 events over 7 streams in ~4 KiB segments: many sealed segments plus an active one.
fn fixture(dir: &std::path::Path) -> eventfile::Store {
    let store = fast_store(dir, 4096);
    for i in 0..300u64 {
        append_one(&store, &format!("s{}", i % 7), i);
    }
    store.sync().unwrap();
    store
}

#[test]
fn stream_reads_match_a_filter_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture(dir.path());
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".jsonl")
        })
        .count();
    assert!(
        segments > 5,
        "fixture should span many segments, got {segments}"
    );
    let log = all(&store);
    assert_eq!(log.len(), 300);
    assert_gapless(&log);
    for s in 0..7 {
        let name = format!("s{s}");
        let expect: Vec<u64> = log
            .iter()
            .filter(|e| e.stream == name)
            .map(|e| e.seq)
            .collect();
        let n = expect.len() as u64;
        let fwd: Vec<u64> = stream(&store, &name, Read::forward())
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(fwd, expect);
        let mut rev = expect.clone();
        rev.reverse();
        let bwd: Vec<u64> = stream(&store, &name, Read::backward())
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(bwd, rev);
        for from in [1, 2, n / 2, n, n + 1] {
            let got: Vec<u64> = stream(&store, &name, Read::forward().from(from))
                .iter()
                .map(|e| e.version)
                .collect();
            assert_eq!(
                got,
                (from.max(1)..=n).collect::<Vec<_>>(),
                "forward from {from}"
            );
            let got: Vec<u64> = stream(&store, &name, Read::backward().from(from))
                .iter()
                .map(|e| e.version)
                .collect();
            assert_eq!(
                got,
                (1..=from.min(n)).rev().collect::<Vec<_>>(),
                "backward from {from}"
            );
            let got: Vec<u64> = stream(&store, &name, Read::forward().from(from).limit(3))
                .iter()
                .map(|e| e.version)
                .collect();
            assert_eq!(got, (from.max(1)..=n).take(3).collect::<Vec<_>>());
        }
    }
    assert!(stream(&store, "nobody", Read::forward()).is_empty());
}

#[test]
fn global_reads_from_any_seq_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture(dir.path());
    for from in [0u64, 1, 2, 37, 150, 299, 300, 301, 1000] {
        let fwd: Vec<u64> = store
            .read_all(Read::forward().from(from))
            .unwrap()
            .map(|e| e.unwrap().seq)
            .collect();
        assert_eq!(
            fwd,
            (from.max(1)..=300).collect::<Vec<_>>(),
            "forward from {from}"
        );
        let bwd: Vec<u64> = store
            .read_all(Read::forward().direction(Direction::Backward).from(from))
            .unwrap()
            .map(|e| e.unwrap().seq)
            .collect();
        assert_eq!(
            bwd,
            (1..=from.min(300)).rev().collect::<Vec<_>>(),
            "backward from {from}"
        );
    }
    let newest: Vec<u64> = store
        .read_all(Read::backward().limit(2))
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(newest, [300, 299]);
}

/// A limited read of the log, or a query by position alone (which plan only as many records
/// per segment as the limit), is the unlimited read cut short: from any seq, either way, across sealed segments and an
/// active one continued from its checkpoint, before and after a stream is deleted (which
/// makes each segment's plan whole again).
#[test]
fn limited_log_reads_are_the_whole_read_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path()).close().unwrap();
    let store = eventfile::Store::open(dir.path()).unwrap();
    let seqs = |read: Read| -> Vec<u64> {
        store
            .read_all(read)
            .unwrap()
            .map(|e| e.unwrap().seq)
            .collect()
    };
    for deleted in [false, true] {
        if deleted {
            store
                .delete_stream("s1", eventfile::ExpectedVersion::Any)
                .unwrap();
        }
        for from in [0u64, 1, 37, 150, 299, 300] {
            for backward in [false, true] {
                let dir = if backward {
                    Direction::Backward
                } else {
                    Direction::Forward
                };
                let whole = seqs(Read::forward().direction(dir).from(from));
                for limit in [1usize, 2, 10, 99, 100, 101, 250, 1000] {
                    let cut = seqs(Read::forward().direction(dir).from(from).limit(limit));
                    let want = &whole[..limit.min(whole.len())];
                    assert_eq!(
                        cut, want,
                        "from {from}, {dir:?}, limit {limit}, deleted {deleted}"
                    );
                    // The same as a query by position (what `eventfile tail` asks).
                    let q = match backward {
                        false => eventfile::Query::new().from_seq(from),
                        true => eventfile::Query::new().to_seq(from).backward(),
                    };
                    let queried: Vec<u64> = store
                        .query(&q.limit(limit))
                        .unwrap()
                        .map(|e| e.unwrap().seq)
                        .collect();
                    assert_eq!(queried, want, "query from {from}, {dir:?}, limit {limit}");
                }
            }
        }
    }
}

#[test]
fn events_round_trip_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    let e = eventfile::NewEvent::new(
        "Shipped",
        serde_json::json!({"to": "Zürich \"HQ\"\n", "n": [1.5, null]}),
    )
    .with_id("my-id-1")
    .with_meta_entry("correlation_id", "c-1")
    .with_meta_entry("actor", "ann")
    .with_tag("region=eu")
    .with_tag("tier=gold");
    store
        .append("order-1", eventfile::ExpectedVersion::Any, [e])
        .unwrap();
    drop(store);
    let store = small_store(dir.path(), 1 << 20);
    let got = all(&store).remove(0);
    assert_eq!(got.id, "my-id-1");
    assert_eq!(got.event_type, "Shipped");
    assert_eq!(got.data_value()["to"], "Zürich \"HQ\"\n");
    assert_eq!(got.meta["correlation_id"], "c-1");
    assert_eq!(got.tags, ["region=eu", "tier=gold"]);
    let json: serde_json::Value = serde_json::from_str(&got.to_json()).unwrap();
    for key in [
        "seq", "id", "stream", "version", "type", "time", "data", "meta", "tags",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["time"].as_str().unwrap(), got.time_rfc3339());
}

#[test]
fn generated_ids_are_unique_uuids_and_times_never_decrease() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 1 << 20);
    for i in 0..200 {
        append_one(&store, "s", i);
    }
    let events = all(&store);
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 200);
    assert!(
        events
            .iter()
            .all(|e| e.id.len() == 36 && e.id.as_bytes()[14] == b'7')
    );
    assert!(events.windows(2).all(|w| w[0].time <= w[1].time));
}

#[test]
fn segment_lines_are_plain_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture(dir.path());
    drop(store);
    let mut lines = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "jsonl") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert!(v.is_object());
                lines += 1;
            }
        }
    }
    assert!(lines > 300);
}

#[test]
fn iterators_do_not_see_events_appended_after_they_were_made() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    append_one(&store, "s", 1);
    let it = store.read_all(Read::forward()).unwrap();
    append_one(&store, "s", 2);
    assert_eq!(it.count(), 1);
    assert_eq!(store.read_all(Read::forward()).unwrap().count(), 2);
}

#[test]
fn reads_cross_the_mapped_prefix_of_the_active_segment() {
    // Over 1 MiB in the active segment makes readers map its prefix; events appended after the
    // map was made are read with pread. Reads spanning both must agree with the log.
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 64 << 20);
    let blob = "x".repeat(400);
    let mut n = 0u64;
    let mut add = |count: u64| {
        for _ in 0..count {
            let e = eventfile::NewEvent::new("Big", serde_json::json!({ "n": n, "pad": blob }));
            store
                .append(&format!("s{}", n % 3), eventfile::ExpectedVersion::Any, [e])
                .unwrap();
            n += 1;
        }
    };
    add(3000);
    let first = all(&store); // maps the prefix
    assert_gapless(&first);
    add(500); // beyond the map: read with pread
    let log = all(&store);
    assert_eq!(log.len(), 3500);
    assert_gapless(&log);
    assert_eq!(&log[..3000], &first[..]);
    let back: Vec<u64> = store
        .read_all(Read::backward())
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(back, (1..=3500).rev().collect::<Vec<_>>());
    let s1: Vec<u64> = stream(&store, "s1", Read::forward())
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        s1,
        log.iter()
            .filter(|e| e.stream == "s1")
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    );
    add(3000); // grows past the remap threshold
    assert_eq!(all(&store).len(), 6500);
    assert_gapless(&all(&store));
}

/// The block cache changes no answer: stream reads, forwards and backwards, read again and
/// again (so that blocks are kept, then evicted by a cache of a few blocks), give what a store
/// with no cache gives, and what a filter of the log gives.
#[test]
fn reads_through_the_block_cache_answer_as_reads_without_it() {
    let dir = tempfile::tempdir().unwrap();
    drop(fixture(dir.path()));
    let open = |bytes: usize| {
        eventfile::OpenOptions::new()
            .read_only(true)
            .read_cache_bytes(bytes)
            .open(dir.path())
            .unwrap()
    };
    let uncached = open(0);
    let log = all(&uncached);
    assert_eq!(log.len(), 300);
    for bytes in [0, 3 * 4096, eventfile::DEFAULT_READ_CACHE_BYTES] {
        let store = open(bytes);
        for round in 0..3 {
            for s in 0..7 {
                let name = format!("s{s}");
                let expect: Vec<_> = log.iter().filter(|e| e.stream == name).cloned().collect();
                let fwd = stream(&store, &name, Read::forward());
                assert_eq!(fwd, expect, "cache of {bytes} bytes, round {round}, {name}");
                let mut bwd = stream(&store, &name, Read::backward());
                bwd.reverse();
                assert_eq!(bwd, expect, "cache of {bytes} bytes, round {round}, {name}");
            }
            assert_eq!(all(&store), log, "cache of {bytes} bytes, round {round}");
        }
    }
}

/// The first sealed segment of a closed store: its records' offsets and decoded events, and
/// its sidecar's path.
fn first_sealed(
    dir: &std::path::Path,
) -> (Vec<(usize, eventfile::RecordedEvent)>, std::path::PathBuf) {
    let segment = files_with_ext(dir, "jsonl").into_iter().min().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let mut records = Vec::new();
    let mut at = 0;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if let Some(e) = eventfile::internals::decode_record(&line[..line.len() - 1]) {
            records.push((at, e));
        }
        at += line.len();
    }
    (records, segment.with_extension("idx"))
}

/// Overwrites, in place, the u32s `old` (found once, side by side) of `file` with `new`, and
/// if `recrc`, makes every CRC of the sidecar match again (a forgery that passes its checks).
fn patch_u32s(file: &std::path::Path, old: &[u32], new: &[u32], recrc: bool) {
    let pat: Vec<u8> = old.iter().flat_map(|v| v.to_le_bytes()).collect();
    let rep: Vec<u8> = new.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut bytes = std::fs::read(file).unwrap();
    let found: Vec<usize> = (0..=bytes.len() - pat.len())
        .filter(|&i| bytes[i..i + pat.len()] == pat[..])
        .collect();
    assert_eq!(found.len(), 1, "{old:?} in {file:?}");
    bytes[found[0]..found[0] + rep.len()].copy_from_slice(&rep);
    if recrc {
        recrc_sidecar(&mut bytes);
    }
    // In place: the open store reads the file it checked, by `pread`.
    use std::io::{Seek, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    f.write_all(&bytes).unwrap();
}

/// A sidecar forged so that a posting or a position lands exactly on another valid record
/// (framed, its CRC good), every CRC of the sidecar made to match, so that it passes its
/// checks: a stream read used to pass over it as "not wanted" (versions 1..3 and 5..) and a
/// log read returned it in place of the record asked for; both are a corruption, with or
/// without the block cache. The same damage made after the sidecar's first use, its CRCs left
/// as they were, is found by the block sums, and the read is answered from the index made
/// again from the segment: exactly the events written.
#[test]
fn an_index_landing_on_another_valid_record_is_corrupt_not_a_gap_or_a_foreign_event() {
    let pristine = tempfile::tempdir().unwrap();
    let store = fast_store(pristine.path(), 16 * 1024);
    for i in 0..300u64 {
        append_one(&store, &format!("s{}", i % 7), i);
    }
    drop(store);
    let (records, _) = first_sealed(pristine.path());
    let ords: Vec<u32> = (0..records.len() as u32)
        .filter(|&o| records[o as usize].1.stream == "s1")
        .collect();
    assert!(ords.len() > 6, "{}", ords.len());
    assert_eq!(records[ords[3] as usize + 1].1.stream, "s2");
    let log = all(&eventfile::Store::open_read_only(pristine.path()).unwrap());
    assert_eq!(log.len(), 300);
    let s1: Vec<_> = log.iter().filter(|e| e.stream == "s1").cloned().collect();
    // s1's fourth posting names the s2 record after it.
    let mut bad = ords[..5].to_vec();
    bad[3] += 1;
    // Record 4's position points at record 5, and record 5's at record 6: a read of the log
    // from record 4 would begin with record 5.
    let at = |o: usize| records[o].0 as u32;
    let (good_at, bad_at) = ([at(3), at(4), at(5), at(6)], [at(3), at(5), at(6), at(6)]);
    let first = records[4].1.seq;
    let open = |dir: &std::path::Path, cache: usize| {
        eventfile::OpenOptions::new()
            .read_only(true)
            .read_cache_bytes(cache)
            .open(dir)
            .unwrap()
    };
    for cache in [0, eventfile::DEFAULT_READ_CACHE_BYTES] {
        for forged in [true, false] {
            let case = format!("cache {cache}, forged {forged}");
            let dir = copy_of(pristine.path());
            let (_, sidecar) = first_sealed(dir.path());
            let store = open(dir.path(), cache);
            if forged {
                patch_u32s(&sidecar, &ords[..5], &bad, true);
            } else {
                // Used first, then damaged under the open store.
                assert_eq!(stream(&store, "s1", Read::forward()), s1, "{case}");
                patch_u32s(&sidecar, &ords[..5], &bad, false);
            }
            for (read, backward) in [(Read::forward(), false), (Read::backward(), true)] {
                let got: Result<Vec<_>, _> = store.read_stream("s1", read).unwrap().collect();
                match got {
                    Err(eventfile::Error::Corrupt { path, .. }) if forged => {
                        assert_eq!(path, sidecar.with_extension("jsonl"), "{case}")
                    }
                    Ok(mut v) if !forged => {
                        if backward {
                            v.reverse();
                        }
                        assert_eq!(v, s1, "{case}");
                    }
                    Ok(v) => panic!("{case}, {read:?}: {} events, not an error", v.len()),
                    Err(e) => panic!("{case}, {read:?}: {e}"),
                }
            }
            // Unaffected streams still read; so does s1 from past the damaged segment.
            assert_eq!(stream(&store, "s3", Read::forward()).len(), 43, "{case}");
            let later = s1[ords.len()].version;
            assert_eq!(
                stream(&store, "s1", Read::forward().from(later)),
                s1[ords.len()..],
                "{case}"
            );
            drop(store);

            let dir = copy_of(pristine.path());
            let (_, sidecar) = first_sealed(dir.path());
            let store = open(dir.path(), cache);
            if !forged {
                assert_eq!(all(&store), log, "{case}");
            }
            patch_u32s(&sidecar, &good_at, &bad_at, forged);
            let got = store
                .read_all(Read::forward().from(first).limit(1))
                .unwrap()
                .next()
                .unwrap();
            match got {
                Err(eventfile::Error::Corrupt { .. }) if forged => {}
                // Found by the block sums, or answered from blocks read before the damage.
                Ok(e) if !forged && e.seq == first => {}
                other => panic!("{case}: {:?}", other.map(|e| e.seq)),
            }
        }
    }
}
