//! # eventfile-connect
//!
//! One way to name an eventfile store everywhere, whatever keeps it: a URL.
//!
//! | URL | Store |
//! |---|---|
//! | `file:PATH`, `file://PATH` or a bare path | the file store in directory `PATH` ([`eventfile::Store`]) |
//! | `sqlite:PATH` or `sqlite://PATH` | one SQLite file ([`eventfile_sqlite::SqliteStore`]) |
//! | `postgres://...`, `postgresql://...`, or libpq's `host=... dbname=...` | PostgreSQL, any libpq connection string (a unix socket directory as `?host=/dir`) ([`eventfile_postgres::PostgresStore`]) |
//! | `memory:` | a fresh in-memory store ([`eventfile::MemoryStore`]) |
//!
//! The path of a `file:` or `sqlite:` URL is a URL's path: percent-escapes are decoded
//! (`file:///tmp/my%20events`), `file://localhost/PATH` is `/PATH`, and a `?` or `#` is
//! refused (write `%3F`, `%23`). A bare path is taken as it is.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # let url = format!("file:{}", dir.path().join("events").display());
//! use eventfile::{EventStore, ExpectedVersion, NewEvent};
//! let store = eventfile_connect::open(&url)?;   // e.g. "file:./events", "postgres://..."
//! store.append("order-1", ExpectedVersion::NoStream,
//!     vec![NewEvent::new("Placed", serde_json::json!({}))])?;
//! assert_eq!(store.head_seq()?, 1);
//! # Ok::<(), eventfile::Error>(())
//! ```
//!
//! Backend options come from a [`Config`], usually an `eventfile.toml`:
//!
//! ```toml
//! url = "postgres://app@db.internal/events"
//!
//! [file]
//! segment_bytes = 67108864
//! max_event_bytes = 4194304
//! retention = { max_age = "30d", max_bytes = 10000000000 }
//!
//! [sqlite]
//! synchronous = "full"
//! read_connections = 4
//!
//! [postgres]
//! pool_size = 8
//! schema = "eventfile"
//! ```
//!
//! Every key is optional; an unknown key or a value of the wrong type is refused with its line.
//! The command-line tool resolves the store as: `--url`, then `EVENTFILE_URL`, then the
//! configuration file's `url` (`--config FILE`, `EVENTFILE_CONFIG`, or `./eventfile.toml`), then
//! `--dir`/`EVENTFILE_DIR`, then `./eventfile-data` ([`resolve`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use eventfile::{Error, EventStore, MemoryStore, OpenOptions, Result, RetentionPolicy, Store};
use eventfile_postgres::{PostgresOptions, PostgresStore};
use eventfile_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use serde::Deserialize;

/// Where a store is: what a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file store's directory.
    File(PathBuf),
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (a libpq URL).
    Postgres(String),
    /// A fresh in-memory store.
    Memory,
}

impl Location {
    /// Parses a store URL (see the crate's table). A text with no scheme is a path to a file
    /// store; a scheme this crate does not know is refused (write `file:` before a path that
    /// holds a colon).
    ///
    /// ```
    /// use eventfile_connect::Location;
    /// assert_eq!(Location::parse("./events")?, Location::File("./events".into()));
    /// assert_eq!(Location::parse("sqlite:///var/ev.db")?, Location::Sqlite("/var/ev.db".into()));
    /// assert!(Location::parse("mysql://db/events").is_err());
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn parse(url: &str) -> Result<Location> {
        let bad = |why: String| Error::InvalidInput {
            what: "store URL",
            reason: why,
        };
        if url.is_empty() {
            return Err(bad("it is empty".into()));
        }
        let Some((scheme, rest)) = url.split_once(':').filter(|(s, _)| is_scheme(s)) else {
            // libpq's other form, `host=/run/postgresql dbname=events`: never a path.
            if is_libpq_keywords(url) {
                return Ok(Location::Postgres(url.to_owned()));
            }
            return Ok(Location::File(PathBuf::from(url)));
        };
        // `scheme://path` and `scheme:path` name the same path (an empty authority), and
        // `scheme://localhost/path` the absolute `/path` (RFC 8089). The path is a URL's:
        // percent-escapes are decoded (`file:///tmp/my%20events`, as Python's `as_uri()`
        // writes it), and a `?` or `#` would start a query or fragment, which these schemes do
        // not take (write `%3F` or `%23` for the character).
        let path = |rest: &str| -> Result<PathBuf> {
            let p = rest.strip_prefix("//").unwrap_or(rest);
            // `localhost` in any case (host names are case-insensitive).
            let p = match p.get(..10) {
                Some(host) if rest.starts_with("//") && host.eq_ignore_ascii_case("localhost/") => {
                    &p[9..]
                }
                _ => p,
            };
            if p.is_empty() {
                return Err(bad(format!("`{scheme}:` needs a path")));
            }
            if let Some(c) = p.chars().find(|c| matches!(c, '?' | '#')) {
                return Err(bad(format!(
                    "`{scheme}:` takes a path only, no query or fragment (`{c}`; write %3F for \
                     `?` and %23 for `#` in a path)"
                )));
            }
            let decoded = percent_encoding::percent_decode_str(p)
                .decode_utf8()
                .map_err(|_| bad(format!("the path of `{scheme}:` decodes to invalid UTF-8")))?;
            Ok(PathBuf::from(decoded.into_owned()))
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => Ok(Location::File(path(rest)?)),
            "sqlite" => Ok(Location::Sqlite(path(rest)?)),
            // The client reads the scheme in lower case only.
            "postgres" | "postgresql" => Ok(Location::Postgres(format!(
                "{}:{rest}",
                scheme.to_ascii_lowercase()
            ))),
            "memory" if rest.is_empty() => Ok(Location::Memory),
            "memory" => Err(bad("`memory:` takes nothing after the colon".into())),
            // The URL itself is not repeated: it may hold a password.
            other => Err(bad(format!(
                "unknown scheme `{other}:` (known: file:, sqlite:, postgres://, memory:; \
                 write `file:` before a path that holds a colon)"
            ))),
        }
    }

    /// The backend's name: `file`, `sqlite`, `postgres` or `memory`.
    pub fn backend(&self) -> &'static str {
        match self {
            Location::File(_) => "file",
            Location::Sqlite(_) => "sqlite",
            Location::Postgres(_) => "postgres",
            Location::Memory => "memory",
        }
    }

    /// The location as a URL with any password replaced by `***`: safe to print.
    pub fn redacted(&self) -> String {
        match self {
            Location::File(p) => format!("file:{}", p.display()),
            Location::Sqlite(p) => format!("sqlite:{}", p.display()),
            Location::Postgres(url) if !url.contains("://") => redact_keywords(url),
            Location::Postgres(url) => redact_password(url),
            Location::Memory => "memory:".into(),
        }
    }
}

/// libpq's connection keywords (PostgreSQL 17's "Parameter Key Words"): a connection string
/// may start with any of them.
const LIBPQ_KEYWORDS: [&str; 44] = [
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
    "authtype",
    "tty",
];

/// Whether `text` is a libpq keyword/value connection string: it starts with a connection
/// keyword and `=` (`host=... dbname=...`, `connect_timeout=5 host=...`).
fn is_libpq_keywords(text: &str) -> bool {
    text.split_once('=')
        .is_some_and(|(k, _)| LIBPQ_KEYWORDS.contains(&k.trim()))
}

/// A URL scheme: a letter, then letters, digits, `+`, `-` or `.` (RFC 3986), at least two
/// characters so that a Windows drive letter is not one.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`; a `password=` query
/// parameter too.
fn redact_password(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        // The user and password run to the first `@`, as the client reads them (a password
        // may hold `/` or `?`, which base64 passwords often do): masked the same way, never
        // cut at a `/` and printed whole.
        let auth_start = scheme_end + 3;
        if let Some(at) = out[auth_start..].find('@')
            && let Some(colon) = out[auth_start..auth_start + at].find(':')
        {
            out.replace_range(auth_start + colon + 1..auth_start + at, "***");
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _))
                    if k.eq_ignore_ascii_case("password")
                        || k.eq_ignore_ascii_case("sslpassword") =>
                {
                    format!("{k}=***")
                }
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

/// `password=secret` in a keyword/value connection string → `password=***`, read as libpq
/// reads it: spaces around `=` allowed, a value either a run of non-spaces or single-quoted
/// with `\'` and `\\` escapes. The pairs come back one space apart, each value as written.
fn redact_keywords(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            // Not a pair: nothing after it is shown (it could be a stray part of a value).
            out.push("***".into());
            break;
        };
        let key = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let value_len = if after.starts_with('\'') {
            let mut escaped = false;
            after
                .char_indices()
                .skip(1)
                .find(|&(_, c)| {
                    let end = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map_or(after.len(), |(i, _)| i + 1)
        } else {
            after.find(char::is_whitespace).unwrap_or(after.len())
        };
        let value = &after[..value_len];
        if key == "password" || key == "sslpassword" {
            out.push(format!("{key}=***"));
        } else {
            out.push(format!("{key}={value}"));
        }
        rest = after[value_len..].trim_start();
    }
    out.join(" ")
}

/// The configuration file: the store's URL and each backend's options. Every key optional;
/// unknown keys and wrong types are refused.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The store URL.
    pub url: Option<String>,
    /// Options of the file store.
    #[serde(default)]
    pub file: FileConfig,
    /// Options of the SQLite backend.
    #[serde(default)]
    pub sqlite: SqliteConfig,
    /// Options of the PostgreSQL backend.
    #[serde(default)]
    pub postgres: PostgresConfig,
}

/// `[file]`: the file store's options (see [`eventfile::OpenOptions`]).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FileConfig {
    /// Segment size in bytes, for a store created now.
    pub segment_bytes: Option<u64>,
    /// Largest encoded event, for a store created now.
    pub max_event_bytes: Option<usize>,
    /// Snapshots kept per stream.
    pub snapshots_kept: Option<usize>,
    /// The retention policy.
    pub retention: Option<RetentionConfig>,
}

/// `[file] retention`: whole sealed segments past any limit are removed.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetentionConfig {
    /// Remove segments whose newest event is older than this (`90s`, `15m`, `12h`, `30d`).
    pub max_age: Option<String>,
    /// Keep at most this many bytes of segments.
    pub max_bytes: Option<u64>,
    /// Keep at most this many events.
    pub max_events: Option<u64>,
}

/// `[sqlite]`: the SQLite backend's options.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// `full` (the default: every append durable on return) or `normal`.
    pub synchronous: Option<SyncMode>,
    /// Read connections in the pool.
    pub read_connections: Option<usize>,
}

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// fsync at every commit.
    Full,
    /// fsync at checkpoints only: a power loss may lose the last appends.
    Normal,
}

/// `[postgres]`: the PostgreSQL backend's options.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// Connections in the pool.
    pub pool_size: Option<usize>,
    /// The schema holding the store's tables.
    pub schema: Option<String>,
}

impl Config {
    /// Parses a configuration file's text; `origin` names it in errors.
    ///
    /// ```
    /// let c = eventfile_connect::Config::from_toml("url = \"memory:\"\n[postgres]\npool_size = 4", "x")?;
    /// assert_eq!(c.postgres.pool_size, Some(4));
    /// assert!(eventfile_connect::Config::from_toml("pool_size = 4", "x").is_err());
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        // The parser's own message quotes the offending line, which may hold a password (a
        // URL under the wrong table, a bad escape inside one): the line and column are named
        // instead, and the message alone kept (it names keys, never values).
        let config: Config = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(String::new(), |span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(", line {line}, column {column}")
            });
            Error::InvalidInput {
                what: "configuration file",
                reason: format!("{origin}{at}: {}", e.message().trim_end()),
            }
        })?;
        if let Some(r) = &config.file.retention {
            // Checked now, so that a bad duration is reported with the file's name.
            let _ = retention_policy(r).map_err(|why| Error::InvalidInput {
                what: "configuration file",
                reason: format!("{origin}: [file] retention: {why}"),
            })?;
        }
        Ok(config)
    }

    /// Reads and parses the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            op: "read configuration file",
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, &path.display().to_string())
    }

    /// The file store's open options this configuration names (`[file]`): what
    /// [`open_with`] opens a file store with, for a caller that adds options of its own (as
    /// `eventfile generate` does its durability).
    pub fn file_options(&self) -> Result<OpenOptions> {
        let f = &self.file;
        let mut o = OpenOptions::new();
        if let Some(b) = f.segment_bytes {
            o = o.segment_bytes(b);
        }
        if let Some(b) = f.max_event_bytes {
            o = o.max_event_bytes(b);
        }
        if let Some(n) = f.snapshots_kept {
            o = o.snapshots_kept(n);
        }
        if let Some(r) = &f.retention {
            o = o.retention(retention_policy(r).map_err(|why| Error::InvalidInput {
                what: "retention",
                reason: why,
            })?);
        }
        Ok(o)
    }

    /// The SQLite backend's options this configuration names (`[sqlite]`): what
    /// [`open_with`] opens a `sqlite:` URL with (a caller may change them, as the CLI's
    /// read-only commands do: nothing created or migrated).
    pub fn sqlite_options(&self) -> SqliteOptions {
        let mut o = SqliteOptions::new();
        if let Some(s) = self.sqlite.synchronous {
            o = o.synchronous(match s {
                SyncMode::Full => Synchronous::Full,
                SyncMode::Normal => Synchronous::Normal,
            });
        }
        if let Some(n) = self.sqlite.read_connections {
            o = o.read_connections(n);
        }
        o
    }

    /// The PostgreSQL backend's options this configuration names (`[postgres]`): what
    /// [`open_with`] opens it with, for a caller that adds options of its own (as the
    /// command-line tool's reading commands turn off migrations).
    pub fn postgres_options(&self) -> PostgresOptions {
        let mut o = PostgresOptions::new();
        if let Some(n) = self.postgres.pool_size {
            o = o.pool_size(n);
        }
        if let Some(s) = &self.postgres.schema {
            o = o.schema(s.clone());
        }
        o
    }
}

fn retention_policy(r: &RetentionConfig) -> std::result::Result<RetentionPolicy, String> {
    let mut p = RetentionPolicy::keep_all();
    if let Some(age) = &r.max_age {
        p = p.max_age(parse_duration(age)?);
    }
    if let Some(b) = r.max_bytes {
        p = p.max_bytes(b);
    }
    if let Some(n) = r.max_events {
        p = p.max_events(n);
    }
    Ok(p)
}

/// `90s`, `15m`, `12h`, `30d`: a whole number and a unit.
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90s, 15m, 12h or 30d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{text}` is not a duration such as 90s, 15m, 12h or 30d"
            ));
        }
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// A store of any backend, opened: the backend's own type where a caller needs what only
/// that backend has (the file store's maintenance), or [`AnyStore::as_dyn`] for the trait.
#[derive(Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// The file store.
    File(Store),
    /// The in-memory store.
    Memory(MemoryStore),
    /// The SQLite backend.
    Sqlite(SqliteStore),
    /// The PostgreSQL backend.
    Postgres(PostgresStore),
}

impl AnyStore {
    /// The store through the backend-neutral trait.
    pub fn as_dyn(&self) -> &dyn EventStore {
        match self {
            AnyStore::File(s) => s,
            AnyStore::Memory(s) => s,
            AnyStore::Sqlite(s) => s,
            AnyStore::Postgres(s) => s,
        }
    }

    /// The store, boxed.
    pub fn boxed(self) -> Box<dyn EventStore> {
        match self {
            AnyStore::File(s) => Box::new(s),
            AnyStore::Memory(s) => Box::new(s),
            AnyStore::Sqlite(s) => Box::new(s),
            AnyStore::Postgres(s) => Box::new(s),
        }
    }

    /// `file`, `memory`, `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            AnyStore::File(_) => "file",
            AnyStore::Memory(_) => "memory",
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }

    /// The file store, or [`Error::Unsupported`] naming `operation` and this backend.
    pub fn file(&self, operation: &str) -> Result<&Store> {
        match self {
            AnyStore::File(s) => Ok(s),
            other => Err(Error::Unsupported {
                operation: operation.to_owned(),
                backend: other.backend(),
                reason: Some("it works on the file store's segments only".into()),
            }),
        }
    }
}

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Appends allowed; a store that does not exist yet is created.
    ReadWrite,
    /// For reading beside a writer: the file store opens read-only (taking no writer lock) if
    /// it exists; the database backends open as usual (they serve many writers).
    ReadOnly,
}

/// Opens the store `url` names with the default options, as a trait object.
pub fn open(url: &str) -> Result<Box<dyn EventStore>> {
    Ok(open_with(
        &Location::parse(url)?,
        &Config::default(),
        Access::ReadWrite,
    )?
    .boxed())
}

/// Opens the store at `location` with `config`'s options for its backend.
pub fn open_with(location: &Location, config: &Config, access: Access) -> Result<AnyStore> {
    Ok(match location {
        Location::File(dir) => {
            let options = config.file_options()?;
            let exists = dir.join("eventfile.json").exists();
            AnyStore::File(
                options
                    .read_only(access == Access::ReadOnly && exists)
                    .open(dir)?,
            )
        }
        Location::Sqlite(path) => AnyStore::Sqlite(config.sqlite_options().open(path)?),
        Location::Postgres(url) => {
            AnyStore::Postgres(PostgresStore::open_with(url, config.postgres_options())?)
        }
        Location::Memory => AnyStore::Memory(MemoryStore::new()),
    })
}

/// A schema migration to run ([`migrate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    /// Apply migrations up to a version (all: `None`).
    Up(Option<u32>),
    /// Revert migrations down to a version (0: none left).
    Down(u32),
    /// Change nothing.
    Status,
}

/// Where a schema stands: the version applied and the newest this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    /// Applied.
    pub current: u32,
    /// The newest this build knows.
    pub latest: u32,
}

/// Runs a schema migration on the database `location` names (SQLite or PostgreSQL), then
/// reports where the schema stands. The file and memory stores have no schema to migrate:
/// [`Error::Unsupported`].
pub fn migrate(
    location: &Location,
    config: &Config,
    migration: Migration,
) -> Result<SchemaVersion> {
    match location {
        Location::Sqlite(path) => {
            match migration {
                Migration::Up(to) => {
                    eventfile_sqlite::migrate::up(path, to)?;
                }
                Migration::Down(to) => {
                    eventfile_sqlite::migrate::down(path, to)?;
                }
                Migration::Status => {}
            }
            let (current, latest) = eventfile_sqlite::migrate::status(path)?;
            Ok(SchemaVersion { current, latest })
        }
        Location::Postgres(url) => {
            let options = config.postgres_options();
            match migration {
                Migration::Up(to) => {
                    eventfile_postgres::migrate::up(url, &options, to)?;
                }
                Migration::Down(to) => {
                    eventfile_postgres::migrate::down(url, &options, to)?;
                }
                Migration::Status => {}
            }
            let (current, latest) = eventfile_postgres::migrate::status(url, &options)?;
            Ok(SchemaVersion { current, latest })
        }
        other => Err(Error::Unsupported {
            operation: "migrate".into(),
            backend: other.backend(),
            reason: Some("it has no schema: its format is checked on open".into()),
        }),
    }
}

/// What names the store, by the tool's precedence: an explicit URL (a flag, or the environment:
/// the caller's flag parser merges the two, the flag first), then the configuration file's
/// `url`, then a directory (flag or environment), then `./eventfile-data`.
pub fn resolve(url: Option<&str>, config: &Config, dir: Option<&Path>) -> Result<Location> {
    if let Some(url) = url.or(config.url.as_deref()) {
        return Location::parse(url);
    }
    Ok(Location::File(dir.map_or_else(
        || PathBuf::from("./eventfile-data"),
        Path::to_path_buf,
    )))
}

/// The configuration in effect: the file named (by `--config` or `EVENTFILE_CONFIG`), which
/// must exist; else `./eventfile.toml` if there is one; else the defaults.
pub fn load_config(named: Option<&Path>) -> Result<Config> {
    match named {
        Some(path) => Config::load(path),
        None => {
            let local = Path::new("eventfile.toml");
            if local.is_file() {
                Config::load(local)
            } else {
                Ok(Config::default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_backend() {
        let cases = [
            ("events", Location::File("events".into())),
            ("./a/b", Location::File("./a/b".into())),
            ("/abs", Location::File("/abs".into())),
            ("file:rel/dir", Location::File("rel/dir".into())),
            ("file:///abs/dir", Location::File("/abs/dir".into())),
            ("sqlite:ev.db", Location::Sqlite("ev.db".into())),
            ("sqlite:///tmp/ev.db", Location::Sqlite("/tmp/ev.db".into())),
            ("memory:", Location::Memory),
            (
                "postgres://u@localhost/db?host=/tmp/pg",
                Location::Postgres("postgres://u@localhost/db?host=/tmp/pg".into()),
            ),
            (
                "postgresql://h/db",
                Location::Postgres("postgresql://h/db".into()),
            ),
            (
                "POSTGRES://h/db",
                Location::Postgres("postgres://h/db".into()),
            ),
            (
                "host=/run/postgresql dbname=ev",
                Location::Postgres("host=/run/postgresql dbname=ev".into()),
            ),
            ("dir=with=equals", Location::File("dir=with=equals".into())),
            (
                "connect_timeout=5 host=/tmp dbname=x",
                Location::Postgres("connect_timeout=5 host=/tmp dbname=x".into()),
            ),
            (
                "target_session_attrs=read-write host=db",
                Location::Postgres("target_session_attrs=read-write host=db".into()),
            ),
            (
                "file:///tmp/my%20events",
                Location::File("/tmp/my events".into()),
            ),
            ("file://localhost/var/ev", Location::File("/var/ev".into())),
            ("file://LocalHost/var/ev", Location::File("/var/ev".into())),
            ("file:a%25b", Location::File("a%b".into())),
            (
                "sqlite:///tmp/a%3Fb.db",
                Location::Sqlite("/tmp/a?b.db".into()),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(Location::parse(url).unwrap(), want, "{url}");
        }
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (url, says) in [
            ("", "empty"),
            ("mysql://h/db", "unknown scheme `mysql:`"),
            ("file:", "needs a path"),
            ("sqlite://", "needs a path"),
            ("memory:x", "takes nothing"),
            ("sqlite:ev.db?mode=ro", "no query or fragment"),
            ("file:///a#b", "no query or fragment"),
            ("file:%FF", "invalid UTF-8"),
        ] {
            let err = Location::parse(url).unwrap_err();
            assert_eq!(err.kind(), eventfile::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn passwords_never_print() {
        let l = Location::parse("postgres://app:s3cret@db:5432/ev?sslmode=disable&password=x2")
            .unwrap();
        let shown = l.redacted();
        assert!(
            !shown.contains("s3cret") && !shown.contains("x2"),
            "{shown}"
        );
        assert_eq!(
            shown,
            "postgres://app:***@db:5432/ev?sslmode=disable&password=***"
        );
        let l = Location::parse("host=db user=app password=s3cret dbname=ev").unwrap();
        assert_eq!(l.redacted(), "host=db user=app password=*** dbname=ev");
        for (text, shown) in [
            (
                "host=db password = s3cret dbname=ev",
                "host=db password=*** dbname=ev",
            ),
            (
                "host=db password='a s3cret' dbname=ev",
                "host=db password=*** dbname=ev",
            ),
            (
                "host=db password='it\\'s s3cret' user='a b'",
                "host=db password=*** user='a b'",
            ),
        ] {
            assert_eq!(Location::parse(text).unwrap().redacted(), shown, "{text}");
        }
        // A password holding `/` or `?` (base64 ones do): the client takes everything up to
        // the first `@` as the user and password, and so does the masking.
        for (url, shown) in [
            ("postgres://app:pa/ss@db/ev", "postgres://app:***@db/ev"),
            ("postgres://app:pa?ss@db/ev", "postgres://app:***@db/ev"),
        ] {
            assert_eq!(Location::parse(url).unwrap().redacted(), shown, "{url}");
        }
        // An unknown scheme's error does not repeat the URL, whose password it may hold.
        let err = Location::parse("postgresql+psycopg2://app:s3cret@db/ev").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn precedence_is_url_then_config_then_dir_then_default() {
        let config = Config::from_toml("url = \"memory:\"", "t").unwrap();
        let dir = Path::new("d");
        assert_eq!(
            resolve(Some("sqlite:x.db"), &config, Some(dir)).unwrap(),
            Location::Sqlite("x.db".into())
        );
        assert_eq!(resolve(None, &config, Some(dir)).unwrap(), Location::Memory);
        let none = Config::default();
        assert_eq!(
            resolve(None, &none, Some(dir)).unwrap(),
            Location::File("d".into())
        );
        assert_eq!(
            resolve(None, &none, None).unwrap(),
            Location::File("./eventfile-data".into())
        );
    }

    #[test]
    fn config_files_are_checked_key_by_key() {
        let full = r#"
            url = "sqlite:ev.db"
            [file]
            segment_bytes = 1048576
            retention = { max_age = "30d", max_events = 1000 }
            [sqlite]
            synchronous = "normal"
            [postgres]
            pool_size = 4
            schema = "ev"
        "#;
        let c = Config::from_toml(full, "eventfile.toml").unwrap();
        assert_eq!(c.sqlite.synchronous, Some(SyncMode::Normal));
        assert_eq!(c.file.segment_bytes, Some(1_048_576));
        for (text, says) in [
            ("colour = 1", "unknown field `colour`"),
            ("[postgres]\npool_size = \"many\"", "invalid type"),
            ("[sqlite]\nsynchronous = \"off\"", "unknown variant `off`"),
            ("[file]\nretention = { max_age = \"3 weeks\" }", "duration"),
            ("url = ", "eventfile.toml"),
        ] {
            let err = Config::from_toml(text, "eventfile.toml").unwrap_err();
            assert_eq!(err.kind(), eventfile::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
        // The parser quotes the offending line: a password on it was printed. The error names
        // the line and column instead.
        for (text, at) in [
            (
                "[postgres]\nurl = \"postgres://app:s3cret@db/ev\"",
                "line 2, column 1",
            ),
            ("url = \"postgres://app:s3\\cret@db/ev\"", "line 1"),
        ] {
            let err = Config::from_toml(text, "eventfile.toml").unwrap_err();
            let shown = err.to_string();
            assert!(!shown.contains("s3"), "{text}: {shown}");
            assert!(shown.contains(at), "{text}: {shown}");
        }
    }

    #[test]
    fn a_named_config_file_must_exist() {
        let err = load_config(Some(Path::new("/nonexistent/eventfile.toml"))).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/eventfile.toml"),
            "{err}"
        );
    }

    #[test]
    fn file_only_operations_name_the_backend() {
        let store = open_with(&Location::Memory, &Config::default(), Access::ReadWrite).unwrap();
        let Err(err) = store.file("compact") else {
            panic!("compact on the memory store was not refused")
        };
        assert_eq!(err.kind(), eventfile::ErrorKind::Refused);
        assert!(
            err.to_string()
                .contains("compact is not supported by the memory backend")
        );
        let err = migrate(&Location::Memory, &Config::default(), Migration::Status).unwrap_err();
        assert_eq!(err.kind(), eventfile::ErrorKind::Refused);
    }
}
