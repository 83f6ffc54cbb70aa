//! `export`, `import` and `migrate`: moving a log between stores of any backends, and the
//! database backends' schema.

use std::io::{self, BufRead, BufReader, Read as _, Write};
use std::path::Path;

use eventfile::{Error, ImportResult, RecordedEvent};
use eventfile_connect::Migration;
use serde_json::json;

use crate::Failure;
use crate::args::{ExportArgs, MigrateAction};
use crate::target::Target;

/// The most bytes of lines one import batch holds: well under the file store's default
/// segment size (a batch must fit in one segment) and any database's statement limits.
const MAX_BATCH_BYTES: usize = 16 << 20;

/// Writes every event the filters select, oldest first, one `cat` line each, as the store
/// reads them (page by page on the database backends: never the whole log in memory).
pub fn export(target: &Target, a: &ExportArgs, out: &mut impl Write) -> Result<(), Failure> {
    let mut q = crate::query::filters(&a.filters);
    if let Some(from) = a.from {
        q = q.from_seq(from);
    }
    if let Some(to) = a.to {
        q = q.to_seq(to);
    }
    let q = crate::query::checked(q)?;
    let store = target.open_existing()?;
    for event in store.as_dyn().query(&q)? {
        crate::write_event(out, &event?)?;
    }
    Ok(())
}

/// Reads `cat` lines from `file` (or stdin) and imports them in batches of `batch` events.
pub fn import(
    target: &Target,
    file: Option<&Path>,
    batch: u64,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let (input, size): (Box<dyn BufRead>, Option<u64>) = match file {
        Some(path) if path != Path::new("-") => {
            let f = std::fs::File::open(path)
                .map_err(|e| Failure::Other(format!("opening {}: {e}", path.display())))?;
            let size = f.metadata().ok().map(|m| m.len());
            (Box::new(BufReader::with_capacity(1 << 20, f)), size)
        }
        _ => (Box::new(io::stdin().lock()), None),
    };
    let opened = target.open()?;
    // A batch is one append: it must fit in one of the file store's segments.
    let max_bytes = match &opened {
        eventfile_connect::AnyStore::File(s) => {
            MAX_BATCH_BYTES.min(usize::try_from(s.config().segment_bytes / 2).unwrap_or(usize::MAX))
        }
        _ => MAX_BATCH_BYTES,
    };
    // A line holds one event: twice the largest event the store takes, and room for the rest,
    // is more than any line `export` writes; a longer one is refused before it is buffered.
    let max_event = match &opened {
        eventfile_connect::AnyStore::File(s) => s.config().max_event_bytes,
        _ => eventfile::DEFAULT_MAX_EVENT_BYTES,
    };
    let limits = Limits {
        batch,
        batch_bytes: max_bytes,
        line_bytes: max_event.saturating_mul(2).saturating_add(64 << 10),
    };
    let store = opened.as_dyn();
    let bar = progress(size)?;
    let r = import_lines(store, input, &limits, &bar);
    bar.finish_and_clear();
    let (mut total, system) = r?;
    // With nothing written (an empty file, or every event there already), no batch reported
    // the head: the store's is the answer, not 0.
    if total.written == 0 {
        total.head = store.head_seq()?;
    }
    if system > 0 {
        eprintln!(
            "eventfile: {system} events of the store's own streams ($lifecycle: deletions) were \
             skipped: deletions are not imported"
        );
    }
    writeln!(
        out,
        "{}",
        json!({ "written": total.written, "skipped": total.skipped, "head": total.head })
    )?;
    Ok(())
}

/// How much an import takes at a time.
struct Limits {
    /// Events per batch.
    batch: u64,
    /// Bytes of lines per batch.
    batch_bytes: usize,
    /// The longest line read.
    line_bytes: usize,
}

/// Reads every line and imports the events in batches; what was done, and how many lines of
/// `$`-streams were skipped.
fn import_lines(
    store: &dyn eventfile::EventStore,
    mut input: Box<dyn BufRead>,
    limits: &Limits,
    bar: &indicatif::ProgressBar,
) -> Result<(ImportResult, u64), Failure> {
    let mut total = ImportResult::default();
    let mut events: Vec<RecordedEvent> = Vec::new();
    // The line number of each event of the batch, to name the line a refusal points at.
    let mut lines: Vec<u64> = Vec::new();
    let mut bytes = 0usize;
    let mut system = 0u64;
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        n += 1;
        buf.clear();
        let read = (&mut input)
            .take(limits.line_bytes as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Failure::Other(format!("line {n}: reading: {e}")))?;
        if read == 0 {
            break;
        }
        bar.inc(read as u64);
        if buf.len() > limits.line_bytes {
            return Err(Failure::Other(format!(
                "line {n} is longer than {} bytes, more than any event the store takes; {} \
                 events were written before it",
                limits.line_bytes, total.written
            )));
        }
        let text = std::str::from_utf8(&buf).map_err(|e| {
            Failure::Other(format!(
                "line {n} is not UTF-8 ({e}); {} events were written before it",
                total.written
            ))
        })?;
        let mut line = text.trim_end_matches(['\n', '\r']);
        if n == 1 {
            // A byte-order mark, as some Windows editors and PowerShell write UTF-8: not JSON.
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.trim().is_empty() {
            continue;
        }
        let event = RecordedEvent::from_json(line).map_err(|e| {
            Failure::Other(format!(
                "line {n}: {e}; {} events were written before it",
                total.written
            ))
        })?;
        if event.stream.starts_with('$') {
            // The store's own events (deletions) are not replayed: `EventStore::import`
            // refuses them.
            system += 1;
            continue;
        }
        // A line that would take the batch past its bytes starts the next one: checked after
        // adding it, two large events made a batch larger than a segment.
        if bytes + line.len() > limits.batch_bytes {
            flush(store, &mut events, &mut lines, &mut total)?;
            bytes = 0;
        }
        bytes += line.len();
        events.push(event);
        lines.push(n);
        if events.len() as u64 >= limits.batch || bytes >= limits.batch_bytes {
            flush(store, &mut events, &mut lines, &mut total)?;
            bytes = 0;
        }
    }
    flush(store, &mut events, &mut lines, &mut total)?;
    Ok((total, system))
}

/// Imports one batch and empties it, adding what it did to `total`.
fn flush(
    store: &dyn eventfile::EventStore,
    events: &mut Vec<RecordedEvent>,
    lines: &mut Vec<u64>,
    total: &mut ImportResult,
) -> Result<(), Failure> {
    if events.is_empty() {
        return Ok(());
    }
    let r = store.import(events).map_err(|e| refused(e, lines, total))?;
    total.written += r.written;
    total.skipped += r.skipped;
    total.head = r.head;
    events.clear();
    lines.clear();
    Ok(())
}

/// The failure of a batch, naming the line of the event the store refused (its error names the
/// event by its index in the batch: `event N: ...`).
fn refused(e: Error, lines: &[u64], done: &ImportResult) -> Failure {
    let written = done.written;
    if let Error::InvalidInput { reason, .. } = &e
        && let Some((index, why)) = reason
            .strip_prefix("event ")
            .and_then(|r| r.split_once(": "))
        && let Some(&line) = index.parse::<usize>().ok().and_then(|i| lines.get(i))
    {
        return Failure::Other(format!(
            "line {line}: {why}; nothing of its batch was written ({written} events were \
             written before it)"
        ));
    }
    let first = lines.first().copied().unwrap_or(0);
    Failure::Other(format!(
        "the batch from line {first}: {e}; nothing of it was written ({written} events were \
         written before it)"
    ))
}

/// A progress bar on stderr when it is a terminal (hidden otherwise): bytes of a file, or a
/// count of bytes read from stdin.
fn progress(size: Option<u64>) -> Result<indicatif::ProgressBar, Failure> {
    let style = |t: &str| {
        indicatif::ProgressStyle::with_template(t).map_err(|e| Failure::Other(e.to_string()))
    };
    Ok(match size {
        Some(len) => indicatif::ProgressBar::new(len).with_style(style(
            "import {bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )?),
        None => indicatif::ProgressBar::new_spinner()
            .with_style(style("import {spinner} {bytes} {bytes_per_sec}")?),
    })
}

/// Runs a schema migration and prints where the schema stands.
pub fn migrate(
    target: &Target,
    action: MigrateAction,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let m = match action {
        MigrateAction::Up { to } => Migration::Up(to),
        MigrateAction::Down { to } => Migration::Down(to),
        MigrateAction::Status => Migration::Status,
    };
    let v = eventfile_connect::migrate(&target.location, &target.config, m)?;
    writeln!(
        out,
        "{}",
        json!({ "current": v.current, "latest": v.latest })
    )?;
    Ok(())
}
