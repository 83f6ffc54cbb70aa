//! The scenario suites: whole workloads run against the store, each checked after every step or
//! after every failure, through the public API and the test seam of the `internals` feature (the
//! root's dev-dependency on itself turns it on for `cargo test`): `FaultyStorage`, the simulated
//! disk (`eventfile::sim`) and `eventfile::internals`. One binary, one module per suite.
//!
//! - `deletion_order`: a deletion is in force, and in a removal's manifest, only once its event
//!   is durable; snapshots and consumers' checkpoints never reach the disk before their events.
//! - `faults`: every write, sync, create and rename of a workload fails in turn.
//! - `poisoning`: a failed write, fsync or roll poisons the handle; a reopen recovers.
//! - `power_loss`: power fails at a random operation on the simulated disk
//!   (`EVENTFILE_POWER_LOSS_RUNS`, default 1,000).
//! - `follower`: the same power losses under a read-only reader, which must never have seen an
//!   event they take back (same variable).
//! - `model`: proptest sequences against `MemoryStore` as the oracle (`EVENTFILE_MODEL_CASES`,
//!   default 256).
//! - `races`: a read-only open or refresh racing retention, compaction or an unrecorded unlink,
//!   on the real and the simulated disk.
//! - `sync_overlap`: a roll's `fdatasync` overlapping a waiter's, one failing and the other
//!   succeeding as Linux may report them: nothing of the failed writeback is acknowledged.
//!
//! `docs/reliability.md` (the test matrix) quotes what they print; its "Running the long
//! versions" has the commands.

mod deletion_order;
mod faults;
mod follower;
mod model;
mod poisoning;
mod power_loss;
mod races;
mod sealer;
mod sync_overlap;
