//! What a store holds, listed: event types, tags, streams with their versions, and the seq at a
//! given time. All answered from the stream table, the indexes and the deletion state, never
//! from event bodies. Listings agree with queries: deleted events are not counted, and a term or
//! stream left with no live event is not listed.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::api::{StreamInfo, TermCount};
use crate::deletion::{DeadCounts, dead_ordinals, is_live};
use crate::error::{Error, Result};
use crate::index::{Kind, MemIndex};
use crate::query::IndexRef;
use crate::sealed::Sealed;
use crate::segment::{self, Lines, ScanEnd};
use crate::state::dead_counts;
use crate::store::Store;
use crate::time::Micros;

/// What [`Store::reindex`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReindexReport {
    /// Sealed segments whose sidecars were rebuilt.
    pub segments: usize,
    /// Events indexed.
    pub events: u64,
    /// Segment bytes read.
    pub bytes: u64,
}

impl Store {
    /// Event types in name order with their live event counts: those after `after` (exclusive),
    /// at most `limit`. A count is what [`Store::count`] gives for a query on that type: events
    /// that truncation, deletion or a tombstone removed are not counted, and a type none of whose
    /// events is live is not listed (so `limit` counts only listed types). The types of the
    /// store's own `$lifecycle` events are listed like any other.
    pub fn event_types(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        self.term_counts(Kind::Type, after, limit)
    }

    /// Tags (`key=value`) in order with their live event counts: those after `after`, at most
    /// `limit`. Deleted events are not counted, and a tag none of whose events is live is not
    /// listed, as for [`Store::event_types`].
    pub fn tags(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        self.term_counts(Kind::Tag, after, limit)
    }

    /// Per term of `kind` after `after`: the length of its posting list in each segment, less
    /// the dead ordinals in it, so that the counts are those of [`Store::count`]. A segment
    /// without dead events costs what it always did, the lengths (plus, in the active segment,
    /// a binary search per term for the visible head). One with dead events first gathers its
    /// dead ordinals, as a read of it does (the first postings of each deleted stream there,
    /// sorted), then walks each posting list up to the last dead ordinal, looking each ordinal
    /// up in the dead ones left (a binary search). Event bodies are never read.
    fn term_counts(&self, kind: Kind, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let wanted = |t: &str| after.is_none_or(|a| t > a);
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut add = |t: &str, n: u64| {
            if n > 0 {
                *counts.entry(t.to_owned()).or_default() += n;
            }
        };
        let sealed = {
            let st = self.inner.lock_state();
            let mut sealed: Vec<(Arc<Sealed>, DeadCounts)> = Vec::new();
            for seg in &st.log.segments {
                match &seg.sealed {
                    Some(s) => sealed.push((Arc::clone(s), dead_counts(&st, seg.base, false))),
                    None => {
                        let m = &st.log.active_index;
                        let dead =
                            dead_ordinals(&IndexRef::Mem(m), &dead_counts(&st, seg.base, true))?;
                        // The active index also holds events written but not yet durable (or
                        // whose fsync failed): like reads, count only the visible ones.
                        let visible = (self.head_seq() + 1).saturating_sub(seg.base);
                        for (t, p) in m.terms_with_prefix(kind, "")?.filter(|(t, _)| wanted(t)) {
                            let p = &p[..p.partition_point(|&o| u64::from(o) < visible)];
                            add(&t, live(p.iter().copied(), p.len(), &dead));
                        }
                    }
                }
            }
            sealed
        };
        // Only the page is kept: after each segment, the first `limit` terms so far. A term
        // past them can never be among the first `limit` of the whole store (segments only add
        // terms), and the counts of those kept are whole. A sealed segment's terms are walked
        // in order from `after` only up to the greatest term kept, once `limit` are: a page of
        // a store of 500,000 tags in 72 segments reads about a page's worth of each sidecar,
        // not all of it, and keeps a page of counts, not every term after `after`.
        let trim = |counts: &mut BTreeMap<String, u64>| {
            if let Some(cut) = counts.keys().nth(limit).cloned() {
                counts.split_off(&cut);
            }
        };
        trim(&mut counts);
        for (s, dead) in &sealed {
            let ix = s.index()?;
            let dead = dead_ordinals(&IndexRef::Sealed(&ix), dead)?;
            for t in ix.terms_after(kind, after)? {
                let t = t?;
                if counts.len() >= limit && counts.keys().next_back().is_some_and(|l| t.term > *l) {
                    break;
                }
                let n = if dead.is_empty() {
                    t.n
                } else {
                    let p = ix.postings_of_term(&t)?;
                    live(p.iter().copied(), p.len(), &dead)
                };
                if n > 0 {
                    *counts.entry(t.term).or_default() += n;
                }
            }
            trim(&mut counts);
        }
        Ok(counts
            .into_iter()
            .take(limit)
            .map(|(name, count)| TermCount { name, count })
            .collect())
    }

    /// Streams whose name starts with `prefix` and that hold a live event, in name order, after
    /// `after` (exclusive), at most `limit`, with their current versions. Pages through millions
    /// of streams without sorting them: the stream table is kept in order.
    ///
    /// A stream whose every event is deleted is not listed, as a query finds none of its
    /// events: a tombstoned stream, a soft-deleted one, one truncated after its last version.
    /// A truncated stream with events left is listed with its current version, which counts
    /// the deleted events too. [`Store::stream_version`] still answers for a stream that is
    /// not listed (deletion keeps the numbering), and a soft-deleted stream is listed again,
    /// numbered on, once it is appended to. Skipping the deleted streams costs one look-up in
    /// the deletion state per stream passed, and `limit` counts only listed streams.
    ///
    /// Where a summary block the listing passes is found damaged and the stream table cannot
    /// be rebuilt from the sidecars either (a sealed segment is damaged too), this returns an
    /// empty page. [`crate::EventStore::streams`] returns the error instead: use it where a
    /// store may be damaged.
    pub fn streams(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<StreamInfo> {
        self.try_streams(prefix, after, limit).unwrap_or_default()
    }

    /// [`Store::streams`], with the error where a damaged summary block and a failed rebuild
    /// from the sidecars leave the page unknown.
    pub(crate) fn try_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        let mut guard = self.inner.lock_state();
        let st = &mut *guard;
        let deleted = Arc::clone(&st.deletions.map);
        let lower = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        st.with_streams(|t| {
            let mut page = Vec::new();
            for item in t.range(lower) {
                let (name, e) = item?;
                if !name.starts_with(prefix) || page.len() >= limit {
                    break;
                }
                // Deletion removes a prefix of a stream: it holds a live event if its last is
                // live.
                if is_live(&deleted, &name, e.version) {
                    page.push(StreamInfo {
                        stream: name.into_owned(),
                        version: e.version,
                    });
                }
            }
            Ok(page)
        })
    }

    /// The seq of the first event at or after `time`, or `head_seq() + 1` if there is none:
    /// turns a time range into a seq range.
    pub fn seq_at(&self, time: Micros) -> Result<u64> {
        let st = self.inner.lock_state();
        // Events written but not yet durable (a batch waiting for its sync) are not there yet
        // for readers: the answer never passes the visible head.
        let next = self.inner.commit.visible() + 1;
        for seg in &st.log.segments {
            let (count, first) = match &seg.sealed {
                // Times never decrease: a segment whose last event is older holds none.
                Some(s) if s.summary.count == 0 || s.summary.last_time < time => continue,
                Some(s) => {
                    let ix = s.index()?;
                    (ix.count as u32, ix.first_at_or_after(time)?)
                }
                None => {
                    let m = &st.log.active_index;
                    (m.len() as u32, m.first_at_or_after(time)?)
                }
            };
            if first < count {
                return Ok((seg.base + u64::from(first)).min(next));
            }
        }
        Ok(st.next_seq.min(next))
    }

    /// Rebuilds every sealed segment's index sidecar from the segment (checking every record),
    /// calling `progress(bytes_done, bytes_total)` as it goes. Appends and reads continue
    /// meanwhile. Sidecars are also rebuilt automatically on open when missing or damaged.
    pub fn reindex(&self, mut progress: impl FnMut(u64, u64)) -> Result<ReindexReport> {
        if self.inner.read_only {
            return Err(Error::ReadOnly);
        }
        let sealed: Vec<_> = {
            let mut st = self.inner.lock_state();
            // The sealer's sidecar and this rewrite of it must not cross.
            if let Err(e) = self.inner.sealer.wait() {
                self.inner.poison(&mut st, &e);
                return Err(e);
            }
            st.log
                .segments
                .iter()
                .filter_map(|s| s.sealed.clone().map(|sealed| (s.clone(), sealed)))
                .collect()
        };
        let total: u64 = sealed.iter().map(|(s, _)| s.len).sum();
        let mut report = ReindexReport::default();
        for (seg, sealed) in sealed {
            // A scan: around the block cache.
            let lines = Lines::new(sealed.data()?, seg.len, self.inner.config.max_line());
            let mut lines = lines.through_cache(false);
            let mut mem = MemIndex::default();
            let result = segment::scan(&mut lines, &seg.path, seg.data_start, |batch| {
                for rec in batch {
                    if rec.seq != seg.base + mem.len() as u64 {
                        return Err(Error::corrupt(&seg.path, rec.offset, "seq out of order"));
                    }
                    mem.add(rec.offset, rec.time, &rec.terms.borrowed());
                }
                Ok(())
            })?;
            if let ScanEnd::TornTail { offset, reason } | ScanEnd::Damaged { offset, reason, .. } =
                result.end
            {
                return Err(Error::corrupt(&seg.path, offset, reason));
            }
            let _rebuilding = sealed.lock_rebuild();
            let written = crate::sidecar::write_index(
                self.inner.storage.as_ref(),
                &self.inner.dir,
                seg.base,
                seg.len,
                &mem,
            )?;
            sealed.reload_index(&written);
            report.segments += 1;
            report.events += mem.len() as u64;
            report.bytes += seg.len;
            progress(report.bytes, total);
        }
        Ok(report)
    }
}

/// How many of a posting list's `len` ordinals (`postings`, ascending) are not in `dead`
/// (ascending): each ordinal is looked up in what remains of `dead` (a binary search), and the
/// walk stops past the last dead ordinal.
fn live(postings: impl Iterator<Item = u32>, len: usize, dead: &[u32]) -> u64 {
    let mut rest = dead;
    let mut hits = 0;
    for o in postings {
        rest = &rest[rest.partition_point(|&d| d < o)..];
        match rest.split_first() {
            None => break,
            Some((&d, tail)) if d == o => {
                hits += 1;
                rest = tail;
            }
            Some(_) => {}
        }
    }
    (len - hits) as u64
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::storage::FaultyStorage;
    use crate::{ExpectedVersion, NewEvent, OpenOptions, Query};

    use super::TermCount;

    #[test]
    fn an_event_that_never_became_durable_is_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new();
        let mut opts = OpenOptions::new();
        opts.storage = Arc::new(Arc::clone(&storage));
        let store = opts.open(dir.path()).unwrap();
        let event = |t: &str| NewEvent::new(t, json!({})).with_tag("shop=1");
        store
            .append("a", ExpectedVersion::Any, [event("Kept")])
            .unwrap();
        storage.fail_next_sync();
        // Written and indexed, but its fsync failed: it never becomes visible.
        assert!(
            store
                .append("a", ExpectedVersion::Any, [event("Lost")])
                .is_err()
        );
        assert_eq!(store.count(&Query::new().event_type("Lost")).unwrap(), 0);
        let one = |name: &str| TermCount {
            name: name.into(),
            count: 1,
        };
        assert_eq!(store.event_types(None, 10).unwrap(), [one("Kept")]);
        assert_eq!(store.tags(None, 10).unwrap(), [one("shop=1")]);
    }
}
