//! Reads: one stream, the global log, or a query, forwards or backwards, as iterators.
//!
//! A read takes a snapshot under the state lock (which segments, up to which length, and the
//! active segment's selected offsets) and returns [`Events`], which visits one segment at a time:
//! a sealed segment's offsets are planned from its mapped index only when the iterator reaches
//! it, so memory stays bounded by one segment's selection. Every decoded event is checked against
//! the read's filter and the visible head: a read never returns an event that is not durable, and
//! every record read must be the one its index entry meant (its seq, and for a stream read its
//! stream and version): a damaged index is an `Error::Corrupt` when it names the wrong record, and
//! can drop only what a query's own check passes over, never produce a wrong event.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use crate::deletion::{DeadCounts, Deletions, dead_ordinals, is_live};
use crate::error::{Error, Result};
use crate::event::{RecordedEvent, validate_stream};
use crate::index::Kind;
use crate::query::{Cursor, Direction, IndexRef, Query, Read, plan_segment};
use crate::read_ahead::{self, Body, Extent, ReadAhead};
use crate::record;
use crate::sealed::Sealed;
use crate::segment::Lines;
use crate::segments::Segment;
use crate::state::State;
use crate::state::dead_counts;
use crate::store::{Inner, Store};

/// A segment's offsets to visit: known, or planned when the iterator gets there.
enum Plan {
    Ready(Vec<Extent>),
    Lazy(Box<dyn FnOnce() -> Result<Vec<Extent>> + Send>),
}

// An `Extent` is a record to read and what it must be: where it lies in its segment (offset,
// length including the newline), its ordinal there (its seq is the segment's base plus it) and,
// for a stream read, its version (0 otherwise). A record found elsewhere than the index says,
// yet framed and with a good CRC (a damaged posting, position or remembered extent landing on
// another record), is then told apart from the one wanted: a corruption, never an answer.

struct Source {
    /// The segment's bytes, once mapped (a sealed segment's when the iterator reaches it).
    lines: Option<Lines>,
    sealed: Option<Arc<Sealed>>,
    /// The seq of the segment's first record.
    base: u64,
    end: u64,
    max_line: usize,
    path: PathBuf,
    plan: Option<Plan>,
    offsets: Arc<Vec<Extent>>,
    next: usize,
    /// A scan's thread reading the runs ahead (a `read_all` of a segment read by `pread`).
    ahead: Option<ReadAhead>,
    /// The last run the read-ahead handed over with every record in it checked, the segment
    /// offset it starts at, and the extents it holds.
    text: String,
    text_lo: u64,
    checked: std::ops::Range<usize>,
}

/// What each decoded event must satisfy besides visibility.
enum Check {
    None,
    Stream { name: String, lo: u64, hi: u64 },
    Query(Arc<Query>),
}

/// An iterator over events. Each item is an event or the error that ended the read (damage found
/// on disk, or an I/O error); after an error the iterator is exhausted.
#[must_use = "iterators are lazy: an Events does nothing until read"]
pub struct Events {
    sources: VecDeque<Source>,
    backward: bool,
    remaining: usize,
    /// Events with a greater seq are not visible.
    max_seq: u64,
    check: Check,
    /// Deletions to filter out (`None` when nothing is deleted).
    deleted: Option<Arc<Deletions>>,
    store_id: String,
    last_seq: Option<u64>,
    start: Option<Cursor>,
    done: bool,
    /// Whether small reads of sealed segments go through the block cache (not for scans).
    cached: bool,
}

/// Extents of the given ordinals (ascending), in read order; `end` is where the segment's data
/// ends.
fn offsets(
    ix: &IndexRef<'_>,
    ords: impl Iterator<Item = u32>,
    end: u64,
    backward: bool,
) -> Result<Vec<Extent>> {
    let mut v: Vec<Extent> = ix
        .extents(ords, end)?
        .into_iter()
        .map(|(at, len, ord)| Extent {
            at,
            len,
            ord,
            version: 0,
        })
        .collect();
    if backward {
        v.reverse();
    }
    Ok(v)
}

/// The extents of a stream's versions `version..version + take` in a segment, in read order,
/// from the extents of its postings for them (one each, `at == u64::MAX` where positions do
/// not add up): each carries the version it must hold. The state says these versions are in
/// this segment, so a posting missing or whose positions do not add up is damage, not a gap
/// to pass over.
fn stream_offsets(
    found: Vec<(u64, u32, u32)>,
    version: u64,
    take: usize,
    backward: bool,
    path: &std::path::Path,
) -> Result<Vec<Extent>> {
    if found.len() != take || found.iter().any(|&(at, _, _)| at == u64::MAX) {
        return Err(Error::corrupt(
            path,
            0,
            format!(
                "the index lists {} of the stream's {take} versions {version}.. in this segment",
                found.iter().filter(|e| e.0 != u64::MAX).count()
            ),
        ));
    }
    let mut v: Vec<Extent> = (version..)
        .zip(found)
        .map(|(version, (at, len, ord))| Extent {
            at,
            len,
            ord,
            version,
        })
        .collect();
    if backward {
        v.reverse();
    }
    Ok(v)
}

impl Store {
    /// Reads the events of `stream`, in version order (or reversed). A stream with no events
    /// yields nothing.
    ///
    /// ```
    /// # use eventfile::{ExpectedVersion, NewEvent, Read, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Store::open(dir.path())?;
    /// # for i in 0..5 {
    /// #     store.append("cart-1", ExpectedVersion::Any, [NewEvent::new("Added", serde_json::json!(i))])?;
    /// # }
    /// let last_two: Vec<u64> = store
    ///     .read_stream("cart-1", Read::backward().limit(2))?
    ///     .map(|e| e.map(|e| e.version))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(last_two, [5, 4]);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn read_stream(&self, stream: &str, read: Read) -> Result<Events> {
        validate_stream(stream)?;
        let mut st = self.inner.lock_state();
        let max_seq = self.head_seq();
        let backward = read.direction == Direction::Backward;
        let mut ev = self.inner.events(backward, read.limit, max_seq, None);
        let deleted_before = st.deletion(stream)?.map_or(1, |d| d.before);
        let Some(entry) = st.stream(stream)? else {
            return Ok(ev);
        };
        let (lo, hi) = if backward {
            (deleted_before, read.from.unwrap_or(u64::MAX))
        } else {
            (read.from.unwrap_or(1).max(deleted_before), u64::MAX)
        };
        ev.check = Check::Stream {
            name: stream.to_owned(),
            lo,
            hi,
        };
        // Per segment holding the stream: its first and last version there.
        let mut parts: Vec<(usize, u64, u64)> = Vec::new();
        let mut first = 1;
        for (base, last) in entry.sealed.iter() {
            if let Some(i) = st.segment_index(base) {
                parts.push((i, first, last));
            }
            first = last + 1;
        }
        if first <= entry.version && st.log.active_file.is_some() {
            parts.push((st.log.segments.len() - 1, first, entry.version));
        }
        // A live version asked for by position, in a segment retention removed: say so.
        if let Some(from) = read
            .from
            .filter(|&v| v >= deleted_before && v <= entry.version)
        {
            let available = parts.first().map_or(entry.version + 1, |p| p.1);
            if from < available {
                return Err(Error::Expired {
                    what: format!("stream `{stream}` version"),
                    requested: from,
                    first_available: available,
                });
            }
        }
        // Nothing to read, e.g. backwards from a version below a truncation point.
        if lo > hi {
            return Ok(ev);
        }
        parts.retain(|&(_, f, l)| l >= lo && f <= hi);
        if backward {
            parts.reverse();
        }
        for (i, first, last) in parts {
            // Postings k holds version first + k: select the versions in [lo, hi].
            let skip = lo.saturating_sub(first) as usize;
            // A list the summary vouched for names only segments holding the stream's events;
            // should one name none (`first > last`), it selects nothing rather than overflowing.
            let take = hi.min(last).saturating_add(1).saturating_sub(first.max(lo)) as usize;
            if take == 0 {
                continue;
            }
            let version = first.max(lo);
            let name = stream.to_owned();
            let seg = st.log.segments[i].clone();
            let end = data_end(&st, &seg);
            let plan = match &seg.sealed {
                Some(sealed) => {
                    let sealed = Arc::clone(sealed);
                    let path = seg.path.clone();
                    Plan::Lazy(Box::new(move || {
                        let ix = sealed.index()?;
                        let found = ix.stream_extents(&name, end, skip, take)?;
                        stream_offsets(found, version, take, backward, &path)
                    }))
                }
                None => {
                    let r = IndexRef::Mem(&st.log.active_index);
                    let p = r.postings(Kind::Stream, &name)?;
                    let found = r.extents(p.into_iter().skip(skip).take(take), end)?;
                    Plan::Ready(stream_offsets(found, version, take, backward, &seg.path)?)
                }
            };
            ev.push(&mut st, &seg, plan, self.inner.config.max_line());
        }
        Ok(ev)
    }

    /// Reads the global log in seq order (or reversed), across all streams.
    ///
    /// ```
    /// # use eventfile::{ExpectedVersion, NewEvent, Read, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Store::open(dir.path())?;
    /// store.append("a", ExpectedVersion::Any, [NewEvent::new("X", serde_json::json!(1))])?;
    /// store.append("b", ExpectedVersion::Any, [NewEvent::new("Y", serde_json::json!(2))])?;
    /// let streams: Vec<String> = store.read_all(Read::forward().from(2))?
    ///     .map(|e| e.map(|e| e.stream))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(streams, ["b"]);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn read_all(&self, read: Read) -> Result<Events> {
        Ok(self.inner.run(read.log_query(), false)?.scan())
    }

    /// Runs a query: the events matching `query`, in seq order (or reversed), as an iterator.
    /// Continue a limited query with [`Events::cursor`] and [`Query::after`].
    ///
    /// ```
    /// # use eventfile::{ExpectedVersion, NewEvent, Query, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = Store::open(dir.path())?;
    /// for i in 0..5 {
    ///     let e = NewEvent::new("Paid", serde_json::json!(i)).with_tag("region=eu");
    ///     store.append(&format!("order-{i}"), ExpectedVersion::Any, [e])?;
    /// }
    /// let mut page = store.query(&Query::new().prefix("order-").tag("region=eu").limit(2))?;
    /// assert_eq!(page.by_ref().count(), 2);
    /// let rest = store.query(&Query::new().prefix("order-").tag("region=eu").after(page.cursor().unwrap()))?;
    /// assert_eq!(rest.count(), 3);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn query(&self, query: &Query) -> Result<Events> {
        self.inner.run(query.clone(), true)
    }

    /// The number of events matching `query` (its limit ignored), answered from the indexes
    /// without reading any event.
    pub fn count(&self, query: &Query) -> Result<u64> {
        query.validate()?;
        self.inner.check_cursor(query)?;
        let (sealed, active, max_seq) = {
            let mut st = self.inner.lock_state();
            check_log_start(query, st.removed.log_start)?;
            let max_seq = self.head_seq();
            let segments = &st.log.segments;
            let active = match (st.log.active_file.is_some(), segments.last()) {
                (true, Some(seg)) if !outside_time(query, segments, segments.len() - 1) => {
                    let dead = dead_counts(&st, seg.base, true);
                    let r = IndexRef::Mem(&st.log.active_index);
                    live_plan(query, &r, seg.base, max_seq, &dead)?.len()
                }
                _ => 0,
            };
            let (lo, hi) = query.seq_bounds(max_seq);
            let holding = stream_bases(&mut st, query)?;
            let segments = &st.log.segments;
            let sealed: Vec<(Arc<Sealed>, DeadCounts)> = (0..segments.len())
                .filter(|&i| may_hold(&holding, &segments[i]) && !outside_time(query, segments, i))
                .filter_map(|i| segments[i].sealed.as_ref())
                // Only segments that can hold the range: a count must not map every segment.
                .filter(|s| s.base <= hi && s.base + s.summary.count > lo)
                .map(|s| (Arc::clone(s), dead_counts(&st, s.base, false)))
                .collect();
            (sealed, active as u64, max_seq)
        };
        let (lo, hi) = query.seq_bounds(max_seq);
        let mut count = active;
        for (s, dead) in &sealed {
            let ix = s.index()?;
            // One type or one tag over a whole segment with nothing deleted in it: its entry
            // says how many records carry it, and no posting is read.
            if let Some((kind, term)) = query.lone_term()
                && dead.is_empty()
                && lo <= s.base
                && hi >= (s.base + ix.count).saturating_sub(1)
            {
                count += ix.term_count(kind, term)?;
                continue;
            }
            count += live_plan(query, &IndexRef::Sealed(&ix), s.base, max_seq, dead)?.len() as u64;
        }
        Ok(count)
    }

    /// The event with this id, if the store holds one (the oldest, should several share it).
    pub fn get_event(&self, id: &str) -> Result<Option<RecordedEvent>> {
        crate::event::validate_id(id)?;
        let ev = {
            let mut st = self.inner.lock_state();
            let max_seq = self.head_seq();
            let mut ev = self.inner.events(false, Some(1), max_seq, None);
            for i in 0..st.log.segments.len() {
                let seg = st.log.segments[i].clone();
                let ix;
                let r = match &seg.sealed {
                    Some(s) => {
                        ix = s.index()?;
                        IndexRef::Sealed(&ix)
                    }
                    None => IndexRef::Mem(&st.log.active_index),
                };
                let found = offsets(
                    &r,
                    r.postings(Kind::Id, id)?.into_iter().take(1),
                    data_end(&st, &seg),
                    false,
                )?;
                if !found.is_empty() {
                    ev.push(
                        &mut st,
                        &seg,
                        Plan::Ready(found),
                        self.inner.config.max_line(),
                    );
                    break;
                }
            }
            ev
        };
        let mut ev = ev;
        let found = ev.find(|e| !matches!(e, Ok(e) if e.id != id)).transpose()?;
        let deleted = Arc::clone(&self.inner.lock_state().deletions.map);
        Ok(found.filter(|e| is_live(&deleted, &e.stream, e.version)))
    }
}

/// The seq of the first live event after `after` that `q` selects, among every event written
/// so far (durable or not): an append's condition, checked under the state lock, from the
/// indexes alone. The query's direction, limit and cursor are ignored.
pub(crate) fn first_match(st: &State, q: &Query, after: u64) -> Result<Option<u64>> {
    let mut q = q.clone();
    q.direction = Direction::Forward;
    q.limit = None;
    q.after = None;
    q.from_seq = Some(q.from_seq.unwrap_or(0).max(after.saturating_add(1)));
    let max_seq = st.next_seq - 1;
    let (lo, hi) = q.seq_bounds(max_seq);
    if lo > hi {
        return Ok(None);
    }
    let start = st
        .log
        .segments
        .partition_point(|s| s.base <= lo)
        .saturating_sub(1);
    for seg in &st.log.segments[start..] {
        if seg.base > hi {
            break;
        }
        let dead = if st.deletions.map.is_empty() {
            Vec::new()
        } else {
            dead_counts(st, seg.base, seg.is_active())
        };
        let ix;
        let r = match &seg.sealed {
            Some(s) => {
                ix = s.index()?;
                IndexRef::Sealed(&ix)
            }
            None => IndexRef::Mem(&st.log.active_index),
        };
        if let Some(&ord) = live_plan(&q, &r, seg.base, max_seq, &dead)?.first() {
            return Ok(Some(seg.base + u64::from(ord)));
        }
    }
    Ok(None)
}

/// The bases of the sealed segments (and removed ranges) holding events of the streams `q`
/// names, as the stream table lists them (what a stream read goes by); `None` if `q` names no
/// stream. A query by stream then looks only in those segments' sidecars, not in every one: on
/// a store of 10,000,000 events in 72 segments, the viewer's events of a one-event stream.
fn stream_bases(st: &mut State, q: &Query) -> Result<Option<std::collections::HashSet<u64>>> {
    if q.streams.is_empty() {
        return Ok(None);
    }
    let mut bases = std::collections::HashSet::new();
    for s in &q.streams {
        if let Some(e) = st.stream(s)? {
            bases.extend(e.sealed.iter().map(|(base, _)| base));
        }
    }
    Ok(Some(bases))
}

/// Whether segment `i` holds no event of the query's time range, known from the sealed
/// segments' last times alone (no sidecar read). Times never decrease along the log, so a
/// sealed segment whose last event is before `since` holds none, and neither does a segment
/// after one whose last event is at or after `until` (which is exclusive).
fn outside_time(q: &Query, segments: &[Segment], i: usize) -> bool {
    let last_time = |seg: &Segment| {
        seg.sealed
            .as_ref()
            .filter(|s| s.summary.count > 0)
            .map(|s| s.summary.last_time)
    };
    let before = q.since.is_some_and(|since| {
        segments[i]
            .sealed
            .as_ref()
            .is_some_and(|s| s.summary.count == 0 || s.summary.last_time < since)
    });
    let after = q.until.is_some_and(|until| {
        i.checked_sub(1)
            .and_then(|p| last_time(&segments[p]))
            .is_some_and(|last| last >= until)
    });
    before || after
}

/// Whether `seg` can hold an event of the streams of [`stream_bases`]: the active segment
/// always can.
fn may_hold(holding: &Option<std::collections::HashSet<u64>>, seg: &Segment) -> bool {
    match (holding, &seg.sealed) {
        (Some(bases), Some(_)) => bases.contains(&seg.base),
        _ => true,
    }
}

/// The ordinals a query selects in a segment, without the dead ones.
fn live_plan(
    q: &Query,
    ix: &IndexRef<'_>,
    base: u64,
    max_seq: u64,
    dead: &[(String, usize)],
) -> Result<Vec<u32>> {
    let mut ords = plan_segment(q, ix, base, max_seq)?;
    if !dead.is_empty() {
        let dead = dead_ordinals(ix, dead)?;
        ords.retain(|o| dead.binary_search(o).is_err());
    }
    Ok(ords)
}

/// The first `keep` of a segment's planned ordinals (ascending) in read order, all of them if
/// `keep` is `None`.
fn first_read(ords: Vec<u32>, keep: Option<usize>, backward: bool) -> impl Iterator<Item = u32> {
    let n = keep.map_or(ords.len(), |k| k.min(ords.len()));
    let skip = if backward { ords.len() - n } else { 0 };
    ords.into_iter().skip(skip).take(n)
}

/// Refuses a query that starts, by position, below what retention kept.
fn check_log_start(q: &Query, log_start: u64) -> Result<()> {
    let backward = q.direction == Direction::Backward;
    let start = match (&q.after, backward) {
        (Some(c), false) => Some(c.seq.saturating_add(1)),
        (Some(c), true) => c.seq.checked_sub(1).filter(|&s| s > 0),
        (None, false) => q.from_seq,
        (None, true) => q.to_seq,
    };
    match start {
        // 0 is below every seq: "from the oldest", never an error.
        Some(s) if s > 0 && s < log_start => Err(Error::Expired {
            what: "seq".into(),
            requested: s,
            first_available: log_start,
        }),
        _ => Ok(()),
    }
}

/// Where a segment's complete data ends: the active one's at the state's length.
fn data_end(st: &State, seg: &Segment) -> u64 {
    if seg.is_active() {
        st.log.active_len
    } else {
        seg.len
    }
}

impl Events {
    /// This read as a scan of the log: its records are read once, so they bypass the block
    /// cache (they must not flush what lookups reuse), and a long run of a sealed segment is
    /// read and checked ahead on a second thread (`read_ahead.rs`).
    pub(crate) fn scan(mut self) -> Events {
        self.cached = false;
        self
    }

    /// The head this read was made at: it returns no event above it, and every visible event
    /// it selects up to it.
    pub(crate) fn visible_upto(&self) -> u64 {
        self.max_seq
    }

    fn push(&mut self, st: &mut State, seg: &Segment, plan: Plan, max_line: usize) {
        let end = data_end(st, seg);
        // A sealed segment is mapped when the iterator reaches it, not now: a read over many
        // segments must not map them all at once.
        let lines = match &seg.sealed {
            None => st
                .log
                .active_data()
                .map(|data| Lines::new(data, end, max_line)),
            Some(_) => None,
        };
        self.sources.push_back(Source {
            lines,
            sealed: seg.sealed.clone(),
            base: seg.base,
            end,
            max_line,
            path: seg.path.clone(),
            plan: Some(plan),
            offsets: Arc::new(Vec::new()),
            next: 0,
            ahead: None,
            text: String::new(),
            text_lo: 0,
            checked: 0..0,
        });
    }

    /// Where this read has got to: pass it to [`Query::after`] to continue after the last event
    /// returned (or from where this read started, if it returned none). `None` if this read
    /// started at the beginning and returned nothing.
    pub fn cursor(&self) -> Option<Cursor> {
        match self.last_seq {
            Some(seq) => Some(Cursor {
                store_id: self.store_id.clone(),
                seq,
                backward: self.backward,
            }),
            None => self.start.clone(),
        }
    }

    /// The next candidate of the front source, or `None` when that source is exhausted.
    fn next_in_source(&mut self) -> Option<Result<RecordedEvent>> {
        let backward = self.backward;
        let src = self.sources.front_mut()?;
        if let Some(plan) = src.plan.take() {
            src.offsets = Arc::new(match plan {
                Plan::Ready(v) => v,
                Plan::Lazy(f) => match f() {
                    Ok(v) => v,
                    Err(e) => return Some(Err(e)),
                },
            });
        }
        if src.lines.is_none() && src.next < src.offsets.len() {
            let data = match &src.sealed {
                Some(sealed) => sealed.data(),
                None => Err(Error::corrupt(
                    &src.path,
                    0,
                    "the active segment has no file",
                )),
            };
            match data {
                Ok(data) => {
                    let lines = Lines::new(data, src.end, src.max_line).through_cache(self.cached);
                    // A long scan of a segment read by `pread`: a thread reads and checks the
                    // runs ahead while this one decodes.
                    let long = src.offsets.len() - src.next >= read_ahead::MIN_RECORDS
                        && self.remaining >= read_ahead::MIN_RECORDS;
                    if let Some(file) = lines.scan_file().filter(|_| long) {
                        src.ahead = ReadAhead::start(
                            file,
                            Arc::clone(&src.offsets),
                            src.next,
                            src.end,
                            backward,
                        );
                    }
                    src.lines = Some(lines);
                }
                Err(e) => return Some(Err(e)),
            }
        }
        loop {
            let lines = src.lines.as_mut()?;
            let i = src.next;
            let want = *src.offsets.get(i)?;
            let (off, len) = (want.at, want.len);
            src.next += 1;
            if !src.checked.contains(&i) && !lines.covers(off, len as usize) {
                // The run of records that follow on disk in read order, in one read: the
                // read-ahead's, checked or not, or read here.
                let (lo, hi, _) = read_ahead::run(&src.offsets, i, backward);
                let ahead = src.ahead.as_mut().and_then(|a| a.take(i));
                let read = match ahead {
                    Some(Ok(chunk)) => match chunk.body {
                        Body::Checked(text) => {
                            let old = std::mem::replace(&mut src.text, text);
                            if let Some(a) = &src.ahead {
                                a.give_back(old.into_bytes());
                            }
                            (src.text_lo, src.checked) = (chunk.lo, chunk.first..chunk.end);
                            Ok(())
                        }
                        // Damage in the run: read and decoded here, which reports it where it
                        // lies.
                        Body::Unchecked(buf) => {
                            if let Some(a) = &src.ahead {
                                a.give_back(buf);
                            }
                            lines.load(lo, hi)
                        }
                    },
                    Some(Err(e)) => Err(e),
                    None => lines.load(lo, hi),
                };
                if let Err(e) = read {
                    return Some(Err(Error::io("read", &src.path, e)));
                }
            }
            let decoded = if src.checked.contains(&i) {
                // Framed, CRC-checked and UTF-8, as the read-ahead found it in this buffer.
                let start = off.saturating_sub(src.text_lo) as usize;
                match src
                    .text
                    .get(start..start + len as usize)
                    .and_then(|l| l.strip_suffix('\n'))
                {
                    Some(line) => record::decode_checked_event(line),
                    None => Err("record does not lie in the run read for it".into()),
                }
            } else {
                let bytes = match lines.window(off, len as usize) {
                    Ok(l) => l,
                    Err(e) => return Some(Err(Error::io("read", &src.path, e))),
                };
                let Some(line) = bytes.strip_suffix(b"\n") else {
                    return Some(Err(Error::corrupt(
                        &src.path,
                        off,
                        "record does not end where the index says",
                    )));
                };
                record::decode_event(line)
            };
            let event = match decoded {
                Ok(e) => e,
                Err(reason) => return Some(Err(Error::corrupt(&src.path, off, reason))),
            };
            // The record the index pointed at must be the one it meant: its seq follows from
            // its ordinal, and a stream read's from its version.
            let seq = src.base + u64::from(want.ord);
            // A stream read's check of the name, made once (it decides `wanted` below too).
            let in_stream = match &self.check {
                Check::Stream { name, .. } => event.stream == *name,
                _ => false,
            };
            let version_ok = want.version == 0 || (event.version == want.version && in_stream);
            if event.seq != seq || !version_ok {
                return Some(Err(Error::corrupt(
                    &src.path,
                    off,
                    format!(
                        "the index points at seq {} (`{}` version {}), not the record it means \
                         (seq {seq}{})",
                        event.seq,
                        event.stream,
                        event.version,
                        match want.version {
                            0 => String::new(),
                            v => format!(", version {v}"),
                        }
                    ),
                )));
            }
            if event.seq > self.max_seq {
                if backward {
                    continue;
                }
                self.done = true;
                return None;
            }
            let wanted = match &self.check {
                Check::None => true,
                Check::Stream { lo, hi, .. } => {
                    in_stream && event.version >= *lo && event.version <= *hi
                }
                Check::Query(q) => q.matches(&event),
            };
            let live = self
                .deleted
                .as_ref()
                .is_none_or(|d| is_live(d, &event.stream, event.version));
            if wanted && live {
                return Some(Ok(event));
            }
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("backward", &self.backward)
            .field("segments_left", &self.sources.len())
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

impl Iterator for Events {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done && self.remaining > 0 && !self.sources.is_empty() {
            match self.next_in_source() {
                Some(Ok(e)) => {
                    self.remaining -= 1;
                    self.last_seq = Some(e.seq);
                    return Some(Ok(e));
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None if self.done => return None,
                None => {
                    self.sources.pop_front();
                }
            }
        }
        None
    }
}

/// The read path itself, on the shared state: what `Store`'s reads and the subscriptions'
/// feed (which holds no `Store`) run.
impl Inner {
    pub(crate) fn check_cursor(&self, q: &Query) -> Result<()> {
        match &q.after {
            Some(c) if c.store_id != self.store_id => Err(Error::invalid(
                "cursor",
                "the cursor belongs to another store",
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn run(&self, q: Query, check: bool) -> Result<Events> {
        q.validate()?;
        self.check_cursor(&q)?;
        let mut st = self.lock_state();
        // Never above what the state holds: a read-only handle's state can be rebuilt below
        // its published head for a moment (a refresh that found segments removed), and a
        // read that claimed to reach the head would let a subscription pass events it never
        // returned.
        let max_seq = self.commit.visible().min(st.next_seq - 1);
        let backward = q.direction == Direction::Backward;
        let q = Arc::new(q);
        let mut ev = self.events(backward, q.limit, max_seq, q.after.clone());
        if check {
            ev.check = Check::Query(Arc::clone(&q));
        }
        check_log_start(&q, st.removed.log_start)?;
        let filter_dead = !st.deletions.map.is_empty();
        if filter_dead {
            ev.deleted = Some(Arc::clone(&st.deletions.map));
        }
        // A limited read returns at most `limit` events of any one segment. Where nothing can
        // pass over a planned record at read time (no deletions, and no check of each event
        // against the query, or one that only its seq decides, which is checked against its
        // place anyway), a segment's plan keeps only that many, and only their positions are
        // read: a read of the log's last 10 events planned every record of a segment.
        let keep = q
            .limit
            .filter(|_| (!check || q.is_log_scan()) && !filter_dead);
        let (lo, hi) = q.seq_bounds(max_seq);
        let holding = stream_bases(&mut st, &q)?;
        let mut order: Vec<usize> = (0..st.log.segments.len())
            .filter(|&i| {
                let seg = &st.log.segments[i];
                let next_base = st.log.segments.get(i + 1).map_or(u64::MAX, |s| s.base);
                seg.base <= hi
                    && next_base > lo
                    && may_hold(&holding, seg)
                    && !outside_time(&q, &st.log.segments, i)
            })
            .collect();
        if backward {
            order.reverse();
        }
        for i in order {
            let seg = st.log.segments[i].clone();
            let (base, end) = (seg.base, data_end(&st, &seg));
            let dead = if filter_dead {
                dead_counts(&st, base, seg.is_active())
            } else {
                Vec::new()
            };
            let plan = match &seg.sealed {
                Some(sealed) => {
                    let (sealed, q) = (Arc::clone(sealed), Arc::clone(&q));
                    Plan::Lazy(Box::new(move || {
                        let ix = sealed.index()?;
                        let r = IndexRef::Sealed(&ix);
                        let ords = live_plan(&q, &r, base, max_seq, &dead)?;
                        offsets(&r, first_read(ords, keep, backward), end, backward)
                    }))
                }
                None => {
                    let r = IndexRef::Mem(&st.log.active_index);
                    let ords = live_plan(&q, &r, base, max_seq, &dead)?;
                    Plan::Ready(offsets(
                        &r,
                        first_read(ords, keep, backward),
                        end,
                        backward,
                    )?)
                }
            };
            ev.push(&mut st, &seg, plan, self.config.max_line());
        }
        Ok(ev)
    }

    pub(crate) fn events(
        &self,
        backward: bool,
        limit: Option<usize>,
        max_seq: u64,
        start: Option<Cursor>,
    ) -> Events {
        Events {
            sources: VecDeque::new(),
            backward,
            remaining: limit.unwrap_or(usize::MAX),
            max_seq,
            check: Check::None,
            deleted: None,
            store_id: self.store_id.clone(),
            last_seq: None,
            start,
            done: false,
            cached: true,
        }
    }
}
