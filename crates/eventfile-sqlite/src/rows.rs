//! The `events` table row by row: how a row becomes a [`RecordedEvent`] (data text kept
//! byte for byte, metadata and tags from their JSON), how an event is inserted with its tags,
//! and the point look-ups every write needs (head, stream version, deletion state, last time).
//!
//! This module owns the mapping between rows and events; it decides no rule of the store.

use std::path::Path;

use eventfile::backend::{Deletion, LogLookup, Logged};
use eventfile::{Error, Micros, RecordedEvent, Result};
use rusqlite::{Connection, OptionalExtension, Row};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::connection::Sql;

/// The columns [`event_from_row`] reads, in its order, of `events` aliased `e`.
pub(crate) const COLUMNS: &str =
    "e.seq, e.id, e.stream, e.version, e.type, e.time, e.data, e.meta, e.tags";

/// [`COLUMNS`] for a read of one stream: its name is known, so the statement hands back NULL
/// in its place and [`event_from_row_of`] copies the name instead (one text column fewer
/// fetched and checked per row).
pub(crate) const STREAM_COLUMNS: &str =
    "e.seq, e.id, NULL, e.version, e.type, e.time, e.data, e.meta, e.tags";

/// Whether the event of alias `e` is live now: no deletion of its stream hides its version.
pub(crate) const LIVE: &str = "NOT EXISTS (SELECT 1 FROM deletions d \
     WHERE d.stream = e.stream AND e.version < d.deleted_before)";

/// Whether the event of alias `e` was live when the head was `head` (deletions recorded by
/// later `$lifecycle` events do not count): what a read that began at `head` sees.
///
/// Gated by whether `deletions` holds any row at all: an uncorrelated test SQLite runs once
/// per statement, and while it holds, `OR` skips the per-row probe of `deletions` (a search of
/// its primary key for every selected event: about 5% of a 1,000-event type filter). Rows of
/// `deletions` are never removed, so an empty table means no deletion up to any head: the gate
/// changes the work, never the answer.
pub(crate) fn live_at(w: &mut crate::sql::Where, head: u64) -> String {
    let h = w.param(int(head));
    format!(
        "(NOT EXISTS (SELECT 1 FROM deletions) OR NOT EXISTS (SELECT 1 FROM deletions d \
         WHERE d.stream = e.stream AND d.seq <= {h} AND e.version < d.deleted_before))"
    )
}

/// A `u64` position as SQLite's integer (positions never reach `i64::MAX`; a bound above it
/// means "no bound").
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A text column of a row, borrowed from SQLite (no copy).
fn text<'r>(r: &'r Row<'_>, i: usize, path: &Path) -> Result<&'r str> {
    r.get_ref(i)
        .sql(path)?
        .as_str()
        .map_err(|e| Error::Database {
            backend: "sqlite",
            reason: format!("{}: column {i} of an event: {e}", path.display()),
        })
}

/// The event in a row of [`COLUMNS`]. A bad row is an error, not a panic. Data is copied once (into its `RawValue`, which checks it);
/// metadata and tags are parsed straight from SQLite's buffer.
pub(crate) fn event_from_row(r: &Row<'_>, path: &Path) -> Result<RecordedEvent> {
    event_from_row_of(r, path, None)
}

/// The event in a row of [`COLUMNS`], or of [`STREAM_COLUMNS`] when `stream` names the stream
/// every row belongs to (its column 2 is then not read).
pub(crate) fn event_from_row_of(
    r: &Row<'_>,
    path: &Path,
    stream: Option<&str>,
) -> Result<RecordedEvent> {
    let seq: i64 = r.get(0).sql(path)?;
    let bad = |what: &str, e: serde_json::Error| Error::Database {
        backend: "sqlite",
        reason: format!(
            "{}: the {what} of event seq {seq} is not valid JSON: {e}",
            path.display()
        ),
    };
    let data = RawValue::from_string(text(r, 6, path)?.to_owned()).map_err(|e| bad("data", e))?;
    let meta = match text(r, 7, path)? {
        "{}" => Map::new(),
        m => serde_json::from_str(m).map_err(|e| bad("metadata", e))?,
    };
    let tags = match text(r, 8, path)? {
        "[]" => Vec::new(),
        t => serde_json::from_str(t).map_err(|e| bad("tags", e))?,
    };
    Ok(RecordedEvent {
        seq: u64::try_from(seq).map_err(|_| Error::Database {
            backend: "sqlite",
            reason: format!("{}: an event's seq is {seq}, below 1", path.display()),
        })?,
        id: text(r, 1, path)?.to_owned(),
        stream: match stream {
            Some(s) => s.to_owned(),
            None => text(r, 2, path)?.to_owned(),
        },
        version: r.get(3).sql(path)?,
        event_type: text(r, 4, path)?.to_owned(),
        time: r.get(5).sql(path)?,
        data,
        meta,
        tags,
    })
}

/// One event to insert: its place and its content.
pub(crate) struct Insert<'a> {
    pub seq: u64,
    pub id: &'a str,
    pub stream: &'a str,
    pub version: u64,
    pub event_type: &'a str,
    pub time: Micros,
    pub data: &'a RawValue,
    pub meta: &'a Map<String, Value>,
    pub tags: &'a [String],
    pub more: bool,
    pub key: Option<&'a str>,
}

/// Inserts an event and its tags (a tag repeated on one event is indexed once).
pub(crate) fn insert(conn: &Connection, path: &Path, e: &Insert<'_>) -> Result<()> {
    let meta = serde_json::to_string(e.meta)?;
    let tags = serde_json::to_string(e.tags)?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO events (seq, id, stream, version, type, time, data, meta, tags, more, key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .sql(path)?;
    let done = stmt.execute(rusqlite::params![
        int(e.seq),
        e.id,
        e.stream,
        int(e.version),
        e.event_type,
        e.time,
        e.data.get(),
        meta,
        tags,
        e.more,
        e.key,
    ]);
    if let Err(rusqlite::Error::SqliteFailure(f, Some(msg))) = &done
        && f.code == rusqlite::ErrorCode::ConstraintViolation
        && msg.contains("events.stream, events.version")
    {
        // Only another writer could have taken the version, and every writer holds the
        // write lock while it checks: reported as the conflict it would be.
        return Err(Error::WrongExpectedVersion {
            stream: e.stream.to_owned(),
            expected: eventfile::ExpectedVersion::Exact(e.version.saturating_sub(1)),
            actual: stream_version(conn, path, e.stream)?,
        });
    }
    done.sql(path)?;
    let mut tag = conn
        .prepare_cached("INSERT OR IGNORE INTO event_tags (tag, seq) VALUES (?1, ?2)")
        .sql(path)?;
    for t in e.tags {
        tag.execute(rusqlite::params![t, int(e.seq)]).sql(path)?;
    }
    Ok(())
}

/// The newest seq (0: none).
pub(crate) fn head(conn: &Connection, path: &Path) -> Result<u64> {
    let v: Option<u64> = conn
        .prepare_cached("SELECT max(seq) FROM events")
        .sql(path)?
        .query_row([], |r| r.get(0))
        .sql(path)?;
    Ok(v.unwrap_or(0))
}

/// The time of the newest event (`Micros::MIN`: none): commit times never go below it.
pub(crate) fn last_time(conn: &Connection, path: &Path) -> Result<Micros> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT time FROM events ORDER BY seq DESC LIMIT 1")
        .sql(path)?
        .query_row([], |r| r.get(0))
        .optional()
        .sql(path)?;
    Ok(v.unwrap_or(Micros::MIN))
}

/// A stream's version (0: no events).
pub(crate) fn stream_version(conn: &Connection, path: &Path, stream: &str) -> Result<u64> {
    let v: Option<u64> = conn
        .prepare_cached("SELECT max(version) FROM events WHERE stream = ?1")
        .sql(path)?
        .query_row([stream], |r| r.get(0))
        .sql(path)?;
    Ok(v.unwrap_or(0))
}

/// What is deleted of a stream, if anything. Whether the newest deletion row came from a soft
/// deletion is its `$lifecycle` event's type (the row's `seq`): the row's `deleted_before` is
/// the merged state, and a deletion that changes nothing writes no row, so the newest row's
/// event is the one that set the state (`Deletion::merge`).
pub(crate) fn deletion(conn: &Connection, path: &Path, stream: &str) -> Result<Option<Deletion>> {
    conn.prepare_cached(
        "SELECT d.deleted_before, d.tombstone, \
         (SELECT e.type FROM events e WHERE e.seq = d.seq) = ?2 \
         FROM deletions d WHERE d.stream = ?1 ORDER BY d.seq DESC LIMIT 1",
    )
    .sql(path)?
    .query_row(rusqlite::params![stream, eventfile::DELETED], |r| {
        Ok(Deletion {
            before: r.get(0)?,
            tombstone: r.get(1)?,
            soft: r.get::<_, Option<bool>>(2)?.unwrap_or(false),
        })
    })
    .optional()
    .sql(path)
}

/// A stream's deletion state and version in one statement (for a read: one snapshot).
pub(crate) fn stream_state(
    conn: &Connection,
    path: &Path,
    stream: &str,
) -> Result<(Option<Deletion>, u64)> {
    // One row always; with `max(seq)`, SQLite takes the bare columns from the newest row of
    // the stream's deletions (the same row as [`deletion`]), NULL when there is none.
    // The newest row's event type says whether it was a soft deletion ([`deletion`]).
    conn.prepare_cached(
        "SELECT version, newest, deleted_before, tombstone, \
         (SELECT e.type FROM events e WHERE e.seq = newest) = ?2 FROM \
         (SELECT (SELECT max(version) FROM events WHERE stream = ?1) AS version, \
         max(seq) AS newest, deleted_before, tombstone FROM deletions WHERE stream = ?1)",
    )
    .sql(path)?
    .query_row(rusqlite::params![stream, eventfile::DELETED], |r| {
        let version: Option<u64> = r.get(0)?;
        let newest: Option<i64> = r.get(1)?;
        let deletion = match newest {
            Some(_) => Some(Deletion {
                before: r.get(2)?,
                tombstone: r.get(3)?,
                soft: r.get::<_, Option<bool>>(4)?.unwrap_or(false),
            }),
            None => None,
        };
        Ok((deletion, version.unwrap_or(0)))
    })
    .sql(path)
}

/// Records a stream's new deletion state, made by the `$lifecycle` event at `seq`. The rows
/// of a stream are its history: the newest is its state, and a read that began at head `h`
/// goes by the rows up to `h` (deletion only ever moves forward, so the largest
/// `deleted_before` among them is the state then).
pub(crate) fn set_deletion(
    conn: &Connection,
    path: &Path,
    stream: &str,
    seq: u64,
    d: Deletion,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO deletions (stream, seq, deleted_before, tombstone) VALUES (?1, ?2, ?3, ?4)",
    )
    .sql(path)?
    .execute(rusqlite::params![
        stream,
        int(seq),
        int(d.before),
        d.tombstone
    ])
    .sql(path)?;
    Ok(())
}

/// The seq holding an event id, deleted events included.
pub(crate) fn seq_of_id(conn: &Connection, path: &Path, id: &str) -> Result<Option<u64>> {
    let v: Option<u64> = conn
        .prepare_cached("SELECT seq FROM events WHERE id = ?1")
        .sql(path)?
        .query_row([id], |r| r.get(0))
        .optional()
        .sql(path)?;
    Ok(v)
}

/// The first seq of the append an idempotency key was used for.
pub(crate) fn seq_of_key(conn: &Connection, path: &Path, key: &str) -> Result<Option<u64>> {
    let v: Option<u64> = conn
        .prepare_cached("SELECT seq FROM events WHERE key = ?1")
        .sql(path)?
        .query_row([key], |r| r.get(0))
        .optional()
        .sql(path)?;
    Ok(v)
}

/// The event at a seq, deleted or not.
pub(crate) fn event_at(
    conn: &Connection,
    path: &Path,
    seq: u64,
) -> Result<Option<(RecordedEvent, bool)>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, e.more FROM events e WHERE e.seq = ?1"
        ))
        .sql(path)?;
    let mut rows = stmt.query([int(seq)]).sql(path)?;
    match rows.next().sql(path)? {
        Some(r) => Ok(Some((event_from_row(r, path)?, r.get(9).sql(path)?))),
        None => Ok(None),
    }
}

/// The retry rules' view of the log, on a connection inside the write transaction.
pub(crate) struct Lookup<'a> {
    pub conn: &'a Connection,
    pub path: &'a Path,
}

impl LogLookup for Lookup<'_> {
    fn logged(&mut self, seq: u64) -> Result<Option<Logged>> {
        Ok(event_at(self.conn, self.path, seq)?.map(|(event, more)| Logged { event, more }))
    }
}
