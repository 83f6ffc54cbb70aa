//! Integration tests of the core engine: one binary, one module per concern.

mod api;
mod bad_input;
mod batches;
mod concurrency;
mod corruption;
mod dcb;
mod deletion;
mod expected_version;
mod fixture;
mod full_disk;
mod fuzz_regressions;
mod idempotency;
mod locking;
mod many_segments;
mod metrics;
mod module_graph;
mod numbers;
mod query;
mod reads;
mod reopen;
mod retention;
mod snapshots;
mod subscribe;
mod support;
mod truncation;
mod verify;
