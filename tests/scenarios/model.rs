//! Model-based property tests: random sequences of appends, retries, reads, queries, deletions,
//! snapshots, retention, compaction, clean reopens and power losses, run against the store (on
//! the simulated disk) and against [`MemoryStore`], the oracle; after every step the two must
//! agree. The oracle has no disk, so what only a file store does is the test's own to follow:
//! retention (the oracle keeps everything; the store's answers are compared with the oracle's
//! from the store's `log_start` on, and a position retention removed must be `Expired`),
//! compaction (it may remove only segments whose events are all dead but for `$lifecycle`
//! ones, which go with them), clean reopens and power losses (every acknowledged change
//! survives).
//! `EVENTFILE_MODEL_CASES` sets the number of sequences (default 256).

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::json;

use eventfile::sim::{Image, SimDisk};
use eventfile::{
    Error, EventIter, EventStore, ExpectedVersion, LIFECYCLE_STREAM, MemoryStore, NewEvent,
    OpenOptions, Query, Read, RecordedEvent, RetentionPolicy, Store,
};

const STREAMS: [&str; 4] = ["a", "b", "c", "d"];
const TYPES: [&str; 3] = ["Opened", "Moved", "Closed"];

#[derive(Debug, Clone)]
enum Op {
    /// Append `n` events to a stream, expecting its true version (or a wrong one).
    Append {
        stream: usize,
        n: u64,
        wrong: bool,
        with_ids: bool,
    },
    /// Append again the last batch appended with ids (a retry).
    Retry,
    ReadStream {
        stream: usize,
        from: u64,
        backward: bool,
        limit: usize,
    },
    ReadAll {
        from: u64,
        backward: bool,
        limit: usize,
    },
    QueryType {
        t: usize,
    },
    Truncate {
        stream: usize,
        before: u64,
    },
    Delete {
        stream: usize,
        hard: bool,
    },
    Snapshot {
        stream: usize,
    },
    Retention {
        keep: u64,
    },
    Compact,
    Reopen,
    PowerLoss,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..4usize, 1..4u64, prop::bool::weighted(0.1), any::<bool>())
            .prop_map(|(stream, n, wrong, with_ids)| Op::Append { stream, n, wrong, with_ids }),
        1 => Just(Op::Retry),
        2 => (0..4usize, 0..12u64, any::<bool>(), 1..20usize)
            .prop_map(|(stream, from, backward, limit)| Op::ReadStream { stream, from, backward, limit }),
        2 => (0..60u64, any::<bool>(), 1..50usize)
            .prop_map(|(from, backward, limit)| Op::ReadAll { from, backward, limit }),
        1 => (0..3usize).prop_map(|t| Op::QueryType { t }),
        1 => (0..4usize, 0..14u64).prop_map(|(stream, before)| Op::Truncate { stream, before }),
        1 => (0..4usize, prop::bool::weighted(0.3)).prop_map(|(stream, hard)| Op::Delete { stream, hard }),
        1 => (0..4usize).prop_map(|stream| Op::Snapshot { stream }),
        1 => (20..80u64).prop_map(|keep| Op::Retention { keep }),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => Just(Op::PowerLoss),
    ]
}

/// What the two stores are compared on: everything but the id (generated ones differ) and the
/// time (each store has its own clock).
#[derive(Debug, Clone, PartialEq)]
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

/// How the model test reads: from `from` (0: the start) in a direction, at most `limit`.
fn read(from: u64, backward: bool, limit: usize) -> Read {
    let read = if backward {
        Read::backward()
    } else {
        Read::forward()
    };
    if from > 0 { read.from(from) } else { read }.limit(limit)
}

/// The events of a read, or its error as text (errors are compared by their message, which
/// names the variant's fields).
fn collect(events: eventfile::Result<EventIter>) -> Result<Vec<Ev>, String> {
    let events = events.map_err(|e| e.to_string())?;
    events
        .map(|e| e.map(|e| to_ev(&e)).map_err(|e| e.to_string()))
        .collect()
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

    /// The oracle's answer as the store should give it: without what was removed, at most
    /// `limit`.
    fn retained(&self, events: Result<Vec<Ev>, String>, limit: usize) -> Result<Vec<Ev>, String> {
        events.map(|v| {
            v.into_iter()
                .filter(|e| !self.holds(e.seq))
                .take(limit)
                .collect()
        })
    }
}

/// Checks that both stores gave the same outcome: equal values, or errors with equal messages.
fn same<T: PartialEq + std::fmt::Debug>(
    got: eventfile::Result<T>,
    want: eventfile::Result<T>,
    ctx: &str,
) -> Result<(), TestCaseError> {
    let got = got.map_err(|e| e.to_string());
    let want = want.map_err(|e| e.to_string());
    prop_assert_eq!(got, want, "{}", ctx);
    Ok(())
}

fn open(root: &Path, disk: &Arc<SimDisk>) -> Store {
    OpenOptions::new()
        .segment_bytes(4096)
        .storage(Arc::new(Arc::clone(disk)))
        .open(root)
        .expect("open")
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let root = tempfile::tempdir().unwrap();
    let mut disk = SimDisk::new(root.path(), Image::new(), u64::MAX, 1);
    let mut store = open(root.path(), &disk);
    let oracle = MemoryStore::new();
    // What only the file store removes.
    let mut removed = Removed {
        log_start: 1,
        compacted: Vec::new(),
    };
    // Makes every event's data and id unique.
    let mut counter = 0u64;
    // The last batch appended with ids: its stream and ids.
    let mut last_with_ids: Option<(String, Vec<String>)> = None;
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = format!("step {step}: {op:?}");
        // The store through the trait, as the oracle is used: the same methods on both.
        let file: &dyn EventStore = &store;
        match op {
            Op::Append {
                stream,
                n,
                wrong,
                with_ids,
            } => {
                let s = STREAMS[stream];
                let v = oracle.stream_version(s).unwrap();
                let expected = ExpectedVersion::Exact(if wrong { v + 1 } else { v });
                let mut ids = Vec::new();
                let events: Vec<NewEvent> = (0..n)
                    .map(|_| {
                        counter += 1;
                        let e =
                            NewEvent::new(TYPES[(counter % 3) as usize], json!({ "n": counter }));
                        if with_ids {
                            let id = format!("id-{counter}");
                            ids.push(id.clone());
                            e.with_id(id)
                        } else {
                            e
                        }
                    })
                    .collect();
                let want = oracle.append(s, expected, events.clone());
                let ok = want.is_ok();
                same(file.append(s, expected, events), want, &ctx)?;
                if with_ids && ok {
                    last_with_ids = Some((s.into(), ids));
                }
            }
            Op::Retry => {
                let Some((s, ids)) = last_with_ids.clone() else {
                    continue;
                };
                // Ids are forgotten with the events retention or compaction removes: retry only
                // a batch that is still live (then all of it is: deletion removes a prefix) and
                // retained.
                match oracle.get_event(&ids[0]).unwrap() {
                    Some(e) if !removed.holds(e.seq) => {}
                    _ => continue,
                }
                let events: Vec<NewEvent> = ids
                    .iter()
                    .map(|id| NewEvent::new("Retry", json!({})).with_id(id.clone()))
                    .collect();
                let want = oracle.append(&s, ExpectedVersion::Any, events.clone());
                prop_assert!(want.as_ref().is_ok_and(|r| r.replayed), "{ctx}: {want:?}");
                same(file.append(&s, ExpectedVersion::Any, events), want, &ctx)?;
            }
            Op::ReadStream {
                stream,
                from,
                backward,
                limit,
            } => {
                let s = STREAMS[stream];
                let got = file.read_stream(s, read(from, backward, limit));
                // A live version retention removed, asked for by position, is refused.
                let at_from = collect(oracle.read_stream(s, Read::forward().from(from).limit(1)));
                let expired = from > 0
                    && at_from.is_ok_and(|v| {
                        v.first()
                            .is_some_and(|e| e.version == from && e.seq < removed.log_start)
                    });
                if expired {
                    prop_assert!(matches!(got, Err(Error::Expired { .. })), "{ctx}");
                    continue;
                }
                let want = collect(oracle.read_stream(s, read(from, backward, usize::MAX)));
                prop_assert_eq!(collect(got), removed.retained(want, limit), "{}", ctx);
            }
            Op::ReadAll {
                from,
                backward,
                limit,
            } => {
                let got = file.read_all(read(from, backward, limit));
                if from > 0 && from < removed.log_start {
                    prop_assert!(matches!(got, Err(Error::Expired { .. })), "{ctx}");
                    continue;
                }
                let want = collect(oracle.read_all(read(from, backward, usize::MAX)));
                prop_assert_eq!(collect(got), removed.retained(want, limit), "{}", ctx);
            }
            Op::QueryType { t } => {
                let q = Query::new().event_type(TYPES[t]);
                let want = removed.retained(collect(oracle.query(&q)), usize::MAX);
                let n = want.as_ref().map(|v| v.len() as u64).unwrap_or_default();
                prop_assert_eq!(collect(file.query(&q)), want, "{}", ctx);
                prop_assert_eq!(file.count(&q).unwrap(), n, "{}", ctx);
            }
            Op::Truncate { stream, before } => {
                let s = STREAMS[stream];
                same(
                    file.truncate_stream(s, before),
                    oracle.truncate_stream(s, before),
                    &ctx,
                )?;
            }
            Op::Delete { stream, hard } => {
                let s = STREAMS[stream];
                let any = ExpectedVersion::Any;
                let (got, want) = if hard {
                    (
                        file.tombstone_stream(s, any),
                        oracle.tombstone_stream(s, any),
                    )
                } else {
                    (file.delete_stream(s, any), oracle.delete_stream(s, any))
                };
                same(got, want, &ctx)?;
            }
            Op::Snapshot { stream } => {
                let s = STREAMS[stream];
                let v = oracle.stream_version(s).unwrap();
                let state = serde_json::value::to_raw_value(&json!({ "v": v })).unwrap();
                let kept = |r: eventfile::Result<eventfile::Snapshot>| {
                    r.map(|x| (x.stream, x.version, x.state.get().to_owned()))
                };
                same(
                    kept(file.save_snapshot(s, v, &state)),
                    kept(oracle.save_snapshot(s, v, &state)),
                    &ctx,
                )?;
            }
            Op::Retention { keep } => {
                store
                    .set_retention_policy(RetentionPolicy::keep_all().max_events(keep))
                    .unwrap();
                match store.run_retention(false) {
                    Ok(r) => {
                        prop_assert!(r.log_start >= removed.log_start, "{ctx}");
                        removed.log_start = r.log_start;
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("{ctx}: {e}"))),
                }
            }
            Op::Compact => {
                let r = store
                    .compact(false)
                    .map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
                let live = collect(oracle.read_all(Read::forward()))
                    .map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
                for seg in r.segments {
                    let kept = live.iter().find(|e| {
                        (seg.first_seq..=seg.last_seq).contains(&e.seq)
                            && e.stream != LIFECYCLE_STREAM
                    });
                    prop_assert!(kept.is_none(), "{}: compaction removed {:?}", ctx, kept);
                    removed.compacted.push((seg.first_seq, seg.last_seq));
                }
            }
            Op::Reopen => {
                drop(store);
                store = open(root.path(), &disk);
            }
            Op::PowerLoss => {
                let image = disk.power_loss();
                drop(store);
                disk = SimDisk::new(root.path(), image, u64::MAX, step as u64 + 7);
                store = open(root.path(), &disk);
            }
        }
        // After every step: the whole log (what retention and compaction left of it), the head,
        // the versions and the snapshots agree.
        let file: &dyn EventStore = &store;
        let all = collect(file.read_all(Read::forward()));
        let want = removed.retained(collect(oracle.read_all(Read::forward())), usize::MAX);
        prop_assert_eq!(all, want, "{}", ctx);
        same(file.head_seq(), oracle.head_seq(), &ctx)?;
        prop_assert_eq!(store.log_start(), removed.log_start, "{}", ctx);
        for s in STREAMS {
            let ctx = format!("{ctx} {s}");
            same(file.stream_version(s), oracle.stream_version(s), &ctx)?;
            let version =
                |r: eventfile::Result<Option<eventfile::Snapshot>>| r.map(|x| x.map(|x| x.version));
            same(
                version(file.load_snapshot(s)),
                version(oracle.load_snapshot(s)),
                &ctx,
            )?;
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("EVENTFILE_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Where proptest keeps the failing cases it found (committed: they run first, every time). Its
/// default would be `tests/proptest-regressions/model.txt`, beside the test binary's `main.rs`.
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptest-regressions/scenarios/model.txt"
);

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_store_behaves_like_its_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
