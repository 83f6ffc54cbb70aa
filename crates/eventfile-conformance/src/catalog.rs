//! The catalog: streams by prefix, event types and tags with their live event counts, in name
//! order, paged with `after` and `limit`; checked against what reads and counts say, deletions
//! included.

use std::collections::BTreeMap;

use eventfile::{
    DELETED, EventStore, ExpectedVersion::*, LIFECYCLE_STREAM, Query, StreamInfo, TOMBSTONED,
    TRUNCATED, TermCount,
};

use crate::Factory;
use crate::support::*;

fn names(list: &[StreamInfo]) -> Vec<&str> {
    list.iter().map(|i| i.stream.as_str()).collect()
}

fn terms(list: &[TermCount]) -> Vec<(&str, u64)> {
    list.iter().map(|t| (t.name.as_str(), t.count)).collect()
}

/// Every stream under `prefix`, a page of `limit` at a time, each page after the last name of
/// the one before.
fn stream_pages(s: &dyn EventStore, prefix: &str, limit: usize) -> Vec<StreamInfo> {
    let mut out: Vec<StreamInfo> = Vec::new();
    loop {
        let after = out.last().map(|i| i.stream.clone());
        let page = s.streams(prefix, after.as_deref(), limit).unwrap();
        assert!(page.len() <= limit);
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Every term of a listing (`list(after, limit)`), a page of `limit` at a time.
fn term_pages(
    list: impl Fn(Option<&str>, usize) -> eventfile::Result<Vec<TermCount>>,
    limit: usize,
) -> Vec<TermCount> {
    let mut out: Vec<TermCount> = Vec::new();
    loop {
        let after = out.last().map(|t| t.name.clone());
        let page = list(after.as_deref(), limit).unwrap();
        assert!(page.len() <= limit);
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Streams are listed in byte order of their names with their versions; a prefix selects a
/// category; `after` and `limit` page through the list.
pub fn streams_are_listed_by_prefix_in_pages(factory: &Factory<'_>) {
    let s = factory();
    let made = [
        "order-10", "a", "order-2", "orders", "Z", "order-", "order", "order-1", "b/x", "ü-1",
    ];
    for (i, name) in (1..).zip(made) {
        append(&*s, name, (0..i).map(|k| ev("T", k)).collect());
    }
    let mut sorted = made.to_vec();
    sorted.sort_unstable();
    let every = s.streams("", None, 100).unwrap();
    assert_eq!(names(&every), sorted);
    for info in &every {
        assert_eq!(info.version, version(&*s, &info.stream), "{info:?}");
    }
    assert_eq!(every[0].version, 5); // "Z", the fifth made
    for limit in [1, 2, 3, 10, 11] {
        assert_eq!(
            names(&stream_pages(&*s, "", limit)),
            sorted,
            "pages of {limit}"
        );
    }
    let order_dash = ["order-", "order-1", "order-10", "order-2"];
    let cases: &[(&str, Option<&str>, usize, &[&str])] = &[
        ("order-", None, 100, &order_dash),
        (
            "order",
            None,
            100,
            &[
                "order", "order-", "order-1", "order-10", "order-2", "orders",
            ],
        ),
        ("order-1", None, 100, &["order-1", "order-10"]),
        ("order-", Some("a"), 100, &order_dash),
        ("order-", Some("order-1"), 100, &["order-10", "order-2"]),
        ("order-", Some("order-0"), 2, &["order-1", "order-10"]),
        ("order-", Some("order-10"), 1, &["order-2"]),
        ("order-", Some("order-2"), 100, &[]),
        ("order-", Some("p"), 100, &[]),
        ("order-", None, 0, &[]),
        ("", Some("orders"), 100, &["ü-1"]),
        ("q", None, 100, &[]),
        ("ü", None, 100, &["ü-1"]),
    ];
    for &(prefix, after, limit, want) in cases {
        let got = s.streams(prefix, after, limit).unwrap();
        assert_eq!(
            names(&got),
            want,
            "{prefix:?} after {after:?} limit {limit}"
        );
    }
    // A stream is listed once, however many events and batches it has.
    append(&*s, "a", vec![ev("T", 9)]);
    let a = s.streams("a", None, 100).unwrap();
    assert_eq!(names(&a), ["a"]);
    assert_eq!(a[0].version, 3);
}

/// Event types are listed in name order, each with the number of events of that type, which
/// is what a count of the type gives.
pub fn event_types_are_listed_with_counts_in_pages(factory: &Factory<'_>) {
    let s = factory();
    append(
        &*s,
        "s1",
        vec![ev("Paid", 1), ev("Added", 2), ev("Paid", 3)],
    );
    append(&*s, "s2", vec![ev("Paid", 4), ev("added", 5)]);
    append(&*s, "s3", vec![ev("Zeta", 6), ev("Added", 7)]);
    let want = [("Added", 2), ("Paid", 3), ("Zeta", 1), ("added", 1)];
    assert_eq!(terms(&s.event_types(None, 100).unwrap()), want);
    for limit in [1, 2, 3, 4, 5] {
        let pages = term_pages(|a, l| s.event_types(a, l), limit);
        assert_eq!(terms(&pages), want, "pages of {limit}");
    }
    assert_eq!(terms(&s.event_types(Some("Paid"), 100).unwrap()), want[2..]);
    assert_eq!(terms(&s.event_types(Some("B"), 1).unwrap()), want[1..2]);
    assert_eq!(terms(&s.event_types(Some("added"), 100).unwrap()), []);
    assert!(s.event_types(None, 0).unwrap().is_empty());
    for (t, n) in want {
        assert_eq!(s.count(&Query::new().event_type(t)).unwrap(), n, "{t}");
    }
}

/// Tags are listed in order with the number of events carrying each; a tag given twice on one
/// event counts once, as a query finds the event once.
pub fn tags_are_listed_with_counts_in_pages(factory: &Factory<'_>) {
    let s = factory();
    append(
        &*s,
        "s1",
        vec![
            ev("T", 1).with_tag("region=eu").with_tag("tier=gold"),
            ev("T", 2).with_tag("region=eu").with_tag("region=eu"),
            ev("T", 3),
        ],
    );
    append(
        &*s,
        "s2",
        vec![
            ev("T", 4)
                .with_tag("region=us")
                .with_tag("k=v=w")
                .with_tag("tier="),
        ],
    );
    let want = [
        ("k=v=w", 1),
        ("region=eu", 2),
        ("region=us", 1),
        ("tier=", 1),
        ("tier=gold", 1),
    ];
    assert_eq!(terms(&s.tags(None, 100).unwrap()), want);
    for limit in [1, 2, 4, 6] {
        let pages = term_pages(|a, l| s.tags(a, l), limit);
        assert_eq!(terms(&pages), want, "pages of {limit}");
    }
    assert_eq!(terms(&s.tags(Some("region=eu"), 2).unwrap()), want[2..4]);
    assert_eq!(terms(&s.tags(Some("region="), 100).unwrap()), want[1..]);
    for (t, n) in want {
        assert_eq!(s.count(&Query::new().tag(t)).unwrap(), n, "{t}");
        assert_eq!(
            collect(s.query(&Query::new().tag(t))).len() as u64,
            n,
            "{t}"
        );
    }
}

/// Deleted events leave the counts at once; a stream none of whose events is live leaves the
/// stream list (though its version stays), and comes back when appended to again. The
/// `$lifecycle` stream and its event types are listed like any other.
pub fn deleted_events_leave_the_listings(factory: &Factory<'_>) {
    let s = factory();
    let tagged = |t: &str, tag: &str, n| ev(t, n).with_tag(tag);
    append(
        &*s,
        "trunc",
        vec![
            tagged("Old", "g=1", 1),
            tagged("Old", "g=1", 2),
            tagged("Kept", "g=2", 3),
        ],
    );
    append(
        &*s,
        "soft",
        vec![tagged("Soft", "g=3", 4), tagged("Old", "g=1", 5)],
    );
    append(&*s, "hard", vec![tagged("Hard", "g=4", 6)]);
    append(&*s, "other", vec![tagged("Kept", "g=2", 7)]);

    s.truncate_stream("trunc", 3).unwrap();
    s.delete_stream("soft", Exact(2)).unwrap();
    s.tombstone_stream("hard", Exact(1)).unwrap();
    s.tombstone_stream("never", NoStream).unwrap();

    let streams = s.streams("", None, 100).unwrap();
    let listed: Vec<(&str, u64)> = streams
        .iter()
        .map(|i| (i.stream.as_str(), i.version))
        .collect();
    assert_eq!(listed, [(LIFECYCLE_STREAM, 4), ("other", 1), ("trunc", 3)]);
    assert_eq!(version(&*s, "soft"), 2);
    let mut types = vec![(DELETED, 1), (TOMBSTONED, 2), (TRUNCATED, 1), ("Kept", 2)];
    types.sort_unstable();
    assert_eq!(terms(&s.event_types(None, 100).unwrap()), types);
    assert_eq!(terms(&s.tags(None, 100).unwrap()), [("g=2", 2)]);
    // The limit counts listed names only.
    assert_eq!(
        names(&s.streams("", None, 2).unwrap()),
        [LIFECYCLE_STREAM, "other"]
    );
    assert_eq!(terms(&s.tags(None, 1).unwrap()), [("g=2", 2)]);

    // A soft-deleted stream comes back, numbered on, when appended to.
    append(&*s, "soft", vec![tagged("Soft", "g=3", 8)]);
    let soft = s.streams("soft", None, 100).unwrap();
    assert_eq!((soft.len(), soft[0].version), (1, 3));
    assert_eq!(terms(&s.tags(Some("g=2"), 100).unwrap()), [("g=3", 1)]);
    // Truncating past the last event removes a stream from the list.
    s.truncate_stream("trunc", 4).unwrap();
    assert!(s.streams("trunc", None, 100).unwrap().is_empty());
    assert_eq!(version(&*s, "trunc"), 3);
    assert_eq!(
        terms(&s.event_types(Some(TRUNCATED), 100).unwrap()),
        [("Kept", 1), ("Soft", 1)]
    );
}

/// Checks every listing against the visible log: the streams holding a live event with their
/// versions, the live event counts per type and per tag (each tag once per event), paged and
/// whole, and the same counts from `count`.
#[track_caller]
fn assert_catalog_agrees(s: &dyn EventStore, step: usize) {
    let log = all(s);
    let mut streams: BTreeMap<&str, u64> = BTreeMap::new();
    let mut types: BTreeMap<&str, u64> = BTreeMap::new();
    let mut tags: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &log {
        let v = streams.entry(e.stream.as_str()).or_default();
        *v = (*v).max(e.version);
        *types.entry(e.event_type.as_str()).or_default() += 1;
        let mut own: Vec<&str> = e.tags.iter().map(String::as_str).collect();
        own.sort_unstable();
        own.dedup();
        for t in own {
            *tags.entry(t).or_default() += 1;
        }
    }
    let listed = s.streams("", None, usize::MAX).unwrap();
    let listed: Vec<(&str, u64)> = listed
        .iter()
        .map(|i| (i.stream.as_str(), i.version))
        .collect();
    let want: Vec<(&str, u64)> = streams.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(listed, want, "streams at step {step}");
    for (name, v) in &streams {
        assert_eq!(version(s, name), *v, "{name} at step {step}");
    }
    for prefix in ["order-", "cart-", "o", "$"] {
        let got = s.streams(prefix, None, usize::MAX).unwrap();
        let want: Vec<&str> = streams
            .keys()
            .copied()
            .filter(|n| n.starts_with(prefix))
            .collect();
        assert_eq!(names(&got), want, "prefix {prefix} at step {step}");
    }
    let paged: Vec<(String, u64)> = stream_pages(s, "", 2)
        .into_iter()
        .map(|i| (i.stream, i.version))
        .collect();
    let paged: Vec<(&str, u64)> = paged.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    assert_eq!(paged, want, "stream pages at step {step}");

    for (what, listing, counted) in [
        ("types", s.event_types(None, usize::MAX).unwrap(), &types),
        ("tags", s.tags(None, usize::MAX).unwrap(), &tags),
    ] {
        let want: Vec<(&str, u64)> = counted.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(terms(&listing), want, "{what} at step {step}");
    }
    assert_eq!(
        terms(&term_pages(|a, l| s.event_types(a, l), 3)),
        types.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
        "type pages at step {step}"
    );
    assert_eq!(
        terms(&term_pages(|a, l| s.tags(a, l), 2)),
        tags.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
        "tag pages at step {step}"
    );
    for (t, n) in &types {
        assert_eq!(
            s.count(&Query::new().event_type(*t)).unwrap(),
            *n,
            "{t} at step {step}"
        );
    }
    for (t, n) in &tags {
        assert_eq!(
            s.count(&Query::new().tag(*t)).unwrap(),
            *n,
            "{t} at step {step}"
        );
    }
}

/// Through a random history of appends, truncations, deletions and tombstones, every listing
/// agrees with the visible log after every step.
pub fn the_catalog_agrees_with_reads_through_a_random_history(factory: &Factory<'_>) {
    let s = factory();
    let mut rng = Rng(0xca7a_1096);
    let names = [
        "order-1", "order-2", "order-10", "cart-1", "cart-2", "o", "x1", "x2",
    ];
    let mut tombstoned: Vec<&str> = Vec::new();
    for step in 0..80 {
        let name = rng.pick(&names);
        let v = version(&*s, name);
        let gone = tombstoned.contains(&name);
        match rng.below(20) {
            0..=13 if !gone => {
                let open: Vec<&str> = names
                    .iter()
                    .copied()
                    .filter(|n| !tombstoned.contains(n))
                    .collect();
                random_append(&*s, &mut rng, &open, step as u64);
            }
            14 | 15 if !gone && v > 0 => {
                let before = 1 + rng.below(v + 1);
                s.truncate_stream(name, before).unwrap();
            }
            16 if !gone && v > 0 => {
                s.delete_stream(name, Exact(v)).unwrap();
            }
            17 if !gone && name.starts_with('x') => {
                s.tombstone_stream(name, Any).unwrap();
                tombstoned.push(name);
            }
            _ => continue,
        }
        assert_catalog_agrees(&*s, step);
    }
    assert!(head(&*s) > 60, "the history is {} events", head(&*s));
}
