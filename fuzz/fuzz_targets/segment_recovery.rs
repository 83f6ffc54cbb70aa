//! Recovery of a newest segment holding arbitrary bytes after a valid header: opening never
//! panics, and a store that opens verifies sound and reads back without error.
//!
//! The first byte picks the mode: odd, the rest goes into the segment as it is; even, every line
//! of the rest gets a valid CRC frame first, so the fuzzer reaches the numbering and batch checks.
#![no_main]

use eventfile::internals;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body = if mode & 1 == 1 {
        rest.to_vec()
    } else {
        internals::frame_lines(rest)
    };
    let dir = tempfile::tempdir().unwrap();
    internals::write_store_with_segment(dir.path(), &body).unwrap();
    let opts = eventfile::OpenOptions::new().durability(eventfile::Durability::None);
    if let Ok(store) = opts.open(dir.path()) {
        for event in store.read_all(eventfile::Read::forward()).unwrap() {
            event.expect("a recovered store reads without error");
        }
        drop(store);
        let report = eventfile::verify(dir.path()).unwrap();
        assert!(report.is_sound(), "{:?}", report.problems);
    }
});
