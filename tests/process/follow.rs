//! Following the log from another process: a read-only subscriber in a child gets every event
//! the writer appends, exactly once and in order, through segment rolls and retention runs,
//! without ever calling `refresh`; a follower keeps going while its writer is killed with
//! SIGKILL and restarted; and a consumer killed with SIGKILL resumes from its checkpoint,
//! receiving again only what it handled after its last save.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use eventfile::{Checkpoints, FileCheckpoints, OpenOptions, Query, RetentionPolicy, Store};

use crate::support::*;
use crate::{child, child_dir, child_role};

/// The child: a read-only subscriber printing `EV seq` for each event, until told to stop.
#[test]
fn child_follower() {
    if child_role().as_deref() != Some("follower") {
        return;
    }
    let store = Store::open_read_only(child_dir()).unwrap();
    let mut sub = store.subscribe(&Query::new(), 0).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.map(|l| l == "stop").unwrap_or(true) {
                break;
            }
        }
        flag.store(true, std::sync::atomic::Ordering::Release);
    });
    let mut out = std::io::stdout().lock();
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        match sub.next_timeout(Duration::from_millis(50)) {
            Ok(Some(e)) => writeln!(out, "EV {}", e.seq).unwrap(),
            Ok(None) => {}
            Err(e) => writeln!(out, "ERR {e}").unwrap(),
        }
        out.flush().unwrap();
    }
    writeln!(out, "END {}", sub.position()).unwrap();
}

/// Reads the child's lines until one starting with `EV`, `ERR` or `END`.
fn next_line(out: &mut impl BufRead) -> String {
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
        let line = line.trim_end();
        if line.starts_with("EV ") || line.starts_with("ERR ") || line.starts_with("END ") {
            return line.to_owned();
        }
    }
}

/// Reads `EV` lines until `seq`, appending them to `got`.
fn until(out: &mut impl BufRead, got: &mut Vec<u64>, seq: u64) {
    while got.last().is_none_or(|&l| l < seq) {
        let line = next_line(out);
        let n = line
            .strip_prefix("EV ")
            .unwrap_or_else(|| panic!("child: {line}"))
            .parse()
            .unwrap();
        got.push(n);
    }
}

#[test]
fn a_follower_in_another_process_gets_every_event_once_through_rolls_and_retention() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let store = OpenOptions::new()
        .segment_bytes(4096)
        .retention(RetentionPolicy::keep_all().max_events(200))
        .open(dir.path())
        .unwrap();
    for i in 0..50 {
        append_one(&store, "s", i);
    }
    let mut c = child("follow::child_follower", "follower", dir.path())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut got = Vec::new();
    until(&mut out, &mut got, 50);
    let mut removed = 0;
    for round in 0..10 {
        for i in 0..150 {
            let n = round * 1000 + i;
            if i % 3 == 0 {
                store
                    .append(
                        &format!("b-{round}"),
                        eventfile::ExpectedVersion::Any,
                        [ev("Tick", n), ev("Tock", n)],
                    )
                    .unwrap();
            } else {
                append_one(&store, &format!("s-{}", i % 5), n);
            }
        }
        // Retention only once the follower has passed what it removes: a gap is not what this
        // test is about (tests/engine/subscribe.rs is).
        until(&mut out, &mut got, store.head_seq());
        removed += store.run_retention(false).unwrap().events;
    }
    let head = store.head_seq();
    until(&mut out, &mut got, head);
    writeln!(stdin, "stop").unwrap();
    assert_eq!(next_line(&mut out), format!("END {head}"));
    assert!(c.wait().unwrap().success());
    assert!(
        removed > 0 && store.log_start() > 1,
        "retention removed nothing"
    );
    assert!(
        dir.path().read_dir().unwrap().count() > 3,
        "the appends rolled segments"
    );
    assert_eq!(
        got,
        (1..=head).collect::<Vec<_>>(),
        "every event once, in order"
    );
}

/// The child: a consumer that handles each event by appending its seq to `handled` (one line,
/// written before the next event is taken) and saves its checkpoint every `EVERY` events.
const EVERY: u64 = 7;

#[test]
fn child_consumer() {
    if child_role().as_deref() != Some("consumer") {
        return;
    }
    let dir = child_dir();
    let checkpoints = FileCheckpoints::open(dir.join("checkpoints")).unwrap();
    let from = checkpoints.load("consumer").unwrap().unwrap_or(0);
    let store = Store::open_read_only(dir.join("store")).unwrap();
    let mut sub = store.subscribe(&Query::new(), from).unwrap();
    let mut handled = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("handled"))
        .unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "FROM {from}").unwrap();
    out.flush().unwrap();
    let head = store.head_seq();
    // One event per line on stdin: the parent decides how far ahead of it this may run.
    let mut tokens = std::io::stdin().lock().lines();
    while sub.position() < head {
        if tokens.next().is_none() {
            return;
        }
        let e = sub.next_timeout(Duration::from_secs(30)).unwrap().unwrap();
        // One write of the whole line (O_APPEND): a kill cannot leave half of it.
        handled
            .write_all(format!("{}\n", e.seq).as_bytes())
            .unwrap();
        if e.seq.is_multiple_of(EVERY) {
            checkpoints.save("consumer", sub.position()).unwrap();
        }
        writeln!(out, "EV {}", e.seq).unwrap();
        out.flush().unwrap();
    }
    checkpoints.save("consumer", sub.position()).unwrap();
    writeln!(out, "DONE").unwrap();
}

#[test]
fn a_consumer_killed_with_sigkill_resumes_from_its_checkpoint() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(&dir.path().join("store"), 4096);
    const EVENTS: u64 = 2000;
    for i in 0..EVENTS {
        append_one(&store, &format!("s-{}", i % 4), i);
    }
    let mut rng = Rng(0x00c0_ffee);
    let mut kills = 0;
    let mut starts = Vec::new();
    loop {
        let mut c = child("follow::child_consumer", "consumer", dir.path())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        let from = loop {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "consumer exited early"
            );
            if let Some(f) = line.trim_end().strip_prefix("FROM ") {
                break f.parse::<u64>().unwrap();
            }
        };
        starts.push(from);
        // Let it handle a random number of events, then kill it mid-stride: it may run up to
        // three events ahead of what it has reported, so the kill can land anywhere in
        // handling an event or saving a checkpoint.
        let take = 1 + rng.below(400);
        let mut stdin = c.stdin.take().unwrap();
        for _ in 0..take + 3 {
            // A child that finished and exited no longer reads: that is fine.
            let _ = writeln!(stdin, "go");
        }
        let mut done = false;
        for _ in 0..take {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 || line.trim_end() == "DONE" {
                done = true;
                break;
            }
        }
        if done {
            assert!(c.wait().unwrap().success());
            break;
        }
        c.kill().unwrap();
        c.wait().unwrap();
        kills += 1;
        assert!(kills < 100, "the consumer never finished");
    }
    assert!(kills >= 3, "only {kills} kills: the test did not test much");
    let handled: Vec<u64> = std::fs::read_to_string(dir.path().join("handled"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    // Every event handled, in order within each run; each run starts right after a saved
    // checkpoint, so it repeats at most the events handled since that save: fewer than EVERY,
    // plus the one being written when the kill came.
    let mut count: HashMap<u64, u64> = HashMap::new();
    for &s in &handled {
        *count.entry(s).or_default() += 1;
    }
    assert_eq!(count.len() as u64, EVENTS, "some event was never handled");
    for w in starts.windows(2) {
        assert!(w[1] >= w[0], "a checkpoint went back: {starts:?}");
    }
    let repeated: u64 = count.values().map(|n| n - 1).sum();
    assert!(
        repeated <= kills * EVERY,
        "{repeated} events handled twice after {kills} kills (window {EVERY})"
    );
    let checkpoints = FileCheckpoints::open(dir.path().join("checkpoints")).unwrap();
    assert_eq!(checkpoints.load("consumer").unwrap(), Some(EVENTS));
    eprintln!(
        "consumer: {EVENTS} events, {kills} kills, {repeated} handled twice (at most {EVERY} \
         per kill), none missed"
    );
}

/// The child: a writer appending batches in a loop, printing `ACK first last batch` once each
/// append returned.
#[test]
fn child_writer() {
    if child_role().as_deref() != Some("writer") {
        return;
    }
    let store = small_store(&child_dir(), 4096);
    println!("READY");
    let pid = std::process::id();
    let mut out = std::io::stdout().lock();
    for k in 0.. {
        let id = format!("{pid}-{k}");
        let events = (0..1 + k % 3).map(|i| ev("Step", i).with_tag(format!("batch={id}")));
        let r = store
            .append(
                &format!("w-{}", k % 5),
                eventfile::ExpectedVersion::Any,
                events.collect::<Vec<_>>(),
            )
            .unwrap();
        writeln!(out, "ACK {} {} {id}", r.first_seq, r.last_seq).unwrap();
        out.flush().unwrap();
    }
}

/// A follower in this process keeps its subscription while the writer in another process is
/// killed with SIGKILL again and again and restarted: it receives every acknowledged event,
/// once, in order, and every event it receives is the one the store holds at that seq after
/// the last restart. (A kill keeps the page cache, so what a crash could replace is the
/// simulated power loss's matter: `tests/scenarios/follower.rs`.)
#[test]
fn a_follower_survives_the_writer_being_killed() {
    let _serial = crate::serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    drop(small_store(&dir, 4096));
    let reader = Store::open_read_only(&dir).unwrap();
    let mut sub = reader.subscribe(&Query::new(), 0).unwrap();
    let mut rng = Rng(0x0bad_5eed);
    let mut acked: Vec<(u64, u64)> = Vec::new();
    let mut got: Vec<(u64, String)> = Vec::new();
    let receive = |sub: &mut eventfile::Subscription, got: &mut Vec<(u64, String)>, upto: u64| {
        while got.last().is_none_or(|g| g.0 < upto) {
            let e = sub
                .next_timeout(Duration::from_secs(30))
                .unwrap()
                .expect("the follower got every acknowledged event");
            got.push((e.seq, e.tags.join(",")));
        }
    };
    for _ in 0..8 {
        let mut c = child("follow::child_writer", "writer", &dir)
            .spawn()
            .unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        let take = 1 + rng.below(60);
        let mut seen = 0;
        while seen < take {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "writer exited");
            if let Some(rest) = line.trim_end().strip_prefix("ACK ") {
                let mut f = rest.split(' ');
                let first: u64 = f.next().unwrap().parse().unwrap();
                let last: u64 = f.next().unwrap().parse().unwrap();
                acked.push((first, last));
                seen += 1;
            }
        }
        c.kill().unwrap();
        c.wait().unwrap();
        // Everything acknowledged reaches the follower, without anyone telling it.
        receive(&mut sub, &mut got, acked.last().unwrap().1);
    }
    // One last writer open recovers (and publishes) whatever the last kill left written.
    let store = small_store(&dir, 4096);
    let head = store.head_seq();
    receive(&mut sub, &mut got, head);
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "once each, in order");
    let now: Vec<(u64, String)> = all(&store)
        .into_iter()
        .map(|e| (e.seq, e.tags.join(",")))
        .collect();
    assert_eq!(got, now, "the follower saw the events the store holds");
    for (first, last) in acked {
        assert!(last <= head && first >= 1);
    }
}
