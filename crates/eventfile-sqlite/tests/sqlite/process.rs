//! Several processes on one file: a writer killed with SIGKILL loses no acknowledged event,
//! two writers get gapless seqs, and a subscriber sees every event another process appends,
//! once, in order.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use eventfile::{EventStore, Query, Read, RecordedEvent};
use eventfile_sqlite::SqliteStore;

use super::{numbered, spawn};

/// Reads `ACK <seq> <n> <stream>` lines; `stop` says when to stop reading (after the line
/// given).
fn acks(
    reader: &mut impl BufRead,
    mut stop: impl FnMut(usize) -> bool,
    into: &mut Vec<(u64, u64, String)>,
) {
    let mut line = String::new();
    loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .expect("read the child's output")
            == 0
        {
            return;
        }
        let mut words = line.split_whitespace();
        if words.next() != Some("ACK") {
            continue;
        }
        let seq = words.next().and_then(|w| w.parse().ok()).expect("seq");
        let n = words.next().and_then(|w| w.parse().ok()).expect("n");
        let stream = words.next().expect("stream").to_owned();
        into.push((seq, n, stream));
        if stop(into.len()) {
            return;
        }
    }
}

fn all(store: &SqliteStore) -> Vec<RecordedEvent> {
    store
        .read_all(Read::forward())
        .expect("read")
        .collect::<Result<_, _>>()
        .expect("events")
}

/// Every acknowledged append of a child killed with SIGKILL at different points is in the
/// file, identical, and the seqs stay gapless: `role` `append` (one appender) or `append-4`
/// (four threads, committed in groups).
fn killed_writer_loses_nothing(role: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("events.db");
    let mut acked = Vec::new();
    for kill_after in [1usize, 57, 203] {
        let mut child = spawn(role, &file, "killed", None);
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let before = acked.len();
        acks(&mut out, |n| n >= before + kill_after, &mut acked);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        // Whatever it acknowledged before dying counts too.
        acks(&mut out, |_| false, &mut acked);

        let store = SqliteStore::open(&file).expect("reopen");
        let events = all(&store);
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "gapless"
        );
        for (seq, n, stream) in &acked {
            let e = &events[(seq - 1) as usize];
            let want = numbered(stream, *n);
            assert_eq!(e.id, want.id().expect("id"));
            assert_eq!((e.stream.as_str(), e.version), (stream.as_str(), *n));
            assert_eq!(e.data.get(), want.data().get());
            assert_eq!(&e.meta, want.meta());
            assert_eq!(e.tags, want.tags());
        }
    }
    assert!(acked.len() >= 261);
}

#[test]
fn a_killed_writer_loses_no_acknowledged_event() {
    killed_writer_loses_nothing("append");
}

#[test]
fn a_killed_group_committing_writer_loses_no_acknowledged_event() {
    killed_writer_loses_nothing("append-4");
}

/// Two processes appending to one file at once: every seq once, gapless, each stream's
/// versions in order.
#[test]
fn two_processes_append_with_gapless_seqs() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("events.db");
    SqliteStore::open(&file).expect("create");
    let per = 300;
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|s| spawn("append", &file, s, Some(per)))
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success(), "child failed");
    }
    let store = SqliteStore::open(&file).expect("open");
    let events = all(&store);
    assert_eq!(events.len() as u64, 2 * per);
    let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        let v = versions.entry(e.stream.as_str()).or_default();
        *v += 1;
        assert_eq!(e.version, *v);
        assert_eq!(e.id, format!("{}-{}", e.stream, e.version));
    }
    assert_eq!(versions.values().copied().collect::<Vec<_>>(), [per, per]);
}

/// A subscriber in this process sees every event another process appends, once, in order,
/// whether it was history or live when the subscription reached it.
#[test]
fn a_subscriber_follows_another_process() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("events.db");
    let store = SqliteStore::open(&file).expect("open");
    let mut sub = store.subscribe(&Query::new(), 0).expect("subscribe");
    let per = 400;
    let mut child = spawn("append", &file, "live", Some(per));
    let mut seen = Vec::new();
    while seen.len() < per as usize {
        // The timeout only bounds a failure; the events arrive as the child commits them.
        let e = sub
            .next_timeout(Duration::from_secs(60))
            .expect("subscription")
            .expect("an event within a minute");
        seen.push((e.seq, e.version));
    }
    assert!(child.wait().expect("wait").success());
    let want: Vec<(u64, u64)> = (1..=per).map(|n| (n, n)).collect();
    assert_eq!(seen, want);
    assert!(
        sub.next_timeout(Duration::from_millis(20))
            .expect("sub")
            .is_none()
    );
    // And `wait_for` sees another process's head.
    assert!(
        store
            .wait_for(per, Duration::from_secs(5))
            .expect("wait_for")
    );
}

/// Processes that start together on a file that does not exist yet: one of them creates the
/// schema, all of them append, every seq once.
#[test]
fn processes_racing_to_create_a_file_share_one_store() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("events.db");
    let per = 50;
    let children: Vec<_> = ["p", "q", "r", "s"]
        .iter()
        .map(|s| spawn("append", &file, s, Some(per)))
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success(), "child failed");
    }
    let store = SqliteStore::open(&file).expect("open");
    let events = all(&store);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=4 * per).collect::<Vec<_>>()
    );
    assert_eq!(
        eventfile_sqlite::migrate::status(&file).expect("status"),
        (
            eventfile_sqlite::migrate::LATEST,
            eventfile_sqlite::migrate::LATEST
        )
    );
}
