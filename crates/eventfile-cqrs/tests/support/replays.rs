//! The replay cases: `stream_events` and `stream_all_events`, read directly and through
//! cqrs-es's `QueryReplay`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cqrs_es::persist::{PersistedEventRepository, QueryReplay};
use cqrs_es::{EventEnvelope, EventStore, Query};
use eventfile::AsyncStore;

use super::bank_account::{AccountAudit, AuditEvent, BankAccount, BankAccountEvent};
use super::cases::{commit, deposited, opened, repo};

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
