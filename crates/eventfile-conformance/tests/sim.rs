//! The conformance suite on the file store over the simulated disk (`eventfile::sim`, through
//! the storage seam of the `internals` feature), with small segments so that reads, queries,
//! counts and the catalog cross many sealed segments and their index sidecars.

use std::sync::Arc;

use eventfile::sim::{Image, SimDisk};
use eventfile::{EventStore, OpenOptions, Storage};
use eventfile_conformance::Guarded;

/// Segments of 16 KiB: the suite's larger histories span several, and its largest event fits.
const SEGMENT_BYTES: u64 = 16 * 1024;

fn new_store() -> Box<dyn EventStore> {
    // The disk takes paths relative to this directory; only the lock is taken on the real one.
    let root = tempfile::tempdir().expect("a temporary directory");
    let disk = SimDisk::new(root.path(), Image::new(), u64::MAX, 1);
    let storage: Arc<dyn Storage> = Arc::new(Arc::clone(&disk));
    let store = OpenOptions::new()
        .segment_bytes(SEGMENT_BYTES)
        .storage(storage)
        .open(root.path())
        .expect("open a store on the simulated disk");
    Box::new(Guarded::new(store, (disk, root)))
}

eventfile_conformance::suite!(new_store);
