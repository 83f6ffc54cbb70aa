//! kill -9 at random moments while a child process appends; nothing acknowledged is ever lost
//! and no partial batch is ever visible.
//!
//! The child prints `ACK <batch> <first_seq> <last_seq> <stream>:<version>...` only after the
//! append returned Ok. The parent kills it after a random number of acknowledgements (or
//! straight after start, to hit recovery itself), reopens the store, and checks every claim.
//! `EVENTFILE_KILL_RUNS` sets the number of runs (default 200).

use crate::support::*;
use crate::{child, child_dir, child_role};
use eventfile::{ExpectedVersion, NewEvent, OpenOptions, Read, StreamAppend};
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
    if child_role().as_deref() != Some("appender") {
        return;
    }
    let store = OpenOptions::new()
        .segment_bytes(8192)
        .open(child_dir())
        .unwrap();
    println!("READY");
    let pid = std::process::id();
    std::thread::scope(|s| {
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
fn check(dir: &std::path::Path, acks: &HashMap<String, Ack>, run: usize) -> u64 {
    let store = OpenOptions::new()
        .open(dir)
        .unwrap_or_else(|e| panic!("run {run}: open failed: {e}"));
    let events = all(&store);
    assert_gapless(&events);
    let mut batches: HashMap<String, Vec<&eventfile::RecordedEvent>> = HashMap::new();
    for e in &events {
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
        let evs = batches
            .get(id)
            .unwrap_or_else(|| panic!("run {run}: acknowledged batch {id} lost"));
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
    let probe = store
        .append(
            "probe",
            ExpectedVersion::Any,
            batch_events(&format!("probe-{run}"), 1),
        )
        .unwrap();
    assert_eq!(probe.first_seq, events.len() as u64 + 1);
    let back: Vec<u64> = store
        .read_all(Read::backward().limit(1))
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(back, [probe.first_seq]);
    events.len() as u64 + 1
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
    let mut events = 0;
    let mut during_open = 0;
    for run in 0..runs {
        let mut c = child("crash_kill::child_appender", "appender", dir.path())
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
            }
        }
        events = check(dir.path(), &acks, run);
    }
    let report = eventfile::verify(dir.path()).unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    eprintln!(
        "kill -9: {runs} runs ({during_open} during open), {} acknowledged batches, {events} events, all intact",
        acks.len()
    );
    assert!(
        acks.len() > runs,
        "too few acknowledgements to mean anything"
    );
}
