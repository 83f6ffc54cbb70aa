//! The `eventfile` binary: commands, output contracts and exit codes.

mod common;
use common::{eventfile, store_of_small_events};

use std::path::Path;
use std::process::{Output, Stdio};

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[test]
fn append_prints_position_and_conflicts_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let out = eventfile(
        &dir,
        &[
            "append",
            "order-1",
            "OrderPlaced",
            r#"{"customer":"ann"}"#,
            "--expect",
            "no-stream",
            "--tag",
            "region=eu",
            "--meta",
            r#"{"actor":"me"}"#,
            "--id",
            "e-1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"stream":"order-1","version":1,"seq":1}"#
    );

    let out = eventfile(
        &dir,
        &[
            "append",
            "order-1",
            "OrderPlaced",
            "{}",
            "--expect",
            "no-stream",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("expected no-stream") && err.contains("actual version is 1"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // Data from stdin, exact expectation.
    let mut child = common::command()
        .arg("--dir")
        .arg(&dir)
        .args(["append", "order-1", "ItemAdded", "-", "--expect", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), br#"{"sku":"A-1"}"#).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(json_lines(&out)[0]["version"], 2);

    let events = json_lines(&eventfile(&dir, &["read", "order-1"]));
    assert_eq!(events.len(), 2);
    let e = &events[0];
    let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "seq", "id", "stream", "version", "type", "time", "data", "meta", "tags",
    ] {
        assert!(keys.contains(&k), "missing {k} in {e}");
    }
    assert_eq!(e["id"], "e-1");
    assert_eq!(e["data"]["customer"], "ann");
    assert_eq!(e["meta"]["actor"], "me");
    assert_eq!(e["tags"][0], "region=eu");
    assert!(eventfile::parse_rfc3339(e["time"].as_str().unwrap()).is_some());
    assert_eq!(events[1]["data"]["sku"], "A-1");
}

#[test]
fn bad_input_exits_non_zero_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(eventfile(dir, &["append", "s", "T", "{}"]).status.success());
    // Malformed values, names and tags the library's rules refuse: usage errors (2).
    for (args, code) in [
        (&["append", "s", "T", "{bad"][..], 2),
        (&["append", "s", "T", "{}", "--meta", "[1]"], 2),
        (&["append", "", "T"], 2),
        (&["append", "s", "T", "{}", "--expect", "maybe"], 2),
        (&["append", "s", "T", "{}", "--tag", "novalue"], 2),
    ] {
        let out = eventfile(dir, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
    assert_eq!(json_lines(&eventfile(dir, &["cat"])).len(), 1);
    assert_eq!(eventfile(dir, &["frobnicate"]).status.code(), Some(2));
}

#[test]
fn read_and_cat_options() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for i in 0..6 {
        let stream = if i % 2 == 0 { "a" } else { "b" };
        assert!(
            eventfile(dir, &["append", stream, "T", &i.to_string()])
                .status
                .success()
        );
    }
    let seqs = |out: Output| {
        json_lines(&out)
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(eventfile(dir, &["cat"])), [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        seqs(eventfile(dir, &["cat", "--from", "3", "--limit", "2"])),
        [3, 4]
    );
    assert_eq!(seqs(eventfile(dir, &["read", "a"])), [1, 3, 5]);
    assert_eq!(seqs(eventfile(dir, &["read", "a", "--from", "2"])), [3, 5]);
    assert_eq!(
        seqs(eventfile(dir, &["read", "b", "--backward", "--limit", "2"])),
        [6, 4]
    );
    assert!(seqs(eventfile(dir, &["read", "nobody"])).is_empty());
}

#[test]
fn init_persists_options_and_dir_comes_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let out = eventfile(&dir, &["init", "--segment-bytes", "8192"]);
    assert!(out.status.success());
    assert_eq!(json_lines(&out)[0]["segment_bytes"], 8192);
    // A second init with other options does nothing: the persisted ones stay.
    let out = eventfile(&dir, &["init", "--segment-bytes", "99999"]);
    assert_eq!(json_lines(&out)[0]["segment_bytes"], 8192);
    let store = eventfile::Store::open_read_only(&dir).unwrap();
    assert_eq!(store.config().segment_bytes, 8192);

    let out = common::command()
        .env("EVENTFILE_DIR", &dir)
        .args(["append", "x", "T"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        eventfile::Store::open_read_only(&dir).unwrap().head_seq(),
        1
    );
}

/// A variable set to nothing is as if unset: the next source decides (before, each was a usage
/// error, exit 2). An empty EVENTFILE_TOKEN stays an error (see `serve.rs`).
#[test]
fn empty_store_variables_are_passed_over() {
    let tmp = tempfile::tempdir().unwrap();
    // `append x T` run in the temporary directory with EVENTFILE_URL and EVENTFILE_CONFIG
    // empty and EVENTFILE_DIR as given; the head of the store it wrote in `expected`.
    let append_in = |dir_var: &std::ffi::OsStr, expected: &Path| {
        let out = common::command()
            .current_dir(tmp.path())
            .env("EVENTFILE_URL", "")
            .env("EVENTFILE_CONFIG", "")
            .env("EVENTFILE_DIR", dir_var)
            .args(["append", "x", "T"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eventfile::Store::open_read_only(expected)
            .unwrap()
            .head_seq()
    };
    let dir = tmp.path().join("s");
    assert_eq!(append_in(dir.as_os_str(), &dir), 1);
    // With every one empty, the default directory in the working directory.
    let default = tmp.path().join("eventfile-data");
    assert_eq!(append_in("".as_ref(), &default), 1);
}

/// Three events in stream `s`, through the tool.
fn append_three(dir: &Path) {
    for i in 0..3 {
        assert!(
            eventfile(dir, &["append", "s", "T", &i.to_string()])
                .status
                .success()
        );
    }
}

#[test]
fn verify_reports_damage_with_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    append_three(dir);
    let out = eventfile(dir, &["verify"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("sound: 1 segments, 3 events"));

    let seg = dir.join("00000000000000000001.jsonl");
    let mut bytes = std::fs::read(&seg).unwrap();
    let second = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 1;
    bytes[second + 5] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let out = eventfile(dir, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("00000000000000000001.jsonl at byte {second}")),
        "{text}"
    );
}

/// The configuration file's `[file]` options are the store's wherever a command creates one:
/// `init` (flags over them), and `compact`, `retention` and `reindex`, which once created stores
/// with the defaults.
#[test]
fn commands_that_create_a_file_store_take_the_configuration_files_options() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("eventfile.toml"),
        "[file]\nsegment_bytes = 1048576\nmax_event_bytes = 65536\n",
    )
    .unwrap();
    for (name, args) in [
        ("init", &["init"][..]),
        ("compact", &["compact"]),
        ("retention", &["retention"]),
        ("reindex", &["reindex"]),
    ] {
        let dir = tmp.path().join(name);
        let out = common::command()
            .current_dir(tmp.path())
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = eventfile::Store::open_read_only(&dir).unwrap().config();
        assert_eq!(
            (c.segment_bytes, c.max_event_bytes),
            (1_048_576, 65_536),
            "{name}"
        );
    }
    let dir = tmp.path().join("flags");
    let out = common::command()
        .current_dir(tmp.path())
        .arg("--dir")
        .arg(&dir)
        .args(["init", "--segment-bytes", "8192"])
        .output()
        .unwrap();
    assert_eq!(json_lines(&out)[0]["segment_bytes"], 8192);
    assert_eq!(json_lines(&out)[0]["max_event_bytes"], 65_536);
}

/// `init`'s file-store flags mean nothing to another backend: refused (exit 2), not ignored.
#[test]
fn init_refuses_file_store_flags_on_another_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("ev.db");
    let out = common::command()
        .args(["--url", &format!("sqlite:{}", db.display())])
        .args(["init", "--segment-bytes", "1000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("file store only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!db.exists(), "the refused init created the database");
}

/// `verify`'s exit code says what it found even when its reader has gone (a closed pipe is
/// not an error for a listing, but must not turn an unsound store into exit 0).
#[test]
fn verify_of_an_unsound_store_exits_1_into_a_closed_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(eventfile(dir, &["append", "s", "T", "1"]).status.success());
    std::fs::write(dir.join("00000000000000000009.jsonl"), b"").unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = common::command()
        .arg("--dir")
        .arg(dir)
        .arg("verify")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An import that writes nothing reports the store's head, not 0.
#[test]
fn an_import_that_writes_nothing_reports_the_stores_head() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    append_three(dir);
    let exported = eventfile(dir, &["export"]);
    assert!(exported.status.success());
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, b"").unwrap();
    let all = tmp.path().join("all.jsonl");
    std::fs::write(&all, &exported.stdout).unwrap();
    for file in [&empty, &all] {
        let out = eventfile(dir, &["import", file.to_str().unwrap()]);
        assert!(out.status.success());
        assert_eq!(json_lines(&out)[0]["head"], 3, "{}", file.display());
        assert_eq!(json_lines(&out)[0]["written"], 0, "{}", file.display());
    }
}

#[test]
fn verify_exits_1_on_a_store_a_writer_refuses_to_open() {
    // Hostile testing: `verify` said "sound" of stores whose next writer open fails.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(eventfile(dir, &["append", "s", "T", "1"]).status.success());
    std::fs::create_dir(dir.join("00000000000000000042.idx.tmp")).unwrap();
    std::fs::write(dir.join("00000000000000000009.jsonl"), b"").unwrap();
    let out = eventfile(dir, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["00000000000000000042.idx.tmp", "00000000000000000009.jsonl"] {
        assert!(text.contains(name), "{name} not named: {text}");
    }
    assert!(!eventfile(dir, &["append", "s", "T", "2"]).status.success());
}

#[test]
fn demo_runs_end_to_end() {
    // The demo keeps its store in the temporary directory for the user to inspect: here that
    // directory is the test's, so that every run of the suite does not leave a store behind.
    let tmp = tempfile::tempdir().unwrap();
    // The demo makes its own store: a store URL in the environment, even a bad one, is not
    // its business.
    let out = common::command()
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .env("EVENTFILE_URL", "mysql://db/events")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("refused, nothing written"), "{text}");
    assert!(text.contains("verify: sound (7 events"), "{text}");
    assert!(text.contains("total 33.99, paid true"), "{text}");
    let kept: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(kept.len(), 1, "the demo's one store, in TMPDIR");
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    store_of_small_events(dir, 20_000);
    let mut child = common::command()
        .arg("--dir")
        .arg(dir)
        .arg("cat")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
}

/// Six events over two streams, with types, tags and metadata to filter on.
fn query_fixture(dir: &Path) {
    let rows = [
        (
            "order-1",
            "Placed",
            "region=eu",
            r#"{"actor":"ann","correlation_id":"c1"}"#,
        ),
        (
            "order-2",
            "Placed",
            "region=us",
            r#"{"actor":"bob","correlation_id":"c2"}"#,
        ),
        (
            "order-1",
            "Paid",
            "region=eu",
            r#"{"actor":"ann","causation_id":"x9"}"#,
        ),
        ("cart-7", "Added", "region=eu", r#"{"actor":"cy"}"#),
        ("order-2", "Paid", "region=us", r#"{"actor":"bob"}"#),
        ("cart-7", "Added", "promo=yes", r#"{}"#),
    ];
    for (i, (stream, t, tag, meta)) in rows.iter().enumerate() {
        let out = eventfile(
            dir,
            &[
                "append",
                stream,
                t,
                &i.to_string(),
                "--tag",
                tag,
                "--meta",
                meta,
                "--id",
                &format!("id-{i}"),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn query_filters_and_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    query_fixture(dir);
    let seqs = |args: &[&str]| -> Vec<u64> {
        let mut full = vec!["query"];
        full.extend_from_slice(args);
        let out = eventfile(dir, &full);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out)
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&[]), [1, 2, 3, 4, 5, 6]);
    assert_eq!(seqs(&["--stream", "order-1"]), [1, 3]);
    assert_eq!(
        seqs(&["--stream", "order-1", "--stream", "cart-7"]),
        [1, 3, 4, 6]
    );
    assert_eq!(seqs(&["--prefix", "order-"]), [1, 2, 3, 5]);
    assert_eq!(seqs(&["--type", "Paid"]), [3, 5]);
    assert_eq!(seqs(&["--type", "Paid", "--type", "Added"]), [3, 4, 5, 6]);
    assert_eq!(seqs(&["--tag", "region=eu"]), [1, 3, 4]);
    assert_eq!(seqs(&["--tag", "region=eu", "--type", "Placed"]), [1]);
    assert_eq!(seqs(&["--from-seq", "2", "--to-seq", "4"]), [2, 3, 4]);
    assert_eq!(seqs(&["--actor", "bob"]), [2, 5]);
    assert_eq!(seqs(&["--correlation", "c1"]), [1]);
    assert_eq!(seqs(&["--causation", "x9"]), [3]);
    assert_eq!(seqs(&["--backward", "--limit", "2"]), [6, 5]);
    assert_eq!(
        seqs(&[
            "--since",
            "2000-01-01T00:00:00Z",
            "--until",
            "2999-01-01T00:00:00Z"
        ]),
        [1, 2, 3, 4, 5, 6]
    );
    assert!(seqs(&["--since", "2999-01-01T00:00:00Z"]).is_empty());

    let out = eventfile(dir, &["query", "--prefix", "order-", "--count"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"count":4}"#
    );

    // Pages of two, following the cursor printed on stderr.
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..5 {
        let mut args = vec!["query", "--limit", "2"];
        if let Some(a) = &after {
            args.extend(["--after", a.as_str()]);
        }
        let out = eventfile(dir, &args);
        assert!(out.status.success());
        let page = json_lines(&out);
        if page.is_empty() {
            break;
        }
        got.extend(page.iter().map(|e| e["seq"].as_u64().unwrap()));
        let next: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
        after = Some(next["next"].as_str().unwrap().to_string());
    }
    assert_eq!(got, [1, 2, 3, 4, 5, 6]);

    for (args, code, needle) in [
        (&["query", "--since", "yesterday"][..], 2, "RFC 3339"),
        (&["query", "--after", "not-a-cursor"], 2, "cursor"),
        (&["query", "--tag", "novalue"], 2, "tag"),
        (
            &["query", "--from-seq", "5", "--to-seq", "2"],
            2,
            "seq range",
        ),
    ] {
        let out = eventfile(dir, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}"
        );
    }
    assert_eq!(
        eventfile(dir, &["query", "--frobnicate"]).status.code(),
        Some(2)
    );
}

#[test]
fn get_streams_types_tags_reindex() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    query_fixture(dir);
    let out = eventfile(dir, &["get", "id-2"]);
    assert!(out.status.success());
    assert_eq!(json_lines(&out)[0]["seq"], 3);
    let out = eventfile(dir, &["get", "nope"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no event with id `nope`"));

    let out = eventfile(dir, &["streams"]);
    let streams: Vec<(String, u64)> = json_lines(&out)
        .iter()
        .map(|s| {
            (
                s["stream"].as_str().unwrap().to_string(),
                s["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        streams,
        [
            ("cart-7".to_string(), 2),
            ("order-1".to_string(), 2),
            ("order-2".to_string(), 2)
        ]
    );
    assert_eq!(
        json_lines(&eventfile(
            dir,
            &["streams", "--prefix", "order-", "--limit", "1"]
        ))
        .len(),
        1
    );
    assert_eq!(
        json_lines(&eventfile(dir, &["streams", "--after", "order-1"]))[0]["stream"],
        "order-2"
    );

    let types = json_lines(&eventfile(dir, &["types"]));
    assert_eq!(types[0], serde_json::json!({"type": "Added", "count": 2}));
    let tags = json_lines(&eventfile(dir, &["tags"]));
    assert!(tags.contains(&serde_json::json!({"tag": "region=eu", "count": 3})));

    let out = eventfile(dir, &["reindex"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        json_lines(&out)[0]["segments"],
        0,
        "one active segment, nothing sealed"
    );
}

/// The lifecycle commands on a scripted scenario: three carts and an order; one cart deleted,
/// one tombstoned, one truncated; compaction, snapshots, retention and an idempotent append.
#[test]
fn lifecycle_commands_print_json() {
    use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    {
        let store = OpenOptions::new()
            .segment_bytes(16 * 1024)
            .durability(Durability::None)
            .open(d)
            .unwrap();
        for i in 0..600u64 {
            let stream = if i < 450 {
                format!("cart-{}", i % 3)
            } else {
                "order-1".into()
            };
            let e = NewEvent::new(
                "ItemAdded",
                serde_json::json!({"sku": i, "pad": "x".repeat(100)}),
            );
            store.append(&stream, ExpectedVersion::Any, [e]).unwrap();
        }
    }
    let ok = |args: &[&str]| {
        let out = eventfile(d, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out).pop().unwrap()
    };
    let fails = |args: &[&str], code: i32, msg: &str| {
        let out = eventfile(d, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
    };

    let soft = ok(&["delete", "cart-0"]);
    assert_eq!(soft["deleted_before"], 151);
    assert_eq!(soft["tombstone"], false);
    assert_eq!(soft["seq"], 601);
    let hard = ok(&["delete", "cart-1", "--hard"]);
    assert_eq!(hard["tombstone"], true);
    fails(&["delete", "cart-1"], 1, "deleted permanently");
    fails(
        &["delete", "order-1", "--expect", "5"],
        3,
        "wrong expected version",
    );
    let cut = ok(&["truncate", "cart-2", "--before", "120"]);
    assert_eq!(
        (cut["version"].as_u64(), cut["deleted_before"].as_u64()),
        (Some(150), Some(120))
    );
    fails(
        &["truncate", "cart-2", "--before", "999"],
        1,
        "truncate before a version",
    );
    // The listings agree with queries: 150 + 150 + 119 events are gone, and so are the
    // streams left with none.
    let types = json_lines(&eventfile(d, &["types"]));
    let added = types.iter().find(|t| t["type"] == "ItemAdded").unwrap();
    assert_eq!(added["count"], 600 - 150 - 150 - 119);
    assert_eq!(
        added["count"],
        ok(&["query", "--type", "ItemAdded", "--count"])["count"]
    );
    let streams: Vec<_> = json_lines(&eventfile(d, &["streams"]))
        .iter()
        .map(|s| s["stream"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(streams, ["$lifecycle", "cart-2", "order-1"]);

    let dry = ok(&["compact", "--dry-run"]);
    let done = ok(&["compact"]);
    assert_eq!(dry["bytes"], done["bytes"]);
    assert_eq!(done["dry_run"], false);
    let reclaimed = done["bytes"].as_u64().unwrap();
    assert!(reclaimed > 0 && !done["segments"].as_array().unwrap().is_empty());
    assert_eq!(ok(&["compact"])["bytes"], 0);
    eprintln!(
        "scenario: compaction reclaimed {reclaimed} bytes in {} segments",
        done["segments"].as_array().unwrap().len()
    );
    assert!(eventfile(d, &["verify"]).status.success());

    let saved = ok(&[
        "snapshot",
        "save",
        "order-1",
        "--version",
        "150",
        r#"{"items":150}"#,
    ]);
    assert_eq!(saved["version"], 150);
    let shown = ok(&["snapshot", "show", "order-1"]);
    assert_eq!(
        (shown["state"]["items"].as_u64(), shown["version"].as_u64()),
        (Some(150), Some(150))
    );
    fails(&["snapshot", "show", "cart-2"], 4, "no snapshot");
    fails(
        &["snapshot", "save", "order-1", "--version", "151", "{}"],
        1,
        "has no version 151",
    );
    fails(
        &["snapshot", "save", "order-1", "--version", "1", "{"],
        2,
        "not valid JSON",
    );

    let preview = ok(&["retention", "--dry-run", "--max-events", "100"]);
    assert_eq!(preview["dry_run"], true);
    assert_eq!(preview["policy"]["max_events"], 100);
    // The preview persisted nothing.
    assert_eq!(ok(&["retention"])["events"], 0);
    let run = ok(&["retention", "--max-events", "100"]);
    assert_eq!(run["events"], preview["events"]);
    let log_start = run["log_start"].as_u64().unwrap();
    assert!(log_start > 1);
    fails(&["cat", "--from", "1"], 1, "removed by retention");
    assert_eq!(
        ok(&["cat", "--limit", "1"])["seq"].as_u64(),
        Some(log_start)
    );
    fails(&["retention", "--max-age", "3 days"], 2, "not a duration");
    fails(&["retention", "--max-events", "0"], 1, "retention refused");

    let a = ok(&["append", "order-1", "Paid", "--key", "cmd-1"]);
    let b = ok(&["append", "order-1", "Paid", "--key", "cmd-1"]);
    assert_eq!(
        (a.get("replayed"), b["replayed"].as_bool()),
        (None, Some(true))
    );
    assert_eq!(a["seq"], b["seq"]);
    assert!(eventfile(d, &["verify"]).status.success());
}

/// `eventfile bench` measures on the disk of --dir, beside a raw loop, and cleans up after itself.
#[test]
fn bench_reports_throughput_and_latency_next_to_the_raw_loop() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = eventfile(
        &store,
        &["bench", "--appends", "40", "--threads", "2", "--batch", "3"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["name"], "raw_write_fdatasync");
    assert_eq!(lines[1]["name"], "eventfile");
    for l in &lines {
        assert_eq!(
            (
                l["threads"].as_u64(),
                l["batch"].as_u64(),
                l["events"].as_u64()
            ),
            (Some(2), Some(3), Some(120))
        );
        let (p50, p99) = (l["p50_us"].as_f64().unwrap(), l["p99_us"].as_f64().unwrap());
        assert!(p50 > 0.0 && p99 >= p50, "{l}");
        assert!(l["events_per_sec"].as_f64().unwrap() > 0.0);
    }
    assert!(lines[1]["vs_raw"].as_f64().unwrap() > 0.0);
    // The scratch directory is gone; the store directory was never created.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let bad = eventfile(&store, &["bench", "--threads", "0"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// A dry run persists nothing, so it opens the store read-only and works while a writer holds it.
#[test]
fn dry_runs_work_next_to_a_running_writer() {
    use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let writer = OpenOptions::new()
        .segment_bytes(4096)
        .durability(Durability::None)
        .open(d)
        .unwrap();
    for i in 0..300u64 {
        let e = NewEvent::new("T", serde_json::json!({"i": i, "pad": "x".repeat(40)}));
        writer.append("s", ExpectedVersion::Any, [e]).unwrap();
    }
    writer.sync().unwrap();

    for args in [
        &["retention", "--dry-run", "--max-events", "5"][..],
        &["retention", "--dry-run", "--max-bytes", "8192"],
        &["retention", "--dry-run", "--keep-all"],
        &["retention", "--dry-run"],
        &["compact", "--dry-run"],
    ] {
        let out = eventfile(d, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(json_lines(&out)[0]["dry_run"], true, "{args:?}");
    }
    let preview = json_lines(&eventfile(
        d,
        &["retention", "--dry-run", "--max-events", "5"],
    ))
    .pop()
    .unwrap();
    assert_eq!(preview["policy"]["max_events"], 5);
    let segments = preview["segments"].as_array().unwrap();
    assert!(!segments.is_empty(), "{preview}");
    let events: u64 = segments.iter().map(|s| s["events"].as_u64().unwrap()).sum();
    assert_eq!(preview["events"].as_u64(), Some(events));
    assert!(events > 0 && events <= 295, "{preview}");
    // Nothing was removed or persisted, and the writer goes on.
    assert_eq!(writer.log_start(), 1);
    assert!(writer.retention_policy().keeps_all());
    writer
        .append(
            "s",
            ExpectedVersion::Exact(300),
            [NewEvent::new("T", serde_json::json!(1))],
        )
        .unwrap();
    // Without --dry-run the writer's lock is still required.
    let out = eventfile(d, &["retention", "--max-events", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked by another writer"));
}

/// Every malformed argument value is a usage error (exit 2) reported before any store is touched,
/// like the flags clap checks, so that a script can tell a typo from a failure.
#[test]
fn malformed_arguments_exit_2_naming_the_value_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never-created");
    for (args, bad) in [
        (&["append", "s", "T", "{}", "--expect", "foo"][..], "foo"),
        (
            &[
                "append",
                "s",
                "T",
                "{}",
                "--expect",
                "99999999999999999999999",
            ],
            "99999999999999999999999",
        ),
        (&["append", "s", "T", "{bad"], "{bad"),
        (&["append", "s", "T", "{}", "--meta", "{\"a\":"], "{\"a\":"),
        (&["append", "s", "T", "{}", "--meta", "[1]"], "[1]"),
        (&["query", "--since", "yesterday"], "yesterday"),
        (&["query", "--until", "2026-13-40T00:00:00Z"], "2026-13-40"),
        (&["query", "--after", "not-a-cursor"], "not-a-cursor"),
        (&["query", "--from-seq", "-1"], "-1"),
        (&["retention", "--max-age", "5x"], "5x"),
        (
            &["retention", "--dry-run", "--segment-max-age", "3 days"],
            "3 days",
        ),
        (
            &["retention", "--max-age", "99999999999999999999d"],
            "99999999999999999999d",
        ),
        // Fits in u64 seconds but not in the store's microsecond clock: it must not wrap.
        (&["retention", "--max-age", "400000000d"], "400000000d"),
        (&["delete", "s", "--expect", "bar"], "bar"),
        (
            &["snapshot", "save", "s", "--version", "1", "{\"a\":"],
            "{\"a\":",
        ),
        (&["read", "s", "--limit", "many"], "many"),
        (&["init", "--segment-bytes", "4k"], "4k"),
        // Names, types, ids, tags and keys the library's rules refuse.
        (&["append", "", "T"], "stream name"),
        (&["append", "$lifecycle", "T"], "$lifecycle"),
        (&["append", "s", "T\u{1}"], "event type"),
        (&["append", "s", "T", "{}", "--tag", "novalue"], "novalue"),
        (&["append", "s", "T", "{}", "--id", ""], "event id"),
        (&["append", "s", "T", "{}", "--key", ""], "idempotency key"),
        (&["read", ""], "stream name"),
        (&["get", ""], "event id"),
        (&["delete", "$lifecycle"], "$lifecycle"),
        (&["truncate", "", "--before", "2"], "stream name"),
        (&["query", "--tag", "=x"], "=x"),
        (&["query", "--type", ""], "event type"),
        (&["snapshot", "show", ""], "stream name"),
    ] {
        let out = eventfile(&dir, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(bad), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!dir.exists(), "{args:?} created the store directory");
    }

    // The same for malformed JSON read from stdin, and nothing is written to an existing store.
    assert!(eventfile(&dir, &["append", "s", "T"]).status.success());
    for args in [
        &["append", "s", "T", "-"][..],
        &["snapshot", "save", "s", "--version", "1", "-"],
    ] {
        let mut child = common::command()
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"{\"sku\":").unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("not valid JSON"), "{args:?}: {err}");
    }
    assert_eq!(json_lines(&eventfile(&dir, &["cat"])).len(), 1);
    let out = eventfile(&dir, &["snapshot", "show", "s"]);
    assert_eq!(out.status.code(), Some(4));
}

/// `append -` reads at most the store's event size limit (+1 byte) from stdin: it refuses a
/// larger input without reading the rest, so the writer on the other end of the pipe fails.
#[test]
fn append_from_stdin_stops_reading_past_the_size_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = eventfile(dir, &["init", "--max-event-bytes", "1024"]);
    assert!(out.status.success());

    let mut child = common::command()
        .arg("--dir")
        .arg(dir)
        .args(["append", "s", "T", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // 64 MiB of one JSON string: far more than the limit plus any pipe buffer.
    let feeder = std::thread::spawn(move || -> std::io::Result<()> {
        use std::io::Write as _;
        let chunk = vec![b'x'; 1 << 20];
        stdin.write_all(b"\"")?;
        for _ in 0..64 {
            stdin.write_all(&chunk)?;
        }
        stdin.write_all(b"\"")
    });
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("over the store's limit of 1024 bytes"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let fed = feeder.join().unwrap();
    assert_eq!(
        fed.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::BrokenPipe),
        "eventfile read the whole input before refusing it"
    );
    assert_eq!(eventfile::Store::open_read_only(dir).unwrap().head_seq(), 0);

    // The same refusal as for DATA given inline, and data within the limit still goes in.
    let big = format!("\"{}\"", "x".repeat(2000));
    let out = eventfile(dir, &["append", "s", "T", &big]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("over the store's limit of 1024 bytes"));
    let mut child = common::command()
        .arg("--dir")
        .arg(dir)
        .args(["append", "s", "T", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), br#"{"sku":"A-1"}"#).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(eventfile::Store::open_read_only(dir).unwrap().head_seq(), 1);
}

/// `eventfile bench` refuses what it cannot measure as usage errors, and an uneven split of the
/// appends over the threads still makes every asked-for append.
#[test]
fn bench_refuses_impossible_runs_and_measures_every_append() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    for (args, flag) in [
        (
            &["bench", "--appends", "4", "--threads", "8"][..],
            "--threads",
        ),
        (&["bench", "--threads", "0"], "--threads"),
        (&["bench", "--appends", "0"], "--appends"),
        (&["bench", "--batch", "0"], "--batch"),
        (&["bench", "--threads", "100000"], "--threads"),
        (&["bench", "--batch", "100000000"], "--batch"),
    ] {
        let out = eventfile(&store, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{args:?}"
        );
    }
    let out = eventfile(&store, &["bench", "--appends", "5", "--threads", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for l in json_lines(&out) {
        assert_eq!(l["events"], 5, "{l}");
    }
}

fn eventfile_with_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = common::command()
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run eventfile");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn succeeds(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// DATA and snapshot STATE are stored as given, digits and all, from the command line and from
/// stdin (issue 17, item 3: numbers used to come back rounded to an f64).
#[test]
fn numbers_in_data_and_state_are_kept_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = r#"{"x":18446744073709551616,"y":1.5e-400}"#;
    succeeds(eventfile(dir, &["append", "s", "T", data]));
    let pretty = "{\n  \"z\" : 100000000000000000001 ,\n  \"s\": \"a  b\\n\",\n  \"w\": [-0, 1E+2, 0.10, 1e400]\n}\n";
    succeeds(eventfile_with_stdin(
        dir,
        &["append", "s", "T", "-"],
        pretty,
    ));

    let compact = r#"{"z":100000000000000000001,"s":"a  b\n","w":[-0,1E+2,0.10,1e400]}"#;
    for args in [&["cat"][..], &["read", "s"]] {
        let out = succeeds(eventfile(dir, args));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].contains(&format!(r#""data":{data},"#)), "{out}");
        assert!(lines[1].contains(&format!(r#""data":{compact},"#)), "{out}");
    }

    let state = r#"{"total":-9223372036854775809,"r":1e400}"#;
    succeeds(eventfile(
        dir,
        &["snapshot", "save", "s", "--version", "1", state],
    ));
    let out = succeeds(eventfile(dir, &["snapshot", "show", "s"]));
    assert!(out.contains(&format!(r#""state":{state}"#)), "{out}");
    let args = ["snapshot", "save", "s", "--version", "2", "-"];
    succeeds(eventfile_with_stdin(dir, &args, "[\n  1E+2 ,\n  0.10\n]\n"));
    let out = succeeds(eventfile(dir, &["snapshot", "show", "s"]));
    assert!(out.contains(r#""state":[1E+2,0.10]"#), "{out}");

    // What serde_json could not read back is malformed, as before: exit 2, nothing written.
    let deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
    for text in [deep.as_str(), r#""\ud800""#] {
        let out = eventfile(dir, &["append", "s", "T", text]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let out = eventfile_with_stdin(dir, &["append", "s", "T", "-"], text);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let args = ["snapshot", "save", "s", "--version", "2", text];
        assert_eq!(eventfile(dir, &args).status.code(), Some(2), "{text}");
    }
    assert_eq!(succeeds(eventfile(dir, &["cat"])).lines().count(), 2);
}

/// Metadata is read back through serde_json's Value: a number it could not hold exactly is
/// refused as a malformed argument (exit 2), naming the key; nothing is written.
#[test]
fn metadata_numbers_are_kept_exactly_or_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (meta, place) in [
        (r#"{"n":100000000000000000001}"#, "`n`"),
        (r#"{"n":1.5e-400}"#, "`n`"),
        (r#"{"a":{"n":[1,1e400]}}"#, "`a.n[1]`"),
    ] {
        let out = eventfile(dir, &["append", "s", "T", "{}", "--meta", meta]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{meta}: {err}");
        assert!(err.contains("cannot be stored exactly"), "{meta}: {err}");
        assert!(
            err.contains(place) && err.contains("string"),
            "{meta}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
    assert!(json_lines(&eventfile(dir, &["cat"])).is_empty());

    // Keys in name order: metadata is a map and comes back sorted.
    let meta = r#"{"i":-9223372036854775808,"n":0.1,"s":"100000000000000000001","u":18446744073709551615}"#;
    succeeds(eventfile(dir, &["append", "s", "T", "{}", "--meta", meta]));
    let out = succeeds(eventfile(dir, &["cat"]));
    assert!(out.contains(&format!(r#""meta":{meta},"#)), "{out}");
}

/// `append --fail-if-type T (any of) --fail-if-tag K=V (all of) --after SEQ`: a DCB condition;
/// a failed one exits 3 naming the matching seq, as a version conflict does, and writes nothing.
#[test]
fn append_with_a_condition_exits_3_naming_the_matching_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let enrol = |student: &str, extra: &[&str]| {
        let mut args = vec![
            "append",
            "course-c1",
            "StudentSubscribed",
            "{}",
            "--tag",
            "course=c1",
        ];
        args.extend_from_slice(extra);
        let tag = format!("student={student}");
        let mut owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        owned.extend(["--tag".to_owned(), tag]);
        eventfile(dir, &owned.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let cond = [
        "--fail-if-type",
        "CourseCreated",
        "--fail-if-type",
        "StudentSubscribed",
        "--fail-if-tag",
        "course=c1",
    ];
    // Nothing matches yet.
    let out = enrol("ann", &cond);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_lines(&out)[0]["seq"], 1);
    // Now seq 1 matches: exit 3, the seq named on stderr, nothing written.
    let out = enrol("bob", &cond);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("event 1"), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(json_lines(&eventfile(dir, &["cat"])).len(), 1);
    // After seq 1 nothing matches.
    let mut after = cond.to_vec();
    after.extend(["--after", "1"]);
    let out = enrol("bob", &after);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_lines(&out)[0]["seq"], 2);
    // A tag of another course does not match.
    let out = eventfile(
        dir,
        &[
            "append",
            "c2",
            "StudentSubscribed",
            "{}",
            "--tag",
            "course=c2",
            "--fail-if-tag",
            "course=c2",
        ],
    );
    assert!(out.status.success());
    // --after needs a condition; a position above the head is refused (exit 1, nothing written).
    let out = eventfile(dir, &["append", "s", "T", "{}", "--after", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = eventfile(
        dir,
        &[
            "append",
            "s",
            "T",
            "{}",
            "--fail-if-type",
            "X",
            "--after",
            "99",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("above the head"));
    assert_eq!(json_lines(&eventfile(dir, &["cat"])).len(), 3);
}

#[test]
fn projections_lists_the_stores_checkpoints_with_their_lag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    store_of_small_events(dir, 10);
    // Nothing saved yet: no line, success.
    let out = eventfile(dir, &["projections"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    {
        use eventfile::EventStore;
        let store = eventfile::Store::open(dir).unwrap();
        store.checkpoints().save("order-summary", 10).unwrap();
        store
            .checkpoints()
            .put("billing", 4, Some("seq 5: no such customer"))
            .unwrap();
    }
    let out = eventfile(dir, &["projections"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let got: Vec<(&str, u64, u64, u64, Option<&str>)> = lines
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap(),
                l["position"].as_u64().unwrap(),
                l["head"].as_u64().unwrap(),
                l["lag"].as_u64().unwrap(),
                l["error"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("billing", 4, 10, 6, Some("seq 5: no such customer")),
            ("order-summary", 10, 10, 0, None),
        ]
    );
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    // A store that does not exist is an error, and none is made.
    let missing = dir.join("nope");
    let out = eventfile(&missing, &["projections"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!missing.exists());
}

#[test]
fn stats_describes_the_store_in_one_object() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        use eventfile::{EventStore, ExpectedVersion::*, NewEvent};
        use serde_json::json;
        let store = eventfile::Store::open(dir).unwrap();
        let e = |t: &str| NewEvent::new(t, json!({})).with_tag("region=eu");
        store
            .append("a-1", NoStream, [e("Placed"), e("Paid")])
            .unwrap();
        store.append("a-2", NoStream, [e("Placed")]).unwrap();
        store.append("a-3", NoStream, [e("Placed")]).unwrap();
        store.delete_stream("a-2", Any).unwrap();
        store.tombstone_stream("a-3", Any).unwrap();
        let snap = serde_json::value::RawValue::from_string("{}".into()).unwrap();
        EventStore::save_snapshot(&store, "a-1", 2, &snap).unwrap();
    }
    let out = eventfile(dir, &["stats"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = &json_lines(&out)[0];
    assert_eq!(s["backend"], "file");
    assert_eq!(s["head"], 6, "four events and two lifecycle events");
    assert_eq!(s["log_start"], 1);
    assert_eq!(
        (&s["deleted_streams"], &s["tombstoned_streams"]),
        (&serde_json::json!(1), &serde_json::json!(1))
    );
    assert!(s["types"].as_u64().unwrap() >= 2);
    assert!(s["oldest_time"].as_str().unwrap().ends_with('Z'));
    assert!(s["newest_time"].as_str().unwrap() >= s["oldest_time"].as_str().unwrap());
    let bytes = &s["bytes"];
    let segments = bytes["segments"].as_u64().unwrap();
    assert!(segments > 0 && bytes["snapshots"].as_u64().unwrap() > 0);
    let parts: u64 = ["segments", "sidecars", "snapshots", "checkpoints", "other"]
        .iter()
        .map(|k| bytes[k].as_u64().unwrap())
        .sum();
    assert_eq!(bytes["total"].as_u64().unwrap(), parts);
    assert_eq!(
        (&s["segments"]["sealed"], &s["segments"]["active"]),
        (&serde_json::json!(0), &serde_json::json!(1))
    );
    assert_eq!(s["metrics"]["appends"], 0, "this process appended nothing");
    // No store there: an error naming it, and nothing made.
    let missing = dir.join("nope");
    let out = eventfile(&missing, &["stats"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!missing.exists());
}

/// An import's batch stays within its byte bound (half a segment, so that it fits in one): a
/// line that would take it past goes into the next batch. The bound was checked after adding
/// the line, so two large events made one batch larger than the segment, and the store refused
/// its own export.
#[test]
fn import_batches_never_outgrow_their_byte_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    succeeds(eventfile(dir, &["init", "--segment-bytes", "8192"]));
    let line = |seq: u64, pad: usize| {
        serde_json::json!({
            "seq": seq, "id": format!("id-{seq}"), "stream": "s", "version": seq, "type": "T",
            "time": "2026-11-30T10:00:00.000001Z", "data": {"pad": "x".repeat(pad)},
            "meta": {}, "tags": []
        })
        .to_string()
    };
    // Each alone is below half the segment; together they are more than the segment.
    let input = [line(1, 3_900), line(2, 4_300)].join("\n");
    let out = eventfile_with_stdin(dir, &["import"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_lines(&out)[0]["written"], 2);
    assert_eq!(json_lines(&eventfile(dir, &["cat"])).len(), 2);
}
