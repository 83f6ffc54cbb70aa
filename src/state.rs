//! The in-memory state the writer and the readers share, behind one mutex held only briefly:
//! owned parts, each with its own module: the segment set (`segments.rs`), the stream table
//! (here), the deletion state (`deletion.rs`) and the removal manifest (`manifest.rs`), plus
//! the head of the log. Modules take the part they need; few need the whole.

use std::path::Path;
use std::sync::Arc;

use crate::deletion::{DeadCounts, Deletion, DeletionState};
use crate::error::{Error, Result};
use crate::index::{IndexFile, Kind, MemIndex};
use crate::manifest::Removed;
use crate::sealed::{Held, MapCache, Sealed};
use crate::segments::{Segment, SegmentSet};
use crate::storage::Storage;
pub(crate) use crate::stream_table::{StreamEntry, StreamTable};

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

    /// Runs `f` on the stream table; where it finds the summary the table reads damaged, the
    /// table is built from the sidecars instead (as an open without a summary builds it) and
    /// `f` runs again. `f` must change nothing before it fails (the table's methods load what
    /// they change first).
    pub(crate) fn with_streams<T>(
        &mut self,
        mut f: impl FnMut(&mut StreamTable) -> Result<T>,
    ) -> Result<T> {
        match f(&mut self.streams) {
            Err(e) if crate::summary_read::is_summary_error(self.streams.summary(), &e) => {
                self.rebuild_streams()?;
                f(&mut self.streams)
            }
            r => r,
        }
    }

    /// Builds the stream table from the segments' sidecars, the removed ranges and the active
    /// segment's index, as an open without a summary does, and puts it in place of the one
    /// reading the summary. The counts are the same by construction: a segment's sidecar and
    /// the active index hold every event the table counted.
    pub(crate) fn rebuild_streams(&mut self) -> Result<()> {
        let mut t = StreamTable::default();
        let mut ranges = self.removed.ranges.iter().peekable();
        for seg in &self.log.segments {
            while let Some(r) = ranges.next_if(|r| r.base < seg.base) {
                let counts = r.streams.iter().map(|(n, &c)| (n.as_str(), c));
                t.add_segment(r.base, counts, true)?;
            }
            match &seg.sealed {
                Some(s) => {
                    let ix = s.index()?;
                    let (names, counts) = ix.term_counts(Kind::Stream)?;
                    let mut from = 0;
                    let counts = counts.iter().map(|&(end, n)| {
                        let name = names.get(from..end as usize).unwrap_or("");
                        from = end as usize;
                        (name, u64::from(n))
                    });
                    t.add_segment(seg.base, counts, true)?;
                }
                None => {
                    let counts: Vec<(String, u64)> = self
                        .log
                        .active_index
                        .terms_with_prefix(Kind::Stream, "")?
                        .map(|(n, p)| (n.into_owned(), p.len() as u64))
                        .collect();
                    let counts = counts.iter().map(|(n, c)| (n.as_str(), *c));
                    t.add_segment(seg.base, counts, false)?;
                }
            }
        }
        self.streams = t;
        Ok(())
    }

    /// The current version of `stream` (0 if it holds no events), loaded: this is asked before
    /// the stream is changed (an append, a deletion).
    pub(crate) fn version(&mut self, stream: &str) -> Result<u64> {
        self.with_streams(|t| t.load_version(stream))
    }

    /// The entry of `stream`, if it has events (for a read: nothing is loaded).
    pub(crate) fn stream(&mut self, stream: &str) -> Result<Option<StreamEntry>> {
        self.with_streams(|t| Ok(t.get(stream)?.map(std::borrow::Cow::into_owned)))
    }

    /// The first version of `stream` in a segment the store still has (its version + 1 when
    /// none is, 1 for a stream with no events): the versions below it were in segments that
    /// retention or compaction removed.
    pub(crate) fn first_kept_version(&mut self, stream: &str) -> Result<u64> {
        let Some(entry) = self.stream(stream)? else {
            return Ok(1);
        };
        let mut first = 1;
        for (base, last) in entry.sealed.iter() {
            if self.segment_index(base).is_some() {
                return Ok(first);
            }
            first = last + 1;
        }
        Ok(first)
    }

    /// The index in the log of the segment starting at `base`, if the store still has it.
    pub(crate) fn segment_index(&self, base: u64) -> Option<usize> {
        let i = self.log.segments.partition_point(|s| s.base < base);
        self.log
            .segments
            .get(i)
            .filter(|s| s.base == base)
            .map(|_| i)
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
        held: Held,
    ) -> Arc<Sealed> {
        let (sealed, mut mem) = self.log.seal_active(storage, dir, Ok((index, held)));
        self.streams.sealed(sealed.base);
        mem.clear();
        self.log.spare_index = Some(mem);
        sealed
    }

    /// Seals the active segment leaving its sidecar to the sealer (`sealer.rs`): returns the
    /// sealed segment and its index, for the sealer to encode and write. Fails, sealing
    /// nothing, only where the time of its last record is in a checkpoint that had to be
    /// rebuilt and the segment turned out damaged.
    pub(crate) fn seal_active_for_sealer(
        &mut self,
        storage: &Arc<dyn Storage>,
        dir: &Path,
    ) -> Result<(Arc<Sealed>, MemIndex)> {
        let mem = &self.log.active_index;
        let count = mem.len();
        let last_time = match count.checked_sub(1) {
            Some(last) => mem.time(last as u32)?.unwrap_or(0),
            None => 0,
        };
        let summary = crate::sealed::Summary {
            count: count as u64,
            last_time,
            index_bytes: 0,
        };
        let (sealed, mem) = self.log.seal_active(storage, dir, Err(summary));
        self.streams.sealed(sealed.base);
        Ok((sealed, mem))
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
    // Every deleted stream is loaded (`recovery::apply_lifecycle`, a deletion's version
    // check): no summary is read here.
    for (name, d) in st.deletions.map.iter() {
        let Some(entry) = st.streams.loaded(name) else {
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
