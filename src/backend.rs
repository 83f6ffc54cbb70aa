//! What a backend needs to keep the file store's rules without restating them: for the crates
//! that implement [`EventStore`](crate::EventStore) over another medium (`eventfile-sqlite`,
//! `eventfile-postgres`) and for [`crate::MemoryStore`].
//!
//! It owns the rules that are not about storage: the checks of an append before anything is
//! locked ([`prepare`]), how a retry is told from a duplicate id and what it returns
//! ([`replay_by_key`], [`replay_by_ids`]), the deletion rules ([`plan_deletion`],
//! [`check_snapshot_version`]), what a query selects ([`QueryView`], [`matches()`]) and the
//! checks of an import ([`check_import`]), and the shape shared by backends' paged reads and
//! grouped appends ([`paged_size_hint`], [`append_prepared`]). It never touches a file, a connection or a clock of
//! a backend's: each function takes what the backend read and says what to do.
//!
//! These items are for backend authors; applications use the [`crate::EventStore`] trait.

use serde_json::value::RawValue;

use crate::api::{AppendRequest, DeleteResult};
use crate::config::{DEFAULT_MAX_EVENT_BYTES, DEFAULT_SEGMENT_BYTES};
use crate::error::{Error, Result};
use crate::event::{AppendResult, ExpectedVersion, MultiAppendResult, NewEvent, RecordedEvent};
use crate::event::{Body, StreamAppend, validate_event, validate_writable_stream};
use crate::query::{Direction, Query};
use crate::record::{self, RecordOut};
use crate::time::Micros;

pub use crate::checkpoint::{
    clip_error as clip_checkpoint_error, position_i64 as checkpoint_position,
    validate_name as check_checkpoint_name,
};
pub use crate::deletion::LIFECYCLE_STREAM;

/// An append that passed every check a store can make without its data: its event ids, each
/// part's, in order (the caller's, or fresh UUIDv7s).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Prepared {
    /// Per stream part, its events' ids.
    pub ids: Vec<Vec<String>>,
    /// Whether the caller gave any id: only then can the append be a retry by ids.
    pub own_ids: bool,
}

/// Checks an append as every backend must before taking any lock: the key, the condition's
/// query, the streams (writable, none twice, none empty), every event (type, id, tags,
/// metadata), the ids (the caller's may not repeat), and the size of every event as the file
/// store encodes it ([`Error::EventTooLarge`] above [`DEFAULT_MAX_EVENT_BYTES`]; a batch above
/// [`DEFAULT_SEGMENT_BYTES`] is refused). Sizes are measured with positions of the largest
/// width, so a backend refuses exactly what a file store with default options could refuse at
/// its largest positions.
pub fn prepare(request: &AppendRequest) -> Result<Prepared> {
    prepare_limited(request, DEFAULT_MAX_EVENT_BYTES)
}

/// [`crate::EventStore::append_requests`] for a backend that commits whatever is queued
/// together: each request is checked by [`prepare`] and then by `ready` (the backend's own
/// check: a poisoned handle, or input the backend cannot store); one refused there gets its
/// error in its place and is not queued. `commit` gets the others, in order, and returns their
/// outcomes in that order.
pub fn append_prepared(
    requests: Vec<AppendRequest>,
    ready: impl Fn(&AppendRequest) -> Result<()>,
    commit: impl FnOnce(Vec<(AppendRequest, Prepared)>) -> Vec<Result<MultiAppendResult>>,
) -> Vec<Result<MultiAppendResult>> {
    let mut refused = Vec::with_capacity(requests.len());
    let mut queued = Vec::with_capacity(requests.len());
    for request in requests {
        match prepare(&request).and_then(|p| ready(&request).map(|()| p)) {
            Ok(p) => {
                refused.push(None);
                queued.push((request, p));
            }
            Err(e) => refused.push(Some(e)),
        }
    }
    let mut committed = commit(queued).into_iter();
    refused
        .into_iter()
        .map(|r| match r {
            Some(e) => Err(e),
            None => committed.next().unwrap_or_else(|| {
                Err(Error::Aborted {
                    op: "append_requests",
                    reason: "the backend returned fewer outcomes than requests".to_owned(),
                })
            }),
        })
        .collect()
}

/// The size hint of a read that fetches pages of events: at least the events `buffered` (so a
/// caller collecting them can reserve room), at most the `remaining` limit (`usize::MAX`: none),
/// exactly what is buffered once the read is `done`.
pub fn paged_size_hint(buffered: usize, remaining: usize, done: bool) -> (usize, Option<usize>) {
    let buffered = buffered.min(remaining);
    if done {
        return (buffered, Some(buffered));
    }
    (buffered, (remaining != usize::MAX).then_some(remaining))
}

/// [`prepare`] with a store's own limit on an event's encoded size.
fn prepare_limited(request: &AppendRequest, max_event_bytes: usize) -> Result<Prepared> {
    request.validate()?;
    let parts = parts(&request.streams);
    validate(&parts)?;
    let (ids, own_ids) = batch_ids(&parts)?;
    let mut sizer = Sizer::new(max_event_bytes);
    // Upper bounds first; only if they add up to more than a segment, the exact sizes.
    for exact in [false, true] {
        let mut bytes = 0usize;
        for (p, ids) in parts.iter().zip(&ids) {
            for (e, id) in p.events.iter().zip(ids) {
                bytes += sizer.check(id, p.stream, e, request.key.as_deref(), exact)?;
            }
        }
        if bytes as u64 <= DEFAULT_SEGMENT_BYTES {
            break;
        }
        if exact {
            return Err(batch_too_large(bytes, DEFAULT_SEGMENT_BYTES));
        }
    }
    Ok(Prepared { ids, own_ids })
}

/// Measures events as the file store encodes them at its widest positions, refusing one above
/// the size limit with [`Error::EventTooLarge`].
struct Sizer {
    max: usize,
    /// The widest time a record can carry.
    time: String,
    buf: Vec<u8>,
}

impl Sizer {
    fn new(max: usize) -> Sizer {
        Sizer {
            max,
            time: record::record_time(Micros::MAX),
            buf: Vec::new(),
        }
    }

    /// The encoded size of event `e` with `id` in `stream` (and `key`) at the widest seq,
    /// version and time, or, unless `exact`, an upper bound of it when that bound is within the
    /// limit: an event far below the limit, nearly every one, is not encoded just to be
    /// measured (that was 12% of an import).
    fn check(
        &mut self,
        id: &str,
        stream: &str,
        e: &impl Body,
        key: Option<&str>,
        exact: bool,
    ) -> Result<usize> {
        let e = e.body();
        let r = RecordOut {
            seq: u64::MAX,
            id,
            stream,
            version: u64::MAX,
            event_type: e.event_type,
            time: &self.time,
            data: e.data,
            meta: e.meta,
            tags: e.tags,
            key,
            more: true,
        };
        // serde_json writes a byte of a string as at most 6 (`\u001f`); data is copied as it
        // is; the field names, numbers, time, crc and punctuation take less than 256 bytes.
        let escaped = r.id.len()
            + r.stream.len()
            + r.event_type.len()
            + r.key.map_or(0, str::len)
            + r.tags.iter().map(|t| t.len() + 1).sum::<usize>();
        // Counted without serialising it (that was 3% of a bulk load).
        let meta = record::meta_len_bound(r.meta);
        let bound = 6 * escaped + 2 * r.tags.len() + r.data.get().len() + meta + 256;
        if !exact && bound <= self.max {
            return Ok(bound);
        }
        self.buf.clear();
        record::encode_record(&mut self.buf, &r);
        if self.buf.len() > self.max {
            return Err(Error::EventTooLarge {
                event_type: r.event_type.to_owned(),
                size: self.buf.len(),
                max: self.max,
            });
        }
        Ok(self.buf.len())
    }
}

/// An append whose events encode to more than a segment holds: every backend refuses it.
pub(crate) fn batch_too_large(bytes: usize, segment_bytes: u64) -> Error {
    Error::invalid(
        "append",
        format!(
            "the batch encodes to {bytes} bytes, more than the segment size of {segment_bytes} \
             bytes"
        ),
    )
}

/// One stream's part of a batch, borrowed: of an append's [`NewEvent`]s, or (in an import) of
/// the [`RecordedEvent`]s given, written as they are.
pub(crate) struct Part<'a, E = NewEvent> {
    pub stream: &'a str,
    pub expected: ExpectedVersion,
    pub events: &'a [E],
}

/// The ids of a batch, per part: the caller's, or fresh UUIDv7s; and whether the caller gave
/// any (only then can the append be a retry). Ids the caller gave must not repeat within the
/// batch. Every backend assigns ids by this rule.
pub(crate) fn batch_ids(parts: &[Part<'_>]) -> Result<(Vec<Vec<String>>, bool)> {
    let mut fresh = EventIds::reserve(parts.iter().map(|p| p.events.len()).sum());
    let ids: Vec<Vec<String>> = parts
        .iter()
        .map(|p| {
            p.events
                .iter()
                .map(|e| e.id.clone().unwrap_or_else(|| fresh.next_id()))
                .collect()
        })
        .collect();
    let own_ids = parts
        .iter()
        .any(|p| p.events.iter().any(|e| e.id.is_some()));
    if own_ids {
        let mut seen = std::collections::HashSet::new();
        if let Some(id) = ids.iter().flatten().find(|id| !seen.insert(id.as_str())) {
            return Err(Error::invalid(
                "event id",
                format!("`{id}` appears twice in one append"),
            ));
        }
    }
    Ok((ids, own_ids))
}

/// A fresh event id: a UUIDv7 in its hyphenated lower-case form, written without the
/// formatting machinery (`to_string` was 6% of the CPU of 1,000-event appends).
pub(crate) fn new_event_id() -> String {
    EventIds::reserve(1).next_id()
}

/// Fresh event ids for a batch: UUIDv7s, ascending, from one clock read and one lock for the
/// whole batch. A clock read, a lock and random bits per id (`Uuid::now_v7`) were 8 to 11% of a
/// 1,000-event append's CPU (issue 16). After the 48 bits of milliseconds, the 74 bits a UUIDv7
/// leaves free hold a counter that starts at a random value each millisecond (with its top bit
/// clear, so that it cannot wrap within one) and counts one per id (RFC 9562, section 6.2): ids
/// are unique and ordered within the process, and as hard to guess across processes as a
/// UUIDv7's random bits are. Every event id the store makes comes from here.
pub(crate) struct EventIds {
    ms: u64,
    next: u128,
    end: u128,
}

/// The generator's last millisecond and the next value of its counter.
static EVENT_ID_CLOCK: std::sync::Mutex<(u64, u128)> = std::sync::Mutex::new((0, 0));

/// The 74 bits after a UUIDv7's time.
const COUNTER_BITS: u32 = 74;

impl EventIds {
    /// Reserves `n` ids.
    pub(crate) fn reserve(n: usize) -> EventIds {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let n = n as u128;
        let mut clock = EVENT_ID_CLOCK.lock().unwrap_or_else(|p| p.into_inner());
        let (ms, next) = &mut *clock;
        // A clock that went back keeps the last millisecond, and counts on in it; a counter
        // that would run out moves to the next millisecond.
        if now > *ms {
            (*ms, *next) = (now, random_start());
        } else if *next + n > 1 << COUNTER_BITS {
            (*ms, *next) = (*ms + 1, random_start());
        }
        let ids = EventIds {
            ms: *ms,
            next: *next,
            end: *next + n,
        };
        *next += n;
        ids
    }

    /// The next of the reserved ids, formatted as the store writes them (hyphenated, lower
    /// case). Past the reservation, a fresh one.
    pub(crate) fn next_id(&mut self) -> String {
        if self.next == self.end {
            *self = EventIds::reserve(1);
        }
        let c = self.next;
        self.next += 1;
        let hi = (self.ms << 16) | (0x7 << 12) | ((c >> 62) as u64 & 0xfff);
        let lo = (0b10 << 62) | (c as u64 & ((1 << 62) - 1));
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::from_u64_pair(hi, lo)
            .hyphenated()
            .encode_lower(&mut buf)
            .to_owned()
    }
}

/// A random start for the counter, its top bit clear: the random bits of a `Uuid::now_v7`.
fn random_start() -> u128 {
    let (_, lo) = uuid::Uuid::now_v7().as_u64_pair();
    let (hi, _) = uuid::Uuid::now_v7().as_u64_pair();
    // 62 random bits of one (its `rand_b`), 11 of the other's `rand_a`: 73 bits.
    (u128::from(hi & 0x7ff) << 62) | u128::from(lo & ((1 << 62) - 1))
}

/// Checks every stream part of an append: writable names, none empty, none twice, every event
/// valid. Every backend's appends go through it.
pub(crate) fn validate(parts: &[Part<'_>]) -> Result<()> {
    if parts.is_empty() {
        return Err(Error::invalid("append", "no streams given"));
    }
    // Linear in the number of streams (a bulk load may name thousands in one append).
    let mut seen = foldhash::HashSet::with_capacity_and_hasher(
        if parts.len() > 1 { parts.len() } else { 0 },
        foldhash::fast::RandomState::default(),
    );
    for p in parts {
        validate_writable_stream(p.stream)?;
        if p.events.is_empty() {
            return Err(Error::invalid(
                "append",
                format!("no events given for stream `{}`", p.stream),
            ));
        }
        if parts.len() > 1 && !seen.insert(p.stream) {
            return Err(Error::invalid(
                "append",
                format!(
                    "stream `{}` appears twice in one multi-stream append",
                    p.stream
                ),
            ));
        }
        p.events.iter().try_for_each(validate_event)?;
    }
    Ok(())
}

/// The streams' parts of an append, borrowed: what the checks and the writers take.
pub(crate) fn parts(streams: &[StreamAppend]) -> Vec<Part<'_>> {
    streams
        .iter()
        .map(|a| Part {
            stream: &a.stream,
            expected: a.expected,
            events: &a.events,
        })
        .collect()
}

/// An event of the log as the retry rules see it: the event, and whether more events of its
/// append follow it (the last event of an append has `more == false`).
#[derive(Debug, Clone)]
pub struct Logged {
    /// The event.
    pub event: RecordedEvent,
    /// Whether the next seq belongs to the same append.
    pub more: bool,
}

/// Reads events of the log by seq, deleted ones included: what the retry rules need of a
/// backend. Called under whatever lock the backend holds for its append, or after (the events
/// of an append never change).
pub trait LogLookup {
    /// The event at `seq` and whether its append continues, or `None` if there is none.
    fn logged(&mut self, seq: u64) -> Result<Option<Logged>>;
}

/// The result of a retried append, from its events (consecutive, one whole append).
fn replayed(request: &AppendRequest, records: &[Logged]) -> MultiAppendResult {
    let mut results: Vec<(String, AppendResult)> = Vec::new();
    for r in records.iter().map(|r| &r.event) {
        match results.last_mut() {
            Some((s, a)) if *s == r.stream => {
                a.version = r.version;
                a.last_seq = r.seq;
            }
            _ => results.push((
                r.stream.clone(),
                AppendResult {
                    version: r.version,
                    first_seq: r.seq,
                    last_seq: r.seq,
                    replayed: true,
                },
            )),
        }
    }
    let _ = request;
    MultiAppendResult {
        streams: results,
        first_seq: records.first().map_or(0, |r| r.event.seq),
        last_seq: records.last().map_or(0, |r| r.event.seq),
        replayed: true,
    }
}

/// The events of the append that starts at `seq`, up to its last.
fn append_from(log: &mut dyn LogLookup, seq: u64) -> Result<Vec<Logged>> {
    let mut out = Vec::new();
    let mut at = seq;
    loop {
        let Some(l) = log.logged(at)? else {
            return Err(Error::corrupt(
                "",
                0,
                format!("the append starting at seq {seq} ends before its last event (seq {at})"),
            ));
        };
        let more = l.more;
        out.push(l);
        if !more {
            return Ok(out);
        }
        at += 1;
    }
}

/// What an append whose idempotency key is already in the log returns: the first append's
/// result (`replayed: true`), found from `first_seq`, the seq of the first event of the append
/// the key was used for. Reusing a key for other streams is [`Error::InvalidInput`].
pub fn replay_by_key(
    log: &mut dyn LogLookup,
    request: &AppendRequest,
    key: &str,
    first_seq: u64,
) -> Result<MultiAppendResult> {
    let records = append_from(log, first_seq)?;
    let wanted: Vec<&str> = request.streams.iter().map(|p| p.stream.as_str()).collect();
    let had: Vec<&str> = records.iter().fold(Vec::new(), |mut v, r| {
        if v.last() != Some(&r.event.stream.as_str()) {
            v.push(r.event.stream.as_str());
        }
        v
    });
    if wanted != had {
        return Err(Error::invalid(
            "idempotency key",
            format!(
                "`{key}` was used for an append to {} (seq {first_seq}), not to {}",
                had.join(", "),
                wanted.join(", ")
            ),
        ));
    }
    Ok(replayed(request, &records))
}

/// Checks an append's event ids against the log: `found[i]` is the seq holding the `i`-th id
/// of the append (in part order), if any. None found: `Ok(None)`, the append goes ahead.
/// Exactly this append written before, whole, to the same streams in the same order: the
/// first result (`replayed: true`). Any other reuse of an id: [`Error::DuplicateEventId`].
pub fn replay_by_ids(
    log: &mut dyn LogLookup,
    request: &AppendRequest,
    prepared: &Prepared,
    found: &[Option<u64>],
) -> Result<Option<MultiAppendResult>> {
    let wanted: Vec<(&str, &str)> = request
        .streams
        .iter()
        .zip(&prepared.ids)
        .flat_map(|(p, ids)| ids.iter().map(move |id| (p.stream.as_str(), id.as_str())))
        .collect();
    let Some(first_found) = found.iter().position(Option::is_some) else {
        return Ok(None);
    };
    let duplicate = |log: &mut dyn LogLookup, i: usize| -> Result<Error> {
        let seq = found[i].unwrap_or(0);
        let stream = log.logged(seq)?.map(|l| l.event.stream).unwrap_or_default();
        Ok(Error::DuplicateEventId {
            id: wanted[i].1.to_owned(),
            seq,
            stream,
        })
    };
    let start = found[0].unwrap_or(0);
    if first_found != 0 || (1..found.len()).any(|i| found[i] != Some(start + i as u64)) {
        return Err(duplicate(log, first_found)?);
    }
    let mut records = Vec::with_capacity(wanted.len());
    for (i, (stream, id)) in wanted.iter().enumerate() {
        match log.logged(start + i as u64)? {
            Some(l) if l.event.stream == *stream && l.event.id == *id => records.push(l),
            _ => return Err(duplicate(log, i)?),
        }
    }
    let starts_append = match start.checked_sub(1).filter(|&s| s > 0) {
        Some(prev) => log.logged(prev)?.is_none_or(|p| !p.more),
        None => true,
    };
    let ends_append = records.last().is_some_and(|r| !r.more);
    if !starts_append || !ends_append {
        return Err(duplicate(log, 0)?);
    }
    Ok(Some(replayed(request, &records)))
}

/// The version check of one stream part: [`Error::WrongExpectedVersion`] unless `expected`
/// admits `actual`.
pub fn check_expected(stream: &str, expected: ExpectedVersion, actual: u64) -> Result<()> {
    if expected.matches(actual) {
        Ok(())
    } else {
        Err(Error::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected,
            actual,
        })
    }
}

/// What has been deleted of one stream: events with a version below `before` are hidden, and
/// a tombstoned stream takes no more appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deletion {
    /// Events with a version below this are deleted (1: none).
    pub before: u64,
    /// Hard-deleted.
    pub tombstone: bool,
    /// `before` was set by a soft deletion of the whole stream (`$stream-deleted`), not a
    /// truncation: no snapshot below `before` stands for the stream any more.
    pub soft: bool,
}

impl From<Deletion> for crate::deletion::Deletion {
    fn from(d: Deletion) -> Self {
        crate::deletion::Deletion {
            before: d.before,
            tombstone: d.tombstone,
            soft: d.soft,
        }
    }
}

impl From<crate::deletion::Deletion> for Deletion {
    fn from(d: crate::deletion::Deletion) -> Self {
        Deletion {
            before: d.before,
            tombstone: d.tombstone,
            soft: d.soft,
        }
    }
}

/// A tombstoned stream is [`Error::StreamDeleted`]; anything else is fine to read or append.
pub fn check_tombstone(stream: &str, deleted: Option<Deletion>) -> Result<()> {
    match deleted {
        Some(d) if d.tombstone => Err(Error::StreamDeleted {
            stream: stream.to_owned(),
            // `before` is at least 1 in every state a store writes; a database edited by
            // hand may hold 0.
            version: d.before.saturating_sub(1),
        }),
        _ => Ok(()),
    }
}

/// Which deletion.
#[derive(Debug, Clone, Copy)]
pub enum DeleteOp {
    /// Hide the stream's events below a version.
    Truncate(u64),
    /// Hide all of the stream's events, if it is at the expected version.
    Delete(ExpectedVersion),
    /// Delete the stream for good, if it is at the expected version.
    Tombstone(ExpectedVersion),
}

/// What a deletion does to `stream`, at `version` with deletion state `old`:
/// `Ok(Err(result))` when it changes nothing (return `result`, write nothing), or
/// `Ok(Ok((event, new)))`: append `event` to [`LIFECYCLE_STREAM`] and record `new` as the
/// stream's deletion state, atomically. A snapshot of a deleted or tombstoned stream is
/// dropped with it (not of a truncated one). The one statement of the rules, for every backend.
pub fn plan_deletion(
    stream: &str,
    version: u64,
    old: Option<Deletion>,
    op: DeleteOp,
) -> Result<std::result::Result<(NewEvent, Deletion), DeleteResult>> {
    crate::event::validate_writable_stream(stream)?;
    let op = match op {
        DeleteOp::Truncate(v) => crate::deletion::DeleteOp::Truncate(v),
        DeleteOp::Delete(e) => crate::deletion::DeleteOp::Delete(e),
        DeleteOp::Tombstone(e) => crate::deletion::DeleteOp::Tombstone(e),
    };
    Ok(
        crate::deletion::plan(stream, version, old.map(Into::into), op)?
            .map(|(e, d)| (e, d.into())),
    )
}

/// Whether a snapshot of `stream` at `version` may be saved, the stream being at `current`
/// with deletion state `deleted`.
pub fn check_snapshot_version(
    stream: &str,
    version: u64,
    current: u64,
    deleted: Option<Deletion>,
) -> Result<()> {
    crate::deletion::check_snapshot_version(stream, version, current, deleted.map(Into::into))
}

/// Whether a snapshot at `version` is usable for a stream at `current` with deletion state
/// `deleted` (what `load_snapshot` returns: the newest usable one).
pub fn snapshot_usable(version: u64, current: u64, deleted: Option<Deletion>) -> bool {
    crate::deletion::snapshot_usable(version, current, deleted.map(Into::into))
}

/// A snapshot's state as every backend keeps it: checked, on one line.
pub fn snapshot_state(state: &RawValue) -> Result<Box<RawValue>> {
    let state = crate::event::json_text::one_line_raw(serde_json::value::to_raw_value(state)?)?;
    if crate::event::json_text::nests_too_deep(state.get()) {
        return Err(crate::event::json_text::too_deep("snapshot state"));
    }
    Ok(state)
}

/// Whether an event is live under its stream's deletion state.
pub fn is_live(deleted: Option<Deletion>, version: u64) -> bool {
    deleted.is_none_or(|d| version >= d.before)
}

/// A query's filters, read-only, for a backend translating it to its own language. Every
/// filter present must hold (AND); within `streams`, `types` and `items`, any one (OR); within
/// `tags` and an item's tags, all. `since` is inclusive and `until` exclusive; `from_seq` and
/// `to_seq` inclusive. The metadata filters compare the string value of a metadata key.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct QueryView<'a> {
    /// Any of these streams (none: any stream).
    pub streams: &'a [String],
    /// Streams whose name starts with this.
    pub prefix: Option<&'a str>,
    /// Any of these types.
    pub types: &'a [String],
    /// All of these tags.
    pub tags: &'a [String],
    /// Any of these DCB items (each: any of its types, all of its tags).
    pub items: &'a [crate::query::QueryItem],
    /// Events at or after this time.
    pub since: Option<Micros>,
    /// Events before this time.
    pub until: Option<Micros>,
    /// Events at or after this seq.
    pub from_seq: Option<u64>,
    /// Events at or before this seq.
    pub to_seq: Option<u64>,
    /// Metadata `correlation_id` equals this.
    pub correlation: Option<&'a str>,
    /// Metadata `causation_id` equals this.
    pub causation: Option<&'a str>,
    /// Metadata `actor` equals this.
    pub actor: Option<&'a str>,
    /// Read newest first.
    pub backward: bool,
    /// At most this many events.
    pub limit: Option<usize>,
    /// A cursor's position: only seqs after it (before it, backward).
    pub cursor_seq: Option<u64>,
}

/// The filters of `query`.
pub fn view(query: &Query) -> QueryView<'_> {
    QueryView {
        streams: &query.streams,
        prefix: query.prefix.as_deref(),
        types: &query.types,
        tags: &query.tags,
        items: &query.items,
        since: query.since,
        until: query.until,
        from_seq: query.from_seq,
        to_seq: query.to_seq,
        correlation: query.correlation.as_deref(),
        causation: query.causation.as_deref(),
        actor: query.actor.as_deref(),
        backward: query.direction == Direction::Backward,
        limit: query.limit,
        cursor_seq: query.after.as_ref().map(|c| c.seq),
    }
}

/// Whether `event` satisfies every filter of `query` (deletion aside): the final check a
/// backend may apply to rows its own language selected more loosely.
pub fn matches(query: &Query, event: &RecordedEvent) -> bool {
    query.matches(event)
}

/// The seq range `[lo, hi]` a query reads with the visible head `head`.
pub fn seq_bounds(query: &Query, head: u64) -> (u64, u64) {
    query.seq_bounds(head)
}

/// Refuses a query carrying a cursor made by another store than `store_id` (a backend that
/// makes no cursors passes a fresh id, refusing every cursor).
pub fn check_cursor(query: &Query, store_id: &str) -> Result<()> {
    match &query.after {
        Some(c) if c.store_id != store_id => Err(Error::invalid(
            "cursor",
            "the cursor belongs to another store",
        )),
        _ => Ok(()),
    }
}

/// A new random store id, for a backend's cursors and its store identity.
pub fn new_store_id() -> String {
    crate::config::new_store_id()
}

/// The newest time an append may carry, given the newest time in the log: commit times never
/// decrease.
pub fn commit_time(last: Micros) -> Micros {
    crate::time::now_micros().max(last)
}

/// Checks an import before anything is locked: every event valid as an append's would be (its
/// stream writable, type, id, tags, metadata, size), times never decreasing within the import,
/// ids not repeated, and each stream's versions consecutive within it. What depends on the
/// store's data is [`import_step`]'s. Errors name the event by its index in `events` (from 0)
/// so that a caller can name the line.
pub fn check_import(events: &[RecordedEvent]) -> Result<()> {
    check_import_limited(events, DEFAULT_MAX_EVENT_BYTES)
}

/// The earliest time an event may carry: 0000-01-01T00:00:00Z, the first the record format
/// can write.
const MIN_TIME: Micros = -62_167_219_200_000_000;
/// The latest: 9999-12-31T23:59:59.999999Z.
const MAX_TIME: Micros = 253_402_300_799_999_999;
/// How far ahead of this machine's clock an imported time may be: a log's times never decrease,
/// so one from the far future would hold every later append's time there.
const MAX_AHEAD: Micros = 86_400_000_000;

/// [`check_import`] with a store's own limit on an event's encoded size.
pub fn check_import_limited(events: &[RecordedEvent], max_event_bytes: usize) -> Result<()> {
    let mut last_time = Micros::MIN;
    // foldhash, sized once: a bulk load checks thousands of ids and streams per call.
    let hasher = foldhash::fast::RandomState::default;
    let mut seen = foldhash::HashSet::with_capacity_and_hasher(events.len(), hasher());
    let mut versions: foldhash::HashMap<&str, u64> =
        foldhash::HashMap::with_capacity_and_hasher(events.len().min(1 << 16), hasher());
    let latest = crate::time::now_micros().saturating_add(MAX_AHEAD);
    let mut sizer = Sizer::new(max_event_bytes);
    for (i, e) in events.iter().enumerate() {
        let at = |why: String| Error::invalid("import", format!("event {i}: {why}"));
        // What `prepare` checks of an append of this one event, on the event as it is (no
        // `NewEvent` made of it): its stream, its fields, its encoded size.
        validate_writable_stream(&e.stream)
            .and_then(|()| {
                crate::event::validate_event_fields(&e.event_type, Some(&e.id), &e.meta, &e.tags)
            })
            .and_then(|()| sizer.check(&e.id, &e.stream, e, None, false).map(drop))
            .map_err(|err| at(err.to_string()))?;
        // Data as an append keeps it: on one line (a newline would split a segment's record).
        let compact = crate::event::json_text::is_one_line("event data", e.data.get())
            .map_err(|err| at(err.to_string()))?;
        if !compact {
            return Err(at(
                "its data is not compact JSON (whitespace outside strings): \
                 RecordedEvent::from_json gives the form an append stores"
                    .into(),
            ));
        }
        if e.version == 0 {
            return Err(at(format!("stream `{}` has no version 0", e.stream)));
        }
        if !(MIN_TIME..=MAX_TIME).contains(&e.time) {
            return Err(at(format!(
                "its time ({} microseconds since 1970) is outside the years 0 to 9999",
                e.time
            )));
        }
        if e.time > latest {
            return Err(at(format!(
                "its time {} is more than a day ahead of this machine's clock: times never \
                 decrease in a log, so it would hold every later append's time there",
                crate::time::format_rfc3339(e.time)
            )));
        }
        if e.time < last_time {
            return Err(at(format!(
                "its time {} is before the previous event's",
                crate::time::format_rfc3339(e.time)
            )));
        }
        last_time = e.time;
        if !seen.insert(e.id.as_str()) {
            return Err(at(format!("event id `{}` appears twice", e.id)));
        }
        // Checked: a hostile version of `u64::MAX` before this one overflowed `v + 1`.
        if let Some(&v) = versions.get(e.stream.as_str())
            && v.checked_add(1) != Some(e.version)
        {
            return Err(at(format!(
                "stream `{}` goes from version {v} to {}",
                e.stream, e.version
            )));
        }
        versions.insert(&e.stream, e.version);
    }
    Ok(())
}

/// What an import must do with one event, given what the store holds: `Skip` it (its id is
/// already in the store at the same stream and version: imported before), or `Write` it (its
/// version follows the stream's `current` version, and its time is not before the store's
/// `last_time`). Anything else is an error naming the event by `index`.
pub fn import_step(
    index: usize,
    event: &RecordedEvent,
    existing: Option<(&str, u64)>,
    current: u64,
    last_time: Micros,
) -> Result<ImportStep> {
    let at = |why: String| Error::invalid("import", format!("event {index}: {why}"));
    if let Some((stream, version)) = existing {
        if stream == event.stream && version == event.version {
            return Ok(ImportStep::Skip);
        }
        return Err(at(format!(
            "event id `{}` is already in the store, in stream `{stream}` at version {version}",
            event.id
        )));
    }
    if event.version != current + 1 {
        let hint = if current == 0 {
            " (deletions are not imported: a stream truncated or deleted in the source starts \
             past version 1 in its export)"
        } else {
            ""
        };
        return Err(at(format!(
            "stream `{}` is at version {current}: version {} would break its order{hint}",
            event.stream, event.version
        )));
    }
    if event.time < last_time {
        return Err(at(format!(
            "its time {} is before the store's newest event ({})",
            crate::time::format_rfc3339(event.time),
            crate::time::format_rfc3339(last_time)
        )));
    }
    Ok(ImportStep::Write)
}

/// What [`import_step`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStep {
    /// Already in the store.
    Skip,
    /// To be written.
    Write,
}

/// A [`Read`](crate::Read)'s parts, read-only, for a backend translating it: whether it reads
/// newest first, the position it starts at (a version for a stream read, a seq for the log),
/// and its limit.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ReadView {
    /// Newest first.
    pub backward: bool,
    /// The first position read (inclusive), if any.
    pub from: Option<u64>,
    /// At most this many events.
    pub limit: Option<usize>,
}

/// The query every backend's `read_all` runs for `read`: the whole log in its direction, from
/// its position (a lower bound forward, an upper bound backward), with its limit.
pub fn read_all_query(read: &crate::query::Read) -> Query {
    read.log_query()
}

/// The parts of `read`.
pub fn read_view(read: &crate::query::Read) -> ReadView {
    ReadView {
        backward: read.direction == Direction::Backward,
        from: read.from,
        limit: read.limit,
    }
}

#[cfg(test)]
mod tests {
    use super::EventIds;

    #[test]
    fn fresh_ids_are_uuidv7s_unique_and_ascending_across_batches() {
        let mut all = Vec::new();
        for n in [1usize, 1000, 3, 5000] {
            let mut ids = EventIds::reserve(n);
            // One more than reserved takes a fresh reservation.
            all.extend((0..=n).map(|_| ids.next_id()));
        }
        all.push(super::new_event_id());
        for id in &all {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 7, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(u.hyphenated().to_string(), *id);
        }
        assert!(
            all.windows(2).all(|w| w[0] < w[1]),
            "not strictly ascending"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let (hi, _) = uuid::Uuid::parse_str(&all[0]).unwrap().as_u64_pair();
        assert!(
            (hi >> 16).abs_diff(now) < 60_000,
            "time {} vs {now}",
            hi >> 16
        );
    }
}
