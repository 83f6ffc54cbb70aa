//! The SQLite backend's own scenarios, one binary with a module per subject: processes (kill
//! -9, two appenders, a subscriber following another process), migrations, and the file
//! (foreign, newer and non-SQLite files refused, concurrent opens, the `sqlite3` shell).
//!
//! Child processes are this test binary run again on the ignored `child` test, told what to
//! do by environment variables.

mod closing;
mod data;
mod deletion_gate;
mod files;
mod group;
mod migrations;
mod process;
mod stream_reads;
mod tag_pages;
mod throughput;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use eventfile::{EventStore, ExpectedVersion, NewEvent};
use eventfile_sqlite::SqliteStore;

/// The role of a child process.
const ROLE: &str = "EVENTFILE_SQLITE_CHILD";
/// The file it works on.
const FILE: &str = "EVENTFILE_SQLITE_FILE";
/// Its stream.
const STREAM: &str = "EVENTFILE_SQLITE_STREAM";
/// How many events it appends (none: until killed).
const COUNT: &str = "EVENTFILE_SQLITE_COUNT";

/// The event numbered `n` of `stream`: deterministic, so a parent can check it exactly.
fn numbered(stream: &str, n: u64) -> NewEvent {
    NewEvent::new(
        "Numbered",
        serde_json::json!({ "stream": stream, "n": n, "pad": "x".repeat((n % 97) as usize) }),
    )
    .with_id(format!("{stream}-{n}"))
    .with_meta_entry("correlation_id", format!("c{}", n % 5))
    .with_tag(format!("n={}", n % 3))
}

/// Starts this binary as a child in `role` on `file`.
fn spawn(role: &str, file: &Path, stream: &str, count: Option<u64>) -> Child {
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE, role)
    .env(FILE, file)
    .env(STREAM, stream)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    if let Some(n) = count {
        cmd.env(COUNT, n.to_string());
    }
    cmd.spawn().expect("spawn a child")
}

/// The child's side: appends numbered events to its stream, one per append, printing
/// `ACK <seq> <n> <stream>` once each append has returned (durable). In the role `append` one
/// thread appends to the stream; in `append-4` four threads append to `<stream>-0`..`-3`, so
/// their appends are committed in groups.
#[test]
#[ignore = "run by the process tests as a child process"]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let file = std::env::var(FILE).expect("file");
    let stream = std::env::var(STREAM).expect("stream");
    let count: u64 = std::env::var(COUNT)
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(u64::MAX);
    if role == "close" {
        closing::in_child(std::path::Path::new(&file));
        return;
    }
    let store = SqliteStore::open(&file).expect("open");
    let streams: Vec<String> = match role.as_str() {
        "append" => vec![stream],
        "append-4" => (0..4).map(|i| format!("{stream}-{i}")).collect(),
        other => panic!("unknown role {other}"),
    };
    let threads: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            let store = store.clone();
            std::thread::spawn(move || {
                let start = store.stream_version(&stream).expect("version") + 1;
                for n in start..start.saturating_add(count) {
                    let r = store
                        .append(
                            &stream,
                            ExpectedVersion::Exact(n - 1),
                            vec![numbered(&stream, n)],
                        )
                        .expect("append");
                    // One write per line, so lines of threads never interleave.
                    let line = format!("ACK {} {n} {stream}\n", r.first_seq);
                    let mut out = std::io::stdout().lock();
                    out.write_all(line.as_bytes()).expect("stdout");
                    out.flush().expect("flush");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("appender");
    }
}
