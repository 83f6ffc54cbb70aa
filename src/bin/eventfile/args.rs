//! Command-line arguments (clap), kept apart from what the commands do.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// eventfile: an embedded event store in a directory of JSONL files.
#[derive(Debug, Parser)]
#[command(name = "eventfile", version, about, long_about = None)]
pub struct Cli {
    /// The store directory.
    #[arg(
        long,
        global = true,
        env = "EVENTFILE_DIR",
        default_value = "./eventfile-data"
    )]
    pub dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a store (does nothing if one exists). Options are persisted in the store.
    Init {
        /// Size at which a segment is sealed and the next one started.
        #[arg(long, default_value_t = eventfile::DEFAULT_SEGMENT_BYTES)]
        segment_bytes: u64,
        /// Largest encoded event accepted.
        #[arg(long, default_value_t = eventfile::DEFAULT_MAX_EVENT_BYTES)]
        max_event_bytes: usize,
    },
    /// Append one event; prints {"stream","version","seq"} once it is durable. Exit 3 on a
    /// version conflict.
    Append {
        /// The stream, e.g. order-42.
        stream: String,
        /// The event type, e.g. OrderPlaced.
        #[arg(value_name = "TYPE")]
        event_type: String,
        /// The event data as JSON, or `-` to read it from stdin. Default: {}.
        data: Option<String>,
        /// Expected stream version: any, no-stream, exists, or a number.
        #[arg(long, default_value = "any")]
        expect: String,
        /// Event id (default: a new UUIDv7).
        #[arg(long)]
        id: Option<String>,
        /// Metadata, a JSON object.
        #[arg(long)]
        meta: Option<String>,
        /// A KEY=VALUE tag; repeat for more.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Print a stream's events, one JSON object per line.
    Read {
        /// The stream.
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
    /// Check every record's CRC and the store's invariants. Exit 0 when sound, 1 otherwise.
    Verify,
    /// Run a short end-to-end example (a small shop) in a fresh temporary store.
    Demo,
}
