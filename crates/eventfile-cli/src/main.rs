//! The `eventfile` command-line tool: inspect, append to, and check a store.
//!
//! Exit status: 0 success, 1 failure (or `verify` found problems), 2 bad usage (an unknown
//! flag, a malformed argument value, including a name, tag or id the store's rules refuse and a
//! metadata number it cannot store exactly, malformed JSON on stdin for a `-` argument, a bad
//! store URL or configuration file), 3 version conflict on
//! `append` or `delete`, 4 no such event on `get` (or snapshot on `snapshot show`). Output goes
//! to stdout as JSON lines; a closed pipe (`| head`) ends the command quietly with status 0, and
//! so does SIGINT or SIGTERM to `tail -f`, which follows the store until then, and to `serve`.
//!
//! JSON given for event data and snapshot state is passed to the store as text, never parsed
//! into a `serde_json::Value`: its numbers are stored with every digit as given.
//!
//! Arguments are parsed into typed values in `args.rs` (clap reports a malformed one with status
//! 2 before any store is touched); the commands then run on those values.
//!
//! This crate owns the tool: argument parsing, the JSON-lines output, progress bars, exit codes
//! and the demo. It uses only the `eventfile` crate's public API, like any application: it must
//! never read or write store files itself, nor need a library feature, and the library must never
//! need anything from it (so that depending on `eventfile` compiles no clap or indicatif).

mod args;
mod bench;
mod demo;
mod generate;
mod help;
mod lifecycle;
mod output;
mod query;
mod stats;
mod tail;
mod target;
mod terminal;
mod transfer;
mod view;

use std::io::{self, BufWriter, Read as _, Write};
use std::process::ExitCode;

use eventfile::{
    AppendCondition, AppendRequest, Error, NewEvent, QueryItem, Read, RecordedEvent, Store,
};
use eventfile_connect::AnyStore;

use args::{Cli, Command, JsonArg};

/// How a command failed.
pub(crate) enum Failure {
    /// An append's expectation did not hold (exit 3).
    Conflict(String),
    /// `verify` found problems; they were printed (exit 1).
    Unsound,
    /// `get` found no such event (exit 4).
    NotFound(String),
    /// Malformed JSON read from stdin for a `-` argument, or arguments that are malformed only
    /// together (exit 2, like a malformed argument).
    Usage(String),
    /// stdout was closed by the reader: not an error.
    ClosedPipe,
    /// Anything else (exit 1).
    Other(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        match e {
            Error::WrongExpectedVersion { .. } | Error::ConditionFailed { .. } => {
                Failure::Conflict(e.to_string())
            }
            e => Failure::Other(e.to_string()),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::ClosedPipe
        } else {
            Failure::Other(format!("writing output: {e}"))
        }
    }
}

/// Prints the library's warnings (e.g. a damaged snapshot skipped) on stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // A warning can quote a stream name or an event's content.
        let line = terminal::printable(
            &format!(
                "eventfile: {}: {}",
                r.level().as_str().to_lowercase(),
                r.args()
            ),
            true,
        )
        .into_owned();
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *held {
            Some((lines, dropped)) if lines.len() >= HELD_MAX => *dropped += 1,
            Some((lines, _)) => lines.push(line),
            None => eprintln!("{line}"),
        }
    }

    fn flush(&self) {}
}

/// While the viewer owns the terminal, warnings are held here rather than written to stderr,
/// where they would land in the middle of its screen; they are printed when it gives the
/// terminal back. The first [`HELD_MAX`] are kept, and how many more there were.
static HELD: std::sync::Mutex<Option<(Vec<String>, usize)>> = std::sync::Mutex::new(None);

const HELD_MAX: usize = 100;

/// Holds warnings until [`release_warnings`].
pub(crate) fn hold_warnings() {
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    held.get_or_insert_with(Default::default);
}

/// Prints the warnings held since [`hold_warnings`], and prints them as they come again.
pub(crate) fn release_warnings() {
    let held = HELD.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((lines, dropped)) = held {
        for line in lines {
            eprintln!("{line}");
        }
        if dropped > 0 {
            eprintln!("eventfile: warn: {dropped} more warnings while viewing were not kept");
        }
    }
}

fn main() -> ExitCode {
    static LOG: StderrLog = StderrLog;
    if log::set_logger(&LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let cli = match Cli::parse_checked() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print on stdout and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match run(cli) {
        Ok(()) | Err(Failure::ClosedPipe) => ExitCode::SUCCESS,
        Err(Failure::Unsound) => ExitCode::from(1),
        Err(Failure::Conflict(msg)) => {
            eprintln!("eventfile: {}", terminal::printable(&msg, true));
            ExitCode::from(3)
        }
        Err(Failure::NotFound(msg)) => {
            eprintln!("eventfile: {}", terminal::printable(&msg, true));
            ExitCode::from(4)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("eventfile: {}", terminal::printable(&msg, true));
            ExitCode::from(2)
        }
        Err(Failure::Other(msg)) => {
            eprintln!("eventfile: {}", terminal::printable(&msg, true));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let out = io::stdout().lock();
    let mut out = BufWriter::new(out);
    // These describe the tool, not a store, and the demo makes its own: a bad store URL in the
    // environment must not stop them.
    match cli.command {
        Command::Completions { shell } => {
            help::completions(shell, &mut out)?;
            return Ok(out.flush()?);
        }
        Command::Man => {
            help::man(&mut out)?;
            return Ok(out.flush()?);
        }
        Command::Demo => {
            demo::run(&mut out)?;
            return Ok(out.flush()?);
        }
        _ => {}
    }
    let target = target::Target::resolve(&cli)?;
    match cli.command {
        Command::Init {
            segment_bytes,
            max_event_bytes,
        } if !matches!(target.location, eventfile_connect::Location::File(_)) => {
            if segment_bytes.is_some() || max_event_bytes.is_some() {
                return Err(Failure::Usage(format!(
                    "--segment-bytes and --max-event-bytes apply to the file store only, not \
                     to {}",
                    target.location.backend()
                )));
            }
            // A database store is created (and its schema migrated) by opening it.
            let store = target.open()?;
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "url": target.location.redacted(),
                    "backend": store.backend(),
                    "head_seq": store.as_dyn().head_seq()?,
                })
            )?;
        }
        Command::Init {
            segment_bytes,
            max_event_bytes,
        } => {
            let dir = target.dir("init")?;
            // The configuration file's `[file]` options, the flags over them.
            let mut options = target.config.file_options()?;
            if let Some(b) = segment_bytes {
                options = options.segment_bytes(b);
            }
            if let Some(b) = max_event_bytes {
                options = options.max_event_bytes(b);
            }
            let store = options.open(dir)?;
            let c = store.config();
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "dir": dir.display().to_string(),
                    "segment_bytes": c.segment_bytes,
                    "max_event_bytes": c.max_event_bytes,
                    "head_seq": store.head_seq(),
                })
            )?;
        }
        Command::Append {
            stream,
            event_type,
            data,
            expect,
            id,
            meta,
            tags,
            key,
            fail_if_types,
            fail_if_tags,
            after,
        } => {
            let data = match data {
                None => None,
                Some(JsonArg::Given(text)) => Some(text),
                Some(JsonArg::Stdin) => Some(stdin_json("DATA", Some(max_event_bytes(&target)?))?),
            };
            let data = data.as_deref().map_or("{}", |d| d.get());
            let mut event = NewEvent::from_json_str(event_type, data)?;
            if let Some(id) = id {
                event = event.with_id(id);
            }
            if let Some(meta) = meta {
                event = event.with_meta(meta);
            }
            for tag in tags {
                event = event.with_tag(tag);
            }
            let mut request = AppendRequest::new(stream.clone(), expect, [event]);
            if let Some(key) = key {
                request = request.key(key);
            }
            if !fail_if_types.is_empty() || !fail_if_tags.is_empty() {
                let item = QueryItem::new(fail_if_types, fail_if_tags);
                request =
                    request.condition(AppendCondition::items([item]).after(after.unwrap_or(0)));
            }
            let store = target.open()?;
            let r = store.as_dyn().append_request(request)?;
            if let AnyStore::File(store) = store {
                store.close()?;
            }
            let replayed = r.replayed;
            let mut r = r
                .streams
                .into_iter()
                .next()
                .map(|(_, a)| a)
                .unwrap_or_default();
            r.replayed = replayed;
            #[derive(serde::Serialize)]
            struct Appended<'a> {
                stream: &'a str,
                version: u64,
                seq: u64,
                // Only on a replay, so the usual output stays exactly {"stream","version","seq"}.
                #[serde(skip_serializing_if = "std::ops::Not::not")]
                replayed: bool,
            }
            let line = serde_json::to_string(&Appended {
                stream: &stream,
                version: r.version,
                seq: r.first_seq,
                replayed: r.replayed,
            })
            .map_err(|e| Failure::Other(e.to_string()))?;
            writeln!(out, "{line}")?;
        }
        Command::Read {
            stream,
            from,
            limit,
            backward,
        } => {
            let store = target.open_existing()?;
            let read = read_options(from, limit, backward);
            for event in store.as_dyn().read_stream(&stream, read)? {
                write_event(&mut out, &event?)?;
            }
        }
        Command::Cat { from, limit } => {
            let store = target.open_existing()?;
            for event in store.as_dyn().read_all(read_options(from, limit, false))? {
                write_event(&mut out, &event?)?;
            }
        }
        Command::Query(a) => {
            let q = query::checked_query(&a)?;
            query::query(&target.open_existing()?, &q, &a, &mut out)?
        }
        Command::Tail(a) => {
            let q = query::checked(query::filters(&a.filters))?;
            tail::tail(&target, &a, q, &mut out)?
        }
        Command::Get { id } => query::get(target.open_existing()?.as_dyn(), &id, &mut out)?,
        Command::Streams {
            prefix,
            after,
            limit,
            output,
        } => query::streams(
            target.open_existing()?.as_dyn(),
            &prefix,
            after,
            limit,
            output::Format::detect(output),
            &mut out,
        )?,
        Command::Types { output } => query::terms(
            target.open_existing()?.as_dyn(),
            false,
            output::Format::detect(output),
            &mut out,
        )?,
        Command::Tags { output } => query::terms(
            target.open_existing()?.as_dyn(),
            true,
            output::Format::detect(output),
            &mut out,
        )?,
        Command::Projections => query::projections(target.open_existing()?.as_dyn(), &mut out)?,
        Command::Stats { output } => stats::stats(
            target.open_existing()?.as_dyn(),
            &target.location,
            output::Format::detect(output),
            &mut out,
        )?,
        Command::Reindex => query::reindex(target.file_store("reindex")?, &mut out)?,
        Command::Verify => {
            let dir = target.dir("verify")?;
            if !store_exists(dir) {
                // Never create a store to check it: name the path that holds none.
                drop(Store::open_read_only(dir)?);
            }
            let report = eventfile::verify(dir)?;
            let mut print = || -> io::Result<()> {
                for p in &report.problems {
                    writeln!(
                        out,
                        "problem: {}",
                        terminal::printable(&p.to_string(), true)
                    )?;
                }
                for n in &report.notes {
                    writeln!(out, "note: {}", terminal::printable(&n.to_string(), true))?;
                }
                writeln!(
                    out,
                    "{}: {} segments, {} events, {} streams, {} snapshots, {} problems",
                    if report.is_sound() {
                        "sound"
                    } else {
                        "UNSOUND"
                    },
                    report.segments,
                    report.events,
                    report.streams,
                    report.snapshots,
                    report.problems.len()
                )?;
                out.flush()
            };
            let printed = print();
            // The exit code says what `verify` found, even when its reader went away.
            if !report.is_sound() {
                return Err(Failure::Unsound);
            }
            printed?;
        }
        Command::Snapshot(cmd) => lifecycle::snapshot(&target, cmd, &mut out)?,
        Command::Delete {
            stream,
            hard,
            expect,
        } => lifecycle::delete(&target, &stream, hard, expect, &mut out)?,
        Command::Truncate { stream, before } => {
            lifecycle::truncate(&target, &stream, before, &mut out)?
        }
        Command::Retention(a) => lifecycle::retention(&target, &a, &mut out)?,
        Command::Compact { dry_run } => lifecycle::compact(&target, dry_run, &mut out)?,
        Command::Bench {
            appends,
            threads,
            batch,
        } => bench::run(target.dir("bench")?, appends, threads, batch, &mut out)?,
        Command::Export(a) => transfer::export(&target, &a, &mut out)?,
        Command::Import { file, batch } => {
            transfer::import(&target, file.as_deref(), batch, &mut out)?
        }
        Command::View(a) => view::run(&target, &a)?,
        Command::Generate(a) => generate::generate(&target, &generate::request(&a), &mut out)?,
        Command::Completions { .. } | Command::Man | Command::Demo => {
            unreachable!("handled above")
        }
        Command::Migrate { action } => transfer::migrate(&target, action, &mut out)?,
        Command::Serve { listen, token } => serve(&target, listen, token, &mut out)?,
    }
    out.flush()?;
    Ok(())
}

/// Prints one event as every command that prints events does (`read`, `cat`, `query`, `get`,
/// `tail`): its JSON object on one line.
pub(crate) fn write_event(out: &mut impl Write, event: &RecordedEvent) -> io::Result<()> {
    write_json_line(out, &event.to_json())
}

/// Writes one JSON line to stdout (`out`): as it is to a pipe or a file, and with the
/// characters a terminal acts on escaped when stdout is a terminal (`terminal.rs`).
pub(crate) fn write_json_line(out: &mut impl Write, line: &str) -> io::Result<()> {
    if terminal::stdout_is_terminal() {
        writeln!(out, "{}", terminal::json_for_terminal(line))
    } else {
        writeln!(out, "{line}")
    }
}

/// Reads the value of a `-` JSON argument from stdin, as checked text on one line (see
/// `args::json_text`; its numbers are not converted). With a `limit`, reads at most one byte
/// more and refuses a longer input without reading (or buffering) the rest. Malformed JSON is a
/// usage error, as it is on the command line.
pub(crate) fn stdin_json(
    what: &str,
    limit: Option<usize>,
) -> Result<Box<serde_json::value::RawValue>, Failure> {
    let mut bytes = Vec::new();
    let most = limit.map_or(u64::MAX, |l| l as u64 + 1);
    io::stdin()
        .lock()
        .take(most)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::Other(format!("reading {what} from stdin: {e}")))?;
    if let Some(limit) = limit
        && bytes.len() > limit
    {
        return Err(Failure::Other(format!(
            "{what} on stdin is over the store's limit of {limit} bytes; nothing was written"
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| Failure::Usage(format!("{what} on stdin is not valid JSON: {e}")))?;
    args::json_text(&text).map_err(|reason| Failure::Usage(format!("{what} on stdin is {reason}")))
}

/// The largest event the store accepts, looked up without the writer's lock (reading stdin may
/// take long); a file store not created yet will get the default, as do the other backends.
fn max_event_bytes(target: &target::Target) -> Result<usize, Failure> {
    match &target.location {
        eventfile_connect::Location::File(dir) if store_exists(dir) => {
            Ok(Store::open_read_only(dir)?.config().max_event_bytes)
        }
        // A file store the append will create takes the configuration file's limit.
        eventfile_connect::Location::File(_) => Ok(target
            .config
            .file
            .max_event_bytes
            .unwrap_or(eventfile::DEFAULT_MAX_EVENT_BYTES)),
        _ => Ok(eventfile::DEFAULT_MAX_EVENT_BYTES),
    }
}

/// `eventfile serve`: the store over HTTP (crates/eventfile-server) until SIGINT or SIGTERM,
/// then the store closed, so that a failed final sync is reported (exit 1).
fn serve(
    target: &target::Target,
    listen: std::net::SocketAddr,
    token: Option<String>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    // Checked before the store is opened (or created): an empty token is a secret that was
    // not filled in, never a request for a server without authentication.
    if token.as_deref() == Some("") {
        return Err(Failure::Usage(
            "--token (or EVENTFILE_TOKEN) is empty: give the token, or leave both unset for a \
             server without authentication"
                .to_owned(),
        ));
    }
    let store = target.open()?;
    let mut options = eventfile_server::ServeOptions::new().listen(listen);
    if let Some(token) = token {
        options = options.token(token);
    }
    let backend = store.backend();
    let mut ready = Ok(());
    eventfile_server::serve_blocking(store.clone().boxed().into(), options, |addr| {
        let line = serde_json::json!({ "listening": format!("http://{addr}"), "backend": backend });
        ready = writeln!(out, "{line}").and_then(|()| out.flush());
    })
    .map_err(|e| Failure::Other(format!("serving on {listen}: {e}")))?;
    ready?;
    if let AnyStore::File(store) = store {
        store.close()?;
    }
    Ok(())
}

fn store_exists(dir: &std::path::Path) -> bool {
    dir.join("eventfile.json").exists()
}

fn read_options(from: Option<u64>, limit: Option<usize>, backward: bool) -> Read {
    let mut read = if backward {
        Read::backward()
    } else {
        Read::forward()
    };
    if let Some(from) = from {
        read = read.from(from);
    }
    if let Some(limit) = limit {
        read = read.limit(limit);
    }
    read
}

#[cfg(test)]
mod tests {
    use log::Log;

    /// Warnings logged while the viewer has the screen are held, up to a bound, and none is
    /// held after the release.
    #[test]
    fn warnings_are_held_while_viewing_and_released_after() {
        let warn = |text: &str| {
            StderrLog.log(
                &log::Record::builder()
                    .level(log::Level::Warn)
                    .args(format_args!("{text}"))
                    .build(),
            )
        };
        super::hold_warnings();
        warn("one");
        for _ in 0..super::HELD_MAX + 5 {
            warn("more");
        }
        {
            let held = super::HELD.lock().unwrap();
            let (lines, dropped) = held.as_ref().expect("held while viewing");
            assert_eq!(lines[0], "eventfile: warn: one");
            assert_eq!((lines.len(), *dropped), (super::HELD_MAX, 6));
        }
        super::release_warnings();
        assert!(super::HELD.lock().unwrap().is_none());
    }

    use super::StderrLog;
}
