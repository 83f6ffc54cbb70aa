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

use eventfile::{RecordedEvent, Result};
use postgres::Row;
use postgres::types::{ToSql, Type};

use crate::error::pg;
use crate::pool::{Conn, Pool};
use crate::sql::{EVENT_COLUMNS, EVENT_NULLS, Param, STREAM_EVENT_COLUMNS, event_of, pos, typed};

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

    /// The key of the event in `row`'s columns from `base` on (the column is never NULL in
    /// an event's row; a row that breaks that sorts first and fails to decode).
    fn of(self, row: &Row, base: usize) -> i64 {
        let at = match self {
            Key::Seq => base,
            Key::Version => base + 3,
        };
        row.try_get::<_, i64>(at).unwrap_or(i64::MIN)
    }
}

/// What the first page's statement reads beside its events: `row`, a one-row `SELECT` of
/// `columns` columns, which come first in every returned row (NULL in the events' rows), or, with
/// `columns` 0, a row of the events' columns and types whose first (the seq) is NULL; `bound`,
/// a condition on `e` the first page adds (it may not refer to `row`). With `prepared`, every
/// page's statement is prepared once per connection and its generic plan kept (for a read with
/// one good plan); without, only a first page with no range condition is.
pub(crate) struct First<'a> {
    /// The stream every event belongs to, for a stream's read: its statements select
    /// [`STREAM_EVENT_COLUMNS`] (its name not sent back).
    pub(crate) stream: Option<&'a str>,
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
    /// The page's rows not handed out yet, each decoded into its event only when the caller
    /// asks for it: a page of decoded events was one more buffer of every event (160 bytes
    /// each) between the rows and the caller's, and one more move of each.
    buf: std::vec::IntoIter<Row>,
    /// The column of `buf`'s rows where the event begins (after the first row's columns in the
    /// first page's rows).
    base: usize,
    key: Key,
    /// The stream of every row ([`First::stream`]).
    stream: Option<String>,
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
        let columns = if first.stream.is_some() {
            STREAM_EVENT_COLUMNS
        } else {
            EVENT_COLUMNS
        };
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
                "SELECT {nulls}{columns} FROM {schema}.events e \
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
            buf: Vec::new().into_iter(),
            base: first.columns,
            key,
            stream: first.stream.map(str::to_owned),
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
        let first_sql = if first.columns == 0 {
            format!("({row}) UNION ALL ({first_page})", row = first.row)
        } else {
            format!(
                "SELECT o.*, {EVENT_NULLS} FROM ({row}) o UNION ALL ({first_page})",
                row = first.row,
            )
        };
        let rows = if plain {
            let refs = typed(&pages.params);
            let (values, types): (Vec<&(dyn ToSql + Sync)>, Vec<Type>) = refs.into_iter().unzip();
            conn.query_cached_typed(&first_sql, &values, &types)
                .map_err(pg)?
        } else {
            pages.run(conn, &first_sql, want)?
        };
        // The first row's columns (the row whose first event column is NULL: the first of the
        // `UNION ALL`'s rows, but found wherever it is), and the page's events.
        let mut rows = rows;
        let mut at = None;
        for (i, r) in rows.iter().enumerate() {
            if r.try_get::<_, Option<i64>>(first.columns)
                .map_err(pg)?
                .is_none()
            {
                at = Some(i);
                break;
            }
        }
        let at =
            at.ok_or_else(|| crate::error::database("a read's first statement returned no row"))?;
        // Removing the first element moves no row after it (the rows are handed out from
        // the second on); elsewhere, the rows after it shift down.
        let row = if at == 0 {
            let mut it = rows.into_iter();
            let row = it.next();
            pages.keep(it, want);
            row
        } else {
            let row = rows.remove(at);
            pages.keep(rows.into_iter(), want);
            Some(row)
        };
        let row = row.ok_or_else(|| crate::error::database("a read's first row went missing"))?;
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
            self.buf = Vec::new().into_iter();
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

    /// Buffers the first `want` of a page's event rows (`want + 1` of them: the range goes
    /// on), their columns from `self.base` on, moving the cursor past them. The buffer is empty
    /// when a page comes (`next` fetches only then).
    fn keep(&mut self, mut rows: std::vec::IntoIter<Row>, want: usize) {
        let (key, base) = (self.key, self.base);
        // The statement orders the page; this keeps the order whatever plan ran it (a first
        // page's rows come through a `UNION ALL`). Each key is read once.
        let keys = rows.as_slice().iter().map(|r| key.of(r, base));
        let ordered = if self.backward {
            keys.is_sorted_by(|a, b| a > b)
        } else {
            keys.is_sorted_by(|a, b| a < b)
        };
        if !ordered {
            let mut v: Vec<Row> = rows.collect();
            v.sort_by_cached_key(|r| key.of(r, base));
            if self.backward {
                v.reverse();
            }
            rows = v.into_iter();
        }
        if rows.len() > want {
            // The rows past `want` only told that the range goes on.
            rows.nth_back(rows.len() - want - 1);
        } else {
            self.done = true;
        }
        match rows.as_slice().last() {
            Some(last) => self.next = key.of(last, base),
            None => self.done = true,
        }
        self.buf = rows;
    }

    fn fetch(&mut self) -> Result<()> {
        let want = self.remaining.min(PAGE);
        let mut conn = self.pool.get()?;
        let rows = self.run(&mut conn, &self.sql, want)?;
        drop(conn);
        // Later pages' statements select the events' columns alone.
        self.base = 0;
        self.keep(rows.into_iter(), want);
        Ok(())
    }
}

impl Iterator for Pages {
    type Item = Result<RecordedEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        if self.buf.len() == 0
            && !self.done
            && let Err(e) = self.fetch()
        {
            self.done = true;
            return Some(Err(e));
        }
        let row = self.buf.next()?;
        self.remaining -= 1;
        let e = event_of(&row, self.base, self.stream.as_deref());
        if e.is_err() {
            // A row that does not decode ends the read: nothing after it is handed out.
            self.remaining = 0;
        }
        Some(e)
    }

    /// At least the buffered events, at most the limit (so a caller may reserve room; note
    /// that `collect::<Result<Vec<_>>>` takes no lower bound from any iterator).
    fn size_hint(&self) -> (usize, Option<usize>) {
        eventfile::backend::paged_size_hint(self.buf.len(), self.remaining, self.done)
    }
}
