//! Aggregates: a state rebuilt from one stream's events, commands decided against it, and the
//! [`Repository`] that loads and saves them through any [`EventStore`].
//!
//! An [`Aggregate`] names its events ([`DomainEvent`]), applies each to its state and decides
//! new ones from a command. The repository keeps aggregate `id` in stream `{CATEGORY}-{id}`,
//! loads it from its newest usable snapshot and the events after it, saves new events with the
//! version it loaded as the expectation (so a concurrent change is a conflict, never a lost
//! update), snapshots every N events when asked, upcasts old event shapes, and retries a
//! command on a conflict within a bound ([`Repository::execute`]).
//!
//! This module owns that mapping and those rules; it reaches the log only through
//! [`EventStore`], and never writes an event the aggregate cannot apply.
//!
//! ```
//! use eventfile::aggregate::{Aggregate, Repository, VariantEvents};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default, Clone, Serialize, Deserialize)]
//! struct Account { open: bool, balance: i64 }
//!
//! #[derive(Serialize, Deserialize)]
//! enum AccountEvent { Opened, Deposited { amount: i64 } }
//! impl VariantEvents for AccountEvent {}
//!
//! enum Command { Open, Deposit(i64) }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("{0}")]
//! struct Refused(&'static str);
//!
//! impl Aggregate for Account {
//!     const CATEGORY: &'static str = "account";
//!     type Event = AccountEvent;
//!     type Command = Command;
//!     type Error = Refused;
//!     fn apply(&mut self, event: &AccountEvent) -> Result<(), Refused> {
//!         match event {
//!             AccountEvent::Opened => self.open = true,
//!             AccountEvent::Deposited { amount } => self.balance += amount,
//!         }
//!         Ok(())
//!     }
//!     fn decide(&self, command: &Command) -> Result<Vec<AccountEvent>, Refused> {
//!         match command {
//!             Command::Open if self.open => Err(Refused("already open")),
//!             Command::Open => Ok(vec![AccountEvent::Opened]),
//!             Command::Deposit(_) if !self.open => Err(Refused("not open")),
//!             Command::Deposit(n) => Ok(vec![AccountEvent::Deposited { amount: *n }]),
//!         }
//!     }
//! }
//!
//! let store = eventfile::MemoryStore::new();
//! let accounts = Repository::<Account, _>::new(&store).snapshot_every(100);
//! accounts.execute("ann", &Command::Open, 3)?;
//! let ann = accounts.execute("ann", &Command::Deposit(25), 3)?;
//! assert_eq!((ann.state.balance, ann.version), (25, 2));
//! // The events are in stream `account-ann`, their types the variants' names.
//! let loaded = accounts.load("ann")?;
//! assert_eq!(loaded.version, 2);
//! # Ok::<(), eventfile::aggregate::AggregateError<Refused>>(())
//! ```

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::api::EventStore;
use crate::error::Error;
use crate::event::{AppendResult, ExpectedVersion, NewEvent, RecordedEvent};
use crate::query::Read;

/// The metadata key holding an event's schema version, when it is above 1.
pub const SCHEMA_VERSION_KEY: &str = "schema_version";

/// A consistency boundary: the state one stream's events build, and the decisions made on it.
pub trait Aggregate: Default + Clone + Serialize + DeserializeOwned {
    /// The stream category: aggregate `id` is kept in stream `{CATEGORY}-{id}`.
    const CATEGORY: &'static str;
    /// The layout version of the state as snapshots hold it: bump it when the state's shape
    /// changes, and snapshots saved under another version are ignored (the aggregate is
    /// replayed from its events instead). Default 1.
    const SNAPSHOT_VERSION: u32 = 1;
    /// The events of this aggregate.
    type Event: DomainEvent;
    /// What the aggregate is asked to do.
    type Command;
    /// Why a command is refused, or an event cannot be applied.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Applies one event to the state. An error means the history holds an event this state
    /// cannot take: loading reports it ([`AggregateError::Apply`]) rather than build a wrong
    /// state, and saving refuses to write such an event.
    fn apply(&mut self, event: &Self::Event) -> Result<(), Self::Error>;

    /// Decides the events a command causes, from the current state (none: nothing to do), or
    /// refuses it.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
}

/// An aggregate's events as the store keeps them: an event type and JSON data.
///
/// Implemented for every [`VariantEvents`] enum (the variant's name is the event type). Other
/// types implement it directly, e.g. with [`crate::EventType`]:
///
/// ```
/// use eventfile::{EventType, NewEvent, aggregate::DomainEvent};
/// use serde_json::value::RawValue;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Deposited { amount: i64 }
/// impl EventType for Deposited {
///     fn event_type(&self) -> &str { "Deposited" }
/// }
/// impl DomainEvent for Deposited {
///     fn encode(&self) -> eventfile::Result<NewEvent> { NewEvent::typed(self) }
///     fn decode(_event_type: &str, data: &RawValue) -> eventfile::Result<Self> {
///         Ok(serde_json::from_str(data.get())?)
///     }
/// }
/// ```
pub trait DomainEvent: Sized {
    /// The event to append for this value: its type and data (the repository adds the schema
    /// version to its metadata when it is above 1).
    fn encode(&self) -> crate::Result<NewEvent>;

    /// The value a stored event of `event_type` carrying `data` (already upcast to the current
    /// schema) stands for.
    fn decode(event_type: &str, data: &RawValue) -> crate::Result<Self>;

    /// The current schema version of events of `event_type` (default 1): what
    /// [`Upcaster`]s bring older events up to.
    fn schema_version(event_type: &str) -> u32 {
        let _ = event_type;
        1
    }
}

/// Marks a serde enum whose variants are its event types: the variant's name is the event
/// type and its content the data (`null` for a unit variant). Use serde's default (externally
/// tagged) representation; `#[serde(rename = "...")]` renames a type.
pub trait VariantEvents: Serialize + DeserializeOwned {}

impl<T: VariantEvents> DomainEvent for T {
    fn encode(&self) -> crate::Result<NewEvent> {
        let text = serde_json::to_string(self)?;
        if let Ok(name) = serde_json::from_str::<String>(&text) {
            return NewEvent::from_json_str(name, "null");
        }
        // The variant's content as serde wrote it: its fields keep their order.
        let mut one: std::collections::BTreeMap<String, Box<RawValue>> =
            serde_json::from_str(&text).map_err(|_| {
                not_variant(format!(
                    "{text:.80} is not an enum variant as serde writes it"
                ))
            })?;
        match (one.len(), one.pop_first()) {
            (1, Some((name, data))) => NewEvent::from_json_str(name, data.get()),
            _ => Err(not_variant(format!(
                "{text:.80} is not one enum variant: use serde's default enum representation"
            ))),
        }
    }

    fn decode(event_type: &str, data: &RawValue) -> crate::Result<Self> {
        if data.get() == "null"
            && let Ok(v) = serde_json::from_value(Value::String(event_type.to_owned()))
        {
            return Ok(v);
        }
        let text = format!("{{{}:{}}}", serde_json::to_string(event_type)?, data.get());
        Ok(serde_json::from_str(&text)?)
    }
}

fn not_variant(reason: String) -> Error {
    Error::invalid("aggregate event", reason)
}

/// Brings events of one type at one schema version up to the next: the data of an old event
/// is rewritten as it is read (the stored event is never changed).
///
/// ```
/// use eventfile::aggregate::Upcaster;
/// use serde_json::json;
/// // Version 1 of ItemAdded had `qty`; version 2 calls it `quantity`.
/// let up = Upcaster::new("ItemAdded", 1, |mut data| {
///     let qty = data["qty"].take();
///     data["quantity"] = qty;
///     Ok(data)
/// });
/// # let _ = up;
/// ```
pub struct Upcaster {
    event_type: String,
    from: u32,
    #[allow(clippy::type_complexity)]
    rewrite: Box<dyn Fn(Value) -> Result<Value, String> + Send + Sync>,
}

impl std::fmt::Debug for Upcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upcaster")
            .field("event_type", &self.event_type)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Upcaster {
    /// Rewrites the data of `event_type` events at schema version `from` into version
    /// `from + 1`. An `Err` fails the load with [`AggregateError::Decode`].
    pub fn new(
        event_type: impl Into<String>,
        from: u32,
        rewrite: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Upcaster {
        Upcaster {
            event_type: event_type.into(),
            from,
            rewrite: Box::new(rewrite),
        }
    }
}

/// An aggregate as loaded: its state and the stream version it reflects.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    /// The aggregate's id.
    pub id: String,
    /// Its state.
    pub state: A,
    /// The stream's version the state reflects: what the next save expects (0: a new
    /// aggregate).
    pub version: u64,
    /// The version of the snapshot the load started from, if it used one.
    pub snapshot: Option<u64>,
    /// Events applied by the load (after the snapshot).
    pub replayed: u64,
}

/// Why an aggregate could not be loaded, decided or saved.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError<E: std::error::Error + 'static> {
    /// The aggregate refused the command.
    #[error("command refused: {0}")]
    Rejected(#[source] E),
    /// An event of the history (or a new one) cannot be applied to the state.
    #[error("{stream} v{version} ({event_type}) cannot be applied: {source}")]
    Apply {
        /// The aggregate's stream.
        stream: String,
        /// The event's version in it.
        version: u64,
        /// Its type.
        event_type: String,
        /// What the aggregate said.
        #[source]
        source: E,
    },
    /// A stored event does not decode into the aggregate's events (even after upcasting).
    #[error("{stream} v{version} ({event_type}) does not decode: {reason}")]
    Decode {
        /// The aggregate's stream.
        stream: String,
        /// The event's version in it.
        version: u64,
        /// Its type.
        event_type: String,
        /// Why.
        reason: String,
    },
    /// Every attempt of a command met a concurrent change of the aggregate.
    #[error("{stream}: still conflicting after {attempts} attempts: {source}")]
    Conflict {
        /// The aggregate's stream.
        stream: String,
        /// Attempts made.
        attempts: u32,
        /// The last conflict.
        #[source]
        source: Error,
    },
    /// The stream's events from the version a load needed are gone (truncated, or removed by
    /// retention, with no snapshot at or after the truncation): the state cannot be rebuilt,
    /// and is not rebuilt from part of its history.
    #[error("{stream}: version {expected} is needed to load it, and the first left is {found}")]
    Missing {
        /// The aggregate's stream.
        stream: String,
        /// The version the load needed next.
        expected: u64,
        /// The first version the stream still holds from there.
        found: u64,
    },
    /// The store failed (a conflict of a single save is [`Error::WrongExpectedVersion`]).
    #[error(transparent)]
    Store(#[from] Error),
}

impl<E: std::error::Error + 'static> AggregateError<E> {
    /// Whether this is a version conflict: a save's, or a command's past its retries.
    pub fn is_conflict(&self) -> bool {
        match self {
            AggregateError::Conflict { .. } => true,
            AggregateError::Store(e) => e.is_conflict(),
            _ => false,
        }
    }
}

type AResult<T, A> = Result<T, AggregateError<<A as Aggregate>::Error>>;

/// Loads and saves aggregates of type `A` in any [`EventStore`] (`&Store`, `Arc<dyn
/// EventStore>`, a `MemoryStore`, ...). See the [module](self) for an example.
pub struct Repository<A: Aggregate, S: EventStore> {
    store: S,
    snapshot_every: u64,
    upcasters: Vec<Upcaster>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate, S: EventStore> std::fmt::Debug for Repository<A, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("category", &A::CATEGORY)
            .field("snapshot_every", &self.snapshot_every)
            .field("upcasters", &self.upcasters)
            .finish_non_exhaustive()
    }
}

/// The snapshot's state as saved: the layout version, then the aggregate's state.
#[derive(Serialize, serde::Deserialize)]
struct Saved<T> {
    layout: u32,
    state: T,
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// A repository of `A` in `store`: no snapshots, no upcasters.
    pub fn new(store: S) -> Repository<A, S> {
        Repository {
            store,
            snapshot_every: 0,
            upcasters: Vec::new(),
            _aggregate: PhantomData,
        }
    }

    /// Saves a snapshot whenever a save takes the stream past a multiple of `n` events (0, the
    /// default: never). A load starts from the newest usable snapshot whatever this is.
    pub fn snapshot_every(mut self, n: u64) -> Repository<A, S> {
        self.snapshot_every = n;
        self
    }

    /// Adds an upcaster, applied to old events as they are loaded.
    pub fn with_upcaster(mut self, upcaster: Upcaster) -> Repository<A, S> {
        self.upcasters.push(upcaster);
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The stream that keeps aggregate `id`: `{CATEGORY}-{id}`.
    pub fn stream(id: &str) -> String {
        format!("{}-{id}", A::CATEGORY)
    }

    /// Loads aggregate `id`: the newest usable snapshot, then the events after it (all of them
    /// without one). A new aggregate loads as `A::default()` at version 0. A snapshot that no
    /// longer decodes, or was saved under another [`Aggregate::SNAPSHOT_VERSION`], is skipped
    /// with a warning (the `log` crate) and the aggregate replayed from its first event.
    pub fn load(&self, id: &str) -> AResult<Loaded<A>, A> {
        let stream = Self::stream(id);
        // Read first: if the stream's events are all deleted, the state is the default but the
        // next save must still expect the stream's version.
        let before = self.store.stream_version(&stream)?;
        let (mut state, from) = match self.snapshot(&stream)? {
            Some((state, version)) => (state, Some(version)),
            None => (A::default(), None),
        };
        let mut version = from.unwrap_or(0);
        let mut replayed = 0;
        for event in self
            .store
            .read_stream(&stream, Read::forward().from(version + 1))?
        {
            let event = event?;
            // A stream's first events may be gone: a new life after a soft deletion starts from
            // the default state, but a truncation's (or retention's) leaves no way to the state.
            if event.version != version + 1
                && !(replayed == 0 && from.is_none() && self.new_life(&stream, event.version)?)
            {
                return Err(AggregateError::Missing {
                    stream,
                    expected: version + 1,
                    found: event.version,
                });
            }
            let decoded = self.decode(&event)?;
            state
                .apply(&decoded)
                .map_err(|source| AggregateError::Apply {
                    stream: stream.clone(),
                    version: event.version,
                    event_type: event.event_type.clone(),
                    source,
                })?;
            version = event.version;
            replayed += 1;
        }
        Ok(Loaded {
            id: id.to_owned(),
            state,
            version: version.max(before),
            snapshot: from,
            replayed,
        })
    }

    /// Whether `stream`'s events below `first` were deleted by a soft deletion of the whole
    /// stream (its newest `$lifecycle` event), so that `first` begins a new life, not a truncated
    /// one. Read only when a load finds its first events gone.
    fn new_life(&self, stream: &str, first: u64) -> Result<bool, Error> {
        for e in self
            .store
            .read_stream(crate::deletion::LIFECYCLE_STREAM, Read::backward())?
        {
            let e = e?;
            let Ok(d) = serde_json::from_str::<crate::deletion::LifecycleData>(e.data.get()) else {
                continue;
            };
            if d.stream == stream {
                return Ok(e.event_type == crate::deletion::DELETED && d.before == first);
            }
        }
        Ok(false)
    }

    /// Whether aggregate `id` has a live event (a deleted or tombstoned one has none).
    pub fn exists(&self, id: &str) -> AResult<bool, A> {
        match self
            .store
            .read_stream(&Self::stream(id), Read::backward().limit(1))
        {
            Ok(mut events) => Ok(events.next().transpose()?.is_some()),
            Err(e) if e.kind() == crate::ErrorKind::StreamDeleted => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends `events` to the aggregate, expecting the version it was loaded at, and applies
    /// them to `aggregate` (its version moves to the last one written). The events are applied
    /// to a copy of the state first: one that cannot be applied is
    /// [`AggregateError::Apply`] and nothing is written. A concurrent change of the aggregate
    /// is a conflict ([`AggregateError::is_conflict`]) and nothing is written.
    pub fn save(
        &self,
        aggregate: &mut Loaded<A>,
        events: Vec<A::Event>,
    ) -> AResult<Option<AppendResult>, A> {
        self.save_with(aggregate, events, |e| e)
    }

    /// [`Repository::save`], with `each` adding to every event before it is appended
    /// (metadata such as a correlation id, tags, an id).
    pub fn save_with(
        &self,
        aggregate: &mut Loaded<A>,
        events: Vec<A::Event>,
        mut each: impl FnMut(NewEvent) -> NewEvent,
    ) -> AResult<Option<AppendResult>, A> {
        if events.is_empty() {
            return Ok(None);
        }
        let stream = Self::stream(&aggregate.id);
        let mut state = aggregate.state.clone();
        let mut new = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let encoded = event.encode()?;
            let version = aggregate.version + i as u64 + 1;
            // What is written is what a load reads: the event as it decodes from its encoding
            // (serde_json writes a NaN or an infinite `f64` as `null`, which would then fail
            // every load, and the aggregate could never be loaded or changed again). Applied as
            // decoded, so the state kept is the state a load gives.
            let decoded = A::Event::decode(encoded.event_type(), encoded.data()).map_err(|e| {
                AggregateError::Decode {
                    stream: stream.clone(),
                    version,
                    event_type: encoded.event_type().to_owned(),
                    reason: format!("the event does not read back as it is written: {e}"),
                }
            })?;
            let schema = A::Event::schema_version(encoded.event_type());
            state
                .apply(&decoded)
                .map_err(|source| AggregateError::Apply {
                    stream: stream.clone(),
                    version,
                    event_type: encoded.event_type().to_owned(),
                    source,
                })?;
            // The caller's additions first, then the schema version, which is the library's:
            // an `each` that sets the whole metadata map (`with_meta`) must not drop it, or
            // the event would load as schema 1 and be upcast though it is current.
            let encoded = each(encoded);
            new.push(if schema > 1 {
                encoded.with_meta_entry(SCHEMA_VERSION_KEY, schema)
            } else {
                encoded
            });
        }
        let expected = ExpectedVersion::Exact(aggregate.version);
        let result = self.store.append(&stream, expected, new)?;
        let old = aggregate.version;
        aggregate.state = state;
        aggregate.version = result.version;
        if self.snapshot_every > 0
            && old / self.snapshot_every < result.version / self.snapshot_every
        {
            // The events are written: a snapshot that fails only costs the next load time.
            if let Err(e) = self.save_snapshot(aggregate) {
                log::warn!("{stream}: snapshot at v{} not saved: {e}", result.version);
            }
        }
        Ok(Some(result))
    }

    /// Saves a snapshot of `aggregate` as loaded (or saved).
    pub fn save_snapshot(&self, aggregate: &Loaded<A>) -> AResult<(), A> {
        let stream = Self::stream(&aggregate.id);
        let saved = serde_json::value::to_raw_value(&Saved {
            layout: A::SNAPSHOT_VERSION,
            state: &aggregate.state,
        })
        .map_err(Error::from)?;
        self.store
            .save_snapshot(&stream, aggregate.version, &saved)?;
        Ok(())
    }

    /// Runs `command` on aggregate `id`: loads it, decides, saves. On a conflict (someone else
    /// changed the aggregate meanwhile) it loads and decides again, up to `attempts` times in
    /// all (at least one), then fails with [`AggregateError::Conflict`]. Returns the aggregate
    /// as saved (as loaded when the command caused no event).
    pub fn execute(&self, id: &str, command: &A::Command, attempts: u32) -> AResult<Loaded<A>, A> {
        let attempts = attempts.max(1);
        let mut tried = 0;
        loop {
            tried += 1;
            let mut aggregate = self.load(id)?;
            let events = aggregate
                .state
                .decide(command)
                .map_err(AggregateError::Rejected)?;
            match self.save(&mut aggregate, events) {
                Ok(_) => return Ok(aggregate),
                Err(AggregateError::Store(e)) if e.is_conflict() => {
                    if tried >= attempts {
                        return Err(AggregateError::Conflict {
                            stream: Self::stream(id),
                            attempts: tried,
                            source: e,
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The newest usable snapshot's state and version, if one decodes.
    fn snapshot(&self, stream: &str) -> AResult<Option<(A, u64)>, A> {
        let Some(snapshot) = self.store.load_snapshot(stream)? else {
            return Ok(None);
        };
        match serde_json::from_str::<Saved<A>>(snapshot.state.get()) {
            Ok(saved) if saved.layout == A::SNAPSHOT_VERSION => {
                Ok(Some((saved.state, snapshot.version)))
            }
            Ok(saved) => {
                log::warn!(
                    "{stream}: snapshot at v{} has layout {}, not {}; replaying the events",
                    snapshot.version,
                    saved.layout,
                    A::SNAPSHOT_VERSION
                );
                Ok(None)
            }
            Err(e) => {
                log::warn!(
                    "{stream}: snapshot at v{} does not decode ({e}); replaying the events",
                    snapshot.version
                );
                Ok(None)
            }
        }
    }

    /// A stored event as the aggregate's event, upcast to its type's current schema.
    fn decode(&self, event: &RecordedEvent) -> AResult<A::Event, A> {
        let failed = |reason: String| AggregateError::Decode {
            stream: event.stream.clone(),
            version: event.version,
            event_type: event.event_type.clone(),
            reason,
        };
        let mut schema = match event.meta.get(SCHEMA_VERSION_KEY) {
            None => 1,
            Some(v) => v
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| failed(format!("{SCHEMA_VERSION_KEY} {v} is not a version")))?,
        };
        let target = A::Event::schema_version(&event.event_type);
        let rewrites =
            |u: &Upcaster| u.event_type == event.event_type && u.from >= schema && u.from < target;
        if !self.upcasters.iter().any(rewrites) {
            // Nothing to rewrite: an old shape the current type still reads decodes as it is.
            return A::Event::decode(&event.event_type, &event.data)
                .map_err(|e| failed(e.to_string()));
        }
        let mut data: Value =
            serde_json::from_str(event.data.get()).map_err(|e| failed(e.to_string()))?;
        while schema < target {
            if let Some(up) = self
                .upcasters
                .iter()
                .find(|u| u.event_type == event.event_type && u.from == schema)
            {
                data = (up.rewrite)(data)
                    .map_err(|e| failed(format!("upcaster from schema {schema}: {e}")))?;
            }
            schema += 1;
        }
        let data = serde_json::value::to_raw_value(&data).map_err(|e| failed(e.to_string()))?;
        A::Event::decode(&event.event_type, &data).map_err(|e| failed(e.to_string()))
    }
}
