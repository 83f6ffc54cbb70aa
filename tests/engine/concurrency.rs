//! Threads racing on one stream: exactly one `Exact(v)` wins each round.

use crate::support::*;
use eventfile::{Error, ExpectedVersion, Read};
use std::sync::Barrier;

#[test]
fn racing_exact_appends_have_one_winner_per_version() {
    const THREADS: usize = 8;
    const ROUNDS: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 16 * 1024);
    let barrier = Barrier::new(THREADS);
    let wins: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                let barrier = &barrier;
                s.spawn(move || {
                    let mut won = Vec::new();
                    for v in 0..ROUNDS {
                        barrier.wait();
                        match store.append("hot", ExpectedVersion::Exact(v), [ev("Race", t as u64)])
                        {
                            Ok(r) => {
                                assert_eq!(r.version, v + 1);
                                won.push(v);
                            }
                            Err(Error::WrongExpectedVersion { actual, .. }) => {
                                assert_eq!(
                                    actual,
                                    v + 1,
                                    "loser saw a version other than the winner's"
                                );
                            }
                            Err(e) => panic!("unexpected error {e}"),
                        }
                        barrier.wait();
                    }
                    won
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all_wins: Vec<u64> = wins.into_iter().flatten().collect();
    all_wins.sort_unstable();
    assert_eq!(
        all_wins,
        (0..ROUNDS).collect::<Vec<_>>(),
        "each round has exactly one winner"
    );
    let events = stream(&store, "hot", Read::forward());
    assert_eq!(events.len() as u64, ROUNDS);
    assert_gapless(&all(&store));
}

#[test]
fn group_commit_many_threads_all_durable_and_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 32 * 1024);
    std::thread::scope(|s| {
        for t in 0..16 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..20 {
                    let r = append_one(&store, &format!("g{t}"), i);
                    // Once an append returns, a reader sees it.
                    assert!(store.head_seq() >= r.last_seq);
                }
            });
        }
    });
    assert_eq!(store.head_seq(), 320);
    drop(store);
    let store = small_store(dir.path(), 32 * 1024);
    let events = all(&store);
    assert_eq!(events.len(), 320);
    assert_gapless(&events);
}
