//! # eventfile-conformance
//!
//! The conformance suite of [`eventfile::EventStore`]: the cases every backend must pass, as a
//! library, so that any backend (the file store, the in-memory store, or one written elsewhere)
//! runs the very same cases by handing over a factory of fresh, empty stores.
//!
//! This crate owns the cases and nothing else: each is a small function that calls the factory
//! for a new store, drives it only through the trait, and checks what the trait's contract
//! promises (positions, visibility, atomicity, typed failures, retries, deletion) and the rules
//! the file store defines for everything else (validation, listings, snapshots). It must never
//! assume how a store keeps its events (a directory, a file, a clock it can set) nor reach
//! around the trait; a backend's own matters (durability, recovery, retention) are tested by
//! the backend.
//!
//! Run it from a backend's tests, one `#[test]` per case:
//!
//! ```
//! use eventfile::{EventStore, MemoryStore};
//!
//! fn new_store() -> Box<dyn EventStore> {
//!     Box::new(MemoryStore::new())
//! }
//!
//! mod conformance {
//!     eventfile_conformance::suite!(super::new_store);
//! }
//! # fn main() {}
//! ```
//!
//! or all at once, reporting every failing case by name: [`run_all`]. A backend whose stores
//! own a resource that must outlive them (a temporary directory, a database) wraps each in
//! [`Guarded`].

use std::panic::{AssertUnwindSafe, catch_unwind};

use eventfile::EventStore;

mod guarded;
mod support;

pub mod bad_input;
pub mod batches;
pub mod catalog;
pub mod checkpoints;
pub mod concurrency;
pub mod dcb;
pub mod deletion;
pub mod expected_version;
pub mod imports;
pub mod queries;
pub mod reads;
pub mod retries;
pub mod snapshots;
pub mod subscriptions;

pub use guarded::Guarded;

/// Makes a fresh, empty store: what every case calls, once or more.
pub type Factory<'a> = dyn Fn() -> Box<dyn EventStore> + 'a;

/// One case of the suite.
pub type Case = fn(&Factory<'_>);

/// Calls `$callback!` with `$args` and the list of every case, as `module::case` paths: the one
/// list that [`suite!`] and [`CASES`] are made from.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_case {
    ($mode:ident $args:tt) => {
        $crate::__expand! { $mode $args [
            expected_version::no_stream_requires_an_empty_stream,
            expected_version::exact_names_the_current_version,
            expected_version::stream_exists_requires_an_event,
            expected_version::any_always_appends,
            expected_version::a_conflict_writes_nothing,
            batches::a_batch_gets_contiguous_positions_and_one_time,
            batches::a_multi_stream_append_reports_each_stream,
            batches::a_failing_stream_leaves_nothing_written,
            batches::a_stream_twice_in_one_append_is_refused,
            batches::concurrent_batches_never_interleave,
            batches::independent_requests_are_judged_each_on_its_own,
            batches::each_request_is_judged_before_the_ones_after_it,
            retries::generated_ids_are_unique_uuid_v7,
            retries::a_retried_batch_returns_the_first_result,
            retries::a_retried_multi_stream_batch_replays_every_part,
            retries::every_other_reuse_of_an_id_is_a_duplicate,
            retries::an_id_twice_in_one_append_is_refused,
            retries::a_key_returns_the_first_result,
            retries::a_key_reused_for_other_streams_is_refused,
            retries::ids_and_keys_of_deleted_events_stay_taken,
            retries::concurrent_retries_write_once,
            dcb::a_condition_fails_on_a_matching_event_and_writes_nothing,
            dcb::a_condition_counts_only_events_after_its_position,
            dcb::a_condition_item_needs_a_type_and_every_tag,
            dcb::any_query_filter_can_be_a_condition,
            dcb::deleted_events_do_not_fail_a_condition,
            dcb::a_retry_replays_even_when_its_condition_now_fails,
            dcb::bad_conditions_are_refused,
            dcb::of_racing_conditional_appends_exactly_one_wins,
            deletion::truncation_hides_earlier_events_from_every_read,
            deletion::truncation_points_are_checked_and_only_move_forward,
            deletion::a_soft_delete_empties_the_stream_and_numbering_continues,
            deletion::a_tombstone_refuses_appends_and_reads,
            deletion::a_name_that_never_held_events_can_be_tombstoned,
            deletion::each_deletion_is_a_lifecycle_event,
            deletion::deletion_expectations_conflict_with_the_actual_version,
            reads::an_empty_store_reads_empty,
            reads::stream_reads_go_both_ways_from_any_version_with_limits,
            reads::global_reads_go_both_ways_from_any_seq_with_limits,
            reads::events_round_trip_every_field,
            reads::commit_times_never_decrease,
            reads::head_seq_follows_every_write,
            queries::every_single_filter_matches_a_brute_force_scan,
            queries::combined_filters_match_a_brute_force_scan,
            queries::dcb_items_match_a_brute_force_scan,
            queries::time_ranges_match_a_brute_force_scan,
            queries::seq_ranges_limits_and_directions_match_a_brute_force_scan,
            queries::counts_equal_query_results_and_ignore_limits,
            queries::malformed_queries_are_refused,
            catalog::streams_are_listed_by_prefix_in_pages,
            catalog::event_types_are_listed_with_counts_in_pages,
            catalog::tags_are_listed_with_counts_in_pages,
            catalog::deleted_events_leave_the_listings,
            catalog::the_catalog_agrees_with_reads_through_a_random_history,
            snapshots::the_newest_snapshot_is_loaded,
            snapshots::a_snapshot_of_a_version_the_stream_lacks_is_refused,
            snapshots::a_snapshot_below_a_truncation_is_refused_and_not_loaded,
            snapshots::deleting_a_stream_removes_its_snapshots,
            snapshots::a_snapshot_state_is_kept_exactly,
            concurrency::readers_never_see_a_gap_or_events_out_of_order,
            concurrency::racing_writers_of_one_stream_get_distinct_versions,
            bad_input::bad_names_are_refused_and_nothing_is_written,
            bad_input::empty_appends_are_refused,
            bad_input::an_event_over_the_size_limit_is_refused,
            bad_input::reserved_stream_names_refuse_appends,
            bad_input::indexed_metadata_must_be_short_strings,
            bad_input::metadata_nested_deeper_than_can_be_read_back_is_refused,
            bad_input::bad_read_arguments_are_refused,
            subscriptions::history_then_live_with_appenders_racing_the_switch,
            subscriptions::a_subscription_delivers_only_what_its_query_selects,
            subscriptions::resuming_from_a_position_delivers_the_rest_once,
            subscriptions::many_subscribers_each_see_everything,
            subscriptions::a_slow_subscriber_blocks_no_appender_and_loses_nothing,
            subscriptions::closing_the_store_ends_a_waiting_subscription,
            subscriptions::limits_end_a_subscription_and_a_future_position_waits,
            subscriptions::deleted_events_are_not_delivered,
            subscriptions::wait_for_returns_once_a_seq_is_visible,
            subscriptions::bad_subscriptions_are_refused,
            imports::an_import_keeps_every_field,
            imports::importing_twice_writes_nothing,
            imports::a_bad_import_is_refused_whole,
            imports::an_import_continues_the_stores_streams,
            checkpoints::checkpoints_round_trip_in_name_order,
            checkpoints::bad_checkpoint_names_are_refused_and_long_errors_cut,
            checkpoints::checkpoints_are_not_events,
            checkpoints::metrics_count_only_appends_that_wrote,
        ] }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __expand {
    (tests ($factory:expr) [$($module:ident :: $case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                let factory: &$crate::Factory<'_> = &$factory;
                $crate::$module::$case(factory);
            }
        )*
    };
    (list () [$($module:ident :: $case:ident),* $(,)?]) => {
        &[$((concat!(stringify!($module), "::", stringify!($case)), $crate::$module::$case as $crate::Case)),*]
    };
}

/// Expands to one `#[test]` per case, each calling `$factory` (a function or closure returning
/// a fresh `Box<dyn EventStore>`) for its stores, so that `cargo test` lists and counts every
/// case. Use it inside a module of its own: the tests are named after the cases.
///
/// ```
/// mod memory_store {
///     eventfile_conformance::suite!(|| Box::new(eventfile::MemoryStore::new()));
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! suite {
    ($factory:expr) => {
        $crate::__for_each_case!(tests($factory));
    };
}

/// Every case, by `module::case` name.
pub const CASES: &[(&str, Case)] = __for_each_case!(list());

/// Runs every case against stores from `factory`, then fails naming each case that failed (its
/// panic message is printed as it happens).
pub fn run_all(factory: &Factory<'_>) {
    let failed: Vec<&str> = CASES
        .iter()
        .filter(|(_, case)| catch_unwind(AssertUnwindSafe(|| case(factory))).is_err())
        .map(|(name, _)| *name)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} conformance cases failed: {failed:#?}",
        failed.len(),
        CASES.len()
    );
}
