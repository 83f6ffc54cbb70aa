//! The in-memory state the writer and the readers share, behind one mutex held only briefly:
//! owned parts, each with its own module: the segment set (`segments.rs`), the stream table
//! (here), the deletion state (`deletion.rs`) and the removal manifest (`manifest.rs`), plus
//! the head of the log. Modules take the part they need; few need the whole.

use std::collections::BTreeMap;
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

/// Per stream, in name order: its current version and the sealed segments holding its events.
///
/// Read through `Deref`; changed only by the methods below, the one place that builds it (from
/// appends, scanned records, sidecars, removed ranges and sealing).
#[derive(Debug, Default)]
pub(crate) struct StreamTable(BTreeMap<String, StreamEntry>);

impl std::ops::Deref for StreamTable {
    type Target = BTreeMap<String, StreamEntry>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl StreamTable {
    /// The table of `entries`, which are in name order (one pass, no searches).
    pub(crate) fn from_sorted(entries: Vec<(String, StreamEntry)>) -> StreamTable {
        StreamTable(entries.into_iter().collect())
    }

    /// Applies `f` to the entry of `stream`, made empty if missing (one lookup, and no name
    /// allocated, when it is present: this is on the append path).
    fn with_entry(&mut self, stream: &str, f: impl FnOnce(&mut StreamEntry)) {
        match self.0.get_mut(stream) {
            Some(e) => f(e),
            None => {
                let mut e = StreamEntry::default();
                f(&mut e);
                self.0.insert(stream.to_owned(), e);
            }
        }
    }

    /// The next event of `stream`, at `version`, was read: it must follow the stream's current
    /// version, or `Err` gives the version expected (and nothing changes).
    pub(crate) fn advance(&mut self, stream: &str, version: u64) -> Result<(), u64> {
        match self.0.get_mut(stream) {
            Some(e) if version == e.version + 1 => e.version = version,
            Some(e) => return Err(e.version + 1),
            None if version == 1 => {
                self.0.insert(
                    stream.to_owned(),
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

    /// `n` more events of `stream`, which was at version `base`, were written. A stream at 0 is
    /// usually new: its entry is made with one search of the table (a bulk load of new streams
    /// spent a fifth of its time in this table), the others are found with one.
    pub(crate) fn add(&mut self, stream: &str, base: u64, n: u64) {
        if base == 0 {
            self.0.entry(stream.to_owned()).or_default().version += n;
        } else {
            self.with_entry(stream, |e| e.version += n);
        }
    }

    /// The segment at `base` was sealed holding events of `count` streams, listed by `streams`
    /// and answered by `holds`: record it, with each stream's version there. When they are a
    /// large part of the table (a bulk load of new streams), one walk of the table asking
    /// `holds` of each; otherwise one search of the table per stream.
    pub(crate) fn sealed<'a>(
        &mut self,
        base: u64,
        count: usize,
        streams: impl IntoIterator<Item = &'a str>,
        holds: impl Fn(&str) -> bool,
    ) {
        let record = |e: &mut StreamEntry| {
            let v = e.version;
            e.sealed.push(base, v);
        };
        // A step of the walk is a hash lookup; a search of a large table is some twenty string
        // comparisons, most of them cache misses.
        if count >= self.0.len() / 16 {
            for (name, e) in self.0.iter_mut() {
                if holds(name) {
                    record(e);
                }
            }
            return;
        }
        for name in streams {
            if let Some(e) = self.0.get_mut(name) {
                record(e);
            }
        }
    }

    /// Adds a whole segment's (or removed range's) counts per stream, `(name, events)` in name
    /// order, and with `sealed` records the segment at `base` as holding each of them.
    pub(crate) fn add_segment<'a>(
        &mut self,
        base: u64,
        counts: impl IntoIterator<Item = (&'a str, u64)>,
        sealed: bool,
        many: bool,
    ) {
        let apply = |entry: &mut StreamEntry, n: u64| {
            entry.version += n;
            if sealed {
                entry.sealed.push(base, entry.version);
            }
        };
        if !many {
            for (name, n) in counts {
                self.with_entry(name, |e| apply(e, n));
            }
            return;
        }
        // Sorted counts that are a large part of the table: walk the two side by side,
        // applying those of streams the table holds in place (a profile of opening 1,000,000
        // events in 100,000 streams spent 40% in one tree lookup per term; rebuilding the whole
        // table instead was a fifth of an open at 10,000,000).
        let mut missing: Vec<(&str, u64)> = Vec::new();
        let mut table = self.0.iter_mut().peekable();
        for (name, n) in counts {
            while table.next_if(|(k, _)| k.as_str() < name).is_some() {}
            match table.next_if(|(k, _)| k.as_str() == name) {
                Some((_, e)) => apply(e, n),
                None => missing.push((name, n)),
            }
        }
        if missing.len() < self.0.len() / 16 {
            for (name, n) in missing {
                self.with_entry(name, |e| apply(e, n));
            }
            return;
        }
        // Many new streams (a bulk load): merge them in one pass and rebuild the table from
        // the sorted result.
        let old = std::mem::take(&mut self.0);
        let mut merged: Vec<(String, StreamEntry)> = Vec::with_capacity(old.len() + missing.len());
        let mut old = old.into_iter().peekable();
        for (name, n) in missing {
            while let Some(kv) = old.next_if(|(k, _)| k.as_str() < name) {
                merged.push(kv);
            }
            let mut kv = old
                .next_if(|(k, _)| k == name)
                .unwrap_or_else(|| (name.to_owned(), StreamEntry::default()));
            apply(&mut kv.1, n);
            merged.push(kv);
        }
        merged.extend(old);
        // Sorted input: collecting builds the tree in one pass.
        self.0 = merged.into_iter().collect();
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
            mem.term_count(Kind::Stream),
            mem.terms_with_prefix(Kind::Stream, "").map(|(n, _)| n),
            |name| !mem.postings(Kind::Stream, name).is_empty(),
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

    #[test]
    fn a_segment_s_counts_merge_into_the_table_in_place_or_by_rebuilding_it() {
        let names: Vec<String> = (0..100).map(|i| format!("s{i:03}")).collect();
        let table = |n: usize| {
            let mut t = super::StreamTable::default();
            for name in &names[..n] {
                t.add(name, 0, 1);
            }
            t
        };
        // Counts for every other stream of 100, a few of them new (in place), or for streams
        // most of which are new (rebuilt): the same result as one lookup per stream.
        for (have, step) in [(100, 2), (96, 2), (10, 1)] {
            let counts: Vec<(&str, u64)> = names
                .iter()
                .step_by(step)
                .map(|n| (n.as_str(), 3))
                .collect();
            let (mut merged, mut looked_up) = (table(have), table(have));
            merged.add_segment(7, counts.iter().copied(), true, true);
            looked_up.add_segment(7, counts.iter().copied(), true, false);
            let view = |t: &super::StreamTable| {
                t.iter()
                    .map(|(k, e)| (k.clone(), e.version, e.sealed.iter().collect::<Vec<_>>()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(view(&merged), view(&looked_up), "{have} {step}");
            assert_eq!(merged.get("s000").unwrap().version, 4);
            assert!(merged.contains_key("s098") && merged.len() >= have);
        }
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
