//! Reads as `'static + Send` iterators: [`Pages`] fetches a range of the log (or of one stream)
//! a page at a time by keyset (`seq > last` or `version > last`), on a pooled connection taken
//! for each page. The range's end is fixed when the read begins (at the head seen then), so a
//! read never runs into events appended after it began.
//!
//! It owns the paging; the filters come from `sql.rs`, and it never writes.

use std::collections::VecDeque;

use eventfile::{RecordedEvent, Result};
use postgres::types::ToSql;

use crate::error::pg;
use crate::pool::Pool;
use crate::sql::{COLUMNS, Param, event, pos};

/// Rows fetched per page.
const PAGE: usize = 500;

/// Which column the pages walk.
#[derive(Clone, Copy)]
pub(crate) enum Key {
    Seq,
    Version,
}

impl Key {
    fn column(self) -> &'static str {
        match self {
            Key::Seq => "e.seq",
            Key::Version => "e.version",
        }
    }
}

/// The rows of `WHERE {condition}` with the key in `lo..=hi`, in key order (or reversed), at
/// most `limit`, a page at a time.
pub(crate) struct Pages {
    pool: Pool,
    sql: String,
    params: Vec<Param>,
    /// The exclusive bound the next page starts after (before, backward).
    next: i64,
    remaining: usize,
    buf: VecDeque<RecordedEvent>,
    key: Key,
    done: bool,
}

impl Pages {
    /// A read of `schema`'s events matching `condition` (its parameters `params`, numbered
    /// from 1), the `key` in `lo..=hi`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        pool: Pool,
        schema: &str,
        condition: &str,
        mut params: Vec<Param>,
        key: Key,
        (lo, hi): (u64, u64),
        backward: bool,
        limit: Option<usize>,
    ) -> Pages {
        let col = key.column();
        let lo = pos(lo.max(1));
        let hi = pos(hi);
        params.push(Box::new(if backward { lo } else { hi }));
        let end = params.len();
        let cursor = end + 1;
        let (cmp, end_cmp, order) = if backward {
            ("<", ">=", "DESC")
        } else {
            (">", "<=", "ASC")
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM {schema}.events e WHERE {condition} \
             AND {col} {end_cmp} ${end} AND {col} {cmp} ${cursor} ORDER BY {col} {order} LIMIT $"
        );
        let sql = format!("{sql}{}", cursor + 1);
        Pages {
            pool,
            sql,
            params,
            next: if backward {
                hi.saturating_add(1)
            } else {
                lo - 1
            },
            remaining: limit.unwrap_or(usize::MAX),
            buf: VecDeque::new(),
            key,
            done: lo > hi,
        }
    }

    fn fetch(&mut self) -> Result<()> {
        let want = self.remaining.min(PAGE);
        let limit = want as i64;
        let mut refs: Vec<&(dyn ToSql + Sync)> = self
            .params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect();
        refs.push(&self.next);
        refs.push(&limit);
        let rows = self.pool.get()?.query(&self.sql, &refs).map_err(pg)?;
        if rows.len() < want {
            self.done = true;
        }
        for row in &rows {
            let e = event(row)?;
            self.next = pos(match self.key {
                Key::Seq => e.seq,
                Key::Version => e.version,
            });
            self.buf.push_back(e);
        }
        if rows.is_empty() {
            self.done = true;
        }
        Ok(())
    }
}

impl Iterator for Pages {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        if self.buf.is_empty()
            && !self.done
            && let Err(e) = self.fetch()
        {
            self.done = true;
            return Some(Err(e));
        }
        let e = self.buf.pop_front()?;
        self.remaining -= 1;
        Some(Ok(e))
    }
}
