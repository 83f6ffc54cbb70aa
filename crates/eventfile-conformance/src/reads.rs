//! Reads: one stream or the global log, in both directions, from any position, with limits;
//! every field of an event back as it was appended; commit times; the head.

use std::time::{SystemTime, UNIX_EPOCH};

use eventfile::{Direction, ExpectedVersion::*, NewEvent, Query, Read};
use serde_json::json;

use crate::Factory;
use crate::support::*;

/// A fresh store holds nothing, and says so everywhere.
pub fn an_empty_store_reads_empty(factory: &Factory<'_>) {
    let s = factory();
    assert_eq!(head(&*s), 0);
    assert_eq!(s.log_start().unwrap(), 1);
    assert!(all(&*s).is_empty());
    assert!(collect(s.read_all(Read::backward())).is_empty());
    assert!(stream(&*s, "nobody", Read::forward()).is_empty());
    assert!(stream(&*s, "nobody", Read::backward().from(3)).is_empty());
    assert_eq!(version(&*s, "nobody"), 0);
    assert!(s.get_event("no-such-id").unwrap().is_none());
    assert_eq!(s.count(&Query::new()).unwrap(), 0);
    assert!(collect(s.query(&Query::new().backward())).is_empty());
    assert!(s.streams("", None, 10).unwrap().is_empty());
    assert!(s.event_types(None, 10).unwrap().is_empty());
    assert!(s.tags(None, 10).unwrap().is_empty());
    assert!(s.load_snapshot("nobody").unwrap().is_none());
}

/// `rounds` turns of three streams, each appending a batch of one or two events.
fn three_streams(s: &dyn eventfile::EventStore, rounds: u64) {
    for i in 0..rounds {
        for (k, name) in (0..).zip(["s0", "s1", "s2"]) {
            let batch = 1 + (i + k) % 2;
            append(
                s,
                name,
                (0..batch).map(|j| ev("Tick", i * 10 + j)).collect(),
            );
        }
    }
}

/// A stream reads forwards from a version, backwards from a version, with a limit; reading
/// past either end gives what is there.
pub fn stream_reads_go_both_ways_from_any_version_with_limits(factory: &Factory<'_>) {
    let s = factory();
    three_streams(&*s, 4);
    let log = all(&*s);
    for name in ["s0", "s1", "s2"] {
        let expect: Vec<u64> = log
            .iter()
            .filter(|e| e.stream == name)
            .map(|e| e.seq)
            .collect();
        let n = expect.len() as u64;
        assert_eq!(n, version(&*s, name));
        assert_eq!(seqs(&stream(&*s, name, Read::forward())), expect);
        let rev: Vec<u64> = expect.iter().rev().copied().collect();
        assert_eq!(seqs(&stream(&*s, name, Read::backward())), rev);
        for from in [0, 1, 2, n / 2, n, n + 1, 1000] {
            let fwd = versions(&stream(&*s, name, Read::forward().from(from)));
            assert_eq!(
                fwd,
                (from.max(1)..=n).collect::<Vec<_>>(),
                "{name} from {from}"
            );
            let bwd = versions(&stream(&*s, name, Read::backward().from(from)));
            let want: Vec<u64> = (1..=from.min(n)).rev().collect();
            assert_eq!(bwd, want, "{name} backward from {from}");
            for limit in [0, 1, 3] {
                let got = versions(&stream(&*s, name, Read::forward().from(from).limit(limit)));
                let want: Vec<u64> = (from.max(1)..=n).take(limit).collect();
                assert_eq!(got, want, "{name} from {from} limit {limit}");
                let got = versions(&stream(
                    &*s,
                    name,
                    Read::forward()
                        .direction(Direction::Backward)
                        .from(from)
                        .limit(limit),
                ));
                let want: Vec<u64> = (1..=from.min(n)).rev().take(limit).collect();
                assert_eq!(got, want, "{name} backward from {from} limit {limit}");
            }
        }
    }
}

/// The global log reads forwards and backwards from any seq, with a limit.
pub fn global_reads_go_both_ways_from_any_seq_with_limits(factory: &Factory<'_>) {
    let s = factory();
    three_streams(&*s, 3);
    let n = head(&*s);
    let log = all(&*s);
    assert_eq!(log.len() as u64, n);
    assert_gapless(&log);
    for from in [0, 1, 2, n / 2, n - 1, n, n + 1, 1000] {
        let fwd = seqs(&collect(s.read_all(Read::forward().from(from))));
        assert_eq!(fwd, (from.max(1)..=n).collect::<Vec<_>>(), "from {from}");
        let bwd = seqs(&collect(s.read_all(Read::backward().from(from))));
        let want: Vec<u64> = (1..=from.min(n)).rev().collect();
        assert_eq!(bwd, want, "backward from {from}");
        for limit in [0, 1, 4] {
            let got = seqs(&collect(
                s.read_all(Read::forward().from(from).limit(limit)),
            ));
            let want: Vec<u64> = (from.max(1)..=n).take(limit).collect();
            assert_eq!(got, want, "from {from} limit {limit}");
            let got = seqs(&collect(
                s.read_all(Read::backward().from(from).limit(limit)),
            ));
            let want: Vec<u64> = (1..=from.min(n)).rev().take(limit).collect();
            assert_eq!(got, want, "backward from {from} limit {limit}");
        }
    }
    assert_eq!(
        seqs(&collect(s.read_all(Read::backward().limit(2)))),
        [n, n - 1]
    );
    // Every event of the log is the one its stream read returns.
    for e in &log {
        let one = stream(&*s, &e.stream, Read::forward().from(e.version).limit(1));
        assert_eq!(one, std::slice::from_ref(e));
    }
}

/// Every field comes back as appended: the data as its exact text, metadata, tags in order,
/// the id; reads, queries and look-ups by id agree.
pub fn events_round_trip_every_field(factory: &Factory<'_>) {
    let s = factory();
    let data = r#"{"to":"Zürich \"HQ\"\n","n":[1.5,null,18446744073709551616,1E+2,-0.0]}"#;
    let e = NewEvent::from_json_str("Shipped", &format!("  {data}\n"))
        .unwrap()
        .with_id("my-id-1")
        .with_meta_entry("correlation_id", "c-1")
        .with_meta_entry("causation_id", "k-1")
        .with_meta_entry("actor", "ann")
        .with_meta_entry("n", json!({"deep": [1, 2.5, true]}))
        .with_tag("tier=gold")
        .with_tag("region=eu");
    let r = s.append("order-1", NoStream, vec![e]).unwrap();
    let got = all(&*s).remove(0);
    assert_eq!(
        (got.seq, got.id.as_str(), got.stream.as_str(), got.version),
        (r.first_seq, "my-id-1", "order-1", 1)
    );
    assert_eq!(got.event_type, "Shipped");
    assert_eq!(got.data.get(), data);
    assert_eq!(got.data_value()["to"], "Zürich \"HQ\"\n");
    assert_eq!(
        serde_json::Value::Object(got.meta.clone()),
        json!({
            "correlation_id": "c-1", "causation_id": "k-1", "actor": "ann",
            "n": {"deep": [1, 2.5, true]}
        })
    );
    assert_eq!(got.tags, ["tier=gold", "region=eu"]);
    assert_eq!(s.get_event("my-id-1").unwrap().unwrap(), got);
    assert_eq!(
        stream(&*s, "order-1", Read::forward()),
        std::slice::from_ref(&got)
    );
    assert_eq!(
        collect(s.query(&Query::new().actor("ann"))),
        std::slice::from_ref(&got)
    );
    // Data built from a value or a serialisable type is compact JSON.
    s.append(
        "order-1",
        Exact(1),
        vec![NewEvent::new("T", json!({"a": [1, "b"]}))],
    )
    .unwrap();
    assert_eq!(
        stream(&*s, "order-1", Read::backward().limit(1))[0]
            .data
            .get(),
        r#"{"a":[1,"b"]}"#
    );
}

fn wall_clock_micros() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(d.as_micros()).expect("microseconds fit")
}

/// Commit times are microseconds since the epoch, near the wall clock, and never decrease
/// along the log.
pub fn commit_times_never_decrease(factory: &Factory<'_>) {
    let s = factory();
    let before = wall_clock_micros();
    for i in 0..20 {
        append(&*s, &format!("s{}", i % 3), vec![ev("T", i), ev("T", i)]);
    }
    s.delete_stream("s0", Any).unwrap();
    append(&*s, "s1", vec![ev("T", 99)]);
    let after = wall_clock_micros();
    let log = collect(s.query(&Query::new()));
    assert!(log.windows(2).all(|w| w[0].time <= w[1].time), "{log:?}");
    // Allow for a backend whose clock is another machine's.
    let slack = 60_000_000;
    assert!(
        log.iter()
            .all(|e| e.time >= before - slack && e.time <= after + slack)
    );
    // Times select the same events through queries as through the log.
    let t = log[log.len() / 2].time;
    let since: Vec<u64> = log.iter().filter(|e| e.time >= t).map(|e| e.seq).collect();
    assert_eq!(seqs(&collect(s.query(&Query::new().since(t)))), since);
}

/// The head is the seq of the newest event: every append and every deletion moves it, failed
/// appends and retries do not.
pub fn head_seq_follows_every_write(factory: &Factory<'_>) {
    let s = factory();
    let r = append(&*s, "a", vec![ev("T", 1), ev("T", 2)]);
    assert_eq!(head(&*s), r.last_seq);
    assert_eq!(r.last_seq, 2);
    let d = s.truncate_stream("a", 2).unwrap();
    assert_eq!(head(&*s), d.seq.unwrap());
    assert!(s.append("a", NoStream, vec![ev("T", 3)]).is_err());
    assert_eq!(head(&*s), 3);
    let with_id = || vec![ev("T", 4).with_id("h-1")];
    let r = append(&*s, "b", with_id());
    assert_eq!((head(&*s), r.last_seq), (4, 4));
    assert!(append(&*s, "b", with_id()).replayed);
    assert_eq!(head(&*s), 4);
    assert_eq!(s.log_start().unwrap(), 1);
    // The head counts deleted events: the log's newest seq, not how many are live.
    assert_eq!(all(&*s).len(), 3);
}
