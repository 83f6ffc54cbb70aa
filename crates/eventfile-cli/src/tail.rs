//! `tail`: the last N events a query selects (or every one after a position), then, with `-f`,
//! each new one as it is appended, by this process or another, until SIGINT or SIGTERM.
//!
//! Everything it prints comes through one subscription (`Store::subscribe`) on a read-only
//! handle, which follows a writer in another process by itself. Without `-f` the subscription
//! ends at the head visible when tail started; with `-f` the same subscription goes on live, so
//! nothing is printed twice or skipped between the history and the new events. Events that
//! retention removed before tail reached them are named on stderr, and tail goes on after them.
//!
//! This module owns the command's loop: where it starts, when stdout is flushed, and how a
//! signal ends it. It never opens the store for writing: tail must never hold the writer's lock
//! (a writer in another process would be refused), nor create a store where there is none.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventfile::{Error, EventStore, Query};

use crate::target::Target;

use crate::Failure;
use crate::args::TailArgs;

/// The longest one wait for a new event lasts before tail looks at the signal flag again: the
/// longest an interrupted `tail -f` takes to exit.
const POLL: Duration = Duration::from_millis(150);

/// Runs `eventfile tail` with the checked filter `query`.
pub fn tail(
    target: &Target,
    a: &TailArgs,
    query: Query,
    out: &mut impl Write,
) -> Result<(), Failure> {
    // Before the store is opened, so that a signal during a long history is not lost.
    let stop = if a.follow {
        Some(stop_on_signals()?)
    } else {
        None
    };
    let stopped = || stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
    let store = target.open_existing()?;
    let store = store.as_dyn();
    // The history is what is visible now: a read-only handle's view moves only when it is
    // refreshed, which the subscription's follower starts doing once subscribed.
    let head = store.head_seq()?;
    let start = match a.from {
        Some(seq) => seq,
        None => last_n_start(store, &query, a.lines, head)?,
    };
    let query = if a.follow {
        query
    } else if start >= head {
        return Ok(());
    } else {
        query.to_seq(head)
    };
    let mut sub = store.subscribe(&query, start)?;
    // Lines go to the buffer while events are at hand (a long history is not written one
    // syscall a line) and are flushed before every wait, so each event is on stdout as soon as
    // it has arrived: `tail -f | jq` works live.
    let mut unflushed = false;
    while !stopped() {
        let wait = if unflushed { Duration::ZERO } else { POLL };
        match sub.next_timeout(wait) {
            Ok(Some(event)) => {
                crate::write_event(out, &event)?;
                unflushed = true;
            }
            Ok(None) if sub.is_finished() => break,
            Ok(None) => {
                out.flush()?;
                unflushed = false;
                if reader_gone() {
                    return Err(Failure::ClosedPipe);
                }
            }
            Err(Error::Gap { first, last }) => {
                out.flush()?;
                unflushed = false;
                eprintln!(
                    "eventfile: events {first} to {last} were removed by retention before tail \
                     reached them; continuing after {last}"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    out.flush()?;
    Ok(())
}

/// The position the last `n` events `query` selects up to `head` come after: just before the
/// oldest of them; `head` when there are none (or `n` is 0). Reads backwards and keeps only a
/// seq, so `-n 10000000` holds no more in memory than `-n 10`.
fn last_n_start(
    store: &dyn EventStore,
    query: &Query,
    n: usize,
    head: u64,
) -> Result<u64, Failure> {
    // Nothing retained (an empty store, or retention took every sealed segment and the active
    // one is empty): a read bounded at `head` would be below the log start, and refused.
    if n == 0 || head < store.log_start()? {
        return Ok(head);
    }
    let mut oldest = None;
    for event in store.query(&query.clone().to_seq(head).backward().limit(n))? {
        oldest = Some(event?.seq);
    }
    Ok(oldest.map_or(head, |seq| seq - 1))
}

/// Whether stdout is a pipe whose reader has gone: what a write would find out (EPIPE), known
/// without an event to write, so that an idle `tail -f | head -3` ends once `head` has. Linux
/// reports it as POLLERR on the pipe; where nothing is reported, the next write finds out.
#[cfg(unix)]
fn reader_gone() -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
        && fds[0].revents().contains(PollFlags::ERR)
}

#[cfg(not(unix))]
fn reader_gone() -> bool {
    false
}

/// A flag set by the first SIGINT or SIGTERM; a second one of either ends the process as the
/// signal's default action does (for a tail stuck writing to a reader that stopped reading, or a
/// `generate` batch too long to wait for).
///
/// signal-hook's flag API: the handler only stores to an atomic (async-signal-safe, no thread
/// of its own, unlike ctrlc), the command polls it between waits or batches, and the second
/// signal's default action comes with it (`register_conditional_default`).
pub(crate) fn stop_on_signals() -> Result<Arc<AtomicBool>, Failure> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let stop = Arc::new(AtomicBool::new(false));
    let failed = |e: std::io::Error| Failure::Other(format!("installing a signal handler: {e}"));
    for signal in [SIGINT, SIGTERM] {
        // In this order: the default action is armed only by a signal that came before.
        flag::register_conditional_default(signal, Arc::clone(&stop)).map_err(failed)?;
        flag::register(signal, Arc::clone(&stop)).map_err(failed)?;
    }
    Ok(stop)
}
