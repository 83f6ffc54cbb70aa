//! A query in SQL: [`QueryView`] translated to a `WHERE` clause with parameters (never a value
//! written into the text), and a row decoded into a [`RecordedEvent`].
//!
//! It owns the column list, the liveness condition (deletion) and the filter translation; it
//! never runs a statement.

use eventfile::backend::{Logged, QueryView};
use eventfile::{RecordedEvent, Result};
use postgres::Row;
use postgres::types::ToSql;
use serde_json::value::RawValue;

use crate::error::database;

/// A parameter owned by a statement that outlives the call that built it (a paged read).
pub(crate) type Param = Box<dyn ToSql + Send + Sync>;

/// The columns every event read selects, in the order [`event`] decodes.
pub(crate) const COLUMNS: &str =
    "e.seq, e.id, e.stream, e.version, e.type, e.time, e.data::text, e.meta::text, e.tags, e.more";

/// True for an event that no deletion hides.
pub(crate) fn live(schema: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM {schema}.deletions d WHERE d.stream = e.stream AND e.version < d.before)"
    )
}

/// The conditions of a query's filters, `AND`ed, with their parameters numbered from
/// `params.len() + 1`. The seq range, direction, limit and cursor are the caller's.
pub(crate) fn filters(v: &QueryView<'_>, params: &mut Vec<Param>) -> String {
    let mut out: Vec<String> = Vec::new();
    let push = |params: &mut Vec<Param>, p: Param| {
        params.push(p);
        format!("${}", params.len())
    };
    if !v.streams.is_empty() {
        let p = push(params, Box::new(v.streams.to_vec()));
        out.push(format!("e.stream = ANY ({p})"));
    }
    if let Some(prefix) = v.prefix {
        let p = push(params, Box::new(prefix.to_owned()));
        out.push(format!("starts_with(e.stream, {p})"));
    }
    if !v.types.is_empty() {
        let p = push(params, Box::new(v.types.to_vec()));
        out.push(format!("e.type = ANY ({p})"));
    }
    if !v.tags.is_empty() {
        let p = push(params, Box::new(v.tags.to_vec()));
        out.push(format!("e.tags @> {p}"));
    }
    if !v.items.is_empty() {
        let mut any = Vec::new();
        for item in v.items {
            let mut all = Vec::new();
            if !item.types.is_empty() {
                let p = push(params, Box::new(item.types.clone()));
                all.push(format!("e.type = ANY ({p})"));
            }
            if !item.tags.is_empty() {
                let p = push(params, Box::new(item.tags.clone()));
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
        let p = push(params, Box::new(t));
        out.push(format!("e.time >= {p}"));
    }
    if let Some(t) = v.until {
        let p = push(params, Box::new(t));
        out.push(format!("e.time < {p}"));
    }
    for (key, want) in [
        ("correlation_id", v.correlation),
        ("causation_id", v.causation),
        ("actor", v.actor),
    ] {
        if let Some(w) = want {
            let p = push(params, Box::new(w.to_owned()));
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

/// A `bigint` position read back.
pub(crate) fn unpos(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The event in a row selected with [`COLUMNS`].
pub(crate) fn event(row: &Row) -> Result<RecordedEvent> {
    Ok(logged(row)?.event)
}

/// The event in a row selected with [`COLUMNS`], with whether its append continues.
pub(crate) fn logged(row: &Row) -> Result<Logged> {
    let get = |e: postgres::Error| database(format!("reading an event row: {e}"));
    let data: String = row.try_get(6).map_err(get)?;
    let meta: String = row.try_get(7).map_err(get)?;
    let event = RecordedEvent {
        seq: unpos(row.try_get(0).map_err(get)?),
        id: row.try_get(1).map_err(get)?,
        stream: row.try_get(2).map_err(get)?,
        version: unpos(row.try_get(3).map_err(get)?),
        event_type: row.try_get(4).map_err(get)?,
        time: row.try_get(5).map_err(get)?,
        data: RawValue::from_string(data)?,
        meta: serde_json::from_str(&meta)?,
        tags: row.try_get(8).map_err(get)?,
    };
    Ok(Logged {
        event,
        more: row.try_get(9).map_err(get)?,
    })
}
