//! `eventfile generate`: sample data for demos and load tests, written through the bulk path.
//!
//! The events come from the shop model (`shop.rs`) and are written with `EventStore::import`
//! in batches (into the file store in two steps, `Store::prepare_import` on the shop's thread
//! and `Store::import_prepared` on this one), which keeps the times the model gives them
//! (spread over a period, as a real shop's would be) and writes each batch whole or not at all. A SIGINT or SIGTERM is looked
//! at between batches: the run stops after the batch being written, so the store holds whole
//! batches only. Into a store that holds events the run appends after them: its streams are
//! numbered from the head seq on and its times start no earlier than the newest event's.
//!
//! The file store is opened with [`Durability::Periodic`]: a batch returns once written, a
//! background thread syncs what is written every [`SYNC_EVERY`], and the run syncs once more
//! before it reports (when done, interrupted or failed), so what it reports as written is
//! durable when it exits. Waiting for each batch's `fdatasync` before writing the next took
//! a quarter of a million-event run's wall time; this way the disk writes one batch while the
//! next is encoded. A crash during the run leaves whole batches (recovery cuts a torn one), but
//! possibly fewer than were written. The other backends write each batch in one transaction,
//! durable when it returns, as always.
//!
//! This module owns the run (resolving the plan against the store, batching, the progress bar
//! and the signal); it never makes events itself, and never opens a store it is not asked to.

pub mod shop;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::Duration;

use eventfile::{Durability, EventStore, Micros, Read, RecordedEvent};
use eventfile_connect::{AnyStore, Location};
use serde_json::json;

use crate::Failure;
use crate::target::Target;
use shop::{Plan, Shop};

/// What the command line asks of `generate`, before the store is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateRequest {
    pub events: u64,
    /// `None`: a seed from the clock, printed so that the run can be repeated.
    pub seed: Option<u64>,
    /// `None`: one customer per 20 events (at least one).
    pub customers: Option<u64>,
    /// `None`: the period ends now (or starts at the store's newest event, if that is later).
    pub start: Option<Micros>,
    pub period_micros: Micros,
    pub batch: u64,
}

/// The request the command line names.
pub fn request(a: &crate::args::GenerateArgs) -> GenerateRequest {
    GenerateRequest {
        events: a.events,
        seed: a.seed,
        customers: a.customers,
        start: a.start,
        period_micros: a.period.as_micros().min(i64::MAX as u128) as Micros,
        batch: a.batch,
    }
}

/// The most bytes one batch may take: well within the file store's default segment (a batch
/// must fit in one) and any database's statement limits.
const MAX_BATCH_BYTES: usize = 16 << 20;

/// How often the file store's background thread syncs what the run has written: often enough
/// that the disk writes while the run encodes (rather than all at the end or at each segment's
/// roll), seldom enough that a sync is not paid per batch.
pub const SYNC_EVERY: Duration = Duration::from_millis(100);

/// How far ahead of this machine's clock the store accepts an imported time.
const MAX_AHEAD: Micros = 86_400_000_000;

impl GenerateRequest {
    /// The plan for a store whose head seq is `head` and whose newest event has time `newest`
    /// (`None`: it holds none), at clock time `now`. A start before the newest event, or a
    /// period ending more than a day from now, is refused: a log's times never decrease, and
    /// the store refuses times from the far future.
    pub fn plan(&self, head: u64, newest: Option<Micros>, now: Micros) -> Result<Plan, String> {
        let mut span = self.period_micros;
        let start = match self.start {
            Some(start) => {
                if let Some(newest) = newest.filter(|&n| n > start) {
                    return Err(format!(
                        "--start {} is before the store's newest event ({}): times never \
                         decrease in a log; give a later --start or none",
                        eventfile::format_rfc3339(start),
                        eventfile::format_rfc3339(newest)
                    ));
                }
                start
            }
            None => {
                // The period ends now; a store whose newest event is later than its start
                // shortens it (times never decrease in a log).
                let start = (now - span).max(newest.unwrap_or(Micros::MIN));
                span = (now - start).max(0);
                start
            }
        };
        if start.saturating_add(span) > now.saturating_add(MAX_AHEAD) {
            return Err(format!(
                "the period from {} ends more than a day after now, and the store refuses \
                 times from the future: give an earlier --start or a shorter --period",
                eventfile::format_rfc3339(start)
            ));
        }
        let seed = self.seed.unwrap_or(now as u64);
        Ok(Plan {
            events: self.events,
            seed,
            customers: self.customers.unwrap_or(self.events / 20).max(1),
            first_number: head,
            start,
            span,
        })
    }
}

/// Runs `eventfile generate`: prints `{"written","head","seed","first_seq"}` when done.
pub fn generate(
    target: &Target,
    request: &GenerateRequest,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let stop = crate::tail::stop_on_signals()?;
    let opened = open(target)?;
    let store = opened.as_dyn();
    let max_bytes = match &opened {
        eventfile_connect::AnyStore::File(s) => {
            MAX_BATCH_BYTES.min(usize::try_from(s.config().segment_bytes / 2).unwrap_or(usize::MAX))
        }
        _ => MAX_BATCH_BYTES,
    };
    let head = store.head_seq()?;
    let newest = newest_time(store)?;
    let plan = request
        .plan(head, newest, now_micros())
        .map_err(Failure::Usage)?;
    let seed = plan.seed;
    let bar = indicatif::ProgressBar::new(request.events).with_style(
        indicatif::ProgressStyle::with_template(
            "generate {bar:40} {human_pos}/{human_len} events {per_sec} {eta}",
        )
        .map_err(|e| Failure::Other(e.to_string()))?,
    );
    let r = write_durably(
        &opened,
        Shop::new(plan),
        request.batch,
        max_bytes,
        &stop,
        &bar,
    );
    bar.finish_and_clear();
    let (written, last_head) = r?;
    let summary = json!({
        "written": written,
        "head": last_head.unwrap_or(head),
        "first_seq": head + 1,
        "seed": seed,
    });
    writeln!(out, "{summary}")?;
    if written < request.events {
        out.flush()?;
        return Err(Failure::Other(format!(
            "interrupted: {written} of {} events were written, in whole batches",
            request.events
        )));
    }
    Ok(())
}

/// Opens the store for appending (creating it if it does not exist): the file store with
/// [`Durability::Periodic`] ([`SYNC_EVERY`]), which [`write_durably`] makes up for by syncing at
/// the end; the other backends as every command opens them.
fn open(target: &Target) -> Result<AnyStore, Failure> {
    match &target.location {
        Location::File(dir) => Ok(AnyStore::File(
            target
                .config
                .file_options()?
                .durability(Durability::Periodic(SYNC_EVERY))
                .open(dir)?,
        )),
        _ => target.open(),
    }
}

/// [`write_batches`], then a sync of the file store (whether the batches were all written,
/// stopped or failed), so that every batch reported as written is durable on return: an
/// `Ok` means all of them are. The other backends' batches were durable when written.
fn write_durably(
    opened: &AnyStore,
    shop: Shop,
    batch: u64,
    max_bytes: usize,
    stop: &AtomicBool,
    bar: &indicatif::ProgressBar,
) -> Result<(u64, Option<u64>), Failure> {
    let r = write_batches(Sink::of(opened), shop, batch, max_bytes, stop, bar);
    let synced = match opened {
        AnyStore::File(s) => s.sync(),
        _ => Ok(()),
    };
    match (r, synced) {
        (r, Ok(())) => r,
        (Ok((written, _)), Err(e)) => Err(Failure::Other(format!(
            "{e}: the sync after the last batch failed, so not all of the {written} events \
             written may be durable"
        ))),
        (Err(Failure::Other(m)), Err(e)) => Err(Failure::Other(format!(
            "{m}; the sync after it failed too ({e}), so not all of them may be durable"
        ))),
        (Err(other), Err(_)) => Err(other),
    }
}

/// Where the batches go: the file store, which takes them checked and encoded on the shop's
/// thread ([`eventfile::Store::prepare_import`]), or any other backend, which takes them as
/// they are.
#[derive(Clone, Copy)]
enum Sink<'a> {
    File(&'a eventfile::Store),
    Any(&'a dyn EventStore),
}

impl<'a> Sink<'a> {
    fn of(opened: &'a AnyStore) -> Sink<'a> {
        match opened {
            AnyStore::File(s) => Sink::File(s),
            other => Sink::Any(other.as_dyn()),
        }
    }

    fn as_dyn(&self) -> &'a dyn EventStore {
        match *self {
            Sink::File(s) => s,
            Sink::Any(s) => s,
        }
    }
}

/// Imports the shop's events in batches of at most `batch` events and `max_bytes` bytes,
/// stopping between batches once `stop` is set; the events written and the head after the last
/// batch.
///
/// The shop makes the next batch on its own thread while this one writes the last. For the
/// file store that thread also does the import's work that needs no lock (its checks and the
/// records' encoding, `Store::prepare_import`): the store's write of a batch takes one core,
/// and a third of it was that work. A batch the checks refuse is reported here, in its turn,
/// after the batches before it were written.
/// Two batches' events take turns, each made over the events of the one before it (see
/// [`Shop::next_into`]), so a run allocates little once its first two batches are made. The
/// batches, and so the bytes written, are the same as made on one thread.
fn write_batches(
    sink: Sink<'_>,
    shop: Shop,
    batch: u64,
    max_bytes: usize,
    stop: &AtomicBool,
    bar: &indicatif::ProgressBar,
) -> Result<(u64, Option<u64>), Failure> {
    // Made batches, handed over one at a time; written ones, handed back to be made over.
    let (made_tx, made_rx) = std::sync::mpsc::sync_channel::<Made<'_>>(1);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Vec<RecordedEvent>>();
    std::thread::scope(|s| {
        s.spawn(move || make_batches(shop, sink, batch, max_bytes, stop, &done_rx, &made_tx));
        // Dropping the channels (on return, error or not) ends the maker at its next send or
        // receive: the scope then joins it.
        let (made_rx, done_tx) = (made_rx, done_tx);
        let mut written = 0u64;
        let mut head = None;
        for made in made_rx.iter() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let failed = |e: eventfile::Error| {
                Failure::Other(format!(
                    "{e}; {written} events were written before this batch, in whole batches"
                ))
            };
            let (r, events) = match made {
                Made::Events(events, filled) => (sink.as_dyn().import(&events[..filled]), events),
                Made::Prepared(store, prepared) => {
                    let prepared = prepared.map_err(failed)?;
                    (store.import_prepared(&prepared), prepared.into_events())
                }
            };
            let r = r.map_err(failed)?;
            written += r.written;
            head = Some(r.head);
            bar.inc(r.written + r.skipped);
            // The maker may be gone already, having sent a batch the checks refused: that
            // batch is still to be read from `made_rx`, so a failed hand-back ends nothing.
            let _ = done_tx.send(events);
        }
        Ok((written, head))
    })
}

/// A batch as the shop's thread hands it over: events whose first `.1` are the batch's (the
/// rest are left over from an earlier, longer batch and are not written), or, for the file
/// store, the batch checked and encoded (or refused by the checks).
enum Made<'a> {
    Events(Vec<RecordedEvent>, usize),
    Prepared(
        &'a eventfile::Store,
        eventfile::Result<eventfile::PreparedImport>,
    ),
}

/// The shop's side of [`write_batches`]: makes each batch over a written one given back on
/// `done` (two to start with), prepares it for `sink` and sends it on `made`; stops once the
/// plan's events are made, `stop` is set, a batch is refused, or the writer hangs up.
fn make_batches<'a>(
    mut shop: Shop,
    sink: Sink<'a>,
    batch: u64,
    max_bytes: usize,
    stop: &AtomicBool,
    done: &std::sync::mpsc::Receiver<Vec<RecordedEvent>>,
    made: &std::sync::mpsc::SyncSender<Made<'a>>,
) {
    let capacity = batch.min(100_000) as usize;
    let mut fresh = 2;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut pending = if fresh > 0 {
            fresh -= 1;
            Vec::with_capacity(capacity)
        } else {
            match done.recv() {
                Ok(v) => v,
                Err(_) => return,
            }
        };
        let mut filled = 0;
        let mut bytes = 0usize;
        while (filled as u64) < batch && bytes < max_bytes {
            if filled == pending.len() {
                pending.push(shop::blank_event());
            }
            let e = &mut pending[filled];
            if !shop.next_into(e) {
                break;
            }
            bytes += e.data.get().len() + e.stream.len() + 200;
            filled += 1;
        }
        if filled == 0 {
            return;
        }
        let batch = match sink {
            Sink::File(store) => {
                // Events left over from a longer batch go: the prepared batch is all written.
                pending.truncate(filled);
                Made::Prepared(store, store.prepare_import(pending))
            }
            Sink::Any(_) => Made::Events(pending, filled),
        };
        let refused = matches!(batch, Made::Prepared(_, Err(_)));
        if made.send(batch).is_err() || refused {
            return;
        }
    }
}

/// This machine's clock, in microseconds since the epoch.
pub fn now_micros() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as Micros)
}

/// The time of the store's newest event, if it holds any.
fn newest_time(store: &dyn EventStore) -> Result<Option<Micros>, Failure> {
    if store.head_seq()? == 0 {
        return Ok(None);
    }
    match store.read_all(Read::backward().limit(1))?.next() {
        Some(e) => Ok(Some(e?.time)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Micros = 86_400_000_000;

    fn request() -> GenerateRequest {
        GenerateRequest {
            events: 1000,
            seed: Some(7),
            customers: None,
            start: None,
            period_micros: 30 * DAY,
            batch: 100,
        }
    }

    #[test]
    fn the_period_ends_now_and_never_before_the_newest_event() {
        let now = 1_000 * DAY;
        let p = request().plan(0, None, now).unwrap();
        assert_eq!(
            (p.start, p.span, p.customers),
            (now - 30 * DAY, 30 * DAY, 50)
        );
        let p = request().plan(42, Some(now - DAY), now).unwrap();
        assert_eq!((p.start, p.span, p.first_number), (now - DAY, DAY, 42));
    }

    #[test]
    fn a_start_before_the_newest_event_or_in_the_future_is_refused() {
        let now = 1_000 * DAY;
        let mut r = request();
        r.start = Some(now - 40 * DAY);
        assert!(
            r.plan(1, Some(now - 2 * DAY), now)
                .unwrap_err()
                .contains("newest event")
        );
        r.start = Some(now);
        assert!(r.plan(0, None, now).unwrap_err().contains("future"));
    }

    #[test]
    fn batches_are_written_whole_and_a_stop_ends_between_them() {
        let store = eventfile::MemoryStore::new();
        let plan = request().plan(0, None, now_micros()).unwrap();
        let bar = indicatif::ProgressBar::hidden();
        let stop = AtomicBool::new(false);
        let (written, head) = write_batches(
            Sink::Any(&store),
            Shop::new(plan.clone()),
            64,
            usize::MAX,
            &stop,
            &bar,
        )
        .unwrap_or_else(|_| panic!("the batches failed"));
        assert_eq!((written, head), (1000, Some(1000)));
        stop.store(true, Ordering::Relaxed);
        let store = eventfile::MemoryStore::new();
        let (written, _) = write_batches(
            Sink::Any(&store),
            Shop::new(plan),
            64,
            usize::MAX,
            &stop,
            &bar,
        )
        .unwrap_or_else(|_| panic!("the batches failed"));
        assert_eq!(written, 0);
        assert_eq!(store.head_seq().unwrap(), 0);
    }

    /// A batch the checks refuse is reported whenever it comes, also when its maker has
    /// finished and gone before the batch ahead of it was written (it once ended the run as if
    /// interrupted, the refusal unread). Limits around the shop's event sizes refuse an event
    /// somewhere in the first batches: every run either fails naming the event or writes all.
    /// Each one-event batch is synced (the default durability), so the maker, which only checks
    /// and encodes, is ahead of the writer as in a real run.
    #[test]
    fn a_batch_refused_after_others_is_reported_not_lost() {
        let events = 100;
        let plan = GenerateRequest {
            events,
            ..request()
        }
        .plan(0, None, now_micros())
        .unwrap();
        let bar = indicatif::ProgressBar::hidden();
        let stop = AtomicBool::new(false);
        let mut refused_later = 0;
        for limit in (256..=1184).step_by(16) {
            let dir = tempfile::tempdir().unwrap();
            let store = eventfile::OpenOptions::new()
                .max_event_bytes(limit)
                .open(dir.path())
                .unwrap();
            match write_batches(
                Sink::File(&store),
                Shop::new(plan.clone()),
                1,
                usize::MAX,
                &stop,
                &bar,
            ) {
                Ok((written, _)) => {
                    // Every event fits this limit, and so any larger one.
                    assert_eq!(written, events, "limit {limit}: a batch was lost");
                    break;
                }
                Err(Failure::Other(msg)) => {
                    assert!(msg.contains("event 0"), "limit {limit}: {msg}");
                    let before: u64 = msg
                        .rsplit("; ")
                        .next()
                        .and_then(|m| m.split(' ').next())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| panic!("limit {limit}: {msg}"));
                    assert_eq!(store.head_seq(), before, "limit {limit}");
                    refused_later += u64::from(before > 0);
                }
                Err(_) => panic!("limit {limit}: another failure"),
            }
        }
        assert!(
            refused_later > 0,
            "no limit refused a batch after the first"
        );
    }

    /// What a power loss right after the run leaves of it, on the simulated disk: with the
    /// run's own sync every event (`write_durably`), without it (the batches alone, the
    /// background sync never due) fewer, in whole batches.
    #[test]
    fn a_run_on_the_file_store_is_durable_when_it_returns() {
        use eventfile::sim::SimDisk;
        use std::sync::Arc;
        let root = tempfile::tempdir().unwrap();
        let open = |disk: &Arc<SimDisk>| {
            eventfile::OpenOptions::new()
                .durability(Durability::Periodic(Duration::from_secs(3600)))
                .storage(Arc::new(Arc::clone(disk)))
                .open(root.path())
                .unwrap()
        };
        let plan = request().plan(0, None, now_micros()).unwrap();
        let bar = indicatif::ProgressBar::hidden();
        let stop = AtomicBool::new(false);
        let mut heads = Vec::new();
        for synced in [true, false] {
            let disk = SimDisk::new(root.path(), Default::default(), u64::MAX, 3);
            let store = AnyStore::File(open(&disk));
            let shop = Shop::new(plan.clone());
            let (written, _) = if synced {
                write_durably(&store, shop, 64, usize::MAX, &stop, &bar)
            } else {
                write_batches(Sink::of(&store), shop, 64, usize::MAX, &stop, &bar)
            }
            .unwrap_or_else(|_| panic!("the batches failed"));
            assert_eq!(written, 1000);
            let image = disk.power_loss();
            drop(store);
            let after = open(&SimDisk::new(root.path(), image, u64::MAX, 0));
            heads.push(after.head_seq());
        }
        assert_eq!(heads[0], 1000);
        assert!(heads[1] < 1000 && heads[1] % 64 == 0, "{heads:?}");
    }
}
