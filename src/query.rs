//! Queries: the filter a caller builds ([`Query`]), how it is answered from a segment's index
//! (the planner), and the pagination [`Cursor`].
//!
//! Every filter the query offers is answered by the index: ranges (seq, time) become ordinal
//! ranges, and terms (streams, stream prefix, types, tags, metadata) become sorted posting lists
//! that are united within a filter and intersected across filters, smallest first. A query with
//! no term filter reads the ordinal range (a scan of the positions). The reader still checks
//! every decoded event against the whole filter, so a damaged index can never yield a wrong
//! event.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::index::{Kind, MemIndex};
use crate::sealed_index::SealedIndex;
use crate::time::Micros;

/// Which way a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Oldest first.
    #[default]
    Forward,
    /// Newest first.
    Backward,
}

/// How to read a stream or the global log: direction, starting point and limit.
///
/// ```
/// use eventfile::Read;
/// let first_ten = Read::forward().limit(10);
/// let newest_from_v5_down = Read::backward().from(5);
/// # let _ = (first_ten, newest_from_v5_down);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct Read {
    pub(crate) direction: Direction,
    pub(crate) from: Option<u64>,
    pub(crate) limit: Option<usize>,
}

impl Read {
    /// The query a read of the whole log runs: the log in this read's direction, from its
    /// position (a lower bound forward, an upper bound backward), with its limit. Every
    /// backend's `read_all` is this query.
    pub(crate) fn log_query(&self) -> Query {
        let mut q = Query::new().direction(self.direction);
        if let Some(from) = self.from {
            q = match self.direction {
                Direction::Forward => q.from_seq(from),
                Direction::Backward => q.to_seq(from),
            };
        }
        if let Some(n) = self.limit {
            q = q.limit(n);
        }
        q
    }

    /// Oldest first, from the start, no limit.
    pub fn forward() -> Read {
        Read::default()
    }

    /// Newest first, from the end, no limit.
    pub fn backward() -> Read {
        Read {
            direction: Direction::Backward,
            ..Read::default()
        }
    }

    /// Start at this version (stream reads) or seq (global reads), inclusive. Default: the first
    /// event going forwards, the last going backwards.
    pub fn from(mut self, position: u64) -> Read {
        self.from = Some(position);
        self
    }

    /// Return at most `n` events. Default: no limit.
    pub fn limit(mut self, n: usize) -> Read {
        self.limit = Some(n);
        self
    }

    /// Sets the direction.
    pub fn direction(mut self, direction: Direction) -> Read {
        self.direction = direction;
        self
    }
}

/// One item of a DCB-style query: matches an event whose type is any of `types` (or any type
/// if empty) and which carries every one of `tags`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct QueryItem {
    /// Event types, any of (empty: any type).
    pub types: Vec<String>,
    /// `key=value` tags, all of.
    pub tags: Vec<String>,
}

impl QueryItem {
    /// An item matching events of any of `types` carrying all of `tags`.
    pub fn new<S: Into<String>>(
        types: impl IntoIterator<Item = S>,
        tags: impl IntoIterator<Item = S>,
    ) -> QueryItem {
        QueryItem {
            types: types.into_iter().map(Into::into).collect(),
            tags: tags.into_iter().map(Into::into).collect(),
        }
    }

    fn matches(&self, e: &RecordedEvent) -> bool {
        (self.types.is_empty() || self.types.contains(&e.event_type))
            && self.tags.iter().all(|t| e.tags.contains(t))
    }
}

/// A filter over the global log, read forwards or backwards. Every condition set must hold
/// (AND); within one condition, any listed value may match (OR), except tags (all must be
/// carried). Build one with the methods below and run it with [`crate::Store::query`] or
/// [`crate::Store::count`].
///
/// ```
/// use eventfile::{Query, QueryItem};
/// let q = Query::new()
///     .prefix("order-")
///     .types(["OrderPlaced", "OrderPaid"])
///     .tag("region=eu")
///     .limit(50);
/// let dcb = Query::new()
///     .item(QueryItem::new(["CourseCreated"], ["course=c1"]))
///     .item(QueryItem::new(["StudentSubscribed"], ["student=s7"]));
/// # let _ = (q, dcb);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Query {
    pub(crate) streams: Vec<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) types: Vec<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) items: Vec<QueryItem>,
    pub(crate) since: Option<Micros>,
    pub(crate) until: Option<Micros>,
    pub(crate) from_seq: Option<u64>,
    pub(crate) to_seq: Option<u64>,
    pub(crate) correlation: Option<String>,
    pub(crate) causation: Option<String>,
    pub(crate) actor: Option<String>,
    pub(crate) direction: Direction,
    pub(crate) limit: Option<usize>,
    pub(crate) after: Option<Cursor>,
}

impl Query {
    /// Matches every event, oldest first, no limit.
    pub fn new() -> Query {
        Query::default()
    }

    /// Events of this stream (repeat for more: any of them).
    pub fn stream(mut self, stream: impl Into<String>) -> Query {
        self.streams.push(stream.into());
        self
    }

    /// Events of any of these streams.
    pub fn streams<S: Into<String>>(mut self, streams: impl IntoIterator<Item = S>) -> Query {
        self.streams.extend(streams.into_iter().map(Into::into));
        self
    }

    /// Events of streams whose name starts with `prefix` (a category: `order-` matches
    /// `order-42`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Query {
        self.prefix = Some(prefix.into());
        self
    }

    /// Events of this type (repeat for more: any of them).
    pub fn event_type(mut self, t: impl Into<String>) -> Query {
        self.types.push(t.into());
        self
    }

    /// Events of any of these types.
    pub fn types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Query {
        self.types.extend(types.into_iter().map(Into::into));
        self
    }

    /// Events carrying this `key=value` tag (repeat for more: all of them).
    pub fn tag(mut self, tag: impl Into<String>) -> Query {
        self.tags.push(tag.into());
        self
    }

    /// A DCB query item; the query matches events matching any of its items.
    pub fn item(mut self, item: QueryItem) -> Query {
        self.items.push(item);
        self
    }

    /// Events at or after this time (microseconds since the epoch).
    pub fn since(mut self, t: Micros) -> Query {
        self.since = Some(t);
        self
    }

    /// Events before this time (exclusive).
    pub fn until(mut self, t: Micros) -> Query {
        self.until = Some(t);
        self
    }

    /// Events with seq at least `seq`.
    pub fn from_seq(mut self, seq: u64) -> Query {
        self.from_seq = Some(seq);
        self
    }

    /// Events with seq at most `seq`.
    pub fn to_seq(mut self, seq: u64) -> Query {
        self.to_seq = Some(seq);
        self
    }

    /// Events whose metadata `correlation_id` is `id`.
    pub fn correlation(mut self, id: impl Into<String>) -> Query {
        self.correlation = Some(id.into());
        self
    }

    /// Events whose metadata `causation_id` is `id`.
    pub fn causation(mut self, id: impl Into<String>) -> Query {
        self.causation = Some(id.into());
        self
    }

    /// Events whose metadata `actor` is `actor`.
    pub fn actor(mut self, actor: impl Into<String>) -> Query {
        self.actor = Some(actor.into());
        self
    }

    /// Newest first. Default: oldest first.
    pub fn backward(mut self) -> Query {
        self.direction = Direction::Backward;
        self
    }

    /// Sets the direction.
    pub fn direction(mut self, d: Direction) -> Query {
        self.direction = d;
        self
    }

    /// At most `n` events. Default: no limit.
    pub fn limit(mut self, n: usize) -> Query {
        self.limit = Some(n);
        self
    }

    /// Continue after the position a previous page ended at ([`crate::Events::cursor`]).
    pub fn after(mut self, cursor: Cursor) -> Query {
        self.after = Some(cursor);
        self
    }

    /// Checks the values, so a malformed filter is an error rather than an empty answer: every
    /// read and count runs this first; a tool may run it before it touches a store.
    ///
    /// ```
    /// use eventfile::Query;
    /// assert!(Query::new().from_seq(5).to_seq(2).validate().is_err());
    /// assert!(Query::new().event_type("Paid").validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<()> {
        self.streams
            .iter()
            .try_for_each(|s| crate::event::validate_stream(s))?;
        self.types
            .iter()
            .try_for_each(|t| crate::event::validate_event_type(t))?;
        self.tags
            .iter()
            .try_for_each(|t| crate::event::validate_tag(t))?;
        for item in &self.items {
            if item.types.is_empty() && item.tags.is_empty() {
                return Err(Error::invalid(
                    "query item",
                    "an item needs a type or a tag",
                ));
            }
            item.types
                .iter()
                .try_for_each(|t| crate::event::validate_event_type(t))?;
            item.tags
                .iter()
                .try_for_each(|t| crate::event::validate_tag(t))?;
        }
        if let (Some(a), Some(b)) = (self.since, self.until)
            && a > b
        {
            return Err(Error::invalid("time range", "`since` is after `until`"));
        }
        if let (Some(a), Some(b)) = (self.from_seq, self.to_seq)
            && a > b
        {
            return Err(Error::invalid("seq range", "`from_seq` is after `to_seq`"));
        }
        if let Some(c) = &self.after
            && c.backward != (self.direction == Direction::Backward)
        {
            return Err(Error::invalid(
                "cursor",
                "the cursor was made for the other direction",
            ));
        }
        Ok(())
    }

    /// Whether the query selects every event of its seq range (no stream, type, tag, time or
    /// metadata filter): reading it scans the log, as `read_all` does, and whether it holds of
    /// an event follows from the event's seq, which a read checks against the record's place
    /// in its segment anyway.
    pub(crate) fn is_log_scan(&self) -> bool {
        self.streams.is_empty()
            && self.prefix.is_none()
            && self.types.is_empty()
            && self.tags.is_empty()
            && self.items.is_empty()
            && self.since.is_none()
            && self.until.is_none()
            && self.correlation.is_none()
            && self.causation.is_none()
            && self.actor.is_none()
    }

    /// The query's one term when it is a single type or a single tag and filters on nothing
    /// else but seqs: then the events of a segment it selects are those of the term's entry.
    pub(crate) fn lone_term(&self) -> Option<(Kind, &str)> {
        let only_terms = self.streams.is_empty()
            && self.prefix.is_none()
            && self.items.is_empty()
            && self.since.is_none()
            && self.until.is_none()
            && self.correlation.is_none()
            && self.causation.is_none()
            && self.actor.is_none();
        match (only_terms, &self.types[..], &self.tags[..]) {
            (true, [t], []) => Some((Kind::Type, t)),
            (true, [], [t]) => Some((Kind::Tag, t)),
            _ => None,
        }
    }

    /// Whether an event satisfies the whole filter (the reader's final check).
    pub(crate) fn matches(&self, e: &RecordedEvent) -> bool {
        let meta_is = |key: &str, want: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| e.meta.get(key).and_then(|v| v.as_str()) == Some(w.as_str()))
        };
        (self.streams.is_empty() || self.streams.contains(&e.stream))
            && self
                .prefix
                .as_ref()
                .is_none_or(|p| e.stream.starts_with(p.as_str()))
            && (self.types.is_empty() || self.types.contains(&e.event_type))
            && self.tags.iter().all(|t| e.tags.contains(t))
            && (self.items.is_empty() || self.items.iter().any(|i| i.matches(e)))
            && self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
            && self.from_seq.is_none_or(|s| e.seq >= s)
            && self.to_seq.is_none_or(|s| e.seq <= s)
            && meta_is("correlation_id", &self.correlation)
            && meta_is("causation_id", &self.causation)
            && meta_is("actor", &self.actor)
            && self.after.as_ref().is_none_or(|c| c.admits(e.seq))
    }

    /// The seq bounds `[lo, hi]` of the query, with the visible head `max_seq`.
    pub(crate) fn seq_bounds(&self, max_seq: u64) -> (u64, u64) {
        let mut lo = self.from_seq.unwrap_or(1).max(1);
        let mut hi = self.to_seq.unwrap_or(u64::MAX).min(max_seq);
        if let Some(c) = &self.after {
            if c.backward {
                hi = hi.min(c.seq.saturating_sub(1));
            } else {
                lo = lo.max(c.seq.saturating_add(1));
            }
        }
        (lo, hi)
    }
}

/// A segment's index, sealed (read from its sidecar where needed, so every lookup may fail)
/// or in memory, as the planner sees it.
pub(crate) enum IndexRef<'a> {
    Sealed(&'a SealedIndex),
    Mem(&'a MemIndex),
}

impl IndexRef<'_> {
    fn count(&self) -> u32 {
        match self {
            IndexRef::Sealed(f) => f.count as u32,
            IndexRef::Mem(m) => m.len() as u32,
        }
    }

    pub(crate) fn position(&self, ord: u32) -> Result<Option<u64>> {
        Ok(match self {
            IndexRef::Sealed(f) => f.position(ord)?.map(u64::from),
            IndexRef::Mem(m) => m.position(ord)?.map(u64::from),
        })
    }

    /// Where each of the records `ords` (ascending) starts, how long it is and its ordinal,
    /// the last record of the segment ending at `end`; records whose positions do not add up
    /// are left out.
    pub(crate) fn extents(
        &self,
        ords: impl Iterator<Item = u32>,
        end: u64,
    ) -> Result<Vec<(u64, u32, u32)>> {
        match self {
            IndexRef::Sealed(f) => f.extents(ords, end),
            IndexRef::Mem(m) => m.extents(ords, end),
        }
    }

    fn first_at_or_after(&self, t: Micros) -> Result<u32> {
        match self {
            IndexRef::Sealed(f) => f.first_at_or_after(t),
            IndexRef::Mem(m) => m.first_at_or_after(t),
        }
    }

    pub(crate) fn postings(&self, kind: Kind, term: &str) -> Result<Vec<u32>> {
        match self {
            IndexRef::Sealed(f) => f.postings(kind, term),
            IndexRef::Mem(m) => Ok(m.postings(kind, term)?.into_owned()),
        }
    }

    /// The greatest ordinal of a record carrying `term`.
    pub(crate) fn last_posting(&self, kind: Kind, term: &str) -> Result<Option<u32>> {
        match self {
            IndexRef::Sealed(f) => f.last_posting(kind, term),
            IndexRef::Mem(m) => m.last_posting(kind, term),
        }
    }

    fn prefix_postings(&self, kind: Kind, prefix: &str) -> Result<Vec<u32>> {
        let lists: Vec<Vec<u32>> = match self {
            IndexRef::Sealed(f) => f
                .terms_with_prefix(kind, prefix)?
                .into_iter()
                .map(|(_, p)| p)
                .collect(),
            IndexRef::Mem(m) => m
                .terms_with_prefix(kind, prefix)?
                .map(|(_, p)| p.into_owned())
                .collect(),
        };
        Ok(union(lists))
    }
}

/// Sorted, deduplicated union of sorted lists.
fn union(mut lists: Vec<Vec<u32>>) -> Vec<u32> {
    match lists.len() {
        0 => Vec::new(),
        1 => lists.pop().unwrap_or_default(),
        _ => {
            let mut all: Vec<u32> = lists.concat();
            all.sort_unstable();
            all.dedup();
            all
        }
    }
}

/// Intersection of two sorted lists.
fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    let mut rest = large;
    for &x in small {
        // Galloping would help for very skewed sizes; binary search already gives
        // O(small * log large).
        let i = rest.partition_point(|&y| y < x);
        if rest.get(i) == Some(&x) {
            out.push(x);
        }
        rest = &rest[i..];
    }
    out
}

/// The ordinals of a segment (first seq `base`) that a query selects, ascending.
pub(crate) fn plan_segment(
    q: &Query,
    ix: &IndexRef<'_>,
    base: u64,
    max_seq: u64,
) -> Result<Vec<u32>> {
    let count = ix.count();
    let (lo_seq, hi_seq) = q.seq_bounds(max_seq);
    if hi_seq < base || lo_seq > base + u64::from(count).saturating_sub(1) || count == 0 {
        return Ok(Vec::new());
    }
    let mut lo = lo_seq.saturating_sub(base).min(u64::from(count)) as u32;
    let mut hi = (hi_seq - base + 1).min(u64::from(count)) as u32;
    if let Some(t) = q.since {
        lo = lo.max(ix.first_at_or_after(t)?);
    }
    if let Some(t) = q.until {
        hi = hi.min(ix.first_at_or_after(t)?);
    }
    if lo >= hi {
        return Ok(Vec::new());
    }

    let mut sets: Vec<Vec<u32>> = Vec::new();
    let any_of = |kind: Kind, terms: &[String]| -> Result<Vec<u32>> {
        Ok(union(
            terms
                .iter()
                .map(|t| ix.postings(kind, t))
                .collect::<Result<_>>()?,
        ))
    };
    if !q.streams.is_empty() {
        sets.push(any_of(Kind::Stream, &q.streams)?);
    }
    if let Some(p) = &q.prefix {
        sets.push(ix.prefix_postings(Kind::Stream, p)?);
    }
    if !q.types.is_empty() {
        sets.push(any_of(Kind::Type, &q.types)?);
    }
    for t in &q.tags {
        sets.push(ix.postings(Kind::Tag, t)?);
    }
    if !q.items.is_empty() {
        let mut per_item = Vec::with_capacity(q.items.len());
        for item in &q.items {
            let mut parts: Vec<Vec<u32>> = item
                .tags
                .iter()
                .map(|t| ix.postings(Kind::Tag, t))
                .collect::<Result<_>>()?;
            if !item.types.is_empty() {
                parts.push(any_of(Kind::Type, &item.types)?);
            }
            per_item.push(intersect_all(parts));
        }
        sets.push(union(per_item));
    }
    for (kind, v) in [
        (Kind::Correlation, &q.correlation),
        (Kind::Causation, &q.causation),
        (Kind::Actor, &q.actor),
    ] {
        if let Some(v) = v {
            sets.push(ix.postings(kind, v)?);
        }
    }
    if sets.is_empty() {
        return Ok((lo..hi).collect());
    }
    let mut out = intersect_all(sets);
    out.retain(|&o| o >= lo && o < hi);
    Ok(out)
}

/// Intersection of all lists, smallest first (the most selective filter drives).
fn intersect_all(mut sets: Vec<Vec<u32>>) -> Vec<u32> {
    sets.sort_by_key(Vec::len);
    let mut iter = sets.into_iter();
    let Some(mut acc) = iter.next() else {
        return Vec::new();
    };
    for s in iter {
        if acc.is_empty() {
            break;
        }
        acc = intersect(&acc, &s);
    }
    acc
}

/// A position in the global log to continue a paginated read from. Its text form
/// (`Display`/`FromStr`) is opaque, tied to one store, and checked when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) store_id: String,
    pub(crate) seq: u64,
    pub(crate) backward: bool,
}

impl Cursor {
    fn admits(&self, seq: u64) -> bool {
        if self.backward {
            seq < self.seq
        } else {
            seq > self.seq
        }
    }

    fn body(&self) -> String {
        format!(
            "ef1.{}.{}.{}",
            self.store_id,
            self.seq,
            if self.backward { 'b' } else { 'f' }
        )
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = self.body();
        write!(f, "{body}.{:08x}", crc32fast::hash(body.as_bytes()))
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Cursor> {
        let bad = |why: &str| Error::invalid("cursor", format!("`{s}` {why}"));
        let parts: Vec<&str> = s.split('.').collect();
        let [tag, store, seq, dir, crc] = parts[..] else {
            return Err(bad("is not an eventfile cursor"));
        };
        if tag != "ef1" {
            return Err(bad("is not an eventfile cursor"));
        }
        let cursor = Cursor {
            store_id: store.to_owned(),
            seq: seq.parse().map_err(|_| bad("has a malformed position"))?,
            backward: match dir {
                "f" => false,
                "b" => true,
                _ => return Err(bad("has a malformed direction")),
            },
        };
        // The checksum covers the text as given, and only the canonical text is accepted (a
        // `+42` would otherwise parse as 42 and print differently).
        let given = &s[..s.len() - crc.len() - 1];
        if format!("{:08x}", crc32fast::hash(given.as_bytes())) != crc {
            return Err(bad("is damaged (checksum mismatch)"));
        }
        if cursor.body() != given
            || store.is_empty()
            || !store.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(bad("is not in canonical form"));
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[2, 3, 4, 7, 9]), [3, 7]);
        assert_eq!(
            union(
                vec![vec![5, 1], vec![]]
                    .into_iter()
                    .map(|mut v| {
                        v.sort();
                        v
                    })
                    .collect()
            ),
            [1, 5]
        );
        assert_eq!(union(vec![vec![1, 4], vec![2, 4]]), [1, 2, 4]);
        assert_eq!(
            intersect_all(vec![vec![1, 2, 3], vec![2, 3], vec![3, 9]]),
            [3]
        );
        assert!(intersect_all(vec![]).is_empty());
    }

    #[test]
    fn cursor_text_round_trip_and_damage() {
        let c = Cursor {
            store_id: "abc123".into(),
            seq: 42,
            backward: true,
        };
        let text = c.to_string();
        assert_eq!(text.parse::<Cursor>().unwrap(), c);
        let damaged = text.replace(".42.", ".43.");
        assert!(damaged.parse::<Cursor>().is_err());
        for bad in [
            "",
            "ef1",
            "ef2.a.1.f.00000000",
            "ef1.a.x.f.00000000",
            "ef1.a.1.q.00000000",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }

    /// cursor_parse fuzz finding, crash-8389a811eb707d72ae9b64ac747f9be03723565c: `+42` parsed as
    /// 42 and the checksum was computed over the re-printed text, so a cursor whose text differs
    /// from any the store printed was accepted. The checksum now covers the text as given and
    /// only canonical text is accepted.
    #[test]
    fn non_canonical_cursor_text_is_refused() {
        let sum = |body: &str| format!("{body}.{:08x}", crc32fast::hash(body.as_bytes()));
        assert!(sum("ef1.0190abc.42.f").parse::<Cursor>().is_ok());
        for body in [
            "ef1.0190abc.+42.f",
            "ef1.0190abc.042.f",
            "ef1.01-90.42.f",
            "ef1..42.f",
        ] {
            assert!(sum(body).parse::<Cursor>().is_err(), "{body}");
        }
        // The fuzzer's exact input: the checksum of the canonical body on non-canonical text.
        assert!("ef1.0190abc.+42.f.f0b5219b".parse::<Cursor>().is_err());
    }
}
