//! Reads as `'static + Send` iterators: [`Pages`] fetches a range of the log (or of one stream)
//! a page at a time by keyset (`seq > last` or `version > last`), on a pooled connection taken
//! for each page.
//!
//! The first page is fetched when the read begins, in one statement with what fixes the read's
//! range (the head, or the stream's version and deletion): a [`First`] row `UNION ALL` the page,
//! so the bound and the first events come from one snapshot in one round trip, and the page is
//! planned exactly as it would be alone (a join to the row would put it inside a nested loop).
//! The range's end is then fixed at that bound, so a read never runs into events appended after
//! it began.
//!
//! A statement is prepared once per connection and its plan kept when one plan serves every
//! value: a stream's pages (its `(stream, version)` index), and a query's first page when the
//! query bounds no seq range (the page then has no range condition, whose selectivity a kept
//! plan would have to guess, and its limit is written in the statement). Other pages are sent
//! with their values and planned for them, in one round trip.
//!
//! It owns the paging; the filters come from `sql.rs`, and it never writes.

use std::collections::VecDeque;

use eventfile::{RecordedEvent, Result};
use postgres::Row;
use postgres::types::{ToSql, Type};

use crate::error::pg;
use crate::pool::{Conn, Pool};
use crate::sql::{EVENT_COLUMNS, EVENT_NULLS, Param, event, event_at, pos, typed};

/// Events fetched per page (a statement asks for one more, to learn whether the range goes on
/// without a further round trip).
const PAGE: usize = 1000;

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

    fn of(self, e: &RecordedEvent) -> u64 {
        match self {
            Key::Seq => e.seq,
            Key::Version => e.version,
        }
    }
}

/// What the first page's statement reads beside its events: `row`, a one-row `SELECT` of
/// `columns` columns, which come first in every returned row (NULL in the events' rows); `bound`,
/// a condition on `e` the first page adds (it may not refer to `row`). With `prepared`, every
/// page's statement is prepared once per connection and its generic plan kept (for a read with
/// one good plan); without, only a first page with no range condition is.
pub(crate) struct First<'a> {
    pub(crate) row: &'a str,
    pub(crate) columns: usize,
    pub(crate) bound: Option<&'a str>,
    pub(crate) prepared: bool,
}

/// The rows of `WHERE {condition}` with the key in `lo..=hi`, in key order (or reversed), at
/// most `limit`, a page at a time.
pub(crate) struct Pages {
    pool: Pool,
    sql: String,
    params: Vec<Param>,
    /// The inclusive bound the pages end at (below, backward).
    end: i64,
    /// The exclusive bound the next page starts after (before, backward).
    next: i64,
    remaining: usize,
    buf: VecDeque<RecordedEvent>,
    key: Key,
    backward: bool,
    prepared: bool,
    done: bool,
}

impl Pages {
    /// A read of `schema`'s events matching `condition` (its parameters `params`, numbered
    /// from 1), the `key` in `lo..=hi` and within `first.bound`, its first page fetched on
    /// `conn` now. Returns the pages and `first.row`'s values (the row's first
    /// `first.columns` columns): the caller narrows the range with them ([`Pages::narrow`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        pool: Pool,
        conn: &mut Conn,
        schema: &str,
        condition: &str,
        params: Vec<Param>,
        key: Key,
        (lo, hi): (u64, u64),
        backward: bool,
        limit: Option<usize>,
        first: First<'_>,
    ) -> Result<(Pages, Row)> {
        let col = key.column();
        let unbounded = lo <= 1 && hi == u64::MAX;
        let lo = pos(lo.max(1));
        let hi = pos(hi);
        let n = params.len();
        let (end, cursor, lim) = (n + 1, n + 2, n + 3);
        let (cmp, end_cmp, order) = if backward {
            ("<", ">=", "DESC")
        } else {
            (">", "<=", "ASC")
        };
        let range = format!(" AND {col} {end_cmp} ${end} AND {col} {cmp} ${cursor}");
        // A page's statement; `nulls` before the events' columns, for the first page's.
        let page = |nulls: &str, bound: &str, range: &str, limit: &str| {
            format!(
                "SELECT {nulls}{EVENT_COLUMNS} FROM {schema}.events e \
                 WHERE {condition}{bound}{range} ORDER BY {col} {order} LIMIT {limit}"
            )
        };
        let sql = page("", "", &range, &format!("${lim}"));
        let mut pages = Pages {
            pool,
            sql,
            params,
            end: if backward { lo } else { hi },
            next: if backward {
                hi.saturating_add(1)
            } else {
                lo - 1
            },
            remaining: limit.unwrap_or(usize::MAX),
            buf: VecDeque::new(),
            key,
            backward,
            prepared: first.prepared,
            done: lo > hi,
        };
        let want = pages.remaining.min(PAGE);
        let bound = first.bound.map(|b| format!(" AND {b}")).unwrap_or_default();
        // A query's first page over the whole log, a full page: one plan serves every value.
        let plain = !first.prepared && unbounded && want == PAGE;
        let nulls = "NULL, ".repeat(first.columns);
        let first_page = if plain {
            page(&nulls, &bound, "", &(PAGE + 1).to_string())
        } else {
            page(&nulls, &bound, &range, &format!("${lim}"))
        };
        let first_sql = format!(
            "SELECT o.*, {EVENT_NULLS} FROM ({row}) o UNION ALL ({first_page})",
            row = first.row,
        );
        let rows = if plain {
            let refs = typed(&pages.params);
            let (values, types): (Vec<&(dyn ToSql + Sync)>, Vec<Type>) = refs.into_iter().unzip();
            conn.query_cached_typed(&first_sql, &values, &types)
                .map_err(pg)?
        } else {
            pages.run(conn, &first_sql, want)?
        };
        // The first row's columns, and the page's events (a row whose first event column is
        // NULL is the first row).
        let mut first_row = None;
        let mut events = Vec::with_capacity(rows.len());
        for r in rows {
            if r.try_get::<_, Option<i64>>(first.columns)
                .map_err(pg)?
                .is_some()
            {
                events.push(event_at(&r, first.columns)?);
            } else {
                first_row = Some(r);
            }
        }
        let row = first_row
            .ok_or_else(|| crate::error::database("a read's first statement returned no row"))?;
        pages.keep(events, want);
        Ok((pages, row))
    }

    /// Ends the range at `lo..=hi` as well (what the first row fixed); the first page already
    /// kept within it.
    pub(crate) fn narrow(&mut self, lo: u64, hi: u64) {
        let (lo, hi) = (pos(lo.max(1)), pos(hi));
        if self.backward {
            self.end = self.end.max(lo);
        } else {
            self.end = self.end.min(hi);
        }
        if lo > hi {
            self.done = true;
            self.buf.clear();
        }
    }

    /// The rows of `sql` for the next `want` events after the cursor, and one more if there.
    fn run(&self, conn: &mut Conn, sql: &str, want: usize) -> Result<Vec<Row>> {
        let limit = want.saturating_add(1) as i64;
        let mut refs = typed(&self.params);
        refs.push((&self.end, Type::INT8));
        refs.push((&self.next, Type::INT8));
        refs.push((&limit, Type::INT8));
        if self.prepared {
            let (values, types): (Vec<&(dyn ToSql + Sync)>, Vec<Type>) = refs.into_iter().unzip();
            conn.query_cached_typed(sql, &values, &types).map_err(pg)
        } else {
            conn.query_typed(sql, &refs).map_err(pg)
        }
    }

    /// Buffers the first `want` of a page's `events` (`want + 1` of them: the range goes on),
    /// moving the cursor past them.
    fn keep(&mut self, mut events: Vec<RecordedEvent>, want: usize) {
        // The statement orders the page; this keeps the order whatever plan ran it (a first
        // page's rows come through a join).
        let key = self.key;
        let ordered = if self.backward {
            events.is_sorted_by(|a, b| key.of(a) > key.of(b))
        } else {
            events.is_sorted_by(|a, b| key.of(a) < key.of(b))
        };
        if !ordered {
            events.sort_unstable_by_key(|e| key.of(e));
            if self.backward {
                events.reverse();
            }
        }
        if events.len() > want {
            events.truncate(want);
        } else {
            self.done = true;
        }
        if let Some(last) = events.last() {
            self.next = pos(key.of(last));
        } else {
            self.done = true;
        }
        if self.buf.is_empty() {
            // Takes the page's allocation as it is, rather than copying every event.
            self.buf = VecDeque::from(events);
        } else {
            self.buf.extend(events);
        }
    }

    fn fetch(&mut self) -> Result<()> {
        let want = self.remaining.min(PAGE);
        let mut conn = self.pool.get()?;
        let rows = self.run(&mut conn, &self.sql, want)?;
        drop(conn);
        let events = rows.iter().map(event).collect::<Result<Vec<_>>>()?;
        self.keep(events, want);
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
