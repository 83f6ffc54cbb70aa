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
//! Every request is answered only once the store has returned, that is once it is durable;
//! a handler that gives up (its client hung up, or the request timeout passed) leaves its
//! request in the queue, and it is appended and counted all the same, as before.
//!
//! This module owns the queue, the workers and the per-request metrics of appends. It never
//! decides an append (the store does) nor a status (the handlers do).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use eventfile::{AppendRequest, EventStore, MultiAppendResult};
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
}

impl AppendQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Queues `request` and returns where its outcome will arrive; starts a worker if fewer than
/// the allowed number run. The receiver fails only if a worker panicked with the request.
pub(crate) fn submit(
    state: &Shared,
    request: AppendRequest,
    body_bytes: usize,
) -> oneshot::Receiver<eventfile::Result<MultiAppendResult>> {
    let (reply, outcome) = oneshot::channel();
    let start = {
        let mut q = state.appends.lock();
        q.jobs.push(Job {
            request,
            reply,
            started: Instant::now(),
            body_bytes,
        });
        let start = q.workers < state.options.append_workers;
        if start {
            q.workers += 1;
        }
        start
    };
    if start {
        let worker_state = Arc::clone(state);
        let store = Arc::clone(&state.store);
        let running = Running::start(&state.in_flight);
        tokio::task::spawn_blocking(move || {
            work(&worker_state, &*store);
            // The store's handle first, then the count: a shutdown that sees no call running
            // sees no handle held by one.
            drop(store);
            drop(running);
        });
    }
    outcome
}

/// A worker: appends groups of queued requests until it finds the queue empty.
fn work(state: &Shared, store: &dyn EventStore) {
    loop {
        let jobs: Vec<Job> = {
            let mut q = state.appends.lock();
            if q.jobs.is_empty() {
                // Under the lock: a request queued after this sees one worker fewer and starts
                // another.
                q.workers -= 1;
                return;
            }
            let n = q.jobs.len().min(MAX_GROUP);
            q.jobs.drain(..n).collect()
        };
        let (requests, jobs): (Vec<AppendRequest>, Vec<_>) = jobs
            .into_iter()
            .map(|j| (j.request, (j.reply, j.started, j.body_bytes)))
            .unzip();
        let outcomes = match catch_unwind(AssertUnwindSafe(|| store.append_requests(requests))) {
            Ok(outcomes) => outcomes,
            Err(_) => {
                // The replies are dropped: each handler answers 500. The next group still runs.
                log::error!("eventfile-server: the store panicked during an append");
                state
                    .metrics
                    .append_errors
                    .fetch_add(jobs.len() as u64, Ordering::Relaxed);
                continue;
            }
        };
        let m = &state.metrics;
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
                        m.events
                            .fetch_add(r.last_seq + 1 - r.first_seq, Ordering::Relaxed);
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
}
