//! [`SqliteStore`]: opening the file (checks, migrations, WAL), the parts a handle is made of
//! (the writer, the read pool, the append queue, the head watch, the follower), and the
//! [`EventStore`] implementation, which hands each call to the module that owns it.
//!
//! This module owns the handle's lifetime: the last clone dropped closes the watch and stops
//! the follower.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventfile::backend::{self, DeleteOp};
use eventfile::subscription::{HeadWatch, Subscription};
use eventfile::{
    AppendRequest, DeleteResult, Error, EventIter, EventStore, ExpectedVersion, ImportResult,
    MultiAppendResult, Query, Read, RecordedEvent, Result, Snapshot, StreamInfo, TermCount,
};
use rusqlite::Connection;
use serde_json::value::RawValue;

use crate::append::Queue;
use crate::connection::{self, Pool, Sql};
use crate::feed::{Follower, SqliteFeed};
use crate::migrate::{self, Found, LATEST};
use crate::options::SqliteOptions;

/// An event store in one SQLite file, with the [`EventStore`] contract.
///
/// The file is in WAL mode, so reads (on a small pool of connections) run beside the one
/// writer. Each append is one `BEGIN IMMEDIATE` transaction that reads the head inside it, so
/// seqs stay gapless even when several processes append to the same file; appends racing in
/// one process share a transaction (and its fsync). With the default
/// [`Synchronous::Full`](crate::Synchronous::Full) every append is durable when it returns.
///
/// Clones share the handle; the last one dropped ends its subscriptions.
///
/// ```
/// use eventfile::{EventStore, ExpectedVersion, NewEvent, Read};
/// use eventfile_sqlite::SqliteStore;
/// # let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("events.db"))?;
/// store.append("order-1", ExpectedVersion::NoStream, vec![
///     NewEvent::new("OrderPlaced", serde_json::json!({"total": 12})),
/// ])?;
/// let events: Vec<_> = store.read_stream("order-1", Read::forward())?.collect::<Result<_, _>>()?;
/// assert_eq!((events[0].seq, events[0].version), (1, 1));
/// # Ok::<(), eventfile::Error>(())
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    open: Arc<Open>,
}

/// What a handle is made of.
pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    /// Names this file in cursors; another store's cursors are refused.
    pub(crate) store_id: String,
    /// The one connection that writes.
    pub(crate) writer: Mutex<Connection>,
    /// Appends waiting for the next commit.
    pub(crate) queue: Queue,
    /// Why writes are refused until the store is reopened: a commit failed in the I/O layer.
    pub(crate) poisoned: Mutex<Option<String>>,
    pub(crate) pool: Pool,
    pub(crate) watch: Arc<HeadWatch>,
    pub(crate) follower: Arc<Follower>,
    /// What this handle has done since it was opened: appends and their commits.
    pub(crate) metrics: eventfile::Counters,
}

/// Held by the clones only: dropped with the last, it closes the store.
pub(crate) struct Open {
    watch: Arc<HeadWatch>,
    follower: Arc<Follower>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.watch.close();
        self.follower.close();
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("head_seq", &self.inner.watch.head())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` with the default [`SqliteOptions`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = eventfile_sqlite::SqliteStore::open(dir.path().join("events.db"))?;
    /// # drop(store);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        SqliteStore::open_with(path, SqliteOptions::default())
    }

    /// Opens the store at `path`. A file of another application's, or at a schema version
    /// newer than this build's, is [`Error::ForeignSchema`]; a file that is not SQLite is
    /// [`Error::NotAStore`]; an older schema is migrated (unless
    /// [`SqliteOptions::migrate`] is off).
    ///
    /// ```
    /// use eventfile_sqlite::{SqliteOptions, SqliteStore};
    /// # let dir = tempfile::tempdir().unwrap();
    /// // Open an existing store only: a missing file is an error.
    /// let missing = SqliteStore::open_with(dir.path().join("nope.db"), SqliteOptions::new().create(false));
    /// assert!(missing.is_err());
    /// ```
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore> {
        let path = path.as_ref().to_owned();
        let mut writer = connection::open(&path, options.create, options.synchronous)?;
        let (store_id, head) =
            connection::retry_busy(|| prepare_file(&mut writer, &path, options))?;
        let watch = Arc::new(HeadWatch::new(head));
        let follower = Follower::start(path.clone(), options.synchronous, Arc::clone(&watch));
        Ok(SqliteStore {
            open: Arc::new(Open {
                watch: Arc::clone(&watch),
                follower: Arc::clone(&follower),
            }),
            inner: Arc::new(Inner {
                pool: Pool::new(path.clone(), options.synchronous, options.read_connections),
                path,
                store_id,
                writer: Mutex::new(writer),
                queue: Queue::default(),
                poisoned: Mutex::new(None),
                watch,
                follower,
                metrics: eventfile::Counters::new(),
            }),
        })
    }

    /// The file this store is in.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = eventfile_sqlite::SqliteStore::open(dir.path().join("events.db"))?;
    /// assert!(store.path().ends_with("events.db"));
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

/// Checks what the file holds, puts it in WAL mode and migrates it (see
/// [`SqliteStore::open_with`]); the store's id and head.
fn prepare_file(
    writer: &mut Connection,
    path: &Path,
    options: SqliteOptions,
) -> Result<(String, u64)> {
    let found = migrate::inspect(writer, path)?;
    let version = migrate::check_usable(&found)?;
    if found == Found::Empty && !options.create {
        return Err(Error::NotAStore {
            path: path.to_owned(),
            reason: "the SQLite file holds no eventfile store".to_owned(),
        });
    }
    connection::wal(writer, path)?;
    if version < LATEST {
        if !options.migrate && found != Found::Empty {
            return Err(Error::ForeignSchema {
                backend: "sqlite",
                reason: format!(
                    "its schema is at version {version}, older than this build's {LATEST}; \
                     open with migrate(true) or run migrate::up"
                ),
            });
        }
        migrate::migrate_to(writer, path, LATEST, false)?;
    }
    let store_id: String = writer
        .query_row(
            "SELECT value FROM eventfile_meta WHERE key = 'store_id'",
            [],
            |r| r.get(0),
        )
        .sql(path)?;
    Ok((store_id, crate::rows::head(writer, path)?))
}

impl EventStore for SqliteStore {
    fn append_request(&self, request: AppendRequest) -> Result<MultiAppendResult> {
        self.inner.append(request)
    }

    fn append_requests(&self, requests: Vec<AppendRequest>) -> Vec<Result<MultiAppendResult>> {
        self.inner.append_many(requests)
    }

    fn read_stream(&self, stream: &str, read: Read) -> Result<EventIter> {
        let r = backend::read_view(&read);
        self.inner.stream(stream, r.backward, r.from, r.limit)
    }

    fn read_all(&self, read: Read) -> Result<EventIter> {
        Ok(self.inner.run(&backend::read_all_query(&read))?.0)
    }

    fn query(&self, query: &Query) -> Result<EventIter> {
        Ok(self.inner.run(query)?.0)
    }

    fn count(&self, query: &Query) -> Result<u64> {
        self.inner.count(query)
    }

    fn get_event(&self, id: &str) -> Result<Option<RecordedEvent>> {
        self.inner.get_event(id)
    }

    fn stream_version(&self, stream: &str) -> Result<u64> {
        self.inner.version(stream)
    }

    fn head_seq(&self) -> Result<u64> {
        self.inner.read_head()
    }

    fn log_start(&self) -> Result<u64> {
        Ok(1)
    }

    fn streams(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<StreamInfo>> {
        self.inner.streams(prefix, after, limit)
    }

    fn event_types(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        self.inner.terms(false, after, limit)
    }

    fn tags(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        self.inner.terms(true, after, limit)
    }

    fn subscribe(&self, query: &Query, from: u64) -> Result<Subscription> {
        backend::check_cursor(query, &self.inner.store_id)?;
        let feed = SqliteFeed {
            inner: Arc::downgrade(&self.inner),
            open: Arc::downgrade(&self.open),
            watch: Arc::clone(&self.inner.watch),
            _waiting: self.inner.follower.waiting(),
        };
        Subscription::new(Box::new(feed), query, from)
    }

    fn wait_for(&self, seq: u64, timeout: Duration) -> Result<bool> {
        if self.inner.read_head()? >= seq {
            return Ok(true);
        }
        let _waiting = self.inner.follower.waiting();
        Ok(self.inner.watch.wait_for(seq, timeout))
    }

    fn save_snapshot(&self, stream: &str, version: u64, state: &RawValue) -> Result<Snapshot> {
        self.inner.save_snapshot(stream, version, state)
    }

    fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        self.inner.load_snapshot(stream)
    }

    fn truncate_stream(&self, stream: &str, before: u64) -> Result<DeleteResult> {
        self.inner.lifecycle(stream, DeleteOp::Truncate(before))
    }

    fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult> {
        self.inner.lifecycle(stream, DeleteOp::Delete(expected))
    }

    fn tombstone_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult> {
        self.inner.lifecycle(stream, DeleteOp::Tombstone(expected))
    }

    fn import(&self, events: &[RecordedEvent]) -> Result<ImportResult> {
        self.inner.import(events)
    }

    fn checkpoints(&self) -> &dyn eventfile::Checkpoints {
        &*self.inner
    }

    fn metrics(&self) -> eventfile::Metrics {
        self.inner.metrics.snapshot()
    }
}
