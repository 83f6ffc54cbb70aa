//! Retention and compaction: removing whole sealed segments, never rewriting one.
//!
//! Both write the *removal manifest* (`removed.json`) before they unlink anything. It records,
//! for every seq range whose segments are gone, how many events each stream had there (so stream
//! versions continue across the hole on every later open), the time of its last event, the log
//! start (below which retention removed everything), and the deletion state at the time (so
//! deletions whose `$lifecycle` events were removed are not forgotten). A crash after the manifest
//! is written and before the files are unlinked is finished by the next writable open, which
//! removes segments the manifest covers.
//!
//! Retention removes the oldest sealed segments beyond the policy (age of their newest event,
//! total bytes, total events). Compaction removes any sealed segment whose events are all dead
//! (truncated, deleted or tombstoned streams, and `$lifecycle` events, whose effect the manifest
//! keeps); a segment with a live event stays byte for byte.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::RetentionPolicy;
use crate::error::{Error, Result};
use crate::index::Kind;
use crate::manifest::{MANIFEST_FILE, RemovedRange};
use crate::record;
use crate::segment::segment_name;
use crate::segments::Segment;
use crate::segments::unlink_segment;
use crate::state::State;
use crate::state::dead_counts;
use crate::store::{Inner, Store};

/// One removed (or removable) segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RemovedSegment {
    /// Its file name.
    pub file: String,
    /// Seq of its first event.
    pub first_seq: u64,
    /// Seq of its last event.
    pub last_seq: u64,
    /// Events it held.
    pub events: u64,
    /// Bytes of the segment and its index sidecar.
    pub bytes: u64,
}

/// What a retention or compaction run removed (or, on a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RemovalReport {
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
    /// The segments, oldest first.
    pub segments: Vec<RemovedSegment>,
    /// Events removed.
    pub events: u64,
    /// Bytes reclaimed (segments and sidecars).
    pub bytes: u64,
    /// The log start after the run: the oldest seq retention kept.
    pub log_start: u64,
}

impl Store {
    /// The retention policy in force.
    pub fn retention_policy(&self) -> RetentionPolicy {
        self.inner.policy()
    }

    /// Replaces the store's retention policy and persists it (in `eventfile.json`). Refused
    /// with [`Error::RetentionRefused`] if it would remove every event or the active segment.
    pub fn set_retention_policy(&self, policy: RetentionPolicy) -> Result<()> {
        if self.inner.read_only {
            return Err(Error::ReadOnly);
        }
        policy.validate(self.inner.config.segment_bytes)?;
        let mut cur = self.inner.policy.lock().unwrap_or_else(|p| p.into_inner());
        let mut config = self.inner.config;
        config.retention = policy;
        crate::config::write_config(
            self.inner.storage.as_ref(),
            &self.inner.dir,
            &config,
            &self.inner.store_id,
        )?;
        *cur = policy;
        Ok(())
    }

    /// Removes the oldest sealed segments beyond the retention policy (see [`RetentionPolicy`]),
    /// or with `dry_run` only reports them. Never touches the active segment and never rewrites
    /// a segment; the removed seqs stay taken (the next event keeps its number) and reads below
    /// the new log start fail with [`Error::Expired`]. Refused with
    /// [`Error::RetentionRefused`] if it would remove every event.
    ///
    /// ```
    /// use eventfile::{ExpectedVersion, NewEvent, OpenOptions, RetentionPolicy};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = OpenOptions::new().segment_bytes(4096).open(dir.path())?;
    /// for i in 0..200 {
    ///     store.append("s", ExpectedVersion::Any, [NewEvent::new("T", serde_json::json!(i))])?;
    /// }
    /// store.set_retention_policy(RetentionPolicy::keep_all().max_events(50))?;
    /// let report = store.run_retention(false)?;
    /// assert!(report.events > 0 && report.log_start > 1);
    /// assert_eq!(store.stream_version("s"), 200);
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn run_retention(&self, dry_run: bool) -> Result<RemovalReport> {
        self.retention_with(self.inner.policy(), dry_run)
    }

    /// What [`Store::run_retention`] would remove under `policy` (not persisted), as a dry run.
    pub fn preview_retention(&self, policy: RetentionPolicy) -> Result<RemovalReport> {
        policy.validate(self.inner.config.segment_bytes)?;
        self.retention_with(policy, true)
    }

    fn retention_with(&self, policy: RetentionPolicy, dry_run: bool) -> Result<RemovalReport> {
        let inner = &self.inner;
        if inner.read_only && !dry_run {
            return Err(Error::ReadOnly);
        }
        let mut guard = inner.lock_state();
        let st = &mut *guard;
        if let Some(cause) = st.poisoned.clone().filter(|_| !dry_run) {
            return Err(Error::Poisoned { cause });
        }
        let now = (inner.clock)();
        if !dry_run && !inner.read_only && inner.segment_too_old(st, now) {
            inner.roll(st)?;
        }
        // The sidecar in hand may be of a segment removed here.
        if !dry_run && let Err(e) = inner.sealer.wait() {
            inner.poison(st, &e);
            return Err(e);
        }
        let sealed = sealed_count(st);
        let mut total_events = st.next_seq - st.removed.log_start - removed_events(st);
        let mut total_bytes: u64 =
            st.log.segments.iter().map(seg_bytes).sum::<u64>() + st.log.active_len;
        let mut n = 0;
        if !policy.keeps_all() {
            for seg in &st.log.segments[..sealed] {
                let (events, bytes) = (seg_events(seg), seg_bytes(seg));
                let last_time = seg_last_time(seg);
                let old = policy
                    .max_age
                    .is_some_and(|a| now.saturating_sub(last_time) > crate::time::micros_of(a));
                let big = policy
                    .max_bytes
                    .is_some_and(|m| total_bytes.saturating_sub(bytes) >= m);
                let many = policy
                    .max_events
                    .is_some_and(|m| total_events.saturating_sub(events) >= m);
                if !(old || big || many) {
                    break;
                }
                total_events -= events;
                total_bytes -= bytes;
                n += 1;
            }
        }
        if n > 0 && total_events == 0 {
            return Err(Error::RetentionRefused {
                reason: format!(
                    "the policy would remove every event in the store ({} segments); \
                     nothing was removed. Raise max_age, or append newer events first",
                    n
                ),
            });
        }
        let picked: Vec<usize> = (0..n).collect();
        let end = st.log.segments.get(n).map_or(st.next_seq, |s| s.base);
        let log_start = if n > 0 { end } else { st.removed.log_start };
        remove_segments(inner, st, &picked, dry_run, log_start)
    }

    /// Removes every sealed segment whose events are all dead (their streams truncated past
    /// them, deleted or tombstoned), with its index sidecar, and reports the bytes reclaimed.
    /// Segments holding any live event stay byte for byte. The `$lifecycle` events of a removed
    /// segment go with it; the deletions they made stay in force (the manifest records them).
    pub fn compact(&self, dry_run: bool) -> Result<RemovalReport> {
        let inner = &self.inner;
        if inner.read_only && !dry_run {
            return Err(Error::ReadOnly);
        }
        let mut guard = inner.lock_state();
        let st = &mut *guard;
        if let Some(cause) = st.poisoned.clone().filter(|_| !dry_run) {
            return Err(Error::Poisoned { cause });
        }
        // The sidecar being written may be of a segment removed here.
        if !dry_run && let Err(e) = inner.sealer.wait() {
            inner.poison(st, &e);
            return Err(e);
        }
        let picked: Vec<usize> = (0..sealed_count(st))
            .filter(|&i| all_dead(st, &st.log.segments[i]))
            .collect();
        let log_start = st.removed.log_start;
        remove_segments(inner, st, &picked, dry_run, log_start)
    }
}

/// Number of sealed segments (all but the active one, if there is one).
fn sealed_count(st: &State) -> usize {
    st.log.segments.len() - usize::from(st.log.active_file.is_some())
}

/// Events compaction removed above the log start.
fn removed_events(st: &State) -> u64 {
    let start = st.removed.log_start;
    st.removed
        .ranges
        .iter()
        .filter(|r| r.end > start)
        .map(|r| r.end - r.base.max(start))
        .sum()
}

fn seg_events(seg: &Segment) -> u64 {
    seg.sealed.as_ref().map_or(0, |s| s.summary.count)
}

fn seg_bytes(seg: &Segment) -> u64 {
    seg.len + seg.sealed.as_ref().map_or(0, |s| s.index_bytes())
}

fn seg_last_time(seg: &Segment) -> i64 {
    match &seg.sealed {
        Some(s) if s.summary.count > 0 => s.summary.last_time,
        _ => i64::MIN,
    }
}

/// Whether every event of a sealed segment is dead. The store's own `$lifecycle` events are
/// not: reads return them (`read_all`, subscriptions, `read_stream("$lifecycle")`, which a
/// projection follows to drop what a deletion removed), so a segment holding one is kept, and
/// compaction never opens a gap a reader would pass over unawares. (Retention removes them with
/// the oldest segments, moving the log start, which readers are told of.) Answered from the
/// stream table, without mapping the segment's index.
fn all_dead(st: &State, seg: &Segment) -> bool {
    let count = seg_events(seg);
    if seg.is_active() || count == 0 {
        return false;
    }
    let dead: u64 = dead_counts(st, seg.base, false)
        .iter()
        .map(|(_, n)| *n as u64)
        .sum();
    dead == count
}

/// Records the segments at `picked` (indexes into `st.log.segments`, sealed) as removed in the
/// manifest, then unlinks them and their sidecars, and drops them from the state.
fn remove_segments(
    inner: &Inner,
    st: &mut State,
    picked: &[usize],
    dry_run: bool,
    log_start: u64,
) -> Result<RemovalReport> {
    let mut report = RemovalReport {
        dry_run,
        segments: Vec::new(),
        events: 0,
        bytes: 0,
        log_start,
    };
    let mut removed = st.removed.clone();
    for &i in picked {
        let seg = &st.log.segments[i];
        // Not the next segment's base: a range compaction removed may lie between them.
        let end = seg.base + seg_events(seg);
        let mut streams = BTreeMap::new();
        if let Some(sealed) = &seg.sealed {
            let ix = sealed.index()?;
            for (name, p) in ix.terms_with_prefix(Kind::Stream, "")? {
                streams.insert(name, p.len() as u64);
            }
        }
        removed.add(RemovedRange {
            base: seg.base,
            end,
            last_time: seg_last_time(seg),
            streams,
        });
        let events = seg_events(seg);
        let bytes = seg_bytes(seg);
        report.events += events;
        report.bytes += bytes;
        report.segments.push(RemovedSegment {
            file: segment_name(seg.base),
            first_seq: seg.base,
            last_seq: end - 1,
            events,
            bytes,
        });
    }
    if dry_run || picked.is_empty() {
        return Ok(report);
    }
    removed.log_start = log_start;
    removed.deleted = st
        .deletions
        .map
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let storage = inner.storage.as_ref();
    let r = (|| {
        crate::files::write_atomic(
            storage,
            &inner.dir,
            MANIFEST_FILE,
            &record::encode_object(&removed),
        )?;
        for &i in picked {
            unlink_segment(storage, &inner.dir, st.log.segments[i].base)?;
        }
        storage
            .sync_dir(&inner.dir)
            .map_err(|e| Error::io("fsync directory", &inner.dir, e))
    })();
    if let Err(e) = r {
        // The manifest may or may not be on disk: the in-memory state can no longer be trusted
        // to match the files, so the handle stops writing until reopened.
        inner.poison(st, &e);
        return Err(e);
    }
    st.removed = removed;
    let mut i = 0;
    st.log.segments.retain(|_| {
        let keep = !picked.contains(&i);
        i += 1;
        keep
    });
    Ok(report)
}
