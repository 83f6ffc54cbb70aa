//! The adapter's cases on PostgreSQL: a private server for this process (or
//! `EVENTFILE_TEST_POSTGRES_URL`), each store in a fresh schema dropped afterwards. Nothing is
//! mocked.

mod support;

use eventfile::EventStore;
use eventfile_conformance::Guarded;

fn new_store() -> Box<dyn EventStore> {
    let (store, guard) = eventfile_postgres::testing::fresh_schema();
    Box::new(Guarded::new(store, guard))
}

suite!(new_store);
