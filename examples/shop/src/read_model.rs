//! The read-model file: one SQLite database holding both projections' tables, each
//! projection's checkpoint row, and which store the model was built from; the queries the shop
//! answers from it; and the lock that lets one projector at a time write it.
//!
//! Tables:
//!
//! | table | rows |
//! |---|---|
//! | `order_summary` | one per order: id, customer, items (the quantities' sum), total, paid, status |
//! | `order_lines` | one per item added: order id, line number, sku, quantity, unit price, amount, the event's seq |
//! | `projection_checkpoints` | one per projection: the seq up to which its rows reflect the log |
//! | `shop_meta` | `store`: the id of the first event of the store the model was built from |
//!
//! This module owns the file's schema and reads; the writes are the projections'
//! (`crate::projections`), each in its own transaction with its checkpoint row.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::order::Cents;

/// How long a writer waits for the other projection's transaction before giving up.
const BUSY: Duration = Duration::from_secs(30);

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS order_summary (
        order_id TEXT PRIMARY KEY,
        customer TEXT NOT NULL,
        items    INTEGER NOT NULL,
        total    INTEGER NOT NULL,
        paid     INTEGER NOT NULL,
        status   TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS order_lines (
        order_id   TEXT NOT NULL,
        line       INTEGER NOT NULL,
        sku        TEXT NOT NULL,
        quantity   INTEGER NOT NULL,
        unit_price INTEGER NOT NULL,
        amount     INTEGER NOT NULL,
        seq        INTEGER NOT NULL UNIQUE,
        PRIMARY KEY (order_id, line)
    );
    CREATE TABLE IF NOT EXISTS projection_checkpoints (
        name     TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS shop_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
";

/// A read-model error: SQLite's, with the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("read model {path}: {source}")]
pub struct ReadModelError {
    /// The read-model file.
    pub path: PathBuf,
    /// What SQLite (or the file system) said.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl ReadModelError {
    pub(crate) fn new(
        path: &Path,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> ReadModelError {
        ReadModelError {
            path: path.to_owned(),
            source: source.into(),
        }
    }
}

/// An order as the summary projection keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    /// The order's id.
    pub order_id: String,
    /// Who ordered.
    pub customer: String,
    /// How many items (the quantities' sum).
    pub items: u64,
    /// The sum of the lines.
    pub total: Cents,
    /// Paid so far.
    pub paid: Cents,
    /// `placed`, `part-paid` or `paid`.
    pub status: String,
}

/// One line of an order as the details projection keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRow {
    /// Its number in the order, from 1.
    pub line: u64,
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: u64,
    /// The price of one.
    pub unit_price: Cents,
    /// `quantity × unit_price`.
    pub amount: Cents,
}

/// The read-model file, open for queries.
pub struct ReadModel {
    path: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A connection to the read-model file with its schema in place: WAL (queries never wait for
/// a projector), and a writer waits for another's transaction up to [`BUSY`].
pub(crate) fn connect(path: &Path) -> Result<Connection, ReadModelError> {
    let err = |e: rusqlite::Error| ReadModelError::new(path, e);
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(BUSY).map_err(err)?;
    // FULL: a committed batch and its checkpoint survive a power loss together.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .map_err(err)?;
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))
        .map_err(err)?;
    Ok(conn)
}

impl ReadModel {
    /// Opens (creating if needed) the read model at `path`.
    pub fn open(path: &Path) -> Result<ReadModel, ReadModelError> {
        Ok(ReadModel {
            path: path.to_owned(),
            conn: connect(path)?,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> ReadModelError {
        ReadModelError::new(&self.path, e)
    }

    /// Every order, by id.
    pub fn orders(&self) -> Result<Vec<SummaryRow>, ReadModelError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT order_id, customer, items, total, paid, status FROM order_summary \
                 ORDER BY order_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], summary_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>();
        rows.map_err(|e| self.err(e))
    }

    /// One order's summary and its lines; `None` if the summary has no such order.
    pub fn order(&self, id: &str) -> Result<Option<(SummaryRow, Vec<LineRow>)>, ReadModelError> {
        let summary = self
            .conn
            .query_row(
                "SELECT order_id, customer, items, total, paid, status FROM order_summary \
                 WHERE order_id = ?1",
                [id],
                summary_row,
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(summary) = summary else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT line, sku, quantity, unit_price, amount FROM order_lines \
                 WHERE order_id = ?1 ORDER BY line",
            )
            .map_err(|e| self.err(e))?;
        let lines = stmt
            .query_map([id], |r| {
                Ok(LineRow {
                    line: r.get(0)?,
                    sku: r.get(1)?,
                    quantity: r.get(2)?,
                    unit_price: Cents(r.get(3)?),
                    amount: Cents(r.get(4)?),
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(Some((summary, lines)))
    }

    /// The position a projection's checkpoint row holds (0 without one).
    pub fn position(&self, name: &str) -> Result<u64, ReadModelError> {
        position(&self.conn, name).map_err(|e| self.err(e))
    }

    /// The id of the first event of the store the model was built from, if it was recorded.
    pub fn origin(&self) -> Result<Option<String>, ReadModelError> {
        self.conn
            .query_row("SELECT value FROM shop_meta WHERE key = 'store'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records the store the model is built from (`None`: an empty store, nothing recorded).
    pub fn set_origin(&self, first_event: Option<&str>) -> Result<(), ReadModelError> {
        match first_event {
            Some(id) => self.conn.execute(
                "INSERT INTO shop_meta (key, value) VALUES ('store', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [id],
            ),
            None => self
                .conn
                .execute("DELETE FROM shop_meta WHERE key = 'store'", []),
        }
        .map(drop)
        .map_err(|e| self.err(e))
    }
}

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SummaryRow> {
    Ok(SummaryRow {
        order_id: r.get(0)?,
        customer: r.get(1)?,
        items: r.get(2)?,
        total: Cents(r.get(3)?),
        paid: Cents(r.get(4)?),
        status: r.get(5)?,
    })
}

/// The position `name`'s checkpoint row holds (0 without one).
pub(crate) fn position(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT position FROM projection_checkpoints WHERE name = ?1",
        params![name],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map(|p| p.map_or(0, |p| p.max(0) as u64))
}

/// The right to write the read model: an advisory lock on `FILE.lock` beside it, held by the
/// one process that projects into it (released by the kernel however that process ends, a
/// `kill -9` included). Queries need no lock.
#[derive(Debug)]
pub struct ProjectorLock {
    _file: File,
}

impl ProjectorLock {
    /// Takes the lock of the read model at `path`, or `None` if another process holds it.
    pub fn try_take(path: &Path) -> Result<Option<ProjectorLock>, ReadModelError> {
        let lock_path = lock_path(path);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| ReadModelError::new(&lock_path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ProjectorLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(ReadModelError::new(&lock_path, e)),
        }
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}
