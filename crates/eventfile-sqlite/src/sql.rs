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
}

impl Where {
    pub(crate) fn new() -> Where {
        Where::default()
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
        format!("e.seq IN (SELECT seq FROM event_tags WHERE tag = {p})")
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
