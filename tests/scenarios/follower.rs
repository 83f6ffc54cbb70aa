//! A reader in another process never sees an event a power loss can take back: a read-only
//! handle applies the writer's files only up to the head the writer published after its last
//! sync (`HEAD`), whatever the files hold beyond it.
//!
//! The writer appends without syncing each append (`Durability::None`, syncing now and then),
//! so its active segment holds written, unsynced batches most of the time; a read-only handle on
//! the same simulated disk refreshes and reads at random moments, as a follower in another
//! process does. After the power fails, every event the reader saw must be in the recovered
//! store, at the same seq, with the same content. Without the published head the reader would
//! read those unsynced batches from the page cache, and the power loss would give their seqs to
//! other events.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use eventfile::sim::{Image, SimDisk};
use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions, Query, Read, Store};

use crate::power_loss::{Rng, runs};

fn options(disk: &Arc<SimDisk>) -> OpenOptions {
    OpenOptions::new()
        .segment_bytes(4096)
        .storage(Arc::new(Arc::clone(disk)))
}

/// What identifies an event: its stream, version and data.
fn content(e: &eventfile::RecordedEvent) -> String {
    format!("{} {} {}", e.stream, e.version, e.data.get())
}

/// Events the reader saw: seq -> content.
type Seen = BTreeMap<u64, String>;

/// Appends, syncs now and then, and lets the reader look, until the power fails.
fn workload(root: &Path, disk: &Arc<SimDisk>, rng: &mut Rng, run: usize, seen: &mut Seen) {
    let Ok(writer) = options(disk).durability(Durability::None).open(root) else {
        return;
    };
    let Ok(reader) = options(disk).read_only(true).open(root) else {
        return;
    };
    // A subscription of the reader, as a follower uses it (without its thread: the test
    // refreshes the handle at chosen moments).
    let Ok(mut sub) = reader.subscribe(&Query::new(), seen.keys().last().copied().unwrap_or(0))
    else {
        return;
    };
    for k in 0..40 {
        match rng.below(6) {
            0 => {
                if writer.sync().is_err() {
                    return;
                }
            }
            1 | 2 => {
                if reader.refresh().is_err() {
                    return;
                }
                loop {
                    match sub.next_timeout(std::time::Duration::ZERO) {
                        Ok(Some(e)) => {
                            seen.insert(e.seq, content(&e));
                        }
                        Ok(None) => break,
                        Err(_) => return,
                    }
                }
            }
            _ => {
                let n = 1 + rng.below(4);
                let events = (0..n)
                    .map(|i| NewEvent::new("Step", json!({ "run": run, "k": k, "i": i })))
                    .collect::<Vec<_>>();
                let stream = format!("s{}", rng.below(3));
                if writer
                    .append(&stream, ExpectedVersion::Any, events)
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Recovers what survived and checks that it holds everything the reader saw.
fn check(root: &Path, image: &Image, seen: &Seen, run: usize) {
    let disk = SimDisk::new(root, image.clone(), u64::MAX, 0);
    let store: Store = options(&disk)
        .open(root)
        .unwrap_or_else(|e| panic!("run {run}: recovery failed: {e}"));
    let log: BTreeMap<u64, String> = store
        .read_all(Read::forward())
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.seq, content(&e)))
        .collect();
    for (seq, c) in seen {
        assert_eq!(
            log.get(seq),
            Some(c),
            "run {run}: the reader saw seq {seq} as {c}, which the power loss took back"
        );
    }
}

#[test]
fn a_reader_in_another_process_sees_only_durable_events() {
    let runs = runs();
    let root = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_f011);
    let mut image = Image::new();
    let mut seen = Seen::new();
    let mut observed = 0;
    for run in 0..runs {
        if run % 20 == 0 {
            image.clear();
            seen.clear();
        }
        let disk = SimDisk::new(
            root.path(),
            image.clone(),
            1 + rng.below(300),
            rng.below(u64::MAX),
        );
        let before = seen.len();
        workload(root.path(), &disk, &mut rng, run, &mut seen);
        observed += seen.len() - before;
        image = disk.power_loss();
        check(root.path(), &image, &seen, run);
    }
    eprintln!(
        "follower under power loss: {runs} runs, {observed} events seen by the reader, all of \
         them in the recovered store"
    );
    assert!(
        observed > runs,
        "the reader saw too little to test: {observed}"
    );
}
