//! The selected event's JSON, indented for reading: the text re-indented as it is, never
//! parsed into numbers, so that what is shown is exactly what is stored (a
//! `serde_json::Value` would round `100000000000000000001`).
//!
//! This module owns only the layout of JSON text; it reads nothing.

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
    use super::pretty;

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
