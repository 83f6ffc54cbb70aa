//! The scenario on each backend the URL names: the embedded file store, SQLite, PostgreSQL.

use crate::scenario::commands_refusals_and_read_models;
use crate::support::Shop;

#[test]
fn backends_file_store() {
    commands_refusals_and_read_models(&Shop::file());
}

#[test]
fn backends_sqlite_url() {
    let shop = Shop::sqlite();
    commands_refusals_and_read_models(&shop);
    assert!(shop.tmp.path().join("events.db").is_file());
}

#[test]
fn backends_postgres() {
    let shop = Shop::postgres();
    commands_refusals_and_read_models(&shop);
}
