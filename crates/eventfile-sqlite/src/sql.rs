//! A query's filters as parameterised SQL over `events e`: every value is a bound parameter,
//! never text in the statement. Streams, types and tags use their indexes (tags through the
//! `event_tags` side table), metadata its expression indexes.
//!
//! This module owns the translation only; it never runs a statement. Seq bounds, liveness,
//! direction and limits are the caller's: [`Where::filters`] adds every other filter.

use eventfile::backend::QueryView;
use rusqlite::types::Value;

/// A `WHERE` clause being built: conditions joined by `AND`, and their parameters (`?1`...).
#[derive(Debug, Default, Clone)]
pub(crate) struct Where {
    conds: Vec<String>,
    pub params: Vec<Value>,
    /// Whether `?1` and `?2` bound the seqs the statement reads ([`Where::keyed`]): the tag
    /// filters are then bounded by them too.
    seq_range: bool,
    /// The join to `event_tags t` of the query's first tag, when it drives the statement
    /// ([`Where::from`]).
    join: Option<String>,
}

impl Where {
    pub(crate) fn new() -> Where {
        Where::default()
    }

    /// A clause over a range of keys, `e.seq` (`by_seq`) or `e.version`: `?1` and `?2` are
    /// its inclusive bounds, set by [`Where::set_range`] (a paged read sets them page after
    /// page). Over seqs, each tag filter reads only the range's part of the tag's index, and
    /// the first tag drives the statement ([`Where::from`]): without that, every page of a read
    /// collected the tag's whole posting list into a temporary index and looked up each of its
    /// events again (a tag filter's second page of 256 sought the first page's events before
    /// its own: 0.71x the same query written by hand).
    pub(crate) fn keyed(by_seq: bool) -> Where {
        let mut w = Where::new();
        let (lo, hi) = (w.param(Value::Null), w.param(Value::Null));
        let key = if by_seq { "e.seq" } else { "e.version" };
        w.and(format!("{key} BETWEEN {lo} AND {hi}"));
        w.seq_range = by_seq;
        w
    }

    /// The parameters of a stream read's statements over versions (`?1`, `?2`: the range;
    /// `?3`: the stream), without the clause text: the statements are made once
    /// (`reads::STREAM_PAGE`), so [`Where::clause`] is not for it.
    pub(crate) fn stream(stream: &str) -> Where {
        Where {
            params: vec![Value::Null, Value::Null, Value::Text(stream.to_owned())],
            ..Where::default()
        }
    }

    /// What the statement reads: `events e`, joined to the first tag's `event_tags` rows in
    /// the seq range when the query has a tag (the `(tag, seq)` key read in seq order, each
    /// event found by its seq, with no temporary index of the tag's seqs).
    pub(crate) fn from(&self) -> String {
        match &self.join {
            Some(j) => format!("events e {j}"),
            None => "events e".to_owned(),
        }
    }

    /// The column a statement over seqs orders by: the driving tag's seq when there is one
    /// (equal to `e.seq`; ordering by it reads the `(tag, seq)` key in order, where ordering by
    /// `e.seq` would sort the range).
    pub(crate) fn seq_key(&self) -> &'static str {
        if self.join.is_some() {
            "t.seq"
        } else {
            "e.seq"
        }
    }

    /// Sets the key range of a [`Where::keyed`] clause.
    pub(crate) fn set_range(&mut self, lo: i64, hi: i64) {
        self.params[0] = Value::Integer(lo);
        self.params[1] = Value::Integer(hi);
    }

    /// A placeholder for `v`.
    pub(crate) fn param(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }

    /// Adds a condition.
    pub(crate) fn and(&mut self, cond: impl Into<String>) {
        self.conds.push(cond.into());
    }

    /// The clause (`1` when there is no condition).
    pub(crate) fn clause(&self) -> String {
        if self.conds.is_empty() {
            "1".to_owned()
        } else {
            self.conds.join(" AND ")
        }
    }

    fn list(&mut self, items: &[String]) -> String {
        let ps: Vec<String> = items.iter().map(|s| self.param(s.clone())).collect();
        ps.join(", ")
    }

    fn has_tag(&mut self, tag: &str) -> String {
        let p = self.param(tag.to_owned());
        if self.seq_range {
            // `?1` and `?2`: the seq range ([`Where::keyed`]); the `(tag, seq)` key finds it.
            format!(
                "e.seq IN (SELECT seq FROM event_tags WHERE tag = {p} AND seq BETWEEN ?1 AND ?2)"
            )
        } else {
            format!("e.seq IN (SELECT seq FROM event_tags WHERE tag = {p})")
        }
    }

    /// Adds the filters of `v` other than seq bounds, cursor, direction and limit.
    pub(crate) fn filters(&mut self, v: &QueryView<'_>) {
        if !v.streams.is_empty() {
            let l = self.list(v.streams);
            self.and(format!("e.stream IN ({l})"));
        }
        if let Some(p) = v.prefix {
            // The range condition lets the (stream, version) index find the start; the
            // substring is the exact test (bytes, as `str::starts_with`).
            let lo = self.param(p.to_owned());
            let blob = self.param(p.as_bytes().to_vec());
            self.and(format!(
                "e.stream >= {lo} AND substr(CAST(e.stream AS BLOB), 1, length({blob})) = {blob}"
            ));
        }
        if !v.types.is_empty() {
            let l = self.list(v.types);
            self.and(format!("e.type IN ({l})"));
        }
        for t in v.tags {
            if self.seq_range && self.join.is_none() {
                let p = self.param(t.clone());
                self.join = Some(format!(
                    "JOIN event_tags t ON t.seq = e.seq AND t.tag = {p} AND t.seq BETWEEN ?1 AND ?2"
                ));
                continue;
            }
            let c = self.has_tag(t);
            self.and(c);
        }
        if !v.items.is_empty() {
            let mut any = Vec::new();
            for item in v.items {
                let mut all = Vec::new();
                if !item.types.is_empty() {
                    let l = self.list(&item.types);
                    all.push(format!("e.type IN ({l})"));
                }
                for t in &item.tags {
                    all.push(self.has_tag(t));
                }
                any.push(format!("({})", all.join(" AND ")));
            }
            self.and(format!("({})", any.join(" OR ")));
        }
        if let Some(t) = v.since {
            let p = self.param(t);
            self.and(format!("e.time >= {p}"));
        }
        if let Some(t) = v.until {
            let p = self.param(t);
            self.and(format!("e.time < {p}"));
        }
        for (key, want) in [
            ("correlation_id", v.correlation),
            ("causation_id", v.causation),
            ("actor", v.actor),
        ] {
            if let Some(w) = want {
                let p = self.param(w.to_owned());
                // The expression is the indexed one (migration 2); `json_type` keeps the
                // comparison to string values, as `Query::matches`.
                self.and(format!(
                    "json_extract(e.meta, '$.{key}') = {p} AND json_type(e.meta, '$.{key}') = 'text'"
                ));
            }
        }
    }
}
