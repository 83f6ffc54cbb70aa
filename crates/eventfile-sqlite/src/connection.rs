//! Connections to the file: how each is opened and configured (WAL, `synchronous`,
//! `busy_timeout`), the pool of read connections, and how SQLite's errors become
//! [`eventfile::Error`]s.
//!
//! This module owns connection setup and error mapping; it never reads or writes events.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use eventfile::{Error, Result};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::options::Synchronous;

/// How long a statement waits for another connection's (or process's) lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A SQLite error as an [`Error`]: `NotAStore` for a file that is not a database,
/// `Unreachable` (kind `Unavailable`) for a lock another connection held too long, `Database`
/// otherwise.
pub(crate) fn db_error(path: &Path, e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            rusqlite::ErrorCode::NotADatabase => {
                return Error::NotAStore {
                    path: path.to_owned(),
                    reason: "the file is not a SQLite database".to_owned(),
                };
            }
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                return Error::Unreachable {
                    backend: "sqlite",
                    reason: format!(
                        "{}: {e} (another connection holds its lock)",
                        path.display()
                    ),
                };
            }
            _ => {}
        }
    }
    Error::Database {
        backend: "sqlite",
        reason: format!("{}: {e}", path.display()),
    }
}

/// Maps a rusqlite result to this crate's, naming the file.
pub(crate) trait Sql<T> {
    fn sql(self, path: &Path) -> Result<T>;
}

impl<T> Sql<T> for rusqlite::Result<T> {
    fn sql(self, path: &Path) -> Result<T> {
        self.map_err(|e| db_error(path, e))
    }
}

/// Opens a connection to `path` and sets what every connection needs: the busy timeout,
/// `synchronous`, foreign keys, and plans that do not change with bound values. `create` allows a missing file to be created.
pub(crate) fn open(path: &Path, create: bool, sync: Synchronous) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::CannotOpen => {
            Error::Io {
                op: "open",
                path: path.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "cannot open the SQLite file (missing, or its directory is)",
                ),
            }
        }
        e => db_error(path, e),
    })?;
    conn.busy_timeout(BUSY_TIMEOUT).sql(path)?;
    conn.pragma_update(None, "synchronous", sync.pragma())
        .sql(path)?;
    conn.pragma_update(None, "foreign_keys", "ON").sql(path)?;
    // Plans never depend on bound values. Without this, SQLite (STAT4 is compiled in) marks a
    // statement whose plan could depend on a parameter (a `LIMIT ?`, for one) and compiles it
    // again whenever that parameter is bound anew: every page of a read, with its cached
    // statement, would be parsed and planned again.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .sql(path)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Puts the file in WAL mode (kept in the file: a no-op once done).
pub(crate) fn wal(conn: &Connection, path: &Path) -> Result<()> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .sql(path)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Database {
            backend: "sqlite",
            reason: format!(
                "{}: could not enter WAL mode (mode is {mode})",
                path.display()
            ),
        });
    }
    Ok(())
}

/// Runs `f` again while it fails on a busy lock, until [`BUSY_TIMEOUT`]: for the steps of
/// opening a file (entering WAL mode, the first read of a file another process is creating),
/// where SQLite may report a busy lock at once instead of calling the busy handler.
pub(crate) fn retry_busy<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            Err(Error::Unreachable { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

/// Read connections, made on demand up to a bound and reused.
pub(crate) struct Pool {
    path: PathBuf,
    sync: Synchronous,
    max: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Connection>,
    made: usize,
}

impl Pool {
    pub(crate) fn new(path: PathBuf, sync: Synchronous, max: usize) -> Pool {
        Pool {
            path,
            sync,
            max: max.max(1),
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                made: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// Runs `f` on a read connection, waiting for one if all are busy.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.take()?;
        // Given back however `f` ends: a panic in it would otherwise keep its slot for good.
        struct Back<'a>(&'a Pool, Option<Connection>);
        impl Drop for Back<'_> {
            fn drop(&mut self) {
                if let Some(conn) = self.1.take() {
                    let mut s = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
                    s.idle.push(conn);
                    drop(s);
                    self.0.freed.notify_one();
                }
            }
        }
        let back = Back(self, Some(conn));
        f(back.1.as_ref().expect("taken only on drop"))
    }

    fn take(&self) -> Result<Connection> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(c) = s.idle.pop() {
                return Ok(c);
            }
            if s.made < self.max {
                s.made += 1;
                drop(s);
                return open(&self.path, false, self.sync).inspect_err(|_| {
                    let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                    s.made -= 1;
                    drop(s);
                    // A reader waiting for a slot may now open one itself.
                    self.freed.notify_one();
                });
            }
            s = self.freed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that panics gives its connection back: with one connection in the pool, the
    /// next read once waited for it for ever.
    #[test]
    fn a_panicking_reader_gives_its_connection_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ev.db");
        drop(open(&path, true, Synchronous::Full).unwrap());
        let pool = std::sync::Arc::new(Pool::new(path, Synchronous::Full, 1));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.with(|_| -> Result<()> { panic!("a reader's bug") })
        }));
        assert!(panicked.is_err());
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::sync::Arc::clone(&pool);
        std::thread::spawn(move || {
            let _ = tx.send(reader.with(|_| Ok(())).is_ok());
        });
        // A watchdog, not a synchronisation: the read needs no other thread to finish.
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(20)),
            Ok(true),
            "the pool's only connection was never given back"
        );
    }
}
