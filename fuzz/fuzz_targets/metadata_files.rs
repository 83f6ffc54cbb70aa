//! The store's own metadata files on arbitrary bytes: the configuration (`eventfile.json`), the
//! removal manifest (`removed.json`) and a snapshot file. Opening never panics; a store that opens
//! reads back without panicking, and loading the snapshot never panics.
//!
//! The first byte picks the file (its value mod 3) and, with its top bit set, frames the rest with
//! a valid CRC so the fuzzer reaches the parsers and what the store does with what they accept.
#![no_main]

use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions, Read, internals};
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
        store.save_snapshot("s", 60, &serde_json::json!({})).unwrap();
    }
    let body = if mode & 0x80 != 0 {
        internals::frame(rest)
    } else {
        rest.to_vec()
    };
    let path = match mode % 3 {
        0 => dir.path().join("eventfile.json"),
        1 => dir.path().join("removed.json"),
        _ => {
            let snaps = dir.path().join("snapshots");
            let name = std::fs::read_dir(&snaps).unwrap().next().unwrap().unwrap().file_name();
            snaps.join(name)
        }
    };
    std::fs::write(path, body).unwrap();
    if let Ok(store) = opts().open(dir.path()) {
        if let Ok(events) = store.read_all(Read::forward()) {
            for e in events {
                let _ = e;
            }
        }
        let _ = store.read_stream("s", Read::backward().limit(5)).map(|e| e.count());
        let _ = store.load_snapshot("s");
        let _ = store.run_retention(true);
        let _ = store.compact(true);
    }
    let _ = eventfile::verify(dir.path());
});
