//! The store's own metadata files on arbitrary bytes: the configuration (`eventfile.json`), the
//! removal manifest (`removed.json`), a snapshot file, the published head (`HEAD`) and a
//! consumer's checkpoint. Opening never panics; a store that opens reads back and subscribes
//! without panicking, and loading the snapshot or the checkpoint never panics.
//!
//! The first byte picks the file (its value mod 5) and, with its top bit set, frames the rest with
//! a valid CRC (for `HEAD`: two valid slots naming the seqs of the next 16 bytes) so the fuzzer
//! reaches the parsers and what the store does with what they accept.
#![no_main]

use eventfile::{
    Checkpoints, Durability, ExpectedVersion, FileCheckpoints, NewEvent, OpenOptions, Query, Read,
    Store, internals,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = || {
        OpenOptions::new()
            .segment_bytes(4096)
            .durability(Durability::None)
    };
    {
        let store = opts().open(dir.path()).unwrap();
        for i in 0..60 {
            let e = NewEvent::new("T", serde_json::json!({ "i": i }));
            store.append("s", ExpectedVersion::Any, [e]).unwrap();
        }
        store
            .save_snapshot("s", 60, &serde_json::json!({}))
            .unwrap();
    }
    let which = mode % 5;
    let body = match (mode & 0x80 != 0, which) {
        (true, 3) => {
            let seq = |i: usize| {
                let mut b = [0u8; 8];
                for (k, x) in rest.iter().skip(i * 8).take(8).enumerate() {
                    b[k] = *x;
                }
                u64::from_le_bytes(b) % 200
            };
            internals::head_file(seq(0), seq(1))
        }
        (true, _) => internals::frame(rest),
        (false, _) => rest.to_vec(),
    };
    let checkpoints = dir.path().join("checkpoints");
    let path = match which {
        0 => dir.path().join("eventfile.json"),
        1 => dir.path().join("removed.json"),
        3 => dir.path().join("HEAD"),
        4 => {
            std::fs::create_dir_all(&checkpoints).unwrap();
            checkpoints.join("c.checkpoint")
        }
        _ => {
            let snaps = dir.path().join("snapshots");
            let name = std::fs::read_dir(&snaps)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .file_name();
            snaps.join(name)
        }
    };
    std::fs::write(path, body).unwrap();
    if let Ok(c) = FileCheckpoints::open(&checkpoints) {
        let _ = c.load("c");
    }
    // A reader first: the writer's open rewrites `HEAD`.
    if let Ok(reader) = Store::open_read_only(dir.path()) {
        let _ = reader.read_all(Read::forward()).map(|e| e.count());
        if let Ok(mut sub) = reader.subscribe(&Query::new(), 0) {
            while let Ok(Some(_)) = sub.next_timeout(std::time::Duration::ZERO) {}
        }
    }
    if let Ok(store) = opts().open(dir.path()) {
        if let Ok(events) = store.read_all(Read::forward()) {
            for e in events {
                let _ = e;
            }
        }
        let _ = store
            .read_stream("s", Read::backward().limit(5))
            .map(|e| e.count());
        let _ = store.load_snapshot("s");
        let _ = store.run_retention(true);
        let _ = store.compact(true);
    }
    let _ = eventfile::verify(dir.path());
});
