//! Bringing the in-memory state up to date with the files: on open (recovery) and on a
//! read-only handle's `refresh` (catch-up). One routine serves both.
//!
//! Sealed segments are taken from their summaries; a segment without a usable summary is scanned
//! in full and its summary rewritten. The newest segment is always scanned: a torn tail or a
//! partial batch is truncated (writer) or ignored (reader); damage in the middle refuses the open.

use std::path::Path;
use std::sync::Arc;

use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::record;
use crate::segment::{
    self, Lines, SPARSE_EVERY, ScanEnd, Scanned, Segment, SegmentData, parse_segment_name,
    segment_name,
};
use crate::storage::Storage;
use crate::store::{ActiveStream, State};
use crate::summary::{self, Summary, SummaryBuilder};

/// Brings `st` up to date with the segment files in `dir`.
pub(crate) fn catch_up(
    storage: &dyn Storage,
    dir: &Path,
    config: &StoreConfig,
    read_only: bool,
    st: &mut State,
) -> Result<()> {
    let names = storage
        .list_dir(dir)
        .map_err(|e| Error::io("list", dir, e))?;
    if !read_only {
        remove_temps(storage, dir, &names)?;
    }
    let mut bases: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    bases.sort_unstable();
    let known_last = st.segments.last().map(|s| s.base);
    bases.retain(|&b| known_last.is_none_or(|k| b > k));

    // A read-only handle that opened during a roll may know only sealed segments so far.
    if known_last.is_some() && st.active_file.is_some() {
        // The segment we knew as active: read what was added to it since.
        scan_active(config, read_only, st)?;
        if bases.is_empty() {
            return Ok(());
        }
        // A newer segment exists, so this one is sealed and complete.
        let active = st.active().clone();
        let file = st.active_file.clone().expect("active segment has a file");
        let len = file.len().map_err(|e| Error::io("stat", &active.path, e))?;
        if len != st.active_len {
            return Err(Error::corrupt(
                &active.path,
                st.active_len,
                "sealed segment ends in an incomplete batch",
            ));
        }
        let mapped = file.map().map_err(|e| Error::io("map", &active.path, e))?;
        let data = match mapped {
            Some(m) => SegmentData::Sealed(Arc::new(m)),
            None => SegmentData::File(file),
        };
        seal_active_in_memory(st, data);
    }

    if bases.is_empty() {
        if read_only {
            return Ok(());
        }
        return create_segment(storage, dir, st.next_seq, st);
    }
    let last = bases.len() - 1;
    for (i, &base) in bases.iter().enumerate() {
        if i < last {
            load_sealed(storage, dir, config, read_only, base, st)?;
        } else {
            open_active(storage, dir, config, read_only, base, st)?;
        }
    }
    if st.segments.is_empty() && !read_only {
        return create_segment(storage, dir, st.next_seq, st);
    }
    Ok(())
}

fn remove_temps(storage: &dyn Storage, dir: &Path, names: &[String]) -> Result<()> {
    let mut removed = false;
    for name in names.iter().filter(|n| n.ends_with(".tmp")) {
        let path = dir.join(name);
        storage
            .remove_file(&path)
            .map_err(|e| Error::io("remove", &path, e))?;
        removed = true;
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
    let entry = match st.streams.get_mut(rec.stream.as_str()) {
        Some(e) => e,
        None => st.streams.entry(rec.stream.clone()).or_default(),
    };
    if rec.version != entry.version + 1 {
        return Err(Error::corrupt(
            path,
            rec.offset,
            format!(
                "record of stream `{}` has version {} where {} was expected",
                rec.stream,
                rec.version,
                entry.version + 1
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
    entry.version = rec.version;
    st.next_seq += 1;
    st.last_time = rec.time;
    Ok(())
}

fn push_sparse(sparse: &mut Vec<(u64, u64)>, seq: u64, offset: u64) {
    if sparse
        .last()
        .is_none_or(|&(_, o)| offset >= o + SPARSE_EVERY)
    {
        sparse.push((seq, offset));
    }
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

fn load_sealed(
    storage: &dyn Storage,
    dir: &Path,
    config: &StoreConfig,
    read_only: bool,
    base: u64,
    st: &mut State,
) -> Result<()> {
    let path = dir.join(segment_name(base));
    let file = storage
        .open(&path, false)
        .map_err(|e| Error::io("open", &path, e))?;
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    let data = match file.map().map_err(|e| Error::io("map", &path, e))? {
        Some(m) => SegmentData::Sealed(Arc::new(m)),
        None => SegmentData::File(file),
    };
    let mut lines = Lines::new(data.clone(), len, config.max_line());
    let (header_base, data_start) = segment::read_header(&mut lines, &path)?;
    if header_base != base {
        return Err(Error::corrupt(
            &path,
            0,
            format!("header says base seq {header_base}, file name says {base}"),
        ));
    }
    check_base(st, base, &path)?;

    let summary = match summary::load(storage, dir, base, len).filter(|s| consistent(st, s)) {
        Some(s) => s,
        None => {
            let s = rebuild_summary(&mut lines, &path, base, data_start, len, st)?;
            if !read_only {
                summary::store(storage, dir, &s)?;
            }
            s
        }
    };
    for (name, last_version, _) in &summary.streams {
        let entry = st.streams.entry(name.clone()).or_default();
        entry.version = *last_version;
        entry.sealed.push((base, *last_version));
    }
    st.next_seq = summary.last_seq + 1;
    st.last_time = st.last_time.max(summary.last_time);
    st.segments.push(Segment {
        base,
        path,
        data,
        data_start,
        len,
        sparse: Arc::new(summary.sparse),
    });
    Ok(())
}

/// Whether a summary continues the stream table's numbering.
fn consistent(st: &State, s: &Summary) -> bool {
    s.streams
        .iter()
        .all(|(name, last, count)| st.version(name) + count == *last)
}

/// Scans a whole sealed segment (checking every frame) and builds its summary. Applies the
/// records' numbering to `st` as it goes, except the per-stream sealed lists.
fn rebuild_summary(
    lines: &mut Lines,
    path: &Path,
    base: u64,
    data_start: u64,
    len: u64,
    st: &mut State,
) -> Result<Summary> {
    let mut builder = SummaryBuilder::default();
    let mut sparse = Vec::new();
    let result = segment::scan(lines, path, data_start, |batch| {
        for rec in batch {
            apply(st, rec, path)?;
            builder.add(&rec.stream, rec.version);
            push_sparse(&mut sparse, rec.seq, rec.offset);
        }
        Ok(())
    })?;
    match result.end {
        ScanEnd::Clean => {}
        ScanEnd::TornTail { offset, reason } | ScanEnd::Damaged { offset, reason } => {
            return Err(Error::corrupt(
                path,
                offset,
                format!("sealed segment: {reason}"),
            ));
        }
    }
    // `apply` advanced the stream versions; rewind them so the caller applies the summary.
    let streams = builder.streams();
    for (name, last, count) in &streams {
        if let Some(e) = st.streams.get_mut(name.as_str()) {
            e.version = last - count;
        }
    }
    Ok(Summary {
        base_seq: base,
        segment_len: len,
        last_seq: st.next_seq - 1,
        last_time: st.last_time,
        streams,
        sparse,
    })
}

fn open_active(
    storage: &dyn Storage,
    dir: &Path,
    config: &StoreConfig,
    read_only: bool,
    base: u64,
    st: &mut State,
) -> Result<()> {
    let path = dir.join(segment_name(base));
    let file = storage
        .open(&path, !read_only)
        .map_err(|e| Error::io("open", &path, e))?;
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    let data = SegmentData::File(file.clone());
    let mut lines = Lines::new(data.clone(), len, config.max_line());
    let data_start = match segment::read_header(&mut lines, &path) {
        Ok((header_base, data_start)) => {
            if header_base != base {
                return Err(Error::corrupt(
                    &path,
                    0,
                    format!("header says base seq {header_base}, file name says {base}"),
                ));
            }
            data_start
        }
        Err(Error::Corrupt { .. }) if !has_valid_record(&mut lines, &path)? => {
            // A crash while the segment was being created: it holds no event.
            if read_only {
                return Ok(());
            }
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
    st.segments.push(Segment {
        base,
        path: path.clone(),
        data,
        data_start,
        len: 0,
        sparse: Arc::new(Vec::new()),
    });
    st.active_file = Some(file);
    st.active_len = data_start;
    scan_active(config, read_only, st)?;
    if !read_only {
        // A summary of the active segment is stale by definition (left by a crash mid-roll).
        let stale = summary::summary_path(dir, base);
        if storage.read(&stale).is_ok() {
            storage
                .remove_file(&stale)
                .map_err(|e| Error::io("remove", &stale, e))?;
            storage
                .sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
        }
    }
    Ok(())
}

fn has_valid_record(lines: &mut Lines, path: &Path) -> Result<bool> {
    let r = segment::scan(lines, path, 0, |_| Ok(()));
    Ok(match r {
        Ok(r) => r.valid_end > 0 || matches!(r.end, ScanEnd::Damaged { .. }),
        Err(_) => true,
    })
}

/// Scans the active segment from `st.active_len` to the file's end, applying complete batches.
fn scan_active(config: &StoreConfig, read_only: bool, st: &mut State) -> Result<()> {
    let file = st.active_file.clone().expect("active segment has a file");
    let path = st.active().path.clone();
    let len = file.len().map_err(|e| Error::io("stat", &path, e))?;
    if len == st.active_len {
        return Ok(());
    }
    let mut lines = Lines::new(SegmentData::File(file.clone()), len, config.max_line());
    let start = st.active_len;
    let result = segment::scan(&mut lines, &path, start, |batch| {
        for rec in batch {
            apply(st, rec, &path)?;
            let a = st
                .active_streams
                .entry(rec.stream.clone())
                .or_insert_with(|| ActiveStream {
                    first_version: rec.version,
                    offsets: Vec::new(),
                });
            a.offsets.push(rec.offset);
            push_sparse(&mut st.active_sparse, rec.seq, rec.offset);
        }
        Ok(())
    })?;
    st.active_len = result.valid_end;
    match result.end {
        ScanEnd::Clean => Ok(()),
        ScanEnd::Damaged { offset, reason } => Err(Error::corrupt(&path, offset, reason)),
        ScanEnd::TornTail { .. } if read_only => Ok(()),
        ScanEnd::TornTail { .. } => {
            file.set_len(result.valid_end)
                .map_err(|e| Error::io("truncate", &path, e))?;
            file.sync_data()
                .map_err(|e| Error::io("fdatasync", &path, e))
        }
    }
}

/// Turns the active segment into a sealed one in memory (the caller has made it durable).
pub(crate) fn seal_active_in_memory(st: &mut State, data: SegmentData) -> Summary {
    let active = st
        .segments
        .pop()
        .expect("an open store has an active segment");
    let mut streams: Vec<(String, u64, u64)> = Vec::with_capacity(st.active_streams.len());
    for (name, a) in st.active_streams.drain() {
        let count = a.offsets.len() as u64;
        let last = a.first_version + count - 1;
        if let Some(e) = st.streams.get_mut(name.as_str()) {
            e.sealed.push((active.base, last));
        }
        streams.push((name, last, count));
    }
    streams.sort_unstable();
    let sparse = std::mem::take(&mut st.active_sparse);
    let summary = Summary {
        base_seq: active.base,
        segment_len: st.active_len,
        last_seq: st.next_seq - 1,
        last_time: st.last_time,
        streams,
        sparse: sparse.clone(),
    };
    st.segments.push(Segment {
        data,
        len: st.active_len,
        sparse: Arc::new(sparse),
        ..active
    });
    st.active_file = None;
    st.active_len = 0;
    summary
}

/// Creates a new, empty active segment starting at `base`: header written, file fsynced,
/// directory fsynced.
pub(crate) fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    base: u64,
    st: &mut State,
) -> Result<()> {
    let path = dir.join(segment_name(base));
    let io = |op, e| Error::io(op, &path, e);
    let file = storage.create_new(&path).map_err(|e| io("create", e))?;
    let header = record::encode_header(base);
    file.write_all_at(&header, 0).map_err(|e| io("write", e))?;
    file.sync_data().map_err(|e| io("fdatasync", e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    st.segments.push(Segment {
        base,
        path,
        data: SegmentData::File(file.clone()),
        data_start: header.len() as u64,
        len: 0,
        sparse: Arc::new(Vec::new()),
    });
    st.active_file = Some(file);
    st.active_len = header.len() as u64;
    Ok(())
}
