//! Bringing the in-memory state up to date with the files: on open (recovery) and on a
//! read-only handle's `refresh` (catch-up). One routine serves both.
//!
//! Sealed segments are taken from their index sidecars; a segment without a usable sidecar is
//! scanned in full (every frame checked) and its sidecar rewritten. The newest segment continues
//! from its checkpoint sidecar (written on clean close) when that still fits the file, and the
//! rest is scanned: a torn tail or partial batch is truncated (writer) or ignored (reader); damage
//! in the middle refuses the open.

use std::path::Path;
use std::sync::Arc;

use crate::active_checkpoint::{ActiveCheckpoint, Deferred};
use crate::config::StoreConfig;
use crate::deletion::{LIFECYCLE_STREAM, apply_event};
use crate::error::{Error, Result};
use crate::files::remove_temps;
use crate::index::{CheckpointIndex, INDEX_EXT, IndexFile, Kind, MemIndex};
use crate::query::IndexRef;
use crate::record;
use crate::sealed::{Held, Sealed};
use crate::sealed_index::SealedIndex;
use crate::segment::{
    self, LineEnd, Lines, ScanEnd, Scanned, SegmentData, parse_segment_name, segment_name,
};
use crate::segments::Segment;
use crate::state::State;
use crate::storage::Storage;

/// Brings `st` up to date with the files in `dir`: segments, the removal manifest, and the
/// deletions recorded in the log.
///
/// A read-only handle races the writer's process: between listing the directory and opening a
/// file, retention or compaction may remove it (after writing the removal manifest that covers
/// it). Such a catch-up starts over from a fresh listing, which the manifest then explains. A
/// failure that happens again on files that did not change is reported; so is a file that
/// vanished without the manifest covering it.
pub(crate) fn catch_up(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    config: &StoreConfig,
    read_only: bool,
    limit: u64,
    st: &mut State,
) -> Result<()> {
    catch_up_with(storage, dir, config, read_only, limit, true, st)
}

/// [`catch_up`], with or without the summary (`verify` compares the two).
pub(crate) fn catch_up_with(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    config: &StoreConfig,
    read_only: bool,
    limit: u64,
    mut summary: bool,
    st: &mut State,
) -> Result<()> {
    /// Starts over at most this often: each one needs the writer to remove files meanwhile.
    const ATTEMPTS: usize = 64;
    let mut attempt = 0;
    // A start over builds a new state, put in place of `st` only once it succeeded: a
    // read-only handle whose refresh fails keeps the state it had, never a half-built one.
    let mut fresh: Option<State> = None;
    loop {
        let before = if read_only {
            files_seen(storage.as_ref(), dir)
        } else {
            None
        };
        let target = match &mut fresh {
            Some(f) => f,
            None => &mut *st,
        };
        // Only an open (a state with no segment yet) takes the summary.
        let had_summary = target.from_summary;
        let r = catch_up_segments(storage, dir, config, read_only, limit, summary, target)
            .and_then(|()| apply_lifecycle(target, config.max_line()));
        let took_summary = target.from_summary && !had_summary;
        let Err(err) = r else {
            if let Some(f) = fresh {
                *st = f;
            }
            return Ok(());
        };
        // The summary is a cache: an open that failed with it is made again without, and so is
        // a read-only handle's catch-up that found a block of it damaged (the open read only
        // its head).
        if took_summary
            || (summary
                && target.from_summary
                && crate::summary_read::is_summary_error(target.streams.summary(), &err))
        {
            // A writer's open removes a summary with a damaged block, so that the next open
            // does not take it and start over again (a read-only one writes nothing: each
            // starts over until a writer opens or a clean close rewrites it). It is a cache:
            // if the removal fails, or is lost to a crash, an open starts over as this one did.
            // A block it could not read (an I/O error, perhaps passing) is not damage: the
            // file stays, and the next open tries it again.
            if !read_only && crate::summary_read::is_summary_damage(target.streams.summary(), &err)
            {
                let _ = storage.remove_file(&dir.join(crate::summary_read::SUMMARY_FILE));
            }
            summary = false;
            fresh = Some(State::new(Arc::clone(&st.log.maps)));
            continue;
        }
        attempt += 1;
        if !read_only
            || attempt >= ATTEMPTS
            || !removed_meanwhile(storage.as_ref(), dir, &err, before)
        {
            return Err(err);
        }
        fresh = Some(State::new(Arc::clone(&st.log.maps)));
    }
}

/// What a read-only catch-up saw: the directory's names and the removal manifest's bytes.
type FilesSeen = Option<(Vec<String>, Option<Vec<u8>>)>;

fn files_seen(storage: &dyn Storage, dir: &Path) -> FilesSeen {
    let mut names = storage.list_dir(dir).ok()?;
    names.sort_unstable();
    let manifest = storage.read(&dir.join(crate::manifest::MANIFEST_FILE)).ok();
    Some((names, manifest))
}

/// Whether a read-only catch-up that failed with `err` lost a race with the writer's removal
/// of segments, and should start over.
fn removed_meanwhile(storage: &dyn Storage, dir: &Path, err: &Error, before: FilesSeen) -> bool {
    if let Error::Io { path, source, .. } = err
        && source.kind() == std::io::ErrorKind::NotFound
    {
        // A file that vanished: only removal by retention or compaction explains it.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let base = parse_segment_name(name).or_else(|| {
            let stem = name.strip_suffix(&format!(".{INDEX_EXT}"))?;
            parse_segment_name(&format!("{stem}.{}", segment::SEGMENT_EXT))
        });
        return base.is_some_and(|b| {
            crate::manifest::load_manifest(storage, dir).is_ok_and(|m| m.covers(b))
        });
    }
    // Anything else is a race only if the files changed while it ran (a listing taken before a
    // removal meets a manifest read after it); the same failure on unchanged files is real.
    before.is_some() && before != files_seen(storage, dir)
}

fn catch_up_segments(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    config: &StoreConfig,
    read_only: bool,
    limit: u64,
    summary: bool,
    st: &mut State,
) -> Result<()> {
    let names = storage
        .list_dir(dir)
        .map_err(|e| Error::io("list", dir, e))?;
    let storage_arc = storage;
    let storage = storage_arc.as_ref();
    if !read_only {
        remove_temps(storage, dir, &names)?;
    }
    let mut bases: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    bases.sort_unstable();
    let known_last = st.log.segments.last().map(|s| s.base);
    bases.retain(|&b| known_last.is_none_or(|k| b > k));
    // The manifest is read on open, and by a reader on every refresh (the writer's process may
    // have removed segments since).
    if known_last.is_none() || read_only {
        load_removed(storage, dir, st)?;
    }
    // A reader that knows segments removed since it last looked starts over, as a fresh open:
    // its reads would otherwise return events below the log start, and its position may lie
    // inside a removed range whose counts cover events it has seen.
    let next = st.next_seq;
    if known_last.is_some()
        && (st.log.segments.iter().any(|s| st.removed.covers(s.base))
            || st
                .removed
                .ranges
                .iter()
                .any(|r| r.base < next && next < r.end))
    {
        // Built aside and put in place only once complete: a failure leaves the state the
        // reader had.
        let mut fresh = State::new(Arc::clone(&st.log.maps));
        catch_up_segments(
            storage_arc,
            dir,
            config,
            read_only,
            limit,
            summary,
            &mut fresh,
        )?;
        *st = fresh;
        return Ok(());
    }
    // Segments the manifest covers are leftovers of a retention or compaction run that was cut
    // short after writing it: finish the job (a reader just skips them). Only if the manifest
    // fits the files: a run never removes the newest segment, and a removed segment's seqs lie
    // wholly inside its range.
    check_manifest_fits(dir, &bases, st)?;
    bases.retain(|&b| !st.removed.covers(b));
    if !read_only {
        remove_leftovers(storage, dir, &names, st)?;
    }

    // A read-only handle that opened during a roll may know only sealed segments so far.
    if known_last.is_some() && st.log.active_file.is_some() {
        // The segment we knew as active: read what was added to it since; all of it if a newer
        // segment exists (the writer synced it before starting the next).
        let upto = if bases.is_empty() { limit } else { u64::MAX };
        scan_active(storage, dir, config, read_only, upto, st)?;
        if bases.is_empty() {
            return Ok(());
        }
        // A newer segment exists, so this one is sealed and complete.
        let active = st.active().clone();
        let file = st
            .log
            .active_file
            .clone()
            .expect("active segment has a file");
        let len = file.len().map_err(|e| Error::io("stat", &active.path, e))?;
        if len != st.log.active_len {
            return Err(Error::corrupt(
                &active.path,
                st.log.active_len,
                "sealed segment ends in an incomplete batch",
            ));
        }
        let (index, pinned) = match crate::sidecar::read_index(storage, dir, active.base, Some(len))
        {
            Some(ix) => (ix, Held::File),
            None => (
                crate::sidecar::in_memory_index(&st.log.active_index, active.base, len)?,
                Held::Pinned,
            ),
        };
        st.seal_active_in_memory(storage_arc, dir, index, pinned);
    }

    if bases.is_empty() {
        // Removal never takes the newest segment: ranges with no segment after them mean the
        // segments that followed are missing, and numbering afresh would reuse removed seqs.
        if known_last.is_none()
            && let Some(r) = st.removed.ranges.last()
        {
            return Err(Error::corrupt(
                dir.join(crate::manifest::MANIFEST_FILE),
                0,
                format!(
                    "removed range {}..{} has no segment after it: the store's newer segments are missing",
                    r.base, r.end
                ),
            ));
        }
        if read_only {
            return Ok(());
        }
        return st.log.create(storage, dir, st.next_seq);
    }
    // A fresh open takes the first sealed segments from the summary a clean close wrote, if it
    // describes them: their sidecars are then read when first used, not here.
    let from = if summary && known_last.is_none() {
        crate::summary::apply(storage_arc, dir, &bases, config.max_line(), st)
    } else {
        0
    };
    let last = bases.len() - 1;
    for (i, &base) in bases.iter().enumerate().skip(from) {
        apply_ranges(st, base)?;
        if i < last {
            load_sealed(storage_arc, dir, config, read_only, base, st)?;
        } else {
            open_active(storage, dir, config, read_only, limit, base, st)?;
        }
    }
    if st.log.segments.is_empty() && !read_only {
        return st.log.create(storage, dir, st.next_seq);
    }
    if let Some(r) = st.removed.ranges.iter().find(|r| r.end > st.next_seq) {
        return Err(Error::corrupt(
            dir.join(crate::manifest::MANIFEST_FILE),
            0,
            format!(
                "removed range {}..{} lies beyond the log, which ends at seq {}",
                r.base,
                r.end,
                st.next_seq - 1
            ),
        ));
    }
    Ok(())
}

/// Refuses a removal manifest that would remove what no run removes.
fn check_manifest_fits(dir: &Path, bases: &[u64], st: &State) -> Result<()> {
    let manifest = || dir.join(crate::manifest::MANIFEST_FILE);
    if bases.last().is_some_and(|&b| st.removed.covers(b)) {
        return Err(Error::corrupt(
            manifest(),
            0,
            "the removal manifest covers the newest segment",
        ));
    }
    for w in bases.windows(2) {
        if let Some(r) = st.removed.range_of(w[0])
            && w[1] > r.end
        {
            return Err(Error::corrupt(
                manifest(),
                0,
                format!(
                    "removed range {}..{} ends inside segment {}",
                    r.base, r.end, w[0]
                ),
            ));
        }
    }
    Ok(())
}

/// Reads the removal manifest into the state, with the deletions it records.
fn load_removed(storage: &dyn Storage, dir: &Path, st: &mut State) -> Result<()> {
    st.removed = crate::manifest::load_manifest(storage, dir)?;
    let deleted = Arc::make_mut(&mut st.deletions.map);
    for (name, d) in &st.removed.deleted {
        let merged = deleted.get(name).map_or(*d, |o| o.merge(*d));
        deleted.insert(name.clone(), merged);
    }
    Ok(())
}

/// Unlinks segments and sidecars that the removal manifest covers.
fn remove_leftovers(storage: &dyn Storage, dir: &Path, names: &[String], st: &State) -> Result<()> {
    let mut removed = false;
    for name in names {
        let base = parse_segment_name(name).or_else(|| {
            let stem = name.strip_suffix(&format!(".{INDEX_EXT}"))?;
            parse_segment_name(&format!("{stem}.{}", segment::SEGMENT_EXT))
        });
        if let Some(base) = base.filter(|&b| st.removed.covers(b)) {
            crate::segments::unlink_segment(storage, dir, base)?;
            removed = true;
        }
    }
    if removed {
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(())
}

/// Checks one record against the state's numbering and applies it.
fn apply(st: &mut State, rec: &Scanned, path: &Path) -> Result<()> {
    if rec.seq != st.next_seq {
        return Err(Error::corrupt(
            path,
            rec.offset,
            format!(
                "record has seq {} where {} was expected",
                rec.seq, st.next_seq
            ),
        ));
    }
    let stream = rec.terms.stream.as_str();
    // One lookup per record: this runs for every record a scan applies.
    if let Err(expected) = st.streams.advance(stream, rec.version)? {
        return Err(Error::corrupt(
            path,
            rec.offset,
            format!(
                "record of stream `{stream}` has version {} where {expected} was expected",
                rec.version,
            ),
        ));
    }
    if rec.time < st.last_time {
        return Err(Error::corrupt(
            path,
            rec.offset,
            format!(
                "record time {} is before the previous record's {}",
                crate::time::format_rfc3339(rec.time),
                crate::time::format_rfc3339(st.last_time)
            ),
        ));
    }
    st.next_seq += 1;
    st.last_time = rec.time;
    Ok(())
}

/// Opens segment `base`: its path, file and length.
fn open_segment(
    storage: &dyn Storage,
    dir: &Path,
    base: u64,
    write: bool,
) -> Result<(
    std::path::PathBuf,
    Arc<dyn crate::storage::StorageFile>,
    u64,
)> {
    let path = dir.join(segment_name(base));
    let file = storage
        .open(&path, write)
        .map_err(|e| Error::io("open", &path, e))?;
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    Ok((path, file, len))
}

/// Reads a segment's header, checks it names the same base as the file, and returns the
/// offset of the first record.
fn checked_header(lines: &mut Lines, path: &Path, base: u64) -> Result<u64> {
    let (header_base, data_start) = segment::read_header(lines, path)?;
    if header_base != base {
        return Err(Error::corrupt(
            path,
            0,
            format!("header says base seq {header_base}, file name says {base}"),
        ));
    }
    Ok(data_start)
}

fn check_base(st: &State, base: u64, path: &Path) -> Result<()> {
    if base != st.next_seq {
        return Err(Error::corrupt(
            path,
            0,
            format!(
                "segment starts at seq {base} but the log before it ends at seq {}",
                st.next_seq - 1
            ),
        ));
    }
    Ok(())
}

/// Whether a sidecar continues the state's numbering (stream versions come from its counts).
fn index_fits(st: &State, ix: &IndexFile) -> bool {
    ix.count == 0 || ix.time(0).is_some_and(|t| t >= st.last_time)
}

/// Applies a sidecar's records to the stream table; `sealed` also records the segment as
/// holding each of its streams.
fn apply_index(st: &mut State, ix: &IndexFile, base: u64, sealed: bool) -> Result<()> {
    let counts = ix
        .terms_with_prefix(Kind::Stream, "")
        .map(|(name, postings)| (name, postings.len() as u64));
    st.streams.add_segment(base, counts, sealed)?;
    st.next_seq = base + ix.count;
    if let Some(t) = ix
        .count
        .checked_sub(1)
        .and_then(|last| ix.time(last as u32))
    {
        st.last_time = st.last_time.max(t);
    }
    Ok(())
}

fn load_sealed(
    storage_arc: &Arc<dyn Storage>,
    dir: &Path,
    config: &StoreConfig,
    read_only: bool,
    base: u64,
    st: &mut State,
) -> Result<()> {
    let storage = storage_arc.as_ref();
    let (path, file, len) = open_segment(storage, dir, base, false)?;
    // Checked and (if its sidecar is unusable) scanned with bounded reads, not through the map:
    // a scan through a map would make the whole file resident, however large a hostile one is.
    let mut lines = Lines::new(SegmentData::File(Arc::clone(&file)), len, config.max_line());
    let data_start = checked_header(&mut lines, &path, base)?;
    check_base(st, base, &path)?;

    let (index, pinned) = match crate::sidecar::read_index(storage, dir, base, Some(len))
        .filter(|ix| index_fits(st, ix))
    {
        Some(ix) => {
            apply_index(st, &ix, base, true)?;
            (ix, Held::File)
        }
        None => {
            let mem = rebuild_index(&mut lines, &path, data_start, read_only, st)?;
            st.streams.sealed(base);
            if read_only {
                (
                    crate::sidecar::in_memory_index(&mem, base, len)?,
                    Held::Pinned,
                )
            } else {
                (
                    crate::sidecar::write_index(storage, dir, base, len, &mem)?,
                    Held::File,
                )
            }
        }
    };
    let sealed = Sealed::new(
        storage_arc,
        &st.log.maps,
        dir,
        base,
        path.clone(),
        len,
        index,
        pinned,
    );
    st.log.segments.push(Segment {
        base,
        path,
        data_start,
        len,
        sealed: Some(sealed),
    });
    Ok(())
}

/// Scans a whole sealed segment (checking every frame), applying its numbering to `st`, and
/// builds its index.
fn rebuild_index(
    lines: &mut Lines,
    path: &Path,
    data_start: u64,
    read_only: bool,
    st: &mut State,
) -> Result<MemIndex> {
    load_streams_first(lines, path, data_start, u64::MAX, read_only, st)?;
    let mut mem = MemIndex::default();
    let result = segment::scan(lines, path, data_start, |batch| {
        for rec in batch {
            apply(st, rec, path)?;
            mem.add(rec.offset, rec.time, &rec.terms.borrowed());
        }
        Ok(())
    })?;
    match result.end {
        ScanEnd::Clean => Ok(mem),
        ScanEnd::TornTail { offset, reason } | ScanEnd::Damaged { offset, reason, .. } => Err(
            Error::corrupt(path, offset, format!("sealed segment: {reason}")),
        ),
    }
}

fn open_active(
    storage: &dyn Storage,
    dir: &Path,
    config: &StoreConfig,
    read_only: bool,
    limit: u64,
    base: u64,
    st: &mut State,
) -> Result<()> {
    let (path, file, len) = open_segment(storage, dir, base, !read_only)?;
    let mut lines = Lines::new(SegmentData::File(file.clone()), len, config.max_line());
    // The header and, usually, the first record (whose time the open reads) in one small read:
    // the header check would otherwise read a whole chunk (256 KiB). A line longer than this
    // is read on as before, and a failed read is reported by the check that needs the bytes.
    let _ = lines.load(0, len.min(HEAD_READ));
    let data_start = match checked_header(&mut lines, &path, base) {
        Ok(data_start) => data_start,
        Err(Error::Corrupt { .. }) if !has_valid_record(&mut lines, &path)? => {
            // A crash while the segment was being created: it holds no event.
            if read_only {
                return Ok(());
            }
            // Only where the next segment belongs: a stray file past the head is refused before
            // anything is written into it.
            check_base(st, base, &path)?;
            let header = record::encode_header(base);
            let io = |op, e| Error::io(op, &path, e);
            file.set_len(0).map_err(|e| io("truncate", e))?;
            file.write_all_at(&header, 0).map_err(|e| io("write", e))?;
            file.sync_data().map_err(|e| io("fdatasync", e))?;
            header.len() as u64
        }
        Err(e) => return Err(e),
    };
    check_base(st, base, &path)?;
    st.log.segments.push(Segment {
        base,
        path: path.clone(),
        data_start,
        len: 0,
        sealed: None,
    });
    st.log.active_file = Some(Arc::clone(&file));
    st.log.active_len = data_start;
    st.log.active_index = MemIndex::default();

    // Continue from the checkpoint written at the last clean close, if it still fits the file.
    // What the open needs of it is read by `pread` (`SealedIndex`): read through its map, the
    // kernel would leave the page-cache folios around each page touched resident.
    let idx = crate::segment::index_path(dir, base);
    let ckpt_file = storage.open(&idx, false).ok();
    let cp = ckpt_file
        .clone()
        .and_then(|f| SealedIndex::open_unsummed(f, &idx, base, None).ok());
    // The checkpoint the summary was written after: its header is read now, its bytes are
    // checked by the first use of the index (`active_checkpoint.rs`). Any other is checked in
    // full now.
    let vouched = st
        .streams
        .summary()
        .filter(|s| s.active_base == base && s.checkpoint_crc != 0)
        .filter(|s| {
            cp.as_ref()
                .is_some_and(|cp| cp.count == s.active_count && cp.segment_len == s.active_len)
        })
        .map(|s| s.checkpoint_crc);
    let checked = match vouched {
        Some(_) => None,
        None => crate::sidecar::read_index(storage, dir, base, None),
    };
    if let Some(cp) = cp
        && let Some(ckpt_file) = ckpt_file
        && (vouched.is_some()
            || checked
                .as_ref()
                .is_some_and(|ix| ix.count == cp.count && ix.segment_len == cp.segment_len))
        && cp.segment_len <= len
        // The times of the first and last records the checkpoint covers, from the segment.
        && let Some(first_time) = first_record_time(&mut lines, data_start, cp.count)
        && first_time.is_none_or(|t| t >= st.last_time)
        && let Some(last_time) = checkpoint_ends_batch(&mut lines, &cp, base, data_start)
    {
        // The summary a clean close wrote after this very checkpoint counts its events per
        // stream already: its stream terms are not read (100,000 names at 10,000,000 events).
        let counted = st.streams.summary().is_some_and(|s| {
            s.active_base == base && s.active_count == cp.count && s.active_len == cp.segment_len
        });
        if counted {
            st.streams.count_active();
        } else {
            let (names, counts) = cp
                .term_counts(Kind::Stream)
                .map_err(|e| Error::corrupt(&idx, 0, format!("checkpoint: {e}")))?;
            let mut from = 0;
            let counts = counts.iter().map(|&(end, n)| {
                let name = names.get(from..end as usize).unwrap_or("");
                from = end as usize;
                (name, u64::from(n))
            });
            st.streams.add_segment(base, counts, false)?;
        }
        st.next_seq = base + cp.count;
        if let Some(t) = last_time {
            st.last_time = st.last_time.max(t);
        }
        let checkpoint: Arc<dyn CheckpointIndex> = match (checked, vouched) {
            (Some(ix), _) => ix,
            (None, crc) => Arc::new(ActiveCheckpoint::deferred(
                Deferred {
                    file: ckpt_file,
                    path: idx,
                    crc: crc.unwrap_or(0),
                    cache: Arc::clone(st.log.maps.blocks()),
                    segment: file,
                    segment_path: path,
                    data_start,
                    max_line: config.max_line(),
                },
                base,
                cp.count,
                cp.segment_len,
                first_time,
            )),
        };
        st.log.active_index = MemIndex::from_checkpoint(checkpoint);
        st.log.active_len = cp.segment_len;
    } else if !read_only {
        forget_checkpoint(storage, dir, &idx)?;
    }
    scan_active(storage, dir, config, read_only, limit, st)
}

/// Removes the active segment's checkpoint that the writer's open did not continue from, before
/// the scan may cut the segment and anything is appended.
///
/// A checkpoint vouches for the segment's first bytes, up to its covered length, and an open
/// checks only its first and last records against them. One that no longer fits may cover bytes
/// this open cuts (a batch damaged on the medium since the close): the appends that follow fill
/// the same bytes with other events, and, were it left, an open after a crash could find its
/// first and last records fitting again (same seqs, same sizes) and take its postings of the
/// events that were cut. A writer's clean close writes a new one.
fn forget_checkpoint(storage: &dyn Storage, dir: &Path, idx: &Path) -> Result<()> {
    match storage.remove_file(idx) {
        Ok(()) => storage
            .sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", idx, e)),
    }
}

/// Bytes of the active segment the open reads first: its header and first record.
const HEAD_READ: u64 = 4096;

/// Whether the checkpoint's last record is where it says, holds the seq it should, and closes a
/// batch at exactly the covered length: then that record's time (`None` for an empty
/// checkpoint), read from the segment.
fn checkpoint_ends_batch(
    lines: &mut Lines,
    ix: &SealedIndex,
    base: u64,
    data_start: u64,
) -> Option<Option<i64>> {
    let Some(last) = ix.count.checked_sub(1) else {
        return (ix.segment_len == data_start).then_some(None);
    };
    let pos = u64::from(ix.position(last as u32).ok()??);
    let LineEnd::Line(n) = lines.line_end(pos).ok()? else {
        return None;
    };
    if pos + n as u64 + 1 != ix.segment_len {
        return None;
    }
    let line = lines.window(pos, n).ok()?;
    let m = record::decode_record(line).ok()?;
    ((m.rec.seq, m.rec.more) == (base + last, false)).then_some(Some(m.time))
}

/// The time of the segment's first record, if a checkpoint of `count` records says it holds
/// one (`Some(None)` if it says none); `None` if that record cannot be read.
fn first_record_time(lines: &mut Lines, data_start: u64, count: u64) -> Option<Option<i64>> {
    if count == 0 {
        return Some(None);
    }
    let LineEnd::Line(n) = lines.line_end(data_start).ok()? else {
        return None;
    };
    let line = lines.window(data_start, n).ok()?;
    Some(Some(record::decode_record(line).ok()?.time))
}

/// Whether a segment whose header is damaged holds any valid record (if not, it is a segment
/// whose creation a crash cut short).
pub(crate) fn has_valid_record(lines: &mut Lines, path: &Path) -> Result<bool> {
    let r = segment::scan(lines, path, 0, |_| Ok(()));
    Ok(match r {
        Ok(r) => r.valid_end > 0 || matches!(r.end, ScanEnd::Damaged { .. }),
        Err(_) => true,
    })
}

/// Scans the active segment from `st.log.active_len` to the file's end, applying complete batches.
/// Applies the records added to the active segment since the last scan, up to seq `limit`.
fn scan_active(
    storage: &dyn Storage,
    dir: &Path,
    config: &StoreConfig,
    read_only: bool,
    limit: u64,
    st: &mut State,
) -> Result<()> {
    let file = st
        .log
        .active_file
        .clone()
        .expect("active segment has a file");
    let path = st.active().path.clone();
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    // What the scan must reach: a reader's limit, or for a writer the head it published.
    let published = if read_only {
        limit
    } else {
        crate::head::read_head(storage, dir)
            .ok()
            .flatten()
            .unwrap_or(u64::MAX)
    };
    if len == st.log.active_len {
        return match short_of_published(read_only, published, st, &path, &ScanEnd::Clean) {
            Some(err) => Err(err),
            None => Ok(()),
        };
    }
    let mut lines = Lines::new(SegmentData::File(file.clone()), len, config.max_line());
    let start = st.log.active_len;
    load_streams_first(&mut lines, &path, start, limit, read_only, st)?;
    let result = segment::scan_upto(&mut lines, &path, start, limit, |batch| {
        for rec in batch {
            apply(st, rec, &path)?;
            st.log
                .active_index
                .add(rec.offset, rec.time, &rec.terms.borrowed());
        }
        Ok(())
    })?;
    st.log.active_len = result.valid_end;
    if let Some(err) = short_of_published(read_only, published, st, &path, &result.end) {
        return Err(err);
    }
    let end = match result.end {
        ScanEnd::Damaged {
            offset,
            next,
            reason,
        } if unsynced_pages_lost(&mut lines, st.next_seq, offset, next, || {
            crate::head::read_head(storage, dir).ok().flatten()
        })
        .map_err(|e| Error::io("read", &path, e))? =>
        {
            ScanEnd::TornTail {
                offset,
                reason: format!("{reason}, after a sector never written"),
            }
        }
        end => end,
    };
    match end {
        ScanEnd::Clean => Ok(()),
        ScanEnd::Damaged { offset, reason, .. } => Err(Error::corrupt(&path, offset, reason)),
        ScanEnd::TornTail { .. } if read_only => Ok(()),
        ScanEnd::TornTail { .. } => {
            file.set_len(result.valid_end)
                .map_err(|e| Error::io("truncate", &path, e))?;
            file.sync_data()
                .map_err(|e| Error::io("fdatasync", &path, e))
        }
    }
}

/// Whether the bad bytes from `offset` to the valid frame at `next`, in the newest segment past
/// its last complete batch (whose next seq is `first_cut`), are writes a power loss cut short
/// rather than damage: they start with a run of zeros ending on a sector boundary
/// ([`segment::lost_pages`]), and no event from there on was published (`published` reads
/// `HEAD` as it is now, lazily: only damage pays for it; a reader's own limit may be older,
/// and lower).
///
/// The bytes written since the last `fdatasync` may reach the disk in any order, page by page
/// (the writeback and the device choose), so a power loss can keep a later page of a batch and
/// not an earlier one, which reads as it was before the batch: zeros. That batch, and every one
/// after it, was never acknowledged: its sync had not returned. Recovery cuts them as it cuts a
/// torn tail. The store was refused as damaged before, with no acknowledged event lost but no
/// way to open it short of cutting the file by hand.
///
/// Damage to acknowledged events is told apart by its bytes: a run of zeros on sector bounds
/// is never written (no record holds a zero byte), the damage a medium or a stray write does to
/// written bytes leaves other bytes, and a complete line damaged before the zeros is refused.
/// `HEAD` adds a check that can miss (it is not synced, so after a power loss it may be older)
/// but never refuses wrongly: it names only synced events.
pub(crate) fn unsynced_pages_lost(
    lines: &mut Lines,
    first_cut: u64,
    offset: u64,
    next: u64,
    published: impl FnOnce() -> Option<u64>,
) -> std::io::Result<bool> {
    if !segment::lost_pages(lines, offset, next)? {
        return Ok(false);
    }
    Ok(published().is_none_or(|head| head < first_cut))
}

/// Loads from the summary every stream of the records from `start` (up to seq `limit`) that a
/// read-only handle is about to apply, before it applies any.
///
/// A refresh applies the writer's records into the live state, and a record's stream is looked
/// up in the summary, one block per look-up; a damaged block found there fails the refresh, which
/// starts over without the summary (`catch_up_with`) and keeps the old state if that fails too.
/// Found in the middle of the records, the records before it would already be applied (seq,
/// versions, index) with the scan position behind them: the handle half-changed, every later
/// refresh failing with "record has seq X where Y was expected". Loading first makes the
/// failure come before any change (a loaded stream holds what the summary says: loading is
/// no change). The other ways out were worse: applying per batch and advancing the position
/// after each still leaves a failed refresh with part of the writer's batches; a refresh on a
/// copy of the state copies the loaded streams and the active index on every refresh. This
/// costs a second pass over the new records, and only while the table reads a summary, by a
/// read-only handle (a writer's catch-up is its open: one that fails is discarded whole).
fn load_streams_first(
    lines: &mut Lines,
    path: &Path,
    start: u64,
    limit: u64,
    read_only: bool,
    st: &mut State,
) -> Result<()> {
    if !read_only || st.streams.summary().is_none() {
        return Ok(());
    }
    // Applied last (`apply_lifecycle`), after the records: loaded now, as they are.
    st.streams.load(LIFECYCLE_STREAM)?;
    // What ends the scan (damage, a torn tail) is the applying pass's to report.
    segment::scan_upto(lines, path, start, limit, |batch| {
        batch
            .iter()
            .try_for_each(|rec| st.streams.load(rec.terms.stream.as_str()))
    })?;
    Ok(())
}

/// A scan of the active segment that ended (as `end` says) short of the head the writer
/// published, `published` (`u64::MAX`: none known): every event up to it is durable and in this
/// segment (a newer one would have been listed, and a reader's limit is then unbounded), so
/// published events are damaged or gone.
///
/// A reader stopping quietly at the events before them would leave followers waiting for ever
/// for events the writer acknowledged. A writer cutting them as a torn tail would lose them
/// without a word, write `HEAD` lower (erasing what `verify` shows), and give their seqs to new
/// events, which readers that applied the old ones before the damage would never see. Both
/// refuse; a writer's error says how to accept the loss when no copy of the events is left.
fn short_of_published(
    read_only: bool,
    published: u64,
    st: &State,
    path: &Path,
    end: &ScanEnd,
) -> Option<Error> {
    let head = st.next_seq - 1;
    if published == u64::MAX || head >= published {
        return None;
    }
    let found = match end {
        ScanEnd::Clean => "the segment ends there",
        ScanEnd::TornTail { reason, .. } | ScanEnd::Damaged { reason, .. } => reason.as_str(),
    };
    let advice = if read_only {
        ""
    } else {
        "; the acknowledged events past it are damaged or gone: restore the store from a copy, \
         or remove its HEAD file to let the next open cut them"
    };
    Some(Error::corrupt(
        path,
        st.log.active_len,
        format!(
            "the writer published events up to seq {published}, but the records end at seq \
             {head}: {found}{advice}"
        ),
    ))
}

/// Applies the removed ranges that continue the state's numbering, up to `upto` (exclusive).
pub(crate) fn apply_ranges(st: &mut State, upto: u64) -> Result<()> {
    loop {
        let next = st.next_seq;
        let Some(r) = st
            .removed
            .ranges
            .iter()
            .find(|r| r.base == next && r.end <= upto)
            .cloned()
        else {
            return Ok(());
        };
        let counts = r.streams.iter().map(|(name, &n)| (name.as_str(), n));
        st.streams.add_segment(r.base, counts, true)?;
        st.next_seq = r.end;
        st.last_time = st.last_time.max(r.last_time);
    }
}

/// Applies the `$lifecycle` events the state has not seen yet (after open or catch-up).
pub(crate) fn apply_lifecycle(st: &mut State, max_line: usize) -> Result<()> {
    let seen = st.deletions.seen;
    let from = st
        .log
        .segments
        .partition_point(|s| s.base <= seen)
        .saturating_sub(1);
    let mut seqs = Vec::new();
    // The `$lifecycle` stream and (below) every deleted stream are loaded: deletions and
    // retention look them up without reading the summary (`state::dead_counts`).
    st.streams.load(LIFECYCLE_STREAM)?;
    // The sealed segments holding `$lifecycle` events are in the stream table: only their
    // sidecars are read (an open of a store that never deleted a stream maps none).
    let lifecycle = st.streams.loaded(LIFECYCLE_STREAM);
    let holds = |base: u64| lifecycle.is_some_and(|e| e.sealed.iter().any(|p| p.0 == base));
    // And the active segment holds some only if the stream's version is past its last sealed
    // one: otherwise its index is not asked (after a clean open that index is the checkpoint,
    // whose first use reads its block sums and sample).
    let in_active =
        lifecycle.is_some_and(|e| e.version > e.sealed.iter().last().map_or(0, |p| p.1));
    for seg in &st.log.segments[from..] {
        let ix;
        let r = match &seg.sealed {
            Some(_) if !holds(seg.base) => continue,
            None if !in_active => continue,
            Some(s) => {
                ix = s.index()?;
                IndexRef::Sealed(&ix)
            }
            None => IndexRef::Mem(&st.log.active_index),
        };
        seqs.extend(
            r.postings(Kind::Stream, LIFECYCLE_STREAM)?
                .into_iter()
                .map(|o| seg.base + u64::from(o))
                .filter(|&s| s > seen),
        );
    }
    for seq in seqs {
        if let Some(found) = crate::lookup::record_at(st, seq, max_line)? {
            apply_event(Arc::make_mut(&mut st.deletions.map), &found.event);
        }
    }
    st.deletions.seen = st.next_seq - 1;
    let deleted: Vec<String> = st.deletions.map.keys().cloned().collect();
    for name in &deleted {
        st.streams.load(name)?;
    }
    Ok(())
}
