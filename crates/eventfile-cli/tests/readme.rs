//! The README's 60-second tour, run: every line of its block marked `# readme-tour` is an
//! `eventfile` command this test runs, in order, through the built binary against a temporary
//! store (the tour's `export EVENTFILE_DIR=...` names it). A command or flag the tool does not
//! have fails here (clap exits 2), so the tour cannot drift from the CLI.
//!
//! Commands that run until stopped are run in a bounded form: `view` in a tmux pane until its
//! status line shows the store's head, then `q`; `tail -f` until it prints an event appended
//! by another process, then SIGTERM; `serve` until `GET /health` answers, then SIGTERM (on
//! port 0 instead of the README's, so that tests never collide on a port). Every wait polls
//! for a condition with a deadline.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

/// The lines of the README's tour block, comments and blank lines left out.
fn tour() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let mut lines = readme.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with("# readme-tour"))
        .expect("README.md has a block marked `# readme-tour`");
    lines
        .take_while(|l| !l.starts_with("```"))
        .map(|l| l.split(" #").next().unwrap_or_default().trim().to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The `eventfile` binary with the store in `dir` named by `EVENTFILE_DIR`, as the tour does.
fn eventfile(dir: &Path, args: &[&str]) -> Command {
    let mut c = common::command();
    c.env("EVENTFILE_DIR", dir).env("NO_COLOR", "1").args(args);
    c
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).copied())
}

/// Waits for `child` to exit, for at most the deadline; its exit code.
fn wait_exit(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the command did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20)); // a poll, with a deadline
    }
}

/// Sends SIGTERM to `child` once it handles the signal: a command killed by a SIGTERM that
/// came before its handler would fail the test for a reason that is not the README's. Where
/// the system shows it (Linux's /proc/PID/status), this waits for SIGTERM among the signals
/// the process catches. (`serve` installs its handler before it says it listens:
/// tests/serve.rs checks that on its own.)
fn terminate(child: &Child) {
    const SIGTERM_BIT: u64 = 1 << (15 - 1);
    let status = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + DEADLINE;
    while let Ok(text) = std::fs::read_to_string(&status) {
        let caught = text
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .unwrap_or(SIGTERM_BIT);
        if caught & SIGTERM_BIT != 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the command never handled SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10)); // a poll, with a deadline
    }
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

/// The lines `child` prints, as they come, through a thread.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs a command that ends by itself, and checks its output.
fn run_to_end(dir: &Path, args: &[&str]) {
    let out = eventfile(dir, args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "`eventfile {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        !lines.is_empty(),
        "`eventfile {}` printed nothing",
        args.join(" ")
    );
    if let Some(limit) = flag(args, "--limit") {
        assert!(lines.len() <= limit.parse().unwrap(), "{stdout}");
    }
    match args[0] {
        "generate" => {
            let n: u64 = flag(args, "--events").unwrap_or("10000").parse().unwrap();
            assert_eq!(lines[0]["written"], n, "{stdout}");
        }
        "streams" => {
            let prefix = flag(args, "--prefix").unwrap_or_default();
            for s in &lines {
                let name = s["stream"].as_str().unwrap_or_default();
                assert!(
                    name.starts_with(prefix) && s["version"].as_u64() > Some(0),
                    "{s}"
                );
            }
        }
        "query" if args.contains(&"--count") => {
            assert!(lines[0]["count"].as_u64() > Some(0), "{stdout}");
        }
        "query" => {
            for e in &lines {
                if let Some(t) = flag(args, "--type") {
                    assert_eq!(e["type"], t, "{e}");
                }
                if let Some(tag) = flag(args, "--tag") {
                    assert!(
                        e["tags"].as_array().unwrap().iter().any(|x| x == tag),
                        "{e}"
                    );
                }
            }
        }
        _ => {}
    }
}

/// `tail -f`: prints the last events, then one another process appends; SIGTERM ends it (0).
fn run_tail(dir: &Path, args: &[&str]) {
    let mut child = eventfile(dir, args).stdout(Stdio::piped()).spawn().unwrap();
    let lines = stdout_lines(&mut child);
    let event_type = flag(args, "--type").unwrap_or("TourEvent");
    let first = lines
        .recv_timeout(DEADLINE)
        .expect("tail -f printed the history");
    assert!(first.contains(event_type), "{first}");
    let out = eventfile(
        dir,
        &[
            "append",
            "order-readme-tour",
            event_type,
            r#"{"from":"readme"}"#,
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("tail -f printed the appended event");
        if line.contains("order-readme-tour") {
            break;
        }
    }
    terminate(&child);
    assert_eq!(
        wait_exit(&mut child),
        Some(0),
        "tail -f ends with 0 on SIGTERM"
    );
}

/// `serve`: answers GET /health; SIGTERM ends it (0).
fn run_serve(dir: &Path, args: &[&str]) {
    let mut args = args.to_vec();
    let i = args
        .iter()
        .position(|a| *a == "--listen")
        .expect("the tour's serve names its address");
    args[i + 1] = "127.0.0.1:0";
    let mut child = eventfile(dir, &args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stdout_lines(&mut child);
    let first = lines
        .recv_timeout(DEADLINE)
        .expect("serve printed its address");
    let v: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    let addr = v["listening"]
        .as_str()
        .and_then(|a| a.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("{first}"));
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\nhost: tour\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    c.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""status":"ok""#), "{response}");
    terminate(&child);
    assert_eq!(
        wait_exit(&mut child),
        Some(0),
        "serve ends with 0 on SIGTERM"
    );
}

/// `view`: in a tmux pane until the status line shows the head, then q (exit 0). Without tmux,
/// the arguments are still checked: the viewer refuses to run without a terminal only after
/// they parsed and the store opened.
fn run_view(dir: &Path, args: &[&str], head: u64) {
    let Some(t) = Tmux::start("readme") else {
        let out = eventfile(dir, args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("view needs a terminal"), "{stderr}");
        return;
    };
    t.line(&format!(
        "env -u EVENTFILE_URL -u EVENTFILE_CONFIG EVENTFILE_DIR={} {} {}; echo \"status=$?\"",
        dir.display(),
        env!("CARGO_BIN_EXE_eventfile"),
        args.join(" ")
    ));
    t.wait("the viewer with the store's head", |s| {
        s.contains("eventfile view") && s.contains(&format!("head {head}"))
    });
    t.keys(&["q"]);
    t.wait("the viewer's exit", |s| s.contains("status=0"));
}

#[test]
fn every_command_of_the_readme_tour_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let tour = tour();
    assert!(tour.len() >= 6, "the tour has its commands: {tour:#?}");
    let mut ran = Vec::new();
    let mut head = 0;
    for line in &tour {
        if let Some(path) = line.strip_prefix("export EVENTFILE_DIR=") {
            // The tour's store; this test's is a temporary directory.
            assert!(!path.is_empty(), "{line}");
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.first() == Some(&"eventfile") && !line.contains(['\'', '"', '|', '>', '$']),
            "the tour's line `{line}` is not a plain eventfile command this test can run"
        );
        let args = &words[1..];
        let follow = args.contains(&"-f") || args.contains(&"--follow");
        match args.first().copied() {
            Some("view") => run_view(&dir, args, head),
            Some("tail") if follow => run_tail(&dir, args),
            Some("serve") => run_serve(&dir, args),
            _ => run_to_end(&dir, args),
        }
        if args.first() == Some(&"generate") {
            head += flag(args, "--events").unwrap().parse::<u64>().unwrap();
        }
        ran.push(args[0]);
    }
    for command in ["generate", "streams", "query", "view", "tail", "serve"] {
        assert!(
            ran.contains(&command),
            "the tour shows `eventfile {command}`: {tour:#?}"
        );
    }
}
