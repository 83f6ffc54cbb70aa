//! The listings: streams with their versions, event types and tags with their live event
//! counts, each in byte order (`COLLATE "C"`, as the other backends sort), after a name, at
//! most a limit. It owns these statements and never writes.

use eventfile::{Result, StreamInfo, TermCount};

use crate::error::{database, pg};
use crate::sql::{live, stored};
use crate::store::PostgresStore;

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Streams starting with `prefix` whose last event is live (deletion removes a prefix of a
/// stream), after `after`.
pub(crate) fn streams(
    store: &PostgresStore,
    prefix: &str,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<StreamInfo>> {
    let s = store.schema();
    let rows = store
        .shared()
        .pool
        .get()?
        .query(
            &format!(
                "SELECT t.stream, v.version FROM {s}.streams t
                 CROSS JOIN LATERAL (SELECT ev.version FROM {s}.events ev
                                     WHERE ev.stream = t.stream
                                     ORDER BY ev.version DESC LIMIT 1) v
                 WHERE starts_with(t.stream, $1)
                   AND ($2::text IS NULL OR t.stream COLLATE \"C\" > $2::text COLLATE \"C\")
                   AND NOT EXISTS (SELECT 1 FROM {s}.deletions d
                                   WHERE d.stream = t.stream AND v.version < d.before)
                 ORDER BY t.stream COLLATE \"C\" LIMIT $3"
            ),
            &[&prefix, &after, &limit(n)],
        )
        .map_err(pg)?;
    rows.iter()
        .map(|r| {
            Ok(StreamInfo {
                stream: r.get(0),
                version: stored(r.get(1), "a stream's version")?,
            })
        })
        .collect()
}

/// Live events per type.
pub(crate) fn event_types(
    store: &PostgresStore,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<TermCount>> {
    let s = store.schema();
    terms(
        store,
        &format!(
            "SELECT e.type, count(*) FROM {s}.events e
             WHERE {live} AND ($1::text IS NULL OR e.type COLLATE \"C\" > $1::text COLLATE \"C\")
             GROUP BY e.type ORDER BY e.type COLLATE \"C\" LIMIT $2",
            live = live(s)
        ),
        after,
        n,
    )
}

/// Live events per tag, a tag repeated on one event counted once.
pub(crate) fn tags(store: &PostgresStore, after: Option<&str>, n: usize) -> Result<Vec<TermCount>> {
    let s = store.schema();
    terms(
        store,
        &format!(
            "SELECT x.tag, count(*) FROM {s}.events e
             CROSS JOIN LATERAL (SELECT DISTINCT unnest(e.tags) AS tag) x
             WHERE {live} AND ($1::text IS NULL OR x.tag COLLATE \"C\" > $1::text COLLATE \"C\")
             GROUP BY x.tag ORDER BY x.tag COLLATE \"C\" LIMIT $2",
            live = live(s)
        ),
        after,
        n,
    )
}

fn terms(
    store: &PostgresStore,
    sql: &str,
    after: Option<&str>,
    n: usize,
) -> Result<Vec<TermCount>> {
    let rows = store
        .shared()
        .pool
        .get()?
        .query(sql, &[&after, &limit(n)])
        .map_err(pg)?;
    // A NULL name (a `NULL` inside a tags array written by something else) is an error, not
    // a panic.
    rows.iter()
        .map(|r| {
            Ok(TermCount {
                name: r
                    .try_get(0)
                    .map_err(|e| database(format!("reading a catalog row: {e}")))?,
                count: stored(r.get(1), "a count")?,
            })
        })
        .collect()
}
