//! A `read_all` over sealed segments long enough to be read ahead on a second thread: it returns
//! exactly what the read without it returns (a query reads through the block cache, never ahead),
//! forwards and backwards, and damage in a run read ahead is reported at the record that holds
//! it, after every event before it, as without.

use std::path::Path;

use eventfile::{Error, OpenOptions, Query, Read, RecordedEvent, Store};
use serde_json::json;

use crate::support::{NotingStorage, fast_store, files_with_ext};

/// Events in the store: the first sealed segment holds about 8,000 (more than a scan reads
/// without a thread).
const EVENTS: u64 = 20_000;

fn build(dir: &Path) {
    let store = fast_store(dir, 2 << 20);
    for b in 0..EVENTS / 100 {
        let batch = (0..100).map(|i| {
            let n = b * 100 + i;
            eventfile::NewEvent::new(
                "Tick",
                json!({ "n": n, "text": "é 日本 \"quoted\" and plain", "pad": "x".repeat(n as usize % 64) }),
            )
            .with_tag(format!("t={}", n % 7))
            .with_meta_entry("actor", format!("user-{}", n % 13))
        });
        store
            .append(
                &format!("s-{}", b % 10),
                eventfile::ExpectedVersion::Any,
                batch,
            )
            .unwrap();
    }
    store.close().unwrap();
}

fn open(dir: &Path) -> Store {
    OpenOptions::new().read_only(true).open(dir).unwrap()
}

fn read_all(store: &Store, read: Read) -> Vec<Result<RecordedEvent, Error>> {
    store.read_all(read).unwrap().collect()
}

/// The same events read through the block cache (a query of everything is not a scan).
fn by_query(store: &Store, q: &Query) -> Vec<Result<RecordedEvent, Error>> {
    store.query(q).unwrap().collect()
}

fn first_segment(dir: &Path) -> std::path::PathBuf {
    files_with_ext(dir, "jsonl").into_iter().next().unwrap()
}

/// The offset of the line holding the `k`th record of `seg` (0 is the header).
fn line_start(seg: &Path, k: usize) -> usize {
    let bytes = std::fs::read(seg).unwrap();
    let mut at = 0;
    for _ in 0..k {
        at += bytes[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
    }
    at
}

#[test]
fn a_scan_read_ahead_returns_what_the_cached_read_returns() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    assert!(files_with_ext(dir.path(), "jsonl").len() >= 3);
    let store = open(dir.path());
    let ahead: Vec<RecordedEvent> = read_all(&store, Read::forward())
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let cached: Vec<RecordedEvent> = by_query(&store, &Query::new())
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ahead.len() as u64, EVENTS);
    assert_eq!(ahead, cached);
    assert!(ahead.iter().zip(1..).all(|(e, seq)| e.seq == seq));
    let mut back: Vec<RecordedEvent> = read_all(&store, Read::backward())
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    back.reverse();
    assert_eq!(back, cached);
    // From the middle of a segment, and stopped early: the thread ends with the iterator.
    let from: Vec<u64> = store
        .read_all(Read::forward().from(5_000))
        .unwrap()
        .take(3)
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(from, [5_000, 5_001, 5_002]);
    let mut half = store.read_all(Read::forward()).unwrap();
    assert_eq!(half.nth(9_999).unwrap().unwrap().seq, 10_000);
    drop(half);
    store.close().unwrap();
}

/// Damage at record `k` of the first segment, as `damage` makes it: a read ahead reports it
/// where the read through the cache does, after the same events.
fn damaged_at(k: usize, damage: impl Fn(&mut Vec<u8>, usize)) {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let seg = first_segment(dir.path());
    let at = line_start(&seg, k);
    let mut bytes = std::fs::read(&seg).unwrap();
    damage(&mut bytes, at);
    std::fs::write(&seg, bytes).unwrap();
    let store = open(dir.path());
    for (ahead, cached) in [
        (Read::forward(), Query::new()),
        (Read::backward(), Query::new().backward()),
    ] {
        let ahead = read_all(&store, ahead);
        let cached = by_query(&store, &cached);
        let (good, bad) = ahead.split_at(ahead.len() - 1);
        assert!(good.iter().all(Result::is_ok));
        match &bad[0] {
            Err(Error::Corrupt { path, offset, .. }) => {
                assert_eq!((path, *offset), (&seg, at as u64), "{bad:?}");
            }
            other => panic!("expected corruption at {at}, got {other:?}"),
        }
        assert_eq!(ahead.len(), cached.len());
        for (a, c) in ahead.iter().zip(&cached) {
            match (a, c) {
                (Ok(a), Ok(c)) => assert_eq!(a, c),
                (Err(a), Err(c)) => assert_eq!(a.to_string(), c.to_string()),
                _ => panic!("{a:?} against {c:?}"),
            }
        }
    }
}

#[test]
fn a_flipped_bit_in_a_run_read_ahead_is_reported_at_its_record() {
    // Far into the segment (a later run than the first) and within the first run.
    for k in [5_000, 3] {
        damaged_at(k, |bytes, at| bytes[at + 40] ^= 0x04);
    }
}

#[test]
fn a_record_that_is_not_utf8_under_a_good_crc_is_reported_at_its_record() {
    damaged_at(6_000, |bytes, at| {
        let len = bytes[at..].iter().position(|&b| b == b'\n').unwrap();
        // A byte of the id made invalid UTF-8, and the CRC made to match.
        bytes[at + 20] = 0xff;
        let body = &bytes[at..at + len - 18];
        let crc = format!("{:08x}", crc32fast::hash(body));
        bytes[at + len - 10..at + len - 2].copy_from_slice(crc.as_bytes());
    });
}

/// A subscription to every event catches up as `read_all` reads: ahead, on the second thread,
/// with the same events; one with a filter reads through the block cache, as a query does.
#[test]
fn a_subscription_to_the_whole_log_catches_up_reading_ahead() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let expected: Vec<RecordedEvent> = read_all(&open(dir.path()), Read::forward())
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    for (query, ahead) in [
        (Query::new(), true),
        (Query::new().event_type("Tick"), false),
    ] {
        // Whether this store read a segment on its read-ahead thread (tests run side by side
        // in one process: the flag is this store's own).
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let noted = std::sync::Arc::clone(&seen);
        let note = move |path: &Path, _: u64, _: usize| {
            if path.extension().is_some_and(|e| e == "jsonl")
                && std::thread::current().name() == Some("eventfile-read-ahead")
            {
                noted.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        };
        let store = OpenOptions::new()
            .read_only(true)
            .storage(std::sync::Arc::new(NotingStorage(std::sync::Arc::new(
                note,
            ))))
            .open(dir.path())
            .unwrap();
        let mut sub = store.subscribe(&query, 0).unwrap();
        let got: Vec<RecordedEvent> = (0..EVENTS)
            .map(|_| {
                sub.next_timeout(std::time::Duration::ZERO)
                    .unwrap()
                    .unwrap()
            })
            .collect();
        assert_eq!(got, expected);
        assert!(
            sub.next_timeout(std::time::Duration::ZERO)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            ahead,
            "{query:?}"
        );
    }
}
