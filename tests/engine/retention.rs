//! Retention and compaction: whole sealed segments only, seq numbers stable, live segments
//! untouched byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use eventfile::{Error, ExpectedVersion, OpenOptions, Query, Read, RetentionPolicy, Store, verify};
use sha2::{Digest, Sha256};

use crate::support::{all, append_one, ev, files_with_ext, fill_streams, small_store, stream};

const SEG: u64 = 4096;

fn segments(dir: &Path) -> Vec<PathBuf> {
    files_with_ext(dir, "jsonl")
}

fn sha256s(dir: &Path) -> BTreeMap<PathBuf, String> {
    segments(dir)
        .into_iter()
        .map(|p| {
            let digest = Sha256::digest(std::fs::read(&p).unwrap());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            (p, hex)
        })
        .collect()
}

fn assert_sound(dir: &Path) {
    let report = verify(dir).unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
}

#[test]
fn the_default_keeps_everything_and_a_policy_is_persisted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = small_store(dir.path(), SEG);
        fill_streams(&store, dir.path(), &["s"], 4);
        assert_eq!(store.retention_policy(), RetentionPolicy::keep_all());
        let r = store.run_retention(false).unwrap();
        assert_eq!((r.events, r.segments.len(), r.log_start), (0, 0, 1));
        let policy = RetentionPolicy::keep_all()
            .max_events(10)
            .max_age(Duration::from_secs(3600))
            .segment_max_age(Duration::from_secs(60));
        store.set_retention_policy(policy).unwrap();
    }
    let store = small_store(dir.path(), SEG);
    assert_eq!(
        store.retention_policy(),
        RetentionPolicy::keep_all()
            .max_events(10)
            .max_age(Duration::from_secs(3600))
            .segment_max_age(Duration::from_secs(60))
    );
}

#[test]
fn policies_that_would_remove_everything_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), SEG);
    for bad in [
        RetentionPolicy::keep_all().max_events(0),
        RetentionPolicy::keep_all().max_bytes(SEG - 1),
        RetentionPolicy::keep_all().max_age(Duration::from_millis(10)),
    ] {
        let err = store.set_retention_policy(bad).unwrap_err();
        assert!(matches!(err, Error::RetentionRefused { .. }), "{err}");
    }
    assert_eq!(store.retention_policy(), RetentionPolicy::keep_all());
}

#[test]
fn retention_by_count_removes_whole_old_segments_and_keeps_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let head;
    let log_start;
    {
        let store = small_store(dir.path(), SEG);
        fill_streams(&store, dir.path(), &["a", "b"], 8);
        head = store.head_seq();
        let before = sha256s(dir.path());
        store
            .set_retention_policy(RetentionPolicy::keep_all().max_events(head / 2))
            .unwrap();
        let dry = store.run_retention(true).unwrap();
        assert!(dry.dry_run && !dry.segments.is_empty());
        assert_eq!(sha256s(dir.path()), before, "a dry run removed something");
        let r = store.run_retention(false).unwrap();
        assert_eq!(
            (r.segments.clone(), r.events, r.bytes),
            (dry.segments, dry.events, dry.bytes)
        );
        log_start = r.log_start;
        assert_eq!(log_start, r.segments.last().unwrap().last_seq + 1);
        assert!(
            head - log_start + 1 >= head / 2,
            "kept fewer than the policy's count"
        );
        // What is left is byte for byte what was there.
        for (p, h) in sha256s(dir.path()) {
            if before.contains_key(&p) && p != crate::support::newest_segment(dir.path()) {
                assert_eq!(before[&p], h, "{} changed", p.display());
            }
        }
        assert_eq!(all(&store).first().unwrap().seq, log_start);
        let next = append_one(&store, "a", 0);
        assert_eq!(next.first_seq, head + 1);
    }
    let store = small_store(dir.path(), SEG);
    assert_eq!(store.head_seq(), head + 1);
    let got = all(&store);
    assert_eq!(got.first().unwrap().seq, log_start);
    assert_eq!(got.len() as u64, head + 2 - log_start);
    // Stream versions continue across the removed range.
    let a = stream(&store, "a", Read::forward());
    assert!(a.first().unwrap().version > 1);
    assert_eq!(a.last().unwrap().version, store.stream_version("a"));
    assert_eq!(
        store
            .append("b", ExpectedVersion::Exact(head / 2), [ev("T", 1)])
            .unwrap()
            .version,
        head / 2 + 1
    );
    // Reads that ask for removed positions are told so.
    let err = store.read_all(Read::forward().from(1)).unwrap_err();
    assert!(
        matches!(err, Error::Expired { requested: 1, first_available, .. } if first_available == log_start),
        "{err}"
    );
    let err = store.read_stream("a", Read::forward().from(1)).unwrap_err();
    assert!(matches!(err, Error::Expired { .. }), "{err}");
    assert!(store.query(&Query::new().from_seq(log_start - 1)).is_err());
    assert!(store.query(&Query::new().from_seq(log_start)).is_ok());
    drop(store);
    assert_sound(dir.path());
}

#[test]
fn retention_by_bytes_keeps_at_least_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), SEG);
    fill_streams(&store, dir.path(), &["s"], 10);
    store
        .set_retention_policy(RetentionPolicy::keep_all().max_bytes(4 * SEG))
        .unwrap();
    let r = store.run_retention(false).unwrap();
    assert!(!r.segments.is_empty());
    let left: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.ends_with(".jsonl") || n.ends_with(".idx")
        })
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(left >= 4 * SEG, "only {left} bytes left");
    assert!(
        left < 4 * SEG + 2 * SEG,
        "{left} bytes left: removed too little"
    );
}

#[test]
fn retention_by_age_and_segments_rolling_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(2_000_000_000_000_000));
    let clock = Arc::clone(&now);
    let store = OpenOptions::new()
        .segment_bytes(1 << 20)
        .clock(move || clock.load(Ordering::SeqCst))
        .open(dir.path())
        .unwrap();
    let hour = 3_600_000_000i64;
    store
        .set_retention_policy(
            RetentionPolicy::keep_all()
                .max_age(Duration::from_secs(24 * 3600))
                .segment_max_age(Duration::from_secs(3600)),
        )
        .unwrap();
    // Three hours of traffic, an event every 20 minutes: segments roll every hour although
    // they are far from full.
    for i in 0..9 {
        append_one(&store, "s", i);
        now.fetch_add(hour / 3, Ordering::SeqCst);
    }
    assert!(
        segments(dir.path()).len() >= 3,
        "{:?}",
        segments(dir.path())
    );
    // A day later the first hours expire; everything would, so the run is refused.
    now.fetch_add(30 * hour, Ordering::SeqCst);
    let err = store.run_retention(false).unwrap_err();
    assert!(matches!(err, Error::RetentionRefused { .. }), "{err}");
    assert_eq!(all(&store).len(), 9);
    // With a recent event, the old segments go.
    append_one(&store, "s", 100);
    let r = store.run_retention(false).unwrap();
    assert_eq!(r.events, 9, "{r:?}");
    assert_eq!(
        all(&store).iter().map(|e| e.version).collect::<Vec<_>>(),
        [10]
    );
    drop(store);
    assert_sound(dir.path());
}

#[test]
fn a_retention_run_racing_appends_loses_no_acknowledged_event_it_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), SEG);
    store
        .set_retention_policy(RetentionPolicy::keep_all().max_events(100))
        .unwrap();
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..300u64)
                    .map(|i| {
                        let r = store
                            .append(&format!("w{t}"), ExpectedVersion::Any, [ev("T", i)])
                            .unwrap();
                        (r.first_seq, r.version)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut runs = 0;
    let mut removed = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        removed += store.run_retention(false).unwrap().events;
        runs += 1;
    }
    let acked: Vec<Vec<(u64, u64)>> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    removed += store.run_retention(false).unwrap().events;
    assert!(runs > 0 && removed > 0, "runs {runs}, removed {removed}");
    drop(store);
    let store = small_store(dir.path(), SEG);
    let events = all(&store);
    let log_start = events.first().unwrap().seq;
    assert_eq!(store.head_seq(), 900);
    assert_eq!(events.len() as u64, 901 - log_start);
    let by_seq: BTreeMap<u64, (String, u64)> = events
        .iter()
        .map(|e| (e.seq, (e.stream.clone(), e.version)))
        .collect();
    for (t, acks) in acked.iter().enumerate() {
        for &(seq, version) in acks {
            if seq >= log_start {
                assert_eq!(by_seq[&seq], (format!("w{t}"), version), "seq {seq}");
            }
        }
        assert_eq!(store.stream_version(&format!("w{t}")), 300);
    }
    drop(store);
    assert_sound(dir.path());
}

#[test]
fn deletions_outlive_the_removal_of_their_lifecycle_events() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = small_store(dir.path(), SEG);
        append_one(&store, "gone", 0);
        append_one(&store, "cut", 0);
        append_one(&store, "cut", 1);
        store
            .tombstone_stream("gone", ExpectedVersion::Any)
            .unwrap();
        store.truncate_stream("cut", 2).unwrap();
        fill_streams(&store, dir.path(), &["x", "cut"], 6);
        store
            .set_retention_policy(RetentionPolicy::keep_all().max_events(20))
            .unwrap();
        let r = store.run_retention(false).unwrap();
        assert!(r.segments[0].first_seq == 1 && r.log_start > 5);
    }
    let store = small_store(dir.path(), SEG);
    assert!(matches!(
        store.append("gone", ExpectedVersion::Any, [ev("T", 1)]),
        Err(Error::StreamDeleted { .. })
    ));
    assert!(stream(&store, "$lifecycle", Read::forward()).is_empty());
    assert!(
        stream(&store, "cut", Read::forward())
            .iter()
            .all(|e| e.version >= 2)
    );
}

#[test]
fn a_run_cut_short_after_its_manifest_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), SEG);
    fill_streams(&store, dir.path(), &["s"], 6);
    drop(store);
    let before = crate::support::copy_of(dir.path());
    let store = small_store(dir.path(), SEG);
    store
        .set_retention_policy(RetentionPolicy::keep_all().max_events(50))
        .unwrap();
    let r = store.run_retention(false).unwrap();
    assert!(!r.segments.is_empty());
    let expected = all(&store);
    drop(store);
    // The crashed run: manifest and new config written, no segment unlinked yet.
    for f in ["removed.json", "eventfile.json"] {
        std::fs::copy(dir.path().join(f), before.path().join(f)).unwrap();
    }
    assert_eq!(
        verify(before.path())
            .unwrap()
            .notes
            .iter()
            .filter(|n| n.contains("removed by retention"))
            .count(),
        r.segments.len()
    );
    let store = small_store(before.path(), SEG);
    assert_eq!(all(&store), expected);
    assert_eq!(
        segments(before.path()),
        segments(dir.path())
            .iter()
            .map(|p| before.path().join(p.file_name().unwrap()))
            .collect::<Vec<_>>()
    );
    drop(store);
    assert_sound(before.path());
}

/// Compaction removes only events that no read returns. The store's `$lifecycle` events are
/// read (by `read_all`, subscriptions and `read_stream("$lifecycle")`, which a projection follows
/// to drop what a deletion removed), so a segment holding one is kept, however dead the rest:
/// removing it passed over the deletion for every reader, with no gap reported.
#[test]
fn compaction_keeps_a_segment_holding_a_lifecycle_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), SEG);
    append_one(&store, "tmp-0", 0);
    // The first segment: `tmp-*` events and the deletion of `tmp-0`; then segments of `tmp-1`
    // only; then live ones.
    store.delete_stream("tmp-0", ExpectedVersion::Any).unwrap();
    let mut i = 0;
    while segments(dir.path()).len() < 4 {
        append_one(&store, "tmp-1", i);
        i += 1;
    }
    let first = segments(dir.path())[0].clone();
    while segments(dir.path()).len() < 5 {
        append_one(&store, "keep", i);
        i += 1;
    }
    store.delete_stream("tmp-1", ExpectedVersion::Any).unwrap();
    let lifecycle = stream(&store, "$lifecycle", Read::forward());
    assert_eq!(lifecycle.len(), 2);
    let every = all(&store);
    let r = store.compact(false).unwrap();
    assert_eq!(
        r.segments.len(),
        2,
        "the two segments of tmp-1 alone: {r:?}"
    );
    assert!(
        first.exists(),
        "the segment holding the first deletion's event"
    );
    assert_eq!(stream(&store, "$lifecycle", Read::forward()), lifecycle);
    assert_eq!(all(&store), every);
    let mut sub = store.subscribe(&Query::new(), 0).unwrap();
    let seen: Vec<u64> =
        std::iter::from_fn(|| sub.next_timeout(std::time::Duration::ZERO).unwrap())
            .map(|e| e.seq)
            .collect();
    assert_eq!(seen, every.iter().map(|e| e.seq).collect::<Vec<_>>());
    drop(sub);
    drop(store);
    assert_sound(dir.path());
}

#[test]
fn compaction_removes_only_all_dead_segments_and_leaves_live_ones_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), SEG);
    // Segments 1-3: only `tmp-*` streams (to be deleted); then mixed; then live only.
    let mut i = 0;
    while segments(dir.path()).len() < 4 {
        append_one(&store, &format!("tmp-{}", i % 3), i);
        i += 1;
    }
    let dead_segments: Vec<PathBuf> = segments(dir.path())[..3].to_vec();
    while segments(dir.path()).len() < 6 {
        append_one(&store, if i % 2 == 0 { "tmp-0" } else { "keep" }, i);
        i += 1;
    }
    store.delete_stream("tmp-1", ExpectedVersion::Any).unwrap();
    store
        .tombstone_stream("tmp-2", ExpectedVersion::Any)
        .unwrap();
    let v0 = store.stream_version("tmp-0");
    store.truncate_stream("tmp-0", v0 - 2).unwrap();
    let nothing = store.compact(true).unwrap();
    let before = sha256s(dir.path());
    let reads_before = all(&store);
    assert_eq!(nothing.segments.len(), 3, "{nothing:?}");
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let expected_bytes: u64 = dead_segments
        .iter()
        .map(|p| size(p) + size(&p.with_extension("idx")))
        .sum();
    let r = store.compact(false).unwrap();
    assert_eq!(r.segments, nothing.segments);
    assert_eq!(r.bytes, expected_bytes);
    for p in &dead_segments {
        assert!(!p.exists(), "{} kept", p.display());
        assert!(!p.with_extension("idx").exists());
    }
    // Every remaining segment is unchanged (the active one only grew by the lifecycle events).
    let after = sha256s(dir.path());
    for (p, h) in &after {
        if before.contains_key(p) && *p != crate::support::newest_segment(dir.path()) {
            assert_eq!(&before[p], h, "{} was rewritten", p.display());
        }
    }
    assert_eq!(all(&store), reads_before);
    assert_eq!(store.compact(false).unwrap().segments.len(), 0);
    let keep = store.stream_version("keep");
    drop(store);
    let store = small_store(dir.path(), SEG);
    assert_eq!(all(&store), reads_before);
    assert_eq!(store.stream_version("keep"), keep);
    let r = store
        .append("tmp-1", ExpectedVersion::Any, [ev("T", 1)])
        .unwrap();
    assert!(r.version > 1);
    // Compaction does not move the log start: nothing live was removed.
    assert!(store.read_all(Read::forward().from(1)).is_ok());
    drop(store);
    assert_sound(dir.path());
}

#[test]
fn a_reader_follows_retention_on_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), SEG);
    fill_streams(&store, dir.path(), &["a", "b"], 3);
    let reader = Store::open_read_only(dir.path()).unwrap();
    let before = all(&reader).len();
    // The writer moves on: more segments, then retention removes some the reader never saw.
    fill_streams(&store, dir.path(), &["a", "b"], 9);
    store
        .set_retention_policy(RetentionPolicy::keep_all().max_events(60))
        .unwrap();
    let r = store.run_retention(false).unwrap();
    assert!(r.log_start > 1);
    append_one(&store, "a", 1);
    assert_eq!(reader.refresh().unwrap(), store.head_seq());
    let seen = all(&reader);
    assert!(seen.len() > before);
    assert_eq!(seen.last().unwrap().seq, store.head_seq());
    assert_eq!(reader.stream_version("a"), store.stream_version("a"));
    // A reader opened afterwards agrees on everything from the log start.
    let fresh = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(fresh.log_start(), r.log_start);
    let tail: Vec<_> = seen.into_iter().filter(|e| e.seq >= r.log_start).collect();
    assert_eq!(all(&fresh), tail);
}

#[test]
fn an_age_longer_than_the_clock_holds_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), SEG);
    fill_streams(&store, dir.path(), &["s"], 4);
    // 400,000,000 days: its microseconds do not fit an i64 and once wrapped to a negative age.
    let forever = Duration::from_secs(400_000_000 * 86_400);
    let r = store
        .preview_retention(RetentionPolicy::keep_all().max_age(forever))
        .unwrap();
    assert!(r.segments.is_empty(), "{r:?}");
    store
        .set_retention_policy(RetentionPolicy::keep_all().segment_max_age(forever))
        .unwrap();
    let before = segments(dir.path()).len();
    append_one(&store, "s", 0);
    assert_eq!(
        segments(dir.path()).len(),
        before,
        "no roll by a wrapped age"
    );
}
