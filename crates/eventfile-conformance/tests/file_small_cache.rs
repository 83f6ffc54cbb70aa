//! The conformance suite on the file store with 16 KiB segments (so that most reads cross
//! sealed segments) and a block cache of three blocks (`read_cache_bytes`), so that nearly every
//! read of a sealed file evicts a block another read wanted: the answers must not change.

use eventfile::{EventStore, OpenOptions};
use eventfile_conformance::Guarded;

fn new_store() -> Box<dyn EventStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = OpenOptions::new()
        .segment_bytes(16 * 1024)
        .read_cache_bytes(3 * 4096)
        .open(dir.path())
        .expect("open a store");
    Box::new(Guarded::new(store, dir))
}

eventfile_conformance::suite!(new_store);
