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
/// `Unreachable` (kind `Unavailable`) for a lock another connection held too long, `Corrupt`
/// for a file SQLite finds malformed, `ReadOnly` for a file this process may not write (SQLite
/// then opens it for reading only), `Database` otherwise (also for a stored integer out of
/// range: a negative seq or version, which only an edit outside eventfile writes).
pub(crate) fn db_error(path: &Path, e: rusqlite::Error) -> Error {
    if let rusqlite::Error::IntegralValueOutOfRange(column, value) = &e {
        return Error::Database {
            backend: "sqlite",
            reason: format!(
                "{}: column {column} of a row holds {value}, out of its range (a seq, version \
                 or count is never negative): the file was changed outside eventfile",
                path.display()
            ),
        };
    }
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            rusqlite::ErrorCode::DatabaseCorrupt => {
                return Error::Corrupt {
                    path: path.to_owned(),
                    offset: 0,
                    reason: format!("SQLite finds the file malformed ({e}; it does not say where)"),
                };
            }
            rusqlite::ErrorCode::ReadOnly => return Error::ReadOnly,
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
                source: cannot_open(path),
            }
        }
        e => db_error(path, e),
    })?;
    conn.busy_timeout(BUSY_TIMEOUT).sql(path)?;
    conn.pragma_update(None, "synchronous", sync.pragma())
        .sql(path)?;
    if sync == Synchronous::Full {
        // On Apple systems `fsync` leaves the drive's write cache unflushed; these make SQLite
        // use `F_FULLFSYNC` for its commits and checkpoints, as the file store's `sync_data`
        // does (elsewhere they change nothing).
        conn.pragma_update(None, "fullfsync", true).sql(path)?;
        conn.pragma_update(None, "checkpoint_fullfsync", true)
            .sql(path)?;
    }
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

/// Why SQLite could not open `path` (it says only "unable to open"): the path is missing (or
/// its directory is), is a directory, or is a file this process may not open.
fn cannot_open(path: &Path) -> std::io::Error {
    use std::io::{Error as IoError, ErrorKind};
    match std::fs::metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => IoError::new(
            ErrorKind::NotFound,
            "cannot open the SQLite file (missing, or its directory is)",
        ),
        Err(e) => e,
        Ok(m) if m.is_dir() => IoError::new(
            ErrorKind::IsADirectory,
            "a directory, not a SQLite file (for a file store, name it `file:PATH`)",
        ),
        Ok(_) => IoError::new(
            ErrorKind::PermissionDenied,
            "the SQLite file is there but cannot be opened (its permissions, or its \
             directory's, which must let this process create the WAL files beside it)",
        ),
    }
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

    /// `synchronous=FULL` also asks for `F_FULLFSYNC` (Apple's `fsync` does not flush the
    /// drive's cache; the pragmas change nothing elsewhere).
    #[test]
    fn full_sync_asks_for_full_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ev.db");
        let conn = open(&path, true, Synchronous::Full).unwrap();
        for pragma in ["fullfsync", "checkpoint_fullfsync"] {
            let on: i64 = conn.pragma_query_value(None, pragma, |r| r.get(0)).unwrap();
            assert_eq!(on, 1, "{pragma}");
        }
    }

    /// A write SQLite refuses because the file is read-only to this connection is
    /// `Error::ReadOnly` (kind `ReadOnly`), not a database failure a client would retry; a
    /// file SQLite finds malformed is `Corrupt`.
    #[test]
    fn a_read_only_file_and_a_malformed_one_get_their_own_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ev.db");
        drop(open(&path, true, Synchronous::Full).unwrap());
        let ro = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let e = ro.execute_batch("CREATE TABLE t (x)").unwrap_err();
        let err = db_error(&path, e);
        assert_eq!(err.kind(), eventfile::ErrorKind::ReadOnly, "{err}");
        let corrupt = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        );
        assert_eq!(
            db_error(&path, corrupt).kind(),
            eventfile::ErrorKind::Corrupt
        );
    }

    /// SQLite says only "unable to open": the error says whether the path is missing or a
    /// directory.
    #[test]
    fn a_directory_is_named_as_one_not_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = open(dir.path(), false, Synchronous::Full).unwrap_err();
        match &err {
            Error::Io { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::IsADirectory, "{err}");
            }
            other => panic!("{other}"),
        }
        let err = open(&dir.path().join("nope.db"), false, Synchronous::Full).unwrap_err();
        match &err {
            Error::Io { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{err}");
            }
            other => panic!("{other}"),
        }
    }
}
