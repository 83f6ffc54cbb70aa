//! The adapter's cases on the SQLite store, each a fresh file in a fresh temporary directory.

mod support;

use eventfile::EventStore;
use eventfile_conformance::Guarded;
use eventfile_sqlite::SqliteStore;

fn new_store() -> Box<dyn EventStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("events.db")).expect("open a store");
    Box::new(Guarded::new(store, dir))
}

suite!(new_store);
