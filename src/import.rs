//! An import's work that needs no lock, done ahead: the checks of `backend::check_import` and
//! the encoding of every record but its seq, `more` and frame ([`record::encode_tail`]).
//!
//! Why: a bulk load (`eventfile generate`, `eventfile import`) was bound by the one thread
//! holding the state lock, which checked and encoded each event before writing it, while the
//! thread making the next batch was mostly idle. A caller that prepares the next batch on its
//! own thread ([`Store::prepare_import`]) while the last is written
//! ([`Store::import_prepared`]) shares that work between the two. Under the lock the writer
//! only copies each prepared record after its seq and checksums the line.
//!
//! This module owns the prepared batch; it never takes the state lock and never decides what
//! is written (the import's rules against the store's data are `backend::import_step`'s, under
//! the lock in `writer.rs`).

use crate::error::Result;
use crate::event::{Body, RecordedEvent};
use crate::record::{self, RecordOut};
use crate::store::Store;

/// An import checked and encoded, ready to be written by [`Store::import_prepared`]: made by
/// [`Store::prepare_import`], which may run on another thread than the write.
///
/// It owns the events; [`PreparedImport::into_events`] gives them back (to be reused for the
/// next batch, say).
pub struct PreparedImport {
    events: Vec<RecordedEvent>,
    /// Each event's [`record::encode_tail`] bytes, back to back; event `i`'s end at `ends[i]`.
    tails: Vec<u8>,
    ends: Vec<usize>,
    /// The event size limit the events were checked against.
    max_event_bytes: usize,
}

impl std::fmt::Debug for PreparedImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedImport")
            .field("events", &self.events.len())
            .field("bytes", &self.tails.len())
            .finish_non_exhaustive()
    }
}

impl PreparedImport {
    /// Checks `events` as `backend::check_import_limited` does and encodes their records'
    /// tails.
    pub(crate) fn new(events: Vec<RecordedEvent>, max_event_bytes: usize) -> Result<Self> {
        crate::backend::check_import_limited(&events, max_event_bytes)?;
        let mut tails = Vec::with_capacity(events.iter().map(|e| e.data.get().len() + 256).sum());
        let mut ends = Vec::with_capacity(events.len());
        // An import's events often share a time: formatted again only when it changes.
        let mut time = None;
        let mut time_text = String::new();
        for e in &events {
            if time != Some(e.time) {
                time = Some(e.time);
                crate::time::write_rfc3339(e.time, &mut time_text);
            }
            let b = e.body();
            record::encode_tail(
                &mut tails,
                &RecordOut {
                    seq: 0,
                    id: &e.id,
                    stream: &e.stream,
                    version: e.version,
                    event_type: b.event_type,
                    time: &time_text,
                    data: b.data,
                    meta: b.meta,
                    tags: b.tags,
                    key: None,
                    more: false,
                },
            );
            ends.push(tails.len());
        }
        Ok(PreparedImport {
            events,
            tails,
            ends,
            max_event_bytes,
        })
    }

    /// The events, as given.
    pub fn events(&self) -> &[RecordedEvent] {
        &self.events
    }

    /// The events, given back.
    pub fn into_events(self) -> Vec<RecordedEvent> {
        self.events
    }

    /// The encoded tail of event `i`.
    pub(crate) fn tail(&self, i: usize) -> &[u8] {
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p]);
        &self.tails[start..self.ends[i]]
    }

    /// The limit the events were checked against.
    pub(crate) fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }
}

impl Store {
    /// Does what [`Store::import`] does before it takes the store's lock: checks `events`
    /// (every check of `backend::check_import`, with this store's event size limit) and encodes
    /// their records. Errors are those of [`Store::import`]'s checks; nothing is written.
    /// The check that no time is more than a day ahead of this machine's clock is made here,
    /// against the clock at preparation; a store opened read-only refuses at
    /// [`Store::import_prepared`], not here.
    ///
    /// [`Store::import_prepared`] then writes them. The two may run on different threads: a
    /// bulk load that prepares each batch on the thread making it, while the previous batch is
    /// written, keeps two cores busy (`eventfile generate` does).
    ///
    /// ```
    /// use eventfile::{ExpectedVersion, NewEvent, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let src = tempfile::tempdir().unwrap();
    /// let source = Store::open(src.path())?;
    /// source.append("order-1", ExpectedVersion::Any, [NewEvent::new("Placed", serde_json::json!({}))])?;
    /// let events = source.read_all(eventfile::Read::forward())?.collect::<Result<Vec<_>, _>>()?;
    ///
    /// let store = Store::open(dir.path())?;
    /// let prepared = store.prepare_import(events)?;
    /// let r = store.import_prepared(&prepared)?;
    /// assert_eq!((r.written, r.head), (1, 1));
    /// // Imported twice: nothing is written the second time.
    /// assert_eq!(store.import_prepared(&prepared)?.skipped, 1);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn prepare_import(&self, events: Vec<RecordedEvent>) -> Result<PreparedImport> {
        PreparedImport::new(events, self.inner.config.max_event_bytes)
    }

    /// Writes a [`PreparedImport`] as [`Store::import`] writes its events: one batch, durable
    /// on return (in the store's durability mode); events already in the store are skipped.
    pub fn import_prepared(&self, prepared: &PreparedImport) -> Result<crate::ImportResult> {
        self.inner.import_prepared(prepared)
    }
}
