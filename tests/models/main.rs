//! Integration tests of the read side and the write side built on [`eventfile::EventStore`]:
//! aggregates and their repository, projections and their runner, each case run on the
//! in-memory store and on the file store.

mod aggregates;
mod projections;
mod support;
