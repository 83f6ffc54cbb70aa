//! The index sidecar readers on arbitrary bytes: never panic, and whatever they accept answers
//! every lookup within bounds: the whole-file reader (`IndexFile`, which checks a sidecar in
//! full) and the one a store reads sealed sidecars with (`SealedIndex`, by `pread`, checking a
//! format-2 file a block at a time).
//!
//! The first byte picks the mode: odd, the rest is the file as it is; even, the rest gets a
//! valid CRC appended (bit 1 clear: format 1) or its block sums and CRCs (bit 1 set: format 2),
//! so the fuzzer reaches the structural checks behind the checksums of either format.
#![no_main]

use eventfile::internals;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = match (mode & 1 == 1, mode & 2 == 2) {
        (true, _) => rest.to_vec(),
        (false, false) => internals::with_index_crc(rest),
        (false, true) => internals::with_index_sums(rest),
    };
    let _ = internals::probe_index(&bytes);
    let _ = internals::probe_sealed_index(&bytes);
});
