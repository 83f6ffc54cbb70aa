//! The cursor parser on arbitrary text: never panics, and whatever it accepts prints back to the
//! same text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(cursor) = text.parse::<eventfile::Cursor>()
    {
        assert_eq!(cursor.to_string(), text);
    }
});
