//! The snapshot cases: cqrs-es's snapshot store on eventfile snapshots, the version each is saved
//! at, and what loading does with one that is behind the events or not ours.

use cqrs_es::AggregateError;
use cqrs_es::EventStore;
use cqrs_es::persist::PersistedEventRepository;
use eventfile::AsyncStore;
use serde_json::{Value, json};

use super::bank_account::{BankAccount, BankAccountCommand, BankAccountServices};
use super::cases::{commit, commit_and_load, deposited, opened, repo};

pub async fn commit_and_load_events_snapshot_store(store: AsyncStore) {
    let cqrs_store = repo(&store).snapshot_store::<BankAccount>(2);
    commit_and_load(cqrs_store).await;
    // Three single-event-or-more commits of 2, 1 events with size 2: one snapshot, at 2.
    let snapshot = store.load_snapshot("Account-acc-1").await.unwrap().unwrap();
    assert_eq!(snapshot.version, 2);

    // Through the framework: commands, one event each.
    let cqrs = eventfile_cqrs::snapshot_cqrs_framework::<BankAccount>(
        store.clone(),
        vec![],
        2,
        BankAccountServices,
    );
    let id = "acc-2";
    for command in [
        BankAccountCommand::OpenAccount {
            account_id: id.into(),
        },
        BankAccountCommand::DepositMoney { amount: 100.0 },
        BankAccountCommand::DepositMoney { amount: 50.0 },
        BankAccountCommand::WithdrawMoney { amount: 30.0 },
        BankAccountCommand::WriteCheck {
            check_number: "1170".into(),
            amount: 20.0,
        },
    ] {
        cqrs.execute(id, command).await.unwrap();
    }
    let err = cqrs
        .execute(id, BankAccountCommand::WithdrawMoney { amount: 1000.0 })
        .await
        .unwrap_err();
    assert!(matches!(err, AggregateError::UserError(e) if e.0 == "funds not available"));

    let snapshot = store.load_snapshot("Account-acc-2").await.unwrap().unwrap();
    assert_eq!(snapshot.version, 4);
    let state: Value = snapshot.decode().unwrap();
    assert_eq!(state["current_snapshot"], 2);
    assert_eq!(
        state["aggregate"],
        json!({"opened": true, "balance": 120.0})
    );

    let loaded = repo(&store)
        .snapshot_store::<BankAccount>(2)
        .load_aggregate(id)
        .await
        .unwrap();
    assert_eq!(
        (loaded.current_sequence, loaded.current_snapshot),
        (5, Some(2))
    );
    assert_eq!(loaded.aggregate.balance, 100.0);
}

pub async fn snapshot_of_a_commit_across_the_snapshot_size(store: AsyncStore) {
    // A commit of versions 1..=3 with snapshots every 2 events: cqrs-es's snapshot holds the
    // state after event 2, so it must be saved at version 2, not 3.
    let cqrs_store = repo(&store).snapshot_store::<BankAccount>(2);
    commit(
        &cqrs_store,
        "a",
        vec![opened("a"), deposited(10.0, 10.0), deposited(5.0, 15.0)],
    )
    .await;
    let snapshot = store.load_snapshot("Account-a").await.unwrap().unwrap();
    assert_eq!(snapshot.version, 2);
    let state: Value = snapshot.decode().unwrap();
    assert_eq!(state["aggregate"]["balance"], 10.0);

    let loaded = cqrs_store.load_aggregate("a").await.unwrap();
    assert_eq!(loaded.current_sequence, 3);
    assert_eq!(loaded.aggregate.balance, 15.0);

    // Versions 4..=7: the snapshot lands on 6.
    commit(
        &cqrs_store,
        "a",
        (16..=19).map(|b| deposited(1.0, f64::from(b))).collect(),
    )
    .await;
    let snapshot = store.load_snapshot("Account-a").await.unwrap().unwrap();
    assert_eq!(snapshot.version, 6);
    let loaded = cqrs_store.load_aggregate("a").await.unwrap();
    assert_eq!(
        (loaded.current_sequence, loaded.aggregate.balance),
        (7, 19.0)
    );
}

pub async fn snapshot_behind_the_events_after_a_crash(store: AsyncStore) {
    let snapshots = repo(&store).snapshot_store::<BankAccount>(2);
    commit(&snapshots, "a", vec![opened("a"), deposited(10.0, 10.0)]).await;
    // Events 3 and 4 committed without their snapshot, as after a crash between the append
    // and the snapshot: the snapshot stays at 2, behind the events, and loading replays 3, 4.
    let events_only = repo(&store).event_store::<BankAccount>();
    commit(
        &events_only,
        "a",
        vec![deposited(1.0, 11.0), deposited(1.0, 12.0)],
    )
    .await;
    assert_eq!(
        store
            .load_snapshot("Account-a")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    let loaded = snapshots.load_aggregate("a").await.unwrap();
    assert_eq!(
        (loaded.current_sequence, loaded.current_snapshot),
        (4, Some(1))
    );
    assert_eq!(loaded.aggregate.balance, 12.0);
}

pub async fn snapshot_that_is_not_ours_is_passed_over(store: AsyncStore) {
    let events_only = repo(&store).event_store::<BankAccount>();
    commit(&events_only, "a", vec![opened("a"), deposited(10.0, 10.0)]).await;
    // Another program's snapshot of the stream: not an eventfile-cqrs state.
    let state = serde_json::value::to_raw_value(&json!({"balance": 999})).unwrap();
    store.save_snapshot("Account-a", 2, state).await.unwrap();
    let repo = repo(&store);
    assert!(
        repo.clone()
            .with_snapshot_size(2)
            .get_snapshot::<BankAccount>("a")
            .await
            .unwrap()
            .is_none()
    );
    let loaded = repo
        .clone()
        .snapshot_store::<BankAccount>(2)
        .load_aggregate("a")
        .await
        .unwrap();
    assert_eq!(
        (loaded.current_sequence, loaded.aggregate.balance),
        (2, 10.0)
    );
    // An aggregate store loads no event: passing the snapshot over would load a new aggregate
    // at sequence 0, whose every commit conflicts. Its load fails instead.
    let Err(err) = repo
        .aggregate_store::<BankAccount>()
        .load_aggregate("a")
        .await
    else {
        panic!("an aggregate store loaded without a usable snapshot")
    };
    assert!(err.to_string().contains("not usable"), "{err}");
}

/// A stream deleted whole (its snapshots with it) does not load as a new aggregate, on any
/// kind of store: its every commit would conflict. The event and snapshot stores find its
/// events missing; the aggregate store, its snapshot.
pub async fn deleted_stream_is_refused_not_loaded_as_new(store: AsyncStore) {
    let snapshots = repo(&store).snapshot_store::<BankAccount>(2);
    commit(&snapshots, "a", vec![opened("a"), deposited(10.0, 10.0)]).await;
    store
        .delete_stream("Account-a", eventfile::ExpectedVersion::Any)
        .await
        .unwrap();
    for (kind, loaded) in [
        (
            "event store",
            repo(&store)
                .event_store::<BankAccount>()
                .load_aggregate("a")
                .await
                .map(|c| c.current_sequence),
        ),
        (
            "snapshot store",
            snapshots
                .load_aggregate("a")
                .await
                .map(|c| c.current_sequence),
        ),
        (
            "aggregate store",
            repo(&store)
                .aggregate_store::<BankAccount>()
                .load_aggregate("a")
                .await
                .map(|c| c.current_sequence),
        ),
    ] {
        match loaded {
            Ok(at) => panic!("{kind}: the deleted stream loaded, at sequence {at}"),
            Err(e) => assert!(
                e.to_string().contains("found 0") || e.to_string().contains("has none"),
                "{kind}: {e}"
            ),
        }
    }
    // A replay of it ends in the same error, not as an empty aggregate.
    let mut replay = repo(&store)
        .stream_events::<BankAccount>("a")
        .await
        .unwrap();
    match replay.next::<BankAccount>(&[]).await {
        Some(Err(e)) => assert!(e.to_string().contains("found 0"), "{e}"),
        Some(Ok(e)) => panic!("the deleted stream replayed event {}", e.sequence),
        None => panic!("the deleted stream replayed as an empty aggregate"),
    }
    assert!(replay.next::<BankAccount>(&[]).await.is_none());
}
