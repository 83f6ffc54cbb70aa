//! The selected event's JSON, indented for reading: the text re-indented as it is, never
//! parsed into numbers, so that what is shown is exactly what is stored (a
//! `serde_json::Value` would round `100000000000000000001`).
//!
//! This module owns only the layout of JSON text and the one event's lines kept for the
//! screen ([`Lines`]); it reads nothing.

use eventfile::RecordedEvent;

use super::text::safe;

/// The selected event's indented JSON, one safe line each ([`safe`]: JSON escapes the C0
/// controls but not DEL, the C1 controls or the bidirectional formats), made when the
/// selection changes rather than on every frame: an event may hold an array of 100,000
/// elements, and a frame is drawn after every key.
#[derive(Debug, Default)]
pub struct Lines {
    /// The seq and id of the event the lines are of.
    of: Option<(u64, String)>,
    lines: Vec<String>,
}

impl Lines {
    /// The lines of `e`, made again only if the last call was for another event.
    pub fn of(&mut self, e: &RecordedEvent) -> &[String] {
        if self
            .of
            .as_ref()
            .is_none_or(|(seq, id)| *seq != e.seq || *id != e.id)
        {
            self.lines = pretty(&e.to_json())
                .lines()
                .map(|l| safe(l).into_owned())
                .collect();
            self.of = Some((e.seq, e.id.clone()));
        }
        &self.lines
    }
}

/// `compact` (one JSON value with no whitespace outside strings, as the store keeps it)
/// indented by two spaces a level, one member or element a line.
pub fn pretty(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = compact.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on one line.
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().unwrap_or(']'));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Lines, pretty};
    use eventfile::{EventStore, ExpectedVersion, MemoryStore, NewEvent, Query};

    #[test]
    fn an_events_lines_are_made_once_while_it_stays_selected() {
        let store = MemoryStore::new();
        let events = vec![
            NewEvent::new("A", serde_json::json!({ "n": 1 })),
            NewEvent::new("B", serde_json::json!({ "n": "\u{202e}" })),
        ];
        store.append("s", ExpectedVersion::Any, events).unwrap();
        let all: Vec<_> = store
            .query(&Query::new())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut lines = Lines::default();
        let first = lines.of(&all[0]).as_ptr();
        assert!(lines.of(&all[0]).contains(&"  \"type\": \"A\",".to_owned()));
        // The same allocation: not made again for the next frame.
        assert_eq!(lines.of(&all[0]).as_ptr(), first);
        let second = lines.of(&all[1]);
        assert!(
            second.contains(&"    \"n\": \"\\u{202e}\"".to_owned()),
            "{second:?}"
        );
    }

    #[test]
    fn indents_without_touching_numbers_or_strings() {
        let text = r#"{"a":[1,100000000000000000001],"b":{},"c":"x,{\"y\":[]}","d":[]}"#;
        assert_eq!(
            pretty(text),
            "{\n  \"a\": [\n    1,\n    100000000000000000001\n  ],\n  \"b\": {},\n  \
             \"c\": \"x,{\\\"y\\\":[]}\",\n  \"d\": []\n}"
        );
        assert_eq!(pretty("3"), "3");
    }
}
