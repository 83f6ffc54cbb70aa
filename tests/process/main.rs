//! Tests that run a second process (a re-execution of this binary): kill -9 of an appender, and
//! a read-only reader beside the writer.
//!
//! They live in their own test binary, apart from tests that close and reopen stores: a child
//! process holds a copy of every open file descriptor of its parent between its creation and
//! its exec, including other tests' `LOCK` files, and would make their reopen see the lock as
//! still held. Within this binary they run one at a time for the same reason.

mod crash_kill;
mod follow;
mod hostile;
mod reader;
mod retention_race;
mod stolen_lock;
#[path = "../engine/support.rs"]
#[allow(dead_code)]
mod support;

/// Serialises the tests that spawn processes.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

use std::path::Path;

/// Environment variable that tells a re-executed test binary which child role to play.
pub const CHILD_ROLE: &str = "EVENTFILE_TEST_CHILD";

/// The role this process plays, if it was started by [`child`].
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE).ok()
}

/// A command that re-runs this test binary as a child executing only `test`, in `role`.
/// The child's protocol lines go to stdout; libtest's own lines are told apart by prefix.
pub fn child(test: &str, role: &str, dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(std::env::current_exe().expect("test binary path"));
    c.args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ROLE, role)
        .env("EVENTFILE_TEST_DIR", dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    c
}

/// The store directory a child was given.
pub fn child_dir() -> std::path::PathBuf {
    std::env::var_os("EVENTFILE_TEST_DIR")
        .expect("child dir")
        .into()
}
