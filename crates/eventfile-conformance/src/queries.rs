//! Queries and counts: every filter, alone and combined, in both directions, with limits, checked
//! against a brute-force scan of the visible log (`read_all`), over a history with every kind of
//! deletion; malformed queries are refused.

use eventfile::{
    DELETED, Direction, ErrorKind, EventStore, Query, QueryItem, RecordedEvent, TRUNCATED,
};

use crate::Factory;
use crate::support::*;

/// A query's filters, kept as plain values so that the same description makes the [`Query`] and
/// the brute-force answer: what `Query` means, restated independently of any backend.
#[derive(Debug, Clone, Default)]
struct Filter {
    streams: Vec<String>,
    prefix: Option<String>,
    types: Vec<String>,
    tags: Vec<String>,
    items: Vec<(Vec<String>, Vec<String>)>,
    since: Option<i64>,
    until: Option<i64>,
    from_seq: Option<u64>,
    to_seq: Option<u64>,
    correlation: Option<String>,
    causation: Option<String>,
    actor: Option<String>,
}

impl Filter {
    fn query(&self) -> Query {
        let mut q = Query::new()
            .streams(self.streams.iter().cloned())
            .types(self.types.iter().cloned());
        for t in &self.tags {
            q = q.tag(t.clone());
        }
        for (types, tags) in &self.items {
            q = q.item(QueryItem::new(types.iter().cloned(), tags.iter().cloned()));
        }
        if let Some(p) = &self.prefix {
            q = q.prefix(p.clone());
        }
        if let Some(t) = self.since {
            q = q.since(t);
        }
        if let Some(t) = self.until {
            q = q.until(t);
        }
        if let Some(s) = self.from_seq {
            q = q.from_seq(s);
        }
        if let Some(s) = self.to_seq {
            q = q.to_seq(s);
        }
        if let Some(v) = &self.correlation {
            q = q.correlation(v.clone());
        }
        if let Some(v) = &self.causation {
            q = q.causation(v.clone());
        }
        if let Some(v) = &self.actor {
            q = q.actor(v.clone());
        }
        q
    }

    /// Whether the filter selects `e`: any of the streams, types and items; all of the tags;
    /// the prefix; the ranges (`until` exclusive); the indexed metadata values as strings.
    fn admits(&self, e: &RecordedEvent) -> bool {
        let meta = |key: &str, want: &Option<String>| {
            want.as_deref()
                .is_none_or(|w| e.meta.get(key).and_then(|v| v.as_str()) == Some(w))
        };
        let has_tag = |t: &String| e.tags.contains(t);
        (self.streams.is_empty() || self.streams.contains(&e.stream))
            && self
                .prefix
                .as_deref()
                .is_none_or(|p| e.stream.starts_with(p))
            && (self.types.is_empty() || self.types.contains(&e.event_type))
            && self.tags.iter().all(has_tag)
            && (self.items.is_empty()
                || self.items.iter().any(|(types, tags)| {
                    (types.is_empty() || types.contains(&e.event_type)) && tags.iter().all(has_tag)
                }))
            && self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
            && self.from_seq.is_none_or(|s| e.seq >= s)
            && self.to_seq.is_none_or(|s| e.seq <= s)
            && meta("correlation_id", &self.correlation)
            && meta("causation_id", &self.causation)
            && meta("actor", &self.actor)
    }
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

/// Checks `f` against the brute-force answer over `log` (the visible log, oldest first): the
/// events themselves, forwards and backwards, with limits, and the count.
#[track_caller]
fn check(s: &dyn EventStore, log: &[RecordedEvent], f: &Filter) {
    let want: Vec<RecordedEvent> = log.iter().filter(|e| f.admits(e)).cloned().collect();
    let q = f.query();
    let got = collect(s.query(&q));
    assert_eq!(seqs(&got), seqs(&want), "{f:?}");
    assert_eq!(got, want, "{f:?}");
    let back = collect(s.query(&q.clone().backward()));
    let rev: Vec<u64> = want.iter().rev().map(|e| e.seq).collect();
    assert_eq!(seqs(&back), rev, "backward {f:?}");
    assert_eq!(s.count(&q).unwrap(), want.len() as u64, "count {f:?}");
    for limit in [0, 1, 3] {
        let got = collect(s.query(&q.clone().limit(limit)));
        let first: Vec<u64> = want.iter().take(limit).map(|e| e.seq).collect();
        assert_eq!(seqs(&got), first, "limit {limit} {f:?}");
        let got = collect(s.query(&q.clone().direction(Direction::Backward).limit(limit)));
        let last: Vec<u64> = rev.iter().take(limit).copied().collect();
        assert_eq!(seqs(&got), last, "backward limit {limit} {f:?}");
    }
}

/// A store holding [`history`], and its visible log.
fn fixture(factory: &Factory<'_>, seed: u64) -> (Box<dyn EventStore>, Vec<RecordedEvent>) {
    let s = factory();
    history(&*s, seed);
    let log = all(&*s);
    assert!(log.len() > 150, "the history is {} events", log.len());
    (s, log)
}

/// Each filter alone, for every value the history uses and some it does not.
pub fn every_single_filter_matches_a_brute_force_scan(factory: &Factory<'_>) {
    let (s, log) = fixture(factory, 11);
    let mut filters = vec![Filter::default()];
    let names = [&STREAMS[..], &["$lifecycle", "nobody", "order"]].concat();
    for name in names {
        filters.push(Filter {
            streams: strings(&[name]),
            ..Filter::default()
        });
    }
    filters.push(Filter {
        streams: strings(&["order-1", "cart-2", "nobody"]),
        ..Filter::default()
    });
    for p in [
        "", "order-", "order", "order-1", "cart-", "c", "$", "x", "zzz",
    ] {
        filters.push(Filter {
            prefix: Some(p.into()),
            ..Filter::default()
        });
    }
    for t in [&TYPES[..], &[TRUNCATED, DELETED, "Unknown"]].concat() {
        filters.push(Filter {
            types: strings(&[t]),
            ..Filter::default()
        });
    }
    filters.push(Filter {
        types: strings(&["Paid", "Noted", "Unknown"]),
        ..Filter::default()
    });
    for t in [&TAGS[..], &["region=", "tier=gold=x"]].concat() {
        filters.push(Filter {
            tags: strings(&[t]),
            ..Filter::default()
        });
    }
    for pair in [["region=eu", "tier=gold"], ["region=eu", "region=us"]] {
        filters.push(Filter {
            tags: strings(&pair),
            ..Filter::default()
        });
    }
    for v in [&CORRELATIONS[..], &["c-9"]].concat() {
        filters.push(Filter {
            correlation: Some(v.into()),
            ..Filter::default()
        });
    }
    for v in [&CAUSATIONS[..], &["c-1"]].concat() {
        filters.push(Filter {
            causation: Some(v.into()),
            ..Filter::default()
        });
    }
    for v in [&ACTORS[..], &["7"]].concat() {
        filters.push(Filter {
            actor: Some(v.into()),
            ..Filter::default()
        });
    }
    for f in &filters {
        check(&*s, &log, f);
    }
    // The filters select something: the checks above compared more than empty answers.
    let q = |f: Filter| s.count(&f.query()).unwrap();
    for t in TAGS {
        assert!(
            q(Filter {
                tags: strings(&[t]),
                ..Filter::default()
            }) > 0,
            "{t}"
        );
    }
}

/// Draws a random filter from the history's values (and a few it lacks).
fn random_filter(rng: &mut Rng, log: &[RecordedEvent]) -> Filter {
    let mut f = Filter::default();
    let head = log.last().map_or(0, |e| e.seq);
    let some = |rng: &mut Rng, n: u64| rng.below(n) == 0;
    if some(rng, 4) {
        f.streams = (0..1 + rng.below(2))
            .map(|_| rng.pick(&STREAMS).to_owned())
            .collect();
    }
    if some(rng, 5) {
        f.prefix = Some(rng.pick(&["order-", "cart-", "order", "o", ""]).to_owned());
    }
    if some(rng, 3) {
        f.types = (0..1 + rng.below(2))
            .map(|_| rng.pick(&TYPES).to_owned())
            .collect();
    }
    if some(rng, 3) {
        f.tags = (0..1 + rng.below(2))
            .map(|_| rng.pick(&TAGS).to_owned())
            .collect();
    }
    if some(rng, 4) {
        f.items = (0..1 + rng.below(3)).map(|_| random_item(rng)).collect();
    }
    if some(rng, 5) {
        f.correlation = Some(rng.pick(&CORRELATIONS).to_owned());
    }
    if some(rng, 6) {
        f.causation = Some(rng.pick(&CAUSATIONS).to_owned());
    }
    if some(rng, 6) {
        f.actor = Some(rng.pick(&ACTORS).to_owned());
    }
    if some(rng, 4) {
        let a = rng.below(head + 2);
        let b = rng.below(head + 2);
        (f.from_seq, f.to_seq) = (Some(a.min(b)), Some(a.max(b)));
    }
    if some(rng, 5) && !log.is_empty() {
        let a = log[rng.below(log.len() as u64) as usize].time;
        let b = log[rng.below(log.len() as u64) as usize].time;
        (f.since, f.until) = (Some(a.min(b)), Some(a.max(b) + rng.below(2) as i64));
    }
    f
}

/// A random DCB item: some types (or none), some tags (or none, when there are types).
fn random_item(rng: &mut Rng) -> (Vec<String>, Vec<String>) {
    let types: Vec<String> = (0..rng.below(3))
        .map(|_| rng.pick(&TYPES).to_owned())
        .collect();
    let min_tags = u64::from(types.is_empty());
    let tags: Vec<String> = (0..min_tags + rng.below(3))
        .map(|_| rng.pick(&TAGS).to_owned())
        .collect();
    (types, tags)
}

/// Random combinations of filters.
pub fn combined_filters_match_a_brute_force_scan(factory: &Factory<'_>) {
    let (s, log) = fixture(factory, 12);
    let mut rng = Rng(0x5eed_0001);
    let mut nonempty = 0;
    for _ in 0..250 {
        let f = random_filter(&mut rng, &log);
        check(&*s, &log, &f);
        nonempty += usize::from(log.iter().any(|e| f.admits(e)));
    }
    assert!(nonempty > 50, "only {nonempty} filters selected anything");
}

/// DCB items (any item; within one, any type and every tag), alone and with other filters.
pub fn dcb_items_match_a_brute_force_scan(factory: &Factory<'_>) {
    let (s, log) = fixture(factory, 13);
    let item = |types: &[&str], tags: &[&str]| (strings(types), strings(tags));
    let fixed = [
        vec![item(&["Paid"], &[])],
        vec![item(&[], &["region=eu"])],
        vec![item(&["Paid", "Placed"], &["region=eu", "tier=gold"])],
        vec![item(&["Paid"], &["region=us"]), item(&["Noted"], &[])],
        vec![item(&["Unknown"], &["region=us"]), item(&[], &["nope=1"])],
        vec![item(&[], &["course=c1", "student=s1"])],
    ];
    for items in fixed {
        check(
            &*s,
            &log,
            &Filter {
                items,
                ..Filter::default()
            },
        );
    }
    let mut rng = Rng(0x5eed_0002);
    for i in 0..120 {
        let mut f = Filter {
            items: (0..1 + rng.below(3))
                .map(|_| random_item(&mut rng))
                .collect(),
            ..Filter::default()
        };
        // Every other one with another filter too: items narrow, they do not widen.
        if i % 2 == 1 {
            let other = random_filter(&mut rng, &log);
            f.items.extend(other.items);
            f = Filter {
                items: f.items,
                ..other
            };
        }
        check(&*s, &log, &f);
    }
}

/// `since` (inclusive) and `until` (exclusive) at, just before and just after event times, and
/// outside the history.
pub fn time_ranges_match_a_brute_force_scan(factory: &Factory<'_>) {
    let (s, log) = fixture(factory, 14);
    let mut times: Vec<i64> = log.iter().map(|e| e.time).collect();
    times.dedup();
    let (first, last) = (times[0], times[times.len() - 1]);
    let mut points: Vec<i64> = times.iter().step_by(7).copied().collect();
    points.extend([
        first - 1_000_000,
        first - 1,
        first,
        last,
        last + 1,
        last + 1_000_000,
    ]);
    for (i, &t) in points.iter().enumerate() {
        for t in [t - 1, t, t + 1] {
            check(
                &*s,
                &log,
                &Filter {
                    since: Some(t),
                    ..Filter::default()
                },
            );
            check(
                &*s,
                &log,
                &Filter {
                    until: Some(t),
                    ..Filter::default()
                },
            );
        }
        let u = points[(i * 5 + 3) % points.len()];
        let (a, b) = (t.min(u), t.max(u));
        check(
            &*s,
            &log,
            &Filter {
                since: Some(a),
                until: Some(b),
                ..Filter::default()
            },
        );
        check(
            &*s,
            &log,
            &Filter {
                since: Some(a),
                until: Some(b),
                prefix: Some("order-".into()),
                tags: strings(&["region=eu"]),
                ..Filter::default()
            },
        );
    }
    // An empty range: since == until.
    check(
        &*s,
        &log,
        &Filter {
            since: Some(times[1]),
            until: Some(times[1]),
            ..Filter::default()
        },
    );
}

/// `from_seq` and `to_seq` (both inclusive) anywhere, past either end, with and without other
/// filters; limits and both directions are checked for each.
pub fn seq_ranges_limits_and_directions_match_a_brute_force_scan(factory: &Factory<'_>) {
    let (s, log) = fixture(factory, 15);
    let h = head(&*s);
    let points = [0, 1, 2, 3, h / 3, h / 2, h - 1, h, h + 1, h + 50];
    let others = [
        Filter::default(),
        Filter {
            streams: strings(&["order-1", "$lifecycle"]),
            ..Filter::default()
        },
        Filter {
            tags: strings(&["region=eu"]),
            types: strings(&["Paid", "Placed"]),
            ..Filter::default()
        },
    ];
    for &from in &points {
        for &to in &points {
            for other in &others {
                let mut f = Filter {
                    from_seq: Some(from),
                    ..other.clone()
                };
                check(&*s, &log, &f);
                if from <= to {
                    f.to_seq = Some(to);
                    check(&*s, &log, &f);
                }
                check(
                    &*s,
                    &log,
                    &Filter {
                        to_seq: Some(to),
                        ..other.clone()
                    },
                );
            }
        }
    }
    // Larger limits page through the whole answer in order.
    let q = Query::new().prefix("order-");
    let want: Vec<u64> = log
        .iter()
        .filter(|e| e.stream.starts_with("order-"))
        .map(|e| e.seq)
        .collect();
    for limit in [1, 7, want.len(), want.len() + 1, usize::MAX] {
        let mut pages = Vec::new();
        let mut from = 0;
        loop {
            let page = seqs(&collect(s.query(&q.clone().from_seq(from).limit(limit))));
            let Some(&last) = page.last() else { break };
            pages.extend(page);
            from = last + 1;
        }
        assert_eq!(pages, want, "pages of {limit}");
    }
}

/// A count is the number of events the query returns without a limit; its limit and direction
/// do not change it.
pub fn counts_equal_query_results_and_ignore_limits(factory: &Factory<'_>) {
    let (s, log) = fixture(factory, 16);
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..80 {
        let f = random_filter(&mut rng, &log);
        let q = f.query();
        let n = collect(s.query(&q)).len() as u64;
        assert_eq!(s.count(&q).unwrap(), n, "{f:?}");
        for limit in [0, 1, 5] {
            assert_eq!(
                s.count(&q.clone().limit(limit)).unwrap(),
                n,
                "limit {limit} {f:?}"
            );
        }
        assert_eq!(s.count(&q.clone().backward().limit(2)).unwrap(), n, "{f:?}");
    }
    assert_eq!(s.count(&Query::new()).unwrap(), log.len() as u64);
    assert_eq!(s.count(&Query::new().limit(3)).unwrap(), log.len() as u64);
}

/// A malformed filter is invalid input, from `query` and `count` alike, never an empty answer.
pub fn malformed_queries_are_refused(factory: &Factory<'_>) {
    let s = factory();
    tick(&*s, "s", 0);
    let long = "x".repeat(257);
    let cases = [
        (Query::new().stream(""), "stream name"),
        (Query::new().stream(long.clone()), "stream name"),
        (Query::new().stream("a\nb"), "stream name"),
        (Query::new().event_type(""), "event type"),
        (Query::new().types(["T", "T\u{0}"]), "event type"),
        (Query::new().tag(""), "tag"),
        (Query::new().tag("no-equals-sign"), "tag"),
        (Query::new().tag("=value"), "tag"),
        (Query::new().tag(format!("k={long}")), "tag"),
        (
            Query::new().item(QueryItem::new(Vec::<&str>::new(), Vec::<&str>::new())),
            "query item",
        ),
        (Query::new().item(QueryItem::new(["T"], ["bad"])), "tag"),
        (
            Query::new().item(QueryItem::new([""], ["k=v"])),
            "event type",
        ),
        (Query::new().since(10).until(5), "time range"),
        (Query::new().from_seq(5).to_seq(2), "seq range"),
    ];
    for (q, what) in cases {
        assert_invalid(s.query(&q), what);
        assert_invalid(s.count(&q), what);
        assert_kind(s.count(&q.clone().backward()), ErrorKind::InvalidInput);
    }
    assert_eq!(head(&*s), 1);
}
