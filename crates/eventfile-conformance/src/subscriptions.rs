//! Subscriptions: history then live, in seq order, never a gap, never an event twice; filters;
//! resuming from a position; many subscribers; a slow subscriber; closing while one waits;
//! `wait_for`; bad subscriptions.

use std::sync::Barrier;
use std::time::Duration;

use eventfile::{ErrorKind, EventStore, Query, RecordedEvent, Subscription};

use crate::Factory;
use crate::support::{all, append, assert_kind, ev, head, tick};

/// Long enough never to end a wait that should succeed; a hang shows up as a failed test.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long a wait that must find nothing waits.
const BRIEF: Duration = Duration::from_millis(20);

/// The next `n` events of `sub`; panics on an error, an end or a wait beyond [`PATIENCE`].
#[track_caller]
fn take(sub: &mut Subscription, n: usize) -> Vec<RecordedEvent> {
    (0..n)
        .map(|i| {
            sub.next_timeout(PATIENCE)
                .unwrap_or_else(|e| panic!("event {i} of {n}: {e}"))
                .unwrap_or_else(|| panic!("event {i} of {n} did not come"))
        })
        .collect()
}

/// Checks that nothing more comes now.
#[track_caller]
fn assert_quiet(sub: &mut Subscription) {
    let next = sub.next_timeout(BRIEF).expect("a quiet subscription");
    assert!(next.is_none(), "unexpected event {next:?}");
    assert!(sub.is_caught_up());
    assert!(!sub.is_finished());
}

/// What identifies a delivered event: position, id, stream, version, type, time and data.
type Key = (u64, String, String, u64, String, i64, String);

fn keys(events: &[RecordedEvent]) -> Vec<Key> {
    events
        .iter()
        .map(|e| {
            (
                e.seq,
                e.id.clone(),
                e.stream.clone(),
                e.version,
                e.event_type.clone(),
                e.time,
                e.data.get().to_owned(),
            )
        })
        .collect()
}

fn subscribe(s: &dyn EventStore, q: &Query, from: u64) -> Subscription {
    s.subscribe(q, from)
        .unwrap_or_else(|e| panic!("subscribe: {e}"))
}

/// A subscription from 0 delivers the history, then the events that appenders racing the
/// switch from history to live append: each exactly once, in seq order, equal to what a read
/// returns.
pub fn history_then_live_with_appenders_racing_the_switch(factory: &Factory<'_>) {
    const HISTORY: u64 = 60;
    const APPENDERS: u64 = 3;
    const EACH: u64 = 40;
    let s = factory();
    let store = &*s;
    for i in 0..HISTORY {
        tick(store, &format!("h-{}", i % 7), i);
    }
    let total = (HISTORY + APPENDERS * EACH) as usize;
    let start = Barrier::new(APPENDERS as usize + 1);
    let got = std::thread::scope(|scope| {
        for t in 0..APPENDERS {
            let start = &start;
            scope.spawn(move || {
                start.wait();
                for i in 0..EACH {
                    // Batches of one and two, so that the switch can fall inside either.
                    let events = (0..1 + i % 2).map(|k| ev("Live", t * 1000 + i * 10 + k));
                    append(store, &format!("live-{t}"), events.collect());
                }
            });
        }
        let mut sub = subscribe(store, &Query::new(), 0);
        start.wait();
        let extra: u64 = (0..EACH).map(|i| i % 2).sum::<u64>() * APPENDERS;
        take(&mut sub, total + extra as usize)
    });
    let log = all(store);
    assert_eq!(
        keys(&got),
        keys(&log),
        "the subscription delivered what the log holds, in order"
    );
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=head(store)).collect::<Vec<_>>());
}

/// A filtered subscription delivers what the same query reads, history and live, and nothing
/// else; its position passes the events it skips.
pub fn a_subscription_delivers_only_what_its_query_selects(factory: &Factory<'_>) {
    let s = factory();
    let store = &*s;
    let kinds = ["Placed", "Paid", "Shipped"];
    let event = |i: u64| ev(kinds[(i % 3) as usize], i).with_tag(format!("region={}", i % 2));
    for i in 0..30 {
        append(store, &format!("order-{}", i % 4), vec![event(i)]);
    }
    let q = Query::new()
        .prefix("order-")
        .event_type("Paid")
        .tag("region=1");
    let expected: Vec<RecordedEvent> = store.query(&q).unwrap().map(Result::unwrap).collect();
    assert!(!expected.is_empty());
    let mut sub = subscribe(store, &q, 0);
    assert_eq!(keys(&take(&mut sub, expected.len())), keys(&expected));
    assert_quiet(&mut sub);
    assert_eq!(
        sub.position(),
        head(store),
        "the position passes skipped events"
    );
    // Live: only the matching ones come.
    for i in 30..60 {
        append(store, &format!("order-{}", i % 4), vec![event(i)]);
        append(store, "other-1", vec![ev("Paid", i).with_tag("region=1")]);
    }
    let live: Vec<RecordedEvent> = store
        .query(&q.clone().from_seq(expected.last().unwrap().seq + 1))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(keys(&take(&mut sub, live.len())), keys(&live));
    assert_quiet(&mut sub);
}

/// A subscription resumed from a saved position delivers the rest, once: what a consumer with
/// a checkpoint relies on.
pub fn resuming_from_a_position_delivers_the_rest_once(factory: &Factory<'_>) {
    let s = factory();
    let store = &*s;
    for i in 0..20 {
        tick(store, "s", i);
    }
    let mut first = subscribe(store, &Query::new(), 0);
    let seen = take(&mut first, 12);
    let saved = first.position();
    assert_eq!(saved, seen.last().unwrap().seq);
    drop(first);
    for i in 20..30 {
        tick(store, "s", i);
    }
    let mut resumed = subscribe(store, &Query::new(), saved);
    let rest = take(&mut resumed, 18);
    assert_eq!(rest.first().map(|e| e.seq), Some(saved + 1));
    assert_eq!(rest.last().map(|e| e.seq), Some(30));
    assert_quiet(&mut resumed);
}

/// Many subscribers at once, while appends go on: each gets the whole log, in order.
pub fn many_subscribers_each_see_everything(factory: &Factory<'_>) {
    const SUBSCRIBERS: usize = 8;
    const EVENTS: u64 = 150;
    let s = factory();
    let store = &*s;
    let subs: Vec<Subscription> = (0..SUBSCRIBERS)
        .map(|_| subscribe(store, &Query::new(), 0))
        .collect();
    let results = std::thread::scope(|scope| {
        let readers: Vec<_> = subs
            .into_iter()
            .map(|mut sub| scope.spawn(move || take(&mut sub, EVENTS as usize)))
            .collect();
        for i in 0..EVENTS {
            tick(store, &format!("s-{}", i % 5), i);
        }
        readers
            .into_iter()
            .map(|r| r.join().unwrap())
            .collect::<Vec<_>>()
    });
    let log = all(store);
    for got in results {
        assert_eq!(keys(&got), keys(&log));
    }
}

/// A subscriber that reads nothing for a while holds up no appender, and afterwards gets
/// every event: it reads the log, not a queue that could fill up and drop.
pub fn a_slow_subscriber_blocks_no_appender_and_loses_nothing(factory: &Factory<'_>) {
    const EVENTS: u64 = 3000;
    let s = factory();
    let store = &*s;
    let mut sub = subscribe(store, &Query::new(), 0);
    tick(store, "s", 0);
    assert_eq!(take(&mut sub, 1)[0].seq, 1);
    // The subscriber does not read while all of these are appended on this very thread: were
    // an append to wait for it, this would never finish.
    for i in 1..EVENTS {
        tick(store, &format!("s-{}", i % 3), i);
    }
    let rest = take(&mut sub, (EVENTS - 1) as usize);
    let seqs: Vec<u64> = rest.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (2..=EVENTS).collect::<Vec<_>>());
    assert_quiet(&mut sub);
}

/// Closing the store (dropping it) ends a subscription waiting on another thread, and ends
/// later calls at once.
pub fn closing_the_store_ends_a_waiting_subscription(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "s", 0);
    let mut sub = subscribe(&*s, &Query::new(), 0);
    assert_eq!(take(&mut sub, 1)[0].seq, 1);
    let waiting = std::thread::spawn(move || {
        // Blocks until the store closes: nothing more is ever appended.
        let next = sub.next();
        (next.map(|r| r.map(|e| e.seq)), sub.is_finished())
    });
    drop(s);
    let (next, finished) = waiting.join().unwrap();
    assert!(next.is_none(), "a closed store delivered {next:?}");
    assert!(finished);
}

/// The query's limit and `to_seq` end a subscription; a `from` above the head waits for the log
/// to get there.
pub fn limits_end_a_subscription_and_a_future_position_waits(factory: &Factory<'_>) {
    let s = factory();
    let store = &*s;
    for i in 0..10 {
        tick(store, "s", i);
    }
    let mut limited = subscribe(store, &Query::new().limit(3), 2);
    let got: Vec<u64> = limited.by_ref().map(|e| e.unwrap().seq).collect();
    assert_eq!(got, [3, 4, 5]);
    assert!(limited.is_finished());
    let mut bounded = subscribe(store, &Query::new().to_seq(12), 8);
    assert_eq!(take(&mut bounded, 2).last().unwrap().seq, 10);
    for i in 10..14 {
        tick(store, "s", i);
    }
    let rest: Vec<u64> = bounded.by_ref().map(|e| e.unwrap().seq).collect();
    assert_eq!(rest, [11, 12]);
    assert!(bounded.is_finished());
    // A position beyond the head: nothing yet, no error, then the events past it.
    let mut ahead = subscribe(store, &Query::new(), 20);
    assert_quiet(&mut ahead);
    for i in 14..22 {
        tick(store, "s", i);
    }
    let got = take(&mut ahead, 2);
    assert_eq!((got[0].seq, got[1].seq), (21, 22));
}

/// Events deleted before a subscription reaches them are not delivered (as reads hide them).
pub fn deleted_events_are_not_delivered(factory: &Factory<'_>) {
    let s = factory();
    let store = &*s;
    for i in 0..6 {
        tick(store, "gone", i);
        tick(store, "kept", i);
    }
    store
        .delete_stream("gone", eventfile::ExpectedVersion::Any)
        .unwrap();
    let mut sub = subscribe(store, &Query::new().prefix("gone").event_type("Tick"), 0);
    assert_quiet(&mut sub);
    let mut kept = subscribe(store, &Query::new().stream("kept"), 0);
    assert_eq!(take(&mut kept, 6).len(), 6);
    assert_quiet(&mut kept);
}

/// `wait_for` returns once the seq is visible, and false when it is not within the time.
pub fn wait_for_returns_once_a_seq_is_visible(factory: &Factory<'_>) {
    let s = factory();
    let store = &*s;
    assert!(store.wait_for(0, BRIEF).unwrap());
    tick(store, "s", 0);
    assert!(store.wait_for(1, BRIEF).unwrap());
    assert!(!store.wait_for(2, BRIEF).unwrap());
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| store.wait_for(3, PATIENCE).unwrap());
        tick(store, "s", 1);
        tick(store, "s", 2);
        assert!(waiter.join().unwrap());
    });
}

/// A subscription that cannot run is refused with a typed error: a backward query, a
/// malformed filter.
pub fn bad_subscriptions_are_refused(factory: &Factory<'_>) {
    let s = factory();
    let store = &*s;
    tick(store, "s", 0);
    assert_kind(
        store.subscribe(&Query::new().backward(), 0),
        ErrorKind::InvalidInput,
    );
    assert_kind(
        store.subscribe(&Query::new().stream(""), 0),
        ErrorKind::InvalidInput,
    );
    assert_kind(
        store.subscribe(&Query::new().event_type("bad type\n"), 0),
        ErrorKind::InvalidInput,
    );
    assert_kind(
        store.subscribe(&Query::new().from_seq(5).to_seq(2), 0),
        ErrorKind::InvalidInput,
    );
}
