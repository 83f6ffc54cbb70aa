//! What a store handle has done since it was opened: appends, events, bytes, and the syncs that
//! made them durable, with their time ([`Metrics`], from [`crate::EventStore::metrics`]).
//!
//! A backend keeps a [`Counters`] and bumps it where the work happens; the counters are atomics
//! updated with relaxed ordering (a snapshot is a consistent-enough view for a status line or a
//! Prometheus scrape, never a synchronisation point). This module owns the counters and their
//! snapshot; it never decides what counts as an append or a sync (the backend does).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

/// A snapshot of a handle's counters since it was opened (all zero for a backend that keeps
/// none). Counters only grow.
///
/// ```
/// use eventfile::{EventStore, ExpectedVersion, MemoryStore, NewEvent};
/// let store = MemoryStore::new();
/// store.append("s", ExpectedVersion::Any, vec![NewEvent::new("A", serde_json::json!({}))])?;
/// let m = store.metrics();
/// assert_eq!((m.appends, m.events), (1, 1));
/// # Ok::<(), eventfile::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Metrics {
    /// Appends that wrote events (imports included; retries that replayed and refused appends
    /// are not counted).
    pub appends: u64,
    /// Events those appends wrote.
    pub events: u64,
    /// Bytes those events take in the log as the backend writes them (the file store's framed
    /// records); 0 where the backend cannot tell.
    pub bytes: u64,
    /// Syncs that made writes durable: the file store's `fdatasync`s (shared by the appends of
    /// a group commit), a database's commits.
    pub syncs: u64,
    /// Time spent in those syncs, in nanoseconds.
    pub sync_nanos: u64,
    /// The longest of them, in nanoseconds.
    pub sync_max_nanos: u64,
}

/// The counters behind [`Metrics`], for a backend to keep and bump.
#[derive(Debug, Default)]
pub struct Counters {
    appends: AtomicU64,
    events: AtomicU64,
    bytes: AtomicU64,
    syncs: AtomicU64,
    sync_nanos: AtomicU64,
    sync_max_nanos: AtomicU64,
}

impl Counters {
    /// No counts yet.
    pub fn new() -> Counters {
        Counters::default()
    }

    /// An append (or import) wrote `events` events taking `bytes` bytes.
    pub fn appended(&self, events: u64, bytes: u64) {
        self.appends.fetch_add(1, Relaxed);
        self.events.fetch_add(events, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }

    /// A sync (or a database commit) took `took`.
    pub fn synced(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.syncs.fetch_add(1, Relaxed);
        self.sync_nanos.fetch_add(nanos, Relaxed);
        self.sync_max_nanos.fetch_max(nanos, Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> Metrics {
        Metrics {
            appends: self.appends.load(Relaxed),
            events: self.events.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            syncs: self.syncs.load(Relaxed),
            sync_nanos: self.sync_nanos.load(Relaxed),
            sync_max_nanos: self.sync_max_nanos.load(Relaxed),
        }
    }
}
