//! Imports: events as another store recorded them (ids, streams, versions, times, data, meta,
//! tags kept), each taking the next seq, all in one transaction holding the writers' lock, with the
//! checks of [`check_import`] and [`import_step`].
//!
//! It owns the import's writes; nothing else writes rows with times it did not choose.

use std::collections::HashMap;

use eventfile::backend::{ImportStep, check_import, check_tombstone, import_step};
use eventfile::{ImportResult, RecordedEvent, Result};

use crate::error::pg;
use crate::lookup::{lock_writers, stream_state};
use crate::sql::{pos, stored};
use crate::store::PostgresStore;

/// Writes what of `events` the store does not hold yet; see [`eventfile::EventStore::import`].
pub(crate) fn import(store: &PostgresStore, events: &[RecordedEvent]) -> Result<ImportResult> {
    check_import(events)?;
    crate::append::check_meta(events.iter().map(|e| (e.event_type.as_str(), &e.meta)))?;
    let s = store.schema();
    let mut conn = store.shared().pool.get()?;
    let mut tx = conn.transaction().map_err(pg)?;
    let (head, mut last_time) = lock_writers(&mut tx, s)?;
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let existing: HashMap<String, (String, u64)> = tx
        .query(
            &format!("SELECT id, stream, version FROM {s}.events WHERE id = ANY ($1)"),
            &[&ids],
        )
        .map_err(pg)?
        .iter()
        .map(|r| {
            Ok((
                r.get(0),
                (r.get(1), stored(r.get(2), "an event's version")?),
            ))
        })
        .collect::<Result<_>>()?;
    let mut pending: HashMap<&str, u64> = HashMap::new();
    let mut write: Vec<&RecordedEvent> = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let known = existing.get(&e.id).map(|(s, v)| (s.as_str(), *v));
        // What is already there is skipped before the stream's state is looked at, so a
        // re-import skips it even in a stream tombstoned since.
        let current = match (known, pending.get(e.stream.as_str())) {
            (Some(_), _) => 0,
            (None, Some(&v)) => v,
            (None, None) => {
                let (version, deletion) = stream_state(&mut tx, s, &e.stream)?;
                check_tombstone(&e.stream, deletion)?;
                version
            }
        };
        if import_step(i, e, known, current, last_time)? == ImportStep::Write {
            pending.insert(&e.stream, e.version);
            last_time = e.time;
            write.push(e);
        }
    }
    let skipped = (events.len() - write.len()) as u64;
    let new_head = head + write.len() as u64;
    if !write.is_empty() {
        let seq: Vec<i64> = (0..write.len() as u64).map(|i| pos(head + 1 + i)).collect();
        let id: Vec<&str> = write.iter().map(|e| e.id.as_str()).collect();
        let stream: Vec<&str> = write.iter().map(|e| e.stream.as_str()).collect();
        let version: Vec<i64> = write.iter().map(|e| pos(e.version)).collect();
        let kind: Vec<&str> = write.iter().map(|e| e.event_type.as_str()).collect();
        let time: Vec<i64> = write.iter().map(|e| e.time).collect();
        let data: Vec<&str> = write.iter().map(|e| e.data.get()).collect();
        let meta: Vec<String> = write
            .iter()
            .map(|e| serde_json::Value::Object(e.meta.clone()).to_string())
            .collect();
        let tags: Vec<String> = write
            .iter()
            .map(|e| serde_json::Value::from(e.tags.clone()).to_string())
            .collect();
        tx.execute(
            &format!(
                "INSERT INTO {s}.events (seq, id, stream, version, type, time, data, meta, tags, more)
                 SELECT u.seq, u.id, u.stream, u.version, u.type, u.time, u.data::json, u.meta::json,
                        ARRAY(SELECT json_array_elements_text(u.tags::json)), false
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                             $6::bigint[], $7::text[], $8::text[], $9::text[])
                      AS u(seq, id, stream, version, type, time, data, meta, tags)"
            ),
            &[&seq, &id, &stream, &version, &kind, &time, &data, &meta, &tags],
        )
        .map_err(pg)?;
        tx.execute(
            &format!(
                "INSERT INTO {s}.streams (stream, version)
                 SELECT u.stream, max(u.version) FROM unnest($1::text[], $2::bigint[]) AS u(stream, version)
                 GROUP BY u.stream
                 ON CONFLICT (stream) DO UPDATE SET version = excluded.version"
            ),
            &[&stream, &version],
        )
        .map_err(pg)?;
        let channel = s.trim_matches('"');
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&channel, &new_head.to_string()],
        )
        .map_err(pg)?;
    }
    tx.commit().map_err(pg)?;
    store.shared().watch.advance(new_head);
    Ok(ImportResult {
        written: write.len() as u64,
        skipped,
        head: new_head,
    })
}
