//! A store of more sealed segments than may be mapped at once: every kind of read, lookup and
//! lifecycle operation works through the map cache, and the number of live maps stays bounded.

use crate::support::*;
use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions, Query, Read, Store};
use serde_json::json;
use std::path::Path;

/// At most this many sealed segments mapped at once in these tests.
const MAPPED: usize = 4;

fn open(dir: &Path) -> Store {
    OpenOptions::new()
        .segment_bytes(4096)
        .durability(Durability::None)
        .max_mapped_segments(MAPPED)
        .open(dir)
        .unwrap()
}

/// Live maps of files in `dir`, from the kernel's list of this process's maps.
#[cfg(target_os = "linux")]
fn maps_of(dir: &Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let dir = dir.to_str().unwrap();
    maps.lines().filter(|l| l.contains(dir)).count()
}

/// How many files under `dir` this process holds open: sealed segments are read, not mapped,
/// so the bound on them is one of descriptors (two per open sealed segment).
#[cfg(target_os = "linux")]
fn files_open_in(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// Files a store holds open besides its sealed segments: the directory and its lock, the
/// active segment, its checkpoint, `HEAD`, and one spare.
#[cfg(target_os = "linux")]
const OTHER_FILES: usize = 6;

/// 40 streams over 30 segments, with ids of our own.
fn build(dir: &Path) -> Store {
    let store = open(dir);
    let mut n = 0u64;
    while files_with_ext(dir, "jsonl").len() < 30 {
        let e = NewEvent::new(["A", "B", "C"][n as usize % 3], json!({ "n": n }))
            .with_id(format!("id-{n}"))
            .with_tag(format!("k={}", n % 5));
        store
            .append(&format!("s-{}", n % 40), ExpectedVersion::Any, [e])
            .unwrap();
        n += 1;
    }
    store
}

#[test]
fn reads_queries_and_lookups_work_with_few_segments_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let store = build(dir.path());
    let check = |store: &Store| {
        let events = all(store);
        assert_gapless(&events);
        let head = events.len() as u64;
        assert_eq!(store.head_seq(), head);
        // Backwards, one stream, a query, a count, a point lookup, a time lookup.
        let back: Vec<u64> = store
            .read_all(Read::backward())
            .unwrap()
            .map(|e| e.unwrap().seq)
            .collect();
        assert_eq!(back, (1..=head).rev().collect::<Vec<_>>());
        let s7 = stream(store, "s-7", Read::forward());
        assert_eq!(
            s7.len(),
            events.iter().filter(|e| e.stream == "s-7").count()
        );
        let q = Query::new().event_type("B").tag("k=3");
        let found: Vec<u64> = store.query(&q).unwrap().map(|e| e.unwrap().seq).collect();
        let want: Vec<u64> = events
            .iter()
            .filter(|e| e.event_type == "B" && e.tags.iter().any(|t| t == "k=3"))
            .map(|e| e.seq)
            .collect();
        assert_eq!(found, want);
        assert_eq!(store.count(&q).unwrap(), want.len() as u64);
        let e = store.get_event("id-17").unwrap().unwrap();
        assert_eq!(e.seq, 18);
        assert!(store.seq_at(events[99].time).unwrap() <= 100);
        let types = store.event_types(None, 10).unwrap();
        assert_eq!(types.iter().map(|t| t.count).sum::<u64>(), head);
    };
    check(&store);
    #[cfg(target_os = "linux")]
    assert!(
        maps_of(dir.path()) <= 2 * MAPPED + 1,
        "{} maps of the store's files",
        maps_of(dir.path())
    );
    #[cfg(target_os = "linux")]
    assert!(
        files_open_in(dir.path()) <= 2 * MAPPED + OTHER_FILES,
        "{} of the store's files open",
        files_open_in(dir.path())
    );
    // A retry of an old append is still recognised (its id lies in an unmapped segment).
    let retry = store
        .append(
            "s-3",
            ExpectedVersion::Any,
            [NewEvent::new("A", json!({"n": 3}))
                .with_id("id-3")
                .with_tag("k=3")],
        )
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.first_seq, 4);
    drop(store);

    let store = open(dir.path());
    check(&store);
    #[cfg(target_os = "linux")]
    assert!(maps_of(dir.path()) <= 2 * MAPPED + 1);
    #[cfg(target_os = "linux")]
    assert!(files_open_in(dir.path()) <= 2 * MAPPED + OTHER_FILES);
    let reader = OpenOptions::new()
        .read_only(true)
        .max_mapped_segments(MAPPED)
        .open(dir.path())
        .unwrap();
    check(&reader);
    drop(reader);
    // The same answers with the open segments mapped rather than read, within the same bound.
    let mapped = OpenOptions::new()
        .read_only(true)
        .max_mapped_segments(MAPPED)
        .map_sealed_segments(true)
        .open(dir.path())
        .unwrap();
    check(&mapped);
    #[cfg(target_os = "linux")]
    {
        let maps = maps_of(dir.path());
        assert!(maps > 2 && maps <= 2 * MAPPED + 2, "{maps} maps");
    }
}

#[test]
fn lifecycle_works_with_few_segments_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let store = build(dir.path());
    let head = store.head_seq();
    // Deleting streams, then compaction and retention, all over unmapped segments.
    for i in 0..40 {
        if i != 5 {
            store
                .delete_stream(&format!("s-{i}"), ExpectedVersion::Any)
                .unwrap();
        }
    }
    let compacted = store.compact(false).unwrap();
    assert!(!compacted.segments.is_empty());
    let retained = store
        .preview_retention(eventfile::RetentionPolicy::keep_all().max_events(head / 2))
        .unwrap();
    assert!(!retained.segments.is_empty());
    let s5 = stream(&store, "s-5", Read::forward());
    assert!(!s5.is_empty());
    assert!(s5.iter().all(|e| e.stream == "s-5"));
    drop(store);
    let store = open(dir.path());
    assert_eq!(stream(&store, "s-5", Read::forward()), s5);
    assert!(eventfile::verify(dir.path()).unwrap().is_sound());
}

/// A read that started before a segment it still has to visit was unmapped reads it anyway.
#[test]
fn a_read_survives_its_segments_being_unmapped() {
    let dir = tempfile::tempdir().unwrap();
    let store = build(dir.path());
    let mut first = store.read_all(Read::forward()).unwrap();
    let mut second = store.read_all(Read::backward()).unwrap();
    let mut seen = (Vec::new(), Vec::new());
    // Interleaved, the two reads map segments at both ends of the log in turn.
    loop {
        let a = first.next().map(|e| e.unwrap().seq);
        let b = second.next().map(|e| e.unwrap().seq);
        if a.is_none() && b.is_none() {
            break;
        }
        seen.0.extend(a);
        seen.1.extend(b);
    }
    let head = store.head_seq();
    assert_eq!(seen.0, (1..=head).collect::<Vec<_>>());
    assert_eq!(seen.1, (1..=head).rev().collect::<Vec<_>>());
}
