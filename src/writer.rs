//! The append path: validation, the concurrency check, encoding, the write, segment roll, and
//! group commit.
//!
//! An append validates everything it can before taking the state lock, then (under the lock)
//! checks expectations, encodes the batch, writes it with one `pwrite` at the end of the active
//! segment, and updates the in-memory state. It releases the lock before waiting for
//! durability, so concurrent appenders' batches pile up behind one `fdatasync` (group commit).
//! A failed write or sync poisons the handle: nothing is ever retried.

use std::path::Path;
use std::sync::Arc;

use crate::api::{AppendCondition, AppendRequest, ImportResult};
use crate::backend::{Part, batch_ids, validate};
use crate::config::Durability;
use crate::error::{Error, Result};
use crate::event::{
    AppendResult, Body, ExpectedVersion, MultiAppendResult, NewEvent, RecordedEvent, StreamAppend,
    event_terms, validate_key,
};
use crate::import::PreparedImport;
use crate::index::Kind;
use crate::lookup::{self, Batch};
use crate::record::{self, RecordOut};
use crate::state::State;
use crate::storage::StorageFile;
use crate::store::{Inner, Store};

/// A batch asks for its sync before adding its index entries (`commit.rs`, `Ahead`) when
/// `events + 4 x streams` reaches this: its entries then take about 100 µs or more (about 45 ns
/// an event of a stream the segment knows, some 250 ns more for each stream new to it). Below
/// that the hand-over to the sync thread (a wake there, and one back) costs about what it
/// saves. Measured at the two ends, alternated (`benches/append.rs`, `durable_batch`, per call
/// of 1,000 events): into one stream (1,004, below) the hand-over cost 5 to 7% (medians 1.77
/// against 1.90 times the raw loop's call, five rounds each); into 1,000 new streams (5,000,
/// above) the call went from 866 to 918 µs to 598 to 677 µs (`examples/bulk_cpu.rs`, wall
/// medians). Between those two points the threshold is an estimate.
const SYNC_AHEAD_WORK: usize = 2048;

impl Store {
    /// Appends `events` to `stream` as one all-or-nothing batch, if the stream's version
    /// satisfies `expected`. Returns once the batch is durable (with the default
    /// [`crate::Durability::Fsync`]).
    ///
    /// Fails with [`Error::WrongExpectedVersion`] (nothing written) on a version mismatch,
    /// [`Error::InvalidInput`] or [`Error::EventTooLarge`] on bad input, [`Error::ReadOnly`] or
    /// [`Error::Poisoned`] when the handle cannot write, [`Error::StreamDeleted`] if the stream
    /// was tombstoned. If it fails with [`Error::Io`], the batch may or may not be in the log
    /// after the store is reopened: retry it with the same event ids (see below).
    ///
    /// **Retries are safe when the events carry their own ids** ([`NewEvent::with_id`]): if
    /// every id of the batch was already committed as one batch to the same stream, the append
    /// writes nothing and returns the original result with `replayed: true`. Any other reuse of
    /// an existing id fails with [`Error::DuplicateEventId`]. This holds across restarts, for
    /// the whole retained log, using the id index (no memory per event).
    ///
    /// ```
    /// use eventfile::{Error, ExpectedVersion, NewEvent, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path())?;
    /// let placed = NewEvent::new("OrderPlaced", serde_json::json!({"total": 12}));
    /// let r = store.append("order-7", ExpectedVersion::NoStream, [placed.clone()])?;
    /// assert_eq!((r.version, r.first_seq), (1, 1));
    /// match store.append("order-7", ExpectedVersion::NoStream, [placed]) {
    ///     Err(Error::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, 1),
    ///     other => panic!("expected a conflict, got {other:?}"),
    /// }
    ///
    /// // A retry of a request whose response was lost: same ids, nothing written twice.
    /// let paid = || NewEvent::new("OrderPaid", serde_json::json!({})).with_id("pay-7-1");
    /// let first = store.append("order-7", ExpectedVersion::Exact(1), [paid()])?;
    /// let again = store.append("order-7", ExpectedVersion::Exact(1), [paid()])?;
    /// assert_eq!((again.version, again.first_seq, again.replayed), (first.version, first.first_seq, true));
    /// assert_eq!(store.stream_version("order-7"), 2);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> Result<AppendResult> {
        self.append_inner(stream, expected, events.into_iter().collect(), None)
    }

    /// Appends like [`Store::append`], under an idempotency key naming the command that
    /// produced the events: if an append with this key is already in the log, nothing is
    /// written and the first append's result is returned (`replayed: true`), whatever the
    /// events and expectation given now. The key is stored durably with the batch (on its first
    /// record) and found through the index, for the whole retained log. Reusing a key for an
    /// append to other streams fails with [`Error::InvalidInput`].
    ///
    /// ```
    /// use eventfile::{ExpectedVersion, NewEvent, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path())?;
    /// let pay = |amount| NewEvent::new("Paid", serde_json::json!({ "amount": amount }));
    /// let a = store.append_with_key("cmd-81", "order-1", ExpectedVersion::Any, [pay(10)])?;
    /// let b = store.append_with_key("cmd-81", "order-1", ExpectedVersion::Any, [pay(10)])?;
    /// assert_eq!((b.first_seq, b.replayed), (a.first_seq, true));
    /// assert_eq!(store.stream_version("order-1"), 1);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn append_with_key(
        &self,
        key: &str,
        stream: &str,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> Result<AppendResult> {
        validate_key(key)?;
        self.append_inner(stream, expected, events.into_iter().collect(), Some(key))
    }

    fn append_inner(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        key: Option<&str>,
    ) -> Result<AppendResult> {
        let parts = [Part {
            stream,
            expected,
            events: &events,
        }];
        let b = self.inner.append_batch(&parts, key, None)?;
        Ok(b.results[0])
    }

    /// Appends to several streams atomically: every stream's expectation must hold, and then all
    /// events are written as one batch, or none is. A stream may appear only once. Retries with
    /// the same event ids are recognised as for [`Store::append`].
    pub fn append_multi(&self, appends: &[StreamAppend]) -> Result<MultiAppendResult> {
        self.append_multi_inner(appends, None)
    }

    /// [`Store::append_multi`] under an idempotency key (see [`Store::append_with_key`]).
    pub fn append_multi_with_key(
        &self,
        key: &str,
        appends: &[StreamAppend],
    ) -> Result<MultiAppendResult> {
        validate_key(key)?;
        self.append_multi_inner(appends, Some(key))
    }

    /// Appends what `request` holds: one or more streams (all or nothing), an optional
    /// idempotency key, an optional condition checked atomically with the write (DCB).
    ///
    /// ```
    /// use eventfile::{AppendCondition, AppendRequest, ExpectedVersion, NewEvent, Query, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path())?;
    /// let enrol = |s: &str| NewEvent::new("StudentSubscribed", serde_json::json!({}))
    ///     .with_tag("course=c1").with_tag(format!("student={s}"));
    /// // Decide from what the log held at seq `seen`; fail if the course changed since.
    /// let seen = store.head_seq();
    /// let course = || AppendCondition::new(Query::new().tag("course=c1")).after(seen);
    /// store.append_request(AppendRequest::new("student-a", ExpectedVersion::Any, [enrol("a")])
    ///     .condition(course()))?;
    /// let late = store.append_request(AppendRequest::new("student-b", ExpectedVersion::Any,
    ///     [enrol("b")]).condition(course()));
    /// assert_eq!(late.unwrap_err().kind(), eventfile::ErrorKind::ConditionFailed);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn append_request(&self, request: AppendRequest) -> Result<MultiAppendResult> {
        request.validate()?;
        self.append_multi_with(
            &request.streams,
            request.key.as_deref(),
            request.condition.as_ref(),
        )
    }

    /// Writes `events` as another store recorded them: see [`crate::EventStore::import`].
    /// One batch, durable on return; events already in the store are skipped.
    pub fn import(&self, events: &[RecordedEvent]) -> Result<ImportResult> {
        self.inner.import(events)
    }

    fn append_multi_inner(
        &self,
        appends: &[StreamAppend],
        key: Option<&str>,
    ) -> Result<MultiAppendResult> {
        self.append_multi_with(appends, key, None)
    }

    /// Appends independent requests with one wait for durability: see
    /// [`crate::EventStore::append_requests`]. Each request is written under the state lock on
    /// its own (a failed one writes nothing and the next still runs); then one wait covers the
    /// last written seq, so the requests share a sync. If that wait fails, every written
    /// request fails with an [`Error::Io`] (the first with the sync's own error): like any
    /// append that fails so, each may or may not be in the log after a reopen, and a retry with
    /// the same ids or key tells.
    pub fn append_requests(&self, requests: Vec<AppendRequest>) -> Vec<Result<MultiAppendResult>> {
        let mut out: Vec<Result<MultiAppendResult>> = requests
            .iter()
            .map(|r| {
                r.validate()?;
                let parts = crate::backend::parts(&r.streams);
                let b = self
                    .inner
                    .write_batch(&parts, r.key.as_deref(), r.condition.as_ref())?;
                Ok(multi_result(&r.streams, b))
            })
            .collect();
        let Some(last) = out.iter().flatten().map(|r| r.last_seq).max() else {
            return out;
        };
        if let Err(first) = self.inner.wait_written(last) {
            let cause = first.to_string();
            let mut first = Some(first);
            for r in out.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(first
                    .take()
                    .unwrap_or_else(|| self.inner.sync_failed_elsewhere(&cause)));
            }
        }
        out
    }

    fn append_multi_with(
        &self,
        appends: &[StreamAppend],
        key: Option<&str>,
        condition: Option<&AppendCondition>,
    ) -> Result<MultiAppendResult> {
        let parts = crate::backend::parts(appends);
        let b = self.inner.append_batch(&parts, key, condition)?;
        Ok(multi_result(appends, b))
    }
}

/// A batch's outcome as the API reports it.
fn multi_result(appends: &[StreamAppend], b: Batch) -> MultiAppendResult {
    MultiAppendResult {
        streams: appends
            .iter()
            .map(|a| a.stream.clone())
            .zip(b.results)
            .collect(),
        first_seq: b.first_seq,
        last_seq: b.last_seq,
        replayed: b.replayed,
    }
}

/// The times of a batch's events.
#[derive(Clone, Copy)]
enum Times<'a> {
    /// One for all (an append).
    One(i64),
    /// One per event, in order (an import).
    Each(&'a [i64]),
}

impl Times<'_> {
    fn at(&self, i: usize) -> i64 {
        match self {
            Times::One(t) => *t,
            Times::Each(ts) => ts[i],
        }
    }
}

/// The records of a batch encoded ahead but for their seqs: the `at[k]`-th of `prepared` is
/// the `k`-th written (an import skips what the store holds).
struct Tails<'a> {
    prepared: &'a PreparedImport,
    at: &'a [usize],
}

/// What the state needs of a written batch: its parts, its ids per part, and its idempotency
/// key.
type BatchParts<'a, 'b, E, S> = (&'a [Part<'b, E>], &'a [S], Option<&'a str>);

/// The log as the retry rules read it: records by seq, under the state lock.
struct FileLookup<'a> {
    st: &'a mut State,
    max_line: usize,
}

impl crate::backend::LogLookup for FileLookup<'_> {
    fn logged(&mut self, seq: u64) -> Result<Option<crate::backend::Logged>> {
        Ok(
            lookup::record_at(self.st, seq, self.max_line)?.map(|r| crate::backend::Logged {
                event: r.event,
                more: r.more,
            }),
        )
    }
}

impl Inner {
    fn append_batch(
        &self,
        parts: &[Part<'_>],
        key: Option<&str>,
        condition: Option<&AppendCondition>,
    ) -> Result<Batch> {
        let batch = self.write_batch(parts, key, condition)?;
        // A retry's original may still be on its way to disk: it too is answered once durable.
        self.wait_written(batch.last_seq)?;
        Ok(batch)
    }

    /// [`Inner::append_batch`] up to the write: the batch (or the original a retry matched) is
    /// in the log but not yet known durable. The caller waits for `last_seq` before it tells
    /// anyone.
    fn write_batch(
        &self,
        parts: &[Part<'_>],
        key: Option<&str>,
        condition: Option<&AppendCondition>,
    ) -> Result<Batch> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        validate(parts)?;
        let (ids, own_ids) = batch_ids(parts)?;

        let mut guard = self.lock_state();
        let st = &mut *guard;
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned {
                cause: cause.clone(),
            });
        }
        if let Some(batch) = self.find_retry(st, parts, &ids, own_ids, key)? {
            return Ok(batch);
        }
        // Each stream's version, looked up once: the commit numbers the events from it.
        let mut bases = Vec::with_capacity(parts.len());
        for p in parts {
            let actual = st.version(p.stream)?;
            st.deletion(p.stream)?;
            if !p.expected.matches(actual) {
                return Err(Error::WrongExpectedVersion {
                    stream: p.stream.to_owned(),
                    expected: p.expected,
                    actual,
                });
            }
            bases.push(actual);
        }
        if let Some(c) = condition {
            // Every written event counts, durable or not: this append's seqs come after them,
            // so it cannot become durable without them.
            let head = st.next_seq - 1;
            if c.after > head {
                return Err(Error::invalid(
                    "append condition",
                    format!("position {} is above the head seq {head}", c.after),
                ));
            }
            if let Some(seq) = crate::reader::first_match(st, &c.query, c.after)? {
                return Err(Error::ConditionFailed {
                    seq,
                    after: c.after,
                });
            }
        }
        let time = (self.clock)().max(st.last_time);
        self.commit_locked_at(st, parts, &bases, &ids, key, Times::One(time), None)
    }

    /// Writes events as another store recorded them (`EventStore::import`): the checks of
    /// `backend::check_import` and `backend::import_step` under the state lock, then the
    /// events to write as one batch (all-or-nothing) with their own ids, versions and times.
    pub(crate) fn import(&self, events: &[RecordedEvent]) -> Result<ImportResult> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        crate::backend::check_import_limited(events, self.config.max_event_bytes)?;
        self.import_checked(events, None)
    }

    /// [`Inner::import`] of events checked and encoded ahead (`import.rs`): checked again only
    /// if this store's event size limit is not the one they were checked against.
    pub(crate) fn import_prepared(&self, prepared: &PreparedImport) -> Result<ImportResult> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if prepared.max_event_bytes() != self.config.max_event_bytes {
            crate::backend::check_import_limited(prepared.events(), self.config.max_event_bytes)?;
        }
        self.import_checked(prepared.events(), Some(prepared))
    }

    /// The import of checked `events` under the state lock; `prepared` holds their records'
    /// tails when they were encoded ahead.
    fn import_checked(
        &self,
        events: &[RecordedEvent],
        prepared: Option<&PreparedImport>,
    ) -> Result<ImportResult> {
        let mut guard = self.lock_state();
        let st = &mut *guard;
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned {
                cause: cause.clone(),
            });
        }
        let max_line = self.config.max_line();
        let mut pending: foldhash::HashMap<&str, u64> = foldhash::HashMap::with_capacity_and_hasher(
            events.len().min(1 << 16),
            foldhash::fast::RandomState::default(),
        );
        let mut last_time = st.last_time;
        let mut write = Vec::with_capacity(events.len());
        // Where each written event is in `events`: its prepared tail's index.
        let mut write_at: Vec<usize> = Vec::with_capacity(prepared.map_or(0, |_| events.len()));
        // The newest event skipped: it may still be on its way to disk (another import or an
        // append wrote it and waits for its sync), and this import reports it as stored.
        let mut newest_skipped = 0;
        for (i, e) in events.iter().enumerate() {
            let existing = match lookup::find_term(st, Kind::Id, &e.id)? {
                Some(seq) => lookup::record_at(st, seq, max_line)?
                    .map(|r| (seq, r.event.stream, r.event.version)),
                None => None,
            };
            // Decided before the stream's state is looked at: what is already there is
            // skipped even in a stream tombstoned since.
            let current = match (&existing, pending.get(e.stream.as_str())) {
                (Some(_), _) => 0,
                (None, Some(&v)) => v,
                (None, None) => {
                    st.deletion(&e.stream)?;
                    let current = st.version(&e.stream)?;
                    // A version this store had and no longer keeps (retention or compaction
                    // removed its segment): its event cannot be found by id to compare, and
                    // is taken as imported before, so that importing a file again still
                    // writes nothing.
                    if e.version <= current && e.version < st.first_kept_version(&e.stream)? {
                        continue;
                    }
                    current
                }
            };
            let step = crate::backend::import_step(
                i,
                e,
                existing.as_ref().map(|(_, s, v)| (s.as_str(), *v)),
                current,
                last_time,
            )?;
            match step {
                crate::backend::ImportStep::Write => {
                    pending.insert(&e.stream, e.version);
                    last_time = e.time;
                    write.push(e);
                    if prepared.is_some() {
                        write_at.push(i);
                    }
                }
                crate::backend::ImportStep::Skip => {
                    newest_skipped = newest_skipped.max(existing.map_or(0, |(seq, _, _)| seq));
                }
            }
        }
        let skipped = (events.len() - write.len()) as u64;
        if write.is_empty() {
            let head = st.next_seq - 1;
            drop(guard);
            self.wait_durable(newest_skipped, false)?;
            return Ok(ImportResult {
                written: 0,
                skipped,
                head,
            });
        }
        let times: Vec<i64> = write.iter().map(|e| e.time).collect();
        // Each run of one stream's events is a part, numbered from the version before its
        // first event (`import_step` checked that the versions follow on). The events are
        // written from the caller's, not copied (a copy was 10% of a bulk load's CPU).
        let mut parts: Vec<Part<'_, &RecordedEvent>> = Vec::new();
        let mut bases: Vec<u64> = Vec::new();
        // The ids of every part are slices of one vector: a bulk load of new streams has a part
        // per event, and a vector each was an allocation per event.
        let all_ids: Vec<&str> = write.iter().map(|e| e.id.as_str()).collect();
        let mut ids: Vec<&[&str]> = Vec::new();
        let mut start = 0;
        for i in 1..=write.len() {
            if i == write.len() || write[i].stream != write[start].stream {
                parts.push(Part {
                    stream: &write[start].stream,
                    expected: ExpectedVersion::Any,
                    events: &write[start..i],
                });
                bases.push(write[start].version - 1);
                ids.push(&all_ids[start..i]);
                start = i;
            }
        }
        let tails = prepared.map(|p| Tails {
            prepared: p,
            at: &write_at,
        });
        let batch =
            self.commit_locked_at(st, &parts, &bases, &ids, None, Times::Each(&times), tails)?;
        drop(guard);
        self.wait_written(batch.last_seq)?;
        Ok(ImportResult {
            written: write.len() as u64,
            skipped,
            head: batch.last_seq,
        })
    }

    /// The append this one repeats, if it is a retry: by its idempotency key, or by its
    /// event ids when the caller gave them (the rules are `backend::replay_by_key` and
    /// `backend::replay_by_ids`, shared by every backend).
    fn find_retry(
        &self,
        st: &mut State,
        parts: &[Part<'_>],
        ids: &[Vec<String>],
        own_ids: bool,
        key: Option<&str>,
    ) -> Result<Option<Batch>> {
        if key.is_none() && !own_ids {
            return Ok(None);
        }
        let request = AppendRequest::multi(parts.iter().map(|p| StreamAppend {
            stream: p.stream.to_owned(),
            expected: p.expected,
            events: Vec::new(),
        }));
        let max_line = self.config.max_line();
        let found = match key {
            Some(key) => match lookup::find_term(st, Kind::Key, key)? {
                Some(first) => Some(crate::backend::replay_by_key(
                    &mut FileLookup { st, max_line },
                    &request,
                    key,
                    first,
                )?),
                None => None,
            },
            None => None,
        };
        let found = match found {
            None if own_ids => {
                let at: Vec<Option<u64>> = ids
                    .iter()
                    .flatten()
                    .map(|id| lookup::find_term(st, Kind::Id, id))
                    .collect::<Result<_>>()?;
                let prepared = crate::backend::Prepared {
                    ids: ids.to_vec(),
                    own_ids,
                };
                crate::backend::replay_by_ids(
                    &mut FileLookup { st, max_line },
                    &request,
                    &prepared,
                    &at,
                )?
            }
            f => f,
        };
        Ok(found.map(|r| Batch {
            results: r.streams.into_iter().map(|(_, a)| a).collect(),
            first_seq: r.first_seq,
            last_seq: r.last_seq,
            replayed: true,
        }))
    }

    /// Encodes and writes a batch whose checks have passed, under the state lock. Does not wait
    /// for durability.
    pub(crate) fn commit_locked(
        &self,
        st: &mut State,
        parts: &[Part<'_>],
        ids: &[Vec<String>],
        key: Option<&str>,
    ) -> Result<Batch> {
        let time = (self.clock)().max(st.last_time);
        let bases: Vec<u64> = parts
            .iter()
            .map(|p| st.version(p.stream))
            .collect::<Result<_>>()?;
        self.commit_locked_at(st, parts, &bases, ids, key, Times::One(time), None)
    }

    /// [`Inner::commit_locked`] with the events' times given: one for the whole batch (an
    /// append), or one per event (an import, whose times the caller checked never decrease),
    /// and each part's stream version before it in `bases` (the caller looked them up for its
    /// checks: a bulk load of new streams spent most of its time in the stream table). A stream
    /// may have several parts (an import); each continues the last. With `tails`, the records
    /// were encoded ahead but for their seqs (an import's, `import.rs`): each is copied after
    /// its seq and framed.
    #[allow(clippy::too_many_arguments)]
    fn commit_locked_at<E: Body, I: AsRef<str>, S: AsRef<[I]>>(
        &self,
        st: &mut State,
        parts: &[Part<'_, E>],
        bases: &[u64],
        ids: &[S],
        key: Option<&str>,
        times: Times<'_>,
        tails: Option<Tails<'_>>,
    ) -> Result<Batch> {
        // Encode the whole batch before touching the file, so a too-large event writes nothing.
        let mut time = times.at(0);
        let mut time_text = record::record_time(time);
        let total: usize = parts.iter().map(|p| p.events.len()).sum();
        let first_seq = st.next_seq;
        let mut buf = std::mem::take(&mut st.buf);
        buf.clear();
        let mut rel_offsets = Vec::with_capacity(total);
        let mut results = Vec::with_capacity(parts.len());
        let mut seq = first_seq;
        let mut written = 0;
        for ((p, ids), &base_version) in parts.iter().zip(ids).zip(bases) {
            for (i, (e, id)) in p.events.iter().zip(ids.as_ref()).enumerate() {
                let (e, id) = (e.body(), id.as_ref());
                let start = buf.len();
                if let Some(t) = &tails {
                    let tail = t.prepared.tail(t.at[written]);
                    written += 1;
                    record::encode_with_tail(&mut buf, seq, tail, None, written < total);
                    if let Err(err) = self.check_size(e.event_type, buf.len() - start) {
                        st.buf = buf;
                        return Err(err);
                    }
                    rel_offsets.push(start as u64);
                    seq += 1;
                    continue;
                }
                // An import's events often share a time: format it again only when it changes.
                if let Times::Each(_) = times
                    && times.at(written) != time
                {
                    time = times.at(written);
                    crate::time::write_rfc3339(time, &mut time_text);
                }
                written += 1;
                record::encode_record(
                    &mut buf,
                    &RecordOut {
                        seq,
                        id,
                        stream: p.stream,
                        version: base_version + 1 + i as u64,
                        event_type: e.event_type,
                        time: &time_text,
                        data: e.data,
                        meta: e.meta,
                        tags: e.tags,
                        key: key.filter(|_| written == 1),
                        more: written < total,
                    },
                );
                if let Err(err) = self.check_size(e.event_type, buf.len() - start) {
                    st.buf = buf;
                    return Err(err);
                }
                rel_offsets.push(start as u64);
                seq += 1;
            }
            let n = p.events.len() as u64;
            results.push(AppendResult {
                version: base_version + n,
                first_seq: seq - n,
                last_seq: seq - 1,
                replayed: false,
            });
        }
        let last_seq = seq - 1;

        if buf.len() as u64 > self.config.segment_bytes {
            let err = crate::backend::batch_too_large(buf.len(), self.config.segment_bytes);
            st.buf = buf;
            return Err(err);
        }
        let r = self.write_locked(st, &buf, &rel_offsets, times, (parts, ids, key));
        st.buf = buf;
        r?;
        Ok(Batch {
            results,
            first_seq,
            last_seq,
            replayed: false,
        })
    }

    /// Refuses an encoded record of `size` bytes above the event size limit.
    fn check_size(&self, event_type: &str, size: usize) -> Result<()> {
        if size > self.config.max_event_bytes {
            return Err(Error::EventTooLarge {
                event_type: event_type.to_owned(),
                size,
                max: self.config.max_event_bytes,
            });
        }
        Ok(())
    }

    /// Rolls the segment if it is full, writes the encoded batch, and updates the state.
    fn write_locked<E: Body, I: AsRef<str>, S: AsRef<[I]>>(
        &self,
        st: &mut State,
        buf: &[u8],
        rel_offsets: &[u64],
        times: Times<'_>,
        (parts, ids, key): BatchParts<'_, '_, E, S>,
    ) -> Result<()> {
        // A sidecar the sealer failed to write fails this append, as the roll it belonged to
        // used to: nothing is written, and the handle is poisoned.
        if let Err(e) = self.sealer.failed() {
            self.poison(st, &e);
            return Err(e);
        }
        let has_events = st.log.active_len > st.active().data_start;
        let full = st.log.active_len + buf.len() as u64 > self.config.segment_bytes;
        if has_events && (full || self.segment_too_old(st, times.at(0))) {
            self.roll(st)?;
        }
        let file = st
            .log
            .active_file
            .clone()
            .expect("writer has an active segment");
        let at = st.log.active_len;
        if let Err(e) = file.write_all_at(buf, at) {
            let err = Error::io("write", &st.active().path, e);
            self.poison(st, &err);
            return Err(err);
        }
        // A batch whose index entries take long enough to overlap its sync (`commit.rs`,
        // `Ahead`) asks for it now, before adding them.
        if rel_offsets.len() + 4 * parts.len() >= SYNC_AHEAD_WORK
            && self.commit.durability() == Durability::Fsync
        {
            let upto = st.next_seq - 1 + rel_offsets.len() as u64;
            self.ahead
                .request(upto, (Arc::clone(&file), st.active().path.clone()));
        }
        let mut seq = st.next_seq;
        let mut offsets = rel_offsets.iter().map(|o| at + o);
        for (p, ids) in parts.iter().zip(ids) {
            st.streams.add(p.stream, p.events.len() as u64);
            for (e, id) in p.events.iter().zip(ids.as_ref()) {
                let off = offsets.next().expect("one offset per event");
                let key = key.filter(|_| seq == st.next_seq);
                let time = times.at((seq - st.next_seq) as usize);
                let body = e.body();
                st.log
                    .active_index
                    .add(off, time, &event_terms(p.stream, id.as_ref(), &body, key));
                seq += 1;
            }
        }
        st.last_time = times.at((seq - st.next_seq) as usize - 1);
        self.metrics.appended(seq - st.next_seq, buf.len() as u64);
        st.next_seq = seq;
        st.log.active_len = at + buf.len() as u64;
        self.commit.written(seq - 1);
        Ok(())
    }

    /// Whether the active segment's first event is older than the policy's segment age.
    pub(crate) fn segment_too_old(&self, st: &State, now: i64) -> bool {
        let Some(age) = self.policy().segment_max_age else {
            return false;
        };
        st.log
            .active_index
            .first_time()
            .is_some_and(|t| now.saturating_sub(t) >= crate::time::micros_of(age))
    }

    /// Seals the active segment and starts the next: sync it, hand its index to the sealer
    /// (which encodes and writes the sidecar meanwhile: `sealer.rs`), create the new segment
    /// (header, fsync, directory fsync).
    pub(crate) fn roll(&self, st: &mut State) -> Result<()> {
        let r = (|| {
            // The previous segment's sidecar, if still in hand (and its failure).
            self.sealer.wait()?;
            // Beside a waiter's sync of the same file, perhaps: see `Commit::guarded_sync`.
            self.sync_active(st)?;
            // The sidecar is encoded and written by the sealer while appends go on
            // (`sealer.rs`); the next segment fills the index the sealer emptied last.
            let (sealed, mem) = st.seal_active_for_sealer(&self.storage, &self.dir)?;
            if let Some(spare) = self.sealer.spare() {
                st.log.spare_index = Some(spare);
            }
            let created = st.log.create(self.storage.as_ref(), &self.dir, st.next_seq);
            self.sealer.start(&self.storage, &self.dir, sealed, mem);
            created
        })();
        if let Err(e) = &r {
            self.poison(st, e);
        }
        r
    }

    /// Makes everything written durable, under the state lock: syncs the active segment unless
    /// a sync covered it already, and publishes the head. For a roll (before the segment is
    /// sealed) and a deletion (before it takes effect). A failure poisons the handle.
    pub(crate) fn sync_active(&self, st: &mut State) -> Result<()> {
        let upto = st.next_seq - 1;
        if self.commit.durable_upto() >= upto {
            return Ok(());
        }
        let Some(file) = st.log.active_file.clone() else {
            return Ok(());
        };
        let path = st.active().path.clone();
        let r = self
            .fdatasync(file.as_ref(), &path)
            .and_then(|()| self.commit.durable(upto));
        if let Err(e) = &r {
            self.poison(st, e);
        }
        r
    }

    /// Poisons the handle after a failed write or sync: appends are refused until reopen.
    pub(crate) fn poison(&self, st: &mut State, err: &Error) {
        let cause = err.to_string();
        self.commit.poison(&cause);
        st.poisoned.get_or_insert(cause);
    }

    /// Waits until every event up to `target` is durable (group commit: see `commit.rs`).
    /// With `force`, syncs even in the weaker durability modes. Any failure (a sync, or the
    /// published head after it) poisons the state too, so that later appends are refused before
    /// they write, in every durability mode. The caller holds no state lock.
    pub(crate) fn wait_durable(&self, target: u64, force: bool) -> Result<()> {
        self.commit
            .wait_durable(target, force, || self.sync_written())
            .map_err(|e| match e {
                // The sync asked for ahead of this wait failed: its error, as if this appender
                // had run it.
                Error::Poisoned { .. } => self.ahead.take_failure(target).unwrap_or(e),
                e => e,
            })
            .inspect_err(|e| {
                self.lock_state()
                    .poisoned
                    .get_or_insert_with(|| e.to_string());
            })
    }

    /// [`Inner::wait_durable`] for events this call wrote (or a retry found written). If the
    /// sync that was to cover them failed in another call, and the handle is poisoned, their
    /// outcome is unknown, as for the call whose sync failed: an [`Error::Io`] (retry with the
    /// same ids after a reopen), never [`Error::Poisoned`], which says nothing was written.
    pub(crate) fn wait_written(&self, target: u64) -> Result<()> {
        self.wait_durable(target, false).map_err(|e| match e {
            Error::Poisoned { cause } => self.sync_failed_elsewhere(&cause),
            e => e,
        })
    }

    /// The error of events written whose sync failed, in another call, with `cause`.
    pub(crate) fn sync_failed_elsewhere(&self, cause: &str) -> Error {
        let path = self.lock_state().active().path.clone();
        Error::io(
            "fdatasync",
            path,
            std::io::Error::other(format!(
                "the sync that was to cover this append failed: {cause}"
            )),
        )
    }

    /// Runs the sync a large batch asked for ahead (`commit.rs`, `Ahead`), on the handle's
    /// thread: a sync of `file` covers events up to `upto`, whose bytes were written before
    /// the request. Waits as [`Inner::wait_durable`] does, so it never runs beside another
    /// sync of the group commit, and a failure poisons the handle as theirs does.
    pub(crate) fn sync_ahead(&self, upto: u64, file: &dyn StorageFile, path: &Path) -> Result<()> {
        self.commit
            .wait_durable(upto, false, || self.sync_file(file, path).map(|()| upto))
            .inspect_err(|e| {
                self.lock_state()
                    .poisoned
                    .get_or_insert_with(|| e.to_string());
            })
    }

    /// Syncs everything written so far (the state lock is held only to see what that is);
    /// returns the seq it covers. A failure poisons the state too.
    fn sync_written(&self) -> Result<u64> {
        let (upto, file, path) = {
            let st = self.lock_state();
            (
                st.next_seq - 1,
                st.log
                    .active_file
                    .clone()
                    .expect("writer has an active segment"),
                st.active().path.clone(),
            )
        };
        self.sync_file(file.as_ref(), &path)?;
        Ok(upto)
    }

    /// [`Inner::fdatasync`], by a caller that holds no state lock: a failure poisons the state
    /// too before it is returned, so that no append writes after it.
    fn sync_file(&self, file: &dyn StorageFile, path: &Path) -> Result<()> {
        // The state lock only once the guard is done with: a roll waits in it under that lock.
        self.fdatasync(file, path).inspect_err(|err| {
            self.lock_state()
                .poisoned
                .get_or_insert_with(|| err.to_string());
        })
    }

    /// One `fdatasync` of a segment `file` (at `path`), through `Commit::guarded_sync` (which
    /// poisons the commit on failure), counted. Every sync of the log while the handle is open.
    fn fdatasync(&self, file: &dyn StorageFile, path: &Path) -> Result<()> {
        let started = std::time::Instant::now();
        self.commit.guarded_sync(|| {
            file.sync_data()
                .map_err(|e| Error::io("fdatasync", path, e))
        })?;
        self.metrics.synced(started.elapsed());
        Ok(())
    }
}
