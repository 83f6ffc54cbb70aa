//! The record decoder on arbitrary bytes: never panics, decodes exactly as serde_json alone does
//! (the same event, or a refusal from both), and whatever it accepts re-encodes to a line it
//! accepts again with the same fields.
//!
//! The first byte picks the mode: odd, the rest is a raw line (exercises the frame check); even,
//! the rest is framed with a valid CRC first, so the fuzzer reaches the JSON parsing behind it.
#![no_main]

use eventfile::internals;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let line = if mode & 1 == 1 {
        rest.to_vec()
    } else {
        internals::frame(rest)
    };
    let decoded = internals::decode_record(&line);
    let reference = internals::decode_record_serde(&line);
    assert_eq!(decoded, reference);
    if let (Some(a), Some(b)) = (&decoded, &reference) {
        // `==` on metadata ignores the order of its keys when serde_json keeps it.
        assert_eq!(
            serde_json::to_string(&a.meta).unwrap(),
            serde_json::to_string(&b.meta).unwrap()
        );
    }
    if let Some(event) = decoded {
        let encoded = internals::encode_event(&event, false);
        let again = internals::decode_record(&encoded[..encoded.len() - 1])
            .expect("a re-encoded record decodes");
        assert_eq!(again, event);
    }
    let _ = internals::decode_header(&line);
});
