//! The index sidecar reader on arbitrary bytes: never panics, and whatever it accepts answers
//! every lookup within bounds.
//!
//! The first byte picks the mode: odd, the rest is the file as it is; even, the rest gets a valid
//! CRC appended, so the fuzzer reaches the structural checks behind the checksum.
#![no_main]

use eventfile::internals;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 1 {
        rest.to_vec()
    } else {
        internals::with_index_crc(rest)
    };
    let _ = internals::probe_index(&bytes);
});
