//! Text from the store made safe and measured for the screen.
//!
//! Stream names, types, ids, data and metadata are whatever a writer put there, and ratatui
//! hands every character it is given to the terminal: an ESC in a stream name is an escape
//! sequence the terminal obeys (an OSC 52 clipboard write was shown through one), and a
//! right-to-left override reorders what follows on the line. So every string drawn goes
//! through [`safe`] first, and is cut and padded by its width on screen ([`fit`]), not its
//! number of characters, so that wide (CJK) names keep the columns in line.
//!
//! This module owns that text only; it never draws and reads no store.

use std::borrow::Cow;

/// `s` with every character a terminal would act on, rather than show, written as a Rust
/// escape, `\u{1b}` for ESC (`crate::terminal::printable`, the rule every command's output
/// follows): the C0 controls (tab and newline too), DEL, the C1 controls, and the
/// bidirectional formatting characters. A backslash already in the text is left as it is, so
/// `\u{1b}` typed literally looks the same, which is harmless.
pub fn safe(s: &str) -> Cow<'_, str> {
    crate::terminal::printable(s, false)
}

/// The columns `s` takes on screen, as ratatui counts them when it draws.
pub use crate::terminal::columns as width;

/// `s` (already [`safe`]) cut to at most `w` columns, with `~` at the end when cut, then
/// padded with spaces to exactly `w`. A wide character is never cut in half: one that would
/// cross the edge is left out and the gap padded.
pub fn fit(s: &str, w: usize) -> String {
    let full = width(s);
    let mut out = String::with_capacity(s.len() + w);
    let mut used = 0;
    if full <= w {
        out.push_str(s);
        used = full;
    } else if w > 0 {
        let mut buf = [0u8; 4];
        for c in s.chars() {
            let cw = width(c.encode_utf8(&mut buf));
            if used + cw > w - 1 {
                break;
            }
            out.push(c);
            used += cw;
        }
        out.push('~');
        used += 1;
    }
    out.extend(std::iter::repeat_n(' ', w.saturating_sub(used)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_formats_become_escapes() {
        assert!(matches!(safe("order-1 ü 注文"), Cow::Borrowed(_)));
        assert_eq!(
            safe("a\u{1b}]52;c;eA==\u{7}b\tc\r\u{7f}\u{85}\u{9b}"),
            "a\\u{1b}]52;c;eA==\\u{7}b\\u{9}c\\u{d}\\u{7f}\\u{85}\\u{9b}"
        );
        assert_eq!(
            safe("\u{202e}x\u{2066}\u{200f}\u{61c}"),
            "\\u{202e}x\\u{2066}\\u{200f}\\u{61c}"
        );
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            assert!(
                !safe(c.encode_utf8(&mut [0; 4]))
                    .chars()
                    .any(crate::terminal::acts_on),
                "{:x}",
                c as u32
            );
        }
    }

    #[test]
    fn fit_counts_columns_and_never_halves_a_wide_character() {
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(fit("abcdef", 4), "abc~");
        // Two columns each: three fit before the `~` in 7, and the 7th column is padded.
        assert_eq!(fit("注文注文注文", 8), "注文注~ ");
        assert_eq!(width(&fit("注文注文注文", 8)), 8);
        assert_eq!(fit("注文注文注文", 7), "注文注~");
        assert_eq!(fit("注文", 4), "注文");
        assert_eq!(fit("abc", 0), "");
    }
}
