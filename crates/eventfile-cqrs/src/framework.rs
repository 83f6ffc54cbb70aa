//! One-call constructors of a [`CqrsFramework`] on an eventfile store, as cqrs-es's own backends
//! offer them (`postgres_cqrs`, `postgres_snapshot_cqrs`, `postgres_aggregate_cqrs`).
//!
//! This module owns nothing but the assembly: the repository does the work.

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, CqrsFramework, Query};
use eventfile::AsyncStore;

use crate::repository::EventfileEventRepository;

/// The [`CqrsFramework`] these constructors return.
pub type EventfileCqrs<A> = CqrsFramework<A, PersistedEventStore<EventfileEventRepository, A>>;

/// A framework on `store` with events as the only source of truth: each command loads the
/// aggregate by replaying its stream.
pub fn cqrs_framework<A: Aggregate>(
    store: impl Into<AsyncStore>,
    queries: Vec<Box<dyn Query<A>>>,
    services: A::Services,
) -> EventfileCqrs<A> {
    let store = EventfileEventRepository::new(store).event_store();
    CqrsFramework::new(store, queries, services)
}

/// A framework on `store` that saves an eventfile snapshot of the aggregate every
/// `snapshot_size` events and loads from the newest snapshot plus the events after it.
pub fn snapshot_cqrs_framework<A: Aggregate>(
    store: impl Into<AsyncStore>,
    queries: Vec<Box<dyn Query<A>>>,
    snapshot_size: usize,
    services: A::Services,
) -> EventfileCqrs<A> {
    let store = EventfileEventRepository::new(store).snapshot_store(snapshot_size);
    CqrsFramework::new(store, queries, services)
}

/// A framework on `store` that loads the aggregate from its snapshot alone, saved after every
/// commit. The snapshot is saved after the events, not atomically with them: see the README.
pub fn aggregate_cqrs_framework<A: Aggregate>(
    store: impl Into<AsyncStore>,
    queries: Vec<Box<dyn Query<A>>>,
    services: A::Services,
) -> EventfileCqrs<A> {
    let store = EventfileEventRepository::new(store).aggregate_store();
    CqrsFramework::new(store, queries, services)
}
