//! Conditional appends (the Dynamic Consistency Boundary model): "fail if any event matching
//! this query exists after position P", checked atomically with the write.

use crate::support::*;
use eventfile::{
    AppendCondition, AppendRequest, Error, ErrorKind, ExpectedVersion, NewEvent, Query, QueryItem,
    Store,
};
use serde_json::json;

fn enrolled(course: &str, student: &str) -> NewEvent {
    NewEvent::new("StudentSubscribed", json!({}))
        .with_tag(format!("course={course}"))
        .with_tag(format!("student={student}"))
}

fn course(course: &str) -> AppendCondition {
    AppendCondition::items([QueryItem::new(
        ["CourseCreated", "StudentSubscribed"],
        [format!("course={course}").as_str()],
    )])
}

fn request(stream: &str, e: NewEvent) -> AppendRequest {
    AppendRequest::new(stream, ExpectedVersion::Any, [e])
}

#[test]
fn a_condition_fails_on_a_matching_event_after_its_position_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Nothing matches yet: the condition over the whole log holds.
    let r = store
        .append_request(request("c1", enrolled("c1", "ann")).condition(course("c1")))
        .unwrap();
    assert_eq!(r.first_seq, 1);
    append_one(&store, "noise", 0);
    // Now an event matches: over the whole log it fails, naming seq 1.
    let err = store
        .append_request(request("c1", enrolled("c1", "bob")).condition(course("c1")))
        .unwrap_err();
    assert!(
        matches!(err, Error::ConditionFailed { seq: 1, after: 0 }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::ConditionFailed);
    assert!(err.is_conflict());
    assert_eq!(store.head_seq(), 2, "nothing written");
    // After the position the decision was based on (seq 1), nothing matches: it holds.
    let r = store
        .append_request(request("c1", enrolled("c1", "bob")).condition(course("c1").after(1)))
        .unwrap();
    assert_eq!(r.first_seq, 3);
    // Another course's events do not match; a tag alone is not enough without the type.
    store
        .append_request(request("c2", enrolled("c2", "cy")).condition(course("c2")))
        .unwrap();
    let tagged_other_type = NewEvent::new("Note", json!({})).with_tag("course=c3");
    store
        .append_request(request("c3", tagged_other_type))
        .unwrap();
    store
        .append_request(request("c3", enrolled("c3", "di")).condition(course("c3")))
        .unwrap();
}

#[test]
fn any_query_filter_can_be_a_condition() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    append_one(&store, "order-1", 0);
    append_one(&store, "order-2", 0);
    let head = store.head_seq();
    for (q, first) in [
        (Query::new().stream("order-2"), Some(2)),
        (Query::new().prefix("order-"), Some(1)),
        (Query::new().event_type("Tick"), Some(1)),
        (Query::new().event_type("Tock"), None),
        (Query::new().from_seq(2), Some(2)),
        (Query::new().to_seq(1).stream("order-2"), None),
    ] {
        let r = store.append_request(
            request("probe", NewEvent::new("Probe", json!({})))
                .condition(AppendCondition::new(q.clone())),
        );
        match (first, r) {
            (Some(seq), Err(Error::ConditionFailed { seq: s, .. })) => assert_eq!(s, seq, "{q:?}"),
            (None, Ok(_)) => {}
            (want, got) => panic!("{q:?}: expected {want:?}, got {got:?}"),
        }
    }
    // Only the probes that held were written.
    assert_eq!(store.head_seq(), head + 2);
}

#[test]
fn deleted_events_do_not_match() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .append_request(request("c1", enrolled("c1", "ann")))
        .unwrap();
    assert!(
        store
            .append_request(request("x", enrolled("c1", "bob")).condition(course("c1")))
            .is_err()
    );
    store.delete_stream("c1", ExpectedVersion::Any).unwrap();
    store
        .append_request(request("x", enrolled("c1", "bob")).condition(course("c1")))
        .unwrap();
}

#[test]
fn a_retry_returns_the_first_result_even_when_its_condition_would_now_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let e = || enrolled("c1", "ann").with_id("enrol-ann");
    let first = store
        .append_request(request("c1", e()).condition(course("c1")))
        .unwrap();
    // The same batch again: its own event now matches the condition, but it is a retry.
    let again = store
        .append_request(request("c1", e()).condition(course("c1")))
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.first_seq, first.first_seq);
    // Under a key, likewise.
    let k = store
        .append_request(
            request("c9", enrolled("c9", "x"))
                .key("k1")
                .condition(course("c9")),
        )
        .unwrap();
    let k2 = store
        .append_request(
            request("c9", enrolled("c9", "x"))
                .key("k1")
                .condition(course("c9")),
        )
        .unwrap();
    assert!(k2.replayed);
    assert_eq!(k2.first_seq, k.first_seq);
    assert_eq!(store.head_seq(), 2);
}

#[test]
fn bad_conditions_are_typed_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    append_one(&store, "s", 0);
    // A position above the head.
    let err = store
        .append_request(request("s", ev("T", 1)).condition(course("c1").after(5)))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // A malformed query: an empty tag, an inverted seq range.
    for q in [Query::new().tag(""), Query::new().from_seq(5).to_seq(2)] {
        let err = store
            .append_request(request("s", ev("T", 1)).condition(AppendCondition::new(q)))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    assert_eq!(store.head_seq(), 1);
}

#[test]
fn conditions_hold_across_segments_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = small_store(dir.path(), 4096);
        store
            .append_request(request("c1", enrolled("c1", "ann")))
            .unwrap();
        fill_until_segments(&store, dir.path(), 4);
    }
    let store = small_store(dir.path(), 4096);
    let head = store.head_seq();
    let err = store
        .append_request(request("c1", enrolled("c1", "bob")).condition(course("c1")))
        .unwrap_err();
    assert!(
        matches!(err, Error::ConditionFailed { seq: 1, .. }),
        "{err}"
    );
    store
        .append_request(request("c1", enrolled("c1", "bob")).condition(course("c1").after(1)))
        .unwrap();
    assert_eq!(store.head_seq(), head + 1);
}

/// Racing appenders each claim the same username under a condition: exactly one wins.
#[test]
fn of_racing_conditional_appends_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for round in 0..20 {
        let name = format!("user=name-{round}");
        let seen = store.head_seq();
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let (store, name) = (store.clone(), name.clone());
                    s.spawn(move || {
                        let e = NewEvent::new("UsernameClaimed", json!({ "by": t }))
                            .with_tag(name.clone());
                        let c = AppendCondition::new(Query::new().tag(name)).after(seen);
                        store
                            .append_request(
                                AppendRequest::new(format!("acct-{t}"), ExpectedVersion::Any, [e])
                                    .condition(c),
                            )
                            .is_ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(wins, 1, "round {round}");
        let claims: Vec<_> = store
            .query(&Query::new().tag(name))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(claims.len(), 1);
    }
    assert_eq!(all(&store).len(), 20);
}
