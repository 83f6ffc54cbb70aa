//! Dropping the last clone of a store ends its subscriptions and stops its follower thread.
//! Checked in a child process, where no other test's store runs threads.

use std::time::Duration;

use eventfile::{EventStore, ExpectedVersion, Query};
use eventfile_sqlite::SqliteStore;

use super::{numbered, spawn};

/// Threads of this process named like the follower (`comm` keeps 15 bytes of the name).
fn followers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "eventfile-sqlit")
        .count()
}

/// Waits until the follower thread has named itself: a thread takes its name when it starts
/// running, which may be after `spawn` returned (and after the subscription's first event,
/// served without it). Only the name lags: the thread exists.
fn one_follower() {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while followers() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} followers",
            followers()
        );
        std::thread::yield_now();
    }
}

/// The child's side.
pub(crate) fn in_child(file: &std::path::Path) {
    let store = SqliteStore::open(file).expect("open");
    let clone = store.clone();
    store
        .append("s", ExpectedVersion::Any, vec![numbered("s", 1)])
        .expect("append");
    let mut sub = store.subscribe(&Query::new(), 0).expect("subscribe");
    assert_eq!(sub.next().expect("an event").expect("event").seq, 1);
    one_follower();
    drop(store);
    // A clone keeps the store open.
    assert!(
        sub.next_timeout(Duration::from_millis(1))
            .expect("sub")
            .is_none()
    );
    assert!(!sub.is_finished());
    assert_eq!(followers(), 1);
    drop(clone);
    // The last clone closed the watch and joined the thread before returning.
    assert_eq!(followers(), 0);
    assert!(sub.next().is_none());
    assert!(sub.is_finished());
}

#[test]
fn the_last_clone_ends_subscriptions_and_stops_the_follower() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("events.db");
    let mut child = spawn("close", &file, "s", None);
    assert!(
        child.wait().expect("wait").success(),
        "the child's checks failed"
    );
}
