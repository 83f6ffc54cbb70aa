//! Model-based: the input is a sequence of operations (appends, retries, reads, deletions,
//! snapshots, retention, compaction, clean reopens, power losses) run against a store on the
//! simulated disk and against `MemoryStore`, the oracle (as in `tests/scenarios/model.rs`).
//! After every step the two agree: every outcome (results, or errors by their message), the whole
//! log (every live event with its seq, stream, version, type and data; dead ones absent), the head,
//! the stream versions and the snapshots; nothing panics.
//!
//! The oracle has no disk, so what only a file store does is followed here: retention (the
//! oracle keeps everything; the store is compared with it from the store's `log_start` on),
//! compaction (it may remove only segments whose events are all dead but for `$lifecycle` ones,
//! which go with them), reopens and power losses (between operations, so every change was
//! acknowledged and must survive).
#![no_main]

use std::sync::Arc;

use eventfile::sim::{Image, SimDisk};
use eventfile::{
    Error, EventIter, EventStore, ExpectedVersion, LIFECYCLE_STREAM, MemoryStore, NewEvent,
    OpenOptions, Read, RecordedEvent, RetentionPolicy, Snapshot, Store,
};
use libfuzzer_sys::fuzz_target;

const STREAMS: [&str; 3] = ["a", "b", "c"];

fn open(root: &std::path::Path, disk: &Arc<SimDisk>) -> Store {
    OpenOptions::new()
        .segment_bytes(4096)
        .storage(Arc::new(Arc::clone(disk)))
        .open(root)
        .expect("a store the store wrote opens")
}

/// What the two stores are compared on: everything but the id (generated ones differ) and the
/// time (each store has its own clock).
#[derive(Debug, PartialEq)]
struct Ev {
    seq: u64,
    stream: String,
    version: u64,
    event_type: String,
    data: String,
}

fn to_ev(e: &RecordedEvent) -> Ev {
    Ev {
        seq: e.seq,
        stream: e.stream.clone(),
        version: e.version,
        event_type: e.event_type.clone(),
        data: e.data.get().to_owned(),
    }
}

/// The events of a read, or its error as text.
fn collect(events: eventfile::Result<EventIter>) -> Result<Vec<Ev>, String> {
    let events = events.map_err(|e| e.to_string())?;
    events
        .map(|e| e.map(|e| to_ev(&e)).map_err(|e| e.to_string()))
        .collect()
}

/// Both stores gave the same outcome: equal values, or errors with equal messages.
fn same<T: PartialEq + std::fmt::Debug>(
    got: eventfile::Result<T>,
    want: eventfile::Result<T>,
    what: &str,
) {
    let got = got.map_err(|e| e.to_string());
    let want = want.map_err(|e| e.to_string());
    assert_eq!(got, want, "{what}");
}

/// What retention and compaction removed from the file store, which the oracle still has.
struct Removed {
    /// The oldest seq retention kept.
    log_start: u64,
    /// The seq ranges of the segments compaction removed.
    compacted: Vec<(u64, u64)>,
}

impl Removed {
    fn holds(&self, seq: u64) -> bool {
        seq < self.log_start || self.compacted.iter().any(|&(a, b)| a <= seq && seq <= b)
    }

    /// The oracle's answer as the store should give it: without what was removed.
    fn retained(&self, events: Result<Vec<Ev>, String>) -> Result<Vec<Ev>, String> {
        events.map(|v| v.into_iter().filter(|e| !self.holds(e.seq)).collect())
    }
}

fuzz_target!(|data: &[u8]| {
    let root = tempfile::tempdir().unwrap();
    let mut disk = SimDisk::new(root.path(), Image::new(), u64::MAX, 1);
    let mut store = open(root.path(), &disk);
    let oracle = MemoryStore::new();
    let mut removed = Removed {
        log_start: 1,
        compacted: Vec::new(),
    };
    // The last batch appended with ids: its stream and ids.
    let mut last_ids: Option<(&str, Vec<String>)> = None;
    let mut counter = 0u64;
    for (step, pair) in data.chunks(2).enumerate() {
        let (op, arg) = (pair[0], pair.get(1).copied().unwrap_or(0));
        let s = STREAMS[usize::from(arg) % 3];
        let what = format!("step {step}: op {op} arg {arg}");
        let file: &dyn EventStore = &store;
        match op % 10 {
            0..=3 => {
                let n = u64::from(arg / 3 % 4) + 1;
                let with_ids = op & 0x10 != 0;
                let mut ids = Vec::new();
                let batch: Vec<NewEvent> = (0..n)
                    .map(|_| {
                        counter += 1;
                        let e = NewEvent::new("T", serde_json::json!({ "c": counter }));
                        if with_ids {
                            ids.push(format!("id-{counter}"));
                            e.with_id(format!("id-{counter}"))
                        } else {
                            e
                        }
                    })
                    .collect();
                // The stream's true version: only a tombstone may refuse the append.
                let expected = ExpectedVersion::Exact(oracle.stream_version(s).unwrap());
                let want = oracle.append(s, expected, batch.clone());
                match &want {
                    Ok(r) => assert!(!r.replayed, "{what}: {r:?}"),
                    Err(Error::StreamDeleted { .. }) => {}
                    Err(e) => panic!("{what}: the oracle refused an append: {e}"),
                }
                let ok = want.is_ok();
                same(file.append(s, expected, batch), want, &what);
                if with_ids && ok {
                    last_ids = Some((s, ids));
                }
            }
            4 => {
                let Some((s, ids)) = &last_ids else {
                    continue;
                };
                // Ids are forgotten with the events retention or compaction removes: retry only a
                // batch that is still live (then all of it is: deletion removes a prefix) and
                // retained.
                match oracle.get_event(&ids[0]).unwrap() {
                    Some(e) if !removed.holds(e.seq) => {}
                    _ => continue,
                }
                let batch: Vec<NewEvent> = ids
                    .iter()
                    .map(|id| NewEvent::new("T", serde_json::json!({})).with_id(id.clone()))
                    .collect();
                let want = oracle.append(s, ExpectedVersion::Any, batch.clone());
                assert!(want.as_ref().is_ok_and(|r| r.replayed), "{what}: {want:?}");
                same(file.append(s, ExpectedVersion::Any, batch), want, &what);
            }
            5 => {
                let before = u64::from(arg / 3 % 8);
                let any = ExpectedVersion::Any;
                let (got, want) = match arg % 4 {
                    0 => (file.delete_stream(s, any), oracle.delete_stream(s, any)),
                    1 => (
                        file.tombstone_stream(s, any),
                        oracle.tombstone_stream(s, any),
                    ),
                    _ => (
                        file.truncate_stream(s, before),
                        oracle.truncate_stream(s, before),
                    ),
                };
                same(got, want, &what);
            }
            6 => {
                let v = oracle.stream_version(s).unwrap();
                let state =
                    serde_json::value::to_raw_value(&serde_json::json!({ "v": v })).unwrap();
                let kept = |r: eventfile::Result<Snapshot>| {
                    r.map(|x| (x.stream, x.version, x.state.get().to_owned()))
                };
                same(
                    kept(file.save_snapshot(s, v, &state)),
                    kept(oracle.save_snapshot(s, v, &state)),
                    &what,
                );
                if let Ok(Some(snap)) = file.load_snapshot(s) {
                    assert!(snap.version <= v, "{what}: a snapshot from the future");
                }
            }
            7 => {
                let keep = 10 + u64::from(arg);
                store
                    .set_retention_policy(RetentionPolicy::keep_all().max_events(keep))
                    .unwrap();
                let r = store.run_retention(false).unwrap();
                assert!(
                    r.log_start >= removed.log_start,
                    "{what}: the log start went back"
                );
                removed.log_start = r.log_start;
                let r = store.compact(false).unwrap();
                let live = collect(oracle.read_all(Read::forward())).unwrap();
                for seg in r.segments {
                    let kept = live.iter().find(|e| {
                        (seg.first_seq..=seg.last_seq).contains(&e.seq)
                            && e.stream != LIFECYCLE_STREAM
                    });
                    assert!(kept.is_none(), "{what}: compaction removed {kept:?}");
                    removed.compacted.push((seg.first_seq, seg.last_seq));
                }
            }
            8 => {
                drop(store);
                store = open(root.path(), &disk);
            }
            _ => {
                let image = disk.power_loss();
                drop(store);
                disk = SimDisk::new(root.path(), image, u64::MAX, u64::from(arg) + 1);
                store = open(root.path(), &disk);
            }
        }
        // After every step: the whole log (what retention and compaction left of it), the head,
        // the log start, the versions and the snapshots agree.
        let file: &dyn EventStore = &store;
        let all = collect(file.read_all(Read::forward()));
        let want = removed.retained(collect(oracle.read_all(Read::forward())));
        assert_eq!(all, want, "{what}");
        same(file.head_seq(), oracle.head_seq(), &what);
        assert_eq!(store.log_start(), removed.log_start, "{what}");
        for s in STREAMS {
            let what = format!("{what} {s}");
            same(file.stream_version(s), oracle.stream_version(s), &what);
            let version = |r: eventfile::Result<Option<Snapshot>>| r.map(|x| x.map(|x| x.version));
            same(
                version(file.load_snapshot(s)),
                version(oracle.load_snapshot(s)),
                &what,
            );
        }
    }
});
