//! Readers in other processes open, refresh, read and query while the writer runs retention and
//! compaction over and over: no open or refresh ever fails because a segment vanished between
//! listing the directory and opening it, and every read is a run of seqs at or above the log
//! start the reader knew when it began that skips no live event, ending either at its head or in
//! `Error::Expired` (a segment it had not mapped yet was removed), never in a gap. (Deleted
//! events are hidden by design; every live event carries its number among the live events, so
//! a skipped one shows.)
//!
//! `EVENTFILE_RACE_SECONDS` sets how long the writer runs (default 30).

use crate::{child, child_dir, child_role};
use eventfile::{
    Durability, Error, ExpectedVersion, NewEvent, OpenOptions, Query, Read, RetentionPolicy, Store,
};
use serde_json::json;
use std::io::{BufRead, BufReader, Read as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const READERS: usize = 3;

/// What a reader did, counted.
#[derive(Default, Debug)]
struct Tally {
    opens: u64,
    refreshes: u64,
    reads: u64,
    expired: u64,
    queries: u64,
    events: u64,
}

/// Reads `events` to the end: seqs in order from at least `start`, no live event skipped; an
/// `Expired` error may end the read, any other error fails the test.
fn check_run(
    what: &str,
    events: eventfile::Result<eventfile::Events>,
    start: u64,
    step: i64,
    t: &mut Tally,
) {
    let events = match events {
        Ok(e) => e,
        Err(Error::Expired { .. }) => {
            t.expired += 1;
            return;
        }
        Err(e) => panic!("{what}: {e}"),
    };
    let (mut prev, mut prev_live): (Option<u64>, Option<u64>) = (None, None);
    for e in events {
        match e {
            Ok(e) => {
                assert!(
                    e.seq >= start,
                    "{what}: seq {} below log start {start}",
                    e.seq
                );
                if let Some(p) = prev {
                    assert!((e.seq as i64 - p as i64) * step > 0, "{what}: out of order");
                }
                prev = Some(e.seq);
                if let Some(live) = e.data_value()["live"].as_u64() {
                    if let Some(p) = prev_live {
                        assert_eq!(
                            live as i64,
                            p as i64 + step,
                            "{what}: live event {} skipped (at seq {})",
                            p as i64 + step,
                            e.seq
                        );
                    }
                    prev_live = Some(live);
                }
                t.events += 1;
            }
            Err(Error::Expired { .. }) => {
                t.expired += 1;
                return;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
    t.reads += 1;
}

/// One round of a reader: open, then read, query and refresh a few times.
fn reader_round(dir: &std::path::Path, t: &mut Tally) {
    let store = OpenOptions::new()
        .read_only(true)
        // Few maps, so that reads also reach segments they have not mapped yet.
        .max_mapped_segments(2)
        .open(dir)
        .unwrap_or_else(|e| panic!("read-only open: {e}"));
    t.opens += 1;
    for i in 0..4 {
        if i > 0 {
            store.refresh().unwrap_or_else(|e| panic!("refresh: {e}"));
            t.refreshes += 1;
        }
        let start = store.log_start();
        check_run("read_all", store.read_all(Read::forward()), start, 1, t);
        let head = store.head_seq();
        check_run(
            "read_all backward",
            store.read_all(Read::backward().limit(50)),
            start,
            -1,
            t,
        );
        // A query: ascending, matching, at or above the log start.
        let q = Query::new().event_type("Odd");
        match store.query(&q) {
            Ok(events) => {
                let mut prev = 0;
                for e in events {
                    match e {
                        Ok(e) => {
                            assert!(e.seq > prev && e.seq >= start && e.event_type == "Odd");
                            prev = e.seq;
                        }
                        Err(Error::Expired { .. }) => break,
                        Err(e) => panic!("query: {e}"),
                    }
                }
                t.queries += 1;
            }
            Err(Error::Expired { .. }) => t.expired += 1,
            Err(e) => panic!("query: {e}"),
        }
        match store.count(&q) {
            Ok(n) => assert!(n <= head),
            Err(Error::Expired { .. }) => t.expired += 1,
            Err(e) => panic!("count: {e}"),
        }
    }
}

#[test]
fn child_race_reader() {
    if child_role().as_deref() != Some("race-reader") {
        return;
    }
    let dir = child_dir();
    // The parent closes our stdin to stop us.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        flag.store(true, Ordering::Release);
    });
    let mut t = Tally::default();
    while !stop.load(Ordering::Acquire) {
        reader_round(&dir, &mut t);
    }
    println!(
        "TALLY {} {} {} {} {} {}",
        t.opens, t.refreshes, t.reads, t.expired, t.queries, t.events
    );
}

#[test]
fn readers_in_other_processes_never_fail_while_retention_and_compaction_run() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let seconds: u64 = std::env::var("EVENTFILE_RACE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let store = OpenOptions::new()
        .segment_bytes(4096)
        .durability(Durability::None)
        .open(dir.path())
        .unwrap();
    // Live events carry their number among the live events; doomed ones do not.
    let mut live = 0u64;
    let mut append = |store: &Store, stream: &str| {
        let data = if stream.starts_with("doomed") {
            json!({})
        } else {
            live += 1;
            json!({ "live": live })
        };
        let t = if live % 2 == 1 { "Odd" } else { "Even" };
        store
            .append(stream, ExpectedVersion::Any, [NewEvent::new(t, data)])
            .unwrap();
    };
    for i in 0..200 {
        append(&store, &format!("s-{}", i % 7));
    }
    let mut children: Vec<_> = (0..READERS)
        .map(|_| {
            child(
                "retention_race::child_race_reader",
                "race-reader",
                dir.path(),
            )
            .spawn()
            .unwrap()
        })
        .collect();

    let policy = RetentionPolicy::keep_all().max_events(120);
    let (mut retention_runs, mut compactions, mut removed) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut round = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        // Live streams, and one short-lived stream per round deleted whole, so that compaction
        // finds segments of dead events to remove.
        let doomed = format!("doomed-{round}");
        for i in 0..60 {
            append(&store, &format!("s-{}", i % 7));
            if i % 2 == 0 {
                append(&store, &doomed);
            }
        }
        store.delete_stream(&doomed, ExpectedVersion::Any).unwrap();
        let c = store.compact(false).unwrap();
        compactions += 1;
        removed += c.segments.len() as u64;
        let r = store.preview_retention(policy).unwrap();
        if !r.segments.is_empty() {
            store.set_retention_policy(policy).unwrap();
            let r = store.run_retention(false).unwrap();
            removed += r.segments.len() as u64;
            retention_runs += 1;
        }
        round += 1;
    }
    for c in &mut children {
        drop(c.stdin.take());
    }
    // Every reader is waited for before anything is asserted: the store must outlive them.
    let reports: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let out = BufReader::new(c.stdout.take().unwrap());
            // Read to the end: the child's last lines must not meet a closed pipe.
            let tally = out
                .lines()
                .map(Result::unwrap)
                .filter_map(|l| l.strip_prefix("TALLY ").map(str::to_owned))
                .last();
            (c.wait().unwrap().success(), tally)
        })
        .collect();
    let mut total = Tally::default();
    for (ok, tally) in reports {
        assert!(ok, "a reader process failed");
        let f: Vec<u64> = tally
            .expect("the reader reported")
            .split(' ')
            .map(|x| x.parse().unwrap())
            .collect();
        total.opens += f[0];
        total.refreshes += f[1];
        total.reads += f[2];
        total.expired += f[3];
        total.queries += f[4];
        total.events += f[5];
    }
    eprintln!(
        "{seconds} s: {round} rounds, {retention_runs} retention runs and {compactions} \
         compactions removing {removed} segments; readers: {total:?}"
    );
    assert!(removed > 0 && retention_runs > 0);
    assert!(total.opens >= READERS as u64 && total.reads > 0);
    assert!(eventfile::verify(dir.path()).unwrap().is_sound());
}
