//! The adapter's cases on eventfile's file store, each in a fresh temporary directory.

mod support;

use eventfile::{EventStore, Store};
use eventfile_conformance::Guarded;

fn new_store() -> Box<dyn EventStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path().join("events")).expect("open a store");
    Box::new(Guarded::new(store, dir))
}

suite!(new_store);
