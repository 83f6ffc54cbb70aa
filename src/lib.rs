//! # eventfile
//!
//! An embedded event store in a directory of files: the append-only log that event-sourced
//! applications keep their history in, with no database server to run.
//!
//! * Events are appended to **streams** (one per aggregate, e.g. `order-42`) with optimistic
//!   concurrency ([`ExpectedVersion`]); a batch is all-or-nothing, also across streams
//!   ([`Store::append_multi`]).
//! * An append returns once its bytes are **fsynced** (the default); concurrent appenders share
//!   one fsync.
//! * Every event has a gapless global **`seq`** (first event 1) and a per-stream **`version`**
//!   (first event 1; an empty stream is at 0).
//! * The log is a set of **JSONL segment files**: every line is one event, valid JSON with a
//!   CRC-32 frame, so `jq` reads a segment directly. See `docs/format.md`.
//! * [`EventStore`] is what an application needs of an event store, whatever keeps the events:
//!   [`Store`] implements it, and so does [`MemoryStore`], the same semantics in memory for
//!   unit tests.
//!
//! ```
//! use eventfile::{ExpectedVersion, NewEvent, Read, Store};
//! use serde_json::json;
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("events");
//! let store = Store::open(&path)?;                    // e.g. Store::open("./events")
//! let r = store.append("order-42", ExpectedVersion::NoStream, [
//!     NewEvent::new("OrderPlaced", json!({"customer": "ann"})).with_tag("region=eu"),
//! ])?;
//! assert_eq!((r.first_seq, r.version), (1, 1));
//!
//! // Someone else appended meanwhile? The expectation fails and nothing is written.
//! let err = store
//!     .append("order-42", ExpectedVersion::Exact(0), [NewEvent::new("OrderPlaced", json!({}))])
//!     .unwrap_err();
//! assert!(err.is_conflict());
//!
//! for event in store.read_stream("order-42", Read::forward())? {
//!     let event = event?;
//!     println!("{} v{} {}", event.stream, event.version, event.event_type);
//! }
//! # Ok::<(), eventfile::Error>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod active_checkpoint;
pub mod aggregate;
mod api;
#[cfg(feature = "async")]
mod asynchronous;
pub mod backend;
mod block_cache;
mod catalog;
mod checkpoint;
mod commit;
mod config;
mod deletion;
mod error;
mod event;
mod expected;
mod files;
mod follow;
mod head;
mod import;
mod index;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;
mod lifecycle;
mod lookup;
mod manifest;
mod memory;
mod metrics;
pub mod projection;
mod query;
mod read_ahead;
mod reader;
mod record;
mod recovery;
mod retention;
mod sealed;
mod sealed_index;
mod sealer;
mod segment;
mod segments;
mod sidecar;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod sim;
mod snapshot;
mod state;
mod storage;
mod store;
mod store_impl;
mod stream_table;
pub mod subscription;
mod summary;
mod summary_read;
mod term_map;
mod time;
mod verify;
mod writer;

pub use api::{
    AppendCondition, AppendRequest, DeleteResult, EventIter, EventStore, ImportResult, Snapshot,
    StreamInfo, TermCount,
};
#[cfg(feature = "async")]
pub use asynchronous::{AsyncEvents, AsyncStore, AsyncSubscription};
pub use catalog::ReindexReport;
pub use checkpoint::{
    Checkpoint, Checkpoints, FileCheckpoints, MAX_ERROR_BYTES, MemoryCheckpoints,
};
pub use config::{
    DEFAULT_MAX_EVENT_BYTES, DEFAULT_READ_CACHE_BYTES, DEFAULT_SEGMENT_BYTES,
    DEFAULT_SNAPSHOTS_KEPT, Durability, OpenOptions, RetentionPolicy, StoreConfig,
};
pub use deletion::{DELETED, LIFECYCLE_STREAM, TOMBSTONED, TRUNCATED};
pub use error::{Error, ErrorKind, Result};
pub use event::{
    AppendResult, EventType, ExpectedVersion, INDEXED_META_KEYS, MAX_NAME_BYTES, MultiAppendResult,
    NewEvent, RecordedEvent, StreamAppend, compact_json, metadata_from_json, validate_event_type,
    validate_id, validate_key, validate_stream, validate_tag, validate_writable_stream,
};
pub use import::PreparedImport;
pub use memory::MemoryStore;
pub use metrics::{Counters, Metrics};
pub use query::{Cursor, Direction, Query, QueryItem, Read};
pub use reader::Events;
pub use retention::{RemovalReport, RemovedSegment};
pub use store::Store;
pub use subscription::Subscription;
pub use time::{Micros, format_rfc3339, parse_rfc3339};
pub use verify::{Problem, VerifyReport, verify};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(feature = "internals")]
pub use storage::{FaultKind, FaultyStorage, Mapped, OsStorage, Storage, StorageFile};
