//! What the write paths read under the writers' lock: the head, a stream's version and deletion
//! state, the log by seq for the retry rules ([`LogLookup`]), and the first event a DCB
//! condition matches. Each is one statement on whatever client or transaction is given.
//!
//! It owns these reads and never writes.

use eventfile::backend::{Deletion, LogLookup, Logged, view};
use eventfile::{Query, Result};
use postgres::GenericClient;

use crate::error::pg;
use crate::sql::{COLUMNS, Param, filters, live, logged, pos, pos_param, stored};

/// Takes the writers' lock for the rest of the transaction (what serialises writers: the same
/// advisory lock `append_batch` takes) and returns the head seq and the newest commit time,
/// read after the lock was granted, so they are those of the last writer's commit.
pub(crate) fn lock_writers<C: GenericClient>(c: &mut C, schema: &str) -> Result<(u64, i64)> {
    c.execute(&format!("SELECT {schema}.lock_writers()"), &[])
        .map_err(pg)?;
    let row = c
        .query_opt(
            &format!("SELECT e.seq, e.time FROM {schema}.events e ORDER BY e.seq DESC LIMIT 1"),
            &[],
        )
        .map_err(pg)?;
    match row {
        Some(r) => Ok((stored(r.get(0), "the head seq")?, r.get(1))),
        None => Ok((0, 0)),
    }
}

/// The head seq: the newest committed event's, without a lock.
pub(crate) fn head<C: GenericClient>(c: &mut C, schema: &str) -> Result<u64> {
    let row = c
        .query_one(
            &format!("SELECT coalesce(max(e.seq), 0) FROM {schema}.events e"),
            &[],
        )
        .map_err(pg)?;
    stored(row.get(0), "the head seq")
}

/// A stream's version (0: none) and what is deleted of it.
pub(crate) fn stream_state<C: GenericClient>(
    c: &mut C,
    schema: &str,
    stream: &str,
) -> Result<(u64, Option<Deletion>)> {
    let row = c
        .query_one(
            &format!(
                "SELECT (SELECT version FROM {schema}.events WHERE stream = $1
                         ORDER BY version DESC LIMIT 1),
                        d.before, d.tombstone, d.soft
                 FROM (SELECT 1) AS one
                 LEFT JOIN {schema}.deletions d ON d.stream = $1"
            ),
            &[&stream],
        )
        .map_err(pg)?;
    let version: Option<i64> = row.get(0);
    let before: Option<i64> = row.get(1);
    let tombstone: Option<bool> = row.get(2);
    let soft: Option<bool> = row.get(3);
    let deletion = match before {
        Some(b) => Some(Deletion {
            before: stored(b, "a deletion's first live version")?,
            tombstone: tombstone.unwrap_or(false),
            soft: soft.unwrap_or(false),
        }),
        None => None,
    };
    let version = version.map_or(Ok(0), |v| stored(v, "a stream's version"))?;
    Ok((version, deletion))
}

/// The seq of the first live event after `after` (and up to `head`) that `query` selects:
/// its direction, limit and cursor ignored, its seq range narrowing.
pub(crate) fn first_match<C: GenericClient>(
    c: &mut C,
    schema: &str,
    query: &Query,
    after: u64,
    head: u64,
) -> Result<Option<u64>> {
    let v = view(query);
    let lo = v.from_seq.unwrap_or(1).max(after.saturating_add(1)).max(1);
    let hi = v.to_seq.unwrap_or(u64::MAX).min(head);
    if lo > hi {
        return Ok(None);
    }
    let mut params: Vec<Param> = Vec::new();
    let cond = filters(&v, &mut params);
    params.push(pos_param(lo));
    params.push(pos_param(hi));
    let n = params.len();
    let sql = format!(
        "SELECT e.seq FROM {schema}.events e WHERE {cond} AND {} AND e.seq BETWEEN ${} AND ${n}
         ORDER BY e.seq LIMIT 1",
        live(schema),
        n - 1
    );
    let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
        params.iter().map(|p| &*p.0 as _).collect();
    let row = c.query_opt(&sql, &refs).map_err(pg)?;
    row.map(|r| stored(r.get(0), "an event's seq")).transpose()
}

/// The log by seq, deleted events included, on one client: what the retry rules read.
pub(crate) struct Lookup<'a, C: GenericClient> {
    pub(crate) client: &'a mut C,
    pub(crate) schema: &'a str,
}

impl<C: GenericClient> LogLookup for Lookup<'_, C> {
    fn logged(&mut self, seq: u64) -> Result<Option<Logged>> {
        let row = self
            .client
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM {}.events e WHERE e.seq = $1",
                    self.schema
                ),
                &[&pos(seq)],
            )
            .map_err(pg)?;
        row.as_ref().map(logged).transpose()
    }
}
