//! A query in SQL: [`QueryView`] translated to a `WHERE` clause with parameters (never a value
//! written into the text), and a row decoded into a [`RecordedEvent`].
//!
//! It owns the column list, the liveness condition (deletion) and the filter translation; it
//! never runs a statement.

use eventfile::backend::{Logged, QueryView};
use eventfile::{RecordedEvent, Result};
use postgres::Row;
use postgres::types::{ToSql, Type};
use serde_json::value::RawValue;

use crate::error::database;

/// A parameter owned by a statement that outlives the call that built it (a paged read), with
/// its type (so that the statement can be sent unprepared, planned for its values, in one round
/// trip: [`postgres::Client::query_typed`]).
pub(crate) type Param = (Box<dyn ToSql + Send + Sync>, Type);

/// A position parameter.
pub(crate) fn pos_param(n: u64) -> Param {
    (Box::new(pos(n)), Type::INT8)
}

/// The parameters as `query_typed` takes them.
pub(crate) fn typed(params: &[Param]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|(v, t)| (&**v as &(dyn ToSql + Sync), t.clone()))
        .collect()
}

/// The columns an event read selects, in the order [`event`] decodes.
pub(crate) const EVENT_COLUMNS: &str =
    "e.seq, e.id, e.stream, e.version, e.type, e.time, e.data::text, e.meta::text, e.tags";

/// [`EVENT_COLUMNS`] for a read of one stream: its name is known, so a NULL stands in its
/// place ([`event_of`] copies the name): fewer bytes per row, one text column fewer decoded.
pub(crate) const STREAM_EVENT_COLUMNS: &str =
    "e.seq, e.id, NULL::text, e.version, e.type, e.time, e.data::text, e.meta::text, e.tags";

/// NULLs of the types of [`EVENT_COLUMNS`], for a row of a `UNION ALL` that holds no event.
pub(crate) const EVENT_NULLS: &str = "NULL::bigint, NULL::text, NULL::text, NULL::bigint, \
     NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text[]";

/// [`EVENT_COLUMNS`] and whether the append continues: what [`logged`] decodes.
pub(crate) const COLUMNS: &str =
    "e.seq, e.id, e.stream, e.version, e.type, e.time, e.data::text, e.meta::text, e.tags, e.more";

/// True for an event that no deletion hides.
pub(crate) fn live(schema: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM {schema}.deletions d WHERE d.stream = e.stream AND e.version < d.before)"
    )
}

/// [`live`] behind a gate: the same test, skipped whole while the schema holds no deletion at
/// all (an uncorrelated `NOT EXISTS`, an init plan run once per statement, in the statement's
/// snapshot: exact whatever the table holds).
///
/// It is faster only while `deletions` is empty, so a query uses it only while the store saw
/// the table empty at its previous query ([`crate::store`]); the choice never changes an
/// answer. On a `deletions` table the planner knows to be empty (after a `VACUUM`), [`live`]
/// becomes a nested loop that starts a scan of it for every selected row, about 0.5 µs each:
/// the server's CPU for a page of 1,000 events of a type was 1.5 ms without any test, 1.9 ms
/// with [`live`], 1.5 ms with this one. With deletions in the table this one tests each row by a
/// subplan, which the planner makes a sequential scan of a one-page table (67 deletions: 6.2
/// against 1.8 ms) and a primary-key probe of a large one (100,000: 3.7 ms, where [`live`]
/// hashes the whole table for every page, 31 ms).
pub(crate) fn live_gated(schema: &str) -> String {
    format!(
        "(NOT EXISTS (SELECT 1 FROM {schema}.deletions) OR {})",
        live(schema)
    )
}

/// The conditions of a query's filters, `AND`ed, with their parameters numbered from
/// `params.len() + 1`. The seq range, direction, limit and cursor are the caller's.
pub(crate) fn filters(v: &QueryView<'_>, params: &mut Vec<Param>) -> String {
    let mut out: Vec<String> = Vec::new();
    let push = |params: &mut Vec<Param>, p: Box<dyn ToSql + Send + Sync>, t: Type| {
        params.push((p, t));
        format!("${}", params.len())
    };
    if !v.streams.is_empty() {
        let p = push(params, Box::new(v.streams.to_vec()), Type::TEXT_ARRAY);
        out.push(format!("e.stream = ANY ({p})"));
    }
    if let Some(prefix) = v.prefix {
        let p = push(params, Box::new(prefix.to_owned()), Type::TEXT);
        out.push(format!("starts_with(e.stream, {p})"));
    }
    if let [t] = v.types {
        // Equality rather than `= ANY` of one: the planner reads `(type, seq)` in seq order.
        let p = push(params, Box::new(t.clone()), Type::TEXT);
        out.push(format!("e.type = {p}"));
    } else if !v.types.is_empty() {
        let p = push(params, Box::new(v.types.to_vec()), Type::TEXT_ARRAY);
        out.push(format!("e.type = ANY ({p})"));
    }
    if !v.tags.is_empty() {
        let p = push(params, Box::new(v.tags.to_vec()), Type::TEXT_ARRAY);
        out.push(format!("e.tags @> {p}"));
    }
    if !v.items.is_empty() {
        let mut any = Vec::new();
        for item in v.items {
            let mut all = Vec::new();
            if !item.types.is_empty() {
                let p = push(params, Box::new(item.types.clone()), Type::TEXT_ARRAY);
                all.push(format!("e.type = ANY ({p})"));
            }
            if !item.tags.is_empty() {
                let p = push(params, Box::new(item.tags.clone()), Type::TEXT_ARRAY);
                all.push(format!("e.tags @> {p}"));
            }
            if all.is_empty() {
                all.push("true".to_owned());
            }
            any.push(format!("({})", all.join(" AND ")));
        }
        out.push(format!("({})", any.join(" OR ")));
    }
    if let Some(t) = v.since {
        let p = push(params, Box::new(t), Type::INT8);
        out.push(format!("e.time >= {p}"));
    }
    if let Some(t) = v.until {
        let p = push(params, Box::new(t), Type::INT8);
        out.push(format!("e.time < {p}"));
    }
    for (key, want) in [
        ("correlation_id", v.correlation),
        ("causation_id", v.causation),
        ("actor", v.actor),
    ] {
        if let Some(w) = want {
            let p = push(params, Box::new(w.to_owned()), Type::TEXT);
            // These keys hold strings only (`eventfile::INDEXED_META_KEYS`, checked on append
            // and import), so `->>` compares their values exactly.
            out.push(format!("e.meta ->> '{key}' = {p}"));
        }
    }
    if out.is_empty() {
        "true".to_owned()
    } else {
        out.join(" AND ")
    }
}

/// A seq or version as the server's `bigint` (positions above `i64::MAX` never exist).
pub(crate) fn pos(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `bigint` position the backend's own statements computed (never negative).
pub(crate) fn unpos(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A seq, version, position or count read from a stored row: a negative one, which only a
/// change made outside eventfile writes (the tables have no checks), is an error naming it,
/// never read as 0 (a snapshot at version 0 would have every event replayed on top of it; a
/// checkpoint at 0, the whole log).
pub(crate) fn stored(n: i64, what: &str) -> Result<u64> {
    u64::try_from(n).map_err(|_| {
        database(format!(
            "{what} is {n} in the database, below 0: it was changed outside eventfile"
        ))
    })
}

/// The event in a row selected with [`EVENT_COLUMNS`] (or [`COLUMNS`]).
pub(crate) fn event(row: &Row) -> Result<RecordedEvent> {
    event_at(row, 0)
}

/// The event in the columns of `row` from `base` on, selected with [`EVENT_COLUMNS`].
pub(crate) fn event_at(row: &Row, base: usize) -> Result<RecordedEvent> {
    event_of(row, base, None)
}

/// The event in the columns of `row` from `base` on, selected with [`EVENT_COLUMNS`], or with
/// [`STREAM_EVENT_COLUMNS`] when `stream` names the stream of every row (its column is then
/// not read). Empty metadata, the common case, is not parsed.
pub(crate) fn event_of(row: &Row, base: usize, stream: Option<&str>) -> Result<RecordedEvent> {
    let get = |e: postgres::Error| database(format!("reading an event row: {e}"));
    let data: String = row.try_get(base + 6).map_err(get)?;
    let meta = match row.try_get::<_, &str>(base + 7).map_err(get)? {
        "{}" => serde_json::Map::new(),
        m => serde_json::from_str(m)
            .map_err(|e| database(format!("an event row's metadata is not a JSON object: {e}")))?,
    };
    Ok(RecordedEvent {
        seq: stored(row.try_get(base).map_err(get)?, "an event's seq")?,
        id: row.try_get(base + 1).map_err(get)?,
        stream: match stream {
            Some(s) => s.to_owned(),
            None => row.try_get(base + 2).map_err(get)?,
        },
        version: stored(row.try_get(base + 3).map_err(get)?, "an event's version")?,
        event_type: row.try_get(base + 4).map_err(get)?,
        time: row.try_get(base + 5).map_err(get)?,
        data: RawValue::from_string(data)
            .map_err(|e| database(format!("an event row's data is not JSON: {e}")))?,
        meta,
        tags: row.try_get(base + 8).map_err(get)?,
    })
}

/// The event in a row selected with [`COLUMNS`], with whether its append continues.
pub(crate) fn logged(row: &Row) -> Result<Logged> {
    Ok(Logged {
        event: event(row)?,
        more: row
            .try_get(9)
            .map_err(|e| database(format!("reading an event row: {e}")))?,
    })
}
