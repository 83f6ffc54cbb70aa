//! A PostgreSQL server for tests, with no container and nothing to set up: [`server`] starts a
//! private one once per process (or uses `EVENTFILE_TEST_POSTGRES_URL`), and [`fresh_schema`]
//! opens a store in a new schema that is dropped with its guard.
//!
//! The private server lives in a temporary directory and listens on a unix socket only. It is
//! started by a shell that then waits on a pipe this process holds: when the process ends,
//! however it ends, the pipe closes and the shell stops the server (`pg_ctl stop -m fast`).
//! As root, the server runs as the `postgres` user (it refuses root).
//!
//! Behind the `testing` feature; for tests and benchmarks only.
//!
//! ```no_run
//! use eventfile::EventStore;
//! let (store, _guard) = eventfile_postgres::testing::fresh_schema();
//! assert_eq!(store.head_seq()?, 0);
//! # Ok::<(), eventfile::Error>(())
//! ```

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::{PostgresOptions, PostgresStore};

/// The environment variable naming a server to use instead of a private one.
pub const URL_VAR: &str = "EVENTFILE_TEST_POSTGRES_URL";

/// The role that the private server makes log in with a password (every other role is
/// trusted): create it with a password to test a refused login.
pub const PASSWORD_ROLE: &str = "eventfile_password";

/// A server for tests: its URL, and (for a private one) what keeps it running.
#[derive(Debug)]
pub struct TestServer {
    url: String,
    /// The pipe whose closing stops the private server, and its shell.
    _keep: Option<Mutex<(ChildStdin, Child)>>,
    /// The private server's directory.
    _dir: Option<tempfile::TempDir>,
    /// How to start it again after [`TestServer::crash`]: its `pg_ctl start` command line.
    restart: Option<String>,
}

impl TestServer {
    /// A libpq URL of the server's `postgres` database as user `postgres`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kills every process of this private server with SIGKILL, as a crash of the machine's
    /// database would: no shutdown checkpoint, the next start replays the WAL. Panics for a
    /// server this process did not start.
    pub fn crash(&self) {
        let dir = self._dir.as_ref().expect("a private server").path();
        // The postmaster's pid is the first line of postmaster.pid; its children are the
        // processes whose parent it is. Killed together, so none outlives the crash.
        let pid_file = dir.join("data").join("postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
        let pid = pid.lines().next().expect("a pid").trim().to_owned();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -9 {pid} $(pgrep -P {pid}) 2>/dev/null; true"))
            .status()
            .expect("kill");
        assert!(status.success());
        // Wait until the postmaster is gone: a new one refuses to start beside it.
        while Command::new("kill")
            .args(["-0", &pid])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            std::thread::yield_now();
        }
    }

    /// Starts a private server again after [`TestServer::crash`] (PostgreSQL recovers from
    /// its WAL) and returns once it accepts connections.
    pub fn restart(&self) {
        let cmd = self.restart.as_ref().expect("a private server");
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .expect("pg_ctl");
        assert!(
            out.status.success(),
            "restart failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TestServer {
    /// Stops a private server before its directory goes: closes the pipe its shell waits on,
    /// then waits for the shell's `pg_ctl stop`.
    fn drop(&mut self) {
        if let Some(keep) = self._keep.take() {
            let (stdin, mut child) = keep.into_inner().unwrap_or_else(|p| p.into_inner());
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// A private server of its own (not shared with the rest of the process, whatever
/// `EVENTFILE_TEST_POSTGRES_URL` says), for tests that crash and restart it. Stopped and
/// removed when dropped or when the process ends.
pub fn private_server() -> TestServer {
    start().unwrap_or_else(|e| panic!("cannot start a PostgreSQL server for tests: {e}"))
}

/// The server of this process: `EVENTFILE_TEST_POSTGRES_URL` if set, else a private one,
/// started on first use. Panics with what to do if no PostgreSQL binaries are installed.
pub fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => TestServer {
            url,
            _keep: None,
            _dir: None,
            restart: None,
        },
        _ => start().unwrap_or_else(|e| panic!("cannot start a PostgreSQL server for tests: {e}")),
    })
}

/// A store in a new schema of the test server, and the guard that drops the schema.
pub fn fresh_schema() -> (PostgresStore, SchemaGuard) {
    let guard = SchemaGuard::new();
    let store = PostgresStore::open_with(server().url(), guard.options())
        .unwrap_or_else(|e| panic!("cannot open a store in schema {}: {e}", guard.schema));
    (store, guard)
}

/// A schema name of the test server no other caller gets, in this process or another.
pub fn unique_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("t{}_{n}_{nanos}", std::process::id())
}

/// Drops its schema (and everything in it) when dropped.
#[derive(Debug)]
pub struct SchemaGuard {
    schema: String,
}

impl SchemaGuard {
    /// A guard of a new, unique schema name (the schema is created by the first open).
    pub fn new() -> SchemaGuard {
        SchemaGuard {
            schema: unique_schema(),
        }
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Options naming the schema.
    pub fn options(&self) -> PostgresOptions {
        PostgresOptions::new().schema(self.schema.clone())
    }
}

impl Default for SchemaGuard {
    fn default() -> Self {
        SchemaGuard::new()
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let dropped =
            postgres::Client::connect(server().url(), postgres::NoTls).and_then(|mut c| {
                c.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                    self.schema
                ))
            });
        if let Err(e) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}

/// The directory of PostgreSQL's programs: `EVENTFILE_POSTGRES_BIN`, the newest
/// `/usr/lib/postgresql/*/bin`, or the one holding `initdb` on the `PATH`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("EVENTFILE_POSTGRES_BIN") {
        return Ok(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|d| d.join("initdb").exists())
        .ok_or_else(|| {
            "no PostgreSQL binaries (initdb) found in /usr/lib/postgresql/*/bin or on the PATH: \
             install PostgreSQL (apt-get install postgresql), set EVENTFILE_POSTGRES_BIN, or set \
             EVENTFILE_TEST_POSTGRES_URL to a server's URL"
                .to_owned()
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `program` with `args`, as the `postgres` user when running as root.
fn as_server_user(bin: &Path, program: &str, root: bool) -> String {
    let p = bin.join(program).display().to_string();
    if root {
        format!("runuser -u postgres -- {p}")
    } else {
        p
    }
}

fn start() -> Result<TestServer, String> {
    let bin = bin_dir()?;
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("eventfile-pg-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    let path = dir.path().to_owned();
    if root {
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&path)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !chown.success() {
            return Err("chown of the server directory to user postgres failed".into());
        }
    }
    let data = path.join("data");
    let initdb = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} -D '{}' -U postgres --auth=trust --locale=C -E UTF8 --no-sync",
            as_server_user(&bin, "initdb", root),
            data.display()
        ))
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !initdb.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        ));
    }
    // One role must log in with a password, for the tests of a refused login.
    let hba = data.join("pg_hba.conf");
    let rest = std::fs::read_to_string(&hba).map_err(|e| format!("pg_hba.conf: {e}"))?;
    std::fs::write(
        &hba,
        format!("local all {PASSWORD_ROLE} scram-sha-256\n{rest}"),
    )
    .map_err(|e| format!("pg_hba.conf: {e}"))?;
    let pg_ctl = as_server_user(&bin, "pg_ctl", root);
    let log = path.join("server.log");
    let start_cmd = format!(
        "{pg_ctl} -D '{data}' -l '{log}' -w -o \"-k '{sock}' -c listen_addresses='' \
         -c max_connections=400\" start >/dev/null",
        data = data.display(),
        log = log.display(),
        sock = path.display(),
    );
    // Start, say so, wait for this process's end (its pipe closing), stop.
    let script = format!(
        "{start_cmd} && echo ready; \
         cat >/dev/null; {pg_ctl} -D '{data}' -m fast stop >/dev/null; rm -rf '{sock}'",
        data = data.display(),
        sock = path.display(),
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the server: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("waiting for the server: {e}"))?;
    if line.trim() != "ready" {
        let mut text = String::new();
        let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
        return Err(format!("the server did not start; its log:\n{text}"));
    }
    Ok(TestServer {
        url: format!(
            "postgres://postgres@localhost/postgres?host={}",
            path.display()
        ),
        _keep: Some(Mutex::new((stdin, child))),
        _dir: Some(dir),
        restart: Some(start_cmd),
    })
}
