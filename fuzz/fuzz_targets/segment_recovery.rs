//! Recovery of a newest segment holding arbitrary bytes after a valid header: opening never
//! panics, and a store that opens verifies sound and reads back without error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    eventfile::internals::write_store_with_segment(dir.path(), data).unwrap();
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
