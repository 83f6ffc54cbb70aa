//! [`PostgresStore`]: the [`EventStore`] on PostgreSQL. It owns the store's shared parts (the
//! pool, the appends' queue, the head watch, the listener's stop flag), opening, and the
//! reads; appends go to `group.rs` and `append.rs`, deletions and snapshots to `deletion.rs`,
//! the listings to `catalog.rs`, imports to `import.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventfile::backend::{
    Deletion, check_cursor, check_tombstone, prepare, read_all_query, read_view, seq_bounds, view,
};
use eventfile::subscription::{HeadWatch, Subscription};
use eventfile::{
    AppendRequest, DeleteResult, EventIter, EventStore, ExpectedVersion, ImportResult,
    MultiAppendResult, Query, Read, RecordedEvent, Result, Snapshot, StreamInfo, TermCount,
    validate_id, validate_stream,
};
use serde_json::value::RawValue;

use crate::PostgresOptions;
use crate::error::{database, pg};
use crate::group::Appender;
use crate::listen::{self, Interest, PgFeed};
use crate::lookup::head;
use crate::migrate::{self, quoted};
use crate::pool::{Pool, config, connect};
use crate::read::{First, Key, Pages};
use crate::sql::{
    EVENT_COLUMNS, Param, event, filters, live, live_gated, pos_param, stored, typed,
};
use postgres::types::Type;

/// An event store in a PostgreSQL schema, with the file store's semantics: everything the
/// [`EventStore`] trait promises, the conformance suite passed unchanged.
///
/// Clones share one pool of connections, one appending connection (on which every append
/// queued meanwhile is committed in one transaction, by whichever caller comes first) and one
/// listener thread (which learns of other processes' commits through `LISTEN`/`NOTIFY` while
/// the store has subscriptions or waiters, and a poll). Dropping the last clone stops the thread and ends the store's subscriptions. Any
/// number of processes may open the same schema: writers are serialised by a transaction-scoped
/// advisory lock, so seqs are gapless and committed in order.
///
/// ```no_run
/// use eventfile::{EventStore, ExpectedVersion, NewEvent, Read};
/// use eventfile_postgres::PostgresStore;
/// let store = PostgresStore::open("postgres://postgres@localhost/postgres?host=/tmp/pgdev")?;
/// store.append("order-1", ExpectedVersion::NoStream, vec![
///     NewEvent::new("OrderPlaced", serde_json::json!({"total": 12})),
/// ])?;
/// let events: Vec<_> = store.read_stream("order-1", Read::forward())?.collect::<Result<_, _>>()?;
/// assert_eq!(events[0].version, 1);
/// # Ok::<(), eventfile::Error>(())
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
}

/// What the clones share; dropping it closes the store.
pub(crate) struct Shared {
    pub(crate) pool: Pool,
    /// The quoted schema name, as written into statements.
    pub(crate) schema: String,
    /// Names the store in cursors (it makes none: every cursor is refused).
    store_id: String,
    pub(crate) watch: Arc<HeadWatch>,
    appender: Appender,
    stop: Arc<AtomicBool>,
    /// The subscriptions and waiters, for which the listener thread listens.
    interest: Arc<Interest>,
    /// Whether the schema held no deletion at the last query's first page: the next query
    /// then tests liveness by [`live_gated`], else by [`live`] (a performance choice only:
    /// both are exact in the statement's own snapshot).
    no_deletions: AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.watch.close();
        self.stop.store(true, Ordering::Release);
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.shared.schema)
            .field("head_seq", &self.shared.watch.head())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Opens the store in schema `eventfile` of the database `url` names (any form libpq
    /// takes: `postgres://user:pw@host/db`, `?host=/socket/dir`, `host=... user=...`),
    /// applying pending migrations. An unreachable server or a refused login is
    /// [`eventfile::Error::Unreachable`] (never quoting the password); a schema holding
    /// foreign tables or a newer version is [`eventfile::Error::ForeignSchema`].
    pub fn open(url: &str) -> Result<PostgresStore> {
        PostgresStore::open_with(url, PostgresOptions::new())
    }

    /// Opens the store with `options`.
    pub fn open_with(url: &str, options: PostgresOptions) -> Result<PostgresStore> {
        let name = options.checked_schema()?.to_owned();
        let mut config = config(url)?;
        if config.get_application_name().is_none() {
            // Names the store's connections in `pg_stat_activity`.
            config.application_name(&format!("eventfile/{name}"));
        }
        let mut client = connect(&config)?;
        if options.migrate {
            migrate::up_with(&mut client, &options, None)?;
        } else {
            migrate::check_current(&mut client, &name)?;
        }
        let schema = quoted(&name);
        let store_id: String = client
            .query_one(&format!("SELECT store_id FROM {schema}.store"), &[])
            .map_err(pg)?
            .get(0);
        let watch = Arc::new(HeadWatch::new(head(&mut client, &schema)?));
        let listener = connect(&config)?;
        let stop = Arc::new(AtomicBool::new(false));
        let interest = Arc::new(Interest::default());
        let appender = Appender::new(config.clone(), schema.clone(), client, Arc::clone(&watch));
        {
            let (config, schema, watch, stop, held) = (
                config.clone(),
                schema.clone(),
                Arc::clone(&watch),
                Arc::clone(&stop),
                Arc::clone(&interest),
            );
            let channel = name.clone();
            let thread = std::thread::Builder::new()
                .name(format!("eventfile-pg-listen-{name}"))
                .spawn(move || {
                    listen::run(config, schema, channel, Some(listener), watch, stop, held)
                })
                .map_err(|e| database(format!("starting the listener thread: {e}")))?;
            interest.set_thread(thread.thread().clone());
        }
        Ok(PostgresStore {
            shared: Arc::new(Shared {
                pool: Pool::new(config, options.pool_size),
                schema,
                store_id,
                watch,
                appender,
                stop,
                interest,
                no_deletions: AtomicBool::new(false),
            }),
        })
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> PostgresStore {
        PostgresStore { shared }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// The head seq as the database has it now.
    pub(crate) fn read_head(&self) -> Result<u64> {
        let h = head(&mut *self.shared.pool.get()?, &self.shared.schema)?;
        self.shared.watch.advance(h);
        Ok(h)
    }

    /// A query's events, read from the head seen first, and that head: the head is read in the
    /// first page's statement.
    pub(crate) fn run(&self, q: &Query) -> Result<(EventIter, u64)> {
        q.validate()?;
        check_cursor(q, &self.shared.store_id)?;
        let (lo, hi) = seq_bounds(q, u64::MAX);
        let v = view(q);
        let mut params: Vec<Param> = Vec::new();
        let s = self.schema();
        let live = if self.shared.no_deletions.load(Ordering::Relaxed) {
            live_gated(s)
        } else {
            live(s)
        };
        let cond = format!("{} AND {live}", filters(&v, &mut params));
        // The head, and whether any deletion exists (for the next query's choice of `live`).
        let head_row = format!(
            "SELECT coalesce(max(e.seq), 0) AS head, \
             NOT EXISTS (SELECT 1 FROM {s}.deletions) AS none FROM {s}.events e"
        );
        let mut conn = self.shared.pool.get()?;
        let (mut pages, row) = Pages::open(
            self.shared.pool.clone(),
            &mut conn,
            self.schema(),
            &cond,
            params,
            Key::Seq,
            (lo, hi),
            v.backward,
            v.limit,
            First {
                stream: None,
                row: &head_row,
                columns: 2,
                // None: the page is read in the head's snapshot, and commits are gapless in
                // seq order, so it holds no event past the head. (A bound on the head would
                // hide the range from the planner.)
                bound: None,
                // A query's filters vary in selectivity with their values: its pages are
                // planned for them, but for a first page over the whole log (`read.rs`).
                prepared: false,
            },
        )?;
        drop(conn);
        let head = stored(row.try_get(0).map_err(pg)?, "the head seq")?;
        let none: bool = row.try_get(1).map_err(pg)?;
        self.shared.no_deletions.store(none, Ordering::Relaxed);
        self.shared.watch.advance(head);
        pages.narrow(lo, hi.min(head));
        Ok((Box::new(pages), head))
    }
}

/// [`crate::append::check_meta`] of every event of `request`.
fn request_meta(request: &AppendRequest) -> Result<()> {
    crate::append::check_meta(
        request
            .streams
            .iter()
            .flat_map(|p| &p.events)
            .map(|e| (e.event_type(), e.meta())),
    )
}

impl EventStore for PostgresStore {
    fn append_request(&self, request: AppendRequest) -> Result<MultiAppendResult> {
        // In the order `append_requests` checks: `prepare`, then what this backend can store.
        let prepared = prepare(&request)?;
        request_meta(&request)?;
        self.shared.appender.append(request, prepared)
    }

    fn append_requests(&self, requests: Vec<AppendRequest>) -> Vec<Result<MultiAppendResult>> {
        // Queued together, so that they share the appender's group commit.
        eventfile::backend::append_prepared(requests, request_meta, |queued| {
            self.shared.appender.append_many(queued)
        })
    }

    fn read_stream(&self, stream: &str, read: Read) -> Result<EventIter> {
        validate_stream(stream)?;
        let r = read_view(&read);
        let s = self.schema();
        // The stream's version and deletion, read with the first page in one statement (one
        // snapshot); the page leaves out what a deletion hides, and everything of a tombstone
        // (refused below).
        // The version is the newest event's (events are never removed, so it is the stream's
        // version), found in the `(stream, version)` index the page reads anyway.
        // The state is a row of the events' own columns (no column added to every event's
        // row: 9 columns parsed per row, not 12): the seq NULL marks it, the version in the
        // version's place, the deletion's `before` in the time's, its tombstone flag as text in
        // the type's.
        let state = format!(
            "SELECT NULL::bigint, NULL::text, NULL::text,
                    (SELECT v.version FROM {s}.events v WHERE v.stream = $1
                     ORDER BY v.version DESC LIMIT 1),
                    d.tombstone::text, d.before, NULL::text, NULL::text, NULL::text[]
             FROM (SELECT 1) AS one LEFT JOIN {s}.deletions d ON d.stream = $1"
        );
        let bound = format!(
            "e.version >= coalesce((SELECT CASE WHEN d.tombstone THEN {max} ELSE d.before END \
             FROM {s}.deletions d WHERE d.stream = $1), 1)",
            max = i64::MAX
        );
        let bounds = if r.backward {
            (1, r.from.unwrap_or(u64::MAX))
        } else {
            (r.from.unwrap_or(1), u64::MAX)
        };
        let mut conn = self.shared.pool.get()?;
        let (mut pages, row) = Pages::open(
            self.shared.pool.clone(),
            &mut conn,
            s,
            "e.stream = $1",
            vec![(Box::new(stream.to_owned()), Type::TEXT)],
            Key::Version,
            bounds,
            r.backward,
            r.limit,
            First {
                stream: Some(stream),
                row: &state,
                columns: 0,
                bound: Some(&bound),
                // A stream's read is one plan: its (stream, version) index.
                prepared: true,
            },
        )?;
        drop(conn);
        let version: Option<i64> = row.try_get(3).map_err(pg)?;
        let tombstone: Option<&str> = row.try_get(4).map_err(pg)?;
        let before: Option<i64> = row.try_get(5).map_err(pg)?;
        let deletion = match before {
            Some(b) => Some(Deletion {
                before: stored(b, "a deletion's first live version")?,
                tombstone: tombstone == Some("true"),
                // A read goes by `before` and the tombstone only.
                soft: false,
            }),
            None => None,
        };
        check_tombstone(stream, deletion)?;
        let version = version.map_or(Ok(0), |v| stored(v, "a stream's version"))?;
        let deleted_before = deletion.map_or(1, |d| d.before);
        let (lo, hi) = if r.backward {
            (deleted_before, r.from.unwrap_or(u64::MAX).min(version))
        } else {
            (r.from.unwrap_or(1).max(deleted_before), version)
        };
        pages.narrow(lo, hi);
        Ok(Box::new(pages))
    }

    fn read_all(&self, read: Read) -> Result<EventIter> {
        Ok(self.run(&read_all_query(&read))?.0)
    }

    fn query(&self, query: &Query) -> Result<EventIter> {
        Ok(self.run(query)?.0)
    }

    fn count(&self, query: &Query) -> Result<u64> {
        query.validate()?;
        check_cursor(query, &self.shared.store_id)?;
        let (lo, hi) = seq_bounds(query, u64::MAX);
        if lo.max(1) > hi {
            return Ok(0);
        }
        let mut params: Vec<Param> = Vec::new();
        let cond = filters(&view(query), &mut params);
        params.push(pos_param(lo.max(1)));
        params.push(pos_param(hi));
        let n = params.len();
        // Bounded by the head in the same statement (an init plan, read once). Sent unprepared,
        // planned for its values (a generic plan guesses the filters' selectivity).
        let sql = format!(
            "SELECT count(*) FROM {s}.events e WHERE {cond} AND {live} AND e.seq BETWEEN ${} \
             AND least(${n}, (SELECT coalesce(max(h.seq), 0) FROM {s}.events h))",
            n - 1,
            s = self.schema(),
            live = live(self.schema()),
        );
        let row = self
            .shared
            .pool
            .get()?
            .query_typed_one(&sql, &typed(&params))
            .map_err(pg)?;
        stored(row.try_get(0).map_err(pg)?, "a count")
    }

    fn get_event(&self, id: &str) -> Result<Option<RecordedEvent>> {
        validate_id(id)?;
        let rows = self
            .shared
            .pool
            .get()?
            .query_cached(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM {s}.events e WHERE e.id = $1 AND {live}",
                    s = self.schema(),
                    live = live(self.schema())
                ),
                &[&id],
            )
            .map_err(pg)?;
        rows.first().map(event).transpose()
    }

    fn stream_version(&self, stream: &str) -> Result<u64> {
        let rows = self
            .shared
            .pool
            .get()?
            .query_cached(
                &format!(
                    "SELECT version FROM {}.events WHERE stream = $1 \
                     ORDER BY version DESC LIMIT 1",
                    self.schema()
                ),
                &[&stream],
            )
            .map_err(pg)?;
        match rows.first() {
            Some(r) => stored(r.try_get(0).map_err(pg)?, "a stream's version"),
            None => Ok(0),
        }
    }

    fn head_seq(&self) -> Result<u64> {
        self.read_head()
    }

    fn log_start(&self) -> Result<u64> {
        Ok(1)
    }

    fn streams(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<StreamInfo>> {
        crate::catalog::streams(self, prefix, after, limit)
    }

    fn event_types(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        crate::catalog::event_types(self, after, limit)
    }

    fn tags(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        crate::catalog::tags(self, after, limit)
    }

    fn subscribe(&self, query: &Query, from: u64) -> Result<Subscription> {
        check_cursor(query, &self.shared.store_id)?;
        let feed = PgFeed {
            shared: Arc::downgrade(&self.shared),
            watch: Arc::clone(&self.shared.watch),
            _interest: self.shared.interest.hold(),
        };
        Subscription::new(Box::new(feed), query, from)
    }

    fn wait_for(&self, seq: u64, timeout: Duration) -> Result<bool> {
        let _listening = self.shared.interest.hold();
        Ok(self.shared.watch.wait_for(seq, timeout))
    }

    fn checkpoints(&self) -> &dyn eventfile::Checkpoints {
        self.shared()
    }

    fn metrics(&self) -> eventfile::Metrics {
        self.shared.appender.metrics.snapshot()
    }

    fn save_snapshot(&self, stream: &str, version: u64, state: &RawValue) -> Result<Snapshot> {
        crate::deletion::save_snapshot(self, stream, version, state)
    }

    fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        crate::deletion::load_snapshot(self, stream)
    }

    fn truncate_stream(&self, stream: &str, before: u64) -> Result<DeleteResult> {
        crate::deletion::lifecycle(self, stream, eventfile::backend::DeleteOp::Truncate(before))
    }

    fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult> {
        crate::deletion::lifecycle(self, stream, eventfile::backend::DeleteOp::Delete(expected))
    }

    fn tombstone_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult> {
        crate::deletion::lifecycle(
            self,
            stream,
            eventfile::backend::DeleteOp::Tombstone(expected),
        )
    }

    fn import(&self, events: &[RecordedEvent]) -> Result<ImportResult> {
        crate::import::import(self, events)
    }
}
