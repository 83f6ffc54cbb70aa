//! Text from the store on its way to a person's terminal.
//!
//! Stream names, types, ids, tags, data and metadata are written by any program, and a
//! terminal acts on some characters instead of showing them: ESC and the C1 controls start
//! escape sequences (a clipboard write, a cleared screen, a changed title), a carriage return
//! or a backspace overwrites what came before, and the bidirectional formatting characters
//! reorder what follows, so a name can read as another. Everything this tool prints for a
//! person passes through here first:
//! - names and messages: [`printable`] writes such characters as Rust-style escapes
//!   (`\u{1b}`), which a person can read and no terminal acts on;
//! - JSON lines on a terminal: [`json_for_terminal`] writes them as JSON escapes (`\u001b`):
//!   the line is still valid JSON with the same values. Lines written to a pipe or a file are
//!   not changed: they are the export format, byte for byte.
//!
//! The viewer draws through its own widgets, with the same rule (`view/text.rs` calls these).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::OnceLock;

/// Whether a terminal would act on `c` rather than show it: the C0 and C1 controls, DEL, and
/// the bidirectional formatting characters (marks, embeddings, overrides and isolates).
pub fn acts_on(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every character a terminal acts on written as a Rust-style escape (`\u{1b}`);
/// line feeds kept when `keep_lines` (a message of several lines), and written as `\u{a}`
/// otherwise (a name in a table or a status line).
pub fn printable(s: &str, keep_lines: bool) -> Cow<'_, str> {
    escaped(
        s,
        |c| acts_on(c) && !(keep_lines && c == '\n'),
        |out, c| write!(out, "\\u{{{:x}}}", u32::from(c)),
    )
}

/// A JSON text with every character a terminal acts on that JSON lets stand raw (DEL, the C1
/// controls, the bidirectional formatting characters; serde_json already escapes the C0
/// controls) written as a `\uXXXX` escape. In valid JSON such characters can only stand
/// inside strings, where the escape means the same character: the value is unchanged.
pub fn json_for_terminal(line: &str) -> Cow<'_, str> {
    escaped(line, acts_on, |out, c| {
        write!(out, "\\u{:04x}", u32::from(c))
    })
}

/// `s` with each character `pick` selects written by `escape`; borrowed when there is none.
fn escaped(
    s: &str,
    pick: impl Fn(char) -> bool,
    escape: impl Fn(&mut String, char) -> std::fmt::Result,
) -> Cow<'_, str> {
    if !s.chars().any(&pick) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if pick(c) {
            // Writing to a String cannot fail.
            let _ = escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The columns `s` takes on a terminal (a CJK character takes two), as ratatui counts them.
pub fn columns(s: &str) -> usize {
    ratatui::text::Span::raw(s).width()
}

/// Whether stdout is a terminal, asked once.
pub fn stdout_is_terminal() -> bool {
    static TERMINAL: OnceLock<bool> = OnceLock::new();
    *TERMINAL.get_or_init(|| std::io::stdout().is_terminal())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_characters_are_escaped_in_names() {
        let name = "evil\u{1b}]52;c;aGk=\u{7}\r\u{8}\u{7f}\u{9b}2J\u{202e}cba";
        let shown = printable(name, false);
        assert_eq!(
            shown,
            "evil\\u{1b}]52;c;aGk=\\u{7}\\u{d}\\u{8}\\u{7f}\\u{9b}2J\\u{202e}cba"
        );
        assert!(!shown.chars().any(acts_on));
        assert_eq!(printable("a\nb", false), "a\\u{a}b");
        assert_eq!(printable("a\nb", true), "a\nb");
        assert!(matches!(
            printable("order-42 注文 ✓", false),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn json_escapes_keep_the_value() {
        let value = serde_json::json!({"s": "x\u{9b}2J\u{7f}\u{202e}y\u{1b}", "n": 1});
        let line = serde_json::to_string(&value).unwrap();
        let shown = json_for_terminal(&line);
        assert!(!shown.chars().any(acts_on), "{shown}");
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back, value);
        let plain = r#"{"s":"注文"}"#;
        assert!(matches!(json_for_terminal(plain), Cow::Borrowed(_)));
    }
}
