//! Group commit without a thread: every append joins a queue; whichever caller finds no group
//! being committed becomes the leader, takes everything queued, commits it as one group on the
//! store's appending connection (`append.rs`'s calls), and hands each request its outcome. The
//! callers that queued meanwhile wait, and the first of them to find its request still queued
//! when the leader is done leads the next group. A lone append therefore runs on its caller's
//! thread, with no hand-off to another thread and back (two wake-ups, which on a busy machine
//! cost as much as the server's work); concurrent appends still share one commit.
//!
//! It owns the queue, the leadership, the appending connection and the publication of the head
//! to the store's watch; it never decides an append (`append.rs` does).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use eventfile::backend::Prepared;
use eventfile::subscription::HeadWatch;
use eventfile::{AppendRequest, Error, MultiAppendResult, Result};
use postgres::{Client, Config, Statement};

use crate::append::{
    Item, Outcome, call, call_one, call_sql, decide, group_sql, independent, one_sql, written,
};
use crate::error::{BACKEND, database, pg};
use crate::pool::connect;

/// Most requests one group carries.
const MAX_GROUP: usize = 512;

/// The store's appends: the queue and the connection they are committed on.
pub(crate) struct Appender {
    state: Mutex<State>,
    /// Signalled when a leader is done: outcomes are ready, and the next leader may start.
    done: Condvar,
    config: Config,
    schema: String,
    watch: Arc<HeadWatch>,
    /// Appends written and group commits made, for `EventStore::metrics`.
    pub(crate) metrics: eventfile::Counters,
}

struct State {
    queue: Vec<Job>,
    /// Whether a leader is committing a group now (it holds the connection).
    leading: bool,
    /// The appending connection, when no leader holds it (`None` until first used, or after it
    /// broke).
    conn: Option<Live>,
    /// Outcomes not yet taken by their callers, by ticket.
    outcomes: HashMap<u64, Result<MultiAppendResult>>,
    next_ticket: u64,
}

/// An append waiting for a leader.
struct Job {
    ticket: u64,
    request: AppendRequest,
    prepared: Prepared,
}

/// The appending connection and its prepared calls (one by one, set-based, lone), made again
/// after the connection broke.
struct Live {
    client: Client,
    batch: Statement,
    group: Statement,
    one: Statement,
}

impl Live {
    fn new(mut client: Client, schema: &str) -> Result<Live> {
        let batch = client.prepare(&call_sql(schema)).map_err(pg)?;
        let group = client.prepare(&group_sql(schema)).map_err(pg)?;
        let one = client.prepare(&one_sql(schema)).map_err(pg)?;
        Ok(Live {
            client,
            batch,
            group,
            one,
        })
    }
}

/// The connection a leader holds while it commits a group.
struct Conn<'a> {
    config: &'a Config,
    schema: &'a str,
    live: Option<Live>,
}

impl Conn<'_> {
    fn get(&mut self) -> Result<&mut Live> {
        if self.live.as_ref().is_some_and(|l| l.client.is_closed()) {
            self.live = None;
        }
        if self.live.is_none() {
            self.live = Some(Live::new(connect(self.config)?, self.schema)?);
        }
        self.live
            .as_mut()
            .ok_or_else(|| database("no appending connection"))
    }
}

impl Appender {
    /// An appender committing on `first` (the connection that opened the store), or on a new
    /// connection made from `config` when needed.
    pub(crate) fn new(
        config: Config,
        schema: String,
        first: Client,
        watch: Arc<HeadWatch>,
    ) -> Appender {
        let conn = Live::new(first, &schema).ok();
        Appender {
            state: Mutex::new(State {
                queue: Vec::new(),
                leading: false,
                conn,
                outcomes: HashMap::new(),
                next_ticket: 0,
            }),
            done: Condvar::new(),
            config,
            schema,
            watch,
            metrics: eventfile::Counters::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `request` (checked into `prepared`) with whatever else is queued meanwhile, and
    /// returns once it is committed and the watch shows it.
    pub(crate) fn append(
        &self,
        request: AppendRequest,
        prepared: Prepared,
    ) -> Result<MultiAppendResult> {
        self.append_many(vec![(request, prepared)])
            .pop()
            .expect("one outcome per request")
    }

    /// Appends independent requests (`EventStore::append_requests`): all queued at once, in
    /// order, so that they go into the same group (or consecutive groups past [`MAX_GROUP`]);
    /// returns each one's outcome, in order, once every one has its own.
    pub(crate) fn append_many(
        &self,
        items: Vec<(AppendRequest, Prepared)>,
    ) -> Vec<Result<MultiAppendResult>> {
        if items.is_empty() {
            return Vec::new();
        }
        let mut s = self.lock();
        let first = s.next_ticket;
        let tickets = first..first + items.len() as u64;
        s.next_ticket = tickets.end;
        for (ticket, (request, prepared)) in tickets.clone().zip(items) {
            s.queue.push(Job {
                ticket,
                request,
                prepared,
            });
        }
        loop {
            if tickets.clone().all(|t| s.outcomes.contains_key(&t)) {
                return tickets
                    .map(|t| s.outcomes.remove(&t).expect("checked above"))
                    .collect();
            }
            if !s.leading {
                // Some of these requests are still queued (a leader inserts every outcome
                // before it stops leading): lead the next group.
                s.leading = true;
                let live = s.conn.take();
                let n = s.queue.len().min(MAX_GROUP);
                let group: Vec<Job> = s.queue.drain(..n).collect();
                drop(s);
                let mut lead = Lead {
                    appender: self,
                    tickets: group.iter().map(|j| j.ticket).collect(),
                    conn: Conn {
                        config: &self.config,
                        schema: &self.schema,
                        live,
                    },
                    outcomes: Vec::new(),
                };
                let started = std::time::Instant::now();
                lead.outcomes = commit_group(&mut lead.conn, group, &self.watch);
                // One group commit: the server's WAL flush is its sync.
                self.metrics.synced(started.elapsed());
                for (_, r) in &lead.outcomes {
                    if let Ok(r) = r
                        && !r.replayed
                    {
                        self.metrics.appended(r.last_seq + 1 - r.first_seq, 0);
                    }
                }
                drop(lead);
                s = self.lock();
                continue;
            }
            s = self.done.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A leader's group: on drop (done, or unwinding from a panic) it hands back the connection,
/// gives every request of the group an outcome and lets the next leader start.
struct Lead<'a> {
    appender: &'a Appender,
    tickets: Vec<u64>,
    conn: Conn<'a>,
    outcomes: Vec<(u64, Result<MultiAppendResult>)>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let mut s = self.appender.lock();
        s.conn = self.conn.live.take();
        for (ticket, outcome) in self.outcomes.drain(..) {
            s.outcomes.insert(ticket, outcome);
        }
        for ticket in &self.tickets {
            s.outcomes
                .entry(*ticket)
                .or_insert_with(|| Err(database("the append's group commit panicked")));
        }
        s.leading = false;
        drop(s);
        self.appender.done.notify_all();
    }
}

/// Commits a group in its order, each request judged after the ones before it (as
/// `append_requests` promises): the plain requests up to the next with a condition in one call;
/// a request with a condition alone, in its place; a request the call refused alone, before
/// anything after it is sent (`append_batch` stops at its first refusal, and the requests
/// after it are sent again). Returns every request's outcome, after the watch has been
/// advanced past what was written.
fn commit_group(
    conn: &mut Conn<'_>,
    group: Vec<Job>,
    watch: &HeadWatch,
) -> Vec<(u64, Result<MultiAppendResult>)> {
    let mut replies: Vec<(u64, Result<MultiAppendResult>)> = Vec::with_capacity(group.len());
    let mut pending: VecDeque<Job> = group.into();
    // Requests per call: cut to what the last call answered when it stopped at a refusal,
    // doubled after a call that answered all. Without it, a run of refusals (a retried group of
    // keyed requests on one stream) sent the whole rest of the group again after each one.
    let mut limit = usize::MAX;
    while let Some(front) = pending.front() {
        if front.request.condition.is_some() {
            let job = pending.pop_front().expect("a front request");
            replies.push(decide_alone(conn, job, watch));
            continue;
        }
        let n = pending
            .iter()
            .take(limit)
            .take_while(|j| j.request.condition.is_none())
            .count();
        let run: Vec<Job> = pending.drain(..n).collect();
        let items: Vec<Item<'_>> = run
            .iter()
            .map(|j| Item::of(&j.request, &j.prepared))
            .collect();
        let outcome: Result<Vec<Outcome>> = conn.get().and_then(|live| {
            match items.as_slice() {
                // A lone request on one stream: the lean call.
                [item] if item.parts.len() == 1 => call_one(
                    &mut live.client,
                    &live.one,
                    item.key,
                    &item.parts[0],
                    run[0].prepared.own_ids,
                )
                .map(|o| vec![o]),
                _ => {
                    let stmt = if items.len() > 1 && independent(&items) {
                        &live.group
                    } else {
                        &live.batch
                    };
                    call(&mut live.client, stmt, &items)
                }
            }
            .map_err(pg)
        });
        drop(items);
        match outcome {
            Ok(outcomes) if !outcomes.is_empty() => {
                limit = match outcomes.len() < run.len() {
                    true => outcomes.len(),
                    false => limit.saturating_mul(2),
                };
                let mut run = run.into_iter();
                let (mut done, mut refused) = (Vec::new(), Vec::new());
                // The answers first: `zip` stops on them without taking a job unanswered.
                for (o, job) in outcomes.into_iter().zip(run.by_ref()) {
                    match o {
                        Some((first, versions)) => {
                            let r = written(&job.request, first, &versions);
                            done.push((job.ticket, Ok(r)));
                        }
                        None => refused.push(job),
                    }
                }
                publish(watch, &done);
                replies.extend(done);
                // Independent requests (`append_group`) may be refused anywhere in the call:
                // none of the others could change their answer. `append_batch` refuses only
                // its last answered one.
                for job in refused {
                    replies.push(decide_alone(conn, job, watch));
                }
                // Not attempted, after the refusal: sent again, first.
                for job in run.rev() {
                    pending.push_front(job);
                }
            }
            // A statement the server refused (the transaction rolled back whole), or an answer
            // naming no request: each request is decided alone, in order.
            Ok(_) | Err(Error::Database { .. }) => {
                for job in run {
                    replies.push(decide_alone(conn, job, watch));
                }
            }
            // Unreachable, or the connection broke: the outcome is unknown to every request
            // of the call, and the next call starts on a new connection.
            Err(e) => {
                conn.live = None;
                for job in run {
                    replies.push((job.ticket, Err(again(&e))));
                }
            }
        }
    }
    replies
}

/// Decides `job` alone, in a transaction of its own holding the writers' lock (`decide`).
fn decide_alone(
    conn: &mut Conn<'_>,
    job: Job,
    watch: &HeadWatch,
) -> (u64, Result<MultiAppendResult>) {
    let schema = conn.schema;
    let r = conn.get().and_then(|live| {
        decide(
            &mut live.client,
            &live.batch,
            schema,
            &job.request,
            &job.prepared,
        )
    });
    match &r {
        Ok(r) => watch.advance(r.last_seq),
        Err(Error::Unreachable { .. }) => conn.live = None,
        Err(_) => {}
    }
    (job.ticket, r)
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

/// Advances the watch to the newest seq the replies wrote.
fn publish(watch: &HeadWatch, replies: &[(u64, Result<MultiAppendResult>)]) {
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
