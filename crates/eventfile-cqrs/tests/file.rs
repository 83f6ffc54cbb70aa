//! The adapter's cases on eventfile's file store, each in a fresh temporary directory.

mod support;

use eventfile::{EventStore, Store};
use eventfile_conformance::Guarded;

fn new_store() -> Box<dyn EventStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path().join("events")).expect("open a store");
    Box::new(Guarded::new(store, dir))
}

suite!(new_store);

/// A snapshot store whose snapshot cannot be saved after the command's events were committed:
/// the command is reported as committed and its events reach the queries (the snapshot is a
/// cache). It was reported as failed, so cqrs-es kept the committed events from its queries,
/// and a caller retrying the command applied it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_store_that_cannot_save_a_snapshot_still_reports_the_commit() {
    use support::bank_account::{BankAccount, BankAccountCommand, BankAccountServices};
    use support::replays::Recorder;

    let dir = tempfile::tempdir().unwrap();
    let storage = eventfile::FaultyStorage::new();
    let store = eventfile::OpenOptions::new()
        .storage(std::sync::Arc::new(std::sync::Arc::clone(&storage)))
        .open(dir.path().join("events"))
        .unwrap();
    let store = eventfile::AsyncStore::from(Box::new(store) as Box<dyn EventStore>);
    let recorder = Recorder::default();
    let cqrs = eventfile_cqrs::snapshot_cqrs_framework::<BankAccount>(
        store.clone(),
        vec![Box::new(recorder.clone())],
        1,
        BankAccountServices,
    );
    // The append creates no file; the snapshot's save creates its file first.
    storage.fail_next_create();
    cqrs.execute(
        "a",
        BankAccountCommand::OpenAccount {
            account_id: "a".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(store.stream_version("Account-a").await.unwrap(), 1);
    assert!(
        store.load_snapshot("Account-a").await.unwrap().is_none(),
        "the snapshot's save failed"
    );
    assert_eq!(
        recorder.0.lock().unwrap().len(),
        1,
        "dispatched to the query"
    );
    // The next command loads from the events and saves its snapshot.
    cqrs.execute("a", BankAccountCommand::DepositMoney { amount: 5.0 })
        .await
        .unwrap();
    let snapshot = store.load_snapshot("Account-a").await.unwrap().unwrap();
    assert_eq!(snapshot.version, 2);
    assert_eq!(recorder.0.lock().unwrap().len(), 2);
}
