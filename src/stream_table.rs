//! The stream table: per stream, its current version and the sealed segments (and removed
//! ranges) holding its events, as `(base, last version there)` pairs.
//!
//! It is not built at open (issue 16). A clean open keeps the summary's stream records where
//! they are, in the `summary` file, and looks a stream up there when asked (`summary.rs`,
//! [`SummaryStreams`]: a directory of blocks in memory, one block read and checked per look-up).
//! Only the streams changed since the open, or about to be, are held in memory ("loaded"):
//! a stream is loaded before it is appended to, advanced by recovery, given a segment's counts
//! or deleted, and every other change follows from those. Listing streams in name order merges
//! the summary's records with the loaded streams.
//!
//! A look-up that finds the summary damaged is an error naming the summary; the caller
//! (`State::with_streams`) then builds the table from the sidecars instead, as an open without
//! a summary does. This module never decides which segments exist: it records what it is told.

use std::borrow::Cow;
use std::ops::Bound;
use std::sync::Arc;

use crate::error::Result;
use crate::summary_read::{SummaryStreams, SummaryWalk};

/// A stream's entry in the stream table.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StreamEntry {
    /// Current version (number of events ever appended).
    pub version: u64,
    /// Sealed segments (and removed ranges) holding events of the stream: `(base, last
    /// version in that segment)`.
    pub sealed: SealedList,
}

/// A stream's `(base, last version)` pairs, both ascending, as LEB128 varint differences from
/// the previous pair: about 4 bytes a pair instead of 16.
#[derive(Clone, Default, PartialEq)]
pub(crate) struct SealedList {
    bytes: Vec<u8>,
    /// The last pair, `(0, 0)` while empty.
    last: (u64, u64),
}

impl std::fmt::Debug for SealedList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The LEB128 varint at `at` in `bytes`, moving `at` past it (bits past 64 are dropped).
fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0u32;
    while let Some(&b) = bytes.get(*at) {
        *at += 1;
        v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

impl SealedList {
    /// Appends a pair, whose base and version are not below the last pair's.
    pub(crate) fn push(&mut self, base: u64, version: u64) {
        debug_assert!(base >= self.last.0 && version >= self.last.1);
        let deltas = [
            base.saturating_sub(self.last.0),
            version.saturating_sub(self.last.1),
        ];
        for d in deltas {
            let mut d = d;
            while d >= 0x80 {
                self.bytes.push(d as u8 | 0x80);
                d >>= 7;
            }
            self.bytes.push(d as u8);
        }
        self.last = (base, version);
    }

    /// The last pair, `(0, 0)` if there is none.
    pub(crate) fn last(&self) -> (u64, u64) {
        self.last
    }

    /// The pairs, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut at = 0usize;
        let mut pair = (0u64, 0u64);
        std::iter::from_fn(move || {
            if at >= self.bytes.len() {
                return None;
            }
            pair = (
                pair.0.wrapping_add(varint(&self.bytes, &mut at)),
                pair.1.wrapping_add(varint(&self.bytes, &mut at)),
            );
            Some(pair)
        })
    }

    /// The number of pairs.
    pub(crate) fn len(&self) -> usize {
        self.iter().count()
    }

    /// Where `base` falls: the version after the last pair below it (1 if none), and the first
    /// pair at or above it, if any.
    pub(crate) fn at(&self, base: u64) -> (u64, Option<(u64, u64)>) {
        let mut first = 1;
        for (b, v) in self.iter() {
            if b >= base {
                return (first, Some((b, v)));
            }
            first = v + 1;
        }
        (first, None)
    }
}

/// The summary a clean open took its streams from, and how its records are read.
struct FromSummary {
    streams: Arc<SummaryStreams>,
    /// Whether the records' versions count the active segment's events up to its checkpoint:
    /// the open continued from the very checkpoint the summary describes. Otherwise each
    /// stream's version is its last pair's, and the active segment was scanned.
    with_active: bool,
    /// The base under which the segment that was active at the open was sealed since: every
    /// record with events in it then has a pair there.
    sealed_at: Option<u64>,
}

impl FromSummary {
    /// The entry of `stream` as the summary gives it now, if it has events.
    fn entry(&self, stream: &str) -> Result<Option<StreamEntry>> {
        Ok(self
            .streams
            .find(stream)?
            .and_then(|r| self.entry_of(r.sealed, r.active)))
    }

    fn entry_of(&self, pairs: Vec<(u64, u64)>, active: u64) -> Option<StreamEntry> {
        let mut sealed = SealedList::default();
        for (base, version) in pairs {
            sealed.push(base, version);
        }
        let active = if self.with_active { active } else { 0 };
        let version = sealed.last().1 + active;
        if let Some(base) = self.sealed_at.filter(|_| active > 0) {
            sealed.push(base, version);
        }
        (version > 0).then_some(StreamEntry { version, sealed })
    }

    /// The number of streams with events.
    fn count(&self) -> u64 {
        if self.with_active {
            self.streams.streams
        } else {
            self.streams.sealed_streams
        }
    }
}

/// The loaded streams, in the order they were loaded: their names in one arena, and their
/// entries. A name of its own (a `Box<str>` each) was an allocation per stream never freed
/// while the table lives: in a bulk load of new streams, about 3.5% of the process went to
/// making them, and more to the page faults of the heap they grew.
#[derive(Default)]
struct Entries {
    names: String,
    list: Vec<Loaded>,
}

/// A loaded stream: its name, `names[start..start + len]`, and its entry.
struct Loaded {
    start: usize,
    len: u32,
    entry: StreamEntry,
}

impl Entries {
    fn len(&self) -> usize {
        self.list.len()
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The name of entry `i`.
    fn name(&self, i: usize) -> &str {
        let l = &self.list[i];
        &self.names[l.start..l.start + l.len as usize]
    }

    fn entry(&self, i: usize) -> &StreamEntry {
        &self.list[i].entry
    }

    fn entry_mut(&mut self, i: usize) -> &mut StreamEntry {
        &mut self.list[i].entry
    }

    /// Appends `stream`'s entry, answering its index: a u32, since 2^32 streams would need
    /// some 300 GB of the table first.
    fn push(&mut self, stream: &str, entry: StreamEntry) -> u32 {
        let i = u32::try_from(self.list.len()).expect("fewer than 2^32 streams");
        let start = self.names.len();
        self.names.push_str(stream);
        self.list.push(Loaded {
            start,
            // A name is at most 256 bytes (`event.rs`), and one read from a file at most a
            // record long: far less than 4 GiB.
            len: stream.len() as u32,
            entry,
        });
        i
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &StreamEntry)> + '_ {
        (0..self.list.len()).map(|i| (self.name(i), self.entry(i)))
    }

    fn entries_mut(&mut self) -> impl Iterator<Item = &mut StreamEntry> + '_ {
        self.list.iter_mut().map(|l| &mut l.entry)
    }
}

/// Per stream: its current version and the sealed segments holding its events. See the
/// module's documentation: the summary's streams are looked up in place, and only the streams
/// changed since the open are kept in memory.
///
/// Loaded streams are found by a hash of the name, not searched in a tree: a bulk load of new
/// streams looks each up and adds it, and a tree of a few hundred thousand names spent a fifth
/// of a million-event `generate` comparing strings. Entries are kept in the order they were
/// loaded (a stream is never removed), and [`StreamTable::range`] walks them in name order,
/// through an order of the entries brought up to date when asked for (the names added since
/// are sorted and merged in), merged with the summary's records.
///
/// Changed only by the methods below, the one place that builds it (from appends, scanned
/// records, sidecars, removed ranges and sealing).
#[derive(Default)]
pub(crate) struct StreamTable {
    summary: Option<FromSummary>,
    entries: Entries,
    /// Indexes into `entries` with 32 bits of the hash of their names, by a hash made from
    /// those bits ([`StreamTable::spread`]): a probe compares them before reading an entry, and
    /// growing the table reads no entry. A bucket is 8 bytes.
    table: hashbrown::HashTable<(u32, u32)>,
    state: foldhash::fast::RandomState,
    /// Indexes of `entries[..sorted.len()]`, in name order.
    sorted: Vec<u32>,
    /// Loaded streams that the summary does not count (new since the open).
    new: usize,
}

impl std::fmt::Debug for StreamTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.entries.iter()).finish()
    }
}

impl StreamTable {
    /// A table of the streams of `streams`, a summary's, whose versions count the sealed
    /// segments only until [`StreamTable::count_active`] says otherwise.
    pub(crate) fn from_summary(streams: Arc<SummaryStreams>) -> StreamTable {
        StreamTable {
            summary: Some(FromSummary {
                streams,
                with_active: false,
                sealed_at: None,
            }),
            ..StreamTable::default()
        }
    }

    /// The summary's streams, if the table reads one.
    pub(crate) fn summary(&self) -> Option<&Arc<SummaryStreams>> {
        self.summary.as_ref().map(|s| &s.streams)
    }

    /// The open continued the active segment from the checkpoint the summary describes: its
    /// records' versions count that segment's events up to there. Only before anything is
    /// loaded.
    pub(crate) fn count_active(&mut self) {
        debug_assert!(self.entries.is_empty());
        if let Some(s) = &mut self.summary {
            s.with_active = true;
        }
    }

    /// The bases the lists may name, ascending: the summary's, the segment sealed since under
    /// its active segment's base, and those of the loaded lists.
    pub(crate) fn named_bases(&self) -> Vec<u64> {
        let mut points: Vec<u64> = self
            .entries
            .iter()
            .flat_map(|(_, e)| e.sealed.iter().map(|p| p.0))
            .collect();
        if let Some(s) = &self.summary {
            points.extend_from_slice(s.streams.points());
            points.extend(s.sealed_at);
        }
        points.sort_unstable();
        points.dedup();
        points
    }

    /// The 32 bits of `name`'s hash the table keeps.
    fn hash(&self, name: &str) -> u32 {
        let h = std::hash::BuildHasher::hash_one(&self.state, name);
        (h ^ (h >> 32)) as u32
    }

    /// The table's hash of a name whose kept bits are `k`: the same at insertion, lookup and
    /// growth, its high bits (the table's tags) mixed from all of `k`.
    fn spread(k: u32) -> u64 {
        u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn index_of(&self, stream: &str) -> Option<usize> {
        let entries = &self.entries;
        let k = self.hash(stream);
        self.table
            .find(Self::spread(k), |&(g, i)| {
                g == k && entries.name(i as usize) == stream
            })
            .map(|&(_, i)| i as usize)
    }

    /// The loaded entry of `stream`, if it is loaded: every stream changed since the open is,
    /// and every stream [`StreamTable::load`] was asked for.
    pub(crate) fn loaded(&self, stream: &str) -> Option<&StreamEntry> {
        self.index_of(stream).map(|i| self.entries.entry(i))
    }

    /// The entry of `stream`, if it has events: loaded, or read from the summary (which is
    /// then an error if the summary's block is damaged).
    pub(crate) fn get(&self, stream: &str) -> Result<Option<Cow<'_, StreamEntry>>> {
        if let Some(e) = self.loaded(stream) {
            return Ok(Some(Cow::Borrowed(e)));
        }
        match &self.summary {
            Some(s) => Ok(s.entry(stream)?.map(Cow::Owned)),
            None => Ok(None),
        }
    }

    /// Loads `stream` from the summary if it is there and not loaded yet: a stream must be
    /// loaded before it is changed.
    pub(crate) fn load(&mut self, stream: &str) -> Result<()> {
        self.load_version(stream).map(drop)
    }

    /// [`StreamTable::load`], answering the stream's version (0: no events) from the same
    /// probe of the table: an append checks every stream's version, and a bulk load of new
    /// streams probed the table twice for each.
    pub(crate) fn load_version(&mut self, stream: &str) -> Result<u64> {
        if let Some(i) = self.index_of(stream) {
            return Ok(self.entries.entry(i).version);
        }
        match match &self.summary {
            Some(s) => s.entry(stream)?,
            None => None,
        } {
            Some(e) => Ok(self.insert(stream, e).version),
            None => Ok(0),
        }
    }

    /// Adds `stream`, which has no entry.
    fn insert(&mut self, stream: &str, e: StreamEntry) -> &mut StreamEntry {
        let k = self.hash(stream);
        let i = self.entries.push(stream, e);
        self.table
            .insert_unique(Self::spread(k), (k, i), |&(g, _)| Self::spread(g));
        self.entries.entry_mut(i as usize)
    }

    /// The loaded entry of `stream`, made (a new stream) if missing: the caller loaded it. One
    /// hash of the name and one probe, found or not.
    fn entry(&mut self, stream: &str) -> &mut StreamEntry {
        let k = self.hash(stream);
        let entries = &self.entries;
        let slot = self.table.entry(
            Self::spread(k),
            |&(g, i)| g == k && entries.name(i as usize) == stream,
            |&(g, _)| Self::spread(g),
        );
        let i = match slot {
            hashbrown::hash_table::Entry::Occupied(o) => o.get().1 as usize,
            hashbrown::hash_table::Entry::Vacant(v) => {
                let i = self.entries.push(stream, StreamEntry::default());
                v.insert((k, i));
                self.new += 1;
                i as usize
            }
        };
        self.entries.entry_mut(i)
    }

    /// The number of streams with events.
    pub(crate) fn len(&self) -> usize {
        let summary = self.summary.as_ref().map_or(0, |s| s.count());
        usize::try_from(summary).unwrap_or(usize::MAX) + self.new
    }

    /// Brings the name order of the loaded entries up to date: the names added since it last
    /// was are sorted and merged in.
    fn sort_loaded(&mut self) {
        if self.sorted.len() == self.entries.len() {
            return;
        }
        let entries = &self.entries;
        let name = |i: &u32| entries.name(*i as usize);
        let mut new: Vec<u32> = (self.sorted.len() as u32..entries.len() as u32).collect();
        new.sort_unstable_by(|a, b| name(a).cmp(name(b)));
        // Each new name is placed by a galloping search of the old order from the last one's
        // place, and the runs of old names between are copied whole: a listing after a few new
        // streams in a table of millions compares a few dozen names, not every one (this runs
        // under the state lock), and many new names cost no more than a merge. Names are
        // unique, so no old name equals a new one.
        let old = std::mem::take(&mut self.sorted);
        let mut merged = Vec::with_capacity(entries.len());
        let mut from = 0;
        for i in new {
            let n = name(&i);
            let rest = &old[from..];
            // Every name of `rest[..hi / 2]` is below `n`, and the place is in `..=hi`.
            let mut hi = 1;
            while hi < rest.len() && name(&rest[hi - 1]) < n {
                hi *= 2;
            }
            let (lo, hi) = (hi / 2, hi.min(rest.len()));
            let at = from + lo + rest[lo..hi].partition_point(|j| name(j) < n);
            merged.extend_from_slice(&old[from..at]);
            merged.push(i);
            from = at;
        }
        merged.extend_from_slice(&old[from..]);
        self.sorted = merged;
    }

    /// The streams with events from `lower` on, in name order: the loaded ones merged with the
    /// summary's (a loaded stream's entry replaces the summary's record). An item is an error
    /// where a block of the summary is damaged (and the walk ends there).
    pub(crate) fn range(&mut self, lower: Bound<&str>) -> Range<'_> {
        self.sort_loaded();
        let entries = &self.entries;
        let name = |i: &u32| entries.name(*i as usize);
        let start = match lower {
            Bound::Included(l) => self.sorted.partition_point(|i| name(i) < l),
            Bound::Excluded(l) => self.sorted.partition_point(|i| name(i) <= l),
            Bound::Unbounded => 0,
        };
        Range {
            entries,
            loaded: self.sorted[start..].iter().peekable(),
            summary: self.summary.as_ref().map(|s| (s, s.streams.walk(lower))),
            next_summary: None,
            failed: false,
        }
    }

    /// The next event of `stream`, at `version`, was read: it must follow the stream's current
    /// version, or `Ok(Err)` gives the version expected (and nothing changes).
    pub(crate) fn advance(&mut self, stream: &str, version: u64) -> Result<Result<(), u64>> {
        self.load(stream)?;
        let current = self.loaded(stream).map_or(0, |e| e.version);
        if version != current + 1 {
            return Ok(Err(current + 1));
        }
        self.entry(stream).version = version;
        Ok(Ok(()))
    }

    /// `n` more events of `stream` were written. The stream was loaded (an append looks its
    /// version up first, which loads it): one the table does not hold is new.
    pub(crate) fn add(&mut self, stream: &str, n: u64) {
        self.entry(stream).version += n;
    }

    /// The active segment was sealed as the segment at `base`: every stream with events after
    /// its last pair (those are in the active segment) gets a pair there, its current version.
    pub(crate) fn sealed(&mut self, base: u64) {
        if let Some(s) = &mut self.summary
            && s.with_active
            && s.sealed_at.is_none()
            && s.streams.active_base == base
        {
            s.sealed_at = Some(base);
        }
        for e in self.entries.entries_mut() {
            if e.version > e.sealed.last().1 {
                e.sealed.push(base, e.version);
            }
        }
    }

    /// Adds a whole segment's (or removed range's) counts per stream, `(name, events)`, and
    /// with `sealed` records the segment at `base` as holding each of them. Every stream is
    /// loaded before any changes, so that an error (a damaged summary) leaves the table as it
    /// was.
    pub(crate) fn add_segment<'a>(
        &mut self,
        base: u64,
        counts: impl IntoIterator<Item = (&'a str, u64)>,
        sealed: bool,
    ) -> Result<()> {
        let counts: Vec<(&str, u64)> = counts.into_iter().collect();
        if self.summary.is_some() {
            for (name, _) in &counts {
                self.load(name)?;
            }
        }
        for (name, n) in counts {
            let e = self.entry(name);
            e.version += n;
            if sealed {
                e.sealed.push(base, e.version);
            }
        }
        Ok(())
    }
}

/// A walk of the stream table in name order ([`StreamTable::range`]).
pub(crate) struct Range<'a> {
    entries: &'a Entries,
    loaded: std::iter::Peekable<std::slice::Iter<'a, u32>>,
    summary: Option<(&'a FromSummary, SummaryWalk<'a>)>,
    /// The summary's next stream with events, read ahead.
    next_summary: Option<(String, StreamEntry)>,
    failed: bool,
}

impl<'a> Iterator for Range<'a> {
    type Item = Result<(Cow<'a, str>, Cow<'a, StreamEntry>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.next_summary.is_none()
            && let Some((s, walk)) = &mut self.summary
        {
            loop {
                match walk.next() {
                    None => break,
                    Some(Err(e)) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    Some(Ok(r)) => {
                        if let Some(e) = s.entry_of(r.sealed, r.active) {
                            self.next_summary = Some((r.name, e));
                            break;
                        }
                    }
                }
            }
        }
        let entries = self.entries;
        let loaded = self
            .loaded
            .peek()
            .map(|&&i| (entries.name(i as usize), entries.entry(i as usize)));
        // Which comes first: the loaded stream, or the summary's (a tie is the loaded one,
        // which replaces the summary's record).
        let (summary_first, tie) = match (loaded, &self.next_summary) {
            (None, None) => return None,
            (None, Some(_)) => (true, false),
            (Some(_), None) => (false, false),
            (Some((n, _)), Some((sn, _))) => (sn.as_str() < n, sn.as_str() == n),
        };
        if tie {
            self.next_summary = None;
        }
        if summary_first {
            let (sn, se) = self.next_summary.take()?;
            return Some(Ok((Cow::Owned(sn), Cow::Owned(se))));
        }
        let (n, e) = loaded?;
        self.loaded.next();
        Some(Ok((Cow::Borrowed(n), Cow::Borrowed(e))))
    }
}

#[cfg(test)]
mod tests {
    use super::{SealedList, StreamTable};
    use std::ops::Bound::{self, Excluded, Included, Unbounded};

    fn walk(t: &mut StreamTable, from: Bound<&str>) -> Vec<(String, u64)> {
        t.range(from)
            .map(|r| r.map(|(n, e)| (n.into_owned(), e.version)))
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The walk's order after rounds of new names of every size, each placed among the old
    /// ones by a galloping search: always the names sorted.
    #[test]
    fn the_walk_stays_in_name_order_whatever_the_rounds_add() {
        let mut t = StreamTable::default();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut all: Vec<String> = Vec::new();
        for round in [1usize, 1, 2, 3, 50, 1, 400, 7, 0, 2000, 1, 30] {
            for _ in 0..round {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let name = format!("s{}", x % 100_000);
                if t.loaded(&name).is_none() {
                    t.add(&name, 1);
                    all.push(name);
                }
            }
            all.sort();
            let walked: Vec<String> = walk(&mut t, Unbounded).into_iter().map(|w| w.0).collect();
            assert_eq!(walked, all, "after a round of {round}");
            assert_eq!(t.len(), all.len());
        }
    }

    #[test]
    fn the_table_finds_streams_by_name_and_walks_them_in_name_order() {
        let mut t = StreamTable::default();
        // Names added out of order, in three rounds, with a walk between them: the order is
        // brought up to date by merging the names added since.
        for round in 0..3u64 {
            for i in (0..40u64).rev().filter(|i| i % 3 == round) {
                t.add(&format!("s{i:02}"), i + 1);
            }
            let upto = (0..40).filter(|i| i % 3 <= round).count();
            let got = walk(&mut t, Unbounded);
            assert_eq!(got.len(), upto);
            assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{got:?}");
        }
        t.add("s07", 2);
        t.add_segment(9, [("s05", 3), ("new", 1)], true).unwrap();
        assert_eq!(t.get("s07").unwrap().unwrap().version, 10);
        assert_eq!(t.loaded("s05").unwrap().version, 9);
        assert_eq!(
            t.loaded("s05").unwrap().sealed.iter().collect::<Vec<_>>(),
            [(9, 9)]
        );
        assert!(t.get("s40").unwrap().is_none());
        assert_eq!(t.len(), 41);
        let names = |v: Vec<(String, u64)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(walk(&mut t, Included("s38"))), ["s38", "s39"]);
        assert_eq!(names(walk(&mut t, Excluded("s38"))), ["s39"]);
        assert_eq!(names(walk(&mut t, Included("s385"))), ["s39"]);
        assert_eq!(walk(&mut t, Unbounded)[0].0, "new");
        // A seal gives every stream with events after its last pair a pair there: those in
        // the active segment.
        t.add("s07", 1);
        t.sealed(11);
        assert_eq!(
            t.loaded("s07").unwrap().sealed.iter().collect::<Vec<_>>(),
            [(11, 11)]
        );
        assert_eq!(
            t.loaded("s05").unwrap().sealed.iter().collect::<Vec<_>>(),
            [(9, 9)],
            "no event of s05 since its last segment"
        );
        assert_eq!(t.advance("s05", 11).unwrap(), Err(10));
        assert_eq!(t.advance("s05", 10).unwrap(), Ok(()));
        assert_eq!(t.advance("fresh", 2).unwrap(), Err(1));
        assert_eq!(t.advance("fresh", 1).unwrap(), Ok(()));
        assert_eq!(t.len(), 42);
    }

    #[test]
    fn a_sealed_list_gives_back_its_pairs_and_places_a_base() {
        let pairs = [
            (1, 3),
            (200, 4),
            (70_000, 300),
            (u64::MAX / 2, u64::MAX / 3),
        ];
        let mut l = SealedList::default();
        assert!(l.iter().next().is_none());
        assert_eq!(l.at(5), (1, None));
        for (b, v) in pairs {
            l.push(b, v);
        }
        assert_eq!(l.iter().collect::<Vec<_>>(), pairs);
        assert_eq!(l.len(), 4);
        assert_eq!(l.last(), (u64::MAX / 2, u64::MAX / 3));
        assert_eq!(l.at(1), (1, Some((1, 3))));
        assert_eq!(l.at(2), (4, Some((200, 4))));
        assert_eq!(l.at(200), (4, Some((200, 4))));
        assert_eq!(l.at(70_001), (301, Some((u64::MAX / 2, u64::MAX / 3))));
        assert_eq!(l.at(u64::MAX), (u64::MAX / 3 + 1, None));
        assert_eq!(format!("{l:?}"), format!("{pairs:?}"));
    }
}
