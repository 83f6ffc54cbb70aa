//! The application: commands on orders through a repository (the write side), and the read
//! model kept by the two projections (the read side), over any store.
//!
//! [`Shop`] owns the rules that tie the two sides together: one projector process at a time
//! writes the read model (the others wait for it or refuse), the read model is only ever
//! resumed on the store it was built from, and a rebuild empties it before replaying. It never
//! prints: the command line (`main.rs`, `commands.rs`) does.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eventfile::aggregate::{AggregateError, Loaded, Repository};
use eventfile::projection::{Progress, Projection, ProjectionError, Runner, Stop};
use eventfile::{EventIter, EventStore, Query, Read};
use serde::Serialize;

use crate::order::{Order, OrderCommand, Refusal};
use crate::projections::{Details, OrderDetails, OrderSummary, SqliteProjection, Summary, Tables};
use crate::read_model::{ProjectorLock, ReadModel, ReadModelError};

/// How many times a command is decided again after a concurrent change of its order.
pub const ATTEMPTS: u32 = 5;

/// How long `orders` waits for a running projector to reach the head.
const WAIT_FOR_PROJECTOR: Duration = Duration::from_secs(10);

/// The projections' names, in the order they run.
pub const PROJECTIONS: [&str; 2] = [Summary::NAME, Details::NAME];

/// Why a shop operation failed. Every one is exit status 1 on the command line.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    /// The order refused the command.
    #[error("order {order}: {source}")]
    Refused {
        /// The order.
        order: String,
        /// Why.
        #[source]
        source: Refusal,
    },
    /// No such order.
    #[error("no order {0}")]
    NotFound(String),
    /// Loading or saving the order failed (a history it cannot apply, a conflict past the
    /// retries, the store).
    #[error("order {order}: {source}")]
    Aggregate {
        /// The order.
        order: String,
        /// Why.
        #[source]
        source: AggregateError<Refusal>,
    },
    /// A projection stopped.
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// The read-model file failed.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// The read model was built from another store.
    #[error(
        "read model {path} was built from another store (its first event {built_from}, this \
         store's {current}): run `shop rebuild`, or name another file with --read-db"
    )]
    Foreign {
        /// The read-model file.
        path: PathBuf,
        /// The first event of the store it was built from.
        built_from: String,
        /// This store's first event (`none`: empty).
        current: String,
    },
    /// Another process projects into the read model.
    #[error("{0}")]
    Busy(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] eventfile::Error),
}

impl ShopError {
    fn aggregate(order: &str, e: AggregateError<Refusal>) -> ShopError {
        match e {
            AggregateError::Rejected(source) => ShopError::Refused {
                order: order.to_owned(),
                source,
            },
            source => ShopError::Aggregate {
                order: order.to_owned(),
                source,
            },
        }
    }
}

/// Where a projection is: what `shop status` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadModelStatus {
    /// Its name.
    pub name: String,
    /// The seq its rows reflect (its checkpoint row in the read model).
    pub position: u64,
    /// The store's head.
    pub head: u64,
    /// `head - position`.
    pub lag: u64,
    /// The checkpoint the runner keeps in the store (`eventfile projections` lists it).
    pub store_checkpoint: Option<u64>,
    /// The error the projection last stopped on, if any.
    pub error: Option<String>,
}

/// The shop over one store and one read-model file.
pub struct Shop<S: EventStore> {
    store: S,
    read_db: PathBuf,
    snapshot_every: u64,
}

impl<S: EventStore> std::fmt::Debug for Shop<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shop")
            .field("read_db", &self.read_db)
            .field("snapshot_every", &self.snapshot_every)
            .finish_non_exhaustive()
    }
}

impl<S: EventStore> Shop<S> {
    /// A shop keeping its orders in `store` and its read model in `read_db`, saving a snapshot
    /// of an order every `snapshot_every` events (0: never).
    pub fn new(store: S, read_db: impl Into<PathBuf>, snapshot_every: u64) -> Shop<S> {
        Shop {
            store,
            read_db: read_db.into(),
            snapshot_every,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The read-model file.
    pub fn read_db(&self) -> &Path {
        &self.read_db
    }

    fn orders(&self) -> Repository<Order, &S> {
        Repository::new(&self.store).snapshot_every(self.snapshot_every)
    }

    /// Runs `command` on order `id` (retrying on a concurrent change, [`ATTEMPTS`] in all);
    /// returns the order as saved.
    pub fn execute(&self, id: &str, command: &OrderCommand) -> Result<Loaded<Order>, ShopError> {
        self.orders()
            .execute(id, command, ATTEMPTS)
            .map_err(|e| ShopError::aggregate(id, e))
    }

    /// Order `id` as the write side loads it (from its newest snapshot and the events after).
    pub fn show(&self, id: &str) -> Result<Loaded<Order>, ShopError> {
        let order = self
            .orders()
            .load(id)
            .map_err(|e| ShopError::aggregate(id, e))?;
        if order.version == 0 {
            return Err(ShopError::NotFound(id.to_owned()));
        }
        Ok(order)
    }

    /// The raw events: every order's, or one order's, oldest first.
    pub fn events(&self, order: Option<&str>) -> Result<EventIter, ShopError> {
        Ok(match order {
            Some(id) => self
                .store
                .read_stream(&Repository::<Order, &S>::stream(id), Read::forward())?,
            None => self.store.query(&Query::new().prefix("order-"))?,
        })
    }

    /// The read model, open for queries.
    pub fn read_model(&self) -> Result<ReadModel, ShopError> {
        Ok(ReadModel::open(&self.read_db)?)
    }

    /// Brings both projections up to the store's head. If a projector (`shop project
    /// --follow`) holds the read model, waits for it to get there instead (up to 10 s), and
    /// returns `false` if it did not.
    pub fn catch_up(&self) -> Result<bool, ShopError> {
        let Some(_lock) = ProjectorLock::try_take(&self.read_db)? else {
            return self.wait_for_projector();
        };
        self.check_origin()?;
        self.each_projection(false, |_, runner| runner.catch_up().map(drop))?;
        Ok(true)
    }

    /// Follows the log live, both projections in their own thread, until `stop` is raised or
    /// one of them fails; each commits batches of at most `batch` events.
    pub fn follow(&self, stop: &Stop, batch: usize) -> Result<(), ShopError> {
        let Some(_lock) = ProjectorLock::try_take(&self.read_db)? else {
            return Err(self.busy("follow the log"));
        };
        self.check_origin()?;
        let summary = OrderSummary::open(&self.read_db)?;
        let details = OrderDetails::open(&self.read_db)?;
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| self.run_live(summary, stop, batch));
            let b = s.spawn(|| self.run_live(details, stop, batch));
            (join(a), join(b))
        });
        a.and(b)
    }

    fn run_live<P: Projection>(&self, p: P, stop: &Stop, batch: usize) -> Result<(), ShopError> {
        let result = Runner::new(&self.store, p).and_then(|runner| {
            runner
                .batch_size(batch)
                .poll(Duration::from_millis(100))
                .run(stop)
        });
        // Whichever way it ended, the other projection stops too.
        stop.stop();
        Ok(result?)
    }

    /// Empties both projections and replays the log into them, calling `progress` with each
    /// projection's name after every batch.
    pub fn rebuild(&self, mut progress: impl FnMut(&str, Progress)) -> Result<(), ShopError> {
        let Some(_lock) = ProjectorLock::try_take(&self.read_db)? else {
            return Err(self.busy("rebuild"));
        };
        let rm = self.read_model()?;
        rm.set_origin(self.first_event()?.as_deref())?;
        self.each_projection(true, |name, runner| {
            runner.rebuild(&mut |p| progress(name, p)).map(drop)
        })
    }

    /// Each projection's position, lag and last error.
    pub fn status(&self) -> Result<Vec<ReadModelStatus>, ShopError> {
        let rm = self.read_model()?;
        let head = self.store.head_seq()?;
        let mut out = Vec::new();
        for name in PROJECTIONS {
            let position = rm.position(name)?;
            let saved = self.store.checkpoints().get(name)?;
            out.push(ReadModelStatus {
                name: name.to_owned(),
                position,
                head,
                lag: head.saturating_sub(position),
                store_checkpoint: saved.as_ref().map(|c| c.position),
                error: saved.and_then(|c| c.error),
            });
        }
        Ok(out)
    }

    /// Runs `f` on a runner of each projection, emptying the projection first if `reset`:
    /// a runner refuses a read model ahead of the store's head, which a rebuild must accept.
    fn each_projection(
        &self,
        reset: bool,
        mut f: impl FnMut(&str, &mut dyn RunnerOps) -> Result<(), ProjectionError>,
    ) -> Result<(), ShopError> {
        self.one_projection::<Summary>(reset, &mut f)?;
        self.one_projection::<Details>(reset, &mut f)
    }

    fn one_projection<T: Tables>(
        &self,
        reset: bool,
        f: &mut dyn FnMut(&str, &mut dyn RunnerOps) -> Result<(), ProjectionError>,
    ) -> Result<(), ShopError> {
        let mut projection = SqliteProjection::<T>::open(&self.read_db)?;
        if reset {
            projection
                .reset()
                .map_err(|source| ProjectionError::ReadModel {
                    name: T::NAME.to_owned(),
                    action: "reset",
                    source,
                })?;
        }
        let mut runner = Runner::new(&self.store, projection)?;
        Ok(f(T::NAME, &mut runner)?)
    }

    /// The id of the store's first event (`None`: the store is empty).
    fn first_event(&self) -> Result<Option<String>, ShopError> {
        let first = self.store.read_all(Read::forward().limit(1))?.next();
        Ok(first.transpose()?.map(|e| e.id))
    }

    /// Refuses a read model built from another store; records this store in a new one.
    fn check_origin(&self) -> Result<(), ShopError> {
        let rm = self.read_model()?;
        let first = self.first_event()?;
        match rm.origin()? {
            None if first.is_some() => rm.set_origin(first.as_deref())?,
            None => {}
            Some(built_from) if Some(&built_from) != first.as_ref() => {
                return Err(ShopError::Foreign {
                    path: self.read_db.clone(),
                    built_from,
                    current: first.unwrap_or_else(|| "none".into()),
                });
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Waits for the projector holding the read model to reach the head as it is now.
    fn wait_for_projector(&self) -> Result<bool, ShopError> {
        let head = self.store.head_seq()?;
        let rm = self.read_model()?;
        let deadline = Instant::now() + WAIT_FOR_PROJECTOR;
        loop {
            let mut behind = false;
            for name in PROJECTIONS {
                behind |= rm.position(name)? < head;
            }
            if !behind {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn busy(&self, what: &str) -> ShopError {
        ShopError::Busy(format!(
            "cannot {what}: another process projects into {} (`shop project --follow`?); \
             stop it first",
            self.read_db.display()
        ))
    }
}

/// What [`Shop::each_projection`] asks of a runner, whichever projection it runs.
trait RunnerOps {
    fn catch_up(&mut self) -> Result<u64, ProjectionError>;
    fn rebuild(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<u64, ProjectionError>;
}

impl<S: EventStore, P: Projection> RunnerOps for Runner<S, P> {
    fn catch_up(&mut self) -> Result<u64, ProjectionError> {
        Runner::catch_up(self)
    }

    fn rebuild(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<u64, ProjectionError> {
        Runner::rebuild(self, progress)
    }
}

fn join(handle: std::thread::ScopedJoinHandle<'_, Result<(), ShopError>>) -> Result<(), ShopError> {
    handle
        .join()
        .unwrap_or_else(|_| Err(ShopError::Busy("a projection thread panicked".to_owned())))
}
