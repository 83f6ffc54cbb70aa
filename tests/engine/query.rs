//! Every filter, and combinations, against a brute-force scan of the same store: across sealed
//! and active segments, forwards and backwards, paginated while appends continue, and again
//! after the index sidecars are deleted or damaged.

use crate::support::*;
use eventfile::{
    Error, ExpectedVersion, NewEvent, OpenOptions, Query, QueryItem, RecordedEvent, Store,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

const STREAM_KINDS: [&str; 3] = ["order-", "cart-", "user-"];
const TYPES: [&str; 5] = ["Placed", "Added", "Removed", "Paid", "Shipped"];
const TAGS: [&str; 6] = [
    "region=eu",
    "region=us",
    "tier=gold",
    "tier=free",
    "promo=yes",
    "channel=web",
];
const PEOPLE: [&str; 3] = ["ann", "bob", "cy"];

/// A clock that moves one second per call, so time ranges select real subsets.
fn clock() -> (Arc<AtomicI64>, impl Fn() -> i64 + Send + Sync + 'static) {
    let t = Arc::new(AtomicI64::new(1_700_000_000_000_000));
    let c = Arc::clone(&t);
    (t, move || c.fetch_add(1_000_000, Ordering::SeqCst))
}

fn random_event(rng: &mut Rng, i: u64) -> NewEvent {
    let mut e = NewEvent::new(rng.pick(&TYPES), json!({ "i": i }));
    for _ in 0..rng.below(3) {
        e = e.with_tag(rng.pick(&TAGS));
    }
    if rng.below(3) == 0 {
        e = e.with_meta_entry("correlation_id", format!("corr-{}", rng.below(5)));
    }
    if rng.below(4) == 0 {
        e = e.with_meta_entry("causation_id", format!("cause-{}", rng.below(5)));
    }
    if rng.below(2) == 0 {
        e = e.with_meta_entry("actor", rng.pick(&PEOPLE));
    }
    e
}

fn append_random(store: &Store, rng: &mut Rng, n: u64) {
    for i in 0..n {
        let stream = format!("{}{}", rng.pick(&STREAM_KINDS), rng.below(12));
        let batch: Vec<NewEvent> = (0..1 + rng.below(3))
            .map(|k| random_event(rng, i * 10 + k))
            .collect();
        store.append(&stream, ExpectedVersion::Any, batch).unwrap();
    }
}

/// The filter, as plain data the brute force reads independently of the library.
#[derive(Debug, Clone, Default)]
struct Spec {
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

impl Spec {
    fn query(&self) -> Query {
        let mut q = Query::new()
            .streams(self.streams.clone())
            .types(self.types.clone());
        if let Some(p) = &self.prefix {
            q = q.prefix(p.clone());
        }
        for t in &self.tags {
            q = q.tag(t.clone());
        }
        for (types, tags) in &self.items {
            q = q.item(QueryItem {
                types: types.clone(),
                tags: tags.clone(),
            });
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
        if let Some(c) = &self.correlation {
            q = q.correlation(c.clone());
        }
        if let Some(c) = &self.causation {
            q = q.causation(c.clone());
        }
        if let Some(a) = &self.actor {
            q = q.actor(a.clone());
        }
        q
    }

    fn matches(&self, e: &RecordedEvent) -> bool {
        let meta = |k: &str| e.meta.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        (self.streams.is_empty() || self.streams.contains(&e.stream))
            && self.prefix.as_ref().is_none_or(|p| e.stream.starts_with(p))
            && (self.types.is_empty() || self.types.contains(&e.event_type))
            && self.tags.iter().all(|t| e.tags.contains(t))
            && (self.items.is_empty()
                || self.items.iter().any(|(ty, tg)| {
                    (ty.is_empty() || ty.contains(&e.event_type))
                        && tg.iter().all(|t| e.tags.contains(t))
                }))
            && self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
            && self.from_seq.is_none_or(|s| e.seq >= s)
            && self.to_seq.is_none_or(|s| e.seq <= s)
            && (self.correlation.is_none() || meta("correlation_id") == self.correlation)
            && (self.causation.is_none() || meta("causation_id") == self.causation)
            && (self.actor.is_none() || meta("actor") == self.actor)
    }
}

fn random_spec(rng: &mut Rng, log: &[RecordedEvent]) -> Spec {
    let mut s = Spec::default();
    let (t0, t1) = (log[0].time, log[log.len() - 1].time);
    let n = log.len() as u64;
    for _ in 0..1 + rng.below(3) {
        match rng.below(11) {
            0 => s
                .streams
                .push(format!("{}{}", rng.pick(&STREAM_KINDS), rng.below(12))),
            1 => s.prefix = Some(rng.pick(&STREAM_KINDS).to_string()),
            2 => s.types.push(rng.pick(&TYPES).to_string()),
            3 => s.tags.push(rng.pick(&TAGS).to_string()),
            4 => s.items.push((
                (0..rng.below(3))
                    .map(|_| rng.pick(&TYPES).to_string())
                    .collect(),
                (0..1 + rng.below(2))
                    .map(|_| rng.pick(&TAGS).to_string())
                    .collect(),
            )),
            5 => {
                let a = t0 + (rng.below((t1 - t0) as u64 + 1) as i64);
                s.since = Some(a);
                s.until = Some(a + rng.below(400) as i64 * 1_000_000);
            }
            6 => s.from_seq = Some(1 + rng.below(n)),
            7 => s.to_seq = Some(1 + rng.below(n)),
            8 => s.correlation = Some(format!("corr-{}", rng.below(5))),
            9 => s.causation = Some(format!("cause-{}", rng.below(5))),
            _ => s.actor = Some(rng.pick(&PEOPLE).to_string()),
        }
    }
    if let (Some(a), Some(b)) = (s.from_seq, s.to_seq) {
        s.from_seq = Some(a.min(b));
        s.to_seq = Some(a.max(b));
    }
    s
}

fn seqs(store: &Store, q: &Query) -> Vec<u64> {
    store.query(q).unwrap().map(|e| e.unwrap().seq).collect()
}

fn check_queries(store: &Store, rng: &mut Rng, rounds: usize) -> usize {
    let log = all(store);
    let mut nonempty = 0;
    for round in 0..rounds {
        let spec = random_spec(rng, &log);
        let expect: Vec<u64> = log
            .iter()
            .filter(|e| spec.matches(e))
            .map(|e| e.seq)
            .collect();
        let q = spec.query();
        assert_eq!(seqs(store, &q), expect, "round {round} forward {spec:?}");
        let mut rev = expect.clone();
        rev.reverse();
        assert_eq!(
            seqs(store, &q.clone().backward()),
            rev,
            "round {round} backward {spec:?}"
        );
        assert_eq!(
            store.count(&q).unwrap(),
            expect.len() as u64,
            "round {round} count {spec:?}"
        );
        nonempty += usize::from(!expect.is_empty());
    }
    nonempty
}

fn build(dir: &std::path::Path, seed: u64) -> (Store, Rng) {
    let (_, clk) = clock();
    let store = OpenOptions::new()
        .segment_bytes(16 * 1024)
        .durability(eventfile::Durability::None)
        .clock(clk)
        .open(dir)
        .unwrap();
    let mut rng = Rng(seed);
    append_random(&store, &mut rng, 700);
    (store, rng)
}

#[test]
fn every_filter_matches_a_brute_force_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut rng) = build(dir.path(), 0x5eed);
    assert!(
        files_with_ext(dir.path(), "idx").len() > 5,
        "expected many sealed segments"
    );
    let nonempty = check_queries(&store, &mut rng, 400);
    assert!(nonempty > 200, "only {nonempty} queries matched anything");
}

/// The seqs of the page of `q` after `cursor`, moving `cursor` past it.
fn next_page(store: &Store, q: Query, cursor: &mut Option<eventfile::Cursor>) -> Vec<u64> {
    let q = match cursor.clone() {
        Some(c) => q.after(c),
        None => q,
    };
    let mut events = store.query(&q).unwrap();
    let page: Vec<u64> = events.by_ref().map(|e| e.unwrap().seq).collect();
    *cursor = events.cursor().or(cursor.take());
    page
}

#[test]
fn pagination_stays_correct_while_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut rng) = build(dir.path(), 0xfeed);
    for round in 0..30 {
        let log = all(&store);
        let mut spec = random_spec(&mut rng, &log);
        spec.to_seq = None; // let new events in
        spec.until = None;
        let page = 1 + rng.below(20) as usize;
        // Forward: pages picked up one after another, with appends in between.
        let mut got: Vec<u64> = Vec::new();
        let mut cursor = None;
        for p in 0.. {
            let batch = next_page(&store, spec.query().limit(page), &mut cursor);
            got.extend(&batch);
            if p < 3 {
                append_random(&store, &mut rng, 5);
            } else if batch.len() < page {
                break;
            }
        }
        let expect: Vec<u64> = all(&store)
            .iter()
            .filter(|e| spec.matches(e))
            .map(|e| e.seq)
            .collect();
        assert_eq!(
            got, expect,
            "round {round} forward pages of {page}: {spec:?}"
        );

        // Backward: new events land above the cursor and must not show up.
        let snapshot: Vec<u64> = all(&store)
            .iter()
            .filter(|e| spec.matches(e))
            .map(|e| e.seq)
            .rev()
            .collect();
        let mut got: Vec<u64> = Vec::new();
        let mut cursor = None;
        loop {
            let batch = next_page(&store, spec.query().backward().limit(page), &mut cursor);
            got.extend(&batch);
            append_random(&store, &mut rng, 1);
            if batch.len() < page {
                break;
            }
        }
        assert_eq!(got, snapshot, "round {round} backward pages of {page}");
    }
}

#[test]
fn answers_survive_deleted_and_damaged_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = build(dir.path(), 0xabc);
    let mut rng = Rng(0x77);
    let log = all(&store);
    let specs: Vec<Spec> = (0..100).map(|_| random_spec(&mut rng, &log)).collect();
    let answers: Vec<Vec<u64>> = specs.iter().map(|s| seqs(&store, &s.query())).collect();
    store.close().unwrap();

    for (i, path) in files_with_ext(dir.path(), "idx").iter().enumerate() {
        match i % 3 {
            0 => std::fs::remove_file(path).unwrap(),
            1 => {
                let mut b = std::fs::read(path).unwrap();
                let at = b.len() / 2;
                b[at] ^= 0x55;
                std::fs::write(path, b).unwrap();
            }
            _ => std::fs::write(path, b"not an index").unwrap(),
        }
    }
    // A read-only handle rebuilds in memory; the writer rebuilds the files.
    for store in [
        Store::open_read_only(dir.path()).unwrap(),
        Store::open(dir.path()).unwrap(),
    ] {
        for (s, want) in specs.iter().zip(&answers) {
            assert_eq!(&seqs(&store, &s.query()), want, "{s:?}");
        }
    }
    let report = eventfile::verify(dir.path()).unwrap();
    assert!(report.is_sound() && report.notes.is_empty(), "{report:?}");
}

#[test]
fn a_checkpoint_spares_the_rescan_and_a_stale_one_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast_store(dir.path(), 1 << 20);
    for i in 0..50 {
        append_one(&store, &format!("s{}", i % 4), i);
    }
    store.close().unwrap();
    let name = "00000000000000000001.jsonl";
    assert!(
        dir.path().join("00000000000000000001.idx").exists(),
        "clean close writes a checkpoint"
    );
    let ckpt_len = std::fs::metadata(dir.path().join(name)).unwrap().len();

    // The checkpoint is used: damage it covers is not rescanned at open (only a read finds it).
    let damaged = copy_of(dir.path());
    let mut bytes = std::fs::read(damaged.path().join(name)).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(damaged.path().join(name), &bytes).unwrap();
    let store = Store::open(damaged.path()).unwrap();
    assert_eq!(store.head_seq(), 50);
    assert!(
        store
            .read_all(eventfile::Read::forward())
            .unwrap()
            .any(|e| e.is_err())
    );
    drop(store);

    // Appends after the checkpoint, then a crash (no close: the checkpoint stays behind).
    let store = fast_store(dir.path(), 1 << 20);
    for i in 50..60 {
        append_one(&store, "s0", i);
    }
    store.sync().unwrap();
    std::mem::forget(store); // keeps the lock held, as a crashed process would until it exits
    let crashed = copy_of(dir.path());
    let store = Store::open(crashed.path()).unwrap();
    assert_eq!(all(&store).len(), 60);
    assert_gapless(&all(&store));
    assert_eq!(store.count(&Query::new().stream("s0")).unwrap(), 13 + 10);
    drop(store);

    // A checkpoint that no longer fits the file (cut below it) is ignored, not trusted. (`HEAD`
    // lowered as well: events it names are never cut.)
    let cut = copy_of(dir.path());
    let seg = cut.path().join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(ckpt_len - 300)
        .unwrap();
    published_up_to(cut.path(), 40);
    let store = Store::open(cut.path()).unwrap();
    let events = all(&store);
    assert_gapless(&events);
    assert!(events.len() < 50 && events.len() > 40, "{}", events.len());
    assert_eq!(store.count(&Query::new()).unwrap(), events.len() as u64);
}

#[test]
fn catalog_lists_types_tags_streams_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = build(dir.path(), 0x1234);
    let log = all(&store);
    let count = |f: &dyn Fn(&RecordedEvent) -> bool| log.iter().filter(|e| f(e)).count() as u64;
    let types = store.event_types(None, 100).unwrap();
    assert_eq!(types.len(), TYPES.len());
    for t in &types {
        assert_eq!(t.count, count(&|e| e.event_type == t.name));
    }
    let tags = store.tags(None, 100).unwrap();
    for t in &tags {
        assert_eq!(t.count, count(&|e| e.tags.contains(&t.name)), "{}", t.name);
    }
    assert_eq!(
        store.tags(Some(&tags[0].name), 2).unwrap(),
        tags[1..3].to_vec()
    );

    // Streams page by page, in order, with their versions.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.streams("order-", after.as_deref(), 5);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|s| s.stream.clone());
        seen.extend(page);
    }
    let mut expect: Vec<String> = log
        .iter()
        .filter(|e| e.stream.starts_with("order-"))
        .map(|e| e.stream.clone())
        .collect();
    expect.sort();
    expect.dedup();
    assert_eq!(
        seen.iter().map(|s| s.stream.clone()).collect::<Vec<_>>(),
        expect
    );
    for s in &seen {
        assert_eq!(s.version, store.stream_version(&s.stream));
    }

    for e in log.iter().step_by(37) {
        let first = log.iter().find(|x| x.time >= e.time).unwrap().seq;
        assert_eq!(store.seq_at(e.time).unwrap(), first);
    }
    assert_eq!(store.seq_at(i64::MAX).unwrap(), log.len() as u64 + 1);
    let probe = &log[log.len() / 2];
    assert_eq!(store.get_event(&probe.id).unwrap().as_ref(), Some(probe));
    assert_eq!(store.get_event("no-such-id").unwrap(), None);

    let report = store.reindex(|_, _| {}).unwrap();
    assert_eq!(
        report.events
            + store
                .count(&Query::new().from_seq(report.events + 1))
                .unwrap(),
        log.len() as u64
    );
    assert_eq!(all(&store), log);
}

#[test]
fn malformed_filters_and_cursors_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path(), 1 << 20);
    append_one(&store, "s", 1);
    let other = tempfile::tempdir().unwrap();
    let other = small_store(other.path(), 1 << 20);
    append_one(&other, "s", 1);
    let mut page = other.query(&Query::new().limit(1)).unwrap();
    page.next();
    let foreign = page.cursor().unwrap();

    let invalid = |q: Query, what: &str| match store.query(&q) {
        Err(Error::InvalidInput { what: w, .. }) => assert_eq!(w, what),
        other => panic!("expected invalid {what}, got {:?}", other.map(|_| ())),
    };
    invalid(Query::new().tag("novalue"), "tag");
    invalid(Query::new().event_type(""), "event type");
    invalid(Query::new().stream("a\nb"), "stream name");
    invalid(Query::new().since(10).until(5), "time range");
    invalid(Query::new().from_seq(9).to_seq(2), "seq range");
    invalid(Query::new().item(QueryItem::default()), "query item");
    invalid(Query::new().after(foreign.clone()), "cursor");
    let mut mine = store.query(&Query::new().limit(1)).unwrap();
    mine.next();
    invalid(
        Query::new().backward().after(mine.cursor().unwrap()),
        "cursor",
    );
    assert!(matches!(
        store.count(&Query::new().after(foreign)),
        Err(Error::InvalidInput { .. })
    ));
    for text in ["", "garbage", "ef1.x.1.f.00000000"] {
        assert!(
            matches!(
                text.parse::<eventfile::Cursor>(),
                Err(Error::InvalidInput { .. })
            ),
            "{text}"
        );
    }
    let mut damaged = mine.cursor().unwrap().to_string();
    damaged.replace_range(
        damaged.len() - 1..,
        if damaged.ends_with('0') { "1" } else { "0" },
    );
    assert!(damaged.parse::<eventfile::Cursor>().is_err());
    // Metadata the index relies on must be a string.
    let bad = NewEvent::new("T", json!({})).with_meta_entry("actor", 7);
    assert!(matches!(
        store.append("s", ExpectedVersion::Any, [bad]),
        Err(Error::InvalidInput { .. })
    ));
}

/// A time range reads only the segments its times can lie in: the sealed segments' last
/// times (kept in the summary) rule the others out without their sidecars. A segment damaged
/// together with its sidecar outside the range fails neither the query nor its count; inside
/// it, it fails both.
#[test]
fn a_time_range_reads_only_the_segments_it_can_lie_in() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = build(dir.path(), 0x71e);
    let log = all(&store);
    store.close().unwrap();
    let segments = files_with_ext(dir.path(), "jsonl");
    assert!(segments.len() > 4, "expected many sealed segments");
    let base =
        |p: &std::path::Path| -> u64 { p.file_stem().unwrap().to_str().unwrap().parse().unwrap() };
    // The first event of segment `k` (a seq is its index in `log` plus one).
    let first = |k: usize| &log[base(&segments[k]) as usize - 1];
    let damage = |copy: &std::path::Path, k: usize| {
        let name = segments[k].file_name().unwrap();
        let seg = copy.join(name);
        let mut b = std::fs::read(&seg).unwrap();
        let at = b.len() / 2;
        b[at] ^= 0x55;
        std::fs::write(&seg, b).unwrap();
        std::fs::write(seg.with_extension("idx"), b"not an index").unwrap();
    };
    let ask = |dir: &std::path::Path, q: &Query| {
        let store = Store::open_read_only(dir).unwrap();
        let got: Result<Vec<u64>, Error> =
            store.query(q).unwrap().map(|e| e.map(|e| e.seq)).collect();
        (got, store.count(q))
    };
    let want = |keep: &dyn Fn(&RecordedEvent) -> bool| -> Vec<u64> {
        log.iter().filter(|e| keep(e)).map(|e| e.seq).collect()
    };

    // `since` after the first segment's last event: the first segment is not read.
    let copy = copy_of(dir.path());
    damage(copy.path(), 0);
    let t = first(1).time;
    let since = Query::new().event_type("Paid").since(t);
    let expect = want(&|e| e.event_type == "Paid" && e.time >= t);
    assert!(!expect.is_empty());
    let (got, count) = ask(copy.path(), &since);
    assert_eq!(got.unwrap(), expect);
    assert_eq!(count.unwrap(), expect.len() as u64);
    let (got, count) = ask(copy.path(), &Query::new().event_type("Paid"));
    assert!(matches!(got, Err(Error::Corrupt { .. })), "{got:?}");
    assert!(matches!(count, Err(Error::Corrupt { .. })), "{count:?}");

    // `until` at the last event of segment 2: the segments after it are not read.
    let copy = copy_of(dir.path());
    damage(copy.path(), 3);
    let t = log[base(&segments[3]) as usize - 2].time;
    let until = Query::new().tag("region=eu").until(t);
    let expect = want(&|e| e.tags.iter().any(|g| g == "region=eu") && e.time < t);
    assert!(!expect.is_empty());
    let (got, count) = ask(copy.path(), &until);
    assert_eq!(got.unwrap(), expect);
    assert_eq!(count.unwrap(), expect.len() as u64);
    let later = Query::new().tag("region=eu").until(first(3).time + 1);
    let (got, _) = ask(copy.path(), &later);
    assert!(matches!(got, Err(Error::Corrupt { .. })), "{got:?}");
}

/// A count of one type or one tag takes a segment's count from the term's entry only where
/// nothing of the segment is deleted; elsewhere it counts the live postings. Both agree with
/// the events a query returns, before and after deletions, over whole and partial seq ranges.
#[test]
fn a_count_of_one_term_agrees_with_the_query_around_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = build(dir.path(), 0xc0);
    let n = all(&store).len() as u64;
    let check = |store: &Store| {
        for term in TYPES
            .iter()
            .map(|t| Query::new().event_type(*t))
            .chain(TAGS.iter().map(|t| Query::new().tag(*t)))
        {
            for q in [
                term.clone(),
                term.clone().from_seq(n / 3),
                term.clone().from_seq(n / 4).to_seq(n / 2),
            ] {
                let expect = store.query(&q).unwrap().count() as u64;
                assert_eq!(store.count(&q).unwrap(), expect, "{q:?}");
            }
        }
    };
    check(&store);
    store
        .delete_stream("order-3", ExpectedVersion::Any)
        .unwrap();
    store.truncate_stream("cart-1", 3).unwrap();
    check(&store);
    store.close().unwrap();
    check(&Store::open_read_only(dir.path()).unwrap());
}
