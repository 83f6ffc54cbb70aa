//! What every backend's test file shares: cqrs-es's example aggregate ([`bank_account`]), the
//! cases ([`cases`]), and [`suite!`], which makes one `#[tokio::test]` per case from a factory
//! of fresh stores.

#![allow(dead_code)]

pub mod bank_account;
pub mod cases;
pub mod replays;
pub mod snapshots;

use eventfile::{AsyncStore, EventStore};

/// A fresh store from `factory`, opened on the blocking pool (the PostgreSQL client is
/// synchronous, and must not run on an async worker thread).
pub async fn open(factory: fn() -> Box<dyn EventStore>) -> AsyncStore {
    let store = tokio::task::spawn_blocking(factory)
        .await
        .expect("the factory panicked");
    AsyncStore::from(store)
}

/// Drops `store` (and its temporary directory or schema) on the blocking pool.
pub async fn close(store: AsyncStore) {
    tokio::task::spawn_blocking(move || drop(store))
        .await
        .expect("closing the store panicked");
}

/// One test per case, each on a fresh store from `$factory: fn() -> Box<dyn EventStore>`.
#[macro_export]
macro_rules! suite {
    ($factory:path) => {
        $crate::suite!(@cases $factory;
            commit_and_load_events,
            commit_and_load_events_aggregate_store,
            commit_and_load_events_snapshot_store,
            snapshot_of_a_commit_across_the_snapshot_size,
            snapshot_behind_the_events_after_a_crash,
            snapshot_that_is_not_ours_is_passed_over,
            deleted_stream_is_refused_not_loaded_as_new,
            optimistic_lock,
            optimistic_lock_of_the_repository,
            upcasted_event,
            replay_streams,
            replay_to_a_query,
            metadata_kept_verbatim,
            ids_that_cannot_name_a_stream_are_refused,
            truncated_stream_is_refused_not_loaded_wrongly,
            framework_dispatches_committed_events,
            event_another_program_appended_is_refused
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $crate::support::open($factory).await;
                $crate::support::cases::$case(store.clone()).await;
                $crate::support::close(store).await;
            }
        )*
    };
}
