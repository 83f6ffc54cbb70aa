//! The gap race: threads of this process and of child processes (this test binary run again)
//! append to one schema at once, while subscribers and readers check that every seq arrives
//! exactly once, in order, with no gap — the anomaly a PostgreSQL sequence alone allows.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventfile::{EventStore, ExpectedVersion, NewEvent, Query, Read};
use eventfile_postgres::testing::{SchemaGuard, URL_VAR, server};
use eventfile_postgres::{PostgresOptions, PostgresStore};

const CHILD_SCHEMA: &str = "EVENTFILE_GAP_RACE_SCHEMA";
const THREADS: usize = 6;
const APPENDS: usize = 40;
const CHILDREN: usize = 3;

/// Each thread's appends: 1 to 3 events, to its own stream and to a shared one.
fn append_many(store: &PostgresStore, who: &str) -> usize {
    let mut written = 0;
    for i in 0..APPENDS {
        let n = 1 + i % 3;
        let events: Vec<NewEvent> = (0..n)
            .map(|k| NewEvent::new("Raced", serde_json::json!({ "who": who, "i": i, "k": k })))
            .collect();
        let stream = if i % 2 == 0 {
            format!("own-{who}")
        } else {
            "shared".to_owned()
        };
        store
            .append(&stream, ExpectedVersion::Any, events)
            .expect("append");
        written += n;
    }
    written
}

fn per_thread() -> usize {
    (0..APPENDS).map(|i| 1 + i % 3).sum()
}

/// Appends from THREADS threads of this process: what a child process runs.
fn appenders(store: &PostgresStore, tag: &str) {
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let who = format!("{tag}-{t}");
            std::thread::spawn(move || append_many(&store, &who))
        })
        .collect();
    for t in threads {
        t.join().expect("appender thread");
    }
}

/// The child's side: runs only when started by `gap_race_across_threads_and_processes`.
#[test]
fn gap_race_child() {
    let Ok(schema) = std::env::var(CHILD_SCHEMA) else {
        return;
    };
    let store = PostgresStore::open_with(server().url(), PostgresOptions::new().schema(schema))
        .expect("child open");
    appenders(&store, &format!("p{}", std::process::id()));
}

/// Follows a subscription until `total` events, checking each seq is the next.
fn follow(store: &PostgresStore, total: usize) -> usize {
    let mut sub = store.subscribe(&Query::new(), 0).expect("subscribe");
    let mut expect = 1;
    while expect <= total as u64 {
        let e = sub
            .next_timeout(Duration::from_secs(60))
            .expect("subscription read")
            .expect("an event within a minute");
        assert_eq!(
            e.seq,
            expect,
            "a subscriber saw {} after {}",
            e.seq,
            expect - 1
        );
        expect += 1;
    }
    total
}

#[test]
fn gap_race_across_threads_and_processes() {
    if std::env::var(CHILD_SCHEMA).is_ok() {
        return;
    }
    let guard = SchemaGuard::new();
    let store = PostgresStore::open_with(server().url(), guard.options()).unwrap();
    let total = (CHILDREN + 1) * THREADS * per_thread();
    let subscribers: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || follow(&store, total))
        })
        .collect();
    // A reader that reads the whole log again and again: always 1..=n, nothing missing.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(Ordering::Acquire) {
                let head = store.head_seq().unwrap();
                let seqs: Vec<u64> = store
                    .read_all(Read::forward())
                    .unwrap()
                    .map(|e| e.unwrap().seq)
                    .collect();
                assert!(
                    seqs.len() as u64 >= head,
                    "head {head} but {} events read",
                    seqs.len()
                );
                for (i, s) in seqs.iter().enumerate() {
                    assert_eq!(*s, i as u64 + 1, "a read skipped a seq");
                }
                reads += 1;
            }
            reads
        })
    };
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            Command::new(&exe)
                .args(["gap_race_child", "--exact", "--test-threads=1"])
                .env(CHILD_SCHEMA, guard.schema())
                .env(URL_VAR, server().url())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn a child")
        })
        .collect();
    appenders(&store, "parent");
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a child failed");
    }
    for s in subscribers {
        assert_eq!(s.join().expect("a subscriber"), total);
    }
    done.store(true, Ordering::Release);
    assert!(reader.join().expect("the reader") > 0);
    assert_eq!(store.head_seq().unwrap(), total as u64);
    let versions: Vec<u64> = store
        .read_stream("shared", Read::forward())
        .unwrap()
        .map(|e| e.unwrap().version)
        .collect();
    assert!(versions.iter().enumerate().all(|(i, v)| *v == i as u64 + 1));
}
