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

/// A stream's `(base, last version)` pairs, both ascending, kept as LEB128 varint differences
/// from the previous pair: about 4 bytes a pair instead of 16. With streams spread over the
/// whole log every stream is in every segment, so these lists are most of the stream table
/// (issue 16: 66 MB of 77 at 10,000,000 events in 100,000 streams and 41 segments).
#[derive(Debug, Clone, Default)]
pub(crate) struct SealedList {
    bytes: Vec<u8>,
    /// The last pair, `(0, 0)` while empty.
    last: (u64, u64),
}

impl SealedList {
    /// An empty list with room for `bytes` bytes of pairs (about 4 a pair).
    pub(crate) fn with_capacity(bytes: usize) -> SealedList {
        SealedList {
            bytes: Vec::with_capacity(bytes),
            last: (0, 0),
        }
    }

    /// Gives back the room no pair took.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
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
        self.bytes.is_empty()
    }

    /// The pairs, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut at = 0;
        let mut pair = (0u64, 0u64);
        let next = |at: &mut usize| {
            let mut v = 0u64;
            let mut shift = 0;
            while let Some(&b) = self.bytes.get(*at) {
                *at += 1;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    break;
                }
                shift += 7;
            }
            v
        };
        std::iter::from_fn(move || {
            if at >= self.bytes.len() {
                return None;
            }
            pair = (pair.0 + next(&mut at), pair.1 + next(&mut at));
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
        // Sorted counts that are a large part of the table: merge the two in one pass and
        // rebuild the table from the sorted result (a profile of opening 1,000,000 events in
        // 100,000 streams spent 40% in one tree lookup per term).
        let old = std::mem::take(&mut self.0);
        let mut merged: Vec<(String, StreamEntry)> = Vec::with_capacity(old.len());
        let mut old = old.into_iter().peekable();
        for (name, n) in counts {
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
    use super::SealedList;

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
