//! The record decoder on arbitrary bytes: never panics, and whatever it accepts re-encodes to a
//! line it accepts again with the same fields.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(event) = eventfile::internals::decode_record(data) {
        let line = eventfile::internals::encode_event(&event, false);
        let again = eventfile::internals::decode_record(&line[..line.len() - 1])
            .expect("a re-encoded record decodes");
        assert_eq!(again, event);
    }
    let _ = eventfile::internals::decode_header(data);
});
