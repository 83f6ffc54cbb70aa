//! Helpers the CLI's test binaries share.

// Each test binary uses part of them.
#![allow(dead_code)]

pub mod tmux;

use std::path::Path;
use std::process::{Command, Output};

/// The `eventfile` binary, with none of the environment that names a store (the tests name
/// theirs with flags, whatever the shell running them has set).
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_eventfile"));
    for var in ["EVENTFILE_URL", "EVENTFILE_CONFIG", "EVENTFILE_DIR"] {
        c.env_remove(var);
    }
    c
}

/// Runs the `eventfile` binary on the store in `dir`.
pub fn eventfile(dir: &Path, args: &[&str]) -> Output {
    command()
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run eventfile")
}

/// A store of `n` one-number events in stream `s`, written through the library (without
/// fsync: fast) and closed: enough output to outlast a pipe's buffer.
pub fn store_of_small_events(dir: &Path, n: u64) {
    let store = eventfile::OpenOptions::new()
        .durability(eventfile::Durability::None)
        .open(dir)
        .unwrap();
    for i in 0..n {
        store
            .append(
                "s",
                eventfile::ExpectedVersion::Any,
                [eventfile::NewEvent::new("T", serde_json::json!(i))],
            )
            .unwrap();
    }
    store.close().unwrap();
}
