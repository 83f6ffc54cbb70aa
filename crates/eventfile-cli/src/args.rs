//! Command-line arguments (clap), kept apart from what the commands do.
//!
//! Every argument is parsed here into the type a command uses (numbers, expected versions,
//! times, durations, cursors, JSON), so that a malformed value is a usage error (exit 2) from
//! clap, naming the value, before any store is opened. What only the library can judge (a stream
//! name's rules, a tag's form, a policy against the store's segment size) it judges at run time.

use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use eventfile::{Cursor, ExpectedVersion, Micros};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// eventfile: an event store in a directory of JSONL files, one SQLite file or PostgreSQL.
///
/// The store is named by --url, else EVENTFILE_URL, else the `url` of the configuration file
/// (--config, EVENTFILE_CONFIG, or ./eventfile.toml), else --dir or EVENTFILE_DIR, else
/// ./eventfile-data. URLs: file:PATH (or a bare path), sqlite:PATH, postgres://..., memory:.
#[derive(Debug, Parser)]
#[command(name = "eventfile", version, about, long_about = None)]
pub struct Cli {
    /// The store: file:PATH, sqlite:PATH, postgres://USER@HOST/DB (a socket directory as
    /// ?host=/DIR), or memory:.
    #[arg(long, global = true, env = "EVENTFILE_URL", value_name = "URL")]
    pub url: Option<String>,

    /// A configuration file (TOML: the url and each backend's options). Default:
    /// ./eventfile.toml if there is one.
    #[arg(long, global = true, env = "EVENTFILE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The file store's directory, when no URL is given (default ./eventfile-data).
    #[arg(long, global = true, env = "EVENTFILE_DIR")]
    pub dir: Option<PathBuf>,

    /// Whether --dir or EVENTFILE_DIR was given (a URL then wins, with a warning).
    #[arg(skip)]
    pub dir_given: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The most `eventfile bench` threads: each is a real OS thread with its own file or streams.
const MAX_BENCH_THREADS: u64 = 1024;

/// The largest `eventfile bench` batch: 100,000 of its events (a few hundred bytes each) fit in
/// one segment of the default 64 MiB, which the store requires of a batch.
const MAX_BENCH_BATCH: u64 = 100_000;

impl Cli {
    /// Parses the command line, then checks what spans several arguments. Every failure is a
    /// usage error (exit 2), reported by clap before anything runs.
    pub fn parse_checked() -> Result<Cli, clap::Error> {
        // With every command's example (`help.rs`), so that `--help` shows it.
        let mut command = crate::help::command();
        // A variable set to nothing names nothing, as libpq reads an empty PGHOST: the next
        // source in the precedence decides (`EVENTFILE_URL= eventfile cat` reads the
        // configuration file). EVENTFILE_TOKEN is not among them: an empty token stays an
        // error, never a server without authentication.
        for (id, var) in [
            ("url", "EVENTFILE_URL"),
            ("config", "EVENTFILE_CONFIG"),
            ("dir", "EVENTFILE_DIR"),
        ] {
            if std::env::var_os(var).is_some_and(|v| v.is_empty()) {
                command = command.mut_arg(id, |a| a.env(None));
            }
        }
        let matches = command.try_get_matches()?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.dir_given = cli.dir.is_some()
            && matches
                .value_source("dir")
                .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue);
        if let Command::Bench {
            appends, threads, ..
        } = cli.command
            && appends < threads
        {
            let mut cli = Cli::command();
            cli.build();
            let bench = cli
                .find_subcommand_mut("bench")
                .expect("bench is a subcommand");
            return Err(bench.error(
                ErrorKind::ArgumentConflict,
                format!(
                    "--threads {threads} is more than --appends {appends}: \
                     every thread needs at least one append to measure"
                ),
            ));
        }
        Ok(cli)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a store (does nothing if one exists). Options are persisted in the store.
    Init {
        /// Size at which a segment is sealed and the next one started (file store; default:
        /// the configuration file's `[file] segment_bytes`, else 64 MiB).
        #[arg(long)]
        segment_bytes: Option<u64>,
        /// Largest encoded event accepted (file store; default: the configuration file's
        /// `[file] max_event_bytes`, else 4 MiB).
        #[arg(long)]
        max_event_bytes: Option<usize>,
    },
    /// Append one event; prints {"stream","version","seq"} once it is durable. Exit 3 on a
    /// version conflict or a failed condition (--fail-if-type/--fail-if-tag).
    #[command(group(clap::ArgGroup::new("condition").multiple(true).args(["fail_if_types", "fail_if_tags"])))]
    Append {
        /// The stream, e.g. order-42.
        #[arg(value_parser = writable_stream)]
        stream: String,
        /// The event type, e.g. OrderPlaced.
        #[arg(value_name = "TYPE")]
        #[arg(value_parser = event_type)]
        event_type: String,
        /// The event data as JSON, or `-` to read it from stdin. Default: {}. Stored exactly as
        /// given (numbers keep every digit), minus whitespace outside strings.
        #[arg(value_parser = json_arg)]
        data: Option<JsonArg>,
        /// Expected stream version: any, no-stream, exists, or a number.
        #[arg(long, default_value = "any")]
        expect: ExpectedVersion,
        /// Event id (default: a new UUIDv7).
        #[arg(long, value_parser = event_id)]
        id: Option<String>,
        /// Metadata, a JSON object. A number in it must read back as the same number (an
        /// integer within 64 bits, or a decimal an f64 holds as written); others are refused:
        /// give them as strings, or put them in the data.
        #[arg(long, value_parser = json_object)]
        meta: Option<Map<String, Value>>,
        /// A KEY=VALUE tag; repeat for more.
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = tag)]
        tags: Vec<String>,
        /// Idempotency key: if an append with this key is already in the store, nothing is
        /// written and the first append's position is printed with "replayed":true.
        #[arg(long, value_parser = key)]
        key: Option<String>,
        /// Append only if no event of this type (repeatable: any of them) exists after
        /// --after; with --fail-if-tag, only events of these types carrying the tags count.
        /// A failed condition exits 3, naming the matching seq.
        #[arg(long = "fail-if-type", value_name = "TYPE", value_parser = event_type)]
        fail_if_types: Vec<String>,
        /// Append only if no event carrying this tag (repeatable: all of them) exists after
        /// --after.
        #[arg(long = "fail-if-tag", value_name = "KEY=VALUE", value_parser = tag)]
        fail_if_tags: Vec<String>,
        /// The position the condition starts after (the head seq your decision was based on).
        /// Default: the whole log.
        #[arg(long, value_name = "SEQ", requires = "condition")]
        after: Option<u64>,
    },
    /// Print a stream's events, one JSON object per line.
    Read {
        /// The stream.
        #[arg(value_parser = stream_name)]
        stream: String,
        /// First version to print (going backwards: the highest).
        #[arg(long, value_name = "VERSION")]
        from: Option<u64>,
        /// Print at most N events.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Newest first.
        #[arg(long)]
        backward: bool,
    },
    /// Print the global log, one JSON object per line.
    Cat {
        /// First seq to print.
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
        /// Print at most N events.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Find events by stream, type, tag, time, seq and metadata; one JSON object per line.
    /// With --limit, the cursor to continue from is printed on stderr as {"next":CURSOR}
    /// (SQLite and PostgreSQL make no cursors: a full page prints {"next_from_seq":N}, or
    /// {"next_to_seq":N} with --backward).
    Query(QueryArgs),
    /// Print the last N matching events (default 10), or every one after --from SEQ; with -f,
    /// go on printing new ones as they are appended.
    ///
    /// Events are printed oldest first, one JSON object per line, as `cat` and `query` print
    /// them; the filters are those of `query`. With -f, tail follows the store, also a writer in
    /// another process, until SIGINT or SIGTERM (exit 0), and flushes each line as it comes.
    /// Events retention removed before tail reached them are named on stderr, and tail goes on
    /// after them. The store must exist: tail never creates one.
    Tail(TailArgs),
    /// Print the event with this id. Exit 4 if there is none.
    Get {
        /// The event id.
        #[arg(value_parser = event_id)]
        id: String,
    },
    /// List streams with their current versions, in name order.
    Streams {
        /// Only streams whose name starts with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Start after this stream name.
        #[arg(long)]
        after: Option<String>,
        /// Print at most N streams.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[command(flatten)]
        output: crate::output::OutputArgs,
    },
    /// List event types with their event counts.
    Types {
        #[command(flatten)]
        output: crate::output::OutputArgs,
    },
    /// List tags with their event counts.
    Tags {
        #[command(flatten)]
        output: crate::output::OutputArgs,
    },
    /// List the checkpoints consumers (projections, subscribers) keep in the store, one JSON
    /// object per line in name order: name, position, head, lag behind the head, the error it
    /// stopped on (null if none) and when it was saved.
    Projections,
    /// Describe the store as one JSON object: events, streams, types, tags, head and log start,
    /// the oldest and newest event times, deleted and tombstoned streams, bytes on disk by kind
    /// (file store: segments, sidecars, snapshots, checkpoints; SQLite: the database and its
    /// WAL), segments sealed and active, and this process's counters. On a terminal, the same
    /// as a table of `name  value` rows (nested names joined by dots), unless `--json`.
    Stats {
        #[command(flatten)]
        output: crate::output::OutputArgs,
    },
    /// Rebuild every sealed segment's index sidecar from the segment.
    Reindex,
    /// Check every record's CRC and the store's invariants. Exit 0 when sound, 1 otherwise.
    Verify,
    /// Save or show a stream's snapshot.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Delete a stream: soft (its events vanish, later appends continue its numbering) or, with
    /// --hard, for good (a tombstone: later appends fail). Prints the outcome as JSON. Exit 3 on
    /// a version conflict.
    Delete {
        /// The stream.
        #[arg(value_parser = writable_stream)]
        stream: String,
        /// Tombstone the stream: it can never be written or read again.
        #[arg(long)]
        hard: bool,
        /// Expected stream version: any, no-stream, exists, or a number.
        #[arg(long, default_value = "any")]
        expect: ExpectedVersion,
    },
    /// Delete a stream's events below a version (soft delete); prints the outcome as JSON.
    Truncate {
        /// The stream.
        #[arg(value_parser = writable_stream)]
        stream: String,
        /// First version to keep.
        #[arg(long, value_name = "VERSION")]
        before: u64,
    },
    /// Remove old sealed segments beyond the store's retention policy and print what was removed
    /// as JSON. Policy flags replace the persisted policy first (with --dry-run they are only
    /// previewed).
    Retention(RetentionArgs),
    /// Remove sealed segments whose events are all deleted; print the bytes reclaimed as JSON.
    Compact {
        /// Report what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Measure durable append throughput and latency (p50/p99) on this disk, next to a raw
    /// write-and-fdatasync loop on the same disk. Runs in a scratch directory beside --dir,
    /// removed afterwards; prints one JSON object per measurement.
    Bench {
        /// Appends per measurement, split over the threads (at least one per thread).
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
        appends: u64,
        /// Concurrent appenders (each on its own streams; the raw loop: each on its own file),
        /// 1 to 1024.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_BENCH_THREADS))]
        threads: u64,
        /// Events per append, 1 to 100000 (a batch must fit in one segment).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_BENCH_BATCH))]
        batch: u64,
    },
    /// Run a short end-to-end example (a small shop) in a fresh temporary store.
    Demo,
    /// Write the events a query selects as JSON lines (the `cat` format), oldest first,
    /// streaming: `eventfile export --url A | eventfile import --url B` moves a store.
    Export(ExportArgs),
    /// Append the events of a file of JSON lines (the `cat` format; `-` or none: stdin) as they
    /// were recorded: ids, streams, versions, types, data, metadata, tags and times kept, in
    /// batches. Events already in the store (by id) are skipped, so a second run writes
    /// nothing; so are deletions ($lifecycle events), with a count on stderr. A line that does not parse, or breaks a stream's version order, stops the
    /// import with its line number; the batches before it are written whole. Prints
    /// {"written","skipped","head"}.
    Import {
        /// The file (default: stdin).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Events per batch (one transaction or one durable write each).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        batch: u64,
    },
    /// Serve the store over HTTP until SIGINT or SIGTERM: appends and reads as JSON or NDJSON,
    /// live events as Server-Sent Events (GET /openapi.json lists the routes). Prints
    /// {"listening","backend"} once it listens; on a signal it lets in-flight appends finish,
    /// ends live feeds, closes the store and exits 0.
    Serve {
        /// The address to listen on.
        #[arg(long, value_name = "ADDR", default_value = eventfile_server::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// A bearer token every request but GET /health must carry (Authorization: Bearer
        /// TOKEN). Default: none, no authentication.
        #[arg(
            long,
            value_name = "TOKEN",
            env = "EVENTFILE_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
    },
    /// Browse the store full-screen: its streams, the events of a stream or a query, each
    /// event's JSON; filter, jump to a seq or an id, and follow new events live (keys are shown
    /// on screen; q quits). With filters, it opens on the events they select.
    View(ViewArgs),
    /// Write realistic sample data (a shop: customers, orders, items, payments, cancellations,
    /// shipments, with correlation and causation ids, actors and tags, times spread over
    /// --period) through the bulk path, after any events the store holds. The same --seed and
    /// --start give the same events, ids and times included. Prints
    /// {"written","head","first_seq","seed"}; on SIGINT it stops after a whole batch (exit 1).
    /// The file store's batches are not synced one by one: a background sync runs every 100 ms
    /// and the run syncs before it reports, so what it reports as written is durable when it
    /// exits (a crash during the run keeps whole batches, perhaps not all those written).
    Generate(GenerateArgs),
    /// Print a shell completion script: `eventfile completions bash > /etc/bash_completion.d/eventfile`.
    Completions {
        /// The shell.
        shell: CompletionShell,
    },
    /// Print the man page (roff): `eventfile man | man -l -`.
    Man,
    /// Apply (up) or revert (down) the schema migrations of a SQLite or PostgreSQL store, or
    /// show where it stands (status); prints {"current","latest"}. Stores migrate themselves
    /// when opened: this is for operators who migrate ahead of a deploy or roll back.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
}

/// The shells `eventfile completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// `eventfile view`: where it opens, and whether it follows new events.
#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    /// Follow new events as they are appended (also by another process); `l` toggles it.
    #[arg(short = 'f', long)]
    pub follow: bool,
    #[command(flatten)]
    pub filters: FilterArgs,
}

/// `eventfile generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Events to write.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub events: u64,
    /// The seed of every random choice (default: from the clock; printed either way).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Customers in the shop (default: one per 20 events).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub customers: Option<u64>,
    /// The time of the first event (RFC 3339). Default: --period before now, or the store's
    /// newest event if that is later.
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    pub start: Option<Micros>,
    /// The span the events' times are spread over.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = duration)]
    pub period: Duration,
    /// Events per batch (one write or transaction each).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch: u64,
}

/// `eventfile migrate`.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum MigrateAction {
    /// Apply every migration up to --to (default: the newest).
    Up {
        /// The version to stop at.
        #[arg(long, value_name = "VERSION")]
        to: Option<u32>,
    },
    /// Revert migrations down to --to (0: remove the store's tables and their events).
    Down {
        /// The version to stop at.
        #[arg(long, value_name = "VERSION")]
        to: u32,
    },
    /// Show the current and newest versions.
    Status,
}

/// `eventfile export`: the filters of `query`, and a seq range.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Events with seq at least this.
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// Events with seq at most this.
    #[arg(long, value_name = "SEQ")]
    pub to: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save STATE (JSON, or `-` for stdin) as the state of STREAM at --version; prints
    /// {"stream","version","time"}. The state is stored exactly as given, minus whitespace
    /// outside strings.
    Save {
        /// The stream.
        #[arg(value_parser = stream_name)]
        stream: String,
        /// The stream version the state includes.
        #[arg(long, value_name = "VERSION")]
        version: u64,
        /// The state as JSON, or `-` to read it from stdin.
        #[arg(value_parser = json_arg)]
        state: JsonArg,
    },
    /// Print the newest usable snapshot of STREAM as {"stream","version","time","state"}. Exit 4
    /// if there is none.
    Show {
        /// The stream.
        #[arg(value_parser = stream_name)]
        stream: String,
    },
}

/// `eventfile retention`: the run, and optionally a new policy. Durations are a number with a
/// unit: 90s, 15m, 12h, 30d.
#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    /// Report what would be removed, remove nothing (and persist no policy flag).
    #[arg(long)]
    pub dry_run: bool,
    /// Keep segments whose newest event is younger than this.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub max_age: Option<Duration>,
    /// Keep at least this many bytes of segments.
    #[arg(long, value_name = "BYTES")]
    pub max_bytes: Option<u64>,
    /// Keep at least this many events.
    #[arg(long, value_name = "N")]
    pub max_events: Option<u64>,
    /// Seal the active segment once its first event is older than this.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub segment_max_age: Option<Duration>,
    /// Clear the policy: keep everything forever.
    #[arg(long, conflicts_with_all = ["max_age", "max_bytes", "max_events", "segment_max_age"])]
    pub keep_all: bool,
}

/// The filters `eventfile query` and `eventfile tail` share: every flag given must hold; repeated
/// --stream and --type flags match any of their values, repeated --tag flags must all match.
#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    /// Events of this stream (repeatable: any of them).
    #[arg(long = "stream", value_name = "STREAM", value_parser = stream_name)]
    pub streams: Vec<String>,
    /// Events of streams starting with this (a category, e.g. order-).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Events of this type (repeatable: any of them).
    #[arg(long = "type", value_name = "TYPE", value_parser = event_type)]
    pub types: Vec<String>,
    /// Events carrying this tag (repeatable: all of them).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = tag)]
    pub tags: Vec<String>,
    /// Events at or after this time (RFC 3339, e.g. 2026-11-22T10:00:00Z).
    #[arg(long, value_parser = rfc3339)]
    pub since: Option<Micros>,
    /// Events before this time (RFC 3339).
    #[arg(long, value_parser = rfc3339)]
    pub until: Option<Micros>,
    /// Events whose metadata correlation_id is this.
    #[arg(long)]
    pub correlation: Option<String>,
    /// Events whose metadata causation_id is this.
    #[arg(long)]
    pub causation: Option<String>,
    /// Events whose metadata actor is this.
    #[arg(long)]
    pub actor: Option<String>,
}

/// `eventfile query`: the shared filters, a seq range, and how to page through the matches.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Events with seq at least this.
    #[arg(long, value_name = "SEQ")]
    pub from_seq: Option<u64>,
    /// Events with seq at most this.
    #[arg(long, value_name = "SEQ")]
    pub to_seq: Option<u64>,
    /// Print at most N events.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Newest first.
    #[arg(long)]
    pub backward: bool,
    /// Continue after this cursor (from a previous --limit run).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<Cursor>,
    /// Print only the number of matching events, as {"count":N}.
    #[arg(long)]
    pub count: bool,
}

/// `eventfile tail`: where to start, whether to follow, and the filters of `eventfile query`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Print the last N matching events (0: none, only what comes with -f). Refused with
    /// --from, which says where to start instead.
    #[arg(
        short = 'n',
        long = "lines",
        value_name = "N",
        default_value_t = 10,
        conflicts_with = "from"
    )]
    pub lines: usize,
    /// Keep following: print each new matching event as soon as it is appended, until SIGINT
    /// or SIGTERM (then exit 0). A second signal ends tail at once, as if not handled.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Print every matching event with a seq above SEQ (a position: 0 prints them all) instead
    /// of the last N.
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    #[command(flatten)]
    pub filters: FilterArgs,
}

/// A JSON argument, or `-` for stdin, which is read when the command runs (within the store's
/// limits) and is held to the same rules.
#[derive(Debug, Clone)]
pub enum JsonArg {
    /// `-`: read the JSON from stdin.
    Stdin,
    /// JSON given on the command line: the checked text, on one line, every number as given
    /// (never parsed into a `serde_json::Value`, which would round it).
    Given(Box<RawValue>),
}

fn json_arg(text: &str) -> Result<JsonArg, String> {
    if text == "-" {
        return Ok(JsonArg::Stdin);
    }
    json_text(text).map(JsonArg::Given)
}

/// `--meta`: checked to be a JSON object here; its numbers are judged by the library
/// (`NewEvent::with_meta_json`) when the command runs.
/// Metadata, checked by the library's rule (an object whose numbers read back the same).
fn json_object(text: &str) -> Result<Map<String, Value>, String> {
    eventfile::metadata_from_json(text).map_err(|e| e.to_string())
}

/// Checks JSON text the way the library stores it (`eventfile::compact_json`): one JSON value
/// that can be read back; the reason if not.
pub fn json_text(text: &str) -> Result<Box<RawValue>, String> {
    eventfile::compact_json(text).map_err(|e| match e {
        eventfile::Error::Json(e) => format!("not valid JSON: {e}"),
        e => e.to_string(),
    })
}

/// A name checked by the library's own rule, so a malformed one is a usage error (exit 2)
/// before any store is opened.
fn checked(text: &str, rule: fn(&str) -> eventfile::Result<()>) -> Result<String, String> {
    rule(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.to_string())
}

fn stream_name(text: &str) -> Result<String, String> {
    checked(text, eventfile::validate_stream)
}

fn writable_stream(text: &str) -> Result<String, String> {
    checked(text, eventfile::validate_writable_stream)
}

fn event_type(text: &str) -> Result<String, String> {
    checked(text, eventfile::validate_event_type)
}

fn event_id(text: &str) -> Result<String, String> {
    checked(text, eventfile::validate_id)
}

fn tag(text: &str) -> Result<String, String> {
    checked(text, eventfile::validate_tag)
}

fn key(text: &str) -> Result<String, String> {
    checked(text, eventfile::validate_key)
}

fn rfc3339(text: &str) -> Result<Micros, String> {
    eventfile::parse_rfc3339(text)
        .ok_or_else(|| "expected an RFC 3339 time such as 2026-11-22T10:00:00Z".into())
}

/// Parses `90s`, `15m`, `12h`, `30d`, `2w` (or a bare number of seconds), up to the longest span
/// the store's microsecond clock can compare against (about 292,000 years).
fn duration(text: &str) -> Result<Duration, String> {
    let bad = || "not a duration such as 90s, 15m, 12h or 30d".to_string();
    let (num, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    let d = n
        .checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(bad)?;
    if d.as_micros() > i64::MAX as u128 {
        return Err("longer than the store can measure (about 292,000 years)".into());
    }
    Ok(d)
}
