//! # eventfile-cqrs
//!
//! eventfile as the event store of a [cqrs-es](https://docs.rs/cqrs-es) application:
//! [`EventfileEventRepository`] implements cqrs-es's
//! [`PersistedEventRepository`](cqrs_es::persist::PersistedEventRepository) on any eventfile
//! backend (the file store, [`eventfile::MemoryStore`], SQLite, PostgreSQL), through
//! [`eventfile::AsyncStore`].
//!
//! * One aggregate instance is one stream, `{Aggregate::TYPE}-{aggregate_id}`
//!   ([`stream_name`]); a cqrs-es sequence number is the event's version in its stream (both
//!   start at 1), so a commit appends with the version the aggregate was loaded at, and a
//!   concurrent commit fails as `PersistenceError::OptimisticLockError`.
//! * Event type, payload, event version and metadata are kept (the README has the layout).
//! * Snapshots are eventfile snapshots, saved after the events they include.
//! * `stream_events` replays one aggregate in version order, `stream_all_events` every
//!   aggregate of a type in the store's global order. A replay of a stream whose events were
//!   deleted or truncated ends with `Error::MissingEvents`, as loading it does.
//!
//! This crate owns only the translation between the two models. It never reaches into a
//! backend, and it never changes an aggregate id to fit a stream name: an id that does not fit
//! is refused ([`NameError`]).
//!
//! ```
//! use cqrs_es::{Aggregate, DomainEvent, EventStore};
//! use cqrs_es::event_sink::EventSink;
//! use eventfile::{AsyncStore, EventStore as _, MemoryStore, Read};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! struct Counter { total: u64 }
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! enum CounterEvent { Added { n: u64 } }
//!
//! impl DomainEvent for CounterEvent {
//!     fn event_type(&self) -> String { "Added".to_string() }
//!     fn event_version(&self) -> String { "1.0".to_string() }
//! }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("{0}")]
//! struct CounterError(String);
//!
//! impl Aggregate for Counter {
//!     const TYPE: &'static str = "Counter";
//!     type Command = u64;
//!     type Event = CounterEvent;
//!     type Error = CounterError;
//!     type Services = ();
//!
//!     async fn handle(&mut self, n: u64, _: &(), sink: &EventSink<Self>) -> Result<(), CounterError> {
//!         sink.write(CounterEvent::Added { n }, self).await;
//!         Ok(())
//!     }
//!
//!     fn apply(&mut self, CounterEvent::Added { n }: CounterEvent) {
//!         self.total += n;
//!     }
//! }
//!
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! rt.block_on(async {
//!     let store = AsyncStore::new(MemoryStore::new()); // or Store::open("./events")?
//!     let cqrs = eventfile_cqrs::cqrs_framework::<Counter>(store.clone(), vec![], ());
//!     cqrs.execute("c-1", 2).await.unwrap();
//!     cqrs.execute("c-1", 3).await.unwrap();
//!
//!     // The events are in stream `Counter-c-1`, versions 1 and 2.
//!     let events = store.read_stream("Counter-c-1", Read::forward()).await?;
//!     assert_eq!(events.len(), 2);
//!     assert_eq!(events[1].meta["event_version"], "1.0");
//!
//!     // Loaded again by replaying them.
//!     let repo = eventfile_cqrs::EventfileEventRepository::new(store);
//!     let loaded = repo.event_store::<Counter>().load_aggregate("c-1").await.unwrap();
//!     assert_eq!((loaded.aggregate.total, loaded.current_sequence), (5, 2));
//!     Ok::<(), eventfile::Error>(())
//! })?;
//! # Ok::<(), eventfile::Error>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod framework;
mod mapping;
mod replay;
mod repository;
mod stream_name;

pub use error::{Error, persistence_error};
pub use framework::{
    EventfileCqrs, aggregate_cqrs_framework, cqrs_framework, snapshot_cqrs_framework,
};
pub use mapping::{EVENT_VERSION_KEY, METADATA_KEY, SNAPSHOT_FORMAT, SnapshotState};
pub use repository::{DEFAULT_STREAMING_CHANNEL_SIZE, EventfileEventRepository};
pub use stream_name::{NameError, SEPARATOR, aggregate_id, stream_name, type_prefix};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
