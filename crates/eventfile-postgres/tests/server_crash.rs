//! The PostgreSQL server killed with SIGKILL (every process of it, as a crash of the database
//! machine would) while four threads append: after it recovers from its WAL, every append that
//! returned `Ok` is there, at its seq, identical, and the log is gapless. Three crashes in a
//! row, each at a different moment of the appends, on a private server of the test's own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventfile::{EventStore, ExpectedVersion, NewEvent, Read, RecordedEvent};
use eventfile_postgres::{PostgresOptions, PostgresStore, testing};
use serde_json::json;

/// An acknowledged append: its seq, and the event as appended (id, stream, data).
type Acked = (u64, String, String, String);

#[test]
fn a_server_crash_loses_no_acknowledged_append() {
    let server = testing::private_server();
    let options = PostgresOptions::new().schema("crash");
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    for round in 0..3u64 {
        let store = PostgresStore::open_with(server.url(), options.clone()).unwrap();
        let before = acked.lock().unwrap().len();
        let count = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (store, acked, count) = (store.clone(), Arc::clone(&acked), Arc::clone(&count));
                std::thread::spawn(move || {
                    for i in 0u64.. {
                        let id = format!("0190a0b0-{round:04}-7000-8000-{:012}", t * 1_000_000 + i);
                        let data = json!({ "round": round, "t": t, "i": i }).to_string();
                        let e = NewEvent::from_json_str("Tick", &data)
                            .unwrap()
                            .with_id(id.clone());
                        let stream = format!("s-{t}");
                        match store.append(&stream, ExpectedVersion::Any, vec![e]) {
                            Ok(r) => {
                                acked.lock().unwrap().push((r.first_seq, id, stream, data));
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            // The server is gone: the outcome of this one is unknown.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        // Crash at a different point of each round.
        let target = 100 + 150 * round;
        let deadline = Instant::now() + Duration::from_secs(120);
        while count.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "appends did not get going");
            std::thread::yield_now();
        }
        server.crash();
        for t in threads {
            t.join().unwrap();
        }
        drop(store);
        server.restart();

        let store = PostgresStore::open_with(server.url(), options.clone()).unwrap();
        let log: Vec<RecordedEvent> = store
            .read_all(Read::forward())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>(), "gapless");
        let acked = acked.lock().unwrap();
        assert!(acked.len() > before, "round {round} acknowledged nothing");
        for (seq, id, stream, data) in acked.iter() {
            let e = &log[(*seq - 1) as usize];
            assert_eq!(
                (&e.id, &e.stream, e.data.get()),
                (id, stream, data.as_str()),
                "seq {seq}"
            );
        }
        // Unacknowledged appends in flight at the crash may or may not be there; nothing else.
        assert!(
            log.len() - acked.len() <= 4 * (round as usize + 1),
            "at most one per thread per crash"
        );
        eprintln!(
            "round {round}: {} acknowledged appends, {} in the log (the rest: in flight at a \
             crash, landed)",
            acked.len(),
            log.len()
        );
    }
}

/// A store that outlives a restart of its server serves its next calls: its pool's idle
/// connections, which look open until used, are tried before they are handed out, and a
/// subscription waiting through the restart gets the next event. Before, each idle connection
/// failed one call (`Unreachable`) after the restart, and the subscription's head read met one
/// and ended it.
#[test]
fn a_store_outliving_a_server_restart_serves_its_next_calls() {
    let server = testing::private_server();
    let options = PostgresOptions::new().schema("restart");
    let store = PostgresStore::open_with(server.url(), options.clone()).unwrap();
    let event = || NewEvent::from_json_str("Tick", "{}").unwrap();
    store
        .append("s", ExpectedVersion::Any, vec![event()])
        .unwrap();
    // Two connections idle in the pool: two reads at once.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| assert_eq!(store.read_all(Read::forward()).unwrap().count(), 1));
        }
    });
    let mut sub = store.subscribe(&eventfile::Query::new(), 1).unwrap();
    let subscriber = std::thread::spawn(move || sub.next_timeout(Duration::from_secs(60)));
    server.crash();
    server.restart();
    for _ in 0..3 {
        let events: Vec<RecordedEvent> = store
            .read_all(Read::forward())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(store.stream_version("s").unwrap(), 1);
    }
    // Another store appends (this one's appender met the restart too: its first append's
    // outcome would be unknown, which is not what this test is about).
    let other = PostgresStore::open_with(server.url(), options).unwrap();
    other
        .append("s", ExpectedVersion::Any, vec![event()])
        .unwrap();
    let got = subscriber.join().unwrap().unwrap().expect("the next event");
    assert_eq!(got.seq, 2);
}
