//! The cases every backend runs: what cqrs-es's own backends test (commit and load, with and
//! without a snapshot store, the optimistic lock, an upcasted event, the replay streams), and
//! what this adapter adds (metadata, names, truncated streams). The snapshot cases are in
//! `snapshots`, the replay cases in `replays`; both are re-exported here for `suite!`.

use std::collections::HashMap;

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SemanticVersionEventUpcaster,
    SerializedEvent,
};
use cqrs_es::{AggregateError, EventStore};
use eventfile::{AsyncStore, ExpectedVersion, NewEvent, Read};
use eventfile_cqrs::{Error, EventfileEventRepository, NameError, cqrs_framework};
use serde_json::{Value, json};

#[allow(unused_imports)] // Not every test crate runs every case.
pub use super::replays::*;
#[allow(unused_imports)]
pub use super::snapshots::*;

use super::bank_account::{BankAccount, BankAccountCommand, BankAccountEvent, BankAccountServices};

pub fn repo(store: &AsyncStore) -> EventfileEventRepository {
    EventfileEventRepository::new(store.clone())
}

pub fn opened(id: &str) -> BankAccountEvent {
    BankAccountEvent::AccountOpened {
        account_id: id.to_string(),
    }
}

pub fn deposited(amount: f64, balance: f64) -> BankAccountEvent {
    BankAccountEvent::CustomerDepositedMoney { amount, balance }
}

/// Commits `events` on top of what `store` loads for `id`.
pub async fn commit<S: EventStore<BankAccount>>(
    store: &S,
    id: &str,
    events: Vec<BankAccountEvent>,
) {
    let context = store.load_aggregate(id).await.unwrap();
    store.commit(events, context, HashMap::new()).await.unwrap();
}

/// cqrs-es's backends' `simple_es_commit_and_load_test`, with the aggregate checked too.
pub async fn commit_and_load<
    S: EventStore<BankAccount, AC = cqrs_es::persist::EventStoreAggregateContext<BankAccount>>,
>(
    store: S,
) {
    let id = "acc-1";
    assert_eq!(0, store.load_events(id).await.unwrap().len());
    let context = store.load_aggregate(id).await.unwrap();
    assert_eq!(0, context.current_sequence);
    store
        .commit(
            vec![opened(id), deposited(100.0, 100.0)],
            context,
            HashMap::default(),
        )
        .await
        .unwrap();
    assert_eq!(2, store.load_events(id).await.unwrap().len());

    let context = store.load_aggregate(id).await.unwrap();
    assert_eq!(2, context.current_sequence);
    store
        .commit(vec![deposited(50.0, 150.0)], context, HashMap::default())
        .await
        .unwrap();
    let events = store.load_events(id).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(events[2].payload, deposited(50.0, 150.0));
    let loaded = store.load_aggregate(id).await.unwrap();
    assert_eq!(3, loaded.current_sequence);
    assert_eq!(
        BankAccount {
            opened: true,
            balance: 150.0
        },
        loaded.aggregate
    );
}

pub async fn commit_and_load_events(store: AsyncStore) {
    commit_and_load(repo(&store).event_store::<BankAccount>()).await;
    // Stream `{TYPE}-{id}`, one event per sequence number, the event version in the metadata.
    let events = store
        .read_stream("Account-acc-1", Read::forward())
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(events[0].event_type, "AccountOpened");
    assert_eq!(events[0].meta["event_version"], "1.0");
    assert_eq!(
        events[1].data.get(),
        r#"{"CustomerDepositedMoney":{"amount":100.0,"balance":100.0}}"#
    );
    // No snapshot for a pure event store.
    assert!(
        store
            .load_snapshot("Account-acc-1")
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn commit_and_load_events_aggregate_store(store: AsyncStore) {
    commit_and_load(repo(&store).aggregate_store::<BankAccount>()).await;
    // The aggregate store saves a snapshot at every commit, at the last event's version.
    let snapshot = store.load_snapshot("Account-acc-1").await.unwrap().unwrap();
    assert_eq!(snapshot.version, 3);
    let state: Value = snapshot.decode().unwrap();
    assert_eq!(
        state,
        json!({"eventfile_cqrs": 1, "current_snapshot": 2,
               "aggregate": {"opened": true, "balance": 150.0}})
    );
}

pub async fn optimistic_lock(store: AsyncStore) {
    let cqrs_store = repo(&store).event_store::<BankAccount>();
    commit(&cqrs_store, "a", vec![opened("a")]).await;
    let first = cqrs_store.load_aggregate("a").await.unwrap();
    let second = cqrs_store.load_aggregate("a").await.unwrap();
    cqrs_store
        .commit(vec![deposited(10.0, 10.0)], first, HashMap::new())
        .await
        .unwrap();
    let err = cqrs_store
        .commit(vec![deposited(20.0, 20.0)], second, HashMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, AggregateError::AggregateConflict), "{err:?}");
    let events = cqrs_store.load_events("a").await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].payload, deposited(10.0, 10.0));
}

fn serialized(id: &str, sequence: usize, event: &BankAccountEvent) -> SerializedEvent {
    use cqrs_es::DomainEvent;
    SerializedEvent::new(
        id.into(),
        sequence,
        "Account".into(),
        event.event_type(),
        event.event_version(),
        serde_json::to_value(event).unwrap(),
        json!({}),
    )
}

/// cqrs-es's backends' repository test (`event_repositories`): two events in, a batch that
/// conflicts refused whole, the replay streams.
pub async fn optimistic_lock_of_the_repository(store: AsyncStore) {
    let repo = repo(&store).with_streaming_channel_size(1);
    assert!(
        repo.get_events::<BankAccount>("a")
            .await
            .unwrap()
            .is_empty()
    );
    repo.persist::<BankAccount>(
        &[
            serialized("a", 1, &opened("a")),
            serialized("a", 2, &deposited(1.0, 1.0)),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(repo.get_events::<BankAccount>("a").await.unwrap().len(), 2);

    // Sequence 2 again: taken, the optimistic lock.
    let err = repo
        .persist::<BankAccount>(&[serialized("a", 2, &deposited(5.0, 5.0))], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PersistenceError::OptimisticLockError),
        "{err:?}"
    );
    // Sequence 3 then 2 (the upstream test's batch): refused before anything is written.
    let err = repo
        .persist::<BankAccount>(
            &[
                serialized("a", 3, &deposited(5.0, 6.0)),
                serialized("a", 2, &deposited(5.0, 6.0)),
            ],
            None,
        )
        .await
        .unwrap_err();
    match err {
        PersistenceError::UnknownError(e) => {
            assert!(
                matches!(e.downcast_ref::<Error>(), Some(Error::BadBatch { .. })),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(repo.get_events::<BankAccount>("a").await.unwrap().len(), 2);
    assert_eq!(store.head_seq().await.unwrap(), 2);

    assert_eq!(
        count(repo.stream_events::<BankAccount>("a").await.unwrap()).await,
        2
    );
    assert_eq!(
        count(repo.stream_all_events::<BankAccount>().await.unwrap()).await,
        2
    );
}

async fn count(mut stream: ReplayStream) -> usize {
    let mut n = 0;
    while let Some(e) = stream.next::<BankAccount>(&[]).await {
        e.unwrap();
        n += 1;
    }
    n
}

fn account_opened_upcaster() -> SemanticVersionEventUpcaster {
    // Version 0.1.0 of AccountOpened carried no account id.
    SemanticVersionEventUpcaster::new(
        "AccountOpened",
        "1.0.0",
        Box::new(|mut event| {
            match event.get_mut("AccountOpened") {
                Some(Value::Object(object)) => {
                    object.insert("account_id".into(), Value::String("UNKNOWN".into()));
                }
                _ => panic!("not the expected object: {event}"),
            }
            event
        }),
    )
}

pub async fn upcasted_event(store: AsyncStore) {
    // An event written by an older version of the application, straight to eventfile.
    let old = NewEvent::new("AccountOpened", json!({"AccountOpened": {}}))
        .with_meta_entry("event_version", "0.1.0")
        .with_meta_entry("metadata", json!({}));
    store
        .append("Account-old", ExpectedVersion::NoStream, [old])
        .await
        .unwrap();

    let plain = repo(&store).event_store::<BankAccount>();
    let Err(err) = plain.load_aggregate("old").await else {
        panic!("an old event loaded without its upcaster")
    };
    assert!(
        matches!(err, AggregateError::DeserializationError(_)),
        "{err:?}"
    );

    let upcasting = repo(&store)
        .event_store::<BankAccount>()
        .with_upcasters(vec![Box::new(account_opened_upcaster())]);
    let loaded = upcasting.load_aggregate("old").await.unwrap();
    assert_eq!(1, loaded.current_sequence);
    assert_eq!(None, loaded.current_snapshot);
    assert!(loaded.aggregate.opened);
    upcasting
        .commit(vec![deposited(3.0, 3.0)], loaded, HashMap::new())
        .await
        .unwrap();
    let events = upcasting.load_events("old").await.unwrap();
    assert_eq!(events[0].payload, opened("UNKNOWN"));
    assert_eq!(events.len(), 2);

    // The replay stream upcasts too.
    let mut stream = repo(&store)
        .stream_events::<BankAccount>("old")
        .await
        .unwrap();
    let first = stream
        .next::<BankAccount>(&[Box::new(account_opened_upcaster())])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.payload, opened("UNKNOWN"));
}

pub async fn metadata_kept_verbatim(store: AsyncStore) {
    let cqrs = cqrs_framework::<BankAccount>(store.clone(), vec![], BankAccountServices);
    let metadata = HashMap::from([
        ("user".to_string(), "ann".to_string()),
        ("correlation_id".to_string(), "req-7".to_string()),
        ("time".to_string(), "2026-01-01T00:00:00Z".to_string()),
    ]);
    cqrs.execute_with_metadata(
        "a",
        BankAccountCommand::OpenAccount {
            account_id: "a".into(),
        },
        metadata.clone(),
    )
    .await
    .unwrap();

    let events = repo(&store)
        .event_store::<BankAccount>()
        .load_events("a")
        .await
        .unwrap();
    assert_eq!(events[0].metadata, metadata);
    let raw = store
        .read_stream("Account-a", Read::forward())
        .await
        .unwrap();
    assert_eq!(raw[0].meta["metadata"], json!(metadata));
    // The correlation id is also where eventfile indexes it.
    let found = store
        .query(&eventfile::Query::new().correlation("req-7"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
}

pub async fn ids_that_cannot_name_a_stream_are_refused(store: AsyncStore) {
    let cqrs = cqrs_framework::<BankAccount>(store.clone(), vec![], BankAccountServices);
    let command = || BankAccountCommand::OpenAccount {
        account_id: "x".into(),
    };
    for id in ["line\nbreak".to_string(), "x".repeat(250)] {
        let err = cqrs.execute(&id, command()).await.unwrap_err();
        match err {
            AggregateError::UnexpectedError(e) => assert!(
                matches!(
                    e.downcast_ref::<Error>(),
                    Some(Error::Name(NameError::AggregateId { .. }))
                ),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.head_seq().await.unwrap(), 0);
    // Any other id is a stream, `-` included.
    cqrs.execute("0190a0b0-0000-7000-8000-000000000001", command())
        .await
        .unwrap();
    assert_eq!(
        store
            .stream_version("Account-0190a0b0-0000-7000-8000-000000000001")
            .await
            .unwrap(),
        1
    );
}

pub async fn truncated_stream_is_refused_not_loaded_wrongly(store: AsyncStore) {
    let accounts = repo(&store).event_store::<BankAccount>();
    commit(
        &accounts,
        "a",
        vec![opened("a"), deposited(1.0, 1.0), deposited(1.0, 2.0)],
    )
    .await;
    store.truncate_stream("Account-a", 2).await.unwrap();

    // Replaying from version 2 would give a wrong aggregate: refused.
    let Err(err) = accounts.load_aggregate("a").await else {
        panic!("a truncated stream loaded")
    };
    match err {
        AggregateError::UnexpectedError(e) => assert!(
            matches!(
                e.downcast_ref::<Error>(),
                Some(Error::MissingEvents {
                    expected: 1,
                    found: 2,
                    ..
                })
            ),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    let mut stream = repo(&store)
        .stream_events::<BankAccount>("a")
        .await
        .unwrap();
    assert!(stream.next::<BankAccount>(&[]).await.unwrap().is_err());
    assert!(stream.next::<BankAccount>(&[]).await.is_none());
}

pub async fn framework_dispatches_committed_events(store: AsyncStore) {
    let recorder = Recorder::default();
    let cqrs = cqrs_framework::<BankAccount>(
        store.clone(),
        vec![Box::new(recorder.clone())],
        BankAccountServices,
    );
    cqrs.execute(
        "a",
        BankAccountCommand::OpenAccount {
            account_id: "a".into(),
        },
    )
    .await
    .unwrap();
    cqrs.execute("a", BankAccountCommand::DepositMoney { amount: 5.0 })
        .await
        .unwrap();
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("a".to_string(), 1, opened("a")),
            ("a".to_string(), 2, deposited(5.0, 5.0))
        ]
    );
}

pub async fn event_another_program_appended_is_refused(store: AsyncStore) {
    // An event in an Account stream without cqrs-es's event version.
    let foreign = NewEvent::new(
        "AccountOpened",
        json!({"AccountOpened": {"account_id": "f"}}),
    );
    store
        .append("Account-f", ExpectedVersion::NoStream, [foreign])
        .await
        .unwrap();
    let err = repo(&store)
        .get_events::<BankAccount>("f")
        .await
        .unwrap_err();
    match err {
        PersistenceError::DeserializationError(e) => assert!(
            matches!(
                e.downcast_ref::<Error>(),
                Some(Error::ForeignEvent { version: 1, .. })
            ),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
}
