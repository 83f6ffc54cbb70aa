//! The in-memory store: [`MemoryStore`], the whole [`EventStore`] contract with nothing on
//! disk, for applications' unit tests.
//!
//! It owns a log of events in a `Vec` (seq `n` at index `n - 1`) with a per-stream list of seqs,
//! the id and key look-ups, the deletion state and the snapshots, all behind one `RwLock`. It
//! keeps the file store's semantics by reusing its parts rather than restating them: the
//! validation of requests, batches, events and queries, [`Query::matches`], the record encoder
//! (so an event's size is measured exactly as the file store measures it), the replayed result
//! of a retry, the deletion state and `$lifecycle` event data, id assignment
//! (`backend::batch_ids`), the deletion rules (`deletion::plan`) and the snapshot rule
//! (`deletion::check_snapshot_version`). The few rules that live inside the file store's state
//! handling (what is a retry rather than a duplicate id) are restated here beside a reference
//! to their source, and the conformance suite (`crates/eventfile-conformance`) runs on both
//! stores to hold them together.
//!
//! It must never touch a file or the clock of another store, and never decide a rule of its
//! own: where it differs from the file store, it is because there is no disk (nothing is
//! durable, no retention, so `Expired` never happens and `log_start` is 1), and the differences
//! are written on [`MemoryStore`].

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use serde_json::value::RawValue;

use crate::api::{
    AppendRequest, DeleteResult, EventIter, EventStore, ImportResult, Snapshot, StreamInfo,
    TermCount,
};
use crate::backend::Part;
use crate::backend::{LogLookup, Logged, Prepared, replay_by_ids, replay_by_key};
use crate::config::{DEFAULT_MAX_EVENT_BYTES, DEFAULT_SEGMENT_BYTES, DEFAULT_SNAPSHOTS_KEPT};
use crate::deletion::{DeleteOp, Deletion, Deletions, LIFECYCLE_STREAM, is_live, plan};
use crate::error::{Error, Result};
use crate::event::{
    AppendResult, ExpectedVersion, MultiAppendResult, RecordedEvent, validate_id, validate_stream,
    validate_writable_stream,
};
use crate::lookup::Batch;
use crate::query::{Direction, Query, Read};
use crate::record::{self, RecordOut};
use crate::subscription::{Feed, FeedEvents, HeadWatch, Subscription, Waited};
use crate::time::{Micros, now_micros};

/// An event store held in memory, with the file store's semantics: for unit tests of code
/// written against [`EventStore`].
///
/// Every rule of the trait holds as it does for [`crate::Store`]: validation and its error
/// variants, expected versions, multi-stream atomicity, retries by event ids and by idempotency
/// key, DCB conditions, `$`-reserved streams, truncation, deletion and tombstones recorded as
/// `$lifecycle` events, snapshots, the catalog, UUIDv7 ids and commit times that never
/// decrease. The limits are those of a file store opened with the defaults: an event of more
/// than [`DEFAULT_MAX_EVENT_BYTES`] (measured as the file store's encoded record) is
/// [`Error::EventTooLarge`], a batch of more than [`DEFAULT_SEGMENT_BYTES`] is refused, and
/// the newest [`DEFAULT_SNAPSHOTS_KEPT`] snapshots of a stream are kept.
///
/// What differs, because there is no disk: nothing survives the last clone being dropped;
/// nothing is ever removed by retention, so [`Error::Expired`] never happens and `log_start` is
/// always 1; and the trait's reads return plain iterators, so no [`crate::Cursor`] is ever made
/// by this store and a query carrying one (made by another store) is refused.
///
/// Clones share the store; it may be used from any number of threads. An iterator sees the log
/// as it was when the read was made.
///
/// ```
/// use eventfile::{EventStore, ExpectedVersion, MemoryStore, NewEvent, Read};
/// let store = MemoryStore::new();
/// store.append("order-1", ExpectedVersion::NoStream, vec![
///     NewEvent::new("OrderPlaced", serde_json::json!({"total": 12})),
/// ])?;
/// let events: Vec<_> = store.read_stream("order-1", Read::forward())?.collect::<Result<_, _>>()?;
/// assert_eq!((events[0].seq, events[0].version), (1, 1));
/// # Ok::<(), eventfile::Error>(())
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    log: Arc<RwLock<Log>>,
    /// Wakes subscriptions and `wait_for` callers when the head moves.
    watch: Arc<HeadWatch>,
    /// Shared by the clones only: when the last goes, the store is closed and its
    /// subscriptions end.
    open: Arc<Open>,
}

/// Closes the watch when the store's last clone is dropped.
struct Open {
    watch: Arc<HeadWatch>,
    /// The consumers' checkpoints.
    checkpoints: crate::checkpoint::MemoryCheckpoints,
    /// What the store has done since it was made.
    counters: crate::metrics::Counters,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.watch.close();
    }
}

/// A write to the log: publishes the head when it is done, so that no change is made without
/// waking those waiting on it.
struct Writing<'a> {
    log: RwLockWriteGuard<'a, Log>,
    watch: &'a HeadWatch,
}

impl std::ops::Deref for Writing<'_> {
    type Target = Log;
    fn deref(&self) -> &Log {
        &self.log
    }
}

impl std::ops::DerefMut for Writing<'_> {
    fn deref_mut(&mut self) -> &mut Log {
        &mut self.log
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.watch.advance(self.log.head());
    }
}

/// The in-memory store's feed of a subscription: holds the store weakly.
struct MemoryFeed {
    log: Weak<RwLock<Log>>,
    open: Weak<Open>,
    watch: Arc<HeadWatch>,
}

impl MemoryFeed {
    fn upgrade(&self) -> Option<MemoryStore> {
        Some(MemoryStore {
            open: self.open.upgrade()?,
            log: self.log.upgrade()?,
            watch: Arc::clone(&self.watch),
        })
    }
}

impl Feed for MemoryFeed {
    fn read_after(&self, query: &Query, after: u64) -> Result<Option<(FeedEvents, u64)>> {
        let Some(store) = self.upgrade() else {
            return Ok(None);
        };
        store.run(query.clone().from_seq(after + 1)).map(Some)
    }

    fn bounds(&self, _fresh: bool) -> Result<Option<(u64, u64)>> {
        Ok(self.upgrade().map(|s| (s.read().head(), 1)))
    }

    fn wait_past(&self, after: u64, deadline: Option<std::time::Instant>) -> Waited {
        self.watch.wait_past(after, deadline)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        let watch = Arc::new(HeadWatch::new(0));
        MemoryStore {
            watch: Arc::clone(&watch),
            open: Arc::new(Open {
                watch,
                checkpoints: crate::checkpoint::MemoryCheckpoints::new(),
                counters: crate::metrics::Counters::new(),
            }),
            log: Arc::new(RwLock::new(Log {
                store_id: crate::config::new_store_id(),
                events: Vec::new(),
                streams: BTreeMap::new(),
                ids: HashMap::new(),
                keys: HashMap::new(),
                deleted: Arc::default(),
                snapshots: HashMap::new(),
                last_time: 0,
                buf: Vec::new(),
            })),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Log> {
        // Every change is made whole before the lock is released (checks first, then the
        // writes, none of which can panic halfway), so a panicking holder leaves a sound log.
        self.log.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> Writing<'_> {
        Writing {
            log: self.log.write().unwrap_or_else(|p| p.into_inner()),
            watch: &self.watch,
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let log = self.read();
        f.debug_struct("MemoryStore")
            .field("head_seq", &log.head())
            .field("streams", &log.streams.len())
            .finish_non_exhaustive()
    }
}

/// One event in the log, with whether more events of its batch follow (what a retry check
/// needs to know where a batch ends).
struct Stored {
    event: RecordedEvent,
    more: bool,
}

/// Everything the store holds.
struct Log {
    /// Names the store in the cursors it would make (it makes none): refuses other stores'.
    store_id: String,
    /// The log: seq `n` at index `n - 1`.
    events: Vec<Stored>,
    /// Per stream, the seqs of its events: version `v` at index `v - 1`.
    streams: BTreeMap<String, Vec<u64>>,
    /// Event id to the seq holding it (deleted events included, as the file store's id index).
    ids: HashMap<String, u64>,
    /// Idempotency key to the first seq of the batch it was used for.
    keys: HashMap<String, u64>,
    /// What is deleted, per stream; copied by reads, replaced on change.
    deleted: Arc<Deletions>,
    /// Per stream, its snapshots by version.
    snapshots: HashMap<String, BTreeMap<u64, Snapshot>>,
    /// Time of the last batch: times never decrease.
    last_time: Micros,
    /// Scratch space for measuring encoded events.
    buf: Vec<u8>,
}

impl Log {
    fn head(&self) -> u64 {
        self.events.len() as u64
    }

    fn version(&self, stream: &str) -> u64 {
        self.streams.get(stream).map_or(0, |s| s.len() as u64)
    }

    fn stored(&self, seq: u64) -> Option<&Stored> {
        let i = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.events.get(i)
    }

    /// What is deleted of `stream`; a tombstoned stream is [`Error::StreamDeleted`] (the file
    /// store's `State::deletion`).
    fn deletion(&self, stream: &str) -> Result<Option<Deletion>> {
        match self.deleted.get(stream) {
            Some(d) if d.tombstone => Err(Error::StreamDeleted {
                stream: stream.to_owned(),
                version: d.before - 1,
            }),
            d => Ok(d.copied()),
        }
    }

    /// The seq of the first live event after `after` that `q` selects (the file store's
    /// `reader::first_match`): its direction, limit and cursor are ignored.
    fn first_match(&self, q: &Query, after: u64) -> Option<u64> {
        let mut q = q.clone();
        q.direction = Direction::Forward;
        q.limit = None;
        q.after = None;
        q.from_seq = Some(q.from_seq.unwrap_or(0).max(after.saturating_add(1)));
        let (lo, hi) = q.seq_bounds(self.head());
        (lo..=hi).find(|&seq| {
            self.stored(seq).is_some_and(|s| {
                q.matches(&s.event) && is_live(&self.deleted, &s.event.stream, s.event.version)
            })
        })
    }

    /// Writes a batch whose checks have passed (the file store's `Inner::commit_locked`): one
    /// time for the whole batch, never before the last, and every event measured as the file
    /// store's record before anything is written.
    fn commit(
        &mut self,
        parts: &[Part<'_>],
        ids: &[Vec<String>],
        key: Option<&str>,
    ) -> Result<Batch> {
        let time = now_micros().max(self.last_time);
        let time_text = record::record_time(time);
        let total: usize = parts.iter().map(|p| p.events.len()).sum();
        let first_seq = self.head() + 1;
        let mut buf = std::mem::take(&mut self.buf);
        let mut bytes = 0;
        let mut seq = first_seq;
        let mut written = 0;
        for (p, ids) in parts.iter().zip(ids) {
            let base_version = self.version(p.stream);
            for (i, (e, id)) in p.events.iter().zip(ids).enumerate() {
                written += 1;
                buf.clear();
                record::encode_record(
                    &mut buf,
                    &RecordOut {
                        seq,
                        id,
                        stream: p.stream,
                        version: base_version + 1 + i as u64,
                        event_type: &e.event_type,
                        time: &time_text,
                        data: &e.data,
                        meta: &e.meta,
                        tags: &e.tags,
                        key: key.filter(|_| written == 1),
                        more: written < total,
                    },
                );
                if buf.len() > DEFAULT_MAX_EVENT_BYTES {
                    let size = buf.len();
                    self.buf = buf;
                    return Err(Error::EventTooLarge {
                        event_type: e.event_type.clone(),
                        size,
                        max: DEFAULT_MAX_EVENT_BYTES,
                    });
                }
                bytes += buf.len();
                seq += 1;
            }
        }
        self.buf = buf;
        if bytes as u64 > DEFAULT_SEGMENT_BYTES {
            return Err(crate::backend::batch_too_large(
                bytes,
                DEFAULT_SEGMENT_BYTES,
            ));
        }

        let mut results = Vec::with_capacity(parts.len());
        let mut seq = first_seq;
        for (p, ids) in parts.iter().zip(ids) {
            let seqs = self.streams.entry(p.stream.to_owned()).or_default();
            for (e, id) in p.events.iter().zip(ids) {
                seqs.push(seq);
                self.ids.insert(id.clone(), seq);
                self.events.push(Stored {
                    event: RecordedEvent {
                        seq,
                        id: id.clone(),
                        stream: p.stream.to_owned(),
                        version: seqs.len() as u64,
                        event_type: e.event_type.clone(),
                        time,
                        data: e.data.clone(),
                        meta: e.meta.clone(),
                        tags: e.tags.clone(),
                    },
                    more: seq - first_seq + 1 < total as u64,
                });
                seq += 1;
            }
            let n = p.events.len() as u64;
            results.push(AppendResult {
                version: seqs.len() as u64,
                first_seq: seq - n,
                last_seq: seq - 1,
                replayed: false,
            });
        }
        if let Some(key) = key {
            self.keys.insert(key.to_owned(), first_seq);
        }
        self.last_time = time;
        Ok(Batch {
            results,
            first_seq,
            last_seq: seq - 1,
            replayed: false,
        })
    }
}

impl MemoryStore {
    /// Truncation, deletion and tombstones, with the file store's rules (`Store::lifecycle`
    /// in `lifecycle.rs`): each change is a `$lifecycle` event, and a change that changes
    /// nothing writes nothing.
    fn lifecycle(&self, stream: &str, op: DeleteOp) -> Result<DeleteResult> {
        validate_writable_stream(stream)?;
        let mut log = self.write();
        let version = log.version(stream);
        let old = log.deletion(stream)?;
        let (event, merged) = match plan(stream, version, old, op)? {
            Ok(change) => change,
            Err(unchanged) => return Ok(unchanged),
        };
        let events = [event];
        let parts = [Part {
            stream: LIFECYCLE_STREAM,
            expected: ExpectedVersion::Any,
            events: &events,
        }];
        let ids = vec![vec![crate::backend::new_event_id()]];
        let batch = log.commit(&parts, &ids, None)?;
        // An append of one event, as the file store counts its `$lifecycle` event.
        self.open.counters.appended(1, 0);
        Arc::make_mut(&mut log.deleted).insert(stream.to_owned(), merged);
        if !matches!(op, DeleteOp::Truncate(_)) {
            log.snapshots.remove(stream);
        }
        Ok(DeleteResult {
            stream: stream.to_owned(),
            version,
            deleted_before: merged.before,
            tombstone: merged.tombstone,
            seq: Some(batch.last_seq),
        })
    }

    /// An append that is no retry: the expectations and the condition, then the write.
    fn append_checked(
        &self,
        mut log: Writing<'_>,
        request: &AppendRequest,
        parts: &[Part<'_>],
        ids: &[Vec<String>],
        key: Option<&str>,
    ) -> Result<MultiAppendResult> {
        for p in parts {
            let actual = log.version(p.stream);
            log.deletion(p.stream)?;
            crate::backend::check_expected(p.stream, p.expected, actual)?;
        }
        if let Some(c) = &request.condition {
            let head = log.head();
            if c.after > head {
                return Err(Error::invalid(
                    "append condition",
                    format!("position {} is above the head seq {head}", c.after),
                ));
            }
            if let Some(seq) = log.first_match(&c.query, c.after) {
                return Err(Error::ConditionFailed {
                    seq,
                    after: c.after,
                });
            }
        }
        let batch = log.commit(parts, ids, key)?;
        self.open
            .counters
            .appended(batch.last_seq + 1 - batch.first_seq, 0);
        Ok(MultiAppendResult {
            streams: request
                .streams
                .iter()
                .map(|a| a.stream.clone())
                .zip(batch.results)
                .collect(),
            first_seq: batch.first_seq,
            last_seq: batch.last_seq,
            replayed: batch.replayed,
        })
    }

    /// Refuses a cursor this store did not make (the file store's `check_cursor`).
    fn check_cursor(log: &Log, q: &Query) -> Result<()> {
        match &q.after {
            Some(c) if c.store_id != log.store_id => Err(Error::invalid(
                "cursor",
                "the cursor belongs to another store",
            )),
            _ => Ok(()),
        }
    }

    /// A query's events, and the head they are read up to.
    fn run(&self, q: Query) -> Result<(EventIter, u64)> {
        q.validate()?;
        let log = self.read();
        MemoryStore::check_cursor(&log, &q)?;
        let (lo, hi) = q.seq_bounds(log.head());
        let walk = Walk::new(lo, hi, q.direction == Direction::Backward);
        let remaining = q.limit.unwrap_or(usize::MAX);
        let events: EventIter = Box::new(Events {
            log: Arc::clone(&self.log),
            walk,
            source: Source::Log(Box::new(q)),
            deleted: Arc::clone(&log.deleted),
            remaining,
        });
        Ok((events, log.head()))
    }
}

impl EventStore for MemoryStore {
    fn append_request(&self, request: AppendRequest) -> Result<MultiAppendResult> {
        request.validate()?;
        let parts = crate::backend::parts(&request.streams);
        crate::backend::validate(&parts)?;
        let (ids, own_ids) = crate::backend::batch_ids(&parts)?;
        let key = request.key.as_deref();

        let log = self.write();
        let first = key.and_then(|k| Some((k, *log.keys.get(k)?)));
        if let Some((key, first)) = first {
            return replay_by_key(&mut Lookup(&log), &request, key, first);
        }
        if own_ids {
            let found: Vec<Option<u64>> = ids
                .iter()
                .flatten()
                .map(|id| log.ids.get(id).copied())
                .collect();
            let prepared = Prepared { ids, own_ids };
            if let Some(r) = replay_by_ids(&mut Lookup(&log), &request, &prepared, &found)? {
                return Ok(r);
            }
            return self.append_checked(log, &request, &parts, &prepared.ids, key);
        }
        self.append_checked(log, &request, &parts, &ids, key)
    }

    fn read_stream(&self, stream: &str, read: Read) -> Result<EventIter> {
        validate_stream(stream)?;
        let log = self.read();
        let backward = read.direction == Direction::Backward;
        let deleted_before = log.deletion(stream)?.map_or(1, |d| d.before);
        let version = log.version(stream);
        let (lo, hi) = if backward {
            (deleted_before, read.from.unwrap_or(u64::MAX).min(version))
        } else {
            (read.from.unwrap_or(1).max(deleted_before), version)
        };
        Ok(Box::new(Events {
            log: Arc::clone(&self.log),
            walk: Walk::new(lo, hi, backward),
            source: Source::Stream(stream.to_owned()),
            deleted: Arc::clone(&log.deleted),
            remaining: read.limit.unwrap_or(usize::MAX),
        }))
    }

    fn read_all(&self, read: Read) -> Result<EventIter> {
        Ok(self.run(read.log_query())?.0)
    }

    fn query(&self, query: &Query) -> Result<EventIter> {
        Ok(self.run(query.clone())?.0)
    }

    fn subscribe(&self, query: &Query, from: u64) -> Result<Subscription> {
        MemoryStore::check_cursor(&self.read(), query)?;
        let feed = MemoryFeed {
            log: Arc::downgrade(&self.log),
            open: Arc::downgrade(&self.open),
            watch: Arc::clone(&self.watch),
        };
        Subscription::new(Box::new(feed), query, from)
    }

    fn wait_for(&self, seq: u64, timeout: std::time::Duration) -> Result<bool> {
        Ok(self.watch.wait_for(seq, timeout))
    }

    fn count(&self, query: &Query) -> Result<u64> {
        query.validate()?;
        let log = self.read();
        MemoryStore::check_cursor(&log, query)?;
        let (lo, hi) = query.seq_bounds(log.head());
        let n = (lo..=hi)
            .filter_map(|seq| log.stored(seq))
            .filter(|s| {
                query.matches(&s.event) && is_live(&log.deleted, &s.event.stream, s.event.version)
            })
            .count();
        Ok(n as u64)
    }

    fn get_event(&self, id: &str) -> Result<Option<RecordedEvent>> {
        validate_id(id)?;
        let log = self.read();
        Ok(log
            .ids
            .get(id)
            .and_then(|&seq| log.stored(seq))
            .filter(|s| is_live(&log.deleted, &s.event.stream, s.event.version))
            .map(|s| s.event.clone()))
    }

    fn stream_version(&self, stream: &str) -> Result<u64> {
        Ok(self.read().version(stream))
    }

    fn head_seq(&self) -> Result<u64> {
        Ok(self.read().head())
    }

    fn log_start(&self) -> Result<u64> {
        Ok(1)
    }

    fn streams(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<StreamInfo>> {
        let log = self.read();
        let lower = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        Ok(log
            .streams
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            // Deletion removes a prefix of a stream: it holds a live event if its last is live.
            .filter(|(name, seqs)| is_live(&log.deleted, name, seqs.len() as u64))
            .take(limit)
            .map(|(name, seqs)| StreamInfo {
                stream: name.clone(),
                version: seqs.len() as u64,
            })
            .collect())
    }

    fn event_types(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        Ok(self.term_counts(after, limit, |e| vec![e.event_type.as_str()]))
    }

    fn tags(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        Ok(self.term_counts(after, limit, |e| {
            // A tag repeated on one event counts once, as in the file store's index.
            let mut tags: Vec<&str> = e.tags.iter().map(String::as_str).collect();
            tags.sort_unstable();
            tags.dedup();
            tags
        }))
    }

    fn save_snapshot(&self, stream: &str, version: u64, state: &RawValue) -> Result<Snapshot> {
        validate_stream(stream)?;
        let state = crate::backend::snapshot_state(state)?;
        let mut log = self.write();
        let current = log.version(stream);
        let deleted = log.deletion(stream)?;
        crate::deletion::check_snapshot_version(stream, version, current, deleted)?;
        let snapshot = Snapshot {
            stream: stream.to_owned(),
            version,
            time: now_micros(),
            state,
        };
        let kept = log.snapshots.entry(stream.to_owned()).or_default();
        kept.insert(version, snapshot.clone());
        while kept.len() > DEFAULT_SNAPSHOTS_KEPT {
            kept.pop_first();
        }
        Ok(snapshot)
    }

    fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>> {
        validate_stream(stream)?;
        let log = self.read();
        let current = log.version(stream);
        let deleted = log.deletion(stream)?;
        Ok(log.snapshots.get(stream).and_then(|kept| {
            kept.values()
                .rev()
                .find(|s| crate::deletion::snapshot_usable(s.version, current, deleted))
                .cloned()
        }))
    }

    fn truncate_stream(&self, stream: &str, before: u64) -> Result<DeleteResult> {
        self.lifecycle(stream, DeleteOp::Truncate(before))
    }

    fn delete_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult> {
        self.lifecycle(stream, DeleteOp::Delete(expected))
    }

    fn tombstone_stream(&self, stream: &str, expected: ExpectedVersion) -> Result<DeleteResult> {
        self.lifecycle(stream, DeleteOp::Tombstone(expected))
    }

    fn checkpoints(&self) -> &dyn crate::checkpoint::Checkpoints {
        &self.open.checkpoints
    }

    fn metrics(&self) -> crate::metrics::Metrics {
        self.open.counters.snapshot()
    }

    fn import(&self, events: &[RecordedEvent]) -> Result<ImportResult> {
        crate::backend::check_import(events)?;
        let mut log = self.write();
        // Every check first, then the writes, so a refused import writes nothing.
        let mut pending: HashMap<&str, u64> = HashMap::new();
        let mut last_time = log.last_time;
        let mut write = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let existing = log
                .ids
                .get(&e.id)
                .and_then(|&seq| log.stored(seq))
                .map(|s| (s.event.stream.as_str(), s.event.version));
            // Decided before the stream's state is looked at: what is already there is
            // skipped even in a stream tombstoned since.
            let current = match (&existing, pending.get(e.stream.as_str())) {
                (Some(_), _) => 0,
                (None, Some(&v)) => v,
                (None, None) => {
                    log.deletion(&e.stream)?;
                    log.version(&e.stream)
                }
            };
            if crate::backend::import_step(i, e, existing, current, last_time)?
                == crate::backend::ImportStep::Write
            {
                pending.insert(&e.stream, e.version);
                last_time = e.time;
                write.push(e);
            }
        }
        let skipped = (events.len() - write.len()) as u64;
        // The batch's limit, as the file store measures it (its encoded records): an import
        // larger than a segment is refused there, so it is here.
        let mut buf = std::mem::take(&mut log.buf);
        let mut bytes = 0;
        for (i, e) in write.iter().enumerate() {
            buf.clear();
            record::encode_record(
                &mut buf,
                &RecordOut {
                    seq: log.head() + 1 + i as u64,
                    id: &e.id,
                    stream: &e.stream,
                    version: e.version,
                    event_type: &e.event_type,
                    time: &record::record_time(e.time),
                    data: &e.data,
                    meta: &e.meta,
                    tags: &e.tags,
                    key: None,
                    more: i + 1 < write.len(),
                },
            );
            bytes += buf.len();
        }
        log.buf = buf;
        if bytes as u64 > DEFAULT_SEGMENT_BYTES {
            return Err(crate::backend::batch_too_large(
                bytes,
                DEFAULT_SEGMENT_BYTES,
            ));
        }
        // One append, as the file store writes it.
        for (i, e) in write.iter().enumerate() {
            let seq = log.head() + 1;
            log.streams.entry(e.stream.clone()).or_default().push(seq);
            log.ids.insert(e.id.clone(), seq);
            let mut event = (*e).clone();
            event.seq = seq;
            log.events.push(Stored {
                event,
                more: i + 1 < write.len(),
            });
        }
        log.last_time = last_time;
        if !write.is_empty() {
            self.open.counters.appended(write.len() as u64, 0);
        }
        Ok(ImportResult {
            written: write.len() as u64,
            skipped,
            head: log.head(),
        })
    }
}

impl MemoryStore {
    /// Live events per term (`terms` gives an event's terms, each once), in name order, after
    /// `after`, at most `limit`: what `count` gives for a query on the term.
    fn term_counts(
        &self,
        after: Option<&str>,
        limit: usize,
        terms: impl Fn(&RecordedEvent) -> Vec<&str>,
    ) -> Vec<TermCount> {
        let log = self.read();
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for s in &log.events {
            let e = &s.event;
            if !is_live(&log.deleted, &e.stream, e.version) {
                continue;
            }
            for t in terms(e) {
                if after.is_none_or(|a| t > a) {
                    *counts.entry(t).or_default() += 1;
                }
            }
        }
        counts
            .into_iter()
            .take(limit)
            .map(|(name, count)| TermCount {
                name: name.to_owned(),
                count,
            })
            .collect()
    }
}

/// The log as the retry rules read it.
struct Lookup<'a>(&'a Log);

impl LogLookup for Lookup<'_> {
    fn logged(&mut self, seq: u64) -> Result<Option<Logged>> {
        Ok(self.0.stored(seq).map(|s| Logged {
            event: s.event.clone(),
            more: s.more,
        }))
    }
}

/// The positions a read visits, `lo..=hi` in either direction.
struct Walk {
    next: u64,
    last: u64,
    backward: bool,
    done: bool,
}

impl Walk {
    fn new(lo: u64, hi: u64, backward: bool) -> Walk {
        let lo = lo.max(1);
        Walk {
            next: if backward { hi } else { lo },
            last: if backward { lo } else { hi },
            backward,
            done: lo > hi,
        }
    }

    fn step(&mut self) -> Option<u64> {
        if self.done {
            return None;
        }
        let at = self.next;
        if at == self.last {
            self.done = true;
        } else if self.backward {
            self.next -= 1;
        } else {
            self.next += 1;
        }
        Some(at)
    }
}

/// What a read visits: one stream's versions, or the log's seqs under a query.
enum Source {
    Stream(String),
    Log(Box<Query>),
}

/// A read: visits its positions, taking the lock for each event it returns. The positions and
/// the deletion state were fixed when the read was made, so it sees the log as it was then.
struct Events {
    log: Arc<RwLock<Log>>,
    walk: Walk,
    source: Source,
    deleted: Arc<Deletions>,
    remaining: usize,
}

impl Iterator for Events {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let log = self.log.read().unwrap_or_else(|p| p.into_inner());
        while let Some(at) = self.walk.step() {
            let stored = match &self.source {
                Source::Stream(name) => log
                    .streams
                    .get(name)
                    .and_then(|seqs| seqs.get(usize::try_from(at - 1).ok()?))
                    .and_then(|&seq| log.stored(seq)),
                Source::Log(_) => log.stored(at),
            };
            let Some(s) = stored else {
                continue;
            };
            let e = &s.event;
            let wanted = match &self.source {
                Source::Stream(_) => true,
                Source::Log(q) => q.matches(e),
            };
            if wanted && is_live(&self.deleted, &e.stream, e.version) {
                self.remaining -= 1;
                return Some(Ok(e.clone()));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::NewEvent;
    use serde_json::json;

    fn ev(n: u64) -> NewEvent {
        NewEvent::new("T", json!({ "n": n }))
    }

    /// The newest three snapshots are kept, as the file store's default `snapshots_kept`
    /// (not observable through the trait, which loads only the newest).
    #[test]
    fn only_the_newest_snapshots_are_kept() {
        let store = MemoryStore::new();
        for v in 1..=6 {
            store
                .append("s", ExpectedVersion::Any, vec![ev(v)])
                .unwrap();
            let state = serde_json::value::to_raw_value(&json!({ "v": v })).unwrap();
            store.save_snapshot("s", v, &state).unwrap();
        }
        let kept: Vec<u64> = store.read().snapshots["s"].keys().copied().collect();
        assert_eq!(kept, [4, 5, 6]);
    }

    /// An event is measured as the file store's record: the limit falls on the same byte.
    #[test]
    fn the_size_limit_is_the_file_stores_record_size() {
        let store = MemoryStore::new();
        let at = |pad: usize| NewEvent::new("T", json!({ "p": "x".repeat(pad) }));
        // Find the largest padding accepted, then check one byte more is refused.
        let (mut lo, mut hi) = (0, DEFAULT_MAX_EVENT_BYTES);
        while lo + 1 < hi {
            let mid = (lo + hi) / 2;
            let probe = MemoryStore::new();
            match probe.append("s", ExpectedVersion::Any, vec![at(mid)]) {
                Ok(_) => lo = mid,
                Err(Error::EventTooLarge { .. }) => hi = mid,
                Err(e) => panic!("{e}"),
            }
        }
        let err = store
            .append("s", ExpectedVersion::Any, vec![at(hi)])
            .unwrap_err();
        match err {
            Error::EventTooLarge { size, max, .. } => {
                assert_eq!(
                    (size, max),
                    (DEFAULT_MAX_EVENT_BYTES + 1, DEFAULT_MAX_EVENT_BYTES)
                );
            }
            other => panic!("{other}"),
        }
        let dir = tempfile::tempdir().unwrap();
        let file = crate::Store::open(dir.path()).unwrap();
        assert!(file.append("s", ExpectedVersion::Any, [at(lo)]).is_ok());
        assert!(matches!(
            file.append("s", ExpectedVersion::Any, [at(hi)]),
            Err(Error::EventTooLarge { .. })
        ));
    }

    /// A deletion writes its `$lifecycle` event, counted as an append of one event as the file
    /// store counts it (it was not counted at all).
    #[test]
    fn a_deletion_counts_as_an_append_of_one_event() {
        let dir = tempfile::tempdir().unwrap();
        for store in [
            Box::new(MemoryStore::new()) as Box<dyn EventStore>,
            Box::new(crate::Store::open(dir.path()).unwrap()),
        ] {
            store
                .append("s", ExpectedVersion::Any, vec![ev(1)])
                .unwrap();
            let before = store.metrics();
            store.delete_stream("s", ExpectedVersion::Any).unwrap();
            let after = store.metrics();
            assert_eq!(
                (after.appends - before.appends, after.events - before.events),
                (1, 1)
            );
        }
    }

    /// An import larger than a segment is refused, as the file store refuses it (and as this
    /// store refuses such an append); it was written whole.
    #[test]
    fn an_import_larger_than_a_segment_is_refused() {
        let source = MemoryStore::new();
        let pad = "x".repeat(4_000_000);
        for n in 0..17 {
            source
                .append(
                    "s",
                    ExpectedVersion::Any,
                    vec![NewEvent::new("T", json!({ "n": n, "p": pad }))],
                )
                .unwrap();
        }
        let events: Vec<RecordedEvent> = source
            .read_all(crate::Read::forward())
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        let dst = MemoryStore::new();
        let err = dst.import(&events).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{err}");
        assert_eq!(dst.head_seq().unwrap(), 0);
        let dir = tempfile::tempdir().unwrap();
        let file = crate::Store::open(dir.path()).unwrap();
        assert_eq!(
            file.import(&events).unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
        // Half of it goes in.
        assert_eq!(dst.import(&events[..8]).unwrap().written, 8);
    }
}
