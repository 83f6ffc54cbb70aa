//! Appends: the checks and writes of one request inside the write transaction, and the group
//! commit that lets one thread commit every request queued meanwhile in one transaction (one
//! fsync), each in its own savepoint so that a refused request writes nothing and disturbs no
//! other.
//!
//! This module owns the write path of appends and the one place that publishes a new head
//! after a commit ([`Inner::publish`]); the rules themselves come from `eventfile::backend`.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use eventfile::backend::{self, Prepared};
use eventfile::{AppendRequest, AppendResult, Error, MultiAppendResult, Result};
use rusqlite::{Connection, TransactionBehavior};

use crate::connection::Sql;
use crate::rows::{self, Insert, LIVE, Lookup, int};
use crate::sql::Where;
use crate::store::Inner;

/// The appends waiting for a commit, and whether a thread is committing a batch now: one
/// thread commits at a time, and whatever queues meanwhile goes into the next batch.
#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    done: Condvar,
}

#[derive(Default)]
pub(crate) struct QueueState {
    jobs: Vec<Arc<Job>>,
    committing: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, g: MutexGuard<'a, QueueState>) -> MutexGuard<'a, QueueState> {
        self.done.wait(g).unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        self.done.notify_all();
    }
}

/// The committing thread's turn: over when dropped, waking the waiting appenders (whose
/// outcomes are set, or who commit the next batch).
struct Turn<'a>(&'a Queue);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.lock().committing = false;
        self.0.wake();
    }
}

/// A request waiting for a commit, and where its outcome goes.
pub(crate) struct Job {
    request: AppendRequest,
    prepared: Prepared,
    outcome: Mutex<Option<Result<MultiAppendResult>>>,
}

impl Job {
    fn new(request: AppendRequest, prepared: Prepared) -> Arc<Job> {
        Arc::new(Job {
            request,
            prepared,
            outcome: Mutex::new(None),
        })
    }

    fn is_done(&self) -> bool {
        self.outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// The outcome, once committed (or an abort, if the job was somehow left out).
    fn outcome(&self) -> Result<MultiAppendResult> {
        self.outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| {
                Err(Error::Aborted {
                    op: "append_request",
                    reason: "the request was not in the committed batch".to_owned(),
                })
            })
    }

    fn set(&self, r: Result<MultiAppendResult>) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
    }
}

impl Inner {
    /// Appends `request`: queued, then committed by whichever thread holds the writer next,
    /// together with every request queued by then.
    pub(crate) fn append(&self, request: AppendRequest) -> Result<MultiAppendResult> {
        let prepared = backend::prepare(&request)?;
        self.check_poisoned()?;
        let job = Job::new(request, prepared);
        self.commit_queued(std::slice::from_ref(&job));
        job.outcome()
    }

    /// Appends independent requests (`EventStore::append_requests`): every one that passes
    /// its own checks is queued at once, in order, so that they share one commit; one that
    /// does not gets its refusal and the rest go on.
    pub(crate) fn append_many(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<MultiAppendResult>> {
        backend::append_prepared(
            requests,
            |_| self.check_poisoned(),
            |queued| {
                let jobs: Vec<Arc<Job>> = queued.into_iter().map(|(r, p)| Job::new(r, p)).collect();
                self.commit_queued(&jobs);
                jobs.iter().map(|j| j.outcome()).collect()
            },
        )
    }

    /// Queues `jobs` and returns once each has its outcome: committed by another thread, or
    /// by this one when it finds no commit running.
    fn commit_queued(&self, jobs: &[Arc<Job>]) {
        if jobs.is_empty() {
            return;
        }
        let mut q = self.queue.lock();
        q.jobs.extend(jobs.iter().cloned());
        loop {
            if jobs.iter().all(|j| j.is_done()) {
                return;
            }
            if !q.committing {
                break;
            }
            // Another thread is committing: it takes these jobs with the next batch, or this
            // thread does once it is done.
            q = self.queue.wait(q);
        }
        q.committing = true;
        let batch = std::mem::take(&mut q.jobs);
        drop(q);
        // Hands the turn on however this commit ends, a panic included.
        let _turn = Turn(&self.queue);
        let head = {
            let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            commit_jobs(&mut conn, self, &batch)
        };
        if let Some(head) = head {
            self.publish(head);
        }
    }

    /// Refuses writes once a commit failed in the I/O layer: a retried fsync can falsely
    /// succeed on Linux, so the handle must be reopened.
    pub(crate) fn check_poisoned(&self) -> Result<()> {
        match &*self.poisoned.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Poisons the handle if a commit's failure was an I/O error (not a busy lock or a full
    /// disk, after which SQLite has rolled back cleanly).
    pub(crate) fn poison_on(&self, e: &rusqlite::Error) {
        if let rusqlite::Error::SqliteFailure(f, _) = e
            && f.code == rusqlite::ErrorCode::SystemIoFailure
        {
            *self.poisoned.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
        }
    }

    /// Events up to `head` are committed: wakes subscriptions and `wait_for`.
    pub(crate) fn publish(&self, head: u64) {
        self.watch.advance(head);
    }
}

/// Commits `jobs` in one transaction, setting each job's outcome; the head after the commit,
/// if anything was written.
fn commit_jobs(conn: &mut Connection, inner: &Inner, jobs: &[Arc<Job>]) -> Option<u64> {
    let path = &inner.path;
    let fail_all = |e: &Error| {
        for j in jobs {
            j.set(Err(copy_error(e)));
        }
    };
    // A commit that failed in the I/O layer while these waited in the queue poisoned the
    // handle: they are refused, as the handle refuses every write from then on.
    if let Err(e) = inner.check_poisoned() {
        fail_all(&e);
        return None;
    }
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            fail_all(&crate::connection::db_error(path, e));
            return None;
        }
    };
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let sp = match tx.savepoint() {
            Ok(sp) => sp,
            Err(e) => {
                fail_all(&crate::connection::db_error(path, e));
                return None;
            }
        };
        let r = append_one(&sp, path, &job.request, &job.prepared);
        let r = match r {
            Ok(r) => sp.commit().sql(path).map(|()| r),
            // Dropping the savepoint rolls it back: the request writes nothing.
            Err(e) => {
                drop(sp);
                Err(e)
            }
        };
        if let Err(e) = &r
            && tx.is_autocommit()
        {
            // SQLite rolled the whole transaction back (`SQLITE_FULL`, `SQLITE_IOERR`,
            // `SQLITE_NOMEM`, a trigger's `RAISE(ROLLBACK)`), not just the statement: the
            // requests before this one wrote nothing either, and a savepoint now would open a
            // transaction of its own, committing the next request alone while the batch is
            // answered as failed.
            fail_all(e);
            return None;
        }
        outcomes.push(r);
    }
    let written = outcomes
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|r| !r.replayed)
        .map(|r| r.last_seq)
        .max();
    let started = std::time::Instant::now();
    if let Err(e) = tx.commit() {
        inner.poison_on(&e);
        // A failed COMMIT may or may not have reached the file: its outcome is unknown, an
        // I/O error (retry with the same ids or key), not `Database` ("nothing written").
        let e = match crate::connection::db_error(path, e) {
            Error::Database { reason, .. } => Error::Io {
                op: "commit",
                path: path.to_owned(),
                source: std::io::Error::other(format!("the commit failed: {reason}")),
            },
            other => other,
        };
        fail_all(&e);
        return None;
    }
    // With synchronous=FULL the commit is the sync: a commit counts as one.
    inner.metrics.synced(started.elapsed());
    for r in outcomes.iter().flatten().filter(|r| !r.replayed) {
        inner.metrics.appended(r.last_seq + 1 - r.first_seq, 0);
    }
    for (job, r) in jobs.iter().zip(outcomes) {
        job.set(r);
    }
    written
}

/// An error for each request of a failed commit, of the same kind as `e` (a busy lock stays
/// `Unavailable`, an I/O error stays one: clients decide on the kind whether to retry).
fn copy_error(e: &Error) -> Error {
    match e {
        Error::NotAStore { path, reason } => Error::NotAStore {
            path: path.clone(),
            reason: reason.clone(),
        },
        Error::Unreachable { backend, reason } => Error::Unreachable {
            backend,
            reason: reason.clone(),
        },
        Error::Poisoned { cause } => Error::Poisoned {
            cause: cause.clone(),
        },
        Error::Io { op, path, source } => Error::Io {
            op,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        other => Error::Database {
            backend: "sqlite",
            reason: other.to_string(),
        },
    }
}

/// One request inside the write transaction: a retry by key or ids returns the first result;
/// otherwise the expectations and the condition are checked, then the events written.
fn append_one(
    conn: &Connection,
    path: &Path,
    request: &AppendRequest,
    prepared: &Prepared,
) -> Result<MultiAppendResult> {
    let mut lookup = Lookup { conn, path };
    if let Some(key) = &request.key
        && let Some(first) = rows::seq_of_key(conn, path, key)?
    {
        return backend::replay_by_key(&mut lookup, request, key, first);
    }
    if prepared.own_ids {
        let found = prepared
            .ids
            .iter()
            .flatten()
            .map(|id| rows::seq_of_id(conn, path, id))
            .collect::<Result<Vec<_>>>()?;
        if let Some(r) = backend::replay_by_ids(&mut lookup, request, prepared, &found)? {
            return Ok(r);
        }
    }
    let mut versions = Vec::with_capacity(request.streams.len());
    for part in &request.streams {
        let actual = rows::stream_version(conn, path, &part.stream)?;
        backend::check_tombstone(&part.stream, rows::deletion(conn, path, &part.stream)?)?;
        backend::check_expected(&part.stream, part.expected, actual)?;
        versions.push(actual);
    }
    let head = rows::head(conn, path)?;
    if let Some(c) = &request.condition {
        if c.after > head {
            return Err(Error::InvalidInput {
                what: "append condition",
                reason: format!("position {} is above the head seq {head}", c.after),
            });
        }
        if let Some(seq) = first_match(conn, path, &c.query, c.after, head)? {
            return Err(Error::ConditionFailed {
                seq,
                after: c.after,
            });
        }
    }
    let time = backend::commit_time(rows::last_time(conn, path)?);
    let total: usize = request.streams.iter().map(|p| p.events.len()).sum();
    let first_seq = head + 1;
    let mut seq = first_seq;
    let mut results = Vec::with_capacity(request.streams.len());
    for ((part, ids), base) in request.streams.iter().zip(&prepared.ids).zip(versions) {
        for (i, (e, id)) in part.events.iter().zip(ids).enumerate() {
            rows::insert(
                conn,
                path,
                &Insert {
                    seq,
                    id,
                    stream: &part.stream,
                    version: base + 1 + i as u64,
                    event_type: e.event_type(),
                    time,
                    data: e.data(),
                    meta: e.meta(),
                    tags: e.tags(),
                    more: seq - first_seq + 1 < total as u64,
                    key: request.key.as_deref().filter(|_| seq == first_seq),
                },
            )?;
            seq += 1;
        }
        let n = part.events.len() as u64;
        results.push((
            part.stream.clone(),
            AppendResult {
                version: base + n,
                first_seq: seq - n,
                last_seq: seq - 1,
                replayed: false,
            },
        ));
    }
    Ok(MultiAppendResult {
        streams: results,
        first_seq,
        last_seq: seq - 1,
        replayed: false,
    })
}

/// The first live event after `after` (and up to `head`) that `query` selects: its direction,
/// limit and cursor ignored, its seq range kept.
pub(crate) fn first_match(
    conn: &Connection,
    path: &Path,
    query: &eventfile::Query,
    after: u64,
    head: u64,
) -> Result<Option<u64>> {
    let v = backend::view(query);
    let lo = v.from_seq.unwrap_or(0).max(after.saturating_add(1)).max(1);
    let hi = v.to_seq.unwrap_or(u64::MAX).min(head);
    if lo > hi {
        return Ok(None);
    }
    let mut w = Where::keyed(true);
    w.set_range(int(lo), int(hi));
    w.filters(&v);
    w.and(LIVE);
    let sql = format!(
        "SELECT e.seq FROM {} WHERE {} ORDER BY {} LIMIT 1",
        w.from(),
        w.clause(),
        w.seq_key()
    );
    let mut stmt = conn.prepare_cached(&sql).sql(path)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(w.params.iter()))
        .sql(path)?;
    match rows.next().sql(path)? {
        Some(r) => Ok(Some(r.get::<_, u64>(0).sql(path)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each request of a failed commit gets an error of the commit error's kind: a busy lock
    /// was answered `Database` (kind `Io`), and clients that retry on `Unavailable` did not.
    #[test]
    fn a_failed_commits_error_keeps_its_kind_for_every_request() {
        let path = Path::new("/x/ev.db");
        let cases = [
            Error::Unreachable {
                backend: "sqlite",
                reason: "busy".into(),
            },
            Error::Poisoned {
                cause: "disk I/O error".into(),
            },
            Error::Io {
                op: "commit",
                path: path.to_owned(),
                source: std::io::Error::other("the commit failed"),
            },
            Error::Database {
                backend: "sqlite",
                reason: "constraint".into(),
            },
        ];
        for e in &cases {
            assert_eq!(copy_error(e).kind(), e.kind(), "{e}");
        }
    }
}
