//! The filter typed in place (`f`): words of the form `key=value`, every one of which must
//! hold, as `eventfile query`'s flags: `type=` (repeatable: any), `tag=` (repeatable: all),
//! `since=` and `until=` (RFC 3339), `actor=`, `correlation=`, `causation=`. A value with a
//! space in it, or starting with `"`, or empty, is written in double quotes, with `\"` and
//! `\\` for those two characters inside: `actor="bob smith"`; a value without quotes is taken
//! as it is, backslashes and all. The prompt opens on the filter in force written so, and
//! reads it back unchanged.
//!
//! This module owns the syntax only: it turns text into a [`Filter`] and a filter into the
//! query it narrows; it never reads a store.

use eventfile::{Micros, Query};

use crate::args::FilterArgs;

/// The filter on events, besides where they come from (a stream, a prefix or the whole log).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub types: Vec<String>,
    pub tags: Vec<String>,
    pub since: Option<Micros>,
    pub until: Option<Micros>,
    pub actor: Option<String>,
    pub correlation: Option<String>,
    pub causation: Option<String>,
}

/// The keys a filter takes, for the message about an unknown one.
const KEYS: &str = "type=, tag=, since=, until=, actor=, correlation=, causation=";

impl Filter {
    /// The filter of the command line's flags (its streams and prefix are the scope).
    pub fn from_args(a: &FilterArgs) -> Filter {
        Filter {
            types: a.types.clone(),
            tags: a.tags.clone(),
            since: a.since,
            until: a.until,
            actor: a.actor.clone(),
            correlation: a.correlation.clone(),
            causation: a.causation.clone(),
        }
    }

    /// Parses `text`; the reason, naming the word, if it is malformed.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut f = Filter::default();
        for (key, value) in words(text)? {
            let value = value.as_str();
            let time = |v: &str| {
                eventfile::parse_rfc3339(v)
                    .ok_or_else(|| format!("`{v}` is not an RFC 3339 time (2026-11-22T10:00:00Z)"))
            };
            let checked = |v: &str, rule: fn(&str) -> eventfile::Result<()>| {
                rule(v).map(|()| v.to_owned()).map_err(|e| e.to_string())
            };
            match key {
                "type" => f
                    .types
                    .push(checked(value, eventfile::validate_event_type)?),
                "tag" => f.tags.push(checked(value, eventfile::validate_tag)?),
                "since" => f.since = Some(time(value)?),
                "until" => f.until = Some(time(value)?),
                "actor" => f.actor = Some(value.to_owned()),
                "correlation" => f.correlation = Some(value.to_owned()),
                "causation" => f.causation = Some(value.to_owned()),
                _ => return Err(format!("unknown filter `{key}` (keys: {KEYS})")),
            }
        }
        if let (Some(a), Some(b)) = (f.since, f.until)
            && a > b
        {
            return Err("since= is after until=".into());
        }
        Ok(f)
    }

    /// `q` narrowed by this filter.
    pub fn apply(&self, q: Query) -> Query {
        let mut q = q.types(self.types.clone());
        for t in &self.tags {
            q = q.tag(t.clone());
        }
        if let Some(t) = self.since {
            q = q.since(t);
        }
        if let Some(t) = self.until {
            q = q.until(t);
        }
        if let Some(a) = &self.actor {
            q = q.actor(a.clone());
        }
        if let Some(c) = &self.correlation {
            q = q.correlation(c.clone());
        }
        if let Some(c) = &self.causation {
            q = q.causation(c.clone());
        }
        q
    }

    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }
}

/// The `key=value` words of `text`, their values unquoted; the reason if one is malformed.
fn words(text: &str) -> Result<Vec<(&str, String)>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let Some((key, after)) = rest.split_once('=').filter(|(key, _)| key.len() < end) else {
            let word = &rest[..end];
            return Err(format!("`{word}` is not key=value (keys: {KEYS})"));
        };
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => unquote(key, quoted)?,
            None => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (after[..end].to_owned(), &after[end..])
            }
        };
        if tail.starts_with(|c: char| !c.is_whitespace()) {
            return Err(format!("`{key}=` has text right after its closing quote"));
        }
        out.push((key, value));
        rest = tail.trim_start();
    }
    Ok(out)
}

/// The quoted value that starts `s` (just after the opening `"`), and the text after the
/// closing one.
fn unquote<'a>(key: &str, s: &'a str) -> Result<(String, &'a str), String> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => value.push(e),
                _ => {
                    return Err(format!(
                        "`{key}=`: in quotes, a backslash comes before `\"` or `\\` only"
                    ));
                }
            },
            c => value.push(c),
        }
    }
    Err(format!("`{key}=` has no closing quote"))
}

/// `key=value`, the value in quotes if it would not read back as it is.
fn word(key: &str, value: &str) -> String {
    if !value.is_empty() && !value.starts_with('"') && !value.contains(char::is_whitespace) {
        return format!("{key}={value}");
    }
    let mut w = format!("{key}=\"");
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            w.push('\\');
        }
        w.push(c);
    }
    w.push('"');
    w
}

impl std::fmt::Display for Filter {
    /// The text [`Filter::parse`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut words: Vec<String> = Vec::new();
        words.extend(self.types.iter().map(|t| word("type", t)));
        words.extend(self.tags.iter().map(|t| word("tag", t)));
        let time = eventfile::format_rfc3339;
        words.extend(self.since.map(|t| format!("since={}", time(t))));
        words.extend(self.until.map(|t| format!("until={}", time(t))));
        words.extend(self.actor.as_ref().map(|a| word("actor", a)));
        words.extend(self.correlation.as_ref().map(|c| word("correlation", c)));
        words.extend(self.causation.as_ref().map(|c| word("causation", c)));
        f.write_str(&words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_reads_back_what_it_prints() {
        let text = "type=OrderPlaced type=ItemAdded tag=region=eu since=2026-01-01T00:00:00Z \
                    actor=customer-3";
        let f = Filter::parse(text).unwrap();
        assert_eq!(f.types, ["OrderPlaced", "ItemAdded"]);
        assert_eq!(f.tags, ["region=eu"]);
        assert_eq!(Filter::parse(&f.to_string()).unwrap(), f);
        assert!(Filter::parse("").unwrap().is_empty());
    }

    #[test]
    fn values_with_spaces_quotes_and_backslashes_read_back() {
        let f = Filter {
            types: vec!["Order Placed".into(), r#"a"b\c"#.into()],
            tags: vec!["note=x = y".into(), "region=eu".into()],
            actor: Some("bob type=Refunded".into()),
            correlation: Some(r#""quoted""#.into()),
            causation: Some(r#"C:\ "x""#.into()),
            ..Filter::default()
        };
        let text = f.to_string();
        assert_eq!(
            text,
            r#"type="Order Placed" type=a"b\c tag="note=x = y" tag=region=eu"#.to_owned()
                + r#" actor="bob type=Refunded" correlation="\"quoted\"" causation="C:\\ \"x\"""#
        );
        assert_eq!(Filter::parse(&text).unwrap(), f);
        // An empty value, and unquoted words as before.
        let f = Filter {
            actor: Some(String::new()),
            ..Filter::default()
        };
        assert_eq!(f.to_string(), "actor=\"\"");
        assert_eq!(Filter::parse(&f.to_string()).unwrap(), f);
        let f = Filter::parse("  actor=a\"b   tag=k=v=w ").unwrap();
        assert_eq!(f.actor.as_deref(), Some("a\"b"));
        assert_eq!(f.tags, ["k=v=w"]);
        let refused = |text: &str| Filter::parse(text).unwrap_err();
        assert!(refused("actor=\"bob").contains("no closing quote"));
        assert!(refused(r#"actor="a\x""#).contains("backslash"));
        assert!(refused("actor=\"a\"b").contains("right after its closing quote"));
        assert!(refused("bob type=X").contains("`bob` is not key=value"));
    }

    #[test]
    fn malformed_words_are_named() {
        assert!(
            Filter::parse("colour=red")
                .unwrap_err()
                .contains("unknown filter `colour`")
        );
        assert!(
            Filter::parse("OrderPlaced")
                .unwrap_err()
                .contains("not key=value")
        );
        assert!(
            Filter::parse("since=yesterday")
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert!(
            Filter::parse("since=2026-02-01T00:00:00Z until=2026-01-01T00:00:00Z")
                .unwrap_err()
                .contains("after")
        );
    }
}
