//! A handle's counters: appends, events and bytes written, and the syncs that made them
//! durable; retries that replay and refused appends count nothing.

use eventfile::{EventStore, ExpectedVersion, MemoryStore, NewEvent, Store};
use serde_json::json;

fn event(n: u64) -> NewEvent {
    NewEvent::new("Counted", json!({ "n": n }))
}

#[test]
fn counters_follow_what_was_written_and_synced() {
    let dir = tempfile::tempdir().unwrap();
    let file = Store::open(dir.path()).unwrap();
    let memory = MemoryStore::new();
    for store in [&file as &dyn EventStore, &memory] {
        assert_eq!(store.metrics(), eventfile::Metrics::default());
        store
            .append("s", ExpectedVersion::NoStream, vec![event(1).with_id("a")])
            .unwrap();
        store
            .append("s", ExpectedVersion::Exact(1), vec![event(2), event(3)])
            .unwrap();
        // A retry that replays, and a conflict: nothing more is written, nothing counted.
        let retry = store
            .append("s", ExpectedVersion::NoStream, vec![event(1).with_id("a")])
            .unwrap();
        assert!(retry.replayed);
        assert!(
            store
                .append("s", ExpectedVersion::NoStream, vec![event(4)])
                .is_err()
        );
        let m = store.metrics();
        assert_eq!((m.appends, m.events), (2, 3));
        assert!(m.sync_max_nanos <= m.sync_nanos);
    }
    let m = file.metrics();
    // Each append waited for an fdatasync of its own (no other appender to share it with).
    assert_eq!(m.syncs, 2);
    assert!(m.sync_nanos > 0);
    // The bytes are the records in the segment: its length less the header.
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(segment).unwrap();
    let records: usize = text
        .lines()
        .filter(|l| l.contains("\"seq\":"))
        .map(|l| l.len() + 1)
        .sum();
    assert_eq!(m.bytes, records as u64);
    assert_eq!(memory.metrics().syncs, 0);
}

/// `append_requests` on the file store writes every request, then waits for one sync that
/// covers them all; a failed request is not counted.
#[test]
fn independent_requests_share_one_sync() {
    use eventfile::AppendRequest;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let requests = (0..10)
        .map(|i| {
            AppendRequest::new(
                format!("s-{}", i % 5),
                ExpectedVersion::NoStream,
                [event(i)],
            )
        })
        .collect();
    let out = store.append_requests(requests);
    let ok = out.iter().filter(|r| r.is_ok()).count();
    // The second request to each stream expected it to be new: five conflicts.
    assert_eq!(ok, 5);
    let m = store.metrics();
    assert_eq!((m.appends, m.events, m.syncs), (5, 5, 1));
    assert_eq!(store.head_seq(), 5);
}
