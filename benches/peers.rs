//! What `backends.rs` and `backends_alt.rs` share: the events and the store they fill, the
//! PostgreSQL server, and the peers issue 12 measures the backends against: plain INSERTs on
//! the same server and the queries written by hand in SQL.
//!
//! The hand side does what a careful application writes: each statement prepared once, every
//! column read with a fallible getter (`try_get` for PostgreSQL, rusqlite's `get`/`get_ref`),
//! a row that does not decode an error handed back (never a panic), every row decoded into the
//! same `RecordedEvent` the backends return (data as raw JSON text, metadata parsed into a map,
//! tags into a vector), and the rows collected with `collect::<Result<Vec<_>, _>>()`, exactly
//! as a caller collects a backend's `EventIter`. Neither side reserves the `Vec`.

#![allow(dead_code)] // each bench uses part of this module

use std::error::Error;
use std::sync::Arc;

use eventfile::{EventStore, ExpectedVersion, NewEvent, RecordedEvent, Store};
use eventfile_postgres::{PostgresOptions, PostgresStore};
use eventfile_sqlite::SqliteStore;
use serde_json::json;
use serde_json::value::RawValue;

/// An error of the hand-written side (a careful application's catch-all).
pub type HandError = Box<dyn Error + Send + Sync>;

/// A ~200-byte event, as in `append.rs`.
pub fn event(i: u64) -> NewEvent {
    NewEvent::new(
        format!("Type{}", i % 20),
        json!({"order": i, "sku": "SKU-000123", "qty": 2, "price_cents": 1250}),
    )
    .with_tag(format!("customer=c{}", i % 50))
}

/// The PostgreSQL server's URL, or why there is none (the PostgreSQL rows are then skipped).
pub fn postgres_url() -> Option<String> {
    match std::panic::catch_unwind(|| eventfile_postgres::testing::server().url().to_owned()) {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!("backends: no PostgreSQL server could start; its rows are skipped");
            None
        }
    }
}

/// The stores under test (file, SQLite, PostgreSQL when a server runs), each fresh in a
/// temporary directory on the real disk (PostgreSQL: a schema of its own), and what keeps them
/// alive.
pub struct Stores {
    pub list: Vec<(&'static str, Arc<dyn EventStore>)>,
    pub pg: Option<(String, PostgresOptions)>,
    pub dir: tempfile::TempDir,
}

impl Stores {
    pub fn new(tag: &str) -> Stores {
        let dir = tempfile::tempdir().unwrap();
        let mut list: Vec<(&'static str, Arc<dyn EventStore>)> = vec![
            (
                "file",
                Arc::new(Store::open(dir.path().join("file")).unwrap()),
            ),
            (
                "sqlite",
                Arc::new(SqliteStore::open(dir.path().join("events.db")).unwrap()),
            ),
        ];
        let pg = postgres_url().map(|url| {
            let options = PostgresOptions::new()
                .schema(format!("bench_{tag}_{}", std::process::id()))
                .pool_size(20);
            // Whatever an earlier run with the same pid left.
            eventfile_postgres::migrate::down(&url, &options, 0).unwrap();
            let store = PostgresStore::open_with(&url, options.clone()).unwrap();
            list.push(("postgres", Arc::new(store)));
            (url, options)
        });
        Stores { list, pg, dir }
    }
}

impl Drop for Stores {
    fn drop(&mut self) {
        self.list.clear();
        if let Some((url, options)) = &self.pg {
            let _ = eventfile_postgres::migrate::down(url, options, 0);
        }
    }
}

/// 20,000 events in 200 streams of 100 (appended in batches of 100, stream after stream),
/// 20 types: a type selects 1,000 events spread over the log, a tag (`customer=c7`) 400.
pub fn fill(store: &dyn EventStore) {
    for s in 0..200u64 {
        let batch: Vec<NewEvent> = (0..100).map(|k| event(s * 100 + k)).collect();
        store
            .append(&format!("order-{s}"), ExpectedVersion::NoStream, batch)
            .unwrap();
    }
}

/// The stream the stream reads read (100 events).
pub const STREAM: &str = "order-117";
/// The type the type filters select (1,000 events).
pub const TYPE: &str = "Type7";
/// The tag the tag filters select (400 events).
pub const TAG: &str = "customer=c7";

const COLUMNS_PG: &str = "seq, id, stream, version, type, time, data::text, meta::text, tags";
const COLUMNS_LITE: &str = "seq, id, stream, version, type, time, data, meta, tags";
/// For a stream read: the stream's name is known, so it is not fetched (as the backends do).
const STREAM_COLUMNS_PG: &str =
    "seq, id, NULL::text, version, type, time, data::text, meta::text, tags";
const STREAM_COLUMNS_LITE: &str = "seq, id, NULL, version, type, time, data, meta, tags";

/// The hand-written queries on PostgreSQL, each `$1` the stream, type or tag, each giving the
/// same answer as the backend on any store (events a deletion hides left out): one stream by
/// version, a type by seq, a tag by seq (the GIN index on `tags`). The deletion test of the
/// type and tag queries is skipped whole while `deletions` is empty, as the backend skips it
/// (`live_gated`): without the gate, the hand side probed `deletions` for every row and the
/// backend did not.
pub fn pg_sql() -> [String; 3] {
    let live = "(NOT EXISTS (SELECT 1 FROM deletions) OR NOT EXISTS (
                 SELECT 1 FROM deletions d WHERE d.stream = e.stream AND e.version < d.before))";
    [
        format!(
            "SELECT {STREAM_COLUMNS_PG} FROM events WHERE stream = $1 AND version >= coalesce(
                 (SELECT before FROM deletions WHERE stream = $1), 1)
             ORDER BY version"
        ),
        format!("SELECT {COLUMNS_PG} FROM events e WHERE type = $1 AND {live} ORDER BY seq"),
        format!(
            "SELECT {COLUMNS_PG} FROM events e WHERE tags @> ARRAY[$1::text] AND {live}
             ORDER BY seq"
        ),
    ]
}

/// The same three on SQLite (`?1`): the tag through the `(tag, seq)` side table, joined and
/// read in its key's order, as the backend reads it (the `seq IN (...)` form builds a temporary
/// index of the tag's seqs first), and the same gate on the deletion test.
pub fn sqlite_sql() -> [String; 3] {
    let live = "(NOT EXISTS (SELECT 1 FROM deletions) OR NOT EXISTS (
                 SELECT 1 FROM deletions d WHERE d.stream = e.stream AND e.version < d.deleted_before))";
    [
        format!(
            "SELECT {STREAM_COLUMNS_LITE} FROM events WHERE stream = ?1 AND version >= coalesce(
                 (SELECT max(deleted_before) FROM deletions WHERE stream = ?1), 1)
             ORDER BY version"
        ),
        format!("SELECT {COLUMNS_LITE} FROM events e WHERE type = ?1 AND {live} ORDER BY seq"),
        format!(
            "SELECT e.seq, e.id, e.stream, e.version, e.type, e.time, e.data, e.meta, e.tags
             FROM events e JOIN event_tags t ON t.seq = e.seq AND t.tag = ?1
             WHERE {live} ORDER BY t.seq"
        ),
    ]
}

/// Metadata and tags as the backends read them: the empty object and array, the common case,
/// are not parsed.
fn meta_of(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, HandError> {
    Ok(match text {
        "{}" => serde_json::Map::new(),
        m => serde_json::from_str(m)?,
    })
}

/// A PostgreSQL row of the hand-written queries as an event; `stream` names the stream of a
/// stream read, whose rows do not carry it.
fn pg_event(r: &postgres::Row, stream: Option<&str>) -> Result<RecordedEvent, HandError> {
    let data: String = r.try_get(6)?;
    let meta: &str = r.try_get(7)?;
    Ok(RecordedEvent {
        seq: u64::try_from(r.try_get::<_, i64>(0)?)?,
        id: r.try_get(1)?,
        stream: match stream {
            Some(s) => s.to_owned(),
            None => r.try_get(2)?,
        },
        version: u64::try_from(r.try_get::<_, i64>(3)?)?,
        event_type: r.try_get(4)?,
        time: r.try_get(5)?,
        data: RawValue::from_string(data)?,
        meta: meta_of(meta)?,
        tags: r.try_get(8)?,
    })
}

/// The events of a hand-written PostgreSQL query (prepared once) for `arg`; `stream_read`
/// when `arg` is the stream of a stream read.
pub fn pg_events(
    c: &mut postgres::Client,
    sql: &postgres::Statement,
    arg: &str,
    stream_read: bool,
) -> Result<Vec<RecordedEvent>, HandError> {
    let stream = stream_read.then_some(arg);
    c.query(sql, &[&arg])?
        .iter()
        .map(|r| pg_event(r, stream))
        .collect()
}

/// A SQLite row of the hand-written queries as an event (metadata and tags parsed from
/// SQLite's buffer, as the backend does); `stream` as for [`pg_event`].
fn sqlite_event(r: &rusqlite::Row<'_>, stream: Option<&str>) -> Result<RecordedEvent, HandError> {
    let data: String = r.get(6)?;
    let tags = match r.get_ref(8)?.as_str()? {
        "[]" => Vec::new(),
        t => serde_json::from_str(t)?,
    };
    Ok(RecordedEvent {
        seq: u64::try_from(r.get::<_, i64>(0)?)?,
        id: r.get(1)?,
        stream: match stream {
            Some(s) => s.to_owned(),
            None => r.get(2)?,
        },
        version: u64::try_from(r.get::<_, i64>(3)?)?,
        event_type: r.get(4)?,
        time: r.get(5)?,
        data: RawValue::from_string(data)?,
        meta: meta_of(r.get_ref(7)?.as_str()?)?,
        tags,
    })
}

/// The events of a hand-written SQLite query (prepared once per connection: rusqlite's
/// statement cache) for `arg`.
pub fn sqlite_events(
    c: &rusqlite::Connection,
    sql: &str,
    arg: &str,
    stream_read: bool,
) -> Result<Vec<RecordedEvent>, HandError> {
    let stream = stream_read.then_some(arg);
    let mut st = c.prepare_cached(sql)?;
    st.query([arg])?
        .and_then(|r| sqlite_event(r, stream))
        .collect()
}

/// The plain baseline's table on the server: a copy of the backend's `events` table with all
/// its indexes and constraints (`LIKE ... INCLUDING ALL`), so both sides store the same row
/// with the same index upkeep; seq and version come from sequences, with no checks.
pub fn plain_table(url: &str, schema: &str) -> String {
    let table = format!("plain_events_{}", std::process::id());
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table};
         DROP SEQUENCE IF EXISTS {table}_seq;
         DROP SEQUENCE IF EXISTS {table}_version;
         CREATE SEQUENCE {table}_seq;
         CREATE SEQUENCE {table}_version;
         CREATE TABLE {table} (LIKE {schema}.events INCLUDING ALL);
         ALTER TABLE {table} ALTER COLUMN seq SET DEFAULT nextval('{table}_seq');"
    ))
    .unwrap();
    table
}

/// Drops what [`plain_table`] made.
pub fn drop_plain_table(url: &str, table: &str) {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "DROP TABLE {table}; DROP SEQUENCE {table}_seq; DROP SEQUENCE {table}_version"
    ))
    .unwrap();
}

/// The plain baseline's statement: one INSERT, prepared once per connection as any
/// application would.
pub fn plain_statement(c: &mut postgres::Client, table: &str, stream: &str) -> postgres::Statement {
    c.prepare(&format!(
        "INSERT INTO {table} (id, stream, version, type, time, data, meta, tags, more)
         VALUES ($1, '{stream}', nextval('{table}_version'), $2, 0, $3::text::json, '{{}}', $4,
                 false)"
    ))
    .unwrap()
}

/// A plain peer's lone append: [`plain_insert`] or [`plain_insert_tx`].
pub type PlainInsert = fn(&mut postgres::Client, &postgres::Statement, &NewEvent);

/// One plain INSERT of `e` on `c`: in its own autocommit transaction on a client (one round
/// trip), or in the caller's transaction.
pub fn plain_insert(
    c: &mut impl postgres::GenericClient,
    insert: &postgres::Statement,
    e: &NewEvent,
) {
    let id = uuid::Uuid::now_v7().to_string();
    let tags: Vec<String> = e.tags().to_vec();
    c.execute(insert, &[&id, &e.event_type(), &e.data_json(), &tags])
        .unwrap();
}

/// One plain INSERT of `e` in a transaction of its own, as an application writes one:
/// `client.transaction()`, `execute`, `commit` (`BEGIN`, the INSERT, `COMMIT`: three round
/// trips, one commit).
pub fn plain_insert_tx(c: &mut postgres::Client, insert: &postgres::Statement, e: &NewEvent) {
    let mut tx = c.transaction().unwrap();
    plain_insert(&mut tx, insert, e);
    tx.commit().unwrap();
}
