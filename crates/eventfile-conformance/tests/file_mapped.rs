//! The conformance suite on the file store with 16 KiB segments (so that most reads
//! cross sealed segments) mapped rather than read (`map_sealed_segments`): both
//! ways of reading a sealed segment must give the same answers.

use eventfile::{EventStore, OpenOptions};
use eventfile_conformance::Guarded;

fn new_store() -> Box<dyn EventStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = OpenOptions::new()
        .segment_bytes(16 * 1024)
        .map_sealed_segments(true)
        .open(dir.path())
        .expect("open a store");
    Box::new(Guarded::new(store, dir))
}

eventfile_conformance::suite!(new_store);
