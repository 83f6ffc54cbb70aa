//! How a SQLite store is opened: [`SqliteOptions`] and [`Synchronous`].
//!
//! This module owns the options and their defaults only; it never opens anything.

use std::path::Path;

use eventfile::Result;

use crate::SqliteStore;

/// When SQLite waits for the disk (`PRAGMA synchronous` in WAL mode).
///
/// ```
/// use eventfile_sqlite::{SqliteOptions, Synchronous};
/// // For a cache that can be rebuilt: faster appends, the last ones lost on power loss.
/// let options = SqliteOptions::new().synchronous(Synchronous::Normal);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// Every commit is fsynced before the append returns: an acknowledged event survives a
    /// power loss. The default.
    #[default]
    Full,
    /// The WAL is fsynced only at checkpoints: an acknowledged event survives a crash of the
    /// process, but the last commits may be lost on power loss.
    Normal,
}

impl Synchronous {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Options for [`SqliteStore::open_with`], built with its methods (each states its default).
///
/// ```
/// use eventfile_sqlite::{SqliteOptions, Synchronous};
/// # let dir = tempfile::tempdir().unwrap();
/// let store = SqliteOptions::new()
///     .synchronous(Synchronous::Normal)
///     .read_connections(2)
///     .open(dir.path().join("events.db"))?;
/// # drop(store);
/// # Ok::<(), eventfile::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct SqliteOptions {
    pub(crate) synchronous: Synchronous,
    pub(crate) read_connections: usize,
    pub(crate) migrate: bool,
    pub(crate) create: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            read_connections: 4,
            migrate: true,
            create: true,
        }
    }
}

impl SqliteOptions {
    /// The defaults: [`Synchronous::Full`], 4 read connections, migrate, create.
    pub fn new() -> SqliteOptions {
        SqliteOptions::default()
    }

    /// How durable a commit is. Default [`Synchronous::Full`].
    pub fn synchronous(mut self, synchronous: Synchronous) -> SqliteOptions {
        self.synchronous = synchronous;
        self
    }

    /// How many connections serve reads beside the writer's (at least 1). Default 4.
    pub fn read_connections(mut self, n: usize) -> SqliteOptions {
        self.read_connections = n.max(1);
        self
    }

    /// Whether an older schema is brought to this build's version on open (in one
    /// transaction). Without it, an older file is refused. Default `true`.
    pub fn migrate(mut self, migrate: bool) -> SqliteOptions {
        self.migrate = migrate;
        self
    }

    /// Whether a missing file, or one with no tables at all, becomes a new store. Default
    /// `true`.
    pub fn create(mut self, create: bool) -> SqliteOptions {
        self.create = create;
        self
    }

    /// Opens the store at `path` with these options: [`SqliteStore::open_with`].
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore> {
        SqliteStore::open_with(path, self)
    }
}
