//! # eventfile-sqlite
//!
//! eventfile's [`EventStore`](eventfile::EventStore) in one SQLite file: [`SqliteStore`].
//! Every rule of the trait holds as for the file store (the conformance suite runs on it):
//! gapless seqs, expected versions, atomic multi-stream appends, retries by ids and by key
//! over the whole log, DCB conditions checked inside the write transaction, deletion as
//! `$lifecycle` events, snapshots, listings, subscriptions and import.
//!
//! The file is ordinary SQLite, readable with the `sqlite3` shell (the schema is in the
//! crate's README); its schema is versioned and migrated on open, or by hand with [`migrate`].
//!
//! ```
//! use eventfile::{EventStore, ExpectedVersion, NewEvent, Query};
//! use eventfile_sqlite::SqliteStore;
//! # let dir = tempfile::tempdir().unwrap();
//! let store = SqliteStore::open(dir.path().join("events.db"))?;
//! store.append("cart-1", ExpectedVersion::NoStream, vec![
//!     NewEvent::new("ItemAdded", serde_json::json!({"sku": "a"})).with_tag("sku=a"),
//! ])?;
//! assert_eq!(store.count(&Query::new().tag("sku=a"))?, 1);
//! # Ok::<(), eventfile::Error>(())
//! ```
//!
//! This crate owns the SQLite backend and nothing else: it never restates a rule of the store
//! (they come from [`eventfile::backend`]), and the library never depends on it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod append;
mod checkpoints;
mod connection;
mod feed;
pub mod migrate;
mod options;
mod reads;
mod rows;
mod sql;
mod store;
mod writes;

pub use options::{SqliteOptions, Synchronous};
pub use store::SqliteStore;

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
