//! The conformance suite on PostgreSQL, each store in a fresh schema dropped afterwards.

use eventfile::EventStore;
use eventfile_conformance::Guarded;

fn new_store() -> Box<dyn EventStore> {
    let (store, guard) = eventfile_postgres::testing::fresh_schema();
    Box::new(Guarded::new(store, guard))
}

eventfile_conformance::suite!(new_store);
