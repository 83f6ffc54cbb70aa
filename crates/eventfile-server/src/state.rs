//! What every request handler shares: the store, the options, the metrics, the head watch that
//! live feeds wait on, the shutdown signal and the subscriber count.
//!
//! This module owns where store calls run (tokio's blocking pool, never an async worker) and the
//! request timeout around them. It must never decide a protocol detail (statuses, bodies).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventfile::EventStore;
use tokio::sync::watch;

use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::options::ServeOptions;

pub(crate) type Shared = Arc<AppState>;

pub(crate) struct AppState {
    pub store: Arc<dyn EventStore>,
    pub options: ServeOptions,
    pub metrics: Metrics,
    /// The newest visible seq, as last seen; live feeds wait on its changes.
    pub head: watch::Sender<u64>,
    /// Becomes true when the server is shutting down: live feeds end.
    pub stop: watch::Receiver<bool>,
    pub subscribers: AtomicUsize,
    /// Store calls running on the blocking pool, and a wake-up when one ends: shutdown waits
    /// for them (an append whose client hung up still runs to its end), so that the store is
    /// the caller's alone once the server has returned.
    pub in_flight: Arc<InFlight>,
    /// Appends waiting for a worker (`queue.rs`).
    pub appends: crate::queue::AppendQueue,
    /// The bytes of append bodies held now, and the most allowed (`input.rs`).
    pub pending: Arc<crate::input::Budget>,
}

#[derive(Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    ended: tokio::sync::Notify,
}

impl InFlight {
    /// Waits until no store call runs.
    pub async fn drained(&self) {
        loop {
            let ended = self.ended.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            ended.await;
        }
    }
}

/// Counts one store call while it lives.
pub(crate) struct Running(Arc<InFlight>);

impl Running {
    pub fn start(in_flight: &Arc<InFlight>) -> Running {
        in_flight.count.fetch_add(1, Ordering::AcqRel);
        Running(Arc::clone(in_flight))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.ended.notify_waiters();
    }
}

impl AppState {
    /// Runs `f` on the blocking pool within the request timeout.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn EventStore) -> eventfile::Result<T> + Send + 'static,
    ) -> ApiResult<T> {
        let timeout = self.options.request_timeout;
        match tokio::time::timeout(timeout, self.call_untimed(f)).await {
            Ok(r) => r,
            Err(_) => Err(ApiError::timed_out(timeout)),
        }
    }

    /// Runs `f` on the blocking pool with no time limit (a live feed's batches, a streamed
    /// read's next chunk: their pace is the client's).
    pub async fn call_untimed<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn EventStore) -> eventfile::Result<T> + Send + 'static,
    ) -> ApiResult<T> {
        let store = Arc::clone(&self.store);
        let running = Running::start(&self.in_flight);
        let task = move || {
            let r = f(&*store);
            // The store's handle first, then the count: a shutdown that sees no call running
            // sees no handle held by one.
            drop(store);
            drop(running);
            r
        };
        match tokio::task::spawn_blocking(task).await {
            Ok(r) => r.map_err(ApiError::from),
            Err(e) => {
                log::error!("eventfile-server: a store call did not complete: {e}");
                Err(ApiError::internal())
            }
        }
    }

    /// Raises the head watch to `seq` (after an append through this server, so feeds need not
    /// wait for the watcher thread).
    pub fn saw_head(&self, seq: u64) {
        self.head.send_if_modified(|h| {
            let newer = seq > *h;
            if newer {
                *h = seq;
            }
            newer
        });
    }

    /// Takes a subscriber slot, or `None` when the cap is reached.
    pub fn subscriber_slot(self: &Arc<Self>) -> Option<SubscriberSlot> {
        let cap = self.options.max_subscribers;
        let mut n = self.subscribers.load(Ordering::Relaxed);
        loop {
            if n >= cap {
                return None;
            }
            match self.subscribers.compare_exchange_weak(
                n,
                n + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(SubscriberSlot(Arc::clone(self))),
                Err(now) => n = now,
            }
        }
    }
}

/// One live feed's place under the subscriber cap, given back when the feed ends (its body is
/// dropped: finished, or the client went away).
pub(crate) struct SubscriberSlot(Shared);

impl Drop for SubscriberSlot {
    fn drop(&mut self) {
        self.0.subscribers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Follows the store's head on a thread of its own (the trait's `wait_for` blocks) and
/// publishes it to the live feeds, until `stop` turns true or the store closes.
pub(crate) fn watch_head(
    state: Shared,
    stop: watch::Receiver<bool>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("eventfile-head".into())
        .spawn(move || {
            while !*stop.borrow() {
                let head = match state.store.head_seq() {
                    Ok(h) => h,
                    Err(e) => {
                        log::warn!("eventfile-server: reading the head: {e}");
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                };
                state.saw_head(head);
                // A bounded wait, so a shutdown is seen within it.
                match state.store.wait_for(head + 1, Duration::from_millis(200)) {
                    Ok(_) => {}
                    Err(e) => {
                        log::warn!("eventfile-server: waiting for the head: {e}");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        })
        .expect("spawning the head watcher")
}
