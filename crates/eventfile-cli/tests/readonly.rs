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
