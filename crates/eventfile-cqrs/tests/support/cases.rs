//! The cases every backend runs: what cqrs-es's own backends test (commit and load, with and
//! without a snapshot store, the optimistic lock, an upcasted event, the replay streams), and
//! what this adapter adds (snapshot versions, metadata, names, truncated streams).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, QueryReplay, ReplayStream,
    SemanticVersionEventUpcaster, SerializedEvent,
};
use cqrs_es::{AggregateError, EventEnvelope, EventStore, Query};
use eventfile::{AsyncStore, ExpectedVersion, NewEvent, Read};
use eventfile_cqrs::{Error, EventfileEventRepository, NameError, cqrs_framework};
use serde_json::{Value, json};

use super::bank_account::{
    AccountAudit, AuditEvent, BankAccount, BankAccountCommand, BankAccountEvent,
    BankAccountServices,
};

fn repo(store: &AsyncStore) -> EventfileEventRepository {
    EventfileEventRepository::new(store.clone())
}

fn opened(id: &str) -> BankAccountEvent {
    BankAccountEvent::AccountOpened {
        account_id: id.to_string(),
    }
}

fn deposited(amount: f64, balance: f64) -> BankAccountEvent {
    BankAccountEvent::CustomerDepositedMoney { amount, balance }
}

/// Commits `events` on top of what `store` loads for `id`.
async fn commit<S: EventStore<BankAccount>>(store: &S, id: &str, events: Vec<BankAccountEvent>) {
    let context = store.load_aggregate(id).await.unwrap();
    store.commit(events, context, HashMap::new()).await.unwrap();
}

/// cqrs-es's backends' `simple_es_commit_and_load_test`, with the aggregate checked too.
async fn commit_and_load<
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
        repo.get_snapshot::<BankAccount>("a")
            .await
            .unwrap()
            .is_none()
    );
    let loaded = repo
        .snapshot_store::<BankAccount>(2)
        .load_aggregate("a")
        .await
        .unwrap();
    assert_eq!(
        (loaded.current_sequence, loaded.aggregate.balance),
        (2, 10.0)
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

pub async fn replay_streams(store: AsyncStore) {
    let accounts = repo(&store).event_store::<BankAccount>();
    let audits = repo(&store).event_store::<AccountAudit>();
    // Interleaved commits of two accounts and of an aggregate type named like them.
    commit(&accounts, "a", vec![opened("a")]).await;
    commit(&accounts, "b", vec![opened("b"), deposited(1.0, 1.0)]).await;
    let context = audits.load_aggregate("a").await.unwrap();
    audits
        .commit(vec![AuditEvent::Audited], context, HashMap::new())
        .await
        .unwrap();
    commit(&accounts, "a", vec![deposited(2.0, 2.0)]).await;
    commit(&accounts, "b", vec![deposited(3.0, 4.0)]).await;
    commit(&accounts, "a-1", vec![opened("a-1")]).await;

    let repo = repo(&store).with_streaming_channel_size(2);
    let mut stream = repo.stream_events::<BankAccount>("a").await.unwrap();
    let mut seen = Vec::new();
    while let Some(e) = stream.next::<BankAccount>(&[]).await {
        let e = e.unwrap();
        seen.push((e.aggregate_id, e.sequence));
    }
    assert_eq!(seen, [("a".to_string(), 1), ("a".to_string(), 2)]);

    // Every Account event in the store's global order; the AccountAudit event left out.
    let mut stream = repo.stream_all_events::<BankAccount>().await.unwrap();
    let mut seen = Vec::new();
    while let Some(e) = stream.next::<BankAccount>(&[]).await {
        let e = e.unwrap();
        seen.push(format!("{}@{}", e.aggregate_id, e.sequence));
    }
    assert_eq!(seen, ["a@1", "b@1", "b@2", "a@2", "b@3", "a-1@1"]);

    let mut stream = repo.stream_all_events::<AccountAudit>().await.unwrap();
    let e = stream.next::<AccountAudit>(&[]).await.unwrap().unwrap();
    assert_eq!(
        (e.aggregate_id.as_str(), e.payload),
        ("a", AuditEvent::Audited)
    );
    assert!(stream.next::<AccountAudit>(&[]).await.is_none());
}

/// A query that records what it is dispatched.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<(String, usize, BankAccountEvent)>>>);

#[async_trait]
impl Query<BankAccount> for Recorder {
    async fn dispatch(&self, aggregate_id: &str, events: &[EventEnvelope<BankAccount>]) {
        let mut seen = self.0.lock().unwrap();
        for e in events {
            seen.push((aggregate_id.to_string(), e.sequence, e.payload.clone()));
        }
    }
}

pub async fn replay_to_a_query(store: AsyncStore) {
    let accounts = repo(&store).event_store::<BankAccount>();
    commit(&accounts, "a", vec![opened("a"), deposited(1.0, 1.0)]).await;
    commit(&accounts, "b", vec![opened("b")]).await;

    let recorder = Recorder::default();
    let replay = QueryReplay::new(repo(&store), recorder.clone());
    replay.replay("a").await.unwrap();
    assert_eq!(recorder.0.lock().unwrap().len(), 2);
    recorder.0.lock().unwrap().clear();
    replay.replay_all().await.unwrap();
    let seen: Vec<(String, usize)> = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(id, seq, _)| (id.clone(), *seq))
        .collect();
    assert_eq!(
        seen,
        [
            ("a".to_string(), 1),
            ("a".to_string(), 2),
            ("b".to_string(), 1)
        ]
    );
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
