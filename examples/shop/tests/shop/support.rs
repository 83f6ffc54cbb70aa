//! Running `shop` on a store of its own, and reading a read-model file row by row.

// Each module uses part of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rusqlite::{Connection, OpenFlags};

/// `shop` on one store and one read-model file, in a temporary directory.
pub struct Shop {
    pub url: String,
    pub config: Option<PathBuf>,
    pub read_db: PathBuf,
    pub tmp: tempfile::TempDir,
    /// Dropped last: the PostgreSQL schema.
    pub guard: Option<eventfile_postgres::testing::SchemaGuard>,
}

impl Shop {
    /// A file store.
    pub fn file() -> Shop {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("file:{}", tmp.path().join("store").display());
        Shop::at(tmp, url)
    }

    /// A SQLite store, named by a `sqlite:` URL.
    pub fn sqlite() -> Shop {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", tmp.path().join("events.db").display());
        Shop::at(tmp, url)
    }

    /// A fresh schema on the test server (`eventfile_postgres::testing`), named in a
    /// configuration file beside the server's URL.
    pub fn postgres() -> Shop {
        let tmp = tempfile::tempdir().unwrap();
        let guard = eventfile_postgres::testing::SchemaGuard::new();
        let config = tmp.path().join("eventfile.toml");
        std::fs::write(
            &config,
            format!(
                "[postgres]\nschema = \"{}\"\npool_size = 2\n",
                guard.schema()
            ),
        )
        .unwrap();
        let url = eventfile_postgres::testing::server().url().to_owned();
        let mut shop = Shop::at(tmp, url);
        shop.config = Some(config);
        shop.guard = Some(guard);
        shop
    }

    fn at(tmp: tempfile::TempDir, url: String) -> Shop {
        Shop {
            url,
            config: None,
            read_db: tmp.path().join("read.db"),
            tmp,
            guard: None,
        }
    }

    /// The command with this store and read model named, run in the temporary directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = bare();
        c.current_dir(self.tmp.path());
        c.arg("--url").arg(&self.url);
        if let Some(config) = &self.config {
            c.arg("--config").arg(config);
        }
        c.arg("--read-db").arg(&self.read_db).args(args);
        c
    }

    /// Runs a command, with `stdin` as its input.
    pub fn run_with(&self, args: &[&str], stdin: &str) -> Output {
        run_with(&mut self.command(args), stdin)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, "")
    }

    /// Runs a command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        ok(&self.run(args), args)
    }

    /// Runs a command that must fail with `code`; its stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        fails(&self.run(args), code, args)
    }
}

/// The `shop` binary, with none of the environment that names a store.
pub fn bare() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shop"));
    for var in ["EVENTFILE_URL", "EVENTFILE_CONFIG"] {
        c.env_remove(var);
    }
    c
}

pub fn run_with(c: &mut Command, stdin: &str) -> Output {
    use std::io::Write;
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run shop");
    let mut pipe = child.stdin.take().unwrap();
    match pipe.write_all(stdin.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.unwrap(),
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

pub fn ok(out: &Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "shop {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn fails(out: &Output, code: i32, args: &[&str]) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "shop {args:?}: stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Every row of a read-model file, table by table, in a fixed order.
#[derive(Debug, PartialEq, Eq)]
pub struct Dump {
    /// (order, customer, items, total, paid, status)
    pub summary: Vec<(String, String, i64, i64, i64, String)>,
    /// (order, line, sku, quantity, unit price, amount, seq)
    pub lines: Vec<(String, i64, String, i64, i64, i64, i64)>,
    /// (projection, position)
    pub checkpoints: Vec<(String, i64)>,
    /// (key, value)
    pub meta: Vec<(String, String)>,
}

/// A connection to a read-model file that exists (never created here), for reading: in WAL
/// mode it never blocks the projector writing the file.
pub fn try_connect(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(c)
}

pub fn connect(path: &Path) -> Connection {
    try_connect(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The position each projection's checkpoint row holds; empty while the file or its table
/// is not there yet.
pub fn positions(path: &Path) -> std::collections::BTreeMap<String, u64> {
    let Ok(c) = try_connect(path) else {
        return Default::default();
    };
    let Ok(mut stmt) = c.prepare("SELECT name, position FROM projection_checkpoints") else {
        return Default::default();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
        .and_then(Iterator::collect)
        .unwrap_or_default()
}

pub fn dump(path: &Path) -> Dump {
    let c = connect(path);
    let rows = |sql: &str| -> Vec<Vec<rusqlite::types::Value>> {
        let mut stmt = c.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    use rusqlite::types::Value as V;
    let text = |v: &V| match v {
        V::Text(s) => s.clone(),
        other => panic!("not text: {other:?}"),
    };
    let int = |v: &V| match v {
        V::Integer(n) => *n,
        other => panic!("not an integer: {other:?}"),
    };
    Dump {
        summary: rows("SELECT * FROM order_summary ORDER BY order_id")
            .iter()
            .map(|r| (text(&r[0]), text(&r[1]), int(&r[2]), int(&r[3]), int(&r[4]), text(&r[5])))
            .collect(),
        lines: rows("SELECT order_id, line, sku, quantity, unit_price, amount, seq FROM order_lines ORDER BY order_id, line")
            .iter()
            .map(|r| (text(&r[0]), int(&r[1]), text(&r[2]), int(&r[3]), int(&r[4]), int(&r[5]), int(&r[6])))
            .collect(),
        checkpoints: rows("SELECT name, position FROM projection_checkpoints ORDER BY name")
            .iter()
            .map(|r| (text(&r[0]), int(&r[1])))
            .collect(),
        meta: rows("SELECT key, value FROM shop_meta ORDER BY key")
            .iter()
            .map(|r| (text(&r[0]), text(&r[1])))
            .collect(),
    }
}

/// One JSON value a line.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}
