//! Model-based property tests: random sequences of appends, retries, reads, queries, deletions,
//! snapshots, retention, compaction, clean reopens and power losses, run against the store (on
//! the simulated disk) and against a plain in-memory model of it; after every step the two must
//! agree. `EVENTFILE_MODEL_CASES` sets the number of sequences (default 256).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use crate::sim::{Image, SimDisk};
use crate::{
    Error, ExpectedVersion, LIFECYCLE_STREAM, NewEvent, OpenOptions, Query, Read, RetentionPolicy,
    Store,
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

#[derive(Debug, Clone, PartialEq)]
struct Ev {
    seq: u64,
    stream: String,
    version: u64,
    event_type: String,
    n: u64,
}

/// The plain model of the store.
#[derive(Default)]
struct Model {
    events: Vec<Ev>,
    versions: HashMap<String, u64>,
    /// Per stream: first live version, tombstoned.
    deleted: HashMap<String, (u64, bool)>,
    log_start: u64,
    next_seq: u64,
    /// The last batch appended with ids: stream, ids, result.
    last_with_ids: Option<(String, Vec<String>, u64, u64)>,
    snapshots: HashMap<String, u64>,
    counter: u64,
}

impl Model {
    fn new() -> Model {
        Model {
            log_start: 1,
            next_seq: 1,
            ..Model::default()
        }
    }

    fn version(&self, s: &str) -> u64 {
        self.versions.get(s).copied().unwrap_or(0)
    }

    fn live(&self, e: &Ev) -> bool {
        e.seq >= self.log_start
            && self
                .deleted
                .get(&e.stream)
                .is_none_or(|&(before, tomb)| !tomb && e.version >= before)
    }

    fn visible(&self) -> Vec<Ev> {
        self.events
            .iter()
            .filter(|e| self.live(e))
            .cloned()
            .collect()
    }
}

fn to_ev(e: &crate::RecordedEvent) -> Ev {
    Ev {
        seq: e.seq,
        stream: e.stream.clone(),
        version: e.version,
        event_type: e.event_type.clone(),
        n: e.data_value()["n"].as_u64().unwrap_or(u64::MAX),
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

/// The model's events a read from `from` (at position `pos`) returns, in read order.
fn window(
    events: impl Iterator<Item = Ev>,
    pos: impl Fn(&Ev) -> u64,
    from: u64,
    backward: bool,
) -> Vec<Ev> {
    let mut v: Vec<Ev> = events
        .filter(|e| {
            from == 0
                || if backward {
                    pos(e) <= from
                } else {
                    pos(e) >= from
                }
        })
        .collect();
    if backward {
        v.reverse();
    }
    v
}

fn collect(events: crate::Result<crate::Events>) -> crate::Result<Vec<Ev>> {
    let evs: Vec<crate::RecordedEvent> = events?.collect::<crate::Result<_>>()?;
    Ok(evs
        .iter()
        .filter(|e| e.stream != LIFECYCLE_STREAM)
        .map(to_ev)
        .collect())
}

fn open(root: &Path, disk: &Arc<SimDisk>) -> Store {
    let mut opts = OpenOptions::new().segment_bytes(4096);
    opts.storage = Arc::new(Arc::clone(disk));
    opts.open(root).expect("open")
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let root = tempfile::tempdir().unwrap();
    let mut disk = SimDisk::new(root.path(), Image::new(), u64::MAX, 1);
    let mut store = open(root.path(), &disk);
    let mut m = Model::new();
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = format!("step {step}: {op:?}");
        match op {
            Op::Append {
                stream,
                n,
                wrong,
                with_ids,
            } => {
                let s = STREAMS[stream];
                let v = m.version(s);
                let expected = ExpectedVersion::Exact(if wrong { v + 1 } else { v });
                let mut ids = Vec::new();
                let events: Vec<NewEvent> = (0..n)
                    .map(|i| {
                        m.counter += 1;
                        let e = NewEvent::new(
                            TYPES[(m.counter % 3) as usize],
                            json!({ "n": m.counter }),
                        );
                        if with_ids {
                            let id = format!("id-{}", m.counter);
                            ids.push(id.clone());
                            e.with_id(id)
                        } else {
                            let _ = i;
                            e
                        }
                    })
                    .collect();
                let first_n = m.counter - n + 1;
                let r = store.append(s, expected, events);
                let tomb = m.deleted.get(s).is_some_and(|d| d.1);
                match r {
                    Err(Error::StreamDeleted { .. }) => prop_assert!(tomb, "{ctx}"),
                    Err(Error::WrongExpectedVersion { actual, .. }) => {
                        prop_assert!(wrong && !tomb, "{ctx}");
                        prop_assert_eq!(actual, v, "{}", ctx);
                    }
                    Ok(r) => {
                        prop_assert!(!wrong && !tomb, "{ctx}");
                        prop_assert_eq!((r.first_seq, r.version), (m.next_seq, v + n), "{}", ctx);
                        for i in 0..n {
                            m.events.push(Ev {
                                seq: m.next_seq + i,
                                stream: s.into(),
                                version: v + 1 + i,
                                event_type: TYPES[((first_n + i) % 3) as usize].into(),
                                n: first_n + i,
                            });
                        }
                        m.next_seq += n;
                        m.versions.insert(s.into(), v + n);
                        if with_ids {
                            m.last_with_ids = Some((s.into(), ids, r.first_seq, r.version));
                        }
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("{ctx}: {e}"))),
                }
            }
            Op::Retry => {
                let Some((s, ids, first_seq, version)) = m.last_with_ids.clone() else {
                    continue;
                };
                // Ids are forgotten with the events retention or compaction removes: retry only
                // a batch that is still live.
                let live = m.events.iter().any(|e| e.seq == first_seq && m.live(e));
                if !live {
                    continue;
                }
                let events: Vec<NewEvent> = ids
                    .iter()
                    .map(|id| NewEvent::new("Retry", json!({})).with_id(id.clone()))
                    .collect();
                let r = store.append(&s, ExpectedVersion::Any, events);
                let r = r.map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
                prop_assert!(r.replayed, "{ctx}");
                prop_assert_eq!((r.first_seq, r.version), (first_seq, version), "{}", ctx);
            }
            Op::ReadStream {
                stream,
                from,
                backward,
                limit,
            } => {
                let s = STREAMS[stream];
                let got = collect(store.read_stream(s, read(from, backward, limit)));
                let d = m.deleted.get(s).copied();
                if d.is_some_and(|d| d.1) {
                    prop_assert!(matches!(got, Err(Error::StreamDeleted { .. })), "{ctx}");
                    continue;
                }
                let mut want = window(
                    m.visible().into_iter().filter(|e| e.stream == s),
                    |e| e.version,
                    from,
                    backward,
                );
                want.truncate(limit);
                match got {
                    Ok(got) => prop_assert_eq!(got, want, "{}", ctx),
                    Err(Error::Expired { .. }) => {
                        // Only a position retention removed, and still live, is refused.
                        let removed = m
                            .events
                            .iter()
                            .any(|e| e.stream == s && e.version == from && e.seq < m.log_start);
                        prop_assert!(removed, "{ctx}");
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("{ctx}: {e}"))),
                }
            }
            Op::ReadAll {
                from,
                backward,
                limit,
            } => {
                let got = collect(store.read_all(read(from, backward, limit)));
                let want = window(m.visible().into_iter(), |e| e.seq, from, backward);
                match got {
                    Ok(got) => {
                        // The limit counts `$lifecycle` events too, which the model leaves out.
                        prop_assert!(got.len() <= limit, "{ctx}");
                        prop_assert_eq!(&got[..], &want[..got.len()], "{}", ctx);
                    }
                    Err(Error::Expired { .. }) => {
                        prop_assert!(from > 0 && from < m.log_start, "{ctx}")
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("{ctx}: {e}"))),
                }
            }
            Op::QueryType { t } => {
                let q = Query::new().event_type(TYPES[t]);
                let got = collect(store.query(&q))
                    .map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
                let want: Vec<Ev> = m
                    .visible()
                    .into_iter()
                    .filter(|e| e.event_type == TYPES[t])
                    .collect();
                prop_assert_eq!(store.count(&q).unwrap(), want.len() as u64, "{}", ctx);
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Truncate { stream, before } => {
                let s = STREAMS[stream];
                let v = m.version(s);
                let d = m.deleted.get(s).copied();
                let r = store.truncate_stream(s, before);
                match r {
                    Ok(r) => {
                        prop_assert!(
                            v > 0 && before >= 1 && before <= v + 1 && !d.is_some_and(|d| d.1),
                            "{ctx}"
                        );
                        let old = d.map_or(1, |d| d.0);
                        if before > old {
                            prop_assert_eq!(r.seq, Some(m.next_seq), "{}", ctx);
                            m.next_seq += 1;
                            m.deleted.insert(s.into(), (before, false));
                            // A snapshot below the truncation point is no longer usable.
                            if m.snapshots.get(s).is_some_and(|&v| v + 1 < before) {
                                m.snapshots.remove(s);
                            }
                        } else {
                            prop_assert_eq!(r.seq, None, "{}", ctx);
                        }
                    }
                    Err(Error::StreamDeleted { .. }) => {
                        prop_assert!(d.is_some_and(|d| d.1), "{ctx}")
                    }
                    Err(Error::InvalidInput { .. }) => {
                        prop_assert!(v == 0 || before == 0 || before > v + 1, "{ctx}")
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("{ctx}: {e}"))),
                }
            }
            Op::Delete { stream, hard } => {
                let s = STREAMS[stream];
                let v = m.version(s);
                let d = m.deleted.get(s).copied();
                let r = if hard {
                    store.tombstone_stream(s, ExpectedVersion::Any)
                } else {
                    store.delete_stream(s, ExpectedVersion::Any)
                };
                match r {
                    Ok(r) => {
                        prop_assert!(!d.is_some_and(|d| d.1) && (hard || v > 0), "{ctx}");
                        let changed = hard || d.is_none_or(|d| d.0 < v + 1);
                        if changed {
                            prop_assert_eq!(r.seq, Some(m.next_seq), "{}", ctx);
                            m.next_seq += 1;
                        }
                        m.deleted.insert(s.into(), (v + 1, hard));
                        m.snapshots.remove(s);
                    }
                    Err(Error::StreamDeleted { .. }) => {
                        prop_assert!(d.is_some_and(|d| d.1), "{ctx}")
                    }
                    Err(Error::InvalidInput { .. }) => prop_assert!(!hard && v == 0, "{ctx}"),
                    Err(e) => return Err(TestCaseError::fail(format!("{ctx}: {e}"))),
                }
            }
            Op::Snapshot { stream } => {
                let s = STREAMS[stream];
                let v = m.version(s);
                let d = m.deleted.get(s).copied();
                let r = store.save_snapshot(s, v, &json!({ "v": v }));
                let ok = v > 0 && d.is_none_or(|d| !d.1 && v + 1 >= d.0);
                prop_assert_eq!(r.is_ok(), ok, "{}: {:?}", ctx, r.err());
                if ok {
                    m.snapshots.insert(s.into(), v);
                }
            }
            Op::Retention { keep } => {
                store
                    .set_retention_policy(RetentionPolicy::keep_all().max_events(keep))
                    .unwrap();
                match store.run_retention(false) {
                    Ok(r) => {
                        prop_assert!(r.log_start >= m.log_start, "{ctx}");
                        m.log_start = r.log_start;
                        let stored = m.next_seq - m.log_start;
                        prop_assert!(stored >= keep.min(stored), "{ctx}");
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("{ctx}: {e}"))),
                }
            }
            Op::Compact => {
                store
                    .compact(false)
                    .map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
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
        // After every step: the whole log, the versions and the snapshots agree.
        let all = collect(store.read_all(Read::forward()))
            .map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
        prop_assert_eq!(all, m.visible(), "{}", ctx);
        prop_assert_eq!(store.head_seq(), m.next_seq - 1, "{}", ctx);
        prop_assert_eq!(store.log_start(), m.log_start, "{}", ctx);
        for s in STREAMS {
            prop_assert_eq!(store.stream_version(s), m.version(s), "{} {}", ctx, s);
            if let Some(&v) = m.snapshots.get(s) {
                let snap = store.load_snapshot(s).unwrap();
                prop_assert_eq!(snap.map(|x| x.version), Some(v), "{} {}", ctx, s);
            }
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

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_store_behaves_like_its_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
