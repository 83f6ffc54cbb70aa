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
//! ## Schema (version 3)
//!
//! All in one schema (default `eventfile`), recorded in `schema_version (version, name,
//! applied_at)`; migration 1 makes the tables and functions, migration 2 the query indexes,
//! migration 3 the set-based append of independent groups, migration 4 the consumers'
//! checkpoints, migration 5 the lean append of a lone request, migration 6 its `NOTIFY` sent only
//! while some store listens.
//!
//! | table | columns | notes |
//! |---|---|---|
//! | `store` | `store_id` | one row: the store's identity |
//! | `events` | `seq bigint` PK, `id` UNIQUE, `stream`, `version` (UNIQUE with `stream`), `type`, `time` (µs since the epoch), `data json`, `meta json`, `tags text[]`, `more` (the append continues), `key` | `json` keeps the text byte for byte; the head is `max(seq)` |
//! | `streams` | `stream` PK, `version` | one row per stream, made when it is created (the listings walk it); a stream's version is its newest event's, from the `(stream, version)` index (migration 7: `version` here is no longer kept by lone appends) |
//! | `deletions` | `stream` PK, `before`, `tombstone`, `soft` | versions below `before` are hidden; `soft`: a soft deletion set `before` (no snapshot below it is used) |
//! | `snapshots` | (`stream`, `version`) PK, `time`, `state` | newest 3 per stream kept |
//! | `keys` | `key` PK, `first_seq` | idempotency keys |
//! | `checkpoints` | `name` PK, `position`, `error`, `time` | consumers' positions |
//!
//! Indexes (migration 2): `(type, seq)`; BRIN on `time` (times never decrease along seq);
//! GIN on `tags`; partial expression indexes on `meta->>'correlation_id'`,
//! `meta->>'causation_id'` and `meta->>'actor'` (only events carrying the key). `(stream,
//! version)` and `id` are indexed by their constraints.
//!
//! Functions: `lock_writers()` takes the writers' lock; `append_batch(...)` checks and writes
//! a group of appends under it in one call, one request after the other, stopping at the
//! first it refuses (the appender decides that one alone and sends the rest again), and
//! `NOTIFY`s the schema's channel (named as the schema) with the new head;
//! `append_group(...)` does the same in two statements for a group whose requests share no
//! stream, key or id; `append_one(...)` does it in three for a group of one request on one
//! stream (the lock, the checks, the write), and `NOTIFY`s only while some store listens (a
//! listening store holds the advisory lock `hashtextextended('eventfile listeners ' || schema,
//! 0)` shared; stores listen only while they have subscriptions or waiters, and poll the head
//! every 250 ms whatever they do).
//!
//! ## Gapless seqs in commit order
//!
//! Every transaction that writes events (an append group, a deletion, an import) first takes
//! one transaction-scoped advisory lock per schema (`pg_advisory_xact_lock`), then reads the
//! head (`max(seq)`) in a later statement, takes the next seqs, and commits. A second writer
//! blocks on the lock until the first has committed, and PostgreSQL releases a transaction's
//! locks only after its commit is visible to new snapshots (`ProcArrayEndTransaction` runs
//! before the locks are released); in READ COMMITTED each statement takes a new snapshot, so
//! the head the second writer reads includes the first's events. Hence seqs are committed in
//! increasing order with no hole, and any snapshot that sees seq `n + 1` sees `n`: a reader
//! never sees a gap, and the head it reads bounds everything it can then read. Readers fetch
//! pages by `seq` ranges up to the head read first, so they never read past it. The lock
//! serialises writers but not the commits of many appends: the caller that finds no group
//! being committed sends every append queued meanwhile in one call, one transaction, one
//! commit (a lone append in one round trip from its own thread). An
//! advisory lock rather than a locked head row: it writes nothing (a head row updated by
//! every commit costs two row versions and WAL records per commit and collects dead tuples).

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod append;
mod catalog;
mod checkpoints;
mod deletion;
mod error;
mod group;
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

/// The README's example, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
