//! One writer per store even when the `LOCK` file is removed or replaced under a running writer
//! (tmp cleaners and careless `rm` delete old empty files): a second writer, in this process or
//! another, is refused, and nothing the running writer acknowledged is lost.

use crate::{child, child_dir, child_role};
use eventfile::{Error, ExpectedVersion, NewEvent, Read, Store};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};

/// The child: a writer that appends one event per line of stdin and acknowledges it.
#[test]
fn child_lock_holder() {
    if child_role().as_deref() != Some("lock-holder") {
        return;
    }
    let store = Store::open(child_dir()).unwrap();
    println!("READY");
    for line in std::io::stdin().lock().lines() {
        let n: u64 = line.unwrap().parse().unwrap();
        let r = store
            .append(
                "held",
                ExpectedVersion::Any,
                [NewEvent::new("T", json!({ "n": n }))],
            )
            .unwrap();
        println!("ACK {}", r.last_seq);
    }
}

fn expect_line(out: &mut impl BufRead, prefix: &str) -> String {
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
        if let Some(rest) = line.trim_end().strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
}

#[test]
fn a_removed_or_replaced_lock_file_lets_no_second_writer_in() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let mut c = child("stolen_lock::child_lock_holder", "lock-holder", dir.path())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    expect_line(&mut out, "READY");
    let lock = dir.path().join("LOCK");

    let mut acked = Vec::new();
    for round in 0..3u64 {
        match round {
            // Removed, as a tmp cleaner would.
            0 => std::fs::remove_file(&lock).unwrap(),
            // Replaced by a new empty file.
            1 => {
                let _ = std::fs::remove_file(&lock);
                std::fs::write(&lock, b"").unwrap();
            }
            // Replaced by a rename over it.
            _ => {
                let other = dir.path().join("LOCK.other");
                std::fs::write(&other, b"").unwrap();
                std::fs::rename(&other, &lock).unwrap();
            }
        }
        match Store::open(dir.path()) {
            Err(Error::Locked { .. }) => {}
            other => panic!("round {round}: a second writer got in: {other:?}"),
        }
        // The running writer goes on, and what it acknowledges stays.
        for i in 0..5 {
            writeln!(stdin, "{}", round * 10 + i).unwrap();
            acked.push(expect_line(&mut out, "ACK ").parse::<u64>().unwrap());
        }
    }
    drop(stdin);
    assert!(c.wait().unwrap().success());
    let store = Store::open(dir.path()).unwrap();
    let seqs: Vec<u64> = store
        .read_all(Read::forward())
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(seqs, acked);
    assert!(eventfile::verify(dir.path()).unwrap().is_sound());
}
