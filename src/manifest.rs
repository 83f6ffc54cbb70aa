//! The removal manifest (`removed.json`): which seq ranges retention and compaction removed,
//! what each stream had there, the log start, and the deletion state when it was written. See
//! `retention.rs` for the runs that write it and `docs/format.md` for the file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::deletion::Deletion;
use crate::error::{Error, Result};
use crate::record;
use crate::storage::Storage;

/// Name of the removal manifest.
pub(crate) const MANIFEST_FILE: &str = "removed.json";

/// A seq range whose segments were removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RemovedRange {
    /// First seq of the range.
    pub base: u64,
    /// First seq after it.
    pub end: u64,
    /// Time of its last event.
    pub last_time: i64,
    /// Events per stream in the range.
    pub streams: BTreeMap<String, u64>,
}

/// The removal manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Removed {
    eventfile: String,
    /// Seqs below this were removed by retention (1 if nothing was).
    pub log_start: u64,
    /// Removed ranges, ascending, not adjacent (adjacent ones are merged).
    pub ranges: Vec<RemovedRange>,
    /// The deletion state when the manifest was written.
    pub deleted: BTreeMap<String, Deletion>,
}

impl Default for Removed {
    fn default() -> Removed {
        Removed {
            eventfile: "removed".into(),
            log_start: 1,
            ranges: Vec::new(),
            deleted: BTreeMap::new(),
        }
    }
}

impl Removed {
    /// Whether a segment starting at `base` lies in a removed range.
    pub(crate) fn covers(&self, base: u64) -> bool {
        self.range_of(base).is_some()
    }

    /// The removed range holding `seq`, if any.
    pub(crate) fn range_of(&self, seq: u64) -> Option<&RemovedRange> {
        let i = self.ranges.partition_point(|r| r.end <= seq);
        self.ranges.get(i).filter(|r| r.base <= seq)
    }

    /// Adds a removed range, merging it with its neighbours.
    pub(crate) fn add(&mut self, r: RemovedRange) {
        let i = self.ranges.partition_point(|x| x.base < r.base);
        self.ranges.insert(i, r);
        let mut merged: Vec<RemovedRange> = Vec::with_capacity(self.ranges.len());
        for r in self.ranges.drain(..) {
            match merged.last_mut() {
                Some(last) if last.end == r.base => {
                    last.end = r.end;
                    last.last_time = last.last_time.max(r.last_time);
                    for (s, n) in r.streams {
                        *last.streams.entry(s).or_default() += n;
                    }
                }
                _ => merged.push(r),
            }
        }
        self.ranges = merged;
    }
}

/// Reads the removal manifest; the default (nothing removed) if there is none. Damage refuses
/// the open: unlike an index, the manifest cannot be rebuilt from the segments it replaced.
pub(crate) fn load_manifest(storage: &dyn Storage, dir: &Path) -> Result<Removed> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = match storage.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Removed::default()),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let m: Removed =
        record::decode_object(&bytes).map_err(|reason| Error::corrupt(&path, 0, reason))?;
    let bad = |reason: String| Err(Error::corrupt(&path, 0, reason));
    if m.eventfile != "removed" {
        return bad("not a removal manifest".into());
    }
    if !m.ranges.windows(2).all(|w| w[0].end < w[1].base) {
        return bad("removed ranges overlap or are out of order".into());
    }
    for r in &m.ranges {
        // Seqs are gapless: a range holds exactly one event per seq.
        let events = r
            .streams
            .values()
            .try_fold(0u64, |sum, &n| sum.checked_add(n));
        if r.base == 0 || r.base >= r.end || events != Some(r.end - r.base) {
            return bad(format!(
                "removed range {}..{} does not hold one event per seq",
                r.base, r.end
            ));
        }
    }
    // A deletion keeps versions from `before` on, the first of which is 1.
    if let Some((stream, _)) = m.deleted.iter().find(|(_, d)| d.before == 0) {
        return bad(format!(
            "the deletion of stream `{stream}` keeps events from version 0"
        ));
    }
    let start_ok = m.log_start == 1
        || m.log_start > 1
            && m.ranges
                .first()
                .is_some_and(|r| r.base == 1 && r.end >= m.log_start);
    if !start_ok {
        return bad(format!(
            "log start {} is not the end of a removed prefix",
            m.log_start
        ));
    }
    Ok(m)
}
