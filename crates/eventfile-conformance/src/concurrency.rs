//! Concurrency with real threads: readers running alongside several appenders never observe a
//! gap, an event out of order, half a batch, or an event that changes or disappears; racing
//! writers of one stream each get their own versions. Threads meet only through the store, a
//! barrier to start together and a flag raised when the appenders are done: nothing waits on a
//! timer.

use std::collections::HashMap;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use eventfile::{
    Error, ErrorKind, EventStore, ExpectedVersion::*, NewEvent, Read, RecordedEvent, StreamAppend,
};
use serde_json::json;

use crate::Factory;
use crate::support::*;

/// An event of batch `batch` (of `size` events), at `index` in it.
fn member(batch: &str, index: u64, size: u64) -> NewEvent {
    NewEvent::new("Member", json!({ "batch": batch, "i": index, "of": size }))
}

/// The position of an event in its batch: (batch name, index, size).
fn position(e: &RecordedEvent) -> (String, u64, u64) {
    let v = e.data_value();
    (
        v["batch"].as_str().unwrap_or_default().to_owned(),
        v["i"].as_u64().unwrap_or(u64::MAX),
        v["of"].as_u64().unwrap_or(0),
    )
}

/// What one reader has seen so far, to check each new read against.
#[derive(Default)]
struct Seen {
    /// Every event seen, by seq: an event never changes once seen.
    events: Vec<RecordedEvent>,
    /// The highest head seen: the head never goes back.
    head: u64,
}

impl Seen {
    /// Checks a forward read of the whole log: seqs 1, 2, 3, ...; every event the same as
    /// when first seen; no fewer than a head seen before the read; every batch whole.
    fn log(&mut self, log: &[RecordedEvent], head_before: u64) {
        for (i, e) in log.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1, "a gap or disorder at {i}: {e:?}");
            match self.events.get(i) {
                Some(old) => assert_eq!(old, e, "an event changed"),
                None => self.events.push(e.clone()),
            }
        }
        assert!(
            log.len() as u64 >= head_before.max(self.head),
            "a read returned {} events after the head was {}",
            log.len(),
            head_before.max(self.head)
        );
        self.head = self.head.max(log.len() as u64);
        if let Some(last) = log.last() {
            let (_, i, of) = position(last);
            assert_eq!(i + 1, of, "half a batch is visible: {last:?}");
        }
    }

    /// Checks any other read against what was seen: every event seen is the one at its seq.
    fn event(&mut self, e: &RecordedEvent) {
        let i = (e.seq - 1) as usize;
        match self.events.get(i) {
            Some(old) => assert_eq!(old, e, "an event changed"),
            None if i == self.events.len() => self.events.push(e.clone()),
            None => {}
        }
    }
}

/// A reader's checks, over and over until the appenders are done, then once more: forward and
/// backward reads of the log, from positions and with limits; stream reads; the head.
fn reader(s: &dyn EventStore, streams: &[String], done: &AtomicBool) {
    let mut seen = Seen::default();
    loop {
        // Read the flag before the round: the round that sees it raised starts after every
        // append returned, and is the last.
        let finished = done.load(Ordering::Acquire);
        let h = head(s);
        assert!(
            h >= seen.head,
            "the head went back from {} to {h}",
            seen.head
        );
        let log = all(s);
        seen.log(&log, h);

        let back = collect(s.read_all(Read::backward()));
        let top = back.first().map_or(0, |e| e.seq);
        assert!(
            top >= seen.head,
            "a backward read starts at {top}, below {}",
            seen.head
        );
        if let Some(newest) = back.first() {
            let (_, i, of) = position(newest);
            assert_eq!(i + 1, of, "half a batch is visible going back: {newest:?}");
        }
        for (i, e) in back.iter().enumerate() {
            assert_eq!(e.seq, top - i as u64, "a gap or disorder going back: {e:?}");
            seen.event(e);
        }
        seen.head = seen.head.max(top);

        let from = 1 + seen.head / 2;
        let page = collect(s.read_all(Read::forward().from(from).limit(7)));
        for (i, e) in page.iter().enumerate() {
            assert_eq!(e.seq, from + i as u64, "a gap in a page: {e:?}");
            seen.event(e);
        }
        let at_least = (seen.head + 1).saturating_sub(from).min(7);
        assert!(
            page.len() as u64 >= at_least,
            "a page from {from} holds {}",
            page.len()
        );

        for name in streams {
            let events = stream(s, name, Read::forward());
            for (i, e) in events.iter().enumerate() {
                assert_eq!(e.version, i as u64 + 1, "a version gap in {name}: {e:?}");
                assert!(
                    i == 0 || e.seq > events[i - 1].seq,
                    "seqs out of order in {name}"
                );
                seen.event(e);
            }
            let back = stream(s, name, Read::backward().limit(3));
            for w in back.windows(2) {
                assert_eq!(w[0].version, w[1].version + 1, "{name} backwards");
            }
            assert!(back.first().map_or(0, |e| e.version) >= events.len() as u64);
        }
        if finished {
            return;
        }
    }
}

/// Several appenders (batches of one to four events, each to its own stream, to a shared
/// stream, or to both at once) and several readers at the same time: every read any reader
/// makes is gapless, ordered, consistent with all it saw before, and shows whole batches only.
/// Once an append returns, it is visible to the appender's next read.
pub fn readers_never_see_a_gap_or_events_out_of_order(factory: &Factory<'_>) {
    const APPENDERS: u64 = 3;
    const BATCHES: u64 = 40;
    const READERS: usize = 3;
    let s = factory();
    let store = &*s;
    let done = AtomicBool::new(false);
    // Everyone starts together, so that the readers read while the appenders append.
    let start = Barrier::new(READERS + APPENDERS as usize);
    let appending = AtomicUsize::new(APPENDERS as usize);
    let mut names: Vec<String> = (0..APPENDERS).map(|t| format!("own-{t}")).collect();
    names.push("shared".to_owned());
    std::thread::scope(|scope| {
        for _ in 0..READERS {
            let (names, done, start) = (&names, &done, &start);
            scope.spawn(move || {
                start.wait();
                reader(store, names, done);
            });
        }
        for t in 0..APPENDERS {
            let (done, appending, start) = (&done, &appending, &start);
            scope.spawn(move || {
                start.wait();
                let own = format!("own-{t}");
                let mut rng = Rng(0xc0c0 + t);
                for b in 0..BATCHES {
                    let batch = format!("{t}-{b}");
                    let size = 1 + rng.below(4);
                    let events = |from: u64, to: u64| -> Vec<NewEvent> {
                        (from..to).map(|i| member(&batch, i, size)).collect()
                    };
                    let last = match rng.below(3) {
                        0 => append(store, &own, events(0, size)).last_seq,
                        1 => append(store, "shared", events(0, size)).last_seq,
                        _ if size > 1 => {
                            let parts = [
                                StreamAppend::new(own.clone(), Any, events(0, 1)),
                                StreamAppend::new("shared", Any, events(1, size)),
                            ];
                            store.append_multi(&parts).unwrap().last_seq
                        }
                        _ => append(store, &own, events(0, size)).last_seq,
                    };
                    // Once acknowledged, visible.
                    assert!(head(store) >= last, "an acknowledged append is not visible");
                    let got = collect(store.read_all(Read::forward().from(last).limit(1)));
                    assert_eq!(
                        got.first().map(|e| (e.seq, position(e))),
                        Some((last, (batch.clone(), size - 1, size))),
                        "an acknowledged append reads back otherwise"
                    );
                }
                if appending.fetch_sub(1, Ordering::AcqRel) == 1 {
                    done.store(true, Ordering::Release);
                }
            });
        }
    });
    let log = all(store);
    assert_gapless(&log);
    // Every batch is there, whole and contiguous.
    let mut batches: HashMap<String, Vec<(u64, u64, u64)>> = HashMap::new();
    for e in &log {
        let (b, i, of) = position(e);
        batches.entry(b).or_default().push((e.seq, i, of));
    }
    assert_eq!(batches.len() as u64, APPENDERS * BATCHES);
    for (b, members) in &batches {
        let of = members[0].2;
        assert_eq!(members.len() as u64, of, "batch {b}");
        for (k, &(seq, i, _)) in members.iter().enumerate() {
            assert_eq!((seq, i), (members[0].0 + k as u64, k as u64), "batch {b}");
        }
    }
}

/// Writers racing on one stream, each reading its version and appending with `Exact`, retrying
/// on a conflict: every conflict is typed and names a newer version, every success gets the
/// next version, and in the end the stream holds each write once, numbered without a gap.
pub fn racing_writers_of_one_stream_get_distinct_versions(factory: &Factory<'_>) {
    const WRITERS: u64 = 4;
    const WRITES: u64 = 15;
    let s = factory();
    let store = &*s;
    let start = Barrier::new(WRITERS as usize);
    let won: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..WRITERS)
            .map(|t| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    let mut mine = Vec::new();
                    for w in 0..WRITES {
                        loop {
                            let v = version(store, "hot");
                            let e = NewEvent::new("Write", json!({ "t": t, "w": w }));
                            match store.append("hot", Exact(v), vec![e]) {
                                Ok(r) => {
                                    assert_eq!(r.version, v + 1);
                                    mine.push(r.version);
                                    break;
                                }
                                Err(e) if e.kind() == ErrorKind::Conflict => {
                                    let Error::WrongExpectedVersion { actual, .. } = e else {
                                        panic!("a conflict of another kind: {e:?}");
                                    };
                                    assert!(actual > v, "conflict at {actual}, expected {v}");
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let events = stream(store, "hot", Read::forward());
    assert_eq!(events.len() as u64, WRITERS * WRITES);
    assert_gapless(&all(store));
    let mut versions: Vec<u64> = won.iter().flatten().copied().collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=WRITERS * WRITES).collect::<Vec<_>>());
    for (t, mine) in won.iter().enumerate() {
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "writer {t}: {mine:?}");
        // Each writer's events are its own, in its own order.
        let data: Vec<u64> = mine
            .iter()
            .map(|&v| {
                let d = events[(v - 1) as usize].data_value();
                assert_eq!(d["t"].as_u64(), Some(t as u64));
                d["w"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(data, (0..WRITES).collect::<Vec<_>>());
    }
}
