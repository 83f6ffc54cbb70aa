//! `eventfile stats`: one JSON object describing a store, on every backend: counts (events,
//! streams, types, tags), positions, the oldest and newest event times, deleted and tombstoned
//! streams, the bytes on disk by kind (file store and SQLite), and the handle's counters.
//!
//! Everything comes through the `EventStore` trait (the listings are paged, never loaded
//! whole), except the bytes on disk, which are the file store's directory or SQLite's files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use eventfile::{EventStore, LIFECYCLE_STREAM, Query, Read, TOMBSTONED, format_rfc3339};
use eventfile_connect::Location;
use serde_json::{Value, json};

use crate::Failure;

/// How many names a listing page asks for.
const PAGE: usize = 10_000;

pub fn stats(
    store: &dyn EventStore,
    location: &Location,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let head = store.head_seq()?;
    let log_start = store.log_start()?;
    let time_of = |read: Read| -> Result<Value, Failure> {
        let first = store.read_all(read.limit(1))?.next().transpose()?;
        Ok(first.map_or(Value::Null, |e| json!(format_rfc3339(e.time))))
    };
    let (deleted, tombstoned) = deletions(store)?;
    let m = store.metrics();
    let mut stats = json!({
        "backend": location.backend(),
        "events": store.count(&Query::new())?,
        "streams": count_streams(store)?,
        "types": count_terms(store, false)?,
        "tags": count_terms(store, true)?,
        "head": head,
        "log_start": log_start,
        "oldest_time": time_of(Read::forward())?,
        "newest_time": time_of(Read::backward())?,
        "deleted_streams": deleted,
        "tombstoned_streams": tombstoned,
        "metrics": {
            "appends": m.appends,
            "events": m.events,
            "bytes": m.bytes,
            "syncs": m.syncs,
            "sync_nanos": m.sync_nanos,
            "sync_max_nanos": m.sync_max_nanos,
        },
    });
    let (bytes, segments) = match location {
        Location::File(dir) => {
            let (bytes, segments) = file_store_bytes(dir)?;
            (bytes, Some(segments))
        }
        Location::Sqlite(path) => (sqlite_bytes(path), None),
        Location::Postgres(_) | Location::Memory => (Value::Null, None),
    };
    stats["bytes"] = bytes;
    if let Some(segments) = segments {
        stats["segments"] = segments;
    }
    writeln!(out, "{stats}")?;
    Ok(())
}

fn count_streams(store: &dyn EventStore) -> Result<u64, Failure> {
    let (mut n, mut after) = (0, None::<String>);
    loop {
        let page = store.streams("", after.as_deref(), PAGE)?;
        let Some(last) = page.last() else {
            return Ok(n);
        };
        n += page.len() as u64;
        after = Some(last.stream.clone());
    }
}

fn count_terms(store: &dyn EventStore, tags: bool) -> Result<u64, Failure> {
    crate::query::term_pages(store, tags).try_fold(0, |n, page| Ok(n + page?.len() as u64))
}

/// Streams soft-deleted with no event appended since, and streams tombstoned, from the
/// `$lifecycle` events (one per deletion).
fn deletions(store: &dyn EventStore) -> Result<(u64, u64), Failure> {
    // The newest deletion of each stream: (type, deleted before).
    let mut newest: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for e in store.read_stream(LIFECYCLE_STREAM, Read::forward())? {
        let e = e?;
        let data = e.data_value();
        let (Some(stream), Some(before)) = (data["stream"].as_str(), data["before"].as_u64())
        else {
            continue;
        };
        newest.insert(stream.to_owned(), (e.event_type, before));
    }
    let (mut deleted, mut tombstoned) = (0, 0);
    for (stream, (kind, before)) in newest {
        if kind == TOMBSTONED {
            tombstoned += 1;
        } else if kind == eventfile::DELETED && store.stream_version(&stream)? < before {
            // Every event hidden and none since: the stream is gone until someone appends.
            deleted += 1;
        }
    }
    Ok((deleted, tombstoned))
}

/// The file store's bytes by kind, and its segments sealed and active.
fn file_store_bytes(dir: &Path) -> Result<(Value, Value), Failure> {
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    let mut segments: Vec<String> = Vec::new();
    for entry in
        std::fs::read_dir(dir).map_err(|e| Failure::Other(format!("{}: {e}", dir.display())))?
    {
        let entry = entry.map_err(|e| Failure::Other(format!("{}: {e}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = if name.ends_with(".jsonl") {
            segments.push(name.clone());
            "segments"
        } else if name.ends_with(".idx") || name == "summary" {
            // The summary of the stream table is an index too: derived from the segments,
            // rebuilt from their sidecars when it is missing.
            "sidecars"
        } else if name == "snapshots" {
            "snapshots"
        } else if name == "checkpoints" {
            "checkpoints"
        } else {
            "other"
        };
        *kinds.entry(kind).or_default() += size_of(&entry.path());
    }
    let total: u64 = kinds.values().sum();
    let mut bytes = json!({
        "segments": 0, "sidecars": 0, "snapshots": 0, "checkpoints": 0, "other": 0,
    });
    for (kind, n) in kinds {
        bytes[kind] = json!(n);
    }
    bytes["total"] = json!(total);
    // The newest segment (the highest first seq) is the active one.
    let sealed = segments.len().saturating_sub(1);
    let segments = json!({ "sealed": sealed, "active": usize::from(!segments.is_empty()) });
    Ok((bytes, segments))
}

/// SQLite's file with its write-ahead log and shared-memory index.
fn sqlite_bytes(path: &Path) -> Value {
    let with = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        size_of(Path::new(&p))
    };
    let (db, wal, shm) = (size_of(path), with("-wal"), with("-shm"));
    json!({ "database": db, "wal": wal, "shm": shm, "total": db + wal + shm })
}

/// A file's length, or a directory's files' lengths summed (0 for what cannot be read).
fn size_of(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| size_of(&e.path()))
                    .sum()
            })
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}
