//! [`PostgresStore`]: the [`EventStore`] on PostgreSQL. It owns the store's shared parts (the
//! pool, the appender's queue, the head watch, the listener's stop flag), opening, and the
//! reads; appends go to `append.rs`, deletions and snapshots to `deletion.rs`, the listings to
//! `catalog.rs`, imports to `import.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventfile::backend::{check_cursor, check_tombstone, prepare, read_view, seq_bounds, view};
use eventfile::subscription::{HeadWatch, Subscription};
use eventfile::{
    AppendRequest, DeleteResult, Direction, EventIter, EventStore, ExpectedVersion, ImportResult,
    MultiAppendResult, Query, Read, RecordedEvent, Result, Snapshot, StreamInfo, TermCount,
    validate_id, validate_stream,
};
use serde_json::value::RawValue;

use crate::PostgresOptions;
use crate::append::{self, Job};
use crate::error::{database, pg};
use crate::listen::{self, PgFeed};
use crate::lookup::{head, stream_state};
use crate::migrate::{self, quoted};
use crate::pool::{Pool, config, connect};
use crate::read::{Key, Pages};
use crate::sql::{COLUMNS, Param, event, filters, live, pos, unpos};

/// An event store in a PostgreSQL schema, with the file store's semantics: everything the
/// [`EventStore`] trait promises, the conformance suite passed unchanged.
///
/// Clones share one pool of connections, one appender thread (which commits every append
/// queued meanwhile in one transaction) and one listener thread (which learns of other
/// processes' commits through `LISTEN`/`NOTIFY` and a poll). Dropping the last clone stops both
/// threads and ends the store's subscriptions. Any number of processes may open the same
/// schema: writers are serialised by a transaction-scoped advisory lock, so seqs are gapless and
/// committed in order.
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
    appender: Mutex<Sender<Job>>,
    stop: Arc<AtomicBool>,
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
        let listener = listen::listener(&config, &schema, &name)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        {
            let (config, schema, watch) = (config.clone(), schema.clone(), Arc::clone(&watch));
            std::thread::Builder::new()
                .name(format!("eventfile-pg-append-{name}"))
                .spawn(move || append::run(config, schema, Some(client), rx, watch))
                .map_err(|e| database(format!("starting the appender thread: {e}")))?;
        }
        {
            let (config, schema, watch, stop) = (
                config.clone(),
                schema.clone(),
                Arc::clone(&watch),
                Arc::clone(&stop),
            );
            let channel = name.clone();
            std::thread::Builder::new()
                .name(format!("eventfile-pg-listen-{name}"))
                .spawn(move || listen::run(config, schema, channel, Some(listener), watch, stop))
                .map_err(|e| database(format!("starting the listener thread: {e}")))?;
        }
        Ok(PostgresStore {
            shared: Arc::new(Shared {
                pool: Pool::new(config, options.pool_size),
                schema,
                store_id,
                watch,
                appender: Mutex::new(tx),
                stop,
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

    /// A query's events, read from the head seen first, and that head.
    pub(crate) fn run(&self, q: &Query) -> Result<(EventIter, u64)> {
        q.validate()?;
        check_cursor(q, &self.shared.store_id)?;
        let head = self.read_head()?;
        let bounds = seq_bounds(q, head);
        let v = view(q);
        let mut params: Vec<Param> = Vec::new();
        let cond = format!("{} AND {}", filters(&v, &mut params), live(self.schema()));
        let pages = Pages::new(
            self.shared.pool.clone(),
            self.schema(),
            &cond,
            params,
            Key::Seq,
            bounds,
            v.backward,
            v.limit,
        );
        Ok((Box::new(pages), head))
    }
}

impl EventStore for PostgresStore {
    fn append_request(&self, request: AppendRequest) -> Result<MultiAppendResult> {
        let prepared = prepare(&request)?;
        let (reply, outcome) = mpsc::sync_channel(1);
        let job = Job {
            request,
            prepared,
            reply,
        };
        let stopped = || database("the appender thread stopped");
        self.shared
            .appender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| stopped())?;
        outcome.recv().map_err(|_| stopped())?
    }

    fn read_stream(&self, stream: &str, read: Read) -> Result<EventIter> {
        validate_stream(stream)?;
        let r = read_view(&read);
        let (version, deletion) =
            stream_state(&mut *self.shared.pool.get()?, self.schema(), stream)?;
        check_tombstone(stream, deletion)?;
        let deleted_before = deletion.map_or(1, |d| d.before);
        let bounds = if r.backward {
            (deleted_before, r.from.unwrap_or(u64::MAX).min(version))
        } else {
            (r.from.unwrap_or(1).max(deleted_before), version)
        };
        Ok(Box::new(Pages::new(
            self.shared.pool.clone(),
            self.schema(),
            "e.stream = $1",
            vec![Box::new(stream.to_owned())],
            Key::Version,
            bounds,
            r.backward,
            r.limit,
        )))
    }

    fn read_all(&self, read: Read) -> Result<EventIter> {
        let r = read_view(&read);
        let direction = if r.backward {
            Direction::Backward
        } else {
            Direction::Forward
        };
        let mut q = Query::new().direction(direction);
        if let Some(from) = r.from {
            q = if r.backward {
                q.to_seq(from)
            } else {
                q.from_seq(from)
            };
        }
        if let Some(n) = r.limit {
            q = q.limit(n);
        }
        Ok(self.run(&q)?.0)
    }

    fn query(&self, query: &Query) -> Result<EventIter> {
        Ok(self.run(query)?.0)
    }

    fn count(&self, query: &Query) -> Result<u64> {
        query.validate()?;
        check_cursor(query, &self.shared.store_id)?;
        let mut conn = self.shared.pool.get()?;
        let (lo, hi) = seq_bounds(query, head(&mut *conn, self.schema())?);
        if lo.max(1) > hi {
            return Ok(0);
        }
        let mut params: Vec<Param> = Vec::new();
        let cond = filters(&view(query), &mut params);
        params.push(Box::new(pos(lo.max(1))));
        params.push(Box::new(pos(hi)));
        let n = params.len();
        let sql = format!(
            "SELECT count(*) FROM {s}.events e WHERE {cond} AND {live} AND e.seq BETWEEN ${} AND ${n}",
            n - 1,
            s = self.schema(),
            live = live(self.schema()),
        );
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            params.iter().map(|p| &**p as _).collect();
        let row = conn.query_one(&sql, &refs).map_err(pg)?;
        Ok(unpos(row.get(0)))
    }

    fn get_event(&self, id: &str) -> Result<Option<RecordedEvent>> {
        validate_id(id)?;
        let row = self
            .shared
            .pool
            .get()?
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM {s}.events e WHERE e.id = $1 AND {live}",
                    s = self.schema(),
                    live = live(self.schema())
                ),
                &[&id],
            )
            .map_err(pg)?;
        row.as_ref().map(event).transpose()
    }

    fn stream_version(&self, stream: &str) -> Result<u64> {
        let row = self
            .shared
            .pool
            .get()?
            .query_opt(
                &format!(
                    "SELECT version FROM {}.streams WHERE stream = $1",
                    self.schema()
                ),
                &[&stream],
            )
            .map_err(pg)?;
        Ok(row.map_or(0, |r| unpos(r.get(0))))
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
        };
        Subscription::new(Box::new(feed), query, from)
    }

    fn wait_for(&self, seq: u64, timeout: Duration) -> Result<bool> {
        Ok(self.shared.watch.wait_for(seq, timeout))
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
