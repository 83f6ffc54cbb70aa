//! The append queue: HTTP appends handed to the store in groups, by a few blocking-pool
//! workers, instead of one blocking thread per append.
//!
//! Each append request joins a queue and its handler awaits the outcome. When no worker is
//! free to see it, one is started on tokio's blocking pool (at most
//! [`crate::ServeOptions::append_workers`] at once). A worker takes everything queued (up to
//! [`MAX_GROUP`]), passes it to [`EventStore::append_requests`] (each request judged on its
//! own; on the file store, one sync for all of them), answers each handler, and takes the next
//! group until the queue is empty. An appender therefore holds no thread while it waits for
//! the disk, and 64 connections appending cost a couple of threads, not 64 woken and put to
//! sleep at every sync (on this design's 2-core machine those switches were most of the
//! server's CPU).
//!
//! Every request is answered only once the store has returned, that is once it is durable. A
//! handler that gives up (its client hung up, or the request timeout passed) while its request
//! still waits in the queue takes it with it: the worker finds its reply closed and leaves it
//! out, so nothing of it is written (a timed-out append without its own ids or key, retried
//! as the 503 says, would otherwise be written twice), and a queue of requests whose clients
//! are gone costs the store nothing. One already handed to the store completes, and is
//! counted as what it was.
//!
//! This module owns the queue, the workers and the per-request metrics of appends. It never
//! decides an append (the store does) nor a status (the handlers do).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use eventfile::{AppendRequest, MultiAppendResult};
use tokio::sync::oneshot;

use crate::state::{Running, Shared};

/// Most requests one worker hands to the store at once.
pub(crate) const MAX_GROUP: usize = 512;

/// The queued appends and how many workers take from them.
#[derive(Default)]
pub(crate) struct AppendQueue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    jobs: Vec<Job>,
    /// Workers running (each takes the queue until it finds it empty).
    workers: usize,
}

/// One queued append and where its outcome goes.
struct Job {
    request: AppendRequest,
    reply: oneshot::Sender<eventfile::Result<MultiAppendResult>>,
    started: Instant,
    body_bytes: usize,
    /// The body's share of the pending bytes, given back when the job is done or dropped.
    _held: crate::input::Held,
}

impl AppendQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Queues `request` and returns where its outcome will arrive; starts a worker if fewer than
/// the allowed number run. The receiver fails (the handler answers 500) only if the store
/// panicked with the request's group or returned fewer outcomes than it was given.
pub(crate) fn submit(
    state: &Shared,
    request: AppendRequest,
    body_bytes: usize,
    held: crate::input::Held,
) -> oneshot::Receiver<eventfile::Result<MultiAppendResult>> {
    let (reply, outcome) = oneshot::channel();
    let start = {
        let mut q = state.appends.lock();
        q.jobs.push(Job {
            request,
            reply,
            started: Instant::now(),
            body_bytes,
            _held: held,
        });
        let start = q.workers < state.options.append_workers;
        if start {
            q.workers += 1;
        }
        start
    };
    if start {
        let worker = Worker {
            state: Some(Arc::clone(state)),
            running: Some(Running::start(&state.in_flight)),
            counted: true,
        };
        tokio::task::spawn_blocking(move || worker.work());
    }
    outcome
}

/// A worker: its hold on the server's state (and through it the store), its place among the
/// running store calls, and its place among the workers.
struct Worker {
    state: Option<Shared>,
    running: Option<Running>,
    /// Whether it still counts among `QueueState::workers` (given back under the queue's lock
    /// when it finds the queue empty).
    counted: bool,
}

impl Drop for Worker {
    /// However the worker ends (done, or a closure the runtime dropped unrun at shutdown): its
    /// place back if it still holds one, then the state (and the store it holds) before the
    /// running count, so that a shutdown that sees no call running sees no handle of the
    /// store held by one.
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            if self.counted {
                state.appends.lock().workers -= 1;
            }
            drop(state);
        }
        drop(self.running.take());
    }
}

impl Worker {
    /// Appends groups of queued requests until it finds the queue empty.
    fn work(mut self) {
        let state = Arc::clone(
            self.state
                .as_ref()
                .expect("held until the worker is dropped"),
        );
        loop {
            let jobs: Vec<Job> = {
                let mut q = state.appends.lock();
                if q.jobs.is_empty() {
                    // Under the lock: a request queued after this sees one worker fewer and
                    // starts another.
                    q.workers -= 1;
                    self.counted = false;
                    return;
                }
                let n = q.jobs.len().min(MAX_GROUP);
                q.jobs.drain(..n).collect()
            };
            // Nothing of a group's handling may unwind out of the worker: its place among
            // the workers would be lost with it, and the queue left to wait.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| append_group(&state, jobs))) {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                log::error!("eventfile-server: a group of appends panicked: {what}");
            }
        }
    }
}

/// Hands `jobs` to the store as one group and answers each. A store that panics fails the
/// group: the replies are dropped and each handler answers 500.
fn append_group(state: &Shared, jobs: Vec<Job>) {
    let waiting = jobs.len();
    let jobs: Vec<Job> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
    state
        .metrics
        .appends_abandoned
        .fetch_add((waiting - jobs.len()) as u64, Ordering::Relaxed);
    if jobs.is_empty() {
        return;
    }
    let n = jobs.len() as u64;
    let (requests, jobs): (Vec<AppendRequest>, Vec<_>) = jobs
        .into_iter()
        .map(|j| (j.request, (j.reply, j.started, j.body_bytes)))
        .unzip();
    let m = &state.metrics;
    let outcomes = match catch_unwind(AssertUnwindSafe(|| state.store.append_requests(requests))) {
        Ok(outcomes) => outcomes,
        Err(panic) => {
            m.append_errors.fetch_add(n, Ordering::Relaxed);
            std::panic::resume_unwind(panic);
        }
    };
    let mut outcomes = outcomes.into_iter();
    for (reply, started, body_bytes) in jobs {
        let Some(r) = outcomes.next() else {
            // A store that answered fewer requests than it was given: the rest get a 500.
            log::error!("eventfile-server: the store returned too few append outcomes");
            m.append_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        match &r {
            Ok(r) => {
                m.appends.fetch_add(1, Ordering::Relaxed);
                if !r.replayed {
                    m.events.fetch_add(
                        (r.last_seq + 1).saturating_sub(r.first_seq),
                        Ordering::Relaxed,
                    );
                }
                m.bytes.fetch_add(body_bytes as u64, Ordering::Relaxed);
                m.append_latency.observe(started.elapsed());
                state.saw_head(r.last_seq);
            }
            Err(_) => {
                m.append_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        // A handler that gave up is gone: its append stands, counted above.
        let _ = reply.send(r);
    }
}
