//! Which store a command works on: the URL, configuration file and directory flags resolved
//! once (`eventfile_connect::resolve`), and opened for writing or for reading.

use std::path::Path;

use eventfile_connect::{Access, AnyStore, Config, Location};

use crate::Failure;
use crate::args::Cli;

/// The store the command line names, with the configuration in effect.
pub(crate) struct Target {
    pub location: Location,
    pub config: Config,
}

impl Target {
    /// Resolves `--url`/`EVENTFILE_URL`, the configuration file, then `--dir`/`EVENTFILE_DIR`.
    /// A malformed URL or configuration file is a usage error (exit 2).
    pub fn resolve(cli: &Cli) -> Result<Target, Failure> {
        let usage = |e: eventfile::Error| match e.kind() {
            eventfile::ErrorKind::InvalidInput => Failure::Usage(e.to_string()),
            _ => Failure::Other(e.to_string()),
        };
        let config = eventfile_connect::load_config(cli.config.as_deref()).map_err(usage)?;
        let location = eventfile_connect::resolve(cli.url.as_deref(), &config, cli.dir.as_deref())
            .map_err(usage)?;
        if cli.dir_given
            && !matches!(&location, Location::File(d) if Some(d.as_path()) == cli.dir.as_deref())
        {
            // The precedence puts a URL (flag, environment or configuration file) first: say
            // so, rather than let a directory named on purpose be passed over in silence.
            eprintln!(
                "eventfile: warning: --dir/EVENTFILE_DIR is overridden by the store URL {} \
                 (from --url, EVENTFILE_URL or the configuration file)",
                location.redacted()
            );
        }
        Ok(Target { location, config })
    }

    /// Opens the store for appending (creating it if it does not exist).
    pub fn open(&self) -> Result<AnyStore, Failure> {
        Ok(eventfile_connect::open_with(
            &self.location,
            &self.config,
            Access::ReadWrite,
        )?)
    }

    /// Opens the store for reading beside a writer: a file store that exists opens read-only,
    /// taking no lock. A directory with no store gets one with the defaults, as every command
    /// does.
    pub fn open_for_reading(&self) -> Result<AnyStore, Failure> {
        Ok(eventfile_connect::open_with(
            &self.location,
            &self.config,
            Access::ReadOnly,
        )?)
    }

    /// Opens a store that must exist already, for reading beside a writer: a missing file
    /// store or SQLite file is an error naming the path, a PostgreSQL schema that holds no
    /// store (or one at another version) an error naming the schema, and nothing is created
    /// or migrated.
    pub fn open_existing(&self) -> Result<AnyStore, Failure> {
        match &self.location {
            Location::File(dir) => Ok(AnyStore::File(eventfile::Store::open_read_only(dir)?)),
            Location::Sqlite(path) if !path.is_file() => Err(Failure::Other(format!(
                "no SQLite store at {}",
                path.display()
            ))),
            // An empty file is not made a store, nor an older schema migrated, by a command
            // that only reads (a migration would also hold up the file's writers).
            Location::Sqlite(path) => Ok(AnyStore::Sqlite(
                self.config
                    .sqlite_options()
                    .create(false)
                    .migrate(false)
                    .open(path)?,
            )),
            Location::Postgres(url) => Ok(AnyStore::Postgres(
                eventfile_postgres::PostgresStore::open_with(
                    url,
                    self.config.postgres_options().migrate(false),
                )?,
            )),
            _ => self.open_for_reading(),
        }
    }

    /// The file store in the URL's directory, opened for writing with the configuration
    /// file's `[file]` options (a store created here gets them); any other backend is refused
    /// naming `operation`.
    pub fn file_store(&self, operation: &str) -> Result<eventfile::Store, Failure> {
        let dir = self.dir(operation)?;
        Ok(self.config.file_options()?.open(dir)?)
    }

    /// The file store in the URL's directory, which must exist, opened read-only (no writer
    /// lock: it works beside a running writer); any other backend is refused naming
    /// `operation`.
    pub fn existing_file_store(&self, operation: &str) -> Result<eventfile::Store, Failure> {
        Ok(eventfile::Store::open_read_only(self.dir(operation)?)?)
    }

    /// The file store's directory, for the commands that work on its files; any other backend
    /// is refused naming the command (exit 1).
    pub fn dir(&self, operation: &str) -> Result<&Path, Failure> {
        match &self.location {
            Location::File(dir) => Ok(dir),
            other => Err(eventfile::Error::Unsupported {
                operation: operation.to_owned(),
                backend: other.backend(),
                reason: Some("it works on the file store's segments only".into()),
            }
            .into()),
        }
    }
}
