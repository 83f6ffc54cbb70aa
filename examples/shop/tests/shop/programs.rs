//! The demo, the menu, where the store is when nothing names it, and a read model that
//! belongs to another store.

use crate::support::{Shop, bare, dump, fails, ok, run_with};

#[test]
fn programs_demo_runs_on_memory_and_again_on_a_file_store() {
    let shop = Shop::file();
    for (url, first) in [
        ("memory:", "1001"),
        (shop.url.as_str(), "1001"),
        (shop.url.as_str(), "2001"),
    ] {
        let mut c = bare();
        c.current_dir(shop.tmp.path())
            .args(["--url", url, "--read-db"])
            .arg(&shop.read_db)
            .arg("demo");
        let out = ok(&run_with(&mut c, ""), &["demo"]);
        for part in [
            format!("$ shop place {first} ann"),
            "refused: order".to_owned(),
            "is more than the 12.60 owed".to_owned(),
            "$ shop orders".to_owned(),
            format!("{first}         ann              3      19.00      19.00  paid"),
            "   1  tea                  2       3.50       7.00".to_owned(),
            "\"type\":\"OrderPaid\"".to_owned(),
            "\"lag\":0".to_owned(),
        ] {
            assert!(out.contains(&part), "{url}: {part:?} in\n{out}");
        }
    }
    // After a memory run the read model belonged to another store: the first file run rebuilt it.
    let rows = dump(&shop.read_db);
    assert_eq!(rows.summary.len(), 6, "two runs of three orders");
}

#[test]
fn programs_menu_runs_commands_from_stdin() {
    let shop = Shop::file();
    let input = "1\nM1\nann\n2\nM1\ntea\n2\n3.5\n3\nM1\n99\n3\nM1\n7\n5\n6\nM1\n4\nM1\n42\n2\nbad id\n10\nq\n";
    let out = ok(&shop.run_with(&["menu"], input), &["menu"]);
    for part in [
        "order M1 placed for ann (v1)",
        "order M1: added 2 x tea at 3.50; total 7.00 (v2)",
        "! order M1: 99.00 is more than the 7.00 owed",
        "order M1: paid 7.00; 7.00 of 7.00 paid, paid (v4)",
        "M1           ann              2       7.00       7.00  paid",
        "order M1 for ann: 2 items, total 7.00, paid 7.00, paid",
        "customer  ann",
        "! no choice `42`",
        "! `bad id` is not an order id",
        "\"name\":\"order-details\"",
    ] {
        assert!(out.contains(part), "{part:?} in\n{out}");
    }
    // The end of input ends the menu too.
    ok(&shop.run_with(&["menu"], "1\nM2\n"), &["menu"]);
}

#[test]
fn programs_the_store_is_named_like_the_eventfile_tool_does() {
    let tmp = tempfile::tempdir().unwrap();
    let at = |c: &mut std::process::Command| {
        c.current_dir(tmp.path());
    };
    // Nothing named: ./shop-data, a file store, and ./shop-read.db.
    let mut c = bare();
    at(&mut c);
    ok(&run_with(c.args(["place", "1", "ann"]), ""), &["place"]);
    assert!(tmp.path().join("shop-data/eventfile.json").is_file());
    let mut c = bare();
    at(&mut c);
    let out = ok(&run_with(c.arg("orders"), ""), &["orders"]);
    assert!(out.contains("ann"), "{out}");
    assert!(tmp.path().join("shop-read.db").is_file());
    // EVENTFILE_URL, then ./eventfile.toml's url.
    let mut c = bare();
    at(&mut c);
    c.env(
        "EVENTFILE_URL",
        format!("sqlite:{}", tmp.path().join("env.db").display()),
    );
    ok(&run_with(c.args(["place", "2", "bob"]), ""), &["place"]);
    assert!(tmp.path().join("env.db").is_file());
    std::fs::write(
        tmp.path().join("eventfile.toml"),
        "url = \"sqlite:conf.db\"\n",
    )
    .unwrap();
    let mut c = bare();
    at(&mut c);
    ok(&run_with(c.args(["place", "3", "cy"]), ""), &["place"]);
    assert!(tmp.path().join("conf.db").is_file());
    // A malformed URL or configuration is a usage error.
    let mut c = bare();
    at(&mut c);
    fails(
        &run_with(c.args(["--url", "mysql://x/y", "orders"]), ""),
        2,
        &["--url"],
    );
    std::fs::write(tmp.path().join("eventfile.toml"), "colour = 1\n").unwrap();
    let mut c = bare();
    at(&mut c);
    let err = fails(&run_with(c.arg("orders"), ""), 2, &["orders"]);
    assert!(err.contains("unknown field `colour`"), "{err}");
}

#[test]
fn programs_a_read_model_of_another_store_is_refused_until_rebuilt() {
    let a = Shop::file();
    a.ok(&["place", "1", "ann"]);
    a.ok(&["orders"]);
    // Another store, the same read-model file.
    let b = Shop::sqlite();
    let other = |args: &[&str]| {
        let mut c = bare();
        c.current_dir(b.tmp.path())
            .args(["--url", &b.url, "--read-db"])
            .arg(&a.read_db)
            .args(args);
        c
    };
    ok(
        &run_with(&mut other(&["place", "9", "zed"]), ""),
        &["place"],
    );
    let err = fails(&run_with(&mut other(&["orders"]), ""), 1, &["orders"]);
    assert!(err.contains("was built from another store"), "{err}");
    ok(&run_with(&mut other(&["rebuild"]), ""), &["rebuild"]);
    let out = ok(&run_with(&mut other(&["orders"]), ""), &["orders"]);
    assert!(out.contains("zed") && !out.contains("ann"), "{out}");
}

#[test]
fn programs_snapshots_are_saved_every_n_events_and_loaded() {
    let shop = Shop::file();
    shop.ok(&["--snapshot-every", "3", "place", "S", "ann"]);
    for i in 0..4 {
        shop.ok(&[
            "--snapshot-every",
            "3",
            "add",
            "S",
            &format!("sku{i}"),
            "1",
            "1",
        ]);
    }
    let show = shop.ok(&["show", "S"]);
    assert!(
        show.contains("at v5, loaded from snapshot at v3 + 2 events"),
        "{show}"
    );
    assert!(show.contains("line 4"), "{show}");
    // Off: no snapshot.
    shop.ok(&["--snapshot-every", "0", "place", "T", "bob"]);
    for _ in 0..4 {
        shop.ok(&["--snapshot-every", "0", "add", "T", "x", "1", "1"]);
    }
    assert!(shop.ok(&["show", "T"]).contains("loaded from 5 events"));
}

#[test]
fn programs_a_closed_pipe_is_success() {
    let shop = Shop::file();
    for i in 0..50 {
        shop.ok(&["place", &format!("P{i}"), "ann"]);
    }
    let mut c = shop.command(&["events"]);
    c.stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    assert!(child.wait().unwrap().success());
}
