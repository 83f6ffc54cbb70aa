//! Projections: read models built from the log, which remember where they got to, catch up,
//! follow live and can be rebuilt ([`Projection`], run by a [`Runner`]).
//!
//! A runner reads the events a projection's query selects through a [`crate::Subscription`]
//! (history, then live, with no gap and no duplicate), hands them over one by one, and commits
//! in batches: first the projection's own [`Projection::commit`], then (at most once a second
//! by default, [`Runner::checkpoint_every`], and always at the end) the checkpoint kept in the
//! store ([`EventStore::checkpoints`], listed by `eventfile projections`). After a crash it
//! resumes from the checkpoint saved last, so events handled after it are handled again
//! (at-least-once). A read model that keeps its own position and writes it in the same
//! transaction as its rows ([`Projection::position`]) is exactly-once: the runner resumes from
//! the read model's position, whatever the store's checkpoint says.
//!
//! A projection that fails on an event stops at that event: the runner rolls back the batch
//! and handles its events before the failing one again (or, from a read model that cannot
//! roll back, keeps them as handled: [`Projection::rollback`]), commits them, saves the
//! checkpoint with the error, and returns [`ProjectionError::Handler`]. The event is never
//! skipped: the next run starts with it.
//!
//! This module owns the runner's loop and the checkpoint rules; it reaches the log only
//! through [`EventStore`].
//!
//! ```
//! use eventfile::projection::{BoxError, Projection, Runner};
//! use eventfile::{EventStore, ExpectedVersion, MemoryStore, NewEvent, Query, RecordedEvent};
//! use serde_json::json;
//!
//! /// Orders placed, by customer.
//! #[derive(Default)]
//! struct OrdersByCustomer(std::collections::BTreeMap<String, u64>);
//!
//! impl Projection for OrdersByCustomer {
//!     fn name(&self) -> &str { "orders-by-customer" }
//!     fn query(&self) -> Query { Query::new().event_type("OrderPlaced") }
//!     fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
//!         let customer = event.data_value()["customer"].as_str().unwrap_or("?").to_owned();
//!         *self.0.entry(customer).or_default() += 1;
//!         Ok(())
//!     }
//!     fn reset(&mut self) -> Result<(), BoxError> { self.0.clear(); Ok(()) }
//! }
//!
//! let store = MemoryStore::new();
//! store.append("order-1", ExpectedVersion::NoStream,
//!     vec![NewEvent::new("OrderPlaced", json!({"customer": "ann"}))])?;
//! let mut runner = Runner::new(&store, OrdersByCustomer::default())?;
//! assert_eq!(runner.catch_up()?, 1);
//! assert_eq!(runner.projection().0["ann"], 1);
//! assert_eq!(store.checkpoints().load("orders-by-customer")?, Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::api::EventStore;
use crate::checkpoint::Checkpoint;
use crate::error::Error;
use crate::event::RecordedEvent;
use crate::query::Query;
use crate::subscription::Subscription;
use crate::time::Micros;

/// The error a projection's own code returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A read model built from the events a query selects.
pub trait Projection: Send {
    /// The name its checkpoint is kept under (see [`crate::Checkpoints`] for the rules).
    fn name(&self) -> &str;

    /// The events it wants, oldest first (default: all). Its `from_seq` (and cursor) are
    /// where it begins; its `to_seq` and limit are ignored.
    fn query(&self) -> Query {
        Query::new()
    }

    /// Handles one event. An error stops the runner at this event.
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError>;

    /// Makes what `handle` did since the last commit durable, as of `position` (the seq up to
    /// which every event the query selects was handled). A read model that keeps its position
    /// writes it here in the same transaction as its changes. Default: nothing to do.
    fn commit(&mut self, position: u64) -> Result<(), BoxError> {
        let _ = position;
        Ok(())
    }

    /// Undoes what `handle` did since the last commit, when a handler, a read of the log or a
    /// commit failed. Returns whether it did: `Ok(true)`, and the runner handles the undone
    /// events again (those before a failing one, then commits them) or leaves them to the
    /// next run; `Ok(false)` (the default, for a read model in memory that cannot undo), and
    /// the runner keeps what was handled and commits it as it is, so no event is applied
    /// twice. A read model that keeps `false` must make `handle` all-or-nothing (a failing
    /// call changes nothing), and its `commit` must not fail.
    fn rollback(&mut self) -> Result<bool, BoxError> {
        Ok(false)
    }

    /// The position the read model keeps itself, when it commits it with its changes
    /// (exactly-once); `None` (the default) when the store's checkpoint is the position.
    fn position(&mut self) -> Result<Option<u64>, BoxError> {
        Ok(None)
    }

    /// Empties the read model, for a rebuild.
    fn reset(&mut self) -> Result<(), BoxError>;
}

/// Why a runner stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The projection failed on an event: the runner stopped there, with the events before it
    /// committed. The next run starts with this event.
    #[error("projection {name} failed at seq {seq} ({event_type}): {source}")]
    Handler {
        /// The projection.
        name: String,
        /// The event it failed on.
        seq: u64,
        /// Its type.
        event_type: String,
        /// What the projection said.
        #[source]
        source: BoxError,
    },
    /// The saved position is past the store's head: the checkpoint belongs to another store,
    /// or the store lost events. Nothing is handled: rebuild the projection (or remove the
    /// checkpoint) once the cause is known.
    #[error(
        "projection {name} is at seq {position}, past the store's head {head}: it was built \
         from another log; rebuild it"
    )]
    AheadOfHead {
        /// The projection.
        name: String,
        /// Its saved position.
        position: u64,
        /// The store's head.
        head: u64,
    },
    /// The read model failed to commit, roll back, report its position or reset.
    #[error("projection {name}: read model failed to {action}: {source}")]
    ReadModel {
        /// The projection.
        name: String,
        /// What it was asked to do.
        action: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// Where a projection is, as [`status`] and [`Runner::status`] report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectionStatus {
    /// The name its checkpoint is kept under.
    pub name: String,
    /// The seq up to which it has handled the log.
    pub position: u64,
    /// The store's head when the status was taken.
    pub head: u64,
    /// How far behind the head it is, in seqs (`head - position`, 0 when ahead).
    pub lag: u64,
    /// The error it stopped on, if it did.
    pub error: Option<String>,
    /// When its checkpoint was saved (microseconds since the Unix epoch).
    pub time: Micros,
}

impl ProjectionStatus {
    fn of(checkpoint: Checkpoint, head: u64) -> ProjectionStatus {
        ProjectionStatus {
            lag: head.saturating_sub(checkpoint.position),
            name: checkpoint.name,
            position: checkpoint.position,
            head,
            error: checkpoint.error,
            time: checkpoint.time,
        }
    }
}

/// The status of every checkpoint the store keeps: `eventfile projections`.
pub fn status(store: &dyn EventStore) -> crate::Result<Vec<ProjectionStatus>> {
    let head = store.head_seq()?;
    let saved = store.checkpoints().list()?;
    Ok(saved
        .into_iter()
        .map(|c| ProjectionStatus::of(c, head))
        .collect())
}

/// How far a catch-up or rebuild has come: passed to its progress callback after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The seq handled up to.
    pub position: u64,
    /// The head it is catching up to.
    pub head: u64,
    /// Events handled so far by this call.
    pub handled: u64,
}

/// Stops a [`Runner::run`] from another thread. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// A flag not yet raised.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks the runner to stop: it commits what it handled and returns within
    /// [`Runner::poll`].
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether it was raised.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A flag raised elsewhere, e.g. by a signal handler (`signal_hook::flag::register`).
impl From<Arc<AtomicBool>> for Stop {
    fn from(flag: Arc<AtomicBool>) -> Stop {
        Stop(flag)
    }
}

/// Runs a projection over a store: catch-up, live following, rebuild.
pub struct Runner<S: EventStore, P: Projection> {
    store: S,
    projection: P,
    name: String,
    position: u64,
    batch: usize,
    poll: Duration,
    /// The least time between two saves of the store's checkpoint.
    checkpoint_every: Duration,
    /// When the store's checkpoint was last saved, and at which position.
    saved: Option<(Instant, u64)>,
}

impl<S: EventStore, P: Projection> std::fmt::Debug for Runner<S, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("name", &self.name)
            .field("position", &self.position)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl<S: EventStore, P: Projection> Runner<S, P> {
    /// A runner of `projection` over `store`, at the position the read model keeps (if it
    /// keeps one) or else the store's checkpoint (0 without one). A position past the store's
    /// head is [`ProjectionError::AheadOfHead`] from [`Runner::catch_up`] and [`Runner::run`];
    /// [`Runner::rebuild`] starts over from 0 whatever it was.
    pub fn new(store: S, mut projection: P) -> Result<Runner<S, P>, ProjectionError> {
        let name = projection.name().to_owned();
        crate::checkpoint::validate_name(&name)?;
        let own = projection
            .position()
            .map_err(|source| read_model(&name, "report its position", source))?;
        let position = match own {
            Some(p) => p,
            None => store.checkpoints().load(&name)?.unwrap_or(0),
        };
        Ok(Runner {
            store,
            projection,
            name,
            position,
            batch: 1000,
            poll: Duration::from_millis(100),
            checkpoint_every: Duration::from_secs(1),
            saved: None,
        })
    }

    /// Events handled between commits (default 1,000; at least 1). A commit also comes
    /// whenever the runner has handled everything visible.
    pub fn batch_size(mut self, n: usize) -> Runner<S, P> {
        self.batch = n.max(1);
        self
    }

    /// How often a live [`Runner::run`] looks at its [`Stop`] flag while no event comes
    /// (default 100 ms).
    pub fn poll(mut self, every: Duration) -> Runner<S, P> {
        self.poll = every;
        self
    }

    /// The least time between two saves of the checkpoint in the store (default 1 s; zero:
    /// every commit). The read model commits every batch whatever this is; the store's
    /// checkpoint follows at most this often, and always when a catch-up, rebuild or run ends
    /// or a projection fails. A read model that keeps its own position is resumed from that;
    /// one that does not repeats at most this much of the log after a crash (at-least-once).
    /// Like Kafka's `auto.commit.interval.ms`: on a busy disk each save is two fsyncs, which
    /// at every batch of a catch-up would cost more than the handling.
    pub fn checkpoint_every(mut self, every: Duration) -> Runner<S, P> {
        self.checkpoint_every = every;
        self
    }

    /// The seq up to which the projection has handled and committed the log.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The projection, mutably (to query a read model the runner holds).
    pub fn projection_mut(&mut self) -> &mut P {
        &mut self.projection
    }

    /// The runner's store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The projection back.
    pub fn into_inner(self) -> P {
        self.projection
    }

    /// Where the projection is, and how far behind the head.
    pub fn status(&self) -> Result<ProjectionStatus, ProjectionError> {
        let head = self.store.head_seq()?;
        // The position this runner committed; the error and time as saved in the store.
        let saved = self.store.checkpoints().get(&self.name)?;
        let (error, time) = saved.map_or((None, 0), |c| (c.error, c.time));
        let checkpoint = Checkpoint {
            name: self.name.clone(),
            position: self.position,
            error,
            time,
        };
        Ok(ProjectionStatus::of(checkpoint, head))
    }

    /// Handles every event up to the head as it is now, committing every batch; returns the
    /// position reached.
    pub fn catch_up(&mut self) -> Result<u64, ProjectionError> {
        self.catch_up_with(|_| {})
    }

    /// [`Runner::catch_up`], calling `progress` after each batch.
    pub fn catch_up_with(
        &mut self,
        mut progress: impl FnMut(Progress),
    ) -> Result<u64, ProjectionError> {
        let head = self.store.head_seq()?;
        self.check_behind(head)?;
        if self.position == head {
            return Ok(self.position);
        }
        // Ends once it has passed the head: every event up to it handled or not selected.
        let mut sub = self.subscribe(self.query().to_seq(head))?;
        let mut handled = 0;
        while !sub.is_finished() {
            handled += self.batch(&mut sub, None)?;
            progress(Progress {
                position: self.position,
                head,
                handled,
            });
        }
        self.save_checkpoint()?;
        Ok(self.position)
    }

    /// Catches up, then follows the log live until `stop` is raised (or the store closes),
    /// committing each batch and whenever it has handled everything visible.
    pub fn run(&mut self, stop: &Stop) -> Result<(), ProjectionError> {
        self.check_behind(self.store.head_seq()?)?;
        let mut sub = self.subscribe(self.query())?;
        while !stop.is_stopped() && !sub.is_finished() {
            self.batch(&mut sub, Some(stop))?;
        }
        self.save_checkpoint()
    }

    /// Empties the read model, sets the checkpoint to the log's start and replays the log
    /// from there, calling `progress` after each batch; returns the position reached. Events
    /// retention removed are not there to replay: the read model is rebuilt from what the log
    /// holds (before, a rebuild after retention failed with a gap on every call, its read
    /// model left empty).
    ///
    /// The checkpoint moves back before the read model is emptied: a crash between the two
    /// leaves a full read model that the next run replays on top of (events handled again,
    /// as after any crash: at-least-once), never an empty one the checkpoint says is built.
    pub fn rebuild(&mut self, progress: impl FnMut(Progress)) -> Result<u64, ProjectionError> {
        let start = self.store.log_start()?.saturating_sub(1);
        self.store.checkpoints().put(&self.name, start, None)?;
        self.position = start;
        self.saved = Some((Instant::now(), start));
        self.projection
            .reset()
            .map_err(|source| read_model(&self.name, "reset", source))?;
        self.catch_up_with(progress)
    }

    /// The projection's query as the runner reads it: its `to_seq` and limit dropped (a
    /// runner follows the whole log; `catch_up` sets its own end).
    fn query(&self) -> Query {
        let mut q = self.projection.query();
        q.to_seq = None;
        q.limit = None;
        q
    }

    /// A position past the head is a read model of another log: refused, never followed (a
    /// subscription would wait for the log to reach it, silently).
    fn check_behind(&self, head: u64) -> Result<(), ProjectionError> {
        if self.position > head {
            return Err(ProjectionError::AheadOfHead {
                name: self.name.clone(),
                position: self.position,
                head,
            });
        }
        Ok(())
    }

    fn subscribe(&self, query: Query) -> Result<Subscription, ProjectionError> {
        Ok(self.store.subscribe(&query, self.position)?)
    }

    /// Handles up to a batch of events, then commits; returns how many it handled. Waits up
    /// to the poll interval for the first event, none for the others: a batch ends when it is
    /// full, when no event is ready, or when `stop` is raised.
    fn batch(
        &mut self,
        sub: &mut Subscription,
        stop: Option<&Stop>,
    ) -> Result<u64, ProjectionError> {
        // Events are dropped as soon as they are handled: a failure reads the batch's handled
        // part again from the store rather than keeping it (holding a batch of events costs
        // more than the handling, in memory and in cache misses).
        let mut handled = 0;
        loop {
            let timeout = if handled == 0 {
                self.poll
            } else {
                Duration::ZERO
            };
            let event = match sub.next_timeout(timeout) {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(e) => {
                    // The batch's handled part is in the read model, uncommitted: undone, so
                    // that a run after this error handles it once, not again on top of itself;
                    // or, kept by a read model that cannot undo, committed as it is.
                    if handled > 0 && !self.undo() {
                        let position = Subscription::position(sub);
                        if position > self.position
                            && let Err(c) = self.commit(position)
                        {
                            log::warn!("{}: after a failed read: {c}", self.name);
                        }
                    }
                    return Err(e.into());
                }
            };
            if let Err(source) = self.projection.handle(&event) {
                let failed = ProjectionError::Handler {
                    name: self.name.clone(),
                    seq: event.seq,
                    event_type: event.event_type.clone(),
                    source,
                };
                if let Err(e) = self.stop_at(event.seq, &failed.to_string()) {
                    // Failing again on the way out: the first failure is the cause.
                    log::warn!("{}: after failing at seq {}: {e}", self.name, event.seq);
                }
                return Err(failed);
            }
            handled += 1;
            if handled >= self.batch || stop.is_some_and(Stop::is_stopped) {
                break;
            }
        }
        let position = Subscription::position(sub);
        if position > self.position {
            self.commit(position)?;
        }
        Ok(handled as u64)
    }

    /// Rolls back the read model's open batch after a failed read or commit; whether it was
    /// undone. A failure to is logged (the error that ended the batch is the one reported) and
    /// counts as undone: the batch is not committed on top of a half-undone read model.
    fn undo(&mut self) -> bool {
        match self.projection.rollback() {
            Ok(undone) => undone,
            Err(e) => {
                log::warn!("{}: rolling back after a failed batch: {e}", self.name);
                true
            }
        }
    }

    /// The projection failed on the event at `seq`: undo the batch, handle the events before
    /// it again (read anew; kept as they are by a read model that cannot undo) and commit
    /// them, and save the checkpoint with the error.
    fn stop_at(&mut self, seq: u64, error: &str) -> Result<(), ProjectionError> {
        let undone = self
            .projection
            .rollback()
            .map_err(|source| read_model(&self.name, "roll back", source))?;
        let before = seq - 1;
        if before > self.position && !undone {
            self.commit(before)?;
        } else if before > self.position {
            // The projection's own start (`from_seq`, a cursor) still holds: the events
            // before it were never delivered, and are not handled now.
            let mut again = self.query();
            let from = (self.position + 1)
                .max(again.from_seq.unwrap_or(0))
                .max(again.after.take().map_or(0, |c| c.seq + 1));
            again = again.from_seq(from).to_seq(before);
            let r = (|| {
                for e in self.store.query(&again)? {
                    let e = e?;
                    self.projection
                        .handle(&e)
                        .map_err(|source| ProjectionError::Handler {
                            name: self.name.clone(),
                            seq: e.seq,
                            event_type: e.event_type.clone(),
                            source,
                        })?;
                }
                Ok::<(), ProjectionError>(())
            })();
            if let Err(e) = r {
                // As in a batch: what was handled again is undone with the error.
                self.undo();
                return Err(e);
            }
            self.commit(before)?;
        }
        self.store
            .checkpoints()
            .put(&self.name, self.position, Some(error))?;
        self.saved = Some((Instant::now(), self.position));
        Ok(())
    }

    /// Commits the read model at `position`, then the store's checkpoint if it is due.
    fn commit(&mut self, position: u64) -> Result<(), ProjectionError> {
        if let Err(source) = self.projection.commit(position) {
            // The batch is still open in the read model: undone, so that the next run handles
            // it once, not again on top of itself.
            self.undo();
            return Err(read_model(&self.name, "commit", source));
        }
        self.position = position;
        let due = self
            .saved
            .is_none_or(|(at, _)| at.elapsed() >= self.checkpoint_every);
        if due {
            self.save_checkpoint()?;
        }
        Ok(())
    }

    /// Saves the store's checkpoint at the committed position, if it is not there yet.
    fn save_checkpoint(&mut self) -> Result<(), ProjectionError> {
        if self.saved.is_some_and(|(_, p)| p == self.position) {
            return Ok(());
        }
        self.store
            .checkpoints()
            .put(&self.name, self.position, None)?;
        self.saved = Some((Instant::now(), self.position));
        Ok(())
    }
}

fn read_model(name: &str, action: &'static str, source: BoxError) -> ProjectionError {
    ProjectionError::ReadModel {
        name: name.to_owned(),
        action,
        source,
    }
}
