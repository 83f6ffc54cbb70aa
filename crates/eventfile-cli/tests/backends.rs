//! The command-line tool on every backend: the store named by URL, configuration file or
//! directory (and their precedence), every command on SQLite and PostgreSQL, the file-only
//! commands refused elsewhere, `migrate`, and `export | import` moving a log between backends
//! with identical `cat` output. PostgreSQL is a real server (`eventfile_postgres::testing`).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use eventfile::{ExpectedVersion, NewEvent};
use serde_json::json;

/// The tool with the store named by `--url` (and, for PostgreSQL, `--config` naming a schema
/// of its own).
struct Backend {
    url: String,
    config: Option<PathBuf>,
    _tmp: tempfile::TempDir,
}

impl Backend {
    fn file() -> Backend {
        let tmp = tempfile::tempdir().unwrap();
        Backend {
            url: format!("file:{}", tmp.path().join("store").display()),
            config: None,
            _tmp: tmp,
        }
    }

    fn sqlite() -> Backend {
        let tmp = tempfile::tempdir().unwrap();
        Backend {
            url: format!("sqlite:{}", tmp.path().join("events.db").display()),
            config: None,
            _tmp: tmp,
        }
    }

    /// A fresh schema on the test server, named in a configuration file.
    fn postgres(name: &str) -> Backend {
        let tmp = tempfile::tempdir().unwrap();
        let url = eventfile_postgres::testing::server().url().to_owned();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!("cli_{name}_{}_{nanos}", std::process::id());
        let config = tmp.path().join("eventfile.toml");
        std::fs::write(&config, format!("[postgres]\nschema = \"{schema}\"\n")).unwrap();
        let b = Backend {
            url,
            config: Some(config),
            _tmp: tmp,
        };
        // Whatever an earlier run with the same pid left.
        b.run(&["migrate", "down", "--to", "0"]);
        b
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut c = common::command();
        // Out of the crate's directory: no stray eventfile.toml there is read.
        c.current_dir(self._tmp.path());
        c.arg("--url").arg(&self.url);
        if let Some(config) = &self.config {
            c.arg("--config").arg(config);
        }
        c.args(args).stdin(Stdio::piped()).stdout(Stdio::piped());
        c.stderr(Stdio::piped());
        let mut child = c.spawn().expect("run eventfile");
        let mut pipe = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            // A command that stops reading early (a refused line) closes its end.
            match pipe.write_all(bytes) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r.unwrap(),
            }
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            self.url,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if self.config.is_some() {
            self.run(&["migrate", "down", "--to", "0"]);
        }
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A file store with every field in use: several streams, metadata, tags, numbers written
/// with odd digits, unicode, batches.
fn rich_file_store(dir: &Path) {
    let store = eventfile::Store::open(dir).unwrap();
    for i in 0..30u64 {
        let stream = format!("order-{}", i % 4);
        let e = NewEvent::from_json_str(
            if i % 3 == 0 { "Placed" } else { "Added" },
            &format!(r#"{{"n":{i},"price":1.50,"big":12345678901234567890123,"s":"é\u0001"}}"#),
        )
        .unwrap()
        .with_meta_entry("correlation_id", format!("c{}", i % 5))
        .with_meta_entry("actor", "ann")
        .with_tag(format!("order={}", i % 4))
        .with_tag("region=eu");
        store
            .append(
                &stream,
                ExpectedVersion::Any,
                [
                    e.clone(),
                    e.with_id(format!("0190a0b0-0000-7000-8000-{i:012}")),
                ],
            )
            .unwrap();
    }
    store.close().unwrap();
}

/// `export | import` from the file store to PostgreSQL, to SQLite and back to a file store:
/// every backend's `cat` prints the very same lines, times included.
#[test]
fn export_import_moves_a_store_across_every_backend_unchanged() {
    let src = Backend::file();
    rich_file_store(Path::new(src.url.strip_prefix("file:").unwrap()));
    let pg = Backend::postgres("roundtrip");
    let lite = Backend::sqlite();
    let back = Backend::file();
    let original = src.ok(&["cat"]);
    assert_eq!(original.lines().count(), 60);
    let mut from = &src;
    for to in [&pg, &lite, &back] {
        let exported = from.ok(&["export"]);
        assert_eq!(exported, from.ok(&["cat"]));
        let out = to.run_with_stdin(&["import", "--batch", "7"], Some(exported.as_bytes()));
        assert!(out.status.success(), "{}: {}", to.url, stderr(&out));
        let r = &lines(&String::from_utf8(out.stdout).unwrap())[0];
        assert_eq!(
            (
                r["written"].as_u64(),
                r["skipped"].as_u64(),
                r["head"].as_u64()
            ),
            (Some(60), Some(0), Some(60))
        );
        assert_eq!(to.ok(&["cat"]), original, "{}", to.url);
        from = to;
    }
    // The same queries answer the same everywhere.
    for b in [&src, &pg, &lite, &back] {
        assert_eq!(
            b.ok(&["query", "--tag", "order=2", "--type", "Added"]),
            src.ok(&["query", "--tag", "order=2", "--type", "Added"]),
            "{}",
            b.url
        );
        assert_eq!(b.ok(&["streams"]), src.ok(&["streams"]), "{}", b.url);
    }
}

/// `generate` writes the same shop on every backend: one seed and start give the same events,
/// ids and times included, so every backend's `cat` prints the file store's lines.
#[test]
fn generate_writes_the_same_shop_on_every_backend() {
    let args = [
        "generate",
        "--events",
        "1500",
        "--seed",
        "9",
        "--start",
        "2026-01-01T00:00:00Z",
        "--batch",
        "400",
    ];
    let file = Backend::file();
    let r = lines(&file.ok(&args));
    assert_eq!(r[0]["written"].as_u64(), Some(1500));
    let expected = file.ok(&["cat"]);
    assert_eq!(expected.lines().count(), 1500);
    for b in [Backend::postgres("generate"), Backend::sqlite()] {
        assert_eq!(lines(&b.ok(&args)), r, "{}", b.url);
        assert_eq!(b.ok(&["cat"]), expected, "{}", b.url);
        let stats = lines(&b.ok(&["stats"]));
        assert_eq!(stats[0]["events"].as_u64(), Some(1500), "{}", b.url);
    }
}

/// A second import of the same lines writes nothing; a line that does not parse, or that
/// breaks a stream's version order, stops the import naming its line, with whole batches
/// written before it and nothing of its own batch.
#[test]
fn import_is_idempotent_and_stops_at_a_bad_line_with_whole_batches() {
    let src = Backend::file();
    rich_file_store(Path::new(src.url.strip_prefix("file:").unwrap()));
    let exported = src.ok(&["export", "--to", "10"]);
    for dst in [
        Backend::file(),
        Backend::sqlite(),
        Backend::postgres("idem"),
    ] {
        let first = dst.run_with_stdin(&["import"], Some(exported.as_bytes()));
        assert!(first.status.success(), "{}", stderr(&first));
        let again = dst.run_with_stdin(&["import"], Some(exported.as_bytes()));
        let r = &lines(&String::from_utf8(again.stdout).unwrap())[0];
        assert_eq!(
            (r["written"].as_u64(), r["skipped"].as_u64()),
            (Some(0), Some(10)),
            "{}",
            dst.url
        );

        // Lines 11.. of the export, with line 5 of them (a whole line) not JSON.
        let rest = src.ok(&["export", "--from", "11", "--to", "20"]);
        let mut bad: Vec<&str> = rest.lines().collect();
        bad[4] = "{\"seq\": 15, oops";
        let out = dst.run_with_stdin(&["import", "--batch", "2"], Some(bad.join("\n").as_bytes()));
        assert_eq!(out.status.code(), Some(1), "{}", dst.url);
        assert!(stderr(&out).contains("line 5:"), "{}", stderr(&out));
        // Lines 1-4 were two whole batches; line 5 began the third.
        assert_eq!(lines(&dst.ok(&["cat"])).len(), 14, "{}", dst.url);

        // A line longer than any event, never buffered whole.
        let huge = format!("{{\"seq\":1,\"data\":\"{}", "x".repeat(12 << 20));
        let out = dst.run_with_stdin(&["import"], Some(huge.as_bytes()));
        assert_eq!(out.status.code(), Some(1), "{}", dst.url);
        assert!(
            stderr(&out).contains("line 1 is longer than"),
            "{}",
            stderr(&out)
        );

        // A version gap: the next line of a stream skipping a version.
        let mut gap: Vec<serde_json::Value> =
            lines(&src.ok(&["export", "--from", "15", "--to", "20"]));
        // The last line, so that no later line of its stream is out of order too.
        let last = gap.len() - 1;
        gap[last]["version"] = json!(gap[last]["version"].as_u64().unwrap() + 5);
        let text: Vec<String> = gap.iter().map(|v| v.to_string()).collect();
        let out = dst.run_with_stdin(
            &["import", "--batch", "100"],
            Some(text.join("\n").as_bytes()),
        );
        assert_eq!(out.status.code(), Some(1), "{}", dst.url);
        let err = stderr(&out);
        assert!(
            err.contains("line 6:") && err.contains("order-1") && err.contains("version"),
            "{err}"
        );
        assert_eq!(lines(&dst.ok(&["cat"])).len(), 14, "{}", dst.url);
    }
}

/// Every command a backend can serve works on SQLite and PostgreSQL as on the file store.
#[test]
fn every_command_works_on_every_backend() {
    for b in [
        Backend::file(),
        Backend::sqlite(),
        Backend::postgres("every"),
        Backend {
            url: "memory:".into(),
            config: None,
            _tmp: tempfile::tempdir().unwrap(),
        },
    ] {
        let memory = b.url == "memory:";
        let appended = lines(&b.ok(&[
            "append",
            "order-1",
            "Placed",
            r#"{"total":12.50}"#,
            "--tag",
            "region=eu",
            "--meta",
            r#"{"correlation_id":"c1"}"#,
            "--id",
            "0190a0b0-0000-7000-8000-0000000000aa",
        ]));
        assert_eq!(
            appended[0],
            json!({"stream": "order-1", "version": 1, "seq": 1}),
            "{}",
            b.url
        );
        if memory {
            // Each run is a fresh store: nothing else to see.
            assert_eq!(b.ok(&["cat"]), "");
            continue;
        }
        let conflict = b.run(&["append", "order-1", "Paid", "--expect", "no-stream"]);
        assert_eq!(conflict.status.code(), Some(3), "{}", b.url);
        b.ok(&["append", "order-1", "Paid", "--expect", "1"]);
        b.ok(&["append", "order-2", "Placed"]);
        let cat = lines(&b.ok(&["cat"]));
        assert_eq!(cat.len(), 3);
        assert_eq!(cat[0]["data"], json!({"total": 12.50}));
        assert_eq!(
            lines(&b.ok(&["read", "order-1", "--backward"]))[0]["type"],
            "Paid"
        );
        assert_eq!(lines(&b.ok(&["query", "--correlation", "c1"])).len(), 1);
        assert_eq!(
            b.ok(&["query", "--type", "Placed", "--count"]).trim(),
            r#"{"count":2}"#
        );
        assert_eq!(
            lines(&b.ok(&["get", "0190a0b0-0000-7000-8000-0000000000aa"]))[0]["seq"],
            1
        );
        assert_eq!(
            b.run(&["get", "0190a0b0-0000-7000-8000-0000000000ff"])
                .status
                .code(),
            Some(4)
        );
        assert_eq!(lines(&b.ok(&["streams"])).len(), 2);
        assert_eq!(
            lines(&b.ok(&["types"]))[0],
            json!({"type": "Paid", "count": 1})
        );
        assert_eq!(
            lines(&b.ok(&["tags"]))[0],
            json!({"tag": "region=eu", "count": 1})
        );
        assert_eq!(lines(&b.ok(&["tail", "-n", "1"]))[0]["seq"], 3);
        // A consumer's checkpoint saved through the library (by a read-only handle, as a
        // projector beside the writer holds), listed with its lag.
        assert_eq!(b.ok(&["projections"]), "");
        {
            let config = eventfile_connect::load_config(b.config.as_deref()).unwrap();
            let location = eventfile_connect::resolve(Some(&b.url), &config, None).unwrap();
            let store = eventfile_connect::open_with(
                &location,
                &config,
                eventfile_connect::Access::ReadOnly,
            )
            .unwrap();
            store.as_dyn().checkpoints().save("summary", 2).unwrap();
        }
        let stats = lines(&b.ok(&["stats"]));
        assert_eq!(
            (&stats[0]["events"], &stats[0]["head"], &stats[0]["streams"]),
            (&json!(3), &json!(3), &json!(2)),
            "{}",
            b.url
        );
        let listed = lines(&b.ok(&["projections"]));
        assert_eq!(
            (
                &listed[0]["name"],
                &listed[0]["position"],
                &listed[0]["lag"]
            ),
            (&json!("summary"), &json!(2), &json!(1)),
            "{}",
            b.url
        );
        b.ok(&[
            "snapshot",
            "save",
            "order-1",
            "--version",
            "2",
            r#"{"paid":true}"#,
        ]);
        assert_eq!(
            lines(&b.ok(&["snapshot", "show", "order-1"]))[0]["state"],
            json!({"paid": true})
        );
        assert_eq!(
            lines(&b.ok(&["truncate", "order-1", "--before", "2"]))[0]["deleted_before"],
            2
        );
        assert_eq!(
            lines(&b.ok(&["delete", "order-2", "--hard"]))[0]["tombstone"],
            true
        );
        assert_eq!(b.run(&["append", "order-2", "X"]).status.code(), Some(1));
        let init = b.run(&["init"]);
        assert!(init.status.success(), "{}", stderr(&init));
    }
}

/// The commands that work on the file store's segments say so on other backends and exit 1;
/// `migrate` says so on the file store.
#[test]
fn file_only_commands_are_refused_elsewhere() {
    let lite = Backend::sqlite();
    lite.ok(&["append", "s", "T"]);
    for args in [
        &["compact"][..],
        &["verify"],
        &["reindex"],
        &["retention", "--dry-run"],
        &["bench", "--appends", "1"],
    ] {
        let out = lite.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("is not supported by the sqlite backend"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let file = Backend::file();
    let out = file.run(&["migrate", "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("migrate is not supported by the file backend"),
        "{}",
        stderr(&out)
    );
}

/// A reading command on a PostgreSQL schema that holds no store (a mistyped name in the
/// configuration file) fails naming the schema, and creates nothing: reads open without
/// migrations. It once created the schema and its tables and printed nothing, exit 0.
#[test]
fn a_reading_command_on_a_missing_postgres_schema_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let url = eventfile_postgres::testing::server().url().to_owned();
    let schema = eventfile_postgres::testing::unique_schema();
    let config = tmp.path().join("eventfile.toml");
    std::fs::write(&config, format!("[postgres]\nschema = \"{schema}\"\n")).unwrap();
    let b = Backend {
        url: url.clone(),
        config: None,
        _tmp: tmp,
    };
    for args in [
        &["cat"][..],
        &["query", "--type", "T"],
        &["streams"],
        &["snapshot", "show", "s"],
    ] {
        let out = b.run(&[&["--config", config.to_str().unwrap()][..], args].concat());
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&out).contains(&schema) && stderr(&out).contains("holds no eventfile store"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "a reading command created schema {schema}");
}

/// `migrate` down and up again on SQLite and PostgreSQL, with `status` between.
#[test]
fn migrate_goes_down_and_up() {
    for b in [Backend::sqlite(), Backend::postgres("migrate")] {
        b.ok(&["append", "s", "T"]);
        let status = lines(&b.ok(&["migrate", "status"]))[0].clone();
        let latest = status["latest"].as_u64().unwrap();
        assert_eq!(status["current"].as_u64(), Some(latest), "{}", b.url);
        assert_eq!(
            lines(&b.ok(&["migrate", "down", "--to", "0"]))[0]["current"],
            0
        );
        assert_eq!(
            lines(&b.ok(&["migrate", "up"]))[0]["current"].as_u64(),
            Some(latest)
        );
        // Down to 0 removed the events with the tables.
        assert_eq!(b.ok(&["cat"]), "");
    }
}

/// `--url` beats `EVENTFILE_URL`, which beats the configuration file, which beats `--dir`;
/// a bad URL or configuration file is a usage error naming the problem, and nothing is made.
#[test]
fn the_store_is_named_by_url_then_environment_then_config_then_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("by-dir");
    let env_db = tmp.path().join("env.db");
    let flag_db = tmp.path().join("flag.db");
    let config_db = tmp.path().join("config.db");
    let config = tmp.path().join("eventfile.toml");
    std::fs::write(
        &config,
        format!("url = \"sqlite:{}\"\n", config_db.display()),
    )
    .unwrap();
    let run = |args: &[&str], env_url: Option<&Path>, with_config: bool| {
        let mut c = common::command();
        c.arg("--dir").arg(&dir);
        if let Some(p) = env_url {
            c.env("EVENTFILE_URL", format!("sqlite:{}", p.display()));
        }
        if with_config {
            c.env("EVENTFILE_CONFIG", &config);
        }
        let out = c.args(args).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        // The directory named on purpose and passed over is not passed over in silence.
        assert_eq!(
            stderr(&out).contains("--dir/EVENTFILE_DIR is overridden"),
            env_url.is_some() || with_config || args.contains(&"--url"),
            "{args:?}: {}",
            stderr(&out)
        );
    };
    run(
        &[
            "append",
            "s",
            "T",
            "--url",
            &format!("sqlite:{}", flag_db.display()),
        ],
        Some(&env_db),
        true,
    );
    assert!(flag_db.exists() && !env_db.exists() && !config_db.exists() && !dir.exists());
    run(&["append", "s", "T"], Some(&env_db), true);
    assert!(env_db.exists() && !config_db.exists() && !dir.exists());
    run(&["append", "s", "T"], None, true);
    assert!(config_db.exists() && !dir.exists());
    run(&["append", "s", "T"], None, false);
    assert!(dir.join("eventfile.json").exists());

    // A configuration file in the working directory is read without being named.
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    std::fs::write(cwd.join("eventfile.toml"), "url = \"sqlite:here.db\"\n").unwrap();
    let out = common::command()
        .current_dir(&cwd)
        .args(["append", "s", "T"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cwd.join("here.db").exists());

    for (args, says) in [
        (
            vec!["--url", "mysql://h/db", "cat"],
            "unknown scheme `mysql:`",
        ),
        (vec!["--url", "memory:x", "cat"], "takes nothing"),
    ] {
        let out = common::command().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let bad = tmp.path().join("bad.toml");
    for (text, says) in [
        ("colour = \"blue\"\n", "unknown field `colour`"),
        ("[postgres]\npool_size = \"eight\"\n", "invalid type"),
    ] {
        std::fs::write(&bad, text).unwrap();
        let out = common::command()
            .arg("--config")
            .arg(&bad)
            .args(["--dir", dir.to_str().unwrap(), "append", "s", "T"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = stderr(&out);
        assert!(err.contains(says) && err.contains("bad.toml"), "{err}");
    }
    let missing = common::command()
        .args(["--config", "/nonexistent/eventfile.toml", "cat"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("/nonexistent/eventfile.toml"));
    // Nothing was written by the refused commands.
    let store = eventfile::Store::open_read_only(&dir).unwrap();
    assert_eq!(store.head_seq(), 1);
}

/// A server that is not there: a clear error, quickly, with the password never printed.
#[test]
fn an_unreachable_server_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://app:s3cret@localhost/events?host={}",
        tmp.path().display()
    );
    let started = std::time::Instant::now();
    let out = common::command()
        .args(["--url", &url, "cat"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("postgres unavailable"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// An import killed with SIGKILL halfway leaves whole batches only, and running it again
/// completes the store: the same `cat` as the source, each event once.
#[test]
fn an_import_killed_halfway_resumes_to_the_same_store() {
    let src = Backend::file();
    let src_dir = PathBuf::from(src.url.strip_prefix("file:").unwrap());
    {
        let store = eventfile::OpenOptions::new()
            .durability(eventfile::Durability::None)
            .open(&src_dir)
            .unwrap();
        for i in 0..4000u64 {
            let e = NewEvent::new("T", json!({ "i": i })).with_tag(format!("k={}", i % 7));
            store
                .append(&format!("s-{}", i % 50), ExpectedVersion::Any, [e])
                .unwrap();
        }
        store.close().unwrap();
    }
    let original = src.ok(&["cat"]);
    let file = src._tmp.path().join("export.jsonl");
    std::fs::write(&file, src.ok(&["export"])).unwrap();
    let file = file.to_str().unwrap();

    for dst in [
        Backend::file(),
        Backend::sqlite(),
        Backend::postgres("killed"),
    ] {
        // Made first, so that the reader below opens it read-only (a file store's reader must
        // not take the writer's lock).
        dst.ok(&["init"]);
        let mut c = common::command();
        c.arg("--url").arg(&dst.url);
        if let Some(config) = &dst.config {
            c.arg("--config").arg(config);
        }
        let mut child = c
            .args(["import", "--batch", "50", file])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it once some batches are in: the head read through the library.
        let reader = eventfile_connect::open_with(
            &eventfile_connect::Location::parse(&dst.url).unwrap(),
            &dst.config
                .as_ref()
                .map_or_else(eventfile_connect::Config::default, |p| {
                    eventfile_connect::Config::load(p).unwrap()
                }),
            eventfile_connect::Access::ReadOnly,
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        while let Ok(store) = &reader {
            if let eventfile_connect::AnyStore::File(s) = store {
                let _ = s.refresh();
            }
            seen = store.as_dyn().head_seq().unwrap_or(0);
            if seen >= 500 || Instant::now() > deadline {
                break;
            }
            // Not a synchronisation: the loop waits for the head to pass 500, this only spares
            // the server a query per spin.
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(reader);
        assert!(seen >= 500, "{}: the import never got going", dst.url);
        child.kill().unwrap();
        child.wait().unwrap();
        // What a reader sees now: whole batches. (A file store's last batch may be written
        // but not yet published to readers when the writer died; the next writer's recovery
        // keeps it, whole, since it is complete on disk.)
        let visible = lines(&dst.ok(&["cat"])).len() as u64;
        assert_eq!(
            visible % 50,
            0,
            "{}: {visible} events: not whole batches",
            dst.url
        );
        assert!(visible >= seen.min(4000), "{}", dst.url);
        assert!(
            visible < 4000,
            "{}: the import ended before it was killed",
            dst.url
        );

        let out = dst.run(&["import", "--batch", "50", file]);
        assert!(out.status.success(), "{}", stderr(&out));
        let r = &lines(&String::from_utf8(out.stdout).unwrap())[0];
        let (written, skipped) = (
            r["written"].as_u64().unwrap(),
            r["skipped"].as_u64().unwrap(),
        );
        assert_eq!(written + skipped, 4000, "{}", dst.url);
        assert!(
            skipped >= visible && skipped % 50 == 0,
            "{}: {skipped} skipped",
            dst.url
        );
        assert_eq!(dst.ok(&["cat"]), original, "{}", dst.url);
    }
}

/// An export saved by an editor that starts UTF-8 files with a byte-order mark imports as
/// without it (its first line was refused as not JSON, and nothing was imported).
#[test]
fn an_import_takes_a_file_that_starts_with_a_byte_order_mark() {
    let src = Backend::file();
    rich_file_store(Path::new(src.url.strip_prefix("file:").unwrap()));
    let exported = src.ok(&["export"]);
    let mut with_bom = "\u{feff}".as_bytes().to_vec();
    with_bom.extend_from_slice(exported.as_bytes());
    let dst = Backend::file();
    let out = dst.run_with_stdin(&["import"], Some(&with_bom));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(dst.ok(&["cat"]), src.ok(&["cat"]));
}
