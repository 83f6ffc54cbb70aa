//! Conditional appends (the Dynamic Consistency Boundary model): "fail if any event this query
//! selects exists after position P", checked atomically with the write.

use eventfile::{
    AppendCondition, AppendRequest, Error, ErrorKind, ExpectedVersion::*, NewEvent, Query,
    QueryItem,
};
use serde_json::json;

use crate::Factory;
use crate::support::*;

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
    AppendRequest::new(stream, Any, [e])
}

/// Checks that an append failed on its condition, naming `seq` and `after`.
#[track_caller]
fn assert_failed<T: std::fmt::Debug>(r: eventfile::Result<T>, seq: u64, after: u64) {
    let e = err(r);
    assert!(
        matches!(e, Error::ConditionFailed { seq: s, after: a } if (s, a) == (seq, after)),
        "expected the condition to fail at {seq} after {after}: {e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::ConditionFailed);
    assert!(e.is_conflict());
}

/// With nothing matching, the append goes ahead; with a match, it fails naming the first
/// matching seq and writes nothing.
pub fn a_condition_fails_on_a_matching_event_and_writes_nothing(factory: &Factory<'_>) {
    let s = factory();
    let r = s
        .append_request(request("c1", enrolled("c1", "ann")).condition(course("c1")))
        .unwrap();
    assert_eq!(r.first_seq, 1);
    tick(&*s, "noise", 0);
    let before = all(&*s);
    assert_failed(
        s.append_request(request("c1", enrolled("c1", "bob")).condition(course("c1"))),
        1,
        0,
    );
    assert_eq!(all(&*s), before);
}

/// Only events after the condition's position count.
pub fn a_condition_counts_only_events_after_its_position(factory: &Factory<'_>) {
    let s = factory();
    s.append_request(request("c1", enrolled("c1", "ann")))
        .unwrap();
    tick(&*s, "noise", 0);
    // Decided on seq 1: nothing matching since, it holds.
    let r = s
        .append_request(request("c1", enrolled("c1", "bob")).condition(course("c1").after(1)))
        .unwrap();
    assert_eq!(r.first_seq, 3);
    // Decided on seq 2: seq 3 matches after it.
    assert_failed(
        s.append_request(request("c1", enrolled("c1", "cy")).condition(course("c1").after(2))),
        3,
        2,
    );
    // Decided on the head: holds.
    s.append_request(request("c1", enrolled("c1", "cy")).condition(course("c1").after(3)))
        .unwrap();
    assert_eq!(head(&*s), 4);
}

/// An item matches an event of any of its types carrying all of its tags; items are
/// alternatives.
pub fn a_condition_item_needs_a_type_and_every_tag(factory: &Factory<'_>) {
    let s = factory();
    let tagged = |t: &str, tags: &[&str]| {
        tags.iter()
            .fold(NewEvent::new(t, json!({})), |e, tag| e.with_tag(*tag))
    };
    append(&*s, "a", vec![tagged("A", &["x=1"])]);
    append(&*s, "a", vec![tagged("C", &["x=1", "y=1"])]);
    let item = || QueryItem::new(["A", "B"], ["x=1", "y=1"]);
    let probe = || request("probe", tagged("Probe", &[]));
    // Neither the type-only nor the tags-only near miss matches.
    s.append_request(probe().condition(AppendCondition::items([item()])))
        .unwrap();
    append(&*s, "a", vec![tagged("B", &["y=1", "x=1", "z=1"])]);
    assert_failed(
        s.append_request(probe().condition(AppendCondition::items([item()]))),
        4,
        0,
    );
    // An item of tags alone matches any type; the first matching item's event is named.
    let tags_only = QueryItem::new(Vec::<&str>::new(), ["y=1"]);
    assert_failed(
        s.append_request(probe().condition(AppendCondition::items([item(), tags_only]))),
        2,
        0,
    );
    let types_only = QueryItem::new(["Probe"], Vec::<&str>::new());
    assert_failed(
        s.append_request(probe().condition(AppendCondition::items([types_only]))),
        3,
        0,
    );
}

/// Every filter a query offers narrows a condition the same way.
pub fn any_query_filter_can_be_a_condition(factory: &Factory<'_>) {
    let s = factory();
    append(
        &*s,
        "order-1",
        vec![
            NewEvent::new("Placed", json!({}))
                .with_tag("region=eu")
                .with_meta_entry("correlation_id", "c-1")
                .with_meta_entry("causation_id", "k-1")
                .with_meta_entry("actor", "ann"),
        ],
    );
    append(
        &*s,
        "order-2",
        vec![NewEvent::new("Paid", json!({})).with_tag("region=us")],
    );
    let log = all(&*s);
    let (t1, t2) = (log[0].time, log[1].time);
    let first_order_since_t2 = log.iter().find(|e| e.time >= t2).map(|e| e.seq);
    let table = [
        (Query::new().stream("order-2"), Some(2)),
        (Query::new().prefix("order-"), Some(1)),
        (Query::new().event_type("Paid"), Some(2)),
        (Query::new().types(["Nope"]), None),
        (Query::new().tag("region=us"), Some(2)),
        (Query::new().tag("region=eu").tag("region=us"), None),
        (Query::new().correlation("c-1"), Some(1)),
        (Query::new().causation("k-1"), Some(1)),
        (Query::new().actor("ann"), Some(1)),
        (Query::new().actor("bob"), None),
        (Query::new().from_seq(2).prefix("order-"), Some(2)),
        (Query::new().to_seq(1).stream("order-2"), None),
        (
            Query::new().since(t2).prefix("order-"),
            first_order_since_t2,
        ),
        (Query::new().until(t1).prefix("order-"), None),
        (
            Query::new().item(QueryItem::new(["Paid"], ["region=us"])),
            Some(2),
        ),
        (
            Query::new().item(QueryItem::new(["Placed"], ["region=us"])),
            None,
        ),
        // Direction and limit do not change what a condition selects.
        (Query::new().prefix("order-").backward().limit(1), Some(1)),
    ];
    let mut written = 0;
    for (q, first) in table {
        let r = s.append_request(
            request("probe", NewEvent::new("Probe", json!({})))
                .condition(AppendCondition::new(q.clone())),
        );
        match (first, r) {
            (Some(seq), Err(Error::ConditionFailed { seq: got, .. })) => {
                assert_eq!(got, seq, "{q:?}")
            }
            (None, Ok(_)) => written += 1,
            (want, got) => panic!("{q:?}: expected {want:?}, got {got:?}"),
        }
    }
    assert_eq!(head(&*s), 2 + written);
}

/// Deleted events do not match a condition.
pub fn deleted_events_do_not_fail_a_condition(factory: &Factory<'_>) {
    let s = factory();
    s.append_request(request("c1", enrolled("c1", "ann")))
        .unwrap();
    s.append_request(request("c2", enrolled("c2", "ann")))
        .unwrap();
    assert_failed(
        s.append_request(request("x", enrolled("c1", "bob")).condition(course("c1"))),
        1,
        0,
    );
    s.delete_stream("c1", Any).unwrap();
    s.append_request(request("x", enrolled("c1", "bob")).condition(course("c1")))
        .unwrap();
    s.tombstone_stream("c2", Any).unwrap();
    s.append_request(request("y", enrolled("c2", "bob")).condition(course("c2")))
        .unwrap();
}

/// A retry (by ids or by key) returns the first result even though its own events now make
/// its condition fail.
pub fn a_retry_replays_even_when_its_condition_now_fails(factory: &Factory<'_>) {
    let s = factory();
    let e = || enrolled("c1", "ann").with_id("enrol-ann");
    let first = s
        .append_request(request("c1", e()).condition(course("c1")))
        .unwrap();
    let again = s
        .append_request(request("c1", e()).condition(course("c1")))
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.first_seq, first.first_seq);
    let keyed = || {
        request("c9", enrolled("c9", "x"))
            .key("k1")
            .condition(course("c9"))
    };
    let k = s.append_request(keyed()).unwrap();
    let k2 = s.append_request(keyed()).unwrap();
    assert!(k2.replayed && !k.replayed);
    assert_eq!(k2.first_seq, k.first_seq);
    assert_eq!(head(&*s), 2);
}

/// A position above the head, or a malformed query, is invalid input; nothing is written.
pub fn bad_conditions_are_refused(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "s", 0);
    assert_kind(
        s.append_request(request("s", ev("T", 1)).condition(course("c1").after(5))),
        ErrorKind::InvalidInput,
    );
    for q in [
        Query::new().tag(""),
        Query::new().tag("no-equals-sign"),
        Query::new().from_seq(5).to_seq(2),
        Query::new().since(10).until(5),
        Query::new().item(QueryItem::new(Vec::<&str>::new(), Vec::<&str>::new())),
        Query::new().event_type(""),
    ] {
        assert_kind(
            s.append_request(request("s", ev("T", 1)).condition(AppendCondition::new(q.clone()))),
            ErrorKind::InvalidInput,
        );
    }
    assert_eq!(head(&*s), 1);
}

/// Racing appenders each claim the same name under a condition: exactly one wins per round.
pub fn of_racing_conditional_appends_exactly_one_wins(factory: &Factory<'_>) {
    let s = factory();
    let store = &*s;
    for round in 0..8 {
        let name = format!("user=name-{round}");
        let seen = head(store);
        let wins: usize = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let name = name.clone();
                    scope.spawn(move || {
                        let e = NewEvent::new("UsernameClaimed", json!({ "by": t }))
                            .with_tag(name.clone());
                        let c = AppendCondition::new(Query::new().tag(name)).after(seen);
                        match store.append_request(
                            AppendRequest::new(format!("acct-{t}"), Any, [e]).condition(c),
                        ) {
                            Ok(_) => 1,
                            Err(e) if e.kind() == ErrorKind::ConditionFailed => 0,
                            Err(e) => panic!("{e}"),
                        }
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).sum()
        });
        assert_eq!(wins, 1, "round {round}");
        assert_eq!(store.count(&Query::new().tag(name)).unwrap(), 1);
    }
    assert_eq!(all(store).len(), 8);
}
