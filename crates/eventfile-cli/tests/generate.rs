//! `eventfile generate`: the same seed and start give the same events, ids and times included;
//! a second run appends after the first; SIGINT leaves whole batches only.

mod common;

use common::{command, eventfile};

const START: &str = "2026-01-01T00:00:00Z";

fn generate(dir: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "generate", "--events", "3000", "--seed", "42", "--start", START,
    ];
    args.extend_from_slice(extra);
    let out = eventfile(dir, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn one_seed_and_start_make_the_same_events() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ra = generate(a.path(), &["--batch", "500"]);
    let rb = generate(b.path(), &["--batch", "777"]);
    assert_eq!(ra["written"], 3000);
    assert_eq!(ra, rb);
    let cat_a = eventfile(a.path(), &["cat"]).stdout;
    let cat_b = eventfile(b.path(), &["cat"]).stdout;
    assert_eq!(String::from_utf8_lossy(&cat_a).lines().count(), 3000);
    assert!(cat_a == cat_b, "two runs with one seed differ");
    let other = tempfile::tempdir().unwrap();
    let out = eventfile(
        other.path(),
        &[
            "generate", "--events", "3000", "--seed", "43", "--start", START,
        ],
    );
    assert!(out.status.success());
    assert!(eventfile(other.path(), &["cat"]).stdout != cat_a);
    // The shop's events, with the metadata a query can select by.
    let types = String::from_utf8(eventfile(a.path(), &["types"]).stdout).unwrap();
    for t in [
        "CustomerRegistered",
        "OrderPlaced",
        "ItemAdded",
        "PaymentReceived",
        "OrderShipped",
    ] {
        assert!(types.contains(t), "{types}");
    }
    let first = String::from_utf8_lossy(&cat_a)
        .lines()
        .nth(10)
        .unwrap()
        .to_owned();
    let e: serde_json::Value = serde_json::from_str(&first).unwrap();
    let corr = e["meta"]["correlation_id"].as_str().unwrap();
    let q = eventfile(a.path(), &["query", "--correlation", corr, "--count"]);
    assert!(String::from_utf8_lossy(&q.stdout).contains("\"count\":"));
}

#[test]
fn a_second_run_appends_after_the_first_and_renumbers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &[]);
    let before = eventfile(dir.path(), &["cat"]).stdout;
    let out = eventfile(
        dir.path(),
        &["generate", "--events", "1000", "--seed", "42"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            r["written"].as_u64(),
            r["first_seq"].as_u64(),
            r["head"].as_u64()
        ),
        (Some(1000), Some(3001), Some(4000))
    );
    let after = eventfile(dir.path(), &["cat"]).stdout;
    assert!(after.starts_with(&before), "the first run's events changed");
    // A start before the newest event is refused: times never decrease in a log.
    let out = eventfile(
        dir.path(),
        &["generate", "--events", "10", "--start", START],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("newest event"));
    assert!(eventfile(dir.path(), &["verify"]).status.success());
}

#[test]
fn generate_runs_on_sqlite_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("shop.db").display());
    let out = command()
        .args(["--url", &url, "generate", "--events", "2000", "--seed", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = command().args(["--url", &url, "cat"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2000);
    let out = command()
        .args(["--url", "memory:", "generate", "--events", "500"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(unix)]
#[test]
fn sigint_leaves_whole_batches_only() {
    use rustix::process::{Pid, Signal, kill_process};
    let dir = tempfile::tempdir().unwrap();
    let child = command()
        .arg("--dir")
        .arg(dir.path())
        .args(["generate", "--events", "5000000", "--batch", "1000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (with a deadline) until the first batches are in, then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(std::time::Instant::now() < deadline, "no batch was written");
        if let Ok(store) = eventfile::Store::open_read_only(dir.path())
            && store.head_seq() >= 3000
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20)); // a poll, with a deadline
    }
    let pid = Pid::from_child(&child);
    kill_process(pid, Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let written = r["written"].as_u64().unwrap();
    assert!(written < 5_000_000 && written.is_multiple_of(1000), "{r}");
    let store = eventfile::Store::open_read_only(dir.path()).unwrap();
    assert_eq!(store.head_seq(), written);
    drop(store);
    assert!(eventfile(dir.path(), &["verify"]).status.success());
}
