//! kill -9 at random moments while a child process appends; nothing acknowledged is ever lost
//! and no partial batch is ever visible.
//!
//! The child prints `ACK <batch> <first_seq> <last_seq> <stream>:<version>...` only after the
//! append returned Ok. The parent kills it after a random number of acknowledgements (or
//! straight after start, to hit recovery itself), reopens the store, and checks every claim.
//! A fourth thread runs the lifecycle operations between the appends: snapshots, deleting
//! streams, retention and compaction, printing `SNAP`, `DEL`, `RET` and `COMPACT` lines once
//! each returned Ok, so kills land in the middle of them too.
//! `EVENTFILE_KILL_RUNS` sets the number of runs (default 200).

use crate::support::*;
use crate::{child, child_dir, child_role};
use eventfile::{ExpectedVersion, NewEvent, OpenOptions, Read, RetentionPolicy, StreamAppend};
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};

fn batch_events(id: &str, n: u64) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent::new("Step", json!({ "batch": id, "i": i, "n": n })))
        .collect()
}

#[test]
fn child_appender() {
    let solo = match child_role().as_deref() {
        Some("appender") => false,
        // Only the maintenance thread writes: its deleted streams fill whole segments, which
        // compaction then removes.
        Some("maintainer") => true,
        _ => return,
    };
    let store = options().open(child_dir()).unwrap();
    println!("READY");
    let pid = std::process::id();
    std::thread::scope(|s| {
        let maintainer = store.clone();
        s.spawn(move || maintain(&maintainer, pid));
        if solo {
            return;
        }
        for t in 0..3u64 {
            let store = store.clone();
            s.spawn(move || {
                let mut rng = Rng(u64::from(pid) << 8 | (t + 1));
                let streams = [format!("t{t}-a"), format!("t{t}-b"), format!("t{t}-c")];
                for k in 0.. {
                    let id = format!("{pid}-{t}-{k}");
                    let out = match rng.below(3) {
                        0 | 1 => {
                            let s = &streams[rng.below(3) as usize];
                            let n = 1 + rng.below(4);
                            let v = store.stream_version(s);
                            let r = store
                                .append(s, ExpectedVersion::Exact(v), batch_events(&id, n))
                                .unwrap();
                            format!("{} {} {s}:{}", r.first_seq, r.last_seq, r.version)
                        }
                        _ => {
                            let (a, b) = (&streams[0], &streams[1 + rng.below(2) as usize]);
                            let n = 2 + rng.below(3);
                            let mut events = batch_events(&id, n);
                            let tail = events.split_off(1);
                            let r = store
                                .append_multi(&[
                                    StreamAppend::new(
                                        a.clone(),
                                        ExpectedVersion::Exact(store.stream_version(a)),
                                        events,
                                    ),
                                    StreamAppend::new(
                                        b.clone(),
                                        ExpectedVersion::Exact(store.stream_version(b)),
                                        tail,
                                    ),
                                ])
                                .unwrap();
                            let vs: Vec<String> = r
                                .streams
                                .iter()
                                .map(|(s, a)| format!("{s}:{}", a.version))
                                .collect();
                            format!("{} {} {}", r.first_seq, r.last_seq, vs.join(" "))
                        }
                    };
                    println!("ACK {id} {out}");
                }
            });
        }
    });
}

/// The retention policy of the crash tests' store: small, so retention runs remove segments.
const KEEP_EVENTS: u64 = 300;

/// How the child and the checker open the store: whichever creates it sets the policy.
fn options() -> OpenOptions {
    OpenOptions::new()
        .segment_bytes(8192)
        .retention(RetentionPolicy::keep_all().max_events(KEEP_EVENTS))
}

/// The lifecycle operations, in a loop, each acknowledged on stdout once it returned Ok.
fn maintain(store: &eventfile::Store, pid: u32) {
    let mut rng = Rng(u64::from(pid) << 8 | 0xff);
    let mut junk = Vec::new();
    for k in 0.. {
        match rng.below(4) {
            0 => {
                let s = "t0-a";
                let v = store.stream_version(s);
                if v > 0 {
                    store.save_snapshot(s, v, &json!({ "at": v })).unwrap();
                    println!("SNAP {s} {v}");
                }
            }
            1 => {
                // Short-lived streams, written, then deleted four at a time: the segments they
                // filled before the deletions are the dead ones compaction takes (one holding a
                // deletion's `$lifecycle` event is kept).
                let s = format!("junk-{pid}-{k}");
                store
                    .append(
                        &s,
                        ExpectedVersion::NoStream,
                        batch_events(&format!("junk-{pid}-{k}"), 15),
                    )
                    .unwrap();
                junk.push(s);
                if junk.len() == 4 {
                    for s in junk.drain(..) {
                        store.delete_stream(&s, ExpectedVersion::Exact(15)).unwrap();
                        println!("DEL {s}");
                    }
                }
            }
            2 => {
                let r = store.run_retention(false).unwrap();
                println!("RET {}", r.log_start);
            }
            _ => {
                let r = store.compact(false).unwrap();
                println!("COMPACT {}", r.bytes);
            }
        }
    }
}

/// What the maintenance thread acknowledged.
#[derive(Default)]
struct Maintained {
    /// Per stream, the newest snapshot version saved.
    snapshots: HashMap<String, u64>,
    saves: u64,
    deleted: Vec<String>,
    log_start: u64,
    retention_runs: u64,
    compactions: u64,
    reclaimed: u64,
}

impl Maintained {
    /// Records a maintenance line; false if `line` is not one.
    fn note(&mut self, line: &str) -> bool {
        let mut w = line.split(' ');
        match (w.next(), w.next(), w.next()) {
            (Some("SNAP"), Some(s), Some(v)) => {
                let v: u64 = v.parse().unwrap();
                self.saves += 1;
                let e = self.snapshots.entry(s.to_owned()).or_default();
                *e = (*e).max(v);
            }
            (Some("DEL"), Some(s), None) => self.deleted.push(s.to_owned()),
            (Some("RET"), Some(l), None) => {
                self.log_start = self.log_start.max(l.parse().unwrap());
                self.retention_runs += 1;
            }
            (Some("COMPACT"), Some(b), None) => {
                self.compactions += 1;
                self.reclaimed += b.parse::<u64>().unwrap();
            }
            _ => return false,
        }
        true
    }
}

struct Ack {
    first: u64,
    last: u64,
    versions: Vec<(String, u64)>,
}

fn parse_ack(line: &str) -> Option<(String, Ack)> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let id = parts.next()?.to_string();
    let first = parts.next()?.parse().ok()?;
    let last = parts.next()?.parse().ok()?;
    let versions = parts
        .map(|p| {
            let (s, v) = p.rsplit_once(':').unwrap();
            (s.to_string(), v.parse().unwrap())
        })
        .collect();
    Some((
        id,
        Ack {
            first,
            last,
            versions,
        },
    ))
}

/// Checks the store against every acknowledgement so far.
fn check(dir: &std::path::Path, acks: &HashMap<String, Ack>, m: &Maintained, run: usize) -> u64 {
    // As the crash left it (unless it came before the store was created): verify must call
    // nothing a crash can leave a problem.
    if dir.join("eventfile.json").exists() {
        let report = eventfile::verify(dir).unwrap();
        assert!(report.is_sound(), "run {run}: {:?}", report.problems);
    }
    let store = options()
        .open(dir)
        .unwrap_or_else(|e| panic!("run {run}: open failed: {e}"));
    let log_start = store.log_start();
    assert!(log_start >= m.log_start, "run {run}: log start went back");
    let events = all(&store);
    // Gapless from the log start, but for the events of deleted streams.
    let mut seq = log_start;
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for e in &events {
        assert!(e.seq >= seq, "run {run}: seq {} out of order", e.seq);
        seq = e.seq + 1;
        // Compaction takes `$lifecycle` events with the dead segments they sit in.
        if e.stream == eventfile::LIFECYCLE_STREAM {
            continue;
        }
        if let Some(v) = versions.insert(&e.stream, e.version) {
            assert_eq!(e.version, v + 1, "run {run}: version gap in {}", e.stream);
        }
    }
    for s in &m.deleted {
        assert!(
            store
                .read_stream(s, Read::forward())
                .unwrap()
                .next()
                .is_none(),
            "run {run}: deleted stream {s} readable"
        );
    }
    for (s, v) in &m.snapshots {
        let snap = store
            .load_snapshot(s)
            .unwrap()
            .expect("acknowledged snapshot lost");
        assert!(snap.version >= *v, "run {run}: snapshot of {s} went back");
        assert_eq!(
            snap.decode::<serde_json::Value>().unwrap()["at"],
            snap.version
        );
    }
    let mut batches: HashMap<String, Vec<&eventfile::RecordedEvent>> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| e.stream != eventfile::LIFECYCLE_STREAM)
    {
        let d = e.data_value();
        batches
            .entry(d["batch"].as_str().unwrap().to_string())
            .or_default()
            .push(e);
    }
    for (id, evs) in &batches {
        let n = evs[0].data_value()["n"].as_u64().unwrap();
        assert_eq!(evs.len() as u64, n, "run {run}: partial batch {id} visible");
        for (i, e) in evs.iter().enumerate() {
            assert_eq!(e.data_value()["i"].as_u64().unwrap(), i as u64);
            assert_eq!(
                e.seq,
                evs[0].seq + i as u64,
                "run {run}: batch {id} not contiguous"
            );
        }
    }
    for (id, ack) in acks {
        let Some(evs) = batches.get(id) else {
            assert!(
                ack.last < log_start,
                "run {run}: acknowledged batch {id} lost (seq {}, log start {log_start})",
                ack.first
            );
            continue;
        };
        assert_eq!(
            (evs[0].seq, evs[evs.len() - 1].seq),
            (ack.first, ack.last),
            "run {run}: batch {id} moved"
        );
        for (stream, version) in &ack.versions {
            let last = evs
                .iter()
                .filter(|e| &e.stream == stream)
                .map(|e| e.version)
                .max()
                .unwrap();
            assert_eq!(last, *version, "run {run}: batch {id} stream {stream}");
        }
    }
    // The stream table agrees with the log, and new appends continue.
    let head = store.head_seq();
    let probe = store
        .append(
            "probe",
            ExpectedVersion::Any,
            batch_events(&format!("probe-{run}"), 1),
        )
        .unwrap();
    assert_eq!(probe.first_seq, head + 1);
    let back: Vec<u64> = store
        .read_all(Read::backward().limit(1))
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(back, [probe.first_seq]);
    head + 1
}

#[test]
fn kill_9_never_loses_an_acknowledged_append() {
    let _serial = crate::serial();
    let runs: usize = std::env::var("EVENTFILE_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let mut acks: HashMap<String, Ack> = HashMap::new();
    let mut maintained = Maintained::default();
    let mut events = 0;
    let mut during_open = 0;
    for run in 0..runs {
        let role = if rng.below(4) == 0 {
            "maintainer"
        } else {
            "appender"
        };
        let mut c = child("crash_kill::child_appender", role, dir.path())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        if rng.below(8) == 0 {
            // Kill while the child is starting or recovering.
            during_open += 1;
        } else {
            let want = rng.below(25);
            let mut seen = 0;
            let mut line = String::new();
            while seen <= want {
                line.clear();
                if out.read_line(&mut line).unwrap() == 0 {
                    panic!("run {run}: child exited on its own");
                }
                if let Some((id, ack)) = parse_ack(line.trim_end()) {
                    acks.insert(id, ack);
                    seen += 1;
                } else if line.starts_with("READY") && want == 0 {
                    break;
                } else if maintained.note(line.trim_end()) {
                    seen += 1;
                }
            }
        }
        c.kill().unwrap();
        c.wait().unwrap();
        // Acknowledgements printed before the kill landed still count.
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        for line in rest.lines() {
            if let Some((id, ack)) = parse_ack(line) {
                acks.insert(id, ack);
            } else {
                maintained.note(line);
            }
        }
        events = check(dir.path(), &acks, &maintained, run);
    }
    let report = eventfile::verify(dir.path()).unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    let m = &maintained;
    eprintln!(
        "kill -9: {runs} runs ({during_open} during open), {} acknowledged batches, head seq {events}, \
         all intact; {} snapshots, {} deleted streams, {} retention runs (log start {}), \
         {} compactions reclaiming {} bytes",
        acks.len(),
        m.saves,
        m.deleted.len(),
        m.retention_runs,
        m.log_start,
        m.compactions,
        m.reclaimed
    );
    assert!(
        m.retention_runs > 0 && m.reclaimed > 0 && !m.deleted.is_empty() && m.log_start > 1,
        "the lifecycle operations did not run often enough to mean anything"
    );
    assert!(
        acks.len() > runs,
        "too few acknowledgements to mean anything"
    );
}
