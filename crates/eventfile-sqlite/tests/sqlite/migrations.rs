//! Migrations: up, down and up again keep or remove what they should; an older file is
//! migrated on open (or refused without `migrate`); opens racing on a new file create one
//! store.

use std::sync::{Arc, Barrier};

use eventfile::{Error, EventStore, ExpectedVersion, Query};
use eventfile_sqlite::{SqliteOptions, SqliteStore, migrate};

use super::numbered;

fn tables(file: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(file).expect("open");
    let mut s = c
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .expect("prepare");
    s.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn indexes(file: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(file).expect("open");
    let mut s = c
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        )
        .expect("prepare");
    s.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn up_down_up() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("events.db");
    assert_eq!(migrate::up(&file, Some(1)).expect("up to 1"), 1);
    assert_eq!(
        migrate::status(&file).expect("status"),
        (1, migrate::LATEST)
    );
    assert!(indexes(&file).iter().all(|i| !i.contains("correlation")));
    assert_eq!(migrate::up(&file, Some(2)).expect("up to 2"), 2);
    assert!(indexes(&file).contains(&"events_correlation".to_owned()));
    assert!(!tables(&file).contains(&"checkpoints".to_owned()));
    assert_eq!(migrate::up(&file, None).expect("up"), 3);
    assert!(tables(&file).contains(&"checkpoints".to_owned()));

    let store = SqliteStore::open(&file).expect("open");
    store
        .append("s", ExpectedVersion::NoStream, vec![numbered("s", 1)])
        .expect("append");
    store.checkpoints().save("reader", 1).expect("checkpoint");
    drop(store);

    // Down to 2 drops the checkpoints, down to 1 keeps the events and drops the metadata
    // indexes.
    assert_eq!(migrate::down(&file, 2).expect("down to 2"), 2);
    assert!(!tables(&file).contains(&"checkpoints".to_owned()));
    assert_eq!(migrate::down(&file, 1).expect("down"), 1);
    assert!(!indexes(&file).contains(&"events_correlation".to_owned()));
    let refused = SqliteOptions::new().migrate(false).open(&file).unwrap_err();
    assert!(matches!(refused, Error::ForeignSchema { .. }), "{refused}");
    assert!(refused.to_string().contains("version 1"), "{refused}");
    // Opening migrates it back, events intact.
    let store = SqliteStore::open(&file).expect("open migrates");
    assert_eq!(migrate::status(&file).expect("status"), (3, 3));
    assert_eq!(store.checkpoints().load("reader").expect("load"), None);
    assert_eq!(
        store.count(&Query::new().correlation("c1")).expect("count"),
        1
    );
    drop(store);

    // Down to 0 removes every table of ours.
    assert_eq!(migrate::down(&file, 0).expect("down to 0"), 0);
    assert_eq!(tables(&file), Vec::<String>::new());
    assert_eq!(migrate::status(&file).expect("status"), (0, 3));
    assert_eq!(migrate::up(&file, None).expect("up again"), 3);
    let store = SqliteStore::open(&file).expect("open");
    assert_eq!(store.head_seq().expect("head"), 0);
}

#[test]
fn opens_racing_on_a_new_file_make_one_store() {
    let dir = tempfile::tempdir().expect("dir");
    let file = Arc::new(dir.path().join("events.db"));
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (file, barrier) = (Arc::clone(&file), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let store = SqliteStore::open(&*file).expect("open");
                store
                    .append(
                        "s",
                        ExpectedVersion::Any,
                        vec![numbered("s", 1000 + i as u64)],
                    )
                    .expect("append")
                    .first_seq
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=n as u64).collect::<Vec<_>>());
    assert_eq!(
        migrate::status(&*file).expect("status"),
        (migrate::LATEST, migrate::LATEST)
    );
    let c = rusqlite::Connection::open(&*file).expect("open");
    let ids: i64 = c
        .query_row(
            "SELECT count(*) FROM eventfile_meta WHERE key = 'store_id'",
            [],
            |r| r.get(0),
        )
        .expect("store id");
    assert_eq!(ids, 1);
}
