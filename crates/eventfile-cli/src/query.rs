//! `query`, `get`, `streams`, `types`, `tags` and `reindex`.

use std::io::Write;

use eventfile::{EventStore, Query, Store};
use eventfile_connect::AnyStore;
use serde_json::json;

use crate::Failure;
use crate::args::{FilterArgs, QueryArgs};
use crate::output::{Format, Table};

/// The query the shared filter flags name (of `query` and `tail`), not yet validated.
pub fn filters(f: &FilterArgs) -> Query {
    let mut q = Query::new()
        .streams(f.streams.clone())
        .types(f.types.clone());
    for t in &f.tags {
        q = q.tag(t.clone());
    }
    let set = |q: Query, v: &Option<String>, f: fn(Query, String) -> Query| match v {
        Some(v) => f(q, v.clone()),
        None => q,
    };
    q = set(q, &f.prefix, Query::prefix);
    q = set(q, &f.correlation, Query::correlation);
    q = set(q, &f.causation, Query::causation);
    q = set(q, &f.actor, Query::actor);
    if let Some(t) = f.since {
        q = q.since(t);
    }
    if let Some(t) = f.until {
        q = q.until(t);
    }
    q
}

fn build(a: &QueryArgs) -> Query {
    let mut q = filters(&a.filters);
    if let Some(s) = a.from_seq {
        q = q.from_seq(s);
    }
    if let Some(s) = a.to_seq {
        q = q.to_seq(s);
    }
    if a.backward {
        q = q.backward();
    }
    if let Some(n) = a.limit {
        q = q.limit(n);
    }
    if let Some(c) = &a.after {
        q = q.after(c.clone());
    }
    q
}

/// The query the flags name, checked before any store is opened: a malformed combination (a seq
/// range whose ends are swapped, a time range likewise) is a usage error.
pub fn checked_query(a: &QueryArgs) -> Result<Query, Failure> {
    checked(build(a))
}

/// `q`, if it is well formed; a usage error naming what is wrong with it if not.
pub fn checked(q: Query) -> Result<Query, Failure> {
    q.validate().map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(q)
}

pub fn query(
    store: &AnyStore,
    q: &Query,
    a: &QueryArgs,
    out: &mut impl Write,
) -> Result<(), Failure> {
    if a.count {
        writeln!(out, "{}", json!({ "count": store.as_dyn().count(q)? }))?;
        return Ok(());
    }
    // Only the file store makes cursors; other backends page with --from-seq/--to-seq, and a
    // full page says where the next one starts.
    let AnyStore::File(store) = store else {
        let (mut n, mut last) = (0usize, None);
        for event in store.as_dyn().query(q)? {
            let event = event?;
            crate::write_event(out, &event)?;
            (n, last) = (n + 1, Some(event.seq));
        }
        if let (Some(limit), Some(last)) = (a.limit, last)
            && n == limit
        {
            out.flush()?;
            let next = if a.backward {
                json!({ "next_to_seq": last.saturating_sub(1) })
            } else {
                json!({ "next_from_seq": last.saturating_add(1) })
            };
            eprintln!("{next}");
        }
        return Ok(());
    };
    let mut events = store.query(q)?;
    for event in events.by_ref() {
        crate::write_event(out, &event?)?;
    }
    if a.limit.is_some()
        && let Some(c) = events.cursor()
    {
        out.flush()?;
        eprintln!("{}", json!({ "next": c.to_string() }));
    }
    Ok(())
}

pub fn get(store: &dyn EventStore, id: &str, out: &mut impl Write) -> Result<(), Failure> {
    match store.get_event(id)? {
        Some(e) => Ok(crate::write_event(out, &e)?),
        None => Err(Failure::NotFound(format!("no event with id `{id}`"))),
    }
}

/// `eventfile streams`: a page of at most 10,000 streams at a time, as JSON lines or a table.
pub fn streams(
    store: &dyn EventStore,
    prefix: &str,
    after: Option<String>,
    limit: Option<usize>,
    format: Format,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut after = after;
    let mut left = limit.unwrap_or(usize::MAX);
    let mut table = match format {
        Format::Table { color } => Some(Table::new(["STREAM", "VERSION"], color)),
        Format::Lines => None,
    };
    while left > 0 {
        let page = store.streams(prefix, after.as_deref(), left.min(10_000))?;
        if page.is_empty() {
            break;
        }
        if let Some(t) = &mut table {
            let rows: Vec<(&str, u64)> = page
                .iter()
                .map(|s| (s.stream.as_str(), s.version))
                .collect();
            t.page(&rows, out)?;
        } else {
            for s in &page {
                let line = json!({ "stream": s.stream, "version": s.version }).to_string();
                crate::write_json_line(out, &line)?;
            }
        }
        left -= page.len();
        after = page.last().map(|s| s.stream.clone());
    }
    Ok(())
}

/// `eventfile types` and `eventfile tags`: each with its count, as JSON lines or a table.
pub fn terms(
    store: &dyn EventStore,
    tags: bool,
    format: Format,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut table = match format {
        Format::Table { color } => Some(Table::new(
            [if tags { "TAG" } else { "TYPE" }, "EVENTS"],
            color,
        )),
        Format::Lines => None,
    };
    for page in term_pages(store, tags) {
        let page = page?;
        if let Some(t) = &mut table {
            let rows: Vec<(&str, u64)> = page.iter().map(|t| (t.name.as_str(), t.count)).collect();
            t.page(&rows, out)?;
            continue;
        }
        for t in &page {
            let key = if tags { "tag" } else { "type" };
            crate::write_json_line(out, &json!({ key: t.name, "count": t.count }).to_string())?;
        }
    }
    Ok(())
}

/// The store's event types (or tags) with their counts, in name order, a page at a time: what
/// `types`, `tags` and `stats` read.
pub(crate) fn term_pages(
    store: &dyn EventStore,
    tags: bool,
) -> impl Iterator<Item = Result<Vec<eventfile::TermCount>, Failure>> + '_ {
    let mut after: Option<String> = None;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let page = if tags {
            store.tags(after.as_deref(), 10_000)
        } else {
            store.event_types(after.as_deref(), 10_000)
        };
        match page {
            Ok(page) if page.is_empty() => None,
            Ok(page) => {
                after = page.last().map(|t| t.name.clone());
                Some(Ok(page))
            }
            Err(e) => {
                done = true;
                Some(Err(e.into()))
            }
        }
    })
}

/// `eventfile projections`: every checkpoint the store keeps, with its lag behind the head.
pub fn projections(store: &dyn EventStore, out: &mut impl Write) -> Result<(), Failure> {
    for s in eventfile::projection::status(store)? {
        let time = (s.time > 0).then(|| eventfile::format_rfc3339(s.time));
        crate::write_json_line(
            out,
            &json!({
                "name": s.name,
                "position": s.position,
                "head": s.head,
                "lag": s.lag,
                "error": s.error,
                "time": time,
            })
            .to_string(),
        )?;
    }
    Ok(())
}

pub fn reindex(store: Store, out: &mut impl Write) -> Result<(), Failure> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("reindex {bar:40} {bytes}/{total_bytes} {eta}")
            .map_err(|e| Failure::Other(e.to_string()))?,
    );
    let report = store.reindex(|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    writeln!(
        out,
        "{}",
        json!({ "segments": report.segments, "events": report.events, "bytes": report.bytes })
    )?;
    Ok(())
}
