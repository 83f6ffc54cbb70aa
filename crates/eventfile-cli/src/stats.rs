//! `eventfile stats`: one JSON object describing a store, on every backend: counts (events,
//! streams, types, tags), positions, the oldest and newest event times, deleted and tombstoned
//! streams, the bytes on disk by kind (file store and SQLite), and the handle's counters.
//!
//! One JSON object when piped or with `--json`; on a terminal, the same figures as a table.
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
use crate::output::Format;

/// How many names a listing page asks for.
const PAGE: usize = 10_000;

pub fn stats(
    store: &dyn EventStore,
    location: &Location,
    format: Format,
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
    match format {
        Format::Lines => writeln!(out, "{stats}")?,
        Format::Table { color } => table(&stats, color, out)?,
    }
    Ok(())
}

/// `stats` for a person at a terminal: one `name  value` row per figure, nested names joined by
/// dots (`bytes.segments`), in the object's order (by name), texts unquoted, `-` for none.
fn table(stats: &Value, color: bool, out: &mut impl Write) -> std::io::Result<()> {
    let mut rows = Vec::new();
    flatten("", stats, &mut rows);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let (on, off) = if color {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("", "")
    };
    writeln!(out, "{on}{:<width$}  VALUE{off}", "STAT")?;
    for (name, value) in rows {
        writeln!(out, "{name:<width$}  {value}")?;
    }
    Ok(())
}

fn flatten(prefix: &str, v: &Value, rows: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, x, rows);
            }
        }
        Value::String(s) => rows.push((prefix.to_owned(), s.clone())),
        Value::Null => rows.push((prefix.to_owned(), "-".to_owned())),
        other => rows.push((prefix.to_owned(), other.to_string())),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_a_terminal_the_object_is_a_table_of_dotted_names() {
        let stats = json!({
            "backend": "file",
            "events": 6,
            "bytes": { "segments": 900, "total": 1000 },
            "newest_time": null,
        });
        let mut out = Vec::new();
        table(&stats, false, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "STAT            VALUE\n\
             backend         file\n\
             bytes.segments  900\n\
             bytes.total     1000\n\
             events          6\n\
             newest_time     -\n"
        );
        let mut out = Vec::new();
        table(&stats, true, &mut out).unwrap();
        assert!(out.starts_with(b"\x1b[1mSTAT"), "the header in bold");
    }
}
