//! The in-memory state the writer and the readers share, behind one mutex held only briefly:
//! owned parts, each with its own module: the segment set (`segments.rs`), the stream table
//! (here), the deletion state (`deletion.rs`) and the removal manifest (`manifest.rs`), plus
//! the head of the log. Modules take the part they need; few need the whole.

use std::path::Path;
use std::sync::Arc;

use crate::deletion::{DeadCounts, Deletion, DeletionState};
use crate::error::{Error, Result};
use crate::index::{IndexFile, Kind};
use crate::manifest::Removed;
use crate::sealed::MapCache;
use crate::segments::{Segment, SegmentSet};
use crate::storage::Storage;

/// A stream's entry in the stream table.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamEntry {
    /// Current version (number of events ever appended).
    pub version: u64,
    /// Sealed segments (and removed ranges) holding events of the stream: `(base, last
    /// version in that segment)`.
    pub sealed: SealedList,
}

/// Every stream's pairs as the store summary holds them (`summary.rs`): the summary's bytes,
/// which the lists read at open point into, and the bases its pairs number.
pub(crate) struct SummaryPairs {
    pub bytes: Vec<u8>,
    pub points: Vec<u64>,
}

/// A stream's `(base, last version)` pairs, both ascending.
///
/// Those of the summary the open read stay in its bytes (`(point, version)` varint differences,
/// about 2 bytes a pair) and are decoded when asked for: an open at 10,000,000 events in
/// 100,000 streams and 41 segments no longer builds 4.1 million pairs into 100,000 lists
/// (issue 16). Pairs added since are kept as LEB128 varint differences from the previous pair,
/// about 4 bytes a pair instead of 16.
#[derive(Clone, Default)]
pub(crate) struct SealedList {
    /// The summary's pairs: its bytes `start..end`, checked when the summary was read.
    summary: Option<(Arc<SummaryPairs>, u32, u32)>,
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
    /// The pairs in `pairs.bytes[start..end]`, which the summary's reader checked (they decode
    /// to points within `pairs.points`, ascending), the last of them `last`.
    pub(crate) fn from_summary(
        pairs: Arc<SummaryPairs>,
        start: u32,
        end: u32,
        last: (u64, u64),
    ) -> SealedList {
        SealedList {
            summary: Some((pairs, start, end)),
            bytes: Vec::new(),
            last,
        }
    }

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

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.summary.as_ref().is_none_or(|s| s.1 == s.2)
    }

    /// The pairs, in order: the summary's, then those added since (differences from the
    /// summary's last).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let summary = self.summary.as_ref().map(|(p, start, end)| {
            let bytes = p.bytes.get(*start as usize..*end as usize).unwrap_or(&[]);
            (&p.points, bytes)
        });
        let (mut s_at, mut point, mut at) = (0usize, 0u64, 0usize);
        let mut pair = (0u64, 0u64);
        std::iter::from_fn(move || {
            if let Some((points, bytes)) = summary
                && s_at < bytes.len()
            {
                point = point.wrapping_add(varint(bytes, &mut s_at));
                let version = pair.1.wrapping_add(varint(bytes, &mut s_at));
                let base = usize::try_from(point)
                    .ok()
                    .and_then(|p| points.get(p))
                    .copied()
                    .unwrap_or(u64::MAX);
                pair = (base, version);
                return Some(pair);
            }
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

/// Per stream: its current version and the sealed segments holding its events.
///
/// Found by a hash of the name, not searched in a tree: a bulk load of new streams looks each
/// up and adds it, and a tree of a few hundred thousand names spent a fifth of a million-event
/// `generate` comparing strings. Entries are kept in the order their streams were first
/// written (a stream is never removed), and [`StreamTable::range`] walks them in name order,
/// through an order of the entries brought up to date when asked for (the names added since
/// are sorted and merged in).
///
/// Changed only by the methods below, the one place that builds it (from appends, scanned
/// records, sidecars, removed ranges and sealing).
#[derive(Default)]
pub(crate) struct StreamTable {
    entries: Vec<(Box<str>, StreamEntry)>,
    /// Indexes into `entries` with 32 bits of the hash of their names, by a hash made from
    /// those bits ([`StreamTable::spread`]): a probe compares them before reading an entry, and
    /// growing the table reads no entry (rehashing 2,000,000 names read from the entries was a
    /// cache miss or two per stream). A bucket is 8 bytes: with the whole 64-bit hash it was
    /// 16, 1.2 MiB more at 100,000 streams.
    table: hashbrown::HashTable<(u32, u32)>,
    state: foldhash::fast::RandomState,
    /// Indexes of `entries[..sorted.len()]`, in name order.
    sorted: Vec<u32>,
}

impl std::fmt::Debug for StreamTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl StreamTable {
    /// The table of `entries`, which are in name order.
    pub(crate) fn from_sorted(entries: Vec<(String, StreamEntry)>) -> StreamTable {
        let mut t = StreamTable::default();
        t.entries.reserve(entries.len());
        t.table.reserve(entries.len(), |&(k, _)| Self::spread(k));
        for (name, e) in entries {
            t.insert(&name, e);
        }
        t.sorted = (0..t.entries.len() as u32).collect();
        t
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

    /// The entry of `stream`, if it has one.
    pub(crate) fn get(&self, stream: &str) -> Option<&StreamEntry> {
        let entries = &self.entries;
        let k = self.hash(stream);
        self.table
            .find(Self::spread(k), |&(g, i)| {
                g == k && &*entries[i as usize].0 == stream
            })
            .map(|&(_, i)| &entries[i as usize].1)
    }

    fn get_mut(&mut self, stream: &str) -> Option<&mut StreamEntry> {
        let k = self.hash(stream);
        let entries = &self.entries;
        let &(_, i) = self.table.find(Self::spread(k), |&(g, i)| {
            g == k && &*entries[i as usize].0 == stream
        })?;
        Some(&mut self.entries[i as usize].1)
    }

    /// Adds `stream`, which has no entry.
    fn insert(&mut self, stream: &str, e: StreamEntry) -> &mut StreamEntry {
        // An entry's index is a u32: 2^32 streams would need some 400 GB of this table first.
        let i = u32::try_from(self.entries.len()).expect("fewer than 2^32 streams");
        let k = self.hash(stream);
        self.table
            .insert_unique(Self::spread(k), (k, i), |&(g, _)| Self::spread(g));
        self.entries.push((stream.into(), e));
        &mut self.entries[i as usize].1
    }

    /// The number of streams.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every stream, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &StreamEntry)> {
        self.entries.iter().map(|(n, e)| (&**n, e))
    }

    /// Every stream, in name order (sorted now: for a whole walk such as the summary's).
    pub(crate) fn sorted(&self) -> Vec<(&str, &StreamEntry)> {
        let mut v: Vec<(&str, &StreamEntry)> = self.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// The streams from `lower` on, in name order: the order is brought up to date first, the
    /// names added since it last was sorted and merged in.
    pub(crate) fn range(
        &mut self,
        lower: std::ops::Bound<&str>,
    ) -> impl Iterator<Item = (&str, &StreamEntry)> {
        if self.sorted.len() < self.entries.len() {
            let entries = &self.entries;
            let name = |i: &u32| &*entries[*i as usize].0;
            let mut new: Vec<u32> = (self.sorted.len() as u32..entries.len() as u32).collect();
            new.sort_unstable_by(|a, b| name(a).cmp(name(b)));
            // Each new name is placed by a galloping search of the old order from the last
            // one's place, and the runs of old names between are copied whole: a listing after
            // a few new streams in a table of millions compares a few dozen names, not every
            // one (this runs under the state lock), and many new names cost no more than a
            // merge. Names are unique, so no old name equals a new one.
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
        let entries = &self.entries;
        let name = |i: &u32| &*entries[*i as usize].0;
        let start = match lower {
            std::ops::Bound::Included(l) => self.sorted.partition_point(|i| name(i) < l),
            std::ops::Bound::Excluded(l) => self.sorted.partition_point(|i| name(i) <= l),
            std::ops::Bound::Unbounded => 0,
        };
        self.sorted[start..].iter().map(move |&i| {
            let (n, e) = &entries[i as usize];
            (&**n, e)
        })
    }

    /// Applies `f` to the entry of `stream`, made empty if missing (one lookup, and no name
    /// allocated, when it is present: this is on the append path).
    fn with_entry(&mut self, stream: &str, f: impl FnOnce(&mut StreamEntry)) {
        match self.get_mut(stream) {
            Some(e) => f(e),
            None => f(self.insert(stream, StreamEntry::default())),
        }
    }

    /// The next event of `stream`, at `version`, was read: it must follow the stream's current
    /// version, or `Err` gives the version expected (and nothing changes).
    pub(crate) fn advance(&mut self, stream: &str, version: u64) -> Result<(), u64> {
        match self.get_mut(stream) {
            Some(e) if version == e.version + 1 => e.version = version,
            Some(e) => return Err(e.version + 1),
            None if version == 1 => {
                self.insert(
                    stream,
                    StreamEntry {
                        version,
                        sealed: SealedList::default(),
                    },
                );
            }
            None => return Err(1),
        }
        Ok(())
    }

    /// `n` more events of `stream` were written.
    pub(crate) fn add(&mut self, stream: &str, n: u64) {
        self.with_entry(stream, |e| e.version += n);
    }

    /// The segment at `base` was sealed holding events of `streams` (each once): record it,
    /// with each stream's version there.
    pub(crate) fn sealed<'a>(&mut self, base: u64, streams: impl IntoIterator<Item = &'a str>) {
        for name in streams {
            if let Some(e) = self.get_mut(name) {
                let v = e.version;
                e.sealed.push(base, v);
            }
        }
    }

    /// Adds a whole segment's (or removed range's) counts per stream, `(name, events)`, and
    /// with `sealed` records the segment at `base` as holding each of them.
    pub(crate) fn add_segment<'a>(
        &mut self,
        base: u64,
        counts: impl IntoIterator<Item = (&'a str, u64)>,
        sealed: bool,
    ) {
        for (name, n) in counts {
            self.with_entry(name, |e| {
                e.version += n;
                if sealed {
                    e.sealed.push(base, e.version);
                }
            });
        }
    }
}

/// Everything the writer and the readers share, behind one mutex held only briefly.
pub(crate) struct State {
    /// The segments of the log, the active one last, and how it is read and written.
    pub log: SegmentSet,
    /// Current version and sealed-segment list per stream.
    pub streams: StreamTable,
    /// What is deleted, and how far the `$lifecycle` events are applied.
    pub deletions: DeletionState,
    /// The removal manifest as last read or written.
    pub removed: Removed,
    /// The seq the next event will get.
    pub next_seq: u64,
    /// Time of the last event (microseconds), never decreasing.
    pub last_time: i64,
    /// Set once a write or sync failed; appends are refused until reopen.
    pub poisoned: Option<String>,
    /// Scratch buffer for encoding batches.
    pub buf: Vec<u8>,
    /// Whether the open took the sealed segments from the summary (`summary.rs`).
    pub from_summary: bool,
}

impl State {
    pub(crate) fn new(maps: Arc<MapCache>) -> State {
        State {
            log: SegmentSet::new(maps),
            streams: StreamTable::default(),
            deletions: DeletionState::default(),
            removed: Removed::default(),
            next_seq: 1,
            last_time: 0,
            poisoned: None,
            buf: Vec::new(),
            from_summary: false,
        }
    }

    /// The current version of `stream` (0 if it holds no events).
    pub(crate) fn version(&self, stream: &str) -> u64 {
        self.streams.get(stream).map_or(0, |e| e.version)
    }

    /// The active segment.
    pub(crate) fn active(&self) -> &Segment {
        self.log.active()
    }

    /// Seals the active segment in memory (see [`SegmentSet::seal_active`]) and records, for
    /// every stream with events in it, the segment and its last version there.
    pub(crate) fn seal_active_in_memory(
        &mut self,
        storage: &Arc<dyn Storage>,
        dir: &Path,
        index: Arc<IndexFile>,
        pinned: bool,
    ) {
        let (base, mem) = self.log.seal_active(storage, dir, index, pinned);
        self.streams.sealed(
            base,
            mem.terms_with_prefix(Kind::Stream, "").map(|(n, _)| n),
        );
        let mut mem = mem;
        mem.clear();
        self.log.spare_index = Some(mem);
    }
    /// What is deleted of `stream`, if anything; a tombstoned stream is refused with
    /// [`Error::StreamDeleted`], as every operation on it is.
    pub(crate) fn deletion(&self, stream: &str) -> Result<Option<Deletion>> {
        match self.deletions.map.get(stream) {
            Some(d) if d.tombstone => Err(Error::StreamDeleted {
                stream: stream.to_owned(),
                version: d.before - 1,
            }),
            d => Ok(d.copied()),
        }
    }
}

/// The [`DeadCounts`] of the segment at `base`. The caller turns them into ordinals with the
/// segment's stream postings.
pub(crate) fn dead_counts(st: &State, base: u64, active: bool) -> DeadCounts {
    let mut out = Vec::new();
    for (name, d) in st.deletions.map.iter() {
        let Some(entry) = st.streams.get(name) else {
            continue;
        };
        // The stream's versions in this segment: after its previous segment's last, up to
        // this one's last (the list is in base order: a binary search, as this runs per
        // deleted stream for every segment a read plans).
        let (first, at) = entry.sealed.at(base);
        let range = match at {
            Some((b, last)) if b == base => Some((first, last)),
            None if active && first <= entry.version => Some((first, entry.version)),
            _ => None,
        };
        if let Some((first, last)) = range
            && d.before > first
        {
            let dead = (d.before.min(last + 1) - first) as usize;
            out.push((name.clone(), dead));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{SealedList, SummaryPairs};
    use std::sync::Arc;

    /// The walk's order after rounds of new names of every size, each placed among the old
    /// ones by a galloping search: always the names sorted.
    #[test]
    fn the_walk_stays_in_name_order_whatever_the_rounds_add() {
        let mut t = super::StreamTable::default();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut all: Vec<String> = Vec::new();
        for round in [1usize, 1, 2, 3, 50, 1, 400, 7, 0, 2000, 1, 30] {
            for _ in 0..round {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let name = format!("s{}", x % 100_000);
                if t.get(&name).is_none() {
                    t.add(&name, 1);
                    all.push(name);
                }
            }
            all.sort();
            let walked: Vec<&str> = t
                .range(std::ops::Bound::Unbounded)
                .map(|(n, _)| n)
                .collect();
            assert_eq!(walked, all, "after a round of {round}");
        }
    }

    #[test]
    fn the_table_finds_streams_by_name_and_walks_them_in_name_order() {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let walk = |t: &mut super::StreamTable, from| {
            t.range(from)
                .map(|(n, e)| (n.to_owned(), e.version))
                .collect::<Vec<_>>()
        };
        let mut t = super::StreamTable::default();
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
        t.add_segment(9, [("s05", 3), ("new", 1)], true);
        assert_eq!(t.get("s07").unwrap().version, 10);
        assert_eq!(t.get("s05").unwrap().version, 9);
        assert_eq!(
            t.get("s05").unwrap().sealed.iter().collect::<Vec<_>>(),
            [(9, 9)]
        );
        assert!(t.get("s40").is_none());
        assert_eq!(t.len(), 41);
        let names = |v: Vec<(String, u64)>| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(walk(&mut t, Included("s38"))), ["s38", "s39"]);
        assert_eq!(names(walk(&mut t, Excluded("s38"))), ["s39"]);
        assert_eq!(names(walk(&mut t, Included("s385"))), ["s39"]);
        assert_eq!(walk(&mut t, Unbounded)[0].0, "new");
        let walked = names(walk(&mut t, Unbounded));
        let sorted: Vec<&str> = t.sorted().into_iter().map(|(n, _)| n).collect();
        assert_eq!(sorted, walked);
        t.sealed(11, ["s07", "absent"]);
        assert_eq!(
            t.get("s07").unwrap().sealed.iter().collect::<Vec<_>>(),
            [(11, 10)]
        );
        let rebuilt = super::StreamTable::from_sorted(
            t.sorted()
                .into_iter()
                .map(|(n, e)| (n.to_owned(), e.clone()))
                .collect(),
        );
        assert_eq!(format!("{rebuilt:?}").len(), format!("{t:?}").len());
        assert_eq!(rebuilt.get("s07").unwrap().version, 10);
    }

    #[test]
    fn a_list_from_the_summary_decodes_its_pairs_there_and_continues_after_them() {
        // Two lists in one summary's bytes: (point, version) differences.
        let pairs = Arc::new(SummaryPairs {
            bytes: vec![9, 9, 0, 3, 1, 1, 2, 0xac, 0x02, 2, 5],
            points: vec![1, 200, 70_000, 90_000],
        });
        let mut l = SealedList::from_summary(Arc::clone(&pairs), 2, 9, (90_000, 304));
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            [(1, 3), (200, 4), (90_000, 304)]
        );
        l.push(100_000, 310);
        l.push(100_001, 400);
        let all = [
            (1, 3),
            (200, 4),
            (90_000, 304),
            (100_000, 310),
            (100_001, 400),
        ];
        assert_eq!(l.iter().collect::<Vec<_>>(), all);
        assert_eq!(l.len(), 5);
        assert!(!l.is_empty());
        assert_eq!(l.at(201), (5, Some((90_000, 304))));
        assert_eq!(l.at(100_001), (311, Some((100_001, 400))));
        assert_eq!(format!("{l:?}"), format!("{all:?}"));
        let other = SealedList::from_summary(Arc::clone(&pairs), 9, 11, (70_000, 5));
        assert_eq!(other.iter().collect::<Vec<_>>(), [(70_000, 5)]);
        assert!(SealedList::from_summary(pairs, 4, 4, (0, 0)).is_empty());
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
        assert!(l.is_empty() && l.iter().next().is_none());
        assert_eq!(l.at(5), (1, None));
        for (b, v) in pairs {
            l.push(b, v);
        }
        assert_eq!(l.iter().collect::<Vec<_>>(), pairs);
        assert_eq!(l.len(), 4);
        assert_eq!(l.at(1), (1, Some((1, 3))));
        assert_eq!(l.at(2), (4, Some((200, 4))));
        assert_eq!(l.at(200), (4, Some((200, 4))));
        assert_eq!(l.at(70_001), (301, Some((u64::MAX / 2, u64::MAX / 3))));
        assert_eq!(l.at(u64::MAX), (u64::MAX / 3 + 1, None));
    }
}
