//! Model-based: the input is a sequence of operations (appends, retries, reads, deletions,
//! snapshots, retention, compaction, clean reopens, power losses) run against a store on the
//! simulated disk, checked against a plain model after every step: every live acknowledged event
//! is read back with its seq and version, seqs only grow, versions are gapless, nothing panics.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use eventfile::sim::{Image, SimDisk};
use eventfile::{Error, ExpectedVersion, NewEvent, OpenOptions, Read, RetentionPolicy, Store};
use libfuzzer_sys::fuzz_target;

const STREAMS: [&str; 3] = ["a", "b", "c"];

fn open(root: &std::path::Path, disk: &Arc<SimDisk>) -> Store {
    OpenOptions::new()
        .segment_bytes(4096)
        .storage(Arc::new(Arc::clone(disk)))
        .open(root)
        .expect("a store the store wrote opens")
}

fuzz_target!(|data: &[u8]| {
    let root = tempfile::tempdir().unwrap();
    let mut disk = SimDisk::new(root.path(), Image::new(), u64::MAX, 1);
    let mut store = open(root.path(), &disk);
    // Model: seq -> (stream, version); per stream version and first live version.
    let mut events: Vec<(u64, &str, u64)> = Vec::new();
    let mut versions: HashMap<&str, u64> = HashMap::new();
    let mut live_from: HashMap<&str, (u64, bool)> = HashMap::new();
    let mut head = 0u64;
    let mut last_ids: Option<(&str, Vec<String>, u64)> = None;
    let mut counter = 0u64;
    for pair in data.chunks(2) {
        let (op, arg) = (pair[0], pair.get(1).copied().unwrap_or(0));
        let s = STREAMS[usize::from(arg) % 3];
        match op % 10 {
            0..=3 => {
                let n = u64::from(arg / 3 % 4) + 1;
                let with_ids = op & 0x10 != 0;
                let mut ids = Vec::new();
                let batch: Vec<NewEvent> = (0..n)
                    .map(|_| {
                        counter += 1;
                        let e = NewEvent::new("T", serde_json::json!({ "c": counter }));
                        if with_ids {
                            ids.push(format!("id-{counter}"));
                            e.with_id(format!("id-{counter}"))
                        } else {
                            e
                        }
                    })
                    .collect();
                let v = versions.get(s).copied().unwrap_or(0);
                match store.append(s, ExpectedVersion::Exact(v), batch) {
                    Ok(r) => {
                        assert_eq!((r.first_seq, r.version), (head + 1, v + n));
                        for i in 0..n {
                            events.push((head + 1 + i, s, v + 1 + i));
                        }
                        head += n;
                        versions.insert(s, v + n);
                        if with_ids {
                            last_ids = Some((s, ids, r.first_seq));
                        }
                    }
                    Err(Error::StreamDeleted { .. }) => assert!(live_from[s].1),
                    Err(e) => panic!("append: {e}"),
                }
            }
            4 => {
                if let Some((s, ids, first)) = &last_ids {
                    let live = store.read_all(Read::forward().from(*first).limit(1)).is_ok_and(|mut e| {
                        e.next().is_some_and(|e| e.is_ok_and(|e| e.seq == *first))
                    });
                    if live {
                        let batch: Vec<NewEvent> = ids
                            .iter()
                            .map(|id| NewEvent::new("T", serde_json::json!({})).with_id(id.clone()))
                            .collect();
                        let r = store.append(s, ExpectedVersion::Any, batch).unwrap();
                        assert!(r.replayed && r.first_seq == *first);
                    }
                }
            }
            5 => {
                let before = u64::from(arg / 3 % 8);
                let r = match arg % 4 {
                    0 => store.delete_stream(s, ExpectedVersion::Any),
                    1 => store.tombstone_stream(s, ExpectedVersion::Any),
                    _ => store.truncate_stream(s, before),
                };
                if let Ok(r) = r {
                    if r.seq.is_some() {
                        head += 1;
                    }
                    live_from.insert(s, (r.deleted_before, r.tombstone));
                }
            }
            6 => {
                let v = versions.get(s).copied().unwrap_or(0);
                let _ = store.save_snapshot(s, v, &serde_json::json!({ "v": v }));
                if let Ok(Some(snap)) = store.load_snapshot(s) {
                    assert!(snap.version <= v);
                }
            }
            7 => {
                let keep = 10 + u64::from(arg);
                store
                    .set_retention_policy(RetentionPolicy::keep_all().max_events(keep))
                    .unwrap();
                store.run_retention(false).unwrap();
                store.compact(false).unwrap();
            }
            8 => {
                drop(store);
                store = open(root.path(), &disk);
            }
            _ => {
                let image = disk.power_loss();
                drop(store);
                disk = SimDisk::new(root.path(), image, u64::MAX, u64::from(arg) + 1);
                store = open(root.path(), &disk);
            }
        }
        // Every live acknowledged event is there, with its seq and version.
        assert_eq!(store.head_seq(), head);
        let log_start = store.log_start();
        let got: HashMap<u64, (String, u64)> = store
            .read_all(Read::forward())
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.seq, (e.stream, e.version)))
            .collect();
        for &(seq, s, v) in &events {
            let live = seq >= log_start && live_from.get(s).is_none_or(|&(b, t)| !t && v >= b);
            if live {
                assert_eq!(got.get(&seq), Some(&(s.to_owned(), v)), "seq {seq}");
            } else {
                assert!(!got.contains_key(&seq), "dead seq {seq} visible");
            }
        }
        for s in STREAMS {
            assert_eq!(store.stream_version(s), versions.get(s).copied().unwrap_or(0));
        }
    }
});
