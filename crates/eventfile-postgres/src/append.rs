//! The append statements and decisions: a group of requests turned into ONE call of the
//! schema's `append_batch` function (or `append_group`, for a group whose requests share no
//! stream, key or id, or `append_one`, for a lone request on one stream), in autocommit: one
//! round trip and one commit for the whole group. The writers' advisory lock is taken inside
//! that transaction, so writers (this store's, other processes') are serialised and seqs commit
//! in order. Which requests form a group, and who sends it, is `group.rs`'s.
//!
//! A request the function refuses (a key or id already in the log, a tombstone, a version that
//! does not match) wrote nothing; it is decided alone, in a transaction of its own holding the
//! same lock, by the rules of `eventfile::backend` (retry by key or ids, conflict, duplicate id,
//! tombstone), as is every request with a DCB condition.
//!
//! This module owns the append calls and the append decisions; it never reads for a caller.

use eventfile::backend::{Prepared, check_expected, check_tombstone, replay_by_ids, replay_by_key};
use eventfile::{
    AppendRequest, AppendResult, Error, ExpectedVersion, MultiAppendResult, NewEvent, Result,
};
use postgres::{Client, GenericClient, Statement};

use crate::error::{database, is_unique_violation, pg};
use crate::lookup::{Lookup, first_match, lock_writers, stream_state};
use crate::sql::{pos, unpos};

/// One stream's part of a call, with its events' ids.
pub(crate) struct Part<'a> {
    pub(crate) stream: &'a str,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: &'a [NewEvent],
    pub(crate) ids: &'a [String],
}

/// One request of a call: its key and parts.
pub(crate) struct Item<'a> {
    pub(crate) key: Option<&'a str>,
    pub(crate) parts: Vec<Part<'a>>,
}

impl<'a> Item<'a> {
    pub(crate) fn of(request: &'a AppendRequest, prepared: &'a Prepared) -> Item<'a> {
        Item {
            key: request.key.as_deref(),
            parts: request
                .streams
                .iter()
                .zip(&prepared.ids)
                .map(|(p, ids)| Part {
                    stream: &p.stream,
                    expected: p.expected,
                    events: &p.events,
                    ids,
                })
                .collect(),
        }
    }
}

/// Refuses metadata holding U+0000 (NUL) in a string or a key, as bad input naming the event,
/// before anything is sent. The metadata indexes evaluate `meta ->> 'correlation_id'` (and
/// `causation_id`, `actor`) on every insert, and PostgreSQL's `json` operators turn every
/// string of the value into `text`, which cannot hold NUL: the server refused such a row with
/// a bare `22P05`. The other backends store it.
pub(crate) fn check_meta<'a>(
    events: impl IntoIterator<Item = (&'a str, &'a serde_json::Map<String, serde_json::Value>)>,
) -> Result<()> {
    fn has_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(has_nul),
            serde_json::Value::Object(m) => map_has_nul(m),
            _ => false,
        }
    }
    fn map_has_nul(m: &serde_json::Map<String, serde_json::Value>) -> bool {
        m.iter().any(|(k, v)| k.contains('\0') || has_nul(v))
    }
    for (i, (event_type, meta)) in events.into_iter().enumerate() {
        if map_has_nul(meta) {
            return Err(Error::InvalidInput {
                what: "metadata",
                reason: format!(
                    "event {i} (`{}`): a metadata string holds U+0000 (NUL), which the \
                     PostgreSQL backend cannot store: its metadata indexes read every string of \
                     the value as text",
                    event_type.escape_debug()
                ),
            });
        }
    }
    Ok(())
}

/// What the function did with one request: its first seq and each part's new version, or
/// `None` if it refused it (and wrote nothing).
pub(crate) type Outcome = Option<(u64, Vec<u64>)>;

/// The statement calling the schema's append function.
pub(crate) fn call_sql(schema: &str) -> String {
    format!("SELECT {schema}.append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
}

/// The statement calling the set-based append function, for independent groups.
pub(crate) fn group_sql(schema: &str) -> String {
    format!("SELECT {schema}.append_group($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
}

/// Whether no two requests of `items` share a stream, a key or an event id: then checking
/// each against the log alone (set-based, in `append_group`) decides as checking them one
/// after the other would.
pub(crate) fn independent(items: &[Item<'_>]) -> bool {
    let mut streams = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    items.iter().all(|item| {
        item.key.is_none_or(|k| keys.insert(k))
            && item
                .parts
                .iter()
                .all(|p| streams.insert(p.stream) && p.ids.iter().all(|id| ids.insert(id.as_str())))
    })
}

fn expected_code(e: ExpectedVersion) -> i64 {
    match e {
        ExpectedVersion::Any => -1,
        ExpectedVersion::NoStream => -2,
        ExpectedVersion::StreamExists => -3,
        ExpectedVersion::Exact(v) => pos(v),
    }
}

/// The events of `parts` as the append functions take them: ids, types, data, metadata and
/// tags (each an array literal of text), in order.
#[derive(Default)]
struct Events<'a> {
    id: Vec<&'a str>,
    event_type: Vec<&'a str>,
    data: Vec<&'a str>,
    meta: Vec<String>,
    tags: Vec<String>,
}

impl<'a> Events<'a> {
    fn push(&mut self, p: &Part<'a>) {
        for (e, id) in p.events.iter().zip(p.ids) {
            self.id.push(id.as_str());
            self.event_type.push(e.event_type());
            self.data.push(e.data_json());
            self.meta
                .push(serde_json::Value::Object(e.meta().clone()).to_string());
            self.tags.push(array_literal(e.tags()));
        }
    }
}

/// Calls the append function once for `items`, in whatever transaction `c` is in (none: its
/// own, committed on return). Answers the requests in order; `append_batch` answers none after
/// the first it refuses (they were not attempted), `append_group` answers all.
pub(crate) fn call<C: GenericClient>(
    c: &mut C,
    stmt: &Statement,
    items: &[Item<'_>],
) -> std::result::Result<Vec<Outcome>, postgres::Error> {
    let mut r_key: Vec<Option<&str>> = Vec::with_capacity(items.len());
    let (mut p_req, mut p_stream, mut p_expected, mut p_count) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut ev = Events::default();
    for (r, item) in items.iter().enumerate() {
        r_key.push(item.key);
        for p in &item.parts {
            p_req.push(r as i32 + 1);
            p_stream.push(p.stream);
            p_expected.push(expected_code(p.expected));
            p_count.push(p.events.len() as i32);
            ev.push(p);
        }
    }
    let row = c.query_one(
        stmt,
        &[
            &r_key,
            &p_req,
            &p_stream,
            &p_expected,
            &p_count,
            &ev.id,
            &ev.event_type,
            &ev.data,
            &ev.meta,
            &ev.tags,
        ],
    )?;
    let out: Vec<i64> = row.get(0);
    let mut at = out.iter().copied();
    // `append_batch` answers the requests up to the first it refuses, and no more: the rest
    // were not attempted (migration 8), and the answer is shorter than `items`.
    Ok(items
        .iter()
        .map_while(|item| {
            let first = unpos(at.next()?);
            let versions: Vec<u64> = (&mut at).take(item.parts.len()).map(unpos).collect();
            Some((first > 0).then_some((first, versions)))
        })
        .collect())
}

/// The statement calling the lean append function, for a lone request on one stream.
pub(crate) fn one_sql(schema: &str) -> String {
    format!("SELECT {schema}.append_one($1, $2, $3, $4, $5, $6, $7, $8, $9)")
}

/// Calls the lean append function for a request of one part `p` and key `key`, in autocommit;
/// `check_ids`: the caller named the events' ids (generated ones are fresh).
pub(crate) fn call_one(
    c: &mut Client,
    stmt: &Statement,
    key: Option<&str>,
    p: &Part<'_>,
    check_ids: bool,
) -> std::result::Result<Outcome, postgres::Error> {
    let mut ev = Events::default();
    ev.push(p);
    let row = c.query_one(
        stmt,
        &[
            &key,
            &p.stream,
            &expected_code(p.expected),
            &check_ids,
            &ev.id,
            &ev.event_type,
            &ev.data,
            &ev.meta,
            &ev.tags,
        ],
    )?;
    let out: Vec<i64> = row.get(0);
    let first = unpos(out.first().copied().unwrap_or(0));
    let version = unpos(out.get(1).copied().unwrap_or(0));
    Ok((first > 0).then(|| (first, vec![version])))
}

/// `tags` as PostgreSQL's text form of a `text[]`: each element quoted, `"` and `\\` escaped.
pub(crate) fn array_literal(tags: &[String]) -> String {
    let mut out = String::from("{");
    for (i, t) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in t.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// The result of a written request, from the function's outcome.
pub(crate) fn written(request: &AppendRequest, first: u64, versions: &[u64]) -> MultiAppendResult {
    let mut seq = first;
    let streams = request
        .streams
        .iter()
        .zip(versions)
        .map(|(p, &version)| {
            let n = p.events.len() as u64;
            let r = AppendResult {
                version,
                first_seq: seq,
                last_seq: seq + n - 1,
                replayed: false,
            };
            seq += n;
            (p.stream.clone(), r)
        })
        .collect();
    MultiAppendResult {
        streams,
        first_seq: first,
        last_seq: seq - 1,
        replayed: false,
    }
}

/// Decides one request in a transaction of its own under the writers' lock, with every rule of
/// `eventfile::backend`, in the order the in-memory store applies them: a known key, then
/// known ids (a retry or a duplicate), then each stream's tombstone and expected version, then
/// the condition; and writes it if it passes.
pub(crate) fn decide(
    client: &mut Client,
    stmt: &Statement,
    schema: &str,
    request: &AppendRequest,
    prepared: &Prepared,
) -> Result<MultiAppendResult> {
    let mut tx = client.transaction().map_err(pg)?;
    let (head, _) = lock_writers(&mut tx, schema)?;
    if let Some(key) = request.key.as_deref() {
        let first = tx
            .query_opt(
                &format!("SELECT first_seq FROM {schema}.keys WHERE key = $1"),
                &[&key],
            )
            .map_err(pg)?;
        if let Some(row) = first {
            let mut log = Lookup {
                client: &mut tx,
                schema,
            };
            return replay_by_key(&mut log, request, key, unpos(row.get(0)));
        }
    }
    if prepared.own_ids {
        let ids: Vec<&str> = prepared.ids.iter().flatten().map(String::as_str).collect();
        let rows = tx
            .query(
                &format!("SELECT id, seq FROM {schema}.events WHERE id = ANY ($1)"),
                &[&ids],
            )
            .map_err(pg)?;
        let known: std::collections::HashMap<String, u64> =
            rows.iter().map(|r| (r.get(0), unpos(r.get(1)))).collect();
        let found: Vec<Option<u64>> = ids.iter().map(|id| known.get(*id).copied()).collect();
        let mut log = Lookup {
            client: &mut tx,
            schema,
        };
        if let Some(r) = replay_by_ids(&mut log, request, prepared, &found)? {
            return Ok(r);
        }
    }
    for p in &request.streams {
        let (version, deletion) = stream_state(&mut tx, schema, &p.stream)?;
        check_tombstone(&p.stream, deletion)?;
        check_expected(&p.stream, p.expected, version)?;
    }
    if let Some(c) = &request.condition {
        if c.after > head {
            return Err(Error::InvalidInput {
                what: "append condition",
                reason: format!("position {} is above the head seq {head}", c.after),
            });
        }
        if let Some(seq) = first_match(&mut tx, schema, &c.query, c.after, head)? {
            return Err(Error::ConditionFailed {
                seq,
                after: c.after,
            });
        }
    }
    let items = [Item::of(request, prepared)];
    let outcome = match call(&mut tx, stmt, &items) {
        Ok(o) => o,
        Err(e) if is_unique_violation(&e, "events_stream_version_key") => {
            // Only a writer that bypassed the writers' lock could make this happen: the
            // stream moved under the check. The conflict, with the version it moved to.
            drop(tx);
            let p = &request.streams[0];
            let (actual, _) = stream_state(client, schema, &p.stream)?;
            return Err(Error::WrongExpectedVersion {
                stream: p.stream.clone(),
                expected: p.expected,
                actual,
            });
        }
        Err(e) => return Err(pg(e)),
    };
    let Some(Some((first, versions))) = outcome.into_iter().next() else {
        return Err(database(
            "append_batch refused an append whose checks had passed under the lock",
        ));
    };
    tx.commit().map_err(pg)?;
    Ok(written(request, first, &versions))
}
