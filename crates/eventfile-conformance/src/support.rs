//! Helpers the cases share: building events, collecting reads, checking errors, a tiny
//! deterministic generator.

use std::collections::HashMap;

use eventfile::{
    AppendResult, ErrorKind, EventIter, EventStore, ExpectedVersion, NewEvent, Read, RecordedEvent,
    Result,
};
use serde_json::json;

/// An event of type `t` whose data is `{"n": n}`.
pub(crate) fn ev(t: &str, n: u64) -> NewEvent {
    NewEvent::new(t, json!({ "n": n }))
}

/// Appends `events` to `stream` with no expectation; panics on failure.
pub(crate) fn append(s: &dyn EventStore, stream: &str, events: Vec<NewEvent>) -> AppendResult {
    s.append(stream, ExpectedVersion::Any, events)
        .unwrap_or_else(|e| panic!("append to {stream}: {e}"))
}

/// Appends one `Tick` event to `stream`.
pub(crate) fn tick(s: &dyn EventStore, stream: &str, n: u64) -> AppendResult {
    append(s, stream, vec![ev("Tick", n)])
}

/// Every event of a read; panics on an error.
pub(crate) fn collect(read: Result<EventIter>) -> Vec<RecordedEvent> {
    read.expect("the read starts")
        .collect::<Result<Vec<_>>>()
        .expect("every event reads")
}

/// The whole visible log, oldest first.
pub(crate) fn all(s: &dyn EventStore) -> Vec<RecordedEvent> {
    collect(s.read_all(Read::forward()))
}

/// One stream's events.
pub(crate) fn stream(s: &dyn EventStore, name: &str, read: Read) -> Vec<RecordedEvent> {
    collect(s.read_stream(name, read))
}

pub(crate) fn seqs(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

pub(crate) fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

pub(crate) fn head(s: &dyn EventStore) -> u64 {
    s.head_seq().expect("head_seq")
}

pub(crate) fn version(s: &dyn EventStore, stream: &str) -> u64 {
    s.stream_version(stream).expect("stream_version")
}

/// The error of a call that must fail; panics if it succeeded.
#[track_caller]
pub(crate) fn err<T>(r: Result<T>) -> eventfile::Error {
    match r {
        Ok(_) => panic!(
            "expected an error, got a success ({})",
            std::any::type_name::<T>()
        ),
        Err(e) => e,
    }
}

/// Checks that a call failed with an error of `kind`.
#[track_caller]
pub(crate) fn assert_kind<T>(r: Result<T>, kind: ErrorKind) {
    let e = err(r);
    assert_eq!(e.kind(), kind, "{e}");
}

/// Checks that a call was refused as invalid input about `what` (the names the library's public
/// `validate_*` functions give).
#[track_caller]
pub(crate) fn assert_invalid<T>(r: Result<T>, what: &str) {
    match err(r) {
        eventfile::Error::InvalidInput { what: w, reason } => {
            assert_eq!(w, what, "{reason}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected invalid {what}, got {other:?}"),
    }
}

/// Checks the invariants of a log no deletion touched: seqs gapless from 1, and each stream's
/// versions gapless from 1.
#[track_caller]
pub(crate) fn assert_gapless(events: &[RecordedEvent]) {
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "seq gap at {e:?}");
        let v = versions.entry(e.stream.as_str()).or_insert(0);
        *v += 1;
        assert_eq!(e.version, *v, "version gap at {e:?}");
    }
}

/// xorshift64*: a tiny deterministic generator.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(crate) fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Checks that nothing was written since `before` (the whole visible log then): the head and
/// every event are as they were.
#[track_caller]
pub(crate) fn assert_unchanged(s: &dyn EventStore, before: &[RecordedEvent]) {
    assert_eq!(
        head(s),
        before.last().map_or(0, |e| e.seq),
        "the head moved"
    );
    assert_eq!(all(s), before, "the log changed");
}

/// The streams [`history`] writes to: categories `order-` and `cart-`, names that are
/// prefixes of others, and `x`, which it tombstones.
pub(crate) const STREAMS: [&str; 7] = [
    "order-1", "order-2", "order-10", "orders", "cart-1", "cart-2", "x",
];
/// The event types [`history`] uses.
pub(crate) const TYPES: [&str; 4] = ["Placed", "Paid", "Shipped", "Noted"];
/// The tags [`history`] draws from (`tier=` has an empty value, `k=v=w` a second `=`).
pub(crate) const TAGS: [&str; 7] = [
    "region=eu",
    "region=us",
    "tier=gold",
    "tier=",
    "k=v=w",
    "course=c1",
    "student=s1",
];
/// Values of the indexed metadata keys [`history`] uses.
pub(crate) const CORRELATIONS: [&str; 3] = ["c-1", "c-2", "c-3"];
pub(crate) const CAUSATIONS: [&str; 2] = ["k-1", "k-2"];
pub(crate) const ACTORS: [&str; 2] = ["ann", "bob"];

/// A random event: a type, up to three tags (sometimes one twice), and sometimes each indexed
/// metadata key, plus a metadata entry no index knows.
pub(crate) fn random_event(rng: &mut Rng, n: u64) -> NewEvent {
    let mut e = ev(rng.pick(&TYPES), n);
    for _ in 0..rng.below(4) {
        e = e.with_tag(rng.pick(&TAGS));
    }
    if rng.below(8) == 0 {
        let t = rng.pick(&TAGS);
        e = e.with_tag(t).with_tag(t);
    }
    if rng.below(2) == 0 {
        e = e.with_meta_entry("correlation_id", rng.pick(&CORRELATIONS));
    }
    if rng.below(3) == 0 {
        e = e.with_meta_entry("causation_id", rng.pick(&CAUSATIONS));
    }
    if rng.below(3) == 0 {
        e = e.with_meta_entry("actor", rng.pick(&ACTORS));
    }
    if rng.below(4) == 0 {
        e = e.with_meta_entry("note", serde_json::json!({ "n": n, "actor": 7 }));
    }
    e
}

/// Appends a batch of one to three random events to a random stream of `streams`, or
/// sometimes to two streams at once.
pub(crate) fn random_append(s: &dyn EventStore, rng: &mut Rng, streams: &[&str], n: u64) {
    let batch = |rng: &mut Rng| -> Vec<NewEvent> {
        (0..1 + rng.below(3))
            .map(|k| random_event(rng, n * 10 + k))
            .collect()
    };
    let a = rng.pick(streams);
    let b = rng.pick(streams);
    if a != b && rng.below(5) == 0 {
        let parts = [
            eventfile::StreamAppend::new(a, ExpectedVersion::Any, batch(rng)),
            eventfile::StreamAppend::new(b, ExpectedVersion::Any, batch(rng)),
        ];
        s.append_multi(&parts)
            .unwrap_or_else(|e| panic!("append to {a} and {b}: {e}"));
    } else {
        append(s, a, batch(rng));
    }
}

/// A history of about 200 events over [`STREAMS`] with every kind of filterable value, and
/// every kind of deletion: `order-1` truncated before 3, `cart-2` soft-deleted (then appended
/// to again), `x` tombstoned.
pub(crate) fn history(s: &dyn EventStore, seed: u64) {
    let mut rng = Rng(seed);
    for n in 0..70 {
        random_append(s, &mut rng, &STREAMS, n);
    }
    // Make sure each deletion has something to act on.
    append(
        s,
        "order-1",
        vec![ev("Placed", 1), ev("Placed", 2), ev("Placed", 3)],
    );
    append(s, "cart-2", vec![ev("Placed", 4)]);
    append(s, "x", vec![ev("Placed", 5)]);
    s.truncate_stream("order-1", 3).expect("truncate");
    s.delete_stream("cart-2", ExpectedVersion::Any)
        .expect("delete");
    s.tombstone_stream("x", ExpectedVersion::Any)
        .expect("tombstone");
    let live: Vec<&str> = STREAMS.iter().copied().filter(|&n| n != "x").collect();
    for n in 70..100 {
        random_append(s, &mut rng, &live, n);
    }
}
