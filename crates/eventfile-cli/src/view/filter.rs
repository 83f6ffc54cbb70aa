//! The filter typed in place (`f`): words of the form `key=value`, every one of which must
//! hold, as `eventfile query`'s flags: `type=` (repeatable: any), `tag=` (repeatable: all),
//! `since=` and `until=` (RFC 3339), `actor=`, `correlation=`, `causation=`.
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
        for word in text.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                return Err(format!("`{word}` is not key=value (keys: {KEYS})"));
            };
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

impl std::fmt::Display for Filter {
    /// The text [`Filter::parse`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut words: Vec<String> = Vec::new();
        words.extend(self.types.iter().map(|t| format!("type={t}")));
        words.extend(self.tags.iter().map(|t| format!("tag={t}")));
        let time = eventfile::format_rfc3339;
        words.extend(self.since.map(|t| format!("since={}", time(t))));
        words.extend(self.until.map(|t| format!("until={}", time(t))));
        words.extend(self.actor.as_ref().map(|a| format!("actor={a}")));
        words.extend(
            self.correlation
                .as_ref()
                .map(|c| format!("correlation={c}")),
        );
        words.extend(self.causation.as_ref().map(|c| format!("causation={c}")));
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
