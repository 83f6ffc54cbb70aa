//! `snapshot`, `delete`, `truncate`, `retention` and `compact`: every one prints one JSON object.

use std::io::Write;

use eventfile::{ExpectedVersion, RetentionPolicy};
use serde_json::json;

use crate::Failure;
use crate::args::{JsonArg, RetentionArgs, SnapshotCommand};
use crate::target::Target;

fn line(out: &mut impl Write, value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string(value).map_err(|e| Failure::Other(e.to_string()))?;
    writeln!(out, "{text}")?;
    Ok(())
}

pub fn snapshot(
    target: &Target,
    cmd: SnapshotCommand,
    out: &mut impl Write,
) -> Result<(), Failure> {
    match cmd {
        SnapshotCommand::Save {
            stream,
            version,
            state,
        } => {
            // Checked text: serialising a RawValue writes it as it is, every digit kept.
            let state = match state {
                JsonArg::Given(text) => text,
                JsonArg::Stdin => crate::stdin_json("STATE", None)?,
            };
            let store = target.open()?;
            let s = store.as_dyn().save_snapshot(&stream, version, &state)?;
            line(
                out,
                &json!({"stream": s.stream, "version": s.version, "time": eventfile::format_rfc3339(s.time)}),
            )
        }
        SnapshotCommand::Show { stream } => {
            let store = target.open_existing()?;
            match store.as_dyn().load_snapshot(&stream)? {
                Some(s) => {
                    crate::write_json_line(out, &s.to_json())?;
                    Ok(())
                }
                None => Err(Failure::NotFound(format!(
                    "no snapshot of stream `{stream}`"
                ))),
            }
        }
    }
}

pub fn delete(
    target: &Target,
    stream: &str,
    hard: bool,
    expected: ExpectedVersion,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let store = target.open()?;
    let store = store.as_dyn();
    let r = if hard {
        store.tombstone_stream(stream, expected)?
    } else {
        store.delete_stream(stream, expected)?
    };
    line(out, &r)
}

pub fn truncate(
    target: &Target,
    stream: &str,
    before: u64,
    out: &mut impl Write,
) -> Result<(), Failure> {
    line(
        out,
        &target.open()?.as_dyn().truncate_stream(stream, before)?,
    )
}

fn policy_json(p: &RetentionPolicy) -> serde_json::Value {
    json!({
        "max_age_secs": p.max_age.map(|d| d.as_secs()),
        "max_bytes": p.max_bytes,
        "max_events": p.max_events,
        "segment_max_age_secs": p.segment_max_age.map(|d| d.as_secs()),
    })
}

pub fn retention(target: &Target, a: &RetentionArgs, out: &mut impl Write) -> Result<(), Failure> {
    let changes = a.keep_all
        || a.max_age.is_some()
        || a.max_bytes.is_some()
        || a.max_events.is_some()
        || a.segment_max_age.is_some();
    // A dry run persists nothing (not even the policy flags), so it needs no writer's lock and
    // works next to a running writer; it creates no store either.
    let store = if a.dry_run {
        target.existing_file_store("retention")?
    } else {
        target.file_store("retention")?
    };
    let mut policy = if a.keep_all {
        RetentionPolicy::keep_all()
    } else {
        store.retention_policy()
    };
    policy.max_age = a.max_age.or(policy.max_age);
    policy.segment_max_age = a.segment_max_age.or(policy.segment_max_age);
    policy.max_bytes = a.max_bytes.or(policy.max_bytes);
    policy.max_events = a.max_events.or(policy.max_events);
    let report = if a.dry_run {
        store.preview_retention(policy)?
    } else {
        if changes {
            store.set_retention_policy(policy)?;
        }
        store.run_retention(false)?
    };
    let mut v = serde_json::to_value(&report).map_err(|e| Failure::Other(e.to_string()))?;
    v["policy"] = policy_json(&policy);
    line(out, &v)
}

pub fn compact(target: &Target, dry_run: bool, out: &mut impl Write) -> Result<(), Failure> {
    let store = if dry_run {
        target.existing_file_store("compact")?
    } else {
        target.file_store("compact")?
    };
    line(out, &store.compact(dry_run)?)
}
