//! The conformance suite on the in-memory store.

use eventfile::{EventStore, MemoryStore};

fn new_store() -> Box<dyn EventStore> {
    Box::new(MemoryStore::new())
}

eventfile_conformance::suite!(new_store);

/// A clone is the same store: what one appends, the other reads.
#[test]
fn clones_share_the_store() {
    let a = MemoryStore::new();
    let b = a.clone();
    a.append(
        "s",
        eventfile::ExpectedVersion::NoStream,
        vec![eventfile::NewEvent::new("T", serde_json::json!({}))],
    )
    .unwrap();
    assert_eq!(b.head_seq().unwrap(), 1);
    assert_eq!(b.stream_version("s").unwrap(), 1);
}

/// `run_all` runs every case too (what a backend without `suite!` calls).
#[test]
fn run_all_passes() {
    eventfile_conformance::run_all(&new_store);
}
