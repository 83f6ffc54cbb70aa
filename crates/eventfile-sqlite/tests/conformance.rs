//! The conformance suite on the SQLite store, unchanged: each store a fresh file in a fresh
//! temporary directory, with the default options (WAL, every append fsynced).

use eventfile::EventStore;
use eventfile_conformance::Guarded;
use eventfile_sqlite::SqliteStore;

fn new_store() -> Box<dyn EventStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("events.db")).expect("open a store");
    Box::new(Guarded::new(store, dir))
}

eventfile_conformance::suite!(new_store);
