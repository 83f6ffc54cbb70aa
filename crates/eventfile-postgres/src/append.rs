//! The appender: one thread per store that owns one connection and turns every append queued
//! meanwhile into ONE call of the schema's `append_batch` function (or `append_group`, for a
//! group whose requests share no stream, key or id), in autocommit: one round trip and one
//! commit for the whole group. The writers' advisory lock is taken inside that transaction, so
//! writers (this store's, other processes') are serialised and seqs commit in order; the group
//! makes a serialised writer still commit many appends at once.
//!
//! A request the function refuses (a key or id already in the log, a tombstone, a version that
//! does not match) wrote nothing; it is decided alone, in a transaction of its own holding the
//! same lock, by the rules of `eventfile::backend` (retry by key or ids, conflict, duplicate id,
//! tombstone), as is every request with a DCB condition.
//!
//! This module owns the group commit and the append decisions; it never reads for a caller.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

use eventfile::backend::{Prepared, check_expected, check_tombstone, replay_by_ids, replay_by_key};
use eventfile::subscription::HeadWatch;
use eventfile::{
    AppendRequest, AppendResult, Error, ExpectedVersion, MultiAppendResult, NewEvent, Result,
};
use postgres::{Client, Config, GenericClient, Statement};

use crate::error::{BACKEND, database, is_unique_violation, pg};
use crate::lookup::{Lookup, first_match, lock_writers, stream_state};
use crate::pool::connect;
use crate::sql::{pos, unpos};

/// Most requests one group carries.
const MAX_GROUP: usize = 512;

/// An append waiting for the appender, and where its outcome goes.
pub(crate) struct Job {
    pub(crate) request: AppendRequest,
    pub(crate) prepared: Prepared,
    pub(crate) reply: SyncSender<Result<MultiAppendResult>>,
}

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
    fn of(request: &'a AppendRequest, prepared: &'a Prepared) -> Item<'a> {
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

/// What the function did with one request: its first seq and each part's new version, or
/// `None` if it refused it (and wrote nothing).
pub(crate) type Outcome = Option<(u64, Vec<u64>)>;

/// The statement calling the schema's append function.
pub(crate) fn call_sql(schema: &str) -> String {
    format!("SELECT {schema}.append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
}

/// The statement calling the set-based append function, for independent groups.
fn group_sql(schema: &str) -> String {
    format!("SELECT {schema}.append_group($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
}

/// Whether no two requests of `items` share a stream, a key or an event id: then checking
/// each against the log alone (set-based, in `append_group`) decides as checking them one
/// after the other would.
fn independent(items: &[Item<'_>]) -> bool {
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

/// Calls the append function once for `items`, in whatever transaction `c` is in (none: its
/// own, committed on return).
pub(crate) fn call<C: GenericClient>(
    c: &mut C,
    stmt: &Statement,
    items: &[Item<'_>],
) -> std::result::Result<Vec<Outcome>, postgres::Error> {
    let mut r_key: Vec<Option<&str>> = Vec::with_capacity(items.len());
    let (mut p_req, mut p_stream, mut p_expected, mut p_count) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut e_id, mut e_type, mut e_data, mut e_meta, mut e_tags) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (r, item) in items.iter().enumerate() {
        r_key.push(item.key);
        for p in &item.parts {
            p_req.push(r as i32 + 1);
            p_stream.push(p.stream);
            p_expected.push(expected_code(p.expected));
            p_count.push(p.events.len() as i32);
            for (e, id) in p.events.iter().zip(p.ids) {
                e_id.push(id.as_str());
                e_type.push(e.event_type());
                e_data.push(e.data_json());
                e_meta.push(serde_json::Value::Object(e.meta().clone()).to_string());
                e_tags.push(array_literal(e.tags()));
            }
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
            &e_id,
            &e_type,
            &e_data,
            &e_meta,
            &e_tags,
        ],
    )?;
    let out: Vec<i64> = row.get(0);
    let mut at = out.iter().copied();
    Ok(items
        .iter()
        .map(|item| {
            let first = unpos(at.next().unwrap_or(0));
            let versions: Vec<u64> = (&mut at).take(item.parts.len()).map(unpos).collect();
            (first > 0).then_some((first, versions))
        })
        .collect())
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
fn written(request: &AppendRequest, first: u64, versions: &[u64]) -> MultiAppendResult {
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

/// The same error again, for every request of a group that failed whole.
fn again(e: &Error) -> Error {
    match e {
        Error::Unreachable { reason, .. } => Error::Unreachable {
            backend: BACKEND,
            reason: reason.clone(),
        },
        other => database(other.to_string()),
    }
}

/// The appender's connection and its prepared calls (one by one, set-based), made again
/// after the connection broke.
struct Conn {
    config: Config,
    schema: String,
    live: Option<Live>,
}

struct Live {
    client: Client,
    batch: Statement,
    group: Statement,
}

impl Live {
    fn new(mut client: Client, schema: &str) -> Result<Live> {
        let batch = client.prepare(&call_sql(schema)).map_err(pg)?;
        let group = client.prepare(&group_sql(schema)).map_err(pg)?;
        Ok(Live {
            client,
            batch,
            group,
        })
    }
}

impl Conn {
    fn get(&mut self) -> Result<&mut Live> {
        if self.live.as_ref().is_some_and(|l| l.client.is_closed()) {
            self.live = None;
        }
        if self.live.is_none() {
            self.live = Some(Live::new(connect(&self.config)?, &self.schema)?);
        }
        self.live
            .as_mut()
            .ok_or_else(|| database("no appender connection"))
    }
}

/// Runs the appender until every sender is gone: takes the first waiting job, then whatever
/// else is queued, and commits them as one group.
pub(crate) fn run(
    config: Config,
    schema: String,
    first: Option<Client>,
    jobs: Receiver<Job>,
    watch: Arc<HeadWatch>,
) {
    let mut conn = Conn {
        config,
        live: None,
        schema,
    };
    if let Some(client) = first {
        conn.live = Live::new(client, &conn.schema).ok();
    }
    while let Ok(job) = jobs.recv() {
        let mut group = vec![job];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, group, &watch);
    }
}

/// Commits a group: the plain requests in one call, then each other one alone. Every outcome
/// is sent after the watch has been advanced past what was written.
fn commit_group(conn: &mut Conn, group: Vec<Job>, watch: &HeadWatch) {
    let (plain, mut alone): (Vec<Job>, Vec<Job>) = group
        .into_iter()
        .partition(|j| j.request.condition.is_none());
    let mut replies: Vec<(Job, Result<MultiAppendResult>)> = Vec::with_capacity(plain.len());
    if !plain.is_empty() {
        let items: Vec<Item<'_>> = plain
            .iter()
            .map(|j| Item::of(&j.request, &j.prepared))
            .collect();
        let set_based = items.len() > 1 && independent(&items);
        let outcome = conn.get().and_then(|live| {
            let stmt = if set_based { &live.group } else { &live.batch };
            call(&mut live.client, stmt, &items).map_err(pg)
        });
        drop(items);
        match outcome {
            Ok(outcomes) => {
                for (job, o) in plain.into_iter().zip(outcomes) {
                    match o {
                        Some((first, versions)) => {
                            let r = written(&job.request, first, &versions);
                            replies.push((job, Ok(r)));
                        }
                        None => alone.push(job),
                    }
                }
            }
            // A statement the server refused (the transaction rolled back whole): each
            // request is decided alone.
            Err(Error::Database { .. }) => alone.extend(plain),
            // Unreachable, or the connection broke: the outcome is unknown to every request,
            // and the next group starts on a new connection.
            Err(e) => {
                conn.live = None;
                for job in plain {
                    let err = again(&e);
                    replies.push((job, Err(err)));
                }
            }
        }
    }
    publish(watch, &replies);
    for (job, r) in replies {
        let _ = job.reply.send(r);
    }
    for job in alone {
        let schema = conn.schema.clone();
        let r = conn
            .get()
            .and_then(|live| decide(&mut live.client, &live.batch, &schema, &job));
        match &r {
            Ok(r) => watch.advance(r.last_seq),
            Err(Error::Unreachable { .. }) => conn.live = None,
            Err(_) => {}
        }
        let _ = job.reply.send(r);
    }
}

/// Advances the watch to the newest seq the replies wrote.
fn publish(watch: &HeadWatch, replies: &[(Job, Result<MultiAppendResult>)]) {
    let head = replies
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .filter(|r| !r.replayed)
        .map(|r| r.last_seq)
        .max();
    if let Some(h) = head {
        watch.advance(h);
    }
}

/// Decides one request in a transaction of its own under the writers' lock, with every rule of
/// `eventfile::backend`, in the order the in-memory store applies them: a known key, then
/// known ids (a retry or a duplicate), then each stream's tombstone and expected version, then
/// the condition; and writes it if it passes.
fn decide(
    client: &mut Client,
    stmt: &Statement,
    schema: &str,
    job: &Job,
) -> Result<MultiAppendResult> {
    let request = &job.request;
    let prepared = &job.prepared;
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
