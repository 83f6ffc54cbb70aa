//! The adapter's cases on eventfile's in-memory store.

mod support;

use eventfile::{EventStore, MemoryStore};

fn new_store() -> Box<dyn EventStore> {
    Box::new(MemoryStore::new())
}

suite!(new_store);
