//! Reads: queries, stream reads and the global log as iterators that fetch pages of rows by
//! keyset (on seq, or on version for a stream), each page on a pooled read connection, never
//! past the head seen when the read began; and counts and listings as single statements.
//!
//! This module owns every `SELECT` of events for a caller; it never writes.

use std::collections::VecDeque;
use std::sync::Arc;

use eventfile::backend::{self, QueryView};
use eventfile::{Direction, EventIter, Query, RecordedEvent, Result, StreamInfo, TermCount};
use rusqlite::types::Value;

use crate::connection::Sql;
use crate::rows::{self, COLUMNS, LIVE, int};
use crate::sql::Where;
use crate::store::Inner;

/// Rows fetched per page.
const PAGE: usize = 256;

/// A read in progress: the statement's fixed part, the keyset position, what is left.
pub(crate) struct Pages {
    inner: Arc<Inner>,
    /// `SELECT ... WHERE <filters>`; a page adds the keyset condition, order and limit.
    base: String,
    params: Vec<Value>,
    /// `e.seq` or `e.version`.
    key: &'static str,
    backward: bool,
    /// The last key returned (exclusive bound of the next page).
    at: i64,
    remaining: usize,
    buf: VecDeque<RecordedEvent>,
    done: bool,
}

impl Pages {
    fn fetch(&mut self) -> Result<()> {
        let take = self.remaining.min(PAGE);
        let mut params = self.params.clone();
        params.push(Value::Integer(self.at));
        params.push(Value::Integer(i64::try_from(take).unwrap_or(i64::MAX)));
        let n = params.len();
        let (op, dir) = if self.backward {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let sql = format!(
            "{} AND {} {op} ?{} ORDER BY {} {dir} LIMIT ?{n}",
            self.base,
            self.key,
            n - 1,
            self.key
        );
        let path = self.inner.path.clone();
        let raws = self.inner.pool.with(|c| {
            let mut stmt = c.prepare_cached(&sql).sql(&path)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params.iter()), rows::raw_row)
                .sql(&path)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().sql(&path)
        })?;
        if raws.len() < take {
            self.done = true;
        }
        for raw in raws {
            let (e, _) = raw.decode(&path)?;
            self.at = int(if self.key == "e.seq" {
                e.seq
            } else {
                e.version
            });
            self.buf.push_back(e);
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
            self.remaining = 0;
            return Some(Err(e));
        }
        let e = self.buf.pop_front()?;
        self.remaining -= 1;
        Some(Ok(e))
    }
}

/// The filters of `v`, events live at `head` only, with seqs in `lo..=hi`.
fn selection(v: &QueryView<'_>, lo: u64, hi: u64, head: u64) -> Where {
    let mut w = Where::new();
    w.filters(v);
    let lo = w.param(int(lo));
    let hi = w.param(int(hi));
    w.and(format!("e.seq BETWEEN {lo} AND {hi}"));
    let live = rows::live_at(&mut w, head);
    w.and(live);
    w
}

impl Inner {
    /// The events `query` selects, and the head they are read up to.
    pub(crate) fn run(self: &Arc<Self>, query: &Query) -> Result<(EventIter, u64)> {
        query.validate()?;
        backend::check_cursor(query, &self.store_id)?;
        let head = self.read_head()?;
        let v = backend::view(query);
        let (lo, hi) = backend::seq_bounds(query, head);
        let w = selection(&v, lo, hi, head);
        let pages = Pages {
            inner: Arc::clone(self),
            base: format!("SELECT {COLUMNS} FROM events e WHERE {}", w.clause()),
            params: w.params,
            key: "e.seq",
            backward: v.backward,
            at: if v.backward {
                int(hi).saturating_add(1)
            } else {
                int(lo) - 1
            },
            remaining: v.limit.unwrap_or(usize::MAX),
            buf: VecDeque::new(),
            done: lo > hi,
        };
        Ok((Box::new(pages), head))
    }

    /// Reads one stream (see `EventStore::read_stream`).
    pub(crate) fn stream(
        self: &Arc<Self>,
        stream: &str,
        backward: bool,
        from: Option<u64>,
        limit: Option<usize>,
    ) -> Result<EventIter> {
        eventfile::validate_stream(stream)?;
        let path = &self.path;
        let (deleted, version) = self.pool.with(|c| {
            let tx = c.unchecked_transaction().sql(path)?;
            let d = rows::deletion(&tx, path, stream)?;
            let v = rows::stream_version(&tx, path, stream)?;
            Ok((d, v))
        })?;
        backend::check_tombstone(stream, deleted)?;
        let before = deleted.map_or(1, |d| d.before);
        let (lo, hi) = if backward {
            (before, from.unwrap_or(u64::MAX).min(version))
        } else {
            (from.unwrap_or(1).max(before), version)
        };
        let mut w = Where::new();
        let s = w.param(stream.to_owned());
        let l = w.param(int(lo));
        let h = w.param(int(hi));
        w.and(format!("e.stream = {s} AND e.version BETWEEN {l} AND {h}"));
        Ok(Box::new(Pages {
            inner: Arc::clone(self),
            base: format!("SELECT {COLUMNS} FROM events e WHERE {}", w.clause()),
            params: w.params,
            key: "e.version",
            backward,
            at: if backward {
                int(hi).saturating_add(1)
            } else {
                int(lo) - 1
            },
            remaining: limit.unwrap_or(usize::MAX),
            buf: VecDeque::new(),
            done: lo > hi,
        }))
    }

    /// How many live events `query` selects (its limit ignored).
    pub(crate) fn count(&self, query: &Query) -> Result<u64> {
        query.validate()?;
        backend::check_cursor(query, &self.store_id)?;
        let path = &self.path;
        self.pool.with(|c| {
            let tx = c.unchecked_transaction().sql(path)?;
            let head = rows::head(&tx, path)?;
            let (lo, hi) = backend::seq_bounds(query, head);
            if lo > hi {
                return Ok(0);
            }
            let w = selection(&backend::view(query), lo, hi, head);
            let n: i64 = tx
                .prepare_cached(&format!(
                    "SELECT count(*) FROM events e WHERE {}",
                    w.clause()
                ))
                .sql(path)?
                .query_row(rusqlite::params_from_iter(w.params.iter()), |r| r.get(0))
                .sql(path)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    /// The live event with this id.
    pub(crate) fn get_event(&self, id: &str) -> Result<Option<RecordedEvent>> {
        eventfile::validate_id(id)?;
        let path = &self.path;
        self.pool.with(|c| {
            let raw = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM events e WHERE e.id = ?1 AND {LIVE}"
                ))
                .sql(path)?
                .query_row([id], rows::raw_row);
            match raw {
                Ok(r) => Ok(Some(r.decode(path)?.0)),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(e).sql(path),
            }
        })
    }

    /// The newest visible seq, read from the file (another process may have appended).
    pub(crate) fn read_head(&self) -> Result<u64> {
        let head = self.pool.with(|c| rows::head(c, &self.path))?;
        self.watch.advance(head);
        Ok(head)
    }

    /// A stream's version.
    pub(crate) fn version(&self, stream: &str) -> Result<u64> {
        self.pool
            .with(|c| rows::stream_version(c, &self.path, stream))
    }

    /// Streams with a live event, by prefix, in pages.
    pub(crate) fn streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>> {
        let mut w = Where::new();
        w.filters(&backend::view(&Query::new().prefix(prefix)));
        if let Some(a) = after {
            let p = w.param(a.to_owned());
            w.and(format!("e.stream > {p}"));
        }
        let lim = w.param(i64::try_from(limit).unwrap_or(i64::MAX));
        // A deletion removes a prefix of a stream: it holds a live event if its last is live.
        let sql = format!(
            "SELECT e.stream, max(e.version) AS v FROM events e WHERE {} GROUP BY e.stream \
             HAVING v >= coalesce((SELECT max(deleted_before) FROM deletions d \
             WHERE d.stream = e.stream), 1) ORDER BY e.stream LIMIT {lim}",
            w.clause()
        );
        let path = &self.path;
        self.pool.with(|c| {
            let mut stmt = c.prepare_cached(&sql).sql(path)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(w.params.iter()), |r| {
                    Ok(StreamInfo {
                        stream: r.get(0)?,
                        version: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    })
                })
                .sql(path)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().sql(path)
        })
    }

    /// Live event counts per type (`tags`: per tag), in name order, after `after`.
    pub(crate) fn terms(
        &self,
        tags: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TermCount>> {
        let (col, from) = if tags {
            ("t.tag", "event_tags t JOIN events e ON e.seq = t.seq")
        } else {
            ("e.type", "events e")
        };
        let mut w = Where::new();
        w.and(LIVE);
        if let Some(a) = after {
            let p = w.param(a.to_owned());
            w.and(format!("{col} > {p}"));
        }
        let lim = w.param(i64::try_from(limit).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT {col}, count(*) FROM {from} WHERE {} GROUP BY {col} ORDER BY {col} LIMIT {lim}",
            w.clause()
        );
        let path = &self.path;
        self.pool.with(|c| {
            let mut stmt = c.prepare_cached(&sql).sql(path)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(w.params.iter()), |r| {
                    Ok(TermCount {
                        name: r.get(0)?,
                        count: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    })
                })
                .sql(path)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().sql(path)
        })
    }
}

/// The read [`EventStore::read_all`](eventfile::EventStore::read_all) makes: the file store's.
pub(crate) fn read_all_query(
    direction: Direction,
    from: Option<u64>,
    limit: Option<usize>,
) -> Query {
    let mut q = Query::new().direction(direction);
    if let Some(from) = from {
        q = match direction {
            Direction::Forward => q.from_seq(from),
            Direction::Backward => q.to_seq(from),
        };
    }
    if let Some(n) = limit {
        q = q.limit(n);
    }
    q
}
