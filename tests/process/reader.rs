//! A read-only opener in another process sees the writer's durable events and catches up.

use crate::support::*;
use crate::{child, child_dir, child_role};
use eventfile::{Error, OpenOptions, Store};
use std::io::{BufRead, BufReader, Write};

/// The child: tries to open for writing (must be locked out), then opens read-only and reports
/// what it sees, refreshing whenever the parent says so on stdin.
#[test]
fn child_reader() {
    if child_role().as_deref() != Some("reader") {
        return;
    }
    let dir = child_dir();
    match OpenOptions::new().open(&dir) {
        Err(Error::Locked { .. }) => println!("LOCKED"),
        other => println!("NOT-LOCKED {other:?}"),
    }
    let store = Store::open_read_only(&dir).unwrap();
    let report = |store: &Store| {
        let events = all(store);
        assert_gapless(&events);
        println!(
            "SEEN {} {} {}",
            store.head_seq(),
            events.len(),
            store.stream_version("s")
        );
    };
    report(&store);
    for line in std::io::stdin().lock().lines() {
        if line.unwrap() == "refresh" {
            store.refresh().unwrap();
            report(&store);
        }
    }
}

fn next_reply(out: &mut impl BufRead) -> String {
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
        let line = line.trim_end();
        if line == "LOCKED" || line.starts_with("NOT-LOCKED") || line.starts_with("SEEN") {
            return line.to_string();
        }
    }
}

#[test]
fn a_read_only_process_sees_durable_events_and_catches_up() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so catching up crosses segment rolls.
    let store = small_store(dir.path(), 4096);
    for i in 0..30 {
        append_one(&store, "s", i);
    }
    let mut c = child("reader::child_reader", "reader", dir.path())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    assert_eq!(next_reply(&mut out), "LOCKED");
    assert_eq!(next_reply(&mut out), "SEEN 30 30 30");

    for i in 0..200 {
        append_one(&store, "s", i);
    }
    writeln!(stdin, "refresh").unwrap();
    assert_eq!(next_reply(&mut out), "SEEN 230 230 230");
    append_one(&store, "s", 0);
    writeln!(stdin, "refresh").unwrap();
    assert_eq!(next_reply(&mut out), "SEEN 231 231 231");
    drop(stdin);
    assert!(c.wait().unwrap().success());
}
