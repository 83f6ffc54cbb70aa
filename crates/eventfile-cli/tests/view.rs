//! `eventfile view` driven through a real terminal: tmux runs it in an 80x24 pane, the test
//! types keys with send-keys and reads the screen with capture-pane, waiting (with a deadline)
//! for what the screen must show. Another process appends while it follows live (the status line
//! counts them); q, SIGTERM and a panic (set off by the test-only EVENTFILE_VIEW_PANIC_AFTER_DRAW)
//! end it with the terminal restored (canonical mode and echo back, the alternate screen left,
//! the cursor shown).
//!
//! Without tmux on the machine these tests say so and pass: the state machine and the layout
//! are tested without a terminal in the binary's unit tests.

mod common;

use std::path::Path;

use common::eventfile;
use common::tmux::Tmux;

/// The shell line that runs the viewer on `dir`, then prints its status and whether the
/// terminal is back in canonical mode with echo (`icanon echo`, not `-icanon -echo`).
fn view_line(dir: &Path, args: &str, pidfile: &Path) -> String {
    view_line_env(dir, "", args, pidfile)
}

/// [`view_line`] with `env` (`NAME=value ...`) set for the viewer.
fn view_line_env(dir: &Path, env: &str, args: &str, pidfile: &Path) -> String {
    format!(
        "env -u EVENTFILE_URL -u EVENTFILE_CONFIG -u EVENTFILE_DIR -u NO_COLOR {env} sh -c 'echo $$ > {pid}; exec {bin} --dir {dir} view {args}'; \
         echo \"status=$?\"; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo",
        pid = pidfile.display(),
        bin = env!("CARGO_BIN_EXE_eventfile"),
        dir = dir.display(),
    )
}

impl Tmux {
    /// Asserts the pane is back on the normal screen with the cursor shown, the command line
    /// typed before the viewer still on it.
    fn assert_normal_screen(&self, screen: &str) {
        assert_eq!(
            self.pane("#{alternate_on}"),
            "0",
            "the alternate screen was left:\n{screen}"
        );
        assert_eq!(
            self.pane("#{cursor_flag}"),
            "1",
            "the cursor is shown:\n{screen}"
        );
        assert!(
            screen.contains("view") && screen.contains("status="),
            "the shell's screen, with the command typed before the viewer:\n{screen}"
        );
    }
}

fn pid_in(file: &Path) -> rustix::process::Pid {
    let pid: i32 = std::fs::read_to_string(file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    rustix::process::Pid::from_raw(pid).unwrap()
}

fn restored(s: &str) -> bool {
    s.contains("status=0") && s.contains("icanon echo")
}

fn shop(dir: &Path) {
    let out = eventfile(
        dir,
        &[
            "generate",
            "--events",
            "2000",
            "--seed",
            "3",
            "--start",
            "2026-01-01T00:00:00Z",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn navigate_filter_jump_and_quit_with_the_terminal_restored() {
    let Some(t) = Tmux::start("nav") else { return };
    let tmp = tempfile::tempdir().unwrap();
    shop(tmp.path());
    t.line(&view_line(tmp.path(), "", &tmp.path().join("pid")));
    let s = t.wait("the streams", |s| {
        s.contains("STREAM") && s.contains("customer-")
    });
    assert!(s.contains("q quit"), "the keys are shown:\n{s}");
    // Open the first stream: its events and the selected one's JSON.
    t.keys(&["Enter"]);
    t.wait("a stream's events", |s| {
        s.contains("CustomerRegistered") && s.contains("\"data\": {")
    });
    // The JSON scrolls to its metadata.
    for _ in 0..8 {
        t.keys(&["J"]);
    }
    t.wait("the metadata", |s| s.contains("\"correlation_id\""));
    // Every event, filtered in place.
    t.keys(&["a", "f"]);
    t.wait("the filter prompt", |s| s.contains("filter (type="));
    t.tmux(&[
        "send-keys",
        "-t",
        "t",
        "-l",
        "type=PaymentReceived tag=region=eu",
    ]);
    t.keys(&["Enter"]);
    let s = t.wait("the filtered events", |s| {
        s.contains("[type=PaymentReceived tag=")
    });
    assert!(!s.contains("ItemAdded"), "{s}");
    assert!(s.contains("\"amount_cents\""), "{s}");
    // A malformed filter is named, and the prompt stays.
    t.keys(&["f", "Space", "c", "=", "x", "Enter"]);
    t.wait("the refused filter", |s| s.contains("unknown filter `c`"));
    t.keys(&["Escape"]);
    // Jump to a seq (unfiltered: the whole log).
    t.keys(&["f"]);
    for _ in 0..40 {
        t.keys(&["BSpace"]);
    }
    t.keys(&["Enter", "s", "1", "2", "3", "4", "Enter"]);
    t.wait("seq 1234 selected", |s| s.contains("\"seq\": 1234"));
    t.keys(&["?"]);
    t.wait("the help", |s| s.contains("go to an event id"));
    t.keys(&["Escape", "q"]);
    let s = t.wait("the shell, with the terminal restored", restored);
    assert!(
        s.contains("view"),
        "the command line is back on the screen:\n{s}"
    );
}

#[test]
fn live_mode_follows_appends_of_another_process() {
    let Some(t) = Tmux::start("live") else { return };
    let tmp = tempfile::tempdir().unwrap();
    shop(tmp.path());
    t.line(&view_line(
        tmp.path(),
        "--prefix order- -f",
        &tmp.path().join("pid"),
    ));
    t.wait("live events", |s| {
        s.contains("LIVE") && s.contains("order-")
    });
    for i in 0..3 {
        let out = eventfile(
            tmp.path(),
            &[
                "append",
                "order-live",
                "LiveOrderPlaced",
                &format!("{{\"n\":{i}}}"),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Three rows, and the newest selected (its JSON below them).
    t.wait("the appended events, the newest selected", |s| {
        s.matches("LiveOrderPlaced").count() >= 4 && s.contains("\"n\": 2")
    });
    // The status line: the head moved from 2000 by the three appends, and their rate.
    let s = t.wait("the head and the live count on the status line", |s| {
        s.contains("head 2003  live +3 ")
    });
    let status = s.lines().nth(22).unwrap_or_default();
    assert!(
        status.contains("head 2003  live +3 ") && status.trim_end().ends_with("/s"),
        "the row above the keys:\n{s}"
    );
    // SIGTERM ends it as q does.
    let pid: i32 = std::fs::read_to_string(tmp.path().join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    t.wait("the shell, with the terminal restored", restored);
}

#[test]
fn a_store_of_no_events_and_a_small_terminal() {
    let Some(t) = Tmux::start("small") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    assert!(eventfile(tmp.path(), &["init"]).status.success());
    t.tmux(&["resize-window", "-t", "t", "-x", "40", "-y", "10"]);
    t.line(&view_line(tmp.path(), "", &tmp.path().join("pid")));
    t.wait("the size message", |s| s.contains("needs 60x12"));
    t.tmux(&["resize-window", "-t", "t", "-x", "80", "-y", "24"]);
    t.wait("the empty store", |s| s.contains("no streams"));
    t.keys(&["q"]);
    t.wait("the shell, with the terminal restored", restored);
}

#[test]
fn sigterm_restores_the_terminal() {
    let Some(t) = Tmux::start("term") else { return };
    let tmp = tempfile::tempdir().unwrap();
    shop(tmp.path());
    t.line(&view_line(tmp.path(), "", &tmp.path().join("pid")));
    t.wait("the streams", |s| {
        s.contains("STREAM") && s.contains("head 2000")
    });
    assert_eq!(
        t.pane("#{alternate_on}"),
        "1",
        "the viewer is on the alternate screen"
    );
    assert_eq!(t.pane("#{cursor_flag}"), "0", "the viewer hides the cursor");
    rustix::process::kill_process(
        pid_in(&tmp.path().join("pid")),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let s = t.wait("the shell, with the terminal restored", restored);
    t.assert_normal_screen(&s);
}

#[test]
fn a_panic_restores_the_terminal_and_its_message_is_readable() {
    let Some(t) = Tmux::start("panic") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    shop(tmp.path());
    t.line(&view_line_env(
        tmp.path(),
        "EVENTFILE_VIEW_PANIC_AFTER_DRAW=1",
        "",
        &tmp.path().join("pid"),
    ));
    // A panic exits with 101, after the hook restored the terminal: canonical mode and echo
    // back, and the message printed on the normal screen.
    let s = t.wait("the shell, with the terminal restored", |s| {
        s.contains("status=101") && s.contains("icanon echo")
    });
    assert!(s.contains("EVENTFILE_VIEW_PANIC_AFTER_DRAW is set"), "{s}");
    t.assert_normal_screen(&s);
}

#[test]
fn a_store_removed_while_viewing_is_said_and_the_viewer_still_quits_cleanly() {
    let Some(t) = Tmux::start("gone") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    shop(&dir);
    t.line(&view_line(&dir, "-f", &tmp.path().join("pid")));
    t.wait("the streams, live", |s| {
        s.contains("STREAM") && s.contains("LIVE")
    });
    std::fs::remove_dir_all(&dir).unwrap();
    let s = t.wait("the removal on the status line", |s| {
        s.contains("was removed; what is shown was read before")
    });
    assert!(!s.contains("LIVE"), "live mode ended:\n{s}");
    // Live mode cannot be turned back on; what was read can still be looked at.
    t.keys(&["l"]);
    t.wait("live mode refused", |s| {
        s.contains("no live mode: the store was")
    });
    t.keys(&["Enter"]);
    t.wait("a stream's events, read before", |s| {
        s.contains("\"data\": {")
    });
    t.keys(&["q"]);
    let s = t.wait("the shell, with the terminal restored", restored);
    t.assert_normal_screen(&s);
    assert!(!dir.exists(), "the viewer made no store again");
}

/// A terminal that hangs up (its window closed: here the tmux server killed) ends the viewer.
/// Once the terminal is gone, crossterm's reader retries its reads forever inside
/// `event::poll`, so the viewer used to spin at a core's worth of CPU, deaf to SIGHUP and
/// SIGTERM, until killed with SIGKILL.
#[test]
fn a_terminal_that_hangs_up_ends_the_viewer() {
    let Some(t) = Tmux::start("hangup") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    shop(tmp.path());
    t.line(&view_line(tmp.path(), "-f", &tmp.path().join("pid")));
    t.wait("the streams, live", |s| {
        s.contains("STREAM") && s.contains("LIVE")
    });
    let pid = pid_in(&tmp.path().join("pid"));
    t.tmux(&["kill-server"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // Gone, or a zombie its new parent has not reaped yet.
    let running = |pid: rustix::process::Pid| {
        std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())).is_ok_and(|s| {
            s.rsplit(") ")
                .next()
                .is_some_and(|rest| !rest.starts_with('Z'))
        })
    };
    while running(pid) {
        if std::time::Instant::now() > deadline {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            panic!("the viewer outlived its terminal by 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(30)); // a poll, with a deadline
    }
}
