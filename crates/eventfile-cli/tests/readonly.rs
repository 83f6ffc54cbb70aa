//! A command that only reads never creates a store: on a directory (or SQLite file) that holds
//! none it exits non-zero naming the path, and leaves nothing behind.

mod common;

use common::command;

/// Every read-only command, with the arguments it needs.
const COMMANDS: &[&[&str]] = &[
    &["read", "order-1"],
    &["cat"],
    &["query", "--type", "T"],
    &["get", "0192e3c4-7b1a-7c00-8000-000000000001"],
    &["streams"],
    &["types"],
    &["tags"],
    &["verify"],
    &["tail"],
    &["view"],
    &["export"],
    &["projections"],
    &["stats"],
    &["snapshot", "show", "order-1"],
    &["compact", "--dry-run"],
    &["retention", "--dry-run"],
];

#[test]
fn read_only_commands_on_a_missing_directory_name_it_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("typo");
    for args in COMMANDS {
        let out = command()
            .arg("--dir")
            .arg(&missing)
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains(&*missing.to_string_lossy()),
            "{args:?} does not name the path: {stderr}"
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
}

#[test]
fn read_only_commands_on_an_empty_directory_create_no_store() {
    let tmp = tempfile::tempdir().unwrap();
    for args in COMMANDS {
        let out = command()
            .arg("--dir")
            .arg(tmp.path())
            .args(*args)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{args:?} succeeded on an empty directory"
        );
        assert!(
            std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
            "{args:?} wrote into the empty directory"
        );
    }
}

#[test]
fn read_only_commands_on_a_missing_sqlite_file_name_it() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("typo.db");
    let url = format!("sqlite:{}", missing.display());
    for args in COMMANDS {
        if matches!(args[0], "verify" | "compact" | "retention") {
            continue; // the file store's segments only: refused on SQLite anyway
        }
        let out = command()
            .args(["--url", &url])
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains("typo.db"), "{args:?}: {stderr}");
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
}

/// An empty file named as a SQLite store: a read-only command refuses it and leaves it as it
/// was (the commands opened SQLite as a writer does, which makes an empty file a store).
#[test]
fn read_only_commands_on_an_empty_sqlite_file_leave_it_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("empty.db");
    std::fs::write(&file, b"").unwrap();
    let url = format!("sqlite:{}", file.display());
    for args in COMMANDS {
        if matches!(args[0], "verify" | "compact" | "retention") {
            continue; // the file store's segments only: refused on SQLite anyway
        }
        let out = command()
            .args(["--url", &url])
            .args(*args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded on an empty file");
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            0,
            "{args:?} wrote into the empty file"
        );
    }
}

/// A SQLite store whose schema was taken down (`migrate down`) is not migrated back up by a
/// command that only reads: it says so, and the schema stays where it was.
#[test]
fn read_only_commands_never_migrate_a_sqlite_store() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ev.db");
    let url = format!("sqlite:{}", file.display());
    let run = |args: &[&str]| command().args(["--url", &url]).args(args).output().unwrap();
    assert!(run(&["append", "s", "T", "{}"]).status.success());
    assert!(run(&["migrate", "down", "--to", "2"]).status.success());
    let out = run(&["cat"]);
    assert!(!out.status.success(), "cat read an older schema");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("version 2"), "{stderr}");
    let status = String::from_utf8(run(&["migrate", "status"]).stdout).unwrap();
    assert!(status.contains("\"current\":2"), "{status}");
}
