//! The scenario on each backend the URL names: the embedded file store, SQLite, PostgreSQL.

use crate::scenario::commands_refusals_and_read_models;
use crate::support::{Shop, dump};

/// The demo after the scenario, on the same store: it picks order ids of its own and adds its
/// three orders to the read model.
fn demo_too(shop: &Shop) {
    let out = shop.ok(&["demo"]);
    assert!(
        out.contains("refused: order 1002: 50.00 is more than the 12.60 owed"),
        "{out}"
    );
    assert_eq!(dump(&shop.read_db).summary.len(), 6);
}

#[test]
fn backends_file_store() {
    commands_refusals_and_read_models(&Shop::file());
}

#[test]
fn backends_sqlite_url() {
    let shop = Shop::sqlite();
    commands_refusals_and_read_models(&shop);
    assert!(shop.tmp.path().join("events.db").is_file());
    demo_too(&shop);
}

#[test]
fn backends_postgres() {
    let shop = Shop::postgres();
    commands_refusals_and_read_models(&shop);
    demo_too(&shop);
}
