//! The conformance suite on the file store, in a fresh temporary directory per store, with the
//! default options (every append fsynced).

use eventfile::{EventStore, Store};
use eventfile_conformance::Guarded;

fn new_store() -> Box<dyn EventStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path()).expect("open a store");
    Box::new(Guarded::new(store, dir))
}

eventfile_conformance::suite!(new_store);
