//! `eventfile tail`: the last N events, `--from`, the shared query filters, and `-f` following
//! a writer in other processes until SIGTERM or SIGINT. Every test runs the real binary and
//! waits on its output, never on a sleep; a deadline fails a test that would hang.

mod common;
use common::{eventfile, store_of_small_events};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long a test waits for output it expects before failing.
const DEADLINE: Duration = Duration::from_secs(60);

fn succeeds(args: &[&str], out: &Output) -> String {
    assert!(
        out.status.success(),
        "{args:?}: {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

fn seq_of(line: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
    v["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq: {line}"))
}

/// The seqs a command printed, one event a line.
fn seqs(dir: &Path, args: &[&str]) -> Vec<u64> {
    succeeds(args, &eventfile(dir, args))
        .lines()
        .map(seq_of)
        .collect()
}

/// Appends one event with `eventfile append` (a process of its own, holding the writer's lock
/// only meanwhile) and returns its seq.
fn append(dir: &Path, stream: &str, event_type: &str, data: &str, extra: &[&str]) -> u64 {
    let mut args = vec!["append", stream, event_type, data];
    args.extend_from_slice(extra);
    let out = succeeds(&args, &eventfile(dir, &args));
    seq_of(out.trim_end())
}

/// Thirty events over three streams and two types, with tags and metadata to filter on.
fn fixture(dir: &Path) {
    for i in 1..=30u64 {
        let stream = ["order-1", "order-2", "cart-1"][(i % 3) as usize];
        let event_type = if i % 2 == 0 { "Paid" } else { "Placed" };
        let region = if i % 5 == 0 { "region=us" } else { "region=eu" };
        let meta = format!(
            r#"{{"actor":"{}"}}"#,
            if i % 4 == 0 { "ann" } else { "bob" }
        );
        let seq = append(
            dir,
            stream,
            event_type,
            &i.to_string(),
            &["--tag", region, "--meta", &meta],
        );
        assert_eq!(seq, i);
    }
}

#[test]
fn tail_prints_the_last_n_matching_events_or_those_after_a_position() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    succeeds(&["init"], &eventfile(dir, &["init"]));
    // An empty store: nothing, successfully.
    assert_eq!(seqs(dir, &["tail"]), Vec::<u64>::new());
    assert_eq!(seqs(dir, &["tail", "--from", "0"]), Vec::<u64>::new());
    fixture(dir);

    // The last 10 by default, oldest first, printed exactly as `cat` prints them.
    let out = succeeds(&["tail"], &eventfile(dir, &["tail"]));
    let cat = succeeds(&["cat"], &eventfile(dir, &["cat", "--from", "21"]));
    assert_eq!(out, cat);
    assert_eq!(
        out.lines().map(seq_of).collect::<Vec<_>>(),
        (21..=30).collect::<Vec<_>>()
    );
    assert_eq!(seqs(dir, &["tail", "-n", "3"]), [28, 29, 30]);
    assert_eq!(seqs(dir, &["tail", "--lines", "1"]), [30]);
    assert_eq!(seqs(dir, &["tail", "-n", "0"]), Vec::<u64>::new());
    assert_eq!(
        seqs(dir, &["tail", "-n", "100"]),
        (1..=30).collect::<Vec<_>>()
    );

    // The filters are query's, and select the same events in the same form.
    assert_eq!(
        seqs(dir, &["tail", "-n", "3", "--type", "Paid"]),
        [26, 28, 30]
    );
    assert_eq!(
        seqs(
            dir,
            &[
                "tail",
                "-n",
                "2",
                "--stream",
                "cart-1",
                "--tag",
                "region=us"
            ]
        ),
        [5, 20]
    );
    assert_eq!(
        seqs(dir, &["tail", "--prefix", "order-", "-n", "4"]),
        [25, 27, 28, 30]
    );
    assert_eq!(seqs(dir, &["tail", "--actor", "ann", "-n", "2"]), [24, 28]);
    assert_eq!(seqs(dir, &["tail", "--type", "Nothing"]), Vec::<u64>::new());
    let filters = [
        "--prefix",
        "order-",
        "--type",
        "Placed",
        "--tag",
        "region=eu",
    ];
    let query = succeeds(
        &["query"],
        &eventfile(dir, &[&["query"][..], &filters].concat()),
    );
    let tail = succeeds(
        &["tail"],
        &eventfile(dir, &[&["tail", "--from", "0"][..], &filters].concat()),
    );
    assert_eq!(tail, query);
    assert!(tail.lines().count() > 3, "{tail}");

    // --from SEQ: every match with a seq above SEQ, however many.
    assert_eq!(
        seqs(dir, &["tail", "--from", "0"]),
        (1..=30).collect::<Vec<_>>()
    );
    assert_eq!(seqs(dir, &["tail", "--from", "25"]), [26, 27, 28, 29, 30]);
    assert_eq!(
        seqs(dir, &["tail", "--from", "18", "--type", "Paid"]),
        [20, 22, 24, 26, 28, 30]
    );
    assert_eq!(seqs(dir, &["tail", "--from", "30"]), Vec::<u64>::new());
    assert_eq!(seqs(dir, &["tail", "--from", "99"]), Vec::<u64>::new());
}

#[test]
fn tail_refuses_bad_input_before_opening_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-store");
    let usage = |args: &[&str], names: &str| {
        let out = eventfile(&missing, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(names), "{args:?}: {err}");
        assert!(!missing.exists(), "{args:?} touched the store directory");
    };
    usage(&["tail", "-n", "x"], "'x'");
    usage(&["tail", "-n", "-3"], "-3");
    usage(&["tail", "-f", "--from", "seq"], "'seq'");
    usage(&["tail", "--since", "yesterday"], "yesterday");
    usage(&["tail", "--tag", "novalue"], "novalue");
    usage(&["tail", "--stream", ""], "--stream");
    usage(&["tail", "--bogus"], "--bogus");
    // -n and --from both say where to start: refused, not one of them silently ignored.
    usage(&["tail", "-n", "3", "--from", "5"], "--from");
    // Malformed only together, and still refused before the store is opened.
    usage(
        &[
            "tail",
            "--since",
            "2026-12-01T00:00:00Z",
            "--until",
            "2026-01-01T00:00:00Z",
        ],
        "since",
    );

    // A missing store is an error (status 1), with or without -f, and tail creates nothing:
    // it must never hold the writer's lock.
    for args in [
        &["tail"][..],
        &["tail", "-f"],
        &["tail", "-f", "--from", "0"],
    ] {
        let out = eventfile(&missing, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not an eventfile store"), "{args:?}: {err}");
        assert!(err.contains("does not exist"), "{args:?}: {err}");
        assert!(!missing.exists(), "{args:?} created a store");
    }
    // So is a directory that holds no store.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = eventfile(&empty, &["tail", "-f"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an eventfile store"));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

/// Forty padded events in 4 KiB segments (seqs 1 to 40), then `eventfile retention
/// --max-events 5`: the seqs appended and the log start retention left.
fn store_with_a_removed_prefix(dir: &Path) -> (Vec<u64>, u64) {
    succeeds(
        &["init"],
        &eventfile(dir, &["init", "--segment-bytes", "4096"]),
    );
    let pad = format!(r#"{{"pad":"{}"}}"#, "x".repeat(200));
    let appended: Vec<u64> = (0..40)
        .map(|_| append(dir, "s-1", "T", &pad, &[]))
        .collect();
    let out = eventfile(dir, &["retention", "--max-events", "5"]);
    let report: serde_json::Value = serde_json::from_str(&succeeds(&["retention"], &out)).unwrap();
    let log_start = report["log_start"].as_u64().unwrap();
    assert!(log_start > 1, "retention removed nothing: {report}");
    (appended, log_start)
}

#[test]
fn tail_names_events_retention_removed_and_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (appended, log_start) = store_with_a_removed_prefix(dir);

    let out = eventfile(dir, &["tail", "--from", "0"]);
    let printed: Vec<u64> = succeeds(&["tail"], &out).lines().map(seq_of).collect();
    assert_eq!(printed, appended[log_start as usize - 1..]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "events 1 to {} were removed by retention",
            log_start - 1
        )),
        "{err}"
    );
    // The last N are all retained: no message.
    let out = eventfile(dir, &["tail", "-n", "3"]);
    assert_eq!(
        succeeds(&["tail"], &out)
            .lines()
            .map(seq_of)
            .collect::<Vec<_>>(),
        [38, 39, 40]
    );
    assert!(out.stderr.is_empty());
}

/// A child process, killed if the test fails before it has exited: a failed test must not
/// leave a `tail -f` running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `eventfile tail ARGS` with stdout and stderr piped.
fn spawn_tail(dir: &Path, args: &[&str]) -> Running {
    let child = common::command()
        .arg("--dir")
        .arg(dir)
        .arg("tail")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run eventfile tail");
    Running(child)
}

/// A running `eventfile tail`, its stdout read line by line on a thread.
struct Tail {
    child: Running,
    /// Each line as read, with its newline: a line without one is the last, cut short.
    lines: Receiver<String>,
}

impl Tail {
    fn spawn(dir: &Path, args: &[&str]) -> Tail {
        let mut child = spawn_tail(dir, args);
        let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let mut line = String::new();
                match stdout.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Tail { child, lines }
    }

    /// The next line, complete; fails the test past the deadline or at the end of output.
    fn next_line(&self) -> String {
        let line = self
            .lines
            .recv_timeout(DEADLINE)
            .expect("tail printed nothing more in time");
        assert!(line.ends_with('\n'), "a cut line: {line:?}");
        line
    }

    /// Reads the seqs tail prints until it prints `last`.
    fn seqs_until(&self, last: u64, into: &mut Vec<u64>) {
        while into.last() != Some(&last) {
            let seq = seq_of(&self.next_line());
            assert!(seq <= last, "tail printed {seq}, past {last}: {into:?}");
            into.push(seq);
        }
    }

    /// Sends `signal`, then reads the rest of stdout to its end; returns tail's exit status, the
    /// lines it printed after the signal, and its stderr.
    #[cfg(unix)]
    fn stop(mut self, signal: rustix::process::Signal) -> (Option<i32>, Vec<String>, String) {
        let pid = rustix::process::Pid::from_child(&self.child.0);
        rustix::process::kill_process(pid, signal).expect("signal tail");
        let deadline = Instant::now() + DEADLINE;
        let mut rest = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => rest.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("tail did not exit after {signal:?}"),
            }
        }
        let (status, stderr) = exit_of(&mut self.child);
        (status, rest, stderr)
    }
}

/// The issue's scenario: `eventfile append` processes write while `tail -f` (another process)
/// follows, over segments rolled every few events and a retention run that removes segments
/// tail has printed. Tail must print every appended event (that its filter selects) exactly
/// once, in order, live, and exit 0 with whole lines on `signal`.
#[cfg(unix)]
fn follows_appends_of_other_processes(signal: rustix::process::Signal, filtered: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The smallest segment the store accepts: about sixteen of these events each.
    succeeds(
        &["init"],
        &eventfile(dir, &["init", "--segment-bytes", "4096"]),
    );
    let pad = format!(r#"{{"pad":"{}"}}"#, "x".repeat(200));
    // Stream a gets two events of three; tail with the filter prints those only.
    let mut expected = Vec::new();
    let mut append_some = |count: u64| {
        for i in 0..count {
            let stream = if i % 3 == 2 { "b" } else { "a" };
            let seq = append(dir, stream, "T", &pad, &[]);
            if !filtered || stream == "a" {
                expected.push(seq);
            }
        }
        *expected.last().unwrap()
    };
    let last = append_some(6);
    let args: &[&str] = if filtered {
        &["-f", "--stream", "a"]
    } else {
        &["-f"]
    };
    let tail = Tail::spawn(dir, args);
    let mut printed = Vec::new();
    // The history first (-n 10 of six: all of them), before any append: -n counts back from
    // the head tail finds when it opens the store.
    tail.seqs_until(last, &mut printed);

    // Appends while tail follows, without waiting for it; then the segments tail has printed
    // go, and appends go on.
    let last = append_some(45);
    tail.seqs_until(last, &mut printed);
    let out = eventfile(dir, &["retention", "--max-events", "5"]);
    let report: serde_json::Value = serde_json::from_str(&succeeds(&["retention"], &out)).unwrap();
    let removed = report["segments"].as_array().unwrap();
    assert!(
        removed.len() >= 2,
        "segments did not roll, or none was removed: {report}"
    );
    let last = append_some(45);
    tail.seqs_until(last, &mut printed);

    let (status, rest, stderr) = tail.stop(signal);
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(
        rest,
        Vec::<String>::new(),
        "tail printed more than was appended"
    );
    assert_eq!(stderr, "");
    // The history, then every new one, once, in order.
    assert_eq!(printed, expected);
}

#[cfg(unix)]
#[test]
fn tail_follows_other_processes_across_segments_and_retention_until_sigterm() {
    follows_appends_of_other_processes(rustix::process::Signal::TERM, false);
}

#[cfg(unix)]
#[test]
fn tail_follows_with_a_filter_until_sigint() {
    follows_appends_of_other_processes(rustix::process::Signal::INT, true);
}

/// A writer that stays open in another process (this test's), rolling segments and running
/// retention itself while `tail -f` follows: the common case of an application writing and an
/// operator watching.
#[cfg(unix)]
#[test]
fn tail_follows_a_writer_that_stays_open() {
    use eventfile::{ExpectedVersion, NewEvent, OpenOptions, RetentionPolicy};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = OpenOptions::new().segment_bytes(4096).open(dir).unwrap();
    let pad = "x".repeat(200);
    let append = |i: u64| {
        let e = NewEvent::new("T", serde_json::json!({ "i": i, "pad": pad }));
        store
            .append("s-1", ExpectedVersion::Any, [e])
            .unwrap()
            .first_seq
    };
    // From position 0, not -n: the appends below race tail's start, and -n counts back from
    // the head tail finds when it opens the store.
    let tail = Tail::spawn(dir, &["-f", "--from", "0"]);
    let mut printed = Vec::new();
    let mut expected: Vec<u64> = (0..40).map(append).collect();
    tail.seqs_until(*expected.last().unwrap(), &mut printed);
    let mut policy = RetentionPolicy::keep_all();
    policy.max_events = Some(5);
    store.set_retention_policy(policy).unwrap();
    let report = store.run_retention(false).unwrap();
    assert!(report.segments.len() >= 2, "{report:?}");
    expected.extend((40..80).map(append));
    tail.seqs_until(*expected.last().unwrap(), &mut printed);
    let (status, rest, stderr) = tail.stop(rustix::process::Signal::TERM);
    assert_eq!((status, rest, stderr), (Some(0), vec![], String::new()));
    assert_eq!(printed, expected);
}

#[cfg(unix)]
#[test]
fn tail_follows_from_a_position_past_a_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_, log_start) = store_with_a_removed_prefix(dir);

    let tail = Tail::spawn(dir, &["-f", "--from", "0"]);
    let mut printed = Vec::new();
    tail.seqs_until(40, &mut printed);
    assert_eq!(printed, (log_start..=40).collect::<Vec<_>>());
    let seq = append(dir, "s-2", "T", "{}", &[]);
    tail.seqs_until(seq, &mut printed);
    let (status, rest, stderr) = tail.stop(rustix::process::Signal::TERM);
    assert_eq!((status, rest), (Some(0), vec![]));
    assert_eq!(
        stderr,
        format!(
            "eventfile: events 1 to {} were removed by retention before tail reached them; \
             continuing after {}\n",
            log_start - 1,
            log_start - 1
        )
    );
}

#[test]
fn tail_ends_quietly_when_its_reader_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    store_of_small_events(dir, 20_000);
    // `eventfile tail --from 0 | head -1`, with and without -f: as `cat` does, exit 0 and say
    // nothing.
    for args in [&["--from", "0"][..], &["-f", "--from", "0"]] {
        let mut child = spawn_tail(dir, args);
        let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(seq_of(&line), 1);
        drop(stdout);
        let (status, stderr) = exit_of(&mut child);
        assert_eq!(status, Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

/// `eventfile tail -f | head -3` on a store nobody writes to: tail has nothing to write that
/// would fail, and still ends, with status 0, once its reader has gone.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_tail_f_ends_when_its_reader_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for i in 1..=5 {
        assert_eq!(append(dir, "s-1", "T", "{}", &[]), i);
    }
    let mut child = spawn_tail(dir, &["-f", "-n", "3"]);
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    let seqs: Vec<u64> = stdout
        .lines()
        .take(3)
        .map(|l| seq_of(&l.unwrap()))
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    let (status, stderr) = exit_of(&mut child);
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

/// Waits for `child` to exit, failing the test past the deadline; its status and stderr. Its
/// stderr ends when it exits, and is read on a thread so that the wait can time out.
fn exit_of(child: &mut Running) -> (Option<i32>, String) {
    let mut stderr = child.0.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        let _ = tx.send(text);
    });
    let stderr = rx
        .recv_timeout(DEADLINE)
        .expect("the process did not exit in time");
    (child.0.wait().unwrap().code(), stderr)
}
