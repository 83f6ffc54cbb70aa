//! What a store holds, listed: event types, tags, streams with their versions, and the seq at a
//! given time. All answered from the stream table and the indexes, never from event bodies.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::index::{Kind, MemIndex};
use crate::recovery;
use crate::sealed::Sealed;
use crate::segment::{self, Lines, ScanEnd};
use crate::store::Store;
use crate::time::Micros;

/// A term and how many events carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermCount {
    /// The event type or tag.
    pub name: String,
    /// Events carrying it.
    pub count: u64,
}

/// A stream and its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream name.
    pub stream: String,
    /// Its current version (number of events).
    pub version: u64,
}

/// What [`Store::reindex`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReindexReport {
    /// Sealed segments whose sidecars were rebuilt.
    pub segments: usize,
    /// Events indexed.
    pub events: u64,
    /// Segment bytes read.
    pub bytes: u64,
}

impl Store {
    /// Event types in name order with their event counts: those after `after` (exclusive), at
    /// most `limit`.
    pub fn event_types(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        self.term_counts(Kind::Type, after, limit)
    }

    /// Tags (`key=value`) in order with their event counts: those after `after`, at most `limit`.
    pub fn tags(&self, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        self.term_counts(Kind::Tag, after, limit)
    }

    fn term_counts(&self, kind: Kind, after: Option<&str>, limit: usize) -> Result<Vec<TermCount>> {
        let (sealed, mut counts) = {
            let st = self.inner.lock_state();
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            add_mem(&mut counts, &st.active_index, kind);
            let sealed: Vec<Arc<Sealed>> = st
                .segments
                .iter()
                .filter_map(|s| s.sealed.clone())
                .collect();
            (sealed, counts)
        };
        for s in &sealed {
            let ix = s.index()?;
            for (t, p) in ix.terms_with_prefix(kind, "") {
                *counts.entry(t.to_owned()).or_default() += p.len() as u64;
            }
        }
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(counts
            .range::<str, _>((lower, Bound::Unbounded))
            .take(limit)
            .map(|(name, &count)| TermCount {
                name: name.clone(),
                count,
            })
            .collect())
    }

    /// Streams whose name starts with `prefix`, in name order, after `after` (exclusive), at
    /// most `limit`, with their current versions. Pages through millions of streams without
    /// sorting them: the stream table is kept in order.
    pub fn streams(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<StreamInfo> {
        let st = self.inner.lock_state();
        let lower = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        st.streams
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .take(limit)
            .map(|(name, e)| StreamInfo {
                stream: name.clone(),
                version: e.version,
            })
            .collect()
    }

    /// The seq of the first event at or after `time`, or `head_seq() + 1` if there is none:
    /// turns a time range into a seq range.
    pub fn seq_at(&self, time: Micros) -> Result<u64> {
        let st = self.inner.lock_state();
        for seg in &st.segments {
            let (count, first) = match &seg.sealed {
                // Times never decrease: a segment whose last event is older holds none.
                Some(s) if s.summary.count == 0 || s.summary.last_time < time => continue,
                Some(s) => {
                    let ix = s.index()?;
                    (ix.count as u32, ix.first_at_or_after(time))
                }
                None => {
                    let m = &st.active_index;
                    (
                        m.len() as u32,
                        m.times.partition_point(|&t| t < time) as u32,
                    )
                }
            };
            if first < count {
                return Ok(seg.base + u64::from(first));
            }
        }
        Ok(st.next_seq)
    }

    /// Rebuilds every sealed segment's index sidecar from the segment (checking every record),
    /// calling `progress(bytes_done, bytes_total)` as it goes. Appends and reads continue
    /// meanwhile. Sidecars are also rebuilt automatically on open when missing or damaged.
    pub fn reindex(&self, mut progress: impl FnMut(u64, u64)) -> Result<ReindexReport> {
        if self.inner.read_only {
            return Err(Error::ReadOnly);
        }
        let sealed: Vec<_> = {
            let st = self.inner.lock_state();
            st.segments
                .iter()
                .filter_map(|s| s.sealed.clone().map(|sealed| (s.clone(), sealed)))
                .collect()
        };
        let total: u64 = sealed.iter().map(|(s, _)| s.len).sum();
        let mut report = ReindexReport::default();
        for (seg, sealed) in sealed {
            let mut lines = Lines::new(sealed.data()?, seg.len, self.inner.config.max_line());
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
            if let ScanEnd::TornTail { offset, reason } | ScanEnd::Damaged { offset, reason } =
                result.end
            {
                return Err(Error::corrupt(&seg.path, offset, reason));
            }
            let ix = recovery::write_index(
                self.inner.storage.as_ref(),
                &self.inner.dir,
                seg.base,
                seg.len,
                &mem,
            )?;
            sealed.set_index(ix);
            report.segments += 1;
            report.events += mem.len() as u64;
            report.bytes += seg.len;
            progress(report.bytes, total);
        }
        Ok(report)
    }
}

fn add_mem(counts: &mut BTreeMap<String, u64>, m: &MemIndex, kind: Kind) {
    for (t, p) in m.terms_with_prefix(kind, "") {
        *counts.entry(t.to_owned()).or_default() += p.len() as u64;
    }
}
