//! Reads: queries, stream reads and the global log as iterators that fetch pages of rows by
//! keyset (on seq, or on version for a stream), each page on a pooled read connection (the
//! first in one transaction with the read's lookups), never past the head seen when the read
//! began; and counts and listings as single statements.
//!
//! This module owns every `SELECT` of events for a caller; it never writes.

use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use eventfile::backend::{self, QueryView};
use eventfile::{EventIter, Query, RecordedEvent, Result, StreamInfo, TermCount};
use rusqlite::Connection;
use rusqlite::types::Value;

use crate::connection::Sql;
use crate::rows::{self, COLUMNS, LIVE, int};
use crate::sql::Where;
use crate::store::Inner;

/// Rows fetched per page.
const PAGE: usize = 256;

/// Runs `f` in one read transaction on `c`: its statements see one snapshot of the file. The
/// `BEGIN` and `COMMIT` are cached statements (`execute_batch` would parse them each time).
///
/// The connection goes back to the pool never with a transaction left open, whatever `f`
/// does: a guard rolls back what is still open, on an error and on a panic (a pooled
/// connection left inside a transaction saw a frozen snapshot, failed every later `BEGIN`, and
/// kept the WAL from being checkpointed). A transaction left open before (no `BEGIN` can then
/// succeed) is rolled back too.
fn snapshot<T>(c: &Connection, path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    struct Closed<'c>(&'c Connection);
    impl Drop for Closed<'_> {
        fn drop(&mut self) {
            if !self.0.is_autocommit() {
                let _ = self.0.execute_batch("ROLLBACK");
            }
        }
    }
    let closed = Closed(c);
    c.prepare_cached("BEGIN").sql(path)?.execute([]).sql(path)?;
    let out = f();
    let end = c
        .prepare_cached(if out.is_ok() { "COMMIT" } else { "ROLLBACK" })
        .and_then(|mut s| s.execute([]));
    drop(closed);
    let v = out?;
    end.sql(path)?;
    Ok(v)
}

/// A read in progress: its statement, the keys left to read, what is left. The first page is
/// read when the read begins (in the transaction of its lookups), the others on demand.
pub(crate) struct Pages {
    inner: Arc<Inner>,
    /// `SELECT ... WHERE <key> BETWEEN ?1 AND ?2 AND <filters> ORDER BY <key> LIMIT ?n+1`
    /// (a stream read's: [`STREAM_PAGE`], made once).
    sql: Cow<'static, str>,
    /// The stream every row belongs to, for a stream read (its statement selects
    /// [`rows::STREAM_COLUMNS`]).
    stream: Option<String>,
    /// The statement's parameters but the limit: a page sets the key range (`?1`, `?2`).
    w: Where,
    /// The key is the seq (else the version, for a stream).
    by_seq: bool,
    backward: bool,
    /// The keys not read yet: `lo..=hi`. Each page narrows it past the keys it returned, so
    /// the next page's index search starts where the last ended (keyset paging).
    lo: i64,
    hi: i64,
    remaining: usize,
    /// The page's events not handed out yet, in order: the page's vector, consumed in place
    /// (each event moved once, from the row into the vector, then to the caller).
    buf: std::vec::IntoIter<RecordedEvent>,
    done: bool,
}

impl Pages {
    /// A read of the events of `w` (made by [`Where::keyed`] with the same `by_seq`) with keys in
    /// `lo..=hi`, at most `limit`, and its first page, read on `c` (the connection, and
    /// transaction, of the read's lookups).
    fn start(
        inner: &Arc<Inner>,
        c: &Connection,
        w: Where,
        by_seq: bool,
        backward: bool,
        (lo, hi): (u64, u64),
        limit: Option<usize>,
    ) -> Result<Pages> {
        let key = if by_seq { w.seq_key() } else { "e.version" };
        let dir = if backward { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE {} ORDER BY {key} {dir} LIMIT ?{}",
            w.from(),
            w.clause(),
            w.params.len() + 1
        );
        Pages::open(
            inner,
            c,
            w,
            sql.into(),
            None,
            by_seq,
            backward,
            (lo, hi),
            limit,
        )
    }

    /// The read of [`Pages::start`], its page statement `sql` (of [`rows::STREAM_COLUMNS`]
    /// with `stream`), and its first page, read on `c`.
    #[allow(clippy::too_many_arguments)]
    fn open(
        inner: &Arc<Inner>,
        c: &Connection,
        w: Where,
        sql: Cow<'static, str>,
        stream: Option<String>,
        by_seq: bool,
        backward: bool,
        (lo, hi): (u64, u64),
        limit: Option<usize>,
    ) -> Result<Pages> {
        let remaining = limit.unwrap_or(usize::MAX);
        let mut pages = Pages {
            inner: Arc::clone(inner),
            sql,
            stream,
            w,
            by_seq,
            backward,
            lo: int(lo),
            hi: int(hi),
            remaining,
            buf: Vec::new().into_iter(),
            done: lo > hi || remaining == 0,
        };
        if !pages.done {
            pages.fetch_on(c)?;
        }
        Ok(pages)
    }

    /// Reads the next page on `c`, once the last is handed out (`buf` is replaced).
    fn fetch_on(&mut self, c: &Connection) -> Result<()> {
        debug_assert_eq!(
            self.buf.len(),
            0,
            "a page fetched before the last was handed out"
        );
        let path = &self.inner.path;
        let take = self.remaining.min(PAGE);
        self.w.set_range(self.lo, self.hi);
        let limit = [Value::Integer(i64::try_from(take).unwrap_or(i64::MAX))];
        let mut buf = Vec::new();
        if !self.by_seq {
            // A stream's versions have no gaps: the page holds at most `hi - lo + 1` rows, and
            // its buffer is sized once instead of doubling.
            let span = usize::try_from(self.hi.saturating_sub(self.lo)).unwrap_or(usize::MAX);
            buf.reserve_exact(take.min(span.saturating_add(1)));
        }
        let mut stmt = c.prepare_cached(&self.sql).sql(path)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(
                self.w.params.iter().chain(limit.iter()),
            ))
            .sql(path)?;
        while let Some(r) = rows.next().sql(path)? {
            let e = rows::event_from_row_of(r, path, self.stream.as_deref())?;
            let key = int(if self.by_seq { e.seq } else { e.version });
            if self.backward {
                self.hi = key.saturating_sub(1);
            } else {
                self.lo = key.saturating_add(1);
            }
            buf.push(e);
        }
        let got = buf.len();
        self.buf = buf.into_iter();
        if got < take || self.lo > self.hi {
            self.done = true;
        }
        Ok(())
    }

    /// Reads the next page on a pooled connection.
    fn fetch(&mut self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        inner.pool.with(|c| self.fetch_on(c))
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
            self.remaining = 0;
            return Some(Err(e));
        }
        let e = self.buf.next()?;
        self.remaining -= 1;
        Some(Ok(e))
    }

    /// At least the buffered events (so `collect` sizes its vector), at most the limit.
    fn size_hint(&self) -> (usize, Option<usize>) {
        backend::paged_size_hint(self.buf.len(), self.remaining, self.done)
    }
}

/// A stream read's page statement, forward (`[0]`) and backward (`[1]`), over
/// [`Where::stream`]'s parameters, made once; the stream's name is not read back
/// ([`rows::STREAM_COLUMNS`]).
static STREAM_PAGE: LazyLock<[String; 2]> = LazyLock::new(|| {
    ["ASC", "DESC"].map(|dir| {
        format!(
            "SELECT {} FROM events e WHERE e.version BETWEEN ?1 AND ?2 \
             AND e.stream = ?3 ORDER BY e.version {dir} LIMIT ?4",
            rows::STREAM_COLUMNS
        )
    })
});

/// The filters of `v` over a seq range (`?1`, `?2`: [`Where::keyed`]), events live at `head`
/// only.
fn selection(v: &QueryView<'_>, head: u64) -> Where {
    let mut w = Where::keyed(true);
    w.filters(v);
    let live = rows::live_at(&mut w, head);
    w.and(live);
    w
}

impl Inner {
    /// The events `query` selects, and the head they are read up to. The head and the first
    /// page are read in one transaction, on one pooled connection.
    pub(crate) fn run(self: &Arc<Self>, query: &Query) -> Result<(EventIter, u64)> {
        query.validate()?;
        backend::check_cursor(query, &self.store_id)?;
        let v = backend::view(query);
        let path = &self.path;
        let (pages, head) = self.pool.with(|c| {
            snapshot(c, path, || {
                let head = rows::head(c, path)?;
                let bounds = backend::seq_bounds(query, head);
                let w = selection(&v, head);
                let pages = Pages::start(self, c, w, true, v.backward, bounds, v.limit)?;
                Ok((pages, head))
            })
        })?;
        self.watch.advance(head);
        Ok((Box::new(pages), head))
    }

    /// Reads one stream (see `EventStore::read_stream`): its deletion state, its version and
    /// the first page in one transaction, on one pooled connection.
    pub(crate) fn stream(
        self: &Arc<Self>,
        stream: &str,
        backward: bool,
        from: Option<u64>,
        limit: Option<usize>,
    ) -> Result<EventIter> {
        eventfile::validate_stream(stream)?;
        let path = &self.path;
        let pages = self.pool.with(|c| {
            snapshot(c, path, || {
                let (deleted, version) = rows::stream_state(c, path, stream)?;
                backend::check_tombstone(stream, deleted)?;
                let before = deleted.map_or(1, |d| d.before);
                let (lo, hi) = if backward {
                    (before, from.unwrap_or(u64::MAX).min(version))
                } else {
                    (from.unwrap_or(1).max(before), version)
                };
                let sql = Cow::Borrowed(STREAM_PAGE[usize::from(backward)].as_str());
                Pages::open(
                    self,
                    c,
                    Where::stream(stream),
                    sql,
                    Some(stream.to_owned()),
                    false,
                    backward,
                    (lo, hi),
                    limit,
                )
            })
        })?;
        Ok(Box::new(pages))
    }

    /// How many live events `query` selects (its limit ignored).
    pub(crate) fn count(&self, query: &Query) -> Result<u64> {
        query.validate()?;
        backend::check_cursor(query, &self.store_id)?;
        let path = &self.path;
        self.pool.with(|c| {
            snapshot(c, path, || {
                let head = rows::head(c, path)?;
                let (lo, hi) = backend::seq_bounds(query, head);
                if lo > hi {
                    return Ok(0);
                }
                let mut w = selection(&backend::view(query), head);
                w.set_range(int(lo), int(hi));
                let n: i64 = c
                    .prepare_cached(&format!(
                        "SELECT count(*) FROM {} WHERE {}",
                        w.from(),
                        w.clause()
                    ))
                    .sql(path)?
                    .query_row(rusqlite::params_from_iter(w.params.iter()), |r| r.get(0))
                    .sql(path)?;
                Ok(u64::try_from(n).unwrap_or(0)) // count(*) is never negative
            })
        })
    }

    /// The live event with this id.
    pub(crate) fn get_event(&self, id: &str) -> Result<Option<RecordedEvent>> {
        eventfile::validate_id(id)?;
        let path = &self.path;
        self.pool.with(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM events e WHERE e.id = ?1 AND {LIVE}"
                ))
                .sql(path)?;
            let mut rows = stmt.query([id]).sql(path)?;
            match rows.next().sql(path)? {
                Some(r) => Ok(Some(rows::event_from_row(r, path)?)),
                None => Ok(None),
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
                        version: r.get(1)?,
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
                        count: r.get(1)?,
                    })
                })
                .sql(path)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().sql(path)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read that panics inside its transaction leaves the connection outside any: it goes
    /// back to the pool, and was once handed out still in the old snapshot (every later
    /// `BEGIN` failing, the WAL never checkpointed).
    #[test]
    fn a_read_that_panics_leaves_no_transaction_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ev.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE t (x)").unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            snapshot(&c, &path, || -> Result<()> {
                c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                    .unwrap();
                panic!("a bug in a read")
            })
        }));
        assert!(panicked.is_err());
        assert!(c.is_autocommit(), "the read's transaction is still open");
        snapshot(&c, &path, || Ok(())).unwrap();
    }
}
