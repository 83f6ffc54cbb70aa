//! # eventfile-postgres
//!
//! eventfile's [`EventStore`](eventfile::EventStore) on PostgreSQL: [`PostgresStore`], with the
//! file store's semantics (the conformance suite runs unchanged), gapless positions in commit
//! order, group commit, subscriptions woken by `LISTEN`/`NOTIFY`, and versioned migrations
//! ([`migrate`]).
//!
//! This crate owns the PostgreSQL schema and every statement run on it; it never decides a rule
//! of the store (those are `eventfile::backend`'s) and never keeps state of its own beyond a
//! connection pool and the head it has seen.
//!
//! ```no_run
//! use eventfile::{EventStore, ExpectedVersion, NewEvent, Query};
//! use eventfile_postgres::{PostgresOptions, PostgresStore};
//! let url = "postgres://postgres@localhost/postgres?host=/tmp/pgdev";
//! let store = PostgresStore::open_with(url, PostgresOptions::new().schema("shop"))?;
//! store.append("order-1", ExpectedVersion::Any, vec![
//!     NewEvent::new("OrderPlaced", serde_json::json!({"total": 12})).with_tag("customer=7"),
//! ])?;
//! assert_eq!(store.count(&Query::new().tag("customer=7"))?, 1);
//! # Ok::<(), eventfile::Error>(())
//! ```
//!
//! ## Schema (version 2)
//!
//! All in one schema (default `eventfile`), recorded in `schema_version (version, name,
//! applied_at)`:
//!
//! | table | columns | notes |
//! |---|---|---|
//! | `head` | `seq`, `last_time`, `store_id` | one row; every writer locks it (`FOR UPDATE`) |
//! | `events` | `seq bigint` PK, `id` UNIQUE, `stream`, `version` (UNIQUE with `stream`), `type`, `time` (µs since the epoch), `data json`, `meta json`, `tags text[]`, `more` (the append continues), `key` | `json` keeps the text byte for byte |
//! | `streams` | `stream` PK, `version` | each stream's current version |
//! | `deletions` | `stream` PK, `before`, `tombstone` | versions below `before` are hidden |
//! | `snapshots` | (`stream`, `version`) PK, `time`, `state` | newest 3 per stream kept |
//! | `keys` | `key` PK, `first_seq` | idempotency keys |
//!
//! Migration 2 adds the indexes: `(type, seq)`, `time`, GIN on `tags`, and expression indexes
//! on `meta->>'correlation_id'`, `meta->>'causation_id'`, `meta->>'actor'`.
//!
//! Appends run through the function `append_batch`, one call per group of queued appends.
//!
//! ## Gapless seqs in commit order
//!
//! Every transaction that writes events first locks the one `head` row (`SELECT ... FOR
//! UPDATE`), takes its seqs from it and updates it before committing. A second writer blocks on
//! that lock until the first commits, and PostgreSQL releases a transaction's row locks only
//! after its commit is visible to new snapshots; so seqs are committed in order, and every
//! snapshot that sees seq `n + 1` sees `n`. Readers read the head first, then events up to it,
//! in later statements, whose snapshots are at least as new. The lock serialises writers but
//! not commits of many appends: the appender thread commits every append queued meanwhile in
//! one call and one commit.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod append;
mod catalog;
mod deletion;
mod error;
mod import;
mod listen;
mod lookup;
pub mod migrate;
mod options;
mod pool;
mod read;
mod sql;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use options::PostgresOptions;
pub use store::PostgresStore;
